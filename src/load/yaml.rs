//! The YAML event stream (saphyr-parser) → JSON values and position trees.
//!
//! We build values ourselves instead of using a YAML loader because the gate needs three things
//! loaders do not give together: kubectl's YAML 1.1 scalar rules, a budget on alias expansion that
//! trips before any memory is spent (billion laughs), and a position for every node. A file is
//! first offered to the quick reader of block-style YAML ([`quick`]), which reads most manifests
//! to the same values without the event stream.

mod quick;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use saphyr_parser::{Event, Parser, ScalarStyle, ScanError, Tag};
use serde_json::{Map, Value};

use super::positions::{PosTree, Positions, Span};
use super::resolve::{resolve_plain, resolve_special};
use super::{Document, LoadOptions, Loaded, SourceFile};
use crate::finding::{Finding, Location, Rule, Severity};

/// Position trees of every document of `text`, by document index: the on-demand second parse
/// behind [`SourceFile::positions_of`]. `text` already loaded once, so it parses the same way.
pub fn position_trees(source: &SourceFile, alias_budget: usize) -> Vec<(usize, PosTree)> {
    let options = LoadOptions {
        max_file_size: u64::MAX,
        alias_budget,
    };
    let mut builder = Builder::new(source, None, &options);
    builder.track = true;
    let mut ignored = Loaded::default();
    builder.run_tracked(&mut ignored)
}

/// Deeper nesting than this is refused: no real manifest comes close, and unbounded depth would
/// overflow the stack of every recursive consumer (validators, policy engines, drop).
const MAX_DEPTH: usize = 256;

pub fn load(path: &str, bytes: &[u8], options: &LoadOptions) -> Loaded {
    read(path, bytes, options, true)
}

/// [`load`] without the quick reader: what the tests and benchmarks hold that reader to.
pub fn load_in_full(path: &str, bytes: &[u8], options: &LoadOptions) -> Loaded {
    read(path, bytes, options, false)
}

/// The quick reader alone: `None` where it leaves the file to the full parser (and for a file
/// refused before parsing).
pub fn load_quickly(path: &str, bytes: &[u8], options: &LoadOptions) -> Option<Loaded> {
    read_quickly(&decoded(path, bytes, options).ok()?)
}

/// The quick reader's load of `source`; `None` where it leaves the file to the full parser.
fn read_quickly(source: &Arc<SourceFile>) -> Option<Loaded> {
    let documents = quick::load(source)?;
    Some(Loaded {
        documents,
        findings: Vec::new(),
        source: Some(Arc::clone(source)),
    })
}

/// The file's text, shared by its documents; or the finding that refuses it unparsed.
fn decoded(
    path: &str,
    bytes: &[u8],
    options: &LoadOptions,
) -> Result<Arc<SourceFile>, Box<Finding>> {
    if bytes.len() as u64 > options.max_file_size {
        return Err(Box::new(too_large(
            path,
            bytes.len(),
            options.max_file_size,
        )));
    }
    let text = decode(path, bytes)?;
    Ok(shared(path, text, options))
}

fn shared(path: &str, text: String, options: &LoadOptions) -> Arc<SourceFile> {
    Arc::new(SourceFile::new(path, text).with_alias_budget(options.alias_budget))
}

fn read(path: &str, bytes: &[u8], options: &LoadOptions, quick: bool) -> Loaded {
    let mut loaded = Loaded::default();
    let mut source = match decoded(path, bytes, options) {
        Ok(source) => source,
        Err(finding) => {
            loaded.findings.push(*finding);
            return loaded;
        }
    };
    if quick && let Some(loaded) = read_quickly(&source) {
        return loaded;
    }
    let mut last_retry = None;
    for _ in 0..MAX_RELAXED_SCALARS {
        let mut attempt = Loaded::default();
        Builder::new(&source, Some(&source), options).run(&mut attempt);
        match relaxed_retry(&source, &attempt) {
            Some(relaxed) => {
                last_retry = attempt.findings.last().and_then(|f| f.location.clone());
                source = shared(path, relaxed, options);
            }
            None => {
                attempt.source = Some(source);
                return attempt;
            }
        }
    }
    loaded.findings.push(
        Finding::error(Rule::LoadSyntax, "too many under-indented quoted scalars")
            .at(last_retry.unwrap_or_else(|| file_start(path)))
            .help("indent the continuation lines of multi-line quoted strings"),
    );
    loaded
}

