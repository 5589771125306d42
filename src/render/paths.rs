//! Every path a kustomization makes kustomize read, resolved against the repository root before
//! kustomize runs. kustomize itself would follow `../../..` out of the checkout, fetch URLs in any
//! field that takes a file (`HTTP://` as well as `https://`, with or without a query), and run
//! plugins' own path fields; so every such field is listed here, and a reference that is remote,
//! absolute or outside the repository, or a field the gate does not know, is refused.
//!
//! Plugin configurations (`transformers`, `generators`, `validators`) have fields of their own: any
//! key that names files in a built-in plugin is resolved the same way, and any string in them that
//! looks like a URL is refused.

use serde_json::Value;

use crate::load::{LoadOptions, load_file};
use crate::tree::{Tree, join};

use super::graph::{KUSTOMIZATION_FILES, split};

/// Why a reference is not handed to kustomize.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// kustomize would fetch it over the network.
    Remote,
    /// An absolute path reads the gate's file system, not the repository.
    Absolute,
    /// `..` climbs out of the repository.
    OutsideRepository,
    /// A field the gate cannot tell reads no files.
    UnknownField,
    /// A KRM function runs a program or a container.
    Function,
}

impl Reason {
    pub fn describe(self) -> &'static str {
        match self {
            Reason::Remote => "is remote; the gate renders without network",
            Reason::Absolute => "is an absolute path outside the repository",
            Reason::OutsideRepository => "leaves the repository",
            Reason::UnknownField => {
                "is a field the gate does not know, so it cannot tell what it reads"
            }
            Reason::Function => "is a KRM function, which runs a program or container",
        }
    }
}

/// A reference refused, and where: `configMapGenerator[0].envs[1]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub field: String,
    pub value: String,
    pub reason: Reason,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}: {}` {}",
            self.field,
            self.value,
            self.reason.describe()
        )
    }
}

#[derive(Debug, Default)]
pub struct Scanned {
    /// Repository paths read, normalised.
    pub refs: Vec<String>,
    pub refused: Vec<Refusal>,
}

/// Fields of a kustomization (kustomize v5 `types.Kustomization`) that name nothing to read.
const PLAIN_FIELDS: &[&str] = &[
    "apiVersion",
    "kind",
    "metadata",
    "namePrefix",
    "nameSuffix",
    "namespace",
    "commonLabels",
    "labels",
    "commonAnnotations",
    "images",
    "imageTags",
    "replicas",
    "vars",
    "sortOptions",
    "generatorOptions",
    "buildMetadata",
];

/// Fields whose items are paths (or, for `patchesStrategicMerge`, inline patches).
const PATH_LIST_FIELDS: &[&str] = &[
    "resources",
    "bases",
    "components",
    "crds",
    "configurations",
    "patchesStrategicMerge",
];

/// Fields whose items are objects with a `path`.
const PATH_ITEM_FIELDS: &[&str] = &["patches", "patchesJson6902", "replacements"];

/// Fields whose items are plugin configurations: a file, a directory of them, or inline YAML.
const PLUGIN_FIELDS: &[&str] = &["transformers", "generators", "validators"];

/// Keys of built-in plugins' configurations that name files or directories to read.
const PLUGIN_PATH_KEYS: &[&str] = &[
    "path",
    "paths",
    "files",
    "envs",
    "env",
    "valuesFile",
    "additionalValuesFiles",
    "chartHome",
    "configHome",
    "values",
];

/// Keys of plugin configurations that carry data for the objects, not places to read: a URL in
/// them is a value (`literals: [API=https://…]`), not a fetch.
const DATA_KEYS: &[&str] = &[
    "literals",
    "patch",
    "valuesInline",
    "options",
    "metadata",
    "fieldSpecs",
    "target",
    "select",
    "reject",
];

/// Keys whose value kustomize (through helm) fetches from.
const FETCH_KEYS: &[&str] = &["repo", "chartRepoUrl"];

/// How deep plugin directories may nest before the gate stops following them.
const MAX_PLUGIN_DEPTH: usize = 8;

/// Every path the kustomization at `dir` reads, and every reference it must not.
pub fn scan(tree: &dyn Tree, dir: &str, kustomization: &Value) -> Scanned {
    let mut scan = Scan {
        tree,
        out: Scanned::default(),
    };
    let Some(fields) = kustomization.as_object() else {
        return scan.out;
    };
    for (field, value) in fields {
        scan.field(dir, field, value);
    }
    scan.out
}

struct Scan<'t> {
    tree: &'t dyn Tree,
    out: Scanned,
}

