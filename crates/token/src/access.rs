//! Access tokens: minting (opaque or RFC 9068 JWT) and validation, shared by the grants,
//! UserInfo, introspection and revocation.

use latchkey_core::claims::MembershipClaims;
use latchkey_core::model::{AccessTokenFormat, Client};
use latchkey_core::scope::Scope;
use latchkey_core::{OAuthError, SecretToken, UnixTime};
use latchkey_storage::{AccessTokenRecord, GrantRecord, StoreError};
use latchkey_web::AppState;
use serde_json::{Value, json};

use crate::memberships::Resolved;

pub const AT_JWT_TYP: &str = "at+jwt";

/// What a new access token is about.
pub struct Subject<'a> {
    pub client: &'a Client,
    /// None for client credentials.
    pub grant: Option<&'a GrantRecord>,
    pub scope: &'a str,
    pub audience: &'a str,
    /// For a JWT whose scope holds `groups` or `roles`: the user's memberships, which it
    /// carries (RFC 9068 §2.2.3.1). Opaque tokens carry nothing.
    pub memberships: Option<&'a Resolved>,
}

pub struct Minted {
    pub token: String,
    /// Opaque tokens are stored (as a hash); JWTs are not.
    pub record: Option<AccessTokenRecord>,
    pub expires_in: i64,
}

pub fn format_for(state: &AppState, client: &Client) -> AccessTokenFormat {
    client
        .access_token_format
        .unwrap_or_else(|| state.settings.access_token_format().unwrap_or(AccessTokenFormat::Opaque))
}

pub fn mint(state: &AppState, s: &Subject<'_>, now: UnixTime) -> Result<Minted, OAuthError> {
    let lifetime = state.settings.lifetimes.access_token;
    match format_for(state, s.client) {
        AccessTokenFormat::Opaque => {
            let t = SecretToken::generate();
            Ok(Minted {
                record: Some(AccessTokenRecord {
                    token_hash: t.hash(),
                    grant_id: s.grant.map(|g| g.id.clone()),
                    client_id: s.client.client_id.clone(),
                    scope: s.scope.to_owned(),
                    audience: Some(s.audience.to_owned()),
                    created_at: now,
                    expires_at: now + lifetime,
                }),
                token: t.expose().to_owned(),
                expires_in: lifetime,
            })
        }
        AccessTokenFormat::Jwt => {
            let random: String = SecretToken::generate().expose().chars().take(22).collect();
            // The jti names the grant, so revoking the grant revokes its JWTs too.
            let jti = match s.grant {
                Some(g) => format!("{}.{random}", g.id),
                None => random,
            };
            // RFC 9068 §2.2.
            let mut claims = json!({
                "iss": state.settings.issuer,
                "exp": now + lifetime,
                "iat": now,
                "aud": s.audience,
                "client_id": s.client.client_id,
                "jti": jti,
            });
            if let Some(o) = claims.as_object_mut() {
                match s.grant.and_then(|g| g.user_id.as_deref()) {
                    Some(u) => o.insert("sub".into(), json!(latchkey_web::subject::for_client(state, s.client, u))),
                    None => o.insert("sub".into(), json!(s.client.client_id)),
                };
                if !s.scope.is_empty() {
                    o.insert("scope".into(), json!(s.scope));
                }
                if let Some(t) = s.grant.and_then(|g| g.auth_time) {
                    o.insert("auth_time".into(), json!(t));
                }
                if let Some(a) = s.grant.and_then(|g| g.acr.clone()) {
                    o.insert("acr".into(), json!(a));
                }
                let wanted = MembershipClaims::for_scope(&Scope::parse(s.scope).unwrap_or_default());
                if wanted.any() {
                    s.memberships
                        .ok_or_else(|| OAuthError::server_error("membership claims were not resolved for this token"))?
                        .insert(o, wanted)?;
                }
            }
            let alg = state.settings.access_token_alg().map_err(OAuthError::server_error)?;
            let signed = state.keys.sign(alg, AT_JWT_TYP, &claims, now).map_err(OAuthError::server_error)?;
            Ok(Minted { token: signed.token, record: None, expires_in: lifetime })
        }
    }
}

/// A valid (active) access token, whichever its format.
#[derive(Debug, Clone)]
pub struct ValidToken {
    pub client_id: String,
    pub grant: Option<GrantRecord>,
    pub scope: String,
    pub audience: Option<String>,
    pub iat: UnixTime,
    pub exp: UnixTime,
    /// For JWTs: the jti (revocation records it).
    pub jti: Option<String>,
}

impl ValidToken {
    pub fn user_id(&self) -> Option<&str> {
        self.grant.as_ref().and_then(|g| g.user_id.as_deref())
    }
}

fn looks_like_jwt(t: &str) -> bool {
    t.split('.').count() == 3
}

/// Is this a live access token we issued? `Ok(None)` for anything else (unknown, expired,
/// revoked, forged, an ID token).
pub async fn validate(state: &AppState, token: &str) -> Result<Option<ValidToken>, StoreError> {
    let now = state.now();
    if !looks_like_jwt(token) {
        if token.len() > 256 {
            return Ok(None);
        }
        return Ok(state.store.get_access_token(&SecretToken::from_presented(token).hash(), now).await?.map(|v| {
            ValidToken {
                client_id: v.client_id,
                grant: v.grant,
                scope: v.scope,
                audience: v.audience,
                iat: v.created_at,
                exp: v.expires_at,
                jti: None,
            }
        }));
    }
    let Ok(claims) = state.keys.verify_typed(token, AT_JWT_TYP) else { return Ok(None) };
    let str_claim = |k: &str| claims.get(k).and_then(Value::as_str).map(str::to_owned);
    let int_claim = |k: &str| claims.get(k).and_then(Value::as_i64);
    if str_claim("iss").as_deref() != Some(state.settings.issuer.as_str()) {
        return Ok(None);
    }
    let (Some(exp), Some(iat), Some(jti), Some(client_id)) =
        (int_claim("exp"), int_claim("iat"), str_claim("jti"), str_claim("client_id"))
    else {
        return Ok(None);
    };
    if exp <= now || state.store.is_jti_revoked(&jti).await? {
        return Ok(None);
    }
    let grant = match jti.split_once('.') {
        Some((grant_id, _)) => match state.store.get_live_grant(grant_id).await? {
            Some(g) => Some(g),
            None => return Ok(None), // the grant was revoked: so are its JWTs
        },
        None => None,
    };
    Ok(Some(ValidToken {
        client_id,
        grant,
        scope: str_claim("scope").unwrap_or_default(),
        audience: str_claim("aud"),
        iat,
        exp,
        jti: Some(jti),
    }))
}
