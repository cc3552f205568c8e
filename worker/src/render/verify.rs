//! Never a wrong render: the native engine's output checked against the kustomize binary.
//!
//! With the binary installed, a native render is also rendered by the binary when the repository's
//! `render.verify` asks for it: `always` (every render, before its output is used), or `sample`
//! (a deterministic share, `render.verifyShare`, chosen by hashing the repository, the
//! kustomization's path and its input digests, plus every kustomization the first time it is seen
//! after an engine version change). On any difference, or an engine error where the binary
//! succeeds, the binary's output is used, the kustomization is *pinned* to the binary until the
//! engine version changes, and the mismatch is recorded: a counter on `/metrics`, a log line with
//! the path and the first differing document, a row in the store (the `/fidelity` page) and a
//! note on the render (and so in that pull request's report).
//!
//! Cost: in `sample` mode the service defers the binary renders until the report is posted
//! ([`Scope::defer`]), so the report's latency does not pay for a process per sampled render; a
//! mismatch found then pins the kustomization and the check is run again, this time on the
//! binary's output. The CLI and `always` verify before the output is used.
//!
//! [`Fidelity`] is the process's memory of pins, seen kustomizations and unsaved records; the PR
//! handler loads it from and saves it to the store (`store::fidelity`), so pins survive restarts
//! and hold on every replica that reads the same database.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Digest;

use super::{RenderError, RenderSource};
use crate::repo_fs::{MemFs, RepoFs, RepoPath};
use crate::settings::{RenderSettings, RepoSettings, SettingsError};

/// `render.verify` and `render.notChecked`, as the typed repository settings define them.
pub use crate::settings::{NotChecked as NotCheckedConclusion, RenderVerify as VerifyMode};

/// The `render:` keys verification and the check conclusion use, taken from [`RenderSettings`]
/// (one parser for `.capstan.yaml`: [`RepoSettings`]).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifySettings {
    pub verify: VerifyMode,
    /// Share of native renders verified in `sample` mode, 0 to 1.
    pub verify_share: f64,
    /// Deferred sampled verifications may take this share of the native render time, 0 to 1.
    pub verify_budget: f64,
    pub not_checked: NotCheckedConclusion,
}

impl Default for VerifySettings {
    fn default() -> Self {
        Self::from(&RenderSettings::default())
    }
}

impl From<&RenderSettings> for VerifySettings {
    fn from(r: &RenderSettings) -> Self {
        VerifySettings {
            verify: r.verify,
            verify_share: r.verify_share,
            verify_budget: r.verify_budget,
            not_checked: r.not_checked,
        }
    }
}

impl VerifySettings {
    /// The settings of the tree `fs` (its `.capstan.yaml`; defaults without one).
    pub fn read(fs: &dyn RepoFs) -> Result<Self, SettingsError> {
        let (settings, _) = RepoSettings::from_tree(fs)?;
        Ok(Self::from(&settings.render))
    }
}

/// Which repository renders are for, and how that repository wants them verified.
#[derive(Clone, Debug, Default)]
pub struct Scope {
    /// `owner/name`; empty for the CLI (one repository per process).
    pub repo: String,
    pub settings: VerifySettings,
    /// Run `sample`-mode verifications later ([`Fidelity::take_pending`]) instead of before the
    /// output is used. The service sets it; `always` never defers.
    pub defer: bool,
}

/// How a verification ended badly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MismatchKind {
    /// Both succeeded with different output.
    Differs,
    /// The engine failed where the binary succeeded.
    EngineError,
}

impl MismatchKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MismatchKind::Differs => "differs",
            MismatchKind::EngineError => "engine_error",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [MismatchKind::Differs, MismatchKind::EngineError]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// One kustomization whose native render did not match the binary's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Mismatch {
    pub repo: String,
    pub path: String,
    pub engine_version: String,
    pub kind: MismatchKind,
    /// The first differing document (its identity and a short diff; Secret values never shown),
    /// or the engine's error.
    pub first_difference: String,
    /// Unix milliseconds.
    pub seen_at: i64,
}

