//! Gatekeeper: ConstraintTemplates (`templates.gatekeeper.sh`) and their Constraints
//! (`constraints.gatekeeper.sh`), evaluated the way Gatekeeper's admission webhook does:
//! `input.review` is the admission request of the object, `input.parameters` the constraint's
//! parameters, `violation[{"msg": …}]` the verdict.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::eval::{self, EnginePool, Origin};
use super::source;
use crate::finding::{Finding, Rule, Severity};
use crate::load::{Document, LoadOptions, load_file};
use crate::tree::Tree;

struct Template {
    /// The constraint kind it defines (`spec.crd.spec.names.kind`).
    kind: String,
    package: String,
    file: String,
    pool: EnginePool,
    needs_inventory: bool,
}

struct Constraint {
    name: String,
    template: usize,
    file: String,
    matcher: Value,
    parameters: Value,
    severity: Severity,
}

#[derive(Default)]
pub struct Gatekeeper {
    templates: Vec<Template>,
    constraints: Vec<Constraint>,
    /// Templates that do not compile: the run cannot decide.
    pub(super) fatal: Vec<Finding>,
    /// Templates and constraints that cannot be honoured (CEL only, unsupported builtins or match
    /// fields): blocking findings, so nothing passes silently.
    pub(super) notes: Vec<Finding>,
}

impl Gatekeeper {
    pub(super) fn load(
        roots: &[String],
        tree: &dyn Tree,
        timeout_ms: u64,
        memory: u64,
    ) -> Gatekeeper {
        let mut gk = Gatekeeper::default();
        if roots.is_empty() {
            return gk;
        }
        let is_yaml = |p: &str| p.ends_with(".yaml") || p.ends_with(".yml") || p.ends_with(".json");
        let mut constraint_docs = Vec::new();
        for path in super::matching_files(tree, roots, is_yaml, &mut gk.fatal) {
            let bytes = match tree.read_checked(&path) {
                Ok(Some(bytes)) => bytes,
                Ok(None) => continue,
                Err(unreadable) => {
                    gk.fatal.push(super::unreadable_finding(&unreadable, tree));
                    continue;
                }
            };
            let loaded = load_file(&path, &bytes, &LoadOptions::default());
            // A template file that does not load would silently disable its constraints.
            gk.fatal.extend(
                loaded
                    .findings
                    .into_iter()
                    .filter(|f| f.severity == Severity::Error),
            );
            for doc in loaded.documents {
                let api = doc.api_version().unwrap_or_default();
                if api.starts_with("templates.gatekeeper.sh/")
                    && doc.kind() == Some("ConstraintTemplate")
                {
                    gk.add_template(&doc, timeout_ms, memory);
                } else if api.starts_with("constraints.gatekeeper.sh/") {
                    constraint_docs.push(doc);
                }
            }
        }
        for doc in constraint_docs {
            gk.add_constraint(&doc);
        }
        gk
    }

    pub(super) fn constraint_count(&self) -> usize {
        self.constraints.len()
    }

