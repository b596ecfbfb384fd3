//! Storage: one set of semantics over SQLite (embedded default) and PostgreSQL.
//!
//! Every method is one atomic domain transition that returns an outcome. Infrastructure
//! failures are [`StoreError`]; domain outcomes (not found, already used, name taken) are values.
//! The store never sees a raw secret: it takes [`TokenHash`]es, argon2id PHC strings and
//! private keys already encrypted by the signer.

mod audit;
mod clients;
mod directory;
mod fast;
mod flows;
mod grants;
mod health;
mod keys;
mod limits;
mod maintenance;
mod oidc;
mod pg_batch;
pub mod postgres;
mod records;
mod sessions;
pub mod single_use;
mod sql;
pub mod sqlite;
mod users;

use async_trait::async_trait;
use latchkey_core::claims::MembershipClaims;
use latchkey_core::model::{Client, Group, Memberships, RoleGrant, User};
use latchkey_core::settings::{Backend, Settings};
use latchkey_core::{TokenHash, UnixTime};
use std::sync::Arc;

pub use records::*;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database error: {0}")]
    Engine(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Outcome of an insert that may collide with an existing unique value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    Created,
    AlreadyExists,
}

#[async_trait]
pub trait ClientStore: Send + Sync {
    async fn create_client(&self, c: &Client) -> StoreResult<Created>;
    async fn get_client(&self, client_id: &str) -> StoreResult<Option<Client>>;
    async fn list_clients(&self) -> StoreResult<Vec<Client>>;
    /// Replace the client's record; false when it does not exist.
    async fn update_client(&self, c: &Client) -> StoreResult<bool>;
    /// Remove the client and everything issued to it; false when it did not exist.
    async fn delete_client(&self, client_id: &str) -> StoreResult<bool>;
}

#[async_trait]
pub trait UserStore: Send + Sync {
    async fn create_user(&self, u: &User) -> StoreResult<Created>;
    async fn get_user(&self, id: &str) -> StoreResult<Option<User>>;
    async fn get_user_by_username(&self, username: &str) -> StoreResult<Option<User>>;
    async fn list_users(&self) -> StoreResult<Vec<User>>;
    /// Set a new argon2id hash; ends the user's sessions. False when the user does not exist.
    async fn set_password(&self, id: &str, password_hash: &str, now: UnixTime) -> StoreResult<bool>;
    /// Remove the user with sessions, consents and grants; false when the user did not exist.
    async fn delete_user(&self, id: &str) -> StoreResult<bool>;
}

