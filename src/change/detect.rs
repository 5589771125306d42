//! Every change mode is one libgit2 diff between two sides (nothing, a commit's tree, the index or
//! the working tree), narrowed by pathspecs and run through git's default rename detection; every
//! file of the working tree is listed by a walk instead ([`Walk`]), to the same effect. The
//! deltas are then sorted into changed files and skipped paths. The bytes of both sides are read
//! once here, to tell binary content and to follow symlinks (blobs through git2, working-tree files
//! from disk without ever following a symlink), and then dropped: the change set keeps where each
//! side is ([`Content`]), so its size does not grow with the files' contents.

use std::collections::{HashMap, HashSet};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

use rayon::prelude::*;

use git2::{Delta, DiffDelta, DiffFindOptions, DiffOptions, FileMode, Oid, Repository};

use super::links::{self, Target};
use super::walk::{self, Walk};
use super::{Action, ChangePath, ChangeSet, FileChange, SkipKind, Skipped};
use crate::sync::locked;
use crate::tree::{Content, DirTree, RepoPool, SharedTree, blob_id};

/// Which two sides of the repository a check compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeMode {
    /// Working tree against HEAD (the default of `stategate check`).
    WorkTree,
    /// Index against HEAD (`--staged`, the pre-commit mode).
    Staged,
    /// `git diff base...head`: head against the merge base of the two (which is what
    /// [`ChangeSet::base`] then names, not `base` itself).
    Range { base: String, head: String },
    /// Every file of HEAD's tree (`--all --head REV`) or of the working tree (`--all`).
    All { rev: Option<String> },
}

/// Why the changes could not be found. Every message says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error(
        "no git repository at or above `{}`: {source}; run stategate inside a git repository",
        path.display()
    )]
    NotARepository { path: PathBuf, source: git2::Error },
    #[error(
        "unknown revision `{rev}`: {source}; pass a commit id, branch or tag of this repository \
         (a shallow CI clone may need more history: `git fetch --unshallow`, or `fetch-depth: 0`)"
    )]
    UnknownRevision { rev: String, source: git2::Error },
    #[error("revision `{rev}` is not a commit: {source}; pass a commit, branch or tag")]
    NotACommit { rev: String, source: git2::Error },
    #[error(
        "`{base}` and `{head}` have no common history (no merge base); check the two revisions, \
         or fetch more history if this is a shallow clone (`git fetch --unshallow`)"
    )]
    NoMergeBase { base: String, head: String },
    #[error("{mode} needs a working tree, but `{}` is a bare repository; pass --base/--head, or --all with a revision", path.display())]
    BareRepository { mode: &'static str, path: PathBuf },
    #[error("path `{path}` is outside the repository at `{}`; pass paths inside it", root.display())]
    PathOutsideRepository { path: String, root: PathBuf },
    #[error(
        "cannot read `{path}` from the working tree: {source}; check its permissions, or run again if it is being edited"
    )]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("git failed while {doing}: {source}")]
    Git {
        doing: &'static str,
        source: git2::Error,
    },
}

fn git_err(doing: &'static str) -> impl FnOnce(git2::Error) -> ChangeError {
    move |source| ChangeError::Git { doing, source }
}

/// Opens the repository containing `dir` (searching upwards, like `git`). Inside a pre-receive hook
/// the pushed objects sit in a quarantine directory that only the environment names, so there the
/// repository is opened the way `git` itself would open it.
pub fn open_repo(dir: &Path) -> Result<Repository, ChangeError> {
    let in_hook = std::env::var_os("GIT_QUARANTINE_PATH").is_some()
        || std::env::var_os("GIT_OBJECT_DIRECTORY").is_some();
    let opened = if in_hook {
        Repository::open_ext(
            dir,
            git2::RepositoryOpenFlags::FROM_ENV,
            std::iter::empty::<&Path>(),
        )
    } else {
        Repository::discover(dir)
    };
    opened.map_err(|source| ChangeError::NotARepository {
        path: dir.to_path_buf(),
        source,
    })
}

/// A look at a file's head side while detection holds its bytes: whether a later stage that reads
/// every file would find something in it (`true`), or may pass over it ([`Content::is_plain`]).
/// Detection reads every file anyway; the first look of the gate read each one again only to
/// find most of them plain (corpus `check --all`: 2,180 of 3,014 files; skipping them saved 8.7
/// ms of CPU, 3.7 ms of wall time).
pub type Glance = fn(path: &str, bytes: &[u8]) -> bool;

/// Finds the changes of `mode` in the repository containing `repo_dir`. `paths` narrow the change
/// like `git diff -- PATH...`: relative to `repo_dir` (so a subdirectory works like git's current
/// directory), a directory or a file, and glob patterns (`*.yaml`) are accepted.
pub fn detect_changes(
    repo_dir: &Path,
    mode: &ChangeMode,
    paths: &[String],
) -> Result<ChangeSet, ChangeError> {
    detect_changes_glancing(repo_dir, mode, paths, None)
}

/// [`detect_changes`], with `glance` looking at each head side read from the working tree.
pub fn detect_changes_glancing(
    repo_dir: &Path,
    mode: &ChangeMode,
    paths: &[String],
    glance: Option<Glance>,
) -> Result<ChangeSet, ChangeError> {
    let repo = open_repo(repo_dir)?;
    let paths = repo_relative_paths(&repo, repo_dir, paths)?;
    detect_glancing(&repo, mode, &paths, glance)
}

/// [`detect_changes`] on an open repository, without a glance; `paths` are already relative to
/// its root.
pub fn detect_changes_in(
    repo: &Repository,
    mode: &ChangeMode,
    paths: &[String],
) -> Result<ChangeSet, ChangeError> {
    detect_glancing(repo, mode, paths, None)
}

