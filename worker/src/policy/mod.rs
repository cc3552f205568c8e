//! Policy engine: one pass over every app's rendered objects, three layers, one findings format.
//!
//! 1. Built-in checks: strict schema validation ([`schema`]), removed and deprecated apiVersions
//!    for the target Kubernetes version ([`deprecations`]), and checks across apps ([`cross_app`]).
//! 2. Rego policies, conftest style ([`rego`]): the shipped bundle (`policies/`, embedded in the
//!    binary, see [`bundle`]) plus the repository's own folders named in `.capstan.yaml`.
//! 3. Exceptions ([`exceptions`]) turn findings off with a reason, and are always reported.
//!
//! Findings point at the file and line to change when [`trace`] can find it.
//!
//! Policy sources are passed in explicitly ([`PolicySources`]): when judging a pull request the
//! caller reads them from the default branch, so a PR cannot relax the rules that judge it.

pub mod bench;
pub mod bundle;
pub mod config;
pub mod cross_app;
pub mod deprecations;
pub mod exceptions;
pub mod findings;
pub mod format;
pub mod rego;
pub mod schema;
pub mod source;
pub mod trace;

use std::collections::{BTreeSet, HashMap};

use serde_json::Value;

use crate::settings::{PolicySection, RepoSettings, SettingsError};
use config::PolicySettings;
use findings::{Finding, Report, Severity};
use rego::{PolicyFile, RegoError, RegoPolicies};
use schema::{SchemaError, SchemaSet};
use trace::{SourceFile, Tracer};

use crate::objects::K8sObject;
use crate::repo_fs::{EntryKind, FsError, RepoFs, RepoPath};

pub const RULE_SCHEMA: &str = "schema";
pub const RULE_UNKNOWN_KIND: &str = "unknown-kind";
pub const RULE_BAD_CRD: &str = "invalid-crd";
pub const RULE_REGO_ERROR: &str = "rego-error";

/// One app as the policy engine sees it: its rendered objects and the files they came from.
#[derive(Clone, Debug, Default)]
pub struct AppInput {
    pub name: String,
    pub objects: Vec<K8sObject>,
    /// The app's input files (kustomizations, resources, patches), for file:line tracing.
    pub files: Vec<SourceFile>,
    /// Where objects without a namespace land (the ArgoCD destination namespace).
    pub destination_namespace: Option<String>,
    /// Whether deploying the app creates its destination namespace (`CreateNamespace=true`).
    pub creates_namespace: bool,
    /// The destination cluster; apps on different clusters never conflict. `None` = the default.
    pub cluster: Option<String>,
}

/// Policy inputs read from one commit: the `policy:` section of its `.capstan.yaml` and the files
/// under the configured policy folders.
#[derive(Clone, Debug, Default)]
pub struct PolicySources {
    pub settings: PolicySection,
    pub files: Vec<PolicyFile>,
}

