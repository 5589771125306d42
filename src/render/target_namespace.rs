//! The namespace an object lands in when a Flux `Kustomization` or an Argo CD `Application`
//! deploys the directory that holds it: Flux's `spec.targetNamespace` sets the namespace of every
//! namespaced object it builds (kustomize's namespace transformer, overriding what the file says);
//! Argo CD's `spec.destination.namespace` is the namespace of objects that name none. Identity
//! (`ObjectId`) and every check then see the object where the cluster will have it, so two
//! same-named objects deployed into different namespaces are two objects.

use std::collections::HashMap;

use serde_json::Value;

use super::Manifest;
use super::flux::FLUX_GROUP;
use super::paths::resolve;
use crate::load::Document;
use crate::load::sniff::{contains, hides_from_filters, names_group};
use crate::tree::ancestors;

/// The API group of Argo CD's `Application`, as its `apiVersion` starts.
const ARGO_GROUP: &str = "argoproj.io/";

/// One deployer of a repository directory.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Deployer {
    /// The repository directory it deploys ("" for the root).
    path: String,
    namespace: String,
    /// Flux overrides the namespace objects name; Argo CD only fills in a missing one.
    overrides: bool,
}

/// Every Flux `Kustomization` with `targetNamespace` and Argo CD `Application` with a
/// destination namespace in a tree.
#[derive(Debug, Default)]
pub struct TargetNamespaces {
    /// Each deployed directory's deployer, by its path: the last one declared, when several
    /// deploy one directory. Each document looks up the directories above it, where comparing
    /// its path with every deployer's was 0.4% of the corpus' `check --all`.
    by_path: HashMap<String, Deployer>,
}

impl TargetNamespaces {
    /// Whether a manifest's bytes may declare a deployer (the filter of
    /// [`super::scan_manifests`]).
    pub fn may_declare(bytes: &[u8]) -> bool {
        hides_from_filters(bytes)
            || (contains(bytes, b"targetNamespace") && names_group(bytes, FLUX_GROUP))
            || (contains(bytes, b"destination") && names_group(bytes, ARGO_GROUP))
    }

    /// The deployers among the tree's manifests (read by [`super::scan_manifests`], with a filter
    /// that passes what [`TargetNamespaces::may_declare`] passes).
    pub fn from_manifests(manifests: &[Manifest]) -> TargetNamespaces {
        let deployers = manifests
            .iter()
            .flat_map(|(_, docs)| docs.iter().flat_map(|d| deployers_in(&d.value)))
            .collect();
        TargetNamespaces::of(deployers)
    }

    fn of(deployers: Vec<Deployer>) -> TargetNamespaces {
        // Collected in order: a later deployer of a path replaces an earlier one.
        let by_path = deployers.into_iter().map(|d| (d.path.clone(), d)).collect();
        TargetNamespaces { by_path }
    }

    /// Set the namespace of each namespaced document under a deployer's path, the deepest
    /// deployer winning. `path_of` names the repository path a document comes from (its file, or
    /// a rendered overlay's kustomization).
    pub fn apply(&self, documents: &mut [Document], path_of: &dyn Fn(&str) -> String) {
        if self.by_path.is_empty() {
            return;
        }
        for doc in documents.iter_mut() {
            if doc.kind().is_none_or(is_cluster_scoped) {
                continue;
            }
            let Some(deployer) = self.deploying(&path_of(doc.path())) else {
                continue;
            };
            let Some(metadata) = doc.value.get_mut("metadata").and_then(Value::as_object_mut)
            else {
                continue;
            };
            if deployer.overrides || !metadata.contains_key("namespace") {
                metadata.insert(
                    "namespace".into(),
                    Value::String(deployer.namespace.clone()),
                );
            }
        }
    }

    /// The deployer of the deepest deployed directory that holds `path` (or is it).
    fn deploying(&self, path: &str) -> Option<&Deployer> {
        std::iter::once(path)
            .chain(ancestors(path))
            .find_map(|dir| self.by_path.get(dir))
    }
}

fn deployers_in(value: &Value) -> Vec<Deployer> {
    let text = |pointer: &str| value.pointer(pointer).and_then(Value::as_str);
    let (Some(api_version), Some(kind)) = (text("/apiVersion"), text("/kind")) else {
        return Vec::new();
    };
    let deployer = |path: &str, namespace: &str, overrides: bool| {
        // Paths are relative to the source's root, taken to be this repository (as for Flux's
        // post-build substitution).
        Some(Deployer {
            path: resolve("", path)?,
            namespace: namespace.to_owned(),
            overrides,
        })
    };
    if api_version.starts_with(FLUX_GROUP) && kind == "Kustomization" {
        let (Some(path), Some(namespace)) = (text("/spec/path"), text("/spec/targetNamespace"))
        else {
            return Vec::new();
        };
        return deployer(path, namespace, true).into_iter().collect();
    }
    if api_version.starts_with(ARGO_GROUP) && kind == "Application" {
        let Some(namespace) = text("/spec/destination/namespace") else {
            return Vec::new();
        };
        let sources = value
            .pointer("/spec/sources")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .chain(value.pointer("/spec/source"));
        return sources
            .filter_map(|s| s.get("path").and_then(Value::as_str))
            .filter_map(|path| deployer(path, namespace, false))
            .collect();
    }
    Vec::new()
}

