//! Remote charts: fetched only from the repositories `render.helm.repositories` lists, by the gate
//! itself (the renderer's sandbox has no network), and cached by repository, name, version and
//! digest so a push or PR that renders the same chart again makes no request.
//!
//! The fetch is one explicit step outside the sandbox: `curl` with redirects off and only the
//! `http`/`https` protocols, for URLs the allowlist accepts (the index's chart URL included, so a
//! repository index cannot send the gate elsewhere), and the archive's SHA-256 checked against
//! the index's digest.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::load::{LoadOptions, load_file};

static FETCH: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A chart in a remote repository, as a HelmRelease or Application names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteChart {
    pub repository: String,
    pub name: String,
    /// An exact version, or empty / a range (`*`, `6.x`): the newest the index lists.
    pub version: String,
}

/// Why a remote chart could not be had.
#[derive(Debug)]
pub enum FetchError {
    /// The repository (or a chart URL in its index) is not in the allowlist: nothing was fetched.
    NotAllowed(String),
    /// Allowed, not cached, and fetching is off.
    Offline,
    Unsupported(String),
    Failed(String),
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchError::NotAllowed(url) => write!(
                f,
                "`{url}` is not in `render.helm.repositories`; the chart was not fetched"
            ),
            FetchError::Offline => f.write_str(
                "the chart is not in the cache and fetching is off (`render.helm.network: false`)",
            ),
            FetchError::Unsupported(what) | FetchError::Failed(what) => f.write_str(what),
        }
    }
}

/// Whether `url` is one of `allowed` or below one (at a `/` boundary: `https://a.io/x` does not
/// allow `https://a.io/xy`).
pub fn is_allowed(url: &str, allowed: &[String]) -> bool {
    let url = url.trim_end_matches('/');
    allowed.iter().any(|a| {
        let a = a.trim_end_matches('/');
        !a.is_empty()
            && url
                .strip_prefix(a)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

/// Where fetched charts are kept: `$STATEGATE_CACHE_DIR`, else `$XDG_CACHE_HOME/stategate`, else
/// `~/.cache/stategate`; charts under `charts/`.
pub fn cache_root() -> Option<PathBuf> {
    let base = std::env::var_os("STATEGATE_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("stategate")))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/stategate")))?;
    Some(base.join("charts"))
}

/// The chart archive: from the cache when it holds this repository/name/version, else fetched
/// (when `network`) and cached.
pub fn chart_archive(
    chart: &RemoteChart,
    allowed: &[String],
    network: bool,
) -> Result<PathBuf, FetchError> {
    if !is_allowed(&chart.repository, allowed) {
        return Err(FetchError::NotAllowed(chart.repository.clone()));
    }
    if chart.repository.starts_with("oci://") {
        return Err(FetchError::Unsupported(format!(
            "OCI chart `{}` from `{}`: the gate fetches charts from HTTP(S) repositories only; \
             vendor the chart into the repository",
            chart.name, chart.repository
        )));
    }
    // Releases render in parallel; one fetch at a time, so a chart many releases share is fetched
    // once and the others find it cached.
    let _one_fetch = FETCH.lock().unwrap_or_else(|p| p.into_inner());
    let root = cache_root()
        .ok_or_else(|| FetchError::Failed("no cache directory (set STATEGATE_CACHE_DIR)".into()))?;
    let dir = root
        .join(hex(
            &Sha256::digest(chart.repository.trim_end_matches('/'))[..8]
        ))
        .join(safe(&chart.name));
    if is_exact(&chart.version)
        && let Some(cached) = cached(&dir, &chart.version)
    {
        return Ok(cached);
    }
    if !network {
        return Err(FetchError::Offline);
    }
    let index = fetch(&join(&chart.repository, "index.yaml"))?;
    let entry = pick(&index, chart)?;
    let url = join(&chart.repository, &entry.url);
    if !is_allowed(&url, allowed) {
        return Err(FetchError::NotAllowed(url));
    }
    // A range resolved to a version the cache may already hold.
    if let Some(cached) = cached(&dir, &entry.version) {
        return Ok(cached);
    }
    let bytes = fetch(&url)?;
    let digest = hex(&Sha256::digest(&bytes));
    if !entry.digest.is_empty() && !entry.digest.eq_ignore_ascii_case(&digest) {
        return Err(FetchError::Failed(format!(
            "`{url}` has SHA-256 {digest}, the repository index says {}",
            entry.digest
        )));
    }
    store(&dir, &entry.version, &digest, &bytes)
        .map_err(|e| FetchError::Failed(format!("could not cache `{url}`: {e}")))
}

/// `<dir>/<version>/<digest>.tgz`: the version directory holds one archive.
fn cached(dir: &Path, version: &str) -> Option<PathBuf> {
    std::fs::read_dir(dir.join(safe(version)))
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "tgz"))
}

