//! /authorize: one test per error case (RFC 6749 §4.1.2.1, OIDC Core §3.1.2.6, RFC 9207).
use crate::support::{ClientOpts, Landing, TestServer, authorize_url, query_param};
use latchkey_core::model::ClientAuthMethod;

/// The server shows an error page (400) and never redirects.
async fn expect_error_page(srv: &TestServer, url: &str) -> String {
    let r = srv.http.get(url).send().await.unwrap();
    assert_eq!(r.status(), 400, "{url}");
    assert!(r.headers().get("location").is_none());
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    r.text().await.unwrap()
}

/// The server redirects to the client with `error`, `state` and `iss`.
async fn expect_redirect_error(srv: &TestServer, url: &str, code: &str) -> String {
    let r = srv.http.get(url).send().await.unwrap();
    assert_eq!(r.status(), 302, "{url}: {}", r.text().await.unwrap_or_default());
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    assert!(loc.starts_with("https://rp.example/cb?"), "{loc}");
    assert_eq!(query_param(&loc, "error").as_deref(), Some(code), "{loc}");
    assert_eq!(query_param(&loc, "iss").as_deref(), Some(srv.base.as_str()));
    assert!(query_param(&loc, "code").is_none());
    loc
}

fn with(url: &str, k: &str, v: &str) -> String {
    let mut u = url::Url::parse(url).unwrap();
    let pairs: Vec<(String, String)> =
        u.query_pairs().filter(|(kk, _)| kk != k).map(|(a, b)| (a.into_owned(), b.into_owned())).collect();
    {
        let mut q = u.query_pairs_mut();
        q.clear();
        for (a, b) in &pairs {
            q.append_pair(a, b);
        }
        q.append_pair(k, v);
    }
    u.to_string()
}

fn without(url: &str, k: &str) -> String {
    let mut u = url::Url::parse(url).unwrap();
    let pairs: Vec<(String, String)> =
        u.query_pairs().filter(|(kk, _)| kk != k).map(|(a, b)| (a.into_owned(), b.into_owned())).collect();
    {
        let mut q = u.query_pairs_mut();
        q.clear();
        for (a, b) in &pairs {
            q.append_pair(a, b);
        }
    }
    u.to_string()
}

#[tokio::test]
async fn unknown_or_missing_client_gets_an_error_page_never_a_redirect() {
    let srv = TestServer::start().await;
    let c = srv.add_client(ClientOpts::default()).await;
    let (url, ..) = authorize_url(&srv.base, &c, "openid", &[]);
    expect_error_page(&srv, &with(&url, "client_id", "nope")).await;
    expect_error_page(&srv, &without(&url, "client_id")).await;
}

#[tokio::test]
async fn unregistered_or_missing_redirect_uri_gets_an_error_page() {
    let srv = TestServer::start().await;
    let c = srv.add_client(ClientOpts::default()).await;
    let (url, ..) = authorize_url(&srv.base, &c, "openid", &[]);
    expect_error_page(&srv, &with(&url, "redirect_uri", "https://evil.example/cb")).await;
    expect_error_page(&srv, &with(&url, "redirect_uri", "https://rp.example/cb/../evil")).await;
    expect_error_page(&srv, &with(&url, "redirect_uri", "https://rp.example/cb?x=1")).await;
    // OIDC Core §3.1.2.1: an OpenID request must carry redirect_uri.
    expect_error_page(&srv, &without(&url, "redirect_uri")).await;
}

#[tokio::test]
async fn repeated_client_id_or_redirect_uri_gets_an_error_page() {
    let srv = TestServer::start().await;
    let c = srv.add_client(ClientOpts::default()).await;
    let (url, ..) = authorize_url(&srv.base, &c, "openid", &[]);
    expect_error_page(&srv, &format!("{url}&client_id={}", c.id)).await;
    expect_error_page(&srv, &format!("{url}&redirect_uri=https%3A%2F%2Frp.example%2Fcb")).await;
}

#[tokio::test]
async fn other_repeated_parameters_are_invalid_request_by_redirect() {
    let srv = TestServer::start().await;
    let c = srv.add_client(ClientOpts::default()).await;
    let (url, state, ..) = authorize_url(&srv.base, &c, "openid", &[]);
    let loc = expect_redirect_error(&srv, &format!("{url}&scope=openid"), "invalid_request").await;
    assert_eq!(query_param(&loc, "state").as_deref(), Some(state.as_str()));
    // A repeated state is not echoed.
    let loc = expect_redirect_error(&srv, &format!("{url}&state=other"), "invalid_request").await;
    assert!(query_param(&loc, "state").is_none());
}

