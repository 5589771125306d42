//! Plain scalars resolved the way kubectl resolves them.
//!
//! kubectl decodes manifests with sigs.k8s.io/yaml, which runs go-yaml v2: YAML 1.1 rules, so
//! `yes`/`on`/`y` are booleans and `0644` is octal. A YAML 1.2 parser would read them as the string
//! "yes" and the number 644, and the gate would judge something other than what the cluster gets.

use std::borrow::Cow;

use serde_json::{Number, Value};

/// What a plain (unquoted, untagged) scalar means to kubectl, plus a warning when a person would
/// likely read it differently.
pub struct Resolved {
    pub value: Value,
    pub ambiguity: Option<String>,
}

pub fn resolve_plain(text: &str) -> Resolved {
    resolve_special(text).unwrap_or_else(|| Resolved {
        value: Value::String(text.to_owned()),
        ambiguity: None,
    })
}

/// [`resolve_plain`] for everything but strings: `None` means the scalar is the string `text`, so
/// the caller can move a text it owns instead of copying it.
pub fn resolve_special(text: &str) -> Option<Resolved> {
    let plain = |value| {
        Some(Resolved {
            value,
            ambiguity: None,
        })
    };
    if !may_be_special(text) {
        return None;
    }
    if let Some(value) = null(text) {
        return plain(value);
    }
    if let Some(b) = boolean(text) {
        let ambiguity = (!matches!(text, "true" | "false" | "True" | "False" | "TRUE" | "FALSE"))
            .then(|| {
                format!(
                    "unquoted `{text}` is read by kubectl (YAML 1.1) as the boolean {b}; \
                     write {b} if you meant a boolean, or quote it (\"{text}\") for a string"
                )
            });
        return Some(Resolved {
            value: Value::Bool(b),
            ambiguity,
        });
    }
    if let Some(n) = integer(text) {
        let ambiguity = is_legacy_octal(text).then(|| {
            format!(
                "unquoted `{text}` is read by kubectl (YAML 1.1) as the octal number {n}; \
                 write {n} or 0o{} to make that explicit, or quote it for a string",
                text.trim_start_matches(['+', '-', '0'])
            )
        });
        return Some(Resolved {
            value: n,
            ambiguity,
        });
    }
    float(text).and_then(plain)
}

/// go-yaml v2 decides by the first byte (its `resolveTable` hint) whether a plain scalar can be
/// anything but a string: a null, boolean or number starts with one of these. Most scalars of a
/// manifest (names, images, labels) do not, and are strings without further work.
fn may_be_special(text: &str) -> bool {
    match text.as_bytes().first() {
        None => true,
        Some(b) => matches!(
            b,
            b'0'..=b'9'
                | b'+'
                | b'-'
                | b'.'
                | b'~'
                | b'n'
                | b'N'
                | b'y'
                | b'Y'
                | b't'
                | b'T'
                | b'f'
                | b'F'
                | b'o'
                | b'O'
        ),
    }
}

/// `text` without the digit separators go-yaml drops; borrowed when it has none (the usual case).
fn without_underscores(text: &str) -> Cow<'_, str> {
    if text.contains('_') {
        Cow::Owned(text.chars().filter(|&c| c != '_').collect())
    } else {
        Cow::Borrowed(text)
    }
}

fn null(text: &str) -> Option<Value> {
    matches!(text, "" | "~" | "null" | "Null" | "NULL").then_some(Value::Null)
}

fn boolean(text: &str) -> Option<bool> {
    match text {
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            Some(true)
        }
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            Some(false)
        }
        _ => None,
    }
}

fn is_legacy_octal(text: &str) -> bool {
    let digits = text.trim_start_matches(['+', '-']);
    digits.len() > 1
        && digits.starts_with('0')
        && digits[1..].chars().all(|c| matches!(c, '0'..='7' | '_'))
}

