//! `action/install.sh` against a release served from 127.0.0.1: a good checksum installs the
//! binary, a tampered one installs nothing and says why.

use std::path::{Path, PathBuf};
use std::process::Command;

const VERSION: &str = "v9.9.9";
const ASSET: &str = "stategate-v9.9.9-x86_64-unknown-linux-musl.tar.gz";

/// Serves the files of `dir` at `/v9.9.9/NAME`, like GitHub's release downloads.
fn serve(dir: PathBuf) -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
                let dir = dir.clone();
                async move {
                    let name = uri.path().rsplit('/').next().unwrap_or_default().to_owned();
                    match std::fs::read(dir.join(name)) {
                        Ok(bytes) => (axum::http::StatusCode::OK, bytes),
                        Err(_) => (axum::http::StatusCode::NOT_FOUND, Vec::new()),
                    }
                }
            });
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
    });
    (format!("http://{addr}"), tx)
}

fn sh(dir: &Path, script: &str) {
    let status = Command::new("sh")
        .args(["-c", script])
        .current_dir(dir)
        .status()
        .unwrap();
    assert!(status.success(), "{script}");
}

/// A release directory with a fake binary and its SHA256SUMS.
fn release(tamper: bool) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("stategate"),
        "#!/bin/sh\necho fake stategate\n",
    )
    .unwrap();
    sh(
        dir.path(),
        &format!("chmod +x stategate && tar -czf {ASSET} stategate && rm stategate"),
    );
    sh(dir.path(), &format!("sha256sum {ASSET} > SHA256SUMS"));
    if tamper {
        // Someone swapped the asset after the sums were published.
        sh(dir.path(), &format!("echo x >> {ASSET}"));
    }
    dir
}

fn install(url: &str, dest: &Path) -> std::process::Output {
    Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("action/install.sh"))
        .args([VERSION, dest.to_str().unwrap()])
        .env("RUNNER_OS", "Linux")
        .env("RUNNER_ARCH", "X64")
        .env("STATEGATE_RELEASES", url)
        .output()
        .unwrap()
}

#[test]
fn a_good_checksum_installs_the_release_binary() {
    let dir = release(false);
    let (url, _server) = serve(dir.path().to_path_buf());
    let dest = tempfile::tempdir().unwrap();
    let out = install(&url, dest.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ran = Command::new(dest.path().join("stategate"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&ran.stdout), "fake stategate\n");
}

#[test]
fn a_tampered_asset_is_not_installed() {
    let dir = release(true);
    let (url, _server) = serve(dir.path().to_path_buf());
    let dest = tempfile::tempdir().unwrap();
    let out = install(&url, dest.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("checksum mismatch"));
    assert!(!dest.path().join("stategate").exists());
}