/// go-yaml (libyaml) accepts continuation lines of a multi-line quoted scalar indented no deeper
/// than their key; the YAML spec and saphyr do not. Such lines are folded with their leading
/// spaces stripped, so indenting them by one more space changes no value: that is how we read such
/// files the way kubectl does. Bounded, so a hostile file cannot make us loop.
const MAX_RELAXED_SCALARS: usize = 32;

fn relaxed_retry(source: &SourceFile, attempt: &Loaded) -> Option<String> {
    let finding = attempt.findings.last()?;
    if finding.rule != Rule::LoadSyntax
        || !finding
            .message
            .contains("invalid indentation in quoted scalar")
    {
        return None;
    }
    let location = finding.location.as_ref()?;
    indent_quoted_continuation(&source.text, location.offset?)
}

/// Indent by one space every continuation line of the quoted scalar that opens at `quote`.
fn indent_quoted_continuation(text: &str, quote: usize) -> Option<String> {
    let delimiter = text[quote..]
        .chars()
        .next()
        .filter(|c| *c == '"' || *c == '\'')?;
    let mut chars = text[quote + 1..].char_indices().peekable();
    let mut end = None;
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' if delimiter == '"' => {
                chars.next();
            }
            '\'' if delimiter == '\'' && chars.peek().is_some_and(|(_, n)| *n == '\'') => {
                chars.next();
            }
            c if c == delimiter => {
                end = Some(quote + 1 + i);
                break;
            }
            _ => {}
        }
    }
    let end = end?;
    let mut relaxed = String::with_capacity(text.len() + 16);
    relaxed.push_str(&text[..quote]);
    for (i, piece) in text[quote..end].split('\n').enumerate() {
        if i > 0 {
            relaxed.push('\n');
            if !piece.trim().is_empty() {
                relaxed.push(' ');
            }
        }
        relaxed.push_str(piece);
    }
    relaxed.push_str(&text[end..]);
    Some(relaxed)
}

fn too_large(path: &str, size: usize, limit: u64) -> Finding {
    Finding::error(
        Rule::LoadTooLarge,
        format!("file is {size} bytes, over the limit of {limit} bytes; it was not read"),
    )
    .in_file(path)
    .help("split it into smaller files, or raise `limits.max_file_size` in .stategate.yaml")
}

/// Text as kubectl decodes it: UTF-8 (a BOM is dropped), or UTF-16 with a byte-order mark, which
/// kubectl's reader converts. UTF-32 and anything else is refused with the position of the first
/// bad byte, as are the control characters go-yaml's reader refuses.
fn decode(path: &str, bytes: &[u8]) -> Result<String, Box<Finding>> {
    let text = if bytes.starts_with(b"\xFF\xFE\x00\x00") || bytes.starts_with(b"\x00\x00\xFE\xFF") {
        return Err(Box::new(
            Finding::error(
                Rule::LoadInvalidUtf8,
                "UTF-32 text: kubectl and kustomize cannot read it",
            )
            .at(file_start(path))
            .help("re-encode the file as UTF-8 (`iconv -f UTF-32 -t UTF-8`)"),
        ));
    } else if let Some(rest) = bytes.strip_prefix(b"\xFF\xFE") {
        utf16(path, rest, u16::from_le_bytes)?
    } else if let Some(rest) = bytes.strip_prefix(b"\xFE\xFF") {
        utf16(path, rest, u16::from_be_bytes)?
    } else {
        utf8(path, bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes))?
    };
    refuse_control_characters(path, &text)?;
    Ok(text)
}

fn file_start(path: &str) -> Location {
    Location {
        file: path.to_owned(),
        line: Some(1),
        column: Some(1),
        offset: Some(0),
        len: 0,
    }
}

fn utf8(path: &str, bytes: &[u8]) -> Result<String, Box<Finding>> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Ok(text.to_owned()),
        Err(e) => {
            let good = &bytes[..e.valid_up_to()];
            // `good` is valid UTF-8 by construction.
            let good = std::str::from_utf8(good).unwrap_or_default();
            Err(Box::new(
                Finding::error(
                    Rule::LoadInvalidUtf8,
                    format!("invalid UTF-8 at byte {}", e.valid_up_to()),
                )
                .at(location_after(path, good))
                .help("Kubernetes manifests must be UTF-8: re-encode the file (e.g. `iconv -t UTF-8`)"),
            ))
        }
    }
}

