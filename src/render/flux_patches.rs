//! Flux's own kustomize overrides. kustomize-controller builds a `Kustomization`'s `spec.path`
//! through a kustomization it generates with the Flux object's `spec.patches` (strategic-merge and
//! JSON6902, each with an optional `target` selector), `namePrefix`, `nameSuffix` and `images`;
//! `commonMetadata` labels and annotates every object it applies. What the cluster gets is the
//! patched object, so that is what the gate judges: a child Flux `Kustomization` that takes its
//! `interval` from its parent's patch is complete, and a parent patch that sets a wrong value
//! breaks every child it selects.
//!
//! The overrides are applied the way the Argo CD overrides are (see `argo_kustomize`): the
//! documents under the path are written into a render sandbox, each marked with an annotation, a
//! temporary kustomization lists them with the parent's overrides, and the real kustomize builds
//! it; the marks map the built objects back to their documents. Selection (group, version, kind,
//! name, namespace, label and annotation selectors) is kustomize's own. A parent the gate cannot
//! apply is a `render/failed` error, never a silent pass.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use rayon::prelude::*;
use regex::Regex;
use serde_json::{Map, Value, json};

use super::cache::RenderCache;
use super::flux::FLUX_GROUP;
use super::graph::{KUSTOMIZATION_FILES, Kustomizations, split};
use super::paths::resolve;
use super::{Checkout, Manifest, RenderOutput, Renderer, Sandbox, run};
use crate::change::PathLookup;
use crate::finding::{Finding, Location, Rule};
use crate::load::sniff::{contains, hides_from_filters, names_group};
use crate::load::{Document, LoadOptions, SourceFile, load_file, load_manifest};
use crate::object::ObjectId;
use crate::tree::{Tree, is_within};

/// The annotation that carries a document's number through the build.
const MARK: &str = "stategate.dev/flux-document";
/// `spec` keys that change what Flux builds from the path.
const OVERRIDES: &[&str] = &[
    "patches",
    "patchesStrategicMerge",
    "patchesJson6902",
    "namePrefix",
    "nameSuffix",
    "images",
    "commonMetadata",
];
const SELECTOR_KEYS: &[&str] = &[
    "group",
    "version",
    "kind",
    "name",
    "namespace",
    "labelSelector",
    "annotationSelector",
];

/// Every Flux `Kustomization` of a tree with overrides, and where it builds.
#[derive(Debug, Default)]
pub struct FluxPatches {
    parents: Vec<Parent>,
}

#[derive(Debug)]
struct Parent {
    /// `namespace/name`.
    name: String,
    file: String,
    /// `spec.path` as a repository path.
    path: String,
    /// Every path kustomize reads to build `path`, when it has a kustomization; `None` when Flux
    /// generates one (then everything under `path` is built).
    built: Option<BTreeSet<String>>,
    patches: Vec<Patch>,
    /// `namePrefix`, `nameSuffix`, `images`: kustomization fields as they are.
    fields: Map<String, Value>,
    common_labels: Map<String, Value>,
    common_annotations: Map<String, Value>,
    /// Why the gate cannot apply this parent's overrides.
    problem: Option<String>,
}

#[derive(Debug)]
struct Patch {
    /// The patch text kustomize reads.
    text: String,
    target: Option<Value>,
    /// The kinds it may change; `None` for any.
    kinds: Option<Regex>,
    /// A strategic-merge patch without a target patches the object it names.
    names: Option<(String, String)>,
    /// Where the text is in the parent's document.
    pointer: String,
}

impl Parent {
    fn covers(&self, path: &str) -> bool {
        match &self.built {
            Some(built) => built.contains(path),
            None => is_within(path, &self.path),
        }
    }

    /// Whether an object of `kind` may be changed by this parent.
    fn touches(&self, kind: &str) -> bool {
        self.problem.is_some()
            || !self.fields.is_empty()
            || !self.common_labels.is_empty()
            || !self.common_annotations.is_empty()
            || self
                .patches
                .iter()
                .any(|p| p.kinds.as_ref().is_none_or(|k| k.is_match(kind)))
    }
}

/// One parent's documents (by index) and what building them gave.
type Built = (usize, Vec<usize>, Result<Vec<Value>, Box<Finding>>);

