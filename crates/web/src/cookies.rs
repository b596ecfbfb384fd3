//! Cookies: the session cookie (a 256-bit secret, stored hashed server-side) and the CSRF
//! double-submit cookie of the login and consent forms.

use http::HeaderMap;
use latchkey_core::{SecretToken, Settings};
use latchkey_storage::SessionRecord;

use crate::state::AppState;

pub const CSRF_BASE: &str = "latchkey_csrf";

/// `__Host-` prefixed when the cookie is Secure (RFC 6265bis §4.1.3.2): host-only, path `/`.
pub fn cookie_name(settings: &Settings, base: &str) -> String {
    if settings.cookie_secure() { format!("__Host-{base}") } else { base.to_owned() }
}

pub fn session_cookie_name(settings: &Settings) -> String {
    cookie_name(settings, &settings.cookies.name)
}

/// The value of cookie `name`, if sent exactly once.
pub fn read_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    let mut found = None;
    for h in headers.get_all(http::header::COOKIE) {
        let Ok(s) = h.to_str() else { continue };
        for pair in s.split(';') {
            let Some((k, v)) = pair.trim().split_once('=') else { continue };
            if k == name {
                if found.is_some() {
                    return None; // two cookies of one name: trust neither
                }
                found = Some(v.trim_matches('"').to_owned());
            }
        }
    }
    found.filter(|v| !v.is_empty() && v.len() <= 128)
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Lax, Path=/, Secure when configured.
pub fn set_cookie(settings: &Settings, name: &str, value: &str, max_age: i64) -> String {
    let secure = if settings.cookie_secure() { "; Secure" } else { "" };
    format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}")
}

pub fn clear_cookie(settings: &Settings, name: &str) -> String {
    set_cookie(settings, name, "", 0)
}

/// The live session the browser presents, if any.
pub async fn current_session(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<SessionRecord>, latchkey_storage::StoreError> {
    let Some(v) = read_cookie(headers, &session_cookie_name(&state.settings)) else { return Ok(None) };
    state.store.get_session(&SecretToken::from_presented(&v).hash(), state.now()).await
}

/// The CSRF token for a form: the browser's existing CSRF cookie, or a new one to set.
pub fn csrf_token(settings: &Settings, headers: &HeaderMap) -> (String, Option<String>) {
    let name = cookie_name(settings, CSRF_BASE);
    match read_cookie(headers, &name) {
        Some(v) => (v, None),
        None => {
            let t = SecretToken::generate();
            let v = t.expose().to_owned();
            let set = set_cookie(settings, &name, &v, 3600);
            (v, Some(set))
        }
    }
}

/// Double-submit check: the form's token equals the cookie's, compared in constant time.
pub fn csrf_ok(settings: &Settings, headers: &HeaderMap, submitted: Option<&str>) -> bool {
    match (read_cookie(headers, &cookie_name(settings, CSRF_BASE)), submitted) {
        (Some(c), Some(s)) => latchkey_core::secret::constant_time_eq(c.as_bytes(), s.as_bytes()),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_cookies_are_not_trusted() {
        let mut h = HeaderMap::new();
        h.append(http::header::COOKIE, "a=1; b=2".parse().unwrap());
        assert_eq!(read_cookie(&h, "a").as_deref(), Some("1"));
        h.append(http::header::COOKIE, "a=3".parse().unwrap());
        assert_eq!(read_cookie(&h, "a"), None);
    }

    #[test]
    fn secure_cookies_get_the_host_prefix() {
        let mut s = Settings::default();
        assert_eq!(session_cookie_name(&s), "latchkey_session");
        s.issuer = "https://id.example.com".into();
        assert_eq!(session_cookie_name(&s), "__Host-latchkey_session");
        assert!(set_cookie(&s, "__Host-x", "v", 5).contains("; Secure"));
    }
}
