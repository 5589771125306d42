//! JSON Schema checks: every document against the schema of its kind (embedded Kubernetes
//! schemas, CRDs from the repository, then the embedded CRD catalog) or the schema `schemas.map`
//! ties its file to.
//!
//! A [`SchemaSet`] is built once per run from the config, the trusted tree and the CRD documents
//! the caller picked; [`SchemaSet::check`] is then called from any number of threads. Validators
//! are compiled on first use, once per (apiVersion, kind), so a run pays only for the kinds it
//! meets. The pod spec of every workload kind is judged by one validator of its own
//! ([`embedded::SHARED`]), not compiled again inside each kind.

mod catalog;
pub mod crd;
mod diags;
mod embedded;
mod mapped;
mod pattern;
mod repeats;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};

use jsonschema::{Draft, Validator};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::config::{CONFIG_FILE, SchemasConfig, UnknownPolicy};
use crate::finding::{Finding, Location, Rule, Severity};
use crate::load::Document;
use crate::sync::locked;
use crate::tree::Tree;

pub use catalog::shipped_form as catalog_shipped_form;
pub use crd::{CrdSchema, schemas_of as crd_schemas};
pub use embedded::available_versions;

/// Where the schema of a kind came from, for messages about it.
#[derive(Debug, Clone)]
enum Origin {
    Kubernetes(String),
    /// The CRD document's start, and the JSON pointer of the schema in it.
    Crd(Location, String),
    /// The embedded CRD catalog: `<group>/<kind-lowercase>_<version>`.
    Catalog(String),
}

/// The schema of one (apiVersion, kind), compiled on first use.
struct KindSchema {
    source: Source,
    origin: Origin,
    /// The validator once compiled, until forgotten ([`KindSchema::forget`]). Validations hold
    /// their own reference, so a forgotten validator is freed when the last of them ends.
    compiled: Mutex<Option<Arc<Compiled>>>,
    /// Held while compiling: threads meeting the kind at once wait for one compilation.
    compiling: Mutex<()>,
    /// The schema, parsed again for a finding that needs it: validation keeps only the validator,
    /// as the parsed schema of a large kind costs megabytes (Argo CD's ApplicationSet from the
    /// catalog: 17 MB parsed and compiled).
    reparsed: OnceLock<Option<Value>>,
    /// Where a document of the kind is judged by a shared definition ([`embedded::SHARED`])
    /// rather than by the kind's own validator: known once the schema is first parsed.
    parts: OnceLock<Vec<(String, &'static str)>>,
    /// A repository CRD's schema as converted and compacted the first time, as JSON text: parsed
    /// again for a finding or a second compilation, it skips the conversion, and the compacted
    /// text is a fraction of the CRD's (Argo CD's ApplicationSet: 14 ms to convert again).
    converted: OnceLock<Box<RawValue>>,
}

/// A kind's validator, or why its schema does not compile.
type Compiled = Result<Validator, String>;

/// Where a kind's schema is read from.
enum Source {
    /// A CRD of the repository: its OpenAPI schema kept packed, and converted when first
    /// compiled. Converting every CRD of a change up front was 7% of the corpus' `check --all`,
    /// whose repositories define many more kinds than they use.
    Crd(Arc<[u8]>, String, String),
    /// A kind of the embedded CRD catalog, its frame decoded, kept as JSON text until first
    /// compiled.
    Catalog(String),
    /// An embedded Kubernetes kind (`apiVersion/kind`), parsed with the definitions it reaches
    /// when it is first compiled.
    Kubernetes(&'static embedded::KubeSchemas, &'static str),
    /// A shared definition of the embedded Kubernetes schemas ([`embedded::SHARED`]), judging
    /// the parts of documents the kinds that hold it leave out.
    Definition(&'static embedded::KubeSchemas, &'static str),
}

impl KindSchema {
    fn new(source: Source, origin: Origin) -> KindSchema {
        KindSchema {
            source,
            origin,
            compiled: Mutex::new(None),
            compiling: Mutex::new(()),
            reparsed: OnceLock::new(),
            parts: OnceLock::new(),
            converted: OnceLock::new(),
        }
    }

    /// The schema as JSON (for diagnostics); `None` when it cannot be parsed.
    fn schema(&self) -> Option<&Value> {
        self.reparsed.get_or_init(|| self.parsed().ok()).as_ref()
    }

