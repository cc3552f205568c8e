//! The pull-request report: the sticky comment (split into numbered parts when GitHub's 65,536
//! character limit is exceeded) and the check-run output (conclusion, summary, annotations).
//!
//! Pure functions over a [`RunReport`]; posting, editing and deleting comments is the handler's
//! job. All text taken from the repository or the cluster goes through [`markdown`], so a pull
//! request cannot break the layout, mention anyone or forge a command or the comment marker.

mod check_run;
mod comment;
pub mod markdown;

use serde::{Deserialize, Serialize};

use crate::diff::AppDiff;

pub use check_run::{
    ANNOTATION_BATCH, Annotation, AnnotationLevel, CHECK_SUMMARY_LIMIT, CheckRunOutput, Conclusion,
    check_run, check_run_with,
};
pub use comment::{
    COMMENT_LIMIT, CommentPart, RenderedComment, marker, parse_marker, render_comment,
    render_comment_capped, render_comment_within,
};

/// Everything one run reports about one pull-request head.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunReport {
    /// `owner/name`.
    pub repo: String,
    pub pr: u64,
    /// 40-hex head commit the run rendered.
    pub head_sha: String,
    /// Dashboard page of this run (`…/runs/{id}`); per-app anchors are `#app-<name>`.
    pub run_url: String,
    /// Set while a `/capstan hold` is in force: who held it. Keeps the check failing.
    pub held_by: Option<String>,
    pub apps: Vec<AppSection>,
    /// Bounds the run hit ("not checked: limit … reached" lines, [`crate::limits`]): the report
    /// lists them and the check fails, so a bound is never a silent pass.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub limits: Vec<String>,
}

/// One affected app.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AppSection {
    pub name: String,
    pub environment: Option<String>,
    pub diff: AppDiff,
    pub findings: Vec<ReportFinding>,
    /// Findings the base branch already had on this app (`policy.gate: new`): shown folded,
    /// never counted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preexisting: Vec<ReportFinding>,
    pub argocd: Option<ArgoStatus>,
    /// The app could not be rendered at head (or the run failed for it otherwise).
    pub render_error: Option<String>,
    /// Head against the live cluster (ArgoCD's normalized live state): what a sync would change,
    /// which can differ from the git diff when the cluster drifted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_diff: Option<AppDiff>,
}

pub use crate::policy::findings::Severity;

/// A policy finding as the report shows it (the policy engine's findings are mapped onto this).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReportFinding {
    pub rule_id: String,
    pub severity: Severity,
    /// The object concerned, e.g. `apps/Deployment shop/web`.
    pub object: String,
    /// Repository path of the file that defines the object, when known.
    pub file: Option<String>,
    /// 1-based line in `file`.
    pub line: Option<u32>,
    pub message: String,
}

/// What ArgoCD says about the app.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArgoStatus {
    Reported {
        sync: Option<String>,
        health: Option<String>,
        /// Verdict of the dry-run sync, e.g. "dry run: 3 synced, 1 failed".
        dry_run: Option<String>,
    },
    /// ArgoCD could not be asked; the text says why (reported per app, never fatal).
    Unreachable(String),
}

impl AppSection {
    pub fn deny_count(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Deny)
            .count()
    }

    pub fn warn_count(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Warn)
            .count()
    }

    /// A render error given explicitly, or the diff's head side failing to render.
    pub fn has_render_error(&self) -> bool {
        self.render_error.is_some()
            || self
                .diff
                .problems
                .iter()
                .any(|p| p.side == "head" && p.status == "failed")
    }

    /// True when Capstan could not render the app (wholly or partly) at base or head: nothing
    /// vouches for what was not rendered.
    pub fn is_not_checked(&self) -> bool {
        self.diff.not_checked()
    }

    /// Dashboard link to this app's section of the run page.
    pub fn anchor_url(&self, run_url: &str) -> String {
        format!("{run_url}#app-{}", markdown::url_fragment(&self.name))
    }
}

impl RunReport {
    pub fn deny_count(&self) -> usize {
        self.apps.iter().map(AppSection::deny_count).sum()
    }

    pub fn warn_count(&self) -> usize {
        self.apps.iter().map(AppSection::warn_count).sum()
    }

    pub fn render_error_count(&self) -> usize {
        self.apps.iter().filter(|a| a.has_render_error()).count()
    }

    /// Affected apps that were not checked (and had no render error, which counts first).
    pub fn not_checked_count(&self) -> usize {
        self.apps
            .iter()
            .filter(|a| a.is_not_checked() && !a.has_render_error())
            .count()
    }

    /// Every bound hit: the run's own and those of the app diffs.
    pub fn limit_lines(&self) -> Vec<&str> {
        self.limits
            .iter()
            .map(String::as_str)
            .chain(
                self.apps
                    .iter()
                    .flat_map(|a| a.diff.notes.iter())
                    .map(String::as_str)
                    .filter(|n| crate::limits::is_not_checked(n)),
            )
            .collect()
    }
}
