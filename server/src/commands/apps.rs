//! `capstan apps`: the ArgoCD Applications a tree defines, with their sources and whether they are
//! rendered locally. The STATUS column says `rendered`, `not checked: <reason>` (a source from
//! elsewhere, a missing tool, a plugin: Capstan cannot vouch for it) or `error: ...`.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use capstan_worker::apps::local::LocalRepo;
use capstan_worker::apps::{App, Snapshot, SourceStatus};
use capstan_worker::render::jsonnet::JsonnetLimits;
use capstan_worker::render::{BackendChoice, RenderConfig, Renderer, Scope, VerifySettings};

/// The help of `--backend` in render, diff and check: written once so the three cannot disagree.
pub const BACKEND_HELP: &str = "How apps are rendered: auto (kustomize sources by the native engine, \
    falling back to the kustomize binary for what it does not implement; Helm, Jsonnet and plain \
    directories by their own backends), or one backend for every app: native, kustomize, helm, \
    directory";

/// Where the repository is and how to recognise it in Applications (shared by apps/render/diff).
#[derive(clap::Args, Debug, Clone)]
pub struct RepoArgs {
    /// The repository (any folder inside it).
    #[arg(long, default_value = ".")]
    pub repo: PathBuf,
    /// A URL this repository is known by in Applications' repoURL (repeatable). Git remotes and
    /// `repoURLs` in .capstan.yaml are added automatically.
    #[arg(long = "repo-url", env = "CAPSTAN_REPO_URLS", value_delimiter = ',')]
    pub repo_urls: Vec<String>,
    /// The default branch (default: origin/HEAD, else main).
    #[arg(long)]
    pub default_branch: Option<String>,
    /// Persistent render cache folder (default: none, every render starts cold).
    #[arg(long, env = "CAPSTAN_RENDER_CACHE")]
    pub cache_dir: Option<PathBuf>,
    /// A chart repository charts may be fetched from (repeatable): an `https://` Helm repository
    /// or an `oci://host/path` registry. Charts from anywhere else are "not checked":
    /// Applications never choose what is fetched. These three flags read the same environment
    /// variables as the service's settings.
    #[arg(
        long = "chart-repo",
        env = capstan_server::config::CHART_REPOS.env,
        value_delimiter = ','
    )]
    pub chart_repos: Vec<String>,
    /// Persistent chart cache folder, archives by digest (default: none, charts are fetched
    /// each run).
    #[arg(long = "chart-cache-dir", alias = "chart-cache", env = capstan_server::config::CHART_CACHE_DIR.env)]
    pub chart_cache: Option<PathBuf>,
    /// Use only charts already in the chart cache; never fetch.
    #[arg(long = "charts-offline", alias = "offline", env = capstan_server::config::CHARTS_OFFLINE.env)]
    pub offline: bool,
    #[command(flatten)]
    pub jsonnet: JsonnetArgs,
}

/// Bounds on each Jsonnet program, read from the same environment variables as the service's
/// settings. Programs run in a child process of this binary (`capstan __jsonnet-eval`).
#[derive(clap::Args, Debug, Clone)]
pub struct JsonnetArgs {
    /// Wall time of one Jsonnet program; its process is killed after it.
    #[arg(long = "jsonnet-deadline-secs", env = capstan_server::config::JSONNET_DEADLINE_SECS.env,
          default_value = capstan_server::config::JSONNET_DEADLINE_SECS.default,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub deadline_secs: u64,
    /// Address space of the process evaluating one Jsonnet program, in MiB.
    #[arg(long = "jsonnet-max-memory-mb", env = capstan_server::config::JSONNET_MAX_MEMORY_MB.env,
          default_value = capstan_server::config::JSONNET_MAX_MEMORY_MB.default,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_memory_mb: u64,
    /// Largest JSON output of one Jsonnet program, in MiB.
    #[arg(long = "jsonnet-max-output-mb", env = capstan_server::config::JSONNET_MAX_OUTPUT_MB.env,
          default_value = capstan_server::config::JSONNET_MAX_OUTPUT_MB.default,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_output_mb: u64,
    /// Nested calls a Jsonnet program may make.
    #[arg(long = "jsonnet-max-stack", env = capstan_server::config::JSONNET_MAX_STACK.env,
          default_value = capstan_server::config::JSONNET_MAX_STACK.default,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_stack: u64,
    /// Files one app's Jsonnet programs may import, transitively.
    #[arg(long = "jsonnet-max-files", env = capstan_server::config::JSONNET_MAX_FILES.env,
          default_value = capstan_server::config::JSONNET_MAX_FILES.default,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_files: u64,
}

