//! `stategate init`: look at a repository and write a commented `.stategate.yaml` that fits it,
//! saying what it decided and why. It never overwrites a file without `--force`.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::config::{CONFIG_FILE, RenderConfig};
use crate::policy::builtin::{BUILTINS, LIBRARY, LIBRARY_TEST};
use crate::render::{Checkout, KustomizeGraph, kustomize_command, render_kustomize};
use crate::tree::DirTree;

/// Files larger than this are not read when looking for kinds: manifests are small.
const SNIFF_LIMIT: u64 = 1024 * 1024;

/// Directory names whose children are environments: `clusters/prod`, `apps/overlays/staging`.
const ENVIRONMENT_PARENTS: &[&str] = &["clusters", "overlays", "environments", "envs"];

#[derive(Debug, Clone, clap::Args)]
pub struct InitArgs {
    /// Also write the built-in policies and their tests into policies/, to edit them.
    #[arg(long)]
    pub policies: bool,
    /// Overwrite an existing .stategate.yaml (and policy files with --policies).
    #[arg(long)]
    pub force: bool,
    /// The repository to set up (default: the git repository around the current directory, or
    /// the current directory).
    pub dir: Option<PathBuf>,
}

/// What `init` learned about the repository.
#[derive(Debug, Default)]
struct Layout {
    /// Environment name → directory globs.
    environments: Vec<(String, Vec<String>)>,
    /// Kustomization directories that are roots of an environment.
    render: Vec<String>,
    /// Kustomizations left out of rendering, with the reason.
    not_rendered: Vec<(String, String)>,
    /// Directories holding CustomResourceDefinitions the default CRD globs do not reach.
    crd_dirs: Vec<String>,
    flux: Option<String>,
    argocd: Option<String>,
    /// The existing `.rego` files under policies/.
    repo_policies: usize,
    branch: String,
}

/// Run `init`; decisions go to `out`, problems to `err`. Returns the exit code.
pub fn run_init(cwd: &Path, args: &InitArgs, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let root = match &args.dir {
        Some(dir) => cwd.join(dir),
        None => crate::change::open_repo(cwd)
            .ok()
            .and_then(|r| r.workdir().map(Path::to_path_buf))
            .unwrap_or_else(|| cwd.to_path_buf()),
    };
    if !root.is_dir() {
        let _ = writeln!(err, "stategate: {} is not a directory", root.display());
        return 2;
    }
    let config_path = root.join(CONFIG_FILE);
    if config_path.symlink_metadata().is_ok() && !args.force {
        let _ = writeln!(
            err,
            "stategate: {} exists; not overwriting it (use --force to replace it)",
            config_path.display()
        );
        return 2;
    }
    let layout = survey(&root);
    let text = render_config(&layout, args.policies);
    // The generated file must be one stategate accepts: a bug here is ours, not the user's.
    if let Err(e) = crate::config::parse_config(CONFIG_FILE, &text) {
        let _ = writeln!(
            err,
            "stategate: internal error: the generated config is invalid: {:?}",
            e.findings.first().map(|f| &f.message)
        );
        return 2;
    }
    if args.policies
        && let Err(message) = write_policies(&root, args.force, out)
    {
        let _ = writeln!(err, "stategate: {message}");
        return 2;
    }
    if let Err(e) = std::fs::write(&config_path, &text) {
        let _ = writeln!(
            err,
            "stategate: cannot write {}: {e}",
            config_path.display()
        );
        return 2;
    }
    let _ = explain(&layout, args.policies, &config_path, out);
    0
}

/// Every file under `root`, relative with `/`, skipping `.git` and other hidden directories.
fn walk(root: &Path) -> Vec<String> {
    let mut files = Vec::new();
    let mut stack = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let rel = format!("{prefix}{name}");
            // Not following symlinks: a link out of the repository is not the repository's layout.
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                stack.push((entry.path(), format!("{rel}/")));
            } else if kind.is_file() {
                files.push(rel);
            }
        }
    }
    files.sort();
    files
}

