//! The streaming part of a check: each changed file is read, parsed, validated and judged by the
//! document policies on a rayon worker, and then its values are dropped. Only the findings (and
//! the source text of a file a finding points into) outlive the file, so memory does not grow with
//! the number of files.
//!
//! A document is *held* instead (kept for the stages that need every document at once, which then
//! judge it as before) when it matters beyond itself; the other documents of its file are judged
//! in the stream. A document matters beyond itself when it is:
//! - a CRD: the schemas of the other documents depend on it. CRD files are found on their bytes
//!   and loaded before the stream starts, so the schema set is complete when it starts;
//! - text with `${`, a Flux object, a ConfigMap or a Secret, when the tree has a Flux
//!   Kustomization with `postBuild`: its substitution may replace the document or take variables
//!   from it. Without one, Flux substitutes nothing, and a repository's ConfigMaps, held whole,
//!   made a check's memory grow by 4 KB with each;
//! - a Secret value anywhere (list items included): the report redacts them from every output;
//! - a SOPS-encrypted file: judged as decrypted, its ciphertexts masked in every output;
//! - an object a Flux `Kustomization`'s patches may change: judged as patched;
//! - and every file, when a Gatekeeper template reads `data.inventory`.
//!
//! A file with a kind no schema covers yet is *deferred*: dropped, and loaded and judged again
//! once the trusted base's CRDs for the kinds of all such files have been looked up, together.
//! Only when the base has CRD files the change does not touch, though: no other file can define
//! such a kind, so without them (`check --all`) the file is judged at once. Whether it has them is
//! found out by the first file that asks; a file that asks meanwhile is judged as if the base had
//! none, and deferred after all if it has ([`Outcome::Guessed`]).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use crate::change::{FileChange, unreadable_finding};
use crate::finding::{Finding, Rule};
use crate::load::{Document, LoadOptions, Loaded, SourceFile, load_manifest};
use crate::policy::PolicySet;
use crate::report::secret_paths;
use crate::schema::crd::{self, is_crd};
use crate::schema::{CrdKind, SchemaSet, crd_kinds};

use super::selection::Selection;
use super::{BeforeIndex, ChartDirs, Gate, is_kustomize_file, looks_like_helm_template};
use crate::load::sniff::{contains, hides_from_filters};
use crate::render::flux_patches::FluxPatches;
use crate::render::target_namespace::TargetNamespaces;

/// The schema set, built on first need from the change's CRDs: a change without documents never
/// pays for decoding the embedded schemas.
pub(super) type LazySchemas = OnceLock<Result<SchemaSet, Vec<Finding>>>;

/// What became of one selected file. Only those that leave something behind are kept until the
/// stream ends: a clean file with documents is counted and forgotten ([`sparse`]), and the rest
/// is boxed (a split file's two parts in one box). A file's path, documents or empty finding
/// lists would make the check's memory grow with the number of files (issue 12: 100,000 files
/// within 1.5x the memory of 10,000).
pub(super) enum Outcome {
    /// Judged in the stream without a finding: only the number of its documents is left.
    Clean { documents: usize },
    /// Judged in the stream, with findings; its values are gone.
    Judged(Box<Judged>),
    /// Kept whole for the stages that need every document (see the module docs).
    Held(Box<Loaded>),
    /// Judged in the stream but for the documents that must be held, which are kept (without
    /// the file's load findings, which the judged part has). Argo CD's 1.9 MB `install.yaml`
    /// has ConfigMaps and a Secret among its CRDs and Deployments: held whole, it kept 18 MB of
    /// values to the end of the corpus' check.
    Split(Box<(Judged, Loaded)>),
    /// A kind no schema covers yet: dropped now, loaded and judged again once the trusted base's
    /// CRDs for these kinds are added (the file's bytes are still in the change set).
    Deferred(Box<Deferred>),
    /// A kind no schema covers yet, judged while another file was finding out whether the base
    /// has CRD files, as if it had none: the outcome if it has none, deferred if it has
    /// ([`Outcome::resolved`]).
    Guessed(Box<(Outcome, Deferred)>),
}

