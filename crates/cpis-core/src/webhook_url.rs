//! Where cpis may send webhooks. A webhook URL is parsed with the `url` crate (never matched as
//! a string): HTTPS only, no user information, and a host that resolves to a public address.
//! Loopback, private, link-local (including the 169.254.169.254 metadata service), carrier-grade
//! NAT, multicast and unspecified addresses are refused unless the deployment's allow-list names
//! the host or address. Plain HTTP is accepted only to an exact loopback host (`127.0.0.1`,
//! `[::1]`, `localhost`) when `allow_http_loopback` is set (tests and local receivers).
//!
//! The same check runs again at every delivery on the addresses the host resolves to then, and
//! the connection goes to a checked address: a name that resolved to a public address when the
//! webhook was added and to an internal one later (DNS rebinding) gets nothing.

use serde::Deserialize;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use url::Url;

/// The `[webhook_destinations]` settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DestinationPolicy {
    /// Accept `http://127.0.0.1…`, `http://[::1]…` and `http://localhost…` (and deliver to
    /// loopback addresses). Off by default.
    pub allow_http_loopback: bool,
    /// Host names, IP addresses or CIDR ranges (`10.20.0.0/16`) that may be internal: an LA's
    /// receiver on a private network that the deployment vouches for.
    pub allow: Vec<String>,
}

/// Why a webhook URL or destination is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlRefused {
    #[error("not a URL: {0}")]
    NotAUrl(String),
    #[error("webhook URLs must use https:// (plain http:// only to 127.0.0.1, [::1] or localhost, when allow_http_loopback is set)")]
    Scheme,
    #[error("webhook URLs may not carry a user name or password")]
    UserInfo,
    #[error("the webhook URL names no host")]
    NoHost,
    #[error("{host} could not be resolved: {why}")]
    Unresolved { host: String, why: String },
    #[error("{host} resolves to {addr}, an internal address (loopback, private, link-local or metadata): refused unless [webhook_destinations] allow names it")]
    Internal { host: String, addr: IpAddr },
}

impl DestinationPolicy {
    /// Checks a webhook URL when it is added: its form, then every address its host resolves to.
    pub fn check_url(&self, text: &str) -> Result<Url, UrlRefused> {
        let url = self.check_form(text)?;
        let host = url.host_str().ok_or(UrlRefused::NoHost)?.to_owned();
        let port = url.port_or_known_default().unwrap_or(443);
        self.resolve(&host, port, url.scheme() == "http")?;
        Ok(url)
    }

    /// The checks that need no DNS: scheme, user information, host.
    pub fn check_form(&self, text: &str) -> Result<Url, UrlRefused> {
        let url = Url::parse(text.trim()).map_err(|e| UrlRefused::NotAUrl(e.to_string()))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(UrlRefused::UserInfo);
        }
        let host = url.host_str().ok_or(UrlRefused::NoHost)?;
        match url.scheme() {
            "https" => {}
            "http" if self.allow_http_loopback && is_loopback_name(host) => {}
            _ => return Err(UrlRefused::Scheme),
        }
        Ok(url)
    }

    /// The addresses a delivery may connect to for `host:port`: every resolved address that is
    /// allowed. Refused when there is none.
    pub fn resolve(
        &self,
        host: &str,
        port: u16,
        plain_http: bool,
    ) -> Result<Vec<SocketAddr>, UrlRefused> {
        if plain_http && !(self.allow_http_loopback && is_loopback_name(host)) {
            return Err(UrlRefused::Scheme);
        }
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => (bare, port)
                .to_socket_addrs()
                .map_err(|e| UrlRefused::Unresolved {
                    host: host.to_owned(),
                    why: e.to_string(),
                })?
                .collect(),
        };
        let mut allowed = Vec::new();
        let mut first_refused = None;
        for a in addrs {
            if self.allows(host, a.ip()) {
                allowed.push(a);
            } else if first_refused.is_none() {
                first_refused = Some(a.ip());
            }
        }
        match (allowed.is_empty(), first_refused) {
            (false, _) => Ok(allowed),
            (true, Some(addr)) => Err(UrlRefused::Internal {
                host: host.to_owned(),
                addr,
            }),
            (true, None) => Err(UrlRefused::Unresolved {
                host: host.to_owned(),
                why: "no address".into(),
            }),
        }
    }

    fn allows(&self, host: &str, ip: IpAddr) -> bool {
        if !is_internal(ip) {
            return true;
        }
        if self.allow_http_loopback && canonical(ip).is_loopback() {
            return true;
        }
        self.allow.iter().any(|entry| {
            let entry = entry.trim();
            entry.eq_ignore_ascii_case(host)
                || entry
                    .parse::<IpAddr>()
                    .is_ok_and(|e| canonical(e) == canonical(ip))
                || in_cidr(entry, ip)
        })
    }
}

