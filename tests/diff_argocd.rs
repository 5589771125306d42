//! Our object-level diff against argocd-diff-preview's expected PR comments
//! (`corpus/extras/argocd-diff-preview`).
//!
//! argocd-diff-preview renders every Argo CD Application on both branches inside a cluster and diffs
//! what the Applications produce. The corpus keeps each branch pair's changed files
//! (`changes/<branch>/{before,after}`) and the repository's `examples/` at HEAD; each side here is
//! "HEAD with the pair's files put back", diffed with rendering on (kustomize for real).
//!
//! Objects are compared as `Kind/name` (argocd-diff-preview's namespace is the Application's
//! destination, which plain manifests do not carry). Where the two disagree, the reason is written in
//! `tests/fixtures/diff/argocd-disagreements.json`, and this test asserts that exact list: a new
//! agreement or disagreement fails it. For the objects both see, the changed lines must agree too.

mod common;

use common::diff::DiffRepo;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;
use stategate::diff::{DiffOptions, ObjectDiff, Status};
use stategate::object::ObjectId;
use stategate::tree::MemTree;

/// Objects both tools show changed, with the same changed lines: plain manifests, kustomize
/// overlays (rendered for real) and the app-of-apps manifests.
const AGREED: &[&str] = &[
    "branch-1 Deployment/backend",
    "branch-1 Deployment/deploy-from-folder-two",
    "branch-1 Deployment/frontend",
    "branch-17 Application/level-2c-app",
    "branch-17 ApplicationSet/level-1c-appset",
    "branch-17 ConfigMap/level-1b-config",
    "branch-17 ConfigMap/level-1c-prod-config",
    "branch-17 ConfigMap/level-1c-staging-config",
    "branch-17 ConfigMap/level-2a-config",
    "branch-17 ConfigMap/level-2b-config",
    "branch-17 ConfigMap/level-2c-config",
    "branch-19 Deployment/kustomize-build-options",
    "branch-3 Deployment/staging-myapp",
    "branch-4 Deployment/deploy-from-folder-three",
    "branch-6 Deployment/deploy-from-folder-one",
    "branch-6 Deployment/staging-myapp",
    "branch-8 Deployment/deploy-from-folder-three",
    "branch-8 Deployment/deploy-from-folder-two",
    "branch-9 Deployment/deploy-from-folder-one",
];

fn read_dir_into(root: &Path, dir: &Path, files: &mut BTreeMap<String, Vec<u8>>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            read_dir_into(root, &path, files);
        } else if let Ok(rel) = path.strip_prefix(root) {
            files.insert(
                rel.to_string_lossy().replace('\\', "/"),
                std::fs::read(&path).expect("read"),
            );
        }
    }
}

fn files_of(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    read_dir_into(dir, dir, &mut files);
    files
}

fn sides(root: &Path, branch: &str) -> (MemTree, MemTree) {
    let head = files_of(&root.join("head"));
    let before = files_of(&root.join("changes").join(branch).join("before"));
    let after = files_of(&root.join("changes").join(branch).join("after"));
    let side = |mine: &BTreeMap<String, Vec<u8>>, other: &BTreeMap<String, Vec<u8>>, name: &str| {
        let mut files = head.clone();
        for path in other.keys() {
            files.remove(path);
        }
        files.extend(mine.clone());
        MemTree {
            files,
            name: format!("{branch} {name}"),
        }
    };
    (
        side(&before, &after, "base"),
        side(&after, &before, "target"),
    )
}

/// `Kind/name` of an object header line, `#### Kind: ns/name` (renames and kind changes as
/// `A → B`: the target counts).
fn header_key(line: &str) -> Option<String> {
    let rest = line.strip_prefix("#### ")?;
    let (kinds, names) = rest.split_once(": ")?;
    let kind = kinds.rsplit(" → ").next()?.trim();
    let name = names.rsplit(" → ").next()?.trim();
    let name = name.rsplit('/').next()?;
    Some(format!("{kind}/{name}"))
}

/// Per object, the changed lines of argocd-diff-preview's diff, trimmed.
fn expected_objects(output: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut objects: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut current = None;
    for line in output.lines() {
        if let Some(key) = header_key(line) {
            objects.entry(key.clone()).or_default();
            current = Some(key);
        } else if line.starts_with("</details>") {
            current = None;
        } else if let Some(key) = &current
            && let Some(changed) = changed_line(line)
        {
            objects.entry(key.clone()).or_default().insert(changed);
        }
    }
    objects
}