impl Outcome {
    /// A guessed outcome made good, once `base_has_crds` can say.
    pub fn resolved(self, base_has_crds: impl FnOnce() -> bool) -> Outcome {
        match self {
            Outcome::Guessed(guessed) => {
                let (outcome, deferred) = *guessed;
                if base_has_crds() {
                    Outcome::Deferred(Box::new(deferred))
                } else {
                    outcome
                }
            }
            outcome => outcome,
        }
    }
}

/// A file judged after the base's CRDs are known: by its index among the selected files.
pub(super) struct Deferred {
    pub index: usize,
    pub kinds: Vec<String>,
}

/// The findings of a file judged in the stream, by stage, so the report keeps the stage order.
pub(super) struct Judged {
    pub path: String,
    pub documents: usize,
    pub load: Vec<Finding>,
    pub schema: Vec<Finding>,
    pub policy: Vec<Finding>,
    /// The text findings point into; `None` when the file has no finding.
    pub source: Option<Arc<SourceFile>>,
}

impl Judged {
    /// No finding: nothing of the file needs to outlive it.
    pub fn is_clean(&self) -> bool {
        self.load.is_empty() && self.schema.is_empty() && self.policy.is_empty()
    }
}

/// Everything the stream reads but does not own.
pub(super) struct Stream<'a> {
    pub gate: &'a Gate,
    pub policies: &'a PolicySet,
    pub before: &'a BeforeIndex,
    pub schemas: &'a LazySchemas,
    /// The kinds the change's CRDs define: the schema set is built from them.
    pub crds: &'a [CrdKind],
    /// Hold every file (a template reads `data.inventory`, or a CRD is substituted by Flux).
    pub hold_all: bool,
    /// Whether the tree has a Flux Kustomization with `postBuild`: only then may Flux's
    /// substitution change a document or take variables from one.
    pub flux_substitutes: bool,
    /// Where Flux `targetNamespace` and Argo CD destinations place objects: streamed documents
    /// get the namespace the cluster will give them, as held ones do.
    pub namespaces: &'a TargetNamespaces,
    /// Flux Kustomizations whose patches may change documents: those are held, to be patched.
    pub flux_patches: &'a FluxPatches,
    pub base_crds: &'a BaseCrds<'a>,
}

/// Whether the trusted base has CRD files outside the change, the only place a kind the change's
/// CRDs and the embedded schemas leave uncovered can still come from. Looked up when the first
/// such kind is met, so a change with none never lists the base.
pub(super) struct BaseCrds<'a> {
    gate: &'a Gate,
    selected: &'a Selection<'a>,
    exist: OnceLock<bool>,
    /// A thread has started finding out.
    asked: AtomicBool,
}

