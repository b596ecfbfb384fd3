//! Request objects (OIDC Core §6, RFC 9101) and pushed authorization requests (RFC 9126).
use crate::support::{
    ClientOpts, Landing, PASSWORD, RegisteredClient, TestServer, authorize_url, pkce_pair, query_param, sign_raw,
};
use josekit::jws::{ES256, JwsHeader, JwsSigner};
use latchkey_core::Clock;
use latchkey_core::model::ClientAuthMethod;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

struct Rp {
    client: RegisteredClient,
    signer: Box<dyn JwsSigner>,
}

async fn rp_with_keys(srv: &TestServer) -> Rp {
    let kp = ES256.generate_key_pair().unwrap();
    let mut public = kp.to_jwk_public_key();
    public.set_key_id("rp1");
    let jwks = json!({"keys": [serde_json::to_value(public.as_ref()).unwrap()]}).to_string();
    let client = srv.add_client(ClientOpts { skip_consent: true, jwks: Some(jwks), ..Default::default() }).await;
    Rp { client, signer: Box::new(ES256.signer_from_jwk(&kp.to_jwk_private_key()).unwrap()) }
}

fn sign(signer: &dyn JwsSigner, claims: &Value) -> String {
    let mut h = JwsHeader::new();
    h.set_token_type("oauth-authz-req+jwt");
    h.set_key_id("rp1");
    josekit::jws::serialize_compact(claims.to_string().as_bytes(), &h, signer).unwrap()
}

fn request_claims(srv: &TestServer, rp: &Rp, challenge: &str, state: &str) -> Value {
    json!({
        "iss": rp.client.id, "aud": srv.base, "client_id": rp.client.id,
        "response_type": "code", "redirect_uri": rp.client.redirect_uri, "scope": "openid email",
        "state": state, "nonce": "n-0S6", "code_challenge": challenge, "code_challenge_method": "S256",
        "max_age": 3600, "exp": srv.clock.now() + 300,
    })
}

async fn finish(_srv: &TestServer, b: &crate::support::Browser, url: &str) -> String {
    let mut l = b.navigate(url).await;
    if matches!(&l, Landing::Page(_, p, _) if p.starts_with("/login")) {
        l = b.login(l, "alice", PASSWORD).await;
    }
    let Landing::Client(loc) = l else { panic!("{l:?}") };
    loc
}

#[tokio::test]
async fn a_signed_request_object_wins_over_the_query() {
    let srv = TestServer::start().await;
    srv.add_user("alice").await;
    let rp = rp_with_keys(&srv).await;
    let (verifier, challenge) = pkce_pair();
    let jwt = sign(rp.signer.as_ref(), &request_claims(&srv, &rp, &challenge, "from-object"));
    // The query says another state and scope; the object wins (OIDC Core §6.3.3).
    let url = format!(
        "{}/authorize?response_type=code&client_id={}&scope=openid&state=from-query&request={jwt}",
        srv.base, rp.client.id
    );
    let b = srv.browser();
    let loc = finish(&srv, &b, &url).await;
    assert_eq!(query_param(&loc, "state").as_deref(), Some("from-object"));
    let code = query_param(&loc, "code").unwrap();
    let t: Value = srv.redeem(&rp.client, &code, &verifier).await.json().await.unwrap();
    assert_eq!(t["scope"], "email openid");
    let claims = srv.state().keys.verify(t["id_token"].as_str().unwrap()).unwrap();
    assert_eq!(claims["nonce"], "n-0S6");
}

