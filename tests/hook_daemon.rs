//! The hook behind a real network transport: `git daemon` with receive-pack enabled on 127.0.0.1,
//! pushed to over `git://`.

mod common;
mod hook_support;

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};

use common::git::TestRepo;
use hook_support::{Server, push};

/// The daemon child, killed (by its own handle) when the test ends, pass or fail.
struct Daemon {
    child: Child,
    port: u16,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().unwrap().port()
}

/// `git daemon` serving the server's root, or `None` (with the reason printed) when this git has
/// no daemon.
fn start_daemon(server: &Server) -> Option<Daemon> {
    let port = free_port();
    let child = Command::new("git")
        .arg("daemon")
        .arg("--export-all")
        .arg("--enable=receive-pack")
        .arg("--reuseaddr")
        .arg("--listen=127.0.0.1")
        .arg(format!("--port={port}"))
        .arg(format!("--base-path={}", server.root().display()))
        .arg(server.root())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let Ok(child) = child else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true needs git daemon"
        );
        eprintln!("skipping: `git daemon` cannot be started");
        return None;
    };
    let daemon = Daemon { child, port };
    // Wait until it listens; bounded so a broken daemon fails the test instead of hanging it.
    for _ in 0..200 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(daemon);
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    panic!("git daemon did not start listening on port {port}");
}

const CONFIG: &str = "version: 1\nprotect:\n  refs: [\"refs/heads/main\"]\n";

const GOOD: &str =
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  level: info\n";

const BAD: &str =
    "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  ports:\n    - port: http\n";

#[test]
fn pushes_over_git_daemon_are_judged_by_the_hook() {
    let server = Server::new();
    let work = TestRepo::new();
    work.write(".stategate.yaml", CONFIG);
    work.write("apps/settings.yaml", GOOD);
    work.commit_all("seed");
    assert!(push(&work, &server.url(), &["main"], &[]).ok);
    server.install_hook(&[]);
    let Some(daemon) = start_daemon(&server) else {
        return;
    };
    let url = format!("git://127.0.0.1:{}/repo.git", daemon.port);

    work.write("apps/settings.yaml", GOOD.replace("info", "debug"));
    let good = work.commit_all("debug logs");
    let pushed = push(&work, &url, &["main"], &[]);
    assert!(pushed.ok, "{}", pushed.stderr);
    assert!(pushed.says("stategate: push accepted"), "{}", pushed.stderr);
    assert_eq!(server.rev("main"), good);

    work.write("apps/web.yaml", BAD);
    work.commit_all("add web");
    let pushed = push(&work, &url, &["main"], &[]);
    assert!(!pushed.ok, "{}", pushed.stderr);
    assert!(
        pushed.says("refs/heads/main: apps/web.yaml:7"),
        "{}",
        pushed.stderr
    );
    assert!(pushed.says("stategate: push rejected"), "{}", pushed.stderr);
    assert_eq!(server.rev("main"), good);

    let pushed = push(&work, &url, &[":main"], &[]);
    assert!(pushed.says("error[protect/deletion]"), "{}", pushed.stderr);
}
