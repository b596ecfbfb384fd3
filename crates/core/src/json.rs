//! Strict JSON for untrusted input: an object, nested at most `max_depth` deep, with no repeated
//! member names at any level and nothing after it. Used for registration bodies, JWT headers
//! and payloads, and the `claims` parameter, so that no two readers of the same bytes can see
//! different values (RFC 8259 §4: names SHOULD be unique; RFC 7519 §4: a JWT with duplicate
//! claim names may be rejected), no input can nest without bound, and no string holds U+0000.

use serde::de::{DeserializeSeed, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::cell::Cell;
use std::fmt;

/// Nesting allowed by default: a registration's `jwks` needs 5, a `claims` request 5.
pub const MAX_DEPTH: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonError {
    /// Arrays and objects nested deeper than allowed.
    TooDeep,
    /// A member name appears twice in one object.
    Duplicate,
    /// Valid JSON, but not an object.
    NotObject,
    /// A string or member name holds U+0000 (legal JSON, but nothing we store may hold it:
    /// PostgreSQL refuses it in text).
    Nul,
    /// Not JSON (syntax, invalid UTF-8 or surrogates, trailing data).
    Invalid,
}

impl JsonError {
    /// A description legal in `error_description`.
    pub fn describe(self) -> &'static str {
        match self {
            JsonError::TooDeep => "JSON nested too deep",
            JsonError::Duplicate => "JSON repeats a member name",
            JsonError::NotObject => "JSON value is not an object",
            JsonError::Nul => "JSON string contains U+0000",
            JsonError::Invalid => "not valid JSON",
        }
    }
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

impl std::error::Error for JsonError {}

/// Parse `bytes` as one JSON object under the rules above.
pub fn parse_object(bytes: &[u8], max_depth: usize) -> Result<Map<String, Value>, JsonError> {
    let fault = Cell::new(None);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = Strict { depth: 0, max_depth, fault: &fault }.deserialize(&mut de).and_then(|v| de.end().map(|()| v));
    match (parsed, fault.get()) {
        (Ok(Value::Object(m)), _) => Ok(m),
        (Ok(_), _) => Err(JsonError::NotObject),
        (Err(_), Some(f)) => Err(f),
        (Err(_), None) => Err(JsonError::Invalid),
    }
}

/// Builds a `serde_json::Value` while counting depth and refusing repeated member names and
/// U+0000.
struct Strict<'a> {
    depth: usize,
    max_depth: usize,
    fault: &'a Cell<Option<JsonError>>,
}