#[tokio::test]
async fn non_utf8_malformed_and_oversized_queries_get_an_error_page() {
    let srv = TestServer::start().await;
    let c = srv.add_client(ClientOpts::default()).await;
    let (url, ..) = authorize_url(&srv.base, &c, "openid", &[]);
    expect_error_page(&srv, &format!("{url}&nonce=%FF%FE")).await;
    expect_error_page(&srv, &format!("{url}&nonce=%zz")).await;
    let big = "a".repeat(9000);
    let body = expect_error_page(&srv, &format!("{url}&nonce={big}")).await;
    assert!(body.contains("exceed"));
}

#[tokio::test]
async fn response_type_errors() {
    let srv = TestServer::start().await;
    let c = srv.add_client(ClientOpts::default()).await;
    let (url, ..) = authorize_url(&srv.base, &c, "openid", &[]);
    expect_redirect_error(&srv, &without(&url, "response_type"), "invalid_request").await;
    expect_redirect_error(&srv, &with(&url, "response_type", "token"), "unsupported_response_type").await;
    expect_redirect_error(&srv, &with(&url, "response_type", "code id_token"), "unsupported_response_type").await;
    expect_redirect_error(&srv, &with(&url, "response_mode", "fragment"), "invalid_request").await;
}

#[tokio::test]
async fn unusable_request_objects_and_uris_are_errors_by_redirect() {
    let srv = TestServer::start().await;
    let c = srv.add_client(ClientOpts::default()).await;
    let (url, ..) = authorize_url(&srv.base, &c, "openid", &[]);
    // alg none from a client that did not register it.
    expect_redirect_error(&srv, &with(&url, "request", "eyJhbGciOiJub25lIn0.e30."), "invalid_request_object").await;
    expect_redirect_error(&srv, &with(&url, "request", "garbage"), "invalid_request_object").await;
    // request_uri to a host that does not resolve, or to a private address.
    expect_redirect_error(&srv, &with(&url, "request_uri", "https://rp.invalid/r"), "invalid_request_uri").await;
    expect_redirect_error(&srv, &with(&url, "request_uri", "https://10.0.0.1/r"), "invalid_request_uri").await;
    expect_redirect_error(&srv, &with(&url, "request_uri", "http://rp.example/r"), "invalid_request_uri").await;
    expect_redirect_error(&srv, &with(&url, "registration", "{}"), "registration_not_supported").await;
    let both = with(&with(&url, "request", "a.b.c"), "request_uri", "https://rp.example/r");
    expect_redirect_error(&srv, &both, "invalid_request").await;
}

#[tokio::test]
async fn scope_errors() {
    let srv = TestServer::start().await;
    let c = srv.add_client(ClientOpts::default()).await;
    let (url, ..) = authorize_url(&srv.base, &c, "openid", &[]);
    // Without openid, a missing redirect_uri would be allowed, so keep it; scope itself is missing.
    expect_redirect_error(&srv, &without(&url, "scope"), "invalid_scope").await;
    expect_redirect_error(&srv, &with(&url, "scope", "payments:write"), "invalid_scope").await;
    expect_redirect_error(&srv, &with(&url, "scope", "openid \"x\""), "invalid_scope").await;
}

#[tokio::test]
async fn prompt_none_with_others_is_invalid_request() {
    let srv = TestServer::start().await;
    let c = srv.add_client(ClientOpts::default()).await;
    let (url, ..) = authorize_url(&srv.base, &c, "openid", &[("prompt", "none login")]);
    expect_redirect_error(&srv, &url, "invalid_request").await;
}

#[tokio::test]
async fn prompt_none_without_session_is_login_required() {
    let srv = TestServer::start().await;
    let c = srv.add_client(ClientOpts::default()).await;
    let (url, state, ..) = authorize_url(&srv.base, &c, "openid", &[("prompt", "none")]);
    let loc = expect_redirect_error(&srv, &url, "login_required").await;
    assert_eq!(query_param(&loc, "state").as_deref(), Some(state.as_str()));
}

