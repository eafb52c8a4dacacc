//! Segment files: the log itself.
//!
//! `log/<first position, 20 digits>.seg` holds framed records (see [`super::record`]) in
//! position order. The last segment is *active*: the writer appends to it and its
//! record offsets live in memory. A sealed segment has a dense offset file beside it,
//! `<first>.idx`, one `u32` per record, written and synced once at sealing. Both are
//! derived from the `.seg` file and rebuilt from it when missing or short.

use super::record::{self, FRAME_HEADER_BYTES, Frame, FrameError};
use crate::error::StoreError;
use crate::event::RecordedEvent;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// How much a sequential read fetches at a time.
const READ_CHUNK_BYTES: usize = 256 << 10;
/// A first read of a single record; most events fit, larger ones take a second read.
const READ_ONE_BYTES: usize = 2 << 10;

pub(crate) struct Segment {
    pub(crate) first: u64,
    pub(crate) path: PathBuf,
    pub(crate) file: File,
    pub(crate) offsets: Offsets,
}

pub(crate) enum Offsets {
    /// The active segment's offsets, appended by the writer after each sync.
    Active(RwLock<Vec<u32>>),
    /// A sealed segment's offset file and its record count.
    Sealed { idx: File, count: u64 },
}

impl Segment {
    pub(crate) fn count(&self) -> u64 {
        match &self.offsets {
            Offsets::Active(o) => o.read().map(|o| o.len() as u64).unwrap_or(0),
            Offsets::Sealed { count, .. } => *count,
        }
    }

    fn offset_of(&self, position: u64) -> Result<Option<u64>, StoreError> {
        let Some(i) = position.checked_sub(self.first) else {
            return Ok(None);
        };
        match &self.offsets {
            Offsets::Active(o) => Ok(o
                .read()
                .map_err(|_| poisoned_lock())?
                .get(i as usize)
                .map(|&o| o as u64)),
            Offsets::Sealed { idx, count } => {
                if i >= *count {
                    return Ok(None);
                }
                let mut b = [0; 4];
                idx.read_exact_at(&mut b, i * 4)?;
                Ok(Some(u32::from_le_bytes(b) as u64))
            }
        }
    }

    /// Reads the one record at `position`.
    pub(crate) fn read_one(&self, position: u64) -> Result<Option<RecordedEvent>, StoreError> {
        let Some(offset) = self.offset_of(position)? else {
            return Ok(None);
        };
        let mut buf = vec![0; READ_ONE_BYTES];
        let n = read_at_most(&self.file, &mut buf, offset)?;
        buf.truncate(n);
        if let Some(len) = record::declared_len(&buf) {
            let size = FRAME_HEADER_BYTES + len;
            if size > buf.len() && len <= record::BODY_BYTES_MAX {
                buf.resize(size, 0);
                let n = read_at_most(&self.file, &mut buf, offset)?;
                buf.truncate(n);
            }
        }
        let frame = record::decode(&buf).map_err(|e| corrupt(position, e.describe()))?;
        if frame.position != position {
            return Err(corrupt(position, "offset index points at another record"));
        }
        frame.event().map(Some)
    }

