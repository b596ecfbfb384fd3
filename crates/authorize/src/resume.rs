//! `/authorize/resume?interaction=…`: where the login, account and consent pages send the
//! browser back. The stored request is re-checked against the client's current registration.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use http::HeaderMap;
use latchkey_core::OAuthError;
use latchkey_web::redirect::check_redirect_uri;
use latchkey_web::{AppState, ErrorPage, VerifiedRedirect, interaction};
use std::collections::HashMap;

use crate::flow;

pub async fn resume(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let Some(raw) = q.get("interaction").filter(|r| interaction::well_formed(r)) else {
        return ErrorPage::new(OAuthError::invalid_request("this sign-in request is not valid")).into_response();
    };
    let rec = match state.store.get_interaction(&interaction::hash(raw), state.now()).await {
        Ok(Some(r)) => r,
        Ok(None) => {
            return ErrorPage::new(OAuthError::invalid_request(
                "this sign-in request has expired or was already completed; start again from the application",
            ))
            .into_response();
        }
        Err(e) => return ErrorPage::new(OAuthError::server_error(e)).into_response(),
    };
    let client = match state.store.get_client(&rec.client_id).await {
        Ok(Some(c)) => c,
        Ok(None) => {
            return ErrorPage::new(OAuthError::invalid_request("the application no longer exists")).into_response();
        }
        Err(e) => return ErrorPage::new(OAuthError::server_error(e)).into_response(),
    };
    let req = rec.request.clone();
    let openid = req.scope.split(' ').any(|s| s == "openid");
    let sent = req.redirect_uri_sent.then_some(req.redirect_uri.as_str());
    let checked = match check_redirect_uri(&client, sent, openid) {
        Ok(c) => c,
        Err(e) => return ErrorPage::new(e).into_response(),
    };
    let redirect = VerifiedRedirect::new(checked, req.state.clone(), req.response_mode, &state.settings.issuer);
    flow::proceed(&state, &client, req, redirect, &headers, Some((raw.clone(), rec))).await
}
