//! `pattern` compiled on first use instead of when its kind's validator is built.
//!
//! A kind's validator compiles every regex its schema holds, and most are never run: a document
//! sets few of the fields a CRD describes. Compiling them was 4.8% of the CPU of the corpus'
//! `check --all` (fancy-regex and the regex crate building automata for 117 kinds), for patterns
//! of fields no document of the corpus has.
//!
//! The keyword stays jsonschema's own: on first use it builds a validator of `{"pattern": …}` with
//! the same options, so matching, the ECMA-262 translation and the error (`Pattern`, with the
//! instance's and the keyword's locations filled in by jsonschema) are what the built-in keyword
//! gives. A pattern that does not compile fails every string it is asked about, with a message
//! naming it: the gate cannot tell whether the value matches, so it blocks.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, OnceLock};

use jsonschema::paths::Location;
use jsonschema::{Draft, Keyword, ValidationError, Validator};
use serde_json::{Map, Value, json};

use crate::sync::locked;

/// The keyword's factory, registered as `pattern` in place of the built-in: it checks only that
/// the keyword's value is a string, as the built-in does.
pub fn compile_later<'a>(
    _parent: &'a Map<String, Value>,
    value: &'a Value,
    _at: Location,
) -> Result<Box<dyn for<'i> Keyword<'i>>, ValidationError<'a>> {
    match value.as_str() {
        Some(pattern) => Ok(Box::new(LazyPattern {
            pattern: pattern.into(),
            compiled: OnceLock::new(),
        })),
        None => Err(ValidationError::custom(format!(
            "`pattern` must be a string, not {value}"
        ))),
    }
}

/// One `pattern` keyword of a schema, and its validator once a string met it.
struct LazyPattern {
    pattern: Box<str>,
    compiled: OnceLock<Shared>,
}

/// A compiled pattern, or why it does not compile; shared by every keyword with the same text.
type Shared = Arc<Result<Validator, String>>;

impl LazyPattern {
    fn compiled(&self) -> &Result<Validator, String> {
        self.compiled.get_or_init(|| compiled(&self.pattern))
    }

    fn uncompilable(&self, why: &str) -> ValidationError<'static> {
        ValidationError::custom(format!(
            "the schema's pattern `{}` cannot be compiled ({why}), so no value can be checked \
             against it",
            self.pattern
        ))
    }
}

impl<'i> Keyword<'i> for LazyPattern {
    fn validate(&self, instance: &'i Value) -> Result<(), ValidationError<'i>> {
        if !instance.is_string() {
            return Ok(());
        }
        match self.compiled() {
            Ok(validator) => validator.validate(instance),
            Err(why) => Err(self.uncompilable(why)),
        }
    }

    fn is_valid(&self, instance: &'i Value) -> bool {
        !instance.is_string()
            || self
                .compiled()
                .as_ref()
                .is_ok_and(|validator| validator.is_valid(instance))
    }
}

/// Compiled patterns by their text, for the whole run.
static CACHE: LazyLock<Mutex<HashMap<Box<str>, Shared>>> = LazyLock::new(Mutex::default);

/// The validator of `pattern`, compiled once per run for all kinds: CRDs of one project repeat
/// their patterns (Flux's duration and name patterns are in every one of its CRDs).
fn compiled(pattern: &str) -> Shared {
    if let Some(shared) = locked(&CACHE).get(pattern) {
        return Arc::clone(shared);
    }
    // Compiled outside the lock: two threads meeting one new pattern at once compile it twice,
    // which is cheaper than making every other pattern wait.
    let shared = Arc::new(
        jsonschema::options()
            .offline()
            .with_draft(Draft::Draft202012)
            .build(&json!({ "pattern": pattern }))
            .map_err(|e| e.to_string()),
    );
    let mut cache = locked(&CACHE);
    Arc::clone(cache.entry(pattern.into()).or_insert(shared))
}

#[cfg(test)]
mod tests {
    use jsonschema::error::ValidationErrorKind;

    use super::*;