impl Mismatch {
    /// The note a render pinned by this mismatch carries.
    pub fn note(&self, tool: &str) -> String {
        let what = match self.kind {
            MismatchKind::Differs => "the native engine's output differed from it",
            MismatchKind::EngineError => "the native engine failed where it succeeded",
        };
        let first = self.first_difference.lines().next().unwrap_or_default();
        format!(
            "rendered with {tool}: this kustomization is pinned to the binary because {what} (engine {}; {first})",
            self.engine_version
        )
    }
}

/// A verification left for later: the input files are copied, so the tree may be gone by then.
pub struct Pending {
    /// First render of this kustomization after an engine change: verified whatever the budget.
    pub required: bool,
    pub repo: String,
    pub source: RenderSource,
    pub files: MemFs,
    pub inputs: BTreeSet<RepoPath>,
    pub native_yaml: Arc<str>,
}

/// Verifications by outcome since the process started (the `/metrics` counters).
static MATCHED: AtomicU64 = AtomicU64::new(0);
static DIFFERED: AtomicU64 = AtomicU64::new(0);
static ENGINE_ERRORS: AtomicU64 = AtomicU64::new(0);
/// Sampled verifications left out because the repository's budget was spent.
static OVER_BUDGET: AtomicU64 = AtomicU64::new(0);

/// `capstan_render_verifications_total` in Prometheus text format.
pub fn metrics_text() -> String {
    crate::runner::metrics::verifications_text(&[
        ("match", MATCHED.load(Ordering::Relaxed)),
        ("differs", DIFFERED.load(Ordering::Relaxed)),
        ("engine_error", ENGINE_ERRORS.load(Ordering::Relaxed)),
        ("over_budget", OVER_BUDGET.load(Ordering::Relaxed)),
    ])
}

/// Mismatches counted since the process started (both kinds), for tests.
pub fn mismatches_counted() -> u64 {
    DIFFERED.load(Ordering::Relaxed) + ENGINE_ERRORS.load(Ordering::Relaxed)
}

#[derive(Default)]
struct State {
    /// By (repo, path), for the current engine version.
    pins: HashMap<(String, String), Mismatch>,
    seen: HashSet<(String, String)>,
    unsaved_seen: Vec<(String, String)>,
    unsaved_mismatches: Vec<Mismatch>,
    pending: Vec<Pending>,
    /// Per repository: binary time the sampled verifications may still spend, in seconds
    /// (earned as a share of native render time, spent by each binary render; may go below 0).
    credit: HashMap<String, f64>,
    /// Mean binary render time of recent verifications, in seconds (none measured yet: 0).
    binary_cost: f64,
}

/// Most credit one repository can save up, in seconds: a long quiet spell of renders must not
/// turn into a burst of binary processes later.
const MAX_CREDIT_SECS: f64 = 30.0;

/// Pins, seen kustomizations and records not yet saved, for one engine version.
pub struct Fidelity {
    engine_version: String,
    /// Set once the seen set was loaded from a store: only then does "first time seen after an
    /// engine change" mean anything (a CLI process sees everything for the first time).
    first_seen_tracked: AtomicBool,
    state: Mutex<State>,
}

impl Fidelity {
    pub fn new(engine_version: String) -> Self {
        Fidelity {
            engine_version,
            first_seen_tracked: AtomicBool::new(false),
            state: Mutex::new(State::default()),
        }
    }

