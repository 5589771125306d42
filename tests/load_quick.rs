//! The quick reader of block-style YAML (`src/load/yaml/quick.rs`) against the full parser: what
//! it reads must come out as the full parser reads it (values, document indexes, document spans,
//! no findings), and what it cannot read the same way it must leave to the full parser.

mod common;

use common::quick::{Reading, compare};
use stategate::load::LoadOptions;

/// Inputs the quick reader takes, each read as the full parser reads it.
const READ_QUICKLY: &[&str] = &[
    "a: 1\n",
    "a: 1",
    "  a: 1\n  b: 2\n",
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  k: v\n",
    "a:\n  b:\n    c: d\n  e: f\ng: h\n",
    "a:\n- 1\n- two\n- 3.5\n",
    "a:\n  - 1\n  - 2\nb: 3\n",
    "- a\n- b: c\n  d: e\n-\n  - q\n",
    "spec:\n  containers:\n  - name: web\n    image: nginx:1.27\n    ports:\n    - containerPort: 80\n      protocol: TCP\n    args: []\n    resources: {}\n",
    "a: 1\n---\nb: 2\n",
    "---\na: 1\n",
    "# head\n---\n# doc\na: 1\n",
    "--- # Source: chart/templates/x.yaml\n  a: 1\n\n",
    "a: 1\n---\n---\nb: 2\n---\n",
    "---\n---\n",
    "a: 'it''s' # comment\nb: \"tab\\there \\\"q\\\" \\\\\"\nc: ''\nd: \"\"\n",
    "mode: 0644\ndefaultMode: 0755\n",
    "a: true\nb: null\nc: ~\nd:\ne: 1e3\nf: -12\ng: 0x1F\nh: .5\ni: 1_000\n",
    "1: one\ntrue: t\n",
    "a: x #not a comment\nb: x#y\nc: http://x:80/y\nd: -1\ne: --flag=1\n",
    "description: APIVersion defines the versioned schema\n  of this representation\n\n  of an object.\n   Deeper.\nnext: 1\n",
    "- first line\n  second line\n- b\n",
    "a: |\n  line one\n\n    indented\n  # kept\nb: |-\n  stripped\nc: 1\n",
    "a:\n  b: |\n    x\n  # a comment less indented\n  c: d\n",
    "- |\n  in a list\n- x\n",
    "a: |\n\n  after a blank\n",
    "a: x\n# comment\nb: z\n",
    "a: x\n\n\n# trailing\n",
    "a: {}\nb: []\nc: {} # empty\n",
    "a: b\n  - c\n  'd'\n  [e] {f}\n",
    "a: x\n - z\n",
    "a: Kind ('Secret',\n  'ConfigMap').\n",
    "a: >\n  folded\n",
    "a: >-\n  one\n  two\n\n  three\nb: 1\n",
    "- >\n  in a list\n- x\n",
    "a: [1, \"two\", 'three', {b: c}, [], x y]\n",
    "a: { }\nb: [ ]\nc: {b: 1, c: [x, z]} # comment\n",
    "a: 'one\n  two\n\n  three'\nb: 1\n",
    "a: \"one\n  two \" # c\n",
    "- 'it''s\n  long'\n",
    "a: é\n",
    "# — a comment\na: 1\n---\nb: ü\n---\nc: 'ö'\n",
];

/// Inputs the quick reader leaves to the full parser: syntax errors, what the full parser reports
/// (ambiguous scalars, duplicate and merge keys), and constructs it does not read.
const LEFT_TO_FULL_PARSER: &[&str] = &[
    "a: b: c\n",
    "a: x\n  b: c\n",
    "a:\n  - x\n - y\n",
    "\"a\": 1\n",
    "a: 1\na: 2\n",
    "<<: {a: 1}\n",
    "a: &x 1\nb: *x\n",
    "a: !!str 1\n",
    "a: |+\n  keep\n\n",
    "a: |2\n   x\n",
    "a:\tb\n",
    "a: b\r\n",
    "a: 2001-12-14\n",
    "a: .nan\n",
    "~: x\n",
    "1.5: x\n",
    "y: 1\n",
    "a: x\n...\nb: y\n",
    "--- a: 1\n",
    "%YAML 1.1\n---\na: 1\n",
    "scalar only\n",
    "a:\n  - x\n  y: z\n",
    "a: |\n  x\n     \n",
    "a: |\n  no final break",
    "a: \"\\u00e9\"\n",
    "a:\n  b\n",
    "key:value\n",
    "- - x\n",
    "a: 1\n...\n",
    "a: yes\n",
    "a: 0644\n",
    "a: x\nb: y\n",
    "a: >\n  x\n    y\n",
    "a: >\n\n  x\n",
    "a: [1, 2,]\n",
    "a: [a: b]\n",
    "a: [1,\n  2]\n",
    "a: {\"k\": 1}\n",
    "a: [x #c]\n",
    "a: 'x\nb: y'\n",
    "a: \"x\\\n  y\"\n",
    "a: \"\u{85}\"\n",
    "a: [\"\u{2028}\"]\n",
    "a: 'x\n",
];

#[test]
fn tricky_inputs_are_read_as_the_full_parser_reads_them_or_left_to_it() {
    let options = LoadOptions::default();
    let mut wrong = Vec::new();
    let quick = READ_QUICKLY.iter().map(|input| (input, Reading::Same));
    let full = LEFT_TO_FULL_PARSER
        .iter()
        .map(|input| (input, Reading::Declined));
    for (input, expected) in quick.chain(full) {
        let reading = compare("t.yaml", input.as_bytes(), &options);
        if reading != expected {
            wrong.push(format!("{input:?}: {reading:?}, expected {expected:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Every YAML file of the corpus: none may be read otherwise than the full parser reads it, and
/// most of the bytes are read quickly (else the quick reader has quietly stopped working).
#[test]
fn every_corpus_yaml_file_is_read_as_the_full_parser_reads_it_or_left_to_it() {
    let Some(corpus) = common::corpus() else {
        return;
    };
    let mut files = Vec::new();
    common::files_with_extension(&corpus, &["yaml", "yml"], &mut files);
    files.sort();
    let options = LoadOptions::default();
    let (mut bytes_total, mut bytes_quick, mut quick) = (0, 0, 0);
    let mut differs = Vec::new();
    for path in &files {
        let bytes = std::fs::read(path).unwrap();
        bytes_total += bytes.len();
        match compare("f.yaml", &bytes, &options) {
            Reading::Declined => {}
            Reading::Same => {
                quick += 1;
                bytes_quick += bytes.len();
            }
            Reading::Differs(why) => differs.push(format!("{}: {why}", path.display())),
        }
    }
    eprintln!(
        "{quick} of {} files, {bytes_quick} of {bytes_total} bytes read quickly",
        files.len()
    );
    assert!(differs.is_empty(), "{}", differs.join("\n"));
    assert!(
        bytes_quick * 2 > bytes_total,
        "only {bytes_quick} of {bytes_total} bytes read quickly"
    );
}
