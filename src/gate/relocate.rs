//! Findings on rendered objects, at the line a human edits.

use std::collections::HashMap;

use crate::finding::{Finding, Location, Rule};
use crate::load::{Document, LoadOptions, load_manifest};
use crate::render::graph::split;
use crate::render::patches::patch_files;
use crate::tree::Tree;

use super::RenderedContext;
use super::pre_existing::FindingKey;

/// Findings on rendered objects, moved to the file and line a human edits: the resource file
/// (kustomize's origin annotation) where the offending value is as rendered there, else the
/// overlay's kustomization, whose fields or patches set it. The same rule on the same value found
/// through the source document and the rendered object is one finding, naming both.
pub(super) fn at_sources(
    findings: Vec<Finding>,
    documents: &[Document],
    contexts: &HashMap<String, RenderedContext>,
    tree: &dyn Tree,
    options: &LoadOptions,
) -> Vec<Finding> {
    if contexts.is_empty() {
        return findings;
    }
    let rendered: HashMap<&str, &Document> = documents
        .iter()
        .filter(|d| contexts.contains_key(d.path()))
        .map(|d| (d.path(), d))
        .collect();
    let mut sources: HashMap<String, Vec<Document>> = HashMap::new();
    let mut out: Vec<Finding> = Vec::with_capacity(findings.len());
    let mut seen: HashMap<(Rule, String, String, Option<u32>), usize> = HashMap::new();
    let none = HashMap::new();
    // Source documents' findings first, so a rendered duplicate folds into them.
    let (from_rendered, direct): (Vec<Finding>, Vec<Finding>) =
        findings.into_iter().partition(|f| {
            f.location
                .as_ref()
                .is_some_and(|l| contexts.contains_key(l.file.as_str()))
        });
    for finding in direct.into_iter().chain(from_rendered) {
        let finding = match finding.location.as_ref().map(|l| l.file.clone()) {
            Some(shown) if contexts.contains_key(shown.as_str()) => {
                let context = &contexts[shown.as_str()];
                let doc = rendered.get(shown.as_str()).copied();
                let mut docs_of = |path: &str| -> Vec<Document> {
                    sources
                        .entry(path.to_owned())
                        .or_insert_with(|| {
                            tree.read(path)
                                .map(|bytes| load_manifest(path, &bytes, options).documents)
                                .unwrap_or_default()
                        })
                        .clone()
                };
                let field = finding.field.as_deref();
                // The resource file first, then the overlay's patches: the first that holds the
                // value as rendered wrote it.
                let files = context
                    .origin
                    .iter()
                    .cloned()
                    .chain(patch_files(tree, split(&context.file).0));
                let place = doc.and_then(|doc| {
                    files
                        .into_iter()
                        .find_map(|file| source_location(&docs_of(&file), doc, field))
                });
                let location = place.unwrap_or_else(|| Location::file(context.file.clone()));
                finding.at(location).with_meta("rendered", shown)
            }
            _ => finding,
        };
        let at = finding
            .location
            .as_ref()
            .map(|l| (l.file.clone(), l.line))
            .unwrap_or_default();
        // Not the object: kustomize may have set its namespace or prefixed its name.
        let FindingKey { rule, detail, .. } = FindingKey::of(&finding, &none);
        let key = (rule, detail, at.0, at.1);
        match seen.get(&key) {
            Some(&kept) => {
                if let Some(shown) = finding.metadata.get("rendered").cloned() {
                    out[kept].metadata.insert("rendered".to_owned(), shown);
                }
            }
            None => {
                seen.insert(key, out.len());
                out.push(finding);
            }
        }
    }
    out
}

/// Where `field` of the rendered `doc` is written in its origin file: the same object there (kind
/// and name) holding the same value at the same field. `None` when the file does not hold it as
/// rendered: a kustomization field or a patch set it.
fn source_location(
    sources: &[Document],
    rendered: &Document,
    field: Option<&str>,
) -> Option<Location> {
    let same_object = |d: &&Document| {
        d.kind() == rendered.kind()
            && d.value.pointer("/metadata/name") == rendered.value.pointer("/metadata/name")
    };
    let source = sources.iter().find(same_object)?;
    let pointer = field.unwrap_or("");
    if pointer.is_empty() {
        return Some(source.locate(""));
    }
    match (
        source.value.pointer(pointer),
        rendered.value.pointer(pointer),
    ) {
        (Some(a), Some(b)) if a == b => Some(source.locate(pointer)),
        _ => None,
    }
}
