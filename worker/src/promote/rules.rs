//! The `promotion:` section of `.capstan.yaml` (always read from the default branch), validated
//! into [`Rules`]. See docs/capstan-yaml.md for the schema; the short form:
//!
//! ```yaml
//! promotion:
//!   mode: pull-request            # pull-request | direct (`commit` is accepted for direct)
//!   trigger: merge                # merge | command
//!   rules:
//!     - name: podinfo-images
//!       app: podinfo              # or a glob, with `{app}` in both paths
//!       from: {environment: staging, path: applications/workloads/podinfo/overlays/staging}
//!       to: {environment: production, path: applications/workloads/podinfo/overlays/production}
//!       copy:
//!         - images                                   # every `images:` entry both list
//!         - images: [ghcr.io/stefanprodan/podinfo]   # only these
//!         - field: {file: values.yaml, path: image.tag}
//!         - file: config/settings.json
//!       conditions: {requireHealthy: true, soak: 30m, approvals: 1}
//! ```

use std::time::Duration;

use globset::{Glob, GlobMatcher};

use super::edit::YamlPath;
use crate::settings::{CopySpec, RepoSettings};

/// A `promotion:` setting that cannot be used; names the rule and key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(".capstan.yaml: promotion{where_}: {message}")]
pub struct RulesError {
    pub where_: String,
    pub message: String,
}

fn err(where_: impl Into<String>, message: impl Into<String>) -> RulesError {
    RulesError {
        where_: where_.into(),
        message: message.into(),
    }
}

/// How a promotion lands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    PullRequest,
    Direct,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::PullRequest => "pull-request",
            Mode::Direct => "direct",
        }
    }
}

/// What starts a promotion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// A merge (or push) to the default branch that changes the source overlay.
    Merge,
    /// Only `/capstan promote`.
    Command,
}

/// One thing a rule copies from the source overlay to the target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Copy {
    /// The kustomization's `images:` entries (`newName`, `newTag`, `digest`); all names both
    /// list, or only the given ones.
    Images(Option<Vec<String>>),
    /// A scalar in a YAML file by path; the file is relative to each overlay.
    Field { file: String, path: YamlPath },
    /// A whole file, relative to each overlay.
    File(String),
}

/// Checked before a promotion is applied.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Conditions {
    /// The source environment's ArgoCD Application must be Synced and Healthy.
    pub require_healthy: bool,
    /// Time since the source commit before a merge promotes it.
    pub soak: Option<Duration>,
    /// Approving reviews a promotion pull request needs (reported in its body).
    pub approvals: u32,
}

/// One side of a rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct End {
    pub environment: String,
    /// Folder of the overlay; may hold `{app}`.
    pub path: String,
}

#[derive(Clone, Debug)]
pub struct Rule {
    pub name: String,
    /// App name or glob.
    pub app: String,
    app_glob: GlobMatcher,
    pub from: End,
    pub to: End,
    pub copy: Vec<Copy>,
    pub mode: Mode,
    pub trigger: Trigger,
    pub conditions: Conditions,
}

/// The rule and the app it applies to, with both overlay folders resolved.
#[derive(Clone, Debug)]
pub struct Matched<'r> {
    pub rule: &'r Rule,
    pub app: String,
    pub from_dir: String,
    pub to_dir: String,
}

/// A [`Matched`] owning its rule, for work handed to the blocking pool.
#[derive(Clone, Debug)]
pub struct OwnedMatch {
    rule: Rule,
    app: String,
    from_dir: String,
    to_dir: String,
}

impl Matched<'_> {
    pub fn to_owned_match(&self) -> OwnedMatch {
        OwnedMatch {
            rule: self.rule.clone(),
            app: self.app.clone(),
            from_dir: self.from_dir.clone(),
            to_dir: self.to_dir.clone(),
        }
    }
}

impl OwnedMatch {
    pub fn get(&self) -> Matched<'_> {
        Matched {
            rule: &self.rule,
            app: self.app.clone(),
            from_dir: self.from_dir.clone(),
            to_dir: self.to_dir.clone(),
        }
    }
}

