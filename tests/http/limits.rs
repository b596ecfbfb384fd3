//! Abuse limits and request caps (issue "Hardening"): 429 + Retry-After on back-channel
//! endpoints, a friendly 429 page on the login UI, per-account-and-source sign-in backoff,
//! counters shared by instances on one database, and header/body/URI caps and timeouts.
use crate::support::{ClientOpts, Landing, PASSWORD, TestServer, authorize_url, hidden};
use latchkey_core::model::GrantType;
use serde_json::{Value, json};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn cc(srv: &TestServer, c: &crate::support::RegisteredClient) -> reqwest::Response {
    srv.token(c, &[("grant_type", "client_credentials")]).await
}

async fn cc_client(srv: &TestServer) -> crate::support::RegisteredClient {
    srv.add_client(ClientOpts { grant_types: vec![GrantType::ClientCredentials], ..Default::default() }).await
}

/// A 429 with `temporarily_unavailable` and a Retry-After within the window.
async fn assert_limited(r: reqwest::Response, window: i64) -> i64 {
    assert_eq!(r.status(), 429);
    let wait: i64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=window).contains(&wait), "Retry-After {wait}");
    assert_eq!(r.headers()["cache-control"], "no-store");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
    wait
}

#[tokio::test]
async fn token_requests_over_the_per_client_limit_get_429_until_the_window_ends() {
    let srv = TestServer::start_with(|s| s.limits.requests_per_client = 3).await;
    let (a, b) = (cc_client(&srv).await, cc_client(&srv).await);
    for _ in 0..3 {
        assert_eq!(cc(&srv, &a).await.status(), 200);
    }
    let wait = assert_limited(cc(&srv, &a).await, 60).await;
    // Another client is counted on its own.
    assert_eq!(cc(&srv, &b).await.status(), 200);
    // Introspection and revocation count against the same client budget.
    let r = srv.http.post(srv.url("/revoke")).basic_auth(&a.id, a.secret.as_ref()).form(&[("token", "x")]);
    assert_eq!(r.send().await.unwrap().status(), 429);
    srv.clock.advance(wait);
    assert_eq!(cc(&srv, &a).await.status(), 200, "a new window admits the client again");
}

#[tokio::test]
async fn requests_per_ip_count_every_back_channel_endpoint_together() {
    let srv = TestServer::start_with(|s| s.limits.requests_per_ip = 4).await;
    let (a, b) = (cc_client(&srv).await, cc_client(&srv).await);
    assert_eq!(cc(&srv, &a).await.status(), 200);
    assert_eq!(cc(&srv, &b).await.status(), 200);
    let r = srv.http.post(srv.url("/revoke")).basic_auth(&a.id, a.secret.as_ref()).form(&[("token", "x")]);
    assert_eq!(r.send().await.unwrap().status(), 200);
    let r = srv.http.post(srv.url("/introspect")).basic_auth(&b.id, b.secret.as_ref()).form(&[("token", "x")]);
    assert_ne!(r.send().await.unwrap().status(), 429);
    assert_limited(cc(&srv, &b).await, 60).await;
}

#[tokio::test]
async fn failed_client_authentications_from_an_ip_lock_that_ip_out_for_the_window() {
    let srv = TestServer::start_with(|s| s.limits.client_auth_failures_per_ip = 3).await;
    let a = cc_client(&srv).await;
    let wrong = crate::support::RegisteredClient {
        id: a.id.clone(),
        secret: Some("not-the-secret".into()),
        redirect_uri: a.redirect_uri.clone(),
    };
    // Successes do not count.
    for _ in 0..5 {
        assert_eq!(cc(&srv, &a).await.status(), 200);
    }
    for _ in 0..3 {
        assert_eq!(cc(&srv, &wrong).await.status(), 401);
    }
    // Now even the right secret is refused from this IP: guessing stops here.
    let wait = assert_limited(cc(&srv, &a).await, 60).await;
    // Another client behind the same address is not shut out by its neighbour's failures.
    let b = cc_client(&srv).await;
    assert_eq!(cc(&srv, &b).await.status(), 200);
    let r = srv.http.post(srv.url("/introspect")).basic_auth(&a.id, a.secret.as_ref()).form(&[("token", "x")]);
    assert_eq!(r.send().await.unwrap().status(), 429);
    srv.clock.advance(wait);
    assert_eq!(cc(&srv, &a).await.status(), 200);
}

