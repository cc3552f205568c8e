//! The words of a promotion: commit message with its trailers, the promotion pull request's
//! title and body, and the notes left on the source pull request. The record itself is stored by
//! `store::SqlPromotionStore`; these texts are what people read next to it.

use super::apply::{ID_TRAILER, SOURCE_TRAILER};
use super::plan::Plan;
use super::rules::Matched;
use super::{Outcome, Source};
use crate::jobs::mapping::COMMENT_MARKER;

fn source_ref(source: &Source) -> String {
    match source.pr {
        Some(pr) => format!("{}@{} (#{pr})", source.repo, source.sha),
        None => format!("{}@{}", source.repo, source.sha),
    }
}

/// A value from the repository inside inline code, unable to close it or break the line.
fn code(s: &str) -> String {
    format!("`{}`", s.replace(['`', '\n', '\r'], "'"))
}

pub fn commit_message(m: &Matched<'_>, source: &Source, key: &str, plan: &Plan) -> String {
    let mut msg = format!(
        "promote({}): {} → {}\n\n",
        m.app, m.rule.from.environment, m.rule.to.environment
    );
    for c in &plan.changes {
        msg.push_str(&format!("- {c}\n"));
    }
    msg.push_str(&format!(
        "\nRule {} ({}).\n\n{ID_TRAILER}: {key}\n{SOURCE_TRAILER}: {}\n",
        m.rule.name,
        source.trigger,
        source_ref(source)
    ));
    msg
}

pub fn pr_title(m: &Matched<'_>) -> String {
    format!(
        "Promote {} from {} to {}",
        m.app, m.rule.from.environment, m.rule.to.environment
    )
}

pub fn pr_body(m: &Matched<'_>, source: &Source, key: &str, plan: &Plan) -> String {
    let mut b = format!("{COMMENT_MARKER}:promotion {key} -->\n");
    b.push_str(&format!(
        "Promotes **{}** from `{}` to `{}` (rule {}).\n\n",
        m.app,
        m.rule.from.environment,
        m.rule.to.environment,
        code(&m.rule.name)
    ));
    match source.pr {
        Some(pr) => b.push_str(&format!("Source: #{pr}, commit {}.\n\n", source.sha)),
        None => b.push_str(&format!("Source: commit {}.\n\n", source.sha)),
    }
    b.push_str("What is promoted:\n\n");
    for c in &plan.changes {
        b.push_str(&format!("- {}\n", code(c)));
    }
    if m.rule.conditions.approvals > 0 {
        b.push_str(&format!(
            "\nThis promotion needs {} approving review(s) before it is merged.\n",
            m.rule.conditions.approvals
        ));
    }
    b.push_str(&format!(
        "\nMerging this pull request promotes the change; Capstan's report below judges it like any other.\nTriggered by {} ({}).\n",
        code(&source.actor),
        source.trigger
    ));
    b
}

pub fn problem_comment(m: &Matched<'_>, outcome: &Outcome) -> String {
    format!(
        "{COMMENT_MARKER}:promotion-problem -->\n**Promotion of {} to {} did not land** ({}).\n\n{}\n",
        code(&m.app),
        code(&m.rule.to.environment),
        outcome.status.as_str(),
        outcome
            .detail
            .as_deref()
            .map(code)
            .unwrap_or_else(|| "no detail".into())
    )
}

pub fn closed_comment(dir: &str) -> String {
    format!(
        "{COMMENT_MARKER}:promotion-closed -->\nClosing: the default branch already has everything this pull request promotes into {}, so it has nothing left to change.\n",
        code(dir)
    )
}

pub fn sync_comment(text: &str) -> String {
    format!("{COMMENT_MARKER}:promotion-sync -->\n{}\n", code(text))
}
