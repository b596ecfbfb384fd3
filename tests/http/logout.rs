//! OpenID Connect RP-Initiated Logout 1.0 (`/logout` as end_session_endpoint) and Back-Channel
//! Logout 1.0 (logout tokens from a durable outbox).
use crate::support::{
    Browser, ClientOpts, Landing, RegisteredClient, TestServer, authorize_url, cli, hidden, query_param, stderr,
};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use latchkey_core::Clock;
use latchkey_core::model::{Client, SigningAlg};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

const BYE: &str = "https://rp.example/bye";
const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// Change a stored client.
async fn update_client(srv: &TestServer, id: &str, f: impl FnOnce(&mut Client)) {
    let mut c = srv.state().store.get_client(id).await.unwrap().unwrap();
    f(&mut c);
    assert!(srv.update_client(&c).await);
}

/// A client registering `BYE` as its post_logout_redirect_uri.
async fn rp(srv: &TestServer) -> RegisteredClient {
    let c = srv.add_client(ClientOpts { skip_consent: true, ..Default::default() }).await;
    update_client(srv, &c.id, |c| c.post_logout_redirect_uris = vec![BYE.into()]).await;
    c
}

/// Sign `user` in at `c` in browser `b` and return the ID token.
async fn id_token(srv: &TestServer, b: &Browser, c: &RegisteredClient, user: &str) -> String {
    let (code, _, verifier) = srv.sign_in(b, c, user, "openid").await;
    let t: Value = srv.redeem(c, &code, &verifier).await.json().await.unwrap();
    t["id_token"].as_str().unwrap().to_string()
}

fn claims_of(srv: &TestServer, jwt: &str) -> serde_json::Map<String, Value> {
    srv.state().keys.verify(jwt).unwrap()
}

fn logout_url(srv: &TestServer, params: &[(&str, &str)]) -> String {
    let mut u = url::Url::parse(&srv.url("/logout")).unwrap();
    u.query_pairs_mut().extend_pairs(params);
    u.to_string()
}

/// Does the browser still have a session? (prompt=none answers with a code, or login_required.)
async fn signed_in(srv: &TestServer, b: &Browser, c: &RegisteredClient) -> bool {
    let (url, ..) = authorize_url(&srv.base, c, "openid", &[("prompt", "none")]);
    let Landing::Client(loc) = b.navigate(&url).await else { panic!("prompt=none must go back to the client") };
    match query_param(&loc, "error").as_deref() {
        None => true,
        Some("login_required") => false,
        Some(other) => panic!("unexpected {other}"),
    }
}

#[tokio::test]
async fn discovery_advertises_the_end_session_endpoint_and_back_channel_logout() {
    let srv = TestServer::start().await;
    let doc = srv.get_json("/.well-known/openid-configuration").await;
    assert_eq!(doc["end_session_endpoint"], srv.url("/logout"));
    assert_eq!(doc["backchannel_logout_supported"], true);
    assert_eq!(doc["backchannel_logout_session_supported"], true);
}

