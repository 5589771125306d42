//! The engine every front door shares: given the trusted base and a change, run the stages and
//! collect a [`Report`].
//!
//! Trust rule: config, schemas, CRDs from the base and policies all come from `trusted`, never from
//! the change under review; only the changed files themselves come from the head side.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, RwLock};

use globset::{Glob, GlobSet, GlobSetBuilder};
use rayon::prelude::*;

use crate::change::{Action, ChangeSet, FileChange, SkipKind, Skipped};
use crate::config::{CONFIG_FILE, Config, parse_config};
use crate::finding::{Finding, Rule};
use crate::load::{
    Document, LoadOptions, Loaded, SourceFile, is_chart_template, load_file, load_manifest,
};
use crate::object::ObjectId;
use crate::policy::{FileContext, PolicySet};
use crate::render::cache::{DEFAULT_MAX_BYTES, RenderCache};
use crate::render::flux;
use crate::render::overlays::{PatchedTree, render_both_sides};
use crate::render::{KustomizeGraph, kustomize_command};
use crate::report::{Report, Secrets, Stats};
use crate::schema::SchemaSet;
use crate::tree::Tree;

mod stream;

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

/// The rules of one run, read once from the trusted base.
pub struct Gate {
    pub config: Config,
    pub origin: ConfigOrigin,
    trusted: Box<dyn Tree>,
    paths: PathRules,
    /// Compiled once per run; behind a lock only because Gatekeeper's inventory is set per check.
    policies: RwLock<PolicySet>,
    /// Where kustomize renders are cached, if anywhere.
    render_cache: Option<RenderCache>,
}

impl Gate {
    /// Read the config from `--config FILE` or from `.stategate.yaml` in the trusted tree.
    /// An invalid config is a set of `config/invalid` findings: the caller exits 2.
    pub fn open(trusted: Box<dyn Tree>, config_file: Option<&Path>) -> Result<Gate, Report> {
        let (config, origin) = read_config(trusted.as_ref(), config_file).map_err(|r| *r)?;
        let paths = PathRules::new(&config).map_err(|f| report_of(vec![*f], BTreeMap::new()))?;
        let policies = PolicySet::load(&config.policies, trusted.as_ref())
            .map_err(|findings| policy_report(findings, trusted.as_ref()))?;
        Ok(Gate {
            config,
            origin,
            trusted,
            paths,
            policies: RwLock::new(policies),
            render_cache: None,
        })
    }

