//! `Mutation`, one object per area, merged. Every payload carries `position`: the log
//! position of the mutation's last event (follow-ups included); the mutation returns
//! once every read model covers it.

mod account;
mod billing;
pub(crate) mod bots;
mod organization;
mod payloads;

pub use payloads::*;

use super::types::ProjectionStatusNode;
use super::{svc, viewer};
use crate::error::ApiError;
use async_graphql::{Context, MergedObject, Object};

#[derive(MergedObject, Default)]
pub struct Mutation(
    account::AccountMutation,
    organization::OrganizationMutation,
    bots::BotMutation,
    billing::BillingMutation,
    OpsMutation,
);

#[derive(Default)]
pub struct OpsMutation;

#[Object]
impl OpsMutation {
    /// Rebuilds a projection blue/green. Operator token only.
    async fn rebuild_projection(
        &self,
        ctx: &Context<'_>,
        name: String,
    ) -> async_graphql::Result<ProjectionStatusNode> {
        viewer(ctx)?.require_operator()?;
        let svc = svc(ctx);
        let h = svc
            .projections
            .by_name(&name)
            .ok_or_else(|| ApiError::not_found(format!("no projection named {name:?}")))?;
        h.rebuild().await?;
        Ok(h.status().into())
    }
}