impl JsonnetArgs {
    pub fn limits(&self) -> JsonnetLimits {
        let mib = |n: u64| {
            usize::try_from(n)
                .unwrap_or(usize::MAX)
                .saturating_mul(1 << 20)
        };
        let n = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        JsonnetLimits {
            max_stack: n(self.max_stack),
            deadline: Duration::from_secs(self.deadline_secs),
            max_memory_bytes: mib(self.max_memory_mb),
            max_output_bytes: mib(self.max_output_mb),
            max_files: n(self.max_files),
        }
    }
}

impl RepoArgs {
    pub fn open(&self) -> anyhow::Result<LocalRepo> {
        Ok(LocalRepo::open(&self.repo)?)
    }

    pub fn renderer(&self, backend: BackendChoice) -> Renderer {
        Renderer::new(RenderConfig {
            backend,
            cache_dir: self.cache_dir.clone(),
            charts: capstan_worker::render::charts::ChartSettings {
                repositories: self.chart_repos.clone(),
                cache_dir: self.chart_cache.clone(),
                offline: self.offline,
                ..Default::default()
            },
            jsonnet: self.jsonnet.limits(),
            jsonnet_evaluator: capstan_server::serve::this_binary(),
            ..RenderConfig::default()
        })
    }

    /// A renderer that verifies the native engine as `local`'s `.capstan.yaml` asks (before any
    /// output is used: the CLI has no later), with those settings.
    pub fn verified_renderer(
        &self,
        local: &LocalRepo,
        backend: BackendChoice,
    ) -> anyhow::Result<(Renderer, VerifySettings)> {
        let settings = local.verify_settings(self.default_branch.as_deref())?;
        let r = self.renderer(backend).scoped(Scope {
            repo: String::new(),
            settings,
            defer: false,
        });
        Ok((r, settings))
    }
}

/// Why an app cannot be rendered here, known before rendering: a source from elsewhere, a
/// missing tool. Empty when nothing is known to stop it.
pub fn known_not_checked(a: &App, renderer: &Renderer) -> Vec<String> {
    let mut out = a.unrendered_sources();
    for src in a.local_sources() {
        if let Some(why) = renderer.unavailable(&src.kind) {
            out.push(format!("{}: {why}", src.label()));
        }
    }
    out
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Read the tree of this commit, branch or tag instead of the working directory.
    #[arg(long = "ref")]
    pub reference: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub repo: RepoArgs,
}