    fn add_template(&mut self, doc: &Document, timeout_ms: u64, memory: u64) {
        let kind = doc
            .value
            .pointer("/spec/crd/spec/names/kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let file = doc.path().to_string();
        let targets = doc.value.pointer("/spec/targets").and_then(Value::as_array);
        let mut sources = Vec::new();
        let mut has_cel = false;
        for (t, target) in targets.into_iter().flatten().enumerate() {
            if let Some(rego) = target.get("rego").and_then(Value::as_str) {
                sources.push((format!("/spec/targets/{t}/rego"), rego, target.get("libs")));
            }
            for (c, code) in target
                .get("code")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                match code.get("engine").and_then(Value::as_str) {
                    Some("Rego") => {
                        if let Some(rego) = code.pointer("/source/rego").and_then(Value::as_str) {
                            let pointer = format!("/spec/targets/{t}/code/{c}/source/rego");
                            sources.push((pointer, rego, code.pointer("/source/libs")));
                        }
                    }
                    Some(_) => has_cel = true,
                    None => {}
                }
            }
        }
        let Some((pointer, rego, libs)) = sources.into_iter().next() else {
            let why = if has_cel {
                "only carries CEL (K8sNativeValidation) code, which stategate does not evaluate"
            } else {
                "carries no Rego"
            };
            self.notes.push(self.unsupported(doc, &kind, why));
            return;
        };
        let mut engine = regorus::Engine::new();
        engine.set_execution_timer_config(eval::timer(timeout_ms));
        engine.set_strict_builtin_errors(false);
        if let Err(e) = super::budget::guard(&mut engine, memory) {
            self.fatal
                .push(super::source::compile_finding(&file, None, &e.to_string()));
        }
        let mut texts = vec![(
            format!("{file}#{pointer}"),
            rego.to_string(),
            pointer.clone(),
        )];
        for (i, lib) in libs
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            if let Some(text) = lib.as_str() {
                let lib_pointer = format!("{}/{i}", pointer.replace("/rego", "/libs"));
                texts.push((
                    format!("{file}#{lib_pointer}"),
                    text.to_string(),
                    lib_pointer,
                ));
            }
        }
        for (name, text, pointer) in &texts {
            if let Some(missing) = source::check_builtins(name, text).into_iter().next() {
                let builtin = missing.metadata.get("builtin").cloned().unwrap_or_default();
                let why = format!("calls the builtin {builtin}, which regorus does not implement");
                self.notes.push(self.unsupported(doc, &kind, &why));
                return;
            }
            if let Err(finding) = source::add_policy(&mut engine, name, text) {
                self.fatal.push(
                    finding
                        .at(doc.locate(pointer))
                        .with_meta("template", kind.as_str()),
                );
                return;
            }
        }
        let package = source::rule_decls(&mut engine)
            .into_iter()
            .find(|d| d.name == "violation")
            .map(|d| d.package)
            .unwrap_or_default();
        self.templates.push(Template {
            needs_inventory: texts.iter().any(|(_, t, _)| t.contains("data.inventory")),
            kind,
            package,
            file,
            pool: EnginePool::new(engine),
        });
    }

    fn unsupported(&self, doc: &Document, kind: &str, why: &str) -> Finding {
        Finding::error(
            Rule::PolicyUnsupported,
            format!("Gatekeeper ConstraintTemplate {kind} {why}; its constraints are not enforced"),
        )
        .at(doc.locate("/spec/targets"))
        .object(doc.id())
        .with_meta("template", kind)
    }

    fn add_constraint(&mut self, doc: &Document) {
        let kind = doc.kind().unwrap_or_default();
        let name = doc
            .value
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let Some(template) = self.templates.iter().position(|t| t.kind == kind) else {
            // A constraint of an unsupported template was already reported with its template.
            if !self
                .notes
                .iter()
                .any(|n| n.metadata.get("template") == Some(&json!(kind)))
            {
                self.notes.push(
                    Finding::error(
                        Rule::PolicyUnsupported,
                        format!("Gatekeeper constraint {name} has kind {kind}, but no ConstraintTemplate defines it"),
                    )
                    .at(doc.locate("/kind"))
                    .object(doc.id()),
                );
            }
            return;
        };
        let matcher = doc
            .value
            .pointer("/spec/match")
            .cloned()
            .unwrap_or(Value::Null);
        if matcher.get("namespaceSelector").is_some() {
            self.notes.push(
                Finding::error(
                    Rule::PolicyUnsupported,
                    format!("Gatekeeper constraint {name} uses match.namespaceSelector, which needs cluster state; it is not enforced"),
                )
                .at(doc.locate("/spec/match/namespaceSelector"))
                .object(doc.id()),
            );
            return;
        }
        let severity = match doc
            .value
            .pointer("/spec/enforcementAction")
            .and_then(Value::as_str)
        {
            Some("warn") => Severity::Warning,
            Some("dryrun") => Severity::Note,
            _ => Severity::Error,
        };
        self.constraints.push(Constraint {
            name,
            template,
            file: doc.path().to_string(),
            matcher,
            parameters: doc
                .value
                .pointer("/spec/parameters")
                .cloned()
                .unwrap_or(json!({})),
            severity,
        });
    }

    /// Objects of the checked tree as Gatekeeper's synced `data.inventory`.
    pub(super) fn needs_inventory(&self) -> bool {
        self.templates.iter().any(|t| t.needs_inventory)
    }

    pub(super) fn set_inventory(&mut self, documents: &[Document]) {
        let inventory = to_inventory(documents);
        let data = eval::to_rego(&json!({ "inventory": inventory }));
        for template in self.templates.iter_mut().filter(|t| t.needs_inventory) {
            let engine = template.pool.prototype_mut();
            engine.clear_data();
            // The data is a fresh object, so merging cannot conflict.
            let _ = engine.add_data(data.clone());
        }
    }

    pub(super) fn check_document(&self, doc: &Document) -> Vec<Finding> {
        let mut findings = Vec::new();
        if self.constraints.is_empty() {
            return findings;
        }
        let review = review_of(&doc.value);
        let object = review.get("object").cloned().unwrap_or(Value::Null);
        let location = doc.locate("");
        for constraint in &self.constraints {
            if !matches(&constraint.matcher, &object) {
                continue;
            }
            let template = &self.templates[constraint.template];
            let input = json!({"review": review, "parameters": constraint.parameters});
            let rule = format!("data.{}.violation", template.package);
            let outcome = template.pool.with(|engine| {
                engine.set_input(eval::to_rego(&input));
                engine.eval_rule(rule).map_err(|e| e.to_string())
            });
            let origin = Origin {
                package: &template.package,
                rule: "violation",
                policy: &template.file,
            };
            match outcome {
                Ok(value) => {
                    for result in eval::results(&value) {
                        findings.push(
                            eval::result_finding(result, constraint.severity, &origin)
                                .at(location.clone())
                                .object(doc.id())
                                .with_meta("constraint", constraint.name.as_str())
                                .with_meta("constraint_file", constraint.file.as_str())
                                .with_meta("template", template.kind.as_str()),
                        );
                    }
                }
                Err(err) => findings.push(
                    eval::error_finding(&err, &origin, doc.path())
                        .at(location.clone())
                        .object(doc.id())
                        .with_meta("constraint", constraint.name.as_str()),
                ),
            }
        }
        findings
    }
}

