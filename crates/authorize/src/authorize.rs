//! `GET`/`POST /authorize`. Checks run in this order, and nothing redirects before the client
//! and redirect URI are verified:
//!
//! 1. parameters decode (UTF-8, escapes, size); client_id and redirect_uri not repeated
//! 2. client_id names a registered client          — else error page
//! 3. request / request_uri / pushed request resolved into the parameters
//! 4. redirect_uri matches its registration        — else error page
//!    (from here on every error goes back to the client with `state` and `iss`)
//! 5. no other parameter repeated; response_mode
//! 6. response_type; the client may use the code grant
//! 7. pushed requests when required; registration (not supported)
//! 8. prompt, scope
//! 9. PKCE
//! 10. max_age (or the client's default_max_age), id_token_hint, claims, nonce
//! 11. session, account choice, consent, code (flow.rs)

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use http::HeaderMap;
use latchkey_core::authz::{AuthorizationRequest, InteractivePrompt, Prompt, ResponseMode};
use latchkey_core::claims::ClaimsRequest;
use latchkey_core::model::GrantType;
use latchkey_core::pkce::{CodeChallenge, PkceError};
use latchkey_core::scope::Scope;
use latchkey_core::{ErrorCode, OAuthError};
use latchkey_web::params::{ParamError, Params, RawForm};
use latchkey_web::redirect::check_redirect_uri;
use latchkey_web::{AppState, ErrorPage, VerifiedRedirect};

use crate::{flow, request_object};

pub async fn get_authorize(State(state): State<AppState>, RawQuery(q): RawQuery, headers: HeaderMap) -> Response {
    handle(state, Ok(Bytes::from(q.unwrap_or_default())), headers).await
}

pub async fn post_authorize(State(state): State<AppState>, form: RawForm) -> Response {
    handle(state, form.body, form.headers).await
}

async fn handle(state: AppState, raw: Result<Bytes, ParamError>, headers: HeaderMap) -> Response {
    // 1. Parameters we cannot decode cannot identify a client: error page.
    let parsed = raw.and_then(|b| {
        if b.len() > latchkey_web::params::MAX_PARAMS_BYTES {
            Err(ParamError::TooLarge)
        } else {
            Params::parse_keeping_first(&b)
        }
    });
    let (params, repeated) = match parsed {
        Ok(p) => p,
        Err(e) => return ErrorPage::new(OAuthError::invalid_request(e.describe())).into_response(),
    };
    if let Some(k) = repeated.iter().find(|k| *k == "client_id" || *k == "redirect_uri") {
        return ErrorPage::new(OAuthError::invalid_request(ParamError::Duplicate(k.clone()).describe()))
            .into_response();
    }

    // 2. Client.
    let Some(client_id) = params.get("client_id") else {
        return ErrorPage::new(OAuthError::invalid_request("client_id is required")).into_response();
    };
    let client = match state.store.get_client(client_id).await {
        Ok(Some(c)) => c,
        Ok(None) => return ErrorPage::new(OAuthError::invalid_request("unknown client_id")).into_response(),
        Err(e) => return ErrorPage::new(OAuthError::server_error(e)).into_response(),
    };

    // 3a. Request objects and pushed requests (OIDC Core §6, RFC 9126) supply the parameters.
    // Their errors go to the query's redirect URI only if that one is verified.
    let (params, via_par) = match request_object::resolve(&state, &client, params.clone()).await {
        Ok(x) => x,
        Err(e) => {
            let openid = params.get("scope").is_some_and(latchkey_core::scope::is_openid);
            return match check_redirect_uri(&client, params.get("redirect_uri"), openid) {
                Ok(checked) => {
                    let mode = ResponseMode::parse(params.get("response_mode")).unwrap_or(ResponseMode::Query);
                    let st = params.get("state").map(str::to_owned);
                    VerifiedRedirect::new(checked, st, mode, &state.settings.issuer).error(e)
                }
                Err(_) => ErrorPage::new(e).into_response(),
            };
        }
    };

    // 3. Redirect URI. OIDC requests (scope contains openid) must send it.
    let openid = params.get("scope").is_some_and(latchkey_core::scope::is_openid);
    let checked = match check_redirect_uri(&client, params.get("redirect_uri"), openid) {
        Ok(c) => c,
        Err(e) => return ErrorPage::new(e).into_response(),
    };
    // From here on, errors go back to the client.
    let state_param = if repeated.iter().any(|k| k == "state") { None } else { params.get("state").map(str::to_owned) };
    let mode = ResponseMode::parse(params.get("response_mode"));
    let redirect = VerifiedRedirect::new(
        checked.clone(),
        state_param.clone(),
        mode.unwrap_or(ResponseMode::Query),
        &state.settings.issuer,
    );

    match validate(&state, &client, &params, &repeated, checked, state_param, mode, via_par) {
        Ok(req) => flow::proceed(&state, &client, req, redirect, &headers, None).await,
        Err(e) => redirect.error(e),
    }
}

