//! Flux post-build substitution. Flux's kustomize-controller builds the `spec.path` of a
//! `Kustomization` (kustomize.toolkit.fluxcd.io) and then replaces `${VAR}` in every object's YAML
//! with values from `spec.postBuild.substitute` and the ConfigMaps and Secrets of
//! `spec.postBuild.substituteFrom`. What the cluster gets is the substituted object, so that is
//! what the gate judges: `image: ghcr.io/x:${TAG:=latest}` is an image ending in `:latest`.
//!
//! The expansion follows Flux's envsubst: `${VAR}`; `${VAR:=default}`, `${VAR:-default}` and
//! `${VAR=default}` take the default when the variable is unset or empty (defaults may nest
//! `${…}`); `${VAR^}`, `${VAR^^}`, `${VAR,}`, `${VAR,,}` change case and `${#VAR}` is the length;
//! `$${VAR}` is the literal `${VAR}`; `$VAR` without braces is left alone. An unset variable
//! without a default becomes an empty string, as Flux does outside strict mode; the gate warns
//! about each. Values from Secrets are remembered so that no output shows them.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rayon::prelude::*;
use serde_json::Value;

use crate::change::PathLookup;
use crate::load::sniff::{contains, hides_from_filters, names_group};
use crate::load::{LoadOptions, load_file};
use crate::tree::{Tree, is_within};

use super::paths::resolve;

/// The API group of Flux Kustomizations, as their `apiVersion` starts.
pub(crate) const FLUX_GROUP: &str = "kustomize.toolkit.fluxcd.io/";
/// Objects Flux leaves alone: this label or annotation set to `disabled`.
pub const DISABLED_KEY: &str = "kustomize.toolkit.fluxcd.io/substitute";

/// A variable's value and whether it came from a Secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Var {
    pub value: String,
    pub secret: bool,
}

/// One Flux `Kustomization` with post-build substitution, and the variables it substitutes.
#[derive(Debug, Clone)]
pub struct FluxKustomization {
    /// `namespace/name`.
    pub name: String,
    /// The repository file that declares it.
    pub file: String,
    /// `spec.path`, as a repository path ("" for the root).
    pub path: String,
    /// `spec.components`, as repository paths (they are relative to `path`).
    pub components: Vec<String>,
    /// Every path kustomize reads to build `path` and the components, when `path` has a
    /// kustomization; `None` when Flux generates one (then everything under `path` is built).
    pub built: Option<BTreeSet<String>>,
    pub vars: BTreeMap<String, Var>,
    /// Variables whose value the repository cannot give (SOPS-encrypted Secret, missing source).
    pub unknown: BTreeSet<String>,
    /// `substituteFrom` sources the repository does not hold (and that are not optional).
    pub missing_sources: Vec<String>,
    /// The files its variables come from (its own file included): a change to one changes every
    /// object under `path`.
    pub inputs: BTreeSet<String>,
}

/// What [`FluxIndex`] needs of the tree's manifests, gathered by a scan that reads every one of
/// them anyway (the check's first look): its Kustomizations with `postBuild`, and the files that
/// may hold a ConfigMap or Secret they substitute from. Reading every manifest again for it was
/// 14-16 ms of the corpus' `check --all`.
#[derive(Default)]
pub struct FluxScan {
    /// Each Flux Kustomization with `postBuild`, with its file.
    declared: Vec<(String, Declared)>,
    /// The files that may hold a substitution source.
    sources: Vec<String>,
}

impl FluxScan {
    /// Note a manifest's bytes: whether it may hold a ConfigMap or Secret.
    pub fn add_bytes(&mut self, path: &str, bytes: &[u8]) {
        if may_hold_source(bytes) {
            self.sources.push(path.to_owned());
        }
    }