    /// The validator, compiled on first use (and again after [`KindSchema::forget`]).
    fn compiled(&self) -> Arc<Compiled> {
        if let Some(compiled) = self.current() {
            return compiled;
        }
        let _one = locked(&self.compiling);
        if let Some(compiled) = self.current() {
            return compiled;
        }
        let compiled = Arc::new(self.compile());
        *locked(&self.compiled) = Some(Arc::clone(&compiled));
        compiled
    }

    fn current(&self) -> Option<Arc<Compiled>> {
        locked(&self.compiled).clone()
    }

    #[cfg(test)]
    fn is_compiled(&self) -> bool {
        self.current().is_some()
    }

    /// Take the compiled validator out; the next document of the kind compiles it again.
    fn forget(&self) -> Option<Arc<Compiled>> {
        locked(&self.compiled).take()
    }

    fn parsed(&self) -> Result<Value, String> {
        match &self.source {
            Source::Crd(openapi, api_version, kind) => {
                if let Some(converted) = self.converted.get() {
                    return serde_json::from_str(converted.get()).map_err(|e| e.to_string());
                }
                let openapi = crate::load::packed::unpack(openapi)
                    .ok_or_else(|| format!("the schema of {kind} did not unpack"))?;
                let mut schema = crd::json_schema(&openapi, api_version, kind);
                // No `$id`, whatever the CRD says: see `KindLookup`.
                if let Some(map) = schema.as_object_mut() {
                    map.remove("$id");
                }
                if let Ok(text) = serde_json::value::to_raw_value(&schema) {
                    // Another thread may have set it: both are the same text.
                    let _ = self.converted.set(text);
                }
                Ok(schema)
            }
            Source::Kubernetes(schemas, key) => {
                let contained = schemas.self_contained(key)?;
                self.parts.get_or_init(|| contained.parts);
                Ok(contained.schema)
            }
            Source::Definition(schemas, name) => schemas.definition(name),
            Source::Catalog(raw) => catalog::parsed(raw),
        }
    }

    /// Compile the validator. Embedded kinds get the definitions they reach inlined: a
    /// self-contained schema compiles in time proportional to its size, while resolving against a
    /// registry of every definition costs a registry rebuild per kind (~8 ms measured).
    fn compile(&self) -> Result<Validator, String> {
        jsonschema::options()
            .offline()
            .with_draft(Draft::Draft202012)
            .with_keyword("pattern", pattern::compile_later)
            .build(&self.parsed()?)
            .map_err(|e| e.to_string())
    }
}

/// Every schema a run validates against. `Send + Sync`: share one across threads.
pub struct SchemaSet {
    /// apiVersion → kind → schema.
    kinds: HashMap<String, HashMap<String, KindSchema>>,
    /// API group → the kinds [`SchemaSet::kinds`] has in it, at any version: whether the
    /// repository defines a custom resource's kind is asked for every one the catalog has.
    group_kinds: HashMap<String, HashSet<String>>,
    mapped: Vec<mapped::MappedSchema>,
    unknown: UnknownPolicy,
    kubernetes: Option<String>,
    /// The embedded CRD catalog (`schemas.catalog`), consulted after the repository's CRDs.
    catalog: Option<&'static catalog::Catalog>,
    /// The shared definitions of the embedded Kubernetes version, by name.
    definitions: HashMap<&'static str, KindSchema>,
}

/// One kind and version a CRD document of the repository defines, its schema kept packed until it
/// is converted to a JSON Schema: a CRD file such as Argo CD's `install.yaml` is megabytes of
/// YAML, and holding its documents (or their converted schemas as values) until the end of a run
/// cost more memory than everything else in the corpus's largest repository.
#[derive(Clone)]
pub struct CrdKind {
    api_version: String,
    kind: String,
    /// The CRD's OpenAPI schema as written, packed ([`crate::load::packed`]): printed as JSON
    /// text, every CRD of the corpus' `check --all` was 1.1% of its CPU.
    openapi: Arc<[u8]>,
    origin: Location,
    /// JSON pointer of the schema in the CRD document.
    pointer: String,
}

/// The kinds `docs` define (documents that are not CRDs define none), in order.
pub fn crd_kinds<'a>(docs: impl IntoIterator<Item = &'a Document>) -> Vec<CrdKind> {
    let mut out = Vec::new();
    for doc in docs {
        for crd in crd::schemas_of(doc) {
            out.push(CrdKind {
                // The document's start, not the schema's line: locating a line inside a CRD
                // parses its whole file again for positions, which for the large CRDs of a
                // repository cost more than loading them. The finding names the pointer.
                origin: doc.locate(""),
                pointer: crd.pointer,
                api_version: crd.api_version,
                kind: crd.kind,
                openapi: Arc::from(crate::load::packed::pack_object(crd.openapi)),
            });
        }
    }
    out
}

