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
