//! Two phases: parse the YAML with positions, then deserialize each top-level key on its own so that
//! every mistake in the file is reported at once, each at its own line.

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::Config;
use crate::finding::{Finding, Rule};
use crate::load::{Document, LoadOptions, load_file};

/// Every problem found in a config file; the gate cannot decide without a valid config (exit 2).
#[derive(Debug)]
pub struct ConfigError {
    pub findings: Vec<Finding>,
}

/// Parse and validate `.stategate.yaml` text; every problem becomes a located finding.
pub fn parse_config(path: &str, text: &str) -> Result<Config, ConfigError> {
    let loaded = load_file(path, text.as_bytes(), &LoadOptions::default());
    let off_lines = unquoted_off_lines(&loaded.documents);
    let mut findings: Vec<Finding> = loaded
        .findings
        .into_iter()
        .filter(|f| {
            !(f.rule == Rule::LoadAmbiguousScalar
                && off_lines.contains(&f.location.as_ref().and_then(|l| l.line)))
        })
        .map(|f| match f.rule {
            // An ambiguous scalar in the config is still a mistake worth stopping for.
            Rule::LoadAmbiguousScalar | Rule::LoadDuplicateKey => Finding {
                rule: Rule::ConfigInvalid,
                severity: crate::finding::Severity::Error,
                ..f
            },
            _ => f,
        })
        .collect();
    let Some(doc) = loaded.documents.first() else {
        if findings.is_empty() {
            return Ok(Config::default());
        }
        return Err(ConfigError { findings });
    };
    if loaded.documents.len() > 1 {
        findings.push(
            invalid(doc, "", "the config must be a single YAML document")
                .help("remove the extra `---` documents"),
        );
    }
    let Some(top) = doc.value.as_object() else {
        findings.push(invalid(
            doc,
            "",
            "the config must be a mapping of keys such as `include`, `schemas`, `policies`",
        ));
        return Err(ConfigError { findings });
    };
    for (key, value) in top {
        if let Err(finding) = check_key(doc, key, value) {
            findings.push(*finding);
        }
    }
    if !findings.is_empty() {
        return Err(ConfigError { findings });
    }
    let config: Config =
        deserialize(doc, "", doc.value.clone()).map_err(|f| ConfigError { findings: vec![*f] })?;
    let semantic = semantic_checks(doc, &config);
    if semantic.is_empty() {
        Ok(config)
    } else {
        Err(ConfigError { findings: semantic })
    }
}

/// `rules:` keys that look like rule codes must be rule codes, and the rules that mean "the gate
/// could not read the input" cannot be turned down: that would make the gate pass what it never
/// saw.
fn rules_checks(doc: &Document, config: &Config) -> Vec<Finding> {
    use super::{Level, RuleSetting};
    let mut findings = Vec::new();
    for (key, setting) in &config.rules {
        let pointer = format!("/rules/{}", escape(key));
        let levels: Vec<(String, Level, &[String])> = match setting {
            RuleSetting::Level(level) => vec![(pointer.clone(), *level, &[][..])],
            RuleSetting::Scoped(items) => items
                .iter()
                .enumerate()
                .map(|(i, s)| (format!("{pointer}/{i}"), s.level, &s.paths[..]))
                .collect(),
        };
        let rule = Rule::ALL.iter().find(|r| r.code() == key);
        if key.contains('/') && rule.is_none() {
            findings.push(
                invalid(doc, &pointer, &format!("unknown rule code `{key}`"))
                    .help("the README lists the codes; policy rules are written package.rule"),
            );
        }
        for (at, level, paths) in levels {
            if rule.is_some_and(|r| r.is_undecidable()) && level != Level::Error {
                findings.push(invalid(
                    doc,
                    &at,
                    &format!(
                        "`{key}` means the gate could not read the input; it always blocks and cannot be turned down"
                    ),
                ));
            }
            for (i, glob) in paths.iter().enumerate() {
                if let Err(e) = globset::Glob::new(glob) {
                    findings.push(invalid(
                        doc,
                        &format!("{at}/paths/{i}"),
                        &format!("invalid glob: {e}"),
                    ));
                }
            }
        }
    }
    findings
}

