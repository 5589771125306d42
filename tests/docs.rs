//! The README is part of the product: its config reference lists every key the config accepts,
//! its rule-code table matches the code, and no link leaves the repository except to public URLs.

use std::path::Path;
use std::process::{Command, Output};

use stategate::finding::Rule;

fn readme() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap()
}

/// Check an empty manifest with `config` through the real binary; the JSON report.
fn with_config(config: &str) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("c.yaml"), config).unwrap();
    std::fs::write(
        dir.path().join("m.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: m}\n",
    )
    .unwrap();
    let out: Output = Command::new(env!("CARGO_BIN_EXE_stategate"))
        .current_dir(dir.path())
        .args(["check", "m.yaml", "--config", "c.yaml", "--format", "json"])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The keys the config accepts under `section` (a YAML path to a mapping, `[]` for list items),
/// read from the binary's own "unknown field" message, so a new key cannot hide.
fn keys_under(section: &[&str]) -> Vec<String> {
    // Nest a mapping holding one unknown key at `section`.
    let mut value = String::from("{zzz_unknown: 1}");
    for part in section.iter().rev() {
        value = if *part == "[]" {
            format!("[{value}]")
        } else {
            format!("{{{part}: {value}}}")
        };
    }
    let report = with_config(&value);
    let finding = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == "config/invalid")
        .unwrap_or_else(|| panic!("no config/invalid for {value}: {report}"));
    let text = if section.is_empty() {
        finding["help"].as_str().unwrap().to_owned()
    } else {
        finding["message"].as_str().unwrap().to_owned()
    };
    if section.is_empty() {
        let list = text.split("known keys: ").nth(1).unwrap();
        return list.split(", ").map(str::to_owned).collect();
    }
    let expected = text
        .split("expected ")
        .nth(1)
        .unwrap_or_else(|| panic!("{text}"));
    expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_readme_documents_every_config_key() {
    let readme = readme();
    let sections: &[&[&str]] = &[
        &[],
        &["schemas"],
        &["schemas", "map", "[]"],
        &["policies"],
        &["policies", "parameters"],
        &["policies", "parameters", "required_labels"],
        &["policies", "parameters", "images"],
        &["protect"],
        &["protect", "admins"],
        &["approvals", "[]"],
        &["drift"],
        &["drift", "live"],
        &["render"],
        &["diff"],
        &["hook"],
        &["limits"],
        &["report"],
    ];
    let mut missing = Vec::new();
    let mut seen = 0;
    for section in sections {
        let prefix: String = section
            .iter()
            .map(|p| {
                if *p == "[]" {
                    "[]".to_owned()
                } else {
                    format!(".{p}")
                }
            })
            .collect::<String>()
            .trim_start_matches('.')
            .to_owned();
        for key in keys_under(section) {
            seen += 1;
            let dotted = if prefix.is_empty() {
                key
            } else {
                format!("{prefix}.{key}")
            };
            if !readme.contains(&format!("| `{dotted}` |")) {
                missing.push(dotted);
            }
        }
    }
    assert!(seen > 40, "only {seen} keys found: the probe is broken");
    assert!(
        missing.is_empty(),
        "README config reference lacks: {missing:?}"
    );
}

#[test]
fn the_readme_config_example_is_a_valid_config() {
    let readme = readme();
    let section = readme.split("## Configuration").nth(1).unwrap();
    let example = section
        .split("```yaml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .unwrap();
    let report = with_config(example);
    let invalid: Vec<&serde_json::Value> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule"] == "config/invalid")
        .collect();
    assert!(invalid.is_empty(), "{invalid:#?}");
}

#[test]
fn the_readme_rule_table_matches_the_code() {
    let readme = readme();
    let rows: Vec<&str> = readme
        .lines()
        .filter(|l| l.starts_with("| `") && l.matches(" | ").count() == 1)
        .filter(|l| {
            l[3..]
                .split('`')
                .next()
                .is_some_and(|c| c.contains('/') && !c.starts_with('-'))
        })
        .collect();
    for rule in Rule::ALL {
        let row = format!(
            "| `{}` | {} |",
            rule.code(),
            rule.description().replace('|', "\\|")
        );
        assert!(readme.contains(&row), "README lacks or misstates: {row}");
    }
    assert_eq!(
        rows.len(),
        Rule::ALL.len(),
        "README lists codes the code does not have"
    );
}

#[test]
fn no_link_leaves_the_repository_except_to_public_urls() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for doc in ["README.md", "hooks/README.md", "policies/README.md"] {
        let text = std::fs::read_to_string(root.join(doc)).unwrap();
        let dir = root.join(doc).parent().unwrap().to_path_buf();
        for target in text.split("](").skip(1).filter_map(|s| s.split(')').next()) {
            if target.starts_with("https://") || target.starts_with("http://") {
                continue;
            }
            let file = target.split('#').next().unwrap();
            if file.is_empty() {
                continue;
            }
            let resolved = dir.join(file).canonicalize();
            assert!(
                resolved
                    .as_ref()
                    .is_ok_and(|p| p.starts_with(root.canonicalize().unwrap())),
                "{doc}: link `{target}` does not resolve inside the repository"
            );
        }
        assert!(
            !text.contains("../shared/"),
            "{doc} names a path outside the repository"
        );
    }
}
