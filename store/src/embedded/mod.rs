//! The embedded backend: append-only segment files for the log, sled for everything
//! derived from it.
//!
//! # Layout
//! - [`segment`]: the segment files and their offset files, open-time recovery.
//! - [`record`]: the framing of one record.
//! - [`writer`]: the single writer thread and its group commit.
//! - [`index`]: the stream, org and event-id indexes (memtable + sled).
//!
//! # Files
//! ```text
//! DIR/log/00000000000000000001.seg   framed records, position order
//! DIR/log/00000000000000000001.idx   offsets of a sealed segment's records
//! DIR/index/                          sled: the derived indexes (and later projections)
//! ```

mod index;
pub(crate) mod record;
pub(crate) mod segment;
mod writer;

use crate::error::StoreError;
use crate::event::{
    AppendResult, Direction, EncodedEvent, ExpectedVersion, ProposedEvent, RecordedEvent,
    validate_stream,
};
use crate::limits::{
    APPEND_BYTES_MAX, APPEND_EVENTS_MAX, INDEX_FLUSH_EVENTS_DEFAULT,
    INDEX_FLUSH_INTERVAL_MS_DEFAULT, QUEUE_APPENDS_MAX, READ_EVENTS_MAX, SEGMENT_BYTES_DEFAULT,
    SEGMENT_BYTES_MAX, SLED_CACHE_BYTES_DEFAULT, SLED_LOCK_WAIT,
};
use crate::{EventStore, EventStream};
use index::{IdEntry, Index, IndexedEvent, fingerprint};
use segment::{Segment, poisoned_lock};
use std::collections::{HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

/// How often the indexer looks whether the memtable is due for a flush.
const INDEXER_TICK: Duration = Duration::from_millis(100);

/// Tuning of an embedded store; `Default` is what production uses.
#[derive(Clone, Debug)]
pub struct Options {
    /// Size at which the active segment is sealed (at most [`SEGMENT_BYTES_MAX`]).
    pub segment_bytes: u64,
    /// Events held in memory before the indexes are written to sled.
    pub index_flush_events: usize,
    /// Longest an indexed event waits in memory before it is written to sled.
    pub index_flush_interval: Duration,
    /// sled's page cache (shared by the log's indexes and every read model in the same
    /// database). sled's own default is 1 GiB; a server's memory budget is smaller.
    pub cache_bytes: u64,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            segment_bytes: SEGMENT_BYTES_DEFAULT,
            index_flush_events: INDEX_FLUSH_EVENTS_DEFAULT,
            index_flush_interval: Duration::from_millis(INDEX_FLUSH_INTERVAL_MS_DEFAULT),
            cache_bytes: SLED_CACHE_BYTES_DEFAULT,
        }
    }
}

/// The log as readers see it: segments and the published head.
pub(crate) struct Log {
    pub(crate) dir: PathBuf,
    pub(crate) segments: RwLock<Vec<Arc<Segment>>>,
    head: watch::Receiver<u64>,
}

impl Log {
    fn head(&self) -> u64 {
        *self.head.borrow()
    }

    fn segment_for(&self, position: u64) -> Result<Option<Arc<Segment>>, StoreError> {
        let segs = self.segments.read().map_err(|_| poisoned_lock())?;
        let i = segs.partition_point(|s| s.first <= position);
        Ok(i.checked_sub(1).map(|i| segs[i].clone()))
    }

