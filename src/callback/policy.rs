//! Where a webhook may go.
//!
//! A webhook is sent by a worker, so without a rule any API user could make
//! the workers send requests to addresses only they can reach: the admin
//! listener on loopback, Redis, cloud metadata (169.254.169.254), the
//! private network. By default a callback may only go to a **public unicast
//! address**; an operator may allow chosen networks and host names
//! (`CODE_RUNNER_CALLBACK_ALLOW`) for private deployments. The ports of the
//! service's own listeners (and Redis's) on this machine are refused even
//! then.
//!
//! The rule is applied twice: when the job is submitted (a literal address,
//! or a name that resolves only to refused addresses, is a 400) and again
//! when the webhook is sent, on the very addresses the sender then connects
//! to: the name is resolved once, each address checked, and the connection
//! made to a checked address only (DNS may answer differently the second
//! time). Redirects are never followed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::RwLock;
use std::time::Duration;

use ipnet::IpNet;
use reqwest::Url;

/// Longest a callback host's name may take to resolve.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(3);

/// Why a callback URL cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DestinationError {
    /// Not an http(s) URL with a host.
    #[error("{0}")]
    Invalid(String),
    /// The host's name does not resolve (now).
    #[error("{0}")]
    Unresolved(String),
    /// Every address it names is one a webhook may not reach.
    #[error("refused: {0}")]
    Refused(String),
}

/// A callback URL that passed the rule, with the addresses to connect to.
#[derive(Debug, Clone)]
pub struct Destination {
    pub url: Url,
    /// The host's name when it is one (`None` for a literal address).
    pub domain: Option<String>,
    /// Checked addresses (with the URL's port), in the resolver's order.
    pub addrs: Vec<SocketAddr>,
}

/// The destinations webhooks may reach.
#[derive(Debug, Default)]
pub struct DestinationPolicy {
    /// Networks allowed although they are not public.
    allow_nets: Vec<IpNet>,
    /// Host names allowed whatever they resolve to: exact names, or
    /// `.suffix` / `*.suffix` for every name under one.
    allow_hosts: Vec<String>,
    /// Ports of this service's listeners (and Redis's): never reached on
    /// this machine, whatever is allowed.
    own_ports: RwLock<Vec<u16>>,
}

impl DestinationPolicy {
    /// From `CODE_RUNNER_CALLBACK_ALLOW`: networks (`10.0.0.0/8`,
    /// `fd00::/8`, a single address) and host names (`hooks.internal`,
    /// `*.internal`), comma-separated.
    pub fn new(allow: &str, own_ports: &[u16]) -> Result<DestinationPolicy, String> {
        let mut policy = DestinationPolicy::default();
        for entry in allow.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if let Ok(net) = entry.parse::<IpNet>() {
                policy.allow_nets.push(net);
            } else if let Ok(ip) = entry.parse::<IpAddr>() {
                policy.allow_nets.push(IpNet::from(ip));
            } else {
                let host = entry
                    .trim_start_matches('*')
                    .trim_end_matches('.')
                    .to_ascii_lowercase();
                let name = host.trim_start_matches('.');
                let valid = !name.is_empty()
                    && name.split('.').all(|l| {
                        !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    });
                if !valid {
                    return Err(format!(
                        "CODE_RUNNER_CALLBACK_ALLOW: {entry:?} is neither a network \
                         (10.0.0.0/8), an address, nor a host name (hooks.internal, *.internal)"
                    ));
                }
                policy.allow_hosts.push(host);
            }
        }
        policy.add_own_ports(own_ports);
        Ok(policy)
    }

    /// Adds ports of this service's own listeners (known once bound).
    pub fn add_own_ports(&self, ports: &[u16]) {
        let mut own = self.own_ports.write().unwrap_or_else(|e| e.into_inner());
        for &port in ports {
            if port != 0 && !own.contains(&port) {
                own.push(port);
            }
        }
    }

    fn host_allowed(&self, domain: &str) -> bool {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        self.allow_hosts
            .iter()
            .any(|allowed| match allowed.strip_prefix('.') {
                Some(suffix) => domain.ends_with(&format!(".{suffix}")),
                None => domain == *allowed,
            })
    }

    /// Whether a webhook may connect to `addr` (for a host name allowed by
    /// the operator when `host_allowed`). `Err` says why not.
    pub fn check_addr(&self, addr: SocketAddr, host_allowed: bool) -> Result<(), String> {
        let ip = addr.ip().to_canonical();
        let own = self.own_ports.read().unwrap_or_else(|e| e.into_inner());
        if own.contains(&addr.port()) && is_this_machine(ip) {
            return Err(format!(
                "{ip} port {} is this service's own (or its Redis's) on this machine",
                addr.port()
            ));
        }
        if host_allowed || self.allow_nets.iter().any(|net| net.contains(&ip)) {
            return Ok(());
        }
        match refused_range(ip) {
            Some(why) => Err(format!(
                "{ip} is {why}: callbacks go to public addresses only"
            )),
            None => Ok(()),
        }
    }

    /// Parses a callback URL, resolves its host and keeps the addresses the
    /// rule allows. `Err` (in words fit for a 400) when the URL is not
    /// http(s), does not resolve, or resolves only to refused addresses.
    pub async fn resolve(&self, url: &str) -> Result<Destination, DestinationError> {
        use DestinationError::*;
        let url = Url::parse(url).map_err(|e| Invalid(format!("not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Invalid(
                "the URL must start with http:// or https://".into(),
            ));
        }
        let port = url
            .port_or_known_default()
            .ok_or_else(|| Invalid("the URL has no port".into()))?;
        let (domain, candidates) = match url.host() {
            None => return Err(Invalid("the URL has no host".into())),
            Some(url::Host::Ipv4(ip)) => (None, vec![SocketAddr::new(IpAddr::V4(ip), port)]),
            Some(url::Host::Ipv6(ip)) => (None, vec![SocketAddr::new(IpAddr::V6(ip), port)]),
            Some(url::Host::Domain(name)) => {
                let resolved =
                    tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((name, port)))
                        .await
                        .map_err(|_| {
                            Unresolved(format!("{name} did not resolve within {RESOLVE_TIMEOUT:?}"))
                        })?
                        .map_err(|e| Unresolved(format!("{name} does not resolve: {e}")))?;
                (Some(name.to_string()), resolved.collect::<Vec<_>>())
            }
        };
        let host_allowed = domain.as_deref().is_some_and(|d| self.host_allowed(d));
        let mut addrs = Vec::new();
        let mut refusals = Vec::new();
        for addr in candidates {
            match self.check_addr(addr, host_allowed) {
                Ok(()) if !addrs.contains(&addr) => addrs.push(addr),
                Ok(()) => {}
                Err(why) => refusals.push(why),
            }
        }
        if addrs.is_empty() {
            return Err(match refusals.into_iter().next() {
                Some(why) => Refused(why),
                None => Unresolved("the host resolves to no address".into()),
            });
        }
        Ok(Destination { url, domain, addrs })
    }
}

