//! The three faces of a [`DiffResult`]: `human` (a terminal, coloured on request), `json` (per
//! object status, sources and changed field paths) and `markdown` (one sticky PR comment that fits
//! GitHub's 65,536-character limit). Formatting only: nothing here decides an exit code.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{Value, json};

use super::{DiffResult, LiveSide, LiveStatus, LiveView, ObjectDiff, Source, Status};
use crate::object::ObjectId;
use crate::report::escape::{fence_for, markdown as md, markdown_code, multi_line, one_line};

/// Output formats of `stategate diff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Human,
    Markdown,
    Json,
}

/// The hidden line the PR front door looks for to update its comment in place.
pub const MARKER: &str = "<!-- stategate:diff -->";
/// GitHub's limit on an issue or PR comment body, in characters.
pub const COMMENT_LIMIT: usize = 65_536;

pub fn render(result: &DiffResult, format: Format, color: bool) -> String {
    match format {
        Format::Human => human(result, color),
        Format::Json => json(result),
        Format::Markdown => markdown(result, &MarkdownOptions::default()),
    }
}

/// `Kind namespace/name`, or the document's `path#index`.
pub fn label(id: &ObjectId) -> String {
    match id {
        ObjectId::Kube {
            kind,
            namespace,
            name,
            ..
        } => match namespace {
            Some(ns) => format!("{kind} {ns}/{name}"),
            None => format!("{kind} {name}"),
        },
        ObjectId::Document { path, index } => format!("{path}#{index}"),
    }
}

fn source_text(o: &ObjectDiff) -> String {
    let show = |s: &Source| {
        let renderer = s.rendered_by.map(|r| match r {
            crate::render::Renderer::Kustomize => "kustomize",
            crate::render::Renderer::Helm => "helm",
        });
        match (renderer, &s.origin) {
            (Some(r), Some(origin)) => format!("{origin} via {r} {}", s.path),
            (Some(r), None) => format!("{} ({r})", s.path),
            (None, _) => s.path.clone(),
        }
    };
    match (&o.base, &o.head) {
        (Some(b), Some(h)) if b != h => format!("{} → {}", show(b), show(h)),
        (_, Some(s)) | (Some(s), None) => show(s),
        (None, None) => String::new(),
    }
}

/// A field value in one line: strings bare, other values as JSON, long ones cut at 120 characters.
/// (Secret values reach here masked.)
pub fn value_text(value: Option<&Value>) -> String {
    match value {
        None => "(absent)".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => {
            let text = v.to_string();
            if text.chars().count() > 120 {
                format!("{}…", text.chars().take(117).collect::<String>())
            } else {
                text
            }
        }
    }
}

/// `prod: snapshot live/prod/ in … (snapshot taken 5 min ago)`.
fn live_side_text(side: &LiveSide) -> String {
    let mut text = format!("{}: {}", side.environment, side.source);
    if !side.notes.is_empty() {
        let _ = write!(text, " ({})", side.notes.join("; "));
    }
    text
}

/// `live → head (prod): changed`, and what the status means where it is not obvious.
fn live_headline(view: &LiveView) -> String {
    let meaning = match view.status {
        LiveStatus::Added => " (not live: applying head creates it)",
        LiveStatus::Removed => " (live: applying head deletes it)",
        LiveStatus::Unchanged => " (live already matches head)",
        _ => "",
    };
    format!(
        "live → head ({}): {}{meaning}",
        view.environment,
        view.status.as_str()
    )
}

fn title(o: &ObjectDiff) -> String {
    match &o.previous_id {
        Some(prev) => format!("{} → {}", label(prev), label(&o.id)),
        None => label(&o.id),
    }
}

fn shown(result: &DiffResult) -> impl Iterator<Item = &ObjectDiff> {
    result
        .objects
        .iter()
        .filter(|o| o.status != Status::Unchanged)
}

fn totals(result: &DiffResult) -> String {
    let n = |s| result.count(s);
    format!(
        "{} added, {} changed, {} removed, {} moved, {} unchanged",
        n(Status::Added),
        n(Status::Changed),
        n(Status::Removed),
        n(Status::Moved),
        n(Status::Unchanged)
    )
}

