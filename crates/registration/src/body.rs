//! The JSON body of a registration or update request (RFC 7591 §3.1, RFC 7592 §2.2): an
//! `application/json` object of at most [`MAX_BODY`] bytes, nested at most [`MAX_DEPTH`] deep,
//! with no repeated member names. Anything else is `invalid_request`, never a framework
//! rejection or a 500.

use axum::body::Body;
use http::HeaderMap;
use latchkey_core::OAuthError;
use serde::de::{DeserializeSeed, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::cell::Cell;
use std::fmt;

/// Largest request body read.
pub const MAX_BODY: usize = 64 * 1024;
/// Deepest nesting of arrays and objects (a `jwks` member needs 5).
pub const MAX_DEPTH: usize = 10;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    TooDeep,
    Duplicate,
}

pub fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, OAuthError> {
    let fault = Cell::new(None);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = Strict { depth: 0, fault: &fault }.deserialize(&mut de).and_then(|v| de.end().map(|()| v));
    match (parsed, fault.get()) {
        (Ok(Value::Object(m)), _) => Ok(m),
        (Ok(_), _) => Err(OAuthError::invalid_request("the body must be a JSON object")),
        (Err(e), Some(Fault::TooDeep)) => {
            Err(OAuthError::invalid_request(format!("the body is nested more than {MAX_DEPTH} levels deep")).because(e))
        }
        (Err(e), Some(Fault::Duplicate)) => {
            Err(OAuthError::invalid_request("the body repeats a member name").because(e))
        }
        (Err(e), None) => Err(OAuthError::invalid_request("the body is not valid JSON").because(e)),
    }
}

/// Builds a `serde_json::Value` while counting depth and refusing repeated member names
/// (RFC 8259 §4: names SHOULD be unique; a repeated one could be read differently elsewhere).
struct Strict<'a> {
    depth: usize,
    fault: &'a Cell<Option<Fault>>,
}

impl Strict<'_> {
    fn enter<E: serde::de::Error>(&self) -> Result<Strict<'_>, E> {
        if self.depth >= MAX_DEPTH {
            self.fault.set(Some(Fault::TooDeep));
            return Err(E::custom("nesting too deep"));
        }
        Ok(Strict { depth: self.depth + 1, fault: self.fault })
    }
}

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v).map(Value::Number).ok_or_else(|| E::custom("number out of range"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let inner = self.enter()?;
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(Strict { depth: inner.depth, fault: inner.fault })? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let inner = self.enter()?;
        let mut out = Map::new();
        while let Some(k) = map.next_key::<String>()? {
            if out.contains_key(&k) {
                self.fault.set(Some(Fault::Duplicate));
                return Err(A::Error::custom("repeated member name"));
            }
            let v = map.next_value_seed(Strict { depth: inner.depth, fault: inner.fault })?;
            out.insert(k, v);
        }
        Ok(Value::Object(out))
    }
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
