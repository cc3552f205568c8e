//! `/`: recent runs, queue depth, recent deliveries and their outcome, links to ArgoCD and Grafana.

use capstan_worker::store::activity::DeliveryActivity;
use capstan_worker::store::{RunFilter, RunRecord};
use maud::{Markup, html};
use serde::{Deserialize, Serialize};

use super::layout::{self, Tone, badge};
use super::{Dashboard, PageError};

#[derive(Debug, Default, Deserialize)]
pub struct Params {
    /// Runs to list (default 50, at most 500).
    pub runs: Option<usize>,
}

#[derive(Debug, Serialize)]
pub struct QueueDepth {
    pub kind: String,
    pub state: String,
    pub jobs: i64,
}

#[derive(Debug, Serialize)]
pub struct Link {
    pub name: String,
    pub url: String,
}

#[derive(Debug, Serialize)]
pub struct Overview {
    pub runs: Vec<RunRecord>,
    pub queue: Vec<QueueDepth>,
    /// `None` when the queue could not be counted.
    pub queue_error: Option<String>,
    pub deliveries: Vec<DeliveryActivity>,
    pub links: Vec<Link>,
}

pub async fn build(d: &Dashboard, p: &Params) -> Result<Overview, PageError> {
    let limit = p.runs.unwrap_or(50).clamp(1, 500);
    let runs = d
        .runs
        .list_runs(&RunFilter {
            limit,
            ..RunFilter::default()
        })
        .await?;
    let (queue, queue_error) = match d.queue.depth().await {
        Ok(rows) => (
            rows.into_iter()
                .map(|(kind, state, jobs)| QueueDepth {
                    kind,
                    state: state.to_string(),
                    jobs,
                })
                .collect(),
            None,
        ),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    let deliveries = d.activity.recent_deliveries(20).await?;
    Ok(Overview {
        runs,
        queue,
        queue_error,
        deliveries,
        links: quick_links(d),
    })
}

/// ArgoCD and Grafana first (from the configured links, or Grafana from the metrics sources),
/// then the other configured links.
fn quick_links(d: &Dashboard) -> Vec<Link> {
    let cfg = &d.config;
    let mut out: Vec<Link> = Vec::new();
    for name in ["ArgoCD", "Grafana"] {
        let url = cfg.link(name).map(|l| l.url.clone()).or_else(|| {
            (name == "Grafana")
                .then(|| cfg.customizations.metrics.grafana_url.clone())
                .flatten()
        });
        if let Some(url) = url.filter(|u| layout::is_http_url(u)) {
            out.push(Link {
                name: name.into(),
                url,
            });
        }
    }
    for l in &cfg.customizations.links {
        if !out.iter().any(|o| o.name.eq_ignore_ascii_case(&l.name)) {
            out.push(Link {
                name: l.name.clone(),
                url: l.url.clone(),
            });
        }
    }
    out
}

pub fn status_tone(status: &str) -> Tone {
    match status {
        "success" | "succeeded" | "accepted" | "committed" | "opened" | "queued" | "Synced"
        | "Healthy" => Tone::Good,
        "failure" | "error" | "failed" | "dead" | "rejected" | "refused" | "conflict"
        | "Degraded" => Tone::Bad,
        "running" | "pending" | "OutOfSync" | "Progressing" => Tone::Warn,
        _ => Tone::Neutral,
    }
}

/// One run as a table row (shared with `/runs`).
pub fn run_row(r: &RunRecord) -> Markup {
    let short = r.head_sha.get(..7).unwrap_or(&r.head_sha);
    let render_errors = if r.render_errors == 1 {
        "render error"
    } else {
        "render errors"
    };
    let findings: Vec<(String, Tone)> = [
        (r.denies, "deny", Tone::Bad),
        (r.warns, "warn", Tone::Warn),
        (r.render_errors, render_errors, Tone::Bad),
    ]
    .into_iter()
    .filter(|(n, _, _)| *n > 0)
    .map(|(n, word, tone)| (format!("{n} {word}"), tone))
    .collect();
    html! {
        td { a href={ "/runs/" (r.id) } { "#" (r.id) } }
        td { (r.repo) }
        td { "#" (r.pr) }
        td { code { (short) } }
        td { (short_sha(r.base_sha.as_deref())) }
        td { (short_sha(r.merge_base.as_deref())) }
        td { (badge(r.status.as_str(), status_tone(r.status.as_str()))) }
        td { (r.attempts) }
        td { (r.apps) }
        td {
            @if findings.is_empty() { span.muted { "none" } }
            @for (i, (text, tone)) in findings.iter().enumerate() {
                @if i > 0 { " " }
                (badge(text, *tone))
            }
        }
        td { (layout::time(r.started_at)) }
        td { (layout::duration(r.duration_ms())) }
    }
}

/// A commit as its first seven characters, or a muted "not fetched".
pub fn short_sha(sha: Option<&str>) -> Markup {
    match sha {
        Some(s) => html! { code title=(s) { (s.get(..7).unwrap_or(s)) } },
        None => html! { span.muted { "not fetched" } },
    }
}

pub const RUN_HEADERS: [&str; 12] = [
    "Run",
    "Repository",
    "PR",
    "Head",
    "Base",
    "Merge base",
    "Status",
    "Attempts",
    "Apps",
    "Findings",
    "Started",
    "Duration",
];

pub fn render(d: &Dashboard, o: &Overview, user: Option<&str>) -> Markup {
    let live = |state: &str| -> i64 {
        o.queue
            .iter()
            .filter(|q| q.state == state)
            .map(|q| q.jobs)
            .sum()
    };
    let failed = o
        .runs
        .iter()
        .filter(|r| matches!(r.status.as_str(), "failure" | "error"))
        .count();
    let cards = [
        (live("queued").to_string(), "jobs queued"),
        (live("running").to_string(), "jobs running"),
        (o.runs.len().to_string(), "recent runs"),
        (failed.to_string(), "failed or errored runs"),
    ];
    let runs: Vec<Markup> = o.runs.iter().map(run_row).collect();
    let deliveries: Vec<Markup> = o
        .deliveries
        .iter()
        .map(|x| {
            html! {
                td { (layout::time(x.delivery.received_at)) }
                td { (x.delivery.event) @if let Some(a) = &x.delivery.action { "." (a) } }
                td { (x.delivery.repo.as_deref().unwrap_or("—")) }
                td {
                    (badge(&x.delivery.outcome, status_tone(&x.delivery.outcome)))
                    @if let Some(t) = &x.delivery.detail { " " span.muted { (t) } }
                }
                td {
                    @if x.jobs == 0 {
                        span.muted { "none" }
                    } @else {
                        (x.jobs) " (" (x.jobs_done) " done, " (x.jobs_failed) " failed, " (x.jobs_live) " waiting)"
                    }
                }
                td { code { (x.delivery.delivery_id) } }
            }
        })
        .collect();
    let queue: Vec<Markup> = o
        .queue
        .iter()
        .map(|q| html! { td { (q.kind) } td { (badge(&q.state, status_tone(&q.state))) } td { (q.jobs) } })
        .collect();
    let body = html! {
        h1 { "Overview" }
        div.cards {
            @for (n, label) in &cards {
                div.card { div.n { (n) } div.l { (label) } }
            }
        }
        @if let Some(e) = &o.queue_error {
            (layout::notice(&format!("Queue depth unavailable: {e}")))
        }
        @if !o.links.is_empty() {
            nav aria-label="Quick links" { p {
                @for (i, l) in o.links.iter().enumerate() {
                    @if i > 0 { " · " }
                    a href=(l.url) { (l.name) }
                }
            } }
        }
        h2 { "Recent runs" }
        (layout::table(
            &RUN_HEADERS,
            &runs,
            "No pull-request runs yet. They appear here once a webhook delivery starts one.",
        ))
        @if !o.runs.is_empty() {
            p { a href="/runs" { "All runs" } }
        }
        h2 { "Recent deliveries" }
        (layout::table(
            &["Received", "Event", "Repository", "Outcome", "Jobs", "Delivery"],
            &deliveries,
            "No webhook deliveries yet.",
        ))
        @if !o.queue.is_empty() {
            h2 { "Queue" }
            (layout::table(&["Job kind", "State", "Jobs"], &queue, ""))
        }
    };
    layout::page(&d.config, "Overview", "/", user, body)
}
