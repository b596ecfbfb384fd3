//! OpenID profiles: registration tokens, session participants, the back-channel logout outbox,
//! pushed requests. Here: the SQL text, the row types (read by column name), and the store trait's
//! implementation, expanded once per backend (the code is the same; only the sqlx database type
//! differs).

use latchkey_core::TokenHash;

pub(crate) const INSERT_IAT: &str =
    "INSERT INTO initial_access_tokens (token_hash, created_at, expires_at) VALUES ($1, $2, $3)";

pub(crate) const USE_IAT: &str = "DELETE FROM initial_access_tokens WHERE token_hash = $1 AND expires_at > $2";

pub(crate) const INSERT_SESSION_CLIENT: &str =
    "INSERT INTO session_clients (sid, client_id, user_id) VALUES ($1, $2, $3) ON CONFLICT (sid, client_id) DO NOTHING";

pub(crate) const TAKE_SESSION_CLIENTS: &str = "DELETE FROM session_clients WHERE sid = $1 RETURNING client_id";

#[derive(sqlx::FromRow)]
pub(crate) struct SessionClientRow {
    pub(crate) sid: String,
    pub(crate) client_id: String,
}

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

pub(crate) const TAKE_PUSHED: &str = "DELETE FROM pushed_requests WHERE uri_hash = $1 AND client_id = $3 AND expires_at > $2 RETURNING uri_hash, client_id, params, expires_at";

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

macro_rules! impl_oidc_store {
    ($ty:ty) => {
        #[async_trait::async_trait]
        impl $crate::OidcStore for $ty {
            async fn create_initial_access_token(
                &self,
                hash: &latchkey_core::TokenHash,
                now: latchkey_core::UnixTime,
                expires_at: latchkey_core::UnixTime,
            ) -> $crate::StoreResult<()> {
                sqlx::query($crate::oidc::INSERT_IAT)
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
                let r = sqlx::query($crate::oidc::USE_IAT)
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
                sqlx::query($crate::oidc::INSERT_SESSION_CLIENT)
                    .bind(sid)
                    .bind(client_id)
                    .bind(user_id)
                    .execute(&mut *self.write().await?)
                    .await?;
                Ok(())
            }

            async fn take_session_clients(&self, sid: &str) -> $crate::StoreResult<Vec<String>> {
                let rows: Vec<(String,)> = sqlx::query_as($crate::oidc::TAKE_SESSION_CLIENTS)
                    .bind(sid)
                    .fetch_all(&mut *self.write().await?)
                    .await?;
                Ok(rows.into_iter().map(|r| r.0).collect())
            }

            async fn take_user_session_clients(&self, user_id: &str) -> $crate::StoreResult<Vec<(String, String)>> {
                let rows: Vec<$crate::oidc::SessionClientRow> = sqlx::query_as($crate::oidc::TAKE_USER_SESSION_CLIENTS)
                    .bind(user_id)
                    .fetch_all(&mut *self.write().await?)
                    .await?;
                Ok(rows.into_iter().map(|r| (r.sid, r.client_id)).collect())
            }

            async fn enqueue_logouts(&self, items: &[$crate::OutboxItem]) -> $crate::StoreResult<()> {
                let mut tx = self.begin().await?;
                for i in items {
                    sqlx::query($crate::oidc::INSERT_OUTBOX)
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
                let rows: Vec<$crate::oidc::OutboxRow> =
                    sqlx::query_as($crate::oidc::DUE_OUTBOX).bind(now).bind(limit).fetch_all(&self.pool).await?;
                Ok(rows.into_iter().map(Into::into).collect())
            }

            async fn mark_logout_delivered(&self, id: i64, now: latchkey_core::UnixTime) -> $crate::StoreResult<()> {
                sqlx::query($crate::oidc::OUTBOX_DELIVERED)
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
                        sqlx::query($crate::oidc::OUTBOX_RETRY)
                            .bind(id)
                            .bind(t)
                            .bind(error)
                            .execute(&mut *self.write().await?)
                            .await?;
                    }
                    None => {
                        sqlx::query($crate::oidc::OUTBOX_GIVE_UP)
                            .bind(id)
                            .bind(error)
                            .execute(&mut *self.write().await?)
                            .await?;
                    }
                }
                Ok(())
            }

            async fn push_request(&self, r: &$crate::PushedRequest) -> $crate::StoreResult<()> {
                sqlx::query($crate::oidc::INSERT_PUSHED)
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
                client_id: &str,
                now: latchkey_core::UnixTime,
            ) -> $crate::StoreResult<Option<$crate::PushedRequest>> {
                let row: Option<$crate::oidc::PushedRow> = sqlx::query_as($crate::oidc::TAKE_PUSHED)
                    .bind(uri_hash.as_str())
                    .bind(now)
                    .bind(client_id)
                    .fetch_optional(&mut *self.write().await?)
                    .await?;
                Ok(row.map(Into::into))
            }
        }
    };
}

pub(crate) use impl_oidc_store;
