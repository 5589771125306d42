//! Helm for real: charts, Flux HelmReleases and Argo CD Applications rendered by the real `helm`
//! (installed by `.ci/run`), through the real binary, in real git repositories. Remote charts come
//! from a chart repository served on 127.0.0.1 by the test, whose request log is asserted.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use common::git::TestRepo;
use common::run::{diff_object, findings_with, json, stategate_cached};
use serde_json::Value;

/// helm on PATH; under CI its absence fails the test instead of skipping it.
fn helm_available() -> bool {
    if stategate::render::on_path("helm") {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "helm is not on PATH (CI=true: .ci/run installs it)"
    );
    eprintln!("skipping: helm is not on PATH (see .ci/run for the pinned install)");
    false
}

fn podinfo() -> Option<PathBuf> {
    common::corpus().map(|c| c.join("helm-charts/podinfo"))
}

fn copy_dir(from: &Path, repo: &TestRepo, to: &str) {
    for entry in std::fs::read_dir(from).expect("read chart") {
        let entry = entry.expect("entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        let rel = format!("{to}/{name}");
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), repo, &rel);
        } else {
            repo.write(&rel, std::fs::read(entry.path()).expect("read"));
        }
    }
}

const NO_LATEST: &str = "package main

deny contains msg if {
  input.kind == \"Deployment\"
  some c in input.spec.template.spec.containers
  endswith(c.image, \":latest\")
  msg := sprintf(\"container %s uses %s\", [c.name, c.image])
}
";

const PROD_REPLICAS: &str = "package main

deny contains msg if {
  data.stategate.file.environment == \"prod\"
  input.kind == \"Deployment\"
  input.spec.replicas == 0
  msg := sprintf(\"prod Deployment %s has no replicas\", [input.metadata.name])
}
";

#[test]
fn podinfo_with_prod_values_latest_tag_is_denied_at_the_values_line() {
    let (true, Some(chart)) = (helm_available(), podinfo()) else {
        return;
    };
    let cache = tempfile::tempdir().expect("cache");
    let repo = TestRepo::new();
    copy_dir(&chart, &repo, "charts/podinfo");
    repo.write(
        ".stategate.yaml",
        "version: 1\nrender:\n  helm:\n    charts:\n      - chart: charts/podinfo\n        values: [charts/podinfo/values-prod.yaml]\n        release: demo\n        namespace: web\n",
    );
    repo.write("policies/latest.rego", NO_LATEST);
    let base = repo.commit_all("podinfo");
    let prod = std::fs::read_to_string(chart.join("values-prod.yaml")).expect("values");
    assert!(
        prod.lines().nth(10) == Some("  tag: 6.14.1"),
        "line 11 is the tag"
    );
    repo.write(
        "charts/podinfo/values-prod.yaml",
        prod.replace("  tag: 6.14.1", "  tag: latest"),
    );
    repo.commit_all("latest");
    let out = stategate_cached(
        &repo,
        &["check", "--base", &base, "--format", "json"],
        cache.path(),
    );
    let report = json(&out);
    assert_eq!(out.status.code(), Some(1), "{report:#}");
    let denied = findings_with(&report, "policy/deny");
    assert_eq!(denied.len(), 1, "{report:#}");
    assert_eq!(
        denied[0]["location"]["file"],
        "charts/podinfo/values-prod.yaml"
    );
    assert_eq!(denied[0]["location"]["line"], 11, "{report:#}");
    assert!(
        denied[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("ghcr.io/stefanprodan/podinfo:latest")),
        "{report:#}"
    );
    assert!(
        denied[0]["metadata"]["rendered"]
            .as_str()
            .is_some_and(|r| r.contains("apps/v1/Deployment/web/demo-podinfo")),
        "{report:#}"
    );
}

const HELM_RELEASE: &str = "apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata:
  name: podinfo
  namespace: flux-system
spec:
  interval: 10m
  releaseName: podinfo
  targetNamespace: web
  chart:
    spec:
      chart: ./charts/podinfo
      sourceRef:
        kind: GitRepository
        name: flux-system
  values:
    replicaCount: 2
";

fn flux_repo() -> Option<(TestRepo, String, tempfile::TempDir)> {
    flux_repo_with("")
}

fn flux_repo_with(render: &str) -> Option<(TestRepo, String, tempfile::TempDir)> {
    let (true, Some(chart)) = (helm_available(), podinfo()) else {
        return None;
    };
    let repo = TestRepo::new();
    copy_dir(&chart, &repo, "charts/podinfo");
    repo.write(
        ".stategate.yaml",
        format!("version: 1\nenvironments:\n  prod: [\"clusters/prod/**\"]\nrender:\n{render}  helm:\n    releases: true\n"),
    );
    repo.write("clusters/prod/podinfo.yaml", HELM_RELEASE);
    repo.write("policies/replicas.rego", PROD_REPLICAS);
    let base = repo.commit_all("flux");
    Some((repo, base, tempfile::tempdir().expect("cache")))
}

#[test]
fn a_helm_release_scaled_to_zero_shows_in_diff_and_trips_the_prod_policy() {
    let Some((repo, base, cache)) = flux_repo() else {
        return;
    };
    repo.write(
        "clusters/prod/podinfo.yaml",
        HELM_RELEASE.replace("replicaCount: 2", "replicaCount: 0"),
    );
    repo.commit_all("scale to zero");

    let out = stategate_cached(
        &repo,
        &["diff", "--base", &base, "--format", "json"],
        cache.path(),
    );
    let diff = json(&out);
    let changed: Vec<&Value> = diff["objects"]
        .as_array()
        .expect("objects")
        .iter()
        .filter(|o| o["status"] != "unchanged")
        .collect();
    let deployment = changed
        .iter()
        .find(|o| o["id"] == "apps/v1/Deployment/web/podinfo")
        .unwrap_or_else(|| panic!("the rendered Deployment changes: {diff:#}"));
    assert_eq!(
        deployment["changed_fields"],
        serde_json::json!(["spec.replicas"]),
        "{diff:#}"
    );
    assert!(
        deployment["diff"]
            .as_str()
            .is_some_and(|d| d.contains("-  replicas: 2\n+  replicas: 0")),
        "{diff:#}"
    );
    // Shown under the release that produced it; the HelmRelease itself still shows.
    assert!(
        deployment
            .to_string()
            .contains("HelmRelease flux-system/podinfo"),
        "{deployment:#}"
    );
    assert!(
        changed
            .iter()
            .any(|o| o["id"] == "helm.toolkit.fluxcd.io/v2/HelmRelease/flux-system/podinfo"),
        "{diff:#}"
    );

    let out = stategate_cached(
        &repo,
        &["check", "--base", &base, "--format", "json"],
        cache.path(),
    );
    let report = json(&out);
    assert_eq!(out.status.code(), Some(1), "{report:#}");
    let denied = findings_with(&report, "policy/deny");
    assert_eq!(denied.len(), 1, "{report:#}");
    assert_eq!(
        denied[0]["message"],
        "prod Deployment podinfo has no replicas"
    );
    // Traced to the values line that set it.
    assert_eq!(denied[0]["location"]["file"], "clusters/prod/podinfo.yaml");
    assert_eq!(denied[0]["location"]["line"], 17, "{report:#}");
}

#[test]
fn post_renderer_patches_apply_and_values_from_config_maps_count() {
    let Some((repo, base, cache)) = flux_repo() else {
        return;
    };
    let release = HELM_RELEASE.replace(
        "  values:\n    replicaCount: 2\n",
        "  valuesFrom:\n    - kind: ConfigMap\n      name: podinfo-values\n  postRenderers:\n    - kustomize:\n        patches:\n          - target: {kind: Deployment, name: podinfo}\n            patch: |\n              - op: add\n                path: /metadata/labels/patched\n                value: \"yes\"\n",
    );
    repo.write("clusters/prod/podinfo.yaml", release);
    repo.write(
        "clusters/prod/values.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: podinfo-values\n  namespace: flux-system\ndata:\n  values.yaml: |\n    replicaCount: 0\n",
    );
    repo.commit_all("values from a ConfigMap, patched");
    let out = stategate_cached(
        &repo,
        &["diff", "--base", &base, "--format", "json"],
        cache.path(),
    );
    let diff = json(&out);
    let deployment = diff_object(&diff, "apps/v1/Deployment/web/podinfo");
    let fields = deployment["changed_fields"].to_string();
    assert!(
        fields.contains("spec.replicas") && fields.contains("metadata.labels.patched"),
        "{deployment:#}"
    );
}

#[test]
fn a_missing_helm_is_exit_2_naming_the_release() {
    let Some((repo, base, cache)) = flux_repo_with("  helm_command: [/nonexistent/helm]\n") else {
        return;
    };
    repo.write(
        "clusters/prod/podinfo.yaml",
        HELM_RELEASE.replace("replicaCount: 2", "replicaCount: 3"),
    );
    repo.commit_all("scale");
    for command in ["check", "diff"] {
        let out = stategate_cached(
            &repo,
            &[command, "--base", &base, "--format", "json"],
            cache.path(),
        );
        let report = json(&out);
        assert_eq!(out.status.code(), Some(2), "{command}: {report:#}");
        assert!(
            report
                .to_string()
                .contains("/nonexistent/helm` cannot be run")
                && report
                    .to_string()
                    .contains("HelmRelease flux-system/podinfo"),
            "{command}: {report:#}"
        );
    }
}

const APPLICATION: &str = "apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: podinfo
  namespace: argocd
spec:
  project: default
  source:
    repoURL: https://git.example.com/this-repo.git
    path: charts/podinfo
    targetRevision: HEAD
    helm:
      releaseName: demo
      valueFiles: [values-prod.yaml]
      parameters:
        - name: replicaCount
          value: \"3\"
  destination:
    server: https://kubernetes.default.svc
    namespace: apps
";

#[test]
fn an_argo_application_with_value_files_and_parameters_is_rendered_and_diffed() {
    let (true, Some(chart)) = (helm_available(), podinfo()) else {
        return;
    };
    let cache = tempfile::tempdir().expect("cache");
    let repo = TestRepo::new();
    copy_dir(&chart, &repo, "charts/podinfo");
    repo.write(
        ".stategate.yaml",
        "version: 1\nrender:\n  helm:\n    releases: true\n",
    );
    repo.write("apps/podinfo.yaml", APPLICATION);
    let base = repo.commit_all("argo");
    repo.write(
        "apps/podinfo.yaml",
        APPLICATION.replace("value: \"3\"", "value: \"5\""),
    );
    repo.commit_all("five replicas");
    let out = stategate_cached(
        &repo,
        &["diff", "--base", &base, "--format", "json"],
        cache.path(),
    );
    let diff = json(&out);
    let deployment = diff_object(
        &diff,
        "autoscaling/v2/HorizontalPodAutoscaler/apps/demo-podinfo",
    );
    // values-prod.yaml enables the autoscaler; the parameter sets its minimum.
    assert_eq!(
        deployment["changed_fields"],
        serde_json::json!(["spec.minReplicas"]),
        "{diff:#}"
    );
    assert!(
        deployment["diff"]
            .as_str()
            .is_some_and(|d| d.contains("-  minReplicas: 3\n+  minReplicas: 5")),
        "{deployment:#}"
    );
    // The Application itself still shows as changed.
    assert!(
        diff["objects"]
            .as_array()
            .expect("objects")
            .iter()
            .any(
                |o| o["id"] == "argoproj.io/v1alpha1/Application/argocd/podinfo"
                    && o["status"] == "changed"
            ),
        "{diff:#}"
    );
    let out = stategate_cached(
        &repo,
        &["diff", "--base", &base, "--format", "markdown"],
        cache.path(),
    );
    let markdown = String::from_utf8_lossy(&out.stdout);
    assert!(
        markdown.contains("Application argocd/podinfo"),
        "{markdown}"
    );
}

/// A static file server on 127.0.0.1 that logs every request path.
struct ChartServer {
    url: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl ChartServer {
    fn start(root: PathBuf) -> ChartServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let log = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&log);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).map_or(true, |n| n == 0) || header == "\r\n" {
                        break;
                    }
                }
                let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
                seen.lock().expect("log").push(path.clone());
                let mut stream = stream;
                let file = root.join(path.trim_start_matches('/'));
                let _ = match std::fs::read(&file) {
                    Ok(body) => stream
                        .write_all(
                            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len())
                                .as_bytes(),
                        )
                        .and_then(|()| stream.write_all(&body)),
                    Err(_) => stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
                };
            }
        });
        ChartServer { url, log }
    }

    fn requests(&self) -> Vec<String> {
        self.log.lock().expect("log").clone()
    }
}

