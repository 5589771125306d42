//! `stategate hook …`: installing stategate as a git hook.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The plain `.git/hooks/pre-commit` for people without the pre-commit framework. It calls the
/// binary by absolute path when stategate is not on PATH, so GUI git clients find it too.
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
            let _ = writeln!(err, "installed {}", hook.display());
            if let Some(kept) = kept {
                let _ = writeln!(
                    err,
                    "kept the previous hook as {} (it runs first)",
                    kept.display()
                );
            }
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
        script = script.replacen(
            "exec ",
            &format!("\"{}\" \"$@\" || exit $?\nexec ", local.display()),
            1,
        );
        kept = Some(local);
    }
    std::fs::write(hook, script)?;
    make_executable(hook)?;
    Ok(kept)
}

fn binary() -> String {
    let on_path = std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| dir.join("stategate").is_file())
    });
    if on_path {
        return "stategate".to_owned();
    }
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
