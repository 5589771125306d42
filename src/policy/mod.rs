//! Rego policies through regorus: conftest-style document policies, change policies
//! (`package stategate.change`) and Gatekeeper ConstraintTemplates.
//!
//! Policies are read from the trusted tree the caller passes, compiled once into a prototype
//! engine, and evaluated by clones of it, so rayon workers never share an engine.

mod budget;
pub mod builtin;
mod eval;
mod fast;
pub mod gatekeeper;
mod source;
pub mod verify;

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::Value;

use crate::change::Action;
use crate::config::PoliciesConfig;
use crate::finding::{Finding, Location, Rule, Severity};
use crate::load::{Document, LoadOptions, load_file};
use crate::tree::{Tree, Unreadable};

use eval::{EnginePool, Origin};
pub use source::MISSING_BUILTINS;

/// The package of change policies.
pub const CHANGE_PACKAGE: &str = "stategate.change";

/// What a document policy knows about the file besides the document: `data.stategate.file`.
#[derive(Debug, Clone, Serialize)]
pub struct FileContext {
    pub path: String,
    pub environment: Option<String>,
    pub action: Action,
    /// The same object at the base revision, if it existed.
    pub before: Option<Value>,
}

/// `input` of change policies, as DESIGN.md fixes it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ChangeInput {
    #[serde(rename = "ref")]
    pub git_ref: Option<String>,
    pub base: Option<String>,
    pub head: Option<String>,
    pub actor: Option<String>,
    pub files: Vec<ChangedFile>,
    pub commits: Vec<CommitInput>,
    pub reviews: Vec<ReviewInput>,
    /// Per touched object with a live source: `{object, environment, state, live, drifted, fields}`.
    pub live: Vec<Value>,
    /// Values set ahead of `drift.promote`: `{object, environment, field, value, previous, …}`.
    pub promotion: Vec<Value>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChangedFile {
    pub path: String,
    pub action: Action,
    pub environment: Option<String>,
    pub before: Vec<Value>,
    pub after: Vec<Value>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CommitInput {
    pub id: String,
    pub author: String,
    pub message: String,
    /// Trailer key → values (`Approved-by: …` may repeat).
    pub trailers: serde_json::Map<String, Value>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ReviewInput {
    pub user: String,
    pub state: String,
    pub commit: Option<String>,
}

/// A rule's value for one document, or the evaluation error.
type RuleOutcome = Result<regorus::Value, String>;

/// A rule whose results become findings.
#[derive(Debug, Clone)]
struct Target {
    package: String,
    rule: String,
    severity: Severity,
    policy: String,
    /// `data.pkg.rule`, precomputed for the hot path.
    path: String,
}

/// Every policy of a run, compiled.
pub struct PolicySet {
    pool: EnginePool,
    documents: Vec<Target>,
    /// The packages of `documents`, each evaluated once per document.
    document_packages: Vec<String>,
    /// The compiled VM program for `documents`, if the RVM compiler takes the policies.
    fast: Option<fast::FastPath>,
    change: Vec<Target>,
    /// Packages that define conftest's `exception` rule.
    exception_packages: BTreeSet<String>,
    /// Only policies that mention `stategate` can read `data.stategate.file`; the others skip the
    /// per-document context (it costs a `with` per rule).
    uses_context: bool,
    gatekeeper: gatekeeper::Gatekeeper,
    /// Findings about the policies themselves that do not stop the run (unsupported templates).
    notes: Vec<Finding>,
    /// Heap that evaluations running at once may add (`policies.memory_mb`), in bytes.
    memory: u64,
}

/// `deny`, `violation`, `warn` and their `_`-prefixed forms.
fn severity_of(rule: &str) -> Option<Severity> {
    let matches = |prefix: &str| rule == prefix || rule.starts_with(&format!("{prefix}_"));
    if matches("deny") || matches("violation") {
        Some(Severity::Error)
    } else if matches("warn") {
        Some(Severity::Warning)
    } else {
        None
    }
}

impl PolicySet {
    /// Read, parse and compile every policy and data file the config names, from `tree` (the
    /// trusted base). Any policy that does not compile stops the run: the gate cannot decide.
    pub fn load(config: &PoliciesConfig, tree: &dyn Tree) -> Result<PolicySet, Vec<Finding>> {
        let memory = budget::bytes(config.memory_mb);
        let mut engine = regorus::Engine::new();
        engine.set_execution_timer_config(eval::timer(config.timeout_ms));
        // OPA (and so conftest) treats a builtin's error as undefined unless asked otherwise.
        engine.set_strict_builtin_errors(false);
        let mut findings = Vec::new();
        if let Err(e) = budget::guard(&mut engine, memory) {
            findings.push(source::compile_finding("policies", None, &e.to_string()));
        }
        let mut uses_context = false;
        let mut calls_guarded = false;
        let is_policy = |p: &str| p.ends_with(".rego") && !p.ends_with("_test.rego");
        for path in matching_files(tree, &config.paths, is_policy, &mut findings) {
            let Some(text) = read_text(tree, &path, &mut findings) else {
                continue;
            };
            // `import data.stategate` or `data.stategate.file`; `package stategate.change` alone
            // does not need it.
            uses_context |= text.contains("data.stategate");
            calls_guarded |= budget::calls_guarded(&text);
            findings.extend(source::check_builtins(&path, &text).into_iter().map(fatal));
            if let Err(finding) = source::add_policy(&mut engine, &path, &text) {
                findings.push(*finding);
            }
        }
        let builtins = builtin::enabled(config);
        if !builtins.is_empty() {
            // Repository policies add to the built-in ones; both compile into one engine.
            let library = std::iter::once((builtin::LIBRARY.0, builtin::LIBRARY.1));
            let chosen = builtins.iter().map(|b| (b.name, b.rego));
            for (name, text) in library.chain(chosen) {
                let file =
                    builtin::module_path(&format!("{}.rego", name.trim_end_matches(".rego")));
                add_embedded(&mut engine, &file, text, None, &mut findings);
            }
            let parameters = builtin::parameters_data(&config.parameters);
            add_embedded_data(
                &mut engine,
                "policies.parameters",
                &parameters,
                &mut findings,
            );
        }
        if !config.reject_kinds.is_empty() {
            let file = builtin::module_path("reject_kinds.rego");
            let data = builtin::reject_data(&config.reject_kinds);
            add_embedded(
                &mut engine,
                &file,
                builtin::REJECT_POLICY,
                Some(("policies.reject_kinds", &data)),
                &mut findings,
            );
        }
        for value in load_data(tree, &config.data, &mut findings) {
            if let Err(err) = engine.add_data(value.1) {
                findings.push(source::compile_finding(&value.0, None, &err.to_string()));
            }
        }
        findings.extend(source::check_recursion(&mut engine));
        if findings.is_empty() {
            // Regorus resolves rules lazily; one trivial query makes it analyse every module now,
            // so conflicts and unsafe variables surface as compile errors, not per document.
            if let Err(err) = engine.eval_query("true".to_string(), false) {
                let text = err.to_string();
                let file = text
                    .split("--> ")
                    .nth(1)
                    .and_then(|r| r.split(':').next())
                    .unwrap_or("policies")
                    .to_string();
                findings.push(source::compile_finding(
                    &file,
                    source::error_line(&text),
                    &text,
                ));
            }
        }
        let gatekeeper =
            gatekeeper::Gatekeeper::load(&config.gatekeeper, tree, config.timeout_ms, memory);
        findings.extend(gatekeeper.fatal.iter().cloned());
        if !findings.is_empty() {
            return Err(findings);
        }
        let decls = source::rule_decls(&mut engine);
        let selected = |package: &str| {
            package != CHANGE_PACKAGE
                && ((!builtins.is_empty() && package == builtin::PACKAGE)
                    || package == builtin::REJECT_PACKAGE
                    || config
                        .namespaces
                        .iter()
                        .any(|n| n == "all" || n == "*" || n == package))
        };
        let mut documents = Vec::new();
        let mut change = Vec::new();
        let mut exception_packages = BTreeSet::new();
        let mut seen = BTreeSet::new();
        for decl in &decls {
            if decl.name == "exception" && !decl.is_function {
                exception_packages.insert(decl.package.clone());
            }
            let Some(severity) = severity_of(&decl.name) else {
                continue;
            };
            if decl.is_function || !seen.insert((decl.package.clone(), decl.name.clone())) {
                continue;
            }
            let target = Target {
                path: format!("data.{}.{}", decl.package, decl.name),
                package: decl.package.clone(),
                rule: decl.name.clone(),
                severity,
                policy: decl.file.clone(),
            };
            if decl.package == CHANGE_PACKAGE {
                change.push(target);
            } else if selected(&decl.package) {
                documents.push(target);
            }
        }
        let notes = gatekeeper.notes.clone();
        let mut document_packages: Vec<String> = Vec::new();
        for target in &documents {
            if !document_packages.contains(&target.package) {
                document_packages.push(target.package.clone());
            }
        }
        let plans: Vec<fast::PackagePlan> = document_packages
            .iter()
            .map(|package| fast::PackagePlan {
                package: package.clone(),
                has_exception: exception_packages.contains(package),
                rule_paths: documents
                    .iter()
                    .filter(|t| &t.package == package)
                    .map(|t| t.path.clone())
                    .collect(),
            })
            .collect();
        // The VM calls builtins directly, past the guarded versions: such sets use the interpreter.
        let fast = (!calls_guarded)
            .then(|| fast::FastPath::compile(&engine, &plans, config.timeout_ms))
            .flatten();
        Ok(PolicySet {
            pool: EnginePool::new(engine),
            documents,
            document_packages,
            fast,
            change,
            exception_packages,
            uses_context,
            gatekeeper,
            notes,
            memory,
        })
    }

    /// Findings about the policy set itself that did not stop loading, e.g. Gatekeeper templates
    /// that only carry CEL. They are errors: an unsupported policy never passes silently.
    pub fn notes(&self) -> &[Finding] {
        &self.notes
    }

    /// How many document rules (conftest-style plus Gatekeeper constraints) judge each document.
    pub fn document_rule_count(&self) -> usize {
        self.documents.len() + self.gatekeeper.constraint_count()
    }

    /// Whether a Gatekeeper template reads `data.inventory`: then every document must be known
    /// before the first is judged, and the check cannot stream.
    pub fn needs_inventory(&self) -> bool {
        self.gatekeeper.needs_inventory()
    }

    /// Give Gatekeeper templates that read `data.inventory` the objects of the checked tree.
    pub fn set_inventory(&mut self, documents: &[Document]) {
        self.gatekeeper.set_inventory(documents);
    }

    /// Judge one document. Safe to call from many threads at once.
    pub fn check_document(&self, doc: &Document, ctx: &FileContext) -> Vec<Finding> {
        let _bounded = budget::arm(self.memory);
        let mut findings = self.check_conftest(doc, ctx);
        findings.extend(self.gatekeeper.check_document(doc));
        findings
    }

    fn check_conftest(&self, doc: &Document, ctx: &FileContext) -> Vec<Finding> {
        if self.documents.is_empty() {
            return Vec::new();
        }
        let subject = format!("{} (document {})", doc.path(), doc.index + 1);
        let raw = self
            .fast_results(doc, ctx)
            .unwrap_or_else(|| self.interpreter_results(doc, ctx));
        let location = doc.locate("");
        let mut findings = Vec::new();
        for (target, outcome) in raw {
            let origin = Origin {
                package: &target.package,
                rule: &target.rule,
                policy: &target.policy,
            };
            match outcome {
                Ok(value) => findings.extend(eval::results(&value).into_iter().map(|r| {
                    let finding = eval::result_finding(r, target.severity, &origin);
                    let at = field_hint(&finding)
                        .map_or_else(|| location.clone(), |pointer| doc.locate(&pointer));
                    finding.at(at).object(doc.id())
                })),
                Err(err) => findings.push(
                    eval::error_finding(&err, &origin, &subject)
                        .at(location.clone())
                        .object(doc.id()),
                ),
            }
        }
        findings
    }

    /// The VM's results, or `None` when they must come from the interpreter.
    fn fast_results(
        &self,
        doc: &Document,
        ctx: &FileContext,
    ) -> Option<Vec<(&Target, RuleOutcome)>> {
        let fast = self.fast.as_ref()?;
        let context = self
            .uses_context
            .then(|| eval::to_rego(&serde_json::to_value(ctx).unwrap_or(Value::Null)));
        let groups = fast.run(eval::to_rego(&doc.value), context)?;
        let mut out = Vec::new();
        for (package, values) in self.document_packages.iter().zip(groups) {
            let has_exception = self.exception_packages.contains(package);
            let excepted = match has_exception {
                true => values.first().map(exception_names).unwrap_or_default(),
                false => BTreeSet::new(),
            };
            let targets = self.documents.iter().filter(|t| &t.package == package);
            out.extend(
                targets
                    .zip(values.into_iter().skip(usize::from(has_exception)))
                    .filter(|(t, _)| !excepted.contains(conftest_name(&t.rule)))
                    .map(|(t, value)| (t, Ok(value))),
            );
        }
        Some(out)
    }

    fn interpreter_results(
        &self,
        doc: &Document,
        ctx: &FileContext,
    ) -> Vec<(&Target, RuleOutcome)> {
        self.pool.with(|engine| {
            let input = eval::to_rego(&doc.value);
            if self.uses_context {
                let context = serde_json::to_value(ctx).unwrap_or(Value::Null);
                // The document and its context travel together; each query unpacks them with
                // `with input as input.doc with data.stategate.file as input.file`.
                engine.set_input(engine_input(input, &context));
            } else {
                engine.set_input(input);
            }
            let mut out = Vec::new();
            for package in &self.document_packages {
                out.extend(self.eval_package(engine, package));
            }
            out
        })
    }

    /// Every rule of one package in a single evaluation, so helper rules shared by the package's
    /// rules are computed once per document. Only if that fails are the rules evaluated one by
    /// one, to pin the error on the rule that raised it.
    fn eval_package<'a>(
        &'a self,
        engine: &mut regorus::Engine,
        package: &str,
    ) -> Vec<(&'a Target, RuleOutcome)> {
        let targets = self.documents.iter().filter(|t| t.package == package);
        // `data.pkg` as a whole would be one query, but regorus 0.14 leaves some rules out of a
        // package's value; an array of the rules is evaluated just as well, in one pass.
        let has_exception = self.exception_packages.contains(package);
        let mut paths: Vec<&str> = Vec::new();
        let exception_path = format!("data.{package}.exception");
        if has_exception {
            paths.push(&exception_path);
        }
        paths.extend(targets.clone().map(|t| t.path.as_str()));
        let query = format!("[{}]", paths.join(", "));
        if let Ok(regorus::Value::Array(values)) = self.eval_path(engine, &query) {
            let skip = usize::from(has_exception);
            let excepted = match has_exception {
                true => values.get(0).map(exception_names).unwrap_or_default(),
                false => BTreeSet::new(),
            };
            return targets
                .zip(values.iter().skip(skip))
                .filter(|(t, _)| !excepted.contains(conftest_name(&t.rule)))
                .map(|(t, value)| (t, Ok(value.clone())))
                .collect();
        }
        let excepted = if self.exception_packages.contains(package) {
            self.eval_path(engine, &format!("data.{package}.exception"))
                .map(|v| exception_names(&v))
                .unwrap_or_default()
        } else {
            BTreeSet::new()
        };
        targets
            .filter(|t| !excepted.contains(conftest_name(&t.rule)))
            .map(|t| (t, self.eval_path(engine, &t.path)))
            .collect()
    }

    fn eval_path(
        &self,
        engine: &mut regorus::Engine,
        path: &str,
    ) -> Result<regorus::Value, String> {
        let query = if self.uses_context {
            format!("{path} with input as input.doc with data.stategate.file as input.file")
        } else {
            path.to_string()
        };
        let results = engine.eval_query(query, false).map_err(|e| e.to_string())?;
        Ok(results
            .result
            .into_iter()
            .next()
            .and_then(|r| r.expressions.into_iter().next())
            .map_or(regorus::Value::Undefined, |e| e.value))
    }

    /// Judge the whole change with the rules of `package stategate.change`.
    pub fn check_change(&self, input: &ChangeInput) -> Vec<Finding> {
        if self.change.is_empty() {
            return Vec::new();
        }
        let value = serde_json::to_value(input).unwrap_or(Value::Null);
        let _bounded = budget::arm(self.memory);
        let raw = self.pool.with(|engine| {
            engine.set_input(eval::to_rego(&value));
            self.change
                .iter()
                .map(|t| {
                    (
                        t,
                        engine.eval_rule(t.path.clone()).map_err(|e| e.to_string()),
                    )
                })
                .collect::<Vec<_>>()
        });
        let mut findings = Vec::new();
        for (target, outcome) in raw {
            let origin = Origin {
                package: &target.package,
                rule: &target.rule,
                policy: &target.policy,
            };
            let location = Location::file(target.policy.as_str());
            match outcome {
                Ok(value) => findings.extend(eval::results(&value).into_iter().map(|r| {
                    eval::result_finding(r, target.severity, &origin).at(location.clone())
                })),
                Err(err) => findings
                    .push(eval::error_finding(&err, &origin, "the change").at(location.clone())),
            }
        }
        // Change policies see every changed file's documents: none of their Secret values may
        // reach a message.
        let mut secrets = crate::report::Secrets::default();
        for file in &input.files {
            file.before
                .iter()
                .chain(&file.after)
                .for_each(|doc| secrets.collect(doc));
        }
        findings
            .iter_mut()
            .for_each(|finding| secrets.redact_finding(finding));
        findings
    }
}

fn engine_input(doc: regorus::Value, context: &Value) -> regorus::Value {
    let mut map = std::collections::BTreeMap::new();
    map.insert(regorus::Value::from("doc"), doc);
    map.insert(regorus::Value::from("file"), eval::to_rego(context));
    regorus::Value::from(map)
}

/// A result object may say which field it is about, in a `field` or `path` key: a JSON pointer
/// (`/spec/replicas`) or a dotted path with indexes (`spec.containers[0].image`). The finding then
/// points at that line instead of the document's first.
fn field_hint(finding: &Finding) -> Option<String> {
    let hint = ["field", "path"]
        .iter()
        .find_map(|k| finding.metadata.get(*k).and_then(Value::as_str))?;
    if hint.starts_with('/') {
        return Some(hint.to_string());
    }
    let mut pointer = String::new();
    for part in hint.split('.').filter(|p| !p.is_empty()) {
        let mut pieces = part.split('[');
        let key = pieces.next().unwrap_or_default();
        if !key.is_empty() {
            pointer.push('/');
            pointer.push_str(&key.replace('~', "~0").replace('/', "~1"));
        }
        for index in pieces {
            pointer.push('/');
            pointer.push_str(index.trim_end_matches(']'));
        }
    }
    (!pointer.is_empty()).then_some(pointer)
}

/// The rule names an `exception` value lists: a set of arrays (`exception contains ["a"]`) or of
/// strings.
fn exception_names(value: &regorus::Value) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for entry in eval::results(value) {
        match entry {
            Value::Array(items) => names.extend(
                items
                    .into_iter()
                    .filter_map(|i| i.as_str().map(str::to_owned)),
            ),
            Value::String(s) => {
                names.insert(s);
            }
            _ => {}
        }
    }
    names
}