impl Rule {
    /// Resolve the rule for `app` (must match the rule's app or glob).
    pub fn for_app(&self, app: &str) -> Option<Matched<'_>> {
        if !self.app_glob.is_match(app) || (!self.from.path.contains("{app}") && app != self.app) {
            return None;
        }
        Some(Matched {
            rule: self,
            app: app.to_string(),
            from_dir: self.from.path.replace("{app}", app),
            to_dir: self.to.path.replace("{app}", app),
        })
    }

    /// The app whose source overlay holds `path`, if any.
    pub fn app_of_source_path(&self, path: &str) -> Option<String> {
        let (prefix, suffix) = match self.from.path.split_once("{app}") {
            Some((p, s)) => (p, s),
            None => {
                return under(path, &self.from.path).then(|| self.app.clone());
            }
        };
        let rest = path.strip_prefix(prefix)?;
        let (app, rest) = rest.split_once('/')?;
        let rest = format!("/{rest}");
        let app_dir_rest = suffix.trim_end_matches('/');
        (rest.starts_with(&format!("{app_dir_rest}/")) && self.app_glob.is_match(app))
            .then(|| app.to_string())
    }
}

fn under(path: &str, dir: &str) -> bool {
    let dir = dir.trim_end_matches('/');
    path.strip_prefix(dir).is_some_and(|r| r.starts_with('/'))
}

/// Every rule, in file order, and the environments in promotion order.
#[derive(Clone, Debug, Default)]
pub struct Rules {
    pub environments: Vec<String>,
    pub rules: Vec<Rule>,
}

fn mode(s: Option<&str>, default: Mode, at: &str) -> Result<Mode, RulesError> {
    match s {
        None => Ok(default),
        Some("pull-request") => Ok(Mode::PullRequest),
        Some("direct" | "commit") => Ok(Mode::Direct),
        Some(other) => Err(err(
            at,
            format!("mode `{other}`; allowed: pull-request, direct (or its alias commit)"),
        )),
    }
}

fn trigger(s: Option<&str>, default: Trigger, at: &str) -> Result<Trigger, RulesError> {
    match s {
        None => Ok(default),
        Some("merge") => Ok(Trigger::Merge),
        Some("command") => Ok(Trigger::Command),
        Some(other) => Err(err(
            at,
            format!("trigger `{other}`; allowed: merge, command"),
        )),
    }
}

/// `30s`, `10m`, `2h`, `1d`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = n.parse().ok()?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    n.checked_mul(secs).map(Duration::from_secs)
}

fn safe_rel(p: &str) -> bool {
    !p.is_empty()
        && !p.starts_with('/')
        && !p.contains('\\')
        && p.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
}

fn copy_item(raw: CopySpec, at: &str) -> Result<Copy, RulesError> {
    let bad = |m: &str| err(at, format!("copy: {m}"));
    match raw {
        CopySpec::Word(w) if w == "images" => Ok(Copy::Images(None)),
        CopySpec::Word(w) => Err(bad(&format!(
            "`{w}`; allowed: images, {{images: [names]}}, {{field: {{file, path}}}}, {{file: path}}"
        ))),
        CopySpec::Map(m) if m.len() == 1 => {
            let (k, v) = m.into_iter().next().ok_or_else(|| bad("empty entry"))?;
            match k.as_str() {
                "images" => {
                    let names: Vec<String> = serde_json::from_value(v)
                        .map_err(|_| bad("images must be a list of image names"))?;
                    Ok(Copy::Images(Some(names)))
                }
                "file" => {
                    let f = v.as_str().filter(|f| safe_rel(f));
                    f.map(|f| Copy::File(f.to_string()))
                        .ok_or_else(|| bad("file must be a relative path inside the overlay"))
                }
                "field" => {
                    let file = v["file"].as_str().filter(|f| safe_rel(f));
                    let path = v["path"].as_str();
                    match (file, path, v.as_object().map(|o| o.len())) {
                        (Some(file), Some(path), Some(2)) => Ok(Copy::Field {
                            file: file.to_string(),
                            path: YamlPath::parse(path).map_err(|e| bad(&e))?,
                        }),
                        _ => Err(bad(
                            "field needs exactly `file` (relative to the overlay) and `path`",
                        )),
                    }
                }
                other => Err(bad(&format!("unknown kind `{other}`"))),
            }
        }
        CopySpec::Map(_) => Err(bad("each entry has exactly one kind")),
    }
}

