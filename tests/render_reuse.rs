//! Renders are not repeated: through the real binary, the real `git push` to a bare repository
//! with the hook installed, and the real `kubectl kustomize` behind a `kubectl` on `PATH` that logs
//! each call. A push renders only the roots whose inputs changed, each at both sides once; a re-push
//! renders nothing; a second `diff` of the same change starts no kubectl.

mod common;
mod hook_support;

use std::path::Path;
use std::process::{Command, Output};

use common::git::TestRepo;
use common::run::findings_with;
use hook_support::{Server, push};

/// A `kubectl` that logs the directory it is asked to render (for a batch, the roots it lists,
/// joined by `+`), then runs the real one. The renderer's environment is cleared but for `PATH`,
/// so the log's path is written into the script.
struct LoggingKubectl {
    dir: tempfile::TempDir,
}

impl LoggingKubectl {
    fn new() -> LoggingKubectl {
        let real = std::env::var_os("PATH")
            .and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|dir| dir.join("kubectl"))
                    .find(|p| p.is_file())
            })
            .expect("kubectl on PATH: these tests run the real kubectl kustomize");
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("kubectl");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nif [ \"$2\" = {BATCH} ]; then\n  \
                 sed -n 's|^  - \"\\.\\./\\(.*\\)\"$|\\1|p' {BATCH}/kustomization.yaml | paste -sd+ >> {log}\n\
                 else\n  echo \"$2\" >> {log}\nfi\nexec {real} \"$@\"\n",
                log = dir.path().join("calls.log").display(),
                real = real.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        LoggingKubectl { dir }
    }

    /// `PATH` with the logging kubectl first.
    fn path(&self) -> String {
        let rest = std::env::var("PATH").unwrap_or_default();
        format!("{}:{rest}", self.dir.path().display())
    }

    /// The directories rendered since the last call, sorted.
    fn calls(&self) -> Vec<String> {
        let log = self.dir.path().join("calls.log");
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let _ = std::fs::remove_file(&log);
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        lines.sort();
        lines
    }
}

/// The directory of the kustomization that lists a batch of roots (src/render/batch.rs).
const BATCH: &str = ".stategate-render-batch";

const CONFIG: &str =
    "version: 1\nrender:\n  kustomize: [\"overlays/*\"]\nprotect:\n  refs: [\"refs/heads/main\"]\n";

fn deployment(image: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
        - name: web
          image: {image}
"
    )
}

fn patch(replicas: u32) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: {replicas}\n"
    )
}

/// A base shared by three overlays, each in its own namespace with a patch.
fn overlays_repo() -> TestRepo {
    let repo = TestRepo::new();
    repo.write(".stategate.yaml", CONFIG);
    repo.write("base/kustomization.yaml", "resources: [deployment.yaml]\n");
    repo.write("base/deployment.yaml", deployment("nginx:1.27"));
    for (n, env) in ["dev", "stage", "prod"].into_iter().enumerate() {
        repo.write(
            &format!("overlays/{env}/kustomization.yaml"),
            format!("resources: [../../base]\nnamespace: {env}\npatches:\n  - path: patch.yaml\n"),
        );
        repo.write(&format!("overlays/{env}/patch.yaml"), patch(n as u32 + 1));
    }
    repo
}

/// The three overlays rendered by one kubectl.
const ALL: &str = "overlays/dev+overlays/prod+overlays/stage";

fn twice(dir: &str) -> Vec<String> {
    vec![dir.to_owned(), dir.to_owned()]
}

