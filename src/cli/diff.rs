//! `stategate diff --base REV [--head REV] [--format human|markdown|json]`: the dry-run diff of
//! desired state between two revisions of the repository around the current directory.

use std::io::Write;
use std::path::Path;

use crate::config::Config;
use crate::diff::{DiffOptions, Format, diff_trees, format_diff};
use crate::finding::Finding;
use crate::report::escape;
use crate::tree::GitTree;
use crate::trust::{RulesFrom, rules_tree};

#[derive(Debug, Clone)]
pub struct DiffArgs {
    pub base: String,
    /// Defaults to `HEAD`.
    pub head: Option<String>,
    pub format: Format,
    /// Colour the human format (the caller decides: a terminal, no `NO_COLOR`).
    pub color: bool,
}

/// Run the diff and print it to `out`; problems that stop it go to `err`. Returns the exit code:
/// 0, or 2 when the diff could not be made complete (bad revision, invalid config, renderer
/// failure).
pub fn run_diff(cwd: &Path, args: &DiffArgs, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    match prepare(cwd, args) {
        Ok((base, head, config)) => {
            let result = diff_trees(&base, &head, &config, &DiffOptions::default());
            let text = format_diff(&result, args.format, args.color);
            if out.write_all(text.as_bytes()).is_err() {
                return 2;
            }
            result.exit_code()
        }
        Err(findings) => {
            for f in findings {
                // Config findings quote the file's text: shown safe, like every other output.
                let at = f
                    .location
                    .as_ref()
                    .map(|l| format!("{}: ", escape::one_line(&l.to_string())))
                    .unwrap_or_default();
                let message = escape::multi_line(&f.message, "\n  │ ");
                let _ = writeln!(err, "{at}{}[{}]: {message}", f.severity, f.rule);
            }
            2
        }
    }
}

fn prepare(cwd: &Path, args: &DiffArgs) -> Result<(GitTree, GitTree, Config), Vec<Finding>> {
    let internal =
        |message: String| vec![Finding::error(crate::finding::Rule::GateInternal, message)];
    let repo = git2::Repository::discover(cwd).map_err(|e| {
        internal(format!(
            "not in a git repository ({}): {}",
            cwd.display(),
            e.message()
        ))
    })?;
    let head_rev = args.head.as_deref().unwrap_or("HEAD");
    let open = |rev: &str| {
        GitTree::open(&repo, rev)
            .map_err(|e| internal(format!("cannot read revision `{rev}`: {}", e.message())))
    };
    let base = open(&args.base)?;
    let head = open(head_rev)?;
    // The trust rule: the config that shapes the diff (masks, environments) comes from the base.
    let rules = rules_tree(&repo, RulesFrom::Revision(&args.base)).map_err(internal)?;
    let (config, _) = crate::config::load(rules.as_ref(), None).map_err(|e| e.findings)?;
    Ok((base, head, config))
}
