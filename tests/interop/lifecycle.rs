//! The token lifecycle as the `openidconnect` crate (and the `oauth2` request builders it
//! re-exports) runs it: refresh with rotation and reuse detection (RFC 6749 §6, RFC 9700
//! §4.14.2, OIDC Core §12), introspection (RFC 7662) and revocation (RFC 7009), with opaque and
//! RFC 9068 JWT access tokens. The endpoints come from discovery, read through the library's
//! additional-metadata hook.
//!
//! RFC 7009 §2 has clients check that the revocation endpoint is https, and the `oauth2` crate
//! enforces that (`ConfigurationError::InsecureUrl`). The test server is plain http on loopback
//! (allowed for the issuer there), so the library is given the https form of the discovered
//! URL and its requests go through [`LoopbackTls`], which sends them to the same loopback port
//! over plain http. The library still builds every request and parses every response itself.

use crate::rp::{chain, rp_http, user_agent};
use crate::support::{ClientOpts, RegisteredClient, TestServer, query_param};
use latchkey_core::Clock;
use latchkey_core::model::{AccessTokenFormat, ClientAuthMethod, User};
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreClaimName, CoreClaimType, CoreClient,
    CoreClientAuthMethod, CoreErrorResponseType, CoreGrantType, CoreIdTokenClaims, CoreJsonWebKey,
    CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm, CoreResponseMode, CoreResponseType,
    CoreRevocableToken, CoreSubjectIdentifierType, CoreTokenIntrospectionResponse, CoreTokenResponse, CoreTokenType,
    CoreUserInfoClaims,
};
use openidconnect::{
    AccessToken, AccessTokenHash, AdditionalProviderMetadata, AsyncHttpClient, AuthType, AuthorizationCode, ClientId,
    ClientSecret, ConfigurationError, CsrfToken, EndpointMaybeSet, EndpointNotSet, EndpointSet, HttpClientError,
    HttpRequest, IntrospectionUrl, IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge, ProviderMetadata,
    RedirectUrl, RefreshToken, RequestTokenError, RevocationUrl, Scope, TokenIntrospectionResponse, TokenResponse,
    UserInfoError,
};
use serde::{Deserialize, Serialize};

/// The discovery fields of RFC 8414 §2 that `CoreProviderMetadata` does not model.
#[derive(Clone, Debug, Deserialize, Serialize)]
struct LifecycleMetadata {
    revocation_endpoint: String,
    introspection_endpoint: String,
    #[serde(default)]
    revocation_endpoint_auth_methods_supported: Vec<CoreClientAuthMethod>,
    #[serde(default)]
    introspection_endpoint_auth_methods_supported: Vec<CoreClientAuthMethod>,
}
impl AdditionalProviderMetadata for LifecycleMetadata {}

type LifecycleProviderMetadata = ProviderMetadata<
    LifecycleMetadata,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// A client from discovery with the revocation and introspection endpoints set.
type RpClient = CoreClient<EndpointSet, EndpointNotSet, EndpointSet, EndpointSet, EndpointMaybeSet, EndpointMaybeSet>;

/// The relying party's HTTP client for the revocation endpoint: `https://127.0.0.1:PORT/...`
/// is sent as `http://127.0.0.1:PORT/...` (see the module docs); nothing else is touched.
struct LoopbackTls(reqwest::Client);

impl<'c> AsyncHttpClient<'c> for LoopbackTls {
    type Error = HttpClientError<reqwest::Error>;
    type Future = <reqwest::Client as AsyncHttpClient<'c>>::Future;

    fn call(&'c self, mut request: HttpRequest) -> Self::Future {
        let uri = request.uri().to_string();
        if let Some(rest) = uri.strip_prefix("https://127.0.0.1:") {
            *request.uri_mut() = format!("http://127.0.0.1:{rest}").parse().unwrap();
        }
        self.0.call(request)
    }
}

/// `https://` in place of the loopback `http://` (see the module docs).
fn as_https(url: &str) -> String {
    let rest = url.strip_prefix("http://127.0.0.1:").expect("the test server is on loopback");
    format!("https://127.0.0.1:{rest}")
}

