//! `Subscription` over WebSocket (`graphql-transport-ws`, and the legacy `graphql-ws`).
//! Each follows the log from its head at the time of subscribing, keeps the events of
//! the organization it watches, in log order, none skipped, and resolves each against
//! a read model that has reached the event's position.

use super::types::*;
use super::{access, svc, viewer};
use crate::error::ApiError;
use crate::service::{Access, Service};
use async_graphql::{Context, ID, Subscription as GqlSubscription};
use domain::permissions::Permission;
use futures::{Stream, StreamExt};
use projections::ProjectionHandle;
use std::sync::Arc;
use std::time::Duration;
use store::RecordedEvent;

pub struct Subscription;

/// Events of `org` from the log head on, those `keep` admits.
async fn org_events(
    svc: &Arc<Service>,
    org: uuid::Uuid,
    keep: fn(&RecordedEvent) -> bool,
) -> Result<impl Stream<Item = RecordedEvent> + use<>, ApiError> {
    let head = svc.store.head().await?;
    Ok(svc.store.subscribe_all(head + 1).filter_map(move |e| {
        let out = match e {
            Ok(e) if e.org() == Some(org) && keep(&e) => Some(e),
            Ok(_) => None,
            Err(err) => {
                tracing::warn!(%err, "subscription stream failed");
                None
            }
        };
        futures::future::ready(out)
    }))
}

async fn reached(h: &ProjectionHandle, position: u64) -> bool {
    h.wait_for(position, crate::service::WAIT_FOR_PROJECTIONS)
        .await
        .is_ok()
}

fn org_access(ctx: &Context<'_>, id: &ID, p: Permission) -> async_graphql::Result<Access> {
    let org = super::scalars::uuid("organizationId", id)?;
    let a = access(ctx, org)?;
    a.require(p)?;
    Ok(a)
}

#[GqlSubscription]
impl Subscription {
    /// `bots:read`: a bot of the organization changed status.
    async fn bot_status_changed(
        &self,
        ctx: &Context<'_>,
        organization_id: ID,
    ) -> async_graphql::Result<impl Stream<Item = BotNode>> {
        let a = org_access(ctx, &organization_id, Permission::BotsRead)?;
        let svc = svc(ctx).clone();
        let events = org_events(&svc, a.org, |e| e.event_type == "bot.status_changed").await?;
        Ok(events.filter_map(move |e| {
            let (svc, a) = (svc.clone(), a.clone());
            async move {
                reached(&svc.projections.console, e.position).await;
                let bot = e.stream.strip_prefix("bot-")?.parse().ok()?;
                BotNode::load(&svc, &a, bot).ok()
            }
        }))
    }

    /// `runs:read`: a run of the organization started or ended.
    async fn run_updated(
        &self,
        ctx: &Context<'_>,
        organization_id: ID,
    ) -> async_graphql::Result<impl Stream<Item = RunNode>> {
        let a = org_access(ctx, &organization_id, Permission::RunsRead)?;
        let svc = svc(ctx).clone();
        let events = org_events(&svc, a.org, |e| e.stream.starts_with("run-")).await?;
        Ok(events.filter_map(move |e| {
            let (svc, a) = (svc.clone(), a.clone());
            async move {
                reached(&svc.projections.runs, e.position).await;
                let run = e.stream.strip_prefix("run-")?.parse().ok()?;
                let tree = svc.projections.runs.tree();
                let view = projections::runs::run(&tree, svc.store.as_ref(), run)
                    .await
                    .ok()??;
                Some(RunNode { view, access: a })
            }
        }))
    }

    /// `audit:read`: every new entry of the organization's trail, in log order, none skipped.
    async fn audit_log_tail(
        &self,
        ctx: &Context<'_>,
        organization_id: ID,
    ) -> async_graphql::Result<impl Stream<Item = AuditEntryNode>> {
        let a = org_access(ctx, &organization_id, Permission::AuditRead)?;
        let svc = svc(ctx).clone();
        let events = org_events(&svc, a.org, |_| true).await?;
        Ok(events.map(AuditEntryNode))
    }

    /// `credits:read`: a usage alert of the organization fired.
    async fn usage_alert_triggered(
        &self,
        ctx: &Context<'_>,
        organization_id: ID,
    ) -> async_graphql::Result<impl Stream<Item = UsageAlert>> {
        let a = org_access(ctx, &organization_id, Permission::CreditsRead)?;
        let svc = svc(ctx).clone();
        let org = a.org;
        let events = org_events(&svc, org, |e| e.event_type == "credits.alert_triggered").await?;
        Ok(events.filter_map(move |e| {
            let svc = svc.clone();
            async move {
                reached(&svc.projections.credits, e.position).await;
                let id: uuid::Uuid = e.data_value().get("alert_id")?.as_str()?.parse().ok()?;
                let doc =
                    projections::credits::query::doc(&svc.projections.credits.tree(), org).ok()?;
                doc.alerts.get(&id).map(|a| UsageAlert::of(id, a))
            }
        }))
    }

    /// Operator token only: each projection's status, twice a second.
    async fn projection_progress(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<impl Stream<Item = ProjectionStatusNode>> {
        viewer(ctx)?.require_operator()?;
        let svc = svc(ctx).clone();
        let ticks = tokio_stream::wrappers::IntervalStream::new(tokio::time::interval(
            Duration::from_millis(500),
        ));
        Ok(ticks.flat_map(move |_| {
            futures::stream::iter(
                svc.projections
                    .statuses()
                    .into_iter()
                    .map(ProjectionStatusNode::from),
            )
        }))
    }
}
