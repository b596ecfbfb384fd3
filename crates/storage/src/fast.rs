//! The SQLite hot path: the token endpoint's writes through one writer thread that commits
//! several requests' writes in one transaction (group commit), and the back-channel reads on
//! in-process connections.
//!
//! Why: through sqlx every SQLite statement is a round trip to the connection's worker thread
//! (two thread wake-ups), and a code redemption is six of them on the one writer, so on a
//! 2-core machine the writer spent most of its time waiting to be scheduled. Here a whole
//! batch of writes runs on one thread without leaving it: the thread takes every queued job,
//! runs each inside its own SAVEPOINT of one `BEGIN IMMEDIATE` transaction (a job that fails
//! is rolled back alone), commits once, and only then answers each caller. Durability is
//! unchanged: nobody hears "done" before the commit that holds their write.
//!
//! Reads (a primary-key lookup, a few µs on a cached page) run on the calling thread with a
//! connection from a small idle list: WAL readers never wait for the writer.
//!
//! The other writes still go through sqlx's writer connection; a gate (an async mutex) keeps
//! them and the writer thread's batches from overlapping, so neither sleeps in SQLite's busy
//! handler. Other processes (the CLI, a second instance on the same file) meet the busy timeout.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use latchkey_core::UnixTime;
use latchkey_core::model::User;
use rusqlite::types::ToSql;
use rusqlite::{Connection, OpenFlags, Row, Statement};
use tokio::sync::oneshot;

use crate::{
    AccessTokenRecord, AccessTokenView, CodeRecord, GrantRecord, StoreError, StoreResult, StoredCredential,
    TokensToStore,
};
use crate::{single_use, sql};

/// Jobs in one transaction at most (a bound on one commit's latency).
const MAX_BATCH: usize = 128;
/// Idle read connections kept.
const MAX_IDLE_READERS: usize = 8;

/// After a commit, the checkpointer waits this long (more commits join) and then folds the WAL
/// back into the database file. Small and frequent checkpoints keep the WAL in memory and
/// each checkpoint short: at 5 k refreshes/s, checkpoints every 250 ms (or SQLite's default
/// of 1000 pages at commit) gave a p99 of 12–14 ms, every 20–50 ms a p99 of 3 ms.
const CHECKPOINT_AFTER: Duration = Duration::from_millis(20);
/// Writes through sqlx do not signal the checkpointer; it also runs this often.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

pub(crate) struct Fast {
    path: PathBuf,
    /// Dropped (with the writer thread's clone) to stop the checkpointer.
    checkpointer: Mutex<Option<mpsc::SyncSender<()>>>,
    busy_timeout: Duration,
    readers: Mutex<Vec<Connection>>,
    jobs: Mutex<Option<mpsc::Sender<Box<dyn Job>>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    checkpoint_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    closed: std::sync::atomic::AtomicBool,
    gate: Arc<tokio::sync::Mutex<()>>,
}

pub(crate) use crate::sql::Gate;

impl Fast {
    /// The writer thread and its connection; reader connections are opened on demand.
    pub(crate) fn open(path: &Path, busy_timeout: Duration, wal_max_bytes: u64) -> StoreResult<Self> {
        let conn = open_conn(path, busy_timeout)?;
        let gate = Arc::new(tokio::sync::Mutex::new(()));
        let (tx, rx) = mpsc::channel::<Box<dyn Job>>();
        let ckpt_conn = open_conn(path, busy_timeout)?;
        // A connection that resets the WAL truncates it to this size (SQLite otherwise keeps
        // the largest size it ever reached).
        let limit = i64::try_from(wal_max_bytes).unwrap_or(i64::MAX);
        for c in [&conn, &ckpt_conn] {
            c.query_row(&format!("PRAGMA journal_size_limit = {limit}"), [], |_| Ok(()))?;
        }
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        let wal = Arc::new(Wal { path: PathBuf::from(wal), max_bytes: wal_max_bytes, checkpointing: Mutex::new(()) });
        let writer_wal = wal.clone();
        let (committed, commits) = mpsc::sync_channel::<()>(1);
        let checkpoint_thread = std::thread::Builder::new()
            .name("latchkey-sqlite-checkpoint".into())
            .spawn(move || checkpoint_loop(ckpt_conn, commits, wal))
            .map_err(|e| StoreError::Engine(format!("cannot start the SQLite checkpoint thread: {e}")))?;
        let (g, signal) = (gate.clone(), committed.clone());
        let thread = std::thread::Builder::new()
            .name("latchkey-sqlite-writer".into())
            .spawn(move || writer_loop(conn, rx, g, signal, writer_wal))
            .map_err(|e| StoreError::Engine(format!("cannot start the SQLite writer thread: {e}")))?;
        let stop = committed;
        Ok(Self {
            checkpointer: Mutex::new(Some(stop)),
            path: path.to_owned(),
            busy_timeout,
            readers: Mutex::new(Vec::new()),
            jobs: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
            checkpoint_thread: Mutex::new(Some(checkpoint_thread)),
            closed: std::sync::atomic::AtomicBool::new(false),
            gate,
        })
    }

