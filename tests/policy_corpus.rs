//! The built-in policies over every YAML document of the real-world GitOps repositories: no
//! evaluation errors, and findings only of the rules they define.

mod common;

use std::path::Path;

use rayon::prelude::*;
use stategate::change::Action;
use stategate::config::PoliciesConfig;
use stategate::finding::Rule;
use stategate::load::{LoadOptions, load_file};
use stategate::policy::{FileContext, PolicySet};
use stategate::tree::{DirTree, Tree};

#[test]
fn built_in_policies_judge_the_gitops_corpus_without_errors() {
    let Some(corpus) = common::corpus() else {
        return;
    };
    let crate_root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let set = PolicySet::load(
        &PoliciesConfig::default(),
        &DirTree::new(crate_root, "crate"),
    )
    .expect("built-in policies load");
    let repos = DirTree::new(corpus.join("gitops-repos"), "corpus");
    let files: Vec<String> = repos
        .files_under("")
        .into_iter()
        .filter(|p| p.ends_with(".yaml") || p.ends_with(".yml"))
        .collect();
    assert!(files.len() > 2000, "{}", files.len());
    let findings: Vec<_> = files
        .par_iter()
        .flat_map_iter(|path| {
            let bytes = repos.read(path).unwrap_or_default();
            let loaded = load_file(path, &bytes, &LoadOptions::default());
            let ctx = FileContext {
                path: path.clone(),
                environment: None,
                action: Action::Added,
                before: None,
            };
            loaded
                .documents
                .iter()
                .flat_map(|d| set.check_document(d, &ctx))
                .collect::<Vec<_>>()
        })
        .collect();
    let errors: Vec<_> = findings
        .iter()
        .filter(|f| f.rule != Rule::PolicyDeny)
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    let rules: std::collections::BTreeSet<&str> = findings
        .iter()
        .filter_map(|f| f.metadata["rule"].as_str())
        .collect();
    // Real repositories break each of these somewhere (untagged images, missing limits, …).
    for rule in [
        "deny_required_labels",
        "deny_image_tag",
        "deny_resource_limits",
    ] {
        assert!(rules.contains(rule), "{rule} never fired: {rules:?}");
    }
    assert!(rules.iter().all(|r| r.starts_with("deny_")), "{rules:?}");
}
