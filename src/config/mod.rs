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
    pub report: ReportConfig,
    /// Rule code, policy rule (`package.rule`) or a policy result's `id` → level.
    pub rules: BTreeMap<String, RuleSetting>,
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
            report: ReportConfig::default(),
            rules: BTreeMap::new(),
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
    /// Custom resources without a CRD in the repository are judged by the embedded CRD catalog.
    pub catalog: bool,
}

impl Default for SchemasConfig {
    fn default() -> Self {
        SchemasConfig {
            kubernetes: None,
            crds: Vec::new(),
            map: Vec::new(),
            unknown: UnknownPolicy::Warn,
            catalog: true,
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
    /// Policies compiled into the binary to enable: names from `stategate policies list`, or `all`.
    pub builtin: Vec<String>,
    /// Parameters of the built-in policies.
    pub parameters: BuiltinParameters,
    /// Kinds no document may have (kubeconform's `-reject`); `check --reject`.
    pub reject_kinds: Vec<String>,
}

/// `policies.parameters`: one section per built-in policy that takes parameters.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct BuiltinParameters {
    pub required_labels: RequiredLabelsParameters,
    pub images: ImagesParameters,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RequiredLabelsParameters {
    /// Label keys every workload and Service must carry; unset = `app.kubernetes.io/name`.
    pub labels: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ImagesParameters {
    /// Registry prefixes images must come from; empty = any.
    pub allowed_registries: Vec<String>,
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
            builtin: Vec::new(),
            parameters: BuiltinParameters::default(),
            reject_kinds: Vec::new(),
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
    /// Where live state comes from, for every environment without its own entry in `environments`.
    pub live: Option<LiveDrift>,
    /// Environment name → its own live source (overrides `live`).
    pub environments: BTreeMap<String, LiveDrift>,
    /// Judge live drift in the pre-receive hook too (needs a `live` source).
    pub hook: bool,
    /// Who may acknowledge drift (users; at push time `-o stategate.ack-drift` or a signed approval).
    pub acknowledge_by: Vec<String>,
    /// At push time: the allowed_signers file whose signed approvals acknowledge drift.
    pub allowed_signers: Option<String>,
    /// Promotion order rules.
    pub promote: Vec<PromoteRule>,
}

impl DriftConfig {
    /// The live source of an environment: its own entry, else the default.
    pub fn live_for(&self, env: &str) -> Option<&LiveDrift> {
        self.environments.get(env).or(self.live.as_ref())
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LiveDrift {
    pub source: LiveSource,
    /// snapshot: a file or directory in the repository; `{env}` names the environment.
    #[serde(default)]
    pub path: Option<String>,
    /// command: argv (no shell); `{env}` in an argument names the environment.
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// command and argocd: how long the source may take.
    #[serde(default = "default_live_timeout_ms")]
    pub timeout_ms: u64,
    /// argocd: the API server's URL, e.g. `https://argocd.example.com`.
    #[serde(default)]
    pub server: Option<String>,
    /// argocd: the environment variable holding the API token (never the token itself).
    #[serde(default)]
    pub token_env: Option<String>,
    /// argocd: the Applications to read; empty = those whose source paths the change touches.
    #[serde(default)]
    pub applications: Vec<String>,
    #[serde(default)]
    pub on_drift: OnDrift,
    /// A source that fails: `block` (fail closed, default) or `warn`.
    #[serde(default)]
    pub on_error: OnDrift,
    /// snapshot: older than this (`30m`, `24h`, `7d`) is stale.
    #[serde(default)]
    pub max_age: Option<String>,
    /// A stale snapshot: `warn` (default) or `block`.
    #[serde(default = "warn")]
    pub on_stale: OnDrift,
}

fn default_live_timeout_ms() -> u64 {
    30_000
}

fn warn() -> OnDrift {
    OnDrift::Warn
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LiveSource {
    Snapshot,
    Command,
    Argocd,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum OnDrift {
    #[default]
    Block,
    Warn,
}

/// `drift.promote[]`: values of `fields` reach an environment only after the previous one in `order`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PromoteRule {
    /// Dotted field paths with `[*]` for every list item: `spec.template.spec.containers[*].image`.
    pub fields: Vec<String>,
    /// Environment names, first to last.
    pub order: Vec<String>,
    /// How the same object is named in each environment (`{env}` = the environment's name).
    #[serde(default, rename = "match")]
    pub match_: PromoteMatch,
    /// Who may acknowledge skipping the order in an emergency.
    #[serde(default)]
    pub skip_by: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct PromoteMatch {
    /// e.g. `shop-{env}`; `*` matches any text.
    pub namespace: Option<String>,
    /// e.g. `web-{env}`.
    pub name: Option<String>,
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

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ReportConfig {
    /// What to do with findings that the base already had: only what a change introduces should
    /// block it, or teams switch the gate off after someone else's old problem blocks them.
    pub pre_existing: PreExisting,
    /// Which `# stategate:ignore` comments count.
    pub inline_suppressions: InlineSuppressions,
}

/// `report.inline_suppressions`: a change can suppress its own findings (listed as "suppressed by
/// this change"), only comments already at the base count, or none do.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum InlineSuppressions {
    #[default]
    Allow,
    BaseOnly,
    Off,
}

/// Findings present at the base (same rule, same object, same field): `report.pre_existing`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum PreExisting {
    /// Listed apart, never blocking (errors become warnings).
    #[default]
    Warn,
    /// Listed apart, blocking like new findings.
    Block,
    /// Counted in the summary only.
    Hide,
}

/// One entry of `rules:`: a level everywhere, or levels per path glob (the first match wins).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum RuleSetting {
    Level(Level),
    Scoped(Vec<ScopedLevel>),
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScopedLevel {
    pub level: Level,
    /// Globs of the files it applies to; empty = every file.
    #[serde(default)]
    pub paths: Vec<String>,
}

/// What a rule's findings become. `off` may be written unquoted (YAML 1.1 reads it as `false`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Off,
    Note,
    Warning,
    Error,
}

impl<'de> Deserialize<'de> for Level {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Level, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bool(bool),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bool(false) => Ok(Level::Off),
            Raw::Text(text) => match text.as_str() {
                "off" => Ok(Level::Off),
                "note" => Ok(Level::Note),
                "warning" => Ok(Level::Warning),
                "error" => Ok(Level::Error),
                other => Err(serde::de::Error::custom(format!(
                    "unknown level `{other}`, expected off, note, warning or error"
                ))),
            },
            Raw::Bool(true) => Err(serde::de::Error::custom(
                "expected off, note, warning or error",
            )),
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

/// `30s`, `15m`, `24h`, `7d` (or a bare number of seconds) as seconds.
pub fn parse_duration(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().ok()?;
    let factor = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    n.checked_mul(factor)
}
