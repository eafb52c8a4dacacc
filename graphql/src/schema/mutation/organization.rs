//! The organization: creation, profile, ownership, policy, people, roles, developers.

use super::payloads::*;
use crate::error::{ApiError, ApiResult};
use crate::schema::scalars::*;
use crate::schema::types::OrgNode;
use crate::schema::{access, svc, viewer};
use crate::service::Service;
use async_graphql::{Context, ID, InputObject, Object};
use domain::organization::{Organization, OrganizationCommand as C, ProfileChanges};
use domain::permissions::PermissionSet;
use domain::{Actor, streams};
use uuid::Uuid;

#[derive(InputObject)]
pub struct CreateOrganizationInput {
    pub name: String,
    pub admin_alias: String,
    pub admin_email: String,
}

#[derive(InputObject)]
pub struct UpdateOrganizationProfileInput {
    pub organization_id: ID,
    pub display_name: Option<String>,
    pub tagline: Option<String>,
    pub description: Option<String>,
    pub website: Option<String>,
    pub logo_url: Option<String>,
    pub contact_email: Option<String>,
    pub industry: Option<String>,
}

#[derive(InputObject)]
pub struct TransferOwnershipInput {
    pub organization_id: ID,
    pub user_id: ID,
}

#[derive(InputObject)]
pub struct UpdateSecurityPolicyInput {
    pub organization_id: ID,
    pub require_mfa: Option<bool>,
    pub session_ttl_minutes: Option<i32>,
    pub min_password_length: Option<i32>,
}

#[derive(InputObject)]
pub struct OrganizationIdInput {
    pub organization_id: ID,
}

#[derive(InputObject)]
pub struct InviteMemberInput {
    pub organization_id: ID,
    pub email: String,
    #[graphql(default_with = "Some(MemberKind::Member)")]
    pub kind: Option<MemberKind>,
    pub role_ids: Option<Vec<ID>>,
}

#[derive(InputObject)]
pub struct InvitationIdInput {
    pub invitation_id: ID,
}

#[derive(InputObject)]
pub struct MemberInput {
    pub organization_id: ID,
    pub user_id: ID,
}

#[derive(InputObject)]
pub struct CreateRoleInput {
    pub organization_id: ID,
    pub name: String,
    pub permissions: Vec<String>,
}

#[derive(InputObject)]
pub struct UpdateRoleInput {
    pub role_id: ID,
    pub organization_id: ID,
    pub name: Option<String>,
    pub permissions: Option<Vec<String>>,
}

#[derive(InputObject)]
pub struct RoleIdInput {
    pub organization_id: ID,
    pub role_id: ID,
}

#[derive(InputObject)]
pub struct GrantRoleInput {
    pub organization_id: ID,
    pub user_id: ID,
    pub role_id: ID,
}

#[derive(Default)]
pub struct OrganizationMutation;

fn non_negative(field: &str, v: Option<i32>) -> ApiResult<Option<u32>> {
    v.map(|n| {
        u32::try_from(n).map_err(|_| ApiError::bad_input(format!("{field}: must not be negative")))
    })
    .transpose()
}

/// Runs an organization command as the viewer and answers with the organization as it
/// is afterwards.
async fn org_command(
    ctx: &Context<'_>,
    org: Uuid,
    command: C,
) -> async_graphql::Result<OrganizationPayload> {
    let svc = svc(ctx);
    let a = access(ctx, org)?;
    let out = svc
        .mutate::<Organization>(&streams::organization(org), &a, command)
        .await?;
    Ok(OrganizationPayload {
        organization: OrgNode::live(access(ctx, org)?),
        position: Position(out.position),
    })
}

async fn org_result(
    ctx: &Context<'_>,
    org: Uuid,
    command: C,
) -> async_graphql::Result<MutationResult> {
    let svc = svc(ctx);
    let a = access(ctx, org)?;
    let out = svc
        .mutate::<Organization>(&streams::organization(org), &a, command)
        .await?;
    Ok(MutationResult {
        ok: true,
        position: Some(Position(out.position)),
    })
}

fn live(ctx: &Context<'_>, org: Uuid) -> ApiResult<OrgNode> {
    Ok(OrgNode::live(access(ctx, org)?))
}

