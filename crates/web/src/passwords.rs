//! Password hashing and verification with argon2id, off the async runtime, with a bounded
//! number in flight so a login flood cannot starve other endpoints.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use latchkey_core::settings::Argon2Settings;
use std::sync::Arc;
use tokio::sync::Semaphore;

#[derive(Clone)]
pub struct Passwords {
    params: Params,
    permits: Arc<Semaphore>,
    /// Verified against when the username is unknown, so both cases cost the same.
    dummy: Arc<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

fn argon(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

impl Passwords {
    pub fn new(s: &Argon2Settings) -> Result<Self, HashError> {
        let params =
            Params::new(s.memory_kib, s.iterations, s.parallelism, None).map_err(|e| HashError(e.to_string()))?;
        let n = if s.max_concurrent == 0 {
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
        } else {
            s.max_concurrent
        };
        let dummy = hash_with(&params, "latchkey dummy password for unknown users")?;
        Ok(Self { params, permits: Arc::new(Semaphore::new(n)), dummy: Arc::new(dummy) })
    }

    /// Hash synchronously (CLI use).
    pub fn hash_blocking(&self, password: &str) -> Result<String, HashError> {
        hash_with(&self.params, password)
    }

    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        let _permit = self.permits.acquire().await.map_err(|e| HashError(e.to_string()))?;
        let params = self.params.clone();
        let pw = zeroize::Zeroizing::new(password);
        tokio::task::spawn_blocking(move || hash_with(&params, &pw)).await.map_err(|e| HashError(e.to_string()))?
    }

    /// Verify `password` against `phc`, or against a dummy hash when there is no user, so an
    /// unknown username costs the same as a wrong password. Any malformed hash is a mismatch.
    pub async fn verify(&self, phc: Option<&str>, password: String) -> bool {
        let Ok(_permit) = self.permits.acquire().await else { return false };
        let known = phc.is_some();
        let phc = phc.map(str::to_owned).unwrap_or_else(|| self.dummy.as_str().to_owned());
        let params = self.params.clone();
        let pw = zeroize::Zeroizing::new(password);
        let ok = tokio::task::spawn_blocking(move || verify_with(&params, &phc, &pw)).await.unwrap_or(false);
        ok && known
    }
}

fn hash_with(params: &Params, password: &str) -> Result<String, HashError> {
    let mut bytes = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
    let salt = SaltString::encode_b64(&bytes).map_err(|e| HashError(e.to_string()))?;
    argon(params).hash_password(password.as_bytes(), &salt).map(|h| h.to_string()).map_err(|e| HashError(e.to_string()))
}

fn verify_with(params: &Params, phc: &str, password: &str) -> bool {
    match PasswordHash::new(phc) {
        // The parameters stored in the PHC string win, so raising the settings does not lock
        // out existing users.
        Ok(h) => argon(params).verify_password(password.as_bytes(), &h).is_ok(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> Passwords {
        Passwords::new(&Argon2Settings { memory_kib: 64, iterations: 1, parallelism: 1, max_concurrent: 2 }).unwrap()
    }

    #[tokio::test]
    async fn hashes_are_argon2id_and_verify() {
        let p = cheap();
        let h = p.hash("correct horse".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert!(p.verify(Some(&h), "correct horse".into()).await);
        assert!(!p.verify(Some(&h), "wrong".into()).await);
        assert!(!p.verify(None, "correct horse".into()).await);
        assert!(!p.verify(Some("garbage"), "x".into()).await);
    }
}
