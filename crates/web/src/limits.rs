//! Abuse limits (issue 7): fixed-window request counters and sign-in backoff.
//!
//! Counters live in memory, in shards, so a check costs a hash and a short lock. A subject is
//! kept as a 128-bit digest ([`Subject`]), each kind in its own table of at most
//! `limits.max_subjects_per_kind` entries: memory is bounded by configuration whatever clients
//! send (issue 13). A background job drops past windows ([`Limiter::sweep`]); on a database that
//! several instances share (PostgreSQL) it also adds each instance's counts to shared rows and
//! reads the cluster totals back every `limits.sync_interval_ms` ([`Limiter::sync`]): a limit
//! then holds for the cluster to within one interval. Sign-in failures per account and source
//! are few and matter across instances at once, so they are kept in the database directly
//! ([`login_gate`], [`login_failed`]).

use latchkey_core::settings::Limits;
use latchkey_core::{OAuthError, UnixTime};
use latchkey_storage::Store;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::sync::Mutex;

const SHARDS: usize = 16;

/// What a counter counts. The key written to the shared table is `kind:hex(subject)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Back-channel requests per client.
    ClientRequests,
    /// Back-channel requests per IP.
    IpRequests,
    /// Failed client authentications per IP and presented client id (unknown ids: one per IP).
    ClientAuthFailures,
    /// Failed client authentications per IP, whatever the client id.
    ClientAuthFailuresTotal,
    /// Clients registered dynamically per IP.
    Registrations,
    /// Failed sign-ins per IP.
    LoginFailures,
    /// `request_uri` documents fetched per client.
    RequestUriFetches,
}

const KINDS: [Kind; 7] = [
    Kind::ClientRequests,
    Kind::IpRequests,
    Kind::ClientAuthFailures,
    Kind::ClientAuthFailuresTotal,
    Kind::Registrations,
    Kind::LoginFailures,
    Kind::RequestUriFetches,
];

impl Kind {
    pub fn prefix(self) -> &'static str {
        match self {
            Kind::ClientRequests => "client",
            Kind::IpRequests => "ip",
            Kind::ClientAuthFailures => "authfail",
            Kind::ClientAuthFailuresTotal => "authfail-ip",
            Kind::Registrations => "register",
            Kind::LoginFailures => "loginfail",
            Kind::RequestUriFetches => "requesturi",
        }
    }

    fn index(self) -> usize {
        match self {
            Kind::ClientRequests => 0,
            Kind::IpRequests => 1,
            Kind::ClientAuthFailures => 2,
            Kind::ClientAuthFailuresTotal => 3,
            Kind::Registrations => 4,
            Kind::LoginFailures => 5,
            Kind::RequestUriFetches => 6,
        }
    }

    fn limit(self, l: &Limits) -> i64 {
        match self {
            Kind::ClientRequests => l.requests_per_client,
            Kind::IpRequests => l.requests_per_ip,
            Kind::ClientAuthFailures => l.client_auth_failures_per_ip,
            Kind::ClientAuthFailuresTotal => l.client_auth_failures_per_ip_total,
            Kind::Registrations => l.registrations_per_ip,
            Kind::LoginFailures => l.login_failures_per_ip,
            Kind::RequestUriFetches => l.request_uri_fetches_per_client,
        }
    }

    /// Failure counters stop guessing: when full they fail closed (new subjects share one
    /// count) rather than open. Request counters only spread load: when full they stop
    /// tracking new subjects, so a flood of them cannot refuse everyone.
    fn fails_closed(self) -> bool {
        match self {
            Kind::ClientAuthFailures | Kind::ClientAuthFailuresTotal | Kind::LoginFailures => true,
            Kind::ClientRequests | Kind::IpRequests | Kind::Registrations | Kind::RequestUriFetches => false,
        }
    }
}

/// A counted subject, by a 128-bit digest of what names it: an entry costs the same whatever
/// the client sent (a client id may be 8 KiB long), and the digest is the same on every
/// instance, so the shared table can name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Subject([u8; 16]);

