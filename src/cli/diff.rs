//! `stategate diff --base REV [--head REV] [--format human|markdown|json]`: the dry-run diff of
//! desired state between two revisions of the repository around the current directory.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::change::{ChangeMode, ChangeSet, detect_changes_in};
use crate::config::Config;
use crate::diff::{DiffOptions, Format, diff_change, format_diff};
use crate::drift::view::{LiveViewContext, add_live_view};
use crate::finding::Finding;
use crate::render::cache::{DEFAULT_MAX_BYTES, RenderCache, cache_dir};
use crate::report::escape;
use crate::tree::{DirTree, GitTree, Tree};
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
    /// Add a live → head view from the `drift.live` sources of the environments the change touches.
    pub live: bool,
    /// With `live`: only this environment's live source.
    pub env: Option<String>,
    /// Cache kustomize renders here (default: `$STATEGATE_CACHE_DIR`, else the repository's git
    /// directory), the same cache `check` uses.
    pub cache_dir: Option<PathBuf>,
    /// Render without the cache.
    pub no_cache: bool,
}

/// Run the diff and print it to `out`; problems that stop it go to `err`. Returns the exit code:
/// 0, or 2 when the diff could not be made complete (bad revision, invalid config, renderer
/// failure).
pub fn run_diff(cwd: &Path, args: &DiffArgs, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    match prepare(cwd, args) {
        Ok(Sides {
            repo,
            change,
            base,
            head,
            rules,
            config,
            same,
        }) => {
            let options = DiffOptions {
                head_values: args.live,
                cache: (!args.no_cache)
                    .then(|| cache_dir(&repo, args.cache_dir.as_deref()))
                    .and_then(|dir| RenderCache::open(dir, DEFAULT_MAX_BYTES)),
                ..DiffOptions::default()
            };
            let mut result = diff_change(&change, base.as_ref(), head.as_ref(), &config, &options);
            if args.live {
                // Snapshots come from the tree the config comes from: the trusted base.
                let commit = commit_of(&repo, args.base.as_deref().unwrap_or("HEAD"))
                    .and_then(|c| git2::Oid::from_str(&c).ok());
                let file_time = |path: &str| {
                    commit.and_then(|c| crate::drift::live::git_file_time(&repo, c, path))
                };
                let ctx = LiveViewContext {
                    config: &config,
                    tree: rules.as_ref(),
                    file_time: &file_time,
                    only: args.env.as_deref(),
                };
                add_live_view(&mut result, &ctx);
            }
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

/// The change, its two sides (read for rendering) and the config that shapes the diff.
struct Sides {
    repo: git2::Repository,
    change: ChangeSet,
    base: Box<dyn Tree>,
    head: Box<dyn Tree>,
    /// The trusted tree the config (and a live snapshot) is read from.
    rules: Box<dyn Tree>,
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
    let head_rev = args.head.as_deref().unwrap_or("HEAD");
    let mode = if args.staged {
        ChangeMode::Staged
    } else if args.base.is_none() && args.head.is_none() {
        ChangeMode::WorkTree
    } else {
        ChangeMode::Range {
            base: base_rev.to_owned(),
            head: head_rev.to_owned(),
        }
    };
    // The same change detection as `check`: a range is `base...head` (from the merge base), the
    // working tree and the index are what git status shows.
    let change = detect_changes_in(&repo, &mode, &[])
        .map_err(|e| internal(crate::change::explain_git_error(&e.to_string())))?;
    let base = open(change.base.as_deref().unwrap_or(base_rev))?;
    let (head, same): (Box<dyn Tree>, Option<String>) = match &mode {
        ChangeMode::Range { .. } => {
            let same = commit_of(&repo, base_rev)
                .filter(|b| commit_of(&repo, head_rev).as_ref() == Some(b));
            (Box::new(open(head_rev)?), same)
        }
        // Renderers read the working tree (for `--staged` too, as `check --staged` does).
        _ => {
            let workdir = repo.workdir().ok_or_else(|| {
                internal("a bare repository has no working tree: give --base and --head".to_owned())
            })?;
            let name = if args.staged {
                "the index"
            } else {
                "the working tree"
            };
            (Box::new(DirTree::new(workdir, name)), None)
        }
    };
    // The trust rule: the config that shapes the diff (masks, environments) comes from the base.
    let rules = rules_tree(&repo, RulesFrom::Revision(base_rev)).map_err(internal)?;
    let (config, _) = crate::config::load(rules.as_ref(), None).map_err(|e| e.findings)?;
    Ok(Sides {
        repo,
        change,
        base: Box::new(base),
        head,
        rules,
        config,
        same,
    })
}

fn commit_of(repo: &git2::Repository, rev: &str) -> Option<String> {
    let object = repo.revparse_single(rev).ok()?;
    object.peel_to_commit().ok().map(|c| c.id().to_string())
}
