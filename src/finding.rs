//! What every check produces: a located, serialisable [`Finding`].
//!
//! The library only produces findings; renderers in `report` turn them into text and the front doors
//! turn the whole set into a [`Verdict`]. Rendering never decides a verdict.

use serde::Serialize;
use std::fmt;

use crate::object::ObjectId;

/// How much a finding weighs in the verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Note,
    Warning,
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Note => "note",
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// Every finding code the gate can emit. Codes are part of the user contract (people write
/// suppressions and dashboards against them), so `tests/rules.rs` snapshots the whole table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rule {
    // load: the input could not be read as data.
    LoadSyntax,
    LoadAliasLimit,
    LoadTooLarge,
    LoadInvalidUtf8,
    LoadDuplicateKey,
    LoadAmbiguousScalar,
    LoadSkipped,
    // config
    ConfigInvalid,
    // schema
    SchemaType,
    SchemaRequired,
    SchemaUnknownField,
    SchemaEnum,
    SchemaFormat,
    SchemaConstraint,
    SchemaUnknownKind,
    SchemaInvalid,
    // policy
    PolicyDeny,
    PolicyWarn,
    PolicyError,
    PolicyCompile,
    PolicyUnsupported,
    // protect
    ProtectForcePush,
    ProtectDeletion,
    ProtectDirectPush,
    ProtectBypass,
    // approval
    ApprovalMissing,
    // drift
    DriftBehindBase,
    DriftLive,
    // render
    RenderFailed,
    // the gate itself
    GateTimeout,
    GateInternal,
    // push coverage and the gate's own rules (hook)
    ProtectUnjudgedRef,
    ProtectTrustPaths,
    // load: what kubectl, kustomize and Flux would apply cannot be known (issue 8).
    LoadAmbiguous,
    LoadBinary,
    LoadSymlink,
    // render (Flux post-build substitution)
    RenderUnsetVariable,
    // live drift and promotion (issue 11)
    DriftSource,
    DriftStale,
    DriftPromotion,
    // inline suppressions (issue 10)
    SuppressionInvalid,
    SuppressionUnused,
}

