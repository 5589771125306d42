//! Masking Secret values in source snippets.
//!
//! The human format shows the YAML lines a finding points at. When those lines belong to a
//! `kind: Secret` document, the values under its top-level `data:`/`stringData:` must not reach a
//! terminal or a CI log. Masking works on lines and keeps the line count, so a finding's line still
//! points at the same line of the masked text.

/// The value masked text shows instead of a secret.
const MASK: &str = "***";

/// `text` with the values of every YAML `kind: Secret` document's `data`/`stringData` replaced by
/// `***`. Keys stay readable (they are not secret and tell the reader where they are). Other
/// documents, and text that is no Secret at all, come back unchanged.
pub fn mask_secret_lines(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for document in split_documents(text) {
        if is_secret(document) {
            mask_document(document, &mut out);
        } else {
            out.push_str(document);
        }
    }
    out
}

/// Whether the text is a JSON Secret: line-based masking cannot handle JSON, so callers show no
/// snippet for these at all.
pub(crate) fn is_json_secret(text: &str) -> bool {
    text.trim_start().starts_with('{') && text.contains("\"Secret\"")
}

/// The documents of a YAML stream, each with its `---` line and line endings, so that
/// concatenating them gives back `text`.
fn split_documents(text: &str) -> Vec<&str> {
    let mut documents = Vec::new();
    let mut start = 0;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if offset > start && is_document_start(line) {
            documents.push(&text[start..offset]);
            start = offset;
        }
        offset += line.len();
    }
    documents.push(&text[start..]);
    documents
}

fn is_document_start(line: &str) -> bool {
    line.strip_prefix("---")
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(char::is_whitespace))
}

fn is_secret(document: &str) -> bool {
    document
        .lines()
        .any(|line| top_level_value(line, "kind").is_some_and(|value| unquote(value) == "Secret"))
}

/// The value of a top-level `key: value` line, without a trailing comment.
fn top_level_value<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let rest = line.strip_prefix(key)?.strip_prefix(':')?;
    let value = rest.split(" #").next().unwrap_or(rest);
    Some(value.trim())
}

fn unquote(value: &str) -> &str {
    value.trim_matches(|c| c == '"' || c == '\'')
}

fn mask_document(document: &str, out: &mut String) {
    // Some(entry indent) while inside `data:`/`stringData:`; the entry indent is known once the
    // first entry is seen (0 until then).
    let mut section: Option<usize> = None;
    for line in document.split_inclusive('\n') {
        let (content, ending) = split_ending(line);
        let indent = content.len() - content.trim_start_matches(' ').len();
        let blank = content.trim().is_empty();
        if section.is_some() && !blank && indent == 0 && !content.starts_with('#') {
            section = None;
        }
        match section {
            Some(entry_indent) if !blank => {
                let entry_indent = if entry_indent == 0 {
                    indent
                } else {
                    entry_indent
                };
                section = Some(entry_indent);
                out.push_str(&mask_entry(content, indent, entry_indent));
            }
            _ => match secret_section_start(content) {
                Some(SectionStart::Block) => {
                    section = Some(0);
                    out.push_str(content);
                }
                Some(SectionStart::Inline(key)) => {
                    out.push_str(key);
                    out.push_str(": ");
                    out.push_str(MASK);
                }
                None => out.push_str(content),
            },
        }
        out.push_str(ending);
    }
}

enum SectionStart<'a> {
    /// `data:` with its entries on the following lines.
    Block,
    /// `data: {a: b}` or another value on the key's own line.
    Inline(&'a str),
}

fn secret_section_start(line: &str) -> Option<SectionStart<'_>> {
    ["data", "stringData"].into_iter().find_map(|key| {
        let value = top_level_value(line, key)?;
        Some(if value.is_empty() {
            SectionStart::Block
        } else {
            SectionStart::Inline(key)
        })
    })
}

/// One line inside a Secret's data section: `key: value` keeps its key, block-scalar headers
/// (`key: |`) stay, and everything else (continuation lines, comments) becomes `***`.
fn mask_entry(content: &str, indent: usize, entry_indent: usize) -> String {
    let pad = &content[..indent];
    let body = &content[indent..];
    if indent == entry_indent
        && !body.starts_with('#')
        && let Some((key, value)) = split_key(body)
    {
        let value = value.trim();
        let is_block_header = value.starts_with('|') || value.starts_with('>');
        if value.is_empty() || is_block_header {
            return content.to_string();
        }
        return format!("{pad}{key}: {MASK}");
    }
    format!("{pad}{MASK}")
}

/// `key: value` → (`key`, ` value`); keys may be quoted.
fn split_key(body: &str) -> Option<(&str, &str)> {
    let end = if let Some(quote @ ('"' | '\'')) = body.chars().next() {
        body[1..].find(quote)? + 2
    } else {
        body.find(':')?
    };
    let rest = body[end..].strip_prefix(':')?;
    if !(rest.is_empty() || rest.starts_with(' ')) {
        return None;
    }
    Some((&body[..end], rest))
}

fn split_ending(line: &str) -> (&str, &str) {
    let content = line.trim_end_matches(['\n', '\r']);
    (content, &line[content.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let masked = mask_secret_lines(text);
        assert!(masked.contains("password: visible-in-configmap"));
        assert!(!masked.contains("c2VjcmV0"));
        assert!(!masked.contains("dG9rZW4="));
        assert!(!masked.contains("MIIB"));
        assert!(!masked.contains("postgres://"));
        assert!(masked.contains("  password: ***\n"));
        assert!(masked.contains("  \"quoted.key\": ***\n"));
        assert!(masked.contains("  cert: |\n    ***\n    ***\n"));
        assert!(masked.contains("type: Opaque\n"));
        assert_eq!(masked.lines().count(), text.lines().count());
    }

    #[test]
    fn masks_inline_flow_mappings_and_keeps_crlf() {
        let text = "kind: \"Secret\"\r\ndata: {password: c2VjcmV0}\r\n";
        assert_eq!(mask_secret_lines(text), "kind: \"Secret\"\r\ndata: ***\r\n");
    }

    #[test]
    fn leaves_text_without_secrets_unchanged() {
        let text = "kind: Deployment\nspec:\n  data: x\n---\nkind: SecretStore\ndata:\n  a: b\n";
        assert_eq!(mask_secret_lines(text), text);
    }

    #[test]
    fn recognises_json_secrets() {
        assert!(is_json_secret("{\"kind\": \"Secret\", \"data\": {}}"));
        assert!(!is_json_secret("kind: Secret\n"));
    }
}
