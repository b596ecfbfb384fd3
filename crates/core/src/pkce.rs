//! PKCE (RFC 7636), S256 only.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A code challenge that can only exist with method S256 and a well-formed value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeChallenge(String);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PkceError {
    /// `plain` or an unknown method.
    UnsupportedMethod,
    /// Not 43 base64url characters (the encoding of a SHA-256 digest).
    MalformedChallenge,
    /// `code_challenge_method` without `code_challenge`.
    MethodWithoutChallenge,
}

impl CodeChallenge {
    /// RFC 7636 §4.3: the method defaults to `plain` when absent; we support only S256, so an
    /// absent method with a challenge is refused like `plain`.
    pub fn parse(challenge: Option<&str>, method: Option<&str>) -> Result<Option<Self>, PkceError> {
        match (challenge, method) {
            (None, None) => Ok(None),
            (None, Some(_)) => Err(PkceError::MethodWithoutChallenge),
            (Some(_), None | Some("plain")) => Err(PkceError::UnsupportedMethod),
            (Some(c), Some("S256")) => {
                if c.len() == 43 && c.bytes().all(is_base64url) {
                    Ok(Some(Self(c.to_owned())))
                } else {
                    Err(PkceError::MalformedChallenge)
                }
            }
            (Some(_), Some(_)) => Err(PkceError::UnsupportedMethod),
        }
    }

    pub fn from_stored(s: String) -> Self {
        Self(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// RFC 7636 §4.6: BASE64URL(SHA256(ASCII(code_verifier))) == code_challenge, and the
    /// verifier is 43–128 unreserved characters (§4.1).
    pub fn verify(&self, verifier: &str) -> bool {
        if !(43..=128).contains(&verifier.len()) || !verifier.bytes().all(is_unreserved) {
            return false;
        }
        let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        computed.as_bytes().ct_eq(self.0.as_bytes()).into()
    }
}

fn is_base64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7636 Appendix B.
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn rfc_7636_appendix_b_vector_verifies() {
        let c = CodeChallenge::parse(Some(CHALLENGE), Some("S256")).unwrap().unwrap();
        assert!(c.verify(VERIFIER));
        assert!(!c.verify("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXX"));
    }

    #[test]
    fn plain_and_missing_method_are_refused() {
        assert_eq!(CodeChallenge::parse(Some(CHALLENGE), Some("plain")), Err(PkceError::UnsupportedMethod));
        assert_eq!(CodeChallenge::parse(Some(CHALLENGE), None), Err(PkceError::UnsupportedMethod));
        assert_eq!(CodeChallenge::parse(None, Some("S256")), Err(PkceError::MethodWithoutChallenge));
        assert_eq!(CodeChallenge::parse(None, None), Ok(None));
    }

    #[test]
    fn malformed_challenges_are_refused() {
        assert_eq!(CodeChallenge::parse(Some("short"), Some("S256")), Err(PkceError::MalformedChallenge));
        let bad = format!("{}=", &CHALLENGE[..42]);
        assert_eq!(CodeChallenge::parse(Some(&bad), Some("S256")), Err(PkceError::MalformedChallenge));
    }

    #[test]
    fn verifier_outside_43_to_128_unreserved_fails() {
        let c = CodeChallenge::parse(Some(CHALLENGE), Some("S256")).unwrap().unwrap();
        assert!(!c.verify("short"));
        assert!(!c.verify(&"a".repeat(129)));
    }
}
