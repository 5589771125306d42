//! Approval evidence at push time: commits SSH-signed (`gpg.format=ssh`) by approvers whose keys
//! are in the trusted base's allowed_signers file. Real `ssh-keygen` keys, real `git push`.

mod common;
mod hook_support;

use common::git::TestRepo;
use hook_support::{Keys, Pushed, Server, push, ssh_keygen_available};

const CONFIG: &str = "version: 1
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

/// A server whose base lists dev (the author), bob, carol and dave as signers (eve has a key but
/// is not listed), and a work repository with one unapproved change to prod, signed by dev.
fn setup(keys: &Keys) -> (Server, TestRepo) {
    let server = Server::new();
    let work = TestRepo::new();
    work.write(".stategate.yaml", CONFIG);
    work.write(
        ".stategate/allowed_signers",
        keys.allowed_signers(&["dev", "bob", "carol", "dave"]),
    );
    work.write("clusters/prod/app.yaml", APP);
    work.write("clusters/dev/app.yaml", APP);
    work.commit_all("seed");
    assert!(push(&work, &server.url(), &["main"], &[]).ok);
    server.install_hook(&[]);
    work.write("clusters/prod/app.yaml", APP.replace('2', "3"));
    // Signed, so its author is proven: an unsigned change leaves no approver independent.
    keys.commit_signed(&work, "dev", "scale prod");
    (server, work)
}

fn push_main(server: &Server, work: &TestRepo) -> Pushed {
    push(work, &server.url(), &["main"], &[("REMOTE_USER", "dev")])
}

fn rejected_for_missing_approval(pushed: &Pushed, verified: &str) {
    assert!(!pushed.ok, "{}", pushed.stderr);
    assert!(
        pushed.says(
            "error[approval/missing]: approval rule `prod-needs-two` needs 2 signed approval(s)"
        ),
        "{}",
        pushed.stderr
    );
    assert!(
        pushed.says(&format!("verified: {verified}")),
        "{}",
        pushed.stderr
    );
    assert!(
        pushed.says("commit --allow-empty -S"),
        "the finding says how to sign: {}",
        pushed.stderr
    );
}

#[test]
fn two_listed_signers_meet_the_rule() {
    if !ssh_keygen_available() {
        return;
    }
    let keys = Keys::new(&["dev", "bob", "carol", "dave", "eve"]);
    let (server, work) = setup(&keys);
    keys.sign_approval(&work, "bob");
    keys.sign_approval(&work, "carol");
    let pushed = push_main(&server, &work);
    assert!(pushed.ok, "{}", pushed.stderr);
    assert!(pushed.says("push accepted"), "{}", pushed.stderr);
}

#[test]
fn one_signature_is_not_enough() {
    if !ssh_keygen_available() {
        return;
    }
    let keys = Keys::new(&["dev", "bob", "carol", "dave", "eve"]);
    let (server, work) = setup(&keys);
    keys.sign_approval(&work, "bob");
    // The same approver twice is still one approver.
    keys.sign_approval(&work, "bob");
    rejected_for_missing_approval(&push_main(&server, &work), "bob");
}

#[test]
fn a_key_not_in_allowed_signers_does_not_count() {
    if !ssh_keygen_available() {
        return;
    }
    let keys = Keys::new(&["dev", "bob", "carol", "dave", "eve"]);
    let (server, work) = setup(&keys);
    keys.sign_approval(&work, "bob");
    keys.sign_approval(&work, "eve");
    rejected_for_missing_approval(&push_main(&server, &work), "bob");
}

#[test]
fn unsigned_approved_by_trailers_are_not_evidence() {
    if !ssh_keygen_available() {
        return;
    }
    let keys = Keys::new(&["dev", "bob", "carol", "dave", "eve"]);
    let (server, work) = setup(&keys);
    work.git(&[
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        "Approve\n\nApproved-by: bob\nApproved-by: carol",
    ]);
    rejected_for_missing_approval(&push_main(&server, &work), "none");
}

#[test]
fn approvals_signed_before_a_later_change_do_not_cover_it() {
    if !ssh_keygen_available() {
        return;
    }
    let keys = Keys::new(&["dev", "bob", "carol", "dave", "eve"]);
    let (server, work) = setup(&keys);
    keys.sign_approval(&work, "bob");
    keys.sign_approval(&work, "carol");
    work.write("clusters/prod/app.yaml", APP.replace('2', "30"));
    work.commit_all("sneak in more replicas");
    rejected_for_missing_approval(&push_main(&server, &work), "none");
}

#[test]
fn changes_outside_the_rule_paths_need_no_approval() {
    if !ssh_keygen_available() {
        return;
    }
    let keys = Keys::new(&["dev", "bob", "carol", "dave"]);
    let (server, work) = setup(&keys);
    work.git(&["reset", "-q", "--hard", "HEAD~1"]);
    work.write("clusters/dev/app.yaml", APP.replace('2', "5"));
    work.commit_all("scale dev");
    let pushed = push_main(&server, &work);
    assert!(pushed.ok, "{}", pushed.stderr);
}
