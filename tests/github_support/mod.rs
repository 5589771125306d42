//! A local GitHub stand-in: an HTTP server on 127.0.0.1 that answers the REST calls
//! `stategate github pr` makes the way GitHub does, validates every request against GitHub's
//! published OpenAPI description (plus the limits the schema leaves out), and records them so a
//! scenario can assert the exact requests sent.
#![allow(dead_code)]

pub mod spec;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

pub const OWNER: &str = "Codertocat";
pub const REPO: &str = "Hello-World";
pub const BOT: &str = "github-actions[bot]";

/// One request as the stand-in saw it (path without the GHES prefix).
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub body: Option<Value>,
}

impl Recorded {
    /// `POST /repos/o/r/check-runs`, `GET /repos/o/r/issues/2/comments?per_page=100&page=1`.
    pub fn line(&self) -> String {
        match &self.query {
            Some(q) => format!("{} {}?{}", self.method, self.path, q),
            None => format!("{} {}", self.method, self.path),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Comment {
    pub id: u64,
    pub body: String,
    pub user: String,
    pub bot: bool,
    pub minimized: bool,
}

/// What the stand-in knows about the repository, and the faults it injects.
#[derive(Debug, Default)]
pub struct State {
    pub requests: Vec<Recorded>,
    /// Requests GitHub would not accept: each one fails the test.
    pub violations: Vec<String>,
    pub comments: Vec<Comment>,
    pub next_id: u64,
    /// `head.sha` / `base.sha` that `GET /pulls/{n}` answers.
    pub pr_head: String,
    pub pr_base: String,
    pub pr_author: String,
    /// `GET /pulls/{n}/reviews`.
    pub reviews: Vec<Value>,
    /// `org/team/user` → HTTP status of the membership read (200 = active member).
    pub memberships: HashMap<String, u16>,
    /// Check-run and status writes answer 403 (a token without `checks: write`).
    pub forbid_checks: bool,
    /// Every write answers 403 (a fork PR's read-only token).
    pub read_only: bool,
    /// `METHOD /path` → how many more times to answer 502.
    pub fail_times: HashMap<String, u32>,
    /// `METHOD /path` → how many more times to answer a secondary rate limit (403 + Retry-After).
    pub rate_limit_times: HashMap<String, u32>,
    /// `GET /compare/{base}...{head}`'s `behind_by`.
    pub behind_by: u32,
    /// Bodies of check runs by id, with every annotation sent to it.
    pub check_runs: Vec<(u64, Value, Vec<Value>)>,
    pub statuses: Vec<Value>,
}

pub struct StandIn {
    pub url: String,
    pub prefix: String,
    pub state: Arc<Mutex<State>>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl StandIn {
    /// A stand-in at `http://127.0.0.1:PORT{prefix}` (`""` for api.github.com, `/api/v3` for GHES).
    pub fn start(corpus: &Path, prefix: &str) -> StandIn {
        let spec = spec::spec(corpus);
        let state = Arc::new(Mutex::new(State {
            next_id: 1000,
            pr_author: OWNER.to_owned(),
            ..State::default()
        }));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let shared = Arc::clone(&state);
        let prefix_owned = prefix.to_owned();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let app = axum::Router::new().fallback(
                    move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                        let state = Arc::clone(&shared);
                        let prefix = prefix_owned.clone();
                        async move { handle(spec, &state, &prefix, method, uri, headers, body) }
                    },
                );
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await
                    .unwrap();
            });
        });
        StandIn {
            url: format!("http://{addr}{prefix}"),
            prefix: prefix.to_owned(),
            state,
            _shutdown: tx,
        }
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.state.lock().unwrap())
    }

    /// The request lines seen since the last call, then forgets them. Fails the test on any
    /// request GitHub would not accept.
    pub fn take_requests(&self) -> Vec<String> {
        self.with(|s| {
            assert!(
                s.violations.is_empty(),
                "requests GitHub would reject:\n{}",
                s.violations.join("\n")
            );
            s.requests.drain(..).map(|r| r.line()).collect()
        })
    }

    pub fn take_recorded(&self) -> Vec<Recorded> {
        self.with(|s| {
            assert!(
                s.violations.is_empty(),
                "requests GitHub would reject:\n{}",
                s.violations.join("\n")
            );
            s.requests.drain(..).collect()
        })
    }

    /// A stategate comment left by an earlier run (or a human's comment with `bot: false`).
    pub fn add_comment(&self, body: &str, bot: bool) -> u64 {
        self.with(|s| {
            s.next_id += 1;
            let id = s.next_id;
            s.comments.push(Comment {
                id,
                body: body.to_owned(),
                user: if bot {
                    BOT.to_owned()
                } else {
                    OWNER.to_owned()
                },
                bot,
                minimized: false,
            });
            id
        })
    }

    /// A review as GitHub lists it.
    pub fn add_review(&self, user: &str, state: &str, commit: &str) {
        self.with(|s| {
            s.next_id += 1;
            let id = s.next_id;
            s.reviews.push(json!({
                "id": id, "node_id": format!("PRR_{id}"),
                "user": {"login": user, "id": id, "type": "User"},
                "body": "", "state": state, "commit_id": commit,
                "html_url": "", "pull_request_url": "", "author_association": "MEMBER",
                "_links": {}, "submitted_at": "2026-01-01T00:00:00Z"
            }));
        })
    }
}

