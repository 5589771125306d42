//! Live drift and promotion order in the pre-receive hook, through real `git push`es to a bare
//! repository with stategate installed: drift on prod rejects a push with the drifted paths in
//! `remote:` lines; a listed user's `-o stategate.ack-drift` acknowledges it (audited); promotion
//! order blocks a prod image that staging does not have at base.

mod common;
mod drift_support;
mod hook_support;

use common::git::TestRepo;
use hook_support::{Server, push};
use serde_json::{Value, json};

const DRIFT_CONFIG: &str = "version: 1
exclude: [\"live/**\"]
environments:
  prod: [\"clusters/prod/**\"]
drift:
  hook: true
  live:
    source: snapshot
    path: \"live/{env}/\"
    on_drift: block
  acknowledge_by: [oncall]
";

/// The corpus guestbook frontend (replicas 3, image gb-frontend:v5).
fn frontend() -> Option<(String, Value)> {
    let corpus = common::corpus()?;
    if !drift_support::kubectl_available() {
        return None;
    }
    let path =
        corpus.join("gitops-repos/kubernetes-examples/web/guestbook/frontend-deployment.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let object = drift_support::objects(&path).remove(0);
    Some((text, object))
}

fn seeded(config: &str, files: &[(&str, String)]) -> (Server, TestRepo) {
    let server = Server::new();
    let work = TestRepo::new();
    work.write(".stategate.yaml", config);
    for (path, text) in files {
        work.write(path, text);
    }
    work.commit_all("seed");
    assert!(push(&work, &server.url(), &["main"], &[]).ok);
    server.install_hook(&[]);
    (server, work)
}

fn bump(work: &TestRepo, path: &str, from: &str, to: &str) {
    let text = std::fs::read_to_string(work.abs(path)).unwrap();
    assert!(text.contains(from), "{path} has {from}");
    work.write(path, text.replace(from, to));
    work.commit_all(&format!("{path}: {to}"));
}

#[test]
fn a_push_onto_drifted_prod_is_rejected_with_the_drifted_paths_until_acknowledged() {
    let Some((text, object)) = frontend() else {
        return;
    };
    let mut live = drift_support::as_served(&object, "default", 0);
    live["spec"]["replicas"] = json!(5);
    let snapshot = drift_support::kubectl_yaml(&[live]);
    let (server, work) = seeded(
        DRIFT_CONFIG,
        &[
            ("clusters/prod/frontend.yaml", text),
            ("live/prod/snapshot.yaml", snapshot),
        ],
    );
    bump(
        &work,
        "clusters/prod/frontend.yaml",
        "gb-frontend:v5",
        "gb-frontend:v6",
    );

    let pushed = push(
        &work,
        &server.url(),
        &["main"],
        &[("GITHUB_USER_LOGIN", "dev")],
    );
    assert!(!pushed.ok, "{}", pushed.stderr);
    assert!(
        pushed.says("error[drift/live]: apps/v1/Deployment/default/frontend in prod has drifted from Git at base"),
        "{}",
        pushed.stderr
    );
    assert!(
        pushed.says("spec.replicas: live 5, Git 3"),
        "{}",
        pushed.stderr
    );
    assert!(
        pushed.says("this change reverts a live edit of `spec.replicas`: 5 → 3"),
        "{}",
        pushed.stderr
    );

    let refused = push(
        &work,
        &server.url(),
        &["-o", "stategate.ack-drift=scaled up by hand", "main"],
        &[("GITHUB_USER_LOGIN", "dev")],
    );
    assert!(!refused.ok, "{}", refused.stderr);
    assert!(
        refused.says("drift acknowledgement refused: dev is not in drift.acknowledge_by"),
        "{}",
        refused.stderr
    );

    let acked = push(
        &work,
        &server.url(),
        &[
            "-o",
            "stategate.ack-drift=incident 42: keep 5 replicas",
            "main",
        ],
        &[("GITHUB_USER_LOGIN", "oncall")],
    );
    assert!(acked.ok, "{}", acked.stderr);
    assert!(
        acked.says("warning[drift/live]: acknowledged by oncall (-o stategate.ack-drift: incident 42: keep 5 replicas)"),
        "{}",
        acked.stderr
    );
    let audit = server.audit_lines();
    let last = audit.last().unwrap();
    assert_eq!(last["decision"], "accepted");
    assert_eq!(last["ack_drift"], "incident 42: keep 5 replicas");
    assert_eq!(last["ack_drift_granted"], true);
    assert_eq!(last["actor"], "oncall");
}

#[test]
fn a_push_onto_prod_in_sync_with_git_is_accepted() {
    let Some((text, object)) = frontend() else {
        return;
    };
    let snapshot = drift_support::kubectl_yaml(&[drift_support::as_served(&object, "default", 0)]);
    let (server, work) = seeded(
        DRIFT_CONFIG,
        &[
            ("clusters/prod/frontend.yaml", text),
            ("live/prod/snapshot.yaml", snapshot),
        ],
    );
    bump(
        &work,
        "clusters/prod/frontend.yaml",
        "gb-frontend:v5",
        "gb-frontend:v6",
    );
    let pushed = push(&work, &server.url(), &["main"], &[]);
    assert!(pushed.ok, "{}", pushed.stderr);
    assert!(!pushed.says("drift/"), "{}", pushed.stderr);
}

#[test]
fn change_policies_see_live_state_and_drifted_paths() {
    let Some((text, object)) = frontend() else {
        return;
    };
    let mut live = drift_support::as_served(&object, "default", 0);
    live["spec"]["replicas"] = json!(5);
    let snapshot = drift_support::kubectl_yaml(&[live]);
    let policy = "package stategate.change
import rego.v1

deny contains msg if {
  some o in input.live
  \"spec.replicas\" in o.drifted
  msg := sprintf(\"%s was scaled by hand to %v\", [o.object, o.live.spec.replicas])
}
";
    let (server, work) = seeded(
        &DRIFT_CONFIG.replace("on_drift: block", "on_drift: warn"),
        &[
            ("clusters/prod/frontend.yaml", text),
            ("live/prod/snapshot.yaml", snapshot),
            ("policies/live.rego", policy.to_owned()),
        ],
    );
    bump(
        &work,
        "clusters/prod/frontend.yaml",
        "gb-frontend:v5",
        "gb-frontend:v6",
    );
    let pushed = push(&work, &server.url(), &["main"], &[]);
    assert!(!pushed.ok, "{}", pushed.stderr);
    assert!(
        pushed.says(
            "error[policy/deny]: apps/v1/Deployment/default/frontend was scaled by hand to 5"
        ),
        "{}",
        pushed.stderr
    );
    assert!(pushed.says("warning[drift/live]"), "{}", pushed.stderr);
}

const PROMOTE_CONFIG: &str = "version: 1
environments:
  staging: [\"clusters/staging/**\"]
  prod: [\"clusters/prod/**\"]
drift:
  promote:
    - fields: [\"spec.template.spec.containers[*].image\", \"spec.values.image.tag\"]
      order: [staging, prod]
      match:
        namespace: \"shop-{env}\"
      skip_by: [release-manager]
";

#[test]
fn a_prod_image_staging_does_not_have_is_blocked_until_promoted_or_skipped_by_a_listed_user() {
    let Some((text, _)) = frontend() else { return };
    let in_env = |env: &str| {
        text.replace(
            "  name: frontend\n",
            &format!("  name: frontend\n  namespace: shop-{env}\n"),
        )
    };
    let (server, work) = seeded(
        PROMOTE_CONFIG,
        &[
            ("clusters/staging/frontend.yaml", in_env("staging")),
            ("clusters/prod/frontend.yaml", in_env("prod")),
        ],
    );
    let url = server.url();

    bump(
        &work,
        "clusters/prod/frontend.yaml",
        "gb-frontend:v5",
        "gb-frontend:v6",
    );
    let pushed = push(&work, &url, &["main"], &[]);
    assert!(!pushed.ok, "{}", pushed.stderr);
    assert!(
        pushed.says("error[drift/promotion]: apps/v1/Deployment/shop-prod/frontend sets spec.template.spec.containers[name=php-redis].image = gcr.io/google-samples/gb-frontend:v6 in prod, but staging does not have it at base (apps/v1/Deployment/shop-staging/frontend there has gcr.io/google-samples/gb-frontend:v5)"),
        "{}",
        pushed.stderr
    );
    work.git(&["reset", "-q", "--hard", "HEAD~1"]);

    bump(
        &work,
        "clusters/staging/frontend.yaml",
        "gb-frontend:v5",
        "gb-frontend:v6",
    );
    assert!(push(&work, &url, &["main"], &[]).ok);
    bump(
        &work,
        "clusters/prod/frontend.yaml",
        "gb-frontend:v5",
        "gb-frontend:v6",
    );
    let promoted = push(&work, &url, &["main"], &[]);
    assert!(promoted.ok, "{}", promoted.stderr);

    bump(
        &work,
        "clusters/prod/frontend.yaml",
        "gb-frontend:v6",
        "gb-frontend:v7",
    );
    let stranger = push(
        &work,
        &url,
        &["-o", "stategate.ack-drift=hotfix", "main"],
        &[("GITHUB_USER_LOGIN", "dev")],
    );
    assert!(!stranger.ok, "{}", stranger.stderr);
    let skipped = push(
        &work,
        &url,
        &["-o", "stategate.ack-drift=CVE fix, staging next", "main"],
        &[("GITHUB_USER_LOGIN", "release-manager")],
    );
    assert!(skipped.ok, "{}", skipped.stderr);
    assert!(
        skipped.says("warning[drift/promotion]: acknowledged by release-manager"),
        "{}",
        skipped.stderr
    );
}

#[test]
fn a_signed_approval_from_acknowledge_by_acknowledges_drift_at_push_time() {
    if !hook_support::ssh_keygen_available() {
        return;
    }
    let Some((text, object)) = frontend() else {
        return;
    };
    let keys = hook_support::Keys::new(&["oncall", "dev"]);
    let mut live = drift_support::as_served(&object, "default", 0);
    live["spec"]["replicas"] = json!(5);
    let config = format!("{DRIFT_CONFIG}  allowed_signers: .stategate/allowed_signers\n");
    let (server, work) = seeded(
        &config,
        &[
            ("clusters/prod/frontend.yaml", text.clone()),
            (
                "live/prod/snapshot.yaml",
                drift_support::kubectl_yaml(&[live]),
            ),
            (
                ".stategate/allowed_signers",
                keys.allowed_signers(&["oncall", "dev"]),
            ),
        ],
    );
    work.write(
        "clusters/prod/frontend.yaml",
        text.replace("gb-frontend:v5", "gb-frontend:v6"),
    );
    keys.commit_signed(&work, "dev", "frontend v6");
    let unapproved = push(
        &work,
        &server.url(),
        &["main"],
        &[("GITHUB_USER_LOGIN", "dev")],
    );
    assert!(!unapproved.ok, "{}", unapproved.stderr);
    keys.sign_approval(&work, "oncall");
    let approved = push(
        &work,
        &server.url(),
        &["main"],
        &[("GITHUB_USER_LOGIN", "dev")],
    );
    assert!(approved.ok, "{}", approved.stderr);
    assert!(
        approved.says("warning[drift/live]: acknowledged by oncall (signed approval)"),
        "{}",
        approved.stderr
    );
}
