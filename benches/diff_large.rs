//! The dry-run diff of two revisions of the largest corpus repository (xunholy/k8s-gitops, 713
//! files, 128 kustomizations). The head revision bumps every `interval:` in one in four files, adds
//! an object to one in ten, deletes a few files and renames one app directory; kustomizations the
//! change touches are rendered for real with `kubectl kustomize` at both sides.
//!
//! Run with `cargo bench --bench diff_large`; prints the best of three runs, cold (an empty render
//! cache) and warm (the same diff again with the cache it filled), and what was diffed.
//! Measured 2026-11-25 on the 2-core build machine under load (other builds running): 5.87 s,
//! almost all of it `kubectl kustomize` runs for the touched kustomizations at both sides.
//! 2026-12-01, `cargo bench --profile dev --bench diff_large` (a debug build: no time for an
//! optimised one), load 10-14: cold 13.3-18.3 s, warm 2.9-5.0 s. With a logging kubectl on PATH:
//! cold 118 kubectl runs per diff (2 failed batches, 58 roots alone per side), warm 18. Of the 58
//! roots per side, 16 fail to render (`must resolve to a file`), so the one-run batch of each side
//! fails and every root is rendered alone; and failures are not cached (by design: a failure is
//! reported afresh), so a warm diff still renders the failing roots (a batch of 12 and one of 4
//! that fail, then 16 alone).
#![allow(clippy::print_stdout)] // a benchmark reports on stdout

#[path = "../tests/common/git.rs"]
mod git;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use git::TestRepo;
use stategate::change::{ChangeMode, detect_changes_in};
use stategate::config::Config;
use stategate::diff::{DiffOptions, Status, diff_change};
use stategate::render::cache::{DEFAULT_MAX_BYTES, RenderCache};
use stategate::tree::GitTree;

fn corpus() -> Option<PathBuf> {
    let dir = std::env::var_os("STATEGATE_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus"));
    dir.is_dir().then_some(dir)
}

fn copy_tree(from: &Path, root: &Path, repo: &TestRepo, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(from) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            copy_tree(&path, root, repo, out);
        } else if let Ok(rel) = path.strip_prefix(root) {
            let rel = rel.to_string_lossy().replace('\\', "/");
            repo.write(&rel, std::fs::read(&path).expect("read corpus file"));
            out.push(rel);
        }
    }
}

fn main() {
    let Some(corpus) = corpus() else {
        println!("skipping: corpus not found (set STATEGATE_CORPUS)");
        return;
    };
    let source = corpus.join("gitops-repos/xunholy-k8s-gitops");
    let repo = TestRepo::new();
    let mut files = Vec::new();
    copy_tree(&source, &source, &repo, &mut files);
    files.sort();
    let base = repo.commit_all("snapshot");

    let mut touched = 0;
    for (i, path) in files.iter().enumerate() {
        let Ok(text) = std::fs::read_to_string(repo.abs(path)) else {
            continue;
        };
        let mut new = text.clone();
        if i % 4 == 0 {
            new = new
                .replace("interval: 1h", "interval: 2h")
                .replace("interval: 30m", "interval: 45m");
        }
        if i % 10 == 0 && path.ends_with(".yaml") && !path.ends_with("kustomization.yaml") {
            new.push_str(&format!(
                "\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bench-{i}\ndata:\n  k: v\n"
            ));
        }
        if i % 97 == 5 && !path.ends_with("kustomization.yaml") {
            repo.remove(path);
            touched += 1;
        } else if new != text {
            repo.write(path, new);
            touched += 1;
        }
    }
    let head = repo.commit_all("bench change");

    let git = git2::Repository::open(repo.path()).expect("open");
    let config = Config::default();
    let mut best = [Duration::MAX; 2];
    let mut summary = String::new();
    for _ in 0..3 {
        // Cold: an empty render cache; warm: the same diff again, every render in the cache.
        let cache_dir = tempfile::tempdir().expect("cache dir");
        for slot in &mut best {
            let base_tree = GitTree::open(&git, &base).expect("base");
            let head_tree = GitTree::open(&git, &head).expect("head");
            let start = Instant::now();
            let mode = ChangeMode::Range {
                base: base.clone(),
                head: head.clone(),
            };
            let change = detect_changes_in(&git, &mode, &[]).expect("change");
            let options = DiffOptions {
                cache: RenderCache::open(cache_dir.path(), DEFAULT_MAX_BYTES),
                ..DiffOptions::default()
            };
            let result = diff_change(&change, &base_tree, &head_tree, &config, &options);
            *slot = (*slot).min(start.elapsed());
            let n = |s| result.count(s);
            summary = format!(
                "{} added, {} changed, {} removed, {} moved, {} unchanged; {} findings",
                n(Status::Added),
                n(Status::Changed),
                n(Status::Removed),
                n(Status::Moved),
                n(Status::Unchanged),
                result.findings.len()
            );
        }
    }
    println!(
        "diff_large: {} files, {touched} touched: {summary}\n\
         diff_large: best of 3: cold (empty render cache) {:.2?}, warm (every render cached) {:.2?}",
        files.len(),
        best[0],
        best[1]
    );
}
