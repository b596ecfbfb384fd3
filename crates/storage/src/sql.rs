//! The SQL both backends share, and the one implementation of the store traits, expanded once
//! per backend by `impl_store!`. Backend modules hold only what differs (connecting, how a
//! write transaction starts, locking).

use latchkey_core::TokenHash;
use latchkey_core::model::{Client, ClientAuthMethod, GrantType, SigningAlg, User};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{AuditEvent, KeyRecord, SessionRecord, StoreError, StoreResult};

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

pub(crate) const INSERT_CLIENT: &str = "INSERT INTO clients (client_id, name, secret_hash, redirect_uris, post_logout_redirect_uris, auth_method, grant_types, scopes, skip_consent, require_pkce, id_token_signed_response_alg, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)";
pub(crate) const SELECT_CLIENT: &str = "SELECT client_id, name, secret_hash, redirect_uris, post_logout_redirect_uris, auth_method, grant_types, scopes, skip_consent, require_pkce, id_token_signed_response_alg, created_at, updated_at FROM clients WHERE client_id = $1";
pub(crate) const LIST_CLIENTS: &str = "SELECT client_id, name, secret_hash, redirect_uris, post_logout_redirect_uris, auth_method, grant_types, scopes, skip_consent, require_pkce, id_token_signed_response_alg, created_at, updated_at FROM clients ORDER BY created_at, client_id";
pub(crate) const UPDATE_CLIENT: &str = "UPDATE clients SET name = $2, secret_hash = $3, redirect_uris = $4, post_logout_redirect_uris = $5, auth_method = $6, grant_types = $7, scopes = $8, skip_consent = $9, require_pkce = $10, id_token_signed_response_alg = $11, updated_at = $12 WHERE client_id = $1";
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
    id: String,
    username: String,
    password_hash: String,
    email: Option<String>,
    email_verified: bool,
    name: Option<String>,
    claims: String,
    created_at: i64,
    updated_at: i64,
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

// ---- keys and meta ----

pub(crate) const LIST_KEYS: &str = "SELECT kid, alg, public_jwk, private_key, created_at, activates_at, retired_at FROM signing_keys ORDER BY activates_at, created_at, kid";
pub(crate) const COUNT_KEYS_FOR_ALG: &str = "SELECT COUNT(*) FROM signing_keys WHERE alg = $1";
pub(crate) const INSERT_KEY: &str = "INSERT INTO signing_keys (kid, alg, public_jwk, private_key, created_at, activates_at, retired_at) VALUES ($1, $2, $3, $4, $5, $6, $7)";
pub(crate) const RETIRE_KEYS: &str = "UPDATE signing_keys SET retired_at = $2 WHERE alg = $1 AND (retired_at IS NULL OR retired_at > $2) AND activates_at < $2";
pub(crate) const PRUNE_KEYS: &str = "DELETE FROM signing_keys WHERE retired_at IS NOT NULL AND retired_at < $1";
pub(crate) const REWRAP_KEY: &str = "UPDATE signing_keys SET private_key = $2 WHERE kid = $1";
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
                    .bind(b.created_at)
                    .bind(b.updated_at)
                    .execute(&self.pool)
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
                    .bind(b.updated_at)
                    .execute(&self.pool)
                    .await?;
                Ok(r.rows_affected() == 1)
            }

            async fn delete_client(&self, client_id: &str) -> $crate::StoreResult<bool> {
                let r = sqlx::query($crate::sql::DELETE_CLIENT).bind(client_id).execute(&self.pool).await?;
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
                    .execute(&self.pool)
                    .await;
                match r {
                    Ok(_) => Ok($crate::Created::Created),
                    Err(e) if $crate::sql::is_unique_violation(&e) => Ok($crate::Created::AlreadyExists),
                    Err(e) => Err(e.into()),
                }
            }

            async fn get_user(&self, id: &str) -> $crate::StoreResult<Option<latchkey_core::model::User>> {
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
                let r = sqlx::query($crate::sql::DELETE_USER).bind(id).execute(&self.pool).await?;
                Ok(r.rows_affected() == 1)
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
                let r = sqlx::query($crate::sql::PRUNE_KEYS).bind(retired_before).execute(&self.pool).await?;
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

            async fn get_meta(&self, key: &str) -> $crate::StoreResult<Option<String>> {
                let row: Option<(String,)> =
                    sqlx::query_as($crate::sql::GET_META).bind(key).fetch_optional(&self.pool).await?;
                Ok(row.map(|r| r.0))
            }

            async fn put_meta_if_absent(&self, key: &str, value: &str) -> $crate::StoreResult<String> {
                sqlx::query($crate::sql::PUT_META_IF_ABSENT).bind(key).bind(value).execute(&self.pool).await?;
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
                    .execute(&self.pool)
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
                    .execute(&self.pool)
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
                    .fetch_optional(&self.pool)
                    .await?;
                row.map(TryInto::try_into).transpose()
            }
        }

        #[async_trait::async_trait]
        impl $crate::HealthStore for $ty {
            async fn ping(&self) -> $crate::StoreResult<()> {
                let _: (i32,) = sqlx::query_as("SELECT 1").fetch_one(&self.pool).await?;
                Ok(())
            }

            async fn close(&self) {
                self.pool.close().await;
            }

            fn backend(&self) -> latchkey_core::settings::Backend {
                Self::BACKEND
            }
        }
    };
}

pub(crate) use impl_store;
