//! Flux post-build substitution: objects under the `path` of a Flux `Kustomization` are judged as
//! Flux applies them, with `${VAR}` replaced from `postBuild.substitute` and the ConfigMaps and
//! Secrets of `postBuild.substituteFrom`. The real binary on real git repositories.

mod common;

use common::git::TestRepo;
use common::run::{findings_with, stategate};

const FLUX_KUSTOMIZATION: &str = "apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: web
  namespace: flux-system
spec:
  interval: 10m
  path: ./apps/web
  prune: true
  sourceRef:
    kind: GitRepository
    name: flux-system
  postBuild:
    substitute:
      APP: web
    substituteFrom:
      - kind: ConfigMap
        name: cluster-vars
      - kind: Secret
        name: cluster-secrets
";

const CLUSTER_VARS: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: cluster-vars
  namespace: flux-system
data:
  REGISTRY: ghcr.io/acme
";

/// `DB_PASSWORD` is `s3cr3t-Pa55w0rd`, base64-encoded as a Secret's data is.
const CLUSTER_SECRETS: &str = "apiVersion: v1
kind: Secret
metadata:
  name: cluster-secrets
  namespace: flux-system
data:
  DB_PASSWORD: czNjcjN0LVBhNTV3MHJk
";
const PASSWORD: &str = "s3cr3t-Pa55w0rd";

fn deployment(image: &str, env_value: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: ${{APP}}
  labels: {{app: web}}
spec:
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
        - name: web
          image: {image}
          env:
            - name: DB
              value: \"{env_value}\"
"
    )
}

fn policy(name: &str) -> String {
    std::fs::read_to_string(format!("{}/policies/{name}", env!("CARGO_MANIFEST_DIR")))
        .expect("built-in policy")
}

/// A Flux repository whose web app is pinned at the base revision.
fn flux_repo(extra_policy: Option<&str>) -> (TestRepo, String) {
    let repo = TestRepo::new();
    repo.write("clusters/prod/web.yaml", FLUX_KUSTOMIZATION);
    repo.write("clusters/prod/vars.yaml", CLUSTER_VARS);
    repo.write("clusters/prod/secrets.yaml", CLUSTER_SECRETS);
    repo.write("policies/images.rego", policy("images.rego"));
    repo.write("policies/lib_k8s.rego", policy("lib_k8s.rego"));
    if let Some(extra) = extra_policy {
        repo.write("policies/extra.rego", extra);
    }
    repo.write(
        "apps/web/deployment.yaml",
        deployment("${REGISTRY}/web:1.0", "plain"),
    );
    let base = repo.commit_all("flux app");
    (repo, base)
}

