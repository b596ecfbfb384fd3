//! `POST /register` (RFC 7591 §3, OIDC Registration §3). Checks, in order: the initial access
//! token is present (policy `initial_access_token`), the body, the metadata; then the token is
//! used up, the sector_identifier_uri fetched, and the client stored.

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use latchkey_core::model::{Client, ClientAuthMethod};
use latchkey_core::{OAuthError, SecretToken};
use latchkey_storage::Created;
use latchkey_web::client_ip::Peer;
use latchkey_web::errors::no_store_json;
use latchkey_web::limits::{self, Kind};
use latchkey_web::{AppState, BackChannel};
use serde_json::json;

use crate::metadata::Registration;
use crate::{POLICY_INITIAL_ACCESS_TOKEN, Presented, audit, bearer, bearer_refusal, body, response};

pub async fn post_register(
    State(state): State<AppState>,
    Peer(peer): Peer,
    headers: HeaderMap,
    req_body: Body,
) -> Response {
    // Abuse limit: registration attempts per client IP. Every attempt is counted before any
    // work, failed ones too (bad metadata, a wrong initial access token), and the check and the
    // count are one step under the counter's lock, so parallel requests cannot all pass a limit
    // that only one of them fits under (issue 13).
    let ip = latchkey_web::client_ip::client_ip(&headers, peer, &state.settings).map(|ip| limits::ip_subject(&ip));
    if let Some(ip) = &ip
        && let Err(w) = state.limiter.hit(&state.settings.limits, Kind::Registrations, ip, state.now())
    {
        tracing::info!(limit = "registrations_per_ip", "rate limit reached");
        return BackChannel::new(w.into_error()).into_response();
    }
    // RFC 7591 §3: an initial access token is a bearer token (RFC 6750) the server may require.
    let initial_token = if state.settings.registration.policy == POLICY_INITIAL_ACCESS_TOKEN {
        match bearer(&headers) {
            Presented::Token(t) => Some(t),
            other => return bearer_refusal(&state, other, "no initial access token"),
        }
    } else {
        None
    };
    let doc = match body::read_object(&headers, req_body).await {
        Ok(d) => d,
        Err(e) => return BackChannel::new(e).into_response(),
    };
    let reg = match Registration::parse(&doc, &state.settings) {
        Ok(r) => r,
        Err(e) => return BackChannel::new(e).into_response(),
    };
    // Used up only for a well-formed request, and before anything is fetched on the caller's
    // behalf: without a valid token nobody makes Latchkey contact a URL.
    if let Some(t) = initial_token {
        match state.store.use_initial_access_token(&t.hash(), state.now()).await {
            Ok(true) => {}
            Ok(false) => {
                return bearer_refusal(&state, Presented::Token(t), "unknown, expired or used initial access token");
            }
            Err(e) => return BackChannel::new(OAuthError::server_error(e)).into_response(),
        }
    }
    if let Err(e) = reg.check_sector(&state.settings).await {
        return BackChannel::new(e).into_response();
    }
    match create(&state, reg).await {
        Ok(r) => r,
        Err(e) => BackChannel::new(e).into_response(),
    }
}

async fn create(state: &AppState, reg: Registration) -> Result<Response, OAuthError> {
    let now = state.now();
    // 132 random bits, base64url: unguessable and URL-safe in registration_client_uri.
    let client_id = Client::generate_id();
    let secret = reg.auth_method.uses_secret().then(SecretToken::generate);
    let secret_enc = match (&secret, reg.auth_method) {
        // OIDC Core §9: client_secret_jwt needs the secret itself; it is kept encrypted.
        (Some(s), ClientAuthMethod::ClientSecretJwt) => Some(
            state
                .master
                .encrypt(s.expose().as_bytes(), &format!("client_secret:{client_id}"))
                .map_err(OAuthError::server_error)?,
        ),
        _ => None,
    };
    let registration_token = SecretToken::generate();
    let mut c = Client {
        client_id,
        secret_hash: secret.as_ref().map(SecretToken::hash),
        secret_enc,
        registration_token_hash: Some(registration_token.hash()),
        created_at: now,
        updated_at: now,
        ..Default::default()
    };
    reg.apply(&mut c);
    match state.store.create_client(&c).await.map_err(OAuthError::server_error)? {
        Created::Created => {}
        Created::AlreadyExists => return Err(OAuthError::server_error("generated client_id collided")),
    }
    audit(state, "client.registered", &c.client_id, json!({"name": c.name, "method": c.auth_method.as_str()})).await;
    let body = response::client_information(
        &state.settings,
        &c,
        secret.as_ref().map(SecretToken::expose),
        registration_token.expose(),
    );
    // RFC 7591 §3.2.1: 201 Created with the client information.
    Ok(no_store_json(StatusCode::CREATED, body))
}

pub async fn wrong_method() -> Response {
    crate::method_not_allowed("POST", "the registration endpoint")
}
