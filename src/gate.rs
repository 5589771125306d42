//! The engine every front door shares: given the trusted base and a change, run the stages and
//! collect a [`Report`].
//!
//! Trust rule: config, schemas, CRDs from the base and policies all come from `trusted`, never from
//! the change under review; only the changed files themselves come from the head side.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use rayon::prelude::*;

use crate::change::{
    Action, ChangeSet, FileChange, PathLookup, SkipKind, Skipped, unreadable_finding,
};
use crate::config::{CONFIG_FILE, Config, ConfigOrigin, InlineSuppressions};
use crate::finding::{Finding, Location, Rule};
use crate::load::{Document, LoadOptions, SourceFile, is_chart_template, load_file, load_manifest};
use crate::object::ObjectId;
use crate::paths::{PathRules, glob_set};
use crate::policy::{FileContext, PolicySet};
use crate::render::cache::{DEFAULT_MAX_BYTES, RenderCache};
use crate::render::flux;
use crate::render::flux_patches::{self, Applied, FluxPatches};
use crate::render::graph::Kustomizations;
use crate::render::overlays::{PatchedTree, render_both_sides};
use crate::render::patches::PatchIndex;
use crate::render::scan_cache::{ScanCache, TreeListings};
use crate::render::target_namespace::TargetNamespaces;
use crate::render::{self, KustomizeGraph, kustomize_command};
use crate::report::levels::RuleLevels;
use crate::report::{CheckedFiles, Report, Secrets, Stats, saturating_u32};
use crate::schema::crd::{self, is_crd};
use crate::schema::{SchemaSet, crd_kinds, latest_crd_kinds};
use crate::suppress::{self, Suppression};
use crate::sync::{locked, unlocked};
use crate::tree::{Content, Tree};

mod pre_existing;
mod relocate;
mod selection;
mod stream;

pub use stream::worth_a_look;

use pre_existing::{FindingKey, base_side, renamed_paths};
use relocate::at_sources;
use selection::Selection;

