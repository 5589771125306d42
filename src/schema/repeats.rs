//! Repeated subschemas, written once under `$defs` and referred to with `$ref`.
//!
//! A CRD's schema has no references: every use of a type is written out in full. Argo CD's
//! ApplicationSet repeats the whole Application template under each of its generators, so its
//! converted schema is 379 KB of JSON of which 22 KB are distinct. The validator compiles a `$ref`
//! target once and shares it, so writing each repeat once cuts both the compile time and the
//! memory of the compiled kind by as much.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hash, Hasher};

use serde_json::{Map, Value, json};

/// Subschemas smaller than this many JSON nodes stay inline: a `$ref` is two nodes itself, and
/// each one is a step more when validating.
const MIN_NODES: usize = 16;

/// Rewrite `schema` so that each subschema it holds more than once (of at least [`MIN_NODES`]
/// nodes) is written once, under `$defs`, and every place that held it has a `$ref` to it. A
/// schema that already has `$defs`, or any `$ref`, `$id` or anchor below its root, is left as it
/// is: moving its subschemas could change what their references resolve to.
pub fn write_repeats_once(schema: &mut Value) {
    let Some(root) = schema.as_object() else {
        return;
    };
    if root.contains_key("$defs")
        || root.contains_key("definitions")
        || has_references(schema, true)
    {
        return;
    }
    // The root is counted too, but once: nothing the size of the whole schema repeats.
    let mut census = Census::default();
    census.count_schema(schema);
    let repeated: HashSet<u64> = census
        .seen
        .into_iter()
        .filter(|(_, seen)| seen.count > 1 && !seen.collided)
        .map(|(hash, _)| hash)
        .collect();
    if repeated.is_empty() {
        return;
    }
    let mut writer = Writer {
        hashes: &census.hashes,
        repeated: &repeated,
        names: HashMap::new(),
        defs: Map::new(),
    };
    let mut out = writer.schema(schema);
    if let Some(map) = out.as_object_mut() {
        map.insert("$defs".into(), Value::Object(writer.defs));
    }
    *schema = out;
}

/// Whether anything under `node` refers to, or names, a place in the schema. The root's own `$id`
/// is kept where it is, so only ids below it count.
fn has_references(node: &Value, root: bool) -> bool {
    match node {
        Value::Object(map) => map.iter().any(|(key, value)| {
            matches!(
                key.as_str(),
                "$ref" | "$dynamicRef" | "$recursiveRef" | "$anchor" | "$dynamicAnchor"
            ) || (key == "$id" && !root)
                || has_references(value, false)
        }),
        Value::Array(items) => items.iter().any(|item| has_references(item, false)),
        _ => false,
    }
}

/// What is known of one subschema's content, by its hash.
struct Seen<'a> {
    first: &'a Value,
    count: usize,
    /// Two different subschemas had the same hash: neither is shared.
    collided: bool,
}

#[derive(Default)]
struct Census<'a> {
    /// Keyed per process, so a schema's author cannot aim two different subschemas at one hash.
    keys: RandomState,
    /// The hash of every node, by address (the schema is not changed while they are used).
    hashes: HashMap<*const Value, u64>,
    seen: HashMap<u64, Seen<'a>>,
}

impl<'a> Census<'a> {
    /// Hash `node`, a subschema, and everything under it; count it when it is large enough.
    fn count_schema(&mut self, node: &'a Value) -> (u64, usize) {
        let Value::Object(map) = node else {
            return self.hash_data(node);
        };
        let mut hasher = self.keys.build_hasher();
        let mut nodes = 1;
        "object".hash(&mut hasher);
        for (key, value) in map {
            key.hash(&mut hasher);
            let (hash, size) = self.count_keyword(key, value);
            hash.hash(&mut hasher);
            nodes += size;
        }
        let hash = hasher.finish();
        self.hashes.insert(node, hash);
        if nodes >= MIN_NODES {
            self.record(hash, node);
        }
        (hash, nodes)
    }

