//! Audit pages against a brute-force filter of the whole log.

use projections::audit::{self, Audit, AuditQuery};
use projections::runner;
use rand::{Rng, SeedableRng};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use store::{
    Actor, EmbeddedStore, EventStore, ExpectedVersion, Metadata, ProposedEvent, RecordedEvent,
};
use uuid::Uuid;

const ACTIONS: [&str; 4] = [
    "member.invited",
    "role.granted",
    "run.started",
    "bot.disabled",
];

async fn build() -> (tempfile::TempDir, Arc<EmbeddedStore>, Vec<RecordedEvent>) {
    let dir = tempfile::tempdir().expect("dir");
    let store = Arc::new(EmbeddedStore::open(dir.path()).expect("open"));
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let start = time::macros::datetime!(2026-03-01 0:00 UTC);
    for i in 0..1_500u64 {
        let org = Uuid::from_u128(1 + rng.random_range(0..3));
        let actor = Actor::user(Uuid::from_u128(100 + rng.random_range(0..5)));
        let at = start + time::Duration::hours(i as i64);
        let action = ACTIONS[rng.random_range(0..4)];
        let target = Uuid::from_u128(200 + rng.random_range(0..4));
        let e = ProposedEvent::new(
            action,
            json!({ "user_id": target, "i": i }),
            Metadata::new(actor, Some(org), at),
        );
        store
            .append(
                &format!("organization-{org}"),
                ExpectedVersion::Any,
                vec![e],
            )
            .await
            .expect("append");
    }
    let all = store.read_all(1, 10_000).await.expect("all");
    (dir, store, all)
}

fn brute(all: &[RecordedEvent], org: Uuid, q: &AuditQuery) -> Vec<u64> {
    all.iter()
        .rev()
        .filter(|e| e.org() == Some(org))
        .filter(|e| q.actions.is_empty() || q.actions.contains(&e.event_type))
        .filter(|e| !q.not_actions.contains(&e.event_type))
        .filter(|e| q.actor.as_ref().is_none_or(|a| *a == e.meta.actor.id))
        .filter(|e| q.target.as_ref().is_none_or(|t| *t == audit::target_of(e)))
        .filter(|e| {
            q.from.is_none_or(|f| e.meta.occurred_at >= f)
                && q.to.is_none_or(|t| e.meta.occurred_at <= t)
        })
        .map(|e| e.position)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_filter_pages_exactly_what_a_scan_of_the_log_finds() {
    let (_dir, store, all) = build().await;
    let h = runner::spawn(store.clone(), store.db().clone(), Audit::default).expect("spawn");
    h.wait_for(1_500, Duration::from_secs(30))
        .await
        .expect("caught up");
    let tree = h.tree();
    let org = Uuid::from_u128(2);
    let actor = Uuid::from_u128(101).to_string();
    let target = Uuid::from_u128(203).to_string();
    let queries = [
        String::new(),
        "action:member.invited".into(),
        format!("actor:{actor}"),
        format!("actor:{actor} action:role.granted"),
        format!("target:{target} -action:run.started"),
        "action:run.started action:bot.disabled created:2026-03-10..2026-03-20".into(),
        "created:>=2026-04-01 -action:member.invited".into(),
    ];
    for qs in &queries {
        let q = AuditQuery::parse(qs).expect("query");
        let want = brute(&all, org, &q);
        let mut got = Vec::new();
        let mut cursor = None;
        loop {
            let page = audit::page(&tree, store.as_ref(), org, &q, 37, cursor, Some(u64::MAX))
                .await
                .expect("page");
            // Every page counts the whole connection, whatever the query or cursor.
            assert_eq!(page.total_count, want.len() as u64, "total for {qs:?}");
            got.extend(page.entries.iter().map(|e| e.position));
            if !page.has_next {
                break;
            }
            cursor = page.entries.last().map(|e| e.position);
        }
        assert_eq!(got, want, "query {qs:?}");
        // Below a time-travel bound, the count is of the entries below it.
        if let Some(&mid) = want.get(want.len() / 2) {
            let below = audit::page(&tree, store.as_ref(), org, &q, 10, Some(mid), Some(mid))
                .await
                .expect("page");
            let expected = want.iter().filter(|p| **p < mid).count() as u64;
            assert_eq!(below.total_count, expected, "total below {mid} for {qs:?}");
        }
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_target_finds_the_runs_own_events_and_the_credits_naming_it() {
    let dir = tempfile::tempdir().expect("dir");
    let store = Arc::new(EmbeddedStore::open(dir.path()).expect("open"));
    let org = Uuid::from_u128(1);
    let run = Uuid::from_u128(77);
    let at = time::macros::datetime!(2026-03-01 0:00 UTC);
    let meta = || Metadata::new(Actor::system(), Some(org), at);
    let ev = |t: &str, d: serde_json::Value| ProposedEvent::new(t, d, meta());
    store
        .append(
            &format!("run-{run}"),
            ExpectedVersion::NoStream,
            vec![ev("run.started", json!({ "run_id": run }))],
        )
        .await
        .expect("append");
    store
        .append(
            &format!("credits-{org}"),
            ExpectedVersion::Any,
            vec![ev(
                "credits.consumed",
                json!({ "run_id": run, "amount": 5 }),
            )],
        )
        .await
        .expect("append");
    store
        .append(
            &format!("run-{run}"),
            ExpectedVersion::Any,
            vec![ev("run.completed", json!({ "credits": 5 }))],
        )
        .await
        .expect("append");
    let h = runner::spawn(store.clone(), store.db().clone(), Audit::default).expect("spawn");
    h.wait_for(3, Duration::from_secs(30))
        .await
        .expect("caught up");
    let q = AuditQuery::parse(&format!("target:{run}")).expect("query");
    let page = audit::page(&h.tree(), store.as_ref(), org, &q, 10, None, None)
        .await
        .expect("page");
    let positions: Vec<u64> = page.entries.iter().map(|e| e.position).collect();
    assert_eq!(
        positions,
        vec![3, 2, 1],
        "every event of the run, newest first"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_organizations_entries_never_appear() {
    let (_dir, store, _all) = build().await;
    let h = runner::spawn(store.clone(), store.db().clone(), Audit::default).expect("spawn");
    h.wait_for(1_500, Duration::from_secs(30))
        .await
        .expect("caught up");
    let org = Uuid::from_u128(3);
    let page = audit::page(
        &h.tree(),
        store.as_ref(),
        org,
        &AuditQuery::default(),
        100,
        None,
        Some(u64::MAX),
    )
    .await
    .expect("page");
    assert_eq!(page.entries.len(), 100);
    assert!(page.entries.iter().all(|e| e.org() == Some(org)));
    assert!(
        page.entries
            .windows(2)
            .all(|w| w[0].position > w[1].position),
        "newest first"
    );
    let nobody = audit::page(
        &h.tree(),
        store.as_ref(),
        Uuid::from_u128(99),
        &AuditQuery::default(),
        10,
        None,
        Some(u64::MAX),
    )
    .await
    .expect("page");
    assert!(nobody.entries.is_empty() && nobody.total_count == 0);
    h.stop().await;
}