fn utf16(path: &str, bytes: &[u8], unit: fn([u8; 2]) -> u16) -> Result<String, Box<Finding>> {
    let units = bytes.chunks(2).map(|c| match c {
        [a, b] => unit([*a, *b]),
        // An odd trailing byte cannot be UTF-16: an unpaired surrogate reports it below.
        _ => 0xD800,
    });
    let mut text = String::with_capacity(bytes.len() / 2);
    for c in char::decode_utf16(units) {
        match c {
            Ok(c) => text.push(c),
            Err(_) => {
                return Err(Box::new(
                    Finding::error(
                        Rule::LoadInvalidUtf8,
                        "invalid UTF-16 (an unpaired surrogate or a stray byte)",
                    )
                    .at(location_after(path, &text))
                    .help("re-encode the file as UTF-8 (`iconv -f UTF-16 -t UTF-8`)"),
                ));
            }
        }
    }
    Ok(text)
}

/// go-yaml's reader (and so kubectl) refuses these anywhere in a file: tab, newline and carriage
/// return are the only C0 controls allowed, DEL and the C1 controls but NEL are refused, and so
/// are U+FFFE and U+FFFF.
fn refuse_control_characters(path: &str, text: &str) -> Result<(), Box<Finding>> {
    let allowed = |c: char| matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{7E}' | '\u{85}' | '\u{A0}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..);
    // Characters are decoded only from the first byte that is not printable ASCII on: decoding
    // every character of every file was 1.2% of the corpus' `check --all`.
    // A character boundary: every byte before it is ASCII.
    let from = plain_ascii_prefix(text.as_bytes());
    let found = text[from..]
        .char_indices()
        .find(|(_, c)| !allowed(*c))
        .map(|(at, c)| (from + at, c));
    let Some((at, c)) = found else {
        return Ok(());
    };
    Err(Box::new(
        Finding::error(
            Rule::LoadSyntax,
            format!(
                "control character U+{:04X}: kubectl refuses the file",
                c as u32
            ),
        )
        .at(location_after(path, &text[..at]))
        .help("remove the character, or write it as an escape in a double-quoted string"),
    ))
}

/// How many leading bytes of `bytes` are printable ASCII, tab, newline or carriage return, in
/// whole blocks of 32: a block is judged without a branch per byte, so the scan runs at memory
/// speed over the ASCII text of nearly every manifest. The rest is for the caller to decode.
fn plain_ascii_prefix(bytes: &[u8]) -> usize {
    const BLOCK: usize = 32;
    let plain = |b: u8| (0x20..0x7F).contains(&b) | (b == b'\t') | (b == b'\n') | (b == b'\r');
    bytes
        .chunks_exact(BLOCK)
        .take_while(|block| block.iter().fold(true, |all, &b| all & plain(b)))
        .count()
        * BLOCK
}

/// The location just after `good`, the text read before a problem.
fn location_after(path: &str, good: &str) -> Location {
    let line = good.matches('\n').count() + 1;
    let col = good.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    Location {
        file: path.to_owned(),
        line: Some(line as u32),
        column: Some(col as u32),
        offset: Some(good.len()),
        len: 0,
    }
}

/// A node under construction.
enum Frame {
    Seq {
        span: Span,
        items: Vec<Value>,
        pos: Vec<PosTree>,
        anchor: usize,
    },
    Map {
        span: Span,
        map: Map<String, Value>,
        /// Key spans in the map's insertion order, to say where a duplicated key first was.
        key_spans: Vec<Span>,
        pos: Vec<(String, Span, PosTree)>,
        /// The key waiting for its value, and whether it is a merge key (a plain `<<`).
        pending_key: Option<(String, Span, bool)>,
        /// Merged values, with where their `<<` was and how many explicit keys came before it.
        merges: Vec<Merge>,
        anchor: usize,
    },
}

/// One `<<: value` of a mapping.
struct Merge {
    value: Value,
    key: Span,
    explicit_before: usize,
}

/// An anchored node, kept to expand aliases; `nodes` is its size, charged to the alias budget.
struct Anchored {
    value: Value,
    pos: PosTree,
    nodes: usize,
}

struct Builder<'a> {
    source: &'a SourceFile,
    /// The shared handle documents keep; absent in the position-only parse.
    shared: Option<&'a Arc<SourceFile>>,
    options: &'a LoadOptions,
    stack: Vec<Frame>,
    anchors: HashMap<usize, Anchored>,
    /// Node count per open frame, so an anchored collection knows its size when it closes.
    sizes: Vec<usize>,
    expanded: usize,
    doc_index: usize,
    doc_started: bool,
    root: Option<(Value, PosTree)>,
    /// Build position trees (the second, on-demand parse) or only values (the first).
    track: bool,
    trees: Vec<(usize, PosTree)>,
    /// The node just finished was a plain, untagged scalar: only such a `<<` is a merge key.
    last_plain: bool,
    /// Where this document's findings start in the file's list.
    doc_findings: usize,
}