fn detect_glancing(
    repo: &Repository,
    mode: &ChangeMode,
    paths: &[String],
    glance: Option<Glance>,
) -> Result<ChangeSet, ChangeError> {
    let plan = Plan::new(repo, mode)?;
    let mut loader = Loader::new(repo, &plan, glance)?;
    let mut set = ChangeSet {
        base: plan.base.map(|id| id.to_string()),
        head: plan.head.map(|id| id.to_string()),
        ..ChangeSet::default()
    };
    let mut candidates = Candidates::default();
    if plan.lists_every_file() {
        list_every_file(repo, paths, &loader.reader, &mut candidates, &mut set)?;
    } else {
        let diff = plan.diff(repo, paths)?;
        for delta in diff.deltas() {
            candidates.sort(classify(&delta), &mut set);
        }
        // The deltas are copied out: libgit2's diff of a 100,000-file tree holds ~54 MB in the C
        // allocator, which would otherwise stay resident under everything that follows.
        drop(diff);
        crate::alloc::release_c_heap();
        set.files
            .reserve_exact(candidates.plain.len() + candidates.links.len());
    }
    read_plain(&loader.reader, candidates.plain, &mut set)?;
    let links = candidates.links.into_iter();
    add_read(links.map(|change| loader.load_link(change)), &mut set)?;
    if plan.renames {
        pair_exact_renames(&mut set.files);
    }
    sort_by_path(&mut set.files);
    set.skipped.sort_by(|a, b| a.path.cmp(&b.path));
    // What reading and listing freed (each file's bytes, the walk's paths) is handed back now:
    // held until the gate's first stage, it was the peak of a 100,000-file check, under the
    // config and schemas loaded meanwhile (18 MB resident for 7 MB of change set).
    crate::alloc::release_freed();
    Ok(set)
}

/// Every file of the working tree into `set`, by a walk. The walk is one thread's wait on the
/// file system: the first [`READ_SLICE`] files are read on the other cores while it goes on, in
/// chunks of [`EARLY_CHUNK`] as it finds them (the corpus' second core was idle for the whole
/// walk). Their reads are held until the walk is done, as few as one slice's are.
///
/// The rest of the walk's paths are listed first (32 bytes a file besides the path, which the
/// file then keeps), so that the change set is allocated once at its size: grown by doubling as
/// the walk went, its discarded buffers (14 and 28 MB on 100,000 files) stayed resident. They are
/// listed in slices, each freed once read: one list grown by doubling left 8 MB of discarded and
/// read buffers resident under the rest of a 100,000-file check.
fn list_every_file(
    repo: &Repository,
    paths: &[String],
    reader: &Reader,
    candidates: &mut Candidates,
    set: &mut ChangeSet,
) -> Result<(), ChangeError> {
    let (sender, received) = std::sync::mpsc::channel();
    let mut listed: Vec<Vec<walk::Found>> = Vec::new();
    let walk_result = rayon::in_place_scope(|scope| {
        let mut early = 0;
        let mut chunks = 0;
        let mut chunk = Vec::with_capacity(EARLY_CHUNK);
        let mut slice = Vec::new();
        let mut read_chunk = |chunk: Vec<Candidate>| {
            if chunk.is_empty() {
                return;
            }
            let (at, sender) = (chunks, sender.clone());
            chunks += 1;
            scope.spawn(move |_| {
                let read: Vec<_> = chunk.into_iter().map(|c| reader.load(c)).collect();
                // The receiver outlives the scope: a send cannot fail.
                let _ = sender.send((at, read));
            });
        };
        let walk = Walk::new(repo, paths)?.run(|found| {
            if early < READ_SLICE {
                if matches!(found, walk::Found::File { .. }) {
                    early += 1;
                }
                candidates.sort(walked(found), set);
                if let Some(c) = candidates.plain.pop() {
                    chunk.push(c);
                }
                if chunk.len() == EARLY_CHUNK || early == READ_SLICE {
                    read_chunk(std::mem::take(&mut chunk));
                }
                return Ok(());
            }
            slice.push(found);
            if slice.len() == READ_SLICE {
                listed.push(std::mem::replace(
                    &mut slice,
                    Vec::with_capacity(READ_SLICE),
                ));
            }
            Ok(())
        });
        read_chunk(chunk);
        listed.push(slice);
        walk
    });
    drop(sender);
    walk_result?;
    let mut early: Vec<_> = received.into_iter().collect();
    early.sort_unstable_by_key(|(at, _)| *at);
    let later = listed
        .iter()
        .flatten()
        .filter(|f| matches!(f, walk::Found::File { .. }))
        .count();
    let early_files: usize = early.iter().map(|(_, read)| read.len()).sum();
    set.files
        .reserve_exact(early_files + candidates.links.len() + later);
    for (_, read) in early {
        add_read(read, set)?;
    }
    for slice in listed {
        for path in slice {
            candidates.sort(walked(path), set);
        }
        read_plain(reader, std::mem::take(&mut candidates.plain), set)?;
    }
    Ok(())
}

/// How many of the first files the walk finds are read together, while it goes on.
const EARLY_CHUNK: usize = 64;

/// The candidates found so far, by how they are read: symlinks one by one, on one thread (git2's
/// trees and index are not shared between threads), the rest on all cores.
#[derive(Default)]
struct Candidates {
    plain: Vec<Candidate>,
    links: Vec<Candidate>,
}

impl Candidates {
    fn sort(&mut self, sorted: Sorted, set: &mut ChangeSet) {
        match sorted {
            Sorted::Ignore => {}
            Sorted::Skip(path, reason) => set.skipped.push(Skipped {
                path,
                reason,
                kind: SkipKind::Other,
            }),
            Sorted::Change(change) if change.old_link || change.new_link => self.links.push(change),
            Sorted::Change(change) => self.plain.push(change),
        }
    }
}

/// Reads the candidates that are not symlinks into `set`, in their order. Reading every side is
/// most of detection's time, so it runs on all cores, each worker with its own repository handle.
fn read_plain(
    reader: &Reader,
    mut plain: Vec<Candidate>,
    set: &mut ChangeSet,
) -> Result<(), ChangeError> {
    // Read a slice at a time, each on all cores, into a list of the final size (reserved by the
    // caller): collected at once, the reads were a second list of every file (216 bytes each)
    // alive beside the first (detection's heap peak on 100,000 files: 53.8 MB that way, 48.8 MB
    // this way). Slices are taken from the end, so the list is reversed first, and each slice
    // back: the files keep the diff's order, which decides between equal candidates when renames
    // are paired.
    plain.reverse();
    while !plain.is_empty() {
        let from = plain.len().saturating_sub(READ_SLICE);
        let read: Vec<_> = plain
            .par_drain(from..)
            .map(|change| reader.load(change))
            .collect();
        add_read(read.into_iter().rev(), set)?;
    }
    Ok(())
}

/// What reading candidates gave, into `set` in their order: the files read, and those skipped.
fn add_read(
    read: impl IntoIterator<Item = Result<Result<FileChange, Skipped>, ChangeError>>,
    set: &mut ChangeSet,
) -> Result<(), ChangeError> {
    for result in read {
        match result? {
            Ok(file) => set.files.push(file),
            Err(skipped) => set.skipped.push(skipped),
        }
    }
    Ok(())
}

