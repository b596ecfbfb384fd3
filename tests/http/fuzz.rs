//! Property tests through the whole router (issue 7, hostile input): arbitrary authorization
//! requests, token requests, client assertions and request objects, sent in process with
//! `tower::ServiceExt::oneshot` to the same router `latchkey serve` runs, on the test backend.
//!
//! Case counts are bounded so each target takes a few seconds in a debug build;
//! `PROPTEST_CASES=5000 cargo test -p latchkey-tests --test http fuzz::` runs them longer.
use crate::support::{ClientOpts, RegisteredClient, TestServer};
use axum::body::Body;
use axum::http::{self, Request, StatusCode, header};
use josekit::jws::{ES256, HS256, JwsHeader, JwsSigner};
use latchkey_core::Clock;
use latchkey_core::model::{ClientAuthMethod, GrantType};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};
use tower::ServiceExt;

/// Error codes the authorization endpoint may return (RFC 6749 §4.1.2.1, OIDC Core §3.1.2.6,
/// RFC 9101 §6, RFC 9126).
const AUTHORIZE_ERRORS: &[&str] = &[
    "invalid_request",
    "unauthorized_client",
    "access_denied",
    "unsupported_response_type",
    "invalid_scope",
    "server_error",
    "temporarily_unavailable",
    "interaction_required",
    "login_required",
    "account_selection_required",
    "consent_required",
    "invalid_request_uri",
    "invalid_request_object",
    "request_not_supported",
    "request_uri_not_supported",
    "registration_not_supported",
];

/// Error codes of the token endpoint (RFC 6749 §5.2, RFC 8707 §2).
const TOKEN_ERRORS: &[&str] = &[
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "invalid_target",
];

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

fn config(cases: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(cases);
    // Failures are reported with their minimal input; no regression files in the tree.
    Config { cases, failure_persistence: None, ..Config::default() }
}

/// A server, its router for in-process requests, and the clients the properties use.
struct Harness {
    srv: TestServer,
    app: axum::Router,
    /// Public (none), three redirect URIs including a loopback one.
    public: RegisteredClient,
    public_uris: Vec<String>,
    /// client_secret_basic, one redirect URI (may be omitted for non-OpenID requests).
    conf: RegisteredClient,
    /// private_key_jwt (ES256 key "k1"), client credentials only.
    pkj: RegisteredClient,
    pkj_signer: Box<dyn JwsSigner>,
    pkj_public_jwk: String,
    /// Signs request objects with ES256 key "rp1".
    rp: RegisteredClient,
    rp_signer: Box<dyn JwsSigner>,
    jti: AtomicUsize,
    /// Last, so the server and its pool are dropped inside it.
    rt: tokio::runtime::Runtime,
}

fn es256(kid: &str) -> (Box<dyn JwsSigner>, String) {
    let kp = ES256.generate_key_pair().unwrap();
    let mut public = kp.to_jwk_public_key();
    public.set_key_id(kid);
    let jwks = json!({"keys": [serde_json::to_value(public.as_ref()).unwrap()]}).to_string();
    (Box::new(ES256.signer_from_jwk(&kp.to_jwk_private_key()).unwrap()), jwks)
}

