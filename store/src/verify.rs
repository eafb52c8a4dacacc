//! `verify`: walks a store's segment files and checks every record's CRC, position,
//! stream version and hash chain, without opening (or changing) the store.

use crate::embedded::record::{self, FrameError};
use crate::embedded::segment;
use crate::error::StoreError;
use crate::event::{GENESIS_HASH, Hash, chain_hash};
use std::collections::HashMap;
use std::path::Path;

/// What a successful verification saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    pub events: u64,
    pub streams: u64,
    pub segments: u64,
}

/// Checks the log in `dir` (a store's data directory). Returns the first record that
/// does not hold as [`StoreError::Corrupt`] with its position.
pub fn verify(dir: &Path) -> Result<Report, StoreError> {
    #[derive(serde::Deserialize)]
    struct Keys<'a> {
        #[serde(borrow)]
        stream: std::borrow::Cow<'a, str>,
    }
    let log_dir = dir.join("log");
    if !log_dir.is_dir() {
        return Err(StoreError::Invalid(format!(
            "{} holds no Orgline log",
            dir.display()
        )));
    }
    let firsts = segment::list(&log_dir)?;
    let mut streams: HashMap<String, (u64, Hash)> = HashMap::new();
    let mut expected = 1u64;
    let bad = |position: u64, reason: &str| StoreError::Corrupt {
        position,
        reason: reason.to_owned(),
    };
    for &first in &firsts {
        if first != expected {
            return Err(bad(expected, "a segment starts at the wrong position"));
        }
        let bytes = std::fs::read(segment::segment_path(&log_dir, first))?;
        let mut at = 0;
        let mut batch_open = false;
        while at < bytes.len() {
            let frame = record::decode(&bytes[at..]).map_err(|e| match e {
                FrameError::Short if !batch_open => bad(
                    expected,
                    "record is cut short (torn tail: opening the store cuts it off)",
                ),
                e => bad(expected, e.describe()),
            })?;
            if frame.position != expected {
                return Err(bad(expected, "record holds an unexpected position"));
            }
            let keys: Keys<'_> = serde_json::from_slice(frame.canonical)
                .map_err(|e| bad(expected, &format!("undecodable event: {e}")))?;
            let (next_version, last_hash) = streams
                .get(keys.stream.as_ref())
                .copied()
                .unwrap_or((0, GENESIS_HASH));
            if frame.version != next_version {
                return Err(bad(expected, "stream version out of sequence"));
            }
            if chain_hash(&last_hash, frame.canonical) != frame.hash {
                return Err(bad(
                    expected,
                    "hash does not match the event and its predecessor",
                ));
            }
            match streams.get_mut(keys.stream.as_ref()) {
                Some(s) => *s = (next_version + 1, frame.hash),
                None => {
                    streams.insert(keys.stream.into_owned(), (1, frame.hash));
                }
            }
            batch_open = !frame.ends_batch();
            at += frame.size;
            expected += 1;
        }
        if batch_open {
            return Err(bad(
                expected - 1,
                "the last batch is unfinished (torn tail: opening the store cuts it off)",
            ));
        }
    }
    Ok(Report {
        events: expected - 1,
        streams: streams.len() as u64,
        segments: firsts.len() as u64,
    })
}
