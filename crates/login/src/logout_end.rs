//! Ending the browser's session at logout, telling the relying parties (Back-Channel Logout),
//! and the answer: back to a registered `post_logout_redirect_uri` with `state`, or the
//! signed-out page.

use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use latchkey_core::{OAuthError, SecretToken};
use latchkey_web::AppState;
use latchkey_web::backchannel;
use latchkey_web::cookies::{clear_cookie, read_cookie, session_cookie_name};
use latchkey_web::errors::{html, log_error};

use crate::common::LANG;
use crate::logout_request::LogoutRequest;
use crate::views::{ErrorView, MessageView};

/// End the session the browser presents (and with `everywhere`, every session of its user and
/// every token family). A failure to queue back-channel logouts is logged, not shown: the
/// session has ended either way.
pub async fn end_session(state: &AppState, headers: &HeaderMap, everywhere: bool) -> Result<(), OAuthError> {
    let Some(v) = read_cookie(headers, &session_cookie_name(&state.settings)) else { return Ok(()) };
    let ended =
        state.store.delete_session(&SecretToken::from_presented(&v).hash()).await.map_err(OAuthError::server_error)?;
    let Some(s) = ended else { return Ok(()) };
    let now = state.now();
    let notified = if everywhere {
        // "Sign out everywhere": every session of the user, and every token family.
        state.store.delete_user_sessions(&s.user_id).await.map_err(OAuthError::server_error)?;
        state.store.revoke_user_grants(&s.user_id, None, now).await.map_err(OAuthError::server_error)?;
        backchannel::user_sessions_ended(
            state.store.as_ref(),
            &state.keys,
            &state.settings,
            &state.pairwise_salt,
            &s.user_id,
            now,
        )
        .await
    } else {
        backchannel::session_ended(
            state.store.as_ref(),
            &state.keys,
            &state.settings,
            &state.pairwise_salt,
            &s.sid,
            &s.user_id,
            now,
        )
        .await
    };
    if let Err(e) = notified {
        tracing::error!(error = %e, "queueing back-channel logouts failed; relying parties were not told");
    }
    tracing::info!(everywhere, "signed out");
    let kind = if everywhere { "logout.everywhere" } else { "logout" };
    latchkey_web::audit::record(
        state,
        kind,
        Some(&s.user_id),
        None,
        None,
        serde_json::json!({"user": s.user_id, "sid": s.sid}),
    )
    .await;
    Ok(())
}

/// The answer once the session is gone: RP-Initiated Logout §3, redirect to the verified
/// `post_logout_redirect_uri` with `state`; otherwise the signed-out page. Clears the cookie.
pub fn finish(state: &AppState, req: &LogoutRequest) -> Response {
    let mut r = match &req.redirect {
        Some(uri) => redirect(uri, req.state.as_deref()),
        None if req.redirect_refused => signed_out(
            "You are signed out of Latchkey. The application's return address is not registered, so you were not sent back to it.",
        ),
        None => signed_out("You are signed out of Latchkey."),
    };
    if let Ok(v) = HeaderValue::from_str(&clear_cookie(&state.settings, &session_cookie_name(&state.settings))) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

fn signed_out(message: &str) -> Response {
    html(StatusCode::OK, &MessageView { lang: LANG, title: "Signed out", message })
}

fn redirect(uri: &str, rp_state: Option<&str>) -> Response {
    let Ok(mut u) = url::Url::parse(uri) else { return signed_out("You are signed out of Latchkey.") };
    if let Some(s) = rp_state {
        // RP-Initiated Logout §3: `state` goes back to the RP as a query parameter.
        u.query_pairs_mut().append_pair("state", s);
    }
    let mut r = StatusCode::SEE_OTHER.into_response();
    match HeaderValue::from_str(u.as_str()) {
        Ok(v) => {
            r.headers_mut().insert(header::LOCATION, v);
        }
        Err(_) => return signed_out("You are signed out of Latchkey."),
    }
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// RP-Initiated Logout: an untrusted request (bad hint, mismatching client) is an HTML 400,
/// never a redirect.
pub fn error_page(e: OAuthError) -> Response {
    log_error(&e);
    let status = match e.code {
        latchkey_core::ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    };
    let view = ErrorView {
        lang: LANG,
        title: "Sign-out request not accepted",
        message: e.description(),
        code: e.code.as_str(),
    };
    html(status, &view)
}
