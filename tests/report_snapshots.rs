//! Snapshots of every output format for one small fixture report, plus structural checks that do
//! not depend on the snapshot: SARIF's required keys, the Actions escaping round trip, Secret
//! masking in the human snippets, and that renderers report the verdict rather than decide it.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;
use stategate::finding::{Finding, Location, Rule, Severity, Verdict};
use stategate::load::SourceFile;
use stategate::object::ObjectId;
use stategate::report::{
    CheckedFiles, Format, RenderOptions, Report, Stats, escape_data, escape_property, render,
};

const DEPLOYMENT: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: prod
spec:
  replicas: three
  template:
    spec:
      enableServiceLinks: yes
      containers:
        - name: web
          image: nginx:1.27
          protectionDoamin: internal
";

/// The base64 value the human format must never show.
const SECRET_VALUE: &str = "aHVudGVyMg!!";

fn secret_yaml() -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: prod\ndata:\n  password: {SECRET_VALUE}\n"
    )
}

fn kube(kind: &str, name: &str) -> ObjectId {
    ObjectId::Kube {
        api_version: if kind == "Secret" { "v1" } else { "apps/v1" }.into(),
        kind: kind.into(),
        namespace: Some("prod".into()),
        name: name.into(),
    }
}

/// The location of the first occurrence of `needle` in `source`, as a loader would report it.
fn at(source: &SourceFile, needle: &str) -> Location {
    let offset = source.text.find(needle).expect("needle in fixture");
    let line = source.text[..offset].matches('\n').count() + 1;
    let line_start = source.text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let column = source.text[line_start..offset].chars().count();
    source.location(line, column, needle.len())
}

fn fixture() -> Report {
    let deployment = Arc::new(SourceFile::new("clusters/prod/web.yaml", DEPLOYMENT));
    let secret = Arc::new(SourceFile::new(
        "clusters/prod/db-secret.yaml",
        secret_yaml(),
    ));
    let findings = vec![
        Finding::error(
            Rule::SchemaType,
            "spec.replicas: \"three\" is not of type \"integer\"",
        )
        .at(at(&deployment, "three"))
        .object(kube("Deployment", "web"))
        .help("use a whole number, e.g. `replicas: 3`"),
        Finding::error(
            Rule::SchemaUnknownField,
            "unknown field \"protectionDoamin\" in spec.template.spec.containers[0]",
        )
        .at(at(&deployment, "protectionDoamin"))
        .object(kube("Deployment", "web"))
        .help("did you mean `protectionDomain`?"),
        Finding::warning(
            Rule::LoadAmbiguousScalar,
            "unquoted `yes` is read as the boolean true by kubectl",
        )
        .at(at(&deployment, "yes"))
        .object(kube("Deployment", "web"))
        .help("write `true`, or quote it: \"yes\""),
        Finding::error(Rule::SchemaFormat, "data.password is not valid base64")
            .at(at(&secret, SECRET_VALUE))
            .object(kube("Secret", "db")),
        Finding::error(
            Rule::ApprovalMissing,
            "prod-needs-platform: 1 of 2 required approvals",
        )
        .for_ref("refs/heads/main"),
        Finding::error(
            Rule::PolicyDeny,
            "100% of replicas: on spot, nodes\nsecond line",
        )
        .at(Location {
            file: "apps/odd:name,v1.yaml".into(),
            line: Some(3),
            column: Some(5),
            ..Location::default()
        })
        .with_meta("policy", "policies/spot.rego")
        .with_meta("rule", "deny_spot"),
        Finding::note(Rule::LoadSkipped, "binary file skipped").in_file("assets/logo.png"),
    ];
    Report {
        findings,
        sources: BTreeMap::from([
            (deployment.path.clone(), deployment),
            (secret.path.clone(), secret),
        ]),
        stats: Stats {
            files: 4,
            documents: 3,
            skipped: 1,
            checked: CheckedFiles::new(
                [
                    "clusters/prod/web.yaml",
                    "clusters/prod/db-secret.yaml",
                    "apps/odd:name,v1.yaml",
                ]
                .into_iter(),
            ),
            ..Stats::default()
        },
        notes: vec!["config and policies read from the working tree (--trust head)".into()],
    }
}

fn rendered(report: &Report, format: Format) -> String {
    let mut out = Vec::new();
    render(report, format, &mut out, &RenderOptions::default()).expect("render to a Vec");
    String::from_utf8(out).expect("renderers write UTF-8")
}

/// The crate version appears in SARIF; snapshots should not change on every release.
fn without_version() -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    let version = format!("\"{}\"", regex_escape(env!("CARGO_PKG_VERSION")));
    settings.add_filter(&version, "\"[VERSION]\"");
    settings
}

fn regex_escape(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let escape = !c.is_ascii_alphanumeric();
            escape.then_some('\\').into_iter().chain(std::iter::once(c))
        })
        .collect()
}

#[test]
fn human_snapshot() {
    insta::assert_snapshot!(rendered(&fixture(), Format::Human));
}

#[test]
fn json_snapshot() {
    insta::assert_snapshot!(rendered(&fixture(), Format::Json));
}

