//! Strict request parameters. We percent-decode ourselves and refuse what the usual decoders
//! paper over: non-UTF-8 (they substitute U+FFFD), malformed escapes, repeated keys (RFC 6749
//! §3.1: parameters MUST NOT be included more than once), NUL characters, oversized input and
//! too many parameters. Extractors never reject: the handler renders the error on its own channel.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use http::request::Parts;
use std::collections::BTreeMap;

/// Largest query string or form body we read.
pub const MAX_PARAMS_BYTES: usize = 8 * 1024;
/// Most parameters in one request.
pub const MAX_PARAMS: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamError {
    TooLarge,
    TooMany,
    Malformed,
    NotUtf8,
    /// A NUL character: legal in no OAuth parameter (RFC 6749 Appendix A), refused by
    /// PostgreSQL in text.
    Nul,
    Duplicate(String),
    WrongContentType,
}

impl ParamError {
    /// A description legal in `error_description`.
    pub fn describe(&self) -> String {
        match self {
            ParamError::TooLarge => format!("request parameters exceed {MAX_PARAMS_BYTES} bytes"),
            ParamError::TooMany => format!("more than {MAX_PARAMS} parameters"),
            ParamError::Malformed => "malformed percent-encoding in parameters".into(),
            ParamError::NotUtf8 => "parameters must be UTF-8".into(),
            ParamError::Nul => "parameters must not contain NUL characters".into(),
            ParamError::Duplicate(k) => format!("parameter {} is repeated", printable(k)),
            ParamError::WrongContentType => "body must be application/x-www-form-urlencoded".into(),
        }
    }
}

fn printable(k: &str) -> String {
    let p: String = k.chars().filter(|c| c.is_ascii_graphic() && *c != '"' && *c != '\\').take(40).collect();
    if p.is_empty() { "(unnamed)".into() } else { p }
}

/// Decoded parameters. A parameter sent with an empty value counts as omitted (RFC 6749 §3.1).
/// Values (passwords, client secrets, codes, tokens) are zeroized when the parameters drop.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(BTreeMap<String, String>);

impl Drop for Params {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        for v in self.0.values_mut() {
            v.zeroize();
        }
    }
}

impl Params {
    pub fn parse(raw: &[u8]) -> Result<Self, ParamError> {
        let (p, dups) = Self::parse_keeping_first(raw)?;
        match dups.into_iter().next() {
            Some(k) => Err(ParamError::Duplicate(k)),
            None => Ok(p),
        }
    }

    /// Like [`Params::parse`], but a repeated key keeps its first value and is reported, so an
    /// endpoint can still identify the client before refusing the request.
    pub fn parse_keeping_first(raw: &[u8]) -> Result<(Self, Vec<String>), ParamError> {
        if raw.len() > MAX_PARAMS_BYTES {
            return Err(ParamError::TooLarge);
        }
        let mut map = BTreeMap::new();
        let mut dups = Vec::new();
        let mut count = 0usize;
        for piece in raw.split(|b| *b == b'&') {
            if piece.is_empty() {
                continue;
            }
            count += 1;
            if count > MAX_PARAMS {
                return Err(ParamError::TooMany);
            }
            let (k, v) = match piece.iter().position(|b| *b == b'=') {
                Some(i) => (piece.get(..i).unwrap_or_default(), piece.get(i + 1..).unwrap_or_default()),
                None => (piece, &[][..]),
            };
            let k = decode(k)?;
            let v = decode(v)?;
            if map.contains_key(&k) {
                if !dups.contains(&k) {
                    dups.push(k);
                }
                continue;
            }
            map.insert(k, v);
        }
        Ok((Self(map), dups))
    }

    /// The value, or None when absent or empty.
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str).filter(|v| !v.is_empty())
    }

    pub fn contains(&self, k: &str) -> bool {
        self.get(k).is_some()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn insert(&mut self, k: &str, v: &str) {
        self.0.insert(k.to_owned(), v.to_owned());
    }

    pub fn remove(&mut self, k: &str) -> Option<String> {
        self.0.remove(k)
    }
}

/// application/x-www-form-urlencoded decoding of one name or value: `+` is a space, `%XX` an
/// octet; anything else after `%` is an error, and the octets must be UTF-8 without NUL. `&` and
/// `=` are plain characters here (splitting is the caller's business).
pub fn decode(input: &[u8]) -> Result<String, ParamError> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while let Some(&b) = input.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let h = input.get(i + 1).and_then(|c| hex(*c));
                let l = input.get(i + 2).and_then(|c| hex(*c));
                match (h, l) {
                    (Some(h), Some(l)) => out.push(h << 4 | l),
                    _ => return Err(ParamError::Malformed),
                }
                i += 2;
            }
            _ => out.push(b),
        }
        i += 1;
    }
    let s = String::from_utf8(out).map_err(|_| ParamError::NotUtf8)?;
    if s.contains('\0') {
        return Err(ParamError::Nul);
    }
    Ok(s)
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Is the body declared application/x-www-form-urlencoded (parameters after `;` allowed)?
fn is_form(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"))
}

