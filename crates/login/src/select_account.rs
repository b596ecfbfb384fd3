//! `prompt=select_account`: "continue as X" or "use another account".

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use latchkey_core::OAuthError;
use latchkey_web::cookies::{csrf_ok, csrf_token, current_session};
use latchkey_web::errors::html;
use latchkey_web::params::{FormParams, QueryParams};
use latchkey_web::{AppState, ErrorPage, interaction};

use crate::common::{self, LANG};
use crate::views::SelectAccountView;

pub async fn show(State(state): State<AppState>, QueryParams(q): QueryParams, headers: HeaderMap) -> Response {
    let p = match common::load_query(&state, &headers, &q).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let session = match current_session(&state, &headers).await {
        Ok(s) => s,
        Err(e) => return ErrorPage::new(OAuthError::server_error(e)).into_response(),
    };
    let user = match &session {
        Some(s) => state.store.get_user(&s.user_id).await.ok().flatten(),
        None => None,
    };
    let Some(user) = user else {
        return interaction::see_other(&interaction::url(interaction::LOGIN_PATH, &p.raw));
    };
    let (csrf, set) = csrf_token(&state.settings, &headers);
    let view = SelectAccountView {
        lang: LANG,
        client_name: &p.client.name,
        interaction: &p.raw,
        csrf: &csrf,
        username: &user.username,
    };
    common::with_cookie(html(StatusCode::OK, &view), set)
}

pub async fn submit(State(state): State<AppState>, form: FormParams) -> Response {
    let params = match form.params {
        Ok(p) => p,
        Err(e) => return ErrorPage::new(OAuthError::invalid_request(e.describe())).into_response(),
    };
    let p = match common::load(&state, &form.headers, params.get("interaction")).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    if !csrf_ok(&state.settings, &form.headers, params.get("csrf")) {
        return common::csrf_failed();
    }
    match params.get("choice") {
        Some("continue") => {
            let session = match current_session(&state, &form.headers).await {
                Ok(Some(s)) => s,
                Ok(None) => return interaction::see_other(&interaction::url(interaction::LOGIN_PATH, &p.raw)),
                Err(e) => return ErrorPage::new(OAuthError::server_error(e)).into_response(),
            };
            match state.store.set_interaction_login(&p.record.id_hash, &session.sid).await {
                Ok(_) => common::resume(&p.raw),
                Err(e) => ErrorPage::new(OAuthError::server_error(e)).into_response(),
            }
        }
        Some("other") => interaction::see_other(&interaction::url(interaction::LOGIN_PATH, &p.raw)),
        _ => ErrorPage::new(OAuthError::invalid_request("choose an account")).into_response(),
    }
}
