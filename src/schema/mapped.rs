//! `schemas.map`: files matching globs are validated against a schema file from the (trusted)
//! tree. Relative `$ref`s to other files of the tree are loaded too; anything that would need the
//! network is refused, because the gate never fetches at run time.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use jsonschema::{Registry, Validator};
use serde_json::Value;

use crate::config::{CONFIG_FILE, SchemaMapping};
use crate::finding::{Finding, Location, Rule};
use crate::load::{self, Document, LoadOptions};
use crate::tree::Tree;

/// Local files are registered under this scheme so relative references resolve between them
/// and can never collide with a real remote URI.
const LOCAL_BASE: &str = "file:///";

/// One compiled `schemas.map` entry.
pub struct MappedSchema {
    pub files: GlobSet,
    pub validator: Validator,
    /// Every file of the schema (the root and what it references), by its `file:///` URI.
    pub resources: HashMap<String, Arc<Value>>,
}

/// Compile one mapping; errors are `schema/invalid-schema` (or `config/invalid` for a bad glob)
/// findings located in the offending file.
pub fn compile(mapping: &SchemaMapping, tree: &dyn Tree) -> Result<MappedSchema, Vec<Finding>> {
    let files = globs(&mapping.files)?;
    let root = mapping.schema.trim_start_matches("./").to_string();
    let mut loaded = BTreeMap::new();
    let mut findings = Vec::new();
    load_closure(&root, None, tree, &mut loaded, &mut findings);
    if !findings.is_empty() {
        return Err(findings);
    }
    let resources: HashMap<String, Arc<Value>> = loaded
        .into_iter()
        .map(|(path, value)| (format!("{LOCAL_BASE}{path}"), Arc::new(value)))
        .collect();
    let invalid =
        |message: String| vec![Finding::error(Rule::SchemaInvalid, message).in_file(&root)];
    let registry = Registry::new()
        .retrieve_known_draft_meta_schemas(false)
        .extend(
            resources
                .iter()
                .map(|(uri, v)| (uri.clone(), Arc::clone(v))),
        )
        .and_then(|b| b.prepare())
        .map_err(|e| invalid(format!("schema `{root}` cannot be resolved: {e}")))?;
    let root_value = &resources[&format!("{LOCAL_BASE}{root}")];
    let validator = jsonschema::options()
        .offline()
        .with_registry(&registry)
        .with_base_uri(format!("{LOCAL_BASE}{root}"))
        .build(root_value)
        .map_err(|e| invalid(format!("schema `{root}` is not a valid JSON Schema: {e}")))?;
    Ok(MappedSchema {
        files,
        validator,
        resources,
    })
}

fn globs(patterns: &[String]) -> Result<GlobSet, Vec<Finding>> {
    let mut builder = GlobSetBuilder::new();
    let mut findings = Vec::new();
    for pattern in patterns {
        match GlobBuilder::new(pattern).literal_separator(true).build() {
            Ok(glob) => {
                builder.add(glob);
            }
            Err(e) => findings.push(
                Finding::error(
                    Rule::ConfigInvalid,
                    format!("schemas.map: invalid glob `{pattern}`: {e}"),
                )
                .in_file(CONFIG_FILE),
            ),
        }
    }
    if !findings.is_empty() {
        return Err(findings);
    }
    builder.build().map_err(|e| {
        vec![Finding::error(Rule::ConfigInvalid, format!("schemas.map: {e}")).in_file(CONFIG_FILE)]
    })
}

