//! Orgline's event log.
//!
//! Every organization action is an event appended to this log; projections follow it,
//! auditors verify it, analysts replay it. This crate knows nothing of the domain's
//! event types: it stores envelopes ([`RecordedEvent`]) with JSON payloads.
//!
//! # Layout
//! - [`EventStore`]: the trait every backend implements (and [`conformance`] tests).
//! - [`event`]: the envelope — proposed and recorded events, expected versions, the
//!   hash chain.
//! - [`embedded`]: the default backend, segment files plus sled indexes, with group
//!   commit and crash recovery.
//! - [`verify`]: walks a store's files and checks every CRC and hash.
//! - [`limits`]: every limit, with its reason.
//! - [`blocking`]: blocking reads inside async code, off the async workers.
//! - [`StoreError`]: the one error type.

pub mod blocking;
pub mod conformance;
pub mod embedded;
mod error;
pub mod event;
pub mod limits;
pub mod verify;

pub use embedded::{EmbeddedStore, Options};
pub use error::StoreError;
pub use event::{
    Actor, ActorKind, AppendResult, Direction, ExpectedVersion, Hash, Metadata, ProposedEvent,
    RecordedEvent,
};

use futures::stream::BoxStream;
use uuid::Uuid;

/// A subscription: every event from a position on, in order, first from the log
/// (catch-up) then as it is appended (live), with no gap and no duplicate.
pub type EventStream = BoxStream<'static, Result<RecordedEvent, StoreError>>;

/// The event log. Positions are global, gapless and 1-based; versions are 0-based per
/// stream. Every read returns only acknowledged (durable) events.
#[async_trait::async_trait]
pub trait EventStore: Send + Sync {
    /// Appends `events` to `stream` atomically if the stream is at `expected`. Returns
    /// only once the events are durable. Appending an append whose first event id was
    /// already appended (same stream, same ids) returns the original result.
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<ProposedEvent>,
    ) -> Result<AppendResult, StoreError>;

    /// Up to `max` events of `stream`: forwards from version `from`, or backwards from
    /// it (`u64::MAX` for the end). An unknown stream reads as empty.
    async fn read_stream(
        &self,
        stream: &str,
        from: u64,
        direction: Direction,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Up to `max` events of the whole log from position `from` on.
    async fn read_all(&self, from: u64, max: usize) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Up to `max` events tagged with `org` (in `meta.org`) from position `from` on.
    async fn read_org(
        &self,
        org: Uuid,
        from: u64,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Every event from position `from` on: catch-up, then live.
    fn subscribe_all(&self, from: u64) -> EventStream;

    /// The last acknowledged position (0 for an empty log).
    async fn head(&self) -> Result<u64, StoreError>;
}