/// Lines of `rules:` levels written `off` unquoted: YAML 1.1 reads a boolean, and that is the
/// one place the config means it as a word.
fn unquoted_off_lines(documents: &[Document]) -> Vec<Option<u32>> {
    let Some(doc) = documents.first() else {
        return Vec::new();
    };
    let Some(rules) = doc.value.get("rules").and_then(Value::as_object) else {
        return Vec::new();
    };
    let mut pointers = Vec::new();
    for (key, setting) in rules {
        let at = format!("/rules/{}", escape(key));
        match setting {
            Value::Bool(false) => pointers.push(at),
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    if item.get("level") == Some(&Value::Bool(false)) {
                        pointers.push(format!("{at}/{i}/level"));
                    }
                }
            }
            _ => {}
        }
    }
    pointers.iter().map(|p| doc.locate(p).line).collect()
}

fn check_key(doc: &Document, key: &str, value: &Value) -> Result<(), Box<Finding>> {
    let pointer = format!("/{}", escape(key));
    let value = value.clone();
    match key {
        "version" => deserialize::<u32>(doc, &pointer, value).map(drop),
        "include" | "exclude" => deserialize::<Vec<String>>(doc, &pointer, value).map(drop),
        "environments" => {
            deserialize::<std::collections::BTreeMap<String, Vec<String>>>(doc, &pointer, value)
                .map(drop)
        }
        "schemas" => deserialize::<super::SchemasConfig>(doc, &pointer, value).map(drop),
        "policies" => deserialize::<super::PoliciesConfig>(doc, &pointer, value).map(drop),
        "protect" => deserialize::<super::ProtectConfig>(doc, &pointer, value).map(drop),
        "approvals" => deserialize::<Vec<super::ApprovalRule>>(doc, &pointer, value).map(drop),
        "drift" => deserialize::<super::DriftConfig>(doc, &pointer, value).map(drop),
        "render" => deserialize::<super::RenderConfig>(doc, &pointer, value).map(drop),
        "diff" => deserialize::<super::DiffConfig>(doc, &pointer, value).map(drop),
        "hook" => deserialize::<super::HookConfig>(doc, &pointer, value).map(drop),
        "limits" => deserialize::<super::LimitsConfig>(doc, &pointer, value).map(drop),
        "report" => deserialize::<super::ReportConfig>(doc, &pointer, value).map(drop),
        "rules" => deserialize::<std::collections::BTreeMap<String, super::RuleSetting>>(
            doc, &pointer, value,
        )
        .map(drop),
        other => Err(Box::new(
            Finding::error(Rule::ConfigInvalid, format!("unknown key `{other}`"))
                .at(doc.locate_key(&pointer))
                .help(format!("known keys: {}", TOP_LEVEL_KEYS.join(", "))),
        )),
    }
}

const TOP_LEVEL_KEYS: &[&str] = &[
    "version",
    "include",
    "exclude",
    "environments",
    "schemas",
    "policies",
    "protect",
    "approvals",
    "drift",
    "render",
    "diff",
    "hook",
    "limits",
    "report",
    "rules",
];

