//! Schema stage costs: `cargo bench --bench schema` (needs the corpus, see tests/common).
//!
//! Reports the embedded bundle's size, the time to decode and prepare a version (newest = first
//! line of the stream; oldest = the whole stream), the one-time compile of a Deployment
//! validator, and validations per second over every document of `gitops-repos/`, on one thread
//! and on all of them.
#![allow(clippy::print_stderr, clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rayon::prelude::*;
use stategate::config::SchemasConfig;
use stategate::load::{Document, LoadOptions, is_helm_template, load_file};
use stategate::schema::crd::{is_crd, json_schema};
use stategate::schema::{SchemaSet, available_versions};
use stategate::tree::MemTree;

fn corpus() -> Option<PathBuf> {
    let dir = std::env::var_os("STATEGATE_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus"));
    dir.is_dir().then_some(dir)
}

fn build(version: &str) -> SchemaSet {
    let cfg = SchemasConfig {
        kubernetes: Some(version.to_string()),
        ..SchemasConfig::default()
    };
    SchemaSet::build(&cfg, &MemTree::empty("bench"), &[]).expect("embedded schemas build")
}

/// Best of `runs` timings: the floor is what the code costs, the rest is noise.
fn best<T>(runs: usize, mut f: impl FnMut() -> T) -> Duration {
    (0..runs)
        .map(|_| {
            let start = Instant::now();
            std::hint::black_box(f());
            start.elapsed()
        })
        .min()
        .unwrap_or_default()
}

/// Best of `runs` of a measurement that times itself (to leave set-up out).
fn best_of(runs: usize, mut f: impl FnMut() -> Duration) -> Duration {
    (0..runs).map(|_| f()).min().unwrap_or_default()
}

fn documents(root: &Path) -> Vec<Document> {
    let mut files = Vec::new();
    walk(&root.join("gitops-repos"), &mut files);
    let mut docs = Vec::new();
    for file in files {
        let rel = file
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .to_string();
        let bytes = std::fs::read(&file).unwrap();
        if is_helm_template(&rel, &String::from_utf8_lossy(&bytes)) {
            continue;
        }
        docs.extend(load_file(&rel, &bytes, &LoadOptions::default()).documents);
    }
    docs
}

/// Converting each CRD version of the corpus to the JSON Schema it is validated by, as a check does
/// the first time a document of the kind comes; the largest (Argo CD's ApplicationSet) alone.
fn convert_crds(docs: &[Document]) {
    let schemas: Vec<(String, &serde_json::Value)> = docs
        .iter()
        .filter(|d| is_crd(d))
        .flat_map(|d| {
            let kind = d.value.pointer("/spec/names/kind").and_then(|k| k.as_str());
            let versions = d.value.pointer("/spec/versions").and_then(|v| v.as_array());
            let openapi = versions.into_iter().flatten();
            let openapi = openapi.filter_map(|v| v.pointer("/schema/openAPIV3Schema"));
            openapi.map(move |schema| (kind.unwrap_or("?").to_owned(), schema))
        })
        .collect();
    let all = best(5, || {
        schemas
            .iter()
            .map(|(kind, schema)| json_schema(schema, "example.com/v1", kind))
            .collect::<Vec<_>>()
    });
    let (kind, largest) = schemas
        .iter()
        .max_by_key(|(_, schema)| schema.to_string().len())
        .expect("the corpus has CRDs");
    let one = best(10, || json_schema(largest, "example.com/v1", kind));
    println!(
        "CRD conversion: {} schemas {all:?}; the largest ({kind}) {one:?}",
        schemas.len()
    );
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(&path, out);
        } else if path
            .extension()
            .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
        {
            out.push(path);
        }
    }
}

fn main() {
    let bundle = std::fs::metadata(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/schemas/kubernetes.jsonl.zst"
    ))
    .map(|m| m.len())
    .unwrap_or(0);
    let versions = available_versions();
    println!("bundle: {bundle} bytes, {} versions", versions.len());
    let newest = versions[0];
    let oldest = versions[versions.len() - 1];
    println!(
        "build {newest} (decode + parse): {:?}",
        best(10, || build(newest))
    );
    println!(
        "build {oldest} (decodes the whole stream): {:?}",
        best(5, || build(oldest))
    );

    let deployment = load_file(
        "d.yaml",
        b"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  selector: {matchLabels: {a: b}}\n  template:\n    metadata: {labels: {a: b}}\n    spec: {containers: [{name: c, image: nginx}]}\n",
        &LoadOptions::default(),
    )
    .documents;
    let first_check = best_of(5, || {
        let set = build(newest);
        let start = Instant::now();
        set.check(&deployment[0]);
        start.elapsed()
    });
    let config_map = load_file(
        "c.yaml",
        b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: b}\n",
        &LoadOptions::default(),
    )
    .documents;
    let first_config_map = best_of(5, || {
        let set = build(newest);
        let start = Instant::now();
        set.check(&config_map[0]);
        start.elapsed()
    });
    println!("ConfigMap check: first (compiles the validator) {first_config_map:?}");
    let set = build(newest);
    set.check(&deployment[0]);
    let warm_check = best(100, || set.check(&deployment[0]));
    println!(
        "Deployment check: first (compiles the validator) {first_check:?}, then {warm_check:?}"
    );

    let Some(root) = corpus() else {
        println!("corpus not found: skipping validations/s (set STATEGATE_CORPUS)");
        return;
    };
    let docs = documents(&root);
    convert_crds(&docs);
    let set = build(newest);
    let warm: usize = docs.iter().map(|d| set.check(d).len()).sum();
    let rounds = 5;
    let single = best(rounds, || {
        docs.iter().map(|d| set.check(d).len()).sum::<usize>()
    });
    let parallel = best(rounds, || {
        docs.par_iter().map(|d| set.check(d).len()).sum::<usize>()
    });
    let rate = |t: Duration| docs.len() as f64 / t.as_secs_f64();
    println!(
        "validations: {} documents ({warm} findings), 1 thread {:.0}/s, {} threads {:.0}/s",
        docs.len(),
        rate(single),
        rayon::current_num_threads(),
        rate(parallel)
    );
}
