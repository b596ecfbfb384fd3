//! Redirect-URI matching: exact string comparison, except that for loopback IP literals only
//! the port may differ (RFC 8252 §7.3).

use url::{Host, Url};

/// Does `requested` match one of `registered`? Returns the registered entry it matched.
pub fn matches<'a>(registered: &'a [String], requested: &str) -> Option<&'a str> {
    // RFC 6749 §3.1.2.3 / OIDC Core §3.1.2.1: simple string comparison.
    if let Some(r) = registered.iter().find(|r| r.as_str() == requested) {
        return Some(r.as_str());
    }
    // RFC 8252 §7.3: loopback IP redirect URIs may use any port. Only `127.0.0.1`/`[::1]` and
    // plain http qualify; `localhost` is matched exactly (RFC 8252 §8.3). Everything but the
    // port is compared as text, so no other spelling of the scheme, host or path (`HTTP:`,
    // `127.1`, `[0::1]`, `\`, an empty port) passes for the registered one; a fragment never
    // does (RFC 6749 §3.1.2).
    if requested.contains('#') || !is_loopback_ip_literal(requested) {
        return None;
    }
    let req = split_port(requested)?;
    if req.host.contains('@') || req.port.is_some_and(|p| p.is_empty() || p.len() > 5 || p.parse::<u16>().is_err()) {
        return None;
    }
    registered.iter().map(String::as_str).find(|r| {
        split_port(r).is_some_and(|reg| reg.host == req.host && reg.tail == req.tail) && is_loopback_ip_literal(r)
    })
}

/// `http://` exactly, and a host that parses as a loopback IP address.
fn is_loopback_ip_literal(s: &str) -> bool {
    s.starts_with("http://")
        && Url::parse(s).is_ok_and(|u| match u.host() {
            Some(Host::Ipv4(ip)) => ip.is_loopback(),
            Some(Host::Ipv6(ip)) => ip.is_loopback(),
            _ => false,
        })
}

/// An `http://` URI's text cut around its port: `http://HOST[:PORT]TAIL`.
struct PortSplit<'a> {
    host: &'a str,
    port: Option<&'a str>,
    tail: &'a str,
}

fn split_port(s: &str) -> Option<PortSplit<'_>> {
    let rest = s.strip_prefix("http://")?;
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at_checked(authority_end)?;
    // The port follows the last `:` outside an IPv6 literal's brackets.
    let host_end = match authority.rfind(']') {
        Some(b) => b + 1,
        None => authority.rfind(':').unwrap_or(authority.len()),
    };
    let (host, port) = authority.split_at_checked(host_end)?;
    let port = match port {
        "" => None,
        p => Some(p.strip_prefix(':')?),
    };
    Some(PortSplit { host, port, tail })
}

