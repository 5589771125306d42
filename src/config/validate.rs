use super::Config;
use crate::finding::Finding;

#[derive(Debug)]
pub struct ConfigError {
    pub findings: Vec<Finding>,
}

/// Parse and validate `.stategate.yaml` text; every problem becomes a located finding.
pub fn parse_config(_path: &str, _text: &str) -> Result<Config, ConfigError> {
    Ok(Config::default())
}
