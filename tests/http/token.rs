//! /token with grant_type=authorization_code: RFC 6749 §4.1.3, §5.2; RFC 7636 §4.6.
use crate::support::{ClientOpts, RegisteredClient, TestServer, authorize_url, pkce_pair};
use latchkey_core::model::{ClientAuthMethod, GrantType, SigningAlg};
use serde_json::Value;

async fn error_of(r: reqwest::Response) -> (u16, String, Option<String>) {
    let status = r.status().as_u16();
    let www = r.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_string());
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    let v: Value = r.json().await.unwrap();
    (status, v["error"].as_str().unwrap().to_string(), www)
}

async fn setup(opts: ClientOpts) -> (TestServer, RegisteredClient) {
    let srv = TestServer::start().await;
    let c = srv.add_client(opts).await;
    srv.add_user("alice").await;
    (srv, c)
}

#[tokio::test]
async fn missing_and_unknown_grant_types() {
    let (srv, c) = setup(ClientOpts::default()).await;
    assert_eq!(error_of(srv.token(&c, &[]).await).await.1, "invalid_request");
    assert_eq!(error_of(srv.token(&c, &[("grant_type", "password")]).await).await.1, "unsupported_grant_type");
    let only_cc =
        srv.add_client(ClientOpts { grant_types: vec![GrantType::ClientCredentials], ..Default::default() }).await;
    let (s, e, _) = error_of(srv.token(&only_cc, &[("grant_type", "authorization_code"), ("code", "x")]).await).await;
    assert_eq!((s, e.as_str()), (400, "unauthorized_client"));
}

#[tokio::test]
async fn client_authentication_failures_are_invalid_client() {
    let (srv, c) = setup(ClientOpts::default()).await;
    let form = [("grant_type", "authorization_code"), ("code", "x")];
    // No authentication at all: 401, no Basic challenge since Basic was not tried.
    let r = srv.http.post(srv.url("/token")).form(&form).send().await.unwrap();
    let (s, e, www) = error_of(r).await;
    assert_eq!((s, e.as_str(), www), (401, "invalid_client", None));
    // Wrong secret with Basic: 401 with WWW-Authenticate.
    let r = srv.http.post(srv.url("/token")).basic_auth(&c.id, Some("wrong")).form(&form).send().await.unwrap();
    let (s, e, www) = error_of(r).await;
    assert_eq!((s, e.as_str()), (401, "invalid_client"));
    assert!(www.unwrap().starts_with("Basic"));
    // A method other than the registered one (client_secret_basic) is refused.
    let mut f = form.to_vec();
    f.push(("client_id", &c.id));
    let secret = c.secret.clone().unwrap();
    f.push(("client_secret", &secret));
    let r = srv.http.post(srv.url("/token")).form(&f).send().await.unwrap();
    assert_eq!(error_of(r).await.1, "invalid_client");
    // Two methods at once.
    let r = srv.http.post(srv.url("/token")).basic_auth(&c.id, Some(&secret)).form(&f).send().await.unwrap();
    assert_eq!(error_of(r).await.1, "invalid_request");
    // Garbage Authorization header.
    let r = srv.http.post(srv.url("/token")).header("authorization", "Basic !!!").form(&form).send().await.unwrap();
    assert_eq!(error_of(r).await.1, "invalid_client");
    // Unknown client.
    let r = srv.http.post(srv.url("/token")).basic_auth("nobody", Some("x")).form(&form).send().await.unwrap();
    assert_eq!(error_of(r).await.1, "invalid_client");
}

#[tokio::test]
async fn basic_credentials_are_form_url_decoded() {
    let srv = TestServer::start().await;
    // A client id and secret with characters that must be encoded (RFC 6749 §2.3.1).
    let now = latchkey_core::Clock::now(&srv.clock);
    let secret = "s3cr3t:with %&+ chars";
    let client = latchkey_core::model::Client {
        client_id: "svc:1 2".into(),
        name: "odd".into(),
        secret_hash: Some(latchkey_core::SecretToken::from_presented(secret).hash()),
        redirect_uris: vec!["https://rp.example/cb".into()],
        post_logout_redirect_uris: vec![],
        auth_method: ClientAuthMethod::ClientSecretBasic,
        grant_types: vec![GrantType::AuthorizationCode],
        scopes: vec!["openid".into()],
        skip_consent: true,
        require_pkce: false,
        id_token_signed_response_alg: None,
        created_at: now,
        updated_at: now,
        ..Default::default()
    };
    srv.state().store.create_client(&client).await.unwrap();
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let r = srv
        .http
        .post(srv.url("/token"))
        .basic_auth(enc("svc:1 2"), Some(enc(secret)))
        .form(&[("grant_type", "authorization_code"), ("code", "unknown")])
        .send()
        .await
        .unwrap();
    // Authenticated (so the failure is about the code, not the client).
    assert_eq!(error_of(r).await.1, "invalid_grant");
}

