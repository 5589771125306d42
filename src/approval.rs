//! Approval evidence at push time: without a pull request, an approval is a commit in the pushed
//! range carrying a signature that verifies (as `git verify-commit` does) against an
//! `allowed_signers` file read from the trusted base.
//!
//! Verification shells out to the real `git` with `gpg.ssh.allowedSignersFile` pointing at a
//! private copy of that file: git's own SSH (`ssh-keygen -Y verify`) and GPG code is the reference
//! users trust, and re-implementing signature checks would be the riskier choice. Unsigned
//! `Approved-by:` trailers are never evidence: anyone can type them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use crate::config::ApprovalRule;
use crate::finding::{Finding, Rule};
use crate::tree::Tree;

/// One commit of the pushed range, newest first.
#[derive(Debug, Clone)]
pub struct PushedCommit {
    pub id: String,
    pub author_name: String,
    pub author_email: String,
    /// Whether the commit changes any file against its first parent (approval commits are empty).
    pub changes_files: bool,
}

/// A verified signature: the principal `allowed_signers` names for the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub commit: String,
    pub principal: String,
}

/// Check every approval rule whose paths the change touches.
///
/// `commits` is the pushed range newest first. Only signatures on commits made after the last
/// commit that changed files count, so an approval always covers the final state of the change.
pub fn check_approvals(
    rules: &[ApprovalRule],
    changed_paths: &[&str],
    commits: &[PushedCommit],
    trusted: &dyn Tree,
    git_dir: &Path,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    for rule in rules {
        let Ok(paths) = crate::gate::glob_set(&rule.paths) else {
            findings.push(
                Finding::error(
                    Rule::ConfigInvalid,
                    format!("approval rule `{}` has an invalid path glob", rule.name),
                )
                .in_file(crate::config::CONFIG_FILE),
            );
            continue;
        };
        if !changed_paths.iter().any(|p| paths.is_match(p)) {
            continue;
        }
        findings.extend(check_rule(rule, commits, trusted, git_dir));
    }
    findings
}

fn check_rule(
    rule: &ApprovalRule,
    commits: &[PushedCommit],
    trusted: &dyn Tree,
    git_dir: &Path,
) -> Option<Finding> {
    let missing = |message: String| {
        Some(Finding::error(Rule::ApprovalMissing, message).help(format!(
            "each approver listed in `from` adds a signed commit after the change: \
             `git -c gpg.format=ssh -c user.signingkey=~/.ssh/id_ed25519.pub commit --allow-empty -S -m \"Approve\"`; \
             keys must be in the rule's allowed_signers file ({})",
            rule.allowed_signers.as_deref().unwrap_or("not configured")
        )))
    };
    let Some(signers_path) = &rule.allowed_signers else {
        return missing(format!(
            "approval rule `{}` cannot be met on a push: it has no `allowed_signers` file to verify approvers' signatures",
            rule.name
        ));
    };
    let Some(signers) = trusted.read(signers_path) else {
        return missing(format!(
            "approval rule `{}`: its allowed_signers file `{signers_path}` is not in {}",
            rule.name,
            trusted.describe()
        ));
    };
    let evidence: Vec<&PushedCommit> = approval_window(commits);
    let ids: Vec<&str> = evidence.iter().map(|c| c.id.as_str()).collect();
    let verified = match verify_signatures(git_dir, &ids, &signers) {
        Ok(verified) => verified,
        Err(e) => {
            return Some(
                Finding::error(
                    Rule::GateInternal,
                    format!(
                        "cannot verify signatures for approval rule `{}`: {e}",
                        rule.name
                    ),
                )
                .help("the server needs `git` and `ssh-keygen` (or `gpg`) on PATH"),
            );
        }
    };
    let authors = change_authors(commits);
    let listed: BTreeSet<&str> = rule.from.iter().map(String::as_str).collect();
    let approvers: BTreeSet<&str> = verified
        .iter()
        .map(|v| v.principal.as_str())
        .filter(|p| listed.contains(p) && !is_author(p, &authors))
        .collect();
    let required = rule.required as usize;
    if approvers.len() >= required {
        return None;
    }
    let have = if approvers.is_empty() {
        "none".to_owned()
    } else {
        approvers.iter().copied().collect::<Vec<_>>().join(", ")
    };
    missing(format!(
        "approval rule `{}` needs {required} signed approval(s) from {} (not authors of the change); verified: {have}",
        rule.name,
        rule.from.join(", ")
    ))
}

