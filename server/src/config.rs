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

use capstan_worker::forge::ForgeKind;
use capstan_worker::forge::github::{GitHubAuth, api_url_from_setting};
use capstan_worker::limits::{DiffLimits, Limits};
use capstan_worker::render::cache::CacheLimits;
use capstan_worker::render::charts::{ChartSettings, Credential, Password};
use capstan_worker::render::jsonnet::JsonnetLimits;
use globset::{GlobSet, GlobSetBuilder};

/// One setting. `flag` is empty for secrets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Key {
    pub toml: &'static str,
    pub flag: &'static str,
    pub env: &'static str,
    pub default: &'static str,
    pub help: &'static str,
}

/// Declares every setting once: the `Key` constants, [`ALL`] (in the README's order), the
/// [`ConfigArgs`] flags and their lookup by key. An entry is `NAME toml_key "flag-name"
/// "VALUE" = (env, default, help)`, or `secret NAME = (env, default, help)` for a value read
/// only from the environment.
macro_rules! settings {
    (@munch [$($keys:tt)*] [$($flags:tt)*]) => {
        settings!(@emit [$($keys)*] [$($flags)*]);
    };
    (@munch [$($keys:tt)*] [$($flags:tt)*]
        secret $name:ident = ($env:literal, $default:literal, $help:literal); $($rest:tt)*) => {
        settings!(@munch [$($keys)* ($name, "", "", $env, $default, $help)] [$($flags)*] $($rest)*);
    };
    (@munch [$($keys:tt)*] [$($flags:tt)*]
        $name:ident $field:ident $flag:literal $value:literal = ($env:literal, $default:literal, $help:literal);
        $($rest:tt)*) => {
        settings!(@munch
            [$($keys)* ($name, stringify!($field), concat!("--", $flag), $env, $default, $help)]
            [$($flags)* ($name, $field, $flag, $value)]
            $($rest)*);
    };
    (@emit [$(($name:ident, $toml:expr, $flagtext:expr, $env:literal, $default:literal, $help:literal))*]
           [$(($fname:ident, $field:ident, $flag:literal, $value:literal))*]) => {
        $(pub const $name: Key = Key { toml: $toml, flag: $flagtext, env: $env, default: $default, help: $help };)*
        /// All settings, in the order the README's table lists them.
        pub const ALL: &[Key] = &[$($name),*];

        /// The settings file and flags as `serve`, `replay` and `config` accept them. Values are
        /// strings so the config module can name the key and source of a bad one. The
        /// environment is read by [`Config::load`] rather than by clap: the loader knows which
        /// layer each value came from, which errors and `capstan config` report.
        #[derive(clap::Args, Debug, Default, Clone)]
        pub struct ConfigArgs {
            /// TOML file with any of the settings below (keys as in the README).
            #[arg(long, value_name = "FILE")]
            pub config: Option<PathBuf>,
            $(
                #[arg(long = $flag, value_name = $value, help = key_help(&$fname))]
                pub $field: Option<String>,
            )*
        }

        impl ConfigArgs {
            fn flag(&self, key: &Key) -> Option<&str> {
                $(if key.toml == stringify!($field) {
                    return self.$field.as_deref();
                })*
                None
            }
        }
    };
    ($($body:tt)*) => {
        settings!(@munch [] [] $($body)*);
    };
}

