//! The login UI: pages, headers, sessions, CSRF, prompts.
use crate::support::{ClientOpts, Landing, PASSWORD, TestServer, authorize_url, hidden, query_param};

async fn login_page(srv: &TestServer, extra: &[(&str, &str)]) -> (crate::support::Browser, String, String) {
    let c = srv.add_client(ClientOpts::default()).await;
    let b = srv.browser();
    let (url, ..) = authorize_url(&srv.base, &c, "openid", extra);
    let Landing::Page(200, path, body) = b.navigate(&url).await else { panic!() };
    (b, path, body)
}

#[tokio::test]
async fn pages_carry_security_headers_lang_labels_and_no_inline_script() {
    let srv = TestServer::start().await;
    let (b, path, body) = login_page(&srv, &[]).await;
    let r = b.http.get(srv.url(&path)).send().await.unwrap();
    let h = r.headers();
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert_eq!(h["cache-control"], "no-store");
    assert!(body.contains("<html lang=\"en\">"));
    assert!(body.contains("<label for=\"username\">") && body.contains("<label for=\"password\">"));
    assert!(!body.contains("<script"), "no script at all on the login page");
    assert!(!body.contains("style=\""), "no inline styles");
    let css = srv.http.get(srv.url("/static/latchkey.css")).send().await.unwrap();
    assert_eq!(css.status(), 200);
    assert!(css.headers()["content-type"].to_str().unwrap().starts_with("text/css"));
}

#[tokio::test]
async fn login_hint_prefills_the_username() {
    let srv = TestServer::start().await;
    let (_, _, body) = login_page(&srv, &[("login_hint", "bob@example.com")]).await;
    assert!(body.contains("value=\"bob@example.com\""));
}

#[tokio::test]
async fn wrong_password_and_unknown_user_get_the_same_generic_error() {
    let srv = TestServer::start().await;
    srv.add_user("alice").await;
    let (b, path, body) = login_page(&srv, &[]).await;
    let l1 = b.login(Landing::Page(200, path.clone(), body.clone()), "alice", "wrong").await;
    let Landing::Page(s1, _, b1) = l1 else { panic!() };
    let l2 = b.login(Landing::Page(200, path, body), "mallory", "wrong").await;
    let Landing::Page(s2, _, b2) = l2 else { panic!() };
    assert_eq!(s1, s2);
    let msg = "The username or password is incorrect.";
    assert!(b1.contains(msg) && b2.contains(msg));
    // Apart from the echoed username, the pages are the same.
    assert_eq!(b1.replace("alice", "X"), b2.replace("mallory", "X"));
}

#[tokio::test]
async fn login_without_the_csrf_token_or_cookie_is_refused() {
    let srv = TestServer::start().await;
    srv.add_user("alice").await;
    let (b, _, body) = login_page(&srv, &[]).await;
    let interaction = hidden(&body, "interaction").unwrap();
    let l = b.submit("/login", &[("interaction", &interaction), ("username", "alice"), ("password", PASSWORD)]).await;
    assert!(matches!(l, Landing::Page(400, ..)), "{l:?}");
    // A different browser (no CSRF cookie) replaying the form is refused too.
    let csrf = hidden(&body, "csrf").unwrap();
    let other = srv.browser();
    let l = other
        .submit(
            "/login",
            &[("interaction", &interaction), ("csrf", &csrf), ("username", "alice"), ("password", PASSWORD)],
        )
        .await;
    assert!(matches!(l, Landing::Page(400, ..)), "{l:?}");
}

