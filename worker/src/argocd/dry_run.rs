//! ArgoCD's dry-run sync: `POST …/sync {dryRun: true}` makes the application controller run the
//! whole sync (hooks excluded) against the cluster with `kubectl apply --dry-run`, so it reports
//! what ArgoCD itself would do and which objects it would fail on.
//!
//! Opt-in per app: it needs `sync` permission and it *sets the app's operation*, so it shows up in
//! ArgoCD's history and waits behind (or blocks) a real sync.

use std::time::Duration;

use tracing::{debug, instrument};

use super::client::{ArgoClient, ArgoError, Revision};
use super::model::{Application, OperationState, SyncRequest};
use crate::report::{ReportFinding, Severity};

/// Rule id of findings from a dry-run sync.
pub const RULE_ID: &str = "argocd/dry-run";

#[derive(Clone, Debug)]
pub struct DryRunOptions {
    /// Time between polls of the app while the operation runs.
    pub poll_interval: Duration,
    /// Give up waiting after this long (the operation keeps running in ArgoCD).
    pub timeout: Duration,
    /// Ask for pruning too, so objects the PR deletes show as `Pruned`.
    pub prune: bool,
}

impl Default for DryRunOptions {
    fn default() -> Self {
        DryRunOptions {
            poll_interval: Duration::from_secs(2),
            timeout: Duration::from_secs(120),
            prune: true,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DryRunError {
    #[error(transparent)]
    Argo(#[from] ArgoError),
    #[error("dry-run sync of {app} did not finish within {secs}s (last phase: {phase})")]
    Timeout {
        app: String,
        secs: u64,
        phase: String,
    },
}

/// The finished dry run, summarised.
#[derive(Clone, Debug)]
pub struct DryRunOutcome {
    /// e.g. "Succeeded: 3 Synced, 1 Pruned" or "Failed: 2 Synced, 1 SyncFailed — <message>".
    pub summary: String,
    /// One deny finding per object the sync would fail on (or one for the app when the
    /// operation failed without naming an object).
    pub findings: Vec<ReportFinding>,
}

/// Starts a dry-run sync of `app` at `revision` and waits for it to finish. `before` is the
/// operation state read just before, so a finished *earlier* operation is not taken for this one.
#[instrument(skip_all, fields(app = %app))]
pub async fn dry_run_sync(
    client: &ArgoClient,
    app: &str,
    revision: &Revision,
    before: Option<&OperationState>,
    opts: &DryRunOptions,
) -> Result<DryRunOutcome, DryRunError> {
    let mut req = SyncRequest {
        name: app.to_string(),
        dry_run: true,
        prune: opts.prune,
        ..Default::default()
    };
    revision.apply(&mut req);
    client.sync(&req).await?;
    let started_before = before.and_then(|s| s.started_at.clone());
    let deadline = tokio::time::Instant::now() + opts.timeout;
    let mut phase = String::from("not started");
    loop {
        let current: Application = client.application(app).await?;
        if let Some(state) = current.status.operation_state.as_ref() {
            let ours = state.started_at != started_before || started_before.is_none();
            if ours {
                phase = state.phase.clone().unwrap_or_else(|| "unknown".into());
                debug!(phase = %phase, "dry-run operation");
                if state.is_final() && current.operation.is_none() {
                    return Ok(summarize(app, state));
                }
            }
        }
        if tokio::time::Instant::now() + opts.poll_interval > deadline {
            return Err(DryRunError::Timeout {
                app: app.to_string(),
                secs: opts.timeout.as_secs(),
                phase,
            });
        }
        tokio::time::sleep(opts.poll_interval).await;
    }
}

/// Counts the per-object results and turns failures into findings.
pub fn summarize(app: &str, state: &OperationState) -> DryRunOutcome {
    let phase = state.phase.as_deref().unwrap_or("unknown");
    let resources = state
        .sync_result
        .as_ref()
        .map(|r| r.resources.as_slice())
        .unwrap_or_default();
    // In the order ArgoCD lists them (sync waves), not alphabetically.
    let mut counts: Vec<(&str, usize)> = Vec::new();
    let mut findings = Vec::new();
    for r in resources {
        let status = r.status.as_deref().unwrap_or("Unknown");
        match counts.iter_mut().find(|(s, _)| *s == status) {
            Some((_, n)) => *n += 1,
            None => counts.push((status, 1)),
        }
        if r.failed() {
            let mut message = r.message.clone().unwrap_or_else(|| "sync failed".into());
            if let Some(p) = r.sync_phase.as_deref() {
                message = format!("{message} (phase {p})");
            }
            findings.push(ReportFinding {
                rule_id: RULE_ID.into(),
                severity: Severity::Deny,
                object: r.resource.object_id().to_string(),
                file: None,
                line: None,
                message,
            });
        }
    }
    let failed_phase = matches!(phase, "Failed" | "Error");
    if failed_phase && findings.is_empty() {
        findings.push(ReportFinding {
            rule_id: RULE_ID.into(),
            severity: Severity::Deny,
            object: format!("Application {app}"),
            file: None,
            line: None,
            message: state
                .message
                .clone()
                .unwrap_or_else(|| format!("dry-run sync {phase}")),
        });
    }
    let mut summary = format!("{phase}: ");
    if counts.is_empty() {
        summary.push_str("no resources");
    } else {
        let parts: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
        summary.push_str(&parts.join(", "));
    }
    if failed_phase && let Some(m) = state.message.as_deref().filter(|m| !m.is_empty()) {
        summary.push_str(" — ");
        summary.push_str(m);
    }
    DryRunOutcome { summary, findings }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn state(v: serde_json::Value) -> OperationState {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn counts_per_status_and_a_finding_per_failed_object() {
        let s = state(json!({
            "phase": "Failed",
            "message": "one or more objects failed to apply",
            "syncResult": {"resources": [
                {"group": "apps", "kind": "Deployment", "namespace": "shop", "name": "web", "status": "Synced", "message": "deployment.apps/web configured (dry run)", "syncPhase": "Sync"},
                {"group": "", "kind": "Service", "namespace": "shop", "name": "web", "status": "SyncFailed", "message": "Service \"web\" is invalid: spec.clusterIP: field is immutable", "syncPhase": "Sync"},
                {"group": "", "kind": "ConfigMap", "namespace": "shop", "name": "old", "status": "Pruned", "message": "pruned (dry run)"}
            ]}
        }));
        let out = summarize("shop", &s);
        assert_eq!(
            out.summary,
            "Failed: 1 Synced, 1 SyncFailed, 1 Pruned — one or more objects failed to apply"
        );
        assert_eq!(out.findings.len(), 1);
        let f = &out.findings[0];
        assert_eq!(f.object, "Service shop/web");
        assert_eq!(f.rule_id, RULE_ID);
        assert!(
            f.message.contains("field is immutable (phase Sync)"),
            "{}",
            f.message
        );
    }

    #[test]
    fn a_failed_operation_without_objects_is_one_app_finding() {
        let s = state(json!({"phase": "Error", "message": "ComparisonError: rpc error"}));
        let out = summarize("shop", &s);
        assert_eq!(
            out.summary,
            "Error: no resources — ComparisonError: rpc error"
        );
        assert_eq!(out.findings[0].object, "Application shop");
    }

    #[test]
    fn success_has_no_findings() {
        let s = state(json!({"phase": "Succeeded", "syncResult": {"resources": [
            {"kind": "ConfigMap", "namespace": "shop", "name": "a", "status": "Synced"}]}}));
        let out = summarize("shop", &s);
        assert_eq!(out.summary, "Succeeded: 1 Synced");
        assert!(out.findings.is_empty());
    }
}
