//! The quick reader of block-style YAML held to the full parser (`src/load/yaml/quick.rs`).

use stategate::load::{LoadOptions, Loaded, load_file_in_full, load_file_quickly};

/// How the quick reader took a file.
#[derive(Debug, PartialEq, Eq)]
pub enum Reading {
    /// Left to the full parser.
    Declined,
    /// Read to the full parser's documents, indexes and spans, with no findings.
    Same,
    /// Read otherwise: the first difference.
    Differs(String),
}

pub fn compare(path: &str, bytes: &[u8], options: &LoadOptions) -> Reading {
    let Some(quick) = load_file_quickly(path, bytes, options) else {
        return Reading::Declined;
    };
    let full = load_file_in_full(path, bytes, options);
    match difference(&quick, &full) {
        None => Reading::Same,
        Some(why) => Reading::Differs(why),
    }
}

fn difference(quick: &Loaded, full: &Loaded) -> Option<String> {
    if !full.findings.is_empty() {
        return Some(format!(
            "the full parser reports {:?}",
            full.findings
                .iter()
                .map(|f| f.message.as_str())
                .collect::<Vec<_>>()
        ));
    }
    if quick.documents.len() != full.documents.len() {
        return Some(format!(
            "{} documents, not {}",
            quick.documents.len(),
            full.documents.len()
        ));
    }
    for (q, f) in quick.documents.iter().zip(&full.documents) {
        if (q.index, q.item) != (f.index, f.item) {
            return Some(format!("document {} read as index {}", f.index, q.index));
        }
        if q.value != f.value {
            return Some(format!(
                "document {}: {} instead of {}",
                f.index, q.value, f.value
            ));
        }
        if q.positions != f.positions {
            return Some(format!(
                "document {}: at {:?} instead of {:?}",
                f.index,
                q.positions.root(),
                f.positions.root()
            ));
        }
    }
    None
}
