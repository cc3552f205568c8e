//! `capstan serve`: wire the store, the HTTP server, the job runner and recovery for a role, and
//! run them until SIGTERM/SIGINT.
//!
//! [`App::build`] reads nothing but the configuration and builds everything once: the database
//! is opened once and its pool shared by the queue and every store, one promotion engine serves
//! both the merge jobs and `/capstan promote`, handlers are registered by job type. Then
//! [`App::serve`] runs it on a listener the caller bound (tests bind `127.0.0.1:0` and read the
//! port back, so no port is ever guessed).

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use capstan_worker::argocd::{ArgoCdCheck, ArgoClient, DryRunOptions};
use capstan_worker::forge::Forge;
use capstan_worker::forge::github::{GitHubConfig, GitHubForge};
use capstan_worker::jobs::{self, MappingOptions};
use capstan_worker::pipeline::PrCheckHandler;
use capstan_worker::promote;
use capstan_worker::queue::{self, Queue};
use capstan_worker::render::{RenderConfig, Renderer};
use capstan_worker::runner::{Metrics, Registry, Runner, RunnerConfig};
use capstan_worker::services::{AppSync, ClusterCheck, GitSource, Services};
use capstan_worker::store::SqlPromotionStore;
use capstan_worker::store::runs::SqlRunStore;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::app::{AppState, metrics_router, router};
use crate::config::{self, Config};
use crate::dashboard::cluster::ClusterView;
use crate::dashboard::registry::{ProbeSettings, Registry as ServiceRegistry};
use crate::dashboard::{self, Dashboard, DashboardConfig};

/// The handlers this build ships, sharing `services`, with the default command prefix and a
/// promotion engine of their own (the service itself shares one engine, see [`App::build`]).
pub fn default_registry(services: &Arc<Services>) -> Registry {
    // One renderer for all PR checks, so its in-memory cache and pins serve every run.
    registry_with(
        services,
        Arc::new(Renderer::new(RenderConfig {
            cache_limits: services.limits.render_cache,
            jsonnet: services.limits.jsonnet,
            jsonnet_evaluator: this_binary(),
            ..RenderConfig::default()
        })),
        capstan_worker::commands::DEFAULT_PREFIX,
    )
}

/// The executable of this process, which evaluates Jsonnet programs in child processes of itself
/// (`capstan __jsonnet-eval`). Only the `capstan` binary has that subcommand: tests running the
/// service in their own process hand in the binary's path instead ([`Parts::jsonnet_evaluator`]).
pub fn this_binary() -> Option<std::path::PathBuf> {
    std::env::current_exe().ok()
}

/// The PR checks' renderer as the configuration describes it: the render cache's bounds, the
/// chart repositories, cache and credentials, and the Jsonnet bounds.
/// `helm` is the `helm` to run instead of the one on `PATH`; `jsonnet` the `capstan` binary
/// that evaluates Jsonnet, when not this process's own.
pub fn pr_renderer(
    cfg: &Config,
    helm: Option<std::path::PathBuf>,
    jsonnet: Option<std::path::PathBuf>,
) -> Renderer {
    Renderer::new(RenderConfig {
        cache_limits: cfg.limits.render_cache,
        charts: cfg.charts.clone(),
        helm_binary: helm,
        jsonnet: cfg.limits.jsonnet,
        jsonnet_evaluator: jsonnet.or_else(this_binary),
        ..RenderConfig::default()
    })
}

/// The handlers this build ships, sharing `services` and one renderer (tests hand in one with an
/// engine hook). A kind without a handler here stays queued for a process that has one.
/// `command_prefix` (the service's `--command-prefix`) is only the default: a repository's
/// `commands.prefix` wins.
pub fn registry_with(
    services: &Arc<Services>,
    renderer: Arc<Renderer>,
    command_prefix: &str,
) -> Registry {
    let engine = promotion_engine(
        services.forge.clone(),
        services.git.clone(),
        &services.queue,
        services.runs.clone(),
        services.sync.clone(),
    );
    registry_sharing(services, engine, renderer, command_prefix)
}

