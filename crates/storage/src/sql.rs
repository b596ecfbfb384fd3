//! The SQL both backends share, and the one implementation of the store traits, expanded once
//! per backend by `impl_store!`. Backend modules hold only what differs (connecting, how a
//! write transaction starts, locking).

use latchkey_core::TokenHash;
use latchkey_core::model::{AccessTokenFormat, Client, ClientAuthMethod, GrantType, SigningAlg, SubjectType, User};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{
    AccessTokenView, AuditEvent, GrantRecord, InteractionRecord, KeyRecord, SessionRecord, StoreError, StoreResult,
};

pub(crate) fn to_json<T: Serialize + ?Sized>(v: &T) -> StoreResult<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(crate) fn from_json<T: DeserializeOwned>(column: &str, s: &str) -> StoreResult<T> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("column {column}: {e}")))
}

pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error().is_some_and(|d| d.is_unique_violation())
}

// ---- clients ----

pub(crate) const INSERT_CLIENT: &str = "INSERT INTO clients (client_id, name, secret_hash, redirect_uris, post_logout_redirect_uris, auth_method, grant_types, scopes, skip_consent, require_pkce, id_token_signed_response_alg, access_token_format, refresh_without_offline_access, resources, jwks, jwks_uri, secret_enc, introspection, subject_type, sector_identifier_uri, backchannel_logout_uri, backchannel_logout_session_required, request_object_signing_alg, request_uris, require_par, registration_token_hash, metadata, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29)";
pub(crate) const SELECT_CLIENT: &str = "SELECT client_id, name, secret_hash, redirect_uris, post_logout_redirect_uris, auth_method, grant_types, scopes, skip_consent, require_pkce, id_token_signed_response_alg, access_token_format, refresh_without_offline_access, resources, jwks, jwks_uri, secret_enc, introspection, subject_type, sector_identifier_uri, backchannel_logout_uri, backchannel_logout_session_required, request_object_signing_alg, request_uris, require_par, registration_token_hash, metadata, created_at, updated_at FROM clients WHERE client_id = $1";
pub(crate) const LIST_CLIENTS: &str = "SELECT client_id, name, secret_hash, redirect_uris, post_logout_redirect_uris, auth_method, grant_types, scopes, skip_consent, require_pkce, id_token_signed_response_alg, access_token_format, refresh_without_offline_access, resources, jwks, jwks_uri, secret_enc, introspection, subject_type, sector_identifier_uri, backchannel_logout_uri, backchannel_logout_session_required, request_object_signing_alg, request_uris, require_par, registration_token_hash, metadata, created_at, updated_at FROM clients ORDER BY created_at, client_id";
pub(crate) const UPDATE_CLIENT: &str = "UPDATE clients SET name = $2, secret_hash = $3, redirect_uris = $4, post_logout_redirect_uris = $5, auth_method = $6, grant_types = $7, scopes = $8, skip_consent = $9, require_pkce = $10, id_token_signed_response_alg = $11, access_token_format = $12, refresh_without_offline_access = $13, resources = $14, jwks = $15, jwks_uri = $16, secret_enc = $17, introspection = $18, subject_type = $19, sector_identifier_uri = $20, backchannel_logout_uri = $21, backchannel_logout_session_required = $22, request_object_signing_alg = $23, request_uris = $24, require_par = $25, registration_token_hash = $26, metadata = $27, updated_at = $28 WHERE client_id = $1";
pub(crate) const DELETE_CLIENT: &str = "DELETE FROM clients WHERE client_id = $1";

