//! The object types of the contract. Nodes hold what they were resolved from (a domain
//! aggregate from the console read model, or from a time-travel snapshot) and the
//! viewer's access, so nested fields check permissions where they are.

use super::scalars::*;
use super::{page_size, svc};
use crate::error::{ApiError, ApiResult};
use crate::service::{Access, Service};
use async_graphql::{Context, ID, Json, Object, SimpleObject};
use domain::permissions::Permission;
use projections::console::{EntityMeta, query as console};
use projections::time_travel::OrgSnapshot;
use projections::{accounts, credits, runs};
use std::sync::Arc;
use store::RecordedEvent;
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(SimpleObject, Clone, Debug, Default)]
pub struct PageInfo {
    pub has_next_page: bool,
    pub end_cursor: Option<String>,
    pub has_previous_page: bool,
    pub start_cursor: Option<String>,
}

impl PageInfo {
    pub fn new(cursors: &[String], has_next: bool, has_previous: bool) -> PageInfo {
        PageInfo {
            has_next_page: has_next,
            end_cursor: cursors.last().cloned(),
            has_previous_page: has_previous,
            start_cursor: cursors.first().cloned(),
        }
    }
}

macro_rules! connection {
    ($conn:ident, $edge:ident, $node:ty) => {
        #[derive(SimpleObject)]
        pub struct $edge {
            pub cursor: String,
            pub node: $node,
        }
        #[derive(SimpleObject)]
        pub struct $conn {
            pub edges: Vec<$edge>,
            pub page_info: PageInfo,
            pub total_count: i32,
        }
        impl $conn {
            pub fn new(
                items: Vec<(String, $node)>,
                has_next: bool,
                has_previous: bool,
                total: u64,
            ) -> $conn {
                let cursors: Vec<String> = items.iter().map(|(c, _)| c.clone()).collect();
                $conn {
                    page_info: PageInfo::new(&cursors, has_next, has_previous),
                    edges: items
                        .into_iter()
                        .map(|(cursor, node)| $edge { cursor, node })
                        .collect(),
                    total_count: i32::try_from(total).unwrap_or(i32::MAX),
                }
            }
        }
    };
}

connection!(MemberConnection, MemberEdge, MemberNode);
connection!(BotConnection, BotEdge, BotNode);
connection!(RunConnection, RunEdge, RunNode);
connection!(TriggerConnection, TriggerEdge, TriggerNode);
connection!(InvoiceConnection, InvoiceEdge, InvoiceNode);
connection!(AuditEntryConnection, AuditEntryEdge, AuditEntryNode);

// ---------------------------------------------------------------- users

/// `User`.
#[derive(Clone, Debug)]
pub struct UserNode {
    pub id: Uuid,
    pub email: String,
    pub alias: String,
    /// The user a token was just issued to (`signUp`, `signIn`): they read their own
    /// memberships though the request carried no token.
    pub own: bool,
}

impl UserNode {
    pub fn load(svc: &Service, id: Uuid) -> ApiResult<UserNode> {
        Ok(
            match accounts::query::user(&svc.projections.accounts.tree(), id)? {
                Some(u) => UserNode {
                    id: u.id,
                    email: u.email,
                    alias: u.alias,
                    own: false,
                },
                None => UserNode {
                    id,
                    email: String::new(),
                    alias: String::new(),
                    own: false,
                },
            },
        )
    }
}

#[Object(name = "User")]
impl UserNode {
    async fn id(&self) -> ID {
        ID(self.id.to_string())
    }
    async fn email(&self) -> &str {
        &self.email
    }
    async fn alias(&self) -> &str {
        &self.alias
    }
    /// The organizations the user belongs to (the "switch account" list). The user sees
    /// all of theirs; another viewer sees those of the organizations where the viewer
    /// may read the members (what the console's member list already shows).
    async fn memberships(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Membership>> {
        let signed_in;
        let viewer = if self.own {
            signed_in = crate::service::Viewer::signed_in(self.id);
            &signed_in
        } else {
            super::viewer(ctx)?
        };
        let is_self = viewer.user().ok() == Some(self.id);
        let svc = svc(ctx);
        let mut out = Vec::new();
        for (org, _, m) in accounts::query::memberships(&svc.projections.accounts.tree(), self.id)?
        {
            let Ok(access) = svc.access(viewer, org) else {
                continue;
            };
            if !is_self && !access.has(domain::permissions::Permission::MembersRead) {
                continue;
            }
            let roles = m
                .roles
                .iter()
                .filter_map(|r| {
                    access.doc.roles.get(r).map(|role| RoleNode {
                        id: r.clone(),
                        role: role.clone(),
                        member_count: access.doc.member_count_of(r),
                    })
                })
                .collect();
            out.push(Membership {
                organization: OrgNode::live(access),
                kind: m.kind.into(),
                roles,
                joined_at: m.joined_at.into(),
            });
        }
        Ok(out)
    }
}

#[derive(SimpleObject)]
pub struct Membership {
    pub organization: OrgNode,
    pub kind: MemberKind,
    pub roles: Vec<RoleNode>,
    pub joined_at: DateTime,
}

// ---------------------------------------------------------------- organization

/// An organization as it was at a point of the log (`asOf`).
pub struct Past {
    pub snapshot: OrgSnapshot,
    pub at: OffsetDateTime,
}

/// `Organization`: live from the read models, or as it was (`past`).
#[derive(Clone)]
pub struct OrgNode {
    pub access: Access,
    pub past: Option<Arc<Past>>,
    /// Members per role, computed once per node.
    pub counts: Arc<std::sync::OnceLock<Arc<std::collections::HashMap<String, usize>>>>,
}

impl OrgNode {
    pub fn live(access: Access) -> OrgNode {
        OrgNode::new(access, None)
    }

    pub fn new(access: Access, past: Option<Arc<Past>>) -> OrgNode {
        let counts = Arc::new(std::sync::OnceLock::new());
        OrgNode {
            access,
            past,
            counts,
        }
    }
}

impl OrgNode {
    fn org(&self) -> &domain::organization::Organization {
        match &self.past {
            Some(p) => &p.snapshot.org,
            None => &self.access.doc,
        }
    }

    /// The moment the node shows.
    fn now(&self) -> OffsetDateTime {
        self.past.as_ref().map_or_else(Service::now, |p| p.at)
    }

    pub fn billing(&self, svc: &Service) -> ApiResult<Arc<domain::billing::Billing>> {
        Ok(match &self.past {
            Some(p) => Arc::new(p.snapshot.billing.clone()),
            None => svc.billing(self.access.org)?,
        })
    }

