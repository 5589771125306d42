//! What the whole-tree scan ([`super::scan_manifests`]) learnt of each blob, kept in the cache
//! directory so the next check reads only the blobs it has not seen.
//!
//! The scan reads every manifest of a side to ask two questions of its bytes: may the whole-tree
//! indexes want its documents ([`super::indexed`]), and may it hold a source of Flux's
//! substitution ([`super::flux::may_hold_source`]). Almost every file answers no to both, and a
//! push that changes one manifest of 50,000 spent nearly all its 370 ms reading the other 49,999
//! to hear it again (`benches/hook.sh`, perf). The answers are a function of the bytes alone, so
//! they are kept here by blob id.
//!
//! Two things make a kept answer trustworthy:
//! - it is only used for the same bytes. A blob id names one object in the repository's object
//!   database, and git stores one object per id, so the bytes a later read would get are the bytes
//!   that were asked about (the file lives in the repository's own cache directory, or one the
//!   user named);
//! - it is only used by the same questions. The file is keyed by this program's identity (its
//!   version, and a hash of the sources it was built from, made by `build.rs`): a build whose
//!   filters ask something else starts again from nothing rather than trusting answers to other
//!   questions, and the same sources built again (the Action builds stategate on every run) keep
//!   the answers.
//!
//! The file is written whole to a temporary file and renamed into place, and holds a checksum of
//! its records: one that does not check out is ignored, as if it were not there. Each save keeps
//! the blobs this run asked about and nothing else, so the file stays the size of the trees the
//! last check saw.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use sha2::{Digest, Sha256};

use crate::sync::locked;

/// What the scan asks of a manifest's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobFacts {
    /// The whole-tree indexes may want its documents: they are loaded.
    pub indexed: bool,
    /// It may hold a ConfigMap or Secret that Flux substitutes from.
    pub source: bool,
}

impl BlobFacts {
    /// The answers for `bytes`.
    pub fn of(bytes: &[u8]) -> BlobFacts {
        BlobFacts {
            indexed: super::indexed(bytes),
            source: super::flux::may_hold_source(bytes),
        }
    }

    fn to_byte(self) -> u8 {
        u8::from(self.indexed) | (u8::from(self.source) << 1)
    }

    fn from_byte(byte: u8) -> BlobFacts {
        BlobFacts {
            indexed: byte & 1 != 0,
            source: byte & 2 != 0,
        }
    }
}

/// The file's name in the cache directory.
const FILE: &str = "scan-facts";
/// The start of the file: what it is, and the form of what follows.
const MAGIC: &[u8] = b"stategate scan facts 1\n";
/// A record: a blob id, then its facts in one byte.
const RECORD: usize = 21;
type Record = [u8; RECORD];

/// The facts of a cache directory, as loaded, and those learnt since.
pub struct ScanCache {
    file: PathBuf,
    /// This program's identity (see the module's documentation).
    key: [u8; 32],
    /// Records sorted by blob id.
    known: Vec<Record>,
    /// Where the records of each [`bucket`] start in `known`, by record, and where the last ends:
    /// a lookup searches its bucket alone. A binary search of all of them touched a new cache line
    /// at each of its 16 steps on a 50,000-manifest tree, and was a third of a one-file push.
    starts: Vec<u32>,
    /// Which of `known` this run asked about: kept at the next save.
    asked: Vec<AtomicBool>,
    /// Records learnt this run.
    learnt: Mutex<Vec<Record>>,
    /// How many records, asked about and learnt, the last save wrote: a check saves after each of
    /// its sides, and the second has usually met nothing the first did not write.
    written: AtomicUsize,
}

impl ScanCache {
    /// The facts kept in `dir`. A missing, stale or damaged file is an empty cache.
    pub fn open(dir: &Path) -> ScanCache {
        ScanCache::open_as(dir, program_key())
    }

    fn open_as(dir: &Path, key: [u8; 32]) -> ScanCache {
        let file = dir.join(FILE);
        let known = std::fs::read(&file)
            .ok()
            .and_then(|bytes| records(&bytes, &key))
            .unwrap_or_default();
        let asked = known.iter().map(|_| AtomicBool::new(false)).collect();
        let mut starts = vec![0; BUCKETS + 1];
        for record in &known {
            starts[bucket(&record[..20]) + 1] += 1;
        }
        for i in 1..starts.len() {
            starts[i] += starts[i - 1];
        }
        ScanCache {
            file,
            key,
            known,
            starts,
            asked,
            learnt: Mutex::new(Vec::new()),
            written: AtomicUsize::new(0),
        }
    }

