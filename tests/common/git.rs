//! Real git repositories in temp dirs, built with the `git` CLI so that tests exercise what users
//! actually have on disk. Identity and dates are fixed, so commit ids are the same on every run, and
//! the user's own git configuration is kept out.
#![allow(dead_code)]

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A repository in a temporary directory, deleted when dropped.
pub struct TestRepo {
    dir: tempfile::TempDir,
    /// Commits made so far: each gets a date one minute after the previous one.
    commits: Cell<u32>,
}

impl TestRepo {
    /// Every file of HEAD, as `stategate check --all HEAD` detects them.
    pub fn every_file_at_head(&self) -> stategate::change::ChangeSet {
        stategate::change::detect_changes(
            self.path(),
            &stategate::change::ChangeMode::All {
                rev: Some("HEAD".into()),
            },
            &[],
        )
        .expect("detect every file at HEAD")
    }

    /// An empty repository on branch `main`.
    pub fn new() -> TestRepo {
        let dir = tempfile::Builder::new()
            .prefix("stategate-repo-")
            .tempdir()
            .expect("create temp dir");
        let repo = TestRepo {
            dir,
            commits: Cell::new(0),
        };
        repo.git(&["init", "-q", "-b", "main"]);
        repo
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Runs git in the repository and returns its trimmed stdout; panics with stderr on failure.
    pub fn git(&self, args: &[&str]) -> String {
        self.git_in(self.path(), args)
    }

    /// Runs git in `dir` (a subdirectory, or another repository) with the fixed test environment.
    pub fn git_in(&self, dir: &Path, args: &[&str]) -> String {
        let date = format!(
            "{} +0000",
            1_700_000_000 + 60 * u64::from(self.commits.get())
        );
        let mut cmd = Command::new("git");
        cmd.current_dir(dir)
            .args(args)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_AUTHOR_NAME", "Test Author")
            .env("GIT_AUTHOR_EMAIL", "author@example.com")
            .env("GIT_COMMITTER_NAME", "Test Committer")
            .env("GIT_COMMITTER_EMAIL", "committer@example.com")
            .env("GIT_AUTHOR_DATE", &date)
            .env("GIT_COMMITTER_DATE", &date);
        // A test run from inside a git hook must not act on the outer repository.
        for var in [
            "GIT_DIR",
            "GIT_WORK_TREE",
            "GIT_INDEX_FILE",
            "GIT_OBJECT_DIRECTORY",
            "GIT_ALTERNATE_OBJECT_DIRECTORIES",
            "GIT_QUARANTINE_PATH",
        ] {
            cmd.env_remove(var);
        }
        let out = cmd.output().expect("run git");
        assert!(
            out.status.success(),
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Absolute path of a repository-relative `/` path.
    pub fn abs(&self, rel: &str) -> PathBuf {
        self.path().join(rel)
    }

    /// Writes a file (creating its directories).
    pub fn write(&self, rel: &str, content: impl AsRef<[u8]>) {
        let path = self.abs(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create dirs");
        }
        std::fs::write(path, content).expect("write file");
    }

    /// Removes a file from the working tree only (like `rm`, not `git rm`).
    pub fn remove(&self, rel: &str) {
        std::fs::remove_file(self.abs(rel)).expect("remove file");
    }

    /// Renames a file in the working tree only (like `mv`, not `git mv`).
    pub fn rename(&self, from: &str, to: &str) {
        let to_path = self.abs(to);
        if let Some(parent) = to_path.parent() {
            std::fs::create_dir_all(parent).expect("create dirs");
        }
        std::fs::rename(self.abs(from), to_path).expect("rename file");
    }

    /// Creates a symlink at `rel` pointing to `target` (which may lie outside the repository).
    #[cfg(unix)]
    pub fn symlink(&self, target: &str, rel: &str) {
        let path = self.abs(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create dirs");
        }
        std::os::unix::fs::symlink(target, path).expect("create symlink");
    }

    /// Stages one path (`git add -- PATH`).
    pub fn add(&self, rel: &str) {
        self.git(&["add", "--", rel]);
    }

    /// Stages everything (`git add -A`).
    pub fn add_all(&self) {
        self.git(&["add", "-A"]);
    }

    /// Commits what is staged and returns the new commit id. Allows empty commits.
    pub fn commit(&self, message: &str) -> String {
        self.commits.set(self.commits.get() + 1);
        self.git(&["commit", "-q", "--allow-empty", "-m", message]);
        self.head()
    }

    /// Stages everything and commits it.
    pub fn commit_all(&self, message: &str) -> String {
        self.add_all();
        self.commit(message)
    }

    /// The commit id HEAD points at.
    pub fn head(&self) -> String {
        self.git(&["rev-parse", "HEAD"])
    }

    /// Resolves any revision to a commit id.
    pub fn rev(&self, rev: &str) -> String {
        self.git(&["rev-parse", &format!("{rev}^{{commit}}")])
    }

    /// Creates and switches to a new branch.
    pub fn branch(&self, name: &str) {
        self.git(&["checkout", "-q", "-b", name]);
    }

    /// Switches to an existing branch.
    pub fn checkout(&self, name: &str) {
        self.git(&["checkout", "-q", name]);
    }

    /// Adds `other` as a submodule at `rel` (local file transport allowed for the test only).
    pub fn add_submodule(&self, other: &TestRepo, rel: &str) {
        let url = other.path().to_string_lossy().into_owned();
        self.git(&[
            "-c",
            "protocol.file.allow=always",
            "submodule",
            "add",
            "-q",
            &url,
            rel,
        ]);
    }
}

impl Default for TestRepo {
    fn default() -> Self {
        TestRepo::new()
    }
}
