//! CustomResourceDefinitions → JSON Schemas, one per served version.
//!
//! A CRD's `openAPIV3Schema` is OpenAPI v3 with Kubernetes extensions, not JSON Schema. The
//! conversion follows what kubeconform and datree do, so results match the tools people know:
//! `nullable` adds `null` to the type, `x-kubernetes-int-or-string` allows both, objects with
//! `properties` get `additionalProperties: false` (strict) unless
//! `x-kubernetes-preserve-unknown-fields` says anything goes there.

use serde_json::{Map, Value, json};

use std::collections::BTreeSet;

use rayon::prelude::*;

use crate::load::sniff::{contains, hides_from_filters};
use crate::load::{Document, LoadOptions, load_manifest};
use crate::paths::glob_set;
use crate::tree::Tree;

/// One kind and version a CRD defines, with its OpenAPI schema as written ([`json_schema`]
/// converts it).
#[derive(Debug, Clone)]
pub struct CrdSchema<'a> {
    pub api_version: String,
    pub kind: String,
    pub openapi: &'a Map<String, Value>,
    /// JSON pointer of the `openAPIV3Schema` in the CRD document (for findings about it).
    pub pointer: String,
}

/// The schemas of every served version of a CRD document; nothing if it is not a CRD or has no
/// structural schema (such kinds then count as unknown).
pub fn schemas_of(doc: &Document) -> Vec<CrdSchema<'_>> {
    let value = &doc.value;
    if doc.kind() != Some("CustomResourceDefinition")
        || !doc
            .api_version()
            .is_some_and(|v| v.starts_with("apiextensions.k8s.io/"))
    {
        return Vec::new();
    }
    let spec = &value["spec"];
    let (Some(group), Some(kind)) = (spec["group"].as_str(), spec["names"]["kind"].as_str()) else {
        return Vec::new();
    };
    let Some(versions) = spec["versions"].as_array() else {
        return Vec::new();
    };
    versions
        .iter()
        .enumerate()
        .filter(|(_, v)| v["served"].as_bool().unwrap_or(true))
        .filter_map(|(i, v)| {
            let name = v["name"].as_str()?;
            let openapi = v["schema"]["openAPIV3Schema"].as_object()?;
            Some(CrdSchema {
                api_version: format!("{group}/{name}"),
                kind: kind.to_string(),
                openapi,
                pointer: format!("/spec/versions/{i}/schema/openAPIV3Schema"),
            })
        })
        .collect()
}

/// The JSON Schema of a CRD's `openapi` schema, with `apiVersion`, `kind` and `metadata` pinned at
/// the top level.
pub fn json_schema(openapi: &Value, api_version: &str, kind: &str) -> Value {
    let mut schema = convert(openapi, true);
    let object = schema
        .as_object_mut()
        .expect("convert keeps objects objects");
    let properties = object
        .entry("properties")
        .or_insert_with(|| json!({}))
        .as_object_mut();
    if let Some(properties) = properties {
        properties.insert(
            "apiVersion".into(),
            json!({"type": "string", "enum": [api_version]}),
        );
        properties.insert("kind".into(), json!({"type": "string", "enum": [kind]}));
        properties
            .entry("metadata")
            .or_insert_with(|| json!({"type": "object"}));
    }
    let preserve = openapi
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if !preserve {
        object
            .entry("additionalProperties")
            .or_insert(Value::Bool(false));
    }
    object.insert(
        "$schema".into(),
        json!("https://json-schema.org/draft/2020-12/schema"),
    );
    super::repeats::write_compactly(&mut schema);
    schema
}

