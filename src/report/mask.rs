//! Keeping Secret values out of every output.
//!
//! What is secret is decided on the parsed data, by path, never by the look of the text: the values
//! under `data` and `stringData` of every object whose `kind` is `Secret` wherever it sits (top
//! level, `List` items, the items of a `SecretList`), and the
//! `kubectl.kubernetes.io/last-applied-configuration` annotation of such an object (it embeds the
//! whole Secret as JSON). Anchors, tags (`kind: !!str Secret`), quoted keys and flow maps are
//! resolved by the parser first, so they change nothing.
//!
//! Two uses: [`Secrets`] collects the values so that a report can redact them from every message
//! (a policy may quote `input.data.password`); [`mask_source`] hides them in the YAML a human
//! snippet shows, by their source positions, keeping every line where it was.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::ops::Range;
use std::sync::OnceLock;

use aho_corasick::AhoCorasick;

use serde_json::Value;

use crate::load::{LoadOptions, PosTree, SourceFile, load_file};

/// The value masked text shows instead of a secret.
const MASK: &str = "***";

/// The annotation `kubectl apply` writes: the whole object as JSON, Secret values included.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Values shorter than this are not redacted from free text: replacing every `1` or `no` of a
/// report would destroy it. Producers must not quote them either (schema findings on Secret data
/// never quote the value); snippets mask them by position whatever their length.
const MIN_REDACTED: usize = 3;

/// How many of a value's first bytes [`Secrets`] looks for; a value found by them is then looked
/// for whole.
const MATCHED_PREFIX: usize = 8;

/// Where a secret sits in a document: a path of keys and indexes.
type SecretPath = Vec<String>;

/// The paths of every secret value in `value` (see the module docs).
pub fn secret_paths(value: &Value) -> Vec<SecretPath> {
    let mut out = Vec::new();
    walk(value, &mut Vec::new(), false, &mut out);
    out
}

/// One step of the path [`walk`] is at, borrowed from the document: the walk visits every node of
/// every document a check holds or masks, and owned steps were an allocation per node (1.5% of
/// the corpus' `check --all`) for the few paths that lead to a secret.
#[derive(Clone, Copy)]
enum Step<'v> {
    Key(&'v str),
    Index(usize),
}

fn found(path: &[Step], then: &[&str]) -> SecretPath {
    let steps = path.iter().map(|step| match step {
        Step::Key(key) => (*key).to_owned(),
        Step::Index(i) => i.to_string(),
    });
    steps.chain(then.iter().map(|s| (*s).to_owned())).collect()
}

fn walk<'v>(value: &'v Value, path: &mut Vec<Step<'v>>, secret: bool, out: &mut Vec<SecretPath>) {
    match value {
        Value::Object(map) => {
            let kind = map.get("kind").and_then(Value::as_str);
            let secret = secret || kind == Some("Secret");
            // `SecretList` items are Secrets even when they do not say so themselves.
            let items_are_secrets = kind == Some("SecretList");
            for (key, child) in map {
                path.push(Step::Key(key));
                if secret && (key == "data" || key == "stringData") {
                    match child {
                        Value::Object(entries) => {
                            out.extend(entries.keys().map(|entry| found(path, &[entry])));
                        }
                        _ => out.push(found(path, &[])),
                    }
                } else if secret && key == "metadata" {
                    let annotations = child.get("annotations");
                    if annotations.and_then(|a| a.get(LAST_APPLIED)).is_some() {
                        out.push(found(path, &["annotations", LAST_APPLIED]));
                    }
                    walk(child, path, false, out);
                } else {
                    walk(child, path, items_are_secrets && key == "items", out);
                }
                path.pop();
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                path.push(Step::Index(i));
                walk(item, path, secret, out);
                path.pop();
            }
        }
        _ => {}
    }
}

fn at<'v>(value: &'v Value, path: &[String]) -> Option<&'v Value> {
    path.iter().try_fold(value, |node, segment| match node {
        Value::Object(map) => map.get(segment),
        Value::Array(items) => items.get(segment.parse::<usize>().ok()?),
        _ => None,
    })
}

/// The secret values of a set of documents, as text, for redaction from free text.
#[derive(Debug, Default, Clone)]
pub struct Secrets {
    values: BTreeSet<String>,
    /// Which values a text may hold, found in one pass over it by their first bytes: asking each
    /// value in turn was most of a report's redaction (the corpus' 734 findings against each of
    /// its 78 values). Built on the first redaction, once every value is known. On prefixes: over
    /// whole values (35 KB of them in the corpus) the automaton took 1.5 MB, above the run's peak.
    matcher: OnceLock<Option<AhoCorasick>>,
}

