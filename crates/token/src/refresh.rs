//! `grant_type=refresh_token` (RFC 6749 §6) with rotation on every use and reuse detection
//! (RFC 9700 §4.14.2), and the policy for issuing refresh tokens at all.

use axum::response::Response;
use latchkey_core::model::{Client, GrantType};
use latchkey_core::scope::Scope;
use latchkey_core::single_use::Kind;
use latchkey_core::{OAuthError, SecretToken, UnixTime};
use latchkey_storage::{GrantRecord, RefreshTokenRecord};
use latchkey_web::AppState;
use latchkey_web::params::Params;

use crate::issue;

/// Refresh tokens go only to clients registered for the grant, and only when the user granted
/// `offline_access` (OIDC Core §11) or the client's policy allows refresh without it.
pub fn issues_refresh(client: &Client, scope: &str) -> bool {
    client.allows_grant(GrantType::RefreshToken)
        && (client.refresh_without_offline_access || latchkey_core::scope::holds(scope, "offline_access"))
}

/// A new refresh token of `grant`: idle lifetime from now, never past the grant's absolute end.
pub fn record(
    state: &AppState,
    client: &Client,
    t: &SecretToken,
    grant: &GrantRecord,
    scope: &str,
    now: UnixTime,
) -> RefreshTokenRecord {
    let (_, idle) = state.settings.refresh_lifetimes(client.is_public());
    RefreshTokenRecord {
        token_hash: t.hash(),
        grant_id: grant.id.clone(),
        scope: scope.to_owned(),
        created_at: now,
        expires_at: (now + idle).min(grant.expires_at),
    }
}

pub async fn exchange(
    state: &AppState,
    client: &std::sync::Arc<Client>,
    params: &Params,
) -> Result<Response, OAuthError> {
    let presented =
        params.get("refresh_token").ok_or_else(|| OAuthError::invalid_request("refresh_token is required"))?;
    let asked = match params.get("scope") {
        Some(s) => Some(Scope::parse(s).map_err(OAuthError::invalid_scope)?),
        None => None,
    };
    let p = issue::presented(state, client, params, asked.as_ref());
    issue::redeem(state, client, Kind::RefreshToken, presented, &p).await
}