/// Built-in kinds that have no namespace: kustomize's namespace transformer leaves them alone.
pub(crate) fn is_cluster_scoped(kind: &str) -> bool {
    matches!(
        kind,
        "Namespace"
            | "Node"
            | "PersistentVolume"
            | "ClusterRole"
            | "ClusterRoleBinding"
            | "CustomResourceDefinition"
            | "StorageClass"
            | "PriorityClass"
            | "IngressClass"
            | "RuntimeClass"
            | "CSIDriver"
            | "CSINode"
            | "VolumeAttachment"
            | "APIService"
            | "MutatingWebhookConfiguration"
            | "ValidatingWebhookConfiguration"
            | "ValidatingAdmissionPolicy"
            | "ValidatingAdmissionPolicyBinding"
            | "CertificateSigningRequest"
            | "FlowSchema"
            | "PriorityLevelConfiguration"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flux_overrides_and_argo_fills_in() {
        let flux = json!({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
            "spec": {"path": "./apps/web", "targetNamespace": "web"}});
        let argo = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
            "spec": {"source": {"path": "apps/api"}, "destination": {"namespace": "api"}}});
        assert_eq!(
            deployers_in(&flux),
            [Deployer {
                path: "apps/web".into(),
                namespace: "web".into(),
                overrides: true
            }]
        );
        assert_eq!(
            deployers_in(&argo),
            [Deployer {
                path: "apps/api".into(),
                namespace: "api".into(),
                overrides: false
            }]
        );
    }

    #[test]
    fn the_scan_reads_deployers_and_passes_over_the_crds_that_define_them() {
        let flux = "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\n\
                    spec:\n  path: ./apps\n  targetNamespace: web\n";
        let argo = "apiVersion: argoproj.io/v1alpha1\nkind: Application\n\
                    spec:\n  destination:\n    namespace: api\n";
        // A parser unescapes `\x2e` to the dot: the bytes cannot rule it out.
        let escaped = "apiVersion: \"argoproj\\x2eio/v1alpha1\"\nkind: Application\n\
                       spec:\n  destination:\n    namespace: api\n";
        for text in [flux, argo, escaped] {
            assert!(TargetNamespaces::may_declare(text.as_bytes()), "{text}");
        }
        let crd = "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n\
                   spec:\n  group: argoproj.io\n  versions:\n  - name: v1alpha1\n    schema:\n\
                   \x20     openAPIV3Schema:\n        properties:\n          destination: {}\n";
        assert!(!TargetNamespaces::may_declare(crd.as_bytes()));
    }

    /// The deepest deployed directory above a file decides, the last declared of several for
    /// one directory; `apps` does not hold `apps-extra`, and the root holds everything.
    #[test]
    fn the_deepest_deployer_of_a_file_decides() {
        let deployer = |path: &str, namespace: &str| Deployer {
            path: path.into(),
            namespace: namespace.into(),
            overrides: true,
        };
        let namespaces = TargetNamespaces::of(vec![
            deployer("apps/a", "first-a"),
            deployer("", "root"),
            deployer("apps", "apps"),
            deployer("apps/a", "a"),
            deployer("apps/a/x.yaml", "file"),
        ]);
        let deploying = |path: &str| namespaces.deploying(path).map(|d| d.namespace.as_str());
        assert_eq!(deploying("apps/a/x.yaml"), Some("file"));
        assert_eq!(deploying("apps/a/deep/y.yaml"), Some("a"));
        assert_eq!(deploying("apps/b/y.yaml"), Some("apps"));
        assert_eq!(deploying("apps-extra/q.yaml"), Some("root"));
        assert_eq!(deploying("top.yaml"), Some("root"));
        let rootless = TargetNamespaces::of(vec![deployer("apps", "apps")]);
        assert_eq!(
            rootless
                .deploying("apps-extra/q.yaml")
                .map(|d| &*d.namespace),
            None
        );
        assert_eq!(
            rootless.deploying("apps").map(|d| &*d.namespace),
            Some("apps")
        );
    }
}
