//! `grant_type=authorization_code` (RFC 6749 §4.1.3, RFC 7636 §4.6, OIDC Core §3.1.3.2).
//!
//! The checks on the code (its client, redirect URI, PKCE verifier, state) are the state
//! machine's (`latchkey_core::single_use`); this module only reads the request.

use axum::response::Response;
use latchkey_core::OAuthError;
use latchkey_core::model::Client;
use latchkey_core::single_use::Kind;
use latchkey_web::AppState;
use latchkey_web::params::Params;
use std::sync::Arc;

use crate::issue;

pub async fn exchange(state: &AppState, client: &Arc<Client>, params: &Params) -> Result<Response, OAuthError> {
    let code = params.get("code").ok_or_else(|| OAuthError::invalid_request("code is required"))?;
    let presented = issue::presented(state, client, params, None);
    issue::redeem(state, client, Kind::AuthorizationCode, code, &presented).await
}
