//! `POST /token`: parse, authenticate the client, dispatch by grant type, render. Errors are
//! RFC 6749 §5.2 JSON.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use latchkey_core::model::GrantType;
use latchkey_core::{ErrorCode, OAuthError};
use latchkey_web::params::{FormParams, ParamError};
use latchkey_web::{AppState, BackChannel, client_auth};

use crate::{authorization_code, client_credentials, refresh};

pub async fn post_token(State(state): State<AppState>, form: FormParams) -> Response {
    let basic_attempted = form.headers.contains_key(http::header::AUTHORIZATION);
    let params = match form.params {
        Ok(p) => p,
        Err(e @ ParamError::WrongContentType) | Err(e) => {
            return BackChannel { error: OAuthError::invalid_request(e.describe()), basic_attempted }.into_response();
        }
    };
    let client = match client_auth::authenticate(&state, &form.headers, form.peer, &params, crate::TOKEN_PATH).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let grant = match params.get("grant_type") {
        None => return BackChannel::new(OAuthError::invalid_request("grant_type is required")).into_response(),
        Some(g) => match g.parse::<GrantType>() {
            Ok(g) => g,
            Err(_) => {
                return BackChannel::new(OAuthError::new(ErrorCode::UnsupportedGrantType, "unsupported grant_type"))
                    .into_response();
            }
        },
    };
    if !client.allows_grant(grant) {
        return BackChannel::new(OAuthError::unauthorized_client("the client is not registered for this grant type"))
            .into_response();
    }
    let result = match grant {
        GrantType::AuthorizationCode => authorization_code::exchange(&state, &client, &params).await,
        GrantType::RefreshToken => refresh::exchange(&state, &client, &params).await,
        GrantType::ClientCredentials => client_credentials::exchange(&state, &client, &params).await,
    };
    // The client is known: its web origins may read the answer (CORS), errors included.
    let resp = match result {
        Ok(r) => r,
        Err(e) => BackChannel::new(e).into_response(),
    };
    latchkey_web::cors::for_client(resp, &client)
}

/// RFC 6749 §3.2: the token endpoint is POST only.
pub async fn wrong_method() -> Response {
    let mut r = BackChannel::new(OAuthError::invalid_request("the token endpoint accepts POST only")).into_response();
    *r.status_mut() = http::StatusCode::METHOD_NOT_ALLOWED;
    r.headers_mut().insert(http::header::ALLOW, http::HeaderValue::from_static("POST"));
    r
}
