use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::config::SchemaMapping;
use crate::load::{Positions, SourceFile};
use crate::tree::MemTree;

/// A document without source positions: enough to test verdicts and messages.
fn doc(path: &str, value: Value) -> Document {
    Document {
        source: Arc::new(SourceFile::new(path, "")),
        index: 0,
        item: None,
        value,
        positions: Positions::default(),
    }
}

fn mem(files: &[(&str, &str)]) -> MemTree {
    MemTree::with_files("test tree", files)
}

fn config(kubernetes: Option<&str>) -> SchemasConfig {
    SchemasConfig {
        kubernetes: kubernetes.map(str::to_owned),
        ..SchemasConfig::default()
    }
}

fn set() -> SchemaSet {
    SchemaSet::build(&config(Some("1.32")), &MemTree::empty("test"), &[]).unwrap()
}

fn deployment(spec_extra: Value) -> Value {
    let mut spec = json!({
        "selector": {"matchLabels": {"app": "x"}},
        "template": {
            "metadata": {"labels": {"app": "x"}},
            "spec": {"containers": [{"name": "x", "image": "nginx"}]}
        }
    });
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), spec_extra.as_object()) {
        spec.extend(extra.clone());
    }
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"}, "spec": spec})
}

fn rules(findings: &[Finding]) -> Vec<(&'static str, String)> {
    findings
        .iter()
        .map(|f| (f.rule.code(), f.message.clone()))
        .collect()
}

#[test]
fn a_valid_deployment_passes() {
    assert_eq!(
        rules(&set().check(&doc("d.yaml", deployment(json!({}))))),
        vec![]
    );
}

#[test]
fn wrong_type_names_path_and_value() {
    let findings = set().check(&doc("d.yaml", deployment(json!({"replicas": "3"}))));
    assert_eq!(
        rules(&findings),
        vec![(
            "schema/type",
            "spec.replicas: expected integer, found string \"3\"".to_string()
        )]
    );
}

#[test]
fn int_or_string_accepts_both_and_null() {
    let strategy =
        |v: Value| json!({"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": v}}});
    let set = set();
    for ok in [json!(1), json!("25%"), Value::Null] {
        assert!(
            set.check(&doc("d.yaml", deployment(strategy(ok.clone()))))
                .is_empty(),
            "{ok}"
        );
    }
    let findings = set.check(&doc("d.yaml", deployment(strategy(json!(true)))));
    assert_eq!(findings[0].rule, Rule::SchemaType);
    assert!(
        findings[0]
            .message
            .contains("expected integer or string, found boolean true"),
        "{findings:?}"
    );
}

#[test]
fn unknown_field_suggests_the_known_one() {
    let findings = set().check(&doc("d.yaml", deployment(json!({"replcas": 2}))));
    assert_eq!(
        rules(&findings),
        vec![(
            "schema/unknown-field",
            "unknown field `replcas` in spec (did you mean `replicas`?)".to_string()
        )]
    );
    assert_eq!(
        findings[0].object.as_ref().unwrap().kind(),
        Some("Deployment")
    );
}

#[test]
fn missing_required_field_is_named() {
    let mut value = deployment(json!({}));
    value["spec"].as_object_mut().unwrap().remove("selector");
    let findings = set().check(&doc("d.yaml", value));
    assert_eq!(
        rules(&findings),
        vec![(
            "schema/required",
            "spec: missing required field `selector`".to_string()
        )]
    );
}

#[test]
fn unknown_kinds_follow_the_policy() {
    let value =
        json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}});
    let mut cfg = config(Some("1.32"));
    for (policy, expected) in [
        (UnknownPolicy::Skip, None),
        (UnknownPolicy::Warn, Some(Severity::Warning)),
        (UnknownPolicy::Error, Some(Severity::Error)),
    ] {
        cfg.unknown = policy;
        let set = SchemaSet::build(&cfg, &MemTree::empty("test"), &[]).unwrap();
        let findings = set.check(&doc("w.yaml", value.clone()));
        assert_eq!(findings.first().map(|f| f.severity), expected);
        if let Some(f) = findings.first() {
            assert_eq!(f.rule, Rule::SchemaUnknownKind);
            assert!(f.message.contains("`example.com/v1`") && f.message.contains("`Widget`"));
            assert!(f.help.as_deref().unwrap().contains("schemas.crds"));
        }
    }
}

