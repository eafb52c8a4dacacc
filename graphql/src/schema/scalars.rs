//! Scalars, enums, cursors and id parsing.

use crate::error::{ApiError, ApiResult};
use async_graphql::{Enum, ID, InputValueError, InputValueResult, Scalar, ScalarType, Value};
use base64::Engine as _;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

/// `DateTime`: RFC 3339.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DateTime(pub OffsetDateTime);

#[Scalar(name = "DateTime")]
impl ScalarType for DateTime {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::String(s) => OffsetDateTime::parse(s, &Rfc3339)
                .map(DateTime)
                .map_err(|_| {
                    InputValueError::custom(format!("{s:?} is not an RFC 3339 date-time"))
                }),
            _ => Err(InputValueError::expected_type(value)),
        }
    }
    fn to_value(&self) -> Value {
        Value::String(self.0.format(&Rfc3339).unwrap_or_default())
    }
}

impl From<OffsetDateTime> for DateTime {
    fn from(t: OffsetDateTime) -> DateTime {
        DateTime(t)
    }
}

/// `Position`: a decimal string of an unsigned 64-bit log position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position(pub u64);

#[Scalar(name = "Position")]
impl ScalarType for Position {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::String(s) => s.parse::<u64>().map(Position).map_err(|_| {
                InputValueError::custom(format!("{s:?} is not a position (a decimal u64)"))
            }),
            Value::Number(n) => n
                .as_u64()
                .map(Position)
                .ok_or_else(|| InputValueError::custom("a position is an unsigned integer")),
            _ => Err(InputValueError::expected_type(value)),
        }
    }
    fn to_value(&self) -> Value {
        Value::String(self.0.to_string())
    }
}

/// Parses an id input; a malformed one is `BAD_USER_INPUT`.
pub fn uuid(field: &str, id: &ID) -> ApiResult<Uuid> {
    id.parse::<Uuid>()
        .map_err(|_| ApiError::bad_input(format!("{field}: {:?} is not an id", id.as_str())))
}

/// Opaque cursors: base64 of `kind:value`.
pub fn cursor(kind: &str, value: impl std::fmt::Display) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{kind}:{value}"))
}

pub fn parse_cursor<T: std::str::FromStr>(kind: &str, after: Option<&str>) -> ApiResult<Option<T>> {
    let Some(after) = after else { return Ok(None) };
    let bad = || ApiError::bad_input(format!("after: {after:?} is not a cursor of this list"));
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(after)
        .map_err(|_| bad())?;
    let s = String::from_utf8(raw).map_err(|_| bad())?;
    let (k, v) = s.split_once(':').ok_or_else(bad)?;
    if k != kind {
        return Err(bad());
    }
    v.parse().map(Some).map_err(|_| bad())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Enum)]
pub enum MemberKind {
    Member,
    ExternalCollaborator,
}

