//! Compact JWS as untrusted input (RFC 7515 §5.2, RFC 8725). Every JWT Latchkey reads (client
//! assertions, request objects, ID token hints, its own access and logout tokens) is taken
//! apart here before any key is chosen:
//!
//! - bounded size; exactly three segments (five is a JWE, refused by name); every segment
//!   strict base64url without padding;
//! - header and payload are JSON objects with no repeated member names, nested at most
//!   [`MAX_DEPTH`] deep ([`latchkey_core::json`]);
//! - `alg` is a string; `crit` is refused, since we understand no extension (RFC 7515
//!   §4.1.11); a header with `enc` is a JWE header and is refused.
//!
//! The payload read here is **unverified**: only [`Compact::verify`] returns claims that a
//! signature covers. Which algorithms and keys are acceptable is the caller's decision.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use josekit::jws::JwsVerifier;
use latchkey_core::json::{self, JsonError};
use serde_json::{Map, Value};

/// Largest JWT read anywhere (request objects are the largest we accept).
pub const MAX_JWS_BYTES: usize = 16 * 1024;
/// Deepest nesting in a header or payload (a `claims` request inside a request object needs 5).
pub const MAX_DEPTH: usize = json::MAX_DEPTH;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JwsError {
    #[error("JWT is too large")]
    TooLarge,
    #[error("encrypted JWTs (JWE) are not accepted")]
    Encrypted,
    #[error("not a compact JWS (three segments)")]
    Segments,
    #[error("a JWT segment is not base64url")]
    Base64,
    #[error("JWT header: {0}")]
    Header(JsonError),
    #[error("JWT payload: {0}")]
    Payload(JsonError),
    #[error("JWT header has no alg")]
    NoAlg,
    #[error("JWT header has an unsupported crit")]
    Critical,
    #[error("bad signature")]
    BadSignature,
}

/// A compact JWS whose structure has been checked, not its signature.
#[derive(Debug, Clone)]
pub struct Compact<'a> {
    token: &'a str,
    pub header: Map<String, Value>,
    /// The payload's claims, NOT verified.
    pub unverified: Map<String, Value>,
    /// The signature segment was empty (only ever acceptable with `alg: none`).
    pub unsigned: bool,
}

/// Take `token` apart under the rules above.
pub fn parse(token: &str, max_len: usize) -> Result<Compact<'_>, JwsError> {
    if token.len() > max_len.min(MAX_JWS_BYTES) {
        return Err(JwsError::TooLarge);
    }
    let segments: Vec<&str> = token.split('.').collect();
    let [h, p, s] = segments.as_slice() else {
        // RFC 7516 §9: five segments is a JWE.
        return Err(if segments.len() == 5 { JwsError::Encrypted } else { JwsError::Segments });
    };
    let decode = |seg: &str| URL_SAFE_NO_PAD.decode(seg).map_err(|_| JwsError::Base64);
    let header = json::parse_object(&decode(h)?, MAX_DEPTH).map_err(JwsError::Header)?;
    let payload = decode(p)?;
    decode(s)?;
    if header.contains_key("enc") {
        return Err(JwsError::Encrypted);
    }
    // RFC 7515 §4.1.11: a crit extension we do not understand makes the JWS invalid; we
    // understand none (b64 included, RFC 7797).
    if header.contains_key("crit") {
        return Err(JwsError::Critical);
    }
    if !header.get("alg").is_some_and(Value::is_string) {
        return Err(JwsError::NoAlg);
    }
    let unverified = json::parse_object(&payload, MAX_DEPTH).map_err(JwsError::Payload)?;
    Ok(Compact { token, header, unverified, unsigned: s.is_empty() })
}

