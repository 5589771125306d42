//! Which kustomizations a change touches: every kustomization file in a tree, the local paths it
//! refers to, and the remote references that would need the network.

use std::collections::{BTreeMap, BTreeSet};

use globset::GlobSet;
use serde_json::Value;

use crate::load::{LoadOptions, load_file};
use crate::tree::Tree;

pub const KUSTOMIZATION_FILES: &[&str] =
    &["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// Fields of a kustomization whose strings (or whose items' `path`) name files or directories.
const PATH_LISTS: &[&str] = &[
    "resources",
    "bases",
    "components",
    "crds",
    "patchesStrategicMerge",
    "transformers",
    "generators",
    "validators",
];
const PATH_ITEM_LISTS: &[&str] = &["patches", "patchesJson6902", "replacements"];
const GENERATORS: &[&str] = &["configMapGenerator", "secretGenerator"];

/// One kustomization directory.
#[derive(Debug, Clone, Default)]
pub struct Kustomization {
    /// The kustomization file itself.
    pub file: String,
    /// Repository paths it reads (files or other kustomization directories), normalised.
    pub refs: Vec<String>,
    /// References kustomize would fetch over the network.
    pub remote: Vec<String>,
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
        for path in tree.files_under("") {
            let (dir, name) = split(&path);
            if !KUSTOMIZATION_FILES.contains(&name) || graph.dirs.contains_key(dir) {
                continue;
            }
            let Some(bytes) = tree.read(&path) else {
                continue;
            };
            let loaded = load_file(&path, &bytes, &LoadOptions::default());
            let Some(doc) = loaded.documents.into_iter().next() else {
                // Unparsable or empty: still a kustomization dir, kustomize will say what's wrong.
                graph.dirs.insert(
                    dir.to_string(),
                    Kustomization {
                        file: path,
                        ..Default::default()
                    },
                );
                continue;
            };
            graph
                .dirs
                .insert(dir.to_string(), parse(dir, &path, &doc.value));
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

    /// Remote references reachable from `dir`.
    pub fn remote_refs(&self, dir: &str) -> Vec<String> {
        self.closure(dir)
            .iter()
            .filter_map(|d| self.dirs.get(d))
            .flat_map(|k| k.remote.iter().cloned())
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

fn parse(dir: &str, file: &str, value: &Value) -> Kustomization {
    let mut k = Kustomization {
        file: file.to_string(),
        ..Default::default()
    };
    let mut add = |raw: &str| {
        if is_remote(raw) {
            k.remote.push(raw.to_string());
        } else if let Some(p) = resolve(dir, raw) {
            k.refs.push(p);
        }
    };
    for field in PATH_LISTS {
        for item in list(value, field) {
            if let Some(s) = item.as_str() {
                add(s);
            }
        }
    }
    for field in PATH_ITEM_LISTS {
        for item in list(value, field) {
            if let Some(s) = item.get("path").and_then(Value::as_str) {
                add(s);
            }
        }
    }
    for field in GENERATORS {
        for item in list(value, field) {
            for key in ["files", "envs"] {
                for f in list(item, key).iter().filter_map(Value::as_str) {
                    add(f.rsplit_once('=').map_or(f, |(_, p)| p));
                }
            }
            if let Some(f) = item.get("env").and_then(Value::as_str) {
                add(f);
            }
        }
    }
    for chart in list(value, "helmCharts") {
        if let Some(repo) = chart.get("repo").and_then(Value::as_str) {
            k.remote.push(repo.to_string());
        }
    }
    k
}

fn list<'a>(value: &'a Value, field: &str) -> &'a [Value] {
    value
        .get(field)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// kustomize fetches these; the gate runs without network, so they are errors.
pub fn is_remote(reference: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "http://",
        "https://",
        "git@",
        "ssh://",
        "git::",
        "github.com/",
        "gitlab.com/",
        "bitbucket.org/",
        "oci://",
    ];
    PREFIXES.iter().any(|p| reference.starts_with(p)) || reference.contains("?ref=")
}

/// `dir` joined with a relative reference, `.`/`..` resolved; `None` if it leaves the repository.
pub fn resolve(dir: &str, reference: &str) -> Option<String> {
    let mut parts: Vec<&str> = dir.split('/').filter(|s| !s.is_empty()).collect();
    for seg in reference.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            s => parts.push(s),
        }
    }
    Some(parts.join("/"))
}

/// (directory, file name) of a repository path; the root directory is "".
pub fn split(path: &str) -> (&str, &str) {
    path.rsplit_once('/').unwrap_or(("", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_resolve_relative_to_the_kustomization() {
        assert_eq!(
            resolve("a/b/overlays/prod", "../../base").as_deref(),
            Some("a/b/base")
        );
        assert_eq!(resolve("a", "./x.yaml").as_deref(), Some("a/x.yaml"));
        assert_eq!(resolve("", "../x"), None);
    }

    #[test]
    fn remote_references_are_recognised() {
        assert!(is_remote("github.com/org/repo//deploy?ref=v1"));
        assert!(is_remote("https://example.com/x.yaml"));
        assert!(!is_remote("../base"));
    }

    #[test]
    fn kustomization_fields_give_local_and_remote_references() {
        let v = serde_json::json!({
            "resources": ["../../base", "https://example.com/crd.yaml"],
            "patches": [{"path": "patch.yaml"}],
            "configMapGenerator": [{"files": ["cfg=conf/app.ini"]}],
        });
        let k = parse("apps/prod", "apps/prod/kustomization.yaml", &v);
        assert_eq!(
            k.refs,
            vec!["base", "apps/prod/patch.yaml", "apps/prod/conf/app.ini"]
        );
        assert_eq!(k.remote, vec!["https://example.com/crd.yaml"]);
    }

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