#[tokio::test]
async fn session_cookie_is_httponly_lax_and_new_at_every_login() {
    let srv = TestServer::start().await;
    srv.add_user("alice").await;
    let c = srv.add_client(ClientOpts { skip_consent: true, ..Default::default() }).await;
    let b = srv.browser();
    let (url, ..) = authorize_url(&srv.base, &c, "openid", &[]);
    let Landing::Page(_, _, body) = b.navigate(&url).await else { panic!() };
    let form = [
        ("interaction", hidden(&body, "interaction").unwrap()),
        ("csrf", hidden(&body, "csrf").unwrap()),
        ("username", "alice".to_string()),
        ("password", PASSWORD.to_string()),
    ];
    let r = b.http.post(srv.url("/login")).form(&form).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let set: Vec<String> = r.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_string()).collect();
    let session = set.iter().find(|c| c.starts_with("latchkey_session=")).expect("session cookie");
    assert!(session.contains("HttpOnly") && session.contains("SameSite=Lax") && session.contains("Path=/"));
    let first_value = session.split(';').next().unwrap().to_string();
    // The session is stored only as a hash.
    let token = first_value.trim_start_matches("latchkey_session=");
    let hash = latchkey_core::SecretToken::from_presented(token).hash();
    assert!(srv.state().store.get_session(&hash, latchkey_core::Clock::now(&srv.clock)).await.unwrap().is_some());
    assert_eq!(crate::support::query_i64_sessions(&srv, token).await, 0, "raw session id stored");

    // prompt=login: a new login gives a new session id and ends the old one.
    let (url, ..) = authorize_url(&srv.base, &c, "openid", &[("prompt", "login")]);
    let Landing::Page(_, path, body) = b.navigate(&url).await else { panic!() };
    assert!(path.starts_with("/login"));
    let form = [
        ("interaction", hidden(&body, "interaction").unwrap()),
        ("csrf", hidden(&body, "csrf").unwrap()),
        ("username", "alice".to_string()),
        ("password", PASSWORD.to_string()),
    ];
    let r = b.http.post(srv.url("/login")).form(&form).send().await.unwrap();
    let set: Vec<String> = r.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_string()).collect();
    let second = set.iter().find(|c| c.starts_with("latchkey_session=")).unwrap();
    assert_ne!(second.split(';').next().unwrap(), first_value);
    assert!(srv.state().store.get_session(&hash, latchkey_core::Clock::now(&srv.clock)).await.unwrap().is_none());
}

#[tokio::test]
async fn https_issuers_get_host_prefixed_secure_cookies() {
    let srv = TestServer::start_with(|s| s.issuer = "https://id.example.com".into()).await;
    let c = srv.add_client(ClientOpts::default()).await;
    let (url, ..) = authorize_url(&srv.base, &c, "openid", &[]);
    let r = srv.http.get(&url).send().await.unwrap();
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let binding = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(binding.starts_with("__Host-latchkey_browser=") && binding.contains("; Secure"), "{binding}");
    // (A browser would not send a Secure cookie over this test's plain http: sent by hand.)
    let cookie = binding.split(';').next().unwrap();
    let r = srv.http.get(srv.url(&loc)).header("cookie", cookie).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let set = r.headers()["set-cookie"].to_str().unwrap();
    assert!(set.starts_with("__Host-latchkey_csrf=") && set.contains("; Secure"), "{set}");
}

#[tokio::test]
async fn consent_deny_returns_access_denied_with_state() {
    let srv = TestServer::start().await;
    srv.add_user("alice").await;
    let c = srv.add_client(ClientOpts::default()).await;
    let b = srv.browser();
    let (url, state, ..) = authorize_url(&srv.base, &c, "openid email", &[]);
    let l = b.login(b.navigate(&url).await, "alice", PASSWORD).await;
    let Landing::Page(200, _, body) = &l else { panic!() };
    assert!(body.contains("Test RP"));
    assert!(body.contains("See your email address"), "scopes in plain words");
    let Landing::Client(loc) = b.consent(l, "deny").await else { panic!() };
    assert_eq!(query_param(&loc, "error").as_deref(), Some("access_denied"));
    assert_eq!(query_param(&loc, "state").as_deref(), Some(state.as_str()));
}