impl Subject {
    /// The subject named by `parts` together (each length-prefixed: `("a", "bc")` and
    /// `("ab", "c")` differ).
    pub fn of(parts: &[&str]) -> Self {
        let mut h = Sha256::new();
        for p in parts {
            h.update((p.len() as u64).to_le_bytes());
            h.update(p.as_bytes());
        }
        let d = h.finalize();
        let mut out = [0u8; 16];
        out.copy_from_slice(d.get(..16).unwrap_or(&[0; 16]));
        Self(out)
    }

    fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl From<&str> for Subject {
    fn from(s: &str) -> Self {
        Self::of(&[s])
    }
}

impl From<&String> for Subject {
    fn from(s: &String) -> Self {
        Self::of(&[s])
    }
}

impl From<&Subject> for Subject {
    fn from(s: &Subject) -> Self {
        *s
    }
}

/// The caller must wait this many seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wait(pub i64);

impl Wait {
    pub fn into_error(self) -> OAuthError {
        OAuthError::rate_limited(self.0)
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Counter {
    window: i64,
    /// Counted here and not yet shared.
    local: i64,
    /// The cluster's total at the last sync, including what this instance shared.
    shared: i64,
}

impl Counter {
    fn total(&self) -> i64 {
        self.shared + self.local
    }
}

#[derive(Default)]
struct ShardData {
    map: HashMap<Subject, Counter>,
    /// The window in which the shard was last pruned for lack of room.
    pruned: i64,
}

/// One kind's counters: its own shards and room, so a flood of one kind cannot take another's.
#[derive(Default)]
struct Table {
    shards: [Mutex<ShardData>; SHARDS],
    /// Failure kinds, when a shard is full: the count every untracked subject shares.
    overflow: Mutex<Counter>,
}

/// In-memory counters, shared across instances by [`Limiter::sync`]. Memory is bounded by
/// `limits.max_subjects_per_kind` entries of a fixed size per kind, whatever the input.
#[derive(Default)]
pub struct Limiter {
    tables: [Table; KINDS.len()],
    hasher: std::collections::hash_map::RandomState,
}

/// The subject an IP is counted under: the address, or its /64 for IPv6 (one host's share).
pub fn ip_subject(ip: &str) -> String {
    match ip.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        Ok(IpAddr::V6(v6)) => v6.to_ipv4_mapped().map(|v4| v4.to_string()).unwrap_or_else(|| ip.to_owned()),
        _ => ip.to_owned(),
    }
}

/// Everything an address is counted under, narrowest first, each with the factor its limit is
/// multiplied by: an IPv4 address (×1); for IPv6 its /64 (×1), /56 (×4) and /48 (×16), since
/// one site is commonly given a /48 or /56 and can rotate through its /64s at will.
pub fn ip_levels(ip: &str) -> Vec<(String, i64)> {
    match ip.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            vec![
                (format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3]), 1),
                (format!("{:x}:{:x}:{:x}:{:x}::/56", s[0], s[1], s[2], s[3] & 0xff00), 4),
                (format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2]), 16),
            ]
        }
        _ => vec![(ip_subject(ip), 1)],
    }
}

