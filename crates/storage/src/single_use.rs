//! Single-use credentials (authorization codes, refresh tokens): the store's primitives, their
//! SQL (shared by every backend path), and the one runner that drives them.
//!
//! The decision is `latchkey_core::single_use::decide` (pure). The store provides:
//!
//! - **find**: the credential as stored, whatever its state, with its grant — no side effect;
//! - **commit**: spend it *if it is still unspent, unexpired and its grant live*, and store the
//!   tokens minted for it, in one transaction; false (nothing written) when another
//!   presentation won;
//! - **undo**: reverse a commit whose response was never handed to the client (the request was
//!   cancelled while the commit ran): the tokens go and the credential is unspent again;
//! - **revoke** (`GrantStore::revoke_grant`): the family, on a replay.
//!
//! [`present`] runs them: find → decide → (refuse | revoke | mint → commit). Everything the
//! response needs is minted before the commit, so a failure while minting spends nothing;
//! the commit runs in its own task and hands its result over through [`Handoff`], so a
//! request dropped while its commit is in flight (client gone, deadline) has the commit undone
//! instead of spending the credential for nobody.
//!
//! Every backend path implements the three primitives with the statements below: the SQLite
//! writer thread (`fast`, group commit), PostgreSQL batches (`pg_batch`) and plain sqlx
//! transactions (`sql`, used by in-memory SQLite and by PostgreSQL without batching).

use std::future::Future;
use std::sync::{Arc, Mutex};

use latchkey_core::single_use::{Decision, Kind, Presented, Refusal, decide};
use latchkey_core::{OAuthError, TokenHash, UnixTime};

use crate::{Store, StoreError, StoreResult, StoredCredential, TokensToStore};

// ---- SQL, the same text on SQLite and PostgreSQL ----

/// Both finds read the grant under `crate::grants::GrantRow`'s column names, then the credential's.
pub(crate) const FIND_CODE: &str = "SELECT g.id, g.client_id, g.user_id, g.scope, g.claims, g.auth_time, g.acr, g.amr, g.sid, g.created_at, g.expires_at, g.revoked_at, c.expires_at AS credential_expires_at, c.used_at AS credential_used_at, c.redirect_uri, c.code_challenge, c.nonce, g.scope AS credential_scope, CAST(0 AS BIGINT) AS successor_used FROM authorization_codes c JOIN grants g ON g.id = c.grant_id WHERE c.code_hash = $1";

/// `successor_used` is looked up only for a spent token (a replay or a retry), on the index of
/// `refresh_tokens(grant_id)`: a token of the family created at or after this one was spent has
/// been used (its successor reached someone).
pub(crate) const FIND_REFRESH: &str = "SELECT g.id, g.client_id, g.user_id, g.scope, g.claims, g.auth_time, g.acr, g.amr, g.sid, g.created_at, g.expires_at, g.revoked_at, r.expires_at AS credential_expires_at, r.used_at AS credential_used_at, CAST(NULL AS TEXT) AS redirect_uri, CAST(NULL AS TEXT) AS code_challenge, CAST(NULL AS TEXT) AS nonce, r.scope AS credential_scope, CAST(CASE WHEN r.used_at IS NULL THEN 0 WHEN EXISTS (SELECT 1 FROM refresh_tokens x WHERE x.grant_id = r.grant_id AND x.used_at IS NOT NULL AND x.created_at >= r.used_at AND x.token_hash <> r.token_hash) THEN 1 ELSE 0 END AS BIGINT) AS successor_used FROM refresh_tokens r JOIN grants g ON g.id = r.grant_id WHERE r.token_hash = $1";

