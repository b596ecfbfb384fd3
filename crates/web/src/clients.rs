//! A short-lived in-memory copy of client registrations for the back-channel hot paths (client
//! authentication, introspection, UserInfo): one database read per client per
//! `database.client_cache_ms` instead of one per request. Changes made through this instance
//! (dynamic registration management) are seen at once; changes made elsewhere (the CLI, another
//! instance) within `client_cache_ms`. Unknown clients are not cached.

use latchkey_core::model::Client;
use latchkey_storage::{Store, StoreResult};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

pub struct ClientCache {
    ttl: Duration,
    /// Entries kept at most (`database.client_cache_max_entries`); a full cache starts over (a
    /// flood of distinct ids costs reads only).
    max_entries: usize,
    map: RwLock<HashMap<String, (Instant, Arc<Client>)>>,
    /// Bumped by every [`ClientCache::forget`]: a read that started before a change must not
    /// put the old registration back.
    generation: AtomicU64,
}

impl ClientCache {
    pub fn new(ttl_ms: u64, max_entries: usize) -> Self {
        Self {
            ttl: Duration::from_millis(ttl_ms),
            max_entries: max_entries.max(1),
            map: RwLock::new(HashMap::new()),
            generation: AtomicU64::new(0),
        }
    }

    /// Entries held now and the most it holds (for the `in_process_entries` metric).
    pub fn size(&self) -> (usize, usize) {
        (self.map.read().unwrap_or_else(|p| p.into_inner()).len(), self.max_entries)
    }

    /// The client, from the cache while fresh, else from the store.
    pub async fn get(&self, store: &dyn Store, client_id: &str) -> StoreResult<Option<Arc<Client>>> {
        if self.ttl.is_zero() {
            return Ok(store.get_client(client_id).await?.map(Arc::new));
        }
        if let Some((at, c)) = self.map.read().unwrap_or_else(|p| p.into_inner()).get(client_id)
            && at.elapsed() < self.ttl
        {
            return Ok(Some(c.clone()));
        }
        // The entry's age counts from before the read, and a change forgotten meanwhile wins.
        let (read_at, generation) = (Instant::now(), self.generation.load(Ordering::Acquire));
        let Some(c) = store.get_client(client_id).await?.map(Arc::new) else {
            self.map.write().unwrap_or_else(|p| p.into_inner()).remove(client_id);
            return Ok(None);
        };
        let mut m = self.map.write().unwrap_or_else(|p| p.into_inner());
        if self.generation.load(Ordering::Acquire) == generation {
            if m.len() >= self.max_entries && !m.contains_key(client_id) {
                m.clear();
            }
            m.insert(client_id.to_owned(), (read_at, c.clone()));
        }
        Ok(Some(c))
    }

    /// Drop a client changed or deleted through this instance.
    pub fn forget(&self, client_id: &str) {
        let mut m = self.map.write().unwrap_or_else(|p| p.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        m.remove(client_id);
    }
}
