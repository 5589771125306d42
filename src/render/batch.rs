//! Many kustomize roots rendered by one kustomize process. Each `kubectl kustomize` run costs
//! about 0.2 s of CPU before it reads a file (loading the binary and its OpenAPI schema), and a
//! change to a base shared by twenty overlays would pay it forty times; rendered together, the
//! twenty overlays of one side cost about what one does.
//!
//! In the temporary checkout, a kustomization lists the roots as resources, and each root gets a
//! transformer (appended to its own copy, after everything it declares) that marks its objects'
//! metadata with the root's name. The objects are split by that mark, which is then removed, so
//! each root's objects are what rendering it alone gives: kustomize builds a listed kustomization
//! completely before its parent, and the parent adds nothing. Kustomize refuses two roots that
//! render an object with the same id, and any root that fails fails all: then `None`, and the
//! caller renders each root alone, which gives each its own verdict. A root known to fail before
//! kustomize runs (it names a file that is not there) is never put in a batch.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{Checkout, KustomizeGraph, RenderOutput, Renderer};
use crate::tree::is_within;

/// The directory of the listing kustomization, beside the repository's files in the checkout.
const BATCH_DIR: &str = ".stategate-render-batch";
/// The annotation that carries an object's root through the shared render.
const MARK: &str = "stategate.internal/render-root";

/// Whether `root` may be rendered in a batch: it has a kustomization on this side, the static
/// guard lets it render, and it sets nothing that behaves differently under a parent (its own
/// transformers list, which the mark is added to; output order; an OpenAPI schema; build
/// metadata beyond the origins every render asks for).
pub fn batchable(checkout: &Checkout, graph: &KustomizeGraph, root: &str) -> bool {
    let Some(k) = graph.dirs.get(root) else {
        return false;
    };
    if !reads_resolve(checkout, graph, root) {
        return false;
    }
    let Ok(text) = std::fs::read_to_string(checkout.root().join(&k.file)) else {
        return false;
    };
    let own_metadata = text.matches("buildMetadata").count() > usize::from(text.contains(ORIGINS));
    !(text.trim_start().starts_with('{')
        || own_metadata
        || ["transformers", "sortOptions", "openapi", "\n---"]
            .iter()
            .any(|key| text.contains(key)))
}

/// Whether kustomize may read everything the root's kustomizations name: the static guard
/// refuses none of it, and every file is in the checkout, in or below the kustomization that
/// names it (kustomize's default load restrictor). A root that fails this fails on its own, and
/// in a batch it would fail every root with it, so it is rendered alone from the start (in the
/// xunholy corpus, 16 of 58 roots name a generator file the repository does not hold).
fn reads_resolve(checkout: &Checkout, graph: &KustomizeGraph, root: &str) -> bool {
    let files = checkout.root();
    graph.closure(root).iter().all(|dir| {
        let Some(k) = graph.dirs.get(dir) else {
            return true;
        };
        k.refused.is_empty()
            && k.refs.iter().all(|read| {
                graph.dirs.contains_key(read) || files.join(read).is_file() && is_within(read, dir)
            })
    })
}

/// What [`Checkout::annotate_origins`] appends.
const ORIGINS: &str = "buildMetadata: [originAnnotations]";

