//! Ways to get a manifest past the gate by making it read something other than what kubectl,
//! kustomize or Flux apply (issue 8, "what kubectl applies"). Each test runs the real binary in a
//! real git repository and would pass the attack on the code before this issue.

mod common;

use common::git::TestRepo;
use common::run::{errors, findings_with, stategate};

/// Denies every container with a `:latest` image, in Pods and workloads alike.
const NO_LATEST: &str = r#"package main

import rego.v1

containers contains c if some c in input.spec.containers

containers contains c if some c in input.spec.template.spec.containers

deny contains msg if {
  some c in containers
  endswith(c.image, ":latest")
  msg := sprintf("container %s uses a :latest image", [c.name])
}
"#;

const GOOD: &str =
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  mode: fast\n";

/// A Pod the policy above denies, as YAML lines without a trailing newline.
const LATEST_POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: sneaky\nspec:\n  containers:\n    - name: app\n      image: nginx:latest";

/// `stategate check --format json` on the working tree: exit code and report.
fn check(repo: &TestRepo) -> (i32, serde_json::Value) {
    check_with(repo, &[])
}

/// `check` with `args` (a revision range, `--staged`), its exit code and JSON report.
fn check_with(repo: &TestRepo, args: &[&str]) -> (i32, serde_json::Value) {
    let args: Vec<&str> = ["check"]
        .into_iter()
        .chain(args.iter().copied())
        .chain(["--format", "json"])
        .collect();
    let out = stategate(repo, &args);
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().expect("exit code"), report)
}

fn has_error(report: &serde_json::Value, rule: &str, file: &str) -> bool {
    errors(report)
        .iter()
        .any(|(r, f, _)| r == rule && f == file)
}

/// A repository whose base holds the `:latest` policy and one good manifest.
fn repo_with_policy() -> TestRepo {
    let repo = TestRepo::new();
    repo.write("policies/images.rego", NO_LATEST);
    repo.write("apps/settings.yaml", GOOD);
    repo.commit_all("base with a policy");
    repo
}

fn indent(text: &str, by: &str) -> String {
    text.lines()
        .map(|l| format!("{by}{l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_policy_itself_denies_a_plain_latest_pod() {
    let repo = repo_with_policy();
    repo.write("apps/pod.yaml", format!("{LATEST_POD}\n"));
    let (code, report) = check(&repo);
    assert_eq!(code, 1, "{report:#}");
    assert!(has_error(&report, "policy/deny", "apps/pod.yaml"));
}

#[test]
fn items_of_a_v1_list_go_through_policies_at_their_own_line() {
    let repo = repo_with_policy();
    let list = format!(
        "apiVersion: v1\nkind: List\nitems:\n{}\n{}\n",
        indent(&GOOD.replace("settings", "other"), "  ").replacen(
            "  apiVersion",
            "- apiVersion",
            1
        ),
        indent(LATEST_POD, "  ").replacen("  apiVersion", "- apiVersion", 1),
    );
    repo.write("apps/list.yaml", &list);
    let (code, report) = check(&repo);
    assert_eq!(code, 1, "{list}\n{report:#}");
    let denied: Vec<_> = findings_with(&report, "policy/deny");
    assert_eq!(denied.len(), 1, "{report:#}");
    // The Pod item starts on line 10 of the list file.
    assert_eq!(denied[0]["location"]["file"], "apps/list.yaml");
    assert_eq!(denied[0]["location"]["line"], 10, "{list}");
    assert_eq!(denied[0]["object"], "v1/Pod//sneaky");
}

#[test]
fn items_of_a_typed_list_inherit_its_kind_and_are_judged() {
    let repo = repo_with_policy();
    // kubectl gives kind-less items the list's apiVersion and kind minus `List`.
    repo.write(
        "apps/pods.yaml",
        "apiVersion: v1\nkind: PodList\nitems:\n  - metadata:\n      name: inherited\n    spec:\n      containers:\n        - name: app\n          image: nginx:latest\n",
    );
    let (code, report) = check(&repo);
    assert_eq!(code, 1, "{report:#}");
    let denied = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == "policy/deny")
        .unwrap_or_else(|| panic!("{report:#}"));
    assert_eq!(denied["object"], "v1/Pod//inherited");
    assert_eq!(denied["location"]["line"], 4);
}

#[test]
fn a_non_list_kind_with_items_is_ambiguous() {
    let repo = repo_with_policy();
    // kubectl applies the Pod item; kustomize applies the ConfigMap.
    repo.write(
        "apps/cm.yaml",
        format!(
            "{GOOD}items:\n{}\n",
            indent(LATEST_POD, "  ").replacen("  apiVersion", "- apiVersion", 1)
        ),
    );
    let (code, report) = check(&repo);
    assert_eq!(code, 2, "{report:#}");
    assert!(
        has_error(&report, "load/ambiguous", "apps/cm.yaml"),
        "{report:#}"
    );
}

#[test]
fn a_manifest_named_like_the_config_below_the_root_is_checked() {
    let repo = repo_with_policy();
    repo.write("apps/.stategate.yaml", format!("{LATEST_POD}\n"));
    let (code, report) = check(&repo);
    assert_eq!(code, 1, "{report:#}");
    assert!(has_error(&report, "policy/deny", "apps/.stategate.yaml"));
}

#[test]
fn template_braces_in_a_comment_do_not_hide_a_manifest() {
    let repo = repo_with_policy();
    // Not in a chart, and the braces are in a comment: kubectl applies it as it is.
    repo.write(
        "apps/templates/pod.yaml",
        format!("# rendered from {{{{ .Values.image }}}} once\n{LATEST_POD}\n"),
    );
    // Inside a chart, a comment alone does not make a template either.
    repo.write(
        "charts/web/Chart.yaml",
        "apiVersion: v2\nname: web\nversion: 0.1.0\n",
    );
    repo.write(
        "charts/web/static/pod.yaml",
        format!("{LATEST_POD}  # {{{{ not a template }}}}\n"),
    );
    let (code, report) = check(&repo);
    assert_eq!(code, 1, "{report:#}");
    assert!(
        has_error(&report, "policy/deny", "apps/templates/pod.yaml"),
        "{report:#}"
    );
    assert!(
        has_error(&report, "policy/deny", "charts/web/static/pod.yaml"),
        "{report:#}"
    );
}

#[test]
fn real_chart_templates_are_still_skipped_with_a_note() {
    let repo = repo_with_policy();
    // Not under `charts/`, which the default config excludes anyway.
    repo.write(
        "deploy/web/Chart.yaml",
        "apiVersion: v2\nname: web\nversion: 0.1.0\n",
    );
    repo.write(
        "deploy/web/templates/pod.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {{ .Release.Name }}\n",
    );
    let (code, report) = check(&repo);
    assert_eq!(code, 0, "{report:#}");
    assert!(
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["rule"] == "load/skipped"
                && f["location"]["file"] == "deploy/web/templates/pod.yaml")
    );
}

