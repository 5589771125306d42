//! Live drift and promotion order: is the environment still what Git says at base, and has a value
//! passed through the environments before this one?
//!
//! Stages: desired objects (the diff engine's identity: [`cluster_id`]) → live objects from a
//! source ([`live`]) → per object a verdict ([`compare`]) → findings, which an acknowledgement turns
//! into warnings. Promotion ([`promote`]) reads only Git at base. Front doors call
//! [`drift_environment`] (`stategate drift`) or [`check_change`] (`check --live`, the hook, a PR).

pub mod compare;
pub mod format;
pub mod live;
pub mod promote;
pub mod view;

use std::collections::{BTreeMap, BTreeSet};

use rayon::prelude::*;
use serde::Serialize;
use serde_json::Value;

use crate::change::ChangeSet;
use crate::config::{Config, LiveDrift, OnDrift, parse_duration};
use crate::diff::LiveField;
use crate::diff::format::value_text as shown;
use crate::diff::mask::Masker;
use crate::diff::normalize::cluster_id;
use crate::finding::{Finding, Location, Rule, Severity};
use crate::load::{LoadOptions, is_helm_template, load_file};
use crate::object::ObjectId;
use crate::tree::{Tree, is_within};

pub use compare::FieldDrift;
pub use live::{LiveState, SourceContext};

/// An object of the desired state, where Git declares it.
#[derive(Debug, Clone)]
pub struct Desired {
    pub id: ObjectId,
    pub value: Value,
    pub path: String,
}

/// Load the desired objects of some files of a tree (namespaces defaulted as the cluster does).
pub fn load_desired<'a>(
    tree: &dyn Tree,
    paths: impl IntoIterator<Item = &'a str>,
    options: &LoadOptions,
) -> Vec<Desired> {
    let paths: Vec<&str> = paths.into_iter().collect();
    paths
        .par_iter()
        .filter_map(|p| Some((*p, tree.read(p)?)))
        .flat_map_iter(|(path, bytes)| objects_of(path, &bytes, options))
        .collect()
}

/// The Kubernetes objects of one file's bytes.
pub fn objects_of(path: &str, bytes: &[u8], options: &LoadOptions) -> Vec<Desired> {
    if is_helm_template(path, &String::from_utf8_lossy(bytes)) {
        return Vec::new();
    }
    load_file(path, bytes, options)
        .documents
        .into_iter()
        .filter(|d| !d.value.is_null())
        .enumerate()
        .filter_map(|(i, d)| {
            let id = cluster_id(ObjectId::of(&d.value, path, i));
            matches!(id, ObjectId::Kube { .. }).then(|| Desired {
                id,
                value: d.value,
                path: path.to_owned(),
            })
        })
        .collect()
}

/// How live and desired objects are matched: the API group, not its version (the server answers in
/// its preferred version), kind, namespace, name.
type Key = (String, String, Option<String>, String);

fn key_of(id: &ObjectId) -> Option<Key> {
    match id {
        ObjectId::Kube {
            api_version,
            kind,
            namespace,
            name,
        } => {
            let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
            Some((
                group.to_owned(),
                kind.clone(),
                namespace.clone(),
                name.clone(),
            ))
        }
        ObjectId::Document { .. } => None,
    }
}

fn live_id(value: &Value) -> ObjectId {
    cluster_id(ObjectId::of(value, "(live)", 0))
}

/// What drift means for one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DriftState {
    /// Live differs from the desired object at base.
    Drifted,
    /// In Git at base, not live.
    MissingLive,
    /// Live, but not in Git at base (deleted there, or created by hand).
    NotInGit,
}

#[derive(Debug, Clone, Serialize)]
pub struct ObjectDrift {
    pub object: ObjectId,
    pub environment: String,
    pub state: DriftState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    pub fields: Vec<FieldDrift>,
    /// Drifted fields the change writes back over the live value.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reverts: Vec<LiveField>,
    /// Drifted fields the change adopts (head = live): the change resolves them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub adopts: Vec<String>,
    /// The live object, normalised and masked (for change policies).
    #[serde(skip)]
    pub live: Option<Value>,
}