    pub(crate) async fn gate(&self) -> Gate {
        self.gate.clone().lock_owned().await
    }

    /// Stop the writer thread once the queued jobs are done, and close every connection.
    pub(crate) async fn close(&self) {
        self.closed.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Ok(mut j) = self.jobs.lock() {
            j.take();
        }
        if let Ok(mut c) = self.checkpointer.lock() {
            c.take();
        }
        // The writer thread first (it holds a sender of the checkpointer's channel).
        let writer = self.thread.lock().ok().and_then(|mut t| t.take());
        let checkpointer = self.checkpoint_thread.lock().ok().and_then(|mut t| t.take());
        let _ = tokio::task::spawn_blocking(move || {
            for h in [writer, checkpointer].into_iter().flatten() {
                let _ = h.join();
            }
        })
        .await;
        if let Ok(mut r) = self.readers.lock() {
            r.clear();
        }
    }

    /// Run `f` in the next batch; its answer arrives after the batch commits.
    async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Box<dyn Job> = Box::new(Pending { f: Some(f), out: None, reply: Some(reply) });
        {
            let jobs = self.jobs.lock().map_err(|_| StoreError::Engine("writer queue poisoned".into()))?;
            let Some(tx) = jobs.as_ref() else {
                return Err(StoreError::Engine("the store is closed".into()));
            };
            tx.send(job).map_err(|_| StoreError::Engine("the SQLite writer thread has stopped".into()))?;
        }
        answer.await.map_err(|_| StoreError::Engine("the SQLite writer thread dropped a write".into()))?
    }

    /// Run `f` on an idle read connection (opened if none is idle).
    fn read<T>(&self, f: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
        if self.closed.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StoreError::Engine("the store is closed".into()));
        }
        let conn = match self.readers.lock().ok().and_then(|mut r| r.pop()) {
            Some(c) => c,
            None => open_conn(&self.path, self.busy_timeout)?,
        };
        let out = f(&conn);
        if let Ok(mut r) = self.readers.lock()
            && r.len() < MAX_IDLE_READERS
        {
            r.push(conn);
        }
        out
    }

    // ---- the hot paths ----

    pub(crate) async fn issue_code(&self, g: &GrantRecord, c: &CodeRecord) -> StoreResult<()> {
        let (g, c) = (g.clone(), c.clone());
        self.write(move |conn| {
            let amr = sql::to_json(&g.amr)?;
            exec(
                conn,
                crate::grants::INSERT_GRANT,
                &[
                    &g.id,
                    &g.client_id,
                    &g.user_id,
                    &g.scope,
                    &g.claims,
                    &g.auth_time,
                    &g.acr,
                    &amr,
                    &g.sid,
                    &g.created_at,
                    &g.expires_at,
                ],
            )?;
            exec(
                conn,
                crate::grants::INSERT_CODE,
                &[
                    &c.code_hash.as_str(),
                    &c.grant_id,
                    &c.redirect_uri,
                    &c.code_challenge,
                    &c.nonce,
                    &c.created_at,
                    &c.expires_at,
                ],
            )?;
            Ok(())
        })
        .await
    }

    /// A single-use credential as stored (see `single_use`), on the calling thread.
    pub(crate) fn find_credential(
        &self,
        kind: latchkey_core::single_use::Kind,
        hash: &latchkey_core::TokenHash,
    ) -> StoreResult<Option<StoredCredential>> {
        let row = self.read(|c| {
            query_opt(c, single_use::find_sql(kind), &[&hash.as_str()], single_use::CredentialRow::from_rusqlite)
        })?;
        row.map(|r| r.into_stored(kind)).transpose()
    }

    /// The conditional claim and the tokens, in the writer thread's next batch.
    pub(crate) async fn commit_credential(
        &self,
        kind: latchkey_core::single_use::Kind,
        hash: &latchkey_core::TokenHash,
        now: UnixTime,
        tokens: &TokensToStore,
    ) -> StoreResult<bool> {
        let (hash, tokens) = (hash.as_str().to_owned(), tokens.clone());
        self.write(move |conn| {
            if exec(conn, single_use::claim_sql(kind), &[&hash, &now])? != 1 {
                return Ok(false);
            }
            store_tokens(conn, &tokens)?;
            Ok(true)
        })
        .await
    }

    pub(crate) async fn store_tokens(&self, t: &TokensToStore) -> StoreResult<()> {
        let t = t.clone();
        self.write(move |conn| store_tokens(conn, &t)).await
    }

    pub(crate) async fn store_access_token(&self, t: &AccessTokenRecord) -> StoreResult<bool> {
        let t = t.clone();
        self.write(move |conn| Ok(access_insert(conn, &t)? == 1)).await
    }

    pub(crate) fn get_access_token(
        &self,
        token_hash: &latchkey_core::TokenHash,
        now: UnixTime,
    ) -> StoreResult<Option<AccessTokenView>> {
        let row = self.read(|c| {
            query_opt(c, crate::grants::SELECT_ACCESS, &[&token_hash.as_str(), &now], |r| {
                Ok(crate::grants::AccessRow {
                    id: r.get("id")?,
                    grant_client_id: r.get("grant_client_id")?,
                    user_id: r.get("user_id")?,
                    grant_scope: r.get("grant_scope")?,
                    claims: r.get("claims")?,
                    auth_time: r.get("auth_time")?,
                    acr: r.get("acr")?,
                    amr: r.get("amr")?,
                    sid: r.get("sid")?,
                    grant_created_at: r.get("grant_created_at")?,
                    grant_expires_at: r.get("grant_expires_at")?,
                    client_id: r.get("client_id")?,
                    scope: r.get("scope")?,
                    audience: r.get("audience")?,
                    created_at: r.get("created_at")?,
                    expires_at: r.get("expires_at")?,
                })
            })
        })?;
        row.map(TryInto::try_into).transpose()
    }

    pub(crate) fn get_live_grant(&self, grant_id: &str) -> StoreResult<Option<GrantRecord>> {
        let row = self.read(|c| {
            query_opt(c, crate::grants::SELECT_LIVE_GRANT, &[&grant_id], crate::grants::GrantRow::from_rusqlite)
        })?;
        row.map(TryInto::try_into).transpose()
    }

    pub(crate) fn get_user(&self, id: &str) -> StoreResult<Option<User>> {
        let row = self.read(|c| {
            query_opt(c, crate::users::SELECT_USER, &[&id], |r| {
                Ok(crate::users::UserRow {
                    id: r.get("id")?,
                    username: r.get("username")?,
                    password_hash: r.get("password_hash")?,
                    email: r.get("email")?,
                    email_verified: r.get("email_verified")?,
                    name: r.get("name")?,
                    claims: r.get("claims")?,
                    created_at: r.get("created_at")?,
                    updated_at: r.get("updated_at")?,
                })
            })
        })?;
        row.map(TryInto::try_into).transpose()
    }

    pub(crate) fn is_jti_revoked(&self, jti: &str) -> StoreResult<bool> {
        let n = self.read(|c| query_opt(c, crate::grants::SELECT_REVOKED_JTI, &[&jti], |r| r.get::<_, i64>(0)))?;
        Ok(n.unwrap_or(0) > 0)
    }
}