impl Harness {
    fn new() -> Harness {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let (srv, public, public_uris, conf, pkj, pkj_signer, pkj_public_jwk, rp, rp_signer) = rt.block_on(async {
            // Parsing is under test here, not the abuse limits (tests/http/limits.rs): thousands of
            // failed client authentications from one IP would otherwise end in 429.
            let srv = TestServer::start_with(|s| s.limits.enabled = false).await;
            let public_uris: Vec<String> =
                ["https://rp.example/cb", "http://127.0.0.1/native", "com.example.app:/cb"].map(String::from).into();
            let public = srv
                .add_client(ClientOpts {
                    auth_method: ClientAuthMethod::None,
                    redirect_uris: public_uris.clone(),
                    ..Default::default()
                })
                .await;
            let conf = srv
                .add_client(ClientOpts {
                    redirect_uris: vec!["https://conf.example/only".into()],
                    grant_types: vec![
                        GrantType::AuthorizationCode,
                        GrantType::RefreshToken,
                        GrantType::ClientCredentials,
                    ],
                    ..Default::default()
                })
                .await;
            let (pkj_signer, pkj_jwks) = es256("k1");
            let pkj = srv
                .add_client(ClientOpts {
                    auth_method: ClientAuthMethod::PrivateKeyJwt,
                    grant_types: vec![GrantType::ClientCredentials],
                    scopes: vec!["api".into()],
                    jwks: Some(pkj_jwks.clone()),
                    ..Default::default()
                })
                .await;
            let (rp_signer, rp_jwks) = es256("rp1");
            let rp = srv.add_client(ClientOpts { jwks: Some(rp_jwks), ..Default::default() }).await;
            (srv, public, public_uris, conf, pkj, pkj_signer, pkj_jwks, rp, rp_signer)
        });
        let app = latchkey::server::router(srv.state().clone(), axum::Router::new());
        Harness {
            srv,
            app,
            public,
            public_uris,
            conf,
            pkj,
            pkj_signer,
            pkj_public_jwk,
            rp,
            rp_signer,
            jti: AtomicUsize::new(0),
            rt,
        }
    }

    /// Send one request through the router; status, headers and body.
    fn send(&self, mut req: Request<Body>) -> (StatusCode, http::HeaderMap, Vec<u8>) {
        // As `serve` does (connect info for per-peer layers).
        req.extensions_mut().insert(axum::extract::ConnectInfo(std::net::SocketAddr::from(([127, 0, 0, 1], 40000))));
        self.rt.block_on(async {
            let resp = self.app.clone().oneshot(req).await.unwrap();
            let (parts, body) = resp.into_parts();
            let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
            (parts.status, parts.headers, bytes.to_vec())
        })
    }

    fn post_form(&self, path: &str, body: Vec<u8>, content_type: Option<&str>, auth: Option<&str>) -> Request<Body> {
        let mut b = Request::post(path);
        if let Some(ct) = content_type {
            b = b.header(header::CONTENT_TYPE, ct);
        }
        if let Some(a) = auth {
            b = b.header(header::AUTHORIZATION, a);
        }
        b.body(Body::from(body)).unwrap()
    }

    fn now(&self) -> i64 {
        self.srv.clock.now()
    }

    fn fresh_jti(&self) -> String {
        format!("jti-{}", self.jti.fetch_add(1, Ordering::SeqCst))
    }

    /// A valid client assertion of the private_key_jwt client, with a fresh jti.
    fn assertion(&self) -> String {
        let claims = json!({"iss": self.pkj.id, "sub": self.pkj.id, "aud": self.srv.url("/token"),
            "exp": self.now() + 60, "iat": self.now(), "jti": self.fresh_jti()});
        sign(self.pkj_signer.as_ref(), Some("k1"), Some("JWT"), &claims)
    }

    /// A valid request object of the request-object client.
    fn request_object(&self) -> String {
        let claims = json!({"iss": self.rp.id, "aud": self.srv.base, "client_id": self.rp.id,
            "response_type": "code", "redirect_uri": self.rp.redirect_uri, "scope": "openid",
            "state": "st", "nonce": "n", "exp": self.now() + 300});
        sign(self.rp_signer.as_ref(), Some("rp1"), Some("oauth-authz-req+jwt"), &claims)
    }

    fn token_with_assertion(&self, assertion: &str) -> (StatusCode, http::HeaderMap, Vec<u8>) {
        let body = form(&[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", assertion),
        ]);
        self.send(self.post_form("/token", body.into_bytes(), Some("application/x-www-form-urlencoded"), None))
    }