impl<'a> BaseCrds<'a> {
    pub fn new(gate: &'a Gate, selected: &'a Selection<'a>) -> BaseCrds<'a> {
        BaseCrds {
            gate,
            selected,
            exist: OnceLock::new(),
            asked: AtomicBool::new(false),
        }
    }

    /// [`BaseCrds::exist`], or `None` while another thread finds out. Waiting for it, the other
    /// core sat idle through the first one's listing of the base: 11-36 ms of the corpus'
    /// `check --all`, which takes 210-300 ms (issue 12).
    fn known(&self) -> Option<bool> {
        if let Some(&exist) = self.exist.get() {
            return Some(exist);
        }
        if self.asked.swap(true, Ordering::AcqRel) {
            return None;
        }
        Some(self.exist())
    }

    /// Whether the trusted base has CRD files the change does not touch.
    pub fn exist(&self) -> bool {
        *self.exist.get_or_init(|| {
            let changed: HashSet<&str> = self.selected.iter().map(|f| &*f.path).collect();
            let listed = self.gate.base_crd_files();
            !crd::base_files(listed, &|p| changed.contains(p)).is_empty()
        })
    }
}

/// Files whose CRDs must be known before the stream starts: the word in their bytes, or text the
/// loader decodes or unescapes (UTF-16, `\u0043ustomResourceDefinition`) so the bytes cannot say.
pub(super) fn may_define_crds(bytes: &[u8]) -> bool {
    hides_from_filters(bytes) || contains(bytes, b"CustomResourceDefinition")
}

/// Whether [`first_look`] may find anything in a file with these bytes (change detection's glance,
/// [`crate::change::Glance`]): without any of these, the file is [`Looked::plain`]. Each is a
/// superset of what the first look asks: `{{` of a Helm template, the suppression marker of
/// `commented`, the filters of a CRD file, of the whole-tree indexes and of Flux's sources.
pub fn worth_a_look(path: &str, bytes: &[u8]) -> bool {
    crate::suppress::may_have_comments(bytes)
        || contains(bytes, b"{{")
        || may_define_crds(bytes)
        || crate::render::is_manifest(path)
            && (crate::render::indexed(bytes) || crate::render::flux::may_hold_source(bytes))
}

/// Read and parse a file's head side; a file that cannot be read again is an error finding.
pub(super) fn load(file: &FileChange, options: &LoadOptions) -> Loaded {
    match file.read_after() {
        Ok(bytes) => load_manifest(&file.path, bytes.as_deref().unwrap_or_default(), options),
        Err(why) => unreadable(&why),
    }
}

fn unreadable(why: &crate::tree::Unreadable) -> Loaded {
    Loaded {
        findings: vec![unreadable_finding(why)],
        ..Loaded::default()
    }
}

/// What the first read of a selected file found, before the stream starts.
pub(super) enum FirstLook {
    /// A Helm chart template: not YAML until rendered, so not checked (a note says so).
    Template(Box<Finding>),
    /// It could not be read: the finding. Boxed: one `FirstLook` is kept per selected file.
    Unreadable(Box<Loaded>),
    /// It may define CRDs, which the schemas of the stream depend on: the kinds it defines, and
    /// whether one of its CRDs has a Flux variable (`${…}`). Its documents are kept for the
    /// stream, packed ([`Kept`]).
    Crds {
        kinds: Vec<CrdKind>,
        substituted: bool,
        kept: Box<Kept>,
    },
    /// Loaded by the stream.
    Later,
}

/// A file loaded before the stream, kept for it with each document's value packed
/// ([`crate::load::packed`]).
///
/// Argo CD's CRD files are 3.8 MB of the corpus' YAML, and they were parsed twice: by the first
/// look for their kinds and by the stream to judge them, which was a fifth of the CPU of its
/// `check --all`. Holding their values instead cost 18 MB, which put the run's peak above
/// kubeconform's; packed, they take about the size of their text, and reading them back is
/// several times faster than parsing the YAML. A value unpacked is the same value: keys keep
/// their order, numbers their exact form.
pub(super) struct Kept {
    /// The file as loaded, each document's value taken out.
    loaded: Loaded,
    /// The values, by document.
    values: Vec<Box<[u8]>>,
}

impl Kept {
    pub fn new(mut loaded: Loaded) -> Kept {
        let values = loaded
            .documents
            .iter_mut()
            .map(|doc| crate::load::packed::pack(&std::mem::take(&mut doc.value)))
            .collect();
        Kept { loaded, values }
    }

    /// The file as it was loaded; `None` if a value does not unpack, and the file must be
    /// loaded again.
    pub fn restore(self) -> Option<Loaded> {
        let Kept { mut loaded, values } = self;
        for (doc, packed) in loaded.documents.iter_mut().zip(values) {
            doc.value = crate::load::packed::unpack(&packed)?;
        }
        Some(loaded)
    }
}

/// What the first read of one selected file found.
pub(super) struct Looked {
    pub look: FirstLook,
    /// Whether the file may hold suppression comments: those without are not read again for them.
    pub commented: bool,
    /// Its documents, when the whole-tree indexes want it ([`crate::render::scan_manifests`]'s
    /// filter): that scan then reads only the files the change does not select.
    pub manifest: Option<Vec<Document>>,
}

impl Looked {
    /// What most files are: loaded by the stream, without comments or documents the whole-tree
    /// indexes want.
    pub fn plain() -> Looked {
        Looked {
            look: FirstLook::Later,
            commented: false,
            manifest: None,
        }
    }

    /// `None` for a [`Looked::plain`] file, of which [`sparse`] keeps nothing: most files of a
    /// large check are plain, and a result for each was 7 MB of a 100,000-file check.
    pub fn unless_plain(self) -> Option<Box<Looked>> {
        (!self.is_plain()).then(|| Box::new(self))
    }

