//! `grant_type=refresh_token` (RFC 6749 §6) with rotation on every use and reuse detection
//! (RFC 9700 §4.14.2), and the policy for issuing refresh tokens at all.

use axum::response::Response;
use http::StatusCode;
use latchkey_core::claims::MembershipClaims;
use latchkey_core::model::{AccessTokenFormat, Client, GrantType};
use latchkey_core::scope::Scope;
use latchkey_core::{OAuthError, SecretToken, UnixTime};
use latchkey_storage::{GrantRecord, RefreshTokenRecord, Rotation, TokensToStore};
use latchkey_web::AppState;
use latchkey_web::errors::no_store_json;
use latchkey_web::params::Params;
use serde_json::json;

use crate::memberships::Resolved;
use crate::{access, id_token};

/// Refresh tokens go only to clients registered for the grant, and only when the user granted
/// `offline_access` (OIDC Core §11) or the client's policy allows refresh without it.
pub fn issues_refresh(client: &Client, scope: &str) -> bool {
    client.allows_grant(GrantType::RefreshToken)
        && (client.refresh_without_offline_access || scope.split(' ').any(|s| s == "offline_access"))
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
    let now = state.now();
    let audience = state.settings.default_audience().to_owned();
    // As for codes: an opaque access token is stored in the rotation's transaction; a JWT is
    // minted after it, once the memberships it may carry are resolved.
    let opaque = access::format_for(state, client) == AccessTokenFormat::Opaque;
    type Minted = Option<(Option<access::Minted>, SecretToken, String)>;
    let minted: std::sync::Arc<std::sync::Mutex<Minted>> = std::sync::Arc::default();
    // The decision owns what it uses: on SQLite it runs on the writer thread.
    let decide = {
        let (state, client, minted) = (state.clone(), client.clone(), minted.clone());
        let audience = audience.clone();
        move |grant: &GrantRecord, refresh_scope: &str| -> Result<TokensToStore, OAuthError> {
            if grant.client_id != client.client_id {
                return Err(OAuthError::invalid_grant("the refresh token was issued to another client"));
            }
            // RFC 6749 §6: the scope may narrow, never widen.
            let original = Scope::parse(refresh_scope).unwrap_or_default();
            let scope = match &asked {
                Some(a) if !a.is_subset(&original) => {
                    return Err(OAuthError::invalid_scope("the requested scope exceeds the original grant"));
                }
                Some(a) => a.to_string(),
                None => refresh_scope.to_owned(),
            };
            let at = if opaque {
                let subject = access::Subject {
                    client: &client,
                    grant: Some(grant),
                    scope: &scope,
                    audience: &audience,
                    memberships: None,
                };
                Some(access::mint(&state, &subject, now)?)
            } else {
                None
            };
            let next = SecretToken::generate();
            // RFC 6749 §6: the new refresh token keeps the original scope.
            let out = TokensToStore {
                access: at.as_ref().and_then(|a| a.record.clone()),
                refresh: Some(record(&state, &client, &next, grant, refresh_scope, now)),
            };
            if let Ok(mut m) = minted.lock() {
                *m = Some((at, next, scope));
            }
            Ok(out)
        }
    };
    let grant = match state
        .store
        .rotate_refresh(&SecretToken::from_presented(presented).hash(), now, Box::new(decide))
        .await
    {
        Ok(Rotation::Rotated { grant, .. }) => grant,
        Ok(Rotation::Refused(e)) => {
            latchkey_web::audit::token_refused(state, "refresh_token.refused", &client.client_id, e.description())
                .await;
            return Err(e);
        }
        Ok(Rotation::Replayed { grant_id }) => {
            metrics::counter!("refresh_reuse_detected_total").increment(1);
            tracing::warn!(grant_id = %grant_id, client_id = %client.client_id, "refresh token reuse detected; the token family is revoked");
            latchkey_web::audit::token_reuse(state, "refresh_token.reused", &client.client_id, &grant_id).await;
            return Err(OAuthError::invalid_grant("the refresh token was already used"));
        }
        Ok(Rotation::Expired) => return Err(OAuthError::invalid_grant("the refresh token has expired")),
        Ok(Rotation::Unknown) => return Err(OAuthError::invalid_grant("the refresh token is not valid")),
        Err(e) => return Err(OAuthError::server_error(e)),
    };
    let Some((at, next, scope)) = minted.lock().ok().and_then(|mut m| m.take()) else {
        return Err(OAuthError::server_error("rotated without minting"));
    };
    // OIDC Core §12.2: an ID token on refresh keeps sub and auth_time and has no nonce.
    let with_id_token = scope.split(' ').any(|s| s == "openid");
    // The groups and roles as they are now (a grant or revocation since the last refresh shows
    // here): one query at most for both tokens.
    let mut wanted = MembershipClaims::default();
    if at.is_none() {
        wanted = wanted.union(MembershipClaims::for_scope(&Scope::parse(&scope).unwrap_or_default()));
    }
    if with_id_token {
        wanted = wanted.union(id_token::membership_claims(client, &grant));
    }
    let memberships = Resolved::load(state, grant.user_id.as_deref(), &client.client_id, wanted).await?;
    let at = match at {
        Some(at) => at,
        None => {
            let subject = access::Subject {
                client,
                grant: Some(&grant),
                scope: &scope,
                audience: &audience,
                memberships: Some(&memberships),
            };
            access::mint(state, &subject, now)?
        }
    };
    let mut body = json!({
        "access_token": at.token,
        "token_type": "Bearer",
        "expires_in": at.expires_in,
        "scope": scope,
        "refresh_token": next.expose(),
    });
    if with_id_token && let Some(o) = body.as_object_mut() {
        let token = id_token::issue(state, client, &grant, None, Some(&at.token), &memberships, now).await?;
        o.insert("id_token".into(), json!(token));
    }
    crate::count_issued("refresh_token", true, with_id_token);
    Ok(no_store_json(StatusCode::OK, body))
}