settings! {
    LISTEN listen "listen" "ADDR" = ("CAPSTAN_LISTEN", "0.0.0.0:8080", "Address of the HTTP server (webhooks, dashboard, health, metrics).");
    ROLE role "role" "all|server|worker" = ("CAPSTAN_ROLE", "all", "`all` (intake and workers), `server` (intake only) or `worker` (jobs only, plus health and metrics).");
    DATA_DIR data_dir "data-dir" "DIR" = ("CAPSTAN_DATA_DIR", "./data", "Where the SQLite database, git mirrors and the generated webhook secret live.");
    DATABASE_URL database_url "database-url" "URL" = ("DATABASE_URL", "sqlite://<data_dir>/capstan.db", "`sqlite://PATH` or `postgres://…`; `CAPSTAN_DATABASE_URL` wins over `DATABASE_URL`.");
    secret WEBHOOK_SECRET = ("CAPSTAN_WEBHOOK_SECRET", "generated", "Webhook secret(s), comma-separated to rotate: any of them verifies. Environment only.");
    WEBHOOK_SECRET_FILE webhook_secret_file "webhook-secret-file" "FILE" = ("CAPSTAN_WEBHOOK_SECRET_FILE", "<data_dir>/webhook-secret", "File holding the secret(s), one per line or comma-separated; generated (0600) when absent and no secret is set.");
    REPO_ALLOWLIST repo_allowlist "repo-allowlist" "GLOBS" = ("CAPSTAN_REPO_ALLOWLIST", "* (every repo the hook or App covers)", "Comma-separated `owner/name` globs; deliveries for other repositories get 403.");
    WORKERS workers "workers" "N" = ("CAPSTAN_WORKERS", "number of cores", "Concurrent job workers in this process.");
    JOB_LEASE_SECS job_lease_secs "job-lease-secs" "SECS" = ("CAPSTAN_JOB_LEASE_SECS", "60", "Job lease; a crashed worker's job is re-claimed after it expires.");
    JOB_MAX_ATTEMPTS job_max_attempts "job-max-attempts" "N" = ("CAPSTAN_JOB_MAX_ATTEMPTS", "5", "Attempts before a job with transient errors is `dead`.");
    INTAKE_BATCH_MAX intake_batch_max "intake-batch-max" "N" = ("CAPSTAN_INTAKE_BATCH_MAX", "128", "Webhook deliveries committed together in one transaction at most (group commit; a delivery is answered after its batch commits). `1` gives each delivery its own transaction.");
    POLL_INTERVAL_MS poll_interval_ms "poll-interval-ms" "MS" = ("CAPSTAN_POLL_INTERVAL_MS", "500", "How often idle workers look for jobs queued by other processes.");
    SHUTDOWN_GRACE_SECS shutdown_grace_secs "shutdown-grace-secs" "SECS" = ("CAPSTAN_SHUTDOWN_GRACE_SECS", "30", "On SIGTERM/SIGINT, time running jobs get to finish before they are released.");
    DRAIN_DELAY_SECS drain_delay_secs "drain-delay-secs" "SECS" = ("CAPSTAN_DRAIN_DELAY_SECS", "0", "On SIGTERM/SIGINT, `/readyz` answers 503 at once and the listener stays open at least this long (and until running jobs are done), so a load balancer stops sending traffic before connections are refused.");
    BODY_TIMEOUT_SECS body_timeout_secs "body-timeout-secs" "SECS" = ("CAPSTAN_BODY_TIMEOUT_SECS", "30", "Time allowed to receive a webhook body.");
    RECOVERY_INTERVAL_SECS recovery_interval_secs "recovery-interval-secs" "SECS" = ("CAPSTAN_RECOVERY_INTERVAL_SECS", "300", "Missed-event recovery period (runs when GitHub credentials are configured).");
    COMMAND_PREFIX command_prefix "command-prefix" "PREFIX" = ("CAPSTAN_COMMAND_PREFIX", "/capstan", "Slash-command prefix in PR comments.");
    BARE_COMMANDS bare_commands "bare-commands" "BOOL" = ("CAPSTAN_BARE_COMMANDS", "false", "Also accept `/diff`-style commands without the prefix.");
    BOT_LOGINS bot_logins "bot-logins" "LOGINS" = ("CAPSTAN_BOT_LOGINS", "", "Logins Capstan comments as; their comments never trigger commands (bots are always ignored).");
    LOG_FORMAT log_format "log-format" "pretty|json" = ("CAPSTAN_LOG_FORMAT", "pretty", "`pretty` or `json`.");
    LOG log "log" "FILTER" = ("CAPSTAN_LOG", "info", "Log filter (`tracing` env-filter syntax, e.g. `info,capstan_worker=debug`).");
    PUBLIC_URL public_url "public-url" "URL" = ("CAPSTAN_PUBLIC_URL", "http://localhost:<listen port>", "Base URL people reach the dashboard at; PR comments link runs as `<public_url>/runs/<id>`. Its path (`https://example.com/dashboard`) is the dashboard's path prefix when a request carries no `X-Forwarded-Prefix`.");
    GITHUB_API_URL github_api_url "github-api-url" "URL" = ("CAPSTAN_GITHUB_API_URL", "https://api.github.com", "GitHub REST API base; for GitHub Enterprise Server `https://<host>/api/v3`.");
    secret GITHUB_TOKEN = ("CAPSTAN_GITHUB_TOKEN", "none", "Personal or fine-grained token (commit statuses instead of check runs). Environment only; or use the App settings.");
    GITHUB_APP_ID github_app_id "github-app-id" "ID" = ("CAPSTAN_GITHUB_APP_ID", "none", "GitHub App id; with the key file, Capstan authenticates as the App (check runs, per-installation tokens).");
    GITHUB_APP_KEY_FILE github_app_key_file "github-app-key-file" "FILE" = ("CAPSTAN_GITHUB_APP_KEY_FILE", "none", "The GitHub App's private key (PEM). Without GitHub credentials reports go to the dashboard and the log only.");
    FORGE forge "forge" "github|gitea|gitlab" = ("CAPSTAN_FORGE", "github", "Where the repositories live: `github`, `gitea` (Gitea or Forgejo) or `gitlab`. `gitea` and `gitlab` take `--forge-url` and `CAPSTAN_FORGE_TOKEN`.");
    FORGE_URL forge_url "forge-url" "URL" = ("CAPSTAN_FORGE_URL", "none", "Web address of the Gitea/Forgejo or (self-managed) GitLab instance, e.g. `https://git.example.com`; its API is found under it, links and git URLs start with it. GitHub uses `--github-api-url` instead.");
    secret FORGE_TOKEN = ("CAPSTAN_FORGE_TOKEN", "none", "Gitea/Forgejo access token, or GitLab project access token, for `--forge gitea` or `--forge gitlab`. Environment only.");
    GIT_URL_TEMPLATE git_url_template "git-url-template" "TEMPLATE" = ("CAPSTAN_GIT_URL_TEMPLATE", "https://<github host>/{owner}/{repo}.git", "Where repositories are fetched from (`{owner}`, `{repo}`, `{host}`); `file://` works for mirrors. Never taken from a webhook.");
    ARGOCD_URL argocd_url "argocd-url" "URL" = ("CAPSTAN_ARGOCD_URL", "none", "ArgoCD server URL; with a token, PRs show each app's sync and health status and the live diff.");
    secret ARGOCD_TOKEN = ("CAPSTAN_ARGOCD_TOKEN", "none", "ArgoCD API token (bearer). Environment only; or use the token file.");
    ARGOCD_TOKEN_FILE argocd_token_file "argocd-token-file" "FILE" = ("CAPSTAN_ARGOCD_TOKEN_FILE", "none", "File holding the ArgoCD API token.");
    ARGOCD_CA_FILE argocd_ca_file "argocd-ca-file" "FILE" = ("CAPSTAN_ARGOCD_CA_FILE", "none (public roots)", "PEM CA certificate(s) to trust for ArgoCD besides the public roots (TLS is always verified).");
    ARGOCD_ALLOW_HTTP argocd_allow_http "argocd-allow-http" "BOOL" = ("CAPSTAN_ARGOCD_ALLOW_HTTP", "false", "Accept an `http://` ArgoCD URL (the token then crosses the network in clear text; a warning is logged at start). Without it only https, or http to a loopback address, is accepted.");
    ARGOCD_DRY_RUN_APPS argocd_dry_run_apps "argocd-dry-run-apps" "GLOBS" = ("CAPSTAN_ARGOCD_DRY_RUN_APPS", "none", "Comma-separated globs of apps that get an ArgoCD dry-run sync per PR (needs `sync` RBAC and sets the app's operation, hence opt-in).");
    KUBE_DRY_RUN kube_dry_run "kube-dry-run" "auto|off" = ("CAPSTAN_KUBE_DRY_RUN", "auto", "`auto` (server-side dry-run apply of changed objects when a kubeconfig or in-cluster config is present) or `off`.");
    DASHBOARD_AUTH dashboard_auth "dashboard-auth" "none|token|proxy-header" = ("CAPSTAN_DASHBOARD_AUTH", "none on a loopback listen address, else token", "Who may read the dashboard (it shows private diffs): `none`, `token` or `proxy-header`. `none` is refused unless `listen` is a loopback address. Webhooks, health and metrics stay open.");
    secret DASHBOARD_TOKEN = ("CAPSTAN_DASHBOARD_TOKEN", "generated into <data_dir>/dashboard-token", "Token(s) for `--dashboard-auth token`, comma-separated to rotate; sent as `Authorization: Bearer …` or entered once at `/login` (cookie). Environment only.");
    DASHBOARD_TRUSTED_PROXIES dashboard_trusted_proxies "dashboard-trusted-proxies" "IPS" = ("CAPSTAN_DASHBOARD_TRUSTED_PROXIES", "none", "Comma-separated exact IP addresses of the proxies in front (no ranges: any pod in a range could claim to be the proxy). `proxy-header` believes their `X-Forwarded-User`/`X-Auth-Request-User` (or `…-Email`); every mode believes their `X-Forwarded-For`/`X-Forwarded-Proto`.");
    secret DASHBOARD_PROXY_SECRET = ("CAPSTAN_DASHBOARD_PROXY_SECRET", "none", "Shared secret the auth proxy sends in `X-Capstan-Proxy-Secret` (compared in constant time); `proxy-header` needs it or `--dashboard-trusted-proxies`, and checks both when both are set. Environment only.");
    METRICS_LISTEN metrics_listen "metrics-listen" "ADDR" = ("CAPSTAN_METRICS_LISTEN", "none (/metrics on the main listener)", "Separate address for `/metrics` (and health); when set, `/metrics` is no longer served on `listen`.");
    DASHBOARD_CONFIG dashboard_config "dashboard-config" "FILE" = ("CAPSTAN_DASHBOARD_CONFIG", "built-in defaults", "Dashboard settings in the seed's schema (name, theme, links, metrics, serviceDiscovery); in a cluster the `capstan-dashboard` ConfigMap mounted as a file.");
    DASHBOARD_REPO dashboard_repo "dashboard-repo" "DIR" = ("CAPSTAN_DASHBOARD_REPO", "the current directory when it is a git repository", "Local checkout of the GitOps repository whose default branch the environments page reads.");
    JOB_DEADLINE_SECS job_deadline_secs "job-deadline-secs" "SECS" = ("CAPSTAN_JOB_DEADLINE_SECS", "900", "Wall time of one PR check; past it the check fails with \"not checked: limit reached\".");
    APPSET_MAX_APPS appset_max_apps "appset-max-apps" "N" = ("CAPSTAN_APPSET_MAX_APPS", "1000", "Apps one ApplicationSet may generate (list, matrix, git); a set over it is reported as not checked and fails the check.");
    DIFF_DEADLINE_SECS diff_deadline_secs "diff-deadline-secs" "SECS" = ("CAPSTAN_DIFF_DEADLINE_SECS", "20", "Time for the text diffs of one app; objects left get no text diff and the check fails.");
    DIFF_MAX_OBJECT_KB diff_max_object_kb "diff-max-object-kb" "KB" = ("CAPSTAN_DIFF_MAX_OBJECT_KB", "1024", "An object whose YAML is larger gets no text diff, and the check fails.");
    COMMENT_MAX_PARTS comment_max_parts "comment-max-parts" "N" = ("CAPSTAN_COMMENT_MAX_PARTS", "10", "Parts of the sticky PR comment; beyond it the rest is on the dashboard and the check fails.");
    RENDER_CACHE_MAX_ENTRIES render_cache_max_entries "render-cache-max-entries" "N" = ("CAPSTAN_RENDER_CACHE_MAX_ENTRIES", "2000", "Renders kept in memory; the least recently used go first.");
    RENDER_CACHE_MAX_MB render_cache_max_mb "render-cache-max-mb" "MB" = ("CAPSTAN_RENDER_CACHE_MAX_MB", "256", "Memory the render cache may hold.");
    JSONNET_DEADLINE_SECS jsonnet_deadline_secs "jsonnet-deadline-secs" "SECS" = ("CAPSTAN_JSONNET_DEADLINE_SECS", "30", "Wall time of one Jsonnet program; its evaluator process is killed after it and the app is not checked.");
    JSONNET_MAX_MEMORY_MB jsonnet_max_memory_mb "jsonnet-max-memory-mb" "MB" = ("CAPSTAN_JSONNET_MAX_MEMORY_MB", "1024", "Address space of the process evaluating one Jsonnet program (its inputs and the evaluator included); past it the app is not checked.");
    JSONNET_MAX_OUTPUT_MB jsonnet_max_output_mb "jsonnet-max-output-mb" "MB" = ("CAPSTAN_JSONNET_MAX_OUTPUT_MB", "32", "Largest JSON output of one Jsonnet program; past it the app is not checked.");
    JSONNET_MAX_STACK jsonnet_max_stack "jsonnet-max-stack" "N" = ("CAPSTAN_JSONNET_MAX_STACK", "500", "Nested calls a Jsonnet program may make (go-jsonnet's `--max-stack`); deeper is the program's error.");
    JSONNET_MAX_FILES jsonnet_max_files "jsonnet-max-files" "N" = ("CAPSTAN_JSONNET_MAX_FILES", "5000", "Files one app's Jsonnet programs may import, transitively; more and the app is not checked.");
    CHART_REPOS chart_repos "chart-repos" "URLS" = ("CAPSTAN_CHART_REPOS", "none (no chart is fetched)", "Comma-separated chart repositories charts may be fetched from: `https://…` Helm repositories and `oci://host/path` registries (a bare `host/path` in an Application is a registry only when listed as `oci://`). A listed URL admits the paths below it; a chart from anywhere else is \"not checked\".");
    CHART_CACHE_DIR chart_cache_dir "chart-cache-dir" "DIR" = ("CAPSTAN_CHART_CACHE_DIR", "<data_dir>/charts", "Chart archives by digest, kept across restarts.");
    CHART_CACHE_MAX_MB chart_cache_max_mb "chart-cache-max-mb" "MB" = ("CAPSTAN_CHART_CACHE_MAX_MB", "2048", "Most MiB of chart archives the cache keeps on disk; past it the least recently used are removed (and fetched again when needed).");
    CHARTS_OFFLINE charts_offline "charts-offline" "BOOL" = ("CAPSTAN_CHARTS_OFFLINE", "false", "Use only charts already in the chart cache; never fetch (a chart not cached is \"not checked\").");
    CHART_CREDENTIALS_FILE chart_credentials_file "chart-credentials-file" "FILE" = ("CAPSTAN_CHART_CREDENTIALS_FILE", "none", "TOML file of `[[credential]]` tables (`repository`, `username`, `password`) for private chart repositories; each `repository` must be one of `chart_repos` (or below one). Never shown, never read from a Git repository.");
    secret CHART_CREDENTIALS = ("CAPSTAN_CHART_CREDENTIALS", "none", "The same TOML as the credentials file, from the environment (both may be used). Environment only.");
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
    pub intake_batch_max: usize,
    pub poll_interval: Duration,
    pub shutdown_grace: Duration,
    /// See [`DRAIN_DELAY_SECS`].
    pub drain_delay: Duration,
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
    /// Which forge the repositories are on (`--forge`; GitHub by default).
    pub forge: ForgeKind,
    /// A Gitea/Forgejo or GitLab instance: its web address and token. `None` for GitHub.
    pub forge_instance: Option<ForgeInstance>,
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
    /// Chart repositories, chart cache, offline mode and credentials (`Debug` redacts passwords).
    pub charts: ChartSettings,
}

