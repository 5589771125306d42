//! Change detection against real git repositories built with the `git` CLI: every mode, renames,
//! deletions, path narrowing, and the entries that must never be read (binary files, symlinks,
//! submodules).

mod common;

use common::git::TestRepo;
use stategate::change::{Action, ChangeMode, ChangeSet, FileChange, SkipKind, detect_changes};

fn detect(repo: &TestRepo, mode: ChangeMode, paths: &[&str]) -> ChangeSet {
    let paths: Vec<String> = paths.iter().map(|p| p.to_string()).collect();
    detect_changes(repo.path(), &mode, &paths).expect("detect changes")
}

fn range(base: &str, head: &str) -> ChangeMode {
    ChangeMode::Range {
        base: base.into(),
        head: head.into(),
    }
}

/// `(action, path, old path)` of every changed file, in order.
fn summary(set: &ChangeSet) -> Vec<(Action, &str, Option<&str>)> {
    set.files
        .iter()
        .map(|f| (f.action(), &*f.path, f.old_path()))
        .collect()
}

/// `(path, reason)` of every skipped entry.
fn skipped(set: &ChangeSet) -> Vec<(&str, &str)> {
    set.skipped
        .iter()
        .map(|s| (s.path.as_str(), s.reason.as_str()))
        .collect()
}

fn file<'a>(set: &'a ChangeSet, path: &str) -> &'a FileChange {
    set.files
        .iter()
        .find(|f| *f.path == *path)
        .unwrap_or_else(|| panic!("{path} not in {:?}", summary(set)))
}

/// A side's bytes as text, read the way the gate reads them (the change set holds ids, not bytes).
fn before_text(file: &FileChange) -> Option<String> {
    let bytes = file.read_before().expect("readable");
    bytes.map(|b| String::from_utf8(b).expect("utf-8"))
}

fn after_text(file: &FileChange) -> Option<String> {
    let bytes = file.read_after().expect("readable");
    bytes.map(|b| String::from_utf8(b).expect("utf-8"))
}

/// A manifest long enough that a one-line edit keeps it well above git's 50% rename threshold.
fn manifest(name: &str, replicas: u32) -> String {
    let mut s = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: prod\n\
         spec:\n  replicas: {replicas}\n  template:\n    spec:\n      containers:\n"
    );
    for i in 0..8 {
        s.push_str(&format!(
            "        - name: c{i}\n          image: registry/c{i}:1.0\n"
        ));
    }
    s
}

#[test]
fn worktree_sees_modified_untracked_and_deleted_files() {
    let repo = TestRepo::new();
    repo.write(".gitignore", "ignored.yaml\n");
    repo.write("a.yaml", "a: 1\n");
    repo.write("b.yaml", "b: 1\n");
    repo.write("c.yaml", "c: 1\n");
    let head = repo.commit_all("initial");

    repo.write("a.yaml", "a: 2\n");
    repo.remove("b.yaml");
    repo.write("c.yaml", "c: staged\n");
    repo.add("c.yaml");
    repo.write("c.yaml", "c: on disk\n");
    repo.write("new/d.yaml", "d: 1\n");
    repo.write("ignored.yaml", "x: 1\n");

    let set = detect(&repo, ChangeMode::WorkTree, &[]);
    assert_eq!(
        summary(&set),
        vec![
            (Action::Modified, "a.yaml", None),
            (Action::Deleted, "b.yaml", None),
            (Action::Modified, "c.yaml", None),
            (Action::Added, "new/d.yaml", None),
        ]
    );
    assert_eq!(before_text(file(&set, "a.yaml")).as_deref(), Some("a: 1\n"));
    assert_eq!(after_text(file(&set, "a.yaml")).as_deref(), Some("a: 2\n"));
    assert_eq!(before_text(file(&set, "b.yaml")).as_deref(), Some("b: 1\n"));
    assert_eq!(file(&set, "b.yaml").after(), None);
    // The working tree wins over the index.
    assert_eq!(
        after_text(file(&set, "c.yaml")).as_deref(),
        Some("c: on disk\n")
    );
    assert_eq!(file(&set, "new/d.yaml").before(), None);
    assert_eq!(
        after_text(file(&set, "new/d.yaml")).as_deref(),
        Some("d: 1\n")
    );
    assert_eq!(set.base.as_deref(), Some(head.as_str()));
    assert_eq!(set.head, None);
    assert!(set.skipped.is_empty(), "{:?}", set.skipped);
}

