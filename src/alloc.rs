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
