//! Judging one ref of a push: which change, which rules (the trust rule), and every check that
//! applies to it.

use std::path::{Path, PathBuf};

use super::protocol::{RefUpdate, UpdateKind};
use super::{PushContext, RefOutcome};
use crate::approval::{Evidence, PushedChange, PushedCommit};
use crate::change::{ChangeMode, detect_changes_in};
use crate::engine::{ChangeMeta, FrontDoor};
use crate::finding::{Finding, Rule, Severity};
use crate::gate::Gate;
use crate::policy::CommitInput;
use crate::protect::{Protection, RefMove};
use crate::tree::{GitTree, Tree};
use crate::trust::{RulesFrom, rules_tree};
use git2::{Oid, Repository};

/// Judge one ref update. Never panics; anything that stops the judgement is a finding.
pub fn judge_ref(repo: &Repository, update: &RefUpdate, ctx: &PushContext) -> RefOutcome {
    let mut findings = match judge(repo, update, ctx) {
        Ok(findings) => findings,
        Err(finding) => vec![*finding],
    };
    for finding in &mut findings {
        if finding.git_ref.is_none() {
            finding.git_ref = Some(update.name.clone());
        }
    }
    dedup(&mut findings);
    RefOutcome {
        update: update.clone(),
        findings,
        bypass: None,
        bypass_allowed: false,
    }
}

type Judged = Result<Vec<Finding>, Box<Finding>>;

fn judge(repo: &Repository, update: &RefUpdate, ctx: &PushContext) -> Judged {
    let trusted = trusted_tree(repo, update, ctx.config_dir.as_deref())?;
    let gate = match Gate::open(trusted, None) {
        // The base side of every root is usually in the cache from the previous push.
        // The pusher sees findings only: no list of the files that passed.
        Ok(gate) => gate
            .with_render_cache(Some(crate::render::cache::cache_dir(repo, None)))
            .with_checked_list(false),
        Err(report) => return Ok(report.findings),
    };
    let protection = Protection::new(&gate.config.protect)?;
    let movement = movement(repo, update)?;
    let mut findings = protection.check(&update.name, movement, ctx.through_pull_request);
    if update.kind() == UpdateKind::Delete {
        return Ok(findings);
    }
    let judged = JudgedRefs::of(&gate)?;
    if !judged.contains(&update.name) {
        findings.push(unjudged(
            &update.name,
            "it is outside hook.refs, so stategate does not judge it and refuses it".to_owned(),
            "push to a ref that hook.refs names, or add this ref's pattern to hook.refs",
        ));
        return Ok(findings);
    }
    let Some(head) = peel_commit(repo, &update.new) else {
        findings.push(unjudged(
            &update.name,
            format!(
                "it points at a {}, not a commit: no desired state to judge",
                object_kind(repo, &update.new)
            ),
            "point branches and tags at commits",
        ));
        return Ok(findings);
    };
    let mut range = PushedRange::find(repo, update, head, &judged)?;
    if range.commits.is_empty() {
        if judged.has_tip(repo, head) {
            // Nothing new: this exact state is the tip of a ref the hook judged.
            return Ok(findings);
        }
        // An existing commit no judged ref points at (a rewind, or a ref at a commit in the
        // middle of an accepted push): its state was judged only as part of a range, if at all.
        range = PushedRange::state_at(repo, update, head);
    }
    let narrowed = range
        .base
        .map_or_else(Vec::new, |base| changed_paths(repo, base, head));
    let change =
        detect_changes_in(repo, &range.mode, &narrowed).map_err(|e| internal(format!("{e}")))?;
    let head_tree =
        GitTree::open(repo, &head.to_string()).map_err(|e| internal(e.message().to_owned()))?;
    let trusted = ctx
        .config_dir
        .is_none()
        .then(|| trusted_commit(repo, update))
        .flatten();
    let tip = head.to_string();
    let pushed = PushedChange {
        tip: &tip,
        commits: &range.pushed,
        pusher: ctx.actor.as_deref(),
    };
    let evidence = Evidence::Signed {
        change: pushed,
        git_dir: repo.path(),
    };
    let meta = ChangeMeta {
        door: FrontDoor::Push,
        head_tree: &head_tree,
        git_ref: Some(update.name.clone()),
        base: range.base.map(|b| b.to_string()),
        head: Some(update.new.clone()),
        actor: ctx.actor.clone(),
        commits: range.commits.clone(),
        evidence,
        live: gate.config.drift.hook,
        trusted_commit: trusted.map(|commit| (repo, commit)),
        guards_rules: ctx.config_dir.is_none(),
        approved_upstream: ctx.through_pull_request,
        ack_drift: ctx.ack_drift.as_deref(),
    };
    findings.extend(gate.check_change(&change, &meta).report.findings);
    Ok(findings)
}

