//! The derived indexes: stream index, org index, event-id index and stream heads.
//!
//! Recent entries live in an in-memory *memtable*; an indexer thread writes a frozen
//! memtable to sled in one atomic batch together with `indexed_up_to`, the last position
//! that batch covers. So an event costs a fraction of a sled write: a stream touched by
//! many events in one flush is written once, positions are stored a block at a time,
//! and the id index takes one key per append, not per event. After a crash the indexes
//! may lag the log but are never wrong: open re-indexes from `indexed_up_to`.
//!
//! # Layout (one sled tree, so one batch is atomic)
//! - `h` stream → next version (u64 LE) ‖ last hash (32 bytes)
//! - `s` stream `0x00` block (u32 BE) → positions of versions `block*256 ..` (u64 LE each)
//! - `o` org (16 bytes) first position (u64 BE) → up to 512 ascending positions (u64 LE)
//! - `i` first event id of an append (16 bytes) → [`IdEntry`]
//! - `m` `indexed_up_to` → u64 LE
//!
//! Readers take what they need from the memtables under a read lock *before* they read
//! sled: entries only ever move from memory to sled, so nothing falls between the two.

use super::segment::poisoned_lock;
use crate::error::StoreError;
use crate::event::{GENESIS_HASH, Hash};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use uuid::Uuid;

/// Positions per stream-index block (2 KiB values).
const STREAM_BLOCK: u64 = 256;
/// Positions per org-index block (4 KiB values).
const ORG_BLOCK: usize = 512;
const INDEXED_UP_TO_KEY: &[u8] = b"mindexed_up_to";

/// A stream's state as the writer checks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Head {
    /// Version the next event gets; 0 when the stream does not exist.
    pub(crate) next_version: u64,
    pub(crate) last_hash: Hash,
}

impl Head {
    pub(crate) const NONE: Head = Head {
        next_version: 0,
        last_hash: GENESIS_HASH,
    };

    pub(crate) fn last_version(&self) -> Option<u64> {
        self.next_version.checked_sub(1)
    }
}

/// What an append wrote, kept under its first event id so that a retry gets the
/// original result back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IdEntry {
    pub(crate) first_position: u64,
    pub(crate) position: u64,
    pub(crate) version: u64,
    /// First 8 bytes of SHA-256 over the stream name and every event id of the append:
    /// a retry must be the same append, not just start with the same id.
    pub(crate) fingerprint: u64,
}

impl IdEntry {
    fn encode(&self) -> [u8; 32] {
        let mut b = [0; 32];
        b[..8].copy_from_slice(&self.first_position.to_le_bytes());
        b[8..16].copy_from_slice(&self.position.to_le_bytes());
        b[16..24].copy_from_slice(&self.version.to_le_bytes());
        b[24..].copy_from_slice(&self.fingerprint.to_le_bytes());
        b
    }

    fn decode(b: &[u8]) -> Option<IdEntry> {
        (b.len() == 32).then(|| IdEntry {
            first_position: u64_at(b, 0),
            position: u64_at(b, 8),
            version: u64_at(b, 16),
            fingerprint: u64_at(b, 24),
        })
    }
}

pub(crate) fn fingerprint<'a>(stream: &str, ids: impl Iterator<Item = &'a Uuid>) -> u64 {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(stream.as_bytes());
    for id in ids {
        h.update(id.as_bytes());
    }
    u64_at(&h.finalize(), 0)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// The positions of a stream's versions `first_version..` not yet in sled.
#[derive(Debug, Default)]
pub(crate) struct StreamTail {
    pub(crate) first_version: u64,
    pub(crate) positions: Vec<u64>,
    pub(crate) last_hash: Hash,
}

impl StreamTail {
    fn next_version(&self) -> u64 {
        self.first_version + self.positions.len() as u64
    }
}

/// One indexed event, as the writer (or re-indexing at open) hands it over.
#[derive(Debug)]
pub(crate) struct IndexedEvent {
    pub(crate) stream: String,
    pub(crate) version: u64,
    pub(crate) position: u64,
    pub(crate) hash: Hash,
    pub(crate) org: Option<Uuid>,
}

#[derive(Debug, Default)]
pub(crate) struct Memtable {
    streams: HashMap<String, StreamTail>,
    orgs: HashMap<Uuid, Vec<u64>>,
    ids: HashMap<Uuid, IdEntry>,
    last_position: u64,
    events: usize,
}

impl Memtable {
    pub(crate) fn events(&self) -> usize {
        self.events
    }

    fn push(&mut self, e: IndexedEvent) {
        debug_assert!(e.position > self.last_position, "positions grow");
        self.last_position = e.position;
        self.events += 1;
        if let Some(org) = e.org {
            self.orgs.entry(org).or_default().push(e.position);
        }
        match self.streams.get_mut(&e.stream) {
            Some(tail) => {
                assert_eq!(
                    tail.next_version(),
                    e.version,
                    "stream versions grow by one"
                );
                tail.positions.push(e.position);
                tail.last_hash = e.hash;
            }
            None => {
                self.streams.insert(
                    e.stream,
                    StreamTail {
                        first_version: e.version,
                        positions: vec![e.position],
                        last_hash: e.hash,
                    },
                );
            }
        }
    }
}

#[derive(Default)]
struct State {
    active: Memtable,
    frozen: Option<Arc<Memtable>>,
}

pub(crate) struct Index {
    tree: sled::Tree,
    state: RwLock<State>,
}

fn head_key(stream: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + stream.len());
    k.push(b'h');
    k.extend_from_slice(stream.as_bytes());
    k
}

