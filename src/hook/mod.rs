//! `stategate hook pre-receive`: the server-side front door.
//!
//! git runs the hook once per push with one `<old> <new> <ref>` line per ref on stdin. Every ref is
//! judged (protection, schemas, policies, approvals) with the rules of the ref's tip before the push;
//! any failing ref rejects the whole push. The judgement runs on a worker thread under a time budget,
//! so the hook fails closed instead of hanging past the server's limit.

pub mod audit;
pub mod judge;
pub mod messages;
pub mod protocol;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use crate::finding::{Finding, Rule, Severity, Verdict};
use audit::AuditRecord;
use messages::{Messenger, Style};
use protocol::{ObjectFormat, RefUpdate, parse_updates};

/// The environment variables that name the pusher, by server, in order of preference.
pub const IDENTITY_VARS: &[&str] = &[
    "GITHUB_USER_LOGIN",
    "GL_USERNAME",
    // gitolite names the authenticated user in GL_USER.
    "GL_USER",
    "GITEA_PUSHER_NAME",
    "REMOTE_USER",
];

/// The push option that requests an emergency bypass: `git push -o stategate.bypass="reason"`.
pub const BYPASS_OPTION: &str = "stategate.bypass";

/// The push option that acknowledges live drift (and, for `promote.skip_by`, a skipped promotion):
/// `git push -o stategate.ack-drift="reason"`.
pub use crate::engine::drift::ACK_DRIFT_OPTION;

/// How the hook was asked to run.
#[derive(Debug, Clone)]
pub struct HookOptions {
    /// Read config, schemas and policies from this directory instead of the trusted base.
    pub config_dir: Option<PathBuf>,
    /// Default: `<git dir>/stategate-audit.log`.
    pub audit_log: Option<PathBuf>,
    pub timeout: Duration,
    /// The pusher when the server does not say.
    pub user: Option<String>,
    pub color: bool,
}

/// What the server's environment says about this push.
#[derive(Debug, Clone, Default)]
pub struct PushContext {
    pub actor: Option<String>,
    pub bypass_reason: Option<String>,
    /// The reason given with `-o stategate.ack-drift=…`, if any.
    pub ack_drift: Option<String>,
    /// GHES merges of pull requests through its UI set `GITHUB_PULL_REQUEST_*`; approvals were
    /// then enforced by the required check of the Action, not here.
    pub through_pull_request: bool,
    pub config_dir: Option<PathBuf>,
}

impl PushContext {
    pub fn from_env(options: &HookOptions) -> PushContext {
        let actor = IDENTITY_VARS
            .iter()
            .find_map(|var| std::env::var(var).ok().filter(|v| !v.is_empty()))
            .or_else(|| options.user.clone());
        let pushed = push_options();
        PushContext {
            actor,
            bypass_reason: bypass_reason(&pushed),
            ack_drift: option_value(&pushed, ACK_DRIFT_OPTION),
            through_pull_request: std::env::vars_os()
                .any(|(k, _)| k.to_string_lossy().starts_with("GITHUB_PULL_REQUEST_")),
            config_dir: options.config_dir.clone(),
        }
    }
}

/// Push options as git hands them to the hook: `GIT_PUSH_OPTION_COUNT` and `GIT_PUSH_OPTION_<n>`.
fn push_options() -> Vec<String> {
    let count: usize = std::env::var("GIT_PUSH_OPTION_COUNT")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (0..count)
        .filter_map(|i| std::env::var(format!("GIT_PUSH_OPTION_{i}")).ok())
        .collect()
}

fn bypass_reason(options: &[String]) -> Option<String> {
    option_value(options, BYPASS_OPTION)
}

fn option_value(options: &[String], wanted: &str) -> Option<String> {
    options.iter().find_map(|option| {
        let (key, value) = option.split_once('=').unwrap_or((option, ""));
        (key == wanted).then(|| value.trim().trim_matches('"').to_owned())
    })
}

/// The decision about one ref.
#[derive(Debug, Clone)]
pub struct RefOutcome {
    pub update: RefUpdate,
    pub findings: Vec<Finding>,
    /// The bypass reason, when one was requested.
    pub bypass: Option<String>,
    pub bypass_allowed: bool,
}