fn unjudged(git_ref: &str, why: String, help: &str) -> Finding {
    Finding::error(
        Rule::ProtectUnjudgedRef,
        format!("{git_ref} is refused: {why}"),
    )
    .help(help.to_owned())
    .for_ref(git_ref)
}

fn object_kind(repo: &Repository, id: &str) -> String {
    let Ok(object) = Oid::from_str(id).and_then(|oid| repo.find_object(oid, None)) else {
        return "missing object".to_owned();
    };
    let peeled = object.peel(git2::ObjectType::Any).unwrap_or(object);
    match peeled.kind() {
        Some(git2::ObjectType::Tree) => "tree".to_owned(),
        Some(git2::ObjectType::Blob) => "blob".to_owned(),
        Some(kind) => kind.str().to_owned(),
        None => "object of unknown kind".to_owned(),
    }
}

fn internal(message: String) -> Box<Finding> {
    Box::new(
        Finding::error(Rule::GateInternal, message)
            .help("the push cannot be judged, so it is refused; tell the server's administrator"),
    )
}

/// The refs the hook judges: `hook.refs`, or every ref when it is empty. Only commits reachable
/// from refs the hook judges count as already judged: in the default case branches and tags,
/// because other namespaces may hold refs the server wrote itself or that predate the hook.
struct JudgedRefs {
    judged: Option<globset::GlobSet>,
}

impl JudgedRefs {
    fn of(gate: &Gate) -> Result<JudgedRefs, Box<Finding>> {
        if gate.config.hook.refs.is_empty() {
            return Ok(JudgedRefs { judged: None });
        }
        let set = crate::paths::glob_set(&gate.config.hook.refs).map_err(|e| {
            Box::new(
                Finding::error(
                    Rule::ConfigInvalid,
                    format!("invalid glob in hook.refs: {e}"),
                )
                .in_file(crate::config::CONFIG_FILE),
            )
        })?;
        Ok(JudgedRefs { judged: Some(set) })
    }

    fn contains(&self, git_ref: &str) -> bool {
        self.judged.as_ref().is_none_or(|set| set.is_match(git_ref))
    }

    /// Whether `commit` is the tip of an existing ref the hook judges.
    fn has_tip(&self, repo: &Repository, commit: Oid) -> bool {
        let Ok(refs) = repo.references() else {
            return false;
        };
        refs.flatten().any(|reference| {
            reference.name().is_ok_and(|name| self.vouches_for(name))
                && reference.peel_to_commit().is_ok_and(|c| c.id() == commit)
        })
    }

    /// Whether commits reachable from this existing ref were judged when it was pushed.
    fn vouches_for(&self, git_ref: &str) -> bool {
        match &self.judged {
            Some(set) => set.is_match(git_ref),
            None => git_ref.starts_with("refs/heads/") || git_ref.starts_with("refs/tags/"),
        }
    }
}