impl<'a> Builder<'a> {
    fn new(
        source: &'a SourceFile,
        shared: Option<&'a Arc<SourceFile>>,
        options: &'a LoadOptions,
    ) -> Self {
        Builder {
            source,
            shared,
            options,
            stack: Vec::new(),
            anchors: HashMap::new(),
            sizes: Vec::new(),
            expanded: 0,
            doc_index: 0,
            doc_started: false,
            root: None,
            track: false,
            trees: Vec::new(),
            last_plain: false,
            doc_findings: 0,
        }
    }

    fn run_tracked(mut self, loaded: &mut Loaded) -> Vec<(usize, PosTree)> {
        self.parse(loaded);
        self.trees
    }

    fn run(mut self, loaded: &mut Loaded) {
        self.parse(loaded);
    }

    fn parse(&mut self, loaded: &mut Loaded) {
        let mut parser = Parser::new_from_str(&self.source.text);
        while let Some(event) = parser.next_event() {
            let step = match event {
                Ok((event, span)) => self.on_event(event, Span::from_saphyr(&span), loaded),
                Err(e) => Err(self.syntax_error(&e)),
            };
            if let Err(finding) = step {
                loaded.findings.push(*finding);
                return;
            }
        }
    }

    fn on_event(
        &mut self,
        event: Event<'_>,
        span: Span,
        loaded: &mut Loaded,
    ) -> Result<(), Box<Finding>> {
        match event {
            Event::DocumentStart(_) => {
                self.doc_started = true;
                self.anchors.clear();
                self.doc_findings = loaded.findings.len();
            }
            Event::DocumentEnd => self.finish_document(loaded),
            Event::Scalar(text, style, anchor, tag) => {
                if let Some(construct) = ambiguous_scalar(&text, style, tag.as_deref()) {
                    loaded.findings.push(self.ambiguous(span, &construct));
                }
                self.last_plain = style == ScalarStyle::Plain && tag.is_none();
                let (value, ambiguity) = scalar(text, style, tag.as_deref());
                // `defaultMode: 0644` is the idiomatic file mode, and octal is what it means.
                if let Some(message) = ambiguity.filter(|_| !self.at_file_mode()) {
                    loaded.findings.push(
                        Finding::warning(Rule::LoadAmbiguousScalar, message).at(self.at(span)),
                    );
                }
                self.push_value(value, PosTree::Leaf(span), 1, anchor, loaded)?;
            }
            Event::Alias(id) => {
                let Some(anchored) = self.anchors.get(&id) else {
                    return Err(self.error(Rule::LoadSyntax, span, "alias to an unknown anchor"));
                };
                self.expanded += anchored.nodes;
                if self.expanded > self.options.alias_budget {
                    return Err(Box::new(self.alias_bomb(span)));
                }
                let (value, pos, nodes) =
                    (anchored.value.clone(), anchored.pos.clone(), anchored.nodes);
                self.last_plain = false;
                self.push_value(value, pos, nodes, 0, loaded)?;
            }
            Event::SequenceStart(anchor, tag) => {
                self.check_collection_tag(tag.as_deref(), "seq", span, loaded);
                self.open(span)?;
                self.stack.push(Frame::Seq {
                    span,
                    items: Vec::new(),
                    pos: Vec::new(),
                    anchor,
                });
            }
            Event::MappingStart(anchor, tag) => {
                self.check_collection_tag(tag.as_deref(), "map", span, loaded);
                self.open(span)?;
                self.stack.push(Frame::Map {
                    span,
                    map: Map::new(),
                    key_spans: Vec::new(),
                    pos: Vec::new(),
                    pending_key: None,
                    merges: Vec::new(),
                    anchor,
                });
            }
            Event::SequenceEnd | Event::MappingEnd => self.close(span, loaded)?,
            Event::StreamStart | Event::StreamEnd | Event::Nothing => {}
        }
        Ok(())
    }

