//! The `openidconnect` crate drives the whole code flow; only the user's part (login, consent)
//! goes through the scripted browser of `support`.

use crate::support::{ClientOpts, Landing, PASSWORD, RegisteredClient, TestServer, query_param};
use latchkey_core::model::{ClientAuthMethod, SigningAlg};
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreClientAuthMethod, CoreErrorResponseType, CoreIdTokenClaims,
    CoreJwsSigningAlgorithm, CoreProviderMetadata, CoreResponseType, CoreUserInfoClaims,
};
use openidconnect::{
    AccessTokenHash, AuthType, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RequestTokenError, ResponseTypes, Scope,
    TokenResponse, UserInfoError,
};

/// The relying party's HTTP client: never follows redirects (as the library's docs advise).
pub(crate) fn rp_http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(20))
        .build()
        .unwrap()
}

/// An error with its whole `source()` chain, for failure messages.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

async fn discover(srv: &TestServer, http: &reqwest::Client) -> CoreProviderMetadata {
    let issuer = IssuerUrl::new(srv.base.clone()).unwrap();
    CoreProviderMetadata::discover_async(issuer, http)
        .await
        .unwrap_or_else(|e| panic!("openidconnect discovery failed: {}", chain(&e)))
}

/// The user's part: follow the authorization URL, sign in, approve; returns the redirect to
/// the client.
pub(crate) async fn user_agent(srv: &TestServer, url: &str, username: &str) -> String {
    let b = srv.browser();
    let mut l = b.navigate(url).await;
    assert!(matches!(&l, Landing::Page(200, p, _) if p.starts_with("/login")), "expected the login page, got {l:?}");
    l = b.login(l, username, PASSWORD).await;
    assert!(
        matches!(&l, Landing::Page(200, p, _) if p.starts_with("/consent")),
        "expected the consent page, got {l:?}"
    );
    l = b.consent(l, "approve").await;
    let Landing::Client(loc) = l else { panic!("expected a redirect to the client, got {l:?}") };
    loc
}

/// What the relying party ends up with.
struct SignedIn {
    claims: CoreIdTokenClaims,
    alg: CoreJwsSigningAlgorithm,
    userinfo: CoreUserInfoClaims,
    scopes: Vec<String>,
}

