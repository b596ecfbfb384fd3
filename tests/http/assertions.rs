//! Client authentication with JWTs (RFC 7523): private_key_jwt and client_secret_jwt.
use crate::support::{ClientOpts, RegisteredClient, TestServer, sign_raw};
use josekit::jws::{ES256, HS256, JwsHeader, JwsSigner};
use latchkey_core::Clock;
use latchkey_core::model::{ClientAuthMethod, GrantType};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

struct Keys {
    signer: Box<dyn JwsSigner>,
    public_jwks: String,
    kid: String,
}

fn es256_keys(kid: &str) -> Keys {
    let kp = ES256.generate_key_pair().unwrap();
    let mut public = kp.to_jwk_public_key();
    public.set_key_id(kid);
    public.set_algorithm("ES256");
    let signer = ES256.signer_from_jwk(&kp.to_jwk_private_key()).unwrap();
    Keys {
        signer: Box::new(signer),
        public_jwks: json!({"keys": [serde_json::to_value(public.as_ref()).unwrap()]}).to_string(),
        kid: kid.into(),
    }
}

fn assertion(signer: &dyn JwsSigner, kid: Option<&str>, claims: Value) -> String {
    let mut h = JwsHeader::new();
    h.set_token_type("JWT");
    if let Some(k) = kid {
        h.set_key_id(k);
    }
    josekit::jws::serialize_compact(claims.to_string().as_bytes(), &h, signer).unwrap()
}

fn claims(srv: &TestServer, client_id: &str, jti: &str) -> Value {
    let now = srv.clock.now();
    json!({"iss": client_id, "sub": client_id, "aud": srv.url("/token"), "exp": now + 60, "iat": now, "jti": jti})
}

async fn cc_with_assertion(srv: &TestServer, client_id: &str, a: &str) -> reqwest::Response {
    srv.http
        .post(srv.url("/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", a),
        ])
        .send()
        .await
        .unwrap()
}

async fn pkj_client(srv: &TestServer, keys: &Keys) -> RegisteredClient {
    srv.add_client(ClientOpts {
        auth_method: ClientAuthMethod::PrivateKeyJwt,
        grant_types: vec![GrantType::ClientCredentials],
        scopes: vec!["api".into()],
        jwks: Some(keys.public_jwks.clone()),
        ..Default::default()
    })
    .await
}

async fn error_of(r: reqwest::Response) -> (u16, String) {
    let s = r.status().as_u16();
    let v: Value = r.json().await.unwrap();
    (s, v["error"].as_str().unwrap_or_default().to_string())
}

