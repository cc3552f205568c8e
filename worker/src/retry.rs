//! One error and retry policy for every job.
//!
//! Each domain error (forge, git, store, queue, ArgoCD, promotion, settings) says once, through
//! [`Classify`], what kind of failure it is:
//!
//! - [`Retry::Transient`]: the machine's or the network's trouble (a 5xx, a refused connection,
//!   a database hiccup, a fetch that failed). The job is tried again with exponential backoff;
//!   after `max_attempts` it is `dead`.
//! - [`Retry::RateLimited`]: an upstream asked us to wait. The job is tried again once the
//!   wait it named has passed (with backoff when it named none); it also counts as an attempt.
//! - [`Retry::Permanent`]: the same input will get the same answer (bad input, a refusal, a
//!   broken `.capstan.yaml`): `failed` at once, no retry.
//!
//! Handlers turn an error into a [`crate::runner::JobError`] with
//! [`crate::runner::JobError::from_error`] (or [`crate::runner::JobError::with_retry`] when they
//! add context), and [`crate::runner::finish_for`] turns that into the job's outcome: the only
//! place that decides retry, failure or death.

use std::time::Duration;

/// What kind of failure an error is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// Worth retrying later, with backoff.
    Transient,
    /// Worth retrying after `wait` (the upstream's `Retry-After`), or with backoff when it said
    /// nothing.
    RateLimited { wait: Option<Duration> },
    /// Retrying cannot help.
    Permanent,
}

/// An error that knows what kind of failure it is.
pub trait Classify {
    fn retry(&self) -> Retry;
}

impl Classify for crate::forge::ForgeError {
    fn retry(&self) -> Retry {
        use crate::forge::ForgeError as E;
        match self {
            E::RateLimited { retry_after, .. } => Retry::RateLimited { wait: *retry_after },
            // Network trouble and 5xx; and credentials, which an installation token refresh or a
            // rotated secret may fix while the job waits.
            E::Other { .. } | E::Unauthorized { .. } => Retry::Transient,
            E::NotFound { .. }
            | E::Forbidden { .. }
            | E::Validation { .. }
            | E::Unsupported { .. } => Retry::Permanent,
        }
    }
}

impl Classify for crate::git::GitError {
    fn retry(&self) -> Retry {
        use crate::git::GitError as E;
        match self {
            // A commit not yet fetchable (replication lag), a disk or network failure.
            E::Open { .. } | E::Resolve { .. } | E::Other { .. } | E::Task { .. } => {
                Retry::Transient
            }
            // A name that is not one, a path the repository must not have: the same next time.
            E::Name(_) | E::Fs(_) => Retry::Permanent,
        }
    }
}

impl Classify for crate::git::NameError {
    fn retry(&self) -> Retry {
        Retry::Permanent
    }
}

impl Classify for crate::store::StoreError {
    fn retry(&self) -> Retry {
        use crate::store::StoreError as E;
        match self {
            E::Unavailable { .. } => Retry::Transient,
            E::Corrupt { .. } => Retry::Permanent,
        }
    }
}

impl Classify for crate::queue::QueueError {
    fn retry(&self) -> Retry {
        use crate::queue::QueueError as E;
        match self {
            E::Unavailable { .. } => Retry::Transient,
            _ => Retry::Permanent,
        }
    }
}

impl Classify for crate::argocd::ArgoError {
    fn retry(&self) -> Retry {
        use crate::argocd::ArgoError as E;
        match self {
            E::Unreachable { .. } => Retry::Transient,
            E::Status { status, .. } if *status == 429 => Retry::RateLimited { wait: None },
            E::Status { status, .. } if *status >= 500 => Retry::Transient,
            _ => Retry::Permanent,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forge::ForgeError;

    #[test]
    fn forge_errors_say_what_kind_they_are() {
        let repo = || "acme/gitops".to_string();
        let wait = Some(Duration::from_secs(42));
        let cases = [
            (
                ForgeError::RateLimited {
                    repo: repo(),
                    retry_after: wait,
                    message: "secondary".into(),
                },
                Retry::RateLimited { wait },
            ),
            (
                ForgeError::Other {
                    repo: repo(),
                    message: "502".into(),
                },
                Retry::Transient,
            ),
            (ForgeError::NotFound { repo: repo() }, Retry::Permanent),
            (
                ForgeError::Validation {
                    repo: repo(),
                    message: "422".into(),
                },
                Retry::Permanent,
            ),
            (
                ForgeError::Forbidden {
                    repo: repo(),
                    message: "403".into(),
                },
                Retry::Permanent,
            ),
        ];
        for (e, want) in cases {
            assert_eq!(e.retry(), want, "{e}");
        }
    }

    #[test]
    fn bad_names_are_permanent_git_trouble_is_not() {
        let name = crate::git::Sha::parse("HEAD").map(|_| ()).err();
        assert_eq!(name.map(|e| e.retry()), Some(Retry::Permanent));
        let fetch = crate::git::GitError::Other {
            operation: "fetching".into(),
            message: "connection reset".into(),
        };
        assert_eq!(fetch.retry(), Retry::Transient);
    }
}
