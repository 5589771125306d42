//! A cache of kustomize renders, so a push renders only the roots whose inputs changed.
//!
//! The key of a root is a SHA-256 over everything rendering it reads: the path and content of
//! every file of its closure (what [`Checkout::for_roots`](super::Checkout::for_roots) writes for
//! it), the render command and the identity of the program it runs (path, size and modification
//! time: a kustomize upgrade is a new key), and this stategate's version (the stored form). A
//! cryptographic hash, because the contents are the pushers': a collision must not be craftable.
//!
//! Entries are files named by their key, written to a temporary file in the same directory and
//! renamed into place (readers never see half an entry). A hit touches the entry; when the
//! directory grows past its bound the least recently used entries go. An entry that does not
//! parse is ignored, removed and rendered again. Only clean renders (no findings) are stored, so a
//! failure is always rendered and reported afresh.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::tree::Tree;

use super::graph::{self, KustomizeGraph};
use super::{RenderOutput, RenderedObject, Renderer};

/// Where the pre-receive hook keeps its cache, inside the git directory.
pub const GIT_DIR_CACHE: &str = "stategate/render-cache";
/// The environment variable naming a cache directory (the CLI's `--cache-dir` wins over it).
pub const CACHE_DIR_ENV: &str = "STATEGATE_CACHE_DIR";
/// The default bound on the cache's size.
pub const DEFAULT_MAX_BYTES: u64 = 256 * 1024 * 1024;

/// A render cache in one directory.
#[derive(Debug, Clone)]
pub struct RenderCache {
    dir: PathBuf,
    max_bytes: u64,
}

/// The hash of everything one render reads.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key(String);

#[derive(Serialize, Deserialize)]
struct Entry {
    objects: Vec<StoredObject>,
}

#[derive(Serialize, Deserialize)]
struct StoredObject {
    value: Value,
    dir: String,
    origin: Option<String>,
}

impl RenderCache {
    /// A cache in `dir`, created when missing. `None` when it cannot be created: rendering then
    /// goes on uncached.
    pub fn open(dir: impl Into<PathBuf>, max_bytes: u64) -> Option<RenderCache> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).ok()?;
        Some(RenderCache { dir, max_bytes })
    }

    /// The directory the cache is in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The key of rendering `root` of `tree` with `command`.
    pub fn key(tree: &dyn Tree, graph: &KustomizeGraph, root: &str, command: &[String]) -> Key {
        let mut hash = KeyHash::new(b"stategate render cache 1", root, command);
        for path in inputs(tree, graph, root) {
            hash.field(path.as_bytes());
            match tree.read(&path) {
                Some(bytes) => {
                    hash.field(b"file");
                    hash.field(&bytes);
                }
                None => hash.field(b"absent"),
            }
        }
        hash.finish()
    }

    /// The key of a build whose every input the gate writes itself into an empty sandbox (Flux
    /// parent patches: the documents and the generated kustomization): `files` are those, as
    /// (path, bytes) in the order written; `label` says what the build stands for (the parent's
    /// file and path, which the stored objects carry).
    pub fn key_of_files<'f>(
        label: &str,
        files: impl IntoIterator<Item = (&'f str, &'f [u8])>,
        command: &[String],
    ) -> Key {
        let mut hash = KeyHash::new(b"stategate sandbox build 1", label, command);
        for (path, bytes) in files {
            hash.field(path.as_bytes());
            hash.field(bytes);
        }
        hash.finish()
    }

    fn path(&self, key: &Key) -> PathBuf {
        self.dir.join(format!("{}.json", key.0))
    }

    /// The stored render, if any. A corrupt entry is removed and counts as a miss.
    pub fn get(&self, key: &Key) -> Option<RenderOutput> {
        let path = self.path(key);
        let bytes = std::fs::read(&path).ok()?;
        let Ok(entry) = serde_json::from_slice::<Entry>(&bytes) else {
            let _ = std::fs::remove_file(&path);
            return None;
        };
        // Recently used: the bound removes the oldest first.
        if let Ok(file) = std::fs::File::options().append(true).open(&path) {
            let _ = file.set_modified(SystemTime::now());
        }
        let objects = entry
            .objects
            .into_iter()
            .map(|o| RenderedObject {
                value: o.value,
                dir: o.dir,
                renderer: Renderer::Kustomize,
                origin: o.origin,
            })
            .collect();
        Some(RenderOutput {
            objects,
            findings: Vec::new(),
        })
    }

    /// Store a clean render (one with findings is not stored), atomically, then keep the bound.
    pub fn put(&self, key: &Key, output: &RenderOutput) {
        if !output.findings.is_empty() {
            return;
        }
        let entry = Entry {
            objects: output
                .objects
                .iter()
                .map(|o| StoredObject {
                    value: o.value.clone(),
                    dir: o.dir.clone(),
                    origin: o.origin.clone(),
                })
                .collect(),
        };
        let Ok(bytes) = serde_json::to_vec(&entry) else {
            return;
        };
        if write_atomically(&self.path(key), &[&bytes]).is_ok() {
            self.evict();
        }
    }

    /// Remove the least recently used entries until the cache is within its bound.
    fn evict(&self) {
        let Ok(listing) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let mut entries: Vec<(SystemTime, u64, PathBuf)> = listing
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .filter_map(|e| {
                let meta = e.metadata().ok()?;
                Some((meta.modified().ok()?, meta.len(), e.path()))
            })
            .collect();
        let mut total: u64 = entries.iter().map(|(_, len, _)| len).sum();
        if total <= self.max_bytes {
            return;
        }
        entries.sort();
        for (_, len, path) in entries {
            if total <= self.max_bytes {
                break;
            }
            if std::fs::remove_file(&path).is_ok() {
                total = total.saturating_sub(len);
            }
        }
    }
}

