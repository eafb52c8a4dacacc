//! The write side: one task per active stream owns that stream's aggregate state and
//! decides its commands in order. Commands that arrive while an append is in flight are
//! decided together and appended as one batch with the stream's expected version — so a
//! hot stream (one org's credits, consumed by thousands of bots) sees group commit, not
//! a storm of optimistic-concurrency retries. A conflict (another writer on the same
//! store, e.g. a second node) reloads the stream and decides the batch again, a bounded
//! number of times, then answers `CONFLICT`.

use crate::error::{ApiError, ApiResult};
use domain::process::FollowUp;
use domain::{Aggregate, Context, Event};
use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use store::{Direction, EventStore, ExpectedVersion, Metadata, ProposedEvent, StoreError};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

/// Commands decided and appended together at most.
pub const BATCH_COMMANDS_MAX: usize = 512;
/// Attempts of one batch against version conflicts before `CONFLICT`.
pub const CONFLICT_RETRIES: usize = 5;
/// A stream task with nothing to do for this long ends (its state is reloaded on demand).
pub const IDLE: Duration = Duration::from_secs(120);
/// Events read per call while loading a stream.
const LOAD_EVENTS: usize = 4_096;

/// An aggregate the writer can own: what its events cause elsewhere.
pub trait Streamed: Aggregate + Send + Sync + 'static
where
    Self::Command: Clone + Send + Sync + 'static,
{
    /// Follow-ups of `events` (with their ids), decided against `self` as it is after them.
    fn follow_ups(&self, org: Option<Uuid>, events: &[Event], ids: &[Uuid]) -> Vec<FollowUp> {
        let _ = (org, events, ids);
        Vec::new()
    }
}

impl Streamed for domain::organization::Organization {
    fn follow_ups(&self, org: Option<Uuid>, events: &[Event], _: &[Uuid]) -> Vec<FollowUp> {
        org.map(|o| domain::process::after_organization(o, events))
            .unwrap_or_default()
    }
}
impl Streamed for domain::run::Run {
    fn follow_ups(&self, org: Option<Uuid>, events: &[Event], _: &[Uuid]) -> Vec<FollowUp> {
        org.map(|o| domain::process::after_run(o, self, events))
            .unwrap_or_default()
    }
}
impl Streamed for domain::billing::Billing {
    fn follow_ups(&self, org: Option<Uuid>, events: &[Event], ids: &[Uuid]) -> Vec<FollowUp> {
        org.map(|o| domain::process::after_billing(o, self, events, ids))
            .unwrap_or_default()
    }
}
impl Streamed for domain::user::User {}
impl Streamed for domain::bot::Bot {}
impl Streamed for domain::trigger::Trigger {}
impl Streamed for domain::app::App {}
impl Streamed for domain::ledger::Ledger {}

/// What a committed command produced.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub events: Vec<Event>,
    pub ids: Vec<Uuid>,
    /// The position of the command's last event; with no event, the stream's last one
    /// (0 for an empty stream): what a reader waits for either way.
    pub position: u64,
    pub follow_ups: Vec<FollowUp>,
}

struct Job<A: Aggregate> {
    command: A::Command,
    ctx: Context,
    meta: Metadata,
    reply: oneshot::Sender<ApiResult<Outcome>>,
}

/// The writers of every active stream.
pub struct Writer {
    store: Arc<dyn EventStore>,
    streams: Mutex<HashMap<String, Box<dyn Any + Send + Sync>>>,
}

impl Writer {
    pub fn new(store: Arc<dyn EventStore>) -> Arc<Writer> {
        Arc::new(Writer {
            store,
            streams: Mutex::new(HashMap::new()),
        })
    }

