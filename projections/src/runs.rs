//! Run history: every run of an organization, newest first, filtered by bot, status,
//! trigger and time.
//!
//! # Layout (tree `runs`)
//! - `v` block (u64 BE) → the [`RunView`]s (postcard, ascending start positions) of the
//!   runs whose `run.started` lies at positions `block * VIEW_BLOCK ..` the next block.
//!   sled's cost is per key written (each write copies the leaf it lands in, and its
//!   log record), so views share a key: a rebuild writes one key per
//!   [`VIEW_BLOCK`] positions instead of one per run, which made runs the slowest
//!   projection of P3 (a perf profile put 27 % of P3's CPU in sled's insert path for
//!   one key per run). Keys grow with the log, so a rebuild appends at the right edge.
//! - `r/{run}` → start position (u64 LE), only while the run is open (started and not
//!   ended at a commit): how an end event in a later batch finds its run. A run that
//!   ended is found by id through the log (its stream's first event is its start; see
//!   [`run`]).
//! - posting lists (see [`crate::postings`]) of start positions: `o/{org}`,
//!   `b/{org}/{bot}`, `t/{org}/{trigger}`
//!
//! A page walks the most selective list newest first, so it costs O(page) for a bot or
//! trigger filter; status and time are checked on the runs it reads.

use crate::postings::{self, Descending, Postings};
use crate::time_travel::decode;
use crate::{Projection, ProjectionError, Tx};
use domain::Credits;
use domain::events::Event;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use store::{Direction, EventStore, RecordedEvent};
use time::OffsetDateTime;
use uuid::Uuid;

/// Largest page.
pub const PAGE_MAX: usize = 100;
/// Most runs a page reads to satisfy filters its list cannot answer.
pub const SCAN_MAX: usize = 20_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Running,
    Completed,
    Failed,
    Cancelled,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunView {
    // Stored with postcard: times in the time crate's compact binary form.
    pub id: Uuid,
    pub org: Uuid,
    pub bot_id: Uuid,
    pub task: String,
    pub trigger_id: Option<Uuid>,
    pub status: Status,
    pub started_at: OffsetDateTime,
    pub ended_at: Option<OffsetDateTime>,
    pub duration_ms: Option<u64>,
    pub credits: Option<Credits>,
    pub error: Option<String>,
}

fn open_key(id: &Uuid) -> Vec<u8> {
    format!("r/{id}").into_bytes()
}

/// Start positions per block of views: up to 64 views (~6 KiB) when every position
/// starts a run, a third of that in a log where runs end and consume credits.
pub const VIEW_BLOCK: u64 = 64;

fn block_key(block: u64) -> [u8; 9] {
    let mut k = [b'v'; 9];
    k[1..].copy_from_slice(&block.to_be_bytes());
    k
}

type Block = Vec<(u64, RunView)>;

/// A stored block of views; none stored is an empty block.
fn read_block(bytes: Option<impl AsRef<[u8]>>) -> Result<Block, ProjectionError> {
    bytes.map_or(Ok(Vec::new()), |b| {
        postcard::from_bytes(b.as_ref())
            .map_err(|e| ProjectionError::Storage(format!("run views: {e}")))
    })
}

fn view_in(block: &[(u64, RunView)], position: u64) -> Option<&RunView> {
    block
        .binary_search_by_key(&position, |(p, _)| *p)
        .ok()
        .map(|i| &block[i].1)
}

/// Open runs remembered between batches at most; past it they are read from the tree.
pub const OPEN_MAX: usize = 100_000;
// List names: `o/{org}`, `b/{org}/{bot}`, `t/{org}/{trigger}`.
fn org_list(org: &Uuid) -> Vec<u8> {
    postings::name(b'o', org, None)
}
fn bot_list(org: &Uuid, bot: &Uuid) -> Vec<u8> {
    postings::name(
        b'b',
        org,
        Some(
            bot.hyphenated()
                .encode_lower(&mut Uuid::encode_buffer())
                .as_bytes(),
        ),
    )
}
fn trigger_list(org: &Uuid, trigger: &Uuid) -> Vec<u8> {
    postings::name(
        b't',
        org,
        Some(
            trigger
                .hyphenated()
                .encode_lower(&mut Uuid::encode_buffer())
                .as_bytes(),
        ),
    )
}

#[derive(Default)]
pub struct Runs {
    /// The runs this batch started or ended, by start position.
    views: HashMap<u64, RunView>,
    /// Runs not ended: their start, and whether `r/{run}` holds it in the tree.
    open: HashMap<Uuid, (u64, bool)>,
    postings: Postings,
}

