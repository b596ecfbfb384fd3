//! PostgreSQL: the back-channel hot paths' single-row statements, batched. Concurrent token
//! lookups (introspection, UserInfo), user lookups (UserInfo) and access-token inserts (client
//! credentials) are each gathered while the previous batch is in flight and sent as one
//! statement over `UNNEST`ed arrays: one round trip and one commit for many requests instead
//! of one each. A lone request goes at once (a batch of one), so nothing waits for company.
//!
//! Semantics are those of the single statements: each lookup is checked against its own
//! `now`; an insert batch is one statement (atomic), and should it fail (a duplicate hash, say)
//! each insert is retried alone, so one bad row fails only its own request.

use std::future::Future;
use std::sync::Arc;

use latchkey_core::UnixTime;
use latchkey_core::model::User;
use sqlx::PgPool;
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::single_use;
use crate::{AccessTokenRecord, AccessTokenView, StoreError, StoreResult};
use latchkey_core::single_use::Kind;

/// Requests in one statement at most.
const MAX_BATCH: usize = 256;
/// Batches of one kind in flight at once (each on its own pooled connection).
const WORKERS: usize = 2;

type Reply<V> = oneshot::Sender<StoreResult<V>>;

/// Gathers calls and runs them in batches.
struct Batcher<K, V> {
    tx: mpsc::UnboundedSender<(K, Reply<V>)>,
}