/// The trust rule: the rules come from the ref's tip before the push; a new ref takes the default
/// branch's tip; `--config-dir` replaces both with a fixed server-side directory.
fn trusted_tree(
    repo: &Repository,
    update: &RefUpdate,
    config_dir: Option<&Path>,
) -> Result<Box<dyn Tree>, Box<Finding>> {
    let tip;
    let from = match (config_dir, update.kind()) {
        (Some(dir), _) => RulesFrom::Directory(dir),
        (None, UpdateKind::Create) => match default_branch_tip(repo)? {
            Some(id) => {
                tip = id.to_string();
                RulesFrom::Revision(&tip)
            }
            None => RulesFrom::Nothing("an empty repository (no branch or tag yet)"),
        },
        (None, _) => RulesFrom::Revision(&update.old),
    };
    match rules_tree(repo, from) {
        Ok(tree) => Ok(tree),
        // The old tip of a tag may be a tag of a tree: no rules there, use the default branch's.
        Err(_) if config_dir.is_none() && update.kind() != UpdateKind::Create => trusted_tree(
            repo,
            &RefUpdate {
                old: "0".repeat(update.old.len()),
                ..update.clone()
            },
            None,
        ),
        Err(e) => Err(internal(format!("cannot read the trusted base: {e}"))),
    }
}

/// The git config key `hook install --default-branch` sets.
pub const DEFAULT_BRANCH_KEY: &str = "stategate.defaultBranch";

/// The tip whose rules judge new refs: the branch `stategate.defaultBranch` names, else the
/// branch HEAD names. `None` only for a repository with no branch or tag at all (its first push has
/// no rules to be judged by). HEAD naming a branch that does not exist while others do (`git init
/// --bare -b master`, the team pushes `main`) fails closed: judging against no rules would wave
/// every new ref through.
fn default_branch_tip(repo: &Repository) -> Result<Option<Oid>, Box<Finding>> {
    let configured = repo
        .config()
        .and_then(|c| c.get_string(DEFAULT_BRANCH_KEY))
        .ok()
        .filter(|b| !b.trim().is_empty());
    let (name, source) = match &configured {
        Some(branch) => {
            let branch = branch.trim();
            let full = if branch.starts_with("refs/") {
                branch.to_owned()
            } else {
                format!("refs/heads/{branch}")
            };
            (full, format!("git config {DEFAULT_BRANCH_KEY}"))
        }
        None => (
            repo.find_reference("HEAD")
                .ok()
                .and_then(|h| h.symbolic_target().ok().flatten().map(str::to_owned))
                .unwrap_or_else(|| "HEAD".to_owned()),
            "HEAD".to_owned(),
        ),
    };
    if let Ok(tip) = repo.refname_to_id(&name) {
        return Ok(Some(tip));
    }
    if !has_branch_or_tag(repo) {
        return Ok(None);
    }
    Err(Box::new(
        Finding::error(
            Rule::ConfigInvalid,
            format!(
                "the default branch {name} (from {source}) does not exist, so there are no trusted rules to judge a new ref by"
            ),
        )
        .help(
            "name the branch whose rules judge new refs: `stategate hook install --repo DIR --default-branch main` \
             (or `git symbolic-ref HEAD refs/heads/main` in the server's repository)",
        ),
    ))
}

fn has_branch_or_tag(repo: &Repository) -> bool {
    let has = |glob: &str| {
        repo.references_glob(glob)
            .is_ok_and(|mut refs| refs.next().is_some())
    };
    has("refs/heads/*") || has("refs/tags/*")
}

fn peel_commit(repo: &Repository, id: &str) -> Option<Oid> {
    let oid = Oid::from_str(id).ok()?;
    repo.find_object(oid, None)
        .ok()?
        .peel_to_commit()
        .ok()
        .map(|c| c.id())
}

fn movement(repo: &Repository, update: &RefUpdate) -> Result<RefMove, Box<Finding>> {
    match update.kind() {
        UpdateKind::Create => return Ok(RefMove::Create),
        UpdateKind::Delete => return Ok(RefMove::Delete),
        UpdateKind::Update => {}
    }
    let (Some(old), Some(new)) = (
        peel_commit(repo, &update.old),
        peel_commit(repo, &update.new),
    ) else {
        // Non-commit refs (a tag of a tree) have no history to rewrite; moving one is a rewrite.
        return Ok(RefMove::NonFastForward);
    };
    if old == new {
        return Ok(RefMove::FastForward { only_merges: true });
    }
    let descends = repo.graph_descendant_of(new, old).map_err(|e| {
        internal(format!(
            "cannot compare {} and {}: {}",
            update.old,
            update.new,
            e.message()
        ))
    })?;
    if !descends {
        return Ok(RefMove::NonFastForward);
    }
    Ok(RefMove::FastForward {
        only_merges: first_parent_path_is_merges(repo, new, old),
    })
}

