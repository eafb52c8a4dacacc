//! What happens without a request: schedule triggers fire when their cron expression
//! says, and a bot whose heartbeat (its status reports) is silent for two minutes goes
//! offline. Both act as the system, through the same deciders as every mutation.

use crate::service::{Access, Service};
use domain::bot::{Bot, BotCommand};
use domain::events::{BotStatus, TriggerKind};
use domain::permissions::{Permission, PermissionSet};
use domain::trigger::{Trigger, TriggerCommand};
use domain::{Actor, streams};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use uuid::Uuid;

/// How often the scheduler looks.
pub const TICK: Duration = Duration::from_secs(15);
/// A bot silent this long goes offline.
pub const HEARTBEAT_TIMEOUT: time::Duration = time::Duration::minutes(2);

/// Starts the scheduler once the console has caught up with the log. Bots that were
/// not offline when the server last stopped are watched from their last status report.
pub fn spawn(svc: Arc<Service>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(e) = svc.console_caught_up().await {
            tracing::warn!(?e, "the scheduler starts before the console caught up");
        }
        if let Err(e) = watch_known_bots(&svc) {
            tracing::warn!(?e, "could not load the bots to watch");
        }
        // The first round one tick from now: heartbeats that arrive as the server
        // starts (a bot reconnecting, the demo's bots) are in by then.
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + TICK, TICK);
        loop {
            tick.tick().await;
            if let Err(e) = run_once(&svc, Service::now()).await {
                tracing::warn!(?e, "scheduler round failed");
            }
        }
    })
}

fn ids(key: &[u8], prefix: usize) -> Option<(Uuid, Uuid)> {
    let s = std::str::from_utf8(key.get(prefix..)?).ok()?;
    let (org, id) = s.split_once('/')?;
    Some((org.parse().ok()?, id.parse().ok()?))
}

fn watch_known_bots(svc: &Service) -> anyhow::Result<()> {
    let tree = svc.projections.console.tree();
    for kv in tree.scan_prefix(b"b/") {
        let (k, v) = kv?;
        let Some((org, id)) = ids(&k, 2) else {
            continue;
        };
        let Ok(bot) = serde_json::from_slice::<Bot>(&v) else {
            continue;
        };
        if bot.deleted || bot.status == BotStatus::Offline {
            continue;
        }
        let meta = projections::console::query::meta(&tree, id)?;
        let seen = meta
            .last_seen_at
            .or(meta.created_at)
            .unwrap_or_else(Service::now);
        if let Ok(mut h) = svc.heartbeats.lock() {
            h.entry(id).or_insert((org, seen));
        }
    }
    Ok(())
}

fn system(svc: &Service, org: Uuid) -> anyhow::Result<Access> {
    let doc = svc
        .org_doc(org)
        .map_err(|e| anyhow::anyhow!(e.message))?
        .ok_or_else(|| anyhow::anyhow!("organization {org} not found"))?;
    Ok(Access {
        org,
        actor: Actor::System,
        perms: Permission::ALL.iter().copied().collect::<PermissionSet>(),
        doc,
    })
}

/// One round at `now`: silent bots go offline, due schedules fire.
pub async fn run_once(svc: &Service, now: OffsetDateTime) -> anyhow::Result<()> {
    let silent: Vec<(Uuid, Uuid)> = svc
        .heartbeats
        .lock()
        .map(|h| {
            h.iter()
                .filter(|(_, (_, at))| now - *at > HEARTBEAT_TIMEOUT)
                .map(|(bot, (org, _))| (*bot, *org))
                .collect()
        })
        .unwrap_or_default();
    for (bot, org) in silent {
        if let Ok(mut h) = svc.heartbeats.lock() {
            h.remove(&bot);
        }
        let a = system(svc, org)?;
        let out = svc
            .mutate::<Bot>(
                &streams::bot(bot),
                &a,
                BotCommand::ReportStatus {
                    status: BotStatus::Offline,
                },
            )
            .await;
        if let Err(e) = out {
            tracing::debug!(?e, %bot, "could not mark a silent bot offline");
        }
    }
    let tree = svc.projections.console.tree();
    let mut due = Vec::new();
    for kv in tree.scan_prefix(b"t/") {
        let (k, v) = kv?;
        let Some((org, id)) = ids(&k, 2) else {
            continue;
        };
        let Ok(t) = serde_json::from_slice::<Trigger>(&v) else {
            continue;
        };
        if t.deleted || !t.enabled || t.kind != Some(TriggerKind::Schedule) {
            continue;
        }
        let Some(schedule) = t.schedule.as_deref() else {
            continue;
        };
        let meta = projections::console::query::meta(&tree, id)?;
        let Some(since) = meta.last_fired_at.or(meta.created_at) else {
            continue;
        };
        if next_after(schedule, since).is_some_and(|next| next <= now) {
            due.push((org, id, t));
        }
    }
    for (org, id, t) in due {
        let a = system(svc, org)?;
        let run_id = Uuid::new_v4();
        let fired = svc
            .mutate::<Trigger>(&streams::trigger(id), &a, TriggerCommand::Fire { run_id })
            .await;
        if let Err(e) = fired {
            tracing::debug!(?e, trigger = %id, "a schedule could not fire");
            continue;
        }
        let Some(bot) = t.bot_id else { continue };
        let started = crate::schema::mutation::bots::start_run(
            svc,
            &a,
            Actor::System,
            bot,
            t.task.clone(),
            Some(id),
        )
        .await;
        if let Err(e) = started {
            tracing::info!(?e, trigger = %id, "a scheduled run did not start");
        }
    }
    Ok(())
}

/// The first time `schedule` matches after `since` (UTC).
pub fn next_after(schedule: &str, since: OffsetDateTime) -> Option<OffsetDateTime> {
    let cron = croner::Cron::from_str(schedule).ok()?;
    let since = chrono::DateTime::<chrono::Utc>::from_timestamp(
        since.unix_timestamp(),
        since.nanosecond(),
    )?;
    let next = cron.find_next_occurrence(&since, false).ok()?;
    OffsetDateTime::from_unix_timestamp(next.timestamp()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn the_next_occurrence_follows_the_expression() {
        let since = datetime!(2026-11-28 10:17:30 UTC);
        assert_eq!(
            next_after("0 2 * * *", since),
            Some(datetime!(2026-11-29 02:00 UTC))
        );
        assert_eq!(
            next_after("*/15 * * * *", since),
            Some(datetime!(2026-11-28 10:30 UTC))
        );
        assert_eq!(next_after("not cron", since), None);
    }
}
