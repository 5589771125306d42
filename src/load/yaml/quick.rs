//! The block-style YAML nearly every manifest is written in, read a line at a time without the
//! full parser.
//!
//! saphyr's scanner goes a character at a time through a queue of tokens: it was half of every
//! load, and loading was most of a check (`benches/load_throughput.rs`, issue 12). Manifests use a
//! small part of YAML: block mappings and sequences, plain and quoted scalars (folded over several
//! lines too, as controller-gen writes CRD descriptions), literal and folded block scalars, and
//! flow collections on one line (`{}`, `[a, "b"]`). This reads that part, non-ASCII text included.
//!
//! It declines (`None`) on everything else, and the full parser reads the file instead: anchors,
//! aliases, tags, `...` markers and `%` directives, quoted and complex keys, keep-chomped block
//! scalars and indentation indicators, flow collections over several lines, escapes in a
//! double-quoted scalar over several lines, tabs, carriage returns, byte-order marks and YAML
//! 1.1's other line breaks. It also declines wherever the full parser would report something (an
//! ambiguous scalar, a duplicate key, a merge key, a syntax error), so every finding still comes
//! from the full parser, with its position. Scalars are resolved by the full parser's own
//! functions. What it accepts, it reads to the same values, document indexes and document spans:
//! the tests hold it to the full parser on tricky inputs, on every YAML file of the corpus, and on
//! thousands of mutations of them.

use std::borrow::Cow;
use std::sync::Arc;

use saphyr_parser::ScalarStyle;
use serde_json::{Map, Value};

use super::{ambiguous_scalar, key_text, scalar};
use crate::load::positions::{Positions, Span};
use crate::load::{Document, SourceFile};

/// Deeper nesting than this is left to the full parser, which refuses what is too deep.
const MAX_DEPTH: usize = 64;

/// The documents of `source`, or `None` when the full parser must read it.
pub(super) fn load(source: &Arc<SourceFile>) -> Option<Vec<Document>> {
    let text = source.text.as_str();
    // Tabs, carriage returns, the line breaks of YAML 1.1 and byte-order marks have rules of
    // their own: none is worth a second way of reading.
    if memchr::memchr2(b'\t', b'\r', text.as_bytes()).is_some()
        || !text.is_ascii() && text.contains(['\u{85}', '\u{2028}', '\u{2029}', '\u{FEFF}'])
    {
        return None;
    }
    let mut reader = Reader {
        text,
        last: std::cell::Cell::new(None),
        at: 0,
        line: 1,
        depth: 0,
    };
    let roots = reader.documents()?;
    let mut characters = Characters::new(text);
    let documents = roots
        .into_iter()
        .enumerate()
        .filter_map(|(index, root)| {
            let (value, mut span) = root?;
            span.start = characters.before(span.start);
            span.end = characters.before(span.end);
            Some(Document {
                source: Arc::clone(source),
                index,
                item: None,
                value,
                positions: Positions::root_only(span),
            })
        })
        .collect();
    Some(documents)
}

/// Byte offsets as the character indexes spans hold, asked for in increasing order.
struct Characters<'t> {
    text: &'t str,
    ascii: bool,
    /// The last offset asked for, and the characters before it.
    counted: (usize, u32),
}

impl<'t> Characters<'t> {
    fn new(text: &'t str) -> Self {
        Characters {
            text,
            ascii: text.is_ascii(),
            counted: (0, 0),
        }
    }

    fn before(&mut self, offset: u32) -> u32 {
        if self.ascii {
            return offset;
        }
        let (from, chars) = self.counted;
        let offset = (offset as usize).max(from);
        let more = self.text[from..offset].chars().count() as u32;
        self.counted = (offset, chars + more);
        chars + more
    }
}

/// One line of the text.
#[derive(Clone, Copy)]
struct Line<'t> {
    /// Byte offset of its first character.
    start: usize,
    /// 1-based.
    number: u32,
    /// Leading spaces.
    indent: usize,
    /// The rest, without the line break.
    content: &'t str,
    /// Byte offset of the line after it.
    next: usize,
}

