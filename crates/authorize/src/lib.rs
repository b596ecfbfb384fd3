//! The authorization endpoint (RFC 6749 §4.1, OpenID Connect Core §3.1.2): `GET`/`POST
//! /authorize`, and `/authorize/resume`, where the flow continues after the login, account and
//! consent pages.

mod authorize;
mod flow;
mod resume;

use axum::Router;
use axum::routing::get;
use latchkey_core::Settings;
use latchkey_web::interaction::RESUME_PATH;
use latchkey_web::{AppState, Capabilities};

pub const AUTHORIZE_PATH: &str = "/authorize";

pub fn router() -> Router<AppState> {
    Router::new()
        .route(AUTHORIZE_PATH, get(authorize::get_authorize).post(authorize::post_authorize))
        .route(RESUME_PATH, get(resume::resume))
}

pub fn capabilities(settings: &Settings) -> Capabilities {
    Capabilities::new()
        .set("authorization_endpoint", settings.endpoint(AUTHORIZE_PATH))
        .add("response_types_supported", ["code"])
        .add("response_modes_supported", ["query", "form_post"])
        .add("grant_types_supported", ["authorization_code"])
        .add("code_challenge_methods_supported", ["S256"])
        .add("scopes_supported", ["openid", "profile", "email", "address", "phone"])
        .add("claims_supported", latchkey_core::claims::supported_claims())
        .add("prompt_values_supported", ["none", "login", "consent", "select_account"])
        .add("display_values_supported", ["page"])
        .add("acr_values_supported", ["0"])
        .set("claims_parameter_supported", true)
        .set("request_parameter_supported", false)
        .set("request_uri_parameter_supported", false)
        .set("require_request_uri_registration", false)
        .set("authorization_response_iss_parameter_supported", true)
        .add("ui_locales_supported", ["en"])
}
