//! Live events for subscriptions: **one** follower of the log per server, fanned out
//! per organization — instead of one full read and decode of the log per subscriber.
//!
//! A subscriber of an organization gets a broadcast receiver of that organization's
//! events, from the log's head at the time it subscribed, in log order, none skipped:
//! if it falls more than [`ORG_BUFFER`] events behind, the events it missed are read
//! back from the store's org index before the live ones go on. An organization's
//! channel exists only while it has subscribers.

use futures::{Stream, StreamExt};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use store::{EventStore, RecordedEvent};
use tokio::sync::broadcast;
use uuid::Uuid;

/// Events buffered per organization for its slowest subscriber.
pub const ORG_BUFFER: usize = 1024;
/// Events read back per step when a subscriber catches up.
const CATCH_UP_READ: usize = 512;
/// Channels kept before those without subscribers are dropped.
const CHANNELS_PRUNE_AT: usize = 4096;

type Channels = HashMap<Uuid, broadcast::Sender<Arc<RecordedEvent>>>;

pub struct LiveFeed {
    store: Arc<dyn EventStore>,
    channels: Arc<Mutex<Channels>>,
    started: OnceLock<()>,
}

impl LiveFeed {
    pub fn new(store: Arc<dyn EventStore>) -> LiveFeed {
        LiveFeed {
            store,
            channels: Arc::default(),
            started: OnceLock::new(),
        }
    }

    /// Starts the follower (once, on the first subscription).
    fn start(&self, from: u64) {
        self.started.get_or_init(|| {
            let (store, channels) = (self.store.clone(), self.channels.clone());
            tokio::spawn(follow(store, channels, from));
        });
    }

    /// Subscribers of `org` now (for tests and metrics).
    pub fn subscribers(&self, org: Uuid) -> usize {
        self.channels
            .lock()
            .ok()
            .and_then(|c| c.get(&org).map(broadcast::Sender::receiver_count))
            .unwrap_or(0)
    }

    /// `org`'s events after the log's current head, in log order.
    pub async fn org_events(
        &self,
        org: Uuid,
    ) -> Result<impl Stream<Item = RecordedEvent> + Send + use<>, store::StoreError> {
        let head = self.store.head().await?;
        // Registered before the follower passes `head`: the follower starts at the
        // head of the first subscription, and every later one registers below its
        // own head, whose events the follower has not sent yet or sends from now on.
        let rx = {
            let mut c = self
                .channels
                .lock()
                .map_err(|_| store::StoreError::Index("live feed poisoned".into()))?;
            if c.len() >= CHANNELS_PRUNE_AT {
                c.retain(|_, tx| tx.receiver_count() > 0);
            }
            c.entry(org)
                .or_insert_with(|| broadcast::channel(ORG_BUFFER).0)
                .subscribe()
        };
        self.start(head + 1);
        let state = Tail {
            store: self.store.clone(),
            org,
            rx,
            last: head,
            backlog: std::collections::VecDeque::new(),
        };
        Ok(futures::stream::unfold(state, Tail::next).boxed())
    }
}

/// One subscriber's position in its organization's events.
struct Tail {
    store: Arc<dyn EventStore>,
    org: Uuid,
    rx: broadcast::Receiver<Arc<RecordedEvent>>,
    /// The last position given to the subscriber.
    last: u64,
    /// Events read back from the store after a lag, given out before live ones.
    backlog: std::collections::VecDeque<RecordedEvent>,
}

