//! The console read model: each organization's aggregates — the organization itself
//! (profile, policy, members, invitations, roles), billing, and every bot, trigger and
//! app — stored as the domain folds them, so the console shows exactly what the rules
//! decided.
//!
//! # Layout (tree `console`)
//! - `o/{org}` → `Organization` · `g/{org}` → `Billing`
//! - `b/{org}/{bot}` → `Bot` · `t/{org}/{trigger}` → `Trigger` · `a/{org}/{app}` → `App`
//! - `i/{org}/{invitation}` → [`InvitationMeta`]
//! - `m/{id}` → [`EntityMeta`]: the envelope times the aggregates do not keep (a bot's
//!   registration and last status report, a trigger's last fire, an app's versions)
//! - `x/{id}` → org id: which organization a bot, trigger, app or invitation belongs to
//!   (the API resolves `botId`, `triggerId`, `appId`, `invitationId` inputs with it)
//!
//! Runs are not here: they are high volume and belong to the run history.
//! Documents touched by a batch are kept in memory and written once, at commit.

use crate::time_travel::decode;
use crate::{Projection, ProjectionError, Tx};
use domain::aggregate::Aggregate;
use domain::app::App;
use domain::billing::Billing;
use domain::bot::Bot;
use domain::events::BotStatus;
use domain::organization::Organization;
use domain::trigger::Trigger;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use store::RecordedEvent;
use uuid::Uuid;

/// Who sent an invitation and when (from its event's envelope).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct InvitationMeta {
    pub invited_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: time::OffsetDateTime,
}

/// One app version as the Developer Center lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct VersionMeta {
    pub version: String,
    pub notes: Option<String>,
    pub visibility: domain::events::Visibility,
    #[serde(with = "time::serde::rfc3339")]
    pub published_at: time::OffsetDateTime,
}

/// When things happened to a bot, trigger or app (from event envelopes).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct EntityMeta {
    #[serde(with = "time::serde::rfc3339::option")]
    pub created_at: Option<time::OffsetDateTime>,
    /// Bots: the last status change the bot (or a user for it) reported; the API also
    /// counts heartbeats since, which are not events.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_seen_at: Option<time::OffsetDateTime>,
    /// Triggers: the last fire.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_fired_at: Option<time::OffsetDateTime>,
    /// Apps: every version published, in order.
    pub versions: Vec<VersionMeta>,
}

/// The documents of one batch, by key, with the aggregate they hold.
#[derive(Default)]
pub struct Console {
    orgs: HashMap<Vec<u8>, Organization>,
    billing: HashMap<Vec<u8>, Billing>,
    bots: HashMap<Vec<u8>, Bot>,
    triggers: HashMap<Vec<u8>, Trigger>,
    apps: HashMap<Vec<u8>, App>,
}

fn key(prefix: char, org: &Uuid, id: Option<&str>) -> Vec<u8> {
    match id {
        Some(id) => format!("{prefix}/{org}/{id}").into_bytes(),
        None => format!("{prefix}/{org}").into_bytes(),
    }
}

fn meta_key(id: &str) -> Vec<u8> {
    format!("m/{id}").into_bytes()
}

fn owner_key(id: &str) -> Vec<u8> {
    format!("x/{id}").into_bytes()
}

/// Folds `event` into the cached document under `key`, loading it first if needed.
fn fold<A: Aggregate + DeserializeOwned>(
    cache: &mut HashMap<Vec<u8>, A>,
    key: Vec<u8>,
    tx: &Tx<'_>,
    event: &domain::Event,
) -> Result<(), ProjectionError> {
    let doc = match cache.entry(key) {
        Entry::Occupied(o) => o.into_mut(),
        Entry::Vacant(v) => {
            let loaded = tx.get_json(v.key())?.unwrap_or_default();
            v.insert(loaded)
        }
    };
    doc.apply(event);
    Ok(())
}

fn write<A: Serialize>(
    cache: &mut HashMap<Vec<u8>, A>,
    tx: &mut Tx<'_>,
) -> Result<(), ProjectionError> {
    for (k, doc) in cache.drain() {
        tx.put_json(k, &doc)?;
    }
    Ok(())
}

impl Projection for Console {
    const NAME: &'static str = "console";
    /// 3: a bot's `last_seen_at` is no longer moved by the system marking it offline.
    const VERSION: u32 = 3;

