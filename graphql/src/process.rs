//! The process manager: follows the log and carries out the follow-ups of every event
//! that causes one (an organization created → its subscription starts; a run ends → its
//! credits are consumed; a plan changes or an invoice for credits is paid → credits are
//! granted; a triggered run fails → the trigger counts it).
//!
//! Mutations carry out their own follow-ups before answering (read-your-writes); this
//! task is what makes a crash between the two appends harmless: after a restart it
//! resumes from its checkpoint and issues what is missing. Every follow-up is idempotent
//! by a key derived from its cause, so doing one twice changes nothing.

use crate::service::Service;
use domain::process::{after_billing, after_organization, after_run};
use domain::{Aggregate, Event};
use futures::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use store::{Direction, RecordedEvent};

const TREE: &str = "process";
const CHECKPOINT: &[u8] = b"checkpoint";
/// Attempts of one follow-up before it is logged and left to the next restart.
const ATTEMPTS: u32 = 5;

fn checkpoint(tree: &sled::Tree) -> Option<u64> {
    tree.get(CHECKPOINT)
        .ok()
        .flatten()
        .and_then(|v| v.as_ref().try_into().ok().map(u64::from_le_bytes))
}

/// Starts the process manager. A store it has never followed (one written by the
/// fixtures generator or an import, which carry their own follow-ups) is taken as done
/// up to its head.
pub async fn spawn(svc: Arc<Service>) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let tree = svc.db.open_tree(TREE)?;
    let from = match checkpoint(&tree) {
        Some(p) => p,
        None => {
            let head = svc.store.head().await?;
            tree.insert(CHECKPOINT, &head.to_le_bytes())?;
            head
        }
    };
    Ok(tokio::spawn(run(svc, tree, from)))
}

async fn run(svc: Arc<Service>, tree: sled::Tree, from: u64) {
    let svc = &svc;
    let mut events = svc.store.subscribe_all(from + 1);
    let mut last_saved = from;
    while let Some(e) = events.next().await {
        let e = match e {
            Ok(e) => e,
            Err(err) => {
                tracing::error!(%err, "the process manager lost the log; it stops");
                return;
            }
        };
        let done = svc
            .followed
            .lock()
            .map(|mut d| d.remove(&e.position))
            .unwrap_or(false);
        if e.event_type == "credits.alert_triggered" {
            tokio::spawn(deliver_alert(svc.clone(), e.clone()));
        } else if !done {
            handle(svc, &e).await;
        }
        if e.position >= last_saved + 256 || svc.store.head().await.ok() == Some(e.position) {
            let _ = tree.insert(CHECKPOINT, &e.position.to_le_bytes());
            last_saved = e.position;
            if let Ok(mut d) = svc.followed.lock() {
                d.retain(|p| *p > e.position);
            }
        }
    }
}

async fn state_until<A: Aggregate>(svc: &Service, stream: &str, version: u64) -> Option<A> {
    let events = svc
        .store
        .read_stream(stream, 0, Direction::Forwards, version as usize + 1)
        .await
        .ok()?;
    let decoded: Vec<Event> = events
        .iter()
        .filter(|r| r.version <= version)
        .filter_map(|r| Event::decode(&r.event_type, r.schema, r.data.get()).ok())
        .collect();
    Some(A::replay(&decoded))
}

async fn handle(svc: &Arc<Service>, e: &RecordedEvent) {
    let Some(org) = e.org() else { return };
    let interesting = matches!(
        e.event_type.as_str(),
        "organization.created"
            | "run.completed"
            | "run.failed"
            | "subscription.plan_changed"
            | "subscription.renewed"
            | "invoice.paid"
    );
    if !interesting {
        return;
    }
    let Ok(event) = Event::decode(&e.event_type, e.schema, e.data.get()) else {
        return;
    };
    let events = [event];
    let follow_ups = match e.stream.split_once('-').map(|(c, _)| c) {
        Some("organization") => after_organization(org, &events),
        Some("run") => match state_until::<domain::run::Run>(svc, &e.stream, e.version).await {
            Some(run) => after_run(org, &run, &events),
            None => return,
        },
        Some("billing") => {
            match state_until::<domain::billing::Billing>(svc, &e.stream, e.version).await {
                Some(b) => after_billing(org, &b, &events, &[e.id]),
                None => return,
            }
        }
        _ => return,
    };
    for f in follow_ups {
        for attempt in 1..=ATTEMPTS {
            match svc.follow_up(&f, e.position).await {
                Ok(_) => break,
                Err(err) if attempt == ATTEMPTS => {
                    tracing::error!(?err, ?f, position = e.position, "a follow-up failed");
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50 << attempt)).await,
            }
        }
    }
}

/// Posts a fired usage alert to its webhook, if it has one: JSON
/// `{organizationId, alertId, threshold, balance, occurredAt, position}`, retried with
/// backoff (at least once: a restart before the checkpoint delivers it again).
async fn deliver_alert(svc: Arc<Service>, e: RecordedEvent) {
    let Some(org) = e.org() else { return };
    let data = e.data_value();
    let Some(alert) = data
        .get("alert_id")
        .and_then(|v| v.as_str())
        .and_then(|s| s.parse::<uuid::Uuid>().ok())
    else {
        return;
    };
    let credits = &svc.projections.credits;
    if credits
        .wait_for(e.position, crate::service::WAIT_FOR_PROJECTIONS)
        .await
        .is_err()
    {
        return;
    }
    let Ok(doc) = projections::credits::query::doc(&credits.tree(), org) else {
        return;
    };
    let Some(url) = doc.alerts.get(&alert).and_then(|a| a.webhook_url.clone()) else {
        return;
    };
    let body = serde_json::json!({
        "organizationId": org,
        "alertId": alert,
        "threshold": data.get("threshold").map(ToString::to_string),
        "balance": data.get("balance").map(ToString::to_string),
        "occurredAt": e.meta.occurred_at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
        "position": e.position.to_string(),
    });
    for attempt in 0..ATTEMPTS {
        match svc.http.post(&url).json(&body).send().await {
            Ok(r) if r.status().is_success() => return,
            Ok(r) => tracing::warn!(status = %r.status(), %url, "usage alert webhook refused"),
            Err(err) => tracing::warn!(%err, %url, "usage alert webhook failed"),
        }
        tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
    }
}
