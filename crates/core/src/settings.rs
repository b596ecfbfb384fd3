//! Every setting, its default and its validation. Loading (file, environment) happens in the
//! binary; `config/latchkey.toml` documents the same defaults and a test keeps them in step.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use url::{Host, Url};

use crate::model::SigningAlg;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// The issuer identifier (OIDC Discovery §3): https, or http on a loopback host.
    pub issuer: String,
    /// Address to listen on.
    pub bind: String,
    /// `sqlite://…` or `postgres://…`; empty means `<data_dir>/latchkey.db`.
    pub database_url: String,
    /// Holds the SQLite database and the generated master key file.
    pub data_dir: PathBuf,
    /// `human` or `json`.
    pub log_format: LogFormat,
    /// tracing filter directive, e.g. `info` or `latchkey=debug,info`.
    pub log_filter: String,
    /// Peers whose `X-Forwarded-For`/`Forwarded` headers are believed for the client IP.
    pub trusted_proxies: Vec<String>,
    /// The header those proxies write: `x-forwarded-for` or `forwarded` (RFC 7239). Only that
    /// one is read; the other may come from the client.
    pub trusted_proxy_header: String,
    pub lifetimes: Lifetimes,
    pub signing: Signing,
    pub argon2: Argon2Settings,
    pub cookies: Cookies,
    pub database: Database,
    pub id_token: IdToken,
    pub access_token: AccessToken,
    pub client_auth: ClientAuth,
    pub housekeeping: Housekeeping,
    pub audit: Audit,
    pub registration: Registration,
    pub request_objects: RequestObjects,
    pub logout: Logout,
    pub metrics: Metrics,
    pub limits: Limits,
    pub http: Http,
    /// Development mode: client-supplied URLs (jwks_uri, …) may be plain http on loopback.
    pub development_mode: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Human,
    Json,
}

