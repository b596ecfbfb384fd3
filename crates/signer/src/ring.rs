//! The in-memory key ring: parsed signers and verifiers and the pre-rendered JWKS.

use josekit::jwk::Jwk;
use josekit::jws::{ES256, EdDSA, JwsHeader, JwsSigner, JwsVerifier, PS256, RS256};
use latchkey_core::model::SigningAlg;
use latchkey_core::{Settings, UnixTime};
use latchkey_storage::{KeyRecord, Store};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::{MasterKey, SignerError, jws};

type JsonObject = serde_json::Map<String, serde_json::Value>;

struct LoadedKey {
    kid: String,
    alg: SigningAlg,
    signer: Box<dyn JwsSigner>,
    verifier: Box<dyn JwsVerifier>,
    public_jwk: serde_json::Value,
    activates_at: UnixTime,
    retired_at: Option<UnixTime>,
}

#[derive(Default)]
struct KeySet {
    keys: Vec<Arc<LoadedKey>>,
    jwks: Arc<[u8]>,
}

/// What `keys list` shows of a key.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeySummary {
    pub kid: String,
    pub alg: String,
    pub activates_at: UnixTime,
    pub retired_at: Option<UnixTime>,
    /// `pending` (published, not yet signing), `active`, `retired` (published, no longer
    /// signing) or `expired` (no longer published).
    pub state: &'static str,
}

#[derive(Debug, Clone)]
pub struct SignedJwt {
    pub token: String,
    pub kid: String,
    pub alg: SigningAlg,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("not a compact JWS")]
    Malformed,
    #[error("unknown key id")]
    UnknownKey,
    #[error("algorithm does not match the key")]
    AlgorithmMismatch,
    #[error("unsupported critical header")]
    CriticalHeader,
    #[error("bad signature")]
    BadSignature,
    #[error("payload is not a JSON object")]
    BadPayload,
    #[error("wrong token type")]
    WrongType,
}

/// Parsed keys, shared by every request. Reloaded from the store by a background task.
pub struct KeyRing {
    master: MasterKey,
    max_token_lifetime: i64,
    state: RwLock<Arc<KeySet>>,
}

impl KeyRing {
    pub fn new(settings: &Settings, master: MasterKey) -> Self {
        Self {
            master,
            max_token_lifetime: settings.max_signed_token_lifetime(),
            state: RwLock::new(Arc::new(KeySet::default())),
        }
    }