    /// The facts kept for blob `id`, if any.
    pub fn get(&self, id: git2::Oid) -> Option<BlobFacts> {
        let id = id.as_bytes();
        let bucket = bucket(id);
        let start = self.starts[bucket] as usize;
        let records = &self.known[start..self.starts[bucket + 1] as usize];
        let at = start + records.binary_search_by(|r| r[..20].cmp(id)).ok()?;
        self.asked[at].store(true, Ordering::Relaxed);
        Some(BlobFacts::from_byte(self.known[at][20]))
    }

    /// Keep `facts` for blob `id` (read this run).
    pub fn put(&self, id: git2::Oid, facts: BlobFacts) {
        let mut record = [0; RECORD];
        record[..20].copy_from_slice(id.as_bytes());
        record[20] = facts.to_byte();
        locked(&self.learnt).push(record);
    }

    /// Write what this run asked about and learnt so far, if it learnt anything, and unless the
    /// last save wrote all of it: after each side of a check. A failure to write is no failure of
    /// the check: the next one reads the blobs again.
    pub fn save(&self) {
        let learnt = locked(&self.learnt).clone();
        if learnt.is_empty() {
            return;
        }
        let asked: Vec<&Record> = self
            .known
            .iter()
            .zip(&self.asked)
            .filter(|(_, asked)| asked.load(Ordering::Relaxed))
            .map(|(record, _)| record)
            .collect();
        // Both only grow: the same count is the same records.
        let count = asked.len() + learnt.len();
        if self.written.swap(count, Ordering::Relaxed) == count {
            return;
        }
        let mut all: Vec<&Record> = asked.into_iter().chain(&learnt).collect();
        all.sort_unstable_by(|a, b| a[..20].cmp(&b[..20]));
        all.dedup_by(|a, b| a[..20] == b[..20]);
        let body: Vec<u8> = all.into_iter().flatten().copied().collect();
        let _ = write(&self.file, MAGIC, &self.key, &body);
    }
}

/// How many buckets the records are found by: blob ids are hashes, so each holds about as many.
const BUCKETS: usize = 1 << 12;

/// The bucket of a blob id: its first 12 bits.
fn bucket(id: &[u8]) -> usize {
    (usize::from(id[0]) << 4) | usize::from(id[1] >> 4)
}

/// The records of a cache file's `bytes`, if it is whole, of this `key`, and sorted.
fn records(bytes: &[u8], key: &[u8; 32]) -> Option<Vec<Record>> {
    let body = body(bytes, MAGIC, key)?;
    let whole = body.len() % RECORD == 0 && body.len() / RECORD <= u32::MAX as usize;
    let sorted = body
        .chunks_exact(RECORD)
        .zip(body.chunks_exact(RECORD).skip(1))
        .all(|(a, b)| a[..20] < b[..20]);
    let record = |chunk: &[u8]| {
        let mut record = [0; RECORD];
        record.copy_from_slice(chunk);
        record
    };
    (whole && sorted).then(|| body.chunks_exact(RECORD).map(record).collect())
}

fn checksum(body: &[u8]) -> u64 {
    twox_hash::XxHash3_64::oneshot(body)
}

fn write(file: &Path, magic: &[u8], key: &[u8; 32], body: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(file.parent().unwrap_or(Path::new(".")))?;
    let sum = checksum(body).to_le_bytes();
    super::cache::write_atomically(file, &[magic, key, &sum, body])
}

/// The body of a cache file's `bytes` that starts with `magic` and this `key`, if its checksum
/// checks out.
fn body<'b>(bytes: &'b [u8], magic: &[u8], key: &[u8; 32]) -> Option<&'b [u8]> {
    let rest = bytes.strip_prefix(magic)?.strip_prefix(&key[..])?;
    let (sum, body) = rest.split_first_chunk::<8>()?;
    (u64::from_le_bytes(*sum) == checksum(body)).then_some(body)
}