/// A redirect URI acceptable for registration: absolute, no fragment, and (for web clients)
/// https, or http on loopback.
pub fn validate_for_registration(uri: &str) -> Result<(), &'static str> {
    let u = Url::parse(uri).map_err(|_| "redirect URI must be an absolute URI")?;
    if u.fragment().is_some() || uri.contains('#') {
        return Err("redirect URI must not contain a fragment");
    }
    match u.scheme() {
        "https" => Ok(()),
        "http" => match u.host() {
            Some(Host::Ipv4(ip)) if ip.is_loopback() => Ok(()),
            Some(Host::Ipv6(ip)) if ip.is_loopback() => Ok(()),
            Some(Host::Domain("localhost")) => Ok(()),
            _ => Err("http redirect URIs are allowed only on loopback"),
        },
        "javascript" | "data" | "file" | "vbscript" => Err("redirect URI scheme is not allowed"),
        // Private-use schemes for native apps (RFC 8252 §7.1) must contain a dot.
        s if s.contains('.') => Ok(()),
        _ => Err("redirect URI scheme is not allowed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn exact_match_only_for_web_uris() {
        let r = reg(&["https://app.example/cb"]);
        assert!(matches(&r, "https://app.example/cb").is_some());
        assert!(matches(&r, "https://app.example/cb/").is_none());
        assert!(matches(&r, "https://APP.example/cb").is_none());
        assert!(matches(&r, "https://app.example/cb?x=1").is_none());
        assert!(matches(&r, "https://app.example:443/cb").is_none());
    }

    #[test]
    fn loopback_ip_literals_may_change_only_the_port() {
        let r = reg(&["http://127.0.0.1/callback", "http://[::1]:1234/cb"]);
        assert!(matches(&r, "http://127.0.0.1:51004/callback").is_some());
        assert!(matches(&r, "http://[::1]:9/cb").is_some());
        assert!(matches(&r, "http://127.0.0.1:51004/other").is_none());
        assert!(matches(&r, "http://127.0.0.2:51004/callback").is_none());
        assert!(matches(&r, "https://127.0.0.1:51004/callback").is_none());
        assert!(matches(&r, "http://127.0.0.1:51004/callback#x").is_none());
        assert!(matches(&r, "http://user@127.0.0.1:51004/callback").is_none());
    }

    /// Issue 7 (hostile input): the loopback rule compared URL-parsed hosts and schemes, so other
    /// spellings of the registered URI (which the URL parser normalises) matched it.
    #[test]
    fn loopback_rule_is_string_equality_except_the_port() {
        let r = reg(&["http://127.0.0.1/cb", "http://[::1]/cb"]);
        for other in [
            "HTTP://127.0.0.1:5/cb",
            "http://127.1:5/cb",
            "http://2130706433:5/cb",
            "http://0x7f.0.0.1:5/cb",
            "http://[0:0::1]:5/cb",
            "http://[0000::1]:5/cb",
            "http://127.0.0.1:/cb",
            "http://127.0.0.1:5\\cb",
            "http://127.0.0.1:5\t/cb",
            "http://127.0.0.1:99999/cb",
            "http://127.0.0.1:5/cb#",
            "http://127.0.0.1:5/%63b",
        ] {
            assert_eq!(matches(&r, other), None, "{other}");
        }
        assert_eq!(matches(&r, "http://127.0.0.1:5/cb"), Some("http://127.0.0.1/cb"));
        assert_eq!(matches(&r, "http://[::1]:65535/cb"), Some("http://[::1]/cb"));
    }

    #[test]
    fn localhost_is_not_port_flexible() {
        let r = reg(&["http://localhost:8000/cb"]);
        assert!(matches(&r, "http://localhost:8000/cb").is_some());
        assert!(matches(&r, "http://localhost:8001/cb").is_none());
    }

    #[test]
    fn registration_refuses_fragments_dangerous_schemes_and_remote_http() {
        assert!(validate_for_registration("https://a.example/cb").is_ok());
        assert!(validate_for_registration("http://127.0.0.1:3000/cb").is_ok());
        assert!(validate_for_registration("com.example.app:/cb").is_ok());
        assert!(validate_for_registration("https://a.example/cb#frag").is_err());
        assert!(validate_for_registration("javascript:alert(1)").is_err());
        assert!(validate_for_registration("http://a.example/cb").is_err());
        assert!(validate_for_registration("/relative").is_err());
    }

    // ---- property tests (issue 7): bounded for CI, `PROPTEST_CASES=100000` runs longer ----

    use proptest::prelude::*;

    fn cases(n: u32) -> ProptestConfig {
        let n = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(n);
        ProptestConfig { cases: n, ..ProptestConfig::default() }
    }

    /// A URI from parts, so the expected answer can be worked out from the parts.
    #[derive(Debug, Clone)]
    struct Parts {
        scheme: &'static str,
        userinfo: &'static str,
        host: &'static str,
        port: Option<u16>,
        path: &'static str,
        query: Option<&'static str>,
        fragment: Option<&'static str>,
    }

    impl Parts {
        fn text(&self) -> String {
            let port = self.port.map(|p| format!(":{p}")).unwrap_or_default();
            let query = self.query.map(|q| format!("?{q}")).unwrap_or_default();
            let fragment = self.fragment.map(|f| format!("#{f}")).unwrap_or_default();
            format!("{}://{}{}{port}{}{query}{fragment}", self.scheme, self.userinfo, self.host, self.path)
        }

        fn loopback_literal(&self) -> bool {
            // Hosts that parse as loopback IP addresses (`[::ffff:127.0.0.1]` does not).
            self.scheme == "http" && matches!(self.host, "127.0.0.1" | "[::1]" | "127.0.0.2" | "127.1" | "[0::1]")
        }

        /// Equal apart from the port.
        fn same_but_port(&self, o: &Parts) -> bool {
            (self.scheme, self.userinfo, self.host, self.path, self.query, self.fragment)
                == (o.scheme, o.userinfo, o.host, o.path, o.query, o.fragment)
        }
    }

    fn parts() -> impl Strategy<Value = Parts> {
        let scheme = prop::sample::select(vec!["http", "https", "HTTP", "com.example.app"]);
        let userinfo = prop::sample::select(vec!["", "", "", "u@", "u:p@"]);
        let host = prop::sample::select(vec![
            "127.0.0.1",
            "[::1]",
            "127.0.0.2",
            "localhost",
            "app.example",
            "127.1",
            "[0::1]",
            "[::ffff:127.0.0.1]",
            "127.0.0.1.nip.io",
        ]);
        let port = prop::option::of(prop_oneof![Just(80u16), Just(443), Just(8080), any::<u16>()]);
        let path = prop::sample::select(vec!["/cb", "/cb/", "/CB", "/%63b", "", "/a/../cb", "/cb;x"]);
        let query = prop::option::of(prop::sample::select(vec!["", "x=1", "x=2", "x=1&y"]));
        let fragment = prop::option::weighted(0.2, prop::sample::select(vec!["", "f"]));
        (scheme, userinfo, host, port, path, query, fragment).prop_map(
            |(scheme, userinfo, host, port, path, query, fragment)| Parts {
                scheme,
                userinfo,
                host,
                port,
                path,
                query,
                fragment,
            },
        )
    }

    proptest! {
        #![proptest_config(cases(2048))]

        /// The whole rule: a requested URI matches exactly when it equals a registered one, or
        /// when both are http loopback IP literals (no userinfo, no fragment) equal as text but
        /// for the port. In particular no other host, path, query or scheme ever matches, and a
        /// fragment never does unless it was registered verbatim (registration refuses them).
        #[test]
        fn matches_exactly_or_by_loopback_port_only(
            registered in prop::collection::vec(parts(), 1..4),
            requested in parts(),
        ) {
            let registered: Vec<Parts> = registered.into_iter().filter(|p| p.fragment.is_none()).collect();
            let texts: Vec<String> = registered.iter().map(Parts::text).collect();
            let got = matches(&texts, &requested.text());
            let expected = texts.iter().zip(&registered).find(|(t, p)| {
                **t == requested.text()
                    || (p.loopback_literal()
                        && requested.loopback_literal()
                        && p.userinfo.is_empty()
                        && requested.userinfo.is_empty()
                        && requested.fragment.is_none()
                        && p.same_but_port(&requested))
            });
            prop_assert_eq!(got, expected.map(|(t, _)| t.as_str()), "registered {:?}", texts);
        }

        /// Arbitrary text never panics, and a match is always the registered string itself or
        /// that string with only the port changed.
        #[test]
        fn arbitrary_text_never_panics(registered in prop::collection::vec(".{0,40}", 0..3), requested in ".{0,60}") {
            if let Some(r) = matches(&registered, &requested) {
                prop_assert!(registered.iter().any(|x| x == r));
                let strip = |s: &str| split_port(s).map(|p| (p.host.to_owned(), p.tail.to_owned()));
                prop_assert!(r == requested || (strip(r).is_some() && strip(r) == strip(&requested)));
                prop_assert!(!requested.contains('#') || r == requested);
            }
        }
    }
}
