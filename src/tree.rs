//! Read-only views of a revision's files: the trusted base that config, schemas and policies come
//! from, and the checked tree that CRDs and kustomizations are looked up in.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A set of files at one revision, addressed by repository-relative `/` paths.
pub trait Tree: Send + Sync {
    fn read(&self, path: &str) -> Option<Vec<u8>>;
    /// Every regular file path under `prefix` ("" = all), sorted.
    fn files_under(&self, prefix: &str) -> Vec<String>;
    /// Human name of the revision, for messages: "working tree", "HEAD (1a2b3c4)", …
    fn describe(&self) -> String;
}

/// Files on disk under a directory (the working tree, or a server-side `--config-dir`).
pub struct DirTree {
    root: PathBuf,
    name: String,
}

impl DirTree {
    pub fn new(root: impl Into<PathBuf>, name: impl Into<String>) -> Self {
        DirTree {
            root: root.into(),
            name: name.into(),
        }
    }

    fn walk(&self, dir: &Path, out: &mut Vec<String>) {
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
                    self.walk(&path, out);
                }
            } else if kind.is_file()
                && let Ok(rel) = path.strip_prefix(&self.root)
            {
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
}

impl Tree for DirTree {
    fn read(&self, path: &str) -> Option<Vec<u8>> {
        // Symlinks are not followed: a tree must never read outside the repository.
        let full = self.root.join(path);
        let meta = std::fs::symlink_metadata(&full).ok()?;
        if !meta.is_file() {
            return None;
        }
        std::fs::read(full).ok()
    }

    fn files_under(&self, prefix: &str) -> Vec<String> {
        let start = self.root.join(prefix.trim_end_matches('/'));
        let mut out = Vec::new();
        if start.is_file() {
            out.push(prefix.to_string());
        } else {
            self.walk(&start, &mut out);
        }
        out.sort();
        out
    }

    fn describe(&self) -> String {
        self.name.clone()
    }
}

/// Files of one commit's tree, read through git2 on demand.
pub struct GitTree {
    repo: Mutex<git2::Repository>,
    tree: git2::Oid,
    name: String,
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
            repo: Mutex::new(again),
            name: format!("{rev} ({short})"),
        })
    }
}

fn reopen(repo: &git2::Repository) -> Result<git2::Repository, git2::Error> {
    // Inside a pre-receive hook the pushed objects live in a quarantine only visible through the
    // environment, so a bare repository is reopened the same way it was opened.
    if std::env::var_os("GIT_OBJECT_DIRECTORY").is_some() {
        git2::Repository::open_from_env()
    } else {
        git2::Repository::open(repo.path())
    }
}

fn is_regular(mode: i32) -> bool {
    mode == 0o100644 || mode == 0o100755
}

impl Tree for GitTree {
    fn read(&self, path: &str) -> Option<Vec<u8>> {
        let repo = self.repo.lock().ok()?;
        let tree = repo.find_tree(self.tree).ok()?;
        let entry = tree.get_path(Path::new(path)).ok()?;
        // Only regular files: symlinks (0o120000) and submodules are never followed.
        if !is_regular(entry.filemode()) {
            return None;
        }
        let blob = repo.find_blob(entry.id()).ok()?;
        Some(blob.content().to_vec())
    }

    /// Walks only the subtree of `prefix`: the gate lists `policies/` and CRD directories on
    /// every push, and walking all of a 50,000-file tree for each listing was half of a one-file
    /// push's time.
    fn files_under(&self, prefix: &str) -> Vec<String> {
        let prefix = prefix.trim_end_matches('/');
        let Ok(repo) = self.repo.lock() else {
            return Vec::new();
        };
        let Ok(root) = repo.find_tree(self.tree) else {
            return Vec::new();
        };
        let (start, base) = if prefix.is_empty() {
            (root, String::new())
        } else {
            let Ok(entry) = root.get_path(Path::new(prefix)) else {
                return Vec::new();
            };
            if is_regular(entry.filemode()) {
                return vec![prefix.to_owned()];
            }
            match entry.to_object(&repo).ok().and_then(|o| o.into_tree().ok()) {
                Some(tree) => (tree, format!("{prefix}/")),
                None => return Vec::new(),
            }
        };
        let mut out = Vec::new();
        let _ = start.walk(git2::TreeWalkMode::PreOrder, |dir, entry| {
            if entry.kind() == Some(git2::ObjectType::Blob) && is_regular(entry.filemode()) {
                out.push(format!("{base}{dir}{}", entry.name().unwrap_or_default()));
            }
            git2::TreeWalkResult::Ok
        });
        out.sort();
        out
    }

    fn describe(&self) -> String {
        self.name.clone()
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
}

impl Tree for MemTree {
    fn read(&self, path: &str) -> Option<Vec<u8>> {
        self.files.get(path).cloned()
    }

    fn files_under(&self, prefix: &str) -> Vec<String> {
        let prefix = prefix.trim_end_matches('/');
        self.files
            .keys()
            .filter(|p| {
                prefix.is_empty()
                    || p.as_str() == prefix
                    || p.strip_prefix(prefix).is_some_and(|r| r.starts_with('/'))
            })
            .cloned()
            .collect()
    }

    fn describe(&self) -> String {
        self.name.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_tree_listings_cover_exactly_the_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init(dir.path()).unwrap();
        for (path, text) in [
            ("a/b/c.rego", "x"),
            ("a/d.yaml", "y"),
            ("e.yaml", "z"),
            ("ab/f", "w"),
        ] {
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
        let tree = GitTree::open(&repo, "HEAD").unwrap();
        let all = ["a/b/c.rego", "a/d.yaml", "ab/f", "e.yaml"];
        assert_eq!(tree.files_under(""), all);
        assert_eq!(tree.files_under("a"), ["a/b/c.rego", "a/d.yaml"]);
        assert_eq!(tree.files_under("a/"), ["a/b/c.rego", "a/d.yaml"]);
        assert_eq!(tree.files_under("a/b"), ["a/b/c.rego"]);
        assert_eq!(tree.files_under("e.yaml"), ["e.yaml"]);
        assert_eq!(tree.files_under("ab"), ["ab/f"]);
        assert!(tree.files_under("missing").is_empty());
        assert_eq!(tree.read("a/d.yaml").as_deref(), Some(&b"y"[..]));
    }
}
