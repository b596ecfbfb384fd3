//! The JSON body of a registration or update request (RFC 7591 §3.1, RFC 7592 §2.2): an
//! `application/json` object of at most [`MAX_BODY`] bytes, nested at most [`MAX_DEPTH`] deep,
//! with no repeated member names. Anything else is `invalid_request`, never a framework
//! rejection or a 500.

use axum::body::Body;
use http::HeaderMap;
use latchkey_core::OAuthError;
use latchkey_core::json::{self, JsonError};
use serde_json::{Map, Value};

/// Largest request body read.
pub const MAX_BODY: usize = 64 * 1024;
/// Deepest nesting of arrays and objects (a `jwks` member needs 5).
pub const MAX_DEPTH: usize = json::MAX_DEPTH;

pub async fn read_object(headers: &HeaderMap, body: Body) -> Result<Map<String, Value>, OAuthError> {
    // RFC 7591 §3.1: the request is an HTTP POST with content type application/json.
    let is_json = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(OAuthError::invalid_request("the body must be application/json"));
    }
    let bytes = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|e| OAuthError::invalid_request(format!("the body must be at most {MAX_BODY} bytes")).because(e))?;
    parse_object(&bytes)
}

pub fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, OAuthError> {
    json::parse_object(bytes, MAX_DEPTH).map_err(|e| {
        let d = match e {
            JsonError::TooDeep => format!("the body is nested more than {MAX_DEPTH} levels deep"),
            JsonError::Duplicate => "the body repeats a member name".into(),
            JsonError::NotObject => "the body must be a JSON object".into(),
            JsonError::Invalid => "the body is not valid JSON".into(),
            JsonError::Nul => "the body holds U+0000".into(),
        };
        OAuthError::invalid_request(d).because(e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(body: &str) -> String {
        parse_object(body.as_bytes()).unwrap_err().description().to_owned()
    }

    #[test]
    fn accepts_an_object_with_a_jwks() {
        let m =
            parse_object(br#"{"a": [1, 2.5, null, true], "jwks": {"keys": [{"kty": "EC", "x5c": ["x"]}]}}"#).unwrap();
        assert_eq!(m["a"], serde_json::json!([1, 2.5, null, true]));
    }

    #[test]
    fn refuses_deep_nesting_repeated_names_non_objects_and_trailing_data() {
        let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
        assert!(err(&format!("{{\"a\": {deep}}}")).contains("nested"));
        assert!(err(&format!("{{\"a\": {}1{}}}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH))).contains("nested"));
        assert!(
            parse_object(format!("{{\"a\": {}1{}}}", "[".repeat(MAX_DEPTH - 1), "]".repeat(MAX_DEPTH - 1)).as_bytes())
                .is_ok()
        );
        assert!(err(r#"{"a": 1, "a": 2}"#).contains("repeats"));
        assert!(err(r#"{"a": {"b": 1, "b": 1}}"#).contains("repeats"));
        assert!(err("[1]").contains("object"));
        assert!(err(r#"{"a": 1} x"#).contains("not valid JSON"));
        assert!(err("{\"a\": \"\\ud800\"}").contains("not valid JSON"));
        assert!(err("").contains("not valid JSON"));
    }
}
