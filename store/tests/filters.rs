//! The writer skips sled for ids and streams its filters say do not exist. Whatever the
//! filters' state — still loading after open, or loaded — an append retried with the
//! same ids gets its original result, a reused id is refused, and an existing stream's
//! version is known, whether the entries are in memory or only in sled.

use serde_json::json;
use store::{
    Actor, EmbeddedStore, EventStore, ExpectedVersion, Metadata, Options, ProposedEvent, StoreError,
};
use time::OffsetDateTime;
use uuid::Uuid;

fn event(id: u128) -> ProposedEvent {
    let meta = Metadata::new(Actor::system(), None, OffsetDateTime::UNIX_EPOCH);
    let mut e = ProposedEvent::new("credits.consumed", json!({ "n": id as u64 }), meta);
    e.id = Uuid::from_u128(id);
    e
}

const STREAMS: u128 = 300;

async fn check(store: &EmbeddedStore, written: &[(u128, store::AppendResult)]) {
    for &(n, result) in written {
        let stream = format!("s-{}", n % STREAMS);
        // The same append again: the original result.
        let again = store
            .append(&stream, ExpectedVersion::Any, vec![event(n)])
            .await
            .expect("a retry succeeds");
        assert_eq!(again, result, "retry of append {n}");
        // The same first id in another append: refused.
        match store
            .append(
                &stream,
                ExpectedVersion::Any,
                vec![event(n), event(1 << 100)],
            )
            .await
        {
            Err(StoreError::IdReused { .. }) => {}
            other => panic!("append {n} reused: {other:?}"),
        }
    }
    for s in 0..STREAMS {
        let stream = format!("s-{s}");
        let events = store
            .read_stream(&stream, 0, store::Direction::Forwards, 10_000)
            .await
            .expect("read");
        assert!(!events.is_empty(), "{stream} is known");
        // A conflicting expectation is refused: the head was found.
        match store
            .append(
                &stream,
                ExpectedVersion::NoStream,
                vec![event(2 << 100 | s)],
            )
            .await
        {
            Err(StoreError::Conflict { .. }) => {}
            other => panic!("{stream} must exist: {other:?}"),
        }
    }
}

#[tokio::test]
async fn lookups_are_exact_before_and_after_the_filters_load() {
    // The filters are off unless asked for (see `store::embedded::filter`).
    #[allow(unsafe_code)]
    // SAFETY: this test binary holds this one test, so no other thread reads the
    // environment while it is written.
    unsafe {
        std::env::set_var("ORGLINE_STORE_FILTERS", "1");
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let options = Options {
        index_flush_events: 100,
        ..Options::default()
    };
    let mut written = Vec::new();
    {
        let store = EmbeddedStore::open_with(dir.path(), options.clone()).expect("open");
        for n in 1..=3_000u128 {
            let stream = format!("s-{}", n % STREAMS);
            let r = store
                .append(&stream, ExpectedVersion::Any, vec![event(n)])
                .await
                .expect("append");
            written.push((n, r));
        }
        check(&store, &written).await;
    }
    // Reopened: check at once (filters may still be loading), then once they are loaded.
    let store = EmbeddedStore::open_with(dir.path(), options).expect("reopen");
    check(&store, &written[..50]).await;
    let started = std::time::Instant::now();
    while !store.filters_loaded() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "the filters load"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    check(&store, &written).await;
    // A new stream and new ids still work, and are then found.
    let r = store
        .append("fresh", ExpectedVersion::NoStream, vec![event(9 << 100)])
        .await
        .expect("append to a new stream");
    let again = store
        .append("fresh", ExpectedVersion::NoStream, vec![event(9 << 100)])
        .await
        .expect("retry");
    assert_eq!(r, again);
}
