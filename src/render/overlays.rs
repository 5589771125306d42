//! The `render.kustomize` overlays a change touches, rendered at both sides of the change. The head's
//! objects are checked like files; an overlay whose objects differ between base and head is changed
//! by the change, for its environment and its approval rules, even when none of its own files is.

use std::collections::{BTreeMap, BTreeSet};

use rayon::prelude::*;
use serde_json::Value;

use crate::finding::{Finding, Rule, Severity};
use crate::object::ObjectId;
use crate::tree::{Content, Tree, Unreadable, is_within};

use super::cache::{Key, RenderCache};
use super::{Checkout, KustomizeGraph, RenderOutput, batch, render_kustomize};

/// The head tree with some files replaced or removed: the base side of a change, built from the
/// change's own before-images so no second revision has to be opened.
pub struct PatchedTree<'t> {
    head: &'t dyn Tree,
    /// Path → content at the other side (`None`: absent there), read when asked for.
    files: BTreeMap<String, Option<Content>>,
    name: String,
}

impl<'t> PatchedTree<'t> {
    pub fn new(
        head: &'t dyn Tree,
        files: BTreeMap<String, Option<Content>>,
        name: impl Into<String>,
    ) -> Self {
        PatchedTree {
            head,
            files,
            name: name.into(),
        }
    }
}

impl Tree for PatchedTree<'_> {
    fn read_checked(&self, path: &str) -> Result<Option<Vec<u8>>, Unreadable> {
        match self.files.get(path) {
            Some(content) => content.as_ref().map(|c| c.read(path)).transpose(),
            None => self.head.read_checked(path),
        }
    }

    fn files_under(&self, prefix: &str) -> Vec<String> {
        let under = |p: &str| is_within(p, prefix.trim_end_matches('/'));
        let mut all: BTreeSet<String> = self
            .head
            .files_under(prefix)
            .into_iter()
            .filter(|p| !self.files.contains_key(p))
            .collect();
        all.extend(
            self.files
                .iter()
                .filter(|(p, content)| content.is_some() && under(p))
                .map(|(p, _)| p.clone()),
        );
        all.into_iter().collect()
    }

    fn blobs_under_where(
        &self,
        prefix: &str,
        keep: &(dyn Fn(&str, Option<git2::Oid>) -> bool + Sync),
    ) -> Vec<(String, Option<git2::Oid>)> {
        let under = |p: &str| is_within(p, prefix.trim_end_matches('/'));
        let mut all = self
            .head
            .blobs_under_where(prefix, &|p, id| !self.files.contains_key(p) && keep(p, id));
        // A replaced file is read from its content, not looked up.
        all.extend(
            self.files
                .iter()
                .filter(|(p, content)| content.is_some() && under(p) && keep(p, None))
                .map(|(p, _)| (p.clone(), None)),
        );
        all.sort_unstable();
        all
    }

    fn unreadable_under(&self, prefix: &str) -> Vec<Unreadable> {
        // The replaced files are regular files (or gone) on this side.
        let mut unreadable = self.head.unreadable_under(prefix);
        unreadable.retain(|u| !self.files.contains_key(&u.path));
        unreadable
    }

    fn describe(&self) -> String {
        self.name.clone()
    }

    fn release_unused_listing(&self) {
        self.head.release_unused_listing();
    }
}

/// One overlay rendered at both sides.
#[derive(Debug, Clone)]
pub struct Overlay {
    pub dir: String,
    /// Its kustomization file at head: the path environments and approval rules see.
    pub file: String,
    pub objects: Vec<Value>,
    /// The repository file each object came from (kustomize's origin annotation), by index.
    pub origins: Vec<Option<String>>,
    /// The objects at base, matched by id; empty when the overlay is new or did not render there.
    pub before: BTreeMap<ObjectId, Value>,
    /// Whether the rendered objects differ between base and head.
    pub changed: bool,
}

#[derive(Debug, Default)]
pub struct RenderedOverlays {
    pub overlays: Vec<Overlay>,
    pub findings: Vec<Finding>,
}

