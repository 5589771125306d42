//! Every YAML and JSON file of the real GitOps repositories in the corpus goes through the loader:
//! none may panic, Helm templates are recognised, and the files that are really broken upstream
//! are reported at the line where they break.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use stategate::finding::Rule;
use stategate::load::{LoadOptions, is_helm_template, load_file};

struct Outcome {
    documents: usize,
    helm_templates: Vec<String>,
    /// file → (rule, line) of every error finding.
    errors: BTreeMap<String, Vec<(Rule, u32)>>,
}

fn load_corpus(repos: &Path) -> Outcome {
    let mut outcome = Outcome {
        documents: 0,
        helm_templates: Vec::new(),
        errors: BTreeMap::new(),
    };
    for path in common::manifest_files(repos) {
        let rel = path
            .strip_prefix(repos)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let bytes = std::fs::read(&path).unwrap();
        if is_helm_template(&rel, &String::from_utf8_lossy(&bytes)) {
            outcome.helm_templates.push(rel);
            continue;
        }
        let loaded = load_file(&rel, &bytes, &LoadOptions::default());
        outcome.documents += loaded.documents.len();
        let errors: Vec<(Rule, u32)> = loaded
            .findings
            .iter()
            .filter(|f| f.severity == stategate::finding::Severity::Error)
            .map(|f| {
                (
                    f.rule,
                    f.location.as_ref().and_then(|l| l.line).unwrap_or(0),
                )
            })
            .collect();
        if !errors.is_empty() {
            outcome.errors.insert(rel, errors);
        }
    }
    outcome
}

#[test]
fn every_gitops_file_loads_without_panic_and_the_broken_ones_are_located() {
    let Some(corpus) = common::corpus() else {
        return;
    };
    let outcome = load_corpus(&corpus.join("gitops-repos"));
    // Issue 8: what kubectl and kustomize read differently is its own blocking error. In the corpus
    // that is Go-template placeholders (`{{cell}}` is a flow mapping used as a key, which kubectl
    // refuses) and the custom tags of a file that already fails to parse. Custom tags in files that
    // are no Kubernetes objects (Home Assistant, recyclarr, authentik blueprints) only warn.
    let ambiguous: Vec<&str> = outcome
        .errors
        .iter()
        .filter(|(_, errors)| errors.iter().any(|(rule, _)| *rule == Rule::LoadAmbiguous))
        .map(|(file, _)| file.as_str())
        .collect();
    let archived = "kubernetes-examples/_archived";
    let authentik = "theepicsaxguy-homelab/k8s/infrastructure/auth/authentik";
    assert_eq!(
        ambiguous,
        vec![
            format!("{archived}/newrelic-infrastructure/newrelic-config-template.yaml"),
            format!("{archived}/newrelic/newrelic-config-template.yaml"),
            format!("{archived}/storage/vitess/etcd-controller-template.yaml"),
            format!("{archived}/storage/vitess/etcd-service-template.yaml"),
            format!("{archived}/storage/vitess/vtgate-controller-template.yaml"),
            format!("{authentik}/extra/blueprints/apps-media.yaml"),
        ]
    );
    let found: Vec<(&str, Vec<(Rule, u32)>)> = outcome
        .errors
        .iter()
        .map(|(file, errors)| {
            let errors: Vec<(Rule, u32)> = errors
                .iter()
                .filter(|(rule, _)| *rule != Rule::LoadAmbiguous)
                .copied()
                .collect();
            (file.as_str(), errors)
        })
        .filter(|(_, errors)| !errors.is_empty())
        .collect();
    assert_eq!(
        found,
        vec![
            // Real duplicate keys upstream (`replicas` twice in a Deployment spec, `type` twice in a
            // Secret): kubectl keeps the last value, so these are errors, not syntax failures.
            (
                &*format!("{archived}/openshift-origin/etcd-controller.yaml"),
                vec![(Rule::LoadDuplicateKey, 12)]
            ),
            (
                &*format!("{archived}/openshift-origin/etcd-discovery-controller.yaml"),
                vec![(Rule::LoadDuplicateKey, 12)]
            ),
            (
                &*format!("{archived}/openshift-origin/openshift-controller.yaml"),
                vec![(Rule::LoadDuplicateKey, 12)]
            ),
            (
                &*format!(
                    "{archived}/persistent-volume-provisioning/quobyte/quobyte-admin-secret.yaml"
                ),
                vec![(Rule::LoadDuplicateKey, 9)]
            ),
            (
                &*format!("{archived}/volumes/scaleio/sc-pvc.yaml"),
                vec![(Rule::LoadDuplicateKey, 12)]
            ),
            // The two files the corpus README calls really broken. PyYAML puts the problem at the
            // same lines: the bad indent at 405, and for the literal block that drops to column 0
            // PyYAML says "while scanning a simple key (line 115) could not find expected ':'
            // (line 116)"; we report the problem line, 116.
            (
                &*format!("{authentik}/extra/blueprints/apps-media.yaml"),
                vec![(Rule::LoadSyntax, 405)]
            ),
            (
                &*format!("{authentik}/recover/12-post-cluster-configuration-job.yaml"),
                vec![(Rule::LoadSyntax, 116)]
            ),
        ]
    );
    // PyYAML cannot read 45 files; we read all but the two above, because the rest are legal YAML
    // PyYAML refuses (`=` values, a redefined anchor, custom tags such as `!Find`) or templates:
    // 28 Helm chart templates are recognised and skipped, the kubernetes/examples
    // `*-template.yaml` files are valid YAML and load.
    assert_eq!(outcome.helm_templates.len(), 28);
    assert!(
        outcome
            .helm_templates
            .iter()
            .all(|p| p.contains("templates/"))
    );
    assert_eq!(outcome.documents, 3377);
}