impl Line<'_> {
    /// A document start (`---`) or end (`...`) marker.
    fn is_marker(&self) -> bool {
        self.indent == 0
            && (self.content.starts_with("---") || self.content.starts_with("..."))
            && matches!(self.content.as_bytes().get(3), None | Some(b' '))
    }

    /// A block sequence entry: `-` alone or followed by a space.
    fn is_entry(&self) -> bool {
        is_entry(self.content)
    }

    fn is_blank(&self) -> bool {
        self.content.is_empty()
    }
}

fn is_entry(content: &str) -> bool {
    content == "-" || content.starts_with("- ")
}

struct Reader<'t> {
    text: &'t str,
    /// The line last found: most lines are looked at twice, by the value that might continue
    /// on them and then by the mapping or sequence they belong to.
    last: std::cell::Cell<Option<Line<'t>>>,
    /// Where the next unread line starts.
    at: usize,
    /// Its 1-based number.
    line: u32,
    depth: usize,
}

impl<'t> Reader<'t> {
    /// The line at `start`, numbered `number`.
    fn line_at(&self, start: usize, number: u32) -> Option<Line<'t>> {
        if let Some(line) = self.last.get().filter(|line| line.start == start) {
            return Some(line);
        }
        let bytes = self.text.as_bytes();
        if start >= bytes.len() {
            return None;
        }
        let end = memchr::memchr(b'\n', &bytes[start..]).map_or(bytes.len(), |i| start + i);
        let indent = bytes[start..end].iter().take_while(|&&b| b == b' ').count();
        let line = Line {
            start,
            number,
            indent,
            content: &self.text[start + indent..end],
            next: (end + 1).min(bytes.len()),
        };
        self.last.set(Some(line));
        Some(line)
    }

    /// The next unread line.
    fn raw(&self) -> Option<Line<'t>> {
        self.line_at(self.at, self.line)
    }

    /// The next line with content, past blank lines and comments.
    fn peek(&self) -> Option<Line<'t>> {
        let (mut at, mut number) = (self.at, self.line);
        loop {
            let line = self.line_at(at, number)?;
            if !line.is_blank() && !line.content.starts_with('#') {
                return Some(line);
            }
            (at, number) = (line.next, number + 1);
        }
    }

    /// Go past `line`.
    fn take(&mut self, line: &Line<'_>) {
        self.at = line.next;
        self.line = line.number + 1;
    }

    /// Every document of the stream by index: its root and span, `None` for an empty one. A
    /// document starts at each `---`, and before the first one if anything comes before it.
    fn documents(&mut self) -> Option<Vec<Option<(Value, Span)>>> {
        let mut documents = Vec::new();
        // A `---` has opened a document that has no root yet.
        let mut open = false;
        while let Some(line) = self.peek() {
            if line.is_marker() {
                if line.content.starts_with("...") || !only_comment(&line.content[3..]) {
                    return None;
                }
                if open {
                    documents.push(None);
                }
                open = true;
                self.take(&line);
                continue;
            }
            let value = self.block(line)?;
            let end = match self.peek() {
                Some(next) if !next.is_marker() => return None,
                Some(next) => next.start,
                None => self.text.len(),
            };
            let span = Span {
                line: line.number,
                col: line.indent as u32,
                start: (line.start + line.indent) as u32,
                end: end as u32,
            };
            documents.push(Some((value, span)));
            open = false;
        }
        if open {
            documents.push(None);
        }
        Some(documents)
    }

    /// The mapping or sequence that starts at `line`.
    fn block(&mut self, line: Line<'t>) -> Option<Value> {
        if line.is_entry() {
            self.sequence(line.indent)
        } else {
            let mut map = Map::new();
            self.entries(line.indent, &mut map)?;
            Some(Value::Object(map))
        }
    }

    fn enter(&mut self) -> Option<()> {
        self.depth += 1;
        (self.depth <= MAX_DEPTH).then_some(())
    }

    /// The entries of a block mapping whose keys stand at column `indent`, into `map`.
    fn entries(&mut self, indent: usize, map: &mut Map<String, Value>) -> Option<()> {
        self.enter()?;
        while let Some(line) = self.peek() {
            if line.is_marker() || line.indent < indent {
                break;
            }
            if line.indent > indent || line.is_entry() {
                return None;
            }
            self.take(&line);
            self.entry(line.content, indent, map)?;
        }
        self.depth -= 1;
        Some(())
    }

    /// One `key: value` whose key stands at column `indent`; `content` starts at the key.
    fn entry(
        &mut self,
        content: &'t str,
        indent: usize,
        map: &mut Map<String, Value>,
    ) -> Option<()> {
        let (key, rest) = split_key(content)?;
        let key = map_key(key)?;
        let value = if only_comment(rest) {
            self.below(indent, true)?
        } else {
            let rest = rest.trim_start_matches(' ');
            self.inline(rest, indent, matches!(key.as_str(), "mode" | "defaultMode"))?
        };
        insert_new(map, key, value)
    }

    /// The value of a key or entry with nothing after it on its line: a block on the lines below,
    /// more indented than `indent`, or (`same_column`, under a key) a sequence at the key's
    /// column; else null.
    fn below(&mut self, indent: usize, same_column: bool) -> Option<Value> {
        match self.peek() {
            Some(line) if !line.is_marker() && line.indent > indent => {
                if !line.is_entry() && split_key(line.content).is_none() {
                    return None;
                }
                self.block(line)
            }
            Some(line) if same_column && line.indent == indent && line.is_entry() => {
                self.sequence(indent)
            }
            _ => Some(plain_value("", false)?),
        }
    }

    /// The entries of a block sequence whose dashes stand at column `indent`.
    fn sequence(&mut self, indent: usize) -> Option<Value> {
        self.enter()?;
        let mut items = Vec::new();
        while let Some(line) = self.peek() {
            if line.is_marker() || line.indent < indent || !line.is_entry() {
                break;
            }
            if line.indent > indent {
                return None;
            }
            self.take(&line);
            let after = &line.content[1..];
            let item = after.trim_start_matches(' ');
            let column = indent + 1 + (after.len() - item.len());
            let value = if only_comment(after) {
                self.below(indent, false)?
            } else if is_entry(item) {
                return None;
            } else if !item.starts_with(['\'', '"']) && split_key(item).is_some() {
                // A mapping that starts on the dash's line, its keys at the first key's column.
                let mut map = Map::new();
                self.entry(item, column, &mut map)?;
                self.entries(column, &mut map)?;
                Value::Object(map)
            } else {
                self.inline(item, indent, false)?
            };
            items.push(value);
        }
        self.depth -= 1;
        Some(Value::Array(items))
    }

    /// A value that starts on its key's or dash's line; `indent` is the column of that key or
    /// dash, which continuation lines must be deeper than.
    fn inline(&mut self, rest: &'t str, indent: usize, file_mode: bool) -> Option<Value> {
        let value = match rest.as_bytes()[0] {
            b'\'' | b'"' => self.quoted(rest, indent)?,
            b'{' | b'[' => {
                let (value, after) = flow(rest, 0)?;
                self.one_line(after, indent)?;
                value
            }
            b'|' | b'>' => self.block_scalar(rest, indent)?,
            b'-' if is_entry(rest) => return None,
            first if is_declined_indicator(first) => return None,
            _ => self.plain(rest, indent, file_mode)?,
        };
        Some(value)
    }

    /// A quoted scalar, folded over the lines below (deeper than `indent`) until its closing
    /// quote: a line break becomes a space, each blank line between two lines a line break.
    fn quoted(&mut self, rest: &'t str, indent: usize) -> Option<Value> {
        let quote = rest.as_bytes()[0];
        let style = quote_style(quote);
        let (first, after) = quoted_piece(&rest[1..], quote)?;
        if let Some(after) = after {
            self.one_line(after, indent)?;
            return string_value(first, style);
        }
        // An escape on a continued line may escape its line break: left to the full parser.
        if quote == b'"' && rest.contains('\\') {
            return None;
        }
        let mut text = first.trim_end_matches(' ').to_owned();
        let mut blank_lines = 0;
        loop {
            let line = self.raw()?;
            self.take(&line);
            if line.is_blank() {
                blank_lines += 1;
                continue;
            }
            if line.is_marker()
                || line.indent <= indent
                || quote == b'"' && line.content.contains('\\')
            {
                return None;
            }
            fold(&mut text, blank_lines);
            blank_lines = 0;
            let (piece, after) = quoted_piece(line.content, quote)?;
            match after {
                Some(after) => {
                    text.push_str(&piece);
                    self.one_line(after, indent)?;
                    return string_value(Cow::Owned(text), style);
                }
                None => text.push_str(piece.trim_end_matches(' ')),
            }
        }
    }

    /// After a scalar that must end on its line: nothing but a comment may follow it, and no
    /// line below may continue it.
    fn one_line(&self, after: &str, indent: usize) -> Option<()> {
        if !only_comment(after) {
            return None;
        }
        match self.peek() {
            Some(line) if !line.is_marker() && line.indent > indent => None,
            _ => Some(()),
        }
    }

    /// A plain scalar starting with `first`, folded with the lines below that are deeper than
    /// `indent`: a line break between two lines becomes a space, each blank line between them a
    /// line break.
    fn plain(&mut self, first: &'t str, indent: usize, file_mode: bool) -> Option<Value> {
        let (first, mut commented) = plain_part(first)?;
        let mut folded: Option<String> = None;
        let mut blank_lines = 0;
        let (mut at, mut number) = (self.at, self.line);
        while let Some(line) = self.line_at(at, number) {
            (at, number) = (line.next, number + 1);
            if line.is_blank() {
                blank_lines += 1;
                continue;
            }
            if line.is_marker() || line.indent <= indent {
                break;
            }
            if commented || line.content.starts_with(['#', ':']) {
                return None;
            }
            let (part, comment) = plain_part(line.content)?;
            commented = comment;
            let text = folded.get_or_insert_with(|| first.to_owned());
            fold(text, blank_lines);
            text.push_str(part);
            blank_lines = 0;
            self.take(&line);
        }
        match folded {
            Some(text) => plain_value(text, file_mode),
            None => plain_value(first, file_mode),
        }
    }

    /// A literal (`|`) or folded (`>`) block scalar, clipped or stripped (`-`), under a key or
    /// dash at column `indent`: the lines below deeper than it, less the first one's
    /// indentation; folded, a line break between two lines is a space and blank lines are line
    /// breaks.
    fn block_scalar(&mut self, header: &str, indent: usize) -> Option<Value> {
        let folded = header.starts_with('>');
        let rest = &header[1..];
        let (strip, rest) = match rest.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, rest),
        };
        if !only_comment(rest) {
            return None;
        }
        let mut text = String::new();
        let mut column = None;
        // Blank lines not yet known to be inside the scalar, and the longest of them.
        let (mut blank_lines, mut widest_blank) = (0, 0);
        while let Some(line) = self.raw() {
            if line.is_blank() {
                blank_lines += 1;
                widest_blank = widest_blank.max(line.indent);
                self.take(&line);
                continue;
            }
            let column = *column.get_or_insert(line.indent);
            if line.indent < column || line.indent <= indent {
                break;
            }
            // A line of spaces longer than the indentation is text of its own, a deeper line of
            // a folded scalar is not folded, and a folded scalar's leading blank lines are kept:
            // all left to the full parser.
            if widest_blank > column
                || folded && (line.indent > column || text.is_empty() && blank_lines > 0)
            {
                return None;
            }
            let body = &self.text[line.start + column..line.next];
            // A last line without its line break: left to the full parser.
            let body = body.strip_suffix('\n')?;
            if folded && !text.is_empty() {
                fold(&mut text, blank_lines);
            } else {
                text.extend(std::iter::repeat_n('\n', blank_lines));
            }
            blank_lines = 0;
            text.push_str(body);
            if !folded {
                text.push('\n');
            }
            self.take(&line);
        }
        if text.is_empty() || widest_blank > column.unwrap_or(0) {
            return None;
        }
        match (folded, strip) {
            (true, false) => text.push('\n'),
            (false, true) => {
                text.pop();
            }
            _ => {}
        }
        let style = if folded {
            ScalarStyle::Folded
        } else {
            ScalarStyle::Literal
        };
        string_value(Cow::Owned(text), style)
    }
}

