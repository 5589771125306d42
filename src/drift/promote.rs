//! Promotion order (`drift.promote`): a value a change sets in an environment must already be set,
//! at base, on the same object of the previous environment in `order`.
//!
//! "The same object" is the [`ObjectId`] with its environment-specific parts normalised through
//! `match:` templates (`namespace: shop-{env}`): `shop-prod` in prod and `shop-staging` in staging
//! both become `shop-{env}`.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::{Desired, environment_files, load_desired};
use crate::config::{Config, PromoteMatch};
use crate::diff::normalize::{merge_key, scalar_key};
use crate::finding::{Finding, Location, Rule};
use crate::object::ObjectId;
use crate::tree::Tree;

/// A value set ahead of the order.
#[derive(Debug, Clone, Serialize)]
pub struct Violation {
    pub object: ObjectId,
    pub environment: String,
    pub file: String,
    pub field: String,
    pub value: Value,
    /// The environment that must have it first.
    pub previous: String,
    /// The matching object there, if any, and its value of the field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_object: Option<ObjectId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_value: Option<Value>,
    /// `promote.skip_by` of the rule, for acknowledgements.
    #[serde(skip)]
    pub skip_by: Vec<String>,
}

/// Per environment: the base and head objects of the changed files.
pub type Sides = (String, Vec<Desired>, Vec<Desired>);

/// Every value the change sets out of order.
pub fn check(config: &Config, base_tree: &dyn Tree, changed: &[Sides]) -> Vec<Violation> {
    let mut previous_state: BTreeMap<String, Vec<Desired>> = BTreeMap::new();
    let mut out = Vec::new();
    for rule in &config.drift.promote {
        for (env, base, head) in changed {
            let Some(at) = rule.order.iter().position(|e| e == env) else {
                continue;
            };
            let Some(previous) = at.checked_sub(1).map(|i| &rule.order[i]) else {
                continue;
            };
            let prev = previous_state
                .entry(previous.clone())
                .or_insert_with(|| desired_of(config, base_tree, previous));
            for object in head {
                let before = base.iter().find(|b| b.id == object.id);
                for field in &rule.fields {
                    for (path, value) in values_at(&object.value, field) {
                        let old = before.and_then(|b| value_at(&b.value, field, &path));
                        if old.as_ref() == Some(&value) {
                            continue;
                        }
                        let twin = twin(prev, object, env, previous, &rule.match_);
                        let twin_value = twin.and_then(|t| value_at(&t.value, field, &path));
                        if twin_value.as_ref() == Some(&value) {
                            continue;
                        }
                        out.push(Violation {
                            object: object.id.clone(),
                            environment: env.clone(),
                            file: object.path.clone(),
                            field: path,
                            value,
                            previous: previous.clone(),
                            previous_object: twin.map(|t| t.id.clone()),
                            previous_value: twin_value,
                            skip_by: rule.skip_by.clone(),
                        });
                    }
                }
            }
        }
    }
    out
}

pub fn finding(v: &Violation) -> Finding {
    let there = match (&v.previous_object, &v.previous_value) {
        (Some(id), Some(value)) => format!("{id} there has {}", text(value)),
        (Some(id), None) => format!("{id} there does not set it"),
        (None, _) => "no matching object there".to_owned(),
    };
    Finding::error(
        Rule::DriftPromotion,
        format!(
            "{} sets {} = {} in {}, but {} does not have it at base ({there})",
            v.object,
            v.field,
            text(&v.value),
            v.environment,
            v.previous
        ),
    )
    .object(v.object.clone())
    .at(Location::file(&v.file))
    .with_meta("environment", v.environment.clone())
    .with_meta("previous", v.previous.clone())
    .help(format!(
        "promote the value to {} first; in an emergency a `promote.skip_by` user may acknowledge it",
        v.previous
    ))
}

fn text(value: &Value) -> String {
    value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_owned)
}

/// The whole desired state of an environment at base (the files its `environments` globs match).
fn desired_of(config: &Config, tree: &dyn Tree, env: &str) -> Vec<Desired> {
    let files = environment_files(config, tree, env);
    load_desired(
        tree,
        files.iter().map(String::as_str),
        &config.load_options(),
    )
}

/// The object of `candidates` (in `previous`) that is `object` (in `env`) under the match templates.
fn twin<'a>(
    candidates: &'a [Desired],
    object: &Desired,
    env: &str,
    previous: &str,
    templates: &PromoteMatch,
) -> Option<&'a Desired> {
    let key = match_key(&object.id, env, templates)?;
    candidates
        .iter()
        .find(|c| match_key(&c.id, previous, templates).as_ref() == Some(&key))
}