/// The newest commits down to and including the newest one that changes files: later file
/// changes would not be covered by an earlier approval.
fn approval_window(commits: &[PushedCommit]) -> Vec<&PushedCommit> {
    let mut window = Vec::new();
    for commit in commits {
        window.push(commit);
        if commit.changes_files {
            break;
        }
    }
    window
}

/// Names and emails of those who wrote the change's file edits.
fn change_authors(commits: &[PushedCommit]) -> BTreeSet<String> {
    let mut authors = BTreeSet::new();
    for commit in commits.iter().filter(|c| c.changes_files) {
        authors.insert(commit.author_name.to_lowercase());
        let email = commit.author_email.to_lowercase();
        if let Some((local, _)) = email.split_once('@') {
            authors.insert(local.to_owned());
        }
        authors.insert(email);
    }
    authors
}

fn is_author(principal: &str, authors: &BTreeSet<String>) -> bool {
    authors.contains(&principal.to_lowercase())
}

/// Verify the commits' signatures with `git`, trusting only the keys in `allowed_signers`.
/// Returns the commits whose signature is good (`%G?` = `G`) with the principal that signed.
pub fn verify_signatures(
    git_dir: &Path,
    commits: &[&str],
    allowed_signers: &[u8],
) -> Result<Vec<Verified>, String> {
    if commits.is_empty() {
        return Ok(Vec::new());
    }
    let file = tempfile::Builder::new()
        .prefix("stategate-allowed-signers-")
        .tempfile()
        .map_err(|e| format!("cannot write a temporary allowed_signers file: {e}"))?;
    std::fs::write(file.path(), allowed_signers)
        .map_err(|e| format!("cannot write a temporary allowed_signers file: {e}"))?;
    let output = Command::new("git")
        .arg(format!("--git-dir={}", git_dir.display()))
        .arg("-c")
        .arg(format!(
            "gpg.ssh.allowedSignersFile={}",
            file.path().display()
        ))
        .args([
            "show",
            "-s",
            "--no-walk=unsorted",
            "--format=%H%x1f%G?%x1f%GS",
        ])
        .args(commits)
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "git show failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(parse_signature_lines(&String::from_utf8_lossy(
        &output.stdout,
    )))
}

fn parse_signature_lines(text: &str) -> Vec<Verified> {
    let mut by_commit = BTreeMap::new();
    for line in text.lines() {
        let mut fields = line.split('\x1f');
        let (Some(commit), Some(status), Some(principal)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if status == "G" && !principal.trim().is_empty() {
            by_commit.insert(commit.to_owned(), principal.trim().to_owned());
        }
    }
    by_commit
        .into_iter()
        .map(|(commit, principal)| Verified { commit, principal })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(id: &str, author: &str, changes_files: bool) -> PushedCommit {
        PushedCommit {
            id: id.into(),
            author_name: author.into(),
            author_email: format!("{author}@example.com"),
            changes_files,
        }
    }

    #[test]
    fn only_good_signatures_with_a_principal_count() {
        let text = "a\x1fG\x1falice\nb\x1fU\x1f\nc\x1fN\x1f\nd\x1fB\x1fbob\n";
        assert_eq!(
            parse_signature_lines(text),
            vec![Verified {
                commit: "a".into(),
                principal: "alice".into()
            }]
        );
    }

    #[test]
    fn approvals_must_come_after_the_last_file_change() {
        let commits = vec![
            commit("3", "bob", false),
            commit("2", "dev", true),
            commit("1", "carol", false),
        ];
        let window: Vec<&str> = approval_window(&commits)
            .iter()
            .map(|c| c.id.as_str())
            .collect();
        assert_eq!(window, ["3", "2"]);
    }

    #[test]
    fn authors_of_the_change_are_matched_by_name_email_and_local_part() {
        let authors = change_authors(&[commit("1", "Dev", true), commit("2", "bob", false)]);
        assert!(is_author("dev", &authors));
        assert!(is_author("dev@example.com", &authors));
        assert!(!is_author("bob", &authors));
    }
}
