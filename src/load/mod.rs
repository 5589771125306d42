//! Loading: bytes of a changed file → [`Document`]s with the source position of every node.
//!
//! YAML is read the way `kubectl` reads it (sigs.k8s.io/yaml → go-yaml v2, YAML 1.1 scalars), so the
//! gate judges what the cluster will receive. JSON goes through the same parser (JSON is YAML).

mod lists;
pub(crate) mod packed;
mod positions;
mod resolve;
pub mod sniff;
pub mod sops;
mod yaml;

use std::sync::{Arc, OnceLock};

use serde_json::Value;

use crate::finding::{Finding, Location};
use crate::object::ObjectId;

pub use positions::{PosTree, Positions, Span};

/// A file as the gate saw it; documents keep it so findings can show the source.
#[derive(Debug)]
pub struct SourceFile {
    /// Repository-relative path with `/` separators.
    pub path: String,
    pub text: String,
    /// Byte offsets; a file the loader accepts is far below 4 GiB.
    line_starts: Vec<u32>,
    /// Position trees of the file's documents by index, built on first use. Most documents never
    /// need one (only findings do), and building them for every node cost half the memory of a
    /// run, so they come from a second parse of the same text when asked for.
    positions: OnceLock<Vec<(usize, PosTree)>>,
    /// The alias budget the file was loaded with, so the second parse expands no more.
    alias_budget: usize,
    /// Whether the text has `${` ([`SourceFile::has_variables`]), once searched.
    variables: OnceLock<bool>,
}

impl SourceFile {
    pub fn new(path: impl Into<String>, text: impl Into<String>) -> Self {
        let text = text.into();
        // Exact size, four bytes a line: grown by doubling, eight bytes each, the starts of
        // Argo CD's 1.9 MB `install.yaml` held more than its text's own size again in slack.
        // Newlines found with `memchr`: `str::match_indices` went a character at a time, 1.4% of
        // the corpus' check.
        let newlines = || memchr::memchr_iter(b'\n', text.as_bytes());
        let mut line_starts = Vec::with_capacity(newlines().count() + 1);
        line_starts.push(0);
        line_starts.extend(newlines().map(|i| offset32(i + 1)));
        SourceFile {
            path: path.into(),
            text,
            line_starts,
            positions: OnceLock::new(),
            alias_budget: LoadOptions::default().alias_budget,
            variables: OnceLock::new(),
        }
    }

    /// Whether the text has `${`, where Flux's post-build substitution puts a variable. Searched
    /// once per file: asked for each document, the whole text was searched once for every
    /// document of the file (Argo CD's 1.9 MB `install.yaml` once for each of its CRDs).
    pub fn has_variables(&self) -> bool {
        *self
            .variables
            .get_or_init(|| memchr::memmem::find(self.text.as_bytes(), b"${").is_some())
    }

    pub(crate) fn with_alias_budget(mut self, alias_budget: usize) -> Self {
        self.alias_budget = alias_budget;
        self
    }

    /// The file as findings are reported from it: its text and lines, without the position trees
    /// its findings were located with; for a report that quotes no source (`quoted` false), its
    /// path alone. A file the stream judged keeps only this to the end of the run: with its
    /// trees, a 3 KB Deployment of the 10k benchmark kept 25 KB, and the files with findings
    /// were most of what a check's memory grew by with the number of files. Still shared, the
    /// file is returned as it is.
    pub fn for_report(file: Arc<SourceFile>, quoted: bool) -> Arc<SourceFile> {
        if !quoted {
            return Arc::new(SourceFile::new(file.path.clone(), String::new()));
        }
        match Arc::try_unwrap(file) {
            Ok(mut file) => {
                file.positions = OnceLock::new();
                Arc::new(file)
            }
            Err(shared) => shared,
        }
    }

    /// The position tree of document `index` of this file.
    pub fn positions_of(&self, index: usize) -> Option<&PosTree> {
        self.positions
            .get_or_init(|| yaml::position_trees(self, self.alias_budget))
            .iter()
            .find(|(i, _)| *i == index)
            .map(|(_, tree)| tree)
    }

    /// Byte offset of a 1-based line and a 0-based column counted in characters.
    pub fn offset_of(&self, line: usize, char_col: usize) -> usize {
        let start = self
            .line_starts
            .get(line.saturating_sub(1))
            .map_or(self.text.len(), |&start| {
                (start as usize).min(self.text.len())
            });
        self.text[start..]
            .char_indices()
            .nth(char_col)
            .map_or(self.text.len(), |(i, _)| start + i)
    }