    /// Calls `f` with every record from `from` through `last`, in order, until it says stop.
    fn for_each_frame(
        &self,
        from: u64,
        last: u64,
        mut f: impl FnMut(&record::Frame<'_>) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        let mut next = from.max(1);
        let mut go = true;
        while go && next <= last {
            let Some(seg) = self.segment_for(next)? else {
                return Ok(());
            };
            let seg_end = seg.first + seg.count();
            if next >= seg_end {
                return Ok(());
            }
            seg.for_each_frame(next, last, |frame| {
                next = frame.position + 1;
                go = f(frame)?;
                Ok(go)
            })?;
            if next < seg_end.min(last + 1) && go {
                return Err(segment::corrupt(next, "segment ends early"));
            }
        }
        Ok(())
    }

    /// Up to `max` events from `from` through `last`.
    fn read_range(
        &self,
        from: u64,
        last: u64,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let max = max.min(READ_EVENTS_MAX);
        let mut out = Vec::with_capacity(max.min(1024));
        if max == 0 || from > last {
            return Ok(out);
        }
        // A few events (an audit page's candidates are read one at a time): each is read
        // on its own through the offset index, not with a 256 KiB chunk read.
        if max <= READ_ONE_AT_A_TIME_MAX {
            let from = from.max(1);
            let to = last.min(from.saturating_add(max as u64 - 1));
            let positions: Vec<u64> = (from..=to).collect();
            return self.read_positions(&positions);
        }
        self.for_each_frame(from, last, |frame| {
            out.push(frame.event()?);
            Ok(out.len() < max)
        })?;
        Ok(out)
    }

    fn read_positions(&self, positions: &[u64]) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut out = Vec::with_capacity(positions.len());
        let mut seg: Option<Arc<Segment>> = None;
        for &p in positions {
            if seg
                .as_ref()
                .is_none_or(|s| p < s.first || p >= s.first + s.count())
            {
                seg = self.segment_for(p)?;
            }
            let event = match &seg {
                Some(s) => s.read_one(p)?,
                None => None,
            };
            out.push(
                event.ok_or_else(|| segment::corrupt(p, "indexed position is not in the log"))?,
            );
        }
        Ok(out)
    }
}

/// The embedded event store. Cheap to share behind an `Arc`; dropping the last handle
/// stops the writer, flushes the indexes and closes the files.
pub struct EmbeddedStore {
    log: Arc<Log>,
    index: Arc<Index>,
    db: sled::Db,
    tx: Option<mpsc::Sender<writer::AppendCmd>>,
    writer: Option<JoinHandle<()>>,
    indexer: Option<JoinHandle<()>>,
    stop_indexer: Arc<AtomicBool>,
}

impl EmbeddedStore {
    /// Opens (or creates) the store in `dir`, recovering from whatever a crash left:
    /// a torn tail is cut off and the indexes catch up from the log.
    pub fn open(dir: impl AsRef<Path>) -> Result<EmbeddedStore, StoreError> {
        EmbeddedStore::open_with(dir, Options::default())
    }

    pub fn open_with(dir: impl AsRef<Path>, options: Options) -> Result<EmbeddedStore, StoreError> {
        if options.segment_bytes == 0 || options.segment_bytes > SEGMENT_BYTES_MAX {
            return Err(StoreError::Invalid(format!(
                "segment size must be 1 to {SEGMENT_BYTES_MAX} bytes"
            )));
        }
        let dir = dir.as_ref();
        let log_dir = dir.join("log");
        std::fs::create_dir_all(&log_dir)?;
        // sled's lock on its directory is the store's lock: taken before the log is
        // touched, so a second opener never cuts a tail that a live writer is writing.
        let started = std::time::Instant::now();
        let db = open_sled(&dir.join("index"), options.cache_bytes)?;
        let sled_ms = started.elapsed().as_millis();
        let (segments, active_len) = open_segments(&log_dir)?;
        let segments_ms = started.elapsed().as_millis() - sled_ms;
        let active = segments
            .last()
            .cloned()
            .ok_or_else(|| StoreError::Index("no segment".into()))?;
        let head = active.first + active.count() - 1;
        let (head_tx, head_rx) = watch::channel(head);
        let log = Arc::new(Log {
            dir: log_dir,
            segments: RwLock::new(segments),
            head: head_rx,
        });
        let index = Arc::new(Index::open(db.open_tree("log")?));
        reindex(&log, &index, head)?;
        // P8's profile: sled's recovery (a replay of its own log since its last
        // snapshot) is nearly all of an open; the log's segments and reindex are not.
        tracing::info!(
            sled_ms,
            segments_ms,
            total_ms = started.elapsed().as_millis(),
            "store opened"
        );

        let stop_indexer = Arc::new(AtomicBool::new(false));
        let indexer = {
            let index = index.clone();
            let stop = stop_indexer.clone();
            let (events, interval) = (options.index_flush_events, options.index_flush_interval);
            std::thread::Builder::new()
                .name("orgline-indexer".into())
                .spawn(move || run_indexer(&index, &stop, events, interval))?
        };
        let (tx, rx) = mpsc::channel(QUEUE_APPENDS_MAX);
        let w = writer::Writer {
            log: log.clone(),
            index: index.clone(),
            head_tx,
            rx,
            active,
            active_len,
            next_position: head + 1,
            segment_bytes: options.segment_bytes,
            flush_events: options.index_flush_events,
            indexer: indexer.thread().clone(),
        };
        let writer = std::thread::Builder::new()
            .name("orgline-writer".into())
            .spawn(move || w.run())?;
        Ok(EmbeddedStore {
            log,
            index,
            db,
            tx: Some(tx),
            writer: Some(writer),
            indexer: Some(indexer),
            stop_indexer,
        })
    }