    /// Note a manifest's documents: the Flux Kustomizations with `postBuild` among them. The
    /// caller passes the documents of every manifest whose bytes pass [`may_declare_substitution`]
    /// or [`hides_from_filters`], and may pass more.
    pub fn add_documents(&mut self, path: &str, documents: &[crate::load::Document]) {
        self.declared.extend(
            documents
                .iter()
                .filter_map(|doc| declaration(path, &doc.value))
                .map(|declared| (path.to_owned(), declared)),
        );
    }

    /// Note a file whose bytes [`FluxScan::add_bytes`] would pass, by path.
    pub fn add_source(&mut self, path: String) {
        self.sources.push(path);
    }
}

/// Every Flux `Kustomization` of a tree that substitutes.
#[derive(Debug, Default)]
pub struct FluxIndex {
    pub kustomizations: Vec<FluxKustomization>,
}

struct SourceRef {
    kind: String,
    name: String,
    optional: bool,
}

impl FluxIndex {
    /// Read the tree's manifests for Flux Kustomizations with `postBuild`, and the ConfigMaps and
    /// Secrets they substitute from. Files are filtered on their bytes before any is parsed.
    pub fn find(kustomizations: &super::graph::Kustomizations<'_>) -> FluxIndex {
        let tree = kustomizations.tree();
        let manifests = super::manifest_paths(tree);
        let options = LoadOptions::default();
        // One read of each manifest, on every core: the Kustomizations with `postBuild` are
        // parsed now, and the files that may hold a ConfigMap or Secret are remembered by path,
        // so only they are read again once the wanted names are known.
        let scanned: Vec<FluxScan> = manifests
            .par_iter()
            .map(|path| {
                let mut scan = FluxScan::default();
                let Some(bytes) = tree.read(path) else {
                    return scan;
                };
                if hides_from_filters(&bytes) || may_declare_substitution(&bytes) {
                    scan.add_documents(path, &load_file(path, &bytes, &options).documents);
                }
                scan.add_bytes(path, &bytes);
                scan
            })
            .collect();
        let mut scan = FluxScan::default();
        for found in scanned {
            scan.declared.extend(found.declared);
            scan.sources.extend(found.sources);
        }
        FluxIndex::from_scan(kustomizations, scan)
    }

    /// The index from what a scan of every manifest of the tree gathered (in any order: it is put
    /// in the tree's order, as [`FluxIndex::find`] reads it).
    pub fn from_scan(
        kustomizations: &super::graph::Kustomizations<'_>,
        mut scan: FluxScan,
    ) -> FluxIndex {
        if scan.declared.is_empty() {
            return FluxIndex::default();
        }
        let tree = kustomizations.tree();
        let options = LoadOptions::default();
        let order: HashMap<String, usize> = super::manifest_paths(tree)
            .into_iter()
            .enumerate()
            .map(|(i, path)| (path, i))
            .collect();
        let at = |path: &str| order.get(path).copied().unwrap_or(usize::MAX);
        // Stable: a file's own Kustomizations stay in their order.
        scan.declared.sort_by_key(|(path, _)| at(path));
        scan.sources.sort_by_key(|path| at(path));
        let declared: Vec<Declared> = scan.declared.into_iter().map(|(_, d)| d).collect();
        let candidates = scan.sources;
        let wanted: BTreeSet<&str> = declared
            .iter()
            .flat_map(|(_, _, refs)| refs.iter().map(|r| r.name.as_str()))
            .collect();
        let sources = find_sources(tree, &candidates, &wanted, &options);
        let graph = kustomizations.graph();
        let kustomizations = declared
            .into_iter()
            .map(|(mut k, substitute, refs)| {
                for r in refs {
                    match sources.get(&(r.kind.clone(), r.name.clone())) {
                        Some((file, Source::Known(vars))) => {
                            k.vars.extend(vars.clone());
                            k.inputs.insert(file.clone());
                        }
                        Some((file, Source::Encrypted(keys))) => {
                            k.unknown.extend(keys.iter().cloned());
                            k.inputs.insert(file.clone());
                        }
                        None if r.optional => {}
                        None => k.missing_sources.push(format!("{}/{}", r.kind, r.name)),
                    }
                }
                // Inline values win over every source.
                k.vars.extend(substitute);
                k.built = built(graph, &k);
                for name in k.vars.keys() {
                    k.unknown.remove(name);
                }
                k
            })
            .collect();
        FluxIndex { kustomizations }
    }