#[tokio::test]
async fn consent_is_remembered_and_a_new_scope_asks_again() {
    let srv = TestServer::start().await;
    srv.add_user("alice").await;
    let c = srv.add_client(ClientOpts::default()).await;
    let b = srv.browser();
    srv.sign_in(&b, &c, "alice", "openid email").await;
    let (url, ..) = authorize_url(&srv.base, &c, "openid email", &[]);
    assert!(matches!(b.navigate(&url).await, Landing::Client(_)), "remembered");
    let (url, ..) = authorize_url(&srv.base, &c, "openid profile", &[]);
    let l = b.navigate(&url).await;
    assert!(matches!(&l, Landing::Page(200, p, _) if p.starts_with("/consent")), "{l:?}");
}

#[tokio::test]
async fn skip_consent_clients_never_show_the_consent_page() {
    let srv = TestServer::start().await;
    srv.add_user("alice").await;
    let c = srv.add_client(ClientOpts { skip_consent: true, ..Default::default() }).await;
    let b = srv.browser();
    let (url, ..) = authorize_url(&srv.base, &c, "openid email profile", &[]);
    let l = b.login(b.navigate(&url).await, "alice", PASSWORD).await;
    assert!(matches!(l, Landing::Client(_)), "{l:?}");
}

#[tokio::test]
async fn max_age_forces_a_new_login_and_updates_auth_time() {
    let srv = TestServer::start().await;
    srv.add_user("alice").await;
    let c = srv.add_client(ClientOpts { skip_consent: true, ..Default::default() }).await;
    let b = srv.browser();
    srv.sign_in(&b, &c, "alice", "openid").await;
    srv.clock.advance(100);
    let (url, _, _, verifier) = authorize_url(&srv.base, &c, "openid", &[("max_age", "60")]);
    let l = b.navigate(&url).await;
    assert!(matches!(&l, Landing::Page(200, p, _) if p.starts_with("/login")), "{l:?}");
    let Landing::Client(loc) = b.login(l, "alice", PASSWORD).await else { panic!() };
    let code = query_param(&loc, "code").unwrap();
    let t: serde_json::Value = srv.redeem(&c, &code, &verifier).await.json().await.unwrap();
    let claims = srv.state().keys.verify(t["id_token"].as_str().unwrap()).unwrap();
    assert_eq!(claims["auth_time"], latchkey_core::Clock::now(&srv.clock));
    // Within max_age: no login.
    let (url, ..) = authorize_url(&srv.base, &c, "openid", &[("max_age", "60")]);
    assert!(matches!(b.navigate(&url).await, Landing::Client(_)));
}

#[tokio::test]
async fn id_token_hint_for_another_user_is_login_required_under_prompt_none() {
    let srv = TestServer::start().await;
    srv.add_user("alice").await;
    srv.add_user("bob").await;
    let c = srv.add_client(ClientOpts { skip_consent: true, ..Default::default() }).await;
    let bob = srv.browser();
    let (code, _, v) = srv.sign_in(&bob, &c, "bob", "openid").await;
    let t: serde_json::Value = srv.redeem(&c, &code, &v).await.json().await.unwrap();
    let bobs_id_token = t["id_token"].as_str().unwrap().to_string();
    // Bob's own hint works silently, even once expired.
    srv.clock.advance(4000);
    let (url, ..) = authorize_url(&srv.base, &c, "openid", &[("prompt", "none"), ("id_token_hint", &bobs_id_token)]);
    let Landing::Client(loc) = bob.navigate(&url).await else { panic!() };
    assert!(query_param(&loc, "code").is_some(), "{loc}");
    // Alice's browser with Bob's hint.
    let alice = srv.browser();
    srv.sign_in(&alice, &c, "alice", "openid").await;
    let Landing::Client(loc) = alice.navigate(&url).await else { panic!() };
    assert_eq!(query_param(&loc, "error").as_deref(), Some("login_required"));
    // Without prompt=none: a fresh login.
    let (url, ..) = authorize_url(&srv.base, &c, "openid", &[("id_token_hint", &bobs_id_token)]);
    let l = alice.navigate(&url).await;
    assert!(matches!(&l, Landing::Page(200, p, _) if p.starts_with("/login")), "{l:?}");
}

