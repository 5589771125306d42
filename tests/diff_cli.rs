//! `stategate diff` through the real binary: flags, exit codes and output on a real repository.

mod common;

use std::process::Command;

use common::git::TestRepo;

fn stategate(repo: &TestRepo, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_stategate"))
        .args(args)
        .current_dir(repo.path())
        .env("NO_COLOR", "1")
        .output()
        .expect("run stategate");
    let text = |b: Vec<u8>| String::from_utf8(b).expect("utf-8");
    (
        out.status.code().unwrap_or(-1),
        text(out.stdout),
        text(out.stderr),
    )
}

#[test]
fn diff_prints_each_format_and_exits_by_the_render_outcome() {
    let repo = TestRepo::new();
    repo.write(
        "apps/web.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\ndata:\n  level: info\n",
    );
    let base = repo.commit_all("web");
    repo.write(
        "apps/web.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\ndata:\n  level: debug\n",
    );
    repo.commit_all("debug");

    let (code, out, _) = stategate(&repo, &["diff", "--base", &base, "--format", "json"]);
    assert_eq!(code, 0);
    let json: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(json["objects"][0]["id"], "v1/ConfigMap/default/web");
    assert_eq!(
        json["objects"][0]["changed_fields"],
        serde_json::json!(["data.level"])
    );

    let (code, out, _) = stategate(&repo, &["diff", "--base", &base, "--format", "markdown"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("<!-- stategate:diff -->"), "{out}");

    let (code, out, _) = stategate(&repo, &["diff", "--base", &base]);
    assert_eq!(code, 0);
    assert!(
        out.contains("changed ConfigMap default/web (apps/web.yaml)"),
        "{out}"
    );
    assert!(!out.contains('\x1b'), "no colour when NO_COLOR is set");

    // A kustomization with a remote base cannot be rendered offline: exit 2.
    repo.write(
        "apps/kustomization.yaml",
        "resources:\n  - web.yaml\n  - https://example.com/x.yaml\n",
    );
    repo.commit_all("remote");
    let (code, out, _) = stategate(&repo, &["diff", "--base", &base, "--format", "json"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("https://example.com/x.yaml"));
}

/// `diff --base main` on a branch shows what the branch changes, judged from the merge base as
/// `check --base` is: work that landed on main since the branch started is not shown reverted.
#[test]
fn a_range_is_diffed_from_the_merge_base_like_check() {
    let repo = TestRepo::new();
    let config_map = |name: &str, level: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  level: {level}\n"
        )
    };
    repo.write("apps/web.yaml", config_map("web", "info"));
    repo.write("apps/api.yaml", config_map("api", "info"));
    repo.commit_all("start");
    repo.branch("feature");
    repo.write("apps/web.yaml", config_map("web", "debug"));
    repo.commit_all("feature: web logs debug");
    repo.checkout("main");
    repo.write("apps/api.yaml", config_map("api", "warn"));
    repo.commit_all("main: api logs warn");
    repo.checkout("feature");

    let (code, out, err) = stategate(&repo, &["diff", "--base", "main", "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    let json: serde_json::Value = serde_json::from_str(&out).expect("json");
    let ids: Vec<&str> = json["objects"]
        .as_array()
        .expect("objects")
        .iter()
        .filter_map(|o| o["id"].as_str())
        .collect();
    assert_eq!(ids, ["v1/ConfigMap/default/web"], "{out}");
}

/// A changed path no consumer-visible diff can show (a symlink out of the repository) is said,
/// not dropped: the change detection is `check`'s, with its symlink rules.
#[test]
fn a_symlink_leaving_the_repository_is_named_in_the_diff() {
    let repo = TestRepo::new();
    repo.write(
        "apps/keep.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: keep\n",
    );
    let base = repo.commit_all("start");
    repo.symlink("/etc/hostname", "apps/outside.yaml");
    repo.commit_all("link out");

    let (_, out, err) = stategate(&repo, &["diff", "--base", &base, "--format", "json"]);
    let json: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out} {err}"));
    let findings = json["findings"].as_array().expect("findings");
    assert!(
        findings
            .iter()
            .any(|f| f["rule"] == "load/skipped" && f["location"]["file"] == "apps/outside.yaml"),
        "{out}"
    );
}