impl From<domain::events::MemberKind> for MemberKind {
    fn from(k: domain::events::MemberKind) -> MemberKind {
        match k {
            domain::events::MemberKind::Member => MemberKind::Member,
            domain::events::MemberKind::ExternalCollaborator => MemberKind::ExternalCollaborator,
        }
    }
}
impl From<MemberKind> for domain::events::MemberKind {
    fn from(k: MemberKind) -> domain::events::MemberKind {
        match k {
            MemberKind::Member => domain::events::MemberKind::Member,
            MemberKind::ExternalCollaborator => domain::events::MemberKind::ExternalCollaborator,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Enum)]
pub enum InvitationStatus {
    Pending,
    Accepted,
    Revoked,
    Expired,
}

impl From<projections::console::query::InvitationStatus> for InvitationStatus {
    fn from(s: projections::console::query::InvitationStatus) -> InvitationStatus {
        use projections::console::query::InvitationStatus as S;
        match s {
            S::Pending => InvitationStatus::Pending,
            S::Accepted => InvitationStatus::Accepted,
            S::Revoked => InvitationStatus::Revoked,
            S::Expired => InvitationStatus::Expired,
        }
    }
}
impl From<InvitationStatus> for projections::console::query::InvitationStatus {
    fn from(s: InvitationStatus) -> projections::console::query::InvitationStatus {
        use projections::console::query::InvitationStatus as S;
        match s {
            InvitationStatus::Pending => S::Pending,
            InvitationStatus::Accepted => S::Accepted,
            InvitationStatus::Revoked => S::Revoked,
            InvitationStatus::Expired => S::Expired,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Enum)]
pub enum BotStatus {
    Online,
    Offline,
    Busy,
    Error,
}

impl From<domain::events::BotStatus> for BotStatus {
    fn from(s: domain::events::BotStatus) -> BotStatus {
        use domain::events::BotStatus as S;
        match s {
            S::Online => BotStatus::Online,
            S::Offline => BotStatus::Offline,
            S::Busy => BotStatus::Busy,
            S::Error => BotStatus::Error,
        }
    }
}
impl From<BotStatus> for domain::events::BotStatus {
    fn from(s: BotStatus) -> domain::events::BotStatus {
        use domain::events::BotStatus as S;
        match s {
            BotStatus::Online => S::Online,
            BotStatus::Offline => S::Offline,
            BotStatus::Busy => S::Busy,
            BotStatus::Error => S::Error,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Enum)]
pub enum RunStatus {
    Running,
    Completed,
    Failed,
    Cancelled,
}

impl From<projections::runs::Status> for RunStatus {
    fn from(s: projections::runs::Status) -> RunStatus {
        use projections::runs::Status as S;
        match s {
            S::Running => RunStatus::Running,
            S::Completed => RunStatus::Completed,
            S::Failed => RunStatus::Failed,
            S::Cancelled => RunStatus::Cancelled,
        }
    }
}
impl From<RunStatus> for projections::runs::Status {
    fn from(s: RunStatus) -> projections::runs::Status {
        use projections::runs::Status as S;
        match s {
            RunStatus::Running => S::Running,
            RunStatus::Completed => S::Completed,
            RunStatus::Failed => S::Failed,
            RunStatus::Cancelled => S::Cancelled,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Enum)]
pub enum TriggerKind {
    Schedule,
    Webhook,
    Email,
    File,
    Manual,
}

impl From<domain::events::TriggerKind> for TriggerKind {
    fn from(k: domain::events::TriggerKind) -> TriggerKind {
        use domain::events::TriggerKind as K;
        match k {
            K::Schedule => TriggerKind::Schedule,
            K::Webhook => TriggerKind::Webhook,
            K::Email => TriggerKind::Email,
            K::File => TriggerKind::File,
            K::Manual => TriggerKind::Manual,
        }
    }
}
impl From<TriggerKind> for domain::events::TriggerKind {
    fn from(k: TriggerKind) -> domain::events::TriggerKind {
        use domain::events::TriggerKind as K;
        match k {
            TriggerKind::Schedule => K::Schedule,
            TriggerKind::Webhook => K::Webhook,
            TriggerKind::Email => K::Email,
            TriggerKind::File => K::File,
            TriggerKind::Manual => K::Manual,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Enum)]
pub enum AppKind {
    App,
    Command,
}

impl From<domain::events::AppKind> for AppKind {
    fn from(k: domain::events::AppKind) -> AppKind {
        match k {
            domain::events::AppKind::App => AppKind::App,
            domain::events::AppKind::Command => AppKind::Command,
        }
    }
}
impl From<AppKind> for domain::events::AppKind {
    fn from(k: AppKind) -> domain::events::AppKind {
        match k {
            AppKind::App => domain::events::AppKind::App,
            AppKind::Command => domain::events::AppKind::Command,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Enum)]
pub enum Visibility {
    Private,
    Marketplace,
}

impl From<domain::events::Visibility> for Visibility {
    fn from(v: domain::events::Visibility) -> Visibility {
        match v {
            domain::events::Visibility::Private => Visibility::Private,
            domain::events::Visibility::Marketplace => Visibility::Marketplace,
        }
    }
}
impl From<Visibility> for domain::events::Visibility {
    fn from(v: Visibility) -> domain::events::Visibility {
        match v {
            Visibility::Private => domain::events::Visibility::Private,
            Visibility::Marketplace => domain::events::Visibility::Marketplace,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Enum)]
pub enum InvoiceStatus {
    Open,
    Paid,
    Void,
}

impl From<domain::billing::InvoiceStatus> for InvoiceStatus {
    fn from(s: domain::billing::InvoiceStatus) -> InvoiceStatus {
        match s {
            domain::billing::InvoiceStatus::Open => InvoiceStatus::Open,
            domain::billing::InvoiceStatus::Paid => InvoiceStatus::Paid,
            domain::billing::InvoiceStatus::Void => InvoiceStatus::Void,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Enum)]
pub enum UsageBucket {
    Day,
    Bot,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Enum)]
pub enum ActorKind {
    User,
    Bot,
    System,
}

impl From<store::ActorKind> for ActorKind {
    fn from(k: store::ActorKind) -> ActorKind {
        match k {
            store::ActorKind::User => ActorKind::User,
            store::ActorKind::Bot => ActorKind::Bot,
            store::ActorKind::System => ActorKind::System,
        }
    }
}
