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

use crate::sql;
use crate::{AccessTokenRecord, AccessTokenView, StoreError, StoreResult};

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
        Fut: Future<Output = Vec<StoreResult<V>>> + Send,
    {
        let (tx, rx) = mpsc::unbounded_channel::<(K, Reply<V>)>();
        let rx = Arc::new(Mutex::new(rx));
        let run = Arc::new(run);
        for _ in 0..WORKERS {
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
                    let mut out = run(keys).await.into_iter();
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
        Self { access_reads, user_reads, access_writes }
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
    row: sql::AccessRow,
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
    let rows: Vec<sql::UserRow> = match sqlx::query_as(SELECT_USERS_BATCH).bind(&ids).fetch_all(&pool).await {
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

const INSERT_ACCESS_BATCH: &str = "INSERT INTO access_tokens (token_hash, grant_id, client_id, scope, audience, created_at, expires_at) SELECT q.token_hash, q.grant_id, q.client_id, q.scope, q.audience, q.created_at, q.expires_at FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int8[], $7::int8[]) AS q(token_hash, grant_id, client_id, scope, audience, created_at, expires_at) WHERE q.grant_id IS NULL OR EXISTS (SELECT 1 FROM grants g WHERE g.id = q.grant_id AND g.revoked_at IS NULL) RETURNING token_hash";

async fn insert_access(pool: PgPool, tokens: Vec<AccessTokenRecord>) -> Vec<StoreResult<bool>> {
    let n = tokens.len();
    let (mut hashes, mut grants, mut clients) = (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    let (mut scopes, mut audiences) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let (mut created, mut expires) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for t in &tokens {
        hashes.push(t.token_hash.as_str());
        grants.push(t.grant_id.as_deref());
        clients.push(t.client_id.as_str());
        scopes.push(t.scope.as_str());
        audiences.push(t.audience.as_deref());
        created.push(t.created_at);
        expires.push(t.expires_at);
    }
    let inserted: Result<Vec<(String,)>, sqlx::Error> = sqlx::query_as(INSERT_ACCESS_BATCH)
        .bind(hashes)
        .bind(grants)
        .bind(clients)
        .bind(scopes)
        .bind(audiences)
        .bind(created)
        .bind(expires)
        .fetch_all(&pool)
        .await;
    match inserted {
        Ok(rows) => {
            let stored: std::collections::HashSet<String> = rows.into_iter().map(|(h,)| h).collect();
            tokens.iter().map(|t| Ok(stored.contains(t.token_hash.as_str()))).collect()
        }
        Err(_) if tokens.len() > 1 => {
            // One statement failed as a whole: each insert alone, so only the bad one fails.
            let mut out = Vec::with_capacity(tokens.len());
            for t in &tokens {
                out.push(match sql::access_insert(t).execute(&pool).await {
                    Ok(r) => Ok(r.rows_affected() == 1),
                    Err(e) => Err(StoreError::Database(e)),
                });
            }
            out
        }
        Err(e) => vec![Err(StoreError::Database(e))],
    }
}
