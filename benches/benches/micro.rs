//! Criterion micro-benchmarks: the domain's deciders, event encoding, the embedded
//! store's indexes and the read models' cursor pages.
//!
//! `cargo bench -p benches --bench micro` (about a minute; the store benchmarks first
//! write a ~50k-event history into a temporary directory and build the projections
//! over it, outside every measurement).

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use domain::events::*;
use domain::ledger::{ConsumeMode, CreditsCommand, Ledger};
use domain::organization::{Organization, OrganizationCommand};
use domain::{Actor, Aggregate, Credits, Event};
use projections::accounts::Accounts;
use projections::audit::{self, Audit, AuditQuery};
use projections::console::{self, Console};
use projections::runner::{self, ProjectionHandle};
use projections::runs::{self, RunFilter, Runs};
use rand::{Rng, SeedableRng};
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;
use store::{
    Direction, EmbeddedStore, EventStore, ExpectedVersion, Metadata, ProposedEvent, StoreError,
};
use time::OffsetDateTime;
use uuid::Uuid;

/// Events the store benchmarks write (the generator's runs and their credits).
const HISTORY_EVENTS: u64 = 50_000;
/// Members of the large organization (the owner included).
const MEMBERS: u128 = 1_000;

const BOT: Uuid = Uuid::from_u128(0xB07);
const OWNER: Uuid = Uuid::from_u128(0x0111);
const BIG_ORG: Uuid = Uuid::from_u128(0x0000_0000_0000_4000_8000_0000_0000_beef);

fn config() -> Criterion {
    Criterion::default()
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500))
        .sample_size(20)
}

// ---------------------------------------------------------------------------------------
// Domain: decide and apply

fn grant(n: u128, amount: u64, expires_at: Option<OffsetDateTime>) -> Event {
    CreditsGranted {
        grant_id: Uuid::from_u128(n),
        amount: Credits(amount),
        source: GrantSource::Promo,
        expires_at,
    }
    .into()
}

fn consumed(amount: u64, key: &str) -> Event {
    CreditsConsumed {
        amount: Credits(amount),
        bot_id: BOT,
        run_id: Some(Uuid::from_u128(0x5150)),
        key: key.into(),
        period: "2026-06".into(),
    }
    .into()
}

/// A ledger with four grants (two expiring, two not) and 100 consumptions.
fn ledger() -> Ledger {
    let now = domain::aggregate::testing::now();
    let mut events = vec![
        grant(1, 1_000_000, Some(now + time::Duration::days(30))),
        grant(2, 500_000, Some(now + time::Duration::days(7))),
        grant(3, 2_000_000, None),
        grant(4, 100_000, None),
    ];
    events.extend((0..100).map(|i| consumed(10, &format!("key-{i}"))));
    Ledger::replay(&events)
}

fn member_events(org: Uuid, members: u128) -> Vec<Event> {
    let expires_at = domain::aggregate::testing::now() + time::Duration::days(7);
    let mut events = vec![Event::from(OrganizationCreated {
        org_id: org,
        name: "Big Org".into(),
        owner_id: OWNER,
        admin_alias: "Owner".into(),
        admin_email: "owner@big.test".into(),
    })];
    for i in 1..members {
        let invitation_id = Uuid::from_u128(0x1_0000 + i);
        let role = if i % 10 == 0 { "admin" } else { "member" };
        events.push(
            MemberInvited {
                invitation_id,
                email: format!("user{i}@big.test"),
                kind: MemberKind::Member,
                role_ids: vec![role.into()],
                expires_at,
            }
            .into(),
        );
        events.push(
            MemberJoined {
                invitation_id,
                user_id: member_id(i),
                kind: MemberKind::Member,
                role_ids: vec![role.into()],
            }
            .into(),
        );
    }
    events
}

fn member_id(i: u128) -> Uuid {
    Uuid::from_u128(0x2_0000 + i)
}

fn domain_benches(c: &mut Criterion) {
    use domain::aggregate::testing::{admin_ctx, ctx};

    let ledger = ledger();
    let consume = CreditsCommand::Consume {
        amount: Credits(25),
        bot_id: BOT,
        run_id: None,
        key: "a-new-key".into(),
        mode: ConsumeMode::Strict,
    };
    let bot_ctx = ctx(Actor::Bot(BOT), &[]);
    assert!(
        matches!(
            ledger.decide(&consume, &bot_ctx).as_deref(),
            Ok([Event::CreditsConsumed(_)])
        ),
        "the benchmarked consumption is granted"
    );
    c.bench_function("domain/ledger_decide_consume_strict_4_grants", |b| {
        b.iter(|| black_box(&ledger).decide(black_box(&consume), &bot_ctx))
    });

    let event = consumed(25, "a-new-key");
    c.bench_function("domain/ledger_apply_credits_consumed", |b| {
        b.iter_batched(
            || ledger.clone(),
            |mut l| {
                l.apply(black_box(&event));
                l
            },
            BatchSize::SmallInput,
        )
    });

    let org = Organization::replay(&member_events(BIG_ORG, MEMBERS));
    assert_eq!(org.members.len(), MEMBERS as usize, "the org's members");
    let invite = OrganizationCommand::InviteMember {
        invitation_id: Uuid::from_u128(0x9_9999),
        email: "newcomer@big.test".into(),
        kind: MemberKind::Member,
        role_ids: vec!["member".into()],
    };
    let owner_ctx = admin_ctx(OWNER);
    assert!(
        org.decide(&invite, &owner_ctx).is_ok(),
        "the benchmarked invitation is accepted"
    );
    c.bench_function(
        "domain/organization_decide_invite_member_1000_members",
        |b| b.iter(|| black_box(&org).decide(black_box(&invite), &owner_ctx)),
    );
}

