//! The embedded CRD catalog (datreeio/CRDs-catalog, MIT; `schemas/crds-catalog.LICENSE`), built by
//! `cargo xtask schemas` (xtask/src/lib.rs): one zstd frame per kind and version, compressed
//! against one dictionary, and a text index of where each kind's frame is. A run decompresses only
//! the kinds its documents use, once each, and compiles each kind's validator on first use (see
//! [`super::SchemaSet`]).

use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, Mutex, OnceLock};

use ruzstd::decoding::{Dictionary, FrameDecoder, StreamingDecoder};

use serde_json::{Value, json};

use super::{KindSchema, Origin, Source};
use crate::sync::locked;

const FRAMES: &[u8] = include_bytes!("../../schemas/crds-catalog.bin");
const DICTIONARY: &[u8] = include_bytes!("../../schemas/crds-catalog.dict");
const INDEX: &str = include_str!("../../schemas/crds-catalog.index");

/// One kind and version: where its frame is, and its schema once a document asked for it.
struct Entry {
    frame: (usize, usize),
    schema: OnceLock<Result<Arc<KindSchema>, String>>,
}

/// The catalog: group → `<kind-lowercase>_<version>` → entry, from the index read at first use.
pub(super) struct Catalog {
    groups: HashMap<&'static str, HashMap<&'static str, Entry>>,
    /// Decoders with the dictionary loaded, returned after each frame: decoding the dictionary
    /// anew was two fifths of decompressing a kind.
    decoders: Mutex<Vec<FrameDecoder>>,
}

/// The process's one catalog: both sides of a change (and every schema set of a run) share the
/// kinds decoded so far.
pub(super) fn shared() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(Catalog::new)
}

impl Catalog {
    fn new() -> Catalog {
        let mut groups: HashMap<&'static str, HashMap<&'static str, Entry>> = HashMap::new();
        for line in INDEX.lines() {
            let mut fields = line.split('\t');
            let (Some(group), Some(key), Some(offset), Some(length)) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            let (Ok(offset), Ok(length)) = (offset.parse(), length.parse()) else {
                continue;
            };
            let entry = Entry {
                frame: (offset, length),
                schema: OnceLock::new(),
            };
            groups.entry(group).or_default().insert(key, entry);
        }
        Catalog {
            groups,
            decoders: Mutex::default(),
        }
    }

    /// Whether the catalog has schemas for this API group (no decompression).
    pub fn has_group(&self, group: &str) -> bool {
        self.groups.contains_key(group)
    }

    /// The schema of `group/version` `kind`, decoding it on first use. `Ok(None)`: the catalog
    /// does not have that kind and version.
    pub fn schema(
        &self,
        group: &str,
        version: &str,
        kind: &str,
    ) -> Result<Option<Arc<KindSchema>>, String> {
        let key = key(kind, version);
        let Some(entry) = self.groups.get(group).and_then(|kinds| kinds.get(&*key)) else {
            return Ok(None);
        };
        let schema = entry.schema.get_or_init(|| {
            let text = self.decompress(entry.frame, &format!("{group}/{key}"))?;
            Ok(Arc::new(KindSchema::new(
                Source::Catalog(text),
                Origin::Catalog(format!("{group}/{key}")),
            )))
        });
        schema
            .as_ref()
            .map(|s| Some(Arc::clone(s)))
            .map_err(Clone::clone)
    }

    /// Take out the compiled validator of every kind decoded so far for which `keep(group, key)`
    /// is false, for the caller to free (see [`super::SchemaSet::forget_validators_except`]).
    /// Their text stays: it is small.
    pub fn forget_validators_except(
        &self,
        keep: &dyn Fn(&str, &str) -> bool,
    ) -> Vec<Arc<super::Compiled>> {
        let mut forgotten = Vec::new();
        for (group, kinds) in &self.groups {
            for (key, entry) in kinds {
                if let Some(Ok(schema)) = entry.schema.get()
                    && !keep(group, key)
                {
                    forgotten.extend(schema.forget());
                }
            }
        }
        forgotten
    }

