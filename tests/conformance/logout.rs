//! RP-Initiated Logout OP (`oidcc-rp-initiated-logout-certification-test-plan`) and
//! Back-Channel Logout OP (`oidcc-backchannel-rp-initiated-logout-certification-test-plan`).
use crate::support::{Browser, ClientOpts, Landing, RegisteredClient, TestServer, authorize_url, query_param};
use serde_json::Value;
use std::sync::{Arc, Mutex};

const BYE: &str = "https://rp.example/bye";

struct Rp {
    srv: TestServer,
    c: RegisteredClient,
    b: Browser,
    id_token: String,
}

async fn signed_in_rp(dev: bool) -> Rp {
    let srv = TestServer::start_with(|s| s.development_mode = dev).await;
    srv.add_user("alice").await;
    let c = srv.add_client(ClientOpts { skip_consent: true, ..Default::default() }).await;
    let mut rec = srv.state().store.get_client(&c.id).await.unwrap().unwrap();
    rec.post_logout_redirect_uris = vec![BYE.into()];
    srv.update_client(&rec).await;
    let b = srv.browser();
    let (code, _, v) = srv.sign_in(&b, &c, "alice", "openid").await;
    let t: Value = srv.redeem(&c, &code, &v).await.json().await.unwrap();
    let id_token = t["id_token"].as_str().unwrap().to_string();
    Rp { srv, c, b, id_token }
}

impl Rp {
    fn logout(&self, params: &[(&str, &str)]) -> String {
        let mut u = url::Url::parse(&self.srv.url("/logout")).unwrap();
        u.query_pairs_mut().extend_pairs(params);
        u.to_string()
    }

    async fn still_signed_in(&self) -> bool {
        let (url, ..) = authorize_url(&self.srv.base, &self.c, "openid", &[("prompt", "none")]);
        let Landing::Client(loc) = self.b.navigate(&url).await else { panic!() };
        query_param(&loc, "error").is_none()
    }

    /// Confirm on the logout page (the OP could not trust the request).
    async fn confirm(&self, l: Landing) -> Landing {
        let Landing::Page(200, _, body) = l else { panic!("expected the confirmation page, got {l:?}") };
        let mut form: Vec<(String, String)> = Vec::new();
        let mut rest = body.as_str();
        while let Some(i) = rest.find("type=\"hidden\" name=\"") {
            rest = &rest[i + 20..];
            let name = rest[..rest.find('"').unwrap()].to_string();
            let v = crate::support::hidden(&body, &name).unwrap_or_default();
            form.push((name, v));
        }
        let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        self.b.submit("/logout", &pairs).await
    }
}

#[tokio::test]
async fn oidcc_rp_initiated_logout_discovery_endpoint_verification() {
    let srv = TestServer::start().await;
    let d = srv.get_json("/.well-known/openid-configuration").await;
    assert_eq!(d["end_session_endpoint"], srv.url("/logout"));
}

#[tokio::test]
async fn oidcc_rp_initiated_logout() {
    let rp = signed_in_rp(false).await;
    let l = rp
        .b
        .navigate(&rp.logout(&[("id_token_hint", &rp.id_token), ("post_logout_redirect_uri", BYE), ("state", "bye1")]))
        .await;
    let Landing::Client(loc) = l else { panic!("{l:?}") };
    assert!(loc.starts_with(BYE));
    assert_eq!(query_param(&loc, "state").as_deref(), Some("bye1"));
    assert!(!rp.still_signed_in().await, "the session ended");
}

#[tokio::test]
async fn oidcc_rp_initiated_logout_bad_post_logout_redirect_uri() {
    let rp = signed_in_rp(false).await;
    let l =
        rp.b.navigate(
            &rp.logout(&[("id_token_hint", &rp.id_token), ("post_logout_redirect_uri", "https://evil.example/bye")]),
        )
        .await;
    assert!(matches!(l, Landing::Page(..)), "never redirected to an unregistered URI: {l:?}");
}

#[tokio::test]
async fn oidcc_rp_initiated_logout_query_added_to_post_logout_redirect_uri() {
    let rp = signed_in_rp(false).await;
    let l =
        rp.b.navigate(
            &rp.logout(&[("id_token_hint", &rp.id_token), ("post_logout_redirect_uri", "https://rp.example/bye?x=1")]),
        )
        .await;
    assert!(matches!(l, Landing::Page(..)), "{l:?}");
}

#[tokio::test]
async fn oidcc_rp_initiated_logout_modified_id_token_hint() {
    let rp = signed_in_rp(false).await;
    let mut parts: Vec<String> = rp.id_token.split('.').map(str::to_owned).collect();
    parts[2] = format!("{}AAAA", &parts[2][..parts[2].len() - 4]);
    let bad = parts.join(".");
    let r =
        rp.b.http.get(rp.logout(&[("id_token_hint", &bad), ("post_logout_redirect_uri", BYE)])).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("location").is_none());
}