#[test]
fn a_push_renders_the_roots_whose_inputs_changed_once_per_side_and_a_re_push_renders_nothing() {
    let kubectl = LoggingKubectl::new();
    let path = kubectl.path();
    let env = [("PATH", path.as_str())];
    let server = Server::new();
    server.install_hook(&[]);
    let cache = server.git_dir().join("stategate/render-cache");
    let work = overlays_repo();
    work.commit_all("seed");
    let pushed = push(&work, &server.url(), &["-q", "HEAD:main"], &env);
    assert!(pushed.ok, "{}", pushed.stderr);
    kubectl.calls();

    // Only dev's patch changes: dev is rendered, at head and at base, nothing else.
    work.write("overlays/dev/patch.yaml", patch(4));
    work.commit_all("dev: four replicas");
    let pushed = push(&work, &server.url(), &["-q", "HEAD:main"], &env);
    assert!(pushed.ok, "{}", pushed.stderr);
    assert_eq!(kubectl.calls(), twice("overlays/dev"), "dev at both sides");

    // The base changes: every root at head; dev's base side is the previous push's head, cached.
    work.write("base/deployment.yaml", deployment("nginx:1.28"));
    work.commit_all("base: nginx 1.28");
    let pushed = push(&work, &server.url(), &["-q", "HEAD:main"], &env);
    assert!(pushed.ok, "{}", pushed.stderr);
    assert_eq!(
        kubectl.calls(),
        [ALL, "overlays/prod+overlays/stage"],
        "one kubectl per side; dev's base side comes from the cache"
    );

    // The base changes again: every base side is the previous push's head, so head only.
    work.write("base/deployment.yaml", deployment("nginx:1.29"));
    let bumped = work.commit_all("base: nginx 1.29");
    let previous = server.rev("refs/heads/main");
    let pushed = push(&work, &server.url(), &["-q", "HEAD:main"], &env);
    assert!(pushed.ok, "{}", pushed.stderr);
    assert_eq!(kubectl.calls(), [ALL], "the head side only");

    // The same change pushed again (main set back): both sides cached, kubectl never starts.
    let again = || {
        hook_support::run_git(
            &server.git_dir(),
            &["update-ref", "refs/heads/main", &previous],
        );
        let pushed = push(
            &work,
            &server.url(),
            &["-q", &format!("{bumped}:refs/heads/main")],
            &env,
        );
        assert!(pushed.ok, "{}", pushed.stderr);
    };
    again();
    assert_eq!(
        kubectl.calls(),
        Vec::<String>::new(),
        "re-push: nothing rendered"
    );

    // From a cold cache (it lives in the git directory), every root at both sides.
    std::fs::remove_dir_all(&cache).expect("the hook keeps its cache in the git directory");
    again();
    assert_eq!(kubectl.calls(), twice(ALL), "cold: one kubectl per side");
}

/// `stategate diff` in `repo` with the logging kubectl first on `PATH`.
fn diff(repo: &TestRepo, kubectl: &LoggingKubectl, args: &[&str], cache: Option<&Path>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_stategate"));
    cmd.current_dir(repo.path())
        .arg("diff")
        .args(args)
        .args(["--format", "json"])
        .env("NO_COLOR", "1")
        .env("PATH", kubectl.path())
        .env_remove("GIT_DIR")
        .env_remove("GIT_INDEX_FILE")
        .env_remove("STATEGATE_CACHE_DIR");
    if let Some(dir) = cache {
        cmd.env("STATEGATE_CACHE_DIR", dir);
    }
    cmd.output().expect("run stategate")
}

#[test]
fn a_second_diff_starts_no_kubectl_and_shows_the_same_objects() {
    let kubectl = LoggingKubectl::new();
    let repo = overlays_repo();
    let base = repo.commit_all("seed");
    repo.write("base/deployment.yaml", deployment("nginx:1.28"));
    repo.commit_all("base: nginx 1.28");
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().display().to_string();
    let range = ["--base", &base, "--head", "HEAD", "--cache-dir", &cache_dir];

    let cold = diff(&repo, &kubectl, &range, None);
    assert_eq!(
        cold.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&cold.stderr)
    );
    assert_eq!(
        kubectl.calls(),
        twice(ALL),
        "cold: every root, one kubectl per side"
    );
    let report: serde_json::Value = serde_json::from_slice(&cold.stdout).unwrap();
    let changed = report["objects"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["status"] == "changed")
        .count();
    assert_eq!(changed, 3, "the Deployment in each overlay: {report}");

    let warm = diff(&repo, &kubectl, &range, None);
    assert_eq!(
        kubectl.calls(),
        Vec::<String>::new(),
        "warm: kubectl never starts"
    );
    assert_eq!(warm.stdout, cold.stdout, "a cached render diffs alike");
    assert_eq!(warm.status.code(), Some(0));

    // STATEGATE_CACHE_DIR names the same cache when no --cache-dir is given.
    let from_env = diff(
        &repo,
        &kubectl,
        &["--base", &base, "--head", "HEAD"],
        Some(cache.path()),
    );
    assert_eq!(from_env.status.code(), Some(0));
    assert_eq!(kubectl.calls(), Vec::<String>::new());
    assert_eq!(from_env.stdout, cold.stdout);
}

