//! Signing keys: generation, encryption at rest under the master key, rotation, the JWKS, and
//! signing and verifying JWTs with josekit. Parsed keys live in memory ([`KeyRing`]); the key
//! table is re-read on a timer, not per request.

pub mod jws;
mod master;
mod ring;

pub use master::{KEY_FILE, MasterKey, MasterKeyError};
pub use ring::{KeyRing, KeySummary, SignedJwt, VerifyError};

use josekit::jwk::alg::ed::EdCurve;
use josekit::jws::{ES256, EdDSA, PS256, RS256};
use latchkey_core::model::SigningAlg;
use latchkey_core::{Settings, UnixTime};
use latchkey_storage::{KeyRecord, SealedValues, Store, StoreError};
use rand::RngCore;

#[derive(Debug, thiserror::Error)]
pub enum SignerError {
    #[error("{0}")]
    MasterKey(#[from] MasterKeyError),
    #[error("signing key `{kid}` cannot be used: {reason}")]
    CorruptKey { kid: String, reason: String },
    #[error("cannot generate a {alg} key: {reason}")]
    Generate { alg: SigningAlg, reason: String },
    #[error("nothing was changed: {0}")]
    Rewrap(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The value encrypted under the master key and stored in `meta`, so a wrong master key is
/// recognised at start-up before any key is used.
const CHECK_PLAINTEXT: &[u8] = b"latchkey master key check v1";
const CHECK_AAD: &str = "meta:master_key_check";
const CHECK_META: &str = "master_key_check";

/// Make sure the master key is the one the database was set up with (recording it on first
/// start), create a key for every configured algorithm that has none, and load the key ring.
pub async fn bootstrap(
    store: &dyn Store,
    settings: &Settings,
    master: &MasterKey,
    now: UnixTime,
) -> Result<KeyRing, SignerError> {
    verify_master_key(store, master).await?;
    let existing = store.list_keys().await?;
    let algs = settings
        .signing_algorithms()
        .map_err(|e| SignerError::Generate { alg: SigningAlg::RS256, reason: e.to_string() })?;
    let missing: Vec<SigningAlg> =
        algs.iter().copied().filter(|a| !existing.iter().any(|k| k.alg == a.as_str())).collect();
    if !missing.is_empty() {
        let mut fresh = Vec::new();
        for alg in missing {
            fresh.push(generate_key(alg, settings.signing.rsa_bits, master, now, now)?);
        }
        let inserted = store.insert_initial_keys(&fresh).await?;
        for kid in inserted {
            tracing::info!(kid = %kid, "created signing key");
        }
    }
    let ring = KeyRing::new(settings, master.clone());
    ring.reload(store, now).await?;
    Ok(ring)
}

/// Check (or, on an empty database, record) the master key.
pub async fn verify_master_key(store: &dyn Store, master: &MasterKey) -> Result<(), SignerError> {
    let candidate = master.encrypt(CHECK_PLAINTEXT, CHECK_AAD)?;
    let stored = store.put_meta_if_absent(CHECK_META, &candidate).await?;
    match master.decrypt(&stored, CHECK_AAD) {
        Ok(p) if p.as_slice() == CHECK_PLAINTEXT => Ok(()),
        _ => Err(SignerError::MasterKey(MasterKeyError::Mismatch)),
    }
}

const SALT_META: &str = "pairwise_salt";
const SALT_AAD: &str = "meta:pairwise_salt";

/// The secret salt of pairwise subject identifiers: created once (stored encrypted under the
/// master key, in the database so every instance shares it), then read back.
pub async fn pairwise_salt(store: &dyn Store, master: &MasterKey) -> Result<zeroize::Zeroizing<Vec<u8>>, SignerError> {
    let mut fresh = [0u8; 32];
    rand::rng().fill_bytes(&mut fresh);
    let candidate = master.encrypt(&fresh, SALT_AAD)?;
    fresh.iter_mut().for_each(|b| *b = 0);
    let stored = store.put_meta_if_absent(SALT_META, &candidate).await?;
    master
        .decrypt(&stored, SALT_AAD)
        .map_err(|e| SignerError::CorruptKey { kid: SALT_META.into(), reason: e.to_string() })
}

/// `latchkey keys rotate`: a new key for every configured algorithm, published now, signing
/// after `signing.rotation_delay`; the current keys retire at that moment.
pub async fn rotate(
    store: &dyn Store,
    settings: &Settings,
    master: &MasterKey,
    now: UnixTime,
) -> Result<Vec<KeyRecord>, SignerError> {
    verify_master_key(store, master).await?;
    let algs = settings
        .signing_algorithms()
        .map_err(|e| SignerError::Generate { alg: SigningAlg::RS256, reason: e.to_string() })?;
    let activates = now + settings.signing.rotation_delay;
    let mut fresh = Vec::new();
    for alg in algs {
        fresh.push(generate_key(alg, settings.signing.rsa_bits, master, now, activates)?);
    }
    store.rotate_keys(&fresh).await?;
    Ok(fresh)
}

/// What a master-key rewrap re-encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rewrapped {
    pub keys: usize,
    pub client_secrets: usize,
    pub meta: usize,
}

/// Re-encrypt every value sealed under the master key (private signing keys, client_secret_jwt
/// secrets, the pairwise salt and the check value) under `new`, reading and rewriting them in
/// one transaction. Fails, changing nothing, if any value cannot be decrypted with `old`.
pub async fn rewrap(store: &dyn Store, old: &MasterKey, new: &MasterKey) -> Result<Rewrapped, SignerError> {
    verify_master_key(store, old).await?;
    let reseal = |v: SealedValues| -> Result<SealedValues, String> {
        let one = |what: String, sealed: &str, aad: &str| -> Result<String, String> {
            let plain = old
                .decrypt(sealed, aad)
                .map_err(|e| format!("{what} cannot be decrypted with the current master key: {e}"))?;
            new.encrypt(&plain, aad).map_err(|e| format!("{what} cannot be re-encrypted: {e}"))
        };
        let mut out = SealedValues::default();
        for (kid, pk) in &v.keys {
            out.keys.push((kid.clone(), one(format!("signing key `{kid}`"), pk, kid)?));
        }
        for (id, enc) in &v.client_secrets {
            out.client_secrets
                .push((id.clone(), one(format!("the secret of client `{id}`"), enc, &format!("client_secret:{id}"))?));
        }
        for (k, val) in &v.meta {
            // The meta values are sealed with AAD "meta:<key>" (CHECK_AAD, SALT_AAD).
            out.meta.push((k.clone(), one(format!("meta value `{k}`"), val, &format!("meta:{k}"))?));
        }
        Ok(out)
    };
    match store.reseal_all(&[CHECK_META, SALT_META], &reseal).await? {
        Ok(v) => Ok(Rewrapped { keys: v.keys.len(), client_secrets: v.client_secrets.len(), meta: v.meta.len() }),
        Err(reason) => Err(SignerError::Rewrap(reason)),
    }
}

fn random_kid() -> String {
    use base64::Engine;
    let mut b = [0u8; 12];
    rand::rng().fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// Generate a key pair for `alg`; the private key is encrypted under the master key with the
/// kid as associated data (a row cannot be swapped for another).
pub fn generate_key(
    alg: SigningAlg,
    rsa_bits: u32,
    master: &MasterKey,
    now: UnixTime,
    activates_at: UnixTime,
) -> Result<KeyRecord, SignerError> {
    let kid = random_kid();
    let err = |e: josekit::JoseError| SignerError::Generate { alg, reason: e.to_string() };
    let (pem, mut jwk) = match alg {
        SigningAlg::RS256 => {
            let kp = RS256.generate_key_pair(rsa_bits).map_err(err)?;
            (kp.to_pem_private_key(), kp.to_jwk_public_key())
        }
        SigningAlg::PS256 => {
            let kp = PS256.generate_key_pair(rsa_bits).map_err(err)?;
            (kp.to_pem_private_key(), kp.to_jwk_public_key())
        }
        SigningAlg::ES256 => {
            let kp = ES256.generate_key_pair().map_err(err)?;
            (kp.to_pem_private_key(), kp.to_jwk_public_key())
        }
        SigningAlg::EdDSA => {
            let kp = EdDSA.generate_key_pair(EdCurve::Ed25519).map_err(err)?;
            (kp.to_pem_private_key(), kp.to_jwk_public_key())
        }
    };
    jwk.set_key_id(&kid);
    jwk.set_key_use("sig");
    jwk.set_algorithm(alg.as_str());
    let private_key = master.encrypt(&pem, &kid)?;
    Ok(KeyRecord {
        public_jwk: jwk.to_string(),
        kid,
        alg: alg.as_str().to_owned(),
        private_key,
        created_at: now,
        activates_at,
        retired_at: None,
    })
}
