//! The client's IP address for the audit log: the socket peer, or the address a trusted proxy
//! reports in `X-Forwarded-For` (only a peer listed in `trusted_proxies` may speak for it).

use http::HeaderMap;
use latchkey_core::Settings;
use std::net::{IpAddr, SocketAddr};

/// The peer's address, or, when the peer is a trusted proxy, the rightmost `X-Forwarded-For`
/// entry that is not itself a trusted proxy (the left entries are client-controlled).
pub fn client_ip(headers: &HeaderMap, peer: Option<SocketAddr>, settings: &Settings) -> Option<String> {
    let peer = peer?.ip();
    let trusted = settings.trusted_proxy_ips();
    Some(from_chain(headers, peer, &trusted).to_string())
}

fn from_chain(headers: &HeaderMap, peer: IpAddr, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let mut hops: Vec<IpAddr> = Vec::new();
    for v in headers.get_all("x-forwarded-for") {
        let Ok(s) = v.to_str() else { return peer };
        for part in s.split(',') {
            match part.trim().parse::<IpAddr>() {
                Ok(ip) => hops.push(ip),
                // A malformed chain cannot be trusted past this proxy.
                Err(_) => return peer,
            }
        }
    }
    hops.into_iter().rev().find(|ip| !trusted.contains(ip)).unwrap_or(peer)
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
}