#[tokio::test]
async fn registration_requests_per_ip_are_limited() {
    let srv = TestServer::start_with(|s| {
        s.registration.policy = "open".into();
        s.limits.registrations_per_ip = 2;
    })
    .await;
    let body = json!({"redirect_uris": ["https://rp.example/cb"]});
    for _ in 0..2 {
        let r = srv.http.post(srv.url("/register")).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 201);
    }
    let r = srv.http.post(srv.url("/register")).json(&body).send().await.unwrap();
    assert_limited(r, 60).await;
}

/// Issue 13: the check and the count are one step, so a burst of parallel registrations from
/// one IP gets exactly the limit's worth of clients, not one each.
#[tokio::test]
async fn parallel_registrations_from_one_ip_past_the_limit_get_429_and_register_nothing_more() {
    let srv = TestServer::start_with(|s| {
        s.registration.policy = "open".into();
        s.limits.registrations_per_ip = 1;
    })
    .await;
    let body = json!({"redirect_uris": ["https://rp.example/cb"]});
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..12 {
        let req = srv.http.post(srv.url("/register")).json(&body);
        set.spawn(async move { req.send().await.unwrap().status().as_u16() });
    }
    let statuses = set.join_all().await;
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 11, "{statuses:?}");
    assert_eq!(srv.state().store.list_clients().await.unwrap().len(), 1);
}

/// Issue 13: failed registration attempts (bad metadata, a wrong initial access token) use up
/// the IP's budget too, so the limit also bounds probing.
#[tokio::test]
async fn failed_registration_attempts_count_against_the_per_ip_limit() {
    let srv = TestServer::start_with(|s| {
        s.registration.policy = "initial_access_token".into();
        s.limits.registrations_per_ip = 2;
    })
    .await;
    let now = latchkey_core::Clock::now(&srv.clock);
    let token = latchkey_core::SecretToken::generate();
    srv.state().store.create_initial_access_token(&token.hash(), now, now + 600).await.unwrap();
    let good = json!({"redirect_uris": ["https://rp.example/cb"]});
    let r = srv.http.post(srv.url("/register")).bearer_auth("not-a-token").json(&good).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let bad = json!({"redirect_uris": ["javascript:alert(1)"]});
    let r = srv.http.post(srv.url("/register")).bearer_auth(token.expose()).json(&bad).send().await.unwrap();
    assert_eq!(r.status(), 400);
    // The budget is spent: the good token and good metadata wait for the next window.
    let r = srv.http.post(srv.url("/register")).bearer_auth(token.expose()).json(&good).send().await.unwrap();
    let wait = assert_limited(r, 60).await;
    assert!(srv.state().store.list_clients().await.unwrap().is_empty());
    srv.clock.advance(wait);
    let r = srv.http.post(srv.url("/register")).bearer_auth(token.expose()).json(&good).send().await.unwrap();
    assert_eq!(r.status(), 201, "the token was not used up by the refused attempt");
}