fn deserialize<T: DeserializeOwned>(
    doc: &Document,
    pointer: &str,
    value: Value,
) -> Result<T, Box<Finding>> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let mut at = pointer.to_owned();
        for segment in e.path().iter() {
            match segment {
                serde_path_to_error::Segment::Seq { index } => at.push_str(&format!("/{index}")),
                serde_path_to_error::Segment::Map { key } => {
                    at.push_str(&format!("/{}", escape(key)))
                }
                serde_path_to_error::Segment::Enum { variant } => {
                    at.push_str(&format!("/{}", escape(variant)))
                }
                serde_path_to_error::Segment::Unknown => {}
            }
        }
        let message = e.inner().to_string();
        // serde names the unknown key only in its message; point at that key, not its parent.
        if let Some(unknown) = unknown_field(&message) {
            let segment = format!("/{}", escape(unknown));
            if !at.ends_with(&segment) {
                at.push_str(&segment);
            }
        }
        let dotted = at.trim_start_matches('/').replace('/', ".");
        let shown = if dotted.is_empty() {
            "config".to_owned()
        } else {
            dotted
        };
        Box::new(
            Finding::error(Rule::ConfigInvalid, format!("{shown}: {message}"))
                .at(doc.locate_key(&at))
                .help("see the config reference in README.md (section \"Configuration\")"),
        )
    })
}

fn unknown_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split('`').next()
}

fn semantic_checks(doc: &Document, config: &Config) -> Vec<Finding> {
    let mut findings = Vec::new();
    if config.version != 1 {
        findings.push(invalid(
            doc,
            "/version",
            &format!(
                "unsupported config version {}; this stategate reads version 1",
                config.version
            ),
        ));
    }
    findings.extend(rules_checks(doc, config));
    let mut globs: Vec<(String, &String)> = Vec::new();
    globs.extend(
        config
            .include
            .iter()
            .enumerate()
            .map(|(i, g)| (format!("/include/{i}"), g)),
    );
    globs.extend(
        config
            .exclude
            .iter()
            .enumerate()
            .map(|(i, g)| (format!("/exclude/{i}"), g)),
    );
    for (env, patterns) in &config.environments {
        globs.extend(
            patterns
                .iter()
                .enumerate()
                .map(|(i, g)| (format!("/environments/{}/{i}", escape(env)), g)),
        );
    }
    globs.extend(
        config
            .schemas
            .crds
            .iter()
            .enumerate()
            .map(|(i, g)| (format!("/schemas/crds/{i}"), g)),
    );
    for (m, mapping) in config.schemas.map.iter().enumerate() {
        globs.extend(
            mapping
                .files
                .iter()
                .enumerate()
                .map(|(i, g)| (format!("/schemas/map/{m}/files/{i}"), g)),
        );
    }
    globs.extend(
        config
            .protect
            .refs
            .iter()
            .enumerate()
            .map(|(i, g)| (format!("/protect/refs/{i}"), g)),
    );
    for (a, rule) in config.approvals.iter().enumerate() {
        globs.extend(
            rule.paths
                .iter()
                .enumerate()
                .map(|(i, g)| (format!("/approvals/{a}/paths/{i}"), g)),
        );
        if rule.required == 0 {
            findings.push(invalid(
                doc,
                &format!("/approvals/{a}/required"),
                "`required` must be at least 1",
            ));
        }
    }
    if let Some(admins) = &config.protect.admins {
        if admins.required == 0 {
            findings.push(invalid(
                doc,
                "/protect/admins/required",
                "`required` must be at least 1",
            ));
        }
        if admins.from.is_empty() {
            findings.push(invalid(
                doc,
                "/protect/admins/from",
                "`from` must name at least one admin",
            ));
        }
    }
    if let Some(version) = &config.schemas.kubernetes {
        let available = crate::schema::available_versions();
        let wanted = version.trim().trim_start_matches('v');
        let minor: String = wanted.split('.').take(2).collect::<Vec<_>>().join(".");
        if !wanted.eq_ignore_ascii_case("none") && !available.contains(&minor.as_str()) {
            findings.push(
                invalid(
                    doc,
                    "/schemas/kubernetes",
                    &format!(
                        "no embedded schemas for Kubernetes \"{version}\"; available: {}",
                        available.join(", ")
                    ),
                )
                .help("pick one of the available versions, or \"none\" to turn them off"),
            );
        }
    }
    findings.extend(drift_checks(doc, config));
    for (i, name) in config.policies.builtin.iter().enumerate() {
        if name != "all" && crate::policy::builtin::find(name).is_none() {
            let known: Vec<&str> = crate::policy::builtin::BUILTINS
                .iter()
                .map(|b| b.name)
                .collect();
            findings.push(
                invalid(
                    doc,
                    &format!("/policies/builtin/{i}"),
                    &format!("no built-in policy `{name}`"),
                )
                .help(format!("built-in policies: {}, or all", known.join(", "))),
            );
        }
    }
    for (pointer, glob) in globs {
        if let Err(e) = globset::Glob::new(glob) {
            findings.push(invalid(
                doc,
                &pointer,
                &format!("invalid glob `{glob}`: {}", e.kind()),
            ));
        }
    }
    findings
}

