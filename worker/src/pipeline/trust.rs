//! Who gets the checks that touch the cluster (ArgoCD's manifests at the PR head, the Kubernetes
//! server-side dry-run, the live diff). Everyone's PR gets the offline render, diff and policy
//! report; the cluster is only asked on behalf of a trusted author, a trusted pusher of this
//! head, or after an authorized `/capstan ok-to-test` for this exact head. A fork is no
//! exception either way: its author qualifies by permission like anyone else.
//!
//! [`decide`] is pure and takes the policy (`trust.clusterChecks` and `trust.minPermission` of
//! `.capstan.yaml` as read from the default branch) as an argument.

use crate::commands::Permission;
use crate::forge::Permissions;
use crate::jobs::PrCheck;
use crate::services::Services;
use crate::store::HeadHistory;

/// `trust:` of `.capstan.yaml` on the default branch (one typed model: [`crate::settings`]).
pub use crate::settings::{ClusterChecks, TrustSettings as TrustPolicy};

/// A person whose permission was looked up (`Err`: the lookup failed, which never trusts).
#[derive(Clone, Debug)]
pub struct Person<'a> {
    pub login: &'a str,
    pub permission: Result<Permission, String>,
}

/// Whether the cluster is asked, and if not, why (for the report).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trust {
    /// The text says on whose behalf (for the log).
    Allowed(String),
    Skipped(String),
}

/// The decision for one head: `author` of the PR, `pusher` of this head when known (the sender
/// of the `synchronize` event), `approved_by` an authorized `ok-to-test` for this head.
pub fn decide(
    policy: TrustPolicy,
    author: &Person<'_>,
    pusher: Option<&Person<'_>>,
    approved_by: Option<&str>,
) -> Trust {
    let min = policy.min_permission;
    let qualifies = |p: &Person<'_>| matches!(p.permission, Ok(has) if has >= min);
    match policy.cluster_checks {
        ClusterChecks::Never => {
            return Trust::Skipped(
                "this repository's settings never run cluster checks for pull requests".into(),
            );
        }
        ClusterChecks::Everyone => return Trust::Allowed("every pull request".into()),
        ClusterChecks::Trusted => {}
    }
    if qualifies(author) {
        return Trust::Allowed(format!("author {} has {min} permission", author.login));
    }
    if let Some(p) = pusher.filter(|p| qualifies(p)) {
        return Trust::Allowed(format!("this head was pushed by {} ({min})", p.login));
    }
    if let Some(by) = approved_by {
        return Trust::Allowed(format!("`ok-to-test` for this head by {by}"));
    }
    let why = match &author.permission {
        Ok(has) => format!(
            "the author {} has {has} permission, not {min}",
            author.login
        ),
        Err(e) => format!("the author's permission could not be checked ({e})"),
    };
    Trust::Skipped(why)
}

/// The report line for skipped cluster checks: why, and how to get them.
pub fn skipped_note(why: &str, prefix: &str, min: Permission) -> String {
    format!(
        "cluster checks (ArgoCD at the head, Kubernetes dry-run, live diff) skipped: {why}; \
         someone with {min} permission can comment `{prefix} ok-to-test` to run them for this head"
    )
}

/// The decision for a merge queue's commit: it has no single author, and whoever queued it may
/// have had no say over the pull requests it combines, so only `everyone` reaches the cluster.
pub fn for_merge_group(policy: TrustPolicy) -> Trust {
    match policy.cluster_checks {
        ClusterChecks::Everyone => Trust::Allowed("every pull request".into()),
        ClusterChecks::Never => Trust::Skipped(
            "this repository's settings never run cluster checks for pull requests".into(),
        ),
        ClusterChecks::Trusted => Trust::Skipped(
            "a merge queue's commit has no single author to trust; each pull request in it \
             was checked on its own"
                .into(),
        ),
    }
}

/// The report line for a merge group's skipped cluster checks (no `ok-to-test` applies).
pub fn skipped_note_merge_group(why: &str) -> String {
    format!("cluster checks (ArgoCD at the head, Kubernetes dry-run, live diff) skipped: {why}")
}

/// Gathers what [`decide`] needs for a `pr_check` job: the author's and the pusher's permission
/// from the forge, an `ok-to-test` for this head from the queue. Without a forge nobody can be
/// shown to be trusted.
pub async fn for_head(
    services: &Services,
    job: &PrCheck,
    author: Option<&str>,
    policy: TrustPolicy,
) -> Trust {
    if policy.cluster_checks != ClusterChecks::Trusted {
        let nobody = Person {
            login: "",
            permission: Err(String::new()),
        };
        return decide(policy, &nobody, None, None);
    }
    let (Some(forge), Some(author)) = (services.forge.as_deref(), author) else {
        return Trust::Skipped(
            "without GitHub credentials the author of the pull request cannot be checked".into(),
        );
    };
    let forge: &dyn Permissions = forge;
    let lookup = |user: String| async move {
        let p = forge
            .collaborator_permission(&job.repo, &user)
            .await
            .map_err(|e| e.to_string())
            .and_then(|p| p.as_str().parse::<Permission>().map_err(|e| e.to_string()));
        (user, p)
    };
    let (author_login, author_perm) = lookup(author.to_string()).await;
    let pusher = match job.sender.as_deref() {
        Some(s) if !s.eq_ignore_ascii_case(author) && job.trigger == "pull_request.synchronize" => {
            Some(lookup(s.to_string()).await)
        }
        _ => None,
    };
    let approved = match HeadHistory::new(services.queue.db())
        .approved_by(&job.repo, job.number, &job.head_sha)
        .await
    {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(error = %e, "could not read ok-to-test approvals; treating as none");
            None
        }
    };
    let author = Person {
        login: &author_login,
        permission: author_perm,
    };
    let pusher = pusher.as_ref().map(|(login, p)| Person {
        login,
        permission: p.clone(),
    });
    decide(policy, &author, pusher.as_ref(), approved.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person<'a>(login: &'a str, p: Result<Permission, &str>) -> Person<'a> {
        Person {
            login,
            permission: p.map_err(str::to_string),
        }
    }

    #[test]
    fn only_trusted_people_or_an_approval_reach_the_cluster() {
        let policy = TrustPolicy::default();
        let reader = person("eve", Ok(Permission::Read));
        let writer = person("bob", Ok(Permission::Write));
        let broken = person("eve", Err("500"));
        let allowed = |t: Trust| matches!(t, Trust::Allowed(_));
        assert!(allowed(decide(policy, &writer, None, None)));
        assert!(!allowed(decide(policy, &reader, None, None)));
        assert!(!allowed(decide(policy, &broken, None, None)));
        assert!(!allowed(decide(policy, &reader, Some(&reader), None)));
        assert!(allowed(decide(policy, &reader, Some(&writer), None)));
        assert!(allowed(decide(policy, &reader, None, Some("bob"))));
        let strict = TrustPolicy {
            min_permission: Permission::Maintain,
            ..policy
        };
        assert!(!allowed(decide(strict, &writer, None, None)));
        let never = TrustPolicy {
            cluster_checks: ClusterChecks::Never,
            ..policy
        };
        assert!(!allowed(decide(never, &writer, None, Some("bob"))));
        let everyone = TrustPolicy {
            cluster_checks: ClusterChecks::Everyone,
            ..policy
        };
        assert!(allowed(decide(everyone, &broken, None, None)));
        let Trust::Skipped(why) = decide(policy, &reader, None, None) else {
            panic!()
        };
        assert!(why.contains("eve has read permission, not write"), "{why}");
    }
}