/// The rules of one run, read once from the trusted base.
pub struct Gate {
    pub config: Config,
    pub origin: ConfigOrigin,
    trusted: Box<dyn Tree>,
    paths: PathRules,
    levels: RuleLevels,
    /// Compiled once per run; behind a lock only because Gatekeeper's inventory is set per check.
    policies: RwLock<PolicySet>,
    /// Where kustomize renders are cached, if anywhere.
    render_cache: Option<RenderCache>,
    /// What the whole-tree scan learnt of each blob, kept beside the renders.
    scan_cache: Option<ScanCache>,
    /// The trusted base's CRD files, by its tree id, kept beside the renders.
    tree_listings: Option<TreeListings>,
    /// The trusted base's CRD files ([`Gate::base_crd_files`]), once asked for.
    base_crd_files: OnceLock<Vec<String>>,
    /// Whether reports list every checked file ([`crate::report::Stats::checked`]).
    list_checked: bool,
    /// Whether reports keep the text of the files findings point into, to quote it.
    quote_sources: bool,
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
            render_cache: None,
            scan_cache: None,
            tree_listings: None,
            base_crd_files: OnceLock::new(),
            list_checked: true,
            quote_sources: true,
        })
    }

    /// Cache kustomize renders in `dir` (see [`crate::render::cache`]), and what the whole-tree
    /// scan learns of each blob ([`crate::render::scan_cache`]); `None` caches nothing.
    pub fn with_render_cache(mut self, dir: Option<std::path::PathBuf>) -> Gate {
        self.render_cache = dir.and_then(|dir| RenderCache::open(dir, DEFAULT_MAX_BYTES));
        let dir = self.render_cache.as_ref().map(RenderCache::dir);
        self.scan_cache = dir.map(ScanCache::open);
        self.tree_listings = dir.map(TreeListings::open);
        self
    }

    /// The files of the trusted base the CRD globs match ([`crd::glob_matches`]): listed once a
    /// run, and kept in the cache directory by the base's tree id, so a check against the same
    /// base as the last one does not walk it again.
    fn base_crd_files(&self) -> &[String] {
        self.base_crd_files.get_or_init(|| {
            let globs = crd::crd_globs(&self.config.schemas.crds);
            let cache = self.tree_listings.as_ref().zip(self.trusted.tree_id());
            if let Some((listings, tree)) = cache
                && let Some(paths) = listings.get(tree, &globs)
            {
                return paths;
            }
            let paths = crd::glob_matches(self.trusted(), &globs);
            if let Some((listings, tree)) = cache {
                listings.put(tree, &globs, &paths);
            }
            paths
        })
    }

    /// Whether reports list every checked file. Outputs that do not print the list
    /// ([`crate::report::Format::lists_checked_files`]) leave it out: it was a tenth of the peak
    /// of a 100,000-file check.
    pub fn with_checked_list(mut self, list: bool) -> Gate {
        self.list_checked = list;
        self
    }

    /// Whether reports keep the text of the files the stream judged with findings. Outputs that
    /// quote no source ([`crate::report::Format::quotes_sources`]) name the files only: the texts
    /// of the 1,000 files with a finding were 3 MB of a 100,000-file check's peak.
    pub fn with_quoted_sources(mut self, quote: bool) -> Gate {
        self.quote_sources = quote;
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
        let options = self.config.load_options();
        let mut findings: Vec<Finding> = change
            .skipped
            .iter()
            .map(|s| self.skipped_finding(s))
            .collect();
        let mut rendered = self.render_changed(change, head, &mut findings, &options);
        self.render_helm(change, head, &mut findings, &options, &mut rendered);
        // Known now, built at the end: it names every changed file, and is not needed meanwhile.
        let impacted = std::mem::take(&mut rendered.impacted);
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
        let findings = self.suppress(change, findings, &judged.commented);
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
        judged
            .helm_secrets
            .iter()
            .for_each(|value| secrets.insert(value));
        // Freed while the caller prints the report.
        crate::alloc::drop_aside(judged.documents);
        report.redact(&secrets);
        (
            report,
            Impact {
                overlays: impacted.into_iter().collect(),
            },
        )
    }

    /// Load, substitute and check one side of a change: the changed files' content in `change`
    /// (their `after`), plus the objects rendered for it, with `tree` as the side's repository.
    fn judge(
        &self,
        change: &ChangeSet,
        tree: &dyn Tree,
        mut rendered: RenderedChange,
        options: &LoadOptions,
    ) -> Judged {
        // What rendering freed goes back to the kernel here (change detection hands back its own),
        // and the stream's below. The first look's is not: the stream reuses it at once, and
        // handed back it was faulted in again, zeroed (corpus: 2,400 of 15,100 page faults, 7 ms
        // of 267, for 0.7 MiB more peak resident).
        crate::alloc::release_freed();
        let mut findings = Vec::new();
        let mut stats = Stats::default();
        // One read of every file first: Helm templates are set aside, CRD files loaded (the
        // schemas the stream validates against depend on them), and the manifests the
        // whole-tree indexes want kept. What it finds is kept for the few files that are not
        // plain, by their index among the selected files.
        let selected = self.select(change);
        let big = stream::big_files(&selected);
        // The scan of the rest of the tree for the whole-tree indexes runs beside it: its listing
        // of the tree is one thread's wait on the file system, which the other cores fill with
        // first looks (the corpus' second core was idle for it). It reads the files the first
        // look does not, Helm templates included.
        let read = selected.contains_path();
        // The files that may hold a source of Flux's substitution, as both reads see them (the
        // first look's by index among the selected files): Flux's index needs them after the
        // stream, and would read every manifest again to find them.
        let source_indices = Mutex::new(Vec::new());
        let charts = ChartDirs::new(tree);
        let (looked, scanned) = rayon::join(
            || {
                stream::sparse(selected.len(), &big, |index| {
                    let seen = |bytes: &[u8]| {
                        if flux::may_hold_source(bytes) {
                            locked(&source_indices).push(index);
                        }
                    };
                    let file = selected.get(index);
                    stream::first_look(file, &charts, options, &seen).unless_plain()
                })
            },
            || render::scan_manifests(tree, &|p| read.contains(p), self.scan_cache.as_ref()),
        );
        drop(read);
        if let Some(cache) = &self.scan_cache {
            cache.save();
        }
        // Few files have comments: the set stays small where one of every file would not.
        let commented: HashSet<String> = looked
            .iter()
            .filter(|(_, looked)| looked.commented)
            .map(|(index, _)| selected[*index].path.to_string())
            .collect();
        // Set aside, and not judged: Helm templates.
        let mut templates = Vec::new();
        // Judged as the first look found them: the files it could not read, and the CRD files it
        // loaded.
        let mut early = Vec::new();
        let mut crds = Vec::new();
        let render::Scan {
            mut manifests,
            sources: source_paths,
        } = scanned;
        // A CRD that Flux substitutes is only known after substitution, which needs every file.
        let mut substituted_crd = false;
        for (index, looked) in looked {
            let looked = *looked;
            if let Some(documents) = looked.manifest {
                manifests.push((selected[index].path.to_string(), documents));
            }
            match looked.look {
                stream::FirstLook::Template(note) => {
                    findings.push(*note);
                    templates.push(index);
                }
                stream::FirstLook::Unreadable(loaded) => {
                    let kept = Box::new(stream::Kept::new(*loaded));
                    early.push((index, std::sync::Mutex::new(Some(kept))));
                }
                stream::FirstLook::Crds {
                    kinds,
                    substituted,
                    kept,
                } => {
                    crds.extend(kinds);
                    substituted_crd |= substituted;
                    early.push((index, std::sync::Mutex::new(Some(kept))));
                }
                stream::FirstLook::Later => {}
            }
        }
        let is_template = |index: usize| templates.binary_search(&index).is_ok();
        let crds = if substituted_crd {
            Vec::new()
        } else {
            latest_crd_kinds(crds)
        };
        stats.files = saturating_u32(selected.len() - templates.len());
        if self.list_checked {
            stats.checked = CheckedFiles::new(
                (0..selected.len())
                    .filter(|&i| !is_template(i))
                    .map(|i| &*selected[i].path),
            );
        }
        let policies = self.policies();
        // The base side of the change is read only for policies, which see it as `before`.
        let before = if policies.document_rule_count() > 0 {
            BeforeIndex::new(change, options)
        } else {
            BeforeIndex::default()
        };
        findings.extend(before.unreadable.iter().cloned());
        crate::alloc::trace("first look");
        let mut schemas = stream::LazySchemas::new();
        // In the tree's order, as one scan of it found them.
        manifests.sort_by(|a, b| a.0.cmp(&b.0));
        let namespaces = TargetNamespaces::from_manifests(&manifests);
        let flux_substitutes = manifests
            .iter()
            .any(|(_, documents)| documents.iter().any(flux::declares_substitution));
        // Each kustomization is read once: here, if a Flux parent patches, and by Flux's
        // substitution and both patch indexes after the stream. The graph built here for the
        // parents was built again there, on the serial tail of the check (corpus: 4 ms).
        let kustomizations = Kustomizations::new(tree);
        let flux_patches = FluxPatches::from_manifests(&kustomizations, &manifests);
        // The first look's listing of the tree, if kept and no index has asked for it since: the
        // stream would carry it to its peak.
        tree.release_unused_listing();
        // Kept through the stream only when Flux substitutes: a list of every file with a
        // ConfigMap would grow with the tree (tests/stream_memory.rs).
        let flux_scan = {
            let indices = unlocked(source_indices);
            let mut scan = flux::FluxScan::default();
            if flux_substitutes {
                for (path, documents) in &manifests {
                    scan.add_documents(path, documents);
                }
                for index in indices {
                    scan.add_source(selected[index].path.to_string());
                }
                for path in source_paths {
                    scan.add_source(path);
                }
            }
            scan
        };
        drop(manifests);
        let base_crds = stream::BaseCrds::new(self, &selected);
        let stream = stream::Stream {
            gate: self,
            policies: &policies,
            before: &before,
            schemas: &schemas,
            crds: &crds,
            hold_all: policies.needs_inventory() || substituted_crd,
            flux_substitutes,
            namespaces: &namespaces,
            flux_patches: &flux_patches,
            base_crds: &base_crds,
        };
        // A clean file with documents is only counted: nothing else of it is kept.
        let clean_documents = AtomicUsize::new(0);
        let outcomes = stream::sparse(selected.len(), &big, |index| {
            if is_template(index) {
                return None;
            }
            let file = selected.get(index);
            let early = stream::entry(&early, index).and_then(|l| l.lock().ok()?.take());
            let loaded = early
                .and_then(|kept| kept.restore())
                .unwrap_or_else(|| stream::load(file, options));
            match stream.judge(index, &file.path, loaded) {
                stream::Outcome::Clean { documents } if documents > 0 => {
                    clean_documents.fetch_add(documents, AtomicOrdering::Relaxed);
                    None
                }
                outcome => Some(outcome),
            }
        });
        drop(policies);
        drop(early);
        crate::alloc::release_freed();
        crate::alloc::trace("streamed");

        let mut sources = BTreeMap::new();
        let mut documents = Vec::new();
        let mut judged = Vec::new();
        let mut deferred = Vec::new();
        // Which selected files the stream judged with at least one document (their directories
        // may hold the kustomizations that make other files patches): every one without an
        // outcome, a clean file with documents, but for the templates.
        let mut streamed_documents = vec![true; selected.len()];
        for &index in &templates {
            streamed_documents[index] = false;
        }
        let mut clean_documents = clean_documents.into_inner();
        for (index, outcome) in outcomes {
            streamed_documents[index] = false;
            match outcome.resolved(|| base_crds.exist()) {
                // Only a guessed file comes here clean with documents: the others were counted.
                stream::Outcome::Clean { documents } => {
                    clean_documents += documents;
                    streamed_documents[index] = documents > 0;
                }
                stream::Outcome::Held(loaded) => {
                    let loaded = *loaded;
                    if let Some(source) = &loaded.source
                        && !loaded.findings.is_empty()
                    {
                        sources.insert(source.path.clone(), Arc::clone(source));
                    }
                    findings.extend(loaded.findings);
                    documents.extend(loaded.documents);
                }
                stream::Outcome::Judged(mut file) => {
                    streamed_documents[index] = file.documents > 0;
                    findings.append(&mut file.load);
                    judged.push(*file);
                }
                stream::Outcome::Split(split) => {
                    let (mut file, held) = *split;
                    streamed_documents[index] = true;
                    findings.append(&mut file.load);
                    judged.push(file);
                    documents.extend(held.documents);
                }
                // Its load findings come again when it is judged.
                stream::Outcome::Deferred(file) => deferred.push(*file),
                // Resolved above; were one left, judging it again after the base's CRDs is safe.
                stream::Outcome::Guessed(guessed) => deferred.push(guessed.1),
            }
        }
        documents.extend(std::mem::take(&mut rendered.documents));
        // The validators of kinds only streamed files had are not needed again: on the corpus
        // they were most of the stream's memory, under every stage below.
        if let Some(Ok(schemas)) = schemas.get_mut() {
            schemas.forget_validators_except(&kinds_of(&documents));
        }
        let changed = change.path_lookup();
        // A changed Flux parent changes every object its patches reach, written or not.
        self.add_flux_patched(tree, &flux_patches, &changed, &mut documents, options);
        // Flux decrypts SOPS files before applying them: judge them as decrypted, with the
        // ciphertexts as opaque values that no output prints. (SOPS files are held, see `stream`.)
        let mut opaque = BTreeSet::new();
        for doc in &mut documents {
            opaque.extend(crate::load::sops::as_decrypted(&mut doc.value));
        }
        // Flux applies objects after its post-build substitution: judge those.
        let flux_path = |path: &str| {
            rendered
                .contexts
                .get(path)
                .map_or_else(|| path.to_owned(), |r| r.file.clone())
        };
        let (flux_findings, mut flux_secrets) = flux::substitute_documents(
            &kustomizations,
            flux_scan,
            &changed,
            &mut documents,
            &flux_path,
            options,
        );
        flux_secrets.extend(opaque);
        findings.extend(flux_findings);
        // Flux builds the objects with its parent Kustomization's patches (before substituting;
        // the gate patches the substituted documents, which is the same for patches without
        // variables).
        let flux_applied = if flux_patches.is_empty() {
            Applied::default()
        } else {
            let written = documents
                .iter()
                .map(Document::path)
                .filter(|p| !rendered.contexts.contains_key(*p));
            let partial = PatchIndex::build(&kustomizations, written);
            let is_object = |doc: &Document| {
                !rendered.contexts.contains_key(doc.path())
                    && !is_kustomize_file(doc)
                    && !partial.is_patch(doc.path())
            };
            let command = kustomize_command(&self.config.render);
            let builder = flux_patches::Builder {
                command: &command,
                cache: self.render_cache.as_ref(),
            };
            flux_patches.apply(&mut documents, &is_object, &builder, &tree.describe())
        };
        findings.extend(flux_applied.findings);
        // Flux's `targetNamespace` and Argo CD's destination namespace decide where objects land.
        if !documents.is_empty() {
            namespaces.apply(&mut documents, &flux_path);
        }
        stats.documents = saturating_u32(
            documents.len() + clean_documents + judged.iter().map(|f| f.documents).sum::<usize>(),
        );
        // Flux may have brought in objects beyond the changed files: know their patches too.
        let deferred_paths: BTreeSet<&str> =
            deferred.iter().map(|d| &*selected[d.index].path).collect();
        let streamed = selected
            .iter()
            .zip(&streamed_documents)
            .filter(|(_, documents)| **documents)
            .map(|(file, _)| &*file.path)
            .chain(deferred_paths.iter().copied());
        let held = documents.iter().map(|d| d.path());
        let patches = PatchIndex::build(
            &kustomizations,
            streamed
                .chain(held)
                .filter(|p| !rendered.contexts.contains_key(*p)),
        );
        // What the kustomizations list is known now; the validation of held documents below sets
        // the peak of a large check.
        drop(kustomizations);
        let mut judged: Vec<stream::Judged> = judged
            .into_iter()
            .filter(|f| !patches.is_patch(&f.path))
            .collect();

        // Nothing to validate: do not pay for decoding the embedded schemas.
        let schemas = match schemas.into_inner() {
            None if documents.is_empty() => None,
            // Every file was held: its CRDs are among the documents, substituted by Flux.
            None => Some(SchemaSet::build(
                &self.config.schemas,
                self.trusted(),
                &[
                    crds.as_slice(),
                    &crd_kinds(documents.iter().filter(|d| is_crd(d))),
                ]
                .concat(),
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
                let kinds: BTreeSet<&str> = deferred
                    .iter()
                    .flat_map(|d| d.kinds.iter().map(String::as_str))
                    .collect();
                self.add_base_crds(&mut schemas, &documents, &kinds, &selected, options);
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
        // Helm-rendered objects trace to the values line that set the value, not to kustomize's
        // sources.
        rendered.relocate_helm(&mut policy_findings, tree);
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
                flux_substitutes,
                namespaces: &namespaces,
                flux_patches: &flux_patches,
                base_crds: &base_crds,
            };
            let mut files: Vec<stream::Judged> = deferred
                .par_iter()
                .map(|d| {
                    let file = selected.get(d.index);
                    late.judged(
                        &file.path,
                        stream::load(file, options),
                        final_schemas.as_ref(),
                    )
                })
                .filter(|f| !patches.is_patch(&f.path))
                .collect();
            for file in &mut files {
                stats.documents = stats
                    .documents
                    .saturating_add(saturating_u32(file.documents));
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
        for source in flux_patches.relocate(&mut findings, &flux_applied.patched, &documents, tree)
        {
            sources.insert(source.path.clone(), source);
        }
        crate::alloc::trace("judged");
        let findings = at_sources(findings, &documents, &rendered.contexts, tree, options);
        Judged {
            findings,
            commented,
            documents,
            sources,
            flux_secrets,
            helm_secrets: rendered.helm_secrets,
            stats,
        }
    }

    /// Apply the `# stategate:ignore` comments of the changed files (`report.inline_suppressions`).
    /// A comment the base did not have is the change's own: it counts (`allow`), listed as
    /// "suppressed by this change", or not (`base-only`). Findings that mean the gate could not
    /// read the input are never suppressed.
    fn suppress(
        &self,
        change: &ChangeSet,
        mut findings: Vec<Finding>,
        commented: &HashSet<String>,
    ) -> Vec<Finding> {
        let mode = self.config.report.inline_suppressions;
        if mode == InlineSuppressions::Off {
            return findings;
        }
        // A side that cannot be read has no comments here: the stream already made it an error.
        let text = |bytes: Result<Option<Vec<u8>>, _>| String::from_utf8(bytes.ok()??).ok();
        // The files the stream did not read, and those it found the marker in, are read again, in
        // parallel; only the files with comments are kept.
        let commented: Vec<(&FileChange, Vec<suppress::Comment>, Vec<Finding>)> = change
            .files
            .par_iter()
            .filter(|f| f.action() != Action::Deleted)
            .filter(|f| !self.is_selected(f) || commented.contains(&*f.path))
            .filter_map(|file| {
                let after = text(file.read_after())?;
                let (comments, problems) = suppress::comments(&file.path, &after);
                (!comments.is_empty() || !problems.is_empty()).then_some((file, comments, problems))
            })
            .collect();
        let mut extra = Vec::new();
        for (file, comments, problems) in commented {
            extra.extend(problems);
            let before = text(file.read_before()).unwrap_or_default();
            for comment in comments {
                // With no base (`--all`) there is nothing the change could have added.
                let by_change =
                    change.base.is_some() && !before.lines().any(|l| l.trim() == comment.text);
                let at = Location {
                    file: file.path.to_string(),
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
                        && f.location.as_ref().is_some_and(|l| l.file == *file.path)
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
                    .old_path()
                    .into_iter()
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
                let rendered = Rendered {
                    dir: &overlay.dir,
                    index,
                    object,
                    file: &overlay.file,
                    origin: overlay.origins.get(index).cloned().flatten(),
                };
                out.add(rendered, &overlay.before, options);
            }
        }
        out
    }

    /// Objects of the Helm releases the change touches (charts, HelmReleases, Applications), as
    /// documents judged in the environment of the manifest that declares the release. Objects
    /// identical at both sides are not judged again; altered ones are judged at the base too, to
    /// tell pre-existing findings apart.
    fn render_helm(
        &self,
        change: &ChangeSet,
        head: &dyn Tree,
        findings: &mut Vec<Finding>,
        options: &LoadOptions,
        out: &mut RenderedChange,
    ) {
        if !self.config.render.helm.wanted() {
            return;
        }
        let changed: BTreeSet<String> = change.touched_paths().map(str::to_owned).collect();
        let base = PatchedTree::new(head, before_images(change), "the change's base");
        let helm =
            render::helm::render_changed(&base, head, &self.config.render, &changed, options);
        findings.extend(helm.findings);
        out.helm_secrets.extend(helm.secrets);
        for release in helm.releases {
            let owner = release.release.owner.clone();
            let dir = format!("{owner} ({})", release.release.label);
            let before: BTreeMap<ObjectId, serde_json::Value> = release
                .base
                .iter()
                .enumerate()
                .map(|(i, v)| (ObjectId::of(v, &dir, i), v.clone()))
                .collect();
            if release.base != release.head {
                out.impacted.push(owner.clone());
            }
            let release_info = Arc::new(release.release);
            for (index, object) in release.head.iter().enumerate() {
                let rendered = Rendered {
                    dir: &dir,
                    index,
                    object,
                    file: &owner,
                    origin: None,
                };
                if let Some(path) = out.add(rendered, &before, options) {
                    out.helm
                        .insert(path, (object.clone(), Arc::clone(&release_info)));
                }
            }
        }
    }

    /// The changed files whose content is checked: included, not excluded, not deleted. The rest
    /// stay in the change set for path rules. (Helm templates are set aside when the files are
    /// first read: `stream::first_look`.)
    fn select<'c>(&self, change: &'c ChangeSet) -> Selection<'c> {
        Selection::of(&change.files, |file| self.is_selected(file))
    }

    fn is_selected(&self, file: &FileChange) -> bool {
        file.action() != Action::Deleted
            && self.paths.is_checked(&file.path)
            && !is_tool_config(&file.path)
    }

    /// The documents of the files a changed Flux parent builds and may patch, when the change
    /// does not hold them already: their applied objects change with the parent.
    fn add_flux_patched(
        &self,
        tree: &dyn Tree,
        flux_patches: &FluxPatches,
        changed: &PathLookup,
        documents: &mut Vec<Document>,
        options: &LoadOptions,
    ) {
        if flux_patches.is_empty() {
            return;
        }
        let held: BTreeSet<String> = documents.iter().map(|d| d.path().to_owned()).collect();
        for path in flux_patches.built_by_changed(tree, changed) {
            if held.contains(&path) || changed.contains(&path) || !self.paths.is_checked(&path) {
                continue;
            }
            let Some(bytes) = tree.read(&path) else {
                continue;
            };
            documents.extend(
                load_manifest(&path, &bytes, options)
                    .documents
                    .into_iter()
                    .filter(|d| d.kind().is_some_and(|k| flux_patches.may_change(&path, k))),
            );
        }
    }

    /// The trusted base's CRDs for the kinds of the held documents no schema covers yet, and of
    /// the deferred files. The base is searched only when a document needs it, so a push of plain
    /// Deployments never reads the repository's CRDs.
    fn add_base_crds(
        &self,
        schemas: &mut SchemaSet,
        documents: &[Document],
        deferred_kinds: &BTreeSet<&str>,
        selected: &Selection,
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
            // The base's copy of a file the change touched is not the CRD the cluster will have.
            let mut changed: BTreeSet<&str> = documents.iter().map(|d| d.path()).collect();
            changed.extend(selected.iter().map(|f| &*f.path));
            let found = crd::in_base(
                self.trusted(),
                self.base_crd_files(),
                &uncovered,
                &changed,
                options,
            );
            schemas.add_crds(&found);
        }
    }
}

