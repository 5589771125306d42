//! The sticky PR comment: its markdown, and keeping exactly one of it per PR.
//!
//! The body carries no timestamps or run ids, so an unchanged verdict produces the same bytes and
//! no request at all.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::api::{Api, ApiError};
use crate::approval::ApprovalRow;
use crate::finding::{Finding, Rule, Severity, Verdict};

/// Found again by this hidden marker on a bot-authored comment.
pub const MARKER: &str = "<!-- stategate:pr -->";
/// GitHub's limit on a comment body, in characters.
pub const COMMENT_LIMIT: usize = 65_536;
/// Room the findings tables may take before the rest is left to the step summary.
const FINDINGS_ROOM: usize = 24_000;

/// Where links to files point: `{server}/{owner}/{repo}/blob/{head_sha}/`.
pub struct Links {
    pub blob_base: String,
}

/// Up-to-date status for the comment.
pub enum UpToDate {
    NotRequired,
    Current { base: String },
    Behind { by: u64, base: String },
    Unknown(String),
}

pub struct Parts<'a> {
    pub verdict: Verdict,
    pub findings: &'a [Finding],
    pub approvals: &'a [ApprovalRow],
    pub up_to_date: &'a UpToDate,
    pub links: &'a Links,
    pub notes: &'a [String],
}

/// Everything but the dry-run diff, with the findings tables cut at `findings_room` characters.
pub fn head_part(parts: &Parts<'_>, findings_room: usize) -> String {
    let mut out = String::new();
    out.push_str(MARKER);
    out.push('\n');
    let errors = parts
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    let warnings = parts
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Warning)
        .count();
    let headline = match parts.verdict {
        Verdict::Pass => "✅ **stategate: passes**",
        Verdict::Fail => "❌ **stategate: blocked**",
        Verdict::Undecided => "⚠️ **stategate: could not decide, so it blocks**",
    };
    let _ = writeln!(
        out,
        "{headline} ({errors} {}, {warnings} {})\n",
        plural(errors, "error"),
        plural(warnings, "warning")
    );
    let blocking: Vec<&Finding> = parts
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .collect();
    if !blocking.is_empty() {
        out.push_str(&table(&blocking, parts.links, findings_room));
    }
    let rest: Vec<&Finding> = parts
        .findings
        .iter()
        .filter(|f| f.severity != Severity::Error)
        .collect();
    if !rest.is_empty() {
        let _ = writeln!(
            out,
            "<details><summary>{} {} and notes</summary>\n",
            warnings,
            plural(warnings, "warning")
        );
        out.push_str(&table(&rest, parts.links, findings_room / 2));
        out.push_str("\n</details>\n\n");
    }
    if !parts.approvals.is_empty() {
        out.push_str("#### Approvals\n\n| Rule | Required | Approved by | Still needed from |\n|---|---|---|---|\n");
        for row in parts.approvals {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                escape(&row.rule),
                row.required,
                list(&row.approved_by),
                still_needed(row)
            );
        }
        out.push('\n');
    }
    match parts.up_to_date {
        UpToDate::NotRequired => {}
        UpToDate::Current { base } => {
            let _ = writeln!(out, "**Up to date** with `{}`.\n", escape(base));
        }
        UpToDate::Behind { by, base } => {
            let _ = writeln!(
                out,
                "**Not up to date:** {by} {} behind {}; update the branch.\n",
                plural(*by as usize, "commit"),
                escape(base)
            );
        }
        UpToDate::Unknown(why) => {
            let _ = writeln!(out, "**Up to date:** unknown ({}).\n", escape(why));
        }
    }
    out.push_str(&drift_section(parts.findings));
    out
}

/// Live drift and promotion, apart from the other findings: what reviewers most need to see is a
/// merge that lands on a hand-edited environment, or reverts the edit.
fn drift_section(findings: &[Finding]) -> String {
    let drift: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.rule.to_string().starts_with("drift/") && f.rule != Rule::DriftBehindBase)
        .collect();
    if drift.is_empty() {
        return String::new();
    }
    let mut out = String::from("#### Drift\n\n");
    for f in drift {
        let what = match f.severity {
            Severity::Error => "blocks",
            Severity::Warning => "warning",
            _ => "note",
        };
        let mut parts = f.message.split("; ");
        let _ = writeln!(
            out,
            "- **{what}** `{}`: {}",
            f.rule,
            escape(parts.next().unwrap_or_default())
        );
        for detail in parts {
            let _ = writeln!(out, "  - {}", escape(detail));
        }
    }
    out.push('\n');
    out
}

/// The comment: the head part, then the dry-run diff within what is left of the limit.
pub fn body(parts: &Parts<'_>, diff_markdown: &dyn Fn(usize) -> String) -> String {
    let mut out = head_part(parts, FINDINGS_ROOM);
    out.push_str("#### Dry-run diff\n\n");
    let room = COMMENT_LIMIT.saturating_sub(out.chars().count() + 16);
    out.push_str(&diff_markdown(room));
    out
}