/// Whether every commit from `new` back to `old` along first parents is a merge commit.
fn first_parent_path_is_merges(repo: &Repository, new: Oid, old: Oid) -> bool {
    let mut current = new;
    while current != old {
        let Ok(commit) = repo.find_commit(current) else {
            return false;
        };
        if commit.parent_count() < 2 {
            return false;
        }
        match commit.parent_id(0) {
            Ok(parent) => current = parent,
            Err(_) => return false,
        }
    }
    true
}

/// The commits a push adds to one ref and the change they make as a whole.
struct PushedRange {
    mode: ChangeMode,
    base: Option<Oid>,
    commits: Vec<CommitInput>,
    pushed: Vec<PushedCommit>,
}

impl PushedRange {
    /// No new commits: the state at `head` against the trusted base commit (the ref's old tip, or
    /// the default branch's for a new ref), or as a whole tree when there is none.
    fn state_at(repo: &Repository, update: &RefUpdate, head: Oid) -> PushedRange {
        let base = match update.kind() {
            UpdateKind::Create => default_branch_tip(repo).ok().flatten(),
            _ => peel_commit(repo, &update.old),
        };
        // A change is judged from the merge base, which for an ancestor of the base (a rewind) is
        // the head itself: nothing would be seen. Such a state is judged whole.
        let base = base
            .filter(|base| *base != head && !repo.graph_descendant_of(*base, head).unwrap_or(true));
        let mode = match base {
            Some(base) => ChangeMode::Range {
                base: base.to_string(),
                head: head.to_string(),
            },
            None => ChangeMode::All {
                rev: Some(head.to_string()),
            },
        };
        PushedRange {
            mode,
            base,
            commits: Vec::new(),
            pushed: Vec::new(),
        }
    }

    /// Update: `old..new`. New ref: the commits reachable from no existing ref, judged against the
    /// commit they branch from (or as a whole new tree when they share no history).
    fn find(
        repo: &Repository,
        update: &RefUpdate,
        head: Oid,
        judged: &JudgedRefs,
    ) -> Result<PushedRange, Box<Finding>> {
        let walk_error =
            |e: git2::Error| internal(format!("cannot list the pushed commits: {}", e.message()));
        let mut walk = repo.revwalk().map_err(walk_error)?;
        walk.set_sorting(git2::Sort::TOPOLOGICAL)
            .map_err(walk_error)?;
        walk.push(head).map_err(walk_error)?;
        let old = peel_commit(repo, &update.old);
        match (update.kind(), old) {
            (UpdateKind::Update, Some(old)) => walk.hide(old).map_err(walk_error)?,
            _ => hide_judged_refs(repo, &mut walk, judged),
        }
        let ids: Vec<Oid> = walk.collect::<Result<_, _>>().map_err(walk_error)?;
        let mut commits = Vec::with_capacity(ids.len());
        let mut pushed = Vec::with_capacity(ids.len());
        let mut boundary = None;
        for id in &ids {
            let commit = repo.find_commit(*id).map_err(walk_error)?;
            for parent in commit.parent_ids() {
                if boundary.is_none() && !ids.contains(&parent) {
                    boundary = Some(parent);
                }
            }
            commits.push(commit_input(&commit));
            pushed.push(pushed_commit(&commit));
        }
        // A rewrite with no shared history (an amended root commit) is judged like a new ref.
        let base = match old {
            Some(old) if repo.merge_base(old, head).is_ok() => Some(old),
            _ => boundary,
        };
        let mode = match base {
            Some(base) => ChangeMode::Range {
                base: base.to_string(),
                head: head.to_string(),
            },
            None => ChangeMode::All {
                rev: Some(head.to_string()),
            },
        };
        Ok(PushedRange {
            mode,
            base,
            commits,
            pushed,
        })
    }
}

