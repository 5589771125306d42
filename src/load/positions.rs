//! Source positions of every node of a document, addressed by JSON pointer, so a schema error at
//! `/spec/template/spec/containers/0/image` maps back to a line and column.

use super::SourceFile;
use crate::finding::Location;

/// A region of the source: 1-based line, 0-based character column, and character indexes (saphyr
/// counts characters, not bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub line: usize,
    pub col: usize,
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub(super) fn from_saphyr(span: &saphyr_parser::Span) -> Span {
        Span {
            line: span.start.line(),
            col: span.start.col(),
            start: span.start.index(),
            end: span.end.index().max(span.start.index()),
        }
    }

    pub(super) fn location(&self, source: &SourceFile) -> Location {
        let begin = source.offset_of(self.line, self.col);
        let chars = self.end - self.start;
        let end = source.text[begin..]
            .char_indices()
            .nth(chars)
            .map_or(source.text.len(), |(i, _)| begin + i);
        // A multi-line node is underlined on its first line only; that is where readers look.
        let first_line_end = source.text[begin..]
            .find('\n')
            .map_or(source.text.len(), |i| begin + i);
        source.location(self.line, self.col, end.min(first_line_end) - begin)
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
}

impl Positions {
    pub fn new(tree: PosTree) -> Self {
        Positions { tree: Some(tree) }
    }

    pub fn tree(&self) -> Option<&PosTree> {
        self.tree.as_ref()
    }

    /// Walk a JSON pointer as far as it exists; returns the deepest node reached and the key span
    /// of the last segment when the whole pointer resolved to a map entry.
    fn walk(&self, pointer: &str) -> Option<(Option<Span>, &PosTree, bool)> {
        let mut node = self.tree.as_ref()?;
        let mut key = None;
        for segment in segments(pointer) {
            match node.child(&segment) {
                Some((k, child)) => {
                    key = k;
                    node = child;
                }
                None => return Some((None, node, false)),
            }
        }
        Some((key, node, true))
    }

    pub fn value_location(&self, source: &SourceFile, pointer: &str) -> Location {
        match self.walk(pointer) {
            Some((_, node, _)) => node.span().location(source),
            None => Location::file(source.path.clone()),
        }
    }

    pub fn key_location(&self, source: &SourceFile, pointer: &str) -> Location {
        match self.walk(pointer) {
            Some((Some(key), _, true)) => key.location(source),
            Some((_, node, _)) => node.span().location(source),
            None => Location::file(source.path.clone()),
        }
    }
}

/// JSON pointer segments with `~1` and `~0` unescaped.
fn segments(pointer: &str) -> impl Iterator<Item = String> + '_ {
    pointer
        .split('/')
        .skip(1)
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
}
