//! OpenID Connect Core: Basic Certification Profile (oidcc-basic-certification-test-plan),
//! client_secret_basic, response_type=code, static client.
use crate::rp::Rp;
use crate::support::{ClientOpts, Landing, query_param};
use latchkey_core::model::ClientAuthMethod;
use serde_json::{Value, json};

async fn happy(rp: &Rp, scope: &str, extra: &[(&str, &str)]) -> (Value, Value) {
    let a = rp.authorize(scope, extra).await;
    let t = rp.token(&a).await;
    let claims = rp.id_token(&t, a.nonce.as_deref()).await;
    (t, claims)
}

#[tokio::test]
async fn oidcc_server() {
    let rp = Rp::new().await;
    let (t, claims) = happy(&rp, "openid", &[]).await;
    assert_eq!(claims["sub"], rp.user_id.as_str());
    rp.userinfo(&t).await;
}

#[tokio::test]
async fn oidcc_response_type_missing() {
    let rp = Rp::new().await;
    let (url, state, ..) = rp.url("openid", &[], true);
    let url = url.replace("response_type=code&", "");
    let Landing::Client(loc) = rp.browser.navigate(&url).await else { panic!() };
    assert_eq!(query_param(&loc, "error").as_deref(), Some("invalid_request"));
    assert_eq!(query_param(&loc, "state").as_deref(), Some(state.as_str()));
}

#[tokio::test]
async fn oidcc_idtoken_signature() {
    // Rp::id_token verifies the signature with jsonwebtoken against the published JWKS.
    let rp = Rp::new().await;
    happy(&rp, "openid", &[]).await;
}

#[tokio::test]
async fn oidcc_codereuse() {
    let rp = Rp::new().await;
    let a = rp.authorize("openid", &[]).await;
    rp.token(&a).await;
    let r = rp.srv.redeem(&rp.client, &a.code, &a.verifier).await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");
}

