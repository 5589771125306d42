//! Argo CD Applications whose source is a kustomization with `source.kustomize` overrides. Argo CD
//! runs `kustomize edit` in the source directory and builds it; here a temporary kustomization
//! beside the checkout lists the source directory as its resource and carries the same overrides,
//! and the configured kustomize command builds it (same sandbox, same guard). An override the gate
//! does not model refuses the render rather than rendering something Argo CD would not.

use serde_json::{Map, Value, json};

use super::{Checkout, RenderOutput, Renderer, failed, run};
use crate::finding::{Finding, Rule};

/// The kustomization fields an Application's `source.kustomize` sets.
#[derive(Debug, Clone, PartialEq)]
pub struct KustomizeOverrides {
    fields: Map<String, Value>,
}

/// Keys of `source.kustomize` that change nothing in the built objects here (the kustomize
/// version Argo CD picks, and `--force` on label/annotation edits, which kustomize's transformers
/// do anyway).
const IGNORED: &[&str] = &["version", "forceCommonLabels", "forceCommonAnnotations"];

impl KustomizeOverrides {
    /// The overrides of one `source.kustomize`, or why it cannot be rendered faithfully.
    pub fn from_source(kustomize: &Value) -> Result<KustomizeOverrides, String> {
        let Some(spec) = kustomize.as_object() else {
            return Err("its `kustomize` is not a mapping".into());
        };
        let without_selector = spec
            .get("labelWithoutSelector")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let mut fields = Map::new();
        for (key, value) in spec {
            match key.as_str() {
                "namePrefix" | "nameSuffix" | "namespace" | "commonAnnotations" | "patches" => {
                    fields.insert(key.clone(), value.clone());
                }
                "commonLabels" if without_selector => {
                    fields.insert(
                        "labels".into(),
                        json!([{ "pairs": value, "includeSelectors": false }]),
                    );
                }
                "commonLabels" => {
                    fields.insert(key.clone(), value.clone());
                }
                "images" => {
                    let images = value
                        .as_array()
                        .ok_or("its `kustomize.images` is not a list")?
                        .iter()
                        .map(|i| i.as_str().map(image).ok_or("an image is not a string"))
                        .collect::<Result<Vec<_>, _>>()?;
                    fields.insert(key.clone(), Value::Array(images));
                }
                "replicas" => {
                    fields.insert(key.clone(), replicas(value)?);
                }
                "labelWithoutSelector" => {}
                k if IGNORED.contains(&k) => {}
                other => {
                    return Err(format!(
                        "its `kustomize.{other}` override is not modelled by the gate"
                    ));
                }
            }
        }
        Ok(KustomizeOverrides { fields })
    }

    /// The kustomization that builds `source` (a path relative to the kustomization's own
    /// directory) with these overrides.
    fn kustomization(&self, source: &str) -> Value {
        let mut k = Map::new();
        k.insert(
            "apiVersion".into(),
            json!("kustomize.config.k8s.io/v1beta1"),
        );
        k.insert("kind".into(), json!("Kustomization"));
        k.insert("resources".into(), json!([source]));
        k.extend(self.fields.clone());
        Value::Object(k)
    }
}

/// `kustomize edit set image`'s argument as a kustomization `images` entry: `[name=]new` where
/// `new` is `newName[:newTag][@digest]`; without `name=`, the image's own name is the one matched
/// and only its tag or digest changes.
fn image(arg: &str) -> Value {
    let (matched, new) = match arg.split_once('=') {
        Some((m, n)) => (Some(m), n),
        None => (None, arg),
    };
    let (rest, digest) = match new.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (new, None),
    };
    // A `:` after the last `/` separates the tag; one before it is a registry port.
    let slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[slash..].rfind(':') {
        Some(i) => (&rest[..slash + i], Some(&rest[slash + i + 1..])),
        None => (rest, None),
    };
    let mut entry = Map::new();
    entry.insert("name".into(), json!(matched.unwrap_or(name)));
    if matched.is_some() && !name.is_empty() {
        entry.insert("newName".into(), json!(name));
    }
    if let Some(tag) = tag {
        entry.insert("newTag".into(), json!(tag));
    }
    if let Some(digest) = digest {
        entry.insert("digest".into(), json!(digest));
    }
    Value::Object(entry)
}

/// Argo CD's `replicas` (`count` an integer or a string holding one) as kustomize's.
fn replicas(value: &Value) -> Result<Value, String> {
    let list = value
        .as_array()
        .ok_or("its `kustomize.replicas` is not a list")?;
    list.iter()
        .map(|r| {
            let name = r.get("name").and_then(Value::as_str);
            let count = match r.get("count") {
                Some(Value::Number(n)) => n.as_i64(),
                Some(Value::String(s)) => s.trim().parse().ok(),
                _ => None,
            };
            match (name, count) {
                (Some(name), Some(count)) => Ok(json!({ "name": name, "count": count })),
                _ => Err("a `kustomize.replicas` entry needs a name and an integer count".into()),
            }
        })
        .collect::<Result<Vec<_>, String>>()
        .map(Value::Array)
}

/// Build the source directory `dir` of a checkout with the overrides, in `work` (a directory of
/// the checkout), and place namespaced objects that name no namespace in `namespace` (Argo CD's
/// `destination.namespace`).
#[allow(clippy::too_many_arguments)]
pub fn render(
    checkout: &Checkout,
    overrides: &KustomizeOverrides,
    dir: &str,
    work: &str,
    namespace: Option<&str>,
    command: &[String],
    owner: &str,
    side: &str,
) -> RenderOutput {
    let up = "../".repeat(work.split('/').filter(|p| !p.is_empty()).count());
    let source = if dir.is_empty() {
        up.trim_end_matches('/').to_string()
    } else {
        format!("{up}{dir}")
    };
    let kustomization = overrides.kustomization(&source);
    if let Err(e) = checkout.sandbox.write_file(
        &format!("{work}/kustomization.yaml"),
        kustomization.to_string().as_bytes(),
    ) {
        return failed(Finding::error(Rule::RenderFailed, e.to_string()).in_file(owner));
    }
    let mut output = run(
        checkout,
        command,
        &[work],
        dir,
        owner,
        side,
        Renderer::Kustomize,
    );
    if let Some(ns) = namespace {
        for object in &mut output.objects {
            default_namespace(&mut object.value, ns);
        }
    }
    output
}

fn default_namespace(object: &mut Value, namespace: &str) {
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
    if super::target_namespace::is_cluster_scoped(kind) {
        return;
    }
    let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    if meta
        .get("namespace")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        meta.insert("namespace".into(), json!(namespace));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_overrides_read_as_kustomize_edit_set_image_does() {
        assert_eq!(
            image("nginx:latest"),
            json!({"name": "nginx", "newTag": "latest"})
        );
        assert_eq!(
            image("nginx=ghcr.io/acme/nginx:1.27"),
            json!({"name": "nginx", "newName": "ghcr.io/acme/nginx", "newTag": "1.27"})
        );
        assert_eq!(
            image("registry:5000/app@sha256:abc"),
            json!({"name": "registry:5000/app", "digest": "sha256:abc"})
        );
    }

    #[test]
    fn an_unmodelled_override_is_refused() {
        let err = KustomizeOverrides::from_source(&json!({"components": ["../c"]})).unwrap_err();
        assert!(err.contains("kustomize.components"), "{err}");
    }
}
