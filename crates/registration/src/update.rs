//! `PUT /register/{client_id}` (RFC 7592 §2.2): the request replaces the client's metadata;
//! omitted members return to their defaults. Checks, in order: registration access token, body,
//! `client_id` equal to the registered one, `client_secret` (if sent) equal to the current
//! secret, the metadata, the sector_identifier_uri document; then one store write.

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use latchkey_core::model::{Client, ClientAuthMethod};
use latchkey_core::{OAuthError, SecretToken};
use latchkey_web::errors::no_store_json;
use latchkey_web::{AppState, BackChannel};
use serde_json::{Value, json};

use crate::metadata::Registration;
use crate::{Presented, audit, bearer_refusal, body, managed_client, response};

pub async fn put_client_configuration(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    req_body: Body,
) -> Response {
    let (existing, token) = match managed_client(&state, path, &headers).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let doc = match body::read_object(&headers, req_body).await {
        Ok(d) => d,
        Err(e) => return BackChannel::new(e).into_response(),
    };
    // RFC 7592 §2.2: the request MUST include client_id, the one currently issued.
    if doc.get("client_id").and_then(Value::as_str) != Some(existing.client_id.as_str()) {
        return BackChannel::new(OAuthError::invalid_client_metadata("client_id must be the registered client_id"))
            .into_response();
    }
    // RFC 7592 §2.2: a client_secret sent MUST match the current one; it cannot be chosen.
    let presented_secret = match doc.get("client_secret") {
        None | Some(Value::Null) => None,
        Some(Value::String(s))
            if existing.secret_hash.as_ref().is_some_and(|h| h.matches(&SecretToken::from_presented(s).hash())) =>
        {
            Some(SecretToken::from_presented(s))
        }
        Some(_) => {
            return BackChannel::new(OAuthError::invalid_client_metadata(
                "client_secret does not match the current secret",
            ))
            .into_response();
        }
    };
    let reg = match Registration::parse(&doc, &state.settings) {
        Ok(r) => r,
        Err(e) => return BackChannel::new(e).into_response(),
    };
    if let Err(e) = reg.check_sector(&state.settings).await {
        return BackChannel::new(e).into_response();
    }
    let mut c = existing.clone();
    let shown = match secrets(&state, &mut c, reg.auth_method, presented_secret) {
        Ok(s) => s,
        Err(e) => return BackChannel::new(e).into_response(),
    };
    reg.apply(&mut c);
    c.updated_at = state.now();
    let updated = state.store.update_client(&c).await;
    state.clients.forget(&c.client_id);
    match updated {
        Ok(true) => {}
        Ok(false) => return bearer_refusal(&state, Presented::Token(token), "client deleted meanwhile"),
        Err(e) => return BackChannel::new(OAuthError::server_error(e)).into_response(),
    }
    audit(&state, "client.updated", &c.client_id, json!({"method": c.auth_method.as_str()})).await;
    let body =
        response::client_information(&state.settings, &c, shown.as_ref().map(SecretToken::expose), token.expose());
    no_store_json(StatusCode::OK, body)
}

/// Bring the client's secret in line with its (possibly new) authentication method. Returns
/// the secret to show: a new one, or the one the client presented.
fn secrets(
    state: &AppState,
    c: &mut Client,
    method: ClientAuthMethod,
    presented: Option<SecretToken>,
) -> Result<Option<SecretToken>, OAuthError> {
    if !method.uses_secret() {
        c.secret_hash = None;
        c.secret_enc = None;
        return Ok(None);
    }
    let had_secret = c.secret_hash.is_some() && c.auth_method.uses_secret();
    let mut shown = presented;
    if !had_secret {
        let fresh = SecretToken::generate();
        c.secret_hash = Some(fresh.hash());
        c.secret_enc = None;
        shown = Some(fresh);
    }
    if method != ClientAuthMethod::ClientSecretJwt {
        // Only client_secret_jwt needs the secret itself; everyone else keeps just the hash.
        c.secret_enc = None;
        return Ok(shown);
    }
    if c.secret_enc.is_some() && c.auth_method == ClientAuthMethod::ClientSecretJwt && had_secret {
        return Ok(shown);
    }
    // Switching to client_secret_jwt: the HMAC key must be kept, encrypted. Use the secret the
    // client just proved it holds, else issue a new one.
    let key = match shown {
        Some(s) => s,
        None => {
            let fresh = SecretToken::generate();
            c.secret_hash = Some(fresh.hash());
            fresh
        }
    };
    c.secret_enc = Some(
        state
            .master
            .encrypt(key.expose().as_bytes(), &format!("client_secret:{}", c.client_id))
            .map_err(OAuthError::server_error)?,
    );
    Ok(Some(key))
}

pub async fn wrong_method() -> Response {
    crate::method_not_allowed("GET, PUT, DELETE", "the client configuration endpoint")
}
