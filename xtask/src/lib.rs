//! Developer tasks of stategate. `schemas` builds the embedded CRD catalog
//! `schemas/crds-catalog.{bin,dict,index,LICENSE}` from the datreeio/CRDs-catalog archive.
//!
//! Input: the archive (MIT, LICENSE inside; copied to `schemas/crds-catalog.LICENSE`): JSON
//! Schemas converted from CRDs by kubeconform's openapi2jsonschema, laid out
//! `<group>/<kind>_<version>.json` (kind lower-case), plus OpenShift's
//! `openshift/v4.NN-strict/<kind>_<group>_<version>.json` (the newest release wins; a plain
//! schema of the same group, kind and version wins over it). `kustomize.config.k8s.io` (not a
//! CRD: kustomize files are not judged as objects) and `Utilities/` are left out.
//!
//! Output, read by `src/schema/catalog.rs`:
//! - `crds-catalog.bin`: one zstd frame per kind and version, all compressed against one trained
//!   dictionary, so a run decompresses only the kinds its documents use, while each frame still
//!   shares the common structure (ObjectMeta, conditions, selectors) through the dictionary. A
//!   frame per API group made a run decompress and parse the whole group once for every kind it
//!   used: 6.4 MB for the corpus' 78 kinds, 4% of its `check --all`. Each frame is one schema's
//!   JSON, ASCII only, already converted as a run compiles it (see [`kind_json`]).
//! - `crds-catalog.dict`: the zstd dictionary.
//! - `crds-catalog.index`: one line per kind and version,
//!   `group<TAB><kind-lowercase>_<version><TAB>offset<TAB>length`, sorted by group, then key.
//!
//! Pruning drops what only documents a schema: `description`, `title`, `format` (not validated,
//! as in src/schema/crd.rs), `default`, `example`, `externalDocs` and `x-kubernetes-*` extensions
//! except the three the conversion reads. `nullable` is kept: the conversion turns it into a
//! `null` type. The build is deterministic: the same archive gives the same bytes.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Read;
use std::path::Path;

use serde_json::Value;

const SCHEMA_MAPS: &[&str] = &["properties", "patternProperties", "definitions", "$defs"];
const SCHEMA_ONE: &[&str] = &[
    "items",
    "additionalProperties",
    "not",
    "additionalItems",
    "propertyNames",
];
const SCHEMA_LIST: &[&str] = &["oneOf", "anyOf", "allOf", "prefixItems"];
const DROPPED: &[&str] = &[
    "description",
    "title",
    "format",
    "default",
    "example",
    "examples",
    "externalDocs",
    "$comment",
];
const KEPT_EXTENSIONS: &[&str] = &[
    "x-kubernetes-int-or-string",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-embedded-resource",
];
const LEFT_OUT_GROUPS: &[&str] = &["kustomize.config.k8s.io", "Utilities"];
/// The dictionary's size: large enough for the shared Kubernetes structure, small beside the
/// frames.
const DICTIONARY_SIZE: usize = 131_072;
const LEVEL: i32 = 22;

/// The catalog files, built in memory.
pub struct Catalog {
    pub frames: Vec<u8>,
    pub dictionary: Vec<u8>,
    pub index: String,
    pub license: String,
    /// Counts for the summary line.
    pub schemas: usize,
    pub groups: usize,
    pub json_bytes: usize,
}

/// Group → `<kind>_<version>` → pruned schema.
type Groups = BTreeMap<String, BTreeMap<String, Value>>;

/// Build the catalog from the archive at `archive`.
pub fn build(archive: &Path) -> Result<Catalog, String> {
    let (groups, license) = read_archive(archive)?;
    let schemas = groups.values().map(BTreeMap::len).sum();
    let kinds: Vec<(&str, &str)> = groups
        .iter()
        .flat_map(|(group, kinds)| kinds.keys().map(move |key| (group.as_str(), key.as_str())))
        .collect();
    let samples: Vec<Vec<u8>> = groups
        .iter()
        .flat_map(|(group, kinds)| {
            kinds.iter().map(move |(key, pruned)| {
                kind_json(pruned).map_err(|e| format!("{group}/{key}: {e}"))
            })
        })
        .collect::<Result<_, _>>()?;
    let json_bytes = samples.iter().map(Vec::len).sum();
    let dictionary = zstd::dict::from_samples(&samples, DICTIONARY_SIZE)
        .map_err(|e| format!("training the dictionary: {e}"))?;
    let mut compressor = zstd::bulk::Compressor::with_dictionary(LEVEL, &dictionary)
        .map_err(|e| format!("loading the dictionary: {e}"))?;
    compressor
        .set_parameter(zstd::stream::raw::CParameter::ChecksumFlag(false))
        .map_err(|e| e.to_string())?;
    let mut frames = Vec::new();
    let mut index = String::new();
    for ((group, key), sample) in kinds.iter().zip(&samples) {
        let frame = compressor
            .compress(sample)
            .map_err(|e| format!("compressing {group}/{key}: {e}"))?;
        let _ = writeln!(index, "{group}\t{key}\t{}\t{}", frames.len(), frame.len());
        frames.extend_from_slice(&frame);
    }
    Ok(Catalog {
        frames,
        dictionary,
        index,
        license: format!(
            "The schemas in crds-catalog.bin come from datreeio/CRDs-catalog:\n\n{license}"
        ),
        schemas,
        groups: groups.len(),
        json_bytes,
    })
}