/// PostgreSQL batches: many finds in one statement (see `pg_batch`); the same columns plus the
/// hash each row answers.
pub(crate) const FIND_CODES_BATCH: &str = "SELECT c.code_hash AS credential_hash, g.id, g.client_id, g.user_id, g.scope, g.claims, g.auth_time, g.acr, g.amr, g.sid, g.created_at, g.expires_at, g.revoked_at, c.expires_at AS credential_expires_at, c.used_at AS credential_used_at, c.redirect_uri, c.code_challenge, c.nonce, g.scope AS credential_scope, CAST(0 AS BIGINT) AS successor_used FROM authorization_codes c JOIN grants g ON g.id = c.grant_id WHERE c.code_hash = ANY($1)";
pub(crate) const FIND_REFRESH_BATCH: &str = "SELECT r.token_hash AS credential_hash, g.id, g.client_id, g.user_id, g.scope, g.claims, g.auth_time, g.acr, g.amr, g.sid, g.created_at, g.expires_at, g.revoked_at, r.expires_at AS credential_expires_at, r.used_at AS credential_used_at, CAST(NULL AS TEXT) AS redirect_uri, CAST(NULL AS TEXT) AS code_challenge, CAST(NULL AS TEXT) AS nonce, r.scope AS credential_scope, CAST(CASE WHEN r.used_at IS NULL THEN 0 WHEN EXISTS (SELECT 1 FROM refresh_tokens x WHERE x.grant_id = r.grant_id AND x.used_at IS NOT NULL AND x.created_at >= r.used_at AND x.token_hash <> r.token_hash) THEN 1 ELSE 0 END AS BIGINT) AS successor_used FROM refresh_tokens r JOIN grants g ON g.id = r.grant_id WHERE r.token_hash = ANY($1)";

pub(crate) fn find_batch_sql(kind: Kind) -> &'static str {
    match kind {
        Kind::AuthorizationCode => FIND_CODES_BATCH,
        Kind::RefreshToken => FIND_REFRESH_BATCH,
    }
}

/// The claim of a commit: one conditional UPDATE, so exactly one presentation spends it.
pub(crate) const CLAIM_CODE: &str = "UPDATE authorization_codes SET used_at = $2 WHERE code_hash = $1 AND used_at IS NULL AND expires_at > $2 AND EXISTS (SELECT 1 FROM grants g WHERE g.id = authorization_codes.grant_id AND g.revoked_at IS NULL)";
pub(crate) const CLAIM_REFRESH: &str = "UPDATE refresh_tokens SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 AND EXISTS (SELECT 1 FROM grants g WHERE g.id = refresh_tokens.grant_id AND g.revoked_at IS NULL AND g.expires_at > $2)";

/// PostgreSQL batches: the claims of many presentations in one statement (each hash at most
/// once per statement; see `pg_batch`).
pub(crate) const CLAIM_CODES_BATCH: &str = "UPDATE authorization_codes a SET used_at = q.now FROM UNNEST($1::text[], $2::int8[]) AS q(hash, now) WHERE a.code_hash = q.hash AND a.used_at IS NULL AND a.expires_at > q.now AND COALESCE((SELECT g.revoked_at IS NULL FROM grants g WHERE g.id = a.grant_id), false) RETURNING a.code_hash";
pub(crate) const CLAIM_REFRESH_BATCH: &str = "UPDATE refresh_tokens r SET used_at = q.now FROM UNNEST($1::text[], $2::int8[]) AS q(hash, now) WHERE r.token_hash = q.hash AND r.used_at IS NULL AND r.expires_at > q.now AND COALESCE((SELECT g.revoked_at IS NULL AND g.expires_at > q.now FROM grants g WHERE g.id = r.grant_id), false) RETURNING r.token_hash";

/// Undo: the grant's row first (the lock a revocation takes first too, so the two cannot
/// deadlock), the tokens a commit stored (a successor refresh token only while unused), then
/// the credential unspent again — only the spending of that commit (`used_at` its time).
pub(crate) const UNDO_LOCK_GRANT: &str = "UPDATE grants SET revoked_at = revoked_at WHERE id = $1";
pub(crate) const UNDO_ACCESS: &str = "DELETE FROM access_tokens WHERE token_hash = $1";
pub(crate) const UNDO_SUCCESSOR: &str = "DELETE FROM refresh_tokens WHERE token_hash = $1 AND used_at IS NULL";
pub(crate) const UNSPEND_CODE: &str =
    "UPDATE authorization_codes SET used_at = NULL WHERE code_hash = $1 AND used_at = $2";
pub(crate) const UNSPEND_REFRESH: &str =
    "UPDATE refresh_tokens SET used_at = NULL WHERE token_hash = $1 AND used_at = $2";

pub(crate) fn find_sql(kind: Kind) -> &'static str {
    match kind {
        Kind::AuthorizationCode => FIND_CODE,
        Kind::RefreshToken => FIND_REFRESH,
    }
}