impl Scan<'_> {
    fn field(&mut self, dir: &str, field: &str, value: &Value) {
        let f = field;
        match field {
            _ if PLAIN_FIELDS.contains(&f) => {}
            _ if PATH_LIST_FIELDS.contains(&f) => {
                for (i, item) in items(value) {
                    match item.as_str() {
                        Some(s) if f == "patchesStrategicMerge" && is_inline(s) => {}
                        Some(s) => self.path(dir, &format!("{f}[{i}]"), s),
                        None => {}
                    }
                }
            }
            _ if PATH_ITEM_FIELDS.contains(&f) => {
                for (i, item) in items(value) {
                    if let Some(s) = item.get("path").and_then(Value::as_str) {
                        self.path(dir, &format!("{f}[{i}].path"), s);
                    }
                }
            }
            _ if PLUGIN_FIELDS.contains(&f) => {
                for (i, item) in items(value) {
                    let at = format!("{f}[{i}]");
                    match item.as_str() {
                        Some(s) if is_inline(s) => self.inline_plugins(dir, &at, s),
                        Some(s) => self.plugin_reference(dir, &at, s, 0),
                        None => self.plugin(dir, &at, item),
                    }
                }
            }
            "configMapGenerator"
            | "secretGenerator"
            | "helmCharts"
            | "helmChartInflationGenerator" => {
                for (i, item) in items(value) {
                    self.plugin(dir, &format!("{f}[{i}]"), item);
                }
            }
            "helmGlobals" | "openapi" => self.plugin(dir, f, value),
            _ => self.refuse(f, &compact(value), Reason::UnknownField),
        }
    }

    /// A reference to a file or directory.
    fn path(&mut self, dir: &str, field: &str, raw: &str) {
        let raw = raw.trim();
        if raw.is_empty() {
            return;
        }
        match check(self.tree, dir, raw) {
            Ok(resolved) => self.out.refs.push(resolved),
            Err(reason) => self.refuse(field, raw, reason),
        }
    }

    fn refuse(&mut self, field: &str, value: &str, reason: Reason) {
        self.out.refused.push(Refusal {
            field: field.to_owned(),
            value: value.to_owned(),
            reason,
        });
    }

    /// A plugin configuration file, or a directory whose kustomization lists them.
    fn plugin_reference(&mut self, dir: &str, field: &str, raw: &str, depth: usize) {
        let before = self.out.refs.len();
        self.path(dir, field, raw);
        let Some(resolved) = self.out.refs.get(before).cloned() else {
            return;
        };
        if let Some(bytes) = self.tree.read(&resolved) {
            let text = String::from_utf8_lossy(&bytes);
            self.inline_plugins(split(&resolved).0, field, &text);
            return;
        }
        if depth >= MAX_PLUGIN_DEPTH {
            return self.refuse(field, raw, Reason::UnknownField);
        }
        for name in KUSTOMIZATION_FILES {
            let file = join(&resolved, name);
            let Some(bytes) = self.tree.read(&file) else {
                continue;
            };
            let loaded = load_file(&file, &bytes, &LoadOptions::default());
            for doc in loaded.documents {
                for (i, item) in items(doc.value.get("resources").unwrap_or(&Value::Null)) {
                    if let Some(s) = item.as_str() {
                        let at = format!("{field} ({file} resources[{i}])");
                        self.plugin_reference(&resolved, &at, s, depth + 1);
                    }
                }
            }
        }
    }

    /// Plugin configurations written as YAML (one or more documents).
    fn inline_plugins(&mut self, dir: &str, field: &str, text: &str) {
        let loaded = load_file(field, text.as_bytes(), &LoadOptions::default());
        for doc in loaded.documents {
            self.plugin(dir, field, &doc.value);
        }
    }

    /// One plugin configuration: its file-naming keys resolved, its URLs and functions refused.
    fn plugin(&mut self, dir: &str, field: &str, value: &Value) {
        let annotations = value.pointer("/metadata/annotations");
        for key in ["config.kubernetes.io/function", "config.k8s.io/function"] {
            if annotations.and_then(|a| a.get(key)).is_some() {
                self.refuse(field, key, Reason::Function);
            }
        }
        self.walk(dir, field, value);
    }

    fn walk(&mut self, dir: &str, at: &str, value: &Value) {
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    let here = format!("{at}.{key}");
                    if PLUGIN_PATH_KEYS.contains(&key.as_str()) {
                        self.plugin_paths(dir, &here, key, child);
                    } else if FETCH_KEYS.contains(&key.as_str()) {
                        if let Some(s) = child.as_str().filter(|s| !s.trim().is_empty()) {
                            self.refuse(&here, s, Reason::Remote);
                        }
                    } else if !DATA_KEYS.contains(&key.as_str()) {
                        self.walk(dir, &here, child);
                    }
                }
            }
            Value::Array(list) => {
                for (i, child) in list.iter().enumerate() {
                    self.walk(dir, &format!("{at}[{i}]"), child);
                }
            }
            Value::String(s) if looks_like_url(s) => self.refuse(at, s, Reason::Remote),
            _ => {}
        }
    }

    /// The value of a file-naming key: a path, a list of paths, or (for `values`) a map.
    fn plugin_paths(&mut self, dir: &str, at: &str, key: &str, value: &Value) {
        let generator_source = matches!(key, "files" | "envs" | "env");
        match value {
            Value::String(s) if generator_source => self.path(dir, at, file_source(s)),
            Value::String(s) => self.path(dir, at, s),
            Value::Array(list) => {
                for (i, item) in list.iter().enumerate() {
                    let here = format!("{at}[{i}]");
                    match item.as_str() {
                        Some(s) if generator_source => self.path(dir, &here, file_source(s)),
                        Some(s) => self.path(dir, &here, s),
                        None => self.walk(dir, &here, item),
                    }
                }
            }
            other => self.walk(dir, at, other),
        }
    }
}

