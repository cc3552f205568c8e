//! Per-object diff of an app between two renders.
//!
//! Objects are matched by [`ObjectId`] (group, kind, namespace, name). Before comparing, both sides
//! are normalised: ArgoCD tracking labels and annotations are dropped, the
//! `last-applied-configuration` annotation is redacted, and the app's `ignoreDifferences`
//! (`jsonPointers`) are removed. Secret `data`/`stringData` values never reach any output: the
//! values are replaced before YAML is produced, and the change is described per key
//! ("data.password: changed"). The result is a data structure with text, markdown and JSON forms.

mod normalize;
mod render_text;

use std::collections::BTreeMap;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use similar::TextDiff;

use crate::apps::{AppRender, RenderedApp};
pub use crate::limits::DiffLimits;
use crate::objects::{K8sObject, ObjectId};

pub use normalize::REDACTED;

/// Lines of context around each change.
pub const CONTEXT_LINES: usize = 3;

/// What happened to one object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectChangeKind {
    Added,
    Removed,
    Changed,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ObjectChange {
    pub id: ObjectId,
    pub change: ObjectChangeKind,
    /// Unified YAML diff (for added/removed objects: the whole object as added/removed lines).
    pub diff: String,
    /// Secret keys added/removed/changed, e.g. `data.password: changed`. Values are never shown.
    pub secret_keys: Vec<String>,
}

/// One side of an app that could not be compared.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SideProblem {
    /// `base` or `head`.
    pub side: String,
    /// `not_checked` (Capstan could not render it, wholly or partly) or `failed`.
    pub status: String,
    pub message: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AppDiff {
    pub app: String,
    /// Why the app was compared at all (e.g. "inputs changed: shared/base/deployment.yaml").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    pub changes: Vec<ObjectChange>,
    pub problems: Vec<SideProblem>,
    /// Things the diff did not do (unsupported ignoreDifferences forms, ...).
    pub notes: Vec<String>,
}

impl AppDiff {
    pub fn count(&self, kind: ObjectChangeKind) -> usize {
        self.changes.iter().filter(|c| c.change == kind).count()
    }

    pub fn has_changes(&self) -> bool {
        !self.changes.is_empty()
    }

    /// True when a side of the app could not be rendered (wholly or partly).
    pub fn not_checked(&self) -> bool {
        self.problems.iter().any(|p| p.status == NOT_CHECKED)
    }
}

/// [`SideProblem::status`] of a side Capstan could not render.
pub const NOT_CHECKED: &str = "not_checked";

/// Diffs of several apps.
#[derive(Clone, Debug, Default, Serialize)]
pub struct DiffReport {
    pub apps: Vec<AppDiff>,
}

impl DiffReport {
    /// True when any object differs (what `capstan diff` exits 1 for).
    pub fn has_changes(&self) -> bool {
        self.apps.iter().any(AppDiff::has_changes)
    }

    /// True when some app could not be rendered (wholly or partly) at base or head: the diff
    /// cannot vouch for it (what `capstan diff` exits 3 for).
    pub fn has_not_checked(&self) -> bool {
        self.apps.iter().any(AppDiff::not_checked)
    }

    /// True when some app fails to render at head. A failure only at base is reported but does
    /// not fail the run: a change that repairs an app must not be blocked by the old breakage.
    pub fn has_failures(&self) -> bool {
        self.apps.iter().any(|a| {
            a.problems
                .iter()
                .any(|p| p.status == "failed" && p.side == "head")
        })
    }

    pub fn to_text(&self) -> String {
        render_text::text(self)
    }

    pub fn to_markdown(&self) -> String {
        render_text::markdown(self, None)
    }

