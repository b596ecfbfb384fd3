//! The authorization endpoint (RFC 6749 §4.1, OpenID Connect Core §3.1.2): `GET`/`POST
//! /authorize`, and `/authorize/resume`, where the flow continues after the login, account and
//! consent pages.

mod authorize;
mod flow;
mod par;
mod request_object;
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
        .route(par::PAR_PATH, axum::routing::post(par::post_par))
}

pub fn capabilities(settings: &Settings) -> Capabilities {
    Capabilities::new()
        .set("authorization_endpoint", settings.endpoint(AUTHORIZE_PATH))
        .add("response_types_supported", ["code"])
        .add("response_modes_supported", ["query", "form_post"])
        .add("grant_types_supported", ["authorization_code"])
        .add("code_challenge_methods_supported", ["S256"])
        .add("scopes_supported", ["openid", "profile", "email", "address", "phone", "groups", "roles"])
        .add("claims_supported", latchkey_core::claims::supported_claims())
        .add("prompt_values_supported", ["none", "login", "consent", "select_account"])
        .add("display_values_supported", ["page"])
        .add("acr_values_supported", ["0"])
        .set("claims_parameter_supported", true)
        .set("request_parameter_supported", true)
        .set("request_uri_parameter_supported", true)
        .set("require_request_uri_registration", settings.request_objects.require_request_uri_registration)
        .add("request_object_signing_alg_values_supported", request_object_algs(settings))
        .set("pushed_authorization_request_endpoint", settings.endpoint(par::PAR_PATH))
        .set("require_pushed_authorization_requests", settings.request_objects.require_pushed_authorization_requests)
        .set("authorization_response_iss_parameter_supported", true)
        .add("ui_locales_supported", ["en"])
}

fn request_object_algs(settings: &Settings) -> Vec<&'static str> {
    let mut v = vec!["RS256", "PS256", "ES256", "EdDSA", "HS256", "HS384", "HS512"];
    if settings.request_objects.allow_unsigned {
        v.push("none");
    }
    v
}