pub(crate) fn claim_sql(kind: Kind) -> &'static str {
    match kind {
        Kind::AuthorizationCode => CLAIM_CODE,
        Kind::RefreshToken => CLAIM_REFRESH,
    }
}

pub(crate) fn claim_batch_sql(kind: Kind) -> &'static str {
    match kind {
        Kind::AuthorizationCode => CLAIM_CODES_BATCH,
        Kind::RefreshToken => CLAIM_REFRESH_BATCH,
    }
}

pub(crate) fn unspend_sql(kind: Kind) -> &'static str {
    match kind {
        Kind::AuthorizationCode => UNSPEND_CODE,
        Kind::RefreshToken => UNSPEND_REFRESH,
    }
}

/// A row of FIND_CODE / FIND_REFRESH, read by column name.
#[derive(sqlx::FromRow)]
pub(crate) struct CredentialRow {
    #[sqlx(flatten)]
    pub(crate) grant: crate::grants::GrantRow,
    pub(crate) revoked_at: Option<i64>,
    pub(crate) credential_expires_at: i64,
    pub(crate) credential_used_at: Option<i64>,
    pub(crate) redirect_uri: Option<String>,
    pub(crate) code_challenge: Option<String>,
    pub(crate) nonce: Option<String>,
    pub(crate) credential_scope: String,
    pub(crate) successor_used: i64,
}

/// A row of a batched find.
#[derive(sqlx::FromRow)]
pub(crate) struct HashedCredentialRow {
    pub(crate) credential_hash: String,
    #[sqlx(flatten)]
    pub(crate) row: CredentialRow,
}

impl CredentialRow {
    /// The same row through rusqlite (the SQLite hot path), by column name.
    pub(crate) fn from_rusqlite(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            grant: crate::grants::GrantRow::from_rusqlite(r)?,
            revoked_at: r.get("revoked_at")?,
            credential_expires_at: r.get("credential_expires_at")?,
            credential_used_at: r.get("credential_used_at")?,
            redirect_uri: r.get("redirect_uri")?,
            code_challenge: r.get("code_challenge")?,
            nonce: r.get("nonce")?,
            credential_scope: r.get("credential_scope")?,
            successor_used: r.get("successor_used")?,
        })
    }

    pub(crate) fn into_stored(self, kind: Kind) -> StoreResult<StoredCredential> {
        Ok(StoredCredential {
            kind,
            grant: self.grant.try_into()?,
            grant_revoked: self.revoked_at.is_some(),
            expires_at: self.credential_expires_at,
            used_at: self.credential_used_at,
            successor_used: self.successor_used != 0,
            redirect_uri: self.redirect_uri,
            code_challenge: self.code_challenge,
            nonce: self.nonce,
            scope: self.credential_scope,
        })
    }
}

// ---- the runner ----

/// What a presentation came to.
#[derive(Debug)]
pub enum Outcome<T> {
    /// Committed: the credential is spent and the minted tokens are stored; here is what the
    /// mint produced for the response.
    Issued(T),
    /// Refused; nothing was spent or revoked.
    Refused(Refusal),
    /// Presented again after it was spent: its family is now revoked.
    Replayed { grant_id: String },
    /// Minting failed (a signing error, the memberships could not be read): nothing spent.
    MintFailed(OAuthError),
}

/// How a presentation is answered, for the caller's logs and metrics.
impl<T> Outcome<T> {
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Issued(_) => "issued",
            Outcome::Refused(_) => "refused",
            Outcome::Replayed { .. } => "replayed",
            Outcome::MintFailed(_) => "mint_failed",
        }
    }
}

/// Present a credential: find it, decide, and on *issue* mint (`mint` gets the stored
/// credential and the scope to issue, and returns the tokens to store with what the response
/// needs), then commit. A commit lost to a concurrent presentation looks again (which then
/// decides on the spent credential: a replay, or a retry).
pub async fn present<T, M, Fut>(
    store: &Arc<dyn Store>,
    kind: Kind,
    hash: &TokenHash,
    presented: &Presented<'_>,
    mint: M,
) -> StoreResult<Outcome<T>>
where
    M: FnMut(&StoredCredential, String) -> Fut,
    Fut: Future<Output = Result<(TokensToStore, T), OAuthError>>,
{
    run(store, kind, hash, presented, mint, None).await
}

