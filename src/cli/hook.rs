//! `stategate hook …`: installing stategate as a git hook.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The plain `.git/hooks/pre-commit` for people without the pre-commit framework. It calls the
/// binary by absolute path, so GUI git clients and minimal PATHs find it too.
pub fn pre_commit_script(stategate: &str) -> String {
    format!(
        "#!/bin/sh\n\
         # Installed by `stategate hook install --pre-commit`: checks staged desired state.\n\
         # Skip once with `git commit --no-verify`.\n\
         exec {stategate} check --staged\n"
    )
}

/// Write the pre-commit hook into the repository around `dir`. An existing hook that stategate did
/// not write is kept as `pre-commit.local` and run first.
pub fn install_pre_commit(dir: &Path, err: &mut dyn Write) -> u8 {
    let repo = match crate::change::open_repo(dir) {
        Ok(repo) => repo,
        Err(e) => {
            let _ = writeln!(err, "stategate: {e}");
            return 2;
        }
    };
    let hooks = repo.path().join("hooks");
    let hook = hooks.join("pre-commit");
    match write_hook(&hooks, &hook) {
        Ok(kept) => {
            say_installed(err, &hook, kept.as_deref());
            0
        }
        Err(e) => {
            let _ = writeln!(err, "stategate: cannot write {}: {e}", hook.display());
            2
        }
    }
}

fn write_hook(hooks: &Path, hook: &Path) -> std::io::Result<Option<PathBuf>> {
    std::fs::create_dir_all(hooks)?;
    let mut script = pre_commit_script(&binary());
    let mut kept = None;
    if let Ok(existing) = std::fs::read_to_string(hook)
        && !existing.contains("stategate hook install")
    {
        let local = hooks.join("pre-commit.local");
        std::fs::rename(hook, &local)?;
        // A kept hook deleted later is skipped with a note, not a broken commit.
        let quoted = format!("\"{}\"", local.display());
        script = script.replacen(
            "exec ",
            &format!(
                "if [ -e {quoted} ]; then\n  {quoted} \"$@\" || exit $?\nelse\n  \
                 echo \"stategate: the chained hook {} is gone; skipping it\" >&2\nfi\nexec ",
                local.display()
            ),
            1,
        );
        kept = Some(local);
    }
    std::fs::write(hook, script)?;
    make_executable(hook)?;
    Ok(kept)
}

/// The absolute path of this binary: hooks run with whatever PATH the git client has (GUI
/// clients, pre-commit's minimal environment), so the hook never looks stategate up.
fn binary() -> String {
    std::env::current_exe()
        .map(|p| format!("\"{}\"", p.display()))
        .unwrap_or_else(|_| "stategate".to_owned())
}

#[cfg(unix)]
fn make_executable(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
}

#[cfg(not(unix))]
fn make_executable(_: &Path) -> std::io::Result<()> {
    Ok(())
}

/// `stategate hook pre-receive`: flags a server administrator sets in the installed hook.
#[derive(Debug, Clone, clap::Args)]
pub struct PreReceiveArgs {
    /// Read `.stategate.yaml`, schemas and policies from this server-side directory instead of
    /// the pushed ref's current tip.
    #[arg(long)]
    pub config_dir: Option<PathBuf>,
    /// Append one JSON line per ref decision here (default: `<git dir>/stategate-audit.log`).
    #[arg(long)]
    pub audit_log: Option<PathBuf>,
    /// Time budget in seconds; past it the push is refused (fail closed).
    #[arg(long, default_value_t = 4.0)]
    pub timeout: f64,
    /// The pusher, when the server sets none of GITHUB_USER_LOGIN, GL_USERNAME, GL_USER (gitolite),
    /// GITEA_PUSHER_NAME, REMOTE_USER.
    #[arg(long)]
    pub user: Option<String>,
    /// Colour: never (default; git relays hook output verbatim) or always.
    #[arg(long, default_value = "never")]
    pub color: String,
    /// Run this hook first with the same stdin (the hook `hook install` found and kept); its
    /// failure rejects the push.
    #[arg(long)]
    pub chain: Option<PathBuf>,
}

/// Run the pre-receive hook: reads the push from stdin, reports on `err`; returns the exit code.
pub fn run_pre_receive(
    args: &PreReceiveArgs,
    stdin: &mut dyn std::io::Read,
    err: &mut dyn Write,
) -> u8 {
    let mut input = String::new();
    if let Err(e) = stdin.read_to_string(&mut input) {
        let _ = writeln!(
            err,
            "stategate: cannot read the pushed refs from stdin: {e}; push rejected"
        );
        return 2;
    }
    if let Some(local) = &args.chain
        && let Some(code) = run_chained(local, &input, err)
    {
        return code;
    }
    let timeout = if args.timeout.is_finite() && args.timeout > 0.0 {
        std::time::Duration::from_secs_f64(args.timeout)
    } else {
        std::time::Duration::from_secs(4)
    };
    let options = crate::hook::HookOptions {
        config_dir: args.config_dir.clone(),
        audit_log: args.audit_log.clone(),
        timeout,
        user: args.user.clone(),
        color: args.color == "always",
    };
    crate::hook::pre_receive(&input, &options, err)
}

