//! `stategate diff --live`: beside base → head, the live → head view from the environment's live
//! source (a committed snapshot in the real kubectl's output format), through the real binary.

mod common;
mod drift_support;

use common::git::TestRepo;
use common::run::{code, diff_object as object, json, stategate, stderr, stdout};
use serde_json::{Value, json};

use drift_support::SNAPSHOT_CONFIG as CONFIG;

/// The Secret's value in Git at base, at head, and live (also base64, as the server stores it).
const BASE_SECRET: &str = "base-value-p4ss";
const HEAD_SECRET: &str = "head-value-t0ken";
const LIVE_SECRET: &str = "live-value-s3cret";
const LIVE_SECRET_B64: &str = "bGl2ZS12YWx1ZS1zM2NyZXQ=";

fn secret(value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\ntype: Opaque\nstringData:\n  password: {value}\n"
    )
}

const OTHER: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: other\ndata:\n  a: b\n";

/// prod at base: the corpus frontend (replicas 3), a Secret and a ConfigMap; live: the frontend
/// scaled to 5 by hand, the Secret with another value, the ConfigMap as in Git. Returns the repo
/// and the base commit.
fn drifted_prod() -> Option<(TestRepo, String)> {
    let corpus = common::corpus()?;
    if !drift_support::kubectl_available() {
        return None;
    }
    let path =
        corpus.join("gitops-repos/kubernetes-examples/web/guestbook/frontend-deployment.yaml");
    let mut frontend = drift_support::as_served(&drift_support::objects(&path)[0], "default", 0);
    frontend["spec"]["replicas"] = json!(5);
    let db = drift_support::as_served(
        &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
                "type": "Opaque", "data": {"password": LIVE_SECRET_B64}}),
        "default",
        1,
    );
    let other = drift_support::as_served(
        &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "other"},
                "data": {"a": "b"}}),
        "default",
        2,
    );
    let repo = TestRepo::new();
    repo.write(".stategate.yaml", CONFIG);
    repo.write("clusters/prod/frontend.yaml", std::fs::read(&path).unwrap());
    repo.write("clusters/prod/db.yaml", secret(BASE_SECRET));
    repo.write("clusters/prod/other.yaml", OTHER);
    repo.write(
        "live/prod/snapshot.yaml",
        drift_support::kubectl_yaml(&[frontend, db, other]),
    );
    let base = repo.commit_all("seed");
    Some((repo, base))
}

/// The change: a new image for the frontend (replicas stays 3, as at base), a new Secret value,
/// a new ConfigMap that is not live.
fn change(repo: &TestRepo) {
    let text = std::fs::read_to_string(repo.abs("clusters/prod/frontend.yaml")).unwrap();
    repo.write(
        "clusters/prod/frontend.yaml",
        text.replace("gb-frontend:v5", "gb-frontend:v6"),
    );
    repo.write("clusters/prod/db.yaml", secret(HEAD_SECRET));
    repo.write(
        "clusters/prod/new.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: new\ndata:\n  a: b\n",
    );
    repo.commit_all("change");
}

fn field<'a>(view: &'a Value, path: &str) -> &'a Value {
    view["fields"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|f| f["path"] == path)
        .unwrap_or_else(|| panic!("no field {path} in {view:#}"))
}

