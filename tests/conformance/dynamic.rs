//! OpenID Connect Core: Dynamic Certification Profile (oidcc-dynamic-certification-test-plan):
//! clients register themselves at /register, then run the flows.
use crate::support::{Landing, PASSWORD, TestServer, pkce_pair, query_param};
use josekit::jws::{JwsHeader, JwsSigner, RS256};
use latchkey_core::Clock;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

async fn server() -> TestServer {
    let srv = TestServer::start_with(|s| {
        s.registration.policy = "open".into();
        s.development_mode = true;
        s.request_objects.allow_unsigned = true;
    })
    .await;
    srv.add_user("alice").await;
    srv
}

async fn register(srv: &TestServer, meta: Value) -> reqwest::Response {
    srv.http.post(srv.url("/register")).json(&meta).send().await.unwrap()
}

async fn registered(srv: &TestServer, meta: Value) -> Value {
    let r = register(srv, meta).await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    r.json().await.unwrap()
}

/// Run the browser part with a dynamically registered client; returns the redirect.
async fn authorize(srv: &TestServer, client_id: &str, redirect_uri: &str, extra: &[(&str, &str)]) -> (String, String) {
    let (verifier, challenge) = pkce_pair();
    let mut u = url::Url::parse(&srv.url("/authorize")).unwrap();
    {
        let mut q = u.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", extra.iter().find(|(k, _)| *k == "scope").map_or("openid email", |(_, v)| *v))
            .append_pair("state", "dyn")
            .append_pair("nonce", "n")
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        for (k, v) in extra.iter().filter(|(k, _)| *k != "scope") {
            q.append_pair(k, v);
        }
    }
    let b = srv.browser();
    let mut l = b.navigate(u.as_str()).await;
    for _ in 0..3 {
        l = match &l {
            Landing::Page(200, p, _) if p.starts_with("/login") => b.login(l, "alice", PASSWORD).await,
            Landing::Page(200, p, _) if p.starts_with("/consent") => b.consent(l, "approve").await,
            _ => break,
        };
    }
    let Landing::Client(loc) = l else { panic!("{l:?}") };
    (loc, verifier)
}