/// A self-hosted forge as configured: where it is and the token Capstan uses there.
#[derive(Clone, Debug)]
pub struct ForgeInstance {
    /// Web address without a trailing slash (`https://git.example.com`, or with a path prefix).
    pub url: url::Url,
    pub token: Redacted,
}

impl ForgeInstance {
    /// The web address as links and git URLs start with it (no trailing slash).
    pub fn web_base(&self) -> String {
        self.url.as_str().trim_end_matches('/').to_string()
    }
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

/// The host (and port) of a self-hosted forge's address.
fn forge_web_host(url: &url::Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    }
}

/// `--forge`, `--forge-url` and `CAPSTAN_FORGE_TOKEN`, checked together: GitHub takes neither
/// (its settings are the `github_*` ones), Gitea and GitLab need both and no GitHub
/// credentials, so one service never half-answers two forges.
fn forge_settings(
    s: &Sources<'_>,
    env: &dyn Fn(&str) -> Option<String>,
    github_credentials: bool,
) -> Result<(ForgeKind, Option<ForgeInstance>), ConfigError> {
    let (v, origin) = s.get_or_default(&FORGE);
    let Some(kind) = ForgeKind::parse(v.trim()) else {
        return Err(ConfigError::Invalid {
            origin,
            value: v,
            reason: "expected github, gitea (or forgejo) or gitlab".into(),
        });
    };
    let url = s.get(&FORGE_URL);
    let token = env(FORGE_TOKEN.env).filter(|t| !t.trim().is_empty());
    if kind == ForgeKind::GitHub {
        if let Some((v, origin)) = url {
            return Err(ConfigError::Invalid {
                origin,
                value: v,
                reason: "--forge-url is for --forge gitea or gitlab; GitHub's API address is \
                         --github-api-url"
                    .into(),
            });
        }
        if token.is_some() {
            return Err(ConfigError::Secret {
                origin: FORGE_TOKEN.env.into(),
                reason: "set for --forge github, which uses the GitHub token or App settings"
                    .into(),
            });
        }
        return Ok((kind, None));
    }
    let name = kind.display_name();
    let Some((raw, url_origin)) = url else {
        return Err(ConfigError::Invalid {
            origin,
            value: v,
            reason: format!("{name} needs --forge-url (the instance's web address)"),
        });
    };
    let parsed = url::Url::parse(raw.trim()).map_err(|e| ConfigError::Invalid {
        origin: url_origin.clone(),
        value: raw.clone(),
        reason: e.to_string(),
    })?;
    let plain = matches!(parsed.scheme(), "http" | "https")
        && parsed.host_str().is_some()
        && parsed.username().is_empty()
        && parsed.password().is_none()
        && parsed.query().is_none()
        && parsed.fragment().is_none();
    if !plain {
        return Err(ConfigError::Invalid {
            origin: url_origin,
            value: raw,
            reason: "expected an http(s) address without credentials, query or fragment".into(),
        });
    }
    let Some(token) = token else {
        return Err(ConfigError::Secret {
            origin: FORGE_TOKEN.env.into(),
            reason: format!("{name} needs an access token"),
        });
    };
    if github_credentials {
        return Err(ConfigError::Secret {
            origin: "GitHub credentials".into(),
            reason: format!("set together with --forge {kind}; one service talks to one forge"),
        });
    }
    Ok((
        kind,
        Some(ForgeInstance {
            url: parsed,
            token: Redacted(token.trim().to_string()),
        }),
    ))
}