impl Rule {
    pub const ALL: &'static [Rule] = &[
        Rule::LoadSyntax,
        Rule::LoadAliasLimit,
        Rule::LoadTooLarge,
        Rule::LoadInvalidUtf8,
        Rule::LoadDuplicateKey,
        Rule::LoadAmbiguousScalar,
        Rule::LoadSkipped,
        Rule::ConfigInvalid,
        Rule::SchemaType,
        Rule::SchemaRequired,
        Rule::SchemaUnknownField,
        Rule::SchemaEnum,
        Rule::SchemaFormat,
        Rule::SchemaConstraint,
        Rule::SchemaUnknownKind,
        Rule::SchemaInvalid,
        Rule::PolicyDeny,
        Rule::PolicyWarn,
        Rule::PolicyError,
        Rule::PolicyCompile,
        Rule::PolicyUnsupported,
        Rule::ProtectForcePush,
        Rule::ProtectDeletion,
        Rule::ProtectDirectPush,
        Rule::ProtectBypass,
        Rule::ApprovalMissing,
        Rule::DriftBehindBase,
        Rule::DriftLive,
        Rule::RenderFailed,
        Rule::GateTimeout,
        Rule::GateInternal,
        Rule::ProtectUnjudgedRef,
        Rule::ProtectTrustPaths,
        Rule::LoadAmbiguous,
        Rule::LoadBinary,
        Rule::LoadSymlink,
        Rule::RenderUnsetVariable,
        Rule::DriftSource,
        Rule::DriftStale,
        Rule::DriftPromotion,
        Rule::SuppressionInvalid,
        Rule::SuppressionUnused,
    ];

    /// The stable code, `stage/what`.
    pub fn code(self) -> &'static str {
        match self {
            Rule::LoadSyntax => "load/syntax",
            Rule::LoadAliasLimit => "load/alias-limit",
            Rule::LoadTooLarge => "load/too-large",
            Rule::LoadInvalidUtf8 => "load/invalid-utf8",
            Rule::LoadDuplicateKey => "load/duplicate-key",
            Rule::LoadAmbiguousScalar => "load/ambiguous-scalar",
            Rule::LoadSkipped => "load/skipped",
            Rule::ConfigInvalid => "config/invalid",
            Rule::SchemaType => "schema/type",
            Rule::SchemaRequired => "schema/required",
            Rule::SchemaUnknownField => "schema/unknown-field",
            Rule::SchemaEnum => "schema/enum",
            Rule::SchemaFormat => "schema/format",
            Rule::SchemaConstraint => "schema/constraint",
            Rule::SchemaUnknownKind => "schema/unknown-kind",
            Rule::SchemaInvalid => "schema/invalid-schema",
            Rule::PolicyDeny => "policy/deny",
            Rule::PolicyWarn => "policy/warn",
            Rule::PolicyError => "policy/error",
            Rule::PolicyCompile => "policy/compile",
            Rule::PolicyUnsupported => "policy/unsupported",
            Rule::ProtectForcePush => "protect/force-push",
            Rule::ProtectDeletion => "protect/deletion",
            Rule::ProtectDirectPush => "protect/direct-push",
            Rule::ProtectBypass => "protect/bypass",
            Rule::ApprovalMissing => "approval/missing",
            Rule::DriftBehindBase => "drift/behind-base",
            Rule::DriftLive => "drift/live",
            Rule::RenderFailed => "render/failed",
            Rule::GateTimeout => "gate/timeout",
            Rule::GateInternal => "gate/internal",
            Rule::ProtectUnjudgedRef => "protect/unjudged-ref",
            Rule::ProtectTrustPaths => "protect/trust-paths",
            Rule::LoadAmbiguous => "load/ambiguous",
            Rule::LoadBinary => "load/binary",
            Rule::LoadSymlink => "load/symlink",
            Rule::RenderUnsetVariable => "render/unset-variable",
            Rule::DriftSource => "drift/source",
            Rule::DriftStale => "drift/stale",
            Rule::DriftPromotion => "drift/promotion",
            Rule::SuppressionInvalid => "suppress/invalid",
            Rule::SuppressionUnused => "suppress/unused",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Rule::LoadSyntax => "the file is not well-formed YAML or JSON",
            Rule::LoadAliasLimit => "YAML aliases expand beyond the budget (alias bomb)",
            Rule::LoadTooLarge => "the file is larger than `limits.max_file_size`",
            Rule::LoadInvalidUtf8 => "the file is not valid UTF-8",
            Rule::LoadDuplicateKey => "a mapping repeats a key; the cluster would keep only one",
            Rule::LoadAmbiguousScalar => {
                "an unquoted scalar that YAML 1.1 (kubectl) reads differently than a human would"
            }
            Rule::LoadSkipped => {
                "a changed path was not checked (binary, symlink, submodule, template)"
            }
            Rule::ConfigInvalid => "`.stategate.yaml` is invalid",
            Rule::SchemaType => "a value has the wrong type",
            Rule::SchemaRequired => "a required field is missing",
            Rule::SchemaUnknownField => "a field the schema does not know (strict validation)",
            Rule::SchemaEnum => "a value is not one of the allowed values",
            Rule::SchemaFormat => "a value does not match the required format or pattern",
            Rule::SchemaConstraint => "a value breaks another schema constraint",
            Rule::SchemaUnknownKind => "no schema covers this document",
            Rule::SchemaInvalid => "a schema file in the repository is itself invalid",
            Rule::PolicyDeny => "a Rego `deny`/`violation` rule matched",
            Rule::PolicyWarn => "a Rego `warn` rule matched",
            Rule::PolicyError => "a policy failed while evaluating a document",
            Rule::PolicyCompile => "a policy does not parse or compile",
            Rule::PolicyUnsupported => "a policy needs a feature stategate does not support",
            Rule::ProtectForcePush => "a non-fast-forward update of a protected ref",
            Rule::ProtectDeletion => "deletion of a protected ref",
            Rule::ProtectDirectPush => "a direct push to a ref that only takes merges",
            Rule::ProtectBypass => "an emergency bypass was used",
            Rule::ApprovalMissing => "an approval rule is not met",
            Rule::DriftBehindBase => "the change does not contain the base branch's tip",
            Rule::DriftLive => "live state differs from the desired state at base",
            Rule::RenderFailed => "a renderer (kustomize, helm) failed",
            Rule::GateTimeout => "the gate ran out of its time budget",
            Rule::GateInternal => "the gate hit an internal error",
            Rule::ProtectUnjudgedRef => {
                "a pushed ref the hook does not judge (outside `hook.refs`, or not a commit)"
            }
            Rule::ProtectTrustPaths => {
                "a change to the gate's own rules without the approval of `protect.admins`"
            }
            Rule::LoadAmbiguous => {
                "YAML that kubectl (go-yaml v2) and kustomize/Flux/Argo CD (kyaml) read differently"
            }
            Rule::LoadBinary => "a file the gate checks holds binary content, not text",
            Rule::LoadSymlink => "a symlink leaves the repository or points at nothing readable",
            Rule::RenderUnsetVariable => {
                "a Flux post-build variable has no value or default in the repository"
            }
            Rule::DriftSource => "the live state could not be read (`drift.live` source failed)",
            Rule::DriftStale => "the live snapshot is older than `max_age`",
            Rule::DriftPromotion => {
                "a value reaches an environment before the previous one in `drift.promote` has it"
            }
            Rule::SuppressionInvalid => "a `# stategate:ignore` comment without a rule or a reason",
            Rule::SuppressionUnused => "a `# stategate:ignore` comment that suppresses nothing",
        }
    }

    /// Findings of these rules mean the gate could not judge the input, so the verdict is
    /// "undecided" (exit 2) rather than "rejected" (exit 1). Both block.
    pub fn is_undecidable(self) -> bool {
        matches!(
            self,
            Rule::LoadSyntax
                | Rule::LoadAliasLimit
                | Rule::LoadTooLarge
                | Rule::LoadInvalidUtf8
                | Rule::ConfigInvalid
                | Rule::SchemaInvalid
                | Rule::PolicyCompile
                | Rule::RenderFailed
                | Rule::GateTimeout
                | Rule::GateInternal
                | Rule::LoadAmbiguous
                | Rule::LoadBinary
                | Rule::LoadSymlink
                | Rule::DriftSource
        )
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl Serialize for Rule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

/// Where in the repository a finding points. Lines and columns are 1-based; `offset`/`len` are
/// byte positions in the file so renderers can show the source with a caret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Location {
    pub file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<u32>,
    #[serde(skip)]
    pub offset: Option<usize>,
    #[serde(skip)]
    pub len: usize,
}

