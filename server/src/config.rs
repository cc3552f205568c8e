//! Every service setting in one place: its TOML key, flag, environment variable and default.
//!
//! Precedence: flag > environment > TOML file (`--config` / `CAPSTAN_CONFIG`) > default. Secrets
//! come only from the environment or files, never from flags or the TOML file (flags show up in
//! `ps`, config files get committed). A bad value stops start-up with a message naming the key and
//! where the value came from.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use capstan_worker::forge::github::{GitHubAuth, api_url_from_setting};
use capstan_worker::limits::{DiffLimits, Limits};
use capstan_worker::render::cache::CacheLimits;
use globset::{GlobSet, GlobSetBuilder};

/// One setting. `flag` is empty for secrets.
#[derive(Clone, Copy, Debug)]
pub struct Key {
    pub toml: &'static str,
    pub flag: &'static str,
    pub env: &'static str,
    pub default: &'static str,
    pub help: &'static str,
}

macro_rules! keys {
    ($($name:ident = ($toml:literal, $flag:literal, $env:literal, $default:literal, $help:literal);)*) => {
        $(pub const $name: Key = Key { toml: $toml, flag: $flag, env: $env, default: $default, help: $help };)*
        /// All settings, in the order the README's table lists them.
        pub const ALL: &[Key] = &[$($name),*];
    };
}

keys! {
    LISTEN = ("listen", "--listen", "CAPSTAN_LISTEN", "0.0.0.0:8080", "Address of the HTTP server (webhooks, dashboard, health, metrics).");
    ROLE = ("role", "--role", "CAPSTAN_ROLE", "all", "`all` (intake and workers), `server` (intake only) or `worker` (jobs only, plus health and metrics).");
    DATA_DIR = ("data_dir", "--data-dir", "CAPSTAN_DATA_DIR", "./data", "Where the SQLite database, git mirrors and the generated webhook secret live.");
    DATABASE_URL = ("database_url", "--database-url", "DATABASE_URL", "sqlite://<data_dir>/capstan.db", "`sqlite://PATH` or `postgres://…`; `CAPSTAN_DATABASE_URL` wins over `DATABASE_URL`.");
    WEBHOOK_SECRET = ("", "", "CAPSTAN_WEBHOOK_SECRET", "generated", "Webhook secret(s), comma-separated to rotate: any of them verifies. Environment only.");
    WEBHOOK_SECRET_FILE = ("webhook_secret_file", "--webhook-secret-file", "CAPSTAN_WEBHOOK_SECRET_FILE", "<data_dir>/webhook-secret", "File holding the secret(s), one per line or comma-separated; generated (0600) when absent and no secret is set.");
    REPO_ALLOWLIST = ("repo_allowlist", "--repo-allowlist", "CAPSTAN_REPO_ALLOWLIST", "* (every repo the hook or App covers)", "Comma-separated `owner/name` globs; deliveries for other repositories get 403.");
    WORKERS = ("workers", "--workers", "CAPSTAN_WORKERS", "number of cores", "Concurrent job workers in this process.");
    JOB_LEASE_SECS = ("job_lease_secs", "--job-lease-secs", "CAPSTAN_JOB_LEASE_SECS", "60", "Job lease; a crashed worker's job is re-claimed after it expires.");
    JOB_MAX_ATTEMPTS = ("job_max_attempts", "--job-max-attempts", "CAPSTAN_JOB_MAX_ATTEMPTS", "5", "Attempts before a job with transient errors is `dead`.");
    POLL_INTERVAL_MS = ("poll_interval_ms", "--poll-interval-ms", "CAPSTAN_POLL_INTERVAL_MS", "500", "How often idle workers look for jobs queued by other processes.");
    SHUTDOWN_GRACE_SECS = ("shutdown_grace_secs", "--shutdown-grace-secs", "CAPSTAN_SHUTDOWN_GRACE_SECS", "30", "On SIGTERM/SIGINT, time running jobs get to finish before they are released.");
    BODY_TIMEOUT_SECS = ("body_timeout_secs", "--body-timeout-secs", "CAPSTAN_BODY_TIMEOUT_SECS", "30", "Time allowed to receive a webhook body.");
    RECOVERY_INTERVAL_SECS = ("recovery_interval_secs", "--recovery-interval-secs", "CAPSTAN_RECOVERY_INTERVAL_SECS", "300", "Missed-event recovery period (runs when GitHub credentials are configured).");
    COMMAND_PREFIX = ("command_prefix", "--command-prefix", "CAPSTAN_COMMAND_PREFIX", "/capstan", "Slash-command prefix in PR comments.");
    BARE_COMMANDS = ("bare_commands", "--bare-commands", "CAPSTAN_BARE_COMMANDS", "false", "Also accept `/diff`-style commands without the prefix.");
    BOT_LOGINS = ("bot_logins", "--bot-logins", "CAPSTAN_BOT_LOGINS", "", "Logins Capstan comments as; their comments never trigger commands (bots are always ignored).");
    LOG_FORMAT = ("log_format", "--log-format", "CAPSTAN_LOG_FORMAT", "pretty", "`pretty` or `json`.");
    LOG = ("log", "--log", "CAPSTAN_LOG", "info", "Log filter (`tracing` env-filter syntax, e.g. `info,capstan_worker=debug`).");
    PUBLIC_URL = ("public_url", "--public-url", "CAPSTAN_PUBLIC_URL", "http://localhost:<listen port>", "Base URL people reach the dashboard at; PR comments link runs as `<public_url>/runs/<id>`.");
    GITHUB_API_URL = ("github_api_url", "--github-api-url", "CAPSTAN_GITHUB_API_URL", "https://api.github.com", "GitHub REST API base; for GitHub Enterprise Server `https://<host>/api/v3`.");
    GITHUB_TOKEN = ("", "", "CAPSTAN_GITHUB_TOKEN", "none", "Personal or fine-grained token (commit statuses instead of check runs). Environment only; or use the App settings.");
    GITHUB_APP_ID = ("github_app_id", "--github-app-id", "CAPSTAN_GITHUB_APP_ID", "none", "GitHub App id; with the key file, Capstan authenticates as the App (check runs, per-installation tokens).");
    GITHUB_APP_KEY_FILE = ("github_app_key_file", "--github-app-key-file", "CAPSTAN_GITHUB_APP_KEY_FILE", "none", "The GitHub App's private key (PEM). Without GitHub credentials reports go to the dashboard and the log only.");
    GIT_URL_TEMPLATE = ("git_url_template", "--git-url-template", "CAPSTAN_GIT_URL_TEMPLATE", "https://<github host>/{owner}/{repo}.git", "Where repositories are fetched from (`{owner}`, `{repo}`, `{host}`); `file://` works for mirrors. Never taken from a webhook.");
    ARGOCD_URL = ("argocd_url", "--argocd-url", "CAPSTAN_ARGOCD_URL", "none", "ArgoCD server URL; with a token, PRs show each app's sync and health status and the live diff.");
    ARGOCD_TOKEN = ("", "", "CAPSTAN_ARGOCD_TOKEN", "none", "ArgoCD API token (bearer). Environment only; or use the token file.");
    ARGOCD_TOKEN_FILE = ("argocd_token_file", "--argocd-token-file", "CAPSTAN_ARGOCD_TOKEN_FILE", "none", "File holding the ArgoCD API token.");
    ARGOCD_CA_FILE = ("argocd_ca_file", "--argocd-ca-file", "CAPSTAN_ARGOCD_CA_FILE", "none (public roots)", "PEM CA certificate(s) to trust for ArgoCD besides the public roots (TLS is always verified).");
    ARGOCD_ALLOW_HTTP = ("argocd_allow_http", "--argocd-allow-http", "CAPSTAN_ARGOCD_ALLOW_HTTP", "false", "Accept an `http://` ArgoCD URL (the token then crosses the network in clear text; a warning is logged at start). Without it only https, or http to a loopback address, is accepted.");
    ARGOCD_DRY_RUN_APPS = ("argocd_dry_run_apps", "--argocd-dry-run-apps", "CAPSTAN_ARGOCD_DRY_RUN_APPS", "none", "Comma-separated globs of apps that get an ArgoCD dry-run sync per PR (needs `sync` RBAC and sets the app's operation, hence opt-in).");
    KUBE_DRY_RUN = ("kube_dry_run", "--kube-dry-run", "CAPSTAN_KUBE_DRY_RUN", "auto", "`auto` (server-side dry-run apply of changed objects when a kubeconfig or in-cluster config is present) or `off`.");
    DASHBOARD_AUTH = ("dashboard_auth", "--dashboard-auth", "CAPSTAN_DASHBOARD_AUTH", "none on a loopback listen address, else token", "Who may read the dashboard (it shows private diffs): `none`, `token` or `proxy-header`. `none` is refused unless `listen` is a loopback address. Webhooks, health and metrics stay open.");
    DASHBOARD_TOKEN = ("", "", "CAPSTAN_DASHBOARD_TOKEN", "generated into <data_dir>/dashboard-token", "Token(s) for `--dashboard-auth token`, comma-separated to rotate; sent as `Authorization: Bearer …` or entered once at `/login` (cookie). Environment only.");
    DASHBOARD_TRUSTED_PROXIES = ("dashboard_trusted_proxies", "--dashboard-trusted-proxies", "CAPSTAN_DASHBOARD_TRUSTED_PROXIES", "none", "Comma-separated exact IP addresses of the proxies in front (no ranges: any pod in a range could claim to be the proxy). `proxy-header` believes their `X-Forwarded-User`/`X-Auth-Request-User` (or `…-Email`); every mode believes their `X-Forwarded-For`/`X-Forwarded-Proto`.");
    DASHBOARD_PROXY_SECRET = ("", "", "CAPSTAN_DASHBOARD_PROXY_SECRET", "none", "Shared secret the auth proxy sends in `X-Capstan-Proxy-Secret` (compared in constant time); `proxy-header` needs it or `--dashboard-trusted-proxies`, and checks both when both are set. Environment only.");
    METRICS_LISTEN = ("metrics_listen", "--metrics-listen", "CAPSTAN_METRICS_LISTEN", "none (/metrics on the main listener)", "Separate address for `/metrics` (and health); when set, `/metrics` is no longer served on `listen`.");
    DASHBOARD_CONFIG = ("dashboard_config", "--dashboard-config", "CAPSTAN_DASHBOARD_CONFIG", "built-in defaults", "Dashboard settings in the seed's schema (name, theme, links, metrics, serviceDiscovery); in a cluster the `capstan-dashboard` ConfigMap mounted as a file.");
    DASHBOARD_REPO = ("dashboard_repo", "--dashboard-repo", "CAPSTAN_DASHBOARD_REPO", "the current directory when it is a git repository", "Local checkout of the GitOps repository whose default branch the environments page reads.");
    JOB_DEADLINE_SECS = ("job_deadline_secs", "--job-deadline-secs", "CAPSTAN_JOB_DEADLINE_SECS", "900", "Wall time of one PR check; past it the check fails with \"not checked: limit reached\".");
    APPSET_MAX_APPS = ("appset_max_apps", "--appset-max-apps", "CAPSTAN_APPSET_MAX_APPS", "1000", "Apps one ApplicationSet may generate (list, matrix, git); a set over it is reported as not checked and fails the check.");
    DIFF_DEADLINE_SECS = ("diff_deadline_secs", "--diff-deadline-secs", "CAPSTAN_DIFF_DEADLINE_SECS", "20", "Time for the text diffs of one app; objects left get no text diff and the check fails.");
    DIFF_MAX_OBJECT_KB = ("diff_max_object_kb", "--diff-max-object-kb", "CAPSTAN_DIFF_MAX_OBJECT_KB", "1024", "An object whose YAML is larger gets no text diff, and the check fails.");
    COMMENT_MAX_PARTS = ("comment_max_parts", "--comment-max-parts", "CAPSTAN_COMMENT_MAX_PARTS", "10", "Parts of the sticky PR comment; beyond it the rest is on the dashboard and the check fails.");
    RENDER_CACHE_MAX_ENTRIES = ("render_cache_max_entries", "--render-cache-max-entries", "CAPSTAN_RENDER_CACHE_MAX_ENTRIES", "2000", "Renders kept in memory; the least recently used go first.");
    RENDER_CACHE_MAX_MB = ("render_cache_max_mb", "--render-cache-max-mb", "CAPSTAN_RENDER_CACHE_MAX_MB", "256", "Memory the render cache may hold.");
}

