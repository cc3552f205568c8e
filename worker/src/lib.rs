//! Capstan's domain library. One module per concern and per external system; `server/` stays thin.
//!
//! Error policy: narrow `thiserror` enums in these modules, each variant naming the file, app or
//! delivery it is about; `anyhow` only at the edges (the binary and job bodies).

pub mod apps;
pub mod argocd;
pub mod commands;
pub mod diff;
pub mod failpoint;
pub mod forge;
pub mod git;
pub mod jobs;
pub mod kube;
pub mod limits;
pub mod objects;
pub mod pipeline;
pub mod policy;
pub mod promote;
pub mod queue;
pub mod recovery;
pub mod render;
pub mod repo_fs;
pub mod report;
pub mod retry;
pub mod runner;
pub mod scrub;
pub mod services;
pub mod settings;
pub mod store;
pub mod yaml;
