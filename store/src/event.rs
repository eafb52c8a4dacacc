//! The envelope: what a writer proposes and what the log records.

use crate::error::StoreError;
use crate::limits::{EVENT_BYTES_MAX, EVENT_TYPE_BYTES_MAX, STREAM_NAME_BYTES_MAX};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::fmt;
use time::OffsetDateTime;
use uuid::Uuid;

/// SHA-256 of the previous event's hash in the same stream and this event's canonical
/// bytes. The first event of a stream chains from [`GENESIS_HASH`].
pub type Hash = [u8; 32];

/// The "previous hash" of a stream's first event.
pub const GENESIS_HASH: Hash = [0; 32];

/// Who did it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActorKind {
    User,
    Bot,
    System,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub kind: ActorKind,
    pub id: String,
}

impl Actor {
    pub fn user(id: Uuid) -> Actor {
        Actor {
            kind: ActorKind::User,
            id: id.to_string(),
        }
    }
    pub fn bot(id: Uuid) -> Actor {
        Actor {
            kind: ActorKind::Bot,
            id: id.to_string(),
        }
    }
    pub fn system() -> Actor {
        Actor {
            kind: ActorKind::System,
            id: "system".to_owned(),
        }
    }
}

/// The `meta` of every event: actor, org, correlation, causation and when it occurred.
/// `org` is what the org index (`read_org`) is built from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    pub actor: Actor,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation: Option<Uuid>,
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
}

impl Metadata {
    pub fn new(actor: Actor, org: Option<Uuid>, occurred_at: OffsetDateTime) -> Metadata {
        Metadata {
            actor,
            org,
            correlation: None,
            causation: None,
            occurred_at,
        }
    }
}

/// An event a writer wants appended. The writer chooses `id`: appending the same ids
/// again is idempotent.
#[derive(Clone, Debug, PartialEq)]
pub struct ProposedEvent {
    pub id: Uuid,
    pub event_type: String,
    pub schema: u32,
    pub data: serde_json::Value,
    pub meta: Metadata,
}

impl ProposedEvent {
    pub fn new(
        event_type: impl Into<String>,
        data: serde_json::Value,
        meta: Metadata,
    ) -> ProposedEvent {
        ProposedEvent {
            id: Uuid::now_v7(),
            event_type: event_type.into(),
            schema: 1,
            data,
            meta,
        }
    }
}

/// The part of an event that its hash covers, serialized as JSON in this field order.
/// `data` objects serialize with sorted keys, so the bytes are a function of the event.
#[derive(Serialize)]
struct CanonicalOut<'a> {
    stream: &'a str,
    id: &'a Uuid,
    #[serde(rename = "type")]
    event_type: &'a str,
    schema: u32,
    meta: &'a Metadata,
    data: &'a serde_json::Value,
}

#[derive(Deserialize)]
struct CanonicalIn {
    stream: String,
    id: Uuid,
    #[serde(rename = "type")]
    event_type: String,
    schema: u32,
    meta: Metadata,
    data: Box<RawValue>,
}

/// An event ready for the writer: its canonical bytes, made in the caller's task so the
/// single writer thread only hashes and copies.
#[derive(Debug)]
pub(crate) struct EncodedEvent {
    pub(crate) id: Uuid,
    pub(crate) org: Option<Uuid>,
    pub(crate) canonical: Vec<u8>,
}

impl EncodedEvent {
    pub(crate) fn encode(stream: &str, event: &ProposedEvent) -> Result<EncodedEvent, StoreError> {
        validate_event_type(&event.event_type)?;
        if !event.data.is_object() {
            return Err(StoreError::Invalid(format!(
                "event {}: data must be a JSON object",
                event.id
            )));
        }
        let canonical = serde_json::to_vec(&CanonicalOut {
            stream,
            id: &event.id,
            event_type: &event.event_type,
            schema: event.schema,
            meta: &event.meta,
            data: &event.data,
        })
        .map_err(|e| StoreError::Invalid(format!("event {}: {e}", event.id)))?;
        if canonical.len() > EVENT_BYTES_MAX {
            return Err(StoreError::TooLarge {
                what: "event",
                size: canonical.len(),
                limit: EVENT_BYTES_MAX,
            });
        }
        Ok(EncodedEvent {
            id: event.id,
            org: event.meta.org,
            canonical,
        })
    }
}

