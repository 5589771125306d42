//! Validation errors → located, human-friendly [`Finding`]s.
//!
//! Messages name the field the way people write it in YAML (`spec.template.spec.volumes[0]`), and
//! the noise that `anyOf`/`oneOf` produce (every branch's complaint) collapses into the branch
//! that got furthest into the document.

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{JsonType, ValidationError};
use serde_json::Value;

use crate::finding::{Finding, Rule};
use crate::load::Document;

/// Looks up the schema object an error was raised in, so that an unknown-field finding can
/// suggest the closest known field.
pub(super) trait SchemaLookup {
    fn schema_at(&self, error: &ValidationError<'_>) -> Option<&Value>;
}

/// A validation error reduced to what a finding needs, before it is located in a document.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Problem {
    pub rule: Rule,
    /// JSON pointer of the value (or, for unknown fields, of the offending key).
    pub pointer: String,
    pub message: String,
    /// Point at the key rather than the value.
    pub at_key: bool,
}

impl Problem {
    pub fn into_finding(self, doc: &Document) -> Finding {
        let location = if self.at_key {
            doc.locate_key(&self.pointer)
        } else {
            doc.locate(&self.pointer)
        };
        // Messages quote the offending value; a Secret's values must never reach any output.
        let message = if is_secret_value(doc, &self.pointer) && !self.at_key {
            format!(
                "{}: {} (the value is not shown: Secret data)",
                display_path(&self.pointer),
                self.rule.description()
            )
        } else {
            self.message
        };
        Finding::error(self.rule, message)
            .at(location)
            .object(doc.id())
            .field(self.pointer)
    }
}

/// Turn the errors of one validation into problems, one per distinct (rule, pointer, message).
/// `at` is the JSON pointer, in the document, of the value that was validated.
pub(super) fn problems<'a>(
    errors: impl Iterator<Item = ValidationError<'a>>,
    at: &str,
    lookup: &dyn SchemaLookup,
) -> Vec<Problem> {
    let mut out = Vec::new();
    for error in errors {
        collect(&error, at, lookup, &mut out);
    }
    out.dedup();
    let mut seen = std::collections::HashSet::new();
    out.retain(|p| seen.insert((p.rule, p.pointer.clone(), p.message.clone())));
    out
}

fn collect(
    error: &ValidationError<'_>,
    at: &str,
    lookup: &dyn SchemaLookup,
    out: &mut Vec<Problem>,
) {
    let pointer = format!("{at}{}", error.instance_path().as_str());
    let here = display_path(&pointer);
    let problem = |rule, message: String| Problem {
        rule,
        pointer: pointer.clone(),
        message,
        at_key: false,
    };
    match error.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected }
        | ValidationErrorKind::UnevaluatedProperties { unexpected } => {
            let known = lookup
                .schema_at(error)
                .map(known_properties)
                .unwrap_or_default();
            for key in unexpected {
                out.push(unknown_field(&pointer, key, &known));
            }
        }
        ValidationErrorKind::Type { kind } => out.push(problem(
            Rule::SchemaType,
            format!(
                "{here}: expected {}, found {}",
                expected_types(kind),
                describe(error.instance())
            ),
        )),
        ValidationErrorKind::Required { property } => {
            let name = property
                .as_str()
                .map_or_else(|| property.to_string(), str::to_owned);
            let message = if pointer.is_empty() {
                format!("missing required field `{name}`")
            } else {
                format!("{here}: missing required field `{name}`")
            };
            out.push(problem(Rule::SchemaRequired, message));
        }
        ValidationErrorKind::Enum { options } => out.push(problem(
            Rule::SchemaEnum,
            format!(
                "{here}: {} is not one of {}",
                preview(error.instance()),
                list_options(options)
            ),
        )),
        ValidationErrorKind::Constant { expected_value } => out.push(problem(
            Rule::SchemaEnum,
            format!(
                "{here}: {} must be {}",
                preview(error.instance()),
                preview(expected_value)
            ),
        )),
        ValidationErrorKind::Pattern { pattern } => out.push(problem(
            Rule::SchemaFormat,
            format!(
                "{here}: {} does not match the pattern `{pattern}`",
                preview(error.instance())
            ),
        )),
        ValidationErrorKind::Format { format } => out.push(problem(
            Rule::SchemaFormat,
            format!(
                "{here}: {} is not a valid {format}",
                preview(error.instance())
            ),
        )),
        ValidationErrorKind::AnyOf { context } | ValidationErrorKind::OneOfNotValid { context } => {
            collapse_branches(error, context, at, lookup, out)
        }
        ValidationErrorKind::Referencing(e) => out.push(problem(
            Rule::SchemaInvalid,
            format!("{here}: the schema cannot be resolved: {e}"),
        )),
        _ => out.push(problem(Rule::SchemaConstraint, format!("{here}: {error}"))),
    }
}

