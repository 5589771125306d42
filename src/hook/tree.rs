//! The trusted base of a push as a [`Tree`] whose listings only walk the listed directory.
//!
//! The gate lists `policies/`, `policies/data/` and the CRD directories of the trusted base on
//! every push; walking the whole tree for each listing was half of a one-file push's time on a
//! 50,000-file repository. Reads are delegated to [`GitTree`].

use std::path::Path;
use std::sync::Mutex;

use git2::{Oid, Repository, TreeWalkMode, TreeWalkResult};

use crate::tree::{GitTree, Tree};

pub struct TrustedTree {
    inner: GitTree,
    repo: Mutex<Repository>,
    tree: Oid,
}

impl TrustedTree {
    pub fn open(repo: &Repository, rev: &str) -> Result<TrustedTree, git2::Error> {
        let inner = GitTree::open(repo, rev)?;
        let tree = repo.revparse_single(rev)?.peel_to_commit()?.tree_id();
        // git2 repositories are not `Sync`; inside the hook the environment names the quarantine.
        let again = if std::env::var_os("GIT_OBJECT_DIRECTORY").is_some() {
            Repository::open_from_env()?
        } else {
            Repository::open(repo.path())?
        };
        Ok(TrustedTree {
            inner,
            repo: Mutex::new(again),
            tree,
        })
    }
}

fn is_regular(mode: i32) -> bool {
    mode == 0o100644 || mode == 0o100755
}

impl Tree for TrustedTree {
    fn read(&self, path: &str) -> Option<Vec<u8>> {
        self.inner.read(path)
    }

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
        let _ = start.walk(TreeWalkMode::PreOrder, |dir, entry| {
            if entry.kind() == Some(git2::ObjectType::Blob) && is_regular(entry.filemode()) {
                out.push(format!("{base}{dir}{}", entry.name().unwrap_or_default()));
            }
            TreeWalkResult::Ok
        });
        out.sort();
        out
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listings_match_the_plain_git_tree() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path()).unwrap();
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

        let trusted = TrustedTree::open(&repo, "HEAD").unwrap();
        let plain = GitTree::open(&repo, "HEAD").unwrap();
        for prefix in ["", "a", "a/", "a/b", "e.yaml", "ab", "missing", "a/d.yaml"] {
            assert_eq!(
                trusted.files_under(prefix),
                plain.files_under(prefix),
                "prefix {prefix:?}"
            );
        }
        assert_eq!(trusted.read("a/d.yaml").as_deref(), Some(&b"y"[..]));
    }
}