impl<K: Send + 'static, V: Send + 'static> Batcher<K, V> {
    /// `run` answers a batch: one result per key, in order.
    fn spawn<F, Fut>(run: F) -> Self
    where
        F: Fn(Vec<K>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<StoreResult<V>>> + Send + 'static,
    {
        Self::spawn_n(WORKERS, run)
    }

    /// With `workers` batches in flight at most.
    fn spawn_n<F, Fut>(workers: usize, run: F) -> Self
    where
        F: Fn(Vec<K>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<StoreResult<V>>> + Send + 'static,
    {
        let (tx, rx) = mpsc::unbounded_channel::<(K, Reply<V>)>();
        let rx = Arc::new(Mutex::new(rx));
        let run = Arc::new(run);
        for _ in 0..workers.max(1) {
            let (rx, run) = (rx.clone(), run.clone());
            tokio::spawn(async move {
                loop {
                    let (keys, replies) = {
                        let mut rx = rx.lock().await;
                        let Some((k, r)) = rx.recv().await else { return };
                        let (mut keys, mut replies) = (vec![k], vec![r]);
                        while keys.len() < MAX_BATCH {
                            match rx.try_recv() {
                                Ok((k, r)) => {
                                    keys.push(k);
                                    replies.push(r);
                                }
                                Err(_) => break,
                            }
                        }
                        (keys, replies)
                    };
                    // Callers that are gone (disconnected, past their deadline) are dropped
                    // before anything is written for them: nobody would receive the result.
                    let (keys, replies): (Vec<K>, Vec<Reply<V>>) =
                        keys.into_iter().zip(replies).filter(|(_, r)| !r.is_closed()).unzip();
                    if keys.is_empty() {
                        continue;
                    }
                    // In its own task: a panic fails this batch, not the worker.
                    let n = keys.len();
                    let results = match tokio::spawn(run(keys)).await {
                        Ok(v) => v,
                        Err(e) => (0..n).map(|_| Err(StoreError::Engine(format!("a batch failed: {e}")))).collect(),
                    };
                    let mut out = results.into_iter();
                    for r in replies {
                        let v = out.next().unwrap_or_else(|| Err(StoreError::Engine("a batch lost a result".into())));
                        // The caller may have gone (its request was cancelled).
                        let _ = r.send(v);
                    }
                }
            });
        }
        Self { tx }
    }

    async fn call(&self, k: K) -> StoreResult<V> {
        let (reply, answer) = oneshot::channel();
        self.tx.send((k, reply)).map_err(|_| StoreError::Engine("the batch worker has stopped".into()))?;
        answer.await.map_err(|_| StoreError::Engine("the batch worker dropped a request".into()))?
    }
}

pub(crate) struct PgBatch {
    access_reads: Batcher<(String, UnixTime), Option<AccessTokenView>>,
    user_reads: Batcher<String, Option<User>>,
    access_writes: Batcher<AccessTokenRecord, bool>,
    code_finds: Batcher<String, Option<crate::StoredCredential>>,
    refresh_finds: Batcher<String, Option<crate::StoredCredential>>,
    code_commits: Batcher<CommitJob, bool>,
    refresh_commits: Batcher<CommitJob, bool>,
}

impl PgBatch {
    /// Start the workers (on the current Tokio runtime).
    pub(crate) fn spawn(pool: &PgPool) -> Self {
        let p = pool.clone();
        let access_reads = Batcher::spawn(move |keys| read_access(p.clone(), keys));
        let p = pool.clone();
        let user_reads = Batcher::spawn(move |keys| read_users(p.clone(), keys));
        let p = pool.clone();
        let access_writes = Batcher::spawn(move |keys| insert_access(p.clone(), keys));
        // One batch at a time each: batches lock rows, and one at a time cannot deadlock.
        let p = pool.clone();
        let code_commits = Batcher::spawn_n(1, move |jobs| commit_batch(p.clone(), Kind::AuthorizationCode, jobs));
        let p = pool.clone();
        let refresh_commits = Batcher::spawn_n(1, move |jobs| commit_batch(p.clone(), Kind::RefreshToken, jobs));
        let p = pool.clone();
        let code_finds = Batcher::spawn(move |keys| find_credentials(p.clone(), Kind::AuthorizationCode, keys));
        let p = pool.clone();
        let refresh_finds = Batcher::spawn(move |keys| find_credentials(p.clone(), Kind::RefreshToken, keys));
        Self { access_reads, user_reads, access_writes, code_finds, refresh_finds, code_commits, refresh_commits }
    }

    /// `single_use` finds, batched per kind.
    pub(crate) async fn find_credential(
        &self,
        kind: Kind,
        hash: &latchkey_core::TokenHash,
    ) -> StoreResult<Option<crate::StoredCredential>> {
        match kind {
            Kind::AuthorizationCode => self.code_finds.call(hash.as_str().to_owned()).await,
            Kind::RefreshToken => self.refresh_finds.call(hash.as_str().to_owned()).await,
        }
    }

    /// `single_use` commits, batched per kind.
    pub(crate) async fn commit_credential(
        &self,
        kind: Kind,
        hash: &latchkey_core::TokenHash,
        now: UnixTime,
        tokens: &crate::TokensToStore,
    ) -> StoreResult<bool> {
        let job = (hash.as_str().to_owned(), now, tokens.clone());
        match kind {
            Kind::AuthorizationCode => self.code_commits.call(job).await,
            Kind::RefreshToken => self.refresh_commits.call(job).await,
        }
    }

    pub(crate) async fn get_access_token(
        &self,
        token_hash: &latchkey_core::TokenHash,
        now: UnixTime,
    ) -> StoreResult<Option<AccessTokenView>> {
        self.access_reads.call((token_hash.as_str().to_owned(), now)).await
    }

    pub(crate) async fn get_user(&self, id: &str) -> StoreResult<Option<User>> {
        self.user_reads.call(id.to_owned()).await
    }

    /// Store an access token unless its grant has been revoked (then false).
    pub(crate) async fn store_access_token(&self, t: &AccessTokenRecord) -> StoreResult<bool> {
        self.access_writes.call(t.clone()).await
    }
}

/// One error for every request of a failed batch.
fn all_failed<V>(n: usize, e: &sqlx::Error) -> Vec<StoreResult<V>> {
    (0..n).map(|_| Err(StoreError::Engine(e.to_string()))).collect()
}

const SELECT_ACCESS_BATCH: &str = "SELECT q.i, g.id, g.client_id AS grant_client_id, g.user_id, g.scope AS grant_scope, g.claims, g.auth_time, g.acr, g.amr, g.sid, g.created_at AS grant_created_at, g.expires_at AS grant_expires_at, a.client_id, a.scope, a.audience, a.created_at, a.expires_at FROM UNNEST($1::text[], $2::int8[]) WITH ORDINALITY AS q(hash, now, i) JOIN access_tokens a ON a.token_hash = q.hash LEFT JOIN grants g ON g.id = a.grant_id WHERE a.expires_at > q.now AND (a.grant_id IS NULL OR g.revoked_at IS NULL)";

#[derive(sqlx::FromRow)]
struct NumberedAccessRow {
    i: i64,
    #[sqlx(flatten)]
    row: crate::grants::AccessRow,
}

async fn read_access(pool: PgPool, keys: Vec<(String, UnixTime)>) -> Vec<StoreResult<Option<AccessTokenView>>> {
    let n = keys.len();
    let (hashes, nows): (Vec<String>, Vec<i64>) = keys.into_iter().unzip();
    let rows: Vec<NumberedAccessRow> =
        match sqlx::query_as(SELECT_ACCESS_BATCH).bind(hashes).bind(nows).fetch_all(&pool).await {
            Ok(r) => r,
            Err(e) => return all_failed(n, &e),
        };
    let mut out: Vec<StoreResult<Option<AccessTokenView>>> = (0..n).map(|_| Ok(None)).collect();
    for r in rows {
        // ORDINALITY counts from 1.
        let slot = usize::try_from(r.i - 1).ok().and_then(|i| out.get_mut(i));
        if let Some(slot) = slot {
            *slot = r.row.try_into().map(Some);
        }
    }
    out
}

const SELECT_USERS_BATCH: &str = "SELECT id, username, password_hash, email, email_verified, name, claims, created_at, updated_at FROM users WHERE id = ANY($1)";

async fn read_users(pool: PgPool, ids: Vec<String>) -> Vec<StoreResult<Option<User>>> {
    let rows: Vec<crate::users::UserRow> = match sqlx::query_as(SELECT_USERS_BATCH).bind(&ids).fetch_all(&pool).await {
        Ok(r) => r,
        Err(e) => return all_failed(ids.len(), &e),
    };
    let mut found: std::collections::HashMap<String, StoreResult<User>> = std::collections::HashMap::new();
    for r in rows {
        let id = r.id.clone();
        found.insert(id, r.try_into());
    }
    ids.iter()
        .map(|id| match found.get(id) {
            None => Ok(None),
            Some(Ok(u)) => Ok(Some(u.clone())),
            Some(Err(e)) => Err(StoreError::Corrupt(e.to_string())),
        })
        .collect()
}

/// The grant check is a scalar subquery, one index lookup per row: as `EXISTS` (or `OR EXISTS`)
/// the planner may hash the whole grants table for every batch (seen: code redemption fell
/// from 2.6 k/s to 1 k/s once 34 k grants existed).
const INSERT_ACCESS_BATCH: &str = "INSERT INTO access_tokens (token_hash, grant_id, client_id, scope, audience, created_at, expires_at) SELECT q.token_hash, q.grant_id, q.client_id, q.scope, q.audience, q.created_at, q.expires_at FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int8[], $7::int8[]) AS q(token_hash, grant_id, client_id, scope, audience, created_at, expires_at) WHERE q.grant_id IS NULL OR COALESCE((SELECT g.revoked_at IS NULL FROM grants g WHERE g.id = q.grant_id), false) RETURNING token_hash";

/// INSERT_ACCESS_BATCH with its column arrays bound; yields the hashes it stored.
fn access_batch<'q>(
    tokens: &'q [AccessTokenRecord],
) -> sqlx::query::QueryAs<'q, sqlx::Postgres, (String,), sqlx::postgres::PgArguments> {
    let n = tokens.len();
    let (mut hashes, mut grants, mut clients) = (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    let (mut scopes, mut audiences) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let (mut created, mut expires) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for t in tokens {
        hashes.push(t.token_hash.as_str());
        grants.push(t.grant_id.as_deref());
        clients.push(t.client_id.as_str());
        scopes.push(t.scope.as_str());
        audiences.push(t.audience.as_deref());
        created.push(t.created_at);
        expires.push(t.expires_at);
    }
    sqlx::query_as(INSERT_ACCESS_BATCH)
        .bind(hashes)
        .bind(grants)
        .bind(clients)
        .bind(scopes)
        .bind(audiences)
        .bind(created)
        .bind(expires)
}

async fn insert_access(pool: PgPool, tokens: Vec<AccessTokenRecord>) -> Vec<StoreResult<bool>> {
    let inserted: Result<Vec<(String,)>, sqlx::Error> = access_batch(&tokens).fetch_all(&pool).await;
    match inserted {
        Ok(rows) => {
            let stored: std::collections::HashSet<String> = rows.into_iter().map(|(h,)| h).collect();
            tokens.iter().map(|t| Ok(stored.contains(t.token_hash.as_str()))).collect()
        }
        Err(_) if tokens.len() > 1 => {
            // One statement failed as a whole: each insert alone, so only the bad one fails.
            let mut out = Vec::with_capacity(tokens.len());
            for t in &tokens {
                out.push(match crate::grants::access_insert(t).execute(&pool).await {
                    Ok(r) => Ok(r.rows_affected() == 1),
                    Err(e) => Err(StoreError::Database(e)),
                });
            }
            out
        }
        Err(e) => vec![Err(StoreError::Database(e))],
    }
}

// ---- single-use commits, batched ----
//
// One transaction per batch: claim every presented code (or refresh token) with one
// `UPDATE … FROM UNNEST(…) RETURNING` (the statement of `single_use`), store the tokens of the
// claimed ones with one insert per table, COMMIT, and only then answer. Should any statement
// fail, the whole batch rolls back (nothing is spent) and every caller gets the error. Two
// commits of the same credential in one batch: the first in arrival order takes part in the
// claim and the others lose at once, as if they had come after it (an UPDATE … FROM would
// otherwise report the one row for both).

pub(crate) type CommitJob = (String, UnixTime, crate::TokensToStore);

type Tx = sqlx::Transaction<'static, sqlx::Postgres>;

const INSERT_REFRESH_BATCH: &str = "INSERT INTO refresh_tokens (token_hash, grant_id, scope, created_at, expires_at) SELECT q.token_hash, q.grant_id, q.scope, q.created_at, q.expires_at FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int8[], $5::int8[]) AS q(token_hash, grant_id, scope, created_at, expires_at) WHERE COALESCE((SELECT g.revoked_at IS NULL FROM grants g WHERE g.id = q.grant_id), false)";

/// Store what the decisions produced: one insert per table (tokens of a revoked grant are
/// skipped, as by the single inserts).
async fn store_all(tx: &mut Tx, produced: Vec<crate::TokensToStore>) -> StoreResult<()> {
    let mut access = Vec::new();
    let mut refresh = Vec::new();
    for t in produced {
        access.extend(t.access);
        refresh.extend(t.refresh);
    }
    if !access.is_empty() {
        access_batch(&access).fetch_all(&mut **tx).await?;
    }
    if !refresh.is_empty() {
        let n = refresh.len();
        let (mut hashes, mut grants, mut scopes) =
            (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
        let (mut created, mut expires) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for r in &refresh {
            hashes.push(r.token_hash.as_str());
            grants.push(r.grant_id.as_str());
            scopes.push(r.scope.as_str());
            created.push(r.created_at);
            expires.push(r.expires_at);
        }
        sqlx::query(INSERT_REFRESH_BATCH)
            .bind(hashes)
            .bind(grants)
            .bind(scopes)
            .bind(created)
            .bind(expires)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

fn answer_all<V>(n: usize, r: StoreResult<Vec<StoreResult<V>>>) -> Vec<StoreResult<V>> {
    match r {
        Ok(v) => v,
        Err(e) => {
            let why = e.to_string();
            (0..n).map(|_| Err(StoreError::Engine(why.clone()))).collect()
        }
    }
}

async fn find_credentials(
    pool: PgPool,
    kind: Kind,
    hashes: Vec<String>,
) -> Vec<StoreResult<Option<crate::StoredCredential>>> {
    let rows: Vec<single_use::HashedCredentialRow> =
        match sqlx::query_as(single_use::find_batch_sql(kind)).bind(&hashes).fetch_all(&pool).await {
            Ok(r) => r,
            Err(e) => return all_failed(hashes.len(), &e),
        };
    let mut found: std::collections::HashMap<String, Result<crate::StoredCredential, String>> =
        std::collections::HashMap::new();
    for r in rows {
        found.insert(r.credential_hash, r.row.into_stored(kind).map_err(|e| e.to_string()));
    }
    // A hash may be asked for twice in one batch: each asker gets the row.
    hashes
        .iter()
        .map(|h| match found.get(h) {
            None => Ok(None),
            Some(Ok(c)) => Ok(Some(c.clone())),
            Some(Err(e)) => Err(StoreError::Corrupt(e.clone())),
        })
        .collect()
}

async fn commit_batch(pool: PgPool, kind: Kind, jobs: Vec<CommitJob>) -> Vec<StoreResult<bool>> {
    let n = jobs.len();
    answer_all(n, commit_in_tx(&pool, kind, jobs).await)
}

async fn commit_in_tx(pool: &PgPool, kind: Kind, jobs: Vec<CommitJob>) -> StoreResult<Vec<StoreResult<bool>>> {
    // The first presentation of each credential takes part; later ones in the batch lose.
    let mut first: std::collections::HashSet<&str> = std::collections::HashSet::new();
    let takes_part: Vec<bool> = jobs.iter().map(|(h, _, _)| first.insert(h.as_str())).collect();
    let (hashes, nows): (Vec<&str>, Vec<i64>) =
        jobs.iter().zip(&takes_part).filter(|(_, t)| **t).map(|((h, n, _), _)| (h.as_str(), *n)).unzip();
    let mut tx: Tx = pool.begin().await?;
    let claimed: Vec<(String,)> =
        sqlx::query_as(single_use::claim_batch_sql(kind)).bind(&hashes).bind(&nows).fetch_all(&mut *tx).await?;
    let claimed: std::collections::HashSet<String> = claimed.into_iter().map(|(h,)| h).collect();
    let won: Vec<bool> = jobs.iter().zip(&takes_part).map(|((h, _, _), t)| *t && claimed.contains(h)).collect();
    let produced = jobs.into_iter().zip(&won).filter(|(_, w)| **w).map(|((_, _, t), _)| t).collect();
    store_all(&mut tx, produced).await?;
    tx.commit().await?;
    Ok(won.into_iter().map(Ok).collect())
}
