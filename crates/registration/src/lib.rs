//! Dynamic client registration: OpenID Connect Dynamic Client Registration 1.0, RFC 7591
//! (`POST /register`) and RFC 7592 management (`GET|PUT|DELETE /register/{client_id}`).
//!
//! `registration.policy` decides what is mounted: `closed` mounts nothing and advertises
//! nothing; `open` lets anyone register; `initial_access_token` asks for a single-use bearer
//! token made with `latchkey registration token` (RFC 7591 §3). Each registration gets a
//! registration access token (stored only as its hash) for the management endpoints.
//!
//! Client secrets never expire (`client_secret_expires_at` is 0): an expiry would have to be
//! enforced at client authentication, which does not know about it yet.

mod application_type;
mod body;
mod delete;
mod metadata;
mod read;
mod register;
mod response;
mod update;
mod urls;

use axum::Router;
use axum::extract::Path;
use axum::extract::rejection::PathRejection;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::HeaderMap;
use latchkey_core::model::Client;
use latchkey_core::{OAuthError, SecretToken, Settings};
use latchkey_web::errors::Bearer;
use latchkey_web::{AppState, BackChannel, Capabilities};
use serde_json::Value;

pub const REGISTER_PATH: &str = "/register";
pub const CLIENT_CONFIGURATION_PATH: &str = "/register/{client_id}";

pub const POLICY_CLOSED: &str = "closed";
pub const POLICY_OPEN: &str = "open";
pub const POLICY_INITIAL_ACCESS_TOKEN: &str = "initial_access_token";

/// The registration routes, or none at all when registration is closed.
pub fn router(settings: &Settings) -> Router<AppState> {
    if settings.registration.policy == POLICY_CLOSED {
        return Router::new();
    }
    Router::new().route(REGISTER_PATH, post(register::post_register).fallback(register::wrong_method)).route(
        CLIENT_CONFIGURATION_PATH,
        get(read::get_client_configuration)
            .put(update::put_client_configuration)
            .delete(delete::delete_client_configuration)
            .fallback(update::wrong_method),
    )
}

/// Discovery: the registration endpoint, only when it is mounted (OIDC Discovery §3).
pub fn capabilities(settings: &Settings) -> Capabilities {
    if settings.registration.policy == POLICY_CLOSED {
        return Capabilities::new();
    }
    Capabilities::new().set("registration_endpoint", settings.endpoint(REGISTER_PATH))
}

/// A bearer token from the Authorization header (RFC 6750 §2.1); the only place a registration
/// request can carry one, since its body is JSON.
enum Presented {
    Token(SecretToken),
    Missing,
    Malformed(&'static str),
}

fn bearer(headers: &HeaderMap) -> Presented {
    let Some(v) = headers.get(http::header::AUTHORIZATION) else { return Presented::Missing };
    let Ok(v) = v.to_str() else { return Presented::Malformed("malformed Authorization header") };
    match v.split_once(' ') {
        Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") && !t.trim().is_empty() => {
            Presented::Token(SecretToken::from_presented(t.trim()))
        }
        _ => Presented::Malformed("the Authorization header must use the Bearer scheme"),
    }
}

/// RFC 6750 §3 answer for a request whose bearer token is missing (realm only, §3.1),
/// malformed (`invalid_request`) or not accepted (`invalid_token`).
fn bearer_refusal(state: &AppState, presented: Presented, why: &'static str) -> Response {
    let realm = state.settings.issuer.as_str();
    match presented {
        Presented::Missing => Bearer::missing(realm).into_response(),
        Presented::Malformed(m) => Bearer::error(realm, OAuthError::invalid_request(m)).into_response(),
        Presented::Token(_) => {
            Bearer::error(realm, OAuthError::invalid_token("the access token is invalid").because(why)).into_response()
        }
    }
}

/// RFC 7592 §2: the client the registration access token was issued for, with the token.
/// Unknown clients, clients registered by the CLI (no token) and wrong tokens all answer 401
/// `invalid_token` (RFC 7592 §2.1: a missing client is a 401 too).
async fn managed_client(
    state: &AppState,
    path: Result<Path<String>, PathRejection>,
    headers: &HeaderMap,
) -> Result<(Client, SecretToken), Response> {
    let token = match bearer(headers) {
        Presented::Token(t) => t,
        other => return Err(bearer_refusal(state, other, "no usable token")),
    };
    let Ok(Path(client_id)) = path else {
        return Err(bearer_refusal(state, Presented::Token(token), "malformed client_id in the path"));
    };
    let client = match state.store.get_client(&client_id).await {
        Ok(Some(c)) => c,
        Ok(None) => return Err(bearer_refusal(state, Presented::Token(token), "unknown client")),
        Err(e) => return Err(BackChannel::new(OAuthError::server_error(e)).into_response()),
    };
    // Compared as SHA-256 hashes, in constant time (TokenHash::matches).
    let ok = client.registration_token_hash.as_ref().is_some_and(|h| h.matches(&token.hash()));
    if !ok {
        return Err(bearer_refusal(state, Presented::Token(token), "wrong registration access token"));
    }
    Ok((client, token))
}

/// Record what registration did, for operators. Never fails the request.
async fn audit(state: &AppState, kind: &str, client_id: &str, detail: Value) {
    let e = latchkey_storage::AuditEvent {
        at: state.now(),
        kind: kind.into(),
        actor: Some("registration".into()),
        client_id: Some(client_id.to_owned()),
        ip: None,
        detail: detail.to_string(),
    };
    if let Err(err) = state.store.record_audit(&e).await {
        tracing::warn!(error = %err, "could not record audit event");
    }
}

/// 405 with `Allow` (RFC 9110 §15.5.6), as JSON like every other answer here.
fn method_not_allowed(allow: &'static str, what: &str) -> Response {
    let mut r = BackChannel::new(OAuthError::invalid_request(format!("{what} accepts {allow} only"))).into_response();
    *r.status_mut() = http::StatusCode::METHOD_NOT_ALLOWED;
    r.headers_mut().insert(http::header::ALLOW, http::HeaderValue::from_static(allow));
    r
}