/// Commits reachable from refs the hook judges were judged when those refs were pushed.
fn hide_judged_refs(repo: &Repository, walk: &mut git2::Revwalk<'_>, judged: &JudgedRefs) {
    let Ok(refs) = repo.references() else {
        return;
    };
    for reference in refs.flatten() {
        if !reference.name().is_ok_and(|name| judged.vouches_for(name)) {
            continue;
        }
        if let Ok(commit) = reference.peel_to_commit() {
            let _ = walk.hide(commit.id());
        }
    }
}

fn commit_input(commit: &git2::Commit<'_>) -> CommitInput {
    let message = String::from_utf8_lossy(commit.message_bytes()).into_owned();
    let mut trailers = serde_json::Map::new();
    if let Ok(found) = git2::message_trailers_strs(&message) {
        for (key, value) in found.iter() {
            let entry = trailers
                .entry(key.to_owned())
                .or_insert_with(|| serde_json::Value::Array(Vec::new()));
            if let serde_json::Value::Array(values) = entry {
                values.push(value.into());
            }
        }
    }
    CommitInput {
        id: commit.id().to_string(),
        author: commit.author().name().unwrap_or_default().to_owned(),
        message,
        trailers,
    }
}

fn pushed_commit(commit: &git2::Commit<'_>) -> PushedCommit {
    let changes_files = match commit.parent(0) {
        Ok(parent) => parent.tree_id() != commit.tree_id(),
        Err(_) => commit.tree().is_ok_and(|t| !t.is_empty()),
    };
    PushedCommit {
        id: commit.id().to_string(),
        tree: commit.tree_id().to_string(),
        first_parent: commit.parent_id(0).ok().map(|p| p.to_string()),
        changes_files,
    }
}

/// Document policies may also be run by the gate; report each finding once.
fn dedup(findings: &mut Vec<Finding>) {
    let mut seen = std::collections::HashSet::new();
    findings.retain(|f| {
        seen.insert((
            f.rule,
            f.message.clone(),
            f.location.as_ref().map(|l| (l.file.clone(), l.line)),
        ))
    });
}

/// Downgrade blocking findings for a granted emergency bypass, keeping them visible.
pub fn bypass_findings(findings: &mut [Finding]) {
    for finding in findings
        .iter_mut()
        .filter(|f| f.severity == Severity::Error)
    {
        finding.severity = Severity::Warning;
        finding.message = format!("bypassed: {}", finding.message);
    }
}