    fn authorize_with_request(&self, jwt: &str) -> (StatusCode, http::HeaderMap, Vec<u8>) {
        let q = form(&[
            ("client_id", &self.rp.id),
            ("response_type", "code"),
            ("scope", "openid"),
            ("redirect_uri", &self.rp.redirect_uri),
            ("request", jwt),
        ]);
        self.send(Request::get(format!("/authorize?{q}")).body(Body::empty()).unwrap())
    }
}

fn sign(signer: &dyn JwsSigner, kid: Option<&str>, typ: Option<&str>, claims: &Value) -> String {
    let mut h = JwsHeader::new();
    if let Some(t) = typ {
        h.set_token_type(t);
    }
    if let Some(k) = kid {
        h.set_key_id(k);
    }
    josekit::jws::serialize_compact(claims.to_string().as_bytes(), &h, signer).unwrap()
}

fn b64(bytes: &[u8]) -> String {
    base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, bytes)
}

fn form(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish()
}

fn run<S: Strategy>(cases: u32, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>) {
    let mut runner = TestRunner::new(config(cases));
    if let Err(e) = runner.run(&strategy, test) {
        panic!("{e}");
    }
}

/// How often each outcome was reached, so a generator that stops reaching one is noticed
/// (`--nocapture` prints the counts).
#[derive(Default)]
struct Outcomes(std::sync::Mutex<std::collections::BTreeMap<&'static str, usize>>);

impl Outcomes {
    fn saw(&self, what: &'static str) {
        *self.0.lock().unwrap().entry(what).or_default() += 1;
    }

    fn require(&self, target: &str, all: &[&str]) {
        let seen = self.0.lock().unwrap();
        eprintln!("{target}: {seen:?}");
        for w in all {
            assert!(seen.contains_key(w), "{target}: no case reached `{w}` ({seen:?})");
        }
    }
}

fn location(headers: &http::HeaderMap) -> String {
    headers.get(header::LOCATION).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

fn json_error(headers: &http::HeaderMap, body: &[u8]) -> Result<String, TestCaseError> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    prop_assert!(ct.starts_with("application/json"), "content-type {}", ct);
    prop_assert_eq!(headers.get(header::CACHE_CONTROL).and_then(|v| v.to_str().ok()), Some("no-store"));
    let v: Value = serde_json::from_slice(body).map_err(|e| TestCaseError::fail(e.to_string()))?;
    Ok(v["error"].as_str().unwrap_or_default().to_owned())
}

// ---- (b) authorization requests ----

/// A parameter name: the ones /authorize reads, and others.
fn authorize_key() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => prop::sample::select(vec![
            "client_id", "redirect_uri", "response_type", "scope", "state", "nonce", "code_challenge",
            "code_challenge_method", "prompt", "max_age", "response_mode", "id_token_hint", "claims",
            "request", "request_uri", "registration", "login_hint", "ui_locales", "display", "acr_values",
        ])
        .prop_map(String::from),
        1 => ".{0,8}",
    ]
}

/// A value: the interesting ones for each name, broken variants, and anything.
fn authorize_value(h: &Harness) -> impl Strategy<Value = String> + use<> {
    let clients = vec![h.public.id.clone(), h.conf.id.clone(), h.rp.id.clone(), "nobody".into(), "a\u{0}b".into()];
    let mut uris: Vec<String> = h.public_uris.clone();
    uris.extend([
        "https://conf.example/only".into(),
        "http://127.0.0.1:51234/native".into(),
        "http://127.1:5/native".into(),
        "https://rp.example/cb#frag".into(),
        "https://rp.example/cb/".into(),
        "https://evil.example/cb".into(),
        "HTTPS://rp.example/cb".into(),
    ]);
    prop_oneof![
        prop::sample::select(clients),
        prop::sample::select(uris),
        prop::sample::select(vec![
            "code",
            "token",
            "code id_token",
            "none",
            "openid",
            "openid email offline_access",
            "email",
            "openid\u{0}",
            "query",
            "form_post",
            "fragment",
            "S256",
            "plain",
            "login",
            "none login",
            "consent",
            "select_account",
            "0",
            "-1",
            "99999999999999999999",
            "{}",
            "{\"id_token\":{\"email\":null}}",
            "{\"a\":1,\"a\":2}",
            "a.b.c",
            "eyJhbGciOiJub25lIn0.e30.",
            "urn:ietf:params:oauth:request_uri:x",
            "http://127.0.0.1:9/req",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        ])
        .prop_map(String::from),
        ".{0,40}",
    ]
}

