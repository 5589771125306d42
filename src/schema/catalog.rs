//! The embedded CRD catalog (datreeio/CRDs-catalog, MIT; `schemas/crds-catalog.LICENSE`), built by
//! `cargo xtask schemas` (xtask/src/lib.rs): one zstd frame per API group, compressed against one dictionary,
//! and a text index of where each group's frame is. A run decompresses only the groups its
//! documents use, once, and compiles each kind's validator on first use (see [`super::SchemaSet`]).

use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, OnceLock};

use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::{KindSchema, Origin, Source};

const FRAMES: &[u8] = include_bytes!("../../schemas/crds-catalog.bin");
const DICTIONARY: &[u8] = include_bytes!("../../schemas/crds-catalog.dict");
const INDEX: &str = include_str!("../../schemas/crds-catalog.index");

/// The `$id` prefix of catalog schemas: `…/<group>/<kind-lowercase>_<version>`.
pub(super) const ID_PREFIX: &str = "https://stategate.invalid/crds-catalog/";

/// The schemas of one group, keyed `<kind-lowercase>_<version>`, as JSON text; each is parsed,
/// converted like repository CRDs and compiled on first use.
type Group = HashMap<String, Arc<KindSchema>>;

/// The catalog: the index is read at start (a few hundred lines); groups are decoded on demand.
pub(super) struct Catalog {
    frames: HashMap<&'static str, (usize, usize)>,
    decoded: HashMap<&'static str, OnceLock<Result<Group, String>>>,
}

/// The process's one catalog: both sides of a change (and every schema set of a run) share the
/// groups decoded so far.
pub(super) fn shared() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(Catalog::new)
}

impl Catalog {
    fn new() -> Catalog {
        let frames: HashMap<&'static str, (usize, usize)> = INDEX
            .lines()
            .filter_map(|line| {
                let mut fields = line.split('\t');
                let group = fields.next()?;
                let offset = fields.next()?.parse().ok()?;
                let length = fields.next()?.parse().ok()?;
                Some((group, (offset, length)))
            })
            .collect();
        let decoded = frames.keys().map(|g| (*g, OnceLock::new())).collect();
        Catalog { frames, decoded }
    }

    /// Whether the catalog has schemas for this API group (no decompression).
    pub fn has_group(&self, group: &str) -> bool {
        self.frames.contains_key(group)
    }

    /// The schema of `group/version` `kind`, decoding the group on first use. `Ok(None)`: the
    /// catalog does not have that kind and version.
    pub fn schema(
        &self,
        group: &str,
        version: &str,
        kind: &str,
    ) -> Result<Option<Arc<KindSchema>>, String> {
        let Some(slot) = self.decoded.get(group) else {
            return Ok(None);
        };
        let decoded = slot.get_or_init(|| self.decode(group));
        let schemas = decoded.as_ref().map_err(Clone::clone)?;
        Ok(schemas.get(&key(kind, version)).cloned())
    }

    /// A schema already decoded, by its `$id` (for diagnostics after validation).
    pub fn by_id(&self, id: &str) -> Option<&Value> {
        let (group, key) = id.strip_prefix(ID_PREFIX)?.split_once('/')?;
        let decoded = self.decoded.get(group)?.get()?.as_ref().ok()?;
        decoded.get(key)?.schema()
    }

    fn decode(&self, group: &str) -> Result<Group, String> {
        let corrupt = |e: &dyn std::fmt::Display| format!("embedded CRD catalog is corrupt: {e}");
        let &(offset, length) = self
            .frames
            .get(group)
            .ok_or_else(|| corrupt(&format!("no frame for {group}")))?;
        let frame = FRAMES
            .get(offset..offset + length)
            .ok_or_else(|| corrupt(&format!("frame of {group} out of range")))?;
        let dictionary =
            ruzstd::decoding::Dictionary::decode_dict(DICTIONARY).map_err(|e| corrupt(&e))?;
        let mut decoder = ruzstd::decoding::FrameDecoder::new();
        decoder.add_dict(dictionary).map_err(|e| corrupt(&e))?;
        let mut json = Vec::new();
        ruzstd::decoding::StreamingDecoder::new_with_decoder(frame, decoder)
            .map_err(|e| corrupt(&e))?
            .read_to_end(&mut json)
            .map_err(|e| corrupt(&e))?;
        let raw: HashMap<String, Box<RawValue>> =
            serde_json::from_slice(&json).map_err(|e| corrupt(&e))?;
        Ok(raw
            .into_iter()
            .map(|(key, schema)| {
                let id = format!("{ID_PREFIX}{group}/{key}");
                let entry = KindSchema::new(
                    Source::Catalog(schema, id),
                    Origin::Catalog(format!("{group}/{key}")),
                );
                (key, Arc::new(entry))
            })
            .collect())
    }
}

/// The catalog's key of a kind and version (the file name in the upstream layout).
fn key(kind: &str, version: &str) -> String {
    format!("{}_{version}", kind.to_ascii_lowercase())
}

/// The catalog keeps OpenAPI's `nullable` and `x-kubernetes-*` markers: convert them the way
/// repository CRDs are converted, so both judge a document alike.
pub(super) fn converted(raw: &RawValue, id: &str) -> Result<Value, String> {
    let schema: Value = serde_json::from_str(raw.get())
        .map_err(|e| format!("embedded CRD catalog is corrupt: {e}"))?;
    let mut out = super::crd::convert(&schema, true);
    if let Some(map) = out.as_object_mut() {
        // Some catalog schemas list only `spec` and `status`; every object has these three.
        if let Some(Value::Object(properties)) = map.get_mut("properties") {
            for (name, sub) in [
                ("apiVersion", json!({"type": "string"})),
                ("kind", json!({"type": "string"})),
                ("metadata", json!({"type": "object"})),
            ] {
                properties.entry(name).or_insert(sub);
            }
        }
        map.insert("$id".into(), json!(id));
        map.entry("$schema")
            .or_insert_with(|| json!("https://json-schema.org/draft/2020-12/schema"));
    }
    super::repeats::write_repeats_once(&mut out);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_group_decodes() {
        let catalog = shared();
        assert!(catalog.frames.len() > 500, "{}", catalog.frames.len());
        for group in catalog.frames.keys() {
            for (key, entry) in catalog.decode(group).unwrap() {
                let Source::Catalog(raw, id) = &entry.source else {
                    panic!("{group}/{key} is not kept as catalog text");
                };
                converted(raw, id).unwrap();
            }
        }
    }

    #[test]
    fn kinds_are_found_by_group_version_and_kind() {
        let catalog = shared();
        let schema = catalog
            .schema("helm.toolkit.fluxcd.io", "v2", "HelmRelease")
            .unwrap()
            .expect("HelmRelease v2 is in the catalog");
        assert!(schema.compiled().is_ok());
        let schema = schema.schema().unwrap();
        assert_eq!(schema["additionalProperties"], json!(false));
        assert!(schema["properties"]["spec"]["properties"]["chart"].is_object());
        assert!(catalog.by_id(schema["$id"].as_str().unwrap()).is_some());
        assert!(
            catalog
                .schema("helm.toolkit.fluxcd.io", "v9", "HelmRelease")
                .unwrap()
                .is_none()
        );
        assert!(
            catalog
                .schema("no.such.group", "v1", "X")
                .unwrap()
                .is_none()
        );
    }
}
