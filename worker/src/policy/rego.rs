//! Rego policies (conftest style) evaluated with regorus.
//!
//! Each file is parsed as Rego v1 first and, when that fails, as v0 (conftest's `deny[msg] { }`),
//! so both syntaxes load side by side. A file that parses as neither is an error naming the file
//! and line — a broken policy is never skipped. Rules named `deny`, `violation` (severity deny)
//! and `warn` in the configured packages are evaluated with `input` = one object and
//! `data.capstan.objects` / `data.capstan.app` set for the object's app.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::findings::{Finding, Severity};
use crate::objects::K8sObject;

/// One policy source file (repository path and text), as read from the chosen commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyFile {
    pub path: String,
    pub text: String,
}

/// Why policies could not be loaded or evaluated.
#[derive(Debug, thiserror::Error)]
pub enum RegoError {
    /// A policy file that is not valid Rego in either syntax.
    #[error("{file}:{line}: invalid Rego: {message}")]
    Syntax {
        file: String,
        line: usize,
        message: String,
    },
    /// The files load, but together they do not compile (e.g. conflicting rules).
    #[error("policies do not compile: {0}")]
    Compile(String),
    #[error("evaluating {rule} for {object}: {message}")]
    Eval {
        rule: String,
        object: String,
        message: String,
    },
}

/// Rule names conftest evaluates, with the severity they carry.
const RULES: &[(&str, Severity)] = &[
    ("deny", Severity::Deny),
    ("violation", Severity::Deny),
    ("warn", Severity::Warn),
];

/// The policies compiled for regorus' virtual machine, which evaluates the shipped bundle about
/// twice as fast as the tree-walking interpreter. The VM is newer than the interpreter, so it is
/// only used for policy sets checked against the interpreter (`tests/policy_vm.rs`: the shipped
/// bundle); anything the VM cannot compile or evaluate falls back to the interpreter.
struct Compiled {
    policy: regorus::CompiledPolicy,
    program: std::sync::Arc<regorus::rvm::program::Program>,
}

/// The VM's single entry point: the values of every target rule, in target order.
const ENTRY: &str = "data.capstan_entry.all";

/// Loaded policies, ready to evaluate objects. Clone one per thread.
pub struct RegoPolicies {
    engine: regorus::Engine,
    compiled: Option<std::sync::Arc<Compiled>>,
    vm: Option<regorus::rvm::RegoVM>,
    /// Objects the VM failed on and the interpreter evaluated instead.
    vm_fallbacks: usize,
    /// Fully qualified rules that exist, e.g. `data.main.deny`, with their severity and package.
    targets: Vec<(String, String, &'static str, Severity)>,
    files: usize,
    test_rules: BTreeSet<String>,
}

impl RegoPolicies {
    /// Loads policy files. Files named `*_test.rego` are left out unless `with_tests` is set.
    /// `packages` are the packages whose `deny`/`warn`/`violation` rules count (conftest uses
    /// `main`).
    pub fn load(
        files: &[PolicyFile],
        packages: &[String],
        with_tests: bool,
    ) -> Result<Self, RegoError> {
        let mut engine = regorus::Engine::new();
        let mut loaded = Vec::new();
        let mut test_rules = BTreeSet::new();
        for f in files {
            if !f.path.ends_with(".rego") || (!with_tests && f.path.ends_with("_test.rego")) {
                continue;
            }
            let package = add_policy(&mut engine, f)?;
            scan_test_rules(&f.text, &mut test_rules);
            loaded.push((f.path.clone(), package));
        }
        let mut targets = Vec::new();
        for pkg in packages {
            for (rule, sev) in RULES {
                let path = format!("data.{pkg}.{rule}");
                let declared = loaded.iter().any(|(file, package)| {
                    *package == format!("data.{pkg}")
                        && engine
                            .has_declared_rule_rooted_at(file, rule)
                            .unwrap_or(false)
                });
                if declared {
                    targets.push((path, pkg.clone(), *rule, *sev));
                }
            }
        }
        let mut out = RegoPolicies {
            engine,
            compiled: None,
            vm: None,
            vm_fallbacks: 0,
            targets,
            files: loaded.len(),
            test_rules,
        };
        // Surface compile errors (conflicting definitions, unknown functions) at load time.
        out.engine.set_input(regorus::Value::new_object());
        if let Some((path, ..)) = out.targets.first().cloned() {
            out.engine
                .eval_rule(path.clone())
                .map_err(|e| RegoError::Compile(e.to_string()))?;
            out.compiled = out.compile(&path);
            out.vm = out.compiled.as_ref().map(|c| new_vm(c));
        }
        Ok(out)
    }