/// conftest names exceptions by the rule name without its `deny_`/`violation_`/`warn_` prefix.
fn conftest_name(rule: &str) -> &str {
    ["deny_", "violation_", "warn_"]
        .iter()
        .find_map(|p| rule.strip_prefix(p))
        .unwrap_or(rule)
}

/// Load-stopping version of a finding (missing builtins break a policy as a syntax error would).
fn fatal(mut finding: Finding) -> Finding {
    finding.rule = Rule::PolicyCompile;
    finding
}

/// Files under any of `roots` (directory prefixes, single files or globs) that pass `keep`.
/// What would have passed but is not a regular file (a symlinked `.rego`, a submodule or symlink
/// that may hide a directory of them) becomes a blocking finding: a policy the gate cannot read
/// must stop the run, not quietly drop out of it.
pub(crate) fn matching_files(
    tree: &dyn Tree,
    roots: &[String],
    keep: impl Fn(&str) -> bool,
    findings: &mut Vec<Finding>,
) -> Vec<String> {
    let mut out = BTreeSet::new();
    let mut unreadable = BTreeSet::new();
    // A symlink or submodule without an extension may stand for a directory of policies.
    let relevant = |u: &Unreadable| {
        let name = u.path.rsplit('/').next().unwrap_or_default();
        keep(&u.path) || !name.contains('.')
    };
    for root in roots {
        if root.contains(['*', '?', '[']) {
            let Ok(glob) = globset::Glob::new(root) else {
                continue;
            };
            let matcher = glob.compile_matcher();
            out.extend(
                tree.files_under("")
                    .into_iter()
                    .filter(|p| matcher.is_match(p) && keep(p)),
            );
            unreadable.extend(
                tree.unreadable_under("")
                    .into_iter()
                    .filter(|u| matcher.is_match(&u.path) && relevant(u)),
            );
        } else {
            let prefix = root.trim_start_matches("./");
            out.extend(tree.files_under(prefix).into_iter().filter(|p| keep(p)));
            unreadable.extend(
                tree.unreadable_under(prefix)
                    .into_iter()
                    .filter(|u| u.path == prefix.trim_end_matches('/') || relevant(u)),
            );
        }
    }
    findings.extend(unreadable.iter().map(|u| unreadable_finding(u, tree)));
    out.into_iter().collect()
}