impl Location {
    pub fn file(file: impl Into<String>) -> Self {
        Location {
            file: file.into(),
            ..Location::default()
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub rule: Rule,
    pub severity: Severity,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<ObjectId>,
    /// What the user can do about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    /// The git ref this finding is about (hook and PR front doors).
    #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
    pub git_ref: Option<String>,
    /// Extra keys: the Rego rule and policy file, keys of a policy's result object, …
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// JSON pointer of the offending value in its document, when a check knows it: with the rule
    /// and the object, what makes a finding "the same" at the base and at head.
    #[serde(skip)]
    pub field: Option<String>,
    /// The base already had this finding: the change did not introduce it (`report.pre_existing`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub pre_existing: bool,
    /// An inline `# stategate:ignore` covers it: shown, counted, never blocking.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suppressed: Option<crate::suppress::Suppression>,
}

impl Finding {
    pub fn new(rule: Rule, severity: Severity, message: impl Into<String>) -> Self {
        Finding {
            rule,
            severity,
            message: message.into(),
            location: None,
            object: None,
            help: None,
            git_ref: None,
            metadata: serde_json::Map::new(),
            field: None,
            pre_existing: false,
            suppressed: None,
        }
    }

    pub fn error(rule: Rule, message: impl Into<String>) -> Self {
        Finding::new(rule, Severity::Error, message)
    }

    pub fn warning(rule: Rule, message: impl Into<String>) -> Self {
        Finding::new(rule, Severity::Warning, message)
    }

    pub fn note(rule: Rule, message: impl Into<String>) -> Self {
        Finding::new(rule, Severity::Note, message)
    }

    pub fn at(mut self, location: Location) -> Self {
        self.location = Some(location);
        self
    }

    pub fn in_file(self, file: impl Into<String>) -> Self {
        self.at(Location::file(file))
    }

    pub fn object(mut self, object: ObjectId) -> Self {
        self.object = Some(object);
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn with_meta(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.metadata.insert(key.to_string(), value.into());
        self
    }

    pub fn field(mut self, pointer: impl Into<String>) -> Self {
        self.field = Some(pointer.into());
        self
    }

    pub fn for_ref(mut self, git_ref: impl Into<String>) -> Self {
        self.git_ref = Some(git_ref.into());
        self
    }
}

/// The outcome of a run, and the process exit code every front door uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Nothing blocks: exit 0.
    Pass,
    /// Findings block the change: exit 1.
    Fail,
    /// The gate could not decide, and therefore blocks: exit 2.
    Undecided,
}

impl Verdict {
    pub fn of(findings: &[Finding]) -> Verdict {
        let blocking = findings
            .iter()
            .filter(|f| f.severity == Severity::Error && f.suppressed.is_none());
        let mut verdict = Verdict::Pass;
        for finding in blocking {
            if finding.rule.is_undecidable() {
                return Verdict::Undecided;
            }
            verdict = Verdict::Fail;
        }
        verdict
    }

    pub fn exit_code(self) -> u8 {
        match self {
            Verdict::Pass => 0,
            Verdict::Fail => 1,
            Verdict::Undecided => 2,
        }
    }
}