/// A key being computed: every field is length-prefixed, so no two field lists hash alike.
struct KeyHash(Sha256);

impl KeyHash {
    /// The fields every key starts with: what kind of build, this stategate's version (the
    /// stored form), what is built, the command and the identity of the program it runs.
    fn new(kind: &[u8], what: &str, command: &[String]) -> KeyHash {
        let mut hash = KeyHash(Sha256::new());
        hash.field(kind);
        hash.field(env!("CARGO_PKG_VERSION").as_bytes());
        hash.field(what.as_bytes());
        for arg in command {
            hash.field(arg.as_bytes());
        }
        hash.field(program_identity(command.first().map(String::as_str)).as_bytes());
        hash
    }

    fn field(&mut self, bytes: &[u8]) {
        self.0.update((bytes.len() as u64).to_le_bytes());
        self.0.update(bytes);
    }

    fn finish(self) -> Key {
        Key(data_encoding::HEXLOWER.encode(&self.0.finalize()))
    }
}

/// The cache directory a run uses, the same for every front door: the one given (`--cache-dir`),
/// else `STATEGATE_CACHE_DIR` (when set and not empty), else [`GIT_DIR_CACHE`] in the repository's
/// common git directory, so worktrees share it and a push finds the renders of the previous one.
pub fn cache_dir(repo: &git2::Repository, given: Option<&Path>) -> PathBuf {
    given
        .map(Path::to_path_buf)
        .or_else(|| {
            std::env::var_os(CACHE_DIR_ENV)
                .filter(|dir| !dir.is_empty())
                .map(PathBuf::from)
        })
        .unwrap_or_else(|| repo.commondir().join(GIT_DIR_CACHE))
}

/// The files rendering `root` reads: its closure, plus every file beside a kustomization in it
/// (kustomize reads a few by convention), sorted; the same set a checkout writes for it.
fn inputs(tree: &dyn Tree, graph: &KustomizeGraph, root: &str) -> BTreeSet<String> {
    let closure = graph.closure(root);
    let dirs: BTreeSet<&str> = closure
        .iter()
        .filter(|p| graph.dirs.contains_key(p.as_str()))
        .map(String::as_str)
        .collect();
    let mut files: BTreeSet<String> = closure
        .iter()
        .filter(|p| !graph.dirs.contains_key(p.as_str()))
        .cloned()
        .collect();
    for dir in dirs {
        files.extend(
            tree.files_under(dir)
                .into_iter()
                .filter(|p| graph::split(p).0 == dir),
        );
    }
    files
}

/// What identifies the program a command runs: its resolved path, size and modification time.
fn program_identity(program: Option<&str>) -> String {
    let Some(program) = program else {
        return String::new();
    };
    let resolved = if program.contains('/') {
        Some(PathBuf::from(program))
    } else {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(program))
                .find(|p| p.is_file())
        })
    };
    resolved
        .and_then(|path| file_identity(&path))
        .unwrap_or_else(|| program.to_owned())
}