#[tokio::test]
async fn valid_hint_and_registered_post_logout_redirect_uri_end_the_session_and_return_with_state() {
    let srv = TestServer::start().await;
    srv.add_user("alice").await;
    let c = rp(&srv).await;
    let b = srv.browser();
    let id = id_token(&srv, &b, &c, "alice").await;
    // RP-Initiated Logout §2: an expired hint is still a hint.
    srv.clock.advance(2 * 3600);
    assert!(signed_in(&srv, &b, &c).await);
    let url = logout_url(
        &srv,
        &[("id_token_hint", &id), ("post_logout_redirect_uri", BYE), ("state", "s 1&x"), ("ui_locales", "en")],
    );
    let r = b.http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    assert!(loc.starts_with(&format!("{BYE}?")), "{loc}");
    assert_eq!(query_param(&loc, "state").as_deref(), Some("s 1&x"));
    let cleared = r.headers().get_all("set-cookie").iter().any(|v| {
        let v = v.to_str().unwrap();
        v.starts_with("latchkey_session=;") && v.contains("Max-Age=0")
    });
    assert!(cleared, "the session cookie is cleared");
    assert!(!signed_in(&srv, &b, &c).await, "the session ended");

    // The same by POST (RP-Initiated Logout §2), with client_id agreeing with the hint, and no state.
    let id = id_token(&srv, &b, &c, "alice").await;
    let form = [("id_token_hint", id.as_str()), ("client_id", c.id.as_str()), ("post_logout_redirect_uri", BYE)];
    let Landing::Client(loc) = b.submit("/logout", &form).await else { panic!() };
    assert_eq!(loc, BYE);
    assert!(!signed_in(&srv, &b, &c).await);

    // A relying party's cross-site POST arrives without the SameSite=Lax cookie: it becomes the
    // same request as a top-level GET, which carries the cookie.
    let r = srv.http.post(srv.url("/logout")).form(&form).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let loc = r.headers()["location"].to_str().unwrap();
    assert!(loc.starts_with("/logout?"), "{loc}");
    assert_eq!(query_param(&srv.url(loc), "id_token_hint").as_deref(), Some(id.as_str()));
    assert_eq!(query_param(&srv.url(loc), "post_logout_redirect_uri").as_deref(), Some(BYE));
}

#[tokio::test]
async fn an_unregistered_or_unidentified_post_logout_redirect_uri_is_never_followed() {
    let srv = TestServer::start().await;
    srv.add_user("alice").await;
    let c = rp(&srv).await;
    let other = rp(&srv).await;
    update_client(&srv, &other.id, |o| o.post_logout_redirect_uris = vec!["https://other.example/bye".into()]).await;
    let b = srv.browser();
    for uri in [
        "https://evil.example/bye",
        "https://rp.example/bye/",
        "https://rp.example/bye?x=1",
        "https://other.example/bye",
    ] {
        let id = id_token(&srv, &b, &c, "alice").await;
        let l = b.navigate(&logout_url(&srv, &[("id_token_hint", &id), ("post_logout_redirect_uri", uri)])).await;
        let Landing::Page(200, _, body) = l else { panic!("{uri} was followed: {l:?}") };
        assert!(body.contains("Signed out") && body.contains("not registered"), "{body}");
        assert!(!signed_in(&srv, &b, &c).await, "a trusted logout still ends the session");
    }

    // Registered, but nobody says for which client: never followed, even after confirmation.
    id_token(&srv, &b, &c, "alice").await;
    let l = b.navigate(&logout_url(&srv, &[("post_logout_redirect_uri", BYE), ("state", "s")])).await;
    let Landing::Page(200, _, body) = l else { panic!("{l:?}") };
    assert!(body.contains("Sign out?"));
    assert!(hidden(&body, "post_logout_redirect_uri").is_none(), "an unverified URI is not carried");
    let csrf = hidden(&body, "csrf").unwrap();
    let l = b.submit("/logout", &[("csrf", &csrf), ("post_logout_redirect_uri", BYE), ("state", "s")]).await;
    assert!(matches!(&l, Landing::Page(200, _, body) if body.contains("Signed out")), "{l:?}");
    assert!(!signed_in(&srv, &b, &c).await);

    // Without a session too: an unregistered URI is not a redirector.
    let l = srv
        .browser()
        .navigate(&logout_url(&srv, &[("client_id", &c.id), ("post_logout_redirect_uri", "https://evil.example/")]))
        .await;
    assert!(matches!(l, Landing::Page(200, ..)), "{l:?}");
}

