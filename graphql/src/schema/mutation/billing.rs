//! Plans, payment methods, billing information, invoices, credits, alerts and limits.

use super::organization::OrganizationIdInput;
use super::payloads::*;
use crate::error::{ApiError, ApiResult};
use crate::schema::scalars::*;
use crate::schema::types::{InvoiceNode, OrgNode, PaymentMethodNode, PlanSubscription, UsageNode};
use crate::schema::{access, svc};
use crate::service::{Access, Service};
use async_graphql::{Context, ID, InputObject, Object};
use domain::billing::{Billing, BillingCommand as B};
use domain::events::GrantSource;
use domain::ledger::{ConsumeMode, CreditsCommand, Ledger};
use domain::{Actor, Credits, Event, streams};
use uuid::Uuid;

#[derive(InputObject)]
pub struct ChangePlanInput {
    pub organization_id: ID,
    pub plan: String,
    pub seats: i32,
}

#[derive(InputObject)]
pub struct AddPaymentMethodInput {
    pub organization_id: ID,
    pub brand: String,
    pub last4: String,
    pub exp_month: i32,
    pub exp_year: i32,
    pub make_default: Option<bool>,
}

#[derive(InputObject)]
pub struct PaymentMethodIdInput {
    pub organization_id: ID,
    pub payment_method_id: ID,
}

#[derive(InputObject)]
pub struct UpdateBillingInformationInput {
    pub organization_id: ID,
    pub company: Option<String>,
    pub tax_id: Option<String>,
    pub address: Option<String>,
    pub email: Option<String>,
}

#[derive(InputObject)]
pub struct PayInvoiceInput {
    pub organization_id: ID,
    pub invoice_id: ID,
    pub payment_method_id: Option<ID>,
}

#[derive(InputObject)]
pub struct InvoiceIdInput {
    pub organization_id: ID,
    pub invoice_id: ID,
}

#[derive(InputObject)]
pub struct PurchaseCreditsInput {
    pub organization_id: ID,
    pub amount: String,
}

#[derive(InputObject)]
pub struct GrantCreditsInput {
    pub organization_id: ID,
    pub amount: String,
    pub source: String,
    pub expires_at: Option<DateTime>,
}

#[derive(InputObject)]
pub struct ConsumeCreditsInput {
    pub organization_id: ID,
    pub amount: String,
    pub bot_id: ID,
    pub run_id: Option<ID>,
    pub key: String,
}

#[derive(InputObject)]
pub struct SetUsageAlertInput {
    pub organization_id: ID,
    pub threshold: String,
    pub webhook_url: Option<String>,
}

#[derive(InputObject)]
pub struct UsageAlertIdInput {
    pub organization_id: ID,
    pub alert_id: ID,
}

#[derive(InputObject)]
pub struct SetUsageLimitInput {
    pub organization_id: ID,
    pub limit: String,
}

#[derive(Default)]
pub struct BillingMutation;

fn org_access(ctx: &Context<'_>, id: &ID) -> ApiResult<Access> {
    access(ctx, uuid("organizationId", id)?)
}

async fn billing(ctx: &Context<'_>, a: &Access, command: B) -> ApiResult<(Billing, u64)> {
    let svc = svc(ctx);
    let out = svc
        .mutate::<Billing>(&streams::billing(a.org), a, command)
        .await?;
    let b = projections::console::query::billing(&svc.projections.console.tree(), a.org)?;
    Ok((b, out.position))
}

async fn credits(
    ctx: &Context<'_>,
    a: &Access,
    command: CreditsCommand,
) -> ApiResult<UsagePayload> {
    let svc = svc(ctx);
    let out = svc
        .mutate::<Ledger>(&streams::credits(a.org), a, command)
        .await?;
    if let Some(err) = domain::ledger::denial_error(&out.events) {
        // The denial is recorded; the mutation reports it.
        return Err(err.into());
    }
    Ok(usage(a, out.position))
}

fn usage(a: &Access, position: u64) -> UsagePayload {
    UsagePayload {
        usage: UsageNode {
            org: a.org,
            past: None,
        },
        position: Position(position),
    }
}

