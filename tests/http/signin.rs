use crate::support::{ClientOpts, Landing, TestServer};

#[tokio::test]
async fn full_code_flow_login_consent_token_userinfo() {
    let srv = TestServer::start().await;
    let c = srv.add_client(ClientOpts::default()).await;
    let u = srv.add_user("alice").await;
    let b = srv.browser();
    let (code, nonce, verifier) = srv.sign_in(&b, &c, "alice", "openid profile email").await;
    let r = srv.redeem(&c, &code, &verifier).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let t: serde_json::Value = r.json().await.unwrap();
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["scope"], "email openid profile");
    let id = t["id_token"].as_str().unwrap();
    let claims = srv.state().keys.verify(id).unwrap();
    assert_eq!(claims["sub"], u.id.as_str());
    assert_eq!(claims["nonce"], nonce.as_str());
    assert_eq!(claims["aud"], c.id.as_str());
    let ui: serde_json::Value = srv
        .http
        .get(srv.url("/userinfo"))
        .bearer_auth(t["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ui["sub"], u.id.as_str());
    assert_eq!(ui["email"], "alice@example.com");
    assert!(ui.get("address").is_none(), "address scope was not granted");
    // A second sign-in reuses the session and the remembered consent: straight back to the client.
    let (url, ..) = crate::support::authorize_url(&srv.base, &c, "openid email", &[]);
    assert!(matches!(b.navigate(&url).await, Landing::Client(_)));
}