    fn is_plain(&self) -> bool {
        matches!(self.look, FirstLook::Later) && !self.commented && self.manifest.is_none()
    }
}

/// The one read of every selected file before the stream: Helm templates are set aside and CRD
/// files loaded. The bytes of the others are dropped and read again by the stream's worker, so
/// no file's bytes are held across the whole change.
/// `seen` is shown the bytes of a manifest (a file the whole-tree indexes read). A file that
/// change detection glanced at and found plain ([`worth_a_look`]) is not read.
pub(super) fn first_look(
    file: &FileChange,
    charts: &ChartDirs<'_>,
    options: &LoadOptions,
    seen: &(dyn Fn(&[u8]) + Sync),
) -> Looked {
    if file.after().is_some_and(crate::tree::Content::is_plain) {
        return Looked::plain();
    }
    let bytes = match file.read_after() {
        Ok(bytes) => bytes.unwrap_or_default(),
        Err(why) => {
            return Looked {
                look: FirstLook::Unreadable(Box::new(unreadable(&why))),
                commented: true,
                manifest: None,
            };
        }
    };
    let manifest = crate::render::is_manifest(&file.path);
    if manifest {
        seen(&bytes);
    }
    let looked = Looked {
        commented: crate::suppress::may_have_comments(&bytes),
        manifest: manifest
            .then(|| crate::render::scanned(&file.path, &bytes))
            .flatten(),
        look: classify(file, &bytes, charts, options),
    };
    // `worth_a_look` restates what this function asks of the bytes: a file it finds something in
    // and the glance would have passed over means the two have drifted apart. Every test that
    // reads blobs (hook, range, `--head`), where nothing is glanced, checks it.
    debug_assert!(
        looked.is_plain() || worth_a_look(&file.path, &bytes),
        "{}: the first look found something that `worth_a_look` passes over",
        file.path
    );
    looked
}

fn classify(
    file: &FileChange,
    bytes: &[u8],
    charts: &ChartDirs<'_>,
    options: &LoadOptions,
) -> FirstLook {
    if looks_like_helm_template(&file.path, bytes, charts) {
        return FirstLook::Template(Box::new(
            Finding::note(
                Rule::LoadSkipped,
                "Helm template: not YAML until rendered, not checked",
            )
            .in_file(&*file.path)
            .help("list the chart under `render.helm` to check what it renders"),
        ));
    }
    if !may_define_crds(bytes) {
        return FirstLook::Later;
    }
    let loaded = load_manifest(&file.path, bytes, options);
    let crds = || loaded.documents.iter().filter(|d| is_crd(d));
    FirstLook::Crds {
        kinds: crd_kinds(crds()),
        substituted: crds().any(|d| d.source.has_variables()),
        kept: Box::new(Kept::new(loaded)),
    }
}

impl Stream<'_> {
    fn schemas(&self) -> &Result<SchemaSet, Vec<Finding>> {
        self.schemas.get_or_init(|| {
            SchemaSet::build(&self.gate.config.schemas, self.gate.trusted(), self.crds)
        })
    }

    /// Judge one file now, hold it, or defer it.
    pub fn judge(&self, index: usize, path: &str, loaded: Loaded) -> Outcome {
        if self.hold_all {
            return Outcome::Held(Box::new(loaded));
        }
        let hold: Vec<bool> = loaded.documents.iter().map(|d| self.must_hold(d)).collect();
        let some_held = hold.contains(&true);
        if some_held && !hold.contains(&false) {
            return Outcome::Held(Box::new(loaded));
        }
        let streamed = loaded.documents.iter().zip(&hold).filter(|(_, h)| !**h);
        let kinds = self.uncovered_kinds(streamed.map(|(doc, _)| doc));
        if kinds.is_empty() {
            return self.judge_now(path, loaded, hold);
        }
        // A file with documents to hold is held whole if the base has CRDs: no guess for it.
        let known = if some_held {
            Some(self.base_crds.exist())
        } else {
            self.base_crds.known()
        };
        match known {
            Some(false) => self.judge_now(path, loaded, hold),
            // A deferred file is loaded again whole: one with documents to hold is held whole.
            Some(true) if some_held => Outcome::Held(Box::new(loaded)),
            Some(true) => Outcome::Deferred(Box::new(Deferred { index, kinds })),
            None => Outcome::Guessed(Box::new((
                self.judge_now(path, loaded, hold),
                Deferred { index, kinds },
            ))),
        }
    }