fn registry_sharing(
    services: &Arc<Services>,
    engine: Arc<promote::Engine>,
    renderer: Arc<Renderer>,
    command_prefix: &str,
) -> Registry {
    let mut r = Registry::new();
    r.register::<jobs::Ping>(jobs::ping::PingHandler);
    let checks = PrCheckHandler::new(services.clone(), renderer);
    r.register::<jobs::MergeGroupCheck>(checks.clone());
    r.register::<jobs::PrCheck>(checks);
    r.register::<jobs::Command>(
        capstan_worker::commands::CommandHandler::new(services.clone())
            .with_default_prefix(command_prefix),
    );
    r.register::<jobs::PrMerged>(promote::handler::MergedHandler(engine.clone()));
    r.register::<jobs::DefaultBranchPush>(promote::handler::PushHandler(engine));
    r
}

/// The promotion engine over the shared store, forge, git and ArgoCD.
fn promotion_engine(
    forge: Option<Arc<dyn Forge>>,
    git: GitSource,
    queue: &Arc<dyn Queue>,
    runs: Arc<dyn capstan_worker::store::RunStore>,
    sync: Option<Arc<dyn AppSync>>,
) -> Arc<promote::Engine> {
    Arc::new(
        promote::Engine::new(forge, git, runs, SqlPromotionStore::new(queue.db()), sync)
            .with_queue(queue.clone()),
    )
}

/// The forge client the settings describe: GitHub's (`None` without credentials), Gitea's or
/// GitLab's.
pub fn configured_forge(cfg: &Config) -> anyhow::Result<Option<Arc<dyn Forge>>> {
    use capstan_worker::forge::ForgeKind;
    use capstan_worker::forge::gitea::{GiteaConfig, GiteaForge};
    use capstan_worker::forge::gitlab::{GitLabConfig, GitLabForge};
    let inst = match (cfg.forge, &cfg.forge_instance) {
        (ForgeKind::GitHub, _) => return github_forge(cfg),
        (_, Some(inst)) => inst,
        // The settings refuse a self-hosted forge without its address and token.
        (other, None) => anyhow::bail!("--forge {other} needs --forge-url and CAPSTAN_FORGE_TOKEN"),
    };
    if inst.url.scheme() == "http" && !config::is_loopback_url(&inst.url) {
        warn!(url = %inst.web_base(), forge = %cfg.forge, "the forge is reached over plain http: its token crosses the network unencrypted");
    }
    let (url, token) = (inst.url.clone(), inst.token.0.clone());
    Ok(Some(match cfg.forge {
        ForgeKind::GitLab => Arc::new(
            GitLabForge::new(GitLabConfig::new(url, token))
                .context("building the GitLab client")?,
        ),
        _ => Arc::new(
            GiteaForge::new(GiteaConfig::new(url, token)).context("building the Gitea client")?,
        ),
    }))
}

/// The GitHub client the config asks for (`None` without credentials).
pub fn github_forge(cfg: &Config) -> anyhow::Result<Option<Arc<dyn Forge>>> {
    let Some(auth) = cfg.github_auth.clone() else {
        return Ok(None);
    };
    let forge = GitHubForge::new(GitHubConfig::new(cfg.github_api_url.clone(), auth))
        .context("building the GitHub client")?;
    Ok(Some(Arc::new(forge)))
}

