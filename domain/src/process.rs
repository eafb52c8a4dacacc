//! Processes: what one stream's events cause in another.
//!
//! A command writes one stream. Where an action touches two — an organization is
//! created (its billing starts on `free`), a run ends (its credits are consumed), a
//! plan changes or renews (its credits are granted), a credits invoice is paid (the
//! credits are granted), a triggered run fails (the trigger counts it) — the first
//! append is the command's, and the follow-up below is issued as a command of its own,
//! idempotent by a key derived from the first event: a crash between the two is
//! repaired when the process catches up, and nothing is done twice.

use crate::amounts::Credits;
use crate::billing::{Billing, BillingCommand};
use crate::events::{Event, GrantSource};
use crate::ledger::{ConsumeMode, CreditsCommand};
use crate::plans::FREE;
use crate::run::Run;
use crate::streams;
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FollowUp {
    /// `organization.created` → `billing-<org>`: the organization starts on `free`.
    StartSubscription { org: Uuid },
    /// `run.completed` (or `run.failed` with credits) → `credits-<org>`, keyed by the run id.
    ConsumeRunCredits {
        org: Uuid,
        run_id: Uuid,
        bot_id: Uuid,
        amount: Credits,
    },
    /// `run.failed` of a triggered run → `trigger-<id>`; the executor counts the
    /// consecutive failures from the run history.
    RecordTriggerFailure { trigger_id: Uuid, run_id: Uuid },
    /// A change to, or renewal of, a paid plan → `credits-<org>`: the plan's credits,
    /// expiring at the period end. The grant id derives from the causing event's id.
    GrantCredits {
        org: Uuid,
        grant_id: Uuid,
        amount: Credits,
        source: GrantSource,
        expires_at: Option<OffsetDateTime>,
    },
}

impl FollowUp {
    /// The stream the follow-up command writes.
    pub fn stream(&self) -> String {
        match self {
            FollowUp::StartSubscription { org } => streams::billing(*org),
            FollowUp::ConsumeRunCredits { org, .. } | FollowUp::GrantCredits { org, .. } => {
                streams::credits(*org)
            }
            FollowUp::RecordTriggerFailure { trigger_id, .. } => streams::trigger(*trigger_id),
        }
    }

    /// The billing command, for billing follow-ups.
    pub fn billing_command(&self) -> Option<BillingCommand> {
        match self {
            FollowUp::StartSubscription { .. } => Some(BillingCommand::StartSubscription {
                plan: FREE.id.into(),
                seats: FREE.seats_min,
            }),
            _ => None,
        }
    }

    /// The ledger command, for credits follow-ups.
    pub fn credits_command(&self) -> Option<CreditsCommand> {
        match self {
            FollowUp::ConsumeRunCredits {
                run_id,
                bot_id,
                amount,
                ..
            } => Some(CreditsCommand::Consume {
                amount: *amount,
                bot_id: *bot_id,
                run_id: Some(*run_id),
                key: run_id.to_string(),
                mode: ConsumeMode::RunCompletion,
            }),
            FollowUp::GrantCredits {
                grant_id,
                amount,
                source,
                expires_at,
                ..
            } => Some(CreditsCommand::Grant {
                grant_id: *grant_id,
                amount: *amount,
                source: *source,
                expires_at: *expires_at,
            }),
            _ => None,
        }
    }
}

/// An id derived from the event that caused a follow-up: the same cause always gives
/// the same id, so a repeated follow-up is recognized as done.
pub fn derived_id(cause: Uuid, tag: u8) -> Uuid {
    let mixed = cause.as_u128()
        ^ (u128::from(tag) + 1).wrapping_mul(0x2545_F491_4F6C_DD1D_9E37_79B9_7F4A_7C15);
    uuid::Builder::from_random_bytes(mixed.to_le_bytes()).into_uuid()
}

/// Follow-ups of events appended to `organization-<org>`.
pub fn after_organization(org: Uuid, events: &[Event]) -> Vec<FollowUp> {
    events
        .iter()
        .filter(|e| matches!(e, Event::OrganizationCreated(_)))
        .map(|_| FollowUp::StartSubscription { org })
        .collect()
}

/// Follow-ups of events appended to a run; `run` is its state after them.
pub fn after_run(org: Uuid, run: &Run, events: &[Event]) -> Vec<FollowUp> {
    let (Some(run_id), Some(bot_id)) = (run.id, run.bot_id) else {
        return vec![];
    };
    let mut out = Vec::new();
    for e in events {
        let credits = match e {
            Event::RunCompleted(c) => Some(c.credits),
            Event::RunFailed(f) => {
                if let Some(trigger_id) = run.trigger_id {
                    out.push(FollowUp::RecordTriggerFailure { trigger_id, run_id });
                }
                f.credits
            }
            _ => None,
        };
        if let Some(amount) = credits.filter(|c| !c.is_zero()) {
            out.push(FollowUp::ConsumeRunCredits {
                org,
                run_id,
                bot_id,
                amount,
            });
        }
    }
    out
}