#[tokio::test]
async fn bad_request_objects_are_invalid_request_object() {
    let srv = TestServer::start().await;
    let rp = rp_with_keys(&srv).await;
    let other = rp_with_keys(&srv).await;
    let (_, challenge) = pkce_pair();
    let (url, ..) = authorize_url(&srv.base, &rp.client, "openid", &[]);
    let mut cases = vec![];
    let mut c = request_claims(&srv, &rp, &challenge, "s");
    c["client_id"] = json!("someone-else");
    cases.push(("client_id mismatch", sign(rp.signer.as_ref(), &c)));
    let mut c = request_claims(&srv, &rp, &challenge, "s");
    c["aud"] = json!("https://elsewhere.example");
    cases.push(("wrong aud", sign(rp.signer.as_ref(), &c)));
    let mut c = request_claims(&srv, &rp, &challenge, "s");
    c["exp"] = json!(srv.clock.now() - 1);
    cases.push(("expired", sign(rp.signer.as_ref(), &c)));
    cases.push((
        "signed by another client's key",
        sign(other.signer.as_ref(), &request_claims(&srv, &rp, &challenge, "s")),
    ));
    let mut c = request_claims(&srv, &rp, &challenge, "s");
    c["request_uri"] = json!("https://x.example/r");
    cases.push(("nested", sign(rp.signer.as_ref(), &c)));
    for (what, jwt) in cases {
        let r = srv.http.get(format!("{url}&request={jwt}")).send().await.unwrap();
        assert_eq!(r.status(), 302, "{what}");
        let loc = r.headers()["location"].to_str().unwrap().to_string();
        assert_eq!(query_param(&loc, "error").as_deref(), Some("invalid_request_object"), "{what}");
    }
}

#[tokio::test]
async fn unsigned_request_objects_only_when_registered_and_allowed() {
    let srv = TestServer::start_with(|s| s.request_objects.allow_unsigned = true).await;
    srv.add_user("alice").await;
    let rp = rp_with_keys(&srv).await;
    let (verifier, challenge) = pkce_pair();
    let claims = request_claims(&srv, &rp, &challenge, "u");
    let b64 = |v: &Value| base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, v.to_string());
    let unsigned = format!("{}.{}.", b64(&json!({"alg": "none"})), b64(&claims));
    let url = format!(
        "{}/authorize?response_type=code&client_id={}&scope=openid&redirect_uri={}&request={unsigned}",
        srv.base, rp.client.id, rp.client.redirect_uri
    );
    let r = srv.http.get(&url).send().await.unwrap();
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(query_param(&loc, "error").as_deref(), Some("invalid_request_object"), "not registered for none");
    let mut rec = srv.state().store.get_client(&rp.client.id).await.unwrap().unwrap();
    rec.request_object_signing_alg = Some("none".into());
    srv.update_client(&rec).await;
    let b = srv.browser();
    let loc = finish(&srv, &b, &url).await;
    let code = query_param(&loc, "code").expect("accepted once registered and allowed");
    assert_eq!(srv.redeem(&rp.client, &code, &verifier).await.status(), 200);
}

