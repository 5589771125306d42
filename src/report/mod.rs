//! Rendering findings. Renderers only format: the verdict is decided before they run.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use crate::finding::{Finding, Verdict};
use crate::load::SourceFile;

/// Everything a renderer needs: the findings, the verdict, and the sources findings point into
/// (for snippets).
#[derive(Debug, Default)]
pub struct Report {
    pub findings: Vec<Finding>,
    pub sources: BTreeMap<String, Arc<SourceFile>>,
    pub stats: Stats,
    /// Lines about the run itself ("config and policies read from working tree (--trust head)").
    pub notes: Vec<String>,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct Stats {
    pub files: usize,
    pub documents: usize,
    pub skipped: usize,
}

impl Report {
    pub fn verdict(&self) -> Verdict {
        Verdict::of(&self.findings)
    }
}

/// Output formats of `check` (and, with `markdown`, of `diff`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Human,
    Json,
    Sarif,
    Junit,
    Github,
}