// ---------------------------------------------------------------------------------------- human

fn human(result: &DiffResult, color: bool) -> String {
    let paint = |code: &str, text: &str| {
        if color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    };
    let mut out = format!(
        "stategate diff: {} → {}\n",
        one_line(&result.base),
        one_line(&result.head)
    );
    for side in &result.live {
        let _ = writeln!(out, "live {}", one_line(&live_side_text(side)));
    }
    for o in shown(result) {
        let status = match o.status {
            Status::Added => paint("32", "added"),
            Status::Removed => paint("31", "removed"),
            _ => paint("33", o.status.as_str()),
        };
        let _ = writeln!(
            out,
            "\n{status} {} ({})",
            paint("1", &one_line(&title(o))),
            one_line(&source_text(o))
        );
        if !o.changed_fields.is_empty() {
            let fields: Vec<_> = o.changed_fields.iter().map(|f| one_line(f)).collect();
            let _ = writeln!(out, "  fields: {}", fields.join(", "));
        }
        if o.diff.is_empty() {
            let _ = writeln!(out, "  same content, other file");
        }
        for line in o.diff.lines() {
            let line = &*one_line(line);
            let painted = match line.chars().next() {
                Some('+') => paint("32", line),
                Some('-') => paint("31", line),
                Some('@') => paint("36", line),
                _ => line.to_string(),
            };
            let _ = writeln!(out, "  {painted}");
        }
        if let Some(view) = &o.live {
            let _ = writeln!(out, "  {}", paint("35", &one_line(&live_headline(view))));
            for f in &view.fields {
                let _ = writeln!(
                    out,
                    "    {}: {} → {}",
                    one_line(&f.path),
                    one_line(&value_text(f.live.as_ref())),
                    one_line(&value_text(f.head.as_ref()))
                );
            }
        }
    }
    for f in &result.findings {
        let message = multi_line(&f.message, "\n  │ ");
        let _ = writeln!(out, "\n{}[{}]: {message}", f.severity, f.rule);
    }
    let _ = writeln!(out, "\n{}", totals(result));
    out
}

// ----------------------------------------------------------------------------------------- json

fn json(result: &DiffResult) -> String {
    let objects: Vec<&ObjectDiff> = shown(result).collect();
    let value = json!({
        "base": result.base,
        "head": result.head,
        "summary": {
            "added": result.count(Status::Added),
            "changed": result.count(Status::Changed),
            "removed": result.count(Status::Removed),
            "moved": result.count(Status::Moved),
            "unchanged": result.count(Status::Unchanged),
        },
        "objects": objects,
        "findings": result.findings,
    });
    let mut value = value;
    if !result.live.is_empty() {
        value["live"] = json!(result.live);
    }
    crate::report::escape::json_pretty(&value).unwrap_or_default() + "\n"
}

// ------------------------------------------------------------------------------------- markdown

#[derive(Debug, Clone)]
pub struct MarkdownOptions {
    /// Largest comment, in characters.
    pub limit: usize,
    /// Where a reader finds what did not fit.
    pub full_diff_at: String,
}

impl Default for MarkdownOptions {
    fn default() -> Self {
        MarkdownOptions {
            limit: COMMENT_LIMIT,
            full_diff_at: "the workflow run's job summary and the `stategate-diff` artifact".into(),
        }
    }
}

/// How many deleted objects a protected-environment warning names before it says "and N more".
const WARN_NAMES: usize = 20;

pub fn markdown(result: &DiffResult, options: &MarkdownOptions) -> String {
    let mut out = summary(result);
    let objects: Vec<&ObjectDiff> = shown(result).collect();
    let mut left_out = 0;
    for (i, o) in objects.iter().enumerate() {
        let section = details(o);
        // Room is kept for the trailer that says what was left out.
        let trailer_room = if i + 1 < objects.len() { 400 } else { 0 };
        if left_out == 0 && chars(&out) + chars(&section) + trailer_room <= options.limit {
            out.push_str(&section);
        } else {
            left_out += 1;
        }
    }
    if left_out > 0 {
        let _ = writeln!(
            out,
            "\n**{left_out} of {} objects are not shown** to stay within GitHub's comment limit; \
             the full diff is in {}.",
            objects.len(),
            options.full_diff_at
        );
    }
    out
}

