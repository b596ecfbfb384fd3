//! Records the store keeps that only the server needs (the shared domain types live in core).

use latchkey_core::{TokenHash, UnixTime};

/// A signing key as stored: the public JWK in the clear, the private key encrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    pub kid: String,
    pub alg: String,
    pub public_jwk: String,
    /// Encrypted under the master key by the signer; opaque to the store.
    pub private_key: String,
    pub created_at: UnixTime,
    /// From this time on the key may sign.
    pub activates_at: UnixTime,
    /// From this time on the key no longer signs (a newer key took over); it stays published
    /// until every token it signed has expired.
    pub retired_at: Option<UnixTime>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub at: UnixTime,
    pub kind: String,
    pub actor: Option<String>,
    pub client_id: Option<String>,
    pub ip: Option<String>,
    /// JSON object; never a secret.
    pub detail: String,
}

/// Every value sealed under the master key, as stored: (kid, private key), (client id,
/// client_secret_jwt secret) and (meta key, value). Master-key rotation rewrites all of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SealedValues {
    pub keys: Vec<(String, String)>,
    pub client_secrets: Vec<(String, String)>,
    pub meta: Vec<(String, String)>,
}

/// Turns the values sealed under the old master key into the same values under the new one;
/// an `Err` (one line) aborts the rewrap.
pub type Reseal<'a> = &'a (dyn Fn(SealedValues) -> Result<SealedValues, String> + Send + Sync);

/// A browser session. The cookie holds a 256-bit secret; the store holds its hash.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    pub id_hash: TokenHash,
    /// Public session identifier, the `sid` claim.
    pub sid: String,
    pub user_id: String,
    pub auth_time: UnixTime,
    pub acr: Option<String>,
    pub amr: Vec<String>,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
}

/// A consent decision on a pending request, with the user and session that made it: it is
/// honoured only while that same session resumes the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InteractionConsent {
    pub granted: bool,
    pub user_id: String,
    pub sid: String,
}

/// A pending authorization request waiting for login, account choice or consent.
#[derive(Debug, Clone)]
pub struct InteractionRecord {
    pub id_hash: TokenHash,
    pub client_id: String,
    pub request: latchkey_core::authz::AuthorizationRequest,
    /// Hash of the browser-binding cookie of the browser that started the request: every page
    /// of the interaction and its resume answer only that browser.
    pub browser_hash: TokenHash,
    /// Session the user confirmed for this request (by logging in, or "continue as").
    pub login_sid: Option<String>,
    /// The answer of the consent page, bound to the user and session that gave it.
    pub consent: Option<InteractionConsent>,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
}

/// One authorization: every code and token descends from a grant; revoking it revokes them all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRecord {
    pub id: String,
    pub client_id: String,
    pub user_id: Option<String>,
    pub scope: String,
    /// The `claims` request parameter (JSON), if any.
    pub claims: Option<String>,
    pub auth_time: Option<UnixTime>,
    pub acr: Option<String>,
    pub amr: Vec<String>,
    pub sid: Option<String>,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
}

#[derive(Debug, Clone)]
pub struct CodeRecord {
    pub code_hash: TokenHash,
    pub grant_id: String,
    /// The redirect URI sent in the authorization request; None when it was omitted.
    pub redirect_uri: Option<String>,
    pub code_challenge: Option<String>,
    pub nonce: Option<String>,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
}

/// What a successful redemption hands the token endpoint.
/// A single-use credential (an authorization code or a refresh token) as stored, whatever its
/// state, with its grant: what the state machine (`latchkey_core::single_use`) decides on.
#[derive(Debug, Clone)]
pub struct StoredCredential {
    pub kind: latchkey_core::single_use::Kind,
    pub grant: GrantRecord,
    pub grant_revoked: bool,
    pub expires_at: UnixTime,
    pub used_at: Option<UnixTime>,
    /// Refresh tokens: a token of the grant issued since this one was spent has been used
    /// (read only when this one is spent).
    pub successor_used: bool,
    /// Codes: from the authorization request.
    pub redirect_uri: Option<String>,
    pub code_challenge: Option<String>,
    pub nonce: Option<String>,
    /// A code: its grant's scope; a refresh token: its own.
    pub scope: String,
}

impl StoredCredential {
    /// The view the state machine takes.
    pub fn held(&self) -> latchkey_core::single_use::Held<'_> {
        latchkey_core::single_use::Held {
            kind: self.kind,
            client_id: &self.grant.client_id,
            expires_at: self.expires_at,
            spent_at: self.used_at,
            family_revoked: self.grant_revoked,
            family_expires_at: self.grant.expires_at,
            successor_used: self.successor_used,
            redirect_uri: self.redirect_uri.as_deref(),
            code_challenge: self.code_challenge.as_deref(),
            scope: &self.scope,
        }
    }
}

#[derive(Debug, Clone)]
pub struct AccessTokenRecord {
    pub token_hash: TokenHash,
    /// None for client-credentials tokens (no user, no grant).
    pub grant_id: Option<String>,
    pub client_id: String,
    pub scope: String,
    pub audience: Option<String>,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
}

/// A live access token with its grant (when a user is involved).
#[derive(Debug, Clone)]
pub struct AccessTokenView {
    pub grant: Option<GrantRecord>,
    pub client_id: String,
    pub scope: String,
    pub audience: Option<String>,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
}

#[derive(Debug, Clone)]
pub struct RefreshTokenRecord {
    pub token_hash: TokenHash,
    pub grant_id: String,
    /// The refresh token's scope (RFC 6749 §6: identical across rotations).
    pub scope: String,
    pub created_at: UnixTime,
    /// Idle expiry, capped by the grant's absolute expiry.
    pub expires_at: UnixTime,
}

/// What a grant step stores, in the same transaction as the step itself.
#[derive(Debug, Clone, Default)]
pub struct TokensToStore {
    pub access: Option<AccessTokenRecord>,
    pub refresh: Option<RefreshTokenRecord>,
}

/// A refresh token as seen by revocation and introspection.
#[derive(Debug, Clone)]
pub struct RefreshTokenView {
    pub grant: GrantRecord,
    pub scope: String,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
    /// Live: not rotated, not expired, its grant not revoked or past its absolute expiry.
    pub active: bool,
}

/// A Back-Channel Logout delivery in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxItem {
    pub id: i64,
    pub client_id: String,
    pub uri: String,
    /// The signed logout token (a JWT; it authorises nothing but this logout).
    pub logout_token: String,
    pub attempts: i64,
    pub next_attempt_at: UnixTime,
    pub created_at: UnixTime,
}

/// A pushed authorization request (RFC 9126).
#[derive(Debug, Clone)]
pub struct PushedRequest {
    pub uri_hash: TokenHash,
    pub client_id: String,
    /// The validated authorization parameters, as a JSON object of strings.
    pub params: String,
    pub expires_at: UnixTime,
}

/// A group with how many users belong to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSummary {
    pub group: latchkey_core::model::Group,
    pub members: i64,
}

/// A role grant as listed: the holder and client by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleGrantView {
    pub role: String,
    /// The username, for a grant to a user.
    pub username: Option<String>,
    /// The group name, for a grant to a group.
    pub group: Option<String>,
    /// None: the role holds for every client.
    pub client_id: Option<String>,
    pub created_at: UnixTime,
}

/// Which role grants to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleFilter<'a> {
    All,
    /// Every grant that reaches this user (by id): their own and their groups'.
    User(&'a str),
    /// The grants to this group (by id).
    Group(&'a str),
}
