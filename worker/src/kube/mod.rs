//! Kubernetes server-side dry-run: every object a pull request changes is applied at head with
//! server-side apply and `dryRun=All`, so the API server runs defaulting, validation, admission
//! webhooks and ValidatingAdmissionPolicies, and checks immutable fields, without persisting
//! anything. That is what ArgoCD's client-side dry run never exercises.
//!
//! [`KubeDryRun`] is a [`ClusterCheck`]. It never writes: every request it sends carries
//! `dryRun=All` (kube's `PatchParams::dry_run`), and it only sends PATCH requests for objects the
//! pull request changed. Refusals become findings (see [`rejections`]); a cluster that cannot be
//! reached becomes a note.

pub mod rejections;

use std::collections::HashMap;
use std::time::Duration;

use ::kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use ::kube::core::params::ValidationDirective;
use ::kube::discovery::{self, Scope};
use ::kube::{Client, Config};
use tokio::sync::OnceCell;
use tracing::{instrument, warn};

use crate::objects::{K8sObject, ObjectId};
use crate::services::{ClusterCheck, ClusterCheckRequest, ClusterFindings};
use rejections::Rejection;

/// Server-side apply field manager; visible in `managedFields` of the (dry-run) result only.
pub const FIELD_MANAGER: &str = "capstan";

/// Where the cluster's connection settings come from.
enum Source {
    /// kubeconfig (`KUBECONFIG`, `~/.kube/config`) or the in-cluster service account.
    Infer,
    Given(Box<Config>),
}

/// The server-side dry-run check.
pub struct KubeDryRun {
    source: Source,
    /// Built on first use (inferring the config is async); the error is kept and reported.
    client: OnceCell<Result<Client, String>>,
    timeout: Duration,
}

impl std::fmt::Debug for KubeDryRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeDryRun").finish_non_exhaustive()
    }
}

/// Whether a kubeconfig or an in-cluster service account is present (`--kube-dry-run auto`).
pub fn config_present() -> bool {
    let in_cluster = std::env::var_os("KUBERNETES_SERVICE_HOST").is_some()
        && std::path::Path::new("/var/run/secrets/kubernetes.io/serviceaccount/token").exists();
    let kubeconfig_env = std::env::var_os("KUBECONFIG")
        .is_some_and(|v| std::env::split_paths(&v).any(|p| p.is_file()));
    let home = std::env::var_os("HOME")
        .map(|h| std::path::Path::new(&h).join(".kube/config").is_file())
        .unwrap_or(false);
    in_cluster || kubeconfig_env || home
}

impl KubeDryRun {
    /// From the kubeconfig or in-cluster config, resolved at first use.
    pub fn infer() -> KubeDryRun {
        KubeDryRun {
            source: Source::Infer,
            client: OnceCell::new(),
            timeout: Duration::from_secs(20),
        }
    }

    /// From an explicit config (tests, or a cluster URL given some other way).
    pub fn with_config(config: Config) -> KubeDryRun {
        KubeDryRun {
            source: Source::Given(Box::new(config)),
            client: OnceCell::new(),
            timeout: Duration::from_secs(20),
        }
    }

    /// Per-request connect and read timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> KubeDryRun {
        self.timeout = timeout;
        self
    }

    async fn client(&self) -> Result<Client, String> {
        self.client
            .get_or_init(|| async {
                crate::forge::github::install_crypto_provider();
                let mut config = match &self.source {
                    Source::Given(c) => (**c).clone(),
                    Source::Infer => Config::infer()
                        .await
                        .map_err(|e| format!("no usable kubeconfig or in-cluster config: {e}"))?,
                };
                config.connect_timeout = Some(self.timeout);
                config.read_timeout = Some(self.timeout);
                config.write_timeout = Some(self.timeout);
                Client::try_from(config).map_err(|e| format!("building the client: {e}"))
            })
            .await
            .clone()
    }
}

/// The order objects are applied in: namespaces and CRDs first, as a sync would.
fn apply_rank(o: &K8sObject) -> u8 {
    match (o.id.group.as_str(), o.id.kind.as_str()) {
        ("", "Namespace") => 0,
        ("apiextensions.k8s.io", "CustomResourceDefinition") => 1,
        _ => 2,
    }
}

/// (group, kind) pairs defined by CRDs among `objects`.
fn crd_kinds(objects: &[K8sObject]) -> Vec<(String, String)> {
    objects
        .iter()
        .filter(|o| o.id.kind == "CustomResourceDefinition")
        .filter_map(|o| {
            let group = o.value.pointer("/spec/group")?.as_str()?;
            let kind = o.value.pointer("/spec/names/kind")?.as_str()?;
            Some((group.to_string(), kind.to_string()))
        })
        .collect()
}

enum Outcome {
    Accepted,
    Rejected(Rejection),
    /// The cluster could not be asked; stop for this app.
    Unreachable(String),
}

fn classify(e: ::kube::Error) -> Result<Box<::kube::core::Status>, String> {
    match e {
        ::kube::Error::Api(s) => Ok(s),
        other => Err(other.to_string()),
    }
}

