//! Renderers: turn kustomize overlays and Helm charts into the objects they produce, by running the
//! real tools (`kubectl kustomize` / `kustomize build`, `helm template`) in a temporary checkout of
//! one revision. Failures are `render/failed` findings carrying the tool's message, never panics.
//! The gate has no network: remote bases are refused, with the URL, before kustomize runs.

pub mod argo_kustomize;
pub mod batch;
pub mod cache;
pub mod flux;
pub mod flux_patches;
pub mod graph;
pub mod helm;
pub mod helm_cache;
pub mod overlays;
pub mod patches;
pub mod paths;
pub mod sandbox;
pub mod scan_cache;
pub mod target_namespace;

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::config::RenderConfig;
use crate::finding::{Finding, Location, Rule};
use crate::load::{LoadOptions, load_file};
use crate::tree::Tree;

pub use graph::KustomizeGraph;
pub use sandbox::Sandbox;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Renderer {
    Kustomize,
    Helm,
}

/// An object a renderer produced, with the directory (kustomization or chart) that produced it.
#[derive(Debug, Clone)]
pub struct RenderedObject {
    pub value: Value,
    pub dir: String,
    pub renderer: Renderer,
    /// The repository file the object came from, where kustomize says (origin annotations).
    pub origin: Option<String>,
}

#[derive(Debug, Default)]
pub struct RenderOutput {
    pub objects: Vec<RenderedObject>,
    pub findings: Vec<Finding>,
}

/// A revision's files written to a private temporary directory (see [`sandbox`]), removed again
/// on drop.
pub struct Checkout {
    sandbox: Sandbox,
}

impl Checkout {
    /// Write the files `wanted` accepts (all of them for `|_| true`).
    pub fn write(tree: &dyn Tree, wanted: &dyn Fn(&str) -> bool) -> std::io::Result<Checkout> {
        let checkout = Checkout {
            sandbox: Sandbox::create()?,
        };
        for path in tree.files_under("").into_iter().filter(|p| wanted(p)) {
            let Some(bytes) = tree.read(&path) else {
                continue;
            };
            checkout.sandbox.write_file(&path, &bytes)?;
        }
        Ok(checkout)
    }

    /// Write what rendering `roots` reads: their kustomizations' closures, plus every file beside
    /// a kustomization in them (kustomize reads a few by convention, not by reference).
    pub fn for_roots(
        tree: &dyn Tree,
        graph: &KustomizeGraph,
        roots: &std::collections::BTreeSet<String>,
    ) -> std::io::Result<Checkout> {
        let closure: std::collections::BTreeSet<String> =
            roots.iter().flat_map(|r| graph.closure(r)).collect();
        Checkout::write(tree, &|p: &str| {
            let dir = graph::split(p).0;
            closure.contains(p) || graph.dirs.contains_key(dir) && closure.contains(dir)
        })
    }

    pub fn root(&self) -> PathBuf {
        self.sandbox.tree()
    }

    /// Ask kustomize to annotate each object with the file it came from, by adding
    /// `buildMetadata: [originAnnotations]` to the kustomizations about to be rendered (in this
    /// temporary copy only; one that already sets `buildMetadata` is left as it is).
    pub fn annotate_origins(&self, graph: &KustomizeGraph, dirs: &[String]) {
        for dir in dirs {
            let Some(k) = graph.dirs.get(dir) else {
                continue;
            };
            let Ok(text) = std::fs::read_to_string(self.root().join(&k.file)) else {
                continue;
            };
            if text.contains("buildMetadata") || text.trim_start().starts_with('{') {
                continue;
            }
            let separator = if text.ends_with('\n') { "" } else { "\n" };
            let _ = self.sandbox.write_file(
                &k.file,
                format!("{text}{separator}buildMetadata: [originAnnotations]\n").as_bytes(),
            );
        }
    }
}

/// The kustomize command: the configured one, else `kustomize build` when installed, else
/// `kubectl kustomize`.
pub fn kustomize_command(config: &RenderConfig) -> Vec<String> {
    if let Some(cmd) = config.kustomize_command.as_ref().filter(|c| !c.is_empty()) {
        return cmd.clone();
    }
    if on_path("kustomize") {
        vec!["kustomize".into(), "build".into()]
    } else {
        vec!["kubectl".into(), "kustomize".into()]
    }
}

pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// Render one kustomization directory of a checkout. `side` ("base"/"head") goes into messages.
pub fn render_kustomize(
    checkout: &Checkout,
    graph: &KustomizeGraph,
    dir: &str,
    command: &[String],
    side: &str,
) -> RenderOutput {
    let Some(k) = graph.dirs.get(dir) else {
        // No kustomization on this side: the directory renders to nothing.
        return RenderOutput::default();
    };
    let refused = graph.refused_refs(dir);
    if !refused.is_empty() {
        return failed(refusal_finding(dir, side, &k.file, &refused));
    }
    let target = if dir.is_empty() { "." } else { dir };
    run(
        checkout,
        command,
        &[target],
        dir,
        &k.file,
        side,
        Renderer::Kustomize,
    )
}