#[derive(Debug, Clone)]
struct AuthorizeCase {
    pairs: Vec<(String, String)>,
    post: bool,
}

/// The oracle: may this request be answered by a redirect to the client, and to which URIs?
fn verified_redirect(h: &Harness, q: &[(String, String)]) -> Option<Vec<String>> {
    // As Params::parse_keeping_first: the first value counts (empty is absent), a repeat is seen.
    let get = |k: &str| {
        let mut v = q.iter().filter(|(key, _)| key == k).map(|(_, v)| v.as_str());
        (v.next().filter(|v| !v.is_empty()), v.count())
    };
    let (client_id, client_repeats) = get("client_id");
    let (redirect_uri, uri_repeats) = get("redirect_uri");
    if client_repeats > 0 || uri_repeats > 0 {
        return None;
    }
    let registered: Vec<String> = match client_id? {
        id if id == h.public.id => h.public_uris.clone(),
        id if id == h.conf.id => vec!["https://conf.example/only".into()],
        id if id == h.rp.id => vec![h.rp.redirect_uri.clone()],
        _ => return None,
    };
    let openid = get("scope").0.is_some_and(|s| s.split(' ').any(|t| t == "openid"));
    match redirect_uri {
        Some(r) => latchkey_core::redirect::matches(&registered, r).map(|_| vec![r.to_owned()]),
        None if !openid && registered.len() == 1 => Some(registered),
        None => None,
    }
}

