//! The application registry: what the dashboard links to. Entries come from
//! - Services and Ingresses annotated `capstan.io/dashboard: "true"` (the deployed tree's
//!   `capstan.dev/` prefix is accepted too), named and grouped by the `name`, `description`,
//!   `group`, `icon`, `url` and `health` annotations under the same prefix; Ingresses give one
//!   entry per host and path;
//! - ConfigMaps labelled `capstan.dev/registry=true` in Capstan's namespace (the seed's
//!   ConfigMap registry: each data entry is YAML with a `services:` list);
//! - static links from the dashboard config.
//!
//! Kubernetes objects are kept current by watchers feeding reflector stores, so a page never
//! waits for the API server. A link is shown only after its HTTP health probe passed; probes have
//! a timeout and their results are cached, and a failing one shows the entry as down, unlinked.
//! Only objects in the namespaces `serviceDiscovery.namespaces` lists are read (none when it is
//! empty, every one for `"*"`), and every probe first passes [`super::probe::ProbePolicy`]: an
//! annotation cannot aim Capstan's requests at the node, the metadata service or private networks.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::networking::v1::Ingress;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, Client, ResourceExt as _};
use serde::{Deserialize, Serialize};

use super::config::DashboardConfig;
use super::probe::{HostRule, ProbePolicy, service_hosts};

/// Annotation prefixes that mark and describe a registry entry.
pub const PREFIXES: [&str; 2] = ["capstan.io/", "capstan.dev/"];
/// Label of registry ConfigMaps (as deployed in `applications/system/dashboard`).
pub const CONFIGMAP_LABEL: &str = "capstan.dev/registry=true";

/// One link in the registry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Entry {
    pub name: String,
    pub description: Option<String>,
    pub group: String,
    pub icon: Option<String>,
    pub url: String,
    /// Probed before the link is shown (defaults to `url`).
    pub health_url: String,
    /// `service`, `ingress`, `configmap` or `config`.
    pub source: String,
    /// `namespace/name` of the object it came from.
    pub object: Option<String>,
    /// Which hosts its probe may reach (its own Service names for cluster objects).
    #[serde(skip)]
    pub hosts: HostRule,
}

/// The last probe of a health URL.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Health {
    /// Not probed yet: the link stays hidden.
    Unchecked,
    Up {
        status: u16,
    },
    Down {
        reason: String,
    },
}

#[derive(Clone, Debug, Serialize)]
pub struct EntryView {
    #[serde(flatten)]
    pub entry: Entry,
    pub health: Health,
}

/// What `/services` shows.
#[derive(Clone, Debug, Serialize)]
pub struct RegistryView {
    /// Why Kubernetes objects are missing, when they are.
    pub kubernetes_error: Option<String>,
    /// Why discovery lists nothing by design (no namespace allowed), when it does.
    pub scope_note: Option<String>,
    pub entries: Vec<EntryView>,
}

/// Probe settings.
#[derive(Clone, Debug)]
pub struct ProbeSettings {
    pub timeout: Duration,
    /// A result is reused this long.
    pub ttl: Duration,
    /// Where probes may go; [`Registry::new`] adds the config's `probeHosts` and `serviceCidrs`.
    pub policy: ProbePolicy,
}

impl Default for ProbeSettings {
    fn default() -> Self {
        ProbeSettings {
            timeout: Duration::from_secs(3),
            ttl: Duration::from_secs(30),
            policy: ProbePolicy::default(),
        }
    }
}

struct Watched {
    services: Store<Service>,
    ingresses: Store<Ingress>,
    configmaps: Store<ConfigMap>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Last watcher error per kind, cleared when the watcher recovers.
    errors: Arc<Mutex<BTreeMap<&'static str, String>>>,
}

pub struct Registry {
    watched: Option<Watched>,
    statics: Vec<Entry>,
    /// `None`: every namespace (`"*"`).
    namespaces: Option<Vec<String>>,
    probe: ProbeSettings,
    probes: Mutex<HashMap<String, (Instant, Health)>>,
}