    fn compile(&mut self, _first: &str) -> Option<std::sync::Arc<Compiled>> {
        // One entry point for all target rules, so helper rules they share are computed once per
        // object. Only the VM's copy of the engine gets this module.
        let mut engine = self.engine.clone();
        let list: Vec<&str> = self.targets.iter().map(|t| t.0.as_str()).collect();
        engine
            .add_policy(
                "capstan-entry.rego".into(),
                format!(
                    "package capstan_entry\nimport rego.v1\nall := [{}]\n",
                    list.join(", ")
                ),
            )
            .map_err(|e| tracing::debug!("Rego VM entry point: {e}"))
            .ok()?;
        let policy = engine
            .compile_with_entrypoint(&regorus::Rc::from(ENTRY))
            .map_err(|e| tracing::debug!("Rego VM compile: {e}"))
            .ok()?;
        let entry = [ENTRY];
        let program =
            regorus::languages::rego::compiler::Compiler::compile_from_policy(&policy, &entry)
                .map_err(|e| tracing::debug!("Rego VM compile: {e}"))
                .ok()?;
        Some(std::sync::Arc::new(Compiled { policy, program }))
    }

    /// Whether evaluation uses the virtual machine (else the interpreter).
    pub fn uses_vm(&self) -> bool {
        self.vm.is_some()
    }

    /// How many objects the VM could not evaluate (the interpreter did instead).
    pub fn vm_fallbacks(&self) -> usize {
        self.vm_fallbacks
    }

    /// Turns the virtual machine off, for comparing it with the interpreter.
    pub fn disable_vm(&mut self) {
        self.vm = None;
        self.compiled = None;
    }

    /// Whether any `deny`/`warn`/`violation` rule exists in the configured packages.
    pub fn has_targets(&self) -> bool {
        !self.targets.is_empty()
    }

    /// Number of policy files loaded.
    pub fn file_count(&self) -> usize {
        self.files
    }

    /// Sets `data.capstan` for the objects of one app: `app` (its name), `namespace` (its
    /// destination namespace or null), `objects` (all its objects) and `cluster` (facts computed
    /// across every app, see [`super::PolicyEngine`]).
    pub fn set_app(
        &mut self,
        app: &str,
        namespace: Option<&str>,
        objects: &[K8sObject],
        cluster: &Value,
    ) -> Result<(), RegoError> {
        let values: Vec<regorus::Value> = objects.iter().map(to_value).collect();
        self.set_app_values(app, namespace, &values, cluster)
    }

    /// [`Self::set_app`] with objects already converted by [`to_value`] (shared, not copied).
    pub fn set_app_values(
        &mut self,
        app: &str,
        namespace: Option<&str>,
        objects: &[regorus::Value],
        cluster: &Value,
    ) -> Result<(), RegoError> {
        let mut capstan = BTreeMap::new();
        capstan.insert(regorus::Value::from("app"), regorus::Value::from(app));
        capstan.insert(
            regorus::Value::from("namespace"),
            namespace
                .map(regorus::Value::from)
                .unwrap_or(regorus::Value::Null),
        );
        capstan.insert(
            regorus::Value::from("objects"),
            regorus::Value::from(objects.to_vec()),
        );
        capstan.insert(regorus::Value::from("cluster"), json_to_value(cluster));
        let mut data = BTreeMap::new();
        data.insert(
            regorus::Value::from("capstan"),
            regorus::Value::from(capstan),
        );
        let data = regorus::Value::from(data);
        if let Some(vm) = &mut self.vm
            && let Err(e) = vm.set_data(data.clone())
        {
            tracing::debug!("Rego VM refused the data, using the interpreter: {e}");
            self.vm = None;
        }
        self.engine.clear_data();
        self.engine
            .add_data(data)
            .map_err(|e| RegoError::Compile(e.to_string()))
    }

