//! A single-page app on another origin (another loopback port), registered as a public client:
//! in Chromium it starts the code flow with PKCE S256 (crypto.subtle), the person signs in on
//! the real login and consent pages, and the app redeems the code and calls UserInfo with
//! `fetch` across origins (CORS), then shows what it got, groups and roles included.

use crate::driver::{Browser, Options, STEP};
use crate::flows::{approve, submit_login};
use crate::support::{ClientOpts, PASSWORD, TestServer};
use axum::Router;
use axum::response::IntoResponse;
use axum::routing::get;
use fantoccini::Locator;
use latchkey_core::model::{ClientAuthMethod, Group, RoleGrant, RoleHolder};
use serde_json::{Value, json};

const INDEX_HTML: &str = include_str!("spa/index.html");
const APP_JS: &str = include_str!("spa/app.js");

/// Serve the app from `listener`: its page (at `/` and at the redirect URI `/callback`), its
/// script, and its configuration. Its own CSP allows scripts from itself only and `fetch` to
/// itself and the issuer: no inline script anywhere.
fn serve_spa(listener: tokio::net::TcpListener, config: Value, issuer: &str) -> tokio::task::JoinHandle<()> {
    let csp = format!("default-src 'self'; script-src 'self'; connect-src 'self' {issuer}; frame-ancestors 'none'");
    let page = move || {
        let csp = csp.clone();
        async move {
            (
                [
                    (axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8".to_owned()),
                    (axum::http::header::CONTENT_SECURITY_POLICY, csp),
                ],
                INDEX_HTML,
            )
        }
    };
    let app = Router::new()
        .route("/", get(page.clone()))
        .route("/callback", get(page))
        .route(
            "/app.js",
            get(|| async { ([(axum::http::header::CONTENT_TYPE, "text/javascript; charset=utf-8")], APP_JS) }),
        )
        .route("/config.json", get(move || async move { axum::Json(config).into_response() }));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    })
}

#[tokio::test]
async fn single_page_app_signs_in_with_pkce_and_reads_userinfo_across_origins() {
    let srv = TestServer::start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    assert_ne!(origin, srv.base, "the app is on another origin than the issuer");
    let redirect_uri = format!("{origin}/callback");
    // A public client; its CORS web origin defaults to its redirect URI's origin.
    let client = srv
        .add_client(ClientOpts {
            auth_method: ClientAuthMethod::None,
            redirect_uris: vec![redirect_uri.clone()],
            ..Default::default()
        })
        .await;
    let alice = srv.add_user("alice").await;
    let store = &srv.state().store;
    for name in ["eng", "ops"] {
        store.create_group(&Group { id: format!("g-{name}"), name: name.into(), created_at: 1 }).await.unwrap();
    }
    store.set_user_groups(&alice.id, &["ops".into(), "eng".into()]).await.unwrap().unwrap();
    let other = srv.add_client(ClientOpts::default()).await;
    for g in [
        RoleGrant { role: "reader".into(), holder: RoleHolder::Group("g-eng".into()), client_id: None },
        RoleGrant {
            role: "spa-admin".into(),
            holder: RoleHolder::User(alice.id.clone()),
            client_id: Some(client.id.clone()),
        },
        // Another client's role never reaches this app.
        RoleGrant { role: "elsewhere".into(), holder: RoleHolder::User(alice.id.clone()), client_id: Some(other.id) },
    ] {
        store.grant_role(&g, 1).await.unwrap();
    }

    let config = json!({
        "issuer": srv.base,
        "client_id": client.id,
        "redirect_uri": redirect_uri,
        "scope": "openid email groups roles",
    });
    let spa = serve_spa(listener, config, &srv.base);

    let b = Browser::launch(Options::default()).await;
    b.goto(&format!("{origin}/")).await;
    b.click("start").await;
    submit_login(&b, "alice", PASSWORD).await;
    b.wait_id("approve").await;
    let scopes = b.text("#scopes").await;
    assert!(scopes.contains("See your group memberships"), "consent page: {scopes}");
    assert!(scopes.contains("See your roles in this application"), "consent page: {scopes}");
    approve(&b).await;

    // Back on the app, which finishes the flow in JavaScript.
    let end = match b.client.wait().at_most(STEP).for_element(Locator::Css("#done, #error")).await {
        Ok(e) => e,
        Err(e) => panic!("the app did not finish: {e}\npage:\n{}", b.client.source().await.unwrap_or_default()),
    };
    let id = end.attr("id").await.unwrap().unwrap_or_default();
    if id == "error" {
        panic!("the app failed: {}", end.text().await.unwrap());
    }
    let url = b.url().await;
    assert_eq!(url.as_str(), redirect_uri, "the app removed the code from the address bar");

    let json_of = |s: String| serde_json::from_str::<Value>(&s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"));
    assert_eq!(b.text("#scope").await, "email groups openid roles");
    // The ID token the app received is ours, and says what the app decoded.
    let id_token = b.text("#id-token").await;
    let verified = Value::Object(srv.state().keys.verify(&id_token).expect("a valid ID token"));
    let claims = json_of(b.text("#id-token-claims").await);
    assert_eq!(claims, verified);
    assert_eq!(claims["sub"], alice.id.as_str());
    assert_eq!(claims["aud"], client.id.as_str());
    assert_eq!(claims["groups"], json!(["eng", "ops"]));
    assert_eq!(claims["roles"], json!(["reader", "spa-admin"]));

    let userinfo = json_of(b.text("#userinfo").await);
    assert_eq!(userinfo["sub"], alice.id.as_str(), "{userinfo}");
    assert_eq!(userinfo["email"], "alice@example.com", "{userinfo}");
    assert_eq!(userinfo["groups"], json!(["eng", "ops"]), "{userinfo}");
    assert_eq!(userinfo["roles"], json!(["reader", "spa-admin"]), "{userinfo}");

    b.close().await;
    spa.abort();
}