/// Group and version of an `apiVersion`: `apps/v1` → (`apps`, `v1`), `v1` → (``, `v1`).
fn group_version(api_version: &str) -> (&str, &str) {
    api_version.split_once('/').unwrap_or(("", api_version))
}

/// The admission request Gatekeeper would build for an object. An `AdmissionReview` document
/// (as in Gatekeeper's own test suites) is taken as the request itself.
fn review_of(value: &Value) -> Value {
    if value.get("kind").and_then(Value::as_str) == Some("AdmissionReview")
        && let Some(request) = value.get("request")
    {
        let mut request = request.clone();
        if request.get("kind").is_none()
            && let Some(object) = request.get("object")
        {
            request["kind"] = gvk(object);
        }
        return request;
    }
    let meta = |key: &str| {
        value
            .pointer(&format!("/metadata/{key}"))
            .cloned()
            .unwrap_or(json!(""))
    };
    json!({
        "kind": gvk(value),
        "name": meta("name"),
        "namespace": meta("namespace"),
        "operation": "CREATE",
        "object": value,
        "userInfo": {"username": "stategate", "groups": []},
    })
}

fn gvk(object: &Value) -> Value {
    let api = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let (group, version) = group_version(api);
    json!({
        "group": group,
        "version": version,
        "kind": object.get("kind").and_then(Value::as_str).unwrap_or_default(),
    })
}

fn str_list(value: Option<&Value>) -> Option<Vec<&str>> {
    value
        .and_then(Value::as_array)
        .map(|items| items.iter().filter_map(Value::as_str).collect())
}

/// Gatekeeper's name matching: exact, or a `prefix*` / `*suffix` glob.
fn name_matches(pattern: &str, name: &str) -> bool {
    if let Some(prefix) = pattern.strip_suffix('*') {
        name.starts_with(prefix)
    } else if let Some(suffix) = pattern.strip_prefix('*') {
        name.ends_with(suffix)
    } else {
        pattern == name
    }
}

