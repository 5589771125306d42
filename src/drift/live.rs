//! Live-state sources: a committed `kubectl get -o yaml` snapshot, a command printing one, or an
//! Argo CD API server. Each yields the live objects of one environment, or says why it could not.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::config::{LiveDrift, LiveSource};
use crate::finding::Rule;
use crate::load::{LoadOptions, load_file};
use crate::tree::Tree;

/// The annotation a scheduled job may put on a snapshot (the `List` or any object) to date it.
pub const GENERATED_AT: &str = "stategate.dev/generated-at";

/// What a source read.
#[derive(Debug, Clone, Default)]
pub struct LiveState {
    pub objects: Vec<Value>,
    /// For messages: "snapshot live/prod/", "command kubectl get …", "Argo CD https://… (shop)".
    pub description: String,
    /// Seconds since the snapshot was taken, when known.
    pub age: Option<u64>,
    /// Things worth saying about the source (Argo CD sync status, how the age was found).
    pub notes: Vec<String>,
}

/// Where a source reads from and how it knows what is relevant.
pub struct SourceContext<'a> {
    pub env: &'a str,
    /// The tree snapshots are read from: the trusted base (a change cannot forge live state).
    pub tree: &'a dyn Tree,
    /// Commit time (seconds since the epoch) of the last change to a path of `tree`.
    pub file_time: &'a dyn Fn(&str) -> Option<i64>,
    /// Whether a repository path is relevant (touched by the change, or in the environment).
    pub relevant: &'a dyn Fn(&str) -> bool,
    pub now: i64,
    /// `limits` of the config: a snapshot is read like any other file.
    pub load: LoadOptions,
}

/// Read the live state of one environment.
pub fn read_live(live: &LiveDrift, ctx: &SourceContext<'_>) -> Result<LiveState, String> {
    match live.source {
        LiveSource::Snapshot => snapshot(live, ctx),
        LiveSource::Command => command(live, ctx),
        LiveSource::Argocd => argocd(live, ctx),
    }
}

fn snapshot(live: &LiveDrift, ctx: &SourceContext<'_>) -> Result<LiveState, String> {
    let template = live.path.as_deref().unwrap_or_default();
    let path = template.replace("{env}", ctx.env);
    let prefix = path.trim_end_matches('/');
    let files: Vec<String> = match ctx.tree.read(prefix) {
        Some(_) => vec![prefix.to_owned()],
        None => ctx
            .tree
            .files_under(prefix)
            .into_iter()
            .filter(|p| [".yaml", ".yml", ".json"].iter().any(|e| p.ends_with(e)))
            .collect(),
    };
    if files.is_empty() {
        return Err(format!(
            "no snapshot at `{path}` in {} (drift.live.path: `{template}`)",
            ctx.tree.describe()
        ));
    }
    let mut state = LiveState {
        description: format!("snapshot {path} in {}", ctx.tree.describe()),
        ..LiveState::default()
    };
    use rayon::prelude::*;
    let (tree, load) = (ctx.tree, &ctx.load);
    let parsed: Vec<Vec<Value>> = files
        .par_iter()
        .map(|file| parse_documents(file, &tree.read(file).unwrap_or_default(), load))
        .collect::<Result<_, _>>()?;
    let mut generated: Option<i64> = None;
    for docs in parsed {
        generated = generated.into_iter().chain(generated_at(&docs)).min();
        state.objects.extend(expand_lists(docs));
    }
    let (time, how) = match generated {
        Some(t) => (Some(t), GENERATED_AT.to_owned()),
        None => (
            files.iter().filter_map(|f| (ctx.file_time)(f)).min(),
            "the snapshot's commit time".to_owned(),
        ),
    };
    if let Some(t) = time {
        let age = (ctx.now - t).max(0) as u64;
        state.age = Some(age);
        state.notes.push(format!(
            "snapshot taken {} ago (from {how})",
            human_age(age)
        ));
    }
    Ok(state)
}

fn command(live: &LiveDrift, ctx: &SourceContext<'_>) -> Result<LiveState, String> {
    let argv: Vec<String> = live
        .command
        .iter()
        .flatten()
        .map(|a| a.replace("{env}", ctx.env))
        .collect();
    let shown = argv.join(" ");
    let timeout = Duration::from_millis(live.timeout_ms);
    let stdout = run(&argv, timeout, None).map_err(|e| format!("`{shown}` {e}"))?;
    let docs = parse_documents("(command output)", &stdout, &ctx.load)
        .map_err(|e| format!("`{shown}`: {e}"))?;
    Ok(LiveState {
        objects: expand_lists(docs),
        description: format!("command {shown}"),
        age: Some(0),
        notes: Vec::new(),
    })
}

