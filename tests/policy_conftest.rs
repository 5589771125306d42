//! conftest compatibility: conftest's example inputs (corpus `conftest-examples/`), judged by
//! policies we wrote to the behaviour conftest's acceptance tests describe
//! (`tests/fixtures/policy/conftest/`), give the same verdicts and messages.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;
use stategate::change::Action;
use stategate::config::PoliciesConfig;
use stategate::finding::{Finding, Rule, Verdict};
use stategate::load::{Document, LoadOptions, load_file};
use stategate::policy::verify::{Outcome, run_tests};
use stategate::policy::{ChangeInput, ChangedFile, FileContext, PolicySet};
use stategate::tree::MemTree;

const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/policy/conftest"
);

/// Acceptance tests that exercise something other than judging YAML/JSON with Rego, and why.
const SKIPPED: &[(&str, &str)] = &[
    (
        "Not fail when passed an explicit blank filename",
        "CLI argument handling",
    ),
    (
        "Fail when testing with no policies path",
        "stategate runs without Rego policies when policies.paths is absent (DESIGN: `policies/` if present)",
    ),
    (
        "when testing a YAML document via stdin, default parser should be yaml if no parser flag is passed",
        "stdin input",
    ),
    ("Pass when testing a YAML document via stdin", "stdin input"),
    ("Test command has trace flag", "no --trace"),
    (
        "Test command with all namespaces flag",
        "Dockerfile input: not parsed",
    ),
    (
        "Test command works with nested namespaces",
        "HCL input: not parsed",
    ),
    (
        "Test command matches a single namespace literally",
        "Dockerfile input: not parsed",
    ),
    (
        "Test command matches every namespace with a wildcard",
        "Dockerfile input: not parsed",
    ),
    (
        "Test command matches namespaces with a wildcard prefix",
        "Dockerfile input: not parsed",
    ),
    ("Supports print() output", "print() output is not rendered"),
    ("Can parse hcl1 files", "HCL input: not parsed"),
    ("Can parse toml files", "TOML input: not parsed"),
    ("Can parse hcl files", "HCL input: not parsed"),
    (
        "Can combine configs and reference by file",
        "HCL input: not parsed",
    ),
    ("Can parse docker files", "Dockerfile input: not parsed"),
    ("Can disable color", "output colouring"),
    ("Output results only once", "conftest output format"),
    (
        "Can parse inputs with 'conftest parse'",
        "no `parse` command",
    ),
    (
        "Can parse single file with 'conftest parse'",
        "no `parse` command",
    ),
    (
        "Can parse multiple files with 'conftest parse'",
        "no `parse` command",
    ),
    (
        "Can output tap format in test command",
        "conftest output format",
    ),
    (
        "Can output table format in test command",
        "conftest output format",
    ),
    (
        "Exceptions output",
        "conftest output format (the exception itself is checked in `Exceptions reported correctly`)",
    ),
    ("Suppress exceptions output", "conftest output format"),
    ("Can parse cyclonedx JSON file", "no `parse` command"),
    (
        "Should fail if strict is set and there are unused variables in the policy",
        "no --strict mode",
    ),
    (
        "Should fail when verifying if strict is set and there are unused variables in the policy",
        "no --strict mode",
    ),
    (
        "Should fail if an opa function is not defined given capabilities file",
        "no --capabilities; builtins regorus lacks are refused, see policy_edge_cases",
    ),
    (
        "Should fail evaluation if a builtin function returns error",
        "builtin errors are undefined, as OPA's default (no --show-builtin-errors)",
    ),
];

/// Inputs of the corpus no case below judges, and why.
const SKIPPED_INPUTS: &[(&str, &str)] = &[
    (
        "examples/configfile/conftest.toml",
        "conftest's own config file (its namespace is applied in `configfile`)",
    ),
    ("examples/hcl2/terraform.tf", "HCL: not parsed"),
    (
        "examples/hcl2/policy/unencrypted_azure_disk.tf",
        "HCL: not parsed",
    ),
    ("examples/hcl1/gke.tf", "HCL: not parsed"),
    ("examples/traefik/traefik.toml", "TOML: not parsed"),
    ("examples/docker/Dockerfile", "Dockerfile: not parsed"),
    (
        "examples/capabilities/capabilities.json",
        "an OPA capabilities file, not an input",
    ),
    (
        "examples/kustomize/kustomization.yaml",
        "conftest reads `kustomize build` output; we judge the resources directly",
    ),
];