    /// Calls `f` with each record from `position` through `last` (or this segment's
    /// end), in order, until it returns `false`.
    pub(crate) fn for_each_frame(
        &self,
        position: u64,
        last: u64,
        mut f: impl FnMut(&Frame<'_>) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        let last = last.min((self.first + self.count()).saturating_sub(1));
        let Some(mut offset) = self.offset_of(position)? else {
            return Ok(());
        };
        let mut next = position;
        let mut buf = vec![0; READ_CHUNK_BYTES];
        while next <= last {
            let n = read_at_most(&self.file, &mut buf, offset)?;
            let mut at = 0;
            while next <= last {
                let frame = match record::decode(&buf[at..n]) {
                    Ok(frame) => frame,
                    Err(FrameError::Short) if at > 0 => break,
                    Err(FrameError::Short) => {
                        // One record larger than the buffer: grow it and read again.
                        match record::declared_len(&buf[..n]) {
                            Some(len)
                                if len <= record::BODY_BYTES_MAX
                                    && n < FRAME_HEADER_BYTES + len
                                    && n == buf.len() =>
                            {
                                buf.resize(FRAME_HEADER_BYTES + len, 0);
                                break;
                            }
                            _ => return Err(corrupt(next, FrameError::Short.describe())),
                        }
                    }
                    Err(e) => return Err(corrupt(next, e.describe())),
                };
                if frame.position != next {
                    return Err(corrupt(next, "records out of order"));
                }
                at += frame.size;
                next += 1;
                if !f(&frame)? {
                    return Ok(());
                }
            }
            offset += at as u64;
        }
        Ok(())
    }
}

fn read_at_most(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

pub(crate) fn corrupt(position: u64, reason: &str) -> StoreError {
    StoreError::Corrupt {
        position,
        reason: reason.to_owned(),
    }
}

pub(crate) fn poisoned_lock() -> StoreError {
    StoreError::Index("a lock was poisoned by a panic".to_owned())
}

/// How a scan of a segment's bytes ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ScanEnd {
    /// Every byte belongs to a committed batch.
    Clean,
    /// The bytes from `at` on are an unfinished batch (a write cut by a crash): they
    /// were never acknowledged and are cut off.
    TornTail { at: usize },
    /// A record in the middle is broken while a committed batch follows it: not a torn
    /// write but damage, which needs an operator.
    Corrupt { position: u64, reason: &'static str },
}

#[derive(Debug)]
pub(crate) struct Scan {
    /// Offsets of the committed records.
    pub(crate) offsets: Vec<u32>,
    /// Bytes of committed batches.
    pub(crate) committed_len: usize,
    pub(crate) end: ScanEnd,
}

/// Walks the frames of a segment whose first record is at position `first`.
pub(crate) fn scan(bytes: &[u8], first: u64) -> Scan {
    let mut offsets = Vec::new();
    let mut committed = (0usize, 0usize);
    let mut at = 0;
    let end = loop {
        if at == bytes.len() {
            break if committed.0 == at {
                ScanEnd::Clean
            } else {
                ScanEnd::TornTail { at: committed.0 }
            };
        }
        let expected = first + offsets.len() as u64;
        match record::decode(&bytes[at..]) {
            Ok(frame) if frame.position != expected => {
                break ScanEnd::Corrupt {
                    position: expected,
                    reason: "record holds an unexpected position",
                };
            }
            Ok(frame) => {
                offsets.push(at as u32);
                at += frame.size;
                if frame.ends_batch() {
                    committed = (at, offsets.len());
                }
            }
            Err(e) => {
                break if committed_batch_follows(bytes, at + 1, expected) {
                    ScanEnd::Corrupt {
                        position: expected,
                        reason: e.describe(),
                    }
                } else {
                    ScanEnd::TornTail { at: committed.0 }
                };
            }
        }
    };
    offsets.truncate(committed.1);
    Scan {
        offsets,
        committed_len: committed.0,
        end,
    }
}

/// Whether a valid batch-ending record for a position after `expected` starts anywhere
/// at or after `from`. The writer starts a batch only after the previous one is synced,
/// so only the last batch can be torn: a committed batch after a broken record proves
/// the broken record is damage, not a torn write.
fn committed_batch_follows(bytes: &[u8], from: usize, expected: u64) -> bool {
    (from..bytes
        .len()
        .saturating_sub(FRAME_HEADER_BYTES + record::BODY_HEADER_BYTES))
        .any(|q| {
            let b = &bytes[q..];
            let flags = b[FRAME_HEADER_BYTES];
            let position = record::read_u64(&b[FRAME_HEADER_BYTES + 1..]);
            flags & record::FLAG_BATCH_END != 0
                && flags & !(record::FLAG_BATCH_END | record::FLAG_APPEND_START) == 0
                && position >= expected
                && position - expected < 1 << 32
                && record::decode(b).is_ok_and(|f| f.ends_batch())
        })
}

pub(crate) fn segment_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("{first:020}.seg"))
}

fn idx_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("{first:020}.idx"))
}

/// First positions of the segment files in `dir`, ascending.
pub(crate) fn list(dir: &Path) -> Result<Vec<u64>, StoreError> {
    let mut firsts = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        if let Some(Ok(first)) = name.strip_suffix(".seg").map(str::parse::<u64>) {
            firsts.push(first);
        }
    }
    firsts.sort_unstable();
    Ok(firsts)
}

pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates an empty active segment starting at `first`, durably.
pub(crate) fn create(dir: &Path, first: u64) -> Result<Arc<Segment>, StoreError> {
    let path = segment_path(dir, first);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    file.sync_all()?;
    sync_dir(dir)?;
    Ok(Arc::new(Segment {
        first,
        path,
        file,
        offsets: Offsets::Active(RwLock::new(Vec::new())),
    }))
}

/// Writes the offset file of a segment that takes no more records and returns it
/// sealed.
pub(crate) fn seal(
    dir: &Path,
    active: &Segment,
    offsets: &[u32],
) -> Result<Arc<Segment>, StoreError> {
    let idx = write_idx(dir, active.first, offsets)?;
    Ok(Arc::new(Segment {
        first: active.first,
        path: active.path.clone(),
        file: File::open(&active.path)?,
        offsets: Offsets::Sealed {
            idx,
            count: offsets.len() as u64,
        },
    }))
}

