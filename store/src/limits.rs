//! Every limit of the log, as a named constant with the reason for its value.

/// The largest event, counted as its canonical bytes. Events are facts about an
/// organization, not files: 1 MiB is far above any catalog event and keeps one record
/// readable with a single buffer.
pub const EVENT_BYTES_MAX: usize = 1 << 20;

/// Events in one append. An append is atomic, so it is held in memory whole; 10,000
/// covers bulk imports in appends of 1,000 with room to spare.
pub const APPEND_EVENTS_MAX: usize = 10_000;

/// Bytes in one append (sum of canonical event bytes). Bounds the memory one caller can
/// pin in the writer's queue.
pub const APPEND_BYTES_MAX: usize = 16 << 20;

/// Bytes the writer takes into one group commit. A batch is written with one `write` and
/// one `fdatasync`; a bound keeps the latency of the appends in it predictable.
pub const BATCH_BYTES_MAX: usize = 32 << 20;

/// Appends the writer takes into one group commit (P1 has 256 concurrent writers; a few
/// thousand keeps one sync's worth of work under a few milliseconds of CPU).
pub const BATCH_APPENDS_MAX: usize = 4_096;

/// Appends waiting for the writer. A full queue makes `append` wait (back-pressure)
/// instead of growing memory without bound.
pub const QUEUE_APPENDS_MAX: usize = 8_192;

/// Length of a stream name. Names are `<category>-<id>`; a UUID id makes ~50 bytes.
pub const STREAM_NAME_BYTES_MAX: usize = 200;

/// Length of an event type name such as `member.invited`.
pub const EVENT_TYPE_BYTES_MAX: usize = 128;

/// Events returned by one read call; callers page with `from`.
pub const READ_EVENTS_MAX: usize = 10_000;

/// Default size at which a segment file is sealed and a new one started. Small enough
/// that scanning the active segment at open takes well under a second (P8), large
/// enough that a 10M-event log is a few dozen files.
pub const SEGMENT_BYTES_DEFAULT: u64 = 64 << 20;

/// Largest configurable segment: offsets inside a segment are stored as `u32`.
pub const SEGMENT_BYTES_MAX: u64 = 1 << 31;

/// Events the in-memory index holds before it is written to sled in one batch. Also
/// bounds the re-indexing work at open after a crash.
pub const INDEX_FLUSH_EVENTS_DEFAULT: usize = 50_000;

/// Longest time an indexed event waits in memory before it is written to sled.
pub const INDEX_FLUSH_INTERVAL_MS_DEFAULT: u64 = 1_000;

/// Events the in-memory index may hold (waiting and being written to sled) before the
/// writer waits for the indexer: a slow disk must slow appends down, not grow memory
/// without bound. ~100 bytes each.
pub const INDEX_BACKLOG_EVENTS_MAX: usize = 500_000;

/// How long the writer waits for a stalled indexer before it fails the batch.
pub const INDEX_STALL_MS_MAX: u64 = 10_000;

/// sled's page cache by default: enough for the hot index blocks and read-model
/// documents, small enough that a server with a 10M-event store stays within P9's
/// 300 MB (PERFORMANCE.md).
pub const SLED_CACHE_BYTES_DEFAULT: u64 = 128 * 1024 * 1024;

/// How long opening a store waits for sled's file lock, which sled's flusher thread
/// releases after the previous handle in this process dropped: a few milliseconds on
/// a quiet machine, but more than 2 s was seen on CI's two loaded cores (a checkpoint
/// right after a close failed). Another process holding the store open is reported
/// after this long.
pub const SLED_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
