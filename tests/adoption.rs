//! Real Flux and Argo CD repositories of the corpus, unchanged, through `check --all` with the
//! default config (the embedded CRD catalog on): what a team adopting stategate sees on its first
//! run. The counts per rule are asserted, and every error is explained.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::copy_tree;
use common::git::TestRepo;
use common::run::findings_with;
use serde_json::Value;

fn check_all(repo: &TestRepo, format: &str) -> (Option<i32>, String) {
    check_all_with(repo, format, &[])
}

fn check_all_with(repo: &TestRepo, format: &str, extra: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_stategate"))
        .current_dir(repo.path())
        .args(["check", "--all", "--format", format])
        .args(extra)
        .env("NO_COLOR", "1")
        .output()
        .expect("run stategate");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn corpus_repo(name: &str) -> Option<TestRepo> {
    let corpus = common::corpus()?;
    let repo = TestRepo::new();
    copy_tree(
        &corpus.join("gitops-repos").join(name),
        Path::new(""),
        &repo,
    );
    repo.commit_all("snapshot");
    Some(repo)
}

/// `rule severity` → count.
fn counts(json: &str) -> BTreeMap<String, usize> {
    let report: Value = serde_json::from_str(json).unwrap();
    let mut counts = BTreeMap::new();
    for f in report["findings"].as_array().unwrap() {
        let key = format!(
            "{} {}",
            f["rule"].as_str().unwrap(),
            f["severity"].as_str().unwrap()
        );
        *counts.entry(key).or_default() += 1;
    }
    counts
}

fn expected(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect()
}

/// xunholy keeps 11 SOPS-encrypted Secrets; Flux decrypts them before applying, so the `sops`
/// block is no unknown field. Without the catalog what remains is custom resources without a
/// schema (no CRDs in the repository) and two documents kubectl and kustomize read differently.
#[test]
fn xunholy_sops_secrets_are_judged_as_flux_applies_them() {
    let Some(repo) = corpus_repo("xunholy-k8s-gitops") else {
        return;
    };
    let off = catalog_off();
    let (code, json) = check_all_with(&repo, "json", &["--config", off.path().to_str().unwrap()]);
    assert_eq!(code, Some(0), "{json}");
    assert_eq!(
        counts(&json),
        expected(&[
            ("load/ambiguous warning", 2),
            ("schema/unknown-kind note", 79),
            ("schema/unknown-kind warning", 452),
        ])
    );
    assert!(!json.contains("unknown field `sops`"));
}

/// A config file (outside the repository) that turns the catalog off: the "before" side.
fn catalog_off() -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), "schemas:\n  catalog: false\n").unwrap();
    file
}

/// Why an error the catalog (or anything else) reports on an unchanged corpus repository is
/// right: matched on rule, the kind of the object (or the file) and a piece of the message.
struct Explained {
    rule: &'static str,
    subject: &'static str,
    message: &'static str,
    count: usize,
    why: &'static str,
}

