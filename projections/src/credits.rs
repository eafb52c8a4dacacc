//! The credits read model: balance, grants with what is left, consumption per day and
//! per bot, alerts with their state, the period limit and what the period used.
//!
//! # Layout (tree `credits`)
//! - `s/{org}` → [`CreditsDoc`] (JSON): grants, alerts, limit, period usage
//! - `c/{org}/{YYYY-MM-DD}/{bot}` → [`Bucket`] (JSON): credits and runs of that bot that day
//!
//! Documents touched by a batch are kept in memory and written once, at commit.

use crate::time_travel::decode;
use crate::{Projection, ProjectionError, Tx};
use domain::Credits;
use domain::events::Event;
use domain::ledger::{self, Grant};
use serde::{Deserialize, Serialize};
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use store::RecordedEvent;
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertView {
    pub threshold: Credits,
    pub webhook_url: Option<String>,
    pub in_alarm: bool,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_triggered_at: Option<OffsetDateTime>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreditsDoc {
    pub grants: Vec<Grant>,
    pub alerts: BTreeMap<Uuid, AlertView>,
    pub limit: Credits,
    pub period: String,
    pub used_in_period: Credits,
}

impl CreditsDoc {
    pub fn balance(&self) -> Credits {
        Credits(self.grants.iter().map(|g| g.remaining.0).sum())
    }

    /// Used in the period of `now` (0 when the last consumption was in an earlier one).
    pub fn used_in(&self, now: OffsetDateTime) -> Credits {
        if self.period == ledger::period_of(now) {
            self.used_in_period
        } else {
            Credits::ZERO
        }
    }

    fn apply(&mut self, e: &Event, at: OffsetDateTime) {
        match e {
            Event::CreditsGranted(g) => self.grants.push(Grant {
                id: g.grant_id,
                amount: g.amount,
                remaining: g.amount,
                source: g.source,
                expires_at: g.expires_at,
            }),
            Event::CreditsConsumed(c) => {
                ledger::spend(&mut self.grants, c.amount);
                if self.period != c.period {
                    self.period = c.period.clone();
                    self.used_in_period = Credits::ZERO;
                }
                self.used_in_period = Credits(self.used_in_period.0.saturating_add(c.amount.0));
            }
            Event::CreditsExpired(x) => {
                if let Some(g) = self.grants.iter_mut().find(|g| g.id == x.grant_id) {
                    g.remaining = g.remaining.saturating_sub(x.amount);
                }
            }
            Event::CreditsAlertSet(a) => {
                let in_alarm = self.balance() < a.threshold;
                self.alerts.insert(
                    a.alert_id,
                    AlertView {
                        threshold: a.threshold,
                        webhook_url: a.webhook_url.clone(),
                        in_alarm,
                        last_triggered_at: None,
                    },
                );
            }
            Event::CreditsAlertRemoved(a) => {
                self.alerts.remove(&a.alert_id);
            }
            Event::CreditsAlertTriggered(a) => {
                if let Some(v) = self.alerts.get_mut(&a.alert_id) {
                    v.in_alarm = true;
                    v.last_triggered_at = Some(at);
                }
            }
            Event::CreditsAlertResolved(a) => {
                if let Some(v) = self.alerts.get_mut(&a.alert_id) {
                    v.in_alarm = false;
                }
            }
            Event::CreditsLimitSet(l) => self.limit = l.limit,
            _ => {}
        }
    }
}

/// Consumption of one bot on one day.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucket {
    pub credits: u64,
    pub runs: u64,
}

#[derive(Default)]
pub struct CreditsProjection {
    docs: HashMap<Uuid, CreditsDoc>,
    buckets: HashMap<Vec<u8>, Bucket>,
}

fn doc_key(org: &Uuid) -> Vec<u8> {
    format!("s/{org}").into_bytes()
}

fn day_of(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day())
}

