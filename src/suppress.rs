//! Inline suppressions: `# stategate:ignore <rule> -- <reason>` on the line of a finding, on the
//! line before it, or at the top of a document (before its first key) for the whole document.
//! `<rule>` is a rule code, a policy rule (`package.rule`) or a policy result's `id`. A reason is
//! required, and a suppression that matches nothing is a warning, like an unused lint allow.

use serde::Serialize;

use crate::finding::{Finding, Rule};

const MARKER: &str = "stategate:ignore";

/// Why a finding does not count, as every format shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Suppression {
    pub reason: String,
    /// The comment is new in this change ("suppressed by this change"), not at the base.
    pub by_change: bool,
}

/// One `# stategate:ignore` comment of a file.
#[derive(Debug, Clone)]
pub struct Comment {
    pub line: u32,
    pub rule: String,
    pub reason: String,
    /// The lines it covers (1-based, inclusive).
    pub covers: (u32, u32),
    pub text: String,
}

/// Whether a file's bytes may hold suppression comments: a file without the marker has none, and
/// need not be read again for them.
pub fn may_have_comments(bytes: &[u8]) -> bool {
    memchr::memmem::find(bytes, MARKER.as_bytes()).is_some()
}

/// The suppression comments of a file, and findings about malformed ones.
pub fn comments(path: &str, text: &str) -> (Vec<Comment>, Vec<Finding>) {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    if !text.contains(MARKER) {
        return (out, problems);
    }
    let lines: Vec<&str> = text.lines().collect();
    // A document starts at line 1 and after each `---`; its header is the comments before its
    // first content line.
    let mut doc_start = 0usize;
    let mut in_header = true;
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("---") {
            doc_start = i + 1;
            in_header = true;
            continue;
        }
        let is_comment = trimmed.starts_with('#');
        if !is_comment && !trimmed.is_empty() {
            in_header = false;
        }
        let Some(at) = line.find(MARKER) else {
            continue;
        };
        if !line[..at].trim_end().ends_with('#') {
            continue;
        }
        let number = (i + 1) as u32;
        let rest = line[at + MARKER.len()..].trim();
        let (rule, reason) = match rest.split_once("--") {
            Some((rule, reason)) => (rule.trim(), reason.trim()),
            None => (rest, ""),
        };
        if rule.is_empty() || reason.is_empty() || rule.contains(char::is_whitespace) {
            problems.push(
                Finding::warning(
                    Rule::SuppressionInvalid,
                    "a suppression needs one rule and a reason: `# stategate:ignore <rule> -- <reason>`",
                )
                .at(crate::finding::Location {
                    file: path.to_owned(),
                    line: Some(number),
                    ..Default::default()
                }),
            );
            continue;
        }
        let covers = if is_comment && in_header {
            let end = lines[i..]
                .iter()
                .position(|l| l.trim_start().starts_with("---"))
                .map_or(lines.len(), |n| i + n);
            ((doc_start + 1) as u32, end as u32)
        } else if is_comment {
            (number, number + 1)
        } else {
            (number, number)
        };
        out.push(Comment {
            line: number,
            rule: rule.to_owned(),
            reason: reason.to_owned(),
            covers,
            text: line.trim().to_owned(),
        });
    }
    (out, problems)
}

/// The names a suppression or a `rules:` entry may use for a finding, most specific first: its
/// policy result's `id`, its policy rule (`package.rule`), its rule code.
pub fn names_of(finding: &Finding) -> Vec<String> {
    let meta = |key: &str| finding.metadata.get(key).and_then(|v| v.as_str());
    let policy_rule = meta("package")
        .zip(meta("rule"))
        .map(|(p, r)| format!("{p}.{r}"));
    [
        meta("id").map(str::to_owned),
        policy_rule,
        Some(finding.rule.code().to_owned()),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Whether `comment` covers `finding` (same file checked by the caller).
pub fn covers(comment: &Comment, finding: &Finding) -> bool {
    let Some(line) = finding.location.as_ref().and_then(|l| l.line) else {
        return false;
    };
    (comment.covers.0..=comment.covers.1).contains(&line)
        && names_of(finding).contains(&comment.rule)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_line_before_and_document_forms() {
        let text = "# stategate:ignore a/b -- whole doc\nkind: X\nx: 1 # stategate:ignore c/d -- here\n# stategate:ignore e/f -- next\ny: 2\n---\n# stategate:ignore g/h -- second doc\nkind: Y\n";
        let (comments, problems) = comments("f.yaml", text);
        assert!(problems.is_empty());
        let covers: Vec<(&str, (u32, u32))> = comments
            .iter()
            .map(|c| (c.rule.as_str(), c.covers))
            .collect();
        assert_eq!(
            covers,
            vec![
                ("a/b", (1, 5)),
                ("c/d", (3, 3)),
                ("e/f", (4, 5)),
                ("g/h", (7, 8))
            ]
        );
    }

    #[test]
    fn a_reason_is_required() {
        let (comments, problems) = comments("f.yaml", "x: 1 # stategate:ignore a/b\n");
        assert!(comments.is_empty());
        assert_eq!(problems.len(), 1);
    }
}
