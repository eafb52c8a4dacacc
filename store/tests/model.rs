//! Property test: random sequences of appends (with every kind of expectation, retries
//! of earlier appends, and reopens of the store) against an in-memory model of the log.

use proptest::prelude::*;
use serde_json::json;
use store::{
    Actor, AppendResult, Direction, EmbeddedStore, EventStore, ExpectedVersion, Metadata, Options,
    ProposedEvent, StoreError,
};
use time::OffsetDateTime;
use uuid::Uuid;

const STREAMS: usize = 4;

#[derive(Debug, Clone)]
enum Op {
    Append {
        stream: usize,
        expected: ExpectedVersion,
        count: u64,
    },
    /// Resend an earlier append (to its own stream, or to another one).
    Retry {
        which: usize,
        other_stream: bool,
    },
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    let expected = prop_oneof![
        Just(ExpectedVersion::Any),
        Just(ExpectedVersion::NoStream),
        Just(ExpectedVersion::StreamExists),
        (0u64..6).prop_map(ExpectedVersion::Exact),
    ];
    prop_oneof![
        8 => (0..STREAMS, expected, 1u64..4).prop_map(|(stream, expected, count)| Op::Append { stream, expected, count }),
        2 => (any::<usize>(), any::<bool>()).prop_map(|(which, other_stream)| Op::Retry { which, other_stream }),
        1 => Just(Op::Reopen),
    ]
}

fn org_of(stream: usize) -> Uuid {
    Uuid::from_u128(1 + (stream % 2) as u128)
}

fn stream_name(i: usize) -> String {
    format!("model-{i}")
}

#[derive(Default)]
struct Model {
    /// (stream, id) of every event in position order.
    log: Vec<(usize, Uuid)>,
    versions: [u64; STREAMS],
    /// Every acknowledged append: stream, events, result.
    appends: Vec<(usize, Vec<ProposedEvent>, AppendResult)>,
}

impl Model {
    fn append(
        &mut self,
        stream: usize,
        expected: ExpectedVersion,
        events: &[ProposedEvent],
    ) -> Result<AppendResult, &'static str> {
        if let Some((s, evs, r)) = self
            .appends
            .iter()
            .find(|(_, evs, _)| evs[0].id == events[0].id)
        {
            let same = *s == stream && evs.iter().map(|e| e.id).eq(events.iter().map(|e| e.id));
            return if same { Ok(*r) } else { Err("id reused") };
        }
        let current = self.versions[stream].checked_sub(1);
        if !expected.admits(current) {
            return Err("conflict");
        }
        let first = self.log.len() as u64 + 1;
        for e in events {
            self.log.push((stream, e.id));
        }
        self.versions[stream] += events.len() as u64;
        let r = AppendResult {
            first_position: first,
            position: self.log.len() as u64,
            version: self.versions[stream] - 1,
        };
        self.appends.push((stream, events.to_vec(), r));
        Ok(r)
    }
}

fn classify(r: &Result<AppendResult, StoreError>) -> Result<AppendResult, &'static str> {
    match r {
        Ok(r) => Ok(*r),
        Err(StoreError::Conflict { .. }) => Err("conflict"),
        Err(StoreError::IdReused { .. }) => Err("id reused"),
        Err(_) => Err("other error"),
    }
}

fn options() -> Options {
    Options {
        segment_bytes: 2 << 10,
        index_flush_events: 3,
        index_flush_interval: std::time::Duration::from_millis(1),
        ..Options::default()
    }
}

async fn run(ops: Vec<Op>) {
    let dir = tempfile::tempdir().expect("dir");
    let mut store = EmbeddedStore::open_with(dir.path(), options()).expect("open");
    let mut model = Model::default();
    let meta = Metadata::new(Actor::system(), None, OffsetDateTime::UNIX_EPOCH);
    for op in ops {
        match op {
            Op::Append {
                stream,
                expected,
                count,
            } => {
                let events: Vec<ProposedEvent> = (0..count)
                    .map(|n| {
                        let mut m = meta.clone();
                        m.org = Some(org_of(stream));
                        ProposedEvent::new("model.event", json!({ "n": n }), m)
                    })
                    .collect();
                let want = model.append(stream, expected, &events);
                let got = store.append(&stream_name(stream), expected, events).await;
                assert_eq!(classify(&got), want, "append to {stream} at {expected}");
            }
            Op::Retry {
                which,
                other_stream,
            } => {
                if model.appends.is_empty() {
                    continue;
                }
                let (s, events, _) = model.appends[which % model.appends.len()].clone();
                let stream = if other_stream { (s + 1) % STREAMS } else { s };
                let want = model.append(stream, ExpectedVersion::Any, &events);
                let got = store
                    .append(&stream_name(stream), ExpectedVersion::Any, events)
                    .await;
                assert_eq!(classify(&got), want, "retry");
            }
            Op::Reopen => {
                drop(store);
                store = EmbeddedStore::open_with(dir.path(), options()).expect("reopen");
            }
        }
        assert_eq!(store.head().await.expect("head"), model.log.len() as u64);
    }
    let all = store.read_all(1, usize::MAX).await.expect("read_all");
    let got: Vec<(String, Uuid)> = all.iter().map(|e| (e.stream.clone(), e.id)).collect();
    let want: Vec<(String, Uuid)> = model
        .log
        .iter()
        .map(|(s, id)| (stream_name(*s), *id))
        .collect();
    assert_eq!(got, want, "the whole log");
    for s in 0..STREAMS {
        let fwd = store
            .read_stream(&stream_name(s), 0, Direction::Forwards, usize::MAX)
            .await
            .expect("fwd");
        let want: Vec<Uuid> = model
            .log
            .iter()
            .filter(|(x, _)| *x == s)
            .map(|(_, id)| *id)
            .collect();
        assert_eq!(
            fwd.iter().map(|e| e.id).collect::<Vec<_>>(),
            want,
            "stream {s}"
        );
        assert!(fwd.iter().enumerate().all(|(i, e)| e.version == i as u64));
        let mut bwd = store
            .read_stream(&stream_name(s), u64::MAX, Direction::Backwards, usize::MAX)
            .await
            .expect("bwd");
        bwd.reverse();
        assert_eq!(bwd, fwd, "backwards is forwards reversed");
    }
    for org in 0..2 {
        let got: Vec<Uuid> = store
            .read_org(org_of(org), 0, usize::MAX)
            .await
            .expect("org")
            .iter()
            .map(|e| e.id)
            .collect();
        let want: Vec<Uuid> = model
            .log
            .iter()
            .filter(|(s, _)| s % 2 == org)
            .map(|(_, id)| *id)
            .collect();
        assert_eq!(got, want, "org {org}");
    }
    drop(store);
    assert_eq!(
        store::verify::verify(dir.path()).expect("verify").events,
        model.log.len() as u64
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]
    #[test]
    fn random_appends_match_the_model(ops in proptest::collection::vec(op(), 1..40)) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
        rt.block_on(run(ops));
    }
}
