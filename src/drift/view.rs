//! `stategate diff --live`: beside base → head, what applying head does to the live object.
//!
//! The live side is read from each touched environment's `drift.live` source (snapshots from the
//! trusted tree, as drift reads them) and matched with the diff's objects by drift's identity
//! ([`LiveIndex`]); the comparison is drift's ([`compare::compare`]: only what head declares,
//! server fields and defaults ignored, quantities by value, secret values masked).

use std::collections::{BTreeMap, BTreeSet};

use crate::config::Config;
use crate::diff::mask::Masker;
use crate::diff::{DiffResult, LiveField, LiveSide, LiveStatus, LiveView, ObjectDiff};
use crate::finding::{Finding, Rule, Severity};
use crate::tree::Tree;

use super::live::{self, SourceContext};
use super::{LiveIndex, Lookup, compare, environments_with_sources, source_finding, touches};

/// What the live view reads: the trusted tree (config and snapshots) and, for a snapshot without
/// `generated-at`, when its files last changed.
pub struct LiveViewContext<'a> {
    pub config: &'a Config,
    pub tree: &'a dyn Tree,
    pub file_time: &'a dyn Fn(&str) -> Option<i64>,
    /// Only this environment's live source (`--env`).
    pub only: Option<&'a str>,
}

/// Add a live → head view to every object of `result` in an environment with a live source.
/// A source that cannot be read is an error finding (the view would be incomplete); so is
/// asking for a live view where no live source is configured.
pub fn add_live_view(result: &mut DiffResult, ctx: &LiveViewContext<'_>) {
    let config = ctx.config;
    if !super::has_live_source(config) {
        result.findings.push(no_source(
            "diff --live needs a live source: configure drift.live (snapshot, command or argocd)",
        ));
        return;
    }
    if let Some(env) = ctx.only
        && environments_with_sources(config, Some(env)).is_empty()
    {
        result.findings.push(no_source(&format!(
            "no live source for environment `{env}`"
        )));
        return;
    }
    let masker = Masker::new(&config.diff.mask);
    for (env, paths) in touched_environments(result, ctx.only) {
        let Some(source) = config.drift.live_for(&env) else {
            continue;
        };
        let relevant = |p: &str| touches(&paths, p);
        let source_ctx = SourceContext {
            env: &env,
            tree: ctx.tree,
            file_time: ctx.file_time,
            relevant: &relevant,
            now: live::now(),
            load: config.load_options(),
        };
        let state = match live::read_live(source, &source_ctx) {
            Ok(state) => state,
            Err(e) => {
                // Whatever `on_error` says for judging, a live view asked for and not shown
                // cannot pass as complete.
                let mut finding = source_finding(&env, source, &e);
                finding.severity = Severity::Error;
                result.findings.push(finding);
                continue;
            }
        };
        let index = LiveIndex::new(&state);
        for o in result
            .objects
            .iter_mut()
            .filter(|o| o.environment.as_deref() == Some(env.as_str()))
        {
            o.live = Some(view(o, &env, &index, &masker));
        }
        result.live.push(LiveSide {
            environment: env,
            source: state.description,
            age_seconds: state.age,
            notes: state.notes,
        });
    }
}

fn no_source(message: &str) -> Finding {
    Finding::error(Rule::DriftSource, message)
        .in_file(crate::config::CONFIG_FILE)
        .help("configure drift.live, or drift.environments.<env>, or run diff without --live")
}

/// The environments the diff's objects are in (or `only`), with the paths of those objects.
fn touched_environments(
    result: &DiffResult,
    only: Option<&str>,
) -> BTreeMap<String, BTreeSet<String>> {
    let mut envs: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for o in &result.objects {
        let Some(env) = o
            .environment
            .as_deref()
            .filter(|e| only.is_none_or(|x| x == *e))
        else {
            continue;
        };
        let paths = envs.entry(env.to_owned()).or_default();
        for source in o.base.iter().chain(&o.head) {
            paths.insert(source.path.clone());
            paths.extend(source.origin.clone());
        }
    }
    envs
}

/// One object's live → head view.
fn view(o: &ObjectDiff, env: &str, index: &LiveIndex<'_>, masker: &Masker) -> LiveView {
    let head = o.head_value.as_ref();
    let mut fields = Vec::new();
    let status = match (head, index.lookup(&o.id)) {
        (_, Lookup::NotCovered) => LiveStatus::NotCovered,
        (Some(head), Lookup::Found(live)) => {
            fields = compare::compare(head, live, masker)
                .into_iter()
                .map(|f| LiveField {
                    path: f.path,
                    live: f.live,
                    head: f.desired,
                })
                .collect();
            if fields.is_empty() {
                LiveStatus::Unchanged
            } else {
                LiveStatus::Changed
            }
        }
        (Some(_), Lookup::Missing) => LiveStatus::Added,
        (None, Lookup::Found(_)) => LiveStatus::Removed,
        (None, Lookup::Missing) => LiveStatus::Absent,
    };
    LiveView {
        environment: env.to_owned(),
        status,
        fields,
    }
}
