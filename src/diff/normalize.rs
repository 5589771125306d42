//! Normalisation before diffing: what makes two spellings of the same desired state compare equal.
//!
//! - identity: namespaced kinds without a namespace land in `default`, as `kubectl apply` puts them;
//! - lists Kubernetes merges by key (containers, env, ports, volumes, …) are sorted by that key, so
//!   reordering them is not a change and one container's edit diffs in place;
//! - mapping keys are ordered as `kubectl get -o yaml` prints them (see [`to_yaml`]).

use serde_json::Value;

use crate::object::ObjectId;

/// Kinds that live outside namespaces. Not exhaustive (a CRD can be cluster-scoped and we do not read
/// its `scope` here); an unknown kind is taken as namespaced, as kubectl does without discovery.
const CLUSTER_SCOPED: &[&str] = &[
    "APIService",
    "CertificateSigningRequest",
    "ClusterIssuer",
    "ClusterPolicy",
    "ClusterRole",
    "ClusterRoleBinding",
    "ClusterSecretStore",
    "ClusterExternalSecret",
    "ComponentStatus",
    "CSIDriver",
    "CSINode",
    "CustomResourceDefinition",
    "FlowSchema",
    "GatewayClass",
    "IngressClass",
    "MutatingWebhookConfiguration",
    "Namespace",
    "Node",
    "PersistentVolume",
    "PodSecurityPolicy",
    "PriorityClass",
    "PriorityLevelConfiguration",
    "RuntimeClass",
    "StorageClass",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "ValidatingWebhookConfiguration",
    "VolumeAttachment",
    "VolumeSnapshotClass",
];

pub fn is_cluster_scoped(kind: &str) -> bool {
    CLUSTER_SCOPED.contains(&kind)
}

/// The id the object will have in the cluster: a namespaced kind without a namespace is in
/// `default`; a cluster-scoped kind never has one, even if the file gives one (the API server
/// ignores it).
pub fn cluster_id(id: ObjectId) -> ObjectId {
    match id {
        ObjectId::Kube {
            api_version,
            kind,
            namespace,
            name,
        } => {
            let namespace = if is_cluster_scoped(&kind) {
                None
            } else {
                Some(namespace.unwrap_or_else(|| "default".to_string()))
            };
            ObjectId::Kube {
                api_version,
                kind,
                namespace,
                name,
            }
        }
        other => other,
    }
}

/// List fields whose items Kubernetes merges by a key, with the keys tried in order. Matching them
/// by key keeps a reorder from being a change and lets one item's edit diff on its own.
const KEYED_LISTS: &[(&str, &[&str])] = &[
    ("containers", &["name"]),
    ("initContainers", &["name"]),
    ("ephemeralContainers", &["name"]),
    ("env", &["name"]),
    ("volumes", &["name"]),
    ("volumeMounts", &["mountPath", "name"]),
    ("ports", &["name", "containerPort", "port"]),
    ("imagePullSecrets", &["name"]),
    ("hostAliases", &["ip"]),
];

/// The key a list field is merged by, if every item has a distinct string or number under it.
pub fn merge_key(field: &str, items: &[Value]) -> Option<&'static str> {
    let candidates = KEYED_LISTS.iter().find(|(f, _)| *f == field)?.1;
    candidates.iter().copied().find(|key| {
        let mut seen = std::collections::BTreeSet::new();
        items.iter().all(|item| {
            item.get(*key)
                .and_then(scalar_key)
                .is_some_and(|k| seen.insert(k))
        })
    })
}

