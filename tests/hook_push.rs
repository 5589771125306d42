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
    assert!(installed.contains("receive.advertisePushOptions"), "{installed}");
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
    std::fs::write(&old_hook, "#!/bin/sh\ncat > \"$GIT_DIR/seen-by-old-hook\"\n").unwrap();
    std::fs::set_permissions(&old_hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    server.install_hook(&[]);
    // Installing again keeps chaining the same old hook, not stategate's own script.
    server.install_hook(&[]);
    assert!(std::fs::read_to_string(hooks.join("pre-receive.local")).unwrap().contains("seen-by-old-hook"));
    let script = std::fs::read_to_string(hooks.join("pre-receive")).unwrap();
    assert!(script.contains(&hook_support::stategate().display().to_string()), "{script}");
    assert_eq!(run_git(&server.git_dir(), &["config", "receive.advertisePushOptions"]), "true");

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
    assert!(pushed.says("stategate: push accepted (1 ref(s) checked)"), "{}", pushed.stderr);
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
    work.commit_all("add web");
    let pushed = push(&work, &server.url(), &["main"], &[]);
    assert_rejected(&pushed, &["refs/heads/main: apps/web.yaml:6", "error[schema/type]"]);
    assert!(pushed.says("push again"), "{}", pushed.stderr);
    assert_eq!(server.rev("main"), before, "the ref must not move");
    assert_eq!(server.audit_lines().last().unwrap()["decision"], "rejected");
}