/// Of several definitions of one kind and version, the last, as a [`SchemaSet`] would keep it:
/// kinds kept for a whole run hold each schema once (Argo CD's `install.yaml` repeats the CRDs of
/// its `crds/` directory).
pub fn latest_crd_kinds(kinds: Vec<CrdKind>) -> Vec<CrdKind> {
    let mut at: HashMap<(String, String), usize> = HashMap::new();
    let mut out: Vec<CrdKind> = Vec::with_capacity(kinds.len());
    for crd in kinds {
        match at.get(&(crd.api_version.clone(), crd.kind.clone())) {
            Some(&i) => out[i] = crd,
            None => {
                at.insert((crd.api_version.clone(), crd.kind.clone()), out.len());
                out.push(crd);
            }
        }
    }
    out
}

impl SchemaSet {
    /// Build the set from `schemas` config, schema files of `tree` (`schemas.map`) and the CRD
    /// documents the caller chose (`schemas.crds`, or every CRD in the checked tree). Errors are
    /// `config/invalid` or `schema/invalid-schema` findings: the gate cannot decide without them.
    pub fn build(
        cfg: &SchemasConfig,
        tree: &dyn Tree,
        crds: &[CrdKind],
    ) -> Result<SchemaSet, Vec<Finding>> {
        let mut errors = Vec::new();
        let kubernetes = select_version(cfg.kubernetes.as_deref())?;
        let mut set = SchemaSet {
            kinds: HashMap::new(),
            group_kinds: HashMap::new(),
            mapped: Vec::new(),
            unknown: cfg.unknown,
            kubernetes: kubernetes.clone(),
            catalog: cfg.catalog.then(catalog::shared),
            definitions: HashMap::new(),
        };
        if let Some(version) = kubernetes {
            set.add_kubernetes(&version)?;
        }
        for crd in crds {
            set.add_crd(crd);
        }
        for mapping in &cfg.map {
            match mapped::compile(mapping, tree) {
                Ok(m) => set.mapped.push(m),
                Err(mut findings) => errors.append(&mut findings),
            }
        }
        if errors.is_empty() {
            Ok(set)
        } else {
            Err(errors)
        }
    }

    /// The embedded Kubernetes version in use, if any.
    pub fn kubernetes_version(&self) -> Option<&str> {
        self.kubernetes.as_deref()
    }

    /// Whether the embedded Kubernetes schemas or a CRD of the repository cover documents of this
    /// apiVersion and kind. The catalog does not count: the repository's own CRDs are looked for
    /// first, and win over the catalog's.
    pub fn covers(&self, api_version: &str, kind: &str) -> bool {
        self.kind_schema(api_version, kind).is_some()
    }

