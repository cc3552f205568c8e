//! The seam where the ArgoCD client (`capstan_worker::argocd`, written separately) plugs in: the
//! dashboard only needs each Application's sync and health. Until a client is configured the
//! environments and cluster pages show "ArgoCD not configured".

use async_trait::async_trait;
use serde::Serialize;

/// One ArgoCD Application's state as the dashboard shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ArgoApp {
    pub name: String,
    /// `Synced`, `OutOfSync`, `Unknown`.
    pub sync: String,
    /// `Healthy`, `Progressing`, `Degraded`, `Suspended`, `Missing`, `Unknown`.
    pub health: String,
    /// ArgoCD's condition or operation message, when there is one.
    pub message: Option<String>,
}

impl ArgoApp {
    /// Out of sync or not healthy: listed on the cluster page.
    pub fn needs_attention(&self) -> bool {
        self.sync != "Synced" || self.health != "Healthy"
    }
}

/// Lists ArgoCD Applications; implemented over the ArgoCD REST client.
#[async_trait]
pub trait ArgoApps: Send + Sync + 'static {
    /// Every Application Capstan may see; the error text is shown on the page.
    async fn applications(&self) -> Result<Vec<ArgoApp>, String>;
}

/// What the pages show about ArgoCD.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ArgoView {
    NotConfigured,
    Unavailable { error: String },
    Apps { apps: Vec<ArgoApp> },
}

pub async fn view(client: Option<&dyn ArgoApps>) -> ArgoView {
    match client {
        None => ArgoView::NotConfigured,
        Some(c) => match c.applications().await {
            Ok(apps) => ArgoView::Apps { apps },
            Err(error) => ArgoView::Unavailable { error },
        },
    }
}

impl ArgoView {
    pub fn app(&self, name: &str) -> Option<&ArgoApp> {
        match self {
            ArgoView::Apps { apps } => apps.iter().find(|a| a.name == name),
            _ => None,
        }
    }

    /// A sentence for pages when there are no per-app results.
    pub fn status_text(&self) -> Option<String> {
        match self {
            ArgoView::NotConfigured => Some(
                "ArgoCD not configured: sync and health are shown once an ArgoCD URL and token are set."
                    .into(),
            ),
            ArgoView::Unavailable { error } => Some(format!("ArgoCD unavailable: {error}")),
            ArgoView::Apps { .. } => None,
        }
    }
}

/// How long one answer from ArgoCD serves the pages: every page view would otherwise list all
/// Applications again.
pub const CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(15);

/// [`ArgoApps`] over the ArgoCD REST client, with a short cache (failures are cached too, so an
/// unreachable ArgoCD does not slow every page down by its timeout).
pub struct ArgoCdApps {
    client: capstan_worker::argocd::ArgoClient,
    ttl: std::time::Duration,
    last: tokio::sync::Mutex<Option<Cached>>,
}

/// One answer from ArgoCD and when it came.
type Cached = (std::time::Instant, Result<Vec<ArgoApp>, String>);

impl ArgoCdApps {
    pub fn new(client: capstan_worker::argocd::ArgoClient, ttl: std::time::Duration) -> Self {
        ArgoCdApps {
            client,
            ttl,
            last: tokio::sync::Mutex::new(None),
        }
    }
}

fn app_of(a: capstan_worker::argocd::model::Application) -> ArgoApp {
    let status = a.status;
    let message = status
        .conditions
        .iter()
        .find_map(|c| c.message.clone())
        .or_else(|| status.health.as_ref().and_then(|h| h.message.clone()))
        .or_else(|| {
            status
                .operation_state
                .as_ref()
                .filter(|o| matches!(o.phase.as_deref(), Some("Failed" | "Error")))
                .and_then(|o| o.message.clone())
        });
    let unknown = || "Unknown".to_string();
    ArgoApp {
        name: a.metadata.name,
        sync: status.sync.and_then(|s| s.status).unwrap_or_else(unknown),
        health: status.health.and_then(|h| h.status).unwrap_or_else(unknown),
        message,
    }
}

#[async_trait]
impl ArgoApps for ArgoCdApps {
    async fn applications(&self) -> Result<Vec<ArgoApp>, String> {
        // Held across the call so concurrent page views share one request.
        let mut last = self.last.lock().await;
        if let Some((at, r)) = last.as_ref()
            && at.elapsed() < self.ttl
        {
            return r.clone();
        }
        let r = self
            .client
            .list_applications()
            .await
            .map(|list| {
                let mut apps: Vec<ArgoApp> = list.into_iter().map(app_of).collect();
                apps.sort_by(|a, b| a.name.cmp(&b.name));
                apps
            })
            .map_err(|e| e.to_string());
        if let Err(e) = &r {
            tracing::warn!(error = %e, "ArgoCD applications could not be listed");
        }
        *last = Some((std::time::Instant::now(), r.clone()));
        r
    }
}
