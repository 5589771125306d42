//! Subschemas moved under `$defs` and referred to with `$ref`: those a schema holds more than
//! once, and those nested deep.
//!
//! A CRD's schema has no references: every use of a type is written out in full. Argo CD's
//! ApplicationSet repeats the whole Application template under each of its generators, so its
//! converted schema is 379 KB of JSON of which 22 KB are distinct. The validator compiles a `$ref`
//! target once and shares it, so writing each repeat once cuts both the compile time and the
//! memory of the compiled kind by as much.
//!
//! The validator also keeps, with each compiled keyword, the keyword's whole location in the
//! schema as a string of its own (`/properties/spec/properties/template/properties/…`), so a deep
//! schema pays for its depth at every keyword. Below `$defs/deep3` the locations start again.
//! Measured with jsonschema 0.61: the catalog's EnvoyProxy with only its descriptions dropped
//! compiles to 4.26 MB as written and 3.10 MB with each subschema deeper than [`MAX_LOCATION`]
//! moved under `$defs`; the 115 validators of the corpus' `check --all`, converted as stategate
//! converts them, 24.6 -> 23.1 MB.

use std::collections::{HashMap, HashSet};

use foldhash::fast::RandomState as FastState;

use serde_json::{Map, Value, json};

/// Subschemas smaller than this many JSON nodes stay inline: a `$ref` is two nodes itself, and
/// each one is a step more when validating.
const MIN_NODES: usize = 16;

/// A subschema whose location is longer than this many bytes is moved under `$defs`. Measured on
/// EnvoyProxy and ApplicationSet (4.26 and 12.75 MB as written): moving every subschema compiled
/// to 2.96 and 8.13 MB, for a `$ref` at each level and up to twice the compile time; 80 bytes to
/// 3.10 and 8.60 MB; 120 bytes to 3.15 and 9.25 MB.
const MAX_LOCATION: usize = 80;

/// Rewrite `schema` so that each subschema it holds more than once (of at least [`MIN_NODES`]
/// nodes) is written once, under `$defs`, and so is each subschema whose location is longer than
/// [`MAX_LOCATION`]; every place that held one has a `$ref` to it. A schema that already has
/// `$defs`, or any `$ref`, `$id` or anchor below its root, is left as it is: moving its
/// subschemas could change what their references resolve to.
pub fn write_compactly(schema: &mut Value) {
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
    let repeated = census.repeated();
    let mut writer = Writer {
        nodes: &census.nodes,
        repeated: &repeated,
        names: HashMap::new(),
        deep: 0,
        defs: Map::new(),
    };
    let Value::Object(root) = &*schema else {
        return;
    };
    let mut out = writer.object(root, 0);
    if writer.defs.is_empty() {
        return;
    }
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

/// What a subschema, or a piece of data, is: equal ids, equal content. Ids are handed out by
/// [`Census::intern`].
type Id = usize;

/// One subschema: the id of its content, and how many JSON nodes it has.
#[derive(Clone, Copy)]
struct Node {
    id: Id,
    nodes: usize,
}

/// A node's content as its parts' ids, so that telling two nodes apart looks one level down, not
/// at everything below. Comparing the values themselves, once at every place a repeat was met,
/// was the largest cost of rewriting ApplicationSet (a quarter of it, with hashing them another).
#[derive(PartialEq, Eq, Hash)]
enum Shape<'a> {
    /// An object, a map of subschemas, a list: what it is, and each entry's name and id in order.
    Entries(&'static str, Vec<(Option<&'a str>, Id)>),
    String(&'a str),
    Number(&'a serde_json::Number),
    Bool(bool),
    Null,
}

/// The ids of a schema's nodes. Hashing only finds candidates here (the table compares shapes),
/// so a fast hash does.
#[derive(Default)]
struct Census<'a> {
    ids: HashMap<Shape<'a>, Id, FastState>,
    /// How often each id was met as a subschema of at least [`MIN_NODES`] nodes, by id.
    counts: Vec<usize>,
    /// The id and size of every subschema, by address (the schema is not changed while they are
    /// used).
    nodes: HashMap<*const Value, Node, FastState>,
}

impl<'a> Census<'a> {
    /// Give `node`, a subschema, and everything under it an id; count it when it is large enough.
    fn count_schema(&mut self, node: &'a Value) -> (Id, usize) {
        let Value::Object(map) = node else {
            return self.count_data(node);
        };
        let (id, nodes) = self.combine(
            "object",
            map.iter().map(|(k, v)| (Some(k), v)),
            |census, key, value| census.count_keyword(key.map_or("", String::as_str), value),
        );
        self.nodes.insert(node, Node { id, nodes });
        if nodes >= MIN_NODES {
            self.counts[id] += 1;
        }
        (id, nodes)
    }

