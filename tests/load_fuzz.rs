//! A bounded, deterministic fuzz of the loader over mutated corpus files: a fixed seed, a fixed
//! number of cases, so CI runs the same inputs every time in a few seconds. Every input must load
//! without a panic, and every finding must be located in the file it is about.

mod common;

use common::quick::Reading;
use stategate::load::{LoadOptions, load_manifest};

/// Inputs per run; each is one corpus file with a few mutations.
const CASES: usize = 5000;
const SEED: u64 = 0x5747_4154_4547_4154;

/// xorshift64*: enough randomness for mutations, and the same sequence everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Bytes that make YAML readers disagree or fail: structure, tags, anchors, encodings.
const SPLICES: &[&[u8]] = &[
    b"<<: *a\n",
    b"&a ",
    b"*a",
    b"!!binary ",
    b"!foo ",
    b"? [a, b]\n: x\n",
    b"~: x\n",
    b".NaN",
    b"{{ x }}",
    b"---\n",
    b"...\n",
    b"\t",
    b"\0",
    b"\xFF\xFE",
    b"\xEF\xBB\xBF",
    b"\"",
    b"'",
    b"- ",
    b": ",
    b"\n  ",
    b"items:\n- kind: Pod\n",
    b"kind: List\n",
    b"1e3: x\n",
    b"\xC2\x85",
    b"%YAML 1.1\n",
    b"!!null x",
    b"\"<<\": x\n",
    b"2001-12-14",
    b"|\n",
    b">-\n",
    b"#",
];

fn mutate(rng: &mut Rng, bytes: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(bytes.len() + 1);
        match rng.below(5) {
            0 if !bytes.is_empty() => {
                let at = at.min(bytes.len() - 1);
                bytes[at] = rng.next() as u8;
            }
            1 if !bytes.is_empty() => {
                let end = (at + rng.below(32)).min(bytes.len());
                bytes.drain(at.min(end)..end);
            }
            2 => {
                let piece = SPLICES[rng.below(SPLICES.len())];
                bytes.splice(at..at, piece.iter().copied());
            }
            3 if !bytes.is_empty() => {
                // Duplicate a run: repeated keys, nested structure.
                let start = rng.below(bytes.len());
                let end = (start + rng.below(64)).min(bytes.len());
                let run = bytes[start..end].to_vec();
                bytes.splice(at..at, run);
            }
            _ => bytes.truncate(at),
        }
    }
}

#[test]
fn mutated_corpus_files_load_without_panic_and_every_finding_is_located() {
    let Some(corpus) = common::corpus() else {
        return;
    };
    let files = common::manifest_files(&corpus.join("gitops-repos"));
    assert!(!files.is_empty(), "no manifests in the corpus");
    let options = LoadOptions {
        alias_budget: 10_000,
        ..LoadOptions::default()
    };
    let mut rng = Rng(SEED);
    let mut findings = 0;
    for case in 0..CASES {
        let path = &files[rng.below(files.len())];
        let mut bytes = std::fs::read(path).unwrap();
        bytes.truncate(16 * 1024);
        mutate(&mut rng, &mut bytes);
        let name = format!("case{case}.yaml");
        let loaded = std::panic::catch_unwind(|| load_manifest(&name, &bytes, &options))
            .unwrap_or_else(|_| {
                panic!(
                    "case {case} from {} panicked; input: {:?}",
                    path.display(),
                    String::from_utf8_lossy(&bytes)
                )
            });
        for finding in &loaded.findings {
            findings += 1;
            let location = finding
                .location
                .as_ref()
                .unwrap_or_else(|| panic!("case {case}: finding without a location: {finding:?}"));
            assert_eq!(location.file, name, "case {case}: {finding:?}");
            if finding.rule.is_undecidable() || finding.rule.code().starts_with("load/") {
                assert!(
                    location.line.is_some() || finding.rule.code() == "load/too-large",
                    "case {case}: a load finding without a line: {finding:?}"
                );
            }
        }
        for doc in &loaded.documents {
            // Every document can be located, items of lists included.
            assert_eq!(doc.locate("").file, name);
        }
    }
    eprintln!("{CASES} mutated files, {findings} findings, all located");
}

/// Bytes that move a block-style file across what the quick reader takes: indentation, quotes,
/// flow brackets, block scalar headers, comments, markers, non-ASCII.
const QUICK_SPLICES: &[&[u8]] = &[
    b"\n",
    b" ",
    b"  ",
    b"'",
    b"''",
    b"\"",
    b"\\",
    b"\\n",
    b"{",
    b"}",
    b"[",
    b"]",
    b", ",
    b"{}",
    b"[a, 'b']",
    b"|\n",
    b"|-\n",
    b">\n",
    b">-\n",
    b": |\n  x\n",
    b"- ",
    b"\n- ",
    b"\n  - ",
    b"#",
    b" #",
    b"---\n",
    b"--- # c\n",
    b"\xC3\xA9",
    b"\xE2\x80\xA8",
    b":",
    b": ",
    b"\n\n",
];

/// Inputs of the comparison: each is cheap, and the differences it looks for are rare.
const QUICK_CASES: usize = 50_000;

/// A mutated file the quick reader takes is read as the full parser reads it: the same documents,
/// indexes and spans, and no file the full parser reports anything about.
#[test]
fn mutated_corpus_files_the_quick_reader_takes_read_as_the_full_parser_reads_them() {
    let Some(corpus) = common::corpus() else {
        return;
    };
    let files = common::manifest_files(&corpus.join("gitops-repos"));
    let options = LoadOptions::default();
    let mut rng = Rng(SEED ^ 0x51_5549_434B);
    let mut quick = 0;
    for case in 0..QUICK_CASES {
        let path = &files[rng.below(files.len())];
        let mut bytes = std::fs::read(path).unwrap();
        bytes.truncate(16 * 1024);
        for _ in 0..1 + rng.below(2) {
            let at = rng.below(bytes.len() + 1);
            let piece = QUICK_SPLICES[rng.below(QUICK_SPLICES.len())];
            bytes.splice(at..at, piece.iter().copied());
        }
        match common::quick::compare("case.yaml", &bytes, &options) {
            Reading::Declined => {}
            Reading::Same => quick += 1,
            Reading::Differs(why) => panic!(
                "case {case} from {}: {why}; input: {:?}",
                path.display(),
                String::from_utf8_lossy(&bytes)
            ),
        }
    }
    eprintln!(
        "{QUICK_CASES} mutated files, {quick} read quickly, each as the full parser reads it"
    );
    // Else the comparison compared nothing.
    assert!(
        quick * 5 > QUICK_CASES,
        "only {quick} of {QUICK_CASES} read quickly"
    );
}
