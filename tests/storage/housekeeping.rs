//! Housekeeping (issue 15, item 2): every kind of due row goes, live rows stay, each statement
//! deletes at most one batch, and every batch is an index range scan on both databases.
use latchkey_storage::{Purge, PurgeCutoffs, Store};
use std::collections::BTreeMap;
use std::sync::Arc;

use crate::support::{TestDb, exec_sql, query_i64};

const NOW: i64 = 1_800_000_000;
const DAY: i64 = 86_400;

fn cutoffs() -> PurgeCutoffs {
    PurgeCutoffs { now: NOW, audit_before: Some(NOW - 90 * DAY), outbox_before: NOW - DAY }
}

async fn count(db: &TestDb, table: &str) -> i64 {
    query_i64(db, Box::leak(format!("SELECT COUNT(*) FROM {table}").into_boxed_str())).await
}

/// Three due rows and two live ones of every kind (session participants: three of expired
/// sessions, one orphan, two of live sessions). Returns the rows that must remain per table.
async fn seed(db: &TestDb, store: &Arc<dyn Store>) -> BTreeMap<&'static str, i64> {
    store.create_client(&crate::client("c1")).await.unwrap();
    store.create_user(&crate::user("u1", "alice")).await.unwrap();
    let (old, live) = (NOW - 10, NOW + 1000);
    let mut sql = String::new();
    sql.push_str(&format!(
        "INSERT INTO grants (id, client_id, user_id, scope, created_at, expires_at) VALUES \
         ('g-live', 'c1', 'u1', 'openid', 1, {live}), ('g-live2', 'c1', 'u1', 'openid', 1, {live}), \
         ('g-old0', 'c1', 'u1', 'openid', 1, {old}), ('g-old1', 'c1', 'u1', 'openid', 1, {old}), \
         ('g-old2', 'c1', 'u1', 'openid', 1, {old});\n"
    ));
    for (i, exp) in [old - 2, old - 1, old, live, live + 1].into_iter().enumerate() {
        let used = if i == 1 || i == 4 { "5" } else { "NULL" };
        sql.push_str(&format!(
            "INSERT INTO authorization_codes (code_hash, grant_id, created_at, expires_at, used_at) VALUES ('code{i}', 'g-live', 1, {exp}, {used});\n\
             INSERT INTO refresh_tokens (token_hash, grant_id, scope, created_at, expires_at, used_at) VALUES ('rt{i}', 'g-live', 'openid', 1, {exp}, {used});\n\
             INSERT INTO access_tokens (token_hash, grant_id, client_id, scope, created_at, expires_at) VALUES ('at{i}', NULL, 'c1', 'x', 1, {exp});\n\
             INSERT INTO sessions (id_hash, sid, user_id, auth_time, amr, created_at, expires_at) VALUES ('s{i}', 'sid{i}', 'u1', 1, '[]', 1, {exp});\n\
             INSERT INTO session_clients (sid, client_id, user_id) VALUES ('sid{i}', 'c1', 'u1');\n\
             INSERT INTO interactions (id_hash, client_id, request, created_at, expires_at) VALUES ('i{i}', 'c1', '{{}}', 1, {exp});\n\
             INSERT INTO revoked_jtis (jti, expires_at) VALUES ('rj{i}', {exp});\n\
             INSERT INTO assertion_jtis (client_id, jti, expires_at) VALUES ('c1', 'aj{i}', {exp});\n\
             INSERT INTO assertion_jtis (client_id, jti, expires_at) VALUES ('c1', 'request_object:aj{i}', {exp});\n\
             INSERT INTO initial_access_tokens (token_hash, created_at, expires_at) VALUES ('iat{i}', 1, {exp});\n\
             INSERT INTO pushed_requests (uri_hash, client_id, params, expires_at) VALUES ('par{i}', 'c1', '{{}}', {exp});\n"
        ));
    }
    // A participant whose session is gone.
    sql.push_str("INSERT INTO session_clients (sid, client_id, user_id) VALUES ('sid-gone', 'c1', 'u1');\n");
    // Outbox: delivered long ago ×2, given up long ago (due); pending for days, delivered just now (live).
    let long_ago = NOW - 2 * DAY;
    for (created, delivered) in [
        (long_ago, "1"),
        (long_ago + 1, "2"),
        (long_ago, "-1"),
        (long_ago, "NULL"),
        (NOW - 100, &format!("{}", NOW - 50)),
    ] {
        sql.push_str(&format!(
            "INSERT INTO logout_outbox (client_id, uri, logout_token, attempts, next_attempt_at, created_at, delivered_at) \
             VALUES ('c1', 'https://rp.example/bc', 'jwt', 1, {created}, {created}, {delivered});\n"
        ));
    }
    for at in [NOW - 100 * DAY, NOW - 95 * DAY, NOW - 90 * DAY - 1, NOW - 90 * DAY + 1, NOW - 5] {
        sql.push_str(&format!("INSERT INTO audit_events (at, kind, detail) VALUES ({at}, 'login', '{{}}');\n"));
    }
    // Sign-in failures: a day old and unblocked (due ×3); a day old but still blocked, recent (live).
    for (i, (updated, blocked)) in
        [(NOW - DAY - 9, 0), (NOW - DAY - 8, NOW - 5), (NOW - DAY - 7, 0), (NOW - DAY - 6, NOW + 60), (NOW - 60, 0)]
            .into_iter()
            .enumerate()
    {
        sql.push_str(&format!(
            "INSERT INTO login_throttle (account, source, failures, blocked_until, updated_at) VALUES ('a{i}', 'ip', 3, {blocked}, {updated});\n"
        ));
    }
    for (i, start) in [NOW - 7200, NOW - 3700, NOW - 3601, NOW - 3000, NOW - 10].into_iter().enumerate() {
        sql.push_str(&format!("INSERT INTO rate_counters (key, window_start, count) VALUES ('k{i}', {start}, 1);\n"));
    }
    exec_sql(db, &sql).await;
    BTreeMap::from([
        ("authorization_codes", 2),
        ("refresh_tokens", 2),
        ("access_tokens", 2),
        ("sessions", 2),
        ("session_clients", 2),
        ("interactions", 2),
        ("revoked_jtis", 2),
        ("assertion_jtis", 4),
        ("grants", 2),
        ("initial_access_tokens", 2),
        ("pushed_requests", 2),
        ("logout_outbox", 2),
        ("audit_events", 2),
        ("login_throttle", 2),
        ("rate_counters", 2),
    ])
}

