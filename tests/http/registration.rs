//! Dynamic client registration (OIDC Registration 1.0, RFC 7591) and its management
//! (RFC 7592).
use crate::support::{ClientOpts, RegisteredClient, TestServer};
use josekit::jws::{HS256, JwsHeader};
use latchkey_core::model::{ClientAuthMethod, SubjectType};
use latchkey_core::{Clock, SecretToken};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

async fn open() -> TestServer {
    TestServer::start_with(|s| s.registration.policy = "open".into()).await
}

async fn register(srv: &TestServer, body: &Value) -> reqwest::Response {
    srv.http.post(srv.url("/register")).json(body).send().await.unwrap()
}

async fn register_ok(srv: &TestServer, body: &Value) -> Value {
    let r = register(srv, body).await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    r.json().await.unwrap()
}

async fn error_of(r: reqwest::Response) -> (u16, String) {
    let s = r.status().as_u16();
    let v: Value = r.json().await.unwrap();
    (s, v["error"].as_str().unwrap_or_default().to_string())
}

fn www_authenticate(r: &reqwest::Response) -> String {
    r.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default()
}

fn web_client() -> Value {
    json!({"redirect_uris": ["https://rp.example/cb"], "client_name": "Shop"})
}

/// A loopback server answering `body` at every path and counting requests.
async fn counting_server(body: String) -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let app = axum::Router::new().fallback(move || {
        h.fetch_add(1, Ordering::SeqCst);
        let b = body.clone();
        async move { ([("content-type", "application/json")], b) }
    });
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (format!("http://{addr}"), hits)
}

#[tokio::test]
async fn open_registration_returns_the_client_and_the_code_flow_works_with_it() {
    let srv = open().await;
    let r = register(
        &srv,
        &json!({
            "redirect_uris": ["https://rp.example/cb"],
            "client_name": "Shop",
            "client_name#fr": "Boutique",
            "logo_uri": "https://rp.example/logo.png",
            "contacts": ["ops@rp.example"],
            "grant_types": ["authorization_code", "refresh_token"],
            "default_max_age": 3600,
            "require_auth_time": true,
            "post_logout_redirect_uris": ["https://rp.example/bye"],
            "backchannel_logout_uri": "https://rp.example/bc",
            "backchannel_logout_session_required": true,
            "request_uris": ["https://rp.example/req#abc"],
            "frobnicate": {"ignored": true}
        }),
    )
    .await;
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    let v: Value = r.json().await.unwrap();
    let id = v["client_id"].as_str().unwrap().to_string();
    let secret = v["client_secret"].as_str().unwrap().to_string();
    let rat = v["registration_access_token"].as_str().unwrap().to_string();
    assert!(secret.len() >= 43 && rat.len() >= 43);
    assert_eq!(v["client_secret_expires_at"], 0);
    assert_eq!(v["client_id_issued_at"], srv.clock.now());
    assert_eq!(v["registration_client_uri"], srv.url(&format!("/register/{id}")));
    // Defaults filled in (RFC 7591 §2, OIDC Registration §2).
    assert_eq!(v["token_endpoint_auth_method"], "client_secret_basic");
    assert_eq!(v["response_types"], json!(["code"]));
    assert_eq!(v["grant_types"], json!(["authorization_code", "refresh_token"]));
    assert_eq!(v["id_token_signed_response_alg"], "RS256");
    assert_eq!(v["subject_type"], "public");
    assert_eq!(v["application_type"], "web");
    // Registered values echoed; unknown members ignored.
    assert_eq!(v["client_name"], "Shop");
    assert_eq!(v["client_name#fr"], "Boutique");
    assert_eq!(v["logo_uri"], "https://rp.example/logo.png");
    assert_eq!(v["contacts"], json!(["ops@rp.example"]));
    assert_eq!(v["default_max_age"], 3600);
    assert_eq!(v["require_auth_time"], true);
    assert_eq!(v["post_logout_redirect_uris"], json!(["https://rp.example/bye"]));
    assert_eq!(v["backchannel_logout_uri"], "https://rp.example/bc");
    assert_eq!(v["backchannel_logout_session_required"], true);
    assert_eq!(v["request_uris"], json!(["https://rp.example/req#abc"]));
    assert!(v.get("frobnicate").is_none());

    // Stored: secrets and the registration access token only as hashes.
    let c = srv.state().store.get_client(&id).await.unwrap().unwrap();
    assert!(c.secret_hash.as_ref().unwrap().matches(&SecretToken::from_presented(&secret).hash()));
    assert!(c.registration_token_hash.as_ref().unwrap().matches(&SecretToken::from_presented(&rat).hash()));
    assert!(c.secret_enc.is_none());
    assert_eq!(c.name, "Shop");
    assert_eq!(c.request_uris, vec!["https://rp.example/req#abc".to_string()]);
    assert!(c.backchannel_logout_session_required);
    assert_eq!(c.metadata["contacts"], json!(["ops@rp.example"]));

    // The code flow works with the registered client.
    let u = srv.add_user("alice").await;
    let rc = RegisteredClient { id: id.clone(), secret: Some(secret), redirect_uri: "https://rp.example/cb".into() };
    let b = srv.browser();
    let (code, nonce, verifier) = srv.sign_in(&b, &rc, "alice", "openid email").await;
    let r = srv.redeem(&rc, &code, &verifier).await;
    assert_eq!(r.status(), 200);
    let t: Value = r.json().await.unwrap();
    let claims = srv.state().keys.verify(t["id_token"].as_str().unwrap()).unwrap();
    assert_eq!(claims["aud"], id.as_str());
    assert_eq!(claims["sub"], u.id.as_str());
    assert_eq!(claims["nonce"], nonce.as_str());
}