/// Render `roots` at `base` and `head`. Findings are the head's: what the base cannot render is not
/// the change's fault, but makes the overlay count as changed (the gate cannot show it is not).
pub fn render_both_sides(
    base: &dyn Tree,
    head: &dyn Tree,
    roots: &BTreeSet<String>,
    command: &[String],
    cache: Option<&RenderCache>,
) -> RenderedOverlays {
    let mut out = RenderedOverlays::default();
    if roots.is_empty() {
        return out;
    }
    let head_graph = KustomizeGraph::build(head);
    let base_graph = KustomizeGraph::build(base);
    let sides = [(head, &head_graph, "head"), (base, &base_graph, "base")];
    let rendered: Vec<Result<Vec<RenderOutput>, String>> = sides
        .par_iter()
        .map(|(tree, graph, side)| render_side(*tree, graph, roots, command, side, cache))
        .collect();
    let mut rendered = rendered.into_iter();
    let (Some(head_side), Some(base_side)) = (rendered.next(), rendered.next()) else {
        return out;
    };
    let head_side = match head_side {
        Ok(outputs) => outputs,
        Err(e) => {
            out.findings.push(Finding::error(
                Rule::RenderFailed,
                format!("cannot write a temporary checkout to render kustomizations: {e}"),
            ));
            return out;
        }
    };
    let base_side = base_side.ok();
    for (i, (dir, head_output)) in roots.iter().zip(head_side).enumerate() {
        out.findings.extend(head_output.findings);
        let base_output = base_side.as_ref().and_then(|outputs| outputs.get(i));
        let before_ok =
            base_output.filter(|o| !o.findings.iter().any(|f| f.severity == Severity::Error));
        let origins: Vec<Option<String>> = head_output
            .objects
            .iter()
            .map(|o| o.origin.clone())
            .collect();
        let objects: Vec<Value> = head_output.objects.into_iter().map(|o| o.value).collect();
        let before_values: Option<Vec<Value>> =
            before_ok.map(|o| o.objects.iter().map(|r| r.value.clone()).collect());
        let changed = before_values
            .as_ref()
            .is_none_or(|before| canonical_set(before) != canonical_set(&objects));
        let before = before_values
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(n, v)| (ObjectId::of(&v, dir, n), v))
            .collect();
        let file = head_graph
            .dirs
            .get(dir)
            .or_else(|| base_graph.dirs.get(dir))
            .map_or_else(
                || super::paths::resolve(dir, "kustomization.yaml").unwrap_or_default(),
                |k| k.file.clone(),
            );
        out.overlays.push(Overlay {
            dir: dir.clone(),
            file,
            objects,
            origins,
            before,
            changed,
        });
    }
    out
}

/// Render `roots` at one side, in `roots` order. With a cache, only the roots whose inputs are not
/// in it are written out and rendered; the rest come from the cache. `Err` when the temporary
/// checkout cannot be written. `check` (through [`render_both_sides`]) and `diff` both render
/// through here, so a root one of them rendered is a cache hit for the other.
pub fn render_side(
    tree: &dyn Tree,
    graph: &KustomizeGraph,
    roots: &BTreeSet<String>,
    command: &[String],
    side: &str,
    cache: Option<&RenderCache>,
) -> Result<Vec<RenderOutput>, String> {
    let keys: Vec<Option<Key>> = roots
        .par_iter()
        .map(|root| cache.map(|_| RenderCache::key(tree, graph, root, command)))
        .collect();
    let mut outputs: Vec<Option<RenderOutput>> =
        keys.iter().map(|key| cache?.get(key.as_ref()?)).collect();
    let missing: BTreeSet<String> = roots
        .iter()
        .zip(&outputs)
        .filter(|(_, hit)| hit.is_none())
        .map(|(root, _)| root.clone())
        .collect();
    if !missing.is_empty() {
        let checkout = Checkout::for_roots(tree, graph, &missing).map_err(|e| e.to_string())?;
        // Findings on rendered objects point at the file each came from.
        checkout.annotate_origins(graph, &missing.iter().cloned().collect::<Vec<_>>());
        let mut fresh = render_fresh(&checkout, graph, &missing, command, side).into_iter();
        for (slot, key) in outputs.iter_mut().zip(&keys) {
            if slot.is_none() {
                let output = fresh.next().unwrap_or_default();
                if let (Some(cache), Some(key)) = (cache, key) {
                    cache.put(key, &output);
                }
                *slot = Some(output);
            }
        }
    }
    Ok(outputs.into_iter().map(Option::unwrap_or_default).collect())
}

