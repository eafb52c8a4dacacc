//! The runner against a real store: catch-up then live, checkpoints, restarts,
//! version-bump and on-demand rebuilds, read-your-writes.

use projections::runner::{self, CHECKPOINT_KEY};
use projections::{Projection, ProjectionError, ProjectionState, Tx};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use store::{
    Actor, EmbeddedStore, EventStore, ExpectedVersion, Metadata, ProposedEvent, RecordedEvent,
};
use time::OffsetDateTime;

const WAIT: Duration = Duration::from_secs(30);

/// Counts events per type and sums `n` per stream: enough state to compare.
struct Counter<const V: u32>;

impl<const V: u32> Projection for Counter<V> {
    const NAME: &'static str = "counter";
    const VERSION: u32 = V;

    fn apply(&mut self, e: &RecordedEvent, tx: &mut Tx<'_>) -> Result<(), ProjectionError> {
        let key = format!("type/{}", e.event_type);
        let n: u64 = tx.get_json(key.as_bytes())?.unwrap_or(0);
        tx.put_json(key, &(n + 1))?;
        let key = format!("sum/{}", e.stream);
        let s: u64 = tx.get_json(key.as_bytes())?.unwrap_or(0);
        let add = e.data_value()["n"].as_u64().unwrap_or(0);
        tx.put_json(key, &(s + add * V as u64))?;
        Ok(())
    }
}

async fn append(store: &EmbeddedStore, from: u64, count: u64) {
    for i in from..from + count {
        let meta = Metadata::new(Actor::system(), None, OffsetDateTime::UNIX_EPOCH);
        let kind = ["a.one", "b.two", "c.three"][(i % 3) as usize];
        let e = ProposedEvent::new(kind, json!({ "n": i }), meta);
        store
            .append(&format!("s-{}", i % 7), ExpectedVersion::Any, vec![e])
            .await
            .expect("append");
    }
}

fn state(tree: &sled::Tree) -> BTreeMap<Vec<u8>, Vec<u8>> {
    tree.iter()
        .map(|kv| kv.expect("kv"))
        .filter(|(k, _)| k.as_ref() != CHECKPOINT_KEY)
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect()
}

fn open(dir: &std::path::Path) -> Arc<EmbeddedStore> {
    Arc::new(EmbeddedStore::open(dir).expect("open store"))
}

