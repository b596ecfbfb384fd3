//! `grant_type=authorization_code` (RFC 6749 §4.1.3, RFC 7636 §4.6, OIDC Core §3.1.3.2).

use axum::response::Response;
use http::StatusCode;
use latchkey_core::claims::MembershipClaims;
use latchkey_core::model::{AccessTokenFormat, Client};
use latchkey_core::pkce::CodeChallenge;
use latchkey_core::scope::Scope;
use latchkey_core::{OAuthError, SecretToken};
use latchkey_storage::{RedeemedCode, Redemption, TokensToStore};
use latchkey_web::AppState;
use latchkey_web::errors::no_store_json;
use latchkey_web::params::Params;
use serde_json::json;
use std::sync::{Arc, Mutex};

use crate::memberships::Resolved;
use crate::{access, id_token, refresh};

pub async fn exchange(state: &AppState, client: &Arc<Client>, params: &Params) -> Result<Response, OAuthError> {
    let code = params.get("code").ok_or_else(|| OAuthError::invalid_request("code is required"))?;
    let now = state.now();
    let audience = state.settings.default_audience().to_owned();
    // An opaque access token is stored with the code's claim, so it is minted inside the
    // transaction; a JWT is not stored, and is minted after it, once the memberships it may
    // carry are resolved.
    let opaque = access::format_for(state, client) == AccessTokenFormat::Opaque;
    // Minted inside the decision (it needs the grant), kept here for the response. The
    // decision owns what it uses: on SQLite it runs on the writer thread.
    type Minted = Option<(Option<access::Minted>, Option<SecretToken>)>;
    let minted: Arc<Mutex<Minted>> = Arc::default();
    let decide = {
        let (state, client, params, minted) = (state.clone(), client.clone(), params.clone(), minted.clone());
        let audience = audience.clone();
        move |r: &RedeemedCode| -> Result<TokensToStore, OAuthError> {
            check(&client, &params, r)?;
            let at = if opaque {
                let subject = access::Subject {
                    client: &client,
                    grant: Some(&r.grant),
                    scope: &r.grant.scope,
                    audience: &audience,
                    memberships: None,
                };
                Some(access::mint(&state, &subject, now)?)
            } else {
                None
            };
            let refresh = refresh::issues_refresh(&client, &r.grant.scope).then(SecretToken::generate);
            let out = TokensToStore {
                access: at.as_ref().and_then(|a| a.record.clone()),
                refresh: refresh.as_ref().map(|t| refresh::record(&state, &client, t, &r.grant, &r.grant.scope, now)),
            };
            if let Ok(mut m) = minted.lock() {
                *m = Some((at, refresh));
            }
            Ok(out)
        }
    };
    // One transaction: claim the code, check it, store the tokens.
    let redeemed = match state.store.redeem_code(&SecretToken::from_presented(code).hash(), now, Box::new(decide)).await
    {
        Ok(Redemption::Redeemed(r)) => r,
        Ok(Redemption::Refused(e)) => {
            let kind = "authorization_code.refused";
            latchkey_web::audit::token_refused(state, kind, &client.client_id, e.description()).await;
            return Err(e);
        }
        Ok(Redemption::Replayed { grant_id }) => {
            tracing::warn!(grant_id = %grant_id, client_id = %client.client_id, "authorization code reused; its tokens are revoked");
            latchkey_web::audit::token_reuse(state, "authorization_code.reused", &client.client_id, &grant_id).await;
            return Err(OAuthError::invalid_grant("the authorization code was already used"));
        }
        Ok(Redemption::Expired) => return Err(OAuthError::invalid_grant("the authorization code has expired")),
        Ok(Redemption::Unknown) => return Err(OAuthError::invalid_grant("the authorization code is not valid")),
        Err(e) => return Err(OAuthError::server_error(e)),
    };
    let Some((at, refresh)) = minted.lock().ok().and_then(|mut m| m.take()) else {
        return Err(OAuthError::server_error("redeemed without minting"));
    };
    let grant = &redeemed.grant;
    let with_id_token = grant.scope.split(' ').any(|s| s == "openid");
    // One query at most for the groups and roles of every token in this response.
    let mut wanted = MembershipClaims::default();
    if at.is_none() {
        wanted = wanted.union(MembershipClaims::for_scope(&Scope::parse(&grant.scope).unwrap_or_default()));
    }
    if with_id_token {
        wanted = wanted.union(id_token::membership_claims(client, grant));
    }
    let memberships = Resolved::load(state, grant.user_id.as_deref(), &client.client_id, wanted).await?;
    let at = match at {
        Some(at) => at,
        None => {
            let subject = access::Subject {
                client,
                grant: Some(grant),
                scope: &grant.scope,
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
        "scope": grant.scope,
    });
    if let Some(o) = body.as_object_mut() {
        if let Some(r) = &refresh {
            o.insert("refresh_token".into(), json!(r.expose()));
        }
        if with_id_token {
            let token =
                id_token::issue(state, client, grant, redeemed.nonce.as_deref(), Some(&at.token), &memberships, now)
                    .await?;
            o.insert("id_token".into(), json!(token));
        }
    }
    crate::count_issued("authorization_code", refresh.is_some(), with_id_token);
    Ok(no_store_json(StatusCode::OK, body))
}

/// The checks on a claimed code, in RFC order.
fn check(client: &Client, params: &Params, redeemed: &RedeemedCode) -> Result<(), OAuthError> {
    // RFC 6749 §4.1.3: the code was issued to the authenticated client.
    if redeemed.grant.client_id != client.client_id {
        return Err(OAuthError::invalid_grant("the authorization code was issued to another client"));
    }
    // RFC 6749 §4.1.3: redirect_uri must equal the one sent to /authorize, if one was sent.
    if let Some(expected) = &redeemed.redirect_uri
        && params.get("redirect_uri") != Some(expected.as_str())
    {
        return Err(OAuthError::invalid_grant("redirect_uri does not match the authorization request"));
    }
    // RFC 7636 §4.6, RFC 9700 §2.1.1: a verifier must match the stored challenge, and a
    // verifier without a stored challenge is refused (no downgrade).
    match (&redeemed.code_challenge, params.get("code_verifier")) {
        (Some(c), Some(v)) => {
            if !CodeChallenge::from_stored(c.clone()).verify(v) {
                return Err(OAuthError::invalid_grant("code_verifier does not match the code_challenge"));
            }
        }
        (Some(_), None) => return Err(OAuthError::invalid_grant("code_verifier is required")),
        (None, Some(_)) => {
            return Err(OAuthError::invalid_grant(
                "code_verifier sent but no code_challenge was in the authorization request",
            ));
        }
        (None, None) => {
            if client.is_public() {
                return Err(OAuthError::invalid_grant("public clients must use PKCE"));
            }
        }
    }
    Ok(())
}
