//! The credit ledger of one organization — stream `credits-<org_id>` (the hot stream:
//! thousands of bots consume concurrently, so a decision clones nothing and walks the
//! grants at most a few times).
//!
//! Rules:
//! - Credits are unsigned integers of the smallest unit; the balance is the sum of what
//!   the grants have left and never goes below zero.
//! - Grants that expire first are spent first (grants without expiry last, then in grant
//!   order): [`spend`] is that rule, and `apply`, the read models and nothing else spend.
//! - Grants past their expiry are expired (`credits.expired`) in the decision of the
//!   next grant, consumption or `Expire`, before anything is spent.
//! - Consumption is idempotent by key: a key once consumed decides no events again.
//! - `Strict` consumption (`consumeCredits`) is all or nothing: past the period limit or
//!   the balance it decides one `credits.consumption_denied` — an `Ok` decision, so the
//!   refusal is recorded; [`denial_error`] is the error the API answers with.
//!   `RunCompletion` (after `run.completed`) takes what the balance holds, records the
//!   shortfall as denied, and ignores the limit: the run has already happened.
//! - The limit (0 = none) counts the consumption of the current UTC month, the `period`
//!   every `credits.consumed` carries.
//! - Starting a run is refused (recorded, amount 0) at a zero balance or a reached limit.
//! - An alert fires once per downward crossing of its threshold and resolves when a
//!   grant lifts the balance back, in the same decision as the event that crossed it:
//!   after every decision, an alert is in alarm exactly when the balance is below it.

use crate::aggregate::Aggregate;
use crate::amounts::Credits;
use crate::context::{Actor, Context};
use crate::error::DomainError;
use crate::events::*;
use crate::permissions::Permission;
use crate::validate;
use std::collections::BTreeMap;
use time::OffsetDateTime;
use uuid::Uuid;

/// Alerts per organization: each is checked on every decision of the hot stream.
pub const ALERTS_MAX: usize = 20;
/// Longest idempotency key: room for a prefix and two UUIDs.
pub const KEY_CHARS_MAX: usize = 200;
/// The only limit period there is: the UTC calendar month.
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
    /// `credits:manage` (the system's for plans and purchases).
    Grant {
        grant_id: Uuid,
        amount: Credits,
        source: GrantSource,
        expires_at: Option<OffsetDateTime>,
    },
    /// `Strict`: the bot itself, the system, or `credits:manage`; `RunCompletion`: the
    /// system.
    Consume {
        amount: Credits,
        bot_id: Uuid,
        run_id: Option<Uuid>,
        key: String,
        mode: ConsumeMode,
    },
    /// The bot itself or the system, before a run starts.
    CheckRunStart {
        bot_id: Uuid,
        run_id: Uuid,
    },
    /// The system's: expires the grants past their expiry.
    Expire,
    SetAlert {
        alert_id: Uuid,
        threshold: Credits,
        webhook_url: Option<String>,
    },
    RemoveAlert {
        alert_id: Uuid,
    },
    /// 0 removes the limit.
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