    /// Markdown that fits `limit` characters: the largest object diffs are folded first.
    pub fn to_markdown_within(&self, limit: usize) -> String {
        render_text::markdown(self, Some(limit))
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

fn problem(side: &str, r: &AppRender) -> Option<SideProblem> {
    if let Some(reason) = r.not_checked() {
        return Some(SideProblem {
            side: side.into(),
            status: NOT_CHECKED.into(),
            message: reason,
        });
    }
    match &r.outcome {
        RenderedApp::Rendered(_) | RenderedApp::NotChecked { .. } => None,
        RenderedApp::Failed { error } => Some(SideProblem {
            side: side.into(),
            status: "failed".into(),
            message: error.clone(),
        }),
    }
}

/// Diffs one app between its base render (`None`: the app is new) and head render (`None`: the
/// app was removed). Ignore rules come from the base Application only: a change must not hide its
/// own differences, so rules it adds are noted (and reported as a finding by the analysis), not
/// applied, and a new app is shown without any.
/// The renders' notes (fallbacks to the binary, pins) are carried over, base ones marked so.
pub fn diff_app(name: &str, base: Option<&AppRender>, head: Option<&AppRender>) -> AppDiff {
    diff_app_within(name, base, head, &DiffLimits::default())
}

/// [`diff_app`] within `limits`: objects over the size bound, or left when the deadline passes,
/// are still counted as changed but get no text diff, and a "not checked" note says so.
pub fn diff_app_within(
    name: &str,
    base: Option<&AppRender>,
    head: Option<&AppRender>,
    limits: &DiffLimits,
) -> AppDiff {
    let mut d = diff_sides(name, base, head, limits);
    let notes = |r: Option<&AppRender>| match r.map(|r| &r.outcome) {
        Some(RenderedApp::Rendered(out)) => out.notes.clone(),
        _ => Vec::new(),
    };
    let head_notes = notes(head);
    for n in notes(base) {
        if !head_notes.contains(&n) {
            d.notes.push(format!("base: {n}"));
        }
    }
    d.notes.extend(head_notes);
    let added = added_ignore_differences(base.map(|r| &r.app), head.map(|r| &r.app));
    if !added.is_empty() {
        d.notes.push(format!(
            "ignoreDifferences added by this change, not applied until merged: {}",
            added
                .iter()
                .map(|v| serde_json::to_string(v).unwrap_or_default())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    d
}

/// Finding rule: the change adds `ignoreDifferences` entries to an Application.
pub const RULE_IGNORE_DIFFERENCES_ADDED: &str = "ignore-differences-added";

/// The head Application's `ignoreDifferences` entries the base Application does not have (all of
/// them for a new app).
pub fn added_ignore_differences<'a>(
    base: Option<&crate::apps::App>,
    head: Option<&'a crate::apps::App>,
) -> Vec<&'a Value> {
    let Some(head) = head else {
        return Vec::new();
    };
    head.ignore_differences
        .iter()
        .filter(|rule| base.is_none_or(|b| !b.ignore_differences.contains(rule)))
        .collect()
}

fn diff_sides(
    name: &str,
    base: Option<&AppRender>,
    head: Option<&AppRender>,
    limits: &DiffLimits,
) -> AppDiff {
    let problems: Vec<SideProblem> = [("base", base), ("head", head)]
        .into_iter()
        .filter_map(|(side, r)| r.and_then(|r| problem(side, r)))
        .collect();
    let rules = base
        .map(|r| r.app.ignore_differences.clone())
        .unwrap_or_default();
    let head_ok = head.is_none_or(|h| matches!(h.outcome, RenderedApp::Rendered(_)));
    let mut problems = problems;
    let base_ok = base.is_none_or(|b| matches!(b.outcome, RenderedApp::Rendered(_)));
    if !head_ok {
        return AppDiff {
            app: name.to_string(),
            reasons: Vec::new(),
            changes: Vec::new(),
            problems,
            notes: Vec::new(),
        };
    }
    let empty: &[K8sObject] = &[];
    if !base_ok {
        // Nothing to compare against: the head objects are shown as added, next to the reason.
        let mut d = diff_objects_within(
            name,
            empty,
            head.map(AppRender::objects).unwrap_or(empty),
            &rules,
            limits,
        );
        d.problems = problems;
        return d;
    }
    let mut d = diff_objects_within(
        name,
        base.map(AppRender::objects).unwrap_or(empty),
        head.map(AppRender::objects).unwrap_or(empty),
        &rules,
        limits,
    );
    // Partly rendered sides: the objects are diffed, and the rest is said to be unchecked.
    d.problems.append(&mut problems);
    d
}

/// Diffs two object lists of app `app` under its `ignoreDifferences` rules.
pub fn diff_objects(
    app: &str,
    base: &[K8sObject],
    head: &[K8sObject],
    ignore_differences: &[Value],
) -> AppDiff {
    diff_objects_within(app, base, head, ignore_differences, &DiffLimits::default())
}

/// Text diffs within the bounds: tracks the deadline and the objects left without text.
struct Budget<'a> {
    limits: &'a DiffLimits,
    deadline: Instant,
    too_big: Vec<String>,
    late: usize,
}

impl Budget<'_> {
    /// The unified diff, or `""` when the object is too big or time is up (recorded).
    fn unified(&mut self, id: &ObjectId, old: Option<&Value>, new: Option<&Value>) -> String {
        if Instant::now() >= self.deadline {
            self.late += 1;
            return String::new();
        }
        let (old_text, new_text) = (old.map(to_yaml), new.map(to_yaml));
        let size = |t: &Option<String>| t.as_ref().map_or(0, String::len);
        if size(&old_text).max(size(&new_text)) > self.limits.max_object_bytes {
            self.too_big.push(id.to_string());
            return String::new();
        }
        unified_text(id, old_text, new_text, self.deadline)
    }

    /// The "not checked" notes for what was left without text.
    fn notes(self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.too_big.is_empty() {
            out.push(crate::limits::not_checked(
                "diff_max_object_bytes",
                self.limits.max_object_bytes,
                &format!(
                    "no text diff for {} (larger than the bound)",
                    self.too_big.join(", ")
                ),
            ));
        }
        if self.late > 0 {
            out.push(crate::limits::not_checked(
                "diff_deadline_secs",
                self.limits.deadline.as_secs(),
                &format!("no text diff for {} more objects", self.late),
            ));
        }
        out
    }
}

/// [`diff_objects`] within `limits`.
pub fn diff_objects_within(
    app: &str,
    base: &[K8sObject],
    head: &[K8sObject],
    ignore_differences: &[Value],
    limits: &DiffLimits,
) -> AppDiff {
    let mut budget = Budget {
        limits,
        deadline: Instant::now() + limits.deadline,
        too_big: Vec::new(),
        late: 0,
    };
    let mut notes = normalize::rule_notes(ignore_differences);
    let index = |objs: &[K8sObject]| -> BTreeMap<ObjectId, Value> {
        objs.iter()
            .map(|o| {
                (
                    o.id.clone(),
                    normalize::normalize(app, &o.id, &o.value, ignore_differences),
                )
            })
            .collect()
    };
    let b = index(base);
    let h = index(head);
    let mut changes = Vec::new();
    for (id, bv) in &b {
        match h.get(id) {
            None => changes.push(ObjectChange {
                id: id.clone(),
                change: ObjectChangeKind::Removed,
                diff: budget.unified(id, Some(&normalize::mask(id, bv)), None),
                secret_keys: Vec::new(),
            }),
            Some(hv) if hv != bv => {
                let secret_keys = normalize::secret_key_changes(id, bv, hv);
                let (bm, hm) = (normalize::mask(id, bv), normalize::mask(id, hv));
                let diff = if bm == hm {
                    String::new()
                } else {
                    budget.unified(id, Some(&bm), Some(&hm))
                };
                changes.push(ObjectChange {
                    id: id.clone(),
                    change: ObjectChangeKind::Changed,
                    diff,
                    secret_keys,
                });
            }
            Some(_) => {}
        }
    }
    for (id, hv) in &h {
        if !b.contains_key(id) {
            changes.push(ObjectChange {
                id: id.clone(),
                change: ObjectChangeKind::Added,
                diff: budget.unified(id, None, Some(&normalize::mask(id, hv))),
                secret_keys: Vec::new(),
            });
        }
    }
    changes.sort_by(|x, y| x.id.cmp(&y.id));
    notes.dedup();
    notes.extend(budget.notes());
    AppDiff {
        app: app.to_string(),
        reasons: Vec::new(),
        changes,
        problems: Vec::new(),
        notes,
    }
}

fn to_yaml(v: &Value) -> String {
    yaml_serde::to_string(v).unwrap_or_else(|e| format!("# not representable as YAML: {e}\n"))
}

/// The unified diff of two YAML texts (`None`: the side does not exist). Past `deadline` the
/// diff algorithm gives up on finding the smallest diff and returns a coarser, still correct one.
fn unified_text(
    id: &ObjectId,
    old: Option<String>,
    new: Option<String>,
    deadline: Instant,
) -> String {
    let label = id.to_string();
    let a = if old.is_some() {
        format!("base/{label}")
    } else {
        "/dev/null".into()
    };
    let b = if new.is_some() {
        format!("head/{label}")
    } else {
        "/dev/null".into()
    };
    let (old_text, new_text) = (old.unwrap_or_default(), new.unwrap_or_default());
    TextDiff::configure()
        .deadline(deadline)
        .diff_lines(&old_text, &new_text)
        .unified_diff()
        .context_radius(CONTEXT_LINES)
        .header(&a, &b)
        .to_string()
}

#[cfg(test)]
mod tests;