/// `files: [key=path]` names the key and then the file.
fn file_source(entry: &str) -> &str {
    entry.split_once('=').map_or(entry, |(_, path)| path)
}

/// An inline patch or plugin configuration rather than a file name.
fn is_inline(s: &str) -> bool {
    s.contains('\n') || s.trim_start().starts_with('{')
}

/// The repository path `raw` names from `dir`, or why it may not be read.
fn check(tree: &dyn Tree, dir: &str, raw: &str) -> Result<String, Reason> {
    if is_remote(raw) {
        return Err(Reason::Remote);
    }
    if raw.starts_with('/') || raw.starts_with('\\') {
        return Err(Reason::Absolute);
    }
    let resolved = resolve(dir, raw).ok_or(Reason::OutsideRepository)?;
    // kustomize tries a reference it cannot find locally as a git URL (`example.com/org/repo`).
    if looks_like_host(raw) && !exists(tree, &resolved) {
        return Err(Reason::Remote);
    }
    Ok(resolved)
}

/// kustomize, helm and git fetch these; `://` in any case, scp-like `user@host:path`, queries
/// (`?ref=`), and the hosts kustomize knows without a scheme.
pub fn is_remote(reference: &str) -> bool {
    const HOSTS: &[&str] = &[
        "git@",
        "github.com",
        "gitlab.com",
        "bitbucket.org",
        "ssh.dev.azure.com",
        "dev.azure.com",
    ];
    let lower = reference.trim().to_ascii_lowercase();
    lower.contains(':')
        || lower.contains('?')
        || lower.starts_with("//")
        || HOSTS.iter().any(|h| lower.starts_with(h))
}

/// A URL among other strings of a plugin configuration, where colons are common.
fn looks_like_url(s: &str) -> bool {
    let lower = s.trim().to_ascii_lowercase();
    lower.contains("://") || lower.starts_with("git@") || lower.starts_with("github.com/")
}

/// `example.com/org/repo`: a first segment with a dot inside, and more after it.
fn looks_like_host(raw: &str) -> bool {
    let mut segments = raw.split('/');
    let first = segments.next().unwrap_or_default();
    let inner_dot = first.trim_start_matches('.').contains('.');
    inner_dot && segments.any(|s| !s.is_empty())
}

fn exists(tree: &dyn Tree, path: &str) -> bool {
    tree.read(path).is_some() || !tree.files_under(path).is_empty()
}

/// `dir` joined with a relative reference, `.`/`..` resolved; `None` if it leaves the repository.
pub fn resolve(dir: &str, reference: &str) -> Option<String> {
    let mut parts: Vec<&str> = dir.split('/').filter(|s| !s.is_empty()).collect();
    for seg in reference.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            s => parts.push(s),
        }
    }
    Some(parts.join("/"))
}

fn items(value: &Value) -> impl Iterator<Item = (usize, &Value)> {
    value.as_array().into_iter().flatten().enumerate()
}

