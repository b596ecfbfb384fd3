//! `GET /logout` asks for confirmation; `POST /logout` ends the session.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use latchkey_core::{OAuthError, SecretToken};
use latchkey_web::cookies::{clear_cookie, csrf_ok, csrf_token, current_session, read_cookie, session_cookie_name};
use latchkey_web::errors::html;
use latchkey_web::params::FormParams;
use latchkey_web::{AppState, ErrorPage};

use crate::common::{self, LANG};
use crate::views::{LogoutView, MessageView};

fn signed_out() -> Response {
    html(StatusCode::OK, &MessageView { lang: LANG, title: "Signed out", message: "You are signed out of Latchkey." })
}

pub async fn show(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let session = match current_session(&state, &headers).await {
        Ok(s) => s,
        Err(e) => return ErrorPage::new(OAuthError::server_error(e)).into_response(),
    };
    let user = match &session {
        Some(s) => state.store.get_user(&s.user_id).await.ok().flatten(),
        None => None,
    };
    let Some(user) = user else { return signed_out() };
    let (csrf, set) = csrf_token(&state.settings, &headers);
    common::with_cookie(html(StatusCode::OK, &LogoutView { lang: LANG, csrf: &csrf, username: &user.username }), set)
}

pub async fn submit(State(state): State<AppState>, form: FormParams) -> Response {
    let params = match form.params {
        Ok(p) => p,
        Err(e) => return ErrorPage::new(OAuthError::invalid_request(e.describe())).into_response(),
    };
    if !csrf_ok(&state.settings, &form.headers, params.get("csrf")) {
        return common::csrf_failed();
    }
    let name = session_cookie_name(&state.settings);
    if let Some(v) = read_cookie(&form.headers, &name) {
        let ended = match state.store.delete_session(&SecretToken::from_presented(&v).hash()).await {
            Ok(s) => s,
            Err(e) => return ErrorPage::new(OAuthError::server_error(e)).into_response(),
        };
        // "Sign out everywhere": every session of the user, and every token family.
        if let (Some(s), Some("on")) = (ended, params.get("everywhere")) {
            let now = state.now();
            if let Err(e) = state.store.delete_user_sessions(&s.user_id).await {
                return ErrorPage::new(OAuthError::server_error(e)).into_response();
            }
            if let Err(e) = state.store.revoke_user_grants(&s.user_id, None, now).await {
                return ErrorPage::new(OAuthError::server_error(e)).into_response();
            }
        }
    }
    let mut r = signed_out();
    if let Ok(v) = HeaderValue::from_str(&clear_cookie(&state.settings, &name)) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}
