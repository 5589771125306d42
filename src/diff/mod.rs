//! The dry-run diff: desired state at base vs head, after rendering, matched object by object.
//!
//! Pipeline: take the changed paths from the [`ChangeSet`] (as `check` sees them) → render the kustomizations and charts they touch (at both
//! sides) → load the other changed files → match objects by [`ObjectId`] (namespace defaulted as
//! kubectl does) → mask secret values → normalise (keyed lists sorted, keys in `kubectl get -o yaml`
//! order) → per object a status, the changed field paths and a unified YAML diff.
//!
//! Matching, in order: same id in the same file (or rendered directory); same id elsewhere (moved);
//! same kind at the same position of a file git-style rename detection pairs with the old one
//! (moved, with `previous_id` when the name changed as well). The rest is added or removed.

pub mod fields;
pub mod format;
pub mod mask;
pub mod normalize;

use std::collections::{BTreeMap, BTreeSet};

use globset::GlobSet;
use serde::Serialize;
use serde_json::Value;

use crate::change::{ChangeSet, SkipKind, Skipped};
use crate::config::Config;
use crate::finding::{Finding, Rule, Severity, Verdict};
use crate::load::{is_helm_template, load_manifest};
use crate::object::ObjectId;
use crate::paths::{PathRules, glob_set};
use crate::render::cache::RenderCache;
use crate::render::{self, KustomizeGraph, RenderOutput, Renderer};
use crate::tree::Tree;

pub use format::{Format, render as format_diff};

#[derive(Debug, Clone)]
pub struct DiffOptions {
    /// Run kustomize/helm. Off only where the trees are partial (tests on corpus excerpts).
    pub render: bool,
    /// Keep each object's head value ([`ObjectDiff::head_value`]) for a live → head view.
    pub head_values: bool,
    /// Take kustomize renders from this cache and store new ones in it (`None`: render all).
    pub cache: Option<RenderCache>,
}

impl Default for DiffOptions {
    fn default() -> Self {
        DiffOptions {
            render: true,
            head_values: false,
            cache: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Added,
    Removed,
    Changed,
    Moved,
    Unchanged,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Added => "added",
            Status::Removed => "removed",
            Status::Changed => "changed",
            Status::Moved => "moved",
            Status::Unchanged => "unchanged",
        }
    }
}

/// Where an object came from: a file, or the directory a renderer ran on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Source {
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rendered_by: Option<Renderer>,
    /// For a rendered object, the file kustomize read it from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
}

impl Source {
    /// The file the object is written in, as far as known.
    pub fn file(&self) -> &str {
        self.origin.as_deref().unwrap_or(&self.path)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ObjectDiff {
    pub id: ObjectId,
    /// The id at base, when a renamed file also renamed the object.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_id: Option<ObjectId>,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base: Option<Source>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head: Option<Source>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Field paths that differ (empty for added, removed and unchanged objects).
    pub changed_fields: Vec<String>,
    /// Unified diff of the normalised, masked YAML; empty when nothing changed.
    pub diff: String,
    /// What applying head does to the live object (`diff --live`), beside base → head.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live: Option<LiveView>,
    /// The object at head as read, unmasked (only with [`DiffOptions::head_values`]): the live
    /// view compares it with live state before masking, as drift does. Never rendered.
    #[serde(skip)]
    pub head_value: Option<Value>,
}

/// Live state against head for one object: the drift comparison (only what head declares, server
/// fields and defaults ignored, quantities by value, secret values masked) of the head object.
#[derive(Debug, Clone, Serialize)]
pub struct LiveView {
    pub environment: String,
    pub status: LiveStatus,
    /// Fields where live differs from head: each with the live value and the head value.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<LiveField>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LiveStatus {
    /// Not live; head creates it.
    Added,
    /// Live; head deletes it.
    Removed,
    /// Live differs from head in the listed fields.
    Changed,
    /// Live already is what head declares.
    Unchanged,
    /// Neither live nor at head.
    Absent,
    /// The live source lists no object of this kind: nothing can be said.
    NotCovered,
}

impl LiveStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            LiveStatus::Added => "added",
            LiveStatus::Removed => "removed",
            LiveStatus::Changed => "changed",
            LiveStatus::Unchanged => "unchanged",
            LiveStatus::Absent => "absent",
            LiveStatus::NotCovered => "not covered by the live source",
        }
    }
}