/// Whether a value starting with `first` opens what this reader leaves to the full parser: an
/// anchor, alias, tag or directive, a reserved indicator, a complex key, or a misplaced one.
fn is_declined_indicator(first: u8) -> bool {
    matches!(
        first,
        b'&' | b'*' | b'!' | b'%' | b'@' | b'`' | b'?' | b':' | b',' | b']' | b'}' | b'#'
    )
}

/// Whether `after`, what follows something on its line, is nothing or a comment (a `#` after a
/// space).
fn only_comment(after: &str) -> bool {
    let trimmed = after.trim_start_matches(' ');
    trimmed.is_empty() || trimmed.starts_with('#') && trimmed.len() < after.len()
}

/// Join the next line of a folded scalar to `text`: the line break between two lines becomes a
/// space, and each of the `blank_lines` between them a line break.
fn fold(text: &mut String, blank_lines: usize) {
    if blank_lines == 0 {
        text.push(' ');
    }
    text.extend(std::iter::repeat_n('\n', blank_lines));
}

/// The style of a scalar opened by `quote`.
fn quote_style(quote: u8) -> ScalarStyle {
    if quote == b'"' {
        ScalarStyle::DoubleQuoted
    } else {
        ScalarStyle::SingleQuoted
    }
}

/// The key and what follows its `:` on a line that starts with a key; `None` when the line has
/// no `: ` (or `:` at its end) before a comment.
fn split_key(content: &str) -> Option<(&str, &str)> {
    let bytes = content.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'#' if i > 0 && bytes[i - 1] == b' ' => return None,
            b':' if matches!(bytes.get(i + 1), None | Some(b' ')) => {
                return Some((&content[..i], &content[i + 1..]));
            }
            _ => {}
        }
    }
    None
}