#[test]
fn a_file_listed_as_resource_and_patch_is_checked_as_a_whole_object() {
    let repo = repo_with_policy();
    repo.write(
        "base/kustomization.yaml",
        "resources:\n  - pod.yaml\npatches:\n  - path: pod.yaml\n",
    );
    repo.write("base/pod.yaml", format!("{LATEST_POD}\n"));
    let (code, report) = check(&repo);
    assert_eq!(code, 1, "{report:#}");
    assert!(
        has_error(&report, "policy/deny", "base/pod.yaml"),
        "{report:#}"
    );
}

#[test]
fn a_file_listed_as_resource_elsewhere_and_patch_here_is_checked() {
    let repo = repo_with_policy();
    repo.write(
        "base/kustomization.yaml",
        "resources: []\npatchesStrategicMerge:\n  - pod.yaml\n",
    );
    repo.write(
        "overlay/kustomization.yaml",
        "resources:\n  - ../base/pod.yaml\n",
    );
    repo.write("base/pod.yaml", format!("{LATEST_POD}\n"));
    let (code, report) = check(&repo);
    assert_eq!(code, 1, "{report:#}");
    assert!(
        has_error(&report, "policy/deny", "base/pod.yaml"),
        "{report:#}"
    );
}

#[test]
fn a_patch_only_file_is_still_not_judged_as_a_whole_object() {
    let repo = repo_with_policy();
    repo.write(
        "base/kustomization.yaml",
        "resources: []\npatches:\n  - path: patch.yaml\n",
    );
    // A partial object: without the patch exemption, schemas would call it incomplete.
    repo.write(
        "base/patch.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 2\n",
    );
    let (code, report) = check(&repo);
    assert_eq!(code, 0, "{report:#}");
}

fn utf16(text: &str, big_endian: bool) -> Vec<u8> {
    let mut bytes = if big_endian {
        vec![0xFE, 0xFF]
    } else {
        vec![0xFF, 0xFE]
    };
    for unit in text.encode_utf16() {
        let pair = if big_endian {
            unit.to_be_bytes()
        } else {
            unit.to_le_bytes()
        };
        bytes.extend(pair);
    }
    bytes
}