impl RefOutcome {
    pub fn verdict(&self) -> Verdict {
        Verdict::of(&self.findings)
    }
}

/// Run the hook on the lines of `input`; returns the exit code (0 accept, 1 reject, 2 undecided).
pub fn pre_receive(input: &str, options: &HookOptions, err: &mut dyn Write) -> u8 {
    let mut out = Messenger::new(err, Style::from_env(options.color));
    let updates = match parse_updates(input) {
        Ok(updates) => updates,
        Err(e) => {
            out.line(&format!("stategate: {e}"));
            out.line("stategate: push rejected: the hook could not read what is pushed");
            return Verdict::Undecided.exit_code();
        }
    };
    if updates.is_empty() {
        // git runs pre-receive only with ref lines; none means the plumbing in front of the hook
        // (a wrapper script, a server) lost them, and nothing was judged.
        out.line("stategate: push rejected: the hook received no `<old> <new> <ref>` lines on stdin, so nothing was judged");
        out.line("stategate: the hook must get git's stdin untouched; reinstall it with `stategate hook install --repo DIR`");
        return Verdict::Undecided.exit_code();
    }
    if updates.iter().any(|u| u.format() == ObjectFormat::Sha256) {
        out.line("stategate: push rejected: this is a SHA-256 repository, which stategate cannot read yet");
        out.line("stategate: ask the server administrator to remove the stategate hook from SHA-256 repositories or use --config-dir with a SHA-1 mirror");
        return Verdict::Undecided.exit_code();
    }
    // Every pushed object was hashed by git's index-pack on receipt, and the rest is the server's
    // own store; re-hashing each tree libgit2 reads (SHA-1 with collision detection) was most of
    // the hook's time on large repositories.
    git2::opts::strict_hash_verification(false);
    let ctx = PushContext::from_env(options);
    let git_dir = judge::git_dir_from_env();
    let outcomes = match judge_with_timeout(updates.clone(), ctx.clone(), options.timeout) {
        Ok(outcomes) => outcomes,
        Err(finding) => updates
            .iter()
            .map(|u| RefOutcome {
                update: u.clone(),
                findings: vec![(*finding).clone().for_ref(&u.name)],
                bypass: ctx.bypass_reason.clone(),
                bypass_allowed: false,
            })
            .collect(),
    };
    let mut outcomes = outcomes;
    let log = options
        .audit_log
        .clone()
        .unwrap_or_else(|| default_audit_log(&git_dir));
    // Audit first: a bypass is only granted once it is on record, so the verdict printed below is
    // the final one.
    let records: Vec<AuditRecord> = outcomes.iter().map(|o| record(o, &ctx)).collect();
    if let Err(e) = audit::append(&log, &records) {
        let message = format!("cannot write the audit log {}: {e}", log.display());
        let bypassed = outcomes.iter().any(|o| o.bypass_allowed || acknowledged(o));
        for outcome in outcomes
            .iter_mut()
            .filter(|o| o.bypass_allowed || acknowledged(o))
        {
            outcome.findings.push(
                Finding::error(
                    Rule::GateInternal,
                    format!(
                        "{message}; a bypass or acknowledgement that cannot be audited is not granted"
                    ),
                )
                .for_ref(&outcome.update.name)
                .help("ask the server's administrator to make the audit log writable"),
            );
            outcome.bypass_allowed = false;
        }
        if !bypassed {
            out.line(&format!("stategate: {message}"));
        }
    }
    report(&mut out, &outcomes, &ctx);
    push_verdict(&outcomes).exit_code()
}