#[tokio::test]
async fn housekeeping_deletes_every_kind_of_due_row_in_bounded_batches_and_keeps_live_ones() {
    let db = TestDb::fresh().await;
    let store = latchkey_storage::open(&db.settings()).await.unwrap();
    let want = seed(&db, &store).await;
    assert_eq!(want.len(), Purge::ALL.len(), "every kind is seeded");
    let cut = cutoffs();
    for what in Purge::ALL {
        let before = count(&db, what.table()).await;
        let mut calls = Vec::new();
        loop {
            let n = store.purge_expired(what, &cut, 2).await.unwrap();
            assert!(n <= 2, "{}: one statement deleted {n} rows with a batch of 2", what.table());
            calls.push(n);
            if n < 2 || calls.len() > 10 {
                break;
            }
        }
        // Full batches until the last: ⌊due / 2⌋ + 1 statements.
        let due = before - want[what.table()];
        assert!(due > 0, "{}: seeded with due rows", what.table());
        assert_eq!(calls.len() as i64, due / 2 + 1, "{}: batches {calls:?} for {due} due rows", what.table());
        assert_eq!(calls.iter().sum::<u64>() as i64, due, "{}: every due row, once", what.table());
        if what != Purge::SessionClients {
            assert_eq!(store.oldest_due(what, &cut).await.unwrap(), None, "{}: nothing due is left", what.table());
        }
        let after = count(&db, what.table()).await;
        assert!(after <= before, "{}", what.table());
    }
    for (table, live) in &want {
        assert_eq!(count(&db, table).await, *live, "{table}: only the live rows remain");
    }
    // The live rows are the ones that stay.
    for (table, key, live) in [
        ("authorization_codes", "code_hash", "'code3','code4'"),
        ("refresh_tokens", "token_hash", "'rt3','rt4'"),
        ("sessions", "id_hash", "'s3','s4'"),
        ("session_clients", "sid", "'sid3','sid4'"),
        ("grants", "id", "'g-live','g-live2'"),
        ("login_throttle", "account", "'a3','a4'"),
        ("rate_counters", "key", "'k3','k4'"),
    ] {
        let n =
            query_i64(&db, Box::leak(format!("SELECT COUNT(*) FROM {table} WHERE {key} IN ({live})").into_boxed_str()))
                .await;
        assert_eq!(n, 2, "{table}: the live rows {live} remain");
    }
    assert_eq!(
        query_i64(&db, "SELECT COUNT(*) FROM logout_outbox WHERE delivered_at IS NULL").await,
        1,
        "pending stays"
    );
}