/// What a change reaches: with the change's own paths ([`Impact::paths`]), what approval rules
/// and environments judge it by.
#[derive(Debug, Default, Clone)]
pub struct Impact {
    /// The kustomization file of every rendered overlay whose objects the change alters
    /// (`clusters/prod/kustomization.yaml` for an edit of a base that prod uses). The changed
    /// paths are not copied here: a `check` never reads them from here, and a set of 100,000 of
    /// them was the last rise of that check's peak memory.
    pub overlays: BTreeSet<String>,
}

impl Impact {
    /// The changed paths (both sides of a rename), and the overlays the change alters: sorted,
    /// each once.
    pub fn paths<'a>(&'a self, change: &'a ChangeSet) -> BTreeSet<&'a str> {
        change
            .touched_paths()
            .chain(self.overlays.iter().map(String::as_str))
            .collect()
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
    /// Document path → the Helm-rendered object and its release, to trace findings to values.
    helm: HashMap<String, (serde_json::Value, Arc<render::helm::Release>)>,
    /// Values Helm releases took from Secrets.
    helm_secrets: BTreeSet<String>,
}

/// One object as a renderer gave it: the `index`th of what `file` renders, shown under `dir`.
struct Rendered<'a> {
    dir: &'a str,
    index: usize,
    object: &'a serde_json::Value,
    file: &'a str,
    /// The repository file the object came from, where the renderer says.
    origin: Option<String>,
}