/// `value` under a key `map` does not have yet; `None` for a duplicate key, which the full parser
/// reports. One lookup: a check first and an insert after hashed each key twice.
fn insert_new(map: &mut Map<String, Value>, key: String, value: Value) -> Option<()> {
    match map.entry(key) {
        serde_json::map::Entry::Vacant(entry) => {
            entry.insert(value);
            Some(())
        }
        serde_json::map::Entry::Occupied(_) => None,
    }
}

/// A plain key as the JSON key kubectl makes of it; `None` for keys of other characters (quoted,
/// `<<`, spaced) and for those the full parser reports (null, float, ambiguous).
fn map_key(key: &str) -> Option<String> {
    let safe = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'/' | b'$' | b'-');
    let bytes = key.as_bytes();
    if bytes.is_empty() || bytes[0] == b'-' || !bytes.iter().all(|&b| safe(b)) {
        return None;
    }
    if ambiguous_scalar(key, ScalarStyle::Plain, None).is_some() {
        return None;
    }
    match scalar(Cow::Borrowed(key), ScalarStyle::Plain, None) {
        (_, Some(_)) | (Value::Null, _) => None,
        (Value::Number(n), _) if n.is_f64() => None,
        (value, None) => Some(key_text(value)),
    }
}

/// The text of a plain scalar on one line, up to a comment, and whether a comment ends it;
/// `None` where the full parser would see a mapping (`: `, a `:` at the end).
fn plain_part(content: &str) -> Option<(&str, bool)> {
    let (text, commented) = match memchr::memmem::find(content.as_bytes(), b" #") {
        Some(at) => (&content[..at], true),
        None => (content, false),
    };
    let text = text.trim_end_matches(' ');
    if text.ends_with(':') || memchr::memmem::find(text.as_bytes(), b": ").is_some() {
        return None;
    }
    Some((text, commented))
}

