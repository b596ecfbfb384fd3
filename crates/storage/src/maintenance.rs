//! Housekeeping: expired rows in bounded batches; ending a user's sessions; forgetting consent.
//! Here: the SQL text, the row types (read by column name), and the store trait's implementation,
//! expanded once per backend (the code is the same; only the sqlx database type differs).

pub(crate) const DELETE_USER_SESSIONS_RETURNING: &str = "DELETE FROM sessions WHERE user_id = $1 RETURNING id_hash, sid, user_id, auth_time, acr, amr, created_at, expires_at";

pub(crate) const DELETE_CONSENT: &str = "DELETE FROM consents WHERE user_id = $1 AND client_id = $2";

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

macro_rules! impl_maintenance_store {
    ($ty:ty) => {
        #[async_trait::async_trait]
        impl $crate::MaintenanceStore for $ty {
            async fn purge_expired(
                &self,
                what: $crate::Purge,
                cutoffs: &$crate::PurgeCutoffs,
                batch: i64,
            ) -> $crate::StoreResult<u64> {
                let Some(before) = cutoffs.due_before(what) else { return Ok(0) };
                let (statements, _) = $crate::maintenance::purge_sql(what);
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
                let (Some(before), (_, Some(sql))) = (cutoffs.due_before(what), $crate::maintenance::purge_sql(what))
                else {
                    return Ok(None);
                };
                let row: Option<(i64,)> = sqlx::query_as(sql).bind(before).fetch_optional(&self.pool).await?;
                Ok(row.map(|(t,)| t))
            }

            async fn reclaim(&self, table: &'static str) -> $crate::StoreResult<()> {
                self.reclaim_space(table).await
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