/// Parameters from the query string.
pub struct QueryParams(pub Result<Params, ParamError>);

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(Params::parse(parts.uri.query().unwrap_or("").as_bytes())))
    }
}

/// Parameters from an application/x-www-form-urlencoded body, with the headers kept for
/// client authentication.
pub struct FormParams {
    pub params: Result<Params, ParamError>,
    pub headers: http::HeaderMap,
    /// The socket peer, when the server was started with connect info.
    pub peer: Option<std::net::SocketAddr>,
}

impl<S: Send + Sync> FromRequest<S> for FormParams {
    type Rejection = std::convert::Infallible;
    async fn from_request(req: Request, _: &S) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let ok_type = is_form(&parts.headers);
        let params = if !ok_type {
            Err(ParamError::WrongContentType)
        } else {
            match axum::body::to_bytes(body, MAX_PARAMS_BYTES + 1).await {
                Ok(b) => parse_body(&b),
                Err(_) => Err(ParamError::TooLarge),
            }
        };
        let peer = parts.extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0);
        Ok(Self { params, headers: parts.headers, peer })
    }
}

fn parse_body(b: &Bytes) -> Result<Params, ParamError> {
    Params::parse(b)
}

/// The raw body of an application/x-www-form-urlencoded POST, for endpoints that parse it
/// themselves (e.g. with [`Params::parse_keeping_first`]).
pub struct RawForm {
    pub body: Result<Bytes, ParamError>,
    pub headers: http::HeaderMap,
}

impl<S: Send + Sync> FromRequest<S> for RawForm {
    type Rejection = std::convert::Infallible;
    async fn from_request(req: Request, _: &S) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let ok_type = is_form(&parts.headers);
        let body = if !ok_type {
            Err(ParamError::WrongContentType)
        } else {
            match axum::body::to_bytes(body, MAX_PARAMS_BYTES + 1).await {
                Ok(b) if b.len() > MAX_PARAMS_BYTES => Err(ParamError::TooLarge),
                Ok(b) => Ok(b),
                Err(_) => Err(ParamError::TooLarge),
            }
        };
        Ok(Self { body, headers: parts.headers })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_plus_and_percent() {
        let p = Params::parse(b"a=b+c&d=%C3%A9%2B&e=").unwrap();
        assert_eq!(p.get("a"), Some("b c"));
        assert_eq!(p.get("d"), Some("é+"));
        assert_eq!(p.get("e"), None, "empty values count as omitted");
    }

    #[test]
    fn refuses_repeated_keys_even_when_empty() {
        assert_eq!(Params::parse(b"a=1&a=2"), Err(ParamError::Duplicate("a".into())));
        assert_eq!(Params::parse(b"a=&a=2"), Err(ParamError::Duplicate("a".into())));
        assert_eq!(Params::parse(b"a=1&%61=2"), Err(ParamError::Duplicate("a".into())));
    }

    #[test]
    fn refuses_non_utf8_and_bad_escapes() {
        assert_eq!(Params::parse(b"a=%FF"), Err(ParamError::NotUtf8));
        assert_eq!(Params::parse(b"a=\xff"), Err(ParamError::NotUtf8));
        assert_eq!(Params::parse(b"a=%zz"), Err(ParamError::Malformed));
        assert_eq!(Params::parse(b"a=%4"), Err(ParamError::Malformed));
    }

    /// Issue 7 (hostile input): NUL reached PostgreSQL (which refuses it in text): a 500.
    #[test]
    fn refuses_nul_in_keys_and_values() {
        assert_eq!(Params::parse(b"a=%00"), Err(ParamError::Nul));
        assert_eq!(Params::parse(b"a=b\0"), Err(ParamError::Nul));
        assert_eq!(Params::parse(b"a%00=b"), Err(ParamError::Nul));
    }

    #[test]
    fn refuses_oversized_and_too_many() {
        let big = vec![b'a'; MAX_PARAMS_BYTES + 1];
        assert_eq!(Params::parse(&big), Err(ParamError::TooLarge));
        let many: Vec<String> = (0..=MAX_PARAMS).map(|i| format!("k{i}=v")).collect();
        assert_eq!(Params::parse(many.join("&").as_bytes()), Err(ParamError::TooMany));
    }

    #[test]
    fn duplicate_description_is_printable() {
        let d = ParamError::Duplicate("a\"b\\c".into()).describe();
        assert!(!d.contains('"') && !d.contains('\\'));
    }

    // ---- property tests (issue 7): bounded for CI, `PROPTEST_CASES=100000` runs longer ----

    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn cases(n: u32) -> ProptestConfig {
        let n = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(n);
        ProptestConfig { cases: n, ..ProptestConfig::default() }
    }