/// A path the working-tree walk found, as a diff against nothing would give it.
fn walked(found: walk::Found) -> Sorted {
    match found {
        walk::Found::Skipped { path, reason } => Sorted::Skip(path, reason.into()),
        walk::Found::File { path, link } => Sorted::Change(Candidate {
            action: Action::Added,
            path,
            old_path: None,
            old_id: None,
            // As in libgit2's diff of untracked files: working-tree files are read from disk.
            new_id: Some(Oid::ZERO_SHA1),
            old_link: false,
            new_link: link,
        }),
    }
}

/// How many files detection reads on all cores before it moves their entries into the change set.
const READ_SLICE: usize = 4096;

/// Where the new side of a diff is read from.
enum NewSide<'r> {
    Tree(git2::Tree<'r>),
    Index,
    WorkDir,
}

/// The two sides one mode compares, and the commits behind them.
struct Plan<'r> {
    old: Option<git2::Tree<'r>>,
    new: NewSide<'r>,
    base: Option<Oid>,
    head: Option<Oid>,
    /// `--all` lists files; pairing them up as renames would make no sense.
    renames: bool,
}

impl<'r> Plan<'r> {
    fn new(repo: &'r Repository, mode: &ChangeMode) -> Result<Plan<'r>, ChangeError> {
        match mode {
            ChangeMode::WorkTree => {
                require_workdir(repo, "checking the working tree")?;
                Plan::against_head(repo, NewSide::WorkDir)
            }
            ChangeMode::Staged => Plan::against_head(repo, NewSide::Index),
            ChangeMode::Range { base, head } => {
                let base_commit = commit_at(repo, base)?;
                let head_commit = commit_at(repo, head)?;
                let fork = repo
                    .merge_base(base_commit.id(), head_commit.id())
                    .map_err(|_| ChangeError::NoMergeBase {
                        base: base.clone(),
                        head: head.clone(),
                    })?;
                let fork_commit = repo
                    .find_commit(fork)
                    .map_err(git_err("reading the merge base"))?;
                Ok(Plan {
                    old: Some(tree_of(&fork_commit)?),
                    new: NewSide::Tree(tree_of(&head_commit)?),
                    base: Some(fork),
                    head: Some(head_commit.id()),
                    renames: true,
                })
            }
            ChangeMode::All { rev: Some(rev) } => {
                let commit = commit_at(repo, rev)?;
                Ok(Plan {
                    old: None,
                    new: NewSide::Tree(tree_of(&commit)?),
                    base: None,
                    head: Some(commit.id()),
                    renames: false,
                })
            }
            ChangeMode::All { rev: None } => {
                require_workdir(repo, "checking every file of the working tree")?;
                Ok(Plan {
                    old: None,
                    new: NewSide::WorkDir,
                    base: None,
                    head: None,
                    renames: false,
                })
            }
        }
    }

    /// Whether the change is every file of the working tree (`--all`, or a repository without
    /// commits): then the tree is walked ([`Walk`]) instead of diffed against nothing.
    fn lists_every_file(&self) -> bool {
        self.old.is_none() && matches!(self.new, NewSide::WorkDir)
    }

    /// HEAD against `new`; without commits yet, against nothing (everything is added).
    fn against_head(repo: &'r Repository, new: NewSide<'r>) -> Result<Plan<'r>, ChangeError> {
        let head = head_commit(repo)?;
        Ok(Plan {
            old: head.as_ref().map(tree_of).transpose()?,
            base: head.as_ref().map(git2::Commit::id),
            head: None,
            new,
            renames: true,
        })
    }

    fn diff(&self, repo: &'r Repository, paths: &[String]) -> Result<git2::Diff<'r>, ChangeError> {
        let mut opts = DiffOptions::new();
        opts.include_typechange(true).ignore_submodules(false);
        for path in paths {
            opts.pathspec(path.as_str());
        }
        let old = self.old.as_ref();
        let mut diff = match &self.new {
            NewSide::Tree(tree) => repo.diff_tree_to_tree(old, Some(tree), Some(&mut opts)),
            NewSide::Index => repo.diff_tree_to_index(old, None, Some(&mut opts)),
            NewSide::WorkDir => {
                // Untracked files count, as `git status` shows them: ignored ones do not.
                opts.include_untracked(true).recurse_untracked_dirs(true);
                repo.diff_tree_to_workdir_with_index(old, Some(&mut opts))
            }
        }
        .map_err(git_err("comparing the two sides of the change"))?;
        if self.renames {
            find_renames(&mut diff)?;
        }
        Ok(diff)
    }
}

/// git's `diff.renameLimit` default: past limit² source × target pairs, only exact renames count.
const RENAME_LIMIT: u64 = 1000;

/// Pairs deleted and added files as renames the way git does by default: 50% similarity, untracked
/// files allowed as targets, inexact matching given up on huge changes (its cost is sources ×
/// targets). libgit2 also caps each target at `RENAME_LIMIT` candidate sources, so exact renames
/// past that cap are paired afterwards by [`pair_exact_renames`].
fn find_renames(diff: &mut git2::Diff<'_>) -> Result<(), ChangeError> {
    let (mut sources, mut targets) = (0u64, 0u64);
    for delta in diff.deltas() {
        match delta.status() {
            Delta::Deleted => sources += 1,
            Delta::Added | Delta::Untracked => targets += 1,
            _ => {}
        }
    }
    if sources == 0 || targets == 0 {
        return Ok(());
    }
    let mut find = DiffFindOptions::new();
    find.renames(true)
        .for_untracked(true)
        .rename_threshold(50)
        .rename_limit(RENAME_LIMIT as usize)
        .exact_match_only(sources * targets > RENAME_LIMIT * RENAME_LIMIT);
    diff.find_similar(Some(&mut find))
        .map_err(git_err("detecting renames"))
}

/// Sorts the files by path, stably (libgit2 may list a path twice: deleted, then added as another
/// type), without a second copy of them: the standard library's stable sort borrows room for up
/// to 8 MB of elements, a third of the peak of detecting 100,000 files. The walk lists directories
/// in the order the file system gives, so the files are sorted through their indexes instead.
fn sort_by_path(files: &mut [FileChange]) {
    if files.is_sorted_by(|a, b| a.path <= b.path) {
        return;
    }
    let mut order: Vec<usize> = (0..files.len()).collect();
    order.sort_by(|&a, &b| files[a].path.cmp(&files[b].path));
    // Position `k` takes the file at `order[k]`: each cycle of the permutation is followed once,
    // swapping along it, and `usize::MAX` marks a position already filled.
    for start in 0..files.len() {
        let mut k = start;
        while order[k] != usize::MAX {
            let from = std::mem::replace(&mut order[k], usize::MAX);
            if from == start {
                break;
            }
            files.swap(k, from);
            k = from;
        }
    }
}

/// Turns every deleted file whose exact content was added elsewhere into a rename, as git's exact
/// rename pass does whatever the size of the change. Among equal contents, the same file name wins.
fn pair_exact_renames(files: &mut Vec<FileChange>) {
    let mut by_content: HashMap<Oid, Vec<usize>> = HashMap::new();
    for (i, f) in files.iter().enumerate() {
        if let (Action::Deleted, Some(before)) = (f.action(), f.before())
            && !before.is_empty()
            && let Some(id) = before.id()
        {
            by_content.entry(id).or_default().push(i);
        }
    }
    if by_content.is_empty() {
        return;
    }
    let mut pairs = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let (Action::Added, Some(after)) = (f.action(), f.after()) else {
            continue;
        };
        let Some(candidates) = after.id().and_then(|id| by_content.get_mut(&id)) else {
            continue;
        };
        let pick = candidates
            .iter()
            .position(|&d| file_name(&files[d].path) == file_name(&f.path))
            .unwrap_or(0);
        if pick < candidates.len() {
            pairs.push((i, candidates.swap_remove(pick)));
        }
    }
    if pairs.is_empty() {
        return;
    }
    let mut gone = vec![false; files.len()];
    for (added, deleted) in pairs {
        let old = std::mem::take(&mut files[deleted].path);
        let before = files[deleted].before().cloned();
        files[added].rename_from(&old, before);
        gone[deleted] = true;
    }
    let mut index = 0;
    files.retain(|_| {
        index += 1;
        !gone[index - 1]
    });
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// The working tree's root, or why `mode` cannot run in a bare repository.
pub(super) fn require_workdir<'r>(
    repo: &'r Repository,
    mode: &'static str,
) -> Result<&'r Path, ChangeError> {
    match repo.workdir() {
        Some(root) => Ok(root),
        None => Err(ChangeError::BareRepository {
            mode,
            path: repo.path().to_path_buf(),
        }),
    }
}

