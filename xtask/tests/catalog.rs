//! `cargo xtask schemas` on the corpus archive rebuilds the committed catalog: the same groups,
//! kinds and versions, the same JSON in every frame, and (the build being deterministic) the same
//! bytes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The corpus archive; `None` (with the reason printed) without the corpus, a failure under CI.
fn archive() -> Option<PathBuf> {
    let corpus = std::env::var_os("STATEGATE_CORPUS")
        .map_or_else(|| root().join("../shared/corpus"), PathBuf::from);
    let archive = corpus.join("crds-catalog/crds-catalog.tar.zst");
    if archive.is_file() {
        return Some(archive);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true but the corpus archive {} is missing",
        archive.display()
    );
    eprintln!(
        "skipped: no corpus archive at {} (set STATEGATE_CORPUS)",
        archive.display()
    );
    None
}

/// Group → kind and version keys.
fn index(decoded: &BTreeMap<String, BTreeMap<String, String>>) -> BTreeMap<&str, BTreeSet<&str>> {
    decoded
        .iter()
        .map(|(group, kinds)| (group.as_str(), kinds.keys().map(String::as_str).collect()))
        .collect()
}

#[test]
fn the_generator_rebuilds_the_committed_catalog() {
    let Some(archive) = archive() else {
        return;
    };
    let out = tempfile::tempdir().unwrap();
    let catalog = xtask::build(&archive).unwrap();
    xtask::write(&catalog, out.path()).unwrap();
    let committed = root().join("schemas");

    let built = xtask::decode(out.path()).unwrap();
    let shipped = xtask::decode(&committed).unwrap();
    let (built_index, shipped_index) = (index(&built), index(&shipped));
    assert_eq!(
        built_index.keys().collect::<Vec<_>>(),
        shipped_index.keys().collect::<Vec<_>>(),
        "groups"
    );
    assert_eq!(built_index, shipped_index, "kinds and versions per group");
    for (group, kinds) in &built {
        for (key, json) in kinds {
            assert!(
                &shipped[group][key] == json,
                "the JSON of {group}/{key} differs"
            );
        }
    }
    for name in [
        "crds-catalog.bin",
        "crds-catalog.dict",
        "crds-catalog.index",
        "crds-catalog.LICENSE",
    ] {
        let same = std::fs::read(out.path().join(name)).unwrap()
            == std::fs::read(committed.join(name)).unwrap();
        assert!(
            same,
            "{name} differs from the committed one: run `cargo xtask schemas`"
        );
    }
}
