//! Ways around the pre-receive hook (issue 8: push coverage, approvals bound to the change, rules
//! that guard themselves, an unauditable bypass), each tried as an attacker would: real `git push`
//! to a real bare repository with stategate installed by `stategate hook install`.

mod common;
mod hook_support;

use std::path::Path;
use std::process::Command;

use common::git::TestRepo;
use hook_support::{Keys, Pushed, Server, push, run_git, ssh_keygen_available};

const CONFIG: &str = "version: 1
protect:
  refs: [\"refs/heads/main\"]
  bypass_users: [\"oncall\"]
";

const GOOD: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  level: info
";

/// `replicas` must be an integer: a schema error.
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

/// A document policy: no `trace` logging.
const NO_TRACE: &str = "package main
import rego.v1

deny contains msg if {
  input.kind == \"ConfigMap\"
  input.data.level == \"trace\"
  msg := \"trace logging is not allowed\"
}
";

/// A server seeded (before the hook exists) with `config`, one good manifest and the policy.
fn seeded(config: &str, hook_args: &[&str]) -> (Server, TestRepo) {
    let server = Server::new();
    let work = TestRepo::new();
    work.write(".stategate.yaml", config);
    work.write("apps/settings.yaml", GOOD);
    work.write("policies/main.rego", NO_TRACE);
    work.commit_all("seed");
    let seed = push(&work, &server.url(), &["main"], &[]);
    assert!(seed.ok, "seed push: {}", seed.stderr);
    server.install_hook(hook_args);
    (server, work)
}

fn assert_rejected(pushed: &Pushed, what: &[&str]) {
    assert!(!pushed.ok, "push should be rejected:\n{}", pushed.stderr);
    assert!(pushed.says("stategate: push rejected"), "{}", pushed.stderr);
    for text in what {
        assert!(pushed.says(text), "missing `{text}` in:\n{}", pushed.stderr);
    }
}

fn ls_remote(server: &Server) -> String {
    run_git(&server.git_dir(), &["for-each-ref", "--format=%(refname)"])
}

// ---- 1. Push coverage -------------------------------------------------------------------------

#[test]
fn a_ref_outside_heads_and_tags_is_judged() {
    let (server, work) = seeded(CONFIG, &[]);
    work.branch("evil");
    work.write("apps/web.yaml", BAD_DEPLOYMENT);
    work.commit_all("add web");
    let pushed = push(&work, &server.url(), &["evil:refs/x/evil"], &[]);
    assert_rejected(&pushed, &["refs/x/evil: apps/web.yaml:6", "schema/type"]);
    assert!(!ls_remote(&server).contains("refs/x/evil"));
}

#[test]
fn refs_outside_hook_refs_are_refused_not_waved_through() {
    let config = format!("{CONFIG}hook:\n  refs: [\"refs/heads/**\", \"refs/tags/**\"]\n");
    let (server, work) = seeded(&config, &[]);
    work.write("apps/settings.yaml", GOOD.replace("info", "debug"));
    work.commit_all("a clean change");
    let pushed = push(&work, &server.url(), &["main:refs/notes/other"], &[]);
    assert_rejected(
        &pushed,
        &["refs/notes/other: error[protect/unjudged-ref]", "hook.refs"],
    );
    // The refs it names are still judged and accepted.
    assert!(push(&work, &server.url(), &["main"], &[]).ok);
}

#[test]
fn a_tag_at_a_commit_smuggled_under_another_namespace_is_judged() {
    let (server, work) = seeded(CONFIG, &[]);
    work.branch("evil");
    work.write("apps/web.yaml", BAD_DEPLOYMENT);
    work.commit_all("add web");
    // The smuggling push: today accepted with no checks; refused now, but try the tag regardless.
    let _ = push(&work, &server.url(), &["evil:refs/x/evil"], &[]);
    work.git(&["tag", "v1"]);
    let pushed = push(&work, &server.url(), &["v1"], &[]);
    assert_rejected(&pushed, &["refs/tags/v1: apps/web.yaml:6", "schema/type"]);
}

#[test]
fn only_refs_the_hook_judges_make_commits_already_judged() {
    // A ref the hook does not judge (created on the server, as a pre-install ref or a server's own
    // keep-around ref would be) holds a bad commit; a tag at it must still be judged.
    let config = format!("{CONFIG}hook:\n  refs: [\"refs/heads/**\", \"refs/tags/**\"]\n");
    let server = Server::new();
    let work = TestRepo::new();
    work.write(".stategate.yaml", &config);
    work.write("apps/settings.yaml", GOOD);
    work.commit_all("seed");
    assert!(push(&work, &server.url(), &["main"], &[]).ok);
    work.branch("evil");
    work.write("apps/web.yaml", BAD_DEPLOYMENT);
    work.commit_all("add web");
    assert!(push(&work, &server.url(), &["evil:refs/keep-around/evil"], &[]).ok);
    server.install_hook(&[]);
    work.git(&["tag", "v1"]);
    let pushed = push(&work, &server.url(), &["v1"], &[]);
    assert_rejected(&pushed, &["refs/tags/v1: apps/web.yaml:6", "schema/type"]);
}

#[test]
fn a_ref_at_a_commit_inside_an_accepted_push_is_judged() {
    let (server, work) = seeded(CONFIG, &[]);
    work.branch("feature");
    work.write("apps/web.yaml", BAD_DEPLOYMENT);
    let bad = work.commit_all("add web, broken");
    work.write("apps/web.yaml", BAD_DEPLOYMENT.replace("three", "3"));
    work.commit_all("fix web");
    // The push is judged by its end state, which is good.
    assert!(push(&work, &server.url(), &["feature"], &[]).ok);
    // A ref at the broken commit in its middle presents a state no one judged.
    let pushed = push(
        &work,
        &server.url(),
        &[&format!("{bad}:refs/heads/deploy")],
        &[],
    );
    assert_rejected(
        &pushed,
        &["refs/heads/deploy: apps/web.yaml:6", "schema/type"],
    );
    // So does rewinding the branch onto it.
    let pushed = push(
        &work,
        &server.url(),
        &[&format!("+{bad}:refs/heads/feature")],
        &[],
    );
    assert_rejected(
        &pushed,
        &["refs/heads/feature: apps/web.yaml:6", "schema/type"],
    );
}

#[test]
fn refs_to_a_tree_or_a_blob_are_refused() {
    let (server, work) = seeded(CONFIG, &[]);
    work.write("apps/web.yaml", BAD_DEPLOYMENT);
    work.add_all();
    let tree = work.git(&["write-tree"]);
    let pushed = push(
        &work,
        &server.url(),
        &[&format!("{tree}:refs/tags/a-tree")],
        &[],
    );
    assert_rejected(
        &pushed,
        &["refs/tags/a-tree: error[protect/unjudged-ref]", "tree"],
    );

    let blob = work.git(&["hash-object", "-w", "apps/web.yaml"]);
    work.git(&["tag", "-a", "a-blob", "-m", "a blob", &blob]);
    let pushed = push(&work, &server.url(), &["a-blob"], &[]);
    assert_rejected(
        &pushed,
        &["refs/tags/a-blob: error[protect/unjudged-ref]", "blob"],
    );
    assert!(!ls_remote(&server).contains("refs/tags/a-"));
}

#[test]
fn pre_receive_with_empty_stdin_is_a_rejection() {
    let (server, _work) = seeded(CONFIG, &[]);
    let out = Command::new(hook_support::stategate())
        .args(["hook", "pre-receive"])
        .env("GIT_DIR", server.git_dir())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("push rejected"), "{stderr}");
    assert!(!stderr.contains("push accepted"), "{stderr}");
}

/// A directory holding only `git`, for a PATH without `cat` and the other coreutils.
fn path_with_only_git() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let git = String::from_utf8(
        Command::new("sh")
            .args(["-c", "command -v git"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    std::os::unix::fs::symlink(git.trim(), dir.path().join("git")).unwrap();
    dir
}

#[test]
fn the_installed_hook_passes_stdin_to_stategate_without_a_shell_tool() {
    let (server, work) = seeded(CONFIG, &[]);
    work.write("apps/web.yaml", BAD_DEPLOYMENT);
    work.commit_all("add web");
    let bin = path_with_only_git();
    let path = bin.path().display().to_string();
    let pushed = push(&work, &server.url(), &["main"], &[("PATH", &path)]);
    assert_rejected(
        &pushed,
        &["refs/heads/main: apps/web.yaml:6", "schema/type"],
    );
}

#[test]
fn a_chained_hook_still_sees_the_push_without_cat() {
    let server = Server::new();
    let hooks = server.git_dir().join("hooks");
    // The old hook records its stdin with a shell builtin only.
    std::fs::write(
        hooks.join("pre-receive"),
        "#!/bin/sh\nwhile read -r line; do printf '%s\\n' \"$line\" >> \"$GIT_DIR/seen\"; done\n",
    )
    .unwrap();
    std::fs::set_permissions(
        hooks.join("pre-receive"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    server.install_hook(&[]);
    let work = TestRepo::new();
    work.write("apps/settings.yaml", GOOD);
    let head = work.commit_all("first");
    let bin = path_with_only_git();
    let path = bin.path().display().to_string();
    let pushed = push(&work, &server.url(), &["main"], &[("PATH", &path)]);
    assert!(pushed.ok, "{}", pushed.stderr);
    let seen = std::fs::read_to_string(server.git_dir().join("seen")).unwrap();
    assert!(seen.contains(&format!("{head} refs/heads/main")), "{seen}");
}

/// `git init --bare -b master`, and the team pushes `main`: HEAD names a branch that never exists.
fn server_with_unborn_head(install_args: &[&str]) -> (tempfile::TempDir, TestRepo, String) {
    let root = tempfile::tempdir().unwrap();
    run_git(
        root.path(),
        &["init", "-q", "--bare", "-b", "master", "repo.git"],
    );
    let git_dir = root.path().join("repo.git");
    let url = format!("file://{}", git_dir.display());
    let work = TestRepo::new();
    work.write(".stategate.yaml", CONFIG);
    work.write("apps/settings.yaml", GOOD);
    work.write("policies/main.rego", NO_TRACE);
    work.commit_all("seed");
    assert!(push(&work, &url, &["main"], &[]).ok);
    install(&git_dir, install_args);
    (root, work, url)
}

fn install(git_dir: &Path, args: &[&str]) {
    let out = Command::new(hook_support::stategate())
        .args(["hook", "install", "--repo"])
        .arg(git_dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_new_ref_is_not_judged_by_no_rules_when_head_names_no_branch() {
    let (_root, work, url) = server_with_unborn_head(&[]);
    work.branch("feature");
    work.write("apps/settings.yaml", GOOD.replace("info", "trace"));
    work.commit_all("trace everything");
    let pushed = push(&work, &url, &["feature"], &[]);
    assert_rejected(&pushed, &["refs/heads/master", "--default-branch"]);
}

#[test]
fn the_installed_default_branch_supplies_the_rules_for_new_refs() {
    let (_root, work, url) = server_with_unborn_head(&["--default-branch", "main"]);
    work.branch("feature");
    work.write("apps/settings.yaml", GOOD.replace("info", "trace"));
    work.commit_all("trace everything");
    let pushed = push(&work, &url, &["feature"], &[]);
    assert_rejected(&pushed, &["policy/deny", "trace logging is not allowed"]);
    work.write("apps/settings.yaml", GOOD.replace("info", "debug"));
    work.commit_all("debug instead");
    let pushed = push(&work, &url, &["feature"], &[]);
    assert!(pushed.ok, "{}", pushed.stderr);
}

// ---- 2. Approvals bound to the change ---------------------------------------------------------

const APPROVAL_CONFIG: &str = "version: 1
protect:
  refs: [\"refs/heads/main\"]
approvals:
  - name: prod-needs-two
    paths: [\"clusters/prod/**\"]
    required: 2
    from: [\"bob\", \"carol\", \"dave\"]
    allowed_signers: .stategate/allowed_signers
";

const APP: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: app
data:
  replicas: \"2\"
";

/// A server whose allowed_signers lists dev (a developer), bob, carol and dave (approvers).
fn approval_server(keys: &Keys) -> (Server, TestRepo) {
    let server = Server::new();
    let work = TestRepo::new();
    work.write(".stategate.yaml", APPROVAL_CONFIG);
    work.write(
        ".stategate/allowed_signers",
        keys.allowed_signers(&["dev", "bob", "carol", "dave"]),
    );
    work.write("clusters/prod/app.yaml", APP);
    work.commit_all("seed");
    assert!(push(&work, &server.url(), &["main"], &[]).ok);
    server.install_hook(&[]);
    (server, work)
}

fn push_as(server: &Server, work: &TestRepo, who: &str) -> Pushed {
    push(work, &server.url(), &["main"], &[("REMOTE_USER", who)])
}

fn missing_approval(pushed: &Pushed, verified: &str) {
    assert_rejected(
        pushed,
        &[
            "error[approval/missing]: approval rule `prod-needs-two`",
            &format!("verified: {verified}"),
        ],
    );
}

#[test]
fn approvals_merged_in_with_s_ours_do_not_count() {
    if !ssh_keygen_available() {
        return;
    }
    let keys = Keys::new(&["dev", "bob", "carol", "dave"]);
    let (server, work) = approval_server(&keys);
    // Approvals made on some other branch, for some other state.
    work.branch("elsewhere");
    keys.sign_approval(&work, "bob");
    keys.sign_approval(&work, "carol");
    work.checkout("main");
    work.write("clusters/prod/app.yaml", APP.replace('2', "0"));
    keys.commit_signed(&work, "dev", "scale prod to zero");
    work.git(&[
        "merge",
        "-q",
        "-s",
        "ours",
        "-m",
        "bring approvals",
        "elsewhere",
    ]);
    missing_approval(&push_as(&server, &work, "dev"), "none");
}

#[test]
fn a_change_signed_by_an_approver_under_another_author_name_is_theirs() {
    if !ssh_keygen_available() {
        return;
    }
    let keys = Keys::new(&["dev", "bob", "carol", "dave"]);
    let (server, work) = approval_server(&keys);
    work.write("clusters/prod/app.yaml", APP.replace('2', "0"));
    // bob writes the change but types someone else into the free-text author field.
    work.add_all();
    work.git(&[
        "-c",
        "gpg.format=ssh",
        "-c",
        &format!("user.signingkey={}", keys.private("bob").display()),
        "commit",
        "-q",
        "-S",
        "--author",
        "Dev <dev@example.com>",
        "-m",
        "scale prod to zero",
    ]);
    keys.sign_approval(&work, "bob");
    keys.sign_approval(&work, "carol");
    missing_approval(&push_as(&server, &work, "dev"), "carol");
}

#[test]
fn an_unsigned_change_leaves_no_approver_independent() {
    if !ssh_keygen_available() {
        return;
    }
    let keys = Keys::new(&["dev", "bob", "carol", "dave"]);
    let (server, work) = approval_server(&keys);
    work.write("clusters/prod/app.yaml", APP.replace('2', "0"));
    work.commit_all("scale prod to zero (unsigned: anyone could have written it)");
    keys.sign_approval(&work, "bob");
    keys.sign_approval(&work, "carol");
    let pushed = push_as(&server, &work, "dev");
    missing_approval(&pushed, "none");
    assert!(pushed.says("unsigned"), "{}", pushed.stderr);
}

#[test]
fn the_pusher_is_not_an_independent_approver() {
    if !ssh_keygen_available() {
        return;
    }
    let keys = Keys::new(&["dev", "bob", "carol", "dave"]);
    let (server, work) = approval_server(&keys);
    work.write("clusters/prod/app.yaml", APP.replace('2', "0"));
    keys.commit_signed(&work, "dev", "scale prod to zero");
    keys.sign_approval(&work, "bob");
    keys.sign_approval(&work, "carol");
    missing_approval(&push_as(&server, &work, "bob"), "carol");
    // Pushed by its author, the same change with the same approvals passes.
    let pushed = push_as(&server, &work, "dev");
    assert!(pushed.ok, "{}", pushed.stderr);
}

// ---- 5c. Changes to the gate's own rules ------------------------------------------------------

#[test]
fn removing_the_rules_then_pushing_a_violation_is_refused_without_admins() {
    let (server, work) = seeded(CONFIG, &[]);
    // Push 1: delete the config and every policy.
    work.git(&["rm", "-q", "-r", ".stategate.yaml", "policies"]);
    work.commit("remove the rules");
    let pushed = push(&work, &server.url(), &["main"], &[]);
    assert_rejected(&pushed, &["protect/trust-paths", "protect.admins"]);
    // Push 2: the violation the removed rules forbade.
    work.write("apps/settings.yaml", GOOD.replace("info", "trace"));
    work.commit_all("trace everything");
    let pushed = push(&work, &server.url(), &["main"], &[]);
    assert!(!pushed.ok, "{}", pushed.stderr);
    assert!(
        pushed.says("trace logging is not allowed"),
        "{}",
        pushed.stderr
    );
}

#[test]
fn emptying_the_config_is_refused_without_admins() {
    let (server, work) = seeded(CONFIG, &[]);
    work.write(".stategate.yaml", "");
    work.commit_all("empty the config");
    let pushed = push(&work, &server.url(), &["main"], &[]);
    assert_rejected(&pushed, &["protect/trust-paths", "protect.admins"]);
}

#[test]
fn pointing_policies_paths_away_from_every_policy_is_refused_without_admins() {
    let (server, work) = seeded(CONFIG, &[]);
    work.write(
        ".stategate.yaml",
        format!("{CONFIG}policies:\n  paths: [\"nowhere/\"]\n"),
    );
    work.commit_all("policies live elsewhere now");
    let pushed = push(&work, &server.url(), &["main"], &[]);
    assert_rejected(&pushed, &["protect/trust-paths", "every policy"]);
}

const ADMIN_CONFIG: &str = "version: 1
protect:
  refs: [\"refs/heads/main\"]
  admins:
    from: [\"alice\"]
    allowed_signers: .stategate/allowed_signers
";

#[test]
fn a_change_to_the_rules_needs_a_signed_approval_from_an_admin() {
    if !ssh_keygen_available() {
        return;
    }
    let keys = Keys::new(&["dev", "alice", "bob"]);
    let server = Server::new();
    let work = TestRepo::new();
    work.write(".stategate.yaml", ADMIN_CONFIG);
    work.write(
        ".stategate/allowed_signers",
        keys.allowed_signers(&["dev", "alice", "bob"]),
    );
    work.write("apps/settings.yaml", GOOD);
    work.write("policies/main.rego", NO_TRACE);
    work.commit_all("seed");
    assert!(push(&work, &server.url(), &["main"], &[]).ok);
    server.install_hook(&[]);

    work.git(&["rm", "-q", "-r", "policies"]);
    keys.commit_signed(&work, "dev", "drop the policies");
    keys.sign_approval(&work, "bob");
    let pushed = push(&work, &server.url(), &["main"], &[("REMOTE_USER", "dev")]);
    assert_rejected(
        &pushed,
        &["protect/trust-paths", "policies/main.rego", "alice"],
    );

    keys.sign_approval(&work, "alice");
    let pushed = push(&work, &server.url(), &["main"], &[("REMOTE_USER", "dev")]);
    assert!(pushed.ok, "{}", pushed.stderr);
}

// ---- 8b. An unauditable bypass ----------------------------------------------------------------

#[test]
fn a_bypass_that_cannot_be_audited_never_says_push_accepted() {
    let (server, work) = seeded(CONFIG, &["--audit-log", "/nonexistent/dir/audit.log"]);
    work.write("apps/web.yaml", BAD_DEPLOYMENT);
    work.commit_all("hotfix");
    let pushed = push(
        &work,
        &server.url(),
        &["-o", "stategate.bypass=prod is down", "main"],
        &[("REMOTE_USER", "oncall")],
    );
    assert_rejected(&pushed, &["cannot write the audit log"]);
    assert!(!pushed.says("push accepted"), "{}", pushed.stderr);
}