// ---------------------------------------------------------------------------------------
// Events: payload to JSON and back

fn event_benches(c: &mut Criterion) {
    let samples: Vec<Event> = vec![
        consumed(25, "run-0192f1c4-3a5e-7b7c-9d2e-4f1a2b3c4d5e"),
        MemberInvited {
            invitation_id: Uuid::from_u128(0x1234),
            email: "someone@example.test".into(),
            kind: MemberKind::Member,
            role_ids: vec!["member".into(), "viewer".into()],
            expires_at: domain::aggregate::testing::now(),
        }
        .into(),
        RunCompleted {
            duration_ms: 4_321,
            credits: Credits(17),
        }
        .into(),
    ];
    for e in &samples {
        let ty = e.event_type();
        let schema = e.schema();
        let json = serde_json::to_string(&e.data()).expect("a payload serializes");
        assert_eq!(
            &Event::decode(ty, schema, &json).expect("a payload decodes"),
            e,
            "{ty} round-trips"
        );
        c.bench_function(&format!("event/data_to_json_value/{ty}"), |b| {
            b.iter(|| black_box(e).data())
        });
        c.bench_function(&format!("event/decode_from_json/{ty}"), |b| {
            b.iter(|| Event::decode(black_box(ty), schema, black_box(&json)))
        });
    }
}

// ---------------------------------------------------------------------------------------
// Store indexes and read-model pages over a ~50k-event history

fn proposed(e: &Event, actor: store::Actor, org: Uuid) -> ProposedEvent {
    ProposedEvent {
        schema: e.schema(),
        ..ProposedEvent::new(
            e.event_type(),
            e.data(),
            Metadata::new(actor, Some(org), OffsetDateTime::now_utc()),
        )
    }
}

/// The large organization: its users registered, then its stream of 1,000 members.
async fn write_big_org(store: &Arc<EmbeddedStore>) -> Result<(), StoreError> {
    let mut users = tokio::task::JoinSet::new();
    for i in 0..MEMBERS {
        let store = store.clone();
        users.spawn(async move {
            let (id, email) = if i == 0 {
                (OWNER, "owner@big.test".to_owned())
            } else {
                (member_id(i), format!("user{i}@big.test"))
            };
            let e: Event = UserRegistered {
                user_id: id,
                email,
                alias: format!("User {i}"),
            }
            .into();
            store
                .append(
                    &domain::streams::user(id),
                    ExpectedVersion::NoStream,
                    vec![proposed(&e, store::Actor::user(id), BIG_ORG)],
                )
                .await
        });
    }
    while let Some(r) = users.join_next().await {
        r.map_err(|e| StoreError::Invalid(e.to_string()))??;
    }
    let batch = member_events(BIG_ORG, MEMBERS)
        .iter()
        .map(|e| proposed(e, store::Actor::user(OWNER), BIG_ORG))
        .collect();
    store
        .append(
            &domain::streams::organization(BIG_ORG),
            ExpectedVersion::NoStream,
            batch,
        )
        .await?;
    Ok(())
}

struct Fixture {
    store: Arc<EmbeddedStore>,
    head: u64,
    orgs: Vec<Uuid>,
    handles: Vec<ProjectionHandle>,
}

async fn fixture(dir: &std::path::Path) -> Result<Fixture, Box<dyn std::error::Error>> {
    let store = Arc::new(EmbeddedStore::open(dir)?);
    let written = benches::history::write(&store, 20, HISTORY_EVENTS, 0.3).await?;
    write_big_org(&store).await?;
    let head = store.head().await?;
    let es: Arc<dyn EventStore> = store.clone();
    let db = store.db().clone();
    let handles = vec![
        runner::spawn(es.clone(), db.clone(), Audit::default)?,
        runner::spawn(es.clone(), db.clone(), Runs::default)?,
        runner::spawn(es.clone(), db.clone(), Console::default)?,
        runner::spawn(es, db, Accounts::default)?,
    ];
    for h in &handles {
        h.wait_for(head, Duration::from_secs(600)).await?;
    }
    Ok(Fixture {
        store,
        head,
        orgs: written.orgs,
        handles,
    })
}

