//! The conformance suite: what every [`EventStore`] backend must do, written once
//! against the trait. A backend's tests call [`conformance_tests!`](crate::conformance_tests)
//! with an async factory that returns a fresh, empty store (and a guard that keeps its
//! resources alive).
//!
//! Each case panics with a message on failure, as tests do.

use crate::{
    Actor, Direction, EventStore, ExpectedVersion, Metadata, ProposedEvent, RecordedEvent,
    StoreError,
};
use futures::StreamExt;
use serde_json::json;
use std::sync::Arc;
use time::OffsetDateTime;
use uuid::Uuid;

/// Generates one `#[tokio::test]` per conformance case. `$make` is an async fn
/// returning `(store, guard)`.
#[macro_export]
macro_rules! conformance_tests {
    ($make:path) => {
        $crate::conformance_tests!(@cases $make;
            appends_get_gapless_positions_and_versions,
            expected_versions_are_enforced_and_conflicts_write_nothing,
            appending_the_same_ids_again_returns_the_original_result,
            streams_read_forwards_and_backwards,
            org_reads_return_only_that_orgs_events_in_order,
            events_round_trip_with_their_envelope,
            bad_requests_are_refused_and_change_nothing,
            subscriptions_see_every_event_once_while_appends_race_the_switch,
            subscriptions_from_the_head_see_only_new_events,
            concurrent_exact_appends_never_fork_a_stream,
        );
    };
    (@cases $make:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let (store, _guard) = $make().await;
                $crate::conformance::$case(std::sync::Arc::new(store)).await;
            }
        )*
    };
}

fn org_a() -> Uuid {
    Uuid::from_u128(0xA)
}

fn event(kind: &str, n: u64, org: Option<Uuid>) -> ProposedEvent {
    let meta = Metadata::new(
        Actor::user(Uuid::from_u128(42)),
        org,
        OffsetDateTime::from_unix_timestamp(1_780_000_000).expect("valid time"),
    );
    ProposedEvent::new(kind, json!({ "n": n, "note": "conformance" }), meta)
}

fn events(kind: &str, count: u64) -> Vec<ProposedEvent> {
    (0..count).map(|n| event(kind, n, Some(org_a()))).collect()
}

async fn all<S: EventStore + ?Sized>(store: &S) -> Vec<RecordedEvent> {
    store.read_all(1, usize::MAX).await.expect("read_all")
}

pub async fn appends_get_gapless_positions_and_versions<S: EventStore + ?Sized>(store: Arc<S>) {
    let r1 = store
        .append(
            "orders-1",
            ExpectedVersion::NoStream,
            events("order.placed", 3),
        )
        .await
        .expect("append 1");
    let r2 = store
        .append("orders-2", ExpectedVersion::Any, events("order.placed", 2))
        .await
        .expect("append 2");
    let r3 = store
        .append(
            "orders-1",
            ExpectedVersion::Exact(2),
            events("order.shipped", 1),
        )
        .await
        .expect("append 3");
    assert_eq!((r1.first_position, r1.position, r1.version), (1, 3, 2));
    assert_eq!((r2.first_position, r2.position, r2.version), (4, 5, 1));
    assert_eq!((r3.first_position, r3.position, r3.version), (6, 6, 3));
    assert_eq!(store.head().await.expect("head"), 6);
    let log = all(&*store).await;
    let positions: Vec<u64> = log.iter().map(|e| e.position).collect();
    assert_eq!(positions, vec![1, 2, 3, 4, 5, 6]);
    let versions: Vec<(&str, u64)> = log.iter().map(|e| (e.stream.as_str(), e.version)).collect();
    assert_eq!(
        versions,
        vec![
            ("orders-1", 0),
            ("orders-1", 1),
            ("orders-1", 2),
            ("orders-2", 0),
            ("orders-2", 1),
            ("orders-1", 3)
        ]
    );
}