    /// Evaluates every target rule against one object.
    pub fn eval(&mut self, app: &str, obj: &K8sObject) -> Result<Vec<Finding>, RegoError> {
        self.eval_value(app, obj, to_value(obj))
    }

    /// [`Self::eval`] with the object already converted by [`to_value`].
    pub fn eval_value(
        &mut self,
        app: &str,
        obj: &K8sObject,
        input: regorus::Value,
    ) -> Result<Vec<Finding>, RegoError> {
        if let Some(vm) = &mut self.vm {
            vm.set_input(input.clone());
        }
        self.engine.set_input(input);
        let mut out = Vec::new();
        let from_vm: Option<Vec<regorus::Value>> = self
            .vm
            .as_mut()
            .and_then(|vm| vm.execute_entry_point_by_name(ENTRY).ok())
            .and_then(|v| {
                v.as_array()
                    .ok()
                    .map(|a| a.iter().cloned().collect::<Vec<_>>())
            })
            .filter(|a| a.len() == self.targets.len());
        if self.vm.is_some() && from_vm.is_none() {
            self.vm_fallbacks += 1;
        }
        for (i, (path, pkg, rule, sev)) in self.targets.iter().enumerate() {
            let from_vm = from_vm.as_ref().map(|a| a[i].clone());
            let result = match from_vm {
                Some(v) => v,
                None => self
                    .engine
                    .eval_rule(path.clone())
                    .map_err(|e| RegoError::Eval {
                        rule: path.clone(),
                        object: obj.id.to_string(),
                        message: e.to_string(),
                    })?,
            };
            if result == regorus::Value::Undefined {
                continue;
            }
            if result.as_set().is_ok_and(|set| set.is_empty()) {
                continue;
            }
            let json = serde_json::to_value(&result).unwrap_or(Value::Null);
            let items: Vec<Value> = match json {
                Value::Array(a) => a,
                Value::Null => Vec::new(),
                // A complete rule (`deny := "x"`) or a boolean; conftest reports strings only.
                Value::String(_) | Value::Object(_) => vec![json],
                _ => Vec::new(),
            };
            for item in items {
                out.push(to_finding(&item, pkg, rule, *sev, app).on(&obj.id));
            }
        }
        Ok(out)
    }

    /// Runs every `test_*` rule of every package (like `opa test`).
    pub fn run_tests(&mut self) -> Vec<TestOutcome> {
        let mut out = Vec::new();
        self.engine.set_input(regorus::Value::new_object());
        let rules = match self.test_rules() {
            Ok(r) => r,
            Err(e) => {
                return vec![TestOutcome {
                    name: "(load)".into(),
                    passed: false,
                    error: Some(e),
                }];
            }
        };
        for rule in rules {
            let result = self.engine.eval_rule(rule.clone());
            let (passed, error) = match result {
                Ok(v) => (v == regorus::Value::from(true), None),
                Err(e) => (false, Some(e.to_string())),
            };
            out.push(TestOutcome {
                name: rule,
                passed,
                error,
            });
        }
        out
    }

    fn test_rules(&mut self) -> Result<Vec<String>, String> {
        Ok(self.test_rules.iter().cloned().collect())
    }
}

/// `test_*` rule heads of a file: rules start at column 0 in every formatter's output, which
/// keeps this independent of the AST representation.
fn scan_test_rules(text: &str, out: &mut BTreeSet<String>) {
    let mut pkg = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("package ") {
            pkg = Some(rest.trim().to_string());
        } else if line.starts_with("test_")
            && let Some(pkg) = &pkg
        {
            let name: String = line
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            out.insert(format!("data.{pkg}.{name}"));
        }
    }
}

impl Clone for RegoPolicies {
    fn clone(&self) -> Self {
        RegoPolicies {
            engine: self.engine.clone(),
            compiled: self.compiled.clone(),
            vm: self.compiled.as_ref().map(|c| new_vm(c)),
            vm_fallbacks: 0,
            targets: self.targets.clone(),
            files: self.files,
            test_rules: self.test_rules.clone(),
        }
    }
}

fn new_vm(c: &Compiled) -> regorus::rvm::RegoVM {
    let mut vm = regorus::rvm::RegoVM::new_with_policy(c.policy.clone());
    vm.load_program(c.program.clone());
    vm
}