/// A document the overrides changed: enough to tell which of its findings the parent caused.
/// The object as applied is not copied here: it is the document at `at` in the list `apply`
/// returned, which the gate keeps to the end of the check (two copies of every patched object
/// were a twentieth of the corpus check's peak).
#[derive(Debug, Clone)]
pub struct PatchedDocument {
    path: String,
    id: ObjectId,
    /// Shared by the copies of one object that several parents build.
    written: Arc<Value>,
    at: usize,
    parent: usize,
}

/// What applying the overrides gave: the findings (`render/failed`) and the patched documents.
#[derive(Debug, Default)]
pub struct Applied {
    pub findings: Vec<Finding>,
    pub patched: Vec<PatchedDocument>,
}

impl FluxPatches {
    /// Whether a manifest's bytes may declare a Flux Kustomization with overrides (the filter of
    /// [`super::scan_manifests`]).
    pub fn may_declare(bytes: &[u8]) -> bool {
        hides_from_filters(bytes)
            || (names_group(bytes, FLUX_GROUP)
                && OVERRIDES.iter().any(|k| contains(bytes, k.as_bytes())))
    }

    /// The Flux Kustomizations with overrides among the tree's manifests (read by
    /// [`super::scan_manifests`], with a filter that passes what [`FluxPatches::may_declare`]
    /// passes).
    pub fn from_manifests(
        kustomizations: &Kustomizations<'_>,
        manifests: &[Manifest],
    ) -> FluxPatches {
        let tree = kustomizations.tree();
        let declared: Vec<(String, Value)> = manifests
            .iter()
            .flat_map(|(path, docs)| {
                docs.iter()
                    .filter(|d| is_parent(&d.value))
                    .map(move |d| (path.clone(), d.value.clone()))
            })
            .collect();
        if declared.is_empty() {
            return FluxPatches::default();
        }
        let graph = kustomizations.graph();
        let parents = declared
            .into_iter()
            .map(|(file, value)| {
                let mut parent = parent(&file, &value);
                parent.path = source_path(tree, &file, spec_path(&value));
                if graph.dirs.contains_key(&parent.path) {
                    parent.built = Some(graph.closure(&parent.path));
                }
                parent
            })
            .collect();
        FluxPatches { parents }
    }

    pub fn is_empty(&self) -> bool {
        self.parents.is_empty()
    }

    /// Whether an object of `kind` in the file `path` may be changed by a parent: such files are
    /// held whole for [`FluxPatches::apply`].
    pub fn may_change(&self, path: &str, kind: &str) -> bool {
        self.covering(path)
            .iter()
            .any(|&i| self.parents[i].touches(kind))
    }

    /// The files under the path of a parent that `changed` alters: every object they hold may
    /// change in the cluster without changing in Git.
    pub fn built_by_changed(&self, tree: &dyn Tree, changed: &PathLookup) -> Vec<String> {
        let mut files = BTreeSet::new();
        for parent in self.parents.iter().filter(|p| changed.contains(&p.file)) {
            let candidates: Vec<String> = match &parent.built {
                Some(built) => built.iter().cloned().collect(),
                None => tree.files_under(&parent.path),
            };
            files.extend(candidates.into_iter().filter(|p| {
                (p.ends_with(".yaml") || p.ends_with(".yml") || p.ends_with(".json"))
                    && !KUSTOMIZATION_FILES.contains(&split(p).1)
                    && parent.covers(p)
            }));
        }
        files.into_iter().collect()
    }

    /// The parents whose build reads `path`: every one whose kustomization reads it, and of those
    /// without a kustomization of their own, the one with the longest `spec.path` above it (as for
    /// post-build substitution).
    fn covering(&self, path: &str) -> Vec<usize> {
        let longest = self
            .parents
            .iter()
            .filter(|p| p.built.is_none() && p.covers(path))
            .map(|p| p.path.len())
            .max();
        self.parents
            .iter()
            .enumerate()
            .filter(|(_, p)| p.covers(path) && (p.built.is_some() || Some(p.path.len()) == longest))
            .map(|(i, _)| i)
            .collect()
    }

