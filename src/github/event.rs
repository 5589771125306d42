//! The event payload, and what it means to judge: the commits that would merge.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// The pull request a run is about.
#[derive(Debug, Clone)]
pub struct Pr {
    pub number: u64,
    pub author: String,
    pub base_sha: String,
    pub base_ref: String,
    pub head_sha: String,
}

#[derive(Debug)]
pub enum Event {
    /// `pull_request` and `pull_request_review`: judge, then check, comment.
    PullRequest(Pr),
    /// `merge_group` `checks_requested`: judge the queue's commit, check only.
    MergeGroup {
        base_sha: String,
        head_sha: String,
        /// `refs/heads/gh-readonly-queue/<base>/pr-<N>-<sha>`: names the PR whose reviews count.
        head_ref: String,
    },
}

impl Event {
    pub fn read(name: &str, path: &Path) -> Result<Event, String> {
        if name == "pull_request_target" {
            return Err(
                "refusing `pull_request_target`: it runs with a write token and secrets \
                 next to the PR's untrusted content, and stategate's rendering sandbox is not yet \
                 proven to hold. Use `pull_request` (fork PRs then get annotations and the job \
                 summary instead of a comment)"
                    .to_owned(),
            );
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read GITHUB_EVENT_PATH {}: {e}", path.display()))?;
        let payload: Value = serde_json::from_str(&text)
            .map_err(|e| format!("GITHUB_EVENT_PATH {} is not JSON: {e}", path.display()))?;
        let text_at = |pointer: &str| -> Result<String, String> {
            payload
                .pointer(pointer)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| format!("the {name} payload has no `{pointer}`"))
        };
        match name {
            "pull_request" | "pull_request_review" => Ok(Event::PullRequest(Pr {
                number: payload
                    .pointer("/pull_request/number")
                    .and_then(Value::as_u64)
                    .ok_or_else(|| format!("the {name} payload has no `/pull_request/number`"))?,
                author: text_at("/pull_request/user/login")?,
                base_sha: text_at("/pull_request/base/sha")?,
                base_ref: text_at("/pull_request/base/ref")?,
                head_sha: text_at("/pull_request/head/sha")?,
            })),
            "merge_group" => Ok(Event::MergeGroup {
                base_sha: text_at("/merge_group/base_sha")?,
                head_sha: text_at("/merge_group/head_sha")?,
                head_ref: text_at("/merge_group/head_ref").unwrap_or_default(),
            }),
            other => Err(format!(
                "`stategate github pr` runs on pull_request, pull_request_review and merge_group, not `{other}`"
            )),
        }
    }

    pub fn pr(&self) -> Option<&Pr> {
        match self {
            Event::PullRequest(pr) => Some(pr),
            Event::MergeGroup { .. } => None,
        }
    }
}

/// The commits to judge, and the commit the verdict is reported on.
#[derive(Debug)]
pub struct Target {
    pub base: String,
    pub head: String,
    pub report_sha: String,
}

/// What would merge. When the checkout is the PR's merge commit (the `pull_request` default), that
/// commit against its first parent; otherwise head against the merge base of base and head.
pub fn resolve(cwd: &Path, event: &Event) -> Result<Target, String> {
    match event {
        Event::MergeGroup {
            base_sha, head_sha, ..
        } => {
            ensure_commits(cwd, &[base_sha, head_sha])?;
            Ok(Target {
                base: base_sha.clone(),
                head: head_sha.clone(),
                report_sha: head_sha.clone(),
            })
        }
        Event::PullRequest(pr) => {
            // GITHUB_SHA is the PR's merge commit (refs/pull/N/merge), whatever the workflow
            // checked out; HEAD is that commit under actions/checkout's default.
            let parents = std::env::var("GITHUB_SHA")
                .ok()
                .filter(|sha| !sha.is_empty())
                .and_then(|sha| git(cwd, &["rev-list", "--parents", "-n", "1", &sha]).ok())
                .filter(|line| line.split_whitespace().nth(2) == Some(pr.head_sha.as_str()))
                .or_else(|| git(cwd, &["rev-list", "--parents", "-n", "1", "HEAD"]).ok())
                .unwrap_or_default();
            let ids: Vec<&str> = parents.split_whitespace().collect();
            if let [merge, first, second] = ids.as_slice()
                && *second == pr.head_sha
            {
                return Ok(Target {
                    base: (*first).to_owned(),
                    head: (*merge).to_owned(),
                    report_sha: pr.head_sha.clone(),
                });
            }
            ensure_commits(cwd, &[&pr.base_sha, &pr.head_sha])?;
            let base = match git(cwd, &["merge-base", &pr.base_sha, &pr.head_sha]) {
                Ok(base) => base,
                Err(_) => {
                    deepen(cwd)?;
                    git(cwd, &["merge-base", &pr.base_sha, &pr.head_sha]).map_err(|e| {
                        format!("no merge base of {} and {}: {e}", pr.base_sha, pr.head_sha)
                    })?
                }
            };
            Ok(Target {
                base,
                head: pr.head_sha.clone(),
                report_sha: pr.head_sha.clone(),
            })
        }
    }
}

/// Fetch commits a shallow or single-branch checkout lacks.
fn ensure_commits(cwd: &Path, shas: &[&String]) -> Result<(), String> {
    let missing: Vec<&str> = shas
        .iter()
        .filter(|sha| git(cwd, &["cat-file", "-e", &format!("{sha}^{{commit}}")]).is_err())
        .map(|s| s.as_str())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let mut args = vec!["fetch", "--no-tags", "--quiet", "origin"];
    args.extend(missing.iter().copied());
    git(cwd, &args).map_err(|e| {
        format!(
            "the checkout lacks commit(s) {} and fetching them failed: {e}. \
             Check out with `fetch-depth: 0` (actions/checkout) so base and head are present",
            missing.join(", ")
        )
    })?;
    Ok(())
}

fn deepen(cwd: &Path) -> Result<(), String> {
    let shallow = git(cwd, &["rev-parse", "--is-shallow-repository"]).unwrap_or_default();
    if shallow != "true" {
        return Ok(());
    }
    git(
        cwd,
        &["fetch", "--no-tags", "--quiet", "--unshallow", "origin"],
    )
    .map(drop)
    .map_err(|e| {
        format!("the checkout is shallow and unshallowing failed: {e}. Use `fetch-depth: 0`")
    })
}

fn git(cwd: &Path, args: &[&str]) -> Result<String, String> {
    let output = Command::new("git")
        .current_dir(cwd)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
    }
}
