//! Pairwise subject identifiers (OIDC Core §8).
use crate::support::{ClientOpts, Landing, RegisteredClient, TestServer, authorize_url, query_param};
use latchkey_core::model::SubjectType;
use serde_json::Value;

async fn pairwise_client(srv: &TestServer, redirect: &str) -> RegisteredClient {
    let c = srv
        .add_client(ClientOpts { skip_consent: true, redirect_uris: vec![redirect.into()], ..Default::default() })
        .await;
    let mut rec = srv.state().store.get_client(&c.id).await.unwrap().unwrap();
    rec.subject_type = SubjectType::Pairwise;
    srv.update_client(&rec).await;
    c
}

async fn sub_of(srv: &TestServer, b: &crate::support::Browser, c: &RegisteredClient) -> (String, String, String) {
    let (code, _, v) = srv.sign_in(b, c, "alice", "openid").await;
    let t: Value = srv.redeem(c, &code, &v).await.json().await.unwrap();
    let id = t["id_token"].as_str().unwrap().to_string();
    let claims = srv.state().keys.verify(&id).unwrap();
    let ui: Value = srv
        .http
        .get(srv.url("/userinfo"))
        .bearer_auth(t["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ui["sub"], claims["sub"], "UserInfo sub equals the ID token sub");
    (claims["sub"].as_str().unwrap().to_string(), id, t["access_token"].as_str().unwrap().to_string())
}

#[tokio::test]
async fn pairwise_subjects_differ_by_sector_and_stay_stable() {
    let srv = TestServer::start().await;
    let u = srv.add_user("alice").await;
    let a1 = pairwise_client(&srv, "https://a.example/cb").await;
    let a2 = pairwise_client(&srv, "https://a.example/other").await;
    let b = pairwise_client(&srv, "https://b.example/cb").await;
    let public = srv.add_client(ClientOpts { skip_consent: true, ..Default::default() }).await;
    let br = srv.browser();
    let (s_a1, ..) = sub_of(&srv, &br, &a1).await;
    let (s_a2, ..) = sub_of(&srv, &br, &a2).await;
    let (s_b, ..) = sub_of(&srv, &br, &b).await;
    let (s_pub, ..) = sub_of(&srv, &br, &public).await;
    assert_eq!(s_a1, s_a2, "same sector, same sub");
    assert_ne!(s_a1, s_b, "different sectors cannot correlate");
    assert_ne!(s_a1, u.id, "pairwise is not the user id");
    assert_eq!(s_pub, u.id, "public clients see the stable id");
    assert_eq!(sub_of(&srv, &br, &a1).await.0, s_a1, "stable across sign-ins");
    let doc = srv.get_json("/.well-known/openid-configuration").await;
    assert!(doc["subject_types_supported"].as_array().unwrap().iter().any(|v| v == "pairwise"));
}

#[tokio::test]
async fn a_pairwise_id_token_hint_identifies_the_session_user() {
    let srv = TestServer::start().await;
    srv.add_user("alice").await;
    let c = pairwise_client(&srv, "https://a.example/cb").await;
    let br = srv.browser();
    let (_, id_token, at) = sub_of(&srv, &br, &c).await;
    let (url, ..) = authorize_url(&srv.base, &c, "openid", &[("prompt", "none"), ("id_token_hint", &id_token)]);
    let Landing::Client(loc) = br.navigate(&url).await else { panic!() };
    assert!(query_param(&loc, "code").is_some(), "{loc}");
    // Introspection reports the pairwise sub too.
    let r: Value = srv
        .http
        .post(srv.url("/introspect"))
        .basic_auth(&c.id, c.secret.as_deref())
        .form(&[("token", at.as_str())])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let claims = srv.state().keys.verify(&id_token).unwrap();
    assert_eq!(r["sub"], claims["sub"]);
}

async fn introspect(srv: &TestServer, caller: &RegisteredClient, token: &str) -> Value {
    srv.http
        .post(srv.url("/introspect"))
        .basic_auth(&caller.id, caller.secret.as_deref())
        .form(&[("token", token)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn tokens(srv: &TestServer, b: &crate::support::Browser, c: &RegisteredClient, scope: &str) -> Value {
    let (code, _, v) = srv.sign_in(b, c, "alice", scope).await;
    srv.redeem(c, &code, &v).await.json().await.unwrap()
}

/// Issue 13: introspection returned `username` to a pairwise client granted only `openid`, so
/// two clients could link a user. Introspection releases no global identifier the granted scope
/// does not: no `username` without `profile`, never the user id to a pairwise client.
#[tokio::test]
async fn introspection_never_lets_pairwise_clients_link_a_user() {
    let srv = TestServer::start().await;
    let u = srv.add_user("alice").await;
    let a = pairwise_client(&srv, "https://a.example/cb").await;
    let b = pairwise_client(&srv, "https://b.example/cb").await;
    let br = srv.browser();
    let global = |info: &Value| {
        let text = info.to_string();
        assert!(!text.contains(&u.id) && !text.contains("alice"), "a global identifier in {info}");
    };
    // The attack: each pairwise client introspects its own openid-only token.
    let ta = tokens(&srv, &br, &a, "openid offline_access").await;
    let tb = tokens(&srv, &br, &b, "openid").await;
    let ia = introspect(&srv, &a, ta["access_token"].as_str().unwrap()).await;
    let ib = introspect(&srv, &b, tb["access_token"].as_str().unwrap()).await;
    assert_eq!(ia["active"], true);
    let sub_a = srv.state().keys.verify(ta["id_token"].as_str().unwrap()).unwrap()["sub"].clone();
    assert_eq!(ia["sub"], sub_a, "each client's own pairwise sub");
    assert_ne!(ia["sub"], ib["sub"]);
    for info in [&ia, &ib] {
        assert!(info.get("username").is_none(), "{info}");
        global(info);
    }
    // Refresh tokens alike.
    let info = introspect(&srv, &a, ta["refresh_token"].as_str().unwrap()).await;
    assert_eq!(info["active"], true);
    assert_eq!(info["sub"], sub_a);
    global(&info);
    // A pairwise resource server introspecting a public client's token: no sub (it would be the
    // user id), no username.
    let public = srv.add_client(ClientOpts { skip_consent: true, ..Default::default() }).await;
    let tp = tokens(&srv, &br, &public, "openid").await;
    let rs = srv
        .add_client(ClientOpts {
            introspection: true,
            grant_types: vec![latchkey_core::model::GrantType::ClientCredentials],
            ..Default::default()
        })
        .await;
    let mut rec = srv.state().store.get_client(&rs.id).await.unwrap().unwrap();
    rec.subject_type = SubjectType::Pairwise;
    srv.update_client(&rec).await;
    let info = introspect(&srv, &rs, tp["access_token"].as_str().unwrap()).await;
    assert_eq!(info["active"], true);
    assert!(info.get("sub").is_none(), "{info}");
    global(&info);
    // The same resource server sees a pairwise client's token with that client's sub.
    let info = introspect(&srv, &rs, ta["access_token"].as_str().unwrap()).await;
    assert_eq!(info["sub"], sub_a);
    global(&info);
    // With profile granted, username is the preferred_username the client may see anyway.
    let tp = tokens(&srv, &br, &a, "openid profile").await;
    let info = introspect(&srv, &a, tp["access_token"].as_str().unwrap()).await;
    assert_eq!(info["username"], "alice");
    assert_eq!(info["sub"], sub_a);
}