#[test]
fn documents_without_a_kind_are_only_noted_under_warn() {
    let value = json!({"replicaCount": 2, "image": {"tag": "1.2.3"}});
    let mut cfg = config(Some("1.32"));
    for (policy, expected) in [
        (UnknownPolicy::Skip, None),
        (UnknownPolicy::Warn, Some(Severity::Note)),
        (UnknownPolicy::Error, Some(Severity::Error)),
    ] {
        cfg.unknown = policy;
        let set = SchemaSet::build(&cfg, &MemTree::empty("test"), &[]).unwrap();
        let findings = set.check(&doc("values.yaml", value.clone()));
        assert_eq!(findings.first().map(|f| f.severity), expected);
    }
}

#[test]
fn a_removed_api_names_the_served_one() {
    let value = json!({"apiVersion": "extensions/v1beta1", "kind": "Deployment",
        "metadata": {"name": "d"}, "spec": {}});
    let findings = set().check(&doc("d.yaml", value));
    assert_eq!(
        rules(&findings),
        vec![(
            "schema/unknown-kind",
            "no schema for apiVersion `extensions/v1beta1`, kind `Deployment` (known as `apps/v1`)"
                .to_string()
        )]
    );
}

#[test]
fn version_selection() {
    let tree = MemTree::empty("test");
    let newest = SchemaSet::build(&config(None), &tree, &[]).unwrap();
    assert_eq!(
        newest.kubernetes_version(),
        available_versions().first().copied()
    );
    let off = SchemaSet::build(&config(Some("none")), &tree, &[]).unwrap();
    assert!(!off.covers("apps/v1", "Deployment"));
    let errors = SchemaSet::build(&config(Some("1.19")), &tree, &[])
        .err()
        .unwrap();
    assert_eq!(errors[0].rule, Rule::ConfigInvalid);
    assert!(errors[0].message.contains("1.25"), "{}", errors[0].message);
    // Kinds come and go between versions: flowcontrol v1beta2 was removed in 1.29.
    let old = SchemaSet::build(&config(Some("v1.26")), &tree, &[]).unwrap();
    assert!(old.covers("flowcontrol.apiserver.k8s.io/v1beta2", "FlowSchema"));
    assert!(!set().covers("flowcontrol.apiserver.k8s.io/v1beta2", "FlowSchema"));
}

fn widget_crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "names": {"kind": "Widget", "plural": "widgets"},
            "scope": "Namespaced",
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "spec": {
                            "type": "object",
                            "required": ["size"],
                            "properties": {
                                "size": {"type": "integer", "nullable": true},
                                "port": {
                                    "x-kubernetes-int-or-string": true,
                                    "anyOf": [{"type": "integer"}, {"type": "string"}]
                                },
                                "mode": {"type": "string", "enum": ["fast", "slow"]},
                                "values": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
                            }
                        }
                    }
                }}
            }, {"name": "v0", "served": false, "storage": false,
                "schema": {"openAPIV3Schema": {"type": "object"}}}]
        }
    })
}

/// A Widget (the kind of [`widget_crd`]) with `spec`.
fn widget(spec: Value) -> Document {
    doc(
        "w.yaml",
        json!({"apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w"}, "spec": spec}),
    )
}

