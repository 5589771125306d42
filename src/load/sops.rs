//! SOPS-encrypted files as Flux applies them: kustomize-controller decrypts before applying, so
//! the gate judges the document without its `sops` block and treats the ciphertexts as secrets.

/// A SOPS-encrypted document as Flux's kustomize-controller applies it: without its top-level
/// `sops` block (`mac` plus `lastmodified` or `version`). Returns the `ENC[...]` ciphertexts,
/// which stay opaque strings and are masked like Secret values.
pub fn as_decrypted(value: &mut serde_json::Value) -> Vec<String> {
    let is_sops = value.get("sops").is_some_and(|sops| {
        sops.get("mac").is_some()
            && (sops.get("lastmodified").is_some() || sops.get("version").is_some())
    });
    if !is_sops {
        return Vec::new();
    }
    if let Some(map) = value.as_object_mut() {
        map.remove("sops");
    }
    let mut ciphertexts = Vec::new();
    collect_ciphertexts(value, &mut ciphertexts);
    ciphertexts
}

fn collect_ciphertexts(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::String(s) if s.starts_with("ENC[") && s.ends_with(']') => {
            out.push(s.clone());
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_ciphertexts(v, out)),
        serde_json::Value::Object(map) => map.values().for_each(|v| collect_ciphertexts(v, out)),
        _ => {}
    }
}