impl Limiter {
    fn shard(&self, kind: Kind, subject: &Subject) -> Option<std::sync::MutexGuard<'_, ShardData>> {
        let mut h = self.hasher.build_hasher();
        h.write(&subject.0);
        let i = usize::try_from(h.finish() % SHARDS as u64).unwrap_or(0);
        // A poisoned shard only means another thread panicked mid-update: counts stay usable.
        self.tables.get(kind.index())?.shards.get(i).map(|m| m.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn window_start(now: UnixTime, window: i64) -> i64 {
        now - now.rem_euclid(window.max(1))
    }

    fn wait(now: UnixTime, window: i64) -> Wait {
        Wait((Self::window_start(now, window) + window - now).max(1))
    }

    /// Count one event for `subject` and refuse it when the window's count is over the limit.
    pub fn hit(&self, limits: &Limits, kind: Kind, subject: impl Into<Subject>, now: UnixTime) -> Result<(), Wait> {
        self.apply(limits, kind, subject.into(), 1, now, true)
    }

    /// Refuse when `subject` is already over the limit, without counting.
    pub fn check(&self, limits: &Limits, kind: Kind, subject: impl Into<Subject>, now: UnixTime) -> Result<(), Wait> {
        self.apply(limits, kind, subject.into(), 1, now, false)
    }

    /// Count one event for `subject` (a failure, counted after the fact).
    pub fn count(&self, limits: &Limits, kind: Kind, subject: impl Into<Subject>, now: UnixTime) {
        let _ = self.apply(limits, kind, subject.into(), 1, now, true);
    }

    /// [`Limiter::check`] for every level of the address `ip` ([`ip_levels`]).
    pub fn check_ip(&self, limits: &Limits, kind: Kind, ip: &str, now: UnixTime) -> Result<(), Wait> {
        for (level, factor) in ip_levels(ip) {
            self.apply(limits, kind, Subject::from(&level), factor, now, false)?;
        }
        Ok(())
    }

    /// [`Limiter::count`] for every level of the address `ip` ([`ip_levels`]).
    pub fn count_ip(&self, limits: &Limits, kind: Kind, ip: &str, now: UnixTime) {
        for (level, factor) in ip_levels(ip) {
            let _ = self.apply(limits, kind, Subject::from(&level), factor, now, true);
        }
    }

    /// Subjects tracked per kind (for metrics and tests), overflow counts excluded.
    pub fn sizes(&self) -> Vec<(Kind, usize)> {
        KINDS
            .iter()
            .zip(&self.tables)
            .map(|(k, t)| (*k, t.shards.iter().map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).map.len()).sum()))
            .collect()
    }

    fn apply(
        &self,
        limits: &Limits,
        kind: Kind,
        subject: Subject,
        factor: i64,
        now: UnixTime,
        add: bool,
    ) -> Result<(), Wait> {
        if !limits.enabled {
            return Ok(());
        }
        let window = Self::window_start(now, limits.window);
        let limit = kind.limit(limits).saturating_mul(factor);
        let room = usize::try_from(limits.max_subjects_per_kind).unwrap_or(0).div_ceil(SHARDS).max(1);
        let Some(mut shard) = self.shard(kind, &subject) else { return Ok(()) };
        let c = match shard.map.get_mut(&subject) {
            Some(c) => c,
            None => {
                if shard.map.len() >= room && shard.pruned != window {
                    shard.map.retain(|_, c| c.window >= window);
                    shard.pruned = window;
                }
                if shard.map.len() >= room {
                    drop(shard);
                    if !kind.fails_closed() {
                        // A request counter flooded with distinct subjects in one window: stay
                        // serving; the limits still hold for the subjects already tracked.
                        return Ok(());
                    }
                    // A failure counter is full: fail closed. Every subject it cannot track
                    // shares one count, so guessing stays limited however many sources try.
                    let Some(table) = self.tables.get(kind.index()) else { return Ok(()) };
                    let mut o = table.overflow.lock().unwrap_or_else(|p| p.into_inner());
                    return Self::step(&mut o, window, limit, add, now, limits.window);
                }
                if !add {
                    return Ok(());
                }
                shard.map.entry(subject).or_default()
            }
        };
        Self::step(c, window, limit, add, now, limits.window)
    }

    fn step(c: &mut Counter, window: i64, limit: i64, add: bool, now: UnixTime, length: i64) -> Result<(), Wait> {
        if c.window != window {
            *c = Counter { window, local: 0, shared: 0 };
        }
        if c.total() >= limit {
            return Err(Self::wait(now, length));
        }
        if add {
            c.local += 1;
        }
        Ok(())
    }

    /// Drop the counters of past windows (and give back the room a flood took). The sync job
    /// does this on PostgreSQL; on other backends a job calls it every window.
    pub fn sweep(&self, limits: &Limits, now: UnixTime) {
        let window = Self::window_start(now, limits.window);
        for table in &self.tables {
            for shard in &table.shards {
                let mut m = shard.lock().unwrap_or_else(|p| p.into_inner());
                m.map.retain(|_, c| c.window >= window);
                if m.map.capacity() > 64 && m.map.len() < m.map.capacity() / 4 {
                    m.map.shrink_to_fit();
                }
            }
        }
    }

    /// Share local counts with the other instances: one transaction adds them to the shared
    /// counters and reads the totals back. Counters of past windows are dropped.
    pub async fn sync(&self, store: &dyn Store, limits: &Limits, now: UnixTime) -> latchkey_storage::StoreResult<()> {
        self.sweep(limits, now);
        let mut pending = Vec::new();
        for (kind, table) in KINDS.iter().zip(&self.tables) {
            for shard in &table.shards {
                let mut m = shard.lock().unwrap_or_else(|p| p.into_inner());
                for (s, c) in m.map.iter_mut() {
                    // Every live key is read back (delta 0 too): other instances may have
                    // counted it.
                    pending.push((format!("{}:{}", kind.prefix(), s.hex()), c.window, c.local, *kind, *s));
                    c.shared += c.local;
                    c.local = 0;
                }
            }
        }
        if pending.is_empty() {
            return Ok(());
        }
        // One order on every instance: concurrent syncs lock the same rows in the same order
        // and wait for each other instead of deadlocking.
        pending.sort_unstable_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        let (counts, subjects): (Vec<_>, Vec<_>) =
            pending.into_iter().map(|(k, w, d, kind, s)| ((k, w, d), (kind, s, w, d))).unzip();
        match store.add_rate_counts(&counts).await {
            Ok(totals) => {
                for ((kind, s, w, _), total) in subjects.into_iter().zip(totals) {
                    self.with(kind, &s, w, |c| c.shared = c.shared.max(total));
                }
                Ok(())
            }
            Err(e) => {
                // Not shared: the counts stay local, to be shared at the next sync.
                for (kind, s, w, delta) in subjects {
                    self.with(kind, &s, w, |c| {
                        c.shared -= delta;
                        c.local += delta;
                    });
                }
                Err(e)
            }
        }
    }

    fn with(&self, kind: Kind, subject: &Subject, window: i64, f: impl FnOnce(&mut Counter)) {
        if let Some(mut m) = self.shard(kind, subject)
            && let Some(c) = m.map.get_mut(subject)
            && c.window == window
        {
            f(c);
        }
    }
}

