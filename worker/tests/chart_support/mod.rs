//! A repository with one local helm chart (`charts/web`, values files, a ConfigMap template) and
//! an Application file, shared by the helm backend tests.
#![allow(clippy::unwrap_used, dead_code)]

use std::path::Path;

use capstan_worker::git::GitRepo;
use capstan_worker::git::fixture::{Change, RepoBuilder};

/// Commits `charts/web` and `apps.yaml` holding `app` into a new repository at `dir`.
pub fn chart_repo(dir: &Path, app: &str) -> (GitRepo, git2::Oid) {
    let b = RepoBuilder::init(dir).unwrap();
    let c = b
        .commit(
            "chart",
            &[
                Change::Write("apps.yaml", app.as_bytes()),
                Change::Write(
                    "charts/web/Chart.yaml",
                    b"apiVersion: v2\nname: web\nversion: 0.1.0\n",
                ),
                Change::Write("charts/web/values.yaml", b"replicas: 1\n"),
                Change::Write("charts/web/values-prod.yaml", b"replicas: 2\n"),
                Change::Write("shared/values.yaml", b"team: a\n"),
                Change::Write(
                    "charts/web/templates/cm.yaml",
                    b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\n",
                ),
            ],
        )
        .unwrap();
    (GitRepo::open(dir).unwrap(), c)
}