    fn current(&self) -> Arc<KeySet> {
        match self.state.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Re-read the key table. Keys already parsed are reused; new ones are decrypted and parsed.
    /// Any key that cannot be decrypted or parsed fails the reload (the old ring stays).
    pub async fn reload(&self, store: &dyn Store, now: UnixTime) -> Result<(), SignerError> {
        let records = store.list_keys().await?;
        let old = self.current();
        let by_kid: HashMap<&str, &Arc<LoadedKey>> = old.keys.iter().map(|k| (k.kid.as_str(), k)).collect();
        let mut keys = Vec::with_capacity(records.len());
        for r in &records {
            match by_kid.get(r.kid.as_str()) {
                Some(k) if k.retired_at == r.retired_at && k.activates_at == r.activates_at => keys.push(Arc::clone(k)),
                _ => keys.push(Arc::new(self.load(r)?)),
            }
        }
        let published: Vec<&serde_json::Value> = keys
            .iter()
            .filter(|k| k.retired_at.is_none_or(|r| r + self.max_token_lifetime > now))
            .map(|k| &k.public_jwk)
            .collect();
        let jwks = serde_json::to_vec(&serde_json::json!({ "keys": published }))
            .map_err(|e| SignerError::CorruptKey { kid: "*".into(), reason: e.to_string() })?;
        let set = Arc::new(KeySet { keys, jwks: jwks.into() });
        match self.state.write() {
            Ok(mut g) => *g = set,
            Err(poisoned) => *poisoned.into_inner() = set,
        }
        Ok(())
    }

    fn load(&self, r: &KeyRecord) -> Result<LoadedKey, SignerError> {
        let corrupt = |reason: String| SignerError::CorruptKey { kid: r.kid.clone(), reason };
        let alg: SigningAlg = r.alg.parse().map_err(corrupt)?;
        let pem = self.master.decrypt(&r.private_key, &r.kid).map_err(|e| corrupt(e.to_string()))?;
        let jwk = Jwk::from_bytes(r.public_jwk.as_bytes()).map_err(|e| corrupt(e.to_string()))?;
        if jwk.key_id() != Some(r.kid.as_str()) {
            return Err(corrupt("public key's kid does not match its row".into()));
        }
        let je = |e: josekit::JoseError| corrupt(e.to_string());
        let (signer, verifier): (Box<dyn JwsSigner>, Box<dyn JwsVerifier>) = match alg {
            SigningAlg::RS256 => (
                Box::new(RS256.signer_from_pem(&*pem).map_err(je)?),
                Box::new(RS256.verifier_from_jwk(&jwk).map_err(je)?),
            ),
            SigningAlg::PS256 => (
                Box::new(PS256.signer_from_pem(&*pem).map_err(je)?),
                Box::new(PS256.verifier_from_jwk(&jwk).map_err(je)?),
            ),
            SigningAlg::ES256 => (
                Box::new(ES256.signer_from_pem(&*pem).map_err(je)?),
                Box::new(ES256.verifier_from_jwk(&jwk).map_err(je)?),
            ),
            SigningAlg::EdDSA => (
                Box::new(EdDSA.signer_from_pem(&*pem).map_err(je)?),
                Box::new(EdDSA.verifier_from_jwk(&jwk).map_err(je)?),
            ),
        };
        let public_jwk: serde_json::Value = serde_json::from_str(&r.public_jwk).map_err(|e| corrupt(e.to_string()))?;
        // Never publish private members, whatever the row holds.
        if let Some(obj) = public_jwk.as_object()
            && ["d", "p", "q", "dp", "dq", "qi", "k"].iter().any(|m| obj.contains_key(*m))
        {
            return Err(corrupt("public key row holds private key members".into()));
        }
        Ok(LoadedKey {
            kid: r.kid.clone(),
            alg,
            signer,
            verifier,
            public_jwk,
            activates_at: r.activates_at,
            retired_at: r.retired_at,
        })
    }

    /// The JWKS document, pre-rendered.
    pub fn jwks(&self) -> Arc<[u8]> {
        self.current().jwks.clone()
    }

    /// The key that signs for `alg` at `now`: the most recently activated one that is active.
    fn signing_key(&self, alg: SigningAlg, now: UnixTime) -> Option<Arc<LoadedKey>> {
        let set = self.current();
        set.keys
            .iter()
            .filter(|k| k.alg == alg && k.activates_at <= now && k.retired_at.is_none_or(|r| r > now))
            .max_by_key(|k| k.activates_at)
            .or_else(|| {
                set.keys.iter().filter(|k| k.alg == alg && k.activates_at <= now).max_by_key(|k| k.activates_at)
            })
            .cloned()
    }

    pub fn can_sign(&self, alg: SigningAlg, now: UnixTime) -> bool {
        self.signing_key(alg, now).is_some()
    }

    /// Sign `claims` as a compact JWS with header `typ` and `kid`.
    pub fn sign(
        &self,
        alg: SigningAlg,
        typ: &str,
        claims: &serde_json::Value,
        now: UnixTime,
    ) -> Result<SignedJwt, SignerError> {
        let key = self
            .signing_key(alg, now)
            .ok_or_else(|| SignerError::CorruptKey { kid: "-".into(), reason: format!("no active {alg} key") })?;
        let mut header = JwsHeader::new();
        header.set_token_type(typ);
        header.set_key_id(&key.kid);
        let payload = serde_json::to_vec(claims)
            .map_err(|e| SignerError::CorruptKey { kid: key.kid.clone(), reason: e.to_string() })?;
        let token = josekit::jws::serialize_compact(&payload, &header, key.signer.as_ref())
            .map_err(|e| SignerError::CorruptKey { kid: key.kid.clone(), reason: e.to_string() })?;
        Ok(SignedJwt { token, kid: key.kid.clone(), alg })
    }

    /// Verify a JWS we signed (any published or retired key we still hold) and return its claims.
    /// Claims (exp, aud, iss) are the caller's to check.
    pub fn verify(&self, token: &str) -> Result<serde_json::Map<String, serde_json::Value>, VerifyError> {
        self.verify_compact(token).map(|(_, claims)| claims)
    }

    /// Verify and also require the header's `typ` (case-insensitive, `application/` optional,
    /// RFC 8725 §3.11), so one kind of token cannot pass for another.
    pub fn verify_typed(
        &self,
        token: &str,
        typ: &str,
    ) -> Result<serde_json::Map<String, serde_json::Value>, VerifyError> {
        let (compact, claims) = self.verify_compact(token)?;
        if compact.typ_is(typ) { Ok(claims) } else { Err(VerifyError::WrongType) }
    }

    /// Verify an ID token we issued (for `id_token_hint`; expiry is the caller's to judge):
    /// `typ: JWT`, and the `iat` and `exp` every ID token has (OIDC Core §2), so neither our
    /// JWT access tokens (`at+jwt`), logout tokens (`logout+jwt`) nor signed UserInfo responses
    /// (`JWT` without `exp`) pass for one.
    pub fn verify_id_token(&self, token: &str) -> Result<JsonObject, VerifyError> {
        let claims = self.verify_typed(token, "JWT")?;
        let number = |k: &str| claims.get(k).is_some_and(serde_json::Value::is_i64);
        if number("iat") && number("exp") { Ok(claims) } else { Err(VerifyError::WrongType) }
    }

    fn verify_compact<'t>(&self, token: &'t str) -> Result<(jws::Compact<'t>, JsonObject), VerifyError> {
        let compact = jws::parse(token, jws::MAX_JWS_BYTES).map_err(|e| match e {
            jws::JwsError::Critical => VerifyError::CriticalHeader,
            _ => VerifyError::Malformed,
        })?;
        let kid = compact.kid().ok_or(VerifyError::UnknownKey)?;
        let set = self.current();
        let key = set.keys.iter().find(|k| k.kid == kid).ok_or(VerifyError::UnknownKey)?;
        // Algorithm confusion: the key decides the algorithm, the header must agree.
        if compact.alg() != key.alg.as_str() {
            return Err(VerifyError::AlgorithmMismatch);
        }
        let claims = compact.verify(key.verifier.as_ref()).map_err(|e| match e {
            jws::JwsError::Payload(_) => VerifyError::BadPayload,
            _ => VerifyError::BadSignature,
        })?;
        Ok((compact, claims))
    }

    pub fn summaries(&self, now: UnixTime) -> Vec<KeySummary> {
        self.current()
            .keys
            .iter()
            .map(|k| KeySummary {
                kid: k.kid.clone(),
                alg: k.alg.as_str().to_owned(),
                activates_at: k.activates_at,
                retired_at: k.retired_at,
                state: match k.retired_at {
                    _ if k.activates_at > now => "pending",
                    Some(r) if r + self.max_token_lifetime <= now => "expired",
                    Some(r) if r <= now => "retired",
                    _ => "active",
                },
            })
            .collect()
    }
}