    /// Makes the next open of the closed store in `dir` fast: sled 0.34 writes the
    /// snapshot of its page table only when it opens, so an open replays everything
    /// sled logged since the previous open (21 s after a 10M-event seed). Opening and
    /// closing it once at a clean shutdown moves that replay off the next start. Call
    /// it after every handle on the store is dropped; a crash skips it, and the next
    /// open is slow but correct. Returns how long it took.
    pub fn checkpoint(dir: impl AsRef<Path>) -> Result<std::time::Duration, StoreError> {
        let started = std::time::Instant::now();
        let db = open_sled(&dir.as_ref().join("index"), 1 << 20)?;
        db.flush()?;
        drop(db);
        Ok(started.elapsed())
    }

    /// The sled database, for the other derived data that lives beside the indexes
    /// (projections, credentials, sessions), each in its own trees.
    pub fn db(&self) -> &sled::Db {
        &self.db
    }

    /// The last position written to the sled indexes (the rest is in memory).
    pub fn indexed_up_to(&self) -> Result<u64, StoreError> {
        self.index.indexed_up_to()
    }

    fn encode(
        stream: &str,
        events: &[ProposedEvent],
    ) -> Result<(Vec<EncodedEvent>, usize), StoreError> {
        validate_stream(stream)?;
        if events.is_empty() {
            return Err(StoreError::Invalid(
                "an append carries at least one event".into(),
            ));
        }
        if events.len() > APPEND_EVENTS_MAX {
            return Err(StoreError::TooLarge {
                what: "events in one append",
                size: events.len(),
                limit: APPEND_EVENTS_MAX,
            });
        }
        if events.len() > 1 {
            let mut ids = HashSet::with_capacity(events.len());
            if let Some(e) = events.iter().find(|e| !ids.insert(e.id)) {
                return Err(StoreError::Invalid(format!(
                    "event id {} appears twice in one append",
                    e.id
                )));
            }
        }
        let encoded = events
            .iter()
            .map(|e| EncodedEvent::encode(stream, e))
            .collect::<Result<Vec<_>, _>>()?;
        let bytes: usize = encoded.iter().map(|e| e.canonical.len()).sum();
        if bytes > APPEND_BYTES_MAX {
            return Err(StoreError::TooLarge {
                what: "bytes in one append",
                size: bytes,
                limit: APPEND_BYTES_MAX,
            });
        }
        Ok((encoded, bytes))
    }
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
        self.stop_indexer.store(true, Ordering::SeqCst);
        if let Some(i) = self.indexer.take() {
            i.thread().unpark();
            let _ = i.join();
        }
        if let Err(e) = self.db.flush() {
            tracing::warn!(error = %e, "flushing the index at close failed; it is rebuilt at open");
        }
    }
}

/// Opens the sled database, waiting a moment for the file lock when it is busy.
///
/// sled 0.34 does not join its flusher thread when the last `Db` handle drops; that
/// thread releases the directory's `flock` a few milliseconds later. A store closed
/// and reopened at once in the same process (a restart, a test) would otherwise fail
/// with `WouldBlock`. Another process holding the store open still fails, after
/// [`SLED_LOCK_WAIT`].
fn open_sled(path: &Path, cache_bytes: u64) -> Result<sled::Db, StoreError> {
    let config = sled::Config::new().path(path).cache_capacity(cache_bytes);
    let started = std::time::Instant::now();
    let mut pause = std::time::Duration::from_millis(5);
    loop {
        match config.open() {
            Err(sled::Error::Io(e)) if is_lock_busy(&e) && started.elapsed() < SLED_LOCK_WAIT => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_millis(100));
            }
            other => return Ok(other?),
        }
    }
}

