//! Change detection: which files a change adds, modifies, deletes or renames, with where the bytes
//! of each side are (read through git2, or from the working tree), not the bytes themselves.

mod detect;
mod links;
mod walk;

use cold_string::ColdString;
use serde::Serialize;
use std::borrow::Borrow;
use std::sync::OnceLock;

use crate::finding::{Finding, Rule};
use crate::tree::{Content, Unreadable};

pub use detect::{
    ChangeError, ChangeMode, Glance, detect_changes, detect_changes_glancing, detect_changes_in,
    open_repo,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Added,
    Modified,
    Deleted,
    Renamed,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Added => "added",
            Action::Modified => "modified",
            Action::Deleted => "deleted",
            Action::Renamed => "renamed",
        }
    }
}

/// One changed file: its content at the base side ([`FileChange::before`]) and at the head side
/// ([`FileChange::after`]). A deleted file has no `after` and is not validated, but stays in the
/// set for rules about paths. The contents are read when needed ([`FileChange::read_after`]), so
/// a change of many files holds ids, not bytes.
#[derive(Debug, Clone)]
pub struct FileChange {
    /// Repository-relative path with `/` separators (the new path for a rename, which also
    /// carries the old one: [`FileChange::old_path`]).
    pub path: ChangePath,
    sides: Sides,
}

/// What happened to a file and where its two sides are, in the room of one `Content`: an added
/// file's head side in place (every file of `--all` is one), any other change boxed. An action
/// and two `Option`s, the base side boxed, took 48 bytes of each file's entry; this takes 32
/// (issue 12: 100,000 files within 1.5x the memory of 10,000).
#[derive(Debug, Clone)]
enum Sides {
    Added(Content),
    Other(Box<OtherSides>),
}

#[derive(Debug, Clone)]
struct OtherSides {
    action: Action,
    before: Option<Content>,
    after: Option<Content>,
}

impl Sides {
    fn of(action: Action, before: Option<Content>, after: Option<Content>) -> Sides {
        match (action, before, after) {
            (Action::Added, None, Some(after)) => Sides::Added(after),
            (action, before, after) => Sides::Other(Box::new(OtherSides {
                action,
                before,
                after,
            })),
        }
    }
}

impl FileChange {
    /// A file at `path` whose content was `before` at the base side and is `after` at the head.
    pub fn new(
        path: impl Into<ChangePath>,
        action: Action,
        before: Option<Content>,
        after: Option<Content>,
    ) -> FileChange {
        FileChange {
            path: path.into(),
            sides: Sides::of(action, before, after),
        }
    }

    /// What the change did to the file.
    pub fn action(&self) -> Action {
        match &self.sides {
            Sides::Added(_) => Action::Added,
            Sides::Other(other) => other.action,
        }
    }

    /// Where the base side's content is (under the old path of a rename); `None`: absent there.
    pub fn before(&self) -> Option<&Content> {
        match &self.sides {
            Sides::Added(_) => None,
            Sides::Other(other) => other.before.as_ref(),
        }
    }

    /// Where the head side's content is; `None` for a deleted file.
    pub fn after(&self) -> Option<&Content> {
        match &self.sides {
            Sides::Added(after) => Some(after),
            Sides::Other(other) => other.after.as_ref(),
        }
    }

    /// This file as renamed from `old`, whose base side was `before`: git's exact rename pairing.
    pub fn rename_from(&mut self, old: &str, before: Option<Content>) {
        let after = self.after().cloned();
        self.path = ChangePath::of(&*self.path, Some(old));
        self.sides = Sides::of(Action::Renamed, before, after);
    }

    /// The old path of a renamed file.
    pub fn old_path(&self) -> Option<&str> {
        self.path.old()
    }

    /// The bytes at the base side (under the old path of a rename); `Ok(None)`: absent there.
    pub fn read_before(&self) -> Result<Option<Vec<u8>>, Unreadable> {
        let path = self.old_path().unwrap_or(&self.path);
        self.before().map(|c| c.read(path)).transpose()
    }

    /// The bytes at the head side; `Ok(None)` for a deleted file.
    pub fn read_after(&self) -> Result<Option<Vec<u8>>, Unreadable> {
        self.after().map(|c| c.read(&self.path)).transpose()
    }
}

/// A changed file's path and, for a rename, the path it had, in one allocation: the old path
/// follows a NUL, which no git path holds. As a field of its own, the old path was a sixth of
/// each file's entry, on every file of a 100,000-file check and with none of them renamed.
/// It reads as the (new) path: `&*path` and `path.len()` see that alone. Equal, and ordered, as
/// the full text: the NUL sorts before every character of a path, so the order is the path's,
/// then the old path's.
///
/// One word, not a `Box<str>`'s two: a [`ColdString`] keeps the length on the heap beside the
/// bytes, in one byte for a path under 256 bytes, which most paths leave room for in their
/// allocation's size class anyway.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct ChangePath(ColdString);