/// What every handler shares, built from the config and the opened store, with the one
/// promotion engine behind `/capstan promote`, which is returned for the job handlers to share.
pub fn services(
    cfg: &Config,
    queue: Arc<dyn Queue>,
    forge: Option<Arc<dyn Forge>>,
) -> (Services, Arc<promote::Engine>) {
    let cluster = cluster_services(cfg);
    let runs: Arc<dyn capstan_worker::store::RunStore> = Arc::new(SqlRunStore::new(queue.db()));
    let git = GitSource::new(
        cfg.git_url_template.clone(),
        cfg.github_host.clone(),
        cfg.data_dir.join("mirrors"),
    );
    let engine = promotion_engine(
        forge.clone(),
        git.clone(),
        &queue,
        runs.clone(),
        cluster.sync.clone(),
    );
    let services = Services {
        runs,
        queue,
        forge,
        git,
        public_url: cfg.public_url.clone(),
        cluster: cluster.checks,
        sync: cluster.sync,
        promoter: Some(engine.clone() as Arc<dyn capstan_worker::services::Promoter>),
        limits: cfg.limits,
    };
    (services, engine)
}

/// The cluster-side checks and the ArgoCD sync the config asks for.
#[derive(Default)]
pub struct ClusterServices {
    pub checks: Vec<Arc<dyn ClusterCheck>>,
    pub sync: Option<Arc<dyn AppSync>>,
}

pub fn cluster_services(cfg: &Config) -> ClusterServices {
    let mut out = ClusterServices::default();
    if let Some(argo) = &cfg.argocd {
        // The config already built this client once, so an error here is not expected.
        match ArgoClient::new(&argo.client)
            .and_then(|c| ArgoCdCheck::new(c, &argo.dry_run_apps, DryRunOptions::default()))
        {
            Ok(check) => {
                info!(url = %argo.client.url, dry_run_apps = ?argo.dry_run_apps, "ArgoCD configured");
                if argo.client.url.scheme() == "http" && !config::is_loopback_url(&argo.client.url)
                {
                    warn!(url = %argo.client.url, "ArgoCD is reached over plain http (--argocd-allow-http): its token crosses the network unencrypted");
                }
                let check = Arc::new(check);
                out.checks.push(check.clone());
                out.sync = Some(check);
            }
            Err(e) => warn!(error = %e, "ArgoCD is configured but its client could not be built"),
        }
    }
    if cfg.kube_dry_run == config::KubeDryRunMode::Auto && capstan_worker::kube::config_present() {
        info!("kubeconfig or in-cluster config found: server-side dry-run enabled");
        out.checks
            .push(Arc::new(capstan_worker::kube::KubeDryRun::infer()));
    }
    out
}

/// The dashboard's view of ArgoCD, from the same settings the cluster checks use.
fn argocd_apps(cfg: &Config) -> Option<Arc<dyn dashboard::argocd::ArgoApps>> {
    let argo = cfg.argocd.as_ref()?;
    match ArgoClient::new(&argo.client) {
        Ok(c) => Some(Arc::new(dashboard::argocd::ArgoCdApps::new(
            c,
            dashboard::argocd::CACHE_TTL,
        ))),
        Err(e) => {
            warn!(error = %e, "ArgoCD is configured but its client could not be built");
            None
        }
    }
}