    fn open(&mut self, span: Span) -> Result<(), Box<Finding>> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(self.error(
                Rule::LoadSyntax,
                span,
                &format!("nesting deeper than {MAX_DEPTH} levels"),
            ));
        }
        self.sizes.push(1);
        Ok(())
    }

    fn close(&mut self, end: Span, loaded: &mut Loaded) -> Result<(), Box<Finding>> {
        let Some(frame) = self.stack.pop() else {
            return Ok(());
        };
        let nodes = self.sizes.pop().unwrap_or(1);
        let (value, pos, anchor) = match frame {
            Frame::Seq {
                span,
                items,
                pos,
                anchor,
            } => (
                Value::Array(items),
                PosTree::Seq(extend(span, end), pos),
                anchor,
            ),
            Frame::Map {
                span,
                mut map,
                pos,
                merges,
                anchor,
                ..
            } => {
                for merge in &merges {
                    if let Some(construct) = merge_override(&map, merge) {
                        loaded.findings.push(self.ambiguous(merge.key, &construct));
                    }
                }
                apply_merges(&mut map, merges);
                (
                    Value::Object(map),
                    PosTree::Map(extend(span, end), pos),
                    anchor,
                )
            }
        };
        self.last_plain = false;
        self.push_value(value, pos, nodes, anchor, loaded)
    }

    /// Attach a finished node to its parent (or make it the document root).
    /// Whether the value being read is that of a `mode` or `defaultMode` key (volume and
    /// projection file modes), where an octal number is what the author meant.
    fn at_file_mode(&self) -> bool {
        matches!(
            self.stack.last(),
            Some(Frame::Map { pending_key: Some((key, _, _)), .. })
                if key == "mode" || key == "defaultMode"
        )
    }

    fn push_value(
        &mut self,
        value: Value,
        pos: PosTree,
        nodes: usize,
        anchor: usize,
        loaded: &mut Loaded,
    ) -> Result<(), Box<Finding>> {
        if anchor != 0 {
            self.anchors.insert(
                anchor,
                Anchored {
                    value: value.clone(),
                    pos: pos.clone(),
                    nodes,
                },
            );
        }
        if let Some(size) = self.sizes.last_mut() {
            *size += nodes;
        }
        let span = pos.span();
        let source = self.source;
        let track = self.track;
        match self.stack.last_mut() {
            None => self.root = Some((value, pos)),
            Some(Frame::Seq { items, pos: p, .. }) => {
                items.push(value);
                if track {
                    p.push(pos);
                }
            }
            Some(Frame::Map {
                map,
                key_spans,
                pos: p,
                pending_key,
                merges,
                ..
            }) => match pending_key.take() {
                None => {
                    let merge = matches!(&value, Value::String(s) if s == "<<") && self.last_plain;
                    let problem = match &value {
                        _ if merge && !merges.is_empty() => {
                            Some("a second `<<` merge key in one mapping: kubectl merges both, kustomize refuses the file".to_owned())
                        }
                        Value::String(s) if s == "<<" && !merge => Some(
                            "a quoted or tagged `<<` key: kubectl keeps it as a key, kustomize merges it"
                                .to_owned(),
                        ),
                        Value::Null => Some("a null key: kubectl refuses it, kustomize reads a string".to_owned()),
                        Value::Number(n) if n.is_f64() => Some(format!(
                            "the float key `{n}`: kubectl turns it into a string key, kustomize refuses it"
                        )),
                        Value::Array(_) | Value::Object(_) => Some(
                            "a sequence or mapping used as a key: kubectl refuses it".to_owned(),
                        ),
                        _ => None,
                    };
                    if let Some(construct) = problem {
                        loaded.findings.push(ambiguous(source, span, &construct));
                    }
                    *pending_key = Some((key_text(value), span, merge));
                }
                Some((_, key_span, true)) => {
                    if !is_mergeable(&value) {
                        loaded.findings.push(ambiguous(
                            source,
                            key_span,
                            "`<<` merges something that is not a mapping or a list of mappings: kubectl refuses it",
                        ));
                    }
                    merges.push(Merge {
                        value,
                        key: key_span,
                        explicit_before: map.len(),
                    });
                }
                Some((key, key_span, false)) => {
                    if map.contains_key(&key) {
                        // Rare: only now pay for finding where the key first was.
                        let first = map.keys().position(|k| *k == key).unwrap_or_default();
                        let first = key_spans.get(first).copied().unwrap_or(key_span);
                        loaded
                            .findings
                            .push(duplicate_key(source, &key, key_span, first));
                    } else {
                        key_spans.push(key_span);
                    }
                    if track {
                        p.push((key.clone(), key_span, pos));
                    }
                    map.insert(key, value);
                }
            },
        }
        Ok(())
    }

    fn finish_document(&mut self, loaded: &mut Loaded) {
        if !self.doc_started {
            return;
        }
        self.doc_started = false;
        let index = self.doc_index;
        self.doc_index += 1;
        if let Some((root, _)) = &self.root
            && !is_applied(root)
        {
            let start = self.doc_findings.min(loaded.findings.len());
            for finding in &mut loaded.findings[start..] {
                forgive_ambiguity(finding);
            }
        }
        match (self.root.take(), self.shared) {
            (Some((Value::Null, _)) | None, _) => {}
            (Some((_, pos)), _) if self.track => self.trees.push((index, pos)),
            (Some((value, pos)), Some(shared)) => loaded.documents.push(Document {
                source: Arc::clone(shared),
                index,
                item: None,
                value,
                positions: Positions::root_only(pos.span()),
            }),
            (Some(_), None) => {}
        }
    }

    fn at(&self, span: Span) -> Location {
        span.location(self.source)
    }

    fn ambiguous(&self, span: Span, construct: &str) -> Finding {
        ambiguous(self.source, span, construct)
    }

    /// `!!map` and `!!seq` are what the collection is anyway; any other tag (`!!set`, `!!omap`,
    /// `!Custom`) is read differently by go-yaml v2 and kyaml.
    fn check_collection_tag(&self, tag: Option<&Tag>, core: &str, span: Span, loaded: &mut Loaded) {
        let Some(tag) = tag else {
            return;
        };
        if tag.is_yaml_core_schema() && tag.suffix == core {
            return;
        }
        loaded
            .findings
            .push(self.ambiguous(span, &format!("the tag `{tag}` on a collection")));
    }

    fn error(&self, rule: Rule, span: Span, message: &str) -> Box<Finding> {
        Box::new(
            Finding::error(rule, message)
                .at(self.at(span))
                .help("fix the YAML at this position; `yamllint` shows the same spot"),
        )
    }

    fn syntax_error(&self, e: &ScanError) -> Box<Finding> {
        let mark = e.marker();
        let location = self.source.location(mark.line(), mark.col(), 1);
        Box::new(
            Finding::error(Rule::LoadSyntax, format!("YAML syntax error: {}", e.info()))
                .at(location)
                .help("fix the YAML at this position (check indentation and quoting); the file was not checked"),
        )
    }

    fn alias_bomb(&self, span: Span) -> Finding {
        Finding::error(
            Rule::LoadAliasLimit,
            format!(
                "YAML aliases expand to more than {} nodes: refusing a possible alias bomb",
                self.options.alias_budget
            ),
        )
        .at(self.at(span))
        .help("write the repeated content out, or raise `limits.alias_budget` in .stategate.yaml")
    }
}