/// The paths of a commit's tree that a list of globs matches, kept by the tree's id and the
/// globs: a tree's id fixes every path in it, so a listing kept is the listing a walk would give.
/// The trusted base's CRD files are found so ([`crate::schema::crd::glob_matches`]): the default
/// globs can match anywhere, and walking every directory of the base was 15 ms of the corpus'
/// `check --all` (1,237 trees), on every run against the same base.
///
/// The file keeps the last [`LISTINGS_KEPT`] listings, most recent first, whole or not at all
/// (checksum, written to a temporary file and renamed), for this program only ([`program_key`]).
pub struct TreeListings {
    file: PathBuf,
    key: [u8; 32],
    kept: Mutex<Vec<TreeListing>>,
}

/// The file's name in the cache directory.
const LISTINGS_FILE: &str = "tree-listings";
const LISTINGS_MAGIC: &[u8] = b"stategate tree listings 1\n";
/// Enough for the bases of the last few pushes or checks.
const LISTINGS_KEPT: usize = 4;

#[derive(Clone, Debug, PartialEq)]
struct TreeListing {
    tree: git2::Oid,
    globs: Vec<String>,
    paths: Vec<String>,
}

impl TreeListings {
    /// The listings kept in `dir`. A missing, stale or damaged file keeps none.
    pub fn open(dir: &Path) -> TreeListings {
        TreeListings::open_as(dir, program_key())
    }

    fn open_as(dir: &Path, key: [u8; 32]) -> TreeListings {
        let file = dir.join(LISTINGS_FILE);
        let kept = std::fs::read(&file)
            .ok()
            .and_then(|bytes| listings(body(&bytes, LISTINGS_MAGIC, &key)?))
            .unwrap_or_default();
        TreeListings {
            file,
            key,
            kept: Mutex::new(kept),
        }
    }

    /// The paths kept for the tree `tree` and exactly these `globs`, if any.
    pub fn get(&self, tree: git2::Oid, globs: &[String]) -> Option<Vec<String>> {
        let kept = locked(&self.kept);
        let found = kept.iter().find(|l| l.tree == tree && l.globs == globs)?;
        Some(found.paths.clone())
    }

    /// Keep `paths` as the listing of `tree` by `globs`, first, and write the file. A failure to
    /// write is no failure of the check: the next one walks the tree again.
    pub fn put(&self, tree: git2::Oid, globs: &[String], paths: &[String]) {
        let mut kept = locked(&self.kept);
        kept.retain(|l| !(l.tree == tree && l.globs == globs));
        kept.insert(
            0,
            TreeListing {
                tree,
                globs: globs.to_vec(),
                paths: paths.to_vec(),
            },
        );
        kept.truncate(LISTINGS_KEPT);
        let mut body = Vec::new();
        for listing in kept.iter() {
            body.extend_from_slice(listing.tree.as_bytes());
            put_strings(&mut body, &listing.globs);
            put_strings(&mut body, &listing.paths);
        }
        let _ = write(&self.file, LISTINGS_MAGIC, &self.key, &body);
    }
}

/// The listings of a file's checked body; `None` if any is cut short or not text.
fn listings(mut body: &[u8]) -> Option<Vec<TreeListing>> {
    let mut out = Vec::new();
    while !body.is_empty() {
        let (tree, rest) = body.split_first_chunk::<20>()?;
        body = rest;
        let tree = git2::Oid::from_bytes(tree).ok()?;
        let globs = take_strings(&mut body)?;
        let paths = take_strings(&mut body)?;
        out.push(TreeListing { tree, globs, paths });
    }
    Some(out)
}

/// `strings` as their count, then each one's length and bytes (lengths and count in 4 bytes).
fn put_strings(body: &mut Vec<u8>, strings: &[String]) {
    let len = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes();
    body.extend(len(strings.len()));
    for s in strings {
        body.extend(len(s.len()));
        body.extend_from_slice(s.as_bytes());
    }
}

/// What [`put_strings`] wrote at the start of `body`, which then starts after it.
fn take_strings(body: &mut &[u8]) -> Option<Vec<String>> {
    fn take_len(body: &mut &[u8]) -> Option<usize> {
        let (len, rest) = body.split_first_chunk::<4>()?;
        *body = rest;
        usize::try_from(u32::from_le_bytes(*len)).ok()
    }
    let count = take_len(body)?;
    let mut out = Vec::with_capacity(count.min(body.len()));
    for _ in 0..count {
        let len = take_len(body)?;
        let (text, rest) = body.split_at_checked(len)?;
        *body = rest;
        out.push(String::from_utf8(text.to_vec()).ok()?);
    }
    Some(out)
}

