//! A check keeps nothing per clean file: what a streamed file leaves behind is its findings, so
//! the peak memory of a check grows with the findings, not with the number of files (issue 12:
//! 100,000 files within 1.5x the memory of 10,000).
//!
//! Measured in bytes, not time: the peak of the live-heap count of the process's global allocator
//! (regorus' mimalloc, which counts every byte) while `Gate::check` runs, above what was live
//! before it. The change set is detected before the count starts: it names every file by design.
//!
//! Each check is measured in a process of its own ([`measured_alone`]): the count's peak only
//! rises, so in one process a check measured after a larger one read the larger one's peak
//! (both tests once passed with "0 B per file" that way). And the count is made exact: by default
//! each thread adds to it only once its own count has moved by a MiB, more than a clean file's
//! share of this whole test.

mod common;

use common::git::TestRepo;
use stategate::finding::Rule;
use stategate::gate::Gate;
use stategate::tree::{GitTree, MemTree};

/// Files in the small repository; the large one has ten times as many.
const SMALL: usize = 300;

/// The most a clean file may add to a check's peak: measured 0. What is left per file by design
/// is the change set's entry (not counted here); the list of checked files that junit, tap and
/// github print (each path's bytes) is left out, as [`check`] runs the other formats. Keeping
/// each clean file's outcome in the stream's results showed as 41 B; holding its path or
/// documents costs more.
const BYTES_PER_FILE: u64 = 8;

fn heap() -> regorus_mimalloc::GlobalAllocationStats {
    regorus_mimalloc::global_allocation_stats_snapshot()
}

/// A small ServiceAccount; an invalid one has a string where its schema wants a boolean (one
/// finding). A kind with a small schema, and one no stage holds: compiling a Deployment's
/// (about 2 MB at its peak, at the stream's first file) set the check's peak before anything
/// kept per file could show, and ConfigMaps are held whole for Flux's substitution.
fn service_account(i: usize, valid: bool) -> String {
    let value = if valid { "false" } else { "\"no\"" };
    format!(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: s{i}\n  namespace: team\n\
         automountServiceAccountToken: {value}\n"
    )
}

/// A ConfigMap, in a repository with no Flux Kustomization: nothing substitutes from it.
fn config_map(i: usize) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c{i}\n  namespace: team\n\
         data:\n  image: ghcr.io/acme/app:1.{i}\n"
    )
}

/// What a measured repository's files hold, and which have a finding.
struct Workload {
    file: fn(usize) -> String,
    invalid: fn(usize) -> bool,
}

/// The workloads a child process is told to measure, by name.
fn workload(name: &str) -> Workload {
    match name {
        "one" => Workload {
            file: |i| service_account(i, i != 7),
            invalid: |i| i == 7,
        },
        "tenth" => Workload {
            file: |i| service_account(i, i % 10 != 0),
            invalid: |i| i % 10 == 0,
        },
        "config-maps" => Workload {
            file: config_map,
            invalid: |_| false,
        },
        other => panic!("no such workload: {other}"),
    }
}

/// `files` files of `workload`.
fn repo(files: usize, workload: &Workload) -> TestRepo {
    let repo = TestRepo::new();
    for i in 0..files {
        repo.write(&format!("apps/f{i:06}.yaml"), (workload.file)(i));
    }
    repo.commit_all("manifests");
    repo
}

/// The peak bytes above the live heap that one check of every file of `repo` reached; it must
/// find `invalid` values of the wrong type.
fn check(repo: &TestRepo, files: usize, invalid: usize) -> u64 {
    let change = repo.every_file_at_head();
    assert_eq!(change.files.len(), files);
    let git = git2::Repository::open(repo.path()).expect("open");
    let head = GitTree::open(&git, "HEAD").expect("head tree");
    // As the formats that print no list of the checked files run it (json, sarif, human): the
    // list, which junit, tap and github print, is each checked path's bytes by design.
    let gate = Gate::open(Box::new(MemTree::empty("no config")), None)
        .unwrap_or_else(|r| panic!("{:?}", r.findings))
        .with_checked_list(false);
    let before = heap();
    let report = gate.check(&change, &head);
    let after = heap();
    // The check judged every file, and found the strings.
    assert_eq!(report.stats.files as usize, files);
    assert_eq!(report.stats.documents as usize, files);
    let missing: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.rule == Rule::SchemaType)
        .collect();
    assert_eq!(missing.len(), invalid, "{:?}", report.findings);
    after.peak.saturating_sub(before.allocated)
}

