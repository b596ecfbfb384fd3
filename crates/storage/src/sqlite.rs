//! SQLite backend: a file in the data directory, WAL, foreign keys, busy timeout, and write
//! transactions that take the write lock up front (`BEGIN IMMEDIATE`).

use latchkey_core::settings::{Backend, Settings};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, Transaction};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use crate::{StoreError, StoreResult};

pub struct SqliteStore {
    /// Reads.
    pub(crate) pool: SqlitePool,
    /// Writes and write transactions. SQLite: one connection, so writers queue in the
    /// process instead of sleeping in SQLite's busy handler; the database has one writer anyway.
    pub(crate) writer: SqlitePool,
    /// The token endpoint's writes and the back-channel reads (see `fast`); None for an
    /// in-memory database, which other connections cannot see.
    pub(crate) fast: Option<crate::fast::Fast>,
}

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");

impl SqliteStore {
    /// `MaintenanceStore::reclaim`: nothing to do; SQLite reuses freed pages itself.
    pub(crate) async fn reclaim_space(&self, _table: &'static str) -> StoreResult<()> {
        Ok(())
    }

    pub(crate) const BACKEND: Backend = Backend::Sqlite;

    /// Connect, creating the file (and its directory) on first start.
    pub async fn connect(settings: &Settings) -> StoreResult<Self> {
        let url = settings.effective_database_url();
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let opts = SqliteConnectOptions::from_str(&url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL in WAL mode survives a process crash (SIGKILL); only an OS crash or power
            // loss can lose the last transactions.
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        // With the hot path, a checkpointer thread keeps the WAL short (see `fast`); commits do
        // not checkpoint.
        let in_memory = in_memory || opts.get_filename().as_os_str().is_empty();
        // An in-memory database cannot be shared with the writer thread's connections.
        let writer_thread = !in_memory && settings.database.sqlite_writer_thread;
        let opts = match writer_thread {
            false => opts,
            true => opts.pragma("wal_autocheckpoint", "0"),
        };
        if !in_memory {
            private_files(opts.get_filename())?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(settings.database.max_connections)
            .acquire_timeout(Duration::from_secs(settings.database.acquire_timeout))
            .connect_with(opts.clone())
            .await?;
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(settings.database.acquire_timeout))
            .connect_with(opts.clone())
            .await?;
        let fast = match !writer_thread {
            true => None,
            false => Some(crate::fast::Fast::open(
                opts.get_filename(),
                Duration::from_secs(10),
                settings.database.sqlite_wal_max_bytes,
            )?),
        };
        Ok(Self { pool, writer, fast })
    }

    pub async fn open(settings: &Settings) -> StoreResult<Self> {
        let s = Self::connect(settings).await?;
        MIGRATOR.run(&s.pool).await?;
        Ok(s)
    }

    pub(crate) async fn begin(&self) -> StoreResult<crate::sql::Gated<Transaction<'static, Sqlite>>> {
        let gate = self.gate().await;
        // A deferred BEGIN that later writes fails with "database is locked" under concurrency.
        Ok(crate::sql::Gated { inner: self.writer.begin_with("BEGIN IMMEDIATE").await?, _gate: gate })
    }

    /// The writer connection, for one autocommit statement.
    pub(crate) async fn write(&self) -> StoreResult<crate::sql::Gated<sqlx::pool::PoolConnection<Sqlite>>> {
        let gate = self.gate().await;
        Ok(crate::sql::Gated { inner: self.writer.acquire().await?, _gate: gate })
    }

    async fn gate(&self) -> Option<crate::fast::Gate> {
        match &self.fast {
            Some(f) => Some(f.gate().await),
            None => None,
        }
    }

    pub(crate) fn fast(&self) -> Option<&crate::fast::Fast> {
        self.fast.as_ref()
    }

    /// SQLite's reads and writes take the in-process path instead.
    pub(crate) fn batched(&self) -> Option<&crate::pg_batch::PgBatch> {
        None
    }

    /// BEGIN IMMEDIATE already holds the only write lock.
    pub(crate) async fn lock_keys(_tx: &mut crate::sql::Gated<Transaction<'static, Sqlite>>) -> StoreResult<()> {
        Ok(())
    }