/// Reads values by precedence and remembers where each came from.
struct Sources<'a> {
    args: &'a ConfigArgs,
    env: &'a dyn Fn(&str) -> Option<String>,
    file: BTreeMap<String, String>,
    file_path: Option<PathBuf>,
}

impl<'a> Sources<'a> {
    /// The layers: flags, the environment and the TOML file (`--config` / `CAPSTAN_CONFIG`).
    fn read(
        args: &'a ConfigArgs,
        env: &'a dyn Fn(&str) -> Option<String>,
    ) -> Result<Sources<'a>, ConfigError> {
        let file_path = args
            .config
            .clone()
            .or_else(|| env("CAPSTAN_CONFIG").map(PathBuf::from));
        let file = match &file_path {
            Some(p) => read_toml(p)?,
            None => BTreeMap::new(),
        };
        Ok(Sources {
            args,
            env,
            file,
            file_path,
        })
    }

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

    /// The value of `key` and its origin, falling back to the documented default: for keys
    /// whose default is a value (not a description such as "number of cores"), the `default`
    /// of the key is the one in force.
    fn get_or_default(&self, key: &Key) -> (String, String) {
        self.get(key)
            .unwrap_or_else(|| (key.default.to_string(), "default".into()))
    }

    fn parse<T: std::str::FromStr>(
        &self,
        key: &Key,
        check: impl Fn(&T) -> Result<(), String>,
    ) -> Result<Option<T>, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        match self.get(key) {
            None => Ok(None),
            Some((value, origin)) => parse_value(value, origin, check).map(Some),
        }
    }

    /// [`Sources::parse`] with the key's default when no layer sets it.
    fn parse_or_default<T: std::str::FromStr>(
        &self,
        key: &Key,
        check: impl Fn(&T) -> Result<(), String>,
    ) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        let (value, origin) = self.get_or_default(key);
        parse_value(value, origin, check)
    }
}

