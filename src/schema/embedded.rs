//! The embedded Kubernetes schemas: one zstd stream built by `xtask/gen-schemas.py`, one line per
//! minor version, newest first, so the default version costs only the first line's decoding.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::sync::{Mutex, PoisonError};

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

const BUNDLE: &[u8] = include_bytes!("../../schemas/kubernetes.jsonl.zst");
const VERSIONS: &str = include_str!("../../schemas/kubernetes.versions");
/// The newest version's line, uncompressed: the default version needs no decoding at start-up.
const NEWEST: &str = include_str!("../../schemas/kubernetes.newest.json");

const KIND_ID_PREFIX: &str = "https://kubernetes.io/api/kinds/";

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
    /// `#/$defs/dN`, and its `$id` set to [`kind_id`].
    ///
    /// Short because the validator keeps each compiled keyword's whole location as a string of
    /// its own: `/$defs/io.k8s.api.core.v1.PodSpec/properties/…` made Deployment's validator
    /// 0.99 MB, `/$defs/d3/properties/…` 0.83 MB. Findings never show these names.
    pub fn self_contained(&self, key: &str) -> Result<Value, String> {
        let raw = self
            .kinds
            .get(key)
            .ok_or_else(|| format!("no embedded schema for `{key}`"))?;
        let mut names = DefNames::default();
        let mut root = rewrite_refs(&parse(raw)?, &mut names);
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
        if let Some(map) = root.as_object_mut() {
            map.insert("$defs".into(), Value::Object(defs));
            map.insert("$id".into(), Value::String(kind_id(key)));
            map.insert(
                "$schema".into(),
                Value::String("https://json-schema.org/draft/2020-12/schema".into()),
            );
        }
        Ok(root)
    }
}

/// The `$id` of a kind's schema (`apps/v1/Deployment` → `https://kubernetes.io/api/kinds/…`).
pub fn kind_id(key: &str) -> String {
    format!("{KIND_ID_PREFIX}{key}")
}

/// The `apiVersion/kind` key of a kind's `$id`, if it is one.
pub fn kind_key(id: &str) -> Option<&str> {
    id.strip_prefix(KIND_ID_PREFIX)
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
    let mut loaded = LOADED.lock().unwrap_or_else(PoisonError::into_inner);
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
            assert_eq!(pod["$id"], "https://kubernetes.io/api/kinds/v1/Pod");
            let spec = pod["properties"]["spec"]["$ref"].as_str().unwrap();
            let spec = spec.strip_prefix("#/$defs/").unwrap();
            assert!(spec.len() <= 4, "{spec}");
            assert!(
                pod["$defs"][spec]["properties"]["containers"].is_object(),
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