    /// BEGIN IMMEDIATE already keeps every writer out until the rewrap commits.
    pub(crate) async fn lock_sealed(_tx: &mut crate::sql::Gated<Transaction<'static, Sqlite>>) -> StoreResult<()> {
        Ok(())
    }

    /// A consistent copy of the live database in a new file (`VACUUM INTO`, SQLite 3.27+): it
    /// reads one snapshot, so it is safe while a server writes. Refuses an existing file. The
    /// copy holds what the database holds, so it is created 0600 before SQLite fills it.
    pub async fn backup_into(&self, path: &Path) -> StoreResult<()> {
        let target =
            path.to_str().ok_or_else(|| StoreError::Corrupt(format!("backup path {} is not UTF-8", path.display())))?;
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
        o.open(path).map_err(|e| StoreError::Corrupt(format!("cannot create {}: {e}", path.display())))?;
        // VACUUM INTO accepts an empty file.
        let r = sqlx::query("VACUUM INTO $1").bind(target).execute(&self.pool).await;
        if r.is_err() {
            let _ = std::fs::remove_file(path);
        }
        r?;
        Ok(())
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

// The store traits, one aggregate each (SQL and impl in the aggregate's module).
crate::audit::impl_audit_store!(SqliteStore);
crate::clients::impl_client_store!(SqliteStore);
crate::directory::impl_directory_store!(SqliteStore);
crate::flows::impl_flow_store!(SqliteStore);
crate::grants::impl_grant_store!(SqliteStore);
crate::single_use::impl_single_use_store!(SqliteStore);
crate::health::impl_health_store!(SqliteStore);
crate::keys::impl_key_store!(SqliteStore);
crate::limits::impl_limit_store!(SqliteStore);
crate::maintenance::impl_maintenance_store!(SqliteStore);
crate::oidc::impl_oidc_store!(SqliteStore);
crate::sessions::impl_session_store!(SqliteStore);
crate::users::impl_user_store!(SqliteStore);

/// The database holds password hashes, personal data and the audit log: its directory is
/// created 0700 and the file 0600 before SQLite opens it. SQLite gives the `-wal` and `-shm`
/// files it creates the database file's mode, so they are 0600 too. Existing files are not
/// changed: one readable by group or others gets a warning naming it at every start, and the
/// operator decides (`chmod`).
fn private_files(db: &Path) -> StoreResult<()> {
    let fail = |what: &str, p: &Path, e: std::io::Error| {
        StoreError::Corrupt(format!("cannot create {what} {}: {e}", p.display()))
    };
    if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            let mut b = std::fs::DirBuilder::new();
            b.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
            b.create(dir).map_err(|e| fail("database directory", dir, e))?;
        }
        warn_if_loose(dir);
    }
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    match o.open(db) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(fail("database file", db, e)),
    }
    for suffix in ["", "-wal", "-shm"] {
        let mut p = db.as_os_str().to_owned();
        p.push(suffix);
        warn_if_loose(Path::new(&p));
    }
    Ok(())
}

/// Warn when `path` exists and group or others may read, write or enter it.
pub fn warn_if_loose(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(m) = std::fs::metadata(path) {
            let mode = m.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                let want = if m.is_dir() { "0700" } else { "0600" };
                tracing::warn!(
                    "{} has mode {mode:04o}: other users can reach the password hashes and personal data in it; chmod {want} it",
                    path.display()
                );
            }
        }
    }
}

struct LocalLease;

#[async_trait::async_trait]
impl crate::Lease for LocalLease {
    async fn release(self: Box<Self>) {}
}

#[async_trait::async_trait]
impl crate::CoordinationStore for SqliteStore {
    /// SQLite serves one machine: every job runs here.
    async fn try_lease(&self, _job: &str) -> StoreResult<Option<Box<dyn crate::Lease>>> {
        Ok(Some(Box::new(LocalLease)))
    }

    async fn key_changes(&self) -> Option<tokio::sync::mpsc::Receiver<()>> {
        None
    }
}