fn parse_value<T: std::str::FromStr>(
    value: String,
    origin: String,
    check: impl Fn(&T) -> Result<(), String>,
) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
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
    Ok(parsed)
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
        Self::load_with(args, &process_env)
    }

    /// Resolve with an explicit environment (tests).
    pub fn load_with(
        args: &ConfigArgs,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let s = Sources::read(args, env)?;
        let listen = s.parse_or_default::<SocketAddr>(&LISTEN, |_| Ok(()))?;
        let role = {
            let (v, origin) = s.get_or_default(&ROLE);
            match v.trim() {
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
            }
        };
        let data_dir = PathBuf::from(s.get_or_default(&DATA_DIR).0);
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
        let secs = |key: &Key| -> Result<Duration, ConfigError> {
            Ok(Duration::from_secs(
                s.parse_or_default::<u64>(key, positive)?,
            ))
        };
        let job_lease = secs(&JOB_LEASE_SECS)?;
        let job_max_attempts = s.parse_or_default::<i32>(&JOB_MAX_ATTEMPTS, positive)?;
        // A batch is one transaction holding the store's writer: bounded, so one batch cannot
        // keep the workers' writes waiting for long.
        let intake_batch_max = s.parse_or_default::<usize>(&INTAKE_BATCH_MAX, |v| {
            if (1..=4096).contains(v) {
                Ok(())
            } else {
                Err("must be between 1 and 4096".into())
            }
        })?;
        let poll_interval =
            Duration::from_millis(s.parse_or_default::<u64>(&POLL_INTERVAL_MS, positive)?);
        let shutdown_grace = secs(&SHUTDOWN_GRACE_SECS)?;
        let drain_delay =
            Duration::from_secs(s.parse_or_default::<u64>(&DRAIN_DELAY_SECS, |_| Ok(()))?);
        let body_timeout = secs(&BODY_TIMEOUT_SECS)?;
        let recovery_interval = secs(&RECOVERY_INTERVAL_SECS)?;
        let limits = limits(&s)?;
        let charts = chart_settings(&s, env, &data_dir)?;
        let command_prefix = {
            let (v, origin) = s.get_or_default(&COMMAND_PREFIX);
            let v = v.trim().to_string();
            if !v.starts_with('/') || v.len() < 2 || v.contains(char::is_whitespace) {
                return Err(ConfigError::Invalid {
                    origin,
                    value: v,
                    reason: "expected a slash and a word, like /capstan".into(),
                });
            }
            v
        };
        let bare_commands = s.parse_or_default::<bool>(&BARE_COMMANDS, |_| Ok(()))?;
        let bot_logins = s
            .get(&BOT_LOGINS)
            .map(|(v, _)| list(&v))
            .unwrap_or_default();
        let log_format = {
            let (v, origin) = s.get_or_default(&LOG_FORMAT);
            match v.trim() {
                "pretty" => LogFormat::Pretty,
                "json" => LogFormat::Json,
                _ => {
                    return Err(ConfigError::Invalid {
                        origin,
                        value: v,
                        reason: "expected pretty or json".into(),
                    });
                }
            }
        };
        let log = {
            let (v, origin) = s.get_or_default(&LOG);
            tracing_subscriber::EnvFilter::try_new(&v).map_err(|e| ConfigError::Invalid {
                origin,
                value: v.clone(),
                reason: e.to_string(),
            })?;
            v
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
                // Its path is the dashboard's default path prefix: a plain path only.
                let trimmed = v.trim().trim_end_matches('/').to_string();
                if let Err(e) = crate::dashboard::prefix::Prefix::from_public_url(&trimmed) {
                    return Err(ConfigError::Invalid {
                        origin,
                        value: v,
                        reason: e.to_string(),
                    });
                }
                trimmed
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
        let (forge, forge_instance) = forge_settings(&s, env, github_auth.is_some())?;
        let github_host = match &forge_instance {
            Some(f) => forge_web_host(&f.url),
            None => github_web_host(&github_api_url),
        };
        let git_url_template = match s.get(&GIT_URL_TEMPLATE) {
            // A self-hosted forge may serve plain http or live under a path: its own address
            // is the start of every repository's URL.
            None if forge_instance.is_some() => forge_instance
                .as_ref()
                .map(|f| format!("{}/{{owner}}/{{repo}}.git", f.web_base()))
                .unwrap_or_default(),
            None => capstan_worker::git::DEFAULT_URL_TEMPLATE.to_string(),
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
        let kube_dry_run = {
            let (v, origin) = s.get_or_default(&KUBE_DRY_RUN);
            match v.trim() {
                "auto" => KubeDryRunMode::Auto,
                "off" => KubeDryRunMode::Off,
                _ => {
                    return Err(ConfigError::Invalid {
                        origin,
                        value: v,
                        reason: "expected auto or off".into(),
                    });
                }
            }
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
            intake_batch_max,
            poll_interval,
            shutdown_grace,
            drain_delay,
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
            forge,
            forge_instance,
            argocd,
            kube_dry_run,
            dashboard_auth,
            dashboard_trusted_proxies,
            metrics_listen,
            dashboard_config,
            dashboard_repo,
            limits,
            charts,
        })
    }
}

/// The bounds of [`Limits`]: each setting a positive number (a test keeps the keys' defaults
/// equal to the worker's).
fn limits(s: &Sources<'_>) -> Result<Limits, ConfigError> {
    let n = |key: &Key| s.parse_or_default::<usize>(key, positive);
    let secs = |key: &Key| -> Result<Duration, ConfigError> {
        Ok(Duration::from_secs(
            s.parse_or_default::<u64>(key, positive)?,
        ))
    };
    Ok(Limits {
        render_cache: CacheLimits {
            max_entries: n(&RENDER_CACHE_MAX_ENTRIES)?,
            max_bytes: n(&RENDER_CACHE_MAX_MB)?.saturating_mul(1 << 20),
        },
        appset_max_apps: n(&APPSET_MAX_APPS)?,
        job_deadline: secs(&JOB_DEADLINE_SECS)?,
        diff: DiffLimits {
            deadline: secs(&DIFF_DEADLINE_SECS)?,
            max_object_bytes: n(&DIFF_MAX_OBJECT_KB)?.saturating_mul(1 << 10),
        },
        comment_max_parts: n(&COMMENT_MAX_PARTS)?,
        jsonnet: JsonnetLimits {
            max_stack: n(&JSONNET_MAX_STACK)?,
            deadline: secs(&JSONNET_DEADLINE_SECS)?,
            max_memory_bytes: n(&JSONNET_MAX_MEMORY_MB)?.saturating_mul(1 << 20),
            max_output_bytes: n(&JSONNET_MAX_OUTPUT_MB)?.saturating_mul(1 << 20),
            max_files: n(&JSONNET_MAX_FILES)?,
        },
    })
}

/// The chart settings: repositories (each checked here so a typo stops start-up), the cache
/// folder, offline mode and the credentials from the file and the environment.
fn chart_settings(
    s: &Sources<'_>,
    env: &dyn Fn(&str) -> Option<String>,
    data_dir: &Path,
) -> Result<ChartSettings, ConfigError> {
    let repositories = match s.get(&CHART_REPOS) {
        None => Vec::new(),
        Some((v, origin)) => {
            let repos = list(&v);
            for r in &repos {
                chart_repo(r).map_err(|reason| ConfigError::Invalid {
                    origin: origin.clone(),
                    value: capstan_worker::scrub::scrub(r).into_owned(),
                    reason,
                })?;
            }
            repos
        }
    };
    let cache_dir = match s.get(&CHART_CACHE_DIR) {
        Some((v, _)) => PathBuf::from(v.trim()),
        None => data_dir.join("charts"),
    };
    let offline = s.parse_or_default::<bool>(&CHARTS_OFFLINE, |_| Ok(()))?;
    let cache_max_mb = s.parse_or_default::<u64>(&CHART_CACHE_MAX_MB, positive)?;
    let mut credentials = Vec::new();
    if let Some((path, origin)) = s.get(&CHART_CREDENTIALS_FILE) {
        let origin = format!("{origin} ({})", path.trim());
        let text = std::fs::read_to_string(path.trim()).map_err(|e| ConfigError::Secret {
            origin: origin.clone(),
            reason: format!("cannot read the credentials file: {e}"),
        })?;
        credentials.extend(chart_credentials(&text, &origin, &repositories)?);
    }
    if let Some(text) = env(CHART_CREDENTIALS.env) {
        let origin = format!("{} (environment)", CHART_CREDENTIALS.env);
        credentials.extend(chart_credentials(&text, &origin, &repositories)?);
    }
    Ok(ChartSettings {
        repositories,
        cache_dir: Some(cache_dir),
        cache_max_bytes: cache_max_mb.saturating_mul(1024 * 1024),
        offline,
        credentials,
        ..ChartSettings::default()
    })
}