impl Secrets {
    /// Every secret value of `value`: the scalars under a Secret's data (and their base64
    /// decoding: a policy may print what it decoded), the last-applied annotation, and the secret
    /// values of the object that annotation embeds.
    pub fn collect(&mut self, value: &Value) {
        for path in secret_paths(value) {
            let Some(found) = at(value, &path) else {
                continue;
            };
            let is_data = path.iter().rev().nth(1).is_some_and(|k| k == "data");
            self.add_scalars(found, is_data);
            if path.last().is_some_and(|k| k == LAST_APPLIED)
                && let Some(embedded) = found
                    .as_str()
                    .and_then(|text| serde_json::from_str::<Value>(text).ok())
            {
                self.collect(&embedded);
            }
        }
    }

    fn add_scalars(&mut self, value: &Value, base64: bool) {
        match value {
            Value::Object(map) => map.values().for_each(|v| self.add_scalars(v, base64)),
            Value::Array(items) => items.iter().for_each(|v| self.add_scalars(v, base64)),
            Value::Null => {}
            Value::String(text) => {
                self.add(text);
                if base64
                    && let Ok(bytes) = data_encoding::BASE64.decode(text.trim().as_bytes())
                    && let Ok(decoded) = String::from_utf8(bytes)
                {
                    self.add(&decoded);
                }
            }
            other => self.add(&other.to_string()),
        }
    }

    /// A value known to be secret by other means (a Flux variable read from a Secret).
    pub fn insert(&mut self, text: &str) {
        self.add(text);
    }

    fn add(&mut self, text: &str) {
        for candidate in [text, text.trim()] {
            if candidate.chars().count() >= MIN_REDACTED && self.values.insert(candidate.to_owned())
            {
                self.matcher = OnceLock::new();
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// `text` with every secret value replaced by `***`, longest values first (a value that holds
    /// another must go as a whole).
    pub fn redact<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let mut found: Vec<&String> = self.found_in(text);
        if found.is_empty() {
            return Cow::Borrowed(text);
        }
        found.sort_by_key(|v| std::cmp::Reverse(v.len()));
        let mut out = text.to_owned();
        for value in found {
            out = out.replace(value.as_str(), MASK);
        }
        Cow::Owned(out)
    }

    /// The values that occur in `text`, each once.
    fn found_in(&self, text: &str) -> Vec<&String> {
        let matcher = self.matcher.get_or_init(|| {
            let prefixes = self
                .values
                .iter()
                .map(|v| &v.as_bytes()[..v.len().min(MATCHED_PREFIX)]);
            AhoCorasick::builder()
                .kind(Some(aho_corasick::AhoCorasickKind::ContiguousNFA))
                .build(prefixes)
                .ok()
        });
        let occurs = |v: &&String| text.contains(v.as_str());
        let Some(matcher) = matcher else {
            // Too many values for the automaton's limits: ask each one.
            return self.values.iter().filter(occurs).collect();
        };
        let mut ids: Vec<usize> = matcher
            .find_overlapping_iter(text)
            .map(|m| m.pattern().as_usize())
            .collect();
        if ids.is_empty() {
            return Vec::new();
        }
        ids.sort_unstable();
        ids.dedup();
        // Pattern ids are positions in the set's order.
        let mut ids = ids.into_iter().peekable();
        self.values
            .iter()
            .enumerate()
            .filter(|(i, _)| ids.next_if_eq(i).is_some())
            .map(|(_, v)| v)
            .filter(occurs)
            .collect()
    }

    /// Redact a finding's message, help and metadata.
    pub fn redact_finding(&self, finding: &mut crate::finding::Finding) {
        if self.is_empty() {
            return;
        }
        if let Cow::Owned(message) = self.redact(&finding.message) {
            finding.message = message;
        }
        if let Some(help) = &mut finding.help
            && let Cow::Owned(redacted) = self.redact(help)
        {
            *help = redacted;
        }
        for value in finding.metadata.values_mut() {
            self.redact_value(value);
        }
    }

    /// Redact every string inside a JSON value (finding metadata).
    pub fn redact_value(&self, value: &mut Value) {
        match value {
            Value::String(text) => {
                if let Cow::Owned(redacted) = self.redact(text) {
                    *text = redacted;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.redact_value(v)),
            Value::Object(map) => map.values_mut().for_each(|v| self.redact_value(v)),
            _ => {}
        }
    }
}

/// The text of `source` as a snippet may show it: every secret value replaced by `***` by its
/// source position (line count and the text outside secrets unchanged), and every remaining
/// occurrence of a secret value too (YAML can say a value twice). `None` when nothing of the file
/// may be shown: it does not parse, so what is secret in it cannot be known, and it may hold one.
pub fn mask_source(source: &SourceFile) -> Option<String> {
    let loaded = load_file(
        &source.path,
        source.text.as_bytes(),
        &LoadOptions::default(),
    );
    let broken = loaded
        .findings
        .iter()
        .any(|f| f.severity == crate::finding::Severity::Error);
    if broken {
        return if might_hold_a_secret(&source.text) {
            None
        } else {
            Some(source.text.clone())
        };
    }
    let text = &source.text;
    let chars = CharIndex::new(text);
    let mut ranges: Vec<Range<usize>> = Vec::new();
    let mut secrets = Secrets::default();
    for doc in &loaded.documents {
        let paths = secret_paths(&doc.value);
        if paths.is_empty() {
            continue;
        }
        secrets.collect(&doc.value);
        let Some(tree) = doc.source.positions_of(doc.index) else {
            // Secrets without positions: nothing of the file is shown.
            return None;
        };
        for path in &paths {
            match node_at(tree, path) {
                Some(node) => {
                    let span = node.span();
                    ranges.push(chars.byte(span.start as usize)..chars.byte(span.end as usize));
                }
                None => return None,
            }
        }
    }
    for value in &secrets.values {
        ranges.extend(
            text.match_indices(value.as_str())
                .map(|(i, v)| i..i + v.len()),
        );
    }
    ranges.extend(sops_ciphertexts(text));
    if ranges.is_empty() {
        return Some(text.clone());
    }
    Some(mask_ranges(text, ranges))
}

/// SOPS ciphertexts (`ENC[AES256_GCM,data:…]`): opaque, and masked like Secret values wherever
/// they are.
fn sops_ciphertexts(text: &str) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(start) = text[from..].find("ENC[").map(|i| from + i) {
        let Some(end) = text[start..].find([']', '\n']).map(|i| start + i + 1) else {
            break;
        };
        out.push(start..end);
        from = end;
    }
    out
}

/// For a file that does not parse: could it hold a Secret? Any mention of one, and any escape or
/// tag that could spell one without saying it, counts.
fn might_hold_a_secret(text: &str) -> bool {
    text.to_ascii_lowercase().contains("secret") || text.contains('\\') || text.contains('!')
}

/// The position node at a path of keys and indexes (the last of duplicated keys, as the value).
fn node_at<'t>(tree: &'t PosTree, path: &[String]) -> Option<&'t PosTree> {
    path.iter().try_fold(tree, |node, segment| match node {
        PosTree::Leaf(_) => None,
        PosTree::Seq(_, items) => items.get(segment.parse::<usize>().ok()?),
        PosTree::Map(_, entries) => entries
            .iter()
            .rev()
            .find(|(key, _, _)| key == segment)
            .map(|(_, _, child)| child),
    })
}

