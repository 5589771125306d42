//! Front door: `stategate github pr`, the Action's entry point. Reads the `GITHUB_*` variables and
//! the event payload, judges what would merge with the engine (through [`engine`] only), then
//! reports through a check run, one sticky comment, the step summary and the step outputs.

mod api;
mod checks;
mod comment;
pub mod engine;
mod event;
mod evidence;

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::approval::Evidence;
use crate::finding::{Finding, Rule, Severity, Verdict};
use crate::report::{Format, RenderOptions, Report, render};
use api::{Api, ApiError};
use checks::{CheckOutput, Conclusion, Published};
use comment::{Links, Parts, UpToDate};
use event::{Event, Target};

/// GitHub caps a step summary at 1 MiB.
const SUMMARY_LIMIT: usize = 1024 * 1024;

/// When to post the sticky comment (`comment:` input of the Action).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CommentMode {
    True,
    False,
    OnFailure,
}

/// Which findings fail the run (`fail-on:` input).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FailOn {
    Error,
    Warning,
}

#[derive(Debug, Clone, clap::Args)]
pub struct PrArgs {
    /// Post the sticky PR comment: true, false, or on-failure.
    #[arg(long, value_enum, default_value_t = CommentMode::True)]
    pub comment: CommentMode,
    /// Fail on errors only, or on warnings too.
    #[arg(long, value_enum, default_value_t = FailOn::Error)]
    pub fail_on: FailOn,
}

/// The `GITHUB_*` variables a run reads.
struct Env {
    event_name: String,
    event_path: PathBuf,
    repository: String,
    api_url: String,
    server_url: String,
    token: String,
    step_summary: Option<PathBuf>,
    output: Option<PathBuf>,
    run_url: Option<String>,
}

impl Env {
    fn read() -> Result<Env, String> {
        let var = |name: &str| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| {
                    format!(
                        "{name} is not set: run `stategate github pr` inside a GitHub Actions job"
                    )
                })
        };
        let optional = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let server_url =
            std::env::var("GITHUB_SERVER_URL").unwrap_or_else(|_| "https://github.com".into());
        let repository = var("GITHUB_REPOSITORY")?;
        let run_url = std::env::var("GITHUB_RUN_ID")
            .ok()
            .map(|id| format!("{server_url}/{repository}/actions/runs/{id}"));
        Ok(Env {
            event_name: var("GITHUB_EVENT_NAME")?,
            event_path: PathBuf::from(var("GITHUB_EVENT_PATH")?),
            repository,
            api_url: std::env::var("GITHUB_API_URL")
                .unwrap_or_else(|_| "https://api.github.com".into()),
            server_url,
            token: var("GITHUB_TOKEN")
                .map_err(|e| format!("{e} (pass `github-token` to the Action)"))?,
            step_summary: optional("GITHUB_STEP_SUMMARY"),
            output: optional("GITHUB_OUTPUT"),
            run_url,
        })
    }
}

/// Run the front door from the checkout at `cwd`; returns the exit code (0, 1, 2).
pub fn run_pr(cwd: &Path, args: &PrArgs, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let env = match Env::read() {
        Ok(env) => env,
        Err(e) => return fail(err, &e),
    };
    let event = match Event::read(&env.event_name, &env.event_path) {
        Ok(event) => event,
        Err(e) => return fail(err, &e),
    };
    let target = match event::resolve(cwd, &event) {
        Ok(target) => target,
        Err(e) => return fail(err, &e),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(err, &format!("cannot start the async runtime: {e}")),
    };
    let api = match runtime.block_on(async { Api::new(&env.api_url, &env.token) }) {
        Ok(api) => api,
        Err(e) => return fail(err, &e.to_string()),
    };
    let repo = env.repository.as_str();
    let mut early = Vec::new();
    let moved = match event.pr() {
        Some(pr) => runtime.block_on(head_moved(&api, repo, pr, &mut early, err)),
        None => false,
    };
    let which = match &event {
        Event::PullRequest(pr) => evidence::Which::Known {
            number: pr.number,
            author: pr.author.clone(),
            head_sha: pr.head_sha.clone(),
        },
        Event::MergeGroup { head_ref, .. } => evidence::Which::of_merge_group(head_ref),
    };
    let pr_evidence = evidence::GithubPr::new(&runtime, &api, repo, which);
    // A run whose head moved writes nothing and asks nothing more; its exit code is the verdict
    // of the documents it judged.
    let evidence = match moved {
        true => Evidence::None,
        false => Evidence::Reviews(&pr_evidence),
    };
    // The engine runs outside the runtime: it blocks on it for the evidence it asks for.
    let judged = engine::judge(cwd, &target.base, &target.head, evidence);
    let (mut report, judged) = match judged {
        Ok(mut j) => (std::mem::take(&mut j.report), Some(j)),
        Err(report) => (report, None),
    };
    report.findings.extend(early);
    if moved {
        return verdict_code(&report, args.fail_on);
    }
    runtime.block_on(publish(
        cwd, &env, &api, args, &event, &target, report, judged, out, err,
    ))
}

