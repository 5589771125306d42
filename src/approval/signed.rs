//! Approval evidence at push time (signed commits): without a pull request, an approval is a commit in the pushed
//! range carrying a signature that verifies (as `git verify-commit` does) against an
//! `allowed_signers` file read from the trusted base.
//!
//! Verification shells out to the real `git` with `gpg.ssh.allowedSignersFile` pointing at a
//! private copy of that file: git's own SSH (`ssh-keygen -Y verify`) and GPG code is the reference
//! users trust, and re-implementing signature checks would be the riskier choice. Unsigned
//! `Approved-by:` trailers are never evidence: anyone can type them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::process::Command;

use crate::config::ApprovalRule;
use crate::finding::{Finding, Rule};
use crate::tree::Tree;

/// One commit the push adds to the ref.
#[derive(Debug, Clone)]
pub struct PushedCommit {
    pub id: String,
    pub tree: String,
    pub first_parent: Option<String>,
    /// Whether the commit changes any file against its first parent (approval commits are empty).
    pub changes_files: bool,
}

/// The change a push makes to one ref: what approvals are judged against.
#[derive(Debug, Clone, Copy)]
pub struct PushedChange<'a> {
    /// The commit the ref will point at.
    pub tip: &'a str,
    /// Every commit the push adds to the ref, in any order.
    pub commits: &'a [PushedCommit],
    /// The authenticated pusher, when the server says.
    pub pusher: Option<&'a str>,
}

/// A verified signature: the principal `allowed_signers` names for the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub commit: String,
    pub principal: String,
}

/// Who must approve: an approval rule, or `protect.admins` for the gate's own rules.
#[derive(Debug, Clone)]
pub struct Requirement<'a> {
    pub from: &'a [String],
    pub required: u32,
    pub allowed_signers: Option<&'a str>,
}

impl<'a> From<&'a ApprovalRule> for Requirement<'a> {
    fn from(rule: &'a ApprovalRule) -> Self {
        Requirement {
            from: &rule.from,
            required: rule.required,
            allowed_signers: rule.allowed_signers.as_deref(),
        }
    }
}

/// Why a requirement is not met, in words for the pusher.
#[derive(Debug, Clone)]
pub enum Unmet {
    /// The requirement names no allowed_signers file, or the trusted base lacks it.
    NoSigners(String),
    /// Fewer independent approvers than required.
    TooFew {
        approvers: BTreeSet<String>,
        /// Change commits whose author no signature proves.
        unproven: Vec<String>,
        /// Listed signers left out because they wrote or pushed the change.
        involved: BTreeSet<String>,
    },
    /// Signatures could not be checked at all.
    Broken(String),
}

/// The finding for an unmet requirement: what is missing and how an approver signs.
pub fn unmet_finding(
    rule: Rule,
    what: &str,
    requirement: &Requirement<'_>,
    unmet: &Unmet,
) -> Finding {
    let signers = requirement.allowed_signers.unwrap_or("not configured");
    let how = format!(
        "each approver listed in `from` adds a signed commit after the change: \
         `git -c gpg.format=ssh -c user.signingkey=~/.ssh/id_ed25519.pub commit --allow-empty -S -m \"Approve\"`; \
         keys must be in the allowed_signers file ({signers}); sign the change's own commits too (`git commit -S`), \
         so its authors are proven"
    );
    match unmet {
        Unmet::Broken(e) => Finding::error(
            Rule::GateInternal,
            format!("cannot verify signatures for {what}: {e}"),
        )
        .help("the server needs `git` and `ssh-keygen` (or `gpg`) on PATH"),
        Unmet::NoSigners(why) => {
            Finding::error(rule, format!("{what} cannot be met on a push: {why}")).help(how)
        }
        Unmet::TooFew {
            approvers,
            unproven,
            involved,
        } => {
            let have = if approvers.is_empty() {
                "none".to_owned()
            } else {
                approvers.iter().cloned().collect::<Vec<_>>().join(", ")
            };
            let mut message = format!(
                "{what} needs {} signed approval(s) from {} (not authors or pushers of the change); verified: {have}",
                requirement.required,
                requirement.from.join(", ")
            );
            if !involved.is_empty() {
                let names: Vec<&str> = involved.iter().map(String::as_str).collect();
                message.push_str(&format!(
                    "; not independent (wrote or pushed the change): {}",
                    names.join(", ")
                ));
            }
            if !unproven.is_empty() {
                let short: Vec<&str> = unproven.iter().map(|c| &c[..c.len().min(12)]).collect();
                message.push_str(&format!(
                    "; commit(s) {} are unsigned or signed by a key not in {signers}, so anyone could have written them and no approval counts as independent",
                    short.join(", ")
                ));
            }
            Finding::error(rule, message).help(how)
        }
    }
}