impl ObjectDrift {
    /// Whether anything is left once the change's adoptions are counted.
    pub fn unresolved(&self) -> bool {
        self.state != DriftState::Drifted || self.fields.len() > self.adopts.len()
    }
}

/// The judgement of one environment.
#[derive(Debug, Clone, Serialize)]
pub struct EnvDrift {
    pub environment: String,
    pub source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age_seconds: Option<u64>,
    pub notes: Vec<String>,
    pub objects: Vec<ObjectDrift>,
    /// Desired objects of kinds the source holds none of: not judged.
    pub not_covered: usize,
}

/// What the desired side of a judgement holds.
pub struct Scope<'a> {
    pub base: &'a [Desired],
    /// The change's head side, when judging a change (for reverts and adoptions).
    pub head: Option<&'a [Desired]>,
    /// Judge only these objects; `None` = all of `base`, plus live objects GitOps tracks.
    pub touched: Option<&'a BTreeSet<ObjectId>>,
}

/// The live objects of one environment, indexed once by how desired objects match them.
pub struct LiveIndex<'a> {
    objects: BTreeMap<Key, (ObjectId, &'a Value)>,
    /// Kinds the source holds at least one object of: for other kinds, "missing live" would
    /// only mean the source does not list them.
    kinds: BTreeSet<String>,
}

/// Where a desired object stands in the live state.
#[derive(Debug, Clone, Copy)]
pub enum Lookup<'a> {
    Found(&'a Value),
    Missing,
    /// The source holds no object of this kind: nothing can be said.
    NotCovered,
}

impl<'a> LiveIndex<'a> {
    pub fn new(state: &'a LiveState) -> Self {
        let objects: BTreeMap<Key, (ObjectId, &Value)> = state
            .objects
            .iter()
            .filter_map(|v| {
                let id = live_id(v);
                Some((key_of(&id)?, (id, v)))
            })
            .collect();
        let kinds = objects.keys().map(|k| k.1.clone()).collect();
        LiveIndex { objects, kinds }
    }

    pub fn lookup(&self, id: &ObjectId) -> Lookup<'a> {
        let Some(key) = key_of(id) else {
            return Lookup::NotCovered;
        };
        self.lookup_key(&key)
    }

    fn lookup_key(&self, key: &Key) -> Lookup<'a> {
        if !self.kinds.contains(&key.1) {
            return Lookup::NotCovered;
        }
        match self.objects.get(key) {
            Some((_, live)) => Lookup::Found(live),
            None => Lookup::Missing,
        }
    }
}

