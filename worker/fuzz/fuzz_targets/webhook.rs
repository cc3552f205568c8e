//! Webhook payload parsing and event mapping for every forge. Input: the event name on the first
//! line (`gitea:` or `gitlab:` in front picks that forge's mapping, GitHub's otherwise), the body
//! after it. Beyond "never panics", a delivery the intake would accept must only ever store jobs
//! the worker can read back, for a repository name and commits that are safe to put in a path, a
//! URL or an argv: a stored job that fails only when it runs is a silent loss.
#![no_main]

use capstan_worker::git::names::{RepoName, Sha};
use capstan_worker::jobs::mapping::{classify_gitea, classify_gitlab};
use capstan_worker::jobs::{
    self, Command, Decision, DefaultBranchPush, MappingOptions, MergeGroupCheck, PrCheck,
    PrMerged, classify,
};
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;

fn typed<T: DeserializeOwned>(payload: &serde_json::Value) -> T {
    match serde_json::from_value(payload.clone()) {
        Ok(t) => t,
        Err(e) => panic!("stored a job the worker cannot read ({e}): {payload}"),
    }
}

fn safe_repo(repo: &str) {
    if let Err(e) = RepoName::parse(repo) {
        panic!("accepted a job for an unsafe repository name: {e}");
    }
}

fn safe_sha(sha: &str) {
    if let Err(e) = Sha::parse(sha) {
        panic!("accepted a job for an unsafe commit: {e}");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some(split) = data.iter().position(|b| *b == b'\n') else {
        return;
    };
    let Ok(event) = std::str::from_utf8(&data[..split]) else {
        return;
    };
    let body = &data[split + 1..];
    let opts = MappingOptions {
        bare_commands: event.len() % 2 == 0,
        self_logins: vec!["capstan[bot]".into()],
        ..MappingOptions::default()
    };
    let mapped = if let Some(event) = event.strip_prefix("gitea:") {
        classify_gitea(event, "fuzz-delivery", body, &opts)
    } else if let Some(event) = event.strip_prefix("gitlab:") {
        classify_gitlab(event, "fuzz-delivery", body, &opts)
    } else {
        classify(event, "fuzz-delivery", body, &opts)
    };
    let Ok(classified) = mapped else {
        return;
    };
    let Decision::Jobs(new_jobs) = classified.decision else {
        return;
    };
    for job in &new_jobs {
        assert!(!job.dedupe_key.is_empty(), "a job without a dedupe key");
        match job.kind.as_str() {
            jobs::PR_CHECK => {
                let j: PrCheck = typed(&job.payload);
                safe_repo(&j.repo);
                safe_sha(&j.head_sha);
            }
            jobs::MERGE_GROUP_CHECK => {
                let j: MergeGroupCheck = typed(&job.payload);
                safe_repo(&j.repo);
                safe_sha(&j.head_sha);
                safe_sha(&j.base_sha);
            }
            jobs::PR_MERGED => {
                let j: PrMerged = typed(&job.payload);
                safe_repo(&j.repo);
                safe_sha(&j.head_sha);
                if let Some(m) = &j.merge_commit_sha {
                    safe_sha(m);
                }
            }
            jobs::DEFAULT_BRANCH_PUSH => {
                let j: DefaultBranchPush = typed(&job.payload);
                safe_repo(&j.repo);
                safe_sha(&j.after);
            }
            jobs::COMMAND => {
                let j: Command = typed(&job.payload);
                safe_repo(&j.repo);
                assert!(!j.lines.is_empty(), "a command job without a command line");
            }
            jobs::PING => {}
            other => panic!("a job of unknown kind {other}"),
        }
    }
});
