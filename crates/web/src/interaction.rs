//! Helpers shared by `/authorize` and the login pages for pending authorization requests. The
//! browser carries the interaction id in the URL; the store holds only its hash.
//!
//! An interaction id in a URL is never enough on its own: every pending request is bound to the
//! browser that started it by the browser-binding cookie (`latchkey_browser`, `__Host-` when
//! Secure, HttpOnly, SameSite=Lax), whose hash the request records at `/authorize`. The login,
//! account, consent pages and the resume answer only a browser that presents that cookie, so a
//! link moved to another browser shows an error page, never a code.

use http::HeaderMap;
use latchkey_core::{OAuthError, SecretToken, Settings, TokenHash};
use latchkey_storage::InteractionRecord;

use crate::cookies::{cookie_name, read_cookie, set_cookie};
use crate::state::AppState;

pub const RESUME_PATH: &str = "/authorize/resume";
pub const LOGIN_PATH: &str = "/login";
pub const CONSENT_PATH: &str = "/consent";
pub const SELECT_ACCOUNT_PATH: &str = "/select-account";

/// The browser-binding cookie's base name.
pub const BROWSER_BASE: &str = "latchkey_browser";

pub fn hash(raw: &str) -> TokenHash {
    SecretToken::from_presented(raw).hash()
}

/// `path?interaction=<id>`; ids are base64url, so no escaping is needed.
pub fn url(path: &str, raw: &str) -> String {
    format!("{path}?interaction={raw}")
}

/// A well-formed interaction id (43 base64url characters), before any lookup.
pub fn well_formed(raw: &str) -> bool {
    raw.len() == 43 && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

pub fn see_other(location: &str) -> axum::response::Response {
    use axum::response::IntoResponse;
    let mut r = http::StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = http::HeaderValue::from_str(location) {
        r.headers_mut().insert(http::header::LOCATION, v);
    }
    r
}

/// The hash of this browser's binding cookie for a new pending request, and the `Set-Cookie`
/// to send with it: the same value again (so it lives as long as the newest request), or a new
/// one when the browser has none.
pub fn bind_browser(settings: &Settings, headers: &HeaderMap) -> (TokenHash, String) {
    let name = cookie_name(settings, BROWSER_BASE);
    let value = match read_cookie(headers, &name).filter(|v| well_formed(v)) {
        Some(v) => SecretToken::from_presented(&v),
        None => SecretToken::generate(),
    };
    let set = set_cookie(settings, &name, value.expose(), settings.lifetimes.interaction);
    (value.hash(), set)
}

/// Does the browser sending `headers` hold the binding cookie of the browser that started `rec`?
pub fn same_browser(settings: &Settings, headers: &HeaderMap, rec: &InteractionRecord) -> bool {
    let Some(v) = read_cookie(headers, &cookie_name(settings, BROWSER_BASE)) else { return false };
    !rec.browser_hash.as_str().is_empty() && SecretToken::from_presented(&v).hash().matches(&rec.browser_hash)
}

/// Load the pending request the browser names by `raw`, for that browser only. Errors are for
/// an error page: unknown, expired or malformed ids, and requests started in another browser.
pub async fn load(state: &AppState, headers: &HeaderMap, raw: Option<&str>) -> Result<InteractionRecord, OAuthError> {
    let expired = || {
        OAuthError::invalid_request(
            "this sign-in request has expired or was already completed; start again from the application",
        )
    };
    let raw = raw.filter(|r| well_formed(r)).ok_or_else(expired)?;
    let rec = state.store.get_interaction(&hash(raw), state.now()).await.map_err(OAuthError::server_error)?;
    let rec = rec.ok_or_else(expired)?;
    if !same_browser(&state.settings, headers, &rec) {
        // Architecture habit 13: a link to a pending request is not the request. Someone may
        // have sent this one to lure another browser into completing it.
        tracing::info!(client_id = %rec.client_id, "a pending sign-in request was opened in another browser");
        return Err(OAuthError::invalid_request(
            "this sign-in request was started in another browser; start again from the application",
        ));
    }
    Ok(rec)
}
