//! `latchkey serve --demo`: a demo user and a demo relying party served at `/demo`, which runs
//! the real code flow (PKCE, nonce, state) against this server over HTTP, verifies the ID token
//! with the published JWKS, and calls UserInfo.

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use latchkey_core::model::{Client, ClientAuthMethod, GrantType, User};
use latchkey_core::{OAuthError, SecretToken};
use latchkey_storage::Created;
use latchkey_web::errors::html;
use latchkey_web::{AppState, ErrorPage, QueryParams, interaction};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

pub const DEMO_USERNAME: &str = "demo";
const DEMO_CLIENT_NAME: &str = "Latchkey demo app";
const STATE_COOKIE: &str = "latchkey_demo_state";

/// What `--demo` set up.
#[derive(Debug, Clone)]
pub struct DemoInfo {
    pub client_id: String,
    /// The demo user's password, when it was created now (it is shown once).
    pub new_password: Option<String>,
}

/// Create (once) the demo user and the demo client.
pub async fn setup(state: &AppState) -> Result<DemoInfo, String> {
    let store = &state.store;
    let now = state.now();
    let redirect = state.settings.endpoint("/demo/callback");
    let existing = store.list_clients().await.map_err(|e| e.to_string())?;
    let client_id = match existing.iter().find(|c| c.name == DEMO_CLIENT_NAME && c.redirect_uris.contains(&redirect)) {
        Some(c) => c.client_id.clone(),
        None => {
            let c = Client {
                client_id: format!("demo-{}", SecretToken::generate().expose().get(..12).unwrap_or("x")),
                name: DEMO_CLIENT_NAME.into(),
                secret_hash: None,
                redirect_uris: vec![redirect],
                post_logout_redirect_uris: vec![state.settings.endpoint("/demo")],
                auth_method: ClientAuthMethod::None,
                grant_types: vec![GrantType::AuthorizationCode],
                scopes: ["openid", "profile", "email", "address", "phone"].iter().map(|s| s.to_string()).collect(),
                skip_consent: false,
                require_pkce: true,
                id_token_signed_response_alg: None,
                created_at: now,
                updated_at: now,
                ..Default::default()
            };
            store.create_client(&c).await.map_err(|e| e.to_string())?;
            c.client_id
        }
    };
    let new_password = if store.get_user_by_username(DEMO_USERNAME).await.map_err(|e| e.to_string())?.is_none() {
        let password = SecretToken::generate().expose().get(..16).unwrap_or("demo-password").to_owned();
        let hash = state.passwords.hash(password.clone()).await.map_err(|e| e.to_string())?;
        let claims = serde_json::json!({
            "given_name": "Dee",
            "family_name": "Mo",
            "locale": "en-GB",
            "phone_number": "+44 20 7946 0000",
            "address": {"street_address": "1 Example Street", "locality": "London", "country": "UK"}
        });
        let u = User {
            id: uuid::Uuid::new_v4().to_string(),
            username: DEMO_USERNAME.into(),
            password_hash: hash,
            email: Some("demo@example.com".into()),
            email_verified: true,
            name: Some("Dee Mo".into()),
            claims: claims.as_object().cloned().unwrap_or_default(),
            created_at: now,
            updated_at: now,
        };
        match store.create_user(&u).await.map_err(|e| e.to_string())? {
            Created::Created => Some(password),
            Created::AlreadyExists => None,
        }
    } else {
        None
    };
    Ok(DemoInfo { client_id, new_password })
}

struct Pending {
    nonce: String,
    verifier: String,
    created: i64,
}

#[derive(Clone)]
struct Demo {
    client_id: String,
    /// Where this server listens, for the relying party's own HTTP calls.
    internal: String,
    pending: Arc<Mutex<HashMap<String, Pending>>>,
    http: reqwest::Client,
}