/// Whether kubectl would apply this document at all: it needs `apiVersion` or `kind` (a merge key
/// could bring them, so a leftover `<<` counts too). Files without them are app config that
/// kubectl refuses, read by other programs: their custom tags (`!secret`, `!Find`) are no
/// ambiguity about what the cluster gets.
fn is_applied(root: &Value) -> bool {
    match root {
        Value::Object(map) => ["apiVersion", "kind", "<<"]
            .iter()
            .any(|k| map.contains_key(*k)),
        _ => false,
    }
}

fn forgive_ambiguity(finding: &mut Finding) {
    if finding.rule == Rule::LoadAmbiguous && finding.severity == Severity::Error {
        finding.severity = Severity::Warning;
        finding
            .message
            .push_str(" (not a Kubernetes object: kubectl would not apply it)");
    }
}

/// A `load/ambiguous` error: the readers kubectl and kustomize use make different objects of this.
fn ambiguous(source: &SourceFile, span: Span, construct: &str) -> Finding {
    Finding::error(
        Rule::LoadAmbiguous,
        format!("{construct}; the gate cannot know what will be applied"),
    )
    .at(span.location(source))
    .help("write it so that every YAML reader agrees: plain mappings with string keys, quoted strings, no tags")
}

/// A merge that v2 (kubectl) and v3 (kustomize) resolve differently: go-yaml v2 lets a `<<` that
/// comes after an explicit key override it, kyaml keeps the explicit value.
fn merge_override(map: &Map<String, Value>, merge: &Merge) -> Option<String> {
    let merged: Vec<&Map<String, Value>> = match &merge.value {
        Value::Object(m) => vec![m],
        Value::Array(items) => items.iter().filter_map(Value::as_object).collect(),
        _ => Vec::new(),
    };
    let key = map
        .keys()
        .take(merge.explicit_before)
        .find(|k| merged.iter().any(|m| m.contains_key(*k)))?;
    Some(format!(
        "`<<` after the explicit key `{key}` it also sets: kubectl takes the merged value, kustomize the explicit one"
    ))
}