/// A relying party signed in with `offline_access`.
struct Session {
    http: reqwest::Client,
    tls: LoopbackTls,
    client: RpClient,
    registered: RegisteredClient,
    user: User,
    tokens: CoreTokenResponse,
    claims: CoreIdTokenClaims,
}

impl Session {
    fn refresh_token(&self) -> RefreshToken {
        self.tokens.refresh_token().expect("offline_access with prompt=consent must yield a refresh token").clone()
    }

    /// A refresh through the library: the token response, or the error of the server's error
    /// response (RFC 6749 §5.2) as the library parsed it.
    async fn refresh(&self, rt: &RefreshToken) -> Result<CoreTokenResponse, CoreErrorResponseType> {
        match self
            .client
            .exchange_refresh_token(rt)
            .expect("discovery gave a token endpoint")
            .request_async(&self.http)
            .await
        {
            Ok(t) => Ok(t),
            Err(RequestTokenError::ServerResponse(r)) => Err(r.error().clone()),
            Err(e) => panic!("expected a token response or an error response, got {}", chain(&e)),
        }
    }

    async fn introspect(&self, token: &str, hint: Option<&'static str>) -> CoreTokenIntrospectionResponse {
        let token = AccessToken::new(token.to_owned());
        let mut req = self.client.introspect(&token);
        if let Some(h) = hint {
            req = req.set_token_type_hint(h);
        }
        req.request_async(&self.http)
            .await
            .unwrap_or_else(|e| panic!("the library's introspection failed: {}", chain(&e)))
    }

    async fn revoke(&self, token: CoreRevocableToken) {
        self.client
            .revoke_token(token)
            .expect("the token is revocable")
            .request_async(&self.tls)
            .await
            .unwrap_or_else(|e| panic!("the library's revocation failed: {}", chain(&e)));
    }

    /// Status of a UserInfo request with `at` (200 or the error status).
    async fn userinfo_status(&self, at: &AccessToken) -> u16 {
        let r: Result<CoreUserInfoClaims, _> =
            self.client.user_info(at.clone(), None).expect("a userinfo endpoint").request_async(&self.http).await;
        match r {
            Ok(_) => 200,
            Err(UserInfoError::Response(status, ..)) => status.as_u16(),
            Err(e) => panic!("UserInfo: {}", chain(&e)),
        }
    }

    /// Verify an ID token from a refresh response with the library (OIDC Core §12.2): same
    /// iss, sub, aud and auth_time as the original; a nonce, if any, must be the original one.
    fn verify_refreshed_id_token(&self, t: &CoreTokenResponse) {
        let Some(id_token) = t.id_token() else { return };
        let original_nonce = self.claims.nonce().cloned();
        let verifier = self.client.id_token_verifier();
        let claims = id_token
            .claims(&verifier, |n: Option<&Nonce>| match (n, &original_nonce) {
                (None, _) => Ok(()),
                (Some(n), Some(o)) if n.secret() == o.secret() => Ok(()),
                (Some(_), _) => Err("a nonce other than the original one".to_string()),
            })
            .unwrap_or_else(|e| panic!("the library rejected the refreshed ID token: {}", chain(&e)));
        assert_eq!(claims.subject(), self.claims.subject(), "OIDC Core §12.2: same sub");
        assert_eq!(claims.subject().as_str(), self.user.id, "sub is the user");
        assert_eq!(claims.issuer(), self.claims.issuer(), "OIDC Core §12.2: same iss");
        assert_eq!(claims.audiences(), self.claims.audiences(), "OIDC Core §12.2: same aud");
        assert_eq!(claims.auth_time(), self.claims.auth_time(), "OIDC Core §12.2: same auth_time");
        assert!(claims.issue_time() >= self.claims.issue_time(), "a fresh iat");
        if let Some(expected) = claims.access_token_hash() {
            let alg = id_token.signing_alg().unwrap().clone();
            let key = id_token.signing_key(&verifier).unwrap();
            let actual = AccessTokenHash::from_token(t.access_token(), &alg, key).unwrap();
            assert_eq!(&actual, expected, "at_hash of the refreshed ID token");
        }
    }
}