impl Compact<'_> {
    pub fn alg(&self) -> &str {
        self.header.get("alg").and_then(Value::as_str).unwrap_or_default()
    }

    pub fn kid(&self) -> Option<&str> {
        self.header.get("kid").and_then(Value::as_str)
    }

    /// Is the header's `typ` absent or one of `allowed`? (RFC 8725 §3.11: compared without
    /// case, with an optional `application/` prefix.)
    pub fn typ_absent_or(&self, allowed: &[&str]) -> bool {
        match self.header.get("typ") {
            None => true,
            Some(Value::String(t)) => allowed.iter().any(|a| typ_matches(t, a)),
            Some(_) => false,
        }
    }

    /// Is the header's `typ` present and equal to `expected`?
    pub fn typ_is(&self, expected: &str) -> bool {
        self.header.get("typ").and_then(Value::as_str).is_some_and(|t| typ_matches(t, expected))
    }

    /// Check the signature with `verifier` (whose algorithm josekit compares with the header's
    /// `alg`) and return the claims it covers.
    pub fn verify(&self, verifier: &dyn JwsVerifier) -> Result<Map<String, Value>, JwsError> {
        if self.unsigned {
            return Err(JwsError::BadSignature);
        }
        let (payload, _) =
            josekit::jws::deserialize_compact(self.token, verifier).map_err(|_| JwsError::BadSignature)?;
        json::parse_object(&payload, MAX_DEPTH).map_err(JwsError::Payload)
    }
}