#[tokio::test]
async fn prompt_none_without_consent_is_consent_required() {
    let srv = TestServer::start().await;
    let c = srv.add_client(ClientOpts::default()).await;
    let other = srv.add_client(ClientOpts::default()).await;
    srv.add_user("alice").await;
    let b = srv.browser();
    srv.sign_in(&b, &other, "alice", "openid").await; // session exists, no consent for `c`
    let (url, ..) = authorize_url(&srv.base, &c, "openid", &[("prompt", "none")]);
    let Landing::Client(loc) = b.navigate(&url).await else { panic!() };
    assert_eq!(query_param(&loc, "error").as_deref(), Some("consent_required"));
}

#[tokio::test]
async fn prompt_none_with_session_and_consent_issues_a_code_silently() {
    let srv = TestServer::start().await;
    let c = srv.add_client(ClientOpts::default()).await;
    srv.add_user("alice").await;
    let b = srv.browser();
    srv.sign_in(&b, &c, "alice", "openid email").await;
    let (url, ..) = authorize_url(&srv.base, &c, "openid email", &[("prompt", "none")]);
    let Landing::Client(loc) = b.navigate(&url).await else { panic!() };
    assert!(query_param(&loc, "code").is_some(), "{loc}");
}

#[tokio::test]
async fn prompt_none_with_select_account_is_invalid_and_select_account_alone_asks() {
    let srv = TestServer::start().await;
    let c = srv.add_client(ClientOpts { skip_consent: true, ..Default::default() }).await;
    srv.add_user("alice").await;
    let b = srv.browser();
    srv.sign_in(&b, &c, "alice", "openid").await;
    let (url, ..) = authorize_url(&srv.base, &c, "openid", &[("prompt", "select_account")]);
    let Landing::Page(200, path, body) = b.navigate(&url).await else { panic!() };
    assert!(path.starts_with("/select-account"), "{path}");
    assert!(body.contains("Continue as alice"));
    let interaction = crate::support::hidden(&body, "interaction").unwrap();
    let csrf = crate::support::hidden(&body, "csrf").unwrap();
    let l =
        b.submit("/select-account", &[("interaction", &interaction), ("csrf", &csrf), ("choice", "continue")]).await;
    let Landing::Client(loc) = l else { panic!("{l:?}") };
    assert!(query_param(&loc, "code").is_some());
}

#[tokio::test]
async fn pkce_plain_is_refused_and_public_clients_must_use_pkce() {
    let srv = TestServer::start().await;
    let c = srv.add_client(ClientOpts::default()).await;
    let (url, ..) = authorize_url(&srv.base, &c, "openid", &[]);
    expect_redirect_error(&srv, &with(&url, "code_challenge_method", "plain"), "invalid_request").await;
    expect_redirect_error(&srv, &without(&url, "code_challenge_method"), "invalid_request").await;
    expect_redirect_error(&srv, &with(&url, "code_challenge", "tooshort"), "invalid_request").await;
    let public = srv.add_client(ClientOpts { auth_method: ClientAuthMethod::None, ..Default::default() }).await;
    let (url, ..) = authorize_url(&srv.base, &public, "openid", &[]);
    let url = without(&without(&url, "code_challenge"), "code_challenge_method");
    expect_redirect_error(&srv, &url, "invalid_request").await;
    let strict = srv.add_client(ClientOpts { require_pkce: true, ..Default::default() }).await;
    let (url, ..) = authorize_url(&srv.base, &strict, "openid", &[]);
    let url = without(&without(&url, "code_challenge"), "code_challenge_method");
    expect_redirect_error(&srv, &url, "invalid_request").await;
}

#[tokio::test]
async fn malformed_oidc_parameters_are_invalid_request() {
    let srv = TestServer::start().await;
    let c = srv.add_client(ClientOpts::default()).await;
    let (url, ..) = authorize_url(&srv.base, &c, "openid", &[]);
    expect_redirect_error(&srv, &with(&url, "max_age", "-1"), "invalid_request").await;
    expect_redirect_error(&srv, &with(&url, "max_age", "soon"), "invalid_request").await;
    expect_redirect_error(&srv, &with(&url, "claims", "{not json"), "invalid_request").await;
    expect_redirect_error(&srv, &with(&url, "id_token_hint", "not.a.jwt"), "invalid_request").await;
}