fn stream_block_key(stream: &str, block: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(6 + stream.len());
    k.push(b's');
    k.extend_from_slice(stream.as_bytes());
    k.push(0);
    k.extend_from_slice(&(block as u32).to_be_bytes());
    k
}

fn org_prefix(org: &Uuid) -> [u8; 17] {
    let mut k = [0; 17];
    k[0] = b'o';
    k[1..].copy_from_slice(org.as_bytes());
    k
}

fn org_block_key(org: &Uuid, first_position: u64) -> [u8; 25] {
    let mut k = [0; 25];
    k[..17].copy_from_slice(&org_prefix(org));
    k[17..].copy_from_slice(&first_position.to_be_bytes());
    k
}

fn id_key(id: &Uuid) -> [u8; 17] {
    let mut k = [0; 17];
    k[0] = b'i';
    k[1..].copy_from_slice(id.as_bytes());
    k
}

fn positions_of(block: &[u8]) -> impl Iterator<Item = u64> + '_ {
    block.chunks_exact(8).map(|c| u64_at(c, 0))
}

fn extend_positions(block: &mut Vec<u8>, positions: &[u64]) {
    for p in positions {
        block.extend_from_slice(&p.to_le_bytes());
    }
}

impl Index {
    pub(crate) fn open(tree: sled::Tree) -> Index {
        Index {
            tree,
            state: RwLock::new(State::default()),
        }
    }

    /// The last position written to sled.
    pub(crate) fn indexed_up_to(&self) -> Result<u64, StoreError> {
        Ok(self
            .tree
            .get(INDEXED_UP_TO_KEY)?
            .map(|v| u64_at(&v, 0))
            .unwrap_or(0))
    }

    /// Forgets everything (the index is ahead of the log: rebuilt from zero).
    pub(crate) fn clear(&self) -> Result<(), StoreError> {
        self.tree.clear()?;
        Ok(())
    }

    pub(crate) fn head(&self, stream: &str) -> Result<Head, StoreError> {
        {
            let st = self.state.read().map_err(|_| poisoned_lock())?;
            let in_memory = st
                .active
                .streams
                .get(stream)
                .or_else(|| st.frozen.as_ref().and_then(|f| f.streams.get(stream)));
            if let Some(t) = in_memory {
                return Ok(Head {
                    next_version: t.next_version(),
                    last_hash: t.last_hash,
                });
            }
        }
        Ok(match self.tree.get(head_key(stream))? {
            Some(v) if v.len() == 40 => {
                let mut last_hash = [0; 32];
                last_hash.copy_from_slice(&v[8..]);
                Head {
                    next_version: u64_at(&v, 0),
                    last_hash,
                }
            }
            _ => Head::NONE,
        })
    }

    pub(crate) fn id_entry(&self, id: &Uuid) -> Result<Option<IdEntry>, StoreError> {
        {
            let st = self.state.read().map_err(|_| poisoned_lock())?;
            let in_memory = st
                .active
                .ids
                .get(id)
                .or_else(|| st.frozen.as_ref().and_then(|f| f.ids.get(id)));
            if let Some(e) = in_memory {
                return Ok(Some(*e));
            }
        }
        Ok(self.tree.get(id_key(id))?.and_then(|v| IdEntry::decode(&v)))
    }