    fn bot_list(&self, svc: &Service) -> ApiResult<Arc<Vec<(Uuid, domain::bot::Bot)>>> {
        Ok(match &self.past {
            Some(p) => Arc::new(
                p.snapshot
                    .bots
                    .iter()
                    .filter(|(_, b)| !b.deleted)
                    .map(|(id, b)| (*id, b.clone()))
                    .collect(),
            ),
            None => svc.bots(self.access.org)?,
        })
    }

    fn trigger_list(&self, svc: &Service) -> ApiResult<Vec<(Uuid, domain::trigger::Trigger)>> {
        Ok(match &self.past {
            Some(p) => p
                .snapshot
                .triggers
                .iter()
                .filter(|(_, t)| !t.deleted)
                .map(|(id, t)| (*id, t.clone()))
                .collect(),
            None => console::triggers(&svc.projections.console.tree(), self.access.org)?,
        })
    }

    pub fn role_nodes(&self, ids: impl IntoIterator<Item = String>) -> Vec<RoleNode> {
        let org = self.org();
        let counts = self
            .counts
            .get_or_init(|| Arc::new(crate::service::role_counts(org)));
        ids.into_iter()
            .filter_map(|id| {
                org.roles.get(&id).map(|r| RoleNode {
                    member_count: counts.get(&id).copied().unwrap_or(0),
                    role: r.clone(),
                    id,
                })
            })
            .collect()
    }

    /// One invitation as the console shows it.
    pub fn invitation_node(&self, svc: &Service, id: Uuid) -> ApiResult<InvitationNode> {
        let inv = self
            .org()
            .invitations
            .get(&id)
            .ok_or_else(|| ApiError::not_found(format!("invitation {id} not found")))?;
        let meta = console::invitation_meta(&svc.projections.console.tree(), self.access.org, id)?;
        let invited_by = meta
            .as_ref()
            .and_then(|m| m.invited_by.parse::<Uuid>().ok())
            .map(|u| UserNode::load(svc, u))
            .transpose()?
            .unwrap_or(UserNode {
                id: Uuid::nil(),
                email: String::new(),
                alias: "Orgline".into(),
                own: false,
            });
        Ok(InvitationNode {
            id: ID(id.to_string()),
            email: inv.email.clone(),
            kind: inv.kind.into(),
            roles: self.role_nodes(inv.role_ids.iter().cloned()),
            status: console::invitation_status(inv, self.now()).into(),
            invited_by,
            created_at: meta
                .map_or(OffsetDateTime::UNIX_EPOCH, |m| m.created_at)
                .into(),
            expires_at: inv.expires_at.into(),
        })
    }

    /// A role as the console shows it.
    pub fn role_node(&self, id: &str) -> ApiResult<RoleNode> {
        self.role_nodes([id.to_owned()])
            .pop()
            .ok_or_else(|| ApiError::not_found(format!("role {id} not found")))
    }

    /// The last position the node may show (audit and runs pages stop there).
    fn before(&self) -> Option<u64> {
        self.past.as_ref().map(|p| p.snapshot.position + 1)
    }
}

#[Object(name = "Organization")]
impl OrgNode {
    async fn id(&self) -> ID {
        ID(self.access.org.to_string())
    }
    async fn name(&self) -> &str {
        &self.org().name
    }
    async fn created_at(&self, ctx: &Context<'_>) -> async_graphql::Result<DateTime> {
        let doc =
            accounts::query::organization(&svc(ctx).projections.accounts.tree(), self.access.org)?;
        Ok(doc
            .and_then(|d| d.created_at)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
            .into())
    }
    /// Readable by every member.
    async fn profile(&self) -> OrganizationProfile {
        let p = &self.org().profile;
        OrganizationProfile {
            display_name: if p.display_name.is_empty() {
                self.org().name.clone()
            } else {
                p.display_name.clone()
            },
            tagline: p.tagline.clone(),
            description: p.description.clone(),
            website: p.website.clone(),
            logo_url: p.logo_url.clone(),
            contact_email: p.contact_email.clone(),
            industry: p.industry.clone(),
        }
    }
    async fn viewer_permissions(&self) -> Vec<String> {
        self.access
            .perms
            .iter()
            .map(|p| p.name().to_owned())
            .collect()
    }
    async fn viewer_can_access_console(&self) -> bool {
        self.access.has(Permission::ConsoleAccess)
    }

