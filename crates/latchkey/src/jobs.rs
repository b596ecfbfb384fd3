//! Background jobs: re-read the key table (picking up rotations made by the CLI or another
//! instance) and drop keys whose tokens have all expired.

use latchkey_web::AppState;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub fn spawn(state: AppState, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let every =
            Duration::from_secs(u64::try_from(state.settings.signing.key_refresh_interval).unwrap_or(30).max(1));
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await; // the first tick is immediate; keys were just loaded
        let mut clean = tokio::time::interval(Duration::from_secs(state.settings.housekeeping.interval.max(1)));
        clean.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => refresh_keys(&state).await,
                _ = clean.tick() => { housekeeping(&state).await; }
                _ = stop.changed() => break,
            }
        }
    })
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
}

/// Delete expired codes, tokens, sessions, interactions and replay records, a bounded batch per
/// table per run, so a run stays short and never holds the database for long.
pub async fn housekeeping(state: &AppState) -> u64 {
    match state.store.purge_expired(state.now(), state.settings.housekeeping.batch_size).await {
        Ok(0) => 0,
        Ok(n) => {
            tracing::info!(removed = n, "removed expired rows");
            n
        }
        Err(e) => {
            tracing::warn!(error = %e, "housekeeping failed");
            0
        }
    }
}
