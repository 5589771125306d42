//! Symlinks inside the repository, followed the way kubectl and kustomize (with
//! `LoadRestrictionsNone`, as Flux builds) follow them, but only ever within the repository: the
//! link text is resolved one component at a time against the side being read (a commit's tree,
//! the index, or the working tree without following anything on disk), and a target that leaves
//! the root, dangles or loops is never read.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

/// One path of a side, as the resolver sees it.
pub enum Entry {
    File(Vec<u8>),
    Link(String),
    Dir,
    Missing,
    /// A submodule or anything else that is not read.
    Other,
}

/// Where a symlink leads.
#[derive(Debug, PartialEq, Eq)]
pub enum Target {
    /// A regular file inside the repository, with its content.
    File { path: String, bytes: Vec<u8> },
    /// A directory inside the repository.
    Dir(String),
    /// Why the link cannot be followed: it leaves the repository, dangles, or loops.
    Refused(String),
    /// A submodule or other entry that is not read.
    Other(String),
}

/// A side of a change that symlinks are resolved against.
pub trait Side {
    fn entry(&mut self, path: &str) -> std::io::Result<Entry>;
}

/// Linux gives up after 40 links in one lookup; so do we.
const MAX_HOPS: usize = 40;

/// Resolve the link at `link` (a repository-relative `/` path) whose text is `text`.
pub fn resolve(side: &mut dyn Side, link: &str, text: &str) -> std::io::Result<Target> {
    let mut resolved: Vec<String> = parent(link)
        .split('/')
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect();
    let mut pending: VecDeque<String> = VecDeque::new();
    if let Some(refused) = push_text(&mut pending, text) {
        return Ok(refused);
    }
    let mut hops = 1;
    while let Some(part) = pending.pop_front() {
        match part.as_str() {
            "" | "." => continue,
            ".." => {
                if resolved.pop().is_none() {
                    return Ok(outside(text));
                }
                continue;
            }
            _ => {}
        }
        let candidate = join(&resolved, &part);
        match side.entry(&candidate)? {
            Entry::Dir => resolved.push(part),
            Entry::Link(next) => {
                hops += 1;
                if hops > MAX_HOPS {
                    return Ok(Target::Refused(format!(
                        "symlink `{text}` loops (more than {MAX_HOPS} links)"
                    )));
                }
                let mut rest = VecDeque::new();
                if let Some(refused) = push_text(&mut rest, &next) {
                    return Ok(refused);
                }
                rest.extend(pending.drain(..));
                pending = rest;
            }
            Entry::File(bytes) if pending.iter().all(|p| p.is_empty() || p == ".") => {
                return Ok(Target::File {
                    path: candidate,
                    bytes,
                });
            }
            Entry::File(_) | Entry::Missing => {
                return Ok(Target::Refused(format!(
                    "symlink `{text}` points at `{candidate}`, which does not exist in the repository"
                )));
            }
            Entry::Other => {
                return Ok(Target::Other(format!(
                    "symlink to `{candidate}`, which is not a regular file, not followed"
                )));
            }
        }
    }
    Ok(Target::Dir(resolved.join("/")))
}

/// Queue the components of a link's text; an absolute target always leaves the repository.
fn push_text(pending: &mut VecDeque<String>, text: &str) -> Option<Target> {
    if text.starts_with('/') || text.is_empty() {
        return Some(outside(text));
    }
    pending.extend(text.split('/').map(str::to_owned));
    None
}

fn outside(text: &str) -> Target {
    Target::Refused(format!(
        "symlink `{text}` leaves the repository: kubectl would read a file the gate cannot see"
    ))
}

fn parent(path: &str) -> &str {
    path.rfind('/').map_or("", |i| &path[..i])
}

fn join(dirs: &[String], name: &str) -> String {
    if dirs.is_empty() {
        name.to_owned()
    } else {
        format!("{}/{name}", dirs.join("/"))
    }
}

/// A commit's tree.
pub struct TreeSide<'a, 'r> {
    pub repo: &'r git2::Repository,
    pub tree: &'a git2::Tree<'r>,
}

impl Side for TreeSide<'_, '_> {
    fn entry(&mut self, path: &str) -> std::io::Result<Entry> {
        let Ok(entry) = self.tree.get_path(Path::new(path)) else {
            return Ok(Entry::Missing);
        };
        blob_entry(self.repo, entry.filemode(), entry.id())
    }
}

/// The index (`--staged`): directories are the prefixes of its paths.
pub struct IndexSide<'a> {
    pub repo: &'a git2::Repository,
    pub index: &'a git2::Index,
}