fn chars(s: &str) -> usize {
    s.chars().count()
}

fn summary(result: &DiffResult) -> String {
    let mut out = format!("{MARKER}\n## stategate diff\n\n");
    let _ = writeln!(
        out,
        "{} → {}: {}\n",
        markdown_code(&result.base),
        markdown_code(&result.head),
        totals(result)
    );
    for side in &result.live {
        let _ = writeln!(out, "Live → head from {}\n", md(&live_side_text(side)));
    }
    let mut rows: BTreeMap<(String, String), [usize; 4]> = BTreeMap::new();
    for o in shown(result) {
        let env = o.environment.clone().unwrap_or_else(|| "—".into());
        let row = rows.entry((env, o.kind().to_string())).or_default();
        let col = match o.status {
            Status::Added => 0,
            Status::Changed => 1,
            Status::Removed => 2,
            _ => 3,
        };
        row[col] += 1;
    }
    if !rows.is_empty() {
        out.push_str("| Environment | Kind | Added | Changed | Removed | Moved |\n");
        out.push_str("|---|---|---:|---:|---:|---:|\n");
        for ((env, kind), [a, c, r, m]) in &rows {
            let (env, kind) = (md(env), md(kind));
            let _ = writeln!(out, "| {env} | {kind} | {a} | {c} | {r} | {m} |");
        }
        out.push('\n');
    }
    for env in &result.protected {
        let gone: Vec<String> = shown(result)
            .filter(|o| o.status == Status::Removed && o.environment.as_ref() == Some(env))
            .map(|o| markdown_code(&label(&o.id)))
            .collect();
        if gone.is_empty() {
            continue;
        }
        let more = gone.len().saturating_sub(WARN_NAMES);
        let mut names = gone
            .iter()
            .take(WARN_NAMES)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        if more > 0 {
            let _ = write!(names, " and {more} more");
        }
        let _ = writeln!(
            out,
            "> [!WARNING]\n> **{} deletion{} in protected environment {}**: {names}\n",
            gone.len(),
            if gone.len() == 1 { "" } else { "s" },
            markdown_code(env)
        );
    }
    for f in &result.findings {
        let message: String = f.message.chars().take(2000).collect();
        let lines: Vec<String> = message.split('\n').map(md).collect();
        let _ = writeln!(
            out,
            "> [!CAUTION]\n> `{}`: {}\n",
            f.rule,
            lines.join("<br>\n> ")
        );
    }
    out
}

fn details(o: &ObjectDiff) -> String {
    // The diff body is YAML of user objects: control characters are shown, not passed on, and the
    // fence outgrows any backtick run so the body cannot close it.
    let body: String = o
        .diff
        .lines()
        .map(|line| one_line(line).into_owned() + "\n")
        .collect();
    let fence = fence_for(&body);
    let mut s = format!(
        "<details>\n<summary>{} · {} ({})</summary>\n\n",
        o.status.as_str(),
        md(&title(o)),
        md(&source_text(o))
    );
    if !o.changed_fields.is_empty() {
        let fields: Vec<String> = o.changed_fields.iter().map(|f| markdown_code(f)).collect();
        let _ = writeln!(s, "Changed: {}\n", fields.join(", "));
    }
    if o.diff.is_empty() {
        s.push_str("Same content, other file.\n\n");
    } else {
        let _ = write!(s, "{fence}diff\n{body}");
        let _ = writeln!(s, "{fence}");
    }
    if let Some(view) = &o.live {
        s.push_str(&live_details(view));
    }
    s.push_str("</details>\n\n");
    s
}

fn live_details(view: &LiveView) -> String {
    let mut s = format!("**{}**\n\n", md(&live_headline(view)));
    if !view.fields.is_empty() {
        s.push_str("| field | live | head |\n|---|---|---|\n");
        for f in &view.fields {
            let _ = writeln!(
                s,
                "| {} | {} | {} |",
                markdown_code(&f.path),
                markdown_code(&value_text(f.live.as_ref())),
                markdown_code(&value_text(f.head.as_ref()))
            );
        }
        s.push('\n');
    }
    s
}
