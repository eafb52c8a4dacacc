//! `Query`: the viewer, an organization (live or as of a point of the log), the raw
//! event log for analysts, and the projections' status for operators.

use super::scalars::*;
use super::types::*;
use super::{access, svc, viewer};
use crate::error::{ApiError, ApiResult};
use crate::service::Principal;
use async_graphql::{Context, ID, InputObject, Object};
use domain::permissions::Permission;
use projections::time_travel::{self, TimePoint as Point};
use std::collections::HashSet;
use std::sync::Arc;
use uuid::Uuid;

/// Events a page of `events` reads at most when filtering the whole log.
pub const EVENTS_SCAN_MAX: usize = 20_000;

#[derive(InputObject, Clone, Copy)]
pub struct TimePoint {
    pub position: Option<Position>,
    pub at: Option<DateTime>,
}

#[derive(InputObject, Clone, Default)]
pub struct EventFilter {
    pub organization_id: Option<ID>,
    pub types: Option<Vec<String>>,
    pub streams: Option<Vec<String>>,
    pub from_position: Option<Position>,
    pub to_position: Option<Position>,
    pub from: Option<DateTime>,
    pub to: Option<DateTime>,
}

#[derive(Default)]
pub struct Query;

#[Object]
impl Query {
    /// The signed-in user. `UNAUTHENTICATED` without a token.
    async fn viewer(&self, ctx: &Context<'_>) -> async_graphql::Result<UserNode> {
        let user = viewer(ctx)?.user()?;
        Ok(UserNode::load(svc(ctx), user)?)
    }

    /// An organization the viewer belongs to; with `asOf`, as it was then.
    async fn organization(
        &self,
        ctx: &Context<'_>,
        id: ID,
        as_of: Option<TimePoint>,
    ) -> async_graphql::Result<Option<OrgNode>> {
        let org = uuid("id", &id)?;
        let access = access(ctx, org)?;
        let Some(point) = as_of else {
            return Ok(Some(OrgNode::live(access)));
        };
        let point = match (point.position, point.at) {
            (Some(p), None) => Point::Position(p.0),
            (None, Some(t)) => Point::At(t.0),
            _ => {
                return Err(
                    ApiError::bad_input("asOf: give exactly one of position and at").into(),
                );
            }
        };
        let svc = svc(ctx);
        // From the newest snapshot the background writer made (see `serve::run`); a
        // missing or unreadable one only means a longer fold.
        let snapshots = projections::snapshots::Snapshots::open(&svc.db)?;
        let snapshot = time_travel::org_at_with(svc.store.as_ref(), &snapshots, org, point).await?;
        if snapshot.org.id.is_none() {
            return Err(ApiError::not_found("the organization did not exist at that point").into());
        }
        let at = match point {
            Point::At(t) => t,
            Point::Position(_) => match svc.store.read_all(snapshot.position, 1).await?.pop() {
                Some(e) => e.meta.occurred_at,
                None => crate::service::Service::now(),
            },
        };
        Ok(Some(OrgNode::new(
            access,
            Some(Arc::new(Past { snapshot, at })),
        )))
    }

    /// The log itself, for analysts: events of the organizations where the viewer holds
    /// `audit:read` (all of them with the operator token), oldest first.
    #[graphql(
        complexity = "super::connection_complexity(first, child_complexity, filter.is_some())"
    )]
    async fn events(
        &self,
        ctx: &Context<'_>,
        filter: Option<EventFilter>,
        #[graphql(default = 100)] first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<EventConnection> {
        let page = events(ctx, filter.unwrap_or_default(), first.unwrap_or(100), after);
        Ok(crate::service::offload(page).await?)
    }

    /// An addition to the contract: every code an error may carry in
    /// `extensions.code` (so introspection, and the types clients generate, list the
    /// contract's `ErrorCode`). Needs no token.
    async fn error_codes(&self) -> Vec<crate::error::ErrorCode> {
        use crate::error::ErrorCode as E;
        vec![
            E::Unauthenticated,
            E::Forbidden,
            E::NotFound,
            E::BadUserInput,
            E::Conflict,
            E::LimitExceeded,
            E::Internal,
        ]
    }

    /// Every projection's status. Operator token only.
    async fn projections(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<ProjectionStatusNode>> {
        viewer(ctx)?.require_operator()?;
        Ok(svc(ctx)
            .projections
            .statuses()
            .into_iter()
            .map(Into::into)
            .collect())
    }
}