pub async fn expected_versions_are_enforced_and_conflicts_write_nothing<S: EventStore + ?Sized>(
    store: Arc<S>,
) {
    store
        .append("acct-1", ExpectedVersion::NoStream, events("opened", 2))
        .await
        .expect("create");
    let cases = [
        (ExpectedVersion::NoStream, "acct-1", Some(1)),
        (ExpectedVersion::Exact(0), "acct-1", Some(1)),
        (ExpectedVersion::Exact(7), "acct-1", Some(1)),
        (ExpectedVersion::StreamExists, "acct-2", None),
        (ExpectedVersion::Exact(0), "acct-2", None),
    ];
    for (expected, stream, actual) in cases {
        match store.append(stream, expected, events("x", 1)).await {
            Err(StoreError::Conflict {
                stream: s,
                expected: e,
                actual: a,
            }) => {
                assert_eq!((s.as_str(), e, a), (stream, expected, actual));
            }
            other => panic!("{stream} at {expected}: expected a conflict, got {other:?}"),
        }
    }
    assert_eq!(
        store.head().await.expect("head"),
        2,
        "conflicts wrote nothing"
    );
    store
        .append("acct-1", ExpectedVersion::StreamExists, events("x", 1))
        .await
        .expect("exists");
    store
        .append("acct-1", ExpectedVersion::Exact(2), events("x", 1))
        .await
        .expect("exact");
    store
        .append("acct-1", ExpectedVersion::Any, events("x", 1))
        .await
        .expect("any");
    store
        .append("acct-2", ExpectedVersion::Any, events("x", 1))
        .await
        .expect("any creates");
    assert_eq!(store.head().await.expect("head"), 6);
}

pub async fn appending_the_same_ids_again_returns_the_original_result<S: EventStore + ?Sized>(
    store: Arc<S>,
) {
    let batch = events("payment.taken", 3);
    let first = store
        .append("pay-1", ExpectedVersion::NoStream, batch.clone())
        .await
        .expect("first");
    store
        .append("pay-2", ExpectedVersion::Any, events("other", 2))
        .await
        .expect("other");
    // A retry, even with an expectation that no longer holds, gets the original answer.
    let retry = store
        .append("pay-1", ExpectedVersion::NoStream, batch.clone())
        .await
        .expect("retry");
    assert_eq!(retry, first);
    assert_eq!(
        store.head().await.expect("head"),
        5,
        "the retry wrote nothing"
    );
    // The same first id with other content is not a retry.
    let mut changed = batch.clone();
    changed.truncate(2);
    match store.append("pay-1", ExpectedVersion::Any, changed).await {
        Err(StoreError::IdReused { id }) => assert_eq!(id, batch[0].id),
        other => panic!("expected IdReused, got {other:?}"),
    }
    match store
        .append("pay-3", ExpectedVersion::Any, batch.clone())
        .await
    {
        Err(StoreError::IdReused { .. }) => {}
        other => panic!("expected IdReused for another stream, got {other:?}"),
    }
    assert_eq!(store.head().await.expect("head"), 5);
}

pub async fn streams_read_forwards_and_backwards<S: EventStore + ?Sized>(store: Arc<S>) {
    for i in 0..10u64 {
        store
            .append(
                "bot-1",
                ExpectedVersion::Any,
                vec![event("bot.status_changed", i, None)],
            )
            .await
            .expect("append");
        store
            .append(
                "bot-2",
                ExpectedVersion::Any,
                vec![event("bot.status_changed", i, None)],
            )
            .await
            .expect("append");
    }
    let versions = |es: Vec<RecordedEvent>| es.iter().map(|e| e.version).collect::<Vec<_>>();
    let read = |from, dir, max| store.read_stream("bot-1", from, dir, max);
    assert_eq!(
        versions(read(3, Direction::Forwards, 4).await.expect("read")),
        vec![3, 4, 5, 6]
    );
    assert_eq!(
        versions(read(0, Direction::Forwards, 100).await.expect("read")),
        (0..10).collect::<Vec<_>>()
    );
    assert_eq!(
        versions(read(8, Direction::Forwards, 100).await.expect("read")),
        vec![8, 9]
    );
    assert_eq!(
        versions(read(10, Direction::Forwards, 100).await.expect("read")),
        Vec::<u64>::new()
    );
    assert_eq!(
        versions(read(u64::MAX, Direction::Backwards, 3).await.expect("read")),
        vec![9, 8, 7]
    );
    assert_eq!(
        versions(read(2, Direction::Backwards, 10).await.expect("read")),
        vec![2, 1, 0]
    );
    let es = read(0, Direction::Forwards, 10).await.expect("read");
    assert!(es.iter().all(|e| e.stream == "bot-1"));
    assert!(es.windows(2).all(|w| w[0].position < w[1].position));
    let none = store
        .read_stream("bot-404", 0, Direction::Forwards, 10)
        .await
        .expect("unknown");
    assert!(none.is_empty());
}

