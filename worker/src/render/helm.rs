//! The `helm` backend: `helm template` on a scratch copy of the chart directory and value files.
//! Without a helm binary the app is reported "not rendered: helm unavailable"; charts that would
//! fetch dependencies from a repository are refused before exec.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::PathBuf;

use serde_json::Value;

use super::exec::{self, ExecLimits};
use super::inputs::tree_files;
use super::source::HelmOptions;
use super::{Backend, RenderError, RenderSource, SourceKind, materialize};
use crate::repo_fs::{EntryKind, FsError, RepoFs, RepoPath, looks_remote};
use crate::yaml;

pub struct HelmExec {
    binary: PathBuf,
    limits: ExecLimits,
}

impl HelmExec {
    pub fn new(binary: PathBuf, limits: ExecLimits) -> Self {
        HelmExec { binary, limits }
    }
}

fn input_err(file: &RepoPath) -> impl FnOnce(FsError) -> RenderError + '_ {
    move |source| RenderError::Input {
        file: file.to_string(),
        source,
    }
}

/// The chart directory's files plus the value files named by the Application.
pub fn inputs(
    fs: &dyn RepoFs,
    chart: &RepoPath,
    opts: &HelmOptions,
) -> Result<BTreeSet<RepoPath>, RenderError> {
    let chart_yaml = chart.join("Chart.yaml").map_err(input_err(chart))?;
    if fs.kind(&chart_yaml).map_err(input_err(chart))? != Some(EntryKind::File) {
        return Err(RenderError::Invalid {
            file: chart.to_string(),
            message: "not a helm chart: no Chart.yaml".into(),
        });
    }
    let text = fs
        .read_to_string(&chart_yaml)
        .map_err(input_err(&chart_yaml))?;
    let meta = yaml::parse_single(&text, chart_yaml.as_str())?;
    let vendored = fs
        .list_dir(&chart.join("charts").map_err(input_err(chart))?)
        .unwrap_or_default();
    if let Some(Value::Array(deps)) = meta.get("dependencies") {
        for d in deps {
            let name = d.get("name").and_then(Value::as_str).unwrap_or_default();
            let repo = d
                .get("repository")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let present = vendored
                .iter()
                .any(|(n, _)| n == name || n.starts_with(&format!("{name}-")));
            if looks_remote(repo) && !present {
                return Err(RenderError::Input {
                    file: chart_yaml.to_string(),
                    source: FsError::Remote(repo.to_string()),
                });
            }
        }
    }
    let mut files: BTreeSet<RepoPath> = tree_files(fs, chart)?.into_iter().collect();
    for vf in &opts.value_files {
        if looks_remote(vf) {
            return Err(RenderError::Input {
                file: chart.to_string(),
                source: FsError::Remote(vf.clone()),
            });
        }
        let p = chart.join(vf).map_err(input_err(chart))?;
        let text = fs.read_to_string(&p).map_err(input_err(chart))?;
        yaml::parse_documents(&text, p.as_str())?;
        files.insert(p);
    }
    Ok(files)
}

impl Backend for HelmExec {
    fn name(&self) -> &'static str {
        "helm"
    }

    fn render(
        &self,
        fs: &dyn RepoFs,
        source: &RenderSource,
        inputs: &BTreeSet<RepoPath>,
    ) -> Result<String, RenderError> {
        let SourceKind::Helm(opts) = &source.kind else {
            return Err(RenderError::Invalid {
                file: source.path.to_string(),
                message: "helm backend given a non-helm source".into(),
            });
        };
        let scratch = |e| RenderError::Scratch {
            path: source.path.to_string(),
            source: e,
        };
        let tmp = tempfile::tempdir().map_err(scratch)?;
        let repo = tmp.path().join("repo");
        let home = tmp.path().join("home");
        std::fs::create_dir_all(&home).map_err(scratch)?;
        materialize(fs, inputs, &repo)?;
        let chart = repo.join(source.path.as_str());
        let release = opts
            .release_name
            .clone()
            .unwrap_or_else(|| source.release_name.clone());
        let mut args: Vec<OsString> = vec!["template".into(), release.into(), chart.clone().into()];
        if let Some(ns) = &source.namespace {
            args.push("--namespace".into());
            args.push(ns.into());
        }
        if opts.skip_crds {
            args.push("--skip-crds".into());
        } else {
            args.push("--include-crds".into());
        }
        for vf in &opts.value_files {
            args.push("--values".into());
            args.push(chart.join(vf).into_os_string());
        }
        if let Some(values) = &opts.values {
            let text = match values {
                Value::String(s) => s.clone(),
                other => yaml_serde::to_string(other).map_err(|e| RenderError::Invalid {
                    file: source.path.to_string(),
                    message: format!("helm values: {e}"),
                })?,
            };
            let path = tmp.path().join("inline-values.yaml");
            std::fs::write(&path, text).map_err(scratch)?;
            args.push("--values".into());
            args.push(path.into_os_string());
        }
        for (name, value, force_string) in &opts.parameters {
            args.push(
                if *force_string {
                    "--set-string"
                } else {
                    "--set"
                }
                .into(),
            );
            args.push(format!("{name}={value}").into());
        }
        exec::run(&self.binary, &args, &repo, &home, &self.limits).map_err(|e| RenderError::Exec {
            path: source.path.to_string(),
            source: exec::relative_to(e, &repo),
        })
    }
}