fn still_needed(row: &ApprovalRow) -> String {
    if let Some(why) = &row.undecided {
        return format!("undecided: {}", escape(why));
    }
    let mut cells = Vec::new();
    if !row.changes_requested_by.is_empty() {
        cells.push(format!(
            "changes requested by {}",
            list(&row.changes_requested_by)
        ));
    }
    if row.missing() > 0 {
        cells.push(format!(
            "{} more from {}",
            row.missing(),
            list(&row.still_needed_from)
        ));
    }
    if !row.stale.is_empty() {
        cells.push(format!("stale (older commit): {}", list(&row.stale)));
    }
    if cells.is_empty() {
        "✅".to_owned()
    } else {
        cells.join("; ")
    }
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "—".to_owned()
    } else {
        names
            .iter()
            .map(|n| escape(n))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn table(findings: &[&Finding], links: &Links, room: usize) -> String {
    let mut out = String::from("| Rule | Where | Message |\n|---|---|---|\n");
    for (i, f) in findings.iter().enumerate() {
        let row = format!(
            "| `{}` | {} | {} |\n",
            f.rule,
            location(f, links),
            escape(&f.message)
        );
        if out.chars().count() + row.chars().count() > room {
            let _ = writeln!(
                out,
                "\n…and {} more, listed in the job summary.",
                findings.len() - i
            );
            break;
        }
        out.push_str(&row);
    }
    out.push('\n');
    out
}

fn location(f: &Finding, links: &Links) -> String {
    let Some(loc) = &f.location else {
        return String::new();
    };
    let text = escape(&loc.to_string());
    if !is_repo_path(&loc.file) {
        return text;
    }
    let anchor = loc.line.map(|l| format!("#L{l}")).unwrap_or_default();
    format!(
        "[{text}]({}{}{anchor})",
        links.blob_base,
        url_path(&loc.file)
    )
}

/// A file in the repository, not a pseudo-path like `app (rendered by kustomize: …)`.
pub fn is_repo_path(file: &str) -> bool {
    !file.is_empty() && !file.contains(" (") && !file.starts_with('/')
}

fn url_path(path: &str) -> String {
    path.split('/')
        .map(|seg| {
            seg.bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                        (b as char).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Markdown-neutral text for a table cell: no pipes, no HTML, no emphasis, one line.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '|' | '\\' | '*' | '_' | '`' | '[' | ']' | '<' | '>' | '#' | '~' | '!' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        word.to_owned()
    } else {
        format!("{word}s")
    }
}

/// Post or update the one comment; returns its URL. Older duplicates are minimized as outdated.
pub async fn upsert(api: &Api, repo: &str, number: u64, body: &str) -> Result<String, ApiError> {
    let comments = api
        .get_all(&format!("/repos/{repo}/issues/{number}/comments"))
        .await?;
    let ours: Vec<&Value> = comments.iter().filter(|c| is_ours(c)).collect();
    let Some((newest, older)) = ours.split_last() else {
        let created = api
            .post(
                &format!("/repos/{repo}/issues/{number}/comments"),
                &json!({ "body": body }),
            )
            .await?;
        return Ok(url_of(&created));
    };
    let mut url = url_of(newest);
    if newest.get("body").and_then(Value::as_str) != Some(body) {
        let id = newest.get("id").and_then(Value::as_u64).unwrap_or_default();
        let updated = api
            .patch(
                &format!("/repos/{repo}/issues/comments/{id}"),
                &json!({ "body": body }),
            )
            .await?;
        url = url_of(&updated);
    }
    for old in older {
        let Some(node) = old.get("node_id").and_then(Value::as_str) else {
            continue;
        };
        api.graphql(
            "mutation($id: ID!) { minimizeComment(input: {subjectId: $id, classifier: OUTDATED}) { minimizedComment { isMinimized } } }",
            json!({ "id": node }),
        )
        .await?;
    }
    Ok(url)
}

fn is_ours(comment: &Value) -> bool {
    let bot = comment.pointer("/user/type").and_then(Value::as_str) == Some("Bot");
    let marked = comment
        .get("body")
        .and_then(Value::as_str)
        .is_some_and(|b| b.starts_with(MARKER));
    bot && marked
}

fn url_of(comment: &Value) -> String {
    comment
        .get("html_url")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_cannot_break_out_of_its_table_cell() {
        let cell = escape("a | b <img src=x> **bold** [link](http://x)\nnext");
        assert_eq!(
            cell,
            "a \\| b \\<img src=x\\> \\*\\*bold\\*\\* \\[link\\](http://x) next"
        );
    }

    #[test]
    fn links_point_at_the_head_blob_and_line_and_skip_pseudo_paths() {
        let links = Links {
            blob_base: "https://github.com/o/r/blob/abc/".into(),
        };
        let at = |file: &str| {
            Finding::error(crate::finding::Rule::PolicyDeny, "m").at(crate::finding::Location {
                line: Some(7),
                ..crate::finding::Location::file(file)
            })
        };
        assert_eq!(
            location(&at("apps/a b.yaml"), &links),
            "[apps/a b.yaml:7](https://github.com/o/r/blob/abc/apps/a%20b.yaml#L7)"
        );
        assert_eq!(
            location(&at("app (rendered by kustomize: x)"), &links),
            "app (rendered by kustomize: x):7"
        );
    }
}
