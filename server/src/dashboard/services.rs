//! `/services`: the application registry. Healthy entries are links; entries whose probe failed
//! are listed as down without a link; unprobed ones as "checking".

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::layout::{self, Tone, badge, esc};
use super::registry::{Health, RegistryView};
use super::{Dashboard, PageError};

#[derive(Debug, Default, Deserialize)]
pub struct Params {}

#[derive(Debug, Serialize)]
pub struct ServicesPage {
    /// Why services are not discovered from Kubernetes, when they are not.
    pub kubernetes_unavailable: Option<String>,
    pub registry: RegistryView,
}

pub async fn build(d: &Dashboard, _: &Params) -> Result<ServicesPage, PageError> {
    Ok(ServicesPage {
        kubernetes_unavailable: d.cluster.as_ref().err().cloned(),
        registry: d.registry.view(),
    })
}

pub fn render(d: &Dashboard, p: &ServicesPage, user: Option<&str>) -> String {
    let mut b = String::from("<h1>Services</h1>");
    if let Some(why) = &p.kubernetes_unavailable {
        b.push_str(&layout::notice(&format!(
            "No Kubernetes access ({why}): only the links from the dashboard config are listed."
        )));
    }
    if let Some(note) = &p.registry.scope_note {
        b.push_str(&layout::notice(&format!("Service discovery: {note}.")));
    }
    if let Some(e) = &p.registry.kubernetes_error {
        b.push_str(&layout::notice(&format!(
            "Service discovery is failing: {e}"
        )));
    }
    let up: Vec<_> = p
        .registry
        .entries
        .iter()
        .filter(|e| matches!(e.health, Health::Up { .. }))
        .collect();
    if up.is_empty() {
        b.push_str("<p class=\"muted\">No service has passed its health check yet.</p>");
    }
    let mut group = None;
    for e in &up {
        if group != Some(&e.entry.group) {
            if group.is_some() {
                b.push_str("</ul>");
            }
            let _ = write!(b, "<h2>{}</h2><ul class=\"links\">", esc(&e.entry.group));
            group = Some(&e.entry.group);
        }
        let status = match &e.health {
            Health::Up { status } => badge(&format!("up (HTTP {status})"), Tone::Good),
            _ => String::new(),
        };
        let _ = write!(
            b,
            "<li><a href=\"{}\"><strong>{}</strong></a> {status}{}<br><small class=\"muted\">{}</small></li>",
            esc(&e.entry.url),
            esc(&e.entry.name),
            e.entry
                .description
                .as_deref()
                .map(|t| format!("<br>{}", esc(t)))
                .unwrap_or_default(),
            esc(&source(e)),
        );
    }
    if group.is_some() {
        b.push_str("</ul>");
    }
    let rest: Vec<String> = p
        .registry
        .entries
        .iter()
        .filter(|e| !matches!(e.health, Health::Up { .. }))
        .map(|e| {
            let status = match &e.health {
                Health::Down { reason } => badge(&format!("down: {reason}"), Tone::Bad),
                _ => badge("checking", Tone::Neutral),
            };
            format!(
                "<td>{}</td><td>{}</td><td>{status}</td><td>{}</td>",
                esc(&e.entry.name),
                esc(&e.entry.group),
                esc(&source(e))
            )
        })
        .collect();
    if !rest.is_empty() {
        b.push_str("<h2>Not available</h2><p class=\"muted\">Links are shown once their health check passes.</p>");
        b.push_str(&layout::table(
            &["Name", "Group", "Status", "Source"],
            &rest,
            "",
        ));
    }
    layout::page(&d.config, "Services", "/services", user, &b)
}

fn source(e: &super::registry::EntryView) -> String {
    match &e.entry.object {
        Some(o) => format!("{} {o}", e.entry.source),
        None => e.entry.source.clone(),
    }
}