impl Rules {
    /// Validates the `promotion:` section of the parsed settings into rules. No rules: empty.
    pub fn from_settings(settings: &RepoSettings) -> Result<Rules, RulesError> {
        let environments = settings.environment_names();
        let p = settings.promotion.clone();
        let default_mode = mode(p.mode.as_deref(), Mode::PullRequest, ".mode")?;
        let default_trigger = trigger(p.trigger.as_deref(), Trigger::Merge, ".trigger")?;
        let mut rules: Vec<Rule> = Vec::new();
        for (i, r) in p.rules.into_iter().enumerate() {
            let at = format!(".rules[{i}] ({})", r.name);
            if rules.iter().any(|x| x.name == r.name) {
                return Err(err(&at, "duplicate rule name"));
            }
            let pos = |env: &str, end: &str| {
                if environments.is_empty() {
                    return Ok(None);
                }
                environments
                    .iter()
                    .position(|e| e == env)
                    .map(Some)
                    .ok_or_else(|| {
                        err(
                            &at,
                            format!("{end}.environment `{env}` is not in environments"),
                        )
                    })
            };
            if let (Some(f), Some(t)) = (
                pos(&r.from.environment, "from")?,
                pos(&r.to.environment, "to")?,
            ) && f >= t
            {
                return Err(err(&at, "`to` must come after `from` in environments"));
            }
            for (end, path) in [("from", &r.from.path), ("to", &r.to.path)] {
                if !safe_rel(path.trim_end_matches('/')) {
                    return Err(err(&at, format!("{end}.path must be a relative folder")));
                }
            }
            let templated = r.from.path.contains("{app}");
            if templated != r.to.path.contains("{app}") {
                return Err(err(&at, "`{app}` must appear in both paths or in neither"));
            }
            if !templated && r.app.contains(['*', '?', '[']) {
                return Err(err(
                    &at,
                    "a glob app needs `{app}` in from.path and to.path",
                ));
            }
            let app_glob = Glob::new(&r.app)
                .map_err(|e| err(&at, format!("app: {e}")))?
                .compile_matcher();
            if r.copy.is_empty() {
                return Err(err(&at, "copy is empty"));
            }
            let copy = r
                .copy
                .into_iter()
                .map(|c| copy_item(c, &at))
                .collect::<Result<Vec<_>, _>>()?;
            let c = r.conditions.unwrap_or_default();
            let soak = match c.soak.as_deref() {
                None => None,
                Some(s) => Some(parse_duration(s).ok_or_else(|| {
                    err(
                        &at,
                        format!("conditions.soak `{s}`; write e.g. 30s, 10m, 2h, 1d"),
                    )
                })?),
            };
            rules.push(Rule {
                mode: mode(r.mode.as_deref(), default_mode, &at)?,
                trigger: trigger(r.trigger.as_deref(), default_trigger, &at)?,
                conditions: Conditions {
                    require_healthy: c.require_healthy.or(r.require_healthy).unwrap_or(false),
                    soak,
                    approvals: c.approvals.unwrap_or(0),
                },
                name: r.name,
                app: r.app,
                app_glob,
                from: End {
                    environment: r.from.environment,
                    path: r.from.path.trim_end_matches('/').to_string(),
                },
                to: End {
                    environment: r.to.environment,
                    path: r.to.path.trim_end_matches('/').to_string(),
                },
                copy,
            });
        }
        Ok(Rules {
            environments,
            rules,
        })
    }

