//! The renderer's jail. kustomize and helm read what a change under review tells them to read, so
//! they run with as little reach as the gate can give them:
//!
//! - a private (0700) temporary directory holding the checkout, an empty `HOME` and `TMPDIR`, removed
//!   on drop and by [`abandon_all`] when a hook gives up on its worker thread;
//! - an environment cleared down to `PATH` and variables that point every proxy at a closed port
//!   and forbid git every transport, so that a fetch the static checks of [`super::graph`] missed
//!   still fails;
//! - on Linux, a seccomp filter that refuses the renderer (and everything it starts) any socket
//!   but a Unix one: Go's HTTP client ignores proxies for loopback addresses, so the environment
//!   alone would not keep it from `127.0.0.1`;
//! - its own process group, killed as a whole on timeout.
//!
//! Live sandboxes and renderer process groups are registered in one process-wide registry: the
//! hook's main thread cannot wait for an abandoned worker to unwind, so it cleans up for it.

use std::collections::BTreeSet;
use std::io;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};

/// Where proxies point: the discard port of the loopback address, which nothing listens on.
const CLOSED_PROXY: &str = "http://127.0.0.1:9";

/// `GIT_ALLOW_PROTOCOL` lists the transports git may use; naming none that exists forbids all,
/// `file` included, which would read other repositories on the server.
const NO_GIT_PROTOCOL: &str = "none";

#[derive(Default)]
struct Registry {
    /// Set once the process gave up on its renderers: no new sandbox or process may start.
    abandoned: bool,
    dirs: BTreeSet<PathBuf>,
    groups: BTreeSet<u32>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    abandoned: false,
    dirs: BTreeSet::new(),
    groups: BTreeSet::new(),
});

fn registry() -> MutexGuard<'static, Registry> {
    REGISTRY
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn abandoned_error() -> io::Error {
    io::Error::other("the gate gave up on rendering (timeout)")
}