/// Steps 4–10: everything that can be decided from the request alone. Also used by `/par`.
#[allow(clippy::too_many_arguments)] // each argument is one checked input of the decision
pub(crate) fn validate(
    state: &AppState,
    client: &latchkey_core::model::Client,
    params: &Params,
    repeated: &[String],
    checked: latchkey_web::CheckedRedirectUri,
    state_param: Option<String>,
    mode: Result<ResponseMode, &'static str>,
    via_par: bool,
) -> Result<AuthorizationRequest, OAuthError> {
    // 4. RFC 6749 §3.1: parameters MUST NOT be included more than once.
    if let Some(k) = repeated.first() {
        return Err(OAuthError::invalid_request(ParamError::Duplicate(k.clone()).describe()));
    }
    let response_mode = mode.map_err(OAuthError::invalid_request)?;

    // 5. Only the authorization code flow.
    match params.get("response_type") {
        None => return Err(OAuthError::invalid_request("response_type is required")),
        Some("code") => {}
        Some(_) => {
            return Err(OAuthError::new(ErrorCode::UnsupportedResponseType, "only response_type=code is supported"));
        }
    }
    if !client.allows_grant(GrantType::AuthorizationCode) {
        return Err(OAuthError::unauthorized_client("the client is not registered for the authorization code grant"));
    }

    // 6. RFC 9126 §5: a client (or the server) may require pushed requests.
    if !via_par && (client.require_par || state.settings.request_objects.require_pushed_authorization_requests) {
        return Err(OAuthError::invalid_request("this client must use pushed authorization requests"));
    }
    // OIDC Core §7.2.1: not supported (discovery says so).
    if params.contains("registration") {
        return Err(OAuthError::new(
            ErrorCode::RegistrationNotSupported,
            "the registration parameter is not supported",
        ));
    }

    // 8 (parsed before scope: offline_access depends on it).
    let prompt = Prompt::parse(params.get("prompt")).map_err(OAuthError::invalid_request)?;

    // 7. RFC 6749 §3.3: no default scope; unknown or unregistered scopes are dropped (the
    // token response then reports the narrower scope).
    let requested = match params.get("scope") {
        None => return Err(OAuthError::invalid_scope("scope is required")),
        Some(s) => Scope::parse(s).map_err(OAuthError::invalid_scope)?,
    };
    let allowed = Scope::from_tokens(client.scopes.iter().cloned());
    let mut scope = requested.intersection(&allowed);
    // OIDC Core §11: offline_access needs prompt=consent unless other conditions allow it
    // (a first-party client that skips consent).
    if scope.contains("offline_access") && !prompt.has(InteractivePrompt::Consent) && !client.skip_consent {
        scope = scope.difference(&Scope::from_tokens(["offline_access"]));
    }
    if scope.is_empty() {
        return Err(OAuthError::invalid_scope("none of the requested scopes is allowed for this client"));
    }

    // 9. PKCE (RFC 7636, RFC 9700 §2.1.1): S256 only; required for public clients and for
    // clients registered with require_pkce.
    let challenge = CodeChallenge::parse(params.get("code_challenge"), params.get("code_challenge_method")).map_err(
        |e| match e {
            PkceError::UnsupportedMethod => OAuthError::invalid_request("code_challenge_method must be S256"),
            PkceError::MalformedChallenge => OAuthError::invalid_request("code_challenge is malformed"),
            PkceError::MethodWithoutChallenge => OAuthError::invalid_request("code_challenge is missing"),
        },
    )?;
    if challenge.is_none() && (client.is_public() || client.require_pkce) {
        return Err(OAuthError::invalid_request("code_challenge is required (PKCE)"));
    }

    // 10.
    let max_age = match params.get("max_age") {
        // OIDC Registration §2: default_max_age applies when the request names none.
        None => client.metadata.get("default_max_age").and_then(serde_json::Value::as_i64).filter(|n| *n >= 0),
        Some(v) => match v.parse::<i64>() {
            Ok(n) if n >= 0 => Some(n),
            _ => return Err(OAuthError::invalid_request("max_age must be a non-negative integer")),
        },
    };
    let hint_sub = match params.get("id_token_hint") {
        None => None,
        Some(t) => Some(verify_hint(state, client, t)?),
    };
    // OIDC Core §5.5: claims no scope of the client's registration carries are left out, so
    // the consent page never offers them and the grant never records them (issue 13).
    let claims = match params.get("claims") {
        None => None,
        Some(c) => {
            let parsed = ClaimsRequest::parse(c).map_err(OAuthError::invalid_request)?.within(&client.scopes);
            (!parsed.is_empty()).then(|| parsed.to_json())
        }
    };
    if let Some(n) = params.get("nonce")
        && n.len() > 512
    {
        return Err(OAuthError::invalid_request("nonce is too long"));
    }

    Ok(AuthorizationRequest {
        client_id: client.client_id.clone(),
        redirect_uri: checked.uri,
        redirect_uri_sent: checked.sent,
        response_mode,
        state: state_param,
        scope: scope.to_string(),
        nonce: params.get("nonce").map(str::to_owned),
        code_challenge: challenge.map(|c| c.as_str().to_owned()),
        prompt,
        max_age,
        hint_sub,
        login_hint: params.get("login_hint").map(|s| s.chars().take(255).collect()),
        ui_locales: params.get("ui_locales").map(str::to_owned),
        claims,
    })
}

/// OIDC Core §3.1.2.1: an ID token we issued, signature verified; an expired one is accepted.
/// Other JWTs we sign (access tokens, logout tokens, signed UserInfo) are refused.
fn verify_hint(state: &AppState, client: &latchkey_core::model::Client, token: &str) -> Result<String, OAuthError> {
    let claims = state.keys.verify_id_token(token).map_err(|e| {
        OAuthError::invalid_request("id_token_hint is not a valid ID token from this server").because(e)
    })?;
    if claims.get("iss").and_then(|v| v.as_str()) != Some(state.settings.issuer.as_str()) {
        return Err(OAuthError::invalid_request("id_token_hint was issued by another server"));
    }
    let aud_ok = match claims.get("aud") {
        Some(serde_json::Value::String(a)) => a == &client.client_id,
        Some(serde_json::Value::Array(a)) => a.iter().any(|v| v.as_str() == Some(client.client_id.as_str())),
        _ => false,
    };
    if !aud_ok {
        return Err(OAuthError::invalid_request("id_token_hint was issued to another client"));
    }
    claims
        .get("sub")
        .and_then(|v| v.as_str())
        .map(str::to_owned)
        .ok_or_else(|| OAuthError::invalid_request("id_token_hint has no sub"))
}