    /// The Kustomizations that build `path`: every one whose kustomize build reads it, and of
    /// those without a kustomization of their own, the one with the longest `spec.path` above it.
    pub fn covering(&self, path: &str) -> Vec<&FluxKustomization> {
        let reads = |k: &&FluxKustomization| k.built.as_ref().is_some_and(|b| b.contains(path));
        let under = |k: &&FluxKustomization| k.built.is_none() && is_within(path, &k.path);
        let longest = self
            .kustomizations
            .iter()
            .filter(under)
            .map(|k| k.path.len())
            .max();
        self.kustomizations
            .iter()
            .filter(|k| reads(k) || under(k) && Some(k.path.len()) == longest)
            .collect()
    }

    /// The paths `k` builds (for finding the objects to re-judge when its variables change).
    fn files_built(&self, k: &FluxKustomization, tree: &dyn Tree) -> Vec<String> {
        match &k.built {
            Some(built) => built.iter().cloned().collect(),
            None => tree.files_under(&k.path),
        }
    }
}

/// What kustomize reads to build a Flux Kustomization's path and components, if the path has a
/// kustomization.
fn built(graph: &super::KustomizeGraph, k: &FluxKustomization) -> Option<BTreeSet<String>> {
    if !graph.dirs.contains_key(&k.path) {
        return None;
    }
    let mut built = graph.closure(&k.path);
    for component in &k.components {
        built.extend(graph.closure(component));
    }
    Some(built)
}

type Declared = (FluxKustomization, BTreeMap<String, Var>, Vec<SourceRef>);

/// Whether a manifest's bytes may declare a Flux Kustomization with `postBuild` (escapes and
/// other encodings aside, which every filter passes: [`hides_from_filters`]).
pub fn may_declare_substitution(bytes: &[u8]) -> bool {
    names_group(bytes, FLUX_GROUP) && contains(bytes, b"postBuild")
}

/// Whether a document is a Flux Kustomization with `postBuild`: without one in the tree, Flux
/// substitutes nothing, and no document needs to be held for it.
pub fn declares_substitution(doc: &crate::load::Document) -> bool {
    declaration(doc.path(), &doc.value).is_some()
}

