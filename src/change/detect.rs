//! Placeholder: being implemented (change detection through git2).
use super::ChangeSet;
use std::path::Path;

/// Which two sides of the repository a check compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeMode {
    /// Working tree against HEAD (the default of `stategate check`).
    WorkTree,
    /// Index against HEAD (`--staged`, the pre-commit mode).
    Staged,
    /// `git diff base...head`: head against the merge base of the two.
    Range { base: String, head: String },
    /// Every file of HEAD's tree (`--all --head REV`) or of the working tree (`--all`).
    All { rev: Option<String> },
}

pub fn detect_changes(
    _repo: &Path,
    _mode: &ChangeMode,
    _paths: &[String],
) -> Result<ChangeSet, git2::Error> {
    Err(git2::Error::from_str("change detection is not implemented yet"))
}
