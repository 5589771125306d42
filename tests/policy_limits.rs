//! A policy that allocates without bound yields a blocking `policy/error` for the document it was
//! judging, naming the policy, and the gate still decides (exit 1): never an abort (exit 134), a
//! panic (exit 101) or an exhausted host. Through the real binary in real repositories.

mod common;

use common::git::TestRepo;
use common::run::stategate;

const CONFIG_MAP: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n";

/// A base with `config` and one policy file, and a change adding a ConfigMap; returns the JSON
/// report of `stategate check` after asserting exit 1.
fn check_with_policy(config: &str, policy: &str) -> serde_json::Value {
    let repo = TestRepo::new();
    repo.write(".stategate.yaml", config);
    repo.write("policies/bomb.rego", policy);
    repo.commit_all("policy");
    repo.write("apps/settings.yaml", CONFIG_MAP);
    let out = stategate(&repo, &["check", "--format", "json"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "exit {:?}: {stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// The report holds a `policy/error` on the ConfigMap that names the policy and says the memory
/// budget ran out.
fn assert_memory_error(report: &serde_json::Value) {
    let findings = report["findings"].as_array().expect("findings");
    let error = findings
        .iter()
        .find(|f| f["rule"] == "policy/error")
        .unwrap_or_else(|| panic!("no policy/error: {report:#}"));
    assert_eq!(error["severity"], "error");
    assert_eq!(
        error["metadata"]["policy"], "policies/bomb.rego",
        "{error:#}"
    );
    assert_eq!(error["location"]["file"], "apps/settings.yaml", "{error:#}");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("memory budget"), "{message}");
    assert!(
        !findings.iter().any(|f| f["rule"] == "policy/deny"),
        "the bomb produced a result: {report:#}"
    );
}

#[test]
fn the_numbers_range_bomb_is_a_policy_error_not_an_abort() {
    // The exact policy that aborted the process with exit 134.
    let policy = "package main\n\ndeny contains msg if {\n  n := count(numbers.range(1, 3e8))\n  msg := sprintf(\"%d\", [n])\n}\n";
    assert_memory_error(&check_with_policy("version: 1\n", policy));
}

#[test]
fn ranges_beyond_the_address_space_are_refused_before_anything_is_reserved() {
    // 3e13 numbers (720 TB) made the allocator fail (abort); 1e18 overflowed Vec (panic).
    for call in [
        "numbers.range(1, 3e13)",
        "numbers.range(-1e18, 1e18)",
        "numbers.range_step(1, 1e18, 1)",
    ] {
        let policy = format!(
            "package main\n\ndeny contains msg if {{\n  n := count({call})\n  msg := sprintf(\"%d\", [n])\n}}\n"
        );
        assert_memory_error(&check_with_policy("version: 1\n", &policy));
    }
}

#[test]
fn a_concat_of_one_string_repeated_is_refused_before_it_is_joined() {
    // A hundred thousand references to one 1 MB string cost 2.4 MB; joined they are 100 GB.
    let policy = "package main\n\ndeny contains msg if {\n  big := concat(\"\", [s | some i in numbers.range(1, 65536); s := \"0123456789abcdef\"])\n  huge := concat(\"\", [big | some j in numbers.range(1, 100000)])\n  msg := sprintf(\"%d\", [count(huge)])\n}\n";
    // The time budget is lifted so that the size check is what stops it.
    let config = "policies:\n  timeout_ms: 3600000\n";
    assert_memory_error(&check_with_policy(config, policy));
}

#[test]
fn json_marshal_of_a_value_shared_many_times_is_refused_before_it_is_written() {
    // Forty doublings by reference: a few hundred bytes in memory, 2^40 copies as text.
    let doublings: String = (1..=40)
        .map(|i| format!("  a{i} := [a{}, a{}]\n", i - 1, i - 1))
        .collect();
    let policy = format!(
        "package main\n\ndeny contains msg if {{\n  a0 := [\"0123456789abcdef\"]\n{doublings}  msg := json.marshal(a40)\n}}\n"
    );
    assert_memory_error(&check_with_policy("version: 1\n", &policy));
}

#[test]
fn a_comprehension_that_grows_past_the_budget_stops_there() {
    // Ten billion pairs, built one at a time: the time budget is lifted so that memory is what
    // stops it.
    let config = "policies:\n  timeout_ms: 3600000\n  memory_mb: 16\n";
    let policy = "package main\n\ndeny contains msg if {\n  r := numbers.range(1, 100000)\n  pairs := [[a, b] | some a in r; some b in r]\n  msg := sprintf(\"%d\", [count(pairs)])\n}\n";
    assert_memory_error(&check_with_policy(config, policy));
}

#[test]
fn policies_within_the_budget_still_use_the_guarded_builtins() {
    let policy = "package main\n\ndeny contains msg if {\n  count(numbers.range(1, 3)) == 3\n  numbers.range(3, 1) == [3, 2, 1]\n  numbers.range_step(0, 10, 5) == [0, 5, 10]\n  concat(\"-\", {\"b\", \"a\"}) == \"a-b\"\n  json.marshal({\"a\": [1, \"x\", {\"b\"}]}) == `{\"a\":[1,\"x\",[\"b\"]]}`\n  msg := concat(\", \", [\"fine\", input.metadata.name])\n}\n";
    let report = check_with_policy("version: 1\n", policy);
    let findings = report["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{report:#}");
    assert_eq!(findings[0]["rule"], "policy/deny");
    assert_eq!(findings[0]["message"], "fine, settings");
}
