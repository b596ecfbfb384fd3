//! What the code and refresh grants share: the presentation of a single-use credential
//! (`latchkey_storage::single_use`), the minting of the whole response before the commit, and
//! the answer for each outcome.

use axum::response::Response;
use http::StatusCode;
use latchkey_core::claims::MembershipClaims;
use latchkey_core::model::Client;
use latchkey_core::scope::Scope;
use latchkey_core::single_use::{Kind, Presented, replay_error};
use latchkey_core::{OAuthError, SecretToken, UnixTime};
use latchkey_storage::single_use::{Outcome, present};
use latchkey_storage::{GrantRecord, TokensToStore};
use latchkey_web::AppState;
use latchkey_web::errors::no_store_json;
use serde_json::{Value, json};

use crate::memberships::Resolved;
use crate::{access, id_token, refresh};

/// Present `raw` (a code or a refresh token) for `client` and answer the token request.
pub async fn redeem(
    state: &AppState,
    client: &Client,
    kind: Kind,
    raw: &str,
    presented: &Presented<'_>,
) -> Result<Response, OAuthError> {
    let hash = SecretToken::from_presented(raw).hash();
    let now = presented.now;
    let outcome = present(&state.store, kind, &hash, presented, |stored, scope| {
        // A code's refresh token follows the client's policy; a refresh token's successor
        // keeps the original scope (RFC 6749 §6).
        let refresh_scope = match kind {
            Kind::AuthorizationCode => refresh::issues_refresh(client, &scope).then(|| scope.clone()),
            Kind::RefreshToken => Some(stored.scope.clone()),
        };
        let (grant, nonce) = (stored.grant.clone(), stored.nonce.clone());
        async move { mint(state, client, &grant, &scope, nonce.as_deref(), refresh_scope.as_deref(), now).await }
    })
    .await
    .map_err(OAuthError::server_error)?;
    answer(state, client, kind, outcome).await
}

/// Everything the response holds, made before anything is spent: the access token (signed if
/// a JWT), the refresh token, the ID token, and the memberships they carry (one query).
async fn mint(
    state: &AppState,
    client: &Client,
    grant: &GrantRecord,
    scope: &str,
    nonce: Option<&str>,
    refresh_scope: Option<&str>,
    now: UnixTime,
) -> Result<(TokensToStore, Value), OAuthError> {
    let audience = state.settings.default_audience().to_owned();
    let parsed = Scope::parse(scope).unwrap_or_default();
    // OIDC Core §12.2: an ID token on refresh too (keeping sub and auth_time, without nonce).
    let with_id_token = parsed.is_openid();
    let mut wanted = MembershipClaims::default();
    if access::format_for(state, client) == latchkey_core::model::AccessTokenFormat::Jwt {
        wanted = wanted.union(MembershipClaims::for_scope(&parsed));
    }
    if with_id_token {
        wanted = wanted.union(id_token::membership_claims(client, grant));
    }
    let memberships = Resolved::load(state, grant.user_id.as_deref(), &client.client_id, wanted).await?;
    let subject =
        access::Subject { client, grant: Some(grant), scope, audience: &audience, memberships: Some(&memberships) };
    let at = access::mint(state, &subject, now)?;
    let refresh = refresh_scope.map(|s| {
        let t = SecretToken::generate();
        let record = refresh::record(state, client, &t, grant, s, now);
        (t, record)
    });
    let mut body = json!({
        "access_token": at.token,
        "token_type": "Bearer",
        "expires_in": at.expires_in,
        "scope": scope,
    });
    if let Some(o) = body.as_object_mut() {
        if let Some((t, _)) = &refresh {
            o.insert("refresh_token".into(), json!(t.expose()));
        }
        if with_id_token {
            let token = id_token::issue(state, client, grant, nonce, Some(&at.token), &memberships, now).await?;
            o.insert("id_token".into(), json!(token));
        }
    }
    Ok((TokensToStore { access: at.record, refresh: refresh.map(|(_, r)| r) }, body))
}

/// The token endpoint's answer for each outcome.
async fn answer(
    state: &AppState,
    client: &Client,
    kind: Kind,
    outcome: Outcome<Value>,
) -> Result<Response, OAuthError> {
    match outcome {
        Outcome::Issued(body) => {
            let grant: &'static str = kind.as_str();
            crate::count_issued(grant, body.get("refresh_token").is_some(), body.get("id_token").is_some());
            Ok(no_store_json(StatusCode::OK, body))
        }
        Outcome::Refused(r) => {
            metrics::counter!("single_use_refused_total", "kind" => kind.as_str(), "reason" => r.as_str()).increment(1);
            if r.is_suspicious() {
                let event = format!("{}.refused", kind.as_str());
                latchkey_web::audit::token_refused(state, &event, &client.client_id, r.as_str()).await;
            }
            Err(r.error(kind))
        }
        Outcome::Replayed { grant_id } => {
            if kind == Kind::RefreshToken {
                metrics::counter!("refresh_reuse_detected_total").increment(1);
            }
            tracing::warn!(grant_id = %grant_id, client_id = %client.client_id, kind = kind.as_str(), "a spent credential was presented again; its grant is revoked");
            // Recorded whether or not the replayer waits for the answer.
            let (st, event, client_id, gid) =
                (state.clone(), format!("{}.reused", kind.as_str()), client.client_id.clone(), grant_id.clone());
            let recorded =
                tokio::spawn(async move { latchkey_web::audit::token_reuse(&st, &event, &client_id, &gid).await });
            let _ = recorded.await;
            Err(replay_error(kind))
        }
        Outcome::MintFailed(e) => Err(e),
    }
}

/// The presentation of a token request.
pub fn presented<'a>(
    state: &AppState,
    client: &'a Client,
    params: &'a latchkey_web::params::Params,
    scope: Option<&'a Scope>,
) -> Presented<'a> {
    Presented {
        client_id: &client.client_id,
        public_client: client.is_public(),
        redirect_uri: params.get("redirect_uri"),
        code_verifier: params.get("code_verifier"),
        scope,
        now: state.now(),
        refresh_retry_grace: state.settings.lifetimes.refresh_retry_grace,
    }
}