    fn builtin(schema: &Value) -> Validator {
        jsonschema::options()
            .with_draft(Draft::Draft202012)
            .build(schema)
            .expect("valid schema")
    }

    fn lazy(schema: &Value) -> Validator {
        jsonschema::options()
            .with_draft(Draft::Draft202012)
            .with_keyword("pattern", compile_later)
            .build(schema)
            .expect("valid schema")
    }

    fn is_cached(pattern: &str) -> bool {
        locked(&CACHE).contains_key(pattern)
    }

    /// jsonschema's own keyword is the oracle: the same verdict and the same error, at the same
    /// places, for ECMA-262 classes, lookarounds (fancy-regex), Unicode classes, and the
    /// literal patterns jsonschema matches without a regex.
    #[test]
    fn the_lazy_keyword_judges_as_the_builtin_one() {
        let patterns = [
            r"^\d+$",
            r"^(?=a)a+b?$",
            r"^\p{L}+$",
            "^[a-z][a-z0-9-]*$",
            "abc",
            "^abc",
            "^(fast|slow)$",
            r"^\S*$",
            r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$",
        ];
        let subjects = [
            json!("abc"),
            json!("123"),
            json!("aab"),
            json!("web-1"),
            json!("Web 1"),
            json!("fast"),
            json!("1m30s"),
            json!("é"),
            json!(""),
            json!(12),
            json!(null),
        ];
        for pattern in patterns {
            let schema = json!({"properties": {"spec": {"items": {"pattern": pattern}}}});
            let (builtin, lazy) = (builtin(&schema), lazy(&schema));
            for subject in &subjects {
                let instance = json!({"spec": [subject]});
                let what = format!("{pattern} on {subject}");
                assert_eq!(
                    builtin.is_valid(&instance),
                    lazy.is_valid(&instance),
                    "{what}"
                );
                let errors = |v: &Validator| {
                    v.iter_errors(&instance)
                        .map(|e| {
                            let ValidationErrorKind::Pattern { pattern } = e.kind() else {
                                panic!("{what}: not a pattern error: {e}");
                            };
                            (
                                pattern.clone(),
                                e.instance_path().as_str().to_owned(),
                                e.schema_path().as_str().to_owned(),
                            )
                        })
                        .collect::<Vec<_>>()
                };
                assert_eq!(errors(&builtin), errors(&lazy), "{what}");
            }
        }
    }

    #[test]
    fn a_pattern_is_compiled_when_a_string_first_meets_it() {
        let pattern = "^compiled-on-first-use-[0-9]{4}$";
        let validator = lazy(&json!({"properties": {"name": {"pattern": pattern}}}));
        assert!(validator.is_valid(&json!({"other": "x"})));
        assert!(validator.is_valid(&json!({"name": 7})));
        assert!(!is_cached(pattern), "compiled before a string met it");
        assert!(!validator.is_valid(&json!({"name": "compiled-on-first-use-x"})));
        assert!(is_cached(pattern));
        assert!(validator.is_valid(&json!({"name": "compiled-on-first-use-2026"})));
    }

    #[test]
    fn a_pattern_that_does_not_compile_fails_every_string_it_meets() {
        let validator = lazy(&json!({"properties": {"name": {"pattern": "([unclosed"}}}));
        assert!(validator.is_valid(&json!({"name": 7})), "not a string");
        assert!(validator.is_valid(&json!({})), "no value to judge");
        let instance = json!({"name": "anything"});
        assert!(!validator.is_valid(&instance));
        let error = validator.validate(&instance).expect_err("blocked");
        assert_eq!(error.instance_path().as_str(), "/name");
        let message = error.to_string();
        assert!(
            message.contains("pattern `([unclosed` cannot be compiled"),
            "{message}"
        );
    }

    #[test]
    fn a_pattern_that_is_not_a_string_is_an_invalid_schema() {
        let built = jsonschema::options()
            .with_keyword("pattern", compile_later)
            .build(&json!({"pattern": 5}));
        assert!(built.is_err());
    }
}
