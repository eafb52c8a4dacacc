//! The one writer: group commit.
//!
//! It takes every append waiting in its queue (up to the batch limits), checks each
//! one's expected version against the stream heads (including heads changed earlier in
//! the same batch), assigns gapless positions, hashes and frames the events into one
//! buffer, writes it, calls `fdatasync` once, and only then publishes the batch to
//! readers and acknowledges every append in it.

use super::Log;
use super::index::{Head, IdEntry, Index, IndexedEvent, fingerprint};
use super::record::{self, FLAG_APPEND_START, FRAME_HEADER_BYTES};
use super::segment::{self, Offsets, Segment, poisoned_lock};
use crate::error::StoreError;
use crate::event::{AppendResult, EncodedEvent, ExpectedVersion, chain_hash};
use crate::limits::{
    BATCH_APPENDS_MAX, BATCH_BYTES_MAX, INDEX_BACKLOG_EVENTS_MAX, INDEX_STALL_MS_MAX,
};
use std::collections::HashMap;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

pub(crate) struct AppendCmd {
    pub(crate) stream: String,
    pub(crate) expected: ExpectedVersion,
    pub(crate) events: Vec<EncodedEvent>,
    pub(crate) bytes: usize,
    pub(crate) reply: oneshot::Sender<Result<AppendResult, StoreError>>,
}

pub(crate) struct Writer {
    pub(crate) log: Arc<Log>,
    pub(crate) index: Arc<Index>,
    pub(crate) head_tx: watch::Sender<u64>,
    pub(crate) rx: mpsc::Receiver<AppendCmd>,
    pub(crate) active: Arc<Segment>,
    pub(crate) active_len: u64,
    pub(crate) next_position: u64,
    pub(crate) segment_bytes: u64,
    pub(crate) flush_events: usize,
    pub(crate) indexer: std::thread::Thread,
}

/// One group commit being put together.
#[derive(Default)]
struct Batch {
    buf: Vec<u8>,
    /// Frame offsets relative to the start of `buf`.
    offsets: Vec<u32>,
    last_body: Option<usize>,
    heads: HashMap<String, Head>,
    ids: HashMap<Uuid, IdEntry>,
    events: Vec<IndexedEvent>,
}

impl Writer {
    pub(crate) fn run(mut self) {
        let mut poisoned = false;
        while let Some(first) = self.rx.blocking_recv() {
            let mut bytes = first.bytes;
            let mut cmds = vec![first];
            while cmds.len() < BATCH_APPENDS_MAX && bytes < BATCH_BYTES_MAX {
                match self.rx.try_recv() {
                    Ok(cmd) => {
                        bytes += cmd.bytes;
                        cmds.push(cmd);
                    }
                    Err(_) => break,
                }
            }
            if poisoned {
                for cmd in cmds {
                    let _ = cmd.reply.send(Err(StoreError::Poisoned));
                }
                continue;
            }
            if let Err(e) = self.commit(cmds) {
                tracing::error!(error = %e, "the log failed to write; appends are refused until reopen");
                poisoned = true;
            }
        }
    }

    /// Writes one group commit. An `Err` means the log's state on disk is unknown.
    fn commit(&mut self, cmds: Vec<AppendCmd>) -> Result<(), StoreError> {
        if let Err(e) = self.wait_for_indexer() {
            for cmd in cmds {
                let _ = cmd.reply.send(Err(e.duplicate()));
            }
            return Ok(());
        }
        let mut batch = Batch::default();
        let mut replies = Vec::with_capacity(cmds.len());
        for cmd in cmds {
            let result = self.stage(&mut batch, &cmd);
            replies.push((cmd.reply, result));
        }
        let written = match batch.last_body {
            Some(last) => {
                record::mark_batch_end(&mut batch.buf, last);
                self.write(&batch)
            }
            None => Ok(()),
        };
        if let Err(e) = written {
            for (reply, result) in replies {
                let _ = reply.send(result.and(Err(e.duplicate())));
            }
            return Err(e);
        }
        if !batch.offsets.is_empty() {
            self.publish(batch)?;
        }
        for (reply, result) in replies {
            let _ = reply.send(result);
        }
        Ok(())
    }