fn is_kustomization(path: &str) -> bool {
    matches!(
        path.rsplit('/').next(),
        Some("kustomization.yaml" | "kustomization.yml" | "Kustomization")
    )
}

fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(dir, _)| dir)
}

fn survey(root: &Path) -> Layout {
    let files = walk(root);
    let mut layout = Layout {
        branch: current_branch(root).unwrap_or_else(|| "main".to_owned()),
        ..Layout::default()
    };
    let mut environments: std::collections::BTreeMap<String, BTreeSet<String>> = Default::default();
    let mut env_dirs = BTreeSet::new();
    for file in &files {
        let parts: Vec<&str> = file.split('/').collect();
        for (i, part) in parts.iter().enumerate() {
            // A directory `<parent>/<name>/` with something inside it.
            if ENVIRONMENT_PARENTS.contains(part) && i + 2 < parts.len() {
                let name = parts[i + 1];
                let dir = parts[..=i + 1].join("/");
                let glob = if *part == "clusters" {
                    format!("{dir}/**")
                } else {
                    format!("**/{part}/{name}/**")
                };
                environments
                    .entry(name.to_owned())
                    .or_default()
                    .insert(glob);
                env_dirs.insert(dir);
            }
        }
    }
    layout.environments = environments
        .into_iter()
        .map(|(name, globs)| (name, globs.into_iter().collect()))
        .collect();
    let mut crd_dirs = BTreeSet::new();
    let mut candidates = Vec::new();
    for file in &files {
        if is_kustomization(file) && env_dirs.contains(parent(file)) {
            candidates.push(parent(file).to_owned());
        }
        let sniffable = file.ends_with(".yaml") || file.ends_with(".yml");
        let small = std::fs::metadata(root.join(file)).is_ok_and(|m| m.len() <= SNIFF_LIMIT);
        if !sniffable || !small {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(root.join(file)) else {
            continue;
        };
        if text.contains("kind: CustomResourceDefinition") && !default_crd_glob(file) {
            crd_dirs.insert(parent(file).to_owned());
        }
        if layout.flux.is_none() && text.contains(".toolkit.fluxcd.io/") {
            layout.flux = Some(file.clone());
        }
        if layout.argocd.is_none()
            && text.contains("argoproj.io/")
            && (text.contains("kind: Application") || text.contains("kind: AppProject"))
        {
            layout.argocd = Some(file.clone());
        }
    }
    layout.crd_dirs = crd_dirs.into_iter().collect();
    for dir in candidates {
        match try_render(root, &dir) {
            Ok(()) => layout.render.push(dir),
            Err(why) => layout.not_rendered.push((dir, why)),
        }
    }
    layout.repo_policies = files
        .iter()
        .filter(|f| f.starts_with("policies/") && f.ends_with(".rego"))
        .count();
    layout
}

/// What the default `schemas.crds` already covers: `**/crds/**` and files named like CRDs.
fn default_crd_glob(file: &str) -> bool {
    file.split('/').any(|p| p == "crds")
        || file.rsplit('/').next().is_some_and(|n| n.contains("crd"))
}

/// Render one candidate as the gate would (the same sandbox, no network): only a kustomization
/// that renders goes into `render.kustomize`, so the first check does not fail on the config.
fn try_render(root: &Path, dir: &str) -> Result<(), String> {
    let tree = DirTree::new(root, "the repository");
    let graph = KustomizeGraph::build(&tree);
    let roots = BTreeSet::from([dir.to_owned()]);
    let checkout = Checkout::for_roots(&tree, &graph, &roots)
        .map_err(|e| format!("cannot prepare the render: {e}"))?;
    let command = kustomize_command(&RenderConfig::default());
    let output = render_kustomize(&checkout, &graph, dir, &command, "init");
    match output
        .findings
        .iter()
        .find(|f| f.severity == crate::finding::Severity::Error)
    {
        None => Ok(()),
        Some(finding) => {
            // It goes into a YAML comment: one line, no control characters.
            let first: String = finding
                .message
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .take(160)
                .collect();
            Err(format!("it does not render offline here: {first}"))
        }
    }
}

fn current_branch(root: &Path) -> Option<String> {
    let repo = git2::Repository::open(root).ok()?;
    let head = repo.find_reference("HEAD").ok()?;
    let target = head.symbolic_target().ok().flatten()?;
    target.strip_prefix("refs/heads/").map(str::to_owned)
}

fn quoted(items: &[String]) -> String {
    let inner: Vec<String> = items
        .iter()
        .map(|s| serde_json::to_string(s).unwrap_or_default())
        .collect();
    format!("[{}]", inner.join(", "))
}

fn render_config(layout: &Layout, write_policies: bool) -> String {
    let mut y = String::new();
    y.push_str(
        "# .stategate.yaml, written by `stategate init`. Reference: the stategate README,\n",
    );
    y.push_str(
        "# section \"Configuration\". Commit it: the gate reads its rules from HEAD, not from\n",
    );
    y.push_str("# the working tree.\nversion: 1\n\n");
    if layout.environments.is_empty() {
        y.push_str(
            "# No clusters/*, overlays/*, environments/* or envs/* directories were found.\n",
        );
        y.push_str("environments: {}\n\n");
    } else {
        y.push_str("# Environments, from the directory layout: rules and reports name them.\n");
        y.push_str("environments:\n");
        for (name, globs) in &layout.environments {
            let key = serde_json::to_string(name).unwrap_or_default();
            y.push_str(&format!("  {key}: {}\n", quoted(globs)));
        }
        y.push('\n');
    }
    y.push_str("schemas:\n");
    y.push_str("  # Kubernetes version of the embedded schemas (default: the newest embedded).\n");
    y.push_str("  # kubernetes: \"1.31\"\n");
    if layout.crd_dirs.is_empty() {
        y.push_str("  # CRDs: the default finds files under crds/ and files named *crd*.\n");
    } else {
        y.push_str("  # Directories holding CustomResourceDefinitions, found by their kind.\n");
        let mut globs: Vec<String> = vec!["**/crds/**".into(), "**/*crd*.yaml".into()];
        globs.extend(layout.crd_dirs.iter().map(|d| {
            if d.is_empty() {
                "*.yaml".to_owned()
            } else {
                format!("{d}/*.yaml")
            }
        }));
        y.push_str(&format!("  crds: {}\n", quoted(&globs)));
    }
    y.push_str(
        "  # A document no schema covers (a CRD kind without its CRD): skip | warn | error.\n",
    );
    y.push_str("  unknown: warn\n\n");
    y.push_str("policies:\n");
    if write_policies {
        y.push_str(
            "  # The built-in policies were written to policies/ by `init --policies`: edit\n",
        );
        y.push_str("  # them there and run `stategate verify policies/`.\n");
        y.push_str("  paths: [\"policies/\"]\n");
    } else {
        let names: Vec<&str> = BUILTINS.iter().map(|b| b.name).collect();
        y.push_str(&format!(
            "  # Policies compiled into stategate ({}); `stategate policies list`.\n",
            names.join(", ")
        ));
        y.push_str("  builtin: [all]\n");
        y.push_str("  # parameters:\n");
        y.push_str("  #   required_labels: {labels: [\"app.kubernetes.io/name\"]}\n");
        y.push_str("  #   images: {allowed_registries: [\"ghcr.io/acme\"]}\n");
        y.push_str("  # Your own Rego policies (conftest style, package main) add to them:\n");
        y.push_str("  paths: [\"policies/\"]\n");
    }
    y.push('\n');
    y.push_str("protect:\n");
    y.push_str("  # The branch your controller applies: no force-push, no deletion.\n");
    let branch = format!("refs/heads/{}", layout.branch);
    y.push_str(&format!("  refs: {}\n", quoted(&[branch])));
    y.push_str("  force_push: deny\n  deletion: deny\n\n");
    if layout.render.is_empty() {
        y.push_str("# No environment directory holds a kustomization that renders offline.\n");
        y.push_str("render:\n  kustomize: []\n");
    } else {
        y.push_str(
            "# Environment kustomizations rendered (kubectl kustomize, no network) when a\n",
        );
        y.push_str("# change touches what they read; their objects are checked like files.\n");
        y.push_str(&format!(
            "render:\n  kustomize: {}\n",
            quoted(&layout.render)
        ));
    }
    for (dir, why) in &layout.not_rendered {
        y.push_str(&format!("  # not rendered: {dir}: {why}\n"));
    }
    if let Some(file) = &layout.flux {
        y.push_str(&format!(
            "# Flux found ({file}): objects under a Flux Kustomization's path are judged after\n\
             # its postBuild substitution; Flux CRDs come from the repository's crds.\n"
        ));
    }
    if let Some(file) = &layout.argocd {
        y.push_str(&format!(
            "# Argo CD found ({file}): Application and AppProject objects are checked like any\n\
             # other manifest.\n"
        ));
    }
    y
}

fn explain(
    layout: &Layout,
    policies: bool,
    config: &Path,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    writeln!(out, "wrote {}", config.display())?;
    if layout.environments.is_empty() {
        writeln!(
            out,
            "  environments: none (no clusters/*, overlays/*, environments/* or envs/* directories)"
        )?;
    }
    for (name, globs) in &layout.environments {
        writeln!(
            out,
            "  environment {name}: {} (directory layout)",
            globs.join(", ")
        )?;
    }
    for dir in &layout.render {
        writeln!(
            out,
            "  render {dir}: an environment directory with a kustomization"
        )?;
    }
    for (dir, why) in &layout.not_rendered {
        writeln!(out, "  not rendering {dir}: {why}")?;
    }
    for dir in &layout.crd_dirs {
        writeln!(
            out,
            "  CRDs in {dir}/ (files of kind CustomResourceDefinition)"
        )?;
    }
    match (&layout.flux, &layout.argocd) {
        (Some(f), _) => writeln!(out, "  Flux: found in {f}")?,
        (None, Some(a)) => writeln!(out, "  Argo CD: found in {a}")?,
        (None, None) => writeln!(out, "  neither Flux nor Argo CD objects found")?,
    }
    if let (Some(_), Some(a)) = (&layout.flux, &layout.argocd) {
        writeln!(out, "  Argo CD: found in {a}")?;
    }
    writeln!(
        out,
        "  protect: refs/heads/{} (the current branch): no force-push, no deletion",
        layout.branch
    )?;
    if policies {
        writeln!(
            out,
            "  policies: the built-in policies, written to policies/"
        )?;
    } else {
        writeln!(
            out,
            "  policies: every built-in policy (policies.builtin: [all])"
        )?;
    }
    if layout.repo_policies > 0 {
        writeln!(
            out,
            "  policies/ already holds {} .rego file(s): they run too",
            layout.repo_policies
        )?;
    }
    writeln!(
        out,
        "next: review it, `stategate check --all --trust head`, then commit {CONFIG_FILE}"
    )
}

/// `init --policies`: the built-in policies and their tests, as files to edit.
fn write_policies(root: &Path, force: bool, out: &mut dyn Write) -> Result<(), String> {
    let dir = root.join("policies");
    let mut files: Vec<(String, &str)> = vec![
        (LIBRARY.0.to_owned(), LIBRARY.1),
        (LIBRARY_TEST.0.to_owned(), LIBRARY_TEST.1),
    ];
    for b in BUILTINS {
        files.push((format!("{}.rego", b.name), b.rego));
        files.push((format!("{}_test.rego", b.name), b.test));
    }
    if !force && let Some((name, _)) = files.iter().find(|(n, _)| dir.join(n).exists()) {
        return Err(format!(
            "policies/{name} exists; not overwriting it (use --force to replace it)"
        ));
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    for (name, text) in files {
        let path = dir.join(&name);
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        let _ = writeln!(out, "wrote policies/{name}");
    }
    Ok(())
}
