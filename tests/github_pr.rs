//! `stategate github pr` end to end: the real binary on a real git checkout, driven by GitHub's own
//! webhook payloads (rewritten only where SHAs must point at the test repository), talking to the
//! local GitHub stand-in, which checks every request against GitHub's REST description. Each
//! scenario asserts the exact requests sent.

mod common;
mod drift_support;
mod github_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::git::TestRepo;
use github_support::{OWNER, REPO, StandIn};
use serde_json::{Value, json};

const CONFIG: &str = "version: 1
environments:
  prod: [\"clusters/prod/**\"]
  staging: [\"clusters/staging/**\"]
approvals:
  - name: prod-needs-two
    paths: [\"clusters/prod/**\"]
    required: 2
    from: [alice, bob, carol]
drift:
  up_to_date: [prod]
";

const POLICY: &str = "package main
import rego.v1

deny contains msg if {
  input.kind == \"ConfigMap\"
  input.data.level == \"trace\"
  msg := \"trace logging is not allowed\"
}

warn contains msg if {
  input.kind == \"ConfigMap\"
  input.data.level == \"verbose\"
  msg := \"verbose logging is noisy\"
}
";

fn config_map(name: &str, level: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: apps\ndata:\n  level: {level}\n"
    )
}

/// A repository whose `main` has the config and policy; `changes` is the PR branch.
struct Fixture {
    repo: TestRepo,
    corpus: PathBuf,
    base: String,
}

impl Fixture {
    fn new(config: &str) -> Option<Fixture> {
        let corpus = common::corpus()?;
        let repo = TestRepo::new();
        repo.write(".stategate.yaml", config);
        repo.write("policies/main.rego", POLICY);
        repo.write("clusters/staging/app.yaml", config_map("app", "info"));
        repo.write("clusters/prod/app.yaml", config_map("app", "info"));
        let base = repo.commit_all("base");
        repo.git(&["checkout", "-q", "-b", "changes"]);
        Some(Fixture { repo, corpus, base })
    }

    fn commit(&self, path: &str, content: &str) -> String {
        self.repo.write(path, content);
        self.repo.commit_all(&format!("change {path}"))
    }

    /// A webhook payload from the corpus, pointed at this repository's commits.
    fn payload(&self, file: &str, head: &str) -> PathBuf {
        let path = self
            .corpus
            .join("github/octokit-webhooks/payload-examples/api.github.com")
            .join(file);
        let mut payload: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        if let Some(pr) = payload.get_mut("pull_request") {
            pr["head"]["sha"] = Value::from(head);
            pr["base"]["sha"] = Value::from(self.base.as_str());
            pr["base"]["ref"] = Value::from("main");
        }
        if let Some(review) = payload.get_mut("review") {
            review["commit_id"] = Value::from(head);
        }
        if let Some(group) = payload.get_mut("merge_group") {
            group["head_sha"] = Value::from(head);
            group["base_sha"] = Value::from(self.base.as_str());
        }
        // merge_group's example is from another repository: point it at the stand-in's.
        payload["repository"]["full_name"] = Value::from(format!("{OWNER}/{REPO}"));
        payload["repository"]["name"] = Value::from(REPO);
        payload["repository"]["owner"]["login"] = Value::from(OWNER);
        let out = self.repo.path().join(".git/event.json");
        std::fs::write(&out, serde_json::to_vec(&payload).unwrap()).unwrap();
        out
    }
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
    summary: String,
    outputs: String,
}

fn run(fx: &Fixture, server: &StandIn, event: &str, payload: &Path, extra: &[&str]) -> Run {
    run_in(fx.repo.path(), server, event, payload, extra)
}

fn run_in(dir: &Path, server: &StandIn, event: &str, payload: &Path, extra: &[&str]) -> Run {
    run_with(dir, server, event, payload, extra, &[])
}

fn run_with(
    dir: &Path,
    server: &StandIn,
    event: &str,
    payload: &Path,
    extra: &[&str],
    vars: &[(&str, &str)],
) -> Run {
    let scratch = tempfile::tempdir().unwrap();
    let summary = scratch.path().join("summary.md");
    let outputs = scratch.path().join("outputs");
    let output = Command::new(env!("CARGO_BIN_EXE_stategate"))
        .args(["github", "pr"])
        .args(extra)
        .current_dir(dir)
        .env("GITHUB_EVENT_NAME", event)
        .env("GITHUB_EVENT_PATH", payload)
        .env("GITHUB_REPOSITORY", format!("{OWNER}/{REPO}"))
        .env("GITHUB_API_URL", &server.url)
        .env("GITHUB_SERVER_URL", "https://github.com")
        .env("GITHUB_TOKEN", "ghs_stand_in_token")
        .env("GITHUB_STEP_SUMMARY", &summary)
        .env("GITHUB_OUTPUT", &outputs)
        .env("RUNNER_TEMP", scratch.path())
        .env_remove("GITHUB_RUN_ID")
        .env_remove("GITHUB_SHA")
        .envs(vars.iter().copied())
        .output()
        .expect("run stategate");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        summary: std::fs::read_to_string(&summary).unwrap_or_default(),
        outputs: std::fs::read_to_string(&outputs).unwrap_or_default(),
    }
}

fn stand_in(fx: &Fixture, head: &str) -> StandIn {
    let server = StandIn::start(&fx.corpus, "");
    point(&server, fx, head);
    server
}

fn point(server: &StandIn, fx: &Fixture, head: &str) {
    server.with(|s| {
        s.pr_head = head.to_owned();
        s.pr_base = fx.base.clone();
    });
}

const R: &str = "/repos/Codertocat/Hello-World";

fn lines(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.replace("{R}", R)).collect()
}

fn check_body(server: &StandIn) -> Value {
    server.with(|s| s.check_runs.last().expect("a check run").1.clone())
}

fn comment_body(server: &StandIn) -> String {
    server.with(|s| s.comments.last().expect("a comment").body.clone())
}

