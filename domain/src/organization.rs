//! The organization — stream `organization-<org_id>`.
//!
//! Profile, security policy, members and external collaborators, invitations, built-in
//! and custom roles, role grants and developer certification. Its state answers
//! [`Organization::permissions_of`], which every other aggregate's caller uses to
//! build the [`Context`].
//!
//! Rules: an organization always has at least one owner (the last owner cannot leave,
//! be removed or lose the owner role); every member keeps at least one role; built-in
//! roles cannot be changed or deleted; unknown permissions are refused; one pending
//! invitation per email; members are not invited again; only a pending, unexpired
//! invitation is accepted, by the user whose email it names, while a seat is free.

use crate::aggregate::Aggregate;
use crate::context::{Actor, Context};
use crate::error::DomainError;
use crate::events::*;
use crate::permissions::{
    self, ADMIN_ROLE, MEMBER_ROLE, OWNER_ROLE, Permission, PermissionSet, parse_permissions,
};
use crate::validate;
use std::collections::{BTreeMap, BTreeSet};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

/// How long an invitation stays acceptable.
pub const INVITATION_TTL: Duration = Duration::days(7);
/// Custom roles per organization: a console lists them on one screen.
pub const CUSTOM_ROLES_MAX: usize = 100;
/// Roles named in one invitation or held by one member.
pub const ROLES_PER_MEMBER_MAX: usize = 20;
/// Session lifetime bounds of the security policy: 5 minutes to 30 days.
pub const SESSION_TTL_MINUTES_RANGE: std::ops::RangeInclusive<u32> = 5..=43_200;
/// Minimum password length bounds of the security policy.
pub const MIN_PASSWORD_LENGTH_RANGE: std::ops::RangeInclusive<u32> = 8..=128;
/// Alias and email limits of the creating admin.
const ALIAS_CHARS_MAX: usize = 64;

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Member {
    pub kind: MemberKind,
    pub roles: BTreeSet<String>,
    pub email: Option<String>,
    pub developer: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum InvitationState {
    Pending,
    Accepted,
    Revoked,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Invitation {
    pub email: String,
    pub kind: MemberKind,
    pub role_ids: Vec<String>,
    pub expires_at: OffsetDateTime,
    pub state: InvitationState,
}

impl Invitation {
    pub fn is_acceptable(&self, now: OffsetDateTime) -> bool {
        self.state == InvitationState::Pending && now < self.expires_at
    }
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Role {
    pub name: String,
    pub permissions: PermissionSet,
    pub built_in: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SecurityPolicy {
    pub require_mfa: bool,
    pub session_ttl_minutes: u32,
    pub min_password_length: u32,
}

impl Default for SecurityPolicy {
    fn default() -> SecurityPolicy {
        SecurityPolicy {
            require_mfa: false,
            session_ttl_minutes: 12 * 60,
            min_password_length: 8,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Profile {
    pub display_name: String,
    pub tagline: Option<String>,
    pub description: Option<String>,
    pub website: Option<String>,
    pub logo_url: Option<String>,
    pub contact_email: Option<String>,
    pub industry: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum OrganizationCommand {
    Create {
        org_id: Uuid,
        name: String,
        admin_alias: String,
        admin_email: String,
    },
    UpdateProfile(ProfileChanges),
    TransferOwnership {
        to_user_id: Uuid,
    },
    ChangeSecurityPolicy {
        require_mfa: Option<bool>,
        session_ttl_minutes: Option<u32>,
        min_password_length: Option<u32>,
    },
    InviteMember {
        invitation_id: Uuid,
        email: String,
        kind: MemberKind,
        role_ids: Vec<String>,
    },
    ResendInvitation {
        invitation_id: Uuid,
    },
    RevokeInvitation {
        invitation_id: Uuid,
    },
    /// By the invited user. `user_email` is their account's email; `seats_total` the
    /// plan's seats (from billing).
    AcceptInvitation {
        invitation_id: Uuid,
        user_id: Uuid,
        user_email: String,
        seats_total: u32,
    },
    RemoveMember {
        user_id: Uuid,
    },
    Leave,
    CreateRole {
        role_id: String,
        name: String,
        permissions: Vec<String>,
    },
    UpdateRole {
        role_id: String,
        name: Option<String>,
        permissions: Option<Vec<String>>,
    },
    DeleteRole {
        role_id: String,
    },
    GrantRole {
        user_id: Uuid,
        role_id: String,
    },
    RevokeRole {
        user_id: Uuid,
        role_id: String,
    },
    CertifyDeveloper {
        user_id: Uuid,
    },
}

/// What `updateOrganizationProfile` asks to change; `None` leaves a field alone.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProfileChanges {
    pub display_name: Option<String>,
    pub tagline: Option<String>,
    pub description: Option<String>,
    pub website: Option<String>,
    pub logo_url: Option<String>,
    pub contact_email: Option<String>,
    pub industry: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Organization {
    pub id: Option<Uuid>,
    pub name: String,
    pub created_by: Option<Uuid>,
    pub profile: Profile,
    pub policy: SecurityPolicy,
    pub members: BTreeMap<Uuid, Member>,
    pub invitations: BTreeMap<Uuid, Invitation>,
    pub roles: BTreeMap<String, Role>,
}

impl Organization {
    /// Everything `user` holds here; empty for non-members.
    pub fn permissions_of(&self, user: Uuid) -> PermissionSet {
        let Some(m) = self.members.get(&user) else {
            return PermissionSet::new();
        };
        m.roles
            .iter()
            .filter_map(|r| self.roles.get(r))
            .flat_map(|r| r.permissions.iter().copied())
            .collect()
    }

    pub fn is_member(&self, user: Uuid) -> bool {
        self.members.contains_key(&user)
    }

    pub fn owners(&self) -> impl Iterator<Item = Uuid> + '_ {
        self.members
            .iter()
            .filter(|(_, m)| m.roles.contains(OWNER_ROLE))
            .map(|(id, _)| *id)
    }

    /// Seats in use: members of kind `member` (external collaborators take none).
    pub fn seats_used(&self) -> u32 {
        self.members
            .values()
            .filter(|m| m.kind == MemberKind::Member)
            .count() as u32
    }

    pub fn member_count_of(&self, role_id: &str) -> usize {
        self.members
            .values()
            .filter(|m| m.roles.contains(role_id))
            .count()
    }

    fn check_exists(&self) -> Result<Uuid, DomainError> {
        self.id
            .ok_or_else(|| DomainError::not_found("organization", "(uncreated)"))
    }

    fn member(&self, user: Uuid) -> Result<&Member, DomainError> {
        self.members
            .get(&user)
            .ok_or_else(|| DomainError::NotAMember(user.to_string()))
    }

    fn role(&self, role_id: &str) -> Result<&Role, DomainError> {
        self.roles
            .get(role_id)
            .ok_or_else(|| DomainError::not_found("role", role_id))
    }

    fn custom_role(&self, role_id: &str) -> Result<&Role, DomainError> {
        let role = self.role(role_id)?;
        if role.built_in {
            return Err(DomainError::BuiltInRole);
        }
        Ok(role)
    }

    fn is_sole_owner(&self, user: Uuid) -> bool {
        self.owners().all(|o| o == user)
            && self
                .members
                .get(&user)
                .is_some_and(|m| m.roles.contains(OWNER_ROLE))
    }

    fn invitation(&self, id: Uuid) -> Result<&Invitation, DomainError> {
        self.invitations
            .get(&id)
            .ok_or_else(|| DomainError::not_found("invitation", id))
    }

    fn pending_invitation(
        &self,
        id: Uuid,
        action: &'static str,
    ) -> Result<&Invitation, DomainError> {
        let inv = self.invitation(id)?;
        match inv.state {
            InvitationState::Pending => Ok(inv),
            InvitationState::Accepted => {
                Err(DomainError::wrong_state("invitation", "accepted", action))
            }
            InvitationState::Revoked => {
                Err(DomainError::wrong_state("invitation", "revoked", action))
            }
        }
    }

    /// Role ids for a new grant: they exist, and `owner` needs `organization:own`.
    fn check_grantable(&self, role_ids: &[String], ctx: &Context) -> Result<(), DomainError> {
        if role_ids.len() > ROLES_PER_MEMBER_MAX {
            return Err(DomainError::invalid(
                "roleIds",
                format!("at most {ROLES_PER_MEMBER_MAX} roles"),
            ));
        }
        for r in role_ids {
            self.role(r)?;
            if r == OWNER_ROLE {
                ctx.require(Permission::OrganizationOwn)?;
            }
        }
        Ok(())
    }

    fn role_named(&self, name: &str, except: Option<&str>) -> bool {
        self.roles
            .iter()
            .any(|(id, r)| Some(id.as_str()) != except && r.name.eq_ignore_ascii_case(name))
    }
}

impl Aggregate for Organization {
    type Command = OrganizationCommand;

    fn apply(&mut self, event: &Event) {
        match event {
            Event::OrganizationCreated(e) => self.apply_created(e),
            Event::OrganizationProfileUpdated(e) => {
                let p = &mut self.profile;
                let set = |slot: &mut Option<String>, v: &Option<String>| {
                    if let Some(v) = v {
                        *slot = (!v.is_empty()).then(|| v.clone());
                    }
                };
                if let Some(d) = &e.display_name {
                    p.display_name = d.clone();
                }
                set(&mut p.tagline, &e.tagline);
                set(&mut p.description, &e.description);
                set(&mut p.website, &e.website);
                set(&mut p.logo_url, &e.logo_url);
                set(&mut p.contact_email, &e.contact_email);
                set(&mut p.industry, &e.industry);
            }
            Event::OwnershipTransferred(e) => {
                if let Some(m) = self.members.get_mut(&e.to_user_id) {
                    m.roles.insert(OWNER_ROLE.to_owned());
                }
                if let Some(m) = self.members.get_mut(&e.from_user_id) {
                    m.roles.remove(OWNER_ROLE);
                    m.roles.insert(ADMIN_ROLE.to_owned());
                }
            }
            Event::SecurityPolicyChanged(e) => {
                self.policy = SecurityPolicy {
                    require_mfa: e.require_mfa,
                    session_ttl_minutes: e.session_ttl_minutes,
                    min_password_length: e.min_password_length,
                };
            }
            Event::MemberInvited(e) => {
                self.invitations.insert(
                    e.invitation_id,
                    Invitation {
                        email: e.email.clone(),
                        kind: e.kind,
                        role_ids: e.role_ids.clone(),
                        expires_at: e.expires_at,
                        state: InvitationState::Pending,
                    },
                );
            }
            Event::InvitationResent(e) => {
                if let Some(i) = self.invitations.get_mut(&e.invitation_id) {
                    i.expires_at = e.expires_at;
                }
            }
            Event::InvitationRevoked(e) => {
                if let Some(i) = self.invitations.get_mut(&e.invitation_id) {
                    i.state = InvitationState::Revoked;
                }
            }
            Event::MemberJoined(e) => {
                let email = self.invitations.get_mut(&e.invitation_id).map(|i| {
                    i.state = InvitationState::Accepted;
                    i.email.clone()
                });
                self.members.insert(
                    e.user_id,
                    Member {
                        kind: e.kind,
                        roles: e.role_ids.iter().cloned().collect(),
                        email,
                        developer: false,
                    },
                );
            }
            Event::MemberRemoved(MemberRemoved { user_id })
            | Event::MemberLeft(MemberLeft { user_id }) => {
                self.members.remove(user_id);
            }
            Event::RoleCreated(e) => {
                self.roles.insert(
                    e.role_id.clone(),
                    Role {
                        name: e.name.clone(),
                        permissions: e.permissions.iter().copied().collect(),
                        built_in: false,
                    },
                );
            }
            Event::RoleUpdated(e) => {
                if let Some(r) = self.roles.get_mut(&e.role_id) {
                    r.name = e.name.clone();
                    r.permissions = e.permissions.iter().copied().collect();
                }
            }
            Event::RoleDeleted(e) => {
                self.roles.remove(&e.role_id);
                for m in self.members.values_mut() {
                    m.roles.remove(&e.role_id);
                }
            }
            Event::RoleGranted(e) => {
                if let Some(m) = self.members.get_mut(&e.user_id) {
                    m.roles.insert(e.role_id.clone());
                }
            }
            Event::RoleRevoked(e) => {
                if let Some(m) = self.members.get_mut(&e.user_id) {
                    m.roles.remove(&e.role_id);
                }
            }
            Event::DeveloperCertified(e) => {
                if let Some(m) = self.members.get_mut(&e.user_id) {
                    m.developer = true;
                }
            }
            _ => {}
        }
    }

    fn decide(
        &self,
        command: &OrganizationCommand,
        ctx: &Context,
    ) -> Result<Vec<Event>, DomainError> {
        use OrganizationCommand as C;
        if !matches!(command, C::Create { .. }) {
            self.check_exists()?;
        }
        match command {
            C::Create {
                org_id,
                name,
                admin_alias,
                admin_email,
            } => self.create(*org_id, name, admin_alias, admin_email, ctx),
            C::UpdateProfile(changes) => self.update_profile(changes, ctx),
            C::TransferOwnership { to_user_id } => self.transfer_ownership(*to_user_id, ctx),
            C::ChangeSecurityPolicy {
                require_mfa,
                session_ttl_minutes,
                min_password_length,
            } => self.change_policy(
                *require_mfa,
                *session_ttl_minutes,
                *min_password_length,
                ctx,
            ),
            C::InviteMember {
                invitation_id,
                email,
                kind,
                role_ids,
            } => self.invite(*invitation_id, email, *kind, role_ids, ctx),
            C::ResendInvitation { invitation_id } => {
                ctx.require(Permission::MembersManage)?;
                self.pending_invitation(*invitation_id, "resend")?;
                Ok(vec![
                    InvitationResent {
                        invitation_id: *invitation_id,
                        expires_at: ctx.now + INVITATION_TTL,
                    }
                    .into(),
                ])
            }
            C::RevokeInvitation { invitation_id } => {
                ctx.require(Permission::MembersManage)?;
                self.pending_invitation(*invitation_id, "revoke")?;
                Ok(vec![
                    InvitationRevoked {
                        invitation_id: *invitation_id,
                    }
                    .into(),
                ])
            }
            C::AcceptInvitation {
                invitation_id,
                user_id,
                user_email,
                seats_total,
            } => self.accept(*invitation_id, *user_id, user_email, *seats_total, ctx),
            C::RemoveMember { user_id } => self.remove_member(*user_id, ctx),
            C::Leave => {
                let user = ctx.user()?;
                self.member(user)?;
                if self.is_sole_owner(user) {
                    return Err(DomainError::LastOwner);
                }
                Ok(vec![MemberLeft { user_id: user }.into()])
            }
            C::CreateRole {
                role_id,
                name,
                permissions,
            } => self.create_role(role_id, name, permissions, ctx),
            C::UpdateRole {
                role_id,
                name,
                permissions,
            } => self.update_role(role_id, name.as_deref(), permissions.as_deref(), ctx),
            C::DeleteRole { role_id } => self.delete_role(role_id, ctx),
            C::GrantRole { user_id, role_id } => self.grant_role(*user_id, role_id, ctx),
            C::RevokeRole { user_id, role_id } => self.revoke_role(*user_id, role_id, ctx),
            C::CertifyDeveloper { user_id } => {
                ctx.require(Permission::DeveloperManage)?;
                if self.member(*user_id)?.developer {
                    return Ok(vec![]);
                }
                Ok(vec![DeveloperCertified { user_id: *user_id }.into()])
            }
        }
    }
}

impl Organization {
    fn apply_created(&mut self, e: &OrganizationCreated) {
        self.id = Some(e.org_id);
        self.name = e.name.clone();
        self.created_by = Some(e.owner_id);
        self.profile.display_name = e.name.clone();
        for id in [OWNER_ROLE, ADMIN_ROLE, MEMBER_ROLE] {
            self.roles.insert(
                id.to_owned(),
                Role {
                    name: permissions::built_in_name(id).unwrap_or(id).to_owned(),
                    permissions: permissions::built_in_permissions(id).unwrap_or_default(),
                    built_in: true,
                },
            );
        }
        self.members.insert(
            e.owner_id,
            Member {
                kind: MemberKind::Member,
                roles: [OWNER_ROLE.to_owned()].into(),
                email: Some(e.admin_email.clone()),
                developer: false,
            },
        );
    }

    fn create(
        &self,
        org_id: Uuid,
        name: &str,
        alias: &str,
        email: &str,
        ctx: &Context,
    ) -> Result<Vec<Event>, DomainError> {
        if self.id.is_some() {
            return Err(DomainError::exists("organization", org_id));
        }
        let owner_id = ctx.user()?;
        let name = validate::name("name", name)?;
        let admin_alias = validate::name("adminAlias", alias)?;
        if admin_alias.chars().count() > ALIAS_CHARS_MAX {
            return Err(DomainError::invalid(
                "adminAlias",
                format!("longer than {ALIAS_CHARS_MAX} characters"),
            ));
        }
        let admin_email = validate::email("adminEmail", email)?;
        Ok(vec![
            OrganizationCreated {
                org_id,
                name,
                owner_id,
                admin_alias,
                admin_email,
            }
            .into(),
        ])
    }

    fn update_profile(&self, c: &ProfileChanges, ctx: &Context) -> Result<Vec<Event>, DomainError> {
        ctx.require(Permission::ProfileManage)?;
        let p = &self.profile;
        let text = |field, v: &Option<String>, max| -> Result<Option<String>, DomainError> {
            v.as_deref()
                .map(|s| validate::text(field, s.trim(), max))
                .transpose()
        };
        let url = |field, v: &Option<String>| -> Result<Option<String>, DomainError> {
            match v.as_deref().map(str::trim) {
                Some("") => Ok(Some(String::new())),
                Some(s) => validate::url(field, s).map(Some),
                None => Ok(None),
            }
        };
        let changed = |new: Option<String>, old: &Option<String>| {
            new.filter(|n| Some(n) != old.as_ref() && !(n.is_empty() && old.is_none()))
        };
        let display_name = c
            .display_name
            .as_deref()
            .map(|d| validate::name("displayName", d))
            .transpose()?;
        let contact_email = match c.contact_email.as_deref().map(str::trim) {
            Some("") => Some(String::new()),
            Some(e) => Some(validate::email("contactEmail", e)?),
            None => None,
        };
        let event = OrganizationProfileUpdated {
            display_name: display_name.filter(|d| *d != p.display_name),
            tagline: changed(text("tagline", &c.tagline, 200)?, &p.tagline),
            description: changed(
                text("description", &c.description, validate::TEXT_CHARS_MAX)?,
                &p.description,
            ),
            website: changed(url("website", &c.website)?, &p.website),
            logo_url: changed(url("logoUrl", &c.logo_url)?, &p.logo_url),
            contact_email: changed(contact_email, &p.contact_email),
            industry: changed(
                text("industry", &c.industry, validate::NAME_CHARS_MAX)?,
                &p.industry,
            ),
        };
        if event
            == (OrganizationProfileUpdated {
                display_name: None,
                tagline: None,
                description: None,
                website: None,
                logo_url: None,
                contact_email: None,
                industry: None,
            })
        {
            return Ok(vec![]);
        }
        Ok(vec![event.into()])
    }

    fn transfer_ownership(&self, to: Uuid, ctx: &Context) -> Result<Vec<Event>, DomainError> {
        ctx.require(Permission::OrganizationOwn)?;
        let from = ctx.user()?;
        if !self.member(from)?.roles.contains(OWNER_ROLE) {
            return Err(DomainError::NotPermitted(
                "only an owner can transfer ownership",
            ));
        }
        let target = self.member(to)?;
        if target.kind != MemberKind::Member {
            return Err(DomainError::NotPermitted(
                "an external collaborator cannot own the organization",
            ));
        }
        if target.roles.contains(OWNER_ROLE) {
            return Err(DomainError::wrong_state(
                "member",
                "already an owner",
                "receive ownership",
            ));
        }
        Ok(vec![
            OwnershipTransferred {
                from_user_id: from,
                to_user_id: to,
            }
            .into(),
        ])
    }

    fn change_policy(
        &self,
        mfa: Option<bool>,
        ttl: Option<u32>,
        min_pw: Option<u32>,
        ctx: &Context,
    ) -> Result<Vec<Event>, DomainError> {
        ctx.require(Permission::SecurityManage)?;
        let ttl = ttl.unwrap_or(self.policy.session_ttl_minutes);
        if !SESSION_TTL_MINUTES_RANGE.contains(&ttl) {
            return Err(DomainError::invalid(
                "sessionTtlMinutes",
                format!("must be {SESSION_TTL_MINUTES_RANGE:?}"),
            ));
        }
        let min_pw = min_pw.unwrap_or(self.policy.min_password_length);
        if !MIN_PASSWORD_LENGTH_RANGE.contains(&min_pw) {
            return Err(DomainError::invalid(
                "minPasswordLength",
                format!("must be {MIN_PASSWORD_LENGTH_RANGE:?}"),
            ));
        }
        let next = SecurityPolicy {
            require_mfa: mfa.unwrap_or(self.policy.require_mfa),
            session_ttl_minutes: ttl,
            min_password_length: min_pw,
        };
        if next == self.policy {
            return Ok(vec![]);
        }
        Ok(vec![
            SecurityPolicyChanged {
                require_mfa: next.require_mfa,
                session_ttl_minutes: ttl,
                min_password_length: min_pw,
            }
            .into(),
        ])
    }

    fn invite(
        &self,
        id: Uuid,
        email: &str,
        kind: MemberKind,
        role_ids: &[String],
        ctx: &Context,
    ) -> Result<Vec<Event>, DomainError> {
        ctx.require(Permission::MembersManage)?;
        if self.invitations.contains_key(&id) {
            return Err(DomainError::exists("invitation", id));
        }
        let email = validate::email("email", email)?;
        if self
            .members
            .values()
            .any(|m| m.email.as_deref() == Some(email.as_str()))
        {
            return Err(DomainError::AlreadyMember);
        }
        if self
            .invitations
            .values()
            .any(|i| i.email == email && i.is_acceptable(ctx.now))
        {
            return Err(DomainError::exists("pending invitation for", &email));
        }
        let mut roles: Vec<String> = role_ids.to_vec();
        roles.sort();
        roles.dedup();
        if roles.is_empty() {
            roles.push(MEMBER_ROLE.to_owned());
        }
        self.check_grantable(&roles, ctx)?;
        if kind == MemberKind::ExternalCollaborator && roles.iter().any(|r| r == OWNER_ROLE) {
            return Err(DomainError::NotPermitted(
                "an external collaborator cannot own the organization",
            ));
        }
        Ok(vec![
            MemberInvited {
                invitation_id: id,
                email,
                kind,
                role_ids: roles,
                expires_at: ctx.now + INVITATION_TTL,
            }
            .into(),
        ])
    }

    fn accept(
        &self,
        id: Uuid,
        user: Uuid,
        user_email: &str,
        seats_total: u32,
        ctx: &Context,
    ) -> Result<Vec<Event>, DomainError> {
        if ctx.actor != Actor::User(user) {
            return Err(DomainError::NotPermitted(
                "only the invited user can accept an invitation",
            ));
        }
        let inv = self.pending_invitation(id, "accept")?;
        if ctx.now >= inv.expires_at {
            return Err(DomainError::InvitationExpired);
        }
        if !inv.email.eq_ignore_ascii_case(user_email.trim()) {
            return Err(DomainError::EmailMismatch);
        }
        if self.is_member(user) {
            return Err(DomainError::AlreadyMember);
        }
        if inv.kind == MemberKind::Member && self.seats_used() >= seats_total {
            return Err(DomainError::SeatsFull { total: seats_total });
        }
        Ok(vec![
            MemberJoined {
                invitation_id: id,
                user_id: user,
                kind: inv.kind,
                role_ids: inv.role_ids.clone(),
            }
            .into(),
        ])
    }

    fn remove_member(&self, user: Uuid, ctx: &Context) -> Result<Vec<Event>, DomainError> {
        ctx.require(Permission::MembersManage)?;
        let m = self.member(user)?;
        if m.roles.contains(OWNER_ROLE) {
            if self.is_sole_owner(user) {
                return Err(DomainError::LastOwner);
            }
            ctx.require(Permission::OrganizationOwn)?;
        }
        Ok(vec![MemberRemoved { user_id: user }.into()])
    }

    fn checked_permissions(
        &self,
        names: &[String],
        ctx: &Context,
    ) -> Result<Vec<Permission>, DomainError> {
        let set = parse_permissions(names)?;
        if set.contains(&Permission::OrganizationOwn) {
            ctx.require(Permission::OrganizationOwn)?;
        }
        Ok(set.into_iter().collect())
    }

    fn create_role(
        &self,
        role_id: &str,
        name: &str,
        perms: &[String],
        ctx: &Context,
    ) -> Result<Vec<Event>, DomainError> {
        ctx.require(Permission::RolesManage)?;
        if permissions::is_built_in(role_id) || self.roles.contains_key(role_id) {
            return Err(DomainError::exists("role", role_id));
        }
        if self.roles.values().filter(|r| !r.built_in).count() >= CUSTOM_ROLES_MAX {
            return Err(DomainError::invalid(
                "roles",
                format!("at most {CUSTOM_ROLES_MAX} custom roles"),
            ));
        }
        let name = validate::name("name", name)?;
        if self.role_named(&name, None) {
            return Err(DomainError::exists("role named", &name));
        }
        let permissions = self.checked_permissions(perms, ctx)?;
        Ok(vec![
            RoleCreated {
                role_id: role_id.to_owned(),
                name,
                permissions,
            }
            .into(),
        ])
    }

    fn update_role(
        &self,
        role_id: &str,
        name: Option<&str>,
        perms: Option<&[String]>,
        ctx: &Context,
    ) -> Result<Vec<Event>, DomainError> {
        ctx.require(Permission::RolesManage)?;
        let role = self.custom_role(role_id)?;
        let name = match name {
            Some(n) => validate::name("name", n)?,
            None => role.name.clone(),
        };
        if self.role_named(&name, Some(role_id)) {
            return Err(DomainError::exists("role named", &name));
        }
        let permissions = match perms {
            Some(p) => self.checked_permissions(p, ctx)?,
            None => role.permissions.iter().copied().collect(),
        };
        if name == role.name
            && permissions.iter().copied().collect::<PermissionSet>() == role.permissions
        {
            return Ok(vec![]);
        }
        Ok(vec![
            RoleUpdated {
                role_id: role_id.to_owned(),
                name,
                permissions,
            }
            .into(),
        ])
    }

    fn delete_role(&self, role_id: &str, ctx: &Context) -> Result<Vec<Event>, DomainError> {
        ctx.require(Permission::RolesManage)?;
        self.custom_role(role_id)?;
        if self
            .members
            .values()
            .any(|m| m.roles.len() == 1 && m.roles.contains(role_id))
        {
            return Err(DomainError::LastRole);
        }
        Ok(vec![
            RoleDeleted {
                role_id: role_id.to_owned(),
            }
            .into(),
        ])
    }

    fn grant_role(
        &self,
        user: Uuid,
        role_id: &str,
        ctx: &Context,
    ) -> Result<Vec<Event>, DomainError> {
        ctx.require(Permission::RolesManage)?;
        let m = self.member(user)?;
        self.check_grantable(&[role_id.to_owned()], ctx)?;
        if role_id == OWNER_ROLE && m.kind != MemberKind::Member {
            return Err(DomainError::NotPermitted(
                "an external collaborator cannot own the organization",
            ));
        }
        if m.roles.contains(role_id) {
            return Ok(vec![]);
        }
        if m.roles.len() >= ROLES_PER_MEMBER_MAX {
            return Err(DomainError::invalid(
                "roleId",
                format!("a member holds at most {ROLES_PER_MEMBER_MAX} roles"),
            ));
        }
        Ok(vec![
            RoleGranted {
                user_id: user,
                role_id: role_id.to_owned(),
            }
            .into(),
        ])
    }

    fn revoke_role(
        &self,
        user: Uuid,
        role_id: &str,
        ctx: &Context,
    ) -> Result<Vec<Event>, DomainError> {
        ctx.require(Permission::RolesManage)?;
        let m = self.member(user)?;
        self.role(role_id)?;
        if !m.roles.contains(role_id) {
            return Err(DomainError::not_found(
                "role grant",
                format!("{role_id} of {user}"),
            ));
        }
        if role_id == OWNER_ROLE {
            if self.is_sole_owner(user) {
                return Err(DomainError::LastOwner);
            }
            ctx.require(Permission::OrganizationOwn)?;
        }
        if m.roles.len() == 1 {
            return Err(DomainError::LastRole);
        }
        Ok(vec![
            RoleRevoked {
                user_id: user,
                role_id: role_id.to_owned(),
            }
            .into(),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::testing::{ctx, given, now};

    const ORG: Uuid = Uuid::from_u128(100);
    const OWNER: Uuid = Uuid::from_u128(1);
    const BOB: Uuid = Uuid::from_u128(2);
    const CAROL: Uuid = Uuid::from_u128(3);
    const INV_BOB: Uuid = Uuid::from_u128(20);
    const INV_CAROL: Uuid = Uuid::from_u128(30);

    fn created() -> Event {
        OrganizationCreated {
            org_id: ORG,
            name: "Acme".into(),
            owner_id: OWNER,
            admin_alias: "Olga".into(),
            admin_email: "olga@acme.test".into(),
        }
        .into()
    }
    fn invited(id: Uuid, email: &str, kind: MemberKind, roles: &[&str]) -> Event {
        MemberInvited {
            invitation_id: id,
            email: email.into(),
            kind,
            role_ids: roles.iter().map(|r| r.to_string()).collect(),
            expires_at: now() + INVITATION_TTL,
        }
        .into()
    }
    fn joined(id: Uuid, user: Uuid, kind: MemberKind, roles: &[&str]) -> Event {
        MemberJoined {
            invitation_id: id,
            user_id: user,
            kind,
            role_ids: roles.iter().map(|r| r.to_string()).collect(),
        }
        .into()
    }
    fn bob_member() -> Vec<Event> {
        vec![
            created(),
            invited(INV_BOB, "bob@acme.test", MemberKind::Member, &["member"]),
            joined(INV_BOB, BOB, MemberKind::Member, &["member"]),
        ]
    }
    fn bob_admin() -> Vec<Event> {
        vec![
            created(),
            invited(INV_BOB, "bob@acme.test", MemberKind::Member, &["admin"]),
            joined(INV_BOB, BOB, MemberKind::Member, &["admin"]),
        ]
    }
    fn owner() -> Context {
        ctx(Actor::User(OWNER), Permission::ALL)
    }
    fn as_user(org: &[Event], user: Uuid) -> Context {
        let state = Organization::replay(org);
        Context::new(now(), Actor::User(user), state.permissions_of(user), 1)
    }
    fn accept(inv: Uuid, user: Uuid, email: &str, seats: u32) -> OrganizationCommand {
        OrganizationCommand::AcceptInvitation {
            invitation_id: inv,
            user_id: user,
            user_email: email.into(),
            seats_total: seats,
        }
    }
    fn invite(id: Uuid, email: &str) -> OrganizationCommand {
        OrganizationCommand::InviteMember {
            invitation_id: id,
            email: email.into(),
            kind: MemberKind::Member,
            role_ids: vec![],
        }
    }

    #[test]
    fn the_creator_becomes_the_owner_with_every_permission_and_three_built_in_roles() {
        given::<Organization>([])
            .with(owner())
            .when(OrganizationCommand::Create {
                org_id: ORG,
                name: " Acme ".into(),
                admin_alias: "Olga".into(),
                admin_email: "Olga@Acme.test".into(),
            })
            .then([created()]);
        let org = Organization::replay(&[created()]);
        assert_eq!(org.permissions_of(OWNER).len(), 18);
        assert_eq!(org.roles.len(), 3);
        assert_eq!(org.owners().collect::<Vec<_>>(), vec![OWNER]);
        assert!(
            org.permissions_of(BOB).is_empty(),
            "non-members hold nothing"
        );
    }

    #[test]
    fn an_organization_is_created_once_and_only_by_a_user() {
        given::<Organization>([created()])
            .with(owner())
            .when(OrganizationCommand::Create {
                org_id: ORG,
                name: "A".into(),
                admin_alias: "O".into(),
                admin_email: "o@a.test".into(),
            })
            .then_err(DomainError::exists("organization", ORG));
        given::<Organization>([])
            .when(OrganizationCommand::Create {
                org_id: ORG,
                name: "A".into(),
                admin_alias: "O".into(),
                admin_email: "o@a.test".into(),
            })
            .then_err(DomainError::NotPermitted(
                "only a signed-in user can do this",
            ));
        given::<Organization>([])
            .with(owner())
            .when(OrganizationCommand::Leave)
            .then_err(DomainError::not_found("organization", "(uncreated)"));
    }

    #[test]
    fn the_last_owner_cannot_leave_be_removed_or_lose_the_owner_role() {
        let org = bob_admin();
        given::<Organization>(org.clone())
            .with(owner())
            .when(OrganizationCommand::Leave)
            .then_err(DomainError::LastOwner);
        given::<Organization>(org.clone())
            .with(as_user(&org, BOB))
            .when(OrganizationCommand::RemoveMember { user_id: OWNER })
            .then_err(DomainError::LastOwner);
        given::<Organization>(org.clone())
            .with(owner())
            .when(OrganizationCommand::RevokeRole {
                user_id: OWNER,
                role_id: OWNER_ROLE.into(),
            })
            .then_err(DomainError::LastOwner);
    }

    #[test]
    fn with_a_second_owner_the_first_may_leave() {
        let mut org = bob_member();
        org.push(
            RoleGranted {
                user_id: BOB,
                role_id: OWNER_ROLE.into(),
            }
            .into(),
        );
        given::<Organization>(org.clone())
            .with(owner())
            .when(OrganizationCommand::Leave)
            .then([MemberLeft { user_id: OWNER }.into()]);
        given::<Organization>(org)
            .with(owner())
            .when(OrganizationCommand::RevokeRole {
                user_id: BOB,
                role_id: OWNER_ROLE.into(),
            })
            .then([RoleRevoked {
                user_id: BOB,
                role_id: OWNER_ROLE.into(),
            }
            .into()]);
    }

    #[test]
    fn an_admin_cannot_remove_an_owner_or_grant_ownership() {
        let mut org = bob_admin();
        org.push(
            RoleGranted {
                user_id: OWNER,
                role_id: ADMIN_ROLE.into(),
            }
            .into(),
        );
        let mut two_owners = org.clone();
        two_owners.push(invited(
            INV_CAROL,
            "carol@acme.test",
            MemberKind::Member,
            &["owner"],
        ));
        two_owners.push(joined(INV_CAROL, CAROL, MemberKind::Member, &["owner"]));
        given::<Organization>(two_owners.clone())
            .with(as_user(&two_owners, BOB))
            .when(OrganizationCommand::RemoveMember { user_id: CAROL })
            .then_err(DomainError::Forbidden(Permission::OrganizationOwn));
        given::<Organization>(org.clone())
            .with(as_user(&org, BOB))
            .when(OrganizationCommand::GrantRole {
                user_id: BOB,
                role_id: OWNER_ROLE.into(),
            })
            .then_err(DomainError::Forbidden(Permission::OrganizationOwn));
    }

    #[test]
    fn a_member_without_the_permission_is_forbidden() {
        let org = bob_member();
        given::<Organization>(org.clone())
            .with(as_user(&org, BOB))
            .when(invite(INV_CAROL, "carol@acme.test"))
            .then_err(DomainError::Forbidden(Permission::MembersManage));
        given::<Organization>(org.clone())
            .with(as_user(&org, BOB))
            .when(OrganizationCommand::CreateRole {
                role_id: "r1".into(),
                name: "Ops".into(),
                permissions: vec![],
            })
            .then_err(DomainError::Forbidden(Permission::RolesManage));
    }

    #[test]
    fn built_in_roles_cannot_be_changed_or_deleted() {
        for role in [OWNER_ROLE, ADMIN_ROLE, MEMBER_ROLE] {
            given::<Organization>([created()])
                .with(owner())
                .when(OrganizationCommand::UpdateRole {
                    role_id: role.into(),
                    name: Some("X".into()),
                    permissions: None,
                })
                .then_err(DomainError::BuiltInRole);
            given::<Organization>([created()])
                .with(owner())
                .when(OrganizationCommand::DeleteRole {
                    role_id: role.into(),
                })
                .then_err(DomainError::BuiltInRole);
            given::<Organization>([created()])
                .with(owner())
                .when(OrganizationCommand::CreateRole {
                    role_id: role.into(),
                    name: "X".into(),
                    permissions: vec![],
                })
                .then_err(DomainError::exists("role", role));
        }
    }

    #[test]
    fn custom_roles_take_only_known_permissions_and_unique_names() {
        given::<Organization>([created()])
            .with(owner())
            .when(OrganizationCommand::CreateRole {
                role_id: "r1".into(),
                name: "Ops".into(),
                permissions: vec!["bots:read".into(), "bots:fly".into()],
            })
            .then_err(DomainError::UnknownPermission("bots:fly".into()));
        given::<Organization>([created()])
            .with(owner())
            .when(OrganizationCommand::CreateRole {
                role_id: "r1".into(),
                name: "admin".into(),
                permissions: vec![],
            })
            .then_err(DomainError::exists("role named", "admin"));
        given::<Organization>([created()])
            .with(owner())
            .when(OrganizationCommand::CreateRole {
                role_id: "r1".into(),
                name: "Ops".into(),
                permissions: vec!["runs:read".into(), "bots:read".into(), "bots:read".into()],
            })
            .then([RoleCreated {
                role_id: "r1".into(),
                name: "Ops".into(),
                permissions: vec![Permission::BotsRead, Permission::RunsRead],
            }
            .into()]);
    }

    #[test]
    fn a_custom_role_grants_its_permissions_and_updating_it_changes_them() {
        let mut org = bob_member();
        org.push(
            RoleCreated {
                role_id: "r1".into(),
                name: "Ops".into(),
                permissions: vec![Permission::ConsoleAccess, Permission::BotsRead],
            }
            .into(),
        );
        org.push(
            RoleGranted {
                user_id: BOB,
                role_id: "r1".into(),
            }
            .into(),
        );
        let state = Organization::replay(&org);
        assert_eq!(
            state.permissions_of(BOB),
            [Permission::ConsoleAccess, Permission::BotsRead].into()
        );
        assert_eq!(state.member_count_of("r1"), 1);
        given::<Organization>(org.clone())
            .with(owner())
            .when(OrganizationCommand::UpdateRole {
                role_id: "r1".into(),
                name: None,
                permissions: Some(vec!["bots:read".into()]),
            })
            .then([RoleUpdated {
                role_id: "r1".into(),
                name: "Ops".into(),
                permissions: vec![Permission::BotsRead],
            }
            .into()]);
        given::<Organization>(org)
            .with(owner())
            .when(OrganizationCommand::UpdateRole {
                role_id: "r1".into(),
                name: Some("Ops".into()),
                permissions: None,
            })
            .then([]);
    }

    #[test]
    fn a_member_keeps_at_least_one_role() {
        let mut org = bob_member();
        org.push(
            RoleCreated {
                role_id: "r1".into(),
                name: "Ops".into(),
                permissions: vec![],
            }
            .into(),
        );
        given::<Organization>(org.clone())
            .with(owner())
            .when(OrganizationCommand::RevokeRole {
                user_id: BOB,
                role_id: MEMBER_ROLE.into(),
            })
            .then_err(DomainError::LastRole);
        let mut only_custom = org.clone();
        only_custom.push(
            RoleGranted {
                user_id: BOB,
                role_id: "r1".into(),
            }
            .into(),
        );
        only_custom.push(
            RoleRevoked {
                user_id: BOB,
                role_id: MEMBER_ROLE.into(),
            }
            .into(),
        );
        given::<Organization>(only_custom)
            .with(owner())
            .when(OrganizationCommand::DeleteRole {
                role_id: "r1".into(),
            })
            .then_err(DomainError::LastRole);
        given::<Organization>(org)
            .with(owner())
            .when(OrganizationCommand::DeleteRole {
                role_id: "r1".into(),
            })
            .then([RoleDeleted {
                role_id: "r1".into(),
            }
            .into()]);
    }

    #[test]
    fn one_pending_invitation_per_email_and_an_expired_one_does_not_block() {
        let org = vec![
            created(),
            invited(INV_BOB, "bob@acme.test", MemberKind::Member, &["member"]),
        ];
        given::<Organization>(org.clone())
            .with(owner())
            .when(invite(INV_CAROL, "BOB@acme.test"))
            .then_err(DomainError::exists(
                "pending invitation for",
                "bob@acme.test",
            ));
        let later = Context {
            now: now() + INVITATION_TTL,
            ..owner()
        };
        let result = given::<Organization>(org)
            .with(later)
            .when(invite(INV_CAROL, "bob@acme.test"))
            .result();
        assert!(matches!(result.as_deref(), Ok([Event::MemberInvited(_)])));
    }

    #[test]
    fn members_cannot_be_invited_again() {
        given::<Organization>(bob_member())
            .with(owner())
            .when(invite(INV_CAROL, "bob@acme.test"))
            .then_err(DomainError::AlreadyMember);
        given::<Organization>([created()])
            .with(owner())
            .when(invite(INV_CAROL, "olga@acme.test"))
            .then_err(DomainError::AlreadyMember);
    }

    #[test]
    fn an_invitation_without_roles_grants_member_and_unknown_roles_are_refused() {
        given::<Organization>([created()])
            .with(owner())
            .when(invite(INV_BOB, "bob@acme.test"))
            .then([invited(
                INV_BOB,
                "bob@acme.test",
                MemberKind::Member,
                &["member"],
            )]);
        given::<Organization>([created()])
            .with(owner())
            .when(OrganizationCommand::InviteMember {
                invitation_id: INV_BOB,
                email: "bob@acme.test".into(),
                kind: MemberKind::Member,
                role_ids: vec!["nope".into()],
            })
            .then_err(DomainError::not_found("role", "nope"));
    }

    #[test]
    fn only_the_invited_user_accepts_a_pending_unexpired_invitation() {
        let org = vec![
            created(),
            invited(INV_BOB, "bob@acme.test", MemberKind::Member, &["member"]),
        ];
        let bob = ctx(Actor::User(BOB), &[]);
        given::<Organization>(org.clone())
            .with(bob.clone())
            .when(accept(INV_BOB, BOB, "Bob@Acme.test", 5))
            .then([joined(INV_BOB, BOB, MemberKind::Member, &["member"])]);
        given::<Organization>(org.clone())
            .with(bob.clone())
            .when(accept(INV_BOB, BOB, "mallory@acme.test", 5))
            .then_err(DomainError::EmailMismatch);
        given::<Organization>(org.clone())
            .with(ctx(Actor::User(CAROL), &[]))
            .when(accept(INV_BOB, BOB, "bob@acme.test", 5))
            .then_err(DomainError::NotPermitted(
                "only the invited user can accept an invitation",
            ));
        given::<Organization>(org.clone())
            .with(Context {
                now: now() + INVITATION_TTL,
                ..bob.clone()
            })
            .when(accept(INV_BOB, BOB, "bob@acme.test", 5))
            .then_err(DomainError::InvitationExpired);
        let mut revoked = org.clone();
        revoked.push(
            InvitationRevoked {
                invitation_id: INV_BOB,
            }
            .into(),
        );
        given::<Organization>(revoked)
            .with(bob.clone())
            .when(accept(INV_BOB, BOB, "bob@acme.test", 5))
            .then_err(DomainError::wrong_state("invitation", "revoked", "accept"));
        let mut done = org;
        done.push(joined(INV_BOB, BOB, MemberKind::Member, &["member"]));
        given::<Organization>(done)
            .with(bob)
            .when(accept(INV_BOB, BOB, "bob@acme.test", 5))
            .then_err(DomainError::wrong_state("invitation", "accepted", "accept"));
    }

    #[test]
    fn resending_renews_the_expiry_and_revoke_or_resend_need_a_pending_invitation() {
        let org = vec![
            created(),
            invited(INV_BOB, "bob@acme.test", MemberKind::Member, &["member"]),
        ];
        let later = Context {
            now: now() + Duration::days(10),
            ..owner()
        };
        given::<Organization>(org.clone())
            .with(later.clone())
            .when(OrganizationCommand::ResendInvitation {
                invitation_id: INV_BOB,
            })
            .then([InvitationResent {
                invitation_id: INV_BOB,
                expires_at: later.now + INVITATION_TTL,
            }
            .into()]);
        let mut revoked = org;
        revoked.push(
            InvitationRevoked {
                invitation_id: INV_BOB,
            }
            .into(),
        );
        given::<Organization>(revoked.clone())
            .with(owner())
            .when(OrganizationCommand::RevokeInvitation {
                invitation_id: INV_BOB,
            })
            .then_err(DomainError::wrong_state("invitation", "revoked", "revoke"));
        given::<Organization>(revoked)
            .with(owner())
            .when(OrganizationCommand::ResendInvitation {
                invitation_id: INV_BOB,
            })
            .then_err(DomainError::wrong_state("invitation", "revoked", "resend"));
        given::<Organization>([created()])
            .with(owner())
            .when(OrganizationCommand::RevokeInvitation {
                invitation_id: INV_BOB,
            })
            .then_err(DomainError::not_found("invitation", INV_BOB));
    }

    #[test]
    fn joining_is_refused_when_seats_are_full_but_collaborators_take_no_seat() {
        let org = vec![
            created(),
            invited(INV_BOB, "bob@acme.test", MemberKind::Member, &["member"]),
            invited(
                INV_CAROL,
                "carol@acme.test",
                MemberKind::ExternalCollaborator,
                &["member"],
            ),
        ];
        given::<Organization>(org.clone())
            .with(ctx(Actor::User(BOB), &[]))
            .when(accept(INV_BOB, BOB, "bob@acme.test", 1))
            .then_err(DomainError::SeatsFull { total: 1 });
        given::<Organization>(org)
            .with(ctx(Actor::User(CAROL), &[]))
            .when(accept(INV_CAROL, CAROL, "carol@acme.test", 1))
            .then([joined(
                INV_CAROL,
                CAROL,
                MemberKind::ExternalCollaborator,
                &["member"],
            )]);
    }

    #[test]
    fn ownership_moves_to_a_member_and_the_former_owner_becomes_admin() {
        let org = bob_member();
        given::<Organization>(org.clone())
            .with(owner())
            .when(OrganizationCommand::TransferOwnership { to_user_id: BOB })
            .then([OwnershipTransferred {
                from_user_id: OWNER,
                to_user_id: BOB,
            }
            .into()]);
        let mut after = org.clone();
        after.push(
            OwnershipTransferred {
                from_user_id: OWNER,
                to_user_id: BOB,
            }
            .into(),
        );
        let state = Organization::replay(&after);
        assert_eq!(state.owners().collect::<Vec<_>>(), vec![BOB]);
        assert!(state.members[&OWNER].roles.contains(ADMIN_ROLE));
        given::<Organization>(org)
            .with(owner())
            .when(OrganizationCommand::TransferOwnership { to_user_id: CAROL })
            .then_err(DomainError::NotAMember(CAROL.to_string()));
    }

    #[test]
    fn the_profile_records_only_what_changed() {
        let changes = ProfileChanges {
            tagline: Some("Bots at work".into()),
            website: Some("https://acme.test".into()),
            display_name: Some("Acme".into()),
            ..ProfileChanges::default()
        };
        given::<Organization>([created()])
            .with(owner())
            .when(OrganizationCommand::UpdateProfile(changes.clone()))
            .then([OrganizationProfileUpdated {
                display_name: None,
                tagline: Some("Bots at work".into()),
                description: None,
                website: Some("https://acme.test".into()),
                logo_url: None,
                contact_email: None,
                industry: None,
            }
            .into()]);
        let mut org = vec![created()];
        org.extend(
            Organization::replay(&[created()])
                .decide(
                    &OrganizationCommand::UpdateProfile(changes.clone()),
                    &owner(),
                )
                .unwrap(),
        );
        given::<Organization>(org)
            .with(owner())
            .when(OrganizationCommand::UpdateProfile(changes))
            .then([]);
        given::<Organization>([created()])
            .with(owner())
            .when(OrganizationCommand::UpdateProfile(ProfileChanges {
                website: Some("javascript:alert(1)".into()),
                ..ProfileChanges::default()
            }))
            .then_err(DomainError::invalid(
                "website",
                "\"javascript:alert(1)\" is not an http(s) URL",
            ));
    }

    #[test]
    fn the_security_policy_stays_within_its_bounds() {
        given::<Organization>([created()])
            .with(owner())
            .when(OrganizationCommand::ChangeSecurityPolicy {
                require_mfa: Some(true),
                session_ttl_minutes: None,
                min_password_length: Some(12),
            })
            .then([SecurityPolicyChanged {
                require_mfa: true,
                session_ttl_minutes: 720,
                min_password_length: 12,
            }
            .into()]);
        given::<Organization>([created()])
            .with(owner())
            .when(OrganizationCommand::ChangeSecurityPolicy {
                require_mfa: None,
                session_ttl_minutes: Some(1),
                min_password_length: None,
            })
            .then_err(DomainError::invalid(
                "sessionTtlMinutes",
                "must be 5..=43200",
            ));
        given::<Organization>([created()])
            .with(owner())
            .when(OrganizationCommand::ChangeSecurityPolicy {
                require_mfa: Some(false),
                session_ttl_minutes: None,
                min_password_length: None,
            })
            .then([]);
    }

    #[test]
    fn developers_are_certified_once() {
        given::<Organization>(bob_member())
            .with(owner())
            .when(OrganizationCommand::CertifyDeveloper { user_id: BOB })
            .then([DeveloperCertified { user_id: BOB }.into()]);
        let mut org = bob_member();
        org.push(DeveloperCertified { user_id: BOB }.into());
        given::<Organization>(org)
            .with(owner())
            .when(OrganizationCommand::CertifyDeveloper { user_id: BOB })
            .then([]);
        given::<Organization>([created()])
            .with(owner())
            .when(OrganizationCommand::CertifyDeveloper { user_id: BOB })
            .then_err(DomainError::NotAMember(BOB.to_string()));
    }
}
