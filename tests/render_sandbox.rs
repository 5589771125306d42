//! The rendering sandbox, attacked through the real binary with the real `kubectl kustomize`:
//! kustomizations that reference a local HTTP server (which records every request) in every field
//! that takes a file, that climb out of the repository, a renderer that tries the network itself,
//! and a hook that times out while a renderer runs.

mod common;
mod hook_support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use common::git::TestRepo;
use hook_support::{Server, push};

/// An HTTP server on 127.0.0.1 that answers every request with `body` and records its request line.
struct Recorder {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
}

/// What the server answers: a valid object for resource-like fields, and a line for `.env` files,
/// each carrying a marker that must never reach the output.
const FETCHED_MARKER: &str = "fetched-from-the-network";

impl Recorder {
    fn start() -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = listener.local_addr().expect("address").port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&requests);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(&stream);
                let mut line = String::new();
                let _ = reader.read_line(&mut line);
                seen.lock().unwrap().push(line.trim().to_owned());
                let body = if line.contains(".env") {
                    format!("MARKER={FETCHED_MARKER}\n")
                } else {
                    format!(
                        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: fetched\ndata:\n  marker: {FETCHED_MARKER}\n"
                    )
                };
                let mut out = &stream;
                let _ = write!(
                    out,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Recorder { port, requests }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

fn stategate(repo: &TestRepo, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stategate"))
        .current_dir(repo.path())
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("GIT_DIR")
        .env_remove("GIT_INDEX_FILE")
        .output()
        .expect("run stategate")
}

/// Everything the run printed, with the markdown form's numeric character references (`&#91;`,
/// the escaping that keeps user text inert in a PR comment) read back as the characters they show.
fn text(output: &Output) -> String {
    let raw = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    decode_references(&raw)
}

fn decode_references(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("&#") {
        out.push_str(&rest[..start]);
        let tail = &rest[start + 2..];
        let decoded = tail.find(';').and_then(|end| {
            let code = tail[..end].parse::<u32>().ok()?;
            Some((char::from_u32(code)?, end))
        });
        match decoded {
            Some((c, end)) => {
                out.push(c);
                rest = &tail[end + 1..];
            }
            None => {
                out.push_str("&#");
                rest = tail;
            }
        }
    }
    out.push_str(rest);
    out
}

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: nginx:1.27
";

/// base/ and overlays/prod/ (listed under render.kustomize), committed as the base revision.
fn overlay_repo(extra_config: &str) -> (TestRepo, String) {
    let repo = TestRepo::new();
    repo.write(
        ".stategate.yaml",
        format!("version: 1\nrender:\n  kustomize: [\"overlays/*\"]\n{extra_config}"),
    );
    repo.write("base/kustomization.yaml", "resources: [deployment.yaml]\n");
    repo.write("base/deployment.yaml", DEPLOYMENT);
    repo.write(
        "overlays/prod/kustomization.yaml",
        "resources: [../../base]\nnamespace: prod\n",
    );
    let base = repo.commit_all("base");
    (repo, base)
}

/// Commit `kustomization` as the prod overlay (on top of `base`) and return the head.
fn with_overlay(repo: &TestRepo, base: &str, kustomization: &str) -> String {
    repo.git(&["checkout", "-q", base, "--", "."]);
    repo.write("overlays/prod/kustomization.yaml", kustomization);
    repo.commit_all("overlay")
}

/// `diff` and `check` over base..HEAD: both must refuse with exit 2 and say `expected`.
fn both_refuse(repo: &TestRepo, base: &str, expected: &str, case: &str) {
    let diff = stategate(repo, &["diff", "--base", base, "--format", "markdown"]);
    let check = stategate(repo, &["check", "--base", base, "--format", "json"]);
    for (name, out) in [("diff", &diff), ("check", &check)] {
        let shown = text(out);
        assert_eq!(out.status.code(), Some(2), "{case}: {name}: {shown}");
        assert!(
            shown.contains(expected),
            "{case}: {name} should say {expected:?}: {shown}"
        );
        assert!(
            !shown.contains(FETCHED_MARKER),
            "{case}: {name} showed fetched content: {shown}"
        );
    }
}

#[test]
fn every_field_that_takes_a_file_refuses_urls_and_nothing_is_fetched() {
    let server = Recorder::start();
    let (repo, base) = overlay_repo("");
    let head = "resources: [../../base]\nnamespace: prod\n";
    let cases = [
        (
            "configMapGenerator.envs, upper-case scheme",
            format!(
                "{head}configMapGenerator:\n  - name: app\n    envs: [\"{}\"]\n",
                server.url("app.env").replace("http://", "HTTP://")
            ),
            "configMapGenerator[0].envs[0]",
        ),
        (
            "resources, URL with a query",
            format!(
                "resources: [../../base, \"{}\"]\nnamespace: prod\n",
                server.url("cm.yaml?a=1")
            ),
            "resources[1]",
        ),
        (
            "openapi.path",
            format!(
                "{head}openapi:\n  path: \"{}\"\n",
                server.url("schema.json")
            ),
            "openapi.path",
        ),
        (
            "configurations",
            format!("{head}configurations: [\"{}\"]\n", server.url("conf.yaml")),
            "configurations[0]",
        ),
        (
            "crds",
            format!("{head}crds: [\"{}\"]\n", server.url("crd.yaml")),
            "crds[0]",
        ),
        (
            "generators",
            format!("{head}generators: [\"{}\"]\n", server.url("gen.yaml")),
            "generators[0]",
        ),
        (
            "patches[].path, mixed-case scheme",
            format!(
                "{head}patches:\n  - path: \"{}\"\n",
                server.url("patch.yaml").replace("http://", "hTTp://")
            ),
            "patches[0].path",
        ),
    ];
    for (case, kustomization, field) in &cases {
        with_overlay(&repo, &base, kustomization);
        both_refuse(&repo, &base, field, case);
        assert_eq!(server.requests(), Vec::<String>::new(), "{case}: fetched");
    }
}

#[test]
fn paths_that_leave_the_repository_are_refused() {
    // A directory outside the repository with a kustomization of its own: someone else's secrets.
    let outside = tempfile::tempdir().expect("temp dir");
    let secrets = outside.path().join("secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    std::fs::write(secrets.join("kustomization.yaml"), "resources: [cm.yaml]\n").unwrap();
    std::fs::write(
        secrets.join("cm.yaml"),
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: stolen\ndata:\n  marker: {FETCHED_MARKER}\n"),
    )
    .unwrap();
    let absolute = secrets.display().to_string();
    // Enough `..` to reach `/` from any checkout, then down to the secrets.
    let climbing = format!("{}{}", "../".repeat(40), absolute.trim_start_matches('/'));
    let (repo, base) = overlay_repo("");
    for (case, reference) in [("climbing", climbing), ("absolute", absolute)] {
        with_overlay(
            &repo,
            &base,
            &format!("resources: [../../base, \"{reference}\"]\nnamespace: prod\n"),
        );
        let expected = if case == "absolute" {
            "absolute path"
        } else {
            "leaves the repository"
        };
        both_refuse(&repo, &base, expected, case);
    }
}

/// A renderer command that tries the network itself, and rewrites a local reference into a URL
/// behind the static check's back: only the process sandbox stands in the way.
fn sneaky_renderer(dir: &Path, server: &Recorder) -> String {
    let script = dir.join("render.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n\
             curl -s -m 10 {curl} >/dev/null 2>&1\n\
             wget -q -t 1 -T 10 -O /dev/null {wget} >/dev/null 2>&1\n\
             git clone -q {git} \"$TMPDIR/clone\" >/dev/null 2>&1\n\
             sed -i 's#sneaked.yaml#{sneaked}#' \"$1/kustomization.yaml\"\n\
             exec kubectl kustomize \"$@\"\n",
            curl = server.url("curl"),
            wget = server.url("wget"),
            git = server.url("repo.git"),
            sneaked = server.url("sneaked.yaml"),
        ),
    )
    .unwrap();
    make_executable(&script);
    script.display().to_string()
}

fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn the_renderer_process_itself_cannot_reach_the_network() {
    let server = Recorder::start();
    let scripts = tempfile::tempdir().expect("temp dir");
    let renderer = sneaky_renderer(scripts.path(), &server);
    let (repo, base) = overlay_repo(&format!("  kustomize_command: [\"{renderer}\"]\n"));
    with_overlay(
        &repo,
        &base,
        "resources: [../../base, sneaked.yaml]\nnamespace: prod\n",
    );
    for args in [
        &["diff", "--base", &base, "--format", "markdown"][..],
        &["check", "--base", &base, "--format", "json"][..],
    ] {
        let out = stategate(&repo, args);
        let shown = text(&out);
        // kustomize could not fetch the URL it was handed: the render fails, closed.
        assert_eq!(out.status.code(), Some(2), "{args:?}: {shown}");
        assert!(shown.contains("render/failed"), "{args:?}: {shown}");
        assert!(!shown.contains(FETCHED_MARKER), "{args:?}: {shown}");
        assert_eq!(
            server.requests(),
            Vec::<String>::new(),
            "{args:?} reached the server"
        );
    }
}

#[test]
fn a_timed_out_hook_kills_its_renderer_and_leaves_no_checkout() {
    let scripts = tempfile::tempdir().expect("temp dir");
    let pid_file = scripts.path().join("renderer.pid");
    // The hook's TMPDIR; the renderer records the mode of the directory it was given there.
    let tmp = tempfile::tempdir().expect("temp dir");
    let tmpdir = tmp.path().display().to_string();
    let mode_file = scripts.path().join("checkout.mode");
    let slow = scripts.path().join("slow.sh");
    std::fs::write(
        &slow,
        format!(
            "#!/bin/sh\n\
             d=$(pwd); while [ \"$(dirname \"$d\")\" != {tmpdir} ] && [ \"$d\" != / ]; do d=$(dirname \"$d\"); done\n\
             stat -c %a \"$d\" > {mode}\n\
             echo $$ > {pids}\nsleep 600 &\necho $! >> {pids}\nwait\n",
            mode = mode_file.display(),
            pids = pid_file.display()
        ),
    )
    .unwrap();
    make_executable(&slow);
    let server = Server::new();
    let (work, _) = overlay_repo(&format!("  kustomize_command: [\"{}\"]\n", slow.display()));
    assert!(push(&work, &server.url(), &["main"], &[]).ok);
    server.install_hook(&["--timeout", "3"]);
    work.write(
        "base/deployment.yaml",
        DEPLOYMENT.replace("replicas: 2", "replicas: 3"),
    );
    work.commit_all("scale");
    let pushed = push(
        &work,
        &server.url(),
        &["main"],
        &[("TMPDIR", tmpdir.as_str())],
    );
    assert!(!pushed.ok, "{}", pushed.stderr);
    assert!(pushed.says("gate/timeout"), "{}", pushed.stderr);
    let pids = std::fs::read_to_string(&pid_file).expect("the renderer started");
    let mode = std::fs::read_to_string(&mode_file).expect("the renderer started");
    assert_eq!(mode.trim(), "700", "the checkout must be private");
    let left: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(left.is_empty(), "left in TMPDIR: {left:?}");
    for pid in pids.split_whitespace() {
        assert!(!running(pid), "renderer process {pid} still runs");
    }
}

/// Whether a process exists and has not exited (a zombie waiting for its reaper has exited).
fn running(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let state = stat.rsplit_once(") ").map(|(_, rest)| rest.chars().next());
        !matches!(state, Some(Some('Z' | 'X')))
    })
}
