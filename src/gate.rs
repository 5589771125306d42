//! The engine every front door shares: given the trusted base and a change, run the stages and
//! collect a [`Report`].
//!
//! Trust rule: config, schemas, CRDs from the base and policies all come from `trusted`, never from
//! the change under review; only the changed files themselves come from the head side.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, RwLock};

use rayon::prelude::*;

use crate::change::{Action, ChangeSet, FileChange, SkipKind, Skipped};
use crate::config::{CONFIG_FILE, Config, ConfigOrigin, InlineSuppressions, Level, RuleSetting};
use crate::finding::{Finding, Location, Rule, Severity};
use crate::load::{
    Document, LoadOptions, Loaded, SourceFile, is_chart_template, load_file, load_manifest,
};
use crate::object::ObjectId;
use crate::paths::{PathRules, glob_set};
use crate::policy::{FileContext, PolicySet};
use crate::render::flux;
use crate::render::overlays::{PatchedTree, render_both_sides};
use crate::render::target_namespace::TargetNamespaces;
use crate::render::{KustomizeGraph, kustomize_command};
use crate::report::{Report, Secrets, Stats, saturating_u32};
use crate::schema::SchemaSet;
use crate::suppress::{self, Suppression};
use crate::tree::Tree;

/// The rules of one run, read once from the trusted base.
pub struct Gate {
    pub config: Config,
    pub origin: ConfigOrigin,
    trusted: Box<dyn Tree>,
    paths: PathRules,
    levels: RuleLevels,
    /// Compiled once per run; behind a lock only because Gatekeeper's inventory is set per check.
    policies: RwLock<PolicySet>,
}

impl Gate {
    /// Read the config from `--config FILE` or from `.stategate.yaml` in the trusted tree.
    /// An invalid config is a set of `config/invalid` findings: the caller exits 2.
    pub fn open(trusted: Box<dyn Tree>, config_file: Option<&Path>) -> Result<Gate, Report> {
        Gate::open_with(trusted, config_file, |_| {})
    }

    /// [`Gate::open`], with the config adjusted before anything reads it (command-line flags
    /// that override config keys).
    pub fn open_with(
        trusted: Box<dyn Tree>,
        config_file: Option<&Path>,
        adjust: impl FnOnce(&mut Config),
    ) -> Result<Gate, Report> {
        let (mut config, origin) = crate::config::load(trusted.as_ref(), config_file)
            .map_err(|e| report_of(e.findings, e.source.into_iter().collect()))?;
        adjust(&mut config);
        let paths = PathRules::new(&config).map_err(|f| report_of(vec![*f], BTreeMap::new()))?;
        let levels = RuleLevels::new(&config).map_err(|f| report_of(vec![*f], BTreeMap::new()))?;
        let policies = PolicySet::load(&config.policies, trusted.as_ref())
            .map_err(|findings| policy_report(findings, trusted.as_ref()))?;
        Ok(Gate {
            config,
            origin,
            trusted,
            paths,
            levels,
            policies: RwLock::new(policies),
        })
    }

    pub fn trusted(&self) -> &dyn Tree {
        self.trusted.as_ref()
    }

    /// The compiled policies, e.g. for change policies (`package stategate.change`).
    pub fn policies(&self) -> std::sync::RwLockReadGuard<'_, PolicySet> {
        self.policies
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The environment a path belongs to, from `environments` in the config.
    pub fn environment_of(&self, path: &str) -> Option<&str> {
        self.paths.environment_of(path)
    }

    /// Run every document check on a change. `head` is the tree the change produces, where the
    /// kustomizations that declare patch files are looked up.
    pub fn check(&self, change: &ChangeSet, head: &dyn Tree) -> Report {
        self.check_with_impact(change, head).0
    }