/// The dashboard the config describes, over the shared store. Returns it with the path of a
/// token generated on this start (to print once).
pub async fn dashboard(
    cfg: &Config,
    services: &Services,
) -> anyhow::Result<(Dashboard, Option<std::path::PathBuf>)> {
    let (auth, generated) = match &cfg.dashboard_auth {
        config::DashboardAuth::None => (dashboard::Auth::none(), None),
        config::DashboardAuth::Token(source) => {
            let (tokens, generated) = config::load_secrets(source)
                .context("loading the dashboard token (CAPSTAN_DASHBOARD_TOKEN)")?;
            tokens
                .iter()
                .for_each(|t| capstan_worker::scrub::register(t));
            (dashboard::Auth::token(tokens), generated)
        }
        config::DashboardAuth::ProxyHeader { secret } => (
            dashboard::Auth::proxy_header(
                cfg.dashboard_trusted_proxies.clone(),
                secret.as_ref().map(|s| s.0.clone()),
            ),
            None,
        ),
    };
    let auth = auth
        .behind(cfg.dashboard_trusted_proxies.clone())
        .https(cfg.public_url.starts_with("https://"));
    let dcfg = match &cfg.dashboard_config {
        Some(path) => DashboardConfig::load(path).context("dashboard_config")?,
        None => DashboardConfig::default(),
    };
    capstan_worker::forge::github::install_crypto_provider();
    let client = match kube::Client::try_default().await {
        Ok(c) => Ok(c),
        Err(e) => {
            info!(reason = %e, "no Kubernetes access: the registry lists static links, the cluster page says so");
            Err(e.to_string())
        }
    };
    let registry = Arc::new(ServiceRegistry::new(
        client.as_ref().ok().cloned(),
        &dcfg,
        ProbeSettings::default(),
    ));
    registry.spawn_prober();
    let db = services.queue.db();
    let mut d = Dashboard::new(services.runs.clone(), services.queue.clone())
        .with_config(dcfg)
        .with_promotions(Arc::new(
            capstan_worker::store::promotions::SqlPromotionStore::new(db.clone()),
        ))
        .with_fidelity(Arc::new(capstan_worker::store::SqlFidelityStore::new(db)))
        .with_registry(registry)
        .with_auth(auth)
        .with_prefix(
            dashboard::prefix::Prefix::from_public_url(&cfg.public_url).context("public_url")?,
        );
    if let Some(repo) = cfg.dashboard_repo.clone() {
        d = d.with_repo(repo);
    }
    match &cfg.forge_instance {
        Some(f) => d = d.with_forge(cfg.forge, f.web_base()),
        None if cfg.github_auth.is_some() => {
            d = d.with_forge_web(format!("https://{}", cfg.github_host));
        }
        None => {}
    }
    d = match client {
        Ok(c) => d.with_cluster(Arc::new(ClusterView::new(c))),
        Err(why) => d.without_cluster(why),
    };
    if let Some(argo) = argocd_apps(cfg) {
        d = d.with_argocd(argo);
    }
    Ok((d, generated))
}

fn print_token_help(path: &Path, public_url: &str) {
    println!(
        "capstan: the dashboard is reachable from other machines, so it needs a token; one was generated\n\
         capstan: and stored in {} (mode 0600). Sign in at {public_url}/login with it, or send\n\
         capstan: `Authorization: Bearer <token>`. Set CAPSTAN_DASHBOARD_TOKEN to choose your own, or listen\n\
         capstan: on 127.0.0.1 to use the dashboard without one. This message is printed only once.",
        path.display()
    );
}

/// Install logging per the config. Safe to call once per process.
pub fn init_tracing(cfg: &Config) {
    init_tracing_with(cfg, std::io::stderr);
}

/// [`init_tracing`] writing to `writer` (tests capture the log this way). Every line goes through
/// [`ScrubbingWriter`] first.
pub fn init_tracing_with<W>(cfg: &Config, writer: W)
where
    W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = tracing_subscriber::EnvFilter::try_new(&cfg.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(ScrubbingWriter(writer));
    let _ = match cfg.log_format {
        config::LogFormat::Json => builder.json().try_init(),
        config::LogFormat::Pretty => builder.try_init(),
    };
}

/// A log writer that passes each formatted event through [`capstan_worker::scrub`]: an error
/// quoting a token, a URL with credentials or a registered secret is logged redacted.
pub struct ScrubbingWriter<W>(pub W);

/// One event's writer: the formatter hands over a whole event per `write`.
pub struct ScrubbingLine<W: std::io::Write>(W);