/// A chart repository as the operator may list it: `http(s)://host/…` or `oci://host/…`,
/// without credentials in the URL (they belong in the credentials file).
fn chart_repo(r: &str) -> Result<(), String> {
    let lower = r.to_ascii_lowercase();
    if let Some(rest) = lower.strip_prefix("oci://") {
        return if capstan_worker::render::oci::OciRepo::parse(r).is_some() && !rest.contains('@') {
            Ok(())
        } else {
            Err("not an OCI repository (oci://host[:port]/path, lowercase)".into())
        };
    }
    let url = url::Url::parse(r).map_err(|e| e.to_string())?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("expected https://…, http://… or oci://…".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("credentials go in the chart credentials file, not in the URL".into());
    }
    if url.host_str().is_none() || url.query().is_some() || url.fragment().is_some() {
        return Err("expected a repository URL without query or fragment".into());
    }
    Ok(())
}

/// `[[credential]]` tables from `text`. Nothing of the text is ever quoted in an error (it holds
/// passwords): a parse error names the line only.
fn chart_credentials(
    text: &str,
    origin: &str,
    repositories: &[String],
) -> Result<Vec<Credential>, ConfigError> {
    let bad = |reason: String| ConfigError::Secret {
        origin: origin.to_string(),
        reason,
    };
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        let line = e
            .span()
            .map(|r| text[..r.start.min(text.len())].lines().count().max(1));
        bad(match line {
            Some(n) => {
                format!("line {n} is not valid TOML (the text is not shown: it holds secrets)")
            }
            None => "not valid TOML (the text is not shown: it holds secrets)".into(),
        })
    })?;
    let mut out = Vec::new();
    for (key, value) in table {
        let toml::Value::Array(items) = value else {
            return Err(bad(format!(
                "unexpected key {key:?}; expected [[credential]] tables"
            )));
        };
        if key != "credential" {
            return Err(bad(format!(
                "unexpected key {key:?}; expected [[credential]] tables"
            )));
        }
        for (i, item) in items.into_iter().enumerate() {
            let n = i + 1;
            let toml::Value::Table(t) = item else {
                return Err(bad(format!("credential {n} is not a table")));
            };
            for k in t.keys() {
                if !matches!(k.as_str(), "repository" | "username" | "password") {
                    return Err(bad(format!("credential {n}: unknown key {k:?}")));
                }
            }
            let field = |k: &str| match t.get(k) {
                Some(toml::Value::String(v)) if !v.is_empty() => Ok(v.clone()),
                _ => Err(bad(format!(
                    "credential {n}: {k} must be a non-empty string"
                ))),
            };
            let repository = field("repository")?;
            chart_repo(&repository).map_err(|reason| {
                bad(format!(
                    "credential {n}: repository {}: {reason}",
                    capstan_worker::scrub::scrub(&repository)
                ))
            })?;
            let normalized = repository.trim_end_matches('/');
            let listed = repositories.iter().any(|r| {
                let r = r.trim_end_matches('/');
                normalized == r || normalized.starts_with(&format!("{r}/"))
            });
            if !listed {
                return Err(bad(format!(
                    "credential {n}: repository {normalized} is not one of chart_repos (or below one)"
                )));
            }
            out.push(Credential {
                repository,
                username: field("username")?,
                password: Password::new(field("password")?),
            });
        }
    }
    Ok(out)
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
    let allow_http = s.parse_or_default::<bool>(&ARGOCD_ALLOW_HTTP, |_| Ok(()))?;
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
    // Parsing the CA certificates now reports a bad file at start, not per PR; the client itself
    // is built by `serve`, after the configuration is loaded.
    if let Some(pem) = &client.ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| invalid(&origin, &url, format!("CA file: {e}")))?;
        if certs.is_empty() {
            return Err(invalid(
                &origin,
                &url,
                "CA file holds no certificate".into(),
            ));
        }
    }
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

/// One setting as `capstan config` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Effective {
    pub key: Key,
    /// The value a layer set, secrets and credentials redacted; `None`: the default applies.
    pub value: Option<String>,
    /// Where the value came from (`--workers (flag)`, `CAPSTAN_LOG (environment)`, `workers in
    /// FILE`), or `default`.
    pub origin: String,
}

impl Effective {
    /// `key = "value"  # origin` for a set key, the default commented out otherwise; secrets
    /// (environment only) as a comment saying whether they are set.
    pub fn line(&self) -> String {
        let quote = |v: &str| toml::Value::String(v.to_string()).to_string();
        match (self.key.toml, &self.value) {
            ("", Some(_)) => format!("# {}: set (redacted), from the environment", self.key.env),
            ("", None) => format!(
                "# {}: not set (default: {})",
                self.key.env, self.key.default
            ),
            (key, Some(v)) => format!("{key} = {}  # {}", quote(v), self.origin),
            (key, None) => format!("# {key} = {}  (default)", quote(self.key.default)),
        }
    }
}