/// HEAD's commit, or `None` in a repository without commits (everything is then added).
fn head_commit(repo: &Repository) -> Result<Option<git2::Commit<'_>>, ChangeError> {
    match repo.head() {
        Ok(head) => head
            .peel_to_commit()
            .map(Some)
            .map_err(|source| ChangeError::NotACommit {
                rev: "HEAD".into(),
                source,
            }),
        Err(e)
            if e.code() == git2::ErrorCode::UnbornBranch
                || e.code() == git2::ErrorCode::NotFound =>
        {
            Ok(None)
        }
        Err(e) => Err(ChangeError::Git {
            doing: "reading HEAD",
            source: e,
        }),
    }
}

fn commit_at<'r>(repo: &'r Repository, rev: &str) -> Result<git2::Commit<'r>, ChangeError> {
    let object = repo
        .revparse_single(rev)
        .map_err(|source| ChangeError::UnknownRevision {
            rev: rev.to_string(),
            source,
        })?;
    object
        .peel_to_commit()
        .map_err(|source| ChangeError::NotACommit {
            rev: rev.to_string(),
            source,
        })
}

fn tree_of<'r>(commit: &git2::Commit<'r>) -> Result<git2::Tree<'r>, ChangeError> {
    commit.tree().map_err(git_err("reading a commit's tree"))
}

/// A delta worth loading: what happened and the blob ids of both sides.
struct Candidate {
    action: Action,
    path: String,
    old_path: Option<String>,
    old_id: Option<Oid>,
    new_id: Option<Oid>,
    /// The side is a symlink: its blob is the link text, judged by what it points at.
    old_link: bool,
    new_link: bool,
}

enum Sorted {
    Ignore,
    Skip(String, String),
    Change(Candidate),
}

fn classify(delta: &DiffDelta<'_>) -> Sorted {
    let action = match delta.status() {
        Delta::Added | Delta::Untracked | Delta::Copied => Action::Added,
        Delta::Deleted => Action::Deleted,
        Delta::Modified | Delta::Conflicted => Action::Modified,
        Delta::Renamed => Action::Renamed,
        // A file that became a symlink (or back) is read like any other modified path.
        Delta::Typechange => Action::Modified,
        Delta::Unreadable => {
            return Sorted::Skip(
                path_of(delta.new_file()),
                "unreadable in the working tree".into(),
            );
        }
        Delta::Unmodified | Delta::Ignored => return Sorted::Ignore,
    };
    let has_old = matches!(action, Action::Modified | Action::Deleted | Action::Renamed);
    let has_new = action != Action::Deleted;
    let path = if has_new {
        path_of(delta.new_file())
    } else {
        path_of(delta.old_file())
    };
    for (present, mode) in [
        (has_old, delta.old_file().mode()),
        (has_new, delta.new_file().mode()),
    ] {
        if let Some(reason) = unreadable_kind(present, mode) {
            return Sorted::Skip(path, reason.into());
        }
    }
    // Binary-ness is decided on content when loading: git's flag follows `.gitattributes`, which
    // the change itself can set.
    Sorted::Change(Candidate {
        action,
        old_path: (action == Action::Renamed).then(|| path_of(delta.old_file())),
        old_id: has_old.then(|| delta.old_file().id()),
        new_id: has_new.then(|| delta.new_file().id()),
        old_link: has_old && delta.old_file().mode() == FileMode::Link,
        new_link: has_new && delta.new_file().mode() == FileMode::Link,
        path,
    })
}

/// Why an entry of this mode is never read, if it is not a regular file.
fn unreadable_kind(present: bool, mode: FileMode) -> Option<&'static str> {
    if !present {
        return None;
    }
    match mode {
        FileMode::Blob | FileMode::BlobExecutable => None,
        FileMode::Link => None,
        FileMode::Commit => Some("submodule, not followed"),
        FileMode::Tree => Some("nested git repository, not followed"),
        FileMode::BlobGroupWritable | FileMode::Unreadable => Some("not a regular file"),
    }
}

/// The `/` path of one side; untracked directories (nested repositories) lose git's trailing `/`.
fn path_of(file: git2::DiffFile<'_>) -> String {
    let path = file
        .path()
        .map(|p| p.to_string_lossy().replace('\\', "/"))
        .unwrap_or_default();
    match path.strip_suffix('/') {
        Some(dir) => dir.to_string(),
        None => path,
    }
}