async fn exchange(srv: &TestServer, reg: &Value, code: &str, verifier: &str) -> Value {
    let r = srv
        .http
        .post(srv.url("/token"))
        .basic_auth(reg["client_id"].as_str().unwrap(), reg["client_secret"].as_str())
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", reg["redirect_uris"][0].as_str().unwrap()),
            ("code_verifier", verifier),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

#[tokio::test]
async fn oidcc_discovery_endpoint_verification_dynamic() {
    let srv = server().await;
    let d = srv.get_json("/.well-known/openid-configuration").await;
    assert_eq!(d["registration_endpoint"], srv.url("/register"));
}

#[tokio::test]
async fn oidcc_server_dynamic() {
    let srv = server().await;
    let reg = registered(&srv, json!({"redirect_uris": ["https://rp.example/cb"], "client_name": "dyn"})).await;
    let (loc, v) = authorize(&srv, reg["client_id"].as_str().unwrap(), "https://rp.example/cb", &[]).await;
    let t = exchange(&srv, &reg, &query_param(&loc, "code").unwrap(), &v).await;
    assert!(t["id_token"].is_string());
}

#[tokio::test]
async fn oidcc_idtoken_rs256() {
    let srv = server().await;
    let reg =
        registered(&srv, json!({"redirect_uris": ["https://rp.example/cb"], "id_token_signed_response_alg": "RS256"}))
            .await;
    let (loc, v) = authorize(&srv, reg["client_id"].as_str().unwrap(), "https://rp.example/cb", &[]).await;
    let t = exchange(&srv, &reg, &query_param(&loc, "code").unwrap(), &v).await;
    assert_eq!(
        jsonwebtoken::decode_header(t["id_token"].as_str().unwrap()).unwrap().alg,
        jsonwebtoken::Algorithm::RS256
    );
}

#[tokio::test]
async fn oidcc_idtoken_unsigned_dynamic() {
    // Unsigned ID tokens are not offered: registering for them is refused.
    let srv = server().await;
    let r = register(&srv, json!({"redirect_uris": ["https://rp.example/cb"], "id_token_signed_response_alg": "none"}))
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_client_metadata");
}

#[tokio::test]
async fn oidcc_userinfo_rs256() {
    let srv = server().await;
    let reg =
        registered(&srv, json!({"redirect_uris": ["https://rp.example/cb"], "userinfo_signed_response_alg": "RS256"}))
            .await;
    let (loc, v) = authorize(&srv, reg["client_id"].as_str().unwrap(), "https://rp.example/cb", &[]).await;
    let t = exchange(&srv, &reg, &query_param(&loc, "code").unwrap(), &v).await;
    let r = srv.http.get(srv.url("/userinfo")).bearer_auth(t["access_token"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(r.headers()["content-type"], "application/jwt");
    let jwt = r.text().await.unwrap();
    let claims = srv.state().keys.verify(&jwt).unwrap();
    assert_eq!(claims["iss"], srv.base.as_str());
    assert_eq!(claims["aud"], reg["client_id"]);
    assert_eq!(claims["email"], "alice@example.com");
}

#[tokio::test]
async fn oidcc_redirect_uri_query_ok() {
    let srv = server().await;
    let cb = "https://rp.example/cb?foo=bar";
    let reg = registered(&srv, json!({"redirect_uris": [cb]})).await;
    let (loc, _) = authorize(&srv, reg["client_id"].as_str().unwrap(), cb, &[]).await;
    assert!(loc.starts_with("https://rp.example/cb?foo=bar&"), "the registered query is kept: {loc}");
    assert!(query_param(&loc, "code").is_some());
}

async fn error_page_for(srv: &TestServer, client_id: &str, redirect_uri: &str) {
    let (_, challenge) = pkce_pair();
    let url = format!(
        "{}/authorize?response_type=code&scope=openid&client_id={client_id}&redirect_uri={}&code_challenge={challenge}&code_challenge_method=S256",
        srv.base,
        url::form_urlencoded::byte_serialize(redirect_uri.as_bytes()).collect::<String>()
    );
    let r = srv.http.get(url).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("location").is_none());
}

#[tokio::test]
async fn oidcc_redirect_uri_query_added() {
    let srv = server().await;
    let reg = registered(&srv, json!({"redirect_uris": ["https://rp.example/cb"]})).await;
    error_page_for(&srv, reg["client_id"].as_str().unwrap(), "https://rp.example/cb?foo=bar").await;
}

#[tokio::test]
async fn oidcc_redirect_uri_query_mismatch() {
    let srv = server().await;
    let reg = registered(&srv, json!({"redirect_uris": ["https://rp.example/cb?foo=bar"]})).await;
    error_page_for(&srv, reg["client_id"].as_str().unwrap(), "https://rp.example/cb?foo=zot").await;
}

#[tokio::test]
async fn oidcc_redirect_uri_regfrag() {
    let srv = server().await;
    let r = register(&srv, json!({"redirect_uris": ["https://rp.example/cb#frag"]})).await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_redirect_uri");
}

#[tokio::test]
async fn oidcc_ensure_redirect_uri_in_authorization_request() {
    // OIDC Core §3.1.2.1: redirect_uri is required even with one registered URI.
    let srv = server().await;
    let reg = registered(&srv, json!({"redirect_uris": ["https://rp.example/cb"]})).await;
    let (_, challenge) = pkce_pair();
    let url = format!(
        "{}/authorize?response_type=code&scope=openid&client_id={}&code_challenge={challenge}&code_challenge_method=S256",
        srv.base,
        reg["client_id"].as_str().unwrap()
    );
    let r = srv.http.get(url).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("location").is_none());
}

#[tokio::test]
async fn oidcc_registration_logo_uri() {
    let srv = server().await;
    let reg = registered(
        &srv,
        json!({"redirect_uris": ["https://rp.example/cb"], "logo_uri": "https://rp.example/logo.png"}),
    )
    .await;
    assert_eq!(reg["logo_uri"], "https://rp.example/logo.png");
}

#[tokio::test]
async fn oidcc_registration_policy_uri() {
    let srv = server().await;
    let reg = registered(
        &srv,
        json!({"redirect_uris": ["https://rp.example/cb"], "policy_uri": "https://rp.example/policy"}),
    )
    .await;
    assert_eq!(reg["policy_uri"], "https://rp.example/policy");
}

#[tokio::test]
async fn oidcc_registration_tos_uri() {
    let srv = server().await;
    let reg =
        registered(&srv, json!({"redirect_uris": ["https://rp.example/cb"], "tos_uri": "https://rp.example/tos"}))
            .await;
    assert_eq!(reg["tos_uri"], "https://rp.example/tos");
}

/// A loopback server whose body can be changed (a JWK Set, a sector document, a request object).
async fn document_server() -> (String, Arc<Mutex<String>>) {
    let body = Arc::new(Mutex::new(String::new()));
    let b = body.clone();
    let app = axum::Router::new().route(
        "/doc",
        axum::routing::get(move || {
            let b = b.clone();
            async move { ([("content-type", "application/json")], b.lock().unwrap().clone()) }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (format!("http://{addr}/doc"), body)
}

#[tokio::test]
async fn oidcc_registration_sector_uri() {
    let srv = server().await;
    let (uri, doc) = document_server().await;
    *doc.lock().unwrap() = json!(["https://rp.example/cb", "https://other.example/cb"]).to_string();
    let reg = registered(
        &srv,
        json!({"redirect_uris": ["https://rp.example/cb", "https://other.example/cb"], "subject_type": "pairwise", "sector_identifier_uri": uri}),
    )
    .await;
    let (loc, v) = authorize(&srv, reg["client_id"].as_str().unwrap(), "https://rp.example/cb", &[]).await;
    let t = exchange(&srv, &reg, &query_param(&loc, "code").unwrap(), &v).await;
    let claims = srv.state().keys.verify(t["id_token"].as_str().unwrap()).unwrap();
    let user = srv.state().store.get_user_by_username("alice").await.unwrap().unwrap();
    assert_ne!(claims["sub"], user.id.as_str(), "pairwise");
}

#[tokio::test]
async fn oidcc_registration_sector_bad() {
    let srv = server().await;
    let (uri, doc) = document_server().await;
    *doc.lock().unwrap() = json!(["https://elsewhere.example/cb"]).to_string();
    let r = register(&srv, json!({"redirect_uris": ["https://rp.example/cb"], "sector_identifier_uri": uri})).await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_client_metadata");
}

struct Key {
    signer: Box<dyn JwsSigner>,
    jwk: Value,
}

fn rsa_key(kid: &str) -> Key {
    let kp = RS256.generate_key_pair(2048).unwrap();
    let mut public = kp.to_jwk_public_key();
    public.set_key_id(kid);
    public.set_algorithm("RS256");
    Key {
        signer: Box::new(RS256.signer_from_jwk(&kp.to_jwk_private_key()).unwrap()),
        jwk: serde_json::to_value(public.as_ref()).unwrap(),
    }
}

fn signed(k: &Key, kid: &str, claims: &Value) -> String {
    let mut h = JwsHeader::new();
    h.set_key_id(kid);
    josekit::jws::serialize_compact(claims.to_string().as_bytes(), &h, k.signer.as_ref()).unwrap()
}

#[tokio::test]
async fn oidcc_registration_jwks_uri() {
    let srv = server().await;
    let (uri, doc) = document_server().await;
    let k = rsa_key("k1");
    *doc.lock().unwrap() = json!({"keys": [k.jwk]}).to_string();
    let reg = registered(
        &srv,
        json!({"redirect_uris": ["https://rp.example/cb"], "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": uri}),
    )
    .await;
    assert_eq!(reg["jwks_uri"], uri.as_str());
}

async fn pkj_refresh(srv: &TestServer, client_id: &str, k: &Key, kid: &str, rt: &str, jti: &str) -> reqwest::Response {
    let now = srv.clock.now();
    let a = signed(k, kid, &json!({"iss": client_id, "sub": client_id, "aud": srv.base, "exp": now + 60, "jti": jti}));
    srv.http
        .post(srv.url("/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt),
            ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
            ("client_assertion", &a),
        ])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn oidcc_ensure_client_assertion_with_iss_aud_succeeds_and_refresh_token_rp_key_rotation() {
    // oidcc-ensure-client-assertion-with-iss-aud-succeeds: aud = the issuer.
    // oidcc-refresh-token-rp-key-rotation: the RP rotates its key at jwks_uri between refreshes.
    let srv = server().await;
    let (uri, doc) = document_server().await;
    let k1 = rsa_key("k1");
    *doc.lock().unwrap() = json!({"keys": [k1.jwk]}).to_string();
    let reg = registered(
        &srv,
        json!({"redirect_uris": ["https://rp.example/cb"], "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": uri,
               "grant_types": ["authorization_code", "refresh_token"], "scope": "openid email offline_access"}),
    )
    .await;
    let id = reg["client_id"].as_str().unwrap().to_string();
    let (loc, v) =
        authorize(&srv, &id, "https://rp.example/cb", &[("scope", "openid offline_access"), ("prompt", "consent")])
            .await;
    let now = srv.clock.now();
    let a = signed(&k1, "k1", &json!({"iss": id, "sub": id, "aud": srv.base, "exp": now + 60, "jti": "c1"}));
    let r = srv
        .http
        .post(srv.url("/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &query_param(&loc, "code").unwrap()),
            ("redirect_uri", "https://rp.example/cb"),
            ("code_verifier", &v),
            ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
            ("client_assertion", &a),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let t: Value = r.json().await.unwrap();
    let rt = t["refresh_token"].as_str().expect("refresh token").to_string();
    // Rotate the RP key: publish k2 only, and refresh with it.
    let k2 = rsa_key("k2");
    *doc.lock().unwrap() = json!({"keys": [k2.jwk]}).to_string();
    srv.clock.advance(10);
    let r = pkj_refresh(&srv, &id, &k2, "k2", &rt, "c2").await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

#[tokio::test]
async fn oidcc_request_uri_signed_rs256() {
    let srv = server().await;
    let (jwks_uri, jwks_doc) = document_server().await;
    let (req_uri, req_doc) = document_server().await;
    let k = rsa_key("k1");
    *jwks_doc.lock().unwrap() = json!({"keys": [k.jwk]}).to_string();
    let reg = registered(
        &srv,
        json!({"redirect_uris": ["https://rp.example/cb"], "jwks_uri": jwks_uri, "request_object_signing_alg": "RS256",
               "request_uris": [req_uri]}),
    )
    .await;
    let id = reg["client_id"].as_str().unwrap().to_string();
    let (verifier, challenge) = pkce_pair();
    *req_doc.lock().unwrap() = signed(
        &k,
        "k1",
        &json!({"iss": id, "aud": srv.base, "client_id": id, "response_type": "code", "redirect_uri": "https://rp.example/cb",
                "scope": "openid", "state": "ro", "code_challenge": challenge, "code_challenge_method": "S256",
                "exp": srv.clock.now() + 300, "jti": "ro-1"}),
    );
    let (loc, _) = authorize(&srv, &id, "https://rp.example/cb", &[("request_uri", &req_uri)]).await;
    assert_eq!(query_param(&loc, "state").as_deref(), Some("ro"));
    let t = exchange(&srv, &reg, &query_param(&loc, "code").unwrap(), &verifier).await;
    assert!(t["id_token"].is_string());
}

#[tokio::test]
async fn oidcc_request_uri_unsigned() {
    let srv = server().await;
    let (req_uri, req_doc) = document_server().await;
    let reg =
        registered(&srv, json!({"redirect_uris": ["https://rp.example/cb"], "request_object_signing_alg": "none", "request_uris": [req_uri]}))
            .await;
    let id = reg["client_id"].as_str().unwrap().to_string();
    let (verifier, challenge) = pkce_pair();
    let b64 = |v: &Value| base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, v.to_string());
    *req_doc.lock().unwrap() = format!(
        "{}.{}.",
        b64(&json!({"alg": "none"})),
        b64(
            &json!({"client_id": id, "response_type": "code", "redirect_uri": "https://rp.example/cb", "scope": "openid",
                     "state": "unsigned", "code_challenge": challenge, "code_challenge_method": "S256",
                     "iss": id, "aud": srv.base, "exp": srv.clock.now() + 300})
        )
    );
    let (loc, _) = authorize(&srv, &id, "https://rp.example/cb", &[("request_uri", &req_uri)]).await;
    assert_eq!(query_param(&loc, "state").as_deref(), Some("unsigned"));
    exchange(&srv, &reg, &query_param(&loc, "code").unwrap(), &verifier).await;
}

#[tokio::test]
async fn oidcc_refresh_token_dynamic() {
    let srv = server().await;
    let reg = registered(
        &srv,
        json!({"redirect_uris": ["https://rp.example/cb"], "grant_types": ["authorization_code", "refresh_token"], "scope": "openid offline_access"}),
    )
    .await;
    let (loc, v) = authorize(
        &srv,
        reg["client_id"].as_str().unwrap(),
        "https://rp.example/cb",
        &[("scope", "openid offline_access"), ("prompt", "consent")],
    )
    .await;
    let t = exchange(&srv, &reg, &query_param(&loc, "code").unwrap(), &v).await;
    let r = srv
        .http
        .post(srv.url("/token"))
        .basic_auth(reg["client_id"].as_str().unwrap(), reg["client_secret"].as_str())
        .form(&[("grant_type", "refresh_token"), ("refresh_token", t["refresh_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn oidcc_server_rotate_keys() {
    let srv = server().await;
    let reg = registered(&srv, json!({"redirect_uris": ["https://rp.example/cb"]})).await;
    let id = reg["client_id"].as_str().unwrap().to_string();
    let (loc, v) = authorize(&srv, &id, "https://rp.example/cb", &[]).await;
    let before = exchange(&srv, &reg, &query_param(&loc, "code").unwrap(), &v).await;
    let old_kid = jsonwebtoken::decode_header(before["id_token"].as_str().unwrap()).unwrap().kid.unwrap();
    let st = srv.state().clone();
    latchkey_signer::rotate(st.store.as_ref(), &st.settings, &srv.master, srv.clock.now()).await.unwrap();
    srv.clock.advance(st.settings.signing.rotation_delay + 1);
    srv.reload_keys().await;
    let (loc, v) = authorize(&srv, &id, "https://rp.example/cb", &[]).await;
    let after = exchange(&srv, &reg, &query_param(&loc, "code").unwrap(), &v).await;
    let new_kid = jsonwebtoken::decode_header(after["id_token"].as_str().unwrap()).unwrap().kid.unwrap();
    assert_ne!(old_kid, new_kid, "signed with the new key");
    let jwks = srv.get_json("/jwks.json").await;
    let kids: Vec<&str> = jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
    assert!(kids.contains(&new_kid.as_str()) && kids.contains(&old_kid.as_str()));
}
