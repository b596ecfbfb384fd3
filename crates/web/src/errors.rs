//! Error renderers, one per channel (see ARCHITECTURE.md "Errors").

use askama::Template;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use latchkey_core::{ErrorCode, OAuthError};

/// RFC 6749 §5.2 JSON error for back-channel endpoints, `Cache-Control: no-store`.
/// `invalid_client` is 401, with `WWW-Authenticate: Basic` when the client tried the
/// Authorization header (RFC 6749 §5.2).
pub struct BackChannel {
    pub error: OAuthError,
    pub basic_attempted: bool,
}

impl BackChannel {
    pub fn new(error: OAuthError) -> Self {
        Self { error, basic_attempted: false }
    }
}

impl From<OAuthError> for BackChannel {
    fn from(e: OAuthError) -> Self {
        Self::new(e)
    }
}

pub fn log_error(e: &OAuthError) {
    match e.code {
        ErrorCode::ServerError => tracing::error!(error = %e, "request failed"),
        _ => tracing::info!(error = %e, "request refused"),
    }
}

impl IntoResponse for BackChannel {
    fn into_response(self) -> Response {
        log_error(&self.error);
        let code = self.error.code;
        let body = serde_json::json!({
            "error": code.as_str(),
            "error_description": self.error.description(),
        });
        let status = StatusCode::from_u16(self.error.status()).unwrap_or(StatusCode::BAD_REQUEST);
        let mut resp = (status, axum::Json(body)).into_response();
        let h = resp.headers_mut();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        if let Some(secs) = self.error.retry_after() {
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if code == ErrorCode::InvalidClient && self.basic_attempted {
            h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"latchkey\", charset=\"UTF-8\""));
        }
        resp
    }
}

/// JSON success response with `Cache-Control: no-store` (token, introspection, registration).
pub fn no_store_json(status: StatusCode, body: serde_json::Value) -> Response {
    let mut resp = (status, axum::Json(body)).into_response();
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp.headers_mut().insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    resp
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorView<'a> {
    title: &'a str,
    message: &'a str,
    code: &'a str,
    lang: &'a str,
}

/// An HTML error page (400 unless the code says otherwise), shown when the client or its
/// redirect URI cannot be trusted: the user is never redirected.
pub struct ErrorPage {
    pub error: OAuthError,
    pub status: StatusCode,
}

impl ErrorPage {
    pub fn new(error: OAuthError) -> Self {
        let status = match error.code {
            ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        };
        Self { error, status }
    }
}

impl From<OAuthError> for ErrorPage {
    fn from(e: OAuthError) -> Self {
        Self::new(e)
    }
}

impl IntoResponse for ErrorPage {
    fn into_response(self) -> Response {
        log_error(&self.error);
        let view = ErrorView {
            title: "Sign-in request not accepted",
            message: self.error.description(),
            code: self.error.code.as_str(),
            lang: "en",
        };
        html(self.status, &view)
    }
}

/// Render an askama template as an HTML response with `Cache-Control: no-store`.
pub fn html<T: Template>(status: StatusCode, t: &T) -> Response {
    match t.render() {
        Ok(body) => {
            let mut r = (status, body).into_response();
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
            r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Err(e) => {
            tracing::error!(error = %e, "template rendering failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

/// RFC 6750 §3: a protected-resource error with `WWW-Authenticate: Bearer …`. Without a code
/// (no credentials were sent) only the realm is given (§3.1).
pub struct Bearer {
    pub error: Option<OAuthError>,
    pub realm: String,
    /// For `insufficient_scope`, the scope needed.
    pub scope: Option<&'static str>,
}

impl Bearer {
    pub fn missing(realm: &str) -> Self {
        Self { error: None, realm: realm.to_owned(), scope: None }
    }
    pub fn error(realm: &str, e: OAuthError) -> Self {
        Self { error: Some(e), realm: realm.to_owned(), scope: None }
    }
}

impl IntoResponse for Bearer {
    fn into_response(self) -> Response {
        let realm = self.realm.replace(['"', '\\'], "");
        let (status, challenge, body) = match &self.error {
            None => (StatusCode::UNAUTHORIZED, format!("Bearer realm=\"{realm}\""), serde_json::json!({})),
            Some(e) => {
                log_error(e);
                let mut c = format!(
                    "Bearer realm=\"{realm}\", error=\"{}\", error_description=\"{}\"",
                    e.code.as_str(),
                    e.description()
                );
                if let Some(s) = self.scope {
                    c.push_str(&format!(", scope=\"{s}\""));
                }
                let status = StatusCode::from_u16(e.code.status()).unwrap_or(StatusCode::BAD_REQUEST);
                (status, c, serde_json::json!({"error": e.code.as_str(), "error_description": e.description()}))
            }
        };
        let mut r = (status, axum::Json(body)).into_response();
        if let Ok(v) = HeaderValue::from_str(&challenge) {
            r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        r
    }
}