impl Drop for Registry {
    fn drop(&mut self) {
        if let Some(w) = &self.watched {
            for t in &w.tasks {
                t.abort();
            }
        }
    }
}

/// Runs one watcher into a store, recording errors (the watcher retries with backoff).
fn spawn_watch<K>(
    api: Api<K>,
    cfg: watcher::Config,
    kind: &'static str,
    errors: Arc<Mutex<BTreeMap<&'static str, String>>>,
) -> (Store<K>, tokio::task::JoinHandle<()>)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store::<K>();
    let task = tokio::spawn(async move {
        let mut stream = watcher(api, cfg).default_backoff().reflect(writer).boxed();
        while let Some(ev) = stream.next().await {
            if let Ok(mut errs) = errors.lock() {
                match ev {
                    Ok(_) => {
                        errs.remove(kind);
                    }
                    Err(e) => {
                        tracing::warn!(kind, error = %e, "registry watcher error");
                        errs.insert(kind, e.to_string());
                    }
                }
            }
        }
    });
    (reader, task)
}

fn annotation<'a>(map: &'a BTreeMap<String, String>, key: &str) -> Option<&'a str> {
    PREFIXES
        .iter()
        .find_map(|p| map.get(&format!("{p}{key}")))
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
}

fn marked(map: &BTreeMap<String, String>) -> bool {
    annotation(map, "dashboard").is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

fn is_http(u: &str) -> bool {
    super::layout::is_http_url(u)
}

/// A registry entry for an annotated Service (cluster-internal URL unless `url` is annotated).
pub fn service_entry(s: &Service) -> Option<Entry> {
    let ann = s.metadata.annotations.clone().unwrap_or_default();
    if !marked(&ann) {
        return None;
    }
    let name = s.name_any();
    let ns = s.namespace().unwrap_or_else(|| "default".into());
    let url = match annotation(&ann, "url") {
        Some(u) => u.to_string(),
        None => {
            let port = s
                .spec
                .as_ref()
                .and_then(|sp| sp.ports.as_ref())
                .and_then(|p| p.first())
                .map(|p| p.port)
                .unwrap_or(80);
            format!("http://{name}.{ns}.svc:{port}/")
        }
    };
    entry_from(
        &ann,
        name.clone(),
        url,
        "service",
        format!("{ns}/{name}"),
        HostRule::Own(service_hosts(&name, &ns)),
    )
}

fn entry_from(
    ann: &BTreeMap<String, String>,
    default_name: String,
    url: String,
    source: &str,
    object: String,
    hosts: HostRule,
) -> Option<Entry> {
    if !is_http(&url) {
        return None;
    }
    let health_url = annotation(ann, "health")
        .map(|h| resolve(&url, h))
        .unwrap_or_else(|| url.clone());
    Some(Entry {
        name: annotation(ann, "name")
            .map(str::to_string)
            .unwrap_or(default_name),
        description: annotation(ann, "description").map(str::to_string),
        group: annotation(ann, "group").unwrap_or("services").to_string(),
        icon: annotation(ann, "icon").map(str::to_string),
        url,
        health_url,
        source: source.into(),
        object: Some(object),
        hosts,
    })
}

/// A health annotation is a full URL or a path on the entry's URL.
fn resolve(base: &str, health: &str) -> String {
    if is_http(health) {
        return health.to_string();
    }
    match url::Url::parse(base).and_then(|b| b.join(health)) {
        Ok(u) => u.to_string(),
        Err(_) => base.to_string(),
    }
}

/// Registry entries for an annotated Ingress: one per host and path.
pub fn ingress_entries(i: &Ingress) -> Vec<Entry> {
    let ann = i.metadata.annotations.clone().unwrap_or_default();
    if !marked(&ann) {
        return Vec::new();
    }
    let name = i.name_any();
    let ns = i.namespace().unwrap_or_else(|| "default".into());
    let Some(spec) = &i.spec else {
        return Vec::new();
    };
    // An Ingress's own names are its backends' Services; its public hosts need probeHosts.
    let backends: Vec<String> = spec
        .rules
        .iter()
        .flatten()
        .filter_map(|r| r.http.as_ref())
        .flat_map(|h| h.paths.iter())
        .filter_map(|p| p.backend.service.as_ref())
        .chain(
            spec.default_backend
                .iter()
                .filter_map(|b| b.service.as_ref()),
        )
        .flat_map(|s| service_hosts(&s.name, &ns))
        .collect();
    let tls_hosts: Vec<String> = spec
        .tls
        .iter()
        .flatten()
        .flat_map(|t| t.hosts.clone().unwrap_or_default())
        .collect();
    let mut targets = Vec::new();
    for rule in spec.rules.iter().flatten() {
        let Some(host) = rule.host.as_deref().filter(|h| !h.contains('*')) else {
            continue;
        };
        let scheme = if tls_hosts.iter().any(|h| h == host) {
            "https"
        } else {
            "http"
        };
        let paths: Vec<String> = rule
            .http
            .as_ref()
            .map(|h| {
                h.paths
                    .iter()
                    .map(|p| p.path.clone().unwrap_or_else(|| "/".into()))
                    .collect()
            })
            .filter(|v: &Vec<String>| !v.is_empty())
            .unwrap_or_else(|| vec!["/".into()]);
        for path in paths {
            targets.push(format!("{scheme}://{host}{path}"));
        }
    }
    let many = targets.len() > 1;
    targets
        .into_iter()
        .filter_map(|url| {
            let mut e = entry_from(
                &ann,
                name.clone(),
                url.clone(),
                "ingress",
                format!("{ns}/{name}"),
                HostRule::Own(backends.clone()),
            )?;
            if many {
                e.name = format!(
                    "{} ({})",
                    e.name,
                    url.trim_start_matches("https://")
                        .trim_start_matches("http://")
                );
            }
            Some(e)
        })
        .collect()
}

/// One item of a registry ConfigMap's `services:` list (the seed's format).
#[derive(Debug, Deserialize)]
struct ConfigMapService {
    name: String,
    url: String,
    description: Option<String>,
    health: Option<String>,
    #[serde(alias = "category")]
    group: Option<String>,
    icon: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ConfigMapRegistry {
    #[serde(default)]
    services: Vec<ConfigMapService>,
}

/// Entries of a registry ConfigMap; an unreadable data entry is skipped with a warning.
pub fn configmap_entries(cm: &ConfigMap) -> Vec<Entry> {
    let object = format!("{}/{}", cm.namespace().unwrap_or_default(), cm.name_any());
    let mut out = Vec::new();
    for (key, text) in cm.data.iter().flatten() {
        let parsed = capstan_worker::yaml::parse_single(text, key)
            .map_err(|e| e.to_string())
            .and_then(|v| {
                serde_json::from_value::<ConfigMapRegistry>(v).map_err(|e| e.to_string())
            });
        let reg = match parsed {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(configmap = %object, key, error = %e, "registry ConfigMap entry skipped");
                continue;
            }
        };
        for s in reg.services {
            if !is_http(&s.url) {
                continue;
            }
            out.push(Entry {
                health_url: s
                    .health
                    .as_deref()
                    .map(|h| resolve(&s.url, h))
                    .unwrap_or_else(|| s.url.clone()),
                name: s.name,
                description: s.description,
                group: s.group.unwrap_or_else(|| "services".into()),
                icon: s.icon,
                url: s.url,
                source: "configmap".into(),
                object: Some(object.clone()),
                // Only ConfigMaps in Capstan's own namespace are read: the operator's.
                hosts: HostRule::Operator,
            });
        }
    }
    out
}

impl Registry {
    /// A registry over `client` (watchers start at once) and the config's static links.
    /// `client == None`: static links only.
    pub fn new(client: Option<Client>, cfg: &DashboardConfig, probe: ProbeSettings) -> Self {
        capstan_worker::forge::github::install_crypto_provider();
        let statics = cfg
            .customizations
            .links
            .iter()
            .map(|l| Entry {
                name: l.name.clone(),
                description: l.description.clone(),
                group: l.group.clone().unwrap_or_else(|| "links".into()),
                icon: l.icon.clone(),
                url: l.url.clone(),
                health_url: l.health.clone().unwrap_or_else(|| l.url.clone()),
                source: "config".into(),
                object: None,
                hosts: HostRule::Operator,
            })
            .collect();
        // Disabled discovery starts no watchers at all (a dropped JoinHandle would not stop one).
        let client = client.filter(|_| cfg.service_discovery.enabled);
        let watched = client.map(|c| {
            let errors = Arc::new(Mutex::new(BTreeMap::new()));
            let cfg_watch = watcher::Config::default();
            let (services, t1) = spawn_watch(
                Api::<Service>::all(c.clone()),
                cfg_watch.clone(),
                "services",
                errors.clone(),
            );
            let (ingresses, t2) = spawn_watch(
                Api::<Ingress>::all(c.clone()),
                cfg_watch.clone(),
                "ingresses",
                errors.clone(),
            );
            let (configmaps, t3) = spawn_watch(
                Api::<ConfigMap>::namespaced(c, &cfg.namespace),
                cfg_watch.labels(CONFIGMAP_LABEL),
                "configmaps",
                errors.clone(),
            );
            Watched {
                services,
                ingresses,
                configmaps,
                tasks: vec![t1, t2, t3],
                errors,
            }
        });
        let sd = &cfg.service_discovery;
        let mut probe = probe;
        probe.policy.allowed_hosts.extend(
            sd.probe_hosts
                .iter()
                .map(|h| h.trim().trim_end_matches('.').to_ascii_lowercase()),
        );
        // Checked when the config was parsed; a config built in code that fails here keeps the
        // default, which is the narrower choice.
        if let Ok(Some(cidrs)) = sd.parsed_service_cidrs() {
            probe.policy.service_cidrs = cidrs;
        }
        let namespaces = if sd.namespaces.iter().any(|n| n == "*") {
            None
        } else {
            Some(sd.namespaces.clone())
        };
        Registry {
            watched,
            statics,
            namespaces,
            probe,
            probes: Mutex::new(HashMap::new()),
        }
    }

    /// Waits until every watcher has listed once (or `timeout`); `false` on timeout.
    pub async fn ready(&self, timeout: Duration) -> bool {
        let Some(w) = &self.watched else {
            return true;
        };
        let all = async {
            let _ = w.services.wait_until_ready().await;
            let _ = w.ingresses.wait_until_ready().await;
            let _ = w.configmaps.wait_until_ready().await;
        };
        tokio::time::timeout(timeout, all).await.is_ok()
    }

    fn in_scope(&self, ns: Option<String>) -> bool {
        match &self.namespaces {
            None => true,
            Some(allowed) => ns.is_some_and(|n| allowed.contains(&n)),
        }
    }

    /// Why no Kubernetes object can be listed, when discovery is on but no namespace is allowed.
    pub fn scope_note(&self) -> Option<String> {
        let none = matches!(&self.namespaces, Some(n) if n.is_empty());
        (self.watched.is_some() && none).then(|| {
            "no namespace is allowed for service discovery: list them in serviceDiscovery.namespaces \
             (\"*\" for all)"
                .to_string()
        })
    }

    /// Every entry, Kubernetes ones first, sorted by group and name.
    pub fn entries(&self) -> Vec<Entry> {
        let mut out = Vec::new();
        if let Some(w) = &self.watched {
            for s in w.services.state() {
                if self.in_scope(s.namespace()) {
                    out.extend(service_entry(&s));
                }
            }
            for i in w.ingresses.state() {
                if self.in_scope(i.namespace()) {
                    out.extend(ingress_entries(&i));
                }
            }
            for cm in w.configmaps.state() {
                out.extend(configmap_entries(&cm));
            }
        }
        out.extend(self.statics.iter().cloned());
        out.sort_by(|a, b| (&a.group, &a.name).cmp(&(&b.group, &b.name)));
        out.dedup_by(|a, b| a.url == b.url && a.name == b.name);
        out
    }

    fn kubernetes_error(&self) -> Option<String> {
        let w = self.watched.as_ref()?;
        let errs = w.errors.lock().ok()?;
        if errs.is_empty() {
            None
        } else {
            Some(
                errs.iter()
                    .map(|(k, e)| format!("{k}: {e}"))
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        }
    }

    /// Probes every entry whose last result is older than the TTL, concurrently.
    pub async fn refresh_health(&self) {
        let targets: Vec<(String, HostRule)> = {
            let Ok(cache) = self.probes.lock() else {
                return;
            };
            let mut targets: Vec<(String, HostRule)> = self
                .entries()
                .into_iter()
                .map(|e| (e.health_url, e.hosts))
                .filter(|(u, _)| {
                    cache
                        .get(u)
                        .is_none_or(|(at, _)| at.elapsed() >= self.probe.ttl)
                })
                .collect();
            // The same URL from a cluster object and from the operator is probed under the
            // stricter rule: a Service cannot borrow an operator link's trust.
            targets.sort_by(|a, b| {
                a.0.cmp(&b.0).then_with(|| {
                    matches!(a.1, HostRule::Operator).cmp(&matches!(b.1, HostRule::Operator))
                })
            });
            targets.dedup_by(|a, b| a.0 == b.0);
            targets
        };
        let results = futures::future::join_all(targets.into_iter().map(|(u, rule)| async move {
            let h = self.probe_one(&u, &rule).await;
            (u, h)
        }))
        .await;
        if let Ok(mut cache) = self.probes.lock() {
            for (u, h) in results {
                cache.insert(u, (Instant::now(), h));
            }
        }
    }

    async fn probe_one(&self, url: &str, rule: &HostRule) -> Health {
        let target = match self.probe.policy.vet(url, rule).await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(url, reason = %e, "health probe refused");
                return Health::Down {
                    reason: e.to_string(),
                };
            }
        };
        // A client per probe pins the vetted addresses: reqwest connects to them and never asks
        // DNS again, so a rebinding answer cannot swap the address after the check.
        let mut builder = reqwest::Client::builder()
            .timeout(self.probe.timeout)
            .connect_timeout(self.probe.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy();
        if let Some(host) = &target.host {
            builder = builder.resolve_to_addrs(host, &target.addrs);
        }
        let http = match builder.build() {
            Ok(c) => c,
            Err(e) => {
                return Health::Down {
                    reason: format!("probe client: {e}"),
                };
            }
        };
        match http.get(target.url).send().await {
            Ok(r) if r.status().is_success() || r.status().is_redirection() => Health::Up {
                status: r.status().as_u16(),
            },
            Ok(r) => Health::Down {
                reason: format!("HTTP {}", r.status()),
            },
            Err(e) if e.is_timeout() => Health::Down {
                reason: format!("no answer within {:?}", self.probe.timeout),
            },
            Err(e) => Health::Down {
                reason: if e.is_connect() {
                    "connection failed".into()
                } else {
                    e.to_string()
                },
            },
        }
    }

    /// Entries with their last probe result.
    pub fn view(&self) -> RegistryView {
        let cache = self.probes.lock().ok();
        let entries = self
            .entries()
            .into_iter()
            .map(|entry| {
                let health = cache
                    .as_ref()
                    .and_then(|c| c.get(&entry.health_url).map(|(_, h)| h.clone()))
                    .unwrap_or(Health::Unchecked);
                EntryView { entry, health }
            })
            .collect();
        RegistryView {
            kubernetes_error: self.kubernetes_error(),
            scope_note: self.scope_note(),
            entries,
        }
    }

    /// Keeps probe results fresh until the registry is dropped.
    pub fn spawn_prober(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        let period = self.probe.ttl;
        tokio::spawn(async move {
            loop {
                let Some(r) = weak.upgrade() else { return };
                r.refresh_health().await;
                drop(r);
                tokio::time::sleep(period).await;
            }
        })
    }
}