#[tokio::test]
async fn an_invalid_id_token_hint_or_mismatching_client_id_is_an_error_page_never_a_redirect() {
    let srv = TestServer::start().await;
    srv.add_user("alice").await;
    let c = rp(&srv).await;
    let other = rp(&srv).await;
    let b = srv.browser();
    let id = id_token(&srv, &b, &c, "alice").await;
    let claims = claims_of(&srv, &id);
    let now = srv.clock.now();
    let sign = |typ: &str, claims: &serde_json::Map<String, Value>| {
        srv.state().keys.sign(SigningAlg::RS256, typ, &Value::Object(claims.clone()), now).unwrap().token
    };
    // Control: the same claims re-signed as an ID token are a valid hint (checked last, it ends the session).
    let valid = sign("JWT", &claims);
    let mut foreign = claims.clone();
    foreign.insert("iss".into(), json!("https://elsewhere.example"));
    let mut tampered = id.clone();
    tampered.push('x');
    let mut userinfo_shaped = claims.clone();
    userinfo_shaped.retain(|k, _| ["iss", "sub", "aud"].contains(&k.as_str()));
    let cases: Vec<(&str, Vec<(&str, String)>)> = vec![
        ("garbage", vec![("id_token_hint", "not.a.jwt".into())]),
        ("bad signature", vec![("id_token_hint", tampered)]),
        ("another issuer", vec![("id_token_hint", sign("JWT", &foreign))]),
        ("not an ID token (typ at+jwt)", vec![("id_token_hint", sign("at+jwt", &claims))]),
        ("not an ID token (typ logout+jwt)", vec![("id_token_hint", sign("logout+jwt", &claims))]),
        // Issue 7: a signed UserInfo response is `typ: JWT` too, but has no iat/exp.
        ("not an ID token (signed UserInfo)", vec![("id_token_hint", sign("JWT", &userinfo_shaped))]),
        ("client_id of another client", vec![("id_token_hint", id.clone()), ("client_id", other.id.clone())]),
        ("unknown client_id", vec![("client_id", "nobody".into())]),
    ];
    for (what, mut params) in cases {
        params.push(("post_logout_redirect_uri", BYE.into()));
        params.push(("state", "s".into()));
        let pairs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = b.http.get(logout_url(&srv, &pairs)).send().await.unwrap();
        assert_eq!(r.status(), 400, "{what}");
        assert!(r.headers().get("location").is_none(), "{what}");
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"), "{what}");
        let body = r.text().await.unwrap();
        assert!(body.contains("Sign-out request not accepted") && body.contains("invalid_request"), "{what}");
        // And by POST.
        let r = b.http.post(srv.url("/logout")).form(&pairs).send().await.unwrap();
        assert_eq!(r.status(), 400, "{what} (POST)");
        assert!(signed_in(&srv, &b, &c).await, "{what}: the session must survive");
    }
    let Landing::Client(loc) =
        b.navigate(&logout_url(&srv, &[("id_token_hint", &valid), ("post_logout_redirect_uri", BYE)])).await
    else {
        panic!("the control hint must be accepted")
    };
    assert_eq!(loc, BYE);
}