/// One field's live and head values (a field of the live → head view, or a drifted field a change
/// reverts); `None` = absent on that side. Secret values are masked.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LiveField {
    pub path: String,
    pub live: Option<Value>,
    pub head: Option<Value>,
}

/// Where the live side of `diff --live` came from, per environment.
#[derive(Debug, Clone, Serialize)]
pub struct LiveSide {
    pub environment: String,
    pub source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl ObjectDiff {
    pub fn kind(&self) -> &str {
        self.id.kind().unwrap_or("(document)")
    }

    /// True when the object's content differs (a move with edits counts).
    pub fn is_modified(&self) -> bool {
        !self.diff.is_empty()
    }
}

#[derive(Debug, Default, Serialize)]
pub struct DiffResult {
    pub base: String,
    pub head: String,
    pub objects: Vec<ObjectDiff>,
    pub findings: Vec<Finding>,
    /// Environments whose deletions get a warning line (see [`protected_environments`]).
    pub protected: Vec<String>,
    /// The live sources read for a live → head view (`diff --live`); empty without one.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub live: Vec<LiveSide>,
}

impl DiffResult {
    pub fn count(&self, status: Status) -> usize {
        self.objects.iter().filter(|o| o.status == status).count()
    }

    /// A diff that could not be made at all: no objects, the finding that says why.
    fn failed(base: &dyn Tree, head: &dyn Tree, finding: Finding) -> DiffResult {
        DiffResult {
            base: base.describe(),
            head: head.describe(),
            objects: Vec::new(),
            findings: vec![finding],
            protected: Vec::new(),
            live: Vec::new(),
        }
    }