/// Lifetimes in seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Lifetimes {
    pub authorization_code: i64,
    pub access_token: i64,
    pub id_token: i64,
    pub refresh_token_absolute: i64,
    pub refresh_token_idle: i64,
    /// Refresh lifetimes for public clients (browser and native apps hold them less safely).
    pub refresh_token_public_absolute: i64,
    pub refresh_token_public_idle: i64,
    /// Seconds after a rotation during which a confidential client presenting the refresh
    /// token it just rotated (its successor still unused) is answered `invalid_grant` without
    /// revoking the family: the retry of a lost response. 0 (the default) turns it off; public
    /// clients never get it (RFC 9700 §4.14.2).
    pub refresh_retry_grace: i64,
    pub session: i64,
    /// How long a pending authorization request waits for the user to log in and consent.
    pub interaction: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Signing {
    /// Algorithm for clients that registered none. OIDC requires RS256 to be available.
    pub default_algorithm: String,
    /// Algorithms offered; a key is kept for each.
    pub algorithms: Vec<String>,
    /// Seconds between `keys rotate` publishing a new key and that key signing.
    pub rotation_delay: i64,
    /// Seconds between re-reads of the key table (the bound on staleness across instances).
    pub key_refresh_interval: i64,
    /// RSA modulus size for RS256/PS256 keys.
    pub rsa_bits: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Argon2Settings {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    /// Password verifications running at once; 0 means one per CPU.
    pub max_concurrent: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Cookies {
    /// Base name; `__Host-` is prefixed when the cookie is Secure.
    pub name: String,
    /// `auto` (Secure when the issuer is https), `always` or `never`.
    pub secure: CookieSecure,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CookieSecure {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Database {
    pub max_connections: u32,
    /// Seconds to wait for a pooled connection.
    pub acquire_timeout: u64,
    /// PostgreSQL statement timeout in milliseconds (0: none).
    pub statement_timeout_ms: u64,
    /// Milliseconds a client registration read for client authentication, introspection or
    /// UserInfo is reused (0: read every time). Bounds how long a change made elsewhere (CLI,
    /// another instance) takes to be seen there.
    pub client_cache_ms: u64,
    /// Client registrations the in-process cache (`client_cache_ms`) holds at most; a full
    /// cache starts over, so a flood of distinct client ids costs database reads, not memory.
    pub client_cache_max_entries: usize,
    /// SQLite: once the `-wal` file passes this many bytes, the checkpointer runs a TRUNCATE
    /// checkpoint (readers and writers wait for it briefly) so the WAL is folded back and reset
    /// whatever the load; `journal_size_limit` is set to it too.
    pub sqlite_wal_max_bytes: u64,
    /// PostgreSQL: gather concurrent token-endpoint statements into one statement per batch
    /// (see the storage crate's `pg_batch`). Off: one transaction per request.
    pub postgres_batching: bool,
    /// SQLite: run the token endpoint's writes on one writer thread with group commit, and its
    /// hot reads on in-process connections (see the storage crate's `fast`). Off: every
    /// statement through sqlx (slower; kept so that path stays tested).
    pub sqlite_writer_thread: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdToken {
    /// Put the claims of `profile`/`email`/`address`/`phone` into the ID token too. OIDC Core
    /// §5.4 puts them in UserInfo when an access token is issued; off by default.
    pub scope_claims_in_id_token: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccessToken {
    /// `opaque` (random, stored as a hash) or `jwt` (RFC 9068, not stored); clients may override.
    pub format: String,
    /// Algorithm for JWT access tokens.
    pub signing_algorithm: String,
    /// `aud` of access tokens when no `resource` is asked for; empty means the issuer.
    pub default_audience: String,
}

impl Default for AccessToken {
    fn default() -> Self {
        Self { format: "opaque".into(), signing_algorithm: "RS256".into(), default_audience: String::new() }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientAuth {
    /// Longest accepted lifetime (exp - now) of a client assertion, in seconds.
    pub assertion_max_lifetime: i64,
    /// How long a fetched jwks_uri document is cached, in seconds.
    pub jwks_cache_ttl: i64,
    /// Fetched jwks_uri documents kept at most (each at most the fetch size limit); a full
    /// cache starts over.
    pub jwks_cache_max_entries: usize,
}

impl Default for ClientAuth {
    fn default() -> Self {
        Self { assertion_max_lifetime: 300, jwks_cache_ttl: 300, jwks_cache_max_entries: 1000 }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Housekeeping {
    /// Seconds between runs of the cleanup of expired rows.
    pub interval: u64,
    /// Rows deleted by one statement, at most; a run repeats full batches.
    pub batch_size: i64,
    /// A run stops after this many seconds even if full batches remain (and says so in
    /// `housekeeping_behind`); the next run continues.
    pub max_run_seconds: u64,
    /// Seconds delivered (or given-up) back-channel logouts stay in the outbox.
    pub outbox_retention: i64,
    /// PostgreSQL: once housekeeping has deleted this many rows from a table, it runs a plain
    /// `VACUUM (SKIP_LOCKED)` of it, so the space of deleted rows is reused without waiting for
    /// autovacuum (which visits a database at most once a minute); 0 leaves it to autovacuum.
    /// SQLite reuses freed pages itself.
    pub vacuum_after_rows: u64,
}

impl Default for Housekeeping {
    fn default() -> Self {
        Self {
            interval: 60,
            batch_size: 1000,
            max_run_seconds: 30,
            outbox_retention: 86_400,
            vacuum_after_rows: 10_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Audit {
    /// Seconds audit events are kept; 0 keeps them forever.
    pub retention: i64,
}

impl Default for Audit {
    fn default() -> Self {
        Self { retention: 90 * 86_400 }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Registration {
    /// Dynamic client registration: `closed` (no /register), `open`, or `initial_access_token`
    /// (a token made with `latchkey registration token`).
    pub policy: String,
}

impl Default for Registration {
    fn default() -> Self {
        Self { policy: "closed".into() }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RequestObjects {
    /// Accept unsigned (`alg: none`) request objects from clients that registered
    /// `request_object_signing_alg: none`.
    pub allow_unsigned: bool,
    /// Every client must use pushed authorization requests (RFC 9126 §5).
    pub require_pushed_authorization_requests: bool,
    /// Lifetime of a pushed request's request_uri, in seconds.
    pub par_lifetime: i64,
    /// Longest a request object may still be valid (its `exp` minus now), in seconds.
    pub max_lifetime: i64,
    /// Fetch a `request_uri` only when the client registered it (`request_uris`). Off: a client
    /// that registered none may name any https URL.
    pub require_request_uri_registration: bool,
}

impl Default for RequestObjects {
    fn default() -> Self {
        Self {
            allow_unsigned: false,
            require_pushed_authorization_requests: false,
            par_lifetime: 60,
            max_lifetime: 3600,
            require_request_uri_registration: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Logout {
    /// Back-channel logout deliveries tried at most this often before giving up.
    pub backchannel_max_attempts: i64,
    /// First retry delay in seconds; doubles after every failure.
    pub backchannel_retry_base: i64,
    /// Seconds to wait for a relying party's back-channel logout endpoint.
    pub backchannel_timeout: u64,
}

impl Default for Logout {
    fn default() -> Self {
        Self { backchannel_max_attempts: 8, backchannel_retry_base: 5, backchannel_timeout: 5 }
    }
}

/// Prometheus metrics at `GET /metrics`. They say who signs in and how often, so by default they
/// are served on a loopback listener of their own, never on the public one.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Metrics {
    /// Serve `/metrics` (and record metrics) at all.
    pub enabled: bool,
    /// An `address:port`: `/metrics` is served there only (an admin listener), not on the main
    /// one. Empty: `/metrics` is on the main listener, which needs `bearer_token`.
    pub bind: String,
    /// When set, `/metrics` answers only requests with `Authorization: Bearer <this>`, wherever
    /// it is served. Required when `bind` is empty. At least 32 characters.
    pub bearer_token: String,
}

impl Default for Metrics {
    fn default() -> Self {
        Self { enabled: true, bind: "127.0.0.1:9100".into(), bearer_token: String::new() }
    }
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let token = if self.bearer_token.is_empty() { "" } else { ".." };
        f.debug_struct("Metrics")
            .field("enabled", &self.enabled)
            .field("bind", &self.bind)
            .field("bearer_token", &token)
            .finish()
    }
}

/// The shortest `metrics.bearer_token` accepted.
pub const MIN_METRICS_TOKEN_CHARS: usize = 32;

/// Abuse limits. Counters run in fixed windows of `window` seconds; on PostgreSQL every instance
/// adds its counts to shared counters every `sync_interval_ms`, so the limits hold for the
/// cluster (to within one sync interval). Exceeding a limit answers `429` with `Retry-After`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Turn every limit off (e.g. behind a gateway that limits already).
    pub enabled: bool,
    /// Length of a counting window, in seconds.
    pub window: i64,
    /// Requests per window to the token, introspection, revocation and PAR endpoints, per client.
    pub requests_per_client: i64,
    /// The same, per client IP address (IPv6: per /64).
    pub requests_per_ip: i64,
    /// Failed client authentications per window per client IP and presented client id, before
    /// that pair is refused; unknown client ids from one IP share one count.
    pub client_auth_failures_per_ip: i64,
    /// Failed client authentications per window per client IP whatever the client id, before
    /// that IP is refused (IPv6: per /64, and 4× that per /56, 16× per /48).
    pub client_auth_failures_per_ip_total: i64,
    /// Registration attempts (`POST /register`, failed ones included) per window per client IP.
    pub registrations_per_ip: i64,
    /// `request_uri` documents fetched per window per client.
    pub request_uri_fetches_per_client: i64,
    /// Failed sign-ins per window per client IP, before that IP is refused (credential stuffing;
    /// IPv6: per /64, and 4× that per /56, 16× per /48).
    pub login_failures_per_ip: i64,
    /// Failed sign-ins an account may have from one source before each further failure makes
    /// that source wait (per account and source: an attacker cannot lock a victim out).
    pub login_free_failures: i64,
    /// First wait, in seconds; it doubles with every further failure.
    pub login_backoff_base: i64,
    /// Longest wait, in seconds.
    pub login_backoff_max: i64,
    /// Failures are forgotten after this many quiet seconds.
    pub login_failure_memory: i64,
    /// Failed sign-ins an account may have from all sources together before every attempt on it,
    /// from anywhere, is slowed to one per `login_account_interval` seconds.
    pub login_account_free_failures: i64,
    /// Seconds between two attempts on an account past its `login_account_free_failures`.
    pub login_account_interval: i64,
    /// Subjects (clients, addresses) each kind of counter tracks at most in memory; bounds the
    /// limiter's memory whatever the traffic.
    pub max_subjects_per_kind: i64,
    /// PostgreSQL: how often each instance shares its counts, in milliseconds.
    pub sync_interval_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            enabled: true,
            window: 60,
            requests_per_client: 3_000_000,
            requests_per_ip: 3_000_000,
            client_auth_failures_per_ip: 60,
            client_auth_failures_per_ip_total: 300,
            registrations_per_ip: 60,
            request_uri_fetches_per_client: 600,
            login_failures_per_ip: 100,
            login_free_failures: 5,
            login_backoff_base: 1,
            login_backoff_max: 900,
            login_failure_memory: 3600,
            login_account_free_failures: 50,
            login_account_interval: 5,
            max_subjects_per_kind: 65536,
            sync_interval_ms: 1000,
        }
    }
}

/// Request-level caps on every endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Http {
    /// Largest request body, in bytes (413 above it). Endpoints cap below it with their spec's
    /// error: forms 8 KiB, registration JSON 64 KiB.
    pub max_body_bytes: usize,
    /// Largest total size of the request headers, in bytes (431 above it).
    pub max_header_bytes: usize,
    /// Seconds a request may take, body included, before it is answered with 408.
    pub request_timeout: u64,
    /// Requests served at once; further ones wait for a slot.
    pub max_concurrent_requests: usize,
}

impl Default for Http {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            max_header_bytes: 16 * 1024,
            request_timeout: 30,
            max_concurrent_requests: 1024,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            issuer: "http://127.0.0.1:8080".into(),
            bind: "127.0.0.1:8080".into(),
            database_url: String::new(),
            data_dir: PathBuf::from("./data"),
            log_format: LogFormat::Human,
            log_filter: "info".into(),
            trusted_proxies: Vec::new(),
            trusted_proxy_header: "x-forwarded-for".into(),
            lifetimes: Lifetimes::default(),
            signing: Signing::default(),
            argon2: Argon2Settings::default(),
            cookies: Cookies::default(),
            database: Database::default(),
            id_token: IdToken::default(),
            access_token: AccessToken::default(),
            client_auth: ClientAuth::default(),
            housekeeping: Housekeeping::default(),
            audit: Audit::default(),
            registration: Registration::default(),
            request_objects: RequestObjects::default(),
            logout: Logout::default(),
            metrics: Metrics::default(),
            limits: Limits::default(),
            http: Http::default(),
            development_mode: false,
        }
    }
}

impl Default for Lifetimes {
    fn default() -> Self {
        Self {
            authorization_code: 60,
            access_token: 3600,
            id_token: 3600,
            refresh_token_absolute: 30 * 86400,
            refresh_token_idle: 14 * 86400,
            refresh_token_public_absolute: 86400,
            refresh_token_public_idle: 8 * 3600,
            refresh_retry_grace: 0,
            session: 86400,
            interaction: 900,
        }
    }
}

impl Default for Signing {
    fn default() -> Self {
        Self {
            default_algorithm: "RS256".into(),
            algorithms: vec!["RS256".into(), "PS256".into(), "ES256".into(), "EdDSA".into()],
            rotation_delay: 3600,
            key_refresh_interval: 30,
            rsa_bits: 2048,
        }
    }
}

impl Default for Argon2Settings {
    fn default() -> Self {
        Self { memory_kib: 19456, iterations: 2, parallelism: 1, max_concurrent: 0 }
    }
}

impl Default for Cookies {
    fn default() -> Self {
        Self { name: "latchkey_session".into(), secure: CookieSecure::Auto }
    }
}

impl Default for Database {
    fn default() -> Self {
        Self {
            max_connections: 8,
            acquire_timeout: 5,
            statement_timeout_ms: 10_000,
            client_cache_ms: 1000,
            client_cache_max_entries: 10_000,
            sqlite_wal_max_bytes: 32 * 1024 * 1024,
            postgres_batching: true,
            sqlite_writer_thread: true,
        }
    }
}

/// A setting that cannot be used: which key, and why. Printed as one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingError {
    pub key: String,
    pub reason: String,
}

impl fmt::Display for SettingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid setting `{}`: {}", self.key, self.reason)
    }
}

impl std::error::Error for SettingError {}

fn bad(key: &str, reason: impl Into<String>) -> SettingError {
    SettingError { key: key.into(), reason: reason.into() }
}

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Settings {
    /// Check every setting; the first problem is reported with its key.
    pub fn validate(&self) -> Result<(), SettingError> {
        let issuer = Url::parse(&self.issuer).map_err(|e| bad("issuer", format!("not an absolute URL ({e})")))?;
        if issuer.query().is_some() || issuer.fragment().is_some() {
            return Err(bad("issuer", "must not have a query or fragment (OIDC Discovery §3)"));
        }
        if !issuer.username().is_empty() || issuer.password().is_some() {
            return Err(bad("issuer", "must not carry user information"));
        }
        if self.issuer.ends_with('/') {
            return Err(bad("issuer", "must not end with `/`"));
        }
        match issuer.scheme() {
            "https" => {}
            "http" if is_loopback_host(issuer.host()) => {}
            "http" => return Err(bad("issuer", "must be https unless its host is loopback")),
            other => return Err(bad("issuer", format!("unsupported scheme `{other}`"))),
        }
        self.bind.parse::<SocketAddr>().map_err(|_| bad("bind", format!("`{}` is not an address:port", self.bind)))?;
        self.backend()?;
        if self.database_url.is_empty() && self.data_dir.as_os_str().is_empty() {
            return Err(bad("data_dir", "must not be empty when database_url is empty"));
        }
        if self.log_filter.trim().is_empty() {
            return Err(bad("log_filter", "must not be empty"));
        }
        if !["x-forwarded-for", "forwarded"].iter().any(|h| self.trusted_proxy_header.eq_ignore_ascii_case(h)) {
            return Err(bad("trusted_proxy_header", "must be `x-forwarded-for` or `forwarded`"));
        }
        for (i, p) in self.trusted_proxies.iter().enumerate() {
            if p.parse::<IpAddr>().is_err() {
                return Err(bad(&format!("trusted_proxies[{i}]"), format!("`{p}` is not an IP address")));
            }
        }

        let l = &self.lifetimes;
        for (key, v) in [
            ("lifetimes.authorization_code", l.authorization_code),
            ("lifetimes.access_token", l.access_token),
            ("lifetimes.id_token", l.id_token),
            ("lifetimes.refresh_token_absolute", l.refresh_token_absolute),
            ("lifetimes.refresh_token_idle", l.refresh_token_idle),
            ("lifetimes.refresh_token_public_absolute", l.refresh_token_public_absolute),
            ("lifetimes.refresh_token_public_idle", l.refresh_token_public_idle),
            ("lifetimes.session", l.session),
            ("lifetimes.interaction", l.interaction),
        ] {
            if v <= 0 {
                return Err(bad(key, "must be a positive number of seconds"));
            }
        }
        if !(0..=60).contains(&l.refresh_retry_grace) {
            return Err(bad("lifetimes.refresh_retry_grace", "must be between 0 and 60 seconds"));
        }
        // RFC 6749 §4.1.2: a maximum authorization code lifetime of 10 minutes is RECOMMENDED.
        if l.authorization_code > 600 {
            return Err(bad("lifetimes.authorization_code", "must be at most 600 seconds (RFC 6749 §4.1.2)"));
        }
        if l.refresh_token_idle > l.refresh_token_absolute {
            return Err(bad("lifetimes.refresh_token_idle", "must not exceed lifetimes.refresh_token_absolute"));
        }
        if l.refresh_token_public_idle > l.refresh_token_public_absolute {
            return Err(bad(
                "lifetimes.refresh_token_public_idle",
                "must not exceed lifetimes.refresh_token_public_absolute",
            ));
        }

        let s = &self.signing;
        let algs = self.signing_algorithms()?;
        if algs.is_empty() {
            return Err(bad("signing.algorithms", "must list at least one algorithm"));
        }
        if !algs.contains(&SigningAlg::RS256) {
            return Err(bad("signing.algorithms", "must include RS256 (OIDC Core §15.1)"));
        }
        let default = self.default_signing_alg()?;
        if !algs.contains(&default) {
            return Err(bad("signing.default_algorithm", "must be one of signing.algorithms"));
        }
        if s.key_refresh_interval <= 0 {
            return Err(bad("signing.key_refresh_interval", "must be a positive number of seconds"));
        }
        if s.rotation_delay <= s.key_refresh_interval {
            return Err(bad(
                "signing.rotation_delay",
                "must exceed signing.key_refresh_interval, so every instance publishes a key before any signs with it",
            ));
        }
        if !(2048..=8192).contains(&s.rsa_bits) || !s.rsa_bits.is_multiple_of(8) {
            return Err(bad("signing.rsa_bits", "must be a multiple of 8 between 2048 and 8192"));
        }

        let a = &self.argon2;
        if a.memory_kib < 8 * a.parallelism.max(1) || a.memory_kib > 4 * 1024 * 1024 {
            return Err(bad("argon2.memory_kib", "must be between 8×parallelism and 4194304 KiB"));
        }
        if a.iterations == 0 || a.iterations > 100 {
            return Err(bad("argon2.iterations", "must be between 1 and 100"));
        }
        if a.parallelism == 0 || a.parallelism > 64 {
            return Err(bad("argon2.parallelism", "must be between 1 and 64"));
        }
        if a.max_concurrent > 1024 {
            return Err(bad("argon2.max_concurrent", "must be at most 1024"));
        }

        let lim = &self.limits;
        for (key, v) in [
            ("limits.window", lim.window),
            ("limits.requests_per_client", lim.requests_per_client),
            ("limits.requests_per_ip", lim.requests_per_ip),
            ("limits.client_auth_failures_per_ip", lim.client_auth_failures_per_ip),
            ("limits.client_auth_failures_per_ip_total", lim.client_auth_failures_per_ip_total),
            ("limits.registrations_per_ip", lim.registrations_per_ip),
            ("limits.request_uri_fetches_per_client", lim.request_uri_fetches_per_client),
            ("limits.login_failures_per_ip", lim.login_failures_per_ip),
            ("limits.login_free_failures", lim.login_free_failures),
            ("limits.login_backoff_base", lim.login_backoff_base),
            ("limits.login_backoff_max", lim.login_backoff_max),
            ("limits.login_failure_memory", lim.login_failure_memory),
            ("limits.login_account_free_failures", lim.login_account_free_failures),
            ("limits.login_account_interval", lim.login_account_interval),
            ("limits.max_subjects_per_kind", lim.max_subjects_per_kind),
        ] {
            if v <= 0 {
                return Err(bad(key, "must be a positive number"));
            }
        }
        if lim.window > 86400 {
            return Err(bad("limits.window", "must be at most 86400 seconds"));
        }
        if lim.login_backoff_max < lim.login_backoff_base {
            return Err(bad("limits.login_backoff_max", "must be at least limits.login_backoff_base"));
        }
        if lim.login_account_interval > 60 {
            return Err(bad(
                "limits.login_account_interval",
                "must be at most 60 seconds (it slows the rightful user too)",
            ));
        }
        if lim.max_subjects_per_kind > 16_777_216 {
            return Err(bad("limits.max_subjects_per_kind", "must be at most 16777216"));
        }
        if !(10..=60_000).contains(&lim.sync_interval_ms) {
            return Err(bad("limits.sync_interval_ms", "must be between 10 and 60000"));
        }
        let h = &self.http;
        if !(8 * 1024..=64 * 1024 * 1024).contains(&h.max_body_bytes) {
            return Err(bad("http.max_body_bytes", "must be between 8192 and 67108864"));
        }
        if !(4 * 1024..=1024 * 1024).contains(&h.max_header_bytes) {
            return Err(bad("http.max_header_bytes", "must be between 4096 and 1048576"));
        }
        if !(1024 * 1024..=4 * 1024 * 1024 * 1024).contains(&self.database.sqlite_wal_max_bytes) {
            return Err(bad("database.sqlite_wal_max_bytes", "must be between 1 MiB and 4 GiB"));
        }
        if self.database.client_cache_ms > 60_000 {
            return Err(bad("database.client_cache_ms", "must be at most 60000"));
        }
        if !(1..=1_000_000).contains(&self.database.client_cache_max_entries) {
            return Err(bad("database.client_cache_max_entries", "must be between 1 and 1000000"));
        }
        if !(1..=3600).contains(&h.request_timeout) {
            return Err(bad("http.request_timeout", "must be between 1 and 3600 seconds"));
        }
        if !(1..=1_000_000).contains(&h.max_concurrent_requests) {
            return Err(bad("http.max_concurrent_requests", "must be between 1 and 1000000"));
        }

        if self.cookies.name.is_empty()
            || !self.cookies.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(bad("cookies.name", "must be non-empty letters, digits, `_` or `-`"));
        }
        if self.cookies.secure == CookieSecure::Never && issuer.scheme() == "https" {
            return Err(bad("cookies.secure", "must not be `never` when the issuer is https"));
        }

        self.access_token_format()?;
        let at_alg = self.access_token_alg()?;
        if !algs.contains(&at_alg) {
            return Err(bad("access_token.signing_algorithm", "must be one of signing.algorithms"));
        }
        if !self.access_token.default_audience.is_empty() && Url::parse(&self.access_token.default_audience).is_err() {
            return Err(bad("access_token.default_audience", "must be an absolute URI or empty"));
        }
        if !(1..=3600).contains(&self.client_auth.assertion_max_lifetime) {
            return Err(bad("client_auth.assertion_max_lifetime", "must be between 1 and 3600 seconds"));
        }
        if !(0..=86400).contains(&self.client_auth.jwks_cache_ttl) {
            return Err(bad("client_auth.jwks_cache_ttl", "must be between 0 and 86400 seconds"));
        }
        if !(1..=100_000).contains(&self.client_auth.jwks_cache_max_entries) {
            return Err(bad("client_auth.jwks_cache_max_entries", "must be between 1 and 100000"));
        }
        if self.housekeeping.interval == 0 {
            return Err(bad("housekeeping.interval", "must be a positive number of seconds"));
        }
        if !(1..=100_000).contains(&self.housekeeping.batch_size) {
            return Err(bad("housekeeping.batch_size", "must be between 1 and 100000"));
        }
        if !(1..=3600).contains(&self.housekeeping.max_run_seconds) {
            return Err(bad("housekeeping.max_run_seconds", "must be between 1 and 3600 seconds"));
        }
        if !(0..=365 * 86_400).contains(&self.housekeeping.outbox_retention) {
            return Err(bad("housekeeping.outbox_retention", "must be between 0 and 31536000 seconds"));
        }
        if self.audit.retention < 0 {
            return Err(bad("audit.retention", "must be 0 (keep forever) or a positive number of seconds"));
        }

        if !matches!(self.registration.policy.as_str(), "closed" | "open" | "initial_access_token") {
            return Err(bad("registration.policy", "must be closed, open or initial_access_token"));
        }
        if !(1..=600).contains(&self.request_objects.par_lifetime) {
            return Err(bad("request_objects.par_lifetime", "must be between 1 and 600 seconds"));
        }
        if !(1..=86400).contains(&self.request_objects.max_lifetime) {
            return Err(bad("request_objects.max_lifetime", "must be between 1 and 86400 seconds"));
        }
        if !(1..=100).contains(&self.logout.backchannel_max_attempts) {
            return Err(bad("logout.backchannel_max_attempts", "must be between 1 and 100"));
        }
        if !(1..=3600).contains(&self.logout.backchannel_retry_base) {
            return Err(bad("logout.backchannel_retry_base", "must be between 1 and 3600 seconds"));
        }
        if !(1..=60).contains(&self.logout.backchannel_timeout) {
            return Err(bad("logout.backchannel_timeout", "must be between 1 and 60 seconds"));
        }

        // With metrics off, nothing is served and the rest of [metrics] does not matter.
        if self.metrics.enabled {
            let m = &self.metrics;
            if !m.bearer_token.is_empty()
                && (m.bearer_token.chars().count() < MIN_METRICS_TOKEN_CHARS
                    || !m.bearer_token.bytes().all(|b| b.is_ascii_graphic()))
            {
                return Err(bad(
                    "metrics.bearer_token",
                    format!("must be at least {MIN_METRICS_TOKEN_CHARS} printable ASCII characters without spaces"),
                ));
            }
            if m.bind.is_empty() {
                if m.bearer_token.is_empty() {
                    return Err(bad(
                        "metrics.bearer_token",
                        "is required when metrics.bind is empty (/metrics on the public listener)",
                    ));
                }
            } else {
                let addr = m.bind.parse::<SocketAddr>().map_err(|_| {
                    bad("metrics.bind", format!("`{}` is not an address:port (or empty for the main listener)", m.bind))
                })?;
                if addr.port() != 0 && self.bind.parse::<SocketAddr>().is_ok_and(|b| b == addr) {
                    return Err(bad("metrics.bind", "must differ from bind (leave it empty to serve /metrics there)"));
                }
            }
        }

        let d = &self.database;
        if d.max_connections == 0 || d.max_connections > 1000 {
            return Err(bad("database.max_connections", "must be between 1 and 1000"));
        }
        if d.acquire_timeout == 0 {
            return Err(bad("database.acquire_timeout", "must be a positive number of seconds"));
        }
        Ok(())
    }

    pub fn backend(&self) -> Result<Backend, SettingError> {
        let u = &self.database_url;
        if u.is_empty() || u.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if u.starts_with("postgres://") || u.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else {
            Err(bad("database_url", "must start with sqlite: or postgres://"))
        }
    }

    /// The database URL with the SQLite default filled in.
    pub fn effective_database_url(&self) -> String {
        if self.database_url.is_empty() {
            format!("sqlite://{}", self.data_dir.join("latchkey.db").display())
        } else {
            self.database_url.clone()
        }
    }

    pub fn signing_algorithms(&self) -> Result<Vec<SigningAlg>, SettingError> {
        let mut out = Vec::new();
        for a in &self.signing.algorithms {
            let alg = a.parse::<SigningAlg>().map_err(|e| bad("signing.algorithms", e))?;
            if !out.contains(&alg) {
                out.push(alg);
            }
        }
        Ok(out)
    }

    pub fn default_signing_alg(&self) -> Result<SigningAlg, SettingError> {
        self.signing.default_algorithm.parse().map_err(|e: String| bad("signing.default_algorithm", e))
    }

    pub fn access_token_format(&self) -> Result<crate::model::AccessTokenFormat, SettingError> {
        self.access_token.format.parse().map_err(|e: String| bad("access_token.format", e))
    }

    pub fn access_token_alg(&self) -> Result<SigningAlg, SettingError> {
        self.access_token.signing_algorithm.parse().map_err(|e: String| bad("access_token.signing_algorithm", e))
    }

    /// Refresh lifetimes (absolute, idle) for a client.
    pub fn refresh_lifetimes(&self, public_client: bool) -> (i64, i64) {
        let l = &self.lifetimes;
        if public_client {
            (l.refresh_token_public_absolute, l.refresh_token_public_idle)
        } else {
            (l.refresh_token_absolute, l.refresh_token_idle)
        }
    }

    /// `aud` of access tokens issued without a `resource`.
    pub fn default_audience(&self) -> &str {
        if self.access_token.default_audience.is_empty() { &self.issuer } else { &self.access_token.default_audience }
    }

    pub fn issuer_is_https(&self) -> bool {
        self.issuer.starts_with("https://")
    }

    pub fn cookie_secure(&self) -> bool {
        match self.cookies.secure {
            CookieSecure::Always => true,
            CookieSecure::Never => false,
            CookieSecure::Auto => self.issuer_is_https(),
        }
    }

    /// The longest time a token we sign stays valid: how long a retired key stays published.
    pub fn max_signed_token_lifetime(&self) -> i64 {
        self.lifetimes.id_token.max(self.lifetimes.access_token)
    }

    pub fn trusted_proxy_ips(&self) -> Vec<IpAddr> {
        self.trusted_proxies.iter().filter_map(|p| p.parse().ok()).collect()
    }

    /// An absolute URL under the issuer.
    pub fn endpoint(&self, path: &str) -> String {
        format!("{}{}", self.issuer, path)
    }
}

fn is_loopback_host(h: Option<Host<&str>>) -> bool {
    match h {
        Some(Host::Domain(d)) => d == "localhost",
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(f: impl FnOnce(&mut Settings)) -> Result<(), SettingError> {
        let mut s = Settings::default();
        f(&mut s);
        s.validate()
    }

    #[test]
    fn defaults_are_valid() {
        assert_eq!(with(|_| {}), Ok(()));
    }

    #[test]
    fn non_loopback_issuer_must_be_https() {
        let e = with(|s| s.issuer = "http://id.example.com".into()).unwrap_err();
        assert_eq!(e.key, "issuer");
        assert!(with(|s| s.issuer = "https://id.example.com".into()).is_ok());
        assert!(with(|s| s.issuer = "http://localhost:9000".into()).is_ok());
        assert!(with(|s| s.issuer = "http://[::1]:9000".into()).is_ok());
        assert!(with(|s| s.issuer = "https://id.example.com/?x=1".into()).is_err());
        assert!(with(|s| s.issuer = "https://id.example.com/".into()).is_err());
    }

    #[test]
    fn each_bad_value_names_its_key() {
        assert_eq!(with(|s| s.bind = "nope".into()).unwrap_err().key, "bind");
        assert_eq!(with(|s| s.lifetimes.access_token = 0).unwrap_err().key, "lifetimes.access_token");
        assert_eq!(with(|s| s.lifetimes.authorization_code = 601).unwrap_err().key, "lifetimes.authorization_code");
        assert_eq!(with(|s| s.signing.algorithms = vec!["ES256".into()]).unwrap_err().key, "signing.algorithms");
        assert_eq!(with(|s| s.signing.algorithms.push("HS256".into())).unwrap_err().key, "signing.algorithms");
        assert_eq!(with(|s| s.signing.default_algorithm = "none".into()).unwrap_err().key, "signing.default_algorithm");
        assert_eq!(with(|s| s.signing.rotation_delay = 10).unwrap_err().key, "signing.rotation_delay");
        assert_eq!(with(|s| s.argon2.iterations = 0).unwrap_err().key, "argon2.iterations");
        assert_eq!(with(|s| s.database_url = "mysql://x".into()).unwrap_err().key, "database_url");
        assert_eq!(with(|s| s.trusted_proxies = vec!["x".into()]).unwrap_err().key, "trusted_proxies[0]");
        assert_eq!(with(|s| s.cookies.name = "a b".into()).unwrap_err().key, "cookies.name");
        assert_eq!(with(|s| s.metrics.bind = "admin".into()).unwrap_err().key, "metrics.bind");
        assert_eq!(with(|s| s.metrics.bind = "127.0.0.1:8080".into()).unwrap_err().key, "metrics.bind");
        assert!(with(|s| s.metrics.bind = "127.0.0.1:9100".into()).is_ok());
        assert_eq!(with(|s| s.metrics.bearer_token = "short".into()).unwrap_err().key, "metrics.bearer_token");
        assert_eq!(
            with(|s| s.metrics.bearer_token = format!("{} x", "a".repeat(40))).unwrap_err().key,
            "metrics.bearer_token"
        );
    }

    /// Issue 13: metrics are not on the public listener unless a bearer token guards them.
    #[test]
    fn metrics_are_off_the_public_listener_by_default_and_need_a_token_there() {
        let d = Settings::default();
        assert_eq!(d.metrics.bind, "127.0.0.1:9100");
        assert!(d.metrics.bind.parse::<SocketAddr>().unwrap().ip().is_loopback());
        let public = with(|s| s.metrics.bind = String::new());
        assert_eq!(public.unwrap_err().key, "metrics.bearer_token");
        assert!(
            with(|s| {
                s.metrics.bind = String::new();
                s.metrics.bearer_token = "t".repeat(32);
            })
            .is_ok()
        );
        // Turned off, the rest of [metrics] is not checked.
        assert!(
            with(|s| {
                s.metrics.enabled = false;
                s.metrics.bind = String::new();
            })
            .is_ok()
        );
        assert!(!format!("{:?}", with_token()).contains("tttt"), "the token is not printed");
    }

    fn with_token() -> Metrics {
        Metrics { bearer_token: "t".repeat(32), ..Metrics::default() }
    }

    #[test]
    fn sqlite_is_the_default_backend() {
        let s = Settings::default();
        assert_eq!(s.backend(), Ok(Backend::Sqlite));
        assert!(s.effective_database_url().ends_with("data/latchkey.db"));
    }
}