struct Case {
    /// The acceptance test it reproduces, or a name of our own for inputs no acceptance test covers.
    name: &'static str,
    fixture: &'static str,
    inputs: &'static [&'static str],
    /// `policies.paths`, relative to the fixture (`policy` = all of it).
    paths: &'static [&'static str],
    data: &'static [&'static str],
    namespaces: &'static [&'static str],
    /// conftest's `--combine`: every input in one evaluation, which is a change policy here.
    combine: bool,
    fail_on_warn: bool,
    exit: u8,
    /// Every failure message (sorted), when the case pins them.
    failures: Option<&'static [&'static str]>,
    warnings: Option<&'static [&'static str]>,
}

const BASE: Case = Case {
    name: "",
    fixture: "kubernetes",
    inputs: &[],
    paths: &["policy"],
    data: &[],
    namespaces: &["main"],
    combine: false,
    fail_on_warn: false,
    exit: 0,
    failures: None,
    warnings: None,
};

const DEPLOYMENT_FAILURES: &[&str] = &[
    "Containers must not run as root in Deployment hello-kubernetes",
    "Deployment hello-kubernetes must provide app/release labels for pod selectors",
    "Found deployment hello-kubernetes but deployments are not allowed",
    "hello-kubernetes must include Kubernetes recommended labels: https://kubernetes.io/docs/concepts/overview/working-with-objects/common-labels/#labels",
];
const SERVICE_WARNING: &[&str] = &["Found service hello-kubernetes but services are not allowed"];