    /// `members:read`.
    #[graphql(
        complexity = "super::connection_complexity(first, child_complexity, search.is_some())"
    )]
    async fn members(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        kind: Option<MemberKind>,
        search: Option<String>,
    ) -> async_graphql::Result<MemberConnection> {
        self.access.require(Permission::MembersRead)?;
        let first = page_size(first)?;
        let after: Option<Uuid> = parse_cursor("member", after.as_deref())?;
        let svc = svc(ctx);
        let accounts_tree = svc.projections.accounts.tree();
        let (rows, has_next, total) = console::members_of(
            self.org(),
            &accounts_tree,
            kind.map(Into::into),
            search.as_deref(),
            first,
            after,
        )?;
        let joined = svc.org_members(self.access.org)?;
        let items = rows
            .into_iter()
            .map(|r| {
                let joined_at = joined
                    .as_ref()
                    .and_then(|d| d.members.get(&r.user_id))
                    .map_or(OffsetDateTime::UNIX_EPOCH, |m| m.joined_at);
                (
                    cursor("member", r.user_id),
                    MemberNode {
                        user: UserNode {
                            id: r.user_id,
                            email: r.email.clone(),
                            alias: r.alias.clone(),
                            own: false,
                        },
                        alias: r.alias,
                        email: r.email,
                        kind: r.member.kind.into(),
                        roles: self.role_nodes(r.member.roles.iter().cloned()),
                        joined_at: joined_at.into(),
                    },
                )
            })
            .collect();
        Ok(MemberConnection::new(
            items,
            has_next,
            after.is_some(),
            total as u64,
        ))
    }

    /// `members:read`.
    async fn invitations(
        &self,
        ctx: &Context<'_>,
        status: Option<InvitationStatus>,
    ) -> async_graphql::Result<Vec<InvitationNode>> {
        self.access.require(Permission::MembersRead)?;
        let svc = svc(ctx);
        let now = self.now();
        let mut out = Vec::new();
        for (id, inv) in &self.org().invitations {
            let st = console::invitation_status(inv, now);
            if status.is_some_and(|s| projections::console::query::InvitationStatus::from(s) != st)
            {
                continue;
            }
            out.push(self.invitation_node(svc, *id)?);
        }
        Ok(out)
    }

    /// `members:read`.
    async fn roles(&self) -> async_graphql::Result<Vec<RoleNode>> {
        self.access.require(Permission::MembersRead)?;
        Ok(self.role_nodes(self.org().roles.keys().cloned()))
    }

    /// `bots:read`.
    #[graphql(complexity = "super::connection_complexity(first, child_complexity, false)")]
    async fn bots(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        status: Option<BotStatus>,
        enabled: Option<bool>,
    ) -> async_graphql::Result<BotConnection> {
        self.access.require(Permission::BotsRead)?;
        let first = page_size(first)?;
        let after: Option<Uuid> = parse_cursor("bot", after.as_deref())?;
        let svc = svc(ctx);
        let all = self.bot_list(svc)?;
        let matching: Vec<&(Uuid, domain::bot::Bot)> = all
            .iter()
            .filter(|(_, b)| status.is_none_or(|s| BotStatus::from(b.status) == s))
            .filter(|(_, b)| enabled.is_none_or(|e| b.enabled == e))
            .collect();
        let tree = svc.projections.console.tree();
        let (page, has_next, total) = id_page(&matching, after, first);
        let items = page
            .iter()
            .map(|(id, bot)| {
                Ok((
                    cursor("bot", id),
                    BotNode {
                        id: *id,
                        bot: bot.clone(),
                        meta: console::meta(&tree, *id)?,
                        access: self.access.clone(),
                    },
                ))
            })
            .collect::<ApiResult<Vec<_>>>()?;
        Ok(BotConnection::new(items, has_next, after.is_some(), total))
    }

    /// `bots:read`.
    async fn bot(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<BotNode>> {
        self.access.require(Permission::BotsRead)?;
        let id = uuid("id", &id)?;
        let svc = svc(ctx);
        let Some((_, bot)) = self.bot_list(svc)?.iter().find(|(b, _)| *b == id).cloned() else {
            return Ok(None);
        };
        Ok(Some(BotNode {
            id,
            bot,
            meta: console::meta(&svc.projections.console.tree(), id)?,
            access: self.access.clone(),
        }))
    }

    /// `runs:read`.
    #[graphql(
        complexity = "super::connection_complexity(first, child_complexity, filter.is_some())"
    )]
    async fn runs(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        filter: Option<RunFilter>,
    ) -> async_graphql::Result<RunConnection> {
        self.access.require(Permission::RunsRead)?;
        let f = match filter {
            Some(f) => f.into_filter()?,
            None => runs::RunFilter::default(),
        };
        let (svc, access, past) = (svc(ctx), &self.access, self.past.as_deref());
        Ok(store::blocking::run(|| {
            run_page(svc, access, past, &f, first, after)
        })?)
    }

    /// `triggers:read`.
    #[graphql(complexity = "super::connection_complexity(first, child_complexity, false)")]
    async fn triggers(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        enabled: Option<bool>,
    ) -> async_graphql::Result<TriggerConnection> {
        self.access.require(Permission::TriggersRead)?;
        let first = page_size(first)?;
        let after: Option<Uuid> = parse_cursor("trigger", after.as_deref())?;
        let svc = svc(ctx);
        let all = self.trigger_list(svc)?;
        let matching: Vec<&(Uuid, domain::trigger::Trigger)> = all
            .iter()
            .filter(|(_, t)| enabled.is_none_or(|e| t.enabled == e))
            .collect();
        let tree = svc.projections.console.tree();
        let (page, has_next, total) = id_page(&matching, after, first);
        let items = page
            .iter()
            .map(|(id, t)| {
                Ok((
                    cursor("trigger", id),
                    TriggerNode {
                        id: *id,
                        trigger: t.clone(),
                        meta: console::meta(&tree, *id)?,
                        access: self.access.clone(),
                    },
                ))
            })
            .collect::<ApiResult<Vec<_>>>()?;
        Ok(TriggerConnection::new(
            items,
            has_next,
            after.is_some(),
            total,
        ))
    }

    /// `developer:manage`.
    async fn apps(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<AppNode>> {
        self.access.require(Permission::DeveloperManage)?;
        let svc = svc(ctx);
        let tree = svc.projections.console.tree();
        let apps = match &self.past {
            Some(p) => p
                .snapshot
                .apps
                .iter()
                .map(|(id, a)| (*id, a.clone()))
                .collect(),
            None => console::apps(&tree, self.access.org)?,
        };
        apps.into_iter()
            .map(|(id, app)| {
                Ok(AppNode {
                    id,
                    app,
                    meta: console::meta(&tree, id)?,
                })
            })
            .collect::<ApiResult<Vec<_>>>()
            .map_err(Into::into)
    }

    /// `billing:read`.
    async fn subscription(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<PlanSubscription>> {
        self.access.require(Permission::BillingRead)?;
        let b = self.billing(svc(ctx))?;
        Ok(PlanSubscription::of(&b, self.now()))
    }

    /// `billing:read`.
    async fn payment_methods(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<PaymentMethodNode>> {
        self.access.require(Permission::BillingRead)?;
        let b = self.billing(svc(ctx))?;
        Ok(b.payment_methods_with_default()
            .map(|(p, d)| PaymentMethodNode::of(p, d))
            .collect())
    }

    /// `billing:read`.
    async fn billing_information(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<BillingInformation>> {
        self.access.require(Permission::BillingRead)?;
        let b = self.billing(svc(ctx))?;
        let i = &b.info;
        Ok(Some(BillingInformation {
            company: i.company.clone(),
            tax_id: i.tax_id.clone(),
            address: i.address.clone(),
            email: i.email.clone(),
        }))
    }

    /// `billing:read`. Newest first.
    #[graphql(complexity = "super::connection_complexity(first, child_complexity, false)")]
    async fn invoices(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<InvoiceConnection> {
        self.access.require(Permission::BillingRead)?;
        let first = page_size(first)?;
        let after: Option<usize> = parse_cursor("invoice", after.as_deref())?;
        let svc = svc(ctx);
        let b = self.billing(svc)?;
        let total = b.invoices.len();
        // Index in issue order; newest first, so the page walks downwards.
        let end = after.map_or(total, |a| a.min(total));
        let start = end.saturating_sub(first);
        let items: Vec<_> = (start..end)
            .rev()
            .map(|i| {
                (
                    cursor("invoice", i),
                    InvoiceNode::of(svc, self.access.org, &b.invoices[i]),
                )
            })
            .collect();
        Ok(InvoiceConnection::new(
            items,
            start > 0,
            after.is_some(),
            total as u64,
        ))
    }

    /// `console:access`.
    async fn overview(&self, ctx: &Context<'_>) -> async_graphql::Result<Overview> {
        self.access.require(Permission::ConsoleAccess)?;
        let svc = svc(ctx);
        let bots = self.bot_list(svc)?;
        let billing = self.billing(svc)?;
        let balance = match &self.past {
            Some(p) => p.snapshot.ledger.balance().0,
            None => {
                credits::query::doc(&svc.projections.credits.tree(), self.access.org)?
                    .balance()
                    .0
            }
        };
        let count = |f: &dyn Fn(&domain::bot::Bot) -> bool| {
            bots.iter().filter(|(_, b)| f(b)).count() as i32
        };
        Ok(Overview {
            seats: SeatUsage {
                used: self.org().seats_used() as i32,
                total: billing.seats() as i32,
            },
            bots: BotCounts {
                total: bots.len() as i32,
                enabled: count(&|b| b.enabled),
                online: count(&|b| b.status == domain::events::BotStatus::Online),
            },
            credit_balance: balance.to_string(),
        })
    }

    /// `credits:read`.
    async fn usage(&self) -> async_graphql::Result<UsageNode> {
        self.access.require(Permission::CreditsRead)?;
        Ok(UsageNode {
            org: self.access.org,
            past: self.past.clone(),
        })
    }

    /// `audit:read`. Newest first; `query` takes GitHub-style qualifiers.
    #[graphql(
        complexity = "super::connection_complexity(first, child_complexity, filter.is_some() || query.is_some())"
    )]
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        filter: Option<AuditFilter>,
        query: Option<String>,
    ) -> async_graphql::Result<AuditEntryConnection> {
        self.access.require(Permission::AuditRead)?;
        let q = audit_query(filter, query.as_deref())?;
        let page = audit_page(svc(ctx), self.access.org, &q, first, after, self.before());
        Ok(crate::service::offload(page).await?)
    }

    /// `security:manage`.
    async fn security_policy(&self) -> async_graphql::Result<SecurityPolicy> {
        self.access.require(Permission::SecurityManage)?;
        let p = self.org().policy;
        Ok(SecurityPolicy {
            require_mfa: p.require_mfa,
            session_ttl_minutes: p.session_ttl_minutes as i32,
            min_password_length: p.min_password_length as i32,
        })
    }
}

/// A page of `items` (in id order) after the cursor `after`: the page, whether more
/// follow, and how many there are in all.
fn id_page<'a, T>(
    items: &'a [&'a (Uuid, T)],
    after: Option<Uuid>,
    first: usize,
) -> (&'a [&'a (Uuid, T)], bool, u64) {
    let start = after.map_or(0, |a| items.partition_point(|(id, _)| *id <= a));
    let end = (start + first).min(items.len());
    (&items[start..end], items.len() > end, items.len() as u64)
}

