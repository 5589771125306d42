//! Live object vs desired object: only what Git declares is compared.
//!
//! The diff engine's canonical form (keyed lists sorted by their merge key), masking and field
//! path style are reused; what is particular to live state is here:
//! - fields the API server sets (status, managedFields, uid, …) and GitOps tracking marks are dropped;
//! - a field Git does not declare is never drift: that is how server-side defaulting
//!   (`strategy`, `revisionHistoryLimit`, `imagePullPolicy`, …) stays silent;
//! - quantities and numbers compare by value (`500m` = `0.5`, `1Gi` = `1073741824`);
//! - list items merged by name compare by name, and a live item Git does not have is drift
//!   (a hand-added env var or container), since defaulting never adds one;
//! - Secret values are compared, then masked before anything is reported.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::diff::mask::Masker;
use crate::diff::normalize::{canonicalize, merge_key, scalar_key};

/// One drifted field: its path as the diff names it (`spec.template.spec.containers[name=web].image`)
/// and both values (masked where secret). `None` = absent on that side.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldDrift {
    pub path: String,
    pub live: Option<Value>,
    pub desired: Option<Value>,
}

/// Metadata the API server writes.
const SERVER_METADATA: &[&str] = &[
    "managedFields",
    "resourceVersion",
    "uid",
    "generation",
    "creationTimestamp",
    "selfLink",
    "deletionGracePeriodSeconds",
    "deletionTimestamp",
    "ownerReferences",
];

/// Annotations and labels written by kubectl, Flux and Argo CD to track what they applied.
fn is_tracking_key(key: &str) -> bool {
    key == "kubectl.kubernetes.io/last-applied-configuration"
        || key == "deployment.kubernetes.io/revision"
        || key.starts_with("kustomize.toolkit.fluxcd.io/")
        || key.starts_with("helm.toolkit.fluxcd.io/")
        || key.starts_with("argocd.argoproj.io/")
}

/// The object as it is compared: server fields and tracking marks removed, keyed lists sorted.
/// Built by copying only what is kept: a live object's status, managedFields and
/// last-applied-configuration are most of its size and are never compared.
pub fn normalize(value: &Value) -> Value {
    let Value::Object(map) = value else {
        let mut value = value.clone();
        canonicalize(&mut value);
        return value;
    };
    let mut out = Map::new();
    for (key, child) in map {
        match (key.as_str(), child) {
            ("status", _) => {}
            ("metadata", Value::Object(meta)) => {
                out.insert(key.clone(), Value::Object(metadata(meta)));
            }
            _ => {
                out.insert(key.clone(), child.clone());
            }
        }
    }
    let mut value = Value::Object(out);
    canonicalize(&mut value);
    value
}

fn metadata(meta: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for (key, child) in meta {
        match (key.as_str(), child) {
            (k, _) if SERVER_METADATA.contains(&k) => {}
            ("annotations" | "labels", Value::Object(marks)) => {
                let kept: Map<String, Value> = marks
                    .iter()
                    .filter(|(k, _)| !is_tracking_key(k))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                if !kept.is_empty() {
                    out.insert(key.clone(), Value::Object(kept));
                }
            }
            _ => {
                out.insert(key.clone(), child.clone());
            }
        }
    }
    out
}

/// The fields of `desired` that live state does not match. Both sides are normalised here.
pub fn compare(desired: &Value, live: &Value, masker: &Masker) -> Vec<FieldDrift> {
    let mut desired = normalize(desired);
    let mut live = normalize(live);
    secret_string_data_as_data(&mut desired);
    masker.mask_pair(Some(&mut desired), Some(&mut live));
    let mut out = Vec::new();
    walk(&desired, &live, "", None, &mut out);
    out
}

