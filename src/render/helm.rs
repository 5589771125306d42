//! Helm releases: what Helm will apply, rendered with the real `helm template` at both sides of a
//! change, so the objects a values change produces go through schema, policy and diff.
//!
//! A release comes from one of three places:
//! - a chart directory listed in `render.helm.charts` (with its values files);
//! - a Flux `HelmRelease` (chart from a `GitRepository` path in this repository, or from an allowed
//!   `HelmRepository`; `spec.values`, `valuesFrom` ConfigMaps and Secrets in the repository,
//!   `postRenderers` kustomize patches, `targetNamespace`, `releaseName`);
//! - an Argo CD `Application` (`source.path` in this repository or `source.chart` from an allowed
//!   repository; `helm.valueFiles`, `values`, `valuesObject`, `parameters`, `releaseName`;
//!   `destination.namespace`).
//!
//! helm runs inside [`super::sandbox`] (no network, empty `HELM_PLUGINS`, a private home, no kube
//! context); remote charts come from [`super::helm_cache`].

use std::collections::{BTreeMap, BTreeSet};

use rayon::prelude::*;
use serde_json::{Map, Value, json};

use super::argo_kustomize::{self, KustomizeOverrides};
use super::graph::KustomizeGraph;
use super::helm_cache::{self, FetchError, RemoteChart};
use super::{Checkout, RenderOutput, Renderer, failed};
use crate::config::{HelmConfig, RenderConfig};
use crate::finding::{Finding, Location, Rule};
use crate::load::{Document, LoadOptions, load_file};
use crate::tree::{Tree, is_within};

/// The helm command: the configured one, else `helm` from PATH.
pub fn helm_command(config: &RenderConfig) -> Vec<String> {
    config
        .helm_command
        .clone()
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| vec!["helm".into()])
}

/// Whether the helm command can be started: a path that exists, or a name on PATH.
pub fn helm_available(command: &[String]) -> bool {
    command.first().is_some_and(|program| {
        if program.contains('/') {
            std::path::Path::new(program).is_file()
        } else {
            super::on_path(program)
        }
    })
}

/// The finding when the config asks for Helm rendering and helm cannot be run: the gate cannot
/// see what Helm would apply, so it does not pass the change.
pub fn helm_missing(command: &[String], releases: &[String]) -> Finding {
    Finding::error(
        Rule::RenderFailed,
        format!(
            "`{}` cannot be run, so these Helm releases were not rendered: {}",
            command.join(" "),
            releases.join(", ")
        ),
    )
    .in_file(crate::config::CONFIG_FILE)
    .help(
        "install helm (see the README: `.ci/run` shows a pinned, checksummed install), or point \
         `render.helm_command` at the binary",
    )
}

/// Where a release's chart comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChartSource {
    /// A chart directory in this repository.
    InRepo(String),
    Remote(RemoteChart),
    /// Not renderable; the reason becomes a finding.
    Refused(String),
}

/// A values file applied to the release, or values written inline in a manifest: both are traced
/// back to when a rendered object breaks a rule.
#[derive(Debug, Clone, PartialEq)]
pub struct ValuesSource {
    /// The repository file holding the values.
    pub file: String,
    /// Which document of the file, and the JSON pointer to the values in it (`/spec/values`; empty
    /// for a values file).
    pub doc: usize,
    pub pointer: String,
    /// The values themselves.
    pub value: Value,
    /// A Secret's values: never shown.
    pub secret: bool,
}

/// One release to render.
#[derive(Debug, Clone, PartialEq)]
pub struct Release {
    /// `HelmRelease apps/podinfo`, `Application argocd/web`, `chart charts/podinfo`.
    pub label: String,
    /// The file that declares the release; its environment is the release's.
    pub owner: String,
    /// The document of `owner` that declares it.
    pub owner_doc: usize,
    pub name: String,
    pub namespace: Option<String>,
    pub chart: ChartSource,
    pub values: Vec<ValuesSource>,
    /// `--set name=value` (`true`: `--set-string`).
    pub parameters: Vec<(String, String, bool)>,
    /// Flux post-renderer kustomize patches (`{patch, target}` entries).
    pub patches: Vec<Value>,
    /// Repository paths whose change changes the release's output.
    pub inputs: BTreeSet<String>,
    /// An Argo CD `source.kustomize` Application: its in-repository source directory is built
    /// with kustomize and these overrides, not with helm.
    pub kustomize: Option<KustomizeOverrides>,
}

impl Release {
    /// A HelmRelease or Application, as opposed to a chart listed in the config.
    fn declared_in_manifest(&self) -> bool {
        !self.label.starts_with("chart ")
    }

    /// Rendering it runs helm (a kustomize Application, or a refused release, does not).
    fn needs_helm(&self) -> bool {
        self.kustomize.is_none() && !matches!(self.chart, ChartSource::Refused(_))
    }

    pub fn renderer(&self) -> Renderer {
        if self.kustomize.is_some() {
            Renderer::Kustomize
        } else {
            Renderer::Helm
        }
    }

    fn touched_by(&self, changed: &BTreeSet<String>) -> bool {
        changed
            .iter()
            .any(|p| self.inputs.iter().any(|i| is_within(p, i)))
    }
}