impl Projection for Runs {
    const NAME: &'static str = "runs";
    const VERSION: u32 = 4;

    fn apply(&mut self, e: &RecordedEvent, tx: &mut Tx<'_>) -> Result<(), ProjectionError> {
        let (Some(org), Some(id)) = (e.org(), e.stream.strip_prefix("run-")) else {
            return Ok(());
        };
        let Ok(run) = id.parse::<Uuid>() else {
            return Ok(());
        };
        let Some(event) = decode(e)? else {
            return Ok(());
        };
        if let Event::RunStarted(s) = &event {
            let p = &mut self.postings;
            let mut id = Uuid::encode_buffer();
            p.push_named(b'o', &org, None, e.position);
            let bot = s.bot_id.hyphenated().encode_lower(&mut id);
            p.push_named(b'b', &org, Some(bot.as_bytes()), e.position);
            if let Some(t) = s.trigger_id {
                let trigger = t.hyphenated().encode_lower(&mut id);
                p.push_named(b't', &org, Some(trigger.as_bytes()), e.position);
            }
            self.open.insert(run, (e.position, false));
            let view = RunView {
                id: run,
                org,
                bot_id: s.bot_id,
                task: s.task.clone(),
                trigger_id: s.trigger_id,
                status: Status::Running,
                started_at: e.meta.occurred_at,
                ended_at: None,
                duration_ms: None,
                credits: None,
                error: None,
            };
            self.views.insert(e.position, view);
            return Ok(());
        }
        if !matches!(
            event,
            Event::RunCompleted(_) | Event::RunFailed(_) | Event::RunCancelled(_)
        ) {
            return Ok(());
        }
        let (start, stored) = match self.open.get(&run) {
            Some(open) => *open,
            None => match tx.get(&open_key(&run))? {
                Some(v) => (
                    u64::from_le_bytes(v.as_slice().try_into().unwrap_or([0; 8])),
                    true,
                ),
                None => return Ok(()),
            },
        };
        let view = match self.views.entry(start) {
            Entry::Occupied(o) => o.into_mut(),
            Entry::Vacant(v) => {
                let block = read_block(tx.get(&block_key(start / VIEW_BLOCK))?)?;
                match view_in(&block, start) {
                    Some(view) => v.insert(view.clone()),
                    None => return Ok(()),
                }
            }
        };
        self.open.remove(&run);
        if stored {
            tx.remove(open_key(&run));
        }
        let (status, duration, credits, error) = match event {
            Event::RunCompleted(c) => (
                Status::Completed,
                Some(c.duration_ms),
                Some(c.credits),
                None,
            ),
            Event::RunFailed(f) => (
                Status::Failed,
                Some(f.duration_ms),
                f.credits,
                Some(f.error),
            ),
            Event::RunCancelled(_) => (Status::Cancelled, None, None, None),
            _ => return Ok(()),
        };
        view.status = status;
        view.ended_at = Some(e.meta.occurred_at);
        view.duration_ms = duration;
        view.credits = credits;
        view.error = error;
        Ok(())
    }

    fn before_commit(&mut self, tx: &mut Tx<'_>) -> Result<(), ProjectionError> {
        // The views this batch touched, merged into their blocks (a block another batch
        // began is read back: live, and runs that end in a later batch).
        let mut touched: Vec<(u64, RunView)> = self.views.drain().collect();
        touched.sort_unstable_by_key(|(p, _)| *p);
        for views in touched.chunk_by(|a, b| a.0 / VIEW_BLOCK == b.0 / VIEW_BLOCK) {
            let key = block_key(views[0].0 / VIEW_BLOCK);
            let mut block = read_block(tx.get(&key)?)?;
            for (p, view) in views {
                match block.binary_search_by_key(p, |(q, _)| *q) {
                    Ok(i) => block[i].1 = view.clone(),
                    Err(i) => block.insert(i, (*p, view.clone())),
                }
            }
            let bytes = postcard::to_stdvec(&block)
                .map_err(|e| ProjectionError::Storage(format!("run views: {e}")))?;
            tx.insert(key.to_vec(), bytes);
        }
        for (run, (start, stored)) in self.open.iter_mut() {
            if !*stored {
                tx.insert(open_key(run), start.to_le_bytes().to_vec());
                *stored = true;
            }
        }
        if self.open.len() > OPEN_MAX {
            // All of them are in the tree: forget them here, read them there.
            self.open.clear();
        }
        self.postings.write(tx)
    }
}

/// Which runs a page shows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunFilter {
    pub bot: Option<Uuid>,
    pub status: Option<Status>,
    pub trigger: Option<Uuid>,
    pub from: Option<OffsetDateTime>,
    pub to: Option<OffsetDateTime>,
}