/// Does a constraint's `spec.match` select this object?
fn matches(matcher: &Value, object: &Value) -> bool {
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let api = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let (group, _) = group_version(api);
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    // A Namespace is matched by its own name; cluster-scoped objects have no namespace.
    let namespace = if kind == "Namespace" {
        Some(name)
    } else {
        object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
    };
    if let Some(kinds) = matcher.get("kinds").and_then(Value::as_array)
        && !kinds.is_empty()
        && !kinds.iter().any(|k| {
            let groups = str_list(k.get("apiGroups")).unwrap_or_default();
            let names = str_list(k.get("kinds")).unwrap_or_default();
            (groups.contains(&"*") || groups.contains(&group))
                && (names.contains(&"*") || names.contains(&kind))
        })
    {
        return false;
    }
    if let Some(scope) = matcher.get("scope").and_then(Value::as_str) {
        let namespaced = object.pointer("/metadata/namespace").is_some();
        if (scope == "Cluster" && namespaced) || (scope == "Namespaced" && !namespaced) {
            return false;
        }
    }
    if let (Some(list), Some(ns)) = (str_list(matcher.get("namespaces")), namespace)
        && !list.iter().any(|p| name_matches(p, ns))
    {
        return false;
    }
    if let (Some(list), Some(ns)) = (str_list(matcher.get("excludedNamespaces")), namespace)
        && list.iter().any(|p| name_matches(p, ns))
    {
        return false;
    }
    if let Some(pattern) = matcher.get("name").and_then(Value::as_str)
        && !name_matches(pattern, name)
    {
        return false;
    }
    match matcher.get("labelSelector") {
        Some(selector) => selector_matches(selector, object.pointer("/metadata/labels")),
        None => true,
    }
}

/// A Kubernetes label selector: `matchLabels` and `matchExpressions` (In, NotIn, Exists,
/// DoesNotExist), all of which must hold.
fn selector_matches(selector: &Value, labels: Option<&Value>) -> bool {
    let empty = Map::new();
    let labels = labels.and_then(Value::as_object).unwrap_or(&empty);
    let label = |key: &str| labels.get(key).and_then(Value::as_str);
    let match_labels = selector.get("matchLabels").and_then(Value::as_object);
    if match_labels
        .into_iter()
        .flatten()
        .any(|(k, v)| label(k) != v.as_str())
    {
        return false;
    }
    let expressions = selector.get("matchExpressions").and_then(Value::as_array);
    expressions.into_iter().flatten().all(|expr| {
        let key = expr.get("key").and_then(Value::as_str).unwrap_or_default();
        let values = str_list(expr.get("values")).unwrap_or_default();
        match expr.get("operator").and_then(Value::as_str) {
            Some("In") => label(key).is_some_and(|v| values.contains(&v)),
            Some("NotIn") => label(key).is_none_or(|v| !values.contains(&v)),
            Some("Exists") => label(key).is_some(),
            Some("DoesNotExist") => label(key).is_none(),
            _ => false,
        }
    })
}

/// `{namespace: {ns: {gv: {kind: {name: obj}}}}, cluster: {gv: {kind: {name: obj}}}}`.
fn to_inventory(documents: &[Document]) -> Value {
    let mut namespaced: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    let mut cluster = Map::new();
    for doc in documents {
        let value = &doc.value;
        let (Some(api), Some(kind), Some(name)) = (
            doc.api_version(),
            doc.kind(),
            value.pointer("/metadata/name").and_then(Value::as_str),
        ) else {
            continue;
        };
        let slot = match value.pointer("/metadata/namespace").and_then(Value::as_str) {
            Some(ns) => namespaced.entry(ns.to_string()).or_default(),
            None => &mut cluster,
        };
        let by_gv = slot.entry(api.to_string()).or_insert_with(|| json!({}));
        let by_kind = by_gv
            .as_object_mut()
            .map(|m| m.entry(kind.to_string()).or_insert_with(|| json!({})));
        if let Some(Value::Object(by_name)) = by_kind {
            by_name.insert(name.to_string(), value.clone());
        }
    }
    let namespace: Map<String, Value> = namespaced
        .into_iter()
        .map(|(ns, m)| (ns, Value::Object(m)))
        .collect();
    json!({"namespace": namespace, "cluster": cluster})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_selector_expressions() {
        let labels = json!({"app": "web", "tier": "front"});
        let sel = json!({"matchLabels": {"app": "web"}, "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["front", "back"]},
            {"key": "debug", "operator": "DoesNotExist"}]});
        assert!(selector_matches(&sel, Some(&labels)));
        let sel = json!({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["front"]}]});
        assert!(!selector_matches(&sel, Some(&labels)));
    }

    #[test]
    fn match_by_kind_and_namespace() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "kube-system"}});
        let m = json!({"kinds": [{"apiGroups": [""], "kinds": ["Pod"]}]});
        assert!(matches(&m, &pod));
        let m = json!({"kinds": [{"apiGroups": ["apps"], "kinds": ["Pod"]}]});
        assert!(!matches(&m, &pod));
        let m = json!({"excludedNamespaces": ["kube-*"]});
        assert!(!matches(&m, &pod));
        let m = json!({"scope": "Cluster"});
        assert!(!matches(&m, &pod));
    }
}
