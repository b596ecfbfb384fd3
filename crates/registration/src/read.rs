//! `GET /register/{client_id}` (RFC 7592 §2.1): the client's current registration.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::Response;
use http::{HeaderMap, StatusCode};
use latchkey_web::AppState;
use latchkey_web::errors::no_store_json;

use crate::{managed_client, response};

pub async fn get_client_configuration(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Response {
    let (client, token) = match managed_client(&state, path, &headers).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    // The secret is stored only as a hash, so it cannot be shown again (RFC 7591 §3.2.1: optional).
    no_store_json(StatusCode::OK, response::client_information(&state.settings, &client, None, token.expose()))
}
