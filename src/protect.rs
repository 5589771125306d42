//! Protection rules for refs (`protect` in the config): no force-push, no deletion, and optionally
//! no direct push (merge commits only) for the refs they match.

use globset::GlobSet;

use crate::config::{Permission, ProtectConfig};
use crate::finding::{Finding, Rule};

/// What a push does to a ref, as far as protection cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefMove {
    Create,
    Delete,
    /// `old` is an ancestor of `new`.
    FastForward {
        /// Every commit on the first-parent path from `new` back to `old` is a merge.
        only_merges: bool,
    },
    /// `old` is not an ancestor of `new`: history is rewritten.
    NonFastForward,
}

/// The compiled `protect` section.
pub struct Protection {
    config: ProtectConfig,
    refs: GlobSet,
}

impl Protection {
    pub fn new(config: &ProtectConfig) -> Result<Protection, Box<Finding>> {
        let refs = crate::gate::glob_set(&config.refs).map_err(|e| {
            Box::new(
                Finding::error(
                    Rule::ConfigInvalid,
                    format!("invalid glob in protect.refs: {e}"),
                )
                .in_file(crate::config::CONFIG_FILE),
            )
        })?;
        Ok(Protection {
            config: config.clone(),
            refs,
        })
    }

    pub fn protects(&self, git_ref: &str) -> bool {
        self.refs.is_match(git_ref)
    }

    pub fn may_bypass(&self, actor: Option<&str>) -> bool {
        actor.is_some_and(|a| self.config.bypass_users.iter().any(|u| u == a))
    }

    /// The protection findings for one ref. `through_merge_request` is true when the server says
    /// the push is the merge of a reviewed pull request (GHES sets `GITHUB_PULL_REQUEST_*`).
    pub fn check(
        &self,
        git_ref: &str,
        movement: RefMove,
        through_merge_request: bool,
    ) -> Vec<Finding> {
        if !self.protects(git_ref) {
            return Vec::new();
        }
        let mut findings = Vec::new();
        match movement {
            RefMove::Delete if self.config.deletion == Permission::Deny => findings.push(
                Finding::error(Rule::ProtectDeletion, format!("{git_ref} is protected: it cannot be deleted"))
                    .help("protected refs are listed in protect.refs of .stategate.yaml"),
            ),
            RefMove::NonFastForward if self.config.force_push == Permission::Deny => findings.push(
                Finding::error(
                    Rule::ProtectForcePush,
                    format!("{git_ref} is protected: this push rewrites its history (not a fast-forward)"),
                )
                .help("fetch, rebase your commits onto the current tip (`git pull --rebase`) and push without --force"),
            ),
            RefMove::FastForward { only_merges: false }
                if self.config.direct_push == Permission::Deny && !through_merge_request =>
            {
                findings.push(
                    Finding::error(
                        Rule::ProtectDirectPush,
                        format!("{git_ref} only takes merges: the push adds commits directly on it"),
                    )
                    .help("push your commits to another branch and merge it (a merge commit) into this one"),
                )
            }
            _ => {}
        }
        findings.into_iter().map(|f| f.for_ref(git_ref)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn protection(direct_push: Permission) -> Protection {
        Protection::new(&ProtectConfig {
            refs: vec!["refs/heads/main".into(), "refs/heads/release/*".into()],
            direct_push,
            bypass_users: vec!["oncall".into()],
            ..ProtectConfig::default()
        })
        .unwrap()
    }

    fn rules(findings: &[Finding]) -> Vec<&str> {
        findings.iter().map(|f| f.rule.code()).collect()
    }

    #[test]
    fn deletion_and_force_push_of_protected_refs_are_denied() {
        let p = protection(Permission::Allow);
        assert_eq!(
            rules(&p.check("refs/heads/main", RefMove::Delete, false)),
            ["protect/deletion"]
        );
        assert_eq!(
            rules(&p.check("refs/heads/release/1.0", RefMove::NonFastForward, false)),
            ["protect/force-push"]
        );
        assert!(
            p.check("refs/heads/feature", RefMove::NonFastForward, false)
                .is_empty()
        );
        assert!(
            p.check(
                "refs/heads/main",
                RefMove::FastForward { only_merges: false },
                false
            )
            .is_empty()
        );
    }

    #[test]
    fn direct_push_deny_takes_only_merges_or_merged_pull_requests() {
        let p = protection(Permission::Deny);
        let direct = RefMove::FastForward { only_merges: false };
        assert_eq!(
            rules(&p.check("refs/heads/main", direct, false)),
            ["protect/direct-push"]
        );
        assert!(p.check("refs/heads/main", direct, true).is_empty());
        assert!(
            p.check(
                "refs/heads/main",
                RefMove::FastForward { only_merges: true },
                false
            )
            .is_empty()
        );
    }

    #[test]
    fn only_listed_users_may_bypass() {
        let p = protection(Permission::Allow);
        assert!(p.may_bypass(Some("oncall")));
        assert!(!p.may_bypass(Some("mallory")));
        assert!(!p.may_bypass(None));
    }
}
