//! UserInfo (OIDC Core §5.3) and its RFC 6750 errors.
use crate::support::{ClientOpts, Landing, TestServer, authorize_url, query_param};
use serde_json::Value;

async fn token_for(srv: &TestServer, scope: &str, extra: &[(&str, &str)]) -> String {
    let c = srv
        .add_client(ClientOpts {
            skip_consent: true,
            scopes: vec![
                "openid".into(),
                "profile".into(),
                "email".into(),
                "address".into(),
                "phone".into(),
                "api".into(),
            ],
            ..Default::default()
        })
        .await;
    if srv.state().store.get_user_by_username("alice").await.unwrap().is_none() {
        srv.add_user("alice").await;
    }
    let b = srv.browser();
    let (url, _, _, verifier) = authorize_url(&srv.base, &c, scope, extra);
    let mut l = b.navigate(&url).await;
    if matches!(&l, Landing::Page(_, p, _) if p.starts_with("/login")) {
        l = b.login(l, "alice", crate::support::PASSWORD).await;
    }
    let Landing::Client(loc) = l else { panic!("{l:?}") };
    let code = query_param(&loc, "code").unwrap();
    let t: Value = srv.redeem(&c, &code, &verifier).await.json().await.unwrap();
    t["access_token"].as_str().unwrap().to_string()
}

fn www(r: &reqwest::Response) -> String {
    r.headers()["www-authenticate"].to_str().unwrap().to_string()
}

#[tokio::test]
async fn get_and_post_return_claims_by_scope() {
    let srv = TestServer::start().await;
    let at = token_for(&srv, "openid email address phone", &[]).await;
    let r = srv.http.get(srv.url("/userinfo")).bearer_auth(&at).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["email"], "alice@example.com");
    assert_eq!(v["email_verified"], true);
    assert_eq!(v["address"]["locality"], "Springfield");
    assert_eq!(v["phone_number"], "+1 555 0100");
    assert!(v.get("name").is_none(), "profile was not granted");
    let post_header: Value =
        srv.http.post(srv.url("/userinfo")).bearer_auth(&at).send().await.unwrap().json().await.unwrap();
    assert_eq!(post_header, v);
    let post_body: Value =
        srv.http.post(srv.url("/userinfo")).form(&[("access_token", &at)]).send().await.unwrap().json().await.unwrap();
    assert_eq!(post_body, v);
}