    /// [`Gate::check`], and what the change reaches: for approval rules, which must see a change
    /// to a shared base as a change to every overlay whose objects it alters.
    pub fn check_with_impact(&self, change: &ChangeSet, head: &dyn Tree) -> (Report, Impact) {
        let options = self.config.load_options();
        let mut findings: Vec<Finding> = change
            .skipped
            .iter()
            .map(|s| self.skipped_finding(s))
            .collect();
        let mut rendered = self.render_changed(change, head, &mut findings, &options);
        let impact = Impact::of(change, &rendered.impacted);
        let base = std::mem::take(&mut rendered.base);
        let base_rendered = RenderedChange {
            documents: base.documents,
            contexts: base.contexts,
            ..RenderedChange::default()
        };
        let unchanged = rendered.unchanged;
        let judged = self.judge(change, head, rendered, &options);
        findings.extend(judged.findings);

        // What the base already had is not this change's doing: judge the base side of the
        // touched files and objects the same way, and match findings by rule, object and field.
        let base_change = base_side(change);
        if !base_change.files.is_empty() || !base_rendered.documents.is_empty() {
            let base_tree = PatchedTree::new(head, before_images(change), "the change's base");
            let base = self.judge(&base_change, &base_tree, base_rendered, &options);
            let renames = renamed_paths(change);
            let at_base: HashSet<FindingKey> = base
                .findings
                .iter()
                .map(|f| FindingKey::of(f, &renames))
                .collect();
            let none = HashMap::new();
            for finding in &mut findings {
                finding.pre_existing = at_base.contains(&FindingKey::of(finding, &none));
            }
        }

        let mut sources = judged.sources;
        let cited: BTreeSet<&str> = findings
            .iter()
            .filter_map(|f| f.location.as_ref().map(|l| l.file.as_str()))
            .collect();
        for doc in judged.documents.iter().filter(|d| cited.contains(d.path())) {
            sources
                .entry(doc.path().to_owned())
                .or_insert_with(|| Arc::clone(&doc.source));
        }
        let before = findings.len();
        let findings = self.levels.apply(findings);
        let disabled = before - findings.len();
        let findings = self.suppress(change, findings);
        let mut report = report_of(findings, sources);
        report.stats = judged.stats;
        report.stats.disabled = crate::report::count(disabled);
        for suppression in report.findings.iter().filter_map(|f| f.suppressed.as_ref()) {
            report.stats.suppressed += 1;
            report.stats.suppressed_by_change += u32::from(suppression.by_change);
        }
        report.stats.skipped = saturating_u32(change.skipped.len());
        report.apply_pre_existing(self.config.report.pre_existing);
        report.notes.push(self.origin.to_string());
        if unchanged > 0 {
            report.notes.push(format!(
                "{unchanged} rendered objects are identical at the base and were not judged again"
            ));
        }
        // Whatever a check quoted (a policy printing `input.data.password`), no format prints a
        // Secret's value, nor a value Flux substituted from a Secret.
        let mut secrets = Secrets::default();
        judged
            .documents
            .iter()
            .for_each(|doc| secrets.collect(&doc.value));
        judged
            .flux_secrets
            .iter()
            .for_each(|value| secrets.insert(value));
        report.redact(&secrets);
        (report, impact)
    }

    /// Load, substitute and check one side of a change: the changed files' content in `change`
    /// (their `after`), plus the objects rendered for it, with `tree` as the side's repository.
    fn judge(
        &self,
        change: &ChangeSet,
        tree: &dyn Tree,
        rendered: RenderedChange,
        options: &LoadOptions,
    ) -> Judged {
        let mut findings = Vec::new();
        let mut stats = Stats::default();
        let selected = self.select(change, tree, &mut findings);
        stats.files = saturating_u32(selected.len());
        stats.checked = selected.iter().map(|f| f.path.clone()).collect();
        let loaded: Vec<Loaded> = selected
            .par_iter()
            .map(|file| {
                load_manifest(
                    &file.path,
                    file.after.as_deref().unwrap_or_default(),
                    options,
                )
            })
            .collect();

        let mut sources = BTreeMap::new();
        let mut documents = Vec::new();
        for loaded in loaded {
            if let Some(source) = &loaded.source
                && !loaded.findings.is_empty()
            {
                sources.insert(source.path.clone(), Arc::clone(source));
            }
            findings.extend(loaded.findings);
            documents.extend(loaded.documents);
        }
        documents.extend(rendered.documents);
        // Flux decrypts SOPS files before applying them: judge them as decrypted, with the
        // ciphertexts as opaque values that no output prints.
        let mut opaque = BTreeSet::new();
        for doc in &mut documents {
            opaque.extend(as_decrypted(&mut doc.value));
        }
        // Flux applies objects after its post-build substitution: judge those.
        let flux_path = |path: &str| {
            rendered
                .contexts
                .get(path)
                .map_or_else(|| path.to_owned(), |r| r.file.clone())
        };
        let changed: BTreeSet<&str> = change.files.iter().map(|f| f.path.as_str()).collect();
        let (flux_findings, mut flux_secrets) =
            flux::substitute_documents(tree, &changed, &mut documents, &flux_path, options);
        flux_secrets.extend(opaque);
        findings.extend(flux_findings);
        // Flux's `targetNamespace` and Argo CD's destination namespace decide where objects land.
        if !documents.is_empty() {
            TargetNamespaces::find(tree).apply(&mut documents, &flux_path);
        }
        stats.documents = saturating_u32(documents.len());
        // Flux may have brought in objects beyond the changed files: know their patches too.
        let files = documents.iter().map(|d| d.path());
        let patches =
            PatchIndex::build(tree, files.filter(|p| !rendered.contexts.contains_key(*p)));

        // Nothing to validate: do not pay for decoding the embedded schemas.
        let schemas = if documents.is_empty() {
            Ok(None)
        } else {
            self.schemas(&documents, options).map(Some)
        };
        match schemas {
            Ok(None) => {}
            Ok(Some(schemas)) => {
                let schema_findings: Vec<Finding> = documents
                    .par_iter()
                    .filter(|doc| !patches.is_patch(doc.path()) && !is_kustomize_file(doc))
                    .flat_map_iter(|doc| schemas.check(doc))
                    .collect();
                findings.extend(schema_findings);
            }
            Err(errors) => findings.extend(errors),
        }

        findings.extend(self.check_policies(
            change,
            &documents,
            &patches,
            options,
            &rendered.contexts,
        ));
        let findings = at_sources(findings, &documents, &rendered.contexts, tree, options);
        Judged {
            findings,
            documents,
            sources,
            flux_secrets,
            stats,
        }
    }

