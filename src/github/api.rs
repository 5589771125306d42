//! The REST calls, over octocrab's raw requests so that every response's status and headers are
//! seen: 5xx answers and secondary rate limits are retried with backoff, honouring `Retry-After`,
//! within a bounded total time; lists are paged 100 at a time until a short page.

use std::time::Duration;

use octocrab::Octocrab;
use serde_json::Value;

/// Longest a run spends waiting to retry, summed over all requests.
const RETRY_BUDGET: Duration = Duration::from_secs(120);
/// Largest single wait; a `Retry-After` beyond the budget ends the retries instead.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
const PER_PAGE: usize = 100;
/// Tries of one request, whatever the waits: a `Retry-After: 0` loop must end too.
const MAX_ATTEMPTS: u32 = 6;

#[derive(Debug)]
pub enum ApiError {
    /// GitHub answered with an error status.
    Status { status: u16, message: String },
    /// No answer at all (connection, TLS, bad URL).
    Transport(String),
}

impl ApiError {
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Status { status, .. } => Some(*status),
            ApiError::Transport(_) => None,
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::Status { status, message } => write!(f, "HTTP {status}: {message}"),
            ApiError::Transport(e) => write!(f, "no answer from GitHub: {e}"),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Verb {
    Get,
    Post,
    Patch,
}

pub struct Api {
    rest: Octocrab,
    graphql: Octocrab,
    waited: std::cell::Cell<Duration>,
    pub requests: std::cell::Cell<usize>,
}

impl Api {
    /// `api_url` is `GITHUB_API_URL`: `https://api.github.com`, or `https://HOST/api/v3` on GitHub
    /// Enterprise Server, whose GraphQL endpoint is `https://HOST/api/graphql`.
    pub fn new(api_url: &str, token: &str) -> Result<Api, ApiError> {
        let api_url = api_url.trim_end_matches('/');
        let graphql_base = api_url.strip_suffix("/v3").unwrap_or(api_url);
        let client = |base: &str| {
            Octocrab::builder()
                .base_uri(base)
                .map_err(|e| ApiError::Transport(format!("invalid GITHUB_API_URL `{base}`: {e}")))?
                .personal_token(token.to_owned())
                .build()
                .map_err(|e| ApiError::Transport(e.to_string()))
        };
        Ok(Api {
            rest: client(api_url)?,
            graphql: client(graphql_base)?,
            waited: std::cell::Cell::new(Duration::ZERO),
            requests: std::cell::Cell::new(0),
        })
    }

    pub async fn get(&self, path: &str) -> Result<Value, ApiError> {
        self.send(Verb::Get, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, ApiError> {
        self.send(Verb::Post, path, Some(body)).await
    }

    /// A real `PATCH` (octocrab's `update_comment` sends `POST`, which GitHub does not define
    /// at `/issues/comments/{id}`).
    pub async fn patch(&self, path: &str, body: &Value) -> Result<Value, ApiError> {
        self.send(Verb::Patch, path, Some(body)).await
    }

    pub async fn graphql(&self, query: &str, variables: Value) -> Result<Value, ApiError> {
        let body = serde_json::json!({"query": query, "variables": variables});
        let answer = self
            .send_on(&self.graphql, Verb::Post, "/graphql", Some(&body))
            .await?;
        match answer.get("errors") {
            Some(errors) => Err(ApiError::Status {
                status: 200,
                message: format!("GraphQL errors: {errors}"),
            }),
            None => Ok(answer),
        }
    }

    /// Every item of a list endpoint, 100 per page.
    pub async fn get_all(&self, path: &str) -> Result<Vec<Value>, ApiError> {
        let mut items = Vec::new();
        for page in 1.. {
            let sep = if path.contains('?') { '&' } else { '?' };
            let answer = self
                .get(&format!("{path}{sep}per_page={PER_PAGE}&page={page}"))
                .await?;
            let batch = answer.as_array().cloned().unwrap_or_default();
            let last = batch.len() < PER_PAGE;
            items.extend(batch);
            if last {
                break;
            }
        }
        Ok(items)
    }

    async fn send(&self, verb: Verb, path: &str, body: Option<&Value>) -> Result<Value, ApiError> {
        self.send_on(&self.rest, verb, path, body).await
    }

    async fn send_on(
        &self,
        client: &Octocrab,
        verb: Verb,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            self.requests.set(self.requests.get() + 1);
            let sent = match verb {
                Verb::Get => client._get(path).await,
                Verb::Post => client._post(path, body).await,
                Verb::Patch => client._patch(path, body).await,
            };
            let (status, wait, text) = match sent {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let wait = retry_wait(response.headers(), attempt);
                    let text = client
                        .body_to_string(response)
                        .await
                        .map_err(|e| ApiError::Transport(e.to_string()))?;
                    (status, wait, text)
                }
                Err(e) => (0, backoff(attempt), e.to_string()),
            };
            if (200..300).contains(&status) {
                return Ok(serde_json::from_str(&text).unwrap_or(Value::Null));
            }
            let message = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_owned))
                .unwrap_or(text);
            let error = if status == 0 {
                ApiError::Transport(message)
            } else {
                ApiError::Status { status, message }
            };
            if attempt >= MAX_ATTEMPTS
                || !retryable(status, &error, wait.explicit)
                || !self.may_wait(wait.duration)
            {
                return Err(error);
            }
            tokio::time::sleep(wait.duration).await;
        }
    }

    fn may_wait(&self, wait: Duration) -> bool {
        let total = self.waited.get() + wait;
        if wait > MAX_BACKOFF || total > RETRY_BUDGET {
            return false;
        }
        self.waited.set(total);
        true
    }
}

struct Wait {
    duration: Duration,
    /// GitHub said how long (`Retry-After`, or an exhausted limit's reset time).
    explicit: bool,
}

/// 5xx and transport errors are retried; a 403/429 only when GitHub says it is a rate limit.
fn retryable(status: u16, error: &ApiError, explicit_wait: bool) -> bool {
    match status {
        0 | 500..=599 => true,
        403 | 429 => explicit_wait || error.to_string().to_lowercase().contains("rate limit"),
        _ => false,
    }
}

fn retry_wait(headers: &http::HeaderMap, attempt: u32) -> Wait {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(secs) = header("retry-after").and_then(|v| v.trim().parse::<u64>().ok()) {
        return Wait {
            duration: Duration::from_secs(secs),
            explicit: true,
        };
    }
    if header("x-ratelimit-remaining") == Some("0")
        && let Some(reset) = header("x-ratelimit-reset").and_then(|v| v.parse::<u64>().ok())
    {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        return Wait {
            duration: Duration::from_secs(reset.saturating_sub(now) + 1),
            explicit: true,
        };
    }
    Wait {
        duration: backoff(attempt).duration,
        explicit: false,
    }
}

/// 1 s, 2 s, 4 s, … capped.
fn backoff(attempt: u32) -> Wait {
    Wait {
        duration: Duration::from_secs(1u64 << attempt.saturating_sub(1).min(5)).min(MAX_BACKOFF),
        explicit: false,
    }
}