    /// The value of one keyword of a subschema: subschemas where the keyword holds them, data
    /// (`enum`, `const`, `default`…) everywhere else.
    fn count_keyword(&mut self, key: &str, value: &'a Value) -> (u64, usize) {
        match (subschemas_of(key), value) {
            (Holds::One | Holds::OneOrList, _) if !value.is_array() => self.count_schema(value),
            (Holds::Map, Value::Object(map)) => {
                self.combine("map", map.iter().map(|(k, v)| (Some(k), v)), true)
            }
            (Holds::List | Holds::OneOrList, Value::Array(items)) => {
                self.combine("list", items.iter().map(|v| (None, v)), true)
            }
            _ => self.hash_data(value),
        }
    }

    fn combine(
        &mut self,
        tag: &str,
        entries: impl Iterator<Item = (Option<&'a String>, &'a Value)>,
        schemas: bool,
    ) -> (u64, usize) {
        let mut hasher = self.keys.build_hasher();
        tag.hash(&mut hasher);
        let mut nodes = 1;
        for (key, value) in entries {
            key.hash(&mut hasher);
            let (hash, size) = if schemas {
                self.count_schema(value)
            } else {
                self.hash_data(value)
            };
            hash.hash(&mut hasher);
            nodes += size;
        }
        (hasher.finish(), nodes)
    }

    fn hash_data(&mut self, node: &'a Value) -> (u64, usize) {
        match node {
            Value::Object(map) => {
                self.combine("data", map.iter().map(|(k, v)| (Some(k), v)), false)
            }
            Value::Array(items) => self.combine("array", items.iter().map(|v| (None, v)), false),
            scalar => (self.keys.hash_one(scalar.to_string()), 1),
        }
    }

    fn record(&mut self, hash: u64, node: &'a Value) {
        let seen = self.seen.entry(hash).or_insert(Seen {
            first: node,
            count: 0,
            collided: false,
        });
        seen.count += 1;
        if seen.count > 1 && !seen.collided && seen.first != node {
            seen.collided = true;
        }
    }
}

/// Builds the rewritten schema from the original, which stays untouched (its addresses key the
/// census's hashes). Repeats are named in the order they are first met, so a schema is always
/// rewritten to the same text.
struct Writer<'c> {
    hashes: &'c HashMap<*const Value, u64>,
    repeated: &'c HashSet<u64>,
    /// The `$defs` name of each repeat written so far, by hash.
    names: HashMap<u64, String>,
    defs: Map<String, Value>,
}

impl Writer<'_> {
    fn schema(&mut self, node: &Value) -> Value {
        let Value::Object(map) = node else {
            return node.clone();
        };
        let shared = self
            .hashes
            .get(&(node as *const Value))
            .filter(|hash| self.repeated.contains(hash));
        let Some(&hash) = shared else {
            return self.object(map);
        };
        let name = match self.names.get(&hash) {
            Some(name) => name.clone(),
            None => {
                let name = format!("repeat{}", self.names.len());
                self.names.insert(hash, name.clone());
                let body = self.object(map);
                self.defs.insert(name.clone(), body);
                name
            }
        };
        json!({ "$ref": format!("#/$defs/{name}") })
    }

    fn object(&mut self, map: &Map<String, Value>) -> Value {
        let out = map
            .iter()
            .map(|(key, value)| (key.clone(), self.keyword(key, value)))
            .collect();
        Value::Object(out)
    }

    fn keyword(&mut self, key: &str, value: &Value) -> Value {
        match (subschemas_of(key), value) {
            (Holds::One | Holds::OneOrList, _) if !value.is_array() => self.schema(value),
            (Holds::Map, Value::Object(map)) => Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), self.schema(v)))
                    .collect(),
            ),
            (Holds::List | Holds::OneOrList, Value::Array(items)) => {
                Value::Array(items.iter().map(|v| self.schema(v)).collect())
            }
            _ => value.clone(),
        }
    }
}

/// Where a keyword of JSON Schema 2020-12 (and the older `items` and `additionalItems`) holds
/// subschemas.
enum Holds {
    One,
    Map,
    List,
    OneOrList,
    Data,
}

