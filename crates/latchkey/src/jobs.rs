//! Background jobs: re-read the key table (picking up rotations made by the CLI or another
//! instance), drop keys whose tokens have all expired, purge expired rows, deliver
//! back-channel logout tokens from the outbox, and sweep (on PostgreSQL: share) the rate-limit
//! counters.

use latchkey_core::UnixTime;
use latchkey_core::settings::Logout;
use latchkey_storage::{OutboxItem, Purge, PurgeCutoffs};
use latchkey_web::{AppState, AppStateInner};
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How often the logout outbox is polled.
const LOGOUT_POLL: Duration = Duration::from_secs(1);
/// Outbox items taken per delivery run.
const LOGOUT_BATCH: i64 = 50;
/// The longest wait between two delivery attempts, however many failed.
const MAX_RETRY_DELAY: i64 = 86_400;

pub fn spawn(state: AppState, stop: watch::Receiver<bool>) -> JoinHandle<()> {
    let logouts = deliver_logouts_forever(state.clone(), stop.clone());
    let limits = share_limits_forever(state.clone(), stop.clone());
    let cleaning = housekeeping_forever(state.clone(), stop.clone());
    let maintenance = maintain(state, stop);
    // One task, so aborting it (at shutdown) stops every loop.
    tokio::spawn(async move {
        tokio::join!(maintenance, cleaning, logouts, limits);
    })
}

/// Drop the rate-limit counters of past windows, on every backend. On a database several
/// instances share (PostgreSQL), also add this instance's counts to the shared counters and
/// read the cluster's totals back, every `limits.sync_interval_ms`. SQLite serves one process:
/// its counters stay in memory and are swept every window.
async fn share_limits_forever(state: AppState, mut stop: watch::Receiver<bool>) {
    let l = &state.settings.limits;
    if !l.enabled {
        return;
    }
    let shared = state.store.backend() == latchkey_core::settings::Backend::Postgres;
    let every = match shared {
        true => Duration::from_millis(l.sync_interval_ms),
        false => Duration::from_secs(u64::try_from(l.window).unwrap_or(60).clamp(1, 60)),
    };
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => match shared {
                true => share_limits(&state).await,
                false => state.limiter.sweep(&state.settings.limits, state.now()),
            },
            _ = stop.changed() => break,
        }
    }
}

pub async fn share_limits(state: &AppState) {
    if let Err(e) = state.limiter.sync(state.store.as_ref(), &state.settings.limits, state.now()).await {
        tracing::warn!(error = %e, "sharing rate-limit counts failed");
    }
}

async fn maintain(state: AppState, mut stop: watch::Receiver<bool>) {
    let every = Duration::from_secs(u64::try_from(state.settings.signing.key_refresh_interval).unwrap_or(30).max(1));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the first tick is immediate; keys were just loaded
    // PostgreSQL tells every instance at once when keys change (LISTEN/NOTIFY); the periodic
    // re-read stays as the fallback and bounds staleness by signing.key_refresh_interval.
    let mut changes = state.store.key_changes().await;
    loop {
        tokio::select! {
            _ = tick.tick() => refresh_keys(&state).await,
            Some(()) = next_change(&mut changes) => refresh_keys(&state).await,
            _ = stop.changed() => break,
        }
    }
}

async fn next_change(rx: &mut Option<tokio::sync::mpsc::Receiver<()>>) -> Option<()> {
    match rx {
        Some(r) => r.recv().await,
        None => std::future::pending().await,
    }
}

/// Run `job` only if no other instance is running it (PostgreSQL advisory lock).
async fn lease(state: &AppState, job: &str) -> Option<Box<dyn latchkey_storage::Lease>> {
    match state.store.try_lease(job).await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, job, "could not take the job lease");
            None
        }
    }
}

async fn deliver_logouts_forever(state: AppState, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(LOGOUT_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => { deliver_logouts(&state).await; }
            _ = stop.changed() => break,
        }
    }
}

pub async fn refresh_keys(state: &AppState) {
    let now = state.now();
    let cutoff = now - state.settings.max_signed_token_lifetime();
    match state.store.prune_keys(cutoff).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(removed = n, "removed signing keys whose tokens have all expired"),
        Err(e) => tracing::warn!(error = %e, "pruning signing keys failed"),
    }
    if let Err(e) = state.keys.reload(state.store.as_ref(), now).await {
        tracing::error!(error = %e, "reloading signing keys failed; keeping the previous set");
    }
    crate::metrics::record_key_ages(state);
}