/// The static guard's verdict: every reference kustomize must not follow, with the file it is in.
fn refusal_finding(
    dir: &str,
    side: &str,
    file: &str,
    refused: &[(String, paths::Refusal)],
) -> Finding {
    let listed: Vec<String> = refused
        .iter()
        .map(|(in_file, r)| {
            if in_file == file {
                r.to_string()
            } else {
                format!("{r} (in {in_file})")
            }
        })
        .collect();
    let shown = if dir.is_empty() { "." } else { dir };
    let values: Vec<&str> = refused.iter().map(|(_, r)| r.value.as_str()).collect();
    let remote = refused
        .iter()
        .any(|(_, r)| r.reason == paths::Reason::Remote);
    Finding::error(
        Rule::RenderFailed,
        format!(
            "kustomization `{shown}` at {side} is not rendered: {}",
            listed.join("; ")
        ),
    )
    .at(Location::file(&refused[0].0))
    .help(if remote {
        "vendor the remote content into the repository, or exclude the directory from rendering; \
         the gate renders without network and reads only the repository"
    } else {
        "reference only files and directories inside the repository, in fields kustomize documents"
    })
    .with_meta("refused", values)
}

fn run(
    checkout: &Checkout,
    command: &[String],
    args: &[&str],
    dir: &str,
    file: &str,
    side: &str,
    renderer: Renderer,
) -> RenderOutput {
    let shown = format!("{} {}", command.join(" "), args.join(" "));
    let Some((program, rest)) = command.split_first() else {
        return failed(Finding::error(Rule::RenderFailed, "empty render command").in_file(file));
    };
    let all_args: Vec<&str> = rest
        .iter()
        .map(String::as_str)
        .chain(args.iter().copied())
        .collect();
    let result = checkout.sandbox.output(program, &all_args);
    let output = match result {
        Ok(output) => output,
        Err(e) => {
            let finding = Finding::error(
                Rule::RenderFailed,
                format!("could not run `{shown}` for `{dir}` at {side}: {e}"),
            )
            .in_file(file);
            return failed(finding);
        }
    };
    if !output.status.success() {
        let stderr = clean_stderr(&String::from_utf8_lossy(&output.stderr), &checkout.root());
        let mut finding = Finding::error(
            Rule::RenderFailed,
            format!("`{shown}` failed at {side}: {stderr}"),
        )
        .in_file(file)
        .with_meta("stderr", stderr.clone())
        .with_meta("side", side);
        if stderr.contains("is not in or below") {
            // Flux builds without kustomize's load restrictor; the gate keeps it on by default
            // because a kustomization could otherwise read files outside the repository.
            finding = finding.help(
                "the kustomization reads a file outside its directory; if the repository relies on \
                 that (as Flux allows), set `render.kustomize_command: [kubectl, kustomize, \
                 --load-restrictor, LoadRestrictionsNone]`",
            );
        }
        return failed(finding);
    }
    parse_output(&output.stdout, dir, file, side, renderer)
}

fn parse_output(
    stdout: &[u8],
    dir: &str,
    file: &str,
    side: &str,
    renderer: Renderer,
) -> RenderOutput {
    let label = format!("{dir} (rendered at {side})");
    let loaded = load_file(&label, stdout, &LoadOptions::default());
    let mut out = RenderOutput::default();
    for mut doc in loaded.documents {
        if doc.value.is_object() {
            let origin = take_origin(&mut doc.value).and_then(|p| graph::resolve(dir, &p));
            out.objects.push(RenderedObject {
                value: doc.value,
                dir: dir.to_string(),
                renderer,
                origin,
            });
        }
    }
    for finding in loaded
        .findings
        .into_iter()
        .filter(|f| f.rule.is_undecidable())
    {
        let message = format!(
            "output of rendering `{dir}` at {side} did not parse: {}",
            finding.message
        );
        out.findings
            .push(Finding::error(Rule::RenderFailed, message).in_file(file));
    }
    out
}