#[test]
fn fuzz_authorization_requests_never_fail_and_redirect_only_to_verified_uris() {
    let h = Harness::new();
    // A valid request for one of the clients (or an unknown one), then random edits: values
    // replaced or removed, parameters added or repeated. Valid requests are where the deep
    // checks are, random ones where the parser is.
    let clients = vec![
        (h.public.id.clone(), h.public_uris.clone()),
        (h.conf.id.clone(), vec!["https://conf.example/only".to_owned()]),
        (h.rp.id.clone(), vec![h.rp.redirect_uri.clone()]),
        ("nobody".to_owned(), vec!["https://rp.example/cb".to_owned()]),
    ];
    let base = (prop::sample::select(clients), any::<prop::sample::Index>(), any::<bool>()).prop_map(
        |((id, uris), which, form_post)| {
            let uri = which.get(&uris).clone();
            let mut pairs: Vec<(String, String)> = vec![
                ("client_id".into(), id),
                ("redirect_uri".into(), uri),
                ("response_type".into(), "code".into()),
                ("scope".into(), "openid email".into()),
                ("state".into(), "s-1".into()),
                ("nonce".into(), "n-1".into()),
                ("code_challenge".into(), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into()),
                ("code_challenge_method".into(), "S256".into()),
            ];
            if form_post {
                pairs.push(("response_mode".into(), "form_post".into()));
            }
            pairs
        },
    );
    let edit = prop_oneof![
        // Replace (or add) a parameter.
        3 => (authorize_key(), authorize_value(&h)).prop_map(|(k, v)| (k, Some(v), false)),
        // Remove one.
        1 => authorize_key().prop_map(|k| (k, None, false)),
        // Send one again.
        1 => (authorize_key(), authorize_value(&h)).prop_map(|(k, v)| (k, Some(v), true)),
    ];
    let random = prop::collection::vec((authorize_key(), authorize_value(&h)), 0..12);
    let strategy = (
        prop_oneof![3 => base.prop_map(Some), 1 => Just(None)],
        prop::collection::vec(edit, 0..4),
        random,
        any::<bool>(),
    )
        .prop_map(|(base, edits, random, post)| {
            let Some(mut pairs) = base else { return AuthorizeCase { pairs: random, post } };
            for (k, v, repeat) in edits {
                match (v, repeat) {
                    (Some(v), true) => pairs.push((k, v)),
                    (Some(v), false) => match pairs.iter_mut().find(|(key, _)| *key == k) {
                        Some(p) => p.1 = v,
                        None => pairs.push((k, v)),
                    },
                    (None, _) => pairs.retain(|(key, _)| *key != k),
                }
            }
            AuthorizeCase { pairs, post }
        });
    let seen = Outcomes::default();
    run(384, strategy, |case| {
        let q = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(case.pairs.iter()).finish();
        let req = if case.post {
            h.post_form("/authorize", q.clone().into_bytes(), Some("application/x-www-form-urlencoded"), None)
        } else {
            Request::get(format!("/authorize?{q}")).body(Body::empty()).unwrap()
        };
        let (status, headers, body) = h.send(req);
        let verified = verified_redirect(&h, &case.pairs);
        let body_text = String::from_utf8_lossy(&body);
        match status.as_u16() {
            // The error page: the client or redirect URI could not be trusted (or a request
            // object / pushed request named another one).
            400 => {
                seen.saw("error page");
                prop_assert!(body_text.contains("<html"), "400 without the error page");
            }
            302 => {
                seen.saw("error redirect");
                let loc = location(&headers);
                let Some(uris) = verified else {
                    return Err(TestCaseError::fail(format!("redirected to {loc} without a verified redirect URI")));
                };
                prop_assert!(uris.iter().any(|u| loc.starts_with(u.as_str())), "{} not under {:?}", loc, uris);
                let params: Vec<(String, String)> = url::Url::parse(&loc)
                    .unwrap()
                    .query_pairs()
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect();
                prop_assert!(params.iter().any(|(k, v)| k == "iss" && *v == h.srv.base), "no iss in {}", loc);
                let error = params.iter().find(|(k, _)| k == "error").map(|(_, v)| v.as_str());
                prop_assert!(error.is_some_and(|e| AUTHORIZE_ERRORS.contains(&e)), "error {:?} in {}", error, loc);
                prop_assert_ne!(error, Some("server_error"));
            }
            // form_post: a self-posting form to the verified URI, the error inside.
            200 => {
                seen.saw("form_post error");
                let Some(uris) = verified else {
                    return Err(TestCaseError::fail("form_post without a verified redirect URI".to_string()));
                };
                prop_assert!(
                    uris.iter()
                        .any(|u| body_text.contains(&format!("action=\"{}", latchkey_web::redirect::html_escape(u)))),
                    "form_post to an unverified place"
                );
                let has_error = AUTHORIZE_ERRORS.iter().any(|e| body_text.contains(&format!("value=\"{e}\"")));
                prop_assert!(has_error, "form_post without a registered error code");
            }
            // A valid request without a session: on to the login page.
            303 => {
                seen.saw("accepted");
                prop_assert!(verified.is_some(), "accepted without a verified redirect URI");
                prop_assert!(location(&headers).starts_with("/login"), "303 to {}", location(&headers));
            }
            s => return Err(TestCaseError::fail(format!("status {s}: {body_text}"))),
        }
        Ok(())
    });
    seen.require("authorize", &["error page", "error redirect", "form_post error", "accepted"]);
}

// ---- (c) token requests ----

#[derive(Debug, Clone)]
enum Auth {
    None,
    Basic,
    WrongBasic,
    Garbage(String),
}

fn token_value(h: &Harness) -> impl Strategy<Value = String> + use<> {
    prop_oneof![
        prop::sample::select(vec![
            "authorization_code",
            "refresh_token",
            "client_credentials",
            "password",
            "implicit",
            "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "urn:ietf:params:oauth:grant-type:device_code",
            "https://conf.example/only",
            "openid api",
            "%",
            "a.b.c",
            JWT_BEARER,
            "a\u{0}b",
        ])
        .prop_map(String::from),
        prop::sample::select(vec![h.conf.id.clone(), h.pkj.id.clone(), h.public.id.clone()]),
        ".{0,30}",
    ]
}