/// git calls a file binary when its first 8000 bytes hold a NUL. UTF-16 and UTF-32 text holds
/// NULs too, and kubectl reads UTF-16 with a byte-order mark, so a BOM makes it text.
fn looks_binary(bytes: &[u8]) -> bool {
    const BOMS: &[&[u8]] = &[b"\xFF\xFE", b"\xFE\xFF", b"\x00\x00\xFE\xFF"];
    !BOMS.iter().any(|bom| bytes.starts_with(bom)) && bytes[..bytes.len().min(8000)].contains(&0)
}

/// Where the new side's symlinks are resolved.
enum NewReader<'p, 'r> {
    Tree(&'p git2::Tree<'r>),
    Index(git2::Index),
    /// The same reader as [`Reader::disk`]: symlinks are resolved where files are read.
    WorkDir(Arc<WorkdirReader>),
}

/// Reads both sides of a candidate and says where their content is. Symlinks are followed here,
/// on one thread (git2's trees and index are not shared between threads); every other file is
/// read through [`Reader`], from any thread.
struct Loader<'p, 'r> {
    repo: &'r Repository,
    old: Option<&'p git2::Tree<'r>>,
    new: NewReader<'p, 'r>,
    reader: Reader,
}

/// Reads the sides of files that are not symlinks, from any thread.
struct Reader {
    /// Where blobs are read now, and again later by the change set.
    pool: Arc<RepoPool>,
    /// The working tree when it is the new side: read without following any symlink.
    disk: Option<Arc<WorkdirReader>>,
    /// The working tree as the change set reads it again: never through a symlink.
    workdir: Option<SharedTree>,
    /// Give files read from disk their blob id: renames are paired by it, nothing else needs it.
    identify: bool,
    glance: Option<Glance>,
}

/// Where a side's bytes were read from, to read them again.
enum Origin {
    Blob(Oid),
    /// A working-tree file, by its repository-relative path.
    Disk(String),
}

/// A side's content and where it came from, or why it was not read.
type SideRead = Result<(Vec<u8>, Origin), (String, SkipKind)>;

/// A side read from the working tree, or why it was not.
fn on_disk(path: &str, read: Result<Vec<u8>, &str>) -> SideRead {
    read.map(|bytes| (bytes, Origin::Disk(path.to_owned())))
        .map_err(|why| (why.to_owned(), SkipKind::Other))
}

fn skipped(path: String, (reason, kind): (String, SkipKind)) -> Skipped {
    Skipped { path, reason, kind }
}

impl<'p, 'r> Loader<'p, 'r> {
    fn new(
        repo: &'r Repository,
        plan: &'p Plan<'r>,
        glance: Option<Glance>,
    ) -> Result<Loader<'p, 'r>, ChangeError> {
        let (new, disk) = match &plan.new {
            NewSide::Tree(tree) => (NewReader::Tree(tree), None),
            NewSide::Index => (
                NewReader::Index(repo.index().map_err(git_err("reading the index"))?),
                None,
            ),
            NewSide::WorkDir => {
                let root = require_workdir(repo, "checking the working tree")?;
                let disk = Arc::new(WorkdirReader::new(root));
                (NewReader::WorkDir(Arc::clone(&disk)), Some(disk))
            }
        };
        let workdir = repo
            .workdir()
            .map(|root| SharedTree::new(Arc::new(DirTree::new(root, "working tree"))));
        Ok(Loader {
            repo,
            old: plan.old.as_ref(),
            new,
            reader: Reader {
                pool: Arc::new(RepoPool::new(repo)),
                disk,
                workdir,
                identify: plan.renames,
                glance,
            },
        })
    }

    /// [`Reader::load`] for a candidate with a symlink on either side.
    fn load_link(&mut self, c: Candidate) -> Result<Result<FileChange, Skipped>, ChangeError> {
        // The base side only feeds `before`: a link there that cannot be followed is no content.
        let before = match c.old_id {
            None => None,
            Some(id) if !c.old_link => Some((self.reader.blob(id)?, Origin::Blob(id))),
            Some(id) => {
                let text = self.reader.blob(id)?;
                self.follow_old(&c.path, &text)?.ok()
            }
        };
        let read = match c.new_id {
            None => None,
            Some(id) if !c.new_link => Some(self.reader.read_new(&c.path, id)?),
            Some(id) => Some(self.read_new_link(&c.path, id)?),
        };
        let after = match read.transpose() {
            Ok(after) => after,
            Err(why) => return Ok(Err(skipped(c.path, why))),
        };
        Ok(self.reader.finish(c, before, after))
    }

    fn read_new_link(&mut self, path: &str, id: Oid) -> Result<SideRead, ChangeError> {
        let io_err = |source| ChangeError::Read {
            path: path.to_string(),
            source,
        };
        let text = match &self.new {
            NewReader::WorkDir(disk) => {
                if !disk.parents_are_real_dirs(path).map_err(io_err)? {
                    let why = "inside a symlinked directory, not followed";
                    return Ok(Err((why.into(), SkipKind::Other)));
                }
                match std::fs::read_link(disk.root.join(path)) {
                    Ok(text) => text.to_string_lossy().into_owned().into_bytes(),
                    // Replaced by a regular file since git looked: read that, safely.
                    Err(_) => return Ok(on_disk(path, disk.read(path)?)),
                }
            }
            NewReader::Tree(_) | NewReader::Index(_) => self.reader.blob(id)?,
        };
        let Ok(text) = String::from_utf8(text) else {
            return Ok(Err((
                "symlink with a non-UTF-8 target".into(),
                SkipKind::Symlink,
            )));
        };
        let repo = self.repo;
        let (target, on_disk) = match &mut self.new {
            NewReader::Tree(tree) => (
                links::resolve(&mut links::TreeSide { repo, tree }, path, &text),
                false,
            ),
            NewReader::Index(index) => (
                links::resolve(&mut links::IndexSide { repo, index }, path, &text),
                false,
            ),
            NewReader::WorkDir(disk) => (
                links::resolve(&mut links::WorkSide { root: &disk.root }, path, &text),
                true,
            ),
        };
        Ok(followed(target.map_err(io_err)?, on_disk))
    }

    fn follow_old(&self, path: &str, text: &[u8]) -> Result<SideRead, ChangeError> {
        let (Some(tree), Ok(text)) = (self.old, std::str::from_utf8(text)) else {
            return Ok(Err((String::new(), SkipKind::Other)));
        };
        let mut side = links::TreeSide {
            repo: self.repo,
            tree,
        };
        let target = links::resolve(&mut side, path, text).map_err(|source| ChangeError::Read {
            path: path.to_string(),
            source,
        })?;
        Ok(followed(target, false))
    }
}

