//! Walking a commit's tree on several threads.
//!
//! Every directory of a commit is a tree object that git must find and inflate: 1,237 of them,
//! all loose, in the corpus repositories, where one walk took 20-25 ms. The stream waits for such a
//! walk when it asks whether the base has CRDs (every worker needs the answer), and the hook walks
//! the whole trusted tree to index a Flux repository. So the trees of one depth are shared among
//! threads, each with its own repository from the pool, and their subtrees make the next depth.
//!
//! Plain threads, not rayon's: walks run inside `OnceLock` initialisers, where a rayon worker
//! waiting for the walk could take up a job that waits on the same cell.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::RepoPool;
use crate::sync::{locked, unlocked};

/// Below this many trees at one depth, the walking thread reads them itself: a thread costs
/// more to start than a few small trees take to read.
const SHARED_FROM: usize = 8;

/// A directory still to read: its path with a trailing `/` (empty for the start), and its tree.
type Pending = (String, git2::Oid);

/// What a walk found: what `visit` returned, in no order, and the directories whose tree could
/// not be read (a repository missing objects), by path with a trailing `/`.
pub(super) struct Walked<T> {
    pub found: Vec<T>,
    pub missing: Vec<String>,
}

/// Every entry below the tree `start`, at any depth, shown to `visit` with its path (`base`
/// prepended). Subtrees are shown and then entered.
pub(super) fn entries<T: Send>(
    pool: &RepoPool,
    start: git2::Oid,
    base: &str,
    visit: &(dyn Fn(&str, &git2::TreeEntry<'_>) -> Option<T> + Sync),
) -> Walked<T> {
    let mut out = Walked {
        found: Vec::new(),
        missing: Vec::new(),
    };
    let mut depth: Vec<Pending> = vec![(base.to_owned(), start)];
    while !depth.is_empty() {
        let next = Mutex::new(Vec::new());
        let found = Mutex::new(Vec::new());
        let missing = Mutex::new(Vec::new());
        let claimed = AtomicUsize::new(0);
        let shared = Shared {
            depth: &depth,
            claimed: &claimed,
            next: &next,
            found: &found,
            missing: &missing,
        };
        let work = || read_trees(pool, &shared, visit);
        // As many threads as the check's own (`--jobs`), asked only when they will be used.
        let helpers = if depth.len() < SHARED_FROM {
            0
        } else {
            rayon::current_num_threads().saturating_sub(1)
        };
        std::thread::scope(|s| {
            for _ in 0..helpers {
                s.spawn(work);
            }
            work();
        });
        out.found.extend(unlocked(found).into_iter().flatten());
        out.missing.append(&mut unlocked(missing));
        depth = unlocked(next);
    }
    out
}

/// One depth of a walk, shared by its threads: the trees to read, how many were claimed, and what
/// the threads found.
struct Shared<'a, T> {
    depth: &'a [Pending],
    claimed: &'a AtomicUsize,
    next: &'a Mutex<Vec<Pending>>,
    found: &'a Mutex<Vec<Vec<T>>>,
    missing: &'a Mutex<Vec<String>>,
}

/// Read the trees of the depth that no other thread claimed first, each once.
fn read_trees<T: Send>(
    pool: &RepoPool,
    shared: &Shared<'_, T>,
    visit: &(dyn Fn(&str, &git2::TreeEntry<'_>) -> Option<T> + Sync),
) {
    let mut subtrees = Vec::new();
    let mut kept = Vec::new();
    let mut missing = Vec::new();
    let claim = || shared.claimed.fetch_add(1, Ordering::Relaxed);
    let opened = pool.with(|repo| {
        let mut path = String::new();
        while let Some((dir, id)) = shared.depth.get(claim()) {
            let Ok(tree) = repo.find_tree(*id) else {
                missing.push(dir.clone());
                continue;
            };
            for entry in tree.iter() {
                let Ok(name) = entry.name() else {
                    continue;
                };
                path.clear();
                path.push_str(dir);
                path.push_str(name);
                kept.extend(visit(&path, &entry));
                if entry.kind() == Some(git2::ObjectType::Tree) {
                    subtrees.push((format!("{path}/"), entry.id()));
                }
            }
        }
        Ok(())
    });
    // A thread that cannot open the repository still claims trees, so that each one is either
    // read or reported, once.
    if opened.is_err() {
        while let Some((dir, _)) = shared.depth.get(claim()) {
            missing.push(dir.clone());
        }
    }
    locked(shared.next).append(&mut subtrees);
    locked(shared.found).push(kept);
    locked(shared.missing).append(&mut missing);
}