/// Compare the live objects of one environment with the desired objects in scope.
pub fn judge(env: &str, state: &LiveState, scope: &Scope<'_>, masker: &Masker) -> EnvDrift {
    let live = LiveIndex::new(state);
    let in_scope = |id: &ObjectId| scope.touched.is_none_or(|t| t.contains(id));
    let head: BTreeMap<Key, &Desired> = scope
        .head
        .into_iter()
        .flatten()
        .filter_map(|d| Some((key_of(&d.id)?, d)))
        .collect();
    let mut out = EnvDrift {
        environment: env.to_owned(),
        source: state.description.clone(),
        age_seconds: state.age,
        notes: state.notes.clone(),
        objects: Vec::new(),
        not_covered: 0,
    };
    let judged: Vec<(Key, Lookup<'_>, Option<ObjectDrift>)> = scope
        .base
        .par_iter()
        .filter(|d| in_scope(&d.id))
        .filter_map(|desired| {
            let key = key_of(&desired.id)?;
            let lookup = live.lookup_key(&key);
            let found = match lookup {
                Lookup::NotCovered => None,
                Lookup::Found(live) => {
                    let fields = compare::compare(&desired.value, live, masker);
                    (!fields.is_empty()).then(|| {
                        let mut drift = object_drift(env, desired, DriftState::Drifted, fields);
                        drift.live = Some(masked_live(live, masker));
                        if let Some(head) = head.get(&key) {
                            against_head(&mut drift, head, live, masker);
                        }
                        drift
                    })
                }
                Lookup::Missing => Some(object_drift(
                    env,
                    desired,
                    DriftState::MissingLive,
                    Vec::new(),
                )),
            };
            Some((key, lookup, found))
        })
        .collect();
    let mut seen = BTreeSet::new();
    for (key, lookup, found) in judged {
        if matches!(lookup, Lookup::NotCovered) {
            out.not_covered += 1;
        }
        seen.insert(key);
        out.objects.extend(found);
    }
    for (key, (id, value)) in &live.objects {
        if seen.contains(key) {
            continue;
        }
        let relevant = match scope.touched {
            Some(touched) => touched.contains(id),
            None => is_tracked(value),
        };
        if relevant {
            out.objects.push(ObjectDrift {
                object: id.clone(),
                environment: env.to_owned(),
                state: DriftState::NotInGit,
                file: head.get(key).map(|d| d.path.clone()),
                fields: Vec::new(),
                reverts: Vec::new(),
                adopts: Vec::new(),
                live: Some(masked_live(value, masker)),
            });
        }
    }
    out
}

fn object_drift(env: &str, d: &Desired, state: DriftState, fields: Vec<FieldDrift>) -> ObjectDrift {
    ObjectDrift {
        object: d.id.clone(),
        environment: env.to_owned(),
        state,
        file: Some(d.path.clone()),
        fields,
        reverts: Vec::new(),
        adopts: Vec::new(),
        live: None,
    }
}

/// For each drifted field, what applying head does to it: writes Git's value back (a revert of a
/// live edit) or takes the live value into Git (an adoption).
fn against_head(drift: &mut ObjectDrift, head: &Desired, live: &Value, masker: &Masker) {
    let still = compare::compare(&head.value, live, masker);
    for field in &drift.fields {
        match still.iter().find(|f| f.path == field.path) {
            Some(now) => drift.reverts.push(LiveField {
                path: field.path.clone(),
                live: now.live.clone(),
                head: now.desired.clone(),
            }),
            None => drift.adopts.push(field.path.clone()),
        }
    }
}

fn masked_live(live: &Value, masker: &Masker) -> Value {
    let mut value = compare::normalize(live);
    masker.mask_pair(None, Some(&mut value));
    value
}

/// Put there by a GitOps controller or `kubectl apply`: an object that came from Git.
fn is_tracked(value: &Value) -> bool {
    let marks = |field: &str| {
        value
            .pointer(&format!("/metadata/{field}"))
            .and_then(Value::as_object)
            .is_some_and(|m| {
                m.keys().any(|k| {
                    k.starts_with("kustomize.toolkit.fluxcd.io/")
                        || k.starts_with("argocd.argoproj.io/")
                        || k == "kubectl.kubernetes.io/last-applied-configuration"
                })
            })
    };
    marks("labels") || marks("annotations")
}

/// Findings for an environment's drift; `on_drift` decides whether they block.
pub fn findings_of(drift: &EnvDrift, on_drift: OnDrift) -> Vec<Finding> {
    let severity = match on_drift {
        OnDrift::Block => Severity::Error,
        OnDrift::Warn => Severity::Warning,
    };
    drift
        .objects
        .iter()
        .map(|o| {
            let severity = if o.unresolved() {
                severity
            } else {
                Severity::Note
            };
            let mut finding = Finding::new(Rule::DriftLive, severity, message(o, &drift.source))
                .object(o.object.clone())
                .help(
                    "sync the environment to Git, or put the live value into Git, or have a \
                     `drift.acknowledge_by` user acknowledge it (`git push -o stategate.ack-drift=\"why\"`)",
                )
                .with_meta("environment", drift.environment.clone())
                .with_meta("state", serde_json::to_value(o.state).unwrap_or_default())
                .with_meta(
                    "fields",
                    serde_json::to_value(&o.fields).unwrap_or_default(),
                );
            if let Some(file) = &o.file {
                finding = finding.at(Location::file(file));
            }
            finding
        })
        .collect()
}

fn message(o: &ObjectDrift, source: &str) -> String {
    let env = &o.environment;
    let mut text = match o.state {
        DriftState::MissingLive => {
            format!(
                "{} is in Git at base but missing live in {env} ({source})",
                o.object
            )
        }
        DriftState::NotInGit => format!(
            "{} exists live in {env} but is not in Git at base ({source})",
            o.object
        ),
        DriftState::Drifted => {
            let fields: Vec<String> = o
                .fields
                .iter()
                .map(|f| {
                    format!(
                        "{}: live {}, Git {}",
                        f.path,
                        shown(f.live.as_ref()),
                        shown(f.desired.as_ref())
                    )
                })
                .collect();
            format!(
                "{} in {env} has drifted from Git at base ({source}): {}",
                o.object,
                fields.join("; ")
            )
        }
    };
    for r in &o.reverts {
        text.push_str(&format!(
            "; this change reverts a live edit of `{}`: {} → {}",
            r.path,
            shown(r.live.as_ref()),
            shown(r.head.as_ref())
        ));
    }
    if !o.adopts.is_empty() {
        text.push_str(&format!(
            "; this change adopts the live value of {}",
            o.adopts.join(", ")
        ));
    }
    text
}

/// How an acknowledged finding's message starts (the audit log counts these).
pub const ACKNOWLEDGED: &str = "acknowledged by ";

/// Who acknowledged drift or a skipped promotion, and how (review, signed approval, push option).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acknowledgement {
    pub by: String,
    pub how: String,
}

