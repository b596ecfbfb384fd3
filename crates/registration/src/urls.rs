//! Rules for the URLs a client registers. Redirect URIs follow
//! `latchkey_core::redirect::validate_for_registration`; URLs Latchkey itself will contact
//! (`jwks_uri`, `sector_identifier_uri`, `request_uris`, `backchannel_logout_uri`) must be https
//! (http on loopback only in development mode) and may not name a private or reserved address;
//! display URLs must be http(s).

use latchkey_core::OAuthError;
use latchkey_core::redirect::validate_for_registration;
use url::{Host, Url};

use crate::application_type::ApplicationType;

/// Longest URL accepted in any member.
pub const MAX_URL: usize = 2048;

fn bad(msg: String) -> OAuthError {
    OAuthError::invalid_client_metadata(msg)
}

/// A redirect URI (or post-logout redirect URI) acceptable for this kind of client;
/// refusals are `invalid_redirect_uri` (RFC 7591 §3.2.2).
pub fn redirect_uri(member: &str, uri: &str, app: ApplicationType) -> Result<(), OAuthError> {
    let refuse = |why: &str| OAuthError::invalid_redirect_uri(format!("{member}: {why}"));
    if uri.len() > MAX_URL {
        return Err(refuse("URI too long"));
    }
    // Absolute, no fragment (RFC 6749 §3.1.2), no javascript:/data:, http only on loopback.
    validate_for_registration(uri).map_err(refuse)?;
    let u = Url::parse(uri).map_err(|_| refuse("redirect URI must be an absolute URI"))?;
    if !u.username().is_empty() || u.password().is_some() {
        return Err(refuse("redirect URI must not carry user information"));
    }
    match app {
        // OIDC Registration §2 application_type: web clients use https (http only on loopback).
        ApplicationType::Web if !matches!(u.scheme(), "https" | "http") => {
            Err(refuse("web clients must use https redirect URIs (http only on loopback)"))
        }
        // RFC 8252 §7: native apps may use private-use schemes, loopback http or claimed https.
        ApplicationType::Web | ApplicationType::Native => Ok(()),
    }
}

/// A URL Latchkey will fetch or post to: https, or http on loopback in development mode; no
/// user information; a fragment only where the member allows one; and not a literal private,
/// loopback or reserved address (the fetcher checks resolved addresses again at use).
pub fn outbound(member: &str, uri: &str, dev_mode: bool, allow_fragment: bool) -> Result<Url, OAuthError> {
    if uri.len() > MAX_URL {
        return Err(bad(format!("{member} is too long")));
    }
    let u = Url::parse(uri).map_err(|_| bad(format!("{member} must be an absolute URL")))?;
    if !u.username().is_empty() || u.password().is_some() {
        return Err(bad(format!("{member} must not carry user information")));
    }
    if !allow_fragment && (u.fragment().is_some() || uri.contains('#')) {
        return Err(bad(format!("{member} must not contain a fragment")));
    }
    let loopback = is_loopback(u.host());
    match u.scheme() {
        "https" => {}
        "http" if dev_mode && loopback => {}
        _ => return Err(bad(format!("{member} must be an https URL"))),
    }
    if loopback && !dev_mode {
        return Err(bad(format!("{member} must not point to a loopback address")));
    }
    let forbidden = match u.host() {
        Some(Host::Ipv4(ip)) => latchkey_web::fetch::is_forbidden(ip.into()),
        Some(Host::Ipv6(ip)) => latchkey_web::fetch::is_forbidden(ip.into()),
        Some(Host::Domain(_)) => false,
        None => return Err(bad(format!("{member} must name a host"))),
    };
    if forbidden && !(dev_mode && loopback) {
        return Err(bad(format!("{member} must not point to a private or reserved address")));
    }
    Ok(u)
}

/// A URL shown to users (client_uri, logo_uri, policy_uri, tos_uri): http(s) only, so that no
/// `javascript:` link can ever be rendered.
pub fn display(member: &str, uri: &str) -> Result<(), OAuthError> {
    if uri.len() > MAX_URL {
        return Err(bad(format!("{member} is too long")));
    }
    let u = Url::parse(uri).map_err(|_| bad(format!("{member} must be an absolute URL")))?;
    if !matches!(u.scheme(), "https" | "http") || u.host().is_none() {
        return Err(bad(format!("{member} must be an http or https URL")));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(bad(format!("{member} must not carry user information")));
    }
    Ok(())
}

fn is_loopback(h: Option<Host<&str>>) -> bool {
    match h {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        Some(Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            d == "localhost" || d.ends_with(".localhost")
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outbound_urls_are_https_to_public_hosts() {
        assert!(outbound("jwks_uri", "https://rp.example/jwks", false, false).is_ok());
        for u in [
            "http://rp.example/jwks",
            "https://10.0.0.1/jwks",
            "https://127.0.0.1:1/jwks",
            "https://[::1]/jwks",
            "https://[::ffff:192.168.0.1]/jwks",
            "https://169.254.169.254/latest",
            "https://localhost/jwks",
            "https://a.localhost./jwks",
            "https://user:pw@rp.example/jwks",
            "https://rp.example/jwks#x",
            "file:///etc/passwd",
            "rp.example/jwks",
        ] {
            assert!(outbound("jwks_uri", u, false, false).is_err(), "{u}");
        }
        // Development mode: loopback (http or https) only, never other private ranges.
        assert!(outbound("jwks_uri", "http://127.0.0.1:9/jwks", true, false).is_ok());
        assert!(outbound("jwks_uri", "https://localhost:9/jwks", true, false).is_ok());
        assert!(outbound("jwks_uri", "http://10.0.0.1/jwks", true, false).is_err());
        assert!(outbound("jwks_uri", "https://10.0.0.1/jwks", true, false).is_err());
        // request_uris may carry a fragment (OIDC Registration §2).
        assert!(outbound("request_uris", "https://rp.example/r#hash", false, true).is_ok());
    }

    #[test]
    fn web_clients_need_https_native_clients_may_use_private_schemes() {
        assert!(redirect_uri("redirect_uris", "https://rp.example/cb", ApplicationType::Web).is_ok());
        assert!(redirect_uri("redirect_uris", "http://127.0.0.1:8000/cb", ApplicationType::Web).is_ok());
        assert!(redirect_uri("redirect_uris", "com.example.app:/cb", ApplicationType::Web).is_err());
        assert!(redirect_uri("redirect_uris", "com.example.app:/cb", ApplicationType::Native).is_ok());
        assert!(redirect_uri("redirect_uris", "https://u:p@rp.example/cb", ApplicationType::Web).is_err());
        assert!(redirect_uri("redirect_uris", "javascript:alert(1)", ApplicationType::Native).is_err());
    }

    #[test]
    fn display_urls_are_http_or_https() {
        assert!(display("logo_uri", "https://rp.example/logo.png").is_ok());
        assert!(display("logo_uri", "javascript:alert(1)").is_err());
        assert!(display("logo_uri", "data:image/png;base64,AAAA").is_err());
    }
}