#[test]
fn a_clean_pr_gets_a_success_check_and_one_comment_then_one_patch_then_nothing() {
    let Some(fx) = Fixture::new("version: 1\n") else {
        return;
    };
    let head = fx.commit("clusters/staging/app.yaml", &config_map("app", "debug"));
    let server = stand_in(&fx, &head);
    let payload = fx.payload("pull_request/opened.payload.json", &head);

    let first = run(&fx, &server, "pull_request", &payload, &[]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(
        server.take_requests(),
        lines(&[
            "GET {R}/pulls/2",
            "POST {R}/check-runs",
            "GET {R}/issues/2/comments?per_page=100&page=1",
            "POST {R}/issues/2/comments",
        ])
    );
    assert_eq!(check_body(&server)["conclusion"], "success");
    let body = comment_body(&server);
    assert!(body.starts_with("<!-- stategate:pr -->"), "{body}");
    assert!(body.contains("passes"), "{body}");
    assert!(
        body.contains("ConfigMap"),
        "the dry-run diff is in the comment: {body}"
    );
    assert!(first.outputs.contains("verdict=pass"), "{}", first.outputs);
    assert!(first.summary.contains("Dry-run diff"), "{}", first.summary);

    // A new push: the same comment is updated with one PATCH, no new POST.
    let head = fx.commit("clusters/staging/app.yaml", &config_map("app", "warn"));
    point(&server, &fx, &head);
    let payload = fx.payload("pull_request/synchronize.payload.json", &head);
    let second = run(&fx, &server, "pull_request", &payload, &[]);
    assert_eq!(second.code, 0, "{}", second.stderr);
    let id = server.with(|s| s.comments[0].id);
    assert_eq!(
        server.take_requests(),
        lines(&[
            "GET {R}/pulls/2",
            "POST {R}/check-runs",
            "GET {R}/issues/2/comments?per_page=100&page=1",
            &format!("PATCH {{R}}/issues/comments/{id}"),
        ])
    );
    assert_eq!(server.with(|s| s.comments.len()), 1);

    // The same run again: the body is byte-identical, so no comment write at all.
    let third = run(&fx, &server, "pull_request", &payload, &[]);
    assert_eq!(third.code, 0, "{}", third.stderr);
    assert_eq!(
        server.take_requests(),
        lines(&[
            "GET {R}/pulls/2",
            "POST {R}/check-runs",
            "GET {R}/issues/2/comments?per_page=100&page=1",
        ])
    );
}

#[test]
fn the_checkouts_merge_commit_is_judged_against_its_first_parent() {
    let Some(fx) = Fixture::new("version: 1\n") else {
        return;
    };
    let head = fx.commit("clusters/staging/app.yaml", &config_map("app", "trace"));
    // actions/checkout's default for pull_request: the merge commit, HEAD^2 = PR head.
    fx.repo.git(&["checkout", "-q", "--detach", "main"]);
    fx.repo
        .git(&["merge", "-q", "--no-ff", "-m", "merge", "changes"]);
    let server = stand_in(&fx, &head);
    let payload = fx.payload("pull_request/opened.payload.json", &head);
    let out = run(&fx, &server, "pull_request", &payload, &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let check = check_body(&server);
    assert_eq!(check["head_sha"], head.as_str(), "reported on the PR head");
    assert_eq!(check["conclusion"], "failure");
    server.take_requests();
}

#[test]
fn a_pr_editing_policies_to_allow_the_violation_it_adds_still_fails() {
    let Some(fx) = Fixture::new("version: 1\n") else {
        return;
    };
    fx.repo
        .write("policies/main.rego", "package main\nimport rego.v1\n");
    let head = fx.commit("clusters/staging/app.yaml", &config_map("app", "trace"));
    let server = stand_in(&fx, &head);
    let payload = fx.payload("pull_request/opened.payload.json", &head);
    let out = run(&fx, &server, "pull_request", &payload, &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let check = check_body(&server);
    assert_eq!(check["conclusion"], "failure");
    let annotations = &check["output"]["annotations"];
    assert_eq!(annotations[0]["path"], "clusters/staging/app.yaml");
    assert_eq!(annotations[0]["annotation_level"], "failure");
    let body = comment_body(&server);
    assert!(body.contains("trace logging is not allowed"), "{body}");
    assert!(
        body.contains(&format!(
            "(https://github.com/{OWNER}/{REPO}/blob/{head}/clusters/staging/app.yaml#L"
        )),
        "findings link to the blob at the head SHA: {body}"
    );
    server.take_requests();
}

#[test]
fn two_hundred_findings_are_annotated_in_batches_of_fifty() {
    let Some(fx) = Fixture::new("version: 1\n") else {
        return;
    };
    for i in 0..200 {
        fx.repo.write(
            &format!("clusters/staging/cm-{i:03}.yaml"),
            config_map(&format!("cm-{i}"), "trace"),
        );
    }
    let head = fx.repo.commit_all("200 violations");
    let server = stand_in(&fx, &head);
    let payload = fx.payload("pull_request/opened.payload.json", &head);
    let out = run(&fx, &server, "pull_request", &payload, &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let requests = server.take_requests();
    let run_id = server.with(|s| s.check_runs[0].0);
    let patch = format!("PATCH {R}/check-runs/{run_id}");
    assert_eq!(
        requests.iter().filter(|r| **r == patch).count(),
        3,
        "{requests:?}"
    );
    assert_eq!(server.with(|s| s.check_runs[0].2.len()), 200);
    assert!(comment_body(&server).chars().count() <= 65_536);
}

#[test]
fn prod_with_one_of_two_approvals_fails_and_names_who_is_still_needed() {
    let Some(fx) = Fixture::new(CONFIG) else {
        return;
    };
    let head = fx.commit("clusters/prod/app.yaml", &config_map("app", "debug"));
    let server = stand_in(&fx, &head);
    server.add_review("alice", "APPROVED", &head);
    server.add_review("dave", "APPROVED", &head);
    let payload = fx.payload("pull_request_review/submitted.payload.json", &head);
    let out = run(&fx, &server, "pull_request_review", &payload, &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_eq!(
        server.take_requests(),
        lines(&[
            "GET {R}/pulls/2",
            "GET {R}/pulls/2/reviews?per_page=100&page=1",
            "GET {R}/compare/main...{head}"
                .replace("{head}", &head)
                .as_str(),
            "POST {R}/check-runs",
            "GET {R}/issues/2/comments?per_page=100&page=1",
            "POST {R}/issues/2/comments",
        ])
    );
    assert_eq!(check_body(&server)["conclusion"], "action_required");
    let body = comment_body(&server);
    assert!(
        body.contains("| prod-needs-two | 2 | alice | 1 more from bob, carol |"),
        "{body}"
    );
}

#[test]
fn a_stale_approval_does_not_count() {
    let Some(fx) = Fixture::new(CONFIG) else {
        return;
    };
    let old = fx.commit("clusters/prod/app.yaml", &config_map("app", "debug"));
    let head = fx.commit("clusters/prod/app.yaml", &config_map("app", "warn"));
    let server = stand_in(&fx, &head);
    server.add_review("alice", "APPROVED", &head);
    server.add_review("bob", "APPROVED", &old);
    let payload = fx.payload("pull_request/synchronize.payload.json", &head);
    let out = run(&fx, &server, "pull_request", &payload, &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let body = comment_body(&server);
    assert!(body.contains("stale (older commit): bob"), "{body}");
    server.take_requests();
}

#[test]
fn the_author_approving_their_own_pr_does_not_count() {
    let Some(fx) = Fixture::new(&CONFIG.replace("[alice, bob, carol]", "[alice, Codertocat]"))
    else {
        return;
    };
    let head = fx.commit("clusters/prod/app.yaml", &config_map("app", "debug"));
    let server = stand_in(&fx, &head);
    server.add_review("alice", "APPROVED", &head);
    server.add_review(OWNER, "APPROVED", &head);
    let payload = fx.payload("pull_request/opened.payload.json", &head);
    let out = run(&fx, &server, "pull_request", &payload, &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(comment_body(&server).contains("| prod-needs-two | 2 | alice |"));
    server.take_requests();
}

#[test]
fn changes_requested_blocks_until_the_reviewer_approves() {
    let Some(fx) = Fixture::new(CONFIG) else {
        return;
    };
    let head = fx.commit("clusters/prod/app.yaml", &config_map("app", "debug"));
    let server = stand_in(&fx, &head);
    server.add_review("alice", "APPROVED", &head);
    server.add_review("bob", "CHANGES_REQUESTED", &head);
    server.add_review("bob", "COMMENTED", &head);
    let payload = fx.payload("pull_request_review/submitted.payload.json", &head);
    let blocked = run(&fx, &server, "pull_request_review", &payload, &[]);
    assert_eq!(blocked.code, 1, "{}", blocked.stderr);
    assert_eq!(check_body(&server)["conclusion"], "failure");
    assert!(comment_body(&server).contains("changes requested by bob"));
    server.add_review("bob", "APPROVED", &head);
    let approved = run(&fx, &server, "pull_request_review", &payload, &[]);
    assert_eq!(approved.code, 0, "{}", approved.stderr);
    assert_eq!(check_body(&server)["conclusion"], "success");
    server.take_requests();
}

#[test]
fn a_team_member_when_team_reads_are_forbidden_fails_closed() {
    let Some(fx) =
        Fixture::new(&CONFIG.replace("[alice, bob, carol]", "[alice, \"@acme/platform\"]"))
    else {
        return;
    };
    let head = fx.commit("clusters/prod/app.yaml", &config_map("app", "debug"));
    let server = stand_in(&fx, &head);
    server.add_review("alice", "APPROVED", &head);
    server.add_review("erin", "APPROVED", &head);
    server.with(|s| s.memberships.insert("acme/platform/erin".into(), 403));
    let payload = fx.payload("pull_request/opened.payload.json", &head);
    let out = run(&fx, &server, "pull_request", &payload, &[]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    let requests = server.take_requests();
    assert!(
        requests.contains(&"GET /orgs/acme/teams/platform/memberships/erin".to_owned()),
        "{requests:?}"
    );
    let body = comment_body(&server);
    assert!(
        body.contains("Members: read") && body.contains("read:org"),
        "{body}"
    );

    // With membership readable, the team member counts.
    server.with(|s| s.memberships.insert("acme/platform/erin".into(), 200));
    let out = run(&fx, &server, "pull_request", &payload, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    server.take_requests();
}

#[test]
fn codeowners_of_the_touched_paths_are_the_eligible_reviewers() {
    let config = CONFIG
        .replace("[alice, bob, carol]", "[codeowners]")
        .replace("required: 2", "required: 1");
    let Some(fx) = Fixture::new(&config) else {
        return;
    };
    // CODEOWNERS comes from the base branch; the PR's own edit to it does not count.
    fx.repo.git(&["checkout", "-q", "main"]);
    fx.repo
        .write(".github/CODEOWNERS", "* @zed\n/clusters/prod/ @olga\n");
    let base = fx.repo.commit_all("codeowners");
    fx.repo.git(&["checkout", "-q", "changes"]);
    fx.repo.git(&["merge", "-q", "main"]);
    fx.repo.write(".github/CODEOWNERS", "* @mallory\n");
    let head = fx.commit("clusters/prod/app.yaml", &config_map("app", "debug"));
    let fx = Fixture { base, ..fx };
    let server = stand_in(&fx, &head);
    server.add_review("mallory", "APPROVED", &head);
    let payload = fx.payload("pull_request/opened.payload.json", &head);
    let out = run(&fx, &server, "pull_request", &payload, &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        comment_body(&server).contains("1 more from olga"),
        "{}",
        comment_body(&server)
    );
    server.add_review("olga", "APPROVED", &head);
    let out = run(&fx, &server, "pull_request", &payload, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    server.take_requests();
}

#[test]
fn a_pr_behind_base_fails_with_the_count() {
    let config =
        "version: 1\nenvironments:\n  prod: [\"clusters/prod/**\"]\ndrift:\n  up_to_date: [prod]\n";
    let Some(fx) = Fixture::new(config) else {
        return;
    };
    let head = fx.commit("clusters/prod/app.yaml", &config_map("app", "debug"));
    let server = stand_in(&fx, &head);
    server.with(|s| s.behind_by = 3);
    let payload = fx.payload("pull_request/opened.payload.json", &head);
    let out = run(&fx, &server, "pull_request", &payload, &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let check = check_body(&server);
    assert_eq!(check["conclusion"], "failure");
    assert!(comment_body(&server).contains("3 commits behind main; update the branch"));
    server.take_requests();
}

#[test]
fn a_five_thousand_object_diff_fits_the_comment_and_the_summary_has_all() {
    let Some(fx) = Fixture::new("version: 1\n") else {
        return;
    };
    let mut doc = String::new();
    for i in 0..5000 {
        doc.push_str(&config_map(&format!("object-{i:04}"), "info"));
        doc.push_str("---\n");
    }
    let head = fx.commit("clusters/staging/many.yaml", &doc);
    let server = stand_in(&fx, &head);
    let payload = fx.payload("pull_request/opened.payload.json", &head);
    let out = run(&fx, &server, "pull_request", &payload, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let body = comment_body(&server);
    assert!(body.chars().count() <= 65_536, "{}", body.chars().count());
    assert!(
        body.contains("not shown"),
        "the comment says what it left out"
    );
    assert!(out.summary.contains("object-4999") && out.summary.contains("object-0000"));
    assert!(out.summary.len() <= 1024 * 1024);
    server.take_requests();
}

#[test]
fn a_fork_prs_read_only_token_gets_annotations_and_the_summary() {
    let Some(fx) = Fixture::new("version: 1\n") else {
        return;
    };
    let head = fx.commit("clusters/staging/app.yaml", &config_map("app", "trace"));
    let server = stand_in(&fx, &head);
    server.with(|s| s.read_only = true);
    let payload = fx.payload("pull_request/opened.payload.json", &head);
    let out = run(&fx, &server, "pull_request", &payload, &[]);
    assert_eq!(
        out.code, 1,
        "the verdict's exit code is kept: {}",
        out.stderr
    );
    assert!(
        out.stdout
            .contains("::error file=clusters/staging/app.yaml,line="),
        "{}",
        out.stdout
    );
    assert!(out.summary.contains("trace logging is not allowed"));
    assert_eq!(
        server.take_requests(),
        lines(&[
            "GET {R}/pulls/2",
            "POST {R}/check-runs",
            &format!("POST {R}/statuses/{head}"),
            "GET {R}/issues/2/comments?per_page=100&page=1",
            "POST {R}/issues/2/comments",
        ])
    );
}

#[test]
fn a_token_without_checks_write_reports_a_commit_status() {
    let Some(fx) = Fixture::new("version: 1\n") else {
        return;
    };
    let head = fx.commit("clusters/staging/app.yaml", &config_map("app", "trace"));
    let server = stand_in(&fx, &head);
    server.with(|s| s.forbid_checks = true);
    let payload = fx.payload("pull_request/opened.payload.json", &head);
    let out = run(&fx, &server, "pull_request", &payload, &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let status = server.with(|s| s.statuses[0].clone());
    assert_eq!(status["context"], "stategate");
    assert_eq!(status["state"], "failure");
    server.take_requests();
}

#[test]
fn a_run_whose_head_moved_writes_nothing() {
    let Some(fx) = Fixture::new("version: 1\n") else {
        return;
    };
    let head = fx.commit("clusters/staging/app.yaml", &config_map("app", "trace"));
    let server = stand_in(&fx, "0123456789012345678901234567890123456789");
    let payload = fx.payload("pull_request/synchronize.payload.json", &head);
    let out = run(&fx, &server, "pull_request", &payload, &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("head moved"), "{}", out.stderr);
    assert_eq!(server.take_requests(), lines(&["GET {R}/pulls/2"]));
}

#[test]
fn github_enterprise_server_is_reached_under_api_v3() {
    let Some(fx) = Fixture::new("version: 1\n") else {
        return;
    };
    let head = fx.commit("clusters/staging/app.yaml", &config_map("app", "debug"));
    let server = StandIn::start(&fx.corpus, "/api/v3");
    point(&server, &fx, &head);
    server.add_comment("<!-- stategate:pr -->\nold", true);
    server.add_comment("<!-- stategate:pr -->\nnewer", true);
    let payload = fx.payload("pull_request/opened.payload.json", &head);
    let out = run(&fx, &server, "pull_request", &payload, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let (first, second) = server.with(|s| (s.comments[0].id, s.comments[1].id));
    assert_eq!(
        server.take_requests(),
        lines(&[
            "GET {R}/pulls/2",
            "POST {R}/check-runs",
            "GET {R}/issues/2/comments?per_page=100&page=1",
            &format!("PATCH {{R}}/issues/comments/{second}"),
            "POST /graphql",
        ])
    );
    assert!(
        server.with(|s| s.comments[0].minimized),
        "the older duplicate {first} is minimized"
    );
}

#[test]
fn a_502_is_retried() {
    let Some(fx) = Fixture::new("version: 1\n") else {
        return;
    };
    let head = fx.commit("clusters/staging/app.yaml", &config_map("app", "debug"));
    let server = stand_in(&fx, &head);
    server.with(|s| s.fail_times.insert(format!("POST {R}/check-runs"), 1));
    let payload = fx.payload("pull_request/opened.payload.json", &head);
    let out = run(&fx, &server, "pull_request", &payload, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        server.take_requests(),
        lines(&[
            "GET {R}/pulls/2",
            "POST {R}/check-runs",
            "POST {R}/check-runs",
            "GET {R}/issues/2/comments?per_page=100&page=1",
            "POST {R}/issues/2/comments",
        ])
    );
}

#[test]
fn a_merge_group_gets_a_check_on_its_head_and_no_comment() {
    let Some(fx) = Fixture::new("version: 1\n") else {
        return;
    };
    let head = fx.commit("clusters/staging/app.yaml", &config_map("app", "trace"));
    let server = stand_in(&fx, &head);
    let payload = fx.payload("merge_group/checks_requested.payload.json", &head);
    let out = run(&fx, &server, "merge_group", &payload, &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_eq!(server.take_requests(), lines(&["POST {R}/check-runs"]));
    assert_eq!(check_body(&server)["head_sha"], head.as_str());
}

#[test]
fn pull_request_target_is_refused() {
    let Some(fx) = Fixture::new("version: 1\n") else {
        return;
    };
    let head = fx.commit("clusters/staging/app.yaml", &config_map("app", "debug"));
    let server = stand_in(&fx, &head);
    let payload = fx.payload("pull_request/opened.payload.json", &head);
    let out = run(&fx, &server, "pull_request_target", &payload, &[]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("refusing `pull_request_target`"),
        "{}",
        out.stderr
    );
    assert!(server.take_requests().is_empty());
}

#[test]
fn the_stand_in_rejects_requests_github_would_reject() {
    let Some(corpus) = common::corpus() else {
        return;
    };
    let spec = github_support::spec::spec(&corpus);
    assert!(
        spec.validate("POST", &format!("{R}/issues/comments/1"), None)
            .is_err(),
        "octocrab's update_comment POST"
    );
    assert!(
        spec.validate(
            "PATCH",
            &format!("{R}/issues/comments/1"),
            Some(&serde_json::json!({"body": "x"}))
        )
        .is_ok()
    );
    assert!(
        spec.validate(
            "POST",
            &format!("{R}/check-runs"),
            Some(&serde_json::json!({"name": "x"}))
        )
        .is_err(),
        "head_sha is required"
    );
    assert!(
        spec.validate(
            "POST",
            &format!("{R}/check-runs"),
            Some(&serde_json::json!({"name": "x", "head_sha": "a", "conclusion": "nope"}))
        )
        .is_err(),
        "enum"
    );
    assert!(
        spec.validate("GET", "/repos/a/b/no-such-thing", None)
            .is_err()
    );
}

#[test]
fn findings_on_rendered_objects_annotate_the_file_kustomize_read() {
    let config = "version: 1\nrender:\n  kustomize: [\"clusters/*\"]\n";
    let Some(fx) = Fixture::new(config) else {
        return;
    };
    // The base has the object; the PR patches it in an overlay: only the rendered object shows
    // the violation.
    fx.repo.git(&["checkout", "-q", "main"]);
    fx.repo
        .write("base/kustomization.yaml", "resources:\n  - settings.yaml\n");
    fx.repo
        .write("base/settings.yaml", config_map("settings", "info"));
    let base = fx.repo.commit_all("base objects");
    fx.repo.git(&["checkout", "-q", "changes"]);
    fx.repo.git(&["merge", "-q", "main"]);
    fx.repo.write(
        "clusters/staging/kustomization.yaml",
        "resources:\n  - ../../base\npatches:\n  - path: level.yaml\n",
    );
    let head = fx.commit(
        "clusters/staging/level.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: apps\ndata:\n  level: trace\n",
    );
    let fx = Fixture { base, ..fx };
    let server = stand_in(&fx, &head);
    let payload = fx.payload("pull_request/opened.payload.json", &head);
    let out = run(&fx, &server, "pull_request", &payload, &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let annotations = check_body(&server)["output"]["annotations"].clone();
    let paths: Vec<&str> = annotations
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["path"].as_str())
        .collect();
    assert!(
        paths.contains(&"base/settings.yaml"),
        "{annotations}\n{}",
        comment_body(&server)
    );
    assert!(
        paths.iter().all(|p| !p.contains("rendered by")),
        "{annotations}"
    );
    // Where in that file is the engine's call (`Gate` relocates rendered findings to their
    // source since issue 10); the annotation must name a file of the repository.
    let at = annotations
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["message"].as_str().unwrap().contains("trace logging"))
        .expect("the policy finding on the rendered object");
    assert!(
        ["base/settings.yaml", "clusters/staging/level.yaml"]
            .contains(&at["path"].as_str().unwrap()),
        "{annotations}"
    );
    server.take_requests();
}

/// The benchmark: a clean 500-file PR against the stand-in. Prints the wall time (no
/// timed assertion); the request count is asserted: at most 8 for a clean PR without teams.
#[test]
fn a_clean_500_file_pr_takes_at_most_8_requests() {
    let Some(fx) = Fixture::new("version: 1\n") else {
        return;
    };
    for i in 0..500 {
        fx.repo.write(
            &format!("clusters/staging/app-{i:03}.yaml"),
            config_map(&format!("app-{i}"), "info"),
        );
    }
    let head = fx.repo.commit_all("500 files");
    let server = stand_in(&fx, &head);
    let payload = fx.payload("pull_request/opened.payload.json", &head);
    let started = std::time::Instant::now();
    let out = run(&fx, &server, "pull_request", &payload, &[]);
    let elapsed = started.elapsed();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let requests = server.take_requests();
    eprintln!(
        "benchmark: 500-file PR: {} requests, {:.2?} wall time",
        requests.len(),
        elapsed
    );
    assert!(requests.len() <= 8, "{requests:?}");
}

#[test]
fn a_secondary_rate_limit_is_retried_after_the_time_github_asks() {
    let Some(fx) = Fixture::new("version: 1\n") else {
        return;
    };
    let head = fx.commit("clusters/staging/app.yaml", &config_map("app", "debug"));
    let server = stand_in(&fx, &head);
    server.with(|s| {
        s.rate_limit_times.insert(
            "POST /repos/Codertocat/Hello-World/issues/2/comments".into(),
            2,
        )
    });
    let payload = fx.payload("pull_request/opened.payload.json", &head);
    let out = run(&fx, &server, "pull_request", &payload, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        server.take_requests(),
        lines(&[
            "GET {R}/pulls/2",
            "POST {R}/check-runs",
            "GET {R}/issues/2/comments?per_page=100&page=1",
            "POST {R}/issues/2/comments",
            "POST {R}/issues/2/comments",
            "POST {R}/issues/2/comments",
        ])
    );
    assert_eq!(server.with(|s| s.comments.len()), 1);
}

#[test]
fn the_sticky_comment_is_found_past_the_first_page_of_comments() {
    let Some(fx) = Fixture::new("version: 1\n") else {
        return;
    };
    let head = fx.commit("clusters/staging/app.yaml", &config_map("app", "debug"));
    let server = stand_in(&fx, &head);
    for i in 0..120 {
        server.add_comment(&format!("human comment {i}"), false);
    }
    // A human quoting the marker is not the gate's comment.
    server.add_comment("<!-- stategate:pr -->\nquoted by a human", false);
    let ours = server.add_comment("<!-- stategate:pr -->\nold verdict", true);
    for i in 0..90 {
        server.add_comment(&format!("later comment {i}"), false);
    }
    let payload = fx.payload("pull_request/opened.payload.json", &head);
    let out = run(&fx, &server, "pull_request", &payload, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        server.take_requests(),
        lines(&[
            "GET {R}/pulls/2",
            "POST {R}/check-runs",
            "GET {R}/issues/2/comments?per_page=100&page=1",
            "GET {R}/issues/2/comments?per_page=100&page=2",
            "GET {R}/issues/2/comments?per_page=100&page=3",
            &format!("PATCH {{R}}/issues/comments/{ours}"),
        ])
    );
    assert!(server.with(|s| s.comments[120].body.contains("quoted by a human")));
}

#[test]
fn the_stand_in_enforces_the_limits_the_description_leaves_out() {
    use github_support::check_limits;
    use serde_json::json;
    let comment = |n: usize| json!({"body": "x".repeat(n)});
    let path = format!("{R}/issues/2/comments");
    assert!(check_limits("POST", &path, Some(&comment(65_536))).is_ok());
    assert!(check_limits("POST", &path, Some(&comment(65_537))).is_err());
    let annotation = json!({"path": "a", "start_line": 1, "end_line": 1, "annotation_level": "failure", "message": "m"});
    let run = |n: usize, title: &str| {
        let mut a = annotation.clone();
        a["title"] = json!(title);
        json!({"output": {"title": "t", "summary": "s", "annotations": vec![a; n]}})
    };
    let checks = format!("{R}/check-runs");
    assert!(check_limits("POST", &checks, Some(&run(50, "t"))).is_ok());
    assert!(check_limits("POST", &checks, Some(&run(51, "t"))).is_err());
    assert!(check_limits("POST", &checks, Some(&run(1, &"t".repeat(256)))).is_err());
    let status = |d: usize, c: usize| json!({"state": "failure", "description": "d".repeat(d), "context": "c".repeat(c)});
    let statuses = format!("{R}/statuses/abc");
    assert!(check_limits("POST", &statuses, Some(&status(140, 255))).is_ok());
    assert!(check_limits("POST", &statuses, Some(&status(141, 10))).is_err());
    assert!(check_limits("POST", &statuses, Some(&status(10, 256))).is_err());
}

#[test]
fn a_base_change_that_alters_prods_rendered_objects_needs_the_prod_approval() {
    let config = format!("{CONFIG}render:\n  kustomize: [\"clusters/*\"]\n");
    let Some(fx) = Fixture::new(&config) else {
        return;
    };
    fx.repo.git(&["checkout", "-q", "main"]);
    fx.repo.remove("clusters/prod/app.yaml");
    fx.repo.write(
        "clusters/prod/kustomization.yaml",
        "resources:\n  - ../../base\n",
    );
    fx.repo
        .write("base/kustomization.yaml", "resources:\n  - settings.yaml\n");
    fx.repo
        .write("base/settings.yaml", config_map("settings", "info"));
    let base = fx.repo.commit_all("prod renders base/");
    fx.repo.git(&["checkout", "-q", "changes"]);
    fx.repo.git(&["merge", "-q", "main"]);
    // Only base/ changes; no path under clusters/prod/ is touched.
    let head = fx.commit("base/settings.yaml", &config_map("settings", "debug"));
    let fx = Fixture { base, ..fx };
    let server = stand_in(&fx, &head);
    let payload = fx.payload("pull_request/opened.payload.json", &head);
    let out = run(&fx, &server, "pull_request", &payload, &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let body = comment_body(&server);
    assert!(
        body.contains("| prod-needs-two | 2 | — | 2 more from alice, bob, carol |"),
        "{body}"
    );
    server.take_requests();
}

#[test]
fn a_shallow_checkout_fetches_what_it_lacks() {
    let Some(fx) = Fixture::new("version: 1\n") else {
        return;
    };
    fx.commit("clusters/staging/app.yaml", &config_map("app", "debug"));
    let head = fx.commit("clusters/staging/app.yaml", &config_map("app", "trace"));
    // actions/checkout's default: one commit deep, the PR head only.
    let clone = tempfile::tempdir().unwrap();
    let origin = format!("file://{}", fx.repo.path().display());
    fx.repo.git(&[
        "clone",
        "-q",
        "--depth",
        "1",
        "--branch",
        "changes",
        &origin,
        clone.path().to_str().unwrap(),
    ]);
    let server = stand_in(&fx, &head);
    let payload = fx.payload("pull_request/opened.payload.json", &head);
    let out = run_in(clone.path(), &server, "pull_request", &payload, &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(comment_body(&server).contains("trace logging is not allowed"));
    server.take_requests();

    // Without a remote to fetch from, the run fails closed and says what to do.
    let again = tempfile::tempdir().unwrap();
    let target = again.path().to_str().unwrap();
    fx.repo.git(&[
        "clone", "-q", "--depth", "1", "--branch", "changes", &origin, target,
    ]);
    fx.repo
        .git_in(again.path(), &["remote", "remove", "origin"]);
    let out = run_in(again.path(), &server, "pull_request", &payload, &[]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("fetch-depth: 0"), "{}", out.stderr);
    assert!(server.take_requests().is_empty());
}

#[test]
fn comment_on_failure_skips_a_passing_pr_and_fail_on_warning_blocks_warnings() {
    let Some(fx) = Fixture::new("version: 1\n") else {
        return;
    };
    let head = fx.commit("clusters/staging/app.yaml", &config_map("app", "debug"));
    let server = stand_in(&fx, &head);
    let payload = fx.payload("pull_request/opened.payload.json", &head);
    let out = run(
        &fx,
        &server,
        "pull_request",
        &payload,
        &["--comment", "on-failure"],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        server.take_requests(),
        lines(&["GET {R}/pulls/2", "POST {R}/check-runs"])
    );

    // A policy warning passes, unless `--fail-on warning`.
    let head = fx.commit("clusters/staging/app.yaml", &config_map("app", "verbose"));
    point(&server, &fx, &head);
    let payload = fx.payload("pull_request/synchronize.payload.json", &head);
    let passes = run(
        &fx,
        &server,
        "pull_request",
        &payload,
        &["--comment", "false"],
    );
    assert_eq!(passes.code, 0, "{}", passes.stderr);
    let blocks = run(
        &fx,
        &server,
        "pull_request",
        &payload,
        &["--comment", "false", "--fail-on", "warning"],
    );
    assert_eq!(blocks.code, 1, "{}", blocks.stderr);
    assert!(
        blocks.outputs.contains("verdict=fail"),
        "{}",
        blocks.outputs
    );
    server.take_requests();
}

#[test]
fn a_github_that_keeps_failing_is_given_up_on_and_the_verdict_kept() {
    let Some(fx) = Fixture::new("version: 1\n") else {
        return;
    };
    let head = fx.commit("clusters/staging/app.yaml", &config_map("app", "trace"));
    let server = stand_in(&fx, &head);
    server.with(|s| s.fail_times.insert(format!("POST {R}/check-runs"), 1000));
    let payload = fx.payload("pull_request/opened.payload.json", &head);
    let out = run(
        &fx,
        &server,
        "pull_request",
        &payload,
        &["--comment", "false"],
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("could not report the check"),
        "{}",
        out.stderr
    );
    assert!(
        out.stdout
            .contains("::error file=clusters/staging/app.yaml"),
        "{}",
        out.stdout
    );
    let requests = server.take_requests();
    let tries = requests
        .iter()
        .filter(|r| r.ends_with("/check-runs"))
        .count();
    assert_eq!(tries, 6, "{requests:?}");
}

/// Commit `files` on `main` (the PR's base), and bring them into the PR branch.
fn on_base(fx: Fixture, files: &[(&str, String)]) -> Fixture {
    fx.repo.git(&["checkout", "-q", "main"]);
    for (path, text) in files {
        fx.repo.write(path, text);
    }
    let base = fx.repo.commit_all("base rules");
    fx.repo.git(&["checkout", "-q", "changes"]);
    fx.repo.git(&["merge", "-q", "main"]);
    Fixture { base, ..fx }
}

/// A change policy: prod changes need the security bot's approving review.
const REVIEW_POLICY: &str = "package stategate.change
import rego.v1

deny contains msg if {
  some f in input.files
  startswith(f.path, \"clusters/prod/\")
  not approved_by_secbot
  msg := sprintf(\"%s: prod changes need an approving review from secbot\", [f.path])
}

approved_by_secbot if {
  some r in input.reviews
  r.user == \"secbot\"
  r.state == \"APPROVED\"
}
";

#[test]
fn a_change_policy_reads_the_prs_reviews() {
    let Some(fx) = Fixture::new("version: 1\n") else {
        return;
    };
    let fx = on_base(fx, &[("policies/change.rego", REVIEW_POLICY.to_owned())]);
    let head = fx.commit("clusters/prod/app.yaml", &config_map("app", "debug"));
    let server = stand_in(&fx, &head);
    let payload = fx.payload("pull_request/opened.payload.json", &head);
    let blocked = run(&fx, &server, "pull_request", &payload, &[]);
    assert_eq!(blocked.code, 1, "{}", blocked.stderr);
    assert!(
        comment_body(&server).contains("prod changes need an approving review from secbot"),
        "{}",
        comment_body(&server)
    );
    assert!(
        server
            .take_requests()
            .contains(&format!("GET {R}/pulls/2/reviews?per_page=100&page=1")),
        "the policy's reviews are fetched"
    );
    server.add_review("secbot", "APPROVED", &head);
    let passed = run(&fx, &server, "pull_request", &payload, &[]);
    assert_eq!(passed.code, 0, "{}", passed.stderr);
    server.take_requests();
}

/// A change policy that denies plain Secrets, judged the same in `check`, the hook and the PR.
const NO_SECRETS: &str = "package stategate.change
import rego.v1

deny contains msg if {
  some f in input.files
  some doc in f.after
  doc.kind == \"Secret\"
  msg := sprintf(\"%s adds a plain Secret: use a SealedSecret\", [f.path])
}
";

const SECRET: &str = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: token\n  namespace: apps\nstringData:\n  token: hunter2\n";

#[test]
fn a_change_policy_denies_in_github_pr_as_in_check() {
    let Some(fx) = Fixture::new("version: 1\n") else {
        return;
    };
    let fx = on_base(fx, &[("policies/change.rego", NO_SECRETS.to_owned())]);
    let head = fx.commit("clusters/staging/token.yaml", SECRET);
    let server = stand_in(&fx, &head);
    let payload = fx.payload("pull_request/opened.payload.json", &head);
    let out = run(&fx, &server, "pull_request", &payload, &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        comment_body(&server).contains("adds a plain Secret: use a SealedSecret"),
        "{}",
        comment_body(&server)
    );
    server.take_requests();
}

const ADMINS: &str = "version: 1
protect:
  admins:
    from: [root]
";

#[test]
fn a_pr_changing_the_policies_needs_an_admins_approving_review() {
    let Some(fx) = Fixture::new(ADMINS) else {
        return;
    };
    let head = fx.commit("policies/main.rego", &POLICY.replace("trace", "fatal"));
    let server = stand_in(&fx, &head);
    let payload = fx.payload("pull_request/opened.payload.json", &head);
    let blocked = run(&fx, &server, "pull_request", &payload, &[]);
    assert_eq!(blocked.code, 1, "{}", blocked.stderr);
    let body = comment_body(&server);
    assert!(body.contains("protect/trust-paths"), "{body}");
    assert!(
        body.contains("| protect.admins | 1 | — | 1 more from root |"),
        "{body}"
    );
    server.add_review("root", "APPROVED", &head);
    let passed = run(&fx, &server, "pull_request", &payload, &[]);
    assert_eq!(passed.code, 0, "{}", passed.stderr);
    assert!(comment_body(&server).contains("| protect.admins | 1 | root | ✅ |"));
    server.take_requests();
}

const STAGING_APPROVAL: &str = "version: 1
approvals:
  - name: staging
    paths: [\"clusters/staging/**\"]
    from: [alice]
";

/// The merge group's payload, its `head_ref` naming PR 2 at `pr_head`.
fn merge_group_payload(fx: &Fixture, head: &str, head_ref: &str) -> PathBuf {
    let path = fx.payload("merge_group/checks_requested.payload.json", head);
    let mut payload: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    payload["merge_group"]["head_ref"] = Value::from(head_ref);
    std::fs::write(&path, serde_json::to_vec(&payload).unwrap()).unwrap();
    path
}

#[test]
fn a_merge_group_is_approved_by_the_reviews_of_its_pull_request() {
    let Some(fx) = Fixture::new(STAGING_APPROVAL) else {
        return;
    };
    let head = fx.commit("clusters/staging/app.yaml", &config_map("app", "warn"));
    let server = stand_in(&fx, &head);
    let queue = format!("refs/heads/gh-readonly-queue/main/pr-2-{head}");
    let payload = merge_group_payload(&fx, &head, &queue);
    let blocked = run(&fx, &server, "merge_group", &payload, &[]);
    assert_eq!(blocked.code, 1, "{}", blocked.stderr);
    assert_eq!(
        server.take_requests(),
        lines(&[
            "GET {R}/pulls/2",
            "GET {R}/pulls/2/reviews?per_page=100&page=1",
            "POST {R}/check-runs",
        ])
    );
    server.add_review("alice", "APPROVED", &head);
    let passed = run(&fx, &server, "merge_group", &payload, &[]);
    assert_eq!(passed.code, 0, "{}", passed.stderr);
    assert_eq!(check_body(&server)["conclusion"], "success");

    // A queue entry that names no pull request cannot be approved: it fails closed.
    let unknown = merge_group_payload(&fx, &head, "refs/heads/some-queue");
    let undecided = run(&fx, &server, "merge_group", &unknown, &[]);
    assert_eq!(undecided.code, 2, "{}", undecided.stderr);
    let summary = check_body(&server)["output"]["summary"].to_string();
    assert!(
        summary.contains("pull request whose reviews approve it is unknown"),
        "{summary}"
    );
    server.take_requests();
}

const DRIFT_CONFIG: &str = "version: 1
exclude: [\"live/**\"]
environments:
  prod: [\"clusters/prod/**\"]
drift:
  live:
    source: snapshot
    path: \"live/{env}/\"
    on_drift: block
  acknowledge_by: [oncall]
";

#[test]
fn a_pr_onto_drifted_prod_fails_with_a_drift_section_until_acknowledged() {
    let Some(fx) = Fixture::new(DRIFT_CONFIG) else {
        return;
    };
    if !drift_support::kubectl_available() {
        return;
    }
    let path = fx
        .corpus
        .join("gitops-repos/kubernetes-examples/web/guestbook/frontend-deployment.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let object = drift_support::objects(&path).remove(0);
    let mut live = drift_support::as_served(&object, "default", 0);
    // Hand-scaled in prod: 5 replicas where Git says 3.
    live["spec"]["replicas"] = json!(5);
    let fx = on_base(
        fx,
        &[
            ("clusters/prod/frontend.yaml", text.clone()),
            (
                "live/prod/snapshot.yaml",
                drift_support::kubectl_yaml(&[live]),
            ),
        ],
    );
    // The PR bumps the image and keeps Git's 3 replicas: merging reverts the hand edit.
    let head = fx.commit(
        "clusters/prod/frontend.yaml",
        &text.replace("gb-frontend:v5", "gb-frontend:v6"),
    );
    let server = stand_in(&fx, &head);
    let payload = fx.payload("pull_request/opened.payload.json", &head);
    let blocked = run(&fx, &server, "pull_request", &payload, &[]);
    assert_eq!(blocked.code, 1, "{}", blocked.stderr);
    assert_eq!(check_body(&server)["conclusion"], "failure");
    let body = comment_body(&server);
    let drift = body.split("#### Drift").nth(1).expect("a Drift section");
    assert!(drift.contains("**blocks** `drift/live`"), "{body}");
    assert!(drift.contains("spec.replicas: live 5, Git 3"), "{body}");
    assert!(
        drift.contains("this change reverts a live edit of \\`spec.replicas\\`: 5 → 3"),
        "{body}"
    );

    // Someone outside drift.acknowledge_by approving changes nothing; oncall's approval does.
    server.add_review("dave", "APPROVED", &head);
    assert_eq!(run(&fx, &server, "pull_request", &payload, &[]).code, 1);
    server.add_review("oncall", "APPROVED", &head);
    let acked = run(&fx, &server, "pull_request", &payload, &[]);
    assert_eq!(acked.code, 0, "{}", acked.stderr);
    let body = comment_body(&server);
    let drift = body.split("#### Drift").nth(1).expect("a Drift section");
    assert!(
        drift.contains("**warning** `drift/live`: acknowledged by oncall (PR approval)"),
        "{body}"
    );
    assert!(drift.contains("5 → 3"), "{body}");
    server.take_requests();
}

#[test]
fn github_sha_names_the_merge_commit_when_the_checkout_is_the_pr_head() {
    let Some(fx) = Fixture::new("version: 1\n") else {
        return;
    };
    let head = fx.commit("clusters/staging/app.yaml", &config_map("app", "warn"));
    // What would merge differs from the head: the merge commit (as GitHub's test merge of a
    // moved base could) holds a violation the head alone does not.
    fx.repo.git(&["checkout", "-q", "--detach", "main"]);
    fx.repo
        .git(&["merge", "-q", "--no-ff", "--no-commit", "changes"]);
    fx.repo
        .write("clusters/staging/other.yaml", config_map("other", "trace"));
    let merge = fx.repo.commit_all("merge");
    fx.repo.git(&["checkout", "-q", "--detach", &head]);
    let server = stand_in(&fx, &head);
    let payload = fx.payload("pull_request/opened.payload.json", &head);
    let head_only = run(&fx, &server, "pull_request", &payload, &[]);
    assert_eq!(head_only.code, 0, "{}", head_only.stderr);
    let merged = run_with(
        fx.repo.path(),
        &server,
        "pull_request",
        &payload,
        &[],
        &[("GITHUB_SHA", merge.as_str())],
    );
    assert_eq!(merged.code, 1, "{}", merged.stderr);
    assert!(
        comment_body(&server).contains("trace logging is not allowed"),
        "{}",
        comment_body(&server)
    );
    assert_eq!(check_body(&server)["head_sha"], head.as_str());
    server.take_requests();
}