#[test]
fn crds_become_strict_schemas() {
    let set = SchemaSet::build(
        &config(Some("1.32")),
        &MemTree::empty("test"),
        &crd_kinds(&[doc("crd.yaml", widget_crd())]),
    )
    .unwrap();
    assert!(set.covers("example.com/v1", "Widget"));
    assert!(
        !set.covers("example.com/v0", "Widget"),
        "unserved versions are not schemas"
    );
    assert!(
        set.check(&widget(
            json!({"size": null, "port": "http", "values": {"any": {"thing": 1}}})
        ))
        .is_empty()
    );
    assert!(
        set.check(&widget(json!({"size": 1, "port": 8080})))
            .is_empty()
    );
    assert_eq!(
        rules(&set.check(&widget(json!({"size": 1, "sise": 2})))),
        vec![(
            "schema/unknown-field",
            "unknown field `sise` in spec (did you mean `size`?)".to_string()
        )]
    );
    assert_eq!(
        rules(&set.check(&widget(json!({})))),
        vec![(
            "schema/required",
            "spec: missing required field `size`".to_string()
        )]
    );
    assert_eq!(
        rules(&set.check(&widget(json!({"size": 1, "mode": "medium"})))),
        vec![(
            "schema/enum",
            "spec.mode: \"medium\" is not one of \"fast\", \"slow\"".to_string()
        )]
    );
    // The type and the `anyOf` both reject a boolean: one finding, not three.
    assert_eq!(
        rules(&set.check(&widget(json!({"size": 1, "port": true})))),
        vec![(
            "schema/type",
            "spec.port: expected integer or string, found boolean true".to_string()
        )]
    );
    let top = set.check(&doc(
        "w.yaml",
        json!({"apiVersion": "example.com/v1", "kind": "Widget", "stauts": {}}),
    ));
    assert_eq!(top[0].rule, Rule::SchemaUnknownField);
}

#[test]
fn crd_with_a_broken_schema_is_an_invalid_schema_finding() {
    let mut crd = widget_crd();
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["size"] =
        json!({"type": "integer", "minimum": "zero"});
    let set = SchemaSet::build(
        &config(Some("none")),
        &MemTree::empty("test"),
        &crd_kinds(&[doc("crd.yaml", crd)]),
    )
    .unwrap();
    let findings = set.check(&doc(
        "w.yaml",
        json!({"apiVersion": "example.com/v1", "kind": "Widget", "spec": {"size": 1}}),
    ));
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0].rule, Rule::SchemaInvalid);
    assert_eq!(findings[0].location.as_ref().unwrap().file, "crd.yaml");
    assert!(
        findings[0]
            .message
            .contains("CRD in crd.yaml, at /spec/versions/0/schema/openAPIV3Schema"),
        "{}",
        findings[0].message
    );
}

/// The Widget CRD with a `name` that must match `pattern`.
fn patterned_widgets(pattern: &str) -> SchemaSet {
    let mut crd = widget_crd();
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["name"] =
        json!({"type": "string", "pattern": pattern});
    SchemaSet::build(
        &config(Some("none")),
        &MemTree::empty("test"),
        &crd_kinds(&[doc("crd.yaml", crd)]),
    )
    .unwrap()
}

#[test]
fn a_crd_pattern_judges_the_strings_of_its_field() {
    let set = patterned_widgets("^[a-z][a-z0-9-]*$");
    assert!(
        set.check(&widget(json!({"size": 1, "name": "web-1"})))
            .is_empty()
    );
    assert_eq!(
        rules(&set.check(&widget(json!({"size": 1, "name": "Web_1"})))),
        vec![(
            "schema/format",
            "spec.name: \"Web_1\" does not match the pattern `^[a-z][a-z0-9-]*$`".to_string()
        )]
    );
}

/// Patterns compile when a value first meets them (`schema::pattern`): one that cannot blocks
/// each object that sets its field, naming the pattern, and objects without the field pass.
#[test]
fn a_crd_pattern_that_does_not_compile_blocks_the_objects_that_set_its_field() {
    let set = patterned_widgets("([unclosed");
    assert!(set.check(&widget(json!({"size": 1}))).is_empty());
    let findings = set.check(&widget(json!({"size": 1, "name": "web"})));
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0].severity, Severity::Error);
    assert!(
        findings[0]
            .message
            .contains("spec.name: the schema's pattern `([unclosed` cannot be compiled"),
        "{}",
        findings[0].message
    );
}

fn mapping(schema: &str) -> SchemasConfig {
    SchemasConfig {
        kubernetes: Some("none".into()),
        map: vec![SchemaMapping {
            files: vec!["apps/*/config.yaml".into()],
            schema: schema.into(),
        }],
        ..SchemasConfig::default()
    }
}

