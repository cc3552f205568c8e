//! The parts of ArgoCD's API objects Capstan reads or sends, named as in ArgoCD's swagger
//! (`v1alpha1Application`, `repositoryManifestResponse`, `applicationManagedResourcesResponse`,
//! `applicationApplicationSyncRequest`). Everything else in a response is ignored, and every field
//! is optional because ArgoCD omits empty ones.

use serde::{Deserialize, Serialize};

use crate::objects::ObjectId;

/// `v1alpha1Application`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Application {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: ApplicationSpec,
    /// The requested operation; set until the controller finishes it.
    pub operation: Option<serde_json::Value>,
    #[serde(default)]
    pub status: ApplicationStatus,
}

/// `v1ObjectMeta`, the name only.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ObjectMeta {
    #[serde(default)]
    pub name: String,
}

/// `v1alpha1ApplicationList`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ApplicationList {
    /// ArgoCD sends `null` rather than `[]` when no Application is visible.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub items: Vec<Application>,
}

fn null_as_empty<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// `v1alpha1ApplicationSpec`: a single `source` or several `sources`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationSpec {
    /// The AppProject; ArgoCD treats an empty one as `default`.
    #[serde(default)]
    pub project: Option<String>,
    pub source: Option<ApplicationSource>,
    #[serde(default)]
    pub sources: Vec<ApplicationSource>,
}

/// `v1alpha1ApplicationSource`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationSource {
    #[serde(rename = "repoURL", default)]
    pub repo_url: String,
    pub path: Option<String>,
    pub chart: Option<String>,
    pub target_revision: Option<String>,
}

/// `v1alpha1ApplicationStatus`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationStatus {
    pub sync: Option<SyncStatus>,
    pub health: Option<HealthStatus>,
    pub operation_state: Option<OperationState>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub conditions: Vec<ApplicationCondition>,
}

/// `v1alpha1ApplicationCondition`: usually an error or a warning about the app.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ApplicationCondition {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub message: Option<String>,
}

/// `v1alpha1SyncStatus`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct SyncStatus {
    pub status: Option<String>,
}

/// `v1alpha1AppHealthStatus`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct HealthStatus {
    pub status: Option<String>,
    pub message: Option<String>,
}

/// `v1alpha1OperationState`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OperationState {
    pub phase: Option<String>,
    pub message: Option<String>,
    pub started_at: Option<String>,
    pub sync_result: Option<SyncOperationResult>,
}

impl OperationState {
    /// `Succeeded`, `Failed` and `Error` end an operation; `Running` and `Terminating` do not.
    pub fn is_final(&self) -> bool {
        matches!(
            self.phase.as_deref(),
            Some("Succeeded" | "Failed" | "Error")
        )
    }
}

/// `v1alpha1SyncOperationResult`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncOperationResult {
    #[serde(default)]
    pub resources: Vec<ResourceResult>,
    pub revision: Option<String>,
    #[serde(default)]
    pub revisions: Vec<String>,
}

/// The identity fields ArgoCD repeats in every per-resource type; the namespace is empty for
/// cluster-scoped objects.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ResourceRef {
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub name: String,
}

impl ResourceRef {
    pub fn object_id(&self) -> ObjectId {
        ObjectId {
            group: self.group.clone(),
            kind: self.kind.clone(),
            namespace: Some(self.namespace.clone()).filter(|n| !n.is_empty()),
            name: self.name.clone(),
        }
    }
}

/// `v1alpha1ResourceResult`: what the sync did (or, dry, would do) to one object.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceResult {
    #[serde(flatten)]
    pub resource: ResourceRef,
    /// `Synced`, `SyncFailed`, `Pruned`, `PruneSkipped`, `OutOfSync`.
    pub status: Option<String>,
    pub message: Option<String>,
    pub hook_phase: Option<String>,
    pub sync_phase: Option<String>,
}

impl ResourceResult {
    /// A resource the sync could not apply: `SyncFailed`, or a hook that failed or errored.
    pub fn failed(&self) -> bool {
        self.status.as_deref() == Some("SyncFailed")
            || matches!(self.hook_phase.as_deref(), Some("Failed" | "Error"))
    }
}

/// `repositoryManifestResponse`: each manifest is one object as a JSON string.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ManifestResponse {
    #[serde(default)]
    pub manifests: Vec<String>,
    pub revision: Option<String>,
}

/// `applicationManagedResourcesResponse`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ManagedResourcesResponse {
    #[serde(default)]
    pub items: Vec<ResourceDiff>,
}

/// `v1alpha1ResourceDiff`: the states are JSON strings; `normalizedLiveState` is `"null"` or
/// absent for objects that do not exist in the cluster yet.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceDiff {
    #[serde(flatten)]
    pub resource: ResourceRef,
    pub normalized_live_state: Option<String>,
    pub target_state: Option<String>,
    pub predicted_live_state: Option<String>,
    #[serde(default)]
    pub hook: bool,
}

/// `applicationApplicationSyncRequest`, the fields Capstan sets.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncRequest {
    pub name: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub revisions: Vec<String>,
    /// 1-based positions in `spec.sources` that `revisions` apply to (int64 as strings, as the
    /// gateway encodes them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub source_positions: Vec<String>,
    pub prune: bool,
}

/// `runtimeError`, the body of every non-2xx answer.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct RuntimeError {
    pub error: Option<String>,
    pub message: Option<String>,
    pub code: Option<i64>,
}