/// Start a sign-in and submit the login form once; returns (status, Retry-After, body).
async fn attempt(
    srv: &TestServer,
    c: &crate::support::RegisteredClient,
    user: &str,
    password: &str,
    forwarded_for: Option<&str>,
) -> (u16, Option<i64>, String) {
    let b = srv.browser();
    let (url, ..) = authorize_url(&srv.base, c, "openid", &[]);
    let Landing::Page(200, _, page) = b.navigate(&url).await else { panic!("no login page") };
    let form = [
        ("interaction", hidden(&page, "interaction").unwrap()),
        ("csrf", hidden(&page, "csrf").unwrap()),
        ("username", user.to_owned()),
        ("password", password.to_owned()),
    ];
    let mut req = b.http.post(srv.url("/login")).form(&form);
    if let Some(ip) = forwarded_for {
        req = req.header("x-forwarded-for", ip);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let wait = r.headers().get("retry-after").map(|v| v.to_str().unwrap().parse().unwrap());
    (status, wait, r.text().await.unwrap())
}

/// `n` sign-in forms for `user`/`password`, each in its own browser, submitted at once;
/// returns the statuses.
async fn burst(
    srv: &TestServer,
    c: &crate::support::RegisteredClient,
    user: &str,
    password: &str,
    n: usize,
) -> Vec<u16> {
    let mut ready = Vec::new();
    for _ in 0..n {
        let b = srv.browser();
        let (url, ..) = authorize_url(&srv.base, c, "openid", &[]);
        let Landing::Page(200, _, page) = b.navigate(&url).await else { panic!("no login page") };
        let form = vec![
            ("interaction", hidden(&page, "interaction").unwrap()),
            ("csrf", hidden(&page, "csrf").unwrap()),
            ("username", user.to_owned()),
            ("password", password.to_owned()),
        ];
        ready.push((b, form));
    }
    let mut set = tokio::task::JoinSet::new();
    for (b, form) in ready {
        let url = srv.url("/login");
        set.spawn(async move { b.http.post(url).form(&form).send().await.unwrap().status().as_u16() });
    }
    set.join_all().await
}

#[tokio::test]
async fn repeated_wrong_passwords_make_that_account_wait_from_that_source_only() {
    let srv = TestServer::start_with(|s| {
        s.limits.login_free_failures = 2;
        s.limits.login_backoff_base = 30;
        // The test's requests come from 127.0.0.1, which may speak for other addresses.
        s.trusted_proxies = vec!["127.0.0.1".into()];
    })
    .await;
    srv.add_user("alice").await;
    srv.add_user("bob").await;
    let c = srv.add_client(ClientOpts { skip_consent: true, ..Default::default() }).await;
    let attacker = Some("203.0.113.66");
    for _ in 0..3 {
        let (status, wait, body) = attempt(&srv, &c, "alice", "guess", attacker).await;
        assert_eq!((status, wait), (200, None));
        assert!(body.contains("The username or password is incorrect."));
    }
    // The third failure imposed 30 s: even the right password is not checked now.
    let (status, wait, body) = attempt(&srv, &c, "alice", PASSWORD, attacker).await;
    assert_eq!(status, 429);
    assert_eq!(wait, Some(30));
    assert!(body.contains("Too many sign-in attempts. Please wait 30 seconds and try again."), "{body}");
    // Case does not dodge the backoff.
    assert_eq!(attempt(&srv, &c, "ALICE", PASSWORD, attacker).await.0, 429);
    // Another account from the same source, and the same account from elsewhere, are not held.
    assert_eq!(attempt(&srv, &c, "bob", PASSWORD, attacker).await.0, 303);
    assert_eq!(attempt(&srv, &c, "alice", PASSWORD, Some("198.51.100.7")).await.0, 303);
    // The wait grows: after it, one more failure doubles it.
    srv.clock.advance(30);
    assert_eq!(attempt(&srv, &c, "alice", "guess", attacker).await.0, 200);
    let (status, wait, _) = attempt(&srv, &c, "alice", PASSWORD, attacker).await;
    assert_eq!((status, wait), (429, Some(60)));
    // Never permanent: after the wait the right password works and clears the failures.
    srv.clock.advance(60);
    assert_eq!(attempt(&srv, &c, "alice", PASSWORD, attacker).await.0, 303);
    for _ in 0..2 {
        assert_eq!(attempt(&srv, &c, "alice", "guess", attacker).await.0, 200);
    }
    assert_eq!(attempt(&srv, &c, "alice", PASSWORD, attacker).await.0, 303, "the count started again");

    let audit = srv.state().store.list_audit(0, 1000).await.unwrap();
    let failed: Vec<_> = audit.iter().filter(|e| e.kind == "login.failed").collect();
    assert!(failed.iter().any(|e| e.ip.as_deref() == Some("203.0.113.66")));
    assert!(audit.iter().all(|e| !e.detail.contains(PASSWORD)));
}

#[tokio::test]
async fn parallel_guesses_past_the_free_failures_get_one_attempt_per_wait() {
    let srv = TestServer::start_with(|s| {
        s.limits.login_free_failures = 2;
        s.limits.login_backoff_base = 30;
    })
    .await;
    srv.add_user("dave").await;
    let c = srv.add_client(ClientOpts { skip_consent: true, ..Default::default() }).await;
    for _ in 0..2 {
        assert_eq!(attempt(&srv, &c, "dave", "guess", None).await.0, 200);
    }
    // A burst of guesses at once: the check and the count are one step, so exactly one is
    // checked and the rest wait.
    let statuses = burst(&srv, &c, "dave", "guess", 8).await;
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 7, "{statuses:?}");
}

