//! The user account — stream `user-<user_id>`.
//!
//! Holds who the user is and which sessions are open. Credentials (password hashes,
//! session token hashes) are never events: they live in the credentials store; this
//! aggregate only records that a password changed or a session opened.

use crate::aggregate::Aggregate;
use crate::context::{Actor, Context};
use crate::error::DomainError;
use crate::events::{
    Event, UserPasswordChanged, UserRegistered, UserSessionRevoked, UserSignInFailed, UserSignedIn,
};
use crate::validate;
use std::collections::BTreeSet;
use uuid::Uuid;

/// Longest alias (a display name).
pub const ALIAS_CHARS_MAX: usize = 64;
/// Longest recorded reason of a failed sign-in.
pub const REASON_CHARS_MAX: usize = 200;

#[derive(Clone, Debug, PartialEq)]
pub enum UserCommand {
    /// `email_in_use`: whether another account already has this email (from the
    /// accounts read model).
    Register {
        user_id: Uuid,
        email: String,
        alias: String,
        email_in_use: bool,
    },
    ChangePassword,
    RecordSignIn {
        session_id: Uuid,
    },
    RecordSignInFailure {
        reason: String,
    },
    RevokeSession {
        session_id: Uuid,
    },
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct User {
    pub id: Option<Uuid>,
    pub email: String,
    pub alias: String,
    /// Sessions opened and not revoked (expiry is the credentials store's business).
    pub sessions: BTreeSet<Uuid>,
}

impl User {
    fn id(&self) -> Result<Uuid, DomainError> {
        self.id
            .ok_or_else(|| DomainError::not_found("user", "(unregistered)"))
    }

    /// The user themself or the system may act on the account.
    fn check_self(&self, ctx: &Context) -> Result<Uuid, DomainError> {
        let id = self.id()?;
        match ctx.actor {
            Actor::User(u) if u == id => Ok(id),
            Actor::System => Ok(id),
            _ => Err(DomainError::NotPermitted(
                "only the user can change their own account",
            )),
        }
    }
}

impl Aggregate for User {
    type Command = UserCommand;

    fn apply(&mut self, event: &Event) {
        match event {
            Event::UserRegistered(e) => {
                self.id = Some(e.user_id);
                self.email = e.email.clone();
                self.alias = e.alias.clone();
            }
            Event::UserSignedIn(e) => {
                self.sessions.insert(e.session_id);
            }
            Event::UserSessionRevoked(e) => {
                self.sessions.remove(&e.session_id);
            }
            _ => {}
        }
    }