fn handle(
    spec: &spec::Spec,
    state: &Mutex<State>,
    prefix: &str,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut s = state.lock().unwrap();
    let full = uri.path().to_owned();
    let body_json: Option<Value> = if body.is_empty() {
        None
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => Some(v),
            Err(e) => {
                s.violations
                    .push(format!("{method} {full}: body is not JSON: {e}"));
                return error(StatusCode::BAD_REQUEST, "Problems parsing JSON");
            }
        }
    };
    let graphql = if prefix.is_empty() {
        "/graphql".to_owned()
    } else {
        // GHES serves GraphQL at /api/graphql next to /api/v3.
        format!("{}/graphql", prefix.trim_end_matches("/v3"))
    };
    let path = if full == graphql {
        "/graphql".to_owned()
    } else if let Some(rest) = full.strip_prefix(prefix).filter(|r| r.starts_with('/')) {
        rest.to_owned()
    } else {
        s.violations
            .push(format!("{method} {full}: outside the API base `{prefix}`"));
        return error(StatusCode::NOT_FOUND, "Not Found");
    };
    s.requests.push(Recorded {
        method: method.to_string(),
        path: path.clone(),
        query: uri.query().map(str::to_owned),
        body: body_json.clone(),
    });
    if !headers.contains_key("authorization") {
        s.violations
            .push(format!("{method} {path}: no Authorization header"));
    }
    let checked = if path == "/graphql" {
        check_graphql(body_json.as_ref())
    } else {
        spec.validate(method.as_str(), &path, body_json.as_ref())
            .and_then(|()| check_limits(method.as_str(), &path, body_json.as_ref()))
    };
    if let Err(why) = checked {
        s.violations.push(why.clone());
        return error(StatusCode::UNPROCESSABLE_ENTITY, &why);
    }
    let key = format!("{method} {path}");
    if let Some(left) = s.fail_times.get_mut(&key).filter(|n| **n > 0) {
        *left -= 1;
        let mut response = error(StatusCode::BAD_GATEWAY, "Bad Gateway");
        response
            .headers_mut()
            .insert("retry-after", "0".parse().unwrap());
        return response;
    }
    if let Some(left) = s.rate_limit_times.get_mut(&key).filter(|n| **n > 0) {
        *left -= 1;
        let mut response = error(
            StatusCode::FORBIDDEN,
            "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
        );
        response
            .headers_mut()
            .insert("retry-after", "0".parse().unwrap());
        return response;
    }
    if s.read_only && method != Method::GET {
        return error(
            StatusCode::FORBIDDEN,
            "Resource not accessible by integration",
        );
    }
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let page = page_of(uri.query());
    route(&mut s, &method, &segments, body_json, page)
}