/// Builds an audit filter from the input object and the query string.
pub fn audit_query(
    filter: Option<AuditFilter>,
    query: Option<&str>,
) -> ApiResult<projections::audit::AuditQuery> {
    let mut q = projections::audit::AuditQuery::default();
    if let Some(f) = filter {
        q.actions = f.actions.unwrap_or_default();
        q.actor = f.actor_id.map(|a| a.to_string());
        q.target = f.target_id.map(|t| t.to_string());
        q.from = f.from.map(|d| d.0);
        q.to = f.to.map(|d| d.0);
    }
    if let Some(s) = query {
        let parsed = projections::audit::AuditQuery::parse(s)
            .map_err(|e| ApiError::bad_input(format!("query: {e}")))?;
        q = q.merge(parsed);
    }
    Ok(q)
}

/// A page of the audit log, newest first, entries before `limit` (a time-travel bound).
pub async fn audit_page(
    svc: &Service,
    org: Uuid,
    q: &projections::audit::AuditQuery,
    first: Option<i32>,
    after: Option<String>,
    limit: Option<u64>,
) -> ApiResult<AuditEntryConnection> {
    let first = page_size(first)?;
    let after: Option<u64> = parse_cursor("audit", after.as_deref())?;
    let before = match (after, limit) {
        (Some(a), Some(l)) => Some(a.min(l)),
        (a, l) => a.or(l),
    };
    let page = projections::audit::page(
        &svc.projections.audit.tree(),
        svc.store.as_ref(),
        org,
        q,
        first,
        before,
        Some(limit.unwrap_or(u64::MAX)),
    )
    .await?;
    let items = page
        .entries
        .into_iter()
        .map(|e| (cursor("audit", e.position), AuditEntryNode(e)))
        .collect();
    Ok(AuditEntryConnection::new(
        items,
        page.has_next,
        after.is_some(),
        page.total_count,
    ))
}

/// A page of runs, newest first; with `past`, as they were then.
pub fn run_page(
    svc: &Service,
    access: &Access,
    past: Option<&Past>,
    f: &runs::RunFilter,
    first: Option<i32>,
    after: Option<String>,
) -> ApiResult<RunConnection> {
    let first = page_size(first)?;
    let after: Option<u64> = parse_cursor("run", after.as_deref())?;
    let limit = past.map(|p| p.snapshot.position + 1);
    let before = match (after, limit) {
        (Some(a), Some(l)) => Some(a.min(l)),
        (a, l) => a.or(l),
    };
    let tree = svc.projections.runs.tree();
    let page = runs::page(
        &tree,
        access.org,
        f,
        first,
        before,
        Some(limit.unwrap_or(u64::MAX)),
    )?;
    let items = page
        .runs
        .into_iter()
        .map(|(position, mut view)| {
            if let Some(p) = past
                && let Some(run) = p.snapshot.runs.get(&view.id)
            {
                // The run as it was: later outcomes are not known yet.
                let status = run_status(run.status);
                if status != view.status {
                    view.status = status;
                    view.ended_at = None;
                }
                view.duration_ms = run.duration_ms;
                view.credits = run.credits;
                view.error = run.error.clone();
            }
            (
                cursor("run", position),
                RunNode {
                    view,
                    access: access.clone(),
                },
            )
        })
        .collect();
    Ok(RunConnection::new(
        items,
        page.has_next,
        after.is_some(),
        page.total_count,
    ))
}

#[derive(SimpleObject, Clone)]
pub struct OrganizationProfile {
    pub display_name: String,
    pub tagline: Option<String>,
    pub description: Option<String>,
    pub website: Option<String>,
    pub logo_url: Option<String>,
    pub contact_email: Option<String>,
    pub industry: Option<String>,
}

#[derive(SimpleObject, Clone)]
#[graphql(name = "Member")]
pub struct MemberNode {
    pub user: UserNode,
    pub alias: String,
    pub email: String,
    pub kind: MemberKind,
    pub roles: Vec<RoleNode>,
    pub joined_at: DateTime,
}

#[derive(SimpleObject, Clone)]
#[graphql(name = "Invitation")]
pub struct InvitationNode {
    pub id: ID,
    pub email: String,
    pub kind: MemberKind,
    pub roles: Vec<RoleNode>,
    pub status: InvitationStatus,
    pub invited_by: UserNode,
    pub created_at: DateTime,
    pub expires_at: DateTime,
}

