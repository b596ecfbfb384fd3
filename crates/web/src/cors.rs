//! CORS for browser-based clients (OAuth 2.0 for Browser-Based Apps). Discovery and JWKS are
//! public (`*`). The token, UserInfo, revocation and introspection endpoints grant CORS only
//! to the web origins of the client the request concerns: handlers attach [`ClientOrigins`] to
//! their response once they know the client, and [`apply`] compares the request's `Origin`.
//! Credentials are never allowed (no cookies are used there).

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use latchkey_core::model::Client;

/// The origins a client's browser code runs on: registered `web_origins`, else the origins of
/// its redirect URIs.
#[derive(Debug, Clone, Default)]
pub struct ClientOrigins {
    pub client_id: String,
    pub origins: Vec<String>,
}

pub fn origins_of(client: &Client) -> ClientOrigins {
    let explicit: Vec<String> = client
        .metadata
        .get("web_origins")
        .and_then(|v| v.as_array())
        .map(|a| a.iter().filter_map(|o| o.as_str()).map(str::to_owned).collect())
        .unwrap_or_default();
    let origins =
        if explicit.is_empty() { client.redirect_uris.iter().filter_map(|u| origin_of(u)).collect() } else { explicit };
    ClientOrigins { client_id: client.client_id.clone(), origins }
}

/// `scheme://host[:port]` of an http(s) URL (RFC 6454 serialisation).
pub fn origin_of(uri: &str) -> Option<String> {
    let u = url::Url::parse(uri).ok()?;
    if !matches!(u.scheme(), "http" | "https") {
        return None;
    }
    Some(u.origin().ascii_serialization()).filter(|o| o != "null")
}

/// Attach the client's origins to a response.
pub fn for_client(mut r: Response, client: &Client) -> Response {
    r.extensions_mut().insert(origins_of(client));
    r
}

fn request_origin(h: &HeaderMap) -> Option<String> {
    h.get(header::ORIGIN).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// Middleware for client-specific CORS endpoints.
pub async fn apply(req: Request, next: Next) -> Response {
    let origin = request_origin(req.headers());
    let path = req.uri().path().to_owned();
    let mut resp = next.run(req).await;
    let Some(origin) = origin else { return resp };
    let allowed = resp.extensions().get::<ClientOrigins>().cloned();
    let h = resp.headers_mut();
    h.append(header::VARY, HeaderValue::from_static("Origin"));
    match allowed {
        Some(c) if c.origins.iter().any(|o| o == &origin) => {
            if let Ok(v) = HeaderValue::from_str(&origin) {
                h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
                h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static("WWW-Authenticate"));
            }
        }
        Some(c) => {
            tracing::info!(origin = %origin, client_id = %c.client_id, path = %path, "CORS refused: origin is not a web origin of the client")
        }
        None => tracing::info!(origin = %origin, path = %path, "CORS refused: the request names no known client"),
    }
    resp
}

/// A preflight answer for an endpoint accepting `methods` and `headers`: it lists exactly
/// those; whether the actual response may be read is decided per client on that response.
pub fn preflight(req_headers: &HeaderMap, methods: &'static str, headers: &'static str) -> Response {
    let mut r = StatusCode::NO_CONTENT.into_response();
    let h = r.headers_mut();
    h.insert(header::VARY, HeaderValue::from_static("Origin"));
    let Some(origin) = request_origin(req_headers).filter(|o| origin_of(o).as_deref() == Some(o.as_str())) else {
        return r;
    };
    let method_ok = req_headers
        .get(header::ACCESS_CONTROL_REQUEST_METHOD)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|m| methods.split(", ").any(|x| x == m));
    if !method_ok {
        return r;
    }
    if let Ok(v) = HeaderValue::from_str(&origin) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
    h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static(methods));
    h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static(headers));
    h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    r
}

/// Public documents (discovery, JWKS): any origin, no credentials.
pub async fn public(req: Request, next: Next) -> Response {
    let is_preflight = req.method() == http::Method::OPTIONS;
    if is_preflight {
        let mut r = StatusCode::NO_CONTENT.into_response();
        let h = r.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET"));
        h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
        return r;
    }
    let mut resp = next.run(req).await;
    resp.headers_mut().insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_come_from_redirect_uris_unless_registered() {
        let mut c = Client {
            client_id: "c".into(),
            redirect_uris: vec![
                "https://app.example/cb".into(),
                "http://127.0.0.1:5173/cb".into(),
                "com.example:/cb".into(),
            ],
            ..Default::default()
        };
        assert_eq!(origins_of(&c).origins, vec!["https://app.example", "http://127.0.0.1:5173"]);
        c.metadata.insert("web_origins".into(), serde_json::json!(["https://spa.example"]));
        assert_eq!(origins_of(&c).origins, vec!["https://spa.example"]);
        assert_eq!(origin_of("https://a.example:443/x"), Some("https://a.example".into()));
    }
}