async fn serve_text(body: String) -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let app = axum::Router::new().route(
        "/req",
        axum::routing::get(move || {
            h.fetch_add(1, Ordering::SeqCst);
            let b = body.clone();
            async move { ([("content-type", "application/oauth-authz-req+jwt")], b) }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (format!("http://{addr}/req"), hits)
}

#[tokio::test]
async fn request_uri_is_fetched_safely() {
    let srv = TestServer::start_with(|s| s.development_mode = true).await;
    srv.add_user("alice").await;
    let rp = rp_with_keys(&srv).await;
    let (verifier, challenge) = pkce_pair();
    let jwt = sign(rp.signer.as_ref(), &request_claims(&srv, &rp, &challenge, "by-reference"));
    let (uri, hits) = serve_text(jwt).await;
    register_request_uri(&srv, &rp.client, &uri).await;
    let url = format!(
        "{}/authorize?response_type=code&client_id={}&scope=openid&request_uri={}",
        srv.base,
        rp.client.id,
        url::form_urlencoded::byte_serialize(uri.as_bytes()).collect::<String>()
    );
    let b = srv.browser();
    let loc = finish(&srv, &b, &url).await;
    assert_eq!(query_param(&loc, "state").as_deref(), Some("by-reference"));
    assert_eq!(srv.redeem(&rp.client, &query_param(&loc, "code").unwrap(), &verifier).await.status(), 200);
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    // Outside development mode the same loopback URI is never contacted.
    let prod = TestServer::start().await;
    let rp2 = rp_with_keys(&prod).await;
    let (uri2, hits2) = serve_text("x".into()).await;
    register_request_uri(&prod, &rp2.client, &uri2).await;
    let (url2, ..) = authorize_url(&prod.base, &rp2.client, "openid", &[("request_uri", &uri2)]);
    let r = prod.http.get(&url2).send().await.unwrap();
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(query_param(&loc, "error").as_deref(), Some("invalid_request_uri"));
    assert_eq!(hits2.load(Ordering::SeqCst), 0);
}

async fn register_request_uri(srv: &TestServer, c: &RegisteredClient, uri: &str) {
    let mut rec = srv.state().store.get_client(&c.id).await.unwrap().unwrap();
    rec.request_uris = vec![uri.to_owned()];
    srv.update_client(&rec).await;
}

fn encoded(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn error_of(r: &reqwest::Response) -> Option<String> {
    let loc = r.headers().get("location")?.to_str().ok()?.to_string();
    query_param(&loc, "error")
}

/// Issue 13: anyone could make the server GET a URL of their choosing, once per `/authorize`.
/// Only a client's registered `request_uris` are fetched (discovery says registration is
/// required), and fetches per client are limited.
#[tokio::test]
async fn only_registered_request_uris_are_fetched_and_fetches_per_client_are_limited() {
    let srv = TestServer::start_with(|s| {
        s.development_mode = true;
        s.limits.request_uri_fetches_per_client = 2;
    })
    .await;
    let rp = rp_with_keys(&srv).await;
    let (_, challenge) = pkce_pair();
    let jwt = sign(rp.signer.as_ref(), &request_claims(&srv, &rp, &challenge, "r"));
    let (uri, hits) = serve_text(jwt).await;
    let url = format!(
        "{}/authorize?client_id={}&scope=openid&redirect_uri={}&request_uri={}",
        srv.base,
        rp.client.id,
        encoded(&rp.client.redirect_uri),
        encoded(&uri)
    );
    // The attack: a client that registered no request_uris names any URL.
    let r = srv.http.get(&url).send().await.unwrap();
    assert_eq!(error_of(&r).as_deref(), Some("invalid_request_uri"));
    assert_eq!(hits.load(Ordering::SeqCst), 0, "an unregistered request_uri is never contacted");
    let doc = srv.get_json("/.well-known/openid-configuration").await;
    assert_eq!(doc["require_request_uri_registration"], true);
    // Another URL than the registered one (same host, other path) is not fetched either.
    register_request_uri(&srv, &rp.client, &format!("{uri}/other")).await;
    let r = srv.http.get(&url).send().await.unwrap();
    assert_eq!(error_of(&r).as_deref(), Some("invalid_request_uri"));
    assert_eq!(hits.load(Ordering::SeqCst), 0);
    // Registered: fetched, up to the per-client limit in a window.
    register_request_uri(&srv, &rp.client, &uri).await;
    for _ in 0..2 {
        let r = srv.http.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 303, "on to the login page");
    }
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    let r = srv.http.get(&url).send().await.unwrap();
    assert_eq!(error_of(&r).as_deref(), Some("temporarily_unavailable"));
    assert_eq!(hits.load(Ordering::SeqCst), 2, "over the limit: not fetched");
    // Another client has its own budget.
    let other = rp_with_keys(&srv).await;
    let jwt = sign(other.signer.as_ref(), &request_claims(&srv, &other, &challenge, "o"));
    let (uri_o, hits_o) = serve_text(jwt).await;
    register_request_uri(&srv, &other.client, &uri_o).await;
    let url_o =
        format!("{}/authorize?client_id={}&scope=openid&request_uri={}", srv.base, other.client.id, encoded(&uri_o));
    assert_eq!(srv.http.get(&url_o).send().await.unwrap().status(), 303);
    assert_eq!(hits_o.load(Ordering::SeqCst), 1);

    // With require_request_uri_registration off, a client that registered none may name any.
    let open = TestServer::start_with(|s| {
        s.development_mode = true;
        s.request_objects.require_request_uri_registration = false;
    })
    .await;
    let rp = rp_with_keys(&open).await;
    let jwt = sign(rp.signer.as_ref(), &request_claims(&open, &rp, &challenge, "r"));
    let (uri, hits) = serve_text(jwt).await;
    let url = format!("{}/authorize?client_id={}&scope=openid&request_uri={}", open.base, rp.client.id, encoded(&uri));
    assert_eq!(open.http.get(&url).send().await.unwrap().status(), 303);
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    assert_eq!(open.get_json("/.well-known/openid-configuration").await["require_request_uri_registration"], false);
}

/// Issue 13: request objects without `exp`, `aud`, `iss` (or with an `exp` far ahead) were
/// accepted and could be replayed forever. They are refused, at `/authorize` and at `/par`.
#[tokio::test]
async fn request_objects_need_iss_aud_and_a_bounded_exp() {
    let srv = TestServer::start().await;
    let rp = rp_with_keys(&srv).await;
    let (_, challenge) = pkce_pair();
    let (url, ..) = authorize_url(&srv.base, &rp.client, "openid", &[]);
    let now = srv.clock.now();
    let mut cases = vec![];
    for missing in ["iss", "aud", "exp"] {
        let mut c = request_claims(&srv, &rp, &challenge, "s");
        c.as_object_mut().unwrap().remove(missing);
        cases.push((format!("without {missing}"), c));
    }
    let edits: [(&str, &str, Value); 6] = [
        ("iss another client", "iss", json!("someone-else")),
        ("exp beyond max_lifetime", "exp", json!(now + 3601)),
        ("exp not a number", "exp", json!("soon")),
        ("nbf in the future", "nbf", json!(now + 60)),
        ("iat in the future", "iat", json!(now + 60)),
        ("jti not a string", "jti", json!(7)),
    ];
    for (what, k, v) in edits {
        let mut c = request_claims(&srv, &rp, &challenge, "s");
        c[k] = v;
        cases.push((what.to_string(), c));
    }
    for (what, claims) in &cases {
        let jwt = sign(rp.signer.as_ref(), claims);
        let r = srv.http.get(format!("{url}&request={jwt}")).send().await.unwrap();
        assert_eq!(r.status(), 302, "{what}");
        assert_eq!(error_of(&r).as_deref(), Some("invalid_request_object"), "{what}");
    }
    // The same rules at /par (a confidential client pushing a signed request object).
    let c = srv.add_client(ClientOpts { skip_consent: true, ..Default::default() }).await;
    let mut rec = srv.state().store.get_client(&c.id).await.unwrap().unwrap();
    rec.jwks = srv.state().store.get_client(&rp.client.id).await.unwrap().unwrap().jwks;
    srv.update_client(&rec).await;
    let for_pushing = |mut claims: Value| {
        for k in ["iss", "client_id"] {
            if claims.get(k).is_some_and(|v| v == &json!(rp.client.id)) {
                claims[k] = json!(c.id);
            }
        }
        claims["redirect_uri"] = json!(c.redirect_uri);
        sign(rp.signer.as_ref(), &claims)
    };
    for (what, claims) in cases {
        let r = par(&srv, &c, &[("request", &for_pushing(claims))]).await;
        assert_eq!(r.status(), 400, "{what}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"], "invalid_request_object", "{what}");
    }
    // Control: the complete object is accepted at both.
    let good = for_pushing(request_claims(&srv, &rp, &challenge, "s"));
    assert_eq!(par(&srv, &c, &[("request", &good)]).await.status(), 201);
    let jwt = sign(rp.signer.as_ref(), &request_claims(&srv, &rp, &challenge, "s"));
    assert_eq!(srv.http.get(format!("{url}&request={jwt}")).send().await.unwrap().status(), 303);
}

/// Issue 13: a request object's `jti` is single use until it expires, at `/authorize` and
/// `/par`, on every instance sharing the database (the store of client assertion jtis).
#[tokio::test]
async fn a_request_object_jti_is_single_use() {
    let srv = TestServer::start().await;
    let rp = rp_with_keys(&srv).await;
    let (_, challenge) = pkce_pair();
    let (url, ..) = authorize_url(&srv.base, &rp.client, "openid", &[]);
    let mut claims = request_claims(&srv, &rp, &challenge, "s");
    claims["jti"] = json!("ro-jti-1");
    let jwt = sign(rp.signer.as_ref(), &claims);
    assert_eq!(srv.http.get(format!("{url}&request={jwt}")).send().await.unwrap().status(), 303);
    // The attack: the same object again.
    let r = srv.http.get(format!("{url}&request={jwt}")).send().await.unwrap();
    assert_eq!(error_of(&r).as_deref(), Some("invalid_request_object"));
    // Another instance on the same database (one issuer, as behind a load balancer) refuses
    // it too, and spends a fresh one for both.
    let issuer = srv.base.clone();
    let b =
        TestServer::start_on(srv.db.clone(), srv.master.clone(), srv.clock.clone(), move |s| s.issuer = issuer).await;
    let url_b = url.replace(&srv.base, &b.base);
    let r = b.http.get(format!("{url_b}&request={jwt}")).send().await.unwrap();
    assert_eq!(error_of(&r).as_deref(), Some("invalid_request_object"), "replayed on the second instance");
    claims["jti"] = json!("ro-jti-2");
    let jwt = sign(rp.signer.as_ref(), &claims);
    assert_eq!(b.http.get(format!("{url_b}&request={jwt}")).send().await.unwrap().status(), 303);
    let r = srv.http.get(format!("{url}&request={jwt}")).send().await.unwrap();
    assert_eq!(error_of(&r).as_deref(), Some("invalid_request_object"), "spent on the second instance");
    // At /par too: a pushed object's jti is spent when pushed.
    let c = srv.add_client(ClientOpts { skip_consent: true, ..Default::default() }).await;
    let mut rec = srv.state().store.get_client(&c.id).await.unwrap().unwrap();
    rec.jwks = srv.state().store.get_client(&rp.client.id).await.unwrap().unwrap().jwks;
    srv.update_client(&rec).await;
    let mut pushed = claims.clone();
    pushed["iss"] = json!(c.id);
    pushed["client_id"] = json!(c.id);
    pushed["redirect_uri"] = json!(c.redirect_uri);
    pushed["jti"] = json!("ro-jti-3");
    let jwt = sign(rp.signer.as_ref(), &pushed);
    assert_eq!(par(&srv, &c, &[("request", &jwt)]).await.status(), 201);
    let r = par(&srv, &c, &[("request", &jwt)]).await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_request_object");
}

async fn par(srv: &TestServer, c: &RegisteredClient, form: &[(&str, &str)]) -> reqwest::Response {
    srv.http.post(srv.url("/par")).basic_auth(&c.id, c.secret.as_deref()).form(form).send().await.unwrap()
}

#[tokio::test]
async fn pushed_requests_are_one_time_references() {
    let srv = TestServer::start().await;
    srv.add_user("alice").await;
    let c = srv.add_client(ClientOpts { skip_consent: true, ..Default::default() }).await;
    let (verifier, challenge) = pkce_pair();
    let form = [
        ("response_type", "code"),
        ("redirect_uri", c.redirect_uri.as_str()),
        ("scope", "openid"),
        ("state", "pushed"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let r = par(&srv, &c, &form).await;
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let v: Value = r.json().await.unwrap();
    let uri = v["request_uri"].as_str().unwrap().to_string();
    assert!(uri.starts_with("urn:ietf:params:oauth:request_uri:"));
    assert_eq!(v["expires_in"], 60);
    let enc = url::form_urlencoded::byte_serialize(uri.as_bytes()).collect::<String>();
    let url = format!("{}/authorize?client_id={}&request_uri={enc}", srv.base, c.id);
    let b = srv.browser();
    let loc = finish(&srv, &b, &url).await;
    assert_eq!(query_param(&loc, "state").as_deref(), Some("pushed"));
    assert_eq!(srv.redeem(&c, &query_param(&loc, "code").unwrap(), &verifier).await.status(), 200);
    // One time: the reference is gone.
    refused(srv.http.get(&url).send().await.unwrap());
    // Expired after 60 s.
    let v: Value = par(&srv, &c, &form).await.json().await.unwrap();
    srv.clock.advance(61);
    let enc = url::form_urlencoded::byte_serialize(v["request_uri"].as_str().unwrap().as_bytes()).collect::<String>();
    refused(srv.http.get(format!("{}/authorize?client_id={}&request_uri={enc}", srv.base, c.id)).send().await.unwrap());
    // Another client cannot use it.
    let other = srv.add_client(ClientOpts::default()).await;
    let v: Value = par(&srv, &c, &form).await.json().await.unwrap();
    let enc = url::form_urlencoded::byte_serialize(v["request_uri"].as_str().unwrap().as_bytes()).collect::<String>();
    refused(
        srv.http.get(format!("{}/authorize?client_id={}&request_uri={enc}", srv.base, other.id)).send().await.unwrap(),
    );
}

/// Security: a pushed request presented by another client is refused without being spent.
/// Before, `/authorize` deleted the reference first and compared the client after, so anyone
/// who saw a `request_uri` (it travels in the front channel) could burn it with any client id,
/// and the client that pushed it got `invalid_request_uri` (RFC 9126 §4: the reference is bound
/// to the client that pushed it; a refusal spends nothing).
#[tokio::test]
async fn a_pushed_request_presented_by_another_client_is_not_spent() {
    let srv = TestServer::start().await;
    srv.add_user("alice").await;
    let owner = srv.add_client(ClientOpts { skip_consent: true, ..Default::default() }).await;
    let attacker = srv.add_client(ClientOpts { auth_method: ClientAuthMethod::None, ..Default::default() }).await;
    let (verifier, challenge) = pkce_pair();
    let form = [
        ("response_type", "code"),
        ("redirect_uri", owner.redirect_uri.as_str()),
        ("scope", "openid"),
        ("state", "mine"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let v: Value = par(&srv, &owner, &form).await.json().await.unwrap();
    let enc = url::form_urlencoded::byte_serialize(v["request_uri"].as_str().unwrap().as_bytes()).collect::<String>();
    // The attacker presents it under its own client id, twice.
    for _ in 0..2 {
        let r = srv
            .http
            .get(format!("{}/authorize?client_id={}&request_uri={enc}", srv.base, attacker.id))
            .send()
            .await
            .unwrap();
        refused(r);
    }
    // The owner's authorization still goes through.
    let b = srv.browser();
    let loc = finish(&srv, &b, &format!("{}/authorize?client_id={}&request_uri={enc}", srv.base, owner.id)).await;
    assert_eq!(query_param(&loc, "state").as_deref(), Some("mine"));
    assert_eq!(srv.redeem(&owner, &query_param(&loc, "code").unwrap(), &verifier).await.status(), 200);
}

/// No code: an error page, or (the client having one registered redirect URI and no OpenID
/// scope in the query) invalid_request_uri back to the client.
fn refused(r: reqwest::Response) {
    match r.status().as_u16() {
        400 => {}
        302 => {
            let loc = r.headers()["location"].to_str().unwrap().to_string();
            assert_eq!(query_param(&loc, "error").as_deref(), Some("invalid_request_uri"), "{loc}");
        }
        s => panic!("unexpected status {s}"),
    }
}

#[tokio::test]
async fn par_errors_and_required_par() {
    let srv = TestServer::start().await;
    let c = srv.add_client(ClientOpts::default()).await;
    let (_, challenge) = pkce_pair();
    let err = |v: Value| v["error"].as_str().unwrap_or_default().to_string();
    let r =
        par(&srv, &c, &[("response_type", "code"), ("redirect_uri", "https://evil.example/cb"), ("scope", "openid")])
            .await;
    assert_eq!(r.status(), 400);
    assert_eq!(err(r.json().await.unwrap()), "invalid_request");
    let r =
        par(&srv, &c, &[("response_type", "token"), ("redirect_uri", c.redirect_uri.as_str()), ("scope", "openid")])
            .await;
    assert_eq!(err(r.json().await.unwrap()), "unsupported_response_type");
    let r = par(&srv, &c, &[("request_uri", "urn:ietf:params:oauth:request_uri:x"), ("response_type", "code")]).await;
    assert_eq!(err(r.json().await.unwrap()), "invalid_request");
    let r = srv.http.post(srv.url("/par")).form(&[("response_type", "code")]).send().await.unwrap();
    assert_eq!(r.status(), 401);
    // A client that must push: /authorize without PAR is refused.
    let strict = srv.add_client(ClientOpts::default()).await;
    let mut rec = srv.state().store.get_client(&strict.id).await.unwrap().unwrap();
    rec.require_par = true;
    srv.update_client(&rec).await;
    let (url, ..) = authorize_url(&srv.base, &strict, "openid", &[]);
    let r = srv.http.get(&url).send().await.unwrap();
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(query_param(&loc, "error").as_deref(), Some("invalid_request"));
    let r = par(
        &srv,
        &strict,
        &[
            ("response_type", "code"),
            ("redirect_uri", strict.redirect_uri.as_str()),
            ("scope", "openid"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ],
    )
    .await;
    assert_eq!(r.status(), 201);
    let doc = srv.get_json("/.well-known/openid-configuration").await;
    assert_eq!(doc["pushed_authorization_request_endpoint"], srv.url("/par"));
    assert_eq!(doc["request_parameter_supported"], true);
}

/// Issue 7 (hostile input): request objects with a repeated member name (header or payload),
/// deep nesting, more members than the parameter cap, or a `typ` naming another kind of JWT
/// were accepted (the last repeated value won; the members were merged into the request).
#[tokio::test]
async fn hostile_request_objects_are_invalid_request_object() {
    let srv = TestServer::start().await;
    let rp = rp_with_keys(&srv).await;
    let (_, challenge) = pkce_pair();
    let (url, ..) = authorize_url(&srv.base, &rp.client, "openid", &[]);
    let claims = request_claims(&srv, &rp, &challenge, "s");
    let text = claims.to_string();
    let header = r#"{"alg":"ES256","kid":"rp1","typ":"oauth-authz-req+jwt"}"#;
    let send = async |jwt: String| {
        let r = srv.http.get(format!("{url}&request={jwt}")).send().await.unwrap();
        let loc = r.headers().get("location").map(|l| l.to_str().unwrap().to_string()).unwrap_or_default();
        (r.status().as_u16(), query_param(&loc, "error"))
    };
    // Control: the raw signer makes a valid request object (no session: on to the login page).
    assert_eq!(send(sign_raw(rp.signer.as_ref(), header, &text)).await.0, 303);
    let mut many = claims.as_object().unwrap().clone();
    for i in 0..70 {
        many.insert(format!("x{i}"), json!("1"));
    }
    let deep = format!("{}1{}", "[".repeat(40), "]".repeat(40));
    let cases = [
        ("repeated header name", sign_raw(rp.signer.as_ref(), r#"{"alg":"ES256","kid":"rp1","alg":"ES256"}"#, &text)),
        (
            "repeated claim",
            sign_raw(
                rp.signer.as_ref(),
                header,
                &text.replacen('{', r#"{"redirect_uri":"https://evil.example/cb","#, 1),
            ),
        ),
        ("deep nesting", sign_raw(rp.signer.as_ref(), header, &text.replacen('{', &format!("{{\"n\":{deep},"), 1))),
        ("too many members", sign_raw(rp.signer.as_ref(), header, &Value::Object(many).to_string())),
        ("typ at+jwt", sign_raw(rp.signer.as_ref(), r#"{"alg":"ES256","kid":"rp1","typ":"at+jwt"}"#, &text)),
        ("typ logout+jwt", sign_raw(rp.signer.as_ref(), r#"{"alg":"ES256","kid":"rp1","typ":"logout+jwt"}"#, &text)),
    ];
    for (what, jwt) in cases {
        assert_eq!(send(jwt).await, (302, Some("invalid_request_object".into())), "{what}");
    }
}