const CASES: &[Case] = &[
    Case {
        name: "Not fail when testing a service with a warning",
        inputs: &["examples/kubernetes/service.yaml"],
        failures: Some(&[]),
        warnings: Some(SERVICE_WARNING),
        ..BASE
    },
    Case {
        name: "The number of tests run is accurate",
        inputs: &["examples/kubernetes/service.yaml"],
        failures: Some(&[]),
        warnings: Some(SERVICE_WARNING),
        ..BASE
    },
    Case {
        name: "Test command with multiple input type",
        inputs: &["examples/kubernetes/service.yaml"],
        warnings: Some(SERVICE_WARNING),
        ..BASE
    },
    Case {
        name: "Fail when testing a service with warnings",
        inputs: &["examples/kubernetes/service.yaml"],
        fail_on_warn: true,
        exit: 1,
        ..BASE
    },
    Case {
        name: "Fail when testing a deployment with root containers",
        inputs: &["examples/kubernetes/deployment.yaml"],
        exit: 1,
        failures: Some(DEPLOYMENT_FAILURES),
        ..BASE
    },
    Case {
        name: "Should show output because of failure",
        inputs: &["examples/kubernetes/deployment.yaml"],
        namespaces: &["all"],
        exit: 1,
        failures: Some(DEPLOYMENT_FAILURES),
        warnings: Some(&[]),
        ..BASE
    },
    Case {
        name: "Pass when testing a blank namespace",
        inputs: &["examples/kubernetes/deployment.yaml"],
        namespaces: &["notpresent"],
        failures: Some(&[]),
        ..BASE
    },
    Case {
        name: "Should not show any output with quiet flag and all tests succeeds",
        inputs: &["examples/kubernetes/deployment.yaml"],
        paths: &["policy/deny.rego"],
        failures: Some(&[]),
        ..BASE
    },
    Case {
        name: "Multi-file tests correctly fail when last file is fine",
        inputs: &[
            "examples/kubernetes/deployment.yaml",
            "examples/kubernetes/service.yaml",
        ],
        exit: 1,
        ..BASE
    },
    Case {
        name: "deployment+service.yaml: both documents judged",
        inputs: &["examples/kubernetes/deployment+service.yaml"],
        exit: 1,
        failures: Some(DEPLOYMENT_FAILURES),
        warnings: Some(SERVICE_WARNING),
        ..BASE
    },
    Case {
        name: "Allow .rego files in the policy flag",
        fixture: "hcl1",
        inputs: &["examples/hcl1/gke-show.json"],
        paths: &["policy/base.rego"],
        exit: 1,
        failures: Some(&[
            "Terraform plan will change prohibited resources in the following namespaces: google_iam, google_container",
        ]),
        ..BASE
    },
    Case {
        name: "Can load data along with rego policies",
        fixture: "data",
        inputs: &["examples/data/service.yaml"],
        data: &["examples/data/exclusions"],
        exit: 1,
        failures: Some(&["Cannot expose port 22 on LoadBalancer"]),
        ..BASE
    },
    Case {
        name: "Can update policies in test command",
        fixture: "compose",
        inputs: &["examples/compose/docker-compose.yml"],
        exit: 1,
        ..BASE
    },
    Case {
        name: "Can validate a docker-compose file that does not conform to the policy",
        fixture: "compose",
        inputs: &["examples/compose/docker-compose.yml"],
        exit: 1,
        failures: Some(&[
            "Must be using at least version 3.5 of the Compose file format",
            "No images tagged latest",
        ]),
        ..BASE
    },
    Case {
        name: "Can validate a docker-compose file that conforms to the policy",
        fixture: "compose",
        inputs: &["examples/compose/docker-compose-valid.yml"],
        failures: Some(&[]),
        ..BASE
    },
    Case {
        name: "Exceptions reported correctly",
        fixture: "exceptions",
        inputs: &["examples/exceptions/deployments.yaml"],
        exit: 1,
        failures: Some(&["Containers must not run as root in Deployment cannot-run-as-root"]),
        ..BASE
    },
    Case {
        name: "Can combine yaml files",
        fixture: "combine",
        inputs: &[
            "examples/combine/team.yaml",
            "examples/combine/user1.yaml",
            "examples/combine/user2.yaml",
        ],
        combine: true,
        exit: 1,
        failures: Some(&["user jane.doe (jan.doe@example.com) is not a member of any team"]),
        ..BASE
    },
    Case {
        name: "Combining multi-document yaml file has same result",
        fixture: "combine",
        inputs: &["examples/combine/team.yaml", "examples/combine/users.yaml"],
        combine: true,
        exit: 1,
        failures: Some(&["user jane.doe (jan.doe@example.com) is not a member of any team"]),
        ..BASE
    },
    Case {
        name: "Can test cyclonedx against policy",
        fixture: "cyclonedx",
        inputs: &["examples/cyclonedx/cyclonedx.json"],
        failures: Some(&[]),
        ..BASE
    },
    // Inputs no acceptance test runs `conftest test` on; the expectations follow SOURCES.md.
    Case {
        name: "kubernetes/combine: a Deployment without a Service",
        fixture: "kubernetes-combine",
        inputs: &["examples/kubernetes/combine/combine.yaml"],
        combine: true,
        exit: 1,
        failures: Some(&["Deployment goodbye-kubernetes has no matching Service"]),
        ..BASE
    },
    Case {
        name: "kubernetes/combine: separate files",
        fixture: "kubernetes-combine",
        inputs: &[
            "examples/kubernetes/combine/deployment.yaml",
            "examples/kubernetes/combine/service.yaml",
        ],
        combine: true,
        exit: 1,
        failures: Some(&["Deployment goodbye-kubernetes has no matching Service"]),
        ..BASE
    },
    Case {
        name: "configfile: namespace conftest",
        fixture: "configfile",
        inputs: &["examples/configfile/deployment.yaml"],
        namespaces: &["conftest"],
        exit: 1,
        failures: Some(&["Containers must not run as root"]),
        ..BASE
    },
    Case {
        name: "kustomize resources",
        fixture: "kustomize",
        inputs: &[
            "examples/kustomize/deployment.yaml",
            "examples/kustomize/service.yaml",
            "examples/kustomize/configMap.yaml",
        ],
        exit: 1,
        failures: Some(&[
            "Containers must not run as root",
            "Containers must provide app label for pod selectors",
        ]),
        warnings: Some(&["Services are not allowed"]),
        ..BASE
    },
    Case {
        name: "serverless: python2.7 runtime",
        fixture: "serverless",
        inputs: &["examples/serverless/serverless.yaml"],
        exit: 1,
        failures: Some(&[
            "Python 2.7 cannot be the default provider runtime",
            "Python 2.7 cannot be used as the runtime for cron",
        ]),
        ..BASE
    },
    Case {
        name: "awssam: runtimes and wildcard IAM",
        fixture: "awssam",
        inputs: &["examples/awssam/lambda.yaml"],
        exit: 1,
        failures: Some(&[
            "LambdaFunction must not allow IAM actions on every resource",
            "LambdaFunction must not allow the IAM action *",
            "LambdaFunction uses a deprecated runtime python2.7",
        ]),
        ..BASE
    },
];