#[test]
fn utf16_manifests_with_a_bom_are_decoded_and_judged() {
    for big_endian in [false, true] {
        let repo = repo_with_policy();
        repo.write(
            "apps/pod.yaml",
            utf16(&format!("{LATEST_POD}\n"), big_endian),
        );
        let (code, report) = check(&repo);
        assert_eq!(code, 1, "big endian: {big_endian}: {report:#}");
        assert!(
            has_error(&report, "policy/deny", "apps/pod.yaml"),
            "{report:#}"
        );
    }
}

#[test]
fn utf32_manifests_are_refused_as_kubectl_refuses_them() {
    let repo = repo_with_policy();
    let mut bytes = vec![0xFF, 0xFE, 0, 0];
    for c in format!("{LATEST_POD}\n").chars() {
        bytes.extend((c as u32).to_le_bytes());
    }
    repo.write("apps/pod.yaml", bytes);
    let (code, report) = check(&repo);
    assert_eq!(code, 2, "{report:#}");
    assert!(
        has_error(&report, "load/invalid-utf8", "apps/pod.yaml"),
        "{report:#}"
    );
}

#[test]
fn binary_content_in_a_manifest_file_blocks() {
    let repo = repo_with_policy();
    // A NUL after the Pod: git calls it binary, kubectl reads up to it and fails.
    repo.write("apps/pod.yaml", format!("{LATEST_POD}\n\0\n"));
    // Binary files not named like manifests are still only noted.
    repo.write("apps/logo.png", b"\x89PNG\x00\x00binary");
    let (code, report) = check(&repo);
    assert_eq!(code, 2, "{report:#}");
    assert!(
        has_error(&report, "load/binary", "apps/pod.yaml"),
        "{report:#}"
    );
    assert!(!errors(&report).iter().any(|(_, f, _)| f == "apps/logo.png"));
}

#[test]
fn gitattributes_cannot_make_a_manifest_binary() {
    let repo = repo_with_policy();
    repo.write(".gitattributes", "*.yaml binary\n");
    repo.write("apps/pod.yaml", format!("{LATEST_POD}\n"));
    repo.commit_all("pod marked binary");
    let (code, report) = check_with(&repo, &["--base", "HEAD~1", "--head", "HEAD"]);
    assert_eq!(code, 1, "{report:#}");
    assert!(
        has_error(&report, "policy/deny", "apps/pod.yaml"),
        "{report:#}"
    );
}

#[cfg(unix)]
#[test]
fn a_symlink_inside_the_repository_is_judged_by_its_target() {
    let repo = repo_with_policy();
    // The target sits outside the checked globs (no .yaml), so only the link can bring it in.
    repo.write("vendor/pod.txt", format!("{LATEST_POD}\n"));
    repo.symlink("../vendor/pod.txt", "apps/pod.yaml");
    let (code, report) = check(&repo);
    assert_eq!(code, 1, "working tree: {report:#}");
    assert!(
        has_error(&report, "policy/deny", "apps/pod.yaml"),
        "{report:#}"
    );

    // The same from commits: the link text is resolved in the commit's tree, not on disk.
    repo.commit_all("link to a bad pod");
    std::fs::remove_file(repo.abs("vendor/pod.txt")).unwrap();
    let (code, report) = check_with(&repo, &["--base", "HEAD~1", "--head", "HEAD"]);
    assert_eq!(code, 1, "range: {report:#}");
    assert!(
        has_error(&report, "policy/deny", "apps/pod.yaml"),
        "{report:#}"
    );
}

#[cfg(unix)]
#[test]
fn a_file_turned_into_a_symlink_is_judged_by_its_target() {
    let repo = repo_with_policy();
    repo.write("vendor/pod.txt", format!("{LATEST_POD}\n"));
    repo.commit_all("a bad pod outside the globs");
    repo.remove("apps/settings.yaml");
    repo.symlink("../vendor/pod.txt", "apps/settings.yaml");
    let (code, report) = check(&repo);
    assert_eq!(code, 1, "{report:#}");
    assert!(
        has_error(&report, "policy/deny", "apps/settings.yaml"),
        "{report:#}"
    );
}