    pub fn engine_version(&self) -> &str {
        &self.engine_version
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        // A poisoned lock means a panic mid-update elsewhere; the sets stay usable.
        let mut g = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g)
    }

    /// The mismatch that pins `path` of `repo` to the binary, if any.
    pub fn pin(&self, repo: &str, path: &RepoPath) -> Option<Mismatch> {
        self.with(|s| s.pins.get(&(repo.to_string(), path.to_string())).cloned())
    }

    /// Pins read from the store; records of another engine version are ignored.
    pub fn load_pins(&self, pins: Vec<Mismatch>) {
        self.with(|s| {
            for m in pins
                .into_iter()
                .filter(|m| m.engine_version == self.engine_version)
            {
                s.pins.entry((m.repo.clone(), m.path.clone())).or_insert(m);
            }
        })
    }

    /// Kustomizations already verified with this engine version, read from the store. From
    /// then on, one never seen is verified on its first render.
    pub fn load_seen(&self, seen: Vec<(String, String)>) {
        self.with(|s| s.seen.extend(seen));
        self.first_seen_tracked.store(true, Ordering::Relaxed);
    }

    pub fn first_seen_tracked(&self) -> bool {
        self.first_seen_tracked.load(Ordering::Relaxed)
    }

    fn is_first_seen(&self, repo: &str, path: &RepoPath) -> bool {
        self.first_seen_tracked()
            && self.with(|s| !s.seen.contains(&(repo.to_string(), path.to_string())))
    }

    fn mark_seen(&self, repo: &str, path: &RepoPath) {
        self.with(|s| {
            let key = (repo.to_string(), path.to_string());
            if s.seen.insert(key.clone()) {
                s.unsaved_seen.push(key);
            }
        })
    }

    /// Records and seen kustomizations not yet written to the store.
    pub fn take_unsaved(&self) -> (Vec<Mismatch>, Vec<(String, String)>) {
        self.with(|s| {
            (
                std::mem::take(&mut s.unsaved_mismatches),
                std::mem::take(&mut s.unsaved_seen),
            )
        })
    }

    /// Native rendering time for `repo` earns `budget` of itself as verification time.
    pub fn earn(&self, repo: &str, native: std::time::Duration, budget: f64) {
        if budget <= 0.0 {
            return;
        }
        self.with(|s| {
            let c = s.credit.entry(repo.to_string()).or_insert(0.0);
            *c = (*c + native.as_secs_f64() * budget).min(MAX_CREDIT_SECS);
        })
    }

    /// Whether a sampled verification for `repo` fits the budget: the credit covers what a
    /// binary render has cost lately (before the first one is measured, any credit will do).
    pub fn affordable(&self, repo: &str) -> bool {
        let ok = self.with(|s| {
            let credit = s.credit.get(repo).copied().unwrap_or(0.0);
            credit > 0.0 && credit >= s.binary_cost
        });
        if !ok {
            OVER_BUDGET.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    /// A binary render for `repo` took `took`; a sampled one is paid from the credit.
    pub fn spent(&self, repo: &str, took: std::time::Duration, sampled: bool) {
        let secs = took.as_secs_f64();
        self.with(|s| {
            s.binary_cost = if s.binary_cost == 0.0 {
                secs
            } else {
                0.8 * s.binary_cost + 0.2 * secs
            };
            if sampled {
                *s.credit.entry(repo.to_string()).or_insert(0.0) -= secs;
            }
        })
    }

    /// Deferred verifications of `repo`.
    pub fn take_pending(&self, repo: &str) -> Vec<Pending> {
        self.with(|s| {
            let (mine, rest): (Vec<Pending>, Vec<Pending>) = std::mem::take(&mut s.pending)
                .into_iter()
                .partition(|p| p.repo == repo);
            s.pending = rest;
            mine
        })
    }

    fn defer(&self, p: Pending) {
        self.with(|s| {
            // The same output of the same kustomization needs one verification only.
            if !s.pending.iter().any(|q| {
                q.repo == p.repo && q.source.path == p.source.path && q.native_yaml == p.native_yaml
            }) {
                s.pending.push(p);
            }
        })
    }

    /// Records a mismatch: pin, counter, log line, unsaved record.
    fn record(&self, m: Mismatch) {
        match m.kind {
            MismatchKind::Differs => DIFFERED.fetch_add(1, Ordering::Relaxed),
            MismatchKind::EngineError => ENGINE_ERRORS.fetch_add(1, Ordering::Relaxed),
        };
        tracing::warn!(
            repo = %m.repo,
            path = %m.path,
            engine = %m.engine_version,
            kind = m.kind.as_str(),
            first_difference = %m.first_difference,
            "native render does not match the kustomize binary; pinned to the binary"
        );
        self.with(|s| {
            s.pins.insert((m.repo.clone(), m.path.clone()), m.clone());
            s.unsaved_mismatches.push(m);
        })
    }

    fn matched(&self, repo: &str, path: &RepoPath) {
        MATCHED.fetch_add(1, Ordering::Relaxed);
        self.mark_seen(repo, path);
    }
}

/// Whether a native render of `path` with these input digests falls in the sample.
pub fn sampled(
    repo: &str,
    path: &RepoPath,
    prints: &BTreeMap<RepoPath, String>,
    share: f64,
) -> bool {
    if share <= 0.0 {
        return false;
    }
    if share >= 1.0 {
        return true;
    }
    let mut h = sha2::Sha256::new();
    h.update(repo);
    h.update([0]);
    h.update(path.as_str());
    for (p, d) in prints {
        h.update([0]);
        h.update(p.as_str());
        h.update([0]);
        h.update(d);
    }
    let digest = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(first) as f64) < share * (u64::MAX as f64)
}