/// `drift`: each live source has what its kind needs, durations parse, environments exist.
fn drift_checks(doc: &Document, config: &Config) -> Vec<Finding> {
    let drift = &config.drift;
    let mut findings = Vec::new();
    let known = |env: &str| config.environments.is_empty() || config.environments.contains_key(env);
    let mut sources: Vec<(String, &super::LiveDrift)> = Vec::new();
    sources.extend(drift.live.as_ref().map(|l| ("/drift/live".to_owned(), l)));
    for (env, live) in &drift.environments {
        let pointer = format!("/drift/environments/{}", escape(env));
        if !known(env) {
            findings.push(invalid(
                doc,
                &pointer,
                &format!("`{env}` is not one of the `environments`"),
            ));
        }
        sources.push((pointer, live));
    }
    for (pointer, live) in sources {
        let missing = match live.source {
            super::LiveSource::Snapshot if live.path.is_none() => Some("path"),
            super::LiveSource::Command if live.command.as_ref().is_none_or(Vec::is_empty) => {
                Some("command")
            }
            super::LiveSource::Argocd if live.server.is_none() => Some("server"),
            super::LiveSource::Argocd if live.token_env.is_none() => Some("token_env"),
            _ => None,
        };
        if let Some(key) = missing {
            findings.push(
                invalid(
                    doc,
                    &format!("{pointer}/source"),
                    &format!("a `{:?}` live source needs `{key}`", live.source).to_lowercase(),
                )
                .help("see \"Live drift\" in README.md for what each source needs"),
            );
        }
        if let Some(age) = &live.max_age
            && super::parse_duration(age).is_none()
        {
            findings.push(invalid(
                doc,
                &format!("{pointer}/max_age"),
                &format!("`{age}` is not a duration such as `30m`, `24h` or `7d`"),
            ));
        }
        if live.timeout_ms == 0 {
            findings.push(invalid(
                doc,
                &format!("{pointer}/timeout_ms"),
                "`timeout_ms` must be at least 1",
            ));
        }
    }
    if drift.hook && drift.live.is_none() && drift.environments.is_empty() {
        findings.push(invalid(
            doc,
            "/drift/hook",
            "`drift.hook: true` needs a live source (`drift.live` or `drift.environments`)",
        ));
    }
    for (r, rule) in drift.promote.iter().enumerate() {
        let at = format!("/drift/promote/{r}");
        if rule.order.len() < 2 {
            findings.push(invalid(
                doc,
                &format!("{at}/order"),
                "`order` needs at least two environments",
            ));
        }
        for (i, env) in rule.order.iter().enumerate() {
            if !known(env) {
                findings.push(invalid(
                    doc,
                    &format!("{at}/order/{i}"),
                    &format!("`{env}` is not one of the `environments`"),
                ));
            }
        }
        if rule.fields.is_empty() {
            findings.push(invalid(doc, &format!("{at}/fields"), "`fields` is empty"));
        }
        for (i, field) in rule.fields.iter().enumerate() {
            if field.is_empty() || field.split('.').any(str::is_empty) {
                findings.push(invalid(
                    doc,
                    &format!("{at}/fields/{i}"),
                    &format!("`{field}` is not a dotted field path"),
                ));
            }
        }
        let templates = [
            ("namespace", &rule.match_.namespace),
            ("name", &rule.match_.name),
        ];
        for (key, template) in templates {
            if let Some(t) = template
                && t.matches("{env}").count() != 1
            {
                findings.push(invalid(
                    doc,
                    &format!("{at}/match/{key}"),
                    &format!("`{t}` must contain `{{env}}` exactly once"),
                ));
            }
        }
    }
    findings
}