/// Write the catalog's four files into `dir`.
pub fn write(catalog: &Catalog, dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("crds-catalog.bin"), &catalog.frames)?;
    std::fs::write(dir.join("crds-catalog.dict"), &catalog.dictionary)?;
    std::fs::write(dir.join("crds-catalog.index"), &catalog.index)?;
    std::fs::write(dir.join("crds-catalog.LICENSE"), &catalog.license)
}

/// The JSON of every kind of a catalog directory, decoded: group → `<kind>_<version>` → schema
/// text.
pub fn decode(dir: &Path) -> Result<BTreeMap<String, BTreeMap<String, String>>, String> {
    let read = |name: &str| {
        std::fs::read(dir.join(name)).map_err(|e| format!("{}: {e}", dir.join(name).display()))
    };
    let frames = read("crds-catalog.bin")?;
    let dictionary = read("crds-catalog.dict")?;
    let index = String::from_utf8(read("crds-catalog.index")?).map_err(|e| e.to_string())?;
    let mut decompressor =
        zstd::bulk::Decompressor::with_dictionary(&dictionary).map_err(|e| e.to_string())?;
    let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for line in index.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        let [group, key, offset, length] = fields[..] else {
            return Err(format!("bad index line {line:?}"));
        };
        let offset: usize = offset
            .parse()
            .map_err(|_| format!("bad offset in {line:?}"))?;
        let length: usize = length
            .parse()
            .map_err(|_| format!("bad length in {line:?}"))?;
        let frame = frames
            .get(offset..offset + length)
            .ok_or(format!("frame of {group}/{key} out of range"))?;
        let json = decompressor
            .decompress(frame, 64 << 20)
            .map_err(|e| format!("{group}/{key}: {e}"))?;
        out.entry(group.to_owned()).or_default().insert(
            key.to_owned(),
            String::from_utf8(json).map_err(|e| e.to_string())?,
        );
    }
    Ok(out)
}

/// The archive's schemas, pruned and grouped, and its LICENSE text.
fn read_archive(path: &Path) -> Result<(Groups, String), String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut decoder = zstd::stream::read::Decoder::new(file).map_err(|e| e.to_string())?;
    // The archive is compressed with a long window (`zstd --long=27`).
    decoder.window_log_max(27).map_err(|e| e.to_string())?;
    let mut archive = tar::Archive::new(decoder);
    let mut plain: BTreeMap<(String, String), Value> = BTreeMap::new();
    let mut openshift: BTreeMap<(String, String), (u32, Value)> = BTreeMap::new();
    let mut license = None;
    let entries = archive.entries().map_err(|e| e.to_string())?;
    for entry in entries {
        let mut entry = entry.map_err(|e| e.to_string())?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = entry.path().map_err(|e| e.to_string())?;
        let name = name
            .to_string_lossy()
            .trim_start_matches(['.', '/'])
            .to_owned();
        if name == "CRDs-catalog/LICENSE" {
            let mut text = String::new();
            entry.read_to_string(&mut text).map_err(|e| e.to_string())?;
            license = Some(text);
            continue;
        }
        let wanted = match Layout::of(&name) {
            Some(Layout::Plain { group, key }) if !LEFT_OUT_GROUPS.contains(&group.as_str()) => {
                Some((None, group, key))
            }
            Some(Layout::OpenShift {
                release,
                group,
                key,
            }) => Some((Some(release), group, key)),
            _ => None,
        };
        let Some((release, group, key)) = wanted else {
            continue;
        };
        let schema: Value =
            serde_json::from_reader(&mut entry).map_err(|e| format!("{name}: {e}"))?;
        match release {
            None => {
                plain.insert((group, key), schema);
            }
            Some(release) => {
                let newer = openshift
                    .get(&(group.clone(), key.clone()))
                    .is_none_or(|(seen, _)| *seen < release);
                if newer {
                    openshift.insert((group, key), (release, schema));
                }
            }
        }
    }
    for (id, (_, schema)) in openshift {
        plain.entry(id).or_insert(schema);
    }
    let license = license.ok_or("the archive has no CRDs-catalog/LICENSE")?;
    let mut groups = Groups::new();
    for ((group, key), schema) in plain {
        groups.entry(group).or_default().insert(key, prune(&schema));
    }
    Ok((groups, license))
}

