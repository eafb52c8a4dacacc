//! The record framing of segment files.
//!
//! A frame is `[len u32 LE][crc32c u32 LE][body: len bytes]`, the CRC taken over the body.
//! A body is
//!
//! ```text
//! flags    u8       bit 0: this record ends a group-commit batch;
//!                   bit 1: this record starts an append (rebuilds the event-id index)
//! position u64 LE   global position
//! version  u64 LE   version within its stream
//! hash     [u8; 32] SHA-256(previous hash in the stream || canonical)
//! canonical         the event's canonical JSON: stream, id, type, schema, meta, data
//! ```
//!
//! Only a batch whose last record carries [`FLAG_BATCH_END`] is committed: at open a
//! log is cut back to the last batch end, so no batch is ever half-visible.

use crate::error::StoreError;
use crate::event::{Hash, RecordedEvent};
use crate::limits::EVENT_BYTES_MAX;

pub(crate) const FRAME_HEADER_BYTES: usize = 8;
pub(crate) const BODY_HEADER_BYTES: usize = 1 + 8 + 8 + 32;
/// A body can never be longer than this; a larger `len` is a broken frame.
pub(crate) const BODY_BYTES_MAX: usize = BODY_HEADER_BYTES + EVENT_BYTES_MAX;
pub(crate) const FLAG_BATCH_END: u8 = 1;
pub(crate) const FLAG_APPEND_START: u8 = 2;

/// Appends one framed record to `buf`; returns the offset of its flags byte in `buf`
/// (so the writer can mark the batch's last record).
pub(crate) fn encode(
    buf: &mut Vec<u8>,
    flags: u8,
    position: u64,
    version: u64,
    hash: &Hash,
    canonical: &[u8],
) -> usize {
    let body_len = BODY_HEADER_BYTES + canonical.len();
    let start = buf.len();
    buf.reserve(FRAME_HEADER_BYTES + body_len);
    buf.extend_from_slice(&(body_len as u32).to_le_bytes());
    buf.extend_from_slice(&[0; 4]);
    let body_start = buf.len();
    buf.push(flags);
    buf.extend_from_slice(&position.to_le_bytes());
    buf.extend_from_slice(&version.to_le_bytes());
    buf.extend_from_slice(hash);
    buf.extend_from_slice(canonical);
    let crc = crc32c::crc32c(&buf[body_start..]);
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    body_start
}

/// Sets the batch-end flag on the record whose body starts at `body_start` in `buf` and
/// fixes its CRC.
pub(crate) fn mark_batch_end(buf: &mut [u8], body_start: usize) {
    buf[body_start] |= FLAG_BATCH_END;
    let len = read_u32(&buf[body_start - 8..]) as usize;
    let crc = crc32c::crc32c(&buf[body_start..body_start + len]);
    buf[body_start - 4..body_start].copy_from_slice(&crc.to_le_bytes());
}

/// A frame parsed from bytes whose CRC holds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Frame<'a> {
    pub(crate) flags: u8,
    pub(crate) position: u64,
    pub(crate) version: u64,
    pub(crate) hash: Hash,
    pub(crate) canonical: &'a [u8],
    /// Bytes the frame takes, header included.
    pub(crate) size: usize,
}

impl Frame<'_> {
    pub(crate) fn ends_batch(&self) -> bool {
        self.flags & FLAG_BATCH_END != 0
    }

    pub(crate) fn starts_append(&self) -> bool {
        self.flags & FLAG_APPEND_START != 0
    }

    pub(crate) fn event(&self) -> Result<RecordedEvent, StoreError> {
        RecordedEvent::decode(self.position, self.version, self.hash, self.canonical)
    }
}

/// Why bytes are not a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrameError {
    /// Fewer bytes than the frame says it has: a torn write, or a read that stopped short.
    Short,
    /// The length is impossible.
    BadLength,
    /// The CRC does not hold.
    BadCrc,
}

impl FrameError {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            FrameError::Short => "record is cut short",
            FrameError::BadLength => "record length is impossible",
            FrameError::BadCrc => "record CRC does not match its bytes",
        }
    }
}

/// The body length a frame at the start of `bytes` declares, if its header is there.
pub(crate) fn declared_len(bytes: &[u8]) -> Option<usize> {
    (bytes.len() >= FRAME_HEADER_BYTES).then(|| read_u32(bytes) as usize)
}

/// Parses the frame at the start of `bytes`.
pub(crate) fn decode(bytes: &[u8]) -> Result<Frame<'_>, FrameError> {
    let len = declared_len(bytes).ok_or(FrameError::Short)?;
    if !(BODY_HEADER_BYTES..=BODY_BYTES_MAX).contains(&len) {
        return Err(FrameError::BadLength);
    }
    let size = FRAME_HEADER_BYTES + len;
    if bytes.len() < size {
        return Err(FrameError::Short);
    }
    let crc = read_u32(&bytes[4..]);
    let body = &bytes[FRAME_HEADER_BYTES..size];
    if crc32c::crc32c(body) != crc {
        return Err(FrameError::BadCrc);
    }
    let mut hash = [0; 32];
    hash.copy_from_slice(&body[17..49]);
    Ok(Frame {
        flags: body[0],
        position: read_u64(&body[1..]),
        version: read_u64(&body[9..]),
        hash,
        canonical: &body[BODY_HEADER_BYTES..],
        size,
    })
}

pub(crate) fn read_u32(b: &[u8]) -> u32 {
    let mut a = [0; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a)
}

pub(crate) fn read_u64(b: &[u8]) -> u64 {
    let mut a = [0; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_round_trips_and_a_flipped_bit_is_caught() {
        let mut buf = Vec::new();
        let body = encode(&mut buf, FLAG_APPEND_START, 7, 3, &[9; 32], b"{\"a\":1}");
        mark_batch_end(&mut buf, body);
        let f = decode(&buf).expect("valid frame");
        assert_eq!(
            (f.position, f.version, f.hash, f.canonical),
            (7, 3, [9; 32], &b"{\"a\":1}"[..])
        );
        assert!(f.ends_batch() && f.starts_append());
        assert_eq!(f.size, buf.len());
        let mut bad = buf.clone();
        bad[20] ^= 1;
        assert_eq!(decode(&bad).err(), Some(FrameError::BadCrc));
        assert_eq!(decode(&buf[..buf.len() - 1]).err(), Some(FrameError::Short));
    }
}
