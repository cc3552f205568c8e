//! Where a health probe may go. Service and Ingress annotations are written by anyone who can
//! create objects in the cluster, and the probe runs with Capstan's network position, so an
//! annotation must not turn it into a request forger (SSRF): towards the node's loopback, the
//! cloud metadata service, or private networks that are not the cluster's Services.
//!
//! The rules, checked before every probe:
//! - the host is the entry's own Service name (`<svc>.<ns>.svc[.cluster.local]`) or named in
//!   `serviceDiscovery.probeHosts`; entries from the operator's own config are exempt from this
//!   rule only;
//! - every address the host resolves to is vetted: loopback, link-local, metadata, unspecified,
//!   multicast and broadcast are refused; private ranges are refused unless inside the cluster's
//!   Service CIDR (`serviceDiscovery.serviceCidrs`, K3s's `10.43.0.0/16` by default);
//! - the connection goes to the vetted addresses only (no second DNS lookup that a rebinding
//!   DNS server could answer differently), through no HTTP proxy, and redirects are not followed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ipnet::IpNet;

/// Host names of cloud metadata services, refused whatever they resolve to.
const METADATA_HOSTS: [&str; 4] = [
    "metadata.google.internal",
    "metadata",
    "instance-data",
    "instance-data.ec2.internal",
];

/// K3s's default Service CIDR.
pub const DEFAULT_SERVICE_CIDR: &str = "10.43.0.0/16";

/// The address and host rules of health probes.
#[derive(Clone, Debug)]
pub struct ProbePolicy {
    /// Hosts (lower-case, exact) that may be probed besides an entry's own Service names.
    pub allowed_hosts: Vec<String>,
    /// Private addresses inside these may be probed (the cluster's Service network).
    pub service_cidrs: Vec<IpNet>,
    /// Exact socket addresses that pass the address rules. A seam for tests, which must serve
    /// their targets on loopback; the configuration never sets it.
    pub exempt: Vec<SocketAddr>,
}

impl Default for ProbePolicy {
    fn default() -> Self {
        ProbePolicy {
            allowed_hosts: Vec::new(),
            service_cidrs: DEFAULT_SERVICE_CIDR.parse().into_iter().collect(),
            exempt: Vec::new(),
        }
    }
}

/// Why a probe was not sent.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refused {
    #[error("not probed: {0:?} is not an http(s) URL with a host")]
    Url(String),
    #[error(
        "not probed: host {host} is not this object's own Service name (list it in serviceDiscovery.probeHosts to allow it)"
    )]
    Host { host: String },
    #[error("not probed: {host} is a cloud metadata host")]
    Metadata { host: String },
    #[error("not probed: {host} resolves to {ip}, a {kind} address")]
    Address {
        host: String,
        ip: IpAddr,
        kind: &'static str,
    },
    #[error("not probed: {host} does not resolve ({reason})")]
    Resolve { host: String, reason: String },
}

/// Who wrote an entry, which decides whether its host must be its own Service name.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum HostRule {
    /// The operator's config (static links, the ConfigMap registry in Capstan's namespace).
    #[default]
    Operator,
    /// A cluster object: only these names (its Services' cluster DNS names) or allowed hosts.
    Own(Vec<String>),
}

/// The cluster DNS names of Service `name` in `ns`.
pub fn service_hosts(name: &str, ns: &str) -> Vec<String> {
    vec![
        format!("{name}.{ns}.svc").to_ascii_lowercase(),
        format!("{name}.{ns}.svc.cluster.local").to_ascii_lowercase(),
    ]
}

fn v4_kind(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    if ip == Ipv4Addr::new(169, 254, 169, 254) {
        Some("cloud metadata")
    } else if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_link_local() {
        Some("link-local")
    } else if ip.is_unspecified() || o[0] == 0 {
        Some("unspecified")
    } else if ip.is_multicast() {
        Some("multicast")
    } else if ip.is_broadcast() || o[0] >= 240 {
        Some("reserved")
    } else if ip.is_private() || (o[0] == 100 && (o[1] & 0xc0) == 64) {
        Some("private")
    } else {
        None
    }
}

