//! Policy sources: parsing `.rego` text into a regorus engine (Rego v1 first, then v0), and the
//! static checks regorus does not do itself (function recursion, builtins it lacks).

use std::collections::{BTreeMap, BTreeSet};

use regorus::Engine;
use regorus::unstable::{Rule, RuleHead};

use crate::finding::{Finding, Location, Rule as Code};

/// OPA builtins that regorus 0.14 does not implement. A policy that calls one is refused at load
/// time (OPA would also refuse it at compile time if the builtin were missing from its capabilities),
/// rather than failing on the first document that reaches the call.
pub const MISSING_BUILTINS: &[&str] = &[
    "crypto.hmac.equal",
    "crypto.hmac.md5",
    "crypto.hmac.sha1",
    "crypto.hmac.sha256",
    "crypto.hmac.sha512",
    "crypto.md5",
    "crypto.parse_private_keys",
    "crypto.sha1",
    "crypto.sha256",
    "crypto.x509.parse_and_verify_certificates",
    "crypto.x509.parse_and_verify_certificates_with_options",
    "crypto.x509.parse_certificate_request",
    "crypto.x509.parse_certificates",
    "crypto.x509.parse_keypair",
    "crypto.x509.parse_rsa_private_key",
    "graphql.is_valid",
    "graphql.parse",
    "graphql.parse_and_verify",
    "graphql.parse_query",
    "graphql.parse_schema",
    "graphql.schema_is_valid",
    "io.jwt.decode",
    "io.jwt.decode_verify",
    "io.jwt.encode_sign",
    "io.jwt.encode_sign_raw",
    "io.jwt.verify_es256",
    "io.jwt.verify_es384",
    "io.jwt.verify_es512",
    "io.jwt.verify_hs256",
    "io.jwt.verify_hs384",
    "io.jwt.verify_hs512",
    "io.jwt.verify_ps256",
    "io.jwt.verify_ps384",
    "io.jwt.verify_ps512",
    "io.jwt.verify_rs256",
    "io.jwt.verify_rs384",
    "io.jwt.verify_rs512",
    "net.cidr_contains_matches",
    "net.cidr_intersects",
    "net.cidr_merge",
    "net.cidr_overlap",
    "net.lookup_ip_addr",
    "providers.aws.sign_req",
    "rego.metadata.chain",
    "rego.metadata.rule",
    "rego.parse_module",
    "strings.render_template",
    "uri.parse",
];

/// One rule head found in a parsed module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleDecl {
    /// Package path without the `data.` prefix, e.g. `main` or `main.gke`.
    pub package: String,
    /// The first segment of the head, e.g. `deny_foo`.
    pub name: String,
    pub file: String,
    pub line: u32,
    pub is_function: bool,
}

/// Add one policy file to `engine`, trying Rego v1 (OPA 1.x's default) and then v0 (conftest and
/// Gatekeeper policies written before OPA 1.0). On failure the finding carries regorus' own
/// `--> file:line:col` diagnostic of whichever attempt got further into the file.
pub fn add_policy(engine: &mut Engine, path: &str, text: &str) -> Result<(), Box<Finding>> {
    engine.set_rego_v0(false);
    let v1_error = match engine.add_policy(path.to_string(), text.to_string()) {
        Ok(_) => return Ok(()),
        Err(err) => err.to_string(),
    };
    engine.set_rego_v0(true);
    let result = engine.add_policy(path.to_string(), text.to_string());
    engine.set_rego_v0(false);
    let v0_error = match result {
        Ok(_) => return Ok(()),
        Err(err) => err.to_string(),
    };
    let (v1_line, v0_line) = (error_line(&v1_error), error_line(&v0_error));
    let message = if v0_line > v1_line {
        v0_error
    } else {
        v1_error
    };
    Err(Box::new(compile_finding(
        path,
        error_line(&message),
        message.trim(),
    )))
}

pub fn compile_finding(path: &str, line: Option<u32>, message: &str) -> Finding {
    let mut location = Location::file(path);
    location.line = line;
    Finding::error(
        Code::PolicyCompile,
        format!("policy {path} does not compile: {message}"),
    )
    .at(location)
    .with_meta("policy", path)
}