/// `Role`.
#[derive(Clone, Debug)]
pub struct RoleNode {
    pub id: String,
    pub role: domain::organization::Role,
    pub member_count: usize,
}

#[Object(name = "Role")]
impl RoleNode {
    async fn id(&self) -> ID {
        ID(self.id.clone())
    }
    async fn name(&self) -> &str {
        &self.role.name
    }
    async fn built_in(&self) -> bool {
        self.role.built_in
    }
    async fn permissions(&self) -> Vec<String> {
        self.role
            .permissions
            .iter()
            .map(|p| p.name().to_owned())
            .collect()
    }
    async fn member_count(&self) -> i32 {
        self.member_count as i32
    }
}

// ---------------------------------------------------------------- bots, runs, triggers, apps

/// `Bot`.
#[derive(Clone)]
pub struct BotNode {
    pub id: Uuid,
    pub bot: domain::bot::Bot,
    pub meta: EntityMeta,
    pub access: Access,
}

impl BotNode {
    /// The bot from the console read model (deleted bots too: runs still name them).
    pub fn load(svc: &Service, access: &Access, id: Uuid) -> ApiResult<BotNode> {
        let tree = svc.projections.console.tree();
        let bot = console::bot_any(&tree, access.org, id)?
            .ok_or_else(|| ApiError::not_found(format!("bot {id} not found")))?;
        Ok(BotNode {
            id,
            bot,
            meta: console::meta(&tree, id)?,
            access: access.clone(),
        })
    }
}

#[Object(name = "Bot")]
impl BotNode {
    async fn id(&self) -> ID {
        ID(self.id.to_string())
    }
    async fn name(&self) -> &str {
        &self.bot.name
    }
    async fn machine(&self) -> Option<&str> {
        self.bot.machine.as_deref()
    }
    async fn enabled(&self) -> bool {
        self.bot.enabled
    }
    async fn status(&self) -> BotStatus {
        self.bot.status.into()
    }
    /// The bot's last status report: a change (an event) or a heartbeat since (held by
    /// this server, not logged). The system marking it offline does not count.
    async fn last_seen_at(&self, ctx: &Context<'_>) -> Option<DateTime> {
        let beat = svc(ctx).last_heartbeat(self.id);
        self.meta.last_seen_at.max(beat).map(DateTime)
    }
    async fn registered_at(&self) -> DateTime {
        self.meta
            .created_at
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
            .into()
    }
    /// `runs:read`. Newest first.
    #[graphql(complexity = "super::connection_complexity(first, child_complexity, false)")]
    async fn runs(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<RunConnection> {
        self.access.require(Permission::RunsRead)?;
        let f = runs::RunFilter {
            bot: Some(self.id),
            ..Default::default()
        };
        let (svc, access) = (svc(ctx), &self.access);
        Ok(store::blocking::run(|| {
            run_page(svc, access, None, &f, first, after)
        })?)
    }
    /// Credits the bot consumed, ever.
    async fn credits_consumed(&self, ctx: &Context<'_>) -> async_graphql::Result<String> {
        let by_bot = credits::query::breakdown(
            &svc(ctx).projections.credits.tree(),
            self.access.org,
            credits::query::By::Bot,
            None,
            None,
        )?;
        let key = self.id.to_string();
        Ok(by_bot
            .iter()
            .find(|(k, _)| *k == key)
            .map_or(0, |(_, b)| b.credits)
            .to_string())
    }
}

/// `Run`.
#[derive(Clone)]
pub struct RunNode {
    pub view: runs::RunView,
    pub access: Access,
}

#[Object(name = "Run")]
impl RunNode {
    async fn id(&self) -> ID {
        ID(self.view.id.to_string())
    }
    async fn bot(&self, ctx: &Context<'_>) -> async_graphql::Result<BotNode> {
        let key = (self.access.org, self.view.bot_id);
        let bot = ctx
            .data_unchecked::<super::loaders::Bots>()
            .load_one(key)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("bot {} not found", key.1)))?;
        Ok(BotNode {
            id: key.1,
            bot,
            meta: console::meta(&svc(ctx).projections.console.tree(), key.1)?,
            access: self.access.clone(),
        })
    }
    async fn task(&self) -> &str {
        &self.view.task
    }
    async fn trigger(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<TriggerNode>> {
        let Some(id) = self.view.trigger_id else {
            return Ok(None);
        };
        Ok(TriggerNode::load(svc(ctx), &self.access, id)?)
    }
    async fn status(&self) -> RunStatus {
        self.view.status.into()
    }
    async fn started_at(&self) -> DateTime {
        self.view.started_at.into()
    }
    async fn ended_at(&self) -> Option<DateTime> {
        self.view.ended_at.map(DateTime)
    }
    async fn duration_ms(&self) -> Option<i32> {
        self.view
            .duration_ms
            .map(|d| i32::try_from(d).unwrap_or(i32::MAX))
    }
    async fn credits(&self) -> Option<String> {
        self.view.credits.map(|c| c.0.to_string())
    }
    async fn error(&self) -> Option<&str> {
        self.view.error.as_deref()
    }
}

/// `Trigger`.
#[derive(Clone)]
pub struct TriggerNode {
    pub id: Uuid,
    pub trigger: domain::trigger::Trigger,
    pub meta: EntityMeta,
    pub access: Access,
}

impl TriggerNode {
    pub fn load(svc: &Service, access: &Access, id: Uuid) -> ApiResult<Option<TriggerNode>> {
        let tree = svc.projections.console.tree();
        let Some(trigger) = console::trigger_any(&tree, access.org, id)? else {
            return Ok(None);
        };
        Ok(Some(TriggerNode {
            id,
            trigger,
            meta: console::meta(&tree, id)?,
            access: access.clone(),
        }))
    }
}