fn is_loopback_name(host: &str) -> bool {
    matches!(host, "127.0.0.1" | "[::1]" | "localhost")
}

/// An IPv4 address written as IPv6 (`::ffff:a.b.c.d`) is that IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// Addresses a webhook must not reach without an allow-list entry.
pub fn is_internal(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => internal_v4(v4),
        IpAddr::V6(v6) => internal_v6(v6),
    }
}

fn internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local() // 169.254.0.0/16, the cloud metadata service
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // IETF protocol assignments
        || a >= 240 // reserved
}

fn internal_v6(ip: Ipv6Addr) -> bool {
    let seg = ip.segments();
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (seg[0] & 0xfe00) == 0xfc00 // unique local
        || (seg[0] & 0xffc0) == 0xfe80 // link-local
        || (seg[0] == 0x64 && seg[1] == 0xff9b) // NAT64: an IPv4 address behind it
        || (seg[0] == 0x2001 && seg[1] == 0x0db8) // documentation
}

fn in_cidr(entry: &str, ip: IpAddr) -> bool {
    let Some((net, bits)) = entry.split_once('/') else {
        return false;
    };
    let (Ok(net), Ok(bits)) = (net.parse::<IpAddr>(), bits.parse::<u32>()) else {
        return false;
    };
    match (canonical(net), canonical(ip)) {
        (IpAddr::V4(n), IpAddr::V4(i)) if bits <= 32 => {
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            u32::from(n) & mask == u32::from(i) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(i)) if bits <= 128 => {
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            u128::from(n) & mask == u128::from(i) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict() -> DestinationPolicy {
        DestinationPolicy::default()
    }

    fn loopback_ok() -> DestinationPolicy {
        DestinationPolicy {
            allow_http_loopback: true,
            ..Default::default()
        }
    }

    #[test]
    fn string_prefix_tricks_are_refused() {
        for (url, policy) in [
            (
                "http://127.0.0.1@169.254.169.254/latest/meta-data",
                loopback_ok(),
            ),
            ("http://127.0.0.1.attacker.example/", loopback_ok()),
            ("http://localhost:80@10.0.0.1/", loopback_ok()),
            ("http://[::1].attacker.example/", loopback_ok()),
            ("https://user:pass@receiver.example/", strict()),
            ("http://127.0.0.1:9000/hook", strict()),
            ("ftp://receiver.example/", strict()),
            ("not a url", strict()),
        ] {
            assert!(policy.check_url(url).is_err(), "{url} accepted");
        }
    }

    #[test]
    fn internal_addresses_are_refused_over_https_too() {
        for url in [
            "https://169.254.169.254/",
            "https://10.0.0.1/",
            "https://172.16.5.4/",
            "https://192.168.1.1/",
            "https://100.64.0.1/",
            "https://127.0.0.1/",
            "https://0.0.0.0/",
            "https://[::1]/",
            "https://[fd00::1]/",
            "https://[fe80::1]/",
            "https://[::ffff:169.254.169.254]/",
            "https://[::ffff:10.0.0.1]/",
            "https://localhost/",
        ] {
            assert!(
                matches!(strict().check_url(url), Err(UrlRefused::Internal { .. })),
                "{url}: {:?}",
                strict().check_url(url)
            );
        }
    }

    #[test]
    fn public_addresses_loopback_when_enabled_and_allow_listed_ranges_pass() {
        assert!(strict().check_url("https://93.184.216.34/hook").is_ok());
        assert!(strict().check_url("https://[2606:4700::1111]/hook").is_ok());
        assert!(loopback_ok()
            .check_url("http://127.0.0.1:9000/hook")
            .is_ok());
        assert!(loopback_ok().check_url("http://[::1]:9000/hook").is_ok());
        assert!(loopback_ok()
            .check_url("http://localhost:9000/hook")
            .is_ok());
        let vouched = DestinationPolicy {
            allow: vec!["10.20.0.0/16".into(), "192.168.7.9".into()],
            ..Default::default()
        };
        assert!(vouched.check_url("https://10.20.3.4/hook").is_ok());
        assert!(vouched.check_url("https://192.168.7.9/hook").is_ok());
        assert!(vouched.check_url("https://10.21.0.1/hook").is_err());
        assert!(vouched.check_url("https://169.254.169.254/").is_err());
    }

    #[test]
    fn delivery_rechecks_what_the_name_resolves_to_now() {
        // "localhost" passes the form check over https but resolves to loopback: refused.
        let p = strict();
        assert!(p.check_form("https://localhost:9000/hook").is_ok());
        assert!(matches!(
            p.resolve("localhost", 9000, false),
            Err(UrlRefused::Internal { .. })
        ));
        assert!(matches!(
            p.resolve("127.0.0.1", 9000, true),
            Err(UrlRefused::Scheme)
        ));
        assert!(!loopback_ok()
            .resolve("127.0.0.1", 9000, true)
            .unwrap()
            .is_empty());
    }
}