/// The line of a regorus diagnostic (`--> file:line:col`).
pub fn error_line(message: &str) -> Option<u32> {
    let arrow = message.find("--> ")?;
    let rest = message[arrow + 4..].lines().next()?;
    let mut parts = rest.rsplitn(3, ':');
    let _col = parts.next()?;
    parts.next()?.trim().parse().ok()
}

/// Every rule head of every module in the engine.
pub fn rule_decls(engine: &mut Engine) -> Vec<RuleDecl> {
    let mut out = Vec::new();
    for module in engine.get_modules().iter() {
        let package = package_name(module.package.span.text());
        for rule in &module.policy {
            let span = rule.span();
            let Some(name) = head_name(span.text()) else {
                continue;
            };
            let is_function = match &**rule {
                Rule::Spec { head, .. } => matches!(head, RuleHead::Func { .. }),
                Rule::Default { args, .. } => !args.is_empty(),
            };
            out.push(RuleDecl {
                package: package.clone(),
                name,
                file: span.source.get_path().clone(),
                line: span.line,
                is_function,
            });
        }
    }
    out
}

fn package_name(text: &str) -> String {
    let text = text.trim();
    let text = text.strip_prefix("package").unwrap_or(text).trim();
    text.strip_prefix("data.").unwrap_or(text).to_string()
}

/// The first segment of a rule head: `deny_foo contains msg if …` → `deny_foo`.
fn head_name(text: &str) -> Option<String> {
    let text = text.trim_start();
    let text = text.strip_prefix("default ").map_or(text, str::trim_start);
    let name: String = text
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty()).then_some(name)
}

/// Static checks on one policy file's text: calls to builtins regorus lacks. `names` are OPA
/// builtin names; matching is on the call syntax with strings and comments blanked out.
pub fn check_builtins(path: &str, text: &str) -> Vec<Finding> {
    let code = blank_strings_and_comments(text);
    let mut findings = Vec::new();
    for (index, line) in code.lines().enumerate() {
        for builtin in MISSING_BUILTINS {
            if calls(line, builtin) {
                let mut location = Location::file(path);
                location.line = Some(index as u32 + 1);
                findings.push(
                    Finding::error(
                        Code::PolicyUnsupported,
                        format!(
                            "policy {path} calls the builtin `{builtin}`, which stategate's Rego engine (regorus) does not implement"
                        ),
                    )
                    .at(location)
                    .with_meta("policy", path)
                    .with_meta("builtin", *builtin)
                    .help("rewrite the rule without it; the README lists the unsupported builtins"),
                );
            }
        }
    }
    findings
}

fn calls(line: &str, name: &str) -> bool {
    line.match_indices(name).any(|(at, _)| {
        let before_ok = line[..at]
            .chars()
            .next_back()
            .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'));
        let after = line[at + name.len()..].trim_start();
        before_ok && after.starts_with('(')
    })
}

/// A rule that can raise a conflict error (two definitions of a complete rule or function giving
/// different values, or a partial object rule giving two values for one key), if any. Regorus'
/// VM does not raise that error, so policies with such rules stay on the interpreter, which does.
pub fn conflict_prone_rule(engine: &mut Engine) -> Option<String> {
    let mut values: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for module in engine.get_modules().iter() {
        let package = package_name(module.package.span.text());
        for rule in &module.policy {
            let Rule::Spec { head, span, .. } = &**rule else {
                continue;
            };
            if matches!(head, RuleHead::Set { .. }) {
                continue;
            }
            let text = blank_strings_and_comments(span.text());
            let head_text = text
                .split(" if ")
                .next()
                .and_then(|h| h.split('{').next())
                .unwrap_or_default();
            let Some((target, value)) = head_text
                .split_once(":=")
                .or_else(|| head_text.split_once(" = "))
            else {
                continue;
            };
            let name = head_name(target).unwrap_or_default();
            let is_function = matches!(head, RuleHead::Func { .. });
            if !is_function && target.contains('[') {
                return Some(format!("data.{package}.{name}"));
            }
            values
                .entry((package.clone(), name))
                .or_default()
                .insert(value.trim().to_string());
        }
    }
    values
        .into_iter()
        .find(|(_, v)| v.len() > 1)
        .map(|((package, name), _)| format!("data.{package}.{name}"))
}

