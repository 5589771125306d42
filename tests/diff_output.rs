//! The diff's outputs: secrets never leak, the markdown comment fits GitHub's limit, and the
//! formats are pinned by snapshots.

mod common;

use std::collections::BTreeMap;

use common::diff::diff_of;
use common::git::TestRepo;
use stategate::cli::diff::{DiffArgs, run_diff};
use stategate::config::Config;
use stategate::diff::format::{COMMENT_LIMIT, MARKER};
use stategate::diff::{DiffOptions, Format, Status, format_diff};
use stategate::tree::MemTree;

const OLD_DATA: &str = "b2xkLXNlY3JldC12YWx1ZQ==";
const NEW_DATA: &str = "bmV3LXNlY3JldC12YWx1ZQ==";
const OLD_PLAIN: &str = "correct-horse-battery";
const NEW_PLAIN: &str = "tr0ub4dor-and-3";
const KEPT: &str = "a2VwdC1zZWNyZXQ=";
const DB_OLD: &str = "db-pass-before-9731";
const DB_NEW: &str = "db-pass-after-1357";

fn secret(data: &str, plain: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\n  namespace: shop\ntype: Opaque\n\
         data:\n  token: {data}\n  kept: {KEPT}\nstringData:\n  password: {plain}\n"
    )
}

fn app(password: &str) -> String {
    format!(
        "apiVersion: example.com/v1\nkind: App\nmetadata:\n  name: shop\nspec:\n  database:\n    \
         user: shop\n    password: {password}\n"
    )
}

