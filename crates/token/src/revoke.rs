//! Token revocation (RFC 7009): `POST /revoke`, client-authenticated.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use latchkey_core::{OAuthError, SecretToken};
use latchkey_web::params::FormParams;
use latchkey_web::{AppState, BackChannel, client_auth};

use crate::access;

pub async fn post_revoke(State(state): State<AppState>, form: FormParams) -> Response {
    let basic_attempted = form.headers.contains_key(http::header::AUTHORIZATION);
    let params = match form.params {
        Ok(p) => p,
        Err(e) => {
            return BackChannel { error: OAuthError::invalid_request(e.describe()), basic_attempted }.into_response();
        }
    };
    let client = match client_auth::authenticate(&state, &form.headers, form.peer, &params, crate::REVOKE_PATH).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let resp = respond(&state, &client, &params).await;
    latchkey_web::cors::for_client(resp, &client)
}

async fn respond(state: &AppState, client: &latchkey_core::model::Client, params: &latchkey_web::Params) -> Response {
    let Some(token) = params.get("token") else {
        return BackChannel::new(OAuthError::invalid_request("token is required")).into_response();
    };
    // RFC 7009 §2.1: the hint speeds the search up but is not trusted.
    let refresh_first = params.get("token_type_hint") == Some("refresh_token");
    let outcome = if refresh_first {
        match revoke_refresh(state, &client.client_id, token).await {
            Ok(Found::No) => revoke_access(state, &client.client_id, token).await,
            other => other,
        }
    } else {
        match revoke_access(state, &client.client_id, token).await {
            Ok(Found::No) => revoke_refresh(state, &client.client_id, token).await,
            other => other,
        }
    };
    match outcome {
        // RFC 7009 §2.2: 200 for revoked, unknown and already revoked tokens alike.
        Ok(Found::Revoked | Found::No) => {
            let mut r = StatusCode::OK.into_response();
            r.headers_mut().insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
            r
        }
        // RFC 7009 §2.1: a token of another client is refused.
        Ok(Found::OtherClient) => {
            BackChannel::new(OAuthError::unauthorized_client("the token was not issued to this client")).into_response()
        }
        Err(e) => BackChannel::new(OAuthError::server_error(e)).into_response(),
    }
}

enum Found {
    Revoked,
    OtherClient,
    No,
}

async fn revoke_refresh(state: &AppState, client_id: &str, token: &str) -> Result<Found, latchkey_storage::StoreError> {
    let Some(view) = state.store.get_refresh_token(&SecretToken::from_presented(token).hash(), state.now()).await?
    else {
        return Ok(Found::No);
    };
    if view.grant.client_id != client_id {
        return Ok(Found::OtherClient);
    }
    // Revoking a refresh token revokes its whole family (RFC 7009 §2.1).
    state.store.revoke_grant(&view.grant.id, state.now()).await?;
    Ok(Found::Revoked)
}

async fn revoke_access(state: &AppState, client_id: &str, token: &str) -> Result<Found, latchkey_storage::StoreError> {
    let Some(valid) = access::validate(state, token).await? else { return Ok(Found::No) };
    if valid.client_id != client_id {
        return Ok(Found::OtherClient);
    }
    match &valid.jti {
        Some(jti) => state.store.revoke_jti(jti, valid.exp).await?,
        None => {
            state.store.delete_access_token(&SecretToken::from_presented(token).hash()).await?;
        }
    }
    Ok(Found::Revoked)
}
