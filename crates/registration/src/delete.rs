//! `DELETE /register/{client_id}` (RFC 7592 §2.3): the client and everything issued to it go.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use latchkey_core::OAuthError;
use latchkey_web::{AppState, BackChannel};
use serde_json::json;

use crate::{Presented, audit, bearer_refusal, managed_client};

pub async fn delete_client_configuration(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Response {
    let (client, token) = match managed_client(&state, path, &headers).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let deleted = state.store.delete_client(&client.client_id).await;
    state.clients.forget(&client.client_id);
    match deleted {
        Ok(true) => {}
        // Deleted meanwhile: the token no longer names a client (RFC 7592 §2.1).
        Ok(false) => return bearer_refusal(&state, Presented::Token(token), "client deleted meanwhile"),
        Err(e) => return BackChannel::new(OAuthError::server_error(e)).into_response(),
    }
    audit(&state, "client.removed", &client.client_id, json!({})).await;
    // RFC 7592 §2.3: 204 No Content.
    let mut r = StatusCode::NO_CONTENT.into_response();
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}