impl<W: std::io::Write> std::io::Write for ScrubbingLine<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        self.0
            .write_all(capstan_worker::scrub::scrub(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

impl<'a, W> tracing_subscriber::fmt::MakeWriter<'a> for ScrubbingWriter<W>
where
    W: tracing_subscriber::fmt::MakeWriter<'a>,
{
    type Writer = ScrubbingLine<W::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        ScrubbingLine(self.0.make_writer())
    }
}

/// Registers the service's own secrets with the scrubber, so that no output (log line, report,
/// comment, stored record) can carry one, whatever upstream text quoted it.
pub fn register_secrets(cfg: &Config, webhook_secrets: &[String]) {
    use capstan_worker::scrub::register;
    for s in webhook_secrets {
        register(s);
    }
    // The App key registered itself when it was parsed (`AppKey::from_pem`).
    if let Some(capstan_worker::forge::github::GitHubAuth::Token(t)) = &cfg.github_auth {
        register(t);
    }
    if let Some(argo) = &cfg.argocd {
        register(&argo.client.token);
    }
    if let Some(f) = &cfg.forge_instance {
        register(&f.token.0);
    }
    if let config::DashboardAuth::ProxyHeader { secret: Some(s) } = &cfg.dashboard_auth {
        register(&s.0);
    }
    if let Ok(url) = url::Url::parse(&cfg.database_url)
        && let Some(p) = url.password()
    {
        register(p);
        // The URL keeps the password percent-encoded; drivers and error messages may quote
        // either form.
        if let Ok(decoded) = percent_encoding::percent_decode_str(p).decode_utf8() {
            register(&decoded);
        }
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the service");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = term => info!("SIGTERM received; shutting down"),
        _ = tokio::signal::ctrl_c() => info!("SIGINT received; shutting down"),
    }
}

/// Open the store named by the config (creating the data dir for SQLite).
pub async fn open_queue(cfg: &Config) -> anyhow::Result<Arc<dyn Queue>> {
    if cfg.database_url.starts_with("sqlite:") {
        std::fs::create_dir_all(&cfg.data_dir)
            .with_context(|| format!("creating data dir {} (data_dir)", cfg.data_dir.display()))?;
    }
    queue::open(&cfg.database_url).await.with_context(|| {
        format!(
            "opening the store {} (database_url)",
            queue::redact_url(&cfg.database_url)
        )
    })
}

fn print_secret_help(path: &Path) {
    println!(
        "capstan: no webhook secret was configured, so one was generated and stored in {} (mode 0600).\n\
         capstan: paste it into your GitHub App's (or repository hook's) \"Webhook secret\" field,\n\
         capstan: or set CAPSTAN_WEBHOOK_SECRET to use your own. This message is printed only once.",
        path.display()
    );
}

/// Run the service on the configured address until `shutdown` (or a signal). `forge` replaces
/// the GitHub client the config describes; with neither, reports go to the store and the log and
/// missed-event recovery is off.
pub async fn run(
    cfg: Config,
    forge: Option<Arc<dyn Forge>>,
    shutdown: Option<CancellationToken>,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("binding {} (listen)", cfg.listen))?;
    let app = App::build_with(
        cfg,
        Parts {
            forge,
            shutdown,
            ..Parts::default()
        },
    )
    .await?;
    let stop = app.shutdown_handle();
    tokio::spawn(async move {
        shutdown_signal().await;
        stop.cancel();
    });
    app.serve(listener).await
}

/// What a caller may hand [`App::build_with`] instead of building it from the configuration.
#[derive(Default)]
pub struct Parts {
    /// Replaces the GitHub client the config describes (tests pass one on a fake GitHub).
    pub forge: Option<Arc<dyn Forge>>,
    /// The PR checks' renderer (tests hand in one with an engine hook).
    pub renderer: Option<Arc<Renderer>>,
    /// The `helm` the configured renderer runs instead of the one on `PATH` (tests hand in the
    /// Helm engine of `tests/support/helm`); unused when `renderer` is given.
    pub helm_binary: Option<std::path::PathBuf>,
    /// The `capstan` binary the configured renderer evaluates Jsonnet with, instead of this
    /// process's executable (tests run the service inside a test binary); unused when
    /// `renderer` is given.
    pub jsonnet_evaluator: Option<std::path::PathBuf>,
    /// Stops [`App::serve`] when cancelled (a fresh token when `None`).
    pub shutdown: Option<CancellationToken>,
}