/// This program's identity: its version, and the sources it was built from.
fn program_key() -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(MAGIC);
    hash.update(env!("CARGO_PKG_VERSION").as_bytes());
    hash.update(env!("STATEGATE_SOURCE_ID").as_bytes());
    hash.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> git2::Oid {
        git2::Oid::from_bytes(&[n; 20]).unwrap()
    }

    const PLAIN: BlobFacts = BlobFacts {
        indexed: false,
        source: false,
    };
    const SOURCE: BlobFacts = BlobFacts {
        indexed: false,
        source: true,
    };
    const BOTH: BlobFacts = BlobFacts {
        indexed: true,
        source: true,
    };

    /// A run of the program keyed `[1; 32]` that learns `facts` and saves them.
    fn saved(dir: &Path, facts: &[(git2::Oid, BlobFacts)]) {
        let run = ScanCache::open_as(dir, [1; 32]);
        for (id, facts) in facts {
            run.put(*id, *facts);
        }
        run.save();
    }

    #[test]
    fn facts_learnt_are_kept_for_the_next_run_of_the_same_program() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(ScanCache::open_as(dir.path(), [1; 32]).get(id(3)), None);
        // Learnt in any order.
        saved(
            dir.path(),
            &[(id(3), SOURCE), (id(1), PLAIN), (id(2), BOTH)],
        );
        let second = ScanCache::open_as(dir.path(), [1; 32]);
        assert_eq!(second.get(id(1)), Some(PLAIN));
        assert_eq!(second.get(id(2)), Some(BOTH));
        assert_eq!(second.get(id(3)), Some(SOURCE));
        assert_eq!(second.get(id(4)), None);
        // Another program (another build of the filters) trusts none of them.
        let other = ScanCache::open_as(dir.path(), [2; 32]);
        assert_eq!(other.get(id(1)), None);
    }

    #[test]
    fn every_blob_kept_is_found_among_many() {
        // Ids as git makes them, spread over every bucket, some buckets holding several.
        let ids: Vec<git2::Oid> = (0..5000)
            .map(|i: u32| crate::tree::blob_id(&i.to_le_bytes()))
            .collect();
        let facts = |i: usize| BlobFacts {
            indexed: i % 3 == 0,
            source: i % 5 == 0,
        };
        let dir = tempfile::tempdir().unwrap();
        let learnt: Vec<_> = ids
            .iter()
            .enumerate()
            .skip(1)
            .map(|(i, id)| (*id, facts(i)))
            .collect();
        saved(dir.path(), &learnt);
        let second = ScanCache::open_as(dir.path(), [1; 32]);
        assert_eq!(second.get(ids[0]), None);
        for (i, id) in ids.iter().enumerate().skip(1) {
            assert_eq!(second.get(*id), Some(facts(i)), "{i}");
        }
    }

    #[test]
    fn a_save_keeps_what_the_run_asked_about_and_learnt_only() {
        let dir = tempfile::tempdir().unwrap();
        saved(dir.path(), &[(id(1), PLAIN), (id(2), SOURCE)]);
        let second = ScanCache::open_as(dir.path(), [1; 32]);
        assert_eq!(second.get(id(2)), Some(SOURCE));
        second.put(id(5), BOTH);
        second.save();
        let third = ScanCache::open_as(dir.path(), [1; 32]);
        assert_eq!(third.get(id(1)), None, "not asked about by the second run");
        assert_eq!(third.get(id(2)), Some(SOURCE));
        assert_eq!(third.get(id(5)), Some(BOTH));
    }

    #[test]
    fn a_save_writes_only_what_the_last_one_did_not() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(FILE);
        saved(dir.path(), &[(id(1), PLAIN), (id(2), SOURCE)]);
        let run = ScanCache::open_as(dir.path(), [1; 32]);
        run.put(id(5), BOTH);
        run.save();
        // Nothing asked about or learnt since: nothing written.
        std::fs::remove_file(&file).unwrap();
        run.save();
        assert!(!file.exists());
        // Asked about since: written, with what the first save wrote.
        assert_eq!(run.get(id(1)), Some(PLAIN));
        run.save();
        let next = ScanCache::open_as(dir.path(), [1; 32]);
        assert_eq!(next.get(id(1)), Some(PLAIN));
        assert_eq!(next.get(id(5)), Some(BOTH));
    }

    #[test]
    fn a_damaged_file_is_an_empty_cache() {
        let dir = tempfile::tempdir().unwrap();
        saved(dir.path(), &[(id(1), PLAIN), (id(2), PLAIN)]);
        let file = dir.path().join(FILE);
        let whole = std::fs::read(&file).unwrap();
        // A flipped fact: "plain" read back would let an indexed file go unread.
        let mut flipped = whole.clone();
        *flipped.last_mut().unwrap() ^= 1;
        // Cut short, and records out of order (the checksum recomputed to match).
        let cut = &whole[..whole.len() - 3];
        let mut swapped = whole[..MAGIC.len() + 32].to_vec();
        let mut body = whole[MAGIC.len() + 40..].to_vec();
        body.rotate_left(RECORD);
        swapped.extend(checksum(&body).to_le_bytes());
        swapped.extend(&body);
        for damaged in [flipped, cut.to_vec(), swapped, b"junk".to_vec()] {
            std::fs::write(&file, &damaged).unwrap();
            let cache = ScanCache::open_as(dir.path(), [1; 32]);
            assert_eq!(cache.get(id(1)), None);
            assert_eq!(cache.get(id(2)), None);
        }
    }

    fn globs(list: &[&str]) -> Vec<String> {
        list.iter().map(|g| (*g).to_owned()).collect()
    }

    #[test]
    fn a_listing_is_kept_by_tree_and_globs_for_the_same_program() {
        let dir = tempfile::tempdir().unwrap();
        let crds = globs(&["**/crds/**", "**/*crd*.yaml"]);
        let paths = globs(&["a/crds/x.yaml", "b/my-crd.yaml"]);
        let first = TreeListings::open_as(dir.path(), [1; 32]);
        assert_eq!(first.get(id(1), &crds), None);
        first.put(id(1), &crds, &paths);
        first.put(id(2), &crds, &[]);
        let second = TreeListings::open_as(dir.path(), [1; 32]);
        assert_eq!(second.get(id(1), &crds), Some(paths.clone()));
        assert_eq!(second.get(id(2), &crds), Some(Vec::new()));
        // Another tree, other globs, another program: nothing kept.
        assert_eq!(second.get(id(3), &crds), None);
        assert_eq!(second.get(id(1), &globs(&["**/crds/**"])), None);
        assert_eq!(
            TreeListings::open_as(dir.path(), [2; 32]).get(id(1), &crds),
            None
        );
    }

    #[test]
    fn only_the_last_listings_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let crds = globs(&["**/crds/**"]);
        let run = TreeListings::open_as(dir.path(), [1; 32]);
        for n in 1..=6 {
            run.put(id(n), &crds, &[format!("{n}/crds/x.yaml")]);
        }
        // Asked for again: the oldest kept becomes the newest.
        run.put(id(3), &crds, &globs(&["3/crds/x.yaml"]));
        let next = TreeListings::open_as(dir.path(), [1; 32]);
        let kept: Vec<u8> = (1..=6)
            .filter(|n| next.get(id(*n), &crds).is_some())
            .collect();
        assert_eq!(kept, [3, 4, 5, 6]);
    }

    #[test]
    fn a_damaged_listing_file_keeps_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let crds = globs(&["**/crds/**"]);
        TreeListings::open_as(dir.path(), [1; 32]).put(id(1), &crds, &globs(&["a/crds/x.yaml"]));
        let file = dir.path().join(LISTINGS_FILE);
        let whole = std::fs::read(&file).unwrap();
        let mut flipped = whole.clone();
        *flipped.last_mut().unwrap() ^= 1;
        // Cut short inside a path, with a checksum that matches what is left.
        let head = LISTINGS_MAGIC.len() + 32;
        let mut cut = whole[..head].to_vec();
        let body = &whole[head + 8..whole.len() - 2];
        cut.extend(checksum(body).to_le_bytes());
        cut.extend(body);
        for damaged in [flipped, cut, b"junk".to_vec()] {
            std::fs::write(&file, &damaged).unwrap();
            let listings = TreeListings::open_as(dir.path(), [1; 32]);
            assert_eq!(listings.get(id(1), &crds), None);
        }
    }
}
