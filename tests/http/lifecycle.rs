//! Token lifecycle: refresh rotation and reuse detection, client credentials, JWT access tokens,
//! revocation (RFC 7009), introspection (RFC 7662), housekeeping.
use crate::support::{ClientOpts, Landing, PASSWORD, RegisteredClient, TestServer, authorize_url, query_param};
use latchkey_core::Clock;
use latchkey_core::model::{AccessTokenFormat, ClientAuthMethod, GrantType};
use serde_json::Value;

/// Sign in with `offline_access` + prompt=consent and redeem: (token response, client).
async fn offline_tokens(srv: &TestServer, opts: ClientOpts) -> (Value, RegisteredClient) {
    let c = srv.add_client(opts).await;
    if srv.state().store.get_user_by_username("alice").await.unwrap().is_none() {
        srv.add_user("alice").await;
    }
    let b = srv.browser();
    let (url, _, _, verifier) = authorize_url(&srv.base, &c, "openid email offline_access", &[("prompt", "consent")]);
    let mut l = b.navigate(&url).await;
    if matches!(&l, Landing::Page(_, p, _) if p.starts_with("/login")) {
        l = b.login(l, "alice", PASSWORD).await;
    }
    if matches!(&l, Landing::Page(_, p, _) if p.starts_with("/consent")) {
        let Landing::Page(_, _, body) = &l else { unreachable!() };
        assert!(body.contains("when you are not using the app"), "offline_access in plain words");
        l = b.consent(l, "approve").await;
    }
    let Landing::Client(loc) = l else { panic!("{l:?}") };
    let code = query_param(&loc, "code").unwrap();
    let r = srv.redeem(&c, &code, &verifier).await;
    assert_eq!(r.status(), 200);
    (r.json().await.unwrap(), c)
}

async fn refresh(srv: &TestServer, c: &RegisteredClient, rt: &str, extra: &[(&str, &str)]) -> reqwest::Response {
    let mut form = vec![("grant_type", "refresh_token"), ("refresh_token", rt)];
    form.extend_from_slice(extra);
    srv.token(c, &form).await
}

async fn introspect(srv: &TestServer, as_client: &RegisteredClient, token: &str) -> Value {
    let r = srv
        .http
        .post(srv.url("/introspect"))
        .basic_auth(&as_client.id, as_client.secret.as_deref())
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    r.json().await.unwrap()
}

