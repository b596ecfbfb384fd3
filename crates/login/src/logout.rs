//! `/logout`, the end_session_endpoint (OpenID Connect RP-Initiated Logout 1.0).
//!
//! `GET` (or an RP's `POST`) with `id_token_hint`, `logout_hint`, `client_id`,
//! `post_logout_redirect_uri`, `state`, `ui_locales`: checked by [`LogoutRequest::parse`] (an
//! untrusted request is an error page, never a redirect). With a valid hint naming the signed-in
//! user the session ends at once; otherwise the user confirms on a CSRF-protected form that
//! carries the RP's parameters. `POST` with `csrf` is that confirmation. Either way relying
//! parties hear of it by back-channel, and the browser goes back to a registered
//! `post_logout_redirect_uri` (with `state`) or sees the signed-out page.

use axum::extract::State;
use axum::response::Response;
use http::HeaderMap;
use latchkey_core::OAuthError;
use latchkey_web::AppState;
use latchkey_web::cookies::{csrf_ok, csrf_token, current_session, read_cookie, session_cookie_name};
use latchkey_web::errors::html;
use latchkey_web::interaction::see_other;
use latchkey_web::params::{FormParams, Params, QueryParams};

use crate::common::{self, LANG};
use crate::logout_end::{end_session, error_page, finish};
use crate::logout_request::LogoutRequest;
use crate::views::{Hidden, LogoutView};

pub async fn show(State(state): State<AppState>, QueryParams(q): QueryParams, headers: HeaderMap) -> Response {
    match q {
        Ok(params) => rp_request(&state, &headers, &params).await,
        Err(e) => error_page(OAuthError::invalid_request(e.describe())),
    }
}

pub async fn submit(State(state): State<AppState>, form: FormParams) -> Response {
    let params = match form.params {
        Ok(p) => p,
        Err(e) => return error_page(OAuthError::invalid_request(e.describe())),
    };
    if params.contains("csrf") {
        return confirmed(&state, &form.headers, &params).await;
    }
    // RP-Initiated Logout §2 allows POST. A relying party's POST is cross-site, so the
    // SameSite=Lax session cookie is not sent with it; the same request as a GET is a
    // top-level navigation, which carries the cookie.
    if read_cookie(&form.headers, &session_cookie_name(&state.settings)).is_none() {
        let query = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(params.iter()).finish();
        return see_other(&format!("/logout?{query}"));
    }
    rp_request(&state, &form.headers, &params).await
}

/// A logout request from a relying party (or a plain visit to /logout).
async fn rp_request(state: &AppState, headers: &HeaderMap, params: &Params) -> Response {
    let req = match LogoutRequest::parse(state, params).await {
        Ok(r) => r,
        Err(e) => return error_page(e),
    };
    let session = match current_session(state, headers).await {
        Ok(s) => s,
        Err(e) => return error_page(OAuthError::server_error(e)),
    };
    // Nobody is signed in here: nothing to end, the relying party may have its user back.
    let Some(session) = session else { return finish(state, &req) };
    let user = match state.store.get_user(&session.user_id).await {
        Ok(u) => u,
        Err(e) => return error_page(OAuthError::server_error(e)),
    };
    // RP-Initiated Logout §2: a valid id_token_hint for the signed-in user makes the request
    // trustworthy; anything less, and the user is asked (a logout is harmless to skip, not to
    // force on the wrong person).
    // The hint's sub is the one its client sees (pairwise clients: OIDC Core §8.1).
    let trusted = match (&req.hint_sub, &req.client) {
        (Some(sub), Some(client)) => *sub == latchkey_web::subject::for_client(state, client, &session.user_id),
        _ => false,
    };
    match user {
        Some(user) if !trusted => confirmation(state, headers, &req, &user.username),
        // Trusted, or the session outlived its user: end it.
        _ => match end_session(state, headers, false).await {
            Ok(()) => finish(state, &req),
            Err(e) => error_page(e),
        },
    }
}

fn confirmation(state: &AppState, headers: &HeaderMap, req: &LogoutRequest, username: &str) -> Response {
    let (csrf, set) = csrf_token(&state.settings, headers);
    let view = LogoutView {
        lang: LANG,
        csrf: &csrf,
        username,
        client_name: req.client.as_ref().map(|c| c.name.as_str()),
        hidden: req.carried().into_iter().map(|(name, value)| Hidden { name, value }).collect(),
    };
    common::with_cookie(html(http::StatusCode::OK, &view), set)
}

/// The user confirmed on our form: the carried parameters are checked again (the form is the
/// user's to edit), then the session ends.
async fn confirmed(state: &AppState, headers: &HeaderMap, params: &Params) -> Response {
    if !csrf_ok(&state.settings, headers, params.get("csrf")) {
        return error_page(OAuthError::invalid_request(
            "the form expired or was not sent from this site; go back and try again",
        ));
    }
    let req = match LogoutRequest::parse(state, params).await {
        Ok(r) => r,
        Err(e) => return error_page(e),
    };
    match end_session(state, headers, params.get("everywhere") == Some("on")).await {
        Ok(()) => finish(state, &req),
        Err(e) => error_page(e),
    }
}