/// go-yaml v2: underscores are dropped, then Go's `strconv.ParseInt(s, 0, 64)` decides, which knows
/// `0x`, `0b`, `0o` and a leading `0` for octal. Integers beyond 64 bits fall through to floats.
fn integer(text: &str) -> Option<Value> {
    let cleaned = without_underscores(text);
    let cleaned: &str = &cleaned;
    let (negative, body) = match cleaned.as_bytes().first()? {
        b'-' => (true, &cleaned[1..]),
        b'+' => (false, &cleaned[1..]),
        _ => (false, cleaned),
    };
    if body.is_empty() || !body.as_bytes()[0].is_ascii_digit() {
        return None;
    }
    let (radix, digits) = if let Some(hex) = body.strip_prefix("0x") {
        (16, hex)
    } else if let Some(bin) = body.strip_prefix("0b") {
        (2, bin)
    } else if let Some(oct) = body.strip_prefix("0o") {
        (8, oct)
    } else if body.len() > 1 && body.starts_with('0') {
        (8, &body[1..])
    } else {
        (10, body)
    };
    if digits.is_empty() {
        return None;
    }
    let magnitude = u64::from_str_radix(digits, radix).ok()?;
    if negative {
        let n = i64::try_from(magnitude).ok().map(|m| -m).or_else(|| {
            // i64::MIN has no positive twin.
            (magnitude == i64::MIN.unsigned_abs()).then_some(i64::MIN)
        })?;
        Some(Value::Number(n.into()))
    } else {
        Some(Value::Number(magnitude.into()))
    }
}

fn float(text: &str) -> Option<Value> {
    let cleaned = without_underscores(text);
    let body = cleaned.trim_start_matches(['+', '-']);
    // YAML 1.1 floats need a digit or a dot first; this keeps Go's looser forms ("infinity", "nan",
    // hex floats) as strings, as go-yaml's regexp does.
    let looks_numeric = body.starts_with(|c: char| c.is_ascii_digit())
        || (body.starts_with('.') && body[1..].starts_with(|c: char| c.is_ascii_digit()));
    if !looks_numeric
        || !body
            .chars()
            .all(|c| c.is_ascii_digit() || "eE.+-".contains(c))
    {
        return None;
    }
    let f: f64 = cleaned.parse().ok()?;
    Number::from_f64(f).map(Value::Number)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn value(text: &str) -> Value {
        resolve_plain(text).value
    }

    #[test]
    fn yaml_1_1_booleans_are_booleans_like_kubectl_reads_them() {
        for t in [
            "yes", "Yes", "YES", "on", "On", "ON", "y", "Y", "true", "True",
        ] {
            assert_eq!(value(t), json!(true), "{t}");
        }
        for f in [
            "no", "No", "NO", "off", "Off", "OFF", "n", "N", "false", "FALSE",
        ] {
            assert_eq!(value(f), json!(false), "{f}");
        }
    }

    #[test]
    fn leading_zero_integers_are_octal() {
        assert_eq!(value("0644"), json!(420));
        assert_eq!(value("0o644"), json!(420));
        assert_eq!(value("0x1F"), json!(31));
        assert_eq!(value("0b101"), json!(5));
        assert_eq!(value("1_000"), json!(1000));
        assert_eq!(value("-17"), json!(-17));
        assert_eq!(value("0"), json!(0));
    }

    #[test]
    fn octal_lookalikes_with_8_or_9_stay_strings() {
        // Go's ParseInt fails on "0899" and go-yaml then tries a float: 899.
        assert_eq!(value("0899"), json!(899.0));
    }

    #[test]
    fn floats_nulls_and_strings() {
        assert_eq!(value("1.5"), json!(1.5));
        assert_eq!(value("1e3"), json!(1000.0));
        assert_eq!(value("~"), Value::Null);
        assert_eq!(value("null"), Value::Null);
        assert_eq!(value(""), Value::Null);
        assert_eq!(value("1.2.3"), json!("1.2.3"));
        assert_eq!(value("v1"), json!("v1"));
        assert_eq!(value("="), json!("="));
        assert_eq!(value(".inf"), json!(".inf"));
    }

    #[test]
    fn only_a_number_bool_or_null_first_byte_resolves() {
        // go-yaml v2 (and so kubectl: `kubectl label --local -o json` keeps `x: _1` a string)
        // looks at the first byte before anything else; underscores are dropped only after it.
        assert_eq!(value("_1"), json!("_1"));
        assert_eq!(value("1_0"), json!(10));
        assert_eq!(value("nginx"), json!("nginx"));
        assert_eq!(value("a1"), json!("a1"));
        assert_eq!(value("-1_0"), json!(-10));
    }

    #[test]
    fn ambiguous_scalars_carry_a_warning_and_plain_ones_do_not() {
        assert!(resolve_plain("yes").ambiguity.is_some());
        assert!(resolve_plain("on").ambiguity.is_some());
        assert!(resolve_plain("0644").ambiguity.is_some());
        assert!(resolve_plain("true").ambiguity.is_none());
        assert!(resolve_plain("644").ambiguity.is_none());
        assert!(resolve_plain("0").ambiguity.is_none());
        assert!(resolve_plain("nginx").ambiguity.is_none());
    }
}