    /// 0, or 2 when a renderer failed: a partial diff must not look complete.
    pub fn exit_code(&self) -> u8 {
        match Verdict::of(&self.findings) {
            Verdict::Undecided => 2,
            _ => 0,
        }
    }
}

/// One object as read at one side.
#[derive(Debug, Clone)]
struct Item {
    id: ObjectId,
    value: Value,
    source: Source,
    /// Position among the objects of its file: pairs objects across a file rename.
    index: usize,
}

/// Diff the desired state a change produces: `base` and `head` are the two sides of `change`
/// (the merge base and the head of a range, HEAD and the working tree or the index), read for
/// rendering; the changed files themselves come from the change, as `check` sees them.
pub fn diff_change(
    change: &ChangeSet,
    base: &dyn Tree,
    head: &dyn Tree,
    config: &Config,
    options: &DiffOptions,
) -> DiffResult {
    let mut findings = Vec::new();
    let rules = match PathRules::new(config) {
        Ok(rules) => rules,
        Err(finding) => return DiffResult::failed(base, head, *finding),
    };
    let changed: BTreeSet<String> = change.touched_paths().map(str::to_owned).collect();
    let renames: BTreeMap<String, String> = change
        .renames()
        .map(|(old, new)| (old.to_owned(), new.to_owned()))
        .collect();
    findings.extend(change.skipped.iter().filter_map(unseen));
    let mut covered = BTreeSet::new();
    let (mut base_items, mut head_items) = (Vec::new(), Vec::new());
    if options.render {
        let rendered = render_touched(
            base,
            head,
            config,
            &changed,
            options.cache.as_ref(),
            &mut findings,
        );
        covered = rendered.covered;
        base_items = rendered.base;
        head_items = rendered.head;
    }
    for file in &change.files {
        let before_path = file.old_path().unwrap_or(&file.path);
        if !covered.contains(before_path) && rules.is_checked(before_path) {
            match file.read_before() {
                Ok(Some(bytes)) => {
                    base_items.extend(load_items(before_path, &bytes, &mut findings))
                }
                Ok(None) => {}
                Err(why) => findings.push(crate::change::unreadable_finding(&why)),
            }
        }
        if !covered.contains(&*file.path) && rules.is_checked(&file.path) {
            match file.read_after() {
                Ok(Some(bytes)) => head_items.extend(load_items(&file.path, &bytes, &mut findings)),
                Ok(None) => {}
                Err(why) => findings.push(crate::change::unreadable_finding(&why)),
            }
        }
    }
    let masker = mask::Masker::new(&config.diff.mask);
    let sides = (base_items, head_items);
    let mut objects = match_items(sides, &renames, &masker, &rules, options.head_values);
    objects.sort_by_cached_key(|o| {
        (
            o.environment.clone(),
            o.kind().to_string(),
            o.id.to_string(),
        )
    });
    DiffResult {
        base: base.describe(),
        head: head.describe(),
        objects,
        findings,
        protected: protected_environments(config),
        live: Vec::new(),
    }
}

/// A changed path the diff cannot show although a consumer may apply it (binary content, a
/// symlink leaving the repository): said, so an empty diff is not read as "nothing changed".
fn unseen(skipped: &Skipped) -> Option<Finding> {
    matches!(skipped.kind, SkipKind::Binary | SkipKind::Symlink).then(|| {
        Finding::warning(
            Rule::LoadSkipped,
            format!("not in the diff: {}", skipped.reason),
        )
        .in_file(&skipped.path)
    })
}

struct Rendered {
    base: Vec<Item>,
    head: Vec<Item>,
    /// Paths whose content reaches the diff through a renderer, so they are not diffed raw.
    covered: BTreeSet<String>,
}

fn render_touched(
    base: &dyn Tree,
    head: &dyn Tree,
    config: &Config,
    changed: &BTreeSet<String>,
    cache: Option<&RenderCache>,
    findings: &mut Vec<Finding>,
) -> Rendered {
    let graphs = [KustomizeGraph::build(base), KustomizeGraph::build(head)];
    let explicit = directory_globs(&config.render.kustomize);
    let mut roots = BTreeSet::new();
    for path in changed {
        for graph in &graphs {
            roots.extend(graph.roots_for(path, &explicit));
        }
    }
    let mut covered: BTreeSet<String> = roots
        .iter()
        .flat_map(|r| graphs.iter().flat_map(move |g| g.closure(r)))
        .collect();
    let mut helm =
        render::helm::render_changed(base, head, &config.render, changed, &config.load_options());
    covered.extend(helm.covered.iter().cloned());
    findings.extend(std::mem::take(&mut helm.findings));
    let mut out = Rendered {
        base: Vec::new(),
        head: Vec::new(),
        covered,
    };
    // A release's objects are shown under the manifest that declares it (its values change).
    for release in std::mem::take(&mut helm.releases) {
        let path = format!("{} ({})", release.release.owner, release.release.label);
        for (items, objects) in [(&mut out.base, release.base), (&mut out.head, release.head)] {
            items.extend(rendered_items(
                objects
                    .into_iter()
                    .map(|mut value| {
                        render::helm::mask_secrets(&mut value, &helm.secrets, mask::MASKED);
                        value
                    })
                    .map(|value| render::RenderedObject {
                        value,
                        dir: path.clone(),
                        renderer: release.release.renderer(),
                        origin: None,
                    })
                    .collect(),
            ));
        }
    }
    if roots.is_empty() {
        return out;
    }
    let command = render::kustomize_command(&config.render);
    // Only roots not in the cache are rendered, from a checkout of what they read; the two sides
    // side by side (renderers are separate processes).
    let render_at = |side: &str, tree: &dyn Tree, graph: &KustomizeGraph| {
        render::overlays::render_side(tree, graph, &roots, &command, side, cache)
    };
    let sides = rayon::join(
        || render_at("base", base, &graphs[0]),
        || render_at("head", head, &graphs[1]),
    );
    let outputs: [Vec<RenderOutput>; 2] =
        [("base", sides.0), ("head", sides.1)].map(|(side, rendered)| {
            rendered.unwrap_or_else(|e| {
                findings.push(Finding::error(
                    Rule::RenderFailed,
                    format!("could not write a temporary checkout of {side}: {e}"),
                ));
                Vec::new()
            })
        });
    let [base_out, head_out] = outputs;
    for i in 0..roots.len() {
        let sides = [base_out.get(i), head_out.get(i)];
        let failed = sides
            .iter()
            .any(|o| o.is_none_or(|o| o.findings.iter().any(|f| f.severity == Severity::Error)));
        findings.extend(
            sides
                .iter()
                .flatten()
                .flat_map(|o| o.findings.iter().cloned()),
        );
        if failed {
            // A side that did not render would show every object of the other as added or
            // removed; the finding says the diff is incomplete instead.
            continue;
        }
        for (items, output) in [(&mut out.base, sides[0]), (&mut out.head, sides[1])] {
            items.extend(rendered_items(
                output.map(|o| o.objects.clone()).unwrap_or_default(),
            ));
        }
    }
    out
}

/// Rendered objects as diff items. Positions count within the origin file, so a renamed file pairs
/// object by object.
fn rendered_items(objects: Vec<render::RenderedObject>) -> Vec<Item> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    objects
        .into_iter()
        .enumerate()
        .map(|(n, o)| {
            let file = o.origin.clone().unwrap_or_else(|| o.dir.clone());
            let index = *seen.entry(file).and_modify(|i| *i += 1).or_insert(0);
            Item {
                id: normalize::cluster_id(ObjectId::of(&o.value, &o.dir, n)),
                value: o.value,
                source: Source {
                    path: o.dir,
                    rendered_by: Some(o.renderer),
                    origin: o.origin,
                },
                index,
            }
        })
        .collect()
}