fn fail(err: &mut dyn Write, message: &str) -> u8 {
    let _ = writeln!(err, "stategate: {message}");
    Verdict::Undecided.exit_code()
}

#[allow(clippy::too_many_arguments)]
async fn publish(
    cwd: &Path,
    env: &Env,
    api: &Api,
    args: &PrArgs,
    event: &Event,
    target: &Target,
    mut report: Report,
    mut judged: Option<engine::Judged>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    let repo = env.repository.as_str();
    let pr = event.pr();
    let approvals = judged
        .as_mut()
        .map(|j| std::mem::take(&mut j.approvals))
        .unwrap_or_default();
    let mut up_to_date = UpToDate::NotRequired;
    if let (Some(pr), Some(judged)) = (pr, &judged) {
        up_to_date = judge_up_to_date(api, repo, pr, judged, &mut report).await;
    }
    let verdict = effective_verdict(&report, args.fail_on);
    let links = Links {
        blob_base: format!("{}/{repo}/blob/{}/", env.server_url, target.report_sha),
    };
    let parts = Parts {
        verdict,
        findings: &report.findings,
        approvals: &approvals,
        up_to_date: &up_to_date,
        links: &links,
        notes: &report.notes,
    };
    let diff = |limit: usize| {
        judged
            .as_ref()
            .map(|j| j.diff_markdown(limit))
            .unwrap_or_default()
    };
    let body = comment::body(&parts, &diff);
    let index = judged.as_ref().map(|j| j.diff_index()).unwrap_or_default();
    let full = summary_text(&parts, &diff, &index);
    let check = CheckOutput {
        conclusion: conclusion(&report, verdict),
        title: title(&report, verdict),
        summary: comment::head_part(&parts, 40_000),
        findings: &report.findings,
        details_url: env.run_url.clone(),
    };
    let mut fallback = !report_check(api, repo, &target.report_sha, &check, err).await;
    let wants_comment = match args.comment {
        CommentMode::True => true,
        CommentMode::False => false,
        CommentMode::OnFailure => verdict != Verdict::Pass,
    };
    let mut comment_url = String::new();
    if let (Some(pr), true) = (pr, wants_comment) {
        match comment::upsert(api, repo, pr.number, &body).await {
            Ok(url) => comment_url = url,
            Err(e) => {
                let _ = writeln!(err, "stategate: could not write the PR comment: {e}");
                fallback = true;
            }
        }
    }
    if fallback {
        // Workflow commands reach the PR's files view without any write permission.
        let _ = render(&report, Format::Github, out, &RenderOptions::default());
    }
    write_summary(env, &full, err);
    write_outputs(env, &report, verdict, &comment_url, cwd, err);
    let _ = writeln!(
        err,
        "stategate: {} ({} requests to GitHub)",
        title(&report, verdict),
        api.requests.get()
    );
    verdict.exit_code()
}

/// A newer push started its own run, which reports: this one must not overwrite it.
async fn head_moved(
    api: &Api,
    repo: &str,
    pr: &event::Pr,
    findings: &mut Vec<Finding>,
    err: &mut dyn Write,
) -> bool {
    match api.get(&format!("/repos/{repo}/pulls/{}", pr.number)).await {
        Ok(current) => {
            let head = current
                .pointer("/head/sha")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if head == pr.head_sha {
                return false;
            }
            let _ = writeln!(
                err,
                "stategate: the PR head moved to {head} since this run started ({}); \
                 a newer run reports, so this one writes nothing",
                pr.head_sha
            );
            true
        }
        Err(e) => {
            findings.push(api_finding("read the pull request", &e));
            false
        }
    }
}

/// The check run, or a commit status; `false` when neither could carry the annotations.
async fn report_check(
    api: &Api,
    repo: &str,
    sha: &str,
    check: &CheckOutput<'_>,
    err: &mut dyn Write,
) -> bool {
    let why = match checks::publish(api, repo, sha, check).await {
        Ok(Published::CheckRun { .. }) => return true,
        Ok(Published::Status) => {
            "the token cannot write checks (checks: write); reported a commit status instead"
                .to_owned()
        }
        Err(e) if e.status() == Some(403) => format!(
            "the token cannot write checks or statuses ({e}); a fork PR's token is read-only, \
             so the findings follow as annotations and in the job summary"
        ),
        Err(e) => format!("could not report the check: {e}"),
    };
    let _ = writeln!(err, "stategate: {why}");
    false
}

async fn judge_up_to_date(
    api: &Api,
    repo: &str,
    pr: &event::Pr,
    judged: &engine::Judged,
    report: &mut Report,
) -> UpToDate {
    let required = &judged.config.drift.up_to_date;
    if !judged.environments.iter().any(|e| required.contains(e)) {
        return UpToDate::NotRequired;
    }
    let base = pr.base_ref.clone();
    match api
        .get(&format!("/repos/{repo}/compare/{base}...{}", pr.head_sha))
        .await
    {
        Ok(compare) => {
            let behind = compare
                .get("behind_by")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            if behind == 0 {
                UpToDate::Current { base }
            } else {
                report.findings.push(Finding::error(
                    Rule::DriftBehindBase,
                    format!(
                        "{behind} {} behind {base}; update the branch",
                        if behind == 1 { "commit" } else { "commits" }
                    ),
                ));
                UpToDate::Behind { by: behind, base }
            }
        }
        Err(e) => {
            report
                .findings
                .push(api_finding("compare the head with the base branch", &e));
            UpToDate::Unknown(e.to_string())
        }
    }
}