fn store(dir: &Path, version: &str, digest: &str, bytes: &[u8]) -> std::io::Result<PathBuf> {
    let dir = dir.join(safe(version));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{digest}.tgz"));
    // Written aside and renamed, so a concurrent reader never sees half an archive.
    super::cache::write_atomically(&path, &[bytes])?;
    Ok(path)
}

struct Entry {
    version: String,
    url: String,
    digest: String,
}

fn pick(index: &[u8], chart: &RemoteChart) -> Result<Entry, FetchError> {
    let loaded = load_file("index.yaml", index, &LoadOptions::default());
    let entries = loaded
        .documents
        .first()
        .and_then(|d| {
            d.value
                .get("entries")?
                .get(&chart.name)?
                .as_array()
                .cloned()
        })
        .unwrap_or_default();
    let wanted = |v: &str| {
        let v = v.trim_start_matches('v');
        let want = chart.version.trim_start_matches('v');
        if is_exact(want) {
            return v == want;
        }
        // `6.x`, `6.*`, `*`, empty: a prefix; other ranges are not resolved.
        let prefix = want.trim_end_matches(['x', '*', 'X']).trim_end_matches('.');
        !v.contains('-')
            && (prefix.is_empty() || v == prefix || v.starts_with(&format!("{prefix}.")))
    };
    let mut candidates: Vec<&Value> = entries
        .iter()
        .filter(|e| e.get("version").and_then(Value::as_str).is_some_and(wanted))
        .collect();
    candidates.sort_by_key(|e| version_key(e.get("version").and_then(Value::as_str).unwrap_or("")));
    let entry = candidates.last().ok_or_else(|| {
        FetchError::Failed(format!(
            "`{}` lists no version `{}` of chart `{}`",
            chart.repository, chart.version, chart.name
        ))
    })?;
    let text = |k: &str| {
        entry
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let url = entry
        .get("urls")
        .and_then(|u| u.get(0))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    Ok(Entry {
        version: text("version"),
        url,
        digest: text("digest"),
    })
}

fn version_key(v: &str) -> Vec<u64> {
    v.trim_start_matches('v')
        .split(['.', '-', '+'])
        .map(|p| p.parse().unwrap_or(0))
        .collect()
}

fn is_exact(version: &str) -> bool {
    !version.is_empty()
        && version
            .trim_start_matches('v')
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+'))
        && !version.ends_with(['x', 'X'])
        && version
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit() || c == 'v')
}

/// A chart URL in an index may be relative to the repository.
fn join(repository: &str, url: &str) -> String {
    if url.contains("://") {
        url.to_string()
    } else {
        format!(
            "{}/{}",
            repository.trim_end_matches('/'),
            url.trim_start_matches('/')
        )
    }
}

fn fetch(url: &str) -> Result<Vec<u8>, FetchError> {
    let output = Command::new("curl")
        .args([
            "--fail",
            "--silent",
            "--show-error",
            "--max-redirs",
            "0",
            "--proto",
            "=http,https",
            "--max-time",
            "120",
            "--max-filesize",
            "104857600",
            "--",
            url,
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| FetchError::Failed(format!("could not run curl to fetch `{url}`: {e}")))?;
    if !output.status.success() {
        return Err(FetchError::Failed(format!(
            "fetching `{url}` failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(output.stdout)
}

fn safe(part: &str) -> String {
    part.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '+') {
                c
            } else {
                '_'
            }
        })
        .collect::<String>()
        .trim_start_matches('.')
        .to_string()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allowlist_matches_at_path_boundaries() {
        let allowed = vec!["https://charts.example.com/stable/".to_string()];
        assert!(is_allowed("https://charts.example.com/stable", &allowed));
        assert!(is_allowed(
            "https://charts.example.com/stable/x.tgz",
            &allowed
        ));
        assert!(!is_allowed("https://charts.example.com/stablex", &allowed));
        assert!(!is_allowed(
            "https://charts.example.com.evil.io/stable",
            &allowed
        ));
    }

    #[test]
    fn versions_exact_and_ranges() {
        assert!(is_exact("6.5.0"));
        assert!(is_exact("v1.2.3-rc.1"));
        assert!(!is_exact("6.x"));
        assert!(!is_exact(">=1.0.0"));
        assert!(!is_exact(""));
    }
}
