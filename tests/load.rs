//! The loader: kubectl's reading of YAML, positions, and refusal of hostile input.

use serde_json::json;
use stategate::finding::Rule;
use stategate::load::{LoadOptions, Loaded, load_file};

fn load(text: &str) -> Loaded {
    load_file("m.yaml", text.as_bytes(), &LoadOptions::default())
}

fn rules(loaded: &Loaded) -> Vec<Rule> {
    loaded.findings.iter().map(|f| f.rule).collect()
}

#[test]
fn multi_document_streams_count_empty_documents() {
    let loaded = load("a: 1\n---\n---\n# only a comment\n---\nb: 2\n");
    let found: Vec<_> = loaded
        .documents
        .iter()
        .map(|d| (d.index, d.value.clone()))
        .collect();
    assert_eq!(found, vec![(0, json!({"a": 1})), (3, json!({"b": 2}))]);
    assert!(loaded.findings.is_empty(), "{:?}", loaded.findings);
}

#[test]
fn comment_only_and_empty_files_are_fine() {
    for text in ["", "# nothing here\n", "---\n", "\n\n"] {
        let loaded = load(text);
        assert!(loaded.documents.is_empty(), "{text:?}");
        assert!(
            loaded.findings.is_empty(),
            "{text:?}: {:?}",
            loaded.findings
        );
    }
}

#[test]
fn scalars_resolve_as_kubectl_resolves_them() {
    let loaded = load(
        "mode: 0644\nenabled: yes\nswitch: on\nname: 'yes'\nport: \"8080\"\nexplicit: !!str 0644\nratio: 0.5\nnothing: ~\non: x\n",
    );
    assert_eq!(
        loaded.documents[0].value,
        json!({"mode": 420, "enabled": true, "switch": true, "name": "yes", "port": "8080",
               "explicit": "0644", "ratio": 0.5, "nothing": null, "true": "x"})
    );
}

#[test]
fn ambiguous_scalars_are_warned_about_with_their_line() {
    let loaded = load("a: 1\nport: 0644\nenabled: yes\nquoted: \"on\"\n");
    let warnings: Vec<_> = loaded
        .findings
        .iter()
        .map(|f| (f.rule, f.location.as_ref().and_then(|l| l.line)))
        .collect();
    assert_eq!(
        warnings,
        vec![
            (Rule::LoadAmbiguousScalar, Some(2)),
            (Rule::LoadAmbiguousScalar, Some(3))
        ]
    );
    assert!(loaded.findings[0].message.contains("octal number 420"));
}

#[test]
fn every_node_has_a_position_reachable_by_json_pointer() {
    let text = "apiVersion: apps/v1\nkind: Deployment\nspec:\n  template:\n    spec:\n      containers:\n        - name: web\n          image: nginx\n";
    let loaded = load(text);
    let doc = &loaded.documents[0];
    let image = doc.locate("/spec/template/spec/containers/0/image");
    assert_eq!((image.line, image.column), (Some(8), Some(18)));
    let key = doc.locate_key("/spec/template/spec/containers/0/image");
    assert_eq!((key.line, key.column), (Some(8), Some(11)));
    assert_eq!(
        &text[key.offset.unwrap()..key.offset.unwrap() + key.len],
        "image"
    );
    // A pointer that does not exist falls back to its nearest ancestor.
    let missing = doc.locate("/spec/template/spec/containers/0/resources/limits");
    assert_eq!(missing.line, Some(7));
}

#[test]
fn positions_count_characters_not_bytes() {
    let loaded = load("note: \"ünïcødé\"\nnext: value\n");
    let next = loaded.documents[0].locate("/next");
    assert_eq!((next.line, next.column), (Some(2), Some(7)));
}

#[test]
fn json_files_load_with_positions() {
    let text = "{\n  \"kind\": \"ConfigMap\",\n  \"data\": {\"a\": \"0644\", \"b\": 1}\n}\n";
    let loaded = load_file("cm.json", text.as_bytes(), &LoadOptions::default());
    let doc = &loaded.documents[0];
    assert_eq!(
        doc.value,
        json!({"kind": "ConfigMap", "data": {"a": "0644", "b": 1}})
    );
    assert_eq!(doc.locate("/data/b").line, Some(3));
}

#[test]
fn crlf_files_have_the_same_lines() {
    let loaded = load("a: 1\r\nb:\r\n  c: 2\r\n");
    assert_eq!(loaded.documents[0].value, json!({"a": 1, "b": {"c": 2}}));
    assert_eq!(loaded.documents[0].locate("/b/c").line, Some(3));
}

#[test]
fn merge_keys_merge_and_explicit_keys_win() {
    let loaded = load("base: &b {x: 1, w: 2}\nchild:\n  <<: *b\n  w: 3\n");
    assert_eq!(loaded.documents[0].value["child"], json!({"w": 3, "x": 1}));
}