    fn apply(&mut self, e: &RecordedEvent, tx: &mut Tx<'_>) -> Result<(), ProjectionError> {
        let Some(org) = e.org() else { return Ok(()) };
        let Some((category, id)) = e.stream.split_once('-') else {
            return Ok(());
        };
        if !matches!(
            category,
            "organization" | "billing" | "bot" | "trigger" | "app"
        ) {
            return Ok(());
        }
        let Some(event) = decode(e)? else {
            return Ok(());
        };
        if let domain::Event::MemberInvited(i) = &event {
            // Who invited and when live in the envelope, not in the aggregate.
            let meta = InvitationMeta {
                invited_by: e.meta.actor.id.clone(),
                created_at: e.meta.occurred_at,
            };
            tx.put_json(key('i', &org, Some(&i.invitation_id.to_string())), &meta)?;
            tx.insert(owner_key(&i.invitation_id.to_string()), org.to_string());
        }
        if category != "organization" && category != "billing" {
            if e.version == 0 {
                tx.insert(owner_key(id), org.to_string());
            }
            let at = e.meta.occurred_at;
            let mk = meta_key(id);
            let touched = match &event {
                domain::Event::BotRegistered(_)
                | domain::Event::TriggerCreated(_)
                | domain::Event::AppCreated(_) => Some(None),
                // The system marking a silent bot offline has not seen it.
                domain::Event::BotStatusChanged(_)
                    if e.meta.actor.kind != store::ActorKind::System =>
                {
                    Some(Some(0))
                }
                domain::Event::TriggerFired(_) => Some(Some(1)),
                domain::Event::AppVersionPublished(_) => Some(Some(2)),
                _ => None,
            };
            if let Some(what) = touched {
                let mut m: EntityMeta = tx.get_json(&mk)?.unwrap_or_default();
                match (what, &event) {
                    (None, _) => m.created_at = Some(at),
                    (Some(0), _) => m.last_seen_at = Some(at),
                    (Some(1), _) => m.last_fired_at = Some(at),
                    (_, domain::Event::AppVersionPublished(v)) => m.versions.push(VersionMeta {
                        version: v.version.clone(),
                        notes: v.notes.clone(),
                        visibility: v.visibility,
                        published_at: at,
                    }),
                    _ => {}
                }
                tx.put_json(mk, &m)?;
            }
        }
        match category {
            "organization" => fold(&mut self.orgs, key('o', &org, None), tx, &event),
            "billing" => fold(&mut self.billing, key('g', &org, None), tx, &event),
            "bot" => fold(&mut self.bots, key('b', &org, Some(id)), tx, &event),
            "trigger" => fold(&mut self.triggers, key('t', &org, Some(id)), tx, &event),
            _ => fold(&mut self.apps, key('a', &org, Some(id)), tx, &event),
        }
    }

    fn before_commit(&mut self, tx: &mut Tx<'_>) -> Result<(), ProjectionError> {
        write(&mut self.orgs, tx)?;
        write(&mut self.billing, tx)?;
        write(&mut self.bots, tx)?;
        write(&mut self.triggers, tx)?;
        write(&mut self.apps, tx)
    }
}

/// The read side.
pub mod query {
    use super::*;

    fn get<T: DeserializeOwned>(tree: &sled::Tree, k: &[u8]) -> Result<Option<T>, ProjectionError> {
        tree.get(k)?
            .map(|v| {
                serde_json::from_slice(&v).map_err(|e| ProjectionError::Storage(e.to_string()))
            })
            .transpose()
    }

    fn list<T: DeserializeOwned>(
        tree: &sled::Tree,
        prefix: char,
        org: Uuid,
    ) -> Result<Vec<(Uuid, T)>, ProjectionError> {
        let p = format!("{prefix}/{org}/");
        let mut out = Vec::new();
        for kv in tree.scan_prefix(p.as_bytes()) {
            let (k, v) = kv?;
            let Ok(id) = String::from_utf8_lossy(&k[p.len()..]).parse::<Uuid>() else {
                continue;
            };
            out.push((
                id,
                serde_json::from_slice(&v).map_err(|e| ProjectionError::Storage(e.to_string()))?,
            ));
        }
        Ok(out)
    }

    /// The organization a bot, trigger, app or invitation belongs to.
    pub fn owner_of(tree: &sled::Tree, id: Uuid) -> Result<Option<Uuid>, ProjectionError> {
        Ok(tree
            .get(owner_key(&id.to_string()))?
            .and_then(|v| String::from_utf8_lossy(&v).parse().ok()))
    }