fn store_benches(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let f = rt
        .block_on(fixture(dir.path()))
        .expect("the history is written and projected");
    let store = f.store.clone();
    let (head, hot) = (f.head, f.orgs[0]);
    let [audit_h, runs_h, console_h, accounts_h] = &f.handles[..] else {
        panic!("four projections");
    };

    // The store's indexes.
    let credits = domain::streams::credits(hot);
    let last = rt
        .block_on(store.read_stream(&credits, u64::MAX, Direction::Backwards, 1))
        .expect("the credits stream reads");
    assert_eq!(last.len(), 1, "the credits stream has a last event");
    c.bench_function("store/read_stream_last_event_backwards", |b| {
        b.to_async(&rt).iter(|| async {
            store
                .read_stream(black_box(&credits), u64::MAX, Direction::Backwards, 1)
                .await
                .expect("read_stream")
        })
    });
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    c.bench_function("store/read_all_1_event_at_random_position", |b| {
        b.to_async(&rt).iter(|| {
            let from = rng.random_range(1..=head);
            let store = &store;
            async move { store.read_all(from, 1).await.expect("read_all") }
        })
    });
    let mut rng = rand::rngs::StdRng::seed_from_u64(4);
    let org = f.orgs[1];
    c.bench_function("store/read_org_50_events_from_random_position", |b| {
        b.to_async(&rt).iter(|| {
            let from = rng.random_range(1..=head / 2);
            let store = &store;
            async move { store.read_org(org, from, 50).await.expect("read_org") }
        })
    });

    // The audit log: the newest 50 run.completed entries of the hot org, and 50 before a
    // random position.
    let audit_tree = audit_h.tree();
    let q = AuditQuery::parse("action:run.completed").expect("an audit query");
    let first = rt
        .block_on(audit::page(
            &audit_tree,
            store.as_ref(),
            hot,
            &q,
            50,
            None,
            Some(u64::MAX),
        ))
        .expect("an audit page");
    assert_eq!(first.entries.len(), 50, "a full audit page");
    c.bench_function("projections/audit_page_50_by_action_newest", |b| {
        b.to_async(&rt).iter(|| async {
            audit::page(
                &audit_tree,
                store.as_ref(),
                hot,
                &q,
                50,
                None,
                Some(u64::MAX),
            )
            .await
            .expect("audit page")
        })
    });
    let mut rng = rand::rngs::StdRng::seed_from_u64(6);
    c.bench_function("projections/audit_page_50_by_action_random_cursor", |b| {
        b.to_async(&rt).iter(|| {
            let before = Some(rng.random_range(head / 4..=head));
            let (tree, store, q) = (&audit_tree, &store, &q);
            async move {
                audit::page(tree, store.as_ref(), hot, q, 50, before, Some(u64::MAX))
                    .await
                    .expect("audit page")
            }
        })
    });

    // Run history: the newest 50 runs of the hot org, all and by one bot.
    let runs_tree = runs_h.tree();
    let all = RunFilter::default();
    let by_bot = RunFilter {
        bot: Some(Uuid::from_u128(hot.as_u128() ^ 0x1003)),
        ..RunFilter::default()
    };
    for (name, filter) in [("all", &all), ("by_bot", &by_bot)] {
        let page =
            runs::page(&runs_tree, hot, filter, 50, None, Some(u64::MAX)).expect("a runs page");
        assert_eq!(page.runs.len(), 50, "a full runs page ({name})");
        c.bench_function(&format!("projections/runs_page_50_newest_{name}"), |b| {
            b.iter(|| {
                runs::page(&runs_tree, hot, black_box(filter), 50, None, Some(u64::MAX))
                    .expect("runs page")
            })
        });
    }

    // Console: the first 20 members of the org of 1,000.
    let (console_tree, accounts_tree) = (console_h.tree(), accounts_h.tree());
    let (rows, has_next, total) =
        console::query::members(&console_tree, &accounts_tree, BIG_ORG, None, None, 20, None)
            .expect("a members page");
    assert_eq!(
        (rows.len(), has_next, total),
        (20, true, MEMBERS as usize),
        "a members page of the big org"
    );
    assert!(!rows[0].alias.is_empty(), "aliases from the accounts model");
    c.bench_function("projections/console_members_page_20_of_1000", |b| {
        b.iter(|| {
            console::query::members(&console_tree, &accounts_tree, BIG_ORG, None, None, 20, None)
                .expect("members page")
        })
    });

    rt.block_on(async {
        for h in &f.handles {
            h.stop().await;
        }
    });
}

criterion_group! {
    name = micro;
    config = config();
    targets = domain_benches, event_benches, store_benches
}
criterion_main!(micro);