/// Groups, memberships and role grants: what the `groups` and `roles` claims are made of.
#[async_trait]
pub trait DirectoryStore: Send + Sync {
    /// AlreadyExists when the name is taken.
    async fn create_group(&self, g: &Group) -> StoreResult<Created>;
    async fn get_group_by_name(&self, name: &str) -> StoreResult<Option<Group>>;
    /// Every group with its member count, by name.
    async fn list_groups(&self) -> StoreResult<Vec<GroupSummary>>;
    /// Remove a group with its memberships and role grants; false when it did not exist.
    async fn delete_group(&self, name: &str) -> StoreResult<bool>;
    /// Replace the user's memberships with exactly these groups (by name), in one transaction.
    /// `Ok(Err(name))` names a group that does not exist; then nothing changed.
    async fn set_user_groups(&self, user_id: &str, group_names: &[String]) -> StoreResult<Result<(), String>>;
    /// The names of the user's groups, sorted.
    async fn list_user_groups(&self, user_id: &str) -> StoreResult<Vec<String>>;
    /// AlreadyExists when the same role is already granted to the same holder for the same client.
    async fn grant_role(&self, g: &RoleGrant, now: UnixTime) -> StoreResult<Created>;
    /// False when there was no such grant.
    async fn revoke_role(&self, g: &RoleGrant) -> StoreResult<bool>;
    async fn list_role_grants(&self, filter: RoleFilter<'_>) -> StoreResult<Vec<RoleGrantView>>;
    /// The user's group names and roles for `client_id` (their own and their groups', global
    /// or for that client), each sorted and unique: one query, none when nothing is wanted.
    async fn memberships(&self, user_id: &str, client_id: &str, wanted: MembershipClaims) -> StoreResult<Memberships>;
}

#[async_trait]
pub trait KeyStore: Send + Sync {
    async fn list_keys(&self) -> StoreResult<Vec<KeyRecord>>;
    /// First start: insert `keys` for each algorithm that has no key yet. Safe when several
    /// instances start at once: exactly one set wins. Returns the kids actually inserted.
    async fn insert_initial_keys(&self, keys: &[KeyRecord]) -> StoreResult<Vec<String>>;
    /// Rotation: in one transaction, schedule every current key of each new key's algorithm to
    /// retire when the new key activates, and insert the new keys.
    async fn rotate_keys(&self, new_keys: &[KeyRecord]) -> StoreResult<()>;
    /// Remove keys retired before `retired_before` (every token they signed has expired).
    async fn prune_keys(&self, retired_before: UnixTime) -> StoreResult<u64>;
    /// Replace the encrypted private key of each (kid, private_key) pair, and the master-key
    /// check value, in one transaction.
    async fn rewrap_keys(&self, rewrapped: &[(String, String)], check: &str) -> StoreResult<()>;
    /// Master-key rotation in one transaction under the key lock: read every signing key, every
    /// stored client secret and the `meta` values named in `meta_keys`, pass them to `reseal`,
    /// and write back what it returns. When `reseal` fails nothing changes: `Ok(Err(reason))`.
    async fn reseal_all(&self, meta_keys: &[&str], reseal: Reseal<'_>) -> StoreResult<Result<SealedValues, String>>;
    async fn get_meta(&self, key: &str) -> StoreResult<Option<String>>;
    /// Store `value` under `key` unless a value exists; returns the value now stored.
    async fn put_meta_if_absent(&self, key: &str, value: &str) -> StoreResult<String>;
}

#[async_trait]
pub trait AuditStore: Send + Sync {
    async fn record_audit(&self, e: &AuditEvent) -> StoreResult<()>;
    async fn list_audit(&self, since: UnixTime, limit: i64) -> StoreResult<Vec<AuditEvent>>;
}

#[async_trait]
pub trait HealthStore: Send + Sync {
    /// One round trip to the database.
    async fn ping(&self) -> StoreResult<()>;
    /// Close the pool, waiting for connections in use.
    async fn close(&self);
    fn backend(&self) -> Backend;
    /// Connections in the pool now: (open, of which idle). For the `db_pool_connections` gauge.
    fn pool_stats(&self) -> (u32, usize);
}

/// Everything the server needs from a database.
pub trait Store:
    ClientStore
    + UserStore
    + DirectoryStore
    + KeyStore
    + AuditStore
    + HealthStore
    + SessionStore
    + FlowStore
    + GrantStore
    + SingleUseStore
    + MaintenanceStore
    + OidcStore
    + CoordinationStore
    + LimitStore
{
}
impl<
    T: ClientStore
        + UserStore
        + DirectoryStore
        + KeyStore
        + AuditStore
        + HealthStore
        + SessionStore
        + FlowStore
        + GrantStore
        + SingleUseStore
        + MaintenanceStore
        + OidcStore
        + CoordinationStore
        + LimitStore,
> Store for T
{
}

/// Abuse limits: sign-in backoff per account and source, and request counters shared by every
/// instance on one database.
#[async_trait]
pub trait LimitStore: Send + Sync {
    /// (failures, blocked_until) of (account, source); failures last touched before
    /// `forget_before` count as none.
    async fn login_state(&self, account: &str, source: &str, forget_before: UnixTime) -> StoreResult<(i64, UnixTime)>;
    /// Count a failed sign-in; a count last touched before `forget_before` starts again at one.
    async fn record_login_failure(
        &self,
        account: &str,
        source: &str,
        now: UnixTime,
        forget_before: UnixTime,
    ) -> StoreResult<()>;
    /// Make (account, source) wait until `until`, unless it already waits past `now` (another
    /// attempt got there first): true when this call set the wait.
    async fn block_login(&self, account: &str, source: &str, until: UnixTime, now: UnixTime) -> StoreResult<bool>;
    /// A successful sign-in forgets the failures of (account, source).
    async fn clear_login_failures(&self, account: &str, source: &str) -> StoreResult<()>;
    /// Add local counts to the shared counters, in one transaction; returns each new total.
    async fn add_rate_counts(&self, counts: &[(String, i64, i64)]) -> StoreResult<Vec<i64>>;
}

/// Pending authorization requests and remembered consent.
#[async_trait]
pub trait FlowStore: Send + Sync {
    async fn create_interaction(&self, i: &InteractionRecord) -> StoreResult<()>;
    async fn get_interaction(&self, id_hash: &TokenHash, now: UnixTime) -> StoreResult<Option<InteractionRecord>>;
    /// Record the session the user confirmed for this request; false if it is gone.
    async fn set_interaction_login(&self, id_hash: &TokenHash, sid: &str) -> StoreResult<bool>;
    /// Record the consent decision with the user and session that made it; false if the
    /// interaction is gone.
    async fn set_interaction_consent(&self, id_hash: &TokenHash, consent: &InteractionConsent) -> StoreResult<bool>;
    /// Remove the interaction; true for exactly one caller (the one that completes it).
    async fn take_interaction(&self, id_hash: &TokenHash) -> StoreResult<bool>;
    /// Scopes the user already granted the client.
    async fn get_consent(&self, user_id: &str, client_id: &str) -> StoreResult<Option<Vec<String>>>;
    /// Remember (replace) the scopes the user granted the client.
    async fn put_consent(&self, user_id: &str, client_id: &str, scopes: &[String], now: UnixTime) -> StoreResult<()>;
}

/// The primitives of single-use credentials (codes, refresh tokens); [`single_use::present`]
/// runs them around the decision of `latchkey_core::single_use`.
#[async_trait]
pub trait SingleUseStore: Send + Sync {
    /// A single-use credential as stored, whatever its state, with its grant (no side
    /// effect). See [`single_use`] for how it is used.
    async fn find_credential(
        &self,
        kind: latchkey_core::single_use::Kind,
        hash: &TokenHash,
    ) -> StoreResult<Option<StoredCredential>>;
    /// In one transaction: spend the credential if it is still unspent, unexpired at `now` and
    /// its grant live, and store `tokens`. False, with nothing written, when it was not (another
    /// presentation won). Exactly one of concurrent commits of one credential is true.
    async fn commit_credential(
        &self,
        kind: latchkey_core::single_use::Kind,
        hash: &TokenHash,
        now: UnixTime,
        tokens: &TokensToStore,
    ) -> StoreResult<bool>;
    /// Reverse a commit (made at `committed_at`) whose response was never handed over: delete
    /// `tokens` and make the credential unspent again, in one transaction; false (nothing
    /// changed) when the successor refresh token in `tokens` has been used or is gone.
    async fn undo_credential(
        &self,
        kind: latchkey_core::single_use::Kind,
        hash: &TokenHash,
        committed_at: UnixTime,
        tokens: &TokensToStore,
    ) -> StoreResult<bool>;
}

/// Grants, codes and tokens.
#[async_trait]
pub trait GrantStore: Send + Sync {
    /// Store a new grant and its authorization code, atomically.
    async fn issue_code(&self, grant: &GrantRecord, code: &CodeRecord) -> StoreResult<()>;
    /// Store an access token unless its grant has been revoked (then false).
    async fn store_access_token(&self, t: &AccessTokenRecord) -> StoreResult<bool>;
    /// A live access token: unexpired, its grant not revoked.
    async fn get_access_token(&self, token_hash: &TokenHash, now: UnixTime) -> StoreResult<Option<AccessTokenView>>;
    /// Revoke a grant and delete its tokens; false if it was already revoked or is unknown.
    async fn revoke_grant(&self, grant_id: &str, now: UnixTime) -> StoreResult<bool>;
    /// Store tokens that need no other step (client credentials).
    async fn store_tokens(&self, t: &TokensToStore) -> StoreResult<()>;
    async fn get_refresh_token(&self, token_hash: &TokenHash, now: UnixTime) -> StoreResult<Option<RefreshTokenView>>;
    /// A grant that is not revoked (whatever its expiry).
    async fn get_live_grant(&self, grant_id: &str) -> StoreResult<Option<GrantRecord>>;
    /// Delete one opaque access token; false if it was not there.
    async fn delete_access_token(&self, token_hash: &TokenHash) -> StoreResult<bool>;
    /// Record a revoked JWT access token until it would have expired.
    async fn revoke_jti(&self, jti: &str, expires_at: UnixTime) -> StoreResult<()>;
    async fn is_jti_revoked(&self, jti: &str) -> StoreResult<bool>;
    /// Revoke every grant of a user (optionally only with one client); returns how many.
    async fn revoke_user_grants(&self, user_id: &str, client_id: Option<&str>, now: UnixTime) -> StoreResult<u64>;
    /// RFC 7523 §3: remember a client assertion's jti until it expires; false if seen before.
    async fn record_assertion_jti(&self, client_id: &str, jti: &str, expires_at: UnixTime) -> StoreResult<bool>;
}

/// What the OpenID profiles need: registration tokens, who took part in a session, the
/// back-channel logout outbox, pushed requests.
#[async_trait]
pub trait OidcStore: Send + Sync {
    async fn create_initial_access_token(
        &self,
        hash: &TokenHash,
        now: UnixTime,
        expires_at: UnixTime,
    ) -> StoreResult<()>;
    /// Use up an initial access token (single use); false if unknown or expired.
    async fn use_initial_access_token(&self, hash: &TokenHash, now: UnixTime) -> StoreResult<bool>;
    /// Remember that `client_id` received tokens in session `sid`.
    async fn record_session_client(&self, sid: &str, client_id: &str, user_id: &str) -> StoreResult<()>;
    /// The clients that took part in a session, forgetting them (the session ended).
    async fn take_session_clients(&self, sid: &str) -> StoreResult<Vec<String>>;
    /// Every (sid, client_id) of a user's sessions, forgetting them.
    async fn take_user_session_clients(&self, user_id: &str) -> StoreResult<Vec<(String, String)>>;
    async fn enqueue_logouts(&self, items: &[OutboxItem]) -> StoreResult<()>;
    /// Undelivered items due at `now`, oldest first.
    async fn due_logouts(&self, now: UnixTime, limit: i64) -> StoreResult<Vec<OutboxItem>>;
    async fn mark_logout_delivered(&self, id: i64, now: UnixTime) -> StoreResult<()>;
    /// Record a failed attempt; `next_attempt_at` None gives up on the item.
    async fn mark_logout_failed(&self, id: i64, next_attempt_at: Option<UnixTime>, error: &str) -> StoreResult<()>;
    async fn push_request(&self, r: &PushedRequest) -> StoreResult<()>;
    /// Use up a pushed request (one time) presented by `client_id`; None, with nothing spent,
    /// if unknown, expired or pushed by another client (RFC 9126 §4: bound to its client).
    async fn take_pushed_request(
        &self,
        uri_hash: &TokenHash,
        client_id: &str,
        now: UnixTime,
    ) -> StoreResult<Option<PushedRequest>>;
}

/// A lease on a background job: while it is held, no other instance runs that job. `release`
/// gives it back at once; dropping it (or the instance dying) releases it eventually.
#[async_trait]
pub trait Lease: Send {
    async fn release(self: Box<Self>);
}

/// What several instances on one database need to behave as one server.
#[async_trait]
pub trait CoordinationStore: Send + Sync {
    /// Try to become the one instance running `job` now; None when another instance holds it.
    /// PostgreSQL: a transaction-level advisory lock held by the lease's transaction.
    /// SQLite: one machine, always granted.
    async fn try_lease(&self, job: &str) -> StoreResult<Option<Box<dyn Lease>>>;
    /// A channel that ticks whenever another instance changed the signing keys (PostgreSQL
    /// LISTEN/NOTIFY); None where there is no such signal (SQLite: the periodic re-read serves).
    async fn key_changes(&self) -> Option<tokio::sync::mpsc::Receiver<()>>;
}

/// A kind of row housekeeping deletes once it is due: expired, or older than its retention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Purge {
    AuthorizationCodes,
    AccessTokens,
    /// Used (rotated) ones too: they are kept until they expire, to detect their replay.
    RefreshTokens,
    /// With the participants (`session_clients`) of the sessions deleted.
    Sessions,
    /// Participants left behind by sessions that are gone; not an index range scan (an
    /// anti-join over `session_clients`), one pass per run.
    SessionClients,
    Interactions,
    RevokedJtis,
    /// Client assertion and request object `jti`s (RFC 7523 §3, RFC 9101 §10.2).
    AssertionJtis,
    /// After their tokens: a grant outlives every token it issued.
    Grants,
    InitialAccessTokens,
    PushedRequests,
    /// Delivered or given-up back-channel logouts past `housekeeping.outbox_retention`.
    LogoutOutbox,
    /// Past `audit.retention`.
    AuditEvents,
    LoginThrottle,
    RateCounters,
}

impl Purge {
    /// Every kind, in the order a run visits them (tokens before their grants).
    pub const ALL: [Purge; 15] = [
        Purge::AuthorizationCodes,
        Purge::AccessTokens,
        Purge::RefreshTokens,
        Purge::Sessions,
        Purge::SessionClients,
        Purge::Interactions,
        Purge::RevokedJtis,
        Purge::AssertionJtis,
        Purge::Grants,
        Purge::InitialAccessTokens,
        Purge::PushedRequests,
        Purge::LogoutOutbox,
        Purge::AuditEvents,
        Purge::LoginThrottle,
        Purge::RateCounters,
    ];

