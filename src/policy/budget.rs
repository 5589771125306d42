//! A memory budget for policy evaluation.
//!
//! A policy can allocate without bound, on purpose or through the document it judges
//! (`numbers.range(0, input.spec.replicas)` with `replicas: 300000000`). Unbounded, the allocation
//! either aborts the process (exit 134: no verdict, no message) or starves the host. regorus can
//! stop an evaluation cleanly when the process's live heap passes a limit: its build of mimalloc
//! (our global allocator) counts every byte, and the interpreter, the VM and the builtins that
//! build large values check the count as they grow. The evaluation then fails with a limit error,
//! which becomes a blocking `policy/error` for that document.
//!
//! The limit is process-wide, so it is set while evaluations run: the live heap when the first of
//! a batch of concurrent evaluations starts, plus the budget (`policies.memory_mb`), shared by the
//! evaluations running at once. When none runs, no limit applies, and the rest of the gate
//! (loading, schemas) is never refused memory.
//!
//! The count is checked between steps, so a single builtin call that reserves more than the host
//! can map aborts before any check: `numbers.range(1, 3e13)` asks for 720 TB at once, and
//! `concat` of a million references to one large string joins terabytes in one call. Those
//! builtins are replaced ([`guard`]) by versions that compute the size first and refuse past the
//! budget; so is `json.marshal`, which writes out a value whose parts a policy may share
//! (`b := [a, a]` forty times over is small in memory and 2^40 times `a` as text). regorus' compiled VM calls builtins directly, so a policy set that calls one of them is
//! evaluated by the interpreter only ([`calls_guarded`]).

use std::collections::HashMap;
use std::sync::Mutex;

use regorus::Value;

/// Evaluations in progress, and the limit they share. A mutex (not atomics) because arming and
/// disarming must be one step with reading the count.
static ACTIVE: Mutex<usize> = Mutex::new(0);

/// While alive, policy evaluation on this process is bounded. Dropping it ends the evaluation.
pub struct Armed(());

/// Start one evaluation under a budget of `bytes` beyond the heap in use.
pub fn arm(bytes: u64) -> Armed {
    let mut active = ACTIVE.lock().unwrap_or_else(|p| p.into_inner());
    if *active == 0 {
        let live = regorus_mimalloc::global_allocation_stats_snapshot().allocated;
        regorus::set_global_memory_limit(Some(live.saturating_add(bytes)));
    }
    *active += 1;
    Armed(())
}

impl Drop for Armed {
    fn drop(&mut self) {
        let mut active = ACTIVE.lock().unwrap_or_else(|p| p.into_inner());
        *active = active.saturating_sub(1);
        if *active == 0 {
            regorus::set_global_memory_limit(None);
        }
    }
}

/// Whether an evaluation error is the budget running out.
pub fn is_exhausted(error: &str) -> bool {
    // regorus' count ("execution exceeded memory limit") or a guarded builtin's refusal.
    error.contains("memory limit") || error.contains("policy memory budget")
}

/// The budget of `policies.memory_mb`, in bytes.
pub fn bytes(memory_mb: u64) -> u64 {
    memory_mb.max(1).saturating_mul(1024 * 1024)
}

/// The builtins [`guard`] replaces: each reserves memory in proportion to its arguments in one
/// step, before regorus could check the budget.
const GUARDED: [&str; 4] = [
    "numbers.range",
    "numbers.range_step",
    "concat",
    "json.marshal",
];

/// Whether a policy's text calls a guarded builtin (such policies skip the compiled VM).
pub fn calls_guarded(text: &str) -> bool {
    GUARDED.iter().any(|name| text.contains(name))
}

/// Bytes one element of a built array costs, at least (a regorus `Value`).
const ELEMENT: u64 = std::mem::size_of::<Value>() as u64;

/// Replace the guarded builtins of `engine` by versions that refuse results over `bytes`.
/// Results under the budget are the builtins' own.
pub fn guard(engine: &mut regorus::Engine, bytes: u64) -> anyhow::Result<()> {
    engine.add_extension(
        "numbers.range".into(),
        2,
        Box::new(move |args: Vec<Value>| range("numbers.range", &args[0], &args[1], 1, bytes)),
    )?;
    engine.add_extension(
        "numbers.range_step".into(),
        3,
        Box::new(move |args: Vec<Value>| {
            match integer(&args[2]) {
                // OPA: the step must be a positive integer.
                Some(step) if step > 0 => {
                    range("numbers.range_step", &args[0], &args[1], step, bytes)
                }
                _ => Ok(Value::Undefined),
            }
        }),
    )?;
    engine.add_extension(
        "concat".into(),
        2,
        Box::new(move |args: Vec<Value>| concat(&args[0], &args[1], bytes)),
    )?;
    engine.add_extension(
        "json.marshal".into(),
        1,
        Box::new(move |args: Vec<Value>| json_marshal(&args[0], bytes)),
    )?;
    Ok(())
}