/// The text of a merge-key value (names are strings, ports are numbers).
pub fn scalar_key(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Sort keyed lists by their merge key, everywhere in the value.
pub fn canonicalize(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (field, child) in map.iter_mut() {
                if let Value::Array(items) = child
                    && let Some(key) = merge_key(field, items)
                {
                    items.sort_by_key(|item| item.get(key).and_then(scalar_key));
                }
                canonicalize(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(canonicalize),
        _ => {}
    }
}

/// Block-style YAML with keys as `kubectl get -o yaml` orders them at the top (`apiVersion`, `kind`,
/// `metadata`, then the rest) and alphabetically below. Deterministic, so equal values print equal.
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(map) if !map.is_empty() => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_by_key(|k| (top_rank(k), k.as_str()));
            for key in keys {
                write_entry(&mut out, 0, key, &map[key.as_str()]);
            }
        }
        other => {
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
    out
}

fn top_rank(key: &str) -> u8 {
    match key {
        "apiVersion" => 0,
        "kind" => 1,
        "metadata" => 2,
        _ => 3,
    }
}

fn write_entry(out: &mut String, indent: usize, key: &str, value: &Value) {
    let pad = " ".repeat(indent);
    let key = scalar(&Value::String(key.to_string()));
    match value {
        Value::Object(map) if !map.is_empty() => {
            out.push_str(&format!("{pad}{key}:\n"));
            write_map(out, indent + 2, map);
        }
        Value::Array(items) if !items.is_empty() => {
            // kubectl prints list items at the same indent as their key.
            out.push_str(&format!("{pad}{key}:\n"));
            write_items(out, indent, items);
        }
        other => out.push_str(&format!("{pad}{key}: {}\n", scalar(other))),
    }
}

fn write_map(out: &mut String, indent: usize, map: &serde_json::Map<String, Value>) {
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    for key in keys {
        write_entry(out, indent, key, &map[key.as_str()]);
    }
}

fn write_items(out: &mut String, indent: usize, items: &[Value]) {
    let pad = " ".repeat(indent);
    for item in items {
        match item {
            Value::Object(map) if !map.is_empty() => {
                // The first key shares the "- " line, the rest align under it.
                let mut body = String::new();
                write_map(&mut body, indent + 2, map);
                let body = body.split_at(indent + 2).1;
                out.push_str(&format!("{pad}- {body}"));
            }
            Value::Array(inner) if !inner.is_empty() => {
                out.push_str(&format!("{pad}-\n"));
                write_items(out, indent + 2, inner);
            }
            other => out.push_str(&format!("{pad}- {}\n", scalar(other))),
        }
    }
}

/// A scalar as YAML, quoted (JSON style, which YAML accepts) whenever plain style could be read as
/// something else or would not survive on one line.
fn scalar(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) if needs_quotes(s) => Value::String(s.clone()).to_string(),
        Value::String(s) => s.clone(),
        Value::Object(_) => "{}".into(),
        Value::Array(_) => "[]".into(),
    }
}

fn needs_quotes(s: &str) -> bool {
    const RESERVED: &[&str] = &[
        "", "~", "null", "Null", "NULL", "true", "True", "TRUE", "false", "False", "FALSE", "yes",
        "Yes", "YES", "no", "No", "NO", "on", "On", "ON", "off", "Off", "OFF", "y", "Y", "n", "N",
    ];
    let first = s.chars().next().unwrap_or(' ');
    RESERVED.contains(&s)
        || s.parse::<f64>().is_ok()
        || s.contains(": ")
        || s.contains(" #")
        || s.contains('\n')
        || s.ends_with(':')
        || s.starts_with(' ')
        || s.ends_with(' ')
        || "-?:,[]{}#&*!|>'\"%@`".contains(first)
        || s.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn namespaced_kinds_default_to_default_and_cluster_kinds_have_none() {
        let dep = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "w"}});
        let ns = json!({"apiVersion": "v1", "kind": "Namespace",
                        "metadata": {"name": "x", "namespace": "y"}});
        assert_eq!(
            cluster_id(ObjectId::of(&dep, "a", 0)).to_string(),
            "apps/v1/Deployment/default/w"
        );
        assert_eq!(
            cluster_id(ObjectId::of(&ns, "a", 0)).to_string(),
            "v1/Namespace//x"
        );
    }

    #[test]
    fn containers_and_env_are_sorted_by_name_but_args_are_not() {
        let mut v = json!({"containers": [
            {"name": "b", "args": ["z", "a"], "env": [{"name": "Y"}, {"name": "X"}]},
            {"name": "a"}]});
        canonicalize(&mut v);
        assert_eq!(
            v,
            json!({"containers": [{"name": "a"},
                {"name": "b", "args": ["z", "a"], "env": [{"name": "X"}, {"name": "Y"}]}]})
        );
    }

    #[test]
    fn lists_with_duplicate_keys_keep_their_order() {
        let mut v = json!({"env": [{"name": "B"}, {"name": "A"}, {"name": "B"}]});
        let before = v.clone();
        canonicalize(&mut v);
        assert_eq!(v, before);
    }

    #[test]
    fn yaml_prints_kubernetes_header_first_then_alphabetical_and_quotes_ambiguous_strings() {
        let v = json!({"spec": {"z": 1, "a": ["on", {"b": "x: y", "a": "1.0"}]},
                       "metadata": {"name": "web"}, "kind": "K", "apiVersion": "v1"});
        assert_eq!(
            to_yaml(&v),
            "apiVersion: v1\nkind: K\nmetadata:\n  name: web\nspec:\n  a:\n  - \"on\"\n  - a: \"1.0\"\n    b: \"x: y\"\n  z: 1\n"
        );
    }
}