#[test]
fn staged_sees_only_the_index() {
    let repo = TestRepo::new();
    repo.write("a.yaml", "a: 1\n");
    repo.write("b.yaml", "b: 1\n");
    repo.write("gone.yaml", "g: 1\n");
    let head = repo.commit_all("initial");

    repo.write("a.yaml", "a: staged\n");
    repo.add("a.yaml");
    repo.write("a.yaml", "a: not staged\n");
    repo.write("b.yaml", "b: not staged\n");
    repo.write("untracked.yaml", "u: 1\n");
    repo.write("added.yaml", "n: 1\n");
    repo.add("added.yaml");
    repo.git(&["rm", "-q", "gone.yaml"]);

    let set = detect(&repo, ChangeMode::Staged, &[]);
    assert_eq!(
        summary(&set),
        vec![
            (Action::Modified, "a.yaml", None),
            (Action::Added, "added.yaml", None),
            (Action::Deleted, "gone.yaml", None),
        ]
    );
    assert_eq!(before_text(file(&set, "a.yaml")).as_deref(), Some("a: 1\n"));
    assert_eq!(
        after_text(file(&set, "a.yaml")).as_deref(),
        Some("a: staged\n")
    );
    assert_eq!(
        after_text(file(&set, "added.yaml")).as_deref(),
        Some("n: 1\n")
    );
    assert_eq!(
        before_text(file(&set, "gone.yaml")).as_deref(),
        Some("g: 1\n")
    );
    assert_eq!(set.base.as_deref(), Some(head.as_str()));
}

#[test]
fn range_diffs_head_against_the_merge_base() {
    let repo = TestRepo::new();
    repo.write("a.yaml", "a: 1\n");
    repo.write("b.yaml", "b: 1\n");
    let fork = repo.commit_all("initial");

    repo.branch("feature");
    repo.write("a.yaml", "a: feature\n");
    repo.write("f.yaml", "f: 1\n");
    let feature = repo.commit_all("feature work");

    // A commit on main after the fork: `main...feature` must not show it (nor undo it).
    repo.checkout("main");
    repo.write("b.yaml", "b: main moved on\n");
    repo.write("main-only.yaml", "m: 1\n");
    repo.commit_all("main moves on");

    let set = detect(&repo, range("main", "feature"), &[]);
    assert_eq!(
        summary(&set),
        vec![
            (Action::Modified, "a.yaml", None),
            (Action::Added, "f.yaml", None),
        ]
    );
    assert_eq!(before_text(file(&set, "a.yaml")).as_deref(), Some("a: 1\n"));
    assert_eq!(
        after_text(file(&set, "a.yaml")).as_deref(),
        Some("a: feature\n")
    );
    assert_eq!(set.base.as_deref(), Some(fork.as_str()));
    assert_eq!(set.head.as_deref(), Some(feature.as_str()));

    // Revisions are anything rev-parse takes: ids, `~` suffixes.
    let by_id = detect(&repo, range(&fork, "feature~0"), &[]);
    assert_eq!(summary(&by_id), summary(&set));
}

#[test]
fn renames_with_and_without_edits_are_renames() {
    let repo = TestRepo::new();
    repo.write("apps/web.yaml", manifest("web", 1));
    repo.write("apps/api.yaml", manifest("api", 1));
    let base = repo.commit_all("initial");

    repo.git(&["mv", "apps/web.yaml", "apps/frontend.yaml"]);
    repo.git(&["mv", "apps/api.yaml", "apps/backend.yaml"]);
    repo.write("apps/backend.yaml", manifest("api", 3));
    let head = repo.commit_all("rename");

    let set = detect(&repo, range(&base, &head), &[]);
    assert_eq!(
        summary(&set),
        vec![
            (Action::Renamed, "apps/backend.yaml", Some("apps/api.yaml")),
            (Action::Renamed, "apps/frontend.yaml", Some("apps/web.yaml")),
        ]
    );
    let edited = file(&set, "apps/backend.yaml");
    assert_eq!(
        before_text(edited).as_deref(),
        Some(manifest("api", 1).as_str())
    );
    assert_eq!(
        after_text(edited).as_deref(),
        Some(manifest("api", 3).as_str())
    );
    let moved = file(&set, "apps/frontend.yaml");
    assert_eq!(
        before_text(moved).as_deref(),
        Some(manifest("web", 1).as_str())
    );
    assert_eq!(
        after_text(moved).as_deref(),
        Some(manifest("web", 1).as_str())
    );
}

