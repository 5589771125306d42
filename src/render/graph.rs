//! Which kustomizations a change touches: every kustomization file in a tree, the local paths it
//! refers to, and the remote references that would need the network.

use std::collections::{BTreeMap, BTreeSet};

use globset::GlobSet;
use rayon::prelude::*;

use crate::load::{LoadOptions, load_file};
use crate::tree::Tree;

pub use super::paths::{Refusal, is_remote, resolve};

pub const KUSTOMIZATION_FILES: &[&str] =
    &["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// The kustomization file at `file` in `dir`; `None` when it cannot be read. One that does not
/// parse, or is empty, still makes `dir` a kustomization directory: kustomize says what is wrong.
fn read_kustomization(tree: &dyn Tree, dir: &str, file: String) -> Option<Kustomization> {
    let bytes = tree.read(&file)?;
    let loaded = load_file(&file, &bytes, &LoadOptions::default());
    let Some(doc) = loaded.documents.into_iter().next() else {
        return Some(Kustomization {
            file,
            ..Default::default()
        });
    };
    let scanned = super::paths::scan(tree, dir, &doc.value);
    Some(Kustomization {
        file,
        refs: scanned.refs,
        refused: scanned.refused,
    })
}

/// One kustomization directory.
#[derive(Debug, Clone, Default)]
pub struct Kustomization {
    /// The kustomization file itself.
    pub file: String,
    /// Repository paths it reads (files or other kustomization directories), normalised.
    pub refs: Vec<String>,
    /// References the gate will not hand to kustomize: remote, absolute, outside the repository,
    /// or in a field it does not know.
    pub refused: Vec<Refusal>,
}

#[derive(Debug, Default)]
pub struct KustomizeGraph {
    pub dirs: BTreeMap<String, Kustomization>,
    /// Path → kustomization directories that refer to it.
    parents: BTreeMap<String, Vec<String>>,
}

impl KustomizeGraph {
    pub fn build(tree: &dyn Tree) -> KustomizeGraph {
        let mut graph = KustomizeGraph::default();
        // The kustomization files of each directory, in path order: the first that reads counts.
        let mut files: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for path in tree.files_under("") {
            let (dir, name) = split(&path);
            if KUSTOMIZATION_FILES.contains(&name) {
                files.entry(dir.to_owned()).or_default().push(path);
            }
        }
        // Read and scanned on all cores: a scan reads the files each kustomization refers to.
        let read: Vec<(String, Option<Kustomization>)> = files
            .into_par_iter()
            .map(|(dir, candidates)| {
                let found = candidates
                    .into_iter()
                    .find_map(|file| read_kustomization(tree, &dir, file));
                (dir, found)
            })
            .collect();
        for (dir, kustomization) in read {
            if let Some(kustomization) = kustomization {
                graph.dirs.insert(dir, kustomization);
            }
        }
        for (dir, k) in &graph.dirs {
            for r in &k.refs {
                graph
                    .parents
                    .entry(r.clone())
                    .or_default()
                    .push(dir.clone());
            }
        }
        graph
    }

    /// Every path (files and kustomization directories) the kustomization at `dir` reads,
    /// transitively, including its own kustomization files.
    pub fn closure(&self, dir: &str) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![dir.to_string()];
        while let Some(d) = stack.pop() {
            if !seen.insert(d.clone()) {
                continue;
            }
            if let Some(k) = self.dirs.get(&d) {
                seen.insert(k.file.clone());
                stack.extend(k.refs.iter().cloned());
            }
        }
        seen
    }

    /// References kustomize must not follow, in `dir` and every kustomization it reads, with the
    /// kustomization file each is written in.
    pub fn refused_refs(&self, dir: &str) -> Vec<(String, Refusal)> {
        self.closure(dir)
            .iter()
            .filter_map(|d| self.dirs.get(d))
            .flat_map(|k| k.refused.iter().map(|r| (k.file.clone(), r.clone())))
            .collect()
    }

    /// The directories to render for a changed path: the kustomizations that read it, followed up
    /// through the kustomizations that include them to the nearest one `explicit` lists or, failing
    /// that, to the top.
    pub fn roots_for(&self, path: &str, explicit: &GlobSet) -> BTreeSet<String> {
        let (dir, name) = split(path);
        let mut start: Vec<String> = self.parents.get(path).cloned().unwrap_or_default();
        if KUSTOMIZATION_FILES.contains(&name) && self.dirs.contains_key(dir) {
            start.push(dir.to_string());
        }
        let mut roots = BTreeSet::new();
        let mut seen = BTreeSet::new();
        while let Some(d) = start.pop() {
            if !seen.insert(d.clone()) {
                continue;
            }
            let parents = self.parents.get(&d).map(Vec::as_slice).unwrap_or_default();
            if explicit.is_match(&d) || parents.is_empty() {
                roots.insert(d);
            } else {
                start.extend(parents.iter().cloned());
            }
        }
        roots
    }
}

/// (directory, file name) of a repository path; the root directory is "".
pub fn split(path: &str) -> (&str, &str) {
    path.rsplit_once('/').unwrap_or(("", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(files: &[(&str, &str)]) -> KustomizeGraph {
        let tree = crate::tree::MemTree {
            files: files
                .iter()
                .map(|(p, c)| (p.to_string(), c.as_bytes().to_vec()))
                .collect(),
            name: "test".into(),
        };
        KustomizeGraph::build(&tree)
    }

    #[test]
    fn a_changed_base_renders_every_overlay_up_to_the_nearest_listed_directory() {
        let g = graph(&[
            ("apps/web/kustomization.yaml", "resources: [deploy.yaml]\n"),
            ("apps/web/deploy.yaml", "kind: Deployment\n"),
            (
                "clusters/prod/kustomization.yaml",
                "resources: [../../apps/web]\n",
            ),
            (
                "clusters/staging/kustomization.yaml",
                "resources: [../../apps/web]\n",
            ),
        ]);
        let none = GlobSet::empty();
        let roots: Vec<String> = g
            .roots_for("apps/web/deploy.yaml", &none)
            .into_iter()
            .collect();
        assert_eq!(roots, vec!["clusters/prod", "clusters/staging"]);
        let mut listed = globset::GlobSetBuilder::new();
        listed.add(globset::Glob::new("apps/*").expect("glob"));
        let listed = listed.build().expect("globset");
        let roots: Vec<String> = g
            .roots_for("apps/web/deploy.yaml", &listed)
            .into_iter()
            .collect();
        assert_eq!(roots, vec!["apps/web"]);
        // A file no kustomization reads renders nothing (it is diffed as a plain file).
        assert!(g.roots_for("apps/web/notes.yaml", &none).is_empty());
        assert!(g.closure("clusters/prod").contains("apps/web/deploy.yaml"));
    }
}
