//! The application core the resolvers call: the log, the read models, the stream
//! writers, credentials — and the write path of every mutation:
//! authorize → decide → append (expected version, batched per stream) → follow-ups →
//! wait until every read model covers the position → answer with `position`.

use crate::auth::Credentials;
use crate::error::{ApiError, ApiResult};
use crate::writer::{Outcome, Streamed, Writer};
use domain::organization::Organization;
use domain::permissions::{Permission, PermissionSet};
use domain::process::FollowUp;
use domain::{Context, streams};
use projections::{ProjectionHandle, ProjectionStatus};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use store::{EventStore, Metadata};
use time::OffsetDateTime;
use uuid::Uuid;

/// How long a mutation waits for the read models to reach its position.
pub const WAIT_FOR_PROJECTIONS: Duration = Duration::from_secs(10);

/// Runs `f`, a read that may walk many entries (an audit page, the log's `events`),
/// where it may block: on the multi-threaded runtime the worker's other tasks move to
/// another thread meanwhile, so a heavy page never holds up mutations, projections or
/// subscriptions. Elsewhere it is simply awaited.
pub async fn offload<F: std::future::Future>(f: F) -> F::Output {
    let multi = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if multi {
        tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
    } else {
        f.await
    }
}

/// Server settings.
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// `ORGLINE_OPERATOR_TOKEN`: unlocks `projections`, `rebuildProjection` and
    /// `projectionProgress`. None: no operator.
    pub operator_token: Option<String>,
    /// Public base URL used in `Invoice.downloadUrl` (empty: a path relative to the server).
    pub base_url: String,
    /// Keep whole query responses until a read model moves (`ORGLINE_RESPONSE_CACHE=0`
    /// turns it off).
    pub response_cache: bool,
    /// `ORGLINE_WEBHOOKS_ALLOW_PRIVATE=1`: usage-alert webhooks may go to private,
    /// loopback and link-local addresses (off: public addresses only).
    pub private_webhooks: bool,
    /// `ORGLINE_TRUSTED_PROXIES` (comma-separated addresses): peers whose
    /// `X-Forwarded-For` names the client for the per-client limits. Empty: the peer's
    /// address is the client's.
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

/// The built-in read models.
#[derive(Clone)]
pub struct Projections {
    pub accounts: ProjectionHandle,
    pub console: ProjectionHandle,
    pub audit: ProjectionHandle,
    pub credits: ProjectionHandle,
    pub runs: ProjectionHandle,
}

impl Projections {
    /// Starts every built-in projection over `store`, keeping state in `db`.
    pub fn spawn(store: Arc<dyn EventStore>, db: &sled::Db) -> ApiResult<Projections> {
        use projections::*;
        // One shared read of the log while they catch up or rebuild together.
        let feed = feed::Feed::new(store);
        Ok(Projections {
            accounts: runner::spawn_fed(&feed, db.clone(), accounts::Accounts::default)?,
            console: runner::spawn_fed(&feed, db.clone(), console::Console::default)?,
            audit: runner::spawn_fed(&feed, db.clone(), audit::Audit::default)?,
            credits: runner::spawn_fed(&feed, db.clone(), credits::CreditsProjection::default)?,
            runs: runner::spawn_fed(&feed, db.clone(), runs::Runs::default)?,
        })
    }

    pub fn all(&self) -> [&ProjectionHandle; 5] {
        [
            &self.accounts,
            &self.console,
            &self.audit,
            &self.credits,
            &self.runs,
        ]
    }

    pub fn by_name(&self, name: &str) -> Option<&ProjectionHandle> {
        self.all().into_iter().find(|h| h.status().name == name)
    }

    pub fn statuses(&self) -> Vec<ProjectionStatus> {
        self.all().iter().map(|h| h.status()).collect()
    }

    /// Waits until every read model covers `position` (read-your-writes).
    pub async fn wait_all(&self, position: u64) -> ApiResult<()> {
        for h in self.all() {
            h.wait_for(position, WAIT_FOR_PROJECTIONS)
                .await
                .map_err(|e| {
                    tracing::warn!(%e, position, "read model lags");
                    ApiError::internal(format!(
                        "the change is durable at position {position}, but the read models \
                         have not reached it yet: {e}"
                    ))
                })?;
        }
        Ok(())
    }

    pub async fn stop(&self) {
        for h in self.all() {
            h.stop().await;
        }
    }
}