async fn err(r: reqwest::Response) -> String {
    let v: Value = r.json().await.unwrap();
    v["error"].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn refresh_tokens_only_with_offline_access_or_client_policy() {
    let srv = TestServer::start().await;
    let (t, _) = offline_tokens(&srv, ClientOpts::default()).await;
    assert!(t["refresh_token"].is_string());
    assert!(t["scope"].as_str().unwrap().contains("offline_access"));
    // Without offline_access: none.
    let c = srv.add_client(ClientOpts::default()).await;
    let b = srv.browser();
    let (code, _, v) = srv.sign_in(&b, &c, "alice", "openid").await;
    let t: Value = srv.redeem(&c, &code, &v).await.json().await.unwrap();
    assert!(t.get("refresh_token").is_none());
    // offline_access without prompt=consent is dropped (OIDC Core §11).
    let (code, _, v) = srv.sign_in(&b, &c, "alice", "openid offline_access").await;
    let t: Value = srv.redeem(&c, &code, &v).await.json().await.unwrap();
    assert!(t.get("refresh_token").is_none());
    assert!(!t["scope"].as_str().unwrap().contains("offline_access"));
    // A first-party policy issues them anyway; a client without the grant never gets one.
    let fp = srv
        .add_client(ClientOpts { refresh_without_offline_access: true, skip_consent: true, ..Default::default() })
        .await;
    let (code, _, v) = srv.sign_in(&b, &fp, "alice", "openid").await;
    let t: Value = srv.redeem(&fp, &code, &v).await.json().await.unwrap();
    assert!(t["refresh_token"].is_string());
    let no_grant = srv
        .add_client(ClientOpts {
            refresh_without_offline_access: true,
            skip_consent: true,
            grant_types: vec![GrantType::AuthorizationCode],
            ..Default::default()
        })
        .await;
    let (code, _, v) = srv.sign_in(&b, &no_grant, "alice", "openid").await;
    let t: Value = srv.redeem(&no_grant, &code, &v).await.json().await.unwrap();
    assert!(t.get("refresh_token").is_none());
    let r = refresh(&srv, &no_grant, "whatever", &[]).await;
    assert_eq!(err(r).await, "unauthorized_client");
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_whole_family() {
    let srv = TestServer::start().await;
    let (t, c) = offline_tokens(&srv, ClientOpts::default()).await;
    let first_at = t["access_token"].as_str().unwrap().to_string();
    let rt1 = t["refresh_token"].as_str().unwrap().to_string();
    let r = refresh(&srv, &c, &rt1, &[]).await;
    assert_eq!(r.status(), 200);
    let t2: Value = r.json().await.unwrap();
    let rt2 = t2["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(rt1, rt2, "rotated");
    assert_eq!(introspect(&srv, &c, &first_at).await["active"], true);
    // Reuse of the rotated token: invalid_grant, and everything descended from the grant dies.
    let r = refresh(&srv, &c, &rt1, &[]).await;
    assert_eq!(err(r).await, "invalid_grant");
    assert_eq!(introspect(&srv, &c, &first_at).await, serde_json::json!({"active": false}));
    assert_eq!(introspect(&srv, &c, t2["access_token"].as_str().unwrap()).await["active"], false);
    let r = refresh(&srv, &c, &rt2, &[]).await;
    assert_eq!(err(r).await, "invalid_grant");
}

/// With `lifetimes.refresh_retry_grace`, a confidential client presenting the token it has
/// just rotated (its successor still unused) is refused without losing its grant: the retry of
/// a lost response. Once the successor was used, the old token again is a replay.
#[tokio::test]
async fn with_the_retry_grace_a_confidential_clients_immediate_retry_keeps_the_family() {
    let srv = TestServer::start_with(|s| s.lifetimes.refresh_retry_grace = 10).await;
    let (t, c) = offline_tokens(&srv, ClientOpts::default()).await;
    let first_at = t["access_token"].as_str().unwrap().to_string();
    let rt1 = t["refresh_token"].as_str().unwrap().to_string();
    let t2: Value = refresh(&srv, &c, &rt1, &[]).await.json().await.unwrap();
    let r = refresh(&srv, &c, &rt1, &[]).await;
    assert_eq!(err(r).await, "invalid_grant");
    assert_eq!(introspect(&srv, &c, &first_at).await["active"], true, "a retry does not revoke");
    let r = refresh(&srv, &c, t2["refresh_token"].as_str().unwrap(), &[]).await;
    assert_eq!(r.status(), 200);
    let t3: Value = r.json().await.unwrap();
    let r = refresh(&srv, &c, &rt1, &[]).await;
    assert_eq!(err(r).await, "invalid_grant");
    assert_eq!(introspect(&srv, &c, &first_at).await, serde_json::json!({"active": false}));
    let r = refresh(&srv, &c, t3["refresh_token"].as_str().unwrap(), &[]).await;
    assert_eq!(err(r).await, "invalid_grant", "the replay revoked the family");
}

#[tokio::test]
async fn two_concurrent_refreshes_exactly_one_succeeds() {
    let srv = TestServer::start().await;
    let (t, c) = offline_tokens(&srv, ClientOpts::default()).await;
    let rt = t["refresh_token"].as_str().unwrap().to_string();
    let (a, b) = tokio::join!(refresh(&srv, &c, &rt, &[]), refresh(&srv, &c, &rt, &[]));
    let ok = [a.status(), b.status()].iter().filter(|s| s.as_u16() == 200).count();
    assert_eq!(ok, 1);
}

#[tokio::test]
async fn refresh_idle_and_absolute_lifetimes() {
    let srv = TestServer::start_with(|s| {
        s.lifetimes.refresh_token_idle = 100;
        s.lifetimes.refresh_token_absolute = 250;
    })
    .await;
    let (t, c) = offline_tokens(&srv, ClientOpts::default()).await;
    let mut rt = t["refresh_token"].as_str().unwrap().to_string();
    // Used within the idle window: fine, twice.
    for _ in 0..2 {
        srv.clock.advance(90);
        let t: Value = refresh(&srv, &c, &rt, &[]).await.json().await.unwrap();
        rt = t["refresh_token"].as_str().expect("rotation within the idle window").to_string();
    }
    // 180 s in; the absolute end is at 250 even though the idle window would reach 280.
    srv.clock.advance(71);
    assert_eq!(err(refresh(&srv, &c, &rt, &[]).await).await, "invalid_grant", "past the absolute lifetime");
    // Idle expiry on a fresh family.
    let (t, c) = offline_tokens(&srv, ClientOpts::default()).await;
    srv.clock.advance(101);
    assert_eq!(err(refresh(&srv, &c, t["refresh_token"].as_str().unwrap(), &[]).await).await, "invalid_grant");
}

#[tokio::test]
async fn refresh_scope_may_narrow_never_widen_and_id_token_keeps_sub_and_auth_time() {
    let srv = TestServer::start().await;
    let (t, c) = offline_tokens(&srv, ClientOpts::default()).await;
    let first = srv.state().keys.verify(t["id_token"].as_str().unwrap()).unwrap();
    assert!(first.get("nonce").is_some());
    let rt = t["refresh_token"].as_str().unwrap().to_string();
    let r = refresh(&srv, &c, &rt, &[("scope", "openid email offline_access profile")]).await;
    assert_eq!(err(r).await, "invalid_scope");
    // That attempt used the token up (refused inside the rotation); start again.
    let (t, c) = offline_tokens(&srv, ClientOpts::default()).await;
    srv.clock.advance(30);
    let r = refresh(&srv, &c, t["refresh_token"].as_str().unwrap(), &[("scope", "openid")]).await;
    assert_eq!(r.status(), 200);
    let t2: Value = r.json().await.unwrap();
    assert_eq!(t2["scope"], "openid");
    let ui = srv.http.get(srv.url("/userinfo")).bearer_auth(t2["access_token"].as_str().unwrap()).send().await.unwrap();
    let ui: Value = ui.json().await.unwrap();
    assert!(ui.get("email").is_none(), "the narrowed access token has no email scope");
    let second = srv.state().keys.verify(t2["id_token"].as_str().unwrap()).unwrap();
    let orig = srv.state().keys.verify(t["id_token"].as_str().unwrap()).unwrap();
    assert_eq!(second["sub"], orig["sub"]);
    assert_eq!(second["auth_time"], orig["auth_time"]);
    assert!(second.get("nonce").is_none(), "OIDC Core §12.2: no nonce on refresh");
    assert_eq!(second["iat"], srv.clock.now());
    // The narrowed refresh keeps the original scope for the next rotation.
    let t3: Value = refresh(&srv, &c, t2["refresh_token"].as_str().unwrap(), &[]).await.json().await.unwrap();
    assert!(t3["scope"].as_str().unwrap().contains("email"));
}

#[tokio::test]
async fn client_credentials_with_basic_and_post() {
    let srv = TestServer::start().await;
    let opts = |m| ClientOpts {
        auth_method: m,
        grant_types: vec![GrantType::ClientCredentials],
        scopes: vec!["api:read".into(), "api:write".into()],
        resources: vec!["https://api.example.com".into()],
        ..Default::default()
    };
    let basic = srv.add_client(opts(ClientAuthMethod::ClientSecretBasic)).await;
    let r = srv.token(&basic, &[("grant_type", "client_credentials"), ("scope", "api:read")]).await;
    assert_eq!(r.status(), 200);
    let t: Value = r.json().await.unwrap();
    assert_eq!(t["scope"], "api:read");
    assert!(t.get("refresh_token").is_none() && t.get("id_token").is_none());
    let info = introspect(&srv, &basic, t["access_token"].as_str().unwrap()).await;
    assert_eq!(info["active"], true);
    assert_eq!(info["client_id"], basic.id.as_str());
    assert_eq!(info["aud"], srv.base.as_str(), "default audience is the issuer");
    assert!(info.get("username").is_none());

    let post = srv.add_client(opts(ClientAuthMethod::ClientSecretPost)).await;
    let secret = post.secret.clone().unwrap();
    let r = srv
        .http
        .post(srv.url("/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &post.id),
            ("client_secret", &secret),
            ("resource", "https://api.example.com"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let t: Value = r.json().await.unwrap();
    let rs = srv
        .add_client(ClientOpts {
            introspection: true,
            grant_types: vec![GrantType::ClientCredentials],
            ..Default::default()
        })
        .await;
    assert_eq!(introspect(&srv, &rs, t["access_token"].as_str().unwrap()).await["aud"], "https://api.example.com");

    // Unregistered resource, widened scope, user scopes.
    let r = srv.token(&basic, &[("grant_type", "client_credentials"), ("resource", "https://evil.example")]).await;
    assert_eq!(err(r).await, "invalid_target");
    let r = srv.token(&basic, &[("grant_type", "client_credentials"), ("scope", "api:admin")]).await;
    assert_eq!(err(r).await, "invalid_scope");
    let r = srv.token(&basic, &[("grant_type", "client_credentials"), ("scope", "openid")]).await;
    assert_eq!(err(r).await, "invalid_scope");
    // A client not registered for the grant.
    let code_only = srv.add_client(ClientOpts::default()).await;
    let r = srv.token(&code_only, &[("grant_type", "client_credentials")]).await;
    assert_eq!(err(r).await, "unauthorized_client");
}

#[tokio::test]
async fn jwt_access_tokens_follow_rfc_9068_and_work_at_userinfo() {
    let srv = TestServer::start().await;
    let (t, c) =
        offline_tokens(&srv, ClientOpts { access_token_format: Some(AccessTokenFormat::Jwt), ..Default::default() })
            .await;
    let at = t["access_token"].as_str().unwrap();
    let header = jsonwebtoken::decode_header(at).unwrap();
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    let claims = srv.state().keys.verify(at).unwrap();
    for k in ["iss", "exp", "aud", "sub", "client_id", "iat", "jti", "scope", "auth_time"] {
        assert!(claims.contains_key(k), "RFC 9068 §2.2 claim {k} missing");
    }
    assert_eq!(claims["client_id"], c.id.as_str());
    let ui = srv.http.get(srv.url("/userinfo")).bearer_auth(at).send().await.unwrap();
    assert_eq!(ui.status(), 200);
    // An ID token is not an access token (typ differs).
    let r = srv.http.get(srv.url("/userinfo")).bearer_auth(t["id_token"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(r.status(), 401);
    // Revoked: inactive at introspection and refused at UserInfo.
    let r = srv
        .http
        .post(srv.url("/revoke"))
        .basic_auth(&c.id, c.secret.as_deref())
        .form(&[("token", at)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(introspect(&srv, &c, at).await, serde_json::json!({"active": false}));
    let r = srv.http.get(srv.url("/userinfo")).bearer_auth(at).send().await.unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn jwt_client_credentials_tokens_are_not_stored() {
    let srv = TestServer::start_with(|s| s.access_token.format = "jwt".into()).await;
    let c = srv
        .add_client(ClientOpts {
            grant_types: vec![GrantType::ClientCredentials],
            scopes: vec!["api".into()],
            ..Default::default()
        })
        .await;
    let t: Value = srv.token(&c, &[("grant_type", "client_credentials")]).await.json().await.unwrap();
    let at = t["access_token"].as_str().unwrap();
    assert_eq!(jsonwebtoken::decode_header(at).unwrap().typ.as_deref(), Some("at+jwt"));
    assert_eq!(crate::support::query_i64(&srv.db, "SELECT COUNT(*) FROM access_tokens").await, 0);
    let info = introspect(&srv, &c, at).await;
    assert_eq!(info["active"], true);
    assert_eq!(info["sub"], c.id.as_str());
}

#[tokio::test]
async fn revocation_of_refresh_tokens_revokes_the_family_and_unknown_tokens_are_200() {
    let srv = TestServer::start().await;
    let (t, c) = offline_tokens(&srv, ClientOpts::default()).await;
    let revoke = |token: String, hint: Option<&'static str>| {
        let mut form = vec![("token", token)];
        if let Some(h) = hint {
            form.push(("token_type_hint", h.to_string()));
        }
        srv.http.post(srv.url("/revoke")).basic_auth(&c.id, c.secret.as_deref()).form(&form).send()
    };
    assert_eq!(revoke("nonsense".into(), None).await.unwrap().status(), 200);
    // A wrong hint is only a hint.
    let rt = t["refresh_token"].as_str().unwrap().to_string();
    assert_eq!(revoke(rt.clone(), Some("access_token")).await.unwrap().status(), 200);
    assert_eq!(introspect(&srv, &c, t["access_token"].as_str().unwrap()).await["active"], false);
    assert_eq!(err(refresh(&srv, &c, &rt, &[]).await).await, "invalid_grant");
    // Again: still 200.
    assert_eq!(revoke(rt, Some("refresh_token")).await.unwrap().status(), 200);
}

#[tokio::test]
async fn a_client_cannot_revoke_or_introspect_another_clients_tokens() {
    let srv = TestServer::start().await;
    let (t, c) = offline_tokens(&srv, ClientOpts::default()).await;
    let other = srv.add_client(ClientOpts::default()).await;
    let at = t["access_token"].as_str().unwrap();
    let r = srv
        .http
        .post(srv.url("/revoke"))
        .basic_auth(&other.id, other.secret.as_deref())
        .form(&[("token", at)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(err(r).await, "unauthorized_client");
    assert_eq!(introspect(&srv, &other, at).await, serde_json::json!({"active": false}));
    assert_eq!(introspect(&srv, &c, at).await["active"], true, "still active");
    // A resource server registered for introspection sees it, with the token's sub (no
    // username: the scope holds no profile).
    let rs = srv
        .add_client(ClientOpts {
            introspection: true,
            grant_types: vec![GrantType::ClientCredentials],
            ..Default::default()
        })
        .await;
    let info = introspect(&srv, &rs, at).await;
    assert_eq!(info["active"], true);
    assert!(info["sub"].is_string());
    assert!(info.get("username").is_none(), "{info}");
    assert_eq!(info["token_type"], "Bearer");
    assert_eq!(info["iss"], srv.base.as_str());
    assert!(info["scope"].as_str().unwrap().contains("openid"));
    let rt_info = introspect(&srv, &rs, t["refresh_token"].as_str().unwrap()).await;
    assert_eq!(rt_info["active"], true);
    assert!(rt_info.get("token_type").is_none(), "RFC 7662 token_type is for access tokens");
}

#[tokio::test]
async fn expired_tokens_introspect_inactive_and_housekeeping_removes_them() {
    let srv = TestServer::start().await;
    let (t, c) = offline_tokens(&srv, ClientOpts::default()).await;
    srv.clock.advance(3601);
    assert_eq!(introspect(&srv, &c, t["access_token"].as_str().unwrap()).await, serde_json::json!({"active": false}));
    let before = crate::support::query_i64(&srv.db, "SELECT COUNT(*) FROM access_tokens").await;
    assert!(before >= 1);
    srv.clock.advance(40 * 86400);
    let removed = latchkey::jobs::housekeeping(srv.state()).await;
    assert!(removed >= 3, "codes, tokens, sessions, grants: {removed}");
    for table in ["access_tokens", "refresh_tokens", "authorization_codes", "sessions", "grants", "session_clients"] {
        let n = match table {
            "session_clients" => crate::support::query_i64(&srv.db, "SELECT COUNT(*) FROM session_clients").await,
            "access_tokens" => crate::support::query_i64(&srv.db, "SELECT COUNT(*) FROM access_tokens").await,
            "refresh_tokens" => crate::support::query_i64(&srv.db, "SELECT COUNT(*) FROM refresh_tokens").await,
            "authorization_codes" => {
                crate::support::query_i64(&srv.db, "SELECT COUNT(*) FROM authorization_codes").await
            }
            "sessions" => crate::support::query_i64(&srv.db, "SELECT COUNT(*) FROM sessions").await,
            _ => crate::support::query_i64(&srv.db, "SELECT COUNT(*) FROM grants").await,
        };
        assert_eq!(n, 0, "{table} not cleaned");
    }
}

/// Issue 15: one run keeps going while batches come back full, so a backlog larger than
/// `housekeeping.batch_size` goes in one run; the metrics count it per table. On PostgreSQL a
/// table with `housekeeping.vacuum_after_rows` deleted rows is vacuumed by the run.
#[tokio::test]
async fn one_housekeeping_run_repeats_full_batches_until_nothing_due_is_left_and_counts_them() {
    let srv = TestServer::start_with(|s| {
        s.housekeeping.batch_size = 2;
        s.housekeeping.vacuum_after_rows = 5;
    })
    .await;
    let c = srv.add_client(ClientOpts::default()).await;
    // The server's own first run (at start) may still hold the job: wait for it to end.
    let waited = std::time::Instant::now();
    while latchkey::jobs::housekeeping_run(srv.state()).await.is_none() {
        assert!(waited.elapsed().as_secs() < 10, "the housekeeping job stays taken");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let now = srv.clock.now();
    for i in 0..9 {
        let t = latchkey_storage::AccessTokenRecord {
            token_hash: latchkey_core::TokenHash::from_stored(format!("expired-{i}")),
            grant_id: None,
            client_id: c.id.clone(),
            scope: "x".into(),
            audience: None,
            created_at: now - 100,
            expires_at: if i < 7 { now + 10 } else { now + 600 },
        };
        assert!(srv.state().store.store_access_token(&t).await.unwrap());
    }
    // Due only now: the server's own first run (at start) cannot have taken any.
    srv.clock.advance(20);
    let metrics = || async {
        srv.http.get(format!("{}/metrics", srv.metrics_base())).send().await.unwrap().text().await.unwrap()
    };
    let deleted = |body: &str| -> f64 {
        body.lines()
            .filter(|l| l.starts_with("housekeeping_rows_deleted_total{table=\"access_tokens\"}"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let vacuums = |body: &str| -> f64 {
        body.lines()
            .filter(|l| l.starts_with("housekeeping_vacuums_total{table=\"access_tokens\",result=\"ok\"}"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let first = metrics().await;
    let before = deleted(&first);
    let vacuums_before = vacuums(&first);
    assert_eq!(latchkey::jobs::housekeeping_run(srv.state()).await, Some(7), "all in one run, batches of 2");
    assert_eq!(crate::support::query_i64(&srv.db, "SELECT COUNT(*) FROM access_tokens").await, 2, "the live ones stay");
    let body = metrics().await;
    // Other tests in this binary share the recorder: at least this run's seven.
    assert!(deleted(&body) - before >= 7.0, "{body}");
    if srv.state().store.backend() == latchkey_core::settings::Backend::Postgres {
        assert!(vacuums(&body) - vacuums_before >= 1.0, "7 rows deleted, vacuum_after_rows 5: {body}");
    } else {
        assert_eq!(vacuums(&body), 0.0, "SQLite reuses its pages: no vacuum");
    }
    for series in [
        "housekeeping_last_run_seconds ",
        "housekeeping_last_run_timestamp_seconds ",
        "housekeeping_behind ",
        "housekeeping_lag_seconds{table=\"access_tokens\"} ",
    ] {
        assert!(body.lines().any(|l| l.starts_with(series)), "{series}missing:\n{body}");
    }
}

#[tokio::test]
async fn sign_out_everywhere_and_consent_revocation_revoke_the_families() {
    let srv = TestServer::start().await;
    let (t, c) = offline_tokens(&srv, ClientOpts::default()).await;
    let u = srv.state().store.get_user_by_username("alice").await.unwrap().unwrap();
    srv.state().store.delete_consent(&u.id, &c.id).await.unwrap();
    srv.state().store.revoke_user_grants(&u.id, Some(&c.id), srv.clock.now()).await.unwrap();
    assert_eq!(err(refresh(&srv, &c, t["refresh_token"].as_str().unwrap(), &[]).await).await, "invalid_grant");

    // Logout with "sign out everywhere".
    let (t, c2) = offline_tokens(&srv, ClientOpts::default()).await;
    let b = srv.browser();
    srv.sign_in(&b, &c2, "alice", "openid").await;
    let Landing::Page(200, _, body) = b.navigate("/logout").await else { panic!() };
    let csrf = crate::support::hidden(&body, "csrf").unwrap();
    b.submit("/logout", &[("csrf", &csrf), ("everywhere", "on")]).await;
    assert_eq!(introspect(&srv, &c2, t["access_token"].as_str().unwrap()).await["active"], false);
}

#[tokio::test]
async fn hostile_input_on_revocation_and_introspection_is_a_spec_error() {
    let srv = TestServer::start().await;
    let c = srv.add_client(ClientOpts::default()).await;
    for path in ["/revoke", "/introspect"] {
        let send = |body: String, ctype: &'static str| {
            srv.http
                .post(srv.url(path))
                .basic_auth(&c.id, c.secret.as_deref())
                .header("content-type", ctype)
                .body(body)
                .send()
        };
        for (body, ctype) in [
            (String::new(), "application/x-www-form-urlencoded"),
            ("token=a&token=b".to_string(), "application/x-www-form-urlencoded"),
            ("token=%FF".to_string(), "application/x-www-form-urlencoded"),
            (format!("token={}", "a".repeat(9000)), "application/x-www-form-urlencoded"),
            ("{\"token\":\"x\"}".to_string(), "application/json"),
        ] {
            let r = send(body, ctype).await.unwrap();
            assert_eq!(r.status(), 400, "{path}");
            assert_eq!(err(r).await, "invalid_request", "{path}");
        }
        let r = srv.http.post(srv.url(path)).form(&[("token", "x")]).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path} needs client authentication");
    }
    // Introspection needs a confidential client: a public client_id alone is refused.
    let public = srv.add_client(ClientOpts { auth_method: ClientAuthMethod::None, ..Default::default() }).await;
    let r =
        srv.http.post(srv.url("/introspect")).form(&[("token", "x"), ("client_id", &public.id)]).send().await.unwrap();
    assert_eq!(r.status(), 401);
    {}
}

#[tokio::test]
async fn public_clients_get_the_shorter_refresh_lifetime() {
    let srv = TestServer::start_with(|s| {
        s.lifetimes.refresh_token_public_idle = 100;
        s.lifetimes.refresh_token_public_absolute = 150;
    })
    .await;
    let (t, c) = offline_tokens(&srv, ClientOpts { auth_method: ClientAuthMethod::None, ..Default::default() }).await;
    let (tc, cc) = offline_tokens(&srv, ClientOpts::default()).await;
    srv.clock.advance(101);
    assert_eq!(err(refresh(&srv, &c, t["refresh_token"].as_str().unwrap(), &[]).await).await, "invalid_grant");
    let r = refresh(&srv, &cc, tc["refresh_token"].as_str().unwrap(), &[]).await;
    assert_eq!(r.status(), 200, "confidential clients keep the longer lifetime");
}