/// The state a projection reaches from zero in a fresh database.
async fn from_zero<const V: u32>(store: Arc<EmbeddedStore>) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let dir = tempfile::tempdir().expect("dir");
    let db = sled::open(dir.path()).expect("sled");
    let h = runner::spawn(store.clone(), db, || Counter::<V>).expect("spawn");
    h.wait_for(store.head().await.expect("head"), WAIT)
        .await
        .expect("caught up");
    let s = state(&h.tree());
    h.stop().await;
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projection_catches_up_then_follows_live() {
    let dir = tempfile::tempdir().expect("dir");
    let store = open(dir.path());
    append(&store, 0, 300).await;
    let h = runner::spawn(store.clone(), store.db().clone(), || Counter::<1>).expect("spawn");
    h.wait_for(300, WAIT).await.expect("catch-up");
    append(&store, 300, 30).await;
    h.wait_for(330, WAIT).await.expect("live");
    let tree = h.tree();
    let count = |t: &str| -> u64 {
        serde_json::from_slice(&tree.get(format!("type/{t}")).expect("get").expect("some"))
            .expect("json")
    };
    assert_eq!(count("a.one") + count("b.two") + count("c.three"), 330);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let status = h.status();
    assert_eq!(
        (status.position, status.lag, status.state.name()),
        (330, 0, "live")
    );
    assert!(
        h.wait_for(331, Duration::from_millis(100)).await.is_err(),
        "waiting past the head times out"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_at_any_point_give_the_state_of_one_replay_from_zero() {
    let dir = tempfile::tempdir().expect("dir");
    let store = open(dir.path());
    for round in 0..5u64 {
        append(&store, round * 97, 97).await;
        let h = runner::spawn(store.clone(), store.db().clone(), || Counter::<1>).expect("spawn");
        // Stop at a point that is not the head: the checkpoint covers exactly what was committed.
        h.wait_for(round * 97 + 50, WAIT).await.expect("progress");
        h.stop().await;
    }
    let h = runner::spawn(store.clone(), store.db().clone(), || Counter::<1>).expect("spawn");
    h.wait_for(485, WAIT).await.expect("caught up");
    assert_eq!(state(&h.tree()), from_zero::<1>(store.clone()).await);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_version_rebuilds_into_a_fresh_tree_and_swaps() {
    let dir = tempfile::tempdir().expect("dir");
    let store = open(dir.path());
    append(&store, 0, 200).await;
    let v1 = runner::spawn(store.clone(), store.db().clone(), || Counter::<1>).expect("spawn v1");
    v1.wait_for(200, WAIT).await.expect("v1");
    let old_tree = v1.tree().name();
    v1.stop().await;

    let v2 = runner::spawn(store.clone(), store.db().clone(), || Counter::<2>).expect("spawn v2");
    v2.wait_for(200, WAIT).await.expect("v2 rebuilt");
    assert_ne!(v2.tree().name(), old_tree, "a fresh tree");
    assert!(
        !store.db().tree_names().contains(&old_tree),
        "the old tree is dropped after the swap"
    );
    assert_eq!(state(&v2.tree()), from_zero::<2>(store.clone()).await);
    append(&store, 200, 10).await;
    v2.wait_for(210, WAIT)
        .await
        .expect("follows after the rebuild");
    assert_eq!(v2.status().version, 2);
    v2.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_on_demand_rebuild_reaches_the_same_state() {
    let dir = tempfile::tempdir().expect("dir");
    let store = open(dir.path());
    append(&store, 0, 150).await;
    let h = runner::spawn(store.clone(), store.db().clone(), || Counter::<1>).expect("spawn");
    h.wait_for(150, WAIT).await.expect("built");
    let before = (state(&h.tree()), h.tree().name());
    h.rebuild().await.expect("rebuild");
    for _ in 0..300 {
        if h.tree().name() != before.1 && h.status().state != ProjectionState::Rebuilding {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_ne!(h.tree().name(), before.1);
    assert_eq!(state(&h.tree()), before.0);
    h.stop().await;
}

/// Projections started together on one feed (as the server starts the built-ins) read
/// each batch of the log once between them, over several whole batches and a partial
/// one, whatever their speeds, and end where each would alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projections_sharing_one_feed_equal_each_alone() {
    let dir = tempfile::tempdir().expect("dir");
    let store = open(dir.path());
    let total = 2 * runner::REBUILD_EVENTS_MAX as u64 + 5_001;
    let mut i = 0;
    while i < total {
        let n = 1_000.min(total - i);
        let events = (i..i + n)
            .map(|k| {
                let meta = Metadata::new(Actor::system(), None, OffsetDateTime::UNIX_EPOCH);
                let kind = ["a.one", "b.two", "c.three"][(k % 3) as usize];
                ProposedEvent::new(kind, json!({ "n": k }), meta)
            })
            .collect();
        store
            .append(&format!("s-{}", i % 7), ExpectedVersion::Any, events)
            .await
            .expect("append");
        i += n;
    }
    let es: Arc<dyn EventStore> = store.clone();
    let feed = projections::feed::Feed::new(es);
    let dbs: Vec<(tempfile::TempDir, sled::Db)> = (0..3)
        .map(|_| {
            let d = tempfile::tempdir().expect("dir");
            let db = sled::open(d.path()).expect("sled");
            (d, db)
        })
        .collect();
    let handles = [
        runner::spawn_fed(&feed, dbs[0].1.clone(), || Counter::<1>).expect("spawn"),
        runner::spawn_fed(&feed, dbs[1].1.clone(), || Counter::<2>).expect("spawn"),
        runner::spawn_fed(&feed, dbs[2].1.clone(), || Counter::<3>).expect("spawn"),
    ];
    for h in &handles {
        h.wait_for(total, WAIT).await.expect("caught up");
    }
    // Live after the shared catch-up.
    append(&store, total, 10).await;
    for h in &handles {
        h.wait_for(total + 10, WAIT).await.expect("live");
    }
    let states: Vec<_> = handles.iter().map(|h| state(&h.tree())).collect();
    for h in &handles {
        h.stop().await;
    }
    assert_eq!(states[0], from_zero::<1>(store.clone()).await, "counter v1");
    assert_eq!(states[1], from_zero::<2>(store.clone()).await, "counter v2");
    assert_eq!(states[2], from_zero::<3>(store.clone()).await, "counter v3");
    assert_ne!(
        states[0], states[1],
        "the versions differ, so the check can fail"
    );
}
