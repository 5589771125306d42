//! Helpers shared by the integration tests. Each test binary uses only some of them.
#![allow(dead_code)]

pub mod diff;
pub mod git;
pub mod quick;
pub mod run;

use std::path::{Path, PathBuf};

use git::TestRepo;

/// The real-world corpus (`STATEGATE_CORPUS`, default `../shared/corpus` from the crate root), or
/// `None` when it is absent: the caller then skips. Under `CI=true` a missing corpus fails instead,
/// so CI can never pass by skipping.
pub fn corpus() -> Option<PathBuf> {
    let dir = std::env::var_os("STATEGATE_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus"));
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "corpus not found at {} (CI=true requires it; set STATEGATE_CORPUS)",
            dir.display()
        );
    }
    eprintln!(
        "skipping: corpus not found at {} (set STATEGATE_CORPUS)",
        dir.display()
    );
    None
}

/// Add to `out` every regular file under `dir` whose extension is one of `extensions`, in the
/// order the directories list them; symlinks are not followed, and a directory that cannot be
/// read fails the test.
pub fn files_with_extension(dir: &Path, extensions: &[&str], out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            files_with_extension(&path, extensions, out);
        } else if kind.is_file()
            && path
                .extension()
                .is_some_and(|e| extensions.iter().any(|x| e == *x))
        {
            out.push(path);
        }
    }
}

/// The YAML and JSON files under `dir`, sorted: the manifests a corpus test reads.
pub fn manifest_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    files_with_extension(dir, &["yaml", "yml", "json"], &mut out);
    out.sort();
    out
}

/// Copy the files under `from/rel` into `repo`'s work tree at `rel` (not committed).
pub fn copy_tree(from: &Path, rel: &Path, repo: &TestRepo) {
    for entry in std::fs::read_dir(from.join(rel)).unwrap().flatten() {
        let rel = rel.join(entry.file_name());
        if entry.path().is_dir() {
            copy_tree(from, &rel, repo);
        } else {
            repo.write(&rel.to_string_lossy(), std::fs::read(entry.path()).unwrap());
        }
    }
}
