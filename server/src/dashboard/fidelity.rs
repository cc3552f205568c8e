//! `/fidelity`: kustomizations whose native render did not match the kustomize binary (render
//! verification, `render.verify` in `.capstan.yaml`). A mismatch of the running engine version is
//! pinned: that kustomization renders with the binary until the engine changes.

use capstan_worker::render::native::ENGINE_VERSION;
use capstan_worker::store::MismatchRecord;
use maud::{Markup, html};
use serde::{Deserialize, Serialize};

use super::layout::{self, Tone, badge};
use super::{Dashboard, PageError};

#[derive(Debug, Default, Deserialize, Serialize)]
pub struct Params {
    pub limit: Option<usize>,
}

#[derive(Debug, Serialize)]
pub struct Row {
    #[serde(flatten)]
    pub record: MismatchRecord,
    /// Recorded under the running engine version: renders of it use the binary.
    pub pinned: bool,
}

#[derive(Debug, Serialize)]
pub struct Fidelity {
    /// `false` when this build records no verification results (the page says so).
    pub recorded: bool,
    pub engine_version: String,
    pub mismatches: Vec<Row>,
}

pub async fn build(d: &Dashboard, p: &Params) -> Result<Fidelity, PageError> {
    let Some(store) = &d.fidelity else {
        return Ok(Fidelity {
            recorded: false,
            engine_version: ENGINE_VERSION.into(),
            mismatches: Vec::new(),
        });
    };
    let limit = p.limit.unwrap_or(100).clamp(1, 1000);
    let mismatches = store
        .list_mismatches(limit)
        .await?
        .into_iter()
        .map(|record| Row {
            pinned: record.engine_version == ENGINE_VERSION,
            record,
        })
        .collect();
    Ok(Fidelity {
        recorded: true,
        engine_version: ENGINE_VERSION.into(),
        mismatches,
    })
}

pub fn render(d: &Dashboard, f: &Fidelity, user: Option<&str>) -> Markup {
    let rows: Vec<Markup> = f
        .mismatches
        .iter()
        .map(|m| {
            let r = &m.record;
            html! {
                td { code { (r.path) } }
                td { (r.repo) }
                td { (layout::time(r.first_seen)) }
                td { code { (r.engine_version) } }
                td { (r.kind.as_str()) " ×" (r.occurrences) }
                td { pre { (r.first_difference) } }
                td {
                    @if m.pinned { (badge("pinned", Tone::Warn)) }
                    @else { (badge("older engine", Tone::Neutral)) }
                }
            }
        })
        .collect();
    let body = html! {
        h1 { "Render fidelity" }
        @if !f.recorded {
            (layout::notice(
                "Render verification is not recorded by this build: no store is configured.",
            ))
        } @else {
            p {
                "Kustomizations whose native render differed from " code { "kubectl kustomize" }
                " (or failed where it succeeded). Native engine " code { (f.engine_version) }
                "; a mismatch of this version is pinned: it renders with the binary until the engine changes."
            }
            (layout::table(
                &["Path", "Repository", "First seen", "Engine", "Kind", "First differing document", "Pinned"],
                &rows,
                "No mismatch recorded: every verified native render matched the binary.",
            ))
        }
    };
    layout::page(&d.config, "Render fidelity", "/fidelity", user, body)
}
