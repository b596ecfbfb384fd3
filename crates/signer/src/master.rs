//! The master key that encrypts private signing keys at rest (AES-256-GCM).

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rand::RngCore;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use zeroize::Zeroizing;

#[derive(Debug, thiserror::Error)]
pub enum MasterKeyError {
    #[error("LATCHKEY_MASTER_KEY must be 32 random bytes, base64-encoded (e.g. `openssl rand -base64 32`)")]
    BadEnv,
    #[error("master key file {path} must hold 32 bytes, base64-encoded")]
    BadFile { path: PathBuf },
    #[error("cannot read or create the master key file {path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error(
        "the master key does not match the one this database's signing keys were encrypted with (check LATCHKEY_MASTER_KEY or the master.key file in the data directory)"
    )]
    Mismatch,
    #[error("encrypted value is malformed")]
    Malformed,
    #[error("decryption failed (wrong master key or altered data)")]
    Decrypt,
}

/// 256-bit key, zeroized on drop.
#[derive(Clone)]
pub struct MasterKey(Arc<Zeroizing<[u8; 32]>>);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

const PREFIX: &str = "v1.";
pub const KEY_FILE: &str = "master.key";

impl MasterKey {
    pub fn from_bytes(b: [u8; 32]) -> Self {
        Self(Arc::new(Zeroizing::new(b)))
    }

    pub fn generate() -> Self {
        let mut b = Zeroizing::new([0u8; 32]);
        rand::rng().fill_bytes(b.as_mut());
        Self(Arc::new(b))
    }

    /// Base64 (standard or URL-safe, padded or not) of exactly 32 bytes.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        let bytes =
            Zeroizing::new(URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).or_else(|_| STANDARD.decode(s)).ok()?);
        let arr: [u8; 32] = bytes.as_slice().try_into().ok()?;
        Some(Self::from_bytes(arr))
    }

    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0.as_slice())
    }

    /// From `LATCHKEY_MASTER_KEY` when given, else from `<data_dir>/master.key`, which is
    /// created with mode 0600 on first start.
    pub fn load(env_value: Option<&str>, data_dir: &Path) -> Result<Self, MasterKeyError> {
        if let Some(v) = env_value {
            return Self::parse(v).ok_or(MasterKeyError::BadEnv);
        }
        let path = data_dir.join(KEY_FILE);
        let ioerr = |e: std::io::Error| MasterKeyError::File { path: path.clone(), reason: e.to_string() };
        match std::fs::read_to_string(&path) {
            Ok(s) => Self::parse(&s).ok_or_else(|| MasterKeyError::BadFile { path: path.clone() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // The data directory holds the database too: nobody else may enter it.
                let mut dir = std::fs::DirBuilder::new();
                dir.recursive(true);
                #[cfg(unix)]
                std::os::unix::fs::DirBuilderExt::mode(&mut dir, 0o700);
                dir.create(data_dir).map_err(ioerr)?;
                let key = Self::generate();
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create_new(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt;
                    opts.mode(0o600);
                }
                match opts.open(&path) {
                    Ok(mut f) => {
                        f.write_all(key.encode().as_bytes()).map_err(ioerr)?;
                        f.write_all(b"\n").map_err(ioerr)?;
                        f.sync_all().map_err(ioerr)?;
                        tracing::info!(path = %path.display(), "created master key file");
                        Ok(key)
                    }
                    // Another process created it first: use theirs.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        let s = std::fs::read_to_string(&path).map_err(ioerr)?;
                        Self::parse(&s).ok_or_else(|| MasterKeyError::BadFile { path: path.clone() })
                    }
                    Err(e) => Err(ioerr(e)),
                }
            }
            Err(e) => Err(ioerr(e)),
        }
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(self.0.as_slice()))
    }

    /// `v1.` + base64url(nonce ‖ ciphertext ‖ tag); `aad` binds the ciphertext to its row.
    pub fn encrypt(&self, plaintext: &[u8], aad: &str) -> Result<String, MasterKeyError> {
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let ct = self
            .cipher()
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad: aad.as_bytes() })
            .map_err(|_| MasterKeyError::Malformed)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        Ok(format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(out)))
    }

    pub fn decrypt(&self, s: &str, aad: &str) -> Result<Zeroizing<Vec<u8>>, MasterKeyError> {
        let body = s.strip_prefix(PREFIX).ok_or(MasterKeyError::Malformed)?;
        let raw = URL_SAFE_NO_PAD.decode(body).map_err(|_| MasterKeyError::Malformed)?;
        if raw.len() < 12 + 16 {
            return Err(MasterKeyError::Malformed);
        }
        let (nonce, ct) = raw.split_at(12);
        self.cipher()
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: aad.as_bytes() })
            .map(Zeroizing::new)
            .map_err(|_| MasterKeyError::Decrypt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_aad_binding() {
        let k = MasterKey::generate();
        let c = k.encrypt(b"secret pem", "kid1").unwrap();
        assert_eq!(k.decrypt(&c, "kid1").unwrap().as_slice(), b"secret pem");
        assert!(matches!(k.decrypt(&c, "kid2"), Err(MasterKeyError::Decrypt)));
        assert!(matches!(MasterKey::generate().decrypt(&c, "kid1"), Err(MasterKeyError::Decrypt)));
        assert!(matches!(k.decrypt("v1.AAAA", "kid1"), Err(MasterKeyError::Malformed)));
        assert!(!c.contains("secret"));
    }

    #[test]
    fn parses_standard_and_url_safe_base64_of_32_bytes_only() {
        let k = MasterKey::generate();
        assert!(MasterKey::parse(&k.encode()).is_some());
        assert!(MasterKey::parse(&STANDARD.encode([7u8; 32])).is_some());
        assert!(MasterKey::parse(&STANDARD.encode([7u8; 31])).is_none());
        assert!(MasterKey::parse("not base64!").is_none());
    }

    #[test]
    fn key_file_is_created_once_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let a = MasterKey::load(None, dir.path()).unwrap();
        let b = MasterKey::load(None, dir.path()).unwrap();
        assert_eq!(a.encode(), b.encode());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(matches!(MasterKey::load(Some("short"), dir.path()), Err(MasterKeyError::BadEnv)));
    }
}