/// Turn the blocking findings of `rule` into warnings that say who acknowledged them. The PR front
/// door calls this with a review from `drift.acknowledge_by`; the hook with a push option or a
/// signed approval.
pub fn acknowledge(findings: &mut [Finding], rule: Rule, ack: Option<&Acknowledgement>) {
    let Some(ack) = ack else {
        return;
    };
    for f in findings
        .iter_mut()
        .filter(|f| f.rule == rule && f.severity == Severity::Error)
    {
        f.severity = Severity::Warning;
        f.message = format!("{ACKNOWLEDGED}{} ({}): {}", ack.by, ack.how, f.message);
    }
}

/// A source failure: blocks (undecided) under `on_error: block`, else a warning.
fn source_finding(env: &str, live: &LiveDrift, error: &str) -> Finding {
    let severity = match live.on_error {
        OnDrift::Block => Severity::Error,
        OnDrift::Warn => Severity::Warning,
    };
    Finding::new(
        Rule::DriftSource,
        severity,
        format!("cannot read the live state of {env}: {error}"),
    )
    .help("fix the live source (drift.live), or set `on_error: warn` to judge without it")
    .in_file(crate::config::CONFIG_FILE)
}

fn stale_finding(env: &str, live: &LiveDrift, state: &LiveState) -> Option<Finding> {
    let max = parse_duration(live.max_age.as_deref()?)?;
    let age = state.age?;
    if age <= max {
        return None;
    }
    let severity = match live.on_stale {
        OnDrift::Block => Severity::Error,
        OnDrift::Warn => Severity::Warning,
    };
    Some(
        Finding::new(
            Rule::DriftStale,
            severity,
            format!(
                "the live snapshot of {env} is {} old, older than max_age {} ({})",
                live::human_age(age),
                live.max_age.as_deref().unwrap_or_default(),
                state.description
            ),
        )
        .help("refresh the snapshot (the scheduled `kubectl get … -o yaml` job)"),
    )
}

/// Everything a drift run produced.
#[derive(Debug, Default, Serialize)]
pub struct DriftReport {
    pub environments: Vec<EnvDrift>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub promotion: Vec<promote::Violation>,
    pub findings: Vec<Finding>,
}