/// Kill every running renderer's process group and remove every sandbox directory, and refuse new
/// ones. For a front door that stops waiting for its worker (the hook's `--timeout`): the worker's
/// destructors will never run.
pub fn abandon_all() {
    let mut registry = registry();
    registry.abandoned = true;
    for group in std::mem::take(&mut registry.groups) {
        kill_group(group);
    }
    for dir in std::mem::take(&mut registry.dirs) {
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[cfg(unix)]
fn kill_group(group: u32) {
    use nix::sys::signal::{Signal, killpg};
    use nix::unistd::Pid;
    if let Ok(id) = i32::try_from(group) {
        let _ = killpg(Pid::from_raw(id), Signal::SIGKILL);
    }
}

#[cfg(not(unix))]
fn kill_group(_group: u32) {}

/// A private directory: `tree/` (what the renderer reads), `home/` and `tmp/` (empty, for tools
/// that insist on writing somewhere).
pub struct Sandbox {
    root: PathBuf,
}

impl Sandbox {
    pub fn create() -> io::Result<Sandbox> {
        let mut registry = registry();
        if registry.abandoned {
            return Err(abandoned_error());
        }
        let root = private_temp_dir()?;
        registry.dirs.insert(root.clone());
        let sandbox = Sandbox { root };
        for sub in ["tree", "home", "tmp"] {
            std::fs::create_dir(sandbox.root.join(sub))?;
        }
        Ok(sandbox)
    }

    /// The directory the renderer runs in; repository paths are relative to it.
    pub fn tree(&self) -> PathBuf {
        self.root.join("tree")
    }

    /// Write a repository file into the tree. Refused once the sandbox was abandoned, so an
    /// abandoned worker cannot recreate a directory the main thread removed.
    pub fn write_file(&self, path: &str, bytes: &[u8]) -> io::Result<()> {
        let registry = registry();
        if registry.abandoned {
            return Err(abandoned_error());
        }
        let dest = self.tree().join(path);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(dest, bytes)
    }

    /// Run `program args…` in the tree, jailed, and collect its output.
    pub fn output(&self, program: &str, args: &[&str]) -> io::Result<Output> {
        let mut command = Command::new(program);
        command
            .args(args)
            .current_dir(self.tree())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        self.confine_environment(&mut command);
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = {
            // Spawned under the lock, so `abandon_all` either prevents the start or sees the group.
            let mut registry = registry();
            if registry.abandoned {
                return Err(abandoned_error());
            }
            let child = spawn_without_network(command)?;
            registry.groups.insert(child.id());
            child
        };
        let group = child.id();
        let output = child.wait_with_output();
        registry().groups.remove(&group);
        output
    }

    fn confine_environment(&self, command: &mut Command) {
        command.env_clear();
        for kept in ["PATH", "LANG", "LC_ALL"] {
            if let Some(value) = std::env::var_os(kept) {
                command.env(kept, value);
            }
        }
        let home = self.root.join("home");
        let tmp = self.root.join("tmp");
        command
            .env("HOME", &home)
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("XDG_CACHE_HOME", home.join(".cache"))
            .env("XDG_DATA_HOME", home.join(".local/share"))
            .env("TMPDIR", &tmp)
            .env("KUBECONFIG", home.join("kubeconfig"))
            .env("HELM_CACHE_HOME", home.join(".cache/helm"))
            .env("HELM_CONFIG_HOME", home.join(".config/helm"))
            .env("HELM_DATA_HOME", home.join(".local/share/helm"))
            // No plugin (a getter or post-renderer) runs but what the gate passes.
            .env("HELM_PLUGINS", home.join("helm-plugins"))
            .env("GIT_ALLOW_PROTOCOL", NO_GIT_PROTOCOL)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_SSH_COMMAND", "false");
        for proxy in ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"] {
            command
                .env(proxy, CLOSED_PROXY)
                .env(proxy.to_lowercase(), CLOSED_PROXY);
        }
        command.env("NO_PROXY", "").env("no_proxy", "");
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
        registry().dirs.remove(&self.root);
    }
}

/// A new directory only this user can enter, under the system temporary directory.
fn private_temp_dir() -> io::Result<PathBuf> {
    let dir = tempfile::Builder::new()
        .prefix("stategate-render-")
        .tempdir()?
        .keep();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(dir)
}

/// Start `command` from a short-lived thread that first installs a seccomp filter on itself: the
/// child inherits it, and so does everything the child starts. The gate's own threads keep their
/// network.
#[cfg(target_os = "linux")]
fn spawn_without_network(mut command: Command) -> io::Result<std::process::Child> {
    std::thread::Builder::new()
        .name("stategate-sandbox".into())
        .spawn(move || {
            seccomp::deny_network().map_err(|e| {
                io::Error::other(format!(
                    "cannot deny the renderer the network (seccomp): {e}"
                ))
            })?;
            command.spawn()
        })?
        .join()
        .map_err(|_| io::Error::other("the sandbox thread panicked"))?
}

#[cfg(not(target_os = "linux"))]
fn spawn_without_network(mut command: Command) -> io::Result<std::process::Child> {
    // Elsewhere only the environment (proxies, git protocols) keeps the renderer offline.
    command.spawn()
}

#[cfg(target_os = "linux")]
mod seccomp {
    use std::collections::BTreeMap;

    use seccompiler::{
        BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
        SeccompRule,
    };

    /// Refuse `socket()` for every address family but `AF_UNIX`, and io_uring (which can open
    /// sockets without `socket()`), with `EACCES`: the tools report "permission denied".
    pub fn deny_network() -> Result<(), String> {
        let not_unix = SeccompCondition::new(
            0,
            SeccompCmpArgLen::Dword,
            SeccompCmpOp::Ne,
            libc::AF_UNIX as u64,
        )
        .map_err(|e| e.to_string())?;
        let rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::from([
            (
                libc::SYS_socket,
                vec![SeccompRule::new(vec![not_unix]).map_err(|e| e.to_string())?],
            ),
            (libc::SYS_io_uring_setup, vec![]),
        ]);
        let arch = std::env::consts::ARCH
            .try_into()
            .map_err(|e: seccompiler::BackendError| e.to_string())?;
        let filter = SeccompFilter::new(
            rules,
            SeccompAction::Allow,
            SeccompAction::Errno(libc::EACCES as u32),
            arch,
        )
        .map_err(|e| e.to_string())?;
        let program: BpfProgram = filter
            .try_into()
            .map_err(|e: seccompiler::BackendError| e.to_string())?;
        seccompiler::apply_filter(&program).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn the_sandbox_is_private_and_removed_on_drop() {
        use std::os::unix::fs::PermissionsExt;
        let sandbox = Sandbox::create().expect("sandbox");
        let root = sandbox.root.clone();
        let mode = std::fs::metadata(&root)
            .expect("exists")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
        sandbox.write_file("a/b.yaml", b"x: 1\n").expect("write");
        drop(sandbox);
        assert!(!root.exists());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_renderer_gets_no_inet_socket_and_no_inherited_secrets() {
        let sandbox = Sandbox::create().expect("sandbox");
        let out = sandbox
            .output(
                "sh",
                &[
                    "-c",
                    "echo home=$HOME; echo git=$GIT_ALLOW_PROTOCOL; echo proxy=$https_proxy",
                ],
            )
            .expect("runs");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(text.contains("git=none"), "{text}");
        assert!(
            text.contains(&format!("home={}", sandbox.root.join("home").display())),
            "{text}"
        );
        assert!(text.contains("proxy=http://127.0.0.1:9"), "{text}");
    }
}
