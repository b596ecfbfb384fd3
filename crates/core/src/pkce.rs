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

    /// Differential check against oxide-auth's S256 implementation on random verifiers.
    #[test]
    fn agrees_with_oxide_auth_on_s256() {
        use oxide_auth::code_grant::extensions::Pkce;
        use rand::Rng;
        let oracle = Pkce::required();
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~";
        let mut rng = rand::rng();
        for i in 0..300 {
            let len = 43 + (i % 86);
            let verifier: String = (0..len).map(|_| alphabet[rng.random_range(0..alphabet.len())] as char).collect();
            let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
            let ours = CodeChallenge::parse(Some(&challenge), Some("S256")).unwrap().unwrap();
            let stored = oracle.challenge(Some("S256".into()), Some(challenge.clone().into())).unwrap();
            assert_eq!(ours.verify(&verifier), oracle.verify(stored.clone(), Some(verifier.as_str().into())).is_ok());
            let other = format!("{}A", &verifier[..verifier.len() - 1]);
            let other = if other == verifier { format!("{}B", &verifier[..verifier.len() - 1]) } else { other };
            assert_eq!(ours.verify(&other), oracle.verify(stored, Some(other.as_str().into())).is_ok());
        }
    }

    /// Why /token does not route through oxide-auth's flows: in optional mode it accepts a
    /// code_verifier when no challenge was stored, the downgrade RFC 9700 §2.1.1 forbids. Our
    /// token endpoint refuses that case (tests/http/token.rs, a_verifier_without_a_challenge_is_refused).
    #[test]
    fn oxide_auth_optional_mode_accepts_the_pkce_downgrade() {
        use oxide_auth::code_grant::extensions::Pkce;
        assert!(Pkce::optional().verify(None, Some("an-attacker-chosen-verifier".into())).is_ok());
    }
}