#[tokio::test]
async fn parallel_correct_sign_ins_of_one_account_from_one_source_all_succeed() {
    // A shared account behind one address (or a load test) is not a guessing burst.
    let srv = TestServer::start().await;
    srv.add_user("erin").await;
    let c = srv.add_client(ClientOpts { skip_consent: true, ..Default::default() }).await;
    assert_eq!(burst(&srv, &c, "erin", PASSWORD, 12).await, vec![303; 12]);
}

#[tokio::test]
async fn many_failed_sign_ins_from_one_ip_stop_that_ip_whatever_the_accounts() {
    let srv = TestServer::start_with(|s| s.limits.login_failures_per_ip = 3).await;
    srv.add_user("carol").await;
    let c = srv.add_client(ClientOpts { skip_consent: true, ..Default::default() }).await;
    for user in ["u1", "u2", "u3"] {
        assert_eq!(attempt(&srv, &c, user, "guess", None).await.0, 200);
    }
    let (status, wait, _) = attempt(&srv, &c, "carol", PASSWORD, None).await;
    assert_eq!(status, 429);
    let wait = wait.unwrap();
    assert!((1..=60).contains(&wait));
    srv.clock.advance(wait);
    assert_eq!(attempt(&srv, &c, "carol", PASSWORD, None).await.0, 303);
}

#[tokio::test]
async fn instances_on_one_database_share_their_counts() {
    let a = TestServer::start_with(|s| s.limits.requests_per_client = 4).await;
    let issuer = a.base.clone();
    let b = TestServer::start_on(a.db.clone(), a.master.clone(), a.clock.clone(), move |s| {
        s.limits.requests_per_client = 4;
        s.issuer = issuer.clone();
    })
    .await;
    let c = cc_client(&a).await;
    assert_eq!(cc(&a, &c).await.status(), 200);
    assert_eq!(cc(&a, &c).await.status(), 200);
    assert_eq!(cc(&b, &c).await.status(), 200);
    // What the sync job does every limits.sync_interval_ms on PostgreSQL.
    latchkey::jobs::share_limits(a.state()).await;
    latchkey::jobs::share_limits(b.state()).await;
    latchkey::jobs::share_limits(a.state()).await;
    // The cluster has served 3 of 4: one more anywhere, then both refuse.
    assert_eq!(cc(&b, &c).await.status(), 200);
    latchkey::jobs::share_limits(b.state()).await;
    latchkey::jobs::share_limits(a.state()).await;
    assert_eq!(cc(&a, &c).await.status(), 429);
    assert_eq!(cc(&b, &c).await.status(), 429);
}