fn declaration(file: &str, value: &Value) -> Option<Declared> {
    let api_version = value.get("apiVersion")?.as_str()?;
    if !api_version.starts_with(FLUX_GROUP) || value.get("kind")?.as_str()? != "Kustomization" {
        return None;
    }
    let spec = value.get("spec")?;
    let post_build = spec.get("postBuild")?;
    let path = spec.get("path").and_then(Value::as_str).unwrap_or("");
    let name = value.pointer("/metadata/name").and_then(Value::as_str)?;
    let namespace = value
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("flux-system");
    let substitute = post_build
        .get("substitute")
        .and_then(Value::as_object)
        .map(|map| {
            map.iter()
                .map(|(k, v)| {
                    let value = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                    (
                        k.clone(),
                        Var {
                            value,
                            secret: false,
                        },
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let refs = post_build
        .get("substituteFrom")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| {
            Some(SourceRef {
                kind: r.get("kind")?.as_str()?.to_owned(),
                name: r.get("name")?.as_str()?.to_owned(),
                optional: r.get("optional").and_then(Value::as_bool).unwrap_or(false),
            })
        })
        .collect();
    let kustomization = FluxKustomization {
        name: format!("{namespace}/{name}"),
        file: file.to_owned(),
        // Flux paths are relative to the source's root, which is the repository.
        path: resolve("", path).unwrap_or_default(),
        components: spec
            .get("components")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter_map(|c| resolve(&resolve("", path).unwrap_or_default(), c))
            .collect(),
        built: None,
        vars: BTreeMap::new(),
        unknown: BTreeSet::new(),
        missing_sources: Vec::new(),
        inputs: BTreeSet::from([file.to_owned()]),
    };
    Some((kustomization, substitute, refs))
}

enum Source {
    Known(BTreeMap<String, Var>),
    /// A SOPS-encrypted Secret: its keys are known, its values are not.
    Encrypted(BTreeSet<String>),
}

/// ConfigMaps and Secrets named in `wanted`, by (kind, name); of two with the same kind and name,
/// the later file's.
fn find_sources(
    tree: &dyn Tree,
    manifests: &[String],
    wanted: &BTreeSet<&str>,
    options: &LoadOptions,
) -> BTreeMap<(String, String), (String, Source)> {
    // Read and parsed on every core: the corpus has 442 candidate files.
    let found: Vec<Vec<(String, String, Source)>> = manifests
        .par_iter()
        .map(|path| {
            let Some(bytes) = tree.read(path) else {
                return Vec::new();
            };
            if !wanted.iter().any(|name| contains(&bytes, name.as_bytes())) {
                return Vec::new();
            }
            load_file(path, &bytes, options)
                .documents
                .iter()
                .filter_map(|doc| {
                    let kind = doc.kind().unwrap_or_default();
                    let name = doc
                        .value
                        .pointer("/metadata/name")
                        .and_then(Value::as_str)?;
                    (wanted.contains(name) && matches!(kind, "ConfigMap" | "Secret")).then(|| {
                        (
                            kind.to_owned(),
                            name.to_owned(),
                            source_vars(kind, &doc.value),
                        )
                    })
                })
                .collect()
        })
        .collect();
    let mut sources = BTreeMap::new();
    for (path, found) in manifests.iter().zip(found) {
        for (kind, name, source) in found {
            sources.insert((kind, name), (path.clone(), source));
        }
    }
    sources
}

fn source_vars(kind: &str, value: &Value) -> Source {
    let secret = kind == "Secret";
    let entries = |field: &str| {
        value
            .get(field)
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
            .collect::<Vec<_>>()
    };
    if secret && value.get("sops").is_some() {
        let keys = entries("data")
            .into_iter()
            .chain(entries("stringData"))
            .map(|(k, _)| k)
            .collect();
        return Source::Encrypted(keys);
    }
    let mut vars = BTreeMap::new();
    for (key, raw) in entries("data") {
        let value = if secret {
            match data_encoding::BASE64.decode(raw.trim().as_bytes()) {
                Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                // Not base64: the API server would refuse the Secret; its value is unknowable.
                Err(_) => continue,
            }
        } else {
            raw
        };
        vars.insert(key, Var { value, secret });
    }
    for (key, value) in entries("stringData") {
        vars.insert(key, Var { value, secret });
    }
    Source::Known(vars)
}

/// A file that may hold a ConfigMap or Secret: the kind in its bytes, or escapes (JSON `\u0053`,
/// YAML `\x53`) or an encoding that could spell it otherwise.
pub fn may_hold_source(bytes: &[u8]) -> bool {
    hides_from_filters(bytes) || contains(bytes, b"ConfigMap") || contains(bytes, b"Secret")
}

/// The result of substituting one text.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Substituted {
    pub text: String,
    /// Variables without a value or default: Flux writes an empty string.
    pub unresolved: BTreeSet<String>,
    /// Expressions Flux supports that the gate does not evaluate; left as written.
    pub unsupported: BTreeSet<String>,
    /// Values from Secrets that went into `text`.
    pub secrets: BTreeSet<String>,
}

/// Expand `text` as Flux's envsubst does with `vars`. `unknown` variables (whose values exist but
/// the repository cannot show) are left as written.
pub fn substitute(
    text: &str,
    vars: &BTreeMap<String, Var>,
    unknown: &BTreeSet<String>,
) -> Substituted {
    let mut out = Substituted::default();
    out.text = expand(text, vars, unknown, &mut out);
    out
}

fn expand(
    text: &str,
    vars: &BTreeMap<String, Var>,
    unknown: &BTreeSet<String>,
    out: &mut Substituted,
) -> String {
    let mut result = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        result.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("$${") {
            // `$${VAR}` is the escape for a literal `${VAR}`.
            result.push_str("${");
            rest = after;
            continue;
        }
        if !tail.starts_with("${") {
            result.push('$');
            rest = &tail[1..];
            continue;
        }
        let Some(end) = closing_brace(&tail[2..]) else {
            result.push_str(tail);
            rest = "";
            break;
        };
        let expression = &tail[2..2 + end];
        result.push_str(&evaluate(expression, vars, unknown, out));
        rest = &tail[2 + end + 1..];
    }
    result.push_str(rest);
    result
}

/// The index of the `}` closing an expression, counting nested `${`.
fn closing_brace(text: &str) -> Option<usize> {
    let mut depth = 0usize;
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'$' if bytes.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 1;
            }
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

fn evaluate(
    expression: &str,
    vars: &BTreeMap<String, Var>,
    unknown: &BTreeSet<String>,
    out: &mut Substituted,
) -> String {
    let written = format!("${{{expression}}}");
    let (length, body) = match expression.strip_prefix('#') {
        Some(name) => (true, name),
        None => (false, expression),
    };
    let name_end = body
        .char_indices()
        .find(|(i, c)| !(c.is_ascii_alphanumeric() || *c == '_') || (*i == 0 && c.is_ascii_digit()))
        .map_or(body.len(), |(i, _)| i);
    let (name, operator) = body.split_at(name_end);
    if name.is_empty() {
        out.unsupported.insert(written.clone());
        return written;
    }
    if unknown.contains(name) {
        return written;
    }
    let value = vars.get(name);
    if let Some(var) = value.filter(|v| v.secret && !v.value.is_empty()) {
        out.secrets.insert(var.value.clone());
    }
    let current = value.map(|v| v.value.clone()).unwrap_or_default();
    if length {
        if !operator.is_empty() {
            out.unsupported.insert(written.clone());
            return written;
        }
        if value.is_none() {
            out.unresolved.insert(name.to_owned());
        }
        return current.chars().count().to_string();
    }
    let default = [":=", ":-", "="]
        .iter()
        .find_map(|op| operator.strip_prefix(op));
    match (operator, default) {
        ("", _) | ("^", _) | ("^^", _) | (",", _) | (",,", _) => {
            if value.is_none() {
                out.unresolved.insert(name.to_owned());
            }
            change_case(&current, operator)
        }
        (_, Some(default)) if current.is_empty() => expand(default, vars, unknown, out),
        (_, Some(_)) => current,
        _ => {
            out.unsupported.insert(written.clone());
            written
        }
    }
}

fn change_case(value: &str, operator: &str) -> String {
    let mut chars = value.chars();
    match operator {
        "^^" => value.to_uppercase(),
        ",," => value.to_lowercase(),
        "^" => chars
            .next()
            .map_or_else(String::new, |c| c.to_uppercase().chain(chars).collect()),
        "," => chars
            .next()
            .map_or_else(String::new, |c| c.to_lowercase().chain(chars).collect()),
        _ => value.to_owned(),
    }
}

/// `text` with each secret value's characters (but not its line breaks) replaced by `*` of the
/// same byte length: lines and columns stay where they were, so snippets still point right.
pub fn mask(text: &str, secrets: &BTreeSet<String>) -> String {
    let mut masked = text.to_owned();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        let stars: String = secret
            .chars()
            .map(|c| {
                if c == '\n' {
                    "\n".to_owned()
                } else {
                    "*".repeat(c.len_utf8())
                }
            })
            .collect();
        masked = masked.replace(secret.as_str(), &stars);
    }
    masked
}

/// Whether Flux leaves this object unsubstituted.
pub fn is_disabled(object: &Value) -> bool {
    ["annotations", "labels"].iter().any(|field| {
        object
            .get("metadata")
            .and_then(|m| m.get(*field))
            .and_then(|m| m.get(DISABLED_KEY))
            .and_then(Value::as_str)
            == Some("disabled")
    })
}

/// Replace every document that a Flux Kustomization with post-build substitution builds by the
/// object Flux applies. `flux_path` names the repository path a document is built from (its file,
/// or a rendered overlay's kustomization). Returns the warnings and the Secret values that went
/// into the documents, which the caller keeps out of every output.
/// `scan` is what a scan of every manifest gathered for the [`FluxIndex`].
pub fn substitute_documents(
    kustomizations: &super::graph::Kustomizations<'_>,
    scan: FluxScan,
    changed: &PathLookup,
    documents: &mut Vec<crate::load::Document>,
    flux_path: &dyn Fn(&str) -> String,
    options: &LoadOptions,
) -> (Vec<crate::finding::Finding>, BTreeSet<String>) {
    use crate::finding::{Finding, Rule};
    let mut findings = Vec::new();
    let mut secrets = BTreeSet::new();
    // Only text with `${` can change, unless the variables themselves change; most pushes have
    // neither and never read the whole tree.
    let may_substitute = documents.iter().any(|d| d.source.has_variables());
    let may_set_variables = documents.iter().any(may_set_variables);
    if !may_substitute && !may_set_variables {
        return (findings, secrets);
    }
    let tree = kustomizations.tree();
    let index = FluxIndex::from_scan(kustomizations, scan);
    if index.kustomizations.is_empty() {
        return (findings, secrets);
    }
    documents.extend(objects_with_changed_variables(
        tree, &index, changed, documents, options,
    ));
    let mut by_file: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, doc) in documents.iter().enumerate() {
        if doc.source.has_variables() {
            by_file.entry(doc.path().to_owned()).or_default().push(i);
        }
    }
    let mut removed = BTreeSet::new();
    let mut added = Vec::new();
    for (path, indices) in by_file {
        let covering = index.covering(&flux_path(&path));
        if covering.is_empty() {
            continue;
        }
        let source = std::sync::Arc::clone(&documents[indices[0]].source);
        for k in covering {
            let out = substitute(&source.text, &k.vars, &k.unknown);
            findings.extend(substitution_warnings(&path, k, &out));
            let loaded = load_file(&path, out.text.as_bytes(), options);
            for finding in loaded
                .findings
                .into_iter()
                .filter(|f| f.rule.is_undecidable())
            {
                findings.push(
                    Finding::error(
                        Rule::RenderFailed,
                        format!(
                            "after Flux post-build substitution by `{}` ({}), the file does not parse: {}",
                            k.name, k.file, finding.message
                        ),
                    )
                    .in_file(&path),
                );
            }
            let shown = (!out.secrets.is_empty()).then(|| {
                std::sync::Arc::new(crate::load::SourceFile::new(
                    path.clone(),
                    mask(&out.text, &out.secrets),
                ))
            });
            for mut doc in loaded.documents {
                let original = indices.iter().find(|&&i| documents[i].index == doc.index);
                if original.is_some_and(|&i| is_disabled(&documents[i].value)) {
                    continue;
                }
                if let Some(shown) = &shown {
                    doc.source = std::sync::Arc::clone(shown);
                }
                added.push(doc);
            }
            // Objects Flux does not substitute stay as written.
            removed.extend(
                indices
                    .iter()
                    .copied()
                    .filter(|&i| !is_disabled(&documents[i].value)),
            );
            secrets.extend(out.secrets);
        }
    }
    let mut i = 0;
    documents.retain(|_| {
        let keep = !removed.contains(&i);
        i += 1;
        keep
    });
    documents.extend(added);
    (findings, secrets)
}