/// The API server stores `stringData` base64-encoded under `data`; compare it there.
fn secret_string_data_as_data(value: &mut Value) {
    if value.get("kind").and_then(Value::as_str) != Some("Secret") {
        return;
    }
    let Some(map) = value.as_object_mut() else {
        return;
    };
    let Some(Value::Object(string_data)) = map.remove("stringData") else {
        return;
    };
    let data = map
        .entry("data")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(data) = data {
        for (k, v) in string_data {
            let text = v
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| v.to_string());
            data.insert(k, Value::String(base64(text.as_bytes())));
        }
    }
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn walk(desired: &Value, live: &Value, path: &str, field: Option<&str>, out: &mut Vec<FieldDrift>) {
    match (desired, live) {
        (Value::Object(d), Value::Object(l)) => {
            for (key, dv) in d {
                let child = join(path, key);
                match l.get(key) {
                    Some(lv) => walk(dv, lv, &child, Some(key), out),
                    None if is_empty(dv) => {}
                    None => out.push(drift(child, None, Some(dv))),
                }
            }
        }
        (Value::Array(d), Value::Array(l)) => walk_list(d, l, path, field, out),
        (d, l) if same_scalar(d, l) || is_empty(d) && is_empty(l) => {}
        (d, l) => out.push(drift(root(path), Some(l), Some(d))),
    }
}

fn walk_list(d: &[Value], l: &[Value], path: &str, field: Option<&str>, out: &mut Vec<FieldDrift>) {
    let key = field.and_then(|f| Some((merge_key(f, d)?, merge_key(f, l)?)));
    match key {
        Some((kd, kl)) if kd == kl => {
            let name = |v: &Value| v.get(kd).and_then(scalar_key).unwrap_or_default();
            for item in d {
                let child = format!("{}[{kd}={}]", root(path), name(item));
                match l.iter().find(|x| name(x) == name(item)) {
                    Some(live) => walk(item, live, &child, None, out),
                    None => out.push(drift(child, None, Some(item))),
                }
            }
            for item in l.iter().filter(|x| !d.iter().any(|y| name(y) == name(x))) {
                let child = format!("{}[{kd}={}]", root(path), name(item));
                out.push(drift(child, Some(item), None));
            }
        }
        _ if d.len() == l.len() => {
            for (i, (x, y)) in d.iter().zip(l).enumerate() {
                walk(x, y, &format!("{}[{i}]", root(path)), None, out);
            }
        }
        _ => out.push(drift(
            root(path),
            Some(&Value::Array(l.to_vec())),
            Some(&Value::Array(d.to_vec())),
        )),
    }
}

fn drift(path: String, live: Option<&Value>, desired: Option<&Value>) -> FieldDrift {
    FieldDrift {
        path,
        live: live.cloned(),
        desired: desired.cloned(),
    }
}

/// Git's `{}`, `[]` and `null` say nothing the server must keep.
fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// Equal as the cluster means them: numbers by value, quantities by value.
fn same_scalar(d: &Value, l: &Value) -> bool {
    if d == l {
        return true;
    }
    match (d, l) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (Value::String(_) | Value::Number(_), Value::String(_) | Value::Number(_)) => {
            match (quantity(d), quantity(l)) {
                (Some(a), Some(b)) => a == b,
                _ => false,
            }
        }
        _ => false,
    }
}

fn quantity(v: &Value) -> Option<i128> {
    match v {
        Value::String(s) => parse_quantity(s),
        Value::Number(n) => parse_quantity(&n.to_string()),
        _ => None,
    }
}