/// Character index → byte offset (the parser counts characters).
struct CharIndex<'t> {
    text: &'t str,
    ascii: bool,
}

impl<'t> CharIndex<'t> {
    fn new(text: &'t str) -> Self {
        CharIndex {
            text,
            ascii: text.is_ascii(),
        }
    }

    fn byte(&self, char_index: usize) -> usize {
        if self.ascii {
            return char_index.min(self.text.len());
        }
        self.text
            .char_indices()
            .nth(char_index)
            .map_or(self.text.len(), |(i, _)| i)
    }
}

/// Replace each range's part of each line it covers with `***`, keeping the line breaks.
fn mask_ranges(text: &str, mut ranges: Vec<Range<usize>>) -> String {
    ranges.sort_by_key(|r| (r.start, r.end));
    let mut merged: Vec<Range<usize>> = Vec::new();
    for range in ranges.into_iter().filter(|r| r.start < r.end) {
        match merged.last_mut() {
            Some(last) if range.start <= last.end => last.end = last.end.max(range.end),
            _ => merged.push(range),
        }
    }
    let mut out = String::with_capacity(text.len());
    let mut line_start = 0;
    for line in text.split_inclusive('\n') {
        let content_end = line_start + line.trim_end_matches(['\n', '\r']).len();
        let mut cursor = line_start;
        for range in &merged {
            let start = range.start.max(line_start);
            let end = range.end.min(content_end);
            if start >= end || start < cursor {
                continue;
            }
            out.push_str(&text[cursor..start]);
            out.push_str(MASK);
            cursor = end;
        }
        out.push_str(&text[cursor..line_start + line.len()]);
        line_start += line.len();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(text: &str) -> String {
        mask_source(&SourceFile::new("s.yaml", text)).expect("shown")
    }

    #[test]
    fn masks_data_and_string_data_values_of_secrets_only() {
        let text = "\
apiVersion: v1
kind: ConfigMap
data:
  password: visible-in-configmap
---
apiVersion: v1
kind: Secret
metadata:
  name: db
data:
  password: c2VjcmV0
  \"quoted.key\": dG9rZW4=
stringData:
  cert: |
    -----BEGIN CERTIFICATE-----
    MIIB
  url: postgres://u:p@db
type: Opaque
";
        let out = masked(text);
        assert!(out.contains("password: visible-in-configmap"));
        for secret in ["c2VjcmV0", "dG9rZW4=", "MIIB", "postgres://", "BEGIN"] {
            assert!(!out.contains(secret), "{secret}: {out}");
        }
        assert!(out.contains("  password: ***\n"), "{out}");
        assert!(out.contains("  \"quoted.key\": ***\n"), "{out}");
        assert!(out.contains("type: Opaque\n"));
        assert_eq!(out.lines().count(), text.lines().count());
    }

    #[test]
    fn masks_by_data_path_whatever_the_spelling() {
        for text in [
            "kind: !!str Secret\ndata: {password: aHVudGVyMg==}\n",
            "\"kind\": \"Secret\"\n\"data\":\n  \"password\": aHVudGVyMg==\n",
            "x: &pw aHVudGVyMg==\nkind: Secret\ndata:\n  password: *pw\n",
            "kind: List\nitems:\n- kind: Secret\n  data: {password: aHVudGVyMg==}\n",
            "kind: SecretList\nitems:\n- data: {password: aHVudGVyMg==}\n",
            "{\"kind\": \"Secret\", \"data\": {\"password\": \"aHVudGVyMg==\"}}",
        ] {
            let out = masked(text);
            assert!(!out.contains("aHVudGVyMg=="), "{text}\n→ {out}");
            assert_eq!(out.lines().count(), text.lines().count());
        }
    }

    #[test]
    fn the_last_applied_annotation_of_a_secret_is_masked() {
        let text = "kind: Secret\nmetadata:\n  name: db\n  annotations:\n    kubectl.kubernetes.io/last-applied-configuration: '{\"kind\":\"Secret\",\"data\":{\"password\":\"aHVudGVyMg==\"}}'\ndata:\n  password: aHVudGVyMg==\n";
        let out = masked(text);
        assert!(!out.contains("aHVudGVyMg=="), "{out}");
        let mut secrets = Secrets::default();
        let value: Value = serde_json::json!({"kind": "Secret", "metadata": {"annotations": {LAST_APPLIED: "{\"kind\":\"Secret\",\"stringData\":{\"token\":\"hunter2\"}}"}}});
        secrets.collect(&value);
        assert_eq!(secrets.redact("token hunter2 leaked"), "token *** leaked");
    }

    #[test]
    fn redaction_covers_base64_decodings_and_leaves_other_text() {
        let mut secrets = Secrets::default();
        secrets.collect(&serde_json::json!({"kind": "Secret", "data": {"p": "aHVudGVyMg=="}}));
        assert_eq!(
            secrets.redact("saw aHVudGVyMg== = hunter2"),
            "saw *** = ***"
        );
        assert_eq!(secrets.redact("nothing here"), "nothing here");
    }

    #[test]
    fn every_value_a_text_holds_is_redacted_nested_overlapping_or_added_late() {
        let mut secrets = Secrets::default();
        for value in ["hunter2", "hunter2-admin", "admin-token", "zzz"] {
            secrets.insert(value);
        }
        // The longer value goes whole; the one it overlaps is masked where it still stands.
        assert_eq!(
            secrets.redact("a hunter2-admin-token b"),
            "a ***-token b",
            "longest first, as before the matcher"
        );
        assert_eq!(
            secrets.redact("x admin-token y hunter2 zzz"),
            "x *** y *** ***"
        );
        // A value added after the first redaction is found too.
        secrets.insert("late-value");
        assert_eq!(secrets.redact("a late-value b hunter2"), "a *** b ***");
        assert_eq!(secrets.redact("nothing secret"), "nothing secret");
    }

    #[test]
    fn unparseable_files_that_may_hold_a_secret_show_nothing() {
        let broken = "kind: Secret\ndata:\n  password: [unclosed\n";
        assert!(mask_source(&SourceFile::new("s.yaml", broken)).is_none());
        let plain = "kind: ConfigMap\ndata: [unclosed\n";
        assert!(mask_source(&SourceFile::new("c.yaml", plain)).is_some());
    }

    #[test]
    fn leaves_text_without_secrets_unchanged() {
        let text = "kind: Deployment\nspec:\n  data: x\n---\nkind: SecretStore\ndata:\n  a: b\n";
        assert_eq!(masked(text), text);
    }
}