    /// Judge the documents of a file that `hold` does not hold, and keep those it holds.
    fn judge_now(&self, path: &str, mut loaded: Loaded, hold: Vec<bool>) -> Outcome {
        let some_held = hold.contains(&true);
        let mut held = Vec::new();
        if some_held {
            for (doc, hold) in std::mem::take(&mut loaded.documents).into_iter().zip(hold) {
                if hold {
                    held.push(doc);
                } else {
                    loaded.documents.push(doc);
                }
            }
        }
        // Only a split file shares its text: `judged` trims a text it alone holds.
        let source = some_held.then(|| loaded.source.clone()).flatten();
        let judged = self.judged(path, loaded, self.schemas().as_ref().ok());
        if some_held {
            let held = Loaded {
                documents: held,
                findings: Vec::new(),
                source,
            };
            return Outcome::Split(Box::new((judged, held)));
        }
        if judged.is_clean() {
            Outcome::Clean {
                documents: judged.documents,
            }
        } else {
            Outcome::Judged(Box::new(judged))
        }
    }

    /// Every finding of one file, by stage; its values are dropped on return.
    pub fn judged(&self, path: &str, mut loaded: Loaded, schemas: Option<&SchemaSet>) -> Judged {
        self.namespaces
            .apply(&mut loaded.documents, &|p: &str| p.to_owned());
        let mut judged = Judged {
            path: path.to_owned(),
            documents: loaded.documents.len(),
            load: loaded.findings,
            schema: Vec::new(),
            policy: Vec::new(),
            source: None,
        };
        let judge_policies = self.policies.document_rule_count() > 0;
        for doc in &loaded.documents {
            if let Some(schemas) = schemas
                && !is_kustomize_file(doc)
            {
                judged.schema.extend(schemas.check(doc));
            }
            if judge_policies {
                let ctx = self.gate.file_context(self.before, doc);
                judged
                    .policy
                    .extend(self.policies.check_document(doc, &ctx));
            }
        }
        if !judged.is_clean() {
            let source = loaded
                .source
                .or_else(|| loaded.documents.first().map(|d| Arc::clone(&d.source)));
            // The findings are located: the documents, and the positions they were located
            // with, are not needed past this point.
            drop(loaded.documents);
            // Kept to the end: a list grown to four findings for one was a kilobyte of spare
            // room, on every file with a finding.
            judged.load.shrink_to_fit();
            judged.schema.shrink_to_fit();
            judged.policy.shrink_to_fit();
            let quoted = self.gate.quote_sources;
            judged.source = source.map(|file| SourceFile::for_report(file, quoted));
        }
        judged
    }

    /// The kinds of the file's documents that no schema covers (yet).
    fn uncovered_kinds<'d>(&self, documents: impl Iterator<Item = &'d Document>) -> Vec<String> {
        let Ok(schemas) = self.schemas() else {
            // No schema checks at all: nothing to look up for them later either.
            return Vec::new();
        };
        documents
            .filter_map(|d| Some((d.api_version()?, d.kind()?)))
            .filter(|(api_version, kind)| !schemas.covers(api_version, kind))
            .map(|(_, kind)| kind.to_owned())
            .collect()
    }

    /// A CRD is not held: the kinds it defines were taken from it before the stream started, and
    /// it is judged like any other document.
    fn must_hold(&self, doc: &Document) -> bool {
        // SOPS files are judged as Flux decrypts them, with their ciphertexts masked.
        doc.value.get("sops").is_some()
            || (self.flux_substitutes
                && (doc.source.has_variables() || crate::render::flux::may_set_variables(doc)))
            || !secret_paths(&doc.value).is_empty()
            // A Flux parent may patch it: judged as patched, with the other documents it builds.
            || doc
                .kind()
                .is_some_and(|kind| self.flux_patches.may_change(doc.path(), kind))
    }
}

/// Files larger than this are judged first ([`big_files`]).
const BIG_FILE: u64 = 256 * 1024;