fn token_key() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => prop::sample::select(vec![
            "grant_type", "code", "redirect_uri", "code_verifier", "refresh_token", "scope", "resource",
            "client_id", "client_secret", "client_assertion", "client_assertion_type", "audience",
        ])
        .prop_map(String::from),
        1 => ".{0,8}",
    ]
}

#[test]
fn fuzz_token_requests_always_get_a_section_5_2_answer() {
    let h = Harness::new();
    // A plausible request for each grant (client_credentials succeeds with the right Basic
    // credentials), then random edits; or random pairs; or random bytes.
    let base = prop::sample::select(vec![
        vec![("grant_type", "client_credentials")],
        vec![("grant_type", "client_credentials"), ("scope", "openid")],
        vec![("grant_type", "authorization_code"), ("code", "abc"), ("redirect_uri", "https://conf.example/only")],
        vec![("grant_type", "refresh_token"), ("refresh_token", "abc")],
    ])
    .prop_map(|v| v.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect::<Vec<_>>());
    let edit = prop_oneof![
        3 => (token_key(), token_value(&h)).prop_map(|(k, v)| (k, Some(v), false)),
        1 => token_key().prop_map(|k| (k, None, false)),
        1 => (token_key(), token_value(&h)).prop_map(|(k, v)| (k, Some(v), true)),
    ];
    let edited = (base, prop::collection::vec(edit, 0..3)).prop_map(|(mut pairs, edits)| {
        for (k, v, repeat) in edits {
            match (v, repeat) {
                (Some(v), true) => pairs.push((k, v)),
                (Some(v), false) => match pairs.iter_mut().find(|(key, _)| *key == k) {
                    Some(p) => p.1 = v,
                    None => pairs.push((k, v)),
                },
                (None, _) => pairs.retain(|(key, _)| *key != k),
            }
        }
        pairs
    });
    let encode = |pairs: Vec<(String, String)>| {
        url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish().into_bytes()
    };
    let body = prop_oneof![
        4 => edited.prop_map(encode),
        2 => prop::collection::vec((token_key(), token_value(&h)), 0..10).prop_map(encode),
        1 => prop::collection::vec(any::<u8>(), 0..200),
        1 => "[a-z_=&%0-9A-F+]{0,200}".prop_map(String::into_bytes),
    ];
    let content_type = prop_oneof![
        6 => Just(Some("application/x-www-form-urlencoded")),
        1 => prop::sample::select(vec![
            Some("application/x-www-form-urlencoded; charset=UTF-8"),
            Some("application/json"),
            Some("multipart/form-data; boundary=x"),
            None,
        ]),
    ];
    let auth = prop_oneof![
        1 => Just(Auth::None),
        3 => Just(Auth::Basic),
        1 => Just(Auth::WrongBasic),
        1 => prop::sample::select(vec!["Basic", "Basic !!!", "Bearer x", "Basic Og==", "basic YTpi", "Basic YTpiOmM="])
            .prop_map(|s| Auth::Garbage(s.to_owned())),
        1 => "Basic [A-Za-z0-9+/=%]{0,24}".prop_map(Auth::Garbage),
    ];
    let seen = Outcomes::default();
    run(512, (body, content_type, auth), |(body, ct, auth)| {
        let secret = h.conf.secret.clone().unwrap_or_default();
        let basic = |id: &str, s: &str| {
            format!("Basic {}", base64::Engine::encode(&base64::engine::general_purpose::STANDARD, format!("{id}:{s}")))
        };
        let header = match &auth {
            Auth::None => None,
            Auth::Basic => Some(basic(&h.conf.id, &secret)),
            Auth::WrongBasic => Some(basic(&h.conf.id, "wrong")),
            Auth::Garbage(g) => Some(g.clone()),
        };
        let (status, headers, resp) = h.send(h.post_form("/token", body, ct, header.as_deref()));
        seen.saw(match status.as_u16() {
            200 => "200",
            400 => "400",
            401 => "401",
            _ => "other",
        });
        match status.as_u16() {
            200 => {
                let v: Value = serde_json::from_slice(&resp).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert!(v["access_token"].is_string() && v["token_type"] == "Bearer", "{}", v);
                prop_assert_eq!(headers.get(header::CACHE_CONTROL).and_then(|v| v.to_str().ok()), Some("no-store"));
            }
            400 | 401 => {
                let e = json_error(&headers, &resp)?;
                prop_assert!(TOKEN_ERRORS.contains(&e.as_str()), "error {:?}", e);
                prop_assert_eq!(status.as_u16() == 401, e == "invalid_client", "{} with {}", status, e);
                if status == 401 && matches!(auth, Auth::Basic | Auth::WrongBasic | Auth::Garbage(_)) {
                    prop_assert!(headers.contains_key(header::WWW_AUTHENTICATE));
                }
            }
            s => return Err(TestCaseError::fail(format!("status {s}: {}", String::from_utf8_lossy(&resp)))),
        }
        Ok(())
    });
    seen.require("token", &["200", "400", "401"]);
}