fn invoice_payload(
    svc: &Service,
    a: &Access,
    b: &Billing,
    id: Uuid,
    position: u64,
) -> ApiResult<InvoicePayload> {
    let inv = b.invoice(id)?;
    Ok(InvoicePayload {
        invoice: InvoiceNode::of(svc, a.org, inv),
        position: Position(position),
    })
}

fn subscription(b: &Billing, position: u64) -> ApiResult<SubscriptionPayload> {
    Ok(SubscriptionPayload {
        subscription: PlanSubscription::of(b, Service::now())
            .ok_or_else(|| ApiError::conflict("the organization has no subscription"))?,
        position: Position(position),
    })
}

fn to_u32(field: &str, v: i32) -> ApiResult<u32> {
    u32::try_from(v).map_err(|_| ApiError::bad_input(format!("{field}: must not be negative")))
}

fn parse_source(s: &str) -> ApiResult<GrantSource> {
    Ok(match s.trim().to_ascii_lowercase().as_str() {
        "plan" => GrantSource::Plan,
        "purchase" => GrantSource::Purchase,
        "promo" => GrantSource::Promo,
        "adjustment" => GrantSource::Adjustment,
        other => {
            return Err(ApiError::bad_input(format!(
                "source: {other:?} is not one of plan, purchase, promo, adjustment"
            )));
        }
    })
}

#[Object]
impl BillingMutation {
    /// `billing:manage`. A paid plan issues an invoice for the rest of the period and
    /// grants the plan's credits.
    async fn change_plan(
        &self,
        ctx: &Context<'_>,
        input: ChangePlanInput,
    ) -> async_graphql::Result<SubscriptionPayload> {
        let a = org_access(ctx, &input.organization_id)?;
        let command = B::ChangePlan {
            plan: input.plan,
            seats: to_u32("seats", input.seats)?,
            seats_used: a.doc.seats_used(),
        };
        let (b, position) = billing(ctx, &a, command).await?;
        Ok(subscription(&b, position)?)
    }

    /// `billing:manage`: cancels at the period end.
    async fn cancel_subscription(
        &self,
        ctx: &Context<'_>,
        input: OrganizationIdInput,
    ) -> async_graphql::Result<SubscriptionPayload> {
        let a = org_access(ctx, &input.organization_id)?;
        let (b, position) = billing(ctx, &a, B::CancelSubscription).await?;
        Ok(subscription(&b, position)?)
    }

    /// `billing:manage`. Brand, last four digits and expiry only — never a card number.
    async fn add_payment_method(
        &self,
        ctx: &Context<'_>,
        input: AddPaymentMethodInput,
    ) -> async_graphql::Result<PaymentMethodPayload> {
        let a = org_access(ctx, &input.organization_id)?;
        let id = Uuid::new_v4();
        let exp_month = u8::try_from(input.exp_month)
            .map_err(|_| ApiError::bad_input("expMonth: must be 1 to 12"))?;
        let exp_year = u16::try_from(input.exp_year)
            .map_err(|_| ApiError::bad_input("expYear: not a year"))?;
        let (b, position) = billing(
            ctx,
            &a,
            B::AddPaymentMethod {
                payment_method_id: id,
                brand: input.brand,
                last4: input.last4,
                exp_month,
                exp_year,
                make_default: input.make_default.unwrap_or(false),
            },
        )
        .await?;
        payment_method(&b, id, position)
    }

    /// `billing:manage`.
    async fn remove_payment_method(
        &self,
        ctx: &Context<'_>,
        input: PaymentMethodIdInput,
    ) -> async_graphql::Result<MutationResult> {
        let a = org_access(ctx, &input.organization_id)?;
        let payment_method_id = uuid("paymentMethodId", &input.payment_method_id)?;
        let (_, position) = billing(ctx, &a, B::RemovePaymentMethod { payment_method_id }).await?;
        Ok(MutationResult {
            ok: true,
            position: Some(Position(position)),
        })
    }