    /// The value of one keyword of a subschema: subschemas where the keyword holds them, data
    /// (`enum`, `const`, `default`…) everywhere else.
    fn count_keyword(&mut self, key: &str, value: &'a Value) -> (Id, usize) {
        let schemas = |census: &mut Self, _: Option<&String>, v| census.count_schema(v);
        match (subschemas_of(key), value) {
            (Holds::One | Holds::OneOrList, _) if !value.is_array() => self.count_schema(value),
            (Holds::Map, Value::Object(map)) => {
                self.combine("map", map.iter().map(|(k, v)| (Some(k), v)), schemas)
            }
            (Holds::List | Holds::OneOrList, Value::Array(items)) => {
                self.combine("list", items.iter().map(|v| (None, v)), schemas)
            }
            _ => self.count_data(value),
        }
    }

    fn combine(
        &mut self,
        tag: &'static str,
        entries: impl ExactSizeIterator<Item = (Option<&'a String>, &'a Value)>,
        mut count: impl FnMut(&mut Self, Option<&'a String>, &'a Value) -> (Id, usize),
    ) -> (Id, usize) {
        let mut parts = Vec::with_capacity(entries.len());
        let mut nodes = 1;
        for (key, value) in entries {
            let (id, size) = count(self, key, value);
            parts.push((key.map(String::as_str), id));
            nodes += size;
        }
        (self.intern(Shape::Entries(tag, parts)), nodes)
    }

    fn count_data(&mut self, node: &'a Value) -> (Id, usize) {
        let data = |census: &mut Self, _: Option<&String>, v| census.count_data(v);
        match node {
            Value::Object(map) => self.combine("data", map.iter().map(|(k, v)| (Some(k), v)), data),
            Value::Array(items) => self.combine("array", items.iter().map(|v| (None, v)), data),
            Value::String(text) => (self.intern(Shape::String(text)), 1),
            Value::Number(number) => (self.intern(Shape::Number(number)), 1),
            Value::Bool(value) => (self.intern(Shape::Bool(*value)), 1),
            Value::Null => (self.intern(Shape::Null), 1),
        }
    }

    /// The id of content shaped so: the one it had when first met, else a new one.
    fn intern(&mut self, shape: Shape<'a>) -> Id {
        let counts = &mut self.counts;
        *self.ids.entry(shape).or_insert_with(|| {
            counts.push(0);
            counts.len() - 1
        })
    }

    /// The ids of the subschemas met more than once.
    fn repeated(&self) -> HashSet<Id, FastState> {
        let more_than_once = self.counts.iter().enumerate().filter(|(_, n)| **n > 1);
        more_than_once.map(|(id, _)| id).collect()
    }
}

/// Builds the rewritten schema from the original, which stays untouched (its addresses key the
/// census). Subschemas are named in the order they are first met, so a schema is always rewritten
/// to the same text.
///
/// `location` is the length of the location the validator would give a subschema where it is
/// written: a moved one's keywords start again below `/$defs/name`.
struct Writer<'c> {
    nodes: &'c HashMap<*const Value, Node, FastState>,
    repeated: &'c HashSet<Id, FastState>,
    /// The `$defs` name of each repeat written so far, by id.
    names: HashMap<Id, String>,
    /// How many deep subschemas were moved so far.
    deep: usize,
    defs: Map<String, Value>,
}

impl Writer<'_> {
    fn schema(&mut self, node: &Value, location: usize) -> Value {
        let Value::Object(map) = node else {
            return node.clone();
        };
        let Some(&Node { id, nodes }) = self.nodes.get(&(node as *const Value)) else {
            return self.object(map, location);
        };
        if self.repeated.contains(&id) {
            let name = match self.names.get(&id) {
                Some(name) => name.clone(),
                None => {
                    let name = format!("repeat{}", self.names.len());
                    self.names.insert(id, name.clone());
                    self.define(&name, map);
                    name
                }
            };
            return reference(&name);
        }
        if location > MAX_LOCATION && nodes >= MIN_NODES {
            let name = format!("deep{}", self.deep);
            self.deep += 1;
            self.define(&name, map);
            return reference(&name);
        }
        self.object(map, location)
    }

    fn define(&mut self, name: &str, map: &Map<String, Value>) {
        let body = self.object(map, "/$defs/".len() + name.len());
        self.defs.insert(name.to_owned(), body);
    }

    fn object(&mut self, map: &Map<String, Value>, location: usize) -> Value {
        let out = map
            .iter()
            .map(|(key, value)| {
                let below = location + 1 + key.len();
                (key.clone(), self.keyword(key, value, below))
            })
            .collect();
        Value::Object(out)
    }

    /// `location` is the keyword's own; the subschemas it holds are below it.
    fn keyword(&mut self, key: &str, value: &Value, location: usize) -> Value {
        match (subschemas_of(key), value) {
            (Holds::One | Holds::OneOrList, _) if !value.is_array() => self.schema(value, location),
            (Holds::Map, Value::Object(map)) => Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), self.schema(v, location + 1 + k.len())))
                    .collect(),
            ),
            (Holds::List | Holds::OneOrList, Value::Array(items)) => Value::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| self.schema(v, location + 1 + i.to_string().len()))
                    .collect(),
            ),
            _ => value.clone(),
        }
    }
}