    /// Decides `command` against `stream`'s current state and appends its events;
    /// returns once they are durable.
    pub async fn execute<A>(
        self: &Arc<Self>,
        stream: &str,
        command: A::Command,
        ctx: Context,
        meta: Metadata,
    ) -> ApiResult<Outcome>
    where
        A: Streamed,
        A::Command: Clone + Send + Sync + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let mut job = Job::<A> {
            command,
            ctx,
            meta,
            reply,
        };
        // A task that just ended drops its receiver: start a new one and resend.
        for _ in 0..3 {
            let sender = self.sender::<A>(stream)?;
            match sender.send(job) {
                Ok(()) => {
                    return rx
                        .await
                        .map_err(|_| ApiError::internal("stream writer stopped"))?;
                }
                Err(mpsc::error::SendError(j)) => {
                    job = j;
                    if let Ok(mut m) = self.streams.lock() {
                        m.remove(stream);
                    }
                }
            }
        }
        Err(ApiError::internal("stream writer unavailable"))
    }

    fn sender<A>(self: &Arc<Self>, stream: &str) -> ApiResult<mpsc::UnboundedSender<Job<A>>>
    where
        A: Streamed,
        A::Command: Clone + Send + Sync + 'static,
    {
        let mut map = self.streams.lock().map_err(ApiError::internal)?;
        if let Some(s) = map
            .get(stream)
            .and_then(|b| b.downcast_ref::<mpsc::UnboundedSender<Job<A>>>())
            .filter(|s| !s.is_closed())
        {
            return Ok(s.clone());
        }
        let (tx, rx) = mpsc::unbounded_channel::<Job<A>>();
        map.insert(stream.to_owned(), Box::new(tx.clone()));
        let task = StreamTask::<A> {
            stream: stream.to_owned(),
            store: self.store.clone(),
            state: None,
            rx,
        };
        tokio::spawn(task.run());
        Ok(tx)
    }
}

struct Loaded<A> {
    state: A,
    version: Option<u64>,
    position: u64,
}

struct StreamTask<A: Aggregate> {
    stream: String,
    store: Arc<dyn EventStore>,
    state: Option<Loaded<A>>,
    rx: mpsc::UnboundedReceiver<Job<A>>,
}