/// Run argv without a shell; its stdout, or why it failed. `input` goes to its stdin.
pub fn run(argv: &[String], timeout: Duration, input: Option<&[u8]>) -> Result<Vec<u8>, String> {
    let (program, args) = argv.split_first().ok_or("is empty")?;
    let mut child = Command::new(program)
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("could not start: {e}"))?;
    if let (Some(mut stdin), Some(input)) = (child.stdin.take(), input) {
        let _ = stdin.write_all(input);
    }
    let mut stdout = child.stdout.take().ok_or("has no stdout")?;
    let mut stderr = child.stderr.take().ok_or("has no stderr")?;
    let out = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "did not finish within {} ms (drift.live.timeout_ms)",
                    timeout.as_millis()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(format!("could not be waited for: {e}")),
        }
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    if !status.success() {
        let text = String::from_utf8_lossy(&stderr);
        let text: String = text.trim().chars().take(400).collect();
        return Err(format!("failed ({status}): {text}"));
    }
    Ok(stdout)
}

fn argocd(live: &LiveDrift, ctx: &SourceContext<'_>) -> Result<LiveState, String> {
    let server = live
        .server
        .as_deref()
        .unwrap_or_default()
        .trim_end_matches('/');
    let var = live.token_env.as_deref().unwrap_or_default();
    let token = std::env::var(var)
        .ok()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            format!("the environment variable {var} (drift.live.token_env) is not set")
        })?;
    let client = ArgoClient {
        server,
        token: &token,
        timeout: Duration::from_millis(live.timeout_ms),
    };
    let names = if live.applications.is_empty() {
        client.applications_for(ctx.relevant)?
    } else {
        live.applications.clone()
    };
    let mut state = LiveState {
        description: format!("Argo CD {server} ({})", names.join(", ")),
        age: Some(0),
        ..LiveState::default()
    };
    for name in &names {
        let app = client.get(&format!("/api/v1/applications/{name}"))?;
        let sync = app
            .pointer("/status/sync/status")
            .and_then(Value::as_str)
            .unwrap_or("Unknown");
        state
            .notes
            .push(format!("Argo CD application {name}: sync status {sync}"));
        let resources = client.get(&format!("/api/v1/applications/{name}/managed-resources"))?;
        for item in resources
            .get("items")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(text) = item.get("liveState").and_then(Value::as_str) else {
                continue;
            };
            match serde_json::from_str::<Value>(text) {
                Ok(Value::Null) => {}
                Ok(object) => state.objects.push(object),
                Err(e) => {
                    return Err(format!(
                        "Argo CD returned a liveState that is not JSON for {name}: {e}"
                    ));
                }
            }
        }
    }
    Ok(state)
}

/// Argo CD's REST API through the real `curl` (TLS, proxies and CA bundles as the host has them);
/// the token goes to curl on stdin, never on its command line.
struct ArgoClient<'a> {
    server: &'a str,
    token: &'a str,
    timeout: Duration,
}

impl ArgoClient<'_> {
    fn get(&self, path: &str) -> Result<Value, String> {
        let url = format!("{}{path}", self.server);
        let secs = self.timeout.as_secs_f64().max(0.001);
        let argv: Vec<String> = [
            "curl",
            "-sS",
            "--max-time",
            &format!("{secs:.3}"),
            "-H",
            "@-",
            "-w",
            "\n%{http_code}",
            &url,
        ]
        .map(str::to_owned)
        .into();
        let headers = format!(
            "Authorization: Bearer {}\nAccept: application/json\n",
            self.token
        );
        let out = run(
            &argv,
            self.timeout + Duration::from_secs(1),
            Some(headers.as_bytes()),
        )
        .map_err(|e| format!("GET {url}: curl {e}"))?;
        let text = String::from_utf8_lossy(&out);
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
        if code.trim() != "200" {
            let body: String = body.chars().take(300).collect();
            return Err(format!("GET {url}: HTTP {} {body}", code.trim()));
        }
        serde_json::from_str(body).map_err(|e| format!("GET {url}: not JSON: {e}"))
    }

    /// The Applications whose source paths hold a relevant path.
    fn applications_for(&self, relevant: &dyn Fn(&str) -> bool) -> Result<Vec<String>, String> {
        let list = self.get("/api/v1/applications")?;
        let mut names = Vec::new();
        for app in list
            .get("items")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(name) = app.pointer("/metadata/name").and_then(Value::as_str) else {
                continue;
            };
            let spec = app.get("spec").unwrap_or(&Value::Null);
            let paths = spec
                .pointer("/source/path")
                .into_iter()
                .chain(
                    spec.get("sources")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(|s| s.get("path")),
                )
                .filter_map(Value::as_str);
            if paths.into_iter().any(|p| relevant(p.trim_end_matches('/'))) {
                names.push(name.to_owned());
            }
        }
        Ok(names)
    }
}

