//! Output integrity through the real binary: what a change controls (object names, kinds, file
//! paths, policy messages) cannot hide parts of a PR comment, move a terminal's cursor or forge a
//! GitHub workflow command; and a Secret's values reach no output format, however the Secret is
//! written.

mod common;
mod hook_support;

use common::git::TestRepo;
use common::run::{code, stategate, stdout};
use hook_support::{Server, push};

const CHECK_FORMATS: [&str; 5] = ["human", "json", "sarif", "junit", "github"];
const DIFF_FORMATS: [&str; 3] = ["human", "markdown", "json"];

/// No line of `text`, leading blanks aside, is a workflow command other than the ones the github
/// format itself writes (`::error `, `::warning `, `::notice ` with properties), and no line
/// carries the runner's older `##[` syntax.
fn assert_no_forged_command(format: &str, text: &str) {
    for line in text.lines() {
        let trimmed = line.trim_start();
        let ours = format == "github"
            && line == trimmed
            && ["::error ", "::warning ", "::notice "]
                .iter()
                .any(|p| trimmed.starts_with(p));
        assert!(
            !trimmed.starts_with("::") || ours,
            "{format}: forged command line {line:?}"
        );
        assert!(!line.contains("##["), "{format}: `##[` in {line:?}");
    }
}

fn assert_no_control_characters(format: &str, text: &str) {
    let bad: Vec<char> = text
        .chars()
        .filter(|&c| {
            (c.is_control() && c != '\n' && c != '\t')
                || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        })
        .collect();
    assert!(
        bad.is_empty(),
        "{format}: control characters {bad:?} in {text}"
    );
}

/// A ConfigMap whose name carries an ESC sequence, a bidi override and a forged workflow command,
/// with a schema error so that the object is named in a finding.
const HOSTILE_NAME: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: \"web\\e[2J\\u202E\\n::warning::forged ##[error]x\"\ndata:\n  level: 3\n";

/// A policy whose message holds a line break, a forged command and an ESC.
const HOSTILE_POLICY: &str = "package main\n\ndeny contains msg if {\n  input.kind == \"ConfigMap\"\n  msg := \"bad\\n::warning::forged\\u001b[31m red\"\n}\n";

#[test]
fn names_messages_and_paths_cannot_forge_commands_or_reach_the_terminal_raw() {
    let repo = TestRepo::new();
    repo.write("policies/hostile.rego", HOSTILE_POLICY);
    repo.write(
        "apps/keep.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: keep\n",
    );
    repo.commit_all("base");
    repo.write("apps/web.yaml", HOSTILE_NAME);
    // git allows any byte but NUL and `/` in a file name.
    repo.write("apps/x\n::warning::forged\x1b[2J.yaml", HOSTILE_NAME);
    for format in CHECK_FORMATS {
        let out = stategate(&repo, &["check", "--format", format]);
        assert_eq!(code(&out), 1, "{format}: {}", stdout(&out));
        let text = stdout(&out);
        assert!(
            text.contains("forged"),
            "{format}: the text is shown: {text}"
        );
        assert_no_forged_command(format, &text);
        assert_no_control_characters(format, &text);
    }
    repo.commit_all("hostile names");
    for format in DIFF_FORMATS {
        let out = stategate(&repo, &["diff", "--base", "HEAD~1", "--format", format]);
        assert_eq!(code(&out), 0, "{format}: {}", stdout(&out));
        let text = stdout(&out);
        assert_no_forged_command(format, &text);
        assert_no_control_characters(format, &text);
    }
}