    /// Replace every document a parent changes by the object Flux applies, one copy per parent
    /// that builds it. `is_object` says which documents are objects of their own (not rendered
    /// ones, kustomizations or patch files); `side` goes into messages. Builds are taken from
    /// `cache` when it holds one with the same inputs, and clean ones are stored there.
    pub fn apply(
        &self,
        documents: &mut Vec<Document>,
        is_object: &dyn Fn(&Document) -> bool,
        builder: &Builder,
        side: &str,
    ) -> Applied {
        let mut applied = Applied::default();
        if self.parents.is_empty() {
            return applied;
        }
        let mut selected: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (i, doc) in documents.iter().enumerate() {
            let (Some(kind), Some(_)) = (doc.kind(), doc.api_version()) else {
                continue;
            };
            if doc.value.pointer("/metadata/name").is_none() {
                continue;
            }
            let parents: Vec<usize> = self
                .covering(doc.path())
                .into_iter()
                .filter(|&p| self.parents[p].touches(kind))
                .collect();
            if parents.is_empty() || !is_object(doc) {
                continue;
            }
            for parent in parents {
                selected.entry(parent).or_default().push(i);
            }
        }
        let results: Vec<Built> = selected
            .into_par_iter()
            .map(|(parent, indices)| {
                let docs: Vec<&Document> = indices.iter().map(|&i| &documents[i]).collect();
                let built = self.build(parent, &docs, builder, side);
                (parent, indices, built)
            })
            .collect();
        // The written values move here from the documents they replace, which are dropped below.
        let mut written: BTreeMap<usize, Arc<Value>> = BTreeMap::new();
        let mut added = Vec::new();
        for (parent, indices, built) in results {
            match built {
                Ok(values) => {
                    for (&i, value) in indices.iter().zip(values) {
                        let was = written
                            .entry(i)
                            .or_insert_with(|| Arc::new(std::mem::take(&mut documents[i].value)));
                        // Its value moved out above: the copy costs no object.
                        let mut doc = documents[i].clone();
                        doc.value = value;
                        applied.patched.push(PatchedDocument {
                            path: doc.path().to_owned(),
                            id: doc.id(),
                            written: Arc::clone(was),
                            at: added.len(),
                            parent,
                        });
                        added.push(doc);
                    }
                }
                // The documents stay as written; the error blocks.
                Err(finding) => applied.findings.push(*finding),
            }
        }
        let mut i = 0;
        documents.retain(|_| {
            let keep = !written.contains_key(&i);
            i += 1;
            keep
        });
        for patched in &mut applied.patched {
            patched.at += documents.len();
        }
        documents.extend(added);
        applied
    }

    /// The objects `docs` become under one parent, in order, or why they cannot be built.
    fn build(
        &self,
        parent: usize,
        docs: &[&Document],
        builder: &Builder,
        side: &str,
    ) -> Result<Vec<Value>, Box<Finding>> {
        let p = &self.parents[parent];
        let fail = |why: String| {
            Box::new(Finding::error(
                Rule::RenderFailed,
                format!(
                    "Flux Kustomization `{}` ({}) at {side}: the gate cannot apply its overrides to \
                     the objects under `{}`: {why}",
                    p.name,
                    p.file,
                    if p.path.is_empty() { "." } else { &p.path }
                ),
            )
            .in_file(&p.file)
            .help(
                "Flux applies `spec.patches`, `namePrefix`, `nameSuffix`, `images` and \
                 `commonMetadata` before the objects reach the cluster; fix the overrides so \
                 that `kustomize build` applies them",
            ))
        };
        if let Some(problem) = &p.problem {
            return Err(fail(problem.clone()));
        }
        // kustomize refuses two objects with one identity in a build: such documents (of two
        // alternative overlays under one path) are built in separate rounds.
        let mut rounds: Vec<Vec<usize>> = Vec::new();
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for (n, doc) in docs.iter().enumerate() {
            let round = seen.entry(identity(&doc.value)).or_insert(0);
            if rounds.len() <= *round {
                rounds.push(Vec::new());
            }
            rounds[*round].push(n);
            *round += 1;
        }
        let mut out: Vec<Option<Value>> = vec![None; docs.len()];
        for (round, members) in rounds.iter().enumerate() {
            let values = builder.round(p, docs, members, round == 0, side);
            let values = values.map_err(fail)?;
            for (n, value) in values {
                out[n] = Some(value);
            }
        }
        out.into_iter()
            .zip(docs)
            .map(|(value, doc)| {
                value.ok_or_else(|| {
                    fail(format!(
                        "the object built from {} (document {}) lost the gate's marker \
                         annotation, so the gate cannot tell which document it is",
                        doc.path(),
                        doc.index + 1
                    ))
                })
            })
            .collect()
    }
}