impl DriftReport {
    /// Per touched object, its live state and drifted paths: `input.live` of change policies.
    pub fn policy_live(&self) -> Vec<Value> {
        self.environments
            .iter()
            .flat_map(|e| &e.objects)
            .map(|o| {
                serde_json::json!({
                    "object": o.object.to_string(),
                    "environment": o.environment,
                    "state": o.state,
                    "live": o.live,
                    "drifted": o.fields.iter().map(|f| f.path.clone()).collect::<Vec<_>>(),
                    "fields": o.fields,
                })
            })
            .collect()
    }

    /// A `promote.skip_by` user acknowledges the promotion violations of the rules that list them.
    pub fn acknowledge_promotion(&mut self, user: &str, how: &str) {
        let ack = Acknowledgement {
            by: user.to_owned(),
            how: how.to_owned(),
        };
        for (v, f) in self.promotion.iter().zip(
            self.findings
                .iter_mut()
                .filter(|f| f.rule == Rule::DriftPromotion),
        ) {
            if v.skip_by.iter().any(|u| u == user) {
                acknowledge(std::slice::from_mut(f), Rule::DriftPromotion, Some(&ack));
            }
        }
    }

    /// `input.promotion` of change policies.
    pub fn policy_promotion(&self) -> Vec<Value> {
        self.promotion
            .iter()
            .filter_map(|v| serde_json::to_value(v).ok())
            .collect()
    }
}

/// Read one environment's live state and judge it; failures become findings.
pub fn judge_environment(
    env: &str,
    live: &LiveDrift,
    ctx: &SourceContext<'_>,
    scope: &Scope<'_>,
    masker: &Masker,
    report: &mut DriftReport,
) {
    let state = match live::read_live(live, ctx) {
        Ok(state) => state,
        Err(e) => {
            report.findings.push(source_finding(env, live, &e));
            return;
        }
    };
    report.findings.extend(stale_finding(env, live, &state));
    let judged = judge(env, &state, scope, masker);
    report.findings.extend(findings_of(&judged, live.on_drift));
    report.environments.push(judged);
}

/// `stategate drift`: every environment with a live source (or the one asked for), all objects.
pub fn drift_environment(
    config: &Config,
    tree: &dyn Tree,
    only: Option<&str>,
    file_time: &dyn Fn(&str) -> Option<i64>,
) -> DriftReport {
    let mut report = DriftReport::default();
    let masker = Masker::new(&config.diff.mask);
    let envs = environments_with_sources(config, only);
    if envs.is_empty() {
        report.findings.push(
            Finding::error(
                Rule::ConfigInvalid,
                match only {
                    Some(env) => format!("no live source for environment `{env}`"),
                    None => "no live source configured (drift.live)".to_owned(),
                },
            )
            .in_file(crate::config::CONFIG_FILE)
            .help("configure drift.live (snapshot, command or argocd) and environments"),
        );
        return report;
    }
    let rules = match crate::paths::PathRules::new(config) {
        Ok(rules) => rules,
        Err(finding) => {
            report.findings.push(*finding);
            return report;
        }
    };
    for (env, live) in envs {
        let files = environment_files(config, tree, &env);
        let base = load_desired(
            tree,
            files.iter().map(String::as_str),
            &config.load_options(),
        );
        // A snapshot directory belongs to the environment when the files under it would.
        let relevant = |p: &str| rules.is_in(&env, p) || rules.is_in(&env, &format!("{p}/x"));
        let ctx = SourceContext {
            env: &env,
            tree,
            file_time,
            relevant: &relevant,
            now: live::now(),
            load: config.load_options(),
        };
        let scope = Scope {
            base: &base,
            head: None,
            touched: None,
        };
        judge_environment(&env, live, &ctx, &scope, &masker, &mut report);
    }
    report
}

/// The change's side of `check --live`, the hook and the PR.
pub struct ChangeContext<'a> {
    pub config: &'a Config,
    pub change: &'a ChangeSet,
    /// The base revision: snapshots and the previous environments' desired state come from here.
    pub base: &'a dyn Tree,
    pub file_time: &'a dyn Fn(&str) -> Option<i64>,
    pub environment_of: &'a dyn Fn(&str) -> Option<String>,
    /// Read live sources (`check --live`, `drift.hook`); promotion is judged either way.
    pub live: bool,
}