/// `render.kustomize` names directories; a trailing `/` is the same directory.
fn directory_globs(patterns: &[String]) -> GlobSet {
    let trimmed: Vec<String> = patterns
        .iter()
        .map(|p| p.trim_end_matches('/').to_owned())
        .collect();
    // Invalid globs stopped the config already (config validation); here they match nothing.
    glob_set(&trimmed).unwrap_or_else(|_| GlobSet::empty())
}

fn load_items(path: &str, bytes: &[u8], findings: &mut Vec<Finding>) -> Vec<Item> {
    if is_helm_template(path, &String::from_utf8_lossy(bytes)) {
        return Vec::new();
    }
    let loaded = load_manifest(path, bytes, &crate::load::LoadOptions::default());
    // Only what stops the diff from being complete is reported; style findings belong to `check`.
    findings.extend(
        loaded
            .findings
            .into_iter()
            .filter(|f| f.rule.is_undecidable()),
    );
    loaded
        .documents
        .into_iter()
        .filter(|d| !d.value.is_null())
        .enumerate()
        .map(|(index, d)| Item {
            id: normalize::cluster_id(d.id()),
            value: d.value,
            source: Source {
                path: path.to_string(),
                rendered_by: None,
                origin: None,
            },
            index,
        })
        .collect()
}

/// The environment of an object's source. A rendered directory is matched as if it were its
/// kustomization file.
fn environment_of(rules: &PathRules, source: &Source) -> Option<String> {
    rules
        .environment_of(&source.path)
        .or_else(|| rules.environment_of(&format!("{}/kustomization.yaml", source.path)))
        .map(str::to_owned)
}

/// Environments whose deletions are called out: those named in `drift.up_to_date` (the config
/// already marks them as needing care) and any environment whose name starts with `prod`.
pub fn protected_environments(config: &Config) -> Vec<String> {
    config
        .environments
        .keys()
        .filter(|name| name.starts_with("prod") || config.drift.up_to_date.contains(name))
        .cloned()
        .collect()
}

fn match_items(
    (base, head): (Vec<Item>, Vec<Item>),
    renames: &BTreeMap<String, String>,
    masker: &mask::Masker,
    rules: &PathRules,
    head_values: bool,
) -> Vec<ObjectDiff> {
    let mut pairs: Vec<(Option<Item>, Option<Item>)> = Vec::new();
    let mut base: Vec<Option<Item>> = base.into_iter().map(Some).collect();
    let mut head: Vec<Option<Item>> = head.into_iter().map(Some).collect();
    let same_place = |b: &Item, h: &Item| b.id == h.id && b.source == h.source;
    let same_id = |b: &Item, h: &Item| b.id == h.id;
    let renamed = |b: &Item, h: &Item| {
        renames.get(b.source.file()).map(String::as_str) == Some(h.source.file())
            && b.index == h.index
            && b.id.kind() == h.id.kind()
    };
    // A kustomize generator's ConfigMap or Secret changes name with its content (a hash suffix):
    // the same generator in the same directory is the same object, changed.
    let regenerated = |b: &Item, h: &Item| {
        b.source.rendered_by.is_some()
            && b.source.path == h.source.path
            && match (&b.id, &h.id) {
                (
                    ObjectId::Kube {
                        api_version: av,
                        kind: k,
                        namespace: ns,
                        name: n,
                    },
                    ObjectId::Kube {
                        api_version: av2,
                        kind: k2,
                        namespace: ns2,
                        name: n2,
                    },
                ) => {
                    (av, k, ns) == (av2, k2, ns2)
                        && strip_hash(n).is_some()
                        && strip_hash(n) == strip_hash(n2)
                }
                _ => false,
            }
    };
    for rule in [
        &same_place as &dyn Fn(&Item, &Item) -> bool,
        &same_id,
        &renamed,
        &regenerated,
    ] {
        pair_up(&mut base, &mut head, rule, &mut pairs);
    }
    pairs.extend(base.into_iter().flatten().map(|b| (Some(b), None)));
    pairs.extend(head.into_iter().flatten().map(|h| (None, Some(h))));
    pairs
        .into_iter()
        .map(|(b, h)| compare(b, h, masker, rules, head_values))
        .collect()
}