/// The settings file and flags as `serve` and `replay` accept them. Values are strings so the
/// config module can name the key and source of a bad one.
#[derive(clap::Args, Debug, Default, Clone)]
pub struct ConfigArgs {
    /// TOML file with any of the settings below (keys as in the README).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[arg(long, value_name = "ADDR", help = LISTEN.help)]
    pub listen: Option<String>,
    #[arg(long, value_name = "all|server|worker", help = ROLE.help)]
    pub role: Option<String>,
    #[arg(long, value_name = "DIR", help = DATA_DIR.help)]
    pub data_dir: Option<String>,
    #[arg(long, value_name = "URL", help = DATABASE_URL.help)]
    pub database_url: Option<String>,
    #[arg(long, value_name = "FILE", help = WEBHOOK_SECRET_FILE.help)]
    pub webhook_secret_file: Option<String>,
    #[arg(long, value_name = "GLOBS", help = REPO_ALLOWLIST.help)]
    pub repo_allowlist: Option<String>,
    #[arg(long, value_name = "N", help = WORKERS.help)]
    pub workers: Option<String>,
    #[arg(long, value_name = "SECS", help = JOB_LEASE_SECS.help)]
    pub job_lease_secs: Option<String>,
    #[arg(long, value_name = "N", help = JOB_MAX_ATTEMPTS.help)]
    pub job_max_attempts: Option<String>,
    #[arg(long, value_name = "MS", help = POLL_INTERVAL_MS.help)]
    pub poll_interval_ms: Option<String>,
    #[arg(long, value_name = "SECS", help = SHUTDOWN_GRACE_SECS.help)]
    pub shutdown_grace_secs: Option<String>,
    #[arg(long, value_name = "SECS", help = BODY_TIMEOUT_SECS.help)]
    pub body_timeout_secs: Option<String>,
    #[arg(long, value_name = "SECS", help = RECOVERY_INTERVAL_SECS.help)]
    pub recovery_interval_secs: Option<String>,
    #[arg(long, value_name = "PREFIX", help = COMMAND_PREFIX.help)]
    pub command_prefix: Option<String>,
    #[arg(long, value_name = "BOOL", help = BARE_COMMANDS.help)]
    pub bare_commands: Option<String>,
    #[arg(long, value_name = "LOGINS", help = BOT_LOGINS.help)]
    pub bot_logins: Option<String>,
    #[arg(long, value_name = "pretty|json", help = LOG_FORMAT.help)]
    pub log_format: Option<String>,
    #[arg(long, value_name = "FILTER", help = LOG.help)]
    pub log: Option<String>,
    #[arg(long, value_name = "URL", help = PUBLIC_URL.help)]
    pub public_url: Option<String>,
    #[arg(long, value_name = "URL", help = GITHUB_API_URL.help)]
    pub github_api_url: Option<String>,
    #[arg(long, value_name = "ID", help = GITHUB_APP_ID.help)]
    pub github_app_id: Option<String>,
    #[arg(long, value_name = "FILE", help = GITHUB_APP_KEY_FILE.help)]
    pub github_app_key_file: Option<String>,
    #[arg(long, value_name = "TEMPLATE", help = GIT_URL_TEMPLATE.help)]
    pub git_url_template: Option<String>,
    #[arg(long, value_name = "URL", help = ARGOCD_URL.help)]
    pub argocd_url: Option<String>,
    #[arg(long, value_name = "FILE", help = ARGOCD_TOKEN_FILE.help)]
    pub argocd_token_file: Option<String>,
    #[arg(long, value_name = "FILE", help = ARGOCD_CA_FILE.help)]
    pub argocd_ca_file: Option<String>,
    #[arg(long, value_name = "BOOL", help = ARGOCD_ALLOW_HTTP.help)]
    pub argocd_allow_http: Option<String>,
    #[arg(long, value_name = "GLOBS", help = ARGOCD_DRY_RUN_APPS.help)]
    pub argocd_dry_run_apps: Option<String>,
    #[arg(long, value_name = "auto|off", help = KUBE_DRY_RUN.help)]
    pub kube_dry_run: Option<String>,
    #[arg(long, value_name = "none|token|proxy-header", help = DASHBOARD_AUTH.help)]
    pub dashboard_auth: Option<String>,
    #[arg(long, value_name = "IPS", help = DASHBOARD_TRUSTED_PROXIES.help)]
    pub dashboard_trusted_proxies: Option<String>,
    #[arg(long, value_name = "ADDR", help = METRICS_LISTEN.help)]
    pub metrics_listen: Option<String>,
    #[arg(long, value_name = "FILE", help = DASHBOARD_CONFIG.help)]
    pub dashboard_config: Option<String>,
    #[arg(long, value_name = "DIR", help = DASHBOARD_REPO.help)]
    pub dashboard_repo: Option<String>,
    #[arg(long, value_name = "SECS", help = JOB_DEADLINE_SECS.help)]
    pub job_deadline_secs: Option<String>,
    #[arg(long, value_name = "N", help = APPSET_MAX_APPS.help)]
    pub appset_max_apps: Option<String>,
    #[arg(long, value_name = "SECS", help = DIFF_DEADLINE_SECS.help)]
    pub diff_deadline_secs: Option<String>,
    #[arg(long, value_name = "KB", help = DIFF_MAX_OBJECT_KB.help)]
    pub diff_max_object_kb: Option<String>,
    #[arg(long, value_name = "N", help = COMMENT_MAX_PARTS.help)]
    pub comment_max_parts: Option<String>,
    #[arg(long, value_name = "N", help = RENDER_CACHE_MAX_ENTRIES.help)]
    pub render_cache_max_entries: Option<String>,
    #[arg(long, value_name = "MB", help = RENDER_CACHE_MAX_MB.help)]
    pub render_cache_max_mb: Option<String>,
}