/// Whether `ip` is one of this machine's own addresses: loopback,
/// unspecified, or the source address the kernel would pick to reach it
/// (a UDP `connect` only looks up the route; no packet is sent).
fn is_this_machine(ip: IpAddr) -> bool {
    if ip.is_loopback() || ip.is_unspecified() {
        return true;
    }
    let bind: SocketAddr = match ip {
        IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        IpAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    std::net::UdpSocket::bind(bind)
        .and_then(|socket| {
            socket.connect((ip, 9))?;
            socket.local_addr()
        })
        .is_ok_and(|local| local.ip() == ip)
}

/// The special-purpose range `ip` is in, if any (IANA's registries of
/// special-purpose addresses): every address a webhook may not reach by
/// default. IPv6 forms that embed an IPv4 address are judged by it.
fn refused_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => refused_v4(v4),
        IpAddr::V6(v6) => refused_v6(v6),
    }
}

fn refused_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        (0, _, _) => "an unspecified (\"this network\") address",
        (10, _, _) => "a private address",
        (100, 64..=127, _) => "a shared (CGNAT) address",
        (127, _, _) => "a loopback address",
        (169, 254, _) => "a link-local address",
        (172, 16..=31, _) => "a private address",
        (192, 0, 0) => "an IETF protocol address",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "a documentation address",
        (192, 88, 99) => "a 6to4 relay address",
        (192, 168, _) => "a private address",
        (198, 18..=19, _) => "a benchmarking address",
        (224..=239, _, _) => "a multicast address",
        (240..=255, _, _) => "a reserved or broadcast address",
        _ => return None,
    })
}