#[Object(name = "Trigger")]
impl TriggerNode {
    async fn id(&self) -> ID {
        ID(self.id.to_string())
    }
    async fn name(&self) -> &str {
        &self.trigger.name
    }
    async fn kind(&self) -> TriggerKind {
        self.trigger
            .kind
            .map_or(TriggerKind::Manual, TriggerKind::from)
    }
    async fn schedule(&self) -> Option<&str> {
        self.trigger.schedule.as_deref()
    }
    async fn enabled(&self) -> bool {
        self.trigger.enabled
    }
    async fn bot(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<BotNode>> {
        let Some(id) = self.trigger.bot_id else {
            return Ok(None);
        };
        Ok(BotNode::load(svc(ctx), &self.access, id).ok())
    }
    async fn task(&self) -> &str {
        &self.trigger.task
    }
    async fn last_fired_at(&self) -> Option<DateTime> {
        self.meta.last_fired_at.map(DateTime)
    }
    async fn fire_count(&self) -> i32 {
        i32::try_from(self.trigger.fire_count).unwrap_or(i32::MAX)
    }
}

/// `App`.
#[derive(Clone)]
pub struct AppNode {
    pub id: Uuid,
    pub app: domain::app::App,
    pub meta: EntityMeta,
}

#[Object(name = "App")]
impl AppNode {
    async fn id(&self) -> ID {
        ID(self.id.to_string())
    }
    async fn name(&self) -> &str {
        &self.app.name
    }
    async fn kind(&self) -> AppKind {
        self.app.kind.map_or(AppKind::App, AppKind::from)
    }
    async fn developer(&self, ctx: &Context<'_>) -> async_graphql::Result<UserNode> {
        let id = self.app.developer_id.unwrap_or_default();
        let user = ctx
            .data_unchecked::<super::loaders::Users>()
            .load_one(id)
            .await?;
        Ok(user.map_or_else(
            || UserNode {
                id,
                email: String::new(),
                alias: String::new(),
                own: false,
            },
            |u| UserNode {
                id: u.id,
                email: u.email,
                alias: u.alias,
                own: false,
            },
        ))
    }
    async fn versions(&self) -> Vec<AppVersion> {
        self.meta
            .versions
            .iter()
            .map(|v| AppVersion {
                version: v.version.clone(),
                notes: v.notes.clone(),
                visibility: v.visibility.into(),
                published_at: v.published_at.into(),
            })
            .collect()
    }
    async fn published(&self) -> bool {
        self.app.published
    }
}

#[derive(SimpleObject, Clone)]
pub struct AppVersion {
    pub version: String,
    pub notes: Option<String>,
    pub visibility: Visibility,
    pub published_at: DateTime,
}

// ---------------------------------------------------------------- billing

#[derive(SimpleObject, Clone)]
pub struct PlanSubscription {
    pub plan: String,
    pub seats: i32,
    pub status: String,
    pub period_start: DateTime,
    pub period_end: DateTime,
    pub cancel_at_period_end: bool,
}

impl PlanSubscription {
    pub fn of(b: &domain::billing::Billing, now: OffsetDateTime) -> Option<PlanSubscription> {
        let s = b.subscription.as_ref()?;
        Some(PlanSubscription {
            plan: s.plan.clone(),
            seats: s.seats as i32,
            status: b.subscription_status(now).unwrap_or("active").to_owned(),
            period_start: s.period_start.into(),
            period_end: s.period_end.into(),
            cancel_at_period_end: s.cancel_at_period_end,
        })
    }
}

#[derive(SimpleObject, Clone)]
#[graphql(name = "PaymentMethod")]
pub struct PaymentMethodNode {
    pub id: ID,
    pub brand: String,
    pub last4: String,
    pub exp_month: i32,
    pub exp_year: i32,
    pub is_default: bool,
}

impl PaymentMethodNode {
    pub fn of(p: &domain::billing::PaymentMethod, is_default: bool) -> PaymentMethodNode {
        PaymentMethodNode {
            id: ID(p.id.to_string()),
            brand: p.brand.clone(),
            last4: p.last4.clone(),
            exp_month: i32::from(p.exp_month),
            exp_year: i32::from(p.exp_year),
            is_default,
        }
    }
}

#[derive(SimpleObject, Clone)]
pub struct BillingInformation {
    pub company: Option<String>,
    pub tax_id: Option<String>,
    pub address: Option<String>,
    pub email: Option<String>,
}

#[derive(SimpleObject, Clone)]
#[graphql(name = "Invoice")]
pub struct InvoiceNode {
    pub id: ID,
    pub number: String,
    pub status: InvoiceStatus,
    pub total: String,
    pub currency: String,
    pub issued_at: DateTime,
    pub due_at: DateTime,
    pub lines: Vec<InvoiceLine>,
    pub download_url: String,
}

impl InvoiceNode {
    pub fn of(svc: &Service, org: Uuid, i: &domain::billing::Invoice) -> InvoiceNode {
        InvoiceNode {
            id: ID(i.id.to_string()),
            number: i.number.clone(),
            status: i.status.into(),
            total: i.total.0.to_string(),
            currency: "USD".into(),
            issued_at: i.issued_at().into(),
            due_at: i.due_at.into(),
            lines: i
                .lines
                .iter()
                .map(|l| InvoiceLine {
                    description: l.description.clone(),
                    quantity: i32::try_from(l.quantity).unwrap_or(i32::MAX),
                    unit_amount: l.unit_amount.0.to_string(),
                    amount: l.amount.0.to_string(),
                })
                .collect(),
            download_url: format!(
                "{}/organizations/{org}/invoices/{}.pdf",
                svc.config.base_url, i.id
            ),
        }
    }
}

#[derive(SimpleObject, Clone)]
pub struct InvoiceLine {
    pub description: String,
    pub quantity: i32,
    pub unit_amount: String,
    pub amount: String,
}

#[derive(SimpleObject, Clone)]
pub struct Overview {
    pub seats: SeatUsage,
    pub bots: BotCounts,
    pub credit_balance: String,
}

#[derive(SimpleObject, Clone)]
pub struct SeatUsage {
    pub used: i32,
    pub total: i32,
}

#[derive(SimpleObject, Clone)]
pub struct BotCounts {
    pub total: i32,
    pub enabled: i32,
    pub online: i32,
}

// ---------------------------------------------------------------- usage

/// `Usage`: the credits of one organization.
#[derive(Clone)]
pub struct UsageNode {
    pub org: Uuid,
    pub past: Option<Arc<Past>>,
}

/// Consumption of `org` within `[from, to]` (inclusive, to the nanosecond), grouped
/// `by` day or bot. Whole days come from the credits read model's day buckets; the
/// parts of days at either end, from the organization's `credits.consumed` entries
/// of the audit trail within them.
async fn usage(
    svc: &Service,
    org: Uuid,
    by: credits::query::By,
    from: Option<OffsetDateTime>,
    to: Option<OffsetDateTime>,
) -> ApiResult<Vec<(String, credits::Bucket)>> {
    use credits::query::By;
    let utc = |t: OffsetDateTime| t.to_offset(time::UtcOffset::UTC);
    let midnight = |t: OffsetDateTime| utc(t).replace_time(time::Time::MIDNIGHT);
    let day = time::Duration::days(1);
    let ns = time::Duration::nanoseconds(1);
    // The whole days: [first, last] by their midnights; the partial windows around them.
    let mut partial: Vec<(OffsetDateTime, OffsetDateTime)> = Vec::new();
    let first = match from {
        Some(f) if midnight(f) == utc(f) => Some(utc(f)),
        Some(f) => {
            partial.push((f, midnight(f) + day - ns));
            Some(midnight(f) + day)
        }
        None => None,
    };
    let last = match to {
        Some(t) if utc(t) == midnight(t) + day - ns => Some(midnight(t)),
        Some(t) => {
            partial.push((midnight(t), t));
            Some(midnight(t) - day)
        }
        None => None,
    };
    let mut out: std::collections::BTreeMap<String, credits::Bucket> = Default::default();
    let add = |out: &mut std::collections::BTreeMap<String, credits::Bucket>,
               k: String,
               credits: u64,
               runs: u64| {
        let slot = out.entry(k).or_default();
        slot.credits = slot.credits.saturating_add(credits);
        slot.runs += runs;
    };
    if let (Some(f), Some(t)) = (from, to)
        && midnight(f) == midnight(t)
        && partial.len() == 2
    {
        // Both ends in one day, neither whole: one window.
        partial = vec![(f, t)];
    }
    // No whole day when both ends fall in one day, or in two neighbouring ones.
    let whole = match (first, last) {
        (Some(a), Some(b)) => a <= b,
        _ => true,
    };
    if whole {
        for (k, b) in
            credits::query::breakdown(&svc.projections.credits.tree(), org, by, first, last)?
        {
            add(&mut out, k, b.credits, b.runs);
        }
    }
    for (f, t) in partial {
        if f > t {
            continue;
        }
        let q = projections::audit::AuditQuery {
            actions: vec!["credits.consumed".into()],
            from: Some(f),
            to: Some(t),
            ..Default::default()
        };
        let mut before = None;
        loop {
            let page = projections::audit::page(
                &svc.projections.audit.tree(),
                svc.store.as_ref(),
                org,
                &q,
                projections::audit::PAGE_MAX,
                before,
                None,
            )
            .await?;
            for e in &page.entries {
                if let Some(domain::Event::CreditsConsumed(c)) =
                    projections::time_travel::decode(e)?
                {
                    let key = match by {
                        By::Day => {
                            let d = utc(e.meta.occurred_at).date();
                            format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
                        }
                        By::Bot => c.bot_id.to_string(),
                    };
                    add(&mut out, key, c.amount.0, u64::from(c.run_id.is_some()));
                }
            }
            if !page.has_next {
                break;
            }
            before = page.entries.last().map(|e| e.position);
        }
    }
    Ok(out.into_iter().collect())
}

impl UsageNode {
    fn doc(&self, svc: &Service) -> ApiResult<credits::CreditsDoc> {
        Ok(credits::query::doc(
            &svc.projections.credits.tree(),
            self.org,
        )?)
    }