/// `stategate check` of a range in `repo`, with the logging kubectl first on `PATH`.
fn check(repo: &TestRepo, kubectl: &LoggingKubectl, base: &str, cache: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stategate"))
        .current_dir(repo.path())
        .args([
            "check", "--base", base, "--head", "HEAD", "--format", "json",
        ])
        .arg("--cache-dir")
        .arg(cache)
        .env("NO_COLOR", "1")
        .env("PATH", kubectl.path())
        .env_remove("GIT_DIR")
        .env_remove("GIT_INDEX_FILE")
        .env_remove("STATEGATE_CACHE_DIR")
        .output()
        .expect("run stategate")
}

#[test]
fn roots_that_cannot_share_a_render_are_rendered_alone_each_with_its_own_verdict() {
    let kubectl = LoggingKubectl::new();
    let repo = TestRepo::new();
    repo.write(".stategate.yaml", CONFIG);
    repo.write("base/kustomization.yaml", "resources: [deployment.yaml]\n");
    repo.write("base/deployment.yaml", deployment("nginx:1.27"));
    // a and b render the same object (one namespace): kustomize refuses them in one build.
    for (overlay, replicas) in [("a", 2), ("b", 3), ("c", 4)] {
        let namespace = if overlay == "c" { "other" } else { "shared" };
        repo.write(
            &format!("overlays/{overlay}/kustomization.yaml"),
            format!(
                "resources: [../../base]\nnamespace: {namespace}\npatches:\n  - path: patch.yaml\n"
            ),
        );
        repo.write(&format!("overlays/{overlay}/patch.yaml"), patch(replicas));
    }
    let base = repo.commit_all("seed");
    repo.write("base/deployment.yaml", deployment("nginx:1.28"));
    // c's patch goes: c cannot render at head, and says so in its own file.
    repo.remove("overlays/c/patch.yaml");
    repo.commit_all("bump, and break c");
    let cache = tempfile::tempdir().unwrap();

    let out = check(&repo, &kubectl, &base, cache.path());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(out.status.code(), Some(2), "{report}");
    // At head, c names a patch that is not there: it is rendered alone from the start.
    let mut expected = vec!["overlays/a+overlays/b+overlays/c", "overlays/a+overlays/b"];
    expected.extend(
        ["overlays/a", "overlays/b", "overlays/c"]
            .iter()
            .flat_map(|d| [*d, *d]),
    );
    expected.sort();
    assert_eq!(
        kubectl.calls(),
        expected,
        "each side's batch fails, then each root alone"
    );
    let failed: Vec<&serde_json::Value> = findings_with(&report, "render/failed");
    assert_eq!(failed.len(), 1, "only c failed: {report}");
    assert!(
        failed[0]
            .to_string()
            .contains("overlays/c/kustomization.yaml"),
        "{}",
        failed[0]
    );

    // What rendered alone was stored: a second run renders only what failed.
    let again = check(&repo, &kubectl, &base, cache.path());
    assert_eq!(again.status.code(), Some(2));
    assert_eq!(kubectl.calls(), ["overlays/c"]);
}

#[test]
fn a_root_that_names_a_missing_file_is_rendered_alone_and_the_others_still_share_one_run() {
    let kubectl = LoggingKubectl::new();
    let repo = overlays_repo();
    // qa names a file outside its directory, which kustomize's load restrictor refuses.
    repo.write("shared/patch.yaml", patch(5));
    repo.write(
        "overlays/qa/kustomization.yaml",
        "resources: [../../base]\nnamespace: qa\npatches:\n  - path: ../../shared/patch.yaml\n",
    );
    let base = repo.commit_all("seed");
    repo.write("base/deployment.yaml", deployment("nginx:1.28"));
    repo.remove("overlays/prod/patch.yaml");
    repo.commit_all("bump, and break prod");
    let cache = tempfile::tempdir().unwrap();

    let out = check(&repo, &kubectl, &base, cache.path());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(out.status.code(), Some(2), "{report}");
    let mut expected = vec![
        ALL,
        "overlays/dev+overlays/stage",
        "overlays/prod",
        "overlays/qa",
        "overlays/qa",
    ];
    expected.sort();
    assert_eq!(
        kubectl.calls(),
        expected,
        "one run per side for the roots that can render; prod (at head) and qa alone"
    );
    let failed: Vec<String> = findings_with(&report, "render/failed")
        .into_iter()
        .map(|f| f.to_string())
        .collect();
    for overlay in ["prod", "qa"] {
        assert!(
            failed
                .iter()
                .any(|f| f.contains(&format!("overlays/{overlay}/kustomization.yaml"))),
            "{overlay} failed: {report}"
        );
    }
    assert_eq!(failed.len(), 2, "only prod and qa failed: {report}");
}