/// What identifies a program's file: its path, size and modification time, which an upgrade or
/// a rebuild changes. `None` when it cannot be looked at.
fn file_identity(path: &Path) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    let modified = meta
        .modified()
        .ok()
        .and_then(|m| m.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    Some(format!("{} {} {modified}", path.display(), meta.len()))
}

/// Write `parts` as the file at `path`: into a temporary file beside it, renamed into place, so a
/// reader sees the old file or the whole new one, never half of it.
pub(crate) fn write_atomically(path: &Path, parts: &[&[u8]]) -> std::io::Result<()> {
    let mut file = tempfile::NamedTempFile::new_in(path.parent().unwrap_or(Path::new(".")))?;
    for part in parts {
        file.write_all(part)?;
    }
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::MemTree;

    fn tree(files: &[(&str, &str)]) -> MemTree {
        MemTree::with_files("test", files)
    }

    const BASE: (&str, &str) = ("base/kustomization.yaml", "resources:\n- cm.yaml\n");
    const OVERLAY: (&str, &str) = ("prod/kustomization.yaml", "resources:\n- ../base\n");

    fn key_of(files: &[(&str, &str)]) -> Key {
        let t = tree(files);
        let g = KustomizeGraph::build(&t);
        RenderCache::key(&t, &g, "prod", &["kubectl".into(), "kustomize".into()])
    }

    #[test]
    fn the_key_changes_with_any_input_of_the_root_and_only_with_those() {
        let cm = ("base/cm.yaml", "kind: ConfigMap\n");
        let k = key_of(&[BASE, OVERLAY, cm]);
        assert_eq!(k, key_of(&[BASE, OVERLAY, cm]));
        assert_ne!(
            k,
            key_of(&[BASE, OVERLAY, ("base/cm.yaml", "kind: Secret\n")])
        );
        // A file beside a kustomization is read by convention.
        assert_ne!(k, key_of(&[BASE, OVERLAY, cm, ("prod/x.env", "A=1\n")]));
        // A file no kustomization of the root reaches is not an input.
        assert_eq!(k, key_of(&[BASE, OVERLAY, cm, ("other/x.yaml", "a: 1\n")]));
    }

    #[test]
    fn entries_round_trip_and_corrupt_ones_are_misses() {
        let dir = tempfile::tempdir().unwrap();
        let cache = RenderCache::open(dir.path(), DEFAULT_MAX_BYTES).unwrap();
        let key = Key("k".into());
        assert!(cache.get(&key).is_none());
        let output = RenderOutput {
            objects: vec![RenderedObject {
                value: serde_json::json!({"kind": "ConfigMap"}),
                dir: "prod".into(),
                renderer: Renderer::Kustomize,
                origin: Some("base/cm.yaml".into()),
            }],
            findings: Vec::new(),
        };
        cache.put(&key, &output);
        let got = cache.get(&key).unwrap();
        assert_eq!(got.objects[0].value, output.objects[0].value);
        assert_eq!(got.objects[0].origin.as_deref(), Some("base/cm.yaml"));
        std::fs::write(cache.path(&key), b"{not json").unwrap();
        assert!(cache.get(&key).is_none());
        assert!(!cache.path(&key).exists(), "a corrupt entry is removed");
    }

    #[test]
    fn the_least_recently_used_entries_go_past_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let big = RenderOutput {
            objects: vec![RenderedObject {
                value: serde_json::json!({"data": "x".repeat(1000)}),
                dir: String::new(),
                renderer: Renderer::Kustomize,
                origin: None,
            }],
            findings: Vec::new(),
        };
        let cache = RenderCache::open(dir.path(), 2500).unwrap();
        let (a, b, c) = (Key("a".into()), Key("b".into()), Key("c".into()));
        cache.put(&a, &big);
        cache.put(&b, &big);
        let old = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        for key in [&a, &b] {
            std::fs::File::options()
                .append(true)
                .open(cache.path(key))
                .unwrap()
                .set_modified(old)
                .unwrap();
        }
        assert!(cache.get(&a).is_some(), "a is now the most recently used");
        cache.put(&c, &big);
        assert!(cache.path(&a).exists());
        assert!(!cache.path(&b).exists(), "b was used least recently");
        assert!(cache.path(&c).exists());
    }
}
