//! Fetched `jwks_uri` documents (private_key_jwt clients' keys), shared by every request
//! through `AppState`; client authentication decides when one is fresh enough.

use josekit::jwk::JwkSet;
use latchkey_core::UnixTime;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// Fetched jwks_uri documents, by URL, with the time fetched; at most `max_entries`
/// (`client_auth.jwks_cache_max_entries`), past which the cache starts again empty.
pub struct JwksCache {
    map: RwLock<HashMap<String, (UnixTime, Arc<JwkSet>)>>,
    max_entries: usize,
}

impl JwksCache {
    pub fn new(max_entries: usize) -> Self {
        Self { map: RwLock::new(HashMap::new()), max_entries: max_entries.max(1) }
    }

    /// Documents held now and the most it holds (for the `in_process_entries` metric).
    pub fn size(&self) -> (usize, usize) {
        (self.map.read().map(|m| m.len()).unwrap_or(0), self.max_entries)
    }

    /// The document fetched from `uri` less than `max_age` seconds before `now`.
    pub fn fresh(&self, uri: &str, now: UnixTime, max_age: i64) -> Option<Arc<JwkSet>> {
        let cache = self.map.read().ok()?;
        let (at, set) = cache.get(uri)?;
        (now - at < max_age).then(|| set.clone())
    }

    /// Keep `set` as the document fetched from `uri` at `now`.
    pub fn insert(&self, uri: &str, now: UnixTime, set: Arc<JwkSet>) {
        if let Ok(mut cache) = self.map.write() {
            if cache.len() >= self.max_entries && !cache.contains_key(uri) {
                cache.clear();
            }
            cache.insert(uri.to_owned(), (now, set));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_holds_at_most_its_setting() {
        let cache = JwksCache::new(2);
        for i in 0..5 {
            cache.insert(&format!("https://rp{i}.example/jwks"), 100, Arc::new(JwkSet::new()));
            assert!(cache.size().0 <= 2, "{:?}", cache.size());
        }
        assert_eq!(cache.size().1, 2);
        // The newest is kept; refreshing an entry already held does not start over.
        assert!(cache.fresh("https://rp4.example/jwks", 100, 300).is_some());
        cache.insert("https://rp4.example/jwks", 101, Arc::new(JwkSet::new()));
        assert!(cache.fresh("https://rp4.example/jwks", 101, 300).is_some());
    }
}
