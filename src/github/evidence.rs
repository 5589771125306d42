//! The PR's reviews and team memberships as approval evidence for the engine
//! ([`crate::approval::PullRequest`]), fetched on demand and at most once each: a PR that no
//! approval rule, change policy or drift acknowledgement needs reviews for costs no request.
//!
//! The engine is synchronous, so each fetch blocks on the front door's runtime; the engine is
//! called outside any `block_on`.

use std::cell::{OnceCell, RefCell};
use std::collections::HashMap;

use serde_json::Value;

use super::api::Api;
use crate::approval::{PrReviews, PullRequest};

/// Which pull request, and what the event already says about it.
pub enum Which {
    /// `pull_request` / `pull_request_review`: the payload names author and head.
    Known {
        number: u64,
        author: String,
        head_sha: String,
    },
    /// `merge_group`: the PR of the queue entry, from `head_ref`
    /// (`refs/heads/gh-readonly-queue/<base>/pr-<N>-<head sha>`); its author from the API.
    Queued { number: u64, head_sha: String },
    /// A merge group whose `head_ref` names no PR: approvals cannot be evaluated.
    Unknown(String),
}

impl Which {
    /// The PR a merge group's `head_ref` names.
    pub fn of_merge_group(head_ref: &str) -> Which {
        let name = head_ref.trim_start_matches("refs/heads/");
        let parsed = name
            .strip_prefix("gh-readonly-queue/")
            .and_then(|rest| rest.rsplit_once("/pr-"))
            .and_then(|(_, entry)| entry.split_once('-'))
            .and_then(|(n, sha)| Some((n.parse::<u64>().ok()?, sha)))
            .filter(|(_, sha)| sha.len() >= 40 && sha.chars().all(|c| c.is_ascii_hexdigit()));
        match parsed {
            Some((number, sha)) => Which::Queued {
                number,
                head_sha: sha.to_owned(),
            },
            None => Which::Unknown(format!(
                "the merge group's head_ref `{head_ref}` is not `gh-readonly-queue/<base>/pr-<N>-<sha>`, \
                 so the pull request whose reviews approve it is unknown"
            )),
        }
    }
}

pub struct GithubPr<'a> {
    pub runtime: &'a tokio::runtime::Runtime,
    pub api: &'a Api,
    pub repo: &'a str,
    pub which: Which,
    reviews: OnceCell<Result<PrReviews, String>>,
    members: RefCell<HashMap<(String, String), Result<bool, String>>>,
}

impl<'a> GithubPr<'a> {
    pub fn new(
        runtime: &'a tokio::runtime::Runtime,
        api: &'a Api,
        repo: &'a str,
        which: Which,
    ) -> GithubPr<'a> {
        GithubPr {
            runtime,
            api,
            repo,
            which,
            reviews: OnceCell::new(),
            members: RefCell::new(HashMap::new()),
        }
    }

    fn fetch(&self) -> Result<PrReviews, String> {
        let (number, author, head_sha) = match &self.which {
            Which::Known {
                number,
                author,
                head_sha,
            } => (*number, author.clone(), head_sha.clone()),
            Which::Queued { number, head_sha } => {
                let pr = self
                    .runtime
                    .block_on(
                        self.api
                            .get(&format!("/repos/{}/pulls/{number}", self.repo)),
                    )
                    .map_err(|e| {
                        format!("cannot read pull request #{number} of the merge group: {e}")
                    })?;
                let author = pr
                    .pointer("/user/login")
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("pull request #{number} has no author"))?;
                (*number, author.to_owned(), head_sha.clone())
            }
            Which::Unknown(why) => return Err(why.clone()),
        };
        let reviews = self
            .runtime
            .block_on(
                self.api
                    .get_all(&format!("/repos/{}/pulls/{number}/reviews", self.repo)),
            )
            .map_err(|e| e.to_string())?;
        Ok(PrReviews {
            author,
            head_sha,
            reviews,
        })
    }
}

impl PullRequest for GithubPr<'_> {
    fn reviews(&self) -> Result<PrReviews, String> {
        self.reviews.get_or_init(|| self.fetch()).clone()
    }

    fn is_member(&self, team: &str, user: &str) -> Result<bool, String> {
        let key = (team.to_owned(), user.to_owned());
        if let Some(answer) = self.members.borrow().get(&key) {
            return answer.clone();
        }
        let (org, slug) = team.split_once('/').unwrap_or((team, ""));
        let answer = match self.runtime.block_on(
            self.api
                .get(&format!("/orgs/{org}/teams/{slug}/memberships/{user}")),
        ) {
            Ok(v) => Ok(v.get("state").and_then(Value::as_str) == Some("active")),
            Err(e) if matches!(e.status(), Some(403 | 404)) => Err(format!(
                "cannot read whether {user} is in @{team} ({e}); the default GITHUB_TOKEN cannot read team membership: \
                 pass a GitHub App token with Members: read, or a PAT with read:org, as `github-token`"
            )),
            Err(e) => Err(format!("cannot read whether {user} is in @{team}: {e}")),
        };
        self.members.borrow_mut().insert(key, answer.clone());
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_merge_groups_head_ref_names_its_pull_request() {
        let sha = "929f8209d40f77f4abc622a499c93a83babdbe64";
        match Which::of_merge_group(&format!(
            "refs/heads/gh-readonly-queue/release/v1/pr-104-{sha}"
        )) {
            Which::Queued { number, head_sha } => {
                assert_eq!((number, head_sha.as_str()), (104, sha));
            }
            _ => panic!("not parsed"),
        }
        assert!(matches!(
            Which::of_merge_group("refs/heads/feature"),
            Which::Unknown(_)
        ));
    }
}
