//! The External Secrets option: its ExternalSecrets must produce exactly the Secrets their
//! consumers read (Alertmanager's mounted receiver file, ArgoCD's notification keys, the
//! repository credentials ArgoCD matches by label and URL), from a store that exists.

use std::collections::BTreeSet;

use serde_json::Value;

use super::tree::{kind, name};

pub(crate) const ESO_DIR: &str = "infrastructure/base/external-secrets";
pub(crate) const ESO_APP: &str = "argocd/bootstrap-apps/secret-store.yaml";

fn namespace(o: &Value) -> &str {
    o["metadata"]["namespace"].as_str().unwrap_or("")
}

fn target(es: &Value) -> &str {
    es["spec"]["target"]["name"]
        .as_str()
        .unwrap_or_else(|| name(es))
}

fn external_secrets(objects: &[Value]) -> impl Iterator<Item = &Value> {
    objects.iter().filter(|o| kind(o) == "ExternalSecret")
}

/// (secretKey, remote key, remote property) of an ExternalSecret's data.
fn data(es: &Value) -> Vec<(String, String, String)> {
    es["spec"]["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            let s = |v: &Value| v.as_str().unwrap_or("").to_string();
            (
                s(&d["secretKey"]),
                s(&d["remoteRef"]["key"]),
                s(&d["remoteRef"]["property"]),
            )
        })
        .collect()
}

/// Every store reference resolves to a ClusterSecretStore rendered alongside.
pub(crate) fn check_stores(objects: &[Value]) -> Vec<String> {
    let stores: BTreeSet<&str> = objects
        .iter()
        .filter(|o| kind(o) == "ClusterSecretStore")
        .map(name)
        .collect();
    let mut problems = Vec::new();
    for es in external_secrets(objects) {
        let r = &es["spec"]["secretStoreRef"];
        let store = r["name"].as_str().unwrap_or("");
        if r["kind"] != "ClusterSecretStore" || !stores.contains(store) {
            problems.push(format!(
                "ExternalSecret {}/{} reads store {store:?}, which is not a ClusterSecretStore here",
                namespace(es),
                name(es)
            ));
        }
    }
    problems
}

/// The alert receivers: a Secret for each one Alertmanager mounts, holding the file its
/// url_file names, and ArgoCD's notifications Secret holding every `$key` its notifiers use,
/// all from the same remote value.
pub(crate) fn check_alert_receivers(objects: &[Value], kps: &Value, argocd: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let mut sources = BTreeSet::new();
    let mut need = Vec::new();
    for r in kps["alertmanager"]["config"]["receivers"]
        .as_array()
        .into_iter()
        .flatten()
    {
        for c in r["webhook_configs"].as_array().into_iter().flatten() {
            if let Some(file) = c["url_file"].as_str()
                && let Some(rest) = file.strip_prefix("/etc/alertmanager/secrets/")
                && let Some((secret, key)) = rest.split_once('/')
            {
                need.push(("monitoring", secret.to_string(), key.to_string()));
            }
        }
    }
    for (_, text) in argocd["notifications"]["notifiers"]
        .as_object()
        .into_iter()
        .flatten()
    {
        for word in text.as_str().unwrap_or("").split_whitespace() {
            if let Some(key) = word.strip_prefix('$') {
                need.push((
                    "argocd",
                    "argocd-notifications-secret".into(),
                    key.to_string(),
                ));
            }
        }
    }
    if need.is_empty() {
        problems.push("neither Alertmanager nor ArgoCD reads a receiver Secret".into());
    }
    for (ns, secret, key) in need {
        let found = external_secrets(objects)
            .filter(|es| namespace(es) == ns && target(es) == secret)
            .flat_map(data)
            .find(|(k, _, _)| *k == key);
        match found {
            Some((_, remote, property)) => {
                sources.insert((remote, property));
            }
            None => problems.push(format!(
                "no ExternalSecret writes key {key} of {ns}/{secret}"
            )),
        }
    }
    if sources.len() > 1 {
        problems.push(format!(
            "the receivers come from different store values: {sources:?}"
        ));
    }
    problems
}

/// Repository credentials ArgoCD will use for `repo_url`: a templated Secret in `argocd`
/// labelled as a repository (URL equal) or repo-creds (URL a prefix), of type git, with a
/// complete credential set whose template values all come from the ExternalSecret's data; and
/// the backup exports that Secret type.
pub(crate) fn check_repository_credentials(
    objects: &[Value],
    repo_url: &str,
    backup_script: &str,
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut matched = 0;
    for es in external_secrets(objects).filter(|es| namespace(es) == "argocd") {
        let template = &es["spec"]["target"]["template"];
        let Some(secret_type) =
            template["metadata"]["labels"]["argocd.argoproj.io/secret-type"].as_str()
        else {
            continue;
        };
        let at = format!("ExternalSecret argocd/{}", name(es));
        let d = &template["data"];
        let url = d["url"].as_str().unwrap_or("");
        let applies = match secret_type {
            "repository" => url == repo_url,
            "repo-creds" => !url.is_empty() && repo_url.starts_with(url),
            other => {
                problems.push(format!(
                    "{at}: secret-type {other} is not repository or repo-creds"
                ));
                continue;
            }
        };
        if !applies {
            problems.push(format!(
                "{at}: url {url:?} does not cover the tree's repository {repo_url}"
            ));
            continue;
        }
        if d["type"] != "git" {
            problems.push(format!("{at}: type is {:?}, not git", d["type"]));
        }
        let has = |k: &str| d.get(k).is_some();
        let complete = (has("username") && has("password"))
            || has("sshPrivateKey")
            || (has("githubAppID") && has("githubAppInstallationID") && has("githubAppPrivateKey"));
        if !complete {
            problems.push(format!(
                "{at}: no complete credential (username+password, sshPrivateKey or a GitHub App)"
            ));
        }
        let fetched: BTreeSet<String> = data(es).into_iter().map(|(k, _, _)| k).collect();
        for (k, v) in d.as_object().into_iter().flatten() {
            let text = v.as_str().unwrap_or("");
            let mut rest = text;
            while let Some(start) = rest.find("{{") {
                let inner = &rest[start + 2..];
                let end = inner.find("}}").unwrap_or(inner.len());
                let var = inner[..end].trim().trim_start_matches('.');
                if !fetched.contains(var) {
                    problems.push(format!(
                        "{at}: {k} uses {var}, which spec.data does not fetch"
                    ));
                }
                rest = &inner[end..];
            }
            if matches!(
                k.as_str(),
                "password" | "sshPrivateKey" | "githubAppPrivateKey"
            ) && !text.contains("{{")
            {
                problems.push(format!("{at}: {k} is a literal in Git"));
            }
        }
        if !backup_script.contains(&format!("argocd.argoproj.io/secret-type={secret_type}")) {
            problems.push(format!(
                "bootstrap/scripts/backup does not export {secret_type} Secrets"
            ));
        }
        matched += 1;
    }
    if matched == 0 {
        problems.push(format!("no repository credentials for {repo_url}"));
    }
    problems
}