/// Issue 13: the Basic secret is one form-encoded value, not a form: `SECRET&junk=1` (or
/// `SECRET&client_id=x`) is a different secret, never `SECRET`.
#[tokio::test]
async fn a_basic_secret_with_form_junk_appended_does_not_authenticate_as_the_secret() {
    let (srv, c) = setup(ClientOpts::default()).await;
    let secret = c.secret.clone().unwrap();
    let form = [("grant_type", "authorization_code"), ("code", "unknown")];
    for junk in ["&junk=1", "&client_id=x", "&v=1", "&"] {
        let raw = format!("{}:{secret}{junk}", c.id);
        let header = format!("Basic {}", base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &raw));
        let r = srv.http.post(srv.url("/token")).header("authorization", header).form(&form).send().await.unwrap();
        let (s, e, www) = error_of(r).await;
        assert_eq!((s, e.as_str()), (401, "invalid_client"), "{junk}");
        assert!(www.unwrap().starts_with("Basic"), "{junk}");
    }
    // A NUL or invalid UTF-8 in either half is refused as well.
    for raw in [format!("{}:{secret}%00", c.id), format!("{}%FF:{secret}", c.id)] {
        let header = format!("Basic {}", base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &raw));
        let r = srv.http.post(srv.url("/token")).header("authorization", header).form(&form).send().await.unwrap();
        assert_eq!(error_of(r).await.1, "invalid_client", "{raw}");
    }
    // The secret itself still authenticates (the failure is about the code).
    let r = srv.http.post(srv.url("/token")).basic_auth(&c.id, Some(&secret)).form(&form).send().await.unwrap();
    assert_eq!(error_of(r).await.1, "invalid_grant");
}

#[tokio::test]
async fn malformed_bodies_are_invalid_request_never_500() {
    let (srv, c) = setup(ClientOpts::default()).await;
    let secret = c.secret.clone().unwrap();
    let send = |body: Vec<u8>, ctype: &'static str| {
        srv.http
            .post(srv.url("/token"))
            .basic_auth(&c.id, Some(&secret))
            .header("content-type", ctype)
            .body(body)
            .send()
    };
    for (body, ctype) in [
        (b"grant_type=authorization_code&grant_type=authorization_code".to_vec(), "application/x-www-form-urlencoded"),
        (b"grant_type=authorization_code&code=%FF".to_vec(), "application/x-www-form-urlencoded"),
        (b"grant_type=authorization_code&code=%G1".to_vec(), "application/x-www-form-urlencoded"),
        (
            format!("grant_type=authorization_code&code={}", "a".repeat(9000)).into_bytes(),
            "application/x-www-form-urlencoded",
        ),
        (br#"{"grant_type":"authorization_code"}"#.to_vec(), "application/json"),
        (b"grant_type=authorization_code".to_vec(), "text/plain"),
    ] {
        let r = send(body, ctype).await.unwrap();
        let (s, e, _) = error_of(r).await;
        assert_eq!((s, e.as_str()), (400, "invalid_request"));
    }
    let r = srv.http.get(srv.url("/token")).send().await.unwrap();
    assert_eq!(r.status(), 405);
}

#[tokio::test]
async fn id_token_carries_the_required_claims_and_at_hash() {
    let (srv, c) = setup(ClientOpts::default()).await;
    let b = srv.browser();
    let (code, nonce, verifier) = srv.sign_in(&b, &c, "alice", "openid").await;
    let t: Value = srv.redeem(&c, &code, &verifier).await.json().await.unwrap();
    let id = t["id_token"].as_str().unwrap();
    let header: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, id.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "RS256");
    assert!(header["kid"].is_string());
    let claims = srv.state().keys.verify(id).unwrap();
    let now = latchkey_core::Clock::now(&srv.clock);
    assert_eq!(claims["iss"], srv.base.as_str());
    assert_eq!(claims["aud"], c.id.as_str());
    assert_eq!(claims["azp"], c.id.as_str());
    assert_eq!(claims["nonce"], nonce.as_str());
    assert_eq!(claims["iat"], now);
    assert_eq!(claims["exp"], now + 3600);
    assert_eq!(claims["auth_time"], now);
    assert_eq!(claims["amr"], serde_json::json!(["pwd"]));
    assert!(claims["sid"].is_string());
    assert!(claims["sub"].as_str().unwrap().len() <= 255);
    let expected = {
        use sha2::Digest;
        let d = sha2::Sha256::digest(t["access_token"].as_str().unwrap().as_bytes());
        base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, &d[..16])
    };
    assert_eq!(claims["at_hash"], expected.as_str());
    // Scope claims go to UserInfo (OIDC Core §5.4), not the ID token.
    assert!(claims.get("email").is_none());
}

