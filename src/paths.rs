//! Path rules: which files the gate checks and which environment each belongs to, through the one
//! glob matcher every rule that names paths or refs uses. A leaf module: checks, front doors and the
//! gate all read it, it reads only the config.

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::config::{CONFIG_FILE, Config};
use crate::finding::{Finding, Rule};

/// The one glob matcher: `include`/`exclude`, environments, approval and protection paths,
/// `hook.refs`, CODEOWNERS patterns all go through it.
pub fn glob_set(globs: &[String]) -> Result<GlobSet, globset::Error> {
    let mut builder = GlobSetBuilder::new();
    for glob in globs {
        builder.add(Glob::new(glob)?);
    }
    builder.build()
}

/// Which paths are checked, and which environment each belongs to.
pub struct PathRules {
    include: GlobSet,
    exclude: GlobSet,
    environments: Vec<(String, GlobSet)>,
}

impl PathRules {
    pub fn new(config: &Config) -> Result<PathRules, Box<Finding>> {
        let invalid = |e: globset::Error| {
            Box::new(
                Finding::error(Rule::ConfigInvalid, format!("invalid glob: {e}"))
                    .in_file(CONFIG_FILE),
            )
        };
        let environments = config
            .environments
            .iter()
            .map(|(name, globs)| glob_set(globs).map(|set| (name.clone(), set)))
            .collect::<Result<_, _>>()
            .map_err(invalid)?;
        Ok(PathRules {
            include: glob_set(&config.include).map_err(invalid)?,
            exclude: glob_set(&config.exclude).map_err(invalid)?,
            environments,
        })
    }

    pub fn is_checked(&self, path: &str) -> bool {
        self.include.is_match(path) && !self.exclude.is_match(path)
    }

    pub fn environment_of(&self, path: &str) -> Option<&str> {
        self.environments
            .iter()
            .find(|(_, set)| set.is_match(path))
            .map(|(name, _)| name.as_str())
    }
}