#[Object]
impl OrganizationMutation {
    /// Creates an organization with the viewer as its owner (on the free plan).
    async fn create_organization(
        &self,
        ctx: &Context<'_>,
        input: CreateOrganizationInput,
    ) -> async_graphql::Result<OrganizationPayload> {
        let svc = svc(ctx);
        let user = viewer(ctx)?.user()?;
        let org = Uuid::new_v4();
        let out = svc
            .decide::<Organization>(
                &streams::organization(org),
                Some(org),
                Actor::User(user),
                PermissionSet::new(),
                C::Create {
                    org_id: org,
                    name: input.name,
                    admin_alias: input.admin_alias,
                    admin_email: input.admin_email,
                },
            )
            .await?;
        let out = svc.finish(out).await?;
        Ok(OrganizationPayload {
            organization: live(ctx, org)?,
            position: Position(out.position),
        })
    }

    /// `profile:manage`.
    async fn update_organization_profile(
        &self,
        ctx: &Context<'_>,
        input: UpdateOrganizationProfileInput,
    ) -> async_graphql::Result<OrganizationPayload> {
        let org = uuid("organizationId", &input.organization_id)?;
        let changes = ProfileChanges {
            display_name: input.display_name,
            tagline: input.tagline,
            description: input.description,
            website: input.website,
            logo_url: input.logo_url,
            contact_email: input.contact_email,
            industry: input.industry,
        };
        org_command(ctx, org, C::UpdateProfile(changes)).await
    }

    /// `organization:own`.
    async fn transfer_ownership(
        &self,
        ctx: &Context<'_>,
        input: TransferOwnershipInput,
    ) -> async_graphql::Result<OrganizationPayload> {
        let org = uuid("organizationId", &input.organization_id)?;
        let to_user_id = uuid("userId", &input.user_id)?;
        org_command(ctx, org, C::TransferOwnership { to_user_id }).await
    }

    /// `security:manage`.
    async fn update_security_policy(
        &self,
        ctx: &Context<'_>,
        input: UpdateSecurityPolicyInput,
    ) -> async_graphql::Result<OrganizationPayload> {
        let org = uuid("organizationId", &input.organization_id)?;
        let command = C::ChangeSecurityPolicy {
            require_mfa: input.require_mfa,
            session_ttl_minutes: non_negative("sessionTtlMinutes", input.session_ttl_minutes)?,
            min_password_length: non_negative("minPasswordLength", input.min_password_length)?,
        };
        org_command(ctx, org, command).await
    }

    /// `members:manage`.
    async fn invite_member(
        &self,
        ctx: &Context<'_>,
        input: InviteMemberInput,
    ) -> async_graphql::Result<InvitationPayload> {
        let org = uuid("organizationId", &input.organization_id)?;
        let svc = svc(ctx);
        let a = access(ctx, org)?;
        let invitation_id = Uuid::new_v4();
        let role_ids = input
            .role_ids
            .unwrap_or_default()
            .into_iter()
            .map(|r| r.0)
            .collect();
        let out = svc
            .mutate::<Organization>(
                &streams::organization(org),
                &a,
                C::InviteMember {
                    invitation_id,
                    email: input.email,
                    kind: input.kind.unwrap_or(MemberKind::Member).into(),
                    role_ids,
                },
            )
            .await?;
        Ok(InvitationPayload {
            invitation: live(ctx, org)?.invitation_node(svc, invitation_id)?,
            position: Position(out.position),
        })
    }

    /// `members:manage`.
    async fn resend_invitation(
        &self,
        ctx: &Context<'_>,
        input: InvitationIdInput,
    ) -> async_graphql::Result<InvitationPayload> {
        invitation_command(ctx, &input.invitation_id, |invitation_id| {
            C::ResendInvitation { invitation_id }
        })
        .await
    }

    /// `members:manage`.
    async fn revoke_invitation(
        &self,
        ctx: &Context<'_>,
        input: InvitationIdInput,
    ) -> async_graphql::Result<InvitationPayload> {
        invitation_command(ctx, &input.invitation_id, |invitation_id| {
            C::RevokeInvitation { invitation_id }
        })
        .await
    }

    /// By the invited user (the account's email must be the invitation's).
    async fn accept_invitation(
        &self,
        ctx: &Context<'_>,
        input: InvitationIdInput,
    ) -> async_graphql::Result<OrganizationPayload> {
        let svc = svc(ctx);
        let user = viewer(ctx)?.user()?;
        let invitation_id = uuid("invitationId", &input.invitation_id)?;
        let org = svc.owner_of("invitation", invitation_id)?;
        let account = projections::accounts::query::user(&svc.projections.accounts.tree(), user)?
            .ok_or_else(|| ApiError::internal("a signed-in user without an account"))?;
        let seats_total =
            projections::console::query::billing(&svc.projections.console.tree(), org)?.seats();
        let out = svc
            .decide::<Organization>(
                &streams::organization(org),
                Some(org),
                Actor::User(user),
                PermissionSet::new(),
                C::AcceptInvitation {
                    invitation_id,
                    user_id: user,
                    user_email: account.email,
                    seats_total,
                },
            )
            .await?;
        let out = svc.finish(out).await?;
        Ok(OrganizationPayload {
            organization: live(ctx, org)?,
            position: Position(out.position),
        })
    }

