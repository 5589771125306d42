//! GitHub's published REST description, read once per test binary: every request the gate sends
//! must be an operation of it, and its JSON body must validate against the operation's
//! requestBody schema.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::{Map, Value};

/// One operation: `POST /repos/{owner}/{repo}/check-runs`.
struct Operation {
    method: String,
    template: String,
    segments: Vec<String>,
    body_schema: Option<Value>,
}

pub struct Spec {
    operations: Vec<Operation>,
    /// `components` with OpenAPI's `nullable` mapped to JSON Schema, for `$ref` resolution.
    components: Value,
    validators: Mutex<HashMap<String, Arc<jsonschema::Validator>>>,
}

static SPEC: OnceLock<Spec> = OnceLock::new();

/// The description under `corpus`, parsed on first use.
pub fn spec(corpus: &Path) -> &'static Spec {
    SPEC.get_or_init(|| {
        let file = corpus.join("github/rest-api-description/api.github.com.json");
        let text = std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
        let mut doc: Value = serde_json::from_str(&text).expect("the description is JSON");
        map_nullable(&mut doc);
        Spec::new(doc)
    })
}

impl Spec {
    fn new(mut doc: Value) -> Spec {
        let components = doc["components"].take();
        let mut operations = Vec::new();
        let paths = doc["paths"].as_object().expect("paths").clone();
        for (template, item) in paths {
            let Some(item) = item.as_object() else {
                continue;
            };
            for (method, op) in item {
                if !["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                    continue;
                }
                let body_schema = body_schema(op, &components);
                operations.push(Operation {
                    method: method.to_uppercase(),
                    segments: template.split('/').map(str::to_owned).collect(),
                    template: template.clone(),
                    body_schema,
                });
            }
        }
        Spec {
            operations,
            components,
            validators: Mutex::new(HashMap::new()),
        }
    }

    /// Check one request; `Err` says why it is not one GitHub defines.
    pub fn validate(&self, method: &str, path: &str, body: Option<&Value>) -> Result<(), String> {
        let segments: Vec<&str> = path.split('/').collect();
        let candidates: Vec<&Operation> = self
            .operations
            .iter()
            .filter(|op| matches(&op.segments, &segments))
            .collect();
        if candidates.is_empty() {
            return Err(format!("{method} {path}: no such path in the description"));
        }
        // A literal segment beats a parameter (`/pulls/comments` vs `/pulls/{pull_number}`).
        let Some(op) = candidates
            .iter()
            .filter(|op| op.method == method)
            .max_by_key(|op| op.segments.iter().filter(|s| !s.starts_with('{')).count())
        else {
            return Err(format!(
                "{method} {path}: the path exists ({}) but not for {method}",
                candidates[0].template
            ));
        };
        let (Some(schema), Some(body)) = (&op.body_schema, body) else {
            return Ok(());
        };
        let validator = self.validator(op, schema);
        let errors: Vec<String> = validator
            .iter_errors(body)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{method} {path} ({}): body does not match the requestBody schema: {}",
                op.template,
                errors.join("; ")
            ))
        }
    }

    fn validator(&self, op: &Operation, schema: &Value) -> Arc<jsonschema::Validator> {
        let key = format!("{} {}", op.method, op.template);
        let mut cache = self.validators.lock().unwrap();
        Arc::clone(cache.entry(key).or_insert_with(|| {
            let mut root = Map::new();
            root.insert("components".into(), self.components.clone());
            root.insert(
                "definitions".into(),
                Value::Object(Map::from_iter([("body".to_owned(), schema.clone())])),
            );
            root.insert("$ref".into(), Value::from("#/definitions/body"));
            let validator = jsonschema::options()
                .with_draft(jsonschema::Draft::Draft4)
                .build(&Value::Object(root))
                .expect("requestBody schema compiles");
            Arc::new(validator)
        }))
    }
}

fn matches(template: &[String], path: &[&str]) -> bool {
    template.len() == path.len()
        && template
            .iter()
            .zip(path)
            .all(|(t, p)| (t.starts_with('{') && !p.is_empty()) || t == p)
}

/// The `application/json` schema of an operation's requestBody (following a `$ref` to
/// `components/requestBodies`).
fn body_schema(op: &Value, components: &Value) -> Option<Value> {
    let mut body = op.get("requestBody")?;
    if let Some(reference) = body.get("$ref").and_then(Value::as_str) {
        let name = reference.rsplit('/').next()?;
        body = components.get("requestBodies")?.get(name)?;
    }
    body.get("content")?
        .get("application/json")?
        .get("schema")
        .cloned()
}

/// OpenAPI 3.0's `nullable: true` is not JSON Schema: `type: T` becomes `type: [T, "null"]`;
/// without a `type`, the schema becomes `anyOf: [schema, {type: null}]`.
fn map_nullable(value: &mut Value) {
    match value {
        Value::Array(items) => items.iter_mut().for_each(map_nullable),
        Value::Object(map) => {
            for child in map.values_mut() {
                map_nullable(child);
            }
            if map.remove("nullable") == Some(Value::Bool(true)) {
                match map.get("type").cloned() {
                    Some(Value::String(t)) => {
                        map.insert("type".into(), Value::from(vec![t, "null".to_owned()]));
                        if let Some(Value::Array(e)) = map.get_mut("enum") {
                            e.push(Value::Null);
                        }
                    }
                    _ => {
                        let inner = Value::Object(std::mem::take(map));
                        map.insert(
                            "anyOf".into(),
                            Value::from(vec![inner, serde_json::json!({"type": "null"})]),
                        );
                    }
                }
            }
        }
        _ => {}
    }
}