/// Discovery through the library, with the lifecycle endpoints from the same document.
async fn discover(srv: &TestServer, http: &reqwest::Client) -> LifecycleProviderMetadata {
    let md = LifecycleProviderMetadata::discover_async(IssuerUrl::new(srv.base.clone()).unwrap(), http)
        .await
        .unwrap_or_else(|e| panic!("openidconnect discovery failed: {}", chain(&e)));
    let extra = md.additional_metadata();
    assert_eq!(extra.revocation_endpoint, srv.url("/revoke"), "revocation_endpoint");
    assert_eq!(extra.introspection_endpoint, srv.url("/introspect"), "introspection_endpoint");
    for methods in
        [&extra.revocation_endpoint_auth_methods_supported, &extra.introspection_endpoint_auth_methods_supported]
    {
        for m in [CoreClientAuthMethod::ClientSecretBasic, CoreClientAuthMethod::ClientSecretPost] {
            assert!(methods.contains(&m), "{m:?} is not advertised for revocation/introspection: {methods:?}");
        }
    }
    let grants = md.grant_types_supported().cloned().unwrap_or_default();
    assert!(grants.contains(&CoreGrantType::RefreshToken), "grant_types_supported lacks refresh_token: {grants:?}");
    md
}

/// Register a client with `opts`, then let the library sign alice in with `offline_access` and
/// `prompt=consent` and redeem the code. `method` is how the library authenticates everywhere.
async fn offline_session(srv: &TestServer, opts: ClientOpts) -> Session {
    let method = opts.auth_method;
    let registered = srv.add_client(opts).await;
    let user = match srv.state().store.get_user_by_username("alice").await.unwrap() {
        Some(u) => u,
        None => srv.add_user("alice").await,
    };
    let http = rp_http();
    let md = discover(srv, &http).await;
    let revocation_endpoint = md.additional_metadata().revocation_endpoint.clone();
    let introspection = IntrospectionUrl::new(md.additional_metadata().introspection_endpoint.clone()).unwrap();
    let client = CoreClient::from_provider_metadata(
        md,
        ClientId::new(registered.id.clone()),
        registered.secret.clone().map(ClientSecret::new),
    )
    .set_redirect_uri(RedirectUrl::new(registered.redirect_uri.clone()).unwrap())
    .set_auth_type(if method == ClientAuthMethod::ClientSecretPost {
        AuthType::RequestBody
    } else {
        AuthType::BasicAuth
    })
    .set_introspection_url(introspection);
    // The library refuses the plain-http revocation endpoint (RFC 7009 §2)...
    let insecure = client.clone().set_revocation_url(RevocationUrl::new(revocation_endpoint.clone()).unwrap());
    assert!(
        matches!(
            insecure.revoke_token(CoreRevocableToken::from(AccessToken::new("x".into()))),
            Err(ConfigurationError::InsecureUrl(_))
        ),
        "the oauth2 crate insists on an https revocation endpoint"
    );
    // ...so it gets the https form, and `LoopbackTls` carries its requests.
    let client = client.set_revocation_url(RevocationUrl::new(as_https(&revocation_endpoint)).unwrap());

    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state, nonce) = client
        .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("offline_access".into()))
        .add_prompt(CoreAuthPrompt::Consent)
        .set_pkce_challenge(challenge)
        .url();
    let loc = user_agent(srv, url.as_str(), "alice").await;
    assert_eq!(query_param(&loc, "error"), None, "authorization error: {loc}");
    assert_eq!(query_param(&loc, "state").as_deref(), Some(state.secret().as_str()), "state round-trips");
    let code = query_param(&loc, "code").expect("no code in the authorization response");
    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .expect("discovery gave a token endpoint")
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .unwrap_or_else(|e| panic!("the library's code exchange failed: {}", chain(&e)));
    let claims = tokens
        .id_token()
        .expect("no id_token")
        .claims(&client.id_token_verifier(), &nonce)
        .unwrap_or_else(|e| panic!("the library rejected the ID token: {}", chain(&e)))
        .clone();
    assert_eq!(claims.subject().as_str(), user.id);
    assert!(tokens.refresh_token().is_some(), "offline_access + prompt=consent yields a refresh token");
    assert_eq!(sorted_scopes(&tokens), ["email", "offline_access", "openid"], "granted scope");
    let tls = LoopbackTls(http.clone());
    Session { http, tls, client, registered, user, tokens, claims }
}