/// Who is calling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    Anonymous,
    User { user_id: Uuid, session_id: Uuid },
    Bot { bot_id: Uuid, org: Uuid },
    Operator,
}

/// The caller, and whether the token they sent was refused.
#[derive(Clone, Debug)]
pub struct Viewer {
    pub principal: Principal,
    pub bad_token: bool,
}

impl Viewer {
    pub fn anonymous() -> Viewer {
        Viewer {
            principal: Principal::Anonymous,
            bad_token: false,
        }
    }

    /// `user`, as the viewer of the payload of the sign-in that made their session.
    pub fn signed_in(user: Uuid) -> Viewer {
        Viewer {
            principal: Principal::User {
                user_id: user,
                session_id: Uuid::nil(),
            },
            bad_token: false,
        }
    }

    fn unauthenticated(&self) -> ApiError {
        if self.bad_token {
            ApiError::unauthenticated("the token is invalid or expired; sign in again")
        } else {
            ApiError::unauthenticated("sign in first: send Authorization: Bearer <token>")
        }
    }

    /// The signed-in user, or `UNAUTHENTICATED` / `FORBIDDEN` (bots and operators are not users).
    pub fn user(&self) -> ApiResult<Uuid> {
        match &self.principal {
            Principal::User { user_id, .. } => Ok(*user_id),
            Principal::Anonymous => Err(self.unauthenticated()),
            Principal::Bot { .. } => Err(ApiError::forbidden("a bot token cannot do this")),
            Principal::Operator => Err(ApiError::forbidden("the operator token cannot do this")),
        }
    }

    pub fn require_operator(&self) -> ApiResult<()> {
        match &self.principal {
            Principal::Operator => Ok(()),
            Principal::Anonymous => Err(self.unauthenticated()),
            _ => Err(ApiError::forbidden("only the operator token can do this")),
        }
    }
}

/// What the viewer may do in one organization.
#[derive(Clone, Debug)]
pub struct Access {
    pub org: Uuid,
    pub actor: domain::Actor,
    pub perms: PermissionSet,
    pub doc: Arc<Organization>,
}

impl Access {
    pub fn require(&self, p: Permission) -> ApiResult<()> {
        if self.perms.contains(&p) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "requires the permission {}",
                p.name()
            )))
        }
    }

    pub fn has(&self, p: Permission) -> bool {
        self.perms.contains(&p)
    }
}

/// The application.
/// How long [`Service::console_caught_up`] waits: a rebuild of 10M events at start
/// takes minutes.
const CATCH_UP_WAIT: Duration = Duration::from_secs(3600);

pub struct Service {
    pub store: Arc<dyn EventStore>,
    pub db: sled::Db,
    pub writer: Arc<Writer>,
    pub creds: Credentials,
    pub projections: Projections,
    pub config: Config,
    pub metrics: crate::metrics::Metrics,
    /// Organizations as the console read model holds them, with the console position
    /// they were read at: valid until the console moves.
    org_cache: Mutex<HashMap<Uuid, (u64, Arc<Organization>)>>,
    /// The accounts read model's document of each organization, likewise.
    members_cache: Mutex<HashMap<Uuid, (u64, Arc<projections::accounts::OrgMembers>)>>,
    /// Other read-model documents, by (kind, org), with the position they were read at.
    docs: Mutex<HashMap<(u8, Uuid), (u64, AnyDoc)>>,
    /// Whole query responses (see `server::graphql`).
    pub responses: crate::cache::ResponseCache,
    /// The last heartbeat of every bot not offline: (org, when).
    pub heartbeats: Mutex<HashMap<Uuid, (Uuid, OffsetDateTime)>>,
    /// Every bot's last heartbeat received by this server, offline ones too (what
    /// `Bot.lastSeenAt` adds to the last logged status change).
    last_beats: Mutex<HashMap<Uuid, OffsetDateTime>>,
    /// Heartbeats received, for the response cache's generation.
    heartbeat_count: std::sync::atomic::AtomicU64,
    /// For webhooks.
    pub http: reqwest::Client,
    /// Parsed query documents.
    pub parsed: Arc<crate::limits::ParsedQueries>,
    /// The one follower of the log that feeds every subscription.
    pub live: crate::live::LiveFeed,
    /// Positions whose follow-ups a mutation already carried out (the process manager
    /// skips them).
    pub followed: Mutex<HashSet<u64>>,
}

/// A cached read-model document of any type.
type AnyDoc = Arc<dyn std::any::Any + Send + Sync>;