#[tokio::test]
async fn id_token_uses_the_clients_registered_algorithm() {
    let (srv, c) = setup(ClientOpts { alg: Some(SigningAlg::ES256), ..Default::default() }).await;
    let b = srv.browser();
    let (code, _, verifier) = srv.sign_in(&b, &c, "alice", "openid").await;
    let t: Value = srv.redeem(&c, &code, &verifier).await.json().await.unwrap();
    let h = jsonwebtoken::decode_header(t["id_token"].as_str().unwrap()).unwrap();
    assert_eq!(h.alg, jsonwebtoken::Algorithm::ES256);
}

#[tokio::test]
async fn plain_oauth_requests_get_no_id_token() {
    let (srv, c) = setup(ClientOpts { scopes: vec!["openid".into(), "api".into()], ..Default::default() }).await;
    let b = srv.browser();
    let (code, _, verifier) = srv.sign_in(&b, &c, "alice", "api").await;
    let t: Value = srv.redeem(&c, &code, &verifier).await.json().await.unwrap();
    assert!(t.get("id_token").is_none());
    assert_eq!(t["scope"], "api");
}

#[tokio::test]
async fn second_use_of_a_code_is_invalid_grant_and_revokes_its_tokens() {
    let (srv, c) = setup(ClientOpts::default()).await;
    let b = srv.browser();
    let (code, _, verifier) = srv.sign_in(&b, &c, "alice", "openid").await;
    let t: Value = srv.redeem(&c, &code, &verifier).await.json().await.unwrap();
    let at = t["access_token"].as_str().unwrap().to_string();
    let r = srv.http.get(srv.url("/userinfo")).bearer_auth(&at).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let (s, e, _) = error_of(srv.redeem(&c, &code, &verifier).await).await;
    assert_eq!((s, e.as_str()), (400, "invalid_grant"));
    let r = srv.http.get(srv.url("/userinfo")).bearer_auth(&at).send().await.unwrap();
    assert_eq!(r.status(), 401, "the token issued from a reused code must be revoked");
}

#[tokio::test]
async fn two_simultaneous_redemptions_of_one_code_exactly_one_succeeds() {
    let (srv, c) = setup(ClientOpts::default()).await;
    let b = srv.browser();
    for _ in 0..5 {
        let (code, _, verifier) = srv.sign_in(&b, &c, "alice", "openid").await;
        let (a, b2) = tokio::join!(srv.redeem(&c, &code, &verifier), srv.redeem(&c, &code, &verifier));
        let ok = [a.status().as_u16(), b2.status().as_u16()].iter().filter(|s| **s == 200).count();
        assert_eq!(ok, 1, "exactly one redemption wins");
    }
}

#[tokio::test]
async fn code_checks_client_redirect_uri_pkce_and_expiry() {
    let (srv, c) = setup(ClientOpts::default()).await;
    let other = srv.add_client(ClientOpts::default()).await;
    let b = srv.browser();

    let (code, _, verifier) = srv.sign_in(&b, &c, "alice", "openid").await;
    let (_, e, _) = error_of(srv.redeem(&other, &code, &verifier).await).await;
    assert_eq!(e, "invalid_grant", "issued to another client");

    let (code, _, verifier) = srv.sign_in(&b, &c, "alice", "openid").await;
    let r = srv
        .token(
            &c,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", "https://rp.example/other"),
                ("code_verifier", &verifier),
            ],
        )
        .await;
    assert_eq!(error_of(r).await.1, "invalid_grant", "redirect_uri mismatch");

    let (code, _, _) = srv.sign_in(&b, &c, "alice", "openid").await;
    let (wrong, _) = pkce_pair();
    assert_eq!(error_of(srv.redeem(&c, &code, &wrong).await).await.1, "invalid_grant", "wrong verifier");

    let (code, _, _) = srv.sign_in(&b, &c, "alice", "openid").await;
    let r = srv
        .token(&c, &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", &c.redirect_uri)])
        .await;
    assert_eq!(error_of(r).await.1, "invalid_grant", "missing verifier");

    let (code, _, verifier) = srv.sign_in(&b, &c, "alice", "openid").await;
    srv.clock.advance(61);
    assert_eq!(error_of(srv.redeem(&c, &code, &verifier).await).await.1, "invalid_grant", "expired after 60 s");

    assert_eq!(error_of(srv.redeem(&c, "made-up", &verifier).await).await.1, "invalid_grant");
}