/// Why the policy engine could not run.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error(transparent)]
    Schema(#[from] SchemaError),
    #[error(transparent)]
    Rego(#[from] RegoError),
    #[error("reading policy sources: {0}")]
    Fs(#[from] FsError),
}

/// Largest policy folder walked, so a misconfigured path cannot read the whole repository.
const MAX_POLICY_FILES: usize = 2000;

impl PolicySources {
    /// Parses `.capstan.yaml` of `fs` and reads its policy files (see [`PolicySources::read_with`]).
    pub fn read(fs: &dyn RepoFs) -> Result<Self, PolicyError> {
        let (repo, _) = RepoSettings::from_tree(fs)?;
        Self::read_with(fs, &repo.policy)
    }

    /// Every `.rego` / `schemas/*.yaml` file under the folders `section` names, from `fs` — for a
    /// pull request, a view of the default branch (where `section` was read too).
    pub fn read_with(fs: &dyn RepoFs, section: &PolicySection) -> Result<Self, PolicyError> {
        let settings = PolicySettings::from_section(section)?;
        let mut files = Vec::new();
        for dir in &settings.paths {
            let root = RepoPath::new(dir)?;
            let mut stack = vec![root];
            while let Some(d) = stack.pop() {
                match fs.kind(&d)? {
                    Some(EntryKind::Dir) => {}
                    Some(EntryKind::File) => {
                        push_policy_file(fs, &d, &mut files)?;
                        continue;
                    }
                    None => return Err(FsError::NotFound(d.to_string()).into()),
                }
                for (name, kind) in fs.list_dir(&d)? {
                    let p = d.join(&name)?;
                    match kind {
                        EntryKind::Dir => stack.push(p),
                        EntryKind::File => push_policy_file(fs, &p, &mut files)?,
                    }
                    if files.len() > MAX_POLICY_FILES {
                        return Err(FsError::Backend {
                            path: dir.clone(),
                            message: format!("more than {MAX_POLICY_FILES} policy files"),
                        }
                        .into());
                    }
                }
            }
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(PolicySources {
            settings: section.clone(),
            files,
        })
    }
}

/// Facts across every app that Rego rules read as `data.capstan.cluster` (precomputed here so a
/// rule never scans every object for every object).
fn cluster_facts(apps: &[AppInput]) -> Value {
    let mut np = serde_json::Map::new();
    for app in apps {
        for o in &app.objects {
            if o.id.kind == "NetworkPolicy"
                && o.id.group == "networking.k8s.io"
                && let Some(ns) =
                    o.id.namespace
                        .as_ref()
                        .or(app.destination_namespace.as_ref())
            {
                np.insert(ns.clone(), Value::Bool(true));
            }
        }
    }
    serde_json::json!({ "networkPolicyNamespaces": np })
}

/// Schema validation; a SOPS-encrypted file's `sops` block is removed by decryption before the
/// object reaches the cluster, so it is not a schema error.
fn validate(schemas: &SchemaSet, obj: &K8sObject) -> Option<Vec<schema::Violation>> {
    if obj.value.get("sops").is_some() {
        let mut copy = obj.clone();
        if let Some(m) = copy.value.as_object_mut() {
            m.remove("sops");
        }
        return schemas.validate(&copy);
    }
    schemas.validate(obj)
}

fn push_policy_file(
    fs: &dyn RepoFs,
    p: &RepoPath,
    out: &mut Vec<PolicyFile>,
) -> Result<(), FsError> {
    let s = p.as_str();
    let is_schema = s.contains("/schemas/") && (s.ends_with(".yaml") || s.ends_with(".yml"));
    if s.ends_with(".rego") || is_schema {
        out.push(PolicyFile {
            path: s.to_string(),
            text: fs.read_to_string(p)?,
        });
    }
    Ok(())
}

/// Loaded settings, schemas and policies; check as many app sets as needed.
#[derive(Clone)]
pub struct PolicyEngine {
    settings: PolicySettings,
    schemas: SchemaSet,
    rego: RegoPolicies,
}

impl PolicyEngine {
    /// Loads the shipped bundle (unless disabled) and the repository's policy files. A repository
    /// file at the same path as a shipped one replaces it (a repo that vendors `policies/`).
    pub fn new(sources: &PolicySources) -> Result<Self, PolicyError> {
        let settings = PolicySettings::from_section(&sources.settings)?;
        let mut schemas = SchemaSet::builtin()?;
        let repo_paths: BTreeSet<&str> = sources.files.iter().map(|f| f.path.as_str()).collect();
        let mut files: Vec<PolicyFile> = Vec::new();
        if settings.shipped {
            for (path, text) in bundle::SHIPPED_POLICIES {
                if !repo_paths.contains(path) {
                    files.push(PolicyFile {
                        path: (*path).to_string(),
                        text: (*text).to_string(),
                    });
                }
            }
        }
        for f in &sources.files {
            if f.path.ends_with(".rego") {
                files.push(f.clone());
            } else {
                // Later definitions replace earlier ones by name, so a repository copy of a
                // shipped schema file wins.
                schemas.add_compact_yaml(&f.text, &f.path)?;
            }
        }
        let mut rego = RegoPolicies::load(&files, &settings.packages, false)?;
        // The VM is verified against the interpreter for the shipped bundle only.
        let only_shipped = files
            .iter()
            .all(|f| bundle::SHIPPED_POLICIES.contains(&(f.path.as_str(), f.text.as_str())));
        if !only_shipped || settings.packages != ["main"] {
            rego.disable_vm();
        }
        Ok(PolicyEngine {
            settings,
            schemas,
            rego,
        })
    }

    pub fn settings(&self) -> &PolicySettings {
        &self.settings
    }

    /// Number of Rego files loaded.
    pub fn rego_file_count(&self) -> usize {
        self.rego.file_count()
    }

    /// Whether Rego runs on regorus' virtual machine (the verified shipped bundle) or the
    /// interpreter.
    pub fn rego_uses_vm(&self) -> bool {
        self.rego.uses_vm()
    }

    /// Runs every layer over every app of a tree judged on its own: an annotation waiver applies
    /// when `policy.waivable` lists its rule.
    pub fn check(&self, apps: &[AppInput]) -> Result<Report, PolicyError> {
        self.check_change(apps, None)
    }

    /// [`PolicyEngine::check`] for a change: with `base`, an annotation waiver applies only when
    /// the base carried it on the same object too (a change never waives its own findings).
    pub fn check_change(
        &self,
        apps: &[AppInput],
        base: Option<&exceptions::BaseWaivers>,
    ) -> Result<Report, PolicyError> {
        let mut schemas = self.schemas.clone();
        let mut findings = Vec::new();
        for app in apps {
            for obj in &app.objects {
                if obj.id.group == "apiextensions.k8s.io"
                    && obj.id.kind == "CustomResourceDefinition"
                    && let Err(e) = schemas.add_crd(&obj.value)
                {
                    findings
                        .push(Finding::new(RULE_BAD_CRD, Severity::Warn, &app.name, e).on(&obj.id));
                }
            }
        }
        let cluster = cluster_facts(apps);
        // One evaluator per core, reused for every app.
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .clamp(1, 8);
        let mut workers: Vec<RegoPolicies> = (0..threads).map(|_| self.rego.clone()).collect();
        for app in apps {
            let mut unknown = BTreeSet::new();
            for obj in &app.objects {
                match validate(&schemas, obj) {
                    Some(violations) => {
                        for v in violations {
                            findings.push(
                                Finding::new(RULE_SCHEMA, Severity::Deny, &app.name, v.message)
                                    .on(&obj.id)
                                    .at_field(v.path),
                            );
                        }
                    }
                    None => {
                        if unknown.insert((obj.api_version.clone(), obj.id.kind.clone())) {
                            findings.push(
                                Finding::new(
                                    RULE_UNKNOWN_KIND,
                                    Severity::Warn,
                                    &app.name,
                                    format!(
                                        "no schema for {} {}: not validated (add its CRD to the repository or to policies/schemas)",
                                        obj.api_version, obj.id.kind
                                    ),
                                )
                                .on(&obj.id),
                            );
                        }
                    }
                }
                if let Some(f) = deprecations::check(obj, &app.name, self.settings.target_version) {
                    findings.push(f);
                }
            }
            findings.extend(self.eval_rego(app, &cluster, &mut workers)?);
        }
        findings.extend(cross_app::check(apps, &schemas, &self.settings));

        // Trace each finding to a file and line; only apps with findings pay for indexing.
        let with_findings: BTreeSet<&str> = findings.iter().map(|f| f.app.as_str()).collect();
        let tracers: HashMap<&str, (Tracer, HashMap<&crate::objects::ObjectId, &K8sObject>)> = apps
            .iter()
            .filter(|a| with_findings.contains(a.name.as_str()))
            .map(|a| {
                (
                    a.name.as_str(),
                    (
                        Tracer::new(&a.files),
                        a.objects.iter().map(|o| (&o.id, o)).collect(),
                    ),
                )
            })
            .collect();
        for f in &mut findings {
            if let (Some((tracer, objs)), Some(id)) = (tracers.get(f.app.as_str()), &f.object)
                && let Some(obj) = objs.get(id)
            {
                f.location = tracer.locate(obj, f.field.as_deref());
            }
        }

        let objects: Vec<(&str, &K8sObject)> = apps
            .iter()
            .flat_map(|a| a.objects.iter().map(move |o| (a.name.as_str(), o)))
            .collect();
        let (kept, suppressed) = exceptions::apply(
            findings,
            &objects,
            &exceptions::Scope {
                configured: &self.settings.exceptions,
                waivable: &self.settings.waivable,
                base,
            },
        );
        let mut report = Report {
            findings: kept,
            preexisting: Vec::new(),
            suppressed,
            objects_checked: objects.len(),
            apps: apps
                .iter()
                .map(|a| (a.name.clone(), a.objects.len()))
                .collect(),
        };
        report.normalize();
        Ok(report)
    }

    /// Evaluates the Rego layer for one app, splitting its objects across the available cores.
    fn eval_rego(
        &self,
        app: &AppInput,
        cluster: &Value,
        workers: &mut [RegoPolicies],
    ) -> Result<Vec<Finding>, PolicyError> {
        if app.objects.is_empty() || !self.rego.has_targets() {
            return Ok(Vec::new());
        }
        let threads = workers.len().min(app.objects.len().div_ceil(64)).max(1);
        let chunk = app.objects.len().div_ceil(threads);
        let values: Vec<regorus::Value> = app.objects.iter().map(rego::to_value).collect();
        let results: Vec<Result<Vec<Finding>, RegoError>> = std::thread::scope(|s| {
            let handles: Vec<_> = app
                .objects
                .chunks(chunk)
                .zip(values.chunks(chunk))
                .zip(workers.iter_mut())
                .map(|((objs, vals), rego)| {
                    let all = &values;
                    s.spawn(move || -> Result<Vec<Finding>, RegoError> {
                        rego.set_app_values(
                            &app.name,
                            app.destination_namespace.as_deref(),
                            all,
                            cluster,
                        )?;
                        let mut out = Vec::new();
                        for (obj, val) in objs.iter().zip(vals) {
                            match rego.eval_value(&app.name, obj, val.clone()) {
                                Ok(f) => out.extend(f),
                                // A policy that breaks on an object fails the check, visibly.
                                Err(e) => out.push(
                                    Finding::new(
                                        RULE_REGO_ERROR,
                                        Severity::Deny,
                                        &app.name,
                                        e.to_string(),
                                    )
                                    .on(&obj.id),
                                ),
                            }
                        }
                        Ok(out)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(RegoError::Compile(
                            "a policy evaluation thread panicked".into(),
                        ))
                    })
                })
                .collect()
        });
        let mut out = Vec::new();
        for r in results {
            out.extend(r?);
        }
        Ok(out)
    }
}