type MatchKey = (String, String, Option<String>, String);

fn match_key(id: &ObjectId, env: &str, templates: &PromoteMatch) -> Option<MatchKey> {
    let ObjectId::Kube {
        api_version,
        kind,
        namespace,
        name,
    } = id
    else {
        return None;
    };
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    let namespace = namespace
        .as_deref()
        .map(|ns| generalise(ns, env, templates.namespace.as_deref()));
    let name = generalise(name, env, templates.name.as_deref());
    Some((group.to_owned(), kind.clone(), namespace, name))
}

/// `shop-prod` under `*-{env}` in prod → `shop-{env}`; unchanged when the template does not fit.
pub fn generalise(value: &str, env: &str, template: Option<&str>) -> String {
    let Some(template) = template else {
        return value.to_owned();
    };
    let Some((before, after)) = template.split_once("{env}") else {
        return value.to_owned();
    };
    let fits = |s: &str, pattern: &str| {
        globset::Glob::new(pattern).is_ok_and(|g| g.compile_matcher().is_match(s))
    };
    // Try each place `env` occurs; the template's text around it must match what surrounds it.
    let mut start = 0;
    while let Some(found) = value[start..].find(env) {
        let at = start + found;
        let (head, tail) = (&value[..at], &value[at + env.len()..]);
        if fits(head, before) && fits(tail, after) {
            return format!("{head}{{env}}{tail}");
        }
        start = at + 1;
    }
    value.to_owned()
}

/// Values at a field pattern (`spec.template.spec.containers[*].image`) with their concrete paths
/// (`spec.template.spec.containers[name=web].image`): list items merged by name are named, others
/// numbered, as the diff names them.
pub fn values_at(value: &Value, pattern: &str) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    collect(value, &segments(pattern), String::new(), &mut out);
    out
}

/// The value at the concrete path `path` that `values_at(value, pattern)` would give.
fn value_at(value: &Value, pattern: &str, path: &str) -> Option<Value> {
    values_at(value, pattern)
        .into_iter()
        .find(|(p, _)| p == path)
        .map(|(_, v)| v)
}

/// `a.b[*].c` → [("a", None), ("b", Some("*")), ("c", None)].
fn segments(pattern: &str) -> Vec<(String, Option<String>)> {
    pattern
        .split('.')
        .map(|s| match s.split_once('[') {
            Some((name, index)) => (
                name.to_owned(),
                Some(index.trim_end_matches(']').to_owned()),
            ),
            None => (s.to_owned(), None),
        })
        .collect()
}

fn collect(
    value: &Value,
    rest: &[(String, Option<String>)],
    path: String,
    out: &mut Vec<(String, Value)>,
) {
    let Some(((name, index), rest)) = rest.split_first() else {
        if !value.is_null() {
            out.push((path, value.clone()));
        }
        return;
    };
    let Some(child) = value.get(name) else {
        return;
    };
    let here = if path.is_empty() {
        name.clone()
    } else {
        format!("{path}.{name}")
    };
    match (index.as_deref(), child) {
        (None, child) => collect(child, rest, here, out),
        (Some(index), Value::Array(items)) => {
            let key = merge_key(name, items);
            for (i, item) in items.iter().enumerate() {
                let label = match key {
                    Some(k) => format!(
                        "{k}={}",
                        item.get(k).and_then(scalar_key).unwrap_or_default()
                    ),
                    None => i.to_string(),
                };
                if index == "*" || index == label || index == i.to_string() {
                    collect(item, rest, format!("{here}[{label}]"), out);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn environment_parts_of_names_are_generalised_by_the_template() {
        assert_eq!(
            generalise("shop-prod", "prod", Some("*-{env}")),
            "shop-{env}"
        );
        assert_eq!(
            generalise("shop-prod", "prod", Some("shop-{env}")),
            "shop-{env}"
        );
        assert_eq!(generalise("prod-db", "prod", Some("*-{env}")), "prod-db");
        assert_eq!(generalise("shop", "prod", None), "shop");
    }

    #[test]
    fn image_values_are_named_by_container() {
        let dep = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "web", "image": "app:1.3"}, {"name": "sidecar", "image": "envoy:1"}]}}}});
        let found = values_at(&dep, "spec.template.spec.containers[*].image");
        assert_eq!(
            found,
            vec![
                (
                    "spec.template.spec.containers[name=web].image".to_owned(),
                    json!("app:1.3")
                ),
                (
                    "spec.template.spec.containers[name=sidecar].image".to_owned(),
                    json!("envoy:1")
                ),
            ]
        );
        assert_eq!(values_at(&dep, "spec.values.image.tag"), vec![]);
    }
}
