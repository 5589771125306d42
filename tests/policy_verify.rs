//! `stategate verify`: the built-in policies pass their own tests, and failures and broken
//! policies give exit 1 and 2.

use std::path::Path;

use stategate::cli::verify::run_verify;

fn verify(dir: &Path) -> (u8, String) {
    let mut out = Vec::new();
    let code = run_verify(dir, &Default::default(), &mut out).expect("writes to a Vec");
    (code, String::from_utf8(out).unwrap())
}

#[test]
fn built_in_policies_pass_their_tests() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let (code, out) = verify(&dir);
    assert_eq!(code, 0, "{out}");
    let tests = out.lines().filter(|l| l.contains(": PASS (")).count();
    assert!(tests >= 10, "{out}");
    assert!(out.contains(&format!("PASS: {tests}/{tests}")), "{out}");
    assert!(
        out.contains("data.main_test.test_plaintext_secret_is_denied: PASS"),
        "{out}"
    );
}

#[test]
fn a_failing_test_is_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("p.rego"),
        "package p\nimport rego.v1\ndeny contains \"no\" if input.bad\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("p_test.rego"),
        "package p\nimport rego.v1\ntest_denies if deny[\"no\"] with input as {\"bad\": true}\ntest_wrong if deny[\"no\"] with input as {}\n",
    )
    .unwrap();
    let (code, out) = verify(dir.path());
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("data.p.test_denies: PASS"), "{out}");
    assert!(out.contains("data.p.test_wrong: FAIL"), "{out}");
    assert!(
        out.contains("PASS: 1/2") && out.contains("FAIL: 1/2"),
        "{out}"
    );
}

#[test]
fn a_broken_policy_is_exit_2_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("broken.rego"),
        "package p\nimport rego.v1\n\ndeny contains msg if {\n  msg := := 1\n}\n",
    )
    .unwrap();
    let (code, out) = verify(dir.path());
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("policy/compile") && out.contains("broken.rego:5"),
        "{out}"
    );
}