/// The indexes of the files over [`BIG_FILE`] bytes, largest first: [`sparse`] starts with them.
/// Taken in list order, the two cores of a corpus check reached Argo CD's 1.9 MB `install.yaml`
/// (tens of milliseconds to parse, in the first look and again in the stream) late in one core's
/// half, and the other core waited for it. Only the big ones are listed: an order of every file
/// was 8 bytes a file for the whole stream.
pub(super) fn big_files(files: &Selection) -> Vec<usize> {
    let size = |file: &FileChange| file.after().map_or(0, crate::tree::Content::size);
    let mut big: Vec<usize> = (0..files.len())
        .filter(|&i| size(&files[i]) > BIG_FILE)
        .collect();
    big.sort_by_key(|&i| std::cmp::Reverse(size(&files[i])));
    big
}

/// The most files one core takes on at once before the others may take part of them: rayon splits
/// a range only as long as cores go idle early on, and on the corpus' `check --all` it left the
/// last 30 ms of the stream in one core's hands while the other waited (perf, by thread and time).
/// Smaller pieces let the idle core take a share to the end; 16 files of tens of microseconds
/// each are still long beside what rayon pays to hand them over.
const STEAL_EVERY: usize = 16;

/// `work` on every index below `count`, on all cores, the `big` ones started first; what it
/// returns for some of them, by index. Most files of a large check leave nothing behind (clean,
/// plain): a result slot for each of them was 16 bytes a file alive to the end of the stream
/// (issue 12: 100,000 files within 1.5x the memory of 10,000).
pub(super) fn sparse<R: Send>(
    count: usize,
    big: &[usize],
    work: impl Fn(usize) -> Option<R> + Sync + Send,
) -> Vec<(usize, R)> {
    use rayon::prelude::*;
    let found = |i: usize| Some((i, work(i)?));
    let rest = (0..count)
        .into_par_iter()
        .with_max_len(STEAL_EVERY)
        .filter(|i| !big.contains(i));
    let mut results: Vec<(usize, R)> = big
        .par_iter()
        .copied()
        .chain(rest)
        .filter_map(found)
        .collect();
    results.sort_unstable_by_key(|(i, _)| *i);
    results
}

/// The entry of `index` in a list [`sparse`] returned, if it has one.
pub(super) fn entry<R>(results: &[(usize, R)], index: usize) -> Option<&R> {
    let at = results.binary_search_by_key(&index, |(i, _)| *i).ok()?;
    Some(&results[at].1)
}

#[cfg(test)]
mod tests {
    use super::super::BeforeIndex;
    use super::*;
    use crate::change::Action;
    use crate::tree::Content;

    fn file(path: &str, size: usize) -> FileChange {
        let after = Content::in_memory(vec![b'a'; size]);
        FileChange::new(path, Action::Added, None, Some(after))
    }

    /// A file whose kind no schema covers, judged while another file is finding out whether the
    /// base has CRD files: judged at once as if it had none, then deferred if it has them, and
    /// kept as judged if not. Without the guess it would wait (`asked` set, nothing known yet).
    #[test]
    fn a_file_judged_while_the_base_is_looked_at_is_deferred_only_if_the_base_has_crds() {
        let widget = "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n";
        for (base_file, base_has_crds) in [("crds/widget.yaml", true), ("apps/other.yaml", false)] {
            let base = crate::tree::MemTree::with_files("base", &[(base_file, widget)]);
            let gate = Gate::open(Box::new(base), None).expect("gate");
            let after = Content::in_memory(widget.as_bytes().to_vec());
            let files = [FileChange::new(
                "apps/widget.yaml",
                Action::Added,
                None,
                Some(after),
            )];
            let selected = Selection::of(&files, |_| true);
            let base_crds = BaseCrds::new(&gate, &selected);
            let policies = gate.policies();
            let (schemas, before) = (LazySchemas::new(), BeforeIndex::default());
            let (namespaces, flux_patches) = (TargetNamespaces::default(), FluxPatches::default());
            let stream = Stream {
                gate: &gate,
                policies: &policies,
                before: &before,
                schemas: &schemas,
                crds: &[],
                hold_all: false,
                flux_substitutes: false,
                namespaces: &namespaces,
                flux_patches: &flux_patches,
                base_crds: &base_crds,
            };
            // Another file has started finding out.
            base_crds.asked.store(true, Ordering::Release);
            let outcome = stream.judge(
                0,
                "apps/widget.yaml",
                load(&files[0], &LoadOptions::default()),
            );
            let Outcome::Guessed(guessed) = outcome else {
                panic!("judged without a guess");
            };
            let guessed_as = matches!(guessed.0, Outcome::Judged(_) | Outcome::Clean { .. });
            assert!(guessed_as, "judged as if the base had no CRDs");
            match Outcome::Guessed(guessed).resolved(|| base_crds.exist()) {
                Outcome::Deferred(deferred) => {
                    assert!(base_has_crds, "deferred though the base has no CRD files");
                    assert_eq!(
                        (deferred.index, deferred.kinds.as_slice()),
                        (0, &["Widget".to_owned()][..])
                    );
                }
                Outcome::Judged(_) | Outcome::Clean { .. } => {
                    assert!(!base_has_crds, "kept though the base has CRD files");
                }
                _ => panic!("resolved to neither"),
            }
        }
    }