#[test]
fn mapped_schemas_resolve_local_refs() {
    let tree = mem(&[
        (
            "schemas/app.json",
            r#"{"type": "object", "properties": {"owner": {"$ref": "common/owner.json"}}, "required": ["owner"]}"#,
        ),
        (
            "schemas/common/owner.json",
            r#"{"type": "string", "minLength": 3}"#,
        ),
    ]);
    let set = SchemaSet::build(&mapping("schemas/app.json"), &tree, &[]).unwrap();
    assert!(
        set.check(&doc("apps/a/config.yaml", json!({"owner": "team-a"})))
            .is_empty()
    );
    let findings = set.check(&doc("apps/a/config.yaml", json!({"owner": 7})));
    assert_eq!(
        rules(&findings),
        vec![(
            "schema/type",
            "owner: expected string, found number 7".to_string()
        )]
    );
    let findings = set.check(&doc("apps/a/config.yaml", json!({"owner": "ab"})));
    assert_eq!(findings[0].rule, Rule::SchemaConstraint);
    // Not matched by the glob (`*` does not cross `/`): an unknown document.
    let other = set.check(&doc("apps/a/b/config.yaml", json!({"owner": 7})));
    assert_eq!(other[0].rule, Rule::SchemaUnknownKind);
}

#[test]
fn mapped_schemas_refuse_remote_refs() {
    let tree = mem(&[(
        "schemas/app.json",
        r#"{"properties": {"x": {"$ref": "https://example.com/x.json"}}}"#,
    )]);
    let errors = SchemaSet::build(&mapping("schemas/app.json"), &tree, &[])
        .err()
        .unwrap();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].rule, Rule::SchemaInvalid);
    assert!(errors[0].message.contains("https://example.com/x.json"));
    assert_eq!(
        errors[0].location.as_ref().unwrap().file,
        "schemas/app.json"
    );
}

#[test]
fn a_remote_ref_is_located_at_its_line() {
    let tree = mem(&[(
        "schemas/app.yaml",
        "type: object\nproperties:\n  x:\n    $ref: http://example.com/x.json\n",
    )]);
    let errors = SchemaSet::build(&mapping("schemas/app.yaml"), &tree, &[])
        .err()
        .unwrap();
    let location = errors[0].location.as_ref().unwrap();
    assert_eq!(errors[0].rule, Rule::SchemaInvalid);
    assert_eq!(
        (location.file.as_str(), location.line),
        ("schemas/app.yaml", Some(4))
    );
}

#[test]
fn a_missing_or_broken_schema_file_is_undecidable() {
    let errors = SchemaSet::build(&mapping("schemas/none.json"), &MemTree::empty("test"), &[])
        .err()
        .unwrap();
    assert_eq!(errors[0].rule, Rule::SchemaInvalid);
    assert!(errors[0].message.contains("not found"));
    let tree = mem(&[(
        "schemas/app.json",
        "{\"type\": \"object\",\n  \"properties\": {\n}",
    )]);
    let errors = SchemaSet::build(&mapping("schemas/app.json"), &tree, &[])
        .err()
        .unwrap();
    assert_eq!(errors[0].rule, Rule::SchemaInvalid);
    assert!(errors[0].rule.is_undecidable());
    let location = errors[0].location.as_ref().unwrap();
    assert_eq!(location.file, "schemas/app.json");
    assert!(
        location.line.is_some(),
        "a syntax error is located: {location:?}"
    );
}

#[test]
fn schema_sets_are_shareable_across_threads() {
    fn assert_sync<T: Send + Sync>() {}
    assert_sync::<SchemaSet>();
}

#[test]
fn a_kind_defined_twice_is_kept_once_as_its_later_definition() {
    let mut later = widget_crd();
    later["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
        ["colour"] = json!({"type": "string"});
    let kinds = crd_kinds(&[
        doc("install.yaml", widget_crd()),
        doc("crds/widget.yaml", later),
    ]);
    assert_eq!(kinds.len(), 2, "one served version in each");
    let kept = latest_crd_kinds(kinds);
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].origin.file, "crds/widget.yaml");
    let openapi = crate::load::packed::unpack(&kept[0].openapi).unwrap();
    assert!(
        openapi["properties"]["spec"]["properties"]["colour"].is_object(),
        "{openapi}"
    );
}