/// A plain scalar's value, resolved as kubectl does; `None` when the full parser reports it.
/// `file_mode`: under `mode` or `defaultMode`, where octal is meant and not reported.
fn plain_value<'a>(text: impl Into<Cow<'a, str>>, file_mode: bool) -> Option<Value> {
    let text = text.into();
    if ambiguous_scalar(&text, ScalarStyle::Plain, None).is_some() {
        return None;
    }
    match scalar(text, ScalarStyle::Plain, None) {
        (_, Some(_)) if !file_mode => None,
        (value, _) => Some(value),
    }
}

/// A quoted scalar's value that is not reported; `text` is its unescaped text.
fn string_value(text: Cow<'_, str>, style: ScalarStyle) -> Option<Value> {
    if ambiguous_scalar(&text, style, None).is_some() {
        return None;
    }
    Some(scalar(text, style, None).0)
}

/// One line's part of a scalar quoted by `quote` (`body` starts after the opening quote on the
/// first line): its unescaped text up to the closing quote, and what follows that quote, or
/// `None` for that when the line ends first.
fn quoted_piece(body: &str, quote: u8) -> Option<(Cow<'_, str>, Option<&str>)> {
    let bytes = body.as_bytes();
    let mut owned: Option<String> = None;
    let mut from = 0;
    loop {
        let found = if quote == b'"' {
            memchr::memchr2(b'"', b'\\', &bytes[from..])
        } else {
            memchr::memchr(b'\'', &bytes[from..])
        };
        let Some(at) = found.map(|i| from + i) else {
            return Some((unescaped(body, owned, from, body.len()), None));
        };
        let escaped = match (quote, bytes[at], bytes.get(at + 1)) {
            (b'\'', _, Some(b'\'')) => '\'',
            (b'\'', _, _) | (b'"', b'"', _) => {
                let text = unescaped(body, owned, from, at);
                return Some((text, Some(&body[at + 1..])));
            }
            (_, _, next) => match next? {
                b'\\' => '\\',
                b'"' => '"',
                b'/' => '/',
                b' ' => ' ',
                b'n' => '\n',
                b't' => '\t',
                b'r' => '\r',
                b'0' => '\0',
                b'a' => '\u{7}',
                b'b' => '\u{8}',
                b'v' => '\u{b}',
                b'f' => '\u{c}',
                b'e' => '\u{1b}',
                _ => return None,
            },
        };
        let text = owned.get_or_insert_with(String::new);
        text.push_str(&body[from..at]);
        text.push(escaped);
        from = at + 2;
    }
}