impl ConfigArgs {
    fn flag(&self, key: &Key) -> Option<&str> {
        let v = match key.toml {
            "listen" => &self.listen,
            "role" => &self.role,
            "data_dir" => &self.data_dir,
            "database_url" => &self.database_url,
            "webhook_secret_file" => &self.webhook_secret_file,
            "repo_allowlist" => &self.repo_allowlist,
            "workers" => &self.workers,
            "job_lease_secs" => &self.job_lease_secs,
            "job_max_attempts" => &self.job_max_attempts,
            "poll_interval_ms" => &self.poll_interval_ms,
            "shutdown_grace_secs" => &self.shutdown_grace_secs,
            "body_timeout_secs" => &self.body_timeout_secs,
            "recovery_interval_secs" => &self.recovery_interval_secs,
            "command_prefix" => &self.command_prefix,
            "bare_commands" => &self.bare_commands,
            "bot_logins" => &self.bot_logins,
            "log_format" => &self.log_format,
            "log" => &self.log,
            "public_url" => &self.public_url,
            "github_api_url" => &self.github_api_url,
            "github_app_id" => &self.github_app_id,
            "github_app_key_file" => &self.github_app_key_file,
            "git_url_template" => &self.git_url_template,
            "argocd_url" => &self.argocd_url,
            "argocd_token_file" => &self.argocd_token_file,
            "argocd_ca_file" => &self.argocd_ca_file,
            "argocd_allow_http" => &self.argocd_allow_http,
            "argocd_dry_run_apps" => &self.argocd_dry_run_apps,
            "kube_dry_run" => &self.kube_dry_run,
            "dashboard_auth" => &self.dashboard_auth,
            "dashboard_trusted_proxies" => &self.dashboard_trusted_proxies,
            "metrics_listen" => &self.metrics_listen,
            "dashboard_config" => &self.dashboard_config,
            "dashboard_repo" => &self.dashboard_repo,
            "job_deadline_secs" => &self.job_deadline_secs,
            "appset_max_apps" => &self.appset_max_apps,
            "diff_deadline_secs" => &self.diff_deadline_secs,
            "diff_max_object_kb" => &self.diff_max_object_kb,
            "comment_max_parts" => &self.comment_max_parts,
            "render_cache_max_entries" => &self.render_cache_max_entries,
            "render_cache_max_mb" => &self.render_cache_max_mb,
            _ => return None,
        };
        v.as_deref()
    }
}

/// A configuration problem, naming the key and where the value came from.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{origin}: invalid value {value:?}: {reason}")]
    Invalid {
        origin: String,
        value: String,
        reason: String,
    },
    #[error("config file {path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("{origin}: {reason}")]
    Secret { origin: String, reason: String },
}

/// Which processes' work this one does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    All,
    Server,
    Worker,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::All => "all",
            Role::Server => "server",
            Role::Worker => "worker",
        }
    }

    pub fn intake(self) -> bool {
        matches!(self, Role::All | Role::Server)
    }
    pub fn jobs(self) -> bool {
        matches!(self, Role::All | Role::Worker)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// Where the webhook secrets come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretSource {
    /// `CAPSTAN_WEBHOOK_SECRET`.
    Env(Vec<String>),
    /// A file; `generate` when it is the default path and may be created.
    File { path: PathBuf, generate: bool },
}

/// The resolved service configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub role: Role,
    pub data_dir: PathBuf,
    pub database_url: String,
    pub secrets: SecretSource,
    /// `None` = every repository.
    pub repo_allowlist: Option<Vec<String>>,
    pub workers: usize,
    pub job_lease: Duration,
    pub job_max_attempts: i32,
    pub poll_interval: Duration,
    pub shutdown_grace: Duration,
    pub body_timeout: Duration,
    pub recovery_interval: Duration,
    pub command_prefix: String,
    pub bare_commands: bool,
    pub bot_logins: Vec<String>,
    pub log_format: LogFormat,
    pub log: String,
    /// Dashboard base URL, without a trailing slash.
    pub public_url: String,
    pub github_api_url: url::Url,
    /// `None`: no GitHub credentials; reports go to the store and the log.
    pub github_auth: Option<GitHubAuth>,
    pub git_url_template: String,
    /// The web host `{host}` stands for in the git URL template.
    pub github_host: String,
    /// `None`: no ArgoCD configured.
    pub argocd: Option<ArgoSettings>,
    pub kube_dry_run: KubeDryRunMode,
    /// Who may read the dashboard.
    pub dashboard_auth: DashboardAuth,
    /// Exact addresses of the proxies in front of the dashboard.
    pub dashboard_trusted_proxies: Vec<std::net::IpAddr>,
    /// Where `/metrics` is served instead of `listen`.
    pub metrics_listen: Option<SocketAddr>,
    pub dashboard_config: Option<PathBuf>,
    /// `None`: no repository (the environments page says so).
    pub dashboard_repo: Option<PathBuf>,
    /// Bounds on the work one pull request can cause.
    pub limits: Limits,
}