/// A CRD whose spec holds the same endpoint type twice, as Argo CD's ApplicationSet holds its
/// Application template under every generator.
fn twin_crd() -> Value {
    let endpoint = json!({
        "type": "object",
        "required": ["host"],
        "properties": {
            "host": {"type": "string"},
            "port": {"type": "integer", "minimum": 1},
            "tls": {"type": "object", "properties": {
                "enabled": {"type": "boolean"}, "secretName": {"type": "string"}
            }},
            "mode": {"type": "string", "enum": ["fast", "slow"]}
        }
    });
    let mut crd = widget_crd();
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"] =
        json!({"type": "object", "properties": {"primary": endpoint, "backup": endpoint}});
    crd
}

#[test]
fn a_crd_type_used_twice_is_compiled_once_and_still_named_in_findings() {
    let kinds = crd_kinds(&[doc("crd.yaml", twin_crd())]);
    let set = SchemaSet::build(&config(Some("1.32")), &MemTree::empty("test"), &kinds).unwrap();
    let schema = set
        .kind_schema("example.com/v1", "Widget")
        .unwrap()
        .schema()
        .unwrap();
    assert_eq!(
        schema["$defs"].as_object().map(serde_json::Map::len),
        Some(1),
        "the endpoint type is written once: {schema:#}"
    );
    assert!(
        set.check(&widget(
            json!({"primary": {"host": "a"}, "backup": {"host": "b", "port": 2}})
        ))
        .is_empty()
    );
    assert_eq!(
        rules(&set.check(&widget(json!({
            "primary": {"host": "a", "tls": {"enabled": "yes"}},
            "backup": {"port": 0, "hots": "b", "mode": "medium"}
        })))),
        vec![
            (
                "schema/type",
                "spec.primary.tls.enabled: expected boolean, found string \"yes\"".to_string()
            ),
            (
                "schema/constraint",
                "spec.backup.port: 0 is less than the minimum of 1".to_string()
            ),
            (
                "schema/enum",
                "spec.backup.mode: \"medium\" is not one of \"fast\", \"slow\"".to_string()
            ),
            (
                "schema/unknown-field",
                "unknown field `hots` in spec.backup (did you mean `host`?)".to_string()
            ),
            (
                "schema/required",
                "spec.backup: missing required field `host`".to_string()
            ),
        ]
    );
}

#[test]
fn a_forgotten_validator_is_compiled_again_when_its_kind_comes_back() {
    let mut set = set();
    let documents = [
        doc("d.yaml", deployment(json!({"replicas": "two"}))),
        doc(
            "c.yaml",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": 1}}),
        ),
        // A catalog kind no other test of this binary uses: the catalog is the process's own.
        doc(
            "m.yaml",
            json!({"apiVersion": "monitoring.coreos.com/v1", "kind": "PodMonitor",
                   "metadata": {"name": "m"}, "spec": {"podMetricsEndpoints": "all"}}),
        ),
    ];
    let before: Vec<_> = documents.iter().map(|d| rules(&set.check(d))).collect();
    assert!(before.iter().all(|r| !r.is_empty()), "{before:?}");
    let monitor = set
        .catalog_schema("monitoring.coreos.com/v1", "PodMonitor")
        .unwrap()
        .unwrap();
    assert!(monitor.is_compiled());

    set.forget_validators_except(&BTreeSet::from([("v1".to_owned(), "ConfigMap".to_owned())]));
    let compiled = |api_version, kind| set.kind_schema(api_version, kind).unwrap().is_compiled();
    assert!(!compiled("apps/v1", "Deployment"));
    assert!(compiled("v1", "ConfigMap"));
    assert!(!monitor.is_compiled());

    let after: Vec<_> = documents.iter().map(|d| rules(&set.check(d))).collect();
    assert_eq!(after, before);
    assert!(compiled("apps/v1", "Deployment") && monitor.is_compiled());
}