/// The IPv4 address an IPv6 one carries (mapped, compatible, NAT64), judged as IPv4.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = ip.segments();
    let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    let nat64 = s[0] == 0x64 && s[1] == 0xff9b && s[2..6].iter().all(|x| *x == 0);
    let compatible = s[..6].iter().all(|x| *x == 0) && !tail.is_unspecified() && s[7] != 1;
    (nat64 || compatible).then_some(tail)
}

fn v6_kind(ip: Ipv6Addr) -> Option<&'static str> {
    if let Some(v4) = embedded_v4(ip) {
        return v4_kind(v4);
    }
    let s = ip.segments();
    if ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
        Some("cloud metadata")
    } else if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_unspecified() {
        Some("unspecified")
    } else if (s[0] & 0xffc0) == 0xfe80 {
        Some("link-local")
    } else if ip.is_multicast() {
        Some("multicast")
    } else if (s[0] & 0xfe00) == 0xfc00 {
        Some("private")
    } else {
        None
    }
}

/// What kind of forbidden address `ip` is, `None` when it is public.
pub fn address_kind(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_kind(v4),
        IpAddr::V6(v6) => v6_kind(v6),
    }
}

/// Host names compare without case; IP literals as addresses (`[::ffff:a9fe:a9fe]` is
/// `[::ffff:169.254.169.254]`), brackets or not.
fn same_host(a: &str, b: &str) -> bool {
    let ip = |s: &str| {
        s.trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .ok()
    };
    match (ip(a), ip(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a.eq_ignore_ascii_case(b),
    }
}

/// A vetted probe target: connect to `addrs` for `host`, nothing else.
#[derive(Debug)]
pub struct Target {
    pub url: url::Url,
    /// `None` when the host is an IP literal (no resolution happens).
    pub host: Option<String>,
    pub addrs: Vec<SocketAddr>,
}

impl ProbePolicy {
    /// Whether `addr` may be connected to.
    pub fn check_addr(&self, host: &str, addr: SocketAddr) -> Result<(), Refused> {
        if self.exempt.contains(&addr) {
            return Ok(());
        }
        let ip = match addr.ip() {
            IpAddr::V6(v6) => embedded_v4(v6).map(IpAddr::V4).unwrap_or(addr.ip()),
            v4 => v4,
        };
        match address_kind(ip) {
            None => Ok(()),
            Some("private") if self.service_cidrs.iter().any(|n| n.contains(&ip)) => Ok(()),
            Some(kind) => Err(Refused::Address {
                host: host.to_string(),
                ip: addr.ip(),
                kind,
            }),
        }
    }

    fn check_host(&self, host: &str, rule: &HostRule) -> Result<(), Refused> {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        if METADATA_HOSTS.contains(&host.as_str()) {
            return Err(Refused::Metadata { host });
        }
        let allowed = match rule {
            HostRule::Operator => true,
            HostRule::Own(own) => own.contains(&host),
        } || self.allowed_hosts.iter().any(|h| same_host(h, &host));
        if allowed {
            Ok(())
        } else {
            Err(Refused::Host { host })
        }
    }

    /// Checks `url` under `rule`, resolves its host once and vets every address.
    pub async fn vet(&self, url: &str, rule: &HostRule) -> Result<Target, Refused> {
        let bad_url = || Refused::Url(url.to_string());
        let parsed = url::Url::parse(url).map_err(|_| bad_url())?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(bad_url());
        }
        let port = parsed.port_or_known_default().ok_or_else(bad_url)?;
        let (shown, literal) = match parsed.host().ok_or_else(bad_url)? {
            url::Host::Ipv4(ip) => (ip.to_string(), Some(IpAddr::V4(ip))),
            url::Host::Ipv6(ip) => (format!("[{ip}]"), Some(IpAddr::V6(ip))),
            url::Host::Domain(d) => (d.to_ascii_lowercase(), None),
        };
        self.check_host(&shown, rule)?;
        let addrs: Vec<SocketAddr> = match literal {
            Some(ip) => vec![SocketAddr::new(ip, port)],
            None => tokio::net::lookup_host((shown.as_str(), port))
                .await
                .map_err(|e| Refused::Resolve {
                    host: shown.clone(),
                    reason: e.to_string(),
                })?
                .collect(),
        };
        if addrs.is_empty() {
            return Err(Refused::Resolve {
                host: shown,
                reason: "no addresses".into(),
            });
        }
        // One bad address refuses the host: a name that also points inside is not a name to
        // probe, whichever address the connection would have picked.
        for a in &addrs {
            self.check_addr(&shown, *a)?;
        }
        Ok(Target {
            url: parsed,
            // An IP literal needs no pinning: nothing is resolved.
            host: literal.is_none().then_some(shown),
            addrs,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn forbidden_addresses_are_named() {
        for (ip, kind) in [
            ("127.0.0.1", "loopback"),
            ("127.8.9.1", "loopback"),
            ("169.254.169.254", "cloud metadata"),
            ("169.254.1.1", "link-local"),
            ("0.0.0.0", "unspecified"),
            ("224.0.0.1", "multicast"),
            ("255.255.255.255", "reserved"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("192.168.1.1", "private"),
            ("100.64.0.1", "private"),
            ("::1", "loopback"),
            ("::", "unspecified"),
            ("fe80::1", "link-local"),
            ("fd00:ec2::254", "cloud metadata"),
            ("fd12::1", "private"),
            ("ff02::1", "multicast"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:169.254.169.254", "cloud metadata"),
            ("64:ff9b::a9fe:a9fe", "cloud metadata"),
        ] {
            assert_eq!(address_kind(ip.parse().unwrap()), Some(kind), "{ip}");
        }
        for ip in ["93.184.216.34", "2606:2800:220:1::1", "8.8.8.8"] {
            assert_eq!(address_kind(ip.parse().unwrap()), None, "{ip}");
        }
    }

    #[test]
    fn the_service_cidr_is_the_only_private_range_allowed() {
        let p = ProbePolicy::default();
        let at = |ip: &str| SocketAddr::new(ip.parse().unwrap(), 80);
        assert!(p.check_addr("svc", at("10.43.0.10")).is_ok());
        assert!(p.check_addr("svc", at("10.42.0.10")).is_err());
        assert!(p.check_addr("svc", at("::ffff:10.43.0.10")).is_ok());
        assert!(p.check_addr("x", at("127.0.0.1")).is_err());
        let exempt = ProbePolicy {
            exempt: vec![at("127.0.0.1")],
            ..ProbePolicy::default()
        };
        assert!(exempt.check_addr("x", at("127.0.0.1")).is_ok());
        assert!(
            exempt
                .check_addr("x", SocketAddr::new("127.0.0.1".parse().unwrap(), 81))
                .is_err(),
            "exactly that address"
        );
    }

    #[tokio::test]
    async fn hosts_must_be_the_objects_own_service_or_allowed() {
        let p = ProbePolicy::default();
        let own = HostRule::Own(service_hosts("web", "shop"));
        let e = p.vet("http://evil.example/", &own).await.unwrap_err();
        assert!(matches!(e, Refused::Host { .. }), "{e}");
        let e = p
            .vet("http://metadata.google.internal/", &HostRule::Operator)
            .await
            .unwrap_err();
        assert!(matches!(e, Refused::Metadata { .. }), "{e}");
        let e = p
            .vet(
                "http://169.254.169.254/latest/meta-data/",
                &HostRule::Operator,
            )
            .await
            .unwrap_err();
        assert!(e.to_string().contains("cloud metadata"), "{e}");
        let e = p.vet("file:///etc/passwd", &own).await.unwrap_err();
        assert!(matches!(e, Refused::Url(_)), "{e}");
        let e = p
            .vet("http://localhost:1/", &HostRule::Operator)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("loopback"), "{e}");
    }
}