#[tokio::test]
async fn private_key_jwt_authenticates_and_a_replayed_assertion_is_refused() {
    let srv = TestServer::start().await;
    let keys = es256_keys("k1");
    let c = pkj_client(&srv, &keys).await;
    let a = assertion(keys.signer.as_ref(), Some(&keys.kid), claims(&srv, &c.id, "jti-1"));
    let r = cc_with_assertion(&srv, &c.id, &a).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let r = cc_with_assertion(&srv, &c.id, &a).await;
    assert_eq!(error_of(r).await, (401, "invalid_client".into()), "replayed jti");
    // The issuer as audience is accepted too; no kid is fine with one key.
    let mut cl = claims(&srv, &c.id, "jti-2");
    cl["aud"] = json!(srv.base);
    let r = cc_with_assertion(&srv, &c.id, &assertion(keys.signer.as_ref(), None, cl)).await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn bad_assertions_are_invalid_client() {
    let srv = TestServer::start().await;
    let keys = es256_keys("k1");
    let c = pkj_client(&srv, &keys).await;
    let now = srv.clock.now();
    let other = es256_keys("k1");
    let cases: Vec<(&str, String)> = vec![
        (
            "wrong audience",
            assertion(
                keys.signer.as_ref(),
                Some("k1"),
                json!({"iss": c.id, "sub": c.id, "aud": "https://elsewhere.example", "exp": now + 60, "jti": "a"}),
            ),
        ),
        (
            "expired",
            assertion(
                keys.signer.as_ref(),
                Some("k1"),
                json!({"iss": c.id, "sub": c.id, "aud": srv.base, "exp": now - 1, "jti": "b"}),
            ),
        ),
        (
            "lifetime too long",
            assertion(
                keys.signer.as_ref(),
                Some("k1"),
                json!({"iss": c.id, "sub": c.id, "aud": srv.base, "exp": now + 3600, "jti": "c"}),
            ),
        ),
        (
            "no jti",
            assertion(
                keys.signer.as_ref(),
                Some("k1"),
                json!({"iss": c.id, "sub": c.id, "aud": srv.base, "exp": now + 60}),
            ),
        ),
        (
            "sub differs",
            assertion(
                keys.signer.as_ref(),
                Some("k1"),
                json!({"iss": c.id, "sub": "someone", "aud": srv.base, "exp": now + 60, "jti": "d"}),
            ),
        ),
        ("signed by another key", assertion(other.signer.as_ref(), Some("k1"), claims(&srv, &c.id, "e"))),
        ("alg none", format!("{}.{}.", b64(&json!({"alg": "none"})), b64(&claims(&srv, &c.id, "f")))),
        // Algorithm confusion: HS256 keyed with the public key's JSON.
        (
            "HS256 for a private_key_jwt client",
            assertion(
                &HS256.signer_from_bytes(keys.public_jwks.as_bytes()).unwrap(),
                Some("k1"),
                claims(&srv, &c.id, "g"),
            ),
        ),
        ("garbage", "not-a-jwt".into()),
    ];
    for (what, a) in cases {
        let r = cc_with_assertion(&srv, &c.id, &a).await;
        assert_eq!(error_of(r).await, (401, "invalid_client".into()), "{what}");
    }
    // A wrong assertion type is invalid_request.
    let r = srv
        .http
        .post(srv.url("/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", "urn:x"),
            ("client_assertion", "a.b.c"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r).await.1, "invalid_request");
}

fn b64(v: &Value) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

#[tokio::test]
async fn client_secret_jwt_uses_the_secret_as_hmac_key() {
    let srv = TestServer::start().await;
    let c = srv
        .add_client(ClientOpts {
            auth_method: ClientAuthMethod::ClientSecretJwt,
            grant_types: vec![GrantType::ClientCredentials],
            scopes: vec!["api".into()],
            ..Default::default()
        })
        .await;
    let secret = c.secret.clone().unwrap();
    let signer = HS256.signer_from_bytes(secret.as_bytes()).unwrap();
    let r = cc_with_assertion(&srv, &c.id, &assertion(&signer, None, claims(&srv, &c.id, "x1"))).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let wrong = HS256.signer_from_bytes(b"not the secret, but long enough to be a key").unwrap();
    let r = cc_with_assertion(&srv, &c.id, &assertion(&wrong, None, claims(&srv, &c.id, "x2"))).await;
    assert_eq!(error_of(r).await.1, "invalid_client");
    // The secret is not stored in the clear.
    let stored = srv.state().store.get_client(&c.id).await.unwrap().unwrap();
    assert!(!stored.secret_enc.unwrap().contains(&secret));
}

/// A loopback server publishing a JWK Set, counting requests.
async fn jwks_server(body: String) -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let app = axum::Router::new().route(
        "/jwks",
        axum::routing::get(move || {
            h.fetch_add(1, Ordering::SeqCst);
            let b = body.clone();
            async move { ([("content-type", "application/json")], b) }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (format!("http://{addr}/jwks"), hits)
}

async fn jwks_uri_client(srv: &TestServer, uri: &str) -> RegisteredClient {
    let c = srv
        .add_client(ClientOpts {
            auth_method: ClientAuthMethod::PrivateKeyJwt,
            grant_types: vec![GrantType::ClientCredentials],
            scopes: vec!["api".into()],
            ..Default::default()
        })
        .await;
    let mut rec = srv.state().store.get_client(&c.id).await.unwrap().unwrap();
    rec.jwks_uri = Some(uri.to_string());
    srv.update_client(&rec).await;
    c
}

#[tokio::test]
async fn jwks_uri_is_fetched_in_development_mode_and_cached() {
    let srv = TestServer::start_with(|s| s.development_mode = true).await;
    let keys = es256_keys("k9");
    let (uri, hits) = jwks_server(keys.public_jwks.clone()).await;
    let c = jwks_uri_client(&srv, &uri).await;
    for i in 0..3 {
        let a = assertion(keys.signer.as_ref(), Some("k9"), claims(&srv, &c.id, &format!("j{i}")));
        assert_eq!(cc_with_assertion(&srv, &c.id, &a).await.status(), 200);
    }
    assert_eq!(hits.load(Ordering::SeqCst), 1, "the JWK Set is cached");
}

#[tokio::test]
async fn jwks_uri_on_a_private_address_is_never_fetched_outside_development_mode() {
    let srv = TestServer::start().await;
    let keys = es256_keys("k9");
    let (uri, hits) = jwks_server(keys.public_jwks.clone()).await;
    let c = jwks_uri_client(&srv, &uri).await;
    let a = assertion(keys.signer.as_ref(), Some("k9"), claims(&srv, &c.id, "j"));
    assert_eq!(error_of(cc_with_assertion(&srv, &c.id, &a).await).await.1, "invalid_client");
    let https_loopback = uri.replace("http://", "https://");
    let c2 = jwks_uri_client(&srv, &https_loopback).await;
    let a = assertion(keys.signer.as_ref(), Some("k9"), claims(&srv, &c2.id, "j2"));
    assert_eq!(error_of(cc_with_assertion(&srv, &c2.id, &a).await).await.1, "invalid_client");
    assert_eq!(hits.load(Ordering::SeqCst), 0, "no request to a private address");
}

#[tokio::test]
async fn private_key_jwt_works_at_revocation_and_introspection_too() {
    let srv = TestServer::start().await;
    let keys = es256_keys("k1");
    let c = pkj_client(&srv, &keys).await;
    let a = assertion(keys.signer.as_ref(), Some("k1"), claims(&srv, &c.id, "t1"));
    let t: Value = cc_with_assertion(&srv, &c.id, &a).await.json().await.unwrap();
    let at = t["access_token"].as_str().unwrap();
    let mut cl = claims(&srv, &c.id, "t2");
    cl["aud"] = json!(srv.url("/introspect"));
    let a = assertion(keys.signer.as_ref(), Some("k1"), cl);
    let v: Value = srv
        .http
        .post(srv.url("/introspect"))
        .form(&[("token", at), ("client_assertion_type", JWT_BEARER), ("client_assertion", &a)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["active"], true);
}

/// Issue 7 (hostile input): correctly signed assertions whose header or payload repeats a
/// member name were accepted (the last value won); a crit header, a JWE, an oversized or
/// deeply nested payload are refused before any key is used.
#[tokio::test]
async fn assertions_with_repeated_names_crit_or_hostile_json_are_invalid_client() {
    let srv = TestServer::start().await;
    let keys = es256_keys("k1");
    let c = pkj_client(&srv, &keys).await;
    let now = srv.clock.now();
    let aud = srv.url("/token");
    let payload =
        |jti: &str| format!(r#"{{"iss":"{0}","sub":"{0}","aud":"{aud}","exp":{1},"jti":"{jti}"}}"#, c.id, now + 60);
    let header = r#"{"alg":"ES256","kid":"k1","typ":"JWT"}"#;
    // Control: the raw signer makes valid assertions.
    let ok = sign_raw(keys.signer.as_ref(), header, &payload("raw-ok"));
    assert_eq!(cc_with_assertion(&srv, &c.id, &ok).await.status(), 200);
    let deep = format!("{}1{}", "[".repeat(40), "]".repeat(40));
    let cases = [
        (
            "repeated header name",
            sign_raw(keys.signer.as_ref(), r#"{"alg":"ES256","kid":"k1","kid":"k1"}"#, &payload("r1")),
        ),
        (
            "repeated claim",
            sign_raw(keys.signer.as_ref(), header, &payload("r2").replace("\"iss\"", "\"iss\":\"x\",\"iss\"")),
        ),
        ("crit", sign_raw(keys.signer.as_ref(), r#"{"alg":"ES256","kid":"k1","crit":["x"],"x":1}"#, &payload("r3"))),
        (
            "deep nesting",
            sign_raw(keys.signer.as_ref(), header, &payload("r4").replace("}", &format!(",\"n\":{deep}}}"))),
        ),
        ("JWE form", format!("{ok}.e30.e30")),
    ];
    for (what, a) in cases {
        assert_eq!(error_of(cc_with_assertion(&srv, &c.id, &a).await).await, (401, "invalid_client".into()), "{what}");
    }
}

/// Issue 7 (hostile input): a request object travels through the browser; signed by the
/// client with `iss` = `sub` = client_id, `aud` = the issuer and a `jti`, it was accepted as a
/// client assertion. Assertions typed as another kind of JWT are refused (RFC 8725 §2.8, §3.11).
#[tokio::test]
async fn a_request_object_or_other_typed_jwt_never_authenticates_the_client() {
    let srv = TestServer::start().await;
    let keys = es256_keys("k1");
    let c = pkj_client(&srv, &keys).await;
    for (i, typ) in
        ["oauth-authz-req+jwt", "at+jwt", "logout+jwt", "application/oauth-authz-req+jwt"].iter().enumerate()
    {
        let mut h = JwsHeader::new();
        h.set_token_type(*typ);
        h.set_key_id("k1");
        let mut cl = claims(&srv, &c.id, &format!("typed-{i}"));
        cl["aud"] = json!(srv.base);
        cl["client_id"] = json!(c.id);
        cl["response_type"] = json!("code");
        let a = josekit::jws::serialize_compact(cl.to_string().as_bytes(), &h, keys.signer.as_ref()).unwrap();
        assert_eq!(error_of(cc_with_assertion(&srv, &c.id, &a).await).await, (401, "invalid_client".into()), "{typ}");
    }
    // The explicit assertion type of draft-ietf-oauth-rfc7523bis is fine.
    let mut h = JwsHeader::new();
    h.set_token_type("client-authentication+jwt");
    h.set_key_id("k1");
    let a = josekit::jws::serialize_compact(
        claims(&srv, &c.id, "typed-ok").to_string().as_bytes(),
        &h,
        keys.signer.as_ref(),
    )
    .unwrap();
    assert_eq!(cc_with_assertion(&srv, &c.id, &a).await.status(), 200);
}

/// Issue 7: with no kid, the key was chosen by type alone, so a client whose JWK Set lists a
/// P-384 key before its P-256 key could not use ES256. Type and curve now both decide.
#[tokio::test]
async fn the_client_key_is_chosen_by_type_and_curve() {
    let srv = TestServer::start().await;
    let keys = es256_keys("k1");
    let p384 = josekit::jws::ES384.generate_key_pair().unwrap().to_jwk_public_key();
    let p256: Value = serde_json::from_str::<Value>(&keys.public_jwks).unwrap()["keys"][0].clone();
    let mut p256 = p256;
    p256.as_object_mut().unwrap().remove("kid");
    let jwks = json!({"keys": [serde_json::to_value(p384.as_ref()).unwrap(), p256]}).to_string();
    let c = srv
        .add_client(ClientOpts {
            auth_method: ClientAuthMethod::PrivateKeyJwt,
            grant_types: vec![GrantType::ClientCredentials],
            scopes: vec!["api".into()],
            jwks: Some(jwks),
            ..Default::default()
        })
        .await;
    let a = assertion(keys.signer.as_ref(), None, claims(&srv, &c.id, "curve-1"));
    let r = cc_with_assertion(&srv, &c.id, &a).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}