fn sorted_scopes(t: &CoreTokenResponse) -> Vec<String> {
    let mut v: Vec<String> = t.scopes().map(|s| s.iter().map(|s| s.to_string()).collect()).unwrap_or_default();
    v.sort();
    v
}

fn introspected_scopes(r: &CoreTokenIntrospectionResponse) -> Vec<String> {
    let mut v: Vec<String> = r.scopes().map(|s| s.iter().map(|s| s.to_string()).collect()).unwrap_or_default();
    v.sort();
    v
}

/// RFC 7662 §2.2: an inactive token yields `active: false` and nothing else.
fn assert_inactive(r: &CoreTokenIntrospectionResponse, what: &str) {
    assert!(!r.active(), "{what} must introspect inactive: {r:?}");
    assert!(
        r.scopes().is_none()
            && r.client_id().is_none()
            && r.username().is_none()
            && r.token_type().is_none()
            && r.exp().is_none()
            && r.iat().is_none()
            && r.sub().is_none()
            && r.aud().is_none()
            && r.iss().is_none()
            && r.jti().is_none(),
        "an inactive answer discloses nothing: {r:?}"
    );
}

/// An active access token of `s` as the library reads the introspection answer.
fn assert_active_access(srv: &TestServer, s: &Session, r: &CoreTokenIntrospectionResponse, jwt: bool) {
    assert!(r.active(), "the access token must introspect active: {r:?}");
    assert_eq!(r.client_id().map(|c| c.as_str()), Some(s.registered.id.as_str()), "client_id");
    assert_eq!(introspected_scopes(r), ["email", "offline_access", "openid"], "scope");
    assert_eq!(r.token_type(), Some(&CoreTokenType::Bearer), "token_type");
    assert_eq!(r.sub(), Some(s.user.id.as_str()), "sub");
    // No profile in the scope: no username (issue 13: no global identifier the scope withholds).
    assert_eq!(r.username(), None, "username");
    assert_eq!(r.iss(), Some(srv.base.as_str()), "iss");
    assert_eq!(
        r.aud().map(|a| a.as_slice()),
        Some(std::slice::from_ref(&srv.base)),
        "aud is the default audience (the issuer)"
    );
    let now = srv.clock.now();
    let (exp, iat) = (r.exp().expect("exp").timestamp(), r.iat().expect("iat").timestamp());
    assert!(iat <= now && now < exp, "iat {iat} <= now {now} < exp {exp}");
    assert_eq!(r.jti().is_some(), jwt, "a jti exactly for JWT access tokens: {r:?}");
}

/// Whether the access token looks like an RFC 9068 JWT (`typ: at+jwt`).
fn is_at_jwt(at: &AccessToken) -> bool {
    match jsonwebtoken::decode_header(at.secret()) {
        Ok(h) => h.typ.as_deref() == Some("at+jwt"),
        Err(_) => false,
    }
}

