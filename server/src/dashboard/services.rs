//! `/services`: the application registry. Healthy entries are links; entries whose probe failed
//! are listed as down without a link; unprobed ones as "checking".

use maud::{Markup, html};
use serde::{Deserialize, Serialize};

use super::layout::{self, Tone, badge};
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

pub fn render(d: &Dashboard, p: &ServicesPage, user: Option<&str>) -> Markup {
    let up: Vec<_> = p
        .registry
        .entries
        .iter()
        .filter(|e| matches!(e.health, Health::Up { .. }))
        .collect();
    let rest: Vec<Markup> = p
        .registry
        .entries
        .iter()
        .filter(|e| !matches!(e.health, Health::Up { .. }))
        .map(|e| {
            let status = match &e.health {
                Health::Down { reason } => badge(&format!("down: {reason}"), Tone::Bad),
                _ => badge("checking", Tone::Neutral),
            };
            html! { td { (e.entry.name) } td { (e.entry.group) } td { (status) } td { (source(e)) } }
        })
        .collect();
    let body = html! {
        h1 { "Services" }
        @if let Some(why) = &p.kubernetes_unavailable {
            (layout::notice(&format!(
                "No Kubernetes access ({why}): only the links from the dashboard config are listed."
            )))
        }
        @if let Some(note) = &p.registry.scope_note {
            (layout::notice(&format!("Service discovery: {note}.")))
        }
        @if let Some(e) = &p.registry.kubernetes_error {
            (layout::notice(&format!("Service discovery is failing: {e}")))
        }
        @if up.is_empty() {
            p.muted { "No service has passed its health check yet." }
        }
        // Entries arrive sorted by group; each run of one group is a list.
        @for group in up.chunk_by(|a, b| a.entry.group == b.entry.group) {
            h2 { (group[0].entry.group) }
            ul.links { @for e in group {
                li {
                    a href=(e.entry.url) { strong { (e.entry.name) } }
                    @if let Health::Up { status } = &e.health {
                        " " (badge(&format!("up (HTTP {status})"), Tone::Good))
                    } @else { " " }
                    @if let Some(t) = &e.entry.description { br; (t) }
                    br; small.muted { (source(e)) }
                }
            } }
        }
        @if !rest.is_empty() {
            h2 { "Not available" }
            p.muted { "Links are shown once their health check passes." }
            (layout::table(&["Name", "Group", "Status", "Source"], &rest, ""))
        }
    };
    layout::page(&d.config, "Services", "/services", user, body)
}

fn source(e: &super::registry::EntryView) -> String {
    match &e.entry.object {
        Some(o) => format!("{} {o}", e.entry.source),
        None => e.entry.source.clone(),
    }
}