impl ChangePath {
    /// `path`, renamed from `old` when that is given.
    pub fn of(path: impl AsRef<str>, old: Option<&str>) -> ChangePath {
        let path = path.as_ref();
        match old {
            None => ChangePath(ColdString::new(path)),
            Some(old) => ChangePath(ColdString::new(format!("{path}\0{old}"))),
        }
    }

    /// The path. Every comparison and lookup of a changed file's path asks for it, so the NUL is
    /// looked for with `memchr`, not a generic character search.
    pub fn as_str(&self) -> &str {
        let all = self.0.as_str();
        self.nul().map_or(all, |at| &all[..at])
    }

    /// The path before a rename.
    pub fn old(&self) -> Option<&str> {
        self.nul().map(|at| &self.0.as_str()[at + 1..])
    }

    fn nul(&self) -> Option<usize> {
        memchr::memchr(0, self.0.as_bytes())
    }
}

impl std::ops::Deref for ChangePath {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl From<&str> for ChangePath {
    fn from(path: &str) -> ChangePath {
        ChangePath::of(path, None)
    }
}

impl From<String> for ChangePath {
    fn from(path: String) -> ChangePath {
        ChangePath::of(path, None)
    }
}

impl std::fmt::Display for ChangePath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for ChangePath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.old() {
            None => write!(f, "{:?}", self.as_str()),
            Some(old) => write!(f, "{:?} (from {old:?})", self.as_str()),
        }
    }
}

/// A changed file that could not be read again when it was judged (edited meanwhile, or the
/// repository broke): nothing was decided about it, so the gate cannot pass the change.
pub fn unreadable_finding(why: &Unreadable) -> Finding {
    Finding::error(
        Rule::GateInternal,
        format!("cannot judge the changed file: {why}"),
    )
    .in_file(&why.path)
    .help(
        "run the check again once nothing is writing to the repository; if it fails again, check \
         the repository with `git fsck`",
    )
}

/// A changed path the gate did not read, and why: binary content, a symlink it cannot follow, a
/// submodule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub path: String,
    pub reason: String,
    pub kind: SkipKind,
}

/// Whether a skipped path hides something a consumer would apply: the gate blocks on the first two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipKind {
    /// Not text: NUL bytes and no UTF-16/UTF-32 byte-order mark. A manifest like that blocks.
    Binary,
    /// A symlink that leaves the repository, dangles or loops: kubectl would read something the
    /// gate cannot see.
    Symlink,
    /// A submodule, a nested repository, a symlink to a directory, or another entry no consumer
    /// reads as a manifest.
    Other,
}

/// Everything a change touches. Commit ids are hex strings when the sides are commits.
#[derive(Debug, Clone, Default)]
pub struct ChangeSet {
    pub base: Option<String>,
    pub head: Option<String>,
    pub files: Vec<FileChange>,
    pub skipped: Vec<Skipped>,
}

impl ChangeSet {
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.files.iter().map(|f| &*f.path)
    }

    /// A lookup of [`ChangeSet::paths`], built on its first question.
    pub fn path_lookup(&self) -> PathLookup<'_> {
        PathLookup::of(&self.files)
    }

    /// Each renamed file's old path and new path.
    pub fn renames(&self) -> impl Iterator<Item = (&str, &str)> {
        self.files
            .iter()
            .filter_map(|f| Some((f.old_path()?, &*f.path)))
    }

    /// Every path the change touches: each file's, and the old path of a renamed one.
    pub fn touched_paths(&self) -> impl Iterator<Item = &str> {
        self.files
            .iter()
            .flat_map(|f| std::iter::once(&*f.path).chain(f.old_path()))
    }
}

/// Whether a path is one of a change's files. Searched as they are when they come sorted by path,
/// as detection leaves them; else sorted on the first question, and not built at all when none
/// comes: a `BTreeSet` of the paths was 3.4 MB of the peak of a 100,000-file check that asked
/// nothing, and a sorted copy 1.6 MB of one that asked.
///
/// The files are a change's own or a selection of them (`&FileChange`).
pub struct PathLookup<'a, F: Borrow<FileChange> = FileChange> {
    files: &'a [F],
    sorted: OnceLock<Option<Vec<&'a str>>>,
}