/// The fixture's policies under `policy/`, the corpus inputs under `examples/`.
fn tree(corpus: &Path, fixture: &str) -> MemTree {
    let mut tree = MemTree::empty("conftest fixture");
    let mut add_dir = |dir: &Path, prefix: &str| {
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    let rel = path
                        .strip_prefix(dir)
                        .unwrap()
                        .to_string_lossy()
                        .replace('\\', "/");
                    tree.files
                        .insert(format!("{prefix}{rel}"), std::fs::read(&path).unwrap());
                }
            }
        }
    };
    add_dir(&Path::new(FIXTURES).join(fixture), "");
    add_dir(&corpus.join("examples"), "examples/");
    tree
}

fn load(tree: &MemTree, path: &str) -> Vec<Document> {
    let loaded = load_file(path, &tree.files[path], &LoadOptions::default());
    assert!(
        loaded
            .findings
            .iter()
            .all(|f| f.severity != stategate::finding::Severity::Error),
        "{path}: {:?}",
        loaded.findings
    );
    assert!(!loaded.documents.is_empty(), "{path} has no documents");
    loaded.documents
}

fn run(case: &Case, corpus: &Path) -> Vec<Finding> {
    let tree = tree(corpus, case.fixture);
    let strings = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let config = PoliciesConfig {
        paths: strings(case.paths),
        data: strings(case.data),
        namespaces: strings(case.namespaces),
        ..PoliciesConfig::default()
    };
    let set = PolicySet::load(&config, &tree)
        .unwrap_or_else(|f| panic!("{}: policies do not load: {f:#?}", case.name));
    let files: Vec<(String, Vec<Document>)> = case
        .inputs
        .iter()
        .map(|p| (p.to_string(), load(&tree, p)))
        .collect();
    if case.combine {
        let input = ChangeInput {
            files: files
                .iter()
                .map(|(path, docs)| ChangedFile {
                    path: path.clone(),
                    action: Action::Added,
                    environment: None,
                    before: Vec::new(),
                    after: docs.iter().map(|d| d.value.clone()).collect(),
                })
                .collect(),
            ..ChangeInput::default()
        };
        return set.check_change(&input);
    }
    files
        .iter()
        .flat_map(|(path, docs)| {
            docs.iter().flat_map(|doc| {
                let ctx = FileContext {
                    path: path.clone(),
                    environment: None,
                    action: Action::Added,
                    before: None,
                };
                set.check_document(doc, &ctx)
            })
        })
        .collect()
}

/// `5 tests, 1 passed, 0 warnings, 4 failures, 0 exceptions` → (failures, warnings).
fn summary_counts(line: &str) -> Option<(usize, usize)> {
    let re =
        regex::Regex::new(r"\d+ tests?, \d+ passed, (\d+) warnings?, (\d+) failures?").unwrap();
    let caps = re.captures(line)?;
    Some((caps[2].parse().ok()?, caps[1].parse().ok()?))
}

fn messages(findings: &[Finding], rule: Rule) -> Vec<&str> {
    let mut out: Vec<&str> = findings
        .iter()
        .filter(|f| f.rule == rule)
        .map(|f| f.message.as_str())
        .collect();
    out.sort();
    out
}