/// How many members hold each role.
pub fn role_counts(org: &Organization) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for m in org.members.values() {
        for r in &m.roles {
            *counts.entry(r.clone()).or_insert(0) += 1;
        }
    }
    counts
}

fn store_actor(a: domain::Actor) -> store::Actor {
    match a {
        domain::Actor::User(u) => store::Actor::user(u),
        domain::Actor::Bot(b) => store::Actor::bot(b),
        domain::Actor::System => store::Actor::system(),
    }
}

impl Service {
    pub fn new(
        store: Arc<dyn EventStore>,
        db: sled::Db,
        config: Config,
    ) -> ApiResult<Arc<Service>> {
        let projections = Projections::spawn(store.clone(), &db)?;
        let http = crate::webhook::client(config.private_webhooks)?;
        Ok(Arc::new(Service {
            writer: Writer::new(store.clone()),
            live: crate::live::LiveFeed::new(store.clone()),
            creds: Credentials::open(&db)?,
            store,
            db,
            projections,
            config,
            metrics: crate::metrics::Metrics::default(),
            org_cache: Mutex::new(HashMap::new()),
            members_cache: Mutex::new(HashMap::new()),
            docs: Mutex::new(HashMap::new()),
            responses: crate::cache::ResponseCache::default(),
            parsed: Arc::default(),
            heartbeats: Mutex::new(HashMap::new()),
            last_beats: Mutex::new(HashMap::new()),
            heartbeat_count: std::sync::atomic::AtomicU64::new(0),
            http,
            followed: Mutex::new(HashSet::new()),
        }))
    }

    pub fn now() -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    /// The organization as the console read model holds it.
    pub fn org_doc(&self, org: Uuid) -> ApiResult<Option<Arc<Organization>>> {
        let console = &self.projections.console;
        let at = console.position();
        if let Ok(cache) = self.org_cache.lock()
            && let Some((p, doc)) = cache.get(&org)
            && *p == at
        {
            return Ok(Some(doc.clone()));
        }
        let Some(doc) = projections::console::query::organization(&console.tree(), org)? else {
            return Ok(None);
        };
        let doc = Arc::new(doc);
        if let Ok(mut cache) = self.org_cache.lock() {
            if cache.len() > 10_000 {
                cache.clear();
            }
            cache.insert(org, (at, doc.clone()));
        }
        Ok(Some(doc))
    }

    /// The organization's document in the accounts read model (roles, members with
    /// their join times).
    pub fn org_members(
        &self,
        org: Uuid,
    ) -> ApiResult<Option<Arc<projections::accounts::OrgMembers>>> {
        let accounts = &self.projections.accounts;
        let at = accounts.position();
        if let Ok(cache) = self.members_cache.lock()
            && let Some((p, doc)) = cache.get(&org)
            && *p == at
        {
            return Ok(Some(doc.clone()));
        }
        let Some(doc) = projections::accounts::query::organization(&accounts.tree(), org)? else {
            return Ok(None);
        };
        let doc = Arc::new(doc);
        if let Ok(mut cache) = self.members_cache.lock() {
            if cache.len() > 10_000 {
                cache.clear();
            }
            cache.insert(org, (at, doc.clone()));
        }
        Ok(Some(doc))
    }