impl RenderedChange {
    /// `rendered` as a document of the change, with its base-side object (found in `before` by
    /// its id) as one of the base's; the document's path, `None` when it is no document or the
    /// change leaves it as it was. An object the change does not alter is not the change's to
    /// answer for: a sibling rendered from the same source must not block an unrelated edit.
    fn add(
        &mut self,
        rendered: Rendered<'_>,
        before: &BTreeMap<ObjectId, serde_json::Value>,
        options: &LoadOptions,
    ) -> Option<String> {
        let Rendered {
            dir,
            index,
            object,
            file,
            origin,
        } = rendered;
        let doc = rendered_document(dir, index, object, options)?;
        let before = match doc.id() {
            id @ ObjectId::Kube { .. } => before.get(&id).cloned(),
            ObjectId::Document { .. } => None,
        };
        if before.as_ref() == Some(object) {
            self.unchanged += 1;
            return None;
        }
        if let Some(base_object) = &before
            && let Some(base_doc) = rendered_document(dir, index, base_object, options)
        {
            let context = RenderedContext {
                file: file.to_owned(),
                origin: None,
                before: None,
            };
            self.base
                .contexts
                .insert(base_doc.path().to_owned(), context);
            self.base.documents.push(base_doc);
        }
        let path = doc.path().to_owned();
        let context = RenderedContext {
            file: file.to_owned(),
            origin,
            before,
        };
        self.contexts.insert(path.clone(), context);
        self.documents.push(doc);
        Some(path)
    }

