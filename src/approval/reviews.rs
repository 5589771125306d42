//! Approval rules judged from PR reviews: the same `approvals:` rules the hook enforces with signed
//! commits, with reviews as the evidence.
//!
//! - Each reviewer counts through their latest APPROVED, CHANGES_REQUESTED or DISMISSED review;
//!   COMMENTED (and PENDING) reviews change nothing.
//! - With `dismiss_stale` (the default) an approval of an older commit than the head is stale.
//! - The PR author never counts.
//! - A CHANGES_REQUESTED from an eligible reviewer blocks.
//! - `from` holds users, `@org/team` slugs and `codeowners` (the owners of each touched path in
//!   the base's CODEOWNERS, last match wins). Team membership is looked up by the caller; an
//!   unreadable membership makes the rule undecidable, never satisfied.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use globset::GlobSet;
use serde_json::Value;

use super::{Decision, Need, PullRequest};
use crate::config::ApprovalRule;
use crate::finding::{Finding, Rule};
use crate::tree::Tree;

/// Where GitHub looks for CODEOWNERS, in its order.
const CODEOWNERS: [&str; 3] = [".github/CODEOWNERS", "CODEOWNERS", "docs/CODEOWNERS"];

/// Decide one requirement from the PR's reviews (see the module's rules).
pub fn decide(need: &Need<'_>, pr: &dyn PullRequest, trusted: &dyn Tree) -> Decision {
    let raw = match pr.reviews() {
        Ok(raw) => raw,
        Err(why) => {
            return Decision {
                finding: Some(
                    Finding::error(Rule::GateInternal, format!("cannot read the PR's reviews: {why}"))
                        .help("check the workflow's `permissions:` and the token passed as `github-token`"),
                ),
                ..Decision::default()
            };
        }
    };
    let latest = latest_per_reviewer(&raw.reviews);
    let (author, head_sha) = (raw.author.as_str(), raw.head_sha.as_str());
    let owners = CODEOWNERS
        .iter()
        .find_map(|p| trusted.read(p))
        .map(|b| Codeowners::parse(&String::from_utf8_lossy(&b)));
    // The need's paths are already the ones it applies to.
    let rule = ApprovalRule {
        name: need.name.clone(),
        paths: vec!["**".to_owned()],
        required: need.required,
        from: need.from.to_vec(),
        allowed_signers: None,
        dismiss_stale: need.dismiss_stale,
    };
    let needs = needs(&[&rule], &need.paths, owners.as_ref());
    let mut memberships = Memberships::new();
    for (team, user) in membership_questions(&needs, &latest, author) {
        let answer = pr.is_member(&team, &user);
        memberships.insert((team, user), answer);
    }
    let Some(row) = evaluate(&needs, &latest, author, head_sha, &memberships).pop() else {
        return Decision::default();
    };
    Decision {
        met_by: row.satisfied().then(|| row.approved_by.clone()),
        finding: unmet_finding(need, &row),
        row: Some(row),
    }
}