fn open_conn(path: &Path, busy_timeout: Duration) -> StoreResult<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(busy_timeout)?;
    // As the sqlx connections: WAL (a property of the file), NORMAL sync, foreign keys on, and
    // no checkpoint at commit (the checkpointer thread does them).
    conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 0;")?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

// ---- the checkpointer ----

/// The `-wal` file and its bound.
struct Wal {
    path: PathBuf,
    max_bytes: u64,
    checkpointing: Mutex<()>,
}

/// Checkpoints off the commit path. With SQLite's automatic checkpoints, the commit that takes
/// the WAL past 1000 pages copies them into the database file and waits for the disk (the only
/// fsync in WAL mode with `synchronous = NORMAL`) while every other writer queues behind it;
/// that was most of the write scenarios' p99. A PASSIVE checkpoint here takes no write lock.
///
/// A PASSIVE checkpoint copies pages back but never makes the WAL start over while a reader
/// still uses an old snapshot, and under continuous load some reader always does: the file
/// then grows without bound (gigabytes within a minute at full client-credentials load) and
/// stays that large. So once the file passes `database.sqlite_wal_max_bytes`, the writer
/// thread (after a commit) or this thread (after sqlx writes) runs a TRUNCATE checkpoint: it
/// waits (busy handler) until readers let it, copies everything back and truncates the file to
/// zero. Readers wait for it briefly.
fn checkpoint_loop(conn: Connection, commits: mpsc::Receiver<()>, wal: Arc<Wal>) {
    loop {
        match commits.recv_timeout(CHECKPOINT_EVERY) {
            Ok(()) => {
                std::thread::sleep(CHECKPOINT_AFTER);
                while commits.try_recv().is_ok() {}
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            // Stopped: the store closed (or was dropped) and the writer thread is gone.
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        checkpoint(&conn, &wal, "PASSIVE");
        // Writes through sqlx do not pass the writer thread's check.
        if wal_size(&wal.path) > wal.max_bytes {
            truncate(&conn, &wal);
        }
    }
}

/// A TRUNCATE checkpoint for a WAL past its bound.
fn truncate(conn: &Connection, wal: &Wal) {
    checkpoint(conn, wal, "TRUNCATE");
    let after = wal_size(&wal.path);
    if after > wal.max_bytes {
        tracing::warn!(
            wal_bytes = after,
            "SQLite WAL still past its bound after a TRUNCATE checkpoint; retried after the next commit"
        );
    }
}

fn wal_size(path: &Path) -> u64 {
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    #[allow(clippy::cast_precision_loss)] // a gauge: f64 is exact far past any WAL size
    metrics::gauge!("sqlite_wal_bytes").set(size as f64);
    size
}

/// One checkpoint; its outcome counted in `sqlite_checkpoints_total{mode, result}` (`ok`,
/// `busy`: it could not finish because a reader or writer held on, `error`).
fn checkpoint(conn: &Connection, wal: &Wal, mode: &'static str) {
    // One checkpoint at a time: SQLite answers a second one BUSY at once (no busy handler), so
    // a TRUNCATE meeting the checkpointer's PASSIVE would fail and the WAL keep growing.
    let _one = wal.checkpointing.lock();
    let sql = if mode == "TRUNCATE" { "PRAGMA wal_checkpoint(TRUNCATE)" } else { "PRAGMA wal_checkpoint(PASSIVE)" };
    let result = match conn.query_row(sql, [], |r| r.get::<_, i64>(0)) {
        Ok(0) => "ok",
        Ok(_) => "busy",
        Err(e) => {
            tracing::warn!(error = %e, mode, "SQLite checkpoint failed; the next one retries");
            "error"
        }
    };
    let mode = if mode == "TRUNCATE" { "truncate" } else { "passive" };
    metrics::counter!("sqlite_checkpoints_total", "mode" => mode, "result" => result).increment(1);
}

// ---- the writer thread ----

trait Job: Send {
    /// Run inside the batch's transaction; false when it failed (and must be rolled back).
    fn run(&mut self, conn: &Connection) -> bool;
    /// Answer the caller: with its outcome when the batch committed, else with `failed`.
    fn finish(self: Box<Self>, failed: Option<&str>);
}

struct Pending<T, F> {
    f: Option<F>,
    out: Option<StoreResult<T>>,
    reply: Option<oneshot::Sender<StoreResult<T>>>,
}

impl<T, F> Job for Pending<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> StoreResult<T> + Send,
{
    fn run(&mut self, conn: &Connection) -> bool {
        // Its caller is gone (disconnected, or past the request deadline): nobody would receive
        // what it issues, and a used-up code or rotated token would turn the client's retry into
        // a replay. Not run, nothing written.
        if self.reply.as_ref().is_none_or(|r| r.is_closed()) {
            self.out = Some(Err(StoreError::Engine("the request was cancelled before its write".into())));
            return false;
        }
        let Some(f) = self.f.take() else { return false };
        // A panic in a decision must not take the writer thread (and every later write) down.
        let out = match std::panic::catch_unwind(AssertUnwindSafe(|| f(conn))) {
            Ok(r) => r,
            Err(_) => Err(StoreError::Engine("a write panicked; it was rolled back".into())),
        };
        let ok = out.is_ok();
        self.out = Some(out);
        ok
    }

    fn finish(mut self: Box<Self>, failed: Option<&str>) {
        let out = match (self.out.take(), failed) {
            // Its own error stands (it was rolled back alone).
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(v)), None) => Ok(v),
            (_, Some(why)) => Err(StoreError::Engine(format!("the write was not committed: {why}"))),
            (None, None) => Err(StoreError::Engine("the write did not run".into())),
        };
        if let Some(reply) = self.reply.take() {
            // The caller may have gone (its request was cancelled); its write stands.
            let _ = reply.send(out);
        }
    }
}

