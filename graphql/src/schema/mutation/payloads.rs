//! Mutation payloads.

use crate::schema::scalars::Position;
use crate::schema::types::*;
use async_graphql::SimpleObject;

#[derive(SimpleObject)]
pub struct MutationResult {
    pub ok: bool,
    pub position: Option<Position>,
}

#[derive(SimpleObject)]
pub struct AuthPayload {
    pub token: String,
    pub user: UserNode,
    pub position: Option<Position>,
}

macro_rules! payload {
    ($name:ident, $field:ident, $ty:ty) => {
        #[derive(SimpleObject)]
        pub struct $name {
            pub $field: $ty,
            pub position: Position,
        }
    };
}

payload!(OrganizationPayload, organization, OrgNode);
payload!(InvitationPayload, invitation, InvitationNode);
payload!(RolePayload, role, RoleNode);
payload!(BotPayload, bot, BotNode);
payload!(RunPayload, run, RunNode);
payload!(TriggerPayload, trigger, TriggerNode);
payload!(AppPayload, app, AppNode);
payload!(SubscriptionPayload, subscription, PlanSubscription);
payload!(PaymentMethodPayload, payment_method, PaymentMethodNode);
payload!(InvoicePayload, invoice, InvoiceNode);
payload!(UsagePayload, usage, UsageNode);

#[derive(SimpleObject)]
pub struct RegisterBotPayload {
    pub bot: BotNode,
    pub bot_token: String,
    pub position: Position,
}