/// Why a row is not satisfied, as a finding; `None` when it is.
fn unmet_finding(need: &Need<'_>, row: &ApprovalRow) -> Option<Finding> {
    if let Some(why) = &row.undecided {
        return Some(
            Finding::error(Rule::GateInternal, format!("{}: {why}", need.what))
                .in_file(crate::config::CONFIG_FILE),
        );
    }
    if !row.changes_requested_by.is_empty() {
        return Some(
            Finding::error(
                need.rule,
                format!(
                    "{}: changes requested by {}",
                    need.what,
                    row.changes_requested_by.join(", ")
                ),
            )
            .with_meta("changes_requested", true),
        );
    }
    if row.missing() == 0 {
        return None;
    }
    let mut message = format!(
        "{} needs {} approval(s), has {}; still needed: {} more from {}",
        need.what,
        row.required,
        row.approved_by.len(),
        row.missing(),
        row.still_needed_from.join(", ")
    );
    if !row.stale.is_empty() {
        message.push_str(&format!(
            " (stale approvals of an older commit: {})",
            row.stale.join(", ")
        ));
    }
    Some(Finding::error(need.rule, message))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewState {
    Approved,
    ChangesRequested,
    Dismissed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Review {
    pub user: String,
    pub state: ReviewState,
    pub commit: String,
}

/// Each reviewer's latest review that counts, from the API's list (oldest first).
pub fn latest_per_reviewer(reviews: &[Value]) -> BTreeMap<String, Review> {
    let mut latest = BTreeMap::new();
    for review in reviews {
        let state = match review.get("state").and_then(Value::as_str) {
            Some("APPROVED") => ReviewState::Approved,
            Some("CHANGES_REQUESTED") => ReviewState::ChangesRequested,
            Some("DISMISSED") => ReviewState::Dismissed,
            _ => continue,
        };
        let Some(user) = review.pointer("/user/login").and_then(Value::as_str) else {
            continue; // a deleted account ("ghost") cannot approve
        };
        let commit = review
            .get("commit_id")
            .and_then(Value::as_str)
            .unwrap_or_default();
        latest.insert(
            user.to_owned(),
            Review {
                user: user.to_owned(),
                state,
                commit: commit.to_owned(),
            },
        );
    }
    latest
}

/// A `from` entry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Principal {
    User(String),
    /// `org/slug`.
    Team(String),
}

impl Principal {
    fn parse(entry: &str) -> Principal {
        let name = entry.trim_start_matches('@');
        if name.contains('/') {
            Principal::Team(name.to_owned())
        } else {
            Principal::User(name.to_owned())
        }
    }
}

impl std::fmt::Display for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Principal::User(u) => f.write_str(u),
            Principal::Team(t) => write!(f, "@{t}"),
        }
    }
}

/// The base branch's CODEOWNERS: one glob set per line, the last matching line wins.
pub struct Codeowners {
    lines: Vec<(GlobSet, Vec<Principal>)>,
}

impl Codeowners {
    pub fn parse(text: &str) -> Codeowners {
        let mut lines = Vec::new();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or_default().trim();
            let mut words = line.split_whitespace();
            let Some(pattern) = words.next() else {
                continue;
            };
            let owners: Vec<Principal> = words
                .filter(|w| w.starts_with('@'))
                .map(Principal::parse)
                .collect();
            // A pattern we cannot read matches nothing, as GitHub ignores invalid lines.
            if let Ok(set) = crate::paths::glob_set(&codeowners_globs(pattern)) {
                lines.push((set, owners));
            }
        }
        Codeowners { lines }
    }

    pub fn owners_of(&self, path: &str) -> &[Principal] {
        self.lines
            .iter()
            .rev()
            .find(|(set, _)| set.is_match(path))
            .map(|(_, owners)| owners.as_slice())
            .unwrap_or_default()
    }
}

/// gitignore-style CODEOWNERS patterns as globs: `/x` is anchored at the root, a pattern without
/// an inner slash matches at any depth, and every pattern also matches everything under it.
fn codeowners_globs(pattern: &str) -> Vec<String> {
    let anchored = pattern.starts_with('/') || pattern.trim_end_matches('/').contains('/');
    let body = pattern.trim_start_matches('/').trim_end_matches('/');
    let base = if anchored || body.starts_with("**") {
        body.to_owned()
    } else {
        format!("**/{body}")
    };
    if body == "*" || body.is_empty() {
        return vec!["**".to_owned()];
    }
    vec![base.clone(), format!("{base}/**")]
}

/// What one rule needs, resolved against the touched paths.
pub struct RuleNeeds<'r> {
    pub rule: &'r ApprovalRule,
    pub from: BTreeSet<Principal>,
}