fn compact(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(80) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::MemTree;

    fn tree(files: &[(&str, &str)]) -> MemTree {
        MemTree::with_files("test", files)
    }

    fn refused(files: &[(&str, &str)], kustomization: Value) -> Vec<(String, Reason)> {
        scan(&tree(files), "apps/prod", &kustomization)
            .refused
            .into_iter()
            .map(|r| (r.field, r.reason))
            .collect()
    }

    #[test]
    fn references_resolve_relative_to_the_kustomization() {
        assert_eq!(
            resolve("a/b/overlays/prod", "../../base").as_deref(),
            Some("a/b/base")
        );
        assert_eq!(resolve("a", "./x.yaml").as_deref(), Some("a/x.yaml"));
        assert_eq!(resolve("", "../x"), None);
    }

    #[test]
    fn remote_references_are_recognised_in_any_case_and_form() {
        for remote in [
            "github.com/org/repo//deploy?ref=v1",
            "https://example.com/x.yaml",
            "HTTP://127.0.0.1:8080/x.env",
            "Https://example.com/x",
            "git@example.com:org/repo",
            "x.yaml?a=1",
            "file:///etc/passwd",
            "oci://registry/chart",
        ] {
            assert!(is_remote(remote), "{remote}");
        }
        assert!(!is_remote("../base"));
        assert!(!is_remote("deployment.yaml"));
    }

    #[test]
    fn local_references_of_every_field_are_collected() {
        let v = serde_json::json!({
            "resources": ["../../base", "deploy.yaml"],
            "patches": [{"path": "patch.yaml"}, {"patch": "- op: x\n"}],
            "patchesStrategicMerge": ["psm.yaml", "apiVersion: v1\nkind: X\n"],
            "configMapGenerator": [{"name": "c", "files": ["cfg=conf/app.ini"], "envs": ["a.env"]}],
            "openapi": {"path": "schema.json"},
            "configurations": ["conf.yaml"],
            "crds": ["crd.json"],
        });
        let found = scan(&tree(&[]), "apps/prod", &v);
        assert!(found.refused.is_empty(), "{:?}", found.refused);
        let mut refs = found.refs;
        refs.sort();
        assert_eq!(
            refs,
            vec![
                "apps/prod/a.env",
                "apps/prod/conf.yaml",
                "apps/prod/conf/app.ini",
                "apps/prod/crd.json",
                "apps/prod/deploy.yaml",
                "apps/prod/patch.yaml",
                "apps/prod/psm.yaml",
                "apps/prod/schema.json",
                "base",
            ]
        );
    }

    #[test]
    fn remote_absolute_escaping_and_unknown_references_are_refused() {
        let v = serde_json::json!({
            "resources": ["../../../../../../secrets", "/etc/secrets", "example.com/org/repo"],
            "configMapGenerator": [{"name": "c", "envs": ["HTTP://127.0.0.1:1/x.env"]}],
            "openapi": {"path": "https://example.com/schema.json"},
            "generators": ["gen.yaml"],
            "helmCharts": [{"name": "x", "repo": "https://charts.example.com"}],
            "surprise": ["x.yaml"],
        });
        let files = [(
            "apps/prod/gen.yaml",
            "apiVersion: builtin\nkind: ConfigMapGenerator\nmetadata:\n  name: g\nfiles:\n  - https://example.com/a\n",
        )];
        let got = refused(&files, v);
        let expect = [
            ("configMapGenerator[0].envs[0]", Reason::Remote),
            ("generators[0].files[0]", Reason::Remote),
            ("helmCharts[0].repo", Reason::Remote),
            ("openapi.path", Reason::Remote),
            ("resources[0]", Reason::OutsideRepository),
            ("resources[1]", Reason::Absolute),
            ("resources[2]", Reason::Remote),
            ("surprise", Reason::UnknownField),
        ];
        for (field, reason) in expect {
            assert!(
                got.iter().any(|(f, r)| f == field && *r == reason),
                "{field}: {got:?}"
            );
        }
        assert_eq!(got.len(), expect.len(), "{got:?}");
    }

    #[test]
    fn functions_are_refused() {
        let v = serde_json::json!({
            "transformers": ["apiVersion: x\nkind: Fn\nmetadata:\n  name: f\n  annotations:\n    config.kubernetes.io/function: |\n      exec:\n        path: ./run.sh\n"],
        });
        let got = refused(&[], v);
        assert!(
            got.contains(&("transformers[0]".into(), Reason::Function)),
            "{got:?}"
        );
    }
}