    /// Cache kustomize renders in `dir` (see [`crate::render::cache`]); `None` renders uncached.
    pub fn with_render_cache(mut self, dir: Option<std::path::PathBuf>) -> Gate {
        self.render_cache = dir.and_then(|dir| RenderCache::open(dir, DEFAULT_MAX_BYTES));
        self
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
        let mut findings = Vec::new();
        let mut stats = Stats::default();
        findings.extend(change.skipped.iter().map(|s| self.skipped_finding(s)));
        let selected = self.select(change, head, &mut findings);
        stats.files = selected.len();
        stats.skipped = change.skipped.len();
        let options = self.config.load_options();

        // CRD files first: the schemas the stream validates against depend on them.
        let early: Vec<Option<Loaded>> = selected
            .par_iter()
            .map(|file| {
                let bytes = file.after.as_deref().unwrap_or_default();
                stream::may_define_crds(bytes).then(|| stream::load(file, &options))
            })
            .collect();
        let crds: Vec<Document> = early
            .iter()
            .flatten()
            .flat_map(|loaded| loaded.documents.iter().filter(|d| is_crd(d)).cloned())
            .collect();
        // A CRD that Flux substitutes is only known after substitution, which needs every file.
        let substituted_crd = crds.iter().any(|d| d.source.text.contains("${"));
        let policies = self.policies();
        // The base side of the change is read only for policies, which see it as `before`.
        let before = if policies.document_rule_count() > 0 {
            BeforeIndex::new(change, &options)
        } else {
            BeforeIndex::default()
        };
        let schemas = stream::LazySchemas::new();
        let stream = stream::Stream {
            gate: self,
            policies: &policies,
            before: &before,
            schemas: &schemas,
            crds: &crds,
            hold_all: policies.needs_inventory() || substituted_crd,
        };
        let outcomes: Vec<stream::Outcome> = selected
            .par_iter()
            .zip(early.into_par_iter())
            .enumerate()
            .map(|(index, (file, early))| {
                let loaded = early.unwrap_or_else(|| stream::load(file, &options));
                stream.judge(index, &file.path, loaded)
            })
            .collect();
        drop(policies);

        let mut sources = BTreeMap::new();
        let mut documents = Vec::new();
        let mut judged = Vec::new();
        let mut deferred = Vec::new();
        for outcome in outcomes {
            match outcome {
                stream::Outcome::Held(loaded) => {
                    if let Some(source) = &loaded.source
                        && !loaded.findings.is_empty()
                    {
                        sources.insert(source.path.clone(), Arc::clone(source));
                    }
                    findings.extend(loaded.findings);
                    documents.extend(loaded.documents);
                }
                stream::Outcome::Judged(mut file) => {
                    findings.append(&mut file.load);
                    judged.push(file);
                }
                // Its load findings come again when it is judged.
                stream::Outcome::Deferred(file) => deferred.push(file),
            }
        }
        let rendered = self.render_changed(change, head, &mut findings, &options);
        let impact = Impact::of(change, &rendered.impacted);
        documents.extend(rendered.documents);
        // Flux applies objects after its post-build substitution: judge those.
        let flux_path = |path: &str| {
            rendered
                .contexts
                .get(path)
                .map_or_else(|| path.to_owned(), |r| r.file.clone())
        };
        let changed: BTreeSet<&str> = change.files.iter().map(|f| f.path.as_str()).collect();
        let (flux_findings, flux_secrets) =
            flux::substitute_documents(head, &changed, &mut documents, &flux_path, &options);
        findings.extend(flux_findings);
        stats.documents = documents.len() + judged.iter().map(|f| f.documents).sum::<usize>();
        // Flux may have brought in objects beyond the changed files: know their patches too.
        let deferred_paths: BTreeSet<&str> = deferred
            .iter()
            .map(|d| selected[d.index].path.as_str())
            .collect();
        let streamed = judged
            .iter()
            .filter(|f| f.documents > 0)
            .map(|f| f.path.as_str())
            .chain(deferred_paths.iter().copied());
        let held = documents.iter().map(|d| d.path());
        let patches = PatchIndex::build(
            head,
            streamed
                .chain(held)
                .filter(|p| !rendered.contexts.contains_key(*p)),
        );
        let mut judged: Vec<stream::Judged> = judged
            .into_iter()
            .filter(|f| !patches.is_patch(&f.path))
            .collect();

        // Nothing to validate: do not pay for decoding the embedded schemas.
        let schemas = match schemas.into_inner() {
            None if documents.is_empty() => None,
            None => Some(SchemaSet::build(
                &self.config.schemas,
                self.trusted(),
                &documents
                    .iter()
                    .filter(|d| is_crd(d))
                    .cloned()
                    .collect::<Vec<_>>(),
            )),
            Some(built) => Some(built),
        };
        let mut final_schemas = None;
        match schemas {
            None => {}
            Some(Ok(mut schemas)) => {
                for file in &mut judged {
                    findings.append(&mut file.schema);
                }
                let mut streamed: BTreeSet<&str> = judged.iter().map(|f| f.path.as_str()).collect();
                streamed.extend(deferred_paths.iter().copied());
                let kinds: BTreeSet<&str> = deferred
                    .iter()
                    .flat_map(|d| d.kinds.iter().map(String::as_str))
                    .collect();
                self.add_base_crds(&mut schemas, &documents, &kinds, &streamed, &options);
                let schema_findings: Vec<Finding> = documents
                    .par_iter()
                    .filter(|doc| !patches.is_patch(doc.path()) && !is_kustomize_file(doc))
                    .flat_map_iter(|doc| schemas.check(doc))
                    .collect();
                findings.extend(schema_findings);
                final_schemas = Some(schemas);
            }
            Some(Err(errors)) => findings.extend(errors),
        }

        let mut policy_findings =
            self.check_policies(&before, &documents, &patches, &rendered.contexts);
        let notes = self.policies().notes().len().min(policy_findings.len());
        let held_findings = policy_findings.split_off(notes);
        findings.extend(policy_findings);
        for file in &mut judged {
            findings.append(&mut file.policy);
        }
        findings.extend(held_findings);

        // The deferred files, against the schemas with the base's CRDs: loaded again, judged,
        // dropped.
        if !deferred.is_empty() {
            let policies = self.policies();
            let unused = stream::LazySchemas::new();
            let late = stream::Stream {
                gate: self,
                policies: &policies,
                before: &before,
                schemas: &unused,
                crds: &[],
                hold_all: false,
            };
            let mut files: Vec<stream::Judged> = deferred
                .par_iter()
                .map(|d| {
                    let file = selected[d.index];
                    late.judged(
                        &file.path,
                        stream::load(file, &options),
                        final_schemas.as_ref(),
                    )
                })
                .filter(|f| !patches.is_patch(&f.path))
                .collect();
            for file in &mut files {
                stats.documents += file.documents;
                findings.append(&mut file.load);
                findings.append(&mut file.schema);
                findings.append(&mut file.policy);
            }
            judged.extend(files);
        }
        for file in judged {
            if let Some(source) = file.source {
                sources.insert(file.path, source);
            }
        }
        let cited: BTreeSet<&str> = findings
            .iter()
            .filter_map(|f| f.location.as_ref().map(|l| l.file.as_str()))
            .collect();
        for doc in documents.iter().filter(|d| cited.contains(d.path())) {
            sources
                .entry(doc.path().to_owned())
                .or_insert_with(|| Arc::clone(&doc.source));
        }
        let mut report = report_of(findings, sources);
        report.stats = stats;
        report.notes.push(self.origin.to_string());
        // Whatever a check quoted (a policy printing `input.data.password`), no format prints a
        // Secret's value, nor a value Flux substituted from a Secret. Files with Secret values are
        // held (see `stream`), so the held documents carry all of them.
        let mut secrets = Secrets::default();
        documents.iter().for_each(|doc| secrets.collect(&doc.value));
        flux_secrets.iter().for_each(|value| secrets.insert(value));
        report.redact(&secrets);
        (report, impact)
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

    /// `data.stategate.file` of a document of a changed file.
    fn file_context(&self, before: &BeforeIndex, doc: &Document) -> FileContext {
        FileContext {
            path: doc.path().to_owned(),
            environment: self.environment_of(doc.path()).map(str::to_owned),
            action: before.action(doc.path()),
            before: before.object(doc),
        }
    }

    /// Document policies on every checked document, in parallel, with `data.stategate.file`.
    fn check_policies(
        &self,
        before: &BeforeIndex,
        documents: &[Document],
        patches: &PatchIndex,
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
        let mut findings = policies.notes().to_vec();
        findings.par_extend(
            documents
                .par_iter()
                .filter(|doc| !patches.is_patch(doc.path()))
                .flat_map_iter(|doc| {
                    let ctx = match rendered.get(doc.path()) {
                        Some(r) => r.context(self, doc.path()),
                        None => self.file_context(before, doc),
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
        let rendered = render_both_sides(&base, head, &roots, &command, self.render_cache.as_ref());
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
                out.contexts.insert(
                    doc.path().to_owned(),
                    RenderedContext {
                        file: overlay.file.clone(),
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

    /// The trusted base's CRDs for the kinds of the held documents no schema covers yet (every
    /// streamed document was covered). The base is searched only when a document needs it, so a
    /// push of plain Deployments never reads the repository's CRDs.
    fn add_base_crds(
        &self,
        schemas: &mut SchemaSet,
        documents: &[Document],
        deferred_kinds: &BTreeSet<&str>,
        streamed: &BTreeSet<&str>,
        options: &LoadOptions,
    ) {
        let mut uncovered: BTreeSet<&str> = documents
            .iter()
            .filter_map(|d| Some((d.api_version()?, d.kind()?)))
            .filter(|(api_version, kind)| !schemas.covers(api_version, kind))
            .map(|(_, kind)| kind)
            .collect();
        uncovered.extend(deferred_kinds);
        if !uncovered.is_empty() {
            let mut changed: BTreeSet<&str> = documents.iter().map(|d| d.path()).collect();
            changed.extend(streamed);
            schemas.add_crds(&self.base_crds(&uncovered, &changed, options));
        }
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
            .flat_map_iter(|(path, bytes)| load_file(path, &bytes, options).documents)
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
}

/// A rendered object is judged as part of its overlay: the overlay's kustomization file decides
/// its environment, and the same object rendered at the base is its `before`.
struct RenderedContext {
    file: String,
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
#[derive(Default)]
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
    memchr::memmem::find(haystack, needle).is_some()
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

pub(crate) fn glob_set(globs: &[String]) -> Result<GlobSet, globset::Error> {
    let mut builder = GlobSetBuilder::new();
    for glob in globs {
        builder.add(Glob::new(glob)?);
    }
    builder.build()
}

fn report_of(findings: Vec<Finding>, sources: BTreeMap<String, Arc<SourceFile>>) -> Report {
    Report {
        findings,
        sources,
        ..Report::default()
    }
}

fn read_config(
    trusted: &dyn Tree,
    config_file: Option<&Path>,
) -> Result<(Config, ConfigOrigin), Box<Report>> {
    let (name, text, origin) = match config_file {
        Some(path) => {
            let name = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|e| {
                Box::new(report_of(
                    vec![
                        Finding::error(Rule::ConfigInvalid, format!("cannot read config: {e}"))
                            .in_file(&name)
                            .help("check the path given to --config"),
                    ],
                    BTreeMap::new(),
                ))
            })?;
            (name.clone(), text, ConfigOrigin::File(name))
        }
        None => match crate::config::read_trusted(trusted) {
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
            Err(finding) => return Err(Box::new(report_of(vec![*finding], BTreeMap::new()))),
        },
    };
    match parse_config(&name, &text) {
        Ok(config) => Ok((config, origin)),
        Err(error) => {
            let source = Arc::new(SourceFile::new(name.clone(), text));
            Err(Box::new(report_of(
                error.findings,
                BTreeMap::from([(name, source)]),
            )))
        }
    }
}

/// Which paths are checked, and which environment each belongs to.
struct PathRules {
    include: GlobSet,
    exclude: GlobSet,
    environments: Vec<(String, GlobSet)>,
}

impl PathRules {
    fn new(config: &Config) -> Result<PathRules, Box<Finding>> {
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

    fn is_checked(&self, path: &str) -> bool {
        self.include.is_match(path) && !self.exclude.is_match(path)
    }

    fn environment_of(&self, path: &str) -> Option<&str> {
        self.environments
            .iter()
            .find(|(_, set)| set.is_match(path))
            .map(|(name, _)| name.as_str())
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