/// Of the branches of a failed `anyOf`/`oneOf`, report the one that matched most of the value:
/// the branch whose errors reach deepest into the document, then the one with fewest errors.
/// Branches that all fail only on the type of the same value merge into one type error.
fn collapse_branches(
    error: &ValidationError<'_>,
    branches: &[Vec<ValidationError<'static>>],
    at: &str,
    lookup: &dyn SchemaLookup,
    out: &mut Vec<Problem>,
) {
    let relative = error.instance_path().as_str();
    let pointer = &format!("{at}{relative}");
    let only_type_here = |branch: &Vec<ValidationError<'static>>| {
        branch.len() == 1
            && branch[0].instance_path().as_str() == relative
            && matches!(branch[0].kind(), ValidationErrorKind::Type { .. })
    };
    if !branches.is_empty() && branches.iter().all(only_type_here) {
        let mut expected: Vec<String> = Vec::new();
        for branch in branches {
            if let ValidationErrorKind::Type { kind } = branch[0].kind() {
                for name in type_names(kind) {
                    if !expected.contains(&name) {
                        expected.push(name);
                    }
                }
            }
        }
        out.push(Problem {
            rule: Rule::SchemaType,
            pointer: pointer.to_string(),
            message: format!(
                "{}: expected {}, found {}",
                display_path(pointer),
                join_or(&expected),
                describe(error.instance())
            ),
            at_key: false,
        });
        return;
    }
    let depth = |b: &Vec<ValidationError<'static>>| {
        b.iter()
            .map(|e| e.instance_path().as_str().matches('/').count())
            .max()
            .unwrap_or(0)
    };
    let best = branches
        .iter()
        .filter(|b| !b.is_empty())
        .max_by(|a, b| depth(a).cmp(&depth(b)).then(b.len().cmp(&a.len())));
    match best {
        Some(branch) => branch.iter().for_each(|e| collect(e, at, lookup, out)),
        None => out.push(Problem {
            rule: Rule::SchemaConstraint,
            pointer: pointer.to_string(),
            message: format!("{}: {error}", display_path(pointer)),
            at_key: false,
        }),
    }
}

fn unknown_field(parent: &str, key: &str, known: &[String]) -> Problem {
    let place = if parent.is_empty() {
        String::new()
    } else {
        format!(" in {}", display_path(parent))
    };
    let hint = closest(key, known)
        .map(|k| format!(" (did you mean `{k}`?)"))
        .unwrap_or_default();
    Problem {
        rule: Rule::SchemaUnknownField,
        pointer: format!("{parent}/{}", escape_pointer(key)),
        message: format!("unknown field `{key}`{place}{hint}"),
        at_key: true,
    }
}

fn known_properties(schema: &Value) -> Vec<String> {
    schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

/// The known field a typo most likely meant: case-insensitively equal, or within a small edit
/// distance relative to its length.
fn closest<'k>(key: &str, known: &'k [String]) -> Option<&'k str> {
    let lower = key.to_lowercase();
    let budget = (key.chars().count() / 4).clamp(1, 3);
    known
        .iter()
        .map(|k| (edit_distance(&lower, &k.to_lowercase()), k))
        .filter(|(d, _)| *d <= budget)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k.as_str())
}