/// How parents' builds are run: the kustomize command, and the render cache that spares a build
/// whose inputs were built before.
pub struct Builder<'a> {
    pub command: &'a [String],
    pub cache: Option<&'a RenderCache>,
}

impl Builder<'_> {
    /// One round of a parent's build: the objects built from `members` of `docs`, by number.
    fn round(
        &self,
        p: &Parent,
        docs: &[&Document],
        members: &[usize],
        first: bool,
        side: &str,
    ) -> Result<Vec<(usize, Value)>, String> {
        let mut files = Vec::new();
        let mut resources = Vec::new();
        let mut names = BTreeSet::new();
        for &n in members {
            let mut value = docs[n].value.clone();
            mark(&mut value, n);
            names.insert((
                text(&value, "/kind").to_owned(),
                text(&value, "/metadata/name").to_owned(),
            ));
            let file = format!("docs/{n}.yaml");
            files.push((file.clone(), value.to_string().into_bytes()));
            resources.push(file);
        }
        let patches: Vec<Value> = p
            .patches
            .iter()
            // An untargeted patch of an object this round does not hold is kustomize's error in
            // the first round only.
            .filter(|patch| first || patch.names.as_ref().is_none_or(|n| names.contains(n)))
            .map(|patch| {
                let mut entry = Map::new();
                entry.insert("patch".into(), json!(patch.text));
                if let Some(target) = &patch.target {
                    entry.insert("target".into(), target.clone());
                }
                Value::Object(entry)
            })
            .collect();
        let mut kustomization = Map::new();
        kustomization.insert(
            "apiVersion".into(),
            json!("kustomize.config.k8s.io/v1beta1"),
        );
        kustomization.insert("kind".into(), json!("Kustomization"));
        kustomization.insert("resources".into(), json!(resources));
        if !patches.is_empty() {
            kustomization.insert("patches".into(), Value::Array(patches));
        }
        kustomization.extend(p.fields.clone());
        files.push((
            "kustomization.yaml".to_owned(),
            Value::Object(kustomization).to_string().into_bytes(),
        ));
        // The build reads nothing but these files: they, the command and the parent's place
        // (which the built objects carry) are the whole key.
        let key = self.cache.map(|_| {
            let label = format!("flux patches\0{}\0{}", p.file, p.path);
            let inputs = files.iter().map(|(f, b)| (f.as_str(), b.as_slice()));
            RenderCache::key_of_files(&label, inputs, self.command)
        });
        let cached = self.cache.zip(key.as_ref()).and_then(|(c, k)| c.get(k));
        let output = match cached {
            Some(output) => output,
            None => {
                let output = self.run(p, &files, side)?;
                if let (Some(cache), Some(key)) = (self.cache, &key) {
                    cache.put(key, &output);
                }
                output
            }
        };
        if let Some(finding) = output.findings.into_iter().next() {
            let message = finding
                .metadata
                .get("stderr")
                .and_then(Value::as_str)
                .map_or(finding.message.clone(), str::to_owned);
            return Err(message);
        }
        let mut values = Vec::new();
        for object in output.objects {
            let mut value = object.value;
            let Some(n) = unmark(&mut value) else {
                continue;
            };
            let Some(written) = members.contains(&n).then(|| &docs[n].value) else {
                continue;
            };
            restore_annotations(&mut value, written);
            common_metadata(&mut value, p);
            values.push((n, value));
        }
        Ok(values)
    }

    /// Build the written files with kustomize in a fresh sandbox.
    fn run(
        &self,
        p: &Parent,
        files: &[(String, Vec<u8>)],
        side: &str,
    ) -> Result<RenderOutput, String> {
        let sandbox = Sandbox::create().map_err(|e| e.to_string())?;
        let checkout = Checkout { sandbox };
        for (file, bytes) in files {
            checkout
                .sandbox
                .write_file(file, bytes)
                .map_err(|e| e.to_string())?;
        }
        Ok(run(
            &checkout,
            self.command,
            &["."],
            &p.path,
            &p.file,
            side,
            Renderer::Kustomize,
        ))
    }
}

