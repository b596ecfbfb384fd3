//! Grants, authorization codes, access and refresh tokens, revocation. Single use itself is in
//! `single_use`. Here: the SQL text, the row types (read by column name), and the store trait's
//! implementation, expanded once per backend (the code is the same; only the sqlx database type
//! differs).

use crate::sql::from_json;
use crate::{AccessTokenView, GrantRecord, StoreError, StoreResult};

pub(crate) const INSERT_GRANT: &str = "INSERT INTO grants (id, client_id, user_id, scope, claims, auth_time, acr, amr, sid, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";

pub(crate) const INSERT_CODE: &str = "INSERT INTO authorization_codes (code_hash, grant_id, redirect_uri, code_challenge, nonce, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)";

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

impl GrantRow {
    /// The same row through rusqlite (the SQLite hot path), by column name.
    pub(crate) fn from_rusqlite(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: r.get("id")?,
            client_id: r.get("client_id")?,
            user_id: r.get("user_id")?,
            scope: r.get("scope")?,
            claims: r.get("claims")?,
            auth_time: r.get("auth_time")?,
            acr: r.get("acr")?,
            amr: r.get("amr")?,
            sid: r.get("sid")?,
            created_at: r.get("created_at")?,
            expires_at: r.get("expires_at")?,
        })
    }
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

pub(crate) const INSERT_REFRESH: &str = "INSERT INTO refresh_tokens (token_hash, grant_id, scope, created_at, expires_at) SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM grants WHERE id = $2 AND revoked_at IS NULL)";

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
        let r = sqlx::query($crate::grants::REVOKE_GRANT).bind($grant_id).bind($now).execute(&mut *$tx).await?;
        sqlx::query($crate::grants::DELETE_GRANT_ACCESS).bind($grant_id).execute(&mut *$tx).await?;
        sqlx::query($crate::grants::DELETE_GRANT_REFRESH).bind($grant_id).execute(&mut *$tx).await?;
        r.rows_affected()
    }};
}

pub(crate) use revoke_family_in;

/// Store what a grant step produced, inside its transaction.
macro_rules! store_tokens_in {
    ($tx:expr, $t:expr) => {{
        if let Some(a) = &$t.access {
            $crate::grants::access_insert(a).execute(&mut *$tx).await?;
        }
        if let Some(r) = &$t.refresh {
            sqlx::query($crate::grants::INSERT_REFRESH)
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

macro_rules! impl_grant_store {
    ($ty:ty) => {
        #[async_trait::async_trait]
        impl $crate::GrantStore for $ty {
            async fn issue_code(&self, g: &$crate::GrantRecord, c: &$crate::CodeRecord) -> $crate::StoreResult<()> {
                if let Some(f) = self.fast() {
                    return f.issue_code(g, c).await;
                }
                let mut tx = self.begin().await?;
                sqlx::query($crate::grants::INSERT_GRANT)
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
                sqlx::query($crate::grants::INSERT_CODE)
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

            async fn store_access_token(&self, t: &$crate::AccessTokenRecord) -> $crate::StoreResult<bool> {
                if let Some(f) = self.fast() {
                    return f.store_access_token(t).await;
                }
                if let Some(b) = self.batched() {
                    return b.store_access_token(t).await;
                }
                let r = $crate::grants::access_insert(&t).execute(&mut *self.write().await?).await?;
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
                let row: Option<$crate::grants::AccessRow> = sqlx::query_as($crate::grants::SELECT_ACCESS)
                    .bind(token_hash.as_str())
                    .bind(now)
                    .fetch_optional(&self.pool)
                    .await?;
                row.map(TryInto::try_into).transpose()
            }

            async fn revoke_grant(&self, grant_id: &str, now: latchkey_core::UnixTime) -> $crate::StoreResult<bool> {
                let mut tx = self.begin().await?;
                let revoked = $crate::grants::revoke_family_in!(tx, grant_id, now);
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
                $crate::grants::store_tokens_in!(tx, t);
                tx.commit().await?;
                Ok(())
            }

            async fn get_refresh_token(
                &self,
                token_hash: &latchkey_core::TokenHash,
                now: latchkey_core::UnixTime,
            ) -> $crate::StoreResult<Option<$crate::RefreshTokenView>> {
                let row: Option<$crate::grants::RefreshRow> = sqlx::query_as($crate::grants::SELECT_REFRESH)
                    .bind(token_hash.as_str())
                    .fetch_optional(&self.pool)
                    .await?;
                let Some(r) = row else { return Ok(None) };
                let g: Option<$crate::grants::GrantAnyRow> = sqlx::query_as($crate::grants::SELECT_GRANT_ANY)
                    .bind(&r.grant_id)
                    .fetch_optional(&self.pool)
                    .await?;
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
                let row: Option<$crate::grants::GrantRow> =
                    sqlx::query_as($crate::grants::SELECT_LIVE_GRANT).bind(grant_id).fetch_optional(&self.pool).await?;
                row.map(TryInto::try_into).transpose()
            }

            async fn delete_access_token(&self, token_hash: &latchkey_core::TokenHash) -> $crate::StoreResult<bool> {
                let r = sqlx::query($crate::grants::DELETE_ACCESS)
                    .bind(token_hash.as_str())
                    .execute(&mut *self.write().await?)
                    .await?;
                Ok(r.rows_affected() == 1)
            }

            async fn revoke_jti(&self, jti: &str, expires_at: latchkey_core::UnixTime) -> $crate::StoreResult<()> {
                sqlx::query($crate::grants::INSERT_REVOKED_JTI)
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
                    sqlx::query_as($crate::grants::SELECT_REVOKED_JTI).bind(jti).fetch_one(&self.pool).await?;
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
                        sqlx::query_as($crate::grants::USER_CLIENT_GRANTS)
                            .bind(user_id)
                            .bind(c)
                            .fetch_all(&mut *tx)
                            .await?
                    }
                    None => sqlx::query_as($crate::grants::USER_GRANTS).bind(user_id).fetch_all(&mut *tx).await?,
                };
                for (id,) in &ids {
                    $crate::grants::revoke_family_in!(tx, id, now);
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
                let r = sqlx::query($crate::grants::INSERT_ASSERTION_JTI)
                    .bind(client_id)
                    .bind(jti)
                    .bind(expires_at)
                    .execute(&mut *self.write().await?)
                    .await?;
                Ok(r.rows_affected() == 1)
            }
        }
    };
}

pub(crate) use impl_grant_store;
