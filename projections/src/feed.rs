//! One read of the log shared by the projections that catch up together.
//!
//! Reading and parsing an event costs more than most projections' own work (P3's
//! `read` baseline in benches/RESULTS.md). When the built-ins rebuild, or catch up from
//! far behind, their runners ask one [`Feed`] for the same batches: each batch is read
//! once, by whichever runner asks first, and handed to the others from memory.
//!
//! Batches are aligned (`[k·B + 1, (k+1)·B]`, B = [`REBUILD_EVENTS_MAX`]) so runners
//! at different checkpoints still meet on the same batches. A batch stays in memory
//! until every registered reader has moved past it; a reader more than [`WINDOW`]
//! batches ahead of the slowest waits for it, which bounds the memory to `WINDOW`
//! batches and keeps the group reading each batch once. A runner that follows the live
//! log, stops or fails no longer holds anyone back.

use crate::runner::REBUILD_EVENTS_MAX;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use store::{EventStore, RecordedEvent, StoreError};
use tokio::sync::{Notify, OnceCell};

/// Batches kept in memory at most (each up to [`REBUILD_EVENTS_MAX`] events).
pub const WINDOW: u64 = 3;

type Batch = Arc<[RecordedEvent]>;

/// The shared reader of a group of runners.
pub struct Feed {
    store: Arc<dyn EventStore>,
    state: Mutex<State>,
    moved: Notify,
}

#[derive(Default)]
struct State {
    batches: BTreeMap<u64, Arc<OnceCell<Batch>>>,
    /// The batch each registered reader needs next (`u64::MAX`: none).
    readers: HashMap<u64, u64>,
    next_reader: u64,
}

impl State {
    fn slowest(&self) -> u64 {
        self.readers.values().copied().min().unwrap_or(u64::MAX)
    }

    /// Drops the batches every reader has moved past.
    fn evict(&mut self) {
        let slowest = self.slowest();
        self.batches.retain(|k, _| *k >= slowest);
    }
}

impl Feed {
    pub fn new(store: Arc<dyn EventStore>) -> Arc<Feed> {
        Arc::new(Feed {
            store,
            state: Mutex::new(State::default()),
            moved: Notify::new(),
        })
    }

    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    /// Registers a reader (one per runner).
    pub fn reader(self: &Arc<Feed>) -> FeedReader {
        let mut s = self.lock();
        let id = s.next_reader;
        s.next_reader += 1;
        s.readers.insert(id, u64::MAX);
        FeedReader {
            feed: self.clone(),
            id,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set_next(&self, reader: u64, next: u64) {
        let mut s = self.lock();
        if let Some(n) = s.readers.get_mut(&reader) {
            *n = next;
        }
        s.evict();
        drop(s);
        self.moved.notify_waiters();
    }
}

/// One runner's handle on a [`Feed`]; dropping it releases what it held back.
pub struct FeedReader {
    feed: Arc<Feed>,
    id: u64,
}

impl FeedReader {
    /// The events from `from` on, up to the end of `from`'s batch: the batch may begin
    /// before `from` (the caller skips what it has). Empty at the head of the log.
    pub async fn read(&self, from: u64) -> Result<Batch, StoreError> {
        let batch = REBUILD_EVENTS_MAX as u64;
        let k = from.saturating_sub(1) / batch;
        self.feed.set_next(self.id, k);
        let end = (k + 1) * batch;
        if self.feed.store.head().await? < end {
            // The batch is not whole yet: read what there is, for this reader alone.
            let events = self
                .feed
                .store
                .read_all(from, (end + 1 - from) as usize)
                .await?;
            return Ok(events.into());
        }
        let cell = loop {
            let moved = self.feed.moved.notified();
            {
                let mut s = self.feed.lock();
                if k < s.slowest().saturating_add(WINDOW) {
                    break s.batches.entry(k).or_default().clone();
                }
            }
            moved.await;
        };
        let events = cell
            .get_or_try_init(|| async {
                // The store caps one read (`READ_EVENTS_MAX`): read until the batch is whole.
                let mut events = Vec::with_capacity(batch as usize);
                let mut next = k * batch + 1;
                while next <= end {
                    let more = self
                        .feed
                        .store
                        .read_all(next, (end + 1 - next) as usize)
                        .await?;
                    let Some(last) = more.last() else { break };
                    next = last.position + 1;
                    events.extend(more);
                }
                Ok::<Batch, StoreError>(events.into())
            })
            .await?;
        Ok(events.clone())
    }

    /// This reader needs no more batches (it follows the live log).
    pub fn done(&self) {
        self.feed.set_next(self.id, u64::MAX);
    }
}

impl Drop for FeedReader {
    fn drop(&mut self) {
        let mut s = self.feed.lock();
        s.readers.remove(&self.id);
        s.evict();
        drop(s);
        self.feed.moved.notify_waiters();
    }
}
