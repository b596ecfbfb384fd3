//! Secrets have types. A [`SecretToken`] is what a client holds (a code, a refresh token, a
//! session id, a generated client secret); a [`TokenHash`] is all the store ever sees.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// A 256-bit random secret, base64url without padding (43 characters). Zeroized on drop and
/// never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SecretToken(String);

impl SecretToken {
    /// 32 bytes from a CSPRNG seeded by the operating system (rand's ChaCha12 thread RNG).
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let s = URL_SAFE_NO_PAD.encode(bytes);
        bytes.zeroize();
        Self(s)
    }

    /// Wrap a secret received from a client. Nothing is checked here; an unknown value simply
    /// hashes to something the store does not hold.
    pub fn from_presented(value: &str) -> Self {
        Self(value.to_owned())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> TokenHash {
        TokenHash::of(&self.0)
    }
}

impl std::fmt::Debug for SecretToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretToken(..)")
    }
}

/// SHA-256 of a high-entropy secret, base64url. Fast hashing is right here: the secrets are
/// 256-bit random, so there is nothing for a slow hash to protect against guessing.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TokenHash(String);

impl TokenHash {
    fn of(secret: &str) -> Self {
        Self(URL_SAFE_NO_PAD.encode(Sha256::digest(secret.as_bytes())))
    }

    /// A hash read back from the store.
    pub fn from_stored(s: String) -> Self {
        Self(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Constant-time comparison.
    pub fn matches(&self, other: &TokenHash) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

impl std::fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A hash is not secret, but a prefix is enough to correlate in logs.
        write!(f, "TokenHash({}…)", self.0.get(..8).unwrap_or(""))
    }
}

/// Constant-time equality of two byte strings.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_have_256_bits_and_differ() {
        let a = SecretToken::generate();
        let b = SecretToken::generate();
        assert_eq!(a.expose().len(), 43);
        assert_ne!(a.expose(), b.expose());
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let a = SecretToken::from_presented("hunter2");
        assert!(!format!("{a:?}").contains("hunter2"));
    }

    #[test]
    fn hash_is_sha256_base64url() {
        // SHA-256("abc") = ba7816bf...
        let h = SecretToken::from_presented("abc").hash();
        assert_eq!(h.as_str(), "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0");
        assert!(h.matches(&TokenHash::from_stored(h.as_str().to_owned())));
        assert!(!h.matches(&SecretToken::from_presented("abd").hash()));
    }
}