/// `body` up to `end`: borrowed when nothing was unescaped, else what was (`owned`, up to
/// `from`) and the rest.
fn unescaped(body: &str, owned: Option<String>, from: usize, end: usize) -> Cow<'_, str> {
    match owned {
        Some(mut text) => {
            text.push_str(&body[from..end]);
            Cow::Owned(text)
        }
        None => Cow::Borrowed(&body[..end]),
    }
}

/// Deeper flow collections than this are left to the full parser.
const MAX_FLOW_DEPTH: usize = 8;

/// A flow collection (`[a, "b"]`, `{ k: v }`) of scalars and flow collections, closed on its
/// line; and what follows it. `s` starts at its `[` or `{`.
fn flow(s: &str, depth: usize) -> Option<(Value, &str)> {
    if depth >= MAX_FLOW_DEPTH {
        return None;
    }
    let close = if s.starts_with('[') { ']' } else { '}' };
    let mut rest = s[1..].trim_start_matches(' ');
    let mut items = Vec::new();
    let mut map = Map::new();
    if let Some(after) = rest.strip_prefix(close) {
        rest = after;
    } else {
        loop {
            if close == '}' {
                let (key, after) = split_key(rest)?;
                let key = map_key(key)?;
                let (value, after) = flow_node(after.trim_start_matches(' '), depth)?;
                insert_new(&mut map, key, value)?;
                rest = after;
            } else {
                let (value, after) = flow_node(rest, depth)?;
                items.push(value);
                rest = after;
            }
            rest = rest.trim_start_matches(' ');
            if let Some(after) = rest.strip_prefix(close) {
                rest = after;
                break;
            }
            rest = rest.strip_prefix(',')?.trim_start_matches(' ');
            // A trailing comma, or an empty entry: left to the full parser.
            if rest.starts_with([',', close]) {
                return None;
            }
        }
    }
    let value = if close == ']' {
        Value::Array(items)
    } else {
        Value::Object(map)
    };
    Some((value, rest))
}

/// One entry of a flow collection: a quoted or plain scalar, or a collection; and what follows.
fn flow_node(s: &str, depth: usize) -> Option<(Value, &str)> {
    match *s.as_bytes().first()? {
        b'[' | b'{' => flow(s, depth + 1),
        quote @ (b'\'' | b'"') => {
            let (text, after) = quoted_piece(&s[1..], quote)?;
            Some((string_value(text, quote_style(quote))?, after?))
        }
        first if is_declined_indicator(first) || matches!(first, b'|' | b'>' | b'-') => None,
        _ => {
            let end = s
                .find([',', '[', ']', '{', '}', '#', ':'])
                .unwrap_or(s.len());
            let text = s[..end].trim_end_matches(' ');
            // `:` and `#` mean more in a flow collection than in a plain scalar: left to the full
            // parser, as is a scalar that runs to the end of the line.
            if text.is_empty() || end == s.len() || s[end..].starts_with([':', '#']) {
                return None;
            }
            Some((plain_value(text, false)?, &s[end..]))
        }
    }
}