    /// Drop the compiled validators of every kind but the (apiVersion, kind) pairs in `keep`, the
    /// embedded catalog's included, and the schemas parsed for findings of the set's own kinds
    /// (the catalog's stay: it is shared, and sets them once). A check calls it when
    /// the stream is done: the kinds only streamed files had are not needed again, and their
    /// validators are most of what the stream leaves in memory. A kind that turns out to be
    /// needed after all is compiled again.
    pub fn forget_validators_except(&mut self, keep: &BTreeSet<(String, String)>) {
        let mut forgotten = Vec::new();
        // The shared definitions the kept kinds are known to judge parts of documents by: the
        // held Deployments and StatefulSets of the corpus compiled PodSpec a second time.
        let mut parts_kept = HashSet::new();
        for (api_version, kinds) in &mut self.kinds {
            for (kind, entry) in kinds.iter_mut() {
                if keep.contains(&(api_version.clone(), kind.clone())) {
                    let parts = entry.parts.get().into_iter().flatten();
                    parts_kept.extend(parts.map(|(_, name)| *name));
                } else {
                    forgotten.extend(entry.forget());
                    entry.reparsed.take();
                }
            }
        }
        // Compiled again if a kept kind not compiled yet needs one.
        for (name, entry) in &mut self.definitions {
            if !parts_kept.contains(name) {
                forgotten.extend(entry.forget());
                entry.reparsed.take();
            }
        }
        if let Some(catalog) = self.catalog {
            let kept: BTreeSet<(&str, String)> = keep
                .iter()
                .filter_map(|(api_version, kind)| {
                    let (group, version) = api_version.split_once('/')?;
                    Some((group, catalog::key(kind, version)))
                })
                .collect();
            let keep = |group: &str, key: &str| kept.contains(&(group, key.to_owned()));
            forgotten.extend(catalog.forget_validators_except(&keep));
        }
        // Freed beside the stages that follow, on every core: one by one on one thread, the
        // corpus' validators took 10 ms, and freeing them before going on kept the second core
        // idle through the serial start of Flux's substitution.
        crate::alloc::drop_aside(forgotten);
    }

    fn add_kubernetes(&mut self, version: &str) -> Result<(), Vec<Finding>> {
        let schemas = embedded::load_version(version).map_err(|m| vec![internal(m)])?;
        for key in schemas.kind_keys() {
            let Some((api_version, kind)) = key.rsplit_once('/') else {
                continue;
            };
            let source = Source::Kubernetes(schemas, key);
            self.insert_kind(
                api_version,
                kind,
                KindSchema::new(source, Origin::Kubernetes(version.to_string())),
            );
        }
        for &name in embedded::SHARED {
            let source = Source::Definition(schemas, name);
            let entry = KindSchema::new(source, Origin::Kubernetes(version.to_string()));
            self.definitions.insert(name, entry);
        }
        Ok(())
    }

    /// Add the kinds a CRD document defines. A CRD kind replaces an embedded one of the same
    /// apiVersion and kind: the repository knows what its cluster runs.
    /// Add CRD documents found after the set was built; a kind they define replaces the schema it
    /// had (so CRDs from the trusted base, added last, win over CRDs in the change).
    pub fn add_crds(&mut self, docs: &[Document]) {
        for crd in crd_kinds(docs) {
            self.add_crd(&crd);
        }
    }

    fn add_crd(&mut self, crd: &CrdKind) {
        let entry = KindSchema::new(
            Source::Crd(
                Arc::clone(&crd.openapi),
                crd.api_version.clone(),
                crd.kind.clone(),
            ),
            Origin::Crd(crd.origin.clone(), crd.pointer.clone()),
        );
        self.insert_kind(&crd.api_version, &crd.kind, entry);
    }

    fn insert_kind(&mut self, api_version: &str, kind: &str, entry: KindSchema) {
        if let Some((group, _)) = api_version.split_once('/') {
            self.group_kinds
                .entry(group.to_owned())
                .or_default()
                .insert(kind.to_owned());
        }
        self.kinds
            .entry(api_version.to_string())
            .or_default()
            .insert(kind.to_string(), entry);
    }

    /// The apiVersions that have a schema for `kind`, sorted.
    fn api_versions_of(&self, kind: &str) -> Vec<String> {
        let mut found: Vec<String> = self
            .kinds
            .iter()
            .filter(|(_, kinds)| kinds.contains_key(kind))
            .map(|(api_version, _)| format!("`{api_version}`"))
            .collect();
        found.sort();
        found
    }

    fn kind_schema(&self, api_version: &str, kind: &str) -> Option<&KindSchema> {
        self.kinds.get(api_version)?.get(kind)
    }

    /// Every finding schema validation has for one document (none for an empty document).
    pub fn check(&self, doc: &Document) -> Vec<Finding> {
        if doc.value.is_null() {
            return Vec::new();
        }
        if let Some(mapping) = self.mapped.iter().find(|m| m.files.is_match(doc.path())) {
            let lookup = MappedLookup(mapping);
            return self.findings(&mapping.validator, doc, &doc.value, "", &lookup);
        }
        let (Some(api_version), Some(kind)) = (doc.api_version(), doc.kind()) else {
            return self.unknown(doc, None);
        };
        if let Some(entry) = self.kind_schema(api_version, kind) {
            return self.judge(doc, api_version, kind, entry);
        }
        match self.catalog_schema(api_version, kind) {
            Ok(Some(entry)) => self.judge(doc, api_version, kind, &entry),
            Ok(None) => self.unknown(doc, Some((api_version, kind))),
            Err(message) => vec![internal(message).at(doc.locate("")).object(doc.id())],
        }
    }

