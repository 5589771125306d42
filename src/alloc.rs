//! Allocator settings, made once at the top of `main`.
//!
//! The global allocator is regorus' build of mimalloc (feature `allocator-memory-limits`). Two of
//! its defaults cost this short-lived process, measured on the 10k and start-up workloads of
//! `benches/vs_kubeconform.sh`:
//! - it commits each 1 GiB arena eagerly, and with transparent huge pages the first touches of it
//!   fault in whole 2 MiB pages: 7 MB of the 30 MB resident for one ConfigMap, and of the 47 MB
//!   peak on 10,000 Deployments. mimalloc reads that option before `main` runs, so it is set at
//!   build time instead (`CFLAGS` in `.cargo/config.toml`);
//! - it hands freed pages back to the kernel 10 ms after they fall empty, so the next file's
//!   allocations fault them in again, zeroed: a third of all page faults on 10k, and the part that
//!   swung from run to run. That one is read when memory is purged, so it is set here.
//!
//! A `MIMALLOC_*` variable in the environment still wins, so the defaults can be compared.
#![allow(unsafe_code)] // the one place: mimalloc's options are set through its C API

use std::ffi::{c_int, c_long};

// `mi_option_purge_delay` in mimalloc 2.2's `mimalloc.h` (the version regorus-mimalloc-sys builds).
const PURGE_DELAY: c_int = 15;

unsafe extern "C" {
    // Provided by the mimalloc library that regorus-mimalloc-sys links into the binary.
    fn mi_option_set(option: c_int, value: c_long);
}

/// Set stategate's allocator options. Call first in `main`, before any other thread exists.
pub fn tune() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: `mi_option_set` stores an integer in mimalloc's option table, and -1 (never
        // purge) is a documented value. `tune` runs first in `main`, before any other thread
        // exists, so nothing reads the table while it is written.
        unsafe { mi_option_set(PURGE_DELAY, -1) };
    }
}

/// With `STATEGATE_TRACE_MEMORY` set, print the live and peak heap as a run passes `stage`, to
/// stderr, and on Linux the process's resident and peak resident memory. Profilers that hook
/// malloc (heaptrack) do not see mimalloc; its own counts do, and they are how memory per stage
/// and per file is found (issue 12). The resident figures say which stage sets the peak the
/// benchmarks measure, libgit2's memory and the binary's pages included.
pub fn trace(stage: &str) {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *ON.get_or_init(|| std::env::var_os("STATEGATE_TRACE_MEMORY").is_some()) {
        let stats = regorus_mimalloc::global_allocation_stats_snapshot();
        eprintln!(
            "stategate memory: {stage}: live {} KiB, peak {} KiB{}",
            stats.allocated / 1024,
            stats.peak / 1024,
            resident().unwrap_or_default()
        );
    }
}

/// `, resident R KiB, peak resident P KiB` from `/proc/self/status`.
fn resident() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .map(|rest| rest.trim().trim_end_matches("kB").trim().to_owned())
    };
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