    /// Keys and values as a client might send them: any Unicode but NUL, often OAuth-like names.
    fn key() -> impl Strategy<Value = String> {
        prop_oneof!["[a-z_]{1,12}", "[^\\x00]{0,6}", Just("client_id".to_owned()), Just("redirect_uri".to_owned())]
    }

    fn map(max: usize) -> impl Strategy<Value = BTreeMap<String, String>> {
        prop::collection::btree_map(key(), "[^\\x00]{0,24}", 0..max)
    }

    /// Every byte as %XX, upper- or lower-case hex, or `+` for a space: another legal spelling.
    fn percent_all(s: &str, lower: bool) -> String {
        s.bytes()
            .map(|b| match (b, lower) {
                (b' ', _) => "+".to_owned(),
                (_, true) => format!("%{b:02x}"),
                (_, false) => format!("%{b:02X}"),
            })
            .collect()
    }

    fn encode(m: &BTreeMap<String, String>) -> String {
        url::form_urlencoded::Serializer::new(String::new()).extend_pairs(m.iter()).finish()
    }

    proptest! {
        #![proptest_config(cases(1024))]

        /// Any bytes at all: an answer, never a panic; what is accepted respects the caps.
        #[test]
        fn never_panics_and_accepted_input_respects_the_caps(
            raw in prop_oneof![
                prop::collection::vec(any::<u8>(), 0..512),
                "[a-z=&%+0-9A-F]{0,512}".prop_map(String::into_bytes),
                prop::collection::vec(any::<u8>(), MAX_PARAMS_BYTES - 4..MAX_PARAMS_BYTES + 4),
            ]
        ) {
            match Params::parse_keeping_first(&raw) {
                Ok((p, dups)) => {
                    prop_assert!(raw.len() <= MAX_PARAMS_BYTES);
                    prop_assert!(p.iter().count() <= MAX_PARAMS);
                    prop_assert!(p.iter().all(|(k, v)| !k.contains('\0') && !v.contains('\0')));
                    prop_assert!(dups.iter().all(|d| p.0.contains_key(d)));
                    prop_assert_eq!(Params::parse(&raw).is_ok(), dups.is_empty());
                }
                Err(e) => prop_assert_eq!(Params::parse(&raw), Err(e)),
            }
        }

        /// Valid encodings (the standard serializer, or every byte percent-encoded) decode to
        /// exactly the parameters encoded.
        #[test]
        fn valid_encodings_round_trip(m in map(MAX_PARAMS), lower in any::<bool>()) {
            let standard = encode(&m);
            let spelled: Vec<String> =
                m.iter().map(|(k, v)| format!("{}={}", percent_all(k, lower), percent_all(v, lower))).collect();
            for raw in [standard, spelled.join("&")] {
                let parsed = Params::parse(raw.as_bytes());
                if raw.len() > MAX_PARAMS_BYTES {
                    prop_assert_eq!(parsed, Err(ParamError::TooLarge));
                } else {
                    prop_assert_eq!(parsed.map(|p| p.0.clone()), Ok(m.clone()));
                }
            }
        }

        /// A key sent twice, however spelled, is reported; the first value is the one kept.
        #[test]
        fn a_repeated_key_is_always_reported(
            m in map(10),
            k in key(),
            first in "[^\\x00]{0,8}",
            second in "[^\\x00]{0,8}",
            lower in any::<bool>(),
        ) {
            let mut pairs: Vec<String> = vec![format!("{}={}", percent_all(&k, lower), percent_all(&first, lower))];
            pairs.extend(m.iter().filter(|(mk, _)| **mk != k).map(|(mk, v)| encode(&BTreeMap::from([(mk.clone(), v.clone())]))));
            pairs.push(encode(&BTreeMap::from([(k.clone(), second)])));
            let raw = pairs.join("&");
            prop_assert_eq!(Params::parse(raw.as_bytes()), Err(ParamError::Duplicate(k.clone())));
            let (p, dups) = Params::parse_keeping_first(raw.as_bytes()).unwrap();
            prop_assert_eq!(dups, vec![k.clone()]);
            prop_assert_eq!(p.0.get(&k), Some(&first));
        }

        /// More than MAX_PARAMS parameters is TooMany; more than MAX_PARAMS_BYTES is TooLarge.
        #[test]
        fn caps_are_enforced(extra in 1usize..40, pad in 0usize..64) {
            let many: Vec<String> = (0..MAX_PARAMS + extra).map(|i| format!("k{i}=v")).collect();
            prop_assert_eq!(Params::parse(many.join("&").as_bytes()), Err(ParamError::TooMany));
            let big = format!("a={}", "b".repeat(MAX_PARAMS_BYTES - 1 + pad));
            prop_assert_eq!(Params::parse(big.as_bytes()), Err(ParamError::TooLarge));
        }
    }
}