/// Load `path` and, transitively, the local files its `$ref`s name. `referrer` locates the `$ref`
/// that asked for this file, for a "not found" finding.
fn load_closure(
    path: &str,
    referrer: Option<Location>,
    tree: &dyn Tree,
    loaded: &mut BTreeMap<String, Value>,
    findings: &mut Vec<Finding>,
) {
    if loaded.contains_key(path) {
        return;
    }
    let doc = match read_schema_file(path, referrer, tree) {
        Ok(doc) => doc,
        Err(finding) => return findings.push(*finding),
    };
    let mut refs = Vec::new();
    collect_refs(&doc.value, String::new(), &mut refs);
    let mut value = doc.value.clone();
    // Local files are identified by their path; an `$id` naming some web address would make
    // their relative references resolve to the network.
    if let Some(map) = value.as_object_mut() {
        map.remove("$id");
    }
    loaded.insert(path.to_string(), value);
    for (pointer, reference) in refs {
        let target = reference.split('#').next().unwrap_or_default();
        if target.is_empty() {
            continue;
        }
        let location = doc.locate(&pointer);
        if target.contains(':') {
            findings.push(
                Finding::error(
                    Rule::SchemaInvalid,
                    format!(
                        "remote schema reference `{reference}` refused: stategate never fetches \
                         schemas at run time"
                    ),
                )
                .at(location)
                .help("vendor the referenced schema into the repository and use a relative $ref"),
            );
            continue;
        }
        match resolve_relative(path, target) {
            Some(next) => load_closure(&next, Some(location), tree, loaded, findings),
            None => findings.push(
                Finding::error(
                    Rule::SchemaInvalid,
                    format!("schema reference `{reference}` points outside the repository"),
                )
                .at(location),
            ),
        }
    }
}

fn read_schema_file(
    path: &str,
    referrer: Option<Location>,
    tree: &dyn Tree,
) -> Result<Document, Box<Finding>> {
    let Some(bytes) = tree.read(path) else {
        let at = referrer.unwrap_or_else(|| Location::file(CONFIG_FILE));
        return Err(Box::new(
            Finding::error(
                Rule::SchemaInvalid,
                format!("schema file `{path}` not found in {}", tree.describe()),
            )
            .at(at),
        ));
    };
    let mut loaded = load::load_file(path, &bytes, &LoadOptions::default());
    let error = loaded
        .findings
        .iter()
        .find(|f| f.severity == crate::finding::Severity::Error);
    if let Some(error) = error {
        let mut finding = Finding::error(
            Rule::SchemaInvalid,
            format!(
                "schema file `{path}` is not valid JSON or YAML: {}",
                error.message
            ),
        );
        finding.location = error.location.clone().or(Some(Location::file(path)));
        return Err(Box::new(finding));
    }
    let mut documents = loaded.documents.drain(..).filter(|d| !d.value.is_null());
    match (documents.next(), documents.next()) {
        (Some(doc), None) if doc.value.is_object() || doc.value.is_boolean() => Ok(doc),
        (Some(doc), None) => Err(Box::new(
            Finding::error(
                Rule::SchemaInvalid,
                format!("schema file `{path}` must hold an object or a boolean"),
            )
            .at(doc.locate("")),
        )),
        (None, _) => Err(Box::new(
            Finding::error(
                Rule::SchemaInvalid,
                format!("schema file `{path}` is empty"),
            )
            .in_file(path),
        )),
        (Some(_), Some(second)) => Err(Box::new(
            Finding::error(
                Rule::SchemaInvalid,
                format!("schema file `{path}` holds more than one YAML document"),
            )
            .at(second.locate("")),
        )),
    }
}

/// Every `$ref` string in a schema, with the JSON pointer of the `$ref` value.
fn collect_refs(value: &Value, pointer: String, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (key, sub) in map {
                let escaped = key.replace('~', "~0").replace('/', "~1");
                let here = format!("{pointer}/{escaped}");
                match (key.as_str(), sub) {
                    ("$ref" | "$dynamicRef", Value::String(r)) => out.push((here, r.clone())),
                    _ => collect_refs(sub, here, out),
                }
            }
        }
        Value::Array(items) => {
            for (i, sub) in items.iter().enumerate() {
                collect_refs(sub, format!("{pointer}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// `target` relative to the directory of `from`, normalised; `None` if it climbs out of the root.
fn resolve_relative(from: &str, target: &str) -> Option<String> {
    let mut parts: Vec<&str> = if target.starts_with('/') {
        Vec::new()
    } else {
        from.split('/').collect()
    };
    if !target.starts_with('/') {
        parts.pop();
    }
    for segment in target.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            s => parts.push(s),
        }
    }
    Some(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_refs_resolve_inside_the_tree() {
        assert_eq!(
            resolve_relative("schemas/app.json", "common/defs.json").as_deref(),
            Some("schemas/common/defs.json")
        );
        assert_eq!(
            resolve_relative("schemas/app.json", "../x.json").as_deref(),
            Some("x.json")
        );
        assert_eq!(resolve_relative("app.json", "../../x.json"), None);
    }
}
