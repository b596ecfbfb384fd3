//! The demo relying party's "Sign in with Latchkey", as a person does it in Chromium.

use crate::driver::{Browser, Options};
use crate::support::{TestDb, TestServer};
use fantoccini::Locator;
use latchkey_core::{ManualClock, Settings};
use latchkey_signer::MasterKey;
use std::collections::BTreeMap;
use std::sync::Arc;

const GENERIC_LOGIN_ERROR: &str = "The username or password is incorrect.";

/// `TestServer::start_demo` with changed settings (as `support`'s private `start_inner` does).
async fn start_demo_with(f: impl FnOnce(&mut Settings)) -> (TestServer, String) {
    let db = Arc::new(TestDb::fresh().await);
    let (clock, master) = (ManualClock::starting_now(), MasterKey::generate());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let mut s = db.settings();
    s.issuer = base.clone();
    s.bind = listener.local_addr().unwrap().to_string();
    f(&mut s);
    s.validate().unwrap();
    let state = latchkey::server::build_state(s, Arc::new(clock.clone()), master.clone()).await.unwrap();
    let info = latchkey::demo::setup(&state).await.unwrap();
    let password = info.new_password.clone().expect("the demo user was just created");
    let server = latchkey::Server::spawn_with(state, listener, Some(&info)).unwrap();
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    (TestServer { base, server: Some(server), clock, db, master, http }, password)
}

/// The demo client's id and the demo user's id (the expected `aud` and `sub`).
async fn demo_ids(srv: &TestServer) -> (String, String) {
    let store = &srv.state().store;
    let clients = store.list_clients().await.unwrap();
    let demo_cb = srv.url("/demo/callback");
    let client = clients.iter().find(|c| c.redirect_uris.contains(&demo_cb)).expect("the demo client is registered");
    let user = store.get_user_by_username("demo").await.unwrap().expect("the demo user exists");
    (client.client_id.clone(), user.id)
}

/// Fill and submit the login form (which must be the current page).
pub(crate) async fn submit_login(b: &Browser, username: &str, password: &str) {
    b.wait_id("sign-in").await;
    assert_eq!(b.url().await.path(), "/login", "expected the login page");
    b.type_into("username", username).await;
    b.type_into("password", password).await;
    b.click("sign-in").await;
}

/// Approve on the consent page (which the previous step must lead to).
pub(crate) async fn approve(b: &Browser) {
    b.wait_id("approve").await;
    assert_eq!(b.url().await.path(), "/consent", "expected the consent page");
    b.click("approve").await;
}

/// The demo's result page: ID token claims by name, and the UserInfo JSON.
async fn result_page(b: &Browser) -> (BTreeMap<String, String>, serde_json::Value) {
    b.wait_id("id-token-claims").await;
    assert_eq!(b.url().await.path(), "/demo/callback");
    let mut claims = BTreeMap::new();
    for dd in b.client.find_all(Locator::Css("#id-token-claims dd[data-claim]")).await.unwrap() {
        let name = dd.attr("data-claim").await.unwrap().expect("data-claim");
        claims.insert(name, dd.text().await.unwrap());
    }
    let userinfo = b.text("#userinfo").await;
    let userinfo: serde_json::Value =
        serde_json::from_str(&userinfo).unwrap_or_else(|e| panic!("the UserInfo block is not JSON ({e}): {userinfo}"));
    (claims, userinfo)
}

/// What the result page must show. With `scope_claims_in_id_token` off (the default) the email is
/// in UserInfo only (OIDC Core §5.4); on, the ID token carries it too.
fn assert_signed_in(
    srv: &TestServer,
    client_id: &str,
    user_id: &str,
    claims: &BTreeMap<String, String>,
    ui: &serde_json::Value,
    scope_claims_in_id_token: bool,
) {
    assert_eq!(claims.get("sub").map(String::as_str), Some(user_id), "sub; claims: {claims:?}");
    assert_eq!(claims.get("iss").map(String::as_str), Some(srv.base.as_str()), "iss");
    assert_eq!(claims.get("aud").map(String::as_str), Some(client_id), "aud");
    let expected_email = scope_claims_in_id_token.then_some("demo@example.com");
    assert_eq!(claims.get("email").map(String::as_str), expected_email, "ID token email");
    assert!(claims.contains_key("nonce") && claims.contains_key("exp") && claims.contains_key("iat"), "{claims:?}");
    assert_eq!(ui["sub"], user_id, "UserInfo sub: {ui}");
    assert_eq!(ui["email"], "demo@example.com", "UserInfo email: {ui}");
}

