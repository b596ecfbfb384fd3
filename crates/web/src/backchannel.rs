//! OpenID Connect Back-Channel Logout 1.0: when a session ends, every client that received
//! tokens in it and registered a `backchannel_logout_uri` is owed a logout token. The tokens are
//! signed here and put in the durable outbox (`logout_outbox`); the binary's delivery job
//! POSTs them, retrying with backoff, so a restart loses nothing.

use latchkey_core::model::SigningAlg;
use latchkey_core::{OAuthError, SecretToken, Settings, UnixTime};
use latchkey_signer::KeyRing;
use latchkey_storage::{OutboxItem, Store};
use serde_json::json;
use std::collections::HashMap;

/// OIDC Back-Channel Logout §2.4: the `events` member that makes a JWT a logout token.
pub const LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// OIDC Back-Channel Logout §2.4: logout tokens are explicitly typed.
pub const LOGOUT_TOKEN_TYP: &str = "logout+jwt";
/// Lifetime of a logout token: it only has to survive delivery (§2.4 "short"); retries of an
/// older item carry the token as signed, and relying parties may accept a little skew.
pub const LOGOUT_TOKEN_LIFETIME: i64 = 120;

/// Session `sid` of user `user_id` ended: queue a logout token for each client that took part.
/// `pairwise_salt` gives pairwise clients the `sub` they know. Returns how many were queued.
pub async fn session_ended(
    store: &dyn Store,
    keys: &KeyRing,
    settings: &Settings,
    pairwise_salt: &[u8],
    sid: &str,
    user_id: &str,
    now: UnixTime,
) -> Result<usize, OAuthError> {
    let clients = store.take_session_clients(sid).await.map_err(OAuthError::server_error)?;
    let pairs: Vec<(String, String)> = clients.into_iter().map(|c| (sid.to_owned(), c)).collect();
    enqueue(store, keys, settings, pairwise_salt, &pairs, user_id, now).await
}

/// Every session of `user_id` ended (sign out everywhere, new password, removal): queue a logout
/// token per session and client that took part. Returns how many were queued.
pub async fn user_sessions_ended(
    store: &dyn Store,
    keys: &KeyRing,
    settings: &Settings,
    pairwise_salt: &[u8],
    user_id: &str,
    now: UnixTime,
) -> Result<usize, OAuthError> {
    let pairs = store.take_user_session_clients(user_id).await.map_err(OAuthError::server_error)?;
    enqueue(store, keys, settings, pairwise_salt, &pairs, user_id, now).await
}

async fn enqueue(
    store: &dyn Store,
    keys: &KeyRing,
    settings: &Settings,
    pairwise_salt: &[u8],
    pairs: &[(String, String)],
    user_id: &str,
    now: UnixTime,
) -> Result<usize, OAuthError> {
    let mut clients = HashMap::new();
    let mut items = Vec::new();
    for (sid, client_id) in pairs {
        if !clients.contains_key(client_id) {
            let c = store.get_client(client_id).await.map_err(OAuthError::server_error)?;
            clients.insert(client_id.clone(), c);
        }
        // A client removed since, or one without a back-channel endpoint, is owed nothing.
        let Some(Some(client)) = clients.get(client_id) else { continue };
        let Some(uri) = client.backchannel_logout_uri.as_deref().filter(|u| !u.is_empty()) else { continue };
        let alg = client
            .id_token_signed_response_alg
            .or_else(|| settings.default_signing_alg().ok())
            .unwrap_or(SigningAlg::RS256);
        // Back-Channel Logout §2.4: `sub` as in the client's ID tokens (pairwise clients' own).
        let sub = crate::subject::with_salt(pairwise_salt, client, user_id);
        let claims = logout_claims(settings, client_id, &sub, sid, &SecretToken::generate(), now);
        let signed = keys.sign(alg, LOGOUT_TOKEN_TYP, &claims, now).map_err(OAuthError::server_error)?;
        items.push(OutboxItem {
            id: 0,
            client_id: client_id.clone(),
            uri: uri.to_owned(),
            logout_token: signed.token,
            attempts: 0,
            next_attempt_at: now,
            created_at: now,
        });
    }
    if !items.is_empty() {
        store.enqueue_logouts(&items).await.map_err(OAuthError::server_error)?;
        tracing::info!(count = items.len(), "back-channel logouts queued");
    }
    Ok(items.len())
}