    /// The upper time bound of what this node may show.
    fn cap(&self, to: Option<DateTime>) -> Option<OffsetDateTime> {
        match (&self.past, to) {
            (Some(p), Some(t)) => Some(t.0.min(p.at)),
            (Some(p), None) => Some(p.at),
            (None, t) => t.map(|t| t.0),
        }
    }
}

#[Object(name = "Usage")]
impl UsageNode {
    async fn balance(&self, ctx: &Context<'_>) -> async_graphql::Result<String> {
        Ok(match &self.past {
            Some(p) => p.snapshot.ledger.balance().0.to_string(),
            None => self.doc(svc(ctx))?.balance().0.to_string(),
        })
    }
    async fn consumed(
        &self,
        ctx: &Context<'_>,
        from: Option<DateTime>,
        to: Option<DateTime>,
    ) -> async_graphql::Result<String> {
        let rows = usage(
            svc(ctx),
            self.org,
            credits::query::By::Day,
            from.map(|d| d.0),
            self.cap(to),
        )
        .await?;
        Ok(rows.iter().map(|(_, b)| b.credits).sum::<u64>().to_string())
    }
    async fn breakdown(
        &self,
        ctx: &Context<'_>,
        by: UsageBucket,
        from: Option<DateTime>,
        to: Option<DateTime>,
    ) -> async_graphql::Result<Vec<UsagePoint>> {
        let by = match by {
            UsageBucket::Day => credits::query::By::Day,
            UsageBucket::Bot => credits::query::By::Bot,
        };
        let rows = usage(svc(ctx), self.org, by, from.map(|d| d.0), self.cap(to)).await?;
        Ok(rows
            .into_iter()
            .map(|(key, b)| UsagePoint {
                key,
                credits: b.credits.to_string(),
                runs: i32::try_from(b.runs).unwrap_or(i32::MAX),
            })
            .collect())
    }
    async fn alerts(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<UsageAlert>> {
        Ok(match &self.past {
            Some(p) => p
                .snapshot
                .ledger
                .alerts
                .iter()
                .map(|(id, a)| UsageAlert {
                    id: ID(id.to_string()),
                    threshold: a.threshold.0.to_string(),
                    webhook_url: a.webhook_url.clone(),
                    state: if a.in_alarm { "IN_ALARM" } else { "OK" }.into(),
                    last_triggered_at: None,
                })
                .collect(),
            None => self
                .doc(svc(ctx))?
                .alerts
                .iter()
                .map(|(id, a)| UsageAlert::of(*id, a))
                .collect(),
        })
    }
    async fn limit(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<UsageLimit>> {
        let (limit, used) = match &self.past {
            Some(p) => (p.snapshot.ledger.limit, p.snapshot.ledger.used_in(p.at)),
            None => {
                let d = self.doc(svc(ctx))?;
                (d.limit, d.used_in(Service::now()))
            }
        };
        if limit.is_zero() {
            return Ok(None);
        }
        Ok(Some(UsageLimit {
            period: domain::ledger::LIMIT_PERIOD.to_owned(),
            limit: limit.0.to_string(),
            used_this_period: used.0.to_string(),
        }))
    }
    async fn grants(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<CreditGrant>> {
        let grants = match &self.past {
            Some(p) => p.snapshot.ledger.grants.clone(),
            None => self.doc(svc(ctx))?.grants.clone(),
        };
        Ok(grants
            .into_iter()
            .map(|g| CreditGrant {
                id: ID(g.id.to_string()),
                amount: g.amount.0.to_string(),
                remaining: g.remaining.0.to_string(),
                source: grant_source(g.source).to_owned(),
                expires_at: g.expires_at.map(DateTime),
            })
            .collect())
    }
}

#[derive(SimpleObject, Clone)]
pub struct UsagePoint {
    pub key: String,
    pub credits: String,
    pub runs: i32,
}

#[derive(SimpleObject, Clone)]
pub struct UsageAlert {
    pub id: ID,
    pub threshold: String,
    pub webhook_url: Option<String>,
    /// `OK` or `IN_ALARM`.
    pub state: String,
    pub last_triggered_at: Option<DateTime>,
}

impl UsageAlert {
    pub fn of(id: Uuid, a: &credits::AlertView) -> UsageAlert {
        UsageAlert {
            id: ID(id.to_string()),
            threshold: a.threshold.0.to_string(),
            webhook_url: a.webhook_url.clone(),
            state: if a.in_alarm { "IN_ALARM" } else { "OK" }.into(),
            last_triggered_at: a.last_triggered_at.map(DateTime),
        }
    }
}

#[derive(SimpleObject, Clone)]
pub struct UsageLimit {
    pub period: String,
    pub limit: String,
    pub used_this_period: String,
}

#[derive(SimpleObject, Clone)]
pub struct CreditGrant {
    pub id: ID,
    pub amount: String,
    pub remaining: String,
    pub source: String,
    pub expires_at: Option<DateTime>,
}

#[derive(SimpleObject, Clone)]
pub struct SecurityPolicy {
    pub require_mfa: bool,
    pub session_ttl_minutes: i32,
    pub min_password_length: i32,
}

// ---------------------------------------------------------------- audit, events, projections

#[derive(async_graphql::InputObject, Clone, Default)]
pub struct AuditFilter {
    pub actor_id: Option<ID>,
    pub actions: Option<Vec<String>>,
    pub from: Option<DateTime>,
    pub to: Option<DateTime>,
    pub target_id: Option<ID>,
}

#[derive(async_graphql::InputObject, Clone, Default)]
pub struct RunFilter {
    pub bot_id: Option<ID>,
    pub status: Option<RunStatus>,
    pub trigger_id: Option<ID>,
    pub from: Option<DateTime>,
    pub to: Option<DateTime>,
}

impl RunFilter {
    pub fn into_filter(self) -> ApiResult<runs::RunFilter> {
        Ok(runs::RunFilter {
            bot: self.bot_id.as_ref().map(|b| uuid("botId", b)).transpose()?,
            status: self.status.map(Into::into),
            trigger: self
                .trigger_id
                .as_ref()
                .map(|t| uuid("triggerId", t))
                .transpose()?,
            from: self.from.map(|d| d.0),
            to: self.to.map(|d| d.0),
        })
    }
}

#[derive(SimpleObject, Clone)]
pub struct Actor {
    pub kind: ActorKind,
    pub id: ID,
    pub name: Option<String>,
}

/// `AuditEntry`: one event of the organization's trail.
#[derive(Clone)]
pub struct AuditEntryNode(pub RecordedEvent);

#[Object(name = "AuditEntry")]
impl AuditEntryNode {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn position(&self) -> Position {
        Position(self.0.position)
    }
    async fn action(&self) -> &str {
        &self.0.event_type
    }
    async fn actor(&self, ctx: &Context<'_>) -> async_graphql::Result<Actor> {
        let a = &self.0.meta.actor;
        let svc = svc(ctx);
        let _ = svc;
        let name = match (a.kind, a.id.parse::<Uuid>(), self.0.org()) {
            (store::ActorKind::User, Ok(u), _) => ctx
                .data_unchecked::<super::loaders::Users>()
                .load_one(u)
                .await?
                .map(|u| u.alias),
            (store::ActorKind::Bot, Ok(b), Some(org)) => ctx
                .data_unchecked::<super::loaders::Bots>()
                .load_one((org, b))
                .await?
                .map(|b| b.name),
            (store::ActorKind::System, _, _) => Some("Orgline".to_owned()),
            _ => None,
        };
        Ok(Actor {
            kind: a.kind.into(),
            id: ID(a.id.clone()),
            name,
        })
    }
    async fn occurred_at(&self) -> DateTime {
        self.0.meta.occurred_at.into()
    }
    async fn stream(&self) -> &str {
        &self.0.stream
    }
    async fn target_id(&self) -> Option<ID> {
        let t = projections::audit::target_of(&self.0);
        (!t.is_empty()).then_some(ID(t))
    }
    async fn data(&self) -> Json<serde_json::Value> {
        Json(self.0.data_value())
    }
    async fn correlation_id(&self) -> Option<ID> {
        self.0.meta.correlation.map(|c| ID(c.to_string()))
    }
    async fn hash(&self) -> String {
        self.0.hash_hex()
    }
}

/// `Event`: an envelope of the log, for analysts.
#[derive(Clone)]
pub struct EventNode(pub RecordedEvent);

#[Object(name = "Event")]
impl EventNode {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn position(&self) -> Position {
        Position(self.0.position)
    }
    async fn stream(&self) -> &str {
        &self.0.stream
    }
    async fn version(&self) -> i32 {
        i32::try_from(self.0.version).unwrap_or(i32::MAX)
    }
    #[graphql(name = "type")]
    async fn event_type(&self) -> &str {
        &self.0.event_type
    }
    async fn schema(&self) -> i32 {
        self.0.schema as i32
    }
    async fn data(&self) -> Json<serde_json::Value> {
        Json(self.0.data_value())
    }
    async fn meta(&self) -> Json<serde_json::Value> {
        Json(serde_json::to_value(&self.0.meta).unwrap_or_default())
    }
    async fn hash(&self) -> String {
        self.0.hash_hex()
    }
}

#[derive(SimpleObject)]
pub struct EventEdge {
    pub cursor: String,
    pub node: EventNode,
}

#[derive(SimpleObject)]
pub struct EventConnection {
    pub edges: Vec<EventEdge>,
    pub page_info: PageInfo,
}

#[derive(SimpleObject, Clone)]
#[graphql(name = "ProjectionStatus")]
pub struct ProjectionStatusNode {
    pub name: String,
    pub version: i32,
    pub position: Position,
    pub lag: Position,
    pub state: String,
    pub events_per_second: Option<f64>,
}

impl From<projections::ProjectionStatus> for ProjectionStatusNode {
    fn from(s: projections::ProjectionStatus) -> ProjectionStatusNode {
        ProjectionStatusNode {
            name: s.name.to_owned(),
            version: s.version as i32,
            position: Position(s.position),
            lag: Position(s.lag),
            state: s.state.name().to_owned(),
            events_per_second: s.events_per_second,
        }
    }
}

fn run_status(s: domain::run::RunStatus) -> runs::Status {
    use domain::run::RunStatus as R;
    match s {
        R::Running => runs::Status::Running,
        R::Completed => runs::Status::Completed,
        R::Failed => runs::Status::Failed,
        R::Cancelled => runs::Status::Cancelled,
    }
}

fn grant_source(s: domain::events::GrantSource) -> &'static str {
    use domain::events::GrantSource as G;
    match s {
        G::Plan => "plan",
        G::Purchase => "purchase",
        G::Promo => "promo",
        G::Adjustment => "adjustment",
    }
}