    /// A location covering `len` bytes at a 1-based line and 0-based character column.
    pub fn location(&self, line: usize, char_col: usize, len: usize) -> Location {
        Location {
            file: self.path.clone(),
            line: Some(line as u32),
            column: Some(char_col as u32 + 1),
            offset: Some(self.offset_of(line, char_col)),
            len,
        }
    }
}

/// One YAML document (or a JSON file) with its parsed value.
#[derive(Debug, Clone)]
pub struct Document {
    pub source: Arc<SourceFile>,
    /// 0-based index among the documents of the stream; empty documents count, as PyYAML and
    /// kubectl count them.
    pub index: usize,
    /// The item's index when the document is an item of a list object (kubectl applies the items,
    /// not the list); `None` for a whole document.
    pub item: Option<usize>,
    pub value: Value,
    pub positions: Positions,
}

impl Document {
    pub fn path(&self) -> &str {
        &self.source.path
    }

    pub fn id(&self) -> ObjectId {
        match self.item {
            None => ObjectId::of(&self.value, self.path(), self.index),
            Some(item) => ObjectId::of_item(&self.value, self.path(), self.index, item),
        }
    }

    /// The location of the value at a JSON pointer, or of its nearest ancestor that exists.
    pub fn locate(&self, pointer: &str) -> Location {
        if let (true, None, Some(root)) = (pointer.is_empty(), self.item, self.positions.root()) {
            return root.location(&self.source);
        }
        let pointer = lists::item_pointer(self.item, pointer);
        positions::value_location(self.position_tree(), &self.source, &pointer)
    }

    /// The location of the key of the last pointer segment (for "unknown field" findings), falling
    /// back to [`Document::locate`].
    pub fn locate_key(&self, pointer: &str) -> Location {
        let pointer = lists::item_pointer(self.item, pointer);
        positions::key_location(self.position_tree(), &self.source, &pointer)
    }

    /// Positions given when the document was built, else those of its source, parsed on demand.
    fn position_tree(&self) -> Option<&PosTree> {
        self.positions
            .tree()
            .or_else(|| self.source.positions_of(self.index))
    }

    pub fn api_version(&self) -> Option<&str> {
        self.value.get("apiVersion").and_then(Value::as_str)
    }

    pub fn kind(&self) -> Option<&str> {
        self.value.get("kind").and_then(Value::as_str)
    }
}

#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Files larger than this are refused unread.
    pub max_file_size: u64,
    /// How many nodes alias expansion may copy in one file before it counts as an alias bomb.
    pub alias_budget: usize,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            max_file_size: 10 * 1024 * 1024,
            alias_budget: 100_000,
        }
    }
}

/// What came out of one file: its documents and any findings about the file itself (syntax errors,
/// ambiguous scalars, …). A file with an error finding may still yield the documents before it.
#[derive(Debug, Default)]
pub struct Loaded {
    pub documents: Vec<Document>,
    pub findings: Vec<Finding>,
    /// The decoded text, when the file could be decoded: findings point into it.
    pub source: Option<Arc<SourceFile>>,
}

/// Parse one file's bytes. Never panics on any input.
pub fn load_file(path: &str, bytes: &[u8], options: &LoadOptions) -> Loaded {
    yaml::load(path, bytes, options)
}

/// [`load_file`] by the full YAML parser alone, without the quick reader of block-style YAML that
/// `load_file` tries first: what the tests and benchmarks hold that reader to.
pub fn load_file_in_full(path: &str, bytes: &[u8], options: &LoadOptions) -> Loaded {
    yaml::load_in_full(path, bytes, options)
}

/// That quick reader alone: `None` where it leaves the file to the full parser.
pub fn load_file_quickly(path: &str, bytes: &[u8], options: &LoadOptions) -> Option<Loaded> {
    yaml::load_quickly(path, bytes, options)
}

/// A manifest as `kubectl apply -f` reads it: [`load_file`], then every list object (`v1 List`,
/// `DeploymentList`, anything with `items`) replaced by its items, each a document of its own.
pub fn load_manifest(path: &str, bytes: &[u8], options: &LoadOptions) -> Loaded {
    let mut loaded = load_file(path, bytes, options);
    lists::flatten(&mut loaded);
    loaded
}

/// A Helm chart template: Go template syntax outside YAML comments, in a file under a `templates/`
/// directory. [`is_chart_template`] is the stricter test the gate uses.
pub fn is_helm_template(path: &str, text: &str) -> bool {
    let in_templates = path.starts_with("templates/") || path.contains("/templates/");
    in_templates && has_template_syntax(text)
}