/// Where the hook runs: git starts it in the repository's git dir, with `GIT_DIR` set.
pub fn git_dir_from_env() -> PathBuf {
    std::env::var_os("GIT_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::current_dir().ok())
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The config that judges a ref (for `protect.bypass_users`), if it can be read.
pub fn trusted_config(
    repo: &Repository,
    update: &RefUpdate,
    config_dir: Option<&Path>,
) -> Option<crate::config::Config> {
    let trusted = trusted_tree(repo, update, config_dir).ok()?;
    Gate::open(trusted, None).ok().map(|gate| gate.config)
}

/// The commit the trust rule reads from (see [`trusted_tree`]), when it is a commit.
fn trusted_commit(repo: &Repository, update: &RefUpdate) -> Option<Oid> {
    match update.kind() {
        UpdateKind::Create => default_branch_tip(repo).ok().flatten(),
        _ => peel_commit(repo, &update.old),
    }
}

/// Above this many changed paths the full diff is as fast as a narrowed one.
const NARROW_LIMIT: usize = 256;

/// The paths that differ between two commits' trees, found by descending only into subtrees whose
/// ids differ. libgit2's tree diff reads every subtree of both sides; on a 50,000-file repository
/// that was a third of a one-file push's time. Empty (= no narrowing) for large or unusual changes.
fn changed_paths(repo: &Repository, base: Oid, head: Oid) -> Vec<String> {
    let tree_of = |id: Oid| repo.find_commit(id).ok().map(|c| c.tree_id());
    let (Some(old), Some(new)) = (tree_of(base), tree_of(head)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    match compare_trees(repo, Some(old), Some(new), "", &mut out) {
        Some(()) => out,
        None => Vec::new(),
    }
}

/// Collects differing paths into `out`; `None` when there are too many or one is not a plain path.
fn compare_trees(
    repo: &Repository,
    old: Option<Oid>,
    new: Option<Oid>,
    prefix: &str,
    out: &mut Vec<String>,
) -> Option<()> {
    let entries = |id: Option<Oid>| -> Option<std::collections::BTreeMap<String, (Oid, i32)>> {
        let Some(id) = id else {
            return Some(Default::default());
        };
        let tree = repo.find_tree(id).ok()?;
        Some(
            tree.iter()
                .map(|e| {
                    (
                        e.name().unwrap_or_default().to_owned(),
                        (e.id(), e.filemode()),
                    )
                })
                .collect(),
        )
    };
    let (old_entries, new_entries) = (entries(old)?, entries(new)?);
    let names: std::collections::BTreeSet<&String> =
        old_entries.keys().chain(new_entries.keys()).collect();
    for name in names {
        let (before, after) = (old_entries.get(name), new_entries.get(name));
        if before == after {
            continue;
        }
        if name.contains(['*', '?', '[', '\\', ':']) || name.is_empty() {
            return None;
        }
        let path = format!("{prefix}{name}");
        let is_tree = |e: Option<&(Oid, i32)>| e.is_some_and(|(_, mode)| *mode == 0o040000);
        let subtree =
            |e: Option<&(Oid, i32)>| e.filter(|(_, mode)| *mode == 0o040000).map(|(id, _)| *id);
        if is_tree(before) || is_tree(after) {
            compare_trees(
                repo,
                subtree(before),
                subtree(after),
                &format!("{path}/"),
                out,
            )?;
            // A file replaced by a directory (or back) also changes the path itself.
            if before.is_some() && after.is_some() && !(is_tree(before) && is_tree(after)) {
                out.push(path);
            }
        } else {
            out.push(path);
        }
        if out.len() > NARROW_LIMIT {
            return None;
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A commit whose tree holds `files` (path → content).
    fn commit(repo: &Repository, files: &[(&str, &str)]) -> Oid {
        let mut index = repo.index().unwrap();
        index.clear().unwrap();
        for (path, content) in files {
            let blob = repo.blob(content.as_bytes()).unwrap();
            let entry = git2::IndexEntry {
                ctime: git2::IndexTime::new(0, 0),
                mtime: git2::IndexTime::new(0, 0),
                dev: 0,
                ino: 0,
                mode: 0o100644,
                uid: 0,
                gid: 0,
                file_size: 0,
                id: blob,
                flags: 0,
                flags_extended: 0,
                path: path.as_bytes().to_vec(),
            };
            index.add(&entry).unwrap();
        }
        let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
        let sig = git2::Signature::new("t", "t@example.com", &git2::Time::new(0, 0)).unwrap();
        repo.commit(None, &sig, &sig, "c", &tree, &[]).unwrap()
    }

    #[test]
    fn only_differing_subtrees_are_descended_and_both_sides_listed() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init_bare(dir.path()).unwrap();
        let old = commit(
            &repo,
            &[
                ("a/x.yaml", "1"),
                ("a/y.yaml", "1"),
                ("b/z.yaml", "1"),
                ("f", "1"),
            ],
        );
        let new = commit(
            &repo,
            &[
                ("a/x.yaml", "2"),
                ("b/z.yaml", "1"),
                ("c/w.yaml", "1"),
                ("f/g", "1"),
            ],
        );
        let mut paths = changed_paths(&repo, old, new);
        paths.sort();
        assert_eq!(paths, ["a/x.yaml", "a/y.yaml", "c/w.yaml", "f", "f/g"]);
        assert!(changed_paths(&repo, old, old).is_empty());
    }

    #[test]
    fn too_many_changes_are_not_narrowed() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init_bare(dir.path()).unwrap();
        let names: Vec<String> = (0..=NARROW_LIMIT).map(|i| format!("d/{i}.yaml")).collect();
        let files: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "1")).collect();
        let old = commit(&repo, &[]);
        let new = commit(&repo, &files);
        assert!(changed_paths(&repo, old, new).is_empty());
    }
}
