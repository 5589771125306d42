//! Reading the config that judges a change: `--config FILE`, or `.stategate.yaml` of the trusted
//! tree (see `crate::trust`), or the defaults when there is none. An unreadable or invalid config
//! is never the defaults: the caller cannot decide and exits 2.

use std::path::Path;
use std::sync::Arc;

use super::{CONFIG_FILE, Config, parse_config, read_trusted};
use crate::finding::{Finding, Rule};
use crate::load::SourceFile;
use crate::tree::Tree;

/// Where the config came from, said in every report so nobody wonders which rules judged them.
#[derive(Debug, Clone)]
pub enum ConfigOrigin {
    Tree { file: String, tree: String },
    File(String),
    Defaults { tree: String },
}

impl std::fmt::Display for ConfigOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigOrigin::Tree { file, tree } => write!(f, "config {file} from {tree}"),
            ConfigOrigin::File(path) => write!(f, "config {path} (--config)"),
            ConfigOrigin::Defaults { tree } => {
                write!(f, "no {CONFIG_FILE} in {tree}: using defaults")
            }
        }
    }
}

/// Why no config could be had: the findings, and the file they point into (for snippets).
#[derive(Debug)]
pub struct Unusable {
    pub findings: Vec<Finding>,
    pub source: Option<(String, Arc<SourceFile>)>,
}

impl Unusable {
    fn of(finding: Finding) -> Unusable {
        Unusable {
            findings: vec![finding],
            source: None,
        }
    }
}

/// The config from `config_file` when given, else from the trusted tree, else the defaults.
pub fn load(
    trusted: &dyn Tree,
    config_file: Option<&Path>,
) -> Result<(Config, ConfigOrigin), Unusable> {
    let (name, text, origin) = match config_file {
        Some(path) => {
            let name = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|e| {
                Unusable::of(
                    Finding::error(Rule::ConfigInvalid, format!("cannot read config: {e}"))
                        .in_file(&name)
                        .help("check the path given to --config"),
                )
            })?;
            (name.clone(), text, ConfigOrigin::File(name))
        }
        None => match read_trusted(trusted) {
            Ok(Some(text)) => {
                let origin = ConfigOrigin::Tree {
                    file: CONFIG_FILE.to_owned(),
                    tree: trusted.describe(),
                };
                (CONFIG_FILE.to_owned(), text, origin)
            }
            Ok(None) => {
                let origin = ConfigOrigin::Defaults {
                    tree: trusted.describe(),
                };
                return Ok((Config::default(), origin));
            }
            Err(finding) => return Err(Unusable::of(*finding)),
        },
    };
    match parse_config(&name, &text) {
        Ok(config) => Ok((config, origin)),
        Err(error) => Err(Unusable {
            findings: error.findings,
            source: Some((name.clone(), Arc::new(SourceFile::new(name, text)))),
        }),
    }
}
