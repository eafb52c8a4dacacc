//! The domain's one error enum.

use crate::permissions::Permission;

/// The category of a [`DomainError`]: what the API layer turns it into
/// (`extensions.code` in GraphQL).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// `FORBIDDEN`: the actor may not do this.
    Forbidden,
    /// `NOT_FOUND`: the thing named does not exist (or is invisible to the actor).
    NotFound,
    /// `BAD_USER_INPUT`: the command's input is malformed or breaks a rule of form.
    BadInput,
    /// `CONFLICT`: the command does not fit the current state (already done, not
    /// pending, the last owner…). Retrying the same command will not help.
    Conflict,
    /// `LIMIT_EXCEEDED`: a quota (seats, credits, a usage limit) stops it.
    LimitExceeded,
}

/// Why a command was refused. Nothing was decided: no event is emitted.
/// Derives `PartialEq` so tests compare values.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("missing permission {0}")]
    Forbidden(Permission),
    #[error("not permitted: {0}")]
    NotPermitted(&'static str),
    #[error("{what} {id} not found")]
    NotFound { what: &'static str, id: String },
    #[error("{what} {id} already exists")]
    AlreadyExists { what: &'static str, id: String },
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    /// The thing is in a state where the action does not apply (a completed run
    /// cannot be cancelled, a voided invoice cannot be paid).
    #[error("{what} is {state}: cannot {action}")]
    WrongState {
        what: &'static str,
        state: String,
        action: &'static str,
    },
    #[error("an organization must keep at least one owner")]
    LastOwner,
    #[error("a member must keep at least one role")]
    LastRole,
    #[error("built-in roles cannot be changed or deleted")]
    BuiltInRole,
    #[error("unknown permission {0:?}")]
    UnknownPermission(String),
    #[error("all {total} seats are taken")]
    SeatsFull { total: u32 },
    #[error("the invitation was sent to another email address")]
    EmailMismatch,
    #[error("the invitation expired")]
    InvitationExpired,
    #[error("already a member")]
    AlreadyMember,
    #[error("{0} is not a member of this organization")]
    NotAMember(String),
    #[error("invalid cron expression {expression:?}: {reason}")]
    InvalidCron { expression: String, reason: String },
    #[error("the organization's credit balance is exhausted")]
    InsufficientCredits,
    #[error("the usage limit for this period is reached")]
    UsageLimitReached,
    #[error("the value overflows")]
    Overflow,
}

impl DomainError {
    pub fn kind(&self) -> ErrorKind {
        use DomainError::*;
        match self {
            Forbidden(_) | NotPermitted(_) | EmailMismatch => ErrorKind::Forbidden,
            NotFound { .. } | NotAMember(_) => ErrorKind::NotFound,
            Invalid { .. } | BuiltInRole | UnknownPermission(_) | InvalidCron { .. } | Overflow => {
                ErrorKind::BadInput
            }
            AlreadyExists { .. }
            | WrongState { .. }
            | LastOwner
            | LastRole
            | InvitationExpired
            | AlreadyMember => ErrorKind::Conflict,
            SeatsFull { .. } | InsufficientCredits | UsageLimitReached => ErrorKind::LimitExceeded,
        }
    }

    pub fn invalid(field: &'static str, reason: impl Into<String>) -> DomainError {
        DomainError::Invalid {
            field,
            reason: reason.into(),
        }
    }

    pub fn not_found(what: &'static str, id: impl ToString) -> DomainError {
        DomainError::NotFound {
            what,
            id: id.to_string(),
        }
    }

    pub fn exists(what: &'static str, id: impl ToString) -> DomainError {
        DomainError::AlreadyExists {
            what,
            id: id.to_string(),
        }
    }

    pub fn wrong_state(
        what: &'static str,
        state: impl Into<String>,
        action: &'static str,
    ) -> DomainError {
        DomainError::WrongState {
            what,
            state: state.into(),
            action,
        }
    }
}
