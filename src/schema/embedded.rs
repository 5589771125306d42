//! The embedded Kubernetes schemas: one zstd stream built by `xtask/gen-schemas.py`, one line per
//! minor version, newest first, so the default version costs only the first line's decoding.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};

use serde::Deserialize;
use serde_json::{Map, Value};

const BUNDLE: &[u8] = include_bytes!("../../schemas/kubernetes.jsonl.zst");
const VERSIONS: &str = include_str!("../../schemas/kubernetes.versions");

/// The `$id` the per-kind files refer to (`/api/_definitions.json#/$defs/…`).
pub(super) const DEFINITIONS_ID: &str = "https://kubernetes.io/api/_definitions.json";
pub(super) const KIND_ID_PREFIX: &str = "https://kubernetes.io/api/kinds/";

/// Kubernetes minor versions with embedded schemas, newest first ("1.37", "1.36", …).
pub fn available_versions() -> Vec<&'static str> {
    VERSIONS.lines().filter(|l| !l.is_empty()).collect()
}

/// The schemas of one Kubernetes minor version.
#[derive(Debug, Deserialize)]
pub struct KubeSchemas {
    /// `$defs` of `_definitions.json`, pruned to what the kinds reach.
    pub defs: Map<String, Value>,
    /// `apiVersion/kind` (e.g. `apps/v1/Deployment`) → top-level schema.
    pub kinds: Map<String, Value>,
}

impl KubeSchemas {
    /// The `_definitions.json` resource the kind schemas reference (moves the definitions out).
    pub fn take_definitions_resource(&mut self) -> Value {
        serde_json::json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": DEFINITIONS_ID,
            "$defs": Value::Object(std::mem::take(&mut self.defs)),
        })
    }
}

/// A kind schema with the definitions it reaches inlined under `$defs`, its references
/// rewritten from `/api/_definitions.json#/$defs/X` to `#/$defs/X`.
pub fn self_contained(kind: &Value, definitions: &Value) -> Value {
    let mut reached = BTreeSet::new();
    let mut root = rewrite_refs(kind, &mut reached);
    let mut defs = Map::new();
    let mut todo: Vec<String> = reached.iter().cloned().collect();
    while let Some(name) = todo.pop() {
        let Some(def) = definitions["$defs"].get(&name) else {
            continue;
        };
        let mut more = BTreeSet::new();
        defs.insert(name, rewrite_refs(def, &mut more));
        for next in more {
            if reached.insert(next.clone()) {
                todo.push(next);
            }
        }
    }
    if let Some(map) = root.as_object_mut() {
        map.insert("$defs".into(), Value::Object(defs));
    }
    root
}

fn rewrite_refs(value: &Value, reached: &mut BTreeSet<String>) -> Value {
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
                                reached.insert(name.to_string());
                                (key.clone(), Value::String(format!("#/$defs/{name}")))
                            }
                            None => (key.clone(), sub.clone()),
                        }
                    }
                    _ => (key.clone(), rewrite_refs(sub, reached)),
                })
                .collect(),
        ),
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| rewrite_refs(v, reached)).collect())
        }
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

/// Decode the bundle up to `version` (a key of [`available_versions`]).
pub fn load_version(version: &str) -> Result<KubeSchemas, String> {
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
        let Some((key, json)) = line.split_once('\t') else {
            continue;
        };
        if key == version {
            return serde_json::from_str(json)
                .map_err(|e| format!("embedded schemas for {version} are corrupt: {e}"));
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
        }
    }

    #[test]
    fn version_spellings_normalise() {
        assert_eq!(normalise_version("1.31"), "1.31");
        assert_eq!(normalise_version("v1.31"), "1.31");
        assert_eq!(normalise_version("1.31.4"), "1.31");
        assert_eq!(normalise_version("latest"), "latest");
    }
}
