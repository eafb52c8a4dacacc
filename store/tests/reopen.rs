//! Closing a store and opening it again at once, as a restart or a test does, always
//! works; a store that is still open elsewhere is refused with a clear error.

use serde_json::json;
use store::{
    Actor, EmbeddedStore, EventStore, ExpectedVersion, Metadata, Options, ProposedEvent, StoreError,
};
use time::OffsetDateTime;

fn event(n: u64) -> ProposedEvent {
    let meta = Metadata::new(Actor::system(), None, OffsetDateTime::UNIX_EPOCH);
    ProposedEvent::new("credits.consumed", json!({ "n": n }), meta)
}

#[tokio::test]
async fn a_store_dropped_and_reopened_at_once_opens_every_time() {
    let dir = tempfile::tempdir().expect("temp dir");
    for round in 0..40u64 {
        let store = EmbeddedStore::open_with(dir.path(), Options::default())
            .unwrap_or_else(|e| panic!("reopen in round {round}: {e}"));
        assert_eq!(store.head().await.expect("head"), round);
        store
            .append("s-1", ExpectedVersion::Any, vec![event(round)])
            .await
            .expect("append");
        drop(store);
    }
}

#[tokio::test]
async fn a_store_open_in_this_process_is_not_opened_twice() {
    let dir = tempfile::tempdir().expect("temp dir");
    let first = EmbeddedStore::open_with(dir.path(), Options::default()).expect("open");
    let second = EmbeddedStore::open_with(dir.path(), Options::default());
    match second {
        Err(StoreError::Index(message)) => {
            assert!(
                message.contains("lock"),
                "the error names the lock: {message}"
            )
        }
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("a second handle on an open store"),
    }
    // The first handle is unharmed.
    first
        .append("s-1", ExpectedVersion::NoStream, vec![event(1)])
        .await
        .expect("append");
}

#[tokio::test]
async fn a_checkpoint_after_close_keeps_everything_and_is_refused_while_open() {
    let dir = tempfile::tempdir().expect("temp dir");
    {
        let store = EmbeddedStore::open_with(dir.path(), Options::default()).expect("open");
        for n in 0..50 {
            store
                .append("s-1", ExpectedVersion::Any, vec![event(n)])
                .await
                .expect("append");
        }
        assert!(
            EmbeddedStore::checkpoint(dir.path()).is_err(),
            "a checkpoint needs the store closed"
        );
    }
    EmbeddedStore::checkpoint(dir.path()).expect("checkpoint after close");
    let store = EmbeddedStore::open_with(dir.path(), Options::default()).expect("reopen");
    assert_eq!(store.head().await.expect("head"), 50);
    let last = store
        .read_stream("s-1", u64::MAX, store::Direction::Backwards, 1)
        .await
        .expect("read");
    assert_eq!(
        last[0].version, 49,
        "the stream index survived the checkpoint"
    );
}