fn api_finding(what: &str, e: &ApiError) -> Finding {
    Finding::error(Rule::GateInternal, format!("cannot {what}: {e}"))
        .help("check the workflow's `permissions:` and the token passed as `github-token`")
}

fn effective_verdict(report: &Report, fail_on: FailOn) -> Verdict {
    let verdict = report.verdict();
    if verdict == Verdict::Pass
        && fail_on == FailOn::Warning
        && report
            .findings
            .iter()
            .any(|f| f.severity == Severity::Warning)
    {
        return Verdict::Fail;
    }
    verdict
}

fn verdict_code(report: &Report, fail_on: FailOn) -> u8 {
    effective_verdict(report, fail_on).exit_code()
}

/// `action_required` when the only blocking findings are approvals still to be given.
fn conclusion(report: &Report, verdict: Verdict) -> Conclusion {
    if verdict == Verdict::Pass {
        return Conclusion::Success;
    }
    let blocking: Vec<&Finding> = report
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .collect();
    let only_waiting = !blocking.is_empty()
        && blocking.iter().all(|f| {
            f.rule == Rule::ApprovalMissing && !f.metadata.contains_key("changes_requested")
        });
    if only_waiting {
        Conclusion::ActionRequired
    } else {
        Conclusion::Failure
    }
}

fn title(report: &Report, verdict: Verdict) -> String {
    let counts = report.counts();
    let what = match verdict {
        Verdict::Pass => "passes",
        Verdict::Fail => "blocked",
        Verdict::Undecided => "could not decide",
    };
    format!(
        "{what}: {} error(s), {} warning(s)",
        counts.errors, counts.warnings
    )
}

/// The whole report for the job summary, within GitHub's 1 MiB: every finding, and the whole diff
/// when it fits, else the diff as far as it fits followed by one line per object.
fn summary_text(parts: &Parts<'_>, diff: &dyn Fn(usize) -> String, index: &[String]) -> String {
    let mut text = comment::head_part(parts, usize::MAX);
    for note in parts.notes {
        text.push_str(&format!("- {}\n", comment::escape(note)));
    }
    text.push_str("\n#### Dry-run diff\n\n");
    let full = diff(usize::MAX);
    if text.len() + full.len() <= SUMMARY_LIMIT {
        text.push_str(&full);
        return text;
    }
    let mut listing = format!("\n#### Every object of the diff ({})\n\n", index.len());
    for line in index {
        listing.push_str(&format!("- {}\n", comment::escape(line)));
    }
    // The renderer counts characters; leave room for multi-byte ones.
    let room = SUMMARY_LIMIT.saturating_sub(text.len() + listing.len() + 1024) / 2;
    text.push_str(&diff(room));
    text.push_str(&listing);
    if text.len() > SUMMARY_LIMIT {
        let mut cut = SUMMARY_LIMIT - 100;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("\n\n…cut at GitHub's 1 MiB job-summary limit.\n");
    }
    text
}

fn write_summary(env: &Env, text: &str, err: &mut dyn Write) {
    let Some(path) = &env.step_summary else {
        return;
    };
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()));
    if let Err(e) = written {
        let _ = writeln!(
            err,
            "stategate: cannot write the job summary {}: {e}",
            path.display()
        );
    }
}

fn write_outputs(
    env: &Env,
    report: &Report,
    verdict: Verdict,
    comment_url: &str,
    cwd: &Path,
    err: &mut dyn Write,
) {
    let Some(path) = &env.output else { return };
    let report_path = std::env::var_os("RUNNER_TEMP")
        .map(PathBuf::from)
        .unwrap_or_else(|| cwd.to_path_buf())
        .join("stategate-report.json");
    let mut json = Vec::new();
    let _ = render(report, Format::Json, &mut json, &RenderOptions::default());
    if let Err(e) = std::fs::write(&report_path, &json) {
        let _ = writeln!(
            err,
            "stategate: cannot write {}: {e}",
            report_path.display()
        );
    }
    let counts = report.counts();
    let verdict = match verdict {
        Verdict::Pass => "pass",
        Verdict::Fail => "fail",
        Verdict::Undecided => "undecided",
    };
    let lines = format!(
        "verdict={verdict}\nerrors={}\nwarnings={}\ncomment-url={comment_url}\nreport={}\n",
        counts.errors,
        counts.warnings,
        report_path.display()
    );
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(lines.as_bytes()));
    if let Err(e) = written {
        let _ = writeln!(
            err,
            "stategate: cannot write the step outputs {}: {e}",
            path.display()
        );
    }
}