#[test]
fn moving_a_large_directory_is_all_renames() {
    // More files than libgit2 compares per rename target (diff.renameLimit = 1000): git still pairs
    // exact renames however many there are, and so must the gate.
    const N: usize = 1_500;
    let repo = TestRepo::new();
    for i in 0..N {
        repo.write(
            &format!("clusters/old/app-{i}.yaml"),
            format!("name: app-{i}\n"),
        );
    }
    let base = repo.commit_all("initial");
    repo.git(&["mv", "clusters/old", "clusters/new"]);
    repo.write("clusters/new/app-7.yaml", "name: app-7-edited\n");
    let head = repo.commit_all("move");

    let set = detect(&repo, range(&base, &head), &[]);
    let renamed = set
        .files
        .iter()
        .filter(|f| {
            f.action() == Action::Renamed
                && f.old_path().map(|p| p.replace("/old/", "/new/")) == Some(f.path.to_string())
                && f.before() == f.after()
        })
        .count();
    assert_eq!(renamed, N - 1);
    // The edited one is too small to stay 50% similar: a delete and an add, as git shows it.
    let rest: Vec<_> = summary(&set)
        .into_iter()
        .filter(|(a, _, _)| *a != Action::Renamed)
        .collect();
    assert_eq!(
        rest,
        vec![
            (Action::Added, "clusters/new/app-7.yaml", None),
            (Action::Deleted, "clusters/old/app-7.yaml", None),
        ]
    );
}

#[test]
fn a_rewritten_file_is_not_a_rename() {
    let repo = TestRepo::new();
    repo.write("old.yaml", manifest("web", 1));
    let base = repo.commit_all("initial");
    repo.remove("old.yaml");
    repo.write("new.yaml", "completely: different\n");
    let head = repo.commit_all("rewrite");

    let set = detect(&repo, range(&base, &head), &[]);
    assert_eq!(
        summary(&set),
        vec![
            (Action::Added, "new.yaml", None),
            (Action::Deleted, "old.yaml", None),
        ]
    );
}

#[test]
fn worktree_rename_with_a_plain_mv_is_a_rename() {
    let repo = TestRepo::new();
    repo.write("web.yaml", manifest("web", 1));
    repo.commit_all("initial");
    // Not `git mv`: the new name is untracked, as after a rename in an editor.
    repo.rename("web.yaml", "clusters/web.yaml");
    repo.write("clusters/web.yaml", manifest("web", 2));

    let set = detect(&repo, ChangeMode::WorkTree, &[]);
    assert_eq!(
        summary(&set),
        vec![(Action::Renamed, "clusters/web.yaml", Some("web.yaml"))]
    );
    let renamed = file(&set, "clusters/web.yaml");
    assert_eq!(
        before_text(renamed).as_deref(),
        Some(manifest("web", 1).as_str())
    );
    assert_eq!(
        after_text(renamed).as_deref(),
        Some(manifest("web", 2).as_str())
    );
}

#[test]
fn deleted_files_keep_their_content_and_stay_in_the_set() {
    let repo = TestRepo::new();
    repo.write("keep.yaml", "k: 1\n");
    repo.write("apps/drop.yaml", "d: 1\n");
    let base = repo.commit_all("initial");
    repo.git(&["rm", "-q", "apps/drop.yaml"]);
    let head = repo.commit_all("delete");

    let set = detect(&repo, range(&base, &head), &[]);
    assert_eq!(
        summary(&set),
        vec![(Action::Deleted, "apps/drop.yaml", None)]
    );
    let deleted = file(&set, "apps/drop.yaml");
    assert_eq!(before_text(deleted).as_deref(), Some("d: 1\n"));
    assert_eq!(deleted.after(), None);
}