/// The principals each touched rule accepts (`codeowners` expanded for the rule's touched paths).
pub fn needs<'r>(
    rules: &[&'r ApprovalRule],
    changed: &[String],
    codeowners: Option<&Codeowners>,
) -> Vec<RuleNeeds<'r>> {
    rules
        .iter()
        .map(|rule| {
            let mut from = BTreeSet::new();
            for entry in &rule.from {
                if entry == "codeowners" {
                    let Some(owners) = codeowners else { continue };
                    let paths = crate::paths::glob_set(&rule.paths).ok();
                    for path in changed
                        .iter()
                        .filter(|p| paths.as_ref().is_none_or(|s| s.is_match(p)))
                    {
                        from.extend(owners.owners_of(path).iter().cloned());
                    }
                } else {
                    from.insert(Principal::parse(entry));
                }
            }
            RuleNeeds { rule, from }
        })
        .collect()
}

/// The `(team, user)` pairs whose membership decides eligibility: reviewers with a counting
/// review who are not named directly.
pub fn membership_questions(
    needs: &[RuleNeeds<'_>],
    latest: &BTreeMap<String, Review>,
    author: &str,
) -> BTreeSet<(String, String)> {
    let mut questions = BTreeSet::new();
    for need in needs {
        for review in latest.values() {
            if review.user == author || review.state == ReviewState::Dismissed {
                continue;
            }
            if need.from.contains(&Principal::User(review.user.clone())) {
                continue;
            }
            for principal in &need.from {
                if let Principal::Team(team) = principal {
                    questions.insert((team.clone(), review.user.clone()));
                }
            }
        }
    }
    questions
}

/// Answers to membership questions: `Err` says why it could not be read.
pub type Memberships = HashMap<(String, String), Result<bool, String>>;

/// One row of the comment's approval table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalRow {
    pub rule: String,
    pub required: u32,
    pub approved_by: Vec<String>,
    /// Approvals of an older commit, not counted.
    pub stale: Vec<String>,
    pub changes_requested_by: Vec<String>,
    /// Who may still approve, when more are needed.
    pub still_needed_from: Vec<String>,
    /// The rule could not be decided (membership unreadable).
    pub undecided: Option<String>,
}

impl ApprovalRow {
    pub fn missing(&self) -> u32 {
        self.required.saturating_sub(self.approved_by.len() as u32)
    }

    pub fn satisfied(&self) -> bool {
        self.undecided.is_none() && self.changes_requested_by.is_empty() && self.missing() == 0
    }
}