    /// A document of a read model, loaded once per position of that read model.
    pub fn cached<T: Send + Sync + 'static>(
        &self,
        kind: u8,
        org: Uuid,
        position: u64,
        load: impl FnOnce() -> ApiResult<T>,
    ) -> ApiResult<Arc<T>> {
        if let Ok(docs) = self.docs.lock()
            && let Some((p, doc)) = docs.get(&(kind, org))
            && *p == position
            && let Ok(doc) = doc.clone().downcast::<T>()
        {
            return Ok(doc);
        }
        let doc = Arc::new(load()?);
        if let Ok(mut docs) = self.docs.lock() {
            if docs.len() > 10_000 {
                docs.clear();
            }
            docs.insert((kind, org), (position, doc.clone()));
        }
        Ok(doc)
    }

    /// The organization's bots (deleted ones left out), from the console read model.
    pub fn bots(&self, org: Uuid) -> ApiResult<Arc<Vec<(Uuid, domain::bot::Bot)>>> {
        let c = &self.projections.console;
        self.cached(1, org, c.position(), || {
            Ok(projections::console::query::bots(&c.tree(), org)?)
        })
    }

    /// The organization's billing, from the console read model.
    pub fn billing(&self, org: Uuid) -> ApiResult<Arc<domain::billing::Billing>> {
        let c = &self.projections.console;
        self.cached(2, org, c.position(), || {
            Ok(projections::console::query::billing(&c.tree(), org)?)
        })
    }

    /// The organization's credits, from the credits read model.
    pub fn credits(&self, org: Uuid) -> ApiResult<Arc<projections::credits::CreditsDoc>> {
        let c = &self.projections.credits;
        self.cached(3, org, c.position(), || {
            Ok(projections::credits::query::doc(&c.tree(), org)?)
        })
    }

    /// How many members hold each role of `org` (as the console holds it now).
    pub fn role_counts(&self, org: &Organization) -> Arc<HashMap<String, usize>> {
        let id = org.id.unwrap_or_default();
        let c = &self.projections.console;
        self.cached(4, id, c.position(), || Ok(role_counts(org)))
            .unwrap_or_else(|_| Arc::new(role_counts(org)))
    }

    /// Records a bot's heartbeat (an offline bot has none to watch).
    pub fn heartbeat(&self, bot: Uuid, org: Uuid, status: domain::events::BotStatus) {
        let now = Self::now();
        if let Ok(mut h) = self.heartbeats.lock() {
            if status == domain::events::BotStatus::Offline {
                h.remove(&bot);
            } else {
                h.insert(bot, (org, now));
            }
        }
        if let Ok(mut b) = self.last_beats.lock() {
            b.insert(bot, now);
        }
        self.heartbeat_count
            .fetch_add(1, std::sync::atomic::Ordering::Release);
    }

    /// Waits until the console read model covers the log as it is now (at a start, it
    /// may still be catching up or rebuilding): what reads the console to act on it,
    /// rather than to answer a request, starts after this.
    pub async fn console_caught_up(&self) -> ApiResult<()> {
        let head = self.store.head().await?;
        self.projections
            .console
            .wait_for(head, CATCH_UP_WAIT)
            .await
            .map_err(|e| ApiError::internal(e.to_string()))
    }

    /// When the bot's last heartbeat reached this server, if one did since it started.
    pub fn last_heartbeat(&self, bot: Uuid) -> Option<OffsetDateTime> {
        self.last_beats.lock().ok()?.get(&bot).copied()
    }

    /// The positions of every read model and the heartbeats received: a response
    /// computed at these stays right until one of them moves.
    pub fn read_generation(&self) -> crate::cache::Generation {
        let p = &self.projections;
        [
            p.accounts.position(),
            p.console.position(),
            p.audit.position(),
            p.credits.position(),
            p.runs.position(),
            self.heartbeat_count
                .load(std::sync::atomic::Ordering::Acquire),
        ]
    }

    /// What `viewer` may do in `org`; `NOT_FOUND` when the org does not exist or the
    /// viewer is not in it (its existence is not disclosed to outsiders).
    pub fn access(&self, viewer: &Viewer, org: Uuid) -> ApiResult<Access> {
        let not_found = || ApiError::not_found(format!("organization {org} not found"));
        match &viewer.principal {
            Principal::User { user_id, .. } => {
                let doc = self.org_doc(org)?.ok_or_else(not_found)?;
                if !doc.is_member(*user_id) {
                    return Err(not_found());
                }
                Ok(Access {
                    org,
                    actor: domain::Actor::User(*user_id),
                    perms: doc.permissions_of(*user_id),
                    doc,
                })
            }
            Principal::Bot { bot_id, org: own } => {
                if *own != org {
                    return Err(not_found());
                }
                let doc = self.org_doc(org)?.ok_or_else(not_found)?;
                Ok(Access {
                    org,
                    actor: domain::Actor::Bot(*bot_id),
                    perms: PermissionSet::new(),
                    doc,
                })
            }
            Principal::Anonymous => Err(viewer.unauthenticated()),
            Principal::Operator => Err(ApiError::forbidden(
                "the operator token is not a member of any organization",
            )),
        }
    }

    /// The organization a bot, trigger, app or invitation belongs to (`NOT_FOUND` if none).
    pub fn owner_of(&self, what: &str, id: Uuid) -> ApiResult<Uuid> {
        projections::console::query::owner_of(&self.projections.console.tree(), id)?
            .ok_or_else(|| ApiError::not_found(format!("{what} {id} not found")))
    }

    /// Decides `command` on `stream` as `actor` and appends what it decides (durable on return).
    pub async fn decide<A>(
        &self,
        stream: &str,
        org: Option<Uuid>,
        actor: domain::Actor,
        perms: PermissionSet,
        command: A::Command,
    ) -> ApiResult<Outcome>
    where
        A: Streamed,
        A::Command: Clone + Send + Sync + 'static,
    {
        let now = Self::now();
        let ctx = Context::new(now, actor, perms, rand::random());
        let meta = Metadata::new(store_actor(actor), org, now);
        let out = self.writer.execute::<A>(stream, command, ctx, meta).await;
        self.metrics
            .record_append(out.as_ref().map(|o| o.events.len()).unwrap_or(0));
        out
    }

    /// A whole mutation's write: decide, carry out its follow-ups, wait until the read
    /// models cover all of it. Returns the outcome with the position to report.
    pub async fn mutate<A>(
        &self,
        stream: &str,
        access: &Access,
        command: A::Command,
    ) -> ApiResult<Outcome>
    where
        A: Streamed,
        A::Command: Clone + Send + Sync + 'static,
    {
        let out = self
            .decide::<A>(
                stream,
                Some(access.org),
                access.actor,
                access.perms.clone(),
                command,
            )
            .await?;
        self.finish(out).await
    }

    /// Follow-ups and read-your-writes for a decided outcome.
    pub async fn finish(&self, mut out: Outcome) -> ApiResult<Outcome> {
        let mut position = out.position;
        for f in std::mem::take(&mut out.follow_ups) {
            let p = self.follow_up(&f, out.position).await?;
            position = position.max(p);
        }
        if !out.events.is_empty()
            && let Ok(mut done) = self.followed.lock()
        {
            done.insert(out.position);
        }
        self.projections.wait_all(position).await?;
        out.position = position;
        Ok(out)
    }

    /// Carries out one follow-up as the system; idempotent (a repeat decides nothing).
    pub async fn follow_up(&self, f: &FollowUp, cause_position: u64) -> ApiResult<u64> {
        let all: PermissionSet = Permission::ALL.iter().copied().collect();
        let sys = domain::Actor::System;
        let stream = f.stream();
        match f {
            FollowUp::StartSubscription { org } => {
                let Some(cmd) = f.billing_command() else {
                    return Ok(0);
                };
                match self
                    .decide::<domain::billing::Billing>(&stream, Some(*org), sys, all, cmd)
                    .await
                {
                    Ok(o) => Ok(o.position),
                    // Already started: done before — perhaps this instant, by the process
                    // manager, whose append the read models may not cover yet: wait for
                    // everything durable now.
                    Err(e) if e.code == crate::error::ErrorCode::Conflict => {
                        Ok(self.store.head().await?)
                    }
                    Err(e) => Err(e),
                }
            }
            FollowUp::ConsumeRunCredits { org, .. } | FollowUp::GrantCredits { org, .. } => {
                let Some(cmd) = f.credits_command() else {
                    return Ok(0);
                };
                let o = self
                    .decide::<domain::ledger::Ledger>(&stream, Some(*org), sys, all, cmd)
                    .await?;
                Ok(o.position)
            }
            FollowUp::RecordTriggerFailure { trigger_id, run_id } => {
                let org = self.owner_of("trigger", *trigger_id)?;
                // Count the trigger's failures in a row from the run history.
                self.projections
                    .runs
                    .wait_for(cause_position, WAIT_FOR_PROJECTIONS)
                    .await?;
                let page = projections::runs::page(
                    &self.projections.runs.tree(),
                    org,
                    &projections::runs::RunFilter {
                        trigger: Some(*trigger_id),
                        ..Default::default()
                    },
                    projections::runs::PAGE_MAX,
                    None,
                    None,
                )?;
                let failures = page
                    .runs
                    .iter()
                    .take_while(|(_, r)| r.status == projections::runs::Status::Failed)
                    .count() as u32;
                let cmd = domain::trigger::TriggerCommand::RecordRunFailure {
                    run_id: *run_id,
                    consecutive_failures: failures,
                    threshold: domain::trigger::AUTO_DISABLE_FAILURES_DEFAULT,
                };
                let o = self
                    .decide::<domain::trigger::Trigger>(&stream, Some(org), sys, all, cmd)
                    .await?;
                Ok(o.position)
            }
        }
    }

    /// Streams a command of a user account writes.
    pub fn user_stream(user: Uuid) -> String {
        streams::user(user)
    }
}