#[test]
fn all_at_a_revision_lists_every_file_of_that_commit() {
    let repo = TestRepo::new();
    repo.write("a.yaml", "a: 1\n");
    repo.write("apps/b.yaml", "b: 1\n");
    let first = repo.commit_all("initial");
    repo.write("a.yaml", "a: 2\n");
    repo.write("c.yaml", "c: 1\n");
    repo.commit_all("second");

    let set = detect(
        &repo,
        ChangeMode::All {
            rev: Some("HEAD~1".into()),
        },
        &[],
    );
    assert_eq!(
        summary(&set),
        vec![
            (Action::Added, "a.yaml", None),
            (Action::Added, "apps/b.yaml", None),
        ]
    );
    assert_eq!(after_text(file(&set, "a.yaml")).as_deref(), Some("a: 1\n"));
    assert_eq!(file(&set, "a.yaml").before(), None);
    assert_eq!(set.head.as_deref(), Some(first.as_str()));
    assert_eq!(set.base, None);
}

#[test]
fn all_in_the_worktree_lists_tracked_and_untracked_files_but_not_ignored_or_removed_ones() {
    let repo = TestRepo::new();
    repo.write(".gitignore", "*.secret\n");
    repo.write("a.yaml", "a: 1\n");
    repo.write("removed.yaml", "r: 1\n");
    repo.commit_all("initial");
    repo.write("a.yaml", "a: edited\n");
    repo.remove("removed.yaml");
    repo.write("apps/new.yaml", "n: 1\n");
    repo.write("token.secret", "hunter2\n");

    let set = detect(&repo, ChangeMode::All { rev: None }, &[]);
    assert_eq!(
        summary(&set),
        vec![
            (Action::Added, ".gitignore", None),
            (Action::Added, "a.yaml", None),
            (Action::Added, "apps/new.yaml", None),
        ]
    );
    assert_eq!(
        after_text(file(&set, "a.yaml")).as_deref(),
        Some("a: edited\n")
    );
    assert_eq!(
        after_text(file(&set, "apps/new.yaml")).as_deref(),
        Some("n: 1\n")
    );
    assert_eq!((set.base.as_deref(), set.head.as_deref()), (None, None));
}

#[test]
fn paths_narrow_every_mode() {
    let repo = TestRepo::new();
    repo.write("apps/web.yaml", "w: 1\n");
    repo.write("apps/db.json", "{}\n");
    repo.write("apps-other/x.yaml", "x: 1\n");
    repo.write("infra/net.yaml", "n: 1\n");
    let base = repo.commit_all("initial");
    for (path, text) in [
        ("apps/web.yaml", "w: 2\n"),
        ("apps/db.json", "{\"a\": 1}\n"),
        ("apps-other/x.yaml", "x: 2\n"),
        ("infra/net.yaml", "n: 2\n"),
    ] {
        repo.write(path, text);
    }

    let paths_of = |set: &ChangeSet| set.paths().map(str::to_string).collect::<Vec<_>>();
    // A directory is a prefix on whole path components: `apps` does not take `apps-other`.
    let dir = detect(&repo, ChangeMode::WorkTree, &["apps"]);
    assert_eq!(paths_of(&dir), ["apps/db.json", "apps/web.yaml"]);
    let file_only = detect(&repo, ChangeMode::WorkTree, &["infra/net.yaml"]);
    assert_eq!(paths_of(&file_only), ["infra/net.yaml"]);
    let two = detect(&repo, ChangeMode::WorkTree, &["infra/", "apps-other"]);
    assert_eq!(paths_of(&two), ["apps-other/x.yaml", "infra/net.yaml"]);
    let glob = detect(&repo, ChangeMode::WorkTree, &["*.json"]);
    assert_eq!(paths_of(&glob), ["apps/db.json"]);

    let head = repo.commit_all("edit");
    let ranged = detect(&repo, range(&base, &head), &["apps"]);
    assert_eq!(paths_of(&ranged), ["apps/db.json", "apps/web.yaml"]);
    let all = detect(&repo, ChangeMode::All { rev: Some(head) }, &["infra"]);
    assert_eq!(paths_of(&all), ["infra/net.yaml"]);

    // From a subdirectory, paths are relative to it, as with `git diff -- PATH`.
    repo.write("apps/web.yaml", "w: 3\n");
    repo.write("infra/net.yaml", "n: 3\n");
    let sub = detect_changes(
        &repo.abs("apps"),
        &ChangeMode::WorkTree,
        &["web.yaml".to_string()],
    )
    .expect("detect from a subdirectory");
    assert_eq!(paths_of(&sub), ["apps/web.yaml"]);
    let up = detect_changes(
        &repo.abs("apps"),
        &ChangeMode::WorkTree,
        &["../infra".to_string()],
    )
    .expect("detect with ..");
    assert_eq!(paths_of(&up), ["infra/net.yaml"]);
}

