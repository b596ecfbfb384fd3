//! The demo relying party (`serve --demo`) reads its callback with the strict query parser.

use crate::support::TestServer;

/// `/demo/start`: the state it sent to `/authorize`, and the cookie that binds it to this browser.
async fn start(srv: &TestServer) -> (String, String) {
    let r = srv.http.get(srv.url("/demo/start")).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let state = cookie.strip_prefix("latchkey_demo_state=").expect("the demo's state cookie").to_owned();
    (state, cookie)
}

async fn callback(srv: &TestServer, cookie: &str, pairs: &[(&str, &str)]) -> (u16, String) {
    let mut u = url::Url::parse(&srv.url("/demo/callback")).unwrap();
    for (k, v) in pairs {
        u.query_pairs_mut().append_pair(k, v);
    }
    let r = srv.http.get(u).header("cookie", cookie).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn demo_callback_refuses_a_repeated_parameter_and_keeps_the_sign_in_attempt() {
    let (srv, _) = TestServer::start_demo().await;
    let iss = srv.state().settings.issuer.clone();
    let (st, cookie) = start(&srv).await;

    // RFC 6749 §3.1: a repeated parameter is an error, not a silent pick of one value.
    for repeated in [
        vec![("iss", iss.as_str()), ("state", st.as_str()), ("code", "a"), ("code", "b")],
        vec![("iss", iss.as_str()), ("state", st.as_str()), ("state", "other"), ("code", "a")],
        vec![("iss", iss.as_str()), ("iss", iss.as_str()), ("state", st.as_str()), ("code", "a")],
    ] {
        let (status, body) = callback(&srv, &cookie, &repeated).await;
        assert_eq!(status, 400, "{repeated:?}");
        assert!(body.contains("is repeated") && body.contains("invalid_request"), "{repeated:?}: {body}");
    }

    // The refused requests spent nothing: the same attempt still answers, here with the error
    // the authorization server sent back.
    let (status, body) = callback(&srv, &cookie, &[("iss", &iss), ("state", &st), ("error", "access_denied")]).await;
    assert_eq!(status, 400);
    assert!(body.contains("sign-in did not complete: access_denied"), "{body}");
}
