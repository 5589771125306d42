//! What the pusher reads: git relays the hook's stderr as `remote:` lines. One line per finding
//! (ref, file:line, rule, message), then a summary and what to do.
//!
//! GitLab shows only lines prefixed `GL-HOOK-ERR: ` in its UI, so they get that prefix when `GL_ID`
//! is set. Control characters from file names or policy messages are removed: a crafted message
//! must not be able to move the cursor or forge lines on the pusher's terminal.

use std::io::Write;

use crate::finding::{Finding, Severity};

/// How lines are written for the server at hand.
#[derive(Debug, Clone, Copy, Default)]
pub struct Style {
    /// GitLab: prefix every line with `GL-HOOK-ERR: `.
    pub gitlab: bool,
    /// ANSI colour, only when asked for (`--color always`).
    pub color: bool,
}

impl Style {
    /// The style the environment asks for: GitLab sets `GL_ID` for its hooks.
    pub fn from_env(color: bool) -> Style {
        Style {
            gitlab: std::env::var_os("GL_ID").is_some(),
            color,
        }
    }
}

/// Writes user-facing lines to the hook's stderr in one style.
pub struct Messenger<'w> {
    out: &'w mut dyn Write,
    style: Style,
}

impl<'w> Messenger<'w> {
    pub fn new(out: &'w mut dyn Write, style: Style) -> Self {
        Messenger { out, style }
    }

    /// One line; write errors are ignored (the pusher may have hung up, the verdict stands).
    pub fn line(&mut self, text: &str) {
        let prefix = if self.style.gitlab {
            "GL-HOOK-ERR: "
        } else {
            ""
        };
        let _ = writeln!(self.out, "{prefix}{}", sanitize(text));
    }

    pub fn finding(&mut self, finding: &Finding) {
        let text = finding_line(finding);
        let text = if self.style.color {
            colorize(finding.severity, &text)
        } else {
            text
        };
        // Colour codes are added after sanitising the content, so they survive.
        let prefix = if self.style.gitlab {
            "GL-HOOK-ERR: "
        } else {
            ""
        };
        let _ = writeln!(self.out, "{prefix}{text}");
        if let Some(help) = &finding.help {
            self.line(&format!("    help: {help}"));
        }
    }
}

/// `refs/heads/main: apps/x.yaml:12: error[schema/type]: message`
pub fn finding_line(finding: &Finding) -> String {
    let mut parts = Vec::new();
    if let Some(git_ref) = &finding.git_ref {
        parts.push(sanitize(git_ref));
    }
    if let Some(location) = &finding.location {
        parts.push(sanitize(&location.to_string()));
    }
    parts.push(format!("{}[{}]", finding.severity, finding.rule.code()));
    parts.push(sanitize(&finding.message));
    parts.join(": ")
}

/// Removes control characters (ESC, CR, BEL, …); newlines become spaces so one finding stays one
/// line.
pub fn sanitize(text: &str) -> String {
    text.chars()
        .filter_map(|c| match c {
            '\n' | '\t' => Some(' '),
            c if c.is_control() => None,
            // Bidirectional overrides can make a line read differently than it is.
            '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => None,
            c => Some(c),
        })
        .collect()
}

fn colorize(severity: Severity, text: &str) -> String {
    let code = match severity {
        Severity::Error => "31",
        Severity::Warning => "33",
        Severity::Note => "36",
    };
    format!("\x1b[{code}m{}\x1b[0m", sanitize(text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::{Location, Rule};

    fn finding() -> Finding {
        Finding::error(Rule::SchemaType, "bad\x1b[2Jvalue\nnext")
            .at(Location {
                file: "apps/x.yaml".into(),
                line: Some(12),
                ..Location::default()
            })
            .for_ref("refs/heads/main")
            .help("fix it")
    }

    #[test]
    fn a_finding_is_one_line_with_ref_location_rule_and_message() {
        assert_eq!(
            finding_line(&finding()),
            "refs/heads/main: apps/x.yaml:12: error[schema/type]: bad[2Jvalue next"
        );
    }

    #[test]
    fn gitlab_lines_are_prefixed_and_nothing_carries_control_characters() {
        let mut buf = Vec::new();
        let mut m = Messenger::new(
            &mut buf,
            Style {
                gitlab: true,
                color: false,
            },
        );
        m.finding(&finding());
        m.line("summary\x07");
        let text = String::from_utf8(buf).unwrap();
        assert!(
            text.lines().all(|l| l.starts_with("GL-HOOK-ERR: ")),
            "{text}"
        );
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "{text:?}"
        );
        assert_eq!(text.lines().count(), 3);
    }
}