pub async fn org_reads_return_only_that_orgs_events_in_order<S: EventStore + ?Sized>(
    store: Arc<S>,
) {
    let org_b = Uuid::from_u128(0xB);
    let mut expected_a = Vec::new();
    for i in 0..30u64 {
        let org = match i % 3 {
            0 => Some(org_a()),
            1 => Some(org_b),
            _ => None,
        };
        let r = store
            .append(
                &format!("s-{}", i % 4),
                ExpectedVersion::Any,
                vec![event("thing.done", i, org)],
            )
            .await
            .expect("append");
        if org == Some(org_a()) {
            expected_a.push(r.position);
        }
    }
    let got: Vec<u64> = store
        .read_org(org_a(), 0, 1000)
        .await
        .expect("org")
        .iter()
        .map(|e| e.position)
        .collect();
    assert_eq!(got, expected_a);
    let page: Vec<u64> = store
        .read_org(org_a(), expected_a[3], 4)
        .await
        .expect("org page")
        .iter()
        .map(|e| e.position)
        .collect();
    assert_eq!(page, expected_a[3..7]);
    assert!(
        store
            .read_org(Uuid::from_u128(0xC), 0, 10)
            .await
            .expect("none")
            .is_empty()
    );
    assert!(
        store
            .read_org(org_b, 0, 100)
            .await
            .expect("b")
            .iter()
            .all(|e| e.org() == Some(org_b))
    );
}

pub async fn events_round_trip_with_their_envelope<S: EventStore + ?Sized>(store: Arc<S>) {
    let mut e = event("member.invited", 1, Some(org_a()));
    e.schema = 3;
    e.data = json!({"email": "ada@example.com", "kind": "member", "role_ids": ["r1"], "z": {"b": 1, "a": [1, 2]}});
    e.meta.correlation = Some(Uuid::from_u128(5));
    e.meta.causation = Some(Uuid::from_u128(6));
    store
        .append("organization-1", ExpectedVersion::NoStream, vec![e.clone()])
        .await
        .expect("append");
    store
        .append(
            "organization-1",
            ExpectedVersion::Exact(0),
            vec![event("x", 2, Some(org_a()))],
        )
        .await
        .expect("append");
    let got = store
        .read_stream("organization-1", 0, Direction::Forwards, 10)
        .await
        .expect("read");
    assert_eq!(got[0].id, e.id);
    assert_eq!(got[0].event_type, "member.invited");
    assert_eq!(got[0].schema, 3);
    assert_eq!(got[0].data_value(), e.data);
    assert_eq!(got[0].meta, e.meta);
    assert_ne!(got[0].hash, [0; 32]);
    assert_ne!(got[0].hash, got[1].hash);
    let via_all = store.read_all(1, 10).await.expect("read_all");
    assert_eq!(via_all, got, "read_all and read_stream agree");
}

pub async fn bad_requests_are_refused_and_change_nothing<S: EventStore + ?Sized>(store: Arc<S>) {
    store
        .append("ok-1", ExpectedVersion::Any, events("x", 1))
        .await
        .expect("append");
    let e = event("x", 0, None);
    let mut twice = vec![e.clone(), e.clone()];
    twice[1].event_type = "y".into();
    let mut bad_type = e.clone();
    bad_type.event_type = "has space".into();
    let mut not_object = e.clone();
    not_object.data = json!([1, 2]);
    let mut huge = e.clone();
    huge.data = json!({ "blob": "x".repeat(crate::limits::EVENT_BYTES_MAX) });
    let long_name = "x".repeat(500);
    let cases: Vec<(&str, Vec<ProposedEvent>, &str)> = vec![
        ("", vec![e.clone()], "invalid"),
        ("has space", vec![e.clone()], "invalid"),
        (&long_name, vec![e.clone()], "invalid"),
        ("ok-1", vec![], "invalid"),
        ("ok-1", twice, "invalid"),
        ("ok-1", vec![bad_type], "invalid"),
        ("ok-1", vec![not_object], "invalid"),
        ("ok-1", vec![huge], "too large"),
        (
            "ok-1",
            events("x", crate::limits::APPEND_EVENTS_MAX as u64 + 1),
            "too large",
        ),
    ];
    for (stream, evs, want) in cases {
        let got = store.append(stream, ExpectedVersion::Any, evs).await;
        let ok = matches!(
            (&got, want),
            (Err(StoreError::Invalid(_)), "invalid")
                | (Err(StoreError::TooLarge { .. }), "too large")
        );
        assert!(
            ok,
            "stream {:?}: expected {want}, got {got:?}",
            &stream[..stream.len().min(20)]
        );
    }
    assert_eq!(store.head().await.expect("head"), 1, "nothing was written");
    assert!(matches!(
        store
            .read_stream("bad name", 0, Direction::Forwards, 1)
            .await,
        Err(StoreError::Invalid(_))
    ));
}