/// A Kubernetes quantity in nano-units (exact for every suffix): `500m`, `0.5`, `1Gi`, `1e3`.
pub fn parse_quantity(text: &str) -> Option<i128> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let (negative, digits) = match number.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, number.strip_prefix('+').unwrap_or(number)),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() && fraction.is_empty()
        || !whole
            .chars()
            .chain(fraction.chars())
            .all(|c| c.is_ascii_digit())
        || fraction.len() > 9
    {
        return None;
    }
    let whole: i128 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let fraction_nanos: i128 = format!("{fraction:0<9}").parse().ok()?;
    let base = whole
        .checked_mul(1_000_000_000)?
        .checked_add(fraction_nanos)?;
    let value = match suffix {
        "" => base,
        "n" => base.checked_div(1_000_000_000)?,
        "u" => base.checked_div(1_000_000)?,
        "m" => base.checked_div(1_000)?,
        "k" => base.checked_mul(1_000)?,
        "M" => base.checked_mul(1_000_000)?,
        "G" => base.checked_mul(1_000_000_000)?,
        "T" => base.checked_mul(10i128.pow(12))?,
        "P" => base.checked_mul(10i128.pow(15))?,
        "E" => base.checked_mul(10i128.pow(18))?,
        "Ki" => base.checked_mul(1 << 10)?,
        "Mi" => base.checked_mul(1 << 20)?,
        "Gi" => base.checked_mul(1 << 30)?,
        "Ti" => base.checked_mul(1 << 40)?,
        "Pi" => base.checked_mul(1 << 50)?,
        "Ei" => base.checked_mul(1 << 60)?,
        exp => {
            let e: u32 = exp.strip_prefix(['e', 'E'])?.parse().ok()?;
            base.checked_mul(10i128.checked_pow(e)?)?
        }
    };
    Some(if negative { -value } else { value })
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn root(path: &str) -> String {
    if path.is_empty() {
        "(root)".to_owned()
    } else {
        path.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn quantities_compare_by_value() {
        assert_eq!(parse_quantity("500m"), parse_quantity("0.5"));
        assert_eq!(parse_quantity("1Gi"), parse_quantity("1073741824"));
        assert_eq!(parse_quantity("1k"), parse_quantity("1e3"));
        assert_ne!(parse_quantity("1G"), parse_quantity("1Gi"));
        assert_eq!(parse_quantity("nginx"), None);
        assert_eq!(parse_quantity("1.2.3"), None);
    }

    #[test]
    fn undeclared_fields_are_not_drift_but_hand_added_env_vars_are() {
        let desired = json!({"kind": "Deployment", "spec": {"replicas": 3, "template": {"spec": {
            "containers": [{"name": "web", "image": "a:1", "env": [{"name": "A", "value": "1"}],
                            "resources": {"limits": {"cpu": "0.5", "memory": "1Gi"}}}]}}}});
        let live = json!({"kind": "Deployment", "status": {"replicas": 3},
            "metadata": {"uid": "x", "managedFields": []},
            "spec": {"replicas": 3, "revisionHistoryLimit": 10, "template": {"spec": {
            "containers": [{"name": "web", "image": "a:1", "imagePullPolicy": "IfNotPresent",
                            "env": [{"name": "A", "value": "1"}, {"name": "DEBUG", "value": "1"}],
                            "resources": {"limits": {"cpu": "500m", "memory": "1073741824"}}}]}}}});
        let drift = compare(&desired, &live, &Masker::default());
        let paths: Vec<&str> = drift.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(
            paths,
            ["spec.template.spec.containers[name=web].env[name=DEBUG]"]
        );
        assert_eq!(drift[0].desired, None);
    }

    #[test]
    fn secret_values_are_compared_then_masked() {
        let desired = json!({"kind": "Secret", "stringData": {"token": "hunter2"}});
        let same = json!({"kind": "Secret", "data": {"token": base64(b"hunter2")}});
        let other = json!({"kind": "Secret", "data": {"token": base64(b"letmein")}});
        assert!(compare(&desired, &same, &Masker::default()).is_empty());
        let drift = compare(&desired, &other, &Masker::default());
        assert_eq!(drift.len(), 1);
        let shown = serde_json::to_string(&drift).unwrap();
        assert!(!shown.contains("hunter2") && !shown.contains(&base64(b"letmein")));
        assert!(shown.contains("masked"), "{shown}");
    }

    #[test]
    fn base64_matches_the_standard_encoding() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"hunter2"), "aHVudGVyMg==");
    }
}