#[tokio::test]
async fn form_post_response_mode_posts_code_state_and_iss() {
    let srv = TestServer::start().await;
    let c = srv.add_client(ClientOpts { skip_consent: true, ..Default::default() }).await;
    srv.add_user("alice").await;
    let b = srv.browser();
    srv.sign_in(&b, &c, "alice", "openid").await;
    let (url, state, ..) = authorize_url(&srv.base, &c, "openid", &[("response_mode", "form_post")]);
    let Landing::Page(200, _, body) = b.navigate(&url).await else { panic!() };
    assert!(body.contains("action=\"https://rp.example/cb\""));
    assert!(crate::support::hidden(&body, "code").is_some());
    assert_eq!(crate::support::hidden(&body, "state").as_deref(), Some(state.as_str()));
    assert_eq!(crate::support::hidden(&body, "iss").as_deref(), Some(srv.base.as_str()));
    // Errors use form_post too.
    let (url, ..) = authorize_url(&srv.base, &c, "nothing", &[("response_mode", "form_post")]);
    let Landing::Page(200, _, body) = b.navigate(&url).await else { panic!() };
    assert_eq!(crate::support::hidden(&body, "error").as_deref(), Some("invalid_scope"));
}

#[tokio::test]
async fn post_authorize_works_like_get() {
    let srv = TestServer::start().await;
    let c = srv.add_client(ClientOpts::default()).await;
    let (url, ..) = authorize_url(&srv.base, &c, "openid", &[]);
    let q = url.split_once('?').unwrap().1.to_string();
    let r = srv
        .http
        .post(srv.url("/authorize"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(q)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(r.headers()["location"].to_str().unwrap().starts_with("/login?interaction="));
}

#[tokio::test]
async fn loopback_redirect_uris_may_change_port_only() {
    let srv = TestServer::start().await;
    let c =
        srv.add_client(ClientOpts { redirect_uris: vec!["http://127.0.0.1/cb".into()], ..Default::default() }).await;
    let (url, ..) = authorize_url(&srv.base, &c, "openid", &[]);
    let r = srv.http.get(with(&url, "redirect_uri", "http://127.0.0.1:51234/cb")).send().await.unwrap();
    assert_eq!(r.status(), 303, "a loopback redirect with another port is accepted");
    expect_error_page(&srv, &with(&url, "redirect_uri", "http://127.0.0.1:51234/other")).await;
}

/// Issue 7 (hostile input): /authorize took any JWT this server signed as an `id_token_hint`:
/// JWT access tokens (`at+jwt`), logout tokens (`logout+jwt`) and signed UserInfo responses
/// (`JWT` without `iat`/`exp`). Only an ID token may be a hint (RFC 8725 §3.11).
#[tokio::test]
async fn id_token_hint_must_be_an_id_token_not_another_jwt_we_signed() {
    use latchkey_core::model::SigningAlg;
    use serde_json::json;
    let srv = TestServer::start().await;
    let c = srv.add_client(ClientOpts::default()).await;
    let (url, ..) = authorize_url(&srv.base, &c, "openid", &[]);
    let now = latchkey_core::Clock::now(&srv.clock);
    let sign = |typ: &str, claims: serde_json::Value| {
        srv.state().keys.sign(SigningAlg::RS256, typ, &claims, now).unwrap().token
    };
    let id_shaped = json!({"iss": srv.base, "sub": "u1", "aud": c.id, "iat": now, "exp": now + 60});
    // Control: an ID token is a hint (no session here, so on to the login page).
    let r = srv.http.get(with(&url, "id_token_hint", &sign("JWT", id_shaped.clone()))).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let userinfo_shaped = json!({"iss": srv.base, "sub": "u1", "aud": c.id, "email": "a@example.com"});
    for hint in [sign("at+jwt", id_shaped.clone()), sign("logout+jwt", id_shaped), sign("JWT", userinfo_shaped)] {
        expect_redirect_error(&srv, &with(&url, "id_token_hint", &hint), "invalid_request").await;
    }
}

/// Issue 7 (hostile input): `client_id=a%00b` reached PostgreSQL, which refuses NUL in text (a
/// 500). NUL is refused when parameters are decoded, before any lookup: an error page, like
/// any other query that cannot be decoded.
#[tokio::test]
async fn nul_in_a_parameter_is_an_error_page_never_500() {
    let srv = TestServer::start().await;
    expect_error_page(&srv, &srv.url("/authorize?response_type=code&client_id=a%00b&scope=openid")).await;
    let c = srv.add_client(ClientOpts::default()).await;
    let (url, ..) = authorize_url(&srv.base, &c, "openid", &[]);
    expect_error_page(&srv, &format!("{url}&nonce=n%00")).await;
}