#[test]
fn binary_files_are_skipped() {
    let repo = TestRepo::new();
    repo.write("a.yaml", "a: 1\n");
    let base = repo.commit_all("initial");
    repo.write("logo.png", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR");
    repo.write("a.yaml", "a: 2\n");
    let head = repo.commit_all("add a binary");

    for set in [
        detect(&repo, range(&base, &head), &[]),
        detect(&repo, ChangeMode::All { rev: None }, &[]),
    ] {
        assert_eq!(set.paths().collect::<Vec<_>>(), ["a.yaml"]);
        assert_eq!(skipped(&set), vec![("logo.png", "binary file")]);
    }
}

#[cfg(unix)]
#[test]
fn symlinks_are_skipped_and_never_followed() {
    let passwd = std::fs::read("/etc/passwd").unwrap_or_default();
    let repo = TestRepo::new();
    repo.write("a.yaml", "a: 1\n");
    let base = repo.commit_all("initial");
    repo.symlink("/etc/passwd", "leak.yaml");
    repo.symlink("/etc", "etc-dir");
    let head = repo.commit_all("add symlinks");
    // And one that is only in the working tree.
    repo.symlink("/etc/passwd", "untracked-leak.yaml");

    // Each mode with the symlinks it must skip: the working tree only differs from HEAD by the
    // untracked link; `--all` in the working tree sees all three.
    let cases = [
        (range(&base, &head), vec!["etc-dir", "leak.yaml"]),
        (ChangeMode::WorkTree, vec!["untracked-leak.yaml"]),
        (
            ChangeMode::All { rev: None },
            vec!["etc-dir", "leak.yaml", "untracked-leak.yaml"],
        ),
        (
            ChangeMode::All {
                rev: Some(head.clone()),
            },
            vec!["etc-dir", "leak.yaml"],
        ),
    ];
    for (mode, links) in cases {
        let set = detect(&repo, mode.clone(), &[]);
        let leaked = set
            .files
            .iter()
            .flat_map(|f| [before_text(f), after_text(f)])
            .flatten()
            .any(|bytes| !passwd.is_empty() && bytes.as_bytes() == passwd.as_slice());
        assert!(!leaked, "{mode:?} read /etc/passwd through a symlink");
        let expected_files: &[&str] = match mode {
            ChangeMode::All { .. } => &["a.yaml"],
            _ => &[],
        };
        assert_eq!(set.paths().collect::<Vec<_>>(), expected_files, "{mode:?}");
        // Links out of the repository are refused (the gate blocks on them), never followed.
        let refused: Vec<(&str, SkipKind, bool)> = set
            .skipped
            .iter()
            .map(|s| {
                (
                    s.path.as_str(),
                    s.kind,
                    s.reason.contains("leaves the repository"),
                )
            })
            .collect();
        let expected: Vec<(&str, SkipKind, bool)> = links
            .iter()
            .map(|p| (*p, SkipKind::Symlink, true))
            .collect();
        assert_eq!(refused, expected, "{mode:?}");
    }
}

#[cfg(unix)]
#[test]
fn a_tracked_file_whose_directory_became_a_symlink_is_not_read() {
    let repo = TestRepo::new();
    repo.write("conf/passwd", "mine: 1\n");
    repo.commit_all("initial");
    std::fs::remove_dir_all(repo.abs("conf")).expect("remove dir");
    repo.symlink("/etc", "conf");

    let set = detect(&repo, ChangeMode::WorkTree, &[]);
    let passwd = std::fs::read("/etc/passwd").unwrap_or_default();
    for f in &set.files {
        assert_ne!(
            after_text(f).map(String::into_bytes),
            Some(passwd.clone()),
            "{}",
            f.path
        );
    }
    let deleted = file(&set, "conf/passwd");
    assert_eq!(deleted.action(), Action::Deleted);
    assert_eq!(before_text(deleted).as_deref(), Some("mine: 1\n"));
}

#[test]
fn submodules_are_skipped() {
    let library = TestRepo::new();
    library.write("lib.yaml", "l: 1\n");
    library.commit_all("library");

    let repo = TestRepo::new();
    repo.write("a.yaml", "a: 1\n");
    let base = repo.commit_all("initial");
    repo.add_submodule(&library, "vendor/lib");
    let head = repo.commit_all("add submodule");

    let set = detect(&repo, range(&base, &head), &[]);
    assert_eq!(summary(&set), vec![(Action::Added, ".gitmodules", None)]);
    assert_eq!(
        skipped(&set),
        vec![("vendor/lib", "submodule, not followed")]
    );

    let all = detect(&repo, ChangeMode::All { rev: None }, &[]);
    assert!(
        all.paths().all(|p| !p.starts_with("vendor/lib")),
        "{:?}",
        summary(&all)
    );
    assert_eq!(
        skipped(&all),
        vec![("vendor/lib", "submodule, not followed")]
    );
}

#[test]
fn a_repository_without_commits_has_everything_added() {
    let repo = TestRepo::new();
    repo.write("a.yaml", "a: 1\n");
    repo.write("apps/b.yaml", "b: 1\n");
    repo.add("a.yaml");

    let worktree = detect(&repo, ChangeMode::WorkTree, &[]);
    assert_eq!(
        summary(&worktree),
        vec![
            (Action::Added, "a.yaml", None),
            (Action::Added, "apps/b.yaml", None),
        ]
    );
    assert_eq!(
        (worktree.base.as_deref(), worktree.head.as_deref()),
        (None, None)
    );

    let staged = detect(&repo, ChangeMode::Staged, &[]);
    assert_eq!(summary(&staged), vec![(Action::Added, "a.yaml", None)]);
    assert_eq!(
        after_text(file(&staged, "a.yaml")).as_deref(),
        Some("a: 1\n")
    );
}

#[test]
fn errors_say_what_went_wrong_and_what_to_do() {
    let repo = TestRepo::new();
    repo.write("a.yaml", "a: 1\n");
    repo.commit_all("initial");

    let err = detect_changes(repo.path(), &range("nope", "HEAD"), &[]).unwrap_err();
    let message = err.to_string();
    assert!(message.starts_with("unknown revision `nope`"), "{message}");
    assert!(message.contains("fetch"), "{message}");

    let outside = detect_changes(repo.path(), &ChangeMode::WorkTree, &["../elsewhere".into()])
        .unwrap_err()
        .to_string();
    assert!(outside.contains("outside the repository"), "{outside}");

    let empty = tempfile::tempdir().expect("temp dir");
    let none = detect_changes(empty.path(), &ChangeMode::WorkTree, &[])
        .unwrap_err()
        .to_string();
    assert!(none.starts_with("no git repository"), "{none}");
}

#[test]
fn unrelated_histories_have_no_merge_base() {
    let repo = TestRepo::new();
    repo.write("a.yaml", "a: 1\n");
    repo.commit_all("main");
    repo.git(&["checkout", "-q", "--orphan", "other"]);
    repo.write("b.yaml", "b: 1\n");
    repo.commit_all("unrelated");

    let err = detect_changes(repo.path(), &range("main", "other"), &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("no merge base"), "{err}");
}

#[test]
fn a_file_removed_from_the_index_but_kept_on_disk_is_deleted() {
    // `git rm --cached`: the next commit deletes the file, so, like `git diff HEAD`, the working
    // tree mode reports a deletion (with its content) even though the bytes are still on disk.
    let repo = TestRepo::new();
    repo.write("a.yaml", "a: 1\n");
    repo.write("b.yaml", "b: 1\n");
    repo.commit_all("initial");
    repo.git(&["rm", "-q", "--cached", "a.yaml"]);
    repo.write("b.yaml", "b: 2\n");

    let worktree = detect(&repo, ChangeMode::WorkTree, &[]);
    assert_eq!(
        summary(&worktree),
        vec![
            (Action::Deleted, "a.yaml", None),
            (Action::Modified, "b.yaml", None)
        ]
    );
    assert_eq!(
        before_text(file(&worktree, "a.yaml")).as_deref(),
        Some("a: 1\n")
    );
    let staged = detect(&repo, ChangeMode::Staged, &[]);
    assert_eq!(summary(&staged), vec![(Action::Deleted, "a.yaml", None)]);
}

#[test]
fn a_bare_repository_has_ranges_but_no_working_tree() {
    let repo = TestRepo::new();
    repo.write("a.yaml", "a: 1\n");
    let base = repo.commit_all("initial");
    repo.write("a.yaml", "a: 2\n");
    let head = repo.commit_all("edit");
    let bare = tempfile::tempdir().expect("temp dir");
    let bare_path = bare.path().join("repo.git");
    repo.git(&["clone", "-q", "--bare", ".", &bare_path.to_string_lossy()]);

    let set = detect_changes(&bare_path, &range(&base, &head), &[]).expect("range in a bare repo");
    assert_eq!(summary(&set), vec![(Action::Modified, "a.yaml", None)]);
    assert_eq!(after_text(file(&set, "a.yaml")).as_deref(), Some("a: 2\n"));

    let err = detect_changes(&bare_path, &ChangeMode::WorkTree, &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("bare repository"), "{err}");
}

#[test]
fn an_untracked_nested_repository_is_skipped_not_entered() {
    let repo = TestRepo::new();
    repo.write("a.yaml", "a: 1\n");
    repo.commit_all("initial");
    repo.write("nested/inner.yaml", "i: 1\n");
    repo.git_in(&repo.abs("nested"), &["init", "-q", "-b", "main"]);

    for mode in [ChangeMode::WorkTree, ChangeMode::All { rev: None }] {
        let set = detect(&repo, mode.clone(), &[]);
        assert!(
            set.paths().all(|p| !p.starts_with("nested")),
            "{mode:?}: {:?}",
            summary(&set)
        );
        assert_eq!(
            skipped(&set),
            vec![("nested", "nested git repository, not followed")],
            "{mode:?}"
        );
    }
}

/// The walk decides what a directory is from its own listing when it is small, and with a `stat`
/// when it is large (more entries than it reads ahead): both must list what git lists. Here a
/// large directory has ignore rules of its own and a nested repository below it, and so does a
/// small one.
#[test]
fn large_and_small_directories_list_alike() {
    let repo = TestRepo::new();
    repo.write("a.yaml", "a: 1\n");
    repo.commit_all("initial");
    for dir in ["small", "large"] {
        let count = if dir == "large" { 700 } else { 3 };
        for i in 0..count {
            repo.write(&format!("{dir}/f{i}.yaml"), "x: 1\n");
        }
        repo.write(&format!("{dir}/skip.secret"), "s: 1\n");
        repo.write(&format!("{dir}/.gitignore"), "*.secret\n");
        repo.write(&format!("{dir}/inner/nested.yaml"), "n: 1\n");
        repo.git_in(
            &repo.abs(&format!("{dir}/inner")),
            &["init", "-q", "-b", "main"],
        );
    }
    let set = detect(&repo, ChangeMode::All { rev: None }, &[]);
    for dir in ["small", "large"] {
        let listed: Vec<&str> = set.paths().filter(|p| p.starts_with(dir)).collect();
        let expected = if dir == "large" { 701 } else { 4 };
        assert_eq!(listed.len(), expected, "{dir}: {listed:?}");
        assert!(
            listed.contains(&&*format!("{dir}/.gitignore")),
            "{listed:?}"
        );
        assert!(listed.iter().all(|p| !p.ends_with(".secret")), "{listed:?}");
        assert!(listed.iter().all(|p| !p.contains("/inner/")), "{listed:?}");
    }
    let nested: Vec<_> = skipped(&set)
        .into_iter()
        .filter(|(p, _)| p.ends_with("inner"))
        .collect();
    assert_eq!(
        nested,
        vec![
            ("large/inner", "nested git repository, not followed"),
            ("small/inner", "nested git repository, not followed")
        ]
    );
}