    /// Positions of `stream`'s versions in `from..to` (those that exist).
    pub(crate) fn stream_positions(
        &self,
        stream: &str,
        from: u64,
        to: u64,
    ) -> Result<Vec<u64>, StoreError> {
        let slice = |t: Option<&StreamTail>| -> (u64, Vec<u64>) {
            match t {
                Some(t) => {
                    let a = from.max(t.first_version);
                    let b = to.min(t.next_version()).max(a);
                    let lo = (a - t.first_version) as usize;
                    let hi = (b - t.first_version) as usize;
                    (a, t.positions[lo..hi].to_vec())
                }
                None => (0, Vec::new()),
            }
        };
        let (active, frozen) = {
            let st = self.state.read().map_err(|_| poisoned_lock())?;
            (
                slice(st.active.streams.get(stream)),
                slice(st.frozen.as_ref().and_then(|f| f.streams.get(stream))),
            )
        };
        let in_memory = |v: u64| {
            [&active, &frozen].into_iter().find_map(|(first, ps)| {
                v.checked_sub(*first)
                    .and_then(|i| ps.get(i as usize).copied())
            })
        };
        let mut out = Vec::with_capacity(to.saturating_sub(from).min(1 << 16) as usize);
        let mut block: Option<(u64, sled::IVec)> = None;
        for v in from..to {
            if let Some(p) = in_memory(v) {
                out.push(p);
                continue;
            }
            let b = v / STREAM_BLOCK;
            if block.as_ref().is_none_or(|(n, _)| *n != b) {
                match self.tree.get(stream_block_key(stream, b))? {
                    Some(value) => block = Some((b, value)),
                    None => break,
                }
            }
            let Some((_, value)) = &block else { break };
            let i = ((v % STREAM_BLOCK) * 8) as usize;
            match value.get(i..i + 8) {
                Some(bytes) => out.push(u64_at(bytes, 0)),
                None => break,
            }
        }
        Ok(out)
    }