    /// `billing:manage`.
    async fn set_default_payment_method(
        &self,
        ctx: &Context<'_>,
        input: PaymentMethodIdInput,
    ) -> async_graphql::Result<PaymentMethodPayload> {
        let a = org_access(ctx, &input.organization_id)?;
        let payment_method_id = uuid("paymentMethodId", &input.payment_method_id)?;
        let (b, position) =
            billing(ctx, &a, B::SetDefaultPaymentMethod { payment_method_id }).await?;
        payment_method(&b, payment_method_id, position)
    }

    /// `billing:manage`.
    async fn update_billing_information(
        &self,
        ctx: &Context<'_>,
        input: UpdateBillingInformationInput,
    ) -> async_graphql::Result<OrganizationPayload> {
        let a = org_access(ctx, &input.organization_id)?;
        let (_, position) = billing(
            ctx,
            &a,
            B::UpdateBillingInformation {
                company: input.company,
                tax_id: input.tax_id,
                address: input.address,
                email: input.email,
            },
        )
        .await?;
        Ok(OrganizationPayload {
            organization: OrgNode::live(access(ctx, a.org)?),
            position: Position(position),
        })
    }

    /// `billing:manage`: with the given card or the default one.
    async fn pay_invoice(
        &self,
        ctx: &Context<'_>,
        input: PayInvoiceInput,
    ) -> async_graphql::Result<InvoicePayload> {
        let a = org_access(ctx, &input.organization_id)?;
        let invoice_id = uuid("invoiceId", &input.invoice_id)?;
        let payment_method_id = input
            .payment_method_id
            .as_ref()
            .map(|p| uuid("paymentMethodId", p))
            .transpose()?;
        let (b, position) = billing(
            ctx,
            &a,
            B::PayInvoice {
                invoice_id,
                payment_method_id,
            },
        )
        .await?;
        Ok(invoice_payload(svc(ctx), &a, &b, invoice_id, position)?)
    }

    /// `billing:manage`.
    async fn void_invoice(
        &self,
        ctx: &Context<'_>,
        input: InvoiceIdInput,
    ) -> async_graphql::Result<InvoicePayload> {
        let a = org_access(ctx, &input.organization_id)?;
        let invoice_id = uuid("invoiceId", &input.invoice_id)?;
        let (b, position) = billing(
            ctx,
            &a,
            B::VoidInvoice {
                invoice_id,
                reason: None,
            },
        )
        .await?;
        Ok(invoice_payload(svc(ctx), &a, &b, invoice_id, position)?)
    }

    /// `billing:manage`: places an order and issues its invoice; with a default card the
    /// invoice is paid at once and the credits granted (otherwise when it is paid).
    async fn purchase_credits(
        &self,
        ctx: &Context<'_>,
        input: PurchaseCreditsInput,
    ) -> async_graphql::Result<UsagePayload> {
        let a = org_access(ctx, &input.organization_id)?;
        let amount = Credits::parse("amount", &input.amount)?;
        let svc = svc(ctx);
        let out = svc
            .mutate::<Billing>(&streams::billing(a.org), &a, B::PurchaseCredits { amount })
            .await?;
        let mut position = out.position;
        let invoice = out.events.iter().find_map(|e| match e {
            Event::InvoiceIssued(i) => Some(i.invoice_id),
            _ => None,
        });
        let b = projections::console::query::billing(&svc.projections.console.tree(), a.org)?;
        if let (Some(invoice_id), Some(_)) = (invoice, b.default_payment_method) {
            let paid = svc
                .mutate::<Billing>(
                    &streams::billing(a.org),
                    &a,
                    B::PayInvoice {
                        invoice_id,
                        payment_method_id: None,
                    },
                )
                .await?;
            position = paid.position;
        }
        Ok(usage(&a, position))
    }

    /// `credits:manage`.
    async fn grant_credits(
        &self,
        ctx: &Context<'_>,
        input: GrantCreditsInput,
    ) -> async_graphql::Result<UsagePayload> {
        let a = org_access(ctx, &input.organization_id)?;
        let command = CreditsCommand::Grant {
            grant_id: Uuid::new_v4(),
            amount: Credits::parse("amount", &input.amount)?,
            source: parse_source(&input.source)?,
            expires_at: input.expires_at.map(|d| d.0),
        };
        Ok(credits(ctx, &a, command).await?)
    }