impl Side for IndexSide<'_> {
    fn entry(&mut self, path: &str) -> std::io::Result<Entry> {
        if let Some(entry) = self.index.get_path(Path::new(path), 0) {
            return blob_entry(self.repo, entry.mode as i32, entry.id);
        }
        let prefix = format!("{path}/");
        let is_dir = self
            .index
            .iter()
            .any(|e| e.path.starts_with(prefix.as_bytes()));
        Ok(if is_dir { Entry::Dir } else { Entry::Missing })
    }
}

fn blob_entry(repo: &git2::Repository, mode: i32, id: git2::Oid) -> std::io::Result<Entry> {
    let content = || -> std::io::Result<Vec<u8>> {
        repo.find_blob(id)
            .map(|b| b.content().to_vec())
            .map_err(std::io::Error::other)
    };
    Ok(match mode {
        0o100644 | 0o100755 => Entry::File(content()?),
        0o120000 => match String::from_utf8(content()?) {
            Ok(text) => Entry::Link(text),
            Err(_) => Entry::Other,
        },
        0o040000 => Entry::Dir,
        _ => Entry::Other,
    })
}

/// The working tree, read without ever following a symlink on disk: each component was checked to
/// be a real directory before the next is looked at.
pub struct WorkSide<'a> {
    pub root: &'a Path,
}

impl Side for WorkSide<'_> {
    fn entry(&mut self, path: &str) -> std::io::Result<Entry> {
        let full: PathBuf = self.root.join(path);
        let meta = match std::fs::symlink_metadata(&full) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Entry::Missing),
            Err(e) => return Err(e),
        };
        let kind = meta.file_type();
        if kind.is_symlink() {
            let text = std::fs::read_link(&full)?;
            return Ok(match text.to_str() {
                Some(text) => Entry::Link(text.to_owned()),
                None => Entry::Other,
            });
        }
        if kind.is_dir() {
            return Ok(if full.join(".git").exists() {
                Entry::Other
            } else {
                Entry::Dir
            });
        }
        if !kind.is_file() {
            return Ok(Entry::Other);
        }
        match super::detect::read_regular(&full, &meta)? {
            Some(bytes) => Ok(Entry::File(bytes)),
            None => Ok(Entry::Other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Paths ending in `/` are directories; `@text` values are links.
    struct Mem(BTreeMap<&'static str, &'static str>);

    impl Side for Mem {
        fn entry(&mut self, path: &str) -> std::io::Result<Entry> {
            if self.0.keys().any(|k| k.starts_with(&format!("{path}/"))) {
                return Ok(Entry::Dir);
            }
            Ok(match self.0.get(path) {
                Some(v) if v.starts_with('@') => Entry::Link(v[1..].to_owned()),
                Some(v) => Entry::File(v.as_bytes().to_vec()),
                None => Entry::Missing,
            })
        }
    }

    fn side() -> Mem {
        Mem(BTreeMap::from([
            ("base/pod.yaml", "pod"),
            ("base/alias", "@pod.yaml"),
            ("dirlink", "@base"),
            ("loop/a", "@b"),
            ("loop/b", "@a"),
        ]))
    }

    fn target(link: &str, text: &str) -> Target {
        resolve(&mut side(), link, text).unwrap()
    }

    #[test]
    fn links_resolve_within_the_repository_through_other_links() {
        let file = |path: &str| Target::File {
            path: path.into(),
            bytes: b"pod".to_vec(),
        };
        assert_eq!(
            target("apps/x.yaml", "../base/pod.yaml"),
            file("base/pod.yaml")
        );
        assert_eq!(target("x.yaml", "base/alias"), file("base/pod.yaml"));
        assert_eq!(target("x.yaml", "dirlink/pod.yaml"), file("base/pod.yaml"));
        assert_eq!(
            target("x.yaml", "./base/../base/pod.yaml"),
            file("base/pod.yaml")
        );
        assert_eq!(target("x", "base"), Target::Dir("base".into()));
    }

    #[test]
    fn links_that_leave_dangle_or_loop_are_refused() {
        for (link, text) in [
            ("x.yaml", "/etc/passwd"),
            ("x.yaml", "../outside.yaml"),
            ("a/x.yaml", "../../x.yaml"),
            ("x.yaml", "dirlink/../../etc"),
            ("x.yaml", "missing.yaml"),
            ("x.yaml", "base/pod.yaml/more"),
            ("x.yaml", "loop/a"),
            ("x.yaml", ""),
        ] {
            assert!(
                matches!(target(link, text), Target::Refused(_)),
                "{link} -> {text}"
            );
        }
    }
}
