//! PostgreSQL backend, for deployments that outgrow one machine.

use latchkey_core::settings::{Backend, Settings};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Postgres, Transaction};
use std::str::FromStr;
use std::time::Duration;

use crate::StoreResult;

pub struct PgStore {
    pub(crate) pool: PgPool,
}

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

/// Advisory lock key that serialises changes to the signing keys across instances.
const KEYS_LOCK: i64 = 0x004c_6174_636b_6579;

impl PgStore {
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
        Ok(Self { pool })
    }

    pub async fn open(settings: &Settings) -> StoreResult<Self> {
        let s = Self::connect(settings).await?;
        // sqlx takes an advisory lock, so instances starting together migrate once.
        MIGRATOR.run(&s.pool).await?;
        Ok(s)
    }

    pub(crate) async fn begin(&self) -> StoreResult<Transaction<'static, Postgres>> {
        Ok(self.pool.begin().await?)
    }

    pub(crate) async fn lock_keys(tx: &mut Transaction<'static, Postgres>) -> StoreResult<()> {
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(KEYS_LOCK).execute(&mut **tx).await?;
        Ok(())
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

crate::sql::impl_store!(PgStore);
