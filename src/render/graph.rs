//! Which kustomizations a change touches: every kustomization file in a tree, the local paths it
//! refers to, and the remote references that would need the network.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use globset::GlobSet;
use rayon::prelude::*;

use crate::load::{LoadOptions, load_file};
use crate::sync::locked;
use crate::tree::{Tree, join};

pub use super::paths::{Refusal, is_remote, resolve};

pub const KUSTOMIZATION_FILES: &[&str] =
    &["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// Fields whose entries (strings, or items with a `path`) name patch files.
pub const PATCH_FIELDS: &[&str] = &["patchesStrategicMerge", "patches", "patchesJson6902"];
/// Fields whose entries name files kustomize loads as whole objects.
pub const RESOURCE_FIELDS: &[&str] = &["resources", "bases"];

/// The kustomization file at `file`; `None` when it cannot be read. One that does not parse, or
/// is empty, still makes its directory a kustomization directory: kustomize says what is wrong.
pub fn read_kustomization(tree: &dyn Tree, file: &str) -> Option<Kustomization> {
    let bytes = tree.read(file)?;
    let dir = split(file).0;
    let loaded = load_file(file, &bytes, &LoadOptions::default());
    let listed = |fields: &[&str]| -> Vec<String> {
        loaded
            .documents
            .iter()
            .flat_map(|doc| listed_paths(&doc.value, fields))
            .filter_map(|listed| resolve(dir, &listed))
            .collect()
    };
    let patches = listed(PATCH_FIELDS);
    let resources = listed(RESOURCE_FIELDS);
    let scanned = loaded
        .documents
        .first()
        .map(|doc| super::paths::scan(tree, dir, &doc.value))
        .unwrap_or_default();
    Some(Kustomization {
        file: file.to_owned(),
        refs: scanned.refs,
        refused: scanned.refused,
        patches,
        resources,
    })
}

/// `patchesStrategicMerge: [file]`, `patches: [{path: file}]`, `resources: [file]`, …
pub fn listed_paths(kustomization: &serde_json::Value, fields: &[&str]) -> Vec<String> {
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

/// One kustomization file.
#[derive(Debug, Clone, Default)]
pub struct Kustomization {
    /// The kustomization file itself.
    pub file: String,
    /// Repository paths it reads (files or other kustomization directories), normalised.
    pub refs: Vec<String>,
    /// References the gate will not hand to kustomize: remote, absolute, outside the repository,
    /// or in a field it does not know.
    pub refused: Vec<Refusal>,
    /// The files it lists as patches ([`PATCH_FIELDS`], in every document of the file), resolved.
    pub patches: Vec<String>,
    /// The files and directories it lists as resources ([`RESOURCE_FIELDS`]), resolved.
    pub resources: Vec<String>,
}

/// The kustomization files of one tree, each read and parsed once per check. The Flux indexes,
/// the patch index and the graph each read every kustomization of the tree again: on the corpus'
/// `check --all`, 8,169 opens of 559 kustomization files (one in ten of the run's system calls).
pub struct Kustomizations<'t> {
    tree: &'t dyn Tree,
    /// Path → the kustomization read there (`None`: no readable file).
    read: Mutex<HashMap<String, Option<Arc<Kustomization>>>>,
    /// Every kustomization file of the tree, by directory, in the tree's order.
    listed: OnceLock<BTreeMap<String, Vec<String>>>,
    graph: OnceLock<KustomizeGraph>,
    /// Every file a kustomization anywhere in the tree lists as a resource.
    resources: OnceLock<BTreeSet<String>>,
}

impl<'t> Kustomizations<'t> {
    pub fn new(tree: &'t dyn Tree) -> Kustomizations<'t> {
        Kustomizations {
            tree,
            read: Mutex::default(),
            listed: OnceLock::new(),
            graph: OnceLock::new(),
            resources: OnceLock::new(),
        }
    }

    /// The tree the kustomizations are read from.
    pub fn tree(&self) -> &'t dyn Tree {
        self.tree
    }

    /// The kustomization file at `path`, read on first use.
    pub fn file(&self, path: &str) -> Option<Arc<Kustomization>> {
        if let Some(known) = self.known().get(path) {
            return known.clone();
        }
        let read = read_kustomization(self.tree, path).map(Arc::new);
        self.known().insert(path.to_owned(), read.clone());
        read
    }

    /// The kustomization files in `dir`, read on first use. Until something lists the whole tree,
    /// each name is looked up: a push of one file looks up its own directories only.
    pub fn in_dir(&self, dir: &str) -> Vec<Arc<Kustomization>> {
        if let Some(listed) = self.listed.get() {
            let files = listed.get(dir).map(Vec::as_slice).unwrap_or_default();
            return files.iter().filter_map(|file| self.file(file)).collect();
        }
        KUSTOMIZATION_FILES
            .iter()
            .filter_map(|name| self.file(&join(dir, name)))
            .collect()
    }

    /// The graph of every kustomization of the tree.
    pub fn graph(&self) -> &KustomizeGraph {
        self.graph.get_or_init(|| KustomizeGraph::of(self))
    }

    /// Every file a kustomization anywhere in the tree lists as a resource.
    pub fn resources(&self) -> &BTreeSet<String> {
        self.resources.get_or_init(|| {
            self.listed()
                .par_iter()
                .flat_map_iter(|(_, files)| files.clone())
                .flat_map_iter(|file| self.file(&file).map(|k| k.resources.clone()))
                .flatten()
                .collect()
        })
    }

    fn listed(&self) -> &BTreeMap<String, Vec<String>> {
        self.listed.get_or_init(|| {
            let mut files: BTreeMap<String, Vec<String>> = BTreeMap::new();
            let paths = self
                .tree
                .files_under_where("", &|p| KUSTOMIZATION_FILES.contains(&split(p).1));
            for path in paths {
                files
                    .entry(split(&path).0.to_owned())
                    .or_default()
                    .push(path);
            }
            files
        })
    }

    fn known(&self) -> MutexGuard<'_, HashMap<String, Option<Arc<Kustomization>>>> {
        locked(&self.read)
    }
}

