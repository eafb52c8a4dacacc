//! Billing of one organization — stream `billing-<org_id>`.
//!
//! The plan subscription (plan, seats, period), payment methods (brand, last 4 digits
//! and expiry only — never a card number), billing information, orders and invoices.
//!
//! Rules:
//! - The organization's creation starts it on `free` (the system's
//!   [`BillingCommand::StartSubscription`]); a period runs from its start to the same day
//!   of the next month, the day clamped to the month's length and anchored on the first
//!   period's day (a subscription started on Jan 31 renews on Feb 28, then on Mar 31).
//! - Seats stay within the plan's range and never below the seats members take.
//! - Changing to a paid plan places an order and issues an invoice for the prorated rest
//!   of the period (`price × seats × remaining / period`, rounded up to the cent); the
//!   old plan is not refunded. Cancelling takes effect at the period end, when the
//!   renewal falls back to `free`; a renewal of a paid plan invoices its next period.
//! - Invoice numbers are sequential per organization (`INV-000001`…); an invoice's total
//!   is the sum of its lines; it is due [`INVOICE_DUE_DAYS`] after issue; it is paid or
//!   voided once, and only while open.
//! - Once a card is on file one is the default: the first card becomes it, and removing
//!   the default promotes the card that expires last.
//! - Credits are granted by the process that follows billing (`process`), asking
//!   [`Billing::plan_credit_grant`] and [`Billing::credits_bought_by`].
//!
//! Starting and renewing are the system's; every other command needs `billing:manage`.
//! Reading is the API's business.

use crate::aggregate::Aggregate;
use crate::amounts::{Cents, Credits};
use crate::context::{Actor, Context};
use crate::error::DomainError;
use crate::events::*;
use crate::permissions::Permission;
use crate::plans::{self, CREDITS_PER_CENT, CURRENCY, FREE, Plan};
use crate::validate;
use std::collections::BTreeMap;
use time::{Duration, Month, OffsetDateTime, UtcOffset};
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
/// Other spellings of [`CARD_BRANDS`] that card forms send, as compared: lower case,
/// without spaces, dashes, dots or underscores.
const CARD_BRAND_ALIASES: &[(&str, &str)] = &[
    ("americanexpress", "amex"),
    ("dinersclub", "diners"),
    ("chinaunionpay", "unionpay"),
];
/// Earliest expiry year accepted: older cards are long expired; it also refuses
/// two-digit years.
pub const CARD_YEAR_MIN: u16 = 2000;
/// Latest expiry year accepted: cards are issued for a few years, so a later year is a
/// typing error.
pub const CARD_YEAR_MAX: u16 = 2100;
/// Payment methods per organization: a console lists them on one page.
pub const PAYMENT_METHODS_MAX: usize = 10;
/// Days between an invoice's issue and its due date.
pub const INVOICE_DUE_DAYS: i64 = 14;
/// The SKU of purchased credits; its quantity is the number of credits.
pub const CREDITS_SKU: &str = "credits";
/// The SKU prefix of a plan's seats (`plan:team`); its quantity is the seats.
pub const PLAN_SKU_PREFIX: &str = "plan:";
/// Most credits one purchase may buy (10 million dollars' worth): a larger purchase is
/// a typing error, and the cap keeps every cost far from overflowing.
pub const PURCHASE_CREDITS_MAX: u64 = 10_000_000_000;
/// Longest company name or address: a postal address fits in a few lines.
pub const BILLING_TEXT_CHARS_MAX: usize = 500;
/// Longest tax id: the longest national formats have fewer than 20 characters.
pub const TAX_ID_CHARS_MAX: usize = 50;

#[derive(Clone, Debug, PartialEq)]
pub enum BillingCommand {
    /// The system's, with the organization's creation.
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
    /// At the period end.
    CancelSubscription,
    /// The system's, once the period has ended.
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
    /// `None` keeps a field, an empty string clears it.
    UpdateBillingInformation {
        company: Option<String>,
        tax_id: Option<String>,
        address: Option<String>,
        email: Option<String>,
    },
    PurchaseCredits {
        amount: Credits,
    },
    /// With the given card, or the default one.
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
    /// The first period's start: its day of the month is every period's (absent in
    /// states stored before it existed; the period start stands in).
    #[serde(default)]
    pub billing_anchor: Option<OffsetDateTime>,
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

impl Invoice {
    /// When it was issued: [`INVOICE_DUE_DAYS`] before it is due.
    pub fn issued_at(&self) -> OffsetDateTime {
        self.due_at - Duration::days(INVOICE_DUE_DAYS)
    }
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
    /// In the order added.
    pub payment_methods: Vec<PaymentMethod>,
    pub default_payment_method: Option<Uuid>,
    pub info: BillingInfo,
    /// Each order's items, by order id.
    pub orders: BTreeMap<Uuid, Vec<OrderItem>>,
    /// In issue order: the n-th is `INV-00000n`.
    pub invoices: Vec<Invoice>,
}

/// A card as `AddPaymentMethod` describes it.
struct NewCard<'a> {
    id: Uuid,
    brand: &'a str,
    last4: &'a str,
    exp_month: u8,
    exp_year: u16,
    make_default: bool,
}

// ---------------------------------------------------------------- calendar and money

/// `t` plus `n` calendar months, the day clamped to the month's length.
pub fn add_months(t: OffsetDateTime, n: u32) -> OffsetDateTime {
    let months = i64::from(u8::from(t.month())) - 1 + i64::from(n);
    let year = i64::from(t.year()) + months.div_euclid(12);
    let month = u8::try_from(months.rem_euclid(12) + 1)
        .ok()
        .and_then(|m| Month::try_from(m).ok());
    let date = match (i32::try_from(year).ok(), month) {
        (Some(y), Some(m)) => time::Date::from_calendar_date(y, m, t.day().min(m.length(y))).ok(),
        _ => None,
    };
    // Out of the calendar's range (year 9999): a month of 30 days stands in.
    date.map_or(t + Duration::days(30 * i64::from(n)), |d| t.replace_date(d))
}

/// `t` plus one calendar month, the day clamped to the month's length.
pub fn add_month(t: OffsetDateTime) -> OffsetDateTime {
    add_months(t, 1)
}

/// The first date after `t` that is `anchor` plus whole months: the end of the period
/// that starts at `t`.
fn period_end_after(anchor: OffsetDateTime, t: OffsetDateTime) -> OffsetDateTime {
    let months = (i64::from(t.year()) - i64::from(anchor.year())) * 12
        + i64::from(u8::from(t.month()))
        - i64::from(u8::from(anchor.month()));
    let from = u32::try_from(months.max(0)).unwrap_or(0);
    // The anchored date of `t`'s own month is at most one month short of passing `t`.
    (from..=from.saturating_add(2))
        .map(|n| add_months(anchor, n))
        .find(|end| *end > t)
        .unwrap_or_else(|| add_month(t))
}

/// `price × seats × remaining / period`, rounded up to the cent: what the rest of the
/// subscription's current period costs on `plan` from `now`.
fn prorated(
    plan: &Plan,
    seats: u32,
    now: OffsetDateTime,
    s: &Subscription,
) -> Result<Cents, DomainError> {
    let period = u128::try_from((s.period_end - s.period_start).whole_seconds()).unwrap_or(0);
    if period == 0 {
        return Ok(Cents::ZERO);
    }
    let remaining = u128::try_from((s.period_end - now).whole_seconds())
        .unwrap_or(0)
        .min(period);
    let full = u128::from(plan.price_per_seat_month.0) * u128::from(seats);
    let due = (full * remaining).div_ceil(period);
    debug_assert!(due <= full, "a part of a period costs at most the whole");
    u64::try_from(due)
        .map(Cents)
        .map_err(|_| DomainError::Overflow)
}