#[tokio::test]
async fn closed_registration_is_not_mounted_and_not_advertised() {
    let srv = TestServer::start().await;
    let doc = srv.get_json("/.well-known/openid-configuration").await;
    assert!(doc.get("registration_endpoint").is_none());
    let r = register(&srv, &web_client()).await;
    assert_eq!(r.status(), 404);
    let r = srv.http.get(srv.url("/register/anything")).bearer_auth("x").send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(srv.state().store.list_clients().await.unwrap().len(), 0);

    let srv = open().await;
    let doc = srv.get_json("/.well-known/openid-configuration").await;
    assert_eq!(doc["registration_endpoint"], srv.url("/register"));
    // Pairwise is advertised by the pairwise subjects, not by registration.
    let r = srv.http.get(srv.url("/register")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "POST");
}

#[tokio::test]
async fn initial_access_token_policy_needs_a_valid_unused_token() {
    let srv = TestServer::start_with(|s| s.registration.policy = "initial_access_token".into()).await;
    let now = srv.clock.now();
    let token = SecretToken::generate();
    srv.state().store.create_initial_access_token(&token.hash(), now, now + 600).await.unwrap();

    // No token: RFC 6750 §3.1, a challenge without an error code.
    let r = register(&srv, &web_client()).await;
    assert_eq!(r.status(), 401);
    assert!(www_authenticate(&r).starts_with("Bearer"), "{}", www_authenticate(&r));
    // A wrong token.
    let r = srv.http.post(srv.url("/register")).bearer_auth("not-a-token").json(&web_client()).send().await.unwrap();
    assert!(www_authenticate(&r).contains("error=\"invalid_token\""));
    assert_eq!(error_of(r).await, (401, "invalid_token".into()));
    // Bad metadata with a good token does not use the token up.
    let r = srv
        .http
        .post(srv.url("/register"))
        .bearer_auth(token.expose())
        .json(&json!({"redirect_uris": ["javascript:alert(1)"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r).await, (400, "invalid_redirect_uri".into()));
    // The good token registers once.
    let r = srv.http.post(srv.url("/register")).bearer_auth(token.expose()).json(&web_client()).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let r = srv.http.post(srv.url("/register")).bearer_auth(token.expose()).json(&web_client()).send().await.unwrap();
    assert_eq!(error_of(r).await, (401, "invalid_token".into()), "an initial access token is single use");
    // An expired token.
    let old = SecretToken::generate();
    srv.state().store.create_initial_access_token(&old.hash(), now, now + 60).await.unwrap();
    srv.clock.advance(61);
    let r = srv.http.post(srv.url("/register")).bearer_auth(old.expose()).json(&web_client()).send().await.unwrap();
    assert_eq!(error_of(r).await, (401, "invalid_token".into()));
    assert_eq!(srv.state().store.list_clients().await.unwrap().len(), 1);
}

#[tokio::test]
async fn management_reads_updates_and_deletes_with_the_registration_access_token_only() {
    let srv = open().await;
    let v = register_ok(
        &srv,
        &json!({"redirect_uris": ["https://rp.example/cb"], "client_name": "Shop", "contacts": ["a@rp.example"]}),
    )
    .await;
    let id = v["client_id"].as_str().unwrap().to_string();
    let secret = v["client_secret"].as_str().unwrap().to_string();
    let rat = v["registration_access_token"].as_str().unwrap().to_string();
    let uri = v["registration_client_uri"].as_str().unwrap().to_string();
    let other = register_ok(&srv, &web_client()).await;
    let other_rat = other["registration_access_token"].as_str().unwrap().to_string();

    // Read (RFC 7592 §2.1).
    let r = srv.http.get(&uri).bearer_auth(&rat).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let read: Value = r.json().await.unwrap();
    assert_eq!(read["client_id"], id.as_str());
    assert_eq!(read["client_name"], "Shop");
    assert_eq!(read["registration_access_token"], rat.as_str());
    assert!(read.get("client_secret").is_none(), "only the hash is kept");
    // The read document can be sent back as an update (RFC 7592 §2.2), server-set members and all.
    let r = srv.http.put(&uri).bearer_auth(&rat).json(&read).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let again: Value = r.json().await.unwrap();
    assert_eq!(again, read);
    // Wrong, missing and another client's tokens.
    for t in [Some("wrong"), Some(other_rat.as_str()), None] {
        for method in [reqwest::Method::GET, reqwest::Method::PUT, reqwest::Method::DELETE] {
            let mut req = srv.http.request(method.clone(), &uri).json(&json!({"client_id": id}));
            if let Some(t) = t {
                req = req.bearer_auth(t);
            }
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), 401, "{method} with {t:?}");
            assert!(www_authenticate(&r).starts_with("Bearer"));
            if t.is_some() {
                assert!(www_authenticate(&r).contains("invalid_token"), "{method} with {t:?}");
            }
        }
    }
    // An unknown client id answers 401 too (RFC 7592 §2.1).
    let r = srv.http.get(srv.url("/register/nope")).bearer_auth(&rat).send().await.unwrap();
    assert_eq!(error_of(r).await, (401, "invalid_token".into()));

    // Update (RFC 7592 §2.2): client_id must match, a sent client_secret must be the current one.
    let put = |body: Value| srv.http.put(&uri).bearer_auth(&rat).json(&body).send();
    let r = put(json!({"client_id": "someone-else", "redirect_uris": ["https://rp.example/cb"]})).await.unwrap();
    assert_eq!(error_of(r).await, (400, "invalid_client_metadata".into()));
    let r = put(json!({"redirect_uris": ["https://rp.example/cb"]})).await.unwrap();
    assert_eq!(error_of(r).await, (400, "invalid_client_metadata".into()));
    let r = put(json!({"client_id": id, "client_secret": "chosen-by-me", "redirect_uris": ["https://rp.example/cb"]}))
        .await
        .unwrap();
    assert_eq!(error_of(r).await, (400, "invalid_client_metadata".into()));
    let r = put(json!({"client_id": id, "redirect_uris": ["https://rp.example/cb#x"]})).await.unwrap();
    assert_eq!(error_of(r).await, (400, "invalid_redirect_uri".into()));
    // A good update replaces the metadata: omitted members are gone.
    let r = put(json!({
        "client_id": id,
        "client_secret": secret,
        "redirect_uris": ["https://rp.example/new"],
        "client_name": "Shop 2",
        "registration_access_token": "ignored",
        "client_id_issued_at": 1
    }))
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let up: Value = r.json().await.unwrap();
    assert_eq!(up["client_name"], "Shop 2");
    assert_eq!(up["redirect_uris"], json!(["https://rp.example/new"]));
    assert!(up.get("contacts").is_none());
    assert_eq!(up["registration_access_token"], rat.as_str());
    assert_eq!(up["client_id_issued_at"], v["client_id_issued_at"]);
    let c = srv.state().store.get_client(&id).await.unwrap().unwrap();
    assert_eq!(c.redirect_uris, vec!["https://rp.example/new".to_string()]);
    assert!(c.secret_hash.as_ref().unwrap().matches(&SecretToken::from_presented(&secret).hash()));

    // Switching to client_secret_jwt keeps the (proven) secret, now encrypted for HMAC.
    let r = put(json!({
        "client_id": id, "client_secret": secret, "token_endpoint_auth_method": "client_secret_jwt",
        "grant_types": ["client_credentials"]
    }))
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let c = srv.state().store.get_client(&id).await.unwrap().unwrap();
    assert!(c.secret_enc.is_some());
    let now = srv.clock.now();
    let claims = json!({"iss": id, "sub": id, "aud": srv.url("/token"), "exp": now + 60, "iat": now, "jti": "j1"});
    let signer = HS256.signer_from_bytes(secret.as_bytes()).unwrap();
    let a = josekit::jws::serialize_compact(claims.to_string().as_bytes(), &JwsHeader::new(), &signer).unwrap();
    let r = srv
        .http
        .post(srv.url("/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
            ("client_assertion", &a),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    // Switching to a public client drops the secret.
    let r =
        put(json!({"client_id": id, "token_endpoint_auth_method": "none", "redirect_uris": ["https://rp.example/cb"]}))
            .await
            .unwrap();
    let pub_v: Value = r.json().await.unwrap();
    assert!(pub_v.get("client_secret").is_none() && pub_v.get("client_secret_expires_at").is_none());
    let c = srv.state().store.get_client(&id).await.unwrap().unwrap();
    assert!(c.secret_hash.is_none() && c.secret_enc.is_none() && c.require_pkce);

    // Delete (RFC 7592 §2.3): 204, then the client and its token are gone.
    let r = srv.http.delete(&uri).bearer_auth(&rat).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert!(srv.state().store.get_client(&id).await.unwrap().is_none());
    let r = srv.http.get(&uri).bearer_auth(&rat).send().await.unwrap();
    assert_eq!(error_of(r).await, (401, "invalid_token".into()));
    // The other client is untouched.
    let r =
        srv.http.get(other["registration_client_uri"].as_str().unwrap()).bearer_auth(&other_rat).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn clients_registered_by_the_operator_cannot_be_managed() {
    let srv = open().await;
    let c = srv.add_client(ClientOpts::default()).await;
    for t in ["x", c.secret.as_deref().unwrap()] {
        let r = srv.http.get(srv.url(&format!("/register/{}", c.id))).bearer_auth(t).send().await.unwrap();
        assert_eq!(r.status(), 401, "{t}");
        let r = srv.http.delete(srv.url(&format!("/register/{}", c.id))).bearer_auth(t).send().await.unwrap();
        assert_eq!(r.status(), 401, "{t}");
    }
    assert!(srv.state().store.get_client(&c.id).await.unwrap().is_some());
}

#[tokio::test]
async fn hostile_bodies_are_400_never_500() {
    let srv = open().await;
    let huge = json!({"redirect_uris": ["https://rp.example/cb"], "client_name": "x".repeat(70 * 1024)});
    assert_eq!(error_of(register(&srv, &huge).await).await, (400, "invalid_request".into()));
    let deep = format!("{{\"redirect_uris\": {}\"https://rp.example/cb\"{}}}", "[".repeat(3000), "]".repeat(3000));
    let r = srv.http.post(srv.url("/register")).header("content-type", "application/json").body(deep).send().await;
    assert_eq!(error_of(r.unwrap()).await, (400, "invalid_request".into()));
    for (what, body, ctype) in [
        ("not JSON", "{redirect_uris: 1}", "application/json"),
        ("not an object", "[\"https://rp.example/cb\"]", "application/json"),
        (
            "repeated member",
            r#"{"redirect_uris": ["https://a.example/cb"], "redirect_uris": ["https://b.example/cb"]}"#,
            "application/json",
        ),
        ("form body", "redirect_uris=https%3A%2F%2Frp.example%2Fcb", "application/x-www-form-urlencoded"),
        ("no body", "", "application/json"),
    ] {
        let r = srv.http.post(srv.url("/register")).header("content-type", ctype).body(body).send().await.unwrap();
        assert_eq!(r.headers()["cache-control"], "no-store", "{what}");
        assert_eq!(error_of(r).await, (400, "invalid_request".into()), "{what}");
    }
    let cb = json!(["https://rp.example/cb"]);
    for (what, body) in [
        ("redirect_uris as a string", json!({"redirect_uris": "https://rp.example/cb"})),
        ("redirect_uris as numbers", json!({"redirect_uris": [1, 2]})),
        ("client_name as a number", json!({"redirect_uris": cb, "client_name": 7})),
        ("grant_types as an object", json!({"redirect_uris": cb, "grant_types": {"a": 1}})),
        ("default_max_age as a string", json!({"redirect_uris": cb, "default_max_age": "3600"})),
        ("a boolean as a number", json!({"redirect_uris": cb, "require_auth_time": 1})),
        ("an unknown auth method", json!({"redirect_uris": cb, "token_endpoint_auth_method": "magic"})),
        ("an implicit response type", json!({"redirect_uris": cb, "response_types": ["id_token"]})),
        ("encrypted ID tokens", json!({"redirect_uris": cb, "id_token_encrypted_response_alg": "RSA-OAEP"})),
        ("an unconfigured UserInfo alg", json!({"redirect_uris": cb, "userinfo_signed_response_alg": "HS256"})),
        ("an unconfigured ID token alg", json!({"redirect_uris": cb, "id_token_signed_response_alg": "HS256"})),
        ("unsigned request objects", json!({"redirect_uris": cb, "request_object_signing_alg": "none"})),
        ("a javascript: logo", json!({"redirect_uris": cb, "logo_uri": "javascript:alert(1)"})),
        (
            "private keys in jwks",
            json!({"redirect_uris": cb, "token_endpoint_auth_method": "private_key_jwt",
            "jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}}),
        ),
        ("private_key_jwt without keys", json!({"redirect_uris": cb, "token_endpoint_auth_method": "private_key_jwt"})),
        (
            "a public client with client_credentials",
            json!({"token_endpoint_auth_method": "none", "grant_types": ["client_credentials"]}),
        ),
        (
            "an http backchannel_logout_uri",
            json!({"redirect_uris": cb, "backchannel_logout_uri": "http://rp.example/bc"}),
        ),
        ("an http request_uri", json!({"redirect_uris": cb, "request_uris": ["http://rp.example/r"]})),
    ] {
        assert_eq!(error_of(register(&srv, &body).await).await, (400, "invalid_client_metadata".into()), "{what}");
    }
    for (what, uris) in [
        ("javascript:", json!(["javascript:alert(document.cookie)"])),
        ("a fragment", json!(["https://rp.example/cb#frag"])),
        ("http on a remote host", json!(["http://rp.example/cb"])),
        ("a relative URI", json!(["/cb"])),
        ("data:", json!(["data:text/html,hi"])),
        ("a private-use scheme for a web client", json!(["com.example.app:/cb"])),
    ] {
        let r = register(&srv, &json!({"redirect_uris": uris})).await;
        assert_eq!(error_of(r).await, (400, "invalid_redirect_uri".into()), "{what}");
    }
    let r = register(
        &srv,
        &json!({"redirect_uris": ["https://rp.example/cb"], "post_logout_redirect_uris": ["javascript:x"]}),
    )
    .await;
    assert_eq!(error_of(r).await, (400, "invalid_redirect_uri".into()));
    // Native clients may use private-use schemes and loopback http (RFC 8252 §7).
    let v = register_ok(
        &srv,
        &json!({"application_type": "native", "token_endpoint_auth_method": "none",
                "redirect_uris": ["com.example.app:/cb", "http://127.0.0.1/cb"]}),
    )
    .await;
    assert!(v.get("client_secret").is_none());
    let c = srv.state().store.get_client(v["client_id"].as_str().unwrap()).await.unwrap().unwrap();
    assert_eq!(c.auth_method, ClientAuthMethod::None);
    assert!(c.require_pkce);
    assert_eq!(srv.state().store.list_clients().await.unwrap().len(), 1);
}

#[tokio::test]
async fn private_jwks_and_sector_uris_are_refused_without_any_request() {
    let srv = open().await;
    let (base, hits) = counting_server("[\"https://rp.example/cb\"]".into()).await;
    let port = base.rsplit(':').next().unwrap().to_string();
    let targets = [
        "https://10.0.0.1/doc".to_string(),
        "https://169.254.169.254/latest/meta-data".to_string(),
        "https://127.0.0.1:1/doc".to_string(),
        format!("https://127.0.0.1:{port}/doc"),
        format!("http://127.0.0.1:{port}/doc"),
        format!("https://localhost:{port}/doc"),
        format!("https://[::1]:{port}/doc"),
    ];
    for t in &targets {
        let pkj = json!({"redirect_uris": ["https://rp.example/cb"], "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": t});
        assert_eq!(error_of(register(&srv, &pkj).await).await, (400, "invalid_client_metadata".into()), "jwks_uri {t}");
        let sector =
            json!({"redirect_uris": ["https://rp.example/cb"], "subject_type": "pairwise", "sector_identifier_uri": t});
        assert_eq!(
            error_of(register(&srv, &sector).await).await,
            (400, "invalid_client_metadata".into()),
            "sector {t}"
        );
        let bc = json!({"redirect_uris": ["https://rp.example/cb"], "backchannel_logout_uri": t});
        assert_eq!(
            error_of(register(&srv, &bc).await).await,
            (400, "invalid_client_metadata".into()),
            "backchannel {t}"
        );
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0, "no request to a private address");
    assert!(srv.state().store.list_clients().await.unwrap().is_empty());
}

#[tokio::test]
async fn sector_identifier_uri_must_list_every_redirect_uri() {
    let srv = TestServer::start_with(|s| {
        s.registration.policy = "open".into();
        s.development_mode = true;
    })
    .await;
    let redirects = json!(["https://a.example/cb", "https://b.example/cb"]);
    let (good, good_hits) =
        counting_server(json!(["https://a.example/cb", "https://b.example/cb", "https://c.example/cb"]).to_string())
            .await;
    let (partial, _) = counting_server(json!(["https://a.example/cb"]).to_string()).await;
    let (not_array, _) = counting_server(json!({"redirect_uris": redirects}).to_string()).await;

    let body = |sector: &str| json!({"redirect_uris": redirects, "subject_type": "pairwise", "sector_identifier_uri": format!("{sector}/sector.json")});
    let v = register_ok(&srv, &body(&good)).await;
    assert_eq!(v["subject_type"], "pairwise");
    assert_eq!(v["sector_identifier_uri"], format!("{good}/sector.json"));
    assert_eq!(good_hits.load(Ordering::SeqCst), 1);
    let c = srv.state().store.get_client(v["client_id"].as_str().unwrap()).await.unwrap().unwrap();
    assert_eq!(c.subject_type, SubjectType::Pairwise);
    assert_eq!(c.sector().as_deref(), Some("127.0.0.1"));
    for bad in [&partial, &not_array] {
        assert_eq!(error_of(register(&srv, &body(bad)).await).await, (400, "invalid_client_metadata".into()), "{bad}");
    }
    // Unreachable: refused, not a 500.
    let gone = format!("http://127.0.0.1:{}", crate::support::free_port());
    assert_eq!(error_of(register(&srv, &body(&gone)).await).await, (400, "invalid_client_metadata".into()));
    // Pairwise on several hosts without a sector identifier (OIDC Core §8.1).
    let r = register(&srv, &json!({"redirect_uris": redirects, "subject_type": "pairwise"})).await;
    assert_eq!(error_of(r).await, (400, "invalid_client_metadata".into()));
    // One host needs none.
    let v = register_ok(
        &srv,
        &json!({"redirect_uris": ["https://a.example/1", "https://a.example/2"], "subject_type": "pairwise"}),
    )
    .await;
    assert_eq!(v["subject_type"], "pairwise");
    // A public client may name a sector too; it is still checked.
    let r = register(&srv, &json!({"redirect_uris": redirects, "sector_identifier_uri": format!("{partial}/s")})).await;
    assert_eq!(error_of(r).await, (400, "invalid_client_metadata".into()));
}

#[tokio::test]
async fn scopes_beyond_openid_are_not_registrable() {
    let srv = open().await;
    let v = register_ok(&srv, &json!({"redirect_uris": ["https://rp.example/cb"], "scope": "openid email admin:all"}))
        .await;
    assert_eq!(v["scope"], "email openid");
    let r = register(&srv, &json!({"grant_types": ["client_credentials"], "scope": "admin:all"})).await;
    assert_eq!(error_of(r).await, (400, "invalid_client_metadata".into()));
    // A client-credentials client gets a token without any API scope.
    let v = register_ok(&srv, &json!({"grant_types": ["client_credentials"]})).await;
    assert_eq!(v["response_types"], json!([]));
    let r = srv
        .http
        .post(srv.url("/token"))
        .basic_auth(v["client_id"].as_str().unwrap(), v["client_secret"].as_str())
        .form(&[("grant_type", "client_credentials"), ("scope", "admin:all")])
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r).await.1, "invalid_scope");
}

/// Issue 7 (hostile input): `\u0000` in a JSON string reached PostgreSQL (a 500).
#[tokio::test]
async fn nul_in_registration_metadata_is_invalid_request_never_500() {
    let srv = open().await;
    for body in [
        json!({"redirect_uris": ["https://rp.example/cb\u{0}"]}),
        json!({"redirect_uris": ["https://rp.example/cb"], "client_name": "a\u{0}b"}),
        json!({"redirect_uris": ["https://rp.example/cb"], "a\u{0}": "x"}),
    ] {
        let r = register(&srv, &body).await;
        assert_eq!(error_of(r).await, (400, "invalid_request".into()), "{body}");
    }
}
