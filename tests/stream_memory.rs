//! A check keeps nothing per clean file: what a streamed file leaves behind is its findings, so
//! the peak memory of a check grows with the findings, not with the number of files (issue 12:
//! 100,000 files within 1.5x the memory of 10,000).
//!
//! Measured in bytes, not time: the peak of the live-heap count of the process's global allocator
//! (regorus' mimalloc, which counts every byte) while `Gate::check` runs, above what was live
//! before it. The change set is detected before the count starts: it names every file by design.
//! The tests of this binary take turns (`ALONE`), so no other test allocates meanwhile.

mod common;

use common::git::TestRepo;
use stategate::change::{ChangeMode, ChangeSet, detect_changes};
use stategate::finding::Rule;
use stategate::gate::Gate;
use stategate::tree::{GitTree, MemTree};

/// Files in the small repository; the large one has ten times as many.
const SMALL: usize = 300;

/// Held by each test while it counts ([`peaks`]).
static ALONE: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The most a clean file may add to a check's peak. What is left per file by design: the
/// change set's entry (not counted here), and a few words of bookkeeping per selected file (its
/// place in the order of the report). Holding a file's outcome, path or documents costs more.
const BYTES_PER_FILE: u64 = 64;

fn heap() -> regorus_mimalloc::GlobalAllocationStats {
    regorus_mimalloc::global_allocation_stats_snapshot()
}

/// A small Deployment; an invalid one misses `selector` (one finding).
fn deployment(i: usize, valid: bool) -> String {
    let selector = if valid {
        format!("  selector:\n    matchLabels:\n      app: d{i}\n")
    } else {
        String::new()
    };
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d{i}\n  namespace: team\n\
         spec:\n  replicas: 2\n{selector}  template:\n    metadata:\n      labels:\n        app: d{i}\n\
         \x20   spec:\n      containers:\n        - name: app\n          image: ghcr.io/acme/app:1.{i}\n"
    )
}

/// `files` Deployments, of which those whose number `invalid` says have a finding.
fn repo(files: usize, invalid: fn(usize) -> bool) -> TestRepo {
    let repo = TestRepo::new();
    for i in 0..files {
        repo.write(&format!("apps/d{i:06}.yaml"), deployment(i, !invalid(i)));
    }
    repo.commit_all("deployments");
    repo
}

/// The peak bytes above the live heap that one check of every file of `repo` reached; it must
/// find `invalid` missing selectors.
fn check(repo: &TestRepo, files: usize, invalid: usize) -> u64 {
    let change: ChangeSet = detect_changes(
        repo.path(),
        &ChangeMode::All {
            rev: Some("HEAD".into()),
        },
        &[],
    )
    .expect("detect changes");
    assert_eq!(change.files.len(), files);
    let git = git2::Repository::open(repo.path()).expect("open");
    let head = GitTree::open(&git, "HEAD").expect("head tree");
    let gate = Gate::open(Box::new(MemTree::empty("no config")), None)
        .unwrap_or_else(|r| panic!("{:?}", r.findings));
    let before = heap();
    let report = gate.check(&change, &head);
    let after = heap();
    // The check judged every file, and found the missing selectors.
    assert_eq!(report.stats.files as usize, files);
    assert_eq!(report.stats.documents as usize, files);
    let missing: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.rule == Rule::SchemaRequired)
        .collect();
    assert_eq!(missing.len(), invalid, "{:?}", report.findings);
    after.peak.saturating_sub(before.allocated)
}

/// The peaks of a check of `SMALL` and of `10 * SMALL` Deployments, those `invalid` says with a
/// finding, measured alone in this binary.
fn peaks(invalid: fn(usize) -> bool) -> (u64, u64) {
    let _alone = ALONE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let findings = |files: usize| (0..files).filter(|&i| invalid(i)).count();
    let small = repo(SMALL, invalid);
    let large = repo(10 * SMALL, invalid);
    // Warm up once: lazily built statics, the rayon pool, the embedded schemas' caches.
    check(&small, SMALL, findings(SMALL));
    let small_peak = check(&small, SMALL, findings(SMALL));
    // The global peak only rises, so this is at least the large check's own peak: what it holds
    // per file shows once it passes the small check's.
    let large_peak = check(&large, 10 * SMALL, findings(10 * SMALL));
    (small_peak, large_peak)
}

#[test]
fn a_check_holds_nothing_per_clean_file() {
    // Main before the fix: 369 B per file.
    let (small_peak, large_peak) = peaks(|i| i == 7);
    let per_file_peak = large_peak.saturating_sub(small_peak) / (9 * SMALL) as u64;
    eprintln!(
        "peak {small_peak} B for {SMALL} files, {large_peak} B for {} ({per_file_peak} B per file)",
        10 * SMALL
    );
    assert!(
        per_file_peak <= BYTES_PER_FILE,
        "a check's peak grows by {per_file_peak} bytes per clean file ({small_peak} B for {SMALL} \
         files, {large_peak} B for {}): something is held per file until the end",
        10 * SMALL
    );
}

/// The most a file with one finding may add to a check's peak: its text (about 450 bytes here),
/// its line index, the finding and the report's entry for it. The position trees its finding was
/// located with are not among them (kept, they made it 4,000 B per file).
const BYTES_PER_FILE_WITH_A_FINDING: u64 = 2_500;

#[test]
fn a_file_with_a_finding_keeps_its_text_and_findings_not_its_positions() {
    let (small_peak, large_peak) = peaks(|i| i % 10 == 0);
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