/// Render `roots` from `checkout`, in `roots` order: those that can share one kustomize process
/// in one batch, the rest (and all of them, when the batch fails) alone, side by side.
fn render_fresh(
    checkout: &Checkout,
    graph: &KustomizeGraph,
    roots: &BTreeSet<String>,
    command: &[String],
    side: &str,
) -> Vec<RenderOutput> {
    let batched: Vec<String> = roots
        .iter()
        .filter(|root| batch::batchable(checkout, graph, root))
        .cloned()
        .collect();
    let mut outputs: BTreeMap<String, RenderOutput> =
        batch::render(checkout, graph, &batched, command, side)
            .map(|outputs| batched.into_iter().zip(outputs).collect())
            .unwrap_or_default();
    let alone: Vec<&String> = roots.iter().filter(|r| !outputs.contains_key(*r)).collect();
    let rendered: Vec<RenderOutput> = alone
        .par_iter()
        .map(|dir| render_kustomize(checkout, graph, dir, command, side))
        .collect();
    outputs.extend(alone.into_iter().cloned().zip(rendered));
    roots
        .iter()
        .map(|root| outputs.remove(root).unwrap_or_default())
        .collect()
}

/// Objects as a sorted set of canonical JSON texts (keys sorted): equal when kustomize renders
/// the same objects, whatever their order.
fn canonical_set(objects: &[Value]) -> Vec<String> {
    let mut texts: Vec<String> = objects.iter().map(|v| sorted(v).to_string()).collect();
    texts.sort();
    texts
}

fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let ordered: BTreeMap<&String, Value> =
                map.iter().map(|(k, v)| (k, sorted(v))).collect();
            Value::Object(ordered.into_iter().map(|(k, v)| (k.clone(), v)).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::MemTree;

    #[test]
    fn the_patched_tree_shows_the_other_side() {
        let head = MemTree::with_files(
            "head",
            &[
                ("a/x.yaml", "new"),
                ("a/added.yaml", "1"),
                ("b/y.yaml", "same"),
            ],
        );
        let base = PatchedTree::new(
            &head,
            BTreeMap::from([
                (
                    "a/x.yaml".to_owned(),
                    Some(Content::in_memory(b"old".to_vec())),
                ),
                ("a/added.yaml".to_owned(), None),
                (
                    "a/deleted.yaml".to_owned(),
                    Some(Content::in_memory(b"gone".to_vec())),
                ),
            ]),
            "base",
        );
        assert_eq!(base.read("a/x.yaml").as_deref(), Some(&b"old"[..]));
        assert_eq!(base.read("a/added.yaml"), None);
        assert_eq!(base.files_under("a"), vec!["a/deleted.yaml", "a/x.yaml"]);
        assert_eq!(base.files_under("").len(), 3);
    }

    #[test]
    fn key_order_and_object_order_are_not_changes() {
        let a = vec![
            serde_json::json!({"kind": "A", "spec": {"x": 1, "y": 2}}),
            serde_json::json!({"kind": "B"}),
        ];
        let b = vec![
            serde_json::json!({"kind": "B"}),
            serde_json::json!({"spec": {"y": 2, "x": 1}, "kind": "A"}),
        ];
        assert_eq!(canonical_set(&a), canonical_set(&b));
        assert_ne!(canonical_set(&a), canonical_set(&b[..1]));
    }
}