impl FluxPatches {
    /// Move the findings a parent caused to the parent's patch lines: a finding on a value that
    /// the document's own file does not hold as applied (absent there, or another scalar) was
    /// set by the parent. Returns the parents' sources, for the report's snippets.
    pub fn relocate(
        &self,
        findings: &mut [Finding],
        patched: &[PatchedDocument],
        documents: &[Document],
        tree: &dyn Tree,
    ) -> Vec<Arc<SourceFile>> {
        if patched.is_empty() {
            return Vec::new();
        }
        let by_object: BTreeMap<(&str, &ObjectId), &PatchedDocument> = patched
            .iter()
            .map(|d| ((d.path.as_str(), &d.id), d))
            .collect();
        let mut parents: BTreeMap<usize, Option<Document>> = BTreeMap::new();
        let mut sources = Vec::new();
        for finding in findings.iter_mut() {
            let (Some(location), Some(object), Some(field)) =
                (&finding.location, &finding.object, &finding.field)
            else {
                continue;
            };
            let Some(doc) = by_object.get(&(location.file.as_str(), object)) else {
                continue;
            };
            // `documents` is the list `apply` patched, and nothing reorders it after.
            let Some(applied) = documents.get(doc.at).map(|d| &d.value) else {
                continue;
            };
            if !set_by_parent(&doc.written, applied, field) {
                continue;
            }
            let parent = &self.parents[doc.parent];
            let declared = parents.entry(doc.parent).or_insert_with(|| {
                let bytes = tree.read(&parent.file)?;
                load_manifest(&parent.file, &bytes, &LoadOptions::default())
                    .documents
                    .into_iter()
                    .find(|d| is_parent(&d.value) && declared_name(&d.value) == parent.name)
            });
            let Some(declared) = declared.as_ref() else {
                continue;
            };
            let at = parent
                .patch_location(declared, field, applied)
                .unwrap_or_else(|| declared.locate(parent.field_for(field)));
            if !sources
                .iter()
                .any(|s: &Arc<SourceFile>| s.path == parent.file)
            {
                sources.push(Arc::clone(&declared.source));
            }
            let written_in = location.file.clone();
            finding.location = Some(at);
            finding
                .metadata
                .insert("flux_patched_by".into(), json!(parent.name));
            finding
                .metadata
                .insert("object_file".into(), json!(written_in));
        }
        sources
    }
}

impl Parent {
    /// The spec field of the parent that set `field`, when no patch did.
    fn field_for(&self, field: &str) -> &'static str {
        if field.starts_with("/metadata/name") && self.fields.contains_key("namePrefix") {
            "/spec/namePrefix"
        } else if field.starts_with("/metadata/name") && self.fields.contains_key("nameSuffix") {
            "/spec/nameSuffix"
        } else if field.starts_with("/metadata/labels") && !self.common_labels.is_empty()
            || field.starts_with("/metadata/annotations") && !self.common_annotations.is_empty()
        {
            "/spec/commonMetadata"
        } else if self.fields.contains_key("images") && field.contains("/image") {
            "/spec/images"
        } else if !self.patches.is_empty() {
            "/spec/patches"
        } else {
            "/spec"
        }
    }

    /// The line of the patch that sets `field` to its applied value, in the parent's file: the
    /// last patch that does (later patches win), else the last that writes the field at all.
    fn patch_location(
        &self,
        declared: &Document,
        field: &str,
        applied: &Value,
    ) -> Option<Location> {
        let wanted = applied.pointer(field);
        let mut best: Option<(bool, usize, &Patch, String)> = None;
        for patch in &self.patches {
            let Some((inner, exact)) = patch_pointer(&patch.text, field, wanted) else {
                continue;
            };
            let depth = inner.matches('/').count();
            if best
                .as_ref()
                .is_none_or(|(e, d, _, _)| (exact, depth) >= (*e, *d))
            {
                best = Some((exact, depth, patch, inner));
            }
        }
        let (_, _, patch, inner) = best?;
        let written = declared.locate(&patch.pointer);
        let patch_doc = load_file(
            &declared.source.path,
            patch.text.as_bytes(),
            &LoadOptions::default(),
        )
        .documents
        .into_iter()
        .next()?;
        let within = patch_doc.locate(&inner);
        Some(in_block(&declared.source, &written, &patch.text, &within))
    }
}