pub fn router(info: &DemoInfo, bound: SocketAddr) -> Router<AppState> {
    let ip = if bound.ip().is_unspecified() { "127.0.0.1".to_string() } else { bound.ip().to_string() };
    let host = if ip.contains(':') { format!("[{ip}]") } else { ip };
    let demo = Demo {
        client_id: info.client_id.clone(),
        internal: format!("http://{host}:{}", bound.port()),
        pending: Arc::new(Mutex::new(HashMap::new())),
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .unwrap_or_default(),
    };
    let d1 = demo.clone();
    let d2 = demo.clone();
    Router::new()
        .route("/demo", get(home))
        .route("/demo/start", get(move |s: State<AppState>| start(s, d1.clone())))
        .route(
            "/demo/callback",
            get(move |s: State<AppState>, q: QueryParams, h: HeaderMap| callback(s, q, h, d2.clone())),
        )
}

#[derive(Template)]
#[template(path = "demo.html")]
struct HomeView<'a> {
    lang: &'a str,
    username: &'a str,
}

#[derive(Template)]
#[template(path = "demo_result.html")]
struct ResultView<'a> {
    lang: &'a str,
    claims: Vec<(String, String)>,
    userinfo: String,
}

async fn home() -> Response {
    html(StatusCode::OK, &HomeView { lang: "en", username: DEMO_USERNAME })
}

fn random() -> String {
    SecretToken::generate().expose().to_owned()
}

async fn start(State(state): State<AppState>, demo: Demo) -> Response {
    let st = random();
    let nonce = random();
    let verifier = random();
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let now = state.now();
    if let Ok(mut p) = demo.pending.lock() {
        p.retain(|_, v| now - v.created < 600);
        if p.len() > 1000 {
            p.clear();
        }
        p.insert(st.clone(), Pending { nonce: nonce.clone(), verifier, created: now });
    }
    let mut u = match url::Url::parse(&state.settings.endpoint("/authorize")) {
        Ok(u) => u,
        Err(e) => return ErrorPage::new(OAuthError::server_error(e)).into_response(),
    };
    u.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &demo.client_id)
        .append_pair("redirect_uri", &state.settings.endpoint("/demo/callback"))
        .append_pair("scope", "openid profile email address phone")
        .append_pair("state", &st)
        .append_pair("nonce", &nonce)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    let mut r = interaction::see_other(u.as_str());
    let secure = if state.settings.cookie_secure() { "; Secure" } else { "" };
    if let Ok(v) =
        HeaderValue::from_str(&format!("{STATE_COOKIE}={st}; Path=/demo; HttpOnly; SameSite=Lax; Max-Age=600{secure}"))
    {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

fn fail(msg: &str) -> Response {
    ErrorPage::new(OAuthError::invalid_request(msg.to_owned())).into_response()
}

async fn callback(
    State(state): State<AppState>,
    QueryParams(q): QueryParams,
    headers: HeaderMap,
    demo: Demo,
) -> Response {
    // RFC 6749 §3.1: a repeated parameter is refused, never resolved by picking one.
    let q = match q {
        Ok(q) => q,
        Err(e) => return fail(&e.describe()),
    };
    // RFC 9207: the response names its issuer.
    if q.get("iss") != Some(state.settings.issuer.as_str()) {
        return fail("the authorization response does not come from this issuer");
    }
    let Some(st) = q.get("state") else { return fail("the authorization response has no state") };
    if latchkey_web::cookies::read_cookie(&headers, STATE_COOKIE).as_deref() != Some(st) {
        return fail("the state does not belong to this browser");
    }
    let pending = demo.pending.lock().ok().and_then(|mut p| p.remove(st));
    let Some(pending) = pending else { return fail("unknown or expired sign-in attempt") };
    if let Some(e) = q.get("error") {
        return fail(&format!("sign-in did not complete: {e}"));
    }
    let Some(code) = q.get("code") else { return fail("the authorization response has no code") };

    let redirect_uri = state.settings.endpoint("/demo/callback");
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri.as_str()),
        ("client_id", demo.client_id.as_str()),
        ("code_verifier", pending.verifier.as_str()),
    ];
    let token: Value = match demo.http.post(format!("{}/token", demo.internal)).form(&form).send().await {
        Ok(r) => match r.json().await {
            Ok(v) => v,
            Err(_) => return fail("the token response is not JSON"),
        },
        Err(_) => return fail("the token endpoint could not be reached"),
    };
    let (Some(id_token), Some(access)) =
        (token.get("id_token").and_then(Value::as_str), token.get("access_token").and_then(Value::as_str))
    else {
        return fail("the token response lacks an ID token or access token");
    };
    let claims = match verify_id_token(&state, &demo, id_token, &pending.nonce).await {
        Ok(c) => c,
        Err(e) => return fail(&format!("the ID token did not verify: {e}")),
    };
    let userinfo: Value = match demo.http.get(format!("{}/userinfo", demo.internal)).bearer_auth(access).send().await {
        Ok(r) => r.json().await.unwrap_or(Value::Null),
        Err(_) => Value::Null,
    };
    let view = ResultView {
        lang: "en",
        claims: claims
            .into_iter()
            .map(|(k, v)| (k, if let Value::String(s) = v { s } else { v.to_string() }))
            .collect(),
        userinfo: serde_json::to_string_pretty(&userinfo).unwrap_or_default(),
    };
    html(StatusCode::OK, &view)
}

