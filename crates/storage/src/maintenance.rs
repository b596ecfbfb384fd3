//! Housekeeping: expired rows in bounded batches; ending a user's sessions; forgetting consent.
//! Here: the SQL text, the row types (read by column name), and the store trait's implementation,
//! expanded once per backend (the code is the same; only the sqlx database type differs).

pub(crate) const DELETE_USER_SESSIONS_RETURNING: &str = "DELETE FROM sessions WHERE user_id = $1 RETURNING id_hash, sid, user_id, auth_time, acr, amr, created_at, expires_at";

pub(crate) const DELETE_CONSENT: &str = "DELETE FROM consents WHERE user_id = $1 AND client_id = $2";

/// Housekeeping statements: each deletes at most `$2` expired rows.
pub(crate) const PURGES: &[&str] = &[
    "DELETE FROM authorization_codes WHERE code_hash IN (SELECT code_hash FROM authorization_codes WHERE expires_at < $1 LIMIT $2)",
    "DELETE FROM access_tokens WHERE token_hash IN (SELECT token_hash FROM access_tokens WHERE expires_at < $1 LIMIT $2)",
    "DELETE FROM refresh_tokens WHERE token_hash IN (SELECT token_hash FROM refresh_tokens WHERE expires_at < $1 LIMIT $2)",
    "DELETE FROM sessions WHERE id_hash IN (SELECT id_hash FROM sessions WHERE expires_at < $1 LIMIT $2)",
    "DELETE FROM interactions WHERE id_hash IN (SELECT id_hash FROM interactions WHERE expires_at < $1 LIMIT $2)",
    "DELETE FROM revoked_jtis WHERE jti IN (SELECT jti FROM revoked_jtis WHERE expires_at < $1 LIMIT $2)",
    "DELETE FROM assertion_jtis WHERE (client_id, jti) IN (SELECT client_id, jti FROM assertion_jtis WHERE expires_at < $1 LIMIT $2)",
    "DELETE FROM grants WHERE id IN (SELECT id FROM grants WHERE expires_at < $1 LIMIT $2)",
    "DELETE FROM initial_access_tokens WHERE token_hash IN (SELECT token_hash FROM initial_access_tokens WHERE expires_at < $1 LIMIT $2)",
    "DELETE FROM pushed_requests WHERE uri_hash IN (SELECT uri_hash FROM pushed_requests WHERE expires_at < $1 LIMIT $2)",
    // Participants of sessions that are gone (expired and purged).
    "DELETE FROM session_clients WHERE sid IN (SELECT sc.sid FROM session_clients sc WHERE $1 > 0 AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.sid = sc.sid) LIMIT $2)",
    // Delivered (or abandoned) logouts are kept a week for operators, then go.
    "DELETE FROM logout_outbox WHERE id IN (SELECT id FROM logout_outbox WHERE delivered_at IS NOT NULL AND created_at < $1 - 604800 LIMIT $2)",
    // Sign-in failures a day old and counters an hour old no longer matter.
    "DELETE FROM login_throttle WHERE (account, source) IN (SELECT account, source FROM login_throttle WHERE updated_at < $1 - 86400 AND blocked_until < $1 LIMIT $2)",
    "DELETE FROM rate_counters WHERE (key, window_start) IN (SELECT key, window_start FROM rate_counters WHERE window_start < $1 - 3600 LIMIT $2)",
];

macro_rules! impl_maintenance_store {
    ($ty:ty) => {
        #[async_trait::async_trait]
        impl $crate::MaintenanceStore for $ty {
            async fn purge_expired(&self, now: latchkey_core::UnixTime, batch: i64) -> $crate::StoreResult<u64> {
                let mut total = 0;
                for sql in $crate::maintenance::PURGES {
                    let r = sqlx::query(*sql).bind(now).bind(batch).execute(&mut *self.write().await?).await?;
                    total += r.rows_affected();
                }
                Ok(total)
            }

            async fn delete_user_sessions(&self, user_id: &str) -> $crate::StoreResult<Vec<$crate::SessionRecord>> {
                let rows: Vec<$crate::sessions::SessionRow> =
                    sqlx::query_as($crate::maintenance::DELETE_USER_SESSIONS_RETURNING)
                        .bind(user_id)
                        .fetch_all(&mut *self.write().await?)
                        .await?;
                rows.into_iter().map(TryInto::try_into).collect()
            }

            async fn delete_consent(&self, user_id: &str, client_id: &str) -> $crate::StoreResult<bool> {
                let r = sqlx::query($crate::maintenance::DELETE_CONSENT)
                    .bind(user_id)
                    .bind(client_id)
                    .execute(&mut *self.write().await?)
                    .await?;
                Ok(r.rows_affected() == 1)
            }
        }
    };
}

pub(crate) use impl_maintenance_store;