#[test]
fn a_secret_change_is_masked_in_every_format_and_in_the_cli() {
    let repo = TestRepo::new();
    repo.write(
        ".stategate.yaml",
        "version: 1\ndiff:\n  mask: [\"/spec/**/password\"]\n",
    );
    repo.write("apps/secret.yaml", secret(OLD_DATA, OLD_PLAIN));
    repo.write("apps/app.yaml", app(DB_OLD));
    let base = repo.commit_all("secret");
    repo.write("apps/secret.yaml", secret(NEW_DATA, NEW_PLAIN));
    repo.write("apps/app.yaml", app(DB_NEW));
    repo.commit_all("rotate");

    let mut outputs = Vec::new();
    for (format, color) in [
        (Format::Human, false),
        (Format::Human, true),
        (Format::Json, false),
        (Format::Markdown, false),
    ] {
        let args = DiffArgs {
            base: Some(base.clone()),
            head: None,
            staged: false,
            format,
            color,
            live: false,
            env: None,
            cache_dir: None,
            no_cache: true,
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        assert_eq!(run_diff(repo.path(), &args, &mut out, &mut err), 0);
        outputs
            .push(String::from_utf8(out).expect("utf-8") + &String::from_utf8(err).expect("utf-8"));
    }
    for output in &outputs {
        for value in [
            OLD_DATA, NEW_DATA, OLD_PLAIN, NEW_PLAIN, KEPT, DB_OLD, DB_NEW,
        ] {
            assert!(!output.contains(value), "{value} leaked into:\n{output}");
        }
        assert!(output.contains("<masked, changed>"), "{output}");
    }
    let json: serde_json::Value = serde_json::from_str(&outputs[2]).expect("json");
    let secret = json["objects"]
        .as_array()
        .expect("objects")
        .iter()
        .find(|o| o["id"] == "v1/Secret/shop/creds")
        .expect("the secret is listed");
    assert_eq!(secret["status"], "changed");
    assert_eq!(
        secret["changed_fields"],
        serde_json::json!(["data.token", "stringData.password"])
    );
    // Unchanged secret values stay masked without the "changed" flag.
    assert!(
        secret["diff"]
            .as_str()
            .is_some_and(|d| d.contains("  kept: <masked>\n"))
    );
}

#[test]
fn formatting_comments_and_key_order_are_not_changes() {
    let before = "# web\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  \
                  template:\n    spec:\n      containers:\n        - name: a\n          image: a:1\n        \
                  - name: b\n          image: b:1\n";
    let after = "kind: Deployment\napiVersion: \"apps/v1\"\nmetadata: {name: web}\n# reordered\nspec:\n  \
                 template:\n    spec:\n      containers:\n      - {image: 'b:1', name: b}\n      - name: a\n        \
                 image: a:1\n";
    let result = diff_of(
        &MemTree::with_files("base", &[("web.yaml", before.to_string())]),
        &MemTree::with_files("head", &[("web.yaml", after.to_string())]),
        &Config::default(),
        &DiffOptions::default(),
    );
    assert_eq!(result.objects.len(), 1);
    assert_eq!(
        result.objects[0].status,
        Status::Unchanged,
        "{}",
        result.objects[0].diff
    );
}

#[test]
fn moved_objects_and_small_changes_render_stably() {
    let cm = |v: &str| {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  level: {v}\n")
    };
    let svc = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  ports:\n  - port: 80\n";
    let base = MemTree::with_files(
        "main",
        &[
            ("apps/cfg.yaml", cm("info")),
            ("apps/svc.yaml", svc.to_string()),
            (
                "apps/old.yaml",
                "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: old\n".into(),
            ),
        ],
    );
    let head = MemTree::with_files(
        "feature",
        &[
            ("apps/cfg.yaml", cm("debug")),
            ("apps/network/svc.yaml", svc.to_string()),
            (
                "apps/new.yaml",
                "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n".into(),
            ),
        ],
    );
    let result = diff_of(&base, &head, &Config::default(), &DiffOptions::default());
    let statuses: BTreeMap<String, Status> = result
        .objects
        .iter()
        .map(|o| (o.id.to_string(), o.status))
        .collect();
    assert_eq!(statuses["v1/Service/shop/web"], Status::Moved);
    assert_eq!(statuses["v1/Namespace//shop"], Status::Added);
    assert_eq!(statuses["v1/ServiceAccount/default/old"], Status::Removed);
    assert_eq!(statuses["v1/ConfigMap/default/cfg"], Status::Changed);
    insta::assert_snapshot!(
        "small_markdown",
        format_diff(&result, Format::Markdown, false)
    );
    insta::assert_snapshot!("small_human", format_diff(&result, Format::Human, false));
    insta::assert_snapshot!("small_json", format_diff(&result, Format::Json, false));
}

#[test]
fn a_five_thousand_object_change_fits_in_one_comment_with_its_summary() {
    let configmaps = |value: &str| -> Vec<(String, String)> {
        (0..50)
            .map(|file| {
                let docs: Vec<String> = (0..100)
                    .map(|i| {
                        format!(
                            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{file}-{i}\n  \
                             namespace: prod\ndata:\n  value: {value}-{i}\n"
                        )
                    })
                    .collect();
                (
                    format!("clusters/prod/cm-{file:02}.yaml"),
                    docs.join("---\n"),
                )
            })
            .collect()
    };
    let side = |name: &str, files: Vec<(String, String)>| MemTree::with_files(name, &files);
    let mut config = Config::default();
    config
        .environments
        .insert("prod".into(), vec!["clusters/prod/**".into()]);
    let result = diff_of(
        &side("base", configmaps("old")),
        &side("head", configmaps("new")),
        &config,
        &DiffOptions::default(),
    );
    assert_eq!(result.count(Status::Changed), 5000);
    let markdown = format_diff(&result, Format::Markdown, false);
    assert!(
        markdown.chars().count() <= COMMENT_LIMIT,
        "{} characters",
        markdown.chars().count()
    );
    assert!(markdown.starts_with(MARKER));
    assert!(markdown.contains("| prod | ConfigMap | 0 | 5000 | 0 | 0 |"));
    let shown = markdown.matches("<details>").count();
    assert!(shown > 10, "only {shown} objects shown");
    let trailer = format!("**{} of 5000 objects are not shown**", 5000 - shown);
    assert!(markdown.contains(&trailer), "no trailer `{trailer}`");
    // Every section that is shown is whole.
    assert_eq!(markdown.matches("</details>").count(), shown);
}