/// For the store's contract tests: [`present`], but each commit's task waits for a permit of
/// `pause` between its commit and handing the result over, so that a test can drop the
/// request in exactly that window (a client that went away while its commit ran).
#[doc(hidden)]
pub async fn present_pausing_after_commit<T, M, Fut>(
    store: &Arc<dyn Store>,
    kind: Kind,
    hash: &TokenHash,
    presented: &Presented<'_>,
    mint: M,
    pause: Arc<tokio::sync::Semaphore>,
) -> StoreResult<Outcome<T>>
where
    M: FnMut(&StoredCredential, String) -> Fut,
    Fut: Future<Output = Result<(TokensToStore, T), OAuthError>>,
{
    run(store, kind, hash, presented, mint, Some(pause)).await
}

async fn run<T, M, Fut>(
    store: &Arc<dyn Store>,
    kind: Kind,
    hash: &TokenHash,
    presented: &Presented<'_>,
    mut mint: M,
    pause: Option<Arc<tokio::sync::Semaphore>>,
) -> StoreResult<Outcome<T>>
where
    M: FnMut(&StoredCredential, String) -> Fut,
    Fut: Future<Output = Result<(TokensToStore, T), OAuthError>>,
{
    let now = presented.now;
    // A lost commit is followed by one look at the new state; more than a few rounds means
    // commits keep being undone under us, and the presentation gives up without effect.
    let mut waited = 0;
    for _ in 0..3 {
        let stored = store.find_credential(kind, hash).await?;
        let decision = decide(stored.as_ref().map(StoredCredential::held).as_ref(), presented);
        // Spent by a commit being undone here (its request went away): wait for the undo, a few
        // milliseconds, and look again.
        if matches!(decision, Decision::Replay | Decision::Refuse(Refusal::RetryAfterRotation))
            && is_undoing(store, hash)
        {
            while is_undoing(store, hash) && waited < 200 {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                waited += 1;
            }
            continue;
        }
        match decision {
            Decision::Refuse(r) => return Ok(Outcome::Refused(r)),
            Decision::Replay => {
                let Some(s) = stored else { return Ok(Outcome::Refused(Refusal::Unknown)) };
                // In a task of its own: a replayer that goes away does not stop the revocation.
                let (st, grant_id) = (store.clone(), s.grant.id.clone());
                let revoked = tokio::spawn(async move { st.revoke_grant(&grant_id, now).await });
                revoked.await.map_err(|e| StoreError::Engine(format!("the revocation task failed: {e}")))??;
                return Ok(Outcome::Replayed { grant_id: s.grant.id });
            }
            Decision::Issue { scope } => {
                let Some(s) = stored else { return Ok(Outcome::Refused(Refusal::Unknown)) };
                let (tokens, minted) = match mint(&s, scope).await {
                    Ok(v) => v,
                    Err(e) => return Ok(Outcome::MintFailed(e)),
                };
                if commit_handed_over(store, kind, hash, now, tokens, pause.clone()).await? {
                    return Ok(Outcome::Issued(minted));
                }
            }
        }
    }
    Ok(Outcome::Refused(Refusal::Unknown))
}

/// The state of one commit between its task and the request waiting for it.
enum Handoff {
    Waiting,
    Done(StoreResult<bool>),
    /// The request took the result: from here the response is on its way.
    Taken,
    /// The request was dropped before taking the result.
    Abandoned,
}

type Shared = Arc<Mutex<Handoff>>;

/// Credentials whose commit is being undone in this process: a presentation that finds one
/// spent waits for the undo before deciding (else a client's quick retry would be taken for a
/// replay). Bounded by the requests in flight.
fn undoing() -> &'static Mutex<std::collections::HashSet<String>> {
    static UNDOING: std::sync::OnceLock<Mutex<std::collections::HashSet<String>>> = std::sync::OnceLock::new();
    UNDOING.get_or_init(|| Mutex::new(std::collections::HashSet::new()))
}

/// Commits being undone in this process now (the `in_process_entries{map="single_use_undoing"}`
/// metric): each belongs to a request in flight, so it drains when the load stops.
pub fn undoing_now() -> usize {
    undoing().lock().map(|s| s.len()).unwrap_or(0)
}

/// The registry's key: the credential in this store.
fn undo_key(store: &Arc<dyn Store>, hash: &TokenHash) -> String {
    format!("{:p}/{}", Arc::as_ptr(store), hash.as_str())
}

