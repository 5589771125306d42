//! The trust rule, in one place: the config, schemas, CRDs and policies that judge a change come
//! from the side the change cannot edit. Every front door names that side as a [`RulesFrom`] and
//! reads the rules' tree through [`rules_tree`]:
//!
//! - a push: the ref's tip before the push (a new ref: the default branch's tip), or the server's
//!   `--config-dir`;
//! - a pull request: its base;
//! - `check` and `diff`: `--base`, or HEAD for the local modes; `--trust head` (the working tree
//!   or `--head`) only on request, and the report says so.

use std::path::Path;

use git2::Repository;

use crate::tree::{DirTree, GitTree, MemTree, Tree};

/// Whose rules judge a local check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Trust {
    /// The base revision (HEAD for local modes): a change cannot loosen its own rules.
    Base,
    /// The working tree or head: for editing the rules themselves on a laptop.
    Head,
}

/// Where the rules of a run are read from.
#[derive(Debug, Clone, Copy)]
pub enum RulesFrom<'a> {
    /// A revision the change does not touch: a PR's base, a ref's old tip, `--base`, HEAD.
    Revision(&'a str),
    /// A server-side directory (`hook pre-receive --config-dir`).
    Directory(&'a Path),
    /// The change itself (`check --trust head`): the working tree at this root, or a head revision.
    Change(ChangeSide<'a>),
    /// Nothing to read rules from yet: an empty repository. Says why, for the report.
    Nothing(&'static str),
}

#[derive(Debug, Clone, Copy)]
pub enum ChangeSide<'a> {
    WorkingTree(&'a Path),
    Revision(&'a str),
}

impl RulesFrom<'_> {
    /// What the report should say about rules that did not come from a trusted side.
    pub fn warning(&self) -> Option<&'static str> {
        match self {
            RulesFrom::Change(_) => Some(
                "rules read from the change itself (--trust head): fine on a laptop, never for a gate",
            ),
            _ => None,
        }
    }
}

/// The tree the rules are read from. `Err` says why it cannot be read (the caller exits 2).
pub fn rules_tree(repo: &Repository, from: RulesFrom<'_>) -> Result<Box<dyn Tree>, String> {
    let revision = |rev: &str| -> Result<Box<dyn Tree>, String> {
        GitTree::open(repo, rev)
            .map(|tree| Box::new(tree) as Box<dyn Tree>)
            .map_err(|e| format!("cannot read revision `{rev}`: {}", e.message()))
    };
    match from {
        RulesFrom::Revision(rev) | RulesFrom::Change(ChangeSide::Revision(rev)) => revision(rev),
        RulesFrom::Directory(dir) => Ok(Box::new(DirTree::new(
            dir,
            format!("--config-dir {}", dir.display()),
        ))),
        RulesFrom::Change(ChangeSide::WorkingTree(root)) => {
            Ok(Box::new(DirTree::new(root, "working tree")))
        }
        RulesFrom::Nothing(why) => Ok(Box::new(MemTree::empty(why))),
    }
}
