//! The store's one error enum.

use crate::event::ExpectedVersion;
use uuid::Uuid;

/// Everything an [`EventStore`](crate::EventStore) operation can fail with.
///
/// Each variant says how a caller handles it and which GraphQL `extensions.code` it
/// becomes when it reaches the API.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The stream is not at the version the append expected. The caller reloads the
    /// stream, decides again and retries a bounded number of times. GraphQL: `CONFLICT`.
    #[error("stream {stream}: expected {expected}, but it is at {}", display_version(*.actual))]
    Conflict {
        stream: String,
        expected: ExpectedVersion,
        /// The stream's current last version; `None` when the stream does not exist.
        actual: Option<u64>,
    },
    /// An event, an append or a read is over one of the limits in [`crate::limits`].
    /// The caller splits the work or refuses the input. GraphQL: `LIMIT_EXCEEDED`.
    #[error("{what} is {size}, over the limit of {limit}")]
    TooLarge {
        what: &'static str,
        size: usize,
        limit: usize,
    },
    /// The request itself is malformed (bad stream name, empty append, duplicate id
    /// inside one append). Nothing was written. GraphQL: `BAD_USER_INPUT`.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The first event id of this append was already appended, but as part of a
    /// different append (another stream or other events). Idempotent retries must resend
    /// the same events to the same stream. GraphQL: `CONFLICT`.
    #[error("event id {id} was already appended with different content")]
    IdReused { id: Uuid },
    /// A record in the log fails its CRC or hash check, or is not where the index says.
    /// The data needs an operator: run `orgline verify`. GraphQL: `INTERNAL`.
    #[error("log corrupt at position {position}: {reason}")]
    Corrupt { position: u64, reason: String },
    /// The operating system refused a read or write. When it hits the writer the store
    /// stops accepting appends (see [`StoreError::Poisoned`]). GraphQL: `INTERNAL`.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The derived index (sled) failed. GraphQL: `INTERNAL`.
    #[error("index error: {0}")]
    Index(String),
    /// A write or sync of the log failed earlier: what reached the disk is unknown, so
    /// the store refuses appends until it is reopened (reopening recovers the log).
    /// GraphQL: `INTERNAL`.
    #[error("the log failed to write earlier and accepts no appends until it is reopened")]
    Poisoned,
    /// The store was closed. GraphQL: `INTERNAL`.
    #[error("the store is closed")]
    Closed,
}

fn display_version(v: Option<u64>) -> String {
    match v {
        Some(v) => format!("version {v}"),
        None => "no stream".to_owned(),
    }
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Index(e.to_string())
    }
}

impl StoreError {
    /// A copy for the second and later waiters of a failed group commit
    /// (`std::io::Error` is not `Clone`).
    pub(crate) fn duplicate(&self) -> StoreError {
        match self {
            StoreError::Io(e) => StoreError::Io(std::io::Error::new(e.kind(), e.to_string())),
            StoreError::Conflict {
                stream,
                expected,
                actual,
            } => StoreError::Conflict {
                stream: stream.clone(),
                expected: *expected,
                actual: *actual,
            },
            StoreError::TooLarge { what, size, limit } => StoreError::TooLarge {
                what,
                size: *size,
                limit: *limit,
            },
            StoreError::Invalid(s) => StoreError::Invalid(s.clone()),
            StoreError::IdReused { id } => StoreError::IdReused { id: *id },
            StoreError::Corrupt { position, reason } => StoreError::Corrupt {
                position: *position,
                reason: reason.clone(),
            },
            StoreError::Index(s) => StoreError::Index(s.clone()),
            StoreError::Poisoned => StoreError::Poisoned,
            StoreError::Closed => StoreError::Closed,
        }
    }
}