fn is_undoing(store: &Arc<dyn Store>, hash: &TokenHash) -> bool {
    undoing().lock().is_ok_and(|s| s.contains(&undo_key(store, hash)))
}

/// Undo a commit nobody will answer (in a task of its own: it may be called from a drop).
fn undo_later(store: Arc<dyn Store>, kind: Kind, hash: TokenHash, now: UnixTime, tokens: TokensToStore) {
    let key = undo_key(&store, &hash);
    if let Ok(mut s) = undoing().lock() {
        s.insert(key.clone());
    }
    let registered = key.clone();
    let undo = async move {
        let result = store.undo_credential(kind, &hash, now, &tokens).await;
        if let Ok(mut s) = undoing().lock() {
            s.remove(&key);
        }
        match result {
            Ok(done) => {
                metrics::counter!("single_use_commits_undone_total", "kind" => kind.as_str(), "undone" => if done { "yes" } else { "no" })
                    .increment(1);
                tracing::info!(
                    kind = kind.as_str(),
                    undone = done,
                    "a token request was cancelled after its commit; the commit was undone"
                );
            }
            Err(e) => {
                metrics::counter!("single_use_commits_undone_total", "kind" => kind.as_str(), "undone" => "error")
                    .increment(1);
                tracing::error!(kind = kind.as_str(), error = %e, "could not undo the commit of a cancelled token request");
            }
        }
    };
    match tokio::runtime::Handle::try_current() {
        Ok(h) => {
            h.spawn(undo);
        }
        Err(_) => {
            if let Ok(mut s) = undoing().lock() {
                s.remove(&registered);
            }
            tracing::error!(kind = kind.as_str(), "no runtime to undo the commit of a cancelled token request");
        }
    }
}

/// What undoing a commit takes: the store, the credential, the commit's time and its tokens.
type Undo = (Arc<dyn Store>, Kind, TokenHash, UnixTime, TokensToStore);

/// Dropped with the request: a commit that finished but was never taken is undone.
struct Waiter {
    shared: Shared,
    undo: Option<Undo>,
}

impl Drop for Waiter {
    fn drop(&mut self) {
        let Ok(mut s) = self.shared.lock() else { return };
        match std::mem::replace(&mut *s, Handoff::Abandoned) {
            Handoff::Done(Ok(true)) => {
                if let Some((store, kind, hash, now, tokens)) = self.undo.take() {
                    undo_later(store, kind, hash, now, tokens);
                }
            }
            Handoff::Taken => *s = Handoff::Taken,
            // Waiting: the task sees Abandoned and undoes its own commit should it succeed;
            // until it knows, presentations of this credential wait. Anything else committed
            // nothing.
            Handoff::Waiting => {
                if let (Some((store, _, hash, _, _)), Ok(mut u)) = (&self.undo, undoing().lock()) {
                    u.insert(undo_key(store, hash));
                }
            }
            _ => {}
        }
    }
}

/// Run the commit in its own task and wait for it; if this future is dropped meanwhile, the
/// commit (should it succeed) is undone, by whichever side comes second.
async fn commit_handed_over(
    store: &Arc<dyn Store>,
    kind: Kind,
    hash: &TokenHash,
    now: UnixTime,
    tokens: TokensToStore,
    pause: Option<Arc<tokio::sync::Semaphore>>,
) -> StoreResult<bool> {
    let shared: Shared = Arc::new(Mutex::new(Handoff::Waiting));
    let (wake, woken) = tokio::sync::oneshot::channel::<()>();
    let waiter =
        Waiter { shared: shared.clone(), undo: Some((store.clone(), kind, hash.clone(), now, tokens.clone())) };
    let task = {
        let (store, hash, shared) = (store.clone(), hash.clone(), shared.clone());
        async move {
            // Gone before its commit started: commit nothing.
            if shared.lock().map_or(true, |s| matches!(*s, Handoff::Abandoned)) {
                return;
            }
            let r = store.commit_credential(kind, &hash, now, &tokens).await;
            if let Some(p) = pause {
                let _ = p.acquire().await;
            }
            let abandoned = {
                let Ok(mut s) = shared.lock() else { return };
                if matches!(*s, Handoff::Abandoned) {
                    true
                } else {
                    *s = Handoff::Done(r.as_ref().map(|b| *b).map_err(|e| StoreError::Engine(e.to_string())));
                    false
                }
            };
            if abandoned {
                if matches!(r, Ok(true)) {
                    undo_later(store, kind, hash, now, tokens);
                } else if let Ok(mut u) = undoing().lock() {
                    u.remove(&undo_key(&store, &hash));
                }
            } else {
                let _ = wake.send(());
            }
        }
    };
    tokio::spawn(task);
    // The task always wakes us unless it panicked or the runtime is going away.
    let _ = woken.await;
    let result = {
        let mut s = shared.lock().map_err(|_| StoreError::Engine("a commit's hand-off was poisoned".into()))?;
        match std::mem::replace(&mut *s, Handoff::Taken) {
            Handoff::Done(r) => r,
            other => {
                *s = other;
                Err(StoreError::Engine("the commit task stopped without an answer".into()))
            }
        }
    };
    drop(waiter);
    result
}