#[tokio::test]
async fn oidcc_rp_initiated_logout_bad_id_token_hint() {
    let rp = signed_in_rp(false).await;
    let r =
        rp.b.http
            .get(rp.logout(&[("id_token_hint", "not-a-jwt"), ("post_logout_redirect_uri", BYE)]))
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("location").is_none());
}

#[tokio::test]
async fn oidcc_rp_initiated_logout_no_id_token_hint() {
    // Without a hint (or client_id) the client cannot be identified: no redirect; the user confirms.
    let rp = signed_in_rp(false).await;
    let l = rp.b.navigate(&rp.logout(&[("post_logout_redirect_uri", BYE), ("state", "s")])).await;
    assert!(matches!(l, Landing::Page(200, ..)), "{l:?}");
    let after = rp.confirm(l).await;
    assert!(!matches!(after, Landing::Client(_)), "not redirected to an unidentified client's URI");
    assert!(!rp.still_signed_in().await);
}

#[tokio::test]
async fn oidcc_rp_initiated_logout_no_params() {
    let rp = signed_in_rp(false).await;
    let l = rp.b.navigate(&rp.logout(&[])).await;
    let after = rp.confirm(l).await;
    assert!(matches!(after, Landing::Page(200, ..)));
    assert!(!rp.still_signed_in().await);
}

#[tokio::test]
async fn oidcc_rp_initiated_logout_no_post_logout_redirect_uri() {
    let rp = signed_in_rp(false).await;
    let l = rp.b.navigate(&rp.logout(&[("id_token_hint", &rp.id_token)])).await;
    assert!(matches!(l, Landing::Page(200, ..)), "a signed-out page: {l:?}");
    assert!(!rp.still_signed_in().await);
}

#[tokio::test]
async fn oidcc_rp_initiated_logout_no_state() {
    let rp = signed_in_rp(false).await;
    let Landing::Client(loc) =
        rp.b.navigate(&rp.logout(&[("id_token_hint", &rp.id_token), ("post_logout_redirect_uri", BYE)])).await
    else {
        panic!()
    };
    assert!(query_param(&loc, "state").is_none());
}

#[tokio::test]
async fn oidcc_rp_initiated_logout_only_state() {
    let rp = signed_in_rp(false).await;
    let l = rp.b.navigate(&rp.logout(&[("state", "only")])).await;
    assert!(matches!(l, Landing::Page(200, ..)), "no redirect with only a state: {l:?}");
}

#[tokio::test]
async fn oidcc_backchannel_logout_discovery_endpoint_verification() {
    let srv = TestServer::start().await;
    let d = srv.get_json("/.well-known/openid-configuration").await;
    assert_eq!(d["backchannel_logout_supported"], true);
    assert_eq!(d["backchannel_logout_session_supported"], true);
}

#[tokio::test]
async fn oidcc_backchannel_rp_initiated_logout() {
    let rp = signed_in_rp(true).await;
    // The RP's back-channel endpoint, on loopback.
    let got: Arc<Mutex<Vec<String>>> = Arc::default();
    let g = got.clone();
    let app = axum::Router::new().route(
        "/bc",
        axum::routing::post(move |body: String| {
            let g = g.clone();
            async move {
                g.lock().unwrap().push(body);
                "ok"
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    let mut rec = rp.srv.state().store.get_client(&rp.c.id).await.unwrap().unwrap();
    rec.backchannel_logout_uri = Some(format!("http://{addr}/bc"));
    rp.srv.update_client(&rec).await;

    let l = rp.b.navigate(&rp.logout(&[("id_token_hint", &rp.id_token), ("post_logout_redirect_uri", BYE)])).await;
    assert!(matches!(l, Landing::Client(_)));
    latchkey::jobs::deliver_logouts(rp.srv.state()).await;
    let bodies = got.lock().unwrap().clone();
    assert_eq!(bodies.len(), 1);
    let token =
        url::form_urlencoded::parse(bodies[0].as_bytes()).find(|(k, _)| k == "logout_token").unwrap().1.into_owned();
    let claims = rp.srv.state().keys.verify(&token).unwrap();
    let id = rp.srv.state().keys.verify(&rp.id_token).unwrap();
    assert_eq!(claims["aud"], rp.c.id.as_str());
    assert_eq!(claims["sid"], id["sid"]);
    assert!(claims["events"]["http://schemas.openid.net/event/backchannel-logout"].is_object());
    assert!(claims.get("nonce").is_none());
}