/// A Flux Kustomization, or a ConfigMap or Secret it may take variables from: changing one may
/// change what Flux applies elsewhere.
pub fn may_set_variables(doc: &crate::load::Document) -> bool {
    doc.api_version().is_some_and(|v| v.starts_with(FLUX_GROUP))
        || matches!(doc.kind(), Some("ConfigMap" | "Secret"))
}

/// The objects under the path of every Flux Kustomization whose variables the change alters (its
/// own file, or a ConfigMap or Secret it substitutes from), that use a variable and are not among
/// the checked documents yet: they change in the cluster without changing in Git.
fn objects_with_changed_variables(
    tree: &dyn Tree,
    index: &FluxIndex,
    changed: &PathLookup,
    documents: &[crate::load::Document],
    options: &LoadOptions,
) -> Vec<crate::load::Document> {
    let checked: BTreeSet<&str> = documents.iter().map(|d| d.path()).collect();
    let mut paths = BTreeSet::new();
    for k in &index.kustomizations {
        if !k.inputs.iter().any(|input| changed.contains(input)) {
            continue;
        }
        paths.extend(
            index
                .files_built(k, tree)
                .into_iter()
                .filter(|p| p.ends_with(".yaml") || p.ends_with(".yml") || p.ends_with(".json"))
                .filter(|p| !checked.contains(p.as_str())),
        );
    }
    paths
        .iter()
        .filter_map(|path| Some((path, tree.read(path)?)))
        .filter(|(path, bytes)| {
            contains(bytes, b"${")
                && !super::graph::KUSTOMIZATION_FILES.contains(&super::graph::split(path).1)
        })
        .flat_map(|(path, bytes)| load_file(path, &bytes, options).documents)
        .collect()
}

