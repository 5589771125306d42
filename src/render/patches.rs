//! Which files kustomizations apply as patches: partial objects, judged as parts of the objects
//! they patch rather than as whole ones.

use std::collections::BTreeSet;

use rayon::prelude::*;

use crate::tree::Tree;

use super::graph::{Kustomizations, split};

/// The patch files the kustomizations in `dir` list, resolved against it.
pub fn patch_files(tree: &dyn Tree, dir: &str) -> Vec<String> {
    Kustomizations::new(tree)
        .in_dir(dir)
        .iter()
        .flat_map(|k| k.patches.clone())
        .collect()
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
        kustomizations: &Kustomizations<'_>,
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
            .flat_map_iter(|dir| kustomizations.in_dir(dir))
            .flat_map_iter(|k| k.patches.clone())
            .collect();
        if !patches.is_empty() {
            patches.retain(|patch| !kustomizations.resources().contains(patch));
        }
        PatchIndex { patches }
    }

    pub fn is_patch(&self, path: &str) -> bool {
        self.patches.contains(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::graph::{PATCH_FIELDS, listed_paths};
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
        let tree = crate::tree::MemTree::with_files(
            "test",
            &[
                (
                    "apps/kustomization.yaml",
                    "resources: [web.yaml]\npatches: [{path: p.yaml}]\n",
                ),
                ("apps/web.yaml", "kind: Deployment\n"),
                ("apps/p.yaml", "kind: Deployment\n"),
                ("other/kustomization.yaml", "resources: [../apps/p.yaml]\n"),
            ],
        );
        assert!(
            !PatchIndex::build(&Kustomizations::new(&tree), ["apps/p.yaml"].into_iter())
                .is_patch("apps/p.yaml")
        );
        assert_eq!(patch_files(&tree, "apps"), vec!["apps/p.yaml"]);
    }

    #[test]
    fn a_patch_listed_only_as_a_patch_is_one() {
        let tree = crate::tree::MemTree::with_files(
            "test",
            &[
                (
                    "apps/kustomization.yaml",
                    "resources: [web.yaml]\npatches: [{path: p.yaml}]\n",
                ),
                ("apps/web.yaml", "kind: Deployment\n"),
                ("apps/p.yaml", "kind: Deployment\n"),
            ],
        );
        assert!(
            PatchIndex::build(&Kustomizations::new(&tree), ["apps/p.yaml"].into_iter())
                .is_patch("apps/p.yaml")
        );
    }
}