const EXPLAINED: &[Explained] = &[
    Explained {
        rule: "schema/unknown-field",
        subject: "AlertmanagerConfig",
        message: "unknown field `monospace` in spec.receivers[2].pushoverConfigs[0]",
        count: 2,
        why: "onedr0p and bjw-s, the same file; catalog older than the CRD the repository installs: `monospace` is a newer \
              prometheus-operator Pushover field than the catalog's AlertmanagerConfig schema has; \
              the CRD comes from the kube-prometheus-stack chart, not a file of the repository",
    },
    Explained {
        rule: "schema/unknown-field",
        subject: "ReplicationSource",
        message: "unknown field `kopia` in spec",
        count: 24,
        why: "catalog older than (another fork of) the CRD the repository installs: xunholy runs \
              the volsync-perfectra1n chart (values.yaml, ocirepository.yaml), whose CRD adds \
              `kopia`; the catalog has upstream volsync (rclone, restic, rsync, syncthing)",
    },
    Explained {
        rule: "schema/unknown-field",
        subject: "ReplicationDestination",
        message: "unknown field `kopia` in spec",
        count: 1,
        why: "same volsync fork as ReplicationSource",
    },
    Explained {
        rule: "schema/unknown-field",
        subject: "Composition",
        message: "unknown field `resources` in spec",
        count: 1,
        why: "true error upstream: the repository installs Crossplane 2.1.3 \
              (crossplane/app/ocirepository.yaml), whose Composition has only `mode: Pipeline`; \
              the `resources`/`patchSets` (patch-and-transform) mode was removed in v2",
    },
    Explained {
        rule: "schema/unknown-field",
        subject: "Composition",
        message: "unknown field `patchSets` in spec",
        count: 1,
        why: "as `resources` above: removed in Crossplane v2",
    },
    Explained {
        rule: "schema/required",
        subject: "Kustomization",
        message: "spec: missing required field `interval`",
        count: 26,
        why: "true error upstream, as the files stand: xunholy's root Flux Kustomization \
              (kubernetes/clusters/cluster-00/ks.yaml) completes its children through \
              `spec.patches`; the gate applies that patch to the children its path \
              (apps/overlays/cluster-00) builds (59 of them relied on it); these 21 ks.yaml files (26 Kustomizations) are \
              ones the overlay comments out or omits (disabled apps), so no Flux Kustomization \
              builds or patches them, and as manifests they lack the field the CRD requires",
    },
    Explained {
        rule: "schema/required",
        subject: "Kustomization",
        message: "spec: missing required field `prune`",
        count: 26,
        why: "as `interval` above",
    },
    Explained {
        rule: "load/ambiguous",
        subject: "",
        message: "the tag `!Find` on a collection",
        count: 49,
        why: "authentik blueprints carry authentik's own YAML tags; what they resolve to is \
              authentik's business, so the gate refuses to guess (fails closed)",
    },
    Explained {
        rule: "load/ambiguous",
        subject: "",
        message: "the tag `!Env`",
        count: 14,
        why: "authentik blueprint tag, as `!Find`",
    },
    Explained {
        rule: "load/ambiguous",
        subject: "",
        message: "the tag `!KeyOf`",
        count: 14,
        why: "authentik blueprint tag, as `!Find`",
    },
    Explained {
        rule: "load/syntax",
        subject: "",
        message: "YAML syntax error",
        count: 2,
        why: "true error upstream: the two theepicsaxguy files the corpus README lists as broken \
              (a blueprint with a bad indent, a job whose literal block drops to column 0)",
    },
];

/// The kind in an object id `group/version/Kind/namespace/name` (`v1/Kind/ns/name` for core).
fn kind_of(object: &str) -> &str {
    let parts: Vec<&str> = object.split('/').collect();
    parts.len().checked_sub(3).map_or("", |i| parts[i])
}

/// Every error of a report matched by one explanation, and every explanation used as often as
/// it says (across the reports given).
fn assert_every_error_explained(reports: &[(&str, String)]) {
    let mut used = vec![0usize; EXPLAINED.len()];
    for (name, json) in reports {
        let report: Value = serde_json::from_str(json).unwrap();
        for f in report["findings"].as_array().unwrap() {
            if f["severity"] != "error" {
                continue;
            }
            let kind = kind_of(f["object"].as_str().unwrap_or(""));
            let message = f["message"].as_str().unwrap();
            let found = EXPLAINED.iter().position(|e| {
                f["rule"] == e.rule && kind == e.subject && message.contains(e.message)
            });
            let Some(i) = found else {
                panic!("{name}: unexplained error: {f}");
            };
            used[i] += 1;
        }
    }
    for (e, n) in EXPLAINED.iter().zip(used) {
        assert_eq!(
            n, e.count,
            "{} {} `{}`: {}",
            e.rule, e.subject, e.message, e.why
        );
    }
}

