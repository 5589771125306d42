//! Every file of the working tree as `git status` lists them, for `check --all` without a
//! revision: found by walking the directories, not by a libgit2 diff against nothing. That diff
//! held every file at once (its deltas, the index, and a `stat` of every entry of a directory):
//! ~54 MB on 100,000 files, which set the whole run's peak. The walk holds only the directories
//! still to visit, and hands each path on as it finds it.
//!
//! It lists what git would (a test holds it to libgit2's diff on one repository):
//! - files that are not ignored, and ignored files that are tracked;
//! - symlinks, as links (followed later like every other symlink);
//! - a nested repository or a submodule as one skipped path, never entered;
//! - never `.git`.

use std::path::{Path, PathBuf};

use git2::{Index, Pathspec, PathspecFlags, Repository};

use super::detect::{ChangeError, require_workdir};
use crate::tree::join;

/// One path the walk found.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Found {
    /// A file or a symlink to read.
    File { path: String, link: bool },
    /// A path never read, and why.
    Skipped { path: String, reason: &'static str },
}

/// How many entries of a directory are read before deciding what the directory is: past it, the
/// walk asks with a `stat` instead, so a directory of 100,000 files is not held at once.
const LISTED_FIRST: usize = 512;

/// A directory still to visit, repository-relative (`""` is the root).
struct Pending {
    dir: String,
    /// The directory is ignored: only tracked files in it count.
    ignored: bool,
    /// Ignore rules may apply here: one of the directories above holds a `.gitignore`, or rules
    /// outside the tree apply anywhere.
    ruled: bool,
}

/// The walk's view of the repository: where the working tree is, what narrows it, and the index,
/// read only if a question needs it (a tracked file that is ignored, a submodule).
pub(super) struct Walk<'r> {
    repo: &'r Repository,
    root: PathBuf,
    pathspec: Option<Pathspec>,
    index: Option<Index>,
    /// `.git/info/exclude` or a user's global ignore file may ignore paths anywhere.
    ignores_anywhere: bool,
}

