//! Which ArgoCD apps `/capstan sync` may reach: only apps whose every source is this repository
//! and whose project is one of this repository's apps' projects, both as ArgoCD reports them. An
//! app name alone proves nothing: ArgoCD may hold an app of the same name fed by another
//! repository, and a comment on this repository must not move it.

use std::collections::BTreeSet;

use crate::apps::normalize_repo_url;
use crate::services::AppOrigin;

/// `Ok` when `origin` belongs to this repository (`repo_urls` are its names, compared after
/// [`normalize_repo_url`]: scheme, user, `.git` and case do not matter) and its project is in
/// `projects`; otherwise why not, as a sentence for the reply.
pub fn check_sync_scope(
    app: &str,
    origin: &AppOrigin,
    repo_urls: &[String],
    projects: &BTreeSet<String>,
) -> Result<(), String> {
    let ours: BTreeSet<String> = repo_urls.iter().map(|u| normalize_repo_url(u)).collect();
    if origin.repo_urls.is_empty() {
        return Err(format!(
            "ArgoCD lists no source for `{app}`, so it cannot be shown to come from this repository"
        ));
    }
    if let Some(other) = origin
        .repo_urls
        .iter()
        .find(|u| !ours.contains(&normalize_repo_url(u)))
    {
        return Err(format!(
            "`{app}` takes a source from `{other}`, not from this repository; only apps of this repository can be synced from here"
        ));
    }
    if !projects.contains(&origin.project) {
        let allowed = if projects.is_empty() {
            "none".to_string()
        } else {
            projects.iter().cloned().collect::<Vec<_>>().join(", ")
        };
        return Err(format!(
            "`{app}` is in ArgoCD project `{}`, which is not one of this repository's projects ({allowed})",
            origin.project
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn origin(project: &str, urls: &[&str]) -> AppOrigin {
        AppOrigin {
            project: project.into(),
            repo_urls: urls.iter().map(|u| u.to_string()).collect(),
        }
    }

    fn check(o: &AppOrigin) -> Result<(), String> {
        let ours = vec!["https://github.com/acme/gitops.git".to_string()];
        let projects = BTreeSet::from(["default".to_string(), "apps".to_string()]);
        check_sync_scope("web", o, &ours, &projects)
    }

    #[test]
    fn this_repository_in_any_spelling_is_allowed() {
        for url in [
            "https://github.com/acme/gitops.git",
            "https://GitHub.com/acme/gitops",
            "git@github.com:acme/gitops.git",
            "ssh://git@github.com/acme/gitops",
            "http://github.com/acme/gitops/",
        ] {
            assert_eq!(check(&origin("default", &[url])), Ok(()), "{url}");
        }
    }

    #[test]
    fn other_repositories_projects_and_sourceless_apps_are_refused() {
        let cases = [
            origin("default", &["https://github.com/acme/other.git"]),
            origin(
                "default",
                &[
                    "https://github.com/acme/gitops.git",
                    "https://charts.example.com",
                ],
            ),
            origin("default", &["https://evil.example/github.com/acme/gitops"]),
            origin("default", &["https://github.com/acme/gitops-evil"]),
            origin("platform", &["https://github.com/acme/gitops.git"]),
            origin("default", &[]),
        ];
        for o in &cases {
            let err = check(o).unwrap_err();
            assert!(err.contains("web"), "{err}");
        }
        assert!(check(&cases[4]).unwrap_err().contains("project `platform`"));
    }
}
