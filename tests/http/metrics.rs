//! GET /metrics: Prometheus text format, on `metrics.bind` only (a loopback listener by
//! default), or on the main listener behind `metrics.bearer_token`.
//!
//! The recorder is process-wide, so other tests in this binary add to the same counters: the
//! checks compare a series before and after this test's own requests.
use crate::support::{ClientOpts, Landing, TestServer, authorize_url};
use serde_json::Value;

/// The sum of every sample of the series starting with `selector` (a name plus the leading
/// labels, e.g. `logins_total{result="failure"`); 0 when absent.
fn sample(body: &str, selector: &str) -> f64 {
    body.lines()
        .filter(|l| !l.starts_with('#') && l.starts_with(selector))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn scrape(srv: &TestServer, base: &str) -> String {
    let r = srv.http.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let ct = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("text/plain") && ct.contains("version=0.0.4"), "{ct}");
    r.text().await.unwrap()
}

#[tokio::test]
async fn metrics_count_requests_tokens_logins_and_refresh_reuse_with_their_labels() {
    let srv = TestServer::start().await;
    let c = srv
        .add_client(ClientOpts { skip_consent: true, refresh_without_offline_access: true, ..Default::default() })
        .await;
    srv.add_user("alice").await;
    let before = scrape(&srv, &srv.metrics_base()).await;

    // A failed login: the form comes back with an error.
    let b = srv.browser();
    let (url, ..) = authorize_url(&srv.base, &c, "openid", &[]);
    let form = b.navigate(&url).await;
    let again = b.login(form, "alice", "not the password").await;
    assert!(matches!(&again, Landing::Page(200, p, _) if p.starts_with("/login")), "{again:?}");
    // A successful sign-in, a code redemption, a refresh, and the same refresh token again.
    let (code, _nonce, verifier) = srv.sign_in(&srv.browser(), &c, "alice", "openid").await;
    let r = srv.redeem(&c, &code, &verifier).await;
    assert_eq!(r.status(), 200);
    let tokens: Value = r.json().await.unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let form = [("grant_type", "refresh_token"), ("refresh_token", refresh)];
    let r = srv.token(&c, &form).await;
    assert_eq!(r.status(), 200);
    // The successor is used, then the first token again: a replay.
    let next: Value = r.json().await.unwrap();
    let next = [("grant_type", "refresh_token"), ("refresh_token", next["refresh_token"].as_str().unwrap())];
    assert_eq!(srv.token(&c, &next).await.status(), 200);
    assert_eq!(srv.token(&c, &form).await.status(), 400);

    let after = scrape(&srv, &srv.metrics_base()).await;
    let grew = |selector: &str, by: f64| {
        let (b, a) = (sample(&before, selector), sample(&after, selector));
        assert!(a - b >= by, "{selector}: {b} -> {a}\n{after}");
    };
    grew(r#"logins_total{result="failure"}"#, 1.0);
    grew(r#"logins_total{result="success"}"#, 1.0);
    grew(r#"tokens_issued_total{grant="authorization_code",type="access_token"}"#, 1.0);
    grew(r#"tokens_issued_total{grant="authorization_code",type="refresh_token"}"#, 1.0);
    grew(r#"tokens_issued_total{grant="authorization_code",type="id_token"}"#, 1.0);
    grew(r#"tokens_issued_total{grant="refresh_token",type="access_token"}"#, 1.0);
    grew("refresh_reuse_detected_total", 1.0);
    // Requests by route template (not the raw path), method and status.
    grew(r#"http_requests_total{route="/token",method="POST",status="200"}"#, 2.0);
    grew(r#"http_requests_total{route="/token",method="POST",status="400"}"#, 1.0);
    grew(r#"http_requests_total{route="/login",method="POST",status="200"}"#, 1.0);
    grew(r#"http_request_duration_seconds_count{route="/token"}"#, 3.0);
    assert!(after.contains(r#"http_request_duration_seconds_bucket{route="/token",le="0.005"}"#), "{after}");
    assert!(after.contains("# TYPE http_request_duration_seconds histogram"), "{after}");
    assert!(!after.contains("/authorize?"), "raw paths with query strings must not become labels");
    // Gauges read at scrape time.
    assert!(after.contains(r#"signing_key_age_seconds{alg="RS256"}"#), "{after}");
    assert!(after.contains(r#"db_pool_connections{state="idle"}"#), "{after}");
    assert!(after.contains(r#"db_pool_connections{state="in_use"}"#), "{after}");
    assert!(sample(&after, r#"db_pool_connections{state="max"}"#) >= 1.0);
    srv.stop().await;
}

#[tokio::test]
async fn unknown_paths_share_one_route_label() {
    let srv = TestServer::start().await;
    let r = srv.http.get(srv.url("/no/such/page/12345")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let body = scrape(&srv, &srv.metrics_base()).await;
    assert!(body.contains(r#"http_requests_total{route="unmatched",method="GET",status="404"}"#), "{body}");
    assert!(!body.contains("12345"));
    srv.stop().await;
}

/// Issue 13: by default (`metrics.bind` on loopback) the public listener has no `/metrics`.
#[tokio::test]
async fn by_default_metrics_are_on_the_admin_listener_only() {
    let srv = TestServer::start().await;
    let admin = srv.server.as_ref().unwrap().metrics_addr.expect("an admin listener");
    assert_ne!(admin, srv.server.as_ref().unwrap().addr);
    let r = srv.http.get(srv.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 404, "/metrics must not be on the main port");
    // Requests to the main port are still counted, and shown on the admin port.
    assert_eq!(srv.http.get(srv.url("/healthz")).send().await.unwrap().status(), 200);
    let body = scrape(&srv, &format!("http://{admin}")).await;
    assert!(body.contains(r#"http_requests_total{route="/healthz",method="GET",status="200"}"#), "{body}");
    // Only /metrics is there.
    let r = srv.http.get(format!("http://{admin}/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    srv.stop().await;
}

#[tokio::test]
async fn disabled_metrics_have_no_endpoint() {
    let srv = TestServer::start_with(|s| s.metrics.enabled = false).await;
    let r = srv.http.get(srv.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    srv.stop().await;
}

/// Issue 13: on the main listener `/metrics` answers only with `metrics.bearer_token`.
#[tokio::test]
async fn on_the_main_listener_metrics_need_the_bearer_token() {
    let token = "metrics-token-0123456789abcdef-0123456789";
    let srv = TestServer::start_with(|s| {
        s.metrics.bind = String::new();
        s.metrics.bearer_token = token.into();
    })
    .await;
    assert!(srv.server.as_ref().unwrap().metrics_addr.is_none());
    let url = srv.url("/metrics");
    for auth in [None, Some("Bearer wrong"), Some(&format!("Bearer {token}x")[..]), Some(&format!("Basic {token}")[..])]
    {
        let mut req = srv.http.get(&url);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 401, "{auth:?}");
        assert!(r.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
        assert!(!r.text().await.unwrap().contains("http_requests_total"));
    }
    let r = srv.http.get(&url).bearer_auth(token).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    assert!(body.contains("# TYPE http_requests_total counter"), "{body}");
    // Scrapes on the main listener are counted like any request, refused ones too.
    let r = srv.http.get(&url).bearer_auth(token).send().await.unwrap();
    let body = r.text().await.unwrap();
    assert!(body.contains(r#"http_requests_total{route="/metrics",method="GET",status="401"}"#), "{body}");
    srv.stop().await;
}

/// Issue 15 item 4: in-process maps are bounded by their settings and visible in metrics. Five
/// clients authenticate through a client cache configured for two: the gauge shows at most two
/// entries (unbounded, it would show five) and the configured capacity.
#[tokio::test]
async fn in_process_maps_report_their_size_and_stay_within_their_settings() {
    let srv = TestServer::start_with(|s| s.database.client_cache_max_entries = 2).await;
    for _ in 0..5 {
        let c = srv
            .add_client(ClientOpts {
                grant_types: vec![latchkey_core::model::GrantType::ClientCredentials],
                scopes: vec!["api".into()],
                ..Default::default()
            })
            .await;
        assert_eq!(srv.token(&c, &[("grant_type", "client_credentials")]).await.status(), 200);
    }
    let body = scrape(&srv, &srv.metrics_base()).await;
    let entries = sample(&body, r#"in_process_entries{map="client_cache"}"#);
    assert!((1.0..=2.0).contains(&entries), "client_cache entries {entries}\n{body}");
    assert_eq!(sample(&body, r#"in_process_capacity{map="client_cache"}"#), 2.0, "{body}");
    assert_eq!(sample(&body, r#"in_process_capacity{map="jwks_cache"}"#), 1000.0, "{body}");
    // Every kind of the limiter at limits.max_subjects_per_kind, and some subjects counted.
    assert!(sample(&body, r#"in_process_capacity{map="rate_limiter"}"#) >= 65536.0, "{body}");
    assert!(body.contains(r#"in_process_entries{map="rate_limiter"}"#), "{body}");
    assert!(body.contains(r#"in_process_entries{map="single_use_undoing"}"#), "{body}");
    srv.stop().await;
}
