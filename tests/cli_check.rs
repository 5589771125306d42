//! `stategate check` as a user runs it: the real binary in real git repositories.

mod common;

use std::process::{Command, Output};

use common::git::TestRepo;
use common::run::{code, errors, stategate, stdout};

const GOOD: &str =
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  mode: \"fast\"\n";
const BAD: &str = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  ports:\n    - port: \"80\"\n  selectr: {app: web}\n";

fn json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(output)))
}

fn repo_with_base() -> TestRepo {
    let repo = TestRepo::new();
    repo.write("apps/settings.yaml", GOOD);
    repo.commit_all("base");
    repo
}

#[test]
fn a_clean_change_passes_with_exit_0() {
    let repo = repo_with_base();
    repo.write("apps/more.yaml", GOOD.replace("settings", "more"));
    let out = stategate(&repo, &["check", "--format", "json"]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    assert_eq!(json(&out)["verdict"], "pass");
    assert_eq!(json(&out)["stats"]["documents"], 1);
}

#[test]
fn schema_errors_block_with_exit_1_and_point_at_the_line() {
    let repo = repo_with_base();
    repo.write("apps/web.yaml", BAD);
    let out = stategate(&repo, &["check", "--format", "json"]);
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    assert_eq!(
        errors(&json(&out)),
        vec![
            ("schema/type".to_owned(), "apps/web.yaml".to_owned(), 7),
            (
                "schema/unknown-field".to_owned(),
                "apps/web.yaml".to_owned(),
                8
            ),
        ]
    );
}

#[test]
fn only_changed_files_are_checked_unless_all_is_given() {
    let repo = TestRepo::new();
    repo.write("apps/web.yaml", BAD);
    repo.commit_all("a bad file already on main");
    repo.write("apps/settings.yaml", GOOD);
    assert_eq!(code(&stategate(&repo, &["check"])), 0);
    assert_eq!(code(&stategate(&repo, &["check", "--all"])), 1);
    assert_eq!(
        code(&stategate(&repo, &["check", "--all", "apps/settings.yaml"])),
        0
    );
}

#[test]
fn staged_mode_sees_the_index_not_the_working_tree() {
    let repo = repo_with_base();
    repo.write("apps/web.yaml", BAD);
    assert_eq!(code(&stategate(&repo, &["check", "--staged"])), 0);
    repo.add("apps/web.yaml");
    assert_eq!(code(&stategate(&repo, &["check", "--staged"])), 1);
}

#[test]
fn base_head_ranges_check_what_the_branch_changed() {
    let repo = repo_with_base();
    repo.branch("feature");
    repo.write("apps/web.yaml", BAD);
    repo.commit_all("bad service");
    let out = stategate(
        &repo,
        &[
            "check", "--base", "main", "--head", "feature", "--format", "json",
        ],
    );
    assert_eq!(code(&out), 1);
    assert_eq!(errors(&json(&out)).len(), 2);
    let out = stategate(&repo, &["check", "--base", "feature", "--head", "feature"]);
    assert_eq!(code(&out), 0);
}

#[test]
fn deleted_files_are_not_validated() {
    let repo = TestRepo::new();
    repo.write("apps/web.yaml", BAD);
    repo.commit_all("bad");
    repo.remove("apps/web.yaml");
    let out = stategate(&repo, &["check", "--format", "json"]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
}

#[test]
fn an_invalid_config_is_exit_2_pointing_at_the_key() {
    let repo = TestRepo::new();
    repo.write(
        ".stategate.yaml",
        "version: 1\nschemas:\n  kubernetes: \"1.31\"\n  unknwn: warn\n",
    );
    repo.commit_all("config with a typo");
    repo.write("apps/settings.yaml", GOOD);
    let out = stategate(&repo, &["check"]);
    assert_eq!(code(&out), 2, "{}", stdout(&out));
    let text = stdout(&out);
    assert!(text.contains("config/invalid"), "{text}");
    assert!(text.contains("unknown field `unknwn`"), "{text}");
    assert!(text.contains(".stategate.yaml:4:3"), "{text}");
}

#[test]
fn config_comes_from_the_base_unless_trust_head() {
    let repo = repo_with_base();
    // The change itself tries to switch schema checks off.
    repo.write(".stategate.yaml", "schemas:\n  kubernetes: none\n");
    repo.write("apps/web.yaml", BAD);
    assert_eq!(code(&stategate(&repo, &["check"])), 1);
    let out = stategate(&repo, &["check", "--trust", "head"]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    assert!(stdout(&out).contains("--trust head"));
}

#[test]
fn an_explicit_config_file_overrides() {
    let repo = repo_with_base();
    repo.write("apps/web.yaml", BAD);
    let config = repo.path().join("other.yml");
    std::fs::write(&config, "schemas:\n  kubernetes: none\n  unknown: skip\n").unwrap();
    let out = stategate(&repo, &["check", "--config", config.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
}

#[test]
fn hostile_or_broken_input_is_exit_2_with_a_location_and_no_panic() {
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "broken.yaml",
            b"a: 1\nb:\n  - x\n - y\n".to_vec(),
            "load/syntax",
        ),
        (
            "bomb.yaml",
            billion_laughs().into_bytes(),
            "load/alias-limit",
        ),
        (
            "latin1.yaml",
            b"a: 1\nb: caf\xE9\n".to_vec(),
            "load/invalid-utf8",
        ),
        ("huge.yaml", huge_file(), "load/too-large"),
    ];
    for (name, bytes, rule) in cases {
        let repo = repo_with_base();
        repo.write(name, bytes);
        let out = stategate(&repo, &["check", "--format", "json"]);
        assert_eq!(code(&out), 2, "{name}: {}", stdout(&out));
        let found = errors(&json(&out));
        assert_eq!(found.len(), 1, "{name}: {found:?}");
        assert_eq!(
            (found[0].0.as_str(), found[0].1.as_str()),
            (rule, name),
            "{name}"
        );
        assert!(
            !String::from_utf8_lossy(&out.stderr).contains("panicked"),
            "{name}"
        );
    }
}

#[test]
fn a_mapped_schema_that_is_not_json_is_exit_2() {
    let repo = TestRepo::new();
    repo.write(
        ".stategate.yaml",
        "schemas:\n  map:\n    - files: [\"apps/*/config.yaml\"]\n      schema: schemas/app.schema.json\n",
    );
    repo.write(
        "schemas/app.schema.json",
        "{\n  \"type\": \"object\",\n  \"properties\": {,\n}\n",
    );
    repo.commit_all("config");
    repo.write("apps/a/config.yaml", "replicas: 3\n");
    let out = stategate(&repo, &["check", "--format", "json"]);
    assert_eq!(code(&out), 2, "{}", stdout(&out));
    let found = errors(&json(&out));
    assert_eq!(found[0].0, "schema/invalid-schema");
    assert_eq!(found[0].1, "schemas/app.schema.json");
    assert!(found[0].2 >= 3, "{found:?}");
}

/// Issue 8 changed this: a manifest-named binary file and a symlink out of the repository are what
/// kubectl would try to apply, so they block (exit 2) instead of being noted.
#[test]
fn helm_templates_are_skipped_and_binary_manifests_and_outside_symlinks_block() {
    let repo = repo_with_base();
    repo.write(
        "charts/web/templates/deploy.yaml",
        "kind: {{ .Values.kind }}\n",
    );
    repo.write("apps/logo.json", b"\x89PNG\x00\x00binary");
    repo.symlink("/etc/passwd", "apps/passwd.yaml");
    let out = stategate(&repo, &["check", "--format", "json"]);
    assert_eq!(code(&out), 2, "{}", stdout(&out));
    let found = errors(&json(&out));
    assert!(
        found.contains(&("load/binary".to_owned(), "apps/logo.json".to_owned(), 0)),
        "{found:?}"
    );
    assert!(
        found.contains(&("load/symlink".to_owned(), "apps/passwd.yaml".to_owned(), 0)),
        "{found:?}"
    );
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(!stdout(&out).contains("root:"));
}

#[test]
fn every_format_renders_the_same_findings() {
    let repo = repo_with_base();
    repo.write("apps/web.yaml", BAD);
    let sarif: serde_json::Value =
        serde_json::from_slice(&stategate(&repo, &["check", "--format", "sarif"]).stdout).unwrap();
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(
        results[0]["locations"][0]["physicalLocation"]["region"]["startLine"],
        7
    );
    let github = stdout(&stategate(&repo, &["check", "--format", "github"]));
    assert!(
        github.contains("::error file=apps/web.yaml,line=7,"),
        "{github}"
    );
    let junit = stdout(&stategate(&repo, &["check", "--format", "junit"]));
    assert!(junit.contains("<failure"), "{junit}");
    let human = stategate(&repo, &["check"]);
    assert_eq!(code(&human), 1);
    assert!(
        stdout(&human).contains("7 │     - port: \"80\""),
        "{}",
        stdout(&human)
    );
}

/// JUnit and TAP give every checked file a test, passing ones too; the other formats do not list
/// them (the gate leaves the list out for them).
#[test]
fn junit_and_tap_list_the_passing_files_too() {
    let repo = repo_with_base();
    repo.write("apps/web.yaml", BAD);
    repo.write("apps/more.yaml", GOOD.replace("settings", "more"));
    let junit = stdout(&stategate(&repo, &["check", "--format", "junit"]));
    assert!(junit.contains("name=\"apps/more.yaml\""), "{junit}");
    assert!(junit.contains("name=\"apps/web.yaml\""), "{junit}");
    let tap = stdout(&stategate(&repo, &["check", "--format", "tap"]));
    assert!(tap.contains("1..2\n"), "{tap}");
    assert!(tap.contains("ok 1 - apps/more.yaml\n"), "{tap}");
    assert!(tap.contains("not ok 2 - apps/web.yaml\n"), "{tap}");
    // With a JUnit file beside the human report, the file still lists both.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("report.xml");
    let out = stategate(
        &repo,
        &[
            "check",
            "--format",
            "junit",
            "--output",
            file.to_str().unwrap(),
        ],
    );
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    let written = std::fs::read_to_string(&file).unwrap();
    assert!(written.contains("name=\"apps/more.yaml\""), "{written}");
    // The human report beside it still quotes the lines (the gate keeps the texts for it).
    assert!(
        stdout(&out).contains("selectr: {app: web}"),
        "{}",
        stdout(&out)
    );
}

/// Only the human format quotes the lines a finding points at; the others name the file, line
/// and column, and say the same whether or not the gate kept the file's text for them.
#[test]
fn formats_that_quote_no_source_still_locate_and_name_the_file() {
    let repo = repo_with_base();
    repo.write("apps/web.yaml", BAD);
    let human = stdout(&stategate(&repo, &["check"]));
    assert!(human.contains("selectr: {app: web}"), "{human}");
    let report = json(&stategate(&repo, &["check", "--format", "json"]));
    let located: Vec<(&str, u64)> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| {
            Some((
                f["location"]["file"].as_str()?,
                f["location"]["line"].as_u64()?,
            ))
        })
        .collect();
    assert!(located.contains(&("apps/web.yaml", 8)), "{report}");
    let junit = stdout(&stategate(&repo, &["check", "--format", "junit"]));
    assert!(junit.contains("apps/web.yaml:8"), "{junit}");
}

#[test]
fn not_a_repository_is_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_stategate"))
        .current_dir(dir.path())
        .env("GIT_CEILING_DIRECTORIES", dir.path().parent().unwrap())
        .args(["check"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 2);
}

#[test]
fn the_pre_commit_hook_blocks_a_bad_commit() {
    let repo = repo_with_base();
    let out = stategate(&repo, &["hook", "install", "--pre-commit"]);
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    let hook = std::fs::read_to_string(repo.path().join(".git/hooks/pre-commit")).unwrap();
    assert!(hook.contains("check --staged"));
    repo.write("apps/web.yaml", BAD);
    repo.add("apps/web.yaml");
    let commit = commit_through_hooks(&repo, "bad");
    assert!(
        !commit.status.success(),
        "the hook let a bad commit through"
    );
    let said = String::from_utf8_lossy(&commit.stderr);
    assert!(said.contains("schema/unknown-field"), "{said}");
    repo.write("apps/web.yaml", GOOD.replace("settings", "web"));
    repo.add("apps/web.yaml");
    let commit = commit_through_hooks(&repo, "good");
    assert!(
        commit.status.success(),
        "{}",
        String::from_utf8_lossy(&commit.stderr)
    );
}

/// A plain `git commit`, hooks and all, with the freshly built stategate on PATH.
fn commit_through_hooks(repo: &TestRepo, message: &str) -> Output {
    Command::new("git")
        .current_dir(repo.path())
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@e",
            "commit",
            "-qm",
            message,
        ])
        .env("PATH", path_with_binary())
        .output()
        .unwrap()
}