/// `name` as a whole identifier, not a field (`x.name`) nor part of a longer name.
fn mentions(text: &str, name: &str) -> bool {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.match_indices(name).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + name.len()..].chars().next();
        before.is_none_or(|c| !(ident(c) || c == '.')) && after.is_none_or(|c| !ident(c))
    })
}

/// Replace the contents of string literals and comments with spaces, keeping line structure.
fn blank_strings_and_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '#' => {
                out.push(' ');
                while let Some(&n) = chars.peek() {
                    if n == '\n' {
                        break;
                    }
                    out.push(' ');
                    chars.next();
                }
            }
            '"' => {
                out.push('"');
                while let Some(n) = chars.next() {
                    match n {
                        '\\' => {
                            chars.next();
                            out.push_str("  ");
                        }
                        '"' => break,
                        '\n' => out.push('\n'),
                        _ => out.push(' '),
                    }
                }
                out.push('"');
            }
            '`' => {
                out.push('`');
                for n in chars.by_ref() {
                    match n {
                        '`' => break,
                        '\n' => out.push('\n'),
                        _ => out.push(' '),
                    }
                }
                out.push('`');
            }
            _ => out.push(c),
        }
    }
    out
}

/// Regorus overflows its stack on a recursive function (and its VM on recursive rules); OPA
/// rejects any recursion at compile time (`rego_recursion_error`), so we do the same, statically.
/// The reference graph is approximate (a function name in call position, a rule name as a whole
/// identifier, in the body text with strings and comments blanked), which can only err towards
/// reporting recursion where a local variable shadows a rule of the same name in a cycle.
pub fn check_recursion(engine: &mut Engine) -> Vec<Finding> {
    let mut bodies: BTreeMap<Node, Vec<Definition>> = BTreeMap::new();
    let mut functions: BTreeSet<Node> = BTreeSet::new();
    for module in engine.get_modules().iter() {
        let package = package_name(module.package.span.text());
        for rule in &module.policy {
            if let Rule::Spec { head, span, .. } = &**rule
                && let Some(name) = head_name(span.text())
            {
                if matches!(head, RuleHead::Func { .. }) {
                    functions.insert((package.clone(), name.clone()));
                }
                let text = blank_strings_and_comments(span.text());
                bodies.entry((package.clone(), name)).or_default().push((
                    span.source.get_path().clone(),
                    span.line,
                    text,
                ));
            }
        }
    }
    let mut edges: BTreeMap<&(String, String), BTreeSet<&(String, String)>> = BTreeMap::new();
    for (key, defs) in &bodies {
        for callee in bodies.keys() {
            let (pkg, name) = callee;
            let local = pkg == &key.0;
            let full = format!("data.{pkg}.{name}");
            let refers = |b: &str, n: &str| match functions.contains(callee) {
                true => calls(b, n),
                false => mentions(b, n),
            };
            let called = defs.iter().any(|(_, _, text)| {
                // Skip the head itself: the name at the start of the definition is not a call.
                let body = text.split_once('{').map_or("", |(_, b)| b);
                let assign_value = text
                    .split_once(":=")
                    .filter(|_| !text.contains('{'))
                    .map_or("", |(_, v)| v);
                [body, assign_value]
                    .iter()
                    .any(|b| (local && refers(b, name)) || refers(b, &full))
            });
            if called {
                edges.entry(key).or_default().insert(callee);
            }
        }
    }
    let mut findings = Vec::new();
    let mut reported = BTreeSet::new();
    for start in bodies.keys() {
        if let Some(cycle) = find_cycle(start, &edges)
            && reported.insert(cycle.iter().min().cloned())
        {
            let (file, line, _) = &bodies[start][0];
            let names: Vec<String> = cycle.iter().map(|(p, n)| format!("data.{p}.{n}")).collect();
            let mut location = Location::file(file.as_str());
            location.line = Some(*line);
            findings.push(
                Finding::error(
                    Code::PolicyCompile,
                    format!(
                        "policy {file} has a recursive {}: {} (Rego forbids recursion)",
                        if cycle.iter().all(|n| functions.contains(n)) {
                            "function"
                        } else {
                            "rule"
                        },
                        names.join(" → ")
                    ),
                )
                .at(location)
                .with_meta("policy", file.as_str()),
            );
        }
    }
    findings
}

