//! Rendering in the dry-run diff, with the real `kubectl kustomize` on real git repositories.

mod common;

use common::git::TestRepo;
use stategate::change::{ChangeMode, detect_changes_in};
use stategate::cli::diff::{DiffArgs, run_diff};
use stategate::diff::{DiffOptions, DiffResult, Format, Status, diff_change};
use stategate::finding::{Rule, Severity};
use stategate::tree::GitTree;

const DEPLOYMENT: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: nginx:1.26
";

const PROD_PATCH: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
";

/// base/ with a Deployment, overlays/prod/ with a namespace, a name prefix and a replicas patch.
fn overlay_repo() -> (TestRepo, String) {
    let repo = TestRepo::new();
    repo.write(
        ".stategate.yaml",
        "version: 1\nenvironments:\n  prod: [\"overlays/prod/**\"]\n",
    );
    repo.write(
        "base/kustomization.yaml",
        "resources:\n  - deployment.yaml\n",
    );
    repo.write("base/deployment.yaml", DEPLOYMENT);
    repo.write(
        "overlays/prod/kustomization.yaml",
        "resources:\n  - ../../base\nnamespace: prod\nnamePrefix: prod-\npatches:\n  - path: replicas.yaml\n",
    );
    repo.write("overlays/prod/replicas.yaml", PROD_PATCH);
    let base = repo.commit_all("overlay");
    (repo, base)
}

fn diff(repo: &TestRepo, base: &str, head: &str) -> DiffResult {
    let git = git2::Repository::open(repo.path()).expect("open repo");
    let mode = ChangeMode::Range {
        base: base.to_owned(),
        head: head.to_owned(),
    };
    let change = detect_changes_in(&git, &mode, &[]).expect("change");
    let base = GitTree::open(&git, base).expect("base");
    let head = GitTree::open(&git, head).expect("head");
    let config = stategate::config::parse_config(
        ".stategate.yaml",
        &std::fs::read_to_string(repo.abs(".stategate.yaml")).unwrap_or_default(),
    )
    .expect("config");
    diff_change(&change, &base, &head, &config, &DiffOptions::default())
}

