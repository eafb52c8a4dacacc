//! Whole responses of queries, the CQRS way: a query's answer is a function of the read
//! models' positions, the viewer and the request, so it is kept until a read model
//! moves (or a second passes: a few fields derive from the clock, such as an
//! invitation's EXPIRED). A hit costs a hash lookup instead of parsing and executing.
//!
//! The cache cannot be used to hold memory: entries are keyed by a SHA-256 of the
//! viewer and the request (never the request itself), the whole is bounded in bytes
//! with the least recently used evicted, and the server caches only signed-in viewers'
//! answers without errors.

use axum::body::Bytes;
use sha2::{Digest, Sha256};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What the cache may hold: the responses' bytes plus [`ENTRY_OVERHEAD_BYTES`] each.
pub const CACHE_BYTES_MAX: usize = 64 << 20;
/// What one entry costs beyond its response (key, generation, list links).
pub const ENTRY_OVERHEAD_BYTES: usize = 128;
/// Longest an entry is served, even if no read model moved.
pub const TTL: Duration = Duration::from_secs(1);
/// Largest response kept.
pub const RESPONSE_BYTES_MAX: usize = 256 * 1024;

/// What a response was computed from: every read model's position, and the count of
/// bot heartbeats (they move `Bot.lastSeenAt` without an event).
pub type Generation = [u64; 6];

struct Entry {
    generation: Generation,
    at: Instant,
    body: Bytes,
}

struct Inner {
    entries: lru::LruCache<[u8; 32], Entry>,
    bytes: usize,
}

pub struct ResponseCache {
    inner: Mutex<Inner>,
    bytes_max: usize,
}

impl Default for ResponseCache {
    fn default() -> Self {
        ResponseCache::with_budget(CACHE_BYTES_MAX)
    }
}

/// The cache key of `viewer`'s `request`.
pub fn key(viewer: &str, request: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update((viewer.len() as u64).to_le_bytes());
    h.update(viewer.as_bytes());
    h.update(request);
    h.finalize().into()
}

impl ResponseCache {
    pub fn with_budget(bytes_max: usize) -> ResponseCache {
        ResponseCache {
            inner: Mutex::new(Inner {
                entries: lru::LruCache::unbounded(),
                bytes: 0,
            }),
            bytes_max,
        }
    }

    /// The response kept under `key` at `generation`, if any.
    pub fn get(&self, key: &[u8; 32], generation: Generation) -> Option<Bytes> {
        let mut inner = self.inner.lock().ok()?;
        let e = inner.entries.get(key)?;
        (e.generation == generation && e.at.elapsed() < TTL).then(|| e.body.clone())
    }

    pub fn put(&self, key: [u8; 32], generation: Generation, body: Bytes) {
        if body.len() > RESPONSE_BYTES_MAX {
            return;
        }
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        let weight = body.len() + ENTRY_OVERHEAD_BYTES;
        let entry = Entry {
            generation,
            at: Instant::now(),
            body,
        };
        if let Some(old) = inner.entries.put(key, entry) {
            inner.bytes -= old.body.len() + ENTRY_OVERHEAD_BYTES;
        }
        inner.bytes += weight;
        while inner.bytes > self.bytes_max {
            match inner.entries.pop_lru() {
                Some((_, e)) => inner.bytes -= e.body.len() + ENTRY_OVERHEAD_BYTES,
                None => break,
            }
        }
    }

    /// The bytes held (responses plus overhead) and the entries.
    pub fn size(&self) -> (usize, usize) {
        self.inner
            .lock()
            .map_or((0, 0), |i| (i.bytes, i.entries.len()))
    }
}

/// Whether a request's text can only be a query (no mutation, no subscription).
pub fn is_query(text: &str) -> bool {
    !text.contains("mutation") && !text.contains("subscription")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_is_bounded_in_bytes_and_evicts_the_least_recently_used() {
        let cache = ResponseCache::with_budget(10 * (1000 + ENTRY_OVERHEAD_BYTES));
        let g = [0; 6];
        for i in 0..100u32 {
            cache.put(key("u", &i.to_le_bytes()), g, Bytes::from(vec![0; 1000]));
            // The first entry is used all along, so it stays.
            assert!(cache.get(&key("u", &0u32.to_le_bytes()), g).is_some());
        }
        let (bytes, entries) = cache.size();
        assert!(bytes <= 10 * (1000 + ENTRY_OVERHEAD_BYTES), "{bytes}");
        assert_eq!(entries, 10);
        assert!(cache.get(&key("u", &1u32.to_le_bytes()), g).is_none());
        assert!(cache.get(&key("u", &99u32.to_le_bytes()), g).is_some());
        // Another viewer's key is another entry; another generation misses.
        assert!(cache.get(&key("v", &99u32.to_le_bytes()), g).is_none());
        assert!(cache.get(&key("u", &99u32.to_le_bytes()), [1; 6]).is_none());
    }
}
