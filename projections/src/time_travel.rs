//! Time travel: an organization as it was at a position or a moment, folded in memory
//! from the org index by the domain's own aggregates — so the past is read with exactly
//! the rules that wrote it.
//!
//! [`org_at`] folds from the start of the log; [`org_at_with`] starts from the newest
//! usable snapshot of [`crate::snapshots`] and folds only the events after it, so its
//! cost is bounded by the snapshot spacing plus one snapshot load.

use crate::ProjectionError;
use crate::snapshots::Snapshots;
use domain::aggregate::Aggregate;
use domain::app::App;
use domain::billing::Billing;
use domain::bot::Bot;
use domain::events::Event;
use domain::ledger::Ledger;
use domain::organization::Organization;
use domain::run::{Run, RunStatus};
use domain::trigger::Trigger;
use std::collections::BTreeMap;
use store::{EventStore, RecordedEvent};
use time::OffsetDateTime;
use uuid::Uuid;

/// Events read from the org index per call at most.
const READ_EVENTS: usize = 10_000;
/// Events read by the first call of a fold; each next call reads twice as many, up to
/// [`READ_EVENTS`]: a fold from a snapshot often stops after a few events, and what is
/// read past the point is read for nothing.
const READ_EVENTS_FIRST: usize = 128;

/// A moment of the log: a position, or a time (`TimePoint` in the API; exactly one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimePoint {
    /// Everything up to and including this position.
    Position(u64),
    /// Everything that occurred at or before this time (events are taken in log order
    /// until the first that occurred later).
    At(OffsetDateTime),
}

/// One organization's aggregates at a point of the log.
///
/// It keeps what a read as of the point needs, so its size follows the org's state, not
/// its history (a snapshot of a busy org stays small, and snapshots every
/// [`SNAPSHOT_EVERY`](crate::snapshots::SNAPSHOT_EVERY) events cost linear storage):
/// - `runs` holds the runs **open** at the point. A run that has ended never changes
///   again, so the runs read model shows it as it was at any later point.
/// - `ledger.consumed_keys` is empty: only a decision (idempotency) needs the keys
///   consumed, and time travel never decides.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OrgSnapshot {
    /// The last position folded in (0: nothing yet).
    pub position: u64,
    pub org: Organization,
    pub billing: Billing,
    pub ledger: Ledger,
    pub bots: BTreeMap<Uuid, Bot>,
    pub runs: BTreeMap<Uuid, Run>,
    pub triggers: BTreeMap<Uuid, Trigger>,
    pub apps: BTreeMap<Uuid, App>,
}

/// Decodes a recorded event into the domain's catalog (upcasting old schemas). A type
/// this build does not know (written by a newer one, or by an analyst's tool) is
/// `None`: read models skip it rather than stop; a known type that does not decode is
/// an error.
pub fn decode(e: &RecordedEvent) -> Result<Option<Event>, ProjectionError> {
    match Event::decode(&e.event_type, e.schema, e.data.get()) {
        Ok(event) => Ok(Some(event)),
        Err(domain::events::DecodeError::UnknownType(_)) => Ok(None),
        Err(err) => Err(ProjectionError::Decode {
            position: e.position,
            reason: err.to_string(),
        }),
    }
}

fn stream_id(stream: &str, position: u64) -> Result<Uuid, ProjectionError> {
    let id = stream.split_once('-').map(|(_, id)| id).unwrap_or_default();
    id.parse().map_err(|_| ProjectionError::Decode {
        position,
        reason: format!("stream {stream} has no id"),
    })
}

impl OrgSnapshot {
    /// Folds one event of the organization into the right aggregate.
    pub fn apply(&mut self, e: &RecordedEvent) -> Result<(), ProjectionError> {
        let Some(event) = decode(e)? else {
            self.position = e.position;
            return Ok(());
        };
        let category = e
            .stream
            .split_once('-')
            .map_or(e.stream.as_str(), |(c, _)| c);
        match category {
            "organization" => self.org.apply(&event),
            "billing" => self.billing.apply(&event),
            "credits" => {
                self.ledger.apply(&event);
                self.ledger.consumed_keys.clear();
            }
            "bot" => self
                .bots
                .entry(stream_id(&e.stream, e.position)?)
                .or_default()
                .apply(&event),
            "run" => {
                let id = stream_id(&e.stream, e.position)?;
                let run = self.runs.entry(id).or_default();
                run.apply(&event);
                if run.status != RunStatus::Running {
                    self.runs.remove(&id);
                }
            }
            "trigger" => self
                .triggers
                .entry(stream_id(&e.stream, e.position)?)
                .or_default()
                .apply(&event),
            "app" => self
                .apps
                .entry(stream_id(&e.stream, e.position)?)
                .or_default()
                .apply(&event),
            _ => {}
        }
        self.position = e.position;
        Ok(())
    }
}

/// `org` as it was at `point`, folded from the start of the log. Costs O(events of the
/// org up to the point); [`org_at_with`] bounds it with snapshots.
pub async fn org_at(
    store: &dyn EventStore,
    org: Uuid,
    point: TimePoint,
) -> Result<OrgSnapshot, ProjectionError> {
    Ok(fold(store, org, Folded::default(), point).await?.snapshot)
}

/// `org` as it was at `point`, folded from the newest snapshot usable for the point (see
/// [`Snapshots::best`]); without one — none written yet, or none that decodes — from the
/// start of the log. Equal to [`org_at`] in every case.
pub async fn org_at_with(
    store: &dyn EventStore,
    snapshots: &Snapshots,
    org: Uuid,
    point: TimePoint,
) -> Result<OrgSnapshot, ProjectionError> {
    let start = snapshots.best(org, point).unwrap_or_default();
    Ok(fold(store, org, start, point).await?.snapshot)
}

/// A fold in progress: the aggregates and the latest `occurred_at` folded into them (a
/// snapshot is usable for a time only if nothing it folded occurred later).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Folded {
    pub snapshot: OrgSnapshot,
    pub max_occurred_at: Option<OffsetDateTime>,
}

/// Folds the org's events after `start.snapshot.position` into `start`, in log order,
/// until `point`: a position past it, or the first event that occurred after its time.
pub async fn fold(
    store: &dyn EventStore,
    org: Uuid,
    start: Folded,
    point: TimePoint,
) -> Result<Folded, ProjectionError> {
    let mut folded = start;
    let mut from = folded.snapshot.position + 1;
    let mut max = READ_EVENTS_FIRST;
    loop {
        if let TimePoint::Position(p) = point
            && from > p
        {
            return Ok(folded);
        }
        let events = store.read_org(org, from, max).await?;
        max = (max * 2).min(READ_EVENTS);
        let Some(last) = events.last().map(|e| e.position) else {
            break;
        };
        for e in &events {
            let past = match point {
                TimePoint::Position(p) => e.position > p,
                TimePoint::At(t) => e.meta.occurred_at > t,
            };
            if past {
                return Ok(folded);
            }
            folded.snapshot.apply(e)?;
            let at = e.meta.occurred_at;
            if folded.max_occurred_at.is_none_or(|m| m < at) {
                folded.max_occurred_at = Some(at);
            }
        }
        from = last + 1;
    }
    Ok(folded)
}