fn helm(args: &[&str], dir: &Path) {
    let out = Command::new("helm")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("helm");
    assert!(
        out.status.success(),
        "helm {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const REMOTE_RELEASE: &str = "apiVersion: source.toolkit.fluxcd.io/v1
kind: HelmRepository
metadata:
  name: charts
  namespace: flux-system
spec:
  url: URL
---
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata:
  name: podinfo
  namespace: flux-system
spec:
  targetNamespace: web
  chart:
    spec:
      chart: podinfo
      version: 6.14.1
      sourceRef:
        kind: HelmRepository
        name: charts
  values:
    replicaCount: 2
";

fn remote_repo(server: &ChartServer, allowed: &str) -> (TestRepo, String) {
    let repo = TestRepo::new();
    repo.write(
        ".stategate.yaml",
        format!("version: 1\nrender:\n  helm:\n    releases: true\n    network: true\n    repositories: [\"{allowed}\"]\n"),
    );
    repo.write(
        "clusters/podinfo.yaml",
        REMOTE_RELEASE.replace("URL", &server.url),
    );
    let base = repo.commit_all("remote");
    repo.write(
        "clusters/podinfo.yaml",
        REMOTE_RELEASE
            .replace("URL", &server.url)
            .replace("replicaCount: 2", "replicaCount: 4"),
    );
    repo.commit_all("four");
    (repo, base)
}

fn packaged_podinfo() -> Option<(tempfile::TempDir, ChartServer)> {
    let (true, Some(chart)) = (helm_available(), podinfo()) else {
        return None;
    };
    let served = tempfile::tempdir().expect("served");
    helm(
        &[
            "package",
            chart.to_str().expect("utf-8"),
            "--destination",
            ".",
        ],
        served.path(),
    );
    let server = ChartServer::start(served.path().to_path_buf());
    helm(&["repo", "index", ".", "--url", &server.url], served.path());
    Some((served, server))
}

#[test]
fn an_allowed_remote_chart_is_fetched_once_then_served_from_the_cache() {
    let Some((_served, server)) = packaged_podinfo() else {
        return;
    };
    let cache = tempfile::tempdir().expect("cache");
    let (repo, base) = remote_repo(&server, &server.url);
    for run in 0..2 {
        let out = stategate_cached(
            &repo,
            &["diff", "--base", &base, "--format", "json"],
            cache.path(),
        );
        let diff = json(&out);
        assert_eq!(out.status.code(), Some(0), "run {run}: {diff:#}");
        let deployment = diff_object(&diff, "apps/v1/Deployment/web/web-podinfo");
        assert_eq!(
            deployment["changed_fields"],
            serde_json::json!(["spec.replicas"])
        );
    }
    // The index and the archive once (base and head share them), then nothing: the cache serves.
    assert_eq!(
        server.requests(),
        vec!["/index.yaml".to_string(), "/podinfo-6.14.1.tgz".to_string()]
    );
}

#[test]
fn a_remote_chart_outside_the_allowlist_is_refused_without_a_request() {
    let Some((_served, server)) = packaged_podinfo() else {
        return;
    };
    let cache = tempfile::tempdir().expect("cache");
    let (repo, base) = remote_repo(&server, "https://charts.example.com");
    let out = stategate_cached(
        &repo,
        &["check", "--base", &base, "--format", "json"],
        cache.path(),
    );
    let report = json(&out);
    assert_eq!(out.status.code(), Some(2), "{report:#}");
    let refused = findings_with(&report, "render/failed");
    assert!(
        refused.iter().any(|f| f["message"].as_str().is_some_and(
            |m| m.contains(&server.url) && m.contains("not in `render.helm.repositories`")
        )),
        "{report:#}"
    );
    assert!(server.requests().is_empty(), "{:?}", server.requests());
}

#[test]
fn values_from_a_secret_never_show_in_diff_or_check() {
    let Some((repo, base, cache)) = flux_repo() else {
        return;
    };
    let release = HELM_RELEASE.replace(
        "  values:\n    replicaCount: 2\n",
        "  valuesFrom:\n    - kind: Secret\n      name: podinfo-secret\n",
    );
    repo.write("clusters/prod/podinfo.yaml", release);
    // ui.message ends up in the Deployment's environment: a value from a Secret, in plain sight.
    repo.write(
        "clusters/prod/secret.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: podinfo-secret\n  namespace: flux-system\nstringData:\n  values.yaml: |\n    ui:\n      message: hunter2-s3cret\n",
    );
    repo.commit_all("values from a Secret");
    for command in ["diff", "check"] {
        let out = stategate_cached(
            &repo,
            &[command, "--base", &base, "--format", "json"],
            cache.path(),
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(!text.contains("hunter2-s3cret"), "{command}: {text}");
        assert!(
            text.contains("PODINFO_UI_MESSAGE") || command == "check",
            "{command}: {text}"
        );
    }
}

/// Not a timed assertion: prints the figures for the README (run with `--ignored --nocapture`).
/// 20 HelmReleases of one remote chart, all values changed, judged and diffed, cold then warm.
#[test]
#[ignore = "benchmark"]
fn benchmark_twenty_helm_releases_cold_and_warm() {
    let Some((_served, server)) = packaged_podinfo() else {
        return;
    };
    let cache = tempfile::tempdir().expect("cache");
    let repo = TestRepo::new();
    repo.write(
        ".stategate.yaml",
        format!("version: 1\nrender:\n  helm:\n    releases: true\n    network: true\n    repositories: [\"{}\"]\n", server.url),
    );
    repo.write("policies/latest.rego", NO_LATEST);
    let release = |n: usize, replicas: usize| {
        REMOTE_RELEASE
            .replace("URL", &server.url)
            .replace(
                "name: podinfo\n  namespace",
                &format!("name: podinfo-{n}\n  namespace"),
            )
            .replace("replicaCount: 2", &format!("replicaCount: {replicas}"))
    };
    for n in 0..20 {
        repo.write(&format!("clusters/app-{n}.yaml"), release(n, 2));
    }
    let base = repo.commit_all("20 releases");
    for n in 0..20 {
        repo.write(&format!("clusters/app-{n}.yaml"), release(n, 3));
    }
    repo.commit_all("values of 20 releases");
    for pass in ["cold", "warm"] {
        for command in ["check", "diff"] {
            let start = std::time::Instant::now();
            let out = stategate_cached(
                &repo,
                &[command, "--base", &base, "--format", "json"],
                cache.path(),
            );
            let elapsed = start.elapsed();
            let report = json(&out);
            assert!(out.status.code().is_some_and(|c| c < 2), "{report:#}");
            eprintln!("{pass} {command}: {:.2} s", elapsed.as_secs_f64());
        }
    }
    assert_eq!(server.requests().len(), 2, "{:?}", server.requests());
}

const APPLICATION_SET: &str = "apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata:
  name: podinfo
  namespace: argocd
spec:
  goTemplate: true
  generators:
    - list:
        elements:
          - env: staging
            replicas: \"2\"
          - env: prod
            replicas: \"3\"
  template:
    metadata:
      name: 'podinfo-{{.env}}'
    spec:
      project: default
      source:
        repoURL: https://git.example.com/this-repo.git
        path: charts/podinfo
        helm:
          releaseName: 'podinfo-{{.env}}'
          parameters:
            - name: replicaCount
              value: '{{.replicas}}'
      destination:
        namespace: '{{.env}}'
";

#[test]
fn an_application_set_list_generator_renders_each_generated_application() {
    let (true, Some(chart)) = (helm_available(), podinfo()) else {
        return;
    };
    let cache = tempfile::tempdir().expect("cache");
    let repo = TestRepo::new();
    copy_dir(&chart, &repo, "charts/podinfo");
    repo.write(
        ".stategate.yaml",
        "version: 1\nrender:\n  helm:\n    releases: true\n",
    );
    repo.write("apps/podinfo-set.yaml", APPLICATION_SET);
    let base = repo.commit_all("appset");
    repo.write(
        "apps/podinfo-set.yaml",
        APPLICATION_SET.replace("replicas: \"3\"", "replicas: \"0\""),
    );
    repo.commit_all("prod to zero");
    let out = stategate_cached(
        &repo,
        &["diff", "--base", &base, "--format", "json"],
        cache.path(),
    );
    let diff = json(&out);
    let changed: Vec<&str> = diff["objects"]
        .as_array()
        .expect("objects")
        .iter()
        .filter(|o| o["status"] == "changed")
        .filter_map(|o| o["id"].as_str())
        .collect();
    // Prod's release only; staging's generated Application renders the same at both sides.
    assert!(
        changed.contains(&"apps/v1/Deployment/prod/podinfo-prod"),
        "{diff:#}"
    );
    assert!(
        !changed.iter().any(|id| id.contains("/staging/")),
        "{diff:#}"
    );
}