fn path_with_binary() -> String {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_stategate"))
        .parent()
        .unwrap();
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

fn billion_laughs() -> String {
    let mut text = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    let mut prev = 'a';
    for name in 'b'..='j' {
        let refs = vec![format!("*{prev}"); 9].join(",");
        text.push_str(&format!("{name}: &{name} [{refs}]\n"));
        prev = name;
    }
    text
}

/// 50 MiB of plausible YAML: over the default 10 MiB cap.
fn huge_file() -> Vec<u8> {
    "key: value\n".repeat(50 * 1024 * 1024 / 11).into_bytes()
}

const NO_LATEST: &str = "package main\n\nimport rego.v1\n\ndeny contains msg if {\n  some c in input.spec.containers\n  endswith(c.image, \":latest\")\n  msg := sprintf(\"container %s uses a :latest image\", [c.name])\n}\n";
const LATEST_POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n    - name: web\n      image: nginx:latest\n";

#[test]
fn document_policies_from_the_base_judge_the_change() {
    let repo = TestRepo::new();
    repo.write("policies/images.rego", NO_LATEST);
    repo.commit_all("policy");
    repo.write("apps/pod.yaml", LATEST_POD);
    let out = stategate(&repo, &["check", "--format", "json"]);
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    let report = json(&out);
    let finding = &report["findings"][0];
    assert_eq!(finding["rule"], "policy/deny");
    assert_eq!(finding["message"], "container web uses a :latest image");
    assert_eq!(finding["location"]["file"], "apps/pod.yaml");
    assert_eq!(finding["object"], "v1/Pod//web");
    // The same change also loosening the policy is still judged by the base's policy.
    repo.write("policies/images.rego", "package main\n");
    assert_eq!(code(&stategate(&repo, &["check"])), 1);
    assert_eq!(code(&stategate(&repo, &["check", "--trust", "head"])), 0);
}

#[test]
fn a_broken_policy_is_exit_2_naming_its_file_and_line() {
    let repo = TestRepo::new();
    repo.write(
        "policies/broken.rego",
        "package main\n\ndeny contains msg if {\n  msg := \n}\n",
    );
    repo.commit_all("broken policy");
    repo.write("apps/pod.yaml", LATEST_POD);
    let out = stategate(&repo, &["check", "--format", "json"]);
    assert_eq!(code(&out), 2, "{}", stdout(&out));
    let report = json(&out);
    let finding = &report["findings"][0];
    assert_eq!(finding["rule"], "policy/compile");
    assert_eq!(finding["location"]["file"], "policies/broken.rego");
    assert!(
        finding["location"]["line"].as_u64().unwrap() >= 4,
        "{finding}"
    );
}

#[test]
fn rendered_overlays_are_checked_when_listed_under_render_kustomize() {
    let repo = TestRepo::new();
    repo.write(
        ".stategate.yaml",
        "render:\n  kustomize: [\"overlays/*\"]\n",
    );
    repo.write(
        "base/kustomization.yaml",
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [deployment.yaml]\n",
    );
    let deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n        - name: web\n          image: nginx:1.27\n";
    repo.write("base/deployment.yaml", deployment);
    repo.write(
        "overlays/prod/kustomization.yaml",
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: prod\nresources: [../../base]\npatches:\n  - path: replicas.yaml\n",
    );
    // The patch alone is a partial object; what it makes of the base is what the cluster gets.
    repo.write(
        "overlays/prod/replicas.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: \"3\"\n",
    );
    repo.commit_all("base and prod overlay");
    // A change to the base alone: the file itself is fine, the rendered prod object is not.
    repo.write(
        "base/deployment.yaml",
        deployment.replace("nginx:1.27", "nginx:1.28"),
    );
    // The prod object was already wrong at the base: reported at the patch line that set the
    // value, as pre-existing, and not blocking.
    let out = stategate(&repo, &["check", "--format", "json"]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    let report = json(&out);
    let finding = &report["findings"][0];
    assert_eq!(finding["rule"], "schema/type");
    assert_eq!(finding["pre_existing"], true);
    assert_eq!(finding["location"]["file"], "overlays/prod/replicas.yaml");
    assert_eq!(finding["location"]["line"], 6);
    assert_eq!(
        finding["metadata"]["rendered"],
        "overlays/prod (rendered by kustomize: apps/v1/Deployment/prod/web)"
    );
    // A base edit that breaks the rendered object blocks, at the line of the base file.
    repo.write(
        "base/deployment.yaml",
        deployment.replace("image: nginx:1.27", "image: 128"),
    );
    let out = stategate(&repo, &["check", "--format", "json"]);
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    let found = errors(&json(&out));
    assert_eq!(
        found,
        vec![(
            "schema/type".to_owned(),
            "base/deployment.yaml".to_owned(),
            14
        )],
        "{}",
        stdout(&out)
    );
}

#[test]
fn secret_values_reach_no_output_format_even_when_they_are_wrong() {
    let repo = repo_with_base();
    repo.write(
        "apps/secret.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\ntype: Opaque\ndata:\n  password: 123456789\nstringData:\n  token: [hunter2]\n",
    );
    for format in ["human", "json", "sarif", "junit", "github"] {
        let out = stategate(&repo, &["check", "--format", format]);
        assert_eq!(code(&out), 1, "{format}: {}", stdout(&out));
        let text = stdout(&out);
        assert!(text.contains("data.password"), "{format}: {text}");
        for secret in ["123456789", "hunter2"] {
            assert!(!text.contains(secret), "{format} printed {secret}: {text}");
        }
    }
}

#[test]
fn check_runs_the_change_policies_the_hook_and_the_pr_run() {
    let repo = TestRepo::new();
    repo.write(".stategate.yaml", "version: 1\n");
    repo.write(
        "policies/change.rego",
        "package stategate.change\nimport rego.v1\n\ndeny contains msg if {\n  some f in input.files\n  some doc in f.after\n  doc.kind == \"Secret\"\n  msg := sprintf(\"%s adds a plain Secret: use a SealedSecret\", [f.path])\n}\n",
    );
    repo.write("apps/settings.yaml", GOOD);
    let base = repo.commit_all("base");
    repo.write(
        "apps/token.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: token\nstringData:\n  token: hunter2\n",
    );
    repo.commit_all("a plain Secret");
    let out = stategate(&repo, &["check", "--base", &base, "--format", "json"]);
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    let report = json(&out);
    let messages: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["message"].as_str())
        .collect();
    assert!(
        messages.contains(&"apps/token.yaml adds a plain Secret: use a SealedSecret"),
        "{messages:?}"
    );
}

/// A repository with one error (BAD's Service), one warning (a custom resource no schema covers)
/// and one note (a values file with no apiVersion and kind), all in the working tree.
fn repo_with_every_severity() -> TestRepo {
    let repo = repo_with_base();
    repo.write("apps/web.yaml", BAD);
    repo.write(
        "apps/widget.yaml",
        "apiVersion: example.invalid/v1\nkind: Widget\nmetadata:\n  name: w\n",
    );
    repo.write("apps/values.yaml", "replicas: 2\n");
    repo
}

#[test]
fn notes_are_shown_only_with_v() {
    let repo = repo_with_every_severity();
    let out = stategate(&repo, &["check"]);
    let text = stdout(&out);
    assert_eq!(code(&out), 1, "{text}");
    assert!(text.contains("error[schema/type]"), "{text}");
    assert!(text.contains("warning[schema/unknown-kind]"), "{text}");
    assert!(!text.contains("apps/values.yaml"), "{text}");
    assert!(text.contains("1 note"), "the note is still counted: {text}");
    assert!(text.contains("not shown (-v shows them)"), "{text}");

    let verbose = stdout(&stategate(&repo, &["check", "-v"]));
    assert!(verbose.contains("apps/values.yaml"), "{verbose}");
    assert!(!verbose.contains("not shown"), "{verbose}");
}

#[test]
fn quiet_prints_only_blocking_findings_and_the_summary() {
    let repo = repo_with_every_severity();
    let out = stategate(&repo, &["check", "--quiet"]);
    let text = stdout(&out);
    assert_eq!(code(&out), 1, "{text}");
    assert!(text.contains("error[schema/type]"), "{text}");
    assert!(!text.contains("schema/unknown-kind"), "{text}");
    assert!(!text.contains("values.yaml"), "{text}");
    assert!(!text.contains("note:"), "{text}");
    let last = text.lines().last().unwrap_or_default();
    assert!(last.contains("verdict: fail (exit 1)"), "{text}");

    // Nothing blocks: the summary line is all there is.
    repo.remove("apps/web.yaml");
    let out = stategate(&repo, &["check", "-q"]);
    assert_eq!(code(&out), 0);
    assert_eq!(stdout(&out).lines().count(), 1, "{}", stdout(&out));
    // The machine formats still carry everything.
    let report = json(&stategate(&repo, &["check", "-q", "--format", "json"]));
    assert_eq!(report["findings"].as_array().unwrap().len(), 2, "{report}");
}

#[test]
fn summary_counts_per_rule_and_per_file() {
    let repo = repo_with_every_severity();
    let out = stategate(&repo, &["check", "--summary"]);
    let text = stdout(&out);
    assert_eq!(code(&out), 1, "{text}");
    assert!(!text.contains("╭"), "no snippets: {text}");
    let row = |key: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(&format!("{key} ")))
            .unwrap_or_else(|| panic!("no row for {key}: {text}"))
            .split_whitespace()
            .filter_map(|w| w.parse::<usize>().ok())
            .collect::<Vec<_>>()
    };
    assert_eq!(row("schema/type"), [1, 0, 0], "{text}");
    assert_eq!(row("schema/unknown-field"), [1, 0, 0], "{text}");
    assert_eq!(row("schema/unknown-kind"), [0, 1, 1], "{text}");
    assert_eq!(row("apps/web.yaml"), [2, 0, 0], "{text}");
    assert_eq!(row("apps/widget.yaml"), [0, 1, 0], "{text}");
    assert_eq!(row("apps/values.yaml"), [0, 0, 1], "{text}");
    assert!(text.contains("2 errors, 1 warning, 1 note"), "{text}");
}