impl Tail {
    async fn next(mut self) -> Option<(RecordedEvent, Tail)> {
        loop {
            if let Some(e) = self.backlog.pop_front() {
                self.last = e.position;
                return Some((e, self));
            }
            match self.rx.recv().await {
                Ok(e) if e.position <= self.last => {}
                Ok(e) => {
                    self.last = e.position;
                    return Some((RecordedEvent::clone(&e), self));
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    // The receiver skips to the oldest event still buffered; read what
                    // lies between from the org index (the next live event shows where
                    // the gap ends, and anything read twice is dropped by `last`).
                    let until = match self.rx.recv().await {
                        Ok(e) => e,
                        Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => return None,
                    };
                    let mut from = self.last + 1;
                    while from < until.position {
                        let read = match self.store.read_org(self.org, from, CATCH_UP_READ).await {
                            Ok(r) => r,
                            Err(err) => {
                                tracing::warn!(%err, "a lagging subscriber could not catch up");
                                return None;
                            }
                        };
                        let Some(tail) = read.last().map(|e| e.position) else {
                            break;
                        };
                        self.backlog
                            .extend(read.into_iter().filter(|e| e.position < until.position));
                        from = tail + 1;
                    }
                    self.backlog.push_back(RecordedEvent::clone(&until));
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

/// The follower: every event of the log once, to the channel of its organization if
/// that has subscribers; channels without receivers are dropped as it passes them.
async fn follow(store: Arc<dyn EventStore>, channels: Arc<Mutex<Channels>>, from: u64) {
    let mut next = from;
    let mut events = store.subscribe_all(next);
    while let Some(e) = events.next().await {
        let e = match e {
            Ok(e) => e,
            Err(err) => {
                tracing::warn!(%err, "the live feed's log subscription failed; resubscribing");
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                // Resume where it stopped: subscribers see neither a gap nor a repeat.
                events = store.subscribe_all(next);
                continue;
            }
        };
        next = e.position + 1;
        let Some(org) = e.org() else { continue };
        let Ok(mut c) = channels.lock() else { return };
        if let Some(tx) = c.get(&org) {
            if tx.receiver_count() == 0 {
                c.remove(&org);
            } else {
                let _ = tx.send(Arc::new(e));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use store::{Actor, EmbeddedStore, ExpectedVersion, Metadata, ProposedEvent};

    async fn append(store: &EmbeddedStore, org: Uuid, n: usize) {
        for chunk in (0..n).collect::<Vec<_>>().chunks(100) {
            let events = chunk
                .iter()
                .map(|i| {
                    ProposedEvent::new(
                        "test.happened",
                        serde_json::json!({ "i": i }),
                        Metadata::new(Actor::system(), Some(org), time::OffsetDateTime::now_utc()),
                    )
                })
                .collect();
            store
                .append(&format!("t-{org}"), ExpectedVersion::Any, events)
                .await
                .expect("append");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_follower_feeds_every_subscriber_in_order_even_one_that_lags() {
        let dir = tempfile::tempdir().expect("dir");
        let store = Arc::new(EmbeddedStore::open(dir.path()).expect("store"));
        let feed = LiveFeed::new(store.clone());
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        append(&store, a, 10).await;
        let mut fast: Vec<_> = Vec::new();
        for _ in 0..20 {
            fast.push(Box::pin(feed.org_events(a).await.expect("subscribe")));
        }
        // This one reads nothing until the end: it falls more than ORG_BUFFER behind.
        let mut slow = Box::pin(feed.org_events(a).await.expect("subscribe"));
        let mut other = Box::pin(feed.org_events(b).await.expect("subscribe"));
        assert_eq!(feed.subscribers(a), 21);
        let n = ORG_BUFFER * 3;
        let writer = {
            let store = store.clone();
            tokio::spawn(async move {
                append(&store, a, n).await;
                append(&store, b, 1).await;
            })
        };
        for s in &mut fast {
            let got: Vec<u64> = s.as_mut().take(n).map(|e| e.position).collect().await;
            assert_eq!(got.len(), n);
            assert!(
                got.windows(2).all(|w| w[1] == w[0] + 1),
                "in order, none skipped"
            );
            assert_eq!(got[0], 11, "from the head at subscription");
        }
        writer.await.expect("writer");
        let got: Vec<u64> = slow.as_mut().take(n).map(|e| e.position).collect().await;
        assert_eq!(got.len(), n);
        assert!(
            got.windows(2).all(|w| w[1] == w[0] + 1),
            "the lagging one too"
        );
        let e = other.next().await.expect("b's event");
        assert_eq!(e.org(), Some(b));
    }
}
