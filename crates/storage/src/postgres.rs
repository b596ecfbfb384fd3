//! PostgreSQL backend, for deployments that outgrow one machine.

use latchkey_core::settings::{Backend, Settings};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Postgres, Transaction};
use std::str::FromStr;
use std::time::Duration;

use crate::StoreResult;

pub struct PgStore {
    /// Reads.
    pub(crate) pool: PgPool,
    /// Writes and write transactions. PostgreSQL: the same pool.
    pub(crate) writer: PgPool,
    /// The back-channel hot paths' statements, batched (see `pg_batch`); None with
    /// `database.postgres_batching = false` (every statement through the sqlx path).
    batch: Option<crate::pg_batch::PgBatch>,
}

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

/// Advisory lock key that serialises changes to the signing keys across instances.
const KEYS_LOCK: i64 = 0x004c_6174_636b_6579;

impl PgStore {
    /// `MaintenanceStore::reclaim`: a plain VACUUM, outside any transaction (simple protocol).
    /// `table` is one of `Purge::table`'s names, never input.
    pub(crate) async fn reclaim_space(&self, table: &'static str) -> StoreResult<()> {
        if !crate::Purge::ALL.iter().any(|p| p.table() == table) {
            return Ok(());
        }
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("VACUUM (SKIP_LOCKED) {table}"))).execute(&self.pool).await?;
        Ok(())
    }

    pub(crate) const BACKEND: Backend = Backend::Postgres;

    pub async fn connect(settings: &Settings) -> StoreResult<Self> {
        let mut opts = PgConnectOptions::from_str(&settings.database_url)?;
        if settings.database.statement_timeout_ms > 0 {
            opts = opts.options([("statement_timeout", settings.database.statement_timeout_ms.to_string())]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(settings.database.max_connections)
            .acquire_timeout(Duration::from_secs(settings.database.acquire_timeout))
            .connect_with(opts)
            .await?;
        let batch = settings.database.postgres_batching.then(|| crate::pg_batch::PgBatch::spawn(&pool));
        Ok(Self { writer: pool.clone(), batch, pool })
    }

    pub async fn open(settings: &Settings) -> StoreResult<Self> {
        let s = Self::connect(settings).await?;
        // sqlx takes an advisory lock, so instances starting together migrate once.
        MIGRATOR.run(&s.pool).await?;
        Ok(s)
    }

    pub(crate) async fn begin(&self) -> StoreResult<crate::sql::Gated<Transaction<'static, Postgres>>> {
        Ok(crate::sql::Gated { inner: self.writer.begin().await?, _gate: None })
    }

    pub(crate) async fn write(&self) -> StoreResult<crate::sql::Gated<sqlx::pool::PoolConnection<Postgres>>> {
        Ok(crate::sql::Gated { inner: self.writer.acquire().await?, _gate: None })
    }

    /// PostgreSQL has no in-process hot path.
    pub(crate) fn fast(&self) -> Option<&crate::fast::Fast> {
        None
    }

    pub(crate) fn batched(&self) -> Option<&crate::pg_batch::PgBatch> {
        self.batch.as_ref()
    }

    /// Serialise key changes, and tell every instance (LISTEN/NOTIFY) once the change commits.
    pub(crate) async fn lock_keys(tx: &mut crate::sql::Gated<Transaction<'static, Postgres>>) -> StoreResult<()> {
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(KEYS_LOCK).execute(&mut **tx).await?;
        sqlx::query("SELECT pg_notify($1, '')").bind(KEYS_CHANNEL).execute(&mut **tx).await?;
        Ok(())
    }

    /// Master-key rewrap: no client secret or meta value may change between its read and its
    /// rewrite (a concurrent writer would seal under the old key). Reads stay allowed.
    pub(crate) async fn lock_sealed(tx: &mut crate::sql::Gated<Transaction<'static, Postgres>>) -> StoreResult<()> {
        sqlx::query("LOCK TABLE clients, meta IN SHARE ROW EXCLUSIVE MODE").execute(&mut **tx).await?;
        Ok(())
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

// The store traits, one aggregate each (SQL and impl in the aggregate's module).
crate::audit::impl_audit_store!(PgStore);
crate::clients::impl_client_store!(PgStore);
crate::directory::impl_directory_store!(PgStore);
crate::flows::impl_flow_store!(PgStore);
crate::grants::impl_grant_store!(PgStore);
crate::single_use::impl_single_use_store!(PgStore);
crate::health::impl_health_store!(PgStore);
crate::keys::impl_key_store!(PgStore);
crate::limits::impl_limit_store!(PgStore);
crate::maintenance::impl_maintenance_store!(PgStore);
crate::oidc::impl_oidc_store!(PgStore);
crate::sessions::impl_session_store!(PgStore);
crate::users::impl_user_store!(PgStore);

/// The channel `NOTIFY`d when signing keys change.
pub const KEYS_CHANNEL: &str = "latchkey_keys";

/// Advisory-lock key of a job name (stable across instances and versions).
fn job_key(job: &str) -> i64 {
    // FNV-1a, 64 bit: a fixed function, not the process-random std hasher.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in job.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    i64::from_ne_bytes(h.to_ne_bytes())
}

/// Holds the transaction-level advisory lock until released.
struct TxLease(Transaction<'static, Postgres>);

#[async_trait::async_trait]
impl crate::Lease for TxLease {
    /// Ending the transaction now frees the lock now (a dropped transaction only rolls back
    /// when its connection is next used).
    async fn release(self: Box<Self>) {
        if let Err(e) = self.0.rollback().await {
            tracing::warn!(error = %e, "releasing a job lease failed; the lock ends with its connection");
        }
    }
}

#[async_trait::async_trait]
impl crate::CoordinationStore for PgStore {
    async fn try_lease(&self, job: &str) -> StoreResult<Option<Box<dyn crate::Lease>>> {
        let mut tx = self.pool.begin().await?;
        let (got,): (bool,) =
            sqlx::query_as("SELECT pg_try_advisory_xact_lock($1)").bind(job_key(job)).fetch_one(&mut *tx).await?;
        if got { Ok(Some(Box::new(TxLease(tx)))) } else { Ok(None) }
    }

    async fn key_changes(&self) -> Option<tokio::sync::mpsc::Receiver<()>> {
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        let pool = self.pool.clone();
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(200);
            loop {
                match sqlx::postgres::PgListener::connect_with(&pool).await {
                    Ok(mut listener) => {
                        if let Err(e) = listener.listen(KEYS_CHANNEL).await {
                            tracing::warn!(error = %e, "LISTEN for key changes failed");
                        } else {
                            backoff = Duration::from_millis(200);
                            // A (re)connection may have missed notifications: re-read once.
                            if tx.send(()).await.is_err() {
                                return;
                            }
                            loop {
                                match listener.recv().await {
                                    Ok(_) => {
                                        if tx.send(()).await.is_err() {
                                            return;
                                        }
                                    }
                                    Err(e) => {
                                        tracing::warn!(error = %e, "key change listener lost its connection");
                                        break;
                                    }
                                }
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot listen for key changes"),
                }
                if pool.is_closed() || tx.is_closed() {
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        });
        Some(rx)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn job_keys_are_stable_and_distinct() {
        assert_eq!(super::job_key("housekeeping"), super::job_key("housekeeping"));
        assert_ne!(super::job_key("housekeeping"), super::job_key("logout_delivery"));
    }
}