/// The service, built once from its configuration; [`App::serve`] runs it.
pub struct App {
    cfg: Config,
    queue: Arc<dyn Queue>,
    forge: Option<Arc<dyn Forge>>,
    allowlist: Option<globset::GlobSet>,
    runner: Option<Runner>,
    state: Arc<AppState>,
    shutdown: CancellationToken,
}

impl App {
    /// Everything the configuration describes.
    pub async fn build(cfg: Config) -> anyhow::Result<App> {
        Self::build_with(cfg, Parts::default()).await
    }

    /// [`App::build`] with some parts handed in.
    pub async fn build_with(cfg: Config, parts: Parts) -> anyhow::Result<App> {
        let armed = capstan_worker::failpoint::arm_from_env().map_err(anyhow::Error::msg)?;
        if !armed.is_empty() {
            warn!(?armed, "failpoints armed: this is a test build");
        }
        let forge = match parts.forge {
            Some(f) => Some(f),
            None => configured_forge(&cfg)?,
        };
        let (secrets, generated) = config::load_secrets(&cfg.secrets)?;
        register_secrets(&cfg, &secrets);
        if let Some(path) = generated {
            print_secret_help(&path);
        }
        // The one database pool: the queue's, shared by every store below.
        let queue = open_queue(&cfg).await?;
        let (services, engine) = services(&cfg, queue.clone(), forge.clone());
        let services = Arc::new(services);
        let renderer = parts.renderer.unwrap_or_else(|| {
            Arc::new(pr_renderer(
                &cfg,
                parts.helm_binary,
                parts.jsonnet_evaluator,
            ))
        });
        let registry = registry_sharing(&services, engine, renderer, &cfg.command_prefix);
        let metrics = Arc::new(Metrics::new());
        let allowlist = match &cfg.repo_allowlist {
            Some(globs) => Some(
                config::build_allowlist(globs)
                    .map_err(|e| anyhow::anyhow!("repo_allowlist: {e}"))?,
            ),
            None => None,
        };
        let kinds = registry.kinds();
        let runner = cfg.role.jobs().then(|| {
            Runner::new(
                queue.clone(),
                registry,
                RunnerConfig {
                    workers: cfg.workers,
                    lease: cfg.job_lease,
                    poll_interval: cfg.poll_interval,
                    shutdown_grace: cfg.shutdown_grace,
                    ..RunnerConfig::default()
                },
                metrics.clone(),
            )
        });
        let dashboard = if cfg.role.intake() {
            let (d, generated) = dashboard(&cfg, &services).await?;
            if let Some(path) = generated {
                print_token_help(&path, &cfg.public_url);
            }
            if matches!(cfg.dashboard_auth, config::DashboardAuth::None) {
                warn!(listen = %cfg.listen, "the dashboard has no access control (--dashboard-auth none): anyone who can reach this loopback address sees every diff");
            }
            Some(Arc::new(d))
        } else {
            None
        };
        let mut state = AppState::new(queue.clone(), secrets)
            .with_mapping(MappingOptions {
                command_prefix: cfg.command_prefix.clone(),
                bare_commands: cfg.bare_commands,
                self_logins: cfg.bot_logins.clone(),
            })
            .with_metrics(metrics)
            .with_forge(cfg.forge)
            .with_body_timeout(cfg.body_timeout)
            .with_job_max_attempts(cfg.job_max_attempts)
            .with_intake_batch_max(cfg.intake_batch_max);
        if let Some(allow) = allowlist.clone() {
            state = state.with_allowlist(allow);
        }
        if let Some(runner) = &runner {
            state = state.with_wake(runner.waker(), kinds);
        }
        if let Some(d) = dashboard {
            state = state.with_dashboard(d);
        }
        if cfg.metrics_listen.is_some() {
            state = state.without_metrics_route();
        }
        let state = Arc::new(state);
        Ok(App {
            cfg,
            queue,
            forge,
            allowlist,
            runner,
            state,
            shutdown: parts.shutdown.unwrap_or_default(),
        })
    }