    /// The catalog's schema of a custom resource, unless the repository ships a CRD for its group
    /// and kind: a repository's CRD (at any version) is what its cluster runs, and an older
    /// catalog schema must not judge objects written for a newer CRD.
    fn catalog_schema(
        &self,
        api_version: &str,
        kind: &str,
    ) -> Result<Option<Arc<KindSchema>>, String> {
        let (Some(catalog), Some((group, version))) = (self.catalog, api_version.split_once('/'))
        else {
            return Ok(None);
        };
        if !catalog.has_group(group) || self.repository_defines(group, kind) {
            return Ok(None);
        }
        catalog.schema(group, version, kind)
    }

    fn repository_defines(&self, group: &str, kind: &str) -> bool {
        self.group_kinds
            .get(group)
            .is_some_and(|kinds| kinds.contains(kind))
    }

    fn judge(
        &self,
        doc: &Document,
        api_version: &str,
        kind: &str,
        entry: &KindSchema,
    ) -> Vec<Finding> {
        let compiled = entry.compiled();
        let validator = match &*compiled {
            Ok(validator) => validator,
            Err(message) => {
                return vec![invalid_kind_schema(doc, api_version, kind, entry, message)];
            }
        };
        let mut findings = self.findings(validator, doc, &doc.value, "", &KindLookup(entry));
        for (pointer, name) in entry.parts.get().into_iter().flatten() {
            // The kind's schema judged the part's type; null is allowed where it is.
            let Some(part @ Value::Object(_)) = doc.value.pointer(pointer) else {
                continue;
            };
            // Every shared definition is in the set with the kinds that leave it out: were one
            // missing, the part would go unjudged.
            let Some(shared) = self.definitions.get(name) else {
                let message = format!("no schema for the shared definition `{name}`");
                findings.push(internal(message).at(doc.locate(pointer)).object(doc.id()));
                continue;
            };
            match &*shared.compiled() {
                Ok(validator) => {
                    let lookup = KindLookup(shared);
                    findings.extend(self.findings(validator, doc, part, pointer, &lookup));
                }
                Err(message) => {
                    findings.push(invalid_kind_schema(doc, api_version, kind, shared, message));
                }
            }
        }
        findings
    }

    /// The findings of `validator` on `value`, the part of `doc` at JSON pointer `at`.
    fn findings(
        &self,
        validator: &Validator,
        doc: &Document,
        value: &Value,
        at: &str,
        lookup: &dyn diags::SchemaLookup,
    ) -> Vec<Finding> {
        if validator.is_valid(value) {
            return Vec::new();
        }
        diags::problems(validator.iter_errors(value), at, lookup)
            .into_iter()
            .filter(|p| !awaits_substitution(doc, p))
            .map(|p| p.into_finding(doc))
            .collect()
    }

    fn unknown(&self, doc: &Document, gvk: Option<(&str, &str)>) -> Vec<Finding> {
        let severity = match self.unknown {
            UnknownPolicy::Skip => return Vec::new(),
            // Values files and app config are not cluster objects: a warning on each would bury
            // the warnings that matter. `unknown: error` still insists on a schema for them.
            UnknownPolicy::Warn if gvk.is_none() => Severity::Note,
            UnknownPolicy::Warn => Severity::Warning,
            UnknownPolicy::Error => Severity::Error,
        };
        let message = match gvk {
            Some((api_version, kind)) => {
                let mut message =
                    format!("no schema for apiVersion `{api_version}`, kind `{kind}`");
                let known = self.api_versions_of(kind);
                if !known.is_empty() {
                    // Usually an API the cluster version no longer (or not yet) serves.
                    message.push_str(&format!(" (known as {})", known.join(", ")));
                }
                message
            }
            None => "no schema covers this document: it has no apiVersion and kind, and no \
                     schemas.map entry matches its file"
                .to_string(),
        };
        let help = "add its CustomResourceDefinition to a file under `schemas.crds` (the embedded \
                    CRD catalog has no schema for it), or a `schemas.map` entry tying this file \
                    to a schema; `schemas.unknown: skip` silences this";
        vec![
            Finding::new(Rule::SchemaUnknownKind, severity, message)
                .at(doc.locate(""))
                .object(doc.id())
                .help(help),
        ]
    }
}

