//! Change detection on a 10,000-file repository: a push that touches every file must be found well
//! within the 5 s a pre-receive hook can afford. Run with `cargo bench --bench change_detect`; it
//! prints the time of each mode (best of a few runs) and fails if one takes 5 s or more.
#![allow(clippy::print_stdout)] // a benchmark reports on stdout

#[path = "../tests/common/git.rs"]
mod git;

use std::time::{Duration, Instant};

use git::TestRepo;
use stategate::change::{Action, ChangeMode, detect_changes};

const FILES: usize = 10_000;
const BUDGET: Duration = Duration::from_secs(5);

fn manifest(i: usize, replicas: usize) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app-{i}\n  namespace: team-{}\n\
         spec:\n  replicas: {replicas}\n  template:\n    spec:\n      containers:\n        - name: app\n          image: registry/app-{i}:1.{replicas}\n",
        i % 50
    )
}

fn path(i: usize) -> String {
    format!("clusters/c{}/apps/app-{i}.yaml", i % 20)
}

fn main() {
    let repo = TestRepo::new();
    for i in 0..FILES {
        repo.write(&path(i), manifest(i, 1));
    }
    let base = repo.commit_all("10,000 manifests");
    for i in 0..FILES {
        repo.write(&path(i), manifest(i, 2));
    }
    let head = repo.commit_all("touch every manifest");
    // Half the files moved elsewhere, half deleted and replaced: the rename detector's worst case.
    repo.git(&["mv", "clusters", "moved"]);
    for i in (0..FILES).step_by(2) {
        repo.remove(&format!("moved/c{}/apps/app-{i}.yaml", i % 20));
        repo.write(&format!("new/app-{i}.yaml"), format!("unrelated: {i}\n"));
    }
    repo.add_all();

    // The largest change that still gets inexact rename detection (sources × targets ≤ 1000²):
    // 1,000 files moved and edited, each compared with up to 1,000 sources.
    let edits = TestRepo::new();
    for i in 0..1_000 {
        edits.write(&path(i), manifest(i, 1));
    }
    let edits_base = edits.commit_all("1,000 manifests");
    edits.git(&["mv", "clusters", "moved"]);
    for i in 0..1_000 {
        edits.write(
            &format!("moved/c{}/apps/app-{i}.yaml", i % 20),
            manifest(i, 2),
        );
    }
    let edits_head = edits.commit_all("move and edit");

    let cases = [
        (
            "base...head, every file modified",
            ChangeMode::Range { base, head },
        ),
        (
            "--all at HEAD",
            ChangeMode::All {
                rev: Some("HEAD".into()),
            },
        ),
        ("--staged, renames + deletes + adds", ChangeMode::Staged),
        (
            "working tree, renames + deletes + adds",
            ChangeMode::WorkTree,
        ),
        ("--all in the working tree", ChangeMode::All { rev: None }),
    ];
    let mut over_budget = Vec::new();
    for (name, mode) in cases {
        measure(&repo, name, &mode, &mut over_budget);
    }
    let edited = ChangeMode::Range {
        base: edits_base,
        head: edits_head,
    };
    measure(
        &edits,
        "1,000 files moved and edited",
        &edited,
        &mut over_budget,
    );
    assert!(
        over_budget.is_empty(),
        "over the 5 s budget: {over_budget:?}"
    );
}

/// Prints the best of three runs of one mode; remembers it if it is over budget.
fn measure(repo: &TestRepo, name: &'static str, mode: &ChangeMode, over: &mut Vec<&'static str>) {
    let mut best = Duration::MAX;
    let mut files = 0;
    let mut renamed = 0;
    for _ in 0..3 {
        let start = Instant::now();
        let set = detect_changes(repo.path(), mode, &[]).expect("detect changes");
        best = best.min(start.elapsed());
        files = set.files.len() + set.skipped.len();
        renamed = set
            .files
            .iter()
            .filter(|f| f.action() == Action::Renamed)
            .count();
    }
    println!(
        "{name:<42} {files:>6} files ({renamed:>5} renamed) {:>8.1} ms",
        best.as_secs_f64() * 1e3
    );
    if best >= BUDGET {
        over.push(name);
    }
}
