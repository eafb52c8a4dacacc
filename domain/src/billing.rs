//! Billing of one organization — stream `billing-<org_id>`.
//!
//! The plan subscription (plan, seats, period), payment methods (brand, last 4 digits
//! and expiry only — never a card number), billing information, orders and invoices.
//! Invoice numbers are sequential per organization; an invoice's total is the sum of
//! its lines; an invoice is paid or voided once, and only while open. Changing to a
//! paid plan invoices the prorated rest of the period; the plan's credits are granted
//! by the process that follows billing (see `process`).

use crate::aggregate::Aggregate;
use crate::amounts::{Cents, Credits};
use crate::context::{Actor, Context};
use crate::error::DomainError;
use crate::events::*;
use crate::permissions::Permission;
use crate::plans::{self, CREDITS_PER_CENT, CURRENCY, FREE, Plan};
use crate::validate;
use std::collections::BTreeMap;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

/// Card brands accepted, in their stored spelling.
pub const CARD_BRANDS: &[&str] = &[
    "visa",
    "mastercard",
    "amex",
    "discover",
    "jcb",
    "diners",
    "unionpay",
];
/// Payment methods per organization.
pub const PAYMENT_METHODS_MAX: usize = 10;
/// Days between an invoice's issue and its due date.
pub const INVOICE_DUE_DAYS: i64 = 14;
/// The SKU of purchased credits; its quantity is the number of credits.
pub const CREDITS_SKU: &str = "credits";
/// Most credits one purchase may buy (10 million dollars' worth).
pub const PURCHASE_CREDITS_MAX: u64 = 10_000_000_000;