/// Where a file of the archive goes.
#[derive(Debug, PartialEq)]
enum Layout {
    /// `CRDs-catalog/<group>/<kind>_<version>.json`
    Plain { group: String, key: String },
    /// `CRDs-catalog/openshift/v4.<N>-strict/<kind>_<group>_<version>.json`
    OpenShift {
        release: u32,
        group: String,
        key: String,
    },
}

impl Layout {
    fn of(name: &str) -> Option<Layout> {
        let rest = name.strip_prefix("CRDs-catalog/")?;
        let word = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        };
        let parts: Vec<&str> = rest.split('/').collect();
        match parts[..] {
            [group, file] => {
                let (kind, version) = file.strip_suffix(".json")?.split_once('_')?;
                (!group.is_empty() && word(kind) && word(version)).then(|| Layout::Plain {
                    group: group.to_owned(),
                    key: format!("{kind}_{version}"),
                })
            }
            ["openshift", release, file] => {
                let release = release
                    .strip_prefix("v4.")?
                    .strip_suffix("-strict")
                    .filter(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_digit()))?
                    .parse()
                    .ok()?;
                let stem = file.strip_suffix(".json")?;
                let mut fields = stem.split('_');
                let (kind, group, version) = (fields.next()?, fields.next()?, fields.next()?);
                let group_ok = !group.is_empty()
                    && group.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-'
                    });
                (fields.next().is_none() && word(kind) && group_ok && word(version)).then(|| {
                    Layout::OpenShift {
                        release,
                        group: group.to_owned(),
                        key: format!("{kind}_{version}"),
                    }
                })
            }
            _ => None,
        }
    }
}

/// A copy of `schema` without documentation-only keywords.
fn prune(schema: &Value) -> Value {
    let Value::Object(map) = schema else {
        return schema.clone();
    };
    let mut out = serde_json::Map::new();
    for (key, value) in map {
        let key = key.as_str();
        if DROPPED.contains(&key)
            || key.starts_with("x-kubernetes-") && !KEPT_EXTENSIONS.contains(&key)
        {
            continue;
        }
        let pruned = match value {
            Value::Object(subs) if SCHEMA_MAPS.contains(&key) => Value::Object(
                subs.iter()
                    .map(|(name, sub)| (name.clone(), prune(sub)))
                    .collect(),
            ),
            Value::Array(subs) if SCHEMA_LIST.contains(&key) => {
                Value::Array(subs.iter().map(prune).collect())
            }
            _ if SCHEMA_ONE.contains(&key) => prune(value),
            _ => value.clone(),
        };
        out.insert(key.to_owned(), pruned);
    }
    Value::Object(out)
}

/// One kind's frame: compact JSON, only ASCII (non-ASCII escaped), numbers as the archive's
/// generator printed them, in the form a run compiles
/// ([`stategate::schema::catalog_shipped_form`] of its pruned text, keys sorted), its keys in the
/// order that conversion left them: the order of keywords is the order errors are reported in.
fn kind_json(pruned: &Value) -> Result<Vec<u8>, String> {
    let mut text = String::new();
    canonical(&mut text, pruned, Keys::Sorted);
    let shipped = stategate::schema::catalog_shipped_form(&text)?;
    let mut out = String::new();
    canonical(&mut out, &shipped, Keys::AsTheyAre);
    Ok(out.into_bytes())
}

/// The order [`canonical`] writes an object's keys in.
#[derive(Clone, Copy)]
enum Keys {
    Sorted,
    AsTheyAre,
}

fn canonical(out: &mut String, value: &Value, keys: Keys) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => {
                let _ = write!(out, "{i}");
            }
            (_, Some(u), _) => {
                let _ = write!(out, "{u}");
            }
            // An integer beyond 64 bits (`-9223372036854776000`, int64 bounds written from a
            // float): its digits, as the archive has them.
            (_, _, Some(f)) if f.fract() == 0.0 && f.abs() >= 9.2e18 => {
                out.push_str(&big_integer(f));
            }
            (_, _, Some(f)) => out.push_str(&float(f)),
            _ => out.push_str(&n.to_string()),
        },
        Value::String(s) => string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(out, item, keys);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut names: Vec<&String> = map.keys().collect();
            if let Keys::Sorted = keys {
                names.sort();
            }
            out.push('{');
            for (i, name) in names.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                string(out, name);
                out.push(':');
                canonical(out, &map[name], keys);
            }
            out.push('}');
        }
    }
}

