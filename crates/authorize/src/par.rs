//! Pushed Authorization Requests (RFC 9126): `POST /par`, client-authenticated. The request is
//! validated as `/authorize` would, stored, and referenced by a one-time `request_uri`.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use latchkey_core::authz::ResponseMode;
use latchkey_core::{OAuthError, SecretToken};
use latchkey_storage::PushedRequest;
use latchkey_web::errors::no_store_json;
use latchkey_web::params::FormParams;
use latchkey_web::redirect::check_redirect_uri;
use latchkey_web::{AppState, BackChannel, client_auth};
use serde_json::{Map, Value, json};

use crate::request_object::{self, PAR_PREFIX};

pub const PAR_PATH: &str = "/par";

pub async fn post_par(State(state): State<AppState>, form: FormParams) -> Response {
    let basic_attempted = form.headers.contains_key(http::header::AUTHORIZATION);
    let params = match form.params {
        Ok(p) => p,
        Err(e) => {
            return BackChannel { error: OAuthError::invalid_request(e.describe()), basic_attempted }.into_response();
        }
    };
    let client = match client_auth::authenticate(&state, &form.headers, form.peer, &params, PAR_PATH).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    match push(&state, &client, params).await {
        Ok(r) => r,
        Err(e) => BackChannel::new(e).into_response(),
    }
}

async fn push(
    state: &AppState,
    client: &latchkey_core::model::Client,
    params: latchkey_web::Params,
) -> Result<Response, OAuthError> {
    // RFC 9126 §2.1: request_uri is not allowed in a pushed request.
    if params.contains("request_uri") {
        return Err(OAuthError::invalid_request("request_uri cannot be pushed"));
    }
    let (mut params, _) = request_object::resolve(state, client, params).await?;
    for k in ["client_secret", "client_assertion", "client_assertion_type"] {
        params.remove(k);
    }
    let openid = params.get("scope").is_some_and(latchkey_core::scope::is_openid);
    let checked = check_redirect_uri(client, params.get("redirect_uri"), openid)?;
    let mode = ResponseMode::parse(params.get("response_mode"));
    let state_param = params.get("state").map(str::to_owned);
    // Validate now, as /authorize will again when the reference is used.
    crate::authorize::validate(state, client, &params, &[], checked, state_param, mode, true)?;
    let mut stored = Map::new();
    for (k, v) in params.iter() {
        stored.insert(k.to_owned(), Value::String(v.to_owned()));
    }
    stored.insert("client_id".into(), Value::String(client.client_id.clone()));
    let reference = format!("{PAR_PREFIX}{}", SecretToken::generate().expose());
    let lifetime = state.settings.request_objects.par_lifetime;
    state
        .store
        .push_request(&PushedRequest {
            uri_hash: SecretToken::from_presented(&reference).hash(),
            client_id: client.client_id.clone(),
            params: Value::Object(stored).to_string(),
            expires_at: state.now() + lifetime,
        })
        .await
        .map_err(OAuthError::server_error)?;
    Ok(no_store_json(StatusCode::CREATED, json!({"request_uri": reference, "expires_in": lifetime})))
}