/// Whether sled failed to open because another handle holds its directory's lock.
/// sled 0.34 reports a busy `flock` as `ErrorKind::Other` with the message "could not
/// acquire lock on …" (`config.rs`, `try_lock`), not as `WouldBlock`; both are taken.
fn is_lock_busy(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::WouldBlock || e.to_string().contains("could not acquire lock")
}

fn open_segments(dir: &Path) -> Result<(Vec<Arc<Segment>>, u64), StoreError> {
    let firsts = segment::list(dir)?;
    let Some((&last, sealed)) = firsts.split_last() else {
        return Ok((vec![segment::create(dir, 1)?], 0));
    };
    let mut segments = Vec::with_capacity(firsts.len());
    for (i, &first) in sealed.iter().enumerate() {
        let next = firsts[i + 1];
        if next <= first {
            return Err(segment::corrupt(first, "segments overlap"));
        }
        segments.push(segment::open_sealed(dir, first, next - first)?);
    }
    let (active, len) = segment::open_active(dir, last)?;
    segments.push(active);
    Ok((segments, len))
}

/// Brings the indexes up to the log's head after open.
fn reindex(log: &Log, index: &Index, head: u64) -> Result<(), StoreError> {
    let mut from = index.indexed_up_to()?;
    if from > head {
        tracing::warn!(
            indexed = from,
            head,
            "the index is ahead of the log; rebuilding it"
        );
        index.clear()?;
        from = 0;
    }
    if from == head {
        return Ok(());
    }
    tracing::info!(from = from + 1, to = head, "re-indexing the log");
    #[derive(serde::Deserialize)]
    struct Meta {
        org: Option<Uuid>,
    }
    #[derive(serde::Deserialize)]
    struct Keys {
        stream: String,
        id: Uuid,
        meta: Meta,
    }
    let mut events = Vec::new();
    let mut ids: Vec<(Uuid, IdEntry)> = Vec::new();
    // The append being read: its first id, stream and every id.
    let mut append: Option<(Uuid, String, Vec<Uuid>, u64)> = None;
    let finish = |append: &mut Option<(Uuid, String, Vec<Uuid>, u64)>,
                  ids: &mut Vec<(Uuid, IdEntry)>,
                  last: &IndexedEvent| {
        if let Some((first_id, stream, all, first_position)) = append.take() {
            let entry = IdEntry {
                first_position,
                position: last.position,
                version: last.version,
                fingerprint: fingerprint(&stream, all.iter()),
            };
            ids.push((first_id, entry));
        }
    };
    log.for_each_frame(from + 1, head, |frame| {
        let keys: Keys = serde_json::from_slice(frame.canonical)
            .map_err(|e| segment::corrupt(frame.position, &e.to_string()))?;
        if frame.starts_append() {
            if let Some(last) = events.last() {
                finish(&mut append, &mut ids, last);
            }
            append = Some((keys.id, keys.stream.clone(), Vec::new(), frame.position));
        }
        if let Some((_, _, all, _)) = &mut append {
            all.push(keys.id);
        }
        events.push(IndexedEvent {
            stream: keys.stream,
            version: frame.version,
            position: frame.position,
            hash: frame.hash,
            org: keys.meta.org,
        });
        Ok(true)
    })?;
    if let Some(last) = events.last() {
        finish(&mut append, &mut ids, last);
    }
    index.add(events, ids)?;
    if let Some(m) = index.freeze(1)? {
        index.flush(&m)?;
    }
    Ok(())
}

fn run_indexer(index: &Index, stop: &AtomicBool, flush_events: usize, interval: Duration) {
    let mut last_flush = Instant::now();
    let mut pending = None;
    loop {
        std::thread::park_timeout(INDEXER_TICK);
        let stopping = stop.load(Ordering::SeqCst);
        if pending.is_none() {
            let due = stopping || last_flush.elapsed() >= interval;
            pending = match index.freeze(if due { 1 } else { flush_events }) {
                Ok(m) => m,
                Err(e) => {
                    tracing::error!(error = %e, "index freeze failed");
                    None
                }
            };
        }
        match pending.take() {
            Some(m) => match index.flush(&m) {
                Ok(()) => last_flush = Instant::now(),
                Err(e) => {
                    tracing::error!(error = %e, "index flush failed; retrying");
                    pending = Some(m);
                    if stopping {
                        return;
                    }
                }
            },
            None if stopping => return,
            None => {}
        }
    }
}