    /// Envelope times of a bot, trigger or app.
    pub fn meta(tree: &sled::Tree, id: Uuid) -> Result<EntityMeta, ProjectionError> {
        Ok(get(tree, &meta_key(&id.to_string()))?.unwrap_or_default())
    }

    pub fn organization(
        tree: &sled::Tree,
        org: Uuid,
    ) -> Result<Option<Organization>, ProjectionError> {
        get(tree, &key('o', &org, None))
    }

    pub fn billing(tree: &sled::Tree, org: Uuid) -> Result<Billing, ProjectionError> {
        Ok(get(tree, &key('g', &org, None))?.unwrap_or_default())
    }

    /// The organization's bots (deleted ones left out), in id order.
    pub fn bots(tree: &sled::Tree, org: Uuid) -> Result<Vec<(Uuid, Bot)>, ProjectionError> {
        Ok(list::<Bot>(tree, 'b', org)?
            .into_iter()
            .filter(|(_, b)| !b.deleted)
            .collect())
    }

    pub fn bot(tree: &sled::Tree, org: Uuid, id: Uuid) -> Result<Option<Bot>, ProjectionError> {
        Ok(get::<Bot>(tree, &key('b', &org, Some(&id.to_string())))?.filter(|b| !b.deleted))
    }

    /// A bot, deleted or not (runs and the audit trail still name deleted bots).
    pub fn bot_any(tree: &sled::Tree, org: Uuid, id: Uuid) -> Result<Option<Bot>, ProjectionError> {
        get(tree, &key('b', &org, Some(&id.to_string())))
    }

    /// A trigger, deleted or not.
    pub fn trigger_any(
        tree: &sled::Tree,
        org: Uuid,
        id: Uuid,
    ) -> Result<Option<Trigger>, ProjectionError> {
        get(tree, &key('t', &org, Some(&id.to_string())))
    }

    /// An app.
    pub fn app(tree: &sled::Tree, org: Uuid, id: Uuid) -> Result<Option<App>, ProjectionError> {
        get(tree, &key('a', &org, Some(&id.to_string())))
    }

    /// Who sent an invitation and when.
    pub fn invitation_meta(
        tree: &sled::Tree,
        org: Uuid,
        id: Uuid,
    ) -> Result<Option<InvitationMeta>, ProjectionError> {
        get(tree, &key('i', &org, Some(&id.to_string())))
    }

    pub fn triggers(tree: &sled::Tree, org: Uuid) -> Result<Vec<(Uuid, Trigger)>, ProjectionError> {
        Ok(list::<Trigger>(tree, 't', org)?
            .into_iter()
            .filter(|(_, t)| !t.deleted)
            .collect())
    }

    pub fn apps(tree: &sled::Tree, org: Uuid) -> Result<Vec<(Uuid, App)>, ProjectionError> {
        list(tree, 'a', org)
    }