/// The whole flow as the library runs it. `method` picks how the library authenticates at the
/// token endpoint; `alg` is the one algorithm the verifier accepts.
async fn code_flow(
    srv: &TestServer,
    c: &RegisteredClient,
    username: &str,
    method: ClientAuthMethod,
    alg: CoreJwsSigningAlgorithm,
) -> SignedIn {
    let http = rp_http();
    let metadata = discover(srv, &http).await;
    assert!(metadata.jwks().keys().len() >= 2, "discovery fetched the published JWKS");
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(c.id.clone()),
        c.secret.clone().map(ClientSecret::new),
    )
    .set_redirect_uri(RedirectUrl::new(c.redirect_uri.clone()).unwrap())
    .set_auth_type(if method == ClientAuthMethod::ClientSecretPost {
        AuthType::RequestBody
    } else {
        AuthType::BasicAuth
    });
    assert_eq!(c.secret.is_some(), method != ClientAuthMethod::None);

    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state, nonce) = client
        .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("profile".into()))
        .set_pkce_challenge(challenge)
        .url();

    let loc = user_agent(srv, url.as_str(), username).await;
    assert!(loc.starts_with(&format!("{}?", c.redirect_uri)), "redirected to the registered URI: {loc}");
    assert_eq!(query_param(&loc, "error"), None, "authorization error: {loc}");
    assert_eq!(query_param(&loc, "state").as_deref(), Some(state.secret().as_str()), "state round-trips");
    assert_eq!(query_param(&loc, "iss").as_deref(), Some(srv.base.as_str()), "RFC 9207 iss");
    let code = query_param(&loc, "code").expect("no code in the authorization response");

    let replay_verifier = PkceCodeVerifier::new(verifier.secret().clone());
    let token = client
        .exchange_code(AuthorizationCode::new(code.clone()))
        .expect("discovery gave a token endpoint")
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .unwrap_or_else(|e| panic!("the library's code exchange failed: {}", chain(&e)));
    assert_eq!(token.token_type().as_ref(), "bearer", "token_type (the library lower-cases it)");
    assert!(token.expires_in().is_some_and(|d| d.as_secs() > 0), "expires_in");

    let id_token = token.id_token().expect("the token response has no id_token");
    let id_verifier = client.id_token_verifier().set_allowed_algs([alg.clone()]);
    let claims = id_token
        .claims(&id_verifier, &nonce)
        .unwrap_or_else(|e| panic!("the library rejected the ID token: {}", chain(&e)))
        .clone();
    let signed_with = id_token.signing_alg().unwrap().clone();
    // The verifier really checks: another nonce, or an algorithm it was not told to accept, fail.
    assert!(id_token.claims(&id_verifier, &Nonce::new("another-nonce".into())).is_err(), "a wrong nonce must fail");
    let other_alg = if alg == CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256 {
        CoreJwsSigningAlgorithm::EcdsaP256Sha256
    } else {
        CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256
    };
    assert!(
        id_token.claims(&client.id_token_verifier().set_allowed_algs([other_alg]), &nonce).is_err(),
        "a verifier that does not accept {alg:?} must fail"
    );
    // at_hash is optional in the code flow (OIDC Core §3.1.3.6); when present it must match.
    if let Some(expected) = claims.access_token_hash() {
        let key = id_token.signing_key(&id_verifier).unwrap();
        let actual = AccessTokenHash::from_token(token.access_token(), &signed_with, key).unwrap();
        assert_eq!(&actual, expected, "at_hash");
    }

    let userinfo: CoreUserInfoClaims = client
        .user_info(token.access_token().clone(), Some(claims.subject().clone()))
        .expect("discovery gave a userinfo endpoint")
        .request_async(&http)
        .await
        .unwrap_or_else(|e| panic!("the library's UserInfo request failed: {}", chain(&e)));

    // A code is good once (RFC 6749 §4.1.2); the library parses the error response.
    let replay = client
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(replay_verifier)
        .request_async(&http)
        .await;
    match replay {
        Ok(_) => panic!("a redeemed code was accepted again"),
        Err(RequestTokenError::ServerResponse(r)) => assert_eq!(*r.error(), CoreErrorResponseType::InvalidGrant),
        Err(other) => panic!("expected an invalid_grant error response, got {}", chain(&other)),
    }
    // ...and the server revoked what that code had issued (RFC 6749 §4.1.2 SHOULD; Latchkey does).
    let after: Result<CoreUserInfoClaims, _> =
        client.user_info(token.access_token().clone(), None).unwrap().request_async(&http).await;
    match after {
        Err(UserInfoError::Response(status, ..)) => assert_eq!(status.as_u16(), 401, "UserInfo after code replay"),
        Ok(_) => panic!("the access token still works after its code was replayed"),
        Err(e) => panic!("expected a 401 from UserInfo, got {}", chain(&e)),
    }

    let scopes = token.scopes().map(|s| s.iter().map(|s| s.to_string()).collect()).unwrap_or_default();
    SignedIn { claims, alg: signed_with, userinfo, scopes }
}

/// What every successful sign-in must show. `scope_claims_in_id_token` is the server setting of
/// that name: off (the default), email/profile claims are only in UserInfo (OIDC Core §5.4).
fn assert_identity(
    srv: &TestServer,
    c: &RegisteredClient,
    user: &latchkey_core::model::User,
    s: &SignedIn,
    scope_claims_in_id_token: bool,
) {
    assert_eq!(s.claims.subject().as_str(), user.id, "ID token sub");
    assert_eq!(s.claims.issuer().as_str(), srv.base, "ID token iss");
    assert_eq!(s.claims.audiences().iter().map(|a| a.as_str()).collect::<Vec<_>>(), [c.id.as_str()], "ID token aud");
    assert!(s.claims.expiration() > s.claims.issue_time(), "exp after iat");
    if scope_claims_in_id_token {
        assert_eq!(s.claims.email().map(|e| e.as_str()), Some("alice@example.com"), "ID token email");
        assert_eq!(s.claims.email_verified(), Some(true), "ID token email_verified");
        assert_eq!(
            s.claims.name().and_then(|n| n.get(None)).map(|n| n.as_str()),
            Some("alice Example"),
            "ID token name"
        );
    } else {
        assert_eq!(s.claims.email(), None, "scope claims stay out of the ID token by default");
    }
    assert_eq!(s.userinfo.subject().as_str(), user.id, "UserInfo sub");
    assert_eq!(s.userinfo.email().map(|e| e.as_str()), Some("alice@example.com"), "UserInfo email");
    assert_eq!(s.userinfo.email_verified(), Some(true), "UserInfo email_verified");
    assert_eq!(s.userinfo.name().and_then(|n| n.get(None)).map(|n| n.as_str()), Some("alice Example"), "UserInfo name");
    assert_eq!(
        s.userinfo.given_name().and_then(|n| n.get(None)).map(|n| n.as_str()),
        Some("alice"),
        "UserInfo given_name"
    );
    assert!(s.userinfo.address().is_none(), "the address scope was not requested");
    assert!(s.userinfo.phone_number().is_none(), "the phone scope was not requested");
    let mut scopes = s.scopes.clone();
    scopes.sort();
    // The token response's scope is optional when it equals the request (RFC 6749 §5.1).
    if !scopes.is_empty() {
        assert_eq!(scopes, ["email", "openid", "profile"], "granted scopes");
    }
}

