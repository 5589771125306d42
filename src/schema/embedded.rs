//! The embedded Kubernetes schemas: one zstd stream built by `xtask/gen-schemas.py`, one line per
//! minor version, newest first, so the default version costs only the first line's decoding.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::sync::Mutex;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::sync::locked;

const BUNDLE: &[u8] = include_bytes!("../../schemas/kubernetes.jsonl.zst");
const VERSIONS: &str = include_str!("../../schemas/kubernetes.versions");
/// The newest version's line, uncompressed: the default version needs no decoding at start-up.
const NEWEST: &str = include_str!("../../schemas/kubernetes.newest.json");

/// Kubernetes minor versions with embedded schemas, newest first ("1.37", "1.36", …).
pub fn available_versions() -> Vec<&'static str> {
    VERSIONS.lines().filter(|l| !l.is_empty()).collect()
}

/// The schemas of one Kubernetes minor version, kept as raw JSON: a kind's schema, and the
/// definitions it reaches, are parsed the first time a document of that kind is judged. Parsing
/// every kind and definition up front was a third of a one-file check's start-up.
#[derive(Debug, Deserialize)]
pub struct KubeSchemas {
    /// `$defs` of `_definitions.json`, pruned to what the kinds reach.
    #[serde(borrow)]
    defs: HashMap<&'static str, &'static RawValue>,
    /// `apiVersion/kind` (e.g. `apps/v1/Deployment`) → top-level schema.
    #[serde(borrow)]
    kinds: HashMap<&'static str, &'static RawValue>,
}

impl KubeSchemas {
    /// Every `apiVersion/kind` key this version has a schema for.
    pub fn kind_keys(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.kinds.keys().copied()
    }

    /// A kind's schema (`apiVersion/kind`) with the definitions it reaches inlined under `$defs`
    /// by short names, its references rewritten from `/api/_definitions.json#/$defs/X` to
    /// `#/$defs/dN`.
    ///
    /// Short because the validator keeps each compiled keyword's whole location as a string of
    /// its own: `/$defs/io.k8s.api.core.v1.PodSpec/properties/…` made Deployment's validator
    /// 0.68 MB, `/$defs/d3/properties/…` 0.58 MB. Findings never show these names.
    ///
    /// A [`SHARED`] definition the kind reaches only through `properties` is left out: the kind's
    /// schema keeps only its `type`, and [`Contained::parts`] says where in a document to validate
    /// against the definition's own schema ([`KubeSchemas::definition`]).
    pub fn self_contained(&self, key: &str) -> Result<Contained, String> {
        let raw = self
            .kinds
            .get(key)
            .ok_or_else(|| format!("no embedded schema for `{key}`"))?;
        let (mut root, mut defs, names) = self.inline(raw)?;
        let mut parts = Vec::new();
        for &shared in SHARED {
            let Some(short) = names.short.get(shared) else {
                continue;
            };
            let Some(pointers) = pointers_to(&root, &defs, short) else {
                continue;
            };
            let Some(body) = defs.get_mut(short.as_str()) else {
                continue;
            };
            let mut stub = Map::new();
            if let Some(types) = body.get("type") {
                stub.insert("type".into(), types.clone());
            }
            *body = Value::Object(stub);
            parts.extend(pointers.into_iter().map(|pointer| (pointer, shared)));
        }
        if !parts.is_empty() {
            keep_reached(&root, &mut defs);
        }
        finish(&mut root, defs);
        Ok(Contained {
            schema: root,
            parts,
        })
    }

    /// A [`SHARED`] definition's schema, self-contained as a kind's is.
    pub fn definition(&self, name: &str) -> Result<Value, String> {
        let raw = self
            .defs
            .get(name)
            .ok_or_else(|| format!("no embedded definition `{name}`"))?;
        let (mut root, defs, _) = self.inline(raw)?;
        finish(&mut root, defs);
        Ok(root)
    }

    /// `raw` with its references rewritten, and the definitions it reaches.
    fn inline(&self, raw: &RawValue) -> Result<(Value, Map<String, Value>, DefNames), String> {
        let mut names = DefNames::default();
        let root = rewrite_refs(&parse(raw)?, &mut names);
        let mut defs = Map::new();
        // `names` grows as definitions reach others; each is inlined once, in the order met.
        let mut next = 0;
        while let Some(name) = names.met.get(next).cloned() {
            next += 1;
            let Some(raw) = self.defs.get(name.as_str()) else {
                continue;
            };
            let body = rewrite_refs(&parse(raw)?, &mut names);
            defs.insert(names.short(&name), body);
        }
        Ok((root, defs, names))
    }
}

/// Definitions compiled once, on their own, rather than inside every kind that holds them.
/// `PodSpec` is most of the schema of each workload kind (Pod, Deployment, StatefulSet,
/// DaemonSet, ReplicaSet, ReplicationController, Job, CronJob): 0.6 of Deployment's 0.68 MB
/// compiled. The corpus uses all eight.
pub const SHARED: &[&str] = &["io.k8s.api.core.v1.PodSpec"];

