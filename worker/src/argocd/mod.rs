//! ArgoCD, the cluster-side view of a pull request: the app's sync and health status, the live
//! diff (what the PR will change in the cluster) and, for apps that opt in, a dry-run sync.
//!
//! [`ArgoCdCheck`] is the [`ClusterCheck`] the `pr_check` handler runs per affected app, and the
//! [`AppSync`] behind `/capstan sync`. It never fails a run: anything that goes wrong becomes
//! `ArgoStatus::Unreachable` (ArgoCD could not tell us about the app at all) or a note.

pub mod client;
pub mod dry_run;
pub mod live_diff;
pub mod model;

use globset::{Glob, GlobSet, GlobSetBuilder};
use tracing::{info, instrument, warn};

pub use client::{ArgoClient, ArgoConfig, ArgoError, Revision};
pub use dry_run::DryRunOptions;

use crate::report::ArgoStatus;
use crate::services::{
    AppOrigin, AppStatus, AppSync, ClusterCheck, ClusterCheckRequest, ClusterFindings, SyncError,
};
use model::{Application, ApplicationSource, SyncRequest};

/// The ArgoCD check and sync for one ArgoCD server.
#[derive(Debug)]
pub struct ArgoCdCheck {
    client: ArgoClient,
    dry_run_apps: GlobSet,
    dry_run: DryRunOptions,
}

impl ArgoCdCheck {
    /// `dry_run_apps`: globs of app names for which a dry-run sync may run (empty: none).
    pub fn new(
        client: ArgoClient,
        dry_run_apps: &[String],
        dry_run: DryRunOptions,
    ) -> Result<ArgoCdCheck, ArgoError> {
        let mut b = GlobSetBuilder::new();
        for g in dry_run_apps {
            b.add(Glob::new(g).map_err(|e| ArgoError::Config(format!("app glob {g:?}: {e}")))?);
        }
        let dry_run_apps = b
            .build()
            .map_err(|e| ArgoError::Config(format!("app globs: {e}")))?;
        Ok(ArgoCdCheck {
            client,
            dry_run_apps,
            dry_run,
        })
    }

    pub fn client(&self) -> &ArgoClient {
        &self.client
    }

    /// Whether a dry-run sync may run for `app`.
    pub fn dry_run_enabled(&self, app: &str) -> bool {
        self.dry_run_apps.is_match(app)
    }
}

/// The revision(s) to ask for: the head commit for each of the app's sources that is the pull
/// request's repository; `None` when no source is (a chart from elsewhere, another repo).
pub fn revision_for(app: &Application, repo: &str, sha: &str) -> Option<Revision> {
    if !app.spec.sources.is_empty() {
        let positions: Vec<u32> = (1u32..)
            .zip(&app.spec.sources)
            .filter(|(_, s)| source_is_repo(s, repo))
            .map(|(i, _)| i)
            .collect();
        if positions.is_empty() {
            return None;
        }
        return Some(Revision::Multi {
            revisions: vec![sha.to_string(); positions.len()],
            positions,
        });
    }
    app.spec
        .source
        .as_ref()
        .filter(|s| source_is_repo(s, repo))
        .map(|_| Revision::Single(sha.to_string()))
}

fn source_is_repo(s: &ApplicationSource, repo: &str) -> bool {
    s.chart.is_none() && repo_url_names(&s.repo_url, repo)
}

/// Whether a git URL (`https://github.com/o/r.git`, `git@github.com:o/r`, `ssh://…/o/r`) points
/// at `owner/name`. Hosts are not compared: a GHES or mirror URL names the same repository.
pub fn repo_url_names(url: &str, repo: &str) -> bool {
    let trimmed = url.trim().trim_end_matches('/');
    let trimmed = trimmed.strip_suffix(".git").unwrap_or(trimmed);
    let path = match trimmed.split_once("://") {
        Some((_, rest)) => rest.split_once('/').map(|(_, p)| p).unwrap_or(""),
        None => trimmed.split_once(':').map(|(_, p)| p).unwrap_or(trimmed),
    };
    let mut parts = path.rsplit('/');
    match (parts.next(), parts.next()) {
        (Some(name), Some(owner)) => format!("{owner}/{name}").eq_ignore_ascii_case(repo),
        _ => false,
    }
}

fn status_of(app: &Application) -> (Option<String>, Option<String>) {
    (
        app.status.sync.as_ref().and_then(|s| s.status.clone()),
        app.status.health.as_ref().and_then(|h| h.status.clone()),
    )
}

