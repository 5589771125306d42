//! The hot path for document rules: regorus' compiled Rego VM (RVM).
//!
//! Every document rule of every selected package is gathered into one generated rule,
//! `data.__stategate_plan.results := [[exception?, rule…] per package]`, compiled to an RVM
//! program once, and executed per document: about four times faster than the tree-walking
//! interpreter (see `benches/policy_bench.rs`). Whenever the VM cannot give a clean answer (a rule
//! errors, runs out of time, or a complete rule is undefined and empties the array), the caller
//! falls back to the interpreter, which attributes errors to the rule that raised them.

use regorus::languages::rego::compiler::Compiler;
use regorus::rvm::RegoVM;

use super::eval::{Pool, timer};

const PLAN_PACKAGE: &str = "__stategate_plan";
const ENTRY: &str = "data.__stategate_plan.results";

/// One package's slice of the plan's result.
pub struct PackagePlan {
    pub package: String,
    pub has_exception: bool,
    /// `data.pkg.rule` of each rule, in result order.
    pub rule_paths: Vec<String>,
}

pub struct FastPath {
    data: regorus::Value,
    vms: Pool<RegoVM>,
}

impl FastPath {
    /// Compile the plan; `None` when the RVM compiler does not support something in the policies
    /// or some rule may raise a conflict error, which the VM would not raise (the interpreter then
    /// does all the work).
    pub fn compile(
        engine: &regorus::Engine,
        plans: &[PackagePlan],
        timeout_ms: u64,
    ) -> Option<FastPath> {
        let mut engine = engine.clone();
        if plans.is_empty() || super::source::conflict_prone_rule(&mut engine).is_some() {
            return None;
        }
        let groups: Vec<String> = plans
            .iter()
            .map(|plan| {
                let exception = plan
                    .has_exception
                    .then(|| format!("data.{}.exception", plan.package));
                let items: Vec<&str> = exception
                    .iter()
                    .map(String::as_str)
                    .chain(plan.rule_paths.iter().map(String::as_str))
                    .collect();
                format!("[{}]", items.join(", "))
            })
            .collect();
        let module = format!(
            "package {PLAN_PACKAGE}\n\nresults := [{}]\n",
            groups.join(",\n  ")
        );
        engine.set_rego_v0(false);
        engine
            .add_policy(format!("<{PLAN_PACKAGE}>"), module)
            .ok()?;
        let entry: regorus::Rc<str> = ENTRY.into();
        let compiled = engine.compile_with_entrypoint(&entry).ok()?;
        let program = Compiler::compile_from_policy(&compiled, &[ENTRY]).ok()?;
        let data = engine.get_data();
        let factory_data = data.clone();
        let vms = Pool::new(move || {
            let mut vm = RegoVM::new();
            vm.load_program(program.clone());
            vm.set_execution_timer_config(Some(timer(timeout_ms)));
            vm.set_strict_builtin_errors(false);
            // The data was accepted by the engine, so it cannot conflict with the rules.
            let _ = vm.set_data(factory_data.clone());
            vm
        });
        Some(FastPath { data, vms })
    }

    /// The values of every plan entry for one document, or `None` to fall back.
    /// `context` is `data.stategate.file`, when the policies read it.
    pub fn run(
        &self,
        input: regorus::Value,
        context: Option<regorus::Value>,
    ) -> Option<Vec<Vec<regorus::Value>>> {
        self.vms.with(|vm| {
            if let Some(context) = context {
                let mut data = self.data.clone();
                let mut stategate = std::collections::BTreeMap::new();
                stategate.insert(regorus::Value::from("file"), context);
                data.as_object_mut().ok()?.insert(
                    regorus::Value::from("stategate"),
                    regorus::Value::from(stategate),
                );
                vm.set_data(data).ok()?;
            }
            vm.set_input(input);
            let value = vm.execute().ok()?;
            let groups = value.as_array().ok()?;
            groups
                .iter()
                .map(|group| {
                    group
                        .as_array()
                        .ok()
                        .map(|items| items.iter().cloned().collect())
                })
                .collect()
        })
    }
}