/// Where `field` is written in a patch text, as a pointer into the patch document, and whether
/// the patch writes exactly the `wanted` value there.
fn patch_pointer(text: &str, field: &str, wanted: Option<&Value>) -> Option<(String, bool)> {
    let loaded = load_file("patch", text.as_bytes(), &LoadOptions::default());
    let value = &loaded.documents.first()?.value;
    if let Some(ops) = value.as_array() {
        // JSON6902: the last operation whose path is the field or one of its parents.
        return ops.iter().enumerate().rev().find_map(|(i, op)| {
            let path = op.get("path")?.as_str()?;
            let rest = field.strip_prefix(path)?;
            if !(rest.is_empty() || rest.starts_with('/')) {
                return None;
            }
            let value = op.get("value")?;
            let exact = value.pointer(rest) == wanted;
            let inner = format!("/{i}/value{rest}");
            Some((inner, exact))
        });
    }
    // Strategic merge: the deepest part of the field the patch writes (not its identity).
    let mut pointer = String::new();
    let mut deepest = None;
    for segment in field.split('/').skip(1) {
        pointer.push('/');
        pointer.push_str(segment);
        if value.pointer(&pointer).is_some() {
            deepest = Some(pointer.clone());
        } else {
            break;
        }
    }
    let deepest = deepest.filter(|p| !matches!(p.as_str(), "/metadata" | "/metadata/name"))?;
    Some((
        deepest.clone(),
        deepest == field && value.pointer(field) == wanted,
    ))
}

/// A location inside a patch text moved into the parent's file, where the text is a literal
/// block scalar (`patch: |`): its lines are the file's lines, indented. Other styles point at
/// the patch's first line.
fn in_block(
    source: &Arc<SourceFile>,
    written: &Location,
    text: &str,
    within: &Location,
) -> Location {
    let Some(start) = written.line else {
        return written.clone();
    };
    let lines: Vec<&str> = source.text.lines().collect();
    let first = text.lines().position(|l| !l.trim().is_empty()).unwrap_or(0);
    let first_text = text.lines().nth(first).unwrap_or("").trim();
    let found = (start as usize - 1..lines.len().min(start as usize + 2))
        .find(|&i| lines.get(i).is_some_and(|l| l.trim() == first_text));
    let (Some(block), Some(line)) = (found, within.line) else {
        return written.clone();
    };
    let in_text = line as usize - 1;
    let at = block + in_text.saturating_sub(first);
    let Some(file_line) = lines.get(at) else {
        return written.clone();
    };
    let text_line = text.lines().nth(in_text).unwrap_or("");
    let indent = file_line.len() - file_line.trim_start().len();
    let text_indent = text_line.len() - text_line.trim_start().len();
    let column = within.column.unwrap_or(1) as usize + indent - text_indent.min(indent);
    let offset = line_start(&source.text, at) + column - 1;
    Location {
        file: source.path.clone(),
        line: u32::try_from(at + 1).ok(),
        column: u32::try_from(column).ok(),
        offset: Some(offset.min(source.text.len())),
        len: within.len,
    }
}

fn line_start(text: &str, line: usize) -> usize {
    if line == 0 {
        return 0;
    }
    text.match_indices('\n')
        .nth(line - 1)
        .map_or(text.len(), |(i, _)| i + 1)
}

/// Whether the applied value at `field` is not what the document's own file says: absent there,
/// or another value that is not a mapping (a mapping the file writes stays the file's).
fn set_by_parent(written: &Value, applied: &Value, field: &str) -> bool {
    if field.is_empty() {
        return false;
    }
    match (written.pointer(field), applied.pointer(field)) {
        (None, Some(_)) => true,
        (Some(w), Some(a)) => !w.is_object() && w != a,
        _ => false,
    }
}

fn is_parent(value: &Value) -> bool {
    value
        .get("apiVersion")
        .and_then(Value::as_str)
        .is_some_and(|v| v.starts_with(FLUX_GROUP))
        && value.get("kind").and_then(Value::as_str) == Some("Kustomization")
        && value
            .get("spec")
            .and_then(Value::as_object)
            .is_some_and(|spec| OVERRIDES.iter().any(|k| spec.contains_key(*k)))
}

fn declared_name(value: &Value) -> String {
    let namespace = value
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("flux-system");
    format!("{namespace}/{}", text(value, "/metadata/name"))
}

fn spec_path(value: &Value) -> &str {
    text(value, "/spec/path")
}

fn text<'v>(value: &'v Value, pointer: &str) -> &'v str {
    value.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// `spec.path` as a repository path. Flux paths are relative to the source's root: the