/// The token to deliver now: the stored one while it has time left, else the same claims (same
/// `jti`: it is the same logout event) with a fresh `iat`/`exp`, so a retry after backoff is
/// not refused as expired (§2.6: the RP validates `exp` as for ID tokens). A stored token we
/// can no longer verify (its key is gone) is sent as stored.
pub fn token_for_delivery(keys: &KeyRing, stored: &str, now: UnixTime) -> String {
    let Ok(mut claims) = keys.verify_typed(stored, LOGOUT_TOKEN_TYP) else { return stored.to_owned() };
    let exp = claims.get("exp").and_then(serde_json::Value::as_i64).unwrap_or(0);
    if exp > now + LOGOUT_TOKEN_LIFETIME / 2 {
        return stored.to_owned();
    }
    let Some(alg) = header_alg(stored) else { return stored.to_owned() };
    claims.insert("iat".into(), json!(now));
    claims.insert("exp".into(), json!(now + LOGOUT_TOKEN_LIFETIME));
    match keys.sign(alg, LOGOUT_TOKEN_TYP, &serde_json::Value::Object(claims), now) {
        Ok(t) => t.token,
        Err(e) => {
            tracing::warn!(error = %e, "re-signing a logout token failed; sending it as stored");
            stored.to_owned()
        }
    }
}

/// The `alg` of a compact JWS header.
fn header_alg(token: &str) -> Option<SigningAlg> {
    use base64::Engine;
    let h = token.split('.').next()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(h).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v.get("alg")?.as_str()?.parse().ok()
}

/// OIDC Back-Channel Logout §2.4: iss, aud, iat, exp, jti, events, and `sub` and `sid` (we
/// always know both; `sid` is what `backchannel_logout_session_required` asks for). A logout
/// token MUST NOT contain a `nonce` (§2.4), so it can never pass for an ID token.
fn logout_claims(
    settings: &Settings,
    client_id: &str,
    sub: &str,
    sid: &str,
    jti: &SecretToken,
    now: UnixTime,
) -> serde_json::Value {
    json!({
        "iss": settings.issuer,
        "aud": client_id,
        "iat": now,
        "exp": now + LOGOUT_TOKEN_LIFETIME,
        "jti": jti.expose(),
        "sub": sub,
        "sid": sid,
        "events": { LOGOUT_EVENT: {} },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use latchkey_core::model::{Client, SubjectType};

    #[test]
    fn pairwise_clients_get_their_pairwise_sub() {
        let salt = [3u8; 32];
        let mut c = Client {
            client_id: "rp".into(),
            redirect_uris: vec!["https://rp.example/cb".into()],
            ..Default::default()
        };
        assert_eq!(crate::subject::with_salt(&salt, &c, "user-1"), "user-1");
        c.subject_type = SubjectType::Pairwise;
        let state_free = crate::subject::with_salt(&salt, &c, "user-1");
        assert_ne!(state_free, "user-1");
        assert_eq!(state_free, crate::subject::pairwise(&salt, "rp.example", "user-1"));
    }

    #[test]
    fn logout_claims_follow_section_2_4() {
        let s = Settings::default();
        let c = logout_claims(&s, "rp", "user-1", "sid-1", &SecretToken::generate(), 1000);
        assert_eq!(c["iss"], s.issuer);
        assert_eq!(c["aud"], "rp");
        assert_eq!(c["sub"], "user-1");
        assert_eq!(c["sid"], "sid-1");
        assert_eq!(c["iat"], 1000);
        assert_eq!(c["exp"], 1000 + LOGOUT_TOKEN_LIFETIME);
        assert!(c["jti"].as_str().is_some_and(|j| j.len() >= 32));
        assert_eq!(c["events"][LOGOUT_EVENT], json!({}));
        assert!(c.get("nonce").is_none());
    }
}