#[derive(sqlx::FromRow)]
pub(crate) struct ClientRow {
    client_id: String,
    name: String,
    secret_hash: Option<String>,
    redirect_uris: String,
    post_logout_redirect_uris: String,
    auth_method: String,
    grant_types: String,
    scopes: String,
    skip_consent: bool,
    require_pkce: bool,
    id_token_signed_response_alg: Option<String>,
    access_token_format: Option<String>,
    refresh_without_offline_access: bool,
    resources: String,
    jwks: Option<String>,
    jwks_uri: Option<String>,
    secret_enc: Option<String>,
    introspection: bool,
    subject_type: String,
    sector_identifier_uri: Option<String>,
    backchannel_logout_uri: Option<String>,
    backchannel_logout_session_required: bool,
    request_object_signing_alg: Option<String>,
    request_uris: String,
    require_par: bool,
    registration_token_hash: Option<String>,
    metadata: String,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<ClientRow> for Client {
    type Error = StoreError;
    fn try_from(r: ClientRow) -> StoreResult<Client> {
        Ok(Client {
            auth_method: r.auth_method.parse::<ClientAuthMethod>().map_err(StoreError::Corrupt)?,
            grant_types: from_json::<Vec<String>>("grant_types", &r.grant_types)?
                .iter()
                .map(|g| g.parse::<GrantType>())
                .collect::<Result<_, _>>()
                .map_err(StoreError::Corrupt)?,
            id_token_signed_response_alg: r
                .id_token_signed_response_alg
                .map(|a| a.parse::<SigningAlg>())
                .transpose()
                .map_err(StoreError::Corrupt)?,
            redirect_uris: from_json("redirect_uris", &r.redirect_uris)?,
            post_logout_redirect_uris: from_json("post_logout_redirect_uris", &r.post_logout_redirect_uris)?,
            scopes: from_json("scopes", &r.scopes)?,
            client_id: r.client_id,
            name: r.name,
            secret_hash: r.secret_hash.map(TokenHash::from_stored),
            skip_consent: r.skip_consent,
            require_pkce: r.require_pkce,
            access_token_format: r
                .access_token_format
                .map(|f| f.parse::<AccessTokenFormat>())
                .transpose()
                .map_err(StoreError::Corrupt)?,
            refresh_without_offline_access: r.refresh_without_offline_access,
            resources: from_json("resources", &r.resources)?,
            jwks: r.jwks,
            jwks_uri: r.jwks_uri,
            secret_enc: r.secret_enc,
            introspection: r.introspection,
            subject_type: r.subject_type.parse::<SubjectType>().map_err(StoreError::Corrupt)?,
            sector_identifier_uri: r.sector_identifier_uri,
            backchannel_logout_uri: r.backchannel_logout_uri,
            backchannel_logout_session_required: r.backchannel_logout_session_required,
            request_object_signing_alg: r.request_object_signing_alg,
            request_uris: from_json("request_uris", &r.request_uris)?,
            require_par: r.require_par,
            registration_token_hash: r.registration_token_hash.map(TokenHash::from_stored),
            metadata: from_json("metadata", &r.metadata)?,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

/// The bind values of a client, in column order.
pub(crate) struct ClientBinds {
    pub client_id: String,
    pub name: String,
    pub secret_hash: Option<String>,
    pub redirect_uris: String,
    pub post_logout_redirect_uris: String,
    pub auth_method: &'static str,
    pub grant_types: String,
    pub scopes: String,
    pub skip_consent: bool,
    pub require_pkce: bool,
    pub alg: Option<&'static str>,
    pub access_token_format: Option<&'static str>,
    pub refresh_without_offline_access: bool,
    pub resources: String,
    pub jwks: Option<String>,
    pub jwks_uri: Option<String>,
    pub secret_enc: Option<String>,
    pub introspection: bool,
    pub subject_type: &'static str,
    pub sector_identifier_uri: Option<String>,
    pub backchannel_logout_uri: Option<String>,
    pub backchannel_logout_session_required: bool,
    pub request_object_signing_alg: Option<String>,
    pub request_uris: String,
    pub require_par: bool,
    pub registration_token_hash: Option<String>,
    pub metadata: String,
    pub created_at: i64,
    pub updated_at: i64,
}

impl ClientBinds {
    pub(crate) fn of(c: &Client) -> StoreResult<Self> {
        let grants: Vec<&str> = c.grant_types.iter().map(|g| g.as_str()).collect();
        Ok(Self {
            client_id: c.client_id.clone(),
            name: c.name.clone(),
            secret_hash: c.secret_hash.as_ref().map(|h| h.as_str().to_owned()),
            redirect_uris: to_json(&c.redirect_uris)?,
            post_logout_redirect_uris: to_json(&c.post_logout_redirect_uris)?,
            auth_method: c.auth_method.as_str(),
            grant_types: to_json(&grants)?,
            scopes: to_json(&c.scopes)?,
            skip_consent: c.skip_consent,
            require_pkce: c.require_pkce,
            alg: c.id_token_signed_response_alg.map(|a| a.as_str()),
            access_token_format: c.access_token_format.map(|f| f.as_str()),
            refresh_without_offline_access: c.refresh_without_offline_access,
            resources: to_json(&c.resources)?,
            jwks: c.jwks.clone(),
            jwks_uri: c.jwks_uri.clone(),
            secret_enc: c.secret_enc.clone(),
            introspection: c.introspection,
            subject_type: c.subject_type.as_str(),
            sector_identifier_uri: c.sector_identifier_uri.clone(),
            backchannel_logout_uri: c.backchannel_logout_uri.clone(),
            backchannel_logout_session_required: c.backchannel_logout_session_required,
            request_object_signing_alg: c.request_object_signing_alg.clone(),
            request_uris: to_json(&c.request_uris)?,
            require_par: c.require_par,
            registration_token_hash: c.registration_token_hash.as_ref().map(|h| h.as_str().to_owned()),
            metadata: to_json(&c.metadata)?,
            created_at: c.created_at,
            updated_at: c.updated_at,
        })
    }
}

// ---- users ----

pub(crate) const INSERT_USER: &str = "INSERT INTO users (id, username, password_hash, email, email_verified, name, claims, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
pub(crate) const SELECT_USER: &str = "SELECT id, username, password_hash, email, email_verified, name, claims, created_at, updated_at FROM users WHERE id = $1";
pub(crate) const SELECT_USER_BY_NAME: &str = "SELECT id, username, password_hash, email, email_verified, name, claims, created_at, updated_at FROM users WHERE username = $1";
pub(crate) const LIST_USERS: &str = "SELECT id, username, password_hash, email, email_verified, name, claims, created_at, updated_at FROM users ORDER BY username";
pub(crate) const SET_PASSWORD: &str = "UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1";
pub(crate) const DELETE_USER_SESSIONS: &str = "DELETE FROM sessions WHERE user_id = $1";
pub(crate) const DELETE_USER: &str = "DELETE FROM users WHERE id = $1";

#[derive(sqlx::FromRow)]
pub(crate) struct UserRow {
    pub(crate) id: String,
    pub(crate) username: String,
    pub(crate) password_hash: String,
    pub(crate) email: Option<String>,
    pub(crate) email_verified: bool,
    pub(crate) name: Option<String>,
    pub(crate) claims: String,
    pub(crate) created_at: i64,
    pub(crate) updated_at: i64,
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;
    fn try_from(r: UserRow) -> StoreResult<User> {
        Ok(User {
            claims: from_json("claims", &r.claims)?,
            id: r.id,
            username: r.username,
            password_hash: r.password_hash,
            email: r.email,
            email_verified: r.email_verified,
            name: r.name,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

// ---- groups and roles ----

pub(crate) const INSERT_GROUP: &str = "INSERT INTO groups (id, name, created_at) VALUES ($1, $2, $3)";
pub(crate) const SELECT_GROUP_BY_NAME: &str = "SELECT id, name, created_at FROM groups WHERE name = $1";
pub(crate) const LIST_GROUPS: &str = "SELECT g.id, g.name, g.created_at, COUNT(ug.user_id) AS members FROM groups g LEFT JOIN user_groups ug ON ug.group_id = g.id GROUP BY g.id, g.name, g.created_at";
pub(crate) const DELETE_GROUP: &str = "DELETE FROM groups WHERE name = $1";
pub(crate) const GROUP_ID_BY_NAME: &str = "SELECT id FROM groups WHERE name = $1";
pub(crate) const CLEAR_USER_GROUPS: &str = "DELETE FROM user_groups WHERE user_id = $1";
pub(crate) const INSERT_USER_GROUP: &str =
    "INSERT INTO user_groups (user_id, group_id) VALUES ($1, $2) ON CONFLICT (user_id, group_id) DO NOTHING";
pub(crate) const LIST_USER_GROUPS: &str =
    "SELECT g.name FROM user_groups ug JOIN groups g ON g.id = ug.group_id WHERE ug.user_id = $1";
/// A duplicate (same role, holder and client; see the unique index) is skipped, not an error.
pub(crate) const INSERT_ROLE_GRANT: &str = "INSERT INTO role_grants (role, user_id, group_id, client_id, created_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING";
/// Absent values are bound as '' (ids are never empty), matching the unique index.
pub(crate) const DELETE_ROLE_GRANT: &str = "DELETE FROM role_grants WHERE role = $1 AND COALESCE(user_id, '') = $2 AND COALESCE(group_id, '') = $3 AND COALESCE(client_id, '') = $4";
pub(crate) const LIST_ROLE_GRANTS: &str = "SELECT rg.role, u.username, g.name AS group_name, rg.client_id, rg.created_at FROM role_grants rg LEFT JOIN users u ON u.id = rg.user_id LEFT JOIN groups g ON g.id = rg.group_id";
pub(crate) const LIST_USER_ROLE_GRANTS: &str = "SELECT rg.role, u.username, g.name AS group_name, rg.client_id, rg.created_at FROM role_grants rg LEFT JOIN users u ON u.id = rg.user_id LEFT JOIN groups g ON g.id = rg.group_id WHERE rg.user_id = $1 OR rg.group_id IN (SELECT group_id FROM user_groups WHERE user_id = $1)";
pub(crate) const LIST_GROUP_ROLE_GRANTS: &str = "SELECT rg.role, u.username, g.name AS group_name, rg.client_id, rg.created_at FROM role_grants rg LEFT JOIN users u ON u.id = rg.user_id LEFT JOIN groups g ON g.id = rg.group_id WHERE rg.group_id = $1";
/// Everything the `groups` and `roles` claims need, in one statement: the user's group names
/// (when $3), and the roles granted to the user or any of their groups, globally or for client
/// $2 (when $4). UNION removes duplicates; the caller sorts (collations differ by backend).
pub(crate) const MEMBERSHIPS: &str = "SELECT 'group' AS kind, g.name AS name FROM user_groups ug JOIN groups g ON g.id = ug.group_id WHERE $3 AND ug.user_id = $1 UNION SELECT 'role' AS kind, rg.role AS name FROM role_grants rg WHERE $4 AND rg.user_id = $1 AND (rg.client_id IS NULL OR rg.client_id = $2) UNION SELECT 'role' AS kind, rg.role AS name FROM role_grants rg JOIN user_groups ug ON ug.group_id = rg.group_id WHERE $4 AND ug.user_id = $1 AND (rg.client_id IS NULL OR rg.client_id = $2)";

/// A role grant's binds: (user_id, group_id) with exactly one set.
pub(crate) fn holder_ids(h: &latchkey_core::model::RoleHolder) -> (Option<&str>, Option<&str>) {
    match h {
        latchkey_core::model::RoleHolder::User(u) => (Some(u.as_str()), None),
        latchkey_core::model::RoleHolder::Group(g) => (None, Some(g.as_str())),
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct RoleGrantRow {
    role: String,
    username: Option<String>,
    group_name: Option<String>,
    client_id: Option<String>,
    created_at: i64,
}

/// Rows of the role-grant listings, sorted by role, then holder, then client.
pub(crate) fn role_grant_views(rows: Vec<RoleGrantRow>) -> Vec<crate::RoleGrantView> {
    let mut v: Vec<crate::RoleGrantView> = rows
        .into_iter()
        .map(|r| crate::RoleGrantView {
            role: r.role,
            username: r.username,
            group: r.group_name,
            client_id: r.client_id,
            created_at: r.created_at,
        })
        .collect();
    v.sort_by(|a, b| {
        (&a.role, &a.username, &a.group, &a.client_id).cmp(&(&b.role, &b.username, &b.group, &b.client_id))
    });
    v
}

/// (kind, name) rows of MEMBERSHIPS, split and sorted by bytes.
pub(crate) fn memberships_of(rows: Vec<(String, String)>) -> latchkey_core::model::Memberships {
    let mut m = latchkey_core::model::Memberships::default();
    for (kind, name) in rows {
        if kind == "group" {
            m.groups.push(name);
        } else {
            m.roles.push(name);
        }
    }
    m.groups.sort();
    m.groups.dedup();
    m.roles.sort();
    m.roles.dedup();
    m
}

// ---- keys and meta ----

pub(crate) const LIST_KEYS: &str = "SELECT kid, alg, public_jwk, private_key, created_at, activates_at, retired_at FROM signing_keys ORDER BY activates_at, created_at, kid";
pub(crate) const COUNT_KEYS_FOR_ALG: &str = "SELECT COUNT(*) FROM signing_keys WHERE alg = $1";
pub(crate) const INSERT_KEY: &str = "INSERT INTO signing_keys (kid, alg, public_jwk, private_key, created_at, activates_at, retired_at) VALUES ($1, $2, $3, $4, $5, $6, $7)";
pub(crate) const RETIRE_KEYS: &str = "UPDATE signing_keys SET retired_at = $2 WHERE alg = $1 AND (retired_at IS NULL OR retired_at > $2) AND activates_at < $2";
pub(crate) const PRUNE_KEYS: &str = "DELETE FROM signing_keys WHERE retired_at IS NOT NULL AND retired_at < $1";
pub(crate) const REWRAP_KEY: &str = "UPDATE signing_keys SET private_key = $2 WHERE kid = $1";
pub(crate) const LIST_SEALED_KEYS: &str = "SELECT kid, private_key FROM signing_keys ORDER BY kid";
pub(crate) const LIST_SEALED_CLIENT_SECRETS: &str =
    "SELECT client_id, secret_enc FROM clients WHERE secret_enc IS NOT NULL ORDER BY client_id";
pub(crate) const SET_CLIENT_SECRET_ENC: &str = "UPDATE clients SET secret_enc = $2 WHERE client_id = $1";
pub(crate) const GET_META: &str = "SELECT value FROM meta WHERE key = $1";
pub(crate) const PUT_META_IF_ABSENT: &str =
    "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING";
pub(crate) const SET_META: &str = "UPDATE meta SET value = $2 WHERE key = $1";

#[derive(sqlx::FromRow)]
pub(crate) struct KeyRow {
    kid: String,
    alg: String,
    public_jwk: String,
    private_key: String,
    created_at: i64,
    activates_at: i64,
    retired_at: Option<i64>,
}

impl From<KeyRow> for KeyRecord {
    fn from(r: KeyRow) -> Self {
        KeyRecord {
            kid: r.kid,
            alg: r.alg,
            public_jwk: r.public_jwk,
            private_key: r.private_key,
            created_at: r.created_at,
            activates_at: r.activates_at,
            retired_at: r.retired_at,
        }
    }
}

// ---- audit ----

pub(crate) const INSERT_AUDIT: &str =
    "INSERT INTO audit_events (at, kind, actor, client_id, ip, detail) VALUES ($1, $2, $3, $4, $5, $6)";
pub(crate) const LIST_AUDIT: &str =
    "SELECT at, kind, actor, client_id, ip, detail FROM audit_events WHERE at >= $1 ORDER BY id LIMIT $2";

#[derive(sqlx::FromRow)]
pub(crate) struct AuditRow {
    at: i64,
    kind: String,
    actor: Option<String>,
    client_id: Option<String>,
    ip: Option<String>,
    detail: String,
}

impl From<AuditRow> for AuditEvent {
    fn from(r: AuditRow) -> Self {
        AuditEvent { at: r.at, kind: r.kind, actor: r.actor, client_id: r.client_id, ip: r.ip, detail: r.detail }
    }
}

// ---- sessions ----

pub(crate) const INSERT_SESSION: &str = "INSERT INTO sessions (id_hash, sid, user_id, auth_time, acr, amr, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
pub(crate) const SELECT_SESSION: &str = "SELECT id_hash, sid, user_id, auth_time, acr, amr, created_at, expires_at FROM sessions WHERE id_hash = $1 AND expires_at > $2";
pub(crate) const DELETE_SESSION: &str = "DELETE FROM sessions WHERE id_hash = $1 RETURNING id_hash, sid, user_id, auth_time, acr, amr, created_at, expires_at";

#[derive(sqlx::FromRow)]
pub(crate) struct SessionRow {
    id_hash: String,
    sid: String,
    user_id: String,
    auth_time: i64,
    acr: Option<String>,
    amr: String,
    created_at: i64,
    expires_at: i64,
}

impl TryFrom<SessionRow> for SessionRecord {
    type Error = StoreError;
    fn try_from(r: SessionRow) -> StoreResult<SessionRecord> {
        Ok(SessionRecord {
            amr: from_json("amr", &r.amr)?,
            id_hash: TokenHash::from_stored(r.id_hash),
            sid: r.sid,
            user_id: r.user_id,
            auth_time: r.auth_time,
            acr: r.acr,
            created_at: r.created_at,
            expires_at: r.expires_at,
        })
    }
}

// ---- interactions and consents ----

pub(crate) const INSERT_INTERACTION: &str = "INSERT INTO interactions (id_hash, client_id, request, browser_hash, login_sid, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)";
pub(crate) const SELECT_INTERACTION: &str = "SELECT id_hash, client_id, request, browser_hash, login_sid, consent, consent_user_id, consent_sid, created_at, expires_at FROM interactions WHERE id_hash = $1 AND expires_at > $2";
pub(crate) const SET_INTERACTION_LOGIN: &str = "UPDATE interactions SET login_sid = $2 WHERE id_hash = $1";
pub(crate) const SET_INTERACTION_CONSENT: &str =
    "UPDATE interactions SET consent = $2, consent_user_id = $3, consent_sid = $4 WHERE id_hash = $1";
pub(crate) const DELETE_INTERACTION: &str = "DELETE FROM interactions WHERE id_hash = $1";
pub(crate) const SELECT_CONSENT: &str = "SELECT scopes FROM consents WHERE user_id = $1 AND client_id = $2";
pub(crate) const UPSERT_CONSENT: &str = "INSERT INTO consents (user_id, client_id, scopes, created_at, updated_at) VALUES ($1, $2, $3, $4, $4) ON CONFLICT (user_id, client_id) DO UPDATE SET scopes = excluded.scopes, updated_at = excluded.updated_at";

#[derive(sqlx::FromRow)]
pub(crate) struct InteractionRow {
    id_hash: String,
    client_id: String,
    request: String,
    browser_hash: String,
    login_sid: Option<String>,
    consent: Option<String>,
    consent_user_id: Option<String>,
    consent_sid: Option<String>,
    created_at: i64,
    expires_at: i64,
}

impl TryFrom<InteractionRow> for InteractionRecord {
    type Error = StoreError;
    fn try_from(r: InteractionRow) -> StoreResult<InteractionRecord> {
        Ok(InteractionRecord {
            request: from_json("request", &r.request)?,
            id_hash: TokenHash::from_stored(r.id_hash),
            client_id: r.client_id,
            browser_hash: TokenHash::from_stored(r.browser_hash),
            login_sid: r.login_sid,
            // A decision is only a decision with the user and session that made it.
            consent: match (r.consent.as_deref(), r.consent_user_id, r.consent_sid) {
                (Some(d @ ("granted" | "denied")), Some(user_id), Some(sid)) => {
                    Some(crate::InteractionConsent { granted: d == "granted", user_id, sid })
                }
                _ => None,
            },
            created_at: r.created_at,
            expires_at: r.expires_at,
        })
    }
}

// ---- grants, codes, tokens ----

pub(crate) const INSERT_GRANT: &str = "INSERT INTO grants (id, client_id, user_id, scope, claims, auth_time, acr, amr, sid, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";
pub(crate) const INSERT_CODE: &str = "INSERT INTO authorization_codes (code_hash, grant_id, redirect_uri, code_challenge, nonce, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)";
pub(crate) const CLAIM_CODE: &str = "UPDATE authorization_codes SET used_at = $2 WHERE code_hash = $1 AND used_at IS NULL AND expires_at > $2 RETURNING grant_id, redirect_uri, code_challenge, nonce";
/// RFC 6749 §4.1.3, RFC 9700 §4.14: a refused presentation (another client, a wrong
/// redirect URI or verifier) spends nothing: its claim is released in the same transaction.
pub(crate) const RELEASE_CODE: &str = "UPDATE authorization_codes SET used_at = NULL WHERE code_hash = $1";
pub(crate) const PEEK_CODE: &str = "SELECT grant_id, used_at FROM authorization_codes WHERE code_hash = $1";
pub(crate) const SELECT_LIVE_GRANT: &str = "SELECT id, client_id, user_id, scope, claims, auth_time, acr, amr, sid, created_at, expires_at FROM grants WHERE id = $1 AND revoked_at IS NULL";
pub(crate) const REVOKE_GRANT: &str = "UPDATE grants SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL";
pub(crate) const DELETE_GRANT_ACCESS: &str = "DELETE FROM access_tokens WHERE grant_id = $1";
pub(crate) const DELETE_GRANT_REFRESH: &str = "DELETE FROM refresh_tokens WHERE grant_id = $1";
/// An access token of a grant, stored only while the grant is live.
pub(crate) const INSERT_GRANT_ACCESS: &str = "INSERT INTO access_tokens (token_hash, grant_id, client_id, scope, audience, created_at, expires_at) SELECT $1, $2, $3, $4, $5, $6, $7 WHERE EXISTS (SELECT 1 FROM grants WHERE id = $2 AND revoked_at IS NULL)";
/// An access token without a grant (client credentials).
pub(crate) const INSERT_CLIENT_ACCESS: &str = "INSERT INTO access_tokens (token_hash, grant_id, client_id, scope, audience, created_at, expires_at) VALUES ($1, NULL, $2, $3, $4, $5, $6)";
pub(crate) const SELECT_ACCESS: &str = "SELECT g.id, g.client_id AS grant_client_id, g.user_id, g.scope AS grant_scope, g.claims, g.auth_time, g.acr, g.amr, g.sid, g.created_at AS grant_created_at, g.expires_at AS grant_expires_at, a.client_id, a.scope, a.audience, a.created_at, a.expires_at FROM access_tokens a LEFT JOIN grants g ON g.id = a.grant_id WHERE a.token_hash = $1 AND a.expires_at > $2 AND (a.grant_id IS NULL OR g.revoked_at IS NULL)";

#[derive(sqlx::FromRow)]
pub(crate) struct GrantRow {
    pub(crate) id: String,
    pub(crate) client_id: String,
    pub(crate) user_id: Option<String>,
    pub(crate) scope: String,
    pub(crate) claims: Option<String>,
    pub(crate) auth_time: Option<i64>,
    pub(crate) acr: Option<String>,
    pub(crate) amr: Option<String>,
    pub(crate) sid: Option<String>,
    pub(crate) created_at: i64,
    pub(crate) expires_at: i64,
}

impl TryFrom<GrantRow> for GrantRecord {
    type Error = StoreError;
    fn try_from(r: GrantRow) -> StoreResult<GrantRecord> {
        Ok(GrantRecord {
            amr: match r.amr {
                Some(a) => from_json("amr", &a)?,
                None => Vec::new(),
            },
            id: r.id,
            client_id: r.client_id,
            user_id: r.user_id,
            scope: r.scope,
            claims: r.claims,
            auth_time: r.auth_time,
            acr: r.acr,
            sid: r.sid,
            created_at: r.created_at,
            expires_at: r.expires_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ClaimedCodeRow {
    pub grant_id: String,
    pub redirect_uri: Option<String>,
    pub code_challenge: Option<String>,
    pub nonce: Option<String>,
}

#[derive(sqlx::FromRow)]
pub(crate) struct AccessRow {
    pub(crate) id: Option<String>,
    pub(crate) grant_client_id: Option<String>,
    pub(crate) user_id: Option<String>,
    pub(crate) grant_scope: Option<String>,
    pub(crate) claims: Option<String>,
    pub(crate) auth_time: Option<i64>,
    pub(crate) acr: Option<String>,
    pub(crate) amr: Option<String>,
    pub(crate) sid: Option<String>,
    pub(crate) grant_created_at: Option<i64>,
    pub(crate) grant_expires_at: Option<i64>,
    pub(crate) client_id: String,
    pub(crate) scope: String,
    pub(crate) audience: Option<String>,
    pub(crate) created_at: i64,
    pub(crate) expires_at: i64,
}

impl TryFrom<AccessRow> for AccessTokenView {
    type Error = StoreError;
    fn try_from(r: AccessRow) -> StoreResult<AccessTokenView> {
        let grant = match (r.id, r.grant_client_id, r.grant_scope, r.grant_created_at, r.grant_expires_at) {
            (Some(id), Some(client_id), Some(scope), Some(created_at), Some(expires_at)) => Some(
                GrantRow {
                    id,
                    client_id,
                    user_id: r.user_id,
                    scope,
                    claims: r.claims,
                    auth_time: r.auth_time,
                    acr: r.acr,
                    amr: r.amr,
                    sid: r.sid,
                    created_at,
                    expires_at,
                }
                .try_into()?,
            ),
            _ => None,
        };
        Ok(AccessTokenView {
            grant,
            client_id: r.client_id,
            scope: r.scope,
            audience: r.audience,
            created_at: r.created_at,
            expires_at: r.expires_at,
        })
    }
}

/// Store an access token: bound to its grant (only while the grant is live) or standalone.
pub(crate) fn access_insert<'q, DB: sqlx::Database>(
    t: &'q crate::AccessTokenRecord,
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments>
where
    &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<&'q str>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    match &t.grant_id {
        Some(g) => sqlx::query(INSERT_GRANT_ACCESS)
            .bind(t.token_hash.as_str())
            .bind(g.as_str())
            .bind(t.client_id.as_str())
            .bind(t.scope.as_str())
            .bind(t.audience.as_deref())
            .bind(t.created_at)
            .bind(t.expires_at),
        None => sqlx::query(INSERT_CLIENT_ACCESS)
            .bind(t.token_hash.as_str())
            .bind(t.client_id.as_str())
            .bind(t.scope.as_str())
            .bind(t.audience.as_deref())
            .bind(t.created_at)
            .bind(t.expires_at),
    }
}

// ---- refresh tokens, revocation, housekeeping ----

pub(crate) const INSERT_REFRESH: &str = "INSERT INTO refresh_tokens (token_hash, grant_id, scope, created_at, expires_at) SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM grants WHERE id = $2 AND revoked_at IS NULL)";
pub(crate) const CLAIM_REFRESH: &str = "UPDATE refresh_tokens SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 RETURNING grant_id, scope";
/// RFC 6749 §6: a refused refresh (another client, a widened scope) spends nothing.
pub(crate) const RELEASE_REFRESH: &str = "UPDATE refresh_tokens SET used_at = NULL WHERE token_hash = $1";
pub(crate) const PEEK_REFRESH: &str = "SELECT grant_id, used_at FROM refresh_tokens WHERE token_hash = $1";
pub(crate) const SELECT_REFRESH: &str =
    "SELECT grant_id, scope, created_at, expires_at, used_at FROM refresh_tokens WHERE token_hash = $1";
pub(crate) const SELECT_GRANT_ANY: &str = "SELECT id, client_id, user_id, scope, claims, auth_time, acr, amr, sid, created_at, expires_at, revoked_at FROM grants WHERE id = $1";
pub(crate) const DELETE_ACCESS: &str = "DELETE FROM access_tokens WHERE token_hash = $1";
pub(crate) const INSERT_REVOKED_JTI: &str =
    "INSERT INTO revoked_jtis (jti, expires_at) VALUES ($1, $2) ON CONFLICT (jti) DO NOTHING";
pub(crate) const SELECT_REVOKED_JTI: &str = "SELECT COUNT(*) FROM revoked_jtis WHERE jti = $1";
pub(crate) const INSERT_ASSERTION_JTI: &str = "INSERT INTO assertion_jtis (client_id, jti, expires_at) VALUES ($1, $2, $3) ON CONFLICT (client_id, jti) DO NOTHING";
pub(crate) const USER_GRANTS: &str = "SELECT id FROM grants WHERE user_id = $1 AND revoked_at IS NULL";
pub(crate) const USER_CLIENT_GRANTS: &str =
    "SELECT id FROM grants WHERE user_id = $1 AND client_id = $2 AND revoked_at IS NULL";
pub(crate) const DELETE_USER_SESSIONS_RETURNING: &str = "DELETE FROM sessions WHERE user_id = $1 RETURNING id_hash, sid, user_id, auth_time, acr, amr, created_at, expires_at";
pub(crate) const DELETE_CONSENT: &str = "DELETE FROM consents WHERE user_id = $1 AND client_id = $2";

/// Housekeeping statements: each deletes at most `$2` expired rows.
pub(crate) const LOGIN_STATE: &str = "SELECT CASE WHEN updated_at < $3 THEN 0 ELSE failures END, blocked_until \
     FROM login_throttle WHERE account = $1 AND source = $2";
pub(crate) const LOGIN_FAILURE: &str = "INSERT INTO login_throttle (account, source, failures, blocked_until, updated_at) \
     VALUES ($1, $2, 1, 0, $3) ON CONFLICT (account, source) DO UPDATE SET \
     failures = CASE WHEN login_throttle.updated_at < $4 THEN 1 ELSE login_throttle.failures + 1 END, updated_at = $3";
pub(crate) const LOGIN_BLOCK: &str =
    "UPDATE login_throttle SET blocked_until = $3 WHERE account = $1 AND source = $2 AND blocked_until <= $4";
pub(crate) const LOGIN_CLEAR: &str = "DELETE FROM login_throttle WHERE account = $1 AND source = $2";
pub(crate) const RATE_ADD: &str = "INSERT INTO rate_counters (key, window_start, count) VALUES ($1, $2, $3) \
     ON CONFLICT (key, window_start) DO UPDATE SET count = rate_counters.count + $3 RETURNING count";

/// Housekeeping: for each kind, the statements that delete at most `$2` rows due before `$1`
/// (oldest first, so every batch is a range scan of the expiry or age index; run in one
/// transaction, the count is the last one's), and the query for the oldest due row (None:
/// the kind has no order to lag in).
pub(crate) fn purge_sql(what: crate::Purge) -> (&'static [&'static str], Option<&'static str>) {
    use crate::Purge as P;
    match what {
        P::AuthorizationCodes => (
            &[
                "DELETE FROM authorization_codes WHERE code_hash IN (SELECT code_hash FROM authorization_codes WHERE expires_at < $1 ORDER BY expires_at LIMIT $2)",
            ],
            Some("SELECT expires_at FROM authorization_codes WHERE expires_at < $1 ORDER BY expires_at LIMIT 1"),
        ),
        P::AccessTokens => (
            &[
                "DELETE FROM access_tokens WHERE token_hash IN (SELECT token_hash FROM access_tokens WHERE expires_at < $1 ORDER BY expires_at LIMIT $2)",
            ],
            Some("SELECT expires_at FROM access_tokens WHERE expires_at < $1 ORDER BY expires_at LIMIT 1"),
        ),
        P::RefreshTokens => (
            &[
                "DELETE FROM refresh_tokens WHERE token_hash IN (SELECT token_hash FROM refresh_tokens WHERE expires_at < $1 ORDER BY expires_at LIMIT $2)",
            ],
            Some("SELECT expires_at FROM refresh_tokens WHERE expires_at < $1 ORDER BY expires_at LIMIT 1"),
        ),
        // The participants first, picked by the same (deterministic) order as the sessions.
        P::Sessions => (
            &[
                "DELETE FROM session_clients WHERE sid IN (SELECT sid FROM sessions WHERE expires_at < $1 ORDER BY expires_at, id_hash LIMIT $2)",
                "DELETE FROM sessions WHERE id_hash IN (SELECT id_hash FROM sessions WHERE expires_at < $1 ORDER BY expires_at, id_hash LIMIT $2)",
            ],
            Some("SELECT expires_at FROM sessions WHERE expires_at < $1 ORDER BY expires_at LIMIT 1"),
        ),
        // Left behind by sessions ended otherwise; `$1 > 0` only uses the parameter.
        P::SessionClients => (
            &[
                "DELETE FROM session_clients WHERE (sid, client_id) IN (SELECT sc.sid, sc.client_id FROM session_clients sc WHERE $1 > 0 AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.sid = sc.sid) LIMIT $2)",
            ],
            None,
        ),
        P::Interactions => (
            &[
                "DELETE FROM interactions WHERE id_hash IN (SELECT id_hash FROM interactions WHERE expires_at < $1 ORDER BY expires_at LIMIT $2)",
            ],
            Some("SELECT expires_at FROM interactions WHERE expires_at < $1 ORDER BY expires_at LIMIT 1"),
        ),
        P::RevokedJtis => (
            &[
                "DELETE FROM revoked_jtis WHERE jti IN (SELECT jti FROM revoked_jtis WHERE expires_at < $1 ORDER BY expires_at LIMIT $2)",
            ],
            Some("SELECT expires_at FROM revoked_jtis WHERE expires_at < $1 ORDER BY expires_at LIMIT 1"),
        ),
        P::AssertionJtis => (
            &[
                "DELETE FROM assertion_jtis WHERE (client_id, jti) IN (SELECT client_id, jti FROM assertion_jtis WHERE expires_at < $1 ORDER BY expires_at LIMIT $2)",
            ],
            Some("SELECT expires_at FROM assertion_jtis WHERE expires_at < $1 ORDER BY expires_at LIMIT 1"),
        ),
        P::Grants => (
            &[
                "DELETE FROM grants WHERE id IN (SELECT id FROM grants WHERE expires_at < $1 ORDER BY expires_at LIMIT $2)",
            ],
            Some("SELECT expires_at FROM grants WHERE expires_at < $1 ORDER BY expires_at LIMIT 1"),
        ),
        P::InitialAccessTokens => (
            &[
                "DELETE FROM initial_access_tokens WHERE token_hash IN (SELECT token_hash FROM initial_access_tokens WHERE expires_at < $1 ORDER BY expires_at LIMIT $2)",
            ],
            Some("SELECT expires_at FROM initial_access_tokens WHERE expires_at < $1 ORDER BY expires_at LIMIT 1"),
        ),
        P::PushedRequests => (
            &[
                "DELETE FROM pushed_requests WHERE uri_hash IN (SELECT uri_hash FROM pushed_requests WHERE expires_at < $1 ORDER BY expires_at LIMIT $2)",
            ],
            Some("SELECT expires_at FROM pushed_requests WHERE expires_at < $1 ORDER BY expires_at LIMIT 1"),
        ),
        // Delivered, or given up (delivered_at = -1); pending ones stay however old.
        P::LogoutOutbox => (
            &[
                "DELETE FROM logout_outbox WHERE id IN (SELECT id FROM logout_outbox WHERE delivered_at IS NOT NULL AND created_at < $1 ORDER BY created_at LIMIT $2)",
            ],
            Some(
                "SELECT created_at FROM logout_outbox WHERE delivered_at IS NOT NULL AND created_at < $1 ORDER BY created_at LIMIT 1",
            ),
        ),
        P::AuditEvents => (
            &["DELETE FROM audit_events WHERE id IN (SELECT id FROM audit_events WHERE at < $1 ORDER BY at LIMIT $2)"],
            Some("SELECT at FROM audit_events WHERE at < $1 ORDER BY at LIMIT 1"),
        ),
        // `$1` is a day ago: a block still running keeps its row.
        P::LoginThrottle => (
            &[
                "DELETE FROM login_throttle WHERE (account, source) IN (SELECT account, source FROM login_throttle WHERE updated_at < $1 AND blocked_until < $1 + 86400 ORDER BY updated_at LIMIT $2)",
            ],
            Some(
                "SELECT updated_at FROM login_throttle WHERE updated_at < $1 AND blocked_until < $1 + 86400 ORDER BY updated_at LIMIT 1",
            ),
        ),
        P::RateCounters => (
            &[
                "DELETE FROM rate_counters WHERE (key, window_start) IN (SELECT key, window_start FROM rate_counters WHERE window_start < $1 ORDER BY window_start LIMIT $2)",
            ],
            Some("SELECT window_start FROM rate_counters WHERE window_start < $1 ORDER BY window_start LIMIT 1"),
        ),
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct GrantAnyRow {
    #[sqlx(flatten)]
    pub grant: GrantRow,
    pub revoked_at: Option<i64>,
}

#[derive(sqlx::FromRow)]
pub(crate) struct RefreshRow {
    pub grant_id: String,
    pub scope: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

/// Revoke a grant (a token family) and delete its tokens, inside a transaction; evaluates to
/// the number of grants newly revoked (0 or 1).
macro_rules! revoke_family_in {
    ($tx:expr, $grant_id:expr, $now:expr) => {{
        let r = sqlx::query($crate::sql::REVOKE_GRANT).bind($grant_id).bind($now).execute(&mut *$tx).await?;
        sqlx::query($crate::sql::DELETE_GRANT_ACCESS).bind($grant_id).execute(&mut *$tx).await?;
        sqlx::query($crate::sql::DELETE_GRANT_REFRESH).bind($grant_id).execute(&mut *$tx).await?;
        r.rows_affected()
    }};
}
pub(crate) use revoke_family_in;

/// Store what a grant step produced, inside its transaction.
macro_rules! store_tokens_in {
    ($tx:expr, $t:expr) => {{
        if let Some(a) = &$t.access {
            $crate::sql::access_insert(a).execute(&mut *$tx).await?;
        }
        if let Some(r) = &$t.refresh {
            sqlx::query($crate::sql::INSERT_REFRESH)
                .bind(r.token_hash.as_str())
                .bind(&r.grant_id)
                .bind(&r.scope)
                .bind(r.created_at)
                .bind(r.expires_at)
                .execute(&mut *$tx)
                .await?;
        }
    }};
}
pub(crate) use store_tokens_in;

// ---- OpenID profiles ----

pub(crate) const INSERT_IAT: &str =
    "INSERT INTO initial_access_tokens (token_hash, created_at, expires_at) VALUES ($1, $2, $3)";
pub(crate) const USE_IAT: &str = "DELETE FROM initial_access_tokens WHERE token_hash = $1 AND expires_at > $2";
pub(crate) const INSERT_SESSION_CLIENT: &str =
    "INSERT INTO session_clients (sid, client_id, user_id) VALUES ($1, $2, $3) ON CONFLICT (sid, client_id) DO NOTHING";
pub(crate) const TAKE_SESSION_CLIENTS: &str = "DELETE FROM session_clients WHERE sid = $1 RETURNING client_id";
pub(crate) const TAKE_USER_SESSION_CLIENTS: &str =
    "DELETE FROM session_clients WHERE user_id = $1 RETURNING sid, client_id";
pub(crate) const INSERT_OUTBOX: &str = "INSERT INTO logout_outbox (client_id, uri, logout_token, attempts, next_attempt_at, created_at) VALUES ($1, $2, $3, 0, $4, $5)";
pub(crate) const DUE_OUTBOX: &str = "SELECT id, client_id, uri, logout_token, attempts, next_attempt_at, created_at FROM logout_outbox WHERE delivered_at IS NULL AND next_attempt_at <= $1 ORDER BY id LIMIT $2";
pub(crate) const OUTBOX_DELIVERED: &str =
    "UPDATE logout_outbox SET delivered_at = $2, attempts = attempts + 1, last_error = NULL WHERE id = $1";
pub(crate) const OUTBOX_RETRY: &str =
    "UPDATE logout_outbox SET attempts = attempts + 1, next_attempt_at = $2, last_error = $3 WHERE id = $1";
/// Giving up: marked delivered-at -1 so it is never due again, the error kept for operators.
pub(crate) const OUTBOX_GIVE_UP: &str =
    "UPDATE logout_outbox SET attempts = attempts + 1, delivered_at = -1, last_error = $2 WHERE id = $1";
pub(crate) const INSERT_PUSHED: &str =
    "INSERT INTO pushed_requests (uri_hash, client_id, params, expires_at) VALUES ($1, $2, $3, $4)";
pub(crate) const TAKE_PUSHED: &str = "DELETE FROM pushed_requests WHERE uri_hash = $1 AND expires_at > $2 RETURNING uri_hash, client_id, params, expires_at";

#[derive(sqlx::FromRow)]
pub(crate) struct OutboxRow {
    id: i64,
    client_id: String,
    uri: String,
    logout_token: String,
    attempts: i64,
    next_attempt_at: i64,
    created_at: i64,
}

impl From<OutboxRow> for crate::OutboxItem {
    fn from(r: OutboxRow) -> Self {
        crate::OutboxItem {
            id: r.id,
            client_id: r.client_id,
            uri: r.uri,
            logout_token: r.logout_token,
            attempts: r.attempts,
            next_attempt_at: r.next_attempt_at,
            created_at: r.created_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct PushedRow {
    uri_hash: String,
    client_id: String,
    params: String,
    expires_at: i64,
}

impl From<PushedRow> for crate::PushedRequest {
    fn from(r: PushedRow) -> Self {
        crate::PushedRequest {
            uri_hash: TokenHash::from_stored(r.uri_hash),
            client_id: r.client_id,
            params: r.params,
            expires_at: r.expires_at,
        }
    }
}

/// The store traits for one backend. `$ty` has a `pool` field and the inherent methods
/// `begin()` (a write transaction) and `lock_keys(&mut tx)` (serialise key creation).
macro_rules! impl_store {
    ($ty:ty) => {
        #[async_trait::async_trait]
        impl $crate::ClientStore for $ty {
            async fn create_client(&self, c: &latchkey_core::model::Client) -> $crate::StoreResult<$crate::Created> {
                let b = $crate::sql::ClientBinds::of(c)?;
                let r = sqlx::query($crate::sql::INSERT_CLIENT)
                    .bind(b.client_id)
                    .bind(b.name)
                    .bind(b.secret_hash)
                    .bind(b.redirect_uris)
                    .bind(b.post_logout_redirect_uris)
                    .bind(b.auth_method)
                    .bind(b.grant_types)
                    .bind(b.scopes)
                    .bind(b.skip_consent)
                    .bind(b.require_pkce)
                    .bind(b.alg)
                    .bind(b.access_token_format)
                    .bind(b.refresh_without_offline_access)
                    .bind(b.resources)
                    .bind(b.jwks)
                    .bind(b.jwks_uri)
                    .bind(b.secret_enc)
                    .bind(b.introspection)
                    .bind(b.subject_type)
                    .bind(b.sector_identifier_uri)
                    .bind(b.backchannel_logout_uri)
                    .bind(b.backchannel_logout_session_required)
                    .bind(b.request_object_signing_alg)
                    .bind(b.request_uris)
                    .bind(b.require_par)
                    .bind(b.registration_token_hash)
                    .bind(b.metadata)
                    .bind(b.created_at)
                    .bind(b.updated_at)
                    .execute(&mut *self.write().await?)
                    .await;
                match r {
                    Ok(_) => Ok($crate::Created::Created),
                    Err(e) if $crate::sql::is_unique_violation(&e) => Ok($crate::Created::AlreadyExists),
                    Err(e) => Err(e.into()),
                }
            }

            async fn get_client(&self, client_id: &str) -> $crate::StoreResult<Option<latchkey_core::model::Client>> {
                let row: Option<$crate::sql::ClientRow> =
                    sqlx::query_as($crate::sql::SELECT_CLIENT).bind(client_id).fetch_optional(&self.pool).await?;
                row.map(TryInto::try_into).transpose()
            }

            async fn list_clients(&self) -> $crate::StoreResult<Vec<latchkey_core::model::Client>> {
                let rows: Vec<$crate::sql::ClientRow> =
                    sqlx::query_as($crate::sql::LIST_CLIENTS).fetch_all(&self.pool).await?;
                rows.into_iter().map(TryInto::try_into).collect()
            }

            async fn update_client(&self, c: &latchkey_core::model::Client) -> $crate::StoreResult<bool> {
                let b = $crate::sql::ClientBinds::of(c)?;
                let r = sqlx::query($crate::sql::UPDATE_CLIENT)
                    .bind(b.client_id)
                    .bind(b.name)
                    .bind(b.secret_hash)
                    .bind(b.redirect_uris)
                    .bind(b.post_logout_redirect_uris)
                    .bind(b.auth_method)
                    .bind(b.grant_types)
                    .bind(b.scopes)
                    .bind(b.skip_consent)
                    .bind(b.require_pkce)
                    .bind(b.alg)
                    .bind(b.access_token_format)
                    .bind(b.refresh_without_offline_access)
                    .bind(b.resources)
                    .bind(b.jwks)
                    .bind(b.jwks_uri)
                    .bind(b.secret_enc)
                    .bind(b.introspection)
                    .bind(b.subject_type)
                    .bind(b.sector_identifier_uri)
                    .bind(b.backchannel_logout_uri)
                    .bind(b.backchannel_logout_session_required)
                    .bind(b.request_object_signing_alg)
                    .bind(b.request_uris)
                    .bind(b.require_par)
                    .bind(b.registration_token_hash)
                    .bind(b.metadata)
                    .bind(b.updated_at)
                    .execute(&mut *self.write().await?)
                    .await?;
                Ok(r.rows_affected() == 1)
            }

            async fn delete_client(&self, client_id: &str) -> $crate::StoreResult<bool> {
                let r =
                    sqlx::query($crate::sql::DELETE_CLIENT).bind(client_id).execute(&mut *self.write().await?).await?;
                Ok(r.rows_affected() == 1)
            }
        }

        #[async_trait::async_trait]
        impl $crate::UserStore for $ty {
            async fn create_user(&self, u: &latchkey_core::model::User) -> $crate::StoreResult<$crate::Created> {
                let r = sqlx::query($crate::sql::INSERT_USER)
                    .bind(&u.id)
                    .bind(&u.username)
                    .bind(&u.password_hash)
                    .bind(&u.email)
                    .bind(u.email_verified)
                    .bind(&u.name)
                    .bind($crate::sql::to_json(&u.claims)?)
                    .bind(u.created_at)
                    .bind(u.updated_at)
                    .execute(&mut *self.write().await?)
                    .await;
                match r {
                    Ok(_) => Ok($crate::Created::Created),
                    Err(e) if $crate::sql::is_unique_violation(&e) => Ok($crate::Created::AlreadyExists),
                    Err(e) => Err(e.into()),
                }
            }

            async fn get_user(&self, id: &str) -> $crate::StoreResult<Option<latchkey_core::model::User>> {
                if let Some(f) = self.fast() {
                    return f.get_user(id);
                }
                if let Some(b) = self.batched() {
                    return b.get_user(id).await;
                }
                let row: Option<$crate::sql::UserRow> =
                    sqlx::query_as($crate::sql::SELECT_USER).bind(id).fetch_optional(&self.pool).await?;
                row.map(TryInto::try_into).transpose()
            }

            async fn get_user_by_username(
                &self,
                username: &str,
            ) -> $crate::StoreResult<Option<latchkey_core::model::User>> {
                let row: Option<$crate::sql::UserRow> =
                    sqlx::query_as($crate::sql::SELECT_USER_BY_NAME).bind(username).fetch_optional(&self.pool).await?;
                row.map(TryInto::try_into).transpose()
            }

            async fn list_users(&self) -> $crate::StoreResult<Vec<latchkey_core::model::User>> {
                let rows: Vec<$crate::sql::UserRow> =
                    sqlx::query_as($crate::sql::LIST_USERS).fetch_all(&self.pool).await?;
                rows.into_iter().map(TryInto::try_into).collect()
            }

            async fn set_password(
                &self,
                id: &str,
                password_hash: &str,
                now: latchkey_core::UnixTime,
            ) -> $crate::StoreResult<bool> {
                let mut tx = self.begin().await?;
                let r = sqlx::query($crate::sql::SET_PASSWORD)
                    .bind(id)
                    .bind(password_hash)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query($crate::sql::DELETE_USER_SESSIONS).bind(id).execute(&mut *tx).await?;
                tx.commit().await?;
                Ok(r.rows_affected() == 1)
            }

            async fn delete_user(&self, id: &str) -> $crate::StoreResult<bool> {
                let r = sqlx::query($crate::sql::DELETE_USER).bind(id).execute(&mut *self.write().await?).await?;
                Ok(r.rows_affected() == 1)
            }
        }

        #[async_trait::async_trait]
        impl $crate::DirectoryStore for $ty {
            async fn create_group(&self, g: &latchkey_core::model::Group) -> $crate::StoreResult<$crate::Created> {
                let r = sqlx::query($crate::sql::INSERT_GROUP)
                    .bind(&g.id)
                    .bind(&g.name)
                    .bind(g.created_at)
                    .execute(&mut *self.write().await?)
                    .await;
                match r {
                    Ok(_) => Ok($crate::Created::Created),
                    Err(e) if $crate::sql::is_unique_violation(&e) => Ok($crate::Created::AlreadyExists),
                    Err(e) => Err(e.into()),
                }
            }

            async fn get_group_by_name(&self, name: &str) -> $crate::StoreResult<Option<latchkey_core::model::Group>> {
                let row: Option<(String, String, i64)> =
                    sqlx::query_as($crate::sql::SELECT_GROUP_BY_NAME).bind(name).fetch_optional(&self.pool).await?;
                Ok(row.map(|(id, name, created_at)| latchkey_core::model::Group { id, name, created_at }))
            }

            async fn list_groups(&self) -> $crate::StoreResult<Vec<$crate::GroupSummary>> {
                let rows: Vec<(String, String, i64, i64)> =
                    sqlx::query_as($crate::sql::LIST_GROUPS).fetch_all(&self.pool).await?;
                let mut v: Vec<$crate::GroupSummary> = rows
                    .into_iter()
                    .map(|(id, name, created_at, members)| $crate::GroupSummary {
                        group: latchkey_core::model::Group { id, name, created_at },
                        members,
                    })
                    .collect();
                v.sort_by(|a, b| a.group.name.cmp(&b.group.name));
                Ok(v)
            }

            async fn delete_group(&self, name: &str) -> $crate::StoreResult<bool> {
                let r = sqlx::query($crate::sql::DELETE_GROUP).bind(name).execute(&mut *self.write().await?).await?;
                Ok(r.rows_affected() == 1)
            }

            async fn set_user_groups(
                &self,
                user_id: &str,
                group_names: &[String],
            ) -> $crate::StoreResult<Result<(), String>> {
                let mut tx = self.begin().await?;
                let mut ids = Vec::with_capacity(group_names.len());
                for name in group_names {
                    let id: Option<(String,)> =
                        sqlx::query_as($crate::sql::GROUP_ID_BY_NAME).bind(name).fetch_optional(&mut *tx).await?;
                    match id {
                        Some((id,)) => ids.push(id),
                        None => {
                            tx.rollback().await?;
                            return Ok(Err(name.clone()));
                        }
                    }
                }
                sqlx::query($crate::sql::CLEAR_USER_GROUPS).bind(user_id).execute(&mut *tx).await?;
                for id in &ids {
                    sqlx::query($crate::sql::INSERT_USER_GROUP).bind(user_id).bind(id).execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(Ok(()))
            }

            async fn list_user_groups(&self, user_id: &str) -> $crate::StoreResult<Vec<String>> {
                let rows: Vec<(String,)> =
                    sqlx::query_as($crate::sql::LIST_USER_GROUPS).bind(user_id).fetch_all(&self.pool).await?;
                let mut v: Vec<String> = rows.into_iter().map(|r| r.0).collect();
                v.sort();
                Ok(v)
            }

            async fn grant_role(
                &self,
                g: &latchkey_core::model::RoleGrant,
                now: latchkey_core::UnixTime,
            ) -> $crate::StoreResult<$crate::Created> {
                let (user_id, group_id) = $crate::sql::holder_ids(&g.holder);
                let r = sqlx::query($crate::sql::INSERT_ROLE_GRANT)
                    .bind(&g.role)
                    .bind(user_id)
                    .bind(group_id)
                    .bind(g.client_id.as_deref())
                    .bind(now)
                    .execute(&mut *self.write().await?)
                    .await?;
                Ok(if r.rows_affected() == 1 { $crate::Created::Created } else { $crate::Created::AlreadyExists })
            }

            async fn revoke_role(&self, g: &latchkey_core::model::RoleGrant) -> $crate::StoreResult<bool> {
                let (user_id, group_id) = $crate::sql::holder_ids(&g.holder);
                let r = sqlx::query($crate::sql::DELETE_ROLE_GRANT)
                    .bind(&g.role)
                    .bind(user_id.unwrap_or_default())
                    .bind(group_id.unwrap_or_default())
                    .bind(g.client_id.as_deref().unwrap_or_default())
                    .execute(&mut *self.write().await?)
                    .await?;
                Ok(r.rows_affected() == 1)
            }

            async fn list_role_grants(
                &self,
                filter: $crate::RoleFilter<'_>,
            ) -> $crate::StoreResult<Vec<$crate::RoleGrantView>> {
                let rows: Vec<$crate::sql::RoleGrantRow> = match filter {
                    $crate::RoleFilter::All => {
                        sqlx::query_as($crate::sql::LIST_ROLE_GRANTS).fetch_all(&self.pool).await?
                    }
                    $crate::RoleFilter::User(id) => {
                        sqlx::query_as($crate::sql::LIST_USER_ROLE_GRANTS).bind(id).fetch_all(&self.pool).await?
                    }
                    $crate::RoleFilter::Group(id) => {
                        sqlx::query_as($crate::sql::LIST_GROUP_ROLE_GRANTS).bind(id).fetch_all(&self.pool).await?
                    }
                };
                Ok($crate::sql::role_grant_views(rows))
            }

            async fn memberships(
                &self,
                user_id: &str,
                client_id: &str,
                wanted: latchkey_core::claims::MembershipClaims,
            ) -> $crate::StoreResult<latchkey_core::model::Memberships> {
                if !wanted.any() {
                    return Ok(latchkey_core::model::Memberships::default());
                }
                let rows: Vec<(String, String)> = sqlx::query_as($crate::sql::MEMBERSHIPS)
                    .bind(user_id)
                    .bind(client_id)
                    .bind(wanted.groups)
                    .bind(wanted.roles)
                    .fetch_all(&self.pool)
                    .await?;
                Ok($crate::sql::memberships_of(rows))
            }
        }

        #[async_trait::async_trait]
        impl $crate::KeyStore for $ty {
            async fn list_keys(&self) -> $crate::StoreResult<Vec<$crate::KeyRecord>> {
                let rows: Vec<$crate::sql::KeyRow> =
                    sqlx::query_as($crate::sql::LIST_KEYS).fetch_all(&self.pool).await?;
                Ok(rows.into_iter().map(Into::into).collect())
            }

            async fn insert_initial_keys(&self, keys: &[$crate::KeyRecord]) -> $crate::StoreResult<Vec<String>> {
                let mut tx = self.begin().await?;
                Self::lock_keys(&mut tx).await?;
                let mut inserted = Vec::new();
                for k in keys {
                    let (n,): (i64,) =
                        sqlx::query_as($crate::sql::COUNT_KEYS_FOR_ALG).bind(&k.alg).fetch_one(&mut *tx).await?;
                    if n == 0 {
                        sqlx::query($crate::sql::INSERT_KEY)
                            .bind(&k.kid)
                            .bind(&k.alg)
                            .bind(&k.public_jwk)
                            .bind(&k.private_key)
                            .bind(k.created_at)
                            .bind(k.activates_at)
                            .bind(k.retired_at)
                            .execute(&mut *tx)
                            .await?;
                        inserted.push(k.kid.clone());
                    }
                }
                tx.commit().await?;
                Ok(inserted)
            }

            async fn rotate_keys(&self, new_keys: &[$crate::KeyRecord]) -> $crate::StoreResult<()> {
                let mut tx = self.begin().await?;
                Self::lock_keys(&mut tx).await?;
                for k in new_keys {
                    sqlx::query($crate::sql::RETIRE_KEYS).bind(&k.alg).bind(k.activates_at).execute(&mut *tx).await?;
                    sqlx::query($crate::sql::INSERT_KEY)
                        .bind(&k.kid)
                        .bind(&k.alg)
                        .bind(&k.public_jwk)
                        .bind(&k.private_key)
                        .bind(k.created_at)
                        .bind(k.activates_at)
                        .bind(k.retired_at)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn prune_keys(&self, retired_before: latchkey_core::UnixTime) -> $crate::StoreResult<u64> {
                let r = sqlx::query($crate::sql::PRUNE_KEYS)
                    .bind(retired_before)
                    .execute(&mut *self.write().await?)
                    .await?;
                Ok(r.rows_affected())
            }

            async fn rewrap_keys(&self, rewrapped: &[(String, String)], check: &str) -> $crate::StoreResult<()> {
                let mut tx = self.begin().await?;
                Self::lock_keys(&mut tx).await?;
                for (kid, private_key) in rewrapped {
                    sqlx::query($crate::sql::REWRAP_KEY).bind(kid).bind(private_key).execute(&mut *tx).await?;
                }
                sqlx::query($crate::sql::SET_META).bind("master_key_check").bind(check).execute(&mut *tx).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn reseal_all(
                &self,
                meta_keys: &[&str],
                reseal: $crate::Reseal<'_>,
            ) -> $crate::StoreResult<Result<$crate::SealedValues, String>> {
                let mut tx = self.begin().await?;
                Self::lock_keys(&mut tx).await?;
                Self::lock_sealed(&mut tx).await?;
                let keys: Vec<(String, String)> =
                    sqlx::query_as($crate::sql::LIST_SEALED_KEYS).fetch_all(&mut *tx).await?;
                let client_secrets: Vec<(String, String)> =
                    sqlx::query_as($crate::sql::LIST_SEALED_CLIENT_SECRETS).fetch_all(&mut *tx).await?;
                let mut meta = Vec::new();
                for k in meta_keys {
                    let row: Option<(String,)> =
                        sqlx::query_as($crate::sql::GET_META).bind(*k).fetch_optional(&mut *tx).await?;
                    if let Some((v,)) = row {
                        meta.push(((*k).to_owned(), v));
                    }
                }
                let fresh = match reseal($crate::SealedValues { keys, client_secrets, meta }) {
                    Ok(v) => v,
                    Err(reason) => {
                        tx.rollback().await?;
                        return Ok(Err(reason));
                    }
                };
                for (kid, private_key) in &fresh.keys {
                    sqlx::query($crate::sql::REWRAP_KEY).bind(kid).bind(private_key).execute(&mut *tx).await?;
                }
                for (client_id, enc) in &fresh.client_secrets {
                    sqlx::query($crate::sql::SET_CLIENT_SECRET_ENC).bind(client_id).bind(enc).execute(&mut *tx).await?;
                }
                for (k, v) in &fresh.meta {
                    sqlx::query($crate::sql::SET_META).bind(k).bind(v).execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(Ok(fresh))
            }

            async fn get_meta(&self, key: &str) -> $crate::StoreResult<Option<String>> {
                let row: Option<(String,)> =
                    sqlx::query_as($crate::sql::GET_META).bind(key).fetch_optional(&self.pool).await?;
                Ok(row.map(|r| r.0))
            }

            async fn put_meta_if_absent(&self, key: &str, value: &str) -> $crate::StoreResult<String> {
                sqlx::query($crate::sql::PUT_META_IF_ABSENT)
                    .bind(key)
                    .bind(value)
                    .execute(&mut *self.write().await?)
                    .await?;
                let (v,): (String,) = sqlx::query_as($crate::sql::GET_META).bind(key).fetch_one(&self.pool).await?;
                Ok(v)
            }
        }

        #[async_trait::async_trait]
        impl $crate::AuditStore for $ty {
            async fn record_audit(&self, e: &$crate::AuditEvent) -> $crate::StoreResult<()> {
                sqlx::query($crate::sql::INSERT_AUDIT)
                    .bind(e.at)
                    .bind(&e.kind)
                    .bind(&e.actor)
                    .bind(&e.client_id)
                    .bind(&e.ip)
                    .bind(&e.detail)
                    .execute(&mut *self.write().await?)
                    .await?;
                Ok(())
            }

            async fn list_audit(
                &self,
                since: latchkey_core::UnixTime,
                limit: i64,
            ) -> $crate::StoreResult<Vec<$crate::AuditEvent>> {
                let rows: Vec<$crate::sql::AuditRow> =
                    sqlx::query_as($crate::sql::LIST_AUDIT).bind(since).bind(limit).fetch_all(&self.pool).await?;
                Ok(rows.into_iter().map(Into::into).collect())
            }
        }

        #[async_trait::async_trait]
        impl $crate::SessionStore for $ty {
            async fn create_session(&self, s: &$crate::SessionRecord) -> $crate::StoreResult<()> {
                sqlx::query($crate::sql::INSERT_SESSION)
                    .bind(s.id_hash.as_str())
                    .bind(&s.sid)
                    .bind(&s.user_id)
                    .bind(s.auth_time)
                    .bind(&s.acr)
                    .bind($crate::sql::to_json(&s.amr)?)
                    .bind(s.created_at)
                    .bind(s.expires_at)
                    .execute(&mut *self.write().await?)
                    .await?;
                Ok(())
            }

            async fn get_session(
                &self,
                id_hash: &latchkey_core::TokenHash,
                now: latchkey_core::UnixTime,
            ) -> $crate::StoreResult<Option<$crate::SessionRecord>> {
                let row: Option<$crate::sql::SessionRow> = sqlx::query_as($crate::sql::SELECT_SESSION)
                    .bind(id_hash.as_str())
                    .bind(now)
                    .fetch_optional(&self.pool)
                    .await?;
                row.map(TryInto::try_into).transpose()
            }

            async fn delete_session(
                &self,
                id_hash: &latchkey_core::TokenHash,
            ) -> $crate::StoreResult<Option<$crate::SessionRecord>> {
                let row: Option<$crate::sql::SessionRow> = sqlx::query_as($crate::sql::DELETE_SESSION)
                    .bind(id_hash.as_str())
                    .fetch_optional(&mut *self.write().await?)
                    .await?;
                row.map(TryInto::try_into).transpose()
            }
        }

        #[async_trait::async_trait]
        impl $crate::FlowStore for $ty {
            async fn create_interaction(&self, i: &$crate::InteractionRecord) -> $crate::StoreResult<()> {
                sqlx::query($crate::sql::INSERT_INTERACTION)
                    .bind(i.id_hash.as_str())
                    .bind(&i.client_id)
                    .bind($crate::sql::to_json(&i.request)?)
                    .bind(i.browser_hash.as_str())
                    .bind(&i.login_sid)
                    .bind(i.created_at)
                    .bind(i.expires_at)
                    .execute(&mut *self.write().await?)
                    .await?;
                Ok(())
            }

            async fn get_interaction(
                &self,
                id_hash: &latchkey_core::TokenHash,
                now: latchkey_core::UnixTime,
            ) -> $crate::StoreResult<Option<$crate::InteractionRecord>> {
                let row: Option<$crate::sql::InteractionRow> = sqlx::query_as($crate::sql::SELECT_INTERACTION)
                    .bind(id_hash.as_str())
                    .bind(now)
                    .fetch_optional(&self.pool)
                    .await?;
                row.map(TryInto::try_into).transpose()
            }

            async fn set_interaction_login(
                &self,
                id_hash: &latchkey_core::TokenHash,
                sid: &str,
            ) -> $crate::StoreResult<bool> {
                let r = sqlx::query($crate::sql::SET_INTERACTION_LOGIN)
                    .bind(id_hash.as_str())
                    .bind(sid)
                    .execute(&mut *self.write().await?)
                    .await?;
                Ok(r.rows_affected() == 1)
            }

            async fn set_interaction_consent(
                &self,
                id_hash: &latchkey_core::TokenHash,
                consent: &$crate::InteractionConsent,
            ) -> $crate::StoreResult<bool> {
                let r = sqlx::query($crate::sql::SET_INTERACTION_CONSENT)
                    .bind(id_hash.as_str())
                    .bind(if consent.granted { "granted" } else { "denied" })
                    .bind(&consent.user_id)
                    .bind(&consent.sid)
                    .execute(&mut *self.write().await?)
                    .await?;
                Ok(r.rows_affected() == 1)
            }

            async fn take_interaction(&self, id_hash: &latchkey_core::TokenHash) -> $crate::StoreResult<bool> {
                let r = sqlx::query($crate::sql::DELETE_INTERACTION)
                    .bind(id_hash.as_str())
                    .execute(&mut *self.write().await?)
                    .await?;
                Ok(r.rows_affected() == 1)
            }

            async fn get_consent(&self, user_id: &str, client_id: &str) -> $crate::StoreResult<Option<Vec<String>>> {
                let row: Option<(String,)> = sqlx::query_as($crate::sql::SELECT_CONSENT)
                    .bind(user_id)
                    .bind(client_id)
                    .fetch_optional(&self.pool)
                    .await?;
                row.map(|(s,)| $crate::sql::from_json("consents.scopes", &s)).transpose()
            }

            async fn put_consent(
                &self,
                user_id: &str,
                client_id: &str,
                scopes: &[String],
                now: latchkey_core::UnixTime,
            ) -> $crate::StoreResult<()> {
                sqlx::query($crate::sql::UPSERT_CONSENT)
                    .bind(user_id)
                    .bind(client_id)
                    .bind($crate::sql::to_json(scopes)?)
                    .bind(now)
                    .execute(&mut *self.write().await?)
                    .await?;
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl $crate::GrantStore for $ty {
            async fn issue_code(&self, g: &$crate::GrantRecord, c: &$crate::CodeRecord) -> $crate::StoreResult<()> {
                if let Some(f) = self.fast() {
                    return f.issue_code(g, c).await;
                }
                let mut tx = self.begin().await?;
                sqlx::query($crate::sql::INSERT_GRANT)
                    .bind(&g.id)
                    .bind(&g.client_id)
                    .bind(&g.user_id)
                    .bind(&g.scope)
                    .bind(&g.claims)
                    .bind(g.auth_time)
                    .bind(&g.acr)
                    .bind($crate::sql::to_json(&g.amr)?)
                    .bind(&g.sid)
                    .bind(g.created_at)
                    .bind(g.expires_at)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query($crate::sql::INSERT_CODE)
                    .bind(c.code_hash.as_str())
                    .bind(&c.grant_id)
                    .bind(&c.redirect_uri)
                    .bind(&c.code_challenge)
                    .bind(&c.nonce)
                    .bind(c.created_at)
                    .bind(c.expires_at)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn redeem_code(
                &self,
                code_hash: &latchkey_core::TokenHash,
                now: latchkey_core::UnixTime,
                decide: Box<$crate::CodeDecision>,
            ) -> $crate::StoreResult<$crate::Redemption> {
                if let Some(f) = self.fast() {
                    return f.redeem_code(code_hash, now, decide).await;
                }
                if let Some(b) = self.batched() {
                    return b.redeem_code(code_hash, now, decide).await;
                }
                let mut tx = self.begin().await?;
                // RFC 6749 §4.1.2: single use, decided by one conditional UPDATE.
                let claimed: Option<$crate::sql::ClaimedCodeRow> = sqlx::query_as($crate::sql::CLAIM_CODE)
                    .bind(code_hash.as_str())
                    .bind(now)
                    .fetch_optional(&mut *tx)
                    .await?;
                let outcome = match claimed {
                    Some(c) => {
                        let grant: Option<$crate::sql::GrantRow> = sqlx::query_as($crate::sql::SELECT_LIVE_GRANT)
                            .bind(&c.grant_id)
                            .fetch_optional(&mut *tx)
                            .await?;
                        match grant {
                            Some(g) => {
                                let redeemed = $crate::RedeemedCode {
                                    grant: g.try_into()?,
                                    redirect_uri: c.redirect_uri,
                                    code_challenge: c.code_challenge,
                                    nonce: c.nonce,
                                };
                                match decide(&redeemed) {
                                    Ok(t) => {
                                        $crate::sql::store_tokens_in!(tx, t);
                                        $crate::Redemption::Redeemed(Box::new(redeemed))
                                    }
                                    Err(e) => {
                                        sqlx::query($crate::sql::RELEASE_CODE)
                                            .bind(code_hash.as_str())
                                            .execute(&mut *tx)
                                            .await?;
                                        $crate::Redemption::Refused(e)
                                    }
                                }
                            }
                            None => $crate::Redemption::Unknown,
                        }
                    }
                    None => {
                        let peek: Option<(String, Option<i64>)> = sqlx::query_as($crate::sql::PEEK_CODE)
                            .bind(code_hash.as_str())
                            .fetch_optional(&mut *tx)
                            .await?;
                        match peek {
                            None => $crate::Redemption::Unknown,
                            Some((grant_id, Some(_))) => {
                                // RFC 6749 §4.1.2: a reused code revokes what it produced.
                                $crate::sql::revoke_family_in!(tx, &grant_id, now);
                                $crate::Redemption::Replayed { grant_id }
                            }
                            Some((_, None)) => $crate::Redemption::Expired,
                        }
                    }
                };
                tx.commit().await?;
                Ok(outcome)
            }

            async fn store_access_token(&self, t: &$crate::AccessTokenRecord) -> $crate::StoreResult<bool> {
                if let Some(f) = self.fast() {
                    return f.store_access_token(t).await;
                }
                if let Some(b) = self.batched() {
                    return b.store_access_token(t).await;
                }
                let r = $crate::sql::access_insert(&t).execute(&mut *self.write().await?).await?;
                Ok(r.rows_affected() == 1)
            }

            async fn get_access_token(
                &self,
                token_hash: &latchkey_core::TokenHash,
                now: latchkey_core::UnixTime,
            ) -> $crate::StoreResult<Option<$crate::AccessTokenView>> {
                if let Some(f) = self.fast() {
                    return f.get_access_token(token_hash, now);
                }
                if let Some(b) = self.batched() {
                    return b.get_access_token(token_hash, now).await;
                }
                let row: Option<$crate::sql::AccessRow> = sqlx::query_as($crate::sql::SELECT_ACCESS)
                    .bind(token_hash.as_str())
                    .bind(now)
                    .fetch_optional(&self.pool)
                    .await?;
                row.map(TryInto::try_into).transpose()
            }

            async fn revoke_grant(&self, grant_id: &str, now: latchkey_core::UnixTime) -> $crate::StoreResult<bool> {
                let mut tx = self.begin().await?;
                let revoked = $crate::sql::revoke_family_in!(tx, grant_id, now);
                tx.commit().await?;
                Ok(revoked == 1)
            }

            async fn store_tokens(&self, t: &$crate::TokensToStore) -> $crate::StoreResult<()> {
                if let Some(f) = self.fast() {
                    return f.store_tokens(t).await;
                }
                if let (Some(b), Some(a), None) = (self.batched(), &t.access, &t.refresh) {
                    return b.store_access_token(a).await.map(|_| ());
                }
                let mut tx = self.begin().await?;
                $crate::sql::store_tokens_in!(tx, t);
                tx.commit().await?;
                Ok(())
            }

            async fn rotate_refresh(
                &self,
                token_hash: &latchkey_core::TokenHash,
                now: latchkey_core::UnixTime,
                decide: Box<$crate::RefreshDecision>,
            ) -> $crate::StoreResult<$crate::Rotation> {
                if let Some(f) = self.fast() {
                    return f.rotate_refresh(token_hash, now, decide).await;
                }
                if let Some(b) = self.batched() {
                    return b.rotate_refresh(token_hash, now, decide).await;
                }
                let mut tx = self.begin().await?;
                let claimed: Option<(String, String)> = sqlx::query_as($crate::sql::CLAIM_REFRESH)
                    .bind(token_hash.as_str())
                    .bind(now)
                    .fetch_optional(&mut *tx)
                    .await?;
                let outcome = match claimed {
                    Some((grant_id, scope)) => {
                        let grant: Option<$crate::sql::GrantRow> = sqlx::query_as($crate::sql::SELECT_LIVE_GRANT)
                            .bind(&grant_id)
                            .fetch_optional(&mut *tx)
                            .await?;
                        match grant {
                            Some(g) => {
                                let grant: $crate::GrantRecord = g.try_into()?;
                                if grant.expires_at <= now {
                                    $crate::Rotation::Expired
                                } else {
                                    match decide(&grant, &scope) {
                                        Ok(t) => {
                                            $crate::sql::store_tokens_in!(tx, t);
                                            $crate::Rotation::Rotated { grant: Box::new(grant), scope }
                                        }
                                        Err(e) => {
                                            sqlx::query($crate::sql::RELEASE_REFRESH)
                                                .bind(token_hash.as_str())
                                                .execute(&mut *tx)
                                                .await?;
                                            $crate::Rotation::Refused(e)
                                        }
                                    }
                                }
                            }
                            None => $crate::Rotation::Unknown,
                        }
                    }
                    None => {
                        let peek: Option<(String, Option<i64>)> = sqlx::query_as($crate::sql::PEEK_REFRESH)
                            .bind(token_hash.as_str())
                            .fetch_optional(&mut *tx)
                            .await?;
                        match peek {
                            None => $crate::Rotation::Unknown,
                            Some((grant_id, Some(_))) => {
                                // RFC 9700 §4.14.2: a rotated refresh token presented again
                                // revokes the whole family.
                                $crate::sql::revoke_family_in!(tx, &grant_id, now);
                                $crate::Rotation::Replayed { grant_id }
                            }
                            Some((_, None)) => $crate::Rotation::Expired,
                        }
                    }
                };
                tx.commit().await?;
                Ok(outcome)
            }

            async fn get_refresh_token(
                &self,
                token_hash: &latchkey_core::TokenHash,
                now: latchkey_core::UnixTime,
            ) -> $crate::StoreResult<Option<$crate::RefreshTokenView>> {
                let row: Option<$crate::sql::RefreshRow> = sqlx::query_as($crate::sql::SELECT_REFRESH)
                    .bind(token_hash.as_str())
                    .fetch_optional(&self.pool)
                    .await?;
                let Some(r) = row else { return Ok(None) };
                let g: Option<$crate::sql::GrantAnyRow> =
                    sqlx::query_as($crate::sql::SELECT_GRANT_ANY).bind(&r.grant_id).fetch_optional(&self.pool).await?;
                let Some(g) = g else { return Ok(None) };
                let revoked = g.revoked_at.is_some();
                let grant: $crate::GrantRecord = g.grant.try_into()?;
                let active = r.used_at.is_none() && r.expires_at > now && !revoked && grant.expires_at > now;
                Ok(Some($crate::RefreshTokenView {
                    grant,
                    scope: r.scope,
                    created_at: r.created_at,
                    expires_at: r.expires_at,
                    active,
                }))
            }

            async fn get_live_grant(&self, grant_id: &str) -> $crate::StoreResult<Option<$crate::GrantRecord>> {
                if let Some(f) = self.fast() {
                    return f.get_live_grant(grant_id);
                }
                let row: Option<$crate::sql::GrantRow> =
                    sqlx::query_as($crate::sql::SELECT_LIVE_GRANT).bind(grant_id).fetch_optional(&self.pool).await?;
                row.map(TryInto::try_into).transpose()
            }

            async fn delete_access_token(&self, token_hash: &latchkey_core::TokenHash) -> $crate::StoreResult<bool> {
                let r = sqlx::query($crate::sql::DELETE_ACCESS)
                    .bind(token_hash.as_str())
                    .execute(&mut *self.write().await?)
                    .await?;
                Ok(r.rows_affected() == 1)
            }

            async fn revoke_jti(&self, jti: &str, expires_at: latchkey_core::UnixTime) -> $crate::StoreResult<()> {
                sqlx::query($crate::sql::INSERT_REVOKED_JTI)
                    .bind(jti)
                    .bind(expires_at)
                    .execute(&mut *self.write().await?)
                    .await?;
                Ok(())
            }

            async fn is_jti_revoked(&self, jti: &str) -> $crate::StoreResult<bool> {
                if let Some(f) = self.fast() {
                    return f.is_jti_revoked(jti);
                }
                let (n,): (i64,) =
                    sqlx::query_as($crate::sql::SELECT_REVOKED_JTI).bind(jti).fetch_one(&self.pool).await?;
                Ok(n > 0)
            }

            async fn revoke_user_grants(
                &self,
                user_id: &str,
                client_id: Option<&str>,
                now: latchkey_core::UnixTime,
            ) -> $crate::StoreResult<u64> {
                let mut tx = self.begin().await?;
                let ids: Vec<(String,)> = match client_id {
                    Some(c) => {
                        sqlx::query_as($crate::sql::USER_CLIENT_GRANTS)
                            .bind(user_id)
                            .bind(c)
                            .fetch_all(&mut *tx)
                            .await?
                    }
                    None => sqlx::query_as($crate::sql::USER_GRANTS).bind(user_id).fetch_all(&mut *tx).await?,
                };
                for (id,) in &ids {
                    $crate::sql::revoke_family_in!(tx, id, now);
                }
                tx.commit().await?;
                Ok(ids.len() as u64)
            }

            async fn record_assertion_jti(
                &self,
                client_id: &str,
                jti: &str,
                expires_at: latchkey_core::UnixTime,
            ) -> $crate::StoreResult<bool> {
                let r = sqlx::query($crate::sql::INSERT_ASSERTION_JTI)
                    .bind(client_id)
                    .bind(jti)
                    .bind(expires_at)
                    .execute(&mut *self.write().await?)
                    .await?;
                Ok(r.rows_affected() == 1)
            }
        }

        #[async_trait::async_trait]
        impl $crate::LimitStore for $ty {
            async fn login_state(
                &self,
                account: &str,
                source: &str,
                forget_before: latchkey_core::UnixTime,
            ) -> $crate::StoreResult<(i64, latchkey_core::UnixTime)> {
                let row: Option<(i64, i64)> = sqlx::query_as($crate::sql::LOGIN_STATE)
                    .bind(account)
                    .bind(source)
                    .bind(forget_before)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.unwrap_or((0, 0)))
            }

            async fn record_login_failure(
                &self,
                account: &str,
                source: &str,
                now: latchkey_core::UnixTime,
                forget_before: latchkey_core::UnixTime,
            ) -> $crate::StoreResult<()> {
                sqlx::query($crate::sql::LOGIN_FAILURE)
                    .bind(account)
                    .bind(source)
                    .bind(now)
                    .bind(forget_before)
                    .execute(&mut *self.write().await?)
                    .await?;
                Ok(())
            }

            async fn block_login(
                &self,
                account: &str,
                source: &str,
                until: latchkey_core::UnixTime,
                now: latchkey_core::UnixTime,
            ) -> $crate::StoreResult<bool> {
                let r = sqlx::query($crate::sql::LOGIN_BLOCK)
                    .bind(account)
                    .bind(source)
                    .bind(until)
                    .bind(now)
                    .execute(&mut *self.write().await?)
                    .await?;
                Ok(r.rows_affected() == 1)
            }

            async fn clear_login_failures(&self, account: &str, source: &str) -> $crate::StoreResult<()> {
                sqlx::query($crate::sql::LOGIN_CLEAR)
                    .bind(account)
                    .bind(source)
                    .execute(&mut *self.write().await?)
                    .await?;
                Ok(())
            }

            async fn add_rate_counts(&self, counts: &[(String, i64, i64)]) -> $crate::StoreResult<Vec<i64>> {
                let mut tx = self.begin().await?;
                let mut totals = Vec::with_capacity(counts.len());
                for (key, window, delta) in counts {
                    let total: i64 = sqlx::query_scalar($crate::sql::RATE_ADD)
                        .bind(key)
                        .bind(*window)
                        .bind(*delta)
                        .fetch_one(&mut *tx)
                        .await?;
                    totals.push(total);
                }
                tx.commit().await?;
                Ok(totals)
            }
        }

        #[async_trait::async_trait]
        impl $crate::MaintenanceStore for $ty {
            async fn purge_expired(
                &self,
                what: $crate::Purge,
                cutoffs: &$crate::PurgeCutoffs,
                batch: i64,
            ) -> $crate::StoreResult<u64> {
                let Some(before) = cutoffs.due_before(what) else { return Ok(0) };
                let (statements, _) = $crate::sql::purge_sql(what);
                if let [only] = statements {
                    let r = sqlx::query(*only).bind(before).bind(batch).execute(&mut *self.write().await?).await?;
                    return Ok(r.rows_affected());
                }
                let mut tx = self.begin().await?;
                let mut last = 0;
                for sql in statements {
                    last = sqlx::query(*sql).bind(before).bind(batch).execute(&mut *tx).await?.rows_affected();
                }
                tx.commit().await?;
                Ok(last)
            }

            async fn oldest_due(
                &self,
                what: $crate::Purge,
                cutoffs: &$crate::PurgeCutoffs,
            ) -> $crate::StoreResult<Option<latchkey_core::UnixTime>> {
                let (Some(before), (_, Some(sql))) = (cutoffs.due_before(what), $crate::sql::purge_sql(what)) else {
                    return Ok(None);
                };
                let row: Option<(i64,)> = sqlx::query_as(sql).bind(before).fetch_optional(&self.pool).await?;
                Ok(row.map(|(t,)| t))
            }

            async fn delete_user_sessions(&self, user_id: &str) -> $crate::StoreResult<Vec<$crate::SessionRecord>> {
                let rows: Vec<$crate::sql::SessionRow> = sqlx::query_as($crate::sql::DELETE_USER_SESSIONS_RETURNING)
                    .bind(user_id)
                    .fetch_all(&mut *self.write().await?)
                    .await?;
                rows.into_iter().map(TryInto::try_into).collect()
            }

            async fn delete_consent(&self, user_id: &str, client_id: &str) -> $crate::StoreResult<bool> {
                let r = sqlx::query($crate::sql::DELETE_CONSENT)
                    .bind(user_id)
                    .bind(client_id)
                    .execute(&mut *self.write().await?)
                    .await?;
                Ok(r.rows_affected() == 1)
            }
        }

        #[async_trait::async_trait]
        impl $crate::OidcStore for $ty {
            async fn create_initial_access_token(
                &self,
                hash: &latchkey_core::TokenHash,
                now: latchkey_core::UnixTime,
                expires_at: latchkey_core::UnixTime,
            ) -> $crate::StoreResult<()> {
                sqlx::query($crate::sql::INSERT_IAT)
                    .bind(hash.as_str())
                    .bind(now)
                    .bind(expires_at)
                    .execute(&mut *self.write().await?)
                    .await?;
                Ok(())
            }

            async fn use_initial_access_token(
                &self,
                hash: &latchkey_core::TokenHash,
                now: latchkey_core::UnixTime,
            ) -> $crate::StoreResult<bool> {
                let r = sqlx::query($crate::sql::USE_IAT)
                    .bind(hash.as_str())
                    .bind(now)
                    .execute(&mut *self.write().await?)
                    .await?;
                Ok(r.rows_affected() == 1)
            }

            async fn record_session_client(
                &self,
                sid: &str,
                client_id: &str,
                user_id: &str,
            ) -> $crate::StoreResult<()> {
                sqlx::query($crate::sql::INSERT_SESSION_CLIENT)
                    .bind(sid)
                    .bind(client_id)
                    .bind(user_id)
                    .execute(&mut *self.write().await?)
                    .await?;
                Ok(())
            }

            async fn take_session_clients(&self, sid: &str) -> $crate::StoreResult<Vec<String>> {
                let rows: Vec<(String,)> = sqlx::query_as($crate::sql::TAKE_SESSION_CLIENTS)
                    .bind(sid)
                    .fetch_all(&mut *self.write().await?)
                    .await?;
                Ok(rows.into_iter().map(|r| r.0).collect())
            }

            async fn take_user_session_clients(&self, user_id: &str) -> $crate::StoreResult<Vec<(String, String)>> {
                let rows: Vec<(String, String)> = sqlx::query_as($crate::sql::TAKE_USER_SESSION_CLIENTS)
                    .bind(user_id)
                    .fetch_all(&mut *self.write().await?)
                    .await?;
                Ok(rows)
            }

            async fn enqueue_logouts(&self, items: &[$crate::OutboxItem]) -> $crate::StoreResult<()> {
                let mut tx = self.begin().await?;
                for i in items {
                    sqlx::query($crate::sql::INSERT_OUTBOX)
                        .bind(&i.client_id)
                        .bind(&i.uri)
                        .bind(&i.logout_token)
                        .bind(i.next_attempt_at)
                        .bind(i.created_at)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn due_logouts(
                &self,
                now: latchkey_core::UnixTime,
                limit: i64,
            ) -> $crate::StoreResult<Vec<$crate::OutboxItem>> {
                let rows: Vec<$crate::sql::OutboxRow> =
                    sqlx::query_as($crate::sql::DUE_OUTBOX).bind(now).bind(limit).fetch_all(&self.pool).await?;
                Ok(rows.into_iter().map(Into::into).collect())
            }

            async fn mark_logout_delivered(&self, id: i64, now: latchkey_core::UnixTime) -> $crate::StoreResult<()> {
                sqlx::query($crate::sql::OUTBOX_DELIVERED)
                    .bind(id)
                    .bind(now)
                    .execute(&mut *self.write().await?)
                    .await?;
                Ok(())
            }

            async fn mark_logout_failed(
                &self,
                id: i64,
                next_attempt_at: Option<latchkey_core::UnixTime>,
                error: &str,
            ) -> $crate::StoreResult<()> {
                match next_attempt_at {
                    Some(t) => {
                        sqlx::query($crate::sql::OUTBOX_RETRY)
                            .bind(id)
                            .bind(t)
                            .bind(error)
                            .execute(&mut *self.write().await?)
                            .await?;
                    }
                    None => {
                        sqlx::query($crate::sql::OUTBOX_GIVE_UP)
                            .bind(id)
                            .bind(error)
                            .execute(&mut *self.write().await?)
                            .await?;
                    }
                }
                Ok(())
            }

            async fn push_request(&self, r: &$crate::PushedRequest) -> $crate::StoreResult<()> {
                sqlx::query($crate::sql::INSERT_PUSHED)
                    .bind(r.uri_hash.as_str())
                    .bind(&r.client_id)
                    .bind(&r.params)
                    .bind(r.expires_at)
                    .execute(&mut *self.write().await?)
                    .await?;
                Ok(())
            }

            async fn take_pushed_request(
                &self,
                uri_hash: &latchkey_core::TokenHash,
                now: latchkey_core::UnixTime,
            ) -> $crate::StoreResult<Option<$crate::PushedRequest>> {
                let row: Option<$crate::sql::PushedRow> = sqlx::query_as($crate::sql::TAKE_PUSHED)
                    .bind(uri_hash.as_str())
                    .bind(now)
                    .fetch_optional(&mut *self.write().await?)
                    .await?;
                Ok(row.map(Into::into))
            }
        }

        #[async_trait::async_trait]
        impl $crate::HealthStore for $ty {
            async fn ping(&self) -> $crate::StoreResult<()> {
                let _: (i32,) = sqlx::query_as("SELECT 1").fetch_one(&self.pool).await?;
                Ok(())
            }

            async fn close(&self) {
                if let Some(f) = self.fast() {
                    f.close().await;
                }
                self.pool.close().await;
                self.writer.close().await;
            }

            fn backend(&self) -> latchkey_core::settings::Backend {
                Self::BACKEND
            }

            fn pool_stats(&self) -> (u32, usize) {
                (self.pool.size(), self.pool.num_idle())
            }
        }
    };
}

pub(crate) use impl_store;

/// A write connection or transaction, with the SQLite write gate held for as long as it lives
/// (see `fast`); it dereferences to the connection, so `&mut *w` is an executor.
pub(crate) struct Gated<T> {
    pub(crate) inner: T,
    pub(crate) _gate: Option<crate::fast::Gate>,
}

impl<T: std::ops::Deref> std::ops::Deref for Gated<T> {
    type Target = T::Target;
    fn deref(&self) -> &T::Target {
        &self.inner
    }
}

impl<T: std::ops::DerefMut> std::ops::DerefMut for Gated<T> {
    fn deref_mut(&mut self) -> &mut T::Target {
        &mut self.inner
    }
}

impl<DB: sqlx::Database> Gated<sqlx::Transaction<'static, DB>> {
    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        self.inner.commit().await
    }

    pub(crate) async fn rollback(self) -> Result<(), sqlx::Error> {
        self.inner.rollback().await
    }
}
