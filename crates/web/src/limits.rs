//! Abuse limits (issue 7): fixed-window request counters and sign-in backoff.
//!
//! Counters live in memory, in shards, so a check costs a hash and a short lock. On a database
//! that several instances share (PostgreSQL), a background job ([`Limiter::sync`]) adds each
//! instance's counts to shared rows and reads the cluster totals back every
//! `limits.sync_interval_ms`: a limit then holds for the cluster to within one interval. Sign-in
//! failures per account and source are few and matter across instances at once, so they are
//! kept in the database directly ([`login_wait`], [`login_failed`]).

use latchkey_core::settings::Limits;
use latchkey_core::{OAuthError, UnixTime};
use latchkey_storage::Store;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::sync::Mutex;

const SHARDS: usize = 16;
/// Keys per shard: when full, past windows are pruned (once per window); new keys that still
/// find it full are not tracked.
const SHARD_CAP: usize = 16384;

/// What a counter counts. The key written to the shared table is `kind:subject`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Back-channel requests per client.
    ClientRequests,
    /// Back-channel requests per IP.
    IpRequests,
    /// Failed client authentications per IP.
    ClientAuthFailures,
    /// Clients registered dynamically per IP.
    Registrations,
    /// Failed sign-ins per IP.
    LoginFailures,
    /// `request_uri` documents fetched per client.
    RequestUriFetches,
}

impl Kind {
    fn prefix(self) -> &'static str {
        match self {
            Kind::ClientRequests => "client",
            Kind::IpRequests => "ip",
            Kind::ClientAuthFailures => "authfail",
            Kind::Registrations => "register",
            Kind::LoginFailures => "loginfail",
            Kind::RequestUriFetches => "requesturi",
        }
    }

    fn limit(self, l: &Limits) -> i64 {
        match self {
            Kind::ClientRequests => l.requests_per_client,
            Kind::IpRequests => l.requests_per_ip,
            Kind::ClientAuthFailures => l.client_auth_failures_per_ip,
            Kind::Registrations => l.registrations_per_ip,
            Kind::LoginFailures => l.login_failures_per_ip,
            Kind::RequestUriFetches => l.request_uri_fetches_per_client,
        }
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

#[derive(Debug, Default)]
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
    map: HashMap<String, Counter>,
    /// The window in which the shard was last pruned for lack of room.
    pruned: i64,
}

type Shard = Mutex<ShardData>;

/// In-memory counters, shared across instances by [`Limiter::sync`].
pub struct Limiter {
    shards: Vec<Shard>,
    hasher: std::collections::hash_map::RandomState,
}

