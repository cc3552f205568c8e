//! Bounds on the work any pull-request author can make a worker do: the render cache, the apps
//! an ApplicationSet may generate, a job's overall time, the diff's time and object size, the
//! number of comment parts, and the time, memory, output, depth and imports of a Jsonnet program. Service settings (`server/src/config.rs`) with defaults no honest
//! repository reaches.
//!
//! A bound that is hit is never a silent pass: the run report gets a "not checked: limit … reached"
//! line ([`not_checked`]) and the check concludes with failure.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::render::cache::CacheLimits;
use crate::render::jsonnet::JsonnetLimits;

/// Every bound, with its default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// In-memory render cache: entries and bytes, least recently used evicted first.
    pub render_cache: CacheLimits,
    /// Apps one ApplicationSet may generate (list, matrix, merge and git generators alike).
    pub appset_max_apps: usize,
    /// Wall time of one `pr_check` job from claim to report.
    pub job_deadline: Duration,
    pub diff: DiffLimits,
    /// Parts of the sticky comment (each up to GitHub's 65,536 characters).
    pub comment_max_parts: usize,
    /// One Jsonnet program's evaluation.
    pub jsonnet: JsonnetLimits,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            render_cache: CacheLimits::default(),
            appset_max_apps: DEFAULT_APPSET_MAX_APPS,
            job_deadline: Duration::from_secs(900),
            diff: DiffLimits::default(),
            comment_max_parts: 10,
            jsonnet: JsonnetLimits::default(),
        }
    }
}

/// Default of [`Limits::appset_max_apps`].
pub const DEFAULT_APPSET_MAX_APPS: usize = 1_000;

/// Bounds of the text diff of one app.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffLimits {
    /// Time for all object diffs of one app; objects left when it passes get no text diff.
    pub deadline: Duration,
    /// An object whose YAML (either side) is larger gets no text diff.
    pub max_object_bytes: usize,
}

impl Default for DiffLimits {
    fn default() -> Self {
        DiffLimits {
            deadline: Duration::from_secs(20),
            max_object_bytes: 1024 * 1024,
        }
    }
}

const NOT_CHECKED: &str = "not checked: limit ";

/// The report line for a bound that was hit: `setting` is the service setting that raises it.
pub fn not_checked(setting: &str, value: impl std::fmt::Display, what: &str) -> String {
    format!("{NOT_CHECKED}{setting} ({value}) reached: {what}")
}

/// Whether `line` was made by [`not_checked`] (diff notes carry them among other notes).
pub fn is_not_checked(line: &str) -> bool {
    line.starts_with(NOT_CHECKED)
}