fn refused_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    let embedded_v4 =
        |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    if ip.is_unspecified() {
        return Some("an unspecified address");
    }
    if ip.is_loopback() {
        return Some("a loopback address");
    }
    // ::a.b.c.d (IPv4-compatible, deprecated) and 64:ff9b::a.b.c.d (NAT64)
    // reach the IPv4 address they carry; 2002:AABB:CCDD::/48 (6to4) too.
    if s[..6] == [0; 6] || s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return refused_v4(embedded_v4(s[6], s[7]));
    }
    if s[0] == 0x2002 {
        return refused_v4(embedded_v4(s[1], s[2]));
    }
    Some(match s[0] {
        0x0064 if s[1] == 0xff9b && s[2] == 1 => "a local-use NAT64 address",
        0x0100 if s[1..4] == [0, 0, 0] => "a discard-only address",
        0x2001 if s[1] == 0 => "a Teredo address",
        0x2001 if s[1] == 0x0db8 => "a documentation address",
        0x2001 if s[1] == 2 && s[2] == 0 => "a benchmarking address",
        0x2001 if (0x10..=0x2f).contains(&s[1]) => "an ORCHID address",
        0x3fff if s[1] < 0x1000 => "a documentation address",
        0x5f00 => "a segment-routing address",
        x if x & 0xfe00 == 0xfc00 => "a unique local (private) address",
        x if x & 0xffc0 == 0xfe80 => "a link-local address",
        x if x & 0xffc0 == 0xfec0 => "a site-local address",
        x if x & 0xff00 == 0xff00 => "a multicast address",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(policy: &DestinationPolicy, addr: &str) -> bool {
        policy.check_addr(addr.parse().unwrap(), false).is_err()
    }

    #[test]
    fn only_public_unicast_addresses_pass_by_default() {
        let policy = DestinationPolicy::new("", &[]).unwrap();
        for addr in [
            "127.0.0.1:80",
            "127.9.9.9:80",
            "0.0.0.0:80",
            "10.0.0.1:80",
            "172.16.5.4:80",
            "192.168.1.1:80",
            "169.254.169.254:80",
            "100.64.0.1:80",
            "192.0.2.1:80",
            "198.51.100.7:80",
            "203.0.113.9:80",
            "224.0.0.1:80",
            "255.255.255.255:80",
            "198.18.0.1:80",
            "[::1]:80",
            "[::]:80",
            "[::ffff:127.0.0.1]:80",
            "[::ffff:10.0.0.1]:80",
            "[::127.0.0.1]:80",
            "[64:ff9b::a9fe:a9fe]:80",
            "[2002:7f00:1::]:80",
            "[fc00::1]:80",
            "[fd12:3456::1]:80",
            "[fe80::1]:80",
            "[ff02::1]:80",
            "[2001:db8::1]:80",
            "[2001::1]:80",
        ] {
            assert!(refused(&policy, addr), "{addr} must be refused");
        }
        for addr in [
            "8.8.8.8:443",
            "1.1.1.1:80",
            "[2606:4700::1111]:443",
            "[::ffff:8.8.8.8]:80",
        ] {
            assert!(!refused(&policy, addr), "{addr} is public");
        }
    }

    #[test]
    fn the_operator_allows_networks_but_never_the_services_own_ports() {
        let policy = DestinationPolicy::new("127.0.0.0/8, 10.1.2.3", &[3001]).unwrap();
        assert!(!refused(&policy, "127.0.0.1:8080"));
        assert!(!refused(&policy, "10.1.2.3:80"));
        assert!(refused(&policy, "10.1.2.4:80"));
        assert!(refused(&policy, "127.0.0.1:3001"));
        policy.add_own_ports(&[4000]);
        assert!(refused(&policy, "127.0.0.1:4000"));
        // Another machine's port 3001 is not ours.
        let strict = DestinationPolicy::new("", &[3001]).unwrap();
        assert!(!refused(&strict, "8.8.8.8:3001"));
    }

    #[test]
    fn host_names_are_allowed_exactly_or_by_suffix() {
        let policy = DestinationPolicy::new("hooks.internal,*.corp.example", &[]).unwrap();
        assert!(policy.host_allowed("hooks.internal"));
        assert!(policy.host_allowed("HOOKS.internal."));
        assert!(!policy.host_allowed("evil-hooks.internal"));
        assert!(policy.host_allowed("a.corp.example"));
        assert!(!policy.host_allowed("corp.example.evil"));
        assert!(DestinationPolicy::new("not a host!", &[]).is_err());
    }

    #[tokio::test]
    async fn urls_are_judged_on_what_they_resolve_to() {
        let policy = DestinationPolicy::new("", &[]).unwrap();
        for url in [
            "http://127.0.0.1/hook",
            "http://[::1]/hook",
            "http://0.0.0.0/",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://[::ffff:127.0.0.1]/",
            "http://localhost:9/",
            "http://169.254.169.254/latest/meta-data/",
            "ftp://8.8.8.8/",
        ] {
            assert!(policy.resolve(url).await.is_err(), "{url} must be refused");
        }
        let ok = policy.resolve("https://8.8.8.8/hook").await.unwrap();
        assert_eq!(ok.addrs, vec!["8.8.8.8:443".parse().unwrap()]);
        let allowed = DestinationPolicy::new("localhost", &[]).unwrap();
        let local = allowed.resolve("http://localhost:9/").await.unwrap();
        assert!(
            local.addrs.iter().all(|a| a.ip().is_loopback()),
            "{local:?}"
        );
    }
}
