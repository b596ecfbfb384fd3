//! CORS for browser-based clients: public documents for any origin; token, UserInfo,
//! revocation and introspection only for the web origins of the client concerned.
use crate::support::{ClientOpts, TestServer};
use latchkey_core::model::{ClientAuthMethod, GrantType};
use serde_json::Value;

const SPA: &str = "http://127.0.0.1:5173";
const EVIL: &str = "https://evil.example";

fn acao(r: &reqwest::Response) -> Option<String> {
    r.headers().get("access-control-allow-origin").map(|v| v.to_str().unwrap().to_string())
}

#[tokio::test]
async fn discovery_and_jwks_answer_any_origin_without_credentials() {
    let srv = TestServer::start().await;
    for path in ["/.well-known/openid-configuration", "/jwks.json"] {
        let r = srv.http.get(srv.url(path)).header("origin", EVIL).send().await.unwrap();
        assert_eq!(acao(&r).as_deref(), Some("*"), "{path}");
        assert!(r.headers().get("access-control-allow-credentials").is_none());
        let r = srv
            .http
            .request(reqwest::Method::OPTIONS, srv.url(path))
            .header("origin", EVIL)
            .header("access-control-request-method", "GET")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204, "{path}");
        assert_eq!(acao(&r).as_deref(), Some("*"));
    }
}

#[tokio::test]
async fn preflights_list_exactly_what_each_endpoint_accepts() {
    let srv = TestServer::start().await;
    for (path, methods) in
        [("/token", "POST"), ("/userinfo", "GET, POST"), ("/revoke", "POST"), ("/introspect", "POST")]
    {
        let r = srv
            .http
            .request(reqwest::Method::OPTIONS, srv.url(path))
            .header("origin", SPA)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204, "{path}");
        assert_eq!(r.headers()["access-control-allow-methods"], methods, "{path}");
        assert!(r.headers()["access-control-allow-headers"].to_str().unwrap().contains("Content-Type"));
        assert!(r.headers()["vary"].to_str().unwrap().contains("Origin"));
        assert!(r.headers().get("access-control-allow-credentials").is_none());
        // A method the endpoint does not accept gets no grant.
        let r = srv
            .http
            .request(reqwest::Method::OPTIONS, srv.url(path))
            .header("origin", SPA)
            .header("access-control-request-method", "DELETE")
            .send()
            .await
            .unwrap();
        assert!(acao(&r).is_none(), "{path}");
    }
}

#[tokio::test]
async fn token_and_userinfo_grant_cors_only_to_the_clients_web_origins() {
    let srv = TestServer::start().await;
    srv.add_user("alice").await;
    let spa = srv
        .add_client(ClientOpts {
            auth_method: ClientAuthMethod::None,
            redirect_uris: vec![format!("{SPA}/callback")],
            skip_consent: true,
            ..Default::default()
        })
        .await;
    let b = srv.browser();
    let (code, _, verifier) = srv.sign_in(&b, &spa, "alice", "openid").await;
    let token = |origin: Option<&'static str>, code: String, verifier: String| {
        let mut req = srv.http.post(srv.url("/token")).form(&[
            ("grant_type", "authorization_code".to_string()),
            ("code", code),
            ("redirect_uri", spa.redirect_uri.clone()),
            ("code_verifier", verifier),
            ("client_id", spa.id.clone()),
        ]);
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        req.send()
    };
    let r = token(Some(SPA), code, verifier).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(acao(&r).as_deref(), Some(SPA), "the SPA's origin may read its tokens");
    assert!(r.headers()["vary"].to_str().unwrap().contains("Origin"));
    assert!(r.headers().get("access-control-allow-credentials").is_none());
    let t: Value = r.json().await.unwrap();
    let at = t["access_token"].as_str().unwrap().to_string();

    let r = srv.http.get(srv.url("/userinfo")).bearer_auth(&at).header("origin", SPA).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(acao(&r).as_deref(), Some(SPA));
    // A foreign origin gets no grant (the browser blocks it), though the request is served.
    let r = srv.http.get(srv.url("/userinfo")).bearer_auth(&at).header("origin", EVIL).send().await.unwrap();
    assert!(acao(&r).is_none());
    // No Origin (not a browser): no CORS headers at all.
    let r = srv.http.get(srv.url("/userinfo")).bearer_auth(&at).send().await.unwrap();
    assert!(acao(&r).is_none());

    // Errors to the SPA are readable too (it must see invalid_grant).
    let r = token(Some(SPA), "bogus".into(), "x".repeat(43)).await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(acao(&r).as_deref(), Some(SPA));
    let r = token(Some(EVIL), "bogus".into(), "x".repeat(43)).await.unwrap();
    assert!(acao(&r).is_none());
}

#[tokio::test]
async fn registered_web_origins_replace_the_redirect_uri_origins_and_cover_revoke_and_introspect() {
    let srv = TestServer::start().await;
    let c = srv
        .add_client(ClientOpts {
            grant_types: vec![GrantType::ClientCredentials],
            scopes: vec!["api".into()],
            ..Default::default()
        })
        .await;
    let mut rec = srv.state().store.get_client(&c.id).await.unwrap().unwrap();
    rec.metadata.insert("web_origins".into(), serde_json::json!(["https://console.example"]));
    srv.update_client(&rec).await;
    let t: Value = srv.token(&c, &[("grant_type", "client_credentials")]).await.json().await.unwrap();
    let at = t["access_token"].as_str().unwrap();
    for path in ["/introspect", "/revoke"] {
        let r = srv
            .http
            .post(srv.url(path))
            .basic_auth(&c.id, c.secret.as_deref())
            .header("origin", "https://console.example")
            .form(&[("token", at)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(acao(&r).as_deref(), Some("https://console.example"), "{path}");
        let r = srv
            .http
            .post(srv.url(path))
            .basic_auth(&c.id, c.secret.as_deref())
            .header("origin", "https://rp.example")
            .form(&[("token", at)])
            .send()
            .await
            .unwrap();
        assert!(acao(&r).is_none(), "{path}: the redirect URI origin no longer counts");
    }
}

#[tokio::test]
async fn authorization_and_login_endpoints_are_never_cors_endpoints() {
    let srv = TestServer::start().await;
    for path in ["/authorize", "/login", "/consent", "/logout"] {
        let r = srv.http.get(srv.url(path)).header("origin", SPA).send().await.unwrap();
        assert!(acao(&r).is_none(), "{path}");
        let r = srv
            .http
            .request(reqwest::Method::OPTIONS, srv.url(path))
            .header("origin", SPA)
            .header("access-control-request-method", "POST")
            .send()
            .await
            .unwrap();
        assert!(acao(&r).is_none(), "{path}");
    }
}