#[tokio::test]
async fn without_a_trusted_hint_the_user_confirms_on_a_csrf_protected_form() {
    let srv = TestServer::start().await;
    srv.add_user("alice").await;
    srv.add_user("bob").await;
    let c = rp(&srv).await;
    let b = srv.browser();
    id_token(&srv, &b, &c, "alice").await;

    // No hint: the confirmation page, carrying the RP's parameters; nothing ended yet.
    let url = logout_url(
        &srv,
        &[("client_id", &c.id), ("post_logout_redirect_uri", BYE), ("state", "st"), ("logout_hint", "alice")],
    );
    let Landing::Page(200, _, body) = b.navigate(&url).await else { panic!() };
    assert!(body.contains("Sign out?") && body.contains("alice") && body.contains("Test RP"), "{body}");
    assert_eq!(hidden(&body, "client_id").as_deref(), Some(c.id.as_str()));
    assert_eq!(hidden(&body, "post_logout_redirect_uri").as_deref(), Some(BYE));
    assert_eq!(hidden(&body, "state").as_deref(), Some("st"));
    assert!(signed_in(&srv, &b, &c).await, "a GET without a trusted hint ends nothing");

    // A hint for another user than the signed-in one is not trusted either.
    let bob = srv.browser();
    let bobs = id_token(&srv, &bob, &c, "bob").await;
    let Landing::Page(200, _, other) = b.navigate(&logout_url(&srv, &[("id_token_hint", &bobs)])).await else {
        panic!()
    };
    assert!(other.contains("Sign out?") && other.contains("alice"));
    assert!(signed_in(&srv, &b, &c).await);

    let form = |csrf: &str| {
        vec![
            ("csrf", csrf.to_string()),
            ("client_id", hidden(&body, "client_id").unwrap()),
            ("post_logout_redirect_uri", hidden(&body, "post_logout_redirect_uri").unwrap()),
            ("state", hidden(&body, "state").unwrap()),
        ]
    };
    // Without the CSRF cookie (another browser) or with a wrong token: refused.
    let csrf = hidden(&body, "csrf").unwrap();
    let l = srv.browser().submit("/logout", &borrow(&form(&csrf))).await;
    assert!(matches!(l, Landing::Page(400, ..)), "{l:?}");
    let l = b.submit("/logout", &borrow(&form("wrong"))).await;
    assert!(matches!(l, Landing::Page(400, ..)), "{l:?}");
    assert!(signed_in(&srv, &b, &c).await);

    // Confirmed: the session ends and the RP gets its state back.
    let Landing::Client(loc) = b.submit("/logout", &borrow(&form(&csrf))).await else { panic!() };
    assert!(loc.starts_with(BYE));
    assert_eq!(query_param(&loc, "state").as_deref(), Some("st"));
    assert!(!signed_in(&srv, &b, &c).await);
    assert!(signed_in(&srv, &bob, &c).await, "other users' sessions are untouched");

    // A tampered hidden redirect is checked again on confirmation.
    id_token(&srv, &b, &c, "alice").await;
    let Landing::Page(200, _, body) = b.navigate(&logout_url(&srv, &[("client_id", &c.id)])).await else { panic!() };
    let csrf = hidden(&body, "csrf").unwrap();
    let tampered =
        [("csrf", csrf.as_str()), ("client_id", c.id.as_str()), ("post_logout_redirect_uri", "https://evil.example/")];
    let l = b.submit("/logout", &tampered).await;
    assert!(matches!(l, Landing::Page(200, ..)), "{l:?}");
    assert!(!signed_in(&srv, &b, &c).await);
}

fn borrow<'a>(v: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    v.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

// ---- Back-Channel Logout ----

#[derive(Debug, Clone)]
struct Delivery {
    path: String,
    content_type: String,
    body: String,
}

impl Delivery {
    fn logout_token(&self) -> String {
        url::form_urlencoded::parse(self.body.as_bytes())
            .find(|(k, _)| k == "logout_token")
            .map(|(_, v)| v.into_owned())
            .expect("a logout_token parameter")
    }
}

/// A relying party's back-channel endpoint on 127.0.0.1: records every POST and answers the
/// scripted statuses in turn, then 200.
struct Receiver {
    base: String,
    got: Arc<Mutex<Vec<Delivery>>>,
}

impl Receiver {
    async fn start(script: &[u16]) -> Receiver {
        let got = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(script.iter().copied().collect::<VecDeque<u16>>()));
        let (g, s) = (got.clone(), script.clone());
        let app =
            axum::Router::new().fallback(move |uri: axum::http::Uri, headers: axum::http::HeaderMap, body: String| {
                let (g, s) = (g.clone(), s.clone());
                async move {
                    let content_type =
                        headers.get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
                    g.lock().unwrap().push(Delivery { path: uri.path().to_string(), content_type, body });
                    let status = s.lock().unwrap().pop_front().unwrap_or(200);
                    (axum::http::StatusCode::from_u16(status).unwrap(), "")
                }
            });
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
        Receiver { base: format!("http://{addr}"), got }
    }

    fn deliveries(&self) -> Vec<Delivery> {
        self.got.lock().unwrap().clone()
    }
}

async fn with_backchannel(srv: &TestServer, c: &RegisteredClient, uri: &str) {
    let uri = uri.to_string();
    update_client(srv, &c.id, |c| {
        c.backchannel_logout_uri = Some(uri);
        c.backchannel_logout_session_required = true;
    })
    .await;
}