/// What `amount` credits cost: a tenth of a cent each, rounded up to the cent.
fn credits_cost(amount: Credits) -> Cents {
    Cents(amount.0.div_ceil(CREDITS_PER_CENT))
}

/// Whether a card expiring in `month`/`year` has expired at `now`: a card is valid
/// through the last day of its expiry month.
fn card_expired(month: u8, year: u16, now: OffsetDateTime) -> bool {
    let now = now.to_offset(UtcOffset::UTC);
    (i32::from(year), month) < (now.year(), u8::from(now.month()))
}

/// A card brand in its stored spelling, or why it is not one.
fn card_brand(brand: &str) -> Result<String, DomainError> {
    let b: String = brand
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '_'))
        .collect();
    let known = CARD_BRANDS.iter().copied().find(|k| *k == b).or_else(|| {
        CARD_BRAND_ALIASES
            .iter()
            .find(|(alias, _)| *alias == b)
            .map(|(_, k)| *k)
    });
    known.map(str::to_owned).ok_or_else(|| {
        DomainError::invalid(
            "brand",
            format!("must be one of {}", CARD_BRANDS.join(", ")),
        )
    })
}

/// An optional text field of an update: `None` keeps `old`, blank clears it.
fn updated_text(
    field: &'static str,
    new: &Option<String>,
    old: &Option<String>,
    max: usize,
) -> Result<Option<String>, DomainError> {
    match new.as_deref().map(str::trim) {
        None => Ok(old.clone()),
        Some("") => Ok(None),
        Some(s) => validate::text(field, s, max).map(Some),
    }
}

// ---------------------------------------------------------------- queries

impl Billing {
    /// The current plan (`free` before the subscription starts).
    pub fn plan(&self) -> &'static Plan {
        self.subscription
            .as_ref()
            .and_then(|s| plans::plan(&s.plan).ok())
            .unwrap_or(&FREE)
    }

    /// Seats the subscription pays for (`free`'s before it starts).
    pub fn seats(&self) -> u32 {
        self.subscription
            .as_ref()
            .map_or(FREE.seats_min, |s| s.seats)
    }

    /// The subscription's status for the API: `past_due` while an open invoice is past
    /// its due date, otherwise `active`; `None` before it starts.
    pub fn subscription_status(&self, now: OffsetDateTime) -> Option<&'static str> {
        self.subscription.as_ref()?;
        let past_due = self
            .invoices
            .iter()
            .any(|i| i.status == InvoiceStatus::Open && i.due_at < now);
        Some(if past_due { "past_due" } else { "active" })
    }

    /// Payment methods in the order added, each with whether it is the default.
    pub fn payment_methods_with_default(&self) -> impl Iterator<Item = (&PaymentMethod, bool)> {
        self.payment_methods
            .iter()
            .map(|p| (p, self.default_payment_method == Some(p.id)))
    }

    pub fn invoice(&self, id: Uuid) -> Result<&Invoice, DomainError> {
        self.invoices
            .iter()
            .find(|i| i.id == id)
            .ok_or_else(|| DomainError::not_found("invoice", id))
    }

    /// The credits a paid credits invoice buys (`None` for an open or void invoice, or
    /// one for something else): the process grants them once the invoice is paid.
    pub fn credits_bought_by(&self, invoice_id: Uuid) -> Option<Credits> {
        let inv = self.invoice(invoice_id).ok()?;
        if inv.status != InvoiceStatus::Paid {
            return None;
        }
        let credits = self
            .orders
            .get(&inv.order_id)?
            .iter()
            .filter(|i| i.sku == CREDITS_SKU)
            .try_fold(0u64, |sum, i| sum.checked_add(i.quantity))?;
        (credits > 0).then_some(Credits(credits))
    }

    /// The plan credits `decided` grants, and when they expire: a renewal, or a change
    /// to another plan, grants the (resulting) plan's `credits_per_period` expiring at
    /// the period end; a change of seats only, and `free`, grant nothing. `self` is the
    /// state right after `decided` (the process asks before anything else is appended).
    pub fn plan_credit_grant(&self, decided: &[Event]) -> Option<(Credits, OffsetDateTime)> {
        let grants = decided.iter().any(|e| match e {
            Event::SubscriptionRenewed(_) => true,
            Event::SubscriptionPlanChanged(c) => c.from_plan != c.to_plan,
            _ => false,
        });
        let s = self.subscription.as_ref()?;
        let credits = self.plan().credits_per_period;
        (grants && !credits.is_zero()).then_some((credits, s.period_end))
    }

    fn payment_method(&self, id: Uuid) -> Result<&PaymentMethod, DomainError> {
        self.payment_methods
            .iter()
            .find(|p| p.id == id)
            .ok_or_else(|| DomainError::not_found("payment method", id))
    }

    fn current_subscription(&self) -> Result<&Subscription, DomainError> {
        self.subscription
            .as_ref()
            .ok_or_else(|| DomainError::not_found("subscription", "(none)"))
    }

    fn open_invoice(&self, id: Uuid, action: &'static str) -> Result<&Invoice, DomainError> {
        let inv = self.invoice(id)?;
        match inv.status {
            InvoiceStatus::Open => Ok(inv),
            InvoiceStatus::Paid => Err(DomainError::wrong_state("invoice", "paid", action)),
            InvoiceStatus::Void => Err(DomainError::wrong_state("invoice", "void", action)),
        }
    }
}

// ---------------------------------------------------------------- decisions

impl Billing {
    /// An order and its invoice, as events of one decision; none for nothing to pay.
    /// The order's amount and the invoice's total are the sum of the lines.
    fn order_and_invoice(
        &self,
        ctx: &Context,
        items: Vec<OrderItem>,
        lines: Vec<InvoiceLine>,
    ) -> Result<Vec<Event>, DomainError> {
        let total = lines
            .iter()
            .try_fold(Cents::ZERO, |sum, l| sum.checked_add(l.amount))?;
        if total.is_zero() {
            return Ok(vec![]);
        }
        debug_assert!(
            lines
                .iter()
                .all(|l| u128::from(l.quantity) * u128::from(l.unit_amount.0)
                    == u128::from(l.amount.0)),
            "every line's amount is its quantity times its unit amount"
        );
        let (order_id, invoice_id) = (ctx.new_id(1), ctx.new_id(2));
        let number = format!("INV-{:06}", self.invoices.len() + 1);
        Ok(vec![
            OrderPlaced {
                order_id,
                items,
                amount: total,
                currency: CURRENCY.into(),
            }
            .into(),
            InvoiceIssued {
                invoice_id,
                order_id,
                number,
                lines,
                total,
                currency: CURRENCY.into(),
                due_at: ctx.now + Duration::days(INVOICE_DUE_DAYS),
            }
            .into(),
        ])
    }

    /// The order of `seats` of `plan`, invoiced as one line of `description` and
    /// `quantity × unit_amount`.
    fn plan_invoice(
        &self,
        ctx: &Context,
        plan: &Plan,
        seats: u32,
        description: String,
        (quantity, unit_amount): (u64, Cents),
    ) -> Result<Vec<Event>, DomainError> {
        let amount = unit_amount
            .0
            .checked_mul(quantity)
            .map(Cents)
            .ok_or(DomainError::Overflow)?;
        let items = vec![OrderItem {
            sku: format!("{PLAN_SKU_PREFIX}{}", plan.id),
            quantity: u64::from(seats),
            unit_amount: plan.price_per_seat_month,
        }];
        let line = InvoiceLine {
            description,
            quantity,
            unit_amount,
            amount,
        };
        self.order_and_invoice(ctx, items, vec![line])
    }