fn cli(repo: &TestRepo, base: &str, format: Format) -> (u8, String, String) {
    let args = DiffArgs {
        base: Some(base.to_string()),
        head: None,
        staged: false,
        format,
        color: false,
        live: false,
        env: None,
        cache_dir: None,
        no_cache: true,
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = run_diff(repo.path(), &args, &mut out, &mut err);
    let text = |b: Vec<u8>| String::from_utf8(b).expect("utf-8 output");
    (code, text(out), text(err))
}

#[test]
fn changing_the_base_shows_the_rendered_change_in_the_prod_overlay() {
    let (repo, base) = overlay_repo();
    repo.write(
        "base/deployment.yaml",
        DEPLOYMENT.replace("nginx:1.26", "nginx:1.27"),
    );
    let head = repo.commit_all("bump nginx");
    let result = diff(&repo, &base, &head);
    assert!(result.findings.is_empty(), "{:?}", result.findings);
    let changed: Vec<_> = result
        .objects
        .iter()
        .filter(|o| o.status != Status::Unchanged)
        .collect();
    // One object: the overlay's rendered Deployment (prefixed, in prod), not the raw base file.
    assert_eq!(changed.len(), 1, "{changed:#?}");
    let web = changed[0];
    assert_eq!(web.id.to_string(), "apps/v1/Deployment/prod/prod-web");
    assert_eq!(web.status, Status::Changed);
    assert_eq!(web.environment.as_deref(), Some("prod"));
    assert_eq!(
        web.changed_fields,
        vec!["spec.template.spec.containers[name=web].image"]
    );
    let head_source = web.head.as_ref().expect("head source");
    assert_eq!(head_source.path, "overlays/prod");
    assert_eq!(head_source.origin.as_deref(), Some("base/deployment.yaml"));
    // The diff shows the image line, in place in the container list.
    assert!(
        web.diff
            .contains("-      - image: nginx:1.26\n+      - image: nginx:1.27\n"),
        "{}",
        web.diff
    );

    let (code, markdown, _) = cli(&repo, &base, Format::Markdown);
    assert_eq!(code, 0);
    assert!(markdown.starts_with("<!-- stategate:diff -->\n"));
    assert!(
        markdown.contains("| prod | Deployment | 0 | 1 | 0 | 0 |"),
        "{markdown}"
    );
}

#[test]
fn deleting_from_the_prod_overlay_warns_about_a_protected_environment() {
    let (repo, base) = overlay_repo();
    repo.write("base/kustomization.yaml", "resources:\n  - settings.yaml\n");
    repo.write(
        "base/settings.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  a: b\n",
    );
    // The replicas patch has nothing left to patch, so it goes too.
    repo.write(
        "overlays/prod/kustomization.yaml",
        "resources:\n  - ../../base\nnamespace: prod\nnamePrefix: prod-\n",
    );
    let head = repo.commit_all("drop web");
    let (code, markdown, _) = cli(&repo, &base, Format::Markdown);
    assert_eq!(code, 0);
    assert!(
        markdown
            .contains("**1 deletion in protected environment `prod`**: `Deployment prod/prod-web`"),
        "{markdown}"
    );
    let result = diff(&repo, &base, &head);
    assert_eq!(result.count(Status::Removed), 1);
    assert_eq!(result.count(Status::Added), 1);
}

#[test]
fn a_remote_base_is_a_render_failure_naming_the_url_without_running_kustomize() {
    let (repo, base) = overlay_repo();
    let url = "github.com/example/manifests//deploy?ref=v1.2.3";
    repo.write(
        "overlays/prod/kustomization.yaml",
        format!("resources:\n  - ../../base\n  - {url}\nnamespace: prod\n"),
    );
    let head = repo.commit_all("remote base");
    let result = diff(&repo, &base, &head);
    let failure = result
        .findings
        .iter()
        .find(|f| f.rule == Rule::RenderFailed)
        .expect("render/failed");
    assert!(failure.message.contains(url), "{}", failure.message);
    assert_eq!(
        failure.location.as_ref().map(|l| l.file.as_str()),
        Some("overlays/prod/kustomization.yaml")
    );
    assert_eq!(result.exit_code(), 2);
    let (code, _, _) = cli(&repo, &base, Format::Json);
    assert_eq!(code, 2);
}

#[test]
fn a_broken_kustomization_is_a_finding_with_the_renderers_message() {
    let (repo, base) = overlay_repo();
    repo.write(
        "overlays/prod/kustomization.yaml",
        "resources:\n  - ../../base\n  - missing.yaml\n",
    );
    repo.commit_all("broken");
    let (code, json, _) = cli(&repo, &base, Format::Json);
    assert_eq!(code, 2);
    let value: serde_json::Value = serde_json::from_str(&json).expect("json output");
    let finding = &value["findings"][0];
    assert_eq!(finding["rule"], "render/failed");
    let stderr = finding["metadata"]["stderr"].as_str().expect("stderr kept");
    assert!(stderr.contains("missing.yaml"), "{stderr}");
    // The overlay rendered at base only: its objects are not reported as removed.
    assert_eq!(value["summary"]["removed"], 0);
}

#[test]
fn helm_charts_fail_closed_when_helm_is_missing() {
    let repo = TestRepo::new();
    repo.write(
        ".stategate.yaml",
        "version: 1\nrender:\n  helm_command: [/nonexistent/helm]\n  helm: [\"charts/*\"]\n",
    );
    repo.write(
        "charts/app/Chart.yaml",
        "apiVersion: v2\nname: app\nversion: 0.1.0\n",
    );
    repo.write("charts/app/values.yaml", "replicas: 1\n");
    let base = repo.commit_all("chart");
    repo.write("charts/app/values.yaml", "replicas: 2\n");
    let head = repo.commit_all("values");
    let result = diff(&repo, &base, &head);
    let finding = result
        .findings
        .iter()
        .find(|f| f.rule == Rule::RenderFailed)
        .expect("a finding");
    assert_eq!(finding.severity, Severity::Error);
    assert!(
        finding.message.contains("/nonexistent/helm` cannot be run")
            && finding.message.contains("chart charts/app"),
        "{}",
        finding.message
    );
    // The gate cannot see what Helm would apply: it does not pass the change.
    assert_eq!(result.exit_code(), 2);
}

#[test]
fn a_bad_revision_is_exit_2_with_a_message() {
    let (repo, _) = overlay_repo();
    let (code, out, err) = cli(&repo, "no-such-branch", Format::Human);
    assert_eq!(code, 2);
    assert!(out.is_empty());
    assert!(err.contains("no-such-branch"), "{err}");
}

#[test]
fn a_regenerated_secret_is_one_changed_object_and_its_values_stay_hidden() {
    let (repo, _) = overlay_repo();
    let generator = |password: &str| {
        format!(
            "resources:\n  - ../../base\nnamespace: prod\nnamePrefix: prod-\npatches:\n  - path: replicas.yaml\n\
             secretGenerator:\n  - name: creds\n    literals:\n      - password={password}\n"
        )
    };
    repo.write(
        "overlays/prod/kustomization.yaml",
        generator("first-Pa55word"),
    );
    let base = repo.commit_all("creds");
    repo.write(
        "overlays/prod/kustomization.yaml",
        generator("second-Pa55word"),
    );
    let head = repo.commit_all("rotate creds");
    let result = diff(&repo, &base, &head);
    let changed: Vec<_> = result
        .objects
        .iter()
        .filter(|o| o.status != Status::Unchanged)
        .collect();
    assert_eq!(changed.len(), 1, "{changed:#?}");
    let secret = changed[0];
    assert_eq!(secret.status, Status::Changed);
    assert!(
        secret
            .previous_id
            .as_ref()
            .is_some_and(|p| p.to_string().starts_with("v1/Secret/prod/prod-creds-"))
    );
    assert!(
        secret.changed_fields.contains(&"data.password".to_string()),
        "{:?}",
        secret.changed_fields
    );
    for format in [Format::Human, Format::Json, Format::Markdown] {
        let (code, out, _) = cli(&repo, &base, format);
        assert_eq!(code, 0);
        assert!(out.contains("<masked, changed>"), "{out}");
        // Neither the literal nor its base64 form (as kustomize stores it) may show.
        for value in [
            "first-Pa55word",
            "second-Pa55word",
            "Zmlyc3QtUGE1NXdvcmQ=",
            "c2Vjb25kLVBhNTV3b3Jk",
        ] {
            assert!(!out.contains(value), "{value} leaked:\n{out}");
        }
    }
}