fn writer_loop(
    conn: Connection,
    rx: mpsc::Receiver<Box<dyn Job>>,
    gate: Arc<tokio::sync::Mutex<()>>,
    committed: mpsc::SyncSender<()>,
    wal: Arc<Wal>,
) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        let guard = gate.blocking_lock();
        // Whatever queued while this thread woke up or waited for the gate joins the batch.
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        let failed = run_batch(&conn, &mut batch).err();
        drop(guard);
        if failed.is_none() {
            // Full: a checkpoint is already due.
            let _ = committed.try_send(());
        }
        if let Some(why) = &failed {
            tracing::error!(error = %why, jobs = batch.len(), "a batch of writes failed");
        }
        for j in batch {
            j.finish(failed.as_deref());
        }
        // The bound is kept here, by the one writer, once its callers have their answers: the
        // WAL can pass it by one batch at most, and the checkpoint competes with no writer of
        // ours (readers wait for it briefly).
        if wal_size(&wal.path) > wal.max_bytes {
            truncate(&conn, &wal);
        }
    }
}

/// One transaction for the batch; each job in its own savepoint. Err: nothing was committed.
fn run_batch(conn: &Connection, batch: &mut [Box<dyn Job>]) -> Result<(), String> {
    exec_plain(conn, "BEGIN IMMEDIATE").map_err(|e| e.to_string())?;
    let outcome = (|| -> rusqlite::Result<()> {
        for j in batch.iter_mut() {
            exec_plain(conn, "SAVEPOINT job")?;
            if j.run(conn) {
                exec_plain(conn, "RELEASE job")?;
            } else {
                exec_plain(conn, "ROLLBACK TO job")?;
                exec_plain(conn, "RELEASE job")?;
            }
        }
        exec_plain(conn, "COMMIT")
    })();
    if let Err(e) = outcome {
        // Still in the transaction (or it was already rolled back): make sure it is gone.
        let _ = conn.execute_batch("ROLLBACK");
        return Err(e.to_string());
    }
    Ok(())
}

