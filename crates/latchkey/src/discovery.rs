//! `/.well-known/openid-configuration` (OpenID Connect Discovery 1.0),
//! `/.well-known/oauth-authorization-server` (RFC 8414) and the JWKS, served from bytes
//! rendered once at start (discovery) or on key reload (JWKS).

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderValue, header};
use latchkey_core::Settings;
use latchkey_web::{AppState, Capabilities};
use std::sync::Arc;

pub const JWKS_PATH: &str = "/jwks.json";

pub struct Documents {
    metadata: Arc<[u8]>,
}

impl Documents {
    /// What the server itself contributes (issuer, JWKS, algorithms it can sign with), merged
    /// with what the endpoint crates mounted.
    pub fn build(settings: &Settings, mounted: Capabilities) -> Self {
        let algs: Vec<String> =
            settings.signing_algorithms().unwrap_or_default().iter().map(|a| a.as_str().to_owned()).collect();
        let own = Capabilities::new()
            .set("issuer", settings.issuer.clone())
            .set("jwks_uri", settings.endpoint(JWKS_PATH))
            .add("subject_types_supported", ["public", "pairwise"])
            .add("id_token_signing_alg_values_supported", algs);
        let doc = own.merge(mounted);
        let bytes = serde_json::to_vec(&serde_json::Value::Object(doc.0)).unwrap_or_default();
        Self { metadata: bytes.into() }
    }

    pub fn router(self) -> Router<AppState> {
        let metadata = self.metadata;
        let m2 = metadata.clone();
        Router::new()
            .route("/.well-known/openid-configuration", get(move || serve_json(metadata.clone(), 300)))
            .route("/.well-known/oauth-authorization-server", get(move || serve_json(m2.clone(), 300)))
            .route(JWKS_PATH, get(jwks))
            // Public documents: any origin may read them (no credentials).
            .layer(axum::middleware::from_fn(latchkey_web::cors::public))
    }
}

async fn serve_json(bytes: Arc<[u8]>, max_age: u32) -> Response {
    json_bytes(bytes, max_age)
}

fn json_bytes(bytes: Arc<[u8]>, max_age: u32) -> Response {
    let mut r = axum::body::Bytes::from_owner(bytes).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Ok(v) = HeaderValue::from_str(&format!("public, max-age={max_age}")) {
        h.insert(header::CACHE_CONTROL, v);
    }
    r
}

async fn jwks(State(state): State<AppState>) -> Response {
    // Short cache: a rotated key is published `signing.rotation_delay` before it signs.
    json_bytes(state.keys.jwks(), 60)
}