/// Render `roots` (each [`batchable`]) with one run of `command`, in `roots` order; `None` when
/// that cannot be done (see the module's comment). The roots' kustomizations in the checkout are
/// as they were afterwards either way.
pub fn render(
    checkout: &Checkout,
    graph: &KustomizeGraph,
    roots: &[String],
    command: &[String],
    side: &str,
) -> Option<Vec<RenderOutput>> {
    if roots.len() < 2 || graph.dirs.contains_key(BATCH_DIR) {
        return None;
    }
    let root_dir = checkout.root();
    if root_dir.join(BATCH_DIR).exists() {
        return None;
    }
    let mut originals: Vec<(String, String)> = Vec::new();
    let rendered = (|| {
        for root in roots {
            let file = graph.dirs.get(root)?.file.clone();
            let text = std::fs::read_to_string(root_dir.join(&file)).ok()?;
            let marked = format!(
                "{text}{}{}",
                if text.ends_with('\n') { "" } else { "\n" },
                mark_transformer(root)
            );
            checkout.sandbox.write_file(&file, marked.as_bytes()).ok()?;
            originals.push((file, text));
        }
        let listing: String = roots
            .iter()
            .map(|root| {
                let path = if root.is_empty() {
                    "..".to_owned()
                } else {
                    format!("../{root}")
                };
                format!("  - {}\n", Value::from(path))
            })
            .collect();
        let kustomization = format!("resources:\n{listing}{ORIGINS}\n");
        let file = format!("{BATCH_DIR}/kustomization.yaml");
        checkout
            .sandbox
            .write_file(&file, kustomization.as_bytes())
            .ok()?;
        let output = super::run(
            checkout,
            command,
            &[BATCH_DIR],
            BATCH_DIR,
            &file,
            side,
            Renderer::Kustomize,
        );
        if !output.findings.is_empty() {
            return None;
        }
        split(output, roots)
    })();
    for (file, text) in originals {
        // A root rendered alone after this must not carry the mark.
        let _ = checkout.sandbox.write_file(&file, text.as_bytes());
    }
    rendered
}

/// An inline kustomize transformer that writes `MARK: root` into each object's own metadata
/// (not into pod templates, as `commonAnnotations` would).
fn mark_transformer(root: &str) -> String {
    format!(
        "transformers:\n  - |-\n    apiVersion: builtin\n    kind: AnnotationsTransformer\n    \
         metadata:\n      name: stategate-render-root\n    annotations:\n      {MARK}: {}\n    \
         fieldSpecs:\n      - path: metadata/annotations\n        create: true\n",
        Value::from(root)
    )
}

/// The batch's objects, each given back to the root its mark names. `None` if one is unmarked.
fn split(output: RenderOutput, roots: &[String]) -> Option<Vec<RenderOutput>> {
    let index: BTreeMap<&str, usize> = roots
        .iter()
        .enumerate()
        .map(|(i, r)| (r.as_str(), i))
        .collect();
    let mut outputs: Vec<RenderOutput> = roots.iter().map(|_| RenderOutput::default()).collect();
    for mut object in output.objects {
        let root = take_mark(&mut object.value)?;
        let slot = *index.get(root.as_str())?;
        object.dir = roots[slot].clone();
        outputs[slot].objects.push(object);
    }
    Some(outputs)
}

/// Remove the mark (and the annotations map, if the mark was all it held) and return its root.
fn take_mark(value: &mut Value) -> Option<String> {
    let metadata = value.get_mut("metadata")?.as_object_mut()?;
    let annotations = metadata.get_mut("annotations")?.as_object_mut()?;
    let root = annotations.remove(MARK)?;
    if annotations.is_empty() {
        metadata.remove("annotations");
    }
    root.as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mark_is_taken_off_with_the_map_it_alone_filled() {
        let mut alone = serde_json::json!({"metadata": {"name": "a", "annotations": {MARK: "x"}}});
        assert_eq!(take_mark(&mut alone).as_deref(), Some("x"));
        assert_eq!(alone, serde_json::json!({"metadata": {"name": "a"}}));
        let mut beside = serde_json::json!({"metadata": {"annotations": {MARK: "y", "k": "v"}}});
        assert_eq!(take_mark(&mut beside).as_deref(), Some("y"));
        assert_eq!(
            beside,
            serde_json::json!({"metadata": {"annotations": {"k": "v"}}})
        );
        let mut unmarked = serde_json::json!({"metadata": {"name": "a"}});
        assert_eq!(take_mark(&mut unmarked), None);
    }
}
