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
    // plain http qualify; `localhost` is matched exactly (RFC 8252 §8.3).
    let req = Url::parse(requested).ok()?;
    if !is_loopback_ip_literal(&req) {
        return None;
    }
    registered.iter().map(String::as_str).find(|r| {
        Url::parse(r).ok().is_some_and(|reg| {
            is_loopback_ip_literal(&reg)
                && reg.host() == req.host()
                && reg.path() == req.path()
                && reg.query() == req.query()
                && reg.username() == req.username()
                && reg.password() == req.password()
                && req.fragment().is_none()
                && without_port(requested) == without_port(r)
        })
    })
}

fn is_loopback_ip_literal(u: &Url) -> bool {
    u.scheme() == "http"
        && match u.host() {
            Some(Host::Ipv4(ip)) => ip.is_loopback(),
            Some(Host::Ipv6(ip)) => ip.is_loopback(),
            _ => false,
        }
}

/// The URI text with the port removed, so that everything else is compared string for string.
fn without_port(s: &str) -> Option<String> {
    let mut u = Url::parse(s).ok()?;
    u.set_port(None).ok()?;
    // Compare the original text apart from the authority so that normalisation by the URL
    // parser cannot make two different strings equal.
    let rest_start = s.find("://")? + 3;
    let after_authority = s.get(rest_start..)?.find(['/', '?', '#']).map(|i| i + rest_start);
    let tail = after_authority.and_then(|i| s.get(i..)).unwrap_or("");
    Some(format!("{}://{}{}", u.scheme(), u.host_str()?, tail))
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
}