fn substitution_warnings(
    path: &str,
    k: &FluxKustomization,
    out: &Substituted,
) -> Vec<crate::finding::Finding> {
    use crate::finding::{Finding, Rule};
    let by = format!("Flux Kustomization `{}` ({})", k.name, k.file);
    let mut findings = Vec::new();
    let listed = |names: &BTreeSet<String>| names.iter().cloned().collect::<Vec<_>>().join(", ");
    if !out.unresolved.is_empty() {
        let mut finding = Finding::warning(
            Rule::RenderUnsetVariable,
            format!(
                "{by} has no value for {}: Flux substitutes an empty string",
                listed(&out.unresolved)
            ),
        )
        .in_file(path)
        .help("set it in postBuild.substitute or a ConfigMap of postBuild.substituteFrom, or give a default: ${VAR:=value}")
        .with_meta("variables", out.unresolved.iter().cloned().collect::<Vec<_>>());
        if !k.missing_sources.is_empty() {
            finding = finding.with_meta("missing_sources", k.missing_sources.clone());
        }
        findings.push(finding);
    }
    let left: BTreeSet<String> = k
        .unknown
        .iter()
        .filter(|name| out.text.contains(&format!("${{{name}")))
        .cloned()
        .collect();
    if !left.is_empty() {
        findings.push(
            Finding::warning(
                Rule::RenderUnsetVariable,
                format!(
                    "{by} takes {} from an encrypted Secret: judged as written, unsubstituted",
                    listed(&left)
                ),
            )
            .in_file(path),
        );
    }
    if !out.unsupported.is_empty() {
        findings.push(
            Finding::warning(
                Rule::RenderUnsetVariable,
                format!(
                    "{by}: the gate does not evaluate {}; judged as written",
                    listed(&out.unsupported)
                ),
            )
            .in_file(path),
        );
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, Var> {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    Var {
                        value: v.to_string(),
                        secret: *k == "PASSWORD",
                    },
                )
            })
            .collect()
    }

    fn run(text: &str, pairs: &[(&str, &str)]) -> Substituted {
        substitute(text, &vars(pairs), &BTreeSet::new())
    }

    /// Two Flux Kustomizations in two files, substituting from a ConfigMap that two files
    /// define: the later file (in the tree's order) wins.
    fn flux_tree() -> crate::tree::MemTree {
        let flux = |name: &str| {
            format!(
                "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  \
                 name: {name}\n  namespace: flux-system\nspec:\n  path: ./apps/{name}\n  \
                 postBuild:\n    substitute:\n      OWN: {name}\n    substituteFrom:\n      \
                 - kind: ConfigMap\n        name: vars\n"
            )
        };
        let vars = |value: &str| {
            format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: vars\ndata:\n  V: {value}\n"
            )
        };
        let mut tree = crate::tree::MemTree::empty("test");
        for (path, text) in [
            ("clusters/a.yaml", flux("a")),
            ("clusters/b.yaml", flux("b")),
            ("config/1.yaml", vars("first")),
            ("config/2.yaml", vars("second")),
            ("apps/a/x.yaml", "kind: ConfigMap".to_string()),
        ] {
            tree.files.insert(path.to_string(), text.into_bytes());
        }
        tree
    }

    #[test]
    fn an_index_from_a_scan_in_any_order_is_the_index_of_the_tree() {
        let tree = flux_tree();
        let kustomizations = super::super::graph::Kustomizations::new(&tree);
        let found = FluxIndex::find(&kustomizations);
        let names: Vec<&str> = found
            .kustomizations
            .iter()
            .map(|k| k.name.as_str())
            .collect();
        assert_eq!(names, ["flux-system/a", "flux-system/b"]);
        assert_eq!(found.kustomizations[0].vars["V"].value, "second");
        assert_eq!(found.kustomizations[1].vars["OWN"].value, "b");

        // The scan of a check sees the files in the order its threads finish them.
        let mut scan = FluxScan::default();
        for path in [
            "config/2.yaml",
            "clusters/b.yaml",
            "apps/a/x.yaml",
            "config/1.yaml",
            "clusters/a.yaml",
        ] {
            let bytes = &tree.files[path];
            scan.add_bytes(path, bytes);
            let documents = load_file(path, bytes, &LoadOptions::default()).documents;
            scan.add_documents(path, &documents);
        }
        let scanned = FluxIndex::from_scan(&kustomizations, scan);
        assert_eq!(format!("{scanned:?}"), format!("{found:?}"));
    }

    #[test]
    fn variables_defaults_and_escapes_expand_as_flux_does() {
        let cases = [
            ("image: x:${TAG}", &[("TAG", "1.2")][..], "image: x:1.2"),
            ("image: x:${TAG:=latest}", &[], "image: x:latest"),
            ("image: x:${TAG:=latest}", &[("TAG", "")], "image: x:latest"),
            ("image: x:${TAG:-latest}", &[("TAG", "2")], "image: x:2"),
            ("image: x:${TAG=latest}", &[], "image: x:latest"),
            ("claim: ${CLAIM:-${APP}}", &[("APP", "web")], "claim: web"),
            ("keep: $${TAG}", &[("TAG", "1")], "keep: ${TAG}"),
            ("shell: $HOME and $1", &[], "shell: $HOME and $1"),
            ("up: ${APP^^} ${APP^}", &[("APP", "web")], "up: WEB Web"),
            ("len: ${#APP}", &[("APP", "web")], "len: 3"),
        ];
        for (text, pairs, expected) in cases {
            assert_eq!(run(text, pairs).text, expected, "{text}");
        }
    }

    #[test]
    fn unset_variables_become_empty_and_are_named() {
        let out = run("a: ${MISSING}\nb: ${OTHER:=x}\nc: ${X:1:2}\n", &[]);
        assert_eq!(out.text, "a: \nb: x\nc: ${X:1:2}\n");
        assert_eq!(out.unresolved, BTreeSet::from(["MISSING".to_owned()]));
        assert_eq!(out.unsupported, BTreeSet::from(["${X:1:2}".to_owned()]));
    }

    #[test]
    fn secret_values_are_remembered_and_masked_in_place() {
        let out = run(
            "password: ${PASSWORD}\nuser: ${USER}\n",
            &[("PASSWORD", "hunter22"), ("USER", "bob")],
        );
        assert_eq!(out.secrets, BTreeSet::from(["hunter22".to_owned()]));
        assert_eq!(
            mask(&out.text, &out.secrets),
            "password: ********\nuser: bob\n"
        );
    }
}