/// Looks errors up in the schema of the kind (or shared definition) that raised them: the
/// error's schema path is a pointer into that schema, so the schemas need no `$id` to be found
/// by. Without one the validator is a little smaller too (Deployment 0.58 -> 0.55 MB).
struct KindLookup<'a>(&'a KindSchema);

impl diags::SchemaLookup for KindLookup<'_> {
    fn schema_at(&self, error: &jsonschema::ValidationError<'_>) -> Option<&Value> {
        parent_of(self.0.schema()?, error.schema_path().as_str())
    }
}

struct MappedLookup<'a>(&'a mapped::MappedSchema);

impl diags::SchemaLookup for MappedLookup<'_> {
    fn schema_at(&self, error: &jsonschema::ValidationError<'_>) -> Option<&Value> {
        let location = error.absolute_keyword_location()?;
        lookup_in(&self.0.resources, location.as_str())
    }
}

/// The schema object that holds the keyword at `uri` (`base#/pointer/to/keyword`).
fn lookup_in<'a>(resources: &'a HashMap<String, Arc<Value>>, uri: &str) -> Option<&'a Value> {
    let (base, fragment) = uri.split_once('#').unwrap_or((uri, ""));
    parent_of(resources.get(base)?, &percent_decode(fragment))
}

/// The schema object holding the keyword a JSON pointer points at.
fn parent_of<'a>(resource: &'a Value, pointer: &str) -> Option<&'a Value> {
    let parent = pointer.rsplit_once('/').map_or("", |(p, _)| p);
    resource.pointer(parent)
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A pattern or format problem on a string that still holds a `${VAR}` reference: Flux fills it
/// in at apply time from a source the gate could not read (an encrypted Secret, say), so its
/// pattern cannot be judged here. Type and field problems still count.
fn awaits_substitution(doc: &Document, problem: &diags::Problem) -> bool {
    problem.rule == Rule::SchemaFormat
        && doc
            .value
            .pointer(&problem.pointer)
            .and_then(Value::as_str)
            .is_some_and(|text| text.contains("${"))
}

/// `schemas.kubernetes` → the embedded version to use (`None`: turned off).
fn select_version(requested: Option<&str>) -> Result<Option<String>, Vec<Finding>> {
    let available = available_versions();
    let Some(requested) = requested else {
        return Ok(available.first().map(|v| v.to_string()));
    };
    if requested.trim().eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let version = embedded::normalise_version(requested);
    if available.contains(&version.as_str()) {
        return Ok(Some(version));
    }
    Err(
        vec![Finding::error(
        Rule::ConfigInvalid,
        format!(
            "schemas.kubernetes: no embedded schemas for Kubernetes \"{requested}\"; available: {}",
            available.join(", ")
        ),
    )
    .in_file(CONFIG_FILE)
    .help("pick one of the available versions, or \"none\" to turn the embedded schemas off")],
    )
}

fn invalid_kind_schema(
    doc: &Document,
    api_version: &str,
    kind: &str,
    entry: &KindSchema,
    message: &str,
) -> Finding {
    let (source, location) = match &entry.origin {
        Origin::Crd(location, pointer) => (
            format!("CRD in {}, at {pointer}", location.file),
            location.clone(),
        ),
        Origin::Kubernetes(v) => (format!("embedded Kubernetes {v} schemas"), doc.locate("")),
        Origin::Catalog(name) => (format!("embedded CRD catalog, {name}"), doc.locate("")),
    };
    Finding::error(
        Rule::SchemaInvalid,
        format!("the schema of {api_version}/{kind} ({source}) cannot be compiled: {message}"),
    )
    .at(location)
    .object(doc.id())
}

fn internal(error: impl std::fmt::Display) -> Finding {
    Finding::error(
        Rule::GateInternal,
        format!("embedded schemas unusable: {error}"),
    )
}

#[cfg(test)]
mod tests;