    fn decide(&self, command: &UserCommand, ctx: &Context) -> Result<Vec<Event>, DomainError> {
        match command {
            UserCommand::Register {
                user_id,
                email,
                alias,
                email_in_use,
            } => {
                if self.id.is_some() {
                    return Err(DomainError::exists("user", user_id));
                }
                if !matches!(ctx.actor, Actor::System) && ctx.actor != Actor::User(*user_id) {
                    return Err(DomainError::NotPermitted(
                        "an account is registered by its owner",
                    ));
                }
                let email = validate::email("email", email)?;
                if *email_in_use {
                    return Err(DomainError::exists("account with email", &email));
                }
                let alias = validate::name("alias", alias)?;
                if alias.chars().count() > ALIAS_CHARS_MAX {
                    return Err(DomainError::invalid(
                        "alias",
                        format!("longer than {ALIAS_CHARS_MAX} characters"),
                    ));
                }
                Ok(vec![
                    UserRegistered {
                        user_id: *user_id,
                        email,
                        alias,
                    }
                    .into(),
                ])
            }
            UserCommand::ChangePassword => {
                self.check_self(ctx)?;
                Ok(vec![UserPasswordChanged {}.into()])
            }
            UserCommand::RecordSignIn { session_id } => {
                self.check_self(ctx)?;
                if self.sessions.contains(session_id) {
                    return Err(DomainError::exists("session", session_id));
                }
                Ok(vec![
                    UserSignedIn {
                        session_id: *session_id,
                    }
                    .into(),
                ])
            }
            UserCommand::RecordSignInFailure { reason } => {
                self.id()?;
                if ctx.actor != Actor::System {
                    return Err(DomainError::NotPermitted(
                        "failed sign-ins are recorded by the system",
                    ));
                }
                let reason = validate::text("reason", reason, REASON_CHARS_MAX)?;
                Ok(vec![UserSignInFailed { reason }.into()])
            }
            UserCommand::RevokeSession { session_id } => {
                self.check_self(ctx)?;
                if !self.sessions.contains(session_id) {
                    return Err(DomainError::not_found("session", session_id));
                }
                Ok(vec![
                    UserSessionRevoked {
                        session_id: *session_id,
                    }
                    .into(),
                ])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::testing::{ctx, given};

    const ADA: Uuid = Uuid::from_u128(1);
    const BOB: Uuid = Uuid::from_u128(2);
    const SESSION: Uuid = Uuid::from_u128(77);

    fn registered() -> Event {
        UserRegistered {
            user_id: ADA,
            email: "ada@example.com".into(),
            alias: "Ada".into(),
        }
        .into()
    }

    fn register(email: &str, alias: &str, in_use: bool) -> UserCommand {
        UserCommand::Register {
            user_id: ADA,
            email: email.into(),
            alias: alias.into(),
            email_in_use: in_use,
        }
    }

    #[test]
    fn a_user_registers_with_a_normalized_email() {
        given::<User>([])
            .with(ctx(Actor::User(ADA), &[]))
            .when(register(" Ada@Example.COM ", "Ada", false))
            .then([registered()]);
    }

    #[test]
    fn registration_refuses_a_taken_email_a_bad_email_and_a_second_registration() {
        given::<User>([])
            .when(register("ada@example.com", "Ada", true))
            .then_err(DomainError::exists("account with email", "ada@example.com"));
        given::<User>([])
            .when(register("not-an-email", "Ada", false))
            .result()
            .unwrap_err();
        given::<User>([])
            .when(register("ada@example.com", "  ", false))
            .then_err(DomainError::invalid("alias", "must not be empty"));
        given::<User>([registered()])
            .when(register("ada@example.com", "Ada", false))
            .then_err(DomainError::exists("user", ADA));
    }

    #[test]
    fn nobody_registers_an_account_for_someone_else() {
        given::<User>([])
            .with(ctx(Actor::User(BOB), &[]))
            .when(register("ada@example.com", "Ada", false))
            .then_err(DomainError::NotPermitted(
                "an account is registered by its owner",
            ));
    }

    #[test]
    fn sessions_open_and_are_revoked_once() {
        given::<User>([registered()])
            .with(ctx(Actor::User(ADA), &[]))
            .when(UserCommand::RecordSignIn {
                session_id: SESSION,
            })
            .then([UserSignedIn {
                session_id: SESSION,
            }
            .into()]);
        let signed_in: Event = UserSignedIn {
            session_id: SESSION,
        }
        .into();
        given::<User>([registered(), signed_in.clone()])
            .with(ctx(Actor::User(ADA), &[]))
            .when(UserCommand::RevokeSession {
                session_id: SESSION,
            })
            .then([UserSessionRevoked {
                session_id: SESSION,
            }
            .into()]);
        given::<User>([
            registered(),
            signed_in,
            UserSessionRevoked {
                session_id: SESSION,
            }
            .into(),
        ])
        .with(ctx(Actor::User(ADA), &[]))
        .when(UserCommand::RevokeSession {
            session_id: SESSION,
        })
        .then_err(DomainError::not_found("session", SESSION));
    }

    #[test]
    fn only_the_user_changes_their_password() {
        given::<User>([registered()])
            .with(ctx(Actor::User(ADA), &[]))
            .when(UserCommand::ChangePassword)
            .then([UserPasswordChanged {}.into()]);
        given::<User>([registered()])
            .with(ctx(Actor::User(BOB), &[]))
            .when(UserCommand::ChangePassword)
            .then_err(DomainError::NotPermitted(
                "only the user can change their own account",
            ));
        given::<User>([])
            .when(UserCommand::ChangePassword)
            .then_err(DomainError::not_found("user", "(unregistered)"));
    }

    #[test]
    fn failed_sign_ins_are_recorded_by_the_system_only() {
        given::<User>([registered()])
            .when(UserCommand::RecordSignInFailure {
                reason: "wrong password".into(),
            })
            .then([UserSignInFailed {
                reason: "wrong password".into(),
            }
            .into()]);
        given::<User>([registered()])
            .with(ctx(Actor::User(ADA), &[]))
            .when(UserCommand::RecordSignInFailure { reason: "x".into() })
            .then_err(DomainError::NotPermitted(
                "failed sign-ins are recorded by the system",
            ));
    }
}