/// Converts an object for regorus once; the result is shared (reference-counted) between `input`
/// and `data.capstan.objects`.
pub fn to_value(obj: &K8sObject) -> regorus::Value {
    json_to_value(&obj.value)
}

/// A direct conversion: going through serde would deep-copy the JSON first.
fn json_to_value(v: &Value) -> regorus::Value {
    match v {
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
        Value::Array(a) => regorus::Value::from(a.iter().map(json_to_value).collect::<Vec<_>>()),
        Value::Object(m) => regorus::Value::from(
            m.iter()
                .map(|(k, v)| (regorus::Value::from(k.as_str()), json_to_value(v)))
                .collect::<BTreeMap<_, _>>(),
        ),
    }
}

/// One `test_*` rule's result.
#[derive(Clone, Debug)]
pub struct TestOutcome {
    pub name: String,
    pub passed: bool,
    pub error: Option<String>,
}

/// Adds one file, returning its package (`data.main`).
fn add_policy(engine: &mut regorus::Engine, f: &PolicyFile) -> Result<String, RegoError> {
    engine.set_rego_v0(false);
    let v1 = match engine.add_policy(f.path.clone(), f.text.clone()) {
        Ok(pkg) => return Ok(pkg),
        Err(e) => e.to_string(),
    };
    engine.set_rego_v0(true);
    let v0 = match engine.add_policy(f.path.clone(), f.text.clone()) {
        Ok(pkg) => {
            engine.set_rego_v0(false);
            return Ok(pkg);
        }
        Err(e) => e.to_string(),
    };
    engine.set_rego_v0(false);
    // Report the attempt that got further into the file: that is the syntax the author meant.
    let (l1, l0) = (error_line(&v1, &f.path), error_line(&v0, &f.path));
    // On a tie, a file without any v1 keyword was written for v0.
    let looks_v1 = ["rego.v1", " if ", " if{", "contains "]
        .iter()
        .any(|k| f.text.contains(k));
    let (line, message) = if l0 > l1 || (l0 == l1 && !looks_v1) {
        (l0, v0)
    } else {
        (l1, v1)
    };
    Err(RegoError::Syntax {
        file: f.path.clone(),
        line,
        message: first_line(&message),
    })
}

