//! The client information response (RFC 7591 §3.2.1, RFC 7592 §3): every registered metadata
//! value, defaults filled in, plus the credentials and management URI.

use latchkey_core::Settings;
use latchkey_core::model::{Client, GrantType};
use serde_json::{Map, Value};

use crate::REGISTER_PATH;

/// `secret` is shown only when it was just issued (or presented by the client); Latchkey keeps
/// only its hash. `registration_access_token` is REQUIRED in every response (RFC 7592 §3): it is
/// the token just issued, or the one the client authenticated with.
pub fn client_information(
    settings: &Settings,
    c: &Client,
    secret: Option<&str>,
    registration_access_token: &str,
) -> Value {
    let mut m: Map<String, Value> = c.metadata.clone();
    let mut put = |k: &str, v: Value| {
        m.insert(k.to_owned(), v);
    };
    put("client_id", c.client_id.clone().into());
    put("client_id_issued_at", c.created_at.into());
    if c.auth_method.uses_secret() {
        if let Some(s) = secret {
            put("client_secret", s.into());
        }
        // RFC 7591 §3.2.1: 0 means the secret does not expire.
        put("client_secret_expires_at", 0.into());
    }
    put("registration_access_token", registration_access_token.into());
    put("registration_client_uri", format!("{}/{}", settings.endpoint(REGISTER_PATH), c.client_id).into());
    put("token_endpoint_auth_method", c.auth_method.as_str().into());
    put("grant_types", c.grant_types.iter().map(|g| g.as_str()).collect::<Vec<_>>().into());
    let response_types: Vec<&str> =
        if c.allows_grant(GrantType::AuthorizationCode) { vec!["code"] } else { Vec::new() };
    put("response_types", response_types.into());
    if !c.redirect_uris.is_empty() {
        put("redirect_uris", c.redirect_uris.clone().into());
    }
    if !c.post_logout_redirect_uris.is_empty() {
        put("post_logout_redirect_uris", c.post_logout_redirect_uris.clone().into());
    }
    if !c.scopes.is_empty() {
        put("scope", c.scopes.join(" ").into());
    }
    let alg = c.id_token_signed_response_alg.map(|a| a.as_str().to_owned()).unwrap_or_else(|| {
        settings.default_signing_alg().map(|a| a.as_str().to_owned()).unwrap_or_else(|_| "RS256".into())
    });
    put("id_token_signed_response_alg", alg.into());
    put("subject_type", c.subject_type.as_str().into());
    if let Some(j) = &c.jwks {
        put("jwks", serde_json::from_str(j).unwrap_or(Value::Null));
    }
    if let Some(u) = &c.jwks_uri {
        put("jwks_uri", u.clone().into());
    }
    if let Some(u) = &c.sector_identifier_uri {
        put("sector_identifier_uri", u.clone().into());
    }
    if let Some(u) = &c.backchannel_logout_uri {
        put("backchannel_logout_uri", u.clone().into());
        put("backchannel_logout_session_required", c.backchannel_logout_session_required.into());
    }
    if let Some(a) = &c.request_object_signing_alg {
        put("request_object_signing_alg", a.clone().into());
    }
    if !c.request_uris.is_empty() {
        put("request_uris", c.request_uris.clone().into());
    }
    if c.require_par {
        put("require_pushed_authorization_requests", true.into());
    }
    Value::Object(m)
}
