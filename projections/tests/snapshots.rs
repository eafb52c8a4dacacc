//! Time travel from snapshots: at any position or time it must equal a replay of the
//! organization's events from the start of the log stopped there — whatever snapshots
//! exist, including ones that do not decode.

use domain::Credits;
use domain::Event;
use domain::events::{CreditsGranted, GrantSource, OrganizationCreated};
use fixtures::generator::{Params, generate_with};
use projections::snapshots::{self, Snapshots};
use projections::time_travel::{OrgSnapshot, TimePoint, org_at, org_at_with};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use store::{
    Actor, EmbeddedStore, EventStore, ExpectedVersion, Metadata, ProposedEvent, RecordedEvent,
};
use time::OffsetDateTime;
use time::macros::datetime;
use uuid::Uuid;

/// A small spacing, so a short history has many snapshots.
const EVERY: u64 = 50;

async fn read_all(store: &EmbeddedStore) -> Vec<RecordedEvent> {
    let mut out = Vec::new();
    loop {
        let page = store
            .read_all(out.len() as u64 + 1, 10_000)
            .await
            .expect("read");
        if page.is_empty() {
            return out;
        }
        out.extend(page);
    }
}

/// How many of the org's events a replay from the start takes for a point: in log
/// order, until the first that is `past` it.
fn cut(events: &[&RecordedEvent], past: impl Fn(&RecordedEvent) -> bool) -> usize {
    events.iter().position(|e| past(e)).unwrap_or(events.len())
}

/// Replays of the org's events from position 1, one per cut, in one pass.
fn replays(events: &[&RecordedEvent], cuts: &[usize]) -> BTreeMap<usize, OrgSnapshot> {
    let mut wanted: Vec<usize> = cuts.to_vec();
    wanted.sort_unstable();
    wanted.dedup();
    let mut out = BTreeMap::new();
    let mut s = OrgSnapshot::default();
    let mut taken = 0;
    for k in wanted {
        for e in &events[taken..k] {
            s.apply(e).expect("apply");
        }
        taken = k;
        out.insert(k, s.clone());
    }
    out
}

/// Checks time travel from `snaps` against replays from zero at every point.
async fn check(
    store: &EmbeddedStore,
    snaps: &Snapshots,
    org: Uuid,
    events: &[&RecordedEvent],
    points: &[TimePoint],
) {
    let cuts: Vec<usize> = points
        .iter()
        .map(|point| match *point {
            TimePoint::Position(p) => cut(events, |e| e.position > p),
            TimePoint::At(t) => cut(events, |e| e.meta.occurred_at > t),
        })
        .collect();
    let expected = replays(events, &cuts);
    for (point, k) in points.iter().zip(&cuts) {
        let got = org_at_with(store, snaps, org, *point)
            .await
            .expect("time travel");
        assert_eq!(&got, &expected[k], "org {org} at {point:?} ({k} events)");
    }
}

async fn write_snapshots(store: &Arc<EmbeddedStore>) -> Snapshots {
    let es: Arc<dyn EventStore> = store.clone();
    let writer = snapshots::spawn(es, store.db().clone(), EVERY).expect("spawn");
    let head = store.head().await.expect("head");
    writer
        .wait_for(head, Duration::from_secs(60))
        .await
        .expect("snapshots written");
    writer.stop().await;
    Snapshots::open(store.db()).expect("snapshots")
}