#[tokio::test]
async fn oldest_due_reports_how_far_behind_housekeeping_is_and_audit_retention_zero_keeps_everything() {
    let db = TestDb::fresh().await;
    let store = latchkey_storage::open(&db.settings()).await.unwrap();
    seed(&db, &store).await;
    let cut = cutoffs();
    assert_eq!(store.oldest_due(Purge::AccessTokens, &cut).await.unwrap(), Some(NOW - 12));
    assert_eq!(store.oldest_due(Purge::AuditEvents, &cut).await.unwrap(), Some(NOW - 100 * DAY));
    assert_eq!(store.oldest_due(Purge::LogoutOutbox, &cut).await.unwrap(), Some(NOW - 2 * DAY));
    let keep = PurgeCutoffs { audit_before: None, ..cut };
    assert_eq!(store.purge_expired(Purge::AuditEvents, &keep, 100).await.unwrap(), 0);
    assert_eq!(store.oldest_due(Purge::AuditEvents, &keep).await.unwrap(), None);
    assert_eq!(count(&db, "audit_events").await, 5);
}

/// The index each purge statement's batch must come from.
fn expected_index(what: Purge) -> Option<&'static str> {
    Some(match what {
        Purge::AuthorizationCodes => "codes_expiry",
        Purge::AccessTokens => "access_expiry",
        Purge::RefreshTokens => "refresh_expiry",
        Purge::Sessions => "sessions_expiry",
        Purge::SessionClients => return None,
        Purge::Interactions => "interactions_expiry",
        Purge::RevokedJtis => "revoked_jtis_expiry",
        Purge::AssertionJtis => "assertion_jtis_expiry",
        Purge::Grants => "grants_expiry",
        Purge::InitialAccessTokens => "initial_access_tokens_expiry",
        Purge::PushedRequests => "pushed_requests_expiry",
        Purge::LogoutOutbox => "logout_outbox_finished",
        Purge::AuditEvents => "audit_at",
        Purge::LoginThrottle => "login_throttle_updated",
        Purge::RateCounters => "rate_counters_window",
    })
}

/// SQLite: `EXPLAIN QUERY PLAN` names the expiry index for the batch (a SEARCH, not a SCAN of
/// the table). PostgreSQL: with sequential scans priced out (`enable_seqscan = off`, as a
/// large table would), the plan reads the batch from the expiry index.
#[tokio::test]
async fn every_purge_batch_is_an_index_range_scan() {
    let db = TestDb::fresh().await;
    let s = db.settings();
    let _store = latchkey_storage::open(&s).await.unwrap();
    for what in Purge::ALL {
        let Some(index) = expected_index(what) else { continue };
        for sql in latchkey_storage::purge_statements(what) {
            let plan = if db.is_postgres() {
                use sqlx::Connection;
                let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
                sqlx::query("SET enable_seqscan = off").execute(&mut c).await.unwrap();
                let rows: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!("EXPLAIN {sql}")))
                    .bind(NOW)
                    .bind(100i64)
                    .fetch_all(&mut c)
                    .await
                    .unwrap();
                rows.into_iter().map(|(l,)| l).collect::<Vec<_>>().join("\n")
            } else {
                let st = latchkey_storage::sqlite::SqliteStore::connect(&s).await.unwrap();
                let rows: Vec<(i64, i64, i64, String)> =
                    sqlx::query_as(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
                        .bind(NOW)
                        .bind(100i64)
                        .fetch_all(st.pool())
                        .await
                        .unwrap();
                st.pool().close().await;
                rows.into_iter().map(|r| r.3).collect::<Vec<_>>().join("\n")
            };
            assert!(plan.contains(index), "{}: `{sql}` does not use {index}:\n{plan}", what.table());
            if !db.is_postgres() {
                let table = what.table();
                assert!(
                    !plan.lines().any(|l| l.trim() == format!("SCAN {table}")),
                    "{table}: a full scan in `{sql}`:\n{plan}"
                );
            }
        }
    }
}
