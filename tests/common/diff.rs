//! The dry-run diff of two in-memory trees, through the change detection users get: both trees
//! are committed to a real repository and the range between them is detected by git, so renames
//! and file selection are what `stategate diff --base` sees.

use std::collections::BTreeMap;

use stategate::change::{ChangeMode, detect_changes_in};
use stategate::config::Config;
use stategate::diff::{DiffOptions, DiffResult, diff_change};
use stategate::tree::MemTree;

use super::git::TestRepo;

/// One repository that successive diffs commit into: only the files that differ from what the
/// work tree holds are written, so many diffs over one large snapshot stay cheap.
pub struct DiffRepo {
    repo: TestRepo,
    current: BTreeMap<String, Vec<u8>>,
}

impl DiffRepo {
    pub fn new() -> DiffRepo {
        DiffRepo {
            repo: TestRepo::new(),
            current: BTreeMap::new(),
        }
    }

    pub fn diff(
        &mut self,
        base: &MemTree,
        head: &MemTree,
        config: &Config,
        options: &DiffOptions,
    ) -> DiffResult {
        let base_commit = self.commit(base);
        let head_commit = self.commit(head);
        let git = git2::Repository::open(self.repo.path()).expect("open the test repository");
        let mode = ChangeMode::Range {
            base: base_commit,
            head: head_commit,
        };
        let change = detect_changes_in(&git, &mode, &[]).expect("detect the change");
        // The trees themselves serve the renderers: same content, and their names label the diff.
        diff_change(&change, base, head, config, options)
    }

    /// Make the work tree hold exactly `tree`'s files and commit them.
    fn commit(&mut self, tree: &MemTree) -> String {
        for path in self.current.keys() {
            if !tree.files.contains_key(path) {
                self.repo.remove(path);
            }
        }
        for (path, bytes) in &tree.files {
            if self.current.get(path) != Some(bytes) {
                self.repo.write(path, bytes);
            }
        }
        self.current = tree.files.clone();
        self.repo.git(&["add", "-A"]);
        self.repo
            .git(&["commit", "-q", "--allow-empty", "-m", &tree.name]);
        self.repo.head()
    }
}

/// One diff in a fresh repository.
pub fn diff_of(
    base: &MemTree,
    head: &MemTree,
    config: &Config,
    options: &DiffOptions,
) -> DiffResult {
    DiffRepo::new().diff(base, head, config, options)
}