    /// The table it deletes from (the `table` label of the housekeeping metrics).
    pub fn table(self) -> &'static str {
        match self {
            Purge::AuthorizationCodes => "authorization_codes",
            Purge::AccessTokens => "access_tokens",
            Purge::RefreshTokens => "refresh_tokens",
            Purge::Sessions => "sessions",
            Purge::SessionClients => "session_clients",
            Purge::Interactions => "interactions",
            Purge::RevokedJtis => "revoked_jtis",
            Purge::AssertionJtis => "assertion_jtis",
            Purge::Grants => "grants",
            Purge::InitialAccessTokens => "initial_access_tokens",
            Purge::PushedRequests => "pushed_requests",
            Purge::LogoutOutbox => "logout_outbox",
            Purge::AuditEvents => "audit_events",
            Purge::LoginThrottle => "login_throttle",
            Purge::RateCounters => "rate_counters",
        }
    }
}

/// The statements `purge_expired` runs for `what` (`$1` the cutoff, `$2` the batch size), for
/// tests and tools that check their query plans.
pub fn purge_statements(what: Purge) -> &'static [&'static str] {
    maintenance::purge_sql(what).0
}

/// When rows become due for deletion, fixed for one housekeeping run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PurgeCutoffs {
    /// Rows that expire (`expires_at`) before this go.
    pub now: UnixTime,
    /// Audit events recorded before this go; None keeps them all.
    pub audit_before: Option<UnixTime>,
    /// Finished back-channel logouts created before this go.
    pub outbox_before: UnixTime,
}

