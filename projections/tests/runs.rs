//! Run history pages against a brute-force filter of the runs written.

use domain::Event;
use domain::events::{RunCancelled, RunCompleted, RunFailed, RunStarted};
use projections::runs::{self, RunFilter, Runs, Status};
use rand::{Rng, SeedableRng};
use std::sync::Arc;
use std::time::Duration;
use store::{Actor, EmbeddedStore, EventStore, ExpectedVersion, Metadata, ProposedEvent};
use uuid::Uuid;

struct Written {
    id: Uuid,
    org: Uuid,
    bot: Uuid,
    trigger: Option<Uuid>,
    status: Status,
    at: time::OffsetDateTime,
}

fn proposed(e: &Event, org: Uuid, at: time::OffsetDateTime) -> ProposedEvent {
    ProposedEvent {
        schema: e.schema(),
        ..ProposedEvent::new(
            e.event_type(),
            e.data(),
            Metadata::new(Actor::system(), Some(org), at),
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_filter_pages_exactly_the_runs_written() {
    let dir = tempfile::tempdir().expect("dir");
    let store = Arc::new(EmbeddedStore::open(dir.path()).expect("open"));
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let start = time::macros::datetime!(2026-04-01 0:00 UTC);
    let mut written = Vec::new();
    for i in 0..600u128 {
        let org = Uuid::from_u128(1 + i % 2);
        let bot = Uuid::from_u128(10 + rng.random_range(0..4));
        let trigger = rng
            .random_bool(0.3)
            .then(|| Uuid::from_u128(20 + rng.random_range(0..2)));
        let id = Uuid::from_u128(1000 + i);
        let at = start + time::Duration::minutes(37 * i as i64);
        let started: Event = RunStarted {
            run_id: id,
            bot_id: bot,
            task: "t".into(),
            trigger_id: trigger,
        }
        .into();
        store
            .append(
                &format!("run-{id}"),
                ExpectedVersion::NoStream,
                vec![proposed(&started, org, at)],
            )
            .await
            .expect("start");
        written.push(Written {
            id,
            org,
            bot,
            trigger,
            status: Status::Running,
            at,
        });
    }
    // End most runs later, interleaved, as bots report them.
    for w in written.iter_mut() {
        let (status, end): (Status, Event) = match rng.random_range(0..10) {
            0 => continue,
            1 => (
                Status::Failed,
                RunFailed {
                    duration_ms: 5,
                    error: "x".into(),
                    credits: None,
                }
                .into(),
            ),
            2 => (Status::Cancelled, RunCancelled { reason: None }.into()),
            _ => (
                Status::Completed,
                RunCompleted {
                    duration_ms: 50,
                    credits: domain::Credits(3),
                }
                .into(),
            ),
        };
        store
            .append(
                &format!("run-{}", w.id),
                ExpectedVersion::Exact(0),
                vec![proposed(&end, w.org, w.at)],
            )
            .await
            .expect("end");
        w.status = status;
    }
    let h = projections::runner::spawn(store.clone(), store.db().clone(), Runs::default)
        .expect("spawn");
    h.wait_for(store.head().await.expect("head"), Duration::from_secs(30))
        .await
        .expect("caught up");
    let tree = h.tree();
    let org = Uuid::from_u128(2);
    let filters = [
        RunFilter::default(),
        RunFilter {
            bot: Some(Uuid::from_u128(11)),
            ..RunFilter::default()
        },
        RunFilter {
            status: Some(Status::Failed),
            ..RunFilter::default()
        },
        RunFilter {
            trigger: Some(Uuid::from_u128(21)),
            status: Some(Status::Completed),
            ..RunFilter::default()
        },
        RunFilter {
            bot: Some(Uuid::from_u128(12)),
            trigger: Some(Uuid::from_u128(20)),
            ..RunFilter::default()
        },
        RunFilter {
            from: Some(start + time::Duration::days(3)),
            to: Some(start + time::Duration::days(6)),
            ..RunFilter::default()
        },
    ];
    for f in &filters {
        let want: Vec<Uuid> = written
            .iter()
            .rev()
            .filter(|w| {
                w.org == org
                    && f.bot.is_none_or(|b| b == w.bot)
                    && f.trigger.is_none_or(|t| Some(t) == w.trigger)
                    && f.status.is_none_or(|s| s == w.status)
            })
            .filter(|w| f.from.is_none_or(|t| w.at >= t) && f.to.is_none_or(|t| w.at <= t))
            .map(|w| w.id)
            .collect();
        let mut got = Vec::new();
        let mut cursor = None;
        loop {
            let p = runs::page(&tree, org, f, 23, cursor, Some(u64::MAX)).expect("page");
            // Every page counts the whole connection, whatever the filter or cursor.
            assert_eq!(p.total_count, want.len() as u64, "totalCount, filter {f:?}");
            got.extend(p.runs.iter().map(|(_, r)| r.id));
            assert!(p.runs.iter().all(|(_, r)| r.org == org), "tenant isolation");
            if !p.has_next {
                break;
            }
            cursor = p.runs.last().map(|(pos, _)| *pos);
        }
        assert_eq!(got, want, "filter {f:?}");
    }
    let one = &written[7];
    let view = runs::run(&tree, store.as_ref(), one.id)
        .await
        .expect("read")
        .expect("run");
    assert_eq!(
        (view.bot_id, view.status, view.started_at),
        (one.bot, one.status, one.at)
    );
    assert_eq!(
        written.iter().filter(|w| w.org == org).count() as u64,
        runs::page(&tree, org, &RunFilter::default(), 1, None, Some(u64::MAX))
            .expect("page")
            .total_count
    );
    h.stop().await;
}

fn tree_state(tree: &sled::Tree) -> Vec<(Vec<u8>, Vec<u8>)> {
    tree.iter()
        .map(|kv| kv.expect("kv"))
        .filter(|(k, _)| k.as_ref() != projections::runner::CHECKPOINT_KEY)
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect()
}

/// Runs that start in one commit and end in a later one (live, as bots report them),
/// across a restart of the projection, give the state of one catch-up from zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_ended_in_later_commits_and_across_restarts_equal_one_catch_up() {
    let dir = tempfile::tempdir().expect("dir");
    let store = Arc::new(EmbeddedStore::open(dir.path()).expect("open"));
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let start = time::macros::datetime!(2026-04-01 0:00 UTC);
    let org = Uuid::from_u128(1);
    let mut h = projections::runner::spawn(store.clone(), store.db().clone(), Runs::default)
        .expect("spawn");
    let mut open: Vec<Uuid> = Vec::new();
    for i in 0..400u128 {
        if i == 200 {
            // A restart: what was open is found again in the tree.
            h.stop().await;
            h = projections::runner::spawn(store.clone(), store.db().clone(), Runs::default)
                .expect("respawn");
        }
        let at = start + time::Duration::minutes(i as i64);
        if open.is_empty() || rng.random_bool(0.55) {
            let id = Uuid::from_u128(5000 + i);
            let e: Event = RunStarted {
                run_id: id,
                bot_id: Uuid::from_u128(10 + i % 3),
                task: "t".into(),
                trigger_id: None,
            }
            .into();
            store
                .append(
                    &format!("run-{id}"),
                    ExpectedVersion::NoStream,
                    vec![proposed(&e, org, at)],
                )
                .await
                .expect("start");
            open.push(id);
        } else {
            let id = open.swap_remove(rng.random_range(0..open.len()));
            let e: Event = RunCompleted {
                duration_ms: 7,
                credits: domain::Credits(1),
            }
            .into();
            store
                .append(
                    &format!("run-{id}"),
                    ExpectedVersion::Exact(0),
                    vec![proposed(&e, org, at)],
                )
                .await
                .expect("end");
        }
        if i % 10 == 0 {
            // Let the runner commit in between, so starts and ends land in different batches.
            h.wait_for(store.head().await.expect("head"), Duration::from_secs(30))
                .await
                .expect("live");
        }
    }
    let head = store.head().await.expect("head");
    h.wait_for(head, Duration::from_secs(30))
        .await
        .expect("live");
    let live = tree_state(&h.tree());
    h.stop().await;
    let fresh_dir = tempfile::tempdir().expect("dir");
    let fresh = sled::open(fresh_dir.path()).expect("sled");
    let r = projections::runner::spawn(store.clone(), fresh, Runs::default).expect("spawn");
    r.wait_for(head, Duration::from_secs(30))
        .await
        .expect("caught up");
    assert_eq!(
        live,
        tree_state(&r.tree()),
        "live with a restart = one catch-up"
    );
    let page = runs::page(
        &r.tree(),
        org,
        &RunFilter::default(),
        100,
        None,
        Some(u64::MAX),
    )
    .expect("page");
    let running = page
        .runs
        .iter()
        .filter(|(_, v)| v.status == Status::Running)
        .count();
    assert!(
        running > 0 && running < page.runs.len(),
        "both open and ended runs"
    );
    r.stop().await;
}