/// The whole pipeline over every corpus repository, as `stategate check --all` would run it.
#[test]
fn the_gate_finds_the_real_mistakes_in_the_corpus_at_their_lines() {
    use stategate::change::{Action, ChangeSet, FileChange};
    use stategate::gate::Gate;
    use stategate::tree::{Content, DirTree, MemTree};

    let Some(corpus) = common::corpus() else {
        return;
    };
    let repos = corpus.join("gitops-repos");
    let files: Vec<FileChange> = common::manifest_files(&repos)
        .into_iter()
        .map(|path| {
            let after = Content::in_memory(std::fs::read(&path).unwrap());
            let relative = path.strip_prefix(&repos).unwrap().to_string_lossy();
            FileChange::new(relative.as_ref(), Action::Added, None, Some(after))
        })
        .collect();
    let sops_files: Vec<(String, u32)> = files
        .iter()
        .filter_map(|f| {
            let bytes = f.after().unwrap().read(&f.path).unwrap();
            let text = String::from_utf8_lossy(&bytes);
            // Helm values files are encrypted with SOPS too, but they are not cluster objects.
            if !text.lines().any(|l| l == "kind: Secret") {
                return None;
            }
            let line = text.lines().position(|l| l.starts_with("sops:"))?;
            Some((f.path.to_string(), line as u32 + 1))
        })
        .collect();
    // 15 files carry `sops:`; 9 of them are Secrets.
    assert_eq!(sops_files.len(), 9);
    let change = ChangeSet {
        files,
        ..ChangeSet::default()
    };
    let gate = Gate::open(Box::new(MemTree::empty("no config")), None)
        .unwrap_or_else(|r| panic!("{:?}", r.findings));
    let report = gate.check(&change, &DirTree::new(&repos, "corpus"));
    let at = |rule: Rule, file: &str| -> Vec<u32> {
        report
            .findings
            .iter()
            .filter(|f| f.rule == rule && f.location.as_ref().is_some_and(|l| l.file == file))
            .filter_map(|f| f.location.as_ref().and_then(|l| l.line))
            .collect()
    };
    // SOPS-encrypted Secrets carry a top-level `sops:` key that Flux removes when it decrypts
    // them before applying: judged as applied, it is no unknown field (issue 10).
    for (file, line) in &sops_files {
        assert!(
            !at(Rule::SchemaUnknownField, file).contains(line),
            "{file}:{line}"
        );
    }
    let typo = "kubernetes-examples/_archived/volumes/scaleio/pod.yaml";
    assert_eq!(at(Rule::SchemaUnknownField, typo), vec![17]);
    let message = report
        .findings
        .iter()
        .find(|f| {
            f.rule == Rule::SchemaUnknownField
                && f.location.as_ref().is_some_and(|l| l.file == typo)
        })
        .map(|f| f.message.clone())
        .unwrap();
    assert!(message.contains("protectionDoamin"), "{message}");
    assert_eq!(
        at(
            Rule::LoadSyntax,
            "theepicsaxguy-homelab/k8s/infrastructure/auth/authentik/extra/blueprints/apps-media.yaml"
        ),
        vec![405]
    );
}