/// Verify as a relying party would: the key from the published JWKS, then iss, aud, exp, nonce.
async fn verify_id_token(
    state: &AppState,
    demo: &Demo,
    token: &str,
    nonce: &str,
) -> Result<serde_json::Map<String, Value>, String> {
    use josekit::jws::{ES256, EdDSA, JwsVerifier, PS256, RS256};
    let jwks_bytes = demo
        .http
        .get(format!("{}/jwks.json", demo.internal))
        .send()
        .await
        .map_err(|e| e.to_string())?
        .bytes()
        .await
        .map_err(|e| e.to_string())?;
    let set = josekit::jwk::JwkSet::from_bytes(&jwks_bytes).map_err(|e| e.to_string())?;
    let header_b64 = token.split('.').next().unwrap_or_default();
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header_b64).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    let kid = header.get("kid").and_then(Value::as_str).ok_or("no kid")?;
    let alg = header.get("alg").and_then(Value::as_str).ok_or("no alg")?;
    let jwk = set.get(kid).first().copied().ok_or("unknown kid")?;
    if jwk.algorithm() != Some(alg) {
        return Err("alg does not match the key".into());
    }
    let verifier: Box<dyn JwsVerifier> = match alg {
        "RS256" => Box::new(RS256.verifier_from_jwk(jwk).map_err(|e| e.to_string())?),
        "PS256" => Box::new(PS256.verifier_from_jwk(jwk).map_err(|e| e.to_string())?),
        "ES256" => Box::new(ES256.verifier_from_jwk(jwk).map_err(|e| e.to_string())?),
        "EdDSA" => Box::new(EdDSA.verifier_from_jwk(jwk).map_err(|e| e.to_string())?),
        _ => return Err("unsupported alg".into()),
    };
    let (payload, _) = josekit::jws::deserialize_compact(token, verifier.as_ref()).map_err(|e| e.to_string())?;
    let claims: serde_json::Map<String, Value> = serde_json::from_slice(&payload).map_err(|e| e.to_string())?;
    if claims.get("iss").and_then(Value::as_str) != Some(state.settings.issuer.as_str()) {
        return Err("wrong iss".into());
    }
    if claims.get("aud").and_then(Value::as_str) != Some(demo.client_id.as_str()) {
        return Err("wrong aud".into());
    }
    if claims.get("exp").and_then(Value::as_i64).is_none_or(|e| e <= state.now()) {
        return Err("expired".into());
    }
    if claims.get("nonce").and_then(Value::as_str) != Some(nonce) {
        return Err("wrong nonce".into());
    }
    Ok(claims)
}