/// The wait after `failures` failed sign-ins: none for the first `login_free_failures`, then
/// `login_backoff_base` seconds doubling per failure, at most `login_backoff_max`.
pub fn backoff(limits: &Limits, failures: i64) -> Option<i64> {
    backoff_at(limits, 1, failures)
}

/// [`backoff`] for a source `factor` times wider than one address (its free failures scaled).
fn backoff_at(limits: &Limits, factor: i64, failures: i64) -> Option<i64> {
    let over = failures - limits.login_free_failures.saturating_mul(factor);
    if over <= 0 {
        return None;
    }
    let shift = u32::try_from(over - 1).unwrap_or(u32::MAX).min(40);
    Some(limits.login_backoff_base.saturating_mul(1i64 << shift).min(limits.login_backoff_max))
}

/// The `login_throttle` source that counts an account's failures from everywhere together.
pub const ALL_SOURCES: &str = "*";

/// Admit or refuse a sign-in attempt of `account` from the address `ip` ("" when unknown), just
/// before its password is checked (the caller holds an argon2 slot, so attempts are checked a
/// few at a time and each sees the failures recorded before it).
///
/// The account's failures are counted per source at every level of the address
/// ([`ip_levels`]: an IPv6 /64, /56 and /48, the wider ones with proportionally more free
/// failures) and from all sources together. Past a level's free failures an attempt must set
/// that level's next wait itself, atomically: of parallel attempts only one gets through per
/// wait. Past `login_account_free_failures` from all sources, every attempt on the account
/// takes a turn of `login_account_interval` seconds, wherever it comes from: that floor slows
/// guessing spread over many addresses, and costs the rightful user a few seconds at most.
pub async fn login_gate(
    store: &dyn Store,
    limits: &Limits,
    account: &str,
    ip: &str,
    now: UnixTime,
) -> latchkey_storage::StoreResult<Result<(), Wait>> {
    if !limits.enabled || account.is_empty() {
        return Ok(Ok(()));
    }
    let account = account.to_lowercase();
    let forget = now - limits.login_failure_memory;
    // Every level is read before any turn is taken: a refusal by one spends no other's turn.
    let mut turns = Vec::new();
    let mut wait = 0;
    for (source, factor) in ip_levels(ip) {
        let (failures, blocked_until) = store.login_state(&account, &source, forget).await?;
        wait = wait.max(blocked_until - now);
        if let Some(secs) = backoff_at(limits, factor, failures + 1) {
            turns.push((source, secs));
        }
    }
    let (failures, blocked_until) = store.login_state(&account, ALL_SOURCES, forget).await?;
    wait = wait.max(blocked_until - now);
    if failures >= limits.login_account_free_failures {
        turns.push((ALL_SOURCES.to_owned(), limits.login_account_interval));
    }
    if wait > 0 {
        return Ok(Err(Wait(wait)));
    }
    for (source, secs) in turns {
        if !store.block_login(&account, &source, now + secs, now).await? {
            return Ok(Err(Wait(secs)));
        }
    }
    Ok(Ok(()))
}