/// When to verify one native render.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum When {
    Never,
    Now,
    /// Deferred; `required` for a kustomization's first render after an engine change.
    Later {
        required: bool,
    },
}

pub(super) fn when(
    fidelity: &Fidelity,
    scope: &Scope,
    path: &RepoPath,
    prints: &BTreeMap<RepoPath, String>,
) -> When {
    let (wanted, required) = match scope.settings.verify {
        VerifyMode::Off => (false, false),
        VerifyMode::Always => return When::Now,
        VerifyMode::Sample => {
            let first = fidelity.is_first_seen(&scope.repo, path);
            (
                first || sampled(&scope.repo, path, prints, scope.settings.verify_share),
                first,
            )
        }
    };
    match (wanted, scope.defer) {
        (false, _) => When::Never,
        (true, true) => When::Later { required },
        (true, false) => When::Now,
    }
}

/// Compares a native result with the binary's and settles which output is used: the binary's
/// whenever they disagree (the mismatch is then recorded and the kustomization pinned). `Err`
/// from the engine with `Err` from the binary returns the engine's error.
pub(super) fn settle(
    fidelity: &Fidelity,
    repo: &str,
    source: &RenderSource,
    native: Result<String, RenderError>,
    binary: Result<String, RenderError>,
) -> Settled {
    let mismatch = |kind, first_difference| Mismatch {
        repo: repo.to_string(),
        path: source.path.to_string(),
        engine_version: fidelity.engine_version().to_string(),
        kind,
        first_difference,
        seen_at: crate::queue::now_ms(),
    };
    match (native, binary) {
        (Ok(n), Ok(b)) if n == b => {
            fidelity.matched(repo, &source.path);
            Settled::Native(n)
        }
        (Ok(n), Ok(b)) => {
            let m = mismatch(MismatchKind::Differs, first_difference(&n, &b));
            fidelity.mark_seen(repo, &source.path);
            fidelity.record(m.clone());
            Settled::Binary(b, m)
        }
        (Err(e), Ok(b)) => {
            let m = mismatch(MismatchKind::EngineError, format!("engine error: {e}"));
            fidelity.mark_seen(repo, &source.path);
            fidelity.record(m.clone());
            Settled::Binary(b, m)
        }
        // The binary could not vouch either way (not installed properly, timed out, or the input
        // is broken for both): the engine's own answer stands, error or not.
        (Ok(n), Err(be)) => {
            tracing::warn!(path = %source.path, error = %be, "render verification: the kustomize binary failed");
            Settled::Unverified(n, be.to_string())
        }
        (Err(e), Err(_)) => Settled::Failed(e),
    }
}

