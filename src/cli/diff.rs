//! `stategate diff --base REV [--head REV] [--format human|markdown|json]`: the dry-run diff of
//! desired state between two revisions of the repository around the current directory.

use std::io::Write;
use std::path::Path;

use crate::config::Config;
use crate::diff::{DiffOptions, Format, diff_trees, format_diff};
use crate::finding::Finding;
use crate::report::escape;
use crate::tree::{GitTree, MemTree, Tree};
use crate::trust::{RulesFrom, rules_tree};

#[derive(Debug, Clone)]
pub struct DiffArgs {
    /// Without a base: HEAD against the working tree (or the index with `staged`).
    pub base: Option<String>,
    /// Defaults to `HEAD` with a base, the working tree without.
    pub head: Option<String>,
    /// The index against HEAD.
    pub staged: bool,
    pub format: Format,
    /// Colour the human format (the caller decides: a terminal, no `NO_COLOR`).
    pub color: bool,
}

/// Run the diff and print it to `out`; problems that stop it go to `err`. Returns the exit code:
/// 0, or 2 when the diff could not be made complete (bad revision, invalid config, renderer
/// failure).
pub fn run_diff(cwd: &Path, args: &DiffArgs, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    match prepare(cwd, args) {
        Ok(Sides {
            base,
            head,
            config,
            same,
        }) => {
            let result = diff_trees(
                base.as_ref(),
                head.as_ref(),
                &config,
                &DiffOptions::default(),
            );
            let text = format_diff(&result, args.format, args.color);
            if out.write_all(text.as_bytes()).is_err() {
                return 2;
            }
            if let Some(commit) = same {
                let _ = writeln!(
                    err,
                    "note: base and head are the same commit ({commit}): nothing can differ; \
                     give another --base, or no --base to diff the working tree against HEAD"
                );
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

/// The two sides of a diff and the config that shapes it.
struct Sides {
    base: Box<dyn Tree>,
    head: Box<dyn Tree>,
    config: Config,
    /// The commit id when base and head are one commit.
    same: Option<String>,
}

fn prepare(cwd: &Path, args: &DiffArgs) -> Result<Sides, Vec<Finding>> {
    let internal =
        |message: String| vec![Finding::error(crate::finding::Rule::GateInternal, message)];
    let repo = git2::Repository::discover(cwd).map_err(|e| {
        internal(format!(
            "not in a git repository ({}): {}",
            cwd.display(),
            e.message()
        ))
    })?;
    let open = |rev: &str| {
        GitTree::open(&repo, rev).map_err(|e| {
            internal(format!(
                "cannot read revision `{rev}`: {}",
                crate::change::explain_git_error(&e.to_string())
            ))
        })
    };
    let base_rev = args.base.as_deref().unwrap_or("HEAD");
    let base = open(base_rev)?;
    let (head, same): (Box<dyn Tree>, Option<String>) = if args.staged {
        (Box::new(index_tree(&repo).map_err(internal)?), None)
    } else if args.base.is_none() && args.head.is_none() {
        let workdir = repo.workdir().ok_or_else(|| {
            internal("a bare repository has no working tree: give --base and --head".to_owned())
        })?;
        (Box::new(work_tree(&repo, workdir)), None)
    } else {
        let head_rev = args.head.as_deref().unwrap_or("HEAD");
        let same =
            commit_of(&repo, base_rev).filter(|b| commit_of(&repo, head_rev).as_ref() == Some(b));
        (Box::new(open(head_rev)?), same)
    };
    // The trust rule: the config that shapes the diff (masks, environments) comes from the base.
    let rules = rules_tree(&repo, RulesFrom::Revision(base_rev)).map_err(internal)?;
    let (config, _) = crate::config::load(rules.as_ref(), None).map_err(|e| e.findings)?;
    Ok(Sides {
        base: Box::new(base),
        head,
        config,
        same,
    })
}

fn commit_of(repo: &git2::Repository, rev: &str) -> Option<String> {
    let object = repo.revparse_single(rev).ok()?;
    object.peel_to_commit().ok().map(|c| c.id().to_string())
}

/// The staged files, as a tree: what `git commit` would record.
fn index_tree(repo: &git2::Repository) -> Result<MemTree, String> {
    let index = repo
        .index()
        .map_err(|e| format!("cannot read the index: {}", e.message()))?;
    let mut tree = MemTree::empty("the index");
    for entry in index.iter() {
        // Regular files only (mode 100644/100755): links and submodules are not desired state.
        if entry.mode & 0o170000 != 0o100000 {
            continue;
        }
        let Ok(blob) = repo.find_blob(entry.id) else {
            continue;
        };
        let path = String::from_utf8_lossy(&entry.path).into_owned();
        tree.files.insert(path, blob.content().to_vec());
    }
    Ok(tree)
}

/// The working tree's files that git sees (tracked, or untracked and not ignored), read from
/// disk: build output and other ignored files are not desired state.
fn work_tree(repo: &git2::Repository, workdir: &Path) -> MemTree {
    let mut tree = MemTree::empty("the working tree");
    let mut options = git2::StatusOptions::new();
    options
        .include_untracked(true)
        .recurse_untracked_dirs(true)
        .include_unmodified(true)
        .include_ignored(false);
    let Ok(statuses) = repo.statuses(Some(&mut options)) else {
        return tree;
    };
    for entry in statuses.iter() {
        if entry.status().contains(git2::Status::WT_DELETED) {
            continue;
        }
        let Ok(path) = entry.path() else { continue };
        let full = workdir.join(path);
        // Regular files only: a symlink is not followed out of the repository.
        if full.symlink_metadata().is_ok_and(|m| m.is_file())
            && let Ok(bytes) = std::fs::read(&full)
        {
            tree.files.insert(path.to_owned(), bytes);
        }
    }
    tree
}