/// An event as the log recorded it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RecordedEvent {
    /// Global, gapless, 1-based order in the log.
    pub position: u64,
    pub stream: String,
    /// 0-based index within the stream.
    pub version: u64,
    pub id: Uuid,
    #[serde(rename = "type")]
    pub event_type: String,
    /// Payload schema version; upcasters lift old payloads on read.
    pub schema: u32,
    /// The payload, kept as raw JSON so a reader deserializes it once, straight into
    /// its own type.
    pub data: Box<RawValue>,
    pub meta: Metadata,
    #[serde(with = "hex::serde")]
    pub hash: Hash,
}

impl PartialEq for RecordedEvent {
    fn eq(&self, other: &Self) -> bool {
        self.position == other.position
            && self.stream == other.stream
            && self.version == other.version
            && self.id == other.id
            && self.event_type == other.event_type
            && self.schema == other.schema
            && self.data.get() == other.data.get()
            && self.meta == other.meta
            && self.hash == other.hash
    }
}

impl RecordedEvent {
    /// Decodes an event from the header fields and canonical bytes of a record.
    pub(crate) fn decode(
        position: u64,
        version: u64,
        hash: Hash,
        canonical: &[u8],
    ) -> Result<RecordedEvent, StoreError> {
        let c: CanonicalIn =
            serde_json::from_slice(canonical).map_err(|e| StoreError::Corrupt {
                position,
                reason: format!("undecodable event: {e}"),
            })?;
        Ok(RecordedEvent {
            position,
            stream: c.stream,
            version,
            id: c.id,
            event_type: c.event_type,
            schema: c.schema,
            data: c.data,
            meta: c.meta,
            hash,
        })
    }

    /// The payload deserialized into the reader's type.
    pub fn data_as<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.data.get())
    }

    /// The payload as a JSON value.
    pub fn data_value(&self) -> serde_json::Value {
        // A RawValue is valid JSON by construction, so this cannot fail.
        serde_json::from_str(self.data.get()).unwrap_or(serde_json::Value::Null)
    }

    pub fn org(&self) -> Option<Uuid> {
        self.meta.org
    }

    pub fn hash_hex(&self) -> String {
        hex::encode(self.hash)
    }
}

/// The hash chain step: `SHA-256(previous || canonical)`.
pub fn chain_hash(previous: &Hash, canonical: &[u8]) -> Hash {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(previous);
    h.update(canonical);
    h.finalize().into()
}

/// What the writer expects the stream to be at, checked atomically with the append.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExpectedVersion {
    /// No check.
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream must have at least one event.
    StreamExists,
    /// The stream's last event must have exactly this version.
    Exact(u64),
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any version"),
            ExpectedVersion::NoStream => f.write_str("no stream"),
            ExpectedVersion::StreamExists => f.write_str("an existing stream"),
            ExpectedVersion::Exact(v) => write!(f, "version {v}"),
        }
    }
}

impl ExpectedVersion {
    /// Whether a stream whose last version is `current` (`None`: no stream) satisfies
    /// this expectation.
    pub fn admits(self, current: Option<u64>) -> bool {
        match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => current.is_none(),
            ExpectedVersion::StreamExists => current.is_some(),
            ExpectedVersion::Exact(v) => current == Some(v),
        }
    }
}

/// What an acknowledged append wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendResult {
    /// Position of the append's first event.
    pub first_position: u64,
    /// Position of the append's last event: what a reader waits for.
    pub position: u64,
    /// Stream version of the append's last event: the next `Exact` expectation.
    pub version: u64,
}

/// Which way `read_stream` walks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Forwards,
    Backwards,
}

/// Stream names are `<category>-<id>`: ASCII letters, digits and `-_.:`, at most
/// [`STREAM_NAME_BYTES_MAX`] bytes.
pub fn validate_stream(stream: &str) -> Result<(), StoreError> {
    if stream.is_empty() || stream.len() > STREAM_NAME_BYTES_MAX {
        return Err(StoreError::Invalid(format!(
            "stream name must be 1 to {STREAM_NAME_BYTES_MAX} bytes"
        )));
    }
    if !stream
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
    {
        return Err(StoreError::Invalid(format!(
            "stream name {stream:?} may hold only ASCII letters, digits and -_.:"
        )));
    }
    Ok(())
}

fn validate_event_type(t: &str) -> Result<(), StoreError> {
    if t.is_empty()
        || t.len() > EVENT_TYPE_BYTES_MAX
        || !t
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(StoreError::Invalid(format!(
            "event type {t:?} must be 1 to {EVENT_TYPE_BYTES_MAX} ASCII letters, digits and ._-"
        )));
    }
    Ok(())
}