fn write_idx(dir: &Path, first: u64, offsets: &[u32]) -> Result<File, StoreError> {
    let path = idx_path(dir, first);
    let tmp = path.with_extension("idx.tmp");
    let mut bytes = Vec::with_capacity(offsets.len() * 4);
    for o in offsets {
        bytes.extend_from_slice(&o.to_le_bytes());
    }
    let mut f = File::create(&tmp)?;
    f.write_all(&bytes)?;
    f.sync_all()?;
    fs::rename(&tmp, &path)?;
    sync_dir(dir)?;
    Ok(File::open(&path)?)
}

/// Opens a sealed segment that holds `count` records, rebuilding its offset file when
/// it is missing or of the wrong size.
pub(crate) fn open_sealed(dir: &Path, first: u64, count: u64) -> Result<Arc<Segment>, StoreError> {
    let path = segment_path(dir, first);
    let file = File::open(&path)?;
    let idx = match File::open(idx_path(dir, first)) {
        Ok(f) if f.metadata()?.len() == count * 4 => f,
        _ => {
            let bytes = fs::read(&path)?;
            let s = scan(&bytes, first);
            match s.end {
                ScanEnd::Clean if s.offsets.len() as u64 == count => {}
                ScanEnd::Corrupt { position, reason } => return Err(corrupt(position, reason)),
                _ => {
                    return Err(corrupt(
                        first + s.offsets.len() as u64,
                        "a sealed segment ends before the next segment begins",
                    ));
                }
            }
            write_idx(dir, first, &s.offsets)?
        }
    };
    Ok(Arc::new(Segment {
        first,
        path,
        file,
        offsets: Offsets::Sealed { idx, count },
    }))
}

/// Opens the active segment: scans it, cuts a torn tail off, and returns it with its
/// committed length (where the writer continues).
pub(crate) fn open_active(dir: &Path, first: u64) -> Result<(Arc<Segment>, u64), StoreError> {
    let path = segment_path(dir, first);
    let file = OpenOptions::new().read(true).write(true).open(&path)?;
    let bytes = fs::read(&path)?;
    let s = scan(&bytes, first);
    match s.end {
        ScanEnd::Clean => {}
        ScanEnd::TornTail { at } => {
            tracing::warn!(
                segment = %path.display(),
                cut_bytes = bytes.len() - at,
                "cutting an unfinished batch off the end of the log"
            );
            file.set_len(at as u64)?;
            file.sync_all()?;
        }
        ScanEnd::Corrupt { position, reason } => return Err(corrupt(position, reason)),
    }
    let len = s.committed_len as u64;
    Ok((
        Arc::new(Segment {
            first,
            path,
            file,
            offsets: Offsets::Active(RwLock::new(s.offsets)),
        }),
        len,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(buf: &mut Vec<u8>, positions: std::ops::RangeInclusive<u64>) {
        let mut last = 0;
        for p in positions {
            last = record::encode(buf, 0, p, 0, &[0; 32], b"{}");
        }
        record::mark_batch_end(buf, last);
    }

    #[test]
    fn a_clean_segment_scans_whole() {
        let mut b = Vec::new();
        batch(&mut b, 1..=3);
        batch(&mut b, 4..=4);
        let s = scan(&b, 1);
        assert_eq!(s.end, ScanEnd::Clean);
        assert_eq!(s.offsets.len(), 4);
        assert_eq!(s.committed_len, b.len());
    }

    #[test]
    fn an_unfinished_last_batch_is_a_torn_tail() {
        let mut b = Vec::new();
        batch(&mut b, 1..=2);
        let committed = b.len();
        let mut tail = Vec::new();
        batch(&mut tail, 3..=5);
        b.extend_from_slice(&tail[..tail.len() - 3]);
        let s = scan(&b, 1);
        assert_eq!(s.end, ScanEnd::TornTail { at: committed });
        assert_eq!(s.offsets.len(), 2);
    }

    #[test]
    fn a_broken_record_before_a_committed_batch_is_corruption() {
        let mut b = Vec::new();
        batch(&mut b, 1..=2);
        let second_batch = b.len();
        batch(&mut b, 3..=3);
        batch(&mut b, 4..=6);
        b[second_batch + 20] ^= 0xff;
        let s = scan(&b, 1);
        assert_eq!(
            s.end,
            ScanEnd::Corrupt {
                position: 3,
                reason: FrameError::BadCrc.describe()
            }
        );
    }
}