    /// Overview counts: seats used and total, bots total, enabled and online.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Overview {
        pub seats_used: u32,
        pub seats_total: u32,
        pub bots_total: u32,
        pub bots_enabled: u32,
        pub bots_online: u32,
    }

    pub fn overview(tree: &sled::Tree, org: Uuid) -> Result<Overview, ProjectionError> {
        let seats_used = organization(tree, org)?.map_or(0, |o| o.seats_used());
        let bots = bots(tree, org)?;
        let count = |f: &dyn Fn(&Bot) -> bool| bots.iter().filter(|(_, b)| f(b)).count() as u32;
        Ok(Overview {
            seats_used,
            seats_total: billing(tree, org)?.seats(),
            bots_total: bots.len() as u32,
            bots_enabled: count(&|b| b.enabled),
            bots_online: count(&|b| b.status == BotStatus::Online),
        })
    }

    /// An invitation's status as the console shows it: EXPIRED is derived from time.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum InvitationStatus {
        Pending,
        Accepted,
        Revoked,
        Expired,
    }

    pub fn invitation_status(
        i: &domain::organization::Invitation,
        now: time::OffsetDateTime,
    ) -> InvitationStatus {
        use domain::organization::InvitationState as S;
        match i.state {
            S::Accepted => InvitationStatus::Accepted,
            S::Revoked => InvitationStatus::Revoked,
            S::Pending if now >= i.expires_at => InvitationStatus::Expired,
            S::Pending => InvitationStatus::Pending,
        }
    }

    /// An invitation with its derived status and who sent it when.
    pub type InvitationRow = (
        Uuid,
        domain::organization::Invitation,
        InvitationStatus,
        Option<InvitationMeta>,
    );

    /// The organization's invitations with their status and metadata, optionally of
    /// one status, in id order.
    pub fn invitations(
        tree: &sled::Tree,
        org: Uuid,
        status: Option<InvitationStatus>,
        now: time::OffsetDateTime,
    ) -> Result<Vec<InvitationRow>, ProjectionError> {
        let Some(o) = organization(tree, org)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for (id, inv) in o.invitations {
            let st = invitation_status(&inv, now);
            if status.is_none_or(|s| s == st) {
                let meta = get(tree, &key('i', &org, Some(&id.to_string())))?;
                out.push((id, inv, st, meta));
            }
        }
        Ok(out)
    }

    /// A member as the console lists it.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct MemberRow {
        pub user_id: Uuid,
        pub alias: String,
        pub email: String,
        pub member: domain::organization::Member,
    }

    /// A page of members in user-id order after the cursor `after`, of one kind, whose
    /// alias or email contains `search` (case-insensitive: a surname, a domain); also
    /// the total that
    /// matches. Aliases and emails come from the accounts read model.
    pub fn members(
        console: &sled::Tree,
        accounts: &sled::Tree,
        org: Uuid,
        kind: Option<domain::events::MemberKind>,
        search: Option<&str>,
        first: usize,
        after: Option<Uuid>,
    ) -> Result<(Vec<MemberRow>, bool, usize), ProjectionError> {
        let Some(o) = organization(console, org)? else {
            return Ok((Vec::new(), false, 0));
        };
        members_of(&o, accounts, kind, search, first, after)
    }

    /// [`members`] over an organization already loaded (live, or as it was).
    pub fn members_of(
        o: &Organization,
        accounts: &sled::Tree,
        kind: Option<domain::events::MemberKind>,
        search: Option<&str>,
        first: usize,
        after: Option<Uuid>,
    ) -> Result<(Vec<MemberRow>, bool, usize), ProjectionError> {
        let needle = search
            .map(|s| s.trim().to_lowercase())
            .filter(|s| !s.is_empty());
        let row =
            |id: Uuid, m: &domain::organization::Member| -> Result<MemberRow, ProjectionError> {
                let user = crate::accounts::query::user(accounts, id)?;
                let alias = user.as_ref().map(|u| u.alias.clone()).unwrap_or_default();
                let email = user
                    .map(|u| u.email)
                    .or_else(|| m.email.clone())
                    .unwrap_or_default();
                Ok(MemberRow {
                    user_id: id,
                    alias,
                    email,
                    member: m.clone(),
                })
            };
        let of_kind = o
            .members
            .iter()
            .filter(|(_, m)| kind.is_none_or(|k| k == m.kind));
        let Some(n) = needle else {
            // No search: count, then read the accounts of the page only (O(page)).
            let total = of_kind.clone().count();
            let mut page = Vec::with_capacity(first);
            let mut has_next = false;
            let rest = of_kind.filter(|(id, _)| after.is_none_or(|a| **id > a));
            for (&id, m) in rest {
                if page.len() == first {
                    has_next = true;
                    break;
                }
                page.push(row(id, m)?);
            }
            return Ok((page, has_next, total));
        };
        let mut matching = Vec::new();
        for (&id, m) in of_kind {
            let r = row(id, m)?;
            if r.alias.to_lowercase().contains(n.as_str())
                || r.email.to_lowercase().contains(n.as_str())
            {
                matching.push(r);
            }
        }
        let total = matching.len();
        let start = after.map_or(0, |a| matching.partition_point(|r| r.user_id <= a));
        let page: Vec<MemberRow> = matching.into_iter().skip(start).take(first + 1).collect();
        let has_next = page.len() > first;
        Ok((page.into_iter().take(first).collect(), has_next, total))
    }

    /// Roles with how many members hold each.
    pub fn roles(
        tree: &sled::Tree,
        org: Uuid,
    ) -> Result<Vec<(String, domain::organization::Role, usize)>, ProjectionError> {
        let Some(o) = organization(tree, org)? else {
            return Ok(Vec::new());
        };
        Ok(o.roles
            .iter()
            .map(|(id, r)| (id.clone(), r.clone(), o.member_count_of(id)))
            .collect())
    }
}