/// A function: (package, name).
type Node = (String, String);
/// One definition of a function: (file, line, text with strings and comments blanked).
type Definition = (String, u32, String);

fn find_cycle(start: &Node, edges: &BTreeMap<&Node, BTreeSet<&Node>>) -> Option<Vec<Node>> {
    fn walk<'a>(
        node: &'a Node,
        start: &Node,
        edges: &BTreeMap<&'a Node, BTreeSet<&'a Node>>,
        path: &mut Vec<&'a Node>,
        seen: &mut BTreeSet<&'a Node>,
    ) -> bool {
        for next in edges.get(node).into_iter().flatten() {
            if *next == start {
                path.push(next);
                return true;
            }
            if seen.insert(next) {
                path.push(next);
                if walk(next, start, edges, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![start];
    let mut seen = BTreeSet::new();
    walk(start, start, edges, &mut path, &mut seen).then(|| path.into_iter().cloned().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_line_of_a_regorus_diagnostic() {
        let msg = "\n--> policies/a.rego:12:5\n  |\n12 | x\n";
        assert_eq!(error_line(msg), Some(12));
        assert_eq!(error_line("no location"), None);
    }

    #[test]
    fn finds_calls_to_missing_builtins_outside_strings() {
        let text =
            "package main\n# crypto.sha256(x)\nx := \"crypto.md5(y)\"\ny := crypto.sha256(\"a\")\n";
        let findings = check_builtins("p.rego", text);
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].location.as_ref().unwrap().line, Some(4));
        assert!(findings[0].message.contains("crypto.sha256"));
    }

    #[test]
    fn v0_and_v1_policies_both_parse() {
        let mut engine = Engine::new();
        add_policy(
            &mut engine,
            "v1.rego",
            "package a\ndeny contains \"x\" if { true }",
        )
        .unwrap();
        add_policy(&mut engine, "v0.rego", "package b\ndeny[\"x\"] { true }").unwrap();
        let decls = rule_decls(&mut engine);
        let names: Vec<_> = decls
            .iter()
            .map(|d| (d.package.as_str(), d.name.as_str()))
            .collect();
        assert_eq!(names, vec![("a", "deny"), ("b", "deny")]);
    }

    #[test]
    fn reports_the_error_of_the_attempt_that_got_further() {
        let mut engine = Engine::new();
        let err = add_policy(
            &mut engine,
            "v0.rego",
            "package b\ndeny[msg] {\n  msg := := 1\n}\n",
        )
        .unwrap_err();
        assert_eq!(err.rule, Code::PolicyCompile);
        assert_eq!(err.location.as_ref().unwrap().line, Some(3));
        assert!(err.message.contains("v0.rego:3:"), "{}", err.message);
    }

    #[test]
    fn detects_function_recursion() {
        let mut engine = Engine::new();
        add_policy(
            &mut engine,
            "r.rego",
            "package r\nf(x) := y if { y := g(x) }\ng(x) := y if { y := f(x) }\nh(x) := x + 1\n",
        )
        .unwrap();
        let findings = check_recursion(&mut engine);
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert!(findings[0].message.contains("data.r.f"));
    }

    #[test]
    fn finds_rules_that_may_conflict() {
        let prone = |text: &str| {
            let mut engine = Engine::new();
            add_policy(&mut engine, "p.rego", text).unwrap();
            conflict_prone_rule(&mut engine)
        };
        let two_values = "package p\nimport rego.v1\nsize := 1 if input.a\nsize := 2 if input.b\n";
        assert_eq!(prone(two_values).as_deref(), Some("data.p.size"));
        let object = "package p\nimport rego.v1\nby_name[n] := x if { some x in input.items; n := x.name }\n";
        assert_eq!(prone(object).as_deref(), Some("data.p.by_name"));
        let safe = "package p\nimport rego.v1\nf(x) if x == 1\nf(x) if x == 2\nname := input.name\ndeny contains \"x\" if f(1)\n";
        assert_eq!(prone(safe), None);
    }
}
