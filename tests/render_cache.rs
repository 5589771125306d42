//! The kustomize render cache, through the real binary and the real `kubectl kustomize` (wrapped
//! in a script that logs each render): a second run renders nothing, a change renders only the
//! roots whose inputs changed (the base side comes from the cache of the previous run), corrupt
//! entries are rendered again, and a cached render is judged exactly like a fresh one.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::git::TestRepo;

fn stategate(repo: &TestRepo, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stategate"))
        .current_dir(repo.path())
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("GIT_DIR")
        .env_remove("GIT_INDEX_FILE")
        .env_remove("STATEGATE_CACHE_DIR")
        .output()
        .expect("run stategate")
}

/// `replicas` as a string: every render of it has a schema error to report.
const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: \"2\"
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

/// A renderer that logs the directory it renders, then runs kubectl kustomize.
fn logging_renderer(dir: &Path, log: &Path) -> String {
    let script = dir.join("render.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$1\" >> {}\nexec kubectl kustomize \"$@\"\n",
            log.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script.display().to_string()
}

/// The directories rendered since the last call, sorted.
fn renders(log: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let _ = std::fs::remove_file(log);
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines.sort();
    lines
}

/// The findings of a JSON report, as text: what a cached render must reproduce.
fn findings(out: &Output) -> String {
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    report["findings"].to_string()
}

#[test]
fn only_roots_whose_inputs_changed_are_rendered_and_corrupt_entries_are_rendered_again() {
    let scripts = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let log = scripts.path().join("renders.log");
    let renderer = logging_renderer(scripts.path(), &log);
    let repo = TestRepo::new();
    repo.write(
        ".stategate.yaml",
        format!(
            "version: 1\nrender:\n  kustomize: [\"overlays/*\"]\n  kustomize_command: [\"{renderer}\"]\n"
        ),
    );
    repo.write("base/kustomization.yaml", "resources: [deployment.yaml]\n");
    // The string `replicas` arrives with the second commit: a new finding, not a pre-existing one.
    repo.write(
        "base/deployment.yaml",
        DEPLOYMENT.replace("replicas: \"2\"", "replicas: 2"),
    );
    for env in ["prod", "dev"] {
        repo.write(
            &format!("overlays/{env}/kustomization.yaml"),
            format!("resources: [../../base]\nnamespace: {env}\n"),
        );
    }
    let first = repo.commit_all("base");
    repo.write(
        "base/deployment.yaml",
        DEPLOYMENT.replace("nginx:1.27", "nginx:1.28"),
    );
    let second = repo.commit_all("bump the shared base");
    let cache_dir = cache.path().display().to_string();
    let check = |base: &str, head: &str| {
        stategate(
            &repo,
            &[
                "check",
                "--base",
                base,
                "--head",
                head,
                "--format",
                "json",
                "--cache-dir",
                &cache_dir,
            ],
        )
    };

    let cold = check(&first, &second);
    assert_eq!(cold.status.code(), Some(1), "{}", findings(&cold));
    assert!(findings(&cold).contains("replicas"), "{}", findings(&cold));
    // Both roots at both sides, one run per side listing both (src/render/batch.rs).
    let both_sides = vec![".stategate-render-batch", ".stategate-render-batch"];
    assert_eq!(renders(&log), both_sides, "cold: both roots at both sides");

    let warm = check(&first, &second);
    assert_eq!(
        renders(&log),
        Vec::<String>::new(),
        "warm: nothing rendered"
    );
    assert_eq!(
        findings(&warm),
        findings(&cold),
        "a cached render is judged alike"
    );
    assert_eq!(warm.status.code(), cold.status.code());

    // The next push changes only dev: its base side is the previous push's head, already cached.
    repo.write(
        "overlays/dev/kustomization.yaml",
        "resources: [../../base]\nnamespace: dev\nnamePrefix: dev-\n",
    );
    let third = repo.commit_all("dev prefix");
    let next = check(&second, &third);
    assert_eq!(next.status.code(), Some(1));
    assert_eq!(renders(&log), vec!["overlays/dev"], "only dev at head");

    // Corrupt every entry: each is ignored and rendered again, with the same verdict.
    for entry in std::fs::read_dir(cache.path()).unwrap().flatten() {
        std::fs::write(entry.path(), b"{\"objects\": [truncated").unwrap();
    }
    let again = check(&first, &second);
    assert_eq!(renders(&log), both_sides, "corrupt entries are misses");
    assert_eq!(findings(&again), findings(&cold));
}

/// A Flux parent whose patch writes `replicas` as a string into the Deployment under its path:
/// every build of it has a schema error to report, at the patch.
const FLUX_PARENT: &str = "apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: apps
  namespace: flux-system
spec:
  interval: 1h
  prune: true
  path: ./apps
  sourceRef:
    kind: GitRepository
    name: flux-system
  patches:
    - patch: |-
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: _
        spec:
          replicas: \"3\"
      target:
        kind: Deployment
";

/// A repository with one Flux parent patching `apps/web.yaml`, rendered by the logging renderer.
fn flux_repo(renderer: &str) -> TestRepo {
    let repo = TestRepo::new();
    repo.write(
        ".stategate.yaml",
        format!("version: 1\nrender:\n  kustomize_command: [\"{renderer}\"]\n"),
    );
    repo.write("clusters/prod/apps.yaml", FLUX_PARENT);
    repo.write(
        "apps/web.yaml",
        DEPLOYMENT.replace("replicas: \"2\"", "replicas: 2"),
    );
    repo.commit_all("flux parent");
    repo
}

/// Flux parent patches are built through the render cache: a warm run starts no kustomize for
/// them and judges alike, a corrupt entry is built again, and changing the patch or a document
/// it patches is a new build.
#[test]
fn flux_parent_patches_are_built_once_per_input() {
    let scripts = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let log = scripts.path().join("renders.log");
    let repo = flux_repo(&logging_renderer(scripts.path(), &log));
    let cache_dir = cache.path().display().to_string();
    let check = || {
        stategate(
            &repo,
            &[
                "check",
                "--all",
                "--format",
                "json",
                "--cache-dir",
                &cache_dir,
            ],
        )
    };

    let cold = check();
    assert_eq!(cold.status.code(), Some(1), "{}", findings(&cold));
    assert!(
        findings(&cold).contains("clusters/prod/apps.yaml"),
        "the patched value is reported at the patch: {}",
        findings(&cold)
    );
    assert_eq!(renders(&log), vec!["."], "cold: the parent is built");

    let warm = check();
    assert_eq!(renders(&log), Vec::<String>::new(), "warm: nothing built");
    assert_eq!(
        findings(&warm),
        findings(&cold),
        "a cached build is judged alike"
    );
    assert_eq!(warm.status.code(), cold.status.code());

    for entry in std::fs::read_dir(cache.path()).unwrap().flatten() {
        std::fs::write(entry.path(), b"{\"objects\": [truncated").unwrap();
    }
    let again = check();
    assert_eq!(renders(&log), vec!["."], "a corrupt entry is built again");
    assert_eq!(findings(&again), findings(&cold));
    check();
    assert_eq!(renders(&log), Vec::<String>::new(), "and stored again");

    repo.write(
        "clusters/prod/apps.yaml",
        FLUX_PARENT.replace("replicas: \"3\"", "replicas: 3"),
    );
    repo.commit_all("the patch writes a number");
    let patched = check();
    assert_eq!(renders(&log), vec!["."], "a changed patch is a new build");
    assert_eq!(patched.status.code(), Some(0), "{}", findings(&patched));

    let web = DEPLOYMENT.replace("replicas: \"2\"", "replicas: 2");
    repo.write("apps/web.yaml", web.replace("nginx:1.27", "nginx:1.28"));
    repo.commit_all("the child changes");
    check();
    assert_eq!(renders(&log), vec!["."], "a changed child is a new build");
    check();
    assert_eq!(renders(&log), Vec::<String>::new());
}

/// Without `--cache-dir` or `STATEGATE_CACHE_DIR`, `check` caches in the repository's git
/// directory, as the hook does: a second check builds nothing. `--no-cache` reads and writes no
/// cache.
#[test]
fn check_caches_in_the_git_directory_unless_told_not_to() {
    let scripts = tempfile::tempdir().unwrap();
    let log = scripts.path().join("renders.log");
    let repo = flux_repo(&logging_renderer(scripts.path(), &log));
    let check = |extra: &[&str]| {
        let mut args = vec!["check", "--all", "--format", "json"];
        args.extend_from_slice(extra);
        stategate(&repo, &args)
    };

    let uncached = check(&["--no-cache"]);
    assert_eq!(renders(&log), vec!["."]);
    assert!(
        !repo.path().join(".git/stategate/render-cache").exists(),
        "--no-cache writes no cache"
    );
    let cold = check(&[]);
    assert_eq!(renders(&log), vec!["."], "nothing was cached before");
    assert!(repo.path().join(".git/stategate/render-cache").is_dir());
    let warm = check(&[]);
    assert_eq!(
        renders(&log),
        Vec::<String>::new(),
        "warm from the git directory"
    );
    assert_eq!(findings(&warm), findings(&cold));
    assert_eq!(findings(&uncached), findings(&cold));
    check(&["--no-cache"]);
    assert_eq!(renders(&log), vec!["."], "--no-cache reads no cache");
}

/// The scan's facts of each blob are kept for the next run of the same program, and the same
/// sources built again are the same program: the Action builds stategate on every run, and with
/// the binary's path and modification time in the key, the facts it persisted were never read.
#[test]
fn scan_facts_outlive_a_rebuild_of_the_same_sources() {
    let repo = TestRepo::new();
    for i in 0..5 {
        repo.write(
            &format!("apps/app-{i}.yaml"),
            DEPLOYMENT.replace("web", &format!("web-{i}")),
        );
    }
    repo.commit_all("apps");
    repo.write("apps/app-0.yaml", DEPLOYMENT.replace("web", "changed"));
    repo.commit_all("change one");
    let cache = tempfile::tempdir().unwrap();
    let facts_file = cache.path().join("scan-facts");
    let run_copy = |name: &str| {
        // A copy elsewhere, written now: another path and modification time, the same build.
        let dir = tempfile::tempdir().unwrap();
        let copy = dir.path().join(name);
        std::fs::copy(env!("CARGO_BIN_EXE_stategate"), &copy).unwrap();
        let out = Command::new(&copy)
            .current_dir(repo.path())
            .args([
                "check", "--base", "HEAD~1", "--head", "HEAD", "--format", "json",
            ])
            .env("NO_COLOR", "1")
            .env("STATEGATE_CACHE_DIR", cache.path())
            .env_remove("GIT_DIR")
            .env_remove("GIT_INDEX_FILE")
            .output()
            .expect("run stategate");
        assert!(
            !out.stdout.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::read(&facts_file).expect("scan-facts written")
    };
    let first = run_copy("stategate");
    let second = run_copy("stategate-again");
    // The start of the file: a line naming the format, then the program's 32-byte key.
    let header = first.iter().position(|&b| b == b'\n').unwrap() + 1;
    let key = header..header + 32;
    assert_eq!(
        second[key.clone()],
        first[key],
        "the same sources, the same key"
    );
    assert!(
        first.len() > header + 40,
        "the first run kept facts of the blobs it scanned"
    );
    assert_eq!(second, first, "the second run kept the first run's facts");
}
