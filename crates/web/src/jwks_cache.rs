//! Fetched `jwks_uri` documents (private_key_jwt clients' keys), shared by every request
//! through `AppState`; client authentication decides when one is fresh enough.

use josekit::jwk::JwkSet;
use latchkey_core::UnixTime;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// Most documents kept; past it the cache starts again empty.
const MAX_ENTRIES: usize = 1000;

/// Fetched jwks_uri documents, by URL, with the time fetched.
#[derive(Default)]
pub struct JwksCache(RwLock<HashMap<String, (UnixTime, Arc<JwkSet>)>>);

impl JwksCache {
    /// The document fetched from `uri` less than `max_age` seconds before `now`.
    pub fn fresh(&self, uri: &str, now: UnixTime, max_age: i64) -> Option<Arc<JwkSet>> {
        let cache = self.0.read().ok()?;
        let (at, set) = cache.get(uri)?;
        (now - at < max_age).then(|| set.clone())
    }

    /// Keep `set` as the document fetched from `uri` at `now`.
    pub fn insert(&self, uri: &str, now: UnixTime, set: Arc<JwkSet>) {
        if let Ok(mut cache) = self.0.write() {
            if cache.len() > MAX_ENTRIES {
                cache.clear();
            }
            cache.insert(uri.to_owned(), (now, set));
        }
    }
}