impl PurgeCutoffs {
    /// The time before which rows of `what` are due (compared with its expiry or age
    /// column); None when nothing of that kind is ever due.
    pub fn due_before(&self, what: Purge) -> Option<UnixTime> {
        match what {
            Purge::AuditEvents => self.audit_before,
            Purge::LogoutOutbox => Some(self.outbox_before),
            // Sign-in failures a day old and counters an hour old no longer matter.
            Purge::LoginThrottle => Some(self.now.saturating_sub(86_400)),
            Purge::RateCounters => Some(self.now.saturating_sub(3_600)),
            _ => Some(self.now),
        }
    }
}

/// Housekeeping: due rows go, in bounded batches.
#[async_trait]
pub trait MaintenanceStore: Send + Sync {
    /// Delete at most `batch` due rows of one kind, oldest first, in one short statement (an
    /// index range scan); returns the number deleted. A full batch means more may be due.
    async fn purge_expired(&self, what: Purge, cutoffs: &PurgeCutoffs, batch: i64) -> StoreResult<u64>;
    /// The expiry (or age) of the oldest row of `what` that is due, None when none is: how far
    /// housekeeping lags behind.
    async fn oldest_due(&self, what: Purge, cutoffs: &PurgeCutoffs) -> StoreResult<Option<UnixTime>>;
    /// Let the database reuse the space of the rows housekeeping deleted from `table` (one of
    /// [`Purge::table`]): PostgreSQL runs `VACUUM (SKIP_LOCKED)` on it (no lock that blocks
    /// reads or writes; skipped when autovacuum holds the table); SQLite does nothing (freed
    /// pages are reused by the next writes).
    async fn reclaim(&self, table: &'static str) -> StoreResult<()>;
    /// End every session of a user (sign out everywhere); returns the sessions ended.
    async fn delete_user_sessions(&self, user_id: &str) -> StoreResult<Vec<SessionRecord>>;
    /// Forget a user's consent for a client; false if there was none.
    async fn delete_consent(&self, user_id: &str, client_id: &str) -> StoreResult<bool>;
}

#[async_trait]
pub trait SessionStore: Send + Sync {
    async fn create_session(&self, s: &SessionRecord) -> StoreResult<()>;
    /// A live (unexpired) session by the hash of its cookie value.
    async fn get_session(&self, id_hash: &TokenHash, now: UnixTime) -> StoreResult<Option<SessionRecord>>;
    /// End the session; returns it if it existed.
    async fn delete_session(&self, id_hash: &TokenHash) -> StoreResult<Option<SessionRecord>>;
}

/// Open the configured database (creating the SQLite file and its directory if needed) and
/// apply pending migrations.
pub async fn open(settings: &Settings) -> StoreResult<Arc<dyn Store>> {
    match settings.backend().map_err(|e| StoreError::Corrupt(e.to_string()))? {
        Backend::Sqlite => Ok(Arc::new(sqlite::SqliteStore::open(settings).await?)),
        Backend::Postgres => Ok(Arc::new(postgres::PgStore::open(settings).await?)),
    }
}

/// Open without migrating (for checking that migrations are applied, or tooling).
pub async fn open_unmigrated(settings: &Settings) -> StoreResult<Arc<dyn Store>> {
    match settings.backend().map_err(|e| StoreError::Corrupt(e.to_string()))? {
        Backend::Sqlite => Ok(Arc::new(sqlite::SqliteStore::connect(settings).await?)),
        Backend::Postgres => Ok(Arc::new(postgres::PgStore::connect(settings).await?)),
    }
}