/// Damerau-Levenshtein (optimal string alignment) distance: a swapped pair counts once.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

/// `/spec/volumes/0/iscsi` → `spec.volumes[0].iscsi`; keys that are not identifiers are quoted
/// (`metadata.annotations["app.kubernetes.io/name"]`).
pub(super) fn display_path(pointer: &str) -> String {
    if pointer.is_empty() {
        return "(document)".to_string();
    }
    let mut out = String::new();
    for raw in pointer.split('/').skip(1) {
        let segment = raw.replace("~1", "/").replace("~0", "~");
        if !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(&format!("[{segment}]"));
        } else if !segment.is_empty()
            && segment
                .chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '-' || c == '$')
        {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&segment);
        } else {
            out.push_str(&format!("[{}]", Value::String(segment)));
        }
    }
    out
}

pub(super) fn escape_pointer(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn type_names(kind: &TypeKind) -> Vec<String> {
    match kind {
        TypeKind::Single(t) => vec![t.to_string()],
        // `null` is allowed almost everywhere in the Kubernetes sets; naming it adds nothing.
        TypeKind::Multiple(set) => set
            .iter()
            .filter(|t| *t != JsonType::Null)
            .map(|t| t.to_string())
            .collect(),
    }
}

fn expected_types(kind: &TypeKind) -> String {
    join_or(&type_names(kind))
}

fn join_or(names: &[String]) -> String {
    match names {
        [] => "null".to_string(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// `string "3"`, `object`, `array`, `boolean true`.
/// Whether `pointer` is inside the `data` or `stringData` of a Secret.
fn is_secret_value(doc: &Document, pointer: &str) -> bool {
    doc.kind() == Some("Secret")
        && ["/data/", "/stringData/"]
            .iter()
            .any(|prefix| pointer.starts_with(prefix))
}

fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_string(),
        Value::Bool(_) => format!("boolean {value}"),
        Value::Number(_) => format!("number {value}"),
        Value::String(_) => format!("string {}", preview(value)),
        Value::Array(_) => "array".to_string(),
        Value::Object(_) => "object".to_string(),
    }
}

/// A short rendering of a value for messages.
fn preview(value: &Value) -> String {
    let text = match value {
        Value::Array(_) => "an array".to_string(),
        Value::Object(_) => "an object".to_string(),
        other => other.to_string(),
    };
    if text.chars().count() > 60 {
        let cut: String = text.chars().take(57).collect();
        format!("{cut}...")
    } else {
        text
    }
}

fn list_options(options: &Value) -> String {
    let Some(items) = options.as_array() else {
        return preview(options);
    };
    let shown: Vec<String> = items.iter().take(10).map(preview).collect();
    let more = items.len().saturating_sub(shown.len());
    if more > 0 {
        format!("{} (and {more} more)", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_read_like_yaml() {
        assert_eq!(
            display_path("/spec/template/spec/volumes/0/iscsi"),
            "spec.template.spec.volumes[0].iscsi"
        );
        assert_eq!(
            display_path("/metadata/annotations/app.kubernetes.io~1name"),
            r#"metadata.annotations["app.kubernetes.io/name"]"#
        );
        assert_eq!(display_path(""), "(document)");
    }

    #[test]
    fn typos_suggest_the_closest_field() {
        let known = vec![
            "protectionDomain".to_string(),
            "gateway".to_string(),
            "system".to_string(),
        ];
        assert_eq!(
            closest("protectionDoamin", &known),
            Some("protectionDomain")
        );
        assert_eq!(closest("Gateway", &known), Some("gateway"));
        assert_eq!(closest("replicas", &known), None);
    }

    #[test]
    fn unknown_field_points_at_the_key() {
        let p = unknown_field("/spec", "replcas", &["replicas".to_string()]);
        assert_eq!(p.pointer, "/spec/replcas");
        assert!(p.at_key);
        assert_eq!(
            p.message,
            "unknown field `replcas` in spec (did you mean `replicas`?)"
        );
    }
}
