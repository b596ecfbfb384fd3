//! UserInfo (OIDC Core §5.3): `GET` with `Authorization: Bearer`, or `POST` with the header or
//! an `access_token` form field (RFC 6750 §2.1, §2.2). Errors per RFC 6750 §3.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use latchkey_core::OAuthError;
use latchkey_core::claims::{ClaimsRequest, MembershipClaims, select};
use latchkey_core::scope::Scope;

use crate::access;
use crate::memberships::Resolved;
use latchkey_web::AppState;
use latchkey_web::errors::{Bearer, no_store_json};
use latchkey_web::params::{FormParams, ParamError};
use serde_json::Value;

enum Presented {
    Token(String),
    Missing,
    Malformed(&'static str),
}

fn from_header(headers: &HeaderMap) -> Presented {
    let Some(v) = headers.get(http::header::AUTHORIZATION) else { return Presented::Missing };
    let Ok(v) = v.to_str() else { return Presented::Malformed("malformed Authorization header") };
    match v.split_once(' ') {
        Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") && !t.trim().is_empty() => {
            Presented::Token(t.trim().to_owned())
        }
        _ => Presented::Malformed("the Authorization header must use the Bearer scheme"),
    }
}

pub async fn get_userinfo(State(state): State<AppState>, headers: HeaderMap) -> Response {
    respond(&state, from_header(&headers)).await
}

pub async fn post_userinfo(State(state): State<AppState>, form: FormParams) -> Response {
    let header = from_header(&form.headers);
    let body_token = match &form.params {
        Ok(p) => p.get("access_token").map(str::to_owned),
        // A POST without a form body may still carry the header.
        Err(ParamError::WrongContentType) => None,
        Err(e) => {
            return Bearer::error(&state.settings.issuer, OAuthError::invalid_request(e.describe())).into_response();
        }
    };
    let presented = match (header, body_token) {
        // RFC 6750 §2: no more than one method per request.
        (Presented::Token(_), Some(_)) | (Presented::Malformed(_), Some(_)) => {
            Presented::Malformed("the access token was sent in more than one way")
        }
        (h, None) => h,
        (Presented::Missing, Some(t)) => Presented::Token(t),
    };
    respond(&state, presented).await
}

async fn respond(state: &AppState, presented: Presented) -> Response {
    let realm = state.settings.issuer.as_str();
    let token = match presented {
        Presented::Missing => return Bearer::missing(realm).into_response(),
        Presented::Malformed(why) => return Bearer::error(realm, OAuthError::invalid_request(why)).into_response(),
        Presented::Token(t) => t,
    };
    let invalid =
        || Bearer::error(realm, OAuthError::invalid_token("the access token is invalid or expired")).into_response();
    let view = match access::validate(state, &token).await {
        Ok(Some(v)) => v,
        Ok(None) => return invalid(),
        Err(e) => return latchkey_web::BackChannel::new(OAuthError::server_error(e)).into_response(),
    };
    let scope = Scope::parse(&view.scope).unwrap_or_default();
    if !scope.is_openid() {
        let mut b = Bearer::error(
            realm,
            OAuthError::new(latchkey_core::ErrorCode::InsufficientScope, "the access token lacks the openid scope"),
        );
        b.scope = Some("openid");
        return b.into_response();
    }
    // A token without a user (client credentials) has no UserInfo.
    let Some(grant) = &view.grant else { return invalid() };
    let Some(user_id) = grant.user_id.as_deref() else { return invalid() };
    let user = match state.store.get_user(user_id).await {
        Ok(Some(u)) => u,
        Ok(None) => return invalid(),
        Err(e) => return latchkey_web::BackChannel::new(OAuthError::server_error(e)).into_response(),
    };
    let requested = grant
        .claims
        .as_deref()
        .and_then(|c| serde_json::from_str::<Value>(c).ok())
        .map(|v| ClaimsRequest::from_json(&v).userinfo)
        .unwrap_or_default();
    // The sub the token's client knows (pairwise clients get their own).
    let client = match state.client(&view.client_id).await {
        Ok(Some(c)) => c,
        Ok(None) => return invalid(),
        Err(e) => return latchkey_web::BackChannel::new(OAuthError::server_error(e)).into_response(),
    };
    let mut claims = select(&user, &scope, &requested, true, &client.scopes);
    // Groups and roles as they are now, for the token's client; no query unless asked for.
    let wanted = MembershipClaims::for_scope(&scope).with_requested(&requested, &client.scopes);
    let inserted = match Resolved::load(state, Some(&user.id), &client.client_id, wanted).await {
        Ok(m) => m.insert(&mut claims, wanted),
        Err(e) => Err(e),
    };
    if let Err(e) = inserted {
        return latchkey_web::BackChannel::new(e).into_response();
    }
    claims.insert("sub".into(), Value::String(latchkey_web::subject::for_client(state, &client, &user.id)));
    // OIDC Core §5.3.2: a client that registered userinfo_signed_response_alg gets a JWT with
    // iss and aud.
    let signed = client
        .metadata
        .get("userinfo_signed_response_alg")
        .and_then(Value::as_str)
        .and_then(|a| a.parse::<latchkey_core::model::SigningAlg>().ok());
    let resp = if let Some(alg) = signed {
        claims.insert("iss".into(), Value::String(state.settings.issuer.clone()));
        claims.insert("aud".into(), Value::String(client.client_id.clone()));
        match state.keys.sign(alg, "JWT", &Value::Object(claims), state.now()) {
            Ok(jwt) => {
                let mut r = (StatusCode::OK, jwt.token).into_response();
                r.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/jwt"));
                r.headers_mut().insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
                r
            }
            Err(e) => latchkey_web::BackChannel::new(OAuthError::server_error(e)).into_response(),
        }
    } else {
        no_store_json(StatusCode::OK, Value::Object(claims))
    };
    // The token's client is known: its web origins may read the answer (CORS).
    latchkey_web::cors::for_client(resp, &client)
}
