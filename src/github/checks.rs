//! The `stategate` check run on the head commit, with annotations at file:line (50 per request,
//! the rest appended with `PATCH`); a commit status when the token cannot write checks.

use serde_json::{Value, json};

use super::api::{Api, ApiError};
use super::comment::is_repo_path;
use crate::finding::{Finding, Severity};

pub const NAME: &str = "stategate";
const PER_REQUEST: usize = 50;
const SUMMARY_LIMIT: usize = 65_535;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conclusion {
    Success,
    Failure,
    /// Only approvals are missing: someone has to act, nothing is wrong with the change.
    ActionRequired,
}

impl Conclusion {
    fn as_str(self) -> &'static str {
        match self {
            Conclusion::Success => "success",
            Conclusion::Failure => "failure",
            Conclusion::ActionRequired => "action_required",
        }
    }

    fn status_state(self) -> &'static str {
        match self {
            Conclusion::Success => "success",
            _ => "failure",
        }
    }
}

pub struct CheckOutput<'a> {
    pub conclusion: Conclusion,
    pub title: String,
    pub summary: String,
    pub findings: &'a [Finding],
    pub details_url: Option<String>,
}

/// How the verdict reached GitHub.
#[derive(Debug, PartialEq, Eq)]
pub enum Published {
    CheckRun {
        id: u64,
        requests: usize,
    },
    /// The token cannot write checks: a commit status instead.
    Status,
}

/// Create the check run; on 403 fall back to a commit status. Any other error is returned.
pub async fn publish(
    api: &Api,
    repo: &str,
    head_sha: &str,
    out: &CheckOutput<'_>,
) -> Result<Published, ApiError> {
    match create_run(api, repo, head_sha, out).await {
        Err(e) if e.status() == Some(403) => {
            let description = truncate(&out.title, 140);
            let mut body = json!({
                "state": out.conclusion.status_state(),
                "context": NAME,
                "description": description,
            });
            if let Some(url) = &out.details_url {
                body["target_url"] = Value::from(url.clone());
            }
            api.post(&format!("/repos/{repo}/statuses/{head_sha}"), &body)
                .await?;
            Ok(Published::Status)
        }
        other => other,
    }
}

async fn create_run(
    api: &Api,
    repo: &str,
    head_sha: &str,
    out: &CheckOutput<'_>,
) -> Result<Published, ApiError> {
    let annotations = annotations(out.findings);
    let mut batches = annotations.chunks(PER_REQUEST);
    let output = |batch: &[Value]| {
        json!({
            "title": truncate(&out.title, 255),
            "summary": truncate(&out.summary, SUMMARY_LIMIT),
            "annotations": batch,
        })
    };
    let mut body = json!({
        "name": NAME,
        "head_sha": head_sha,
        "status": "completed",
        "conclusion": out.conclusion.as_str(),
        "output": output(batches.next().unwrap_or_default()),
    });
    if let Some(url) = &out.details_url {
        body["details_url"] = Value::from(url.clone());
    }
    let created = api
        .post(&format!("/repos/{repo}/check-runs"), &body)
        .await?;
    let id = created
        .get("id")
        .and_then(Value::as_u64)
        .unwrap_or_default();
    let mut requests = 1;
    for batch in batches {
        api.patch(
            &format!("/repos/{repo}/check-runs/{id}"),
            &json!({ "output": output(batch) }),
        )
        .await?;
        requests += 1;
    }
    Ok(Published::CheckRun { id, requests })
}

/// One annotation per finding that points into a repository file.
fn annotations(findings: &[Finding]) -> Vec<Value> {
    findings
        .iter()
        .filter_map(|f| {
            let loc = f.location.as_ref().filter(|l| is_repo_path(&l.file))?;
            let line = loc.line.unwrap_or(1);
            let level = match f.severity {
                Severity::Error => "failure",
                Severity::Warning => "warning",
                Severity::Note => "notice",
            };
            let mut message = f.message.clone();
            if let Some(help) = &f.help {
                message.push_str("\n\n");
                message.push_str(help);
            }
            Some(json!({
                "path": loc.file,
                "start_line": line,
                "end_line": line,
                "annotation_level": level,
                "title": truncate(&f.rule.to_string(), 255),
                "message": truncate(&message, 60_000),
            }))
        })
        .collect()
}

/// At most `max` characters, marked when cut.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}
