//! `stategate check --live`: the drift judgement for the objects a change touches, their state at
//! base against a committed snapshot; a change that takes the live value into Git resolves it.

mod common;
mod drift_support;

use std::process::Command;

use common::git::TestRepo;
use serde_json::json;

use drift_support::SNAPSHOT_CONFIG as CONFIG;

fn check(repo: &TestRepo, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_stategate"))
        .arg("check")
        .args(args)
        .args(["--format", "json"])
        .current_dir(repo.path())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// prod's frontend (corpus) with a live replica count of 5 against Git's 3.
fn drifted_repo() -> Option<TestRepo> {
    let corpus = common::corpus()?;
    if !drift_support::kubectl_available() {
        return None;
    }
    let path =
        corpus.join("gitops-repos/kubernetes-examples/web/guestbook/frontend-deployment.yaml");
    let mut live = drift_support::as_served(&drift_support::objects(&path)[0], "default", 0);
    live["spec"]["replicas"] = json!(5);
    let repo = TestRepo::new();
    repo.write(".stategate.yaml", CONFIG);
    repo.write("clusters/prod/frontend.yaml", std::fs::read(&path).unwrap());
    repo.write(
        "clusters/prod/other.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: other\ndata:\n  a: b\n",
    );
    repo.write(
        "live/prod/snapshot.yaml",
        drift_support::kubectl_yaml(&[live]),
    );
    repo.commit_all("seed");
    Some(repo)
}

fn edit(repo: &TestRepo, from: &str, to: &str) {
    let text = std::fs::read_to_string(repo.abs("clusters/prod/frontend.yaml")).unwrap();
    repo.write("clusters/prod/frontend.yaml", text.replace(from, to));
}

#[test]
fn check_live_blocks_a_change_to_a_drifted_object_and_names_the_revert() {
    let Some(repo) = drifted_repo() else { return };
    edit(&repo, "gb-frontend:v5", "gb-frontend:v6");
    let (code, out) = check(&repo, &[]);
    assert_eq!(code, 0, "without --live the snapshot is not read: {out}");
    let (code, out) = check(&repo, &["--live"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("\"rule\": \"drift/live\""), "{out}");
    assert!(
        out.contains("this change reverts a live edit of `spec.replicas`: 5 → 3"),
        "{out}"
    );
}

#[test]
fn check_live_ignores_untouched_drift_and_a_change_adopting_the_live_value_resolves_it() {
    let Some(repo) = drifted_repo() else { return };
    repo.write(
        "clusters/prod/other.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: other\ndata:\n  a: c\n",
    );
    let (code, out) = check(&repo, &["--live"]);
    assert_eq!(code, 0, "the frontend is not touched: {out}");
    repo.git(&["checkout", "--", "clusters/prod/other.yaml"]);
    edit(&repo, "replicas: 3", "replicas: 5");
    let (code, out) = check(&repo, &["--live"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("this change adopts the live value of spec.replicas"),
        "{out}"
    );
}

#[test]
fn check_live_without_a_live_source_cannot_decide() {
    let repo = TestRepo::new();
    repo.write(".stategate.yaml", "version: 1\n");
    repo.write(
        "a.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n",
    );
    repo.commit_all("seed");
    repo.write(
        "a.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata: {}\n",
    );
    let (code, out) = check(&repo, &["--live"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("--live needs a live source"), "{out}");
}

#[test]
fn an_invalid_drift_section_is_located() {
    let repo = TestRepo::new();
    repo.write(
        ".stategate.yaml",
        "version: 1\nenvironments:\n  prod: [\"p/**\"]\ndrift:\n  live:\n    source: command\n    max_age: soon\n  promote:\n    - fields: [\"spec.image\"]\n      order: [prod, qa]\n",
    );
    repo.commit_all("seed");
    repo.write("x.yaml", "a: 1\n");
    let (code, out) = check(&repo, &[]);
    assert_eq!(code, 2, "{out}");
    for expected in [
        "a `command` live source needs `command`",
        "`soon` is not a duration",
        "`qa` is not one of the `environments`",
    ] {
        assert!(out.contains(expected), "{expected}: {out}");
    }
}
