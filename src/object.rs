//! Object identity: how the same Kubernetes object is recognised across files and revisions.

use serde::Serialize;
use serde_json::Value;
use std::fmt;

/// `apiVersion/kind/namespace/name` for Kubernetes-shaped documents, `path#index` for the rest.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ObjectId {
    Kube {
        api_version: String,
        kind: String,
        namespace: Option<String>,
        name: String,
    },
    Document {
        path: String,
        index: usize,
    },
}

impl ObjectId {
    /// Identity of a parsed document. Namespace defaulting (kubectl puts namespaced objects without
    /// a namespace into `default`) is the diff's business, not identity's: here an absent namespace
    /// stays absent.
    pub fn of(value: &Value, path: &str, index: usize) -> ObjectId {
        let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
        let meta = |key: &str| {
            value
                .get("metadata")
                .and_then(|m| m.get(key))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        match (text("apiVersion"), text("kind"), meta("name")) {
            (Some(api_version), Some(kind), Some(name)) => ObjectId::Kube {
                api_version,
                kind,
                namespace: meta("namespace"),
                name,
            },
            _ => ObjectId::Document {
                path: path.to_owned(),
                index,
            },
        }
    }

    /// Identity of item `item` of the list object at document `index`: its own when it has one,
    /// else `path#index/items#item`, so items without names stay apart.
    pub fn of_item(value: &Value, path: &str, index: usize, item: usize) -> ObjectId {
        match ObjectId::of(value, path, index) {
            id @ ObjectId::Kube { .. } => id,
            ObjectId::Document { .. } => ObjectId::Document {
                path: format!("{path}#{index}/items"),
                index: item,
            },
        }
    }

    pub fn kind(&self) -> Option<&str> {
        match self {
            ObjectId::Kube { kind, .. } => Some(kind),
            ObjectId::Document { .. } => None,
        }
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ObjectId::Kube {
                api_version,
                kind,
                namespace,
                name,
            } => write!(
                f,
                "{api_version}/{kind}/{}/{name}",
                namespace.as_deref().unwrap_or("")
            ),
            ObjectId::Document { path, index } => write!(f, "{path}#{index}"),
        }
    }
}

impl Serialize for ObjectId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kube_objects_are_named_by_group_kind_namespace_name() {
        let doc = json!({"apiVersion": "apps/v1", "kind": "Deployment",
                         "metadata": {"name": "web", "namespace": "shop"}});
        assert_eq!(
            ObjectId::of(&doc, "a.yaml", 0).to_string(),
            "apps/v1/Deployment/shop/web"
        );
    }

    #[test]
    fn cluster_scoped_objects_have_an_empty_namespace() {
        let doc = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}});
        assert_eq!(
            ObjectId::of(&doc, "a.yaml", 0).to_string(),
            "v1/Namespace//shop"
        );
    }

    #[test]
    fn other_documents_are_named_by_path_and_index() {
        let doc = json!({"replicas": 3});
        assert_eq!(
            ObjectId::of(&doc, "apps/x/config.yaml", 2).to_string(),
            "apps/x/config.yaml#2"
        );
    }
}