pub(super) enum Settled {
    Native(String),
    Binary(String, Mismatch),
    Unverified(String, String),
    Failed(RenderError),
}

/// Queues a deferred verification of a native render, copying its input files.
pub(super) fn defer(
    fidelity: &Fidelity,
    repo: &str,
    fs: &dyn RepoFs,
    source: &RenderSource,
    inputs: &BTreeSet<RepoPath>,
    native_yaml: &str,
    required: bool,
) {
    let mut files = MemFs::new();
    for f in inputs {
        // An unreadable input now was readable a moment ago for the render; skip the sample.
        let Ok(bytes) = fs.read(f) else { return };
        if files.insert(f.as_str(), &bytes[..]).is_err() {
            return;
        }
    }
    fidelity.defer(Pending {
        required,
        repo: repo.to_string(),
        source: source.clone(),
        files,
        inputs: inputs.clone(),
        native_yaml: Arc::from(native_yaml),
    });
}

/// Splits a `kustomize build` stream into documents.
fn documents(yaml: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let bytes = yaml.as_bytes();
    let mut i = 0;
    while i < yaml.len() {
        let line_end = yaml[i..].find('\n').map_or(yaml.len(), |n| i + n + 1);
        let line = &yaml[i..line_end];
        if line.trim_end() == "---" && (i == 0 || bytes[i - 1] == b'\n') {
            if i > start {
                out.push(&yaml[start..i]);
            }
            start = line_end;
        }
        i = line_end;
    }
    if start < yaml.len() {
        out.push(&yaml[start..]);
    }
    out
}

/// `kind name` of a document, from its first top-level `kind:` and `metadata.name`.
fn identity(doc: &str) -> (String, String) {
    let v: Option<Value> = crate::yaml::parse_single(doc, "render").ok();
    let get = |p: &str| {
        v.as_ref()
            .and_then(|v| v.pointer(p))
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string()
    };
    (get("/kind"), get("/metadata/name"))
}

const DIFFERENCE_MAX: usize = 2000;

/// The first document where the two streams differ: its position and identity, then a short
/// unified diff (engine → binary). Secrets show their identity only.
pub fn first_difference(native: &str, binary: &str) -> String {
    let (n, b) = (documents(native), documents(binary));
    let i = (0..n.len().max(b.len()))
        .find(|&i| n.get(i) != b.get(i))
        .unwrap_or(0);
    let (nd, bd) = (
        n.get(i).copied().unwrap_or(""),
        b.get(i).copied().unwrap_or(""),
    );
    let (kind, name) = identity(if bd.is_empty() { nd } else { bd });
    let mut out = format!("document {} ({kind} {name})", i + 1);
    if kind == "Secret" || identity(nd).0 == "Secret" {
        out.push_str(": values not shown");
        return out;
    }
    out.push('\n');
    let diff = similar::TextDiff::from_lines(nd, bd)
        .unified_diff()
        .context_radius(2)
        .header("engine", "kustomize")
        .to_string();
    out.push_str(&diff);
    if out.len() > DIFFERENCE_MAX {
        let mut cut = DIFFERENCE_MAX;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push_str("\n…");
    }
    out
}

/// The engine's result for one kustomization, as a hook sees and returns it.
pub type EngineResult = Result<String, RenderError>;

/// A test hook: changes the engine's result before verification sees it (e.g. to break its output
/// on purpose). Never set by configuration.
#[derive(Clone)]
pub struct EngineHook(pub Arc<EngineFn>);

/// What an [`EngineHook`] calls.
pub type EngineFn = dyn Fn(&RepoPath, EngineResult) -> EngineResult + Send + Sync;

