//! Which files kustomizations apply as patches: partial objects, judged as parts of the objects
//! they patch rather than as whole ones.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

use rayon::prelude::*;

use crate::load::{LoadOptions, load_file};
use crate::tree::Tree;

use super::graph::{KUSTOMIZATION_FILES, resolve, split};

/// The patch files the kustomization in `dir` lists, resolved against it.
pub fn patch_files(tree: &dyn Tree, dir: &str) -> Vec<String> {
    kustomization_lists(tree, dir, PATCH_FIELDS)
}

/// Files that kustomizations list as patches: partial objects, not validated as whole ones.
/// Patches are looked up in the kustomizations of the changed files' own and ancestor directories,
/// which is where they are declared in practice, and keeps a one-file push from reading the whole
/// repository. A file that any kustomization of the tree also lists as a resource is applied as a
/// whole object, so it is no patch here: only when a changed file is a patch candidate are all
/// kustomizations read to rule that out.
pub struct PatchIndex {
    patches: BTreeSet<String>,
}

impl PatchIndex {
    pub fn build<'p>(
        lists: &KustomizationLists<'_>,
        changed: impl Iterator<Item = &'p str>,
    ) -> PatchIndex {
        let mut dirs = BTreeSet::new();
        for path in changed {
            let mut dir = split(path).0;
            loop {
                if !dirs.insert(dir.to_owned()) {
                    break;
                }
                if dir.is_empty() {
                    break;
                }
                dir = split(dir).0;
            }
        }
        let mut patches: BTreeSet<String> = dirs
            .par_iter()
            .flat_map_iter(|dir| lists.patches_of(dir))
            .collect();
        if !patches.is_empty() {
            patches.retain(|patch| !lists.resources().contains(patch));
        }
        PatchIndex { patches }
    }

    pub fn is_patch(&self, path: &str) -> bool {
        self.patches.contains(path)
    }
}

/// Fields whose entries (strings, or items with a `path`) name patch files.
const PATCH_FIELDS: &[&str] = &["patchesStrategicMerge", "patches", "patchesJson6902"];
/// Fields whose entries name files kustomize loads as whole objects.
const RESOURCE_FIELDS: &[&str] = &["resources", "bases"];

/// What a tree's kustomizations list, each read once per check: the gate builds two patch indexes
/// (before and after Flux adds objects), which look up mostly the same directories, and each read
/// and parsed every kustomization of the tree again (5% of the corpus' `check --all`).
pub struct KustomizationLists<'t> {
    tree: &'t dyn Tree,
    /// Every file a kustomization anywhere in the tree lists as a resource.
    resources: OnceLock<BTreeSet<String>>,
    /// The patches of the kustomization of each directory looked up.
    patches: Mutex<HashMap<String, Vec<String>>>,
}

impl<'t> KustomizationLists<'t> {
    pub fn new(tree: &'t dyn Tree) -> KustomizationLists<'t> {
        KustomizationLists {
            tree,
            resources: OnceLock::new(),
            patches: Mutex::default(),
        }
    }

    /// The patch files the kustomization in `dir` lists.
    fn patches_of(&self, dir: &str) -> Vec<String> {
        if let Some(listed) = self.known_patches().get(dir) {
            return listed.clone();
        }
        let listed = patch_files(self.tree, dir);
        self.known_patches().insert(dir.to_owned(), listed.clone());
        listed
    }

    fn known_patches(&self) -> MutexGuard<'_, HashMap<String, Vec<String>>> {
        self.patches.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn resources(&self) -> &BTreeSet<String> {
        self.resources.get_or_init(|| all_resources(self.tree))
    }
}

/// Every file that a kustomization anywhere in `head` lists as a resource.
fn all_resources(head: &dyn Tree) -> BTreeSet<String> {
    head.files_under("")
        .iter()
        .filter_map(|path| {
            let name = path.rsplit('/').next()?;
            KUSTOMIZATION_FILES
                .contains(&name)
                .then(|| split(path).0.to_owned())
        })
        .collect::<BTreeSet<_>>()
        .par_iter()
        .flat_map_iter(|dir| kustomization_lists(head, dir, RESOURCE_FIELDS))
        .collect()
}

/// The files listed under `fields` by the kustomization in `dir`, resolved against it.
fn kustomization_lists(head: &dyn Tree, dir: &str, fields: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for name in KUSTOMIZATION_FILES {
        let path = crate::tree::join(dir, name);
        let Some(bytes) = head.read(&path) else {
            continue;
        };
        let loaded = load_file(&path, &bytes, &LoadOptions::default());
        for doc in &loaded.documents {
            for listed in listed_paths(&doc.value, fields) {
                if let Some(resolved) = resolve(dir, &listed) {
                    out.push(resolved);
                }
            }
        }
    }
    out
}

/// `patchesStrategicMerge: [file]`, `patches: [{path: file}]`, `resources: [file]`, …
fn listed_paths(kustomization: &serde_json::Value, fields: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for key in fields {
        let Some(items) = kustomization.get(key).and_then(|v| v.as_array()) else {
            continue;
        };
        for item in items {
            let path = item
                .as_str()
                .or_else(|| item.get("path").and_then(|p| p.as_str()));
            // An inline patch is YAML text with a newline, not a file name.
            if let Some(path) = path.filter(|p| !p.contains('\n')) {
                out.push(path.to_owned());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn patch_paths_are_read_from_all_three_fields() {
        let k = json!({
            "patchesStrategicMerge": ["a.yaml"],
            "patches": [{"path": "b.yaml"}, {"patch": "- op: x\n"}, {"path": "../c.yaml"}],
            "patchesJson6902": [{"path": "d.yaml"}]
        });
        assert_eq!(
            listed_paths(&k, PATCH_FIELDS),
            vec!["a.yaml", "b.yaml", "../c.yaml", "d.yaml"]
        );
    }

    #[test]
    fn a_file_listed_as_a_resource_anywhere_is_no_patch() {
        let tree = crate::tree::MemTree {
            files: [
                (
                    "apps/kustomization.yaml",
                    "resources: [web.yaml]\npatches: [{path: p.yaml}]\n",
                ),
                ("apps/web.yaml", "kind: Deployment\n"),
                ("apps/p.yaml", "kind: Deployment\n"),
                ("other/kustomization.yaml", "resources: [../apps/p.yaml]\n"),
            ]
            .iter()
            .map(|(p, c)| (p.to_string(), c.as_bytes().to_vec()))
            .collect(),
            name: "test".into(),
        };
        assert!(
            !PatchIndex::build(&KustomizationLists::new(&tree), ["apps/p.yaml"].into_iter())
                .is_patch("apps/p.yaml")
        );
        assert_eq!(patch_files(&tree, "apps"), vec!["apps/p.yaml"]);
    }

    #[test]
    fn a_patch_listed_only_as_a_patch_is_one() {
        let tree = crate::tree::MemTree {
            files: [
                (
                    "apps/kustomization.yaml",
                    "resources: [web.yaml]\npatches: [{path: p.yaml}]\n",
                ),
                ("apps/web.yaml", "kind: Deployment\n"),
                ("apps/p.yaml", "kind: Deployment\n"),
            ]
            .iter()
            .map(|(p, c)| (p.to_string(), c.as_bytes().to_vec()))
            .collect(),
            name: "test".into(),
        };
        assert!(
            PatchIndex::build(&KustomizationLists::new(&tree), ["apps/p.yaml"].into_iter())
                .is_patch("apps/p.yaml")
        );
    }
}
