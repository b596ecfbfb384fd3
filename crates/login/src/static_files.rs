use axum::response::{IntoResponse, Response};
use http::{HeaderValue, header};

const CSS: &str = include_str!("../static/latchkey.css");
const FORM_POST_JS: &str = include_str!("../static/form_post.js");

fn asset(body: &'static str, ctype: &'static str) -> Response {
    let mut r = body.into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    r
}

pub async fn css() -> Response {
    asset(CSS, "text/css; charset=utf-8")
}

pub async fn form_post_js() -> Response {
    asset(FORM_POST_JS, "text/javascript; charset=utf-8")
}
