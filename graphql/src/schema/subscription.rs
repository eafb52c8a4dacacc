//! `Subscription` over WebSocket (`graphql-transport-ws`, and the legacy `graphql-ws`).
//! Each follows the log from its head at the time of subscribing, keeps the events of
//! the organization it watches, in log order, none skipped, and resolves each against
//! a read model that has reached the event's position.

use super::types::*;
use super::{access, svc, viewer};
use crate::error::ApiError;
use crate::service::{Access, Service, Viewer};
use async_graphql::{Context, ID, Subscription as GqlSubscription};
use domain::permissions::Permission;
use futures::{Stream, StreamExt};
use projections::ProjectionHandle;
use std::sync::Arc;
use std::time::Duration;
use store::RecordedEvent;

pub struct Subscription;

/// Events of `org` from the log head on, those `keep` admits (off the server's one
/// follower of the log, see [`crate::live`]).
async fn org_events(
    svc: &Arc<Service>,
    org: uuid::Uuid,
    keep: fn(&RecordedEvent) -> bool,
) -> Result<impl Stream<Item = RecordedEvent> + use<>, ApiError> {
    Ok(svc
        .live
        .org_events(org)
        .await?
        .filter(move |e| futures::future::ready(keep(e))))
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

/// Who watches an organization's stream, checked again at every event: the stream ends
/// with the error (`UNAUTHENTICATED`, `NOT_FOUND`, `FORBIDDEN`) once the session ends
/// (sign-out, expiry), the bot token is retired, the viewer leaves the organization or
/// loses the permission.
#[derive(Clone)]
struct Watcher {
    svc: Arc<Service>,
    /// The WebSocket connection's token, checked anew; `None` outside a WebSocket
    /// (a subscription executed in process), where the viewer at the start stands.
    token: Option<crate::server::LiveToken>,
    viewer: crate::service::Viewer,
    org: uuid::Uuid,
    permission: Permission,
}

impl Watcher {
    fn new(ctx: &Context<'_>, a: &Access, permission: Permission) -> Watcher {
        Watcher {
            svc: svc(ctx).clone(),
            token: ctx.data_opt::<crate::server::LiveToken>().cloned(),
            viewer: viewer(ctx).cloned().unwrap_or_else(|_| Viewer::anonymous()),
            org: a.org,
            permission,
        }
    }

    /// The viewer's access as of the event at `position` (the read models that say who
    /// may do what have reached it), or later.
    async fn check(&self, position: u64) -> async_graphql::Result<Access> {
        reached(&self.svc.projections.console, position).await;
        reached(&self.svc.projections.accounts, position).await;
        let viewer = match &self.token {
            Some(t) => crate::server::viewer_of(&self.svc, t.0.as_deref()),
            None => self.viewer.clone(),
        };
        let a = self.svc.access(&viewer, self.org)?;
        a.require(self.permission)?;
        Ok(a)
    }
}

/// Ends a stream right after its first error (the error is delivered, then the
/// subscription completes).
fn until_refused<T>(
    s: impl Stream<Item = async_graphql::Result<T>>,
) -> impl Stream<Item = async_graphql::Result<T>> {
    futures::stream::unfold((Box::pin(s), false), |(mut s, refused)| async move {
        if refused {
            return None;
        }
        let item = s.next().await?;
        let refused = item.is_err();
        Some((item, (s, refused)))
    })
}

#[GqlSubscription]
impl Subscription {
    /// `bots:read`: a bot of the organization changed status.
    async fn bot_status_changed(
        &self,
        ctx: &Context<'_>,
        organization_id: ID,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<BotNode>>> {
        let a = org_access(ctx, &organization_id, Permission::BotsRead)?;
        let w = Watcher::new(ctx, &a, Permission::BotsRead);
        let events = org_events(&w.svc, a.org, |e| e.event_type == "bot.status_changed").await?;
        Ok(until_refused(events.filter_map(move |e| {
            let w = w.clone();
            async move {
                reached(&w.svc.projections.console, e.position).await;
                let a = match w.check(e.position).await {
                    Ok(a) => a,
                    Err(e) => return Some(Err(e)),
                };
                let bot = e.stream.strip_prefix("bot-")?.parse().ok()?;
                BotNode::load(&w.svc, &a, bot).ok().map(Ok)
            }
        })))
    }

    /// `runs:read`: a run of the organization started or ended.
    async fn run_updated(
        &self,
        ctx: &Context<'_>,
        organization_id: ID,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<RunNode>>> {
        let a = org_access(ctx, &organization_id, Permission::RunsRead)?;
        let w = Watcher::new(ctx, &a, Permission::RunsRead);
        let events = org_events(&w.svc, a.org, |e| e.stream.starts_with("run-")).await?;
        Ok(until_refused(events.filter_map(move |e| {
            let w = w.clone();
            async move {
                reached(&w.svc.projections.runs, e.position).await;
                let a = match w.check(e.position).await {
                    Ok(a) => a,
                    Err(e) => return Some(Err(e)),
                };
                let run = e.stream.strip_prefix("run-")?.parse().ok()?;
                let tree = w.svc.projections.runs.tree();
                let view = projections::runs::run(&tree, w.svc.store.as_ref(), run)
                    .await
                    .ok()??;
                Some(Ok(RunNode { view, access: a }))
            }
        })))
    }

    /// `audit:read`: every new entry of the organization's trail, in log order, none skipped.
    async fn audit_log_tail(
        &self,
        ctx: &Context<'_>,
        organization_id: ID,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<AuditEntryNode>>> {
        let a = org_access(ctx, &organization_id, Permission::AuditRead)?;
        let w = Watcher::new(ctx, &a, Permission::AuditRead);
        let events = org_events(&w.svc, a.org, |_| true).await?;
        Ok(until_refused(events.then(move |e| {
            let w = w.clone();
            async move { w.check(e.position).await.map(|_| AuditEntryNode(e)) }
        })))
    }

    /// `credits:read`: a usage alert of the organization fired.
    async fn usage_alert_triggered(
        &self,
        ctx: &Context<'_>,
        organization_id: ID,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<UsageAlert>>> {
        let a = org_access(ctx, &organization_id, Permission::CreditsRead)?;
        let w = Watcher::new(ctx, &a, Permission::CreditsRead);
        let org = a.org;
        let events = org_events(&w.svc, org, |e| e.event_type == "credits.alert_triggered").await?;
        Ok(until_refused(events.filter_map(move |e| {
            let w = w.clone();
            async move {
                reached(&w.svc.projections.credits, e.position).await;
                if let Err(e) = w.check(e.position).await {
                    return Some(Err(e));
                }
                let id: uuid::Uuid = e.data_value().get("alert_id")?.as_str()?.parse().ok()?;
                let doc = projections::credits::query::doc(&w.svc.projections.credits.tree(), org)
                    .ok()?;
                doc.alerts.get(&id).map(|a| Ok(UsageAlert::of(id, a)))
            }
        })))
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