#[async_trait::async_trait]
impl ClusterCheck for ArgoCdCheck {
    fn name(&self) -> &'static str {
        "argocd"
    }

    #[instrument(name = "argocd_check", skip_all, fields(app = %req.app, head = %req.head_sha))]
    async fn check_app(&self, req: &ClusterCheckRequest<'_>) -> ClusterFindings {
        let mut out = ClusterFindings::default();
        let app = match self.client.application(req.app).await {
            Ok(a) => a,
            Err(e) => {
                warn!(error = %e, "ArgoCD could not be asked about the app");
                out.argocd = Some(ArgoStatus::Unreachable(e.to_string()));
                return out;
            }
        };
        let (sync, health) = status_of(&app);
        let Some(revision) = revision_for(&app, req.repo, req.head_sha) else {
            out.notes.push(format!(
                "ArgoCD: no source of app {} is {}; live diff and dry run skipped",
                req.app, req.repo
            ));
            out.argocd = Some(ArgoStatus::Reported {
                sync,
                health,
                dry_run: None,
            });
            return out;
        };
        match live_diff::live_diff(&self.client, req.app, &revision, req.head_objects).await {
            Ok(d) => out.live_diff = Some(d),
            Err(e) => out.notes.push(format!("ArgoCD live diff failed: {e}")),
        }
        let dry_run = if self.dry_run_enabled(req.app) {
            let before = app.status.operation_state.as_ref();
            match dry_run::dry_run_sync(&self.client, req.app, &revision, before, &self.dry_run)
                .await
            {
                Ok(o) => {
                    out.findings.extend(o.findings);
                    Some(o.summary)
                }
                Err(e) => Some(format!("not run: {e}")),
            }
        } else {
            None
        };
        out.argocd = Some(ArgoStatus::Reported {
            sync,
            health,
            dry_run,
        });
        out
    }
}

#[async_trait::async_trait]
impl AppSync for ArgoCdCheck {
    #[instrument(name = "argocd_sync", skip(self))]
    async fn sync_app(&self, app: &str, revision: Option<&str>) -> Result<String, SyncError> {
        let current = self.client.application(app).await?;
        let mut req = SyncRequest {
            name: app.to_string(),
            ..Default::default()
        };
        if let Some(rev) = revision {
            if current.spec.sources.len() > 1 {
                return Err(SyncError::Refused(format!(
                    "app {app} has {} sources; sync it without a revision (each source at its target revision)",
                    current.spec.sources.len()
                )));
            }
            req.revision = Some(rev.to_string());
        }
        let started = self.client.sync(&req).await?;
        info!("ArgoCD sync requested");
        let at = revision
            .map(|r| format!(" at {r}"))
            .unwrap_or_else(|| " at its target revision".into());
        let phase = started
            .status
            .operation_state
            .and_then(|s| s.phase)
            .map(|p| format!(" (operation {p})"))
            .unwrap_or_default();
        Ok(format!("ArgoCD sync of {app} started{at}{phase}"))
    }

    #[instrument(name = "argocd_origin", skip(self))]
    async fn app_origin(&self, app: &str) -> Result<AppOrigin, SyncError> {
        let a = self.client.application(app).await?;
        let project = a
            .spec
            .project
            .clone()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "default".into());
        let repo_urls = a
            .spec
            .source
            .iter()
            .chain(&a.spec.sources)
            .map(|s| s.repo_url.clone())
            .collect();
        Ok(AppOrigin { project, repo_urls })
    }

    #[instrument(name = "argocd_status", skip(self))]
    async fn app_status(&self, app: &str) -> Result<AppStatus, SyncError> {
        let a = self.client.application(app).await?;
        let (sync, health) = status_of(&a);
        Ok(AppStatus { sync, health })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn repo_urls_in_every_form_name_the_repo() {
        for url in [
            "https://github.com/acme/gitops.git",
            "https://github.com/acme/gitops",
            "https://ghe.example.com/Acme/GitOps/",
            "git@github.com:acme/gitops.git",
            "ssh://git@github.com/acme/gitops.git",
        ] {
            assert!(repo_url_names(url, "acme/gitops"), "{url}");
        }
        for url in [
            "https://github.com/acme/gitops-other.git",
            "https://github.com/other/gitops.git",
            "https://charts.example.com",
            "gitops",
        ] {
            assert!(!repo_url_names(url, "acme/gitops"), "{url}");
        }
    }

    #[test]
    fn multi_source_apps_get_one_revision_per_matching_source_with_1_based_positions() {
        let app: Application = serde_json::from_value(json!({"spec": {"sources": [
            {"repoURL": "https://charts.example.com", "chart": "web", "targetRevision": "1.2.3"},
            {"repoURL": "https://github.com/acme/gitops.git", "path": "apps/web", "targetRevision": "main"},
            {"repoURL": "https://github.com/acme/gitops.git", "ref": "values", "targetRevision": "main"}
        ]}}))
        .unwrap();
        assert_eq!(
            revision_for(&app, "acme/gitops", "abc"),
            Some(Revision::Multi {
                revisions: vec!["abc".into(), "abc".into()],
                positions: vec![2, 3]
            })
        );
        assert_eq!(revision_for(&app, "acme/other", "abc"), None);
    }

    #[test]
    fn single_source_apps_get_the_revision_only_for_their_repo() {
        let app: Application = serde_json::from_value(json!({"spec": {"source":
            {"repoURL": "https://github.com/acme/gitops.git", "path": "apps/web"}}}))
        .unwrap();
        assert_eq!(
            revision_for(&app, "acme/gitops", "abc"),
            Some(Revision::Single("abc".into()))
        );
        assert_eq!(revision_for(&app, "acme/else", "abc"), None);
    }
}
