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