    /// What YAML makes of scalars, read back from the JSON a kept file holds: kubectl's
    /// resolution (YAML 1.1 booleans and octals, floats, integers past i64), key order, text.
    #[test]
    fn a_kept_file_restores_the_values_it_was_loaded_with() {
        let text = "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n\
                    metadata: {name: w, annotations: {z: '1', a: \"\\u00e9\\t\"}}\n\
                    spec: {b: yes, o: 0755, f: 1.5e-3, g: -0.0, big: 18446744073709551615, \
                    neg: -9223372036854775808, long: 0.1000000000000000055511151231257827, \
                    none: ~, list: [3, {k: v}], emoji: \"\u{1F600}\"}\n---\n---\nkind: List\n\
                    items: [{kind: A}, {kind: B}]\n";
        let load = || load_manifest("crd.yaml", text.as_bytes(), &LoadOptions::default());
        let loaded = load();
        // The ambiguous `yes` and `0755`, and the items without an apiVersion.
        assert_eq!(loaded.findings.len(), 4, "{:?}", loaded.findings);
        let restored = Kept::new(load()).restore().expect("restores");
        assert_eq!(
            format!("{:?}", loaded.findings),
            format!("{:?}", restored.findings)
        );
        assert_eq!(restored.documents.len(), loaded.documents.len());
        for (a, b) in loaded.documents.iter().zip(&restored.documents) {
            assert_eq!(a.value, b.value);
            assert_eq!(
                serde_json::to_string(&a.value).unwrap(),
                serde_json::to_string(&b.value).unwrap(),
                "key order"
            );
            assert_eq!((a.index, a.item), (b.index, b.item));
            assert_eq!(a.locate("/spec/list/1/k"), b.locate("/spec/list/1/k"));
        }
        assert!(Arc::ptr_eq(
            &restored.documents[0].source,
            restored.source.as_ref().unwrap()
        ));
    }

    /// Templates in and out of a chart are told apart as before, and each directory's
    /// `Chart.yaml` is looked up once, however many files below it ask.
    #[test]
    fn each_directory_is_asked_for_a_chart_once() {
        let files = [
            ("charts/web/Chart.yaml", "name: web\n"),
            ("charts/web/templates/a.yaml", "kind: {{ .Values.kind }}\n"),
            ("charts/web/templates/b.yaml", "name: {{ .Release.Name }}\n"),
            ("plain/deploy/c.yaml", "name: {{ not.a.chart }}\n"),
            ("plain/deploy/d.yaml", "name: \"{{ x }}\"\n"),
            ("charts/web/templates/plain.yaml", "kind: ConfigMap\n"),
        ];
        let tree = crate::tree::CountingTree::new(&files);
        let charts = ChartDirs::new(&tree);
        let template = |path: &str| {
            let text = files.iter().find(|(p, _)| *p == path).unwrap().1;
            looks_like_helm_template(path, text.as_bytes(), &charts)
        };
        assert!(template("charts/web/templates/a.yaml"));
        assert!(template("charts/web/templates/b.yaml"));
        assert!(!template("charts/web/templates/plain.yaml"));
        assert!(!template("plain/deploy/c.yaml"));
        assert!(!template("plain/deploy/d.yaml"));
        let reads = tree.reads.lock().unwrap();
        for chart in [
            "charts/web/templates/Chart.yaml",
            "charts/web/Chart.yaml",
            "plain/deploy/Chart.yaml",
            "plain/Chart.yaml",
            "Chart.yaml",
        ] {
            assert_eq!(reads.get(chart), Some(&1), "{chart}: {reads:?}");
        }
        assert_eq!(reads.len(), 5, "{reads:?}");
    }

