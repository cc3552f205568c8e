//! Failpoints: named places between side effects where a test build can kill the process or make
//! the step fail, to prove that a crash or an error there loses and doubles nothing.
//!
//! Compiled in only with the `failpoints` cargo feature (the test crate turns it on; a release
//! build of `capstan-server` has none). Without it [`hit`] is an inlined `Ok(())` and the
//! setting is never read. With it, `CAPSTAN_FAILPOINTS` arms points at start, e.g.
//! `after_check_run_create=kill,after_comment=error:2`:
//!
//! - `kill`: SIGKILL this process at once (no destructors, no flush, no lease release), as the
//!   kernel's OOM killer or a node loss would;
//! - `error`: the step fails with [`Injected`] every time; `error:N` only the first N times. The
//!   step treats it as a transient failure, so the job is retried.

/// After the intake committed a delivery and its jobs, before it answers.
pub const AFTER_DELIVERY_STORED: &str = "after_delivery_stored";
/// After a `pr_check` fetched the pull request's commits into the mirror.
pub const AFTER_FETCH: &str = "after_fetch";
/// After a `pr_check` rendered and analyzed the affected apps, before anything is posted.
pub const AFTER_RENDER: &str = "after_render";
/// After a `pr_check` created (or restarted) its check run, before the run records its id.
pub const AFTER_CHECK_RUN_CREATE: &str = "after_check_run_create";
/// After a `pr_check` posted or edited the report comment, before the check run is completed.
pub const AFTER_COMMENT: &str = "after_comment";
/// After a promotion commit was pushed, before the promotion is recorded.
pub const AFTER_PROMOTION_PUSH: &str = "after_promotion_push";
/// A worker holds a job's lease, before the job's handler starts.
pub const HOLDING_JOB_LEASE: &str = "holding_job_lease";
/// This replica holds the missed-event recovery lease, before the pass lists pull requests.
pub const HOLDING_RECOVERY_LEASE: &str = "holding_recovery_lease";

/// Every point, so a misspelt name in the setting is refused rather than never firing.
pub const POINTS: &[&str] = &[
    AFTER_DELIVERY_STORED,
    AFTER_FETCH,
    AFTER_RENDER,
    AFTER_CHECK_RUN_CREATE,
    AFTER_COMMENT,
    AFTER_PROMOTION_PUSH,
    HOLDING_JOB_LEASE,
    HOLDING_RECOVERY_LEASE,
];

/// The setting that arms failpoints (read only in a build with the `failpoints` feature).
pub const ENV: &str = "CAPSTAN_FAILPOINTS";

/// The error an armed `error` failpoint returns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("failpoint {0} injected an error (test build)")]
pub struct Injected(pub &'static str);

/// Fires the failpoint `name` if it is armed: kills the process or returns [`Injected`].
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn hit(_name: &'static str) -> Result<(), Injected> {
    Ok(())
}

/// Fires the failpoint `name` if it is armed: kills the process or returns [`Injected`].
#[cfg(feature = "failpoints")]
pub fn hit(name: &'static str) -> Result<(), Injected> {
    armed::hit(name)
}

/// Reads [`ENV`] and arms what it names; the armed points as text, for the start-up log. A
/// malformed value is an error, so a test never runs believing a point is armed when it is not.
/// Without the `failpoints` feature nothing is read and nothing is armed.
pub fn arm_from_env() -> Result<Vec<String>, String> {
    #[cfg(feature = "failpoints")]
    {
        armed::arm_from_env()
    }
    #[cfg(not(feature = "failpoints"))]
    {
        Ok(Vec::new())
    }
}

/// Whether this build has failpoints compiled in.
pub const COMPILED_IN: bool = cfg!(feature = "failpoints");

/// What an armed point does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Kill,
    /// Fail this many more times; `None` = every time.
    Error(Option<u32>),
}