#[test]
fn diff_live_shows_live_to_head_beside_base_to_head() {
    let Some((repo, base)) = drifted_prod() else {
        return;
    };
    change(&repo);
    let out = stategate(
        &repo,
        &["diff", "--base", &base, "--live", "--format", "json"],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let report = json(&out);

    let frontend = object(&report, "apps/v1/Deployment/default/frontend");
    assert_eq!(frontend["status"], "changed");
    let base_to_head = frontend["changed_fields"].as_array().unwrap();
    assert!(
        !base_to_head.iter().any(|f| f == "spec.replicas"),
        "base → head does not change replicas: {frontend:#}"
    );
    let live = &frontend["live"];
    assert_eq!(live["environment"], "prod");
    assert_eq!(live["status"], "changed", "{frontend:#}");
    // The direction: live holds 5, head sets 3.
    let replicas = field(live, "spec.replicas");
    assert_eq!(
        (&replicas["live"], &replicas["head"]),
        (&json!(5), &json!(3))
    );
    let image = field(live, "spec.template.spec.containers[name=php-redis].image");
    assert_eq!(image["live"], "gcr.io/google-samples/gb-frontend:v5");
    assert_eq!(image["head"], "gcr.io/google-samples/gb-frontend:v6");
    // Only what head declares and live does not match: server fields and defaults are not there.
    assert_eq!(live["fields"].as_array().unwrap().len(), 2, "{live:#}");

    let new = object(&report, "v1/ConfigMap/default/new");
    assert_eq!(new["status"], "added");
    assert_eq!(new["live"]["status"], "added", "{new:#}");

    let db = object(&report, "v1/Secret/default/db");
    assert_eq!(db["live"]["status"], "changed", "{db:#}");
    field(&db["live"], "data.password");

    assert_eq!(report["live"][0]["environment"], "prod");
    assert!(
        report["live"][0]["source"]
            .as_str()
            .unwrap()
            .contains("snapshot live/prod/"),
        "{report:#}"
    );

    let human = stategate(&repo, &["diff", "--base", &base, "--live"]);
    assert_eq!(code(&human), 0, "{}", stderr(&human));
    let text = stdout(&human);
    assert!(text.contains("live → head (prod): changed"), "{text}");
    assert!(text.contains("    spec.replicas: 5 → 3\n"), "{text}");
    assert!(
        text.contains("live → head (prod): added (not live: applying head creates it)"),
        "{text}"
    );

    let markdown = stategate(
        &repo,
        &["diff", "--base", &base, "--live", "--format", "markdown"],
    );
    assert_eq!(code(&markdown), 0, "{}", stderr(&markdown));
    let text = stdout(&markdown);
    assert!(text.contains("| `spec.replicas` | `5` | `3` |"), "{text}");
    assert!(text.contains("| field | live | head |"), "{text}");

    // Without --live, no live view and no live side.
    let plain = json(&stategate(
        &repo,
        &["diff", "--base", &base, "--format", "json"],
    ));
    assert!(plain.get("live").is_none(), "{plain:#}");
    assert!(
        object(&plain, "apps/v1/Deployment/default/frontend")
            .get("live")
            .is_none()
    );
}

#[test]
fn diff_live_never_prints_a_secret_value() {
    let Some((repo, base)) = drifted_prod() else {
        return;
    };
    change(&repo);
    for format in ["human", "json", "markdown"] {
        let out = stategate(
            &repo,
            &["diff", "--base", &base, "--live", "--format", format],
        );
        assert_eq!(code(&out), 0, "{format}: {}", stderr(&out));
        let text = format!("{}{}", stdout(&out), stderr(&out));
        assert!(
            text.contains("db"),
            "{format}: the Secret is in the diff: {text}"
        );
        for value in [BASE_SECRET, HEAD_SECRET, LIVE_SECRET, LIVE_SECRET_B64] {
            assert!(!text.contains(value), "{format} prints {value}: {text}");
        }
    }
}

#[test]
fn diff_live_fails_closed_when_the_live_source_cannot_be_read() {
    let Some((repo, base)) = drifted_prod() else {
        return;
    };
    // The snapshot is read from the trusted base: one missing there cannot be shown.
    repo.remove("live/prod/snapshot.yaml");
    let without = repo.commit_all("no snapshot");
    change(&repo);
    let out = stategate(&repo, &["diff", "--base", &without, "--live"]);
    assert_eq!(code(&out), 2, "{}{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("error[drift/source]"), "{text}");
    assert!(text.contains("no snapshot at `live/prod/`"), "{text}");

    // An environment without a live source, and a config without any.
    let out = stategate(
        &repo,
        &["diff", "--base", &base, "--live", "--env", "staging"],
    );
    assert_eq!(code(&out), 2, "{}", stdout(&out));
    assert!(
        stdout(&out).contains("no live source for environment `staging`"),
        "{}",
        stdout(&out)
    );
    repo.write(".stategate.yaml", "version: 1\nexclude: [\"live/**\"]\n");
    repo.commit_all("no drift section");
    repo.write("clusters/prod/other.yaml", OTHER.replace("a: b", "a: c"));
    let out = stategate(&repo, &["diff", "--live"]);
    assert_eq!(code(&out), 2, "{}", stdout(&out));
    assert!(
        stdout(&out).contains("diff --live needs a live source"),
        "{}",
        stdout(&out)
    );
    // --env only with --live.
    let out = stategate(&repo, &["diff", "--env", "prod"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
}

#[test]
fn live_values_reach_the_terminal_with_control_characters_escaped() {
    if common::corpus().is_none() || !drift_support::kubectl_available() {
        return;
    }
    let hostile = "b\u{1b}]0;pwned\u{7}\u{1b}[2J";
    let other = drift_support::as_served(
        &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "other"},
                "data": {"a": hostile}}),
        "default",
        2,
    );
    let repo = TestRepo::new();
    repo.write(".stategate.yaml", CONFIG);
    repo.write("clusters/prod/other.yaml", OTHER);
    repo.write(
        "live/prod/snapshot.yaml",
        drift_support::kubectl_yaml(&[other]),
    );
    let base = repo.commit_all("seed");
    repo.write("clusters/prod/other.yaml", format!("{OTHER}  c: d\n"));
    repo.commit_all("change");
    for args in [
        vec!["drift"],
        vec!["drift", "--format", "markdown"],
        vec!["diff", "--base", &base, "--live"],
        vec!["diff", "--base", &base, "--live", "--format", "markdown"],
    ] {
        let out = stategate(&repo, &args);
        let text = stdout(&out);
        assert!(
            text.contains("data.a"),
            "{args:?}: the drifted field is shown: {text}"
        );
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{7}'),
            "{args:?} passes control characters on: {text:?}"
        );
    }
}