// ---- (d) client assertions and request objects ----

/// Ways to spoil a valid JWT. Every one must be refused.
#[derive(Debug, Clone)]
enum Spoil {
    /// One byte replaced, inserted or removed anywhere.
    Byte { at: prop::sample::Index, byte: u8, kind: u8 },
    /// The header replaced (signature kept).
    Header(Value),
    /// The payload replaced (signature kept).
    Payload(Value),
    /// Signed again with another key (same kid).
    OtherKey,
    /// HS256 keyed with the client's public JWK (algorithm confusion).
    HmacWithPublicKey,
    /// A fresh, correctly signed token whose header repeats a member name.
    DuplicateHeaderName,
    /// Five segments (JWE form), or segment count off by one.
    Segments(u8),
}

fn spoil() -> impl Strategy<Value = Spoil> {
    prop_oneof![
        4 => (any::<prop::sample::Index>(), any::<u8>(), 0u8..3).prop_map(|(at, byte, kind)| Spoil::Byte { at, byte, kind }),
        2 => prop::sample::select(vec![
            json!({"alg": "none"}),
            json!({"alg": "none", "kid": "KID"}),
            json!({"alg": "HS256", "kid": "KID"}),
            json!({"alg": "RS256", "kid": "KID"}),
            json!({"alg": "ES384", "kid": "KID"}),
            json!({"alg": "es256", "kid": "KID"}),
            json!({"alg": "ES256", "kid": "KID", "crit": ["exp"], "exp": 1}),
            json!({"alg": "ES256", "kid": "KID", "b64": false, "crit": ["b64"]}),
            json!({"alg": "ES256", "kid": "KID", "enc": "A256GCM"}),
            json!({"alg": "ES256", "kid": "KID", "typ": "at+jwt"}),
            json!({"alg": "ES256", "kid": "KID", "jwk": {"kty": "oct", "k": "AAAA"}}),
            json!({"alg": "ES256", "kid": "other"}),
            json!({"alg": ["ES256"], "kid": "KID"}),
        ])
        .prop_map(Spoil::Header),
        1 => prop::sample::select(vec![json!({}), json!({"iss": "x"}), json!([1]), json!("s")]).prop_map(Spoil::Payload),
        1 => Just(Spoil::OtherKey),
        1 => Just(Spoil::HmacWithPublicKey),
        1 => Just(Spoil::DuplicateHeaderName),
        1 => (0u8..3).prop_map(Spoil::Segments),
    ]
}