    /// `members:manage`.
    async fn remove_member(
        &self,
        ctx: &Context<'_>,
        input: MemberInput,
    ) -> async_graphql::Result<OrganizationPayload> {
        let org = uuid("organizationId", &input.organization_id)?;
        let user_id = uuid("userId", &input.user_id)?;
        org_command(ctx, org, C::RemoveMember { user_id }).await
    }

    /// The viewer leaves (the last owner cannot).
    async fn leave_organization(
        &self,
        ctx: &Context<'_>,
        input: OrganizationIdInput,
    ) -> async_graphql::Result<MutationResult> {
        let org = uuid("organizationId", &input.organization_id)?;
        org_result(ctx, org, C::Leave).await
    }

    /// `roles:manage`.
    async fn create_role(
        &self,
        ctx: &Context<'_>,
        input: CreateRoleInput,
    ) -> async_graphql::Result<RolePayload> {
        let org = uuid("organizationId", &input.organization_id)?;
        let role_id = Uuid::new_v4().to_string();
        let payload = org_command(
            ctx,
            org,
            C::CreateRole {
                role_id: role_id.clone(),
                name: input.name,
                permissions: input.permissions,
            },
        )
        .await?;
        Ok(RolePayload {
            role: payload.organization.role_node(&role_id)?,
            position: payload.position,
        })
    }

    /// `roles:manage`.
    async fn update_role(
        &self,
        ctx: &Context<'_>,
        input: UpdateRoleInput,
    ) -> async_graphql::Result<RolePayload> {
        let org = uuid("organizationId", &input.organization_id)?;
        let role_id = input.role_id.0;
        let payload = org_command(
            ctx,
            org,
            C::UpdateRole {
                role_id: role_id.clone(),
                name: input.name,
                permissions: input.permissions,
            },
        )
        .await?;
        Ok(RolePayload {
            role: payload.organization.role_node(&role_id)?,
            position: payload.position,
        })
    }

    /// `roles:manage`.
    async fn delete_role(
        &self,
        ctx: &Context<'_>,
        input: RoleIdInput,
    ) -> async_graphql::Result<MutationResult> {
        let org = uuid("organizationId", &input.organization_id)?;
        org_result(
            ctx,
            org,
            C::DeleteRole {
                role_id: input.role_id.0,
            },
        )
        .await
    }

    /// `roles:manage`.
    async fn grant_role(
        &self,
        ctx: &Context<'_>,
        input: GrantRoleInput,
    ) -> async_graphql::Result<OrganizationPayload> {
        role_command(ctx, input, |user_id, role_id| C::GrantRole {
            user_id,
            role_id,
        })
        .await
    }

    /// `roles:manage`.
    async fn revoke_role(
        &self,
        ctx: &Context<'_>,
        input: GrantRoleInput,
    ) -> async_graphql::Result<OrganizationPayload> {
        role_command(ctx, input, |user_id, role_id| C::RevokeRole {
            user_id,
            role_id,
        })
        .await
    }

    /// `developer:manage`: certifies a member as a developer.
    async fn certify_developer(
        &self,
        ctx: &Context<'_>,
        input: MemberInput,
    ) -> async_graphql::Result<OrganizationPayload> {
        let org = uuid("organizationId", &input.organization_id)?;
        let user_id = uuid("userId", &input.user_id)?;
        org_command(ctx, org, C::CertifyDeveloper { user_id }).await
    }
}

/// Grants or revokes a role of a member.
async fn role_command(
    ctx: &Context<'_>,
    input: GrantRoleInput,
    command: impl FnOnce(Uuid, String) -> C,
) -> async_graphql::Result<OrganizationPayload> {
    let org = uuid("organizationId", &input.organization_id)?;
    let user_id = uuid("userId", &input.user_id)?;
    org_command(ctx, org, command(user_id, input.role_id.0)).await
}

async fn invitation_command(
    ctx: &Context<'_>,
    id: &ID,
    command: impl FnOnce(Uuid) -> C,
) -> async_graphql::Result<InvitationPayload> {
    let svc: &Service = svc(ctx);
    let invitation_id = uuid("invitationId", id)?;
    let org = svc.owner_of("invitation", invitation_id)?;
    let payload = org_command(ctx, org, command(invitation_id)).await?;
    Ok(InvitationPayload {
        invitation: payload.organization.invitation_node(svc, invitation_id)?,
        position: payload.position,
    })
}