impl<A> StreamTask<A>
where
    A: Streamed,
    A::Command: Clone + Send + Sync + 'static,
{
    async fn run(mut self) {
        loop {
            let first = match tokio::time::timeout(IDLE, self.rx.recv()).await {
                Ok(Some(job)) => job,
                Ok(None) => return,
                Err(_) => {
                    // Idle: refuse new jobs (their senders start a new task), finish the
                    // ones that slipped in, end. The state is reloaded next time.
                    self.rx.close();
                    let mut late = Vec::new();
                    while let Ok(j) = self.rx.try_recv() {
                        late.push(j);
                    }
                    if !late.is_empty() {
                        self.decide_and_append(late).await;
                    }
                    return;
                }
            };
            let mut jobs = vec![first];
            while jobs.len() < BATCH_COMMANDS_MAX {
                match self.rx.try_recv() {
                    Ok(j) => jobs.push(j),
                    Err(_) => break,
                }
            }
            self.decide_and_append(jobs).await;
        }
    }

    async fn load(&mut self) -> Result<(), StoreError> {
        let mut loaded = self.state.take().unwrap_or(Loaded {
            state: A::default(),
            version: None,
            position: 0,
        });
        loop {
            let from = loaded.version.map_or(0, |v| v + 1);
            let events = self
                .store
                .read_stream(&self.stream, from, Direction::Forwards, LOAD_EVENTS)
                .await?;
            let n = events.len();
            for e in events {
                if let Ok(ev) = domain::Event::decode(&e.event_type, e.schema, e.data.get()) {
                    loaded.state.apply(&ev);
                }
                loaded.version = Some(e.version);
                loaded.position = e.position;
            }
            if n < LOAD_EVENTS {
                break;
            }
        }
        self.state = Some(loaded);
        Ok(())
    }

    async fn decide_and_append(&mut self, jobs: Vec<Job<A>>) {
        let mut jobs: Vec<Option<Job<A>>> = jobs.into_iter().map(Some).collect();
        for attempt in 0..CONFLICT_RETRIES {
            if self.state.is_none()
                && let Err(e) = self.load().await
            {
                let err = ApiError::from(e);
                for j in jobs.iter_mut().filter_map(Option::take) {
                    let _ = j.reply.send(Err(err.clone()));
                }
                return;
            }
            // The state is taken out while the batch is decided and appended: decisions
            // apply in place (no copy of a large state such as a ledger's consumed keys),
            // and a failed append leaves no state behind, so the next batch reloads.
            let Some(loaded) = self.state.take() else {
                return;
            };
            let (loaded_version, loaded_position) = (loaded.version, loaded.position);
            // Decide every job against the state as the jobs before it left it.
            let mut working = loaded.state;
            let mut proposed: Vec<ProposedEvent> = Vec::new();
            // Per job: the index range of its events in `proposed`, its events, follow-ups.
            let mut decided: Vec<(usize, usize, Vec<Event>, Vec<FollowUp>)> = Vec::new();
            // Jobs refused against a state that holds this batch's earlier events: their
            // answers wait for the append, since a refusal may rest on what an earlier job
            // of the batch decided (say, a subscription already started). Their readers
            // then see those events, and a failed append decides them again.
            let mut refused: Vec<(usize, ApiError)> = Vec::new();
            for (i, slot) in jobs.iter_mut().enumerate() {
                let Some(job) = slot.as_ref() else { continue };
                match working.decide(&job.command, &job.ctx) {
                    Ok(events) => {
                        for e in &events {
                            working.apply(e);
                        }
                        let start = proposed.len();
                        for e in &events {
                            let mut p =
                                ProposedEvent::new(e.event_type(), e.data(), job.meta.clone());
                            p.schema = e.schema();
                            proposed.push(p);
                        }
                        let ids: Vec<Uuid> = proposed[start..].iter().map(|p| p.id).collect();
                        let follow = working.follow_ups(job.meta.org, &events, &ids);
                        decided.push((start, proposed.len(), events, follow));
                    }
                    Err(e) if proposed.is_empty() => {
                        // Refused against the durable state: answered now.
                        if let Some(j) = slot.take() {
                            let _ = j.reply.send(Err(e.into()));
                        }
                    }
                    Err(e) => refused.push((i, e.into())),
                }
            }
            let mut held: Vec<(Job<A>, ApiError)> = Vec::new();
            for (i, e) in refused {
                if let Some(j) = jobs[i].take() {
                    held.push((j, e));
                }
            }
            let live: Vec<Job<A>> = jobs.iter_mut().filter_map(Option::take).collect();
            if proposed.is_empty() {
                self.state = Some(Loaded {
                    state: working,
                    version: loaded_version,
                    position: loaded_position,
                });
                for (job, (_, _, events, follow)) in live.into_iter().zip(decided) {
                    let _ = job.reply.send(Ok(Outcome {
                        events,
                        ids: vec![],
                        position: loaded_position,
                        follow_ups: follow,
                    }));
                }
                return;
            }
            let expected = match loaded_version {
                Some(v) => ExpectedVersion::Exact(v),
                None => ExpectedVersion::NoStream,
            };
            let ids: Vec<Uuid> = proposed.iter().map(|p| p.id).collect();
            match self.store.append(&self.stream, expected, proposed).await {
                Ok(r) => {
                    self.state = Some(Loaded {
                        state: working,
                        version: Some(r.version),
                        position: r.position,
                    });
                    for (job, (start, end, events, follow)) in live.into_iter().zip(decided) {
                        let position = if end > start {
                            r.first_position + (end as u64 - 1)
                        } else {
                            r.first_position.saturating_sub(1).max(loaded_position)
                        };
                        let _ = job.reply.send(Ok(Outcome {
                            events,
                            ids: ids[start..end].to_vec(),
                            position,
                            follow_ups: follow,
                        }));
                    }
                    for (job, e) in held {
                        let _ = job.reply.send(Err(e));
                    }
                    return;
                }
                Err(StoreError::Conflict { .. }) if attempt + 1 < CONFLICT_RETRIES => {
                    // Someone else wrote the stream: catch up and decide again (the held
                    // refusals too: what they rested on was not appended).
                    jobs = live
                        .into_iter()
                        .chain(held.into_iter().map(|(j, _)| j))
                        .map(Some)
                        .collect();
                    if self.load().await.is_err() {
                        self.state = None;
                    }
                }
                Err(e) => {
                    self.state = None;
                    let err = ApiError::from(e);
                    for job in live.into_iter().chain(held.into_iter().map(|(j, _)| j)) {
                        let _ = job.reply.send(Err(err.clone()));
                    }
                    return;
                }
            }
        }
    }
}