    /// Back-pressure: waits while the indexer is too far behind.
    fn wait_for_indexer(&self) -> Result<(), StoreError> {
        let limit = INDEX_BACKLOG_EVENTS_MAX.max(4 * self.flush_events);
        let started = Instant::now();
        while self.index.backlog()? > limit {
            if started.elapsed() > Duration::from_millis(INDEX_STALL_MS_MAX) {
                return Err(StoreError::Index(
                    "the indexer is stalled; appends are refused".into(),
                ));
            }
            self.indexer.unpark();
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }

    /// Checks one append and frames its events into the batch.
    fn stage(&mut self, batch: &mut Batch, cmd: &AppendCmd) -> Result<AppendResult, StoreError> {
        let fp = fingerprint(&cmd.stream, cmd.events.iter().map(|e| &e.id));
        let first_id = cmd.events[0].id;
        let seen = match batch.ids.get(&first_id) {
            Some(e) => Some(*e),
            None => self.index.id_entry(&first_id)?,
        };
        if let Some(entry) = seen {
            return if entry.fingerprint == fp {
                Ok(AppendResult {
                    first_position: entry.first_position,
                    position: entry.position,
                    version: entry.version,
                })
            } else {
                Err(StoreError::IdReused { id: first_id })
            };
        }
        let mut head = match batch.heads.get(&cmd.stream) {
            Some(h) => *h,
            None => self.index.head(&cmd.stream)?,
        };
        if !cmd.expected.admits(head.last_version()) {
            return Err(StoreError::Conflict {
                stream: cmd.stream.clone(),
                expected: cmd.expected,
                actual: head.last_version(),
            });
        }
        let first_position = self.next_position;
        for (i, e) in cmd.events.iter().enumerate() {
            let hash = chain_hash(&head.last_hash, &e.canonical);
            let flags = if i == 0 { FLAG_APPEND_START } else { 0 };
            let body = record::encode(
                &mut batch.buf,
                flags,
                self.next_position,
                head.next_version,
                &hash,
                &e.canonical,
            );
            batch.offsets.push((body - FRAME_HEADER_BYTES) as u32);
            batch.last_body = Some(body);
            batch.events.push(IndexedEvent {
                stream: cmd.stream.clone(),
                version: head.next_version,
                position: self.next_position,
                hash,
                org: e.org,
            });
            head = Head {
                next_version: head.next_version + 1,
                last_hash: hash,
            };
            self.next_position += 1;
        }
        batch.heads.insert(cmd.stream.clone(), head);
        let entry = IdEntry {
            first_position,
            position: self.next_position - 1,
            version: head.next_version - 1,
            fingerprint: fp,
        };
        batch.ids.insert(first_id, entry);
        Ok(AppendResult {
            first_position,
            position: entry.position,
            version: entry.version,
        })
    }

    /// Writes the batch to the active segment (rolling it first when full) and syncs.
    fn write(&mut self, batch: &Batch) -> Result<(), StoreError> {
        if self.active_len > 0 && self.active_len + batch.buf.len() as u64 > self.segment_bytes {
            self.roll()?;
        }
        self.active.file.write_all_at(&batch.buf, self.active_len)?;
        self.active.file.sync_data()?;
        Ok(())
    }

    /// Seals the active segment and starts the next one.
    fn roll(&mut self) -> Result<(), StoreError> {
        let dir = self.log.dir.clone();
        let offsets = match &self.active.offsets {
            Offsets::Active(o) => o.read().map_err(|_| poisoned_lock())?.clone(),
            Offsets::Sealed { .. } => {
                return Err(StoreError::Index("active segment is sealed".into()));
            }
        };
        let sealed = segment::seal(&dir, &self.active, &offsets)?;
        let next = segment::create(&dir, self.next_position_of_batch_start(&offsets))?;
        {
            let mut segs = self.log.segments.write().map_err(|_| poisoned_lock())?;
            let n = segs.len();
            segs[n - 1] = sealed;
            segs.push(next.clone());
        }
        self.active = next;
        self.active_len = 0;
        Ok(())
    }

    fn next_position_of_batch_start(&self, sealed_offsets: &[u32]) -> u64 {
        self.active.first + sealed_offsets.len() as u64
    }

    /// Makes a synced batch visible: offsets, then the index, then the head, so a reader
    /// that sees a position can always find it.
    fn publish(&mut self, batch: Batch) -> Result<(), StoreError> {
        if let Offsets::Active(o) = &self.active.offsets {
            let mut o = o.write().map_err(|_| poisoned_lock())?;
            o.extend(batch.offsets.iter().map(|rel| self.active_len as u32 + rel));
        }
        self.active_len += batch.buf.len() as u64;
        let ids = batch.ids.into_iter().collect();
        let held = self.index.add(batch.events, ids)?;
        if held >= self.flush_events {
            self.indexer.unpark();
        }
        self.head_tx.send_replace(self.next_position - 1);
        Ok(())
    }
}
