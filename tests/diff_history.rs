//! The dry-run diff of the 20 real onedr0p/home-ops commits in the corpus.
//!
//! The corpus keeps only each commit's changed YAML files (`before/`, `after/`) plus the repository
//! snapshot at the last commit. Each side is rebuilt as "snapshot with this commit's files put back",
//! so kustomizations the commit touches render for real with `kubectl kustomize`, and files the
//! commit did not touch are equal on both sides.

mod common;

use common::diff::DiffRepo;

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;
use stategate::config::Config;
use stategate::diff::{DiffOptions, DiffResult, Format, Status, format_diff};
use stategate::tree::MemTree;

const RENAME_COMMIT: &str = "cbb6982b65e13960dd340be0f2b50ca99e24bcf4";

fn read_dir_into(root: &Path, dir: &Path, files: &mut BTreeMap<String, Vec<u8>>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            read_dir_into(root, &path, files);
        } else if let Ok(rel) = path.strip_prefix(root) {
            let rel = rel.to_string_lossy().replace('\\', "/");
            files.insert(rel, std::fs::read(&path).expect("read corpus file"));
        }
    }
}

fn files_of(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    read_dir_into(dir, dir, &mut files);
    files
}

/// The two sides of one commit: the snapshot with the commit's before (or after) files in place
/// and the other side's extra files taken out.
fn sides(corpus: &Path, commit: &str) -> (MemTree, MemTree) {
    let snapshot = files_of(&corpus.join("gitops-repos/onedr0p-home-ops"));
    let dir = corpus.join("gitops-repos/history").join(commit);
    let before = files_of(&dir.join("before"));
    let after = files_of(&dir.join("after"));
    let side = |mine: &BTreeMap<String, Vec<u8>>, other: &BTreeMap<String, Vec<u8>>, name: &str| {
        let mut files = snapshot.clone();
        for path in other.keys() {
            files.remove(path);
        }
        files.extend(mine.clone());
        MemTree {
            files,
            name: format!("{} {name}", &commit[..7]),
        }
    };
    (
        side(&before, &after, "parent"),
        side(&after, &before, "commit"),
    )
}

fn commits(corpus: &Path) -> Vec<(String, bool)> {
    let text = std::fs::read_to_string(corpus.join("gitops-repos/history/commits.json"))
        .expect("commits.json");
    let json: Value = serde_json::from_str(&text).expect("commits.json parses");
    json["commits"]
        .as_array()
        .expect("commits list")
        .iter()
        .map(|c| {
            let has_yaml = c["files"]
                .as_array()
                .is_some_and(|f| f.iter().any(|f| f["yaml_saved"] == true));
            (
                c["commit"].as_str().unwrap_or_default().to_string(),
                has_yaml,
            )
        })
        .collect()
}

fn diff_commit(repo: &mut DiffRepo, corpus: &Path, commit: &str) -> DiffResult {
    let (base, head) = sides(corpus, commit);
    repo.diff(&base, &head, &Config::default(), &DiffOptions::default())
}

#[test]
fn every_history_commit_diffs_to_its_snapshot() {
    let Some(corpus) = common::corpus() else {
        return;
    };
    let all = commits(&corpus);
    assert_eq!(all.len(), 20);
    let mut repo = DiffRepo::new();
    for (i, (commit, has_yaml)) in all.iter().enumerate() {
        let result = diff_commit(&mut repo, &corpus, commit);
        let shown = result
            .objects
            .iter()
            .filter(|o| o.status != Status::Unchanged)
            .count();
        // A commit that changed no YAML changes no desired state; every other one changes some.
        assert_eq!(shown > 0, *has_yaml, "commit {commit}");
        assert_eq!(
            result.exit_code(),
            0,
            "commit {commit}: {:?}",
            result.findings
        );
        let json = format_diff(&result, Format::Json, false);
        insta::assert_snapshot!(format!("history_{i:02}_{}", &commit[..7]), json);
    }
}

#[test]
fn the_app_rename_commit_shows_moves_not_removals_and_additions() {
    let Some(corpus) = common::corpus() else {
        return;
    };
    let result = diff_commit(&mut DiffRepo::new(), &corpus, RENAME_COMMIT);
    assert_eq!(result.count(Status::Removed), 0, "{:#?}", result.objects);
    let moved: Vec<String> = result
        .objects
        .iter()
        .filter(|o| o.status == Status::Moved)
        .map(|o| {
            let prev = o
                .previous_id
                .as_ref()
                .map(|p| p.to_string())
                .unwrap_or_default();
            format!("{prev} -> {}", o.id)
        })
        .collect();
    insta::assert_debug_snapshot!(moved);
    // The renamed HelmRelease is one moved object whose diff shows the name change.
    let release = result
        .objects
        .iter()
        .find(|o| o.id.kind() == Some("HelmRelease") && o.status == Status::Moved)
        .expect("the HelmRelease is moved");
    assert!(
        release
            .diff
            .contains("-  name: deduparr\n+  name: cleanrr\n"),
        "{}",
        release.diff
    );
    assert!(
        release
            .changed_fields
            .contains(&"metadata.name".to_string())
    );
}
