//! `stategate hook pre-receive` installed into a real bare repository with
//! `stategate hook install --repo`, exercised by real `git push` over file:// and git daemon.

mod common;
mod hook_support;

use common::git::TestRepo;
use hook_support::{Pushed, Server, push, run_git};

const CONFIG: &str = "version: 1
protect:
  refs: [\"refs/heads/main\"]
  bypass_users: [\"oncall\"]
";

const GOOD: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: apps
data:
  level: info
";

/// `replicas` must be an integer.
const BAD_DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: three
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: nginx:1.27
";

const SECRET: &str = "apiVersion: v1
kind: Secret
metadata:
  name: token
stringData:
  token: hunter2
";

/// A change policy: no plain Secrets in the repository.
const NO_SECRETS: &str = "package stategate.change
import rego.v1

deny contains msg if {
  some f in input.files
  some doc in f.after
  doc.kind == \"Secret\"
  msg := sprintf(\"%s adds a plain Secret: use a SealedSecret\", [f.path])
}
";

/// A server seeded (before the hook exists) with config, one good manifest and the change policy,
/// and a clone-like work repository that pushes to it.
fn setup_with(config: &str, hook_args: &[&str]) -> (Server, TestRepo) {
    let server = Server::new();
    let work = TestRepo::new();
    work.write(".stategate.yaml", config);
    work.write("apps/settings.yaml", GOOD);
    work.write("policies/change.rego", NO_SECRETS);
    work.commit_all("seed");
    let seeded = push(&work, &server.url(), &["main"], &[]);
    assert!(seeded.ok, "seed push: {}", seeded.stderr);
    let installed = server.install_hook(hook_args);
    assert!(
        installed.contains("receive.advertisePushOptions"),
        "{installed}"
    );
    (server, work)
}

fn setup() -> (Server, TestRepo) {
    setup_with(CONFIG, &[])
}

fn assert_rejected(pushed: &Pushed, what: &[&str]) {
    assert!(!pushed.ok, "push should be rejected: {}", pushed.stderr);
    assert!(pushed.says("stategate: push rejected"), "{}", pushed.stderr);
    for text in what {
        assert!(pushed.says(text), "missing `{text}` in:\n{}", pushed.stderr);
    }
}

#[test]
fn install_sets_push_options_and_chains_an_existing_hook() {
    let server = Server::new();
    let hooks = server.git_dir().join("hooks");
    let old_hook = hooks.join("pre-receive");
    std::fs::write(
        &old_hook,
        "#!/bin/sh\ncat > \"$GIT_DIR/seen-by-old-hook\"\n",
    )
    .unwrap();
    std::fs::set_permissions(
        &old_hook,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    server.install_hook(&[]);
    // Installing again keeps chaining the same old hook, not stategate's own script.
    server.install_hook(&[]);
    assert!(
        std::fs::read_to_string(hooks.join("pre-receive.local"))
            .unwrap()
            .contains("seen-by-old-hook")
    );
    let script = std::fs::read_to_string(hooks.join("pre-receive")).unwrap();
    assert!(
        script.contains(&hook_support::stategate().display().to_string()),
        "{script}"
    );
    assert_eq!(
        run_git(
            &server.git_dir(),
            &["config", "receive.advertisePushOptions"]
        ),
        "true"
    );

    let work = TestRepo::new();
    work.write("apps/settings.yaml", GOOD);
    let head = work.commit_all("first");
    let pushed = push(&work, &server.url(), &["main"], &[]);
    assert!(pushed.ok, "{}", pushed.stderr);
    assert!(pushed.says("stategate: push accepted"), "{}", pushed.stderr);
    let seen = std::fs::read_to_string(server.git_dir().join("seen-by-old-hook")).unwrap();
    assert!(seen.contains(&format!("{head} refs/heads/main")), "{seen}");
}

#[test]
fn a_clean_push_is_accepted_and_audited() {
    let (server, work) = setup();
    work.write("apps/settings.yaml", GOOD.replace("info", "debug"));
    let head = work.commit_all("more logs");
    let pushed = push(&work, &server.url(), &["main"], &[("REMOTE_USER", "dev")]);
    assert!(pushed.ok, "{}", pushed.stderr);
    assert!(
        pushed.says("stategate: push accepted (1 ref(s) checked)"),
        "{}",
        pushed.stderr
    );
    assert_eq!(server.rev("main"), head);
    let audit = server.audit_lines();
    let last = audit.last().expect("an audit record");
    assert_eq!(last["ref"], "refs/heads/main");
    assert_eq!(last["new"], head.as_str());
    assert_eq!(last["decision"], "accepted");
    assert_eq!(last["actor"], "dev");
}

#[test]
fn a_schema_breaking_push_is_rejected_with_located_remote_lines() {
    let (server, work) = setup();
    let before = server.rev("main");
    work.write("apps/web.yaml", BAD_DEPLOYMENT);
    let head = work.commit_all("add web");
    let pushed = push(&work, &server.url(), &["main"], &[]);
    assert_rejected(
        &pushed,
        &["refs/heads/main: apps/web.yaml:6", "error[schema/type]"],
    );
    assert!(pushed.says("push again"), "{}", pushed.stderr);
    // The footer's command has the push's real ids, ready to paste.
    let local = format!(
        "stategate check --base {} --head {}",
        &before[..12],
        &head[..12]
    );
    assert!(
        pushed.says(&local),
        "missing `{local}` in:\n{}",
        pushed.stderr
    );
    assert_eq!(server.rev("main"), before, "the ref must not move");
    assert_eq!(server.audit_lines().last().unwrap()["decision"], "rejected");
}

#[test]
fn a_change_policy_breaking_push_is_rejected() {
    let (server, work) = setup();
    work.write("apps/token.yaml", SECRET);
    work.commit_all("add token");
    let pushed = push(&work, &server.url(), &["main"], &[]);
    assert_rejected(
        &pushed,
        &[
            "refs/heads/main: policies/change.rego",
            "error[policy/deny]",
            "apps/token.yaml adds a plain Secret",
        ],
    );
}

#[test]
fn a_document_policy_breaking_push_is_rejected() {
    let (server, work) = setup();
    work.write(
        "policies/main.rego",
        "package main\nimport rego.v1\n\ndeny contains msg if {\n  input.kind == \"ConfigMap\"\n  input.data.level == \"trace\"\n  msg := \"trace logging is not allowed\"\n}\n",
    );
    work.commit_all("policy");
    assert!(push(&work, &server.url(), &["main"], &[]).ok);
    work.write("apps/settings.yaml", GOOD.replace("info", "trace"));
    work.commit_all("trace");
    let pushed = push(&work, &server.url(), &["main"], &[]);
    assert_rejected(
        &pushed,
        &[
            "apps/settings.yaml",
            "policy/deny",
            "trace logging is not allowed",
        ],
    );
}

#[test]
fn a_namespace_set_by_a_deployer_the_hook_has_scanned_before_still_judges_the_files_it_deploys() {
    let (server, work) = setup();
    // Nothing may be deployed into `locked`, and Flux deploys `apps/locked` there.
    work.write(
        "policies/main.rego",
        "package main\nimport rego.v1\n\ndeny contains msg if {\n  input.metadata.namespace == \"locked\"\n  msg := \"nothing goes into the locked namespace\"\n}\n",
    );
    work.write(
        "clusters/prod/apps.yaml",
        "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: locked\n  namespace: flux-system\nspec:\n  interval: 10m\n  path: ./apps/locked\n  prune: true\n  targetNamespace: locked\n  sourceRef: {kind: GitRepository, name: flux-system}\n",
    );
    work.commit_all("deployer");
    let first = push(&work, &server.url(), &["main"], &[]);
    assert!(first.ok, "{}", first.stderr);
    // A push beside it: the hook scans the deployer as part of the tree, and keeps what it
    // learnt of each manifest it scanned.
    work.write("apps/other.yaml", GOOD.replace("settings", "other"));
    work.commit_all("other");
    let second = push(&work, &server.url(), &["main"], &[]);
    assert!(second.ok, "{}", second.stderr);
    let facts = server.git_dir().join("stategate/render-cache/scan-facts");
    assert!(facts.is_file(), "no {}", facts.display());
    // A file without a namespace of its own, under the deployer's path: in `locked`.
    work.write(
        "apps/locked/settings.yaml",
        GOOD.replace("  namespace: apps\n", ""),
    );
    work.commit_all("into locked");
    let pushed = push(&work, &server.url(), &["main"], &[]);
    assert_rejected(
        &pushed,
        &[
            "apps/locked/settings.yaml",
            "nothing goes into the locked namespace",
        ],
    );
}

#[test]
fn a_force_push_to_main_is_rejected() {
    let (server, work) = setup();
    let before = server.rev("main");
    work.write("apps/settings.yaml", GOOD.replace("info", "warn"));
    work.git(&["commit", "-q", "--amend", "-a", "-m", "rewritten seed"]);
    let pushed = push(&work, &server.url(), &["--force", "main"], &[]);
    assert_rejected(
        &pushed,
        &[
            "refs/heads/main: error[protect/force-push]",
            "rewrites its history",
        ],
    );
    assert_eq!(server.rev("main"), before);
}

#[test]
fn deleting_main_is_rejected() {
    let (server, work) = setup();
    let pushed = push(&work, &server.url(), &[":main"], &[]);
    assert_rejected(&pushed, &["refs/heads/main: error[protect/deletion]"]);
    assert_eq!(server.audit_lines().last().unwrap()["action"], "delete");
}

#[test]
fn a_new_branch_with_a_bad_file_is_rejected_and_a_good_one_accepted() {
    let (server, work) = setup();
    work.git(&["checkout", "-q", "-b", "feature"]);
    work.write("apps/web.yaml", BAD_DEPLOYMENT);
    work.commit_all("add web");
    let pushed = push(&work, &server.url(), &["feature"], &[]);
    assert_rejected(
        &pushed,
        &["refs/heads/feature: apps/web.yaml:6", "schema/type"],
    );

    work.write("apps/web.yaml", BAD_DEPLOYMENT.replace("three", "3"));
    work.commit_all("fix web");
    let pushed = push(&work, &server.url(), &["feature"], &[]);
    assert!(pushed.ok, "{}", pushed.stderr);
    // A second branch at an already-judged commit brings nothing new.
    let pushed = push(&work, &server.url(), &["feature:refs/heads/copy"], &[]);
    assert!(pushed.ok, "{}", pushed.stderr);
}

#[test]
fn a_push_of_several_refs_with_one_bad_ref_is_rejected_whole() {
    let (server, work) = setup();
    let main_before = server.rev("main");
    work.write("apps/settings.yaml", GOOD.replace("info", "debug"));
    work.commit_all("good change");
    work.git(&["checkout", "-q", "-b", "feature"]);
    work.write("apps/web.yaml", BAD_DEPLOYMENT);
    work.commit_all("bad change");
    let pushed = push(&work, &server.url(), &["--atomic", "main", "feature"], &[]);
    assert_rejected(
        &pushed,
        &[
            "refs/heads/feature: apps/web.yaml:6",
            "refs/heads/feature breaks the rules",
        ],
    );
    assert_eq!(server.rev("main"), main_before, "no ref of the push lands");
    let audit = server.audit_lines();
    let decisions: Vec<(&str, &str)> = audit
        .iter()
        .rev()
        .take(2)
        .map(|r| (r["ref"].as_str().unwrap(), r["decision"].as_str().unwrap()))
        .collect();
    assert_eq!(
        decisions,
        [
            ("refs/heads/feature", "rejected"),
            ("refs/heads/main", "accepted")
        ]
    );
}

#[test]
fn a_push_that_loosens_the_policy_it_breaks_is_judged_by_the_old_policy() {
    let (server, work) = setup();
    work.write("policies/change.rego", "package stategate.change\nimport rego.v1\n\ndeny contains msg if {\n  false\n  msg := \"never\"\n}\n");
    work.write(".stategate.yaml", "version: 1\nprotect:\n  refs: []\n");
    work.write("apps/token.yaml", SECRET);
    work.commit_all("allow secrets and add one");
    let pushed = push(&work, &server.url(), &["main"], &[]);
    assert_rejected(
        &pushed,
        &["error[policy/deny]", "apps/token.yaml adds a plain Secret"],
    );
}

#[test]
fn a_bypass_by_a_listed_user_is_accepted_and_audited() {
    let (server, work) = setup();
    work.write("apps/web.yaml", BAD_DEPLOYMENT);
    let head = work.commit_all("hotfix");
    let pushed = push(
        &work,
        &server.url(),
        &["-o", "stategate.bypass=prod is down", "main"],
        &[("GL_USERNAME", "oncall")],
    );
    assert!(pushed.ok, "{}", pushed.stderr);
    assert!(
        pushed.says("warning[protect/bypass]: emergency bypass by oncall: prod is down"),
        "{}",
        pushed.stderr
    );
    assert!(pushed.says("bypassed: "), "{}", pushed.stderr);
    assert_eq!(server.rev("main"), head);
    let last = server.audit_lines().pop().unwrap();
    assert_eq!(last["decision"], "accepted");
    assert_eq!(last["actor"], "oncall");
    assert_eq!(last["bypass"], "prod is down");
    assert_eq!(last["bypass_granted"], true);
    assert!(
        last["rules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "schema/type"),
        "{last}"
    );
}

#[test]
fn a_bypass_by_an_unlisted_user_is_refused() {
    let (server, work) = setup();
    work.write("apps/web.yaml", BAD_DEPLOYMENT);
    work.commit_all("hotfix");
    let pushed = push(
        &work,
        &server.url(),
        &["-o", "stategate.bypass=prod is down", "main"],
        &[("GITEA_PUSHER_NAME", "mallory")],
    );
    assert_rejected(
        &pushed,
        &[
            "bypass refused: mallory is not in protect.bypass_users",
            "schema/type",
        ],
    );
    let last = server.audit_lines().pop().unwrap();
    assert_eq!(last["bypass_granted"], false);
    assert_eq!(last["actor"], "mallory");
}

#[test]
fn gitlab_gets_prefixed_lines_without_control_characters() {
    let (server, work) = setup();
    work.write("apps/web.yaml", BAD_DEPLOYMENT);
    work.commit_all("add web");
    let pushed = push(&work, &server.url(), &["main"], &[("GL_ID", "user-1")]);
    assert!(!pushed.ok);
    let lines = pushed.remote_lines();
    assert!(!lines.is_empty());
    for line in lines.iter().filter(|l| !l.trim().is_empty()) {
        assert!(line.starts_with("GL-HOOK-ERR: "), "{line}");
        assert!(!line.chars().any(char::is_control), "{line:?}");
    }
}

#[test]
fn an_exceeded_time_budget_fails_closed() {
    let (server, work) = setup_with(CONFIG, &["--timeout", "0.000000001"]);
    work.write("apps/settings.yaml", GOOD.replace("info", "debug"));
    work.commit_all("change");
    let pushed = push(&work, &server.url(), &["main"], &[]);
    assert_rejected(&pushed, &["gate/timeout", "could not be judged"]);
    assert_eq!(
        server.audit_lines().last().unwrap()["decision"],
        "undecided"
    );
}

#[test]
fn a_fixed_config_dir_replaces_the_rules_of_the_branch() {
    let rules = tempfile::tempdir().unwrap();
    std::fs::write(
        rules.path().join(".stategate.yaml"),
        "version: 1\nprotect:\n  refs: [\"refs/heads/**\"]\n",
    )
    .unwrap();
    let dir = rules.path().display().to_string();
    let (server, work) = setup_with(CONFIG, &["--config-dir", &dir]);
    work.git(&["checkout", "-q", "-b", "feature"]);
    work.write("apps/settings.yaml", GOOD.replace("info", "debug"));
    work.commit_all("change");
    assert!(push(&work, &server.url(), &["feature"], &[]).ok);
    // Only the server-side config protects feature branches.
    let pushed = push(&work, &server.url(), &[":feature"], &[]);
    assert_rejected(&pushed, &["refs/heads/feature: error[protect/deletion]"]);
}

#[test]
fn a_sha256_repository_fails_closed_with_a_clear_message() {
    let server = tempfile::tempdir().unwrap();
    let bare = server.path().join("repo.git");
    run_git(
        server.path(),
        &[
            "init",
            "-q",
            "--bare",
            "--object-format=sha256",
            "-b",
            "main",
            "repo.git",
        ],
    );
    let out = std::process::Command::new(hook_support::stategate())
        .args(["hook", "install", "--repo"])
        .arg(&bare)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let work = server.path().join("work");
    run_git(
        server.path(),
        &["init", "-q", "--object-format=sha256", "-b", "main", "work"],
    );
    std::fs::write(work.join("settings.yaml"), GOOD).unwrap();
    run_git(&work, &["add", "-A"]);
    run_git(
        &work,
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.com",
            "commit",
            "-q",
            "-m",
            "first",
        ],
    );
    let out = std::process::Command::new("git")
        .current_dir(&work)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .args(["push", &format!("file://{}", bare.display()), "main"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("remote: stategate: push rejected: this is a SHA-256 repository"),
        "{stderr}"
    );
}

#[test]
fn a_tag_on_new_bad_state_is_judged_like_a_branch() {
    let (server, work) = setup();
    // A tag on an already accepted commit brings nothing new.
    work.git(&["tag", "v1"]);
    assert!(push(&work, &server.url(), &["v1"], &[]).ok);
    work.write("apps/web.yaml", BAD_DEPLOYMENT);
    work.commit_all("add web");
    work.git(&["tag", "-a", "v2", "-m", "release 2"]);
    let pushed = push(&work, &server.url(), &["v2"], &[]);
    assert_rejected(&pushed, &["refs/tags/v2: apps/web.yaml:6", "schema/type"]);
}

#[test]
fn direct_push_deny_takes_merges_only() {
    let config = format!("{CONFIG}  direct_push: deny\n");
    let (server, work) = setup_with(&config, &[]);
    work.write("apps/settings.yaml", GOOD.replace("info", "debug"));
    work.commit_all("straight onto main");
    let pushed = push(&work, &server.url(), &["main"], &[]);
    assert_rejected(&pushed, &["refs/heads/main: error[protect/direct-push]"]);

    work.git(&["reset", "-q", "--hard", "HEAD~1"]);
    work.git(&["checkout", "-q", "-b", "topic"]);
    work.write("apps/settings.yaml", GOOD.replace("info", "debug"));
    work.commit_all("on a topic branch");
    work.git(&["checkout", "-q", "main"]);
    work.git(&["merge", "-q", "--no-ff", "-m", "Merge topic", "topic"]);
    let pushed = push(&work, &server.url(), &["main"], &[]);
    assert!(pushed.ok, "{}", pushed.stderr);
}