fn subschemas_of(key: &str) -> Holds {
    match key {
        "additionalProperties"
        | "unevaluatedProperties"
        | "unevaluatedItems"
        | "not"
        | "if"
        | "then"
        | "else"
        | "contains"
        | "propertyNames"
        | "additionalItems" => Holds::One,
        "properties" | "patternProperties" | "dependentSchemas" => Holds::Map,
        "allOf" | "anyOf" | "oneOf" | "prefixItems" => Holds::List,
        "items" => Holds::OneOrList,
        _ => Holds::Data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A container-like subschema of more than [`MIN_NODES`] nodes.
    fn container() -> Value {
        json!({
            "type": "object",
            "required": ["name"],
            "additionalProperties": false,
            "properties": {
                "name": {"type": "string"},
                "image": {"type": "string"},
                "ports": {"type": "array", "items": {
                    "type": "object",
                    "additionalProperties": false,
                    "properties": {"port": {"type": "integer"}, "name": {"type": "string"}}
                }},
                "mode": {"type": "string", "enum": ["fast", "slow"]}
            }
        })
    }

    fn pod_like() -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "main": container(),
                "sidecars": {"type": "array", "items": container()},
                "init": {"anyOf": [container(), {"type": "null"}]},
                "extra": {"type": "object", "default": container(), "enum": [container()]}
            }
        })
    }

    fn errors(schema: &Value, instance: &Value) -> Vec<(String, String)> {
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .build(schema)
            .unwrap();
        let mut out: Vec<_> = validator
            .iter_errors(instance)
            .map(|e| {
                (
                    e.instance_path().as_str().to_owned(),
                    e.kind().keyword().to_owned(),
                )
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn a_repeated_subschema_is_written_once_and_judges_alike() {
        let original = pod_like();
        let mut rewritten = original.clone();
        write_repeats_once(&mut rewritten);
        let defs = rewritten["$defs"]
            .as_object()
            .expect("the repeats are defined");
        assert_eq!(defs.len(), 1, "{rewritten:#}");
        let reference = json!({"$ref": "#/$defs/repeat0"});
        assert_eq!(rewritten["properties"]["main"], reference);
        assert_eq!(rewritten["properties"]["sidecars"]["items"], reference);
        assert_eq!(rewritten["properties"]["init"]["anyOf"][0], reference);
        // Data is not a subschema, even when it looks like one.
        assert_eq!(rewritten["properties"]["extra"]["default"], container());
        assert_eq!(rewritten["properties"]["extra"]["enum"][0], container());
        for instance in [
            json!({"main": {"name": "a", "ports": [{"port": 1}]}}),
            json!({"main": {"name": "a", "ports": [{"port": "x", "nmae": "y"}]}}),
            json!({"sidecars": [{"image": "b", "mode": "medium"}, {"name": 3}]}),
            json!({"init": {"name": "c", "unknown": true}, "other": 1}),
            json!({"init": null, "extra": {}}),
        ] {
            let expected = errors(&original, &instance);
            assert_eq!(errors(&rewritten, &instance), expected, "{instance}");
        }
        assert!(!errors(&original, &json!({"sidecars": [{"name": 3}]})).is_empty());
    }

    #[test]
    fn schemas_with_references_or_without_repeats_are_left_as_they_are() {
        let mut referring = pod_like();
        referring["properties"]["link"] = json!({"$ref": "#/properties/main"});
        let before = referring.clone();
        write_repeats_once(&mut referring);
        assert_eq!(referring, before);

        let mut nested_id = pod_like();
        nested_id["properties"]["main"]["$id"] = json!("https://example.com/c");
        let before = nested_id.clone();
        write_repeats_once(&mut nested_id);
        assert_eq!(nested_id, before);

        let mut single = json!({"type": "object", "properties": {"main": container()}});
        let before = single.clone();
        write_repeats_once(&mut single);
        assert_eq!(single, before);
    }

    #[test]
    fn repeats_inside_a_repeat_are_shared_too() {
        let pair = json!({"type": "object", "properties": {"a": container(), "b": container()}});
        let mut schema = json!({"type": "object", "properties": {"x": pair, "y": pair}});
        write_repeats_once(&mut schema);
        let defs = schema["$defs"].as_object().unwrap();
        assert_eq!(defs.len(), 2, "{schema:#}");
        // Named in the order they are first met: the pair, then the container inside it.
        assert_eq!(
            schema["properties"]["y"],
            json!({"$ref": "#/$defs/repeat0"})
        );
        assert_eq!(
            defs["repeat0"]["properties"]["b"],
            json!({"$ref": "#/$defs/repeat1"})
        );
        let text = schema.to_string();
        assert_eq!(
            text.matches("\"required\":[\"name\"]").count(),
            1,
            "{schema:#}"
        );
    }
}