#[tokio::test]
async fn demo_sign_in_shows_verified_claims_and_userinfo() {
    let (srv, password) = start_demo_with(|s| s.id_token.scope_claims_in_id_token = true).await;
    let (client_id, user_id) = demo_ids(&srv).await;
    let b = Browser::launch(Options::default()).await;

    b.goto(&srv.url("/demo")).await;
    b.click("sign-in-with-latchkey").await;
    submit_login(&b, "demo", &password).await;
    approve(&b).await;
    let (claims, ui) = result_page(&b).await;
    assert_signed_in(&srv, &client_id, &user_id, &claims, &ui, true);
    // The scopes the demo asks for were granted: their claims are in UserInfo.
    assert_eq!(ui["name"], "Dee Mo", "{ui}");
    assert_eq!(ui["address"]["locality"], "London", "{ui}");
    b.close().await;
}

#[tokio::test]
async fn wrong_password_shows_the_generic_error_then_the_right_one_works() {
    let (srv, password) = TestServer::start_demo().await;
    let (client_id, user_id) = demo_ids(&srv).await;
    let b = Browser::launch(Options::default()).await;

    b.goto(&srv.url("/demo")).await;
    b.click("sign-in-with-latchkey").await;
    submit_login(&b, "nobody", "whatever-password").await;
    let unknown_user = b.wait_id("login-error").await.text().await.unwrap();
    assert_eq!(b.url().await.path(), "/login", "stays on the login page");

    submit_login(&b, "demo", "not-the-password").await;
    let wrong_password = b.wait_id("login-error").await.text().await.unwrap();
    assert_eq!(b.url().await.path(), "/login", "stays on the login page");
    assert_eq!(wrong_password, GENERIC_LOGIN_ERROR);
    assert_eq!(unknown_user, wrong_password, "an unknown user and a wrong password look the same");
    let typed = b.wait_id("password").await.prop("value").await.unwrap().unwrap_or_default();
    assert_eq!(typed, "", "the password is not echoed back");

    submit_login(&b, "demo", &password).await;
    approve(&b).await;
    let (claims, ui) = result_page(&b).await;
    assert_signed_in(&srv, &client_id, &user_id, &claims, &ui, false);
    b.close().await;
}

#[tokio::test]
async fn deny_at_consent_returns_access_denied_to_the_demo() {
    let (srv, password) = TestServer::start_demo().await;
    let b = Browser::launch(Options::default()).await;

    b.goto(&srv.url("/demo")).await;
    b.click("sign-in-with-latchkey").await;
    submit_login(&b, "demo", &password).await;
    b.wait_id("deny").await;
    assert_eq!(b.url().await.path(), "/consent");
    b.click("deny").await;

    // The demo's callback received the error response and shows an error page.
    let body = b.client.wait().at_most(crate::driver::STEP).for_element(Locator::Css("body")).await.unwrap();
    let mut text = body.text().await.unwrap();
    for _ in 0..50 {
        if text.contains("access_denied") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        text = b.text("body").await;
    }
    let url = b.url().await;
    assert_eq!(url.path(), "/demo/callback", "ends on the demo's callback: {url}");
    let q: BTreeMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(q.get("error").map(String::as_str), Some("access_denied"), "{url}");
    assert_eq!(q.get("iss").map(String::as_str), Some(srv.base.as_str()), "RFC 9207 iss on errors too: {url}");
    assert!(q.contains_key("state"), "{url}");
    assert!(!q.contains_key("code"), "{url}");
    assert!(text.contains("access_denied"), "the demo's error page names access_denied: {text}");
    assert!(b.client.find(Locator::Id("id-token-claims")).await.is_err(), "not signed in");
    b.close().await;
}

#[tokio::test]
async fn login_page_is_labelled_and_works_without_javascript() {
    let (srv, password) = TestServer::start_demo().await;
    let (client_id, user_id) = demo_ids(&srv).await;
    let b = Browser::launch(Options { no_javascript: true }).await;

    // JavaScript really is off for pages.
    b.goto("data:text/html,<title>js-off</title><script>document.title='js-on'</script>").await;
    assert_eq!(b.client.title().await.unwrap(), "js-off", "JavaScript must be disabled in this browser");

    b.goto(&srv.url("/demo")).await;
    b.click("sign-in-with-latchkey").await;
    b.wait_id("sign-in").await;
    assert_eq!(b.url().await.path(), "/login");

    let lang = b.client.find(Locator::Css("html")).await.unwrap().attr("lang").await.unwrap();
    assert!(lang.as_deref().is_some_and(|l| !l.trim().is_empty()), "<html> needs a lang attribute, got {lang:?}");
    for (id, ty) in [("username", "text"), ("password", "password")] {
        let input = b.wait_id(id).await;
        assert_eq!(input.attr("type").await.unwrap().as_deref(), Some(ty), "#{id} type");
        let label = b
            .client
            .find(Locator::Css(&format!("label[for=\"{id}\"]")))
            .await
            .unwrap_or_else(|_| panic!("no <label for=\"{id}\"> on the login page"));
        assert!(!label.text().await.unwrap().trim().is_empty(), "the label for #{id} has text");
    }

    submit_login(&b, "demo", &password).await;
    approve(&b).await;
    let (claims, ui) = result_page(&b).await;
    assert_signed_in(&srv, &client_id, &user_id, &claims, &ui, false);
    b.close().await;
}