fn is_mergeable(value: &Value) -> bool {
    match value {
        Value::Object(_) => true,
        Value::Array(items) => items.iter().all(Value::is_object),
        _ => false,
    }
}

/// Scalars go-yaml v2 (kubectl) and kyaml (kustomize) read differently, or that kubectl cannot turn
/// into JSON; `None` when every reader agrees with [`scalar`].
fn ambiguous_scalar(text: &str, style: ScalarStyle, tag: Option<&Tag>) -> Option<String> {
    if let Some(tag) = tag {
        if !tag.is_yaml_core_schema() {
            return Some(format!("the tag `{tag}`"));
        }
        let resolved = resolve_plain(text).value;
        let fits = match tag.suffix.as_str() {
            "str" => true,
            "null" => resolved.is_null(),
            "bool" => resolved.is_boolean(),
            "int" => resolved.is_i64() || resolved.is_u64(),
            "float" => resolved.is_number(),
            _ => return Some(format!("the tag `{tag}`")),
        };
        return (!fits)
            .then(|| format!("`{tag} {text}`: kubectl refuses a value its tag does not fit"));
    }
    if let Some(c) = (!text.is_ascii())
        .then(|| {
            text.chars()
                .find(|c| matches!(c, '\u{85}' | '\u{2028}' | '\u{2029}'))
        })
        .flatten()
    {
        return Some(format!(
            "the line-break character U+{:04X} in a string: kubectl keeps it, kustomize's output turns it into a line break",
            c as u32
        ));
    }
    if style != ScalarStyle::Plain {
        return None;
    }
    if is_nan_or_infinity(text) {
        return Some(format!(
            "`{text}`: kubectl reads a float that JSON cannot hold and refuses the file"
        ));
    }
    if is_timestamp(text) {
        return Some(format!(
            "the unquoted timestamp `{text}`: kubectl keeps the text, kustomize rewrites it (RFC 3339); quote it"
        ));
    }
    None
}

/// go-yaml v2's `.inf`, `.nan` and their spellings.
fn is_nan_or_infinity(text: &str) -> bool {
    let body = text.strip_prefix(['+', '-']).unwrap_or(text);
    matches!(body, ".inf" | ".Inf" | ".INF") || matches!(text, ".nan" | ".NaN" | ".NAN")
}