/// Housekeeping on its own loop, so a long run delays nothing else (key reloads, deliveries).
async fn housekeeping_forever(state: AppState, mut stop: watch::Receiver<bool>) {
    let mut clean = tokio::time::interval(Duration::from_secs(state.settings.housekeeping.interval.max(1)));
    clean.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = clean.tick() => { housekeeping(&state).await; }
            _ = stop.changed() => break,
        }
    }
}

/// Delete due rows (expired codes, tokens, grants, sessions, interactions, replay records,
/// pushed requests; audit events and finished logouts past their retention), one bounded
/// batch per statement, repeating the kinds whose batch came back full until none is left or
/// `housekeeping.max_run_seconds` has passed. Every statement is short, so the hot path waits
/// for at most one batch. Returns the number of rows deleted.
///
/// Metrics: `housekeeping_rows_deleted_total{table}`, `housekeeping_last_run_seconds`,
/// `housekeeping_last_run_timestamp_seconds`, `housekeeping_behind` (1: the last run stopped
/// with full batches left) and `housekeeping_lag_seconds{table}` (how long the oldest due row
/// has been due, after the run).
pub async fn housekeeping(state: &AppState) -> u64 {
    housekeeping_run(state).await.unwrap_or(0)
}

/// One run, as `housekeeping`; None when another run (of this instance or another one on the
/// same database) holds the job.
pub async fn housekeeping_run(state: &AppState) -> Option<u64> {
    let held = lease(state, "housekeeping").await?;
    let started = std::time::Instant::now();
    let run = purge(state, started).await;
    reclaim(state, &run.deleted).await;
    record_lag(state).await;
    held.release().await;
    metrics::gauge!("housekeeping_last_run_seconds").set(started.elapsed().as_secs_f64());
    metrics::gauge!("housekeeping_last_run_timestamp_seconds").set(state.now() as f64);
    metrics::gauge!("housekeeping_behind").set(if run.behind { 1.0 } else { 0.0 });
    if run.behind {
        tracing::warn!(
            removed = run.removed,
            "housekeeping stopped at housekeeping.max_run_seconds with due rows left; \
            deletion is slower than creation: raise housekeeping.batch_size or run it more often"
        );
    } else if run.removed > 0 {
        tracing::info!(removed = run.removed, seconds = started.elapsed().as_secs_f64(), "removed expired rows");
    }
    Some(run.removed)
}

