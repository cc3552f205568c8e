//! `/promotions`: the promotion audit trail, filterable by repository, app, target environment
//! and status through the query string (the form submits with GET, so a filter is a link).

use std::fmt::Write as _;

use capstan_worker::store::{PromotionFilter, PromotionRecord, PromotionStatus};
use serde::{Deserialize, Serialize};

use super::layout::{self, badge, esc};
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

fn text_input(b: &mut String, name: &str, label: &str, value: &Option<String>) {
    let _ = write!(
        b,
        "<label for=\"f-{name}\">{label}<input id=\"f-{name}\" name=\"{name}\" value=\"{}\"></label>",
        esc(value.as_deref().unwrap_or(""))
    );
}

pub fn render(d: &Dashboard, p: &Promotions, user: Option<&str>) -> String {
    let mut b = String::from("<h1>Promotions</h1>");
    if !p.recorded {
        b.push_str(&layout::notice(
            "Promotions are not recorded by this build: no promotion store is configured.",
        ));
        return layout::page(&d.config, "Promotions", "/promotions", user, &b);
    }
    b.push_str("<form class=\"filters\" method=\"get\" action=\"/promotions\" role=\"search\">");
    text_input(&mut b, "repo", "Repository", &p.filter.repo);
    text_input(&mut b, "app", "App", &p.filter.app);
    text_input(&mut b, "env", "Target environment", &p.filter.env);
    b.push_str("<label for=\"f-status\">Status<select id=\"f-status\" name=\"status\"><option value=\"\">any</option>");
    for s in PromotionStatus::ALL {
        let sel = if p.filter.status.as_deref() == Some(s.as_str()) {
            " selected"
        } else {
            ""
        };
        let _ = write!(b, "<option{sel}>{}</option>", s.as_str());
    }
    b.push_str("</select></label><button type=\"submit\">Filter</button> <a href=\"/promotions\">Clear</a></form>");
    let rows: Vec<String> = p
        .promotions
        .iter()
        .map(|x| {
            let pr = |n: Option<u64>| n.map(|n| format!("#{n}")).unwrap_or_else(|| "—".into());
            let short = x.source_sha.get(..7).unwrap_or(&x.source_sha);
            format!(
                "<td>{}</td><td>{}</td><td>{}</td><td>{} → {}</td><td>{}</td><td>{}</td>\
                 <td>{} <code>{}</code></td><td>{}</td><td>{}{}</td>",
                layout::time(x.created_at),
                esc(&x.repo),
                esc(&x.app),
                esc(&x.source_env),
                esc(&x.target_env),
                esc(&x.summary),
                esc(&format!("{} by {}", x.trigger, x.actor)),
                esc(&pr(x.source_pr)),
                esc(short),
                esc(&format!("{} {}", x.mode, pr(x.result_pr))),
                badge(x.status.as_str(), status_tone(x.status.as_str())),
                x.detail
                    .as_deref()
                    .map(|t| format!(" <span class=\"muted\">{}</span>", esc(t)))
                    .unwrap_or_default(),
            )
        })
        .collect();
    b.push_str(&layout::table(
        &[
            "When",
            "Repository",
            "App",
            "From → to",
            "Change",
            "Trigger",
            "Source",
            "Result",
            "Status",
        ],
        &rows,
        "No promotions match.",
    ));
    layout::page(&d.config, "Promotions", "/promotions", user, &b)
}
