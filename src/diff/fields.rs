//! The field paths that differ between two versions of an object, e.g.
//! `spec.template.spec.containers[name=app].image`. Keyed lists are matched by their merge key, so a
//! path names the container rather than its position.

use serde_json::Value;

use super::normalize::{merge_key, scalar_key};

pub fn changed_paths(base: &Value, head: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk(base, head, "", None, &mut out);
    out
}

fn walk(base: &Value, head: &Value, path: &str, field: Option<&str>, out: &mut Vec<String>) {
    if base == head {
        return;
    }
    match (base, head) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let child = join(path, key);
                match (a.get(key.as_str()), b.get(key.as_str())) {
                    (Some(x), Some(y)) => walk(x, y, &child, Some(key), out),
                    _ => out.push(child),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => walk_list(a, b, path, field, out),
        _ => out.push(path_or_root(path)),
    }
}

fn walk_list(a: &[Value], b: &[Value], path: &str, field: Option<&str>, out: &mut Vec<String>) {
    let key = field.and_then(|f| Some((merge_key(f, a)?, merge_key(f, b)?)));
    match key {
        Some((ka, kb)) if ka == kb => {
            let name = |v: &Value| v.get(ka).and_then(scalar_key).unwrap_or_default();
            let mut names: Vec<String> = a.iter().chain(b).map(name).collect();
            names.sort();
            names.dedup();
            for n in names {
                let child = format!("{}[{ka}={n}]", path_or_root(path));
                let x = a.iter().find(|v| name(v) == n);
                let y = b.iter().find(|v| name(v) == n);
                match (x, y) {
                    (Some(x), Some(y)) => walk(x, y, &child, None, out),
                    _ => out.push(child),
                }
            }
        }
        _ if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                walk(x, y, &format!("{}[{i}]", path_or_root(path)), None, out);
            }
        }
        _ => out.push(path_or_root(path)),
    }
}

fn join(path: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    match (path.is_empty(), plain) {
        (true, true) => key.to_string(),
        (false, true) => format!("{path}.{key}"),
        (_, false) => format!("{path}[{}]", Value::String(key.to_string())),
    }
}

fn path_or_root(path: &str) -> String {
    if path.is_empty() {
        ".".into()
    } else {
        path.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn containers_are_named_by_key_and_odd_keys_are_quoted() {
        let a = json!({"metadata": {"labels": {"app.kubernetes.io/name": "a"}},
                       "spec": {"containers": [{"name": "app", "image": "x:1"}, {"name": "side"}]}});
        let b = json!({"metadata": {"labels": {"app.kubernetes.io/name": "b"}},
                       "spec": {"containers": [{"name": "side"}, {"name": "app", "image": "x:2"}]}});
        assert_eq!(
            changed_paths(&a, &b),
            vec![
                r#"metadata.labels["app.kubernetes.io/name"]"#,
                "spec.containers[name=app].image"
            ]
        );
    }

    #[test]
    fn unkeyed_lists_of_other_length_change_as_a_whole() {
        let a = json!({"args": ["a"], "x": [1, 2]});
        let b = json!({"args": ["a", "b"], "x": [1, 3], "new": true});
        assert_eq!(changed_paths(&a, &b), vec!["args", "new", "x[1]"]);
    }
}
