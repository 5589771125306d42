//! Text that users control (object names, kinds, paths, policy messages) on its way to a terminal,
//! a CI log or a PR comment. One place decides what is neutralised:
//!
//! - control characters (ESC, BEL, CR, C1 controls) and bidirectional overrides never reach an
//!   output raw: they would move the cursor, rewrite earlier lines or make a line read other than
//!   it is; they are shown as visible escapes (`\x1b`, `\u{202e}`);
//! - a line break inside a single-line field (a name, a path) is shown as `\n`; multi-line text
//!   (messages) keeps its breaks, but the renderer starts every continuation line with a visible
//!   prefix, so no line of a message can begin a GitHub workflow command (`::warning::…`);
//! - in markdown, every character that could open markup (`<`, `` ` ``, `|`, `*`, `[`, …) is an
//!   entity, so a `kind` holding `<!--` cannot hide the rest of a PR comment.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Characters that must not reach an output raw.
pub(crate) fn is_hostile(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}')
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if (c as u32) < 0x100 => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
    }
}

/// A single-line field made safe: control characters, line breaks and bidi overrides become
/// visible escapes.
pub fn one_line(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_hostile) && !text.contains("##[") {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if is_hostile(c) {
            push_escaped(&mut out, c);
        } else {
            out.push(c);
        }
    }
    // The runner's older command syntax, `##[warning]…`, is read anywhere in a line.
    Cow::Owned(out.replace("##[", "#\\x23["))
}

/// The lines of a multi-line text, each made safe with [`one_line`] (tabs stay, they are harmless
/// and common in tool output). `\r\n` counts as one break.
pub fn safe_lines(text: &str) -> Vec<String> {
    text.split('\n')
        .map(|line| {
            let line = line.strip_suffix('\r').unwrap_or(line);
            line.split('\t')
                .map(|part| one_line(part).into_owned())
                .collect::<Vec<_>>()
                .join("\t")
        })
        .collect()
}

/// Multi-line text for a terminal or log: safe lines joined with `continuation` (which must start
/// with something other than whitespace for the log-injection guarantee to hold).
pub fn multi_line(text: &str, continuation: &str) -> String {
    safe_lines(text).join(continuation)
}

/// Text for markdown or HTML, inline: made safe with [`one_line`], then every character that
/// could start markup is an entity. The result renders as the literal text in a table cell, a
/// `<summary>`, a blockquote or a list, and cannot open a comment, a tag, a code span or a link.
pub fn markdown(text: &str) -> String {
    let safe = one_line(text);
    let mut out = String::with_capacity(safe.len() + 8);
    for c in safe.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '|' | '`' | '*' | '_' | '[' | ']' | '\\' | '~' | '!' | '#' | '$' | ':' | '@' => {
                let _ = write!(out, "&#{};", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// Inline code for markdown. A backtick code span shows its content literally (`<!--` included)
/// unless the content holds a backtick, a pipe (which splits table cells even inside code) or a
/// hostile character; such text goes into `<code>` with every markup character an entity.
pub fn markdown_code(text: &str) -> String {
    let plain = !text.is_empty()
        && !text.contains(['`', '|'])
        && !text.chars().any(is_hostile)
        && !text.starts_with(' ')
        && !text.ends_with(' ');
    if plain {
        format!("`{text}`")
    } else {
        format!("<code>{}</code>", markdown(text))
    }
}

/// A code fence longer than any backtick run in `body` (at least three), so the body cannot close
/// it early.
pub fn fence_for(body: &str) -> String {
    let longest = body.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    "`".repeat(longest.max(2) + 1)
}

/// Pretty JSON that says the same data as serde's, with what serde leaves raw escaped as `\uXXXX`
/// too: C1 controls and bidi overrides (serde escapes only C0), and the `#` of any `##[` (a CI log
/// that shows the JSON must not read the runner's older command syntax in it). These characters
/// can only occur inside strings, where the escapes mean the same.
pub fn write_json(
    out: &mut dyn std::io::Write,
    value: &impl serde::Serialize,
) -> std::io::Result<()> {
    writeln!(
        out,
        "{}",
        json_pretty(value).map_err(std::io::Error::other)?
    )
}

/// The text [`write_json`] writes, without the final line break.
pub fn json_pretty(value: &impl serde::Serialize) -> serde_json::Result<String> {
    let text = serde_json::to_string_pretty(value)?;
    let mut safe = String::with_capacity(text.len());
    for c in text.chars() {
        if c != '\n' && is_hostile(c) {
            let _ = write!(safe, "\\u{:04x}", c as u32);
        } else {
            safe.push(c);
        }
    }
    Ok(safe.replace("##[", "#\\u0023["))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_shows_controls_breaks_and_bidi_overrides() {
        assert_eq!(one_line("plain: name"), "plain: name");
        assert_eq!(
            one_line("a\x1b[2Jb\nc\r\u{202e}d\u{85}"),
            "a\\x1b[2Jb\\nc\\r\\u{202e}d\\x85"
        );
    }

    #[test]
    fn multi_line_prefixes_every_continuation() {
        let text = multi_line("first\n::warning::forged\r\nthird\x07", "\n  │ ");
        assert_eq!(text, "first\n  │ ::warning::forged\n  │ third\\x07");
        assert!(
            text.lines()
                .skip(1)
                .all(|l| !l.trim_start().starts_with("::"))
        );
    }

    #[test]
    fn markdown_neutralises_comments_tags_code_spans_and_cells() {
        let text = markdown("Kind<!-- x --> | `y` [l](u) *e*\nz");
        for raw in ["<", ">", "|", "`", "[", "*", "\n"] {
            assert!(!text.contains(raw), "{raw} in {text}");
        }
        assert_eq!(markdown("Deployment prod/web"), "Deployment prod/web");
    }

    #[test]
    fn inline_code_holds_anything() {
        assert_eq!(markdown_code("Kind<!--"), "`Kind<!--`");
        assert_eq!(markdown_code("a`b|c"), "<code>a&#96;b&#124;c</code>");
        assert_eq!(markdown_code("a\nb"), "<code>a&#92;nb</code>");
    }

    #[test]
    fn fences_outgrow_the_backtick_runs_they_hold() {
        assert_eq!(fence_for("plain"), "```");
        assert_eq!(fence_for("a ```` b"), "`````");
    }
}
