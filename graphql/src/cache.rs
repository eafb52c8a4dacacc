//! Whole responses of queries, the CQRS way: a query's answer is a function of the read
//! models' positions, the viewer and the request, so it is kept until a read model
//! moves (or a second passes: a few fields derive from the clock, such as an
//! invitation's EXPIRED). A hit costs a hash lookup instead of parsing and executing.

use axum::body::Bytes;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Entries kept at most; the cache is emptied when full.
pub const ENTRIES_MAX: usize = 10_000;
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

#[derive(Default)]
pub struct ResponseCache {
    entries: Mutex<HashMap<(String, Bytes), Entry>>,
}

impl ResponseCache {
    /// The response kept for `viewer`'s `request` at `generation`, if any.
    pub fn get(&self, viewer: &str, request: &Bytes, generation: Generation) -> Option<Bytes> {
        let entries = self.entries.lock().ok()?;
        let e = entries.get(&(viewer.to_owned(), request.clone()))?;
        (e.generation == generation && e.at.elapsed() < TTL).then(|| e.body.clone())
    }

    pub fn put(&self, viewer: String, request: Bytes, generation: Generation, body: Bytes) {
        if body.len() > RESPONSE_BYTES_MAX {
            return;
        }
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= ENTRIES_MAX {
                entries.clear();
            }
            entries.insert(
                (viewer, request),
                Entry {
                    generation,
                    at: Instant::now(),
                    body,
                },
            );
        }
    }
}

/// Whether a request's text can only be a query (no mutation, no subscription).
pub fn is_query(text: &str) -> bool {
    !text.contains("mutation") && !text.contains("subscription")
}

/// Parsed documents by query text: clients send the same few queries over and over,
/// and parsing is a fifth of a small query's cost. Depth, directive and validation
/// checks still run on every request.
#[derive(Default)]
pub struct ParsedQueries {
    docs: Mutex<HashMap<String, async_graphql::parser::types::ExecutableDocument>>,
}

/// Documents kept at most, and the longest query text kept.
pub const PARSED_MAX: usize = 1_000;
pub const PARSED_TEXT_BYTES_MAX: usize = 16 * 1024;

impl ParsedQueries {
    /// Gives `request` its parsed document from the cache, or parses and keeps it.
    /// A query that does not parse is left for the engine to report.
    pub fn prepare(&self, request: &mut async_graphql::Request) {
        if request.query.len() > PARSED_TEXT_BYTES_MAX {
            return;
        }
        if let Ok(docs) = self.docs.lock()
            && let Some(doc) = docs.get(&request.query)
        {
            request.set_parsed_query(doc.clone());
            return;
        }
        if let Ok(doc) = async_graphql::parser::parse_query(&request.query) {
            if let Ok(mut docs) = self.docs.lock() {
                if docs.len() >= PARSED_MAX {
                    docs.clear();
                }
                docs.insert(request.query.clone(), doc.clone());
            }
            request.set_parsed_query(doc);
        }
    }
}
