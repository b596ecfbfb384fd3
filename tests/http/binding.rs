//! Every decision on a pending request is bound to who made it (issue 13, finding 1): the
//! consent answer to the user and session that gave it, the request to the browser that
//! started it. Written as the attacks of the security review.
use crate::support::{Browser, ClientOpts, Landing, PASSWORD, TestServer, authorize_url, hidden, query_param};

/// Press a form's button without following the redirect; returns the Location.
async fn press(b: &Browser, path: &str, form: &[(&str, &str)]) -> String {
    let r = b.http.post(format!("{}{path}", b.base)).form(form).send().await.unwrap();
    assert_eq!(r.status(), 303, "{path}");
    r.headers()["location"].to_str().unwrap().to_string()
}

/// The attacker's half: their own account, their own client, `prompt=consent` for everything,
/// "Allow" pressed and the redirect not followed. Returns the resume URL they keep.
async fn attacker_consents(srv: &TestServer, c: &crate::support::RegisteredClient) -> (Browser, String) {
    let b = srv.browser();
    let (url, ..) = authorize_url(&srv.base, c, "openid email phone offline_access", &[("prompt", "consent")]);
    let l = b.login(b.navigate(&url).await, "mallory", PASSWORD).await;
    let Landing::Page(200, path, body) = l else { panic!("expected the consent page, got {l:?}") };
    assert!(path.starts_with("/consent?"), "{path}");
    let interaction = hidden(&body, "interaction").unwrap();
    let csrf = hidden(&body, "csrf").unwrap();
    let resume =
        press(&b, "/consent", &[("interaction", &interaction), ("csrf", &csrf), ("decision", "approve")]).await;
    assert!(resume.starts_with("/authorize/resume?interaction="), "{resume}");
    (b, resume)
}

#[tokio::test]
async fn a_consent_resumed_in_the_victims_browser_never_yields_a_code() {
    let srv = TestServer::start().await;
    srv.add_user("mallory").await;
    srv.add_user("alice").await;
    let evil = srv.add_client(ClientOpts::default()).await;
    let (_, resume) = attacker_consents(&srv, &evil).await;

    // The victim is signed in to Latchkey in their own browser (through some other app).
    let victim = srv.browser();
    let other = srv.add_client(ClientOpts { skip_consent: true, ..Default::default() }).await;
    srv.sign_in(&victim, &other, "alice", "openid").await;

    // The victim opens the attacker's link: an error page, never a redirect with a code.
    let l = victim.navigate(&resume).await;
    let Landing::Page(400, _, body) = l else { panic!("the victim's browser must get an error page, got {l:?}") };
    assert!(body.contains("another browser"), "{body}");
    // Nor do the pages of that request open for the victim.
    let interaction = query_param(&srv.url(&resume), "interaction").unwrap();
    for page in ["/login", "/consent", "/select-account"] {
        let l = victim.navigate(&format!("{page}?interaction={interaction}")).await;
        assert!(matches!(l, Landing::Page(400, ..)), "{page}: {l:?}");
    }
    // No grant was made for the victim.
    let alice = srv.state().store.get_user_by_username("alice").await.unwrap().unwrap();
    assert_eq!(srv.state().store.get_consent(&alice.id, &evil.id).await.unwrap(), None);
}

#[tokio::test]
async fn a_resume_or_page_url_replayed_in_a_fresh_browser_is_an_error_page() {
    let srv = TestServer::start().await;
    srv.add_user("mallory").await;
    let c = srv.add_client(ClientOpts::default()).await;
    let (owner, resume) = attacker_consents(&srv, &c).await;
    let interaction = query_param(&srv.url(&resume), "interaction").unwrap();
    for url in
        [resume.clone(), format!("/login?interaction={interaction}"), format!("/consent?interaction={interaction}")]
    {
        let l = srv.browser().navigate(&url).await;
        assert!(matches!(l, Landing::Page(400, ..)), "{url}: {l:?}");
    }
    // The browser that started it still completes it, once.
    let l = owner.navigate(&resume).await;
    let Landing::Client(loc) = l else { panic!("the owner's browser completes its own request, got {l:?}") };
    assert!(query_param(&loc, "code").is_some(), "{loc}");
    let l = owner.navigate(&resume).await;
    assert!(matches!(l, Landing::Page(400, ..)), "{l:?}");
}

#[tokio::test]
async fn a_consent_given_by_one_user_is_asked_again_when_another_signs_in_for_that_request() {
    let srv = TestServer::start().await;
    srv.add_user("mallory").await;
    srv.add_user("alice").await;
    let c = srv.add_client(ClientOpts::default()).await;
    // Mallory allows the request in a shared browser and walks away without following it.
    let (b, resume) = attacker_consents(&srv, &c).await;
    let interaction = query_param(&srv.url(&resume), "interaction").unwrap();
    // Alice signs in for the same pending request in that browser.
    let l = b.navigate(&format!("/login?interaction={interaction}")).await;
    let l = b.login(l, "alice", PASSWORD).await;
    // Mallory's answer does not count for Alice: she is asked herself.
    let Landing::Page(200, path, _) = &l else { panic!("expected the consent page, got {l:?}") };
    assert!(path.starts_with("/consent?"), "{path}");
    let l = b.consent(l, "deny").await;
    let Landing::Client(loc) = l else { panic!("{l:?}") };
    assert_eq!(query_param(&loc, "error").as_deref(), Some("access_denied"));
}

#[tokio::test]
async fn the_browser_binding_cookie_is_httponly_lax_and_host_only() {
    let srv = TestServer::start().await;
    let c = srv.add_client(ClientOpts::default()).await;
    let (url, ..) = authorize_url(&srv.base, &c, "openid", &[]);
    let r = srv.http.get(url).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let set: Vec<&str> = r.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap()).collect();
    let binding = set.iter().find(|c| c.starts_with("latchkey_browser=")).expect("a browser-binding cookie");
    assert!(
        binding.contains("HttpOnly") && binding.contains("SameSite=Lax") && binding.contains("Path=/"),
        "{binding}"
    );
    assert!(!binding.contains("Domain="), "{binding}");
}
