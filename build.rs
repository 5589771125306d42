//! Code layout for release builds: the functions a check runs are linked first, next to each
//! other, from `layout/hot-functions.txt` (made by `benches/code_layout.sh` from valgrind's
//! record of the functions a check of a bundled and a generated repository calls).
//!
//! Why: most of a check's resident memory is the binary's own code pages, and the kernel maps
//! them 64 KiB at a time around each page a check touches. Spread over 18 MB of code, the few
//! megabytes a check runs kept most of it resident. Packed together, they keep a fraction.
//!
//! Only where the linker is known to take the file: the LLD that Rust 1.90 and later ship and
//! use by default on x86_64 Linux (`gcc-ld/ld.lld` in the toolchain). A build elsewhere links in
//! the default order, and so does one with a linker of its own configured (it may not be LLD),
//! or with `STATEGATE_CODE_LAYOUT=0`. Functions the list names that a build no longer has are
//! passed over.

use std::env;
use std::path::Path;

fn main() {
    let list = Path::new(&env::var("CARGO_MANIFEST_DIR").unwrap_or_default())
        .join("layout")
        .join("hot-functions.txt");
    println!("cargo:rerun-if-changed={}", list.display());
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER");
    println!("cargo:rerun-if-env-changed=STATEGATE_CODE_LAYOUT");
    let root = Path::new(&env::var("CARGO_MANIFEST_DIR").unwrap_or_default()).to_path_buf();
    for input in SOURCES {
        println!("cargo:rerun-if-changed={}", root.join(input).display());
    }
    println!(
        "cargo:rustc-env=STATEGATE_SOURCE_ID={:016x}",
        source_id(&root)
    );
    if env::var("TARGET").as_deref() != Ok("x86_64-unknown-linux-gnu")
        || env::var("STATEGATE_CODE_LAYOUT").as_deref() == Ok("0")
        || env::var("PROFILE").as_deref() != Ok("release")
        || env::var_os("CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER").is_some()
        || links_with_other_flags()
        || !rust_lld_is_default()
        || !list.is_file()
    {
        return;
    }
    let arg = format!("-Wl,--symbol-ordering-file={}", list.display());
    println!("cargo:rustc-link-arg-bin=stategate={arg}");
    println!("cargo:rustc-link-arg-bin=stategate=-Wl,--no-warn-symbol-ordering");
}

/// What the build compiles from: the crate's sources, this script and the locked dependencies.
const SOURCES: [&str; 3] = ["src", "build.rs", "Cargo.lock"];

/// A hash of [`SOURCES`], paths and bytes, for caches of what the program computed from inputs
/// (`render::scan_cache`): the same sources answer the same, however often the binary is built
/// or copied again. Its file's modification time, the key before, changed with every build, and
/// the Action builds stategate on every run, so a cache it persisted was never used again.
fn source_id(root: &Path) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut files = Vec::new();
    for input in SOURCES {
        files_under(&root.join(input), &mut files);
    }
    files.sort();
    let mut hash = std::collections::hash_map::DefaultHasher::new();
    for file in files {
        file.strip_prefix(root).unwrap_or(&file).hash(&mut hash);
        std::fs::read(&file).unwrap_or_default().hash(&mut hash);
    }
    hash.finish()
}

fn files_under(path: &Path, out: &mut Vec<std::path::PathBuf>) {
    match std::fs::read_dir(path) {
        Ok(entries) => {
            for entry in entries.flatten() {
                files_under(&entry.path(), out);
            }
        }
        Err(_) if path.is_file() => out.push(path.to_path_buf()),
        Err(_) => {}
    }
}

/// Flags that choose a linker (`-C linker=`, `-fuse-ld=`): that linker may not be LLD.
fn links_with_other_flags() -> bool {
    let flags = env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    flags.contains("linker") || flags.contains("fuse-ld")
}

/// Rust 1.90 made its own LLD the linker of x86_64-unknown-linux-gnu, in toolchains that ship it
/// (rustup's do; a distribution's build may link with the system's linker instead).
fn rust_lld_is_default() -> bool {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let ask = |flag: &str| {
        std::process::Command::new(&rustc)
            .arg(flag)
            .output()
            .ok()
            .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    // "rustc 1.95.0 (…)"
    let minor = ask("-V").and_then(|version| {
        let number = version
            .strip_prefix("rustc 1.")?
            .split('.')
            .next()?
            .to_owned();
        number.parse::<u32>().ok()
    });
    let shipped = ask("--print=sysroot").is_some_and(|sysroot| {
        Path::new(&sysroot)
            .join("lib/rustlib/x86_64-unknown-linux-gnu/bin/gcc-ld/ld.lld")
            .is_file()
    });
    minor.is_some_and(|m| m >= 90) && shipped
}