    /// A kind's frame, decompressed: its schema's JSON text. `name` is for the error.
    fn decompress(&self, (offset, length): (usize, usize), name: &str) -> Result<String, String> {
        let frame = FRAMES
            .get(offset..offset + length)
            .ok_or_else(|| corrupt(&format!("frame of {name} out of range")))?;
        let decoder = match locked(&self.decoders).pop() {
            Some(decoder) => decoder,
            None => {
                let mut decoder = FrameDecoder::new();
                let dictionary = Dictionary::decode_dict(DICTIONARY).map_err(|e| corrupt(&e))?;
                decoder.add_dict(dictionary).map_err(|e| corrupt(&e))?;
                decoder
            }
        };
        let mut reader =
            StreamingDecoder::new_with_decoder(frame, decoder).map_err(|e| corrupt(&e))?;
        let mut json = String::new();
        reader.read_to_string(&mut json).map_err(|e| corrupt(&e))?;
        locked(&self.decoders).push(reader.into_frame_decoder());
        Ok(json)
    }
}

fn corrupt(e: &dyn std::fmt::Display) -> String {
    format!("embedded CRD catalog is corrupt: {e}")
}

/// The catalog's key of a kind and version (the file name in the upstream layout).
pub(super) fn key(kind: &str, version: &str) -> String {
    format!("{}_{version}", kind.to_ascii_lowercase())
}

/// A kind's schema as the catalog ships it, from its pruned text: `cargo xtask schemas` calls this
/// when it builds the catalog, so a run only parses the text. The catalog keeps OpenAPI's
/// `nullable` and `x-kubernetes-*` markers: they are converted the way repository CRDs are, so
/// both judge a document alike. Converting at every run was 6% of the CPU of the corpus' `check
/// --all`; `xtask/tests/catalog.rs` rebuilds the catalog with this code and fails when the
/// committed one differs.
pub fn shipped_form(pruned: &str) -> Result<Value, String> {
    let schema: Value = serde_json::from_str(pruned)
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
        // No `$id`: see `KindLookup`.
        map.remove("$id");
        map.entry("$schema")
            .or_insert_with(|| json!("https://json-schema.org/draft/2020-12/schema"));
    }
    super::repeats::write_compactly(&mut out);
    Ok(out)
}

/// A kind's schema from the catalog's text, already in its shipped form.
pub(super) fn parsed(text: &str) -> Result<Value, String> {
    serde_json::from_str(text).map_err(|e| corrupt(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_decodes() {
        let catalog = shared();
        assert!(catalog.groups.len() > 500, "{}", catalog.groups.len());
        for (group, kinds) in &catalog.groups {
            for (key, entry) in kinds {
                let text = catalog.decompress(entry.frame, key).unwrap();
                parsed(&text).unwrap_or_else(|e| panic!("{group}/{key}: {e}"));
            }
        }
    }

    #[test]
    fn only_the_kinds_documents_asked_for_are_decoded() {
        let catalog = Catalog::new();
        let decoded = |catalog: &Catalog| {
            let mut decoded: Vec<&str> = catalog.groups["monitoring.coreos.com"]
                .iter()
                .filter(|(_, entry)| entry.schema.get().is_some())
                .map(|(key, _)| *key)
                .collect();
            decoded.sort_unstable();
            decoded
        };
        let monitor = catalog.schema("monitoring.coreos.com", "v1", "ServiceMonitor");
        assert!(monitor.unwrap().is_some());
        assert_eq!(decoded(&catalog), ["servicemonitor_v1"]);
        let listed = catalog.groups["monitoring.coreos.com"].len();
        assert!(listed > 5, "the group lists {listed} kinds");

        let rule = catalog.schema("monitoring.coreos.com", "v1", "PrometheusRule");
        assert!(rule.unwrap().unwrap().compiled().is_ok());
        assert!(
            catalog
                .schema("monitoring.coreos.com", "v7", "PrometheusRule")
                .unwrap()
                .is_none()
        );
        assert_eq!(
            decoded(&catalog),
            ["prometheusrule_v1", "servicemonitor_v1"]
        );
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