#[tokio::test]
async fn a_verifier_without_a_challenge_is_refused() {
    // RFC 9700 §2.1.1: no PKCE downgrade.
    let (srv, c) = setup(ClientOpts { skip_consent: true, ..Default::default() }).await;
    let b = srv.browser();
    srv.sign_in(&b, &c, "alice", "openid").await;
    let (url, ..) = crate::support::authorize_url(&srv.base, &c, "openid", &[]);
    let mut u = url::Url::parse(&url).unwrap();
    let pairs: Vec<(String, String)> =
        u.query_pairs().filter(|(k, _)| !k.starts_with("code_challenge")).map(|(a, b)| (a.into(), b.into())).collect();
    u.query_pairs_mut().clear().extend_pairs(pairs);
    let crate::support::Landing::Client(loc) = b.navigate(u.as_str()).await else { panic!() };
    let code = crate::support::query_param(&loc, "code").unwrap();
    let (verifier, _) = pkce_pair();
    assert_eq!(error_of(srv.redeem(&c, &code, &verifier).await).await.1, "invalid_grant");
}

#[tokio::test]
async fn public_clients_redeem_with_pkce_and_no_secret() {
    let (srv, c) = setup(ClientOpts { auth_method: ClientAuthMethod::None, ..Default::default() }).await;
    let b = srv.browser();
    let (code, _, verifier) = srv.sign_in(&b, &c, "alice", "openid").await;
    let r = srv.redeem(&c, &code, &verifier).await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn client_secret_post_clients_authenticate_in_the_body() {
    let (srv, c) = setup(ClientOpts { auth_method: ClientAuthMethod::ClientSecretPost, ..Default::default() }).await;
    let b = srv.browser();
    let (code, _, verifier) = srv.sign_in(&b, &c, "alice", "openid").await;
    let secret = c.secret.clone().unwrap();
    let r = srv
        .http
        .post(srv.url("/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &c.redirect_uri),
            ("code_verifier", &verifier),
            ("client_id", &c.id),
            ("client_secret", &secret),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// Issue 7 (hostile input): a NUL character (`%00`) reached the database, which PostgreSQL
/// refuses for text: a 500 instead of the spec's error. No OAuth parameter may contain one
/// (RFC 6749 Appendix A), so it is refused when parameters are decoded.
#[tokio::test]
async fn nul_in_parameters_or_basic_credentials_is_refused_never_500() {
    let (srv, c) = setup(ClientOpts::default()).await;
    let post = |body: &'static str| {
        srv.http.post(srv.url("/token")).header("content-type", "application/x-www-form-urlencoded").body(body).send()
    };
    let (s, e, _) = error_of(post("grant_type=client_credentials&client_id=a%00b").await.unwrap()).await;
    assert_eq!((s, e.as_str()), (400, "invalid_request"));
    let (s, e, _) = error_of(post("grant_type=client_credentials&client_id=x&client_secret=%00").await.unwrap()).await;
    assert_eq!((s, e.as_str()), (400, "invalid_request"));
    let r =
        srv.http.post(srv.url("/token")).basic_auth("a\0b", Some("s")).form(&[("grant_type", "client_credentials")]);
    let (s, e, www) = error_of(r.send().await.unwrap()).await;
    assert_eq!((s, e.as_str()), (401, "invalid_client"));
    assert!(www.is_some());
    let r =
        srv.http.post(srv.url("/token")).basic_auth(&c.id, Some("a%00")).form(&[("grant_type", "client_credentials")]);
    assert_eq!(error_of(r.send().await.unwrap()).await.1, "invalid_client");
}

/// Issue 14: a refused presentation spends nothing (RFC 6749 §4.1.3, RFC 9700 §4.14). Before,
/// the code was claimed first and refused after, so another client (a public one needs no
/// secret) could burn a victim's code, and the owner's own redemption then revoked its grant.
#[tokio::test]
async fn a_refused_redemption_spends_nothing_and_the_owner_still_redeems() {
    let (srv, c) = setup(ClientOpts::default()).await;
    let other = srv.add_client(ClientOpts::default()).await;
    let public = srv.add_client(ClientOpts { auth_method: ClientAuthMethod::None, ..Default::default() }).await;
    let b = srv.browser();
    let (code, _, verifier) = srv.sign_in(&b, &c, "alice", "openid offline_access").await;
    let (wrong, _) = pkce_pair();
    let redirect = c.redirect_uri.clone();
    type Attempt<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a RegisteredClient);
    let attempts: Vec<Attempt> = vec![
        ("another confidential client", vec![("redirect_uri", &redirect), ("code_verifier", &verifier)], &other),
        ("a public client", vec![("redirect_uri", &redirect), ("code_verifier", &verifier)], &public),
        ("a wrong redirect_uri", vec![("redirect_uri", "https://rp.example/other"), ("code_verifier", &verifier)], &c),
        ("a wrong verifier", vec![("redirect_uri", &redirect), ("code_verifier", &wrong)], &c),
        ("no verifier", vec![("redirect_uri", &redirect)], &c),
    ];
    for (what, extra, who) in attempts {
        let mut form = vec![("grant_type", "authorization_code"), ("code", code.as_str())];
        form.extend(extra);
        let (s, e, _) = error_of(srv.token(who, &form).await).await;
        assert_eq!((s, e.as_str()), (400, "invalid_grant"), "{what}");
    }
    // The owner's redemption still works, and its tokens are live.
    let r = srv.redeem(&c, &code, &verifier).await;
    assert_eq!(r.status(), 200, "the owner's code must survive refused presentations");
    let t: Value = r.json().await.unwrap();
    let r = srv.http.get(srv.url("/userinfo")).bearer_auth(t["access_token"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // Now it is spent: a second use is a replay, as always.
    assert_eq!(error_of(srv.redeem(&c, &code, &verifier).await).await.1, "invalid_grant");
    // Each refusal is audited, with the client that presented it.
    let audit = srv.state().store.list_audit(0, 1000).await.unwrap();
    let refused: Vec<_> = audit.iter().filter(|e| e.kind == "authorization_code.refused").collect();
    assert_eq!(refused.len(), 5, "{audit:?}");
    assert!(refused.iter().any(|e| e.client_id.as_deref() == Some(other.id.as_str())));
}

/// Issue 14: a refused refresh (another client, a widened scope) spends nothing; the owner's
/// next refresh succeeds and the family stays alive (OpenID conformance `oidcc-refresh-token`).
#[tokio::test]
async fn a_refused_refresh_spends_nothing_and_the_owner_still_refreshes() {
    let (srv, c) = setup(ClientOpts::default()).await;
    let other = srv.add_client(ClientOpts::default()).await;
    let b = srv.browser();
    let (url, _, _, verifier) = authorize_url(&srv.base, &c, "openid email offline_access", &[("prompt", "consent")]);
    let l = b.login(b.navigate(&url).await, "alice", crate::support::PASSWORD).await;
    let crate::support::Landing::Client(loc) = b.consent(l, "approve").await else { panic!() };
    let code = crate::support::query_param(&loc, "code").unwrap();
    let t: Value = srv.redeem(&c, &code, &verifier).await.json().await.unwrap();
    let rt = t["refresh_token"].as_str().expect("a refresh token").to_string();
    let (_, e, _) = error_of(srv.token(&other, &[("grant_type", "refresh_token"), ("refresh_token", &rt)]).await).await;
    assert_eq!(e, "invalid_grant", "another client's refresh token");
    let widen = [("grant_type", "refresh_token"), ("refresh_token", rt.as_str()), ("scope", "openid email phone")];
    let (_, e, _) = error_of(srv.token(&c, &widen).await).await;
    assert_eq!(e, "invalid_scope", "a widened scope");
    let r = srv.token(&c, &[("grant_type", "refresh_token"), ("refresh_token", &rt)]).await;
    assert_eq!(r.status(), 200, "the owner's refresh token must survive refused presentations");
    let t2: Value = r.json().await.unwrap();
    let r = srv.http.get(srv.url("/userinfo")).bearer_auth(t2["access_token"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(r.status(), 200, "the family is alive");
    let audit = srv.state().store.list_audit(0, 1000).await.unwrap();
    assert_eq!(audit.iter().filter(|e| e.kind == "refresh_token.refused").count(), 2, "{audit:?}");
}