/// A JSON string with everything outside printable ASCII escaped (`\uXXXX`, surrogate pairs
/// beyond the BMP).
fn string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

/// An integral `f` as integer digits: its shortest digits, then zeros.
fn big_integer(f: f64) -> String {
    let scientific = format!("{f:e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: usize = exponent.parse().unwrap_or(0);
    let sign = if f < 0.0 { "-" } else { "" };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let zeros = (exponent + 1).saturating_sub(digits.len());
    format!("{sign}{digits}{}", "0".repeat(zeros))
}

/// The shortest text that reads back as `f`, fixed-point for exponents from -4 to 15 and
/// scientific (`1e-05`, `1.5e+16`) outside.
fn float(f: f64) -> String {
    if !f.is_finite() {
        return "null".into();
    }
    let scientific = format!("{f:e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let body = if (-4..16).contains(&exponent) {
        let point = exponent + 1;
        if point <= 0 {
            format!("0.{}{digits}", "0".repeat(point.unsigned_abs() as usize))
        } else {
            let point = point as usize;
            if digits.len() <= point {
                format!("{digits}{}.0", "0".repeat(point - digits.len()))
            } else {
                format!("{}.{}", &digits[..point], &digits[point..])
            }
        }
    } else {
        let (first, rest) = digits.split_at(1);
        let fraction = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let exp_sign = if exponent < 0 { '-' } else { '+' };
        format!("{first}{fraction}e{exp_sign}{:02}", exponent.unsigned_abs())
    };
    format!("{sign}{body}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn floats_print_as_the_archive_tools_do() {
        for (f, text) in [
            (1.0, "1.0"),
            (0.5, "0.5"),
            (1e-5, "1e-05"),
            (0.0001, "0.0001"),
            (1e16, "1e+16"),
            (123.25, "123.25"),
            (-2.5e-7, "-2.5e-07"),
            (100000.0, "100000.0"),
        ] {
            assert_eq!(float(f), text, "{f}");
        }
        assert_eq!(big_integer(-9.223372036854776e18), "-9223372036854776000");
    }

    #[test]
    fn frames_are_ascii_json_in_the_form_a_run_compiles() {
        let frame = |pruned: Value| String::from_utf8(kind_json(&pruned).unwrap()).unwrap();
        assert_eq!(
            frame(json!({"type": "object", "enum": ["é", "\u{7f}", "😀"], "b": 1.5, "a": null})),
            concat!(
                r#"{"a":null,"b":1.5,"enum":["\u00e9","\u007f","\ud83d\ude00"],"#,
                r#""type":"object","$schema":"https://json-schema.org/draft/2020-12/schema"}"#,
            )
        );
        assert_eq!(
            frame(
                json!({"type": "object", "properties": {"spec": {"type": "string", "nullable": true}}})
            ),
            concat!(
                r#"{"properties":{"spec":{"type":["string","null"]},"#,
                r#""apiVersion":{"type":"string"},"kind":{"type":"string"},"#,
                r#""metadata":{"type":"object"}},"type":"object","additionalProperties":false,"#,
                r#""$schema":"https://json-schema.org/draft/2020-12/schema"}"#
            )
        );
    }

    #[test]
    fn archive_layouts() {
        assert_eq!(
            Layout::of("CRDs-catalog/helm.toolkit.fluxcd.io/helmrelease_v2.json"),
            Some(Layout::Plain {
                group: "helm.toolkit.fluxcd.io".into(),
                key: "helmrelease_v2".into()
            })
        );
        assert_eq!(
            Layout::of("CRDs-catalog/openshift/v4.15-strict/route_route.openshift.io_v1.json"),
            Some(Layout::OpenShift {
                release: 15,
                group: "route.openshift.io".into(),
                key: "route_v1".into()
            })
        );
        assert_eq!(Layout::of("CRDs-catalog/a/b/c_v1.json"), None);
        assert_eq!(Layout::of("CRDs-catalog/x/Kind_v1.json"), None);
    }

    #[test]
    fn pruning_keeps_validation_and_drops_documentation() {
        let schema = json!({"description": "d", "type": "object", "x-kubernetes-list-type": "map",
            "x-kubernetes-int-or-string": true,
            "properties": {"a": {"title": "t", "type": "string", "format": "date-time"}},
            "items": [{"description": "kept in a tuple"}]});
        assert_eq!(
            prune(&schema),
            json!({"type": "object", "x-kubernetes-int-or-string": true,
                "properties": {"a": {"type": "string"}},
                "items": [{"description": "kept in a tuple"}]})
        );
    }
}