/// A file the gate skips as not-yet-YAML: it sits inside a chart (`chart_at(dir)` says whether a
/// directory holds a `Chart.yaml`, looked up in the tree being judged) and has template syntax
/// outside comments. Both are needed: `{{` in a comment hides nothing, and a `templates/`
/// directory without a chart is applied as it is by kubectl.
pub fn is_chart_template(path: &str, text: &str, chart_at: impl Fn(&str) -> bool) -> bool {
    has_template_syntax(text) && crate::tree::ancestors(path).any(chart_at)
}

/// `{{` outside YAML comments. A `#` starts a comment at the start of a line or after a space, and
/// not inside a quoted scalar (which only opens where a value or key can start).
pub fn has_template_syntax(text: &str) -> bool {
    // Only a line with `{{` can have it outside a comment: most files have none, and one search
    // of the text says so, where scanning every line for comments was 3% of the corpus' check.
    text.contains("{{")
        && text
            .lines()
            .filter(|line| line.contains("{{"))
            .any(|line| outside_comment(line).contains("{{"))
}

fn outside_comment(line: &str) -> &str {
    let mut quote: Option<char> = None;
    let mut previous = ' ';
    let mut last_token = ' ';
    for (i, c) in line.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '#' && previous.is_whitespace() => return &line[..i],
            None if (c == '"' || c == '\'') && " :-[{,?".contains(last_token) => quote = Some(c),
            None => {}
        }
        if !c.is_whitespace() {
            last_token = c;
        }
        previous = c;
    }
    line
}

/// A byte offset as stored in [`SourceFile`]'s line table.
fn offset32(offset: usize) -> u32 {
    u32::try_from(offset).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_has_variables_where_its_text_has_a_dollar_brace() {
        let has = |text: &str| SourceFile::new("a.yaml", text).has_variables();
        assert!(has("a: 1\n---\nb: ${CLUSTER}\n"));
        assert!(has("b: \"${\""));
        assert!(!has("a: $CLUSTER\nb: '{x}'\nc: $ {x}\n"));
        let file = SourceFile::new("a.yaml", "a: ${X}");
        assert_eq!(
            (file.has_variables(), file.has_variables()),
            (true, true),
            "asked again"
        );
    }

    #[test]
    fn a_file_kept_for_a_report_keeps_its_text_only_to_be_quoted() {
        let text = "kind: Pod\nmetadata:\n  name: web\n";
        let file = || Arc::new(SourceFile::new("apps/web.yaml", text));
        let quoted = SourceFile::for_report(file(), true);
        assert_eq!(quoted.text, text);
        assert_eq!(quoted.offset_of(3, 2), text.find("name").unwrap());
        let named = SourceFile::for_report(file(), false);
        assert_eq!(named.path, "apps/web.yaml");
        assert!(named.text.is_empty());
    }

    #[test]
    fn every_line_starts_after_a_newline_and_the_table_is_exactly_its_size() {
        let text = "a: 1\n\nnamé: x\r\nlast: ü";
        let file = SourceFile::new("f.yaml", text);
        assert_eq!(file.line_starts, [0, 5, 6, 16]);
        assert_eq!(file.line_starts.capacity(), file.line_starts.len());
        assert_eq!(file.offset_of(3, 4), 11);
        assert_eq!(&text[file.offset_of(4, 6)..], "ü");
        assert_eq!(SourceFile::new("e.yaml", "").line_starts, [0]);
    }

    #[test]
    fn template_syntax_counts_only_outside_comments() {
        assert!(has_template_syntax("name: {{ .Release.Name }}\n"));
        assert!(has_template_syntax(
            "image: \"{{ .Values.image }}\"  # pinned\n"
        ));
        assert!(has_template_syntax("{{- /* # a template comment */ -}}\n"));
        assert!(!has_template_syntax(
            "# rendered from {{ .Values.x }}\nkind: Pod\n"
        ));
        assert!(!has_template_syntax("kind: Pod  # {{ not a template }}\n"));
        assert!(!has_template_syntax("note: \"a # b\"\n"));
    }

    #[test]
    fn chart_templates_need_a_chart_above_them() {
        let charts = ["deploy/web"];
        let chart_at = |dir: &str| charts.contains(&dir);
        let text = "name: {{ .Release.Name }}\n";
        assert!(is_chart_template(
            "deploy/web/templates/a.yaml",
            text,
            chart_at
        ));
        assert!(is_chart_template(
            "deploy/web/templates/sub/a.yaml",
            text,
            chart_at
        ));
        assert!(!is_chart_template("apps/templates/a.yaml", text, chart_at));
        assert!(!is_chart_template(
            "deploy/web/templates/a.yaml",
            "# {{ x }}\n",
            chart_at
        ));
    }
}