/// A kind's self-contained schema, and where in a document its [`SHARED`] definitions apply.
pub struct Contained {
    pub schema: Value,
    /// JSON pointer into a document, and the definition whose schema judges the value there.
    pub parts: Vec<(String, &'static str)>,
}

/// `$defs` and `$schema` on a kind's or definition's root. No `$id`: see `KindLookup`.
fn finish(root: &mut Value, defs: Map<String, Value>) {
    if let Some(map) = root.as_object_mut() {
        map.insert("$defs".into(), Value::Object(defs));
        map.insert(
            "$schema".into(),
            Value::String("https://json-schema.org/draft/2020-12/schema".into()),
        );
    }
}

/// The JSON pointers of the places in a document where `root` applies definition `target`, if
/// every one is reached through `properties` alone. `None` when one is reached any other way (an
/// array's items, a map's values, a combinator): a document may hold any number of those.
fn pointers_to(root: &Value, defs: &Map<String, Value>, target: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut walk = Walk {
        defs,
        target,
        within: Vec::new(),
        out: &mut out,
    };
    walk.node(root, Some(String::new()))?;
    Some(out)
}

struct Walk<'a> {
    defs: &'a Map<String, Value>,
    target: &'a str,
    /// The definitions being walked through, to stop at a cycle.
    within: Vec<&'a str>,
    out: &'a mut Vec<String>,
}

impl<'a> Walk<'a> {
    /// `at` is the pointer of the value `node` judges, while only `properties` led there.
    fn node(&mut self, node: &'a Value, at: Option<String>) -> Option<()> {
        match node {
            Value::Object(map) => {
                for (key, value) in map {
                    match (key.as_str(), value) {
                        ("$ref", Value::String(reference)) => {
                            let name = reference.strip_prefix("#/$defs/")?;
                            self.reference(name, at.clone())?;
                        }
                        ("properties", Value::Object(properties)) => {
                            for (name, sub) in properties {
                                let below = at
                                    .as_ref()
                                    .map(|a| format!("{a}/{}", super::diags::escape_pointer(name)));
                                self.node(sub, below)?;
                            }
                        }
                        _ => self.node(value, None)?,
                    }
                }
                Some(())
            }
            Value::Array(items) => items.iter().try_for_each(|item| self.node(item, None)),
            _ => Some(()),
        }
    }

    fn reference(&mut self, name: &'a str, at: Option<String>) -> Option<()> {
        if name == self.target {
            self.out.push(at?);
            return Some(());
        }
        if self.within.contains(&name) {
            // A cycle: below it, any number of places; none may hold the target.
            return (!reaches(self.defs, name, self.target)).then_some(());
        }
        let body = self.defs.get(name)?;
        self.within.push(name);
        self.node(body, at)?;
        self.within.pop();
        Some(())
    }
}

/// Whether definition `from` refers, directly or not, to definition `target`.
fn reaches(defs: &Map<String, Value>, from: &str, target: &str) -> bool {
    let mut direct = Vec::new();
    if let Some(body) = defs.get(from) {
        references(body, &mut direct);
    }
    reached(defs, direct).iter().any(|name| name == target)
}

/// `names`, and every definition they refer to, directly or not.
fn reached(defs: &Map<String, Value>, mut names: Vec<String>) -> Vec<String> {
    let mut next = 0;
    while let Some(name) = names.get(next).cloned() {
        next += 1;
        let mut more = Vec::new();
        if let Some(body) = defs.get(&name) {
            references(body, &mut more);
        }
        for name in more {
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names
}

/// The definitions `node` refers to.
fn references(node: &Value, out: &mut Vec<String>) {
    match node {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("$ref", Value::String(r)) => {
                        out.extend(r.strip_prefix("#/$defs/").map(str::to_owned));
                    }
                    _ => references(value, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| references(item, out)),
        _ => {}
    }
}

/// Drop the definitions `root` no longer reaches (those only a left-out definition held).
fn keep_reached(root: &Value, defs: &mut Map<String, Value>) {
    let mut direct = Vec::new();
    references(root, &mut direct);
    let reached = reached(defs, direct);
    defs.retain(|name, _| reached.contains(name));
}

fn parse(raw: &RawValue) -> Result<Value, String> {
    serde_json::from_str(raw.get()).map_err(|e| format!("embedded schema bundle is corrupt: {e}"))
}

/// The definitions a kind reaches, in the order they are met, and the short name of each.
#[derive(Default)]
struct DefNames {
    met: Vec<String>,
    short: HashMap<String, String>,
}

impl DefNames {
    fn short(&mut self, name: &str) -> String {
        if let Some(short) = self.short.get(name) {
            return short.clone();
        }
        let short = format!("d{}", self.met.len());
        self.met.push(name.to_owned());
        self.short.insert(name.to_owned(), short.clone());
        short
    }
}

fn rewrite_refs(value: &Value, names: &mut DefNames) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, sub)| match (key.as_str(), sub) {
                    ("$ref", Value::String(r)) => {
                        let name = r
                            .strip_prefix("/api/_definitions.json#/$defs/")
                            .or_else(|| r.strip_prefix("#/$defs/"));
                        match name {
                            Some(name) => {
                                let short = names.short(name);
                                (key.clone(), Value::String(format!("#/$defs/{short}")))
                            }
                            None => (key.clone(), sub.clone()),
                        }
                    }
                    _ => (key.clone(), rewrite_refs(sub, names)),
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|v| rewrite_refs(v, names)).collect()),
        other => other.clone(),
    }
}