#[test]
fn the_memory_trace_names_each_stage_of_a_check_on_stderr() {
    let repo = repo_with_base();
    let out = Command::new(env!("CARGO_BIN_EXE_stategate"))
        .current_dir(repo.path())
        .args(["check", "--all", "--format", "json"])
        .env("STATEGATE_TRACE_MEMORY", "1")
        .output()
        .expect("run stategate");
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stages: Vec<&str> = stderr
        .lines()
        .filter_map(|l| l.strip_prefix("stategate memory: "))
        .map(|l| l.split(':').next().unwrap_or_default())
        .collect();
    assert_eq!(
        stages,
        [
            "start",
            "change detected",
            "first look",
            "streamed",
            "judged",
            "checked",
            "reported"
        ],
        "{stderr}"
    );
    // Linux also says how much of the process is resident: the figure benchmarks compare.
    #[cfg(target_os = "linux")]
    assert!(
        stderr
            .lines()
            .filter(|l| l.starts_with("stategate memory: "))
            .all(|l| l.contains(" ms, live ")
                && l.contains(", resident ")
                && l.contains(" KiB heap and stacks, ")
                && l.contains(" KiB files), peak resident ")),
        "{stderr}"
    );
    // Without the variable, nothing of it is printed.
    let quiet = stategate(&repo, &["check", "--all", "--format", "json"]);
    assert!(!String::from_utf8_lossy(&quiet.stderr).contains("stategate memory"));
}