fn changed_line(line: &str) -> Option<String> {
    let (sign, rest) = line.split_at_checked(1)?;
    let body = rest.trim().trim_start_matches("- ").trim();
    (matches!(sign, "+" | "-")
        && !line.starts_with("+++")
        && !line.starts_with("---")
        && !body.is_empty())
    .then(|| format!("{sign}{body}"))
}

fn key_of(id: &ObjectId) -> String {
    match id {
        ObjectId::Kube { kind, name, .. } => format!("{kind}/{name}"),
        other => other.to_string(),
    }
}

fn our_objects(objects: &[ObjectDiff]) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for o in objects.iter().filter(|o| o.status != Status::Unchanged) {
        let lines = o
            .diff
            .lines()
            .filter(|l| !l.starts_with("@@"))
            .filter_map(changed_line);
        out.entry(key_of(&o.id)).or_default().extend(lines);
    }
    out
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Disagreement {
    branch: String,
    side: String,
    object: String,
}

fn known(root: &Path) -> (BTreeSet<Disagreement>, BTreeSet<(String, String)>) {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/diff/argocd-disagreements.json");
    let text = std::fs::read_to_string(path).expect("disagreements fixture");
    let json: Value = serde_json::from_str(&text).expect("fixture parses");
    let mut objects = BTreeSet::new();
    for entry in json["objects"].as_array().expect("objects") {
        let reason = entry["reason"].as_str().unwrap_or_default();
        assert!(
            reason.len() > 20,
            "every disagreement is explained: {entry}"
        );
        let field = |k: &str| entry[k].as_str().expect("string").to_string();
        objects.insert(Disagreement {
            branch: field("branch"),
            side: field("side"),
            object: field("object"),
        });
    }
    let mut lines = BTreeSet::new();
    for entry in json["changed_lines"].as_array().expect("changed_lines") {
        assert!(
            entry["reason"].as_str().unwrap_or_default().len() > 20,
            "explained: {entry}"
        );
        lines.insert((
            entry["branch"].as_str().expect("branch").to_string(),
            entry["object"].as_str().expect("object").to_string(),
        ));
    }
    assert!(root.is_dir());
    (objects, lines)
}

#[test]
fn changed_objects_agree_with_argocd_diff_preview_except_the_explained_ones() {
    let Some(corpus) = common::corpus() else {
        return;
    };
    let root = corpus.join("extras/argocd-diff-preview");
    let mut disagreements = BTreeSet::new();
    let mut line_disagreements = BTreeSet::new();
    let mut agreed = BTreeSet::new();
    // Applications' in-repository charts are rendered with the real helm, as Argo CD does.
    let config = stategate::config::parse_config(
        ".stategate.yaml",
        "version: 1\nrender:\n  helm:\n    releases: true\n",
    )
    .expect("config");
    let mut branches: Vec<String> = std::fs::read_dir(root.join("changes"))
        .expect("changes")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    branches.sort();
    let mut repo = DiffRepo::new();
    for branch in &branches {
        // The expected set is the union over the branch's cases: their options only filter.
        let mut expected: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for case in std::fs::read_dir(root.join("expected").join(branch))
            .expect("expected")
            .flatten()
        {
            let text = std::fs::read_to_string(case.path().join("output.md")).expect("output.md");
            for (k, v) in expected_objects(&text) {
                expected.entry(k).or_default().extend(v);
            }
        }
        let (base, head) = sides(&root, branch);
        let result = repo.diff(&base, &head, &config, &DiffOptions::default());
        let ours = our_objects(&result.objects);
        for (side, mine, theirs) in [
            ("only-argocd", &expected, &ours),
            ("only-stategate", &ours, &expected),
        ] {
            for object in mine.keys().filter(|k| !theirs.contains_key(*k)) {
                disagreements.insert(Disagreement {
                    branch: branch.clone(),
                    side: side.to_string(),
                    object: object.clone(),
                });
            }
        }
        for (object, lines) in &expected {
            if let Some(mine) = ours.get(object) {
                if mine == lines {
                    agreed.insert(format!("{branch} {object}"));
                } else {
                    eprintln!("{branch} {object}:\n  theirs {lines:?}\n  ours   {mine:?}");
                    line_disagreements.insert((branch.clone(), object.clone()));
                }
            }
        }
    }
    for d in &disagreements {
        eprintln!("{d:?}");
    }
    let (known_objects, known_lines) = known(&root);
    assert_eq!(disagreements, known_objects);
    assert_eq!(line_disagreements, known_lines);
    // Plain manifests and kustomize overlays: the same objects with the same changed lines.
    let expected_agreement: BTreeSet<String> = AGREED.iter().map(|s| s.to_string()).collect();
    assert_eq!(agreed, expected_agreement);
}