/// Normalise a user-given version ("1.31", "v1.31", "1.31.4") to a bundle key ("1.31").
pub fn normalise_version(requested: &str) -> String {
    let trimmed = requested.trim().trim_start_matches('v');
    let mut parts = trimmed.split('.');
    match (parts.next(), parts.next()) {
        (Some(major), Some(minor)) => format!("{major}.{minor}"),
        _ => trimmed.to_string(),
    }
}

/// The schemas of `version` (a key of [`available_versions`]), decoded once per process: the
/// bundle is decoded up to that version's line, which stays in memory for the process's life
/// because the raw schemas borrow from it.
pub fn load_version(version: &str) -> Result<&'static KubeSchemas, String> {
    static LOADED: Mutex<Vec<(String, &'static KubeSchemas)>> = Mutex::new(Vec::new());
    let mut loaded = locked(&LOADED);
    if let Some((_, schemas)) = loaded.iter().find(|(v, _)| v == version) {
        return Ok(schemas);
    }
    let line: &'static str = if available_versions().first() == Some(&version) {
        NEWEST
    } else {
        Box::leak(decode_line(version)?.into_boxed_str())
    };
    let schemas: KubeSchemas = serde_json::from_str(line)
        .map_err(|e| format!("embedded schemas for {version} are corrupt: {e}"))?;
    let schemas: &'static KubeSchemas = Box::leak(Box::new(schemas));
    loaded.push((version.to_string(), schemas));
    Ok(schemas)
}

/// The JSON of one version's line of the bundle.
fn decode_line(version: &str) -> Result<String, String> {
    let decoder = ruzstd::decoding::StreamingDecoder::new(BUNDLE)
        .map_err(|e| format!("embedded schema bundle is corrupt: {e}"))?;
    let mut reader = BufReader::with_capacity(1 << 16, decoder);
    let mut line = String::new();
    loop {
        line.clear();
        let read = reader
            .read_line(&mut line)
            .map_err(|e| format!("embedded schema bundle is corrupt: {e}"))?;
        if read == 0 {
            return Err(format!("no embedded schemas for Kubernetes {version}"));
        }
        if let Some((key, json)) = line.split_once('\t')
            && key == version
        {
            return Ok(json.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_span_1_25_to_newest_newest_first() {
        let versions = available_versions();
        assert_eq!(versions.last(), Some(&"1.25"));
        assert!(versions.len() >= 13, "{versions:?}");
        let minors: Vec<u32> = versions
            .iter()
            .map(|v| v.trim_start_matches("1.").parse().unwrap())
            .collect();
        assert!(minors.windows(2).all(|w| w[0] > w[1]), "{minors:?}");
    }

    #[test]
    fn every_version_decodes_with_core_kinds() {
        for version in available_versions() {
            let schemas = load_version(version).unwrap();
            for kind in ["v1/Pod", "apps/v1/Deployment", "v1/ConfigMap", "v1/PodList"] {
                assert!(schemas.kinds.contains_key(kind), "{version} lacks {kind}");
            }
            assert!(schemas.defs.contains_key("io.k8s.api.core.v1.PodSpec"));
            let pod = schemas.self_contained("v1/Pod").unwrap();
            assert_eq!(pod.schema.get("$id"), None);
            // Pod's spec is judged by PodSpec's own schema; the kind keeps only its type.
            let pod_spec = "io.k8s.api.core.v1.PodSpec";
            assert_eq!(pod.parts, vec![("/spec".to_string(), pod_spec)]);
            let spec = pod.schema["properties"]["spec"]["$ref"].as_str().unwrap();
            let spec = spec.strip_prefix("#/$defs/").unwrap();
            assert!(spec.len() <= 4, "{spec}");
            assert_eq!(pod.schema["$defs"][spec]["properties"], Value::Null);
            let shared = schemas.definition(pod_spec).unwrap();
            assert!(shared["properties"]["containers"].is_object(), "{version}");
            // A list holds any number of pods: PodSpec stays inline there.
            let list = schemas.self_contained("v1/PodList").unwrap();
            assert!(list.parts.is_empty());
            assert!(
                list.schema["$defs"]
                    .as_object()
                    .unwrap()
                    .values()
                    .any(|def| def["properties"]["containers"].is_object()),
                "{version}"
            );
        }
    }

    #[test]
    fn the_uncompressed_newest_version_is_the_bundles_first_line() {
        let newest = available_versions()[0];
        assert_eq!(decode_line(newest).unwrap().trim_end(), NEWEST);
    }

    #[test]
    fn version_spellings_normalise() {
        assert_eq!(normalise_version("1.31"), "1.31");
        assert_eq!(normalise_version("v1.31"), "1.31");
        assert_eq!(normalise_version("1.31.4"), "1.31");
        assert_eq!(normalise_version("latest"), "latest");
    }
}