    /// Apply the `# stategate:ignore` comments of the changed files (`report.inline_suppressions`).
    /// A comment the base did not have is the change's own: it counts (`allow`), listed as
    /// "suppressed by this change", or not (`base-only`). Findings that mean the gate could not
    /// read the input are never suppressed.
    fn suppress(&self, change: &ChangeSet, mut findings: Vec<Finding>) -> Vec<Finding> {
        let mode = self.config.report.inline_suppressions;
        if mode == InlineSuppressions::Off {
            return findings;
        }
        let text = |bytes: &Option<Vec<u8>>| {
            bytes
                .as_deref()
                .and_then(|b| std::str::from_utf8(b).ok())
                .map(str::to_owned)
        };
        let mut extra = Vec::new();
        for file in change.files.iter().filter(|f| f.action != Action::Deleted) {
            let Some(after) = text(&file.after) else {
                continue;
            };
            let (comments, problems) = suppress::comments(&file.path, &after);
            extra.extend(problems);
            let before = text(&file.before).unwrap_or_default();
            for comment in comments {
                // With no base (`--all`) there is nothing the change could have added.
                let by_change =
                    change.base.is_some() && !before.lines().any(|l| l.trim() == comment.text);
                let at = Location {
                    file: file.path.clone(),
                    line: Some(comment.line),
                    ..Location::default()
                };
                if by_change && mode == InlineSuppressions::BaseOnly {
                    extra.push(
                        Finding::note(
                            Rule::SuppressionUnused,
                            format!(
                                "`{}` is added by this change and not honoured (report.inline_suppressions: base-only)",
                                comment.rule
                            ),
                        )
                        .at(at),
                    );
                    continue;
                }
                let mut used = false;
                for finding in findings.iter_mut().filter(|f| {
                    f.suppressed.is_none()
                        && !f.rule.is_undecidable()
                        && f.location.as_ref().is_some_and(|l| l.file == file.path)
                }) {
                    if suppress::covers(&comment, finding) {
                        finding.suppressed = Some(Suppression {
                            reason: comment.reason.clone(),
                            by_change,
                        });
                        used = true;
                    }
                }
                if !used {
                    extra.push(
                        Finding::warning(
                            Rule::SuppressionUnused,
                            format!("`# stategate:ignore {}` suppresses nothing", comment.rule),
                        )
                        .at(at)
                        .help("remove the comment, or put it on the line of the finding or the line before"),
                    );
                }
            }
        }
        findings.extend(extra);
        findings
    }

    /// A path the change touches but the gate did not read. Binary content in a file the gate
    /// would check and a symlink it cannot follow block: kubectl would apply something unseen.
    fn skipped_finding(&self, skipped: &Skipped) -> Finding {
        let finding = match skipped.kind {
            SkipKind::Binary if self.paths.is_checked(&skipped.path) => Finding::error(
                Rule::LoadBinary,
                "binary content (NUL bytes) in a file named like a manifest: kubectl would try to apply it",
            )
            .help("store manifests as UTF-8 text, or exclude the file in .stategate.yaml"),
            SkipKind::Symlink => Finding::error(Rule::LoadSymlink, skipped.reason.clone())
                .help("point the link at a file inside the repository, or replace it with the file"),
            _ => Finding::note(Rule::LoadSkipped, format!("not checked: {}", skipped.reason)),
        };
        finding.in_file(&skipped.path)
    }

    /// Document policies on every checked document, in parallel, with `data.stategate.file`.
    fn check_policies(
        &self,
        change: &ChangeSet,
        documents: &[Document],
        patches: &PatchIndex,
        options: &LoadOptions,
        rendered: &HashMap<String, RenderedContext>,
    ) -> Vec<Finding> {
        {
            let mut policies = self.policies.write().unwrap_or_else(|p| p.into_inner());
            if policies.document_rule_count() == 0 {
                return policies.notes().to_vec();
            }
            policies.set_inventory(documents);
        }
        let policies = self.policies();
        let before = BeforeIndex::new(change, options);
        let mut findings = policies.notes().to_vec();
        findings.par_extend(
            documents
                .par_iter()
                .filter(|doc| !patches.is_patch(doc.path()))
                .flat_map_iter(|doc| {
                    let ctx = match rendered.get(doc.path()) {
                        Some(r) => r.context(self, doc.path()),
                        None => FileContext {
                            path: doc.path().to_owned(),
                            environment: self.environment_of(doc.path()).map(str::to_owned),
                            action: before.action(doc.path()),
                            before: before.object(doc),
                        },
                    };
                    policies.check_document(doc, &ctx)
                }),
        );
        findings
    }