    /// Rules (with their apps) whose source overlay holds one of `paths`.
    pub fn affected<'a>(&'a self, paths: &[String]) -> Vec<Matched<'a>> {
        let mut out: Vec<Matched<'a>> = Vec::new();
        for rule in &self.rules {
            for p in paths {
                if let Some(app) = rule.app_of_source_path(p)
                    && !out.iter().any(|m| m.rule.name == rule.name && m.app == app)
                    && let Some(m) = rule.for_app(&app)
                {
                    out.push(m);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const THREE: &str = "environments: [{name: dev}, {name: staging}, {name: production}]
promotion:
  mode: commit
  rules:
    - name: up
      app: \"web-*\"
      from: {environment: dev, path: \"apps/{app}/dev\"}
      to: {environment: staging, path: \"apps/{app}/staging\"}
      copy: [images, {field: {file: values.yaml, path: image.tag}}, {file: cfg.json}]
      mode: pull-request
      conditions: {requireHealthy: true, soak: 10m, approvals: 1}
    - name: prod
      app: web-a
      from: {environment: staging, path: apps/web-a/staging}
      to: {environment: production, path: apps/web-a/production}
      copy: [{images: [nginx]}]
      trigger: command
";

    #[test]
    fn rules_read_with_defaults_aliases_and_globs() {
        let r = Rules::from_settings(&RepoSettings::parse(THREE).unwrap()).unwrap();
        assert_eq!(r.rules.len(), 2);
        let up = &r.rules[0];
        assert_eq!(up.mode, Mode::PullRequest);
        assert_eq!(
            r.rules[1].mode,
            Mode::Direct,
            "commit is an alias of direct"
        );
        assert_eq!(r.rules[1].trigger, Trigger::Command);
        assert_eq!(up.conditions.soak, Some(Duration::from_secs(600)));
        assert_eq!(up.copy.len(), 3);
        let hit = r.affected(&[
            "apps/web-b/dev/kustomization.yaml".into(),
            "apps/web-a/staging/x".into(),
        ]);
        let names: Vec<(&str, &str, &str)> = hit
            .iter()
            .map(|m| (m.rule.name.as_str(), m.app.as_str(), m.to_dir.as_str()))
            .collect();
        assert_eq!(
            names,
            vec![
                ("up", "web-b", "apps/web-b/staging"),
                ("prod", "web-a", "apps/web-a/production")
            ]
        );
        assert!(
            r.affected(&["apps/other/dev/k.yaml".into(), "apps/web-b/devx/k".into()])
                .is_empty()
        );
    }

    #[test]
    fn bad_rules_are_refused_naming_the_rule() {
        let cases = [
            ("to: {environment: dev", "must come after"),
            ("mode: pull-request\n", "mode `sideways`"),
            ("copy: [images, {file: ../etc/passwd}]", "relative path"),
            ("soak: 10m", "conditions.soak `10 minutes`"),
            ("", "both paths"),
            (
                "copy: [images, {field: {file: values.yaml, path: image.tag}}, {file: cfg.json}]",
                "unknown kind",
            ),
        ];
        let edits = [
            THREE.replace("to: {environment: staging", "to: {environment: dev"),
            THREE.replacen("mode: pull-request\n", "mode: sideways\n", 1),
            THREE.replace("{file: cfg.json}", "{file: ../etc/passwd}"),
            THREE.replace("soak: 10m", "soak: 10 minutes"),
            THREE.replace("path: \"apps/{app}/staging\"", "path: apps/x/staging"),
            THREE.replace("{file: cfg.json}", "{patch: cfg.json}"),
        ];
        for ((_, want), text) in cases.iter().zip(edits) {
            let e = Rules::from_settings(&RepoSettings::parse(&text).unwrap())
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{e} should mention {want}");
            assert!(e.contains("rules[0] (up)") || e.contains("rules[1]"), "{e}");
        }
    }

    #[test]
    fn this_repositorys_own_settings_are_valid_rules() {
        let r = Rules::from_settings(
            &RepoSettings::parse(include_str!("../../../.capstan.yaml")).unwrap(),
        )
        .unwrap();
        assert_eq!(r.environments, vec!["staging", "production"]);
        let rule = &r.rules[0];
        assert_eq!(
            (rule.mode, rule.trigger),
            (Mode::PullRequest, Trigger::Merge)
        );
        assert_eq!(rule.copy, vec![Copy::Images(None)]);
        assert!(rule.conditions.require_healthy);
        assert_eq!(rule.conditions.approvals, 1);
    }
}