/// A ConfigMap among other objects is held for the stages that need every document (Flux may
/// take variables from it); the file's other documents are judged in the stream. Each is judged
/// once, where it is, by the schemas and the document policies alike.
#[test]
fn a_file_with_a_held_document_has_every_document_judged_once_where_it_is() {
    let repo = TestRepo::new();
    repo.write(
        "policies/names.rego",
        "package main\n\ndeny contains msg if {\n  msg := sprintf(\"saw %s %s\", [input.kind, input.metadata.name])\n}\n",
    );
    repo.commit_all("base");
    let config = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  n: 1\n";
    repo.write(
        "apps/bundle.yaml",
        format!(
            "{BAD}---\n{config}---\n{}",
            BAD.replace("name: web", "name: api")
        ),
    );
    let out = stategate(&repo, &["check", "--format", "json"]);
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    let report = json(&out);
    assert_eq!(report["stats"]["documents"], 3, "{report:#}");
    let mut schema: Vec<_> = errors(&report)
        .into_iter()
        .filter(|(rule, ..)| rule.starts_with("schema/"))
        .collect();
    schema.sort();
    let at = |rule: &str, line| (rule.to_owned(), "apps/bundle.yaml".to_owned(), line);
    assert_eq!(
        schema,
        [
            at("schema/type", 7),
            at("schema/type", 15),
            at("schema/type", 23),
            at("schema/unknown-field", 8),
            at("schema/unknown-field", 24),
        ]
    );
    let mut seen: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["message"].as_str())
        .filter(|m| m.starts_with("saw "))
        .collect();
    seen.sort_unstable();
    assert_eq!(
        seen,
        [
            "saw ConfigMap settings",
            "saw Service api",
            "saw Service web"
        ]
    );
}
