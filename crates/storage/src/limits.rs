//! Abuse limits: sign-in backoff and the shared request counters. Here: the SQL text, the row types
//! (read by column name), and the store trait's implementation, expanded once per backend (the code
//! is the same; only the sqlx database type differs).

#[derive(sqlx::FromRow)]
pub(crate) struct LoginStateRow {
    pub(crate) failures: i64,
    pub(crate) blocked_until: i64,
}

pub(crate) const LOGIN_STATE: &str = "SELECT CASE WHEN updated_at < $3 THEN 0 ELSE failures END AS failures, blocked_until \
     FROM login_throttle WHERE account = $1 AND source = $2";

pub(crate) const LOGIN_FAILURE: &str = "INSERT INTO login_throttle (account, source, failures, blocked_until, updated_at) \
     VALUES ($1, $2, 1, 0, $3) ON CONFLICT (account, source) DO UPDATE SET \
     failures = CASE WHEN login_throttle.updated_at < $4 THEN 1 ELSE login_throttle.failures + 1 END, updated_at = $3";

pub(crate) const LOGIN_BLOCK: &str =
    "UPDATE login_throttle SET blocked_until = $3 WHERE account = $1 AND source = $2 AND blocked_until <= $4";

pub(crate) const LOGIN_CLEAR: &str = "DELETE FROM login_throttle WHERE account = $1 AND source = $2";

pub(crate) const RATE_ADD: &str = "INSERT INTO rate_counters (key, window_start, count) VALUES ($1, $2, $3) \
     ON CONFLICT (key, window_start) DO UPDATE SET count = rate_counters.count + $3 RETURNING count";

macro_rules! impl_limit_store {
    ($ty:ty) => {
        #[async_trait::async_trait]
        impl $crate::LimitStore for $ty {
            async fn login_state(
                &self,
                account: &str,
                source: &str,
                forget_before: latchkey_core::UnixTime,
            ) -> $crate::StoreResult<(i64, latchkey_core::UnixTime)> {
                let row: Option<$crate::limits::LoginStateRow> = sqlx::query_as($crate::limits::LOGIN_STATE)
                    .bind(account)
                    .bind(source)
                    .bind(forget_before)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.map_or((0, 0), |r| (r.failures, r.blocked_until)))
            }

            async fn record_login_failure(
                &self,
                account: &str,
                source: &str,
                now: latchkey_core::UnixTime,
                forget_before: latchkey_core::UnixTime,
            ) -> $crate::StoreResult<()> {
                sqlx::query($crate::limits::LOGIN_FAILURE)
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
                let r = sqlx::query($crate::limits::LOGIN_BLOCK)
                    .bind(account)
                    .bind(source)
                    .bind(until)
                    .bind(now)
                    .execute(&mut *self.write().await?)
                    .await?;
                Ok(r.rows_affected() == 1)
            }

            async fn clear_login_failures(&self, account: &str, source: &str) -> $crate::StoreResult<()> {
                sqlx::query($crate::limits::LOGIN_CLEAR)
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
                    let total: i64 = sqlx::query_scalar($crate::limits::RATE_ADD)
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
    };
}

pub(crate) use impl_limit_store;
