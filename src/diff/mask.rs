//! Masking secret values before anything is diffed or printed.
//!
//! Values under `data` and `stringData` of a `Secret` (wherever it sits: `List` items, a
//! `SecretList`, and its last-applied-configuration annotation; see
//! [`crate::report::secret_paths`]), and any value a `diff.mask` pattern matches, are replaced on
//! both sides by markers that still tell whether the value changed. The real value is gone before
//! the YAML is printed, so no output format can leak it.

use serde_json::Value;

use crate::report::secret_paths;

pub const MASKED: &str = "<masked>";
pub const MASKED_CHANGED: &str = "<masked, changed>";
pub const MASKED_ADDED: &str = "<masked, added>";
pub const MASKED_REMOVED: &str = "<masked, removed>";

/// Patterns are `/`-separated like JSON pointers: `*` matches one segment, `**` any number.
#[derive(Debug, Clone, Default)]
pub struct Masker {
    patterns: Vec<Vec<String>>,
}

impl Masker {
    pub fn new(patterns: &[String]) -> Masker {
        let patterns = patterns
            .iter()
            .map(|p| {
                p.trim_start_matches('/')
                    .split('/')
                    .map(str::to_string)
                    .collect()
            })
            .collect();
        Masker { patterns }
    }

    /// Replace secret values of one object's two sides with markers. Either side may be absent
    /// (an added or removed object).
    pub fn mask_pair(&self, mut base: Option<&mut Value>, mut head: Option<&mut Value>) {
        // Secrets are found by data path (List items and the last-applied annotation too), not
        // by the top-level kind; with no patterns and no such path there is nothing to mask.
        let mut paths = Vec::new();
        for side in [base.as_deref(), head.as_deref()].into_iter().flatten() {
            paths.extend(secret_paths(side));
        }
        if self.patterns.is_empty() && paths.is_empty() {
            return;
        }
        for side in [base.as_deref(), head.as_deref()].into_iter().flatten() {
            self.collect(side, &mut Vec::new(), &mut paths);
        }
        paths.sort();
        paths.dedup();
        // A masked subtree hides everything below it; masking its children again would only
        // compare markers with markers.
        let outermost: Vec<&Vec<String>> = paths
            .iter()
            .filter(|p| !paths.iter().any(|q| q.len() < p.len() && p.starts_with(q)))
            .collect();
        for path in outermost {
            let pointer = to_pointer(path);
            let old = base.as_deref().and_then(|v| v.pointer(&pointer)).cloned();
            let new = head.as_deref().and_then(|v| v.pointer(&pointer)).cloned();
            let (old_marker, new_marker) = match (&old, &new) {
                (Some(a), Some(b)) if a == b => (MASKED, MASKED),
                (Some(_), Some(_)) => (MASKED, MASKED_CHANGED),
                (None, _) => (MASKED, MASKED_ADDED),
                (_, None) => (MASKED_REMOVED, MASKED),
            };
            replace(base.as_deref_mut(), &pointer, old_marker);
            replace(head.as_deref_mut(), &pointer, new_marker);
        }
    }

    /// The paths `diff.mask` patterns match.
    fn collect(&self, value: &Value, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        if !path.is_empty() && self.patterns.iter().any(|p| matches(p, path)) {
            out.push(path.clone());
            return;
        }
        match at(value, path) {
            Some(Value::Object(map)) => {
                for key in map.keys() {
                    path.push(key.clone());
                    self.collect(value, path, out);
                    path.pop();
                }
            }
            Some(Value::Array(items)) => {
                for i in 0..items.len() {
                    path.push(i.to_string());
                    self.collect(value, path, out);
                    path.pop();
                }
            }
            _ => {}
        }
    }
}

fn at<'a>(root: &'a Value, path: &[String]) -> Option<&'a Value> {
    root.pointer(&to_pointer(path))
}

fn matches(pattern: &[String], path: &[String]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((first, rest)) if first == "**" => {
            (0..=path.len()).any(|skip| matches(rest, &path[skip..]))
        }
        Some((first, rest)) => match path.split_first() {
            Some((segment, tail)) => (first == "*" || first == segment) && matches(rest, tail),
            None => false,
        },
    }
}

fn to_pointer(path: &[String]) -> String {
    path.iter()
        .map(|s| format!("/{}", s.replace('~', "~0").replace('/', "~1")))
        .collect()
}

fn replace(side: Option<&mut Value>, pointer: &str, marker: &str) {
    if let Some(slot) = side.and_then(|v| v.pointer_mut(pointer)) {
        *slot = Value::String(marker.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn secret(data: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": data})
    }

    #[test]
    fn secret_data_is_masked_with_change_markers() {
        let mut base = secret(json!({"same": "c2FtZQ==", "changed": "b2xk", "gone": "eA=="}));
        let mut head = secret(json!({"same": "c2FtZQ==", "changed": "bmV3", "new": "eQ=="}));
        Masker::default().mask_pair(Some(&mut base), Some(&mut head));
        assert_eq!(
            base["data"],
            json!({"same": MASKED, "changed": MASKED, "gone": MASKED_REMOVED})
        );
        assert_eq!(
            head["data"],
            json!({"same": MASKED, "changed": MASKED_CHANGED, "new": MASKED_ADDED})
        );
    }

    #[test]
    fn configured_patterns_mask_values_outside_secrets() {
        let mut head = json!({"kind": "App", "spec": {"db": {"password": "hunter2", "user": "u"}}});
        Masker::new(&["/spec/**/password".to_string()]).mask_pair(None, Some(&mut head));
        assert_eq!(
            head["spec"]["db"],
            json!({"password": MASKED_ADDED, "user": "u"})
        );
    }

    #[test]
    fn secrets_in_lists_and_last_applied_annotations_are_masked() {
        let mut head = json!({"kind": "List", "items": [
            {"kind": "Secret", "metadata": {"name": "a", "annotations": {
                crate::report::LAST_APPLIED: "{\"data\":{\"p\":\"aHVudGVyMg==\"}}"}},
             "data": {"p": "aHVudGVyMg=="}},
        ]});
        Masker::default().mask_pair(None, Some(&mut head));
        assert!(!head.to_string().contains("aHVudGVyMg=="), "{head}");
    }

    #[test]
    fn config_maps_are_not_masked() {
        let mut head = json!({"kind": "ConfigMap", "data": {"a": "visible"}});
        Masker::default().mask_pair(None, Some(&mut head));
        assert_eq!(head["data"]["a"], "visible");
    }
}