impl Default for Limiter {
    fn default() -> Self {
        Self { shards: (0..SHARDS).map(|_| Mutex::new(ShardData::default())).collect(), hasher: Default::default() }
    }
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

impl Limiter {
    fn shard(&self, key: &str) -> Option<std::sync::MutexGuard<'_, ShardData>> {
        let mut h = self.hasher.build_hasher();
        h.write(key.as_bytes());
        let i = usize::try_from(h.finish() % SHARDS as u64).unwrap_or(0);
        // A poisoned shard only means another thread panicked mid-update: counts stay usable.
        self.shards.get(i).map(|m| m.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn window_start(now: UnixTime, window: i64) -> i64 {
        now - now.rem_euclid(window.max(1))
    }

    fn wait(now: UnixTime, window: i64) -> Wait {
        Wait((Self::window_start(now, window) + window - now).max(1))
    }

    /// Count one event for `subject` and refuse it when the window's count is over the limit.
    pub fn hit(&self, limits: &Limits, kind: Kind, subject: &str, now: UnixTime) -> Result<(), Wait> {
        self.apply(limits, kind, subject, now, true)
    }

    /// Refuse when `subject` is already over the limit, without counting.
    pub fn check(&self, limits: &Limits, kind: Kind, subject: &str, now: UnixTime) -> Result<(), Wait> {
        self.apply(limits, kind, subject, now, false)
    }

    /// Count one event for `subject` (a failure, counted after the fact).
    pub fn count(&self, limits: &Limits, kind: Kind, subject: &str, now: UnixTime) {
        let _ = self.apply(limits, kind, subject, now, true);
    }

    fn apply(&self, limits: &Limits, kind: Kind, subject: &str, now: UnixTime, add: bool) -> Result<(), Wait> {
        if !limits.enabled {
            return Ok(());
        }
        let window = Self::window_start(now, limits.window);
        let key = format!("{}:{subject}", kind.prefix());
        let Some(mut shard) = self.shard(&key) else { return Ok(()) };
        if !shard.map.contains_key(&key) {
            if !add {
                return Ok(());
            }
            if shard.map.len() >= SHARD_CAP && shard.pruned != window {
                shard.map.retain(|_, c| c.window >= window);
                shard.pruned = window;
            }
            if shard.map.len() >= SHARD_CAP {
                // Flooded with distinct subjects in one window: stay serving; the limits still
                // hold for the subjects already tracked.
                return Ok(());
            }
        }
        let c = shard.map.entry(key).or_default();
        if c.window != window {
            *c = Counter { window, local: 0, shared: 0 };
        }
        if c.total() >= kind.limit(limits) {
            return Err(Self::wait(now, limits.window));
        }
        if add {
            c.local += 1;
        }
        Ok(())
    }

    /// Share local counts with the other instances: one transaction adds them to the shared
    /// counters and reads the totals back. Counters of past windows are dropped.
    pub async fn sync(&self, store: &dyn Store, limits: &Limits, now: UnixTime) -> latchkey_storage::StoreResult<()> {
        let window = Self::window_start(now, limits.window);
        let mut pending = Vec::new();
        for shard in &self.shards {
            let mut m = shard.lock().unwrap_or_else(|p| p.into_inner());
            m.map.retain(|_, c| c.window >= window);
            for (k, c) in m.map.iter_mut() {
                // Every live key is read back (delta 0 too): other instances may have counted it.
                pending.push((k.clone(), c.window, c.local));
                c.shared += c.local;
                c.local = 0;
            }
        }
        if pending.is_empty() {
            return Ok(());
        }
        // One order on every instance: concurrent syncs lock the same rows in the same order
        // and wait for each other instead of deadlocking.
        pending.sort_unstable();
        match store.add_rate_counts(&pending).await {
            Ok(totals) => {
                for ((key, w, _), total) in pending.into_iter().zip(totals) {
                    self.with(&key, w, |c| c.shared = c.shared.max(total));
                }
                Ok(())
            }
            Err(e) => {
                // Not shared: the counts stay local, to be shared at the next sync.
                for (key, w, delta) in pending {
                    self.with(&key, w, |c| {
                        c.shared -= delta;
                        c.local += delta;
                    });
                }
                Err(e)
            }
        }
    }

    fn with(&self, key: &str, window: i64, f: impl FnOnce(&mut Counter)) {
        if let Some(mut m) = self.shard(key)
            && let Some(c) = m.map.get_mut(key)
            && c.window == window
        {
            f(c);
        }
    }
}

/// The wait after `failures` failed sign-ins: none for the first `login_free_failures`, then
/// `login_backoff_base` seconds doubling per failure, at most `login_backoff_max`.
pub fn backoff(limits: &Limits, failures: i64) -> Option<i64> {
    let over = failures - limits.login_free_failures;
    if over <= 0 {
        return None;
    }
    let shift = u32::try_from(over - 1).unwrap_or(u32::MAX).min(40);
    Some(limits.login_backoff_base.saturating_mul(1i64 << shift).min(limits.login_backoff_max))
}

/// Admit or refuse a sign-in attempt of `account` from `source`, just before its password is
/// checked (the caller holds an argon2 slot, so attempts are checked a few at a time and each
/// sees the failures recorded before it). Past the free failures an attempt must set the next
/// wait itself, atomically: of parallel attempts only one gets through per wait.
pub async fn login_gate(
    store: &dyn Store,
    limits: &Limits,
    account: &str,
    source: &str,
    now: UnixTime,
) -> latchkey_storage::StoreResult<Result<(), Wait>> {
    if !limits.enabled || account.is_empty() {
        return Ok(Ok(()));
    }
    let account = account.to_lowercase();
    let (failures, blocked_until) = store.login_state(&account, source, now - limits.login_failure_memory).await?;
    if blocked_until > now {
        return Ok(Err(Wait(blocked_until - now)));
    }
    if let Some(secs) = backoff(limits, failures + 1)
        && !store.block_login(&account, source, now + secs, now).await?
    {
        return Ok(Err(Wait(secs)));
    }
    Ok(Ok(()))
}

/// Record a failed sign-in of `account` from `source`.
pub async fn login_failed(
    store: &dyn Store,
    limits: &Limits,
    account: &str,
    source: &str,
    now: UnixTime,
) -> latchkey_storage::StoreResult<()> {
    if !limits.enabled || account.is_empty() {
        return Ok(());
    }
    store.record_login_failure(&account.to_lowercase(), source, now, now - limits.login_failure_memory).await
}

/// A successful sign-in forgets the failures of (account, source).
pub async fn login_succeeded(
    store: &dyn Store,
    limits: &Limits,
    account: &str,
    source: &str,
) -> latchkey_storage::StoreResult<()> {
    if !limits.enabled {
        return Ok(());
    }
    store.clear_login_failures(&account.to_lowercase(), source).await
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
    fn a_flood_of_distinct_subjects_is_bounded() {
        let l = Limiter::default();
        let lim = limits(10);
        for i in 0..(SHARDS * SHARD_CAP * 2) {
            let _ = l.hit(&lim, Kind::IpRequests, &i.to_string(), 0);
        }
        let tracked: usize = l.shards.iter().map(|s| s.lock().unwrap().map.len()).sum();
        assert!(tracked <= SHARDS * SHARD_CAP, "{tracked}");
        // The next window prunes the last one's keys to make room.
        assert!(l.hit(&lim, Kind::IpRequests, "new", 60).is_ok());
        let tracked: usize = l.shards.iter().map(|s| s.lock().unwrap().map.len()).sum();
        assert!(tracked < SHARDS * SHARD_CAP, "{tracked}");
    }
}