#[derive(Debug)]
pub struct RunsPage {
    pub runs: Vec<(u64, RunView)>,
    pub has_next: bool,
    /// Every run of the connection (whatever the cursor) the filter admits; with a
    /// status or time filter, among the newest [`SCAN_MAX`] runs of the list walked.
    pub total_count: u64,
}

/// The run `id`, as the tree holds it: its start position is its stream's first event.
pub async fn run(
    tree: &sled::Tree,
    store: &dyn EventStore,
    id: Uuid,
) -> Result<Option<RunView>, ProjectionError> {
    let first = store
        .read_stream(&format!("run-{id}"), 0, Direction::Forwards, 1)
        .await?;
    match first.first() {
        Some(e) => at(tree, e.position),
        None => Ok(None),
    }
}

/// The run started at `position`.
pub fn at(tree: &sled::Tree, position: u64) -> Result<Option<RunView>, ProjectionError> {
    Views::new(tree).at(position)
}

/// Reads views by start position, keeping the last block read (a page's runs are
/// mostly neighbours).
struct Views<'a> {
    tree: &'a sled::Tree,
    cached: Option<(u64, Block)>,
}

impl<'a> Views<'a> {
    fn new(tree: &'a sled::Tree) -> Views<'a> {
        Views { tree, cached: None }
    }

    fn at(&mut self, position: u64) -> Result<Option<RunView>, ProjectionError> {
        let block = position / VIEW_BLOCK;
        if self.cached.as_ref().is_none_or(|(b, _)| *b != block) {
            self.cached = Some((block, read_block(self.tree.get(block_key(block))?)?));
        }
        Ok(self
            .cached
            .as_ref()
            .and_then(|(_, views)| view_in(views, position))
            .cloned())
    }
}

impl RunFilter {
    fn admits(&self, view: &RunView) -> bool {
        self.status.is_none_or(|s| s == view.status)
            && self.trigger.is_none_or(|t| Some(t) == view.trigger_id)
            && self.from.is_none_or(|t| view.started_at >= t)
            && self.to.is_none_or(|t| view.started_at <= t)
    }

    /// Whether a run started at `started_at` and every older one are before `from`
    /// (times follow positions up to writers' clock skew).
    fn past_from(&self, started_at: OffsetDateTime) -> bool {
        self.from
            .is_some_and(|t| started_at < t - crate::audit::CLOCK_SKEW_MAX)
    }
}

/// A page of `org`'s runs, newest first, started before position `before` (the cursor).
/// `count_below`: count the connection's runs started below it (`u64::MAX`: all; a
/// time-travel bound otherwise); `None` leaves `total_count` 0.
pub fn page(
    tree: &sled::Tree,
    org: Uuid,
    f: &RunFilter,
    first: usize,
    before: Option<u64>,
    count_below: Option<u64>,
) -> Result<RunsPage, ProjectionError> {
    let first = first.min(PAGE_MAX);
    let list = match (f.bot, f.trigger) {
        (Some(b), _) => bot_list(&org, &b),
        (None, Some(t)) => trigger_list(&org, &t),
        _ => org_list(&org),
    };
    let exact = f.status.is_none()
        && f.from.is_none()
        && f.to.is_none()
        && !(f.bot.is_some() && f.trigger.is_some());
    let (mut runs, mut has_next) = (Vec::with_capacity(first), false);
    let mut views = Views::new(tree);
    for (n, position) in Descending::new(tree, &list, before.unwrap_or(u64::MAX)).enumerate() {
        let position = position?;
        if n >= SCAN_MAX {
            break;
        }
        let Some(view) = views.at(position)? else {
            continue;
        };
        if f.past_from(view.started_at) {
            break;
        }
        if !f.admits(&view) {
            continue;
        }
        if runs.len() == first {
            has_next = true;
            break;
        }
        runs.push((position, view));
    }
    let total_count = if let Some(limit) = count_below {
        if exact {
            postings::count_below(tree, &list, limit)?
        } else {
            // Every match of the connection, whatever the cursor: a second walk from the
            // newest, over at most SCAN_MAX runs.
            let mut n = 0;
            for position in Descending::new(tree, &list, limit).take(SCAN_MAX) {
                let Some(view) = views.at(position?)? else {
                    continue;
                };
                if f.past_from(view.started_at) {
                    break;
                }
                n += u64::from(f.admits(&view));
            }
            n
        }
    } else {
        0
    };
    Ok(RunsPage {
        runs,
        has_next,
        total_count,
    })
}