fn route(
    s: &mut State,
    method: &Method,
    seg: &[&str],
    body: Option<Value>,
    page: (usize, usize),
) -> Response {
    match (method.as_str(), seg) {
        ("GET", ["repos", _, _, "pulls", n]) => (
            StatusCode::OK,
            axum::Json(json!({
                "number": n.parse::<u64>().unwrap_or(0),
                "state": "open",
                "user": {"login": s.pr_author, "type": "User"},
                "head": {"sha": s.pr_head, "ref": "changes"},
                "base": {"sha": s.pr_base, "ref": "main"},
            })),
        )
            .into_response(),
        ("GET", ["repos", _, _, "pulls", _, "reviews"]) => paged(&s.reviews, page),
        ("GET", ["repos", _, _, "issues", _, "comments"]) => {
            let all: Vec<Value> = s.comments.iter().map(comment_json).collect();
            paged(&all, page)
        }
        ("POST", ["repos", _, _, "issues", _, "comments"]) => {
            s.next_id += 1;
            let comment = Comment {
                id: s.next_id,
                body: body_str(&body, "body"),
                user: BOT.to_owned(),
                bot: true,
                minimized: false,
            };
            let out = comment_json(&comment);
            s.comments.push(comment);
            (StatusCode::CREATED, axum::Json(out)).into_response()
        }
        ("PATCH", ["repos", _, _, "issues", "comments", id]) => {
            let id: u64 = id.parse().unwrap_or(0);
            let Some(c) = s.comments.iter_mut().find(|c| c.id == id) else {
                return error(StatusCode::NOT_FOUND, "Not Found");
            };
            c.body = body_str(&body, "body");
            let out = comment_json(c);
            (StatusCode::OK, axum::Json(out)).into_response()
        }
        ("POST", ["graphql"]) => {
            let node = body
                .as_ref()
                .and_then(|b| b.pointer("/variables/id"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            for c in &mut s.comments {
                if format!("IC_{}", c.id) == node {
                    c.minimized = true;
                }
            }
            axum::Json(
                json!({"data": {"minimizeComment": {"minimizedComment": {"isMinimized": true}}}}),
            )
            .into_response()
        }
        ("POST", ["repos", _, _, "check-runs"]) => {
            if s.forbid_checks {
                return error(
                    StatusCode::FORBIDDEN,
                    "Resource not accessible by integration",
                );
            }
            s.next_id += 1;
            let id = s.next_id;
            let body = body.unwrap_or_default();
            let annotations = annotations_of(&body);
            s.check_runs.push((id, body, annotations));
            (
                StatusCode::CREATED,
                axum::Json(
                    json!({"id": id, "html_url": format!("https://github.com/checks/{id}")}),
                ),
            )
                .into_response()
        }
        ("PATCH", ["repos", _, _, "check-runs", id]) => {
            let id: u64 = id.parse().unwrap_or(0);
            let body = body.unwrap_or_default();
            let Some(run) = s.check_runs.iter_mut().find(|r| r.0 == id) else {
                return error(StatusCode::NOT_FOUND, "Not Found");
            };
            run.2.extend(annotations_of(&body));
            axum::Json(json!({"id": id})).into_response()
        }
        ("POST", ["repos", _, _, "statuses", _]) => {
            s.statuses.push(body.unwrap_or_default());
            (StatusCode::CREATED, axum::Json(json!({"id": 1}))).into_response()
        }
        ("GET", ["orgs", org, "teams", team, "memberships", user]) => {
            let status = s
                .memberships
                .get(&format!("{org}/{team}/{user}"))
                .copied()
                .unwrap_or(404);
            match status {
                200 => axum::Json(json!({"state": "active", "role": "member", "url": ""}))
                    .into_response(),
                403 => error(
                    StatusCode::FORBIDDEN,
                    "Resource not accessible by integration",
                ),
                _ => error(StatusCode::NOT_FOUND, "Not Found"),
            }
        }
        ("GET", ["repos", _, _, "compare", _]) => axum::Json(json!({
            "status": if s.behind_by > 0 { "diverged" } else { "ahead" },
            "ahead_by": 1,
            "behind_by": s.behind_by,
            "total_commits": 1,
        }))
        .into_response(),
        _ => error(StatusCode::NOT_FOUND, "Not Found (stand-in has no answer)"),
    }
}

fn comment_json(c: &Comment) -> Value {
    json!({
        "id": c.id,
        "node_id": format!("IC_{}", c.id),
        "body": c.body,
        "html_url": format!("https://github.com/{OWNER}/{REPO}/pull/2#issuecomment-{}", c.id),
        "user": {"login": c.user, "type": if c.bot { "Bot" } else { "User" }},
    })
}

fn annotations_of(body: &Value) -> Vec<Value> {
    body.pointer("/output/annotations")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn body_str(body: &Option<Value>, key: &str) -> String {
    body.as_ref()
        .and_then(|b| b.get(key))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// `(page, per_page)` from the query, GitHub's defaults 1 and 30.
fn page_of(query: Option<&str>) -> (usize, usize) {
    let mut page = 1;
    let mut per_page = 30;
    for pair in query.unwrap_or_default().split('&') {
        match pair.split_once('=') {
            Some(("page", v)) => page = v.parse().unwrap_or(1),
            Some(("per_page", v)) => per_page = v.parse().unwrap_or(30),
            _ => {}
        }
    }
    (page.max(1), per_page.clamp(1, 100))
}

fn paged(items: &[Value], (page, per_page): (usize, usize)) -> Response {
    let start = (page - 1) * per_page;
    let slice: Vec<Value> = items.iter().skip(start).take(per_page).cloned().collect();
    axum::Json(Value::from(slice)).into_response()
}

fn error(status: StatusCode, message: &str) -> Response {
    (
        status,
        axum::Json(
            json!({"message": message, "documentation_url": "https://docs.github.com/rest"}),
        ),
    )
        .into_response()
}

/// The limits GitHub enforces that the description does not state.
pub fn check_limits(method: &str, path: &str, body: Option<&Value>) -> Result<(), String> {
    let Some(body) = body else { return Ok(()) };
    let fail = |what: String| Err(format!("{method} {path}: {what}"));
    if path.contains("/comments")
        && let Some(text) = body.get("body").and_then(Value::as_str)
    {
        let n = text.chars().count();
        if n > 65_536 {
            return fail(format!("comment body has {n} characters (max 65536)"));
        }
    }
    if path.contains("/check-runs") {
        let annotations = annotations_of(body);
        if annotations.len() > 50 {
            return fail(format!(
                "{} annotations in one request (max 50)",
                annotations.len()
            ));
        }
        for a in &annotations {
            let title = a.get("title").and_then(Value::as_str).unwrap_or_default();
            if title.chars().count() > 255 {
                return fail("annotation title over 255 characters".into());
            }
        }
    }
    if path.contains("/statuses/") {
        let description = body
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if description.chars().count() > 140 {
            return fail("status description over 140 characters".into());
        }
        let context = body
            .get("context")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if context.chars().count() > 255 {
            return fail("status context over 255 characters".into());
        }
    }
    Ok(())
}

/// The one GraphQL mutation the gate sends: hiding an outdated duplicate comment.
fn check_graphql(body: Option<&Value>) -> Result<(), String> {
    let query = body
        .and_then(|b| b.get("query"))
        .and_then(Value::as_str)
        .ok_or("POST /graphql: no `query` string")?;
    let id = body
        .and_then(|b| b.pointer("/variables/id"))
        .and_then(Value::as_str);
    if !query.contains("minimizeComment") || !query.contains("OUTDATED") || id.is_none() {
        return Err(format!(
            "POST /graphql: expected minimizeComment(OUTDATED) with $id, got {query}"
        ));
    }
    Ok(())
}
