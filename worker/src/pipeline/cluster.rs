//! Asking the cluster-side checkers (ArgoCD, Kubernetes dry-run) about each affected app and
//! folding their answers into the report's sections.

use std::sync::Arc;

use futures::StreamExt as _;
use tracing::debug;

use crate::diff::{AppDiff, ObjectChangeKind};
use crate::objects::{K8sObject, ObjectId};
use crate::report::AppSection;
use crate::services::{ClusterCheck, ClusterCheckRequest, ClusterFindings};

/// Apps asked at once; each checker is an HTTP client that should not be flooded.
const CONCURRENT_APPS: usize = 8;

/// Runs every checker for every section whose app exists at head (`head_objects[i]` is `None`
/// for an app the change removes: nothing to apply) and merges the findings into the sections. Checkers never fail a run; their errors
/// arrive as `ArgoStatus::Unreachable` or notes.
pub async fn run_cluster_checks(
    checkers: &[Arc<dyn ClusterCheck>],
    repo: &str,
    pr: u64,
    head_sha: &str,
    sections: &mut [AppSection],
    head_objects: &[Option<Vec<K8sObject>>],
) {
    if checkers.is_empty() {
        return;
    }
    let asks: Vec<(usize, Vec<ObjectId>)> = sections
        .iter()
        .enumerate()
        .filter(|(i, _)| head_objects.get(*i).is_some_and(Option::is_some))
        .map(|(i, s)| (i, s.diff.changes.iter().map(|c| c.id.clone()).collect()))
        .collect();
    let results: Vec<(usize, Vec<ClusterFindings>)> = futures::stream::iter(asks)
        .map(|(i, changed)| {
            let section = &sections[i];
            let req_app = section.name.clone();
            let env = section.environment.clone();
            async move {
                let req = ClusterCheckRequest {
                    repo,
                    pr,
                    app: &req_app,
                    environment: env.as_deref(),
                    head_sha,
                    head_objects: head_objects[i].as_deref().unwrap_or_default(),
                    changed: &changed,
                };
                let mut found = Vec::with_capacity(checkers.len());
                for c in checkers {
                    debug!(checker = c.name(), app = %req_app, "cluster check");
                    found.push(c.check_app(&req).await);
                }
                (i, found)
            }
        })
        .buffer_unordered(CONCURRENT_APPS)
        .collect()
        .await;
    for (i, found) in results {
        for f in found {
            merge(&mut sections[i], f);
        }
    }
}

/// Adds one checker's answer to a section. The first ArgoCD verdict and live diff win; the live
/// diff is also summarised as a note, which survives when the comment folds the objects away.
fn merge(section: &mut AppSection, f: ClusterFindings) {
    if section.argocd.is_none() {
        section.argocd = f.argocd;
    }
    if let Some(live) = f.live_diff {
        section.diff.notes.push(live_diff_note(&live));
        if section.live_diff.is_none() {
            section.live_diff = Some(live);
        }
    }
    section.findings.extend(f.findings);
    section.diff.notes.extend(f.notes);
}

fn live_diff_note(live: &AppDiff) -> String {
    if !live.has_changes() {
        return "live diff: the cluster already matches the head".into();
    }
    const NAMED: usize = 8;
    let mut names: Vec<String> = live
        .changes
        .iter()
        .take(NAMED)
        .map(|c| {
            let verb = match c.change {
                ObjectChangeKind::Added => "create",
                ObjectChangeKind::Changed => "change",
                ObjectChangeKind::Removed => "delete",
            };
            format!("{verb} {}", c.id)
        })
        .collect();
    if live.changes.len() > NAMED {
        names.push(format!("{} more", live.changes.len() - NAMED));
    }
    format!(
        "live diff against the cluster: {} to create, {} to change, {} to delete ({})",
        live.count(ObjectChangeKind::Added),
        live.count(ObjectChangeKind::Changed),
        live.count(ObjectChangeKind::Removed),
        names.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::ObjectChange;

    fn change(kind: ObjectChangeKind, name: &str) -> ObjectChange {
        ObjectChange {
            id: ObjectId {
                group: "apps".into(),
                kind: "Deployment".into(),
                namespace: Some("shop".into()),
                name: name.into(),
            },
            change: kind,
            diff: String::new(),
            secret_keys: Vec::new(),
        }
    }

    #[test]
    fn the_live_diff_note_counts_and_names_objects() {
        let mut live = AppDiff {
            app: "shop".into(),
            reasons: Vec::new(),
            changes: vec![
                change(ObjectChangeKind::Changed, "web"),
                change(ObjectChangeKind::Added, "worker"),
            ],
            problems: Vec::new(),
            notes: Vec::new(),
        };
        assert_eq!(
            live_diff_note(&live),
            "live diff against the cluster: 1 to create, 1 to change, 0 to delete \
             (change apps/Deployment shop/web, create apps/Deployment shop/worker)"
        );
        live.changes.clear();
        assert_eq!(
            live_diff_note(&live),
            "live diff: the cluster already matches the head"
        );
    }
}
