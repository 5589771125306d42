//! What a stage of a check frees goes back to the kernel before the next stage
//! (`alloc::release_freed`): left in the heaps of the threads that freed it, the first look's
//! memory stayed resident under the whole stream (issue 12: corpus memory at or below
//! kubeconform's; 100,000 files within 1.5x the memory of 10,000).
//!
//! Measured in bytes of anonymous memory resident, not time, with the allocator tuned as `main`
//! tunes it. One test in its own binary, so no other test allocates meanwhile.

#![cfg(target_os = "linux")]

mod common;

use common::git::TestRepo;
use stategate::gate::Gate;
use stategate::tree::{GitTree, MemTree};

const MIB: usize = 1 << 20;

/// Anonymous memory resident now; the tests need Linux's `/proc`.
fn resident() -> usize {
    stategate::alloc::resident_anonymous().expect("RssAnon in /proc/self/status") as usize
}

/// Many small values, as a parse leaves them, made and dropped on the calling thread.
fn allocate_and_free(bytes: usize) {
    let blocks: Vec<Vec<u8>> = (0..bytes / 512).map(|i| vec![i as u8; 512]).collect();
    assert_eq!(blocks.len(), bytes / 512);
    drop(blocks);
}

/// Freed on every thread of the pool, handed back when asked.
fn pool_threads_hand_back_what_they_freed() {
    // What the check left free is not reused below.
    stategate::alloc::release_freed();
    let before = resident();
    rayon::broadcast(|_| allocate_and_free(32 * MIB));
    let held = resident();
    let threads = rayon::current_num_threads();
    // Tuned as `main` tunes it, nothing is handed back by itself: the next file would fault the
    // pages in again.
    assert!(
        held >= before + threads * 16 * MIB,
        "{threads} threads freed 32 MiB each and only {} MiB more is resident than before",
        (held - before) / MIB
    );
    stategate::alloc::release_freed();
    let after = resident();
    assert!(
        after + threads * 16 * MIB <= held,
        "released: {} MiB resident, {} MiB before the release, {} MiB before the values",
        after / MIB,
        held / MIB,
        before / MIB
    );
}

/// Documents in [`big_file`].
const DOCUMENTS: usize = 3_000;

/// One big file of many ServiceAccounts, as a CRD bundle is one big file: its values are
/// megabytes while it is looked at and judged, and none of them is held after (a ConfigMap would
/// be: Flux may take variables from it).
fn big_file() -> String {
    (0..DOCUMENTS)
        .map(|i| {
            format!(
                "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: s{i}\n  namespace: team\n\
                 \x20 labels:\n    app: a{i}\n    tier: t{i}\n  annotations:\n    note: n{i}\n---\n"
            )
        })
        .collect()
}

/// A check hands back what its stages freed.
fn a_check_leaves_little_more_resident_than_it_found() {
    let repo = TestRepo::new();
    repo.write("apps/bundle.yaml", big_file());
    repo.write(
        "apps/one.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team\n",
    );
    repo.commit_all("a big file");
    let change = repo.every_file_at_head();
    let git = git2::Repository::open(repo.path()).expect("open");
    let head = GitTree::open(&git, "HEAD").expect("head tree");
    let gate = Gate::open(Box::new(MemTree::empty("no config")), None)
        .unwrap_or_else(|r| panic!("{:?}", r.findings));
    stategate::alloc::release_freed();
    let before = resident();
    let live_before = regorus_mimalloc::global_allocation_stats_snapshot().allocated;
    let report = gate.check(&change, &head);
    let peak = regorus_mimalloc::global_allocation_stats_snapshot().peak;
    let after = resident();
    assert_eq!(
        report.stats.documents as usize,
        DOCUMENTS + 1,
        "{:?}",
        report.findings
    );
    // The check had the big file's values: its live peak is what freed memory would keep
    // resident after it, were it not handed back between the stages.
    let values = peak.saturating_sub(live_before) as usize;
    eprintln!(
        "resident {} MiB before the check, {} MiB after; live peak {} MiB",
        before / MIB,
        after / MIB,
        values / MIB
    );
    assert!(
        values >= 4 * MIB,
        "the check's live peak was only {} MiB",
        values / MIB
    );
    assert!(
        after <= before + values / 2,
        "{} MiB resident after the check, {} MiB before it, {} MiB of values at its peak",
        after / MIB,
        before / MIB,
        values / MIB
    );
}

/// One test, the check first: the live peak it reads is the process's, which only rises.
#[test]
fn freed_memory_goes_back_between_the_stages_of_a_check_and_when_asked() {
    stategate::alloc::tune();
    a_check_leaves_little_more_resident_than_it_found();
    pool_threads_hand_back_what_they_freed();
}