/// Parses `name=action[,name=action]` (whitespace around items ignored; empty = nothing armed).
pub fn parse(spec: &str) -> Result<Vec<(&'static str, Action)>, String> {
    let mut out = Vec::new();
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, action) = item
            .split_once('=')
            .ok_or_else(|| format!("{ENV}: `{item}` is not name=action"))?;
        let point = POINTS.iter().find(|p| **p == name.trim()).ok_or_else(|| {
            format!(
                "{ENV}: unknown failpoint `{}` (known: {})",
                name.trim(),
                POINTS.join(", ")
            )
        })?;
        let action = match action.trim() {
            "kill" => Action::Kill,
            "error" => Action::Error(None),
            other => match other.strip_prefix("error:").map(str::parse::<u32>) {
                Some(Ok(n)) if n > 0 => Action::Error(Some(n)),
                _ => {
                    return Err(format!(
                        "{ENV}: `{other}` for {point} is not kill, error or error:N (N > 0)"
                    ));
                }
            },
        };
        out.push((*point, action));
    }
    Ok(out)
}

#[cfg(feature = "failpoints")]
mod armed {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};

    use super::{Action, ENV, Injected, parse};

    fn table() -> &'static Mutex<HashMap<&'static str, Action>> {
        static TABLE: OnceLock<Mutex<HashMap<&'static str, Action>>> = OnceLock::new();
        TABLE.get_or_init(|| {
            // A point hit before `arm_from_env` (a library user) still sees the setting; a
            // malformed one arms nothing here and is reported by `arm_from_env`.
            let spec = std::env::var(ENV).unwrap_or_default();
            Mutex::new(parse(&spec).unwrap_or_default().into_iter().collect())
        })
    }

    pub(super) fn arm_from_env() -> Result<Vec<String>, String> {
        let spec = std::env::var(ENV).unwrap_or_default();
        let points = parse(&spec)?;
        let mut t = table().lock().unwrap_or_else(|p| p.into_inner());
        t.clear();
        t.extend(points.iter().copied());
        Ok(points
            .iter()
            .map(|(name, action)| format!("{name}={action:?}"))
            .collect())
    }

    pub(super) fn hit(name: &'static str) -> Result<(), Injected> {
        let mut t = table().lock().unwrap_or_else(|p| p.into_inner());
        match t.get_mut(name) {
            None => Ok(()),
            Some(Action::Kill) => {
                eprintln!("capstan: failpoint {name}: SIGKILL");
                let _ = nix::sys::signal::kill(nix::unistd::getpid(), nix::sys::signal::SIGKILL);
                // SIGKILL cannot be caught; should the signal not be delivered, stop anyway.
                std::process::abort()
            }
            Some(Action::Error(None)) => Err(Injected(name)),
            Some(Action::Error(Some(left))) => {
                *left -= 1;
                if *left == 0 {
                    t.remove(name);
                }
                Err(Injected(name))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_kill_error_and_counted_errors() {
        assert_eq!(
            parse(" after_comment=kill, after_fetch=error,holding_job_lease=error:2 ,").unwrap(),
            vec![
                (AFTER_COMMENT, Action::Kill),
                (AFTER_FETCH, Action::Error(None)),
                (HOLDING_JOB_LEASE, Action::Error(Some(2))),
            ]
        );
        assert_eq!(parse("").unwrap(), vec![]);
    }

    #[test]
    fn refuses_unknown_points_and_actions() {
        assert!(
            parse("after_comments=kill")
                .unwrap_err()
                .contains("unknown failpoint")
        );
        assert!(
            parse("after_comment=explode")
                .unwrap_err()
                .contains("kill, error")
        );
        assert!(parse("after_comment=error:0").is_err());
        assert!(parse("after_comment").unwrap_err().contains("name=action"));
    }

    #[cfg(not(feature = "failpoints"))]
    #[test]
    fn without_the_feature_nothing_fires_whatever_the_setting() {
        // The variable is not even read: an armed spec is inert in a production build.
        assert!(!COMPILED_IN);
        for p in POINTS {
            assert_eq!(hit(p), Ok(()));
        }
        assert_eq!(arm_from_env(), Ok(vec![]));
    }
}
