//! Running the real binary the way a user does, from a test repository's work tree.

use std::process::{Command, Output};

use super::git::TestRepo;

/// `stategate ARGS` in `repo`'s work tree, colour off and no git environment inherited from a
/// hook-driven `cargo test`, so the run finds the repository from its directory alone.
pub fn stategate(repo: &TestRepo, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stategate"))
        .current_dir(repo.path())
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("GIT_DIR")
        .env_remove("GIT_INDEX_FILE")
        .output()
        .expect("run stategate")
}

/// The exit code; a run killed by a signal fails the test here rather than reading as a code.
pub fn code(output: &Output) -> i32 {
    output.status.code().expect("exit code")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The blocking findings of a JSON report as (rule, file, line), the triple a test asserts on.
pub fn errors(report: &serde_json::Value) -> Vec<(String, String, u64)> {
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["severity"] == "error")
        .map(|f| {
            (
                f["rule"].as_str().unwrap_or_default().to_owned(),
                f["location"]["file"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                f["location"]["line"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

/// [`stategate`] with the render cache in `cache`, so a test never shares the user's cache.
pub fn stategate_cached(repo: &TestRepo, args: &[&str], cache: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stategate"))
        .current_dir(repo.path())
        .args(args)
        .env("NO_COLOR", "1")
        .env("STATEGATE_CACHE_DIR", cache)
        .env_remove("GIT_DIR")
        .env_remove("GIT_INDEX_FILE")
        .output()
        .expect("run stategate")
}

/// The JSON report on stdout; a run that printed something else fails the test with both streams.
pub fn json(out: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// The object of a `diff --format json` report with this id; a missing one fails the test with
/// the whole report.
pub fn diff_object<'a>(report: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    report["objects"]
        .as_array()
        .expect("objects")
        .iter()
        .find(|o| o["id"] == id)
        .unwrap_or_else(|| panic!("{id} not in {report:#}"))
}

/// The findings of a JSON report with rule `rule`.
pub fn findings_with<'a>(report: &'a serde_json::Value, rule: &str) -> Vec<&'a serde_json::Value> {
    report["findings"]
        .as_array()
        .expect("a report has findings")
        .iter()
        .filter(|f| f["rule"] == rule)
        .collect()
}
