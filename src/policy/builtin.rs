//! The policies compiled into the binary (`policies.builtin` in the config), so that `cargo install`
//! gives a gate that means something without copying files. They are the files of `policies/`.

use serde_json::{Value, json};

use crate::config::{BuiltinParameters, PoliciesConfig};

/// One embedded policy: its name in `policies.builtin`, what it denies, and its Rego.
#[derive(Debug, Clone, Copy)]
pub struct Builtin {
    pub name: &'static str,
    pub summary: &'static str,
    pub rego: &'static str,
    pub test: &'static str,
    /// The keys of `policies.parameters.<name>`, described.
    pub parameters: &'static [(&'static str, &'static str)],
}

/// Helpers every built-in policy imports (`data.lib.k8s`).
pub const LIBRARY: (&str, &str) = ("lib_k8s.rego", include_str!("../../policies/lib_k8s.rego"));
pub const LIBRARY_TEST: (&str, &str) = (
    "lib_k8s_test.rego",
    include_str!("../../policies/lib_k8s_test.rego"),
);

pub const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "images",
        summary: "container images pinned (no :latest, no untagged) and, optionally, from allowed registries",
        rego: include_str!("../../policies/images.rego"),
        test: include_str!("../../policies/images_test.rego"),
        parameters: &[(
            "allowed_registries",
            "list of registry prefixes (e.g. ghcr.io/acme); empty = any registry",
        )],
    },
    Builtin {
        name: "privileged",
        summary: "no container with securityContext.privileged: true",
        rego: include_str!("../../policies/privileged.rego"),
        test: include_str!("../../policies/privileged_test.rego"),
        parameters: &[],
    },
    Builtin {
        name: "resources",
        summary: "every container declares CPU and memory limits",
        rego: include_str!("../../policies/resources.rego"),
        test: include_str!("../../policies/resources_test.rego"),
        parameters: &[],
    },
    Builtin {
        name: "required_labels",
        summary: "workloads, Pods, CronJobs and Services carry the required labels",
        rego: include_str!("../../policies/required_labels.rego"),
        test: include_str!("../../policies/required_labels_test.rego"),
        parameters: &[(
            "labels",
            "list of label keys (default: [app.kubernetes.io/name])",
        )],
    },
    Builtin {
        name: "secrets",
        summary: "no Secret with plaintext stringData (SOPS-encrypted ones pass)",
        rego: include_str!("../../policies/secrets.rego"),
        test: include_str!("../../policies/secrets_test.rego"),
        parameters: &[],
    },
];

/// The package the built-in policies are written in.
pub const PACKAGE: &str = "main";

pub fn find(name: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.name == name)
}

/// The built-ins `policies.builtin` enables (`all` = every one), in table order. Unknown names are
/// rejected when the config is validated.
pub fn enabled(config: &PoliciesConfig) -> Vec<&'static Builtin> {
    let all = config.builtin.iter().any(|n| n == "all");
    BUILTINS
        .iter()
        .filter(|b| all || config.builtin.iter().any(|n| n == b.name))
        .collect()
}

/// `data.stategate_builtin`: the parameters the built-in policies read.
pub fn parameters_data(parameters: &BuiltinParameters) -> Value {
    let mut builtin = serde_json::Map::new();
    if let Some(labels) = &parameters.required_labels.labels {
        builtin.insert("required_labels".into(), json!({ "labels": labels }));
    }
    builtin.insert(
        "images".into(),
        json!({ "allowed_registries": parameters.images.allowed_registries }),
    );
    json!({ "stategate_builtin": builtin })
}

/// `data.stategate_builtin.reject_kinds`.
pub fn reject_data(kinds: &[String]) -> Value {
    json!({ "stategate_builtin": { "reject_kinds": kinds } })
}

/// The module path a built-in is compiled under: findings and `policy/compile` errors name it.
pub fn module_path(file: &str) -> String {
    format!("<builtin>/{file}")
}

/// The package of the policy `policies.reject_kinds` generates.
pub const REJECT_PACKAGE: &str = "stategate_reject";

/// A document whose kind is listed in `policies.reject_kinds` is denied, whatever else it is.
pub const REJECT_POLICY: &str = r#"package stategate_reject

import rego.v1

deny contains msg if {
	some kind in data.stategate_builtin.reject_kinds
	lower(input.kind) == lower(kind)
	msg := sprintf("kind %s is rejected (policies.reject_kinds / --reject)", [input.kind])
}
"#;