pub async fn subscriptions_see_every_event_once_while_appends_race_the_switch<
    S: EventStore + ?Sized + 'static,
>(
    store: Arc<S>,
) {
    const BEFORE: u64 = 300;
    const WRITERS: u64 = 8;
    const PER_WRITER: u64 = 150;
    for i in 0..BEFORE {
        store
            .append(
                &format!("pre-{}", i % 7),
                ExpectedVersion::Any,
                vec![event("pre", i, None)],
            )
            .await
            .expect("append");
    }
    let total = BEFORE + WRITERS * PER_WRITER;
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..PER_WRITER {
                let n = if i % 10 == 0 { 2 } else { 1 };
                let evs = (0..n)
                    .map(|k| event("live", i * 10 + k, None))
                    .collect::<Vec<_>>();
                store
                    .append(&format!("w-{w}"), ExpectedVersion::Any, evs)
                    .await
                    .expect("append");
                if i % 16 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        }));
    }
    let total = total + WRITERS * PER_WRITER.div_ceil(10);
    // Subscribe while the writers are running: the catch-up → live switch races them.
    let from_start = store.subscribe_all(1);
    let from_middle = store.subscribe_all(BEFORE / 2);
    let collect = |sub: crate::EventStream, n: u64| async move {
        let got: Vec<u64> = tokio::time::timeout(
            std::time::Duration::from_secs(60),
            sub.take(n as usize)
                .map(|e| e.expect("subscription event").position)
                .collect(),
        )
        .await
        .expect("the subscription delivered every event in time");
        got
    };
    let (a, b) = tokio::join!(
        collect(from_start, total),
        collect(from_middle, total - BEFORE / 2 + 1)
    );
    for w in writers {
        w.await.expect("writer");
    }
    assert_eq!(
        a,
        (1..=total).collect::<Vec<_>>(),
        "from the start: every position once, in order"
    );
    assert_eq!(
        b,
        (BEFORE / 2..=total).collect::<Vec<_>>(),
        "from the middle"
    );
    assert_eq!(store.head().await.expect("head"), total);
}

pub async fn subscriptions_from_the_head_see_only_new_events<S: EventStore + ?Sized + 'static>(
    store: Arc<S>,
) {
    store
        .append("a-1", ExpectedVersion::Any, events("old", 5))
        .await
        .expect("append");
    let head = store.head().await.expect("head");
    let mut sub = store.subscribe_all(head + 1);
    let s2 = store.clone();
    let writer = tokio::spawn(async move {
        for i in 0..20 {
            s2.append("a-2", ExpectedVersion::Any, vec![event("new", i, None)])
                .await
                .expect("append");
        }
    });
    for expected in head + 1..=head + 20 {
        let e = tokio::time::timeout(std::time::Duration::from_secs(30), sub.next())
            .await
            .expect("in time")
            .expect("open")
            .expect("event");
        assert_eq!((e.position, e.event_type.as_str()), (expected, "new"));
    }
    writer.await.expect("writer");
}

pub async fn concurrent_exact_appends_never_fork_a_stream<S: EventStore + ?Sized + 'static>(
    store: Arc<S>,
) {
    const TASKS: usize = 12;
    const ROUNDS: usize = 25;
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut won = 0u64;
            for r in 0..ROUNDS {
                let last = store
                    .read_stream("credits-1", u64::MAX, Direction::Backwards, 1)
                    .await
                    .expect("read")
                    .first()
                    .map(|e| e.version);
                let expected = last.map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact);
                match store
                    .append(
                        "credits-1",
                        expected,
                        vec![event("credits.consumed", (t * 1000 + r) as u64, None)],
                    )
                    .await
                {
                    Ok(_) => won += 1,
                    Err(StoreError::Conflict { .. }) => {}
                    Err(e) => panic!("unexpected {e}"),
                }
            }
            won
        }));
    }
    let mut won = 0;
    for t in tasks {
        won += t.await.expect("task");
    }
    let stream = store
        .read_stream("credits-1", 0, Direction::Forwards, 100_000)
        .await
        .expect("read");
    assert_eq!(
        stream.len() as u64,
        won,
        "every acknowledged append and nothing else"
    );
    assert!(
        stream
            .iter()
            .enumerate()
            .all(|(i, e)| e.version == i as u64),
        "versions are 0..n"
    );
    assert!(won >= ROUNDS as u64, "some appends won");
}
