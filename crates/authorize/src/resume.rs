//! `/authorize/resume?interaction=…`: where the login, account and consent pages send the
//! browser back, in the browser that started the request (and only there). The stored request is
//! re-checked against the client's current registration.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::HeaderMap;
use latchkey_core::OAuthError;
use latchkey_web::redirect::check_redirect_uri;
use latchkey_web::{AppState, ErrorPage, QueryParams, VerifiedRedirect, interaction};

use crate::flow;

pub async fn resume(State(state): State<AppState>, QueryParams(q): QueryParams, headers: HeaderMap) -> Response {
    let q = match q {
        Ok(q) => q,
        Err(e) => return ErrorPage::new(OAuthError::invalid_request(e.describe())).into_response(),
    };
    // Only the browser that started the request may resume it.
    let rec = match interaction::load(&state, &headers, q.get("interaction")).await {
        Ok(r) => r,
        Err(e) => return ErrorPage::new(e).into_response(),
    };
    let raw = q.get("interaction").unwrap_or_default().to_owned();
    let client = match state.store.get_client(&rec.client_id).await {
        Ok(Some(c)) => c,
        Ok(None) => {
            return ErrorPage::new(OAuthError::invalid_request("the application no longer exists")).into_response();
        }
        Err(e) => return ErrorPage::new(OAuthError::server_error(e)).into_response(),
    };
    let req = rec.request.clone();
    let openid = req.is_openid();
    let sent = req.redirect_uri_sent.then_some(req.redirect_uri.as_str());
    let checked = match check_redirect_uri(&client, sent, openid) {
        Ok(c) => c,
        Err(e) => return ErrorPage::new(e).into_response(),
    };
    let redirect = VerifiedRedirect::new(checked, req.state.clone(), req.response_mode, &state.settings.issuer);
    flow::proceed(&state, &client, req, redirect, &headers, Some((raw, rec))).await
}