impl<'a, F: Borrow<FileChange>> PathLookup<'a, F> {
    /// A lookup of `files`, a change's or some of them.
    pub fn of(files: &'a [F]) -> PathLookup<'a, F> {
        PathLookup {
            files,
            sorted: OnceLock::new(),
        }
    }

    pub fn contains(&self, path: &str) -> bool {
        let path_of = |f: &'a F| -> &'a str { &f.borrow().path };
        let sorted = self.sorted.get_or_init(|| {
            let in_order = self.files.is_sorted_by(|a, b| path_of(a) <= path_of(b));
            (!in_order).then(|| {
                let mut paths: Vec<&str> = self.files.iter().map(path_of).collect();
                paths.sort_unstable();
                paths
            })
        });
        match sorted {
            Some(sorted) => sorted.binary_search(&path).is_ok(),
            None => self
                .files
                .binary_search_by(|f| path_of(f).cmp(path))
                .is_ok(),
        }
    }
}

/// libgit2's error text in a sentence: `…; class=Reference (4); code=NotFound (-3)` becomes the
/// message with what it means, without the library's internals.
pub fn explain_git_error(text: &str) -> String {
    let Some((message, internals)) = text.split_once("; class=") else {
        return text.to_owned();
    };
    let meaning = if internals.contains("code=NotFound") {
        if internals.starts_with("Reference") || internals.starts_with("Odb") {
            " (no such revision, branch or tag: check the name, or fetch it)"
        } else if internals.starts_with("Repository") {
            " (not inside a git repository)"
        } else {
            " (not found)"
        }
    } else if internals.contains("code=Ambiguous") {
        " (the name is ambiguous: use a longer id or a full ref name)"
    } else if internals.contains("code=InvalidSpec") {
        " (not a valid revision expression)"
    } else if internals.contains("code=UnbornBranch") {
        " (the branch has no commits yet)"
    } else if internals.contains("code=Locked") {
        " (the repository is locked by another git process: retry when it finishes)"
    } else {
        ""
    };
    format!("{message}{meaning}")
}

#[cfg(test)]
mod explain_tests {
    #[test]
    fn libgit2_internals_become_a_sentence() {
        let text = "revspec 'nosuch' not found; class=Reference (4); code=NotFound (-3)";
        let said = super::explain_git_error(text);
        assert!(!said.contains("class="), "{said}");
        assert!(said.contains("no such revision"), "{said}");
    }

    #[test]
    fn the_path_lookup_answers_for_new_paths_and_is_built_only_when_asked() {
        use super::{Action, ChangePath, ChangeSet, FileChange, PathLookup};
        let file = |path: &str, old: Option<&str>| {
            let action = if old.is_some() {
                Action::Renamed
            } else {
                Action::Added
            };
            let after = crate::tree::Content::in_memory(b"a: 1\n".to_vec());
            FileChange::new(ChangePath::of(path, old), action, None, Some(after))
        };
        let change = ChangeSet {
            files: vec![file("z.yaml", None), file("a/new.yaml", Some("a/old.yaml"))],
            ..ChangeSet::default()
        };
        let lookup = change.path_lookup();
        assert!(lookup.sorted.get().is_none());
        assert!(lookup.contains("z.yaml"));
        assert!(lookup.contains("a/new.yaml"));
        assert!(
            !lookup.contains("a/old.yaml"),
            "the old path of a rename is not a file of it"
        );
        assert!(!lookup.contains("a"));
        assert_eq!(
            lookup.sorted.get().unwrap().as_deref(),
            Some(&["a/new.yaml", "z.yaml"][..])
        );
        // Sorted as detection leaves them: searched in place, no copy of the paths.
        let files: Vec<&FileChange> = change.files.iter().rev().collect();
        let lookup = PathLookup::of(&files);
        assert!(lookup.contains("z.yaml") && !lookup.contains("b.yaml"));
        assert!(lookup.sorted.get().unwrap().is_none());
    }

    #[test]
    fn a_change_path_reads_as_its_path_and_keeps_the_old_one_of_a_rename() {
        use super::ChangePath;
        let plain = ChangePath::from("apps/web.yaml");
        assert_eq!(&*plain, "apps/web.yaml");
        assert_eq!(plain.old(), None);
        let renamed = ChangePath::of("apps/web.yaml", Some("old/web.yaml"));
        assert_eq!(&*renamed, "apps/web.yaml");
        assert_eq!(renamed.len(), "apps/web.yaml".len());
        assert_eq!(renamed.old(), Some("old/web.yaml"));
        assert_eq!(renamed.to_string(), "apps/web.yaml");
        assert_eq!(
            format!("{renamed:?}"),
            r#""apps/web.yaml" (from "old/web.yaml")"#
        );
        // Sorted by the path first: a rename sorts where its new path does.
        let mut paths = [
            ChangePath::from("apps/web/x.yaml"),
            renamed.clone(),
            ChangePath::from("apps/web.yaml0"),
            ChangePath::from("apps"),
        ];
        paths.sort();
        let order: Vec<&str> = paths.iter().map(|p| &**p).collect();
        assert_eq!(
            order,
            ["apps", "apps/web.yaml", "apps/web.yaml0", "apps/web/x.yaml"]
        );
        // Up to a word long, a path is kept in the word itself (`b.yaml`, NUL, `a` is eight
        // bytes); past 256 bytes, its length takes more than one byte on the heap.
        for (path, old) in [
            ("a", Some("b")),
            ("b.yaml", Some("a")),
            ("x", None),
            ("", None),
        ] {
            let short = ChangePath::of(path, old);
            assert_eq!((&*short, short.old()), (path, old));
            assert_eq!(short, short.clone());
        }
        let long = "apps/".repeat(100) + "web.yaml";
        let renamed = ChangePath::of(&long, Some(&long[1..]));
        assert_eq!((&*renamed, renamed.old()), (&*long, Some(&long[1..])));
    }
}