fn snapshot_positions(snaps: &Snapshots, org: Uuid) -> Vec<u64> {
    let mut prefix = org.as_bytes().to_vec();
    prefix.push(b'p');
    snaps
        .tree()
        .scan_prefix(&prefix)
        .keys()
        .map(|k| {
            let k = k.expect("key");
            u64::from_be_bytes(k[17..25].try_into().expect("position"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_travel_from_snapshots_equals_a_replay_from_zero_at_any_position_or_time() {
    let dir = tempfile::tempdir().expect("dir");
    let store = Arc::new(EmbeddedStore::open(dir.path()).expect("open"));
    let params = Params {
        orgs: 3,
        members_max: 12,
        events: 2_000,
        days: 20,
        demo: false,
    };
    let summary = generate_with(
        &store,
        &params,
        11,
        datetime!(2026-11-20 15:30 UTC),
        &|_| {},
    )
    .await
    .expect("generate");
    let snaps = write_snapshots(&store).await;
    let all = read_all(&store).await;
    let head = store.head().await.expect("head");
    let mut checked_with_snapshot = 0;
    for &org in &summary.orgs {
        let events: Vec<&RecordedEvent> = all.iter().filter(|e| e.meta.org == Some(org)).collect();
        // Every EVERY-th event of the org has its snapshot, at exactly that event.
        let expected: Vec<u64> = events
            .iter()
            .skip(EVERY as usize - 1)
            .step_by(EVERY as usize)
            .map(|e| e.position)
            .collect();
        assert_eq!(snapshot_positions(&snaps, org), expected, "org {org}");

        // Positions: at events, just before them (between two events), 0 and the head.
        let first_snapshot = expected.first().copied().unwrap_or(u64::MAX);
        let mut points: Vec<TimePoint> = events
            .iter()
            .step_by(13)
            .flat_map(|e| [e.position - 1, e.position])
            .chain([0, head])
            .inspect(|p| checked_with_snapshot += usize::from(*p >= first_snapshot))
            .map(TimePoint::Position)
            .collect();
        // Times: at events, a nanosecond before them (between two events of a
        // snapshot's span), before everything and after the last.
        let last = events
            .last()
            .map_or(OffsetDateTime::UNIX_EPOCH, |e| e.meta.occurred_at);
        points.extend(
            events
                .iter()
                .step_by(13)
                .flat_map(|e| {
                    [
                        e.meta.occurred_at,
                        e.meta.occurred_at - time::Duration::nanoseconds(1),
                    ]
                })
                .chain([OffsetDateTime::UNIX_EPOCH, last + time::Duration::days(1)])
                .map(TimePoint::At),
        );
        check(&store, &snaps, org, &events, &points).await;
    }
    assert!(checked_with_snapshot > 100, "{checked_with_snapshot}");
}

/// Appends one event of `org` that occurred at `at`.
async fn append(store: &EmbeddedStore, org: Uuid, stream: &str, e: Event, at: OffsetDateTime) {
    let meta = Metadata::new(Actor::system(), Some(org), at);
    let proposed = ProposedEvent {
        schema: e.schema(),
        ..ProposedEvent::new(e.event_type(), e.data(), meta)
    };
    store
        .append(stream, ExpectedVersion::Any, vec![proposed])
        .await
        .expect("append");
}

/// A history whose times go back now and then (clocks differ between writers): a
/// snapshot that folded an event later than T is unusable for T even when its last
/// event is earlier, and a damaged snapshot only means a longer fold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_respect_out_of_order_times_and_damaged_ones_fall_back_to_the_fold() {
    let dir = tempfile::tempdir().expect("dir");
    let store = Arc::new(EmbeddedStore::open(dir.path()).expect("open"));
    let org = Uuid::from_u128(0x42);
    let base = datetime!(2026-05-01 9:00 UTC);
    append(
        &store,
        org,
        &format!("organization-{org}"),
        OrganizationCreated {
            org_id: org,
            name: "Acme".into(),
            owner_id: Uuid::from_u128(1),
            admin_alias: "O".into(),
            admin_email: "o@acme.test".into(),
        }
        .into(),
        base,
    )
    .await;
    let mut times = vec![base];
    for i in 0..400i64 {
        // Every 13th event occurred two hours before its neighbours.
        let at = base + time::Duration::minutes(i + 1)
            - time::Duration::hours(if i % 13 == 7 { 2 } else { 0 });
        times.push(at);
        append(
            &store,
            org,
            &format!("credits-{org}"),
            CreditsGranted {
                grant_id: Uuid::from_u128(1_000 + i as u128),
                amount: Credits(1 + i as u64),
                source: GrantSource::Promo,
                expires_at: None,
            }
            .into(),
            at,
        )
        .await;
        // Another org interleaves: it must not count towards this one's snapshots.
        if i % 3 == 0 {
            let other = Uuid::from_u128(0x43);
            append(
                &store,
                other,
                &format!("organization-{other}"),
                Event::from(OrganizationCreated {
                    org_id: other,
                    name: "Other".into(),
                    owner_id: Uuid::from_u128(2),
                    admin_alias: "P".into(),
                    admin_email: "p@other.test".into(),
                }),
                at,
            )
            .await;
        }
    }
    let snaps = write_snapshots(&store).await;
    let all = read_all(&store).await;
    let events: Vec<&RecordedEvent> = all.iter().filter(|e| e.meta.org == Some(org)).collect();
    let positions = snapshot_positions(&snaps, org);
    assert_eq!(positions.len(), 401 / EVERY as usize);

    let mut points: Vec<TimePoint> = times
        .iter()
        .flat_map(|t| {
            [
                *t,
                *t - time::Duration::seconds(30),
                *t + time::Duration::seconds(30),
            ]
        })
        .map(TimePoint::At)
        .collect();
    points.extend(events.iter().map(|e| TimePoint::Position(e.position)));
    check(&store, &snaps, org, &events, &points).await;

    // A snapshot's span holds a backdated event: for a time between it and the span's
    // later events, that snapshot is not used, the one before it is.
    let second = snaps
        .get(org, positions[1])
        .expect("decodes")
        .expect("stored");
    let first = snaps
        .get(org, positions[0])
        .expect("decodes")
        .expect("stored");
    let max_first = first.max_occurred_at.expect("folded");
    let t = max_first + time::Duration::seconds(1);
    assert!(second.max_occurred_at.expect("folded") > t);
    let best = snaps.best(org, TimePoint::At(t)).expect("usable");
    assert_eq!(best.snapshot.position, positions[0]);

    // Damage: garbage under the newest, an unknown format under the one before, and a
    // time index entry pointing at a removed snapshot.
    let key = |p: u64| {
        let mut k = org.as_bytes().to_vec();
        k.push(b'p');
        k.extend_from_slice(&p.to_be_bytes());
        k
    };
    let n = positions.len();
    let tree = snaps.tree();
    tree.insert(key(positions[n - 1]), b"\x01garbage".to_vec())
        .expect("damage");
    tree.insert(key(positions[n - 2]), b"\x09".to_vec())
        .expect("damage");
    tree.remove(key(positions[n - 3])).expect("damage");
    assert!(snaps.get(org, positions[n - 1]).is_err());
    let head = store.head().await.expect("head");
    let got = org_at_with(store.as_ref(), &snaps, org, TimePoint::Position(head))
        .await
        .expect("falls back");
    assert_eq!(
        got,
        org_at(store.as_ref(), org, TimePoint::Position(head))
            .await
            .expect("fold")
    );
    assert_eq!(
        snaps
            .best(org, TimePoint::Position(head))
            .map(|f| f.snapshot.position),
        Some(positions[n - 4])
    );
    let some: Vec<TimePoint> = points.iter().step_by(4).copied().collect();
    check(&store, &snaps, org, &events, &some).await;

    // Every snapshot damaged: a full fold, still equal.
    for p in &positions {
        tree.insert(key(*p), b"\x01".to_vec()).expect("damage");
    }
    assert!(snaps.best(org, TimePoint::Position(head)).is_none());
    check(&store, &snaps, org, &events, &some).await;
}