    /// Objects that the `render.kustomize` directories touched by the change render to at head, as
    /// documents for the schema and policy checks: a change to a base is judged in every overlay
    /// that uses it, in the overlay's environment. Each overlay is rendered at the base side too,
    /// so an overlay whose objects change is known as changed. Rendering is opt-in (listed
    /// directories only) because it runs an external program per directory and side.
    fn render_changed(
        &self,
        change: &ChangeSet,
        head: &dyn Tree,
        findings: &mut Vec<Finding>,
        options: &LoadOptions,
    ) -> RenderedChange {
        let mut out = RenderedChange::default();
        let listed = &self.config.render.kustomize;
        let Ok(explicit) = glob_set(listed) else {
            return out;
        };
        if listed.is_empty() {
            return out;
        }
        let graph = KustomizeGraph::build(head);
        let roots: BTreeSet<String> = change
            .files
            .iter()
            .flat_map(|f| {
                let old = f
                    .old_path
                    .iter()
                    .flat_map(|p| graph.roots_for(p, &explicit));
                graph.roots_for(&f.path, &explicit).into_iter().chain(old)
            })
            .filter(|dir| explicit.is_match(dir))
            .collect();
        if roots.is_empty() {
            return out;
        }
        let base = PatchedTree::new(head, before_images(change), "the change's base");
        let command = kustomize_command(&self.config.render);
        let rendered = render_both_sides(&base, head, &roots, &command);
        findings.extend(rendered.findings);
        for overlay in rendered.overlays {
            if overlay.changed {
                out.impacted.push(overlay.file.clone());
            }
            for (index, object) in overlay.objects.iter().enumerate() {
                let Some(doc) = rendered_document(&overlay.dir, index, object, options) else {
                    continue;
                };
                let before = match doc.id() {
                    id @ ObjectId::Kube { .. } => overlay.before.get(&id).cloned(),
                    ObjectId::Document { .. } => None,
                };
                // An object the change does not alter is not the change's to answer for: a
                // sibling rendered from the same overlay must not block an unrelated edit.
                if before.as_ref() == Some(object) {
                    out.unchanged += 1;
                    continue;
                }
                if let Some(base_object) = &before
                    && let Some(base_doc) =
                        rendered_document(&overlay.dir, index, base_object, options)
                {
                    out.base.contexts.insert(
                        base_doc.path().to_owned(),
                        RenderedContext {
                            file: overlay.file.clone(),
                            origin: None,
                            before: None,
                        },
                    );
                    out.base.documents.push(base_doc);
                }
                out.contexts.insert(
                    doc.path().to_owned(),
                    RenderedContext {
                        file: overlay.file.clone(),
                        origin: overlay.origins.get(index).cloned().flatten(),
                        before,
                    },
                );
                out.documents.push(doc);
            }
        }
        out
    }

    /// The changed files whose content is checked: included, not excluded, not deleted, not Helm
    /// templates. The rest stay in the change set for path rules.
    fn select<'c>(
        &self,
        change: &'c ChangeSet,
        head: &dyn Tree,
        findings: &mut Vec<Finding>,
    ) -> Vec<&'c FileChange> {
        let mut selected = Vec::new();
        for file in &change.files {
            if file.action == Action::Deleted
                || !self.paths.is_checked(&file.path)
                || is_tool_config(&file.path)
            {
                continue;
            }
            let text = file.after.as_deref().unwrap_or_default();
            if looks_like_helm_template(&file.path, text, head) {
                findings.push(
                    Finding::note(
                        Rule::LoadSkipped,
                        "Helm template: not YAML until rendered, not checked",
                    )
                    .in_file(&file.path)
                    .help("list the chart under `render.helm` to check what it renders"),
                );
                continue;
            }
            selected.push(file);
        }
        selected
    }

    /// The schemas that judge these documents: embedded Kubernetes schemas, CRDs in the change,
    /// and the trusted base's CRDs for the kinds still uncovered. The base is searched only when a
    /// document needs it, so a push of plain Deployments never reads the repository's CRDs.
    fn schemas(
        &self,
        documents: &[Document],
        options: &LoadOptions,
    ) -> Result<SchemaSet, Vec<Finding>> {
        let in_change: Vec<Document> = documents.iter().filter(|d| is_crd(d)).cloned().collect();
        let mut schemas = SchemaSet::build(&self.config.schemas, self.trusted(), &in_change)?;
        let uncovered: BTreeSet<&str> = documents
            .iter()
            .filter_map(|d| Some((d.api_version()?, d.kind()?)))
            .filter(|(api_version, kind)| !schemas.covers(api_version, kind))
            .map(|(_, kind)| kind)
            .collect();
        if !uncovered.is_empty() {
            let changed: BTreeSet<&str> = documents.iter().map(|d| d.path()).collect();
            schemas.add_crds(&self.base_crds(&uncovered, &changed, options));
        }
        Ok(schemas)
    }

    /// CRDs of the trusted base that define one of `kinds`: from `schemas.crds` globs, or files
    /// named like CRDs. Files are filtered on their bytes before any is parsed.
    fn base_crds(
        &self,
        kinds: &BTreeSet<&str>,
        changed: &BTreeSet<&str>,
        options: &LoadOptions,
    ) -> Vec<Document> {
        let globs = if self.config.schemas.crds.is_empty() {
            DEFAULT_CRD_GLOBS.iter().map(|g| g.to_string()).collect()
        } else {
            self.config.schemas.crds.clone()
        };
        let Ok(set) = glob_set(&globs) else {
            return Vec::new();
        };
        // The kind's name appears in its CRD (`names.kind`) whether it is YAML or JSON.
        let needles: Vec<&str> = kinds.iter().copied().collect();
        let candidates: BTreeSet<String> = literal_prefixes(&globs)
            .iter()
            .flat_map(|prefix| self.trusted.files_under(prefix))
            .filter(|path| set.is_match(path) && !changed.contains(path.as_str()))
            .collect();
        candidates
            .par_iter()
            .filter_map(|path| self.trusted.read(path).map(|bytes| (path, bytes)))
            .filter(|(_, bytes)| {
                contains(bytes, b"CustomResourceDefinition")
                    && needles.iter().any(|n| contains(bytes, n.as_bytes()))
            })
            .flat_map_iter(|(path, bytes)| load_manifest(path, &bytes, options).documents)
            .filter(is_crd)
            .collect()
    }
}