impl Reader {
    /// The loaded file (neither side a symlink), or why it was skipped after all (binary
    /// content, a file swapped on disk).
    fn load(&self, c: Candidate) -> Result<Result<FileChange, Skipped>, ChangeError> {
        let before = match c.old_id {
            None => None,
            Some(id) => Some((self.blob(id)?, Origin::Blob(id))),
        };
        let after = match c.new_id.map(|id| self.read_new(&c.path, id)).transpose()? {
            None => None,
            Some(Ok(read)) => Some(read),
            Some(Err(why)) => return Ok(Err(skipped(c.path, why))),
        };
        Ok(self.finish(c, before, after))
    }

    /// The new side of a file that is not a symlink in git's view.
    fn read_new(&self, path: &str, id: Oid) -> Result<SideRead, ChangeError> {
        match &self.disk {
            Some(disk) => Ok(on_disk(path, disk.read(path)?)),
            None => Ok(Ok((self.blob(id)?, Origin::Blob(id)))),
        }
    }

    /// The change, holding where each side is; binary content on either side skips it.
    fn finish(
        &self,
        c: Candidate,
        before: Option<(Vec<u8>, Origin)>,
        after: Option<(Vec<u8>, Origin)>,
    ) -> Result<FileChange, Skipped> {
        if before
            .iter()
            .chain(after.iter())
            .any(|(b, _)| looks_binary(b))
        {
            return Err(skipped(c.path, ("binary file".into(), SkipKind::Binary)));
        }
        let old_path = c.old_path.as_deref().unwrap_or(&c.path);
        let before = before.map(|(bytes, from)| self.content(old_path, &bytes, from));
        let after = after.map(|(bytes, from)| {
            let plain = self.glance.is_some_and(|noticed| !noticed(&c.path, &bytes));
            self.content(&c.path, &bytes, from).glanced(plain)
        });
        let path = ChangePath::of(&c.path, c.old_path.as_deref());
        Ok(FileChange::new(path, c.action, before, after))
    }

    /// Where to read `bytes` again, for the side read by `path`; the bytes themselves are dropped.
    fn content(&self, path: &str, bytes: &[u8], from: Origin) -> Content {
        match (from, &self.workdir) {
            (Origin::Blob(id), _) => Content::blob(&self.pool, id, bytes.len()),
            (Origin::Disk(at), Some(workdir)) => {
                let elsewhere = (at != path).then_some(at.as_str());
                if self.identify {
                    Content::in_tree(workdir, elsewhere, bytes)
                } else {
                    Content::in_tree_unhashed(workdir, elsewhere, bytes)
                }
            }
            // Disk reads only happen with a working tree; kept in memory should that change.
            (Origin::Disk(_), None) => Content::in_memory(bytes.to_vec()),
        }
    }

    fn blob(&self, id: Oid) -> Result<Vec<u8>, ChangeError> {
        self.pool
            .blob(id)
            .map_err(git_err("reading a file's content"))
    }
}

/// A link's content is its target's; a directory, an escape or a dangling link is not read. The
/// target of a link in a commit or the index is a blob of the repository; in the working tree, a
/// file read again by its own path.
fn followed(target: Target, on_disk: bool) -> SideRead {
    match target {
        Target::File { path, bytes } if on_disk => Ok((bytes, Origin::Disk(path))),
        Target::File { bytes, .. } => {
            let id = blob_id(&bytes);
            Ok((bytes, Origin::Blob(id)))
        }
        Target::Dir(dir) => Err((
            format!("symlink to the directory `{dir}`: its files are checked where they are"),
            SkipKind::Other,
        )),
        Target::Refused(why) => Err((why, SkipKind::Symlink)),
        Target::Other(why) => Err((why, SkipKind::Other)),
    }
}

/// Reads working-tree files without following symlinks, in the file itself or in any directory on
/// its way: a link to `/etc/passwd` committed to a repository must never be read.
struct WorkdirReader {
    root: PathBuf,
    /// The root, opened once for reads that the kernel keeps beneath it.
    #[cfg(target_os = "linux")]
    root_fd: Option<std::os::fd::OwnedFd>,
    /// Directories (repository-relative) already known to be real directories.
    safe_dirs: Mutex<HashSet<String>>,
}

impl WorkdirReader {
    fn new(root: &Path) -> WorkdirReader {
        WorkdirReader {
            root: root.to_path_buf(),
            #[cfg(target_os = "linux")]
            root_fd: crate::tree::beneath::open_root(root),
            safe_dirs: Mutex::new(HashSet::new()),
        }
    }

    /// The file's bytes, or why it is not read.
    fn read(&self, rel: &str) -> Result<Result<Vec<u8>, &'static str>, ChangeError> {
        // One `openat2` that refuses any symlink on the way reads a regular file safely: no
        // `lstat` of the file and of each directory above it first, and no second walk of the
        // path to open it (the corpus' `check --all`: 69,821 system calls before, 65,561 after).
        // Whatever it refuses is looked at step by step below, to say why.
        #[cfg(target_os = "linux")]
        if let Some(root) = &self.root_fd
            && let Some(Some(bytes)) = crate::tree::beneath::read(root, rel)
        {
            return Ok(Ok(bytes));
        }
        let io_err = |source| ChangeError::Read {
            path: rel.to_string(),
            source,
        };
        if !self.parents_are_real_dirs(rel).map_err(io_err)? {
            return Ok(Err("inside a symlinked directory, not followed"));
        }
        let full = self.root.join(rel);
        let meta = std::fs::symlink_metadata(&full).map_err(io_err)?;
        if meta.file_type().is_symlink() {
            return Ok(Err("symlink, not followed"));
        }
        if !meta.is_file() {
            return Ok(Err("not a regular file"));
        }
        match read_regular(&full, &meta).map_err(io_err)? {
            Some(bytes) => Ok(Ok(bytes)),
            None => Ok(Err("changed while being read, not followed")),
        }
    }

    /// The set of known real directories; a worker that panicked left it valid (only inserts).
    fn safe(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        locked(&self.safe_dirs)
    }

    fn known_safe(&self, dir: &str) -> bool {
        self.safe().contains(dir)
    }

    fn parents_are_real_dirs(&self, rel: &str) -> std::io::Result<bool> {
        let mut end = 0;
        while let Some(slash) = rel[end..].find('/') {
            end += slash;
            let dir = &rel[..end];
            if !self.known_safe(dir) {
                let meta = std::fs::symlink_metadata(self.root.join(dir))?;
                if !meta.is_dir() {
                    return Ok(false);
                }
                self.safe().insert(dir.to_string());
            }
            end += 1;
        }
        Ok(true)
    }
}

