//! The client's IP address for the audit log and abuse limits: the socket peer, or the address a
//! trusted proxy reports in `X-Forwarded-For` or RFC 7239 `Forwarded` (only a peer listed in
//! `trusted_proxies` may speak for it).

use http::HeaderMap;
use latchkey_core::Settings;
use std::net::{IpAddr, SocketAddr};

/// The socket peer, when the server runs with connect info; never rejects.
pub struct Peer(pub Option<SocketAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Peer(parts.extensions.get::<axum::extract::ConnectInfo<SocketAddr>>().map(|c| c.0)))
    }
}

/// The peer's address, or, when the peer is a trusted proxy, the rightmost `X-Forwarded-For`
/// entry that is not itself a trusted proxy (the left entries are client-controlled).
pub fn client_ip(headers: &HeaderMap, peer: Option<SocketAddr>, settings: &Settings) -> Option<String> {
    let peer = peer?.ip();
    let trusted = settings.trusted_proxy_ips();
    let rfc7239 = settings.trusted_proxy_header.eq_ignore_ascii_case("forwarded");
    Some(from_chain(headers, peer, &trusted, rfc7239).to_string())
}

fn from_chain(headers: &HeaderMap, peer: IpAddr, trusted: &[IpAddr], rfc7239: bool) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    // Only the header the proxies are configured to write: the other one may be the client's.
    let hops = match rfc7239 {
        false => hops(headers, "x-forwarded-for", |part| part.trim().parse::<IpAddr>().ok()),
        true => hops(headers, "forwarded", forwarded_for),
    };
    // A malformed chain cannot be trusted past this proxy.
    let Some(hops) = hops else { return peer };
    hops.into_iter().rev().find(|ip| !trusted.contains(ip)).unwrap_or(peer)
}

/// Every comma-separated element of every `name` header, parsed; `None` if any is malformed.
fn hops(headers: &HeaderMap, name: &str, parse: impl Fn(&str) -> Option<IpAddr>) -> Option<Vec<IpAddr>> {
    let mut out = Vec::new();
    for v in headers.get_all(name) {
        for part in v.to_str().ok()?.split(',') {
            out.push(parse(part)?);
        }
    }
    Some(out)
}

/// The `for=` node of one RFC 7239 forwarded-element: `for=192.0.2.1`, `for="[2001:db8::1]:443"`,
/// `for=192.0.2.1:8080`. Obfuscated or `unknown` nodes are not addresses.
fn forwarded_for(element: &str) -> Option<IpAddr> {
    let node = element.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        k.trim().eq_ignore_ascii_case("for").then(|| v.trim().trim_matches('"'))
    })?;
    if let Some(rest) = node.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    match node.parse::<IpAddr>() {
        Ok(ip) => Some(ip),
        Err(_) => node.rsplit_once(':')?.0.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn settings(proxies: &[&str]) -> Settings {
        Settings { trusted_proxies: proxies.iter().map(|p| (*p).to_owned()).collect(), ..Default::default() }
    }

    fn xff(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", v.parse().unwrap());
        h
    }

    fn peer(ip: &str) -> Option<SocketAddr> {
        Some(SocketAddr::new(ip.parse().unwrap(), 5555))
    }

    #[test]
    fn untrusted_peer_is_used_and_the_header_ignored() {
        let s = settings(&[]);
        assert_eq!(client_ip(&xff("203.0.113.9"), peer("198.51.100.1"), &s).as_deref(), Some("198.51.100.1"));
    }

    #[test]
    fn trusted_proxy_reports_the_client() {
        let s = settings(&["10.0.0.1"]);
        assert_eq!(client_ip(&xff("203.0.113.9"), peer("10.0.0.1"), &s).as_deref(), Some("203.0.113.9"));
        // A client-supplied leftmost entry is not believed: the rightmost untrusted hop wins.
        assert_eq!(
            client_ip(&xff("1.2.3.4, 203.0.113.9, 10.0.0.1"), peer("10.0.0.1"), &s).as_deref(),
            Some("203.0.113.9")
        );
    }

    #[test]
    fn trusted_proxy_without_or_with_a_bad_header_is_the_peer() {
        let s = settings(&["10.0.0.1"]);
        assert_eq!(client_ip(&HeaderMap::new(), peer("10.0.0.1"), &s).as_deref(), Some("10.0.0.1"));
        assert_eq!(client_ip(&xff("not-an-ip"), peer("10.0.0.1"), &s).as_deref(), Some("10.0.0.1"));
        assert_eq!(client_ip(&HeaderMap::new(), None, &s), None);
    }

    fn forwarded(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("forwarded", v.parse().unwrap());
        h
    }

    #[test]
    fn rfc7239_forwarded_is_read_from_a_trusted_proxy_only() {
        let s = Settings { trusted_proxy_header: "forwarded".into(), ..settings(&["10.0.0.1"]) };
        // The header the proxies do not write is the client's: ignored.
        assert_eq!(client_ip(&xff("203.0.113.9"), peer("10.0.0.1"), &s).as_deref(), Some("10.0.0.1"));
        let default = settings(&["10.0.0.1"]);
        assert_eq!(client_ip(&forwarded("for=203.0.113.9"), peer("10.0.0.1"), &default).as_deref(), Some("10.0.0.1"));
        let h = forwarded("for=1.2.3.4, for=203.0.113.9;proto=https");
        assert_eq!(client_ip(&h, peer("10.0.0.1"), &s).as_deref(), Some("203.0.113.9"));
        assert_eq!(client_ip(&h, peer("198.51.100.1"), &s).as_deref(), Some("198.51.100.1"));
        let h = forwarded(r#"for="[2001:db8::7]:4711""#);
        assert_eq!(client_ip(&h, peer("10.0.0.1"), &s).as_deref(), Some("2001:db8::7"));
        let h = forwarded("for=203.0.113.9:8080");
        assert_eq!(client_ip(&h, peer("10.0.0.1"), &s).as_deref(), Some("203.0.113.9"));
        // Obfuscated identifiers cannot be trusted past the proxy.
        assert_eq!(client_ip(&forwarded("for=_hidden"), peer("10.0.0.1"), &s).as_deref(), Some("10.0.0.1"));
        assert_eq!(client_ip(&forwarded("for=unknown"), peer("10.0.0.1"), &s).as_deref(), Some("10.0.0.1"));
    }
}
