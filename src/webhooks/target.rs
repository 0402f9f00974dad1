//! Where a webhook posts, and the SSRF guard: a hook's URL is `http://` or
//! `https://`; its host is resolved at each delivery, and every address it
//! resolves to must be public — not private, loopback, link-local,
//! unspecified, shared (100.64/10), unique-local or multicast — unless
//! LETTA_BRIDGE_WEBHOOK_ALLOW lists it (an address or a CIDR block). The
//! delivery connects to the address that was checked: the name is never
//! resolved twice (no DNS rebinding between the check and the connect).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use axum::http::Uri;

/// Longest a host may take to resolve.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// A hook's URL, parsed.
#[derive(Debug, Clone)]
pub struct Target {
    /// The host, as written (no brackets).
    pub host: String,
    /// The port (80 or 443 when not written).
    pub port: u16,
    /// `host[:port]`, for the `Host` header.
    pub authority: String,
    /// The path and query to POST to.
    pub path: String,
    /// True for `https://`.
    pub https: bool,
}

impl Target {
    /// `url` parsed, or why it is no hook URL.
    pub fn parse(url: &str) -> Result<Self, String> {
        let uri: Uri = url.parse().map_err(|e| format!("`url` is no URL: {e}"))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err("`url` must be http:// or https://".into()),
        };
        let authority = uri.authority().ok_or("`url` names no host")?;
        if authority.as_str().contains('@') {
            return Err("`url` must not hold credentials".into());
        }
        let host = authority.host().trim_start_matches('[').trim_end_matches(']').to_owned();
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
        Ok(Self { host, port, authority: authority.as_str().to_owned(), path, https })
    }

    /// Resolves the host and picks the address to connect to: the first one
    /// resolved, once every address resolved is allowed by `allow`.
    pub async fn resolve(&self, allow: &Allow) -> Result<SocketAddr, String> {
        let lookup = tokio::net::lookup_host((self.host.as_str(), self.port));
        let addrs: Vec<SocketAddr> = tokio::time::timeout(RESOLVE_TIMEOUT, lookup)
            .await
            .map_err(|_| format!("{} did not resolve within {RESOLVE_TIMEOUT:?}", self.host))?
            .map_err(|e| format!("cannot resolve {}: {e}", self.host))?
            .collect();
        let first = *addrs.first().ok_or_else(|| format!("{} resolves to no address", self.host))?;
        if let Some(refused) = addrs.iter().find(|a| !allow.permits(a.ip())) {
            return Err(format!(
                "{} resolves to {}, a private, loopback or link-local address: refused unless LETTA_BRIDGE_WEBHOOK_ALLOW lists it",
                self.host,
                refused.ip()
            ));
        }
        Ok(first)
    }
}

/// LETTA_BRIDGE_WEBHOOK_ALLOW: the internal addresses hooks may reach.
#[derive(Debug, Clone, Default)]
pub struct Allow {
    blocks: Vec<(IpAddr, u8)>,
}

impl Allow {
    /// The entries: addresses (`127.0.0.1`, `::1`) or CIDR blocks (`10.0.0.0/8`).
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        let mut blocks = Vec::with_capacity(entries.len());
        for entry in entries.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
            let (ip, bits) = entry.split_once('/').unwrap_or((entry, ""));
            let ip: IpAddr = ip.parse().map_err(|_| format!("{entry:?} is neither an IP address nor a CIDR block"))?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let bits = if bits.is_empty() {
                max
            } else {
                bits.parse().map_err(|_| format!("{entry:?}: bad prefix length"))?
            };
            if bits > max {
                return Err(format!("{entry:?}: a prefix longer than {max} bits"));
            }
            blocks.push((ip, bits));
        }
        Ok(Self { blocks })
    }

    /// May a hook connect to `ip`? Public addresses always; internal ones
    /// when listed.
    pub fn permits(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        !internal(ip) || self.blocks.iter().any(|&(block, bits)| contains(block, bits, ip))
    }
}

/// An IPv6 address that carries an IPv4 one as that IPv4 address: mapped
/// (`::ffff:a.b.c.d`), NAT64's well-known prefix (`64:ff9b::a.b.c.d`, which a
/// NAT64 gateway forwards to the IPv4 address) and 6to4 (`2002:aabb:ccdd::/48`).
fn canonical(ip: IpAddr) -> IpAddr {
    let IpAddr::V6(v6) = ip else { return ip };
    if let Some(v4) = v6.to_ipv4_mapped() {
        return IpAddr::V4(v4);
    }
    let s = v6.segments();
    let embedded = |hi: u16, lo: u16| IpAddr::V4(Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo)));
    match s {
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => embedded(hi, lo),
        [0x2002, hi, lo, ..] => embedded(hi, lo),
        _ => ip,
    }
}

/// True for addresses inside a host or its network.
fn internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || (a == 100 && (64..128).contains(&b))
                || a == 0
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
        }
    }
}

fn contains(block: IpAddr, bits: u8, ip: IpAddr) -> bool {
    match (canonical(block), ip) {
        (IpAddr::V4(b), IpAddr::V4(i)) => mask4(b, bits) == mask4(i, bits),
        (IpAddr::V6(b), IpAddr::V6(i)) => mask6(b, bits) == mask6(i, bits),
        _ => false,
    }
}

fn mask4(ip: Ipv4Addr, bits: u8) -> u32 {
    u32::from(ip).checked_shr(32 - u32::from(bits)).unwrap_or(0)
}

fn mask6(ip: Ipv6Addr, bits: u8) -> u128 {
    u128::from(ip).checked_shr(128 - u32::from(bits)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn internal_addresses_are_refused_unless_listed_and_public_ones_pass() {
        let none = Allow::default();
        for refused in [
            "127.0.0.1",
            "10.1.2.3",
            "169.254.169.254",
            "192.168.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "0.0.0.0",
            "::ffff:127.0.0.1",
            "100.64.0.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::7f00:1",
            "2002:a00:1::1",
        ] {
            assert!(!none.permits(ip(refused)), "{refused} is refused by default");
        }
        assert!(none.permits(ip("93.184.216.34")) && none.permits(ip("2606:4700::1111")));
        assert!(
            none.permits(ip("64:ff9b::5db8:d822")) && none.permits(ip("2002:5db8:d822::1")),
            "public behind NAT64 / 6to4"
        );
        let listed = Allow::parse(&["127.0.0.1".into(), "10.0.0.0/8".into(), "::1".into()]).unwrap();
        assert!(listed.permits(ip("127.0.0.1")) && listed.permits(ip("10.9.9.9")) && listed.permits(ip("::1")));
        assert!(!listed.permits(ip("127.0.0.2")) && !listed.permits(ip("169.254.169.254")));
        assert!(Allow::parse(&["10.0.0.0/33".into()]).is_err() && Allow::parse(&["nonsense".into()]).is_err());
    }

    #[test]
    fn a_url_is_http_or_https_without_credentials() {
        let t = Target::parse("https://hooks.example.com/in?x=1").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.path.as_str(), t.https), ("hooks.example.com", 443, "/in?x=1", true));
        assert_eq!(Target::parse("http://[::1]:8080/").unwrap().host, "::1");
        assert!(Target::parse("ftp://x/").is_err() && Target::parse("http://u:p@x/").is_err());
    }
}