/// Whether the change has enough independent, verified approvals; the approvers when it does.
///
/// An approval is a good signature by a listed principal on a commit of the first-parent chain
/// from the tip down to the newest commit that changes files, whose tree is the tip's tree: it
/// approves exactly the state the ref will hold. Commits brought in beside that chain (a
/// `git merge -s ours` of approvals made elsewhere) are not on it. Independence rests on proof:
/// the verified signers of the change's file-changing commits and the pusher are not independent,
/// and when any change commit's author is unproven, no signer is.
pub fn check_requirement(
    requirement: &Requirement<'_>,
    change: PushedChange<'_>,
    trusted: &dyn Tree,
    git_dir: &Path,
) -> Result<BTreeSet<String>, Unmet> {
    let Some(signers_path) = requirement.allowed_signers else {
        return Err(Unmet::NoSigners(
            "it has no `allowed_signers` file to verify approvers' signatures".to_owned(),
        ));
    };
    let Some(signers) = trusted.read(signers_path) else {
        return Err(Unmet::NoSigners(format!(
            "its allowed_signers file `{signers_path}` is not in {}",
            trusted.describe()
        )));
    };
    let window = approval_window(change);
    let authored: Vec<&str> = change
        .commits
        .iter()
        .filter(|c| c.changes_files)
        .map(|c| c.id.as_str())
        .collect();
    let mut ids: Vec<&str> = window.clone();
    ids.extend(authored.iter().filter(|id| !window.contains(id)));
    let verified = verify_signatures(git_dir, &ids, &signers).map_err(Unmet::Broken)?;
    let signer_of: HashMap<&str, &str> = verified
        .iter()
        .map(|v| (v.commit.as_str(), v.principal.as_str()))
        .collect();
    let unproven: Vec<String> = authored
        .iter()
        .filter(|id| !signer_of.contains_key(*id))
        .map(|id| (*id).to_owned())
        .collect();
    let mut involved_all: BTreeSet<String> = authored
        .iter()
        .filter_map(|id| signer_of.get(id))
        .map(|p| p.to_lowercase())
        .collect();
    involved_all.extend(change.pusher.map(str::to_lowercase));
    let listed: BTreeSet<&str> = requirement.from.iter().map(String::as_str).collect();
    let mut approvers = BTreeSet::new();
    let mut involved = BTreeSet::new();
    for principal in window.iter().filter_map(|id| signer_of.get(id)) {
        if !listed.contains(principal) {
            continue;
        }
        if involved_all.contains(&principal.to_lowercase()) {
            involved.insert((*principal).to_owned());
        } else if unproven.is_empty() {
            approvers.insert((*principal).to_owned());
        }
    }
    if approvers.len() >= requirement.required as usize {
        return Ok(approvers);
    }
    Err(Unmet::TooFew {
        approvers,
        unproven,
        involved,
    })
}

/// The first-parent chain from the tip down to and including the newest commit that changes
/// files, keeping the commits whose tree is the tip's: the only places an approval of exactly this
/// change can sit. A later file change ends the window, so an earlier approval never covers it.
fn approval_window<'a>(change: PushedChange<'a>) -> Vec<&'a str> {
    let by_id: HashMap<&str, &PushedCommit> =
        change.commits.iter().map(|c| (c.id.as_str(), c)).collect();
    let Some(tip) = by_id.get(change.tip) else {
        return Vec::new();
    };
    let mut window = Vec::new();
    let mut current = Some(*tip);
    while let Some(commit) = current {
        if commit.tree == tip.tree {
            window.push(commit.id.as_str());
        }
        if commit.changes_files {
            break;
        }
        current = commit
            .first_parent
            .as_deref()
            .and_then(|parent| by_id.get(parent).copied());
    }
    window
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

    fn commit(id: &str, tree: &str, parent: Option<&str>, changes_files: bool) -> PushedCommit {
        PushedCommit {
            id: id.into(),
            tree: tree.into(),
            first_parent: parent.map(Into::into),
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
    fn approvals_sit_on_the_first_parent_chain_after_the_last_file_change() {
        // 1 approval (old) <- 2 change <- 3 approval <- 5 merge (-s ours) of 4, an approval elsewhere.
        let commits = vec![
            commit("5", "t2", Some("3"), false),
            commit("4", "t1", Some("1"), false),
            commit("3", "t2", Some("2"), false),
            commit("2", "t2", Some("1"), true),
            commit("1", "t1", None, false),
        ];
        let change = PushedChange {
            tip: "5",
            commits: &commits,
            pusher: None,
        };
        assert_eq!(approval_window(change), ["5", "3", "2"]);
    }
}