#[test]
fn conftest_examples_give_conftest_verdicts_and_messages() {
    let Some(corpus) = common::corpus() else {
        return;
    };
    let root = corpus.join("conftest-examples");
    let expected: Value =
        serde_json::from_slice(&std::fs::read(root.join("expected-results.json")).unwrap())
            .unwrap();
    let acceptance: BTreeMap<&str, &Value> = expected["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["acceptance_test"].as_str().unwrap(), c))
        .collect();
    for case in CASES {
        let findings = run(case, &root);
        for f in &findings {
            assert!(
                matches!(f.rule, Rule::PolicyDeny | Rule::PolicyWarn),
                "{}: unexpected {f:#?}",
                case.name
            );
        }
        let failures = messages(&findings, Rule::PolicyDeny);
        let warnings = messages(&findings, Rule::PolicyWarn);
        let mut exit = Verdict::of(&findings).exit_code();
        if case.fail_on_warn && !warnings.is_empty() {
            exit = exit.max(1);
        }
        assert_eq!(exit, case.exit, "{}: {findings:#?}", case.name);
        if let Some(want) = case.failures {
            assert_eq!(failures, want, "{}", case.name);
        }
        if let Some(want) = case.warnings {
            assert_eq!(warnings, want, "{}", case.name);
        }
        if let Some(acc) = acceptance.get(case.name) {
            assert_eq!(
                acc["expected_exit_status"].as_u64(),
                Some(case.exit as u64),
                "{}",
                case.name
            );
            let lines = acc["output_line_equals"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| &l["text"]);
            for pattern in acc["output_must_match"]
                .as_array()
                .unwrap()
                .iter()
                .chain(lines)
            {
                let pattern = pattern.as_str().unwrap();
                if let Some((failed, warned)) = summary_counts(pattern) {
                    // conftest's summary line: the failure and warning counts are ours too.
                    assert_eq!(
                        (failures.len(), warnings.len()),
                        (failed, warned),
                        "{}",
                        case.name
                    );
                    continue;
                }
                assert!(
                    findings.iter().any(|f| f.message.contains(pattern)),
                    "{}: no message contains {pattern:?}",
                    case.name
                );
            }
        }
        // Every finding names its rule, policy file, document file and line.
        for f in findings.iter().filter(|_| !case.combine) {
            assert!(
                f.metadata.contains_key("rule") && f.metadata.contains_key("policy"),
                "{f:?}"
            );
            let at = f.location.as_ref().expect("located");
            assert!(
                case.inputs.contains(&at.file.as_str()) && at.line.is_some(),
                "{f:?}"
            );
        }
    }
    // Each acceptance test is either reproduced above or skipped for a stated reason.
    let covered: Vec<&str> = CASES
        .iter()
        .map(|c| c.name)
        .chain(SKIPPED.iter().map(|s| s.0))
        .collect();
    let mut missing: Vec<&&str> = acceptance
        .keys()
        .filter(|name| !covered.contains(name) && **name != "Can load data in unit tests")
        .collect();
    missing.sort();
    assert!(
        missing.is_empty(),
        "acceptance tests neither run nor skipped: {missing:?}"
    );
    // And every input file of the corpus is judged by some case or skipped for a stated reason.
    let tree = tree(&root, "kubernetes");
    for path in tree.files.keys().filter(|p| p.starts_with("examples/")) {
        let judged = CASES.iter().any(|c| c.inputs.contains(&path.as_str()))
            || SKIPPED_INPUTS.iter().any(|s| s.0 == path)
            || CASES
                .iter()
                .any(|c| c.data.iter().any(|d| path.starts_with(d)));
        assert!(judged, "{path} is neither judged nor skipped");
    }
}

/// `conftest verify -p examples/data/policy -d examples/data/exclusions`: "1 test, 1 passed".
#[test]
fn can_load_data_in_unit_tests() {
    let Some(corpus) = common::corpus() else {
        return;
    };
    let tree = tree(&corpus.join("conftest-examples"), "data");
    let roots = vec!["policy".to_string(), "examples/data/exclusions".to_string()];
    let results = run_tests(&tree, &roots, 1000).expect("policies compile");
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].name, "data.main.test_port_22_is_refused");
    assert_eq!(results[0].outcome, Outcome::Pass);
}