#[derive(Clone, Debug, PartialEq)]
pub enum BillingCommand {
    StartSubscription {
        plan: String,
        seats: u32,
    },
    /// `seats_used`: members taking a seat now (from the organization).
    ChangePlan {
        plan: String,
        seats: u32,
        seats_used: u32,
    },
    CancelSubscription,
    Renew,
    AddPaymentMethod {
        payment_method_id: Uuid,
        brand: String,
        last4: String,
        exp_month: u8,
        exp_year: u16,
        make_default: bool,
    },
    RemovePaymentMethod {
        payment_method_id: Uuid,
    },
    SetDefaultPaymentMethod {
        payment_method_id: Uuid,
    },
    UpdateBillingInformation {
        company: Option<String>,
        tax_id: Option<String>,
        address: Option<String>,
        email: Option<String>,
    },
    PurchaseCredits {
        amount: Credits,
    },
    PayInvoice {
        invoice_id: Uuid,
        payment_method_id: Option<Uuid>,
    },
    VoidInvoice {
        invoice_id: Uuid,
        reason: Option<String>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Subscription {
    pub plan: String,
    pub seats: u32,
    pub period_start: OffsetDateTime,
    pub period_end: OffsetDateTime,
    pub cancel_at_period_end: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PaymentMethod {
    pub id: Uuid,
    pub brand: String,
    pub last4: String,
    pub exp_month: u8,
    pub exp_year: u16,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum InvoiceStatus {
    Open,
    Paid,
    Void,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Invoice {
    pub id: Uuid,
    pub order_id: Uuid,
    pub number: String,
    pub lines: Vec<InvoiceLine>,
    pub total: Cents,
    pub due_at: OffsetDateTime,
    pub status: InvoiceStatus,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BillingInfo {
    pub company: Option<String>,
    pub tax_id: Option<String>,
    pub address: Option<String>,
    pub email: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Billing {
    pub subscription: Option<Subscription>,
    pub payment_methods: Vec<PaymentMethod>,
    pub default_payment_method: Option<Uuid>,
    pub info: BillingInfo,
    pub orders: BTreeMap<Uuid, Vec<OrderItem>>,
    /// In issue order.
    pub invoices: Vec<Invoice>,
}

/// `t` plus one calendar month, the day clamped to the month's length.
pub fn add_month(t: OffsetDateTime) -> OffsetDateTime {
    let (y, m) = if t.month() == time::Month::December {
        (t.year() + 1, time::Month::January)
    } else {
        (t.year(), t.month().next())
    };
    let day = t.day().min(m.length(y));
    time::Date::from_calendar_date(y, m, day)
        .map(|d| t.replace_date(d))
        .unwrap_or(t + Duration::days(30))
}

/// `price × seats × remaining / period`, rounded up to the cent.
fn prorated(plan: &Plan, seats: u32, now: OffsetDateTime, s: &Subscription) -> Cents {
    let full = u128::from(plan.price_per_seat_month.0) * u128::from(seats);
    let period = (s.period_end - s.period_start).whole_seconds().max(1) as u128;
    let remaining = (s.period_end - now).whole_seconds().clamp(0, period as i64) as u128;
    Cents(
        (full * remaining)
            .div_ceil(period)
            .min(u128::from(u64::MAX)) as u64,
    )
}

impl Billing {
    pub fn plan(&self) -> &'static Plan {
        self.subscription
            .as_ref()
            .and_then(|s| plans::plan(&s.plan).ok())
            .unwrap_or(&FREE)
    }

    pub fn seats(&self) -> u32 {
        self.subscription
            .as_ref()
            .map_or(FREE.seats_min, |s| s.seats)
    }

    pub fn invoice(&self, id: Uuid) -> Result<&Invoice, DomainError> {
        self.invoices
            .iter()
            .find(|i| i.id == id)
            .ok_or_else(|| DomainError::not_found("invoice", id))
    }

    /// Credits a credits invoice buys once paid (none for other invoices).
    pub fn credits_bought_by(&self, invoice_id: Uuid) -> Option<Credits> {
        let inv = self.invoice(invoice_id).ok()?;
        let credits: u64 = self
            .orders
            .get(&inv.order_id)?
            .iter()
            .filter(|i| i.sku == CREDITS_SKU)
            .map(|i| i.quantity)
            .sum();
        (credits > 0).then_some(Credits(credits))
    }

    fn payment_method(&self, id: Uuid) -> Result<&PaymentMethod, DomainError> {
        self.payment_methods
            .iter()
            .find(|p| p.id == id)
            .ok_or_else(|| DomainError::not_found("payment method", id))
    }

    fn subscription(&self) -> Result<&Subscription, DomainError> {
        self.subscription
            .as_ref()
            .ok_or_else(|| DomainError::not_found("subscription", "(none)"))
    }

    /// An order and its invoice, as the events of one decision.
    fn invoice_events(
        &self,
        ctx: &Context,
        items: Vec<OrderItem>,
        description: String,
        amount: Cents,
    ) -> Vec<Event> {
        let (order_id, invoice_id) = (ctx.new_id(1), ctx.new_id(2));
        let number = format!("INV-{:06}", self.invoices.len() + 1);
        let line = InvoiceLine {
            description,
            quantity: 1,
            unit_amount: amount,
            amount,
        };
        vec![
            OrderPlaced {
                order_id,
                items,
                amount,
                currency: CURRENCY.into(),
            }
            .into(),
            InvoiceIssued {
                invoice_id,
                order_id,
                number,
                lines: vec![line],
                total: amount,
                currency: CURRENCY.into(),
                due_at: ctx.now + Duration::days(INVOICE_DUE_DAYS),
            }
            .into(),
        ]
    }

    fn plan_invoice(
        &self,
        ctx: &Context,
        plan: &Plan,
        seats: u32,
        amount: Cents,
        what: &str,
    ) -> Vec<Event> {
        if amount.is_zero() {
            return vec![];
        }
        let items = vec![OrderItem {
            sku: format!("plan:{}", plan.id),
            quantity: u64::from(seats),
            unit_amount: plan.price_per_seat_month,
        }];
        self.invoice_events(
            ctx,
            items,
            format!("{} plan, {seats} seats, {what}", plan.id),
            amount,
        )
    }

    fn change_plan(
        &self,
        plan_id: &str,
        seats: u32,
        seats_used: u32,
        ctx: &Context,
    ) -> Result<Vec<Event>, DomainError> {
        let s = self.subscription()?;
        let plan = plans::plan(plan_id)?;
        plan.check_seats(seats)?;
        if seats < seats_used {
            return Err(DomainError::invalid(
                "seats",
                format!("{seats_used} members take a seat"),
            ));
        }
        if plan.id == s.plan && seats == s.seats {
            return Ok(vec![]);
        }
        let mut events: Vec<Event> = vec![
            SubscriptionPlanChanged {
                from_plan: s.plan.clone(),
                to_plan: plan.id.into(),
                seats,
                effective_at: ctx.now,
            }
            .into(),
        ];
        events.extend(self.plan_invoice(
            ctx,
            plan,
            seats,
            prorated(plan, seats, ctx.now, s),
            "prorated to the period end",
        ));
        Ok(events)
    }

    fn renew(&self, ctx: &Context) -> Result<Vec<Event>, DomainError> {
        let s = self.subscription()?;
        if ctx.now < s.period_end {
            return Err(DomainError::wrong_state(
                "subscription",
                "in its period",
                "renew",
            ));
        }
        let mut events = Vec::new();
        let (plan, seats) = if s.cancel_at_period_end && s.plan != FREE.id {
            events.push(
                SubscriptionPlanChanged {
                    from_plan: s.plan.clone(),
                    to_plan: FREE.id.into(),
                    seats: FREE.seats_min,
                    effective_at: s.period_end,
                }
                .into(),
            );
            (&FREE, FREE.seats_min)
        } else {
            (self.plan(), s.seats)
        };
        let period_start = s.period_end;
        events.push(
            SubscriptionRenewed {
                period_start,
                period_end: add_month(period_start),
            }
            .into(),
        );
        let full = Cents(plan.price_per_seat_month.0.saturating_mul(u64::from(seats)));
        events.extend(self.plan_invoice(ctx, plan, seats, full, "monthly"));
        Ok(events)
    }

    fn add_payment_method(
        &self,
        c: &BillingCommand,
        ctx: &Context,
    ) -> Result<Vec<Event>, DomainError> {
        let BillingCommand::AddPaymentMethod {
            payment_method_id,
            brand,
            last4,
            exp_month,
            exp_year,
            make_default,
        } = c
        else {
            return Ok(vec![]);
        };
        if self
            .payment_methods
            .iter()
            .any(|p| p.id == *payment_method_id)
        {
            return Err(DomainError::exists("payment method", payment_method_id));
        }
        if self.payment_methods.len() >= PAYMENT_METHODS_MAX {
            return Err(DomainError::invalid(
                "paymentMethods",
                format!("at most {PAYMENT_METHODS_MAX}"),
            ));
        }
        let brand = brand.trim().to_lowercase();
        if !CARD_BRANDS.contains(&brand.as_str()) {
            return Err(DomainError::invalid(
                "brand",
                format!("must be one of {}", CARD_BRANDS.join(", ")),
            ));
        }
        if last4.len() != 4 || !last4.bytes().all(|b| b.is_ascii_digit()) {
            return Err(DomainError::invalid(
                "last4",
                "must be exactly 4 digits (never a card number)",
            ));
        }
        if !(1..=12).contains(exp_month) || !(2000..=2100).contains(exp_year) {
            return Err(DomainError::invalid(
                "expiry",
                "month 1–12, four-digit year",
            ));
        }
        if (i32::from(*exp_year), *exp_month) < (ctx.now.year(), u8::from(ctx.now.month())) {
            return Err(DomainError::invalid("expiry", "the card has expired"));
        }
        let mut events: Vec<Event> = vec![
            PaymentMethodAdded {
                payment_method_id: *payment_method_id,
                brand,
                last4: last4.clone(),
                exp_month: *exp_month,
                exp_year: *exp_year,
            }
            .into(),
        ];
        if *make_default || self.default_payment_method.is_none() {
            events.push(
                PaymentMethodDefaultSet {
                    payment_method_id: *payment_method_id,
                }
                .into(),
            );
        }
        Ok(events)
    }

    fn update_info(&self, c: &BillingCommand) -> Result<Vec<Event>, DomainError> {
        let BillingCommand::UpdateBillingInformation {
            company,
            tax_id,
            address,
            email,
        } = c
        else {
            return Ok(vec![]);
        };
        let text =
            |f, v: &Option<String>, old: &Option<String>| -> Result<Option<String>, DomainError> {
                match v.as_deref().map(str::trim) {
                    Some("") => Ok(None),
                    Some(s) => validate::text(f, s, 500).map(Some),
                    None => Ok(old.clone()),
                }
            };
        let email = match email.as_deref().map(str::trim) {
            Some("") => None,
            Some(e) => Some(validate::email("email", e)?),
            None => self.info.email.clone(),
        };
        let next = BillingInfo {
            company: text("company", company, &self.info.company)?,
            tax_id: text("taxId", tax_id, &self.info.tax_id)?,
            address: text("address", address, &self.info.address)?,
            email,
        };
        if next == self.info {
            return Ok(vec![]);
        }
        Ok(vec![
            BillingInfoUpdated {
                company: next.company,
                tax_id: next.tax_id,
                address: next.address,
                email: next.email,
            }
            .into(),
        ])
    }

    fn open_invoice(&self, id: Uuid, action: &'static str) -> Result<&Invoice, DomainError> {
        let inv = self.invoice(id)?;
        match inv.status {
            InvoiceStatus::Open => Ok(inv),
            InvoiceStatus::Paid => Err(DomainError::wrong_state("invoice", "paid", action)),
            InvoiceStatus::Void => Err(DomainError::wrong_state("invoice", "void", action)),
        }
    }

    fn pay(
        &self,
        invoice_id: Uuid,
        pm: Option<Uuid>,
        ctx: &Context,
    ) -> Result<Vec<Event>, DomainError> {
        self.open_invoice(invoice_id, "pay")?;
        let pm_id = pm
            .or(self.default_payment_method)
            .ok_or_else(|| DomainError::invalid("paymentMethodId", "no payment method on file"))?;
        let card = self.payment_method(pm_id)?;
        if (i32::from(card.exp_year), card.exp_month) < (ctx.now.year(), u8::from(ctx.now.month()))
        {
            return Err(DomainError::invalid(
                "paymentMethodId",
                "the card has expired",
            ));
        }
        Ok(vec![
            InvoicePaid {
                invoice_id,
                payment_method_id: Some(pm_id),
            }
            .into(),
        ])
    }
}

impl Aggregate for Billing {
    type Command = BillingCommand;

    fn apply(&mut self, event: &Event) {
        match event {
            Event::SubscriptionStarted(e) => {
                self.subscription = Some(Subscription {
                    plan: e.plan.clone(),
                    seats: e.seats,
                    period_start: e.period_start,
                    period_end: e.period_end,
                    cancel_at_period_end: false,
                })
            }
            Event::SubscriptionPlanChanged(e) => {
                if let Some(s) = &mut self.subscription {
                    s.plan = e.to_plan.clone();
                    s.seats = e.seats;
                    s.cancel_at_period_end = false;
                }
            }
            Event::SubscriptionRenewed(e) => {
                if let Some(s) = &mut self.subscription {
                    s.period_start = e.period_start;
                    s.period_end = e.period_end;
                }
            }
            Event::SubscriptionCancelled(e) => {
                if let Some(s) = &mut self.subscription {
                    s.cancel_at_period_end = e.at_period_end;
                }
            }
            Event::PaymentMethodAdded(e) => self.payment_methods.push(PaymentMethod {
                id: e.payment_method_id,
                brand: e.brand.clone(),
                last4: e.last4.clone(),
                exp_month: e.exp_month,
                exp_year: e.exp_year,
            }),
            Event::PaymentMethodRemoved(e) => {
                self.payment_methods.retain(|p| p.id != e.payment_method_id);
                if self.default_payment_method == Some(e.payment_method_id) {
                    self.default_payment_method = None;
                }
            }
            Event::PaymentMethodDefaultSet(e) => {
                self.default_payment_method = Some(e.payment_method_id)
            }
            Event::BillingInfoUpdated(e) => {
                self.info = BillingInfo {
                    company: e.company.clone(),
                    tax_id: e.tax_id.clone(),
                    address: e.address.clone(),
                    email: e.email.clone(),
                }
            }
            Event::OrderPlaced(e) => {
                self.orders.insert(e.order_id, e.items.clone());
            }
            Event::InvoiceIssued(e) => {
                debug_assert_eq!(
                    e.lines.iter().map(|l| l.amount.0).sum::<u64>(),
                    e.total.0,
                    "an invoice's total is the sum of its lines"
                );
                self.invoices.push(Invoice {
                    id: e.invoice_id,
                    order_id: e.order_id,
                    number: e.number.clone(),
                    lines: e.lines.clone(),
                    total: e.total,
                    due_at: e.due_at,
                    status: InvoiceStatus::Open,
                });
            }
            Event::InvoicePaid(e) => self.set_status(e.invoice_id, InvoiceStatus::Paid),
            Event::InvoiceVoided(e) => self.set_status(e.invoice_id, InvoiceStatus::Void),
            _ => {}
        }
    }

    fn decide(&self, command: &BillingCommand, ctx: &Context) -> Result<Vec<Event>, DomainError> {
        use BillingCommand as C;
        match command {
            C::StartSubscription { plan, seats } => {
                if ctx.actor != Actor::System {
                    return Err(DomainError::NotPermitted(
                        "subscriptions start with the organization",
                    ));
                }
                if self.subscription.is_some() {
                    return Err(DomainError::exists("subscription", plan));
                }
                plans::plan(plan)?.check_seats(*seats)?;
                Ok(vec![
                    SubscriptionStarted {
                        plan: plan.clone(),
                        seats: *seats,
                        period_start: ctx.now,
                        period_end: add_month(ctx.now),
                    }
                    .into(),
                ])
            }
            C::Renew => {
                if ctx.actor != Actor::System {
                    return Err(DomainError::NotPermitted(
                        "subscriptions renew on their own",
                    ));
                }
                self.renew(ctx)
            }
            other => {
                ctx.require(Permission::BillingManage)?;
                match other {
                    C::ChangePlan {
                        plan,
                        seats,
                        seats_used,
                    } => self.change_plan(plan, *seats, *seats_used, ctx),
                    C::CancelSubscription => {
                        let s = self.subscription()?;
                        if s.plan == FREE.id {
                            return Err(DomainError::wrong_state("subscription", "free", "cancel"));
                        }
                        if s.cancel_at_period_end {
                            return Err(DomainError::wrong_state(
                                "subscription",
                                "cancelled",
                                "cancel",
                            ));
                        }
                        Ok(vec![
                            SubscriptionCancelled {
                                at_period_end: true,
                            }
                            .into(),
                        ])
                    }
                    C::AddPaymentMethod { .. } => self.add_payment_method(other, ctx),
                    C::RemovePaymentMethod { payment_method_id } => {
                        self.payment_method(*payment_method_id)?;
                        Ok(vec![
                            PaymentMethodRemoved {
                                payment_method_id: *payment_method_id,
                            }
                            .into(),
                        ])
                    }
                    C::SetDefaultPaymentMethod { payment_method_id } => {
                        self.payment_method(*payment_method_id)?;
                        if self.default_payment_method == Some(*payment_method_id) {
                            return Ok(vec![]);
                        }
                        Ok(vec![
                            PaymentMethodDefaultSet {
                                payment_method_id: *payment_method_id,
                            }
                            .into(),
                        ])
                    }
                    C::UpdateBillingInformation { .. } => self.update_info(other),
                    C::PurchaseCredits { amount } => {
                        if amount.is_zero() || amount.0 > PURCHASE_CREDITS_MAX {
                            return Err(DomainError::invalid(
                                "amount",
                                format!("must be 1 to {PURCHASE_CREDITS_MAX}"),
                            ));
                        }
                        let cost = Cents(amount.0.div_ceil(CREDITS_PER_CENT));
                        let items = vec![OrderItem {
                            sku: CREDITS_SKU.into(),
                            quantity: amount.0,
                            unit_amount: Cents::ZERO,
                        }];
                        Ok(self.invoice_events(ctx, items, format!("{amount} credits"), cost))
                    }
                    C::PayInvoice {
                        invoice_id,
                        payment_method_id,
                    } => self.pay(*invoice_id, *payment_method_id, ctx),
                    C::VoidInvoice { invoice_id, reason } => {
                        self.open_invoice(*invoice_id, "void")?;
                        let reason = reason
                            .as_deref()
                            .map(|r| validate::text("reason", r, 500))
                            .transpose()?;
                        Ok(vec![
                            InvoiceVoided {
                                invoice_id: *invoice_id,
                                reason,
                            }
                            .into(),
                        ])
                    }
                    C::StartSubscription { .. } | C::Renew => Ok(vec![]),
                }
            }
        }
    }
}

impl Billing {
    fn set_status(&mut self, id: Uuid, status: InvoiceStatus) {
        if let Some(i) = self.invoices.iter_mut().find(|i| i.id == id) {
            i.status = status;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::testing::{ctx, given, now};

    const PM: Uuid = Uuid::from_u128(80);

    fn started() -> Event {
        SubscriptionStarted {
            plan: "free".into(),
            seats: 5,
            period_start: now(),
            period_end: add_month(now()),
        }
        .into()
    }
    fn manager() -> Context {
        ctx(
            Actor::User(Uuid::from_u128(1)),
            &[Permission::BillingManage],
        )
    }
    fn card(id: Uuid, last4: &str, year: u16, default: bool) -> BillingCommand {
        BillingCommand::AddPaymentMethod {
            payment_method_id: id,
            brand: "Visa".into(),
            last4: last4.into(),
            exp_month: 12,
            exp_year: year,
            make_default: default,
        }
    }
    fn decided(history: &[Event], cmd: BillingCommand, c: &Context) -> Vec<Event> {
        let mut all = history.to_vec();
        all.extend(Billing::replay(history).decide(&cmd, c).unwrap());
        all
    }

    #[test]
    fn a_new_organization_starts_on_free_for_a_month() {
        given::<Billing>([])
            .when(BillingCommand::StartSubscription {
                plan: "free".into(),
                seats: 5,
            })
            .then([started()]);
        given::<Billing>([started()])
            .when(BillingCommand::StartSubscription {
                plan: "free".into(),
                seats: 5,
            })
            .then_err(DomainError::exists("subscription", "free"));
        given::<Billing>([])
            .with(manager())
            .when(BillingCommand::StartSubscription {
                plan: "free".into(),
                seats: 5,
            })
            .then_err(DomainError::NotPermitted(
                "subscriptions start with the organization",
            ));
    }

    #[test]
    fn changing_to_a_paid_plan_invoices_the_prorated_rest_of_the_period() {
        let mid = Context {
            now: now() + (add_month(now()) - now()) / 2,
            ..manager()
        };
        let events = given::<Billing>([started()])
            .with(mid)
            .when(BillingCommand::ChangePlan {
                plan: "team".into(),
                seats: 10,
                seats_used: 3,
            })
            .result()
            .unwrap();
        assert!(
            matches!(&events[0], Event::SubscriptionPlanChanged(c) if c.to_plan == "team" && c.seats == 10)
        );
        let Event::InvoiceIssued(inv) = &events[2] else {
            panic!("{events:?}")
        };
        assert_eq!(inv.total, Cents(7_500), "half of 10 seats × 1,500");
        assert_eq!(inv.number, "INV-000001");
        assert_eq!(
            inv.lines.iter().map(|l| l.amount.0).sum::<u64>(),
            inv.total.0
        );
    }

    #[test]
    fn seats_stay_within_the_plan_and_above_those_in_use() {
        given::<Billing>([started()])
            .with(manager())
            .when(BillingCommand::ChangePlan {
                plan: "team".into(),
                seats: 51,
                seats_used: 1,
            })
            .then_err(DomainError::invalid(
                "seats",
                "plan team takes 1 to 50 seats",
            ));
        given::<Billing>([started()])
            .with(manager())
            .when(BillingCommand::ChangePlan {
                plan: "team".into(),
                seats: 2,
                seats_used: 3,
            })
            .then_err(DomainError::invalid("seats", "3 members take a seat"));
        given::<Billing>([started()])
            .with(manager())
            .when(BillingCommand::ChangePlan {
                plan: "gold".into(),
                seats: 2,
                seats_used: 1,
            })
            .then_err(DomainError::invalid("plan", "unknown plan \"gold\""));
        given::<Billing>([started()])
            .with(ctx(
                Actor::User(Uuid::from_u128(1)),
                &[Permission::BillingRead],
            ))
            .when(BillingCommand::ChangePlan {
                plan: "team".into(),
                seats: 2,
                seats_used: 1,
            })
            .then_err(DomainError::Forbidden(Permission::BillingManage));
    }

    #[test]
    fn cards_hold_brand_last4_and_an_unexpired_expiry_only() {
        given::<Billing>([started()])
            .with(manager())
            .when(card(PM, "4242", 2030, false))
            .then([
                PaymentMethodAdded {
                    payment_method_id: PM,
                    brand: "visa".into(),
                    last4: "4242".into(),
                    exp_month: 12,
                    exp_year: 2030,
                }
                .into(),
                PaymentMethodDefaultSet {
                    payment_method_id: PM,
                }
                .into(),
            ]);
        for bad in ["424", "42424", "4242424242424242", "42a2"] {
            given::<Billing>([started()])
                .with(manager())
                .when(card(PM, bad, 2030, false))
                .then_err(DomainError::invalid(
                    "last4",
                    "must be exactly 4 digits (never a card number)",
                ));
        }
        given::<Billing>([started()])
            .with(manager())
            .when(card(PM, "4242", 2025, false))
            .then_err(DomainError::invalid("expiry", "the card has expired"));
    }

    #[test]
    fn invoice_numbers_are_sequential_and_an_invoice_is_paid_or_voided_once() {
        let m = manager();
        let mut h = decided(&[started()], card(PM, "4242", 2030, true), &m);
        h = decided(
            &h,
            BillingCommand::PurchaseCredits {
                amount: Credits(1_001),
            },
            &m,
        );
        h = decided(
            &h,
            BillingCommand::PurchaseCredits {
                amount: Credits(50),
            },
            &Context {
                id_seed: 99,
                ..m.clone()
            },
        );
        let b = Billing::replay(&h);
        assert_eq!(
            b.invoices
                .iter()
                .map(|i| i.number.as_str())
                .collect::<Vec<_>>(),
            ["INV-000001", "INV-000002"]
        );
        assert_eq!(
            b.invoices[0].total,
            Cents(101),
            "1 cent per 10 credits, rounded up"
        );
        let first = b.invoices[0].id;
        assert_eq!(b.credits_bought_by(first), Some(Credits(1_001)));
        given::<Billing>(h.clone())
            .with(m.clone())
            .when(BillingCommand::PayInvoice {
                invoice_id: first,
                payment_method_id: None,
            })
            .then([InvoicePaid {
                invoice_id: first,
                payment_method_id: Some(PM),
            }
            .into()]);
        let paid = decided(
            &h,
            BillingCommand::PayInvoice {
                invoice_id: first,
                payment_method_id: None,
            },
            &m,
        );
        given::<Billing>(paid.clone())
            .with(m.clone())
            .when(BillingCommand::PayInvoice {
                invoice_id: first,
                payment_method_id: None,
            })
            .then_err(DomainError::wrong_state("invoice", "paid", "pay"));
        given::<Billing>(paid)
            .with(m)
            .when(BillingCommand::VoidInvoice {
                invoice_id: first,
                reason: None,
            })
            .then_err(DomainError::wrong_state("invoice", "paid", "void"));
    }

    #[test]
    fn paying_needs_a_card_on_file() {
        let h = decided(
            &[started()],
            BillingCommand::PurchaseCredits {
                amount: Credits(10),
            },
            &manager(),
        );
        let id = Billing::replay(&h).invoices[0].id;
        given::<Billing>(h)
            .with(manager())
            .when(BillingCommand::PayInvoice {
                invoice_id: id,
                payment_method_id: None,
            })
            .then_err(DomainError::invalid(
                "paymentMethodId",
                "no payment method on file",
            ));
    }

    #[test]
    fn a_cancelled_plan_falls_back_to_free_at_renewal() {
        let m = manager();
        let mut h = decided(
            &[started()],
            BillingCommand::ChangePlan {
                plan: "team".into(),
                seats: 3,
                seats_used: 1,
            },
            &m,
        );
        h = decided(&h, BillingCommand::CancelSubscription, &m);
        given::<Billing>(h.clone())
            .when(BillingCommand::Renew)
            .then_err(DomainError::wrong_state(
                "subscription",
                "in its period",
                "renew",
            ));
        let later = Context::system(add_month(now()), 3);
        let renewed = decided(&h, BillingCommand::Renew, &later);
        let b = Billing::replay(&renewed);
        assert_eq!(b.plan().id, "free");
        assert_eq!(
            b.subscription.as_ref().map(|s| s.period_start),
            Some(add_month(now()))
        );
        given::<Billing>([started()])
            .with(m)
            .when(BillingCommand::CancelSubscription)
            .then_err(DomainError::wrong_state("subscription", "free", "cancel"));
    }

    #[test]
    fn billing_information_records_only_changes() {
        let set = BillingCommand::UpdateBillingInformation {
            company: Some("Acme".into()),
            tax_id: None,
            address: None,
            email: Some("Billing@Acme.test".into()),
        };
        given::<Billing>([started()])
            .with(manager())
            .when(set.clone())
            .then([BillingInfoUpdated {
                company: Some("Acme".into()),
                tax_id: None,
                address: None,
                email: Some("billing@acme.test".into()),
            }
            .into()]);
        let h = decided(&[started()], set.clone(), &manager());
        given::<Billing>(h).with(manager()).when(set).then([]);
    }

    #[test]
    fn months_add_with_the_day_clamped() {
        assert_eq!(
            add_month(time::macros::datetime!(2026-01-31 10:00 UTC)),
            time::macros::datetime!(2026-02-28 10:00 UTC)
        );
        assert_eq!(
            add_month(time::macros::datetime!(2026-12-15 10:00 UTC)),
            time::macros::datetime!(2027-01-15 10:00 UTC)
        );
    }
}