/// The name without kustomize's content-hash suffix (`-` and ten characters of its alphabet).
fn strip_hash(name: &str) -> Option<&str> {
    const HASH_CHARS: &str = "2456789bcdfghkmt";
    let (stem, hash) = name.rsplit_once('-')?;
    (hash.len() == 10 && hash.chars().all(|c| HASH_CHARS.contains(c))).then_some(stem)
}

/// Pair remaining base and head items that satisfy `rule`, each at most once. Items are indexed
/// by id first so the common case (same id) is not quadratic.
fn pair_up(
    base: &mut [Option<Item>],
    head: &mut [Option<Item>],
    rule: &dyn Fn(&Item, &Item) -> bool,
    pairs: &mut Vec<(Option<Item>, Option<Item>)>,
) {
    let mut by_kind: BTreeMap<Option<String>, Vec<usize>> = BTreeMap::new();
    for (i, h) in head.iter().enumerate() {
        if let Some(h) = h {
            by_kind
                .entry(h.id.kind().map(str::to_owned))
                .or_default()
                .push(i);
        }
    }
    for slot in base.iter_mut() {
        let Some(b) = slot.as_ref() else { continue };
        let Some(candidates) = by_kind.get_mut(&b.id.kind().map(str::to_owned)) else {
            continue;
        };
        let found = candidates
            .iter()
            .position(|&i| head[i].as_ref().is_some_and(|h| rule(b, h)));
        if let Some(pos) = found {
            let i = candidates.remove(pos);
            pairs.push((slot.take(), head[i].take()));
        }
    }
}

fn compare(
    base: Option<Item>,
    head: Option<Item>,
    masker: &mask::Masker,
    rules: &PathRules,
    head_values: bool,
) -> ObjectDiff {
    let (mut old, mut new) = (
        base.as_ref().map(|i| i.value.clone()),
        head.as_ref().map(|i| i.value.clone()),
    );
    masker.mask_pair(old.as_mut(), new.as_mut());
    for v in old.iter_mut().chain(new.iter_mut()) {
        normalize::canonicalize(v);
    }
    let text = |v: &Option<Value>| v.as_ref().map(normalize::to_yaml).unwrap_or_default();
    let (old_text, new_text) = (text(&old), text(&new));
    let diff = if old_text == new_text {
        String::new()
    } else {
        similar::TextDiff::from_lines(&old_text, &new_text)
            .unified_diff()
            .context_radius(3)
            .to_string()
    };
    let changed_fields = match (&old, &new) {
        (Some(a), Some(b)) => fields::changed_paths(a, b),
        _ => Vec::new(),
    };
    let status = match (&base, &head) {
        (None, _) => Status::Added,
        (_, None) => Status::Removed,
        (Some(b), Some(h)) if b.source != h.source => Status::Moved,
        _ if diff.is_empty() => Status::Unchanged,
        _ => Status::Changed,
    };
    let id = head
        .as_ref()
        .or(base.as_ref())
        .map(|i| i.id.clone())
        .unwrap_or(ObjectId::Document {
            path: String::new(),
            index: 0,
        });
    let previous_id = base.as_ref().map(|b| b.id.clone()).filter(|p| *p != id);
    let base_source = base.map(|b| b.source);
    let (head_source, head_value) = head.map(|h| (h.source, h.value)).unzip();
    let head_value = head_value.filter(|_| head_values);
    let environment = head_source
        .as_ref()
        .or(base_source.as_ref())
        .and_then(|s| environment_of(rules, s));
    ObjectDiff {
        id,
        previous_id,
        status,
        base: base_source,
        head: head_source,
        environment,
        changed_fields,
        diff,
        live: None,
        head_value,
    }
}