/// Follow-ups of billing events whose ids are `ids` (in order); `billing` is the state
/// after them.
pub fn after_billing(
    org: Uuid,
    billing: &Billing,
    events: &[Event],
    ids: &[Uuid],
) -> Vec<FollowUp> {
    let mut out = Vec::new();
    // One plan grant per decision (a fallback plan change and its renewal grant once),
    // keyed by the first event that caused it; seat-only changes grant nothing.
    if let Some((amount, expires_at)) = billing.plan_credit_grant(events) {
        let cause = events.iter().zip(ids).find(|(e, _)| {
            matches!(
                e,
                Event::SubscriptionPlanChanged(_) | Event::SubscriptionRenewed(_)
            )
        });
        if let Some((_, id)) = cause {
            out.push(FollowUp::GrantCredits {
                org,
                grant_id: derived_id(*id, 1),
                amount,
                source: GrantSource::Plan,
                expires_at: Some(expires_at),
            });
        }
    }
    for (e, id) in events.iter().zip(ids) {
        if let Event::InvoicePaid(p) = e
            && let Some(amount) = billing.credits_bought_by(p.invoice_id)
        {
            out.push(FollowUp::GrantCredits {
                org,
                grant_id: derived_id(*id, 2),
                amount,
                source: GrantSource::Purchase,
                expires_at: None,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::Aggregate;
    use crate::events::{RunCompleted, RunFailed, RunStarted};

    const ORG: Uuid = Uuid::from_u128(10);
    const RUN: Uuid = Uuid::from_u128(50);
    const BOT: Uuid = Uuid::from_u128(40);
    const TRIGGER: Uuid = Uuid::from_u128(60);

    #[test]
    fn a_completed_run_consumes_its_credits_keyed_by_the_run() {
        let started: Event = RunStarted {
            run_id: RUN,
            bot_id: BOT,
            task: "t".into(),
            trigger_id: None,
        }
        .into();
        let done: Event = RunCompleted {
            duration_ms: 5,
            credits: Credits(7),
        }
        .into();
        let run = Run::replay(&[started, done.clone()]);
        let f = after_run(ORG, &run, &[done]);
        assert_eq!(
            f,
            vec![FollowUp::ConsumeRunCredits {
                org: ORG,
                run_id: RUN,
                bot_id: BOT,
                amount: Credits(7)
            }]
        );
        assert!(
            matches!(f[0].credits_command(), Some(CreditsCommand::Consume { key, mode: ConsumeMode::RunCompletion, .. }) if key == RUN.to_string())
        );
    }

    #[test]
    fn a_failed_triggered_run_is_counted_against_its_trigger() {
        let started: Event = RunStarted {
            run_id: RUN,
            bot_id: BOT,
            task: "t".into(),
            trigger_id: Some(TRIGGER),
        }
        .into();
        let failed: Event = RunFailed {
            duration_ms: 5,
            error: "x".into(),
            credits: None,
        }
        .into();
        let run = Run::replay(&[started, failed.clone()]);
        assert_eq!(
            after_run(ORG, &run, &[failed]),
            vec![FollowUp::RecordTriggerFailure {
                trigger_id: TRIGGER,
                run_id: RUN
            }]
        );
    }

    #[test]
    fn a_plan_change_grants_its_credits_once_and_a_seat_change_grants_nothing() {
        use crate::billing::BillingCommand;
        use crate::context::{Actor, Context};
        use crate::permissions::Permission;
        let now = crate::aggregate::testing::now();
        let system = Context::system(now, 1);
        let manager = Context::new(
            now,
            Actor::User(Uuid::from_u128(1)),
            Permission::ALL.iter().copied().collect(),
            2,
        );
        let mut b = Billing::default();
        b.execute(
            &BillingCommand::StartSubscription {
                plan: "free".into(),
                seats: 5,
            },
            &system,
        )
        .unwrap();
        let change = b
            .execute(
                &BillingCommand::ChangePlan {
                    plan: "team".into(),
                    seats: 3,
                    seats_used: 1,
                },
                &manager,
            )
            .unwrap();
        let ids: Vec<Uuid> = (0..change.len() as u128)
            .map(|i| Uuid::from_u128(700 + i))
            .collect();
        let f = after_billing(ORG, &b, &change, &ids);
        assert!(
            matches!(f.as_slice(), [FollowUp::GrantCredits { amount, source: GrantSource::Plan, .. }] if *amount == Credits(10_000)),
            "{f:?}"
        );
        let seats = b
            .execute(
                &BillingCommand::ChangePlan {
                    plan: "team".into(),
                    seats: 4,
                    seats_used: 1,
                },
                &manager,
            )
            .unwrap();
        let ids: Vec<Uuid> = (0..seats.len() as u128)
            .map(|i| Uuid::from_u128(800 + i))
            .collect();
        assert!(
            after_billing(ORG, &b, &seats, &ids).is_empty(),
            "seats alone grant nothing"
        );
    }

    #[test]
    fn derived_ids_are_stable_and_distinct_per_tag() {
        let cause = Uuid::from_u128(12345);
        assert_eq!(derived_id(cause, 1), derived_id(cause, 1));
        assert_ne!(derived_id(cause, 1), derived_id(cause, 2));
        assert_ne!(derived_id(cause, 1), derived_id(Uuid::from_u128(12346), 1));
    }
}