/// What a change reaches: the paths that approval rules and environments judge it by.
#[derive(Debug, Default, Clone)]
pub struct Impact {
    /// The changed paths (both sides of a rename), plus the kustomization file of every rendered
    /// overlay whose objects the change alters (`clusters/prod/kustomization.yaml` for an edit
    /// of a base that prod uses).
    pub paths: BTreeSet<String>,
}

impl Impact {
    fn of(change: &ChangeSet, overlays: &[String]) -> Impact {
        let mut paths: BTreeSet<String> = change
            .files
            .iter()
            .flat_map(|f| std::iter::once(f.path.clone()).chain(f.old_path.clone()))
            .collect();
        paths.extend(overlays.iter().cloned());
        Impact { paths }
    }
}

/// The rendered overlays' objects as documents, and what the checks need to know about each.
#[derive(Default)]
struct RenderedChange {
    documents: Vec<Document>,
    /// Document path → its overlay.
    contexts: HashMap<String, RenderedContext>,
    /// Kustomization files of overlays whose objects the change alters.
    impacted: Vec<String>,
    /// The altered objects as rendered at the base, to tell pre-existing findings from new ones.
    base: RenderedBase,
    /// Rendered objects identical at base and head, not judged again.
    unchanged: usize,
}

/// The altered rendered objects at the base side, with their overlays.
#[derive(Default)]
struct RenderedBase {
    documents: Vec<Document>,
    contexts: HashMap<String, RenderedContext>,
}

/// One side of a change, checked.
struct Judged {
    findings: Vec<Finding>,
    documents: Vec<Document>,
    sources: BTreeMap<String, Arc<SourceFile>>,
    flux_secrets: BTreeSet<String>,
    stats: Stats,
}

/// A SOPS-encrypted document as Flux's kustomize-controller applies it: without its top-level
/// `sops` block (`mac` plus `lastmodified` or `version`). Returns the `ENC[...]` ciphertexts,
/// which stay opaque strings and are masked like Secret values.
fn as_decrypted(value: &mut serde_json::Value) -> Vec<String> {
    let is_sops = value.get("sops").is_some_and(|sops| {
        sops.get("mac").is_some()
            && (sops.get("lastmodified").is_some() || sops.get("version").is_some())
    });
    if !is_sops {
        return Vec::new();
    }
    if let Some(map) = value.as_object_mut() {
        map.remove("sops");
    }
    let mut ciphertexts = Vec::new();
    collect_ciphertexts(value, &mut ciphertexts);
    ciphertexts
}

fn collect_ciphertexts(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::String(s) if s.starts_with("ENC[") && s.ends_with(']') => {
            out.push(s.clone());
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_ciphertexts(v, out)),
        serde_json::Value::Object(map) => map.values().for_each(|v| collect_ciphertexts(v, out)),
        _ => {}
    }
}

/// Findings on rendered objects, moved to the file and line a human edits: the resource file
/// (kustomize's origin annotation) where the offending value is as rendered there, else the
/// overlay's kustomization, whose fields or patches set it. The same rule on the same value found
/// through the source document and the rendered object is one finding, naming both.
fn at_sources(
    findings: Vec<Finding>,
    documents: &[Document],
    contexts: &HashMap<String, RenderedContext>,
    tree: &dyn Tree,
    options: &LoadOptions,
) -> Vec<Finding> {
    if contexts.is_empty() {
        return findings;
    }
    let rendered: HashMap<&str, &Document> = documents
        .iter()
        .filter(|d| contexts.contains_key(d.path()))
        .map(|d| (d.path(), d))
        .collect();
    let mut sources: HashMap<String, Vec<Document>> = HashMap::new();
    let mut out: Vec<Finding> = Vec::with_capacity(findings.len());
    let mut seen: HashMap<(Rule, String, String, Option<u32>), usize> = HashMap::new();
    let none = HashMap::new();
    // Source documents' findings first, so a rendered duplicate folds into them.
    let (from_rendered, direct): (Vec<Finding>, Vec<Finding>) =
        findings.into_iter().partition(|f| {
            f.location
                .as_ref()
                .is_some_and(|l| contexts.contains_key(l.file.as_str()))
        });
    for finding in direct.into_iter().chain(from_rendered) {
        let finding = match finding.location.as_ref().map(|l| l.file.clone()) {
            Some(shown) if contexts.contains_key(shown.as_str()) => {
                let context = &contexts[shown.as_str()];
                let doc = rendered.get(shown.as_str()).copied();
                let mut docs_of = |path: &str| -> Vec<Document> {
                    sources
                        .entry(path.to_owned())
                        .or_insert_with(|| {
                            tree.read(path)
                                .map(|bytes| load_manifest(path, &bytes, options).documents)
                                .unwrap_or_default()
                        })
                        .clone()
                };
                let field = finding.field.as_deref();
                // The resource file first, then the overlay's patches: the first that holds the
                // value as rendered wrote it.
                let files = context.origin.iter().cloned().chain(kustomization_lists(
                    tree,
                    parent(&context.file),
                    PATCH_FIELDS,
                ));
                let place = doc.and_then(|doc| {
                    files
                        .into_iter()
                        .find_map(|file| source_location(&docs_of(&file), doc, field))
                });
                let location = place.unwrap_or_else(|| Location::file(context.file.clone()));
                finding.at(location).with_meta("rendered", shown)
            }
            _ => finding,
        };
        let at = finding
            .location
            .as_ref()
            .map(|l| (l.file.clone(), l.line))
            .unwrap_or_default();
        // Not the object: kustomize may have set its namespace or prefixed its name.
        let FindingKey { rule, detail, .. } = FindingKey::of(&finding, &none);
        let key = (rule, detail, at.0, at.1);
        match seen.get(&key) {
            Some(&kept) => {
                if let Some(shown) = finding.metadata.get("rendered").cloned() {
                    out[kept].metadata.insert("rendered".to_owned(), shown);
                }
            }
            None => {
                seen.insert(key, out.len());
                out.push(finding);
            }
        }
    }
    out
}