/// A repository CRD's schema is converted once: parsed again (for a finding, or to compile again
/// after being forgotten) it is read from its converted text, and is the same schema.
#[test]
fn a_crd_schema_is_converted_once_and_read_back_the_same() {
    let mut set = SchemaSet::build(
        &config(Some("none")),
        &MemTree::empty("test"),
        &crd_kinds(&[doc("crd.yaml", widget_crd())]),
    )
    .unwrap();
    fn entry(set: &SchemaSet) -> &KindSchema {
        set.kind_schema("example.com/v1", "Widget").unwrap()
    }
    assert!(entry(&set).converted.get().is_none());
    let before = rules(&set.check(&widget(json!({"size": 1, "sise": 2}))));
    let converted = entry(&set).converted.get().expect("kept").get().to_owned();
    let first = entry(&set).schema().expect("parses").clone();
    assert_eq!(serde_json::to_string(&first).unwrap(), converted);
    set.forget_validators_except(&BTreeSet::new());
    assert!(!entry(&set).is_compiled());
    assert_eq!(
        rules(&set.check(&widget(json!({"size": 1, "sise": 2})))),
        before
    );
    assert_eq!(entry(&set).schema(), Some(&first));
}

/// The pod spec of a workload kind is judged by PodSpec's own validator, compiled once for every
/// kind that holds it; findings name the paths in the document as before (the same fixture through
/// the `check` CLI gave byte-identical output before and after the split).
#[test]
fn a_pod_spec_is_judged_by_one_shared_validator_at_the_kinds_paths() {
    let set = set();
    let mut bad = deployment(json!({"replicas": "3"}));
    bad["spec"]["template"]["spec"] = json!({
        "containers": [{"image": 3, "imagePullPolicyy": "Always"}],
        "restartPolicy": ["Always"]
    });
    assert_eq!(
        rules(&set.check(&doc("d.yaml", bad))),
        vec![
            (
                "schema/type",
                "spec.replicas: expected integer, found string \"3\"".to_string()
            ),
            (
                "schema/type",
                "spec.template.spec.containers[0].image: expected string, found number 3"
                    .to_string()
            ),
            (
                "schema/unknown-field",
                "unknown field `imagePullPolicyy` in spec.template.spec.containers[0] (did you \
                 mean `imagePullPolicy`?)"
                    .to_string()
            ),
            (
                "schema/required",
                "spec.template.spec.containers[0]: missing required field `name`".to_string()
            ),
            (
                "schema/type",
                "spec.template.spec.restartPolicy: expected string, found array".to_string()
            ),
        ]
    );
    let cron_job = json!({
        "apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "j"},
        "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": {
            "containers": [{"name": "c", "image": "x"}], "nodeSelectr": {"a": "b"}
        }}}}}
    });
    assert_eq!(
        rules(&set.check(&doc("c.yaml", cron_job))),
        vec![(
            "schema/unknown-field",
            "unknown field `nodeSelectr` in spec.jobTemplate.spec.template.spec (did you mean \
             `nodeSelector`?)"
                .to_string()
        )]
    );
    let pod = |spec: Value| json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec});
    assert_eq!(
        rules(&set.check(&doc("p.yaml", pod(json!({"initContainers": []}))))),
        vec![(
            "schema/required",
            "spec: missing required field `containers`".to_string()
        )]
    );
    // The kind's schema still judges the spec's type; null is allowed, as it was.
    assert_eq!(
        rules(&set.check(&doc("p.yaml", pod(json!("nope"))))),
        vec![(
            "schema/type",
            "spec: expected object, found string \"nope\"".to_string()
        )]
    );
    assert!(set.check(&doc("p.yaml", pod(Value::Null))).is_empty());

    // One validator for the three kinds, and none of them holds PodSpec's fields.
    let pod_spec = &set.definitions["io.k8s.api.core.v1.PodSpec"];
    assert!(pod_spec.is_compiled());
    for (api_version, kind) in [
        ("apps/v1", "Deployment"),
        ("batch/v1", "CronJob"),
        ("v1", "Pod"),
    ] {
        let entry = set.kind_schema(api_version, kind).unwrap();
        assert!(entry.is_compiled());
        let text = entry.schema().unwrap().to_string();
        assert!(!text.contains("\"containers\""), "{kind}");
    }
    // A kind kept past the stream keeps the definitions it judges by; one kept only if the kinds
    // kept hold it.
    let mut set = set;
    let kept =
        |kind: &str, api_version: &str| BTreeSet::from([(api_version.to_owned(), kind.to_owned())]);
    set.forget_validators_except(&kept("ConfigMap", "v1"));
    assert!(!set.definitions["io.k8s.api.core.v1.PodSpec"].is_compiled());
    set.check(&doc("d.yaml", deployment(json!({}))));
    set.forget_validators_except(&kept("Deployment", "apps/v1"));
    assert!(set.definitions["io.k8s.api.core.v1.PodSpec"].is_compiled());
    // Once forgotten, it comes back for the next pod spec.
    set.forget_validators_except(&BTreeSet::new());
    assert!(!set.definitions["io.k8s.api.core.v1.PodSpec"].is_compiled());
    assert_eq!(
        set.check(&doc("p.yaml", pod(json!({"initContainers": []}))))
            .len(),
        1
    );
    assert!(set.definitions["io.k8s.api.core.v1.PodSpec"].is_compiled());
}

