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