/// A variable of this process; an empty one counts as unset.
fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl Config {
    /// [`Config::effective_with`] over the process environment.
    pub fn effective(args: &ConfigArgs) -> Result<Vec<Effective>, ConfigError> {
        Self::effective_with(args, &process_env)
    }

    /// Every setting with the value the layers give it and its origin, for `capstan config`.
    /// Secrets are never shown; URLs lose their credentials.
    pub fn effective_with(
        args: &ConfigArgs,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Vec<Effective>, ConfigError> {
        let s = Sources::read(args, env)?;
        Ok(ALL
            .iter()
            .map(|key| {
                let found = if key.toml.is_empty() {
                    env(key.env).map(|_| ("***".to_string(), format!("{} (environment)", key.env)))
                } else {
                    s.get(key)
                };
                let (value, origin) = match found {
                    Some((v, origin)) => {
                        let v = if key.toml == DATABASE_URL.toml {
                            capstan_worker::queue::redact_url(&v)
                        } else {
                            capstan_worker::scrub::scrub(&v).into_owned()
                        };
                        (Some(v), origin)
                    }
                    None => (None, "default".to_string()),
                };
                Effective {
                    key: *key,
                    value,
                    origin,
                }
            })
            .collect())
    }
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

/// The settings a command that only reads the store needs (`capstan promotions`): its `--help`
/// lists these three, not every setting of `serve`. Same keys, same environment, same files.
#[derive(clap::Args, Debug, Default, Clone)]
pub struct StoreArgs {
    /// TOML file with any of the settings (keys as in the README); only the store's are used.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[arg(long = "data-dir", value_name = "DIR", help = key_help(&DATA_DIR))]
    pub data_dir: Option<String>,
    #[arg(long = "database-url", value_name = "URL", help = key_help(&DATABASE_URL))]
    pub database_url: Option<String>,
}

/// The settings `capstan replay` needs to sign and address a delivery like the running server
/// would verify it: where it listens and where its secret is. Same keys, environment and files
/// as `serve`; the secret itself comes only from the environment or the file, never a flag.
#[derive(clap::Args, Debug, Default, Clone)]
pub struct ReplayArgs {
    /// TOML file with any of the settings (keys as in the README); only these three are used.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[arg(long, value_name = "ADDR", help = key_help(&LISTEN))]
    pub listen: Option<String>,
    #[arg(long = "data-dir", value_name = "DIR", help = key_help(&DATA_DIR))]
    pub data_dir: Option<String>,
    #[arg(long = "webhook-secret-file", value_name = "FILE", help = key_help(&WEBHOOK_SECRET_FILE))]
    pub webhook_secret_file: Option<String>,
}

impl From<ReplayArgs> for ConfigArgs {
    fn from(r: ReplayArgs) -> Self {
        ConfigArgs {
            config: r.config,
            listen: r.listen,
            data_dir: r.data_dir,
            webhook_secret_file: r.webhook_secret_file,
            ..ConfigArgs::default()
        }
    }
}

/// A setting's flag help: what it does, its default and the environment variable that sets it,
/// so `--help` answers all three without the README.
fn key_help(key: &Key) -> String {
    if key.default.is_empty() {
        format!("{} [env: {}]", key.help, key.env)
    } else {
        format!("{} [default: {}] [env: {}]", key.help, key.default, key.env)
    }
}

impl From<StoreArgs> for ConfigArgs {
    fn from(s: StoreArgs) -> Self {
        ConfigArgs {
            config: s.config,
            data_dir: s.data_dir,
            database_url: s.database_url,
            ..ConfigArgs::default()
        }
    }
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
    fn chart_settings_come_from_flags_the_environment_and_a_credentials_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("chart-credentials.toml");
        std::fs::write(
            &file,
            "[[credential]]\nrepository = \"oci://ghcr.io/acme\"\nusername = \"bot\"\npassword = \"file-pa55\"\n",
        )
        .unwrap();
        let args = ConfigArgs {
            chart_repos: Some("https://charts.example.com, oci://ghcr.io/acme".into()),
            chart_credentials_file: Some(file.display().to_string()),
            charts_offline: Some("true".into()),
            ..Default::default()
        };
        let env_creds = "[[credential]]\nrepository = \"https://charts.example.com/private\"\nusername = \"u\"\npassword = \"env-pa55\"\n";
        let pairs = [("CAPSTAN_CHART_CREDENTIALS", env_creds)];
        let env = env_of(&pairs);
        let c = Config::load_with(&args, &env).unwrap();
        assert_eq!(
            c.charts.repositories,
            vec!["https://charts.example.com", "oci://ghcr.io/acme"]
        );
        assert!(c.charts.offline);
        assert_eq!(c.charts.cache_dir, Some(PathBuf::from("./data/charts")));
        let creds: Vec<(&str, &str, &str)> = c
            .charts
            .credentials
            .iter()
            .map(|k| {
                (
                    k.repository.as_str(),
                    k.username.as_str(),
                    k.password.expose(),
                )
            })
            .collect();
        assert_eq!(
            creds,
            vec![
                ("oci://ghcr.io/acme", "bot", "file-pa55"),
                ("https://charts.example.com/private", "u", "env-pa55"),
            ]
        );
        // Neither the debug output nor `capstan config` shows a password.
        let debug = format!("{c:?}");
        assert!(
            !debug.contains("file-pa55") && !debug.contains("env-pa55"),
            "{debug}"
        );
        let shown: Vec<String> = Config::effective_with(&args, &env)
            .unwrap()
            .iter()
            .map(Effective::line)
            .collect();
        let shown = shown.join("\n");
        assert!(
            shown.contains("# CAPSTAN_CHART_CREDENTIALS: set (redacted)"),
            "{shown}"
        );
        assert!(!shown.contains("pa55"), "{shown}");
    }

    #[test]
    fn bad_chart_settings_stop_start_up_without_showing_a_secret() {
        let load = |repos: &str, creds: &str| {
            let args = ConfigArgs {
                chart_repos: Some(repos.into()),
                ..Default::default()
            };
            let pairs = [("CAPSTAN_CHART_CREDENTIALS", creds)];
            Config::load_with(&args, &env_of(&pairs))
                .map(|_| ())
                .unwrap_err()
                .to_string()
        };
        let cred = |repo: &str| {
            format!(
                "[[credential]]\nrepository = \"{repo}\"\nusername = \"u\"\npassword = \"hunter2-pw\"\n"
            )
        };
        let cases = [
            ("https://u:hunter2-pw@charts.example.com", String::new(), "not in the URL"),
            ("ftp://charts.example.com", String::new(), "expected https://"),
            ("oci://Registry/UPPER", String::new(), "not an OCI repository"),
            ("https://charts.example.com", cred("https://other.example.com"), "not one of chart_repos"),
            ("https://charts.example.com", "password = \"hunter2-pw\n".into(), "line 1 is not valid TOML"),
            ("https://charts.example.com", "[[credential]]\nrepository = \"https://charts.example.com\"\npassword = \"hunter2-pw\"\n".into(), "username must be"),
            ("https://charts.example.com", "[[credential]]\npasword = \"hunter2-pw\"\n".into(), "unknown key"),
        ];
        for (repos, creds, want) in cases {
            let e = load(repos, &creds);
            assert!(e.contains(want), "{want}: {e}");
            assert!(!e.contains("hunter2"), "{e}");
        }
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
    fn a_self_hosted_forge_needs_its_address_and_token_and_nothing_of_githubs() {
        let github = Config::load_with(&ConfigArgs::default(), &env_of(&[])).unwrap();
        assert_eq!(github.forge, ForgeKind::GitHub);
        assert!(github.forge_instance.is_none());

        let token = "gta_0123456789abcdef";
        let gitea = Config::load_with(
            &ConfigArgs {
                forge: Some("forgejo".into()),
                forge_url: Some("http://gitea.gitea.svc:3000/".into()),
                ..ConfigArgs::default()
            },
            &env_of(&[("CAPSTAN_FORGE_TOKEN", token)]),
        )
        .unwrap();
        assert_eq!(gitea.forge, ForgeKind::Gitea);
        let inst = gitea.forge_instance.clone().unwrap();
        assert_eq!(inst.web_base(), "http://gitea.gitea.svc:3000");
        assert_eq!(gitea.github_host, "gitea.gitea.svc:3000");
        assert_eq!(
            gitea.git_url_template,
            "http://gitea.gitea.svc:3000/{owner}/{repo}.git"
        );
        assert!(
            !format!("{gitea:?}").contains(token),
            "the token is redacted"
        );

        let gitlab = Config::load_with(
            &ConfigArgs {
                forge: Some("gitlab".into()),
                forge_url: Some("https://example.com/gitlab".into()),
                ..ConfigArgs::default()
            },
            &env_of(&[("CAPSTAN_FORGE_TOKEN", "glpat-x")]),
        )
        .unwrap();
        assert_eq!(gitlab.forge, ForgeKind::GitLab);
        assert_eq!(
            gitlab.git_url_template,
            "https://example.com/gitlab/{owner}/{repo}.git"
        );

        let forge = |kind: &str, url: Option<&str>| ConfigArgs {
            forge: Some(kind.into()),
            forge_url: url.map(str::to_string),
            ..ConfigArgs::default()
        };
        type Case<'a> = (ConfigArgs, &'a [(&'a str, &'a str)], &'a str);
        let with_token: &[(&str, &str)] = &[("CAPSTAN_FORGE_TOKEN", "t0k")];
        let cases: [Case; 8] = [
            (forge("bitbucket", None), &[], "expected github, gitea"),
            (forge("gitea", None), with_token, "needs --forge-url"),
            (
                forge("gitlab", Some("https://gl.example")),
                &[],
                "GitLab needs an access token",
            ),
            (
                forge("gitea", Some("ftp://g.example")),
                with_token,
                "expected an http(s) address",
            ),
            (
                forge("gitea", Some("https://user:pw@g.example")),
                with_token,
                "without credentials",
            ),
            (
                forge("github", Some("https://g.example")),
                &[],
                "--github-api-url",
            ),
            (forge("github", None), with_token, "CAPSTAN_FORGE_TOKEN"),
            (
                forge("gitea", Some("https://g.example")),
                &[
                    ("CAPSTAN_FORGE_TOKEN", "t0k"),
                    ("CAPSTAN_GITHUB_TOKEN", "ghp_x"),
                ],
                "one service talks to one forge",
            ),
        ];
        for (args, env, want) in cases {
            let err = Config::load_with(&args, &env_of(env))
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{err:?} should contain {want:?}");
            assert!(!err.contains("t0k") && !err.contains("ghp_x"), "{err}");
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
    fn the_documented_limits_are_the_worker_defaults() {
        let c = Config::load_with(&ConfigArgs::default(), &env_of(&[])).unwrap();
        assert_eq!(c.limits, Limits::default());
    }

    #[test]
    fn jsonnet_bounds_are_settings_and_must_be_positive() {
        let c = Config::load_with(
            &ConfigArgs::default(),
            &env_of(&[
                ("CAPSTAN_JSONNET_DEADLINE_SECS", "5"),
                ("CAPSTAN_JSONNET_MAX_MEMORY_MB", "256"),
                ("CAPSTAN_JSONNET_MAX_OUTPUT_MB", "2"),
                ("CAPSTAN_JSONNET_MAX_STACK", "100"),
                ("CAPSTAN_JSONNET_MAX_FILES", "7"),
            ]),
        )
        .unwrap();
        let j = c.limits.jsonnet;
        assert_eq!(j.deadline, Duration::from_secs(5));
        assert_eq!(j.max_memory_bytes, 256 << 20);
        assert_eq!(j.max_output_bytes, 2 << 20);
        assert_eq!((j.max_stack, j.max_files), (100, 7));
        let e = Config::load_with(
            &ConfigArgs::default(),
            &env_of(&[("CAPSTAN_JSONNET_MAX_MEMORY_MB", "0")]),
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("CAPSTAN_JSONNET_MAX_MEMORY_MB"),
            "{e}"
        );
    }

    #[test]
    fn effective_settings_name_their_origin_and_hide_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("capstan.toml");
        std::fs::write(&file, "job_lease_secs = 9\nworkers = 7\n").unwrap();
        let args = ConfigArgs {
            config: Some(file.clone()),
            workers: Some("3".into()),
            ..ConfigArgs::default()
        };
        let env = env_of(&[
            ("CAPSTAN_LOG", "debug"),
            ("CAPSTAN_WEBHOOK_SECRET", "hunter2hunter2"),
            ("DATABASE_URL", "postgres://capstan:pa55word@db/capstan"),
            (
                "CAPSTAN_GIT_URL_TEMPLATE",
                "https://x-access:tok3n@git.example/{owner}/{repo}.git",
            ),
        ]);
        let lines: Vec<String> = Config::effective_with(&args, &env)
            .unwrap()
            .iter()
            .map(Effective::line)
            .collect();
        let text = lines.join("\n");
        for want in [
            "workers = \"3\"  # --workers (flag)".to_string(),
            "log = \"debug\"  # CAPSTAN_LOG (environment)".to_string(),
            format!(
                "job_lease_secs = \"9\"  # job_lease_secs in {}",
                file.display()
            ),
            "# listen = \"0.0.0.0:8080\"  (default)".to_string(),
            "# CAPSTAN_WEBHOOK_SECRET: set (redacted), from the environment".to_string(),
            "# CAPSTAN_GITHUB_TOKEN: not set (default: none)".to_string(),
            "database_url = \"postgres://capstan:***@db/capstan\"  # DATABASE_URL (environment)"
                .to_string(),
        ] {
            assert!(lines.contains(&want), "missing {want:?} in\n{text}");
        }
        for secret in ["hunter2hunter2", "pa55word", "tok3n"] {
            assert!(!text.contains(secret), "{secret} shown in\n{text}");
        }
        assert_eq!(lines.len(), ALL.len());
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