/// repository, or for a source built from one of its directories (an OCI artifact of
/// `kubernetes/`), the ancestor of the declaring file under which the path exists.
fn source_path(tree: &dyn Tree, file: &str, path: &str) -> String {
    let at_root = resolve("", path).unwrap_or_default();
    if at_root.is_empty() || !tree.files_under(&at_root).is_empty() {
        return at_root;
    }
    let dirs: Vec<&str> = crate::tree::ancestors(file)
        .filter(|dir| !dir.is_empty())
        .collect();
    dirs.iter()
        .rev()
        .filter_map(|dir| resolve(dir, path))
        .find(|p| !tree.files_under(p).is_empty())
        .unwrap_or(at_root)
}

/// One parent's overrides, read as kustomize-controller reads them.
fn parent(file: &str, value: &Value) -> Parent {
    let mut parent = Parent {
        name: declared_name(value),
        file: file.to_owned(),
        path: String::new(),
        built: None,
        patches: Vec::new(),
        fields: Map::new(),
        common_labels: Map::new(),
        common_annotations: Map::new(),
        problem: None,
    };
    if let Err(problem) = read_overrides(&mut parent, &value["spec"]) {
        parent.problem = Some(problem);
    }
    parent
}

fn read_overrides(parent: &mut Parent, spec: &Value) -> Result<(), String> {
    for (i, entry) in list(spec, "patches")?.iter().enumerate() {
        let entry = entry
            .as_object()
            .ok_or(format!("`spec.patches[{i}]` is not a mapping"))?;
        if let Some(key) = entry
            .keys()
            .find(|k| !matches!(k.as_str(), "patch" | "target"))
        {
            return Err(format!(
                "`spec.patches[{i}].{key}` is not a Flux patch field"
            ));
        }
        let text = entry
            .get("patch")
            .and_then(Value::as_str)
            .ok_or(format!("`spec.patches[{i}].patch` is not a string"))?;
        parent.patches.push(patch(
            text.to_owned(),
            entry.get("target"),
            format!("/spec/patches/{i}/patch"),
        )?);
    }
    for (i, object) in list(spec, "patchesStrategicMerge")?.iter().enumerate() {
        parent.patches.push(patch(
            object.to_string(),
            None,
            format!("/spec/patchesStrategicMerge/{i}"),
        )?);
    }
    for (i, entry) in list(spec, "patchesJson6902")?.iter().enumerate() {
        let ops = entry
            .get("patch")
            .filter(|p| p.is_array())
            .ok_or(format!("`spec.patchesJson6902[{i}].patch` is not a list"))?;
        parent.patches.push(patch(
            ops.to_string(),
            entry.get("target"),
            format!("/spec/patchesJson6902/{i}/patch"),
        )?);
    }
    for key in ["namePrefix", "nameSuffix"] {
        if let Some(v) = spec.get(key) {
            let s = v.as_str().ok_or(format!("`spec.{key}` is not a string"))?;
            parent.fields.insert(key.into(), json!(s));
        }
    }
    let images = list(spec, "images")?;
    if !images.is_empty() {
        parent.fields.insert("images".into(), Value::Array(images));
    }
    if let Some(common) = spec.get("commonMetadata") {
        let map = |key: &str| -> Result<Map<String, Value>, String> {
            match common.get(key) {
                None => Ok(Map::new()),
                Some(Value::Object(m)) if m.values().all(Value::is_string) => Ok(m.clone()),
                Some(_) => Err(format!(
                    "`spec.commonMetadata.{key}` is not a map of strings"
                )),
            }
        };
        parent.common_labels = map("labels")?;
        parent.common_annotations = map("annotations")?;
    }
    Ok(())
}

fn list(spec: &Value, key: &str) -> Result<Vec<Value>, String> {
    match spec.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => Ok(items.clone()),
        Some(_) => Err(format!("`spec.{key}` is not a list")),
    }
}