fn check_json(repo: &TestRepo, base: &str) -> (i32, serde_json::Value, String) {
    let out = stategate(repo, &["check", "--base", base, "--format", "json"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    (out.status.code().expect("exit code"), json, text)
}

#[test]
fn a_latest_default_meets_the_latest_policy() {
    let (repo, base) = flux_repo(None);
    repo.write(
        "apps/web/deployment.yaml",
        deployment("${REGISTRY}/web:${TAG:=latest}", "plain"),
    );
    repo.commit_all("follow latest");
    let (code, report, text) = check_json(&repo, &base);
    assert_eq!(code, 1, "{text}");
    let denied = findings_with(&report, "policy/deny");
    assert_eq!(denied.len(), 1, "{text}");
    let message = denied[0]["message"].as_str().unwrap();
    assert!(
        message.contains("Deployment web") && message.contains("\"ghcr.io/acme/web:latest\""),
        "{message}"
    );
    assert_eq!(denied[0]["location"]["file"], "apps/web/deployment.yaml");
}

#[test]
fn a_value_from_the_configmap_passes() {
    let (repo, base) = flux_repo(None);
    repo.write(
        "apps/web/deployment.yaml",
        deployment("${REGISTRY}/web:${TAG:=1.1}", "plain"),
    );
    repo.commit_all("bump");
    let (code, report, text) = check_json(&repo, &base);
    assert_eq!(code, 0, "{text}");
    assert!(
        findings_with(&report, "render/unset-variable").is_empty(),
        "{text}"
    );
}

#[test]
fn unresolved_variables_are_a_warning_naming_them() {
    let (repo, base) = flux_repo(None);
    repo.write(
        "apps/web/deployment.yaml",
        deployment("${REGISTRY}/web:${VERSION}", "${MISSING_TOO}"),
    );
    repo.commit_all("unset variables");
    let (_, report, text) = check_json(&repo, &base);
    let warnings = findings_with(&report, "render/unset-variable");
    assert_eq!(warnings.len(), 1, "{text}");
    assert_eq!(warnings[0]["severity"], "warning");
    assert_eq!(
        warnings[0]["metadata"]["variables"],
        serde_json::json!(["MISSING_TOO", "VERSION"])
    );
    let message = warnings[0]["message"].as_str().unwrap();
    assert!(
        message.contains("MISSING_TOO, VERSION") && message.contains("flux-system/web"),
        "{message}"
    );
}

/// A policy that quotes a container's environment values in its message.
const ENV_POLICY: &str = "package main

deny contains msg if {
  some container in input.spec.template.spec.containers
  some env in container.env
  msg := sprintf(\"env %s of %s is %s\", [env.name, container.name, env.value])
}
";

#[test]
fn values_from_secrets_never_reach_any_output() {
    let (repo, base) = flux_repo(Some(ENV_POLICY));
    repo.write(
        "apps/web/deployment.yaml",
        deployment("${REGISTRY}/web:1.1", "${DB_PASSWORD}"),
    );
    repo.commit_all("use the password");
    let (code, report, text) = check_json(&repo, &base);
    assert_eq!(code, 1, "{text}");
    // The substituted value was judged (the policy saw it), and masked in the message.
    let denied = findings_with(&report, "policy/deny");
    assert!(
        denied
            .iter()
            .any(|f| f["message"] == "env DB of web is ***"),
        "{text}"
    );
    for format in ["human", "json", "sarif", "junit", "github"] {
        let out = stategate(&repo, &["check", "--base", &base, "--format", format]);
        let shown = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        for secret in [PASSWORD, "czNjcjN0LVBhNTV3MHJk"] {
            assert!(
                !shown.contains(secret),
                "{format} printed {secret}:\n{shown}"
            );
        }
    }
}

#[test]
fn objects_outside_the_flux_path_and_escaped_variables_are_left_as_written() {
    let (repo, base) = flux_repo(None);
    // Outside ./apps/web: Flux does not substitute here, so `${TAG:=latest}` is a literal tag.
    repo.write(
        "apps/other/deployment.yaml",
        deployment("ghcr.io/acme/other:${TAG:=latest}", "plain"),
    );
    // `$${TAG}` is Flux's escape: the object keeps `${TAG}`, no variable is read.
    repo.write(
        "apps/web/deployment.yaml",
        deployment("${REGISTRY}/web:1.1", "$${TAG}"),
    );
    repo.commit_all("outside and escaped");
    let (code, report, text) = check_json(&repo, &base);
    assert_eq!(code, 0, "{text}");
    assert!(
        findings_with(&report, "render/unset-variable").is_empty(),
        "{text}"
    );
}

#[test]
fn changing_only_a_variable_rejudges_the_objects_that_use_it() {
    let (repo, _) = flux_repo(None);
    let vars = |tag: &str| format!("{CLUSTER_VARS}  TAG: \"{tag}\"\n");
    repo.write("clusters/prod/vars.yaml", vars("1.0"));
    repo.write(
        "apps/web/deployment.yaml",
        deployment("${REGISTRY}/web:${TAG}", "plain"),
    );
    let base = repo.commit_all("tag from the cluster variables");
    // Git shows no change to the Deployment; the cluster gets a new image all the same.
    repo.write("clusters/prod/vars.yaml", vars("latest"));
    repo.commit_all("follow latest");
    let (code, report, text) = check_json(&repo, &base);
    assert_eq!(code, 1, "{text}");
    let denied = findings_with(&report, "policy/deny");
    assert_eq!(denied.len(), 1, "{text}");
    assert_eq!(denied[0]["location"]["file"], "apps/web/deployment.yaml");
    assert!(
        denied[0]["message"]
            .as_str()
            .unwrap()
            .contains("\"ghcr.io/acme/web:latest\""),
        "{text}"
    );
}

#[test]
fn shared_components_are_judged_with_each_kustomizations_variables() {
    let repo = TestRepo::new();
    repo.write("policies/images.rego", policy("images.rego"));
    repo.write("policies/lib_k8s.rego", policy("lib_k8s.rego"));
    // Two apps, as home-ops repositories lay them out: `ks.yaml` beside `app/`, a shared component.
    for (app, tag) in [("web", "1.0"), ("api", "latest")] {
        repo.write(
            &format!("apps/{app}/ks.yaml"),
            format!(
                "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: {app}\nspec:\n  path: ./apps/{app}/app\n  components: [../../../components/backup]\n  postBuild:\n    substitute:\n      APP: {app}\n      BACKUP_TAG: \"{tag}\"\n"
            ),
        );
        repo.write(
            &format!("apps/{app}/app/kustomization.yaml"),
            "resources: [configmap.yaml]\n",
        );
        repo.write(
            &format!("apps/{app}/app/configmap.yaml"),
            format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {app}\ndata:\n  a: b\n"),
        );
    }
    repo.write(
        "components/backup/kustomization.yaml",
        "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\nresources: [cronjob.yaml]\n",
    );
    let cronjob = |image: &str| {
        format!(
            "apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: ${{APP}}-backup\nspec:\n  schedule: \"@daily\"\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: OnFailure\n          containers:\n            - name: backup\n              image: {image}\n"
        )
    };
    repo.write(
        "components/backup/cronjob.yaml",
        cronjob("restic/restic:0.17"),
    );
    let base = repo.commit_all("apps");
    repo.write(
        "components/backup/cronjob.yaml",
        cronjob("restic/restic:${BACKUP_TAG:=0.17}"),
    );
    repo.commit_all("tag per app");
    let (code, report, text) = check_json(&repo, &base);
    assert_eq!(code, 1, "{text}");
    let denied: Vec<&str> = findings_with(&report, "policy/deny")
        .iter()
        .map(|f| f["message"].as_str().unwrap())
        .collect();
    // Only api's copy follows latest; web's is pinned.
    assert_eq!(denied.len(), 1, "{text}");
    assert!(
        denied[0].contains("CronJob api-backup") && denied[0].contains("restic/restic:latest"),
        "{text}"
    );
}