    /// Cancel this to stop [`App::serve`] gracefully.
    pub fn shutdown_handle(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Serve HTTP on `listener` and run this role's workers and recovery until shut down.
    pub async fn serve(self, listener: tokio::net::TcpListener) -> anyhow::Result<()> {
        let (cfg, queue, state, shutdown) = (self.cfg, self.queue, self.state, self.shutdown);
        let (forge, allowlist, runner) = (self.forge, self.allowlist, self.runner);
        let app = router(state.clone(), cfg.role.intake());
        let metrics_listener = match cfg.metrics_listen {
            Some(addr) => Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding {addr} (metrics_listen)"))?,
            ),
            None => None,
        };
        let addr = listener.local_addr().context("reading the bound address")?;
        println!(
            "capstan listening on http://{addr} (role {}, store {})",
            cfg.role.as_str(),
            queue.backend()
        );
        info!(%addr, role = ?cfg.role, backend = queue.backend(), "capstan started");

        let mut tasks = tokio::task::JoinSet::new();
        // The listeners close only once the process is drained: after `drain_delay`, and after
        // the workers finished or released their jobs. Until then webhooks are still stored
        // (another replica runs their jobs) and `/readyz` says 503 so no new traffic comes.
        let http_stop = CancellationToken::new();
        let jobs_done = CancellationToken::new();
        {
            let (shutdown, http_stop, jobs_done) =
                (shutdown.clone(), http_stop.clone(), jobs_done.clone());
            let (state, delay) = (state.clone(), cfg.drain_delay);
            tasks.spawn(async move {
                shutdown.cancelled().await;
                state.start_draining();
                info!(
                    drain_delay_secs = delay.as_secs(),
                    "draining: /readyz answers 503"
                );
                tokio::time::sleep(delay).await;
                jobs_done.cancelled().await;
                http_stop.cancel();
                Ok::<(), anyhow::Error>(())
            });
        }
        match runner {
            None => jobs_done.cancel(),
            Some(runner) => {
                let stop = shutdown.clone();
                let done = jobs_done.clone();
                tasks.spawn(async move {
                    runner.run(stop).await;
                    done.cancel();
                    Ok::<(), anyhow::Error>(())
                });
            }
        }
        if cfg.role.jobs() {
            match forge {
                Some(forge) => {
                    let allowed: Arc<dyn Fn(&str) -> bool + Send + Sync> = match allowlist {
                        Some(set) => Arc::new(move |repo: &str| set.is_match(repo)),
                        None => Arc::new(|_: &str| true),
                    };
                    let recovery = capstan_worker::recovery::run_periodically(
                        queue.clone(),
                        forge,
                        allowed,
                        cfg.recovery_interval,
                        format!(
                            "capstan-{}-{}",
                            std::process::id(),
                            uuid::Uuid::new_v4().simple()
                        ),
                        shutdown.clone(),
                    );
                    tasks.spawn(async move {
                        recovery.await;
                        Ok(())
                    });
                }
                None => info!("missed-event recovery is off: no GitHub credentials configured"),
            }
        }
        {
            let stop = http_stop.clone();
            tasks.spawn(async move {
                // The peer address is what `--dashboard-auth proxy-header` checks the proxy
                // against.
                axum::serve(
                    listener,
                    app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
                )
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await
                .context("HTTP server")
            });
        }
        if let Some(listener) = metrics_listener {
            let stop = http_stop.clone();
            let app = metrics_router(state);
            if let Ok(addr) = listener.local_addr() {
                println!("capstan metrics on http://{addr}/metrics");
            }
            tasks.spawn(async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(async move { stop.cancelled().await })
                    .await
                    .context("metrics HTTP server")
            });
        }
        let mut result = Ok(());
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    shutdown.cancel();
                    result = Err(e);
                }
                Err(e) => {
                    shutdown.cancel();
                    result = Err(anyhow::anyhow!("a service task failed: {e}"));
                }
            }
        }
        info!("capstan stopped");
        result
    }
}