/// Verify a logout token with the independent `jsonwebtoken` crate against /jwks.json and
/// return its header `typ` and claims. `exp` is checked against the server's clock by callers.
async fn verify_logout_token(srv: &TestServer, token: &str, issuer: &str, aud: &str) -> (Option<String>, Value) {
    let set: JwkSet = serde_json::from_value(srv.get_json("/jwks.json").await).unwrap();
    let header = jsonwebtoken::decode_header(token).unwrap();
    let jwk = set.find(header.kid.as_deref().unwrap()).expect("signing key published");
    let mut v = Validation::new(Algorithm::RS256);
    v.set_issuer(&[issuer]);
    v.set_audience(&[aud]);
    v.validate_exp = false;
    v.set_required_spec_claims(&["iss", "aud", "exp"]);
    let data = jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(jwk).unwrap(), &v).unwrap();
    (header.typ, data.claims)
}

#[tokio::test]
async fn a_participating_relying_party_receives_a_verifiable_logout_token() {
    let srv = TestServer::start_with(|s| s.development_mode = true).await;
    let rx = Receiver::start(&[]).await;
    srv.add_user("alice").await;
    let c = rp(&srv).await;
    with_backchannel(&srv, &c, &format!("{}/bc/rp", rx.base)).await;
    // Registered for back-channel logout, but never used in this session.
    let bystander = rp(&srv).await;
    with_backchannel(&srv, &bystander, &format!("{}/bc/bystander", rx.base)).await;
    let b = srv.browser();
    let id = id_token(&srv, &b, &c, "alice").await;
    let id_claims = claims_of(&srv, &id);

    let Landing::Client(_) =
        b.navigate(&logout_url(&srv, &[("id_token_hint", &id), ("post_logout_redirect_uri", BYE)])).await
    else {
        panic!()
    };
    latchkey::jobs::deliver_logouts(srv.state()).await;
    let got = rx.deliveries();
    assert_eq!(got.len(), 1, "exactly one delivery, to the participant: {got:?}");
    let d = &got[0];
    assert_eq!(d.path, "/bc/rp");
    assert_eq!(d.content_type, "application/x-www-form-urlencoded");
    let token = d.logout_token();
    let (typ, lt) = verify_logout_token(&srv, &token, &srv.base, &c.id).await;
    assert_eq!(typ.as_deref(), Some("logout+jwt"));
    assert_eq!(lt["iss"], srv.base.as_str());
    assert_eq!(lt["aud"], c.id.as_str());
    assert_eq!(lt["sid"], id_claims["sid"], "sid equals the ID token's");
    assert_eq!(lt["sub"], id_claims["sub"]);
    assert!(lt["sid"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(lt["events"], json!({ EVENT: {} }));
    assert!(lt["jti"].as_str().is_some_and(|j| j.len() >= 16));
    let iat = lt["iat"].as_i64().unwrap();
    let exp = lt["exp"].as_i64().unwrap();
    assert!((iat - srv.clock.now()).abs() <= 1);
    assert!(exp > iat && exp - iat <= 120, "short-lived: {iat}..{exp}");
    assert!(lt.get("nonce").is_none(), "Back-Channel Logout §2.4: no nonce");

    // Delivered once: later runs send nothing more.
    srv.clock.advance(3600);
    latchkey::jobs::deliver_logouts(srv.state()).await;
    assert_eq!(rx.deliveries().len(), 1);

    // A logout token is no id_token_hint.
    id_token(&srv, &b, &c, "alice").await;
    let r = b.http.get(logout_url(&srv, &[("id_token_hint", &token)])).send().await.unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn a_failing_receiver_gets_the_token_after_backoff_even_across_a_restart() {
    let dev = |s: &mut latchkey_core::Settings| {
        s.development_mode = true;
        s.logout.backchannel_retry_base = 60;
    };
    let srv = TestServer::start_with(dev).await;
    let issuer = srv.base.clone();
    let rx = Receiver::start(&[500, 503, 500]).await;
    srv.add_user("alice").await;
    let c = rp(&srv).await;
    with_backchannel(&srv, &c, &format!("{}/bc", rx.base)).await;
    let b = srv.browser();
    let id = id_token(&srv, &b, &c, "alice").await;
    let sid = claims_of(&srv, &id)["sid"].clone();
    b.navigate(&logout_url(&srv, &[("id_token_hint", &id)])).await;
    let t0 = srv.clock.now();

    latchkey::jobs::deliver_logouts(srv.state()).await;
    assert_eq!(rx.deliveries().len(), 1, "first attempt: 500");
    // logout.backchannel_retry_base = 60 s, doubling: retries at +60, then +120 more, then +240.
    srv.clock.advance(59);
    latchkey::jobs::deliver_logouts(srv.state()).await;
    assert_eq!(rx.deliveries().len(), 1, "not before the backoff");
    srv.clock.advance(1);
    latchkey::jobs::deliver_logouts(srv.state()).await;
    assert_eq!(rx.deliveries().len(), 2, "second attempt: 503");
    srv.clock.advance(119);
    latchkey::jobs::deliver_logouts(srv.state()).await;
    assert_eq!(rx.deliveries().len(), 2, "the delay doubled");
    srv.clock.advance(1);
    latchkey::jobs::deliver_logouts(srv.state()).await;
    assert_eq!(rx.deliveries().len(), 3, "third attempt: 500");

    // Latchkey restarts; the outbox is in the database.
    let (db, master, clock) = srv.stop().await;
    let srv = TestServer::start_on(db, master, clock, dev).await;
    srv.clock.advance(239);
    latchkey::jobs::deliver_logouts(srv.state()).await;
    assert_eq!(rx.deliveries().len(), 3);
    srv.clock.advance(1);
    latchkey::jobs::deliver_logouts(srv.state()).await;
    let got = rx.deliveries();
    assert_eq!(got.len(), 4, "fourth attempt, after the restart: 200");
    let sent_at = srv.clock.now();
    assert_eq!(sent_at, t0 + 420);
    srv.clock.advance(86_400);
    latchkey::jobs::deliver_logouts(srv.state()).await;
    assert_eq!(rx.deliveries().len(), 4, "delivered: never sent again");

    // Every attempt carried the same logout event (jti); the last one, 7 minutes on, is not
    // expired when sent: a token past its short lifetime is signed again.
    let (_, first) = verify_logout_token(&srv, &got[0].logout_token(), &issuer, &c.id).await;
    let (typ, last) = verify_logout_token(&srv, &got[3].logout_token(), &issuer, &c.id).await;
    assert_eq!(typ.as_deref(), Some("logout+jwt"));
    assert_eq!(first["jti"], last["jti"]);
    assert_eq!(first["sid"], sid);
    assert_eq!(last["sid"], sid);
    assert!(first["exp"].as_i64().unwrap() < sent_at, "the first token had expired by then");
    assert_eq!(last["iat"].as_i64().unwrap(), sent_at);
    assert!(last["exp"].as_i64().unwrap() > sent_at);
}

#[tokio::test]
async fn a_private_backchannel_logout_uri_is_never_contacted_outside_development_mode() {
    let srv = TestServer::start_with(|s| s.logout.backchannel_max_attempts = 2).await;
    let rx = Receiver::start(&[]).await;
    srv.add_user("alice").await;
    let c = rp(&srv).await;
    let c2 = rp(&srv).await;
    with_backchannel(&srv, &c, &format!("{}/bc", rx.base)).await;
    with_backchannel(&srv, &c2, &format!("{}/bc", rx.base.replace("http://", "https://"))).await;
    let b = srv.browser();
    id_token(&srv, &b, &c, "alice").await;
    let id = id_token(&srv, &b, &c2, "alice").await;
    b.navigate(&logout_url(&srv, &[("id_token_hint", &id)])).await;
    assert_eq!(crate::support::query_i64(&srv.db, "SELECT COUNT(*) FROM logout_outbox").await, 2, "both queued");
    for _ in 0..3 {
        latchkey::jobs::deliver_logouts(srv.state()).await;
        srv.clock.advance(3600);
    }
    assert!(rx.deliveries().is_empty(), "no request to a private address");
    let given_up =
        "SELECT COUNT(*) FROM logout_outbox WHERE delivered_at = -1 AND attempts = 2 AND last_error IS NOT NULL";
    assert_eq!(crate::support::query_i64(&srv.db, given_up).await, 2, "given up after backchannel_max_attempts");
}

#[tokio::test]
async fn signing_out_everywhere_a_new_login_and_the_cli_tell_every_session_that_ends() {
    let srv = TestServer::start_with(|s| s.development_mode = true).await;
    let rx = Receiver::start(&[]).await;
    let alice = srv.add_user("alice").await;
    let c = rp(&srv).await;
    with_backchannel(&srv, &c, &format!("{}/bc", rx.base)).await;
    let sid_of = |id: &str| claims_of(&srv, id)["sid"].as_str().unwrap().to_string();

    // Two browsers, two sessions; "sign out everywhere" from one ends both.
    let (b1, b2) = (srv.browser(), srv.browser());
    let s1 = sid_of(&id_token(&srv, &b1, &c, "alice").await);
    let s2 = sid_of(&id_token(&srv, &b2, &c, "alice").await);
    let Landing::Page(200, _, body) = b1.navigate("/logout").await else { panic!() };
    let csrf = hidden(&body, "csrf").unwrap();
    b1.submit("/logout", &[("csrf", &csrf), ("everywhere", "on")]).await;
    assert!(!signed_in(&srv, &b2, &c).await);
    latchkey::jobs::deliver_logouts(srv.state()).await;
    let mut sids: Vec<String> = Vec::new();
    for d in rx.deliveries() {
        let (_, lt) = verify_logout_token(&srv, &d.logout_token(), &srv.base, &c.id).await;
        sids.push(lt["sid"].as_str().unwrap().to_string());
    }
    sids.sort();
    let mut want = vec![s1, s2];
    want.sort();
    assert_eq!(sids, want);

    // A new login (prompt=login) ends the session it replaces.
    let s3 = sid_of(&id_token(&srv, &b1, &c, "alice").await);
    let (url, _, _, verifier) = authorize_url(&srv.base, &c, "openid", &[("prompt", "login")]);
    let l = b1.login(b1.navigate(&url).await, "alice", crate::support::PASSWORD).await;
    let Landing::Client(loc) = l else { panic!("{l:?}") };
    let t: Value = srv.redeem(&c, &query_param(&loc, "code").unwrap(), &verifier).await.json().await.unwrap();
    let s3_new = sid_of(t["id_token"].as_str().unwrap());
    latchkey::jobs::deliver_logouts(srv.state()).await;
    let got = rx.deliveries();
    assert_eq!(got.len(), 3);
    let (_, lt) = verify_logout_token(&srv, &got[2].logout_token(), &srv.base, &c.id).await;
    assert_eq!(lt["sid"], s3.as_str());

    // The CLI: a new password ends both remaining sessions; the running server delivers.
    let s4 = sid_of(&id_token(&srv, &b2, &c, "alice").await);
    let env = [("LATCHKEY_MASTER_KEY", srv.master.encode()), ("LATCHKEY_ISSUER", srv.base.clone())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let o = cli(&srv.db, &env, &["user", "set-password", "alice", "--password-stdin"], Some("a new password\n"));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(crate::support::stdout(&o).contains("2 back-channel logouts queued"), "{}", crate::support::stdout(&o));
    assert!(!signed_in(&srv, &b1, &c).await && !signed_in(&srv, &b2, &c).await);
    // The CLI stamped the tokens with the wall clock; the server's clock catches up.
    srv.clock.set(latchkey_core::SystemClock.now() + 5);
    latchkey::jobs::deliver_logouts(srv.state()).await;
    let got = rx.deliveries();
    assert_eq!(got.len(), 5);
    let mut sids = Vec::new();
    for d in &got[3..] {
        let (_, lt) = verify_logout_token(&srv, &d.logout_token(), &srv.base, &c.id).await;
        assert_eq!(lt["sub"], alice.id.as_str());
        sids.push(lt["sid"].as_str().unwrap().to_string());
    }
    sids.sort();
    let mut want = vec![s3_new, s4];
    want.sort();
    assert_eq!(sids, want);
}