impl std::fmt::Debug for EngineHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EngineHook(..)")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn settings_come_from_the_typed_render_section() {
        let d = VerifySettings::default();
        assert_eq!(d.verify, VerifyMode::Sample);
        assert_eq!(d.verify_share, 0.1);
        let (s, _) = RepoSettings::from_tree(&MemFs::new().with(
            ".capstan.yaml",
            "render: {verify: always, verifyShare: 0.5, notChecked: failure}\n",
        ))
        .unwrap();
        let v = VerifySettings::from(&s.render);
        assert_eq!(v.verify, VerifyMode::Always);
        assert_eq!(v.verify_share, 0.5);
        assert_eq!(v.not_checked, NotCheckedConclusion::Failure);
        let bad = MemFs::new().with(".capstan.yaml", "render: {verify: sometimes}\n");
        let e = VerifySettings::read(&bad).unwrap_err();
        assert!(e.to_string().contains("render.verify"), "{e}");
    }

    #[test]
    fn the_budget_is_earned_by_rendering_and_spent_by_the_binary() {
        use std::time::Duration;
        let f = Fidelity::new("v".into());
        let ms = Duration::from_millis;
        assert!(!f.affordable("a/b"), "nothing rendered, nothing to spend");
        f.earn("a/b", ms(1000), 0.1);
        assert!(f.affordable("a/b"));
        assert!(!f.affordable("c/d"), "credit belongs to one repository");
        f.spent("a/b", ms(200), true);
        assert!(!f.affordable("a/b"), "overdrawn by 100 ms");
        f.earn("a/b", ms(2000), 0.1);
        assert!(
            !f.affordable("a/b"),
            "100 ms of credit does not cover a 200 ms binary render"
        );
        f.earn("a/b", ms(1000), 0.1);
        assert!(f.affordable("a/b"));
        // A required verification costs nothing from the budget, but teaches the cost.
        f.spent("a/b", ms(400), false);
        assert!(!f.affordable("a/b"), "the binary now costs about 240 ms");
        f.earn("a/b", ms(1_000_000), 1.0);
        f.spent("a/b", ms(29_000), true);
        assert!(
            !f.affordable("a/b"),
            "saved credit is capped at {MAX_CREDIT_SECS} s"
        );
        f.earn("a/b", ms(1_000_000), 0.0);
        assert!(!f.affordable("a/b"), "a zero budget earns nothing");
    }

    #[test]
    fn sampling_is_deterministic_and_close_to_the_share() {
        let prints = |i: usize| {
            let mut m = BTreeMap::new();
            m.insert(RepoPath::new("a/k.yaml").unwrap(), format!("{i:064}"));
            m
        };
        let path = RepoPath::new("a").unwrap();
        let hits = (0..2000)
            .filter(|i| sampled("acme/gitops", &path, &prints(*i), 0.1))
            .count();
        assert!((120..=280).contains(&hits), "{hits} of 2000");
        assert_eq!(
            sampled("acme/gitops", &path, &prints(7), 0.1),
            sampled("acme/gitops", &path, &prints(7), 0.1)
        );
        assert!(!sampled("r", &path, &prints(1), 0.0));
        assert!(sampled("r", &path, &prints(1), 1.0));
    }

    #[test]
    fn the_first_difference_names_the_document_and_hides_secrets() {
        let a = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\ndata:\n  k: one\n";
        let b = a.replace("k: one", "k: two");
        let d = first_difference(a, &b);
        assert!(d.starts_with("document 2 (ConfigMap b)"), "{d}");
        assert!(d.contains("-  k: one") && d.contains("+  k: two"), "{d}");
        let s1 = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\ndata:\n  pw: AAAA\n";
        let s2 = s1.replace("AAAA", "BBBB");
        let d = first_difference(s1, &s2);
        assert_eq!(d, "document 1 (Secret s): values not shown");
    }
}
