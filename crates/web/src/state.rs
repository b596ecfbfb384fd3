//! The state every handler receives.

use latchkey_core::{Clock, Settings, UnixTime};
use latchkey_signer::{KeyRing, MasterKey};
use latchkey_storage::Store;
use std::ops::Deref;
use std::sync::Arc;

use crate::passwords::Passwords;

pub struct AppStateInner {
    pub settings: Arc<Settings>,
    pub store: Arc<dyn Store>,
    pub keys: Arc<KeyRing>,
    pub clock: Arc<dyn Clock>,
    pub passwords: Passwords,
    /// Decrypts client_secret_jwt secrets.
    pub master: MasterKey,
    /// Fetched `jwks_uri` documents.
    pub jwks_cache: crate::jwks_cache::JwksCache,
    /// Secret salt of pairwise subject identifiers (stored encrypted in the database).
    pub pairwise_salt: zeroize::Zeroizing<Vec<u8>>,
    /// Abuse-limit counters.
    pub limiter: crate::limits::Limiter,
    /// Client registrations, briefly cached for the back-channel hot paths.
    pub clients: crate::clients::ClientCache,
}

/// Cheap to clone; a local newtype so extractors can be implemented for it.
#[derive(Clone)]
pub struct AppState(pub Arc<AppStateInner>);

impl Deref for AppState {
    type Target = AppStateInner;
    fn deref(&self) -> &AppStateInner {
        &self.0
    }
}

impl AppStateInner {
    pub fn now(&self) -> UnixTime {
        self.clock.now()
    }

    /// A client registration through the short-lived cache (see [`crate::clients`]).
    pub async fn client(
        &self,
        client_id: &str,
    ) -> latchkey_storage::StoreResult<Option<Arc<latchkey_core::model::Client>>> {
        self.clients.get(self.store.as_ref(), client_id).await
    }
}
