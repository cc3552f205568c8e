//! `/promotions`: the promotion audit trail, filterable by repository, app, target environment
//! and status through the query string (the form submits with GET, so a filter is a link).

use capstan_worker::store::{PromotionFilter, PromotionRecord, PromotionStatus};
use maud::{Markup, html};
use serde::{Deserialize, Serialize};

use super::layout::{self, badge};
use super::overview::status_tone;
use super::{Dashboard, PageError};

#[derive(Debug, Default, Deserialize, Serialize)]
pub struct Params {
    pub repo: Option<String>,
    pub app: Option<String>,
    pub env: Option<String>,
    pub status: Option<String>,
    pub limit: Option<usize>,
}

#[derive(Debug, Serialize)]
pub struct Promotions {
    /// `false` when this build has no promotion store.
    pub recorded: bool,
    pub filter: Params,
    pub promotions: Vec<PromotionRecord>,
}

fn non_empty(s: &Option<String>) -> Option<String> {
    s.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

pub async fn build(d: &Dashboard, p: &Params) -> Result<Promotions, PageError> {
    let status = match non_empty(&p.status) {
        None => None,
        Some(s) => Some(
            PromotionStatus::parse(&s)
                .ok_or_else(|| PageError::BadRequest(format!("unknown promotion status {s:?}")))?,
        ),
    };
    let filter = Params {
        repo: non_empty(&p.repo),
        app: non_empty(&p.app),
        env: non_empty(&p.env),
        status: status.map(|s| s.as_str().to_string()),
        limit: Some(p.limit.unwrap_or(100).clamp(1, 1000)),
    };
    let Some(store) = &d.promotions else {
        return Ok(Promotions {
            recorded: false,
            filter,
            promotions: Vec::new(),
        });
    };
    let promotions = store
        .list_promotions(&PromotionFilter {
            repo: filter.repo.clone(),
            app: filter.app.clone(),
            target_env: filter.env.clone(),
            status,
            limit: filter.limit.unwrap_or(100),
        })
        .await?;
    Ok(Promotions {
        recorded: true,
        filter,
        promotions,
    })
}

fn text_input(name: &str, label: &str, value: &Option<String>) -> Markup {
    let id = format!("f-{name}");
    html! {
        label for=(id) { (label) input id=(id) name=(name) value=(value.as_deref().unwrap_or("")); }
    }
}

pub fn render(d: &Dashboard, p: &Promotions, user: Option<&str>) -> Markup {
    let rows: Vec<Markup> = p
        .promotions
        .iter()
        .map(|x| {
            let pr = |n: Option<u64>| n.map(|n| format!("#{n}")).unwrap_or_else(|| "—".into());
            let short = x.source_sha.get(..7).unwrap_or(&x.source_sha);
            html! {
                td { (layout::time(x.created_at)) }
                td { (x.repo) }
                td { (x.app) }
                td { (x.source_env) " → " (x.target_env) }
                td { (x.summary) }
                td { (x.trigger) " by " (x.actor) }
                td { (pr(x.source_pr)) " " code { (short) } }
                td { (x.mode) " " (pr(x.result_pr)) }
                td {
                    (badge(x.status.as_str(), status_tone(x.status.as_str())))
                    @if let Some(t) = &x.detail { " " span.muted { (t) } }
                }
            }
        })
        .collect();
    let body = html! {
        h1 { "Promotions" }
        @if !p.recorded {
            (layout::notice(
                "Promotions are not recorded by this build: no promotion store is configured.",
            ))
        } @else {
            form.filters method="get" action="/promotions" role="search" {
                (text_input("repo", "Repository", &p.filter.repo))
                (text_input("app", "App", &p.filter.app))
                (text_input("env", "Target environment", &p.filter.env))
                label for="f-status" {
                    "Status"
                    select #f-status name="status" {
                        option value="" { "any" }
                        @for s in PromotionStatus::ALL {
                            option selected[p.filter.status.as_deref() == Some(s.as_str())] { (s.as_str()) }
                        }
                    }
                }
                button type="submit" { "Filter" }
                " "
                a href="/promotions" { "Clear" }
            }
            (layout::table(
                &["When", "Repository", "App", "From → to", "Change", "Trigger", "Source", "Result", "Status"],
                &rows,
                "No promotions match.",
            ))
        }
    };
    layout::page(&d.config, "Promotions", "/promotions", user, body)
}
