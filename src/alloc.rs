//! Allocator settings, made once at the top of `main`.
//!
//! The global allocator is regorus' build of mimalloc (feature `allocator-memory-limits`). Three of
//! its defaults cost this short-lived process, measured on the workloads of
//! `benches/vs_kubeconform.sh`:
//! - it commits each 1 GiB arena eagerly, and with transparent huge pages the first touches of it
//!   fault in whole 2 MiB pages: 7 MB of the 30 MB resident for one ConfigMap, and of the 47 MB
//!   peak on 10,000 Deployments. mimalloc reads that option before `main` runs, so it is set at
//!   build time instead (`CFLAGS` in `.cargo/config.toml`);
//! - it hands freed pages back to the kernel 10 ms after they fall empty, so the next file's
//!   allocations fault them in again, zeroed: a third of all page faults on 10k, and the part that
//!   swung from run to run. That one is read when memory is purged, so it is set here;
//! - it collects every heap at exit, handing the kernel back pages it is about to free anyway
//!   (`CFLAGS` again).
//!
//! Pages are handed back between the stages of a check instead ([`release_freed`]): what a stage
//! frees stays in the heap of the thread that freed it, where the next stage's other threads
//! cannot reuse it.
//!
//! A `MIMALLOC_*` variable in the environment still wins, so the defaults can be compared.
#![allow(unsafe_code)] // the one place: mimalloc's options are set through its C API

use std::ffi::{c_int, c_long};

// `mi_option_purge_delay` in mimalloc 2.2's `mimalloc.h` (the version regorus-mimalloc-sys builds).
const PURGE_DELAY: c_int = 15;

unsafe extern "C" {
    // Provided by the mimalloc library that regorus-mimalloc-sys links into the binary.
    fn mi_option_set(option: c_int, value: c_long);
    fn mi_collect(force: bool);
}

/// The purge delay, in milliseconds: an hour, longer than any check, so pages are only handed back
/// when [`release_freed`] asks. Not -1 (never): mimalloc decides at a segment's creation whether it
/// may ever be purged, and with -1 a forced collection could not hand anything back.
const ON_REQUEST: c_long = 3_600_000;

/// Set stategate's allocator options. Call first in `main`, before any other thread exists.
pub fn tune() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: `mi_option_set` stores an integer in mimalloc's option table, and any delay
        // in milliseconds is a documented value. `tune` runs first in `main`, before any other
        // thread exists, so nothing reads the table while it is written.
        unsafe { mi_option_set(PURGE_DELAY, ON_REQUEST) };
    }
}

/// Hand the pages that every thread's heap holds free back to the kernel: call between stages of
/// a check, when one stage's values are dropped and the next will allocate on other threads
/// (a 100,000-file change set's construction left 6 MB). Not where the next stage soon uses as
/// much again: every page handed back is faulted in again, zeroed, when it is (the first look's,
/// once 35 MB when it held Argo CD's CRD bundles as values, is now reused by the stream).
///
/// Not to be called from inside a `OnceLock` initialiser or while holding a lock a pool thread
/// may wait on: it waits for every thread of rayon's pool.
pub fn release_freed() {
    // SAFETY: `mi_collect` frees nothing live: it returns the calling thread's empty pages to
    // its segments and purges the free parts of segments, and may run on any thread at any time.
    let collect = || unsafe { mi_collect(true) };
    rayon::broadcast(|_| collect());
    collect();
}

/// Drop `value` on rayon's pool, element by element, while the caller goes on: for what a stage
/// is done with and that takes long to free (compiled validators, the documents of a check).
/// What is still being freed when the process exits is not waited for.
pub fn drop_aside<T: Send + 'static>(values: Vec<T>) {
    use rayon::prelude::*;
    rayon::spawn(move || values.into_par_iter().for_each(drop));
}

/// The bytes of anonymous memory resident now (heaps and stacks, not the binary's pages), on
/// Linux: what handing freed pages back lowers. mimalloc's own count of committed bytes is not
/// used: its adjustments for overlapping ranges took it below zero.
pub fn resident_anonymous() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    Some(status_kib(&status, "RssAnon:")? * 1024)
}

/// The field `name` of `/proc/self/status` text, in KiB.
fn status_kib(status: &str, name: &str) -> Option<u64> {
    let rest = status.lines().find_map(|line| line.strip_prefix(name))?;
    rest.trim().trim_end_matches("kB").trim().parse().ok()
}

/// With `STATEGATE_TRACE_MEMORY` set, print the time since the first trace (the CLI's start) and
/// the live and peak heap as a run passes `stage`, to stderr, and on Linux the process's resident and peak resident memory. Profilers that hook
/// malloc (heaptrack) do not see mimalloc; its own counts do, and they are how memory per stage
/// and per file is found (issue 12). The resident figures say which stage sets the peak the
/// benchmarks measure, libgit2's memory and the binary's pages included.
pub fn trace(stage: &str) {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let start = START.get_or_init(std::time::Instant::now);
    let on = ON.get_or_init(|| {
        let value = std::env::var_os("STATEGATE_TRACE_MEMORY");
        // Each thread adds to the live count once its own moved by a MiB: `exact` makes it add
        // every allocation, at a cost in time, for figures per file rather than per MiB.
        if value.as_deref() == Some("exact".as_ref()) {
            regorus_mimalloc::limits::set_thread_flush_threshold(Some(1));
        }
        value.is_some()
    });
    if *on {
        let stats = regorus_mimalloc::global_allocation_stats_snapshot();
        eprintln!(
            "stategate memory: {stage}: at {} ms, live {} KiB, peak {} KiB{}",
            start.elapsed().as_millis(),
            stats.allocated / 1024,
            stats.peak / 1024,
            resident().unwrap_or_default()
        );
    }
}

/// `, resident R KiB, peak resident P KiB` from `/proc/self/status`.
fn resident() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| status_kib(&status, name);
    Some(format!(
        ", resident {} KiB ({} KiB heap and stacks, {} KiB files), peak resident {} KiB",
        field("VmRSS:")?,
        field("RssAnon:")?,
        field("RssFile:")?,
        field("VmHWM:")?
    ))
}

/// Give the memory the C allocator holds free back to the kernel. libgit2 allocates through the
/// C library's `malloc`, not mimalloc, and glibc keeps what libgit2 frees resident: without this,
/// the memory of a large diff stays under the peak of the whole run.
pub fn release_c_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only returns free memory of glibc's heap to the kernel; it touches no
    // live allocation and may be called from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}