/// ArgoCD as configured: where, how to authenticate, which apps get a dry-run sync.
#[derive(Clone, Debug)]
pub struct ArgoSettings {
    /// Debug output of the client config redacts the token.
    pub client: capstan_worker::argocd::ArgoConfig,
    pub dry_run_apps: Vec<String>,
}

/// `--kube-dry-run`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KubeDryRunMode {
    /// When a kubeconfig or in-cluster config is present.
    Auto,
    Off,
}

/// Dashboard access control as configured (the token itself is loaded at start, like the
/// webhook secret, so a generated one can be printed once).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DashboardAuth {
    /// Anyone who can connect; only allowed on a loopback listen address.
    None,
    /// `CAPSTAN_DASHBOARD_TOKEN`, or a token generated into the data dir.
    Token(SecretSource),
    /// Identity headers from the trusted proxies (`Config::dashboard_trusted_proxies`), and
    /// only with this secret when it is set.
    ProxyHeader { secret: Option<Redacted> },
}

/// A secret whose `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Redacted(pub String);

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"***\"")
    }
}

/// `api.github.com` → `github.com`; a GHES API URL `https://ghe.example/api/v3` → `ghe.example`.
fn github_web_host(api: &url::Url) -> String {
    let host = api.host_str().unwrap_or("github.com");
    let host = host.strip_prefix("api.").unwrap_or(host);
    match api.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    }
}

/// Reads values by precedence and remembers where each came from.
struct Sources<'a> {
    args: &'a ConfigArgs,
    env: &'a dyn Fn(&str) -> Option<String>,
    file: BTreeMap<String, String>,
    file_path: Option<PathBuf>,
}

impl Sources<'_> {
    /// The value of `key` and a description of its origin for error messages.
    fn get(&self, key: &Key) -> Option<(String, String)> {
        if let Some(v) = self.args.flag(key) {
            return Some((v.to_string(), format!("{} (flag)", key.flag)));
        }
        if key.toml == "database_url"
            && let Some(v) = (self.env)("CAPSTAN_DATABASE_URL")
        {
            return Some((v, "CAPSTAN_DATABASE_URL (environment)".into()));
        }
        if let Some(v) = (self.env)(key.env) {
            return Some((v, format!("{} (environment)", key.env)));
        }
        let path = self.file_path.as_deref().unwrap_or(Path::new("?"));
        self.file
            .get(key.toml)
            .map(|v| (v.clone(), format!("{} in {}", key.toml, path.display())))
    }

    fn parse<T: std::str::FromStr>(
        &self,
        key: &Key,
        check: impl Fn(&T) -> Result<(), String>,
    ) -> Result<Option<T>, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        let Some((value, origin)) = self.get(key) else {
            return Ok(None);
        };
        let parsed: T = value
            .trim()
            .parse()
            .map_err(|e: T::Err| ConfigError::Invalid {
                origin: origin.clone(),
                value: value.clone(),
                reason: e.to_string(),
            })?;
        check(&parsed).map_err(|reason| ConfigError::Invalid {
            origin,
            value,
            reason,
        })?;
        Ok(Some(parsed))
    }
}

fn positive<T: PartialOrd + Default>(v: &T) -> Result<(), String> {
    if *v > T::default() {
        Ok(())
    } else {
        Err("must be greater than zero".into())
    }
}

fn read_toml(path: &Path) -> Result<BTreeMap<String, String>, ConfigError> {
    let file_err = |reason: String| ConfigError::File {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| file_err(e.to_string()))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| file_err(e.to_string()))?;
    let mut out = BTreeMap::new();
    for (k, v) in table {
        if k == "webhook_secret" {
            return Err(file_err(
                "webhook_secret is not read from files of settings; use CAPSTAN_WEBHOOK_SECRET or webhook_secret_file".into(),
            ));
        }
        if !ALL.iter().any(|key| key.toml == k && !key.toml.is_empty()) {
            return Err(file_err(format!("unknown key {k:?}")));
        }
        let s = match v {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Array(items) => items
                .into_iter()
                .map(|i| match i {
                    toml::Value::String(s) => Ok(s),
                    other => Err(file_err(format!("{k}: expected strings, found {other}"))),
                })
                .collect::<Result<Vec<_>, _>>()?
                .join(","),
            other => return Err(file_err(format!("{k}: unsupported value {other}"))),
        };
        out.insert(k, s);
    }
    Ok(out)
}

