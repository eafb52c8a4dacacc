//! The credit ledger of one organization — stream `credits-<org_id>` (the hot stream).
//!
//! Rules: credits are unsigned integers of the smallest unit; the balance never goes
//! below zero; consumption is idempotent by key; grants that expire first are spent
//! first (grants without expiry last, then in grant order) and `apply` spends exactly
//! as `decide` planned; grants past their expiry are expired before anything is spent;
//! the period limit denies consumption past it; a denial is recorded
//! (`credits.consumption_denied`) — it is an `Ok` decision, see [`denial_error`]; an
//! alert fires once per downward crossing of its threshold and resolves when a grant
//! lifts the balance back, in the same decision as the event that crossed it.

use crate::aggregate::Aggregate;
use crate::amounts::Credits;
use crate::context::{Actor, Context};
use crate::error::DomainError;
use crate::events::*;
use crate::permissions::Permission;
use crate::validate;
use std::collections::{BTreeMap, BTreeSet};
use time::OffsetDateTime;
use uuid::Uuid;

/// Alerts per organization.
pub const ALERTS_MAX: usize = 20;
/// Longest idempotency key.
pub const KEY_CHARS_MAX: usize = 200;
/// The only limit period there is.
pub const LIMIT_PERIOD: &str = "monthly";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsumeMode {
    /// `consumeCredits`: all or nothing; refused (and recorded) past the limit or the
    /// balance.
    Strict,
    /// After `run.completed`: the run already happened, so what the balance holds is
    /// consumed, the shortfall is recorded as denied, and the limit does not apply.
    RunCompletion,
}