fn invalid(doc: &Document, pointer: &str, message: &str) -> Finding {
    Finding::error(Rule::ConfigInvalid, message).at(doc.locate(pointer))
}

fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> Vec<(u32, String)> {
        parse_config(".stategate.yaml", text)
            .expect_err("config should be invalid")
            .findings
            .into_iter()
            .map(|f| (f.location.and_then(|l| l.line).unwrap_or(0), f.message))
            .collect()
    }

    #[test]
    fn a_missing_or_empty_config_means_defaults() {
        assert_eq!(parse_config("c", "").unwrap(), Config::default());
        assert_eq!(parse_config("c", "# nothing\n").unwrap(), Config::default());
    }

    #[test]
    fn the_design_example_parses() {
        let text = "version: 1\ninclude: [\"**/*.yaml\"]\nenvironments:\n  prod: [\"clusters/prod/**\"]\nschemas:\n  kubernetes: \"1.31\"\n  unknown: error\npolicies:\n  namespaces: [\"main\"]\nprotect:\n  refs: [\"refs/heads/main\"]\n  force_push: deny\napprovals:\n  - name: prod\n    paths: [\"clusters/prod/**\"]\n    required: 2\n    from: [\"alice\"]\n";
        let config = parse_config("c", text).unwrap();
        assert_eq!(config.schemas.kubernetes.as_deref(), Some("1.31"));
        assert_eq!(config.schemas.unknown, super::super::UnknownPolicy::Error);
        assert_eq!(config.approvals[0].required, 2);
        assert_eq!(
            config.environments["prod"],
            vec!["clusters/prod/**".to_string()]
        );
    }

    #[test]
    fn every_mistake_is_reported_at_its_own_line() {
        let found = errors(
            "version: 1\nincludes: [\"*.yaml\"]\nschemas:\n  kubernetes: \"1.31\"\n  unkown: warn\npolicies:\n  paths: policies/\n",
        );
        assert_eq!(found.len(), 3, "{found:?}");
        assert_eq!(found[0].0, 2);
        assert!(found[0].1.contains("unknown key `includes`"));
        assert_eq!(found[1].0, 5);
        assert!(
            found[1].1.contains("unknown field `unkown`"),
            "{}",
            found[1].1
        );
        assert_eq!(found[2].0, 7);
        assert!(found[2].1.contains("policies.paths"), "{}", found[2].1);
    }

    #[test]
    fn an_unknown_kubernetes_version_is_located_and_lists_the_available_ones() {
        let found = errors("version: 1\nschemas:\n  kubernetes: \"1.19\"\n");
        assert_eq!(found[0].0, 3);
        assert!(found[0].1.contains("1.25"), "{}", found[0].1);
        assert!(parse_config("c", "schemas:\n  kubernetes: \"v1.31.2\"\n").is_ok());
        assert!(parse_config("c", "schemas:\n  kubernetes: none\n").is_ok());
    }

    #[test]
    fn wrong_enum_values_and_bad_globs_are_located() {
        let found = errors("schemas:\n  unknown: maybe\n");
        assert_eq!(found[0].0, 2);
        let found = errors("include:\n  - \"a/[b\"\n");
        assert_eq!(found[0].0, 2);
        assert!(found[0].1.contains("invalid glob"));
    }
}