/// YAML 1.1 timestamps (`2001-12-14`, `2001-12-14t21:59:43.10-05:00`, `2001-12-14 21:59:43`):
/// a date of four, one or two, one or two digits, alone or followed by a time.
fn is_timestamp(text: &str) -> bool {
    let mut parts = text.splitn(3, '-');
    let (Some(year), Some(month), Some(rest)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let digits = |s: &str, min: usize, max: usize| {
        (min..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
    };
    let day_len = rest.bytes().take_while(u8::is_ascii_digit).count();
    let time = &rest[day_len..];
    digits(year, 4, 4)
        && digits(month, 1, 2)
        && (1..=2).contains(&day_len)
        && (time.is_empty() || time.starts_with(['T', 't', ' ', '\t']))
}

fn extend(start: Span, end: Span) -> Span {
    Span {
        end: end.end.max(start.end),
        ..start
    }
}

fn duplicate_key(source: &SourceFile, key: &str, span: Span, first: Span) -> Finding {
    let first = first.line;
    Finding::error(
        Rule::LoadDuplicateKey,
        format!("duplicate key `{key}` (first defined on line {first}); kubectl keeps only the last value"),
    )
    .at(source.location(span.line as usize, span.col as usize, key.len()))
    .help("remove one of the two entries")
}

/// YAML merge keys (`<<: *base`): explicit keys win over merged ones, as in go-yaml.
fn apply_merges(map: &mut Map<String, Value>, merges: Vec<Merge>) {
    for merge in merges {
        let sources = match merge.value {
            Value::Object(m) => vec![m],
            Value::Array(items) => items
                .into_iter()
                .filter_map(|v| match v {
                    Value::Object(m) => Some(m),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        for source in sources {
            for (k, v) in source {
                map.entry(k).or_insert(v);
            }
        }
    }
}

/// JSON object keys are strings: sigs.k8s.io/yaml turns `true:` into "true" and `1:` into "1".
fn key_text(value: Value) -> String {
    match value {
        Value::String(s) => s,
        Value::Null => "null".to_owned(),
        other => other.to_string(),
    }
}

/// The value of a scalar event; `text` is moved into a string value, not copied, when saphyr
/// already allocated it.
fn scalar(text: Cow<'_, str>, style: ScalarStyle, tag: Option<&Tag>) -> (Value, Option<String>) {
    if let Some(tag) = tag.filter(|t| t.is_yaml_core_schema()) {
        return (core_tagged(&text, &tag.suffix), None);
    }
    if style == ScalarStyle::Plain
        && tag.is_none()
        && let Some(resolved) = resolve_special(&text)
    {
        return (resolved.value, resolved.ambiguity);
    }
    (Value::String(text.into_owned()), None)
}

/// `!!str 0644` stays a string, `!!int "3"` becomes a number, and so on.
fn core_tagged(text: &str, suffix: &str) -> Value {
    match suffix {
        "str" | "binary" | "timestamp" => Value::String(text.to_owned()),
        "null" => Value::Null,
        _ => match resolve_plain(text).value {
            Value::String(_) => Value::String(text.to_owned()),
            other => other,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// YAML 1.1's timestamps, which kustomize rewrites, and texts that only look like them.
    #[test]
    fn timestamps_are_told_from_texts_that_look_like_them() {
        for text in [
            "2001-12-14",
            "2001-1-4",
            "2001-12-14t21:59:43.10-05:00",
            "2001-12-14T21:59:43Z",
            "2001-12-14 21:59:43",
            "2001-12-14\t21:59:43",
        ] {
            assert!(is_timestamp(text), "{text}");
        }
        for text in [
            "",
            "2001",
            "2001-12",
            "2001-12-",
            "201-12-14",
            "20011-12-14",
            "2001-123-14",
            "2001-12-145",
            "2001-12-14x",
            "abcd-12-14",
            "2001-ab-14",
            "-2001-12-14",
            "ü001-12-14",
            "2001–12–14",
            "v1.2.3-rc-1",
        ] {
            assert!(!is_timestamp(text), "{text}");
        }
    }

    /// Every character decoded, as before the ASCII fast path: the oracle.
    fn first_refused(text: &str) -> Option<(usize, char)> {
        let allowed = |c: char| matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{7E}' | '\u{85}' | '\u{A0}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..);
        text.char_indices().find(|(_, c)| !allowed(*c))
    }

    /// A refused character is found, and located, wherever it falls against the 32-byte blocks of
    /// the ASCII scan: in the first block, across block boundaries, in the tail shorter than a
    /// block, after multi-byte characters, and after allowed ones such as NEL.
    #[test]
    fn refused_characters_are_found_wherever_they_fall() {
        let bad = [
            '\u{0}', '\u{7}', '\u{1B}', '\u{7F}', '\u{80}', '\u{9F}', '\u{FFFE}',
        ];
        let fillers = ["a: b\n", "k: é\n", "\u{85}x\tyz\r\n", "ü"];
        for filler in fillers {
            for length in [0, 1, 31, 32, 33, 63, 64, 65, 100] {
                let mut prefix = String::new();
                while prefix.len() < length {
                    prefix.push_str(filler);
                }
                let clean = format!("{prefix}{prefix}");
                assert_eq!(first_refused(&clean), None);
                assert!(refuse_control_characters("f.yaml", &clean).is_ok());
                for c in bad {
                    let text = format!("{prefix}{c}{prefix}\u{1}");
                    let (at, found) = first_refused(&text).expect("refused");
                    assert_eq!((at, found), (prefix.len(), c));
                    let finding = refuse_control_characters("f.yaml", &text).expect_err("refused");
                    let location = finding.location.expect("located");
                    assert_eq!(location, location_after("f.yaml", &text[..at]));
                    assert!(
                        finding.message.contains(&format!("U+{:04X}", c as u32)),
                        "{}",
                        finding.message
                    );
                }
            }
        }
    }

    #[test]
    fn the_ascii_prefix_is_whole_blocks_of_plain_bytes() {
        let plain = "name: web\n\tport: 80\r\n".repeat(4);
        assert_eq!(plain_ascii_prefix(plain.as_bytes()), 64);
        assert_eq!(plain_ascii_prefix(&plain.as_bytes()[..31]), 0);
        let mut late = plain.clone().into_bytes();
        late[40] = 0x1B;
        assert_eq!(plain_ascii_prefix(&late), 32);
        late[3] = 0xC3;
        assert_eq!(plain_ascii_prefix(&late), 0);
    }
}
