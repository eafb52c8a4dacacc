//! The event catalog (EVENTS.md): one payload struct per event type, the [`Event`] enum
//! over all of them, their stable names and schema versions, and the upcasters that
//! lift old payloads.
//!
//! Names and fields are a public contract: a stored log outlives the code. A field may
//! be added (with a new schema version and an upcaster for the old one); a name is
//! never reused for another meaning. The golden files in `fixtures/golden/` fail the
//! build when a stored format changes.

use crate::amounts::{Cents, Credits};
use crate::permissions::Permission;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use time::OffsetDateTime;
use uuid::Uuid;

macro_rules! payload {
    ($(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
        pub struct $name { $($(#[$fm])* pub $field: $ty,)* }
    };
}

// ---------------------------------------------------------------- shared enums

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberKind {
    Member,
    ExternalCollaborator,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BotStatus {
    Online,
    Offline,
    Busy,
    Error,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TriggerKind {
    Schedule,
    Webhook,
    Email,
    File,
    Manual,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppKind {
    App,
    Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    Private,
    Marketplace,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantSource {
    Plan,
    Purchase,
    Promo,
    Adjustment,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DenialReason {
    InsufficientBalance,
    LimitExceeded,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderItem {
    pub sku: String,
    pub quantity: u64,
    pub unit_amount: Cents,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceLine {
    pub description: String,
    pub quantity: u64,
    pub unit_amount: Cents,
    pub amount: Cents,
}

// ---------------------------------------------------------------- accounts

payload!(UserRegistered {
    user_id: Uuid,
    email: String,
    alias: String
});
payload!(
    /// The hash lives in the credentials store, never here.
    UserPasswordChanged {}
);
payload!(UserSignedIn { session_id: Uuid });
payload!(UserSignInFailed { reason: String });
payload!(UserSessionRevoked { session_id: Uuid });

// ---------------------------------------------------------------- organization

payload!(OrganizationCreated {
    org_id: Uuid,
    name: String,
    owner_id: Uuid,
    admin_alias: String,
    admin_email: String,
});
payload!(
    /// Only what changed is present.
    OrganizationProfileUpdated {
        #[serde(default, skip_serializing_if = "Option::is_none")] display_name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")] tagline: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")] description: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")] website: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")] logo_url: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")] contact_email: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")] industry: Option<String>,
    }
);
payload!(OwnershipTransferred {
    from_user_id: Uuid,
    to_user_id: Uuid
});
payload!(SecurityPolicyChanged {
    require_mfa: bool,
    session_ttl_minutes: u32,
    min_password_length: u32,
});
payload!(MemberInvited {
    invitation_id: Uuid,
    email: String,
    kind: MemberKind,
    role_ids: Vec<String>,
    #[serde(with = "time::serde::rfc3339")] expires_at: OffsetDateTime,
});
payload!(InvitationResent {
    invitation_id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: OffsetDateTime,
});
payload!(InvitationRevoked {
    invitation_id: Uuid
});
payload!(MemberJoined { invitation_id: Uuid, user_id: Uuid, kind: MemberKind, role_ids: Vec<String> });
payload!(MemberRemoved { user_id: Uuid });
payload!(MemberLeft { user_id: Uuid });
payload!(RoleCreated { role_id: String, name: String, permissions: Vec<Permission> });
payload!(RoleUpdated { role_id: String, name: String, permissions: Vec<Permission> });
payload!(RoleDeleted { role_id: String });
payload!(RoleGranted {
    user_id: Uuid,
    role_id: String
});
payload!(RoleRevoked {
    user_id: Uuid,
    role_id: String
});
payload!(DeveloperCertified { user_id: Uuid });

// ---------------------------------------------------------------- bots

payload!(
    /// Schema 2 added `machine`; schema 1 payloads are lifted with `machine: null`.
    BotRegistered {
        bot_id: Uuid,
        name: String,
        machine: Option<String>,
    }
);
payload!(BotRenamed { name: String });
payload!(BotEnabled {});
payload!(BotDisabled { reason: Option<String> });
payload!(BotStatusChanged {
    from: BotStatus,
    to: BotStatus
});
payload!(BotTokenRotated {});
payload!(BotDeleted {});

// ---------------------------------------------------------------- runs

payload!(RunStarted {
    run_id: Uuid,
    bot_id: Uuid,
    task: String,
    #[serde(default, skip_serializing_if = "Option::is_none")] trigger_id: Option<Uuid>,
});
payload!(RunCompleted {
    duration_ms: u64,
    credits: Credits
});
payload!(RunFailed {
    duration_ms: u64,
    error: String,
    /// Credits the failed run used, when the bot reported any (an addition to the
    /// catalog's fields; absent means none).
    #[serde(default, skip_serializing_if = "Option::is_none")] credits: Option<Credits>,
});
payload!(RunCancelled { reason: Option<String> });

// ---------------------------------------------------------------- triggers

payload!(TriggerCreated {
    trigger_id: Uuid,
    name: String,
    kind: TriggerKind,
    schedule: Option<String>,
    bot_id: Uuid,
    task: String,
});
payload!(
    /// Only what changed is present.
    TriggerUpdated {
        #[serde(default, skip_serializing_if = "Option::is_none")] name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")] schedule: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")] bot_id: Option<Uuid>,
        #[serde(default, skip_serializing_if = "Option::is_none")] task: Option<String>,
    }
);
payload!(TriggerEnabled {});
payload!(TriggerDisabled {});
payload!(TriggerDeleted {});
payload!(TriggerFired { run_id: Uuid });
payload!(TriggerAutoDisabled {
    consecutive_failures: u32
});

// ---------------------------------------------------------------- developer center

payload!(AppCreated {
    app_id: Uuid,
    name: String,
    kind: AppKind,
    developer_id: Uuid
});
payload!(AppVersionPublished { version: String, notes: Option<String>, visibility: Visibility });
payload!(AppUnpublished {});

// ---------------------------------------------------------------- billing

payload!(SubscriptionStarted {
    plan: String,
    seats: u32,
    #[serde(with = "time::serde::rfc3339")]
    period_start: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    period_end: OffsetDateTime,
});
payload!(SubscriptionPlanChanged {
    from_plan: String,
    to_plan: String,
    seats: u32,
    #[serde(with = "time::serde::rfc3339")]
    effective_at: OffsetDateTime,
});
payload!(SubscriptionRenewed {
    #[serde(with = "time::serde::rfc3339")]
    period_start: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    period_end: OffsetDateTime,
});
payload!(SubscriptionCancelled {
    at_period_end: bool
});
payload!(PaymentMethodAdded {
    payment_method_id: Uuid,
    brand: String,
    last4: String,
    exp_month: u8,
    exp_year: u16,
});
payload!(PaymentMethodRemoved {
    payment_method_id: Uuid
});
payload!(PaymentMethodDefaultSet {
    payment_method_id: Uuid
});
payload!(BillingInfoUpdated {
    company: Option<String>,
    tax_id: Option<String>,
    address: Option<String>,
    email: Option<String>,
});
payload!(OrderPlaced { order_id: Uuid, items: Vec<OrderItem>, amount: Cents, currency: String });
payload!(InvoiceIssued {
    invoice_id: Uuid,
    order_id: Uuid,
    number: String,
    lines: Vec<InvoiceLine>,
    total: Cents,
    currency: String,
    #[serde(with = "time::serde::rfc3339")] due_at: OffsetDateTime,
});
payload!(InvoicePaid { invoice_id: Uuid, payment_method_id: Option<Uuid> });
payload!(InvoiceVoided { invoice_id: Uuid, reason: Option<String> });

// ---------------------------------------------------------------- credits

payload!(CreditsGranted {
    grant_id: Uuid,
    amount: Credits,
    source: GrantSource,
    #[serde(default, with = "time::serde::rfc3339::option")] expires_at: Option<OffsetDateTime>,
});
payload!(
    /// `period` (an addition to the catalog's fields) is the UTC month, `YYYY-MM`, the
    /// consumption counts against for the period limit.
    CreditsConsumed {
        amount: Credits,
        bot_id: Uuid,
        run_id: Option<Uuid>,
        key: String,
        period: String,
    }
);
payload!(CreditsConsumptionDenied {
    amount: Credits,
    bot_id: Uuid,
    run_id: Option<Uuid>,
    reason: DenialReason,
});
payload!(CreditsExpired {
    grant_id: Uuid,
    amount: Credits
});
payload!(CreditsAlertSet { alert_id: Uuid, threshold: Credits, webhook_url: Option<String> });
payload!(CreditsAlertRemoved { alert_id: Uuid });
payload!(CreditsAlertTriggered {
    alert_id: Uuid,
    threshold: Credits,
    balance: Credits
});
payload!(CreditsAlertResolved {
    alert_id: Uuid,
    balance: Credits
});
payload!(CreditsLimitSet {
    period: String,
    limit: Credits
});

// ---------------------------------------------------------------- audit

payload!(AuditExported {
    format: String,
    filter: serde_json::Value,
    entries: u64
});

// ---------------------------------------------------------------- the enum

/// Why a stored event could not be turned into an [`Event`].
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown event type {0:?}")]
    UnknownType(String),
    #[error("{event_type} has no schema {schema} (current is {current})")]
    UnknownSchema {
        event_type: String,
        schema: u32,
        current: u32,
    },
    #[error("{event_type}: {source}")]
    Payload {
        event_type: String,
        source: serde_json::Error,
    },
}

macro_rules! catalog {
    ($($variant:ident = $name:literal @ $schema:literal),* $(,)?) => {
        /// Every event of the catalog.
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub enum Event {
            $($variant($variant),)*
        }

        $(impl From<$variant> for Event {
            fn from(p: $variant) -> Event {
                Event::$variant(p)
            }
        })*

        /// Every event type with its current schema version.
        pub const CATALOG: &[(&str, u32)] = &[$(($name, $schema),)*];

        impl Event {
            /// The stable, dotted name stored as the event's `type`.
            pub fn event_type(&self) -> &'static str {
                match self { $(Event::$variant(_) => $name,)* }
            }

            /// The payload's current schema version.
            pub fn schema(&self) -> u32 {
                match self { $(Event::$variant(_) => $schema,)* }
            }

            /// The payload as the JSON object stored as the event's `data`.
            pub fn data(&self) -> serde_json::Value {
                let v = match self { $(Event::$variant(p) => serde_json::to_value(p),)* };
                // Payloads are plain structs with string keys: serializing cannot fail.
                v.unwrap_or(serde_json::Value::Null)
            }

            /// Decodes a stored event, lifting an old schema with the upcasters first.
            pub fn decode(event_type: &str, schema: u32, data: &str) -> Result<Event, DecodeError> {
                let current = current_schema(event_type)
                    .ok_or_else(|| DecodeError::UnknownType(event_type.to_owned()))?;
                let data = upcast(event_type, schema, current, data)?;
                let bad = |source| DecodeError::Payload { event_type: event_type.to_owned(), source };
                match event_type {
                    $($name => serde_json::from_str(&data).map(Event::$variant).map_err(bad),)*
                    other => Err(DecodeError::UnknownType(other.to_owned())),
                }
            }
        }
    };
}

catalog! {
    UserRegistered = "user.registered" @ 1,
    UserPasswordChanged = "user.password_changed" @ 1,
    UserSignedIn = "user.signed_in" @ 1,
    UserSignInFailed = "user.sign_in_failed" @ 1,
    UserSessionRevoked = "user.session_revoked" @ 1,
    OrganizationCreated = "organization.created" @ 1,
    OrganizationProfileUpdated = "organization.profile_updated" @ 1,
    OwnershipTransferred = "organization.ownership_transferred" @ 1,
    SecurityPolicyChanged = "organization.security_policy_changed" @ 1,
    MemberInvited = "member.invited" @ 1,
    InvitationResent = "member.invitation_resent" @ 1,
    InvitationRevoked = "member.invitation_revoked" @ 1,
    MemberJoined = "member.joined" @ 1,
    MemberRemoved = "member.removed" @ 1,
    MemberLeft = "member.left" @ 1,
    RoleCreated = "role.created" @ 1,
    RoleUpdated = "role.updated" @ 1,
    RoleDeleted = "role.deleted" @ 1,
    RoleGranted = "role.granted" @ 1,
    RoleRevoked = "role.revoked" @ 1,
    DeveloperCertified = "developer.certified" @ 1,
    BotRegistered = "bot.registered" @ 2,
    BotRenamed = "bot.renamed" @ 1,
    BotEnabled = "bot.enabled" @ 1,
    BotDisabled = "bot.disabled" @ 1,
    BotStatusChanged = "bot.status_changed" @ 1,
    BotTokenRotated = "bot.token_rotated" @ 1,
    BotDeleted = "bot.deleted" @ 1,
    RunStarted = "run.started" @ 1,
    RunCompleted = "run.completed" @ 1,
    RunFailed = "run.failed" @ 1,
    RunCancelled = "run.cancelled" @ 1,
    TriggerCreated = "trigger.created" @ 1,
    TriggerUpdated = "trigger.updated" @ 1,
    TriggerEnabled = "trigger.enabled" @ 1,
    TriggerDisabled = "trigger.disabled" @ 1,
    TriggerDeleted = "trigger.deleted" @ 1,
    TriggerFired = "trigger.fired" @ 1,
    TriggerAutoDisabled = "trigger.auto_disabled" @ 1,
    AppCreated = "app.created" @ 1,
    AppVersionPublished = "app.version_published" @ 1,
    AppUnpublished = "app.unpublished" @ 1,
    SubscriptionStarted = "subscription.started" @ 1,
    SubscriptionPlanChanged = "subscription.plan_changed" @ 1,
    SubscriptionRenewed = "subscription.renewed" @ 1,
    SubscriptionCancelled = "subscription.cancelled" @ 1,
    PaymentMethodAdded = "payment_method.added" @ 1,
    PaymentMethodRemoved = "payment_method.removed" @ 1,
    PaymentMethodDefaultSet = "payment_method.default_set" @ 1,
    BillingInfoUpdated = "billing_info.updated" @ 1,
    OrderPlaced = "order.placed" @ 1,
    InvoiceIssued = "invoice.issued" @ 1,
    InvoicePaid = "invoice.paid" @ 1,
    InvoiceVoided = "invoice.voided" @ 1,
    CreditsGranted = "credits.granted" @ 1,
    CreditsConsumed = "credits.consumed" @ 1,
    CreditsConsumptionDenied = "credits.consumption_denied" @ 1,
    CreditsExpired = "credits.expired" @ 1,
    CreditsAlertSet = "credits.alert_set" @ 1,
    CreditsAlertRemoved = "credits.alert_removed" @ 1,
    CreditsAlertTriggered = "credits.alert_triggered" @ 1,
    CreditsAlertResolved = "credits.alert_resolved" @ 1,
    CreditsLimitSet = "credits.limit_set" @ 1,
    AuditExported = "audit.exported" @ 1,
}

pub fn current_schema(event_type: &str) -> Option<u32> {
    CATALOG
        .iter()
        .find(|(t, _)| *t == event_type)
        .map(|(_, s)| *s)
}

/// One step that lifts a payload of `event_type` from schema `from` to `from + 1`.
pub struct Upcaster {
    pub event_type: &'static str,
    pub from: u32,
    pub lift: fn(serde_json::Value) -> serde_json::Value,
}

/// Every upcaster. A payload is lifted one version at a time until it is current.
pub const UPCASTERS: &[Upcaster] = &[Upcaster {
    event_type: "bot.registered",
    from: 1,
    lift: |mut v| {
        if let Some(o) = v.as_object_mut() {
            o.entry("machine").or_insert(serde_json::Value::Null);
        }
        v
    },
}];

fn upcast<'a>(
    event_type: &str,
    schema: u32,
    current: u32,
    data: &'a str,
) -> Result<Cow<'a, str>, DecodeError> {
    if schema == current {
        return Ok(Cow::Borrowed(data));
    }
    let unknown = || DecodeError::UnknownSchema {
        event_type: event_type.to_owned(),
        schema,
        current,
    };
    if schema == 0 || schema > current {
        return Err(unknown());
    }
    let mut v: serde_json::Value =
        serde_json::from_str(data).map_err(|source| DecodeError::Payload {
            event_type: event_type.to_owned(),
            source,
        })?;
    for from in schema..current {
        let step = UPCASTERS
            .iter()
            .find(|u| u.event_type == event_type && u.from == from)
            .ok_or_else(unknown)?;
        v = (step.lift)(v);
    }
    Ok(Cow::Owned(v.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_is_named_once() {
        let mut names: Vec<&str> = CATALOG.iter().map(|(n, _)| *n).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(names.len(), before);
        assert_eq!(before, 64);
    }

    #[test]
    fn a_schema_1_bot_registration_is_lifted() {
        let e = Event::decode(
            "bot.registered",
            1,
            r#"{"bot_id":"00000000-0000-0000-0000-000000000001","name":"b"}"#,
        );
        assert!(matches!(
            e,
            Ok(Event::BotRegistered(BotRegistered { machine: None, .. }))
        ));
        assert!(matches!(
            Event::decode("bot.registered", 3, "{}"),
            Err(DecodeError::UnknownSchema { .. })
        ));
        assert!(matches!(
            Event::decode("bot.flew", 1, "{}"),
            Err(DecodeError::UnknownType(_))
        ));
    }
}