/// Set in the child process [`measured_alone`] starts: `FILES/WORKLOAD`.
const MEASURE: &str = "STATEGATE_TEST_MEASURE_CHECK";

/// Run by [`measured_alone`] in a process of its own; prints the peak of one check to stderr.
#[test]
#[ignore = "a child process of the tests of this file, which set its input"]
fn one_check_measured() {
    let measure = std::env::var(MEASURE).expect("run by measured_alone");
    let (files, name) = measure.split_once('/').expect("FILES/WORKLOAD");
    let files: usize = files.parse().expect("a number of files");
    let workload = workload(name);
    // Every allocation counted as it happens: see the module.
    regorus_mimalloc::limits::set_thread_flush_threshold(Some(1));
    let repo = repo(files, &workload);
    let invalid = (0..files).filter(|&i| (workload.invalid)(i)).count();
    let peak = check(&repo, files, invalid);
    eprintln!("peak: {peak}");
}

/// The peak of a check of `files` files of the workload `name`, in a process of its own.
fn measured_alone(files: usize, name: &str) -> u64 {
    let out = std::process::Command::new(std::env::current_exe().expect("this test binary"))
        .args(["--exact", "one_check_measured", "--ignored", "--nocapture"])
        .env(MEASURE, format!("{files}/{name}"))
        .output()
        .expect("run the measuring child");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{}{stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    stderr
        .lines()
        .find_map(|l| l.strip_prefix("peak: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak in {stderr}"))
}

/// The peaks of a check of `SMALL` and of `10 * SMALL` files of the workload `name`, each in a
/// fresh process: what the large one holds per file shows as the difference, the lazily built
/// statics (the embedded schemas' caches, the rayon pool) being the same in both.
fn peaks(name: &str) -> (u64, u64) {
    (
        measured_alone(SMALL, name),
        measured_alone(10 * SMALL, name),
    )
}

/// Fails when a check of the workload `name` holds more than [`BYTES_PER_FILE`] per clean file.
fn holds_nothing_per_clean_file(name: &str) {
    let (small_peak, large_peak) = peaks(name);
    let per_file_peak = large_peak.saturating_sub(small_peak) / (9 * SMALL) as u64;
    eprintln!(
        "{name}: peak {small_peak} B for {SMALL} files, {large_peak} B for {} ({per_file_peak} B \
         per file)",
        10 * SMALL
    );
    assert!(
        per_file_peak <= BYTES_PER_FILE,
        "{name}: a check's peak grows by {per_file_peak} bytes per clean file ({small_peak} B for \
         {SMALL} files, {large_peak} B for {}): something is held per file until the end",
        10 * SMALL
    );
}

#[test]
fn a_check_holds_nothing_per_clean_file() {
    // Main before the fix: 369 B per file.
    holds_nothing_per_clean_file("one");
}

#[test]
fn a_check_holds_no_config_map_that_nothing_substitutes_from() {
    // Held whole for Flux's substitution, with no Flux Kustomization to substitute: 4,095 B.
    holds_nothing_per_clean_file("config-maps");
}

/// The most a file with one finding may add to a check's peak (measured: 1,606 B): its text
/// (about 110 bytes here), its line index, the finding and the report's entry for it. The
/// position trees its finding was located with are not among them (kept, they made a
/// Deployment's 4,000 B per file).
const BYTES_PER_FILE_WITH_A_FINDING: u64 = 2_000;

#[test]
fn a_file_with_a_finding_keeps_its_text_and_findings_not_its_positions() {
    let (small_peak, large_peak) = peaks("tenth");
    let per_finding_file = large_peak.saturating_sub(small_peak) / (9 * SMALL / 10) as u64;
    eprintln!(
        "peak {small_peak} B for {SMALL} files, {large_peak} B for {} ({per_finding_file} B per \
         file with a finding)",
        10 * SMALL
    );
    assert!(
        per_finding_file <= BYTES_PER_FILE_WITH_A_FINDING,
        "a check's peak grows by {per_finding_file} bytes per file with a finding: more than its \
         text and findings are kept to the end"
    );
}
