//! Read-only views of a revision's files: the trusted base that config, schemas and policies come
//! from, and the checked tree that CRDs and kustomizations are looked up in.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use crate::sync::{locked, unlocked};

mod git_walk;

/// A path that exists but cannot be read as a regular file: a symlink, a submodule, a directory
/// where a file was expected, or an I/O failure. Never the same as absent: the gate's own rules
/// must not fall back to defaults because their file turned into a symlink.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Unreadable {
    pub path: String,
    /// What the path is instead ("a symlink to `x`", "a submodule", …).
    pub reason: String,
}

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} is {}", self.path, self.reason)
    }
}

impl Unreadable {
    fn new(path: &str, reason: impl Into<String>) -> Unreadable {
        Unreadable {
            path: path.to_owned(),
            reason: reason.into(),
        }
    }
}

/// Whether repository path `path` is `dir` or lies below it; `""` is the repository's root and
/// holds every path. The one place that says "at or below": a string prefix alone would put
/// `apps/web-2` below `apps/web`.
pub fn is_within(path: &str, dir: &str) -> bool {
    dir.is_empty()
        || path
            .strip_prefix(dir)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The directories above repository path `path`, nearest first, ending with the root (`""`).
pub fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(path);
    std::iter::from_fn(move || {
        let here = rest?;
        rest = here.rfind('/').map(|slash| &here[..slash]);
        Some(rest.unwrap_or(""))
    })
}

/// The repository path of `name` in directory `dir` (`""` is the root). Exactly as long as the
/// path: a changed file keeps it as its `Box<str>` without a copy, where `format!`'s estimate left
/// room that each of 100,000 paths reallocated to shed.
pub fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        return name.to_owned();
    }
    let mut path = String::with_capacity(dir.len() + 1 + name.len());
    path.push_str(dir);
    path.push('/');
    path.push_str(name);
    path
}

/// What a listing of `prefix` holds when `prefix` is a file: the file, if `keep` accepts it.
fn the_file_itself(prefix: &str, keep: &(dyn Fn(&str) -> bool + Sync)) -> Vec<String> {
    if keep(prefix) {
        vec![prefix.to_owned()]
    } else {
        Vec::new()
    }
}