/// Where `field` of the rendered `doc` is written in its origin file: the same object there (kind
/// and name) holding the same value at the same field. `None` when the file does not hold it as
/// rendered: a kustomization field or a patch set it.
fn source_location(
    sources: &[Document],
    rendered: &Document,
    field: Option<&str>,
) -> Option<Location> {
    let same_object = |d: &&Document| {
        d.kind() == rendered.kind()
            && d.value.pointer("/metadata/name") == rendered.value.pointer("/metadata/name")
    };
    let source = sources.iter().find(same_object)?;
    let pointer = field.unwrap_or("");
    if pointer.is_empty() {
        return Some(source.locate(""));
    }
    match (
        source.value.pointer(pointer),
        rendered.value.pointer(pointer),
    ) {
        (Some(a), Some(b)) if a == b => Some(source.locate(pointer)),
        _ => None,
    }
}

/// The base side of a change as a change of its own: every touched file as it was at the base,
/// as if added (no `before`), so that judging it finds what the base already had.
fn base_side(change: &ChangeSet) -> ChangeSet {
    let files = change
        .files
        .iter()
        .filter(|f| f.action != Action::Deleted)
        .filter_map(|f| {
            Some(FileChange {
                path: f.old_path.clone().unwrap_or_else(|| f.path.clone()),
                action: Action::Added,
                old_path: None,
                before: None,
                after: Some(f.before.clone()?),
            })
        })
        .collect();
    ChangeSet {
        base: None,
        head: change.base.clone(),
        files,
        skipped: Vec::new(),
    }
}

/// Old path → new path of the change's renames, so a document keeps its identity across one.
fn renamed_paths(change: &ChangeSet) -> HashMap<String, String> {
    change
        .files
        .iter()
        .filter_map(|f| Some((f.old_path.clone()?, f.path.clone())))
        .collect()
}

/// What makes a finding at head "the same" as one at the base: the rule, what it is about (the
/// object, or the file for findings on no object) and where in it (the field, or for checks that
/// do not say, the policy rule and message).
#[derive(Debug, PartialEq, Eq, Hash)]
struct FindingKey {
    rule: Rule,
    subject: String,
    detail: String,
}

impl FindingKey {
    fn of(finding: &Finding, renames: &HashMap<String, String>) -> FindingKey {
        let renamed = |path: &str| {
            renames
                .get(path)
                .cloned()
                .unwrap_or_else(|| path.to_owned())
        };
        let subject = match &finding.object {
            Some(ObjectId::Document { path, index }) => format!("{}#{index}", renamed(path)),
            Some(id) => id.to_string(),
            None => finding
                .location
                .as_ref()
                .map(|l| renamed(&l.file))
                .unwrap_or_default(),
        };
        let detail = match &finding.field {
            Some(field) => field.clone(),
            None => {
                let meta = |key: &str| {
                    finding
                        .metadata
                        .get(key)
                        .map(|v| v.to_string())
                        .unwrap_or_default()
                };
                format!("{}/{}: {}", meta("package"), meta("rule"), finding.message)
            }
        };
        FindingKey {
            rule: finding.rule,
            subject,
            detail,
        }
    }
}

/// A rendered object is judged as part of its overlay: the overlay's kustomization file decides
/// its environment, and the same object rendered at the base is its `before`.
struct RenderedContext {
    file: String,
    /// The repository file the object came from, where kustomize says.
    origin: Option<String>,
    before: Option<serde_json::Value>,
}

impl RenderedContext {
    fn context(&self, gate: &Gate, path: &str) -> FileContext {
        FileContext {
            path: path.to_owned(),
            environment: gate.environment_of(&self.file).map(str::to_owned),
            action: if self.before.is_some() {
                Action::Modified
            } else {
                Action::Added
            },
            before: self.before.clone(),
        }
    }
}

/// The change's files as they were at the base (`None`: absent there), over the head tree.
fn before_images(change: &ChangeSet) -> BTreeMap<String, Option<Vec<u8>>> {
    let mut files = BTreeMap::new();
    for file in &change.files {
        match &file.old_path {
            Some(old) => {
                files.insert(file.path.clone(), None);
                files.insert(old.clone(), file.before.clone());
            }
            None => {
                files.insert(file.path.clone(), file.before.clone());
            }
        }
    }
    files
}