#[tokio::test]
async fn oidcc_codereuse_30seconds() {
    let rp = Rp::new().await;
    let a = rp.authorize("openid", &[]).await;
    let t = rp.token(&a).await;
    rp.srv.clock.advance(30);
    let r = rp.srv.redeem(&rp.client, &a.code, &a.verifier).await;
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");
    // RFC 6749 §4.1.2: the tokens issued from the code SHOULD be revoked.
    let r =
        rp.srv.http.get(rp.srv.url("/userinfo")).bearer_auth(t["access_token"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(r.status(), 401);
}

async fn scope_claims(scope: &str, expected: &[&str]) {
    let rp = Rp::new().await;
    let (t, _) = happy(&rp, scope, &[]).await;
    let ui = rp.userinfo(&t).await;
    for c in expected {
        assert!(ui.get(*c).is_some(), "{scope}: {c} missing from UserInfo: {ui}");
    }
}

#[tokio::test]
async fn oidcc_scope_profile() {
    scope_claims(
        "openid profile",
        &["name", "given_name", "family_name", "preferred_username", "locale", "updated_at"],
    )
    .await;
}

#[tokio::test]
async fn oidcc_scope_email() {
    scope_claims("openid email", &["email", "email_verified"]).await;
}

#[tokio::test]
async fn oidcc_scope_address() {
    scope_claims("openid address", &["address"]).await;
}

#[tokio::test]
async fn oidcc_scope_phone() {
    scope_claims("openid phone", &["phone_number"]).await;
}

#[tokio::test]
async fn oidcc_scope_all() {
    scope_claims("openid profile email address phone", &["name", "email", "address", "phone_number"]).await;
}

#[tokio::test]
async fn oidcc_ensure_other_scope_order_succeeds() {
    scope_claims("email openid", &["email"]).await;
}

#[tokio::test]
async fn oidcc_claims_essential() {
    let rp = Rp::new().await;
    let claims = json!({"userinfo": {"name": {"essential": true}}}).to_string();
    let (t, _) = happy(&rp, "openid", &[("claims", &claims)]).await;
    assert!(rp.userinfo(&t).await.get("name").is_some());
}

#[tokio::test]
async fn oidcc_claims_locales() {
    let rp = Rp::new().await;
    happy(&rp, "openid profile", &[("claims_locales", "se")]).await;
}

#[tokio::test]
async fn oidcc_userinfo_get() {
    let rp = Rp::new().await;
    let (t, _) = happy(&rp, "openid email", &[]).await;
    assert_eq!(rp.userinfo(&t).await["email"], "alice@example.com");
}

#[tokio::test]
async fn oidcc_userinfo_post_header() {
    let rp = Rp::new().await;
    let (t, _) = happy(&rp, "openid email", &[]).await;
    let r = rp
        .srv
        .http
        .post(rp.srv.url("/userinfo"))
        .bearer_auth(t["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["sub"], rp.user_id.as_str());
}

#[tokio::test]
async fn oidcc_userinfo_post_body() {
    let rp = Rp::new().await;
    let (t, _) = happy(&rp, "openid email", &[]).await;
    let r = rp
        .srv
        .http
        .post(rp.srv.url("/userinfo"))
        .form(&[("access_token", t["access_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["sub"], rp.user_id.as_str());
}

#[tokio::test]
async fn oidcc_alternate_happy_flow() {
    let rp = Rp::new().await;
    let (t, _) = happy(&rp, "openid email profile", &[("prompt", "consent")]).await;
    rp.userinfo(&t).await;
}

#[tokio::test]
async fn oidcc_display_page() {
    let rp = Rp::new().await;
    happy(&rp, "openid", &[("display", "page")]).await;
}

#[tokio::test]
async fn oidcc_display_popup() {
    let rp = Rp::new().await;
    happy(&rp, "openid", &[("display", "popup")]).await;
}

#[tokio::test]
async fn oidcc_ui_locales() {
    let rp = Rp::new().await;
    happy(&rp, "openid", &[("ui_locales", "se")]).await;
}

#[tokio::test]
async fn oidcc_login_hint() {
    let rp = Rp::new().await;
    let (url, ..) = rp.url("openid", &[("login_hint", "alice")], true);
    let Landing::Page(200, _, body) = rp.browser.navigate(&url).await else { panic!() };
    assert!(body.contains("value=\"alice\""), "login_hint pre-fills the username");
}

#[tokio::test]
async fn oidcc_id_token_hint() {
    let rp = Rp::new().await;
    let (t, first) = happy(&rp, "openid", &[]).await;
    let hint = t["id_token"].as_str().unwrap().to_string();
    let (_, second) = happy(&rp, "openid", &[("prompt", "none"), ("id_token_hint", &hint)]).await;
    assert_eq!(first["sub"], second["sub"]);
}

#[tokio::test]
async fn oidcc_prompt_login() {
    let rp = Rp::new().await;
    let (_, first) = happy(&rp, "openid", &[]).await;
    rp.srv.clock.advance(2);
    let (url, ..) = rp.url("openid", &[("prompt", "login")], true);
    let l = rp.browser.navigate(&url).await;
    assert!(
        matches!(&l, Landing::Page(200, p, _) if p.starts_with("/login")),
        "prompt=login shows the login page: {l:?}"
    );
    let (_, second) = happy(&rp, "openid", &[("prompt", "login")]).await;
    assert!(second["auth_time"].as_i64() > first["auth_time"].as_i64(), "a new authentication");
}

#[tokio::test]
async fn oidcc_prompt_none_logged_in() {
    let rp = Rp::new().await;
    happy(&rp, "openid", &[]).await;
    let (url, ..) = rp.url("openid", &[("prompt", "none")], true);
    let Landing::Client(loc) = rp.browser.navigate(&url).await else { panic!() };
    assert!(query_param(&loc, "code").is_some());
}

#[tokio::test]
async fn oidcc_prompt_none_not_logged_in() {
    let rp = Rp::new().await;
    let (url, state, ..) = rp.url("openid", &[("prompt", "none")], true);
    let Landing::Client(loc) = rp.browser.navigate(&url).await else { panic!() };
    assert_eq!(query_param(&loc, "error").as_deref(), Some("login_required"));
    assert_eq!(query_param(&loc, "state").as_deref(), Some(state.as_str()));
}

#[tokio::test]
async fn oidcc_max_age_1() {
    let rp = Rp::new().await;
    let (_, first) = happy(&rp, "openid", &[]).await;
    rp.srv.clock.advance(2);
    let (url, ..) = rp.url("openid", &[("max_age", "1")], true);
    let l = rp.browser.navigate(&url).await;
    assert!(matches!(&l, Landing::Page(200, p, _) if p.starts_with("/login")), "re-authentication: {l:?}");
    let (_, second) = happy(&rp, "openid", &[("max_age", "1")]).await;
    assert!(second["auth_time"].as_i64() > first["auth_time"].as_i64());
}

#[tokio::test]
async fn oidcc_max_age_10000() {
    let rp = Rp::new().await;
    let (_, first) = happy(&rp, "openid", &[]).await;
    rp.srv.clock.advance(2);
    let (url, ..) = rp.url("openid", &[("max_age", "10000")], true);
    assert!(matches!(rp.browser.navigate(&url).await, Landing::Client(_)), "no re-authentication");
    let (_, second) = happy(&rp, "openid", &[("max_age", "10000")]).await;
    assert_eq!(second["auth_time"], first["auth_time"]);
}

#[tokio::test]
async fn oidcc_ensure_post_request_succeeds() {
    let rp = Rp::new().await;
    let (url, ..) = rp.url("openid", &[], true);
    let q = url.split_once('?').unwrap().1.to_string();
    let r = rp
        .browser
        .http
        .post(rp.srv.url("/authorize"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(q)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "the POSTed request is accepted and continues to login");
}

#[tokio::test]
async fn oidcc_ensure_registered_redirect_uri() {
    let rp = Rp::new().await;
    let (url, ..) = rp.url("openid", &[], true);
    let url = url.replace("rp.example%2Fcb", "rp.example%2Fnot-registered");
    let r = rp.srv.http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 400, "an error page");
    assert!(r.headers().get("location").is_none(), "never a redirect to an unregistered URI");
}

#[tokio::test]
async fn oidcc_ensure_request_object_with_redirect_uri() {
    // A request object whose redirect_uri is not registered: error page, no redirect.
    let rp = Rp::with(|s| s.request_objects.allow_unsigned = true, ClientOpts::default()).await;
    let mut c = rp.srv.state().store.get_client(&rp.client.id).await.unwrap().unwrap();
    c.request_object_signing_alg = Some("none".into());
    rp.srv.update_client(&c).await;
    let obj = json!({"client_id": rp.client.id, "response_type": "code", "scope": "openid", "redirect_uri": "https://attacker.example/cb",
                     "iss": rp.client.id, "aud": rp.srv.base, "exp": latchkey_core::Clock::now(&rp.srv.clock) + 300});
    let b64 = |v: &Value| base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, v.to_string());
    let request = format!("{}.{}.", b64(&json!({"alg": "none"})), b64(&obj));
    let (url, ..) = rp.url("openid", &[("request", &request)], true);
    let r = rp.srv.http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("location").is_none());
}

#[tokio::test]
async fn oidcc_ensure_request_with_acr_values_succeeds() {
    let rp = Rp::new().await;
    let (_, claims) = happy(&rp, "openid", &[("acr_values", "1 2")]).await;
    assert!(claims.get("acr").is_some());
}

#[tokio::test]
async fn oidcc_ensure_request_with_unknown_parameter_succeeds() {
    let rp = Rp::new().await;
    happy(&rp, "openid", &[("extra", "foobar")]).await;
}

#[tokio::test]
async fn oidcc_ensure_request_with_valid_pkce_succeeds() {
    // Rp::authorize always sends an S256 challenge and Rp::token the verifier.
    let rp = Rp::new().await;
    happy(&rp, "openid", &[]).await;
}

#[tokio::test]
async fn oidcc_ensure_request_without_nonce_succeeds_for_code_flow() {
    let rp = Rp::new().await;
    let (url, state, _, verifier) = rp.url("openid", &[], false);
    let Landing::Client(loc) = rp.complete(rp.browser.navigate(&url).await).await else { panic!() };
    assert_eq!(query_param(&loc, "state").as_deref(), Some(state.as_str()));
    let a = crate::rp::Authz { code: query_param(&loc, "code").unwrap(), nonce: None, verifier };
    let t = rp.token(&a).await;
    rp.id_token(&t, None).await;
}

#[tokio::test]
async fn oidcc_refresh_token() {
    let rp = Rp::new().await;
    let (t, first) = happy(&rp, "openid offline_access", &[("prompt", "consent")]).await;
    let rt = t["refresh_token"].as_str().expect("a refresh token with offline_access");
    let r = rp.srv.token(&rp.client, &[("grant_type", "refresh_token"), ("refresh_token", rt)]).await;
    assert_eq!(r.status(), 200);
    let t2: Value = r.json().await.unwrap();
    let second = rp.id_token(&t2, None).await;
    for k in ["iss", "sub", "aud", "auth_time"] {
        assert_eq!(first[k], second[k], "{k} kept on refresh (OIDC Core §12.2)");
    }
    // A refresh token from another client is refused, and spends nothing: the owner's next
    // refresh still succeeds (as the OpenID Foundation module checks).
    let other = rp.srv.add_client(ClientOpts::default()).await;
    let rt2 = t2["refresh_token"].as_str().unwrap();
    let r = rp.srv.token(&other, &[("grant_type", "refresh_token"), ("refresh_token", rt2)]).await;
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");
    let r = rp.srv.token(&rp.client, &[("grant_type", "refresh_token"), ("refresh_token", rt2)]).await;
    assert_eq!(r.status(), 200, "the owner's refresh after another client's attempt");
}

#[tokio::test]
async fn oidcc_server_client_secret_post() {
    let rp =
        Rp::with(|_| {}, ClientOpts { auth_method: ClientAuthMethod::ClientSecretPost, ..Default::default() }).await;
    let a = rp.authorize("openid", &[]).await;
    let secret = rp.client.secret.clone().unwrap();
    let r = rp
        .srv
        .http
        .post(rp.srv.url("/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &a.code),
            ("redirect_uri", &rp.client.redirect_uri),
            ("code_verifier", &a.verifier),
            ("client_id", &rp.client.id),
            ("client_secret", &secret),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let t: Value = r.json().await.unwrap();
    rp.id_token(&t, a.nonce.as_deref()).await;
}

#[tokio::test]
async fn oidcc_unsigned_request_object_supported_correctly_or_rejected_as_unsupported() {
    // Default: rejected (invalid_request_object back to the client).
    let rp = Rp::new().await;
    let obj = json!({"client_id": rp.client.id, "response_type": "code", "scope": "openid", "redirect_uri": rp.client.redirect_uri,
                     "iss": rp.client.id, "aud": rp.srv.base, "exp": latchkey_core::Clock::now(&rp.srv.clock) + 300});
    let b64 = |v: &Value| base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, v.to_string());
    let request = format!("{}.{}.", b64(&json!({"alg": "none"})), b64(&obj));
    let (url, ..) = rp.url("openid", &[("request", &request)], true);
    let Landing::Client(loc) = rp.browser.navigate(&url).await else { panic!() };
    assert_eq!(query_param(&loc, "error").as_deref(), Some("invalid_request_object"));
    // Supported correctly where allowed and registered.
    let rp = Rp::with(|s| s.request_objects.allow_unsigned = true, ClientOpts::default()).await;
    let mut c = rp.srv.state().store.get_client(&rp.client.id).await.unwrap().unwrap();
    c.request_object_signing_alg = Some("none".into());
    rp.srv.update_client(&c).await;
    let obj = json!({"client_id": rp.client.id, "response_type": "code", "scope": "openid", "redirect_uri": rp.client.redirect_uri, "state": "from-object",
                     "iss": rp.client.id, "aud": rp.srv.base, "exp": latchkey_core::Clock::now(&rp.srv.clock) + 300});
    let request = format!("{}.{}.", b64(&json!({"alg": "none"})), b64(&obj));
    let (url, ..) = rp.url("openid", &[("request", &request)], true);
    let Landing::Client(loc) = rp.complete(rp.browser.navigate(&url).await).await else { panic!() };
    assert_eq!(query_param(&loc, "state").as_deref(), Some("from-object"));
    assert!(query_param(&loc, "code").is_some());
}

#[tokio::test]
async fn oidcc_request_uri_unsigned_supported_correctly_or_rejected_as_unsupported() {
    // The request_uri here names a host that cannot be reached from the test: rejected with
    // invalid_request_uri (the success path is tests/http/request_objects.rs).
    let rp = Rp::new().await;
    let (url, ..) = rp.url("openid", &[("request_uri", "https://rp.invalid/request.jwt")], true);
    let Landing::Client(loc) = rp.browser.navigate(&url).await else { panic!() };
    assert_eq!(query_param(&loc, "error").as_deref(), Some("invalid_request_uri"));
}

#[tokio::test]
async fn oidcc_idtoken_unsigned() {
    // Not applicable: Latchkey never issues unsigned ID tokens ("none" is not in
    // id_token_signing_alg_values_supported). The module expects either support or that the
    // OP does not advertise it.
    let rp = Rp::new().await;
    let d = rp.srv.get_json("/.well-known/openid-configuration").await;
    assert!(!d["id_token_signing_alg_values_supported"].as_array().unwrap().iter().any(|a| a == "none"));
}
