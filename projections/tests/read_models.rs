//! Read models and time travel over histories decided by the domain: each must equal
//! what the domain's own aggregates fold from the same events.

use domain::aggregate::Aggregate;
use domain::bot::{Bot, BotCommand};
use domain::ledger::{ConsumeMode, CreditsCommand, Ledger};
use domain::organization::{Organization, OrganizationCommand};
use domain::{
    Actor, Context, Credits, Event,
    events::{GrantSource, MemberKind},
};
use projections::time_travel::{OrgSnapshot, TimePoint, org_at};
use std::sync::Arc;
use store::{EmbeddedStore, EventStore, ExpectedVersion, Metadata, ProposedEvent};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

struct Writer {
    store: Arc<EmbeddedStore>,
    org_id: Uuid,
    now: OffsetDateTime,
    n: u128,
    /// (position, time) of every appended event, and its (stream, event).
    log: Vec<(u64, OffsetDateTime, String, Event)>,
}

impl Writer {
    async fn decide<A: Aggregate>(
        &mut self,
        state: &mut A,
        stream: &str,
        cmd: A::Command,
        actor: Actor,
    ) -> Vec<Event> {
        self.now += Duration::minutes(7);
        self.n += 1;
        let ctx = Context::new(self.now, actor, Default::default(), self.n);
        let ctx = match actor {
            Actor::User(_) => Context {
                permissions: domain::Permission::ALL.iter().copied().collect(),
                ..ctx
            },
            _ => ctx,
        };
        let events = state.execute(&cmd, &ctx).unwrap_or_default();
        if events.is_empty() {
            return events;
        }
        let store_actor = match actor {
            Actor::User(u) => store::Actor::user(u),
            Actor::Bot(b) => store::Actor::bot(b),
            Actor::System => store::Actor::system(),
        };
        let proposed = events
            .iter()
            .map(|e| ProposedEvent {
                schema: e.schema(),
                ..ProposedEvent::new(
                    e.event_type(),
                    e.data(),
                    Metadata::new(store_actor.clone(), Some(self.org_id), self.now),
                )
            })
            .collect();
        let r = self
            .store
            .append(stream, ExpectedVersion::Any, proposed)
            .await
            .expect("append");
        for (i, e) in events.iter().enumerate() {
            self.log.push((
                r.first_position + i as u64,
                self.now,
                stream.to_owned(),
                e.clone(),
            ));
        }
        events
    }
}