/// A rendered object as a document of its own: pretty JSON under a path that says where it came
/// from, so findings point at a line of something the reader can see.
fn rendered_document(
    dir: &str,
    index: usize,
    value: &serde_json::Value,
    options: &LoadOptions,
) -> Option<Document> {
    let text = serde_json::to_string_pretty(value).ok()?;
    let id = ObjectId::of(value, dir, index);
    let shown = if dir.is_empty() { "." } else { dir };
    let path = format!("{shown} (rendered by kustomize: {id})");
    load_file(&path, text.as_bytes(), options)
        .documents
        .into_iter()
        .next()
}

/// The base side of changed files, for `data.stategate.file.before`: the same object at the base.
struct BeforeIndex {
    actions: HashMap<String, Action>,
    objects: HashMap<ObjectId, serde_json::Value>,
}

impl BeforeIndex {
    fn new(change: &ChangeSet, options: &LoadOptions) -> BeforeIndex {
        let actions = change
            .files
            .iter()
            .map(|f| (f.path.clone(), f.action))
            .collect();
        let objects = change
            .files
            .par_iter()
            .filter(|f| matches!(f.action, Action::Modified | Action::Renamed))
            .filter_map(|f| {
                let path = f.old_path.as_deref().unwrap_or(&f.path);
                Some(load_manifest(path, f.before.as_deref()?, options).documents)
            })
            .flatten_iter()
            .map(|doc| (doc.id(), doc.value))
            .collect();
        BeforeIndex { actions, objects }
    }

    fn action(&self, path: &str) -> Action {
        self.actions.get(path).copied().unwrap_or(Action::Added)
    }

    fn object(&self, doc: &Document) -> Option<serde_json::Value> {
        match doc.id() {
            id @ ObjectId::Kube { .. } => self.objects.get(&id).cloned(),
            ObjectId::Document { .. } => None,
        }
    }
}

/// A policy set that does not compile: the findings point into the policy files.
fn policy_report(findings: Vec<Finding>, trusted: &dyn Tree) -> Report {
    let mut sources = BTreeMap::new();
    for finding in &findings {
        if let Some(location) = &finding.location
            && let Some(bytes) = trusted.read(&location.file)
        {
            let text = String::from_utf8_lossy(&bytes).into_owned();
            sources.insert(
                location.file.clone(),
                Arc::new(SourceFile::new(location.file.clone(), text)),
            );
        }
    }
    report_of(findings, sources)
}

/// stategate's own config is judged when the gate opens, not as desired state. Only the root file
/// is the config; a file of that name elsewhere is a manifest like any other.
fn is_tool_config(path: &str) -> bool {
    path == CONFIG_FILE
}

/// kustomize's build instructions are not cluster objects and have no published schema.
fn is_kustomize_file(doc: &Document) -> bool {
    doc.api_version()
        .is_some_and(|v| v.starts_with("kustomize.config.k8s.io/"))
}

/// Without `schemas.crds`, CRDs in the base are found by where people keep them; reading every file
/// of a 50,000-file repository on each push would cost the hook its time budget.
pub(crate) const DEFAULT_CRD_GLOBS: &[&str] = &[
    "**/crds/**",
    "**/*crd*.yaml",
    "**/*crd*.yml",
    "**/*crd*.json",
];