impl Strict<'_> {
    fn string<E: serde::de::Error>(&self, s: String) -> Result<Value, E> {
        if s.contains('\0') {
            self.fault.set(Some(JsonError::Nul));
            return Err(E::custom("U+0000 in a string"));
        }
        Ok(Value::String(s))
    }

    fn enter<E: serde::de::Error>(&self) -> Result<Strict<'_>, E> {
        if self.depth >= self.max_depth {
            self.fault.set(Some(JsonError::TooDeep));
            return Err(E::custom("nesting too deep"));
        }
        Ok(Strict { depth: self.depth + 1, max_depth: self.max_depth, fault: self.fault })
    }

    fn child(&self) -> Strict<'_> {
        Strict { depth: self.depth, max_depth: self.max_depth, fault: self.fault }
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
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Value, E> {
        self.string(v.to_owned())
    }
    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Value, E> {
        self.string(v)
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
        while let Some(v) = seq.next_element_seed(inner.child())? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let inner = self.enter()?;
        let mut out = Map::new();
        while let Some(k) = map.next_key::<String>()? {
            if out.contains_key(&k) {
                self.fault.set(Some(JsonError::Duplicate));
                return Err(A::Error::custom("repeated member name"));
            }
            if k.contains('\0') {
                self.fault.set(Some(JsonError::Nul));
                return Err(A::Error::custom("U+0000 in a member name"));
            }
            let v = map.next_value_seed(inner.child())?;
            out.insert(k, v);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(s: &str) -> Result<Map<String, Value>, JsonError> {
        parse_object(s.as_bytes(), MAX_DEPTH)
    }

    #[test]
    fn accepts_an_object_with_a_jwks() {
        let m = parse(r#"{"a": [1, 2.5, null, true], "jwks": {"keys": [{"kty": "EC", "x5c": ["x"]}]}}"#).unwrap();
        assert_eq!(m["a"], serde_json::json!([1, 2.5, null, true]));
    }

    #[test]
    fn refuses_deep_nesting_repeated_names_non_objects_and_trailing_data() {
        let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
        assert_eq!(parse(&format!("{{\"a\": {deep}}}")), Err(JsonError::TooDeep));
        let at = |n: usize| format!("{{\"a\": {}1{}}}", "[".repeat(n), "]".repeat(n));
        assert_eq!(parse(&at(MAX_DEPTH)), Err(JsonError::TooDeep));
        assert!(parse(&at(MAX_DEPTH - 1)).is_ok());
        assert_eq!(parse(r#"{"a": 1, "a": 2}"#), Err(JsonError::Duplicate));
        assert_eq!(parse(r#"{"a": {"b": 1, "b": 1}}"#), Err(JsonError::Duplicate));
        // Escapes do not hide a repeated name.
        assert_eq!(parse(r#"{"alg": 1, "\u0061lg": 2}"#), Err(JsonError::Duplicate));
        assert_eq!(parse("[1]"), Err(JsonError::NotObject));
        // Issue 7: U+0000 reached PostgreSQL (which refuses it in text): a 500.
        assert_eq!(parse(r#"{"a": "x\u0000"}"#), Err(JsonError::Nul));
        assert_eq!(parse(r#"{"a\u0000": 1}"#), Err(JsonError::Nul));
        assert_eq!(parse(r#"{"a": [{"b": "\u0000"}]}"#), Err(JsonError::Nul));
        assert_eq!(parse(r#"{"a": 1} x"#), Err(JsonError::Invalid));
        assert_eq!(parse("{\"a\": \"\\ud800\"}"), Err(JsonError::Invalid));
        assert_eq!(parse(""), Err(JsonError::Invalid));
        assert_eq!(parse_object(b"{\"a\": \"\xff\"}", MAX_DEPTH), Err(JsonError::Invalid));
    }

    /// Bounded for CI; `PROPTEST_CASES=100000` runs longer.
    fn cases() -> ProptestConfig {
        let n = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(512);
        ProptestConfig { cases: n, ..ProptestConfig::default() }
    }

    /// Arbitrary bytes, and text from JSON's own alphabet (which reaches deeper into the parser).
    fn jsonish() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..128),
            "[{}\\[\\]\":, 0-9a-c.eE+\\-\\\\u]{0,96}".prop_map(String::into_bytes),
            "\\{(\"[ab]\": ?(\\[|\\{\"[ab]\":)?[0-9]{1,3}(\\]|\\})?, ?){0,4}\"[ab]\":1\\}".prop_map(String::into_bytes),
        ]
    }

    fn leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| Value::Number(n.into())),
            "[^\u{0}]{0,8}".prop_map(Value::String),
        ]
    }

    fn value() -> impl Strategy<Value = Value> {
        leaf().prop_recursive(6, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map("[^\u{0}]{0,6}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn depth(v: &Value) -> usize {
        match v {
            Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
            Value::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
            _ => 0,
        }
    }

    proptest! {
        #![proptest_config(cases())]

        /// Whatever the bytes, the parser answers (no panic), and what it accepts is what
        /// serde_json reads, nested no deeper than allowed.
        #[test]
        fn never_panics_and_agrees_with_serde_json(bytes in jsonish()) {
            if let Ok(m) = parse_object(&bytes, 4) {
                let plain: Value = serde_json::from_slice(&bytes).unwrap();
                prop_assert_eq!(&plain, &Value::Object(m.clone()));
                prop_assert!(depth(&Value::Object(m)) <= 4);
            }
        }

        /// Serialised objects (unique names by construction) round-trip exactly when within
        /// the depth limit, and are refused as too deep otherwise.
        #[test]
        fn round_trips_objects_within_the_depth_limit(
            m in prop::collection::btree_map("[^\u{0}]{0,6}", value(), 0..6),
            limit in 1usize..8,
        ) {
            let v = Value::Object(m.into_iter().collect());
            let text = serde_json::to_vec(&v).unwrap();
            match parse_object(&text, limit) {
                Ok(back) => {
                    prop_assert!(depth(&v) <= limit);
                    prop_assert_eq!(Value::Object(back), v);
                }
                Err(e) => {
                    prop_assert_eq!(e, JsonError::TooDeep);
                    prop_assert!(depth(&v) > limit);
                }
            }
        }

        /// A member name written twice in any object is refused.
        #[test]
        fn a_repeated_name_is_always_refused(
            name in "[a-z]{1,5}",
            a in leaf(),
            b in leaf(),
            wrap in 0usize..4,
        ) {
            let inner = format!("{{{}: {a}, {}: {b}}}", Value::String(name.clone()), Value::String(name));
            let text = (0..wrap).fold(inner, |acc, i| format!("{{\"w{i}\": {acc}}}"));
            prop_assert_eq!(parse_object(text.as_bytes(), MAX_DEPTH), Err(JsonError::Duplicate));
        }
    }
}
