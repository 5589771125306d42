//! The embedded CRD catalog (datreeio/CRDs-catalog, MIT; `schemas/crds-catalog.LICENSE`), built by
//! `cargo xtask schemas` (xtask/src/lib.rs): one zstd frame per API group, compressed against one dictionary,
//! and a text index of where each group's frame is. A run decompresses only the groups its
//! documents use, once for each kind it uses, keeps those kinds' text alone, and compiles each
//! kind's validator on first use (see [`super::SchemaSet`]).

use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, OnceLock};

use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::{KindSchema, Origin, Source};

const FRAMES: &[u8] = include_bytes!("../../schemas/crds-catalog.bin");
const DICTIONARY: &[u8] = include_bytes!("../../schemas/crds-catalog.dict");
const INDEX: &str = include_str!("../../schemas/crds-catalog.index");

/// The kinds of one group, keyed `<kind-lowercase>_<version>`: the keys are known once the group
/// was decoded, and each kind's schema is kept only once a document asked for it. Keeping every
/// kind of each group a run touched held the text of many kinds for the one or two used (2.8 MB
/// of the corpus check's peak: `monitoring.coreos.com` alone is megabytes for one
/// `ServiceMonitor`), so each further kind of a group decodes the group again and keeps its own.
type GroupKinds = HashMap<String, OnceLock<Result<Arc<KindSchema>, String>>>;

/// The catalog: the index is read at start (a few hundred lines); groups are decoded on demand.
pub(super) struct Catalog {
    frames: HashMap<&'static str, (usize, usize)>,
    groups: HashMap<&'static str, OnceLock<Result<GroupKinds, String>>>,
}

/// The process's one catalog: both sides of a change (and every schema set of a run) share the
/// kinds decoded so far.
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
        let groups = frames.keys().map(|g| (*g, OnceLock::new())).collect();
        Catalog { frames, groups }
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
        let Some((&group, slot)) = self.groups.get_key_value(group) else {
            return Ok(None);
        };
        let key = key(kind, version);
        let kinds = slot
            .get_or_init(|| self.kinds_of(group, &key))
            .as_ref()
            .map_err(Clone::clone)?;
        let Some(slot) = kinds.get(&key) else {
            return Ok(None);
        };
        let schema = slot.get_or_init(|| {
            let json = self.decompress(group)?;
            kind_schema(group, &key, &parse_group(&json)?).map(Arc::new)
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
        for (group, slot) in &self.groups {
            let Some(Ok(kinds)) = slot.get() else {
                continue;
            };
            for (key, slot) in kinds {
                if let Some(Ok(schema)) = slot.get()
                    && !keep(group, key)
                {
                    forgotten.extend(schema.forget());
                }
            }
        }
        forgotten
    }

    /// The group's kinds, with `wanted`'s schema already kept when the group has it (the first
    /// kind of a group costs one decoding, not two).
    fn kinds_of(&self, group: &'static str, wanted: &str) -> Result<GroupKinds, String> {
        let json = self.decompress(group)?;
        let raw = parse_group(&json)?;
        let mut kinds: GroupKinds = raw
            .keys()
            .map(|k| ((*k).to_owned(), OnceLock::new()))
            .collect();
        if let Some(slot) = kinds.get_mut(wanted) {
            let _ = slot.set(kind_schema(group, wanted, &raw).map(Arc::new));
        }
        Ok(kinds)
    }

    /// The group's frame, decompressed: a JSON object of every kind's schema.
    fn decompress(&self, group: &str) -> Result<Vec<u8>, String> {
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
        Ok(json)
    }
}

fn corrupt(e: &dyn std::fmt::Display) -> String {
    format!("embedded CRD catalog is corrupt: {e}")
}

/// A decompressed group, borrowed: each kind's text stays in the buffer until one is kept.
fn parse_group(json: &[u8]) -> Result<HashMap<&str, &RawValue>, String> {
    serde_json::from_slice(json).map_err(|e| corrupt(&e))
}

/// The schema of `key` in a decompressed group, as its own text.
fn kind_schema(
    group: &str,
    key: &str,
    raw: &HashMap<&str, &RawValue>,
) -> Result<KindSchema, String> {
    let text = raw
        .get(key)
        .ok_or_else(|| corrupt(&format!("{group}/{key} is listed but missing")))?;
    Ok(KindSchema::new(
        Source::Catalog((*text).to_owned()),
        Origin::Catalog(format!("{group}/{key}")),
    ))
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
pub(super) fn parsed(raw: &RawValue) -> Result<Value, String> {
    serde_json::from_str(raw.get()).map_err(|e| corrupt(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_group_decodes() {
        let catalog = shared();
        assert!(catalog.frames.len() > 500, "{}", catalog.frames.len());
        for group in catalog.frames.keys() {
            let json = catalog.decompress(group).unwrap();
            let raw = parse_group(&json).unwrap();
            for key in raw.keys() {
                let entry = kind_schema(group, key, &raw).unwrap();
                let Source::Catalog(raw) = &entry.source else {
                    panic!("{group}/{key} is not kept as catalog text");
                };
                parsed(raw).unwrap();
            }
        }
    }

    #[test]
    fn only_the_kinds_documents_asked_for_are_kept() {
        let catalog = Catalog::new();
        let kept = |catalog: &Catalog| {
            let kinds = catalog.groups["monitoring.coreos.com"].get().unwrap();
            let kinds = kinds.as_ref().unwrap();
            let mut kept: Vec<String> = kinds
                .iter()
                .filter(|(_, slot)| slot.get().is_some())
                .map(|(key, _)| key.clone())
                .collect();
            kept.sort();
            (kept, kinds.len())
        };
        let monitor = catalog.schema("monitoring.coreos.com", "v1", "ServiceMonitor");
        assert!(monitor.unwrap().is_some());
        let (kinds, listed) = kept(&catalog);
        assert_eq!(kinds, ["servicemonitor_v1"]);
        assert!(listed > 5, "the group lists {listed} kinds");

        let rule = catalog.schema("monitoring.coreos.com", "v1", "PrometheusRule");
        assert!(rule.unwrap().unwrap().compiled().is_ok());
        assert!(
            catalog
                .schema("monitoring.coreos.com", "v7", "PrometheusRule")
                .unwrap()
                .is_none()
        );
        assert_eq!(kept(&catalog).0, ["prometheusrule_v1", "servicemonitor_v1"]);
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
