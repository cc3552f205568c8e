//! The pull-request pipeline: the `pr_check` job from fetched commits to the posted report.
//!
//! - [`analyze`]: affected apps, renders at base and head, diffs and policy findings (pure, also
//!   behind `capstan check`);
//! - [`cluster`]: the cluster-side checkers' answers per app (ArgoCD, Kubernetes dry-run);
//! - [`publish`]: the check run (or commit status) and the sticky comment on the forge;
//! - [`fetch`]: refspecs and commits in the local mirror;
//! - [`fidelity`]: render verification records loaded and saved around a run, deferred
//!   verifications run after it;
//! - [`trust`]: whether this head may reach the cluster at all (author, pusher, `ok-to-test`);
//! - [`handler`]: [`PrCheckHandler`], the job itself, step by step.

pub mod analyze;
pub mod cluster;
pub mod fetch;
pub mod fidelity;
pub mod handler;
pub mod publish;
pub mod trust;

pub use handler::PrCheckHandler;
