//! The accounts read model: users by id and by email, and who belongs to which
//! organization with which roles (the "switch account" list and the basis of every
//! permission check the API makes).
//!
//! # Layout (tree `accounts`)
//! - `u/{user}` → [`UserView`]
//! - `e/{email}` → user id
//! - `o/{org}` → [`OrgMembers`]: name, creation time, roles and members
//! - `m/{user}/{org}` → (empty): the organizations a user belongs to
//!
//! Documents touched by a batch are kept in memory and written once, at commit.

use crate::time_travel::decode;
use crate::{Projection, ProjectionError, Tx};
use domain::events::{Event, MemberKind};
use domain::permissions::{self, ADMIN_ROLE, MEMBER_ROLE, OWNER_ROLE, Permission, PermissionSet};
use serde::{Deserialize, Serialize};
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use store::RecordedEvent;
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserView {
    pub id: Uuid,
    pub email: String,
    pub alias: String,
    #[serde(with = "time::serde::rfc3339")]
    pub registered_at: OffsetDateTime,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberView {
    pub kind: MemberKind,
    pub roles: BTreeSet<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub joined_at: OffsetDateTime,
    pub developer: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleView {
    pub name: String,
    pub built_in: bool,
    pub permissions: BTreeSet<Permission>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgMembers {
    pub name: String,
    #[serde(with = "time::serde::rfc3339::option")]
    pub created_at: Option<OffsetDateTime>,
    pub roles: BTreeMap<String, RoleView>,
    pub members: BTreeMap<Uuid, MemberView>,
}

impl OrgMembers {
    /// What `user` holds here; empty for non-members (tenant isolation starts here).
    pub fn permissions_of(&self, user: Uuid) -> PermissionSet {
        self.members
            .get(&user)
            .map(|m| {
                m.roles
                    .iter()
                    .filter_map(|r| self.roles.get(r))
                    .flat_map(|r| r.permissions.iter().copied())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn apply(&mut self, e: &Event, at: OffsetDateTime) -> Vec<(Uuid, bool)> {
        let mut membership_changes = Vec::new();
        match e {
            Event::OrganizationCreated(c) => {
                self.name = c.name.clone();
                self.created_at = Some(at);
                for id in [OWNER_ROLE, ADMIN_ROLE, MEMBER_ROLE] {
                    let view = RoleView {
                        name: permissions::built_in_name(id).unwrap_or(id).into(),
                        built_in: true,
                        permissions: permissions::built_in_permissions(id).unwrap_or_default(),
                    };
                    self.roles.insert(id.into(), view);
                }
                self.members.insert(
                    c.owner_id,
                    MemberView {
                        kind: MemberKind::Member,
                        roles: [OWNER_ROLE.to_owned()].into(),
                        joined_at: at,
                        developer: false,
                    },
                );
                membership_changes.push((c.owner_id, true));
            }
            Event::MemberJoined(j) => {
                self.members.insert(
                    j.user_id,
                    MemberView {
                        kind: j.kind,
                        roles: j.role_ids.iter().cloned().collect(),
                        joined_at: at,
                        developer: false,
                    },
                );
                membership_changes.push((j.user_id, true));
            }
            Event::MemberRemoved(domain::events::MemberRemoved { user_id })
            | Event::MemberLeft(domain::events::MemberLeft { user_id }) => {
                self.members.remove(user_id);
                membership_changes.push((*user_id, false));
            }
            Event::OwnershipTransferred(t) => {
                if let Some(m) = self.members.get_mut(&t.to_user_id) {
                    m.roles.insert(OWNER_ROLE.into());
                }
                if let Some(m) = self.members.get_mut(&t.from_user_id) {
                    m.roles.remove(OWNER_ROLE);
                    m.roles.insert(ADMIN_ROLE.into());
                }
            }
            Event::RoleCreated(domain::events::RoleCreated {
                role_id,
                name,
                permissions,
            })
            | Event::RoleUpdated(domain::events::RoleUpdated {
                role_id,
                name,
                permissions,
            }) => {
                let view = RoleView {
                    name: name.clone(),
                    built_in: false,
                    permissions: permissions.iter().copied().collect(),
                };
                self.roles.insert(role_id.clone(), view);
            }
            Event::RoleDeleted(r) => {
                self.roles.remove(&r.role_id);
                for m in self.members.values_mut() {
                    m.roles.remove(&r.role_id);
                }
            }
            Event::RoleGranted(g) => {
                if let Some(m) = self.members.get_mut(&g.user_id) {
                    m.roles.insert(g.role_id.clone());
                }
            }
            Event::RoleRevoked(g) => {
                if let Some(m) = self.members.get_mut(&g.user_id) {
                    m.roles.remove(&g.role_id);
                }
            }
            Event::DeveloperCertified(d) => {
                if let Some(m) = self.members.get_mut(&d.user_id) {
                    m.developer = true;
                }
            }
            _ => {}
        }
        membership_changes
    }
}

fn user_key(id: &Uuid) -> Vec<u8> {
    format!("u/{id}").into_bytes()
}
fn email_key(email: &str) -> Vec<u8> {
    format!("e/{email}").into_bytes()
}
fn org_key(org: &Uuid) -> Vec<u8> {
    format!("o/{org}").into_bytes()
}
fn membership_key(user: &Uuid, org: &Uuid) -> Vec<u8> {
    format!("m/{user}/{org}").into_bytes()
}

#[derive(Default)]
pub struct Accounts {
    orgs: HashMap<Uuid, OrgMembers>,
}

impl Projection for Accounts {
    const NAME: &'static str = "accounts";
    const VERSION: u32 = 1;

    fn apply(&mut self, e: &RecordedEvent, tx: &mut Tx<'_>) -> Result<(), ProjectionError> {
        if e.stream.starts_with("user-") {
            if let Some(Event::UserRegistered(u)) = decode(e)? {
                let view = UserView {
                    id: u.user_id,
                    email: u.email.clone(),
                    alias: u.alias,
                    registered_at: e.meta.occurred_at,
                };
                tx.put_json(user_key(&u.user_id), &view)?;
                tx.insert(email_key(&u.email), u.user_id.to_string());
            }
            return Ok(());
        }
        let (Some(org), true) = (e.org(), e.stream.starts_with("organization-")) else {
            return Ok(());
        };
        let Some(event) = decode(e)? else {
            return Ok(());
        };
        let doc = match self.orgs.entry(org) {
            Entry::Occupied(o) => o.into_mut(),
            Entry::Vacant(v) => v.insert(tx.get_json(&org_key(&org))?.unwrap_or_default()),
        };
        for (user, member) in doc.apply(&event, e.meta.occurred_at) {
            match member {
                true => tx.insert(membership_key(&user, &org), Vec::new()),
                false => tx.remove(membership_key(&user, &org)),
            }
        }
        Ok(())
    }

    fn before_commit(&mut self, tx: &mut Tx<'_>) -> Result<(), ProjectionError> {
        for (org, doc) in self.orgs.drain() {
            tx.put_json(org_key(&org), &doc)?;
        }
        Ok(())
    }
}

/// The read side.
pub mod query {
    use super::*;

    fn json<T: serde::de::DeserializeOwned>(
        v: Option<sled::IVec>,
    ) -> Result<Option<T>, ProjectionError> {
        v.map(|v| serde_json::from_slice(&v).map_err(|e| ProjectionError::Storage(e.to_string())))
            .transpose()
    }

    pub fn user(tree: &sled::Tree, id: Uuid) -> Result<Option<UserView>, ProjectionError> {
        json(tree.get(user_key(&id))?)
    }

    pub fn user_by_email(
        tree: &sled::Tree,
        email: &str,
    ) -> Result<Option<UserView>, ProjectionError> {
        let Some(id) = tree.get(email_key(&email.trim().to_lowercase()))? else {
            return Ok(None);
        };
        let id: Uuid = String::from_utf8_lossy(&id)
            .parse()
            .map_err(|_| ProjectionError::Storage("bad email index".into()))?;
        user(tree, id)
    }

    pub fn organization(
        tree: &sled::Tree,
        org: Uuid,
    ) -> Result<Option<OrgMembers>, ProjectionError> {
        json(tree.get(org_key(&org))?)
    }

    /// The organizations `user` belongs to, with their membership (the "switch account" list).
    pub fn memberships(
        tree: &sled::Tree,
        user: Uuid,
    ) -> Result<Vec<(Uuid, String, MemberView)>, ProjectionError> {
        let prefix = format!("m/{user}/");
        let mut out = Vec::new();
        for kv in tree.scan_prefix(prefix.as_bytes()) {
            let (k, _) = kv?;
            let Ok(org) = String::from_utf8_lossy(&k[prefix.len()..]).parse::<Uuid>() else {
                continue;
            };
            if let Some(doc) = organization(tree, org)?
                && let Some(m) = doc.members.get(&user)
            {
                out.push((org, doc.name.clone(), m.clone()));
            }
        }
        Ok(out)
    }
}
