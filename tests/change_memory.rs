//! The change set names where each changed file's bytes are, not the bytes: what it holds does not
//! grow with the size of the files it names, so a large push is judged file by file in flat memory.
//!
//! Measured in bytes held, not time: the live-heap count of the process's global allocator
//! (regorus' mimalloc, which counts every byte) while the change set is alive. One test in its own
//! binary, so no other test allocates meanwhile.

mod common;

use common::git::TestRepo;
use stategate::change::{ChangeMode, ChangeSet, detect_changes};

const FILES: usize = 40;

fn live_heap() -> u64 {
    regorus_mimalloc::global_allocation_stats_snapshot().allocated as u64
}

/// A manifest of about `size` bytes.
fn manifest(i: usize, size: usize) -> String {
    let mut text =
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c{i}\ndata:\n  blob: |\n");
    while text.len() < size {
        text.push_str("    0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n");
    }
    text
}

/// A repository of `FILES` manifests of `size` bytes at the base, each edited at head (also
/// `size` bytes) and then edited again in the working tree.
fn repo(size: usize) -> TestRepo {
    let repo = TestRepo::new();
    for i in 0..FILES {
        repo.write(&format!("apps/c{i}.yaml"), manifest(i, size));
    }
    repo.commit_all("base");
    repo.git(&["tag", "base"]);
    for i in 0..FILES {
        repo.write(&format!("apps/c{i}.yaml"), manifest(i + 1000, size));
    }
    repo.commit_all("head");
    for i in 0..FILES {
        repo.write(&format!("apps/c{i}.yaml"), manifest(i + 2000, size));
    }
    repo
}

/// Bytes the change set of `mode` holds once detected, and the set (checked to name every file).
fn held(repo: &TestRepo, mode: &ChangeMode) -> u64 {
    let start = live_heap();
    let set: ChangeSet = detect_changes(repo.path(), mode, &[]).expect("detect changes");
    let holding = live_heap();
    assert_eq!(set.files.len(), FILES, "{mode:?}");
    // Every side is still readable after detection: nothing was lost by not holding it.
    for file in &set.files {
        let after = file
            .read_after()
            .expect("readable")
            .expect("has a head side");
        assert!(after.len() > 1000, "{}", file.path);
    }
    drop(set);
    holding.saturating_sub(start)
}

#[test]
fn the_change_set_does_not_hold_the_files_bytes() {
    let small = repo(1_000);
    let large = repo(100_000);
    let modes = [
        (
            "--all --head HEAD",
            ChangeMode::All {
                rev: Some("HEAD".into()),
            },
        ),
        ("--all (working tree)", ChangeMode::All { rev: None }),
        (
            "--base base --head HEAD",
            ChangeMode::Range {
                base: "base".into(),
                head: "HEAD".into(),
            },
        ),
        ("working tree against HEAD", ChangeMode::WorkTree),
    ];
    for (name, mode) in &modes {
        // Warm up once (lazily built statics of libgit2's Rust side, thread pools).
        held(&small, mode);
        let small_held = held(&small, mode);
        let large_held = held(&large, mode);
        // The large files hold 99 kB more per side and file, 40 files, one or two sides: ~4-8 MB
        // if the bytes were kept. Names and ids are the same size in both repositories.
        let content = (FILES * 99_000) as u64;
        assert!(
            large_held < small_held + content / 20,
            "{name}: the change set holds {large_held} bytes for {FILES} files of 100 kB, \
             {small_held} for {FILES} files of 1 kB: it grows with the files' contents"
        );
    }
}