/// The renderer's message with the temporary checkout's path taken out (paths read as
/// repository paths) and klog's `E1125 19:25:10.722087 19369 run.go:72] ` prefixes dropped.
fn clean_stderr(stderr: &str, root: &Path) -> String {
    let root = root.to_string_lossy();
    let text = stderr
        .replace(&format!("{root}/"), "")
        .replace(root.as_ref(), ".");
    text.trim()
        .lines()
        .map(|line| {
            let klog = line.len() > 5
                && matches!(line.as_bytes()[0], b'E' | b'W' | b'I' | b'F')
                && line.as_bytes()[1..5].iter().all(u8::is_ascii_digit);
            match line.split_once("] ") {
                Some((_, rest)) if klog => rest,
                _ => line,
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

const ORIGIN: &str = "config.kubernetes.io/origin";

/// Remove the origin annotation kustomize added (it is not desired state) and return its `path`,
/// relative to the rendered directory.
fn take_origin(value: &mut Value) -> Option<String> {
    let annotations = value
        .get_mut("metadata")?
        .get_mut("annotations")?
        .as_object_mut()?;
    let origin = annotations.remove(ORIGIN)?;
    if annotations.is_empty()
        && let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut)
    {
        meta.remove("annotations");
    }
    origin
        .as_str()?
        .lines()
        .find_map(|l| l.strip_prefix("path: "))
        .map(|p| p.trim().trim_matches('"').to_string())
}

fn failed(finding: Finding) -> RenderOutput {
    RenderOutput {
        objects: Vec::new(),
        findings: vec![finding],
    }
}

/// The repository's manifests (`.yaml`, `.yml`, `.json`), for the indexes that need the whole
/// tree (Flux parents and substitutions, deployers' target namespaces).
pub(crate) fn manifest_paths(tree: &dyn Tree) -> Vec<String> {
    tree.files_under_where("", &is_manifest)
}

/// Whether the whole-tree indexes read the file at `path` (`.yaml`, `.yml`, `.json`).
pub fn is_manifest(path: &str) -> bool {
    path.ends_with(".yaml") || path.ends_with(".yml") || path.ends_with(".json")
}

/// A manifest's path and documents, as [`scan_manifests`] reads them.
pub type Manifest = (String, Vec<crate::load::Document>);

/// Whether the whole-tree indexes may want the documents of a manifest with these bytes: it may
/// declare a deployer's target namespace or a Flux parent's patches, or be a Flux Kustomization
/// with `postBuild` (without one, no document is held for Flux's substitution).
pub fn indexed(bytes: &[u8]) -> bool {
    target_namespace::TargetNamespaces::may_declare(bytes)
        || flux_patches::FluxPatches::may_declare(bytes)
        || flux::may_declare_substitution(bytes)
}

/// What [`scan_manifests`] found in a tree.
#[derive(Default)]
pub struct Scan {
    /// The manifests whose bytes pass [`indexed`], with their documents.
    pub manifests: Vec<Manifest>,
    /// The manifests that may hold a source of Flux's substitution
    /// ([`flux::may_hold_source`]).
    pub sources: Vec<String>,
}

/// Every manifest of `tree` the whole-tree indexes want, read on all cores. Filtering on bytes
/// first means a repository without any pays one read per manifest and no parse; with a `cache`,
/// a blob whose answers are kept is not read at all ([`scan_cache`]), so a push reads the
/// manifests it adds. The whole-tree indexes of one side share one scan: each read of every
/// manifest was a fifth of the corpus's system time. Paths `read_already` accepts are left to a
/// caller that has their bytes ([`scanned`]).
pub fn scan_manifests(
    tree: &dyn Tree,
    read_already: &(dyn Fn(&str) -> bool + Sync),
    cache: Option<&scan_cache::ScanCache>,
) -> Scan {
    use rayon::prelude::*;
    let kept = |id: Option<git2::Oid>| cache.zip(id).and_then(|(cache, id)| cache.get(id));
    // A blob known to want nothing is left out by the listing, before its path is copied: most
    // of a push's tree is, and copying every path was a third of a one-file push.
    let plain = |id| kept(id).is_some_and(|facts| !facts.indexed && !facts.source);
    let keep = |path: &str, id| is_manifest(path) && !read_already(path) && !plain(id);
    let found: Vec<(String, Option<Vec<crate::load::Document>>, bool)> = tree
        .blobs_under_where("", &keep)
        .into_par_iter()
        .filter_map(|(path, id)| {
            let (documents, source) = match kept(id) {
                Some(facts) if !facts.indexed => (None, facts.source),
                _ => {
                    let bytes = tree.read(&path)?;
                    let facts = scan_cache::BlobFacts::of(&bytes);
                    if let Some((cache, id)) = cache.zip(id) {
                        cache.put(id, facts);
                    }
                    let documents = facts
                        .indexed
                        .then(|| load_file(&path, &bytes, &LoadOptions::default()).documents);
                    (documents, facts.source)
                }
            };
            (documents.is_some() || source).then_some((path, documents, source))
        })
        .collect();
    let mut scan = Scan::default();
    for (path, documents, source) in found {
        if source {
            scan.sources.push(path.clone());
        }
        if let Some(documents) = documents {
            scan.manifests.push((path, documents));
        }
    }
    scan
}

/// The documents of one manifest for [`scan_manifests`], if its bytes pass [`indexed`]: for a
/// caller that has read the file already (`read_already`).
pub fn scanned(path: &str, bytes: &[u8]) -> Option<Vec<crate::load::Document>> {
    indexed(bytes).then(|| load_file(path, bytes, &LoadOptions::default()).documents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renderer_messages_lose_the_temporary_path_and_klog_prefix() {
        let root = Path::new("/tmp/stategate-render-1-2-3");
        let stderr = "E1125 19:25:10.722087   19369 run.go:72] \"command failed\" err=\"open \
                      /tmp/stategate-render-1-2-3/apps/x.yaml: no such file\"\n";
        assert_eq!(
            clean_stderr(stderr, root),
            "\"command failed\" err=\"open apps/x.yaml: no such file\""
        );
    }

    /// A git tree that notes the paths read from it.
    struct Reads<'t> {
        tree: &'t crate::tree::GitTree,
        read: std::sync::Mutex<Vec<String>>,
    }

    impl Tree for Reads<'_> {
        fn read_checked(&self, path: &str) -> Result<Option<Vec<u8>>, crate::tree::Unreadable> {
            self.read.lock().unwrap().push(path.to_owned());
            self.tree.read_checked(path)
        }
        fn files_under(&self, prefix: &str) -> Vec<String> {
            self.tree.files_under(prefix)
        }
        fn unreadable_under(&self, prefix: &str) -> Vec<crate::tree::Unreadable> {
            self.tree.unreadable_under(prefix)
        }
        fn blobs_under_where(
            &self,
            prefix: &str,
            keep: &(dyn Fn(&str, Option<git2::Oid>) -> bool + Sync),
        ) -> Vec<(String, Option<git2::Oid>)> {
            self.tree.blobs_under_where(prefix, keep)
        }
        fn describe(&self) -> String {
            self.tree.describe()
        }
    }

    /// The manifests a scan of HEAD loaded, the sources it found, and the files it read.
    type Scanned = (Vec<String>, Vec<String>, Vec<String>);

    fn scan_head(repo: &git2::Repository, cache: Option<&Path>) -> Scanned {
        let tree = crate::tree::GitTree::open(repo, "HEAD").unwrap();
        let reads = Reads {
            tree: &tree,
            read: Default::default(),
        };
        let cache = cache.map(scan_cache::ScanCache::open);
        let scan = scan_manifests(&reads, &|_| false, cache.as_ref());
        if let Some(cache) = &cache {
            cache.save();
        }
        let mut read = reads.read.into_inner().unwrap();
        read.sort();
        let loaded = scan.manifests.into_iter().map(|(path, _)| path).collect();
        (loaded, scan.sources, read)
    }

    #[test]
    fn a_scan_with_kept_facts_reads_only_the_manifests_it_loads_and_those_it_has_not_seen() {
        let deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n";
        let config = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: vars}\n";
        let flux = "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\n\
                    metadata: {name: apps}\nspec: {path: ./apps, targetNamespace: team}\n";
        let (dir, repo) = crate::tree::tests::committed(&[
            ("apps/web.yaml", deployment),
            ("apps/config.yaml", config),
            ("clusters/apps.yaml", flux),
            ("README.md", "read me"),
        ]);
        let cache = tempfile::tempdir().unwrap();
        let all = ["apps/config.yaml", "apps/web.yaml", "clusters/apps.yaml"];
        let found = |read: &[&str]| -> Scanned {
            let strings = |paths: &[&str]| paths.iter().map(|p| p.to_string()).collect();
            (
                strings(&["clusters/apps.yaml"]),
                strings(&["apps/config.yaml"]),
                strings(read),
            )
        };
        assert_eq!(scan_head(&repo, None), found(&all));
        assert_eq!(scan_head(&repo, Some(cache.path())), found(&all));
        // Kept: only the Flux Kustomization is read again, for its documents.
        assert_eq!(
            scan_head(&repo, Some(cache.path())),
            found(&["clusters/apps.yaml"])
        );
        // A file that now declares a deployer is new bytes, so a new blob: read, and loaded.
        std::fs::write(
            dir.path().join("apps/web.yaml"),
            flux.replace("apps}", "web}"),
        )
        .unwrap();
        crate::tree::tests::recommitted(&repo, &["apps/web.yaml"]);
        let (loaded, sources, read) = scan_head(&repo, Some(cache.path()));
        assert_eq!(loaded, ["apps/web.yaml", "clusters/apps.yaml"]);
        assert_eq!(sources, ["apps/config.yaml"]);
        assert_eq!(read, ["apps/web.yaml", "clusters/apps.yaml"]);
    }
}