/// A finding of the shared PodSpec validator points at the line of the offending value (and the
/// key, for an unknown field) in the workload's own file.
#[test]
fn a_pod_spec_finding_is_located_in_the_workload_file() {
    let text = "apiVersion: apps/v1\n\
                kind: StatefulSet\n\
                metadata: {name: db}\n\
                spec:\n\
                \x20 serviceName: db\n\
                \x20 selector: {matchLabels: {app: db}}\n\
                \x20 template:\n\
                \x20   metadata: {labels: {app: db}}\n\
                \x20   spec:\n\
                \x20     containers:\n\
                \x20       - name: db\n\
                \x20         image: 5\n\
                \x20     hostNetwrok: true\n";
    let loaded = crate::load::load_file("db.yaml", text.as_bytes(), &Default::default());
    assert!(loaded.findings.is_empty(), "{:?}", loaded.findings);
    let findings = set().check(&loaded.documents[0]);
    let at = |f: &Finding| {
        let location = f.location.as_ref().unwrap();
        (
            f.field.clone().unwrap(),
            location.file.clone(),
            location.line,
        )
    };
    assert_eq!(
        findings.iter().map(at).collect::<Vec<_>>(),
        vec![
            (
                "/spec/template/spec/containers/0/image".to_string(),
                "db.yaml".to_string(),
                Some(12)
            ),
            (
                "/spec/template/spec/hostNetwrok".to_string(),
                "db.yaml".to_string(),
                Some(13)
            ),
        ],
        "{findings:?}"
    );
}

/// A repository CRD for a group and kind takes the catalog's place at every version: the
/// catalog's `PodMonitor` judges a document only while the repository defines no `PodMonitor` of
/// its group, and never one of a kind the repository's CRD does not name.
#[test]
fn a_repository_crd_of_a_kind_at_any_version_keeps_the_catalog_out() {
    let crd = |group: &str, kind: &str, version: &str| {
        doc(
            "crd.yaml",
            json!({
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition",
                "metadata": {"name": "x"},
                "spec": {
                    "group": group,
                    "names": {"kind": kind, "plural": "x"},
                    "scope": "Namespaced",
                    "versions": [{"name": version, "served": true, "storage": true,
                        "schema": {"openAPIV3Schema": {"type": "object"}}}]
                }
            }),
        )
    };
    let mut with_catalog = config(Some("1.32"));
    with_catalog.catalog = true;
    let set_of = |crds: &[Document]| {
        SchemaSet::build(&with_catalog, &MemTree::empty("test"), &crd_kinds(crds)).unwrap()
    };
    let from_catalog = |set: &SchemaSet| {
        set.catalog_schema("monitoring.coreos.com/v1", "PodMonitor")
            .unwrap()
            .is_some()
    };
    assert!(from_catalog(&set_of(&[])));
    assert!(from_catalog(&set_of(&[crd(
        "example.com",
        "PodMonitor",
        "v1"
    )])));
    assert!(from_catalog(&set_of(&[crd(
        "monitoring.coreos.com",
        "Probe",
        "v1"
    )])));
    assert!(!from_catalog(&set_of(&[crd(
        "monitoring.coreos.com",
        "PodMonitor",
        "v1alpha9"
    )])));
}