#[cfg(unix)]
#[test]
fn a_symlink_leaving_the_repository_blocks_without_being_read() {
    let repo = repo_with_policy();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("pod.yaml"), format!("{LATEST_POD}\n")).unwrap();
    let target = outside.path().join("pod.yaml");
    repo.symlink(target.to_str().unwrap(), "apps/abs.yaml");
    repo.symlink("../../../../../../../../../../etc/passwd", "apps/rel.yaml");
    let (code, report) = check(&repo);
    assert_eq!(code, 2, "{report:#}");
    assert!(
        has_error(&report, "load/symlink", "apps/abs.yaml"),
        "{report:#}"
    );
    assert!(
        has_error(&report, "load/symlink", "apps/rel.yaml"),
        "{report:#}"
    );
    assert!(!report.to_string().contains("root:"));
    assert!(!has_error(&report, "policy/deny", "apps/abs.yaml"));
}

#[test]
fn each_list_item_is_schema_checked_at_its_own_line() {
    let repo = repo_with_policy();
    repo.write(
        "apps/list.yaml",
        "apiVersion: v1\nkind: List\nitems:\n  - apiVersion: v1\n    kind: ConfigMap\n    metadata:\n      name: one\n  - apiVersion: v1\n    kind: Service\n    metadata:\n      name: two\n    spec:\n      selectr: {app: x}\n",
    );
    let (code, report) = check(&repo);
    assert_eq!(code, 1, "{report:#}");
    let unknown: Vec<_> = findings_with(&report, "schema/unknown-field")
        .into_iter()
        .map(|f| (f["location"]["line"].clone(), f["object"].clone()))
        .collect();
    assert_eq!(
        unknown,
        vec![(serde_json::json!(13), serde_json::json!("v1/Service//two"))],
        "{report:#}"
    );
}

#[cfg(unix)]
#[test]
fn staged_symlinks_are_resolved_in_the_index() {
    let repo = repo_with_policy();
    repo.write("vendor/pod.txt", format!("{LATEST_POD}\n"));
    repo.symlink("../vendor/pod.txt", "apps/pod.yaml");
    repo.add_all();
    // The working tree no longer has the target; the index does.
    std::fs::remove_file(repo.abs("vendor/pod.txt")).unwrap();
    let (code, report) = check_with(&repo, &["--staged"]);
    assert_eq!(code, 1, "{report:#}");
    assert!(
        has_error(&report, "policy/deny", "apps/pod.yaml"),
        "{report:#}"
    );
}

#[cfg(unix)]
#[test]
fn a_dangling_symlink_blocks() {
    let repo = repo_with_policy();
    repo.symlink("missing.yaml", "apps/pod.yaml");
    let (code, report) = check(&repo);
    assert_eq!(code, 2, "{report:#}");
    assert!(
        has_error(&report, "load/symlink", "apps/pod.yaml"),
        "{report:#}"
    );
}

#[test]
fn a_merge_key_that_overrides_an_explicit_key_blocks_and_names_it() {
    let repo = repo_with_policy();
    // kubectl (go-yaml v2) applies the merged `nginx:latest`; kustomize keeps `nginx:1.27`.
    repo.write(
        "apps/pod.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: merged\nlatest: &latest {image: \"nginx:latest\"}\nspec:\n  containers:\n    - name: app\n      image: nginx:1.27\n      <<: *latest\n",
    );
    let (code, report) = check(&repo);
    assert_eq!(code, 2, "{report:#}");
    let finding = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == "load/ambiguous")
        .unwrap_or_else(|| panic!("{report:#}"));
    assert_eq!(finding["location"]["line"], 10);
    assert!(
        finding["message"].as_str().unwrap().contains("`image`"),
        "{finding}"
    );
}

/// `v1 List` holding a ConfigMap and the `:latest` Pod.
fn list_of_two() -> String {
    format!(
        "apiVersion: v1\nkind: List\nitems:\n{}\n{}\n",
        indent(&GOOD.replace("settings", "other"), "  ").replacen(
            "  apiVersion",
            "- apiVersion",
            1
        ),
        indent(LATEST_POD, "  ").replacen("  apiVersion", "- apiVersion", 1),
    )
}

#[test]
fn the_diff_shows_the_items_of_a_list_as_the_objects_kubectl_applies() {
    let repo = repo_with_policy();
    let base = repo.head();
    repo.write("apps/list.yaml", list_of_two());
    repo.commit_all("a list");
    let out = stategate(&repo, &["diff", "--base", &base, "--format", "json"]);
    let diff: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let text = diff.to_string();
    // Two objects added, named by their own identities; the List itself is no object.
    assert!(text.contains("v1/Pod/default/sneaky"), "{diff:#}");
    assert!(text.contains("v1/ConfigMap/default/other"), "{diff:#}");
    assert!(!text.contains("v1/List"), "{diff:#}");
}
