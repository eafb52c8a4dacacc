//! Orgline's projections: the log folded into read models.
//!
//! A [`Projection`] has a stable name and a version and applies events, one at a time,
//! through a [`Tx`]: a view of its own sled tree with the batch's pending writes. The
//! [`runner`] catches up from the checkpoint, then follows the log live; it commits each
//! batch of events and the checkpoint that covers them in **one atomic sled batch**, so
//! a crash at any moment leaves state and checkpoint in step (effectively exactly-once).
//! A changed version rebuilds blue/green: the new version fills a fresh tree while the
//! old one keeps serving, then the two swap.
//!
//! # Layout
//! - [`Projection`], [`Tx`], [`ProjectionError`]: the contract.
//! - [`runner`]: checkpoints, catch-up then live, status, `wait_for`, rebuilds.
//! - [`feed`]: one read of the log shared by the runners that catch up together.
//! - [`postings`]: posting lists of positions, stored a block at a time.
//! - [`accounts`]: users by id and email, memberships and roles per organization.
//! - [`audit`]: the audit log projection, its query strings and its pages.
//! - [`console`]: each organization's aggregates as the domain folds them.
//! - [`credits`]: balances, grants, usage per day and bot, alerts, limits.
//! - [`runs`]: run history by bot, status, trigger and time.
//! - [`time_travel`]: an organization as it was at a position or a time.
//! - [`snapshots`]: the time-travel snapshots and the task that writes them.

pub mod accounts;
pub mod audit;
pub mod console;
pub mod credits;
pub mod feed;
pub mod postings;
pub mod runner;
pub mod runs;
pub mod snapshots;
pub mod time_travel;
mod tx;

pub use runner::{ProjectionHandle, ProjectionState, ProjectionStatus};
pub use tx::Tx;

use store::RecordedEvent;

/// A read model folded from the log.
pub trait Projection: Send + 'static {
    /// Stable name: the trees of the projection are named after it.
    const NAME: &'static str;
    /// Bumping it rebuilds the projection from the start of the log.
    const VERSION: u32;

    /// Folds one event into the state through `tx`. Must be deterministic: the same
    /// events give the same state, however they are batched.
    fn apply(&mut self, event: &RecordedEvent, tx: &mut Tx<'_>) -> Result<(), ProjectionError>;

    /// Called once per batch, after its last `apply` and before the commit: a
    /// projection that gathers writes in memory (posting lists, counters) writes them
    /// here, so a key touched by many events of a batch is written once.
    fn before_commit(&mut self, tx: &mut Tx<'_>) -> Result<(), ProjectionError> {
        let _ = tx;
        Ok(())
    }
}

/// Why a projection stopped. The runner marks it `failed` with the error; it serves its
/// last committed state and a rebuild (or a fix and restart) resumes it.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    /// The event could not be decoded into the domain's types. GraphQL: `INTERNAL`.
    #[error("event at {position} cannot be read: {reason}")]
    Decode { position: u64, reason: String },
    /// The projection's state is not what the event expects (a bug). GraphQL: `INTERNAL`.
    #[error("projection state broken at {position}: {reason}")]
    Invariant { position: u64, reason: String },
    /// sled failed. GraphQL: `INTERNAL`.
    #[error("storage: {0}")]
    Storage(String),
    /// The log failed. GraphQL: `INTERNAL`.
    #[error("log: {0}")]
    Store(#[from] store::StoreError),
    /// `wait_for` gave up. GraphQL: `INTERNAL` (the write happened; the read model lags).
    #[error("projection {name} did not reach position {position} in time")]
    Timeout { name: &'static str, position: u64 },
}

impl From<sled::Error> for ProjectionError {
    fn from(e: sled::Error) -> Self {
        ProjectionError::Storage(e.to_string())
    }
}
