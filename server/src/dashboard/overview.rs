//! `/`: recent runs, queue depth, recent deliveries and their outcome, links to ArgoCD and Grafana.

use std::fmt::Write as _;

use capstan_worker::store::activity::DeliveryActivity;
use capstan_worker::store::{RunFilter, RunRecord};
use serde::{Deserialize, Serialize};

use super::layout::{self, Tone, badge, esc};
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
pub fn run_row(r: &RunRecord) -> String {
    let short = r.head_sha.get(..7).unwrap_or(&r.head_sha);
    let findings = if r.denies + r.warns + r.render_errors == 0 {
        "<span class=\"muted\">none</span>".to_string()
    } else {
        let mut parts = Vec::new();
        if r.denies > 0 {
            parts.push(badge(&format!("{} deny", r.denies), Tone::Bad));
        }
        if r.warns > 0 {
            parts.push(badge(&format!("{} warn", r.warns), Tone::Warn));
        }
        if r.render_errors > 0 {
            parts.push(badge(
                &format!(
                    "{} render error{}",
                    r.render_errors,
                    plural(r.render_errors)
                ),
                Tone::Bad,
            ));
        }
        parts.join(" ")
    };
    format!(
        "<td><a href=\"/runs/{id}\">#{id}</a></td><td>{repo}</td><td>#{pr}</td><td><code>{short}</code></td>\
         <td>{status}</td><td>{apps}</td><td>{findings}</td><td>{started}</td><td>{dur}</td>",
        id = r.id,
        repo = esc(&r.repo),
        pr = r.pr,
        short = esc(short),
        status = badge(r.status.as_str(), status_tone(r.status.as_str())),
        apps = r.apps,
        started = layout::time(r.started_at),
        dur = layout::duration(r.duration_ms()),
    )
}

pub const RUN_HEADERS: [&str; 9] = [
    "Run",
    "Repository",
    "PR",
    "Head",
    "Status",
    "Apps",
    "Findings",
    "Started",
    "Duration",
];

fn plural(n: i64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

pub fn render(d: &Dashboard, o: &Overview, user: Option<&str>) -> String {
    let mut b = String::from("<h1>Overview</h1>");
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
    b.push_str("<div class=\"cards\">");
    for (n, label) in [
        (live("queued").to_string(), "jobs queued"),
        (live("running").to_string(), "jobs running"),
        (o.runs.len().to_string(), "recent runs"),
        (failed.to_string(), "failed or errored runs"),
    ] {
        let _ = write!(
            b,
            "<div class=\"card\"><div class=\"n\">{n}</div><div class=\"l\">{label}</div></div>"
        );
    }
    b.push_str("</div>");
    if let Some(e) = &o.queue_error {
        b.push_str(&layout::notice(&format!("Queue depth unavailable: {e}")));
    }
    if !o.links.is_empty() {
        b.push_str("<nav aria-label=\"Quick links\"><p>");
        let links: Vec<String> = o
            .links
            .iter()
            .map(|l| format!("<a href=\"{}\">{}</a>", esc(&l.url), esc(&l.name)))
            .collect();
        b.push_str(&links.join(" · "));
        b.push_str("</p></nav>");
    }
    b.push_str("<h2>Recent runs</h2>");
    let rows: Vec<String> = o.runs.iter().map(run_row).collect();
    b.push_str(&layout::table(
        &RUN_HEADERS,
        &rows,
        "No pull-request runs yet. They appear here once a webhook delivery starts one.",
    ));
    if !o.runs.is_empty() {
        b.push_str("<p><a href=\"/runs\">All runs</a></p>");
    }
    b.push_str("<h2>Recent deliveries</h2>");
    let rows: Vec<String> = o
        .deliveries
        .iter()
        .map(|x| {
            let event = match &x.action {
                Some(a) => format!("{}.{a}", x.event),
                None => x.event.clone(),
            };
            let jobs = if x.jobs == 0 {
                "<span class=\"muted\">none</span>".to_string()
            } else {
                format!(
                    "{} ({} done, {} failed, {} waiting)",
                    x.jobs, x.jobs_done, x.jobs_failed, x.jobs_live
                )
            };
            format!(
                "<td>{}</td><td>{}</td><td>{}</td><td>{}{}</td><td>{jobs}</td><td><code>{}</code></td>",
                layout::time(x.received_at),
                esc(&event),
                esc(x.repo.as_deref().unwrap_or("—")),
                badge(&x.outcome, status_tone(&x.outcome)),
                x.detail
                    .as_deref()
                    .map(|t| format!(" <span class=\"muted\">{}</span>", esc(t)))
                    .unwrap_or_default(),
                esc(&x.delivery_id),
            )
        })
        .collect();
    b.push_str(&layout::table(
        &[
            "Received",
            "Event",
            "Repository",
            "Outcome",
            "Jobs",
            "Delivery",
        ],
        &rows,
        "No webhook deliveries yet.",
    ));
    if !o.queue.is_empty() {
        b.push_str("<h2>Queue</h2>");
        let rows: Vec<String> = o
            .queue
            .iter()
            .map(|q| {
                format!(
                    "<td>{}</td><td>{}</td><td>{}</td>",
                    esc(&q.kind),
                    badge(&q.state, status_tone(&q.state)),
                    q.jobs
                )
            })
            .collect();
        b.push_str(&layout::table(&["Job kind", "State", "Jobs"], &rows, ""));
    }
    layout::page(&d.config, "Overview", "/", user, &b)
}