/// Whether a change needs judging here at all: a live source is asked for, or promotion rules exist.
pub fn applies(config: &Config, live: bool) -> bool {
    live || !config.drift.promote.is_empty()
}

/// Whether any environment has a live source.
pub fn has_live_source(config: &Config) -> bool {
    config.drift.live.is_some() || !config.drift.environments.is_empty()
}

/// Per environment: the objects of the changed files at base and at head, and the changed paths.
type Touched = (Vec<Desired>, Vec<Desired>, Vec<String>);

/// Drift of the objects the change touches (their base state vs live), and the promotion order.
pub fn check_change(ctx: &ChangeContext<'_>) -> DriftReport {
    let config = ctx.config;
    let options = config.load_options();
    let masker = Masker::new(&config.diff.mask);
    let mut report = DriftReport::default();
    let mut by_env: BTreeMap<String, Touched> = BTreeMap::new();
    for file in &ctx.change.files {
        let before_path = file.old_path().unwrap_or(&file.path);
        let Some(env) =
            (ctx.environment_of)(&file.path).or_else(|| (ctx.environment_of)(before_path))
        else {
            continue;
        };
        let entry = by_env.entry(env).or_default();
        match (file.read_before(), file.read_after()) {
            (Ok(before), Ok(after)) => {
                if let Some(b) = before {
                    entry.0.extend(objects_of(before_path, &b, &options));
                }
                if let Some(a) = after {
                    entry.1.extend(objects_of(&file.path, &a, &options));
                }
            }
            (Err(why), _) | (_, Err(why)) => {
                report
                    .findings
                    .push(crate::change::unreadable_finding(&why));
            }
        }
        entry.2.push(file.path.to_string());
    }
    for (env, (base, head, paths)) in by_env.iter().filter(|_| ctx.live) {
        let Some(live) = config.drift.live_for(env) else {
            continue;
        };
        let touched: BTreeSet<ObjectId> = base.iter().chain(head).map(|d| d.id.clone()).collect();
        let relevant = |p: &str| touches(paths, p);
        let source = SourceContext {
            env,
            tree: ctx.base,
            file_time: ctx.file_time,
            relevant: &relevant,
            now: live::now(),
            load: config.load_options(),
        };
        let scope = Scope {
            base,
            head: Some(head),
            touched: Some(&touched),
        };
        judge_environment(env, live, &source, &scope, &masker, &mut report);
    }
    let heads: Vec<(String, Vec<Desired>, Vec<Desired>)> = by_env
        .into_iter()
        .map(|(env, (base, head, _))| (env, base, head))
        .collect();
    report.promotion = promote::check(config, ctx.base, &heads);
    report
        .findings
        .extend(report.promotion.iter().map(promote::finding));
    report
}

/// Whether a directory (an Argo CD Application's source path) holds one of `paths`.
fn touches<'a>(paths: impl IntoIterator<Item = &'a String>, dir: &str) -> bool {
    let dir = dir.trim_end_matches('/');
    paths.into_iter().any(|c| is_within(c, dir))
}

fn environments_with_sources<'a>(
    config: &'a Config,
    only: Option<&str>,
) -> Vec<(String, &'a LiveDrift)> {
    let mut names: BTreeSet<String> = config.environments.keys().cloned().collect();
    names.extend(config.drift.environments.keys().cloned());
    names
        .into_iter()
        .filter(|env| only.is_none_or(|o| o == env))
        .filter_map(|env| {
            let live = config.drift.live_for(&env)?;
            Some((env, live))
        })
        .collect()
}

/// The files of an environment that `include`/`exclude` select.
pub(crate) fn environment_files(config: &Config, tree: &dyn Tree, env: &str) -> Vec<String> {
    // An invalid glob stopped the config before drift runs (`PathRules` is what it checks).
    let Ok(rules) = crate::paths::PathRules::new(config) else {
        return Vec::new();
    };
    tree.files_under("")
        .into_iter()
        .filter(|p| rules.is_in(env, p) && rules.is_checked(p))
        .collect()
}
