//! Writes organization histories: members, bots, runs with their credits.

use domain::events::*;
use domain::{Credits, Event};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use store::{
    Actor, EmbeddedStore, EventStore, ExpectedVersion, Metadata, ProposedEvent, StoreError,
};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

/// Appends kept in flight while writing, so group commit shares the syncs.
const IN_FLIGHT: u64 = 64;

fn proposed(e: &Event, actor: &Actor, org: Uuid, at: OffsetDateTime) -> ProposedEvent {
    ProposedEvent {
        schema: e.schema(),
        ..ProposedEvent::new(
            e.event_type(),
            e.data(),
            Metadata::new(actor.clone(), Some(org), at),
        )
    }
}

/// What was written: the organizations, the busiest one first.
pub struct Written {
    pub orgs: Vec<Uuid>,
    pub users: Vec<Uuid>,
    pub events: u64,
}

/// Writes about `events` events over `orgs` organizations; the first organization gets
/// `big_share` of the runs (a hot tenant for P7).
pub async fn write(
    store: &Arc<EmbeddedStore>,
    orgs: usize,
    events: u64,
    big_share: f64,
) -> Result<Written, StoreError> {
    let start = OffsetDateTime::now_utc() - Duration::days(30);
    let org_ids: Vec<Uuid> = (0..orgs)
        .map(|i| Uuid::from_u128(0x0000_0000_0000_4000_8000_0000_0000_0000 | (i as u128 + 1) << 64))
        .collect();
    let users: Vec<Uuid> = (0..20u128)
        .map(|i| Uuid::from_u128(0x0000_0000_0000_4000_8000_0000_0000_0000 | (i + 1)))
        .collect();
    for (o, org) in org_ids.iter().enumerate() {
        let owner = Actor::user(users[o % users.len()]);
        let mut evs = vec![Event::from(OrganizationCreated {
            org_id: *org,
            name: format!("Org {o}"),
            owner_id: users[o % users.len()],
            admin_alias: "Admin".into(),
            admin_email: format!("admin{o}@example.test"),
        })];
        for (i, u) in users
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != o % users.len())
            .take(10)
        {
            let inv = Uuid::from_u128(org.as_u128() ^ (0x100 + i as u128));
            evs.push(
                MemberInvited {
                    invitation_id: inv,
                    email: format!("user{i}@example.test"),
                    kind: MemberKind::Member,
                    role_ids: vec!["member".into()],
                    expires_at: start + Duration::days(7),
                }
                .into(),
            );
            evs.push(
                MemberJoined {
                    invitation_id: inv,
                    user_id: *u,
                    kind: MemberKind::Member,
                    role_ids: vec!["member".into()],
                }
                .into(),
            );
        }
        let batch = evs
            .iter()
            .map(|e| proposed(e, &owner, *org, start))
            .collect();
        store
            .append(&format!("organization-{org}"), ExpectedVersion::Any, batch)
            .await?;
        let grant: Event = CreditsGranted {
            grant_id: Uuid::from_u128(org.as_u128() ^ 0x77),
            amount: Credits(u64::MAX / 4),
            source: GrantSource::Promo,
            expires_at: None,
        }
        .into();
        store
            .append(
                &format!("credits-{org}"),
                ExpectedVersion::Any,
                vec![proposed(&grant, &owner, *org, start)],
            )
            .await?;
        for b in 0..8u128 {
            let bot = Uuid::from_u128(org.as_u128() ^ (0x1000 + b));
            let e: Event = BotRegistered {
                bot_id: bot,
                name: format!("bot-{b}"),
                machine: Some("WIN-RPA".into()),
            }
            .into();
            store
                .append(
                    &format!("bot-{bot}"),
                    ExpectedVersion::Any,
                    vec![proposed(&e, &owner, *org, start)],
                )
                .await?;
        }
    }
    let written = Arc::new(AtomicU64::new(store.head().await?));
    let runs = events.saturating_sub(written.load(Ordering::Relaxed)) / 3;
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..IN_FLIGHT {
        let (store, next, org_ids) = (store.clone(), next.clone(), org_ids.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let r = next.fetch_add(1, Ordering::Relaxed);
                if r >= runs {
                    return Ok::<(), StoreError>(());
                }
                let big = (r % 1000) as f64 / 1000.0 < big_share;
                let org = if big || org_ids.len() < 2 {
                    org_ids[0]
                } else {
                    org_ids[1 + r as usize % (org_ids.len() - 1)]
                };
                let bot = Uuid::from_u128(org.as_u128() ^ (0x1000 + (r % 8) as u128));
                let run = Uuid::from_u128(org.as_u128() ^ (0x1_0000_0000 + r as u128));
                let at = start + Duration::seconds(r as i64 % (30 * 86_400));
                let actor = Actor::bot(bot);
                let credits = Credits(1 + r % 50);
                let lifecycle: Vec<Event> = vec![
                    RunStarted {
                        run_id: run,
                        bot_id: bot,
                        task: format!("task-{}", r % 20),
                        trigger_id: None,
                    }
                    .into(),
                    if r % 20 == 0 {
                        RunFailed {
                            duration_ms: 900,
                            error: "selector not found".into(),
                            credits: None,
                        }
                        .into()
                    } else {
                        RunCompleted {
                            duration_ms: 1_000 + r % 9_000,
                            credits,
                        }
                        .into()
                    },
                ];
                store
                    .append(
                        &format!("run-{run}"),
                        ExpectedVersion::NoStream,
                        lifecycle
                            .iter()
                            .map(|e| proposed(e, &actor, org, at))
                            .collect(),
                    )
                    .await?;
                let consumed: Event = CreditsConsumed {
                    amount: credits,
                    bot_id: bot,
                    run_id: Some(run),
                    key: run.to_string(),
                    period: domain::ledger::period_of(at),
                }
                .into();
                store
                    .append(
                        &format!("credits-{org}"),
                        ExpectedVersion::Any,
                        vec![proposed(&consumed, &Actor::system(), org, at)],
                    )
                    .await?;
            }
        }));
    }
    for t in tasks {
        t.await.map_err(|e| StoreError::Invalid(e.to_string()))??;
    }
    Ok(Written {
        orgs: org_ids,
        users,
        events: store.head().await?,
    })
}
