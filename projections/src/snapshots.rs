//! Snapshots for time travel: an organization's folded aggregates ([`Folded`]) persisted
//! every [`SNAPSHOT_EVERY`] events of that organization, so [`time_travel::org_at_with`]
//! folds at most that many events after loading one snapshot.
//!
//! # Layout
//! One sled tree, [`TREE`], in the store's database:
//! - `org (16) | b'p' | position (u64 BE)` → `FORMAT | postcard(Folded)`: the snapshot
//!   whose last folded event is at `position`.
//! - `org (16) | b't' | max occurred_at (i128 ns, sign-flipped BE) | position` → empty:
//!   the same snapshot by the latest time it folded. A snapshot is usable for a time T
//!   only if nothing it folded occurred after T; that latest time never decreases along
//!   an org's history, so the newest usable snapshot is the last key at or before T.
//!
//! A log position never changes, so a snapshot is immutable and never stale. Snapshots
//! are derived data: one that is missing or does not decode is skipped (the fold starts
//! from an older one, or from the start of the log), never an error to a reader.
//!
//! # Who writes them
//! [`spawn`] starts a [`SnapshotMarks`] projection with the runner — it counts each
//! org's events and marks the position of every [`SNAPSHOT_EVERY`]-th one — and a task
//! that writes the marked snapshots, each folded from the previous one, then clears the
//! mark. Neither holds anything in memory between batches, and readers never write.
//!
//! [`time_travel::org_at_with`]: crate::time_travel::org_at_with

use crate::time_travel::{Folded, TimePoint, fold};
use crate::{Projection, ProjectionError, ProjectionHandle, Tx, runner};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use store::{EventStore, RecordedEvent};
use time::OffsetDateTime;
use tokio::sync::watch;
use uuid::Uuid;

/// Events of one organization between two snapshots. A query folds at most this many
/// events after its snapshot (~3 µs each: ~30 ms); an org with E events keeps E / N
/// snapshots, each the size of the org at that point.
pub const SNAPSHOT_EVERY: u64 = 10_000;
/// The sled tree of the snapshots.
pub const TREE: &str = "time_travel/snapshots/2";
/// Trees of earlier layouts, dropped when the writer starts: the first held whole
/// histories (every run, every consumption key), so its snapshots grew with the square
/// of an org's size.
const LEGACY_TREES: [&str; 1] = ["time_travel/snapshots"];
/// The first byte of every stored snapshot: its encoding. Another value is skipped.
const FORMAT: u8 = 1;
/// Key kinds inside [`TREE`].
const BY_POSITION: u8 = b'p';
const BY_TIME: u8 = b't';

fn position_key(org: Uuid, position: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(25);
    k.extend_from_slice(org.as_bytes());
    k.push(BY_POSITION);
    k.extend_from_slice(&position.to_be_bytes());
    k
}

/// Sorts like the time: the sign bit flipped, big-endian.
fn time_bytes(at: OffsetDateTime) -> [u8; 16] {
    ((at.unix_timestamp_nanos() as u128) ^ (1 << 127)).to_be_bytes()
}

fn time_key(org: Uuid, time: [u8; 16], position: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(41);
    k.extend_from_slice(org.as_bytes());
    k.push(BY_TIME);
    k.extend_from_slice(&time);
    k.extend_from_slice(&position.to_be_bytes());
    k
}

fn key_position(key: &[u8]) -> Option<u64> {
    let tail: [u8; 8] = key.get(key.len().checked_sub(8)?..)?.try_into().ok()?;
    Some(u64::from_be_bytes(tail))
}

/// The snapshots of every organization: one sled tree.
#[derive(Clone)]
pub struct Snapshots {
    tree: sled::Tree,
}

impl Snapshots {
    /// Opens (or creates) [`TREE`] in `db`.
    pub fn open(db: &sled::Db) -> Result<Snapshots, ProjectionError> {
        Ok(Snapshots {
            tree: db.open_tree(TREE)?,
        })
    }

    /// The tree itself (tests damage it on purpose).
    pub fn tree(&self) -> &sled::Tree {
        &self.tree
    }