/// A repository, its expected exit code and its counts per `rule severity`.
type Case = (&'static str, Option<i32>, &'static [(&'static str, usize)]);

/// The four cluster repositories, default config plus the catalog: counts per rule, and every
/// error explained above. Most `schema/unknown-kind` warnings left are home-operations.com
/// operators (kopiur, litellm, miroir) that no public catalog has.
#[test]
fn four_cluster_repositories_with_the_catalog() {
    let cases: [Case; 4] = [
        (
            "onedr0p-home-ops",
            Some(1),
            &[
                ("load/ambiguous warning", 2),
                ("schema/unknown-field error", 1),
                ("schema/unknown-kind note", 7),
                ("schema/unknown-kind warning", 67),
            ],
        ),
        (
            "bjw-s-labs-home-ops",
            Some(1),
            &[
                ("load/ambiguous warning", 2),
                ("schema/unknown-field error", 1),
                ("schema/unknown-kind note", 11),
                ("schema/unknown-kind warning", 117),
            ],
        ),
        (
            "xunholy-k8s-gitops",
            Some(1),
            &[
                ("load/ambiguous warning", 2),
                ("schema/required error", 52),
                ("schema/unknown-field error", 27),
                ("schema/unknown-kind note", 79),
                ("schema/unknown-kind warning", 6),
            ],
        ),
        (
            // Exit 2: two files are broken YAML upstream, and blueprint tags are undecidable.
            "theepicsaxguy-homelab",
            Some(2),
            &[
                ("load/ambiguous error", 77),
                ("load/ambiguous warning", 223),
                ("load/syntax error", 2),
                ("schema/unknown-kind note", 57),
                ("schema/unknown-kind warning", 1),
            ],
        ),
    ];
    let mut reports = Vec::new();
    for (name, want_code, want) in cases {
        let Some(repo) = corpus_repo(name) else {
            return;
        };
        let (code, json) = check_all(&repo, "json");
        assert_eq!(code, want_code, "{name}");
        assert_eq!(counts(&json), expected(want), "{name}");
        reports.push((name, json));
    }
    assert_every_error_explained(&reports);
}

/// The custom resources of every corpus repository, judged without and with the catalog:
/// `schema/unknown-kind` warnings are the objects with an apiVersion and kind that no schema
/// covered. Measured here: 1,719 before, 213 after (1,506 more custom resources validated).
#[test]
fn the_catalog_validates_the_corpus_custom_resources() {
    let rows: [(&str, usize, usize); 10] = [
        ("argoproj-argo-cd", 6, 5),
        ("argoproj-argocd-example-apps", 0, 0),
        ("bjw-s-labs-home-ops", 512, 117),
        ("fluxcd-flux2-kustomize-helm-example", 17, 0),
        ("fluxcd-flux2-multi-tenancy", 12, 0),
        ("kubernetes-examples", 18, 14),
        ("onedr0p-home-ops", 404, 67),
        ("stefanprodan-podinfo", 5, 3),
        ("theepicsaxguy-homelab", 293, 1),
        ("xunholy-k8s-gitops", 452, 6),
    ];
    let off = catalog_off();
    let off = off.path().to_str().unwrap();
    let unknown = |json: &str| counts(json).get("schema/unknown-kind warning").copied();
    let mut measured = Vec::new();
    for (name, _, _) in rows {
        let Some(repo) = corpus_repo(name) else {
            return;
        };
        let (_, before) = check_all_with(&repo, "json", &["--config", off]);
        let (_, after) = check_all(&repo, "json");
        let row = (
            name,
            unknown(&before).unwrap_or(0),
            unknown(&after).unwrap_or(0),
        );
        eprintln!(
            "{:40} unknown custom resources: {:4} -> {:4}",
            row.0, row.1, row.2
        );
        measured.push(row);
    }
    assert_eq!(measured, rows);
}

/// A repository that ships a newer CRD than the catalog's is judged by its own: a field the
/// catalog's HelmRelease v2 lacks passes once the repository's CRD defines it, and the catalog
/// still catches the same typo in a repository without the CRD.
#[test]
fn a_repository_crd_wins_over_the_catalog() {
    let release = "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: web\n  namespace: apps\nspec:\n  interval: 5m\n  chart:\n    spec:\n      chart: web\n      sourceRef: {kind: HelmRepository, name: charts}\n  rolloutStrategy: canary\n";
    let repo = TestRepo::new();
    repo.write("apps/web.yaml", release);
    repo.commit_all("release");
    let (code, json) = check_all(&repo, "json");
    assert_eq!(code, Some(1), "{json}");
    assert!(
        json.contains("unknown field `rolloutStrategy` in spec"),
        "{json}"
    );
    let off = catalog_off();
    let (code, json) = check_all_with(&repo, "json", &["--config", off.path().to_str().unwrap()]);
    assert_eq!(code, Some(0), "schemas.catalog: false: {json}");
    assert!(json.contains("schema/unknown-kind"), "{json}");

    repo.write(
        "crds/helmrelease-crd.yaml",
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: helmreleases.helm.toolkit.fluxcd.io\nspec:\n  group: helm.toolkit.fluxcd.io\n  names: {kind: HelmRelease, plural: helmreleases}\n  scope: Namespaced\n  versions:\n    - name: v2\n      served: true\n      storage: true\n      schema:\n        openAPIV3Schema:\n          type: object\n          properties:\n            spec:\n              type: object\n              required: [interval]\n              properties:\n                interval: {type: string}\n                chart: {type: object, x-kubernetes-preserve-unknown-fields: true}\n                rolloutStrategy: {type: string, enum: [canary, recreate]}\n",
    );
    repo.commit_all("newer CRD");
    let (code, json) = check_all(&repo, "json");
    assert_eq!(code, Some(0), "the repository's CRD judges: {json}");
    assert!(!json.contains("rolloutStrategy"), "{json}");
}

/// podinfo's CronJobs mount scripts with `defaultMode: 0755`: octal is what a file mode means.
#[test]
fn podinfo_file_modes_are_not_ambiguous() {
    let Some(repo) = corpus_repo("stefanprodan-podinfo") else {
        return;
    };
    let (code, json) = check_all(&repo, "json");
    assert_eq!(code, Some(0), "{json}");
    assert_eq!(
        counts(&json),
        expected(&[
            ("schema/unknown-kind note", 3),
            ("schema/unknown-kind warning", 3),
        ])
    );
}

/// A mode elsewhere still warns: only `mode` and `defaultMode` mean a file mode.
#[test]
fn octal_outside_file_modes_still_warns() {
    let repo = TestRepo::new();
    repo.write(
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  port: 0755\n",
    );
    repo.write(
        "pod.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers: [{name: c, image: x:1}]\n  volumes:\n    - name: s\n      configMap:\n        name: c\n        defaultMode: 0755\n        items: [{key: a, path: a, mode: 0600}]\n",
    );
    repo.commit_all("files");
    let (_, json) = check_all(&repo, "json");
    let report: Value = serde_json::from_str(&json).unwrap();
    let ambiguous: Vec<&Value> = findings_with(&report, "load/ambiguous-scalar");
    assert_eq!(ambiguous.len(), 1, "{json}");
    assert_eq!(ambiguous[0]["location"]["file"], "cm.yaml");
}

/// A SOPS ciphertext is opaque and never printed, even when a check quotes it.
#[test]
fn sops_ciphertexts_are_masked_in_every_format() {
    let repo = TestRepo::new();
    let cipher = "ENC[AES256_GCM,data:c2VjcmV0,iv:aXY=,tag:dGFn,type:int]";
    repo.write(
        "app.yaml",
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: {cipher}\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec:\n      containers: [{{name: web, image: 'nginx:1'}}]\nsops:\n  mac: ENC[AES256_GCM,data:bWFj,type:str]\n  lastmodified: \"2025-12-22T01:41:08Z\"\n  version: 3.11.0\n"
        ),
    );
    repo.commit_all("encrypted");
    for format in ["human", "json", "sarif", "junit", "github"] {
        let (code, out) = check_all(&repo, format);
        // The replicas field is an integer to the cluster; a string there is still an error.
        assert_eq!(code, Some(1), "{format}: {out}");
        assert!(!out.contains("c2VjcmV0"), "{format}: {out}");
        assert!(!out.contains("unknown field `sops`"), "{format}: {out}");
    }
}