impl Grant {
    /// Whether it has expired at `now`: it is valid until just before `expires_at`.
    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        self.expires_at.is_some_and(|t| t <= now)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Alert {
    pub threshold: Credits,
    pub webhook_url: Option<String>,
    /// The balance is below the threshold (it fired and has not resolved since, or was
    /// set below it).
    pub in_alarm: bool,
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Ledger {
    /// In grant order.
    pub grants: Vec<Grant>,
    /// Every key consumed, with what it consumed (amount, bot): consumption is
    /// idempotent by key, forever; the same key for another amount or bot is refused.
    pub consumed_keys: BTreeMap<String, (Credits, Uuid)>,
    pub alerts: BTreeMap<Uuid, Alert>,
    /// 0 = no limit.
    pub limit: Credits,
    /// The period (`YYYY-MM`) `used_in_period` counts.
    pub period: String,
    pub used_in_period: Credits,
    /// Σ remaining of the grants, kept so a decision does not sum them.
    balance: Credits,
    pub total_granted: u128,
    pub total_consumed: u128,
    pub total_expired: u128,
}

/// Takes `amount` from `grants` in spending order — earliest expiry first, grants
/// without expiry last, ties in grant order. `apply` and the read models call this, so
/// they spend exactly alike.
pub fn spend(grants: &mut [Grant], amount: Credits) {
    let mut order: Vec<usize> = (0..grants.len())
        .filter(|&i| !grants[i].remaining.is_zero())
        .collect();
    order.sort_by_key(|&i| (grants[i].expires_at.is_none(), grants[i].expires_at, i));
    let mut left = amount.0;
    for i in order {
        if left == 0 {
            break;
        }
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

/// The refusal a decided denial stands for — `InsufficientCredits` or
/// `UsageLimitReached`, both `LIMIT_EXCEEDED` — so the API can answer with it; `None`
/// when nothing was denied, or when the decision consumed anyway (a run completion's
/// shortfall: the run is not refused).
pub fn denial_error(events: &[Event]) -> Option<DomainError> {
    if events
        .iter()
        .any(|e| matches!(e, Event::CreditsConsumed(_)))
    {
        return None;
    }
    events.iter().find_map(|e| match e {
        Event::CreditsConsumptionDenied(d) => Some(match d.reason {
            DenialReason::InsufficientBalance => DomainError::InsufficientCredits,
            DenialReason::LimitExceeded => DomainError::UsageLimitReached,
        }),
        _ => None,
    })
}

// ---------------------------------------------------------------- queries

impl Ledger {
    /// What the grants have left (including grants past their expiry not yet expired).
    pub fn balance(&self) -> Credits {
        self.balance
    }

    /// The balance at `now`: what the grants not yet expired at `now` have left.
    pub fn balance_at(&self, now: OffsetDateTime) -> Credits {
        let expiring: u64 = self.expiring(now).map(|g| g.remaining.0).sum();
        self.balance.saturating_sub(Credits(expiring))
    }

    /// Consumption counted against the limit in the period of `now`.
    pub fn used_in(&self, now: OffsetDateTime) -> Credits {
        if self.period == period_of(now) {
            self.used_in_period
        } else {
            Credits::ZERO
        }
    }

    /// Balance = Σ granted − Σ consumed − Σ expired = Σ remaining; no grant has more
    /// left than it granted; every alert is in alarm exactly when the balance is below
    /// it. Holds after every decision (the seeded simulation checks it).
    pub fn check_invariants(&self) -> Result<(), String> {
        let remaining: u128 = self.grants.iter().map(|g| u128::from(g.remaining.0)).sum();
        let granted: u128 = self.grants.iter().map(|g| u128::from(g.amount.0)).sum();
        let left = self
            .total_granted
            .checked_sub(self.total_consumed + self.total_expired);
        if left != Some(remaining) || u128::from(self.balance.0) != remaining {
            return Err(format!(
                "balance {} (Σ remaining {remaining}) ≠ granted {} − consumed {} − expired {}",
                self.balance, self.total_granted, self.total_consumed, self.total_expired
            ));
        }
        if granted != self.total_granted {
            return Err(format!(
                "grants hold {granted}, {} were granted",
                self.total_granted
            ));
        }
        if let Some(g) = self.grants.iter().find(|g| g.remaining > g.amount) {
            return Err(format!("grant {} has more left than it granted", g.id));
        }
        if u128::from(self.used_in_period.0) > self.total_consumed {
            return Err(format!(
                "{} used in the period, more than ever consumed",
                self.used_in_period
            ));
        }
        match self
            .alerts
            .iter()
            .find(|(_, a)| a.in_alarm != (self.balance < a.threshold))
        {
            Some((id, a)) => Err(format!(
                "alert {id} (threshold {}) in alarm: {} at balance {}",
                a.threshold, a.in_alarm, self.balance
            )),
            None => Ok(()),
        }
    }

    /// Grants past their expiry at `now` that still hold credits.
    fn expiring(&self, now: OffsetDateTime) -> impl Iterator<Item = &Grant> {
        self.grants
            .iter()
            .filter(move |g| g.is_expired(now) && !g.remaining.is_zero())
    }

    /// Whether consuming `amount` more at `now` passes the period limit.
    fn passes_limit(&self, amount: Credits, now: OffsetDateTime) -> bool {
        !self.limit.is_zero()
            && u128::from(self.used_in(now).0) + u128::from(amount.0) > u128::from(self.limit.0)
    }
}

// ---------------------------------------------------------------- decisions

/// A decision being built: its events and the balance they leave, so the alerts they
/// cross are known without folding them.
struct Draft<'a> {
    ledger: &'a Ledger,
    events: Vec<Event>,
    balance: Credits,
}

impl<'a> Draft<'a> {
    /// A decision that first expires every grant past its expiry at `now`.
    fn expiring(ledger: &'a Ledger, now: OffsetDateTime) -> Draft<'a> {
        let mut d = Draft {
            ledger,
            events: Vec::new(),
            balance: ledger.balance,
        };
        for g in ledger.expiring(now) {
            debug_assert!(
                g.remaining <= d.balance,
                "a grant holds part of the balance"
            );
            d.balance = d.balance.saturating_sub(g.remaining);
            d.events.push(
                CreditsExpired {
                    grant_id: g.id,
                    amount: g.remaining,
                }
                .into(),
            );
        }
        d
    }

    fn grant(&mut self, e: CreditsGranted) -> Result<(), DomainError> {
        self.balance = self.balance.checked_add(e.amount)?;
        self.events.push(e.into());
        Ok(())
    }

    fn consume(&mut self, e: CreditsConsumed) {
        debug_assert!(
            e.amount <= self.balance,
            "the balance never goes below zero"
        );
        self.balance = self.balance.saturating_sub(e.amount);
        self.events.push(e.into());
    }

    fn deny(&mut self, e: CreditsConsumptionDenied) {
        self.events.push(e.into());
    }

    /// The events, followed by the alerts they make fire or resolve.
    fn finish(mut self) -> Vec<Event> {
        let balance = self.balance;
        for (id, a) in &self.ledger.alerts {
            let below = balance < a.threshold;
            if below && !a.in_alarm {
                self.events.push(
                    CreditsAlertTriggered {
                        alert_id: *id,
                        threshold: a.threshold,
                        balance,
                    }
                    .into(),
                );
            } else if !below && a.in_alarm {
                self.events.push(
                    CreditsAlertResolved {
                        alert_id: *id,
                        balance,
                    }
                    .into(),
                );
            }
        }
        self.events
    }
}

/// A `Consume` command's fields.
struct Consumption<'a> {
    amount: Credits,
    bot_id: Uuid,
    run_id: Option<Uuid>,
    key: &'a str,
    mode: ConsumeMode,
}

/// Who may consume: a bot for itself (`Strict`), the system, or a user holding
/// `credits:manage` (`Strict`).
fn authorize_consumption(
    ctx: &Context,
    mode: ConsumeMode,
    bot_id: Uuid,
) -> Result<(), DomainError> {
    match (ctx.actor, mode) {
        (Actor::System, _) => Ok(()),
        (_, ConsumeMode::RunCompletion) => Err(DomainError::NotPermitted(
            "run credits are consumed by the system",
        )),
        (Actor::Bot(b), ConsumeMode::Strict) if b == bot_id => Ok(()),
        (Actor::Bot(_), ConsumeMode::Strict) => Err(DomainError::NotPermitted(
            "a bot consumes credits only for itself",
        )),
        (Actor::User(_), ConsumeMode::Strict) => ctx.require(Permission::CreditsManage),
    }
}

/// An idempotency key, trimmed: not blank, at most [`KEY_CHARS_MAX`] characters, no
/// control characters.
fn consumption_key(key: &str) -> Result<String, DomainError> {
    let k = key.trim();
    if k.is_empty() {
        return Err(DomainError::invalid("key", "must not be empty"));
    }
    validate::text("key", k, KEY_CHARS_MAX)
}

impl Ledger {
    fn grant(&self, e: CreditsGranted, ctx: &Context) -> Result<Vec<Event>, DomainError> {
        ctx.require(Permission::CreditsManage)?;
        if let Some(g) = self.grants.iter().find(|g| g.id == e.grant_id) {
            // The same grant again (a process catching up) is already done.
            let same = g.amount == e.amount && g.source == e.source && g.expires_at == e.expires_at;
            return if same {
                Ok(vec![])
            } else {
                Err(DomainError::exists("grant", e.grant_id))
            };
        }
        if e.amount.is_zero() {
            return Err(DomainError::invalid("amount", "must be greater than zero"));
        }
        if e.expires_at.is_some_and(|t| t <= ctx.now) {
            return Err(DomainError::invalid("expiresAt", "is in the past"));
        }
        let mut d = Draft::expiring(self, ctx.now);
        d.grant(e)?;
        Ok(d.finish())
    }

    fn consume(&self, c: Consumption<'_>, ctx: &Context) -> Result<Vec<Event>, DomainError> {
        authorize_consumption(ctx, c.mode, c.bot_id)?;
        let key = consumption_key(c.key)?;
        if let Some((amount, bot)) = self.consumed_keys.get(&key) {
            // A retry of the same consumption is done already; the key reused for
            // another one is a client's mistake, not a retry. (A run's completion may
            // have consumed less than asked, what the balance held: its retries match
            // on the bot alone.)
            let same_amount = c.mode != ConsumeMode::Strict || *amount == c.amount;
            if same_amount && *bot == c.bot_id {
                return Ok(vec![]);
            }
            return Err(DomainError::exists(
                "consumption with the key",
                format!("{key:?} (for {amount} credits by bot {bot})"),
            ));
        }
        if c.amount.is_zero() {
            return Err(DomainError::invalid("amount", "must be greater than zero"));
        }
        let mut d = Draft::expiring(self, ctx.now);
        let consumed = |amount| CreditsConsumed {
            amount,
            bot_id: c.bot_id,
            run_id: c.run_id,
            key: key.clone(),
            period: period_of(ctx.now),
        };
        let denied = |amount, reason| CreditsConsumptionDenied {
            amount,
            bot_id: c.bot_id,
            run_id: c.run_id,
            reason,
        };
        match c.mode {
            ConsumeMode::Strict if self.passes_limit(c.amount, ctx.now) => {
                d.deny(denied(c.amount, DenialReason::LimitExceeded))
            }
            ConsumeMode::Strict if d.balance < c.amount => {
                d.deny(denied(c.amount, DenialReason::InsufficientBalance))
            }
            ConsumeMode::Strict => d.consume(consumed(c.amount)),
            ConsumeMode::RunCompletion => {
                // Recorded even at zero, so the run's key is settled: a repeated
                // follow-up after a crash then changes nothing.
                let take = c.amount.min(d.balance);
                d.consume(consumed(take));
                if take < c.amount {
                    let shortfall = c.amount.saturating_sub(take);
                    d.deny(denied(shortfall, DenialReason::InsufficientBalance));
                }
            }
        }
        Ok(d.finish())
    }

    fn check_run_start(
        &self,
        bot_id: Uuid,
        run_id: Uuid,
        ctx: &Context,
    ) -> Result<Vec<Event>, DomainError> {
        match ctx.actor {
            Actor::System => {}
            Actor::Bot(b) if b == bot_id => {}
            _ => return Err(DomainError::NotPermitted("a run is started by its bot")),
        }
        let reason = if self.balance_at(ctx.now).is_zero() {
            DenialReason::InsufficientBalance
        } else if !self.limit.is_zero() && self.used_in(ctx.now) >= self.limit {
            DenialReason::LimitExceeded
        } else {
            return Ok(vec![]);
        };
        Ok(vec![
            CreditsConsumptionDenied {
                amount: Credits::ZERO,
                bot_id,
                run_id: Some(run_id),
                reason,
            }
            .into(),
        ])
    }

    fn expire(&self, ctx: &Context) -> Result<Vec<Event>, DomainError> {
        if ctx.actor != Actor::System {
            return Err(DomainError::NotPermitted("credits expire by the system"));
        }
        Ok(Draft::expiring(self, ctx.now).finish())
    }

    fn set_alert(&self, e: CreditsAlertSet, ctx: &Context) -> Result<Vec<Event>, DomainError> {
        ctx.require(Permission::CreditsManage)?;
        if self.alerts.contains_key(&e.alert_id) {
            return Err(DomainError::exists("alert", e.alert_id));
        }
        if self.alerts.len() >= ALERTS_MAX {
            return Err(DomainError::invalid(
                "alerts",
                format!("at most {ALERTS_MAX}"),
            ));
        }
        if e.threshold.is_zero() {
            return Err(DomainError::invalid(
                "threshold",
                "must be greater than zero",
            ));
        }
        let webhook_url = e
            .webhook_url
            .as_deref()
            .map(|u| validate::url("webhookUrl", u.trim()))
            .transpose()?;
        Ok(vec![CreditsAlertSet { webhook_url, ..e }.into()])
    }

    fn remove_alert(&self, alert_id: Uuid, ctx: &Context) -> Result<Vec<Event>, DomainError> {
        ctx.require(Permission::CreditsManage)?;
        if !self.alerts.contains_key(&alert_id) {
            return Err(DomainError::not_found("alert", alert_id));
        }
        Ok(vec![CreditsAlertRemoved { alert_id }.into()])
    }

    fn set_limit(&self, limit: Credits, ctx: &Context) -> Result<Vec<Event>, DomainError> {
        ctx.require(Permission::CreditsManage)?;
        if limit == self.limit {
            return Ok(vec![]);
        }
        Ok(vec![
            CreditsLimitSet {
                period: LIMIT_PERIOD.to_owned(),
                limit,
            }
            .into(),
        ])
    }
}

// ---------------------------------------------------------------- folding

impl Ledger {
    fn apply_granted(&mut self, e: &CreditsGranted) {
        self.grants.push(Grant {
            id: e.grant_id,
            amount: e.amount,
            remaining: e.amount,
            source: e.source,
            expires_at: e.expires_at,
        });
        self.balance = Credits(self.balance.0.saturating_add(e.amount.0));
        self.total_granted += u128::from(e.amount.0);
    }

    fn apply_consumed(&mut self, e: &CreditsConsumed) {
        debug_assert!(
            e.amount <= self.balance,
            "the balance never goes below zero"
        );
        spend(&mut self.grants, e.amount);
        self.balance = self.balance.saturating_sub(e.amount);
        self.total_consumed += u128::from(e.amount.0);
        self.consumed_keys
            .insert(e.key.clone(), (e.amount, e.bot_id));
        if self.period != e.period {
            self.period = e.period.clone();
            self.used_in_period = Credits::ZERO;
        }
        self.used_in_period = Credits(self.used_in_period.0.saturating_add(e.amount.0));
    }

    fn apply_expired(&mut self, e: &CreditsExpired) {
        if let Some(g) = self.grants.iter_mut().find(|g| g.id == e.grant_id) {
            debug_assert!(e.amount <= g.remaining, "a grant expires what it has left");
            let taken = e.amount.min(g.remaining);
            g.remaining = g.remaining.saturating_sub(taken);
            self.balance = self.balance.saturating_sub(taken);
        }
        self.total_expired += u128::from(e.amount.0);
    }

    fn set_in_alarm(&mut self, alert_id: Uuid, in_alarm: bool) {
        if let Some(a) = self.alerts.get_mut(&alert_id) {
            a.in_alarm = in_alarm;
        }
    }
}

impl Aggregate for Ledger {
    type Command = CreditsCommand;

    fn apply(&mut self, event: &Event) {
        match event {
            Event::CreditsGranted(e) => self.apply_granted(e),
            Event::CreditsConsumed(e) => self.apply_consumed(e),
            Event::CreditsExpired(e) => self.apply_expired(e),
            Event::CreditsAlertSet(e) => {
                let alert = Alert {
                    threshold: e.threshold,
                    webhook_url: e.webhook_url.clone(),
                    in_alarm: self.balance < e.threshold,
                };
                self.alerts.insert(e.alert_id, alert);
            }
            Event::CreditsAlertRemoved(e) => {
                self.alerts.remove(&e.alert_id);
            }
            Event::CreditsAlertTriggered(e) => self.set_in_alarm(e.alert_id, true),
            Event::CreditsAlertResolved(e) => self.set_in_alarm(e.alert_id, false),
            Event::CreditsLimitSet(e) => self.limit = e.limit,
            _ => return,
        }
        debug_assert_eq!(
            self.grants
                .iter()
                .map(|g| u128::from(g.remaining.0))
                .sum::<u128>(),
            u128::from(self.balance.0),
            "the balance is what the grants have left"
        );
    }

    fn decide(&self, command: &CreditsCommand, ctx: &Context) -> Result<Vec<Event>, DomainError> {
        use CreditsCommand as C;
        match command {
            C::Grant {
                grant_id,
                amount,
                source,
                expires_at,
            } => {
                let e = CreditsGranted {
                    grant_id: *grant_id,
                    amount: *amount,
                    source: *source,
                    expires_at: *expires_at,
                };
                self.grant(e, ctx)
            }
            C::Consume {
                amount,
                bot_id,
                run_id,
                key,
                mode,
            } => {
                let c = Consumption {
                    amount: *amount,
                    bot_id: *bot_id,
                    run_id: *run_id,
                    key,
                    mode: *mode,
                };
                self.consume(c, ctx)
            }
            C::CheckRunStart { bot_id, run_id } => self.check_run_start(*bot_id, *run_id, ctx),
            C::Expire => self.expire(ctx),
            C::SetAlert {
                alert_id,
                threshold,
                webhook_url,
            } => {
                let e = CreditsAlertSet {
                    alert_id: *alert_id,
                    threshold: *threshold,
                    webhook_url: webhook_url.clone(),
                };
                self.set_alert(e, ctx)
            }
            C::RemoveAlert { alert_id } => self.remove_alert(*alert_id, ctx),
            C::SetLimit { limit } => self.set_limit(*limit, ctx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::testing::{ctx, given, now};
    use time::Duration;
    use time::macros::datetime;

    const BOT: Uuid = Uuid::from_u128(40);
    const OTHER_BOT: Uuid = Uuid::from_u128(41);
    const RUN: Uuid = Uuid::from_u128(50);
    const G1: Uuid = Uuid::from_u128(1);
    const G2: Uuid = Uuid::from_u128(2);
    const G3: Uuid = Uuid::from_u128(3);
    const G4: Uuid = Uuid::from_u128(4);
    const ALERT: Uuid = Uuid::from_u128(9);
    const ALERT2: Uuid = Uuid::from_u128(10);

    fn granted(id: Uuid, amount: u64, expires: Option<OffsetDateTime>) -> Event {
        CreditsGranted {
            grant_id: id,
            amount: Credits(amount),
            source: GrantSource::Promo,
            expires_at: expires,
        }
        .into()
    }
    fn grant(id: Uuid, amount: u64, expires: Option<OffsetDateTime>) -> CreditsCommand {
        CreditsCommand::Grant {
            grant_id: id,
            amount: Credits(amount),
            source: GrantSource::Promo,
            expires_at: expires,
        }
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
    fn strict(amount: u64, key: &str) -> CreditsCommand {
        consume(amount, key, ConsumeMode::Strict)
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
    fn expired(id: Uuid, amount: u64) -> Event {
        CreditsExpired {
            grant_id: id,
            amount: Credits(amount),
        }
        .into()
    }
    fn alert_set(id: Uuid, threshold: u64) -> Event {
        CreditsAlertSet {
            alert_id: id,
            threshold: Credits(threshold),
            webhook_url: None,
        }
        .into()
    }
    fn triggered(id: Uuid, threshold: u64, balance: u64) -> Event {
        CreditsAlertTriggered {
            alert_id: id,
            threshold: Credits(threshold),
            balance: Credits(balance),
        }
        .into()
    }
    fn resolved(id: Uuid, balance: u64) -> Event {
        CreditsAlertResolved {
            alert_id: id,
            balance: Credits(balance),
        }
        .into()
    }
    fn limit_set(limit: u64) -> Event {
        CreditsLimitSet {
            period: "monthly".into(),
            limit: Credits(limit),
        }
        .into()
    }
    fn bot() -> Context {
        ctx(Actor::Bot(BOT), &[])
    }
    fn bot_at(at: OffsetDateTime) -> Context {
        Context { now: at, ..bot() }
    }
    fn manager() -> Context {
        ctx(
            Actor::User(Uuid::from_u128(7)),
            &[Permission::CreditsManage],
        )
    }
    fn reader() -> Context {
        ctx(Actor::User(Uuid::from_u128(8)), &[Permission::CreditsRead])
    }
    fn check_start() -> CreditsCommand {
        CreditsCommand::CheckRunStart {
            bot_id: BOT,
            run_id: RUN,
        }
    }
    fn start_denied(reason: DenialReason) -> Event {
        CreditsConsumptionDenied {
            amount: Credits(0),
            bot_id: BOT,
            run_id: Some(RUN),
            reason,
        }
        .into()
    }
    /// `history` followed by what `cmd` decides on it.
    fn decided(history: &[Event], cmd: CreditsCommand, c: &Context) -> Vec<Event> {
        let mut all = history.to_vec();
        all.extend(Ledger::replay(history).decide(&cmd, c).expect("decided"));
        all
    }

    // ------------------------------------------------------------ grants

    #[test]
    fn a_grant_adds_to_the_balance() {
        let in_a_week = now() + Duration::days(7);
        given::<Ledger>([granted(G1, 5, None)])
            .with(manager())
            .when(CreditsCommand::Grant {
                grant_id: G2,
                amount: Credits(100),
                source: GrantSource::Adjustment,
                expires_at: Some(in_a_week),
            })
            .then([CreditsGranted {
                grant_id: G2,
                amount: Credits(100),
                source: GrantSource::Adjustment,
                expires_at: Some(in_a_week),
            }
            .into()]);
        let l = Ledger::replay(&[granted(G1, 5, None), granted(G2, 100, Some(in_a_week))]);
        assert_eq!(l.balance(), Credits(105));
        assert_eq!(l.check_invariants(), Ok(()));
    }

    #[test]
    fn granting_needs_credits_manage() {
        for c in [reader(), bot()] {
            given::<Ledger>([])
                .with(c)
                .when(grant(G1, 5, None))
                .then_err(DomainError::Forbidden(Permission::CreditsManage));
        }
    }

    #[test]
    fn a_grant_of_nothing_or_already_expired_is_refused() {
        given::<Ledger>([])
            .when(grant(G1, 0, None))
            .then_err(DomainError::invalid("amount", "must be greater than zero"));
        for past in [now(), now() - Duration::days(1)] {
            given::<Ledger>([])
                .when(grant(G1, 5, Some(past)))
                .then_err(DomainError::invalid("expiresAt", "is in the past"));
        }
    }

    #[test]
    fn a_repeated_grant_decides_nothing_and_a_reused_id_is_refused() {
        given::<Ledger>([granted(G1, 5, None)])
            .when(grant(G1, 5, None))
            .then([]);
        given::<Ledger>([granted(G1, 5, None)])
            .when(grant(G1, 6, None))
            .then_err(DomainError::exists("grant", G1));
    }

    #[test]
    fn a_grant_that_would_overflow_the_balance_is_refused() {
        given::<Ledger>([granted(G1, u64::MAX - 1, None)])
            .when(grant(G2, 2, None))
            .then_err(DomainError::Overflow);
    }

    #[test]
    fn a_grant_expires_what_has_expired_first() {
        given::<Ledger>([granted(G1, 30, Some(now() - Duration::hours(1)))])
            .when(grant(G2, 10, None))
            .then([expired(G1, 30), granted(G2, 10, None)]);
    }

    // ------------------------------------------------------------ consumption

    #[test]
    fn consumption_spends_the_grant_that_expires_first() {
        let history = vec![
            granted(G1, 100, None),
            granted(G2, 50, Some(now() + Duration::days(3))),
        ];
        let all = decided(&history, strict(60, "k1"), &bot());
        assert_eq!(all[2..], [consumed(60, "k1")]);
        let l = Ledger::replay(&all);
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
    fn grants_without_expiry_are_spent_last_and_equals_in_grant_order() {
        let later = now() + Duration::days(9);
        let sooner = now() + Duration::days(2);
        let mut grants = vec![
            Grant {
                id: G1,
                amount: Credits(10),
                remaining: Credits(10),
                source: GrantSource::Purchase,
                expires_at: None,
            },
            Grant {
                id: G2,
                amount: Credits(10),
                remaining: Credits(10),
                source: GrantSource::Plan,
                expires_at: Some(later),
            },
            Grant {
                id: G3,
                amount: Credits(10),
                remaining: Credits(10),
                source: GrantSource::Promo,
                expires_at: Some(sooner),
            },
            Grant {
                id: G4,
                amount: Credits(10),
                remaining: Credits(10),
                source: GrantSource::Promo,
                expires_at: Some(sooner),
            },
        ];
        let left = |g: &[Grant]| g.iter().map(|g| g.remaining.0).collect::<Vec<_>>();
        spend(&mut grants, Credits(15));
        assert_eq!(
            left(&grants),
            [10, 10, 0, 5],
            "G3, then G4 (same expiry, granted later)"
        );
        spend(&mut grants, Credits(10));
        assert_eq!(left(&grants), [10, 5, 0, 0]);
        spend(&mut grants, Credits(10));
        assert_eq!(left(&grants), [5, 0, 0, 0], "the grant without expiry last");
    }

    #[test]
    fn replaying_spends_exactly_as_the_decisions_did() {
        let history = vec![
            granted(G1, 40, None),
            granted(G2, 30, Some(now() + Duration::days(5))),
            granted(G3, 20, Some(now() + Duration::days(1))),
        ];
        let mut live = Ledger::replay(&history);
        let mut all = history.clone();
        for (i, amount) in [15u64, 20, 30].into_iter().enumerate() {
            let events = live
                .execute(&strict(amount, &format!("k{i}")), &bot())
                .expect("consumed");
            all.extend(events);
        }
        let replayed = Ledger::replay(&all);
        assert_eq!(replayed, live);
        let left: Vec<u64> = replayed.grants.iter().map(|g| g.remaining.0).collect();
        assert_eq!(left, [25, 0, 0]);
    }

    #[test]
    fn consumption_is_idempotent_by_key() {
        given::<Ledger>([granted(G1, 100, None), consumed(10, "run-1")])
            .with(bot())
            .when(strict(10, "run-1"))
            .then([]);
        given::<Ledger>([granted(G1, 100, None), consumed(10, "run-1")])
            .with(bot())
            .when(strict(10, " run-1 "))
            .then([]);
        given::<Ledger>([
            granted(G1, 100, None),
            denied(500, DenialReason::InsufficientBalance),
        ])
        .with(bot())
        .when(strict(10, "run-1"))
        .then([consumed(10, "run-1")]);
        // The key again for another amount is not a retry: refused.
        given::<Ledger>([granted(G1, 100, None), consumed(10, "run-1")])
            .with(bot())
            .when(strict(11, "run-1"))
            .then_err(DomainError::exists(
                "consumption with the key",
                format!("{:?} (for 10 credits by bot {BOT})", "run-1"),
            ));
    }

    #[test]
    fn a_denied_key_may_be_consumed_once_credits_arrive() {
        let h = decided(&[granted(G1, 5, None)], strict(10, "k"), &bot());
        assert_eq!(h[1..], [denied(10, DenialReason::InsufficientBalance)]);
        let topped_up = decided(&h, grant(G2, 10, None), &manager());
        given::<Ledger>(topped_up)
            .with(bot())
            .when(strict(10, "k"))
            .then([consumed(10, "k")]);
    }

    #[test]
    fn the_balance_never_goes_below_zero_and_the_denial_is_recorded() {
        let r = given::<Ledger>([granted(G1, 5, None)])
            .with(bot())
            .when(strict(6, "k"))
            .result()
            .expect("decided");
        assert_eq!(r, vec![denied(6, DenialReason::InsufficientBalance)]);
        assert_eq!(denial_error(&r), Some(DomainError::InsufficientCredits));
        given::<Ledger>([granted(G1, 5, None)])
            .with(bot())
            .when(strict(5, "k"))
            .then([consumed(5, "k")]);
        given::<Ledger>([granted(G1, 5, None)])
            .with(bot())
            .when(strict(u64::MAX, "k"))
            .then([denied(u64::MAX, DenialReason::InsufficientBalance)]);
    }

    #[test]
    fn the_period_limit_denies_strict_consumption_past_it() {
        let history = vec![granted(G1, 1_000, None), limit_set(100), consumed(90, "a")];
        let r = given::<Ledger>(history.clone())
            .with(bot())
            .when(strict(20, "b"))
            .result()
            .expect("decided");
        assert_eq!(r, vec![denied(20, DenialReason::LimitExceeded)]);
        assert_eq!(denial_error(&r), Some(DomainError::UsageLimitReached));
        given::<Ledger>(history.clone())
            .with(bot())
            .when(strict(10, "b"))
            .then([consumed(10, "b")]);
        let short = vec![granted(G1, 5, None), limit_set(100), consumed(4, "a")];
        given::<Ledger>(short)
            .with(bot())
            .when(strict(200, "b"))
            .then([denied(200, DenialReason::LimitExceeded)]);
    }

    #[test]
    fn the_limit_counts_only_the_current_utc_month() {
        let history = vec![granted(G1, 1_000, None), limit_set(100), consumed(90, "a")];
        let next_month = datetime!(2026-07-01 00:00 UTC);
        let r = given::<Ledger>(history.clone())
            .with(bot_at(next_month))
            .when(strict(20, "b"))
            .result()
            .expect("decided");
        assert!(matches!(r.as_slice(), [Event::CreditsConsumed(c)] if c.period == "2026-07"));
        let l = Ledger::replay(&history);
        assert_eq!(l.used_in(now()), Credits(90));
        assert_eq!(l.used_in(next_month), Credits(0));
        let mut after = history.clone();
        after.extend(r);
        let l = Ledger::replay(&after);
        assert_eq!(
            (l.period.as_str(), l.used_in(next_month)),
            ("2026-07", Credits(20))
        );
    }

    #[test]
    fn consumption_counts_in_the_utc_month_whatever_the_offset() {
        let late_evening = datetime!(2026-06-30 20:00 -05:00);
        let r = given::<Ledger>([granted(G1, 10, None)])
            .with(bot_at(late_evening))
            .when(strict(1, "k"))
            .result()
            .expect("decided");
        assert!(matches!(r.as_slice(), [Event::CreditsConsumed(c)] if c.period == "2026-07"));
    }

    #[test]
    fn a_limit_of_zero_means_none() {
        let h = vec![
            granted(G1, 1_000, None),
            limit_set(10),
            limit_set(0),
            consumed(10, "a"),
        ];
        given::<Ledger>(h)
            .with(bot())
            .when(strict(500, "b"))
            .then([consumed(500, "b")]);
    }

    #[test]
    fn a_completed_run_takes_what_is_left_and_records_the_shortfall() {
        let r = given::<Ledger>([granted(G1, 5, None)])
            .when(consume(8, "run", ConsumeMode::RunCompletion))
            .result()
            .expect("decided");
        assert_eq!(
            r,
            vec![
                consumed(5, "run"),
                denied(3, DenialReason::InsufficientBalance)
            ]
        );
        assert_eq!(denial_error(&r), None, "the run is not refused");
    }

    #[test]
    fn a_completed_run_ignores_the_limit() {
        given::<Ledger>([granted(G1, 100, None), limit_set(10), consumed(10, "a")])
            .when(consume(50, "run", ConsumeMode::RunCompletion))
            .then([consumed(50, "run")]);
    }

    #[test]
    fn a_completed_run_at_zero_balance_is_settled_once() {
        let first = given::<Ledger>([])
            .when(consume(8, "run", ConsumeMode::RunCompletion))
            .result()
            .expect("decided");
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
    fn consuming_is_for_the_bot_itself_the_system_or_credits_manage() {
        let h = [granted(G1, 100, None)];
        given::<Ledger>(h.clone())
            .with(ctx(Actor::Bot(OTHER_BOT), &[]))
            .when(strict(1, "k"))
            .then_err(DomainError::NotPermitted(
                "a bot consumes credits only for itself",
            ));
        given::<Ledger>(h.clone())
            .with(reader())
            .when(strict(1, "k"))
            .then_err(DomainError::Forbidden(Permission::CreditsManage));
        given::<Ledger>(h.clone())
            .with(manager())
            .when(strict(1, "k"))
            .then([consumed(1, "k")]);
        given::<Ledger>(h.clone())
            .when(strict(1, "k"))
            .then([consumed(1, "k")]);
        for c in [bot(), manager()] {
            given::<Ledger>(h.clone())
                .with(c)
                .when(consume(1, "run", ConsumeMode::RunCompletion))
                .then_err(DomainError::NotPermitted(
                    "run credits are consumed by the system",
                ));
        }
    }

    #[test]
    fn a_consumption_needs_an_amount_and_a_sound_key() {
        given::<Ledger>([granted(G1, 100, None)])
            .with(bot())
            .when(strict(0, "k"))
            .then_err(DomainError::invalid("amount", "must be greater than zero"));
        given::<Ledger>([granted(G1, 100, None)])
            .with(bot())
            .when(strict(1, "  "))
            .then_err(DomainError::invalid("key", "must not be empty"));
        given::<Ledger>([granted(G1, 100, None)])
            .with(bot())
            .when(strict(1, &"k".repeat(KEY_CHARS_MAX + 1)))
            .then_err(DomainError::invalid("key", "longer than 200 characters"));
        given::<Ledger>([granted(G1, 100, None)])
            .with(bot())
            .when(strict(1, &"k".repeat(KEY_CHARS_MAX)))
            .then([consumed(1, &"k".repeat(KEY_CHARS_MAX))]);
        given::<Ledger>([granted(G1, 100, None)])
            .with(bot())
            .when(strict(1, "k\u{0}"))
            .then_err(DomainError::invalid("key", "contains control characters"));
    }

    // ------------------------------------------------------------ expiry

    #[test]
    fn expired_grants_expire_before_anything_is_spent() {
        let history = vec![
            granted(G1, 100, Some(now() - Duration::hours(1))),
            granted(G2, 10, None),
        ];
        given::<Ledger>(history.clone())
            .with(bot())
            .when(strict(20, "k"))
            .then([
                expired(G1, 100),
                denied(20, DenialReason::InsufficientBalance),
            ]);
        given::<Ledger>(history)
            .with(bot())
            .when(strict(5, "k"))
            .then([expired(G1, 100), consumed(5, "k")]);
    }

    #[test]
    fn a_grant_is_valid_until_its_expiry() {
        let h = [granted(G1, 10, Some(now() + Duration::hours(1)))];
        given::<Ledger>(h.clone())
            .with(bot_at(now() + Duration::minutes(59)))
            .when(strict(10, "k"))
            .then([consumed(10, "k")]);
        given::<Ledger>(h)
            .with(bot_at(now() + Duration::hours(1)))
            .when(strict(10, "k"))
            .then([
                expired(G1, 10),
                denied(10, DenialReason::InsufficientBalance),
            ]);
    }

    #[test]
    fn the_system_expires_what_is_left_of_expired_grants() {
        let h = vec![
            granted(G1, 100, Some(now())),
            granted(G2, 10, Some(now() - Duration::days(1))),
            consumed(10, "k"),
            granted(G3, 5, Some(now() + Duration::days(1))),
        ];
        let all = decided(&h, CreditsCommand::Expire, &Context::system(now(), 1));
        assert_eq!(
            all[4..],
            [expired(G1, 100)],
            "G2 was spent; G3 is still valid"
        );
        given::<Ledger>(all.clone())
            .when(CreditsCommand::Expire)
            .then([]);
        assert_eq!(Ledger::replay(&all).check_invariants(), Ok(()));
        given::<Ledger>(h)
            .with(manager())
            .when(CreditsCommand::Expire)
            .then_err(DomainError::NotPermitted("credits expire by the system"));
    }

    // ------------------------------------------------------------ run starts

    #[test]
    fn starting_a_run_is_refused_at_zero_balance_or_at_the_limit() {
        given::<Ledger>([])
            .with(bot())
            .when(check_start())
            .then([start_denied(DenialReason::InsufficientBalance)]);
        let at_limit = vec![granted(G1, 100, None), limit_set(10), consumed(10, "a")];
        let r = given::<Ledger>(at_limit.clone())
            .with(bot())
            .when(check_start())
            .result()
            .expect("decided");
        assert_eq!(r, vec![start_denied(DenialReason::LimitExceeded)]);
        assert_eq!(denial_error(&r), Some(DomainError::UsageLimitReached));
        given::<Ledger>(at_limit)
            .with(bot_at(datetime!(2026-07-01 00:00 UTC)))
            .when(check_start())
            .then([]);
        given::<Ledger>([granted(G1, 1, None)])
            .with(bot())
            .when(check_start())
            .then([]);
    }

    #[test]
    fn a_run_start_does_not_count_credits_that_have_expired() {
        given::<Ledger>([granted(G1, 100, Some(now()))])
            .with(bot())
            .when(check_start())
            .then([start_denied(DenialReason::InsufficientBalance)]);
    }

    #[test]
    fn a_run_start_is_checked_for_the_bot_itself_or_by_the_system() {
        given::<Ledger>([granted(G1, 1, None)])
            .when(check_start())
            .then([]);
        for c in [ctx(Actor::Bot(OTHER_BOT), &[]), manager()] {
            given::<Ledger>([granted(G1, 1, None)])
                .with(c)
                .when(check_start())
                .then_err(DomainError::NotPermitted("a run is started by its bot"));
        }
    }

    // ------------------------------------------------------------ alerts

    #[test]
    fn an_alert_fires_once_per_downward_crossing_and_resolves_on_the_way_up() {
        let history = vec![granted(G1, 100, None), alert_set(ALERT, 50)];
        given::<Ledger>(history.clone())
            .with(bot())
            .when(strict(60, "a"))
            .then([consumed(60, "a"), triggered(ALERT, 50, 40)]);
        let fired = decided(&history, strict(60, "a"), &bot());
        given::<Ledger>(fired.clone())
            .with(bot())
            .when(strict(10, "b"))
            .then([consumed(10, "b")]);
        given::<Ledger>(fired.clone())
            .when(grant(G2, 100, None))
            .then([granted(G2, 100, None), resolved(ALERT, 140)]);
        let back = decided(&fired, grant(G2, 100, None), &Context::system(now(), 1));
        given::<Ledger>(back)
            .with(bot())
            .when(strict(100, "c"))
            .then([consumed(100, "c"), triggered(ALERT, 50, 40)]);
    }

    #[test]
    fn an_alert_fires_at_strictly_below_its_threshold() {
        let history = vec![granted(G1, 100, None), alert_set(ALERT, 50)];
        given::<Ledger>(history.clone())
            .with(bot())
            .when(strict(50, "a"))
            .then([consumed(50, "a")]);
        given::<Ledger>(history)
            .with(bot())
            .when(strict(51, "a"))
            .then([consumed(51, "a"), triggered(ALERT, 50, 49)]);
    }

    #[test]
    fn one_decision_can_cross_several_thresholds() {
        let history = vec![
            granted(G1, 100, None),
            alert_set(ALERT, 50),
            alert_set(ALERT2, 80),
        ];
        given::<Ledger>(history)
            .with(bot())
            .when(strict(90, "a"))
            .then([
                consumed(90, "a"),
                triggered(ALERT, 50, 10),
                triggered(ALERT2, 80, 10),
            ]);
    }

    #[test]
    fn expiry_crosses_thresholds_too() {
        let history = vec![
            granted(G1, 100, Some(now())),
            granted(G2, 10, None),
            alert_set(ALERT, 50),
        ];
        given::<Ledger>(history.clone())
            .when(CreditsCommand::Expire)
            .then([expired(G1, 100), triggered(ALERT, 50, 10)]);
        given::<Ledger>(history)
            .with(bot())
            .when(strict(20, "k"))
            .then([
                expired(G1, 100),
                denied(20, DenialReason::InsufficientBalance),
                triggered(ALERT, 50, 10),
            ]);
    }

    #[test]
    fn an_alert_set_below_the_balance_starts_in_alarm_without_firing() {
        let h = vec![granted(G1, 10, None), alert_set(ALERT, 50)];
        let l = Ledger::replay(&h);
        assert!(l.alerts[&ALERT].in_alarm);
        given::<Ledger>(h.clone())
            .with(bot())
            .when(strict(5, "a"))
            .then([consumed(5, "a")]);
        given::<Ledger>(h)
            .when(grant(G2, 40, None))
            .then([granted(G2, 40, None), resolved(ALERT, 50)]);
    }

    #[test]
    fn setting_an_alert_checks_its_threshold_webhook_and_count() {
        given::<Ledger>([])
            .with(manager())
            .when(CreditsCommand::SetAlert {
                alert_id: ALERT,
                threshold: Credits(10),
                webhook_url: Some(" https://hooks.acme.test/low ".into()),
            })
            .then([CreditsAlertSet {
                alert_id: ALERT,
                threshold: Credits(10),
                webhook_url: Some("https://hooks.acme.test/low".into()),
            }
            .into()]);
        let set = |id, threshold, url: Option<&str>| CreditsCommand::SetAlert {
            alert_id: id,
            threshold: Credits(threshold),
            webhook_url: url.map(str::to_owned),
        };
        given::<Ledger>([])
            .when(set(ALERT, 1, Some("ftp://x")))
            .then_err(DomainError::invalid(
                "webhookUrl",
                "\"ftp://x\" is not an http(s) URL",
            ));
        given::<Ledger>([])
            .when(set(ALERT, 0, None))
            .then_err(DomainError::invalid(
                "threshold",
                "must be greater than zero",
            ));
        given::<Ledger>([alert_set(ALERT, 5)])
            .when(set(ALERT, 1, None))
            .then_err(DomainError::exists("alert", ALERT));
        let full: Vec<Event> = (0..ALERTS_MAX as u128)
            .map(|i| alert_set(Uuid::from_u128(100 + i), 5))
            .collect();
        given::<Ledger>(full)
            .when(set(ALERT, 1, None))
            .then_err(DomainError::invalid("alerts", "at most 20"));
        given::<Ledger>([])
            .with(reader())
            .when(set(ALERT, 1, None))
            .then_err(DomainError::Forbidden(Permission::CreditsManage));
    }

    #[test]
    fn removing_an_alert_needs_it_and_credits_manage() {
        let remove = CreditsCommand::RemoveAlert { alert_id: ALERT };
        given::<Ledger>([alert_set(ALERT, 5)])
            .with(manager())
            .when(remove.clone())
            .then([CreditsAlertRemoved { alert_id: ALERT }.into()]);
        given::<Ledger>([])
            .when(remove.clone())
            .then_err(DomainError::not_found("alert", ALERT));
        given::<Ledger>([alert_set(ALERT, 5)])
            .with(reader())
            .when(remove)
            .then_err(DomainError::Forbidden(Permission::CreditsManage));
    }

    // ------------------------------------------------------------ limits

    #[test]
    fn setting_the_limit_records_only_a_change() {
        given::<Ledger>([])
            .with(manager())
            .when(CreditsCommand::SetLimit { limit: Credits(5) })
            .then([limit_set(5)]);
        given::<Ledger>([limit_set(5)])
            .with(manager())
            .when(CreditsCommand::SetLimit { limit: Credits(5) })
            .then([]);
        given::<Ledger>([])
            .with(manager())
            .when(CreditsCommand::SetLimit { limit: Credits(0) })
            .then([]);
        given::<Ledger>([])
            .with(reader())
            .when(CreditsCommand::SetLimit { limit: Credits(5) })
            .then_err(DomainError::Forbidden(Permission::CreditsManage));
    }

    // ------------------------------------------------------------ queries and invariants

    #[test]
    fn a_denial_error_stands_only_for_a_refusal() {
        assert_eq!(denial_error(&[]), None);
        assert_eq!(denial_error(&[consumed(1, "k")]), None);
        assert_eq!(
            denial_error(&[expired(G1, 5), denied(1, DenialReason::InsufficientBalance)]),
            Some(DomainError::InsufficientCredits)
        );
    }

    #[test]
    fn the_invariants_catch_a_ledger_that_does_not_add_up() {
        let good = Ledger::replay(&[granted(G1, 10, None), consumed(4, "k")]);
        assert_eq!(good.check_invariants(), Ok(()));
        let mut bad = good.clone();
        bad.grants[0].remaining = Credits(7);
        assert!(bad.check_invariants().is_err());
        let mut bad = good.clone();
        bad.total_consumed = 3;
        assert!(bad.check_invariants().is_err());
        let mut bad = good;
        bad.alerts.insert(
            ALERT,
            Alert {
                threshold: Credits(100),
                webhook_url: None,
                in_alarm: false,
            },
        );
        assert!(
            bad.check_invariants().is_err(),
            "an alert below the balance must be in alarm"
        );
        let orphan = Ledger::replay(&[expired(G1, 5)]);
        assert!(orphan.check_invariants().is_err(), "an expiry of no grant");
    }

    #[test]
    fn the_balance_at_a_time_leaves_out_what_has_expired() {
        let l = Ledger::replay(&[
            granted(G1, 10, Some(now() + Duration::days(1))),
            granted(G2, 5, None),
        ]);
        assert_eq!(l.balance_at(now()), Credits(15));
        assert_eq!(l.balance_at(now() + Duration::days(1)), Credits(5));
        assert_eq!(l.balance(), Credits(15));
    }

    #[test]
    fn folding_ignores_other_aggregates_events() {
        let h = vec![granted(G1, 10, None), consumed(4, "k"), alert_set(ALERT, 5)];
        let mut mixed = h.clone();
        mixed.insert(
            1,
            InvoicePaid {
                invoice_id: G2,
                payment_method_id: None,
            }
            .into(),
        );
        mixed.push(BotRenamed { name: "b".into() }.into());
        assert_eq!(Ledger::replay(&mixed), Ledger::replay(&h));
    }

    /// A small deterministic generator (xorshift64*), so the walk below replays.
    struct Rng(u64);
    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
        }
    }

    fn random_command(rng: &mut Rng, step: u64, at: OffsetDateTime) -> (CreditsCommand, Context) {
        let system = Context::system(at, u128::from(step));
        match rng.below(8) {
            0 | 1 => {
                let expires =
                    (rng.below(2) == 0).then(|| at + Duration::hours(1 + rng.below(72) as i64));
                let id = Uuid::from_u128(1_000 + u128::from(step));
                (grant(id, 1 + rng.below(500), expires), system)
            }
            2 => (CreditsCommand::Expire, system),
            3 => {
                let id = Uuid::from_u128(100 + u128::from(rng.below(4)));
                let cmd = CreditsCommand::SetAlert {
                    alert_id: id,
                    threshold: Credits(1 + rng.below(600)),
                    webhook_url: None,
                };
                (cmd, system)
            }
            4 => (
                CreditsCommand::SetLimit {
                    limit: Credits(rng.below(3_000)),
                },
                system,
            ),
            5 => {
                let key = format!("run-{}", rng.below(40));
                (
                    consume(1 + rng.below(300), &key, ConsumeMode::RunCompletion),
                    system,
                )
            }
            _ => {
                let key = format!("k-{}", rng.below(60));
                (strict(1 + rng.below(300), &key), bot_at(at))
            }
        }
    }

    #[test]
    fn a_seeded_random_walk_keeps_every_invariant() {
        let mut seen = std::collections::BTreeSet::new();
        for seed in 1..=20u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let (mut live, mut log) = (Ledger::default(), Vec::new());
            let mut at = now();
            for step in 0..300 {
                at += Duration::minutes(rng.below(180) as i64);
                let (cmd, c) = random_command(&mut rng, step, at);
                let Ok(events) = live.execute(&cmd, &c) else {
                    continue;
                };
                let context = format!("seed {seed}, step {step}: {cmd:?}");
                assert_eq!(live.check_invariants(), Ok(()), "{context}");
                if events
                    .iter()
                    .any(|e| matches!(e, Event::CreditsConsumed(_)))
                {
                    assert_eq!(live.decide(&cmd, &c), Ok(vec![]), "idempotent: {context}");
                }
                log.extend(events);
            }
            assert_eq!(Ledger::replay(&log), live, "seed {seed}: replay matches");
            seen.extend(log.iter().map(|e| match e {
                Event::CreditsConsumptionDenied(d) => format!("denied {:?}", d.reason),
                e => e.event_type().to_owned(),
            }));
        }
        let expected = [
            "credits.alert_resolved",
            "credits.alert_set",
            "credits.alert_triggered",
            "credits.consumed",
            "credits.expired",
            "credits.granted",
            "credits.limit_set",
            "denied InsufficientBalance",
            "denied LimitExceeded",
        ];
        assert_eq!(
            seen.iter().map(String::as_str).collect::<Vec<_>>(),
            expected,
            "the walk covers every outcome"
        );
    }
}