#[test]
fn sarif_snapshot() {
    without_version().bind(|| {
        insta::assert_snapshot!(rendered(&fixture(), Format::Sarif));
    });
}

#[test]
fn junit_snapshot() {
    // The timestamp is the time of the run; the hostname is the machine's.
    let xml = rendered(&fixture(), Format::Junit);
    insta::with_settings!({filters => vec![
        (r#"timestamp="[^"]+""#, r#"timestamp="[time]""#),
        (r#"hostname="[^"]+""#, r#"hostname="[host]""#),
    ]}, {
        insta::assert_snapshot!(xml);
    });
}

#[test]
fn github_snapshot() {
    insta::assert_snapshot!(rendered(&fixture(), Format::Github));
}

#[test]
fn human_output_of_an_empty_run_is_a_passing_summary() {
    let report = Report::default();
    assert_eq!(
        rendered(&report, Format::Human),
        "0 errors, 0 warnings in 0 files (0 documents); verdict: pass (exit 0)\n"
    );
}

#[test]
fn human_snippets_mask_secret_values() {
    let human = rendered(&fixture(), Format::Human);
    assert!(
        !human.contains(SECRET_VALUE),
        "secret value leaked:\n{human}"
    );
    assert!(
        human.contains("password: ***"),
        "masked line missing:\n{human}"
    );
    // The unmasked Deployment snippet is shown as it is.
    assert!(human.contains("replicas: three"));
}

#[test]
fn no_format_prints_secret_values() {
    let report = fixture();
    for format in [
        Format::Human,
        Format::Json,
        Format::Sarif,
        Format::Junit,
        Format::Github,
    ] {
        let text = rendered(&report, format);
        assert!(!text.contains(SECRET_VALUE), "{format:?} leaked the secret");
    }
}

#[test]
fn json_reports_the_verdict_the_findings_decide() {
    let mut report = fixture();
    let json: Value = serde_json::from_str(&rendered(&report, Format::Json)).unwrap();
    assert_eq!(json["version"], 1);
    assert_eq!(json["verdict"], "fail");
    assert_eq!(json["exit_code"], 1);
    assert_eq!(json["stats"]["errors"], 5);
    assert_eq!(json["findings"].as_array().unwrap().len(), 7);

    // An undecidable error anywhere turns the verdict into "undecided" (exit 2).
    report.findings.push(
        Finding::error(Rule::LoadSyntax, "mapping values are not allowed here").in_file("x.yaml"),
    );
    assert_eq!(report.verdict(), Verdict::Undecided);
    let json: Value = serde_json::from_str(&rendered(&report, Format::Json)).unwrap();
    assert_eq!(json["verdict"], "undecided");
    assert_eq!(json["exit_code"], 2);
}

#[test]
fn sarif_has_the_required_structure() {
    let report = fixture();
    let sarif: Value = serde_json::from_str(&rendered(&report, Format::Sarif)).unwrap();
    assert!(sarif["$schema"].as_str().unwrap().contains("sarif"));
    assert_eq!(sarif["version"], "2.1.0");
    let runs = sarif["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1);
    let driver = &runs[0]["tool"]["driver"];
    assert_eq!(driver["name"], "stategate");
    assert_eq!(driver["version"], env!("CARGO_PKG_VERSION"));
    let rules = driver["rules"].as_array().unwrap();
    for rule in rules {
        let id = rule["id"].as_str().unwrap();
        let known = Rule::ALL
            .iter()
            .find(|r| r.code() == id)
            .expect("a known code");
        assert_eq!(rule["shortDescription"]["text"], known.description());
    }

    let results = runs[0]["results"].as_array().unwrap();
    assert_eq!(results.len(), report.findings.len());
    for (result, finding) in results.iter().zip(&report.findings) {
        assert_eq!(result["ruleId"], finding.rule.code());
        let index = result["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rules[index]["id"], finding.rule.code());
        let level = match finding.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Note => "note",
        };
        assert_eq!(result["level"], level);
        assert_eq!(result["message"]["text"], finding.message.as_str());
        match &finding.location {
            None => assert!(result.get("locations").is_none()),
            Some(location) => {
                let physical = &result["locations"][0]["physicalLocation"];
                assert!(physical["artifactLocation"]["uri"].is_string());
                match location.line {
                    Some(line) => assert_eq!(physical["region"]["startLine"], line),
                    None => assert!(physical.get("region").is_none()),
                }
                if let Some(column) = location.column {
                    assert_eq!(physical["region"]["startColumn"], column);
                }
            }
        }
    }
}

/// The runner's side (actions/runner `ActionCommand`): `%25` is undone last so an escaped `%`
/// never decodes twice.
fn unescape(text: &str, property: bool) -> String {
    let mut text = text.replace("%0D", "\r").replace("%0A", "\n");
    if property {
        text = text.replace("%3A", ":").replace("%2C", ",");
    }
    text.replace("%25", "%")
}

#[test]
fn github_escaping_round_trips() {
    let samples = [
        "plain",
        "100% sure",
        "%25 already looks escaped",
        "a: b, c",
        "line one\nline two\r\nthree",
        "::error file=x::injected",
        "%0A%3A%2C",
    ];
    for sample in samples {
        assert_eq!(unescape(&escape_data(sample), false), sample);
        assert_eq!(unescape(&escape_property(sample), true), sample);
        assert!(!escape_data(sample).contains(['\n', '\r']));
        assert!(!escape_property(sample).contains([':', ',', '\n', '\r']));
    }
}

/// Parses `::name key=value,…::message` the way the runner does.
fn parse_command(line: &str) -> (String, BTreeMap<String, String>, String) {
    let rest = line.strip_prefix("::").expect("a workflow command");
    let (head, message) = rest.split_once("::").expect("a message separator");
    let (name, properties) = head.split_once(' ').unwrap_or((head, ""));
    let properties = properties
        .split(',')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (key, value) = p.split_once('=').expect("key=value");
            (key.to_string(), unescape(value, true))
        })
        .collect();
    (name.to_string(), properties, unescape(message, false))
}

#[test]
fn github_commands_carry_file_position_and_message_intact() {
    let report = fixture();
    let output = rendered(&report, Format::Github);
    let commands: Vec<&str> = output.lines().filter(|l| l.starts_with("::")).collect();
    assert_eq!(commands.len(), report.findings.len());

    let odd = commands
        .iter()
        .map(|line| parse_command(line))
        .find(|(_, properties, _)| properties.get("file").is_some_and(|f| f.contains("odd")))
        .expect("the finding with the odd file name");
    assert_eq!(odd.0, "error");
    assert_eq!(odd.1["file"], "apps/odd:name,v1.yaml");
    assert_eq!(odd.1["line"], "3");
    assert_eq!(odd.1["col"], "5");
    assert_eq!(odd.1["title"], "stategate policy/deny");
    assert_eq!(odd.2, "100% of replicas: on spot, nodes\nsecond line");

    let (name, properties, _) = parse_command(commands[4]);
    assert_eq!(name, "error");
    assert!(!properties.contains_key("file"), "no file, no position");
    let (name, _, _) = parse_command(commands[6]);
    assert_eq!(name, "notice");
}

#[test]
fn junit_counts_failures_and_errors_per_file() {
    let mut report = fixture();
    let xml = rendered(&report, Format::Junit);
    // Cases: web.yaml, db-secret.yaml, the odd file, logo.png (note only), refs/heads/main.
    assert!(
        xml.contains(" tests=\"5\" failures=\"4\" errors=\"0\" "),
        "{xml}"
    );
    // One failure element per failing file (the schema allows one), holding all its findings.
    assert_eq!(xml.matches("<failure ").count(), 4);
    assert!(xml.contains("name=\"apps/odd:name,v1.yaml\""));

    report
        .findings
        .push(Finding::error(Rule::LoadSyntax, "bad <yaml> & more").in_file("broken.yaml"));
    let xml = rendered(&report, Format::Junit);
    assert!(
        xml.contains("tests=\"6\" failures=\"4\" errors=\"1\""),
        "{xml}"
    );
    assert!(xml.contains("<error message=\"bad &lt;yaml&gt; &amp; more\" type=\"load/syntax\">"));
}

#[test]
fn human_colour_only_when_asked() {
    let report = fixture();
    let mut coloured = Vec::new();
    let options = RenderOptions {
        color: true,
        ..RenderOptions::default()
    };
    render(&report, Format::Human, &mut coloured, &options).unwrap();
    let coloured = String::from_utf8(coloured).unwrap();
    assert!(
        coloured.contains('\u{1b}'),
        "no ANSI escapes with colour on"
    );
    assert!(!rendered(&report, Format::Human).contains('\u{1b}'));
}

/// The renderers against locations the real loader produces, not hand-made ones.
#[test]
fn human_snippets_point_where_the_loader_locates() {
    use stategate::load::{LoadOptions, load_file};

    let text = format!("{DEPLOYMENT}---\n{}", secret_yaml());
    let loaded = load_file("mixed.yaml", text.as_bytes(), &LoadOptions::default());
    assert_eq!(
        loaded.documents.len(),
        2,
        "loader findings: {:?}",
        loaded.findings
    );
    let deployment = &loaded.documents[0];
    let secret = &loaded.documents[1];
    let report = Report {
        findings: vec![
            Finding::error(Rule::SchemaType, "not an integer")
                .at(deployment.locate("/spec/replicas"))
                .object(deployment.id()),
            Finding::error(Rule::SchemaFormat, "not base64")
                .at(secret.locate("/data/password"))
                .object(secret.id()),
        ],
        sources: BTreeMap::from([("mixed.yaml".to_string(), deployment.source.clone())]),
        ..Report::default()
    };
    let human = rendered(&report, Format::Human);
    assert!(human.contains("[mixed.yaml:7:13]"), "{human}");
    assert!(human.contains(" 7 │   replicas: three"), "{human}");
    assert!(human.contains("password: ***"), "{human}");
    assert!(!human.contains(SECRET_VALUE), "{human}");
}