#[test]
fn duplicate_keys_are_reported_at_the_second_key() {
    let loaded = load("metadata:\n  name: a\n  name: b\n");
    assert_eq!(rules(&loaded), vec![Rule::LoadDuplicateKey]);
    assert_eq!(loaded.findings[0].location.as_ref().unwrap().line, Some(3));
    assert!(
        loaded.findings[0]
            .message
            .contains("first defined on line 2")
    );
    // kubectl keeps the last one.
    assert_eq!(loaded.documents[0].value["metadata"]["name"], json!("b"));
}

#[test]
fn malformed_yaml_is_a_located_syntax_error() {
    let loaded = load("a: 1\nb:\n  - x\n - y\nc: [\n");
    assert_eq!(rules(&loaded), vec![Rule::LoadSyntax]);
    let location = loaded.findings[0].location.as_ref().unwrap();
    assert_eq!(location.file, "m.yaml");
    assert_eq!(location.line, Some(4));
    assert!(Rule::LoadSyntax.is_undecidable());
}

#[test]
fn a_billion_laughs_is_refused_early() {
    let mut text = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    let names = ["b", "c", "d", "e", "f", "g", "h", "i"];
    let mut prev = "a";
    for name in names {
        text.push_str(&format!("{name}: &{name} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"));
        prev = name;
    }
    let loaded = load(&text);
    assert_eq!(rules(&loaded), vec![Rule::LoadAliasLimit]);
    assert!(loaded.findings[0].location.as_ref().unwrap().line.is_some());
    assert!(loaded.documents.is_empty());
}

#[test]
fn modest_alias_use_is_fine() {
    let loaded = load("x: &x {a: 1}\nw: *x\nz: *x\n");
    assert!(loaded.findings.is_empty());
    assert_eq!(loaded.documents[0].value["z"], json!({"a": 1}));
}

#[test]
fn files_over_the_size_cap_are_not_read() {
    let big = "a: b\n".repeat(11 * 1024 * 1024 / 5);
    let loaded = load(&big);
    assert_eq!(rules(&loaded), vec![Rule::LoadTooLarge]);
    let small_cap = LoadOptions {
        max_file_size: 10,
        ..LoadOptions::default()
    };
    let loaded = load_file("m.yaml", b"a: 1\nb: 2\nc: 3\n", &small_cap);
    assert_eq!(rules(&loaded), vec![Rule::LoadTooLarge]);
}

#[test]
fn invalid_utf8_is_located() {
    let loaded = load_file("m.yaml", b"a: 1\nb: caf\xE9\n", &LoadOptions::default());
    assert_eq!(rules(&loaded), vec![Rule::LoadInvalidUtf8]);
    let location = loaded.findings[0].location.as_ref().unwrap();
    assert_eq!((location.line, location.column), (Some(2), Some(7)));
}

#[test]
fn absurd_nesting_is_refused_not_overflowing_the_stack() {
    let text = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let loaded = load(&text);
    assert_eq!(rules(&loaded), vec![Rule::LoadSyntax]);
    let message = &loaded.findings[0].message;
    assert!(
        message.contains("nesting") || message.contains("recursion"),
        "{message}"
    );
}

#[test]
fn a_byte_order_mark_is_ignored() {
    let loaded = load_file("m.yaml", b"\xEF\xBB\xBFa: 1\n", &LoadOptions::default());
    assert_eq!(loaded.documents[0].value, json!({"a": 1}));
}

#[test]
fn single_letter_y_and_n_are_booleans_too() {
    // go-yaml v2 reads `y`/`n` as booleans; a key `y:` becomes "true" in the JSON kubectl sends.
    let loaded = load("y: n\n");
    assert_eq!(loaded.documents[0].value, json!({"true": false}));
    assert_eq!(
        rules(&loaded),
        vec![Rule::LoadAmbiguousScalar, Rule::LoadAmbiguousScalar]
    );
}

#[test]
fn tags_other_than_core_keep_the_text() {
    let loaded = load("a: !Ref 0644\nb: !!int \"12\"\n");
    assert_eq!(loaded.documents[0].value, json!({"a": "0644", "b": 12}));
}

#[test]
fn under_indented_quoted_continuations_load_as_go_yaml_loads_them() {
    // From gatekeeper-library's httpsonly template: the continuation line sits at the key's own
    // indentation. The spec says no; libyaml (so kubectl) says yes, and so do we.
    let text =
        "a:\n  b:\n    description: \"When set\n    to false.\"\n    other: 'it''s\n    fine'\n";
    let loaded = load(text);
    assert!(loaded.findings.is_empty(), "{:?}", loaded.findings);
    assert_eq!(
        loaded.documents[0].value,
        json!({"a": {"b": {"description": "When set to false.", "other": "it's fine"}}})
    );
    assert_eq!(loaded.documents[0].locate("/a/b/other").line, Some(5));
}