#[tokio::test]
async fn logout_ends_the_session() {
    let srv = TestServer::start().await;
    srv.add_user("alice").await;
    let c = srv.add_client(ClientOpts { skip_consent: true, ..Default::default() }).await;
    let b = srv.browser();
    srv.sign_in(&b, &c, "alice", "openid").await;
    let Landing::Page(200, _, body) = b.navigate("/logout").await else { panic!() };
    assert!(body.contains("alice"));
    let csrf = hidden(&body, "csrf").unwrap();
    let Landing::Page(200, _, body) = b.submit("/logout", &[("csrf", &csrf)]).await else { panic!() };
    assert!(body.contains("signed out"));
    let (url, ..) = authorize_url(&srv.base, &c, "openid", &[("prompt", "none")]);
    let Landing::Client(loc) = b.navigate(&url).await else { panic!() };
    assert_eq!(query_param(&loc, "error").as_deref(), Some("login_required"));
}

#[tokio::test]
async fn an_expired_or_completed_sign_in_request_shows_an_error_page() {
    let srv = TestServer::start().await;
    srv.add_user("alice").await;
    let (b, path, body) = login_page(&srv, &[]).await;
    srv.clock.advance(901);
    let l = b.login(Landing::Page(200, path, body), "alice", PASSWORD).await;
    assert!(matches!(l, Landing::Page(400, ..)), "{l:?}");
    let l = b.navigate("/authorize/resume?interaction=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").await;
    assert!(matches!(l, Landing::Page(400, ..)), "{l:?}");
    let l = b.navigate("/login?interaction=<script>").await;
    assert!(matches!(l, Landing::Page(400, ..)), "{l:?}");
}

#[tokio::test]
async fn changing_the_password_ends_sessions() {
    let srv = TestServer::start().await;
    let u = srv.add_user("alice").await;
    let c = srv.add_client(ClientOpts { skip_consent: true, ..Default::default() }).await;
    let b = srv.browser();
    srv.sign_in(&b, &c, "alice", "openid").await;
    let hash = srv.state().passwords.hash("new password".into()).await.unwrap();
    srv.state().store.set_password(&u.id, &hash, latchkey_core::Clock::now(&srv.clock)).await.unwrap();
    let (url, ..) = authorize_url(&srv.base, &c, "openid", &[("prompt", "none")]);
    let Landing::Client(loc) = b.navigate(&url).await else { panic!() };
    assert_eq!(query_param(&loc, "error").as_deref(), Some("login_required"));
}

#[tokio::test]
async fn hostile_login_and_consent_forms_get_an_error_page_never_500() {
    let srv = TestServer::start().await;
    let (b, _, body) = login_page(&srv, &[]).await;
    let interaction = hidden(&body, "interaction").unwrap();
    for (path, form_body, ctype) in [
        ("/login", format!("interaction={interaction}&interaction={interaction}"), "application/x-www-form-urlencoded"),
        ("/login", format!("interaction={interaction}&username=%FF"), "application/x-www-form-urlencoded"),
        (
            "/login",
            format!("interaction={interaction}&username={}", "a".repeat(9000)),
            "application/x-www-form-urlencoded",
        ),
        ("/login", "{\"username\":\"x\"}".to_string(), "application/json"),
        ("/consent", format!("interaction={interaction}&decision=maybe"), "application/x-www-form-urlencoded"),
        ("/select-account", "interaction=short".to_string(), "application/x-www-form-urlencoded"),
        ("/logout", "csrf=nope".to_string(), "application/x-www-form-urlencoded"),
    ] {
        let r = b.http.post(srv.url(path)).header("content-type", ctype).body(form_body).send().await.unwrap();
        assert!(r.status().is_client_error() || r.status().is_redirection(), "{path}: {}", r.status());
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"), "{path}");
    }
}