    /// The newest snapshot of `org` usable for `point`: at or before its position, or
    /// with nothing folded after its time. Snapshots that do not decode are skipped
    /// (logged); `None` when none is usable.
    pub fn best(&self, org: Uuid, point: TimePoint) -> Option<Folded> {
        let positions: Box<dyn Iterator<Item = sled::Result<sled::IVec>>> = match point {
            TimePoint::Position(p) => Box::new(
                self.tree
                    .range(position_key(org, 0)..=position_key(org, p))
                    .rev()
                    .map(|r| r.map(|(k, _)| k)),
            ),
            TimePoint::At(t) => Box::new(
                self.tree
                    .range(time_key(org, [0; 16], 0)..=time_key(org, time_bytes(t), u64::MAX))
                    .rev()
                    .map(|r| r.map(|(k, _)| k)),
            ),
        };
        for key in positions {
            let key = match key {
                Ok(k) => k,
                Err(e) => {
                    tracing::warn!(%org, error = %e, "time-travel snapshots unreadable");
                    return None;
                }
            };
            let Some(position) = key_position(&key) else {
                continue;
            };
            match self.get(org, position) {
                Ok(Some(folded))
                    if match point {
                        TimePoint::Position(p) => folded.snapshot.position <= p,
                        TimePoint::At(t) => folded.max_occurred_at.is_none_or(|m| m <= t),
                    } =>
                {
                    return Some(folded);
                }
                Ok(_) => {
                    tracing::warn!(%org, position, "time-travel snapshot missing or unusable");
                }
                Err(reason) => {
                    tracing::warn!(%org, position, %reason, "time-travel snapshot skipped");
                }
            }
        }
        None
    }

    /// The snapshot of `org` whose last folded event is at `position`, if stored.
    /// `Err` with the reason when it is stored but does not decode.
    pub fn get(&self, org: Uuid, position: u64) -> Result<Option<Folded>, String> {
        let Some(value) = self
            .tree
            .get(position_key(org, position))
            .map_err(|e| e.to_string())?
        else {
            return Ok(None);
        };
        let (format, body) = value.split_first().ok_or("empty value")?;
        if *format != FORMAT {
            return Err(format!("unknown format {format}"));
        }
        let folded: Folded = postcard::from_bytes(body).map_err(|e| e.to_string())?;
        if folded.snapshot.position != position {
            return Err(format!(
                "holds position {} under {position}",
                folded.snapshot.position
            ));
        }
        Ok(Some(folded))
    }

    /// Whether a snapshot of `org` at `position` is stored (decodable or not).
    pub fn contains(&self, org: Uuid, position: u64) -> Result<bool, ProjectionError> {
        Ok(self.tree.contains_key(position_key(org, position))?)
    }

    /// Stores `folded` as the snapshot of `org` at its position (both keys in one batch).
    pub fn put(&self, org: Uuid, folded: &Folded) -> Result<(), ProjectionError> {
        let position = folded.snapshot.position;
        let mut value = vec![FORMAT];
        value.extend(
            postcard::to_stdvec(folded).map_err(|e| ProjectionError::Invariant {
                position,
                reason: format!("snapshot does not encode: {e}"),
            })?,
        );
        let mut batch = sled::Batch::default();
        batch.insert(position_key(org, position), value);
        if let Some(at) = folded.max_occurred_at {
            batch.insert(time_key(org, time_bytes(at), position), Vec::new());
        }
        self.tree.apply_batch(batch)?;
        Ok(())
    }

    /// Writes the snapshot of `org` at `position` (an event of the org), folded from the
    /// newest snapshot before it, unless it is already there.
    pub async fn write_at(
        &self,
        store: &dyn EventStore,
        org: Uuid,
        position: u64,
    ) -> Result<(), ProjectionError> {
        if self.contains(org, position)? {
            return Ok(());
        }
        let start = self
            .best(org, TimePoint::Position(position))
            .unwrap_or_default();
        let folded = fold(store, org, start, TimePoint::Position(position)).await?;
        self.put(org, &folded)
    }
}

/// Key prefixes inside the marks projection's tree.
const COUNT: u8 = b'n';
const MARK: u8 = b'm';

/// The projection behind the snapshot writer: counts each organization's events
/// (`n | org` → u64 LE) and marks every `every`-th (`m | org | position BE`). Its
/// counts are read from its tree once per batch and written back at the batch's end.
pub struct SnapshotMarks {
    every: u64,
    counts: HashMap<Uuid, u64>,
}

impl SnapshotMarks {
    /// Marks every `every`-th event of each organization (`every` ≥ 1).
    pub fn new(every: u64) -> SnapshotMarks {
        SnapshotMarks {
            every: every.max(1),
            counts: HashMap::new(),
        }
    }
}

impl Default for SnapshotMarks {
    fn default() -> Self {
        SnapshotMarks::new(SNAPSHOT_EVERY)
    }
}

fn count_key(org: Uuid) -> Vec<u8> {
    let mut k = vec![COUNT];
    k.extend_from_slice(org.as_bytes());
    k
}

fn mark_key(org: Uuid, position: u64) -> Vec<u8> {
    let mut k = vec![MARK];
    k.extend_from_slice(org.as_bytes());
    k.extend_from_slice(&position.to_be_bytes());
    k
}

impl Projection for SnapshotMarks {
    const NAME: &'static str = "snapshot_marks";
    // 2: marks every snapshot again for the tree of snapshots without whole histories.
    const VERSION: u32 = 2;

