//! Evaluation plumbing: a pool of cloned engines for parallel workers, JSON → regorus values, and
//! rule results → findings.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use regorus::Engine;
use regorus::utils::limits::ExecutionTimerConfig;
use serde_json::{Map, Value};

use crate::finding::{Finding, Rule, Severity};

/// Compiled once, then cloned per worker: regorus engines are not `Sync`, but a clone shares the
/// parsed modules and data (they sit behind `Arc`s) and is cheap compared with evaluation.
pub struct EnginePool {
    prototype: Engine,
    idle: Mutex<Vec<Engine>>,
}

impl EnginePool {
    pub fn new(prototype: Engine) -> Self {
        EnginePool {
            prototype,
            idle: Mutex::new(Vec::new()),
        }
    }

    pub fn prototype_mut(&mut self) -> &mut Engine {
        // Engines cloned from an older prototype would miss the change.
        self.idle.get_mut().map(Vec::clear).unwrap_or_default();
        &mut self.prototype
    }

    /// Run `f` with an engine nobody else is using.
    pub fn with<R>(&self, f: impl FnOnce(&mut Engine) -> R) -> R {
        let taken = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let mut engine = taken.unwrap_or_else(|| self.prototype.clone());
        let result = f(&mut engine);
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(engine);
        }
        result
    }
}

/// Reusable per-worker state built by a factory (regorus VMs are not `Sync` either).
pub struct Pool<T> {
    make: Box<dyn Fn() -> T + Send + Sync>,
    idle: Mutex<Vec<T>>,
}

impl<T> Pool<T> {
    pub fn new(make: impl Fn() -> T + Send + Sync + 'static) -> Self {
        Pool {
            make: Box::new(make),
            idle: Mutex::new(Vec::new()),
        }
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let taken = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let mut item = taken.unwrap_or_else(|| (self.make)());
        let result = f(&mut item);
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(item);
        }
        result
    }
}

pub fn timer(timeout_ms: u64) -> ExecutionTimerConfig {
    ExecutionTimerConfig {
        limit: Duration::from_millis(timeout_ms.max(1)),
        // Checking the clock every few hundred steps keeps the overhead invisible while still
        // stopping a runaway loop within a few milliseconds of its budget.
        check_interval: std::num::NonZeroU32::new(256).unwrap_or(std::num::NonZeroU32::MIN),
    }
}

/// JSON → regorus value without a serde round trip (the per-document hot path).
pub fn to_rego(value: &Value) -> regorus::Value {
    match value {
        Value::Null => regorus::Value::Null,
        Value::Bool(b) => regorus::Value::from(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                regorus::Value::from(i)
            } else if let Some(u) = n.as_u64() {
                regorus::Value::from(u)
            } else {
                regorus::Value::from(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Value::String(s) => regorus::Value::from(s.as_str()),
        Value::Array(items) => regorus::Value::from(items.iter().map(to_rego).collect::<Vec<_>>()),
        Value::Object(map) => regorus::Value::from(
            map.iter()
                .map(|(k, v)| (regorus::Value::from(k.as_str()), to_rego(v)))
                .collect::<BTreeMap<_, _>>(),
        ),
    }
}

pub fn to_json(value: &regorus::Value) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// The members of a rule's value: a set or array of results, or a single complete value.
pub fn results(value: &regorus::Value) -> Vec<Value> {
    match value {
        regorus::Value::Undefined => Vec::new(),
        regorus::Value::Set(set) => set.iter().map(to_json).collect(),
        regorus::Value::Array(items) => items.iter().map(to_json).collect(),
        regorus::Value::Bool(false) | regorus::Value::Null => Vec::new(),
        other => vec![to_json(other)],
    }
}

/// Where a result came from, for the finding's metadata.
pub struct Origin<'a> {
    pub package: &'a str,
    pub rule: &'a str,
    pub policy: &'a str,
}

/// conftest's result convention: a string is the message; an object carries it in `msg` and any
/// other keys are kept as metadata.
pub fn result_finding(result: Value, severity: Severity, origin: &Origin<'_>) -> Finding {
    let rule = if severity == Severity::Warning {
        Rule::PolicyWarn
    } else {
        Rule::PolicyDeny
    };
    let (message, extra) = match result {
        Value::String(s) => (s, Map::new()),
        Value::Object(mut map) => {
            let msg = match map.remove("msg") {
                Some(Value::String(s)) => s,
                Some(other) => other.to_string(),
                None => Value::Object(map.clone()).to_string(),
            };
            (msg, map)
        }
        Value::Bool(true) => (format!("{} is true", origin.rule), Map::new()),
        other => (other.to_string(), Map::new()),
    };
    let mut finding = Finding::new(rule, severity, message)
        .with_meta("rule", origin.rule)
        .with_meta("package", origin.package)
        .with_meta("policy", origin.policy);
    for (key, value) in extra {
        finding.metadata.entry(key).or_insert(value);
    }
    finding
}

/// An evaluation that failed: a blocking `policy/error`, naming the policy and what went wrong.
pub fn error_finding(err: &str, origin: &Origin<'_>, subject: &str) -> Finding {
    let text = err;
    let what = if text.contains("exceeded time limit") {
        format!(
            "policy rule data.{}.{} ran out of its time budget on {subject}",
            origin.package, origin.rule
        )
    } else if super::budget::is_exhausted(text) {
        format!(
            "policy rule data.{}.{} ran out of its memory budget on {subject} \
             (`policies.memory_mb`; {})",
            origin.package,
            origin.rule,
            text.trim()
        )
    } else {
        format!(
            "policy rule data.{}.{} failed on {subject}: {}",
            origin.package,
            origin.rule,
            text.trim()
        )
    };
    let mut finding = Finding::error(Rule::PolicyError, what)
        .with_meta("rule", origin.rule)
        .with_meta("package", origin.package)
        .with_meta("policy", origin.policy);
    if let Some(line) = super::source::error_line(text) {
        finding = finding.with_meta("policy_line", line);
    }
    finding
}