    #[test]
    fn only_big_files_are_listed_largest_first() {
        let files = [
            file("a", 10),
            file("b", 300 * 1024),
            file("c", 20),
            file("d", 900 * 1024),
            file("e", 30),
        ];
        assert_eq!(big_files(&Selection::All(&files)), vec![3, 1]);
        assert!(big_files(&Selection::All(&files[..1])).is_empty());
        let some = Selection::Some(files.iter().skip(2).collect());
        assert_eq!(big_files(&some), vec![1]);
    }

    #[test]
    fn what_is_kept_of_every_file_until_all_are_done_stays_a_word_or_two() {
        // Kept for the files that are not plain or not clean, until all are looked at or judged.
        assert!(std::mem::size_of::<Option<Box<Looked>>>() <= 8);
        assert!(std::mem::size_of::<Outcome>() <= 16);
        assert!(Looked::plain().unless_plain().is_none());
        let commented = Looked {
            commented: true,
            ..Looked::plain()
        };
        assert!(commented.unless_plain().is_some_and(|l| l.commented));
        let crds = Looked {
            look: FirstLook::Crds {
                kinds: Vec::new(),
                substituted: false,
                kept: Box::new(Kept::new(Loaded::default())),
            },
            ..Looked::plain()
        };
        assert!(crds.unless_plain().is_some());
        let indexed = Looked {
            manifest: Some(Vec::new()),
            ..Looked::plain()
        };
        assert!(indexed.unless_plain().is_some());
    }

    #[test]
    fn a_core_held_up_by_one_file_leaves_the_rest_to_the_other() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::time::{Duration, Instant};
        // The core that takes file 0 waits there until the other has done all it can take.
        // What it cannot take is the rest of the piece file 0 came in: at most `STEAL_EVERY`.
        let count = 40 * STEAL_EVERY;
        let done = AtomicUsize::new(0);
        // How many the other had done when the wait ran out; none if it never did.
        let waited_out = AtomicUsize::new(usize::MAX);
        let results = crate::tree::tests::threads(2).install(|| {
            sparse(count, &[], |i| {
                if i == 0 {
                    let deadline = Instant::now() + Duration::from_secs(10);
                    while done.load(Ordering::SeqCst) < count - STEAL_EVERY {
                        if Instant::now() > deadline {
                            waited_out.store(done.load(Ordering::SeqCst), Ordering::SeqCst);
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(1));
                    }
                } else {
                    done.fetch_add(1, Ordering::SeqCst);
                }
                Some(i)
            })
        });
        let waited_out = waited_out.into_inner();
        assert!(
            waited_out == usize::MAX,
            "the other core did {waited_out} of {count} files while one was held up"
        );
        assert_eq!(results.len(), count);
    }

    #[test]
    fn sparse_results_come_by_index_whatever_the_order_of_work() {
        let odd_doubled = |i: usize| (i % 2 == 1).then_some(i * 2);
        let expected: Vec<(usize, usize)> = (0..100)
            .filter(|i| i % 2 == 1)
            .map(|i| (i, i * 2))
            .collect();
        assert_eq!(sparse(100, &[99, 7, 4], odd_doubled), expected);
        assert_eq!(sparse(100, &[], odd_doubled), expected);
        // A big index is worked on once, not again among the rest.
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let all = sparse(10, &[3], |i| {
            calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Some(i)
        });
        assert_eq!(calls.into_inner(), 10);
        assert_eq!(all.len(), 10);
        assert_eq!(entry(&all, 3), Some(&3));
        assert_eq!(entry(&expected, 4), None);
    }
}
