//! `grant_type=client_credentials` (RFC 6749 §4.4): an access token for the client itself.

use axum::response::Response;
use http::StatusCode;
use latchkey_core::model::Client;
use latchkey_core::scope::{Scope, USER_SCOPES};
use latchkey_core::{ErrorCode, OAuthError};
use latchkey_storage::TokensToStore;
use latchkey_web::AppState;
use latchkey_web::errors::no_store_json;
use latchkey_web::params::Params;
use serde_json::json;

use crate::access;

pub async fn exchange(state: &AppState, client: &Client, params: &Params) -> Result<Response, OAuthError> {
    // RFC 6749 §4.4: confidential clients only.
    if !client.auth_method.is_confidential() {
        return Err(OAuthError::unauthorized_client("public clients cannot use client credentials"));
    }
    // User scopes (USER_SCOPES) describe a user; a client acting for itself cannot have them.
    let allowed = Scope::from_tokens(client.scopes.iter().filter(|s| !USER_SCOPES.contains(&s.as_str())).cloned());
    let scope = match params.get("scope") {
        None => allowed.clone(),
        Some(s) => {
            let asked = Scope::parse(s).map_err(OAuthError::invalid_scope)?;
            if !asked.is_subset(&allowed) {
                return Err(OAuthError::invalid_scope("the client may not request this scope"));
            }
            asked
        }
    };
    // RFC 8707: `resource` names the audience; only registered resources.
    let audience = match params.get("resource") {
        None => state.settings.default_audience().to_owned(),
        Some(r) => {
            let ok =
                url::Url::parse(r).is_ok_and(|u| u.fragment().is_none()) && client.resources.iter().any(|x| x == r);
            if !ok {
                return Err(OAuthError::new(
                    ErrorCode::InvalidTarget,
                    "the resource is not registered for this client",
                ));
            }
            r.to_owned()
        }
    };
    let now = state.now();
    let scope = scope.to_string();
    let at = access::mint(
        state,
        &access::Subject { client, grant: None, scope: &scope, audience: &audience, memberships: None },
        now,
    )?;
    if let Some(rec) = &at.record {
        state
            .store
            .store_tokens(&TokensToStore { access: Some(rec.clone()), refresh: None })
            .await
            .map_err(OAuthError::server_error)?;
    }
    crate::count_issued("client_credentials", false, false);
    let mut body = json!({ "access_token": at.token, "token_type": "Bearer", "expires_in": at.expires_in });
    if !scope.is_empty()
        && let Some(o) = body.as_object_mut()
    {
        o.insert("scope".into(), json!(scope));
    }
    Ok(no_store_json(StatusCode::OK, body))
}