#[tokio::test]
async fn claims_parameter_adds_userinfo_and_id_token_claims() {
    let srv = TestServer::start().await;
    let at =
        token_for(&srv, "openid", &[("claims", r#"{"userinfo":{"given_name":null,"address":{"essential":true}}}"#)])
            .await;
    let v: Value = srv.http.get(srv.url("/userinfo")).bearer_auth(&at).send().await.unwrap().json().await.unwrap();
    assert_eq!(v["given_name"], "alice");
    assert_eq!(v["address"]["country"], "US");
    assert!(v.get("email").is_none());
}

#[tokio::test]
async fn missing_token_is_401_with_a_bare_bearer_challenge() {
    let srv = TestServer::start().await;
    let r = srv.http.get(srv.url("/userinfo")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let w = www(&r);
    assert!(w.starts_with("Bearer realm="), "{w}");
    assert!(!w.contains("error="), "RFC 6750 §3.1: no error code without credentials: {w}");
}

#[tokio::test]
async fn invalid_or_expired_tokens_are_invalid_token() {
    let srv = TestServer::start().await;
    let r = srv.http.get(srv.url("/userinfo")).bearer_auth("nonsense").send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(www(&r).contains("error=\"invalid_token\""));
    let at = token_for(&srv, "openid", &[]).await;
    srv.clock.advance(3600);
    let r = srv.http.get(srv.url("/userinfo")).bearer_auth(&at).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(www(&r).contains("error=\"invalid_token\""));
}

#[tokio::test]
async fn two_ways_of_sending_the_token_is_invalid_request() {
    let srv = TestServer::start().await;
    let at = token_for(&srv, "openid", &[]).await;
    let r = srv.http.post(srv.url("/userinfo")).bearer_auth(&at).form(&[("access_token", &at)]).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(www(&r).contains("error=\"invalid_request\""));
    let r = srv.http.get(srv.url("/userinfo")).header("authorization", "Basic abc").send().await.unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn tokens_without_openid_are_insufficient_scope() {
    let srv = TestServer::start().await;
    let at = token_for(&srv, "api", &[]).await;
    let r = srv.http.get(srv.url("/userinfo")).bearer_auth(&at).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(www(&r).contains("error=\"insufficient_scope\""));
}

#[tokio::test]
async fn userinfo_sub_equals_the_id_token_sub_and_deleted_users_lose_access() {
    let srv = TestServer::start().await;
    let at = token_for(&srv, "openid", &[]).await;
    let v: Value = srv.http.get(srv.url("/userinfo")).bearer_auth(&at).send().await.unwrap().json().await.unwrap();
    let u = srv.state().store.get_user_by_username("alice").await.unwrap().unwrap();
    assert_eq!(v["sub"], u.id.as_str());
    srv.state().store.delete_user(&u.id).await.unwrap();
    let r = srv.http.get(srv.url("/userinfo")).bearer_auth(&at).send().await.unwrap();
    assert_eq!(r.status(), 401);
}

/// Sign in through `c` (login, and consent when asked, checking the page with `on_consent`);
/// the token response.
async fn tokens_via(
    srv: &TestServer,
    c: &crate::support::RegisteredClient,
    scope: &str,
    extra: &[(&str, &str)],
    on_consent: impl Fn(&str),
) -> Value {
    let b = srv.browser();
    let (url, _, _, verifier) = authorize_url(&srv.base, c, scope, extra);
    let mut l = b.navigate(&url).await;
    if matches!(&l, Landing::Page(_, p, _) if p.starts_with("/login")) {
        l = b.login(l, "alice", crate::support::PASSWORD).await;
    }
    if let Landing::Page(_, p, body) = &l
        && p.starts_with("/consent")
    {
        on_consent(body);
        l = b.consent(l, "approve").await;
    }
    let Landing::Client(loc) = l else { panic!("{l:?}") };
    srv.redeem(c, &query_param(&loc, "code").unwrap(), &verifier).await.json().await.unwrap()
}

/// Issue 13: a client registered for `openid` only received `email`, `phone_number` and `name`
/// through the `claims` parameter, and a skip-consent client without any page. A claim is
/// released only when a scope the client is registered for carries it (else silently left out,
/// OIDC Core §5.5), and the consent page offers only those.
#[tokio::test]
async fn the_claims_parameter_releases_nothing_beyond_the_registered_scopes() {
    let srv = TestServer::start().await;
    srv.add_user("alice").await;
    let asked = r#"{"userinfo":{"email":null,"phone_number":null,"name":{"essential":true}},
                    "id_token":{"email":null,"phone_number":null,"name":null}}"#;
    let leaked = |claims: &serde_json::Map<String, Value>, allowed: &[&str]| {
        let found: Vec<&str> = ["email", "email_verified", "phone_number", "name"]
            .into_iter()
            .filter(|k| claims.contains_key(*k) && !allowed.contains(k))
            .collect();
        assert!(found.is_empty(), "released beyond the registered scopes: {found:?} in {claims:?}");
    };
    for skip_consent in [true, false] {
        let c = srv.add_client(ClientOpts { skip_consent, scopes: vec!["openid".into()], ..Default::default() }).await;
        let t = tokens_via(&srv, &c, "openid", &[("claims", asked)], |page| {
            assert!(!page.contains("See your email") && !page.contains("See your phone number"), "{page}");
        })
        .await;
        let id = srv.state().keys.verify(t["id_token"].as_str().unwrap()).unwrap();
        leaked(&id, &[]);
        let ui = srv.userinfo(&t).await;
        leaked(ui.as_object().unwrap(), &[]);
        assert!(ui["sub"].is_string());
    }
    // A client registered for email (not phone or profile) gets email by naming it, even
    // without the scope in the request, and nothing else.
    let c = srv
        .add_client(ClientOpts {
            skip_consent: false,
            scopes: vec!["openid".into(), "email".into()],
            ..Default::default()
        })
        .await;
    let t = tokens_via(&srv, &c, "openid", &[("claims", asked)], |page| {
        assert!(page.contains("See your email"), "the consent page names what is released: {page}");
        assert!(!page.contains("See your phone number") && !page.contains("See your name"), "{page}");
    })
    .await;
    let id = srv.state().keys.verify(t["id_token"].as_str().unwrap()).unwrap();
    assert_eq!(id["email"], "alice@example.com");
    leaked(&id, &["email"]);
    let ui = srv.userinfo(&t).await;
    assert_eq!(ui["email"], "alice@example.com");
    leaked(ui.as_object().unwrap(), &["email"]);
}