/// Apply `s` to `valid` (signed by `kid`), or None when the spoiled text equals the original.
fn apply(s: &Spoil, valid: &str, kid: &str, public_jwk: &str) -> Option<String> {
    let parts: Vec<&str> = valid.split('.').collect();
    let (h, p, sig) = (parts[0], parts[1], parts[2]);
    let payload: Value =
        serde_json::from_slice(&base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, p).unwrap())
            .unwrap();
    let out = match s {
        Spoil::Byte { at, byte, kind } => {
            let mut b = valid.as_bytes().to_vec();
            let i = at.index(b.len());
            match kind {
                0 => b[i] = *byte,
                1 => b.insert(i, *byte),
                _ => {
                    b.remove(i);
                }
            }
            String::from_utf8_lossy(&b).into_owned()
        }
        Spoil::Header(hdr) => {
            let hdr = hdr.to_string().replace("KID", kid);
            let sig = if hdr.contains("\"none\"") { "" } else { sig };
            format!("{}.{p}.{sig}", b64(hdr.as_bytes()))
        }
        Spoil::Payload(v) => format!("{h}.{}.{sig}", b64(v.to_string().as_bytes())),
        Spoil::OtherKey => sign(es256(kid).0.as_ref(), Some(kid), Some("JWT"), &payload),
        Spoil::HmacWithPublicKey => {
            let signer = HS256.signer_from_bytes(public_jwk.as_bytes()).unwrap();
            sign(&signer, Some(kid), Some("JWT"), &payload)
        }
        Spoil::DuplicateHeaderName => {
            // Signed correctly, but "alg" appears twice: refused before any key is used.
            let hdr = format!(r#"{{"alg":"HS256","kid":"{kid}","alg":"ES256"}}"#);
            format!("{}.{p}.{sig}", b64(hdr.as_bytes()))
        }
        Spoil::Segments(0) => format!("{h}.{p}.{sig}.{sig}.{sig}"),
        Spoil::Segments(1) => format!("{h}.{p}"),
        Spoil::Segments(_) => format!("{h}.{p}.{sig}."),
    };
    (out != valid).then_some(out)
}

#[test]
fn fuzz_client_assertions_spoiled_in_any_way_are_invalid_client() {
    let h = Harness::new();
    // The harness works: an unspoiled assertion is accepted.
    let (status, _, body) = h.token_with_assertion(&h.assertion());
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    run(192, spoil(), |s| {
        let valid = h.assertion();
        let Some(bad) = apply(&s, &valid, "k1", &h.pkj_public_jwk) else { return Ok(()) };
        let (status, headers, body) = h.token_with_assertion(&bad);
        prop_assert_ne!(status.as_u16(), 200, "accepted {}", bad);
        let e = json_error(&headers, &body)?;
        // A byte change can also spoil the form encoding or the parameter itself.
        prop_assert!(e == "invalid_client" || e == "invalid_request", "{} for {}", e, bad);
        prop_assert!(status == 401 || status == 400);
        Ok(())
    });
}

#[test]
fn fuzz_request_objects_spoiled_in_any_way_are_refused() {
    let h = Harness::new();
    let (status, headers, _) = h.authorize_with_request(&h.request_object());
    assert_eq!(status, 303, "a valid request object goes on to the login page");
    assert!(location(&headers).starts_with("/login"));
    let (_, rp_jwks) = es256("rp1");
    run(192, spoil(), |s| {
        let valid = h.request_object();
        let Some(bad) = apply(&s, &valid, "rp1", &rp_jwks) else { return Ok(()) };
        let (status, headers, _) = h.authorize_with_request(&bad);
        if bad.contains('\0') {
            // NUL is refused with the rest of the query, before the client is known.
            prop_assert_eq!(status.as_u16(), 400, "for {}", bad);
            return Ok(());
        }
        prop_assert_eq!(status.as_u16(), 302, "for {}", bad);
        let loc = location(&headers);
        prop_assert!(loc.starts_with(&h.rp.redirect_uri), "{}", loc);
        let error = url::Url::parse(&loc)
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "error")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        prop_assert_eq!(error, "invalid_request_object", "for {}", bad);
        Ok(())
    });
}