struct Run {
    removed: u64,
    behind: bool,
    /// Rows deleted per table in this run.
    deleted: Vec<(&'static str, u64)>,
}

/// Rows deleted per table since that table was last vacuumed (this process).
static SINCE_VACUUM: std::sync::Mutex<Vec<(&'static str, u64)>> = std::sync::Mutex::new(Vec::new());

/// After a run: the tables from which `housekeeping.vacuum_after_rows` rows have been deleted
/// since their last vacuum are vacuumed (PostgreSQL; a no-op on SQLite). Deleted rows are dead
/// tuples until a vacuum, and autovacuum visits a database at most once per
/// `autovacuum_naptime` (a minute by default): under constant load the tables would otherwise
/// grow between its visits. Metric: `housekeeping_vacuums_total{table,result}`.
async fn reclaim(state: &AppState, deleted: &[(&'static str, u64)]) {
    let every = state.settings.housekeeping.vacuum_after_rows;
    if every == 0 || state.store.backend() != latchkey_core::settings::Backend::Postgres {
        return;
    }
    let due: Vec<&'static str> = {
        let Ok(mut counts) = SINCE_VACUUM.lock() else { return };
        for &(table, n) in deleted {
            match counts.iter_mut().find(|(t, _)| *t == table) {
                Some((_, c)) => *c = c.saturating_add(n),
                None => counts.push((table, n)),
            }
        }
        counts
            .iter_mut()
            .filter(|(_, c)| *c >= every)
            .map(|(t, c)| {
                *c = 0;
                *t
            })
            .collect()
    };
    for table in due {
        let result = match state.store.reclaim(table).await {
            Ok(()) => "ok",
            Err(e) => {
                tracing::warn!(error = %e, table, "housekeeping could not vacuum (leaving it to autovacuum)");
                "error"
            }
        };
        metrics::counter!("housekeeping_vacuums_total", "table" => table, "result" => result).increment(1);
    }
}

/// Due rows as of the start of the run: the run ends once they are gone, whatever is added.
fn cutoffs(state: &AppState) -> PurgeCutoffs {
    let now = state.now();
    let s = &state.settings;
    PurgeCutoffs {
        now,
        audit_before: (s.audit.retention > 0).then(|| now.saturating_sub(s.audit.retention)),
        outbox_before: now.saturating_sub(s.housekeeping.outbox_retention),
    }
}

async fn purge(state: &AppState, started: std::time::Instant) -> Run {
    let cut = cutoffs(state);
    let batch = state.settings.housekeeping.batch_size;
    let budget = Duration::from_secs(state.settings.housekeeping.max_run_seconds);
    let mut pending: Vec<Purge> = Purge::ALL.to_vec();
    let mut removed = 0u64;
    let mut deleted: Vec<(&'static str, u64)> = Vec::new();
    while !pending.is_empty() {
        if started.elapsed() >= budget {
            return Run { removed, behind: true, deleted };
        }
        let mut full = Vec::new();
        for what in pending {
            match state.store.purge_expired(what, &cut, batch).await {
                Ok(n) => {
                    removed += n;
                    match deleted.iter_mut().find(|(t, _)| *t == what.table()) {
                        Some((_, c)) => *c += n,
                        None => deleted.push((what.table(), n)),
                    }
                    metrics::counter!("housekeeping_rows_deleted_total", "table" => what.table()).increment(n);
                    // The orphan sweep is one pass per run (it is not a range scan).
                    if n >= u64::try_from(batch).unwrap_or(u64::MAX) && what != Purge::SessionClients {
                        full.push(what);
                    }
                }
                Err(e) => tracing::warn!(error = %e, table = what.table(), "housekeeping failed"),
            }
        }
        pending = full;
        // Let the requests queued behind this round's statements in first.
        tokio::task::yield_now().await;
    }
    Run { removed, behind: false, deleted }
}

/// `housekeeping_lag_seconds{table}`: how long the oldest row still due has been due.
async fn record_lag(state: &AppState) {
    let cut = cutoffs(state);
    for what in Purge::ALL {
        let (Some(before), Ok(oldest)) = (cut.due_before(what), state.store.oldest_due(what, &cut).await) else {
            continue;
        };
        let lag = oldest.map_or(0, |t| before.saturating_sub(t).max(0));
        metrics::gauge!("housekeeping_lag_seconds", "table" => what.table()).set(lag as f64);
    }
}

/// One delivery run (OIDC Back-Channel Logout §2.5): POST each due logout token as
/// `logout_token=<jwt>` to its client's `backchannel_logout_uri`, at most
/// `logout.backchannel_timeout` seconds each, all of the batch at once. 2xx is delivered (§2.8);
/// anything else is retried after `backchannel_retry_base · 2^attempts` seconds, until
/// `backchannel_max_attempts`. Runs of one server never overlap, so an item is posted once per
/// due time. Returns the number of attempts made.
pub async fn deliver_logouts(state: &AppState) -> usize {
    let lock = delivery_lock(state);
    let _running = lock.lock().await;
    // One instance delivers at a time; another takes over when it dies.
    let Some(held) = lease(state, "logout_delivery").await else { return 0 };
    let attempts = deliver_due(state).await;
    held.release().await;
    attempts
}

async fn deliver_due(state: &AppState) -> usize {
    let now = state.now();
    let due = match state.store.due_logouts(now, LOGOUT_BATCH).await {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "reading the back-channel logout outbox failed");
            return 0;
        }
    };
    // Falling behind shows: how long the oldest due token has waited, and whether the batch
    // was full (more are waiting than one run takes).
    let lag = due.iter().map(|i| now.saturating_sub(i.next_attempt_at).max(0)).max().unwrap_or(0);
    metrics::gauge!("backchannel_logout_lag_seconds").set(lag as f64);
    metrics::gauge!("backchannel_logout_behind").set(if i64::try_from(due.len()).unwrap_or(i64::MAX) >= LOGOUT_BATCH {
        1.0
    } else {
        0.0
    });
    let mut running = tokio::task::JoinSet::new();
    for item in due {
        let st = state.clone();
        running.spawn(async move { deliver_one(&st, item, now).await });
    }
    let mut attempts = 0;
    while let Some(done) = running.join_next().await {
        if let Err(e) = done {
            tracing::error!(error = %e, "a back-channel logout delivery task failed");
        }
        attempts += 1;
    }
    attempts
}

async fn deliver_one(state: &AppState, item: OutboxItem, now: UnixTime) {
    let s = &state.settings;
    let token = latchkey_web::backchannel::token_for_delivery(&state.keys, &item.logout_token, now);
    let timeout = Duration::from_secs(s.logout.backchannel_timeout);
    // The URI is client-supplied: the same SSRF guard as jwks_uri (loopback http only in
    // development mode), no redirects followed.
    let outcome =
        latchkey_web::fetch::post_form(&item.uri, &[("logout_token", &token)], s.development_mode, timeout).await;
    let attempt = item.attempts.saturating_add(1);
    let error = match outcome {
        // OIDC Back-Channel Logout §2.8: the RP answers 200 (some answer 204) when it logged out.
        Ok(status) if (200..300).contains(&status) => {
            tracing::info!(client_id = %item.client_id, attempt, "back-channel logout delivered");
            if let Err(e) = state.store.mark_logout_delivered(item.id, now).await {
                tracing::warn!(error = %e, client_id = %item.client_id, "recording a delivered logout failed");
            }
            return;
        }
        Ok(status) => format!("the relying party answered HTTP {status}"),
        Err(e) => e.to_string(),
    };
    let next = retry_at(&s.logout, item.attempts, now);
    match next {
        Some(at) => tracing::warn!(client_id = %item.client_id, attempt, retry_at = at, %error,
            "back-channel logout not delivered; will retry"),
        None => tracing::warn!(client_id = %item.client_id, attempt, %error,
            "back-channel logout not delivered; giving up (logout.backchannel_max_attempts)"),
    }
    if let Err(e) = state.store.mark_logout_failed(item.id, next, &error).await {
        tracing::warn!(error = %e, client_id = %item.client_id, "recording a failed logout delivery failed");
    }
}

/// When to try again after attempt number `attempts_before + 1` failed; None: give up.
fn retry_at(l: &Logout, attempts_before: i64, now: UnixTime) -> Option<UnixTime> {
    if attempts_before.saturating_add(1) >= l.backchannel_max_attempts {
        return None;
    }
    let doublings = u32::try_from(attempts_before.clamp(0, 40)).unwrap_or(40);
    let delay = l.backchannel_retry_base.saturating_mul(2i64.saturating_pow(doublings)).min(MAX_RETRY_DELAY);
    Some(now.saturating_add(delay))
}

type Locks = HashMap<usize, (Weak<AppStateInner>, Arc<tokio::sync::Mutex<()>>)>;

/// The lock that keeps one server's delivery runs (the timer's and any direct call) from
/// overlapping. Keyed by the state; entries of dropped states are pruned.
fn delivery_lock(state: &AppState) -> Arc<tokio::sync::Mutex<()>> {
    static LOCKS: LazyLock<Mutex<Locks>> = LazyLock::new(|| Mutex::new(HashMap::new()));
    let mut locks = match LOCKS.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    };
    locks.retain(|_, (owner, _)| owner.strong_count() > 0);
    let key = Arc::as_ptr(&state.0).addr();
    let entry = locks.entry(key).or_insert_with(|| (Arc::downgrade(&state.0), Arc::default()));
    Arc::clone(&entry.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_exponentially_and_give_up_after_max_attempts() {
        let l = Logout { backchannel_max_attempts: 4, backchannel_retry_base: 5, backchannel_timeout: 5 };
        assert_eq!(retry_at(&l, 0, 100), Some(105));
        assert_eq!(retry_at(&l, 1, 100), Some(110));
        assert_eq!(retry_at(&l, 2, 100), Some(120));
        assert_eq!(retry_at(&l, 3, 100), None);
        let many = Logout { backchannel_max_attempts: 100, backchannel_retry_base: 3600, backchannel_timeout: 5 };
        assert_eq!(retry_at(&many, 98, 0), Some(MAX_RETRY_DELAY));
    }
}