/// Every release a tree declares (HelmReleases and Applications when `render.helm.releases`, and
/// the configured charts), with findings for what cannot be resolved.
pub fn discover(tree: &dyn Tree, config: &HelmConfig, options: &LoadOptions) -> Vec<Release> {
    let mut releases = configured_charts(tree, config);
    if config.releases {
        let index = ObjectIndex::build(tree, options);
        releases.extend(index.flux_releases(tree));
        releases.extend(index.argo_applications(tree));
    }
    releases
}

fn configured_charts(tree: &dyn Tree, config: &HelmConfig) -> Vec<Release> {
    let mut out = Vec::new();
    let files = tree.files_under("");
    for spec in &config.charts {
        let Ok(glob) = globset::Glob::new(spec.chart.trim_end_matches('/')) else {
            continue;
        };
        let matcher = glob.compile_matcher();
        for dir in files
            .iter()
            .filter_map(|p| p.strip_suffix("/Chart.yaml"))
            .filter(|d| matcher.is_match(d))
        {
            let values: Vec<ValuesSource> = spec
                .values
                .iter()
                .filter_map(|f| values_file(tree, f))
                .collect();
            let name = spec
                .release
                .clone()
                .unwrap_or_else(|| dir.rsplit('/').next().unwrap_or("release").to_string());
            let owner = spec
                .values
                .first()
                .cloned()
                .unwrap_or_else(|| format!("{dir}/Chart.yaml"));
            let mut inputs: BTreeSet<String> = spec.values.iter().cloned().collect();
            inputs.insert(dir.to_string());
            out.push(Release {
                label: format!("chart {dir}"),
                owner,
                owner_doc: 0,
                name,
                namespace: spec.namespace.clone(),
                chart: ChartSource::InRepo(dir.to_string()),
                values,
                parameters: Vec::new(),
                patches: Vec::new(),
                inputs,
                kustomize: None,
            });
        }
    }
    out
}

fn values_file(tree: &dyn Tree, path: &str) -> Option<ValuesSource> {
    let bytes = tree.read(path)?;
    let loaded = load_file(path, &bytes, &LoadOptions::default());
    let value = loaded.documents.into_iter().next().map(|d| d.value)?;
    Some(ValuesSource {
        file: path.to_string(),
        doc: 0,
        pointer: String::new(),
        value,
        secret: false,
    })
}

/// A manifest object with where it is.
struct Located {
    file: String,
    doc: usize,
    value: Value,
}

impl Located {
    fn str(&self, pointer: &str) -> Option<&str> {
        self.value.pointer(pointer).and_then(Value::as_str)
    }
    fn name(&self) -> &str {
        self.str("/metadata/name").unwrap_or("")
    }
    fn namespace(&self) -> Option<&str> {
        self.str("/metadata/namespace")
    }
}

/// The objects of the tree that releases refer to, by kind.
#[derive(Default)]
struct ObjectIndex {
    by_kind: BTreeMap<String, Vec<Located>>,
}

const KINDS: [&str; 8] = [
    "HelmRelease",
    "Application",
    "ApplicationSet",
    "HelmRepository",
    "OCIRepository",
    "GitRepository",
    "ConfigMap",
    "Secret",
];

impl ObjectIndex {
    fn build(tree: &dyn Tree, options: &LoadOptions) -> ObjectIndex {
        let mut index = ObjectIndex::default();
        for path in tree.files_under("") {
            if !(path.ends_with(".yaml") || path.ends_with(".yml")) {
                continue;
            }
            let Some(bytes) = tree.read(&path) else {
                continue;
            };
            let text = String::from_utf8_lossy(&bytes);
            if !text.contains("kind: HelmRelease") && !text.contains("kind: Application") {
                // ConfigMaps, Secrets and sources only matter when something refers to them, but
                // they may live in any file: index them too, cheaply filtered.
                if !KINDS.iter().any(|k| text.contains(&format!("kind: {k}"))) {
                    continue;
                }
            }
            for doc in load_file(&path, &bytes, options).documents {
                let Some(kind) = doc.kind().filter(|k| KINDS.contains(k)).map(str::to_owned) else {
                    continue;
                };
                index.by_kind.entry(kind).or_default().push(Located {
                    file: path.clone(),
                    doc: doc.index,
                    value: doc.value,
                });
            }
        }
        index
    }

    fn of(&self, kind: &str) -> &[Located] {
        self.by_kind.get(kind).map_or(&[], Vec::as_slice)
    }

    fn find(&self, kind: &str, name: &str, namespace: Option<&str>) -> Option<&Located> {
        self.of(kind).iter().find(|o| {
            o.name() == name
                && (namespace.is_none() || o.namespace().is_none() || o.namespace() == namespace)
        })
    }

    fn flux_releases(&self, tree: &dyn Tree) -> Vec<Release> {
        self.of("HelmRelease")
            .iter()
            .filter(|hr| {
                hr.str("/apiVersion")
                    .is_some_and(|a| a.starts_with("helm.toolkit.fluxcd.io/"))
            })
            .map(|hr| self.flux_release(tree, hr))
            .collect()
    }