fn list(s: &str) -> Vec<String> {
    s.split([',', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

impl Config {
    /// Resolve from flags, the process environment and the optional TOML file.
    pub fn load(args: &ConfigArgs) -> Result<Config, ConfigError> {
        Self::load_with(args, &|name| {
            std::env::var(name).ok().filter(|v| !v.is_empty())
        })
    }

    /// Resolve with an explicit environment (tests).
    pub fn load_with(
        args: &ConfigArgs,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let file_path = args
            .config
            .clone()
            .or_else(|| env("CAPSTAN_CONFIG").map(PathBuf::from));
        let file = match &file_path {
            Some(p) => read_toml(p)?,
            None => BTreeMap::new(),
        };
        let s = Sources {
            args,
            env,
            file,
            file_path,
        };

        let listen = s.parse::<SocketAddr>(&LISTEN, |_| Ok(()))?;
        let listen = listen.unwrap_or(SocketAddr::from(([0, 0, 0, 0], 8080)));
        let role = match s.get(&ROLE) {
            None => Role::All,
            Some((v, origin)) => match v.trim() {
                "all" => Role::All,
                "server" => Role::Server,
                "worker" => Role::Worker,
                _ => {
                    return Err(ConfigError::Invalid {
                        origin,
                        value: v,
                        reason: "expected all, server or worker".into(),
                    });
                }
            },
        };
        let data_dir = PathBuf::from(
            s.get(&DATA_DIR)
                .map(|(v, _)| v)
                .unwrap_or_else(|| "./data".into()),
        );
        let database_url = match s.get(&DATABASE_URL) {
            None => format!("sqlite://{}", data_dir.join("capstan.db").display()),
            Some((v, origin)) => {
                let ok = v.starts_with("sqlite:")
                    || v.starts_with("postgres://")
                    || v.starts_with("postgresql://");
                if !ok {
                    return Err(ConfigError::Invalid {
                        origin,
                        value: capstan_worker::queue::redact_url(&v),
                        reason: "expected sqlite://PATH or postgres://…".into(),
                    });
                }
                v
            }
        };
        let secrets = match env(WEBHOOK_SECRET.env) {
            Some(v) => {
                let secrets = list(&v);
                if secrets.is_empty() {
                    return Err(ConfigError::Secret {
                        origin: WEBHOOK_SECRET.env.into(),
                        reason: "set but holds no secret".into(),
                    });
                }
                SecretSource::Env(secrets)
            }
            None => match s.get(&WEBHOOK_SECRET_FILE) {
                Some((path, _)) => SecretSource::File {
                    path: PathBuf::from(path),
                    generate: false,
                },
                None => SecretSource::File {
                    path: data_dir.join("webhook-secret"),
                    generate: true,
                },
            },
        };
        let repo_allowlist = match s.get(&REPO_ALLOWLIST) {
            None => None,
            Some((v, origin)) => {
                let globs = list(&v);
                build_allowlist(&globs).map_err(|reason| ConfigError::Invalid {
                    origin,
                    value: v.clone(),
                    reason,
                })?;
                Some(globs)
            }
        };
        let workers = s.parse::<usize>(&WORKERS, positive)?.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(usize::from)
                .unwrap_or(2)
        });
        let secs = |key: &Key, default: u64| -> Result<Duration, ConfigError> {
            Ok(Duration::from_secs(
                s.parse::<u64>(key, positive)?.unwrap_or(default),
            ))
        };
        let job_lease = secs(&JOB_LEASE_SECS, 60)?;
        let job_max_attempts = s.parse::<i32>(&JOB_MAX_ATTEMPTS, positive)?.unwrap_or(5);
        let poll_interval =
            Duration::from_millis(s.parse::<u64>(&POLL_INTERVAL_MS, positive)?.unwrap_or(500));
        let shutdown_grace = secs(&SHUTDOWN_GRACE_SECS, 30)?;
        let body_timeout = secs(&BODY_TIMEOUT_SECS, 30)?;
        let recovery_interval = secs(&RECOVERY_INTERVAL_SECS, 300)?;
        let limits = limits(&s)?;
        let command_prefix = match s.get(&COMMAND_PREFIX) {
            None => "/capstan".to_string(),
            Some((v, origin)) => {
                let v = v.trim().to_string();
                if !v.starts_with('/') || v.len() < 2 || v.contains(char::is_whitespace) {
                    return Err(ConfigError::Invalid {
                        origin,
                        value: v,
                        reason: "expected a slash and a word, like /capstan".into(),
                    });
                }
                v
            }
        };
        let bare_commands = s
            .parse::<bool>(&BARE_COMMANDS, |_| Ok(()))?
            .unwrap_or(false);
        let bot_logins = s
            .get(&BOT_LOGINS)
            .map(|(v, _)| list(&v))
            .unwrap_or_default();
        let log_format = match s.get(&LOG_FORMAT) {
            None => LogFormat::Pretty,
            Some((v, origin)) => match v.trim() {
                "pretty" => LogFormat::Pretty,
                "json" => LogFormat::Json,
                _ => {
                    return Err(ConfigError::Invalid {
                        origin,
                        value: v,
                        reason: "expected pretty or json".into(),
                    });
                }
            },
        };
        let log = match s.get(&LOG) {
            None => "info".to_string(),
            Some((v, origin)) => {
                tracing_subscriber::EnvFilter::try_new(&v).map_err(|e| ConfigError::Invalid {
                    origin,
                    value: v.clone(),
                    reason: e.to_string(),
                })?;
                v
            }
        };
        let public_url = match s.get(&PUBLIC_URL) {
            None => format!("http://localhost:{}", listen.port()),
            Some((v, origin)) => {
                let parsed = url::Url::parse(v.trim()).map_err(|e| ConfigError::Invalid {
                    origin: origin.clone(),
                    value: v.clone(),
                    reason: e.to_string(),
                })?;
                if !matches!(parsed.scheme(), "http" | "https") {
                    return Err(ConfigError::Invalid {
                        origin,
                        value: v,
                        reason: "expected an http(s) URL".into(),
                    });
                }
                v.trim().trim_end_matches('/').to_string()
            }
        };
        let (api_raw, api_origin) = match s.get(&GITHUB_API_URL) {
            Some((v, o)) => (Some(v), o),
            None => (None, "default".to_string()),
        };
        let github_api_url =
            api_url_from_setting(api_raw.as_deref()).map_err(|e| ConfigError::Invalid {
                origin: api_origin,
                value: api_raw.clone().unwrap_or_default(),
                reason: e.to_string(),
            })?;
        let token = env(GITHUB_TOKEN.env);
        let app_id = s.get(&GITHUB_APP_ID);
        let key_file = s.get(&GITHUB_APP_KEY_FILE);
        let github_auth = if token.is_none() && app_id.is_none() {
            if let Some((_, origin)) = key_file {
                return Err(ConfigError::Secret {
                    origin,
                    reason: "a GitHub App key file without CAPSTAN_GITHUB_APP_ID".into(),
                });
            }
            None
        } else {
            let key_path = key_file.as_ref().map(|(p, _)| PathBuf::from(p));
            Some(
                GitHubAuth::from_settings(
                    token.as_deref(),
                    app_id.as_ref().map(|(v, _)| v.as_str()),
                    key_path.as_deref(),
                )
                .map_err(|e| ConfigError::Secret {
                    origin: "GitHub credentials".into(),
                    reason: e.to_string(),
                })?,
            )
        };
        let github_host = github_web_host(&github_api_url);
        let git_url_template = match s.get(&GIT_URL_TEMPLATE) {
            None => capstan_worker::git::mirror::DEFAULT_URL_TEMPLATE.to_string(),
            Some((v, origin)) => {
                let v = v.trim().to_string();
                let scheme_ok = ["https://", "http://", "file://", "/"]
                    .iter()
                    .any(|p| v.starts_with(p));
                if !scheme_ok || !v.contains("{repo}") {
                    return Err(ConfigError::Invalid {
                        origin,
                        value: v,
                        reason: "expected an https://, http://, file:// URL or an absolute path \
                                 containing {repo} (and usually {owner})"
                            .into(),
                    });
                }
                v
            }
        };
        let argocd = argocd_settings(&s, env)?;
        let kube_dry_run = match s.get(&KUBE_DRY_RUN) {
            None => KubeDryRunMode::Auto,
            Some((v, origin)) => match v.trim() {
                "auto" => KubeDryRunMode::Auto,
                "off" => KubeDryRunMode::Off,
                _ => {
                    return Err(ConfigError::Invalid {
                        origin,
                        value: v,
                        reason: "expected auto or off".into(),
                    });
                }
            },
        };
        let dashboard_trusted_proxies = match s.get(&DASHBOARD_TRUSTED_PROXIES) {
            None => Vec::new(),
            Some((v, origin)) => list(&v)
                .iter()
                .map(|c| parse_proxy_address(c))
                .collect::<Result<Vec<_>, String>>()
                .map_err(|reason| ConfigError::Invalid {
                    origin,
                    value: v.clone(),
                    reason,
                })?,
        };
        let dashboard_auth =
            dashboard_auth(&s, env, listen, &data_dir, &dashboard_trusted_proxies)?;
        let metrics_listen = s.parse::<SocketAddr>(&METRICS_LISTEN, |_| Ok(()))?;
        let dashboard_config = s.get(&DASHBOARD_CONFIG).map(|(v, _)| PathBuf::from(v));
        let dashboard_repo = match s.get(&DASHBOARD_REPO) {
            Some((v, origin)) => {
                let path = PathBuf::from(v.trim());
                if !path.is_dir() {
                    return Err(ConfigError::Invalid {
                        origin,
                        value: v,
                        reason: "not a directory".into(),
                    });
                }
                Some(path)
            }
            // A fresh clone's `capstan serve` shows the clone's own apps.
            None => std::env::current_dir()
                .ok()
                .filter(|d| capstan_worker::git::GitRepo::discover(d).is_ok()),
        };
        Ok(Config {
            listen,
            role,
            data_dir,
            database_url,
            secrets,
            repo_allowlist,
            workers,
            job_lease,
            job_max_attempts,
            poll_interval,
            shutdown_grace,
            body_timeout,
            recovery_interval,
            command_prefix,
            bare_commands,
            bot_logins,
            log_format,
            log,
            public_url,
            github_api_url,
            github_auth,
            git_url_template,
            github_host,
            argocd,
            kube_dry_run,
            dashboard_auth,
            dashboard_trusted_proxies,
            metrics_listen,
            dashboard_config,
            dashboard_repo,
            limits,
        })
    }
}

/// The bounds of [`Limits`]: each setting a positive number, the defaults those of the worker.
fn limits(s: &Sources<'_>) -> Result<Limits, ConfigError> {
    let d = Limits::default();
    let n = |key: &Key, default: usize| -> Result<usize, ConfigError> {
        Ok(s.parse::<usize>(key, positive)?.unwrap_or(default))
    };
    let secs = |key: &Key, default: Duration| -> Result<Duration, ConfigError> {
        Ok(s.parse::<u64>(key, positive)?
            .map_or(default, Duration::from_secs))
    };
    Ok(Limits {
        render_cache: CacheLimits {
            max_entries: n(&RENDER_CACHE_MAX_ENTRIES, d.render_cache.max_entries)?,
            max_bytes: n(&RENDER_CACHE_MAX_MB, d.render_cache.max_bytes >> 20)?
                .saturating_mul(1 << 20),
        },
        appset_max_apps: n(&APPSET_MAX_APPS, d.appset_max_apps)?,
        job_deadline: secs(&JOB_DEADLINE_SECS, d.job_deadline)?,
        diff: DiffLimits {
            deadline: secs(&DIFF_DEADLINE_SECS, d.diff.deadline)?,
            max_object_bytes: n(&DIFF_MAX_OBJECT_KB, d.diff.max_object_bytes >> 10)?
                .saturating_mul(1 << 10),
        },
        comment_max_parts: n(&COMMENT_MAX_PARTS, d.comment_max_parts)?,
    })
}

/// ArgoCD's URL and token come together or not at all; the token only from the environment or
/// a file; the CA file and the dry-run globs are checked here so a typo stops start-up.
fn argocd_settings(
    s: &Sources<'_>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<ArgoSettings>, ConfigError> {
    let url = s.get(&ARGOCD_URL);
    let token_env = env(ARGOCD_TOKEN.env);
    let token_file = s.get(&ARGOCD_TOKEN_FILE);
    let token = match (token_env, token_file) {
        (Some(t), _) => Some((t.trim().to_string(), ARGOCD_TOKEN.env.to_string())),
        (None, Some((path, origin))) => {
            let text = std::fs::read_to_string(path.trim()).map_err(|e| ConfigError::Secret {
                origin: format!("{origin} ({path})"),
                reason: format!("cannot read the token file: {e}"),
            })?;
            let t = text.trim().to_string();
            if t.is_empty() {
                return Err(ConfigError::Secret {
                    origin: format!("{origin} ({path})"),
                    reason: "the token file is empty".into(),
                });
            }
            Some((t, origin))
        }
        (None, None) => None,
    };
    let (url, origin, token) = match (url, token) {
        (None, None) => return Ok(None),
        (Some((_, origin)), None) => {
            return Err(ConfigError::Secret {
                origin,
                reason: "an ArgoCD URL without CAPSTAN_ARGOCD_TOKEN or CAPSTAN_ARGOCD_TOKEN_FILE"
                    .into(),
            });
        }
        (None, Some((_, origin))) => {
            return Err(ConfigError::Secret {
                origin,
                reason: "an ArgoCD token without CAPSTAN_ARGOCD_URL".into(),
            });
        }
        (Some((u, origin)), Some((t, _))) => (u, origin, t),
    };
    let invalid = |origin: &str, value: &str, reason: String| ConfigError::Invalid {
        origin: origin.to_string(),
        value: value.to_string(),
        reason,
    };
    let parsed = url::Url::parse(url.trim()).map_err(|e| invalid(&origin, &url, e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(invalid(&origin, &url, "expected an http(s) URL".into()));
    }
    let allow_http = s
        .parse::<bool>(&ARGOCD_ALLOW_HTTP, |_| Ok(()))?
        .unwrap_or(false);
    if parsed.scheme() == "http" && !allow_http && !is_loopback_url(&parsed) {
        return Err(invalid(
            &origin,
            &url,
            format!(
                "ArgoCD over http sends its token in clear text; use https, or set {} ({}) \
                 when the traffic never leaves a trusted network",
                ARGOCD_ALLOW_HTTP.flag, ARGOCD_ALLOW_HTTP.env
            ),
        ));
    }
    let mut client = capstan_worker::argocd::ArgoConfig::new(parsed, token);
    if let Some((path, origin)) = s.get(&ARGOCD_CA_FILE) {
        client = client
            .with_ca_file(Path::new(path.trim()))
            .map_err(|e| invalid(&origin, &path, e.to_string()))?;
    }
    // Building the client parses the CA certificates: a bad file is reported now, not per PR.
    capstan_worker::argocd::ArgoClient::new(&client)
        .map_err(|e| invalid(&origin, &url, e.to_string()))?;
    let dry_run_apps = match s.get(&ARGOCD_DRY_RUN_APPS) {
        None => Vec::new(),
        Some((v, origin)) => {
            let globs = list(&v);
            for g in &globs {
                globset::Glob::new(g)
                    .map_err(|e| invalid(&origin, &v, format!("glob {g:?}: {e}")))?;
            }
            globs
        }
    };
    Ok(Some(ArgoSettings {
        client,
        dry_run_apps,
    }))
}

/// Whether `url` points at this host (a port-forward, a sidecar): plain http to it never
/// crosses a network.
pub fn is_loopback_url(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// One proxy address: an IP, or a CIDR that names exactly one host (`/32`, `/128`).
fn parse_proxy_address(s: &str) -> Result<std::net::IpAddr, String> {
    if let Ok(ip) = s.parse::<std::net::IpAddr>() {
        return Ok(ip);
    }
    match s.parse::<ipnet::IpNet>() {
        Ok(net) if net.prefix_len() == net.max_prefix_len() => Ok(net.addr()),
        Ok(_) => Err(format!(
            "{s:?} is a range: list the proxies' exact addresses (any pod in a range could claim \
             to be the proxy), or give the proxy a secret in {}",
            DASHBOARD_PROXY_SECRET.env
        )),
        Err(_) => Err(format!("{s:?} is not an IP address")),
    }
}

/// Resolve the dashboard's access control. Unset means `none` on a loopback address (a laptop)
/// and `token` elsewhere, so a default `capstan serve` never exposes private diffs to the network
/// yet still starts; an explicit `none` on a non-loopback address is refused.
fn dashboard_auth(
    s: &Sources<'_>,
    env: &dyn Fn(&str) -> Option<String>,
    listen: SocketAddr,
    data_dir: &Path,
    trusted: &[std::net::IpAddr],
) -> Result<DashboardAuth, ConfigError> {
    let token = || match env(DASHBOARD_TOKEN.env) {
        Some(v) => {
            let tokens = list(&v);
            if tokens.is_empty() {
                return Err(ConfigError::Secret {
                    origin: DASHBOARD_TOKEN.env.into(),
                    reason: "set but holds no token".into(),
                });
            }
            Ok(DashboardAuth::Token(SecretSource::Env(tokens)))
        }
        None => Ok(DashboardAuth::Token(SecretSource::File {
            path: data_dir.join("dashboard-token"),
            generate: true,
        })),
    };
    let loopback = listen.ip().is_loopback();
    let Some((v, origin)) = s.get(&DASHBOARD_AUTH) else {
        return if loopback {
            Ok(DashboardAuth::None)
        } else {
            token()
        };
    };
    let invalid = |reason: String| ConfigError::Invalid {
        origin: origin.clone(),
        value: v.clone(),
        reason,
    };
    match v.trim() {
        "none" if loopback => Ok(DashboardAuth::None),
        "none" => Err(invalid(format!(
            "the dashboard shows private diffs and {listen} is reachable from other machines; \
             use token or proxy-header, or listen on 127.0.0.1"
        ))),
        "token" => token(),
        "proxy-header" => {
            let secret = env(DASHBOARD_PROXY_SECRET.env)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty());
            if trusted.is_empty() && secret.is_none() {
                return Err(invalid(format!(
                    "proxy-header needs the proxies' exact addresses in {} ({}) or a shared secret \
                     in {}",
                    DASHBOARD_TRUSTED_PROXIES.flag,
                    DASHBOARD_TRUSTED_PROXIES.env,
                    DASHBOARD_PROXY_SECRET.env
                )));
            }
            Ok(DashboardAuth::ProxyHeader {
                secret: secret.map(Redacted),
            })
        }
        _ => Err(invalid("expected none, token or proxy-header".into())),
    }
}

/// Compile allowlist globs (`owner/name`, `owner/*`, `*`), case-insensitive like GitHub names.
pub fn build_allowlist(globs: &[String]) -> Result<GlobSet, String> {
    let mut b = GlobSetBuilder::new();
    for g in globs {
        let glob = globset::GlobBuilder::new(g)
            .case_insensitive(true)
            .literal_separator(true)
            .build()
            .map_err(|e| format!("glob {g:?}: {e}"))?;
        b.add(glob);
    }
    b.build().map_err(|e| e.to_string())
}

/// Load the webhook secrets, generating the default file (mode 0600) on first start. Returns the
/// secrets and, when one was generated, its path so the caller can print how to use it.
pub fn load_secrets(source: &SecretSource) -> Result<(Vec<String>, Option<PathBuf>), ConfigError> {
    match source {
        SecretSource::Env(s) => Ok((s.clone(), None)),
        SecretSource::File { path, generate } => {
            let origin = format!("{} ({})", WEBHOOK_SECRET_FILE.env, path.display());
            match std::fs::read_to_string(path) {
                Ok(text) => {
                    let secrets = list(&text);
                    if secrets.is_empty() {
                        return Err(ConfigError::Secret {
                            origin,
                            reason: "the file holds no secret".into(),
                        });
                    }
                    Ok((secrets, None))
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && *generate => {
                    let secret = generate_secret();
                    write_private(path, &format!("{secret}\n")).map_err(|e| {
                        ConfigError::Secret {
                            origin: origin.clone(),
                            reason: format!("could not write a generated secret: {e}"),
                        }
                    })?;
                    Ok((vec![secret], Some(path.clone())))
                }
                Err(e) => Err(ConfigError::Secret {
                    origin,
                    reason: e.to_string(),
                }),
            }
        }
    }
}

fn generate_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

/// The README's configuration table, generated from [`ALL`] so it cannot drift (a test compares).
pub fn markdown_table() -> String {
    let mut out = String::from(
        "| TOML key | Flag | Environment | Default | Meaning |\n|---|---|---|---|---|\n",
    );
    for k in ALL {
        let cell = |s: &str| {
            if s.is_empty() {
                "—".to_string()
            } else {
                format!("`{s}`")
            }
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            cell(k.toml),
            cell(k.flag),
            cell(k.env),
            cell(k.default),
            k.help
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn argocd_needs_url_and_token_and_keeps_the_token_out_of_debug() {
        let none = Config::load_with(&ConfigArgs::default(), &env_of(&[])).unwrap();
        assert!(none.argocd.is_none());
        assert_eq!(none.kube_dry_run, KubeDryRunMode::Auto);

        let args = ConfigArgs {
            argocd_url: Some("https://argocd.example.com".into()),
            argocd_dry_run_apps: Some("shop-*, billing".into()),
            kube_dry_run: Some("off".into()),
            ..Default::default()
        };
        let c =
            Config::load_with(&args, &env_of(&[("CAPSTAN_ARGOCD_TOKEN", "s3cr3t-token")])).unwrap();
        let argo = c.argocd.clone().unwrap();
        assert_eq!(argo.client.url.as_str(), "https://argocd.example.com/");
        assert_eq!(argo.client.token, "s3cr3t-token");
        assert_eq!(
            argo.dry_run_apps,
            vec!["shop-*".to_string(), "billing".into()]
        );
        assert_eq!(c.kube_dry_run, KubeDryRunMode::Off);
        assert!(!format!("{c:?}").contains("s3cr3t-token"));

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "from-file\n").unwrap();
        let args = ConfigArgs {
            argocd_url: Some("https://argocd.example.com/argocd".into()),
            argocd_token_file: Some(file.display().to_string()),
            ..Default::default()
        };
        let c = Config::load_with(&args, &env_of(&[])).unwrap();
        assert_eq!(c.argocd.unwrap().client.token, "from-file");
    }

    #[test]
    fn bad_argocd_settings_are_refused_with_their_key() {
        let url_only = ConfigArgs {
            argocd_url: Some("https://argocd.example.com".into()),
            ..Default::default()
        };
        let e = Config::load_with(&url_only, &env_of(&[]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--argocd-url") && e.contains("CAPSTAN_ARGOCD_TOKEN"),
            "{e}"
        );

        let e = Config::load_with(
            &ConfigArgs::default(),
            &env_of(&[("CAPSTAN_ARGOCD_TOKEN", "t")]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("without CAPSTAN_ARGOCD_URL"), "{e}");

        let cases = [
            (
                ConfigArgs {
                    argocd_url: Some("ftp://argocd".into()),
                    ..Default::default()
                },
                "expected an http(s) URL",
            ),
            (
                ConfigArgs {
                    argocd_url: Some("https://argocd".into()),
                    argocd_dry_run_apps: Some("shop-[".into()),
                    ..Default::default()
                },
                "--argocd-dry-run-apps",
            ),
            (
                ConfigArgs {
                    argocd_url: Some("https://argocd".into()),
                    argocd_ca_file: Some("/nonexistent/ca.pem".into()),
                    ..Default::default()
                },
                "reading CA file /nonexistent/ca.pem",
            ),
            (
                ConfigArgs {
                    argocd_url: Some("https://argocd".into()),
                    argocd_token_file: Some("/nonexistent/token".into()),
                    ..Default::default()
                },
                "cannot read the token file",
            ),
            (
                ConfigArgs {
                    kube_dry_run: Some("always".into()),
                    ..Default::default()
                },
                "expected auto or off",
            ),
        ];
        for (args, want) in cases {
            let env = if args.argocd_token_file.is_some() || args.argocd_url.is_none() {
                env_of(&[])
            } else {
                env_of(&[("CAPSTAN_ARGOCD_TOKEN", "t")])
            };
            let e = Config::load_with(&args, &env).unwrap_err().to_string();
            assert!(e.contains(want), "{want}: {e}");
        }

        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "not a certificate").unwrap();
        let args = ConfigArgs {
            argocd_url: Some("https://argocd".into()),
            argocd_ca_file: Some(ca.display().to_string()),
            ..Default::default()
        };
        let e = Config::load_with(&args, &env_of(&[("CAPSTAN_ARGOCD_TOKEN", "t")])).unwrap_err();
        assert!(e.to_string().contains("CA file"), "{e}");
    }

    #[test]
    fn defaults_run_on_sqlite_under_data_with_a_generated_secret() {
        let c = Config::load_with(&ConfigArgs::default(), &env_of(&[])).unwrap();
        assert_eq!(c.listen.to_string(), "0.0.0.0:8080");
        assert_eq!(c.role, Role::All);
        assert_eq!(c.database_url, "sqlite://./data/capstan.db");
        assert_eq!(
            c.secrets,
            SecretSource::File {
                path: PathBuf::from("./data/webhook-secret"),
                generate: true
            }
        );
        assert!(c.repo_allowlist.is_none());
        assert_eq!(c.job_lease, Duration::from_secs(60));
    }

    #[test]
    fn flag_beats_env_beats_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("capstan.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:1000\"\nworkers = 7\nrepo_allowlist = [\"acme/*\", \"x/y\"]\njob_lease_secs = 9\n",
        )
        .unwrap();
        let args = ConfigArgs {
            config: Some(file),
            listen: Some("127.0.0.1:3000".into()),
            ..ConfigArgs::default()
        };
        let env = env_of(&[
            ("CAPSTAN_LISTEN", "127.0.0.1:2000"),
            ("CAPSTAN_WORKERS", "3"),
            ("DATABASE_URL", "postgres://u@h/db"),
            ("CAPSTAN_DATABASE_URL", "postgres://u@h/capstan"),
            ("CAPSTAN_WEBHOOK_SECRET", "old, new"),
        ]);
        let c = Config::load_with(&args, &env).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:3000");
        assert_eq!(c.workers, 3);
        assert_eq!(c.job_lease, Duration::from_secs(9));
        assert_eq!(c.database_url, "postgres://u@h/capstan");
        assert_eq!(
            c.repo_allowlist,
            Some(vec!["acme/*".to_string(), "x/y".to_string()])
        );
        assert_eq!(
            c.secrets,
            SecretSource::Env(vec!["old".into(), "new".into()])
        );
    }

    #[test]
    fn bad_values_name_their_key_and_source() {
        type Case<'a> = (&'a [(&'a str, &'a str)], ConfigArgs, &'a str);
        let cases: [Case; 6] = [
            (
                &[("CAPSTAN_WORKERS", "many")],
                ConfigArgs::default(),
                "CAPSTAN_WORKERS (environment)",
            ),
            (
                &[("CAPSTAN_WORKERS", "0")],
                ConfigArgs::default(),
                "greater than zero",
            ),
            (
                &[],
                ConfigArgs {
                    listen: Some("nowhere".into()),
                    ..ConfigArgs::default()
                },
                "--listen (flag)",
            ),
            (
                &[("CAPSTAN_ROLE", "boss")],
                ConfigArgs::default(),
                "CAPSTAN_ROLE",
            ),
            (
                &[("DATABASE_URL", "mysql://x:pw@h/db")],
                ConfigArgs::default(),
                "DATABASE_URL (environment): invalid value \"mysql://x:***@h/db\"",
            ),
            (
                &[("CAPSTAN_REPO_ALLOWLIST", "acme/[")],
                ConfigArgs::default(),
                "CAPSTAN_REPO_ALLOWLIST",
            ),
        ];
        for (env, args, want) in cases {
            let err = Config::load_with(&args, &env_of(env))
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{err:?} should contain {want:?}");
        }
    }

    #[test]
    fn github_settings_choose_one_auth_and_derive_the_git_host() {
        let none = Config::load_with(&ConfigArgs::default(), &env_of(&[])).unwrap();
        assert!(none.github_auth.is_none());
        assert_eq!(none.github_host, "github.com");
        assert_eq!(none.git_url_template, "https://{host}/{owner}/{repo}.git");
        assert_eq!(none.public_url, "http://localhost:8080");

        let token = Config::load_with(
            &ConfigArgs {
                github_api_url: Some("https://ghe.example.com/api/v3".into()),
                public_url: Some("https://capstan.example.com/".into()),
                ..ConfigArgs::default()
            },
            &env_of(&[("CAPSTAN_GITHUB_TOKEN", "ghp_x")]),
        )
        .unwrap();
        assert!(matches!(token.github_auth, Some(GitHubAuth::Token(ref t)) if t == "ghp_x"));
        assert_eq!(token.github_host, "ghe.example.com");
        assert_eq!(token.public_url, "https://capstan.example.com");

        type Case<'a> = (&'a [(&'a str, &'a str)], ConfigArgs, &'a str);
        let cases: [Case; 5] = [
            (
                &[
                    ("CAPSTAN_GITHUB_TOKEN", "t"),
                    ("CAPSTAN_GITHUB_APP_ID", "1"),
                ],
                ConfigArgs::default(),
                "choose one",
            ),
            (
                &[("CAPSTAN_GITHUB_APP_ID", "12")],
                ConfigArgs::default(),
                "CAPSTAN_GITHUB_APP_KEY_FILE is not",
            ),
            (
                &[("CAPSTAN_GITHUB_APP_KEY_FILE", "/nonexistent.pem")],
                ConfigArgs::default(),
                "without CAPSTAN_GITHUB_APP_ID",
            ),
            (
                &[("CAPSTAN_GIT_URL_TEMPLATE", "ssh://git@x/{owner}/{repo}")],
                ConfigArgs::default(),
                "CAPSTAN_GIT_URL_TEMPLATE (environment)",
            ),
            (
                &[],
                ConfigArgs {
                    github_api_url: Some("ftp://x".into()),
                    ..ConfigArgs::default()
                },
                "--github-api-url (flag)",
            ),
        ];
        for (env, args, want) in cases {
            let err = Config::load_with(&args, &env_of(env))
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{err:?} should contain {want:?}");
        }
    }

    #[test]
    fn config_file_refuses_secrets_and_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        for (text, want) in [
            ("webhook_secret = \"x\"", "webhook_secret is not read"),
            ("listne = \"127.0.0.1:1\"", "unknown key \"listne\""),
            ("workers = \"x\"", "workers in"),
            ("listen = ", "config file"),
        ] {
            let file = dir.path().join("c.toml");
            std::fs::write(&file, text).unwrap();
            let args = ConfigArgs {
                config: Some(file),
                ..ConfigArgs::default()
            };
            let err = Config::load_with(&args, &env_of(&[]))
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{text}: {err}");
        }
    }

    #[test]
    fn generated_secret_is_private_and_reused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/webhook-secret");
        let source = SecretSource::File {
            path: path.clone(),
            generate: true,
        };
        let (first, generated) = load_secrets(&source).unwrap();
        assert_eq!(generated.as_deref(), Some(path.as_path()));
        assert_eq!(first[0].len(), 64);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (again, generated) = load_secrets(&source).unwrap();
        assert_eq!((again, generated), (first, None));
        let missing = SecretSource::File {
            path: dir.path().join("absent"),
            generate: false,
        };
        assert!(
            load_secrets(&missing)
                .unwrap_err()
                .to_string()
                .contains("absent")
        );
    }

    #[test]
    fn allowlist_globs_match_owner_and_name() {
        let set = build_allowlist(&["acme/*".into(), "Other/One".into()]).unwrap();
        assert!(set.is_match("acme/gitops"));
        assert!(set.is_match("other/one"));
        assert!(!set.is_match("acme-evil/gitops"));
        assert!(!set.is_match("acme/gitops/extra"));
    }

    #[test]
    fn readme_configuration_table_matches_the_keys() {
        for doc in ["README.md", "docs/configuration.md"] {
            let path = format!("{}/../{doc}", env!("CARGO_MANIFEST_DIR"));
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(
                text.contains(&markdown_table()),
                "{doc} is out of date; paste config::markdown_table():\n{}",
                markdown_table()
            );
        }
    }
}
