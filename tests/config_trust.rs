//! Rules that guard themselves: a config or policy file in the trusted base that exists but cannot
//! be read (a symlink, a directory, a submodule, invalid UTF-8) stops the gate with exit 2 and the
//! reason. It is never taken for an absent file, which would mean "defaults" or "no policy".

mod common;

use std::process::Output;

use common::git::TestRepo;
use common::run::{code, stategate};

/// A change that the base's rules refuse: a ConfigMap without the `team` label.
const UNLABELLED: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n";
const NEEDS_TEAM: &str = "package main\n\ndeny contains msg if {\n  not input.metadata.labels.team\n  msg := \"every object needs a team label\"\n}\n";

fn all_output(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Exit 2, and the output names the file and says what it is.
fn assert_refused(out: &Output, file: &str, why: &str) {
    let text = all_output(out);
    assert_eq!(code(out), 2, "{text}");
    assert!(text.contains(file), "does not name {file}: {text}");
    assert!(text.contains(why), "does not say `{why}`: {text}");
}

/// A repository whose base has a working config and the `team` policy, then `damage` applied to
/// the base itself, then an unlabelled ConfigMap as the change. Returns the repo and the base
/// commit from before the damage (for `--base` checks).
fn damaged_base(damage: impl FnOnce(&TestRepo)) -> (TestRepo, String) {
    let repo = TestRepo::new();
    repo.write(".stategate.yaml", "policies:\n  paths: [policies/]\n");
    repo.write("policies/team.rego", NEEDS_TEAM);
    repo.write(
        "apps/keep.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: keep\n  labels: {team: a}\n",
    );
    let good = repo.commit_all("rules");
    damage(&repo);
    repo.commit_all("damage the rules");
    repo.write("apps/settings.yaml", UNLABELLED);
    (repo, good)
}

fn replace_config_with(repo: &TestRepo, make: impl FnOnce(&TestRepo)) {
    repo.git(&["rm", "-q", "--cached", ".stategate.yaml"]);
    repo.remove(".stategate.yaml");
    make(repo);
}

#[test]
fn a_symlinked_config_in_the_base_is_exit_2_not_defaults() {
    let (repo, _) = damaged_base(|repo| {
        repo.write("elsewhere.yaml", "policies:\n  paths: [nothing/]\n");
        replace_config_with(repo, |repo| {
            repo.symlink("elsewhere.yaml", ".stategate.yaml")
        });
    });
    // Once the damage is the base itself: check from HEAD.
    let out = stategate(&repo, &["check"]);
    assert_refused(&out, ".stategate.yaml", "a symlink");
    // And a branch whose base is that commit.
    repo.commit_all("the change");
    let out = stategate(&repo, &["check", "--base", "HEAD~1"]);
    assert_refused(&out, ".stategate.yaml", "a symlink");
    // The working tree's own config is judged the same way under --trust head.
    let out = stategate(&repo, &["check", "--all", "--trust", "head"]);
    assert_refused(&out, ".stategate.yaml", "a symlink");
}

#[test]
fn a_config_that_is_a_directory_is_exit_2() {
    let (repo, _) = damaged_base(|repo| {
        replace_config_with(repo, |repo| {
            repo.write(".stategate.yaml/x.yaml", "version: 1\n")
        });
    });
    let out = stategate(&repo, &["check"]);
    assert_refused(&out, ".stategate.yaml", "a directory");
}

#[test]
fn a_config_that_is_a_submodule_is_exit_2() {
    let (repo, _) = damaged_base(|repo| {
        let other = TestRepo::new();
        other.write("README", "x");
        other.commit_all("other");
        replace_config_with(repo, |repo| repo.add_submodule(&other, ".stategate.yaml"));
    });
    let out = stategate(&repo, &["check"]);
    assert_refused(&out, ".stategate.yaml", "a submodule");
}

#[test]
fn a_config_that_is_not_utf8_is_exit_2() {
    let (repo, good) = damaged_base(|repo| {
        // Lossy decoding used to turn this into a valid config with an odd path in it.
        repo.write(
            ".stategate.yaml",
            b"policies:\n  paths: [\"pol\xffcies/\"]\n".as_slice(),
        );
    });
    let out = stategate(&repo, &["check"]);
    assert_refused(&out, ".stategate.yaml", "not valid UTF-8");
    repo.commit_all("the change");
    let out = stategate(&repo, &["check", "--base", "HEAD~1"]);
    assert_refused(&out, ".stategate.yaml", "not valid UTF-8");
    // The diff reads its masks from the base config: the same refusal.
    let out = stategate(&repo, &["diff", "--base", "HEAD~1"]);
    assert_refused(&out, ".stategate.yaml", "not valid UTF-8");
    // The undamaged base still judges the change by its rules.
    let out = stategate(&repo, &["check", "--base", &good]);
    assert_eq!(code(&out), 1, "{}", all_output(&out));
}

#[test]
fn a_symlinked_policy_is_exit_2_not_dropped() {
    let (repo, _) = damaged_base(|repo| {
        repo.rename("policies/team.rego", "lib/team.rego");
        repo.symlink("../lib/team.rego", "policies/team.rego");
    });
    let out = stategate(&repo, &["check"]);
    assert_refused(&out, "policies/team.rego", "a symlink");
    repo.commit_all("the change");
    let out = stategate(&repo, &["check", "--base", "HEAD~1"]);
    assert_refused(&out, "policies/team.rego", "a symlink");
    let out = stategate(&repo, &["check", "--all", "--trust", "head"]);
    assert_refused(&out, "policies/team.rego", "a symlink");
}

#[test]
fn a_symlinked_policy_directory_is_exit_2() {
    let (repo, _) = damaged_base(|repo| {
        repo.rename("policies/team.rego", "lib/team.rego");
        std::fs::remove_dir(repo.abs("policies")).unwrap();
        repo.symlink("lib", "policies");
    });
    let out = stategate(&repo, &["check"]);
    assert_refused(&out, "policies", "a symlink");
}

#[test]
fn a_policy_directory_hidden_in_a_submodule_is_exit_2() {
    let (repo, _) = damaged_base(|repo| {
        let other = TestRepo::new();
        other.write("extra.rego", "package main\n");
        other.commit_all("other");
        repo.add_submodule(&other, "policies/vendored");
    });
    let out = stategate(&repo, &["check"]);
    assert_refused(&out, "policies/vendored", "a submodule");
}

#[test]
fn a_symlinked_data_file_is_exit_2() {
    let (repo, _) = damaged_base(|repo| {
        repo.write("lib/teams.json", "{\"teams\": [\"a\"]}");
        repo.symlink("../../lib/teams.json", "policies/data/teams.json");
    });
    let out = stategate(&repo, &["check"]);
    assert_refused(&out, "policies/data/teams.json", "a symlink");
}