#[derive(Clone, Debug, PartialEq)]
pub enum CreditsCommand {
    Grant {
        grant_id: Uuid,
        amount: Credits,
        source: GrantSource,
        expires_at: Option<OffsetDateTime>,
    },
    Consume {
        amount: Credits,
        bot_id: Uuid,
        run_id: Option<Uuid>,
        key: String,
        mode: ConsumeMode,
    },
    CheckRunStart {
        bot_id: Uuid,
        run_id: Uuid,
    },
    Expire,
    SetAlert {
        alert_id: Uuid,
        threshold: Credits,
        webhook_url: Option<String>,
    },
    RemoveAlert {
        alert_id: Uuid,
    },
    SetLimit {
        limit: Credits,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Grant {
    pub id: Uuid,
    pub amount: Credits,
    pub remaining: Credits,
    pub source: GrantSource,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alert {
    pub threshold: Credits,
    pub webhook_url: Option<String>,
    pub in_alarm: bool,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Ledger {
    /// In grant order.
    pub grants: Vec<Grant>,
    pub consumed_keys: BTreeSet<String>,
    pub alerts: BTreeMap<Uuid, Alert>,
    /// 0 = no limit.
    pub limit: Credits,
    /// The period (`YYYY-MM`) `used_in_period` counts.
    pub period: String,
    pub used_in_period: Credits,
    pub total_granted: u128,
    pub total_consumed: u128,
    pub total_expired: u128,
}

/// Takes `amount` from `grants` in spending order — earliest expiry first, grants
/// without expiry last, ties in grant order. Read models call this too, so they spend
/// exactly as the ledger does.
pub fn spend(grants: &mut [Grant], amount: Credits) {
    let mut order: Vec<usize> = (0..grants.len()).collect();
    order.sort_by_key(|&i| (grants[i].expires_at.is_none(), grants[i].expires_at, i));
    let mut left = amount.0;
    for i in order {
        let g = &mut grants[i];
        let take = left.min(g.remaining.0);
        g.remaining.0 -= take;
        left -= take;
    }
    debug_assert_eq!(left, 0, "a consumption never exceeds the balance");
}

/// The UTC month `YYYY-MM` of `t`: the limit period a consumption counts against.
pub fn period_of(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!("{:04}-{:02}", t.year(), u8::from(t.month()))
}

/// The refusal a decided denial stands for, so the API can answer `LIMIT_EXCEEDED`.
pub fn denial_error(events: &[Event]) -> Option<DomainError> {
    events.iter().find_map(|e| match e {
        Event::CreditsConsumptionDenied(d)
            if !events
                .iter()
                .any(|e| matches!(e, Event::CreditsConsumed(_))) =>
        {
            Some(match d.reason {
                DenialReason::InsufficientBalance => DomainError::InsufficientCredits,
                DenialReason::LimitExceeded => DomainError::UsageLimitReached,
            })
        }
        _ => None,
    })
}

impl Ledger {
    pub fn balance(&self) -> Credits {
        Credits(self.grants.iter().map(|g| g.remaining.0).sum())
    }

    /// Consumption counted against the limit in the period of `now`.
    pub fn used_in(&self, now: OffsetDateTime) -> Credits {
        if self.period == period_of(now) {
            self.used_in_period
        } else {
            Credits::ZERO
        }
    }

    /// Balance = Σ granted − Σ consumed − Σ expired = Σ remaining; nothing negative.
    pub fn check_invariants(&self) -> Result<(), String> {
        let remaining: u128 = self.grants.iter().map(|g| u128::from(g.remaining.0)).sum();
        let ledger = self
            .total_granted
            .checked_sub(self.total_consumed + self.total_expired);
        if ledger != Some(remaining) {
            return Err(format!(
                "balance {remaining} ≠ granted {} − consumed {} − expired {}",
                self.total_granted, self.total_consumed, self.total_expired
            ));
        }
        if let Some(g) = self.grants.iter().find(|g| g.remaining > g.amount) {
            return Err(format!("grant {} has more left than it granted", g.id));
        }
        Ok(())
    }

    fn spend(&mut self, amount: Credits) {
        spend(&mut self.grants, amount);
    }

    /// Expiry events for grants past `now` that still hold credits.
    fn expiries(&self, now: OffsetDateTime) -> Vec<Event> {
        self.grants
            .iter()
            .filter(|g| g.expires_at.is_some_and(|t| t <= now) && !g.remaining.is_zero())
            .map(|g| {
                CreditsExpired {
                    grant_id: g.id,
                    amount: g.remaining,
                }
                .into()
            })
            .collect()
    }

    /// Appends the alert events that `events` cause, deciding them on a scratch copy.
    fn with_alerts(&self, mut events: Vec<Event>) -> Vec<Event> {
        let after = Ledger::replay_onto(self.clone(), &events);
        let balance = after.balance();
        for (id, a) in &after.alerts {
            if !a.in_alarm && balance < a.threshold {
                events.push(
                    CreditsAlertTriggered {
                        alert_id: *id,
                        threshold: a.threshold,
                        balance,
                    }
                    .into(),
                );
            } else if a.in_alarm && balance >= a.threshold {
                events.push(
                    CreditsAlertResolved {
                        alert_id: *id,
                        balance,
                    }
                    .into(),
                );
            }
        }
        events
    }

    fn replay_onto(mut state: Ledger, events: &[Event]) -> Ledger {
        for e in events {
            state.apply(e);
        }
        state
    }

    fn consume(&self, c: &CreditsCommand, ctx: &Context) -> Result<Vec<Event>, DomainError> {
        let CreditsCommand::Consume {
            amount,
            bot_id,
            run_id,
            key,
            mode,
        } = c
        else {
            return Ok(vec![]);
        };
        match (ctx.actor, mode) {
            (Actor::System, _) => {}
            (Actor::Bot(b), ConsumeMode::Strict) if b == *bot_id => {}
            (Actor::Bot(_), _) => {
                return Err(DomainError::NotPermitted(
                    "a bot consumes credits only for itself",
                ));
            }
            (_, ConsumeMode::RunCompletion) => {
                return Err(DomainError::NotPermitted(
                    "run credits are consumed by the system",
                ));
            }
            (Actor::User(_), ConsumeMode::Strict) => ctx.require(Permission::CreditsManage)?,
        }
        let key = validate::name("key", key)?;
        if key.chars().count() > KEY_CHARS_MAX {
            return Err(DomainError::invalid(
                "key",
                format!("longer than {KEY_CHARS_MAX} characters"),
            ));
        }
        if self.consumed_keys.contains(&key) {
            return Ok(vec![]);
        }
        if amount.is_zero() {
            return Err(DomainError::invalid("amount", "must be greater than zero"));
        }
        let mut events = self.expiries(ctx.now);
        let balance = Ledger::replay_onto(self.clone(), &events).balance();
        let denied = |amount, reason| {
            CreditsConsumptionDenied {
                amount,
                bot_id: *bot_id,
                run_id: *run_id,
                reason,
            }
            .into()
        };
        let consumed = |amount| {
            CreditsConsumed {
                amount,
                bot_id: *bot_id,
                run_id: *run_id,
                key: key.clone(),
                period: period_of(ctx.now),
            }
            .into()
        };
        match mode {
            ConsumeMode::Strict => {
                let used = self.used_in(ctx.now).checked_add(*amount)?;
                if !self.limit.is_zero() && used > self.limit {
                    events.push(denied(*amount, DenialReason::LimitExceeded));
                } else if balance < *amount {
                    events.push(denied(*amount, DenialReason::InsufficientBalance));
                } else {
                    events.push(consumed(*amount));
                }
            }
            ConsumeMode::RunCompletion => {
                // Always recorded, even at zero, so the run's key is settled: a repeated
                // follow-up after a crash then changes nothing.
                let take = (*amount).min(balance);
                events.push(consumed(take));
                if take < *amount {
                    events.push(denied(
                        amount.saturating_sub(take),
                        DenialReason::InsufficientBalance,
                    ));
                }
            }
        }
        Ok(self.with_alerts(events))
    }
}

impl Aggregate for Ledger {
    type Command = CreditsCommand;

    fn apply(&mut self, event: &Event) {
        match event {
            Event::CreditsGranted(e) => {
                self.grants.push(Grant {
                    id: e.grant_id,
                    amount: e.amount,
                    remaining: e.amount,
                    source: e.source,
                    expires_at: e.expires_at,
                });
                self.total_granted += u128::from(e.amount.0);
            }
            Event::CreditsConsumed(e) => {
                self.spend(e.amount);
                self.total_consumed += u128::from(e.amount.0);
                self.consumed_keys.insert(e.key.clone());
                if self.period != e.period {
                    self.period = e.period.clone();
                    self.used_in_period = Credits::ZERO;
                }
                self.used_in_period = Credits(self.used_in_period.0.saturating_add(e.amount.0));
            }
            Event::CreditsExpired(e) => {
                if let Some(g) = self.grants.iter_mut().find(|g| g.id == e.grant_id) {
                    g.remaining = g.remaining.saturating_sub(e.amount);
                }
                self.total_expired += u128::from(e.amount.0);
            }
            Event::CreditsAlertSet(e) => {
                let in_alarm = self.balance() < e.threshold;
                self.alerts.insert(
                    e.alert_id,
                    Alert {
                        threshold: e.threshold,
                        webhook_url: e.webhook_url.clone(),
                        in_alarm,
                    },
                );
            }
            Event::CreditsAlertRemoved(e) => {
                self.alerts.remove(&e.alert_id);
            }
            Event::CreditsAlertTriggered(e) => {
                if let Some(a) = self.alerts.get_mut(&e.alert_id) {
                    a.in_alarm = true;
                }
            }
            Event::CreditsAlertResolved(e) => {
                if let Some(a) = self.alerts.get_mut(&e.alert_id) {
                    a.in_alarm = false;
                }
            }
            Event::CreditsLimitSet(e) => self.limit = e.limit,
            _ => {}
        }
    }

    fn decide(&self, command: &CreditsCommand, ctx: &Context) -> Result<Vec<Event>, DomainError> {
        match command {
            CreditsCommand::Grant {
                grant_id,
                amount,
                source,
                expires_at,
            } => {
                ctx.require(Permission::CreditsManage)?;
                if self.grants.iter().any(|g| g.id == *grant_id) {
                    return Err(DomainError::exists("grant", grant_id));
                }
                if amount.is_zero() {
                    return Err(DomainError::invalid("amount", "must be greater than zero"));
                }
                if expires_at.is_some_and(|t| t <= ctx.now) {
                    return Err(DomainError::invalid("expiresAt", "is in the past"));
                }
                // The balance is a u64: a grant that would overflow it is refused.
                self.balance().checked_add(*amount)?;
                let mut events = self.expiries(ctx.now);
                events.push(
                    CreditsGranted {
                        grant_id: *grant_id,
                        amount: *amount,
                        source: *source,
                        expires_at: *expires_at,
                    }
                    .into(),
                );
                Ok(self.with_alerts(events))
            }
            CreditsCommand::Consume { .. } => self.consume(command, ctx),
            CreditsCommand::CheckRunStart { bot_id, run_id } => {
                if !matches!(ctx.actor, Actor::System | Actor::Bot(_)) {
                    return Err(DomainError::NotPermitted("runs are started by bots"));
                }
                let expiries = self.expiries(ctx.now);
                let balance = Ledger::replay_onto(self.clone(), &expiries).balance();
                let reason = if balance.is_zero() {
                    DenialReason::InsufficientBalance
                } else if !self.limit.is_zero() && self.used_in(ctx.now) >= self.limit {
                    DenialReason::LimitExceeded
                } else {
                    return Ok(vec![]);
                };
                Ok(vec![
                    CreditsConsumptionDenied {
                        amount: Credits::ZERO,
                        bot_id: *bot_id,
                        run_id: Some(*run_id),
                        reason,
                    }
                    .into(),
                ])
            }
            CreditsCommand::Expire => {
                if ctx.actor != Actor::System {
                    return Err(DomainError::NotPermitted("credits expire by the system"));
                }
                Ok(self.with_alerts(self.expiries(ctx.now)))
            }
            CreditsCommand::SetAlert {
                alert_id,
                threshold,
                webhook_url,
            } => {
                ctx.require(Permission::CreditsManage)?;
                if self.alerts.contains_key(alert_id) {
                    return Err(DomainError::exists("alert", alert_id));
                }
                if self.alerts.len() >= ALERTS_MAX {
                    return Err(DomainError::invalid(
                        "alerts",
                        format!("at most {ALERTS_MAX}"),
                    ));
                }
                if threshold.is_zero() {
                    return Err(DomainError::invalid(
                        "threshold",
                        "must be greater than zero",
                    ));
                }
                let webhook_url = webhook_url
                    .as_deref()
                    .map(|u| validate::url("webhookUrl", u))
                    .transpose()?;
                Ok(vec![
                    CreditsAlertSet {
                        alert_id: *alert_id,
                        threshold: *threshold,
                        webhook_url,
                    }
                    .into(),
                ])
            }
            CreditsCommand::RemoveAlert { alert_id } => {
                ctx.require(Permission::CreditsManage)?;
                if !self.alerts.contains_key(alert_id) {
                    return Err(DomainError::not_found("alert", alert_id));
                }
                Ok(vec![
                    CreditsAlertRemoved {
                        alert_id: *alert_id,
                    }
                    .into(),
                ])
            }
            CreditsCommand::SetLimit { limit } => {
                ctx.require(Permission::CreditsManage)?;
                if *limit == self.limit {
                    return Ok(vec![]);
                }
                Ok(vec![
                    CreditsLimitSet {
                        period: LIMIT_PERIOD.to_owned(),
                        limit: *limit,
                    }
                    .into(),
                ])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::testing::{ctx, given, now};
    use time::Duration;

    const BOT: Uuid = Uuid::from_u128(40);
    const RUN: Uuid = Uuid::from_u128(50);
    const G1: Uuid = Uuid::from_u128(1);
    const G2: Uuid = Uuid::from_u128(2);
    const ALERT: Uuid = Uuid::from_u128(9);

    fn granted(id: Uuid, amount: u64, expires: Option<OffsetDateTime>) -> Event {
        CreditsGranted {
            grant_id: id,
            amount: Credits(amount),
            source: GrantSource::Promo,
            expires_at: expires,
        }
        .into()
    }
    fn consume(amount: u64, key: &str, mode: ConsumeMode) -> CreditsCommand {
        CreditsCommand::Consume {
            amount: Credits(amount),
            bot_id: BOT,
            run_id: None,
            key: key.into(),
            mode,
        }
    }
    fn consumed(amount: u64, key: &str) -> Event {
        CreditsConsumed {
            amount: Credits(amount),
            bot_id: BOT,
            run_id: None,
            key: key.into(),
            period: "2026-06".into(),
        }
        .into()
    }
    fn denied(amount: u64, reason: DenialReason) -> Event {
        CreditsConsumptionDenied {
            amount: Credits(amount),
            bot_id: BOT,
            run_id: None,
            reason,
        }
        .into()
    }
    fn bot() -> Context {
        ctx(Actor::Bot(BOT), &[])
    }

    #[test]
    fn consumption_spends_the_grant_that_expires_first() {
        let history = vec![
            granted(G1, 100, None),
            granted(G2, 50, Some(now() + Duration::days(3))),
        ];
        given::<Ledger>(history.clone())
            .with(bot())
            .when(consume(60, "k1", ConsumeMode::Strict))
            .then([consumed(60, "k1")]);
        let mut l = Ledger::replay(&history);
        l.apply(&consumed(60, "k1"));
        assert_eq!(
            l.grants[1].remaining,
            Credits(0),
            "the expiring grant is spent first"
        );
        assert_eq!(l.grants[0].remaining, Credits(90));
        assert_eq!(l.balance(), Credits(90));
        assert_eq!(l.check_invariants(), Ok(()));
    }

    #[test]
    fn consumption_is_idempotent_by_key() {
        given::<Ledger>([granted(G1, 100, None), consumed(10, "run-1")])
            .with(bot())
            .when(consume(10, "run-1", ConsumeMode::Strict))
            .then([]);
    }

    #[test]
    fn the_balance_never_goes_below_zero_and_the_denial_is_recorded() {
        let r = given::<Ledger>([granted(G1, 5, None)])
            .with(bot())
            .when(consume(6, "k", ConsumeMode::Strict))
            .result()
            .unwrap();
        assert_eq!(r, vec![denied(6, DenialReason::InsufficientBalance)]);
        assert_eq!(denial_error(&r), Some(DomainError::InsufficientCredits));
    }

    #[test]
    fn a_completed_run_takes_what_is_left_and_records_the_shortfall() {
        given::<Ledger>([granted(G1, 5, None)])
            .when(consume(8, "run", ConsumeMode::RunCompletion))
            .then([
                consumed(5, "run"),
                denied(3, DenialReason::InsufficientBalance),
            ]);
        given::<Ledger>([granted(G1, 5, None)])
            .with(bot())
            .when(consume(8, "run", ConsumeMode::RunCompletion))
            .then_err(DomainError::NotPermitted(
                "a bot consumes credits only for itself",
            ));
    }

    #[test]
    fn a_completed_run_at_zero_balance_is_settled_once() {
        let first = given::<Ledger>([])
            .when(consume(8, "run", ConsumeMode::RunCompletion))
            .result()
            .unwrap();
        assert_eq!(
            first,
            vec![
                consumed(0, "run"),
                denied(8, DenialReason::InsufficientBalance)
            ]
        );
        given::<Ledger>(first)
            .when(consume(8, "run", ConsumeMode::RunCompletion))
            .then([]);
    }

    #[test]
    fn the_period_limit_denies_consumption_past_it() {
        let history = vec![
            granted(G1, 1_000, None),
            CreditsLimitSet {
                period: "monthly".into(),
                limit: Credits(100),
            }
            .into(),
            consumed(90, "a"),
        ];
        let r = given::<Ledger>(history.clone())
            .with(bot())
            .when(consume(20, "b", ConsumeMode::Strict))
            .result()
            .unwrap();
        assert_eq!(r, vec![denied(20, DenialReason::LimitExceeded)]);
        assert_eq!(denial_error(&r), Some(DomainError::UsageLimitReached));
        let next_month = Context {
            now: now() + Duration::days(30),
            ..bot()
        };
        let r = given::<Ledger>(history)
            .with(next_month)
            .when(consume(20, "b", ConsumeMode::Strict))
            .result()
            .unwrap();
        assert!(matches!(r.as_slice(), [Event::CreditsConsumed(c)] if c.period == "2026-07"));
    }

    #[test]
    fn starting_a_run_is_refused_at_zero_balance_or_at_the_limit() {
        let deny = |reason| {
            vec![Event::from(CreditsConsumptionDenied {
                amount: Credits(0),
                bot_id: BOT,
                run_id: Some(RUN),
                reason,
            })]
        };
        given::<Ledger>([])
            .with(bot())
            .when(CreditsCommand::CheckRunStart {
                bot_id: BOT,
                run_id: RUN,
            })
            .then(deny(DenialReason::InsufficientBalance));
        let at_limit = vec![
            granted(G1, 100, None),
            CreditsLimitSet {
                period: "monthly".into(),
                limit: Credits(10),
            }
            .into(),
            consumed(10, "a"),
        ];
        given::<Ledger>(at_limit)
            .with(bot())
            .when(CreditsCommand::CheckRunStart {
                bot_id: BOT,
                run_id: RUN,
            })
            .then(deny(DenialReason::LimitExceeded));
        given::<Ledger>([granted(G1, 1, None)])
            .with(bot())
            .when(CreditsCommand::CheckRunStart {
                bot_id: BOT,
                run_id: RUN,
            })
            .then([]);
    }

    #[test]
    fn expired_grants_expire_before_anything_is_spent() {
        let history = vec![
            granted(G1, 100, Some(now() - Duration::hours(1))),
            granted(G2, 10, None),
        ];
        let r = given::<Ledger>(history)
            .with(bot())
            .when(consume(20, "k", ConsumeMode::Strict))
            .result()
            .unwrap();
        assert_eq!(
            r,
            vec![
                CreditsExpired {
                    grant_id: G1,
                    amount: Credits(100)
                }
                .into(),
                denied(20, DenialReason::InsufficientBalance)
            ]
        );
        given::<Ledger>([granted(G1, 100, Some(now()))])
            .when(CreditsCommand::Expire)
            .then([CreditsExpired {
                grant_id: G1,
                amount: Credits(100),
            }
            .into()]);
    }

    #[test]
    fn an_alert_fires_once_per_downward_crossing_and_resolves_on_the_way_up() {
        let alert: Event = CreditsAlertSet {
            alert_id: ALERT,
            threshold: Credits(50),
            webhook_url: None,
        }
        .into();
        let history = vec![granted(G1, 100, None), alert];
        given::<Ledger>(history.clone())
            .with(bot())
            .when(consume(60, "a", ConsumeMode::Strict))
            .then([
                consumed(60, "a"),
                CreditsAlertTriggered {
                    alert_id: ALERT,
                    threshold: Credits(50),
                    balance: Credits(40),
                }
                .into(),
            ]);
        let mut fired = history.clone();
        fired.extend([
            consumed(60, "a"),
            CreditsAlertTriggered {
                alert_id: ALERT,
                threshold: Credits(50),
                balance: Credits(40),
            }
            .into(),
        ]);
        given::<Ledger>(fired.clone())
            .with(bot())
            .when(consume(10, "b", ConsumeMode::Strict))
            .then([consumed(10, "b")]);
        given::<Ledger>(fired)
            .when(CreditsCommand::Grant {
                grant_id: G2,
                amount: Credits(100),
                source: GrantSource::Purchase,
                expires_at: None,
            })
            .then([
                CreditsGranted {
                    grant_id: G2,
                    amount: Credits(100),
                    source: GrantSource::Purchase,
                    expires_at: None,
                }
                .into(),
                CreditsAlertResolved {
                    alert_id: ALERT,
                    balance: Credits(140),
                }
                .into(),
            ]);
    }

    #[test]
    fn grants_alerts_and_limits_check_their_input_and_permission() {
        let user = ctx(Actor::User(Uuid::from_u128(7)), &[Permission::CreditsRead]);
        given::<Ledger>([])
            .with(user)
            .when(CreditsCommand::SetLimit { limit: Credits(5) })
            .then_err(DomainError::Forbidden(Permission::CreditsManage));
        given::<Ledger>([])
            .when(CreditsCommand::Grant {
                grant_id: G1,
                amount: Credits(0),
                source: GrantSource::Promo,
                expires_at: None,
            })
            .then_err(DomainError::invalid("amount", "must be greater than zero"));
        given::<Ledger>([granted(G1, 1, None)])
            .when(CreditsCommand::Grant {
                grant_id: G1,
                amount: Credits(1),
                source: GrantSource::Promo,
                expires_at: None,
            })
            .then_err(DomainError::exists("grant", G1));
        given::<Ledger>([])
            .when(CreditsCommand::SetAlert {
                alert_id: ALERT,
                threshold: Credits(1),
                webhook_url: Some("ftp://x".into()),
            })
            .then_err(DomainError::invalid(
                "webhookUrl",
                "\"ftp://x\" is not an http(s) URL",
            ));
        given::<Ledger>([])
            .when(CreditsCommand::RemoveAlert { alert_id: ALERT })
            .then_err(DomainError::not_found("alert", ALERT));
        given::<Ledger>([])
            .with(bot())
            .when(consume(0, "k", ConsumeMode::Strict))
            .then_err(DomainError::invalid("amount", "must be greater than zero"));
    }
}
