//! Request-level caps in front of every route (issue 7, hostile input): header and URI size,
//! declared body size, requests served at once. Timeouts are `tower_http`'s `TimeoutLayer`;
//! each extractor also caps what it reads (forms 8 KiB, registration JSON 64 KiB).

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use std::sync::Arc;
use tokio::sync::Semaphore;

#[derive(Clone)]
pub struct Caps {
    pub max_body_bytes: usize,
    pub max_header_bytes: usize,
    /// Requests served at once; further ones wait for a permit.
    pub slots: Arc<Semaphore>,
    /// How long a request waits for a permit before 503.
    pub queue_timeout: std::time::Duration,
}

impl Caps {
    pub fn new(h: &latchkey_core::settings::Http) -> Self {
        Self {
            max_body_bytes: h.max_body_bytes,
            max_header_bytes: h.max_header_bytes,
            slots: Arc::new(Semaphore::new(h.max_concurrent_requests)),
            queue_timeout: std::time::Duration::from_secs(h.request_timeout),
        }
    }
}

/// A JSON error (RFC 6749 §5.2 shape) with a plain HTTP status for what no endpoint reads.
fn refuse(status: StatusCode, what: &str) -> Response {
    let body = serde_json::json!({"error": "invalid_request", "error_description": what});
    let mut r = (status, axum::Json(body)).into_response();
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

pub async fn caps(State(caps): State<Caps>, req: Request, next: Next) -> Response {
    let uri_len = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if uri_len > caps.max_header_bytes {
        return refuse(StatusCode::URI_TOO_LONG, "the request URI is too long");
    }
    let header_bytes: usize = req.headers().iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum();
    if header_bytes + uri_len > caps.max_header_bytes {
        return refuse(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "the request headers are too large");
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > caps.max_body_bytes as u64) {
        return refuse(StatusCode::PAYLOAD_TOO_LARGE, "the request body is too large");
    }
    // Health checks are never queued behind the load they are meant to report on.
    if matches!(req.uri().path(), "/healthz" | "/readyz") {
        return next.run(req).await;
    }
    // A slot within the request deadline, or 503: a flood of slow requests holding every slot
    // must not queue the rest forever.
    // The fast path takes a free slot without arming a timer.
    let permit = match caps.slots.clone().try_acquire_owned() {
        Ok(p) => Ok(p),
        Err(_) => match tokio::time::timeout(caps.queue_timeout, caps.slots.clone().acquire_owned()).await {
            Ok(Ok(p)) => Ok(p),
            _ => Err(()),
        },
    };
    let Ok(_permit) = permit else {
        let mut r = refuse(StatusCode::SERVICE_UNAVAILABLE, "the server is busy: retry later");
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return r;
    };
    next.run(req).await
}