impl KubeDryRun {
    async fn resource(
        &self,
        client: &Client,
        cache: &mut HashMap<(String, String), Option<(ApiResource, Scope)>>,
        o: &K8sObject,
    ) -> Result<Option<(ApiResource, Scope)>, String> {
        let key = (o.api_version.clone(), o.id.kind.clone());
        if let Some(hit) = cache.get(&key) {
            return Ok(hit.clone());
        }
        let version = o
            .api_version
            .rsplit_once('/')
            .map(|(_, v)| v)
            .unwrap_or(&o.api_version);
        let gvk = GroupVersionKind::gvk(&o.id.group, version, &o.id.kind);
        let found = match discovery::pinned_kind(client, &gvk).await {
            Ok((ar, caps)) => Some((ar, caps.scope)),
            Err(::kube::Error::Discovery(_)) => None,
            Err(e) => match classify(e)? {
                s if s.code == 404 => None,
                s => return Err(format!("discovery of {}: {}", o.api_version, s.message)),
            },
        };
        cache.insert(key, found.clone());
        Ok(found)
    }

    async fn dry_run_apply(
        &self,
        client: &Client,
        cache: &mut HashMap<(String, String), Option<(ApiResource, Scope)>>,
        o: &K8sObject,
        crds_here: &[(String, String)],
        namespaces_here: &[String],
        notes: &mut Vec<String>,
    ) -> Outcome {
        let (ar, scope) = match self.resource(client, cache, o).await {
            Ok(Some(r)) => r,
            Ok(None) => {
                let here = crds_here
                    .iter()
                    .any(|(g, k)| *g == o.id.group && *k == o.id.kind);
                return Outcome::Rejected(rejections::unknown_kind(&o.id, &o.api_version, here));
            }
            Err(e) => return Outcome::Unreachable(e),
        };
        let api: Api<DynamicObject> = match (&scope, &o.id.namespace) {
            (Scope::Cluster, _) => Api::all_with(client.clone(), &ar),
            (Scope::Namespaced, Some(ns)) => Api::namespaced_with(client.clone(), ns, &ar),
            (Scope::Namespaced, None) => {
                notes.push(format!(
                    "kube dry-run: {} has no namespace; checked in the client's default namespace",
                    o.id
                ));
                Api::default_namespaced_with(client.clone(), &ar)
            }
        };
        let params = PatchParams::apply(FIELD_MANAGER)
            .force()
            .dry_run()
            .validation(ValidationDirective::Strict);
        match api
            .patch(&o.id.name, &params, &Patch::Apply(&o.value))
            .await
        {
            Ok(_) => Outcome::Accepted,
            Err(e) => match classify(e) {
                Ok(status) => {
                    Outcome::Rejected(rejections::from_status(&o.id, &status, namespaces_here))
                }
                Err(e) => Outcome::Unreachable(e),
            },
        }
    }
}

#[async_trait::async_trait]
impl ClusterCheck for KubeDryRun {
    fn name(&self) -> &'static str {
        "kube-dry-run"
    }

    #[instrument(name = "kube_dry_run", skip_all, fields(app = %req.app, head = %req.head_sha))]
    async fn check_app(&self, req: &ClusterCheckRequest<'_>) -> ClusterFindings {
        let mut out = ClusterFindings::default();
        let changed: Vec<&ObjectId> = req.changed.iter().collect();
        let mut objects: Vec<&K8sObject> = req
            .head_objects
            .iter()
            .filter(|o| changed.contains(&&o.id))
            .collect();
        if objects.is_empty() {
            return out;
        }
        objects.sort_by_key(|o| apply_rank(o));
        let client = match self.client().await {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "kube dry-run unavailable");
                out.notes.push(format!("kube dry-run not run: {e}"));
                return out;
            }
        };
        let crds_here = crd_kinds(req.head_objects);
        let namespaces_here: Vec<String> = req
            .head_objects
            .iter()
            .filter(|o| o.id.group.is_empty() && o.id.kind == "Namespace")
            .map(|o| o.id.name.clone())
            .collect();
        let mut cache = HashMap::new();
        let (mut accepted, mut rejected) = (0usize, 0usize);
        for o in objects {
            match self
                .dry_run_apply(
                    &client,
                    &mut cache,
                    o,
                    &crds_here,
                    &namespaces_here,
                    &mut out.notes,
                )
                .await
            {
                Outcome::Accepted => accepted += 1,
                Outcome::Rejected(Rejection::Finding(f)) => {
                    rejected += 1;
                    out.findings.push(f);
                }
                Outcome::Rejected(Rejection::Note(n)) => out.notes.push(n),
                Outcome::Unreachable(e) => {
                    warn!(error = %e, "kube dry-run stopped");
                    out.notes.push(format!(
                        "kube dry-run stopped: the cluster could not be asked: {e}"
                    ));
                    return out;
                }
            }
        }
        out.notes.push(format!(
            "kube dry-run: {accepted} accepted, {rejected} rejected"
        ));
        out
    }
}

impl KubeDryRun {
    /// A cluster at `url` reached without credentials (a local proxy such as `kubectl proxy`, or
    /// a test's mock API server).
    pub fn for_url(url: &str) -> Result<KubeDryRun, String> {
        let uri = url
            .parse()
            .map_err(|e| format!("cluster URL {url:?}: {e}"))?;
        Ok(KubeDryRun::with_config(Config::new(uri)))
    }
}