#[test]
fn a_kind_holding_an_html_comment_cannot_hide_the_deletion_warning() {
    let repo = TestRepo::new();
    repo.write(
        ".stategate.yaml",
        "environments:\n  prod: [\"clusters/prod/**\"]\n",
    );
    repo.write(
        "clusters/prod/db.yaml",
        "apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: db\n  namespace: prod\n",
    );
    repo.commit_all("prod database");
    repo.remove("clusters/prod/db.yaml");
    repo.write(
        "clusters/prod/a.yaml",
        "apiVersion: v1\nkind: \"Config<!--\"\nmetadata:\n  name: \"a|b`c`<img src=x>\"\n  namespace: prod\n",
    );
    repo.write(
        "clusters/prod/z.yaml",
        "apiVersion: v1\nkind: \"Map-->\"\nmetadata:\n  name: \"</details>[x](http://evil) @admins\"\n  namespace: prod\n",
    );
    repo.commit_all("delete the database, hide it");
    let out = stategate(&repo, &["diff", "--base", "HEAD~1", "--format", "markdown"]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    let md = outside_code_blocks(&stdout(&out));
    // The marker is the only comment; nothing else opens or closes one. (Inside a fenced code
    // block, markup is literal text: that is where the YAML of the objects goes.)
    assert_eq!(md.matches("<!--").count(), 1, "{md}");
    assert_eq!(md.matches("-->").count(), 1, "{md}");
    assert!(md.contains("deletion in protected environment"), "{md}");
    assert!(md.contains("StatefulSet prod/db"), "{md}");
    // Every table row keeps its six cells: pipes in names do not split cells.
    for row in md.lines().filter(|l| l.starts_with('|')) {
        assert_eq!(row.matches('|').count(), 7, "{row}");
    }
    for raw in ["<img", "</details>[", "](http", "@admins"] {
        assert!(!md.contains(raw), "{raw} reached the comment raw: {md}");
    }
    // Every <details> is closed by its own </details>.
    assert_eq!(
        md.matches("<details>").count(),
        md.matches("</details>").count()
    );
}

/// The markdown without its fenced code blocks (a fence is a line of three or more backticks and
/// closes on the same run of backticks), checking that every block is closed.
fn outside_code_blocks(md: &str) -> String {
    let mut out = String::new();
    let mut fence: Option<String> = None;
    for line in md.lines() {
        let run: String = line.chars().take_while(|&c| c == '`').collect();
        match &fence {
            None if run.len() >= 3 => fence = Some(run),
            None => {
                out.push_str(line);
                out.push('\n');
            }
            Some(open) if run.len() >= open.len() && line.trim_end() == run => fence = None,
            Some(_) => {}
        }
    }
    assert!(fence.is_none(), "unclosed code block: {md}");
    out
}

/// Secret values of every spelling; each must reach no output.
const VALUES: [&str; 12] = [
    "c3VwZXJzZWNyZXQx",
    "listed-secret-value",
    "secretlist-item-value",
    "applied-secret-value",
    "anchored-secret-value",
    "tagged-secret-value",
    "quoted-key-secret-value",
    "flow-map-secret-value",
    "supersecret1",
    "12345678",
    "1234567",
    "7654321",
];

fn secret_files(repo: &TestRepo, round: &str) {
    repo.write(
        "apps/list.yaml",
        format!("apiVersion: v1\nkind: List\nitems:\n  - apiVersion: v1\n    kind: Secret\n    metadata:\n      name: listed{round}\n    stringData:\n      token: listed-secret-value\n    data:\n      password: c3VwZXJzZWNyZXQx\n      wrong: 12345678\n"),
    );
    repo.write(
        "apps/secretlist.yaml",
        format!("apiVersion: v1\nkind: SecretList\nitems:\n  - metadata:\n      name: sl{round}\n    stringData:\n      token: secretlist-item-value\n"),
    );
    repo.write(
        "apps/applied.yaml",
        format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: applied{round}\n  annotations:\n    kubectl.kubernetes.io/last-applied-configuration: '{{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"stringData\":{{\"token\":\"applied-secret-value\"}}}}'\nstringData:\n  token: applied-secret-value\n  bad: [1]\n"),
    );
    repo.write(
        "apps/anchored.yaml",
        format!("apiVersion: v1\nkind: !!str Secret\nmetadata:\n  name: anchored{round}\n  labels:\n    x: plain\nstringData:\n  first: &pw anchored-secret-value\n  token: *pw\n  tagged: !!str tagged-secret-value\n  \"quoted\": quoted-key-secret-value\n  n: 1234567\n"),
    );
    repo.write(
        "apps/flow.yaml",
        format!("{{apiVersion: v1, kind: Secret, metadata: {{name: flow{round}}}, stringData: {{token: flow-map-secret-value, n: 7654321}}}}\n"),
    );
}

/// A policy that quotes what it sees: the whole Secret, and its decoded data.
const LEAKY_POLICY: &str = "package main\n\ndeny contains msg if {\n  input.kind == \"Secret\"\n  msg := sprintf(\"saw %v\", [input])\n}\n\ndeny contains msg if {\n  some item in input.items\n  msg := sprintf(\"item %v decoded %v\", [item, base64.decode(item.data.password)])\n}\n";

#[test]
fn secret_values_reach_no_output_whatever_the_spelling() {
    let repo = TestRepo::new();
    repo.write("policies/leaky.rego", LEAKY_POLICY);
    repo.commit_all("base");
    secret_files(&repo, "");
    for format in CHECK_FORMATS {
        let out = stategate(&repo, &["check", "--format", format]);
        assert_eq!(code(&out), 1, "{format}: {}", stdout(&out));
        let text = stdout(&out);
        assert!(text.contains("saw"), "{format}: the policy ran: {text}");
        for value in VALUES {
            assert!(!text.contains(value), "{format} printed {value}: {text}");
        }
    }
    repo.commit_all("secrets");
    // Change every Secret, so the diff shows them all.
    secret_files(&repo, "-2");
    repo.commit_all("secrets again");
    for format in DIFF_FORMATS {
        for base in ["HEAD~1", "HEAD~2"] {
            let out = stategate(&repo, &["diff", "--base", base, "--format", format]);
            let text = stdout(&out);
            assert!(
                text.contains("apps/"),
                "{format}: the diff is shown: {text}"
            );
            for value in VALUES {
                assert!(
                    !text.contains(value),
                    "{format} diff printed {value}: {text}"
                );
            }
        }
    }
}

/// A change policy (it sees every changed file, before and after) and a document policy that
/// quote whole Secrets; the pusher's `remote:` lines must not carry the values.
const QUOTING_CHANGE_POLICY: &str = "package stategate.change\n\ndeny contains msg if {\n  some f in input.files\n  some doc in f.after\n  msg := sprintf(\"%s holds %v\", [f.path, doc])\n}\n";

#[test]
fn secret_values_reach_no_remote_line_of_the_hook() {
    let server = Server::new();
    let work = TestRepo::new();
    work.write("policies/change.rego", QUOTING_CHANGE_POLICY);
    work.write("policies/leaky.rego", LEAKY_POLICY);
    work.write(
        "apps/keep.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: keep\n",
    );
    work.commit_all("seed");
    assert!(push(&work, &server.url(), &["main"], &[]).ok);
    server.install_hook(&[]);
    secret_files(&work, "");
    work.commit_all("secrets");
    let pushed = push(&work, &server.url(), &["main"], &[]);
    assert!(!pushed.ok, "{}", pushed.stderr);
    assert!(
        pushed.says("holds"),
        "the change policy ran: {}",
        pushed.stderr
    );
    assert!(
        pushed.says("saw"),
        "the document policy ran: {}",
        pushed.stderr
    );
    for value in VALUES {
        assert!(
            !pushed.stderr.contains(value),
            "the hook printed {value}: {}",
            pushed.stderr
        );
    }
}
