//! A git server in a temp dir for hook tests: a bare repository with stategate installed as its
//! pre-receive hook by `stategate hook install --repo`, and clones that push to it for real.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::git::TestRepo;

/// The stategate binary cargo built for these tests.
pub fn stategate() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_stategate"))
}

/// A bare repository served from a temp dir.
pub struct Server {
    dir: tempfile::TempDir,
}

/// What a `git push` did: whether it succeeded, and what the server said (`remote:` lines).
#[derive(Debug)]
pub struct Pushed {
    pub ok: bool,
    pub stderr: String,
}

impl Pushed {
    pub fn remote_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter_map(|l| l.strip_prefix("remote: "))
            .collect()
    }

    pub fn says(&self, text: &str) -> bool {
        self.remote_lines().iter().any(|l| l.contains(text))
    }
}

impl Server {
    /// An empty bare repository whose default branch is `main`.
    pub fn new() -> Server {
        let dir = tempfile::Builder::new()
            .prefix("stategate-server-")
            .tempdir()
            .expect("temp dir");
        let server = Server { dir };
        run_git(
            server.dir.path(),
            &["init", "-q", "--bare", "-b", "main", "repo.git"],
        );
        server
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn git_dir(&self) -> PathBuf {
        self.dir.path().join("repo.git")
    }

    pub fn url(&self) -> String {
        format!("file://{}", self.git_dir().display())
    }

    /// `stategate hook install --repo <bare repo> [-- args]`, as an administrator would run it.
    /// Tests judge verdicts, not speed: unless a test sets its own `--timeout`, the hook gets a
    /// budget a debug build on a loaded test machine cannot miss (speed is proven by benches/).
    pub fn install_hook(&self, hook_args: &[&str]) -> String {
        let mut cmd = Command::new(stategate());
        cmd.args(["hook", "install", "--repo"]).arg(self.git_dir());
        cmd.arg("--").args(hook_args);
        if !hook_args.contains(&"--timeout") {
            cmd.args(["--timeout", "120"]);
        }
        let out = cmd.output().expect("run stategate");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "hook install failed: {stderr}");
        stderr
    }

    pub fn audit_lines(&self) -> Vec<serde_json::Value> {
        let text =
            std::fs::read_to_string(self.git_dir().join("stategate-audit.log")).unwrap_or_default();
        text.lines()
            .map(|l| serde_json::from_str(l).expect("audit line is JSON"))
            .collect()
    }

    /// The id a ref of the server points at.
    pub fn rev(&self, rev: &str) -> String {
        run_git(&self.git_dir(), &["rev-parse", rev])
    }
}

/// Run git outside any test repository's fixed environment; panics on failure.
pub fn run_git(dir: &Path, args: &[&str]) -> String {
    let out = clean_git(dir).args(args).output().expect("run git");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn clean_git(dir: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null");
    for var in [
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_INDEX_FILE",
        "GIT_OBJECT_DIRECTORY",
        "GIT_ALTERNATE_OBJECT_DIRECTORIES",
        "GIT_QUARANTINE_PATH",
        "GL_ID",
        "GL_USERNAME",
        "GITHUB_USER_LOGIN",
        "GITEA_PUSHER_NAME",
        "REMOTE_USER",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// `git push` from a work repository; `env` reaches the hook (git passes its environment on for
/// file:// pushes), which is how the tests play the server's identity variables.
pub fn push(work: &TestRepo, url: &str, args: &[&str], env: &[(&str, &str)]) -> Pushed {
    let mut cmd = clean_git(work.path());
    cmd.arg("push").arg(url).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run git push");
    Pushed {
        ok: out.status.success(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Ed25519 keys made for a test with the real `ssh-keygen`: `<dir>/<name>` (private), `<name>.pub`.
pub struct Keys {
    dir: tempfile::TempDir,
}

impl Keys {
    pub fn new(names: &[&str]) -> Keys {
        let dir = tempfile::tempdir().unwrap();
        for name in names {
            let out = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
                .arg(dir.path().join(name))
                .output()
                .expect("ssh-keygen runs");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Keys { dir }
    }

    pub fn private(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `allowed_signers` lines: `<principal> <key type> <key>`.
    pub fn allowed_signers(&self, names: &[&str]) -> String {
        names
            .iter()
            .map(|name| {
                let public =
                    std::fs::read_to_string(self.dir.path().join(format!("{name}.pub"))).unwrap();
                let mut parts = public.split_whitespace();
                let (kind, key) = (parts.next().unwrap(), parts.next().unwrap());
                format!("{name} {kind} {key}\n")
            })
            .collect()
    }

    /// `git` arguments that make the next commit SSH-signed by `who`.
    fn signing(&self, who: &str) -> [String; 4] {
        [
            "-c".into(),
            "gpg.format=ssh".into(),
            "-c".into(),
            format!("user.signingkey={}", self.private(who).display()),
        ]
    }

    /// An empty commit signed by `who`: an approval of the tree it sits on.
    pub fn sign_approval(&self, work: &TestRepo, who: &str) {
        let mut args: Vec<String> = self.signing(who).into();
        args.extend(["commit", "-q", "--allow-empty", "-S", "-m"].map(String::from));
        args.push(format!("Approve\n\nApproved-by: {who}"));
        work.git(&args.iter().map(String::as_str).collect::<Vec<_>>());
    }

    /// Stage everything and commit it signed by `who` (the author of a change, proven).
    pub fn commit_signed(&self, work: &TestRepo, who: &str, message: &str) {
        work.add_all();
        let mut args: Vec<String> = self.signing(who).into();
        args.extend(["commit", "-q", "-S", "-m", message].map(String::from));
        work.git(&args.iter().map(String::as_str).collect::<Vec<_>>());
    }
}

/// Without `ssh-keygen` nothing can be signed; the tests then say so and skip (fail under CI).
pub fn ssh_keygen_available() -> bool {
    let available = Command::new("ssh-keygen").arg("-?").output().is_ok();
    if !available {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true needs ssh-keygen"
        );
        eprintln!("skipping: ssh-keygen is not installed");
    }
    available
}