fn integer(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) if n.is_integer() => n.as_i64(),
        _ => None,
    }
}

/// `numbers.range(a, b)` (step 1) and `numbers.range_step(a, b, step)`: the integers from `a`
/// towards `b`, both included when the step reaches it. Non-integers are undefined, as the
/// builtins make them when builtin errors are not strict.
fn range(name: &str, from: &Value, to: &Value, step: i64, bytes: u64) -> anyhow::Result<Value> {
    let (Some(a), Some(b)) = (integer(from), integer(to)) else {
        return Ok(Value::Undefined);
    };
    let span = u128::from(a.abs_diff(b));
    let count = span / u128::from(step.unsigned_abs()) + 1;
    if count.saturating_mul(u128::from(ELEMENT)) > u128::from(bytes) {
        anyhow::bail!(
            "{name} would build {count} numbers, more than the policy memory budget \
             ({} MiB) holds",
            bytes / (1024 * 1024)
        );
    }
    let step = if b >= a { step } else { -step };
    let mut values = Vec::with_capacity(count as usize);
    let mut next = a;
    for _ in 0..count {
        values.push(Value::from(next));
        next = next.saturating_add(step);
    }
    Ok(Value::from(values))
}

/// `concat(delimiter, collection)`: the strings of an array or set joined by the delimiter.
/// A collection may hold the same large string many times over (for the cost of a reference
/// each), so the length is added up before anything is joined.
fn concat(delimiter: &Value, collection: &Value, bytes: u64) -> anyhow::Result<Value> {
    let Value::String(delimiter) = delimiter else {
        return Ok(Value::Undefined);
    };
    let items: Vec<&Value> = match collection {
        Value::Array(items) => items.iter().collect(),
        Value::Set(items) => items.iter().collect(),
        _ => return Ok(Value::Undefined),
    };
    let mut parts = Vec::with_capacity(items.len());
    let mut total = delimiter.len() as u64 * items.len().saturating_sub(1) as u64;
    for item in items {
        let Value::String(text) = item else {
            return Ok(Value::Undefined);
        };
        total = total.saturating_add(text.len() as u64);
        parts.push(text.as_ref());
    }
    if total > bytes {
        anyhow::bail!(
            "concat would build a string of {total} bytes, more than the policy memory budget \
             ({} MiB) holds",
            bytes / (1024 * 1024)
        );
    }
    Ok(Value::from(parts.join(delimiter)))
}

/// `json.marshal(value)`, as regorus writes it (serde_json), once the text is known to fit.
fn json_marshal(value: &Value, bytes: u64) -> anyhow::Result<Value> {
    let size = json_size(value, &mut HashMap::new());
    if size > bytes {
        anyhow::bail!(
            "json.marshal would write {size} bytes or more, more than the policy memory budget \
             ({} MiB) holds",
            bytes / (1024 * 1024)
        );
    }
    Ok(Value::from(serde_json::to_string(value)?))
}

/// An upper bound of the JSON text of `value`, counting each shared part once per use but
/// walking it once (`seen`, by address): a value of 2^40 repetitions is sized in 40 steps.
fn json_size(value: &Value, seen: &mut HashMap<usize, u64>) -> u64 {
    let address = match value {
        Value::Array(array) => std::ptr::from_ref(&**array).addr(),
        Value::Set(set) => std::ptr::from_ref(&**set).addr(),
        Value::Object(object) => std::ptr::from_ref(&**object).addr(),
        Value::Null | Value::Undefined => return 4,
        Value::Bool(_) => return 5,
        Value::Number(n) => return n.format_decimal().len() as u64,
        // An escape takes at most six bytes per byte (`\u001f`).
        Value::String(text) => return (text.len() as u64).saturating_mul(6).saturating_add(2),
    };
    if let Some(known) = seen.get(&address) {
        return *known;
    }
    let size = match value {
        Value::Array(array) => items_size(array.iter(), seen),
        Value::Set(set) => items_size(set.iter(), seen),
        Value::Object(object) => object.iter().fold(2u64, |total, (key, item)| {
            total
                .saturating_add(json_size(key, seen))
                .saturating_add(json_size(item, seen))
                .saturating_add(2)
        }),
        _ => 0,
    };
    seen.insert(address, size);
    size
}

fn items_size<'v>(items: impl Iterator<Item = &'v Value>, seen: &mut HashMap<usize, u64>) -> u64 {
    items.fold(2u64, |total, item| {
        total
            .saturating_add(json_size(item, seen))
            .saturating_add(1)
    })
}