/// Judge each rule from the reviews.
pub fn evaluate(
    needs: &[RuleNeeds<'_>],
    latest: &BTreeMap<String, Review>,
    author: &str,
    head_sha: &str,
    memberships: &Memberships,
) -> Vec<ApprovalRow> {
    needs
        .iter()
        .map(|need| {
            let mut row = ApprovalRow {
                rule: need.rule.name.clone(),
                required: need.rule.required,
                approved_by: Vec::new(),
                stale: Vec::new(),
                changes_requested_by: Vec::new(),
                still_needed_from: Vec::new(),
                undecided: None,
            };
            for review in latest.values() {
                if review.user == author || review.state == ReviewState::Dismissed {
                    continue;
                }
                match eligible(need, &review.user, memberships) {
                    Ok(false) => continue,
                    Ok(true) => {}
                    Err(why) => {
                        row.undecided.get_or_insert(why);
                        continue;
                    }
                }
                match review.state {
                    ReviewState::ChangesRequested => {
                        row.changes_requested_by.push(review.user.clone());
                    }
                    ReviewState::Approved
                        if need.rule.dismiss_stale && review.commit != head_sha =>
                    {
                        row.stale.push(review.user.clone());
                    }
                    ReviewState::Approved => row.approved_by.push(review.user.clone()),
                    ReviewState::Dismissed => {}
                }
            }
            if row.missing() > 0 {
                row.still_needed_from = need
                    .from
                    .iter()
                    .filter(|p| match p {
                        Principal::User(u) => !row.approved_by.contains(u) && u != author,
                        Principal::Team(_) => true,
                    })
                    .map(Principal::to_string)
                    .collect();
            }
            row
        })
        .collect()
}

fn eligible(need: &RuleNeeds<'_>, user: &str, memberships: &Memberships) -> Result<bool, String> {
    if need.from.contains(&Principal::User(user.to_owned())) {
        return Ok(true);
    }
    for principal in &need.from {
        if let Principal::Team(team) = principal {
            match memberships.get(&(team.clone(), user.to_owned())) {
                Some(Ok(true)) => return Ok(true),
                Some(Ok(false)) => {}
                Some(Err(why)) => return Err(why.clone()),
                None => return Err(format!("membership of {user} in @{team} was not read")),
            }
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codeowners_last_match_wins_and_patterns_are_gitignore_like() {
        let owners = Codeowners::parse(
            "* @everyone\n/clusters/prod/ @acme/platform # prod\nclusters/prod/db/ @dba\n*.md @docs\n",
        );
        let names = |p: &str| -> Vec<String> {
            owners.owners_of(p).iter().map(|p| p.to_string()).collect()
        };
        assert_eq!(names("clusters/prod/app/deploy.yaml"), ["@acme/platform"]);
        assert_eq!(names("clusters/prod/db/pg.yaml"), ["dba"]);
        assert_eq!(names("clusters/staging/app.yaml"), ["everyone"]);
        assert_eq!(names("clusters/prod/README.md"), ["docs"]);
    }

    #[test]
    fn only_the_latest_counting_review_of_each_reviewer_counts() {
        let reviews: Vec<Value> = serde_json::from_str(
            r#"[{"user":{"login":"a"},"state":"CHANGES_REQUESTED","commit_id":"1"},
                {"user":{"login":"a"},"state":"COMMENTED","commit_id":"2"},
                {"user":{"login":"b"},"state":"APPROVED","commit_id":"1"},
                {"user":{"login":"b"},"state":"DISMISSED","commit_id":"1"}]"#,
        )
        .unwrap();
        let latest = latest_per_reviewer(&reviews);
        assert_eq!(latest["a"].state, ReviewState::ChangesRequested);
        assert_eq!(latest["b"].state, ReviewState::Dismissed);
    }

    fn rule(dismiss_stale: bool) -> ApprovalRule {
        ApprovalRule {
            name: "prod".into(),
            paths: vec!["prod/**".into()],
            required: 1,
            from: vec!["alice".into(), "bob".into()],
            allowed_signers: None,
            dismiss_stale,
        }
    }

    fn review(user: &str, state: ReviewState, commit: &str) -> (String, Review) {
        let review = Review {
            user: user.into(),
            state,
            commit: commit.into(),
        };
        (user.to_owned(), review)
    }

    #[test]
    fn an_older_commits_approval_counts_only_without_dismiss_stale() {
        let latest = BTreeMap::from([review("alice", ReviewState::Approved, "old")]);
        let changed = vec!["prod/a.yaml".to_owned()];
        for (dismiss, satisfied) in [(true, false), (false, true)] {
            let rule = rule(dismiss);
            let needs = needs(&[&rule], &changed, None);
            let rows = evaluate(&needs, &latest, "author", "new", &Memberships::new());
            assert_eq!(rows[0].satisfied(), satisfied, "dismiss_stale: {dismiss}");
        }
    }

    #[test]
    fn changes_requested_by_someone_not_eligible_does_not_block() {
        let latest = BTreeMap::from([
            review("alice", ReviewState::Approved, "h"),
            review("mallory", ReviewState::ChangesRequested, "h"),
        ]);
        let rule = rule(true);
        let needs = needs(&[&rule], &["prod/a.yaml".to_owned()], None);
        let rows = evaluate(&needs, &latest, "author", "h", &Memberships::new());
        assert!(rows[0].satisfied(), "{:?}", rows[0]);
    }
}
