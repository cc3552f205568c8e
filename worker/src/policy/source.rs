//! Where `capstan check` gets apps and their rendered objects from.
//!
//! The policy engine judges whatever apps it is handed; [`render_apps`] turns the render layer's
//! output (discovery, app graph, backends) into those inputs, so `capstan check` and the PR
//! pipeline judge exactly the apps and objects ArgoCD would deploy.

use super::AppInput;
use super::trace::SourceFile;
use crate::apps::{AppRender, RenderedApp};
use crate::repo_fs::RepoFs;

/// One app as the render layer produced it, turned into policy input; apps that were not rendered
/// locally (external sources, helm without a binary) come back in `skipped` with the reason, and
/// apps whose render failed in `failed`, so the caller reports both instead of passing silently.
#[derive(Debug, Default)]
pub struct RenderedApps {
    pub apps: Vec<AppInput>,
    pub skipped: Vec<(String, String)>,
    pub failed: Vec<(String, String)>,
}

/// Converts rendered apps into policy inputs, reading each app's input files from `fs` for
/// file:line tracing.
pub fn render_apps<'a>(
    fs: &dyn RepoFs,
    renders: impl IntoIterator<Item = &'a AppRender>,
) -> RenderedApps {
    let mut out = RenderedApps::default();
    for r in renders {
        match &r.outcome {
            RenderedApp::Rendered(_) => {}
            RenderedApp::NotChecked { reason } => {
                out.skipped.push((r.app.name.clone(), reason.clone()));
                continue;
            }
            RenderedApp::Failed { error } => {
                out.failed.push((r.app.name.clone(), error.clone()));
                continue;
            }
        }
        // Binary or unreadable inputs carry no lines to point at; tracing simply skips them.
        let files = r
            .input_files()
            .into_iter()
            .filter_map(|path| {
                fs.read_to_string(&path).ok().map(|text| SourceFile {
                    path: path.as_str().to_string(),
                    text,
                })
            })
            .collect();
        out.apps.push(AppInput {
            name: r.app.name.clone(),
            objects: r.objects().to_vec(),
            files,
            destination_namespace: r.app.destination.namespace.clone(),
            creates_namespace: r.app.creates_namespace(),
            cluster: r.app.cluster(),
        });
    }
    out
}