/// RFC 8725 §3.11 / RFC 7515 §4.1.9: media type names compare without case, and the
/// `application/` prefix may be left out.
pub fn typ_matches(got: &str, expected: &str) -> bool {
    let strip = |s: &str| {
        let lower = s.to_ascii_lowercase();
        lower.strip_prefix("application/").map(str::to_owned).unwrap_or(lower)
    };
    strip(got) == strip(expected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use josekit::jws::{ES256, HS256, JwsHeader};
    use proptest::prelude::*;
    use serde_json::json;

    fn b64(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    fn token(header: &str, payload: &str, sig: &str) -> String {
        format!("{}.{}.{sig}", b64(header), b64(payload))
    }

    #[test]
    fn a_well_formed_jws_is_taken_apart() {
        let t = token(r#"{"alg":"ES256","kid":"k","typ":"JWT"}"#, r#"{"iss":"a"}"#, "c2ln");
        let c = parse(&t, MAX_JWS_BYTES).unwrap();
        assert_eq!((c.alg(), c.kid(), c.unsigned), ("ES256", Some("k"), false));
        assert_eq!(c.unverified["iss"], "a");
        assert!(c.typ_is("jwt") && c.typ_absent_or(&["application/JWT"]) && !c.typ_absent_or(&["at+jwt"]));
    }

    #[test]
    fn structure_encoding_and_headers_are_checked() {
        let ok_h = r#"{"alg":"RS256"}"#;
        let cases: Vec<(String, JwsError)> = vec![
            ("a".repeat(MAX_JWS_BYTES + 1), JwsError::TooLarge),
            ("a.b".into(), JwsError::Segments),
            ("a.b.c.d".into(), JwsError::Segments),
            ("a.b.c.d.e".into(), JwsError::Encrypted),
            (token(r#"{"alg":"RSA-OAEP","enc":"A256GCM"}"#, "{}", ""), JwsError::Encrypted),
            (format!("{}=.{}.", b64(ok_h), b64("{}")), JwsError::Base64),
            (format!("{}.{}.ab+/", b64(ok_h), b64("{}")), JwsError::Base64),
            (format!("{}.{}.", b64(ok_h), URL_SAFE_NO_PAD.encode([0xff, 0xfe])), JwsError::Payload(JsonError::Invalid)),
            (token(r#"{"alg":"RS256","crit":["exp"],"exp":1}"#, "{}", ""), JwsError::Critical),
            (token(r#"{"alg":"RS256","b64":false,"crit":["b64"]}"#, "{}", ""), JwsError::Critical),
            (token(r#"{"alg":"RS256","crit":[]}"#, "{}", ""), JwsError::Critical),
            (token(r#"{"kid":"k"}"#, "{}", ""), JwsError::NoAlg),
            (token(r#"{"alg":null}"#, "{}", ""), JwsError::NoAlg),
            (token(r#"{"alg":"none","alg":"RS256"}"#, "{}", ""), JwsError::Header(JsonError::Duplicate)),
            (token(ok_h, r#"{"sub":"a","sub":"b"}"#, ""), JwsError::Payload(JsonError::Duplicate)),
            (token(ok_h, "[1]", ""), JwsError::Payload(JsonError::NotObject)),
            (
                token(ok_h, &format!("{{\"a\":{}{}}}", "[".repeat(20), "]".repeat(20)), ""),
                JwsError::Payload(JsonError::TooDeep),
            ),
        ];
        for (t, want) in cases {
            assert_eq!(parse(&t, MAX_JWS_BYTES).map(|_| ()), Err(want), "{t}");
        }
        // The caller's own, smaller bound applies too.
        assert_eq!(parse(&token(ok_h, "{}", ""), 10).map(|_| ()), Err(JwsError::TooLarge));
    }

    #[test]
    fn verify_needs_a_signature_and_returns_the_signed_claims() {
        let key = b"0123456789abcdef0123456789abcdef";
        let signer = HS256.signer_from_bytes(key).unwrap();
        let verifier = HS256.verifier_from_bytes(key).unwrap();
        let t = josekit::jws::serialize_compact(br#"{"iss":"a"}"#, &JwsHeader::new(), &signer).unwrap();
        let c = parse(&t, MAX_JWS_BYTES).unwrap();
        assert_eq!(c.verify(&verifier).unwrap()["iss"], "a");
        // The same header and payload with the signature removed.
        let stripped = format!("{}.", t.rsplit_once('.').unwrap().0);
        assert_eq!(parse(&stripped, MAX_JWS_BYTES).unwrap().verify(&verifier), Err(JwsError::BadSignature));
        // Algorithm confusion: an HS256 token is refused by an ES256 verifier, whatever the key.
        let es = ES256.generate_key_pair().unwrap();
        let es_verifier = ES256.verifier_from_jwk(&es.to_jwk_public_key()).unwrap();
        assert_eq!(c.verify(&es_verifier), Err(JwsError::BadSignature));
    }

    /// Bounded for CI; `PROPTEST_CASES=100000` runs longer.
    fn cases(n: u32) -> ProptestConfig {
        let n = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(n);
        ProptestConfig { cases: n, ..ProptestConfig::default() }
    }

    fn signed(claims: &Value) -> (String, Box<dyn JwsVerifier>) {
        let kp = ES256.generate_key_pair().unwrap();
        let signer = ES256.signer_from_jwk(&kp.to_jwk_private_key()).unwrap();
        let verifier = Box::new(ES256.verifier_from_jwk(&kp.to_jwk_public_key()).unwrap());
        let mut h = JwsHeader::new();
        h.set_token_type("JWT");
        h.set_key_id("k1");
        (josekit::jws::serialize_compact(claims.to_string().as_bytes(), &h, &signer).unwrap(), verifier)
    }

    proptest! {
        #![proptest_config(cases(512))]

        /// Arbitrary text, and text made of base64url segments: parse answers without panicking,
        /// and what it accepts has three segments, an alg, and no crit.
        #[test]
        fn parse_never_panics(t in prop_oneof![
            ".{0,200}",
            "[A-Za-z0-9_\\-]{0,60}(\\.[A-Za-z0-9_\\-=+/]{0,60}){0,5}",
        ]) {
            if let Ok(c) = parse(&t, MAX_JWS_BYTES) {
                prop_assert_eq!(t.split('.').count(), 3);
                prop_assert!(!c.header.contains_key("crit"));
                prop_assert!(c.header.get("alg").is_some_and(Value::is_string));
            }
        }
    }

    proptest! {
        #![proptest_config(cases(64))]

        /// A signed token with any one byte changed, inserted or removed never verifies (base64url
        /// trailing bits are refused, so no other spelling of the same signature exists).
        #[test]
        fn a_mutated_token_never_verifies(
            sub in "[a-z]{1,12}",
            pos in any::<prop::sample::Index>(),
            byte in any::<u8>(),
            kind in 0u8..3,
        ) {
            let claims = json!({"iss": "c", "sub": sub, "aud": "https://id.example"});
            let (t, verifier) = signed(&claims);
            let mut bytes = t.clone().into_bytes();
            let i = pos.index(bytes.len());
            match kind {
                0 => { if let Some(b) = bytes.get_mut(i) { *b = byte; } }
                1 => bytes.insert(i, byte),
                _ => { bytes.remove(i); }
            }
            let Ok(mutated) = String::from_utf8(bytes) else { return Ok(()) };
            if mutated == t {
                return Ok(());
            }
            let verified = parse(&mutated, MAX_JWS_BYTES).and_then(|c| c.verify(verifier.as_ref()));
            prop_assert!(verified.is_err(), "accepted a mutated token: {}", mutated);
        }
    }
}