fn exec_plain(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([])?;
    Ok(())
}

// ---- statements ----

const NAMES: [&str; 12] = ["$1", "$2", "$3", "$4", "$5", "$6", "$7", "$8", "$9", "$10", "$11", "$12"];

/// Bind `$1`… by name: SQLite numbers named parameters by first appearance, so `$2` may be
/// the first index.
fn bind(stmt: &mut Statement<'_>, values: &[&dyn ToSql]) -> rusqlite::Result<()> {
    for (name, v) in NAMES.iter().zip(values) {
        if let Some(i) = stmt.parameter_index(name)? {
            stmt.raw_bind_parameter(i, v)?;
        }
    }
    Ok(())
}

fn exec(conn: &Connection, sql: &str, values: &[&dyn ToSql]) -> rusqlite::Result<usize> {
    let mut stmt = conn.prepare_cached(sql)?;
    bind(&mut stmt, values)?;
    stmt.raw_execute()
}

/// The first row, mapped; the statement runs to its end (RETURNING statements included).
fn query_opt<T>(
    conn: &Connection,
    sql: &str,
    values: &[&dyn ToSql],
    map: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
) -> StoreResult<Option<T>> {
    let mut stmt = conn.prepare_cached(sql)?;
    bind(&mut stmt, values)?;
    let mut rows = stmt.raw_query();
    let first = match rows.next()? {
        Some(r) => Some(map(r)?),
        None => None,
    };
    while rows.next()?.is_some() {}
    Ok(first)
}

fn access_insert(conn: &Connection, t: &AccessTokenRecord) -> rusqlite::Result<usize> {
    match &t.grant_id {
        Some(g) => exec(
            conn,
            crate::grants::INSERT_GRANT_ACCESS,
            &[&t.token_hash.as_str(), g, &t.client_id, &t.scope, &t.audience, &t.created_at, &t.expires_at],
        ),
        None => exec(
            conn,
            crate::grants::INSERT_CLIENT_ACCESS,
            &[&t.token_hash.as_str(), &t.client_id, &t.scope, &t.audience, &t.created_at, &t.expires_at],
        ),
    }
}

fn store_tokens(conn: &Connection, t: &TokensToStore) -> StoreResult<()> {
    if let Some(a) = &t.access {
        access_insert(conn, a)?;
    }
    if let Some(r) = &t.refresh {
        exec(
            conn,
            crate::grants::INSERT_REFRESH,
            &[&r.token_hash.as_str(), &r.grant_id, &r.scope, &r.created_at, &r.expires_at],
        )?;
    }
    Ok(())
}