pub fn run(args: Args) -> ExitCode {
    match run_inner(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn run_inner(args: Args) -> anyhow::Result<ExitCode> {
    let local = args.repo.open()?;
    let cfg = local.discovery_config(&args.repo.repo_urls, args.repo.default_branch.as_deref())?;
    let fs = local.fs(args.reference.as_deref())?;
    let renderer = args.repo.renderer(BackendChoice::Auto);
    let snap = Snapshot::build(fs.as_ref(), &cfg, &renderer);
    // Named clusters for the CLUSTER column; a bad declaration is reported, never guessed past.
    let clusters = capstan_worker::apps::declared_clusters(fs.as_ref()).unwrap_or_else(|e| {
        eprintln!("error: {e}");
        Vec::new()
    });
    if args.json {
        let apps: Vec<serde_json::Value> = snap
            .discovery
            .apps
            .iter()
            .map(|a| {
                let inputs = match snap.inputs.get(&a.name) {
                    Some(Ok(m)) => serde_json::json!(m.keys().collect::<Vec<_>>()),
                    Some(Err(e)) => serde_json::json!({ "error": e }),
                    None => serde_json::Value::Null,
                };
                let mut v = serde_json::to_value(a).unwrap_or_default();
                let unchecked = known_not_checked(a, &renderer);
                if let Some(m) = v.as_object_mut() {
                    m.insert("inputs".into(), inputs);
                    m.insert("cluster".into(), a.cluster_name(&clusters).into());
                    m.insert(
                        "check".into(),
                        if unchecked.is_empty() {
                            "renderable".into()
                        } else {
                            "not_checked".into()
                        },
                    );
                    m.insert("not_checked".into(), serde_json::json!(unchecked));
                }
                v
            })
            .collect();
        let out = serde_json::json!({
            "apps": apps,
            "unsupported": snap.discovery.unsupported,
            "errors": snap.discovery.errors,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<28} {:<12} {:<10} {:<48} {:<24} {:<16} STATUS",
        "NAME", "PROJECT", "TYPE", "SOURCE", "DESTINATION", "CLUSTER"
    );
    for a in &snap.discovery.apps {
        for (i, s) in a.sources.iter().enumerate() {
            let source = match (&s.path, &s.chart) {
                (Some(p), _) => p.clone(),
                (None, Some(c)) => format!("{}@{} ({})", c, s.target_revision, s.repo_url),
                (None, None) => s.repo_url.clone(),
            };
            let status = match (&s.status, &s.render) {
                (SourceStatus::Local, Some(src)) => match renderer.unavailable(&src.kind) {
                    Some(why) => format!("not checked: {why}"),
                    None => "rendered".to_string(),
                },
                (SourceStatus::Local, None) => "rendered".to_string(),
                // A `ref` source only lends its files to `$ref/...` value files: the sources that
                // read them say whether the app rendered.
                (SourceStatus::NotRendered(_), _) if s.path.is_none() && s.ref_name.is_some() => {
                    format!("values for ${}", s.ref_name.as_deref().unwrap_or_default())
                }
                (SourceStatus::NotRendered(r), _) => format!("not checked: {r}"),
                (SourceStatus::Error(e), _) => format!("error: {e}"),
            };
            let mut origin = Vec::new();
            if let Some(set) = &a.generated_by {
                origin.push(format!("appset {set}"));
            }
            if let Some(p) = &a.parent {
                origin.push(format!("child of {p}"));
            }
            let status = if origin.is_empty() || i > 0 {
                status
            } else {
                format!("{status} [{}]", origin.join(", "))
            };
            let (name, project, dest, cluster) = if i == 0 {
                (
                    a.name.as_str(),
                    a.project.as_str(),
                    a.destination.namespace.clone().unwrap_or_default(),
                    a.cluster_name(&clusters),
                )
            } else {
                ("", "", String::new(), String::new())
            };
            println!(
                "{:<28} {:<12} {:<10} {:<48} {:<24} {:<16} {}",
                name,
                project,
                s.kind.as_deref().unwrap_or("-"),
                source,
                dest,
                cluster,
                status
            );
        }
    }
    for u in &snap.discovery.unsupported {
        eprintln!("unsupported: {} in {}: {}", u.object, u.file, u.what);
    }
    for e in &snap.discovery.errors {
        eprintln!("error: {e}");
    }
    if cfg.repo_urls.is_empty() {
        eprintln!(
            "note: no URL is known for this repository; pass --repo-url (or set repoURLs in .capstan.yaml) so its Applications are rendered"
        );
    }
    for line in hints(&snap.discovery, &cfg, args.reference.as_deref()) {
        eprintln!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}

/// What a user with an empty or unrendered table needs to know: where discovery looked, and why
/// the Applications it found are not rendered.
fn hints(
    discovery: &capstan_worker::apps::Discovery,
    cfg: &capstan_worker::apps::DiscoveryConfig,
    reference: Option<&str>,
) -> Vec<String> {
    let mut out = Vec::new();
    if discovery.apps.is_empty() {
        let excluded: Vec<&str> = cfg.exclude.iter().map(|p| p.as_str()).collect();
        out.push(format!(
            "note: no Application or ApplicationSet found in {}: every *.yaml and *.yml file was read except in hidden folders, target/, node_modules/{}",
            reference.map_or_else(|| "the working tree".to_string(), |r| format!("commit {r}")),
            if excluded.is_empty() {
                String::new()
            } else {
                format!(" and discovery.exclude ({})", excluded.join(", "))
            }
        ));
        out.push(
            "note: to render a folder that no Application points at, run `capstan render DIR`"
                .into(),
        );
        return out;
    }
    let foreign: BTreeSet<&str> = discovery
        .apps
        .iter()
        .flat_map(|a| &a.sources)
        .filter(|s| s.chart.is_none() && !cfg.is_this_repo(&s.repo_url))
        .map(|s| s.repo_url.as_str())
        .collect();
    let local = discovery
        .apps
        .iter()
        .flat_map(|a| &a.sources)
        .any(|s| matches!(s.status, SourceStatus::Local));
    if !local && !foreign.is_empty() {
        out.push(format!(
            "note: no Application points at this repository; their repoURLs are {}. If one of them is this repository, name it with --repo-url, CAPSTAN_REPO_URLS or `repoURLs` in .capstan.yaml",
            foreign.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    out
}
