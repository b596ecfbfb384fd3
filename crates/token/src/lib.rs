//! The token endpoint (RFC 6749 §3.2, OIDC Core §3.1.3) and UserInfo (OIDC Core §5.3).

mod access;
mod authorization_code;
mod client_credentials;
mod id_token;
mod introspect;
mod issue;
mod memberships;
mod refresh;
mod revoke;
mod token;
mod userinfo;

use axum::Router;
use axum::routing::{get, post};
use latchkey_core::Settings;
use latchkey_web::{AppState, Capabilities};

pub const TOKEN_PATH: &str = "/token";
pub const USERINFO_PATH: &str = "/userinfo";
pub const REVOKE_PATH: &str = "/revoke";
pub const INTROSPECT_PATH: &str = "/introspect";

pub fn router() -> Router<AppState> {
    use latchkey_web::cors;
    // Preflights list exactly what each endpoint accepts.
    let pre = |methods: &'static str, headers: &'static str| {
        move |h: http::HeaderMap| async move { cors::preflight(&h, methods, headers) }
    };
    Router::new()
        .route(
            TOKEN_PATH,
            post(token::post_token).get(token::wrong_method).options(pre("POST", "Authorization, Content-Type")),
        )
        .route(
            USERINFO_PATH,
            get(userinfo::get_userinfo)
                .post(userinfo::post_userinfo)
                .options(pre("GET, POST", "Authorization, Content-Type")),
        )
        .route(REVOKE_PATH, post(revoke::post_revoke).options(pre("POST", "Authorization, Content-Type")))
        .route(INTROSPECT_PATH, post(introspect::post_introspect).options(pre("POST", "Authorization, Content-Type")))
        .layer(axum::middleware::from_fn(cors::apply))
}

/// Count the tokens of one successful token response: Prometheus
/// `tokens_issued_total{grant, type}`, `type` one of access_token, refresh_token, id_token.
fn count_issued(grant: &'static str, refresh: bool, id_token: bool) {
    metrics::counter!("tokens_issued_total", "grant" => grant, "type" => "access_token").increment(1);
    if refresh {
        metrics::counter!("tokens_issued_total", "grant" => grant, "type" => "refresh_token").increment(1);
    }
    if id_token {
        metrics::counter!("tokens_issued_total", "grant" => grant, "type" => "id_token").increment(1);
    }
}

pub fn capabilities(settings: &Settings) -> Capabilities {
    let methods = ["client_secret_basic", "client_secret_post", "client_secret_jwt", "private_key_jwt"];
    // Exactly what client_auth accepts (and registration lets a client register).
    let assertion_algs = ["RS256", "PS256", "ES256", "EdDSA", "HS256", "HS384", "HS512"];
    Capabilities::new()
        .set("token_endpoint", settings.endpoint(TOKEN_PATH))
        .set("userinfo_endpoint", settings.endpoint(USERINFO_PATH))
        .set("revocation_endpoint", settings.endpoint(REVOKE_PATH))
        .set("introspection_endpoint", settings.endpoint(INTROSPECT_PATH))
        .add("grant_types_supported", ["authorization_code", "refresh_token", "client_credentials"])
        .add("token_endpoint_auth_methods_supported", methods.into_iter().chain(["none"]))
        .add("token_endpoint_auth_signing_alg_values_supported", assertion_algs)
        .add("revocation_endpoint_auth_methods_supported", methods)
        .add("revocation_endpoint_auth_signing_alg_values_supported", assertion_algs)
        .add("introspection_endpoint_auth_methods_supported", methods)
        .add("introspection_endpoint_auth_signing_alg_values_supported", assertion_algs)
        .add("scopes_supported", ["offline_access"])
        .add("claim_types_supported", ["normal"])
        .add("userinfo_signing_alg_values_supported", signing_algs(settings))
}

fn signing_algs(settings: &Settings) -> Vec<String> {
    settings.signing_algorithms().unwrap_or_default().iter().map(|a| a.as_str().to_owned()).collect()
}