/// A policy or data file that exists in the trusted tree but cannot be read as one.
pub(crate) fn unreadable_finding(unreadable: &Unreadable, tree: &dyn Tree) -> Finding {
    Finding::error(
        Rule::PolicyCompile,
        format!(
            "policy path {} is {} in {}: policies and data are read only from regular files",
            unreadable.path,
            unreadable.reason,
            tree.describe()
        ),
    )
    .at(Location::file(unreadable.path.as_str()))
    .with_meta("policy", unreadable.path.as_str())
    .help(
        "commit the file itself instead of a link or submodule, or move it out of the policy paths",
    )
}

pub(crate) fn read_text(
    tree: &dyn Tree,
    path: &str,
    findings: &mut Vec<Finding>,
) -> Option<String> {
    let bytes = match tree.read_checked(path) {
        Ok(bytes) => bytes?,
        Err(unreadable) => {
            findings.push(unreadable_finding(&unreadable, tree));
            return None;
        }
    };
    match String::from_utf8(bytes) {
        Ok(text) => Some(text),
        Err(_) => {
            findings.push(source::compile_finding(
                path,
                None,
                "the file is not valid UTF-8",
            ));
            None
        }
    }
}

/// Data files (`.json`, `.yaml`, `.yml`) merged at the root of `data`, as `conftest -d` does.
pub(crate) fn load_data(
    tree: &dyn Tree,
    roots: &[String],
    findings: &mut Vec<Finding>,
) -> Vec<(String, regorus::Value)> {
    let is_data = |p: &str| {
        (p.ends_with(".json") || p.ends_with(".yaml") || p.ends_with(".yml")) && !p.contains("/.")
    };
    let mut out = Vec::new();
    for path in matching_files(tree, roots, is_data, findings) {
        let bytes = match tree.read_checked(&path) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => continue,
            Err(unreadable) => {
                findings.push(unreadable_finding(&unreadable, tree));
                continue;
            }
        };
        let loaded = load_file(&path, &bytes, &LoadOptions::default());
        let broken: Vec<_> = loaded
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .collect();
        if let Some(first) = broken.first() {
            findings.push(
                source::compile_finding(&path, None, &format!("data file: {}", first.message)).at(
                    first
                        .location
                        .clone()
                        .unwrap_or_else(|| Location::file(path.as_str())),
                ),
            );
            continue;
        }
        for doc in loaded.documents {
            if doc.value.is_object() {
                out.push((path.clone(), eval::to_rego(&doc.value)));
            } else if !doc.value.is_null() {
                findings.push(
                    source::compile_finding(&path, None, "a data file must hold a mapping")
                        .at(doc.locate("")),
                );
            }
        }
    }
    out
}

/// A policy the binary carries (built-in set, `--reject`), with the data it reads: a failure is
/// the binary's own fault but still a finding, so the gate blocks rather than judging without it.
fn add_embedded(
    engine: &mut regorus::Engine,
    file: &str,
    text: &str,
    data: Option<(&str, &serde_json::Value)>,
    findings: &mut Vec<Finding>,
) {
    if let Err(finding) = source::add_policy(engine, file, text) {
        findings.push(*finding);
    }
    if let Some((key, value)) = data {
        add_embedded_data(engine, key, value, findings);
    }
}

fn add_embedded_data(
    engine: &mut regorus::Engine,
    key: &str,
    value: &serde_json::Value,
    findings: &mut Vec<Finding>,
) {
    if let Err(err) = engine.add_data(eval::to_rego(value)) {
        findings.push(source::compile_finding(key, None, &err.to_string()));
    }
}