/// The bytes of an open regular file whose size `fstat` just gave: one buffer of that size and
/// the byte that shows the end, then a read that returns it. `File::read_to_end` asks the kernel
/// for the size and position again first (`fstat`, `lseek`): two of the eight system calls of
/// each of the two reads of every file (`check --all` of 10,000 files: 40,000 calls). A file that
/// grew meanwhile is read to its end all the same.
///
/// One read that returns exactly the size `fstat` gave, short of the extra byte asked for, is
/// the end: a read of a regular file stops short only where the file ends (POSIX `read`), so the
/// read that would return nothing is not made (one of the five system calls of a read).
pub fn read_sized(mut file: &std::fs::File, size: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let expected = usize::try_from(size).unwrap_or(usize::MAX - 1);
    let mut bytes = vec![0; expected.saturating_add(1)];
    let mut filled = 0;
    while filled < bytes.len() {
        match file.read(&mut bytes[filled..]) {
            Ok(0) => {
                bytes.truncate(filled);
                return Ok(bytes);
            }
            Ok(n) if filled == 0 && n == expected && expected > 0 => {
                bytes.truncate(n);
                return Ok(bytes);
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// The sorted paths of every regular file of a tree, kept from the first listing of the whole
/// tree when their text is at most [`KEEP_SMALL`] bytes, else from the second. A check lists the
/// whole tree for each index it builds (kustomizations, Flux sources, patches, charts): seven
/// walks of the corpus' working tree were 9% of its `check --all`, and the second of the two left
/// ran on one core while the other waited (the kustomization graph's, after the first look). A
/// listing kept from the first walk that nothing has asked for since is let go before the stream
/// ([`Tree::release_unused_listing`]): a check of plain manifests lists its tree once, and would
/// hold the listing to the end (25 bytes a file in `tests/stream_memory.rs`). Once the whole
/// tree is known, a directory's files are taken from it; before, a directory is walked alone, so
/// a push that lists only `policies/` never walks the rest.
struct Listing {
    paths: Mutex<Option<Arc<Paths>>>,
    asked: std::sync::atomic::AtomicBool,
    /// Whether the kept paths answered a listing after the one that kept them.
    used: std::sync::atomic::AtomicBool,
    /// [`KEEP_SMALL`], but in tests.
    keep_small: usize,
}

impl Default for Listing {
    fn default() -> Listing {
        Listing {
            paths: Mutex::default(),
            asked: Default::default(),
            used: Default::default(),
            keep_small: KEEP_SMALL,
        }
    }
}

impl Listing {
    /// The files under `prefix` that `keep` accepts, from the listing when it is known, or when
    /// `prefix` is the whole tree (`walk` then lists it, in any order, with the filter it is
    /// given); `None`: walk `prefix` alone.
    fn under(
        &self,
        prefix: &str,
        keep: &(dyn Fn(&str) -> bool + Sync),
        walk: impl FnOnce(&(dyn Fn(&str) -> bool + Sync)) -> Vec<String>,
    ) -> Option<Vec<String>> {
        use std::sync::atomic::Ordering::Relaxed;
        let prefix = prefix.trim_end_matches('/');
        if let Some(paths) = self.kept() {
            self.used.store(true, Relaxed);
            return Some(paths.under(prefix, keep));
        }
        if !prefix.is_empty() {
            return None;
        }
        if !self.asked.swap(true, Relaxed) {
            // Every path is copied into one text until it passes the bound; of a larger tree only
            // what `keep` accepts is.
            let small = Mutex::new(Some(Paths::default()));
            let mut wanted = walk(&|path| {
                let mut small = locked(&small);
                if let Some(paths) = small.as_mut() {
                    if paths.text.len() + path.len() > self.keep_small {
                        *small = None;
                    } else {
                        paths.push(path);
                    }
                }
                keep(path)
            });
            if let Some(paths) = unlocked(small) {
                return Some(self.keep(paths.sorted()).under("", keep));
            }
            wanted.sort_unstable();
            return Some(wanted);
        }
        // Spelled out as the first walk spells a small tree, whatever its size: a list of every
        // path first, copied into the kept text, held both at once.
        let all = Mutex::new(Paths::default());
        walk(&|path| {
            locked(&all).push(path);
            false
        });
        self.used.store(true, Relaxed);
        let all = unlocked(all);
        Some(self.keep(all.sorted()).under("", keep))
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Arc<Paths>>> {
        locked(&self.paths)
    }

    fn kept(&self) -> Option<Arc<Paths>> {
        self.slot().clone()
    }

    /// Keeps `paths`, unless two threads listed at once and the other's are kept already.
    fn keep(&self, paths: Paths) -> Arc<Paths> {
        Arc::clone(self.slot().get_or_insert_with(|| Arc::new(paths)))
    }

    /// Lets go of paths kept from the first listing that nothing has asked for since; the next
    /// listing of the whole tree walks it and keeps it.
    fn release_unused(&self) {
        if !self.used.load(Ordering::Relaxed) {
            *self.slot() = None;
        }
    }
}

/// The text of a tree's paths kept from its first listing, at most: the corpus' 3,053 paths are
/// 243 KB, 10,001 files of generated manifests 271 KB.
const KEEP_SMALL: usize = 1 << 20;

/// Paths in one string, under half the memory of a `Vec<String>`: sorted once kept, in the order a
/// walk met them while it is spelled out ([`Paths::push`]).
#[derive(Default)]
struct Paths {
    text: String,
    /// Where each path ends in `text`.
    ends: Vec<usize>,
}

impl Paths {
    fn push(&mut self, path: &str) {
        self.text.push_str(path);
        self.ends.push(self.text.len());
    }

    fn sorted(self) -> Paths {
        let mut order: Vec<usize> = (0..self.ends.len()).collect();
        order.sort_unstable_by(|&a, &b| self.get(a).cmp(self.get(b)));
        let mut sorted = Paths {
            text: String::with_capacity(self.text.len()),
            ends: Vec::with_capacity(self.ends.len()),
        };
        for i in order {
            sorted.push(self.get(i));
        }
        sorted
    }

    fn get(&self, i: usize) -> &str {
        let start = i.checked_sub(1).map_or(0, |before| self.ends[before]);
        &self.text[start..self.ends[i]]
    }

    /// The index of the first path not below `key`.
    fn first_from(&self, key: &str) -> usize {
        let (mut low, mut high) = (0, self.ends.len());
        while low < high {
            let middle = low + (high - low) / 2;
            if self.get(middle) < key {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        low
    }

    /// The paths under the directory `prefix` (or `prefix` itself when it is a file) that `keep`
    /// accepts.
    fn under(&self, prefix: &str, keep: &(dyn Fn(&str) -> bool + Sync)) -> Vec<String> {
        let all = 0..self.ends.len();
        if prefix.is_empty() {
            return all
                .map(|i| self.get(i))
                .filter(|p| keep(p))
                .map(str::to_owned)
                .collect();
        }
        let at = self.first_from(prefix);
        if at < self.ends.len() && self.get(at) == prefix {
            return the_file_itself(prefix, keep);
        }
        // Everything under `prefix/` sorts together (`a-b/…` and `a.yaml` sort before `a/`).
        let dir = format!("{prefix}/");
        (self.first_from(&dir)..self.ends.len())
            .map(|i| self.get(i))
            .take_while(|p| p.starts_with(&dir))
            .filter(|p| keep(p))
            .map(str::to_owned)
            .collect()
    }
}

/// A set of files at one revision, addressed by repository-relative `/` paths.
pub trait Tree: Send + Sync {
    /// The content of the regular file at `path`; `Ok(None)` when nothing is there.
    fn read_checked(&self, path: &str) -> Result<Option<Vec<u8>>, Unreadable>;
    /// For callers where an unreadable path counts as absent (lookups of optional inputs). The
    /// gate's own rules (config, policies, data) read through [`Tree::read_checked`].
    fn read(&self, path: &str) -> Option<Vec<u8>> {
        self.read_checked(path).ok().flatten()
    }
    /// Every regular file path under `prefix` ("" = all), sorted.
    fn files_under(&self, prefix: &str) -> Vec<String>;
    /// The paths of [`Tree::files_under`] that `keep` accepts. A tree that lists itself by
    /// walking copies no other path: a scan of the whole tree for the few files the check has
    /// not read yet held every path of a 100,000-file tree at once to find none.
    fn files_under_where(&self, prefix: &str, keep: &(dyn Fn(&str) -> bool + Sync)) -> Vec<String> {
        let mut files = self.files_under(prefix);
        files.retain(|p| keep(p));
        files
    }
    /// What `files_under` leaves out under `prefix` (and `prefix` itself): symlinks, submodules,
    /// directories that cannot be listed. Sorted by path.
    fn unreadable_under(&self, prefix: &str) -> Vec<Unreadable>;
    /// The regular files under `prefix`, sorted, each with the git blob whose bytes a read of it
    /// gives where the tree knows that without reading the file: caches keyed by blob id ask
    /// ([`crate::render::scan_cache`]). `None` where it does not (files on disk): read those.
    /// Only the files `keep` accepts, shown each path and blob, are listed: a cache can leave out
    /// what it knows before the path is copied.
    fn blobs_under_where(
        &self,
        prefix: &str,
        keep: &(dyn Fn(&str, Option<git2::Oid>) -> bool + Sync),
    ) -> Vec<(String, Option<git2::Oid>)> {
        let files = self.files_under_where(prefix, &|path| keep(path, None));
        files.into_iter().map(|path| (path, None)).collect()
    }
    /// Human name of the revision, for messages: "working tree", "HEAD (1a2b3c4)", …
    fn describe(&self) -> String;
    /// The id of the git tree this is, where it is one: every path in it is then fixed by the id,
    /// so what is learnt of its listing can be kept by it ([`crate::render::scan_cache`]).
    fn tree_id(&self) -> Option<git2::Oid> {
        None
    }
    /// Lets go of a listing of the whole tree that was kept and not asked for again (see
    /// `Listing`): called before the stream, whose peak it would add to.
    fn release_unused_listing(&self) {}
}

/// Files on disk under a directory (the working tree, or a server-side `--config-dir`).
pub struct DirTree {
    root: PathBuf,
    name: String,
    /// The root directory, opened once for [`beneath::read`]; `None` if it cannot be opened.
    #[cfg(target_os = "linux")]
    root_fd: OnceLock<Option<std::os::fd::OwnedFd>>,
    /// Every regular file, kept once the whole tree is listed ([`Listing`]).
    listing: Listing,
}

impl DirTree {
    pub fn new(root: impl Into<PathBuf>, name: impl Into<String>) -> Self {
        DirTree {
            root: root.into(),
            name: name.into(),
            #[cfg(target_os = "linux")]
            root_fd: OnceLock::new(),
            listing: Listing::default(),
        }
    }

    /// The files under `dir` that `keep` accepts, in no order. On one thread: listings run
    /// inside `OnceLock` initialisers (the schema set, the base's CRDs), where a rayon thread
    /// waiting on its walk could take up a job that waits on the same cell; and threads of the
    /// walk's own left 1.5-2 MiB more resident on the corpus for no time its benchmark could
    /// tell apart.
    fn walk(&self, dir: &Path, keep: &(dyn Fn(&str) -> bool + Sync), out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let path = entry.path();
            if kind.is_dir() {
                if entry.file_name() != ".git" {
                    self.walk(&path, keep, out);
                }
            } else if kind.is_file()
                && let Ok(rel) = path.strip_prefix(&self.root)
            {
                let rel = rel.to_string_lossy().replace('\\', "/");
                if keep(&rel) {
                    out.push(rel);
                }
            }
        }
    }
}

/// A regular file read with one `openat2` call that refuses every symlink and any step out of the
/// tree, in the file or in a directory on its way: the same rule as [`DirTree::inspect`], which
/// checks each component with its own `stat` (seven of them for a file six directories deep,
/// on every one of the five or six reads of each file a check makes).
#[cfg(target_os = "linux")]
pub(crate) mod beneath {
    use std::os::fd::OwnedFd;
    use std::path::Path;

    use rustix::fs::{Mode, OFlags, ResolveFlags, open, openat2};
    use rustix::io::Errno;

    /// The tree's root, for the reads beneath it (its own path may hold symlinks: only what is
    /// below it is the repository's).
    pub fn open_root(root: &Path) -> Option<OwnedFd> {
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        open(root, flags, Mode::empty()).ok()
    }

    /// The file's bytes, `Some(None)` when nothing is there; `None` when this way cannot say (a
    /// symlink, something not a regular file, an error, a kernel without `openat2`): the caller
    /// then inspects the path step by step and says what is in the way.
    pub fn read(root: &OwnedFd, path: &str) -> Option<Option<Vec<u8>>> {
        let path = path.trim_start_matches('/');
        if path.is_empty() {
            return None;
        }
        // O_NONBLOCK: opening a FIFO must not wait for a writer; it is then refused as not a
        // regular file.
        let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::NONBLOCK;
        let resolve = ResolveFlags::NO_SYMLINKS | ResolveFlags::BENEATH;
        let fd = match openat2(root, path, flags, Mode::empty(), resolve) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Some(None),
            Err(_) => return None,
        };
        let file = std::fs::File::from(fd);
        let meta = file.metadata().ok()?;
        if !meta.is_file() {
            return None;
        }
        super::read_sized(&file, meta.len()).ok().map(Some)
    }
}

/// What a non-regular directory entry is, in words for a message.
fn describe_kind(kind: std::fs::FileType, full: &Path) -> String {
    if kind.is_symlink() {
        match std::fs::read_link(full) {
            Ok(target) => format!("a symlink to `{}`", target.display()),
            Err(_) => "a symlink".to_owned(),
        }
    } else if kind.is_dir() {
        "a directory".to_owned()
    } else {
        "not a regular file".to_owned()
    }
}

impl DirTree {
    /// The metadata of `path` without following symlinks, not even as a parent directory: a tree
    /// must never read outside the repository. `Ok(None)` when nothing is there.
    fn inspect(&self, path: &str) -> Result<Option<(PathBuf, std::fs::Metadata)>, Unreadable> {
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        if parts.contains(&"..") {
            return Err(Unreadable::new(
                path,
                "a path that climbs out of the tree (`..`)",
            ));
        }
        let mut full = self.root.clone();
        let mut found = None;
        for (i, part) in parts.iter().enumerate() {
            if let Some((_, meta)) = &found {
                let meta: &std::fs::Metadata = meta;
                if meta.is_file() {
                    return Ok(None);
                }
                if !meta.is_dir() {
                    let here = parts[..i].join("/");
                    return Err(Unreadable::new(
                        &here,
                        describe_kind(meta.file_type(), &full),
                    ));
                }
            }
            full.push(part);
            found = match std::fs::symlink_metadata(&full) {
                Ok(meta) => Some((full.clone(), meta)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => {
                    let here = parts[..=i].join("/");
                    return Err(Unreadable::new(&here, format!("unreadable: {e}")));
                }
            };
        }
        Ok(found)
    }
}

impl Tree for DirTree {
    fn read_checked(&self, path: &str) -> Result<Option<Vec<u8>>, Unreadable> {
        #[cfg(target_os = "linux")]
        if let Some(root) = self.root_fd.get_or_init(|| beneath::open_root(&self.root))
            && let Some(read) = beneath::read(root, path)
        {
            return Ok(read);
        }
        let Some((full, meta)) = self.inspect(path)? else {
            return Ok(None);
        };
        if !meta.is_file() {
            return Err(Unreadable::new(
                path,
                describe_kind(meta.file_type(), &full),
            ));
        }
        std::fs::read(&full)
            .map(Some)
            .map_err(|e| Unreadable::new(path, format!("unreadable: {e}")))
    }

    fn files_under(&self, prefix: &str) -> Vec<String> {
        self.files_under_where(prefix, &|_| true)
    }

    fn files_under_where(&self, prefix: &str, keep: &(dyn Fn(&str) -> bool + Sync)) -> Vec<String> {
        if let Some(listed) = self.listing.under(prefix, keep, |keep| {
            let mut all = Vec::new();
            self.walk(&self.root, keep, &mut all);
            all
        }) {
            return listed;
        }
        let start = self.root.join(prefix.trim_end_matches('/'));
        if start.is_file() {
            return the_file_itself(prefix, keep);
        }
        let mut out = Vec::new();
        self.walk(&start, keep, &mut out);
        out.sort();
        out
    }

    fn unreadable_under(&self, prefix: &str) -> Vec<Unreadable> {
        let prefix = prefix.trim_matches('/');
        let mut out = Vec::new();
        if prefix.is_empty() {
            self.walk_unreadable(&self.root, &mut out);
            out.sort_by(|a, b| a.path.cmp(&b.path));
            return out;
        }
        let start = match self.inspect(prefix) {
            Err(u) => return vec![u],
            Ok(None) => return Vec::new(),
            Ok(Some((_, meta))) if meta.is_file() => return Vec::new(),
            Ok(Some((full, meta))) if !meta.is_dir() => {
                return vec![Unreadable::new(
                    prefix,
                    describe_kind(meta.file_type(), &full),
                )];
            }
            Ok(Some((full, _))) => full,
        };
        self.walk_unreadable(&start, &mut out);
        out.sort_by(|a, b| a.path.cmp(&b.path));
        out
    }

    fn describe(&self) -> String {
        self.name.clone()
    }

    fn release_unused_listing(&self) {
        self.listing.release_unused();
    }
}

impl DirTree {
    fn rel(&self, path: &Path) -> String {
        path.strip_prefix(&self.root)
            .unwrap_or(path)
            .to_string_lossy()
            .replace('\\', "/")
    }

    fn walk_unreadable(&self, dir: &Path, out: &mut Vec<Unreadable>) {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => return,
            Err(e) => {
                out.push(Unreadable::new(&self.rel(dir), format!("unreadable: {e}")));
                return;
            }
        };
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    out.push(Unreadable::new(&self.rel(dir), format!("unreadable: {e}")));
                    continue;
                }
            };
            let path = entry.path();
            match entry.file_type() {
                Ok(kind) if kind.is_dir() => {
                    if entry.file_name() != ".git" {
                        self.walk_unreadable(&path, out);
                    }
                }
                Ok(kind) if kind.is_file() => {}
                Ok(kind) => out.push(Unreadable::new(
                    &self.rel(&path),
                    describe_kind(kind, &path),
                )),
                Err(e) => out.push(Unreadable::new(
                    &self.rel(&path),
                    format!("unreadable: {e}"),
                )),
            }
        }
    }
}

/// How many files a [`GitTree`] looks up one by one before it walks the whole tree once. A
/// check of the working tree reads a few files of the trusted commit (the config, the policies):
/// walking all of a 100,000-file tree for them held 9 MB of entries to the end of the check, the
/// largest part of its peak after the change set.
const WALK_AFTER: usize = 64;

/// Files of one commit's tree, read through git2 on demand.
pub struct GitTree {
    repo: Mutex<git2::Repository>,
    tree: git2::Oid,
    name: String,
    /// Every entry of the tree by path (object id, file mode), from one walk once
    /// [`WALK_AFTER`] files were read. The Flux and target-namespace indexes read every manifest
    /// of the tree on each check; looking each one up from the root parsed every directory on its
    /// way again, one file at a time under the repository's lock: 3.8 s for a one-file push into a
    /// repository of 20,000 manifests (`benches/hook.sh 20000`).
    entries: OnceLock<HashMap<String, (git2::Oid, i32)>>,
    /// Files looked up before the entries were walked.
    lookups: AtomicUsize,
    /// Every regular file, kept once the whole tree is listed ([`Listing`]).
    listing: Listing,
    /// Where blobs are read, from any thread.
    blobs: RepoPool,
}

impl GitTree {
    /// `repo` is opened again (git2 repositories are not `Sync`); `rev` is anything `git rev-parse`
    /// takes.
    pub fn open(repo: &git2::Repository, rev: &str) -> Result<GitTree, git2::Error> {
        let commit = repo.revparse_single(rev)?.peel_to_commit()?;
        let short = commit.id().to_string()[..7].to_string();
        let again = reopen(repo)?;
        Ok(GitTree {
            tree: commit.tree_id(),
            blobs: RepoPool::new(&again),
            repo: Mutex::new(again),
            name: format!("{rev} ({short})"),
            entries: OnceLock::new(),
            lookups: AtomicUsize::new(0),
            listing: Listing::default(),
        })
    }

    /// The id and mode of the entry at `path`, `None` when there is none.
    fn entry(&self, path: &str) -> Result<Option<(git2::Oid, i32)>, git2::Error> {
        if self.entries.get().is_none()
            && self.lookups.fetch_add(1, Ordering::Relaxed) >= WALK_AFTER
        {
            self.entries.get_or_init(|| self.walk());
        }
        self.located(path)
    }

    /// The id and mode of the entry at `path`, from the walked entries or else git's own lookup
    /// from the root (a path the walk did not spell, or a walk that failed). Not counted as a
    /// read: a listing also finds where it starts with it.
    fn located(&self, path: &str) -> Result<Option<(git2::Oid, i32)>, git2::Error> {
        if let Some(&found) = self.entries.get().and_then(|e| e.get(path)) {
            return Ok(Some(found));
        }
        let repo = self.repo.lock().map_err(|_| poisoned())?;
        let tree = repo.find_tree(self.tree)?;
        match tree.get_path(Path::new(path)) {
            Ok(entry) => Ok(Some((entry.id(), entry.filemode()))),
            Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every entry of the tree, by path; empty when the tree cannot be walked.
    fn walk(&self) -> HashMap<String, (git2::Oid, i32)> {
        git_walk::entries(&self.blobs, self.tree, "", &|path, entry| {
            Some((path.to_owned(), (entry.id(), entry.filemode())))
        })
        .found
        .into_iter()
        .collect()
    }
}

fn poisoned() -> git2::Error {
    git2::Error::from_str("repository lock poisoned")
}

fn reopen(repo: &git2::Repository) -> Result<git2::Repository, git2::Error> {
    reopen_at(repo.path())
}

fn reopen_at(path: &Path) -> Result<git2::Repository, git2::Error> {
    // Inside a pre-receive hook the pushed objects live in a quarantine only visible through the
    // environment, so a bare repository is reopened the same way it was opened.
    if std::env::var_os("GIT_OBJECT_DIRECTORY").is_some() {
        git2::Repository::open_from_env()
    } else {
        git2::Repository::open(path)
    }
}

/// Repositories for reading objects from many threads at once: a git2 `Repository` is not
/// `Sync`, so a reader takes an idle one (opening another when none is idle) and puts it back.
/// The pool grows to the number of threads reading at the same time.
pub struct RepoPool {
    path: PathBuf,
    idle: Mutex<Vec<git2::Repository>>,
}

impl RepoPool {
    /// A pool over the repository `repo` was opened on (inside a pre-receive hook, the same way:
    /// through the environment that names the quarantine).
    pub fn new(repo: &git2::Repository) -> RepoPool {
        RepoPool {
            path: repo.path().to_path_buf(),
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Run `read` on a repository of the pool.
    pub fn with<T>(
        &self,
        read: impl FnOnce(&git2::Repository) -> Result<T, git2::Error>,
    ) -> Result<T, git2::Error> {
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let repo = match idle {
            Some(repo) => repo,
            None => reopen_at(&self.path)?,
        };
        let out = read(&repo);
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(repo);
        }
        out
    }

    /// The bytes of the blob `id`.
    pub fn blob(&self, id: git2::Oid) -> Result<Vec<u8>, git2::Error> {
        self.with(|repo| Ok(repo.find_blob(id)?.content().to_vec()))
    }
}

/// A tree that the contents of many files read from, behind one pointer: `Arc<dyn Tree>` is two
/// words, and every file of a working-tree check kept one (see [`Content`]).
#[derive(Clone)]
pub struct SharedTree(Arc<Arc<dyn Tree>>);

impl SharedTree {
    pub fn new(tree: Arc<dyn Tree>) -> SharedTree {
        SharedTree(Arc::new(tree))
    }
}

/// One side of a changed file: which bytes, not the bytes. A change of 100,000 files holds ids
/// and sizes; each file's bytes are read by the worker that parses them and dropped after.
///
/// 32 bytes: one is kept per changed file until the check ends, so what most files lack (a blob id
/// for a file read from disk, a path other than the file's own) is boxed apart, and the size
/// takes three bytes ([`Size`]). With both inline it took 80 bytes, a fifth of the memory of a
/// 100,000-file check (issue 12).
#[derive(Clone)]
pub struct Content {
    place: Place,
}

#[derive(Clone)]
enum Place {
    /// The blob of this id in the repository's object database.
    Blob(Arc<RepoPool>, git2::Oid, Size),
    /// A file of a tree on disk, read again through [`Tree::read_checked`] (never following a
    /// symlink) and checked against what was detected: a file edited since the change was
    /// detected is not judged by bytes nobody looked at. The check is a keyed XXH3 of the bytes
    /// ([`fingerprint`]): SHA-1, which the id needs, was a tenth of a 10,000-file check when every
    /// read of every file hashed again. Last, whether detection's glance at the bytes found them
    /// plain ([`Content::is_plain`]).
    Tree(SharedTree, u64, Option<Box<OnDisk>>, Size, bool),
    /// Bytes already in memory: stdin, loose files, tests.
    Memory(Arc<InMemory>),
}

/// A file's size in three bytes: exact below 16 MiB, and 16 MiB less a byte for anything larger.
/// Enough for what sizes are for (starting the largest files first, telling a file edited since
/// it was detected before hashing it), and three bytes fit beside a blob's 20-byte id and the
/// place's tag, before the pool's pointer: a `u64` beside the place took a `Content` from 32 bytes
/// to 40, 8 bytes of every file of a 100,000-file check (issue 12).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Size([u8; 3]);

impl Size {
    const MAX: u64 = (1 << 24) - 1;

    fn of(len: usize) -> Size {
        let len = u64::try_from(len).unwrap_or(u64::MAX).min(Size::MAX);
        let [a, b, c, ..] = len.to_le_bytes();
        Size([a, b, c])
    }

    fn get(self) -> u64 {
        let [a, b, c] = self.0;
        u64::from(u32::from_le_bytes([a, b, c, 0]))
    }
}

/// What only some files of a tree on disk have.
#[derive(Clone)]
struct OnDisk {
    /// Where the bytes are read, when not at the file's own path (a symlink's target): a second
    /// copy of every path was a tenth of a 100,000-file change set.
    elsewhere: Option<Box<str>>,
    /// The blob id, for a change that compares files by content ([`Content::in_tree`]).
    id: Option<git2::Oid>,
}

struct InMemory {
    bytes: Box<[u8]>,
    id: git2::Oid,
}

impl Content {
    /// The blob `id` of `pool`'s repository, `size` bytes long.
    pub fn blob(pool: &Arc<RepoPool>, id: git2::Oid, size: usize) -> Content {
        Content {
            place: Place::Blob(Arc::clone(pool), id, Size::of(size)),
        }
    }

    /// A file of `tree` whose bytes were `bytes` when the change was detected: the file at the
    /// path it is read by ([`Content::read`]), or at `elsewhere` (the target of a symlink).
    pub fn in_tree(tree: &SharedTree, elsewhere: Option<&str>, bytes: &[u8]) -> Content {
        Content::on_disk(tree, elsewhere, Some(blob_id(bytes)), bytes)
    }

    /// [`Content::in_tree`] without the blob id, for a change nothing compares by content.
    pub fn in_tree_unhashed(tree: &SharedTree, elsewhere: Option<&str>, bytes: &[u8]) -> Content {
        Content::on_disk(tree, elsewhere, None, bytes)
    }

    fn on_disk(
        tree: &SharedTree,
        elsewhere: Option<&str>,
        id: Option<git2::Oid>,
        bytes: &[u8],
    ) -> Content {
        let detail = (elsewhere.is_some() || id.is_some()).then(|| {
            Box::new(OnDisk {
                elsewhere: elsewhere.map(Box::from),
                id,
            })
        });
        Content {
            place: Place::Tree(
                tree.clone(),
                fingerprint(bytes),
                detail,
                Size::of(bytes.len()),
                false,
            ),
        }
    }

    /// This content, marked plain when `plain`: a look at the bytes when they were detected found
    /// nothing a later stage reads every file for ([`crate::change::Glance`]). Only a file of a
    /// tree keeps the mark (a blob's entry has no room for it; blobs are read by the object
    /// database, not by opening files, and cost little to read again).
    pub fn glanced(mut self, plain: bool) -> Content {
        if let Place::Tree(.., mark) = &mut self.place {
            *mark = plain;
        }
        self
    }

    /// Whether [`Content::glanced`] marked the content plain. The bytes read later are the bytes
    /// glanced at, or no bytes: [`Content::read`] refuses a file edited since.
    pub fn is_plain(&self) -> bool {
        matches!(self.place, Place::Tree(.., true))
    }

    pub fn in_memory(bytes: impl Into<Box<[u8]>>) -> Content {
        let bytes: Box<[u8]> = bytes.into();
        Content {
            place: Place::Memory(Arc::new(InMemory {
                id: blob_id(&bytes),
                bytes,
            })),
        }
    }

    /// git's blob id of the bytes; `None` for a file read from disk without one
    /// ([`Content::in_tree_unhashed`]).
    pub fn id(&self) -> Option<git2::Oid> {
        match &self.place {
            Place::Blob(_, id, _) => Some(*id),
            Place::Tree(_, _, detail, ..) => detail.as_ref().and_then(|d| d.id),
            Place::Memory(memory) => Some(memory.id),
        }
    }

    /// The size in bytes; for a blob or a file on disk of 16 MiB or more, 16 MiB less a byte
    /// ([`Size`]).
    pub fn size(&self) -> u64 {
        match &self.place {
            Place::Blob(_, _, size) | Place::Tree(_, _, _, size, _) => size.get(),
            Place::Memory(memory) => memory.bytes.len() as u64,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.size() == 0
    }

    /// The bytes. `path` is the file's path: it names the file in the error, and a file of a tree
    /// is read there unless it was found elsewhere.
    pub fn read(&self, path: &str) -> Result<Vec<u8>, Unreadable> {
        match &self.place {
            Place::Memory(memory) => Ok(memory.bytes.to_vec()),
            Place::Blob(pool, id, _) => pool
                .blob(*id)
                .map_err(|e| Unreadable::new(path, format!("unreadable: {}", e.message()))),
            Place::Tree(tree, detected, detail, size, _) => {
                let at = detail.as_ref().and_then(|d| d.elsewhere.as_deref());
                let bytes = match tree.0.read_checked(at.unwrap_or(path))? {
                    Some(bytes) => bytes,
                    None => return Err(Unreadable::new(path, "gone since the change was read")),
                };
                if Size::of(bytes.len()) != *size || fingerprint(&bytes) != *detected {
                    return Err(Unreadable::new(
                        path,
                        "changed since the change was read (edited while being checked?)",
                    ));
                }
                Ok(bytes)
            }
        }
    }
}

/// Equal blob ids; a content without one equals no other (callers take unequal for changed).
impl PartialEq for Content {
    fn eq(&self, other: &Content) -> bool {
        let id = self.id();
        id.is_some() && id == other.id()
    }
}

impl std::fmt::Debug for Content {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.id() {
            Some(id) => write!(f, "Content({id}, {} bytes)", self.size()),
            None => write!(f, "Content({} bytes)", self.size()),
        }
    }
}

/// A keyed XXH3 of `bytes`, the key drawn once per process: enough to tell a file edited between
/// two reads, and not one that a file's author can aim a collision at.
fn fingerprint(bytes: &[u8]) -> u64 {
    use std::hash::BuildHasher;
    static SEED: OnceLock<u64> = OnceLock::new();
    let seed = *SEED.get_or_init(|| std::hash::RandomState::new().hash_one(0u8));
    twox_hash::XxHash3_64::oneshot_with_seed(seed, bytes)
}

/// git's blob id of `bytes`.
pub fn blob_id(bytes: &[u8]) -> git2::Oid {
    // Hashing in memory only fails if libgit2 cannot initialise, and then nothing was read.
    git2::Oid::hash_object(git2::ObjectType::Blob, bytes).unwrap_or(git2::Oid::ZERO_SHA1)
}

fn is_regular(mode: i32) -> bool {
    mode == 0o100644 || mode == 0o100755
}

/// What a tree entry of this mode is, when it is not a regular file.
fn describe_mode(mode: i32) -> &'static str {
    match mode {
        0o120000 => "a symlink",
        0o160000 => "a submodule",
        0o040000 => "a directory",
        _ => "not a regular file",
    }
}

impl Tree for GitTree {
    fn tree_id(&self) -> Option<git2::Oid> {
        Some(self.tree)
    }

    fn read_checked(&self, path: &str) -> Result<Option<Vec<u8>>, Unreadable> {
        let broken = |e: git2::Error| Unreadable::new(path, format!("unreadable: {}", e.message()));
        let Some((id, mode)) = self.entry(path).map_err(broken)? else {
            return Ok(None);
        };
        // Only regular files: symlinks (0o120000) and submodules are never followed.
        if !is_regular(mode) {
            return Err(Unreadable::new(path, describe_mode(mode)));
        }
        self.blobs.blob(id).map(Some).map_err(broken)
    }

    fn unreadable_under(&self, prefix: &str) -> Vec<Unreadable> {
        let prefix = prefix.trim_matches('/');
        let (start, base) = if prefix.is_empty() {
            (self.tree, String::new())
        } else {
            match self.located(prefix) {
                Err(e) => {
                    return vec![Unreadable::new(
                        prefix,
                        format!("unreadable: {}", e.message()),
                    )];
                }
                Ok(None) => return Vec::new(),
                Ok(Some((id, 0o040000))) => (id, format!("{prefix}/")),
                Ok(Some((_, mode))) if is_regular(mode) => return Vec::new(),
                Ok(Some((_, mode))) => return vec![Unreadable::new(prefix, describe_mode(mode))],
            }
        };
        let walked = git_walk::entries(&self.blobs, start, &base, &|path, entry| {
            let mode = entry.filemode();
            (mode != 0o040000 && !is_regular(mode))
                .then(|| Unreadable::new(path, describe_mode(mode)))
        });
        let missing = walked.missing.iter().map(|dir| {
            let dir = dir.trim_end_matches('/');
            Unreadable::new(
                if dir.is_empty() { "." } else { dir },
                "unreadable: missing tree object",
            )
        });
        let mut out: Vec<Unreadable> = walked.found.into_iter().chain(missing).collect();
        out.sort_by(|a, b| a.path.cmp(&b.path));
        out
    }

    /// Until the whole tree is listed, walks only the subtree of `prefix`: the gate lists
    /// `policies/` and CRD directories on every push, and walking all of a 50,000-file tree for
    /// each listing was half of a one-file push's time.
    fn files_under(&self, prefix: &str) -> Vec<String> {
        self.files_under_where(prefix, &|_| true)
    }

    fn files_under_where(&self, prefix: &str, keep: &(dyn Fn(&str) -> bool + Sync)) -> Vec<String> {
        self.listing
            .under(prefix, keep, |keep| self.regular_files(keep))
            .unwrap_or_else(|| self.walk_files(prefix, keep))
    }

    fn blobs_under_where(
        &self,
        prefix: &str,
        keep: &(dyn Fn(&str, Option<git2::Oid>) -> bool + Sync),
    ) -> Vec<(String, Option<git2::Oid>)> {
        // From the entries when a read has walked them already; else a walk that keeps nothing.
        if let Some(entries) = self.entries.get() {
            let prefix = prefix.trim_end_matches('/');
            let mut out: Vec<_> = entries
                .iter()
                .filter(|(path, (id, mode))| {
                    is_regular(*mode) && is_within(path, prefix) && keep(path, Some(*id))
                })
                .map(|(path, (id, _))| (path.clone(), Some(*id)))
                .collect();
            out.sort_unstable();
            return out;
        }
        let keep = |path: &str, id| keep(path, Some(id));
        self.walk_regular(prefix, &keep, &|path, id| (path.to_owned(), Some(id)))
    }

    fn describe(&self) -> String {
        self.name.clone()
    }

    fn release_unused_listing(&self) {
        self.listing.release_unused();
    }
}

impl GitTree {
    /// Every regular file that `keep` accepts. From the entries reads look paths up in, when
    /// the tree is read by path too (a Flux repository's indexes read every manifest): one walk
    /// serves both. A tree only listed is walked with the filter and nothing kept: the entries,
    /// built for a listing of 100,000 plain manifests that no read followed, were 80 bytes a file
    /// to the end of the check.
    fn regular_files(&self, keep: &(dyn Fn(&str) -> bool + Sync)) -> Vec<String> {
        if self.entries.get().is_none() && self.lookups.load(Ordering::Relaxed) == 0 {
            return self.walk_files("", keep);
        }
        self.entries
            .get_or_init(|| self.walk())
            .iter()
            .filter(|(path, (_, mode))| is_regular(*mode) && keep(path))
            .map(|(path, _)| path.clone())
            .collect()
    }

    /// The regular files under `prefix` that `keep` accepts, sorted, from a walk of its subtree
    /// only.
    fn walk_files(&self, prefix: &str, keep: &(dyn Fn(&str) -> bool + Sync)) -> Vec<String> {
        self.walk_regular(prefix, &|path, _| keep(path), &|path, _| path.to_owned())
    }

    /// What `item` makes of each regular file under `prefix` that `keep` accepts (shown its path
    /// and blob id), in the order of the paths, from a walk of its subtree only.
    fn walk_regular<T: Send + Ord>(
        &self,
        prefix: &str,
        keep: &(dyn Fn(&str, git2::Oid) -> bool + Sync),
        item: &(dyn Fn(&str, git2::Oid) -> T + Sync),
    ) -> Vec<T> {
        let prefix = prefix.trim_end_matches('/');
        let (start, base) = if prefix.is_empty() {
            (self.tree, String::new())
        } else {
            match self.located(prefix) {
                Ok(Some((id, mode))) if is_regular(mode) && keep(prefix, id) => {
                    return vec![item(prefix, id)];
                }
                Ok(Some((id, 0o040000))) => (id, format!("{prefix}/")),
                _ => return Vec::new(),
            }
        };
        let walked = git_walk::entries(&self.blobs, start, &base, &|path, entry| {
            let file = entry.kind() == Some(git2::ObjectType::Blob) && is_regular(entry.filemode());
            (file && keep(path, entry.id())).then(|| item(path, entry.id()))
        });
        let mut out = walked.found;
        out.sort_unstable();
        out
    }
}

/// Files held in memory: tests, and empty trusted bases.
pub struct MemTree {
    pub files: BTreeMap<String, Vec<u8>>,
    pub name: String,
}

impl MemTree {
    /// A tree with no files: the trusted base of a repository without commits.
    pub fn empty(name: &str) -> MemTree {
        MemTree {
            files: BTreeMap::new(),
            name: name.to_string(),
        }
    }

    /// A tree of `files`, each a path and its text.
    pub fn with_files<P: AsRef<str>, T: AsRef<[u8]>>(name: &str, files: &[(P, T)]) -> MemTree {
        MemTree {
            files: files
                .iter()
                .map(|(path, text)| (path.as_ref().to_owned(), text.as_ref().to_vec()))
                .collect(),
            name: name.to_string(),
        }
    }
}

impl Tree for MemTree {
    fn read_checked(&self, path: &str) -> Result<Option<Vec<u8>>, Unreadable> {
        Ok(self.files.get(path).cloned())
    }

    /// An in-memory tree holds regular files only.
    fn unreadable_under(&self, _prefix: &str) -> Vec<Unreadable> {
        Vec::new()
    }

    fn files_under(&self, prefix: &str) -> Vec<String> {
        let prefix = prefix.trim_end_matches('/');
        self.files
            .keys()
            .filter(|p| is_within(p, prefix))
            .cloned()
            .collect()
    }

    fn describe(&self) -> String {
        self.name.clone()
    }
}

/// A tree of in-memory files that counts the reads of each path: how tests see what a stage read,
/// and how often.
#[cfg(test)]
pub(crate) struct CountingTree {
    inner: MemTree,
    pub reads: Mutex<BTreeMap<String, usize>>,
}

#[cfg(test)]
impl CountingTree {
    pub(crate) fn new(files: &[(&str, &str)]) -> CountingTree {
        CountingTree {
            inner: MemTree::with_files("test", files),
            reads: Mutex::default(),
        }
    }
}

#[cfg(test)]
impl Tree for CountingTree {
    fn read_checked(&self, path: &str) -> Result<Option<Vec<u8>>, Unreadable> {
        *locked(&self.reads).entry(path.to_owned()).or_default() += 1;
        self.inner.read_checked(path)
    }
    fn files_under(&self, prefix: &str) -> Vec<String> {
        self.inner.files_under(prefix)
    }
    fn unreadable_under(&self, prefix: &str) -> Vec<Unreadable> {
        self.inner.unreadable_under(prefix)
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn ancestors_run_from_the_nearest_directory_to_the_root() {
        let of = |path| ancestors(path).collect::<Vec<_>>();
        assert_eq!(of("a/b/c.yaml"), ["a/b", "a", ""]);
        assert_eq!(of("a"), [""]);
        assert_eq!(of(""), [""]);
    }

    #[test]
    fn a_path_is_within_its_own_directories_and_the_root_only() {
        assert!(is_within("apps/web/deploy.yaml", "apps/web"));
        assert!(is_within("apps/web", "apps/web"));
        assert!(is_within("apps/web/deploy.yaml", ""));
        assert!(!is_within("apps/web-2/deploy.yaml", "apps/web"));
        assert!(!is_within("apps", "apps/web"));
    }

    #[test]
    fn a_size_is_exact_below_sixteen_mib_and_saturates_above() {
        for len in [0, 1, 255, 256, 65_536, 300 * 1024, (1 << 24) - 1] {
            assert_eq!(Size::of(len).get(), len as u64);
        }
        assert_eq!(Size::of(1 << 24).get(), Size::MAX);
        assert_eq!(Size::of(usize::MAX).get(), Size::MAX);
        // Sizes order as the files do, so the largest are still started first.
        let big = Content::in_memory(vec![b'a'; 300 * 1024]);
        assert_eq!(big.size(), 300 * 1024);
        assert!(Content::in_memory(Vec::new()).is_empty());
    }

    #[test]
    fn a_changed_file_costs_under_fifty_bytes_besides_its_path() {
        // One of each is kept per changed file until the check ends: 100,000 files at the 144
        // bytes a `FileChange` was took 14 MB, two fifths of that check's peak (issue 12). At 64
        // bytes, 100,000 files still took 1.59x the memory of 10,000.
        assert!(std::mem::size_of::<Content>() <= 32);
        assert!(std::mem::size_of::<crate::change::FileChange>() <= 40);
        assert!(std::mem::size_of::<crate::change::ChangePath>() <= 8);
        assert_eq!(join("", "a.yaml").capacity(), "a.yaml".len());
        assert_eq!(join("apps/web", "a.yaml"), "apps/web/a.yaml");
        assert_eq!(
            join("apps/web", "a.yaml").capacity(),
            "apps/web/a.yaml".len()
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_dir_tree_reads_regular_files_and_never_through_a_symlink_or_a_fifo() {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        std::fs::create_dir_all(repo.join("real")).unwrap();
        std::fs::write(repo.join("a.yaml"), "a: 1\n").unwrap();
        std::fs::write(repo.join("real/x.yaml"), "x: 1\n").unwrap();
        symlink("a.yaml", repo.join("link.yaml")).unwrap();
        symlink("real", repo.join("linked")).unwrap();
        let fifo = std::process::Command::new("mkfifo")
            .arg(repo.join("pipe.yaml"))
            .status()
            .unwrap();
        assert!(fifo.success());
        // The root's own path may hold a symlink: only what is below it is the repository's.
        symlink(&repo, dir.path().join("checkout")).unwrap();
        let tree = DirTree::new(dir.path().join("checkout"), "working tree");

        assert_eq!(
            tree.read_checked("a.yaml").unwrap(),
            Some(b"a: 1\n".to_vec())
        );
        assert_eq!(
            tree.read_checked("real/x.yaml").unwrap(),
            Some(b"x: 1\n".to_vec())
        );
        assert_eq!(tree.read_checked("missing.yaml").unwrap(), None);
        assert_eq!(tree.read_checked("a.yaml/under").unwrap(), None);
        let refused = |path: &str| tree.read_checked(path).unwrap_err().reason;
        assert_eq!(refused("link.yaml"), "a symlink to `a.yaml`");
        assert_eq!(refused("linked/x.yaml"), "a symlink to `real`");
        assert_eq!(refused("pipe.yaml"), "not a regular file");
        assert_eq!(refused("real"), "a directory");
        assert_eq!(
            refused("../repo/a.yaml"),
            "a path that climbs out of the tree (`..`)"
        );
    }

    #[test]
    fn a_file_is_read_whole_whatever_size_was_given() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.yaml");
        std::fs::write(&path, "a: 1\nb: 2\n").unwrap();
        let read = |size| read_sized(&std::fs::File::open(&path).unwrap(), size).unwrap();
        assert_eq!(read(10), b"a: 1\nb: 2\n");
        // Grown or shrunk since its size was taken: still every byte, and no more.
        assert_eq!(read(3), b"a: 1\nb: 2\n");
        assert_eq!(read(4096), b"a: 1\nb: 2\n");
        assert_eq!(read(0), b"a: 1\nb: 2\n");
        assert_eq!(read(9), b"a: 1\nb: 2\n");
        std::fs::write(&path, "").unwrap();
        assert!(read(0).is_empty());
    }

    #[test]
    fn a_working_tree_file_edited_after_detection_is_not_read_as_the_detected_one() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.yaml"), "a: 1\n").unwrap();
        let tree = SharedTree::new(Arc::new(DirTree::new(dir.path(), "working tree")));
        let content = Content::in_tree(&tree, None, b"a: 1\n");
        assert_eq!(content.id(), Some(blob_id(b"a: 1\n")));
        let unhashed = Content::in_tree_unhashed(&tree, None, b"a: 1\n");
        assert_eq!(unhashed.id(), None);
        assert_ne!(
            unhashed, content,
            "without an id, no content equals another"
        );
        assert_eq!(unhashed.read("a.yaml").unwrap(), b"a: 1\n");
        assert_eq!(content.read("a.yaml").unwrap(), b"a: 1\n");
        // The same size, other bytes: the fingerprint tells them apart, not the length.
        std::fs::write(dir.path().join("a.yaml"), "a: 2\n").unwrap();
        let edited = content.read("a.yaml").unwrap_err();
        assert!(
            edited
                .reason
                .starts_with("changed since the change was read"),
            "{edited}"
        );
        std::fs::remove_file(dir.path().join("a.yaml")).unwrap();
        assert_eq!(
            content.read("a.yaml").unwrap_err().reason,
            "gone since the change was read"
        );
    }

    /// A repository with one commit of `files`.
    pub(crate) fn committed(files: &[(&str, &str)]) -> (tempfile::TempDir, git2::Repository) {
        let dir = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init(dir.path()).unwrap();
        for (path, text) in files {
            let full = dir.path().join(path);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(full, text).unwrap();
        }
        let mut index = repo.index().unwrap();
        index
            .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
            .unwrap();
        let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
        let sig = git2::Signature::new("t", "t@example.com", &git2::Time::new(0, 0)).unwrap();
        repo.commit(Some("HEAD"), &sig, &sig, "c", &tree, &[])
            .unwrap();
        drop(tree);
        (dir, repo)
    }

    /// Commit `paths` of the work tree on top of HEAD; the id of the commit's tree.
    pub(crate) fn recommitted(repo: &git2::Repository, paths: &[&str]) -> git2::Oid {
        let mut index = repo.index().unwrap();
        for path in paths {
            index.add_path(Path::new(path)).unwrap();
        }
        let tree_id = index.write_tree().unwrap();
        let tree = repo.find_tree(tree_id).unwrap();
        let head = repo.head().unwrap().peel_to_commit().unwrap();
        let sig = git2::Signature::new("t", "t@example.com", &git2::Time::new(0, 0)).unwrap();
        repo.commit(Some("HEAD"), &sig, &sig, "c", &tree, &[&head])
            .unwrap();
        tree_id
    }

    #[test]
    fn a_commit_is_walked_whole_only_once_many_files_were_read_and_answers_the_same_after() {
        let (_dir, repo) = committed(&[("a/b.yaml", "b"), ("c.yaml", "c")]);
        let tree = GitTree::open(&repo, "HEAD").unwrap();
        for read in 0..WALK_AFTER + 3 {
            assert_eq!(tree.read("a/b.yaml").as_deref(), Some(&b"b"[..]), "{read}");
            assert_eq!(tree.read("c.yaml").as_deref(), Some(&b"c"[..]), "{read}");
            assert_eq!(tree.read("missing.yaml"), None, "{read}");
            let unreadable = tree.read_checked("a").unwrap_err();
            assert_eq!(unreadable.reason, "a directory", "{read}");
            let walked = tree.entries.get().is_some();
            assert_eq!(
                walked,
                (read + 1) * 4 > WALK_AFTER,
                "after {} reads",
                (read + 1) * 4
            );
        }
    }

    #[test]
    fn listings_cover_exactly_the_prefix_before_and_after_the_whole_tree_is_known() {
        let (dir, repo) = committed(&[
            ("a/b/c.rego", "x"),
            ("a/d.yaml", "y"),
            ("a-b/g", "v"),
            ("e.yaml", "z"),
            ("ab/f", "w"),
        ]);
        let all = ["a-b/g", "a/b/c.rego", "a/d.yaml", "ab/f", "e.yaml"];
        let expect = |tree: &dyn Tree| {
            assert_eq!(tree.files_under("a"), ["a/b/c.rego", "a/d.yaml"]);
            assert_eq!(tree.files_under("a/"), ["a/b/c.rego", "a/d.yaml"]);
            assert_eq!(tree.files_under("a/b"), ["a/b/c.rego"]);
            assert_eq!(tree.files_under("e.yaml"), ["e.yaml"]);
            assert_eq!(tree.files_under("ab"), ["ab/f"]);
            assert!(tree.files_under("missing").is_empty());
            assert!(tree.files_under("a/d").is_empty());
        };
        let git = || GitTree::open(&repo, "HEAD").unwrap();
        let disk = || DirTree::new(dir.path(), "working tree");
        // Subtrees walked alone, then taken from the listing of the whole tree, kept once the
        // whole tree is listed.
        for tree in [&git() as &dyn Tree, &disk()] {
            expect(tree);
            assert_eq!(tree.files_under(""), all);
            expect(tree);
            assert_eq!(tree.files_under(""), all);
            expect(tree);
        }
        assert_eq!(git().read("a/d.yaml").as_deref(), Some(&b"y"[..]));
    }

    #[test]
    fn a_filtered_listing_is_the_listing_filtered_whether_walked_alone_once_or_kept() {
        let files = [
            ("a/b/c.rego", "x"),
            ("a/d.yaml", "y"),
            ("e.yaml", "z"),
            ("ab/f", "w"),
        ];
        let (dir, repo) = committed(&files);
        let mut memory = MemTree::empty("memory");
        for (path, text) in files {
            memory.files.insert(path.into(), text.into());
        }
        let yaml = |p: &str| p.ends_with(".yaml");
        let git = GitTree::open(&repo, "HEAD").unwrap();
        // Read by path before it is listed: its listings come from the entries reads look up.
        let git_read = GitTree::open(&repo, "HEAD").unwrap();
        assert_eq!(git_read.read("e.yaml").as_deref(), Some(&b"z"[..]));
        let disk = DirTree::new(dir.path(), "working tree");
        for tree in [&git as &dyn Tree, &git_read, &disk, &memory] {
            // A subtree walked alone, then the whole tree listed and kept: each answer is the
            // unfiltered listing with only what `keep` accepts.
            for _ in 0..3 {
                assert_eq!(tree.files_under_where("a", &yaml), ["a/d.yaml"]);
                assert!(tree.files_under_where("a/b/c.rego", &yaml).is_empty());
                assert_eq!(tree.files_under_where("", &yaml), ["a/d.yaml", "e.yaml"]);
                assert_eq!(
                    tree.files_under_where("", &|p| !yaml(p)),
                    ["a/b/c.rego", "ab/f"]
                );
                assert_eq!(tree.files_under_where("", &|_| true), tree.files_under(""));
            }
        }
    }

    #[test]
    fn a_git_tree_only_listed_keeps_no_entry_of_it_and_one_read_by_path_walks_it_once() {
        let (_dir, repo) = committed(&[("a/b.yaml", "x"), ("c.yaml", "y")]);
        let listed = GitTree::open(&repo, "HEAD").unwrap();
        for _ in 0..2 {
            assert_eq!(listed.files_under(""), ["a/b.yaml", "c.yaml"]);
        }
        assert!(listed.entries.get().is_none(), "a listing kept every entry");
        let read = GitTree::open(&repo, "HEAD").unwrap();
        assert!(read.read("c.yaml").is_some());
        assert_eq!(read.files_under(""), ["a/b.yaml", "c.yaml"]);
        assert_eq!(
            read.entries.get().map(HashMap::len),
            Some(3),
            "a/, a/b.yaml, c.yaml"
        );
    }

    /// `git ls-tree -r` of HEAD in `dir`: every entry (`-t`: trees too) as "mode path".
    fn git_ls_tree(dir: &Path, trees: bool) -> Vec<String> {
        let mut args = vec!["ls-tree", "-r", "--format=%(objectmode) %(path)"];
        if trees {
            args.push("-t");
        }
        let out = std::process::Command::new("git")
            .args(&args)
            .arg("HEAD")
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut lines: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect();
        lines.sort();
        lines
    }

    /// A pool of `n` threads, for work shared among as many as the check has.
    pub(crate) fn threads(n: usize) -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .unwrap()
    }

    #[test]
    fn a_commit_walked_on_many_threads_lists_what_git_lists() {
        let mut files = Vec::new();
        for i in 0..30 {
            files.push((format!("d{i:02}/a.yaml"), "a"));
            files.push((format!("d{i:02}/s{}/t/b.yaml", i % 3), "b"));
        }
        files.push(("top.yaml".into(), "c"));
        let named: Vec<(&str, &str)> = files.iter().map(|(p, t)| (p.as_str(), *t)).collect();
        let (dir, repo) = committed(&named);
        let pool = threads(4);
        let tree = GitTree::open(&repo, "HEAD").unwrap();
        pool.install(|| {
            let mode_path = |path: &str, mode: i32| format!("{mode:06o} {path}");
            let listed: Vec<String> = tree
                .files_under("")
                .iter()
                .map(|p| mode_path(p, 0o100644))
                .collect();
            assert_eq!(listed, git_ls_tree(dir.path(), false));
            let mut walked: Vec<String> = tree
                .walk()
                .iter()
                .map(|(p, (_, m))| mode_path(p, *m))
                .collect();
            walked.sort();
            assert_eq!(walked, git_ls_tree(dir.path(), true));
            assert_eq!(tree.files_under("d07"), ["d07/a.yaml", "d07/s1/t/b.yaml"]);
            assert!(tree.unreadable_under("").is_empty());
        });
    }

    #[test]
    fn each_file_of_a_commit_is_listed_with_the_blob_a_read_gives() {
        let (_dir, repo) = committed(&[("a/b.yaml", "b"), ("a/c/d.yaml", "d"), ("e.yaml", "e")]);
        let tree = GitTree::open(&repo, "HEAD").unwrap();
        let yaml = |p: &str, _| p.ends_with(".yaml");
        let walked = tree.blobs_under_where("", &yaml);
        let paths: Vec<&str> = walked.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, tree.files_under(""));
        for (path, id) in &walked {
            assert_eq!(*id, Some(blob_id(&tree.read(path).unwrap())), "{path}");
        }
        assert_eq!(tree.blobs_under_where("a", &yaml), walked[..2]);
        assert_eq!(tree.blobs_under_where("e.yaml", &yaml), walked[2..]);
        // The same from the entries that reads walk once many files were read.
        tree.entries.get_or_init(|| tree.walk());
        assert_eq!(tree.blobs_under_where("", &yaml), walked);
        assert_eq!(tree.blobs_under_where("a/", &yaml), walked[..2]);
    }

    #[test]
    fn a_missing_tree_object_is_reported_and_the_rest_still_listed() {
        // Distinct contents: equal directories would be one tree object, removed for all.
        let files: Vec<(String, String)> = (0..12)
            .map(|i| (format!("d{i:02}/sub/a.yaml"), format!("a: {i}")))
            .collect();
        let named: Vec<(&str, &str)> = files
            .iter()
            .map(|(p, t)| (p.as_str(), t.as_str()))
            .collect();
        let (dir, repo) = committed(&named);
        std::os::unix::fs::symlink("d00", dir.path().join("link")).unwrap();
        let root = repo.find_tree(recommitted(&repo, &["link"])).unwrap();
        // The loose object of d05/sub, removed as a broken repository would lack it.
        let sub = root
            .get_path(Path::new("d05/sub"))
            .unwrap()
            .id()
            .to_string();
        let object = dir
            .path()
            .join(".git/objects")
            .join(&sub[..2])
            .join(&sub[2..]);
        std::fs::remove_file(object).unwrap();
        let pool = threads(3);
        let tree = GitTree::open(&repo, "HEAD").unwrap();
        pool.install(|| {
            let listed = tree.files_under("");
            assert_eq!(listed.len(), 11, "{listed:?}");
            assert!(!listed.iter().any(|p| p.starts_with("d05/")));
            let unreadable: Vec<(String, String)> = tree
                .unreadable_under("")
                .into_iter()
                .map(|u| (u.path, u.reason))
                .collect();
            assert_eq!(
                unreadable,
                [
                    ("d05/sub".into(), "unreadable: missing tree object".into()),
                    ("link".into(), "a symlink".into()),
                ]
            );
            assert_eq!(
                tree.unreadable_under("d05").len(),
                1,
                "the subtree's own walk reports it too"
            );
        });
    }

    #[test]
    fn a_wide_and_deep_tree_is_listed_whole() {
        let dir = tempfile::tempdir().unwrap();
        let mut expected = Vec::new();
        for i in 0..40 {
            let sub = dir.path().join(format!("d{i:02}/sub"));
            std::fs::create_dir_all(&sub).unwrap();
            std::fs::write(sub.join("deep.yaml"), "a").unwrap();
            std::fs::write(dir.path().join(format!("d{i:02}/top.txt")), "b").unwrap();
            expected.push(format!("d{i:02}/sub/deep.yaml"));
            expected.push(format!("d{i:02}/top.txt"));
        }
        std::fs::create_dir_all(dir.path().join(".git/objects")).unwrap();
        std::fs::write(dir.path().join(".git/objects/x"), "c").unwrap();
        expected.sort();
        let tree = DirTree::new(dir.path(), "working tree");
        assert_eq!(tree.files_under(""), expected);
        let yaml: Vec<&str> = expected
            .iter()
            .map(String::as_str)
            .filter(|p| p.ends_with(".yaml"))
            .collect();
        assert_eq!(tree.files_under_where("", &|p| p.ends_with(".yaml")), yaml);
        assert_eq!(
            tree.files_under("d07"),
            ["d07/sub/deep.yaml", "d07/top.txt"]
        );
    }

    #[test]
    fn a_small_working_tree_is_kept_from_its_first_listing() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.yaml"), "a").unwrap();
        let tree = DirTree::new(dir.path(), "working tree");
        assert!(tree.files_under_where("", &|p| p != "a.yaml").is_empty());
        // Kept, whatever the first listing kept: a file written since is in no listing of it.
        std::fs::write(dir.path().join("b.yaml"), "b").unwrap();
        assert_eq!(tree.files_under(""), ["a.yaml"]);
        assert!(tree.files_under("b.yaml").is_empty());
    }

    #[test]
    fn a_listing_kept_from_the_first_walk_is_let_go_unless_asked_for_again() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.yaml"), "a").unwrap();
        let tree = DirTree::new(dir.path(), "working tree");
        assert_eq!(tree.files_under(""), ["a.yaml"]);
        tree.release_unused_listing();
        // Let go: the next listing walks again, and keeps what it finds for good.
        std::fs::write(dir.path().join("b.yaml"), "b").unwrap();
        assert_eq!(tree.files_under(""), ["a.yaml", "b.yaml"]);
        tree.release_unused_listing();
        std::fs::write(dir.path().join("c.yaml"), "c").unwrap();
        assert_eq!(tree.files_under(""), ["a.yaml", "b.yaml"]);
        // Asked for again after the first walk: kept.
        let again = DirTree::new(dir.path(), "working tree");
        assert_eq!(again.files_under(""), ["a.yaml", "b.yaml", "c.yaml"]);
        assert_eq!(again.files_under("a.yaml"), ["a.yaml"]);
        again.release_unused_listing();
        std::fs::write(dir.path().join("d.yaml"), "d").unwrap();
        assert_eq!(again.files_under(""), ["a.yaml", "b.yaml", "c.yaml"]);
    }

    #[test]
    fn a_large_working_tree_is_kept_only_when_listed_twice() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.yaml"), "a").unwrap();
        std::fs::write(dir.path().join("b.yaml"), "b").unwrap();
        let mut tree = DirTree::new(dir.path(), "working tree");
        // Larger than the bound: "a.yaml" and "b.yaml" are 12 bytes.
        tree.listing.keep_small = 11;
        assert_eq!(tree.files_under_where("", &|p| p == "a.yaml"), ["a.yaml"]);
        // Listed once, not kept: the next listing walks again.
        std::fs::write(dir.path().join("c.yaml"), "c").unwrap();
        assert_eq!(tree.files_under(""), ["a.yaml", "b.yaml", "c.yaml"]);
        // Listed twice, kept: a file written since is in no listing of this tree.
        std::fs::write(dir.path().join("d.yaml"), "d").unwrap();
        assert_eq!(tree.files_under(""), ["a.yaml", "b.yaml", "c.yaml"]);
        assert!(tree.files_under("d.yaml").is_empty());
    }
}