/// regorus errors start with `path:line:col: error: …`.
fn error_line(message: &str, path: &str) -> usize {
    message
        .find(&format!("{path}:"))
        .map(|i| &message[i + path.len() + 1..])
        .and_then(|rest| rest.split(':').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The `error: …` line of a regorus message (which also quotes the source), else its first
/// non-empty line.
fn first_line(message: &str) -> String {
    let lines = || message.lines().map(str::trim).filter(|l| !l.is_empty());
    lines()
        .find_map(|l| l.strip_prefix("error: "))
        .or_else(|| lines().next())
        .unwrap_or(message)
        .to_string()
}

fn to_finding(item: &Value, pkg: &str, rule: &str, sev: Severity, app: &str) -> Finding {
    let default_id = format!("{pkg}.{rule}");
    match item {
        Value::Object(o) => {
            let id = o
                .get("rule")
                .or_else(|| o.get("id"))
                .and_then(Value::as_str)
                .unwrap_or(&default_id);
            let msg = o
                .get("msg")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| item.to_string());
            let mut f = Finding::new(id, sev, app, msg);
            if let Some(field) = o.get("field").and_then(Value::as_str) {
                f = f.at_field(field);
            }
            if let Some(doc) = o.get("doc").and_then(Value::as_str) {
                f.doc = doc.to_string();
            }
            f
        }
        Value::String(s) => Finding::new(&default_id, sev, app, s.clone()),
        other => Finding::new(&default_id, sev, app, other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn file(path: &str, text: &str) -> PolicyFile {
        PolicyFile {
            path: path.into(),
            text: text.into(),
        }
    }

    fn obj(yaml: &str) -> K8sObject {
        crate::objects::parse_stream(yaml, "t.yaml")
            .unwrap()
            .remove(0)
    }

    #[test]
    fn both_syntaxes_load_and_report() {
        let v0 = file(
            "p/v0.rego",
            "package main\n\ndeny[msg] {\n  input.kind == \"Pod\"\n  msg := \"v0 says no\"\n}\n",
        );
        let v1 = file(
            "p/v1.rego",
            "package main\n\nwarn contains msg if {\n  input.kind == \"Pod\"\n  msg := \"v1 warns\"\n}\n",
        );
        let mut p = RegoPolicies::load(&[v0, v1], &["main".into()], false).unwrap();
        let f = p
            .eval(
                "app",
                &obj("apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n"),
            )
            .unwrap();
        let got: Vec<_> = f
            .iter()
            .map(|f| (f.severity, f.message.as_str(), f.rule.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (Severity::Deny, "v0 says no", "main.deny"),
                (Severity::Warn, "v1 warns", "main.warn")
            ]
        );
        let none = p
            .eval(
                "app",
                &obj("apiVersion: v1\nkind: Service\nmetadata: {name: x}\n"),
            )
            .unwrap();
        assert!(none.is_empty());
    }

    #[test]
    fn syntax_errors_name_file_and_line() {
        let bad = file(
            "policies/bad.rego",
            "package main\n\ndeny contains msg if {\n  input.kind == \n}\n",
        );
        let err = RegoPolicies::load(&[bad], &["main".into()], false)
            .err()
            .unwrap();
        match &err {
            RegoError::Syntax { file, line, .. } => {
                assert_eq!(file, "policies/bad.rego");
                assert!(*line >= 4, "{err}");
            }
            other => panic!("unexpected {other}"),
        }
        assert!(err.to_string().starts_with("policies/bad.rego:"), "{err}");
        let RegoError::Syntax { message, .. } = &err else {
            unreachable!()
        };
        assert!(!message.is_empty(), "{err}");
    }

    #[test]
    fn syntax_errors_in_conftest_syntax_name_the_line_of_the_v0_parse() {
        let bad = file("old.rego", "package main\ndeny[msg] {\n  msg := \n}\n");
        let err = RegoPolicies::load(&[bad], &["main".into()], false)
            .err()
            .unwrap();
        let RegoError::Syntax { line, message, .. } = &err else {
            panic!("{err}")
        };
        assert_eq!(*line, 2, "{err}");
        assert_eq!(message, "expecting }", "{err}");
    }

    #[test]
    fn data_capstan_gives_the_app_context() {
        let p = file(
            "p.rego",
            "package main\nimport rego.v1\ndeny contains msg if {\n  count(data.capstan.objects) > 1\n  msg := sprintf(\"%s has %d objects\", [data.capstan.app, count(data.capstan.objects)])\n}\n",
        );
        let mut p = RegoPolicies::load(&[p], &["main".into()], false).unwrap();
        let objs = vec![
            obj("apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n"),
            obj("apiVersion: v1\nkind: Pod\nmetadata: {name: y}\n"),
        ];
        p.set_app("shop", None, &objs, &serde_json::json!({}))
            .unwrap();
        let f = p.eval("shop", &objs[0]).unwrap();
        assert_eq!(f[0].message, "shop has 2 objects");
    }

    #[test]
    fn structured_results_carry_rule_id_and_field() {
        let p = file(
            "p.rego",
            "package custom\ndeny contains {\"msg\": \"m\", \"rule\": \"my-rule\", \"field\": \"spec.x\"} if input.kind == \"Pod\"\n",
        );
        let mut p = RegoPolicies::load(&[p], &["custom".into()], false).unwrap();
        let f = p
            .eval(
                "a",
                &obj("apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n"),
            )
            .unwrap();
        assert_eq!(f[0].rule, "my-rule");
        assert_eq!(f[0].field.as_deref(), Some("spec.x"));
    }

    #[test]
    fn test_rules_run_and_fail_visibly() {
        let p = file(
            "p_test.rego",
            "package main\nimport rego.v1\ntest_ok if { 1 == 1 }\ntest_bad if { 1 == 2 }\n",
        );
        let mut p = RegoPolicies::load(&[p], &["main".into()], true).unwrap();
        let r = p.run_tests();
        let got: Vec<_> = r.iter().map(|t| (t.name.as_str(), t.passed)).collect();
        assert_eq!(
            got,
            vec![("data.main.test_bad", false), ("data.main.test_ok", true)]
        );
    }
}