fn reference(name: &str) -> Value {
    json!({ "$ref": format!("#/$defs/{name}") })
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
        write_compactly(&mut rewritten);
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
    fn schemas_with_references_or_without_repeats_or_depth_are_left_as_they_are() {
        let mut referring = pod_like();
        referring["properties"]["link"] = json!({"$ref": "#/properties/main"});
        let before = referring.clone();
        write_compactly(&mut referring);
        assert_eq!(referring, before);

        let mut nested_id = pod_like();
        nested_id["properties"]["main"]["$id"] = json!("https://example.com/c");
        let before = nested_id.clone();
        write_compactly(&mut nested_id);
        assert_eq!(nested_id, before);

        let mut single = json!({"type": "object", "properties": {"main": container()}});
        let before = single.clone();
        write_compactly(&mut single);
        assert_eq!(single, before);
    }

    /// `container()` under `levels` levels of objects whose property names are `name_len` long.
    fn nested(levels: usize, name_len: usize) -> Value {
        let name = "n".repeat(name_len);
        (0..levels).fold(container(), |inner, level| {
            json!({
                "type": "object",
                "required": [format!("{name}")],
                "properties": {(name.clone()): inner, "level": {"type": "integer", "maximum": level}}
            })
        })
    }

    /// The longest location (as the validator would write it) of a subschema of at least
    /// [`MIN_NODES`] nodes, from `node` down, where `node` is at `location`.
    fn deepest_large(node: &Value, location: usize) -> usize {
        let Value::Object(map) = node else {
            return 0;
        };
        let mut census = Census::default();
        let (_, nodes) = census.count_schema(node);
        let here = if nodes >= MIN_NODES { location } else { 0 };
        let below = map.iter().map(|(key, value)| {
            let at = location + 1 + key.len();
            match (subschemas_of(key), value) {
                (Holds::One | Holds::OneOrList, v) if !v.is_array() => deepest_large(v, at),
                (Holds::Map, Value::Object(m)) => m
                    .iter()
                    .map(|(k, v)| deepest_large(v, at + 1 + k.len()))
                    .max()
                    .unwrap_or(0),
                (Holds::List | Holds::OneOrList, Value::Array(items)) => items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| deepest_large(v, at + 1 + i.to_string().len()))
                    .max()
                    .unwrap_or(0),
                _ => 0,
            }
        });
        below.max().unwrap_or(0).max(here)
    }

    #[test]
    fn a_deep_subschema_is_moved_under_defs_and_judges_alike() {
        let original = nested(6, 12);
        assert!(deepest_large(&original, 0) > MAX_LOCATION);
        let mut rewritten = original.clone();
        write_compactly(&mut rewritten);
        let defs = rewritten["$defs"]
            .as_object()
            .expect("the deep subschemas are moved");
        assert!(defs.contains_key("deep0"), "{rewritten:#}");
        let root_depth = deepest_large(&rewritten, 0);
        let defs_depth = defs
            .iter()
            .map(|(name, body)| deepest_large(body, "/$defs/".len() + name.len()))
            .max()
            .unwrap_or(0);
        assert!(
            root_depth.max(defs_depth) <= MAX_LOCATION,
            "{root_depth} {defs_depth}: {rewritten:#}"
        );
        let name = "n".repeat(12);
        let mut deep_bad = json!({"name": 3, "ports": [{"port": "x"}], "mode": "medium", "odd": 1});
        let mut deep_good = json!({"name": "a", "ports": [{"port": 1}]});
        for level in 0..6 {
            deep_bad = json!({(name.clone()): deep_bad, "level": level + 1});
            deep_good = json!({(name.clone()): deep_good, "level": 0});
        }
        assert!(errors(&original, &deep_good).is_empty());
        assert!(errors(&original, &deep_bad).len() >= 5, "{deep_bad}");
        for instance in [deep_good, deep_bad, json!({}), json!({(name.clone()): {}})] {
            let expected = errors(&original, &instance);
            assert_eq!(errors(&rewritten, &instance), expected, "{instance}");
        }
    }

    #[test]
    fn repeats_inside_a_repeat_are_shared_too() {
        let pair = json!({"type": "object", "properties": {"a": container(), "b": container()}});
        let mut schema = json!({"type": "object", "properties": {"x": pair, "y": pair}});
        write_compactly(&mut schema);
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
