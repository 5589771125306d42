//! `cargo xtask schemas [--archive FILE] [--out DIR]`: rebuild the embedded CRD catalog (see the
//! library's documentation for the format). Defaults: the archive of the corpus
//! (`$STATEGATE_CORPUS`, else `../shared/corpus` beside the checkout) and `schemas/`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask schemas [--archive crds-catalog.tar.zst] [--out DIR]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &[String]) -> Result<(), String> {
    let Some((task, rest)) = args.split_first() else {
        return Err(USAGE.into());
    };
    if task != "schemas" {
        return Err(format!("unknown task `{task}`\n{USAGE}"));
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("no workspace root")?
        .to_path_buf();
    let mut archive = std::env::var_os("STATEGATE_CORPUS")
        .map_or_else(|| root.join("../shared/corpus"), PathBuf::from)
        .join("crds-catalog/crds-catalog.tar.zst");
    let mut out = root.join("schemas");
    let mut rest = rest.iter();
    while let Some(flag) = rest.next() {
        let value = rest
            .next()
            .ok_or(format!("{flag} needs a value\n{USAGE}"))?;
        match flag.as_str() {
            "--archive" => archive = PathBuf::from(value),
            "--out" => out = PathBuf::from(value),
            _ => return Err(format!("unknown flag `{flag}`\n{USAGE}")),
        }
    }
    let catalog = xtask::build(&archive)?;
    xtask::write(&catalog, &out).map_err(|e| format!("{}: {e}", out.display()))?;
    eprintln!(
        "{} schemas in {} groups: {} bytes of JSON, {} bytes of frames + {} bytes of dictionary, written to {}",
        catalog.schemas,
        catalog.groups,
        catalog.json_bytes,
        catalog.frames.len(),
        catalog.dictionary.len(),
        out.display()
    );
    Ok(())
}
