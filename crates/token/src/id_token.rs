//! ID tokens (OIDC Core §2, §3.1.3.6).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use latchkey_core::claims::{ClaimsRequest, MembershipClaims, select};
use latchkey_core::model::{Client, SigningAlg};
use latchkey_core::scope::Scope;
use latchkey_core::{OAuthError, UnixTime};
use latchkey_storage::GrantRecord;
use latchkey_web::AppState;
use serde_json::{Value, json};
use sha2::{Digest, Sha256, Sha512};

use crate::memberships::Resolved;

/// OIDC Core §3.1.3.6: the left half of the hash of the access token, with the hash of the
/// JWS algorithm (SHA-512 for Ed25519, as RFC 8037 EdDSA implementations do).
pub fn at_hash(alg: SigningAlg, access_token: &str) -> String {
    let digest: Vec<u8> = match alg {
        SigningAlg::RS256 | SigningAlg::PS256 | SigningAlg::ES256 => Sha256::digest(access_token.as_bytes()).to_vec(),
        SigningAlg::EdDSA => Sha512::digest(access_token.as_bytes()).to_vec(),
    };
    let half = digest.get(..digest.len() / 2).unwrap_or_default();
    URL_SAFE_NO_PAD.encode(half)
}

pub fn signing_alg(state: &AppState, client: &Client) -> SigningAlg {
    client
        .id_token_signed_response_alg
        .or_else(|| state.settings.default_signing_alg().ok())
        .unwrap_or(SigningAlg::RS256)
}

/// The `claims` parameter's `id_token` member of the grant's request.
fn requested(grant: &GrantRecord) -> serde_json::Map<String, Value> {
    grant
        .claims
        .as_deref()
        .and_then(|c| serde_json::from_str::<Value>(c).ok())
        .map(|v| ClaimsRequest::from_json(&v).id_token)
        .unwrap_or_default()
}

/// The membership claims an ID token of this grant carries: `groups`/`roles` when the scope
/// holds them, or when the `claims` parameter asks for them in the ID token and the client may
/// have the scope. Unlike the profile claims (OIDC Core §5.4), they are in the ID token whatever
/// `id_token.scope_claims_in_id_token` says: they are what a relying party authorises with.
pub fn membership_claims(client: &Client, grant: &GrantRecord) -> MembershipClaims {
    MembershipClaims::for_scope(&Scope::parse(&grant.scope).unwrap_or_default())
        .with_requested(&requested(grant), &client.scopes)
}

/// `memberships` must cover [`membership_claims`] of the grant.
pub async fn issue(
    state: &AppState,
    client: &Client,
    grant: &GrantRecord,
    nonce: Option<&str>,
    access_token: Option<&str>,
    memberships: &Resolved,
    now: UnixTime,
) -> Result<String, OAuthError> {
    let user_id = grant.user_id.as_deref().ok_or_else(|| OAuthError::invalid_grant("the grant has no user"))?;
    let user = state
        .store
        .get_user(user_id)
        .await
        .map_err(OAuthError::server_error)?
        .ok_or_else(|| OAuthError::invalid_grant("the user no longer exists"))?;
    let alg = signing_alg(state, client);
    let scope = Scope::parse(&grant.scope).unwrap_or_default();
    let mut claims =
        select(&user, &scope, &requested(grant), state.settings.id_token.scope_claims_in_id_token, &client.scopes);
    memberships.insert(&mut claims, membership_claims(client, grant))?;
    let mut set = |k: &str, v: Value| {
        claims.insert(k.to_owned(), v);
    };
    set("iss", json!(state.settings.issuer));
    set("sub", json!(latchkey_web::subject::for_client(state, client, &user.id)));
    set("aud", json!(client.client_id));
    set("azp", json!(client.client_id));
    set("iat", json!(now));
    set("exp", json!(now + state.settings.lifetimes.id_token));
    if let Some(t) = grant.auth_time {
        set("auth_time", json!(t));
    }
    if let Some(n) = nonce {
        set("nonce", json!(n));
    }
    if let Some(a) = &grant.acr {
        set("acr", json!(a));
    }
    if !grant.amr.is_empty() {
        set("amr", json!(grant.amr));
    }
    if let Some(s) = &grant.sid {
        set("sid", json!(s));
    }
    if let Some(at) = access_token {
        set("at_hash", json!(at_hash(alg, at)));
    }
    let signed = state.keys.sign(alg, "JWT", &Value::Object(claims), now).map_err(OAuthError::server_error)?;
    Ok(signed.token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_hash_is_the_left_half_of_sha256() {
        // OIDC Core Appendix A.3: access token "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y" →
        // at_hash "77QmUPtjPfzWtF2AnpK9RQ".
        assert_eq!(at_hash(SigningAlg::RS256, "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"), "77QmUPtjPfzWtF2AnpK9RQ");
    }
}