    fn flux_release(&self, tree: &dyn Tree, hr: &Located) -> Release {
        let ns = hr.namespace();
        let target_ns = hr.str("/spec/targetNamespace");
        let name = hr
            .str("/spec/releaseName")
            .map(str::to_owned)
            .unwrap_or_else(|| match target_ns {
                Some(t) => format!("{t}-{}", hr.name()),
                None => hr.name().to_string(),
            });
        let mut inputs = BTreeSet::from([hr.file.clone()]);
        let chart = self.flux_chart(tree, hr, &mut inputs);
        let mut values = Vec::new();
        for from in hr
            .value
            .pointer("/spec/valuesFrom")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let kind = from.get("kind").and_then(Value::as_str).unwrap_or("");
            let from_name = from.get("name").and_then(Value::as_str).unwrap_or("");
            let key = from
                .get("valuesKey")
                .and_then(Value::as_str)
                .unwrap_or("values.yaml");
            let Some(obj) = self.find(kind, from_name, ns) else {
                continue;
            };
            inputs.insert(obj.file.clone());
            if let Some(v) =
                config_map_values(obj, key, from.get("targetPath").and_then(Value::as_str))
            {
                values.push(ValuesSource {
                    file: obj.file.clone(),
                    doc: obj.doc,
                    pointer: String::new(),
                    value: v,
                    secret: kind == "Secret",
                });
            }
        }
        if let Some(v) = hr.value.pointer("/spec/values").filter(|v| v.is_object()) {
            values.push(ValuesSource {
                file: hr.file.clone(),
                doc: hr.doc,
                pointer: "/spec/values".into(),
                value: v.clone(),
                secret: false,
            });
        }
        let patches = hr
            .value
            .pointer("/spec/postRenderers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| p.pointer("/kustomize/patches")?.as_array())
            .flatten()
            .cloned()
            .collect();
        Release {
            label: format!("HelmRelease {}/{}", ns.unwrap_or("default"), hr.name()),
            owner: hr.file.clone(),
            owner_doc: hr.doc,
            name,
            namespace: target_ns.or(ns).map(str::to_owned),
            chart,
            values,
            parameters: Vec::new(),
            patches,
            inputs,
            kustomize: None,
        }
    }