#[tokio::test]
async fn confidential_client_secret_basic() {
    let srv = TestServer::start().await;
    let c = srv.add_client(ClientOpts::default()).await;
    let u = srv.add_user("alice").await;

    // What discovery told the library.
    let md = discover(&srv, &rp_http()).await;
    assert_eq!(md.issuer().as_str(), srv.base);
    assert!(md.response_types_supported().contains(&ResponseTypes::new(vec![CoreResponseType::Code])));
    let auth_methods = md.token_endpoint_auth_methods_supported().cloned().unwrap_or_default();
    for m in
        [CoreClientAuthMethod::ClientSecretBasic, CoreClientAuthMethod::ClientSecretPost, CoreClientAuthMethod::None]
    {
        assert!(auth_methods.contains(&m), "token_endpoint_auth_methods_supported lacks {m:?}: {auth_methods:?}");
    }
    for a in [CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256, CoreJwsSigningAlgorithm::EcdsaP256Sha256] {
        assert!(
            md.id_token_signing_alg_values_supported().contains(&a),
            "id_token_signing_alg_values_supported lacks {a:?}"
        );
    }
    assert!(md.userinfo_endpoint().is_some(), "userinfo_endpoint");

    let s = code_flow(
        &srv,
        &c,
        "alice",
        ClientAuthMethod::ClientSecretBasic,
        CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    )
    .await;
    assert_eq!(s.alg, CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256, "RS256 by default");
    assert_identity(&srv, &c, &u, &s, false);
}

#[tokio::test]
async fn confidential_client_wrong_secret_is_invalid_client() {
    let srv = TestServer::start().await;
    let c = srv.add_client(ClientOpts::default()).await;
    srv.add_user("alice").await;
    let http = rp_http();
    let client = CoreClient::from_provider_metadata(
        discover(&srv, &http).await,
        ClientId::new(c.id.clone()),
        Some(ClientSecret::new("not-the-secret".into())),
    )
    .set_redirect_uri(RedirectUrl::new(c.redirect_uri.clone()).unwrap());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, ..) = client
        .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
        .set_pkce_challenge(challenge)
        .url();
    let loc = user_agent(&srv, url.as_str(), "alice").await;
    let code = query_param(&loc, "code").expect("no code");
    let result = client
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await;
    match result {
        Ok(_) => panic!("a wrong client secret must not get tokens"),
        Err(RequestTokenError::ServerResponse(r)) => assert_eq!(*r.error(), CoreErrorResponseType::InvalidClient),
        Err(other) => panic!("expected an invalid_client error response, got {}", chain(&other)),
    }
}

#[tokio::test]
async fn public_client_with_pkce_and_no_secret() {
    let srv = TestServer::start().await;
    let c = srv.add_client(ClientOpts { auth_method: ClientAuthMethod::None, ..ClientOpts::default() }).await;
    assert!(c.secret.is_none());
    let u = srv.add_user("alice").await;
    let s = code_flow(&srv, &c, "alice", ClientAuthMethod::None, CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256).await;
    assert_identity(&srv, &c, &u, &s, false);
}

#[tokio::test]
async fn es256_id_token_verified_by_the_library() {
    // With the scope claims in the ID token too, so that the library parses a full claim set.
    let srv = TestServer::start_with(|s| s.id_token.scope_claims_in_id_token = true).await;
    let c = srv.add_client(ClientOpts { alg: Some(SigningAlg::ES256), ..ClientOpts::default() }).await;
    let u = srv.add_user("alice").await;
    let s = code_flow(&srv, &c, "alice", ClientAuthMethod::ClientSecretBasic, CoreJwsSigningAlgorithm::EcdsaP256Sha256)
        .await;
    assert_eq!(s.alg, CoreJwsSigningAlgorithm::EcdsaP256Sha256, "signed with the client's registered algorithm");
    assert_identity(&srv, &c, &u, &s, true);
}

#[tokio::test]
async fn confidential_client_secret_post() {
    let srv = TestServer::start().await;
    let c =
        srv.add_client(ClientOpts { auth_method: ClientAuthMethod::ClientSecretPost, ..ClientOpts::default() }).await;
    let u = srv.add_user("alice").await;
    let s =
        code_flow(&srv, &c, "alice", ClientAuthMethod::ClientSecretPost, CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256)
            .await;
    assert_identity(&srv, &c, &u, &s, false);
}