#[derive(Debug, Default)]
pub struct KustomizeGraph {
    /// Shared with the [`Kustomizations`] it was built from.
    pub dirs: BTreeMap<String, Arc<Kustomization>>,
    /// Path → kustomization directories that refer to it.
    parents: BTreeMap<String, Vec<String>>,
}

impl KustomizeGraph {
    pub fn build(tree: &dyn Tree) -> KustomizeGraph {
        KustomizeGraph::of(&Kustomizations::new(tree))
    }

    fn of(kustomizations: &Kustomizations<'_>) -> KustomizeGraph {
        let mut graph = KustomizeGraph::default();
        // Read and scanned on all cores: a scan reads the files each kustomization refers to.
        // The first kustomization file of a directory that reads counts.
        let read: Vec<(String, Option<Arc<Kustomization>>)> = kustomizations
            .listed()
            .par_iter()
            .map(|(dir, candidates)| {
                let found = candidates.iter().find_map(|file| kustomizations.file(file));
                (dir.clone(), found)
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
        let tree = crate::tree::MemTree::with_files("test", files);
        KustomizeGraph::build(&tree)
    }

    #[test]
    fn each_kustomization_is_read_once_whatever_asks_for_it() {
        let tree = crate::tree::CountingTree::new(&[
            (
                "apps/kustomization.yaml",
                "resources: [web.yaml]\npatches: [{path: p.yaml}]\n",
            ),
            ("apps/web.yaml", "kind: Deployment\n"),
            ("apps/p.yaml", "kind: Deployment\n"),
            ("prod/kustomization.yaml", "resources: [../apps]\n"),
        ]);
        let kustomizations = Kustomizations::new(&tree);
        // Before the tree is listed, a directory's kustomization files are looked up by name.
        let apps = kustomizations.in_dir("apps");
        assert_eq!(apps.len(), 1);
        assert_eq!(apps[0].patches, ["apps/p.yaml"]);
        assert_eq!(apps[0].resources, ["apps/web.yaml"]);
        assert!(kustomizations.in_dir("apps/web").is_empty());
        let graph = kustomizations.graph();
        assert!(graph.closure("prod").contains("apps/web.yaml"));
        assert!(kustomizations.resources().contains("apps/web.yaml"));
        assert!(kustomizations.resources().contains("apps"));
        assert_eq!(kustomizations.in_dir("prod")[0].resources, ["apps"]);
        // Once it is listed, only the files it has are read.
        assert!(kustomizations.in_dir("apps/other").is_empty());
        let reads = tree.reads.lock().unwrap().clone();
        let kustomization_reads: Vec<(&str, usize)> = reads
            .iter()
            .filter(|(p, _)| KUSTOMIZATION_FILES.contains(&split(p).1))
            .map(|(p, n)| (p.as_str(), *n))
            .collect();
        assert_eq!(
            kustomization_reads,
            [
                ("apps/Kustomization", 1),
                ("apps/kustomization.yaml", 1),
                ("apps/kustomization.yml", 1),
                ("apps/web/Kustomization", 1),
                ("apps/web/kustomization.yaml", 1),
                ("apps/web/kustomization.yml", 1),
                ("prod/kustomization.yaml", 1),
            ]
        );
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