/// Rotation and reuse detection, all through the library.
async fn refresh_rotation_and_reuse(opts: ClientOpts) {
    let jwt = opts.access_token_format == Some(AccessTokenFormat::Jwt);
    let srv = TestServer::start().await;
    let s = offline_session(&srv, opts).await;
    assert_eq!(is_at_jwt(s.tokens.access_token()), jwt, "access token format");
    let rt1 = s.refresh_token();

    srv.clock.advance(30);
    let t2 = s.refresh(&rt1).await.unwrap_or_else(|e| panic!("the first refresh failed: {e:?}"));
    let rt2 = t2.refresh_token().expect("every refresh rotates: a new refresh token").clone();
    assert_ne!(rt2.secret(), rt1.secret(), "the refresh token was rotated");
    assert_ne!(t2.access_token().secret(), s.tokens.access_token().secret(), "a new access token");
    assert_eq!(is_at_jwt(t2.access_token()), jwt, "the refreshed access token keeps the format");
    assert_eq!(sorted_scopes(&t2), ["email", "offline_access", "openid"], "the refreshed scope");
    assert!(t2.id_token().is_some(), "the scope has openid: an ID token on refresh");
    s.verify_refreshed_id_token(&t2);
    assert_eq!(s.userinfo_status(t2.access_token()).await, 200, "the refreshed access token works");
    // Introspection is checked with confidential clients (public ones are covered by UserInfo).
    let confidential = s.registered.secret.is_some();
    if confidential {
        assert_active_access(&srv, &s, &s.introspect(t2.access_token().secret(), None).await, jwt);
    }

    // A second rotation, so that the family has more than one generation behind the newest.
    srv.clock.advance(30);
    let t3 = s.refresh(&rt2).await.unwrap_or_else(|e| panic!("the second refresh failed: {e:?}"));
    let rt3 = t3.refresh_token().expect("a third refresh token").clone();
    assert!(rt3.secret() != rt1.secret() && rt3.secret() != rt2.secret(), "rotated again");
    s.verify_refreshed_id_token(&t3);

    // Reuse of the first (rotated-out) token: invalid_grant, parsed by the library...
    assert_eq!(
        s.refresh(&rt1).await.err(),
        Some(CoreErrorResponseType::InvalidGrant),
        "replay of a rotated refresh token"
    );
    // ...and the whole family is gone: the newest refresh token and every access token.
    assert_eq!(
        s.refresh(&rt3).await.err(),
        Some(CoreErrorResponseType::InvalidGrant),
        "the newest token after the replay"
    );
    assert_eq!(
        s.refresh(&rt2).await.err(),
        Some(CoreErrorResponseType::InvalidGrant),
        "the middle token after the replay"
    );
    for (what, at) in [("first", s.tokens.access_token()), ("second", t2.access_token()), ("third", t3.access_token())]
    {
        assert_eq!(s.userinfo_status(at).await, 401, "UserInfo with the {what} access token after the replay");
        if confidential {
            let info = s.introspect(at.secret(), None).await;
            assert_inactive(&info, &format!("the {what} access token after the replay"));
        }
    }
    if confidential {
        assert_inactive(&s.introspect(rt3.secret(), Some("refresh_token")).await, "the newest refresh token");
    }
}