/// Send raw bytes and read the status line's code.
async fn raw_status(srv: &TestServer, request: &[u8]) -> u16 {
    let addr = srv.base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut buf = vec![0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await.unwrap().unwrap();
    let line = String::from_utf8_lossy(&buf[..n]).to_string();
    line.split(' ').nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn oversized_headers_bodies_and_uris_are_refused_before_any_handler() {
    let srv = TestServer::start().await;
    let big = "a".repeat(20 * 1024);
    let r = srv.http.get(srv.url("/.well-known/openid-configuration")).header("x-padding", &big).send().await.unwrap();
    assert_eq!(r.status(), 431);
    let r = srv.http.get(srv.url(&format!("/authorize?x={big}"))).send().await.unwrap();
    assert_eq!(r.status(), 414);
    let r = srv
        .http
        .post(srv.url("/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(vec![b'a'; 2 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");
    // Under the server cap but over the form cap: the endpoint's own spec error.
    let r = srv
        .http
        .post(srv.url("/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("grant_type=client_credentials&x={}", "a".repeat(20 * 1024)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");
    // The server still answers normally.
    assert_eq!(srv.http.get(srv.url("/healthz")).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn a_request_whose_body_never_arrives_times_out_with_408() {
    let srv = TestServer::start_with(|s| s.http.request_timeout = 1).await;
    let head = "POST /token HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-www-form-urlencoded\r\n\
                content-length: 100\r\n\r\ngrant_type=";
    assert_eq!(raw_status(&srv, head.as_bytes()).await, 408);
}

#[tokio::test]
async fn a_client_removed_elsewhere_stops_authenticating_within_client_cache_ms() {
    let srv = TestServer::start_with(|s| s.database.client_cache_ms = 300).await;
    let c = cc_client(&srv).await;
    assert_eq!(cc(&srv, &c).await.status(), 200);
    // As `latchkey client remove` (another process) does: the server's copy is not told.
    assert!(srv.state().store.delete_client(&c.id).await.unwrap());
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(cc(&srv, &c).await.status(), 401);
}

/// `POST /token` with client_secret_post credentials for `id`.
async fn post_auth(srv: &TestServer, id: &str) -> u16 {
    let form = [("grant_type", "client_credentials"), ("client_id", id), ("client_secret", "wrong")];
    srv.http.post(srv.url("/token")).form(&form).send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn failed_client_authentications_with_fresh_client_ids_still_stop_the_ip_issue_13() {
    let srv = TestServer::start_with(|s| {
        s.limits.client_auth_failures_per_ip = 100;
        s.limits.client_auth_failures_per_ip_total = 4;
    })
    .await;
    let a = cc_client(&srv).await;
    for i in 0..4 {
        assert_eq!(post_auth(&srv, &format!("made-up-{i}")).await, 401);
    }
    // A new id is no new allowance: the IP is refused, whatever it presents.
    assert_eq!(post_auth(&srv, "made-up-again").await, 429);
    let wait = assert_limited(cc(&srv, &a).await, 60).await;
    srv.clock.advance(wait);
    assert_eq!(cc(&srv, &a).await.status(), 200);
}

#[tokio::test]
async fn unknown_client_ids_from_one_ip_share_one_count_issue_13() {
    let srv = TestServer::start_with(|s| s.limits.client_auth_failures_per_ip = 3).await;
    let a = cc_client(&srv).await;
    for i in 0..3 {
        assert_eq!(post_auth(&srv, &format!("made-up-{i}")).await, 401);
    }
    assert_eq!(post_auth(&srv, "made-up-3").await, 429);
    // A registered client behind the same address is not shut out by them.
    assert_eq!(cc(&srv, &a).await.status(), 200);
    let sizes = srv.state().limiter.sizes();
    let (_, tracked) = sizes.iter().find(|(k, _)| *k == latchkey_web::limits::Kind::ClientAuthFailures).unwrap();
    assert_eq!(*tracked, 1, "one entry for all unknown ids");
}

/// This process's resident memory, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

const MEMORY_CHILD: &str = "LATCHKEY_TEST_LIMITER_MEMORY_CHILD";

/// Thousands of failed client authentications, each with a fresh ~8 KB client id (the form cap
/// is 8 KiB), leave the limiter's memory where it was. Measured in a process of its own (the
/// test re-runs itself alone), so other tests' allocations do not blur the figure.
#[tokio::test]
async fn failed_authentications_with_distinct_8kb_client_ids_keep_the_limiter_bounded_issue_13() {
    if std::env::var_os(MEMORY_CHILD).is_none() {
        let name = "limits::failed_authentications_with_distinct_8kb_client_ids_keep_the_limiter_bounded_issue_13";
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([name, "--exact", "--test-threads=1", "--nocapture"])
            .env(MEMORY_CHILD, "1")
            .output()
            .unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{text}");
        assert!(text.contains("1 passed"), "the child ran the test: {text}");
        return;
    }
    let srv = TestServer::start_with(|s| {
        // Every failure is counted, none refused: the limiter sees them all.
        s.limits.client_auth_failures_per_ip = 1_000_000;
        s.limits.client_auth_failures_per_ip_total = 1_000_000;
    })
    .await;
    let a = cc_client(&srv).await;
    let id = |i: usize| format!("{i:08}{}", "x".repeat(7_900));
    // Warm up: connections, buffers and the allocator's pools settle.
    for i in 0..300 {
        assert_eq!(post_auth(&srv, &id(i)).await, 401);
    }
    let before = rss_kib();
    const N: usize = 4000;
    for i in 300..300 + N {
        assert_eq!(post_auth(&srv, &id(i)).await, 401);
    }
    let grown = rss_kib().saturating_sub(before);
    eprintln!("resident memory grew by {grown} KiB over {N} failures");
    // Keeping each id (as a limiter key did) is 8 KB a failure: over 30 MiB here.
    assert!(grown < 10 * 1024, "resident memory grew by {grown} KiB over {N} failures");
    let sizes = srv.state().limiter.sizes();
    assert!(sizes.iter().all(|(_, n)| *n <= 4), "{sizes:?}");
    assert_eq!(cc(&srv, &a).await.status(), 200);
}

#[tokio::test]
async fn an_ipv6_48_rotating_through_its_64s_is_slowed_on_one_account_issue_13() {
    let srv = TestServer::start_with(|s| {
        s.limits.login_free_failures = 2;
        s.limits.login_backoff_base = 30;
        s.limits.login_account_free_failures = 1000;
        s.trusted_proxies = vec!["127.0.0.1".into()];
    })
    .await;
    srv.add_user("frank").await;
    let c = srv.add_client(ClientOpts { skip_consent: true, ..Default::default() }).await;
    // One failure from each of 8 /64s of one /56: the /56's 4 × 2 free failures.
    for i in 0..8 {
        let ip = format!("2001:db8:7:{i:x}::1");
        assert_eq!(attempt(&srv, &c, "frank", "guess", Some(&ip)).await.0, 200);
    }
    // The next takes the /56's first wait; after it a fresh /64 of that /56 must wait too.
    assert_eq!(attempt(&srv, &c, "frank", "guess", Some("2001:db8:7:10::1")).await.0, 200);
    let (status, wait, _) = attempt(&srv, &c, "frank", PASSWORD, Some("2001:db8:7:11::1")).await;
    assert_eq!((status, wait), (429, Some(30)));
    // Another /56 of the /48, or another /48, is not held by it.
    assert_eq!(attempt(&srv, &c, "frank", PASSWORD, Some("2001:db8:7:100::1")).await.0, 303);
    assert_eq!(attempt(&srv, &c, "frank", PASSWORD, Some("2001:db8:8::1")).await.0, 303);
}

#[tokio::test]
async fn an_account_guessed_from_many_addresses_gets_one_attempt_per_interval_from_anywhere_issue_13() {
    let srv = TestServer::start_with(|s| {
        s.limits.login_account_free_failures = 3;
        s.limits.login_account_interval = 5;
        s.trusted_proxies = vec!["127.0.0.1".into()];
    })
    .await;
    srv.add_user("grace").await;
    srv.add_user("heidi").await;
    let c = srv.add_client(ClientOpts { skip_consent: true, ..Default::default() }).await;
    for i in 1..=3 {
        let ip = format!("198.51.100.{i}");
        assert_eq!(attempt(&srv, &c, "grace", "guess", Some(&ip)).await.0, 200);
    }
    // Past the account's free failures every attempt takes a turn, from whichever address.
    assert_eq!(attempt(&srv, &c, "grace", "guess", Some("198.51.100.4")).await.0, 200);
    // The rightful user, from an address that never failed, waits seconds, not minutes.
    let (status, wait, _) = attempt(&srv, &c, "grace", PASSWORD, Some("203.0.113.5")).await;
    assert_eq!((status, wait), (429, Some(5)));
    // Other accounts are not slowed.
    assert_eq!(attempt(&srv, &c, "heidi", PASSWORD, Some("198.51.100.4")).await.0, 303);
    srv.clock.advance(5);
    assert_eq!(attempt(&srv, &c, "grace", PASSWORD, Some("203.0.113.5")).await.0, 303);
}