/// The bytes of the regular file `meta` describes, or `None` when it was swapped for something
/// else (a symlink?) between the check and the open.
pub(super) fn read_regular(
    full: &Path,
    meta: &std::fs::Metadata,
) -> std::io::Result<Option<Vec<u8>>> {
    let file = std::fs::File::open(full)?;
    let opened = file.metadata()?;
    if !same_file(meta, &opened) {
        return Ok(None);
    }
    crate::tree::read_sized(&file, opened.len()).map(Some)
}

#[cfg(unix)]
fn same_file(checked: &std::fs::Metadata, opened: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    checked.dev() == opened.dev() && checked.ino() == opened.ino()
}

#[cfg(not(unix))]
fn same_file(_checked: &std::fs::Metadata, opened: &std::fs::Metadata) -> bool {
    opened.is_file()
}

/// Turns command-line paths into pathspecs relative to the repository root. `dir` is where they
/// were given: a subdirectory of the working tree prefixes them, as in `git diff -- PATH`.
fn repo_relative_paths(
    repo: &Repository,
    dir: &Path,
    paths: &[String],
) -> Result<Vec<String>, ChangeError> {
    let Some(root) = repo.workdir() else {
        return Ok(paths.to_vec());
    };
    let root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let base = dir.strip_prefix(&root).unwrap_or(Path::new(""));
    paths
        .iter()
        .map(|p| {
            let joined = if Path::new(p).is_absolute() {
                PathBuf::from(p)
            } else {
                root.join(base).join(p)
            };
            let normal = normalize(&joined);
            match normal.strip_prefix(&root) {
                Ok(rel) => Ok(rel.to_string_lossy().replace('\\', "/")),
                Err(_) => Err(ChangeError::PathOutsideRepository {
                    path: p.clone(),
                    root: root.clone(),
                }),
            }
        })
        .collect()
}