/// Introspection and revocation through the library.
async fn introspect_then_revoke(opts: ClientOpts) {
    let jwt = opts.access_token_format == Some(AccessTokenFormat::Jwt);
    let srv = TestServer::start().await;
    let s = offline_session(&srv, opts).await;
    let at = s.tokens.access_token().clone();
    let rt = s.refresh_token();
    assert_eq!(is_at_jwt(&at), jwt, "access token format");

    // Active access token, with and without the matching hint.
    assert_active_access(&srv, &s, &s.introspect(at.secret(), None).await, jwt);
    assert_active_access(&srv, &s, &s.introspect(at.secret(), Some("access_token")).await, jwt);
    // A wrong hint is only a hint (RFC 7662 §2.1).
    assert_active_access(&srv, &s, &s.introspect(at.secret(), Some("refresh_token")).await, jwt);
    // The refresh token introspects too, as the same client's.
    let info = s.introspect(rt.secret(), Some("refresh_token")).await;
    assert!(info.active(), "the refresh token is active: {info:?}");
    assert_eq!(info.client_id().map(|c| c.as_str()), Some(s.registered.id.as_str()), "refresh token client_id");
    assert_eq!(introspected_scopes(&info), ["email", "offline_access", "openid"], "refresh token scope");
    assert_eq!(info.sub(), Some(s.user.id.as_str()), "refresh token sub");
    // Unknown tokens are inactive, not errors.
    assert_inactive(&s.introspect("not-a-token", None).await, "an unknown token");

    // Another client of the same server learns nothing about this client's tokens.
    let other = offline_session(&srv, ClientOpts::default()).await;
    assert_inactive(&other.introspect(at.secret(), None).await, "another client's access token");

    // Revoking the refresh token (the library sends token_type_hint=refresh_token) revokes
    // the family: the access token goes inactive and refresh fails.
    s.revoke(CoreRevocableToken::from(&rt)).await;
    assert_inactive(&s.introspect(at.secret(), None).await, "the access token after revoking its refresh token");
    assert_inactive(&s.introspect(rt.secret(), Some("refresh_token")).await, "the revoked refresh token");
    assert_eq!(s.userinfo_status(&at).await, 401, "UserInfo after revocation");
    assert_eq!(s.refresh(&rt).await.err(), Some(CoreErrorResponseType::InvalidGrant), "refresh after revocation");
    // RFC 7009 §2.2: revoking again, or revoking a token that never existed, is still 200.
    s.revoke(CoreRevocableToken::from(&rt)).await;
    s.revoke(CoreRevocableToken::from(AccessToken::new("not-a-token".into()))).await;
    // The other client's session is untouched.
    assert!(other.introspect(other.tokens.access_token().secret(), None).await.active(), "another client's token");

    // Revoking only an access token leaves the refresh token working.
    let s2 = offline_session(&srv, ClientOpts { access_token_format: at_format(jwt), ..ClientOpts::default() }).await;
    let at2 = s2.tokens.access_token().clone();
    s2.revoke(CoreRevocableToken::from(&at2)).await;
    assert_inactive(&s2.introspect(at2.secret(), None).await, "a revoked access token");
    assert_eq!(s2.userinfo_status(&at2).await, 401, "UserInfo with a revoked access token");
    let t = s2
        .refresh(&s2.refresh_token())
        .await
        .unwrap_or_else(|e| panic!("refresh after revoking an access token: {e:?}"));
    assert_active_access(&srv, &s2, &s2.introspect(t.access_token().secret(), None).await, jwt);
}

fn at_format(jwt: bool) -> Option<AccessTokenFormat> {
    jwt.then_some(AccessTokenFormat::Jwt)
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_family() {
    refresh_rotation_and_reuse(ClientOpts::default()).await;
}

#[tokio::test]
async fn refresh_with_client_secret_post() {
    refresh_rotation_and_reuse(ClientOpts { auth_method: ClientAuthMethod::ClientSecretPost, ..ClientOpts::default() })
        .await;
}

#[tokio::test]
async fn introspection_and_revocation() {
    introspect_then_revoke(ClientOpts::default()).await;
}

#[tokio::test]
async fn introspection_and_revocation_with_client_secret_post() {
    introspect_then_revoke(ClientOpts { auth_method: ClientAuthMethod::ClientSecretPost, ..ClientOpts::default() })
        .await;
}

#[tokio::test]
async fn jwt_access_tokens_refresh_rotates_and_reuse_revokes_the_family() {
    refresh_rotation_and_reuse(ClientOpts { access_token_format: at_format(true), ..ClientOpts::default() }).await;
}

#[tokio::test]
async fn jwt_access_tokens_introspection_and_revocation() {
    introspect_then_revoke(ClientOpts { access_token_format: at_format(true), ..ClientOpts::default() }).await;
}

#[tokio::test]
async fn public_client_refresh_rotates_and_reuse_revokes_the_family() {
    refresh_rotation_and_reuse(ClientOpts { auth_method: ClientAuthMethod::None, ..ClientOpts::default() }).await;
}

/// RFC 7009 §2.1 lets public clients revoke their tokens (identified by client_id alone).
#[tokio::test]
async fn public_client_revokes_its_refresh_token() {
    let srv = TestServer::start().await;
    let s = offline_session(&srv, ClientOpts { auth_method: ClientAuthMethod::None, ..ClientOpts::default() }).await;
    assert!(s.registered.secret.is_none());
    let rt = s.refresh_token();
    s.revoke(CoreRevocableToken::from(&rt)).await;
    assert_eq!(s.userinfo_status(s.tokens.access_token()).await, 401, "the family's access token is revoked");
    assert_eq!(s.refresh(&rt).await.err(), Some(CoreErrorResponseType::InvalidGrant), "refresh after revocation");
}
