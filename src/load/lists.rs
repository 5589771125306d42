//! List objects, read as kubectl reads them: any object with an `items` field is a list, and
//! `kubectl apply` applies its items, not the list. Each item becomes a document of its own, so
//! schemas and policies judge it with its own location and identity.
//!
//! kustomize (and so Flux and Argo CD) only unpacks kinds ending in `List`: a `Deployment` with an
//! `items` field is one object to kustomize and a list of other objects to kubectl. That file is
//! ambiguous and blocks.

use serde_json::Value;

use super::{Document, Loaded, Positions};
use crate::finding::{Finding, Rule};

/// Replace every list document of `loaded` by its items.
pub fn flatten(loaded: &mut Loaded) {
    let documents = std::mem::take(&mut loaded.documents);
    for doc in documents {
        match doc.value.get("items") {
            Some(items) if doc.item.is_none() => {
                let items = items.clone();
                unpack(doc, items, loaded);
            }
            _ => loaded.documents.push(doc),
        }
    }
}

fn unpack(list: Document, items: Value, loaded: &mut Loaded) {
    let kind = list.kind().unwrap_or_default().to_owned();
    if !kind.ends_with("List") {
        loaded.findings.push(
            Finding::error(
                Rule::LoadAmbiguous,
                format!(
                    "`{kind}` with an `items` field: kubectl applies the items as a list, \
                     kustomize applies the `{kind}` itself"
                ),
            )
            .at(list.locate("/items"))
            .object(list.id())
            .help("remove `items`, or write the items as documents of their own (`---`)"),
        );
    }
    let items = match items {
        Value::Array(items) => items,
        Value::Null => Vec::new(),
        _ => {
            loaded.findings.push(
                Finding::error(
                    Rule::LoadSyntax,
                    "`items` of a list is not a sequence: kubectl cannot read it",
                )
                .at(list.locate("/items"))
                .help("make `items` a sequence of objects"),
            );
            return;
        }
    };
    let api_version = list.api_version().map(str::to_owned);
    // kubectl gives items without apiVersion and kind the list's, minus the `List` suffix.
    let item_kind = kind.strip_suffix("List").unwrap_or(&kind).to_owned();
    for (i, value) in items.into_iter().enumerate() {
        let mut item = Document {
            source: list.source.clone(),
            index: list.index,
            item: Some(i),
            value,
            positions: Positions::default(),
        };
        if let Err(finding) = inherit(&mut item, api_version.as_deref(), &item_kind) {
            loaded.findings.push(*finding);
            continue;
        }
        loaded.documents.push(item);
    }
}

fn inherit(item: &mut Document, api_version: Option<&str>, kind: &str) -> Result<(), Box<Finding>> {
    let refuse = |item: &Document, why: &str| {
        Box::new(
            Finding::error(
                Rule::LoadSyntax,
                format!("list item {why}: kubectl refuses it"),
            )
            .at(item.locate(""))
            .help("give every item of a list its own apiVersion, kind and metadata"),
        )
    };
    let Value::Object(map) = &mut item.value else {
        return Err(refuse(item, "is not an object"));
    };
    if map.contains_key("items") {
        return Err(refuse(item, "is itself a list"));
    }
    if !map.contains_key("kind") && !map.contains_key("apiVersion") && !kind.is_empty() {
        if let Some(api_version) = api_version {
            map.insert("apiVersion".into(), Value::String(api_version.to_owned()));
            map.insert("kind".into(), Value::String(kind.to_owned()));
        }
    }
    let named = |key: &str| {
        map.get(key)
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
    };
    if !named("kind") || !named("apiVersion") {
        return Err(refuse(item, "has no apiVersion or kind"));
    }
    Ok(())
}

/// The JSON pointer of an item inside its document.
pub fn item_pointer(item: Option<usize>, pointer: &str) -> String {
    match item {
        Some(i) => format!("/items/{i}{pointer}"),
        None => pointer.to_owned(),
    }
}
