//! `rules:` of the config: what each rule's findings become (off, note, warning, error), per path.

use crate::config::{CONFIG_FILE, Config, Level, RuleSetting};
use crate::finding::{Finding, Rule, Severity};
use crate::paths::glob_set;
use crate::suppress;

/// `rules:` of the config, globs compiled: what each rule's findings become, per path.
pub struct RuleLevels {
    rules: Vec<(String, Vec<ScopedLevel>)>,
}

/// A level, and the files it applies to (`None`: every file).
type ScopedLevel = (Level, Option<globset::GlobSet>);

impl RuleLevels {
    pub fn new(config: &Config) -> Result<RuleLevels, Box<Finding>> {
        let invalid = |e: globset::Error| {
            Box::new(
                Finding::error(Rule::ConfigInvalid, format!("invalid glob in rules: {e}"))
                    .in_file(CONFIG_FILE),
            )
        };
        let mut rules = Vec::new();
        for (key, setting) in &config.rules {
            let levels = match setting {
                RuleSetting::Level(level) => vec![(*level, None)],
                RuleSetting::Scoped(items) => items
                    .iter()
                    .map(|item| {
                        let globs = (!item.paths.is_empty())
                            .then(|| glob_set(&item.paths))
                            .transpose()?;
                        Ok((item.level, globs))
                    })
                    .collect::<Result<_, globset::Error>>()
                    .map_err(invalid)?,
            };
            rules.push((key.clone(), levels));
        }
        Ok(RuleLevels { rules })
    }

    /// Findings at their configured level; those turned `off` are dropped. Rules that mean the
    /// gate could not read the input are never changed (the config refuses that too).
    pub fn apply(&self, findings: Vec<Finding>) -> Vec<Finding> {
        if self.rules.is_empty() {
            return findings;
        }
        findings
            .into_iter()
            .filter_map(|mut finding| {
                if finding.rule.is_undecidable() {
                    return Some(finding);
                }
                match self.level_of(&finding) {
                    Some(Level::Off) => None,
                    Some(level) => {
                        finding.severity = match level {
                            Level::Note => Severity::Note,
                            Level::Warning => Severity::Warning,
                            _ => Severity::Error,
                        };
                        Some(finding)
                    }
                    None => Some(finding),
                }
            })
            .collect()
    }

    /// The level of the `rules:` entry naming the finding: its policy result's `id`, its policy
    /// rule (`package.rule`) or its rule code, scoped to the finding's file.
    fn level_of(&self, finding: &Finding) -> Option<Level> {
        let names = suppress::names_of(finding);
        let file = finding.location.as_ref().map(|l| l.file.as_str());
        names.iter().find_map(|name| {
            self.rules
                .iter()
                .filter(|(key, _)| key == name)
                .flat_map(|(_, levels)| levels)
                .find(|(_, globs)| match (globs, file) {
                    (None, _) => true,
                    (Some(globs), Some(file)) => globs.is_match(file),
                    (Some(_), None) => false,
                })
                .map(|(level, _)| *level)
        })
    }
}