#[async_trait::async_trait]
impl EventStore for EmbeddedStore {
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<ProposedEvent>,
    ) -> Result<AppendResult, StoreError> {
        let (events, bytes) = EmbeddedStore::encode(stream, &events)?;
        let (reply, answer) = oneshot::channel();
        let tx = self.tx.as_ref().ok_or(StoreError::Closed)?;
        tx.send(writer::AppendCmd {
            stream: stream.to_owned(),
            expected,
            events,
            bytes,
            reply,
        })
        .await
        .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    async fn read_stream(
        &self,
        stream: &str,
        from: u64,
        direction: Direction,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        validate_stream(stream)?;
        let max = max.min(READ_EVENTS_MAX) as u64;
        let n = self.index.head(stream)?.next_version;
        if n == 0 || max == 0 {
            return Ok(Vec::new());
        }
        let (lo, hi) = match direction {
            Direction::Forwards => (from, from.saturating_add(max).min(n)),
            Direction::Backwards => {
                let top = from.min(n - 1);
                ((top + 1).saturating_sub(max), top + 1)
            }
        };
        if lo >= hi {
            return Ok(Vec::new());
        }
        let read = || {
            let positions = self.index.stream_positions(stream, lo, hi)?;
            self.log.read_positions(&positions)
        };
        let mut events = if hi - lo <= crate::blocking::EVENTS_INLINE_MAX as u64 {
            read()?
        } else {
            crate::blocking::run(read)?
        };
        if direction == Direction::Backwards {
            events.reverse();
        }
        Ok(events)
    }

    async fn read_all(&self, from: u64, max: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        if max <= crate::blocking::EVENTS_INLINE_MAX {
            return self.log.read_range(from, self.log.head(), max);
        }
        crate::blocking::run(|| self.log.read_range(from, self.log.head(), max))
    }

    async fn read_org(
        &self,
        org: Uuid,
        from: u64,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        crate::blocking::run(|| {
            let positions =
                self.index
                    .org_positions(&org, from.max(1), max.min(READ_EVENTS_MAX))?;
            self.log.read_positions(&positions)
        })
    }

    fn subscribe_all(&self, from: u64) -> EventStream {
        subscribe(self.log.clone(), from)
    }

    async fn head(&self) -> Result<u64, StoreError> {
        Ok(self.log.head())
    }
}

/// Reads of at most this many events go record by record (see `Log::read_range`).
const READ_ONE_AT_A_TIME_MAX: usize = 8;

/// Events read per catch-up step of a subscription.
const SUBSCRIPTION_READ_EVENTS: usize = 512;

/// Catch-up, then live: the subscription reads the log up to the published head, then
/// waits for the head to move. Reading and waiting use the same head, so the switch
/// can neither skip nor repeat an event.
fn subscribe(log: Arc<Log>, from: u64) -> EventStream {
    struct Sub {
        log: Arc<Log>,
        head: watch::Receiver<u64>,
        next: u64,
        buf: VecDeque<RecordedEvent>,
        done: bool,
    }
    let head = log.head.clone();
    let sub = Sub {
        log,
        head,
        next: from.max(1),
        buf: VecDeque::new(),
        done: false,
    };
    Box::pin(futures::stream::unfold(sub, |mut s| async move {
        loop {
            if s.done {
                return None;
            }
            if let Some(e) = s.buf.pop_front() {
                s.next = e.position + 1;
                return Some((Ok(e), s));
            }
            let head = *s.head.borrow_and_update();
            if s.next <= head {
                let read = || s.log.read_range(s.next, head, SUBSCRIPTION_READ_EVENTS);
                let read = if head - s.next >= crate::blocking::EVENTS_INLINE_MAX as u64 {
                    crate::blocking::run(read)
                } else {
                    read()
                };
                match read {
                    Ok(events) if !events.is_empty() => {
                        s.buf.extend(events);
                        continue;
                    }
                    Ok(_) => {
                        s.done = true;
                        let e = segment::corrupt(s.next, "published position cannot be read");
                        return Some((Err(e), s));
                    }
                    Err(e) => {
                        s.done = true;
                        return Some((Err(e), s));
                    }
                }
            }
            if s.head.changed().await.is_err() && s.next > *s.head.borrow() {
                // The store closed after everything it published was delivered.
                return None;
            }
        }
    }))
}