/// Run the kept hook with the push on its stdin; `Some(exit code)` when it rejects the push (or
/// cannot be run, which rejects it too).
fn run_chained(local: &Path, input: &str, err: &mut dyn Write) -> Option<u8> {
    use std::process::{Command, Stdio};
    let child = Command::new(local)
        .stdin(Stdio::piped())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) => {
            let _ = writeln!(
                err,
                "stategate: cannot run the chained hook {}: {e}; push rejected",
                local.display()
            );
            return Some(2);
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that exits without reading its input is its own business; its status decides.
        let _ = stdin.write_all(input.as_bytes());
    }
    match child.wait() {
        Ok(status) if status.success() => None,
        Ok(status) => Some(status.code().map_or(1, |c| c.clamp(1, 255) as u8)),
        Err(e) => {
            let _ = writeln!(
                err,
                "stategate: the chained hook {} failed: {e}; push rejected",
                local.display()
            );
            Some(2)
        }
    }
}

/// The marker that tells stategate's own hooks from others when installing again.
const PRE_RECEIVE_MARKER: &str = "Installed by `stategate hook install --repo`";

/// The `hooks/pre-receive` script: it `exec`s stategate by absolute path (servers run hooks with
/// a minimal PATH) and leaves stdin to it untouched; stategate itself feeds a chained local hook.
/// Nothing in the script reads stdin, so no missing shell tool can empty the push it judges.
pub fn pre_receive_script(stategate: &str, local: Option<&Path>, extra_args: &[String]) -> String {
    let mut args: String = extra_args
        .iter()
        .map(|a| format!(" {}", shell_quote(a)))
        .collect();
    if let Some(local) = local {
        args = format!(
            " --chain {}{args}",
            shell_quote(&local.display().to_string())
        );
    }
    format!(
        "#!/bin/sh\n\
         # {PRE_RECEIVE_MARKER}: judges every pushed ref with stategate.\n\
         exec {} hook pre-receive{args}\n",
        shell_quote(stategate)
    )
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// Install the pre-receive hook into the (bare) repository at `repo_dir` and turn on push options
/// (`receive.advertisePushOptions`), which the emergency bypass needs.
///
/// `default_branch` names the branch whose rules judge new refs (`stategate.defaultBranch` in the
/// repository's git config), for servers whose HEAD names a branch the team does not use.
pub fn install_pre_receive(
    repo_dir: &Path,
    extra_args: &[String],
    default_branch: Option<&str>,
    err: &mut dyn Write,
) -> u8 {
    // The real git answers for the repository: it is on every git server, and it reads SHA-256
    // repositories, which stategate's libgit2 cannot (the hook then refuses pushes, saying why).
    let git_dir = match git_output(repo_dir, &["rev-parse", "--absolute-git-dir"]) {
        Ok(dir) => PathBuf::from(dir),
        Err(e) => {
            let _ = writeln!(
                err,
                "stategate: no git repository at {}: {e}",
                repo_dir.display()
            );
            return 2;
        }
    };
    if git_output(&git_dir, &["rev-parse", "--show-object-format"]).is_ok_and(|f| f == "sha256") {
        let _ = writeln!(
            err,
            "stategate: warning: {} is a SHA-256 repository, which stategate cannot read yet: the hook will refuse every push",
            git_dir.display()
        );
    }
    let hooks = git_dir.join("hooks");
    let hook = hooks.join("pre-receive");
    let binary = match std::env::current_exe().and_then(|p| p.canonicalize()) {
        Ok(path) => path.display().to_string(),
        Err(e) => {
            let _ = writeln!(err, "stategate: cannot find my own path: {e}");
            return 2;
        }
    };
    let result = (|| -> std::io::Result<Option<PathBuf>> {
        std::fs::create_dir_all(&hooks)?;
        let mut kept = None;
        if let Ok(existing) = std::fs::read_to_string(&hook)
            && !existing.contains(PRE_RECEIVE_MARKER)
        {
            let local = hooks.join("pre-receive.local");
            std::fs::rename(&hook, &local)?;
            kept = Some(local);
        } else if hooks.join("pre-receive.local").is_file() {
            kept = Some(hooks.join("pre-receive.local"));
        }
        std::fs::write(
            &hook,
            pre_receive_script(&binary, kept.as_deref(), extra_args),
        )?;
        make_executable(&hook)?;
        Ok(kept)
    })();
    let kept = match result {
        Ok(kept) => kept,
        Err(e) => {
            let _ = writeln!(err, "stategate: cannot write {}: {e}", hook.display());
            return 2;
        }
    };
    if let Err(e) = git_output(
        &git_dir,
        &["config", "receive.advertisePushOptions", "true"],
    ) {
        let _ = writeln!(
            err,
            "stategate: cannot set receive.advertisePushOptions: {e}"
        );
        return 2;
    }
    if let Some(branch) = default_branch {
        let key = crate::hook::judge::DEFAULT_BRANCH_KEY;
        if let Err(e) = git_output(&git_dir, &["config", key, branch]) {
            let _ = writeln!(err, "stategate: cannot set {key}: {e}");
            return 2;
        }
    }
    say_installed(err, &hook, kept.as_deref());
    let _ = writeln!(
        err,
        "set receive.advertisePushOptions=true (for -o stategate.bypass=\"reason\")"
    );
    if let Some(branch) = default_branch {
        let _ = writeln!(
            err,
            "set {}={branch} (new refs are judged by its rules)",
            crate::hook::judge::DEFAULT_BRANCH_KEY
        );
    }
    0
}

/// Run `git` in `dir` and return its trimmed stdout, or its stderr as the error.
fn git_output(dir: &Path, args: &[&str]) -> Result<String, String> {
    let out = std::process::Command::new("git")
        .current_dir(dir)
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// What both installers tell the user: the hook written, and where an existing one was kept.
fn say_installed(err: &mut dyn Write, hook: &Path, kept: Option<&Path>) {
    let _ = writeln!(err, "installed {}", hook.display());
    if let Some(kept) = kept {
        let _ = writeln!(
            err,
            "kept the previous hook as {} (it runs first)",
            kept.display()
        );
    }
}