fn is_crd(doc: &Document) -> bool {
    doc.kind() == Some("CustomResourceDefinition")
        && doc
            .api_version()
            .is_some_and(|v| v.starts_with("apiextensions.k8s.io/"))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A chart template: inside a chart of the judged tree, with template syntax outside comments.
fn looks_like_helm_template(path: &str, bytes: &[u8], head: &dyn Tree) -> bool {
    let chart_at = |dir: &str| {
        let chart = if dir.is_empty() {
            "Chart.yaml".to_owned()
        } else {
            format!("{dir}/Chart.yaml")
        };
        head.read(&chart).is_some()
    };
    std::str::from_utf8(bytes).is_ok_and(|text| is_chart_template(path, text, chart_at))
}

/// The directories a glob can match under, so only they are listed: `crds/**/*.yaml` → `crds`.
fn literal_prefixes(globs: &[String]) -> Vec<String> {
    let mut prefixes: Vec<String> = globs
        .iter()
        .map(|glob| {
            let literal: Vec<&str> = glob
                .split('/')
                .take_while(|part| !part.contains(['*', '?', '[', '{']))
                .collect();
            // The last literal part may be the file itself; listing its parent is enough.
            let dirs = if literal.len() == glob.split('/').count() {
                &literal[..literal.len().saturating_sub(1)]
            } else {
                &literal[..]
            };
            dirs.join("/")
        })
        .collect();
    prefixes.sort();
    prefixes.dedup();
    if prefixes.iter().any(String::is_empty) {
        return vec![String::new()];
    }
    prefixes
}

fn report_of(findings: Vec<Finding>, sources: BTreeMap<String, Arc<SourceFile>>) -> Report {
    Report {
        findings,
        sources,
        ..Report::default()
    }
}

/// `rules:` of the config, globs compiled: what each rule's findings become, per path.
struct RuleLevels {
    rules: Vec<(String, Vec<ScopedLevel>)>,
}

/// A level, and the files it applies to (`None`: every file).
type ScopedLevel = (Level, Option<globset::GlobSet>);

impl RuleLevels {
    fn new(config: &Config) -> Result<RuleLevels, Box<Finding>> {
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
    fn apply(&self, findings: Vec<Finding>) -> Vec<Finding> {
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

/// Files that kustomizations list as patches: partial objects, not validated as whole ones.
/// Patches are looked up in the kustomizations of the changed files' own and ancestor directories,
/// which is where they are declared in practice, and keeps a one-file push from reading the whole
/// repository. A file that any kustomization of the tree also lists as a resource is applied as a
/// whole object, so it is no patch here: only when a changed file is a patch candidate are all
/// kustomizations read to rule that out.
struct PatchIndex {
    patches: BTreeSet<String>,
}

impl PatchIndex {
    fn build<'p>(head: &dyn Tree, changed: impl Iterator<Item = &'p str>) -> PatchIndex {
        let mut dirs = BTreeSet::new();
        for path in changed {
            let mut dir = parent(path);
            loop {
                if !dirs.insert(dir.to_owned()) {
                    break;
                }
                if dir.is_empty() {
                    break;
                }
                dir = parent(dir);
            }
        }
        let mut patches: BTreeSet<String> = dirs
            .iter()
            .flat_map(|dir| kustomization_lists(head, dir, PATCH_FIELDS))
            .collect();
        if !patches.is_empty() {
            for resource in all_resources(head) {
                patches.remove(&resource);
            }
        }
        PatchIndex { patches }
    }

    fn is_patch(&self, path: &str) -> bool {
        self.patches.contains(path)
    }
}

fn parent(path: &str) -> &str {
    path.rfind('/').map_or("", |i| &path[..i])
}

const KUSTOMIZATION_FILES: &[&str] = &["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// Fields whose entries (strings, or items with a `path`) name patch files.
const PATCH_FIELDS: &[&str] = &["patchesStrategicMerge", "patches", "patchesJson6902"];
/// Fields whose entries name files kustomize loads as whole objects.
const RESOURCE_FIELDS: &[&str] = &["resources", "bases"];

/// Every file that a kustomization anywhere in `head` lists as a resource.
fn all_resources(head: &dyn Tree) -> BTreeSet<String> {
    head.files_under("")
        .iter()
        .filter_map(|path| {
            let name = path.rsplit('/').next()?;
            KUSTOMIZATION_FILES
                .contains(&name)
                .then(|| parent(path).to_owned())
        })
        .collect::<BTreeSet<_>>()
        .iter()
        .flat_map(|dir| kustomization_lists(head, dir, RESOURCE_FIELDS))
        .collect()
}

/// The files listed under `fields` by the kustomization in `dir`, resolved against it.
fn kustomization_lists(head: &dyn Tree, dir: &str, fields: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for name in KUSTOMIZATION_FILES {
        let path = if dir.is_empty() {
            (*name).to_owned()
        } else {
            format!("{dir}/{name}")
        };
        let Some(bytes) = head.read(&path) else {
            continue;
        };
        let loaded = load_file(&path, &bytes, &LoadOptions::default());
        for doc in &loaded.documents {
            for listed in listed_paths(&doc.value, fields) {
                if let Some(resolved) = join(dir, &listed) {
                    out.push(resolved);
                }
            }
        }
    }
    out
}

/// `patchesStrategicMerge: [file]`, `patches: [{path: file}]`, `resources: [file]`, …
fn listed_paths(kustomization: &serde_json::Value, fields: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for key in fields {
        let Some(items) = kustomization.get(key).and_then(|v| v.as_array()) else {
            continue;
        };
        for item in items {
            let path = item
                .as_str()
                .or_else(|| item.get("path").and_then(|p| p.as_str()));
            // An inline patch is YAML text with a newline, not a file name.
            if let Some(path) = path.filter(|p| !p.contains('\n')) {
                out.push(path.to_owned());
            }
        }
    }
    out
}

/// `dir` + a relative path, with `.` and `..` resolved; `None` if it leaves the repository.
fn join(dir: &str, relative: &str) -> Option<String> {
    let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
    for part in relative.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            other => parts.push(other),
        }
    }
    Some(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn patch_paths_are_read_from_all_three_fields() {
        let k = json!({
            "patchesStrategicMerge": ["a.yaml"],
            "patches": [{"path": "b.yaml"}, {"patch": "- op: x\n"}, {"path": "../c.yaml"}],
            "patchesJson6902": [{"path": "d.yaml"}]
        });
        assert_eq!(
            listed_paths(&k, PATCH_FIELDS),
            vec!["a.yaml", "b.yaml", "../c.yaml", "d.yaml"]
        );
    }

    #[test]
    fn relative_paths_are_joined_and_cannot_escape() {
        assert_eq!(
            join("apps/prod", "../base/p.yaml").as_deref(),
            Some("apps/base/p.yaml")
        );
        assert_eq!(join("", "./p.yaml").as_deref(), Some("p.yaml"));
        assert_eq!(join("a", "../../p.yaml"), None);
    }

    #[test]
    fn only_the_literal_directories_of_globs_are_listed() {
        let globs = vec!["crds/**/*.yaml".to_owned(), "infra/crds/x.yaml".to_owned()];
        assert_eq!(literal_prefixes(&globs), vec!["crds", "infra/crds"]);
        assert_eq!(literal_prefixes(&["**/crds/**".to_owned()]), vec![""]);
    }
}