    /// Up to `max` positions of `org`'s events at or after `from`, ascending.
    pub(crate) fn org_positions(
        &self,
        org: &Uuid,
        from: u64,
        max: usize,
    ) -> Result<Vec<u64>, StoreError> {
        let in_memory: Vec<u64> = {
            let st = self.state.read().map_err(|_| poisoned_lock())?;
            let frozen = st.frozen.as_ref().and_then(|f| f.orgs.get(org));
            let active = st.active.orgs.get(org);
            frozen
                .into_iter()
                .chain(active)
                .flat_map(|ps| {
                    let i = ps.partition_point(|&p| p < from);
                    ps[i..].iter().take(max).copied()
                })
                .collect()
        };
        let mut out = Vec::new();
        let prefix = org_prefix(org);
        let start = match self.tree.range(..=org_block_key(org, from)).next_back() {
            Some(Ok((k, _))) if k.starts_with(&prefix) => k.to_vec(),
            Some(Err(e)) => return Err(e.into()),
            _ => org_block_key(org, 0).to_vec(),
        };
        'blocks: for kv in self.tree.range(start..) {
            let (k, v) = kv?;
            if !k.starts_with(&prefix) {
                break;
            }
            for p in positions_of(&v).filter(|&p| p >= from) {
                if out.len() == max {
                    break 'blocks;
                }
                out.push(p);
            }
        }
        let last_sled = out.last().copied().unwrap_or(0);
        for p in in_memory {
            if out.len() == max {
                break;
            }
            if p > last_sled {
                out.push(p);
            }
        }
        Ok(out)
    }

    /// Adds events (and the id entries of their appends) to the active memtable;
    /// returns how many events it now holds.
    pub(crate) fn add(
        &self,
        events: Vec<IndexedEvent>,
        ids: Vec<(Uuid, IdEntry)>,
    ) -> Result<usize, StoreError> {
        let mut st = self.state.write().map_err(|_| poisoned_lock())?;
        for e in events {
            st.active.push(e);
        }
        st.active.ids.extend(ids);
        Ok(st.active.events())
    }

    /// Events held in memory, not yet in sled.
    pub(crate) fn backlog(&self) -> Result<usize, StoreError> {
        let st = self.state.read().map_err(|_| poisoned_lock())?;
        Ok(st.active.events + st.frozen.as_ref().map_or(0, |f| f.events))
    }

    /// Freezes the active memtable when it holds at least `min_events` events and no
    /// earlier one is still being written.
    pub(crate) fn freeze(&self, min_events: usize) -> Result<Option<Arc<Memtable>>, StoreError> {
        let mut st = self.state.write().map_err(|_| poisoned_lock())?;
        if st.frozen.is_some() || st.active.events == 0 || st.active.events < min_events {
            return Ok(None);
        }
        let frozen = Arc::new(std::mem::take(&mut st.active));
        st.frozen = Some(frozen.clone());
        Ok(Some(frozen))
    }

    /// Writes a frozen memtable to sled in one atomic batch, then lets it go.
    pub(crate) fn flush(&self, m: &Memtable) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for (stream, tail) in &m.streams {
            self.flush_stream(&mut batch, stream, tail)?;
        }
        for (org, positions) in &m.orgs {
            self.flush_org(&mut batch, org, positions)?;
        }
        for (id, entry) in &m.ids {
            batch.insert(&id_key(id)[..], &entry.encode()[..]);
        }
        batch.insert(INDEXED_UP_TO_KEY, &m.last_position.to_le_bytes()[..]);
        self.tree.apply_batch(batch)?;
        let mut st = self.state.write().map_err(|_| poisoned_lock())?;
        st.frozen = None;
        Ok(())
    }

    fn flush_stream(
        &self,
        batch: &mut sled::Batch,
        stream: &str,
        tail: &StreamTail,
    ) -> Result<(), StoreError> {
        let mut version = tail.first_version;
        let mut rest = &tail.positions[..];
        while !rest.is_empty() {
            let block = version / STREAM_BLOCK;
            let within = (version % STREAM_BLOCK) as usize;
            let n = rest.len().min(STREAM_BLOCK as usize - within);
            let key = stream_block_key(stream, block);
            let mut value = match within {
                0 => Vec::with_capacity(n * 8),
                _ => self.tree.get(&key)?.map(|v| v.to_vec()).unwrap_or_default(),
            };
            if value.len() != within * 8 {
                return Err(StoreError::Index(format!(
                    "stream index of {stream} is out of step at version {version}"
                )));
            }
            extend_positions(&mut value, &rest[..n]);
            batch.insert(key, value);
            version += n as u64;
            rest = &rest[n..];
        }
        let mut head = Vec::with_capacity(40);
        head.extend_from_slice(&tail.next_version().to_le_bytes());
        head.extend_from_slice(&tail.last_hash);
        batch.insert(head_key(stream), head);
        Ok(())
    }

    fn flush_org(
        &self,
        batch: &mut sled::Batch,
        org: &Uuid,
        positions: &[u64],
    ) -> Result<(), StoreError> {
        let mut rest = positions;
        if let Some(last) = self.tree.scan_prefix(org_prefix(org)).next_back() {
            let (k, v) = last?;
            let room = ORG_BLOCK.saturating_sub(v.len() / 8).min(rest.len());
            if room > 0 {
                let mut value = v.to_vec();
                extend_positions(&mut value, &rest[..room]);
                batch.insert(k, value);
                rest = &rest[room..];
            }
        }
        for chunk in rest.chunks(ORG_BLOCK) {
            let mut value = Vec::with_capacity(chunk.len() * 8);
            extend_positions(&mut value, chunk);
            batch.insert(&org_block_key(org, chunk[0])[..], value);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(stream: &str, version: u64, position: u64, org: Option<Uuid>) -> IndexedEvent {
        IndexedEvent {
            stream: stream.to_owned(),
            version,
            position,
            hash: [position as u8; 32],
            org,
        }
    }

    #[test]
    fn lookups_see_the_same_answer_before_and_after_a_flush() -> Result<(), StoreError> {
        let dir = tempfile::tempdir()?;
        let db = sled::open(dir.path())?;
        let index = Index::open(db.open_tree("t")?);
        let org = Uuid::from_u128(7);
        let mut events = Vec::new();
        let mut p = 0;
        for v in 0..600 {
            for s in ["a", "b"] {
                p += 1;
                events.push(ev(s, v, p, (s == "a").then_some(org)));
            }
        }
        let (first, second) = events.split_at(700);
        index.add(
            first
                .iter()
                .map(|e| ev(&e.stream, e.version, e.position, e.org))
                .collect(),
            vec![],
        )?;
        let expect_a: Vec<u64> = (0..600).map(|v| 2 * v + 1).collect();
        let check = |index: &Index| -> Result<(), StoreError> {
            let n = index.head("a")?.next_version;
            assert_eq!(index.stream_positions("a", 0, n)?, expect_a[..n as usize]);
            assert_eq!(index.stream_positions("a", 10, 20)?, expect_a[10..20]);
            let org_all = index.org_positions(&org, 0, 10_000)?;
            assert_eq!(org_all, expect_a[..org_all.len()]);
            assert_eq!(index.org_positions(&org, 101, 3)?, vec![101, 103, 105]);
            Ok(())
        };
        check(&index)?;
        let frozen = index.freeze(1)?.expect("something to freeze");
        index.add(
            second
                .iter()
                .map(|e| ev(&e.stream, e.version, e.position, e.org))
                .collect(),
            vec![],
        )?;
        check(&index)?;
        index.flush(&frozen)?;
        check(&index)?;
        let frozen = index.freeze(1)?.expect("something to freeze");
        index.flush(&frozen)?;
        check(&index)?;
        assert_eq!(index.indexed_up_to()?, 1200);
        assert_eq!(index.head("b")?.next_version, 600);
        assert_eq!(index.head("b")?.last_hash, [1200u64 as u8; 32]);
        Ok(())
    }
}