/// Record a failed sign-in of `account` from the address `ip`: at every level of the address
/// and from all sources.
pub async fn login_failed(
    store: &dyn Store,
    limits: &Limits,
    account: &str,
    ip: &str,
    now: UnixTime,
) -> latchkey_storage::StoreResult<()> {
    if !limits.enabled || account.is_empty() {
        return Ok(());
    }
    let account = account.to_lowercase();
    let forget = now - limits.login_failure_memory;
    for (source, _) in ip_levels(ip) {
        store.record_login_failure(&account, &source, now, forget).await?;
    }
    store.record_login_failure(&account, ALL_SOURCES, now, forget).await
}

/// A successful sign-in forgets the failures of (account, the address's narrowest level). The
/// wider levels and the all-sources count are kept until they are forgotten: a success from one
/// /64 says nothing of the others, and clearing them would hand a guesser a fresh allowance.
pub async fn login_succeeded(
    store: &dyn Store,
    limits: &Limits,
    account: &str,
    ip: &str,
) -> latchkey_storage::StoreResult<()> {
    if !limits.enabled {
        return Ok(());
    }
    store.clear_login_failures(&account.to_lowercase(), &ip_subject(ip)).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn limits(n: i64) -> Limits {
        Limits { window: 60, requests_per_client: n, ..Default::default() }
    }

    #[test]
    fn a_window_admits_exactly_the_limit_then_waits_until_it_ends() {
        let l = Limiter::default();
        let lim = limits(3);
        for _ in 0..3 {
            assert!(l.hit(&lim, Kind::ClientRequests, "c", 1000).is_ok());
        }
        // 1000 is 40 s into the window [960, 1020).
        assert_eq!(l.hit(&lim, Kind::ClientRequests, "c", 1000), Err(Wait(20)));
        assert!(l.hit(&lim, Kind::ClientRequests, "other", 1000).is_ok(), "subjects are counted apart");
        assert!(l.hit(&lim, Kind::IpRequests, "c", 1000).is_ok(), "kinds are counted apart");
        assert!(l.hit(&lim, Kind::ClientRequests, "c", 1020).is_ok(), "a new window starts afresh");
    }

    #[test]
    fn check_does_not_count_and_disabled_limits_admit_everything() {
        let l = Limiter::default();
        let lim = Limits { client_auth_failures_per_ip: 2, ..Default::default() };
        for _ in 0..5 {
            assert!(l.check(&lim, Kind::ClientAuthFailures, "ip", 0).is_ok());
        }
        l.count(&lim, Kind::ClientAuthFailures, "ip", 0);
        l.count(&lim, Kind::ClientAuthFailures, "ip", 0);
        assert!(l.check(&lim, Kind::ClientAuthFailures, "ip", 0).is_err());
        let off = Limits { enabled: false, ..lim };
        assert!(l.check(&off, Kind::ClientAuthFailures, "ip", 0).is_ok());
    }

    #[test]
    fn backoff_grows_from_the_first_failure_past_the_free_ones_and_is_capped() {
        let lim =
            Limits { login_free_failures: 5, login_backoff_base: 1, login_backoff_max: 900, ..Default::default() };
        assert_eq!(backoff(&lim, 5), None);
        assert_eq!(backoff(&lim, 6), Some(1));
        assert_eq!(backoff(&lim, 7), Some(2));
        assert_eq!(backoff(&lim, 10), Some(16));
        assert_eq!(backoff(&lim, 20), Some(900));
        assert_eq!(backoff(&lim, i64::MAX), Some(900));
    }

    #[test]
    fn ipv6_is_counted_per_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(ip_subject("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
        assert_eq!(ip_subject("2001:db8:1:2:ffff::1"), "2001:db8:1:2::/64");
        assert_eq!(ip_subject("::ffff:192.0.2.1"), "192.0.2.1");
        assert_eq!(ip_subject("192.0.2.1"), "192.0.2.1");
    }

    #[test]
    fn ipv6_is_also_counted_per_56_and_48_with_wider_limits() {
        let levels = ip_levels("2001:db8:1:2a3:3:4:5:6");
        assert_eq!(
            levels,
            vec![
                ("2001:db8:1:2a3::/64".to_owned(), 1),
                ("2001:db8:1:200::/56".to_owned(), 4),
                ("2001:db8:1::/48".to_owned(), 16)
            ]
        );
        assert_eq!(ip_levels("192.0.2.1"), vec![("192.0.2.1".to_owned(), 1)]);
        assert_eq!(ip_levels("::ffff:192.0.2.1"), vec![("192.0.2.1".to_owned(), 1)]);
        // A /48 rotating through its /64s: each /64 has its own 2, the /48 only 32 in all.
        let l = Limiter::default();
        let lim = Limits { login_failures_per_ip: 2, ..Default::default() };
        let mut admitted = 0;
        for i in 0..1000u32 {
            let ip = format!("2001:db8:1:{:x}::1", i);
            if l.check_ip(&lim, Kind::LoginFailures, &ip, 0).is_ok() {
                admitted += 1;
                l.count_ip(&lim, Kind::LoginFailures, &ip, 0);
            }
        }
        assert_eq!(admitted, 32);
        assert!(l.check_ip(&lim, Kind::LoginFailures, "2001:db8:2::1", 0).is_ok(), "another /48 is apart");
    }

    #[test]
    fn subjects_are_fixed_size_digests_of_their_parts() {
        assert_eq!(Subject::of(&["a", "bc"]), Subject::of(&["a", "bc"]));
        assert_ne!(Subject::of(&["a", "bc"]), Subject::of(&["ab", "c"]));
        assert_eq!(Subject::from("x"), Subject::of(&["x"]));
        assert_eq!(Subject::from("x").hex().len(), 32);
        assert_eq!(std::mem::size_of::<Subject>(), 16);
    }

    fn tracked(l: &Limiter, kind: Kind) -> usize {
        l.sizes().into_iter().find(|(k, _)| *k == kind).map(|(_, n)| n).unwrap()
    }

    #[test]
    fn a_flood_of_distinct_subjects_is_bounded_by_the_setting() {
        let l = Limiter::default();
        let lim = Limits { max_subjects_per_kind: 1600, ..limits(10) };
        for i in 0..10_000 {
            let _ = l.hit(&lim, Kind::IpRequests, &i.to_string(), 0);
        }
        let n = tracked(&l, Kind::IpRequests);
        assert!(n <= 1600, "{n}");
        // Request counters fail open when full: a new subject is served.
        assert!(l.hit(&lim, Kind::IpRequests, "new", 0).is_ok());
        // Each kind has its own room: the flood of one did not take another's.
        assert!(l.hit(&lim, Kind::ClientRequests, "c", 0).is_ok());
        assert_eq!(tracked(&l, Kind::ClientRequests), 1);
        // The next window's sweep gives the room back.
        l.sweep(&lim, 60);
        assert_eq!(tracked(&l, Kind::IpRequests), 0);
    }

    #[test]
    fn a_full_failure_counter_fails_closed_for_new_subjects() {
        let l = Limiter::default();
        let lim = Limits { max_subjects_per_kind: 16, client_auth_failures_per_ip: 3, ..Default::default() };
        for i in 0..1000 {
            l.count(&lim, Kind::ClientAuthFailures, &i.to_string(), 0);
        }
        assert!(tracked(&l, Kind::ClientAuthFailures) <= 16);
        // Untracked subjects share one count, already over the limit: refused, not waved through.
        assert_eq!(l.check(&lim, Kind::ClientAuthFailures, "fresh", 0), Err(Wait(60)));
        // Another kind is unaffected, and the next window starts afresh.
        assert!(l.check(&lim, Kind::LoginFailures, "fresh", 0).is_ok());
        assert!(l.check(&lim, Kind::ClientAuthFailures, "fresh", 60).is_ok());
    }
}
