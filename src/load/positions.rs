//! Source positions of every node of a document, addressed by JSON pointer, so a schema error at
//! `/spec/template/spec/containers/0/image` maps back to a line and column.

use super::SourceFile;
use crate::finding::Location;

/// A region of the source: 1-based line, 0-based character column, and character indexes (saphyr
/// counts characters, not bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub line: u32,
    pub col: u32,
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub(super) fn from_saphyr(span: &saphyr_parser::Span) -> Span {
        // Files are capped far below 4 GiB, so positions fit in u32.
        let narrow = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        Span {
            line: narrow(span.start.line()),
            col: narrow(span.start.col()),
            start: narrow(span.start.index()),
            end: narrow(span.end.index().max(span.start.index())),
        }
    }

    pub fn location(&self, source: &SourceFile) -> Location {
        let (line, col) = (self.line as usize, self.col as usize);
        let begin = source.offset_of(line, col);
        let chars = (self.end - self.start) as usize;
        // A multi-line node is underlined on its first line only; that is where readers look. So
        // only that line's characters are counted: counting a whole document's to its end, then
        // cutting at the line, was 0.5% of the corpus' `check --all` (each CRD is located).
        let rest = &source.text[begin..];
        let first_line = memchr::memchr(b'\n', rest.as_bytes()).map_or(rest, |i| &rest[..i]);
        let len = first_line
            .char_indices()
            .nth(chars)
            .map_or(first_line.len(), |(i, _)| i);
        source.location(line, col, len)
    }
}

/// The position tree of one document, shaped like its value.
#[derive(Debug, Clone, PartialEq)]
pub enum PosTree {
    Leaf(Span),
    Seq(Span, Vec<PosTree>),
    /// Entries in source order: key text, key span, value positions.
    Map(Span, Vec<(String, Span, PosTree)>),
}

impl PosTree {
    pub fn span(&self) -> Span {
        match self {
            PosTree::Leaf(s) | PosTree::Seq(s, _) | PosTree::Map(s, _) => *s,
        }
    }

    fn child(&self, segment: &str) -> Option<(Option<Span>, &PosTree)> {
        match self {
            PosTree::Leaf(_) => None,
            PosTree::Seq(_, items) => {
                let index: usize = segment.parse().ok()?;
                items.get(index).map(|t| (None, t))
            }
            // The last entry wins, as it does for the value of a duplicated key.
            PosTree::Map(_, entries) => entries
                .iter()
                .rev()
                .find(|(k, _, _)| k == segment)
                .map(|(_, key, t)| (Some(*key), t)),
        }
    }
}

/// Positions of a document; empty for documents built in memory.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Positions {
    tree: Option<PosTree>,
    /// The document's own span, kept even when the tree is built on demand: findings about a
    /// whole document (unknown kind, policy denials) are the common case and need nothing more.
    root: Option<Span>,
}

impl Positions {
    pub fn new(tree: PosTree) -> Self {
        Positions {
            root: Some(tree.span()),
            tree: Some(tree),
        }
    }

    /// Only the document's span; the rest is parsed on demand.
    pub fn root_only(root: Span) -> Self {
        Positions {
            tree: None,
            root: Some(root),
        }
    }

    pub fn root(&self) -> Option<Span> {
        self.root
    }

    pub fn tree(&self) -> Option<&PosTree> {
        self.tree.as_ref()
    }

    pub fn value_location(&self, source: &SourceFile, pointer: &str) -> Location {
        value_location(self.tree(), source, pointer)
    }

    pub fn key_location(&self, source: &SourceFile, pointer: &str) -> Location {
        key_location(self.tree(), source, pointer)
    }
}

/// Walk a JSON pointer as far as it exists; returns the deepest node reached and the key span of
/// the last segment when the whole pointer resolved to a map entry.
fn walk<'t>(tree: &'t PosTree, pointer: &str) -> (Option<Span>, &'t PosTree, bool) {
    let mut node = tree;
    let mut key = None;
    for segment in segments(pointer) {
        match node.child(&segment) {
            Some((k, child)) => {
                key = k;
                node = child;
            }
            None => return (None, node, false),
        }
    }
    (key, node, true)
}

/// The location of the value at `pointer`, or of its nearest existing ancestor.
pub fn value_location(tree: Option<&PosTree>, source: &SourceFile, pointer: &str) -> Location {
    match tree.map(|t| walk(t, pointer)) {
        Some((_, node, _)) => node.span().location(source),
        None => Location::file(source.path.clone()),
    }
}

/// The location of the key of the last segment of `pointer`, else as [`value_location`].
pub fn key_location(tree: Option<&PosTree>, source: &SourceFile, pointer: &str) -> Location {
    match tree.map(|t| walk(t, pointer)) {
        Some((Some(key), _, true)) => key.location(source),
        Some((_, node, _)) => node.span().location(source),
        None => Location::file(source.path.clone()),
    }
}

/// JSON pointer segments with `~1` and `~0` unescaped.
fn segments(pointer: &str) -> impl Iterator<Item = String> + '_ {
    pointer
        .split('/')
        .skip(1)
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
}