    fn start_subscription(
        &self,
        plan: &str,
        seats: u32,
        ctx: &Context,
    ) -> Result<Vec<Event>, DomainError> {
        if ctx.actor != Actor::System {
            return Err(DomainError::NotPermitted(
                "subscriptions start with the organization",
            ));
        }
        if self.subscription.is_some() {
            return Err(DomainError::exists("subscription", plan));
        }
        let plan = plans::plan(plan)?;
        plan.check_seats(seats)?;
        Ok(vec![
            SubscriptionStarted {
                plan: plan.id.into(),
                seats,
                period_start: ctx.now,
                period_end: add_month(ctx.now),
            }
            .into(),
        ])
    }

    fn change_plan(
        &self,
        plan_id: &str,
        seats: u32,
        seats_used: u32,
        ctx: &Context,
    ) -> Result<Vec<Event>, DomainError> {
        ctx.require(Permission::BillingManage)?;
        let s = self.current_subscription()?;
        let plan = plans::plan(plan_id)?;
        plan.check_seats(seats)?;
        if seats < seats_used {
            return Err(DomainError::invalid(
                "seats",
                format!("{seats_used} members take a seat"),
            ));
        }
        if ctx.now >= s.period_end {
            return Err(DomainError::wrong_state(
                "subscription",
                "due for renewal",
                "change plan",
            ));
        }
        if plan.id == s.plan && seats == s.seats {
            // The same plan again resumes a cancelled subscription; otherwise nothing.
            return Ok(if s.cancel_at_period_end {
                vec![
                    SubscriptionCancelled {
                        at_period_end: false,
                    }
                    .into(),
                ]
            } else {
                vec![]
            });
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
        let amount = prorated(plan, seats, ctx.now, s)?;
        let description = format!(
            "{} plan, {seats} seats, {} to {} (prorated)",
            plan.id,
            ctx.now.date(),
            s.period_end.date()
        );
        events.extend(self.plan_invoice(ctx, plan, seats, description, (1, amount))?);
        Ok(events)
    }

    fn cancel(&self, ctx: &Context) -> Result<Vec<Event>, DomainError> {
        ctx.require(Permission::BillingManage)?;
        let s = self.current_subscription()?;
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

    fn renew(&self, ctx: &Context) -> Result<Vec<Event>, DomainError> {
        if ctx.actor != Actor::System {
            return Err(DomainError::NotPermitted(
                "subscriptions renew on their own",
            ));
        }
        let s = self.current_subscription()?;
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
        let period_end = period_end_after(s.billing_anchor.unwrap_or(s.period_start), period_start);
        events.push(
            SubscriptionRenewed {
                period_start,
                period_end,
            }
            .into(),
        );
        let description = format!(
            "{} plan, {seats} seats, {} to {}",
            plan.id,
            period_start.date(),
            period_end.date()
        );
        let line = (u64::from(seats), plan.price_per_seat_month);
        events.extend(self.plan_invoice(ctx, plan, seats, description, line)?);
        Ok(events)
    }

    fn add_payment_method(
        &self,
        card: NewCard<'_>,
        ctx: &Context,
    ) -> Result<Vec<Event>, DomainError> {
        ctx.require(Permission::BillingManage)?;
        if self.payment_methods.iter().any(|p| p.id == card.id) {
            return Err(DomainError::exists("payment method", card.id));
        }
        if self.payment_methods.len() >= PAYMENT_METHODS_MAX {
            return Err(DomainError::invalid(
                "paymentMethods",
                format!("at most {PAYMENT_METHODS_MAX}"),
            ));
        }
        let brand = card_brand(card.brand)?;
        if card.last4.len() != 4 || !card.last4.bytes().all(|b| b.is_ascii_digit()) {
            return Err(DomainError::invalid(
                "last4",
                "must be exactly 4 digits (never a card number)",
            ));
        }
        if !(1..=12).contains(&card.exp_month) {
            return Err(DomainError::invalid("expMonth", "must be 1 to 12"));
        }
        if !(CARD_YEAR_MIN..=CARD_YEAR_MAX).contains(&card.exp_year) {
            return Err(DomainError::invalid(
                "expYear",
                format!("must be {CARD_YEAR_MIN} to {CARD_YEAR_MAX}"),
            ));
        }
        if card_expired(card.exp_month, card.exp_year, ctx.now) {
            return Err(DomainError::invalid("expiry", "the card has expired"));
        }
        let mut events: Vec<Event> = vec![
            PaymentMethodAdded {
                payment_method_id: card.id,
                brand,
                last4: card.last4.to_owned(),
                exp_month: card.exp_month,
                exp_year: card.exp_year,
            }
            .into(),
        ];
        if card.make_default || self.default_payment_method.is_none() {
            events.push(
                PaymentMethodDefaultSet {
                    payment_method_id: card.id,
                }
                .into(),
            );
        }
        Ok(events)
    }

    fn remove_payment_method(&self, id: Uuid, ctx: &Context) -> Result<Vec<Event>, DomainError> {
        ctx.require(Permission::BillingManage)?;
        self.payment_method(id)?;
        let mut events: Vec<Event> = vec![
            PaymentMethodRemoved {
                payment_method_id: id,
            }
            .into(),
        ];
        if self.default_payment_method == Some(id) {
            // The card that stays valid longest; of equals, the one added last.
            let next = self
                .payment_methods
                .iter()
                .enumerate()
                .filter(|(_, p)| p.id != id)
                .max_by_key(|(i, p)| (p.exp_year, p.exp_month, *i));
            if let Some((_, p)) = next {
                events.push(
                    PaymentMethodDefaultSet {
                        payment_method_id: p.id,
                    }
                    .into(),
                );
            }
        }
        Ok(events)
    }

    fn set_default_payment_method(
        &self,
        id: Uuid,
        ctx: &Context,
    ) -> Result<Vec<Event>, DomainError> {
        ctx.require(Permission::BillingManage)?;
        let card = self.payment_method(id)?;
        if card_expired(card.exp_month, card.exp_year, ctx.now) {
            return Err(DomainError::invalid(
                "paymentMethodId",
                "the card has expired",
            ));
        }
        if self.default_payment_method == Some(id) {
            return Ok(vec![]);
        }
        Ok(vec![
            PaymentMethodDefaultSet {
                payment_method_id: id,
            }
            .into(),
        ])
    }

    fn update_info(&self, new: &BillingInfo, ctx: &Context) -> Result<Vec<Event>, DomainError> {
        ctx.require(Permission::BillingManage)?;
        let old = &self.info;
        let email = match new.email.as_deref().map(str::trim) {
            None => old.email.clone(),
            Some("") => None,
            Some(e) => Some(validate::email("email", e)?),
        };
        let next = BillingInfo {
            company: updated_text(
                "company",
                &new.company,
                &old.company,
                validate::NAME_CHARS_MAX,
            )?,
            tax_id: updated_text("taxId", &new.tax_id, &old.tax_id, TAX_ID_CHARS_MAX)?,
            address: updated_text(
                "address",
                &new.address,
                &old.address,
                BILLING_TEXT_CHARS_MAX,
            )?,
            email,
        };
        if next == *old {
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

    fn purchase_credits(&self, amount: Credits, ctx: &Context) -> Result<Vec<Event>, DomainError> {
        ctx.require(Permission::BillingManage)?;
        if amount.is_zero() || amount.0 > PURCHASE_CREDITS_MAX {
            return Err(DomainError::invalid(
                "amount",
                format!("must be 1 to {PURCHASE_CREDITS_MAX}"),
            ));
        }
        let cost = credits_cost(amount);
        // A credit costs a tenth of a cent, which cents cannot express: the item's unit
        // amount is 0 and the order's amount (the line's) is what is paid.
        let items = vec![OrderItem {
            sku: CREDITS_SKU.into(),
            quantity: amount.0,
            unit_amount: Cents::ZERO,
        }];
        let line = InvoiceLine {
            description: format!("{amount} credits"),
            quantity: 1,
            unit_amount: cost,
            amount: cost,
        };
        self.order_and_invoice(ctx, items, vec![line])
    }

    fn pay(
        &self,
        invoice_id: Uuid,
        card: Option<Uuid>,
        ctx: &Context,
    ) -> Result<Vec<Event>, DomainError> {
        ctx.require(Permission::BillingManage)?;
        self.open_invoice(invoice_id, "pay")?;
        let card_id = card
            .or(self.default_payment_method)
            .ok_or_else(|| DomainError::invalid("paymentMethodId", "no payment method on file"))?;
        let card = self.payment_method(card_id)?;
        if card_expired(card.exp_month, card.exp_year, ctx.now) {
            return Err(DomainError::invalid(
                "paymentMethodId",
                "the card has expired",
            ));
        }
        Ok(vec![
            InvoicePaid {
                invoice_id,
                payment_method_id: Some(card_id),
            }
            .into(),
        ])
    }

    fn void(
        &self,
        invoice_id: Uuid,
        reason: Option<&str>,
        ctx: &Context,
    ) -> Result<Vec<Event>, DomainError> {
        ctx.require(Permission::BillingManage)?;
        self.open_invoice(invoice_id, "void")?;
        let reason = reason
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(|r| validate::text("reason", r, validate::TEXT_CHARS_MAX))
            .transpose()?;
        Ok(vec![InvoiceVoided { invoice_id, reason }.into()])
    }
}

// ---------------------------------------------------------------- the aggregate

impl Billing {
    fn set_status(&mut self, id: Uuid, status: InvoiceStatus) {
        if let Some(i) = self.invoices.iter_mut().find(|i| i.id == id) {
            debug_assert_eq!(
                i.status,
                InvoiceStatus::Open,
                "an invoice is paid or voided once"
            );
            i.status = status;
        }
    }

    fn apply_subscription(&mut self, event: &Event) {
        let Some(s) = &mut self.subscription else {
            return;
        };
        match event {
            Event::SubscriptionPlanChanged(e) => {
                s.plan = e.to_plan.clone();
                s.seats = e.seats;
                s.cancel_at_period_end = false;
            }
            Event::SubscriptionRenewed(e) => {
                debug_assert!(e.period_start < e.period_end, "a period has a length");
                s.period_start = e.period_start;
                s.period_end = e.period_end;
            }
            Event::SubscriptionCancelled(e) => s.cancel_at_period_end = e.at_period_end,
            _ => {}
        }
    }

    fn apply_invoice_issued(&mut self, e: &InvoiceIssued) {
        debug_assert_eq!(
            e.lines.iter().map(|l| u128::from(l.amount.0)).sum::<u128>(),
            u128::from(e.total.0),
            "an invoice's total is the sum of its lines"
        );
        debug_assert_eq!(
            e.number,
            format!("INV-{:06}", self.invoices.len() + 1),
            "invoice numbers are sequential"
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
                    billing_anchor: Some(e.period_start),
                })
            }
            Event::SubscriptionPlanChanged(_)
            | Event::SubscriptionRenewed(_)
            | Event::SubscriptionCancelled(_) => self.apply_subscription(event),
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
            Event::InvoiceIssued(e) => self.apply_invoice_issued(e),
            Event::InvoicePaid(e) => self.set_status(e.invoice_id, InvoiceStatus::Paid),
            Event::InvoiceVoided(e) => self.set_status(e.invoice_id, InvoiceStatus::Void),
            _ => {}
        }
    }

    fn decide(&self, command: &BillingCommand, ctx: &Context) -> Result<Vec<Event>, DomainError> {
        use BillingCommand as C;
        match command {
            C::StartSubscription { plan, seats } => self.start_subscription(plan, *seats, ctx),
            C::ChangePlan {
                plan,
                seats,
                seats_used,
            } => self.change_plan(plan, *seats, *seats_used, ctx),
            C::CancelSubscription => self.cancel(ctx),
            C::Renew => self.renew(ctx),
            C::AddPaymentMethod {
                payment_method_id,
                brand,
                last4,
                exp_month,
                exp_year,
                make_default,
            } => {
                let card = NewCard {
                    id: *payment_method_id,
                    brand,
                    last4,
                    exp_month: *exp_month,
                    exp_year: *exp_year,
                    make_default: *make_default,
                };
                self.add_payment_method(card, ctx)
            }
            C::RemovePaymentMethod { payment_method_id } => {
                self.remove_payment_method(*payment_method_id, ctx)
            }
            C::SetDefaultPaymentMethod { payment_method_id } => {
                self.set_default_payment_method(*payment_method_id, ctx)
            }
            C::UpdateBillingInformation {
                company,
                tax_id,
                address,
                email,
            } => {
                let new = BillingInfo {
                    company: company.clone(),
                    tax_id: tax_id.clone(),
                    address: address.clone(),
                    email: email.clone(),
                };
                self.update_info(&new, ctx)
            }
            C::PurchaseCredits { amount } => self.purchase_credits(*amount, ctx),
            C::PayInvoice {
                invoice_id,
                payment_method_id,
            } => self.pay(*invoice_id, *payment_method_id, ctx),
            C::VoidInvoice { invoice_id, reason } => self.void(*invoice_id, reason.as_deref(), ctx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::testing::{ctx, given, now};
    use time::macros::datetime;

    const PM: Uuid = Uuid::from_u128(80);
    const PM2: Uuid = Uuid::from_u128(81);
    const PM3: Uuid = Uuid::from_u128(82);

    fn started() -> Event {
        started_on("free", 5, now())
    }
    fn started_on(plan: &str, seats: u32, at: OffsetDateTime) -> Event {
        SubscriptionStarted {
            plan: plan.into(),
            seats,
            period_start: at,
            period_end: add_month(at),
        }
        .into()
    }
    fn manager() -> Context {
        ctx(
            Actor::User(Uuid::from_u128(1)),
            &[Permission::BillingManage],
        )
    }
    fn manager_at(at: OffsetDateTime) -> Context {
        Context {
            now: at,
            ..manager()
        }
    }
    fn reader() -> Context {
        ctx(Actor::User(Uuid::from_u128(2)), &[Permission::BillingRead])
    }
    fn system_at(at: OffsetDateTime) -> Context {
        Context::system(at, 3)
    }
    fn card(id: Uuid, last4: &str, month: u8, year: u16, default: bool) -> BillingCommand {
        BillingCommand::AddPaymentMethod {
            payment_method_id: id,
            brand: "Visa".into(),
            last4: last4.into(),
            exp_month: month,
            exp_year: year,
            make_default: default,
        }
    }
    fn added(id: Uuid, month: u8, year: u16) -> Event {
        PaymentMethodAdded {
            payment_method_id: id,
            brand: "visa".into(),
            last4: "4242".into(),
            exp_month: month,
            exp_year: year,
        }
        .into()
    }
    fn default_set(id: Uuid) -> Event {
        PaymentMethodDefaultSet {
            payment_method_id: id,
        }
        .into()
    }
    fn change(plan: &str, seats: u32) -> BillingCommand {
        BillingCommand::ChangePlan {
            plan: plan.into(),
            seats,
            seats_used: 1,
        }
    }
    fn purchase(amount: u64) -> BillingCommand {
        BillingCommand::PurchaseCredits {
            amount: Credits(amount),
        }
    }
    fn pay(invoice_id: Uuid, card: Option<Uuid>) -> BillingCommand {
        BillingCommand::PayInvoice {
            invoice_id,
            payment_method_id: card,
        }
    }
    /// `history` followed by what `cmd` decides on it.
    fn decided(history: &[Event], cmd: BillingCommand, c: &Context) -> Vec<Event> {
        let mut all = history.to_vec();
        all.extend(Billing::replay(history).decide(&cmd, c).expect("decided"));
        all
    }
    /// A card on file and one open credits invoice; the invoice's id.
    fn with_open_invoice() -> (Vec<Event>, Uuid) {
        let h = decided(
            &[started(), added(PM, 12, 2030), default_set(PM)],
            purchase(1_000),
            &manager(),
        );
        let id = Billing::replay(&h).invoices[0].id;
        (h, id)
    }

    // ------------------------------------------------------------ subscription

    #[test]
    fn a_new_organization_starts_on_free_for_one_calendar_month() {
        given::<Billing>([])
            .when(BillingCommand::StartSubscription {
                plan: "free".into(),
                seats: 5,
            })
            .then([SubscriptionStarted {
                plan: "free".into(),
                seats: 5,
                period_start: now(),
                period_end: datetime!(2026-07-15 12:00 UTC),
            }
            .into()]);
    }

    #[test]
    fn a_subscription_starts_once_by_the_system_on_a_known_plan() {
        let start = |plan: &str, seats| BillingCommand::StartSubscription {
            plan: plan.into(),
            seats,
        };
        given::<Billing>([started()])
            .when(start("free", 5))
            .then_err(DomainError::exists("subscription", "free"));
        given::<Billing>([])
            .with(manager())
            .when(start("free", 5))
            .then_err(DomainError::NotPermitted(
                "subscriptions start with the organization",
            ));
        given::<Billing>([])
            .when(start("gold", 5))
            .then_err(DomainError::invalid("plan", "unknown plan \"gold\""));
        given::<Billing>([])
            .when(start("free", 6))
            .then_err(DomainError::invalid(
                "seats",
                "plan free takes 5 to 5 seats",
            ));
    }

    #[test]
    fn changing_to_a_paid_plan_invoices_the_prorated_rest_of_the_period() {
        let mid = now() + Duration::days(15);
        let c = manager_at(mid);
        let (order_id, invoice_id) = (c.new_id(1), c.new_id(2));
        given::<Billing>([started()])
            .with(c)
            .when(BillingCommand::ChangePlan {
                plan: "team".into(),
                seats: 10,
                seats_used: 3,
            })
            .then([
                SubscriptionPlanChanged {
                    from_plan: "free".into(),
                    to_plan: "team".into(),
                    seats: 10,
                    effective_at: mid,
                }
                .into(),
                OrderPlaced {
                    order_id,
                    items: vec![OrderItem {
                        sku: "plan:team".into(),
                        quantity: 10,
                        unit_amount: Cents(1_500),
                    }],
                    amount: Cents(7_500),
                    currency: "USD".into(),
                }
                .into(),
                InvoiceIssued {
                    invoice_id,
                    order_id,
                    number: "INV-000001".into(),
                    lines: vec![InvoiceLine {
                        description: "team plan, 10 seats, 2026-06-30 to 2026-07-15 (prorated)"
                            .into(),
                        quantity: 1,
                        unit_amount: Cents(7_500),
                        amount: Cents(7_500),
                    }],
                    total: Cents(7_500),
                    currency: "USD".into(),
                    due_at: mid + Duration::days(14),
                }
                .into(),
            ]);
    }

    #[test]
    fn proration_rounds_up_to_the_cent() {
        let total_at = |at: OffsetDateTime| {
            let events = Billing::replay(&[started()])
                .decide(&change("team", 1), &manager_at(at))
                .expect("changed");
            match events.last() {
                Some(Event::InvoiceIssued(i)) => i.total,
                other => panic!("{other:?}"),
            }
        };
        let end = add_month(now());
        assert_eq!(
            total_at(end - Duration::hours(1)),
            Cents(3),
            "1,500 × 1 h / 720 h = 2.08"
        );
        assert_eq!(
            total_at(end - Duration::seconds(1)),
            Cents(1),
            "a second still costs a cent"
        );
        assert_eq!(
            total_at(now()),
            Cents(1_500),
            "the whole period costs the whole price"
        );
    }

    #[test]
    fn changing_to_free_or_to_nothing_new_invoices_nothing() {
        let team = vec![started_on("team", 3, now())];
        given::<Billing>(team.clone())
            .with(manager())
            .when(change("free", 5))
            .then([SubscriptionPlanChanged {
                from_plan: "team".into(),
                to_plan: "free".into(),
                seats: 5,
                effective_at: now(),
            }
            .into()]);
        given::<Billing>(team)
            .with(manager())
            .when(change("team", 3))
            .then([]);
    }

    #[test]
    fn changing_to_the_same_plan_resumes_a_cancelled_subscription() {
        let cancelled = vec![
            started_on("team", 3, now()),
            SubscriptionCancelled {
                at_period_end: true,
            }
            .into(),
        ];
        let resumed = decided(&cancelled, change("team", 3), &manager());
        assert_eq!(
            resumed.last(),
            Some(
                &SubscriptionCancelled {
                    at_period_end: false
                }
                .into()
            )
        );
        let s = Billing::replay(&resumed)
            .subscription
            .expect("subscription");
        assert!(!s.cancel_at_period_end);
    }

    #[test]
    fn seats_stay_within_the_plan_and_above_those_in_use() {
        given::<Billing>([started()])
            .with(manager())
            .when(change("team", 51))
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
            .when(change("gold", 2))
            .then_err(DomainError::invalid("plan", "unknown plan \"gold\""));
    }

    #[test]
    fn a_plan_changes_only_on_a_subscription_within_its_period() {
        given::<Billing>([])
            .with(manager())
            .when(change("team", 2))
            .then_err(DomainError::not_found("subscription", "(none)"));
        given::<Billing>([started()])
            .with(manager_at(add_month(now())))
            .when(change("team", 2))
            .then_err(DomainError::wrong_state(
                "subscription",
                "due for renewal",
                "change plan",
            ));
    }

    #[test]
    fn cancelling_takes_effect_at_the_period_end_and_only_once() {
        let team = vec![started_on("team", 3, now())];
        given::<Billing>(team.clone())
            .with(manager())
            .when(BillingCommand::CancelSubscription)
            .then([SubscriptionCancelled {
                at_period_end: true,
            }
            .into()]);
        let cancelled = decided(&team, BillingCommand::CancelSubscription, &manager());
        given::<Billing>(cancelled)
            .with(manager())
            .when(BillingCommand::CancelSubscription)
            .then_err(DomainError::wrong_state(
                "subscription",
                "cancelled",
                "cancel",
            ));
        given::<Billing>([started()])
            .with(manager())
            .when(BillingCommand::CancelSubscription)
            .then_err(DomainError::wrong_state("subscription", "free", "cancel"));
        given::<Billing>([])
            .with(manager())
            .when(BillingCommand::CancelSubscription)
            .then_err(DomainError::not_found("subscription", "(none)"));
    }

    #[test]
    fn renewing_a_paid_plan_starts_the_next_period_and_invoices_it() {
        let end = add_month(now());
        let c = system_at(end);
        let (order_id, invoice_id) = (c.new_id(1), c.new_id(2));
        let next_end = datetime!(2026-08-15 12:00 UTC);
        given::<Billing>([started_on("team", 3, now())])
            .with(c)
            .when(BillingCommand::Renew)
            .then([
                SubscriptionRenewed {
                    period_start: end,
                    period_end: next_end,
                }
                .into(),
                OrderPlaced {
                    order_id,
                    items: vec![OrderItem {
                        sku: "plan:team".into(),
                        quantity: 3,
                        unit_amount: Cents(1_500),
                    }],
                    amount: Cents(4_500),
                    currency: "USD".into(),
                }
                .into(),
                InvoiceIssued {
                    invoice_id,
                    order_id,
                    number: "INV-000001".into(),
                    lines: vec![InvoiceLine {
                        description: "team plan, 3 seats, 2026-07-15 to 2026-08-15".into(),
                        quantity: 3,
                        unit_amount: Cents(1_500),
                        amount: Cents(4_500),
                    }],
                    total: Cents(4_500),
                    currency: "USD".into(),
                    due_at: end + Duration::days(14),
                }
                .into(),
            ]);
    }

    #[test]
    fn renewing_free_invoices_nothing() {
        let end = add_month(now());
        given::<Billing>([started()])
            .with(system_at(end + Duration::hours(2)))
            .when(BillingCommand::Renew)
            .then([SubscriptionRenewed {
                period_start: end,
                period_end: add_month(end),
            }
            .into()]);
    }

    #[test]
    fn a_cancelled_plan_falls_back_to_free_at_renewal() {
        let end = add_month(now());
        let cancelled = vec![
            started_on("business", 8, now()),
            SubscriptionCancelled {
                at_period_end: true,
            }
            .into(),
        ];
        given::<Billing>(cancelled)
            .with(system_at(end))
            .when(BillingCommand::Renew)
            .then([
                SubscriptionPlanChanged {
                    from_plan: "business".into(),
                    to_plan: "free".into(),
                    seats: 5,
                    effective_at: end,
                }
                .into(),
                SubscriptionRenewed {
                    period_start: end,
                    period_end: add_month(end),
                }
                .into(),
            ]);
    }

    #[test]
    fn only_the_system_renews_and_only_once_the_period_has_ended() {
        given::<Billing>([started()])
            .when(BillingCommand::Renew)
            .then_err(DomainError::wrong_state(
                "subscription",
                "in its period",
                "renew",
            ));
        given::<Billing>([started()])
            .with(Context {
                now: add_month(now()),
                ..manager()
            })
            .when(BillingCommand::Renew)
            .then_err(DomainError::NotPermitted(
                "subscriptions renew on their own",
            ));
        given::<Billing>([])
            .when(BillingCommand::Renew)
            .then_err(DomainError::not_found("subscription", "(none)"));
    }

    #[test]
    fn periods_keep_the_day_the_subscription_started_on() {
        let start = datetime!(2026-01-31 09:00 UTC);
        let mut h = vec![started_on("free", 5, start)];
        let mut ends = vec![];
        for _ in 0..4 {
            let end = Billing::replay(&h)
                .subscription
                .expect("subscription")
                .period_end;
            ends.push(end.date().to_string());
            h = decided(&h, BillingCommand::Renew, &system_at(end));
        }
        assert_eq!(
            ends,
            ["2026-02-28", "2026-03-31", "2026-04-30", "2026-05-31"]
        );
    }

    #[test]
    fn months_add_with_the_day_clamped() {
        assert_eq!(
            add_month(datetime!(2026-01-31 10:00 UTC)),
            datetime!(2026-02-28 10:00 UTC)
        );
        assert_eq!(
            add_month(datetime!(2028-01-31 10:00 UTC)),
            datetime!(2028-02-29 10:00 UTC)
        );
        assert_eq!(
            add_month(datetime!(2026-12-15 10:00 UTC)),
            datetime!(2027-01-15 10:00 UTC)
        );
        assert_eq!(
            add_months(datetime!(2026-11-30 10:00 UTC), 14),
            datetime!(2028-01-30 10:00 UTC)
        );
    }

    // ------------------------------------------------------------ plan credits

    #[test]
    fn changing_to_a_paid_plan_grants_its_credits_until_the_period_end() {
        let h = decided(&[started()], change("team", 2), &manager());
        let b = Billing::replay(&h);
        assert_eq!(
            b.plan_credit_grant(&h[1..]),
            Some((Credits(10_000), add_month(now())))
        );
        let more_seats = decided(&h, change("team", 4), &manager());
        let b = Billing::replay(&more_seats);
        assert_eq!(
            b.plan_credit_grant(&more_seats[h.len()..]),
            None,
            "a change of seats only is no change of plan"
        );
        let up = decided(&h, change("business", 2), &manager());
        assert_eq!(
            Billing::replay(&up).plan_credit_grant(&up[h.len()..]),
            Some((Credits(100_000), add_month(now())))
        );
    }

    #[test]
    fn renewing_a_paid_plan_grants_its_credits_for_the_new_period() {
        let end = add_month(now());
        let h = vec![started_on("team", 3, now())];
        let renewed = decided(&h, BillingCommand::Renew, &system_at(end));
        assert_eq!(
            Billing::replay(&renewed).plan_credit_grant(&renewed[1..]),
            Some((Credits(10_000), add_month(end)))
        );
        let free = decided(&[started()], BillingCommand::Renew, &system_at(end));
        assert_eq!(Billing::replay(&free).plan_credit_grant(&free[1..]), None);
        let cancelled = vec![
            h[0].clone(),
            SubscriptionCancelled {
                at_period_end: true,
            }
            .into(),
        ];
        let fallback = decided(&cancelled, BillingCommand::Renew, &system_at(end));
        assert_eq!(
            Billing::replay(&fallback).plan_credit_grant(&fallback[2..]),
            None,
            "falling back to free grants nothing"
        );
        assert_eq!(
            Billing::replay(&h).plan_credit_grant(&[default_set(PM)]),
            None
        );
    }

    // ------------------------------------------------------------ payment methods

    #[test]
    fn a_first_card_becomes_the_default_and_a_later_one_only_when_asked() {
        given::<Billing>([started()])
            .with(manager())
            .when(card(PM, "4242", 12, 2030, false))
            .then([added(PM, 12, 2030), default_set(PM)]);
        let one = vec![started(), added(PM, 12, 2030), default_set(PM)];
        given::<Billing>(one.clone())
            .with(manager())
            .when(card(PM2, "4242", 12, 2030, false))
            .then([added(PM2, 12, 2030)]);
        given::<Billing>(one.clone())
            .with(manager())
            .when(card(PM2, "4242", 12, 2030, true))
            .then([added(PM2, 12, 2030), default_set(PM2)]);
        let b = Billing::replay(&decided(
            &one,
            card(PM2, "4242", 12, 2030, false),
            &manager(),
        ));
        assert_eq!(
            b.payment_methods_with_default()
                .map(|(p, d)| (p.id, d))
                .collect::<Vec<_>>(),
            [(PM, true), (PM2, false)]
        );
    }

    #[test]
    fn card_brands_are_normalized_and_unknown_brands_refused() {
        for (given_brand, stored) in [
            ("Visa", "visa"),
            (" MASTERCARD ", "mastercard"),
            ("Master Card", "mastercard"),
            ("American Express", "amex"),
            ("Diners Club", "diners"),
        ] {
            assert_eq!(
                card_brand(given_brand),
                Ok(stored.to_owned()),
                "{given_brand}"
            );
        }
        given::<Billing>([started()])
            .with(manager())
            .when(BillingCommand::AddPaymentMethod {
                payment_method_id: PM,
                brand: "Acme Card".into(),
                last4: "4242".into(),
                exp_month: 12,
                exp_year: 2030,
                make_default: false,
            })
            .then_err(DomainError::invalid(
                "brand",
                "must be one of visa, mastercard, amex, discover, jcb, diners, unionpay",
            ));
    }

    #[test]
    fn a_card_is_its_last_four_digits_never_its_number() {
        for bad in ["424", "42424", "4242424242424242", "42a2", "４２４２", ""] {
            given::<Billing>([started()])
                .with(manager())
                .when(card(PM, bad, 12, 2030, false))
                .then_err(DomainError::invalid(
                    "last4",
                    "must be exactly 4 digits (never a card number)",
                ));
        }
    }

    #[test]
    fn a_card_expiry_needs_a_real_month_and_a_four_digit_year() {
        for month in [0, 13] {
            given::<Billing>([started()])
                .with(manager())
                .when(card(PM, "4242", month, 2030, false))
                .then_err(DomainError::invalid("expMonth", "must be 1 to 12"));
        }
        for year in [30, 2101] {
            given::<Billing>([started()])
                .with(manager())
                .when(card(PM, "4242", 12, year, false))
                .then_err(DomainError::invalid("expYear", "must be 2000 to 2100"));
        }
    }

    #[test]
    fn a_card_is_valid_through_the_end_of_its_expiry_month() {
        let last_minute = manager_at(datetime!(2026-06-30 23:59 UTC));
        given::<Billing>([started()])
            .with(last_minute)
            .when(card(PM, "4242", 6, 2026, false))
            .then([added(PM, 6, 2026), default_set(PM)]);
        given::<Billing>([started()])
            .with(manager_at(datetime!(2026-07-01 00:00 UTC)))
            .when(card(PM, "4242", 6, 2026, false))
            .then_err(DomainError::invalid("expiry", "the card has expired"));
        given::<Billing>([started()])
            .with(manager())
            .when(card(PM, "4242", 12, 2025, false))
            .then_err(DomainError::invalid("expiry", "the card has expired"));
    }

    #[test]
    fn a_card_is_added_once_and_at_most_ten_are_kept() {
        let one = vec![started(), added(PM, 12, 2030), default_set(PM)];
        given::<Billing>(one)
            .with(manager())
            .when(card(PM, "4242", 12, 2030, false))
            .then_err(DomainError::exists("payment method", PM));
        let full: Vec<Event> = (0..PAYMENT_METHODS_MAX as u128)
            .map(|i| added(Uuid::from_u128(1_000 + i), 12, 2030))
            .collect();
        given::<Billing>(full)
            .with(manager())
            .when(card(PM, "4242", 12, 2030, false))
            .then_err(DomainError::invalid("paymentMethods", "at most 10"));
    }

    #[test]
    fn removing_the_default_card_promotes_the_one_that_expires_last() {
        let three = vec![
            started(),
            added(PM, 12, 2030),
            default_set(PM),
            added(PM2, 12, 2031),
            added(PM3, 1, 2031),
        ];
        let remove = |id| BillingCommand::RemovePaymentMethod {
            payment_method_id: id,
        };
        given::<Billing>(three.clone())
            .with(manager())
            .when(remove(PM))
            .then([
                PaymentMethodRemoved {
                    payment_method_id: PM,
                }
                .into(),
                default_set(PM2),
            ]);
        given::<Billing>(three)
            .with(manager())
            .when(remove(PM3))
            .then([PaymentMethodRemoved {
                payment_method_id: PM3,
            }
            .into()]);
        let last = vec![started(), added(PM, 12, 2030), default_set(PM)];
        let gone = decided(&last, remove(PM), &manager());
        let b = Billing::replay(&gone);
        assert!(b.payment_methods.is_empty() && b.default_payment_method.is_none());
        given::<Billing>(gone)
            .with(manager())
            .when(remove(PM))
            .then_err(DomainError::not_found("payment method", PM));
    }

    #[test]
    fn the_default_card_is_one_on_file_that_has_not_expired() {
        let h = vec![
            started(),
            added(PM, 12, 2030),
            default_set(PM),
            added(PM2, 12, 2031),
        ];
        let set = |id| BillingCommand::SetDefaultPaymentMethod {
            payment_method_id: id,
        };
        given::<Billing>(h.clone())
            .with(manager())
            .when(set(PM2))
            .then([default_set(PM2)]);
        given::<Billing>(h.clone())
            .with(manager())
            .when(set(PM))
            .then([]);
        given::<Billing>(h.clone())
            .with(manager())
            .when(set(PM3))
            .then_err(DomainError::not_found("payment method", PM3));
        given::<Billing>(h)
            .with(manager_at(datetime!(2031-01-01 00:00 UTC)))
            .when(set(PM))
            .then_err(DomainError::invalid(
                "paymentMethodId",
                "the card has expired",
            ));
    }

    // ------------------------------------------------------------ billing information

    #[test]
    fn billing_information_records_only_changes() {
        let set = BillingCommand::UpdateBillingInformation {
            company: Some(" Acme ".into()),
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
        given::<Billing>(h.clone())
            .with(manager())
            .when(set)
            .then([]);
        given::<Billing>(h)
            .with(manager())
            .when(BillingCommand::UpdateBillingInformation {
                company: None,
                tax_id: Some("DE123456789".into()),
                address: None,
                email: Some("".into()),
            })
            .then([BillingInfoUpdated {
                company: Some("Acme".into()),
                tax_id: Some("DE123456789".into()),
                address: None,
                email: None,
            }
            .into()]);
    }

    #[test]
    fn billing_information_is_checked() {
        let update = |tax_id: &str, email: &str| BillingCommand::UpdateBillingInformation {
            company: None,
            tax_id: Some(tax_id.into()),
            address: None,
            email: Some(email.into()),
        };
        given::<Billing>([started()])
            .with(manager())
            .when(update("DE1", "not-an-email"))
            .then_err(DomainError::invalid(
                "email",
                "\"not-an-email\" is not an email address",
            ));
        given::<Billing>([started()])
            .with(manager())
            .when(update(&"9".repeat(TAX_ID_CHARS_MAX + 1), "a@b.test"))
            .then_err(DomainError::invalid("taxId", "longer than 50 characters"));
        given::<Billing>([started()])
            .with(manager())
            .when(update("DE\u{7}1", "a@b.test"))
            .then_err(DomainError::invalid("taxId", "contains control characters"));
    }

    // ------------------------------------------------------------ credits and invoices

    #[test]
    fn purchasing_credits_invoices_a_tenth_of_a_cent_each_rounded_up() {
        let c = manager();
        let (order_id, invoice_id) = (c.new_id(1), c.new_id(2));
        given::<Billing>([started()])
            .with(c)
            .when(purchase(1_001))
            .then([
                OrderPlaced {
                    order_id,
                    items: vec![OrderItem {
                        sku: "credits".into(),
                        quantity: 1_001,
                        unit_amount: Cents(0),
                    }],
                    amount: Cents(101),
                    currency: "USD".into(),
                }
                .into(),
                InvoiceIssued {
                    invoice_id,
                    order_id,
                    number: "INV-000001".into(),
                    lines: vec![InvoiceLine {
                        description: "1001 credits".into(),
                        quantity: 1,
                        unit_amount: Cents(101),
                        amount: Cents(101),
                    }],
                    total: Cents(101),
                    currency: "USD".into(),
                    due_at: now() + Duration::days(14),
                }
                .into(),
            ]);
    }

    #[test]
    fn a_purchase_buys_at_least_one_credit_and_at_most_the_cap() {
        for amount in [0, PURCHASE_CREDITS_MAX + 1] {
            given::<Billing>([started()])
                .with(manager())
                .when(purchase(amount))
                .then_err(DomainError::invalid("amount", "must be 1 to 10000000000"));
        }
    }

    #[test]
    fn invoice_numbers_are_sequential_per_organization() {
        let mut h = vec![started()];
        for seed in 1..=3 {
            let c = Context {
                id_seed: seed,
                ..manager()
            };
            h = decided(&h, purchase(10), &c);
        }
        let b = Billing::replay(&h);
        let numbers: Vec<&str> = b.invoices.iter().map(|i| i.number.as_str()).collect();
        assert_eq!(numbers, ["INV-000001", "INV-000002", "INV-000003"]);
        assert!(b.invoices.iter().all(|i| i.issued_at() == now()));
    }

    #[test]
    fn paying_uses_the_given_card_or_the_default_one() {
        let (mut h, id) = with_open_invoice();
        given::<Billing>(h.clone())
            .with(manager())
            .when(pay(id, None))
            .then([InvoicePaid {
                invoice_id: id,
                payment_method_id: Some(PM),
            }
            .into()]);
        h.push(added(PM2, 12, 2031));
        given::<Billing>(h.clone())
            .with(manager())
            .when(pay(id, Some(PM2)))
            .then([InvoicePaid {
                invoice_id: id,
                payment_method_id: Some(PM2),
            }
            .into()]);
        given::<Billing>(h)
            .with(manager())
            .when(pay(id, Some(PM3)))
            .then_err(DomainError::not_found("payment method", PM3));
    }

    #[test]
    fn paying_needs_an_unexpired_card_on_file() {
        let h = decided(&[started()], purchase(10), &manager());
        let id = Billing::replay(&h).invoices[0].id;
        given::<Billing>(h)
            .with(manager())
            .when(pay(id, None))
            .then_err(DomainError::invalid(
                "paymentMethodId",
                "no payment method on file",
            ));
        let (h, id) = with_open_invoice();
        given::<Billing>(h)
            .with(manager_at(datetime!(2031-01-01 00:00 UTC)))
            .when(pay(id, None))
            .then_err(DomainError::invalid(
                "paymentMethodId",
                "the card has expired",
            ));
    }

    #[test]
    fn an_invoice_is_paid_or_voided_once_and_only_while_open() {
        let (h, id) = with_open_invoice();
        let void = |reason: Option<&str>| BillingCommand::VoidInvoice {
            invoice_id: id,
            reason: reason.map(str::to_owned),
        };
        let paid = decided(&h, pay(id, None), &manager());
        given::<Billing>(paid.clone())
            .with(manager())
            .when(pay(id, None))
            .then_err(DomainError::wrong_state("invoice", "paid", "pay"));
        given::<Billing>(paid)
            .with(manager())
            .when(void(None))
            .then_err(DomainError::wrong_state("invoice", "paid", "void"));
        let voided = decided(&h, void(Some("duplicate")), &manager());
        given::<Billing>(voided.clone())
            .with(manager())
            .when(void(None))
            .then_err(DomainError::wrong_state("invoice", "void", "void"));
        given::<Billing>(voided)
            .with(manager())
            .when(pay(id, None))
            .then_err(DomainError::wrong_state("invoice", "void", "pay"));
        let unknown = Uuid::from_u128(999);
        given::<Billing>(h)
            .with(manager())
            .when(pay(unknown, None))
            .then_err(DomainError::not_found("invoice", unknown));
    }

    #[test]
    fn voiding_an_open_invoice_records_its_reason() {
        let (h, id) = with_open_invoice();
        let void = |reason: &str| BillingCommand::VoidInvoice {
            invoice_id: id,
            reason: Some(reason.into()),
        };
        given::<Billing>(h.clone())
            .with(manager())
            .when(void(" ordered twice "))
            .then([InvoiceVoided {
                invoice_id: id,
                reason: Some("ordered twice".into()),
            }
            .into()]);
        given::<Billing>(h.clone())
            .with(manager())
            .when(void("  "))
            .then([InvoiceVoided {
                invoice_id: id,
                reason: None,
            }
            .into()]);
        given::<Billing>(h)
            .with(manager())
            .when(void(&"x".repeat(validate::TEXT_CHARS_MAX + 1)))
            .then_err(DomainError::invalid(
                "reason",
                "longer than 2000 characters",
            ));
    }

    #[test]
    fn only_a_paid_credits_invoice_buys_credits() {
        let (h, id) = with_open_invoice();
        assert_eq!(
            Billing::replay(&h).credits_bought_by(id),
            None,
            "not paid yet"
        );
        let paid = decided(&h, pay(id, None), &manager());
        assert_eq!(
            Billing::replay(&paid).credits_bought_by(id),
            Some(Credits(1_000))
        );
        let voided = decided(
            &h,
            BillingCommand::VoidInvoice {
                invoice_id: id,
                reason: None,
            },
            &manager(),
        );
        assert_eq!(Billing::replay(&voided).credits_bought_by(id), None);
        let plan = decided(
            &paid,
            change("team", 2),
            &Context {
                id_seed: 7,
                ..manager()
            },
        );
        let plan_invoice = Billing::replay(&plan).invoices[1].id;
        let plan_paid = decided(&plan, pay(plan_invoice, None), &manager());
        assert_eq!(
            Billing::replay(&plan_paid).credits_bought_by(plan_invoice),
            None
        );
        assert_eq!(
            Billing::replay(&plan_paid).credits_bought_by(Uuid::from_u128(999)),
            None
        );
    }

    #[test]
    fn a_subscription_is_past_due_while_an_open_invoice_is_overdue() {
        let (h, id) = with_open_invoice();
        let b = Billing::replay(&h);
        assert_eq!(Billing::default().subscription_status(now()), None);
        assert_eq!(b.subscription_status(now()), Some("active"));
        let late = now() + Duration::days(15);
        assert_eq!(b.subscription_status(late), Some("past_due"));
        let paid = Billing::replay(&decided(&h, pay(id, None), &manager()));
        assert_eq!(paid.subscription_status(late), Some("active"));
    }

    // ------------------------------------------------------------ permissions and folding

    #[test]
    fn managing_billing_needs_billing_manage() {
        let (h, id) = with_open_invoice();
        let commands = [
            change("team", 2),
            BillingCommand::CancelSubscription,
            card(PM2, "4242", 12, 2030, false),
            BillingCommand::RemovePaymentMethod {
                payment_method_id: PM,
            },
            BillingCommand::SetDefaultPaymentMethod {
                payment_method_id: PM,
            },
            BillingCommand::UpdateBillingInformation {
                company: Some("Acme".into()),
                tax_id: None,
                address: None,
                email: None,
            },
            purchase(10),
            pay(id, None),
            BillingCommand::VoidInvoice {
                invoice_id: id,
                reason: None,
            },
        ];
        for cmd in commands {
            given::<Billing>(h.clone())
                .with(reader())
                .when(cmd)
                .then_err(DomainError::Forbidden(Permission::BillingManage));
        }
    }

    #[test]
    fn folding_ignores_other_aggregates_events() {
        let (h, _) = with_open_invoice();
        let mut mixed = h.clone();
        mixed.insert(
            1,
            CreditsGranted {
                grant_id: Uuid::from_u128(5),
                amount: Credits(10),
                source: GrantSource::Promo,
                expires_at: None,
            }
            .into(),
        );
        mixed.push(BotRenamed { name: "b".into() }.into());
        assert_eq!(Billing::replay(&mixed), Billing::replay(&h));
    }
}