    fn apply(&mut self, event: &RecordedEvent, tx: &mut Tx<'_>) -> Result<(), ProjectionError> {
        let Some(org) = event.meta.org else {
            return Ok(());
        };
        let count = match self.counts.get_mut(&org) {
            Some(c) => c,
            None => {
                let stored = tx
                    .get(&count_key(org))?
                    .and_then(|v| v.as_slice().try_into().ok().map(u64::from_le_bytes))
                    .unwrap_or(0);
                self.counts.entry(org).or_insert(stored)
            }
        };
        *count += 1;
        if *count % self.every == 0 {
            tx.insert(mark_key(org, event.position), Vec::new());
        }
        Ok(())
    }

    fn before_commit(&mut self, tx: &mut Tx<'_>) -> Result<(), ProjectionError> {
        for (org, count) in self.counts.drain() {
            tx.insert(count_key(org), count.to_le_bytes().to_vec());
        }
        Ok(())
    }
}

/// The running snapshot writer: the marks projection and the task that writes the
/// marked snapshots.
pub struct SnapshotWriter {
    marks: ProjectionHandle,
    written: watch::Receiver<u64>,
    task: tokio::task::JoinHandle<()>,
}

/// Starts the snapshot writer over `store`, keeping its marks and the snapshots in `db`
/// (the store's database), with a snapshot every `every` events of an organization
/// ([`SNAPSHOT_EVERY`] in the server).
pub fn spawn(
    store: Arc<dyn EventStore>,
    db: sled::Db,
    every: u64,
) -> Result<SnapshotWriter, ProjectionError> {
    for legacy in LEGACY_TREES {
        db.drop_tree(legacy)?;
    }
    let snapshots = Snapshots::open(&db)?;
    let marks = runner::spawn(store.clone(), db, move || SnapshotMarks::new(every))?;
    let (written_tx, written) = watch::channel(0);
    let task = tokio::spawn(write_marked(store, snapshots, marks.clone(), written_tx));
    Ok(SnapshotWriter {
        marks,
        written,
        task,
    })
}

/// Writes the marked snapshots, then waits for the marks to move.
async fn write_marked(
    store: Arc<dyn EventStore>,
    snapshots: Snapshots,
    marks: ProjectionHandle,
    written: watch::Sender<u64>,
) {
    loop {
        // Every mark at or before this position is committed: write them all.
        let covered = marks.position();
        match write_all(store.as_ref(), &snapshots, &marks.tree()).await {
            Ok(()) => {
                written.send_replace(covered);
            }
            Err(e) => {
                tracing::warn!(error = %e, "time-travel snapshots not written; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        }
        // Timeouts only re-check (a rebuild of the marks may have swapped the tree).
        let _ = marks.wait_for(covered + 1, Duration::from_secs(5)).await;
    }
}

async fn write_all(
    store: &dyn EventStore,
    snapshots: &Snapshots,
    tree: &sled::Tree,
) -> Result<(), ProjectionError> {
    let keys = tree
        .scan_prefix([MARK])
        .keys()
        .collect::<Result<Vec<_>, _>>()?;
    // Marks sort by org then position: each snapshot is folded from the one before.
    let mut last: Option<(Uuid, Folded)> = None;
    for key in keys {
        let org = key.get(1..17).and_then(|b| Uuid::from_slice(b).ok());
        if let (Some(org), Some(position)) = (org, key_position(&key))
            && !snapshots.contains(org, position)?
        {
            let start = match last.take() {
                Some((o, f)) if o == org && f.snapshot.position < position => f,
                _ => snapshots
                    .best(org, TimePoint::Position(position))
                    .unwrap_or_default(),
            };
            let folded = fold(store, org, start, TimePoint::Position(position)).await?;
            snapshots.put(org, &folded)?;
            last = Some((org, folded));
        }
        tree.remove(&key)?;
    }
    Ok(())
}

impl SnapshotWriter {
    /// The marks projection (its status, its position).
    pub fn marks(&self) -> &ProjectionHandle {
        &self.marks
    }

    /// Waits until every snapshot due at or before `position` is written.
    pub async fn wait_for(&self, position: u64, timeout: Duration) -> Result<(), ProjectionError> {
        let deadline = tokio::time::Instant::now() + timeout;
        self.marks.wait_for(position, timeout).await?;
        let mut rx = self.written.clone();
        match tokio::time::timeout_at(deadline, rx.wait_for(|p| *p >= position)).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(ProjectionError::Timeout {
                name: SnapshotMarks::NAME,
                position,
            }),
        }
    }

    /// Stops the marks after their batch in progress and the writing task at once (a
    /// snapshot it was folding is written again on the next start).
    pub async fn stop(&self) {
        self.marks.stop().await;
        self.task.abort();
    }
}