/// The expected snapshot: every aggregate folded from the events up to `upto`.
fn replay_until(
    log: &[(u64, OffsetDateTime, String, Event)],
    upto: impl Fn(u64, OffsetDateTime) -> bool,
) -> (Organization, Ledger, usize) {
    let take: Vec<_> = log.iter().filter(|(p, t, _, _)| upto(*p, *t)).collect();
    let org = Organization::replay(
        take.iter()
            .filter(|x| x.2.starts_with("organization-"))
            .map(|x| &x.3),
    );
    let mut ledger = Ledger::replay(
        take.iter()
            .filter(|x| x.2.starts_with("credits-"))
            .map(|x| &x.3),
    );
    // Time travel keeps no consumption keys: only decisions need them (`OrgSnapshot`).
    ledger.consumed_keys.clear();
    (org, ledger, take.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_org_at_any_position_or_time_equals_a_replay_stopped_there() {
    let dir = tempfile::tempdir().expect("dir");
    let store = Arc::new(EmbeddedStore::open(dir.path()).expect("open"));
    let org_id = Uuid::from_u128(77);
    let owner = Uuid::from_u128(1);
    let mut w = Writer {
        store: store.clone(),
        org_id,
        now: time::macros::datetime!(2026-05-01 9:00 UTC),
        n: 0,
        log: Vec::new(),
    };
    let (mut org, mut ledger, mut bot) =
        (Organization::default(), Ledger::default(), Bot::default());
    let org_stream = format!("organization-{org_id}");
    let credits = format!("credits-{org_id}");
    w.decide(
        &mut org,
        &org_stream,
        OrganizationCommand::Create {
            org_id,
            name: "Acme".into(),
            admin_alias: "O".into(),
            admin_email: "o@acme.test".into(),
        },
        Actor::User(owner),
    )
    .await;
    let bot_id = Uuid::from_u128(40);
    w.decide(
        &mut bot,
        &format!("bot-{bot_id}"),
        BotCommand::Register {
            bot_id,
            name: "b".into(),
            machine: None,
        },
        Actor::User(owner),
    )
    .await;
    for i in 0..40u128 {
        let user = Uuid::from_u128(100 + i);
        let email = format!("u{i}@acme.test");
        let inv = Uuid::from_u128(1000 + i);
        w.decide(
            &mut org,
            &org_stream,
            OrganizationCommand::InviteMember {
                invitation_id: inv,
                email: email.clone(),
                kind: MemberKind::Member,
                role_ids: vec![],
            },
            Actor::User(owner),
        )
        .await;
        w.decide(
            &mut org,
            &org_stream,
            OrganizationCommand::AcceptInvitation {
                invitation_id: inv,
                user_id: user,
                user_email: email,
                seats_total: 100,
            },
            Actor::User(user),
        )
        .await;
        w.decide(
            &mut ledger,
            &credits,
            CreditsCommand::Grant {
                grant_id: Uuid::from_u128(5000 + i),
                amount: Credits(100),
                source: GrantSource::Promo,
                expires_at: None,
            },
            Actor::User(owner),
        )
        .await;
        w.decide(
            &mut ledger,
            &credits,
            CreditsCommand::Consume {
                amount: Credits(30 + i as u64),
                bot_id,
                run_id: None,
                key: format!("k{i}"),
                mode: ConsumeMode::Strict,
            },
            Actor::Bot(bot_id),
        )
        .await;
        // Another organization's events interleave and must not leak in.
        let other = Uuid::from_u128(78);
        let meta = Metadata::new(store::Actor::system(), Some(other), w.now);
        store
            .append(
                &format!("organization-{other}"),
                ExpectedVersion::Any,
                vec![ProposedEvent::new(
                    "member.left",
                    serde_json::json!({"user_id": owner}),
                    meta,
                )],
            )
            .await
            .expect("other org");
    }
    let head = store.head().await.expect("head");
    let positions: Vec<u64> = w.log.iter().map(|x| x.0).collect();
    for &p in positions.iter().step_by(7).chain([0, head].iter()) {
        let snap: OrgSnapshot = org_at(store.as_ref(), org_id, TimePoint::Position(p))
            .await
            .expect("time travel");
        let (org, ledger, n) = replay_until(&w.log, |pos, _| pos <= p);
        assert_eq!(
            (snap.org, snap.ledger),
            (org, ledger),
            "at position {p} ({n} events)"
        );
    }
    for (_, t, _, _) in w.log.iter().step_by(11) {
        let snap = org_at(store.as_ref(), org_id, TimePoint::At(*t))
            .await
            .expect("time travel");
        let (org, ledger, _) = replay_until(&w.log, |_, at| at <= *t);
        assert_eq!((snap.org, snap.ledger), (org, ledger), "at {t}");
    }
    let now = org_at(store.as_ref(), org_id, TimePoint::Position(head))
        .await
        .expect("now");
    assert_eq!(now.org.members.len(), 41);
    assert_eq!(now.bots.len(), 1);
    assert!(now.ledger.balance() > Credits(0));
    assert!(
        now.ledger.total_consumed > 0,
        "the history consumed credits"
    );
    assert!(now.ledger.consumed_keys.is_empty(), "no keys kept");
    assert!(
        now.runs
            .values()
            .all(|r| r.status == domain::run::RunStatus::Running),
        "only open runs kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_credits_read_model_spends_and_counts_exactly_as_the_ledger() {
    use projections::credits::{CreditsProjection, query};
    let dir = tempfile::tempdir().expect("dir");
    let store = Arc::new(EmbeddedStore::open(dir.path()).expect("open"));
    let org_id = Uuid::from_u128(5);
    let owner = Uuid::from_u128(1);
    let mut w = Writer {
        store: store.clone(),
        org_id,
        now: time::macros::datetime!(2026-05-01 9:00 UTC),
        n: 0,
        log: Vec::new(),
    };
    let mut ledger = Ledger::default();
    let credits = format!("credits-{org_id}");
    let bots = [
        Uuid::from_u128(40),
        Uuid::from_u128(41),
        Uuid::from_u128(42),
    ];
    w.decide(
        &mut ledger,
        &credits,
        CreditsCommand::SetAlert {
            alert_id: Uuid::from_u128(9),
            threshold: Credits(500),
            webhook_url: None,
        },
        Actor::User(owner),
    )
    .await;
    for i in 0..300u64 {
        if i % 25 == 0 {
            let expires = (i % 50 == 0).then(|| w.now + Duration::hours(30));
            w.decide(
                &mut ledger,
                &credits,
                CreditsCommand::Grant {
                    grant_id: Uuid::from_u128(7000 + i as u128),
                    amount: Credits(2_000),
                    source: GrantSource::Promo,
                    expires_at: expires,
                },
                Actor::User(owner),
            )
            .await;
        }
        if i == 150 {
            w.decide(
                &mut ledger,
                &credits,
                CreditsCommand::SetLimit {
                    limit: Credits(20_000),
                },
                Actor::User(owner),
            )
            .await;
        }
        let bot = bots[(i % 3) as usize];
        w.now += Duration::minutes(90);
        let run = (i % 2 == 0).then(|| Uuid::from_u128(9000 + i as u128));
        w.decide(
            &mut ledger,
            &credits,
            CreditsCommand::Consume {
                amount: Credits(50 + i % 70),
                bot_id: bot,
                run_id: run,
                key: format!("k{i}"),
                mode: ConsumeMode::Strict,
            },
            Actor::Bot(bot),
        )
        .await;
        if i % 40 == 0 {
            w.decide(&mut ledger, &credits, CreditsCommand::Expire, Actor::System)
                .await;
        }
    }
    let h = projections::runner::spawn(
        store.clone(),
        store.db().clone(),
        CreditsProjection::default,
    )
    .expect("spawn");
    h.wait_for(
        store.head().await.expect("head"),
        std::time::Duration::from_secs(30),
    )
    .await
    .expect("caught up");
    let doc = query::doc(&h.tree(), org_id).expect("doc");
    assert_eq!(doc.balance(), ledger.balance());
    assert_eq!(doc.grants, ledger.grants, "grants spent in the same order");
    assert_eq!(
        doc.alerts.values().map(|a| a.in_alarm).collect::<Vec<_>>(),
        ledger
            .alerts
            .values()
            .map(|a| a.in_alarm)
            .collect::<Vec<_>>()
    );
    assert_eq!(
        (doc.limit, doc.used_in(w.now)),
        (ledger.limit, ledger.used_in(w.now))
    );
    let consumed: u64 = w
        .log
        .iter()
        .filter_map(|x| match &x.3 {
            Event::CreditsConsumed(c) => Some(c.amount.0),
            _ => None,
        })
        .sum();
    assert_eq!(
        query::consumed(&h.tree(), org_id, None, None).expect("consumed"),
        consumed
    );
    let by_bot = query::breakdown(&h.tree(), org_id, query::By::Bot, None, None).expect("by bot");
    assert_eq!(by_bot.len(), 3);
    assert_eq!(by_bot.iter().map(|(_, b)| b.credits).sum::<u64>(), consumed);
    let by_day = query::breakdown(&h.tree(), org_id, query::By::Day, None, None).expect("by day");
    let (from, to) = (
        time::macros::datetime!(2026-05-03 0:00 UTC),
        time::macros::datetime!(2026-05-04 23:00 UTC),
    );
    let two_days: u64 = w
        .log
        .iter()
        .filter(|x| x.1 >= from && x.1 <= time::macros::datetime!(2026-05-04 23:59:59 UTC))
        .filter_map(|x| match &x.3 {
            Event::CreditsConsumed(c) => Some(c.amount.0),
            _ => None,
        })
        .sum();
    assert_eq!(
        query::consumed(&h.tree(), org_id, Some(from), Some(to)).expect("range"),
        two_days
    );
    assert!(by_day.len() > 10);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_hold_the_permissions_the_organization_aggregate_grants() {
    use domain::user::{User, UserCommand};
    use projections::accounts::{Accounts, query};
    let dir = tempfile::tempdir().expect("dir");
    let store = Arc::new(EmbeddedStore::open(dir.path()).expect("open"));
    let org_id = Uuid::from_u128(77);
    let owner = Uuid::from_u128(1);
    let mut w = Writer {
        store: store.clone(),
        org_id,
        now: time::macros::datetime!(2026-05-01 9:00 UTC),
        n: 0,
        log: Vec::new(),
    };
    let mut org = Organization::default();
    let org_stream = format!("organization-{org_id}");
    let mut owner_account = User::default();
    w.decide(
        &mut owner_account,
        &format!("user-{owner}"),
        UserCommand::Register {
            user_id: owner,
            email: "Owner@Acme.test".into(),
            alias: "Olga".into(),
            email_in_use: false,
        },
        Actor::User(owner),
    )
    .await;
    w.decide(
        &mut org,
        &org_stream,
        OrganizationCommand::Create {
            org_id,
            name: "Acme".into(),
            admin_alias: "O".into(),
            admin_email: "o@acme.test".into(),
        },
        Actor::User(owner),
    )
    .await;
    w.decide(
        &mut org,
        &org_stream,
        OrganizationCommand::CreateRole {
            role_id: "ops".into(),
            name: "Ops".into(),
            permissions: vec!["bots:read".into(), "console:access".into()],
        },
        Actor::User(owner),
    )
    .await;
    for i in 0..12u128 {
        let user = Uuid::from_u128(100 + i);
        let email = format!("u{i}@acme.test");
        let inv = Uuid::from_u128(1000 + i);
        let kind = if i % 4 == 3 {
            MemberKind::ExternalCollaborator
        } else {
            MemberKind::Member
        };
        w.decide(
            &mut org,
            &org_stream,
            OrganizationCommand::InviteMember {
                invitation_id: inv,
                email: email.clone(),
                kind,
                role_ids: vec![],
            },
            Actor::User(owner),
        )
        .await;
        w.decide(
            &mut org,
            &org_stream,
            OrganizationCommand::AcceptInvitation {
                invitation_id: inv,
                user_id: user,
                user_email: email,
                seats_total: 100,
            },
            Actor::User(user),
        )
        .await;
        match i % 3 {
            0 => {
                w.decide(
                    &mut org,
                    &org_stream,
                    OrganizationCommand::GrantRole {
                        user_id: user,
                        role_id: "ops".into(),
                    },
                    Actor::User(owner),
                )
                .await;
            }
            1 => {
                w.decide(
                    &mut org,
                    &org_stream,
                    OrganizationCommand::GrantRole {
                        user_id: user,
                        role_id: "admin".into(),
                    },
                    Actor::User(owner),
                )
                .await;
            }
            _ if i > 6 => {
                w.decide(
                    &mut org,
                    &org_stream,
                    OrganizationCommand::RemoveMember { user_id: user },
                    Actor::User(owner),
                )
                .await;
            }
            _ => {}
        }
    }
    w.decide(
        &mut org,
        &org_stream,
        OrganizationCommand::UpdateRole {
            role_id: "ops".into(),
            name: None,
            permissions: Some(vec!["runs:read".into()]),
        },
        Actor::User(owner),
    )
    .await;
    w.decide(
        &mut org,
        &org_stream,
        OrganizationCommand::TransferOwnership {
            to_user_id: Uuid::from_u128(101),
        },
        Actor::User(owner),
    )
    .await;
    let h = projections::runner::spawn(store.clone(), store.db().clone(), Accounts::default)
        .expect("spawn");
    h.wait_for(
        store.head().await.expect("head"),
        std::time::Duration::from_secs(30),
    )
    .await
    .expect("caught up");
    let tree = h.tree();
    let doc = query::organization(&tree, org_id)
        .expect("read")
        .expect("org");
    assert_eq!(
        doc.members.keys().collect::<Vec<_>>(),
        org.members.keys().collect::<Vec<_>>()
    );
    for user in (0..14u128).map(|i| Uuid::from_u128(if i == 13 { 1 } else { 100 + i })) {
        assert_eq!(
            doc.permissions_of(user),
            org.permissions_of(user),
            "permissions of {user}"
        );
    }
    assert_eq!(
        query::user_by_email(&tree, " owner@acme.test")
            .expect("read")
            .map(|u| u.alias),
        Some("Olga".into())
    );
    let ms = query::memberships(&tree, Uuid::from_u128(101)).expect("memberships");
    assert_eq!(ms.len(), 1);
    assert!(ms[0].2.roles.contains("owner"));
    assert!(
        query::memberships(&tree, Uuid::from_u128(108))
            .expect("removed")
            .is_empty()
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_holds_each_aggregate_exactly_as_the_domain_folds_it() {
    use domain::billing::{Billing, BillingCommand};
    use domain::events::{BotStatus, TriggerKind};
    use domain::trigger::{Trigger, TriggerCommand};
    use projections::console::{Console, query};
    let dir = tempfile::tempdir().expect("dir");
    let store = Arc::new(EmbeddedStore::open(dir.path()).expect("open"));
    let org_id = Uuid::from_u128(31);
    let owner = Uuid::from_u128(1);
    let mut w = Writer {
        store: store.clone(),
        org_id,
        now: time::macros::datetime!(2026-05-01 9:00 UTC),
        n: 0,
        log: Vec::new(),
    };
    let mut org = Organization::default();
    let mut billing = Billing::default();
    let org_stream = format!("organization-{org_id}");
    let billing_stream = format!("billing-{org_id}");
    w.decide(
        &mut org,
        &org_stream,
        OrganizationCommand::Create {
            org_id,
            name: "Acme".into(),
            admin_alias: "O".into(),
            admin_email: "o@acme.test".into(),
        },
        Actor::User(owner),
    )
    .await;
    w.decide(
        &mut billing,
        &billing_stream,
        BillingCommand::StartSubscription {
            plan: "free".into(),
            seats: 5,
        },
        Actor::System,
    )
    .await;
    w.decide(
        &mut billing,
        &billing_stream,
        BillingCommand::AddPaymentMethod {
            payment_method_id: Uuid::from_u128(80),
            brand: "visa".into(),
            last4: "4242".into(),
            exp_month: 12,
            exp_year: 2031,
            make_default: true,
        },
        Actor::User(owner),
    )
    .await;
    w.decide(
        &mut billing,
        &billing_stream,
        BillingCommand::ChangePlan {
            plan: "team".into(),
            seats: 12,
            seats_used: 1,
        },
        Actor::User(owner),
    )
    .await;
    let mut bots = std::collections::BTreeMap::new();
    for i in 0..6u128 {
        let bot_id = Uuid::from_u128(400 + i);
        let mut bot = Bot::default();
        w.decide(
            &mut bot,
            &format!("bot-{bot_id}"),
            BotCommand::Register {
                bot_id,
                name: format!("bot-{i}"),
                machine: None,
            },
            Actor::User(owner),
        )
        .await;
        if i % 2 == 0 {
            w.decide(
                &mut bot,
                &format!("bot-{bot_id}"),
                BotCommand::ReportStatus {
                    status: BotStatus::Online,
                },
                Actor::Bot(bot_id),
            )
            .await;
        }
        if i == 3 {
            w.decide(
                &mut bot,
                &format!("bot-{bot_id}"),
                BotCommand::Disable {
                    reason: Some("maintenance".into()),
                },
                Actor::User(owner),
            )
            .await;
        }
        if i == 5 {
            w.decide(
                &mut bot,
                &format!("bot-{bot_id}"),
                BotCommand::Delete,
                Actor::User(owner),
            )
            .await;
        }
        bots.insert(bot_id, bot);
    }
    let trigger_id = Uuid::from_u128(600);
    let mut trigger = Trigger::default();
    w.decide(
        &mut trigger,
        &format!("trigger-{trigger_id}"),
        TriggerCommand::Create {
            trigger_id,
            name: "nightly".into(),
            kind: TriggerKind::Schedule,
            schedule: Some("0 2 * * *".into()),
            bot_id: Uuid::from_u128(400),
            task: "sync".into(),
            bot_exists: true,
        },
        Actor::User(owner),
    )
    .await;
    w.decide(
        &mut trigger,
        &format!("trigger-{trigger_id}"),
        TriggerCommand::Fire {
            run_id: Uuid::from_u128(9),
        },
        Actor::System,
    )
    .await;

    let h = projections::runner::spawn(store.clone(), store.db().clone(), Console::default)
        .expect("spawn");
    h.wait_for(
        store.head().await.expect("head"),
        std::time::Duration::from_secs(30),
    )
    .await
    .expect("caught up");
    let tree = h.tree();
    assert_eq!(query::organization(&tree, org_id).expect("org"), Some(org));
    assert_eq!(query::billing(&tree, org_id).expect("billing"), billing);
    let live: Vec<(Uuid, Bot)> = bots.into_iter().filter(|(_, b)| !b.deleted).collect();
    assert_eq!(query::bots(&tree, org_id).expect("bots"), live);
    assert_eq!(
        query::triggers(&tree, org_id).expect("triggers"),
        vec![(trigger_id, trigger)]
    );
    let o = query::overview(&tree, org_id).expect("overview");
    assert_eq!(
        (
            o.seats_used,
            o.seats_total,
            o.bots_total,
            o.bots_enabled,
            o.bots_online
        ),
        (1, 12, 5, 4, 3)
    );
    assert_eq!(
        query::organization(&tree, Uuid::from_u128(32)).expect("none"),
        None,
        "nothing of another org"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_lists_members_invitations_and_roles_as_the_console_shows_them() {
    use domain::user::{User, UserCommand};
    use projections::accounts::Accounts;
    use projections::console::{Console, query};
    let dir = tempfile::tempdir().expect("dir");
    let store = Arc::new(EmbeddedStore::open(dir.path()).expect("open"));
    let org_id = Uuid::from_u128(90);
    let owner = Uuid::from_u128(1);
    let mut w = Writer {
        store: store.clone(),
        org_id,
        now: time::macros::datetime!(2026-05-01 9:00 UTC),
        n: 0,
        log: Vec::new(),
    };
    let mut org = Organization::default();
    let os = format!("organization-{org_id}");
    w.decide(
        &mut org,
        &os,
        OrganizationCommand::Create {
            org_id,
            name: "Acme".into(),
            admin_alias: "O".into(),
            admin_email: "o@acme.test".into(),
        },
        Actor::User(owner),
    )
    .await;
    let names = ["alice", "albert", "bob", "carol", "dave", "erin"];
    for (i, name) in names.iter().enumerate() {
        let user = Uuid::from_u128(100 + i as u128);
        let email = format!("{name}@acme.test");
        let mut account = User::default();
        w.decide(
            &mut account,
            &format!("user-{user}"),
            UserCommand::Register {
                user_id: user,
                email: email.clone(),
                alias: name.to_uppercase(),
                email_in_use: false,
            },
            Actor::User(user),
        )
        .await;
        let inv = Uuid::from_u128(500 + i as u128);
        let kind = if i == 5 {
            MemberKind::ExternalCollaborator
        } else {
            MemberKind::Member
        };
        w.decide(
            &mut org,
            &os,
            OrganizationCommand::InviteMember {
                invitation_id: inv,
                email: email.clone(),
                kind,
                role_ids: vec![],
            },
            Actor::User(owner),
        )
        .await;
        w.decide(
            &mut org,
            &os,
            OrganizationCommand::AcceptInvitation {
                invitation_id: inv,
                user_id: user,
                user_email: email,
                seats_total: 50,
            },
            Actor::User(user),
        )
        .await;
    }
    // One pending, one revoked, one left to expire.
    w.decide(
        &mut org,
        &os,
        OrganizationCommand::InviteMember {
            invitation_id: Uuid::from_u128(600),
            email: "p@x.test".into(),
            kind: MemberKind::Member,
            role_ids: vec![],
        },
        Actor::User(owner),
    )
    .await;
    w.decide(
        &mut org,
        &os,
        OrganizationCommand::InviteMember {
            invitation_id: Uuid::from_u128(601),
            email: "r@x.test".into(),
            kind: MemberKind::Member,
            role_ids: vec![],
        },
        Actor::User(owner),
    )
    .await;
    w.decide(
        &mut org,
        &os,
        OrganizationCommand::RevokeInvitation {
            invitation_id: Uuid::from_u128(601),
        },
        Actor::User(owner),
    )
    .await;
    let es: Arc<dyn EventStore> = store.clone();
    let c = projections::runner::spawn(es.clone(), store.db().clone(), Console::default)
        .expect("console");
    let a =
        projections::runner::spawn(es, store.db().clone(), Accounts::default).expect("accounts");
    let head = store.head().await.expect("head");
    c.wait_for(head, std::time::Duration::from_secs(30))
        .await
        .expect("console");
    a.wait_for(head, std::time::Duration::from_secs(30))
        .await
        .expect("accounts");
    let (ct, at) = (c.tree(), a.tree());

    let (rows, more, total) =
        query::members(&ct, &at, org_id, None, Some("AL"), 10, None).expect("search");
    assert_eq!(
        (
            rows.iter().map(|r| r.alias.as_str()).collect::<Vec<_>>(),
            more,
            total
        ),
        (vec!["ALICE", "ALBERT"], false, 2)
    );
    // Anywhere in the alias or the email, not only at the start.
    let (rows, _, total) =
        query::members(&ct, &at, org_id, None, Some("er"), 10, None).expect("search");
    assert_eq!(
        (
            rows.iter().map(|r| r.alias.as_str()).collect::<Vec<_>>(),
            total
        ),
        (vec!["ALBERT", "ERIN"], 2)
    );
    let (rows, _, total) = query::members(
        &ct,
        &at,
        org_id,
        Some(MemberKind::ExternalCollaborator),
        None,
        10,
        None,
    )
    .expect("kind");
    assert_eq!(
        (rows.len(), total, rows[0].email.as_str()),
        (1, 1, "erin@acme.test")
    );
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let (rows, more, total) =
            query::members(&ct, &at, org_id, None, None, 3, after).expect("page");
        assert_eq!(total, 7);
        seen.extend(rows.iter().map(|r| r.user_id));
        if !more {
            break;
        }
        after = rows.last().map(|r| r.user_id);
    }
    assert_eq!(seen, org.members.keys().copied().collect::<Vec<_>>());

    let now = w.now;
    let pending = query::invitations(&ct, org_id, Some(query::InvitationStatus::Pending), now)
        .expect("pending");
    assert_eq!(
        pending.iter().map(|p| p.0).collect::<Vec<_>>(),
        vec![Uuid::from_u128(600)]
    );
    assert_eq!(
        pending[0].3.as_ref().map(|m| m.invited_by.clone()),
        Some(owner.to_string())
    );
    let later = now + domain::organization::INVITATION_TTL;
    let expired = query::invitations(&ct, org_id, Some(query::InvitationStatus::Expired), later)
        .expect("expired");
    assert_eq!(expired.len(), 1, "EXPIRED is derived from time");
    assert_eq!(
        query::invitations(&ct, org_id, Some(query::InvitationStatus::Revoked), now)
            .expect("revoked")
            .len(),
        1
    );
    assert_eq!(
        query::invitations(&ct, org_id, Some(query::InvitationStatus::Accepted), now)
            .expect("accepted")
            .len(),
        6
    );
    let roles = query::roles(&ct, org_id).expect("roles");
    let count = |id: &str| roles.iter().find(|r| r.0 == id).map(|r| r.2);
    assert_eq!(
        (count("owner"), count("member"), count("admin")),
        (Some(1), Some(6), Some(0))
    );
    c.stop().await;
    a.stop().await;
}