fn bucket_key(org: &Uuid, day: &str, bot: &Uuid) -> Vec<u8> {
    format!("c/{org}/{day}/{bot}").into_bytes()
}

impl Projection for CreditsProjection {
    const NAME: &'static str = "credits";
    const VERSION: u32 = 1;

    fn apply(&mut self, e: &RecordedEvent, tx: &mut Tx<'_>) -> Result<(), ProjectionError> {
        let (Some(org), true) = (e.org(), e.stream.starts_with("credits-")) else {
            return Ok(());
        };
        let Some(event) = decode(e)? else {
            return Ok(());
        };
        let doc = match self.docs.entry(org) {
            Entry::Occupied(o) => o.into_mut(),
            Entry::Vacant(v) => v.insert(tx.get_json(&doc_key(&org))?.unwrap_or_default()),
        };
        doc.apply(&event, e.meta.occurred_at);
        if let Event::CreditsConsumed(c) = &event {
            let key = bucket_key(&org, &day_of(e.meta.occurred_at), &c.bot_id);
            let b = match self.buckets.entry(key) {
                Entry::Occupied(o) => o.into_mut(),
                Entry::Vacant(v) => {
                    let loaded = tx.get_json(v.key())?.unwrap_or_default();
                    v.insert(loaded)
                }
            };
            b.credits = b.credits.saturating_add(c.amount.0);
            b.runs += u64::from(c.run_id.is_some());
        }
        Ok(())
    }

    fn before_commit(&mut self, tx: &mut Tx<'_>) -> Result<(), ProjectionError> {
        for (org, doc) in self.docs.drain() {
            tx.put_json(doc_key(&org), &doc)?;
        }
        for (key, b) in self.buckets.drain() {
            tx.put_json(key, &b)?;
        }
        Ok(())
    }
}

/// The read side.
pub mod query {
    use super::*;

    pub fn doc(tree: &sled::Tree, org: Uuid) -> Result<CreditsDoc, ProjectionError> {
        Ok(tree
            .get(doc_key(&org))?
            .and_then(|v| serde_json::from_slice(&v).ok())
            .unwrap_or_default())
    }

    /// How usage is grouped.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum By {
        Day,
        Bot,
    }

    /// Consumption per day or per bot within `[from, to]` (days, inclusive), sorted by key.
    pub fn breakdown(
        tree: &sled::Tree,
        org: Uuid,
        by: By,
        from: Option<OffsetDateTime>,
        to: Option<OffsetDateTime>,
    ) -> Result<Vec<(String, Bucket)>, ProjectionError> {
        let prefix = format!("c/{org}/");
        let start = format!("{prefix}{}", from.map(day_of).unwrap_or_default());
        let end = format!(
            "{prefix}{}~",
            to.map(day_of).unwrap_or_else(|| "9999-99-99".into())
        );
        let mut out: BTreeMap<String, Bucket> = BTreeMap::new();
        for kv in tree.range(start.into_bytes()..end.into_bytes()) {
            let (k, v) = kv?;
            let key = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
            let Some((day, bot)) = key.split_once('/') else {
                continue;
            };
            let b: Bucket =
                serde_json::from_slice(&v).map_err(|e| ProjectionError::Storage(e.to_string()))?;
            let slot = out
                .entry(match by {
                    By::Day => day.to_owned(),
                    By::Bot => bot.to_owned(),
                })
                .or_default();
            slot.credits = slot.credits.saturating_add(b.credits);
            slot.runs += b.runs;
        }
        Ok(out.into_iter().collect())
    }

    /// Credits consumed within `[from, to]`.
    pub fn consumed(
        tree: &sled::Tree,
        org: Uuid,
        from: Option<OffsetDateTime>,
        to: Option<OffsetDateTime>,
    ) -> Result<u64, ProjectionError> {
        Ok(breakdown(tree, org, By::Day, from, to)?
            .iter()
            .map(|(_, b)| b.credits)
            .sum())
    }
}
