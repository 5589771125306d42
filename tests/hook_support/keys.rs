//! SSH signing keys made with the real `ssh-keygen`, and approvals signed with git's own SSH
//! signing, for hook tests of approval rules.

use std::path::PathBuf;
use std::process::Command;

use crate::common::git::TestRepo;

/// Ed25519 keys made for the test: `<dir>/<name>` (private) and `<name>.pub`.
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

    /// An empty commit signed by `who`.
    pub fn sign_approval(&self, work: &TestRepo, who: &str) {
        let key = self.private(who);
        work.git(&[
            "-c",
            "gpg.format=ssh",
            "-c",
            &format!("user.signingkey={}", key.display()),
            "commit",
            "-q",
            "--allow-empty",
            "-S",
            "-m",
            &format!("Approve\n\nApproved-by: {who}"),
        ]);
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
