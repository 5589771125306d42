//! stategate: a policy gate for GitOps repositories.
//!
//! Data flows one way: a front door (`cli`, `hook`, `github`) builds a change request; `change` finds
//! the changed files; `load` parses them with positions; `schema`, `policy`, `protect`, `approval` and
//! `drift` produce [`finding::Finding`]s; `report` renders them; the [`finding::Verdict`] decides.

pub mod alloc;
pub mod approval;
pub mod change;
pub mod cli;
pub mod config;
pub mod diff;
pub mod drift;
pub mod engine;
pub mod finding;
pub mod gate;
pub mod github;
pub mod hook;
pub mod load;
pub mod object;
pub mod paths;
pub mod policy;
pub mod protect;
pub mod render;
pub mod report;
pub mod schema;
pub mod suppress;
pub mod sync;
pub mod tree;
pub mod trust;