    fn flux_chart(
        &self,
        tree: &dyn Tree,
        hr: &Located,
        inputs: &mut BTreeSet<String>,
    ) -> ChartSource {
        let ns = hr.namespace();
        if let Some(chart_ref) = hr.value.pointer("/spec/chartRef") {
            let kind = chart_ref.get("kind").and_then(Value::as_str).unwrap_or("");
            let name = chart_ref.get("name").and_then(Value::as_str).unwrap_or("");
            let Some(source) = self.find(kind, name, ns) else {
                return ChartSource::Refused(format!(
                    "its chartRef {kind} `{name}` is not in the repository"
                ));
            };
            inputs.insert(source.file.clone());
            let url = source.str("/spec/url").unwrap_or("").to_string();
            let tag = source.str("/spec/ref/tag").unwrap_or("").to_string();
            let chart = url.rsplit('/').next().unwrap_or("").to_string();
            return ChartSource::Remote(RemoteChart {
                repository: url,
                name: chart,
                version: tag,
            });
        }
        let spec = hr.value.pointer("/spec/chart/spec");
        let field = |k: &str| {
            spec.and_then(|s| s.get(k))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let chart = field("chart");
        let kind = spec
            .and_then(|s| s.pointer("/sourceRef/kind"))
            .and_then(Value::as_str)
            .unwrap_or("");
        let source_name = spec
            .and_then(|s| s.pointer("/sourceRef/name"))
            .and_then(Value::as_str)
            .unwrap_or("");
        match kind {
            // The GitRepository is taken to be this repository: the chart is a path in it.
            "GitRepository" => in_repo_chart(tree, &chart, inputs),
            "HelmRepository" => {
                let source_ns = spec
                    .and_then(|s| s.pointer("/sourceRef/namespace"))
                    .and_then(Value::as_str)
                    .or(ns);
                let Some(repo) = self.find("HelmRepository", source_name, source_ns) else {
                    return ChartSource::Refused(format!(
                        "its HelmRepository `{source_name}` is not in the repository"
                    ));
                };
                inputs.insert(repo.file.clone());
                let url = repo.str("/spec/url").unwrap_or("").to_string();
                let url = if repo.str("/spec/type") == Some("oci") && !url.starts_with("oci://") {
                    format!("oci://{url}")
                } else {
                    url
                };
                ChartSource::Remote(RemoteChart {
                    repository: url,
                    name: chart,
                    version: field("version"),
                })
            }
            other => ChartSource::Refused(format!(
                "its chart source kind `{other}` is not rendered (GitRepository paths and \
                 HelmRepository charts are)"
            )),
        }
    }

    fn argo_applications(&self, tree: &dyn Tree) -> Vec<Release> {
        // Built once, and only when an Application renders a kustomization.
        let graph = std::cell::OnceCell::new();
        let generated: Vec<Located> = self
            .of("ApplicationSet")
            .iter()
            .flat_map(|set| generate(tree, set))
            .collect();
        self.of("Application")
            .iter()
            .chain(generated.iter())
            .filter(|a| {
                a.str("/apiVersion")
                    .is_some_and(|v| v.starts_with("argoproj.io/"))
            })
            .flat_map(|app| {
                let sources: Vec<Value> =
                    match app.value.pointer("/spec/sources").and_then(Value::as_array) {
                        Some(list) => list.clone(),
                        None => app
                            .value
                            .pointer("/spec/source")
                            .cloned()
                            .into_iter()
                            .collect(),
                    };
                sources
                    .into_iter()
                    .filter_map(|s| argo_release(tree, &graph, app, &s))
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

/// The Applications an ApplicationSet's `list` and `git` `directories` generators make (the git
/// generator's repository taken to be this one); other generators make none here.
fn generate(tree: &dyn Tree, set: &Located) -> Vec<Located> {
    let Some(template) = set.value.pointer("/spec/template") else {
        return Vec::new();
    };
    let go = set
        .value
        .pointer("/spec/goTemplate")
        .and_then(Value::as_bool)
        == Some(true);
    let mut params: Vec<Vec<(String, String)>> = Vec::new();
    for generator in set
        .value
        .pointer("/spec/generators")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for element in generator
            .pointer("/list/elements")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let mut flat = Vec::new();
            leaves(element, "", &mut flat);
            params.push(
                flat.into_iter()
                    .map(|(p, v)| {
                        let key = p.trim_start_matches('/').replace('/', ".");
                        (key, v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                    })
                    .collect(),
            );
        }
        params.extend(git_directories(tree, generator));
    }
    params
        .into_iter()
        .filter_map(|p| {
            let mut text = template.to_string();
            for (key, value) in &p {
                let escaped = serde_json::to_string(value).ok()?;
                let escaped = &escaped[1..escaped.len() - 1];
                let forms = if go {
                    vec![format!("{{{{.{key}}}}}"), format!("{{{{ .{key} }}}}")]
                } else {
                    vec![format!("{{{{{key}}}}}"), format!("{{{{ {key} }}}}")]
                };
                for form in forms {
                    text = text.replace(&form, escaped);
                }
            }
            let mut value: Value = serde_json::from_str(&text).ok()?;
            let map = value.as_object_mut()?;
            map.insert("apiVersion".into(), json!("argoproj.io/v1alpha1"));
            map.insert("kind".into(), json!("Application"));
            Some(Located {
                file: set.file.clone(),
                doc: set.doc,
                value,
            })
        })
        .collect()
}

/// `git.directories` of this repository: each directory matching a `path` glob (none matching an
/// `exclude: true` one), as `path`/`path.basename` parameters (`path.path` with goTemplate).
fn git_directories(tree: &dyn Tree, generator: &Value) -> Vec<Vec<(String, String)>> {
    let Some(entries) = generator
        .pointer("/git/directories")
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    let glob = |e: &Value| {
        e.get("path")
            .and_then(Value::as_str)
            .and_then(|p| globset::Glob::new(p).ok())
            .map(|g| g.compile_matcher())
    };
    let include: Vec<_> = entries
        .iter()
        .filter(|e| e.get("exclude").and_then(Value::as_bool) != Some(true))
        .filter_map(glob)
        .collect();
    let exclude: Vec<_> = entries
        .iter()
        .filter(|e| e.get("exclude").and_then(Value::as_bool) == Some(true))
        .filter_map(glob)
        .collect();
    let dirs: BTreeSet<String> = tree
        .files_under("")
        .iter()
        .filter_map(|f| f.rsplit_once('/').map(|(d, _)| d.to_string()))
        .collect();
    dirs.into_iter()
        .filter(|d| include.iter().any(|g| g.is_match(d)) && !exclude.iter().any(|g| g.is_match(d)))
        .map(|d| {
            let base = d.rsplit('/').next().unwrap_or("").to_string();
            vec![
                ("path".into(), d.clone()),
                ("path.path".into(), d.clone()),
                ("path.basename".into(), base.clone()),
                (
                    "path.basenameNormalized".into(),
                    base.replace(['_', '.'], "-").to_lowercase(),
                ),
            ]
        })
        .collect()
}

fn in_repo_chart(tree: &dyn Tree, path: &str, inputs: &mut BTreeSet<String>) -> ChartSource {
    let dir = path
        .trim_start_matches("./")
        .trim_end_matches('/')
        .to_string();
    if dir.split('/').any(|p| p == "..") || dir.starts_with('/') {
        return ChartSource::Refused(format!("its chart path `{path}` leaves the repository"));
    }
    if tree.read(&format!("{dir}/Chart.yaml")).is_none() {
        return ChartSource::Refused(format!(
            "its chart path `{path}` has no Chart.yaml in the repository"
        ));
    }
    inputs.insert(dir.clone());
    ChartSource::InRepo(dir)
}

/// The values a ConfigMap or Secret holds under `key` (Secret `data` base64-decoded), placed at
/// `target_path` when given.
fn config_map_values(obj: &Located, key: &str, target_path: Option<&str>) -> Option<Value> {
    let text = if let Some(s) = obj
        .value
        .pointer(&format!("/stringData/{}", escape(key)))
        .and_then(Value::as_str)
    {
        s.to_string()
    } else {
        let raw = obj
            .value
            .pointer(&format!("/data/{}", escape(key)))
            .and_then(Value::as_str)?;
        if obj.value.get("kind").and_then(Value::as_str) == Some("Secret") {
            let bytes = data_encoding::BASE64.decode(raw.trim().as_bytes()).ok()?;
            String::from_utf8(bytes).ok()?
        } else {
            raw.to_string()
        }
    };
    match target_path {
        Some(path) => {
            let mut root = Value::Object(Map::new());
            let mut cursor = &mut root;
            let parts: Vec<&str> = path.split('.').collect();
            for (i, part) in parts.iter().enumerate() {
                let map = cursor.as_object_mut()?;
                if i + 1 == parts.len() {
                    map.insert((*part).to_string(), Value::String(text.trim().to_string()));
                    break;
                }
                cursor = map.entry((*part).to_string()).or_insert_with(|| json!({}));
            }
            Some(root)
        }
        None => {
            let loaded = load_file(key, text.as_bytes(), &LoadOptions::default());
            loaded.documents.into_iter().next().map(|d| d.value)
        }
    }
}

fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn argo_release(
    tree: &dyn Tree,
    graph: &std::cell::OnceCell<KustomizeGraph>,
    app: &Located,
    source: &Value,
) -> Option<Release> {
    let s = |k: &str| source.pointer(k).and_then(Value::as_str);
    let helm = source.get("helm");
    let mut inputs = BTreeSet::from([app.file.clone()]);
    if let (None, Some(path), Some(kustomize)) = (s("/chart"), s("/path"), source.get("kustomize"))
        && tree
            .read(&format!("{}/Chart.yaml", normalize(path)))
            .is_none()
    {
        let graph = graph.get_or_init(|| KustomizeGraph::build(tree));
        return Some(argo_kustomize_release(graph, app, path, kustomize));
    }
    let chart = match (s("/chart"), s("/path")) {
        (Some(chart), _) => ChartSource::Remote(RemoteChart {
            repository: s("/repoURL").unwrap_or("").to_string(),
            name: chart.to_string(),
            version: s("/targetRevision").unwrap_or("").to_string(),
        }),
        (None, Some(path)) => {
            let dir = path.trim_start_matches("./").trim_end_matches('/');
            // A directory of plain manifests or a kustomization is not a Helm release.
            tree.read(&format!("{dir}/Chart.yaml"))?;
            in_repo_chart(tree, path, &mut inputs)
        }
        (None, None) => return None,
    };
    let base = match &chart {
        ChartSource::InRepo(dir) => dir.clone(),
        _ => String::new(),
    };
    let mut values = Vec::new();
    for file in helm
        .and_then(|h| h.get("valueFiles"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        // `$name/path`: a file of another source (`ref: name`), taken to be this repository.
        let path = match file.strip_prefix('$').and_then(|r| r.split_once('/')) {
            Some((_, rest)) => normalize(rest),
            None => normalize(&format!("{base}/{file}")),
        };
        inputs.insert(path.clone());
        values.extend(values_file(tree, &path));
    }
    if let Some(text) = helm.and_then(|h| h.get("values")).and_then(Value::as_str) {
        let loaded = load_file(&app.file, text.as_bytes(), &LoadOptions::default());
        if let Some(doc) = loaded.documents.into_iter().next() {
            values.push(ValuesSource {
                file: app.file.clone(),
                doc: app.doc,
                pointer: String::new(),
                value: doc.value,
                secret: false,
            });
        }
    }
    if let Some(obj) = helm
        .and_then(|h| h.get("valuesObject"))
        .filter(|v| v.is_object())
    {
        values.push(ValuesSource {
            file: app.file.clone(),
            doc: app.doc,
            pointer: pointer_of(app, "valuesObject"),
            value: obj.clone(),
            secret: false,
        });
    }
    let parameters = helm
        .and_then(|h| h.get("parameters"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let name = p.get("name")?.as_str()?.to_string();
            let value = match p.get("value")? {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let force = p
                .get("forceString")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            Some((name, value, force))
        })
        .collect();
    let name = helm
        .and_then(|h| h.get("releaseName"))
        .and_then(Value::as_str)
        .unwrap_or(app.name())
        .to_string();
    Some(Release {
        label: application_label(app),
        owner: app.file.clone(),
        owner_doc: app.doc,
        name,
        namespace: app.str("/spec/destination/namespace").map(str::to_owned),
        chart,
        values,
        parameters,
        patches: Vec::new(),
        inputs,
        kustomize: None,
    })
}

fn application_label(app: &Located) -> String {
    format!(
        "Application {}/{}",
        app.namespace().unwrap_or("argocd"),
        app.name()
    )
}

/// An Application whose source directory is a kustomization with `source.kustomize` overrides.
/// Its inputs are everything the kustomization reads; a reference kustomize must not follow, or
/// an override the gate does not model, makes it a refused (render/failed) release.
fn argo_kustomize_release(
    graph: &KustomizeGraph,
    app: &Located,
    path: &str,
    kustomize: &Value,
) -> Release {
    let dir = normalize(path);
    let mut inputs = graph.closure(&dir);
    // The repository's root as a directory would make every file an input; what kustomize reads
    // there is listed file by file.
    inputs.remove("");
    inputs.insert(app.file.clone());
    let refused: Vec<String> = graph
        .refused_refs(&dir)
        .iter()
        .map(|(file, r)| format!("{r} (in {file})"))
        .collect();
    let (chart, overrides) = match KustomizeOverrides::from_source(kustomize) {
        _ if !graph.dirs.contains_key(&dir) => (
            ChartSource::Refused(format!("`{dir}` holds no kustomization")),
            None,
        ),
        _ if !refused.is_empty() => (ChartSource::Refused(refused.join("; ")), None),
        // The overrides are built by a kustomization in a directory of the checkout, and
        // kustomize refuses a build whose source contains it ("cycle detected").
        Ok(_) if dir.is_empty() => (
            ChartSource::Refused(
                "its source path is the repository's root, which the gate cannot build with \
                 `kustomize` overrides; move the manifests into a directory and point `path` \
                 at it"
                    .to_string(),
            ),
            None,
        ),
        Ok(o) => (ChartSource::InRepo(dir), Some(o)),
        Err(why) => (ChartSource::Refused(why), None),
    };
    Release {
        label: application_label(app),
        owner: app.file.clone(),
        owner_doc: app.doc,
        name: app.name().to_string(),
        namespace: app.str("/spec/destination/namespace").map(str::to_owned),
        chart,
        values: Vec::new(),
        parameters: Vec::new(),
        patches: Vec::new(),
        inputs,
        kustomize: overrides,
    }
}

/// The pointer of `/spec/source/helm/<key>` (or the `sources` entry holding it).
fn pointer_of(app: &Located, key: &str) -> String {
    if app.value.pointer("/spec/source/helm").is_some() {
        return format!("/spec/source/helm/{key}");
    }
    let index = app
        .value
        .pointer("/spec/sources")
        .and_then(Value::as_array)
        .and_then(|l| {
            l.iter()
                .position(|s| s.pointer(&format!("/helm/{key}")).is_some())
        })
        .unwrap_or(0);
    format!("/spec/sources/{index}/helm/{key}")
}

fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

/// A release rendered at both sides.
pub struct RenderedRelease {
    pub release: Release,
    pub base: Vec<Value>,
    pub head: Vec<Value>,
}

#[derive(Default)]
pub struct HelmRendered {
    pub releases: Vec<RenderedRelease>,
    pub findings: Vec<Finding>,
    /// Repository paths whose change reaches the diff through a release.
    pub covered: BTreeSet<String>,
    /// Values the releases took from Secrets (`valuesFrom`): never shown, wherever they land.
    pub secrets: BTreeSet<String>,
}

/// Every string a Secret's values hold.
fn secret_strings(release: &Release, out: &mut BTreeSet<String>) {
    for source in release.values.iter().filter(|s| s.secret) {
        let mut found = Vec::new();
        leaves(&source.value, "", &mut found);
        out.extend(found.into_iter().map(|(_, v)| match v {
            Value::String(s) => s,
            other => other.to_string(),
        }));
    }
}

/// Replace each string that holds a secret value with `masked` (for the diff, which shows values).
pub fn mask_secrets(value: &mut Value, secrets: &BTreeSet<String>, masked: &str) {
    match value {
        Value::String(s)
            if secrets
                .iter()
                .any(|x| x.len() >= 4 && s.contains(x.as_str())) =>
        {
            *s = masked.to_string();
        }
        Value::Object(map) => map
            .values_mut()
            .for_each(|v| mask_secrets(v, secrets, masked)),
        Value::Array(items) => items
            .iter_mut()
            .for_each(|v| mask_secrets(v, secrets, masked)),
        _ => {}
    }
}

/// Render, at both sides, every release the change touches (its owner, values, chart or sources).
pub fn render_changed(
    base: &dyn Tree,
    head: &dyn Tree,
    config: &RenderConfig,
    changed: &BTreeSet<String>,
    options: &LoadOptions,
) -> HelmRendered {
    let mut out = HelmRendered::default();
    if !config.helm.wanted() {
        return out;
    }
    let sides = [
        discover(base, &config.helm, options),
        discover(head, &config.helm, options),
    ];
    let mut touched: BTreeMap<(String, String), [Option<Release>; 2]> = BTreeMap::new();
    for (slot, releases) in sides.into_iter().enumerate() {
        for r in releases.into_iter().filter(|r| r.touched_by(changed)) {
            let key = (r.owner.clone(), r.label.clone());
            touched.entry(key).or_default()[slot] = Some(r);
        }
    }
    if touched.is_empty() {
        return out;
    }
    // Values files and charts reach the diff through the release; a HelmRelease or Application
    // manifest is still shown itself.
    for r in touched.values().flat_map(|pair| pair.iter().flatten()) {
        out.covered.extend(
            changed
                .iter()
                .filter(|p| r.touched_by(&BTreeSet::from([(*p).clone()])))
                .filter(|p| !(r.declared_in_manifest() && **p == r.owner))
                .cloned(),
        );
    }
    let command = helm_command(config);
    let needs_helm: Vec<String> = touched
        .iter()
        .filter(|(_, pair)| pair.iter().flatten().any(Release::needs_helm))
        .map(|((_, l), _)| l.clone())
        .collect();
    if !needs_helm.is_empty() && !helm_available(&command) {
        out.findings.push(helm_missing(&command, &needs_helm));
        return out;
    }
    let mut rendered: [Vec<Option<RenderOutput>>; 2] = Default::default();
    for (slot, (side, tree)) in [("base", base), ("head", head)].into_iter().enumerate() {
        let releases: Vec<Option<&Release>> = touched.values().map(|p| p[slot].as_ref()).collect();
        let checkout = match write_checkout(tree, releases.iter().flatten().copied()) {
            Ok(c) => c,
            Err(e) => {
                out.findings.push(Finding::error(
                    Rule::RenderFailed,
                    format!("could not write a temporary checkout of {side}: {e}"),
                ));
                return out;
            }
        };
        rendered[slot] = releases
            .par_iter()
            .enumerate()
            .map(|(n, r)| r.map(|r| render_release(&checkout, r, n, &command, config, side)))
            .collect();
    }
    let [base_out, head_out] = rendered;
    for ((pair, b), h) in touched.into_values().zip(base_out).zip(head_out) {
        let failed = [&b, &h].iter().any(|o| {
            o.as_ref().is_some_and(|o| {
                o.findings
                    .iter()
                    .any(|f| f.severity == crate::finding::Severity::Error)
            })
        });
        out.findings
            .extend(b.iter().chain(h.iter()).flat_map(|o| o.findings.clone()));
        if failed {
            continue;
        }
        let [base_release, head_release] = pair;
        for r in [&base_release, &head_release].into_iter().flatten() {
            secret_strings(r, &mut out.secrets);
        }
        let Some(release) = head_release.or(base_release) else {
            continue;
        };
        let objects = |o: Option<RenderOutput>| -> Vec<Value> {
            o.map(|o| o.objects.into_iter().map(|r| r.value).collect())
                .unwrap_or_default()
        };
        out.releases.push(RenderedRelease {
            release,
            base: objects(b),
            head: objects(h),
        });
    }
    out
}

/// The in-repository charts and values files the releases read.
fn write_checkout<'r>(
    tree: &dyn Tree,
    releases: impl Iterator<Item = &'r Release>,
) -> std::io::Result<Checkout> {
    // A chart is its directory; a kustomization is everything it reads (its closure).
    let dirs: BTreeSet<String> = releases
        .flat_map(|r| match (&r.chart, &r.kustomize) {
            (ChartSource::InRepo(_), Some(_)) => r.inputs.iter().cloned().collect(),
            (ChartSource::InRepo(dir), None) => vec![dir.clone()],
            _ => Vec::new(),
        })
        .collect();
    Checkout::write(tree, &|p: &str| dirs.iter().any(|d| is_within(p, d)))
}

/// `helm template` for one release in a checkout; values are written beside it as files.
fn render_release(
    checkout: &Checkout,
    release: &Release,
    n: usize,
    command: &[String],
    config: &RenderConfig,
    side: &str,
) -> RenderOutput {
    let refused = |message: String| {
        failed(
            Finding::error(
                Rule::RenderFailed,
                format!("{} at {side} is not rendered: {message}", release.label),
            )
            .in_file(&release.owner),
        )
    };
    let work = format!(".stategate-helm/{n}");
    let chart = match &release.chart {
        ChartSource::InRepo(dir) if let Some(overrides) = &release.kustomize => {
            return argo_kustomize::render(
                checkout,
                overrides,
                dir,
                &work,
                release.namespace.as_deref(),
                &super::kustomize_command(config),
                &release.owner,
                side,
            );
        }
        ChartSource::InRepo(dir) => dir.clone(),
        ChartSource::Refused(why) => return refused(why.clone()),
        ChartSource::Remote(remote) => {
            match helm_cache::chart_archive(remote, &config.helm.repositories, config.helm.network)
            {
                Ok(archive) => {
                    let path = format!("{work}/chart.tgz");
                    let bytes = match std::fs::read(&archive) {
                        Ok(b) => b,
                        Err(e) => return refused(format!("cannot read the cached chart: {e}")),
                    };
                    if let Err(e) = checkout.sandbox.write_file(&path, &bytes) {
                        return refused(e.to_string());
                    }
                    path
                }
                Err(e) => {
                    let help = match &e {
                        FetchError::NotAllowed(_) => {
                            "add the repository to `render.helm.repositories` in the trusted config, or vendor the chart into the repository"
                        }
                        FetchError::Offline => {
                            "set `render.helm.network: true` where the gate may fetch, or vendor the chart"
                        }
                        _ => "vendor the chart into the repository",
                    };
                    let mut finding = Finding::error(
                        Rule::RenderFailed,
                        format!(
                            "{} at {side} is not rendered: chart `{}` {e}",
                            release.label, remote.name
                        ),
                    )
                    .in_file(&release.owner)
                    .help(help);
                    if let FetchError::NotAllowed(url) = &e {
                        finding = finding.with_meta("url", url.clone());
                    }
                    return failed(finding);
                }
            }
        }
    };
    let mut args: Vec<String> = vec![
        "template".into(),
        release.name.clone(),
        chart.clone(),
        "--include-crds".into(),
        "--skip-tests".into(),
    ];
    if let Some(ns) = &release.namespace {
        args.extend(["--namespace".into(), ns.clone()]);
    }
    for (i, values) in release.values.iter().enumerate() {
        let path = format!("{work}/values-{i}.json");
        if let Err(e) = checkout
            .sandbox
            .write_file(&path, values.value.to_string().as_bytes())
        {
            return refused(e.to_string());
        }
        args.extend(["--values".into(), path]);
    }
    for (name, value, force) in &release.parameters {
        let flag = if *force { "--set-string" } else { "--set" };
        args.extend([flag.into(), format!("{name}={value}")]);
    }
    let mut full = command.to_vec();
    full.extend(args);
    let output = super::run(
        checkout,
        &full,
        &[],
        &chart,
        &release.owner,
        side,
        Renderer::Helm,
    );
    if release.patches.is_empty() || !output.findings.is_empty() {
        return output;
    }
    post_render(checkout, release, &work, output, config, side)
}

/// Flux's kustomize post-renderer: the rendered objects as a kustomization's resource, with the
/// HelmRelease's patches.
fn post_render(
    checkout: &Checkout,
    release: &Release,
    work: &str,
    output: RenderOutput,
    config: &RenderConfig,
    side: &str,
) -> RenderOutput {
    let dir = format!("{work}/post");
    let objects: Vec<String> = output.objects.iter().map(|o| o.value.to_string()).collect();
    let kustomization = json!({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": ["rendered.yaml"],
        "patches": release.patches,
    });
    let written = checkout
        .sandbox
        .write_file(
            &format!("{dir}/rendered.yaml"),
            objects.join("\n---\n").as_bytes(),
        )
        .and_then(|()| {
            checkout.sandbox.write_file(
                &format!("{dir}/kustomization.yaml"),
                kustomization.to_string().as_bytes(),
            )
        });
    if let Err(e) = written {
        return failed(Finding::error(Rule::RenderFailed, e.to_string()).in_file(&release.owner));
    }
    let command = super::kustomize_command(config);
    let mut result = super::run(
        checkout,
        &command,
        &[&dir],
        &dir,
        &release.owner,
        side,
        Renderer::Helm,
    );
    for o in &mut result.objects {
        o.dir.clone_from(
            &output
                .objects
                .first()
                .map(|f| f.dir.clone())
                .unwrap_or_default(),
        );
    }
    result
}

/// Move a finding about a rendered object to the values line that set the offending value, when
/// one value of the release's values is what the finding is about: the value at the field the
/// policy named, a value of the object quoted in the message, or a value the change altered in
/// the object. Else to the release's manifest.
pub fn relocate(
    finding: &mut Finding,
    object: &Value,
    before: Option<&Value>,
    release: &Release,
    head: &dyn Tree,
) {
    let mut candidates: Vec<Value> = Vec::new();
    if let Some(pointer) = finding
        .metadata
        .get("field")
        .or_else(|| finding.metadata.get("path"))
        .and_then(Value::as_str)
        .map(hint_pointer)
        && let Some(v) = object.pointer(&pointer)
    {
        candidates.push(v.clone());
    }
    let mut quoted = Vec::new();
    leaves(object, "", &mut quoted);
    candidates.extend(quoted.into_iter().map(|(_, v)| v).filter(|v| {
        v.as_str()
            .is_some_and(|s| s.len() > 2 && finding.message.contains(s))
    }));
    // Without a named field, the values the change altered in the object are the suspects.
    if let Some(before) = before {
        let mut was = Vec::new();
        leaves(before, "", &mut was);
        let was: BTreeMap<String, Value> = was.into_iter().collect();
        let mut now = Vec::new();
        leaves(object, "", &mut now);
        candidates.extend(
            now.into_iter()
                .filter(|(p, v)| was.get(p) != Some(v))
                .map(|(_, v)| v),
        );
    }
    // Later values override earlier ones: search them last to first.
    for source in release.values.iter().rev().filter(|s| !s.secret) {
        let mut set = Vec::new();
        leaves(&source.value, "", &mut set);
        let hit = set
            .iter()
            .find(|(_, leaf)| candidates.iter().any(|c| sets(leaf, c)));
        if let Some((pointer, _)) = hit
            && let Some(location) = locate(
                head,
                &source.file,
                source.doc,
                &format!("{}{pointer}", source.pointer),
            )
        {
            finding.location = Some(location);
            return;
        }
    }
    if let Some(location) = locate(head, &release.owner, release.owner_doc, "") {
        finding.location = Some(location);
    }
}

/// Whether a values leaf explains a rendered value: the same value, or the tail of a string
/// (`tag: latest` in `ghcr.io/x/podinfo:latest`).
fn sets(leaf: &Value, rendered: &Value) -> bool {
    if leaf == rendered {
        return true;
    }
    match (leaf.as_str(), rendered.as_str()) {
        (Some(l), Some(r)) if l.len() >= 2 => {
            r.ends_with(&format!(":{l}"))
                || r.ends_with(&format!("/{l}"))
                || r.ends_with(&format!("@{l}"))
        }
        _ => false,
    }
}

fn leaves(value: &Value, pointer: &str, out: &mut Vec<(String, Value)>) {
    match value {
        Value::Object(map) => map
            .iter()
            .for_each(|(k, v)| leaves(v, &format!("{pointer}/{}", escape(k)), out)),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .for_each(|(i, v)| leaves(v, &format!("{pointer}/{i}"), out)),
        other => out.push((pointer.to_string(), other.clone())),
    }
}

fn hint_pointer(hint: &str) -> String {
    if hint.starts_with('/') {
        return hint.to_string();
    }
    hint.split('.')
        .filter(|p| !p.is_empty())
        .flat_map(|part| {
            let mut pieces = part.split('[');
            let key = pieces.next().unwrap_or_default().to_string();
            std::iter::once(key)
                .filter(|k| !k.is_empty())
                .map(|k| escape(&k))
                .chain(pieces.map(|i| i.trim_end_matches(']').to_string()))
                .collect::<Vec<_>>()
        })
        .map(|p| format!("/{p}"))
        .collect()
}

fn locate(tree: &dyn Tree, file: &str, doc: usize, pointer: &str) -> Option<Location> {
    let bytes = tree.read(file)?;
    let loaded = load_file(file, &bytes, &LoadOptions::default());
    let document: &Document = loaded.documents.iter().find(|d| d.index == doc)?;
    Some(document.locate(pointer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_value_explains_the_image_it_ends() {
        assert!(sets(&json!("latest"), &json!("ghcr.io/x/podinfo:latest")));
        assert!(sets(&json!(0), &json!(0)));
        assert!(!sets(&json!("test"), &json!("ghcr.io/x/podinfo:latest")));
    }

    #[test]
    fn policy_field_hints_become_pointers() {
        assert_eq!(
            hint_pointer("spec.template.spec.containers[0].image"),
            "/spec/template/spec/containers/0/image"
        );
    }
}
