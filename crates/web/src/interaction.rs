//! Helpers shared by `/authorize` and the login pages for pending authorization requests. The
//! browser carries the interaction id in the URL; the store holds only its hash.

use latchkey_core::{SecretToken, TokenHash};

pub const RESUME_PATH: &str = "/authorize/resume";
pub const LOGIN_PATH: &str = "/login";
pub const CONSENT_PATH: &str = "/consent";
pub const SELECT_ACCOUNT_PATH: &str = "/select-account";

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
