//! `stategate policies list|show NAME`: the policies compiled into the binary.

use std::io::{self, Write};

use crate::policy::builtin::{BUILTINS, find};

/// One line per built-in policy: its name for `policies.builtin` and what it denies.
pub fn list(out: &mut dyn Write) -> io::Result<u8> {
    let width = BUILTINS.iter().map(|b| b.name.len()).max().unwrap_or(0);
    for b in BUILTINS {
        writeln!(out, "{:width$}  {}", b.name, b.summary)?;
    }
    writeln!(
        out,
        "\nenable in .stategate.yaml: policies: {{builtin: [all]}} or a list of names"
    )?;
    Ok(0)
}

/// The Rego of one built-in policy, with its parameters; an unknown name is exit 2.
pub fn show(name: &str, out: &mut dyn Write, err: &mut dyn Write) -> io::Result<u8> {
    let Some(builtin) = find(name) else {
        let names: Vec<&str> = BUILTINS.iter().map(|b| b.name).collect();
        writeln!(
            err,
            "stategate: no built-in policy `{name}`; built-in policies: {}",
            names.join(", ")
        )?;
        return Ok(2);
    };
    writeln!(out, "# {}: {}", builtin.name, builtin.summary)?;
    for (key, what) in builtin.parameters {
        writeln!(
            out,
            "# parameter policies.parameters.{}.{key}: {what}",
            builtin.name
        )?;
    }
    out.write_all(builtin.rego.as_bytes())?;
    Ok(0)
}
