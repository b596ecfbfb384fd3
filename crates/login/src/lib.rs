//! The login UI: login, account chooser, consent and logout pages (askama templates in
//! `templates/`; `/logout` is the end_session_endpoint), and the stylesheet. Pages work without
//! JavaScript and send the browser back to `/authorize/resume` when done.

mod common;
mod consent;
mod login;
mod logout;
mod logout_end;
mod logout_request;
mod select_account;
mod static_files;
mod views;

use axum::Router;
use axum::routing::get;
use latchkey_core::Settings;
use latchkey_web::interaction::{CONSENT_PATH, LOGIN_PATH, SELECT_ACCOUNT_PATH};
use latchkey_web::{AppState, Capabilities};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(LOGIN_PATH, get(login::show).post(login::submit))
        .route(CONSENT_PATH, get(consent::show).post(consent::submit))
        .route(SELECT_ACCOUNT_PATH, get(select_account::show).post(select_account::submit))
        .route("/logout", get(logout::show).post(logout::submit))
        .route("/static/latchkey.css", get(static_files::css))
        .route("/static/form_post.js", get(static_files::form_post_js))
}

/// `/logout` is the end_session_endpoint (RP-Initiated Logout 1.0 §2.1); sessions that end
/// are announced by back-channel, with `sid` (Back-Channel Logout 1.0 §2.1).
pub fn capabilities(settings: &Settings) -> Capabilities {
    Capabilities::new()
        .set("end_session_endpoint", settings.endpoint("/logout"))
        .set("backchannel_logout_supported", true)
        .set("backchannel_logout_session_supported", true)
}