    /// The bot's own token (or `credits:manage`); idempotent by `key`;
    /// `LIMIT_EXCEEDED` when denied (the denial is recorded).
    async fn consume_credits(
        &self,
        ctx: &Context<'_>,
        input: ConsumeCreditsInput,
    ) -> async_graphql::Result<UsagePayload> {
        let a = org_access(ctx, &input.organization_id)?;
        let bot_id = uuid("botId", &input.bot_id)?;
        if let Actor::Bot(b) = a.actor
            && b != bot_id
        {
            return Err(ApiError::forbidden("a bot consumes only for itself").into());
        }
        let amount = Credits::parse("amount", &input.amount)?;
        let run_id = input
            .run_id
            .as_ref()
            .map(|r| uuid("runId", r))
            .transpose()?;
        // The bot (and the run) must be the organization's own: a consumption names
        // them in the usage breakdown and the audit trail.
        let svc = svc(ctx);
        let bot = projections::console::query::bot(&svc.projections.console.tree(), a.org, bot_id)?
            .ok_or_else(|| ApiError::not_found(format!("bot {bot_id} not found")))?;
        if !bot.enabled {
            return Err(ApiError::conflict(format!(
                "bot {bot_id} is disabled: a disabled bot consumes no credits"
            ))
            .into());
        }
        if let Some(run) = run_id {
            let view =
                projections::runs::run(&svc.projections.runs.tree(), svc.store.as_ref(), run)
                    .await?;
            if !view.is_some_and(|v| v.org == a.org && v.bot_id == bot_id) {
                return Err(
                    ApiError::not_found(format!("run {run} of bot {bot_id} not found")).into(),
                );
            }
        }
        let command = CreditsCommand::Consume {
            amount,
            bot_id,
            run_id,
            key: input.key,
            mode: ConsumeMode::Strict,
        };
        Ok(credits(ctx, &a, command).await?)
    }

    /// `credits:manage`: an alert when the balance drops below `threshold`.
    async fn set_usage_alert(
        &self,
        ctx: &Context<'_>,
        input: SetUsageAlertInput,
    ) -> async_graphql::Result<UsagePayload> {
        let a = org_access(ctx, &input.organization_id)?;
        if let Some(url) = &input.webhook_url {
            crate::webhook::check_url(url, svc(ctx).config.private_webhooks)?;
        }
        let command = CreditsCommand::SetAlert {
            alert_id: Uuid::new_v4(),
            threshold: Credits::parse("threshold", &input.threshold)?,
            webhook_url: input.webhook_url,
        };
        Ok(credits(ctx, &a, command).await?)
    }

    /// `credits:manage`.
    async fn remove_usage_alert(
        &self,
        ctx: &Context<'_>,
        input: UsageAlertIdInput,
    ) -> async_graphql::Result<UsagePayload> {
        let a = org_access(ctx, &input.organization_id)?;
        let alert_id = uuid("alertId", &input.alert_id)?;
        Ok(credits(ctx, &a, CreditsCommand::RemoveAlert { alert_id }).await?)
    }

    /// `credits:manage`: the monthly hard limit (0 removes it).
    async fn set_usage_limit(
        &self,
        ctx: &Context<'_>,
        input: SetUsageLimitInput,
    ) -> async_graphql::Result<UsagePayload> {
        let a = org_access(ctx, &input.organization_id)?;
        let limit = Credits::parse("limit", &input.limit)?;
        Ok(credits(ctx, &a, CreditsCommand::SetLimit { limit }).await?)
    }
}

fn payment_method(
    b: &Billing,
    id: Uuid,
    position: u64,
) -> async_graphql::Result<PaymentMethodPayload> {
    let (p, d) = b
        .payment_methods_with_default()
        .find(|(p, _)| p.id == id)
        .ok_or_else(|| ApiError::not_found(format!("payment method {id} not found")))?;
    Ok(PaymentMethodPayload {
        payment_method: PaymentMethodNode::of(p, d),
        position: Position(position),
    })
}