// ---- the primitives on every backend path ----

/// `SingleUseStore` for both backends: the SQLite writer thread (`fast`) or the PostgreSQL
/// batches (`pg_batch`) when present, else plain sqlx with the statements above.
macro_rules! impl_single_use_store {
    ($ty:ty) => {
        #[async_trait::async_trait]
        impl $crate::SingleUseStore for $ty {
            async fn find_credential(
                &self,
                kind: latchkey_core::single_use::Kind,
                hash: &latchkey_core::TokenHash,
            ) -> $crate::StoreResult<Option<$crate::StoredCredential>> {
                if let Some(f) = self.fast() {
                    return f.find_credential(kind, hash);
                }
                if let Some(b) = self.batched() {
                    return b.find_credential(kind, hash).await;
                }
                let row: Option<$crate::single_use::CredentialRow> = sqlx::query_as($crate::single_use::find_sql(kind))
                    .bind(hash.as_str())
                    .fetch_optional(&self.pool)
                    .await?;
                row.map(|r| r.into_stored(kind)).transpose()
            }

            async fn commit_credential(
                &self,
                kind: latchkey_core::single_use::Kind,
                hash: &latchkey_core::TokenHash,
                now: latchkey_core::UnixTime,
                tokens: &$crate::TokensToStore,
            ) -> $crate::StoreResult<bool> {
                if let Some(f) = self.fast() {
                    return f.commit_credential(kind, hash, now, tokens).await;
                }
                if let Some(b) = self.batched() {
                    return b.commit_credential(kind, hash, now, tokens).await;
                }
                let mut tx = self.begin().await?;
                let claimed = sqlx::query($crate::single_use::claim_sql(kind))
                    .bind(hash.as_str())
                    .bind(now)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                    == 1;
                if !claimed {
                    return Ok(false);
                }
                $crate::grants::store_tokens_in!(tx, tokens);
                tx.commit().await?;
                Ok(true)
            }

            async fn undo_credential(
                &self,
                kind: latchkey_core::single_use::Kind,
                hash: &latchkey_core::TokenHash,
                committed_at: latchkey_core::UnixTime,
                tokens: &$crate::TokensToStore,
            ) -> $crate::StoreResult<bool> {
                let mut tx = self.begin().await?;
                let grant = tokens.refresh.as_ref().map(|r| r.grant_id.as_str());
                if let Some(g) = grant.or(tokens.access.as_ref().and_then(|a| a.grant_id.as_deref())) {
                    sqlx::query($crate::single_use::UNDO_LOCK_GRANT).bind(g).execute(&mut *tx).await?;
                }
                if let Some(r) = &tokens.refresh {
                    let gone = sqlx::query($crate::single_use::UNDO_SUCCESSOR)
                        .bind(r.token_hash.as_str())
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    if gone != 1 {
                        return Ok(false);
                    }
                }
                if let Some(a) = &tokens.access {
                    sqlx::query($crate::single_use::UNDO_ACCESS).bind(a.token_hash.as_str()).execute(&mut *tx).await?;
                }
                let unspent = sqlx::query($crate::single_use::unspend_sql(kind))
                    .bind(hash.as_str())
                    .bind(committed_at)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                tx.commit().await?;
                Ok(unspent == 1)
            }
        }
    };
}

pub(crate) use impl_single_use_store;
