//! The conformance suite against the embedded backend, on real files.

use store::{EmbeddedStore, Options};

async fn fresh() -> (EmbeddedStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    // Small segments and frequent index flushes, so the suite crosses segment rolls
    // and reads that span sled and the in-memory index.
    let options = Options {
        segment_bytes: 64 << 10,
        index_flush_events: 97,
        index_flush_interval: std::time::Duration::from_millis(20),
        ..Options::default()
    };
    let store = EmbeddedStore::open_with(dir.path(), options).expect("open");
    (store, dir)
}

store::conformance_tests!(fresh);