/// Every document of a stream, as kubectl prints them; a file that does not parse is an error.
/// Live state is read as kubectl reads it: what kustomize would read differently
/// (`load/ambiguous`, e.g. an unquoted timestamp from a tool other than kubectl) is not applied
/// by anyone here, so it does not stop the reading.
fn parse_documents(path: &str, bytes: &[u8], load: &LoadOptions) -> Result<Vec<Value>, String> {
    let loaded = load_file(path, bytes, load);
    if let Some(f) = loaded
        .findings
        .iter()
        .find(|f| f.rule.is_undecidable() && f.rule != Rule::LoadAmbiguous)
    {
        return Err(format!("{path} cannot be read: {}", f.message));
    }
    Ok(loaded
        .documents
        .into_iter()
        .map(|d| d.value)
        .filter(|v| !v.is_null())
        .collect())
}

/// `kind: List` (and `DeploymentList`, …) as their items.
fn expand_lists(docs: Vec<Value>) -> Vec<Value> {
    let mut out = Vec::new();
    for doc in docs {
        let is_list = doc
            .get("kind")
            .and_then(Value::as_str)
            .is_some_and(|k| k.ends_with("List"));
        match doc.get("items") {
            Some(Value::Array(items)) if is_list => out.extend(items.iter().cloned()),
            _ => out.push(doc),
        }
    }
    out
}

fn generated_at(docs: &[Value]) -> Option<i64> {
    docs.iter()
        .flat_map(|d| {
            std::iter::once(d).chain(
                d.get("items")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten(),
            )
        })
        .filter_map(|d| {
            d.pointer("/metadata/annotations")?
                .get(GENERATED_AT)?
                .as_str()
        })
        .filter_map(parse_rfc3339)
        .min()
}

/// `2026-11-30T21:00:00Z` or with an offset, as seconds since the epoch.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let text = text.trim();
    let (date, rest) = text.split_once(['T', 't', ' '])?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let zone_at = rest.find(['Z', 'z', '+', '-']).unwrap_or(rest.len());
    let (clock, zone) = rest.split_at(zone_at);
    let clock = clock.split('.').next()?;
    let mut c = clock.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (h, min, s) = (c.next()??, c.next()??, c.next()??);
    let offset = match zone {
        "" | "Z" | "z" => 0,
        z => {
            let sign = if z.starts_with('-') { -1 } else { 1 };
            let (oh, om) = z[1..].split_once(':')?;
            sign * (oh.parse::<i64>().ok()? * 3600 + om.parse::<i64>().ok()? * 60)
        }
    };
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + min * 60 + s - offset)
}

/// When `path` last changed on the first-parent history of `start` (seconds since the epoch): a
/// snapshot's age when it carries no `generated-at`. Looks back at most 1,000 commits.
pub fn git_file_time(repo: &git2::Repository, start: git2::Oid, path: &str) -> Option<i64> {
    let path = std::path::Path::new(path);
    let entry = |c: &git2::Commit<'_>| c.tree().ok()?.get_path(path).ok().map(|e| e.id());
    let mut commit = repo.find_commit(start).ok()?;
    let mut current = entry(&commit);
    current?;
    for _ in 0..1000 {
        let Ok(parent) = commit.parent(0) else {
            break;
        };
        let before = entry(&parent);
        if before != current {
            break;
        }
        current = before;
        commit = parent;
    }
    Some(commit.time().seconds())
}

pub fn human_age(seconds: u64) -> String {
    match seconds {
        s if s < 120 => format!("{s} s"),
        s if s < 2 * 3600 => format!("{} min", s / 60),
        s if s < 2 * 86_400 => format!("{} h", s / 3600),
        s => format!("{} days", s / 86_400),
    }
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_times_parse_with_offsets() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2023-11-14T22:13:20Z"), Some(1_700_000_000));
        assert_eq!(
            parse_rfc3339("2023-11-14T23:13:20.5+01:00"),
            Some(1_700_000_000)
        );
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn a_snapshot_with_an_unquoted_timestamp_is_read_as_kubectl_reads_it() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  creationTimestamp: 2026-11-01T10:00:00Z\n";
        let docs =
            parse_documents("live/a.yaml", text.as_bytes(), &LoadOptions::default()).expect("read");
        assert_eq!(
            docs[0]["metadata"]["creationTimestamp"],
            "2026-11-01T10:00:00Z"
        );
        assert!(parse_documents("live/b.yaml", b"a: [", &LoadOptions::default()).is_err());
    }

    #[test]
    fn lists_are_expanded() {
        let docs =
            vec![serde_json::json!({"kind": "List", "items": [{"kind": "A"}, {"kind": "B"}]})];
        assert_eq!(expand_lists(docs).len(), 2);
    }
}