/// Judge every ref on a worker thread; after `timeout` give up and refuse the push.
fn judge_with_timeout(
    updates: Vec<RefUpdate>,
    ctx: PushContext,
    timeout: Duration,
) -> Result<Vec<RefOutcome>, Box<Finding>> {
    let (send, receive) = mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("stategate-judge".into())
        .spawn(move || {
            let _ = send.send(judge_all(&updates, &ctx));
        });
    if let Err(e) = spawned {
        return Err(Box::new(Finding::error(
            Rule::GateInternal,
            format!("cannot start the check: {e}"),
        )));
    }
    match receive.recv_timeout(timeout) {
        Ok(result) => result,
        Err(mpsc::RecvTimeoutError::Timeout) => {
            // The worker is abandoned, not stopped: its renderers and checkouts are cleaned here.
            crate::render::sandbox::abandon_all();
            Err(Box::new(Finding::error(
            Rule::GateTimeout,
            format!(
                "the checks did not finish within {:.1} s, so the push is refused",
                timeout.as_secs_f64()
            ),
        )
        .help("push fewer changes at once, or ask the administrator to raise --timeout (GitHub Enterprise Server allows 5 s in total)")))
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => Err(Box::new(Finding::error(
            Rule::GateInternal,
            "the check stopped unexpectedly, so the push is refused",
        ))),
    }
}

fn judge_all(updates: &[RefUpdate], ctx: &PushContext) -> Result<Vec<RefOutcome>, Box<Finding>> {
    let repo = open_repository()?;
    let mut outcomes = Vec::with_capacity(updates.len());
    for update in updates {
        let mut outcome = judge::judge_ref(&repo, update, ctx);
        apply_bypass(&mut outcome, &repo, ctx);
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// Open the repository as git describes it to the hook, quarantined objects included.
fn open_repository() -> Result<git2::Repository, Box<Finding>> {
    let opened = if std::env::var_os("GIT_DIR").is_some() {
        git2::Repository::open_from_env()
    } else {
        git2::Repository::open_from_env().or_else(|_| git2::Repository::discover("."))
    };
    opened.map_err(|e| {
        let sha256 = e.message().contains("objectformat") || e.message().contains("extension");
        let message = if sha256 {
            format!(
                "cannot open the repository: {} (SHA-256 repositories are not supported yet)",
                e.message()
            )
        } else {
            format!("cannot open the repository: {}", e.message())
        };
        Box::new(
            Finding::error(Rule::GateInternal, message).help(
                "the push cannot be judged, so it is refused; tell the server's administrator",
            ),
        )
    })
}

/// An emergency bypass by a listed user turns the ref's blocking findings into warnings.
fn apply_bypass(outcome: &mut RefOutcome, repo: &git2::Repository, ctx: &PushContext) {
    let Some(reason) = &ctx.bypass_reason else {
        return;
    };
    outcome.bypass = Some(reason.clone());
    let allowed = bypass_users(repo, &outcome.update, ctx)
        .is_some_and(|users| ctx.actor.as_ref().is_some_and(|a| users.contains(a)));
    let actor = ctx.actor.as_deref().unwrap_or("an unknown user");
    if allowed && !reason.is_empty() {
        outcome.bypass_allowed = true;
        judge::bypass_findings(&mut outcome.findings);
        outcome.findings.push(
            Finding::warning(
                Rule::ProtectBypass,
                format!("emergency bypass by {actor}: {reason}"),
            )
            .for_ref(&outcome.update.name)
            .help("this push is recorded in the audit log"),
        );
    } else {
        let why = if reason.is_empty() {
            "a bypass needs a reason: -o stategate.bypass=\"why\"".to_owned()
        } else {
            format!("{actor} is not in protect.bypass_users")
        };
        outcome.findings.push(
            Finding::warning(
                Rule::ProtectBypass,
                format!("bypass refused: {why}; the push is judged normally"),
            )
            .for_ref(&outcome.update.name),
        );
    }
}

/// `protect.bypass_users` from the same trusted config that judged the ref.
fn bypass_users(
    repo: &git2::Repository,
    update: &RefUpdate,
    ctx: &PushContext,
) -> Option<Vec<String>> {
    judge::trusted_config(repo, update, ctx.config_dir.as_deref()).map(|c| c.protect.bypass_users)
}

fn push_verdict(outcomes: &[RefOutcome]) -> Verdict {
    let verdicts: Vec<Verdict> = outcomes.iter().map(RefOutcome::verdict).collect();
    if verdicts.contains(&Verdict::Undecided) {
        Verdict::Undecided
    } else if verdicts.contains(&Verdict::Fail) {
        Verdict::Fail
    } else {
        Verdict::Pass
    }
}

/// Per finding one line, then one summary line and what to do.
fn report(out: &mut Messenger<'_>, outcomes: &[RefOutcome], ctx: &PushContext) {
    for outcome in outcomes {
        for finding in outcome
            .findings
            .iter()
            .filter(|f| f.severity != Severity::Note)
        {
            out.finding(finding);
        }
    }
    let errors: usize = outcomes
        .iter()
        .map(|o| {
            o.findings
                .iter()
                .filter(|f| f.severity == Severity::Error)
                .count()
        })
        .sum();
    let failed: Vec<&str> = outcomes
        .iter()
        .filter(|o| o.verdict() != Verdict::Pass)
        .map(|o| o.update.name.as_str())
        .collect();
    match push_verdict(outcomes) {
        Verdict::Pass => out.line(&format!(
            "stategate: push accepted ({} ref(s) checked)",
            outcomes.len()
        )),
        verdict => {
            let kind = if verdict == Verdict::Undecided {
                "could not be judged"
            } else {
                "breaks the rules"
            };
            out.line(&format!(
                "stategate: push rejected: {errors} error(s); {} {kind}",
                failed.join(", ")
            ));
            let bypass = if ctx.bypass_reason.is_some() {
                ""
            } else {
                "; in an emergency, a user listed in protect.bypass_users may push with -o stategate.bypass=\"reason\""
            };
            let local = outcomes
                .iter()
                .find(|o| o.verdict() != Verdict::Pass)
                .map(|o| local_command(&o.update))
                .unwrap_or_default();
            out.line(&format!(
                "stategate: fix the findings above{local} and push again{bypass}"
            ));
        }
    }
}

/// Whether an acknowledgement (`stategate.ack-drift`, a signed approval) softened a finding.
fn acknowledged(outcome: &RefOutcome) -> bool {
    outcome
        .findings
        .iter()
        .any(|f| f.message.starts_with(crate::drift::ACKNOWLEDGED))
}

/// The `stategate check` that shows a rejected ref's findings on the pusher's clone, with the
/// push's real ids (a new ref has no base: every file at its tip).
fn local_command(update: &protocol::RefUpdate) -> String {
    let short = |id: &str| id.chars().take(12).collect::<String>();
    if protocol::is_zero(&update.new) {
        return String::new();
    }
    if protocol::is_zero(&update.old) {
        format!(
            " (`stategate check --all --head {}` shows them locally)",
            short(&update.new)
        )
    } else {
        format!(
            " (`stategate check --base {} --head {}` shows them locally)",
            short(&update.old),
            short(&update.new)
        )
    }
}

fn record(outcome: &RefOutcome, ctx: &PushContext) -> AuditRecord {
    let count = |severity| {
        outcome
            .findings
            .iter()
            .filter(|f| f.severity == severity)
            .count()
    };
    let decision = match outcome.verdict() {
        Verdict::Pass => "accepted",
        Verdict::Fail => "rejected",
        Verdict::Undecided => "undecided",
    };
    AuditRecord {
        time: audit::now(),
        git_ref: outcome.update.name.clone(),
        old: outcome.update.old.clone(),
        new: outcome.update.new.clone(),
        action: outcome.update.kind().as_str().to_owned(),
        actor: ctx.actor.clone(),
        decision: decision.to_owned(),
        errors: count(Severity::Error),
        warnings: count(Severity::Warning),
        rules: outcome
            .findings
            .iter()
            .filter(|f| {
                f.severity == Severity::Error
                    || f.message.starts_with("bypassed: ")
                    || f.message.starts_with(crate::drift::ACKNOWLEDGED)
            })
            .map(|f| f.rule.code().to_owned())
            .collect(),
        bypass: outcome.bypass.clone(),
        bypass_granted: outcome.bypass.as_ref().map(|_| outcome.bypass_allowed),
        ack_drift: ctx.ack_drift.clone(),
        ack_drift_granted: ctx.ack_drift.as_ref().map(|_| acknowledged(outcome)),
    }
}

/// The default audit log of a repository.
pub fn default_audit_log(git_dir: &Path) -> PathBuf {
    git_dir.join("stategate-audit.log")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bypass_option_carries_its_reason() {
        let options = vec![
            "ci.skip".to_owned(),
            "stategate.bypass=\"prod is down\"".to_owned(),
        ];
        assert_eq!(bypass_reason(&options).as_deref(), Some("prod is down"));
        assert_eq!(bypass_reason(&["other=1".to_owned()]), None);
        assert_eq!(
            bypass_reason(&["stategate.bypass".to_owned()]).as_deref(),
            Some("")
        );
    }
}
