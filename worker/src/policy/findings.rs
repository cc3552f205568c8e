//! The one findings format every policy layer reports in.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::objects::ObjectId;

/// How much a finding matters: `deny` fails the check, `warn` only informs. The one severity of
/// every finding: the policy engine's, the cluster checks' and the stored report's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Deny,
    Warn,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Deny => "deny",
            Severity::Warn => "warn",
        })
    }
}

/// A repository file and 1-based line.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct SourceLocation {
    pub file: String,
    pub line: usize,
}

impl fmt::Display for SourceLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// One thing a policy layer found.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Finding {
    /// Stable identifier, e.g. `schema`, `removed-api`, `pss-run-as-non-root`.
    pub rule: String,
    pub severity: Severity,
    /// The app whose rendered objects produced the finding; empty for repository-wide findings.
    pub app: String,
    /// The object concerned, when there is one.
    pub object: Option<ObjectId>,
    /// Dotted field path inside the object (`spec.template.spec.containers[0].image`), when known.
    pub field: Option<String>,
    /// The file and line a human must change, when it could be traced.
    pub location: Option<SourceLocation>,
    pub message: String,
    /// Where the rule is explained.
    pub doc: String,
}

/// What makes two findings "the same" across the base and head of a change. The message is left
/// out where an object is named: it quotes values (an image tag, a count) that a change to
/// something else may alter. Severity is in: a warning that became a deny is new.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct FindingIdentity<'a> {
    app: &'a str,
    rule: &'a str,
    severity: Severity,
    object: Option<&'a ObjectId>,
    field: Option<&'a str>,
    message: Option<&'a str>,
}

impl Finding {
    pub fn identity(&self) -> FindingIdentity<'_> {
        FindingIdentity {
            app: &self.app,
            rule: &self.rule,
            severity: self.severity,
            object: self.object.as_ref(),
            field: self.field.as_deref(),
            message: self.object.is_none().then_some(self.message.as_str()),
        }
    }
}

/// Base of rule documentation links; rules are headings of `policies/README.md`.
pub const DOC_BASE: &str = "https://github.com/capstan-gitops/capstan/blob/main/policies/README.md";

/// The shipped rule documentation; its `### <rule-id>` headings are the link targets.
const SHIPPED_DOCS: &str = include_str!("../../../policies/README.md");

/// The documentation link for a rule id; empty for rules the shipped bundle does not document
/// (a repository's own rules, unless they return a `doc` of their own).
pub fn doc_link(rule: &str) -> String {
    static DOCUMENTED: std::sync::OnceLock<std::collections::HashSet<&'static str>> =
        std::sync::OnceLock::new();
    let documented = DOCUMENTED.get_or_init(|| {
        SHIPPED_DOCS
            .lines()
            .filter_map(|l| l.strip_prefix("### "))
            .map(str::trim)
            .collect()
    });
    if documented.contains(rule) {
        format!("{DOC_BASE}#{rule}")
    } else {
        String::new()
    }
}

impl Finding {
    pub fn new(rule: &str, severity: Severity, app: &str, message: impl Into<String>) -> Self {
        Finding {
            rule: rule.to_string(),
            severity,
            app: app.to_string(),
            object: None,
            field: None,
            location: None,
            message: message.into(),
            doc: doc_link(rule),
        }
    }

    pub fn on(mut self, object: &ObjectId) -> Self {
        self.object = Some(object.clone());
        self
    }

    pub fn at_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }
}

/// A finding that an exception turned off. Reported, never dropped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Suppressed {
    pub finding: Finding,
    /// Where the exception came from: `annotation` or `.capstan.yaml`.
    pub source: String,
    pub reason: String,
}

/// Everything one policy run produced.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// The findings that count toward the check.
    pub findings: Vec<Finding>,
    /// Findings of a change's apps that the base branch already had (`policy.gate: new`):
    /// listed, not counted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preexisting: Vec<Finding>,
    pub suppressed: Vec<Suppressed>,
    /// Objects checked, for summaries and the benchmark.
    pub objects_checked: usize,
    /// Every app checked with its object count, so apps without findings show up too.
    pub apps: Vec<(String, usize)>,
}

impl Report {
    pub fn deny_count(&self) -> usize {
        self.count(Severity::Deny)
    }

    pub fn warn_count(&self) -> usize {
        self.count(Severity::Warn)
    }

    fn count(&self, severity: Severity) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == severity)
            .count()
    }

    /// True when nothing denies.
    pub fn passed(&self) -> bool {
        self.deny_count() == 0
    }

    /// Whether the check passes under a `failOn` setting.
    pub fn passes(&self, fail_on: super::config::FailOn) -> bool {
        match fail_on {
            super::config::FailOn::Deny => self.deny_count() == 0,
            super::config::FailOn::Warn => self.findings.is_empty(),
            super::config::FailOn::Never => true,
        }
    }

    /// Moves the findings `base` had too (same app, rule, object and field; same message for a
    /// finding about no object) from `findings` to `preexisting`. Findings about the
    /// repository as a whole are always the change's own.
    pub fn set_aside_preexisting(&mut self, base: &Report) {
        let known: std::collections::HashSet<FindingIdentity<'_>> =
            base.findings.iter().map(Finding::identity).collect();
        let (old, new): (Vec<Finding>, Vec<Finding>) = std::mem::take(&mut self.findings)
            .into_iter()
            .partition(|f| !f.app.is_empty() && known.contains(&f.identity()));
        self.findings = new;
        self.preexisting.extend(old);
    }

    /// Sorts by app, then deny before warn, then object and rule, and drops exact duplicates.
    pub fn normalize(&mut self) {
        self.findings.sort_by(|a, b| {
            (&a.app, a.severity, &a.object, &a.rule, &a.field, &a.message)
                .cmp(&(&b.app, b.severity, &b.object, &b.rule, &b.field, &b.message))
        });
        self.findings.dedup();
    }
}
