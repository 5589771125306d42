//! `.stategate.yaml`: parsed with positions, then validated in a second pass that reports every
//! problem at once, each pointing at the offending key.

mod load;
mod validate;

use serde::Deserialize;
use std::collections::BTreeMap;

pub use load::{ConfigOrigin, Unusable, load};
pub use validate::{ConfigError, parse_config};

use crate::finding::{Finding, Rule};
use crate::tree::Tree;

pub const CONFIG_FILE: &str = ".stategate.yaml";

/// The text of `.stategate.yaml` in the trusted tree: `Ok(None)` when there is none (defaults
/// apply). A config that is there but cannot be used (a symlink, a directory, a submodule, not
/// UTF-8) is an error, never a silent fallback to defaults: replacing the file with a symlink
/// must not switch the rules off.
pub fn read_trusted(tree: &dyn Tree) -> Result<Option<String>, Box<Finding>> {
    let refuse = |why: String| {
        Box::new(
            Finding::error(
                Rule::ConfigInvalid,
                format!("cannot read {CONFIG_FILE} from {}: {why}", tree.describe()),
            )
            .in_file(CONFIG_FILE)
            .help(format!(
                "{CONFIG_FILE} must be a regular UTF-8 file at the repository root; \
                 remove it to use the defaults"
            )),
        )
    };
    let bytes = match tree.read_checked(CONFIG_FILE) {
        Ok(None) => return Ok(None),
        Ok(Some(bytes)) => bytes,
        Err(unreadable) => return Err(refuse(format!("it is {}", unreadable.reason))),
    };
    match String::from_utf8(bytes) {
        Ok(text) => Ok(Some(text)),
        Err(e) => Err(refuse(format!(
            "it is not valid UTF-8 (at byte {})",
            e.utf8_error().valid_up_to()
        ))),
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub version: u32,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    /// Environment name → path globs.
    pub environments: BTreeMap<String, Vec<String>>,
    pub schemas: SchemasConfig,
    pub policies: PoliciesConfig,
    pub protect: ProtectConfig,
    pub approvals: Vec<ApprovalRule>,
    pub drift: DriftConfig,
    pub render: RenderConfig,
    pub diff: DiffConfig,
    pub hook: HookConfig,
    pub limits: LimitsConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            version: 1,
            include: vec!["**/*.yaml".into(), "**/*.yml".into(), "**/*.json".into()],
            exclude: vec!["**/charts/**/templates/**".into()],
            environments: BTreeMap::new(),
            schemas: SchemasConfig::default(),
            policies: PoliciesConfig::default(),
            protect: ProtectConfig::default(),
            approvals: Vec::new(),
            drift: DriftConfig::default(),
            render: RenderConfig::default(),
            diff: DiffConfig::default(),
            hook: HookConfig::default(),
            limits: LimitsConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SchemasConfig {
    /// Kubernetes minor version of the embedded schemas, e.g. "1.31"; "none" turns them off.
    pub kubernetes: Option<String>,
    /// Globs of CustomResourceDefinition files. Empty = every CRD document in the checked tree.
    pub crds: Vec<String>,
    pub map: Vec<SchemaMapping>,
    pub unknown: UnknownPolicy,
}

impl Default for SchemasConfig {
    fn default() -> Self {
        SchemasConfig {
            kubernetes: None,
            crds: Vec::new(),
            map: Vec::new(),
            unknown: UnknownPolicy::Warn,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SchemaMapping {
    pub files: Vec<String>,
    pub schema: String,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum UnknownPolicy {
    Skip,
    #[default]
    Warn,
    Error,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PoliciesConfig {
    pub paths: Vec<String>,
    pub data: Vec<String>,
    /// Rego packages whose rules judge documents; `["all"]` = every package.
    pub namespaces: Vec<String>,
    /// Directories or globs of Gatekeeper ConstraintTemplates and Constraints.
    pub gatekeeper: Vec<String>,
    /// Per-document evaluation budget in milliseconds.
    pub timeout_ms: u64,
    /// Heap, in MiB, that the policy evaluations running at once may add; past it an evaluation
    /// fails as a `policy/error` instead of exhausting the host.
    pub memory_mb: u64,
}

impl Default for PoliciesConfig {
    fn default() -> Self {
        PoliciesConfig {
            paths: vec!["policies/".into()],
            data: vec!["policies/data/".into()],
            namespaces: vec!["main".into()],
            gatekeeper: Vec::new(),
            timeout_ms: 1000,
            memory_mb: 1024,
        }
    }
}

/// Whether a protected action is allowed.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Permission {
    Deny,
    Allow,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ProtectConfig {
    pub refs: Vec<String>,
    pub force_push: Permission,
    pub deletion: Permission,
    /// `deny` makes matching refs merge-only; allowed by default.
    pub direct_push: Permission,
    pub bypass_users: Vec<String>,
    /// Who must approve changes to the gate's own rules (config, policies, schemas, signers).
    pub admins: Option<AdminsConfig>,
}

/// `protect.admins`: approvers of changes to the trust paths; at push time, signed commits
/// verified against `allowed_signers`, exactly like an approval rule.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AdminsConfig {
    pub from: Vec<String>,
    #[serde(default = "one")]
    pub required: u32,
    #[serde(default)]
    pub allowed_signers: Option<String>,
}

impl Default for ProtectConfig {
    fn default() -> Self {
        ProtectConfig {
            refs: vec!["refs/heads/main".into()],
            force_push: Permission::Deny,
            deletion: Permission::Deny,
            direct_push: Permission::Allow,
            bypass_users: Vec::new(),
            admins: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ApprovalRule {
    pub name: String,
    pub paths: Vec<String>,
    #[serde(default = "one")]
    pub required: u32,
    pub from: Vec<String>,
    /// At push time: the `allowed_signers` file (in the trusted base) whose keys count.
    #[serde(default)]
    pub allowed_signers: Option<String>,
    /// On a PR: an approval given on an older commit than the head no longer counts.
    #[serde(default = "yes")]
    pub dismiss_stale: bool,
}

fn one() -> u32 {
    1
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct DriftConfig {
    pub up_to_date: Vec<String>,
    pub live: Option<LiveDrift>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LiveDrift {
    pub source: LiveSource,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub command: Option<String>,
    #[serde(default)]
    pub on_drift: OnDrift,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LiveSource {
    Snapshot,
    Command,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum OnDrift {
    #[default]
    Block,
    Warn,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RenderConfig {
    pub kustomize: Vec<String>,
    pub helm: HelmConfig,
    /// Command used to render kustomize directories; default: `kustomize build` if on PATH, else
    /// `kubectl kustomize`.
    pub kustomize_command: Option<Vec<String>>,
    /// The helm binary (and leading arguments); default `helm` from PATH.
    pub helm_command: Option<Vec<String>>,
}

/// `render.helm`: either a list of chart directory globs (rendered with their own values), or the
/// full form with charts, the remote repositories charts may come from, and whether the gate may
/// fetch them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HelmConfig {
    pub charts: Vec<HelmChart>,
    /// `https://…` chart repositories and `oci://…` registries charts may be fetched from.
    pub repositories: Vec<String>,
    /// Fetch allowed remote charts (off by default: the hook runs without network).
    pub network: bool,
    /// Render Flux HelmReleases and Argo CD Applications found in the repository.
    pub releases: bool,
}

/// One chart directory to render, with the values files applied in order.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct HelmChart {
    /// A chart directory (a glob in the short form).
    pub chart: String,
    #[serde(default)]
    pub values: Vec<String>,
    #[serde(default)]
    pub release: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
}

impl<'de> Deserialize<'de> for HelmConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum ChartEntry {
            Glob(String),
            Full(HelmChart),
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Full {
            #[serde(default)]
            charts: Vec<ChartEntry>,
            #[serde(default)]
            repositories: Vec<String>,
            #[serde(default)]
            network: bool,
            #[serde(default = "yes")]
            releases: bool,
        }
        fn yes() -> bool {
            true
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Globs(Vec<String>),
            Full(Full),
        }
        let chart = |e: ChartEntry| match e {
            ChartEntry::Glob(chart) => HelmChart {
                chart,
                ..HelmChart::default()
            },
            ChartEntry::Full(c) => c,
        };
        Ok(match Form::deserialize(d)? {
            Form::Globs(globs) => HelmConfig {
                charts: globs
                    .into_iter()
                    .map(|g| chart(ChartEntry::Glob(g)))
                    .collect(),
                ..HelmConfig::default()
            },
            Form::Full(f) => HelmConfig {
                charts: f.charts.into_iter().map(chart).collect(),
                repositories: f.repositories,
                network: f.network,
                releases: f.releases,
            },
        })
    }
}

impl HelmConfig {
    /// Whether the config asks for any Helm rendering.
    pub fn wanted(&self) -> bool {
        !self.charts.is_empty() || self.releases
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct DiffConfig {
    /// Extra JSON-pointer-like patterns (`/spec/**/password`) whose values are masked.
    pub mask: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct HookConfig {
    /// Refs whose pushes get schema and policy checks; empty = every branch and tag.
    pub refs: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    pub max_file_size: u64,
    pub alias_budget: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_file_size: 10 * 1024 * 1024,
            alias_budget: 100_000,
        }
    }
}

impl Config {
    pub fn load_options(&self) -> crate::load::LoadOptions {
        crate::load::LoadOptions {
            max_file_size: self.limits.max_file_size,
            alias_budget: self.limits.alias_budget,
        }
    }
}