async fn events(
    ctx: &Context<'_>,
    f: EventFilter,
    first: i32,
    after: Option<String>,
) -> ApiResult<EventConnection> {
    let first = super::page_size(Some(first))?;
    let svc = svc(ctx);
    let v = viewer(ctx)?;
    let org = f
        .organization_id
        .as_ref()
        .map(|o| uuid("organizationId", o))
        .transpose()?;
    // Which organizations the viewer may read (None: all, for the operator).
    let allowed: Option<HashSet<Uuid>> = match (&v.principal, org) {
        (Principal::Operator, _) => None,
        (_, Some(o)) => {
            svc.access(v, o)?.require(Permission::AuditRead)?;
            Some([o].into())
        }
        (_, None) => {
            let user = v.user()?;
            let mut set = HashSet::new();
            for (o, _, _) in
                projections::accounts::query::memberships(&svc.projections.accounts.tree(), user)?
            {
                if svc.access(v, o).is_ok_and(|a| a.has(Permission::AuditRead)) {
                    set.insert(o);
                }
            }
            Some(set)
        }
    };
    let after: Option<u64> = parse_cursor("event", after.as_deref())?;
    let mut from = after
        .map(|a| a + 1)
        .unwrap_or(1)
        .max(f.from_position.map_or(1, |p| p.0));
    let to = f.to_position.map_or(u64::MAX, |p| p.0);
    let admits = |e: &store::RecordedEvent| {
        allowed
            .as_ref()
            .is_none_or(|set| e.org().is_some_and(|o| set.contains(&o)))
            && org.is_none_or(|o| e.org() == Some(o))
            && f.types.as_ref().is_none_or(|t| t.contains(&e.event_type))
            && f.streams.as_ref().is_none_or(|s| s.contains(&e.stream))
            && f.from.is_none_or(|t| e.meta.occurred_at >= t.0)
            && f.to.is_none_or(|t| e.meta.occurred_at <= t.0)
    };
    let mut items: Vec<(String, EventNode)> = Vec::new();
    let mut scanned = 0usize;
    let mut has_next = false;
    let mut last_seen = from.saturating_sub(1);
    'outer: while from <= to && scanned < EVENTS_SCAN_MAX {
        let batch = match (org, &allowed) {
            (Some(o), _) => svc.store.read_org(o, from, 512).await?,
            (None, Some(set)) if set.len() == 1 => {
                let o = *set.iter().next().unwrap_or(&Uuid::nil());
                svc.store.read_org(o, from, 512).await?
            }
            (None, Some(set)) if set.is_empty() => Vec::new(),
            _ => svc.store.read_all(from, 512).await?,
        };
        if batch.is_empty() {
            break;
        }
        for e in batch {
            if e.position > to {
                break 'outer;
            }
            scanned += 1;
            if admits(&e) {
                if items.len() == first {
                    has_next = true;
                    break 'outer;
                }
                items.push((cursor("event", e.position), EventNode(e.clone())));
            }
            last_seen = e.position;
            from = e.position + 1;
            if scanned >= EVENTS_SCAN_MAX {
                // A partial page: the cursor lets the client go on from here.
                has_next = true;
                break 'outer;
            }
        }
    }
    let mut info = PageInfo::new(
        &items.iter().map(|(c, _)| c.clone()).collect::<Vec<_>>(),
        has_next,
        after.is_some(),
    );
    if has_next && items.len() < first {
        info.end_cursor = Some(cursor("event", last_seen));
    }
    Ok(EventConnection {
        edges: items
            .into_iter()
            .map(|(cursor, node)| EventEdge { cursor, node })
            .collect(),
        page_info: info,
    })
}