    /// Findings on Helm-rendered objects point at the values line that set the value, else at
    /// the release's manifest; the rendered object stays named in the metadata.
    fn relocate_helm(&self, findings: &mut [Finding], head: &dyn Tree) {
        for finding in findings {
            let Some(path) = finding.location.as_ref().map(|l| l.file.clone()) else {
                continue;
            };
            if let Some((object, release)) = self.helm.get(&path) {
                let before = self.contexts.get(&path).and_then(|c| c.before.as_ref());
                render::helm::relocate(finding, object, before, release, head);
                finding.metadata.insert("rendered".into(), path.into());
            }
        }
    }
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
    /// The selected files whose bytes may hold suppression comments (the others have none).
    commented: HashSet<String>,
    documents: Vec<Document>,
    sources: BTreeMap<String, Arc<SourceFile>>,
    flux_secrets: BTreeSet<String>,
    helm_secrets: BTreeSet<String>,
    stats: Stats,
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
fn before_images(change: &ChangeSet) -> BTreeMap<String, Option<Content>> {
    let mut files = BTreeMap::new();
    for file in &change.files {
        match file.old_path() {
            Some(old) => {
                files.insert(file.path.to_string(), None);
                files.insert(old.to_string(), file.before().cloned());
            }
            None => {
                files.insert(file.path.to_string(), file.before().cloned());
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
    let renderer = if dir.contains(" (") {
        "helm"
    } else {
        "kustomize"
    };
    let path = format!("{shown} (rendered by {renderer}: {id})");
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
    /// Base sides that could not be read: the policies would judge without their `before`.
    unreadable: Vec<Finding>,
}

impl BeforeIndex {
    fn new(change: &ChangeSet, options: &LoadOptions) -> BeforeIndex {
        let actions = change
            .files
            .iter()
            .map(|f| (f.path.to_string(), f.action()))
            .collect();
        let read: Vec<Result<Vec<Document>, Finding>> = change
            .files
            .par_iter()
            .filter(|f| matches!(f.action(), Action::Modified | Action::Renamed))
            .filter_map(|f| {
                let path = f.old_path().unwrap_or(&f.path);
                match f.read_before() {
                    Ok(bytes) => Some(Ok(load_manifest(path, &bytes?, options).documents)),
                    Err(why) => Some(Err(unreadable_finding(&why))),
                }
            })
            .collect();
        let mut objects = HashMap::new();
        let mut unreadable = Vec::new();
        for side in read {
            match side {
                Ok(documents) => objects.extend(documents.into_iter().map(|d| (d.id(), d.value))),
                Err(finding) => unreadable.push(finding),
            }
        }
        BeforeIndex {
            actions,
            objects,
            unreadable,
        }
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

/// The (apiVersion, kind) of each document that names both.
fn kinds_of(documents: &[Document]) -> BTreeSet<(String, String)> {
    documents
        .iter()
        .filter_map(|doc| Some((doc.api_version()?.to_owned(), doc.kind()?.to_owned())))
        .collect()
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

/// A chart template: inside a chart of the judged tree, with template syntax outside comments.
fn looks_like_helm_template(path: &str, bytes: &[u8], charts: &ChartDirs<'_>) -> bool {
    std::str::from_utf8(bytes)
        .is_ok_and(|text| is_chart_template(path, text, |dir| charts.holds_chart(dir)))
}

/// Which directories of a tree hold a readable `Chart.yaml`, each looked up once per check: every
/// file with template syntax asks about each directory above it, and the corpus' 266 such files
/// asked 1,831 times about a few hundred directories (each a path lookup and a read).
struct ChartDirs<'t> {
    tree: &'t dyn Tree,
    known: Mutex<HashMap<String, bool>>,
}

impl<'t> ChartDirs<'t> {
    fn new(tree: &'t dyn Tree) -> ChartDirs<'t> {
        ChartDirs {
            tree,
            known: Mutex::default(),
        }
    }

    fn holds_chart(&self, dir: &str) -> bool {
        if let Some(&known) = locked(&self.known).get(dir) {
            return known;
        }
        // Read outside the lock: two workers asking at once read twice, and no other waits.
        let holds = self
            .tree
            .read(&crate::tree::join(dir, "Chart.yaml"))
            .is_some();
        locked(&self.known).insert(dir.to_owned(), holds);
        holds
    }
}

fn report_of(findings: Vec<Finding>, sources: BTreeMap<String, Arc<SourceFile>>) -> Report {
    Report {
        findings,
        sources,
        ..Report::default()
    }
}