impl<'r> Walk<'r> {
    /// A walk of `repo`'s working tree narrowed by `paths` (pathspecs as `git diff -- PATH`).
    pub(super) fn new(repo: &'r Repository, paths: &[String]) -> Result<Walk<'r>, ChangeError> {
        let root = require_workdir(repo, "checking every file of the working tree")?;
        let pathspec = if paths.is_empty() {
            None
        } else {
            Some(Pathspec::new(paths).map_err(|source| ChangeError::Git {
                doing: "reading the paths given",
                source,
            })?)
        };
        Ok(Walk {
            repo,
            root: root.to_path_buf(),
            pathspec,
            index: None,
            ignores_anywhere: ignores_anywhere(repo),
        })
    }

    /// Hands every path found to `visit`, directory by directory.
    pub(super) fn run(
        mut self,
        mut visit: impl FnMut(Found) -> Result<(), ChangeError>,
    ) -> Result<(), ChangeError> {
        let mut pending = vec![Pending {
            dir: String::new(),
            ignored: false,
            ruled: self.ignores_anywhere,
        }];
        while let Some(next) = pending.pop() {
            self.visit_dir(next, &mut pending, &mut visit)?;
        }
        Ok(())
    }

    fn visit_dir(
        &mut self,
        at: Pending,
        pending: &mut Vec<Pending>,
        visit: &mut impl FnMut(Found) -> Result<(), ChangeError>,
    ) -> Result<(), ChangeError> {
        let full = self.root.join(&at.dir);
        let read_err = |source| ChangeError::Read {
            path: at.dir.clone(),
            source,
        };
        // The listing of a directory of at most `LISTED_FIRST` entries is read whole first: what
        // it holds says whether this is a repository of its own and whether ignore rules start
        // here, without a `stat` of `.git` and of `.gitignore` in it (two path lookups a
        // directory: 2,678 of the 65,561 system calls of the corpus' `check --all`). A larger one
        // is read as it streams.
        let mut listing = std::fs::read_dir(&full).map_err(read_err)?;
        let mut entries = Vec::new();
        for entry in listing.by_ref() {
            entries.push(entry.map_err(read_err)?);
            if entries.len() == LISTED_FIRST {
                break;
            }
        }
        let whole = entries.len() < LISTED_FIRST;
        let holds = |name: &str| {
            if whole {
                entries.iter().any(|e| e.file_name() == name)
            } else {
                std::fs::symlink_metadata(full.join(name)).is_ok()
            }
        };
        if !at.dir.is_empty() && holds(".git") {
            return self.nested(at.dir, at.ignored, visit);
        }
        // Ignore rules apply here if a `.gitignore` sits here or above; without any, asking
        // libgit2 about each file (a lookup per directory level) is time spent to learn nothing.
        let ruled = at.ruled || holds(".gitignore");
        let empty = entries.is_empty();
        let rest = listing.map(|entry| entry.map_err(read_err));
        for entry in entries.into_iter().map(Ok).chain(rest) {
            let entry = entry?;
            let name = entry.file_name();
            if name == ".git" {
                continue;
            }
            let path = join(&at.dir, &name.to_string_lossy());
            let kind = entry.file_type().map_err(|source| ChangeError::Read {
                path: path.clone(),
                source,
            })?;
            if kind.is_dir() {
                self.found_dir(path, &at, ruled, pending, visit)?;
            } else if kind.is_file() || kind.is_symlink() {
                let counts = if at.ignored || (ruled && self.is_ignored(&path)?) {
                    self.is_tracked(&path)?
                } else {
                    true
                };
                if counts && self.wanted(&path) {
                    let link = kind.is_symlink();
                    visit(Found::File { path, link })?;
                }
            }
            // Sockets, pipes and devices: git lists none of them.
        }
        // A submodule that was never checked out is an empty directory.
        if empty && !at.dir.is_empty() && self.is_submodule(&at.dir)? && self.wanted(&at.dir) {
            visit(Found::Skipped {
                path: at.dir,
                reason: "submodule, not followed",
            })?;
        }
        Ok(())
    }

    /// A directory with a `.git` of its own: a submodule, or a nested repository, never entered.
    /// git does not list an ignored nested repository at all.
    fn nested(
        &mut self,
        dir: String,
        ignored: bool,
        visit: &mut impl FnMut(Found) -> Result<(), ChangeError>,
    ) -> Result<(), ChangeError> {
        let reason = if self.is_submodule(&dir)? {
            Some("submodule, not followed")
        } else {
            (!ignored).then_some("nested git repository, not followed")
        };
        match reason {
            Some(reason) if self.wanted(&dir) => visit(Found::Skipped { path: dir, reason }),
            _ => Ok(()),
        }
    }

    fn found_dir(
        &mut self,
        path: String,
        parent: &Pending,
        ruled: bool,
        pending: &mut Vec<Pending>,
        visit: &mut impl FnMut(Found) -> Result<(), ChangeError>,
    ) -> Result<(), ChangeError> {
        let ignored = parent.ignored || (ruled && self.is_ignored(&path)?);
        if ignored && !self.tracks_under(&path)? {
            // Not read: nothing in it counts. A submodule there is still listed, as one path
            // (whether it is a repository is known from the directory's own listing otherwise).
            if self.is_submodule(&path)?
                && std::fs::symlink_metadata(self.root.join(&path).join(".git")).is_ok()
            {
                return self.nested(path, ignored, visit);
            }
            return Ok(());
        }
        pending.push(Pending {
            dir: path,
            ignored,
            ruled,
        });
        Ok(())
    }

    fn wanted(&self, path: &str) -> bool {
        self.pathspec
            .as_ref()
            .is_none_or(|spec| spec.matches_path(Path::new(path), PathspecFlags::DEFAULT))
    }

    fn is_ignored(&self, path: &str) -> Result<bool, ChangeError> {
        self.repo
            .is_path_ignored(path)
            .map_err(|source| ChangeError::Git {
                doing: "reading the ignore rules",
                source,
            })
    }

    fn index(&mut self) -> Result<&Index, ChangeError> {
        let index = match self.index.take() {
            Some(index) => index,
            None => self.repo.index().map_err(|source| ChangeError::Git {
                doing: "reading the index",
                source,
            })?,
        };
        Ok(self.index.insert(index))
    }

    fn is_tracked(&mut self, path: &str) -> Result<bool, ChangeError> {
        let index = self.index()?;
        Ok((0..=3).any(|stage| index.get_path(Path::new(path), stage).is_some()))
    }

    fn is_submodule(&mut self, path: &str) -> Result<bool, ChangeError> {
        const GITLINK: u32 = 0o160000;
        let entry = self.index()?.get_path(Path::new(path), 0);
        Ok(entry.is_some_and(|e| e.mode == GITLINK))
    }

    /// Whether the index tracks anything under the directory `dir`.
    fn tracks_under(&mut self, dir: &str) -> Result<bool, ChangeError> {
        let prefix = format!("{dir}/");
        let index = self.index()?;
        let Ok(at) = index.find_prefix(prefix.as_str()) else {
            return Ok(false);
        };
        Ok(index
            .get(at)
            .is_some_and(|e| e.path.starts_with(prefix.as_bytes())))
    }
}

/// Whether rules outside the working tree may ignore paths: `.git/info/exclude` with a rule, or a
/// global excludes file (`core.excludesFile`, else git's default place for it). When unsure, yes:
/// asking costs time, not asking could list an ignored file.
fn ignores_anywhere(repo: &Repository) -> bool {
    let has_rules = |file: &Path| match std::fs::read_to_string(file) {
        Ok(text) => text
            .lines()
            .any(|l| !l.trim().is_empty() && !l.starts_with('#')),
        Err(e) => e.kind() != std::io::ErrorKind::NotFound,
    };
    if has_rules(&repo.commondir().join("info").join("exclude")) {
        return true;
    }
    let configured = repo
        .config()
        .ok()
        .and_then(|c| c.get_path("core.excludesFile").ok());
    let global = configured.or_else(|| {
        let config = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
        Some(config.join("git").join("ignore"))
    });
    global.is_some_and(|file| has_rules(&file))
}