/// Convert one OpenAPI v3 schema node. `structural` is false inside `allOf`/`anyOf`/`oneOf`/`not`,
/// where `properties` only restate fields for value validation: closing those objects would
/// reject every other field.
pub fn convert(node: &Value, structural: bool) -> Value {
    let Some(map) = node.as_object() else {
        return node.clone();
    };
    // The markers are noted as the keys go by: looked up afterwards, each was a hash of its name
    // in every object of the schema (ApplicationSet's has tens of thousands).
    let mut marked = Markers::default();
    let mut out = Map::with_capacity(map.len());
    for (key, value) in map {
        match key.as_str() {
            "nullable" => marked.nullable = value.as_bool() == Some(true),
            "description" | "format" | "example" | "externalDocs" | "default" => {}
            k if k.starts_with("x-kubernetes-") => marked.note(k, value),
            "properties" | "patternProperties" => {
                let converted = value
                    .as_object()
                    .map(|props| {
                        props
                            .iter()
                            .map(|(name, sub)| (name.clone(), convert(sub, structural)))
                            .collect::<Map<_, _>>()
                    })
                    .unwrap_or_default();
                out.insert(key.clone(), Value::Object(converted));
            }
            "items" | "additionalProperties" => {
                out.insert(key.clone(), convert(value, structural));
            }
            "allOf" | "anyOf" | "oneOf" => {
                let branches = value
                    .as_array()
                    .map(|b| b.iter().map(|s| convert(s, false)).collect())
                    .unwrap_or_default();
                out.insert(key.clone(), Value::Array(branches));
            }
            "not" => {
                out.insert(key.clone(), convert(value, false));
            }
            _ => {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    if marked.int_or_string {
        out.insert("type".into(), json!(["integer", "string"]));
    }
    if marked.nullable {
        add_null(&mut out);
    }
    let closed = structural
        && out.contains_key("properties")
        && !out.contains_key("additionalProperties")
        && !marked.preserve_unknown_fields;
    if closed {
        if marked.embedded_resource {
            allow_embedded_object_fields(&mut out);
        }
        out.insert("additionalProperties".into(), Value::Bool(false));
    }
    Value::Object(out)
}

/// The markers of one OpenAPI schema node that change how it converts; each is true only when
/// set to `true`.
#[derive(Default)]
struct Markers {
    nullable: bool,
    int_or_string: bool,
    preserve_unknown_fields: bool,
    embedded_resource: bool,
}

impl Markers {
    fn note(&mut self, key: &str, value: &Value) {
        let set = value.as_bool() == Some(true);
        match key {
            "x-kubernetes-int-or-string" => self.int_or_string = set,
            "x-kubernetes-preserve-unknown-fields" => self.preserve_unknown_fields = set,
            "x-kubernetes-embedded-resource" => self.embedded_resource = set,
            _ => {}
        }
    }
}

fn add_null(schema: &mut Map<String, Value>) {
    match schema.get_mut("type") {
        Some(Value::String(t)) => {
            let t = std::mem::take(t);
            schema.insert("type".into(), json!([t, "null"]));
        }
        Some(Value::Array(types)) if !types.contains(&json!("null")) => types.push(json!("null")),
        _ => {}
    }
    if let Some(Value::Array(options)) = schema.get_mut("enum")
        && !options.contains(&Value::Null)
    {
        options.push(Value::Null);
    }
}

/// An embedded resource (e.g. a template object) carries apiVersion/kind/metadata even when the
/// schema does not list them.
fn allow_embedded_object_fields(schema: &mut Map<String, Value>) {
    if let Some(Value::Object(props)) = schema.get_mut("properties") {
        for (name, sub) in [
            ("apiVersion", json!({"type": "string"})),
            ("kind", json!({"type": "string"})),
            ("metadata", json!({"type": "object"})),
        ] {
            props.entry(name).or_insert(sub);
        }
    }
}

/// Without `schemas.crds`, CRDs in the base are found by where people keep them; reading every file
/// of a 50,000-file repository on each push would cost the hook its time budget.
pub const DEFAULT_CRD_GLOBS: &[&str] = &[
    "**/crds/**",
    "**/*crd*.yaml",
    "**/*crd*.yml",
    "**/*crd*.json",
];

/// The globs where the base's CRDs live: `schemas.crds`, or the defaults.
pub fn crd_globs(configured: &[String]) -> Vec<String> {
    if configured.is_empty() {
        DEFAULT_CRD_GLOBS.iter().map(|g| (*g).to_owned()).collect()
    } else {
        configured.to_vec()
    }
}

pub fn is_crd(doc: &Document) -> bool {
    doc.kind() == Some("CustomResourceDefinition")
        && doc
            .api_version()
            .is_some_and(|v| v.starts_with("apiextensions.k8s.io/"))
}

/// The files of the trusted base that `globs` ([`crd_globs`]) match: where [`base_files`] and
/// [`in_base`] look. The default globs can match anywhere, so this walks every directory of the
/// base: callers keep the result by the base's tree id and the globs
/// ([`crate::render::scan_cache::TreeListings`]).
pub fn glob_matches(trusted: &dyn Tree, globs: &[String]) -> Vec<String> {
    // Invalid globs stopped the config already; here they find nothing.
    let Ok(set) = glob_set(globs) else {
        return Vec::new();
    };
    let found: BTreeSet<String> = literal_prefixes(globs)
        .iter()
        .flat_map(|prefix| trusted.files_under(prefix))
        .filter(|path| set.is_match(path))
        .collect();
    found.into_iter().collect()
}

/// The base's CRD files (`listed`, from [`glob_matches`]) the change does not touch (`changed`).
pub fn base_files(listed: &[String], changed: &dyn Fn(&str) -> bool) -> BTreeSet<String> {
    listed
        .iter()
        .filter(|path| !changed(path))
        .cloned()
        .collect()
}

/// CRDs of the trusted base that define one of `kinds`, from its CRD files (`listed`), leaving
/// out files the change touches (their base version is not what will apply). Files are filtered
/// on their bytes before any is parsed: a kind's name appears in its CRD (`names.kind`) in YAML
/// and JSON alike.
pub fn in_base(
    trusted: &dyn Tree,
    listed: &[String],
    kinds: &BTreeSet<&str>,
    changed: &BTreeSet<&str>,
    options: &LoadOptions,
) -> Vec<Document> {
    base_files(listed, &|path| changed.contains(path))
        .par_iter()
        .filter_map(|path| trusted.read(path).map(|bytes| (path, bytes)))
        .filter(|(_, bytes)| {
            hides_from_filters(bytes)
                || (contains(bytes, b"CustomResourceDefinition")
                    && kinds.iter().any(|k| contains(bytes, k.as_bytes())))
        })
        .flat_map_iter(|(path, bytes)| load_manifest(path, &bytes, options).documents)
        .filter(is_crd)
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_literal_directories_of_globs_are_listed() {
        let globs = vec!["crds/**/*.yaml".to_owned(), "infra/crds/x.yaml".to_owned()];
        assert_eq!(literal_prefixes(&globs), vec!["crds", "infra/crds"]);
        assert_eq!(literal_prefixes(&["**/crds/**".to_owned()]), vec![""]);
    }

    #[test]
    fn nullable_and_int_or_string_become_types() {
        let node = json!({
            "type": "object",
            "properties": {
                "a": {"type": "string", "nullable": true},
                "b": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]},
                "c": {"type": "string", "enum": ["x"], "nullable": true}
            }
        });
        let out = convert(&node, true);
        assert_eq!(out["properties"]["a"]["type"], json!(["string", "null"]));
        assert_eq!(out["properties"]["b"]["type"], json!(["integer", "string"]));
        assert_eq!(out["properties"]["c"]["enum"], json!(["x", null]));
        assert_eq!(out["additionalProperties"], json!(false));
    }

    #[test]
    fn preserve_unknown_fields_leaves_objects_open() {
        let node = json!({
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": true,
            "properties": {"a": {"type": "string"}}
        });
        assert!(convert(&node, true).get("additionalProperties").is_none());
    }

    #[test]
    fn value_validation_branches_stay_open() {
        let node = json!({
            "type": "object",
            "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
            "oneOf": [{"properties": {"a": {}}, "required": ["a"]}, {"required": ["b"]}]
        });
        let out = convert(&node, true);
        assert_eq!(out["additionalProperties"], json!(false));
        assert!(out["oneOf"][0].get("additionalProperties").is_none());
    }

    #[test]
    fn explicit_additional_properties_are_kept() {
        let node = json!({"type": "object", "additionalProperties": {"type": "string"}});
        assert_eq!(
            convert(&node, true)["additionalProperties"],
            json!({"type": "string"})
        );
    }
}