fn patch(text: String, target: Option<&Value>, pointer: String) -> Result<Patch, String> {
    let target = match target {
        None | Some(Value::Null) => None,
        Some(Value::Object(t)) => {
            if let Some(key) = t.keys().find(|k| !SELECTOR_KEYS.contains(&k.as_str())) {
                return Err(format!(
                    "`{key}` in the target of {pointer} is not a selector field"
                ));
            }
            Some(Value::Object(t.clone()))
        }
        Some(_) => return Err(format!("the target of {pointer} is not a mapping")),
    };
    let parsed = load_file("patch", text.as_bytes(), &LoadOptions::default());
    let first = parsed.documents.first().map(|d| d.value.clone());
    let (kinds, names) = match (&target, &first) {
        (Some(t), _) => (
            t.get("kind")
                .and_then(Value::as_str)
                .map(|k| {
                    Regex::new(&format!("^(?:{k})$"))
                        .map_err(|e| format!("the target kind of {pointer} is not a pattern: {e}"))
                })
                .transpose()?,
            None,
        ),
        (None, Some(object)) if object.is_object() => {
            let kind = text_of(object, "/kind");
            let name = text_of(object, "/metadata/name");
            (
                Some(
                    Regex::new(&format!("^{}$", regex::escape(&kind)))
                        .map_err(|e| e.to_string())?,
                ),
                Some((kind, name)),
            )
        }
        // A JSON6902 patch without a target, or one that does not parse: kustomize says why.
        _ => (None, None),
    };
    Ok(Patch {
        text,
        target,
        kinds,
        names,
        pointer,
    })
}

fn text_of(value: &Value, pointer: &str) -> String {
    text(value, pointer).to_owned()
}

/// `apiVersion/kind/namespace/name`: what kustomize refuses twice in one build.
fn identity(value: &Value) -> String {
    format!(
        "{}/{}/{}/{}",
        text(value, "/apiVersion"),
        text(value, "/kind"),
        text(value, "/metadata/namespace"),
        text(value, "/metadata/name")
    )
}

fn mark(value: &mut Value, n: usize) {
    if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        let annotations = meta.entry("annotations").or_insert_with(|| json!({}));
        if !annotations.is_object() {
            *annotations = json!({});
        }
        annotations[MARK] = json!(n.to_string());
    }
}

fn unmark(value: &mut Value) -> Option<usize> {
    let annotations = value
        .pointer_mut("/metadata/annotations")?
        .as_object_mut()?;
    annotations.remove(MARK)?.as_str()?.parse().ok()
}

/// Drop the annotations mapping the marker created, when the object had none and the build
/// added none.
fn restore_annotations(value: &mut Value, written: &Value) {
    if written.pointer("/metadata/annotations").is_some() {
        return;
    }
    let empty = value
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .is_some_and(Map::is_empty);
    if empty && let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("annotations");
    }
}

/// Flux sets `commonMetadata` on every object it applies, over what the object says.
fn common_metadata(value: &mut Value, parent: &Parent) {
    for (key, pairs) in [
        ("labels", &parent.common_labels),
        ("annotations", &parent.common_annotations),
    ] {
        if pairs.is_empty() {
            continue;
        }
        if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
            let entry = meta.entry(key).or_insert_with(|| json!({}));
            if let Some(map) = entry.as_object_mut() {
                map.extend(pairs.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_patch_writing_the_field_is_found_in_both_patch_kinds() {
        let smp = "apiVersion: x/v1\nkind: K\nmetadata:\n  name: _\nspec:\n  interval: 30\n";
        assert_eq!(
            patch_pointer(smp, "/spec/interval", Some(&json!(30))),
            Some(("/spec/interval".into(), true))
        );
        assert_eq!(
            patch_pointer(smp, "/spec/other", None),
            Some(("/spec".into(), false))
        );
        let ops = "- op: add\n  path: /spec\n  value:\n    interval: 30\n";
        assert_eq!(
            patch_pointer(ops, "/spec/interval", Some(&json!(30))),
            Some(("/0/value/interval".into(), true))
        );
    }

    #[test]
    fn unknown_patch_and_selector_fields_are_refused() {
        let p = parent(
            "ks.yaml",
            &json!({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
                "metadata": {"name": "a"},
                "spec": {"patches": [{"patch": "x", "target": {"kinds": "A"}}]}}),
        );
        assert!(p.problem.unwrap().contains("`kinds`"));
        let p = parent(
            "ks.yaml",
            &json!({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
                "metadata": {"name": "a"}, "spec": {"patches": [{"path": "p.yaml"}]}}),
        );
        assert!(p.problem.unwrap().contains("spec.patches[0].path"));
    }

    #[test]
    fn the_applied_value_belongs_to_the_parent_when_the_file_lacks_it() {
        let written = json!({"spec": {"path": "a"}});
        let applied = json!({"spec": {"path": "a", "interval": 30}});
        assert!(set_by_parent(&written, &applied, "/spec/interval"));
        assert!(!set_by_parent(&written, &applied, "/spec"));
        assert!(!set_by_parent(&written, &applied, "/spec/path"));
    }
}
