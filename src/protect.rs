//! Protection rules for refs (`protect` in the config): no force-push, no deletion, and optionally
//! no direct push (merge commits only) for the refs they match.

use globset::GlobSet;

use crate::config::{CONFIG_FILE, Config, Permission, ProtectConfig};
use crate::finding::{Finding, Rule};
use crate::tree::Tree;

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
        let refs = crate::paths::glob_set(&config.refs).map_err(|e| {
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

/// The gate's own trust paths under `config`, as globs: the files whose change changes the rules
/// that judge later changes (the config, policies and their data, Gatekeeper templates, CRD and
/// mapped schemas, every allowed_signers file). Without `schemas.crds`, the files the gate reads
/// CRDs from by default.
pub fn trust_path_globs(config: &Config) -> Vec<String> {
    let mut globs = vec![CONFIG_FILE.to_owned()];
    let policies = &config.policies;
    for dir in policies
        .paths
        .iter()
        .chain(&policies.data)
        .chain(&policies.gatekeeper)
    {
        globs.extend(directory_globs(dir));
    }
    globs.extend(crate::schema::crd::crd_globs(&config.schemas.crds));
    globs.extend(config.schemas.map.iter().map(|m| m.schema.clone()));
    globs.extend(
        config
            .approvals
            .iter()
            .filter_map(|r| r.allowed_signers.clone()),
    );
    if let Some(admins) = &config.protect.admins {
        globs.extend(admins.allowed_signers.clone());
    }
    globs
}

/// A configured directory (or file) and everything under it.
fn directory_globs(dir: &str) -> Vec<String> {
    let dir = dir.trim_start_matches("./").trim_end_matches('/');
    if dir.is_empty() || dir == "." {
        return vec!["**".to_owned()];
    }
    vec![dir.to_owned(), format!("{dir}/**")]
}

/// The paths of a change that are trust paths under the base's `config`.
pub fn changed_trust_paths<'a>(
    config: &Config,
    changed: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<&'a str>, Box<Finding>> {
    let globs = crate::paths::glob_set(&trust_path_globs(config)).map_err(|e| {
        Box::new(
            Finding::error(
                Rule::ConfigInvalid,
                format!("invalid glob among the trust paths: {e}"),
            )
            .in_file(CONFIG_FILE),
        )
    })?;
    Ok(changed.into_iter().filter(|p| globs.is_match(p)).collect())
}

/// How a change takes the rules away entirely, if it does: it deletes or empties the config, or
/// removes every policy. Without `protect.admins`, that is refused; lesser edits of the rules are
/// judged by the base rules as usual.
pub fn removes_the_rules(config: &Config, base: &dyn Tree, head: &dyn Tree) -> Option<String> {
    if let Some(before) = base.read(CONFIG_FILE)
        && !is_empty_config(&before)
    {
        match head.read(CONFIG_FILE) {
            None => return Some(format!("it deletes {CONFIG_FILE}")),
            Some(after) if is_empty_config(&after) => {
                return Some(format!("it empties {CONFIG_FILE}"));
            }
            Some(_) => {}
        }
    }
    let policies = |config: &Config, tree: &dyn Tree| -> usize {
        config
            .policies
            .paths
            .iter()
            .flat_map(|dir| tree.files_under(dir.trim_start_matches("./").trim_end_matches('/')))
            .filter(|p| p.ends_with(".rego"))
            .count()
    };
    // The head's own config says where its policies are; an invalid one blocks every later push
    // by itself (the gate cannot read its rules), so it removes nothing here.
    let head_config = match head.read(CONFIG_FILE) {
        None => Some(Config::default()),
        Some(bytes) => std::str::from_utf8(&bytes)
            .ok()
            .and_then(|text| crate::config::parse_config(CONFIG_FILE, text).ok()),
    };
    let before = policies(config, base);
    let after = head_config.map(|c| policies(&c, head));
    (before > 0 && after == Some(0)).then(|| {
        format!("it removes every policy ({before} .rego file(s) under policies.paths before, none after)")
    })
}

/// A config with no settings at all: no documents, or only null or empty ones.
fn is_empty_config(bytes: &[u8]) -> bool {
    let loaded = crate::load::load_file(CONFIG_FILE, bytes, &crate::load::LoadOptions::default());
    loaded
        .findings
        .iter()
        .all(|f| f.severity != crate::finding::Severity::Error)
        && loaded.documents.iter().all(|d| match &d.value {
            serde_json::Value::Null => true,
            serde_json::Value::Object(map) => map.is_empty(),
            _ => false,
        })
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
    fn trust_paths_cover_config_policies_schemas_and_signers() {
        let config = crate::config::parse_config(
            CONFIG_FILE,
            "version: 1\nschemas:\n  crds: [\"crds/**\"]\n  map:\n    - files: [\"a/*.yaml\"]\n      schema: s/a.json\nprotect:\n  admins:\n    from: [alice]\n    allowed_signers: keys/admins\napprovals:\n  - name: p\n    paths: [\"p/**\"]\n    from: [bob]\n    allowed_signers: keys/p\n",
        )
        .unwrap();
        let changed = [
            ".stategate.yaml",
            "policies/x.rego",
            "policies/data/d.json",
            "crds/c.yaml",
            "s/a.json",
            "keys/admins",
            "keys/p",
            "apps/a.yaml",
            "policiesx.yaml",
        ];
        let touched = changed_trust_paths(&config, changed).unwrap();
        assert_eq!(touched, &changed[..7]);
    }

    #[test]
    fn removing_the_rules_is_deleting_or_emptying_the_config_or_every_policy() {
        use crate::tree::MemTree;
        let config = Config::default();
        let tree = |files: &[(&str, &str)]| MemTree::with_files("t", files);
        let base = tree(&[
            (CONFIG_FILE, "version: 1\n"),
            ("policies/a.rego", "package main"),
        ]);
        let kept = tree(&[
            (CONFIG_FILE, "version: 1\n# edited\n"),
            ("policies/b.rego", "package main"),
        ]);
        assert_eq!(removes_the_rules(&config, &base, &kept), None);
        let emptied = tree(&[
            (CONFIG_FILE, "# nothing\n"),
            ("policies/a.rego", "package main"),
        ]);
        assert!(
            removes_the_rules(&config, &base, &emptied)
                .unwrap()
                .contains("empties")
        );
        let deleted = tree(&[("policies/a.rego", "package main")]);
        assert!(
            removes_the_rules(&config, &base, &deleted)
                .unwrap()
                .contains("deletes")
        );
        let elsewhere = tree(&[
            (CONFIG_FILE, "version: 1\npolicies:\n  paths: [nothing/]\n"),
            ("policies/a.rego", "package main"),
        ]);
        assert!(
            removes_the_rules(&config, &base, &elsewhere)
                .unwrap()
                .contains("every policy")
        );
        let no_policies = tree(&[(CONFIG_FILE, "version: 1\n")]);
        assert!(
            removes_the_rules(&config, &base, &no_policies)
                .unwrap()
                .contains("every policy")
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