/// Resolves `.` and `..` without touching the disk (the path may name a deleted file).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_sorted_by_path_and_a_path_listed_twice_keeps_its_order() {
        let file = |path: &str, action| FileChange::new(path, action, None, None);
        // Every arrangement of five files, one path twice (deleted, then added): all sorted alike.
        let files = [
            file("b/x.yaml", Action::Added),
            file("a.yaml", Action::Deleted),
            file("a/b.yaml", Action::Added),
            file("a.yaml", Action::Added),
            file("c.yaml", Action::Modified),
        ];
        let expected = [
            ("a.yaml", Action::Deleted),
            ("a.yaml", Action::Added),
            ("a/b.yaml", Action::Added),
            ("b/x.yaml", Action::Added),
            ("c.yaml", Action::Modified),
        ];
        let mut arrangements = 0;
        for_each_arrangement(&mut (0..files.len()).collect::<Vec<_>>(), 0, &mut |order| {
            let mut shuffled: Vec<FileChange> = order.iter().map(|&i| files[i].clone()).collect();
            // The deleted side comes first in every input, as libgit2 lists it.
            let deleted = shuffled
                .iter()
                .position(|f| f.action() == Action::Deleted)
                .unwrap();
            let added = shuffled
                .iter()
                .position(|f| &*f.path == "a.yaml" && f.action() == Action::Added)
                .unwrap();
            if deleted > added {
                return;
            }
            sort_by_path(&mut shuffled);
            let got: Vec<(&str, Action)> =
                shuffled.iter().map(|f| (&*f.path, f.action())).collect();
            assert_eq!(got, expected, "from {order:?}");
            arrangements += 1;
        });
        assert_eq!(arrangements, 60);
    }

    fn for_each_arrangement(items: &mut Vec<usize>, at: usize, each: &mut dyn FnMut(&[usize])) {
        if at == items.len() {
            return each(items);
        }
        for i in at..items.len() {
            items.swap(at, i);
            for_each_arrangement(items, at + 1, each);
            items.swap(at, i);
        }
    }

    #[test]
    fn nul_in_the_first_8000_bytes_means_binary() {
        assert!(looks_binary(b"a\0b"));
        assert!(!looks_binary(b"kind: Pod\n"));
        let mut late = vec![b'a'; 8000];
        late.push(0);
        assert!(!looks_binary(&late));
    }

    fn change(action: Action, path: &str, before: Option<&str>, after: Option<&str>) -> FileChange {
        let content = |text: &str| Content::in_memory(text.as_bytes().to_vec());
        FileChange::new(path, action, before.map(content), after.map(content))
    }

    #[test]
    fn exact_renames_prefer_the_same_file_name() {
        let mut files = vec![
            change(Action::Added, "b/x.yaml", None, Some("same\n")),
            change(Action::Deleted, "a/other.yaml", Some("same\n"), None),
            change(Action::Deleted, "a/x.yaml", Some("same\n"), None),
            change(Action::Added, "b/empty.yaml", None, Some("")),
            change(Action::Deleted, "a/empty.yaml", Some(""), None),
        ];
        pair_exact_renames(&mut files);
        let got: Vec<_> = files
            .iter()
            .map(|f| (f.action(), &*f.path, f.old_path()))
            .collect();
        assert_eq!(
            got,
            vec![
                (Action::Renamed, "b/x.yaml", Some("a/x.yaml")),
                (Action::Deleted, "a/other.yaml", None),
                // Empty files say nothing about where they came from.
                (Action::Added, "b/empty.yaml", None),
                (Action::Deleted, "a/empty.yaml", None),
            ]
        );
        let moved = files[0].before().map(|c| c.read("b/x.yaml").unwrap());
        assert_eq!(moved.as_deref(), Some(&b"same\n"[..]));
    }

    /// What a listing of the working tree found, path by path: read (`link` or not) or skipped.
    fn listing(sorted: impl IntoIterator<Item = Sorted>) -> Vec<(String, String)> {
        let mut out: Vec<_> = sorted
            .into_iter()
            .filter_map(|s| match s {
                Sorted::Ignore => None,
                Sorted::Skip(path, why) => Some((path, why)),
                Sorted::Change(c) => {
                    Some((c.path, if c.new_link { "link" } else { "file" }.into()))
                }
            })
            .collect();
        out.sort();
        out
    }

    /// Every corner of `git status` the walk must agree on: tracked and untracked files, ignored
    /// ones tracked or not (by a file pattern and by a directory), symlinks, a nested repository,
    /// a submodule checked out and not, an empty directory, a pipe.
    fn working_tree_with_every_corner() -> (tempfile::TempDir, Repository) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let repo = Repository::init(root).unwrap();
        let write = |path: &str, text: &str| {
            let full = root.join(path);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(full, text).unwrap();
        };
        write(".gitignore", "ignored/\n*.tmp\n");
        write("a.yaml", "kind: A\n");
        write("sub/deep/d.yaml", "kind: D\n");
        write("ignored/tracked.yaml", "kind: T\n");
        write("ignored/untracked.yaml", "kind: U\n");
        write("kept.tmp", "tracked though ignored\n");
        write("dropped.tmp", "ignored\n");
        // Two levels below the `.gitignore` that ignores it.
        write("sub/deep/dropped.tmp", "ignored\n");
        write("sub/.gitignore", "local.yaml\n");
        write("sub/local.yaml", "kind: L\n");
        write("nested/.git/HEAD", "ref: refs/heads/main\n");
        write("nested/inner.yaml", "kind: N\n");
        write("module/.git", "gitdir: ../.git/modules/module\n");
        std::fs::create_dir_all(root.join("empty")).unwrap();
        std::fs::create_dir_all(root.join("unborn-module")).unwrap();
        std::os::unix::fs::symlink("a.yaml", root.join("link.yaml")).unwrap();
        std::os::unix::fs::symlink("sub", root.join("dir-link")).unwrap();
        let fifo = std::process::Command::new("mkfifo")
            .arg(root.join("pipe"))
            .status();
        assert!(fifo.unwrap().success(), "mkfifo failed");
        let mut index = repo.index().unwrap();
        for path in ["a.yaml", "ignored/tracked.yaml", "kept.tmp", ".gitignore"] {
            index.add_path(Path::new(path)).unwrap();
        }
        for path in ["module", "unborn-module"] {
            let entry = git2::IndexEntry {
                ctime: git2::IndexTime::new(0, 0),
                mtime: git2::IndexTime::new(0, 0),
                dev: 0,
                ino: 0,
                mode: 0o160000,
                uid: 0,
                gid: 0,
                file_size: 0,
                id: Oid::from_str("0123456789012345678901234567890123456789").unwrap(),
                flags: 0,
                flags_extended: 0,
                path: path.as_bytes().to_vec(),
            };
            index.add(&entry).unwrap();
        }
        index.write().unwrap();
        drop(index);
        (dir, repo)
    }

    /// More files than one slice: the first are read while the walk goes on, the rest after it,
    /// and every file is in the change set once, with its own content, whichever way it was read.
    #[test]
    fn every_file_is_read_once_whether_read_during_the_walk_or_after() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        Repository::init(root).unwrap();
        let mut expected = Vec::new();
        for d in 0..6 {
            std::fs::create_dir_all(root.join(format!("d{d}"))).unwrap();
            for f in 0..(READ_SLICE / 5) {
                let path = format!("d{d}/f{f}.yaml");
                std::fs::write(root.join(&path), format!("n: {d}-{f}\n")).unwrap();
                expected.push(path);
            }
            std::fs::write(root.join(format!("d{d}/x.bin")), b"\0binary").unwrap();
            std::os::unix::fs::symlink("f0.yaml", root.join(format!("d{d}/link.yaml"))).unwrap();
            expected.push(format!("d{d}/link.yaml"));
        }
        assert!(expected.len() > READ_SLICE + EARLY_CHUNK);
        expected.sort();
        let repo = Repository::open(root).unwrap();
        let set = detect_changes_in(&repo, &ChangeMode::All { rev: None }, &[]).unwrap();
        let paths: Vec<&str> = set.files.iter().map(|f| &*f.path).collect();
        assert_eq!(paths, expected);
        for file in &set.files {
            let (dir, name) = file.path.split_once('/').unwrap();
            let f = if name == "link.yaml" {
                "f0"
            } else {
                name.trim_end_matches(".yaml")
            };
            let text = format!("n: {}-{}\n", &dir[1..], &f[1..]);
            let read = file.after().unwrap().read(&file.path).unwrap();
            assert_eq!(read, text.as_bytes(), "{}", file.path);
        }
        let skipped: Vec<(&str, &SkipKind)> = set
            .skipped
            .iter()
            .map(|s| (s.path.as_str(), &s.kind))
            .collect();
        assert_eq!(skipped.len(), 6, "{skipped:?}");
        assert!(
            skipped
                .iter()
                .all(|(p, k)| p.ends_with("/x.bin") && matches!(k, SkipKind::Binary))
        );
    }

    fn walked_listing(repo: &Repository, paths: &[String]) -> Vec<(String, String)> {
        let mut found = Vec::new();
        Walk::new(repo, paths)
            .unwrap()
            .run(|f| {
                found.push(walked(f));
                Ok(())
            })
            .unwrap();
        listing(found)
    }

    fn diffed_listing(repo: &Repository, paths: &[String]) -> Vec<(String, String)> {
        let plan = Plan::new(repo, &ChangeMode::All { rev: None }).unwrap();
        let diff = plan.diff(repo, paths).unwrap();
        listing(diff.deltas().map(|d| classify(&d)))
    }

    #[test]
    fn the_walk_lists_what_libgit2s_diff_of_the_working_tree_lists() {
        let (_dir, repo) = working_tree_with_every_corner();
        let everything = walked_listing(&repo, &[]);
        assert_eq!(everything, diffed_listing(&repo, &[]));
        // The corners are in the listing, not just equal on both sides.
        let has = |path: &str, what: &str| everything.contains(&(path.into(), what.into()));
        assert!(
            has("ignored/tracked.yaml", "file") && has("kept.tmp", "file"),
            "{everything:?}"
        );
        assert!(
            has("link.yaml", "link") && has("dir-link", "link"),
            "{everything:?}"
        );
        assert!(has("module", "submodule, not followed"), "{everything:?}");
        assert!(
            has("unborn-module", "submodule, not followed"),
            "{everything:?}"
        );
        assert!(
            has("nested", "nested git repository, not followed"),
            "{everything:?}"
        );
        for absent in [
            "ignored/untracked.yaml",
            "dropped.tmp",
            "sub/deep/dropped.tmp",
            "sub/local.yaml",
            "pipe",
        ] {
            assert!(
                everything.iter().all(|(p, _)| p != absent),
                "{absent}: {everything:?}"
            );
        }
        for paths in [
            vec!["sub".to_string()],
            vec!["*.yaml".into()],
            vec!["ignored".into(), "module".into()],
        ] {
            assert_eq!(
                walked_listing(&repo, &paths),
                diffed_listing(&repo, &paths),
                "{paths:?}"
            );
        }
    }

    #[test]
    fn normalize_resolves_dots_lexically() {
        assert_eq!(
            normalize(Path::new("/r/a/./b/../c")),
            PathBuf::from("/r/a/c")
        );
        assert_eq!(normalize(Path::new("/r/../x")), PathBuf::from("/x"));
    }
}
