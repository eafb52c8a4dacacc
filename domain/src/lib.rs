//! Orgline's domain: the console's rules as pure deciders.
//!
//! Every aggregate is `decide(&self, command, &Context) -> Result<Vec<Event>, DomainError>`
//! plus `apply(&mut self, &Event)`. Nothing here does IO, is async, reads a clock or
//! draws a random number: time, the actor, their permissions and the seed of new ids
//! come in through [`Context`]; facts held elsewhere (is this email taken, how many
//! seats does the plan have) come in on the command.
//!
//! # Layout
//! - [`events`]: the event catalog, schema versions, upcasters.
//! - [`permissions`]: the permission catalog and built-in roles.
//! - [`amounts`]: `Credits` and `Cents`, checked integers of the smallest unit.
//! - [`plans`]: the plan catalog as data.
//! - [`context`], [`error`], [`aggregate`] (the trait and the given/when/then harness).
//! - Aggregates: [`user`], [`organization`], [`bot`], [`run`], [`trigger`], [`app`],
//!   [`billing`], [`ledger`] (credits).
//! - [`process`]: the follow-up commands one stream's events cause in another.
//! - [`streams`]: stream names.

pub mod aggregate;
pub mod amounts;
pub mod app;
pub mod billing;
pub mod bot;
pub mod context;
pub mod error;
pub mod events;
pub mod ledger;
pub mod organization;
pub mod permissions;
pub mod plans;
pub mod process;
pub mod run;
pub mod streams;
pub mod trigger;
pub mod user;

pub use aggregate::Aggregate;
pub use amounts::{Cents, Credits};
pub use context::{Actor, Context};
pub use error::{DomainError, ErrorKind};
pub use events::Event;
pub use permissions::{Permission, PermissionSet};

/// Shared input checks.
pub mod validate {
    use crate::error::DomainError;

    /// Longest name of anything (organization, bot, role, trigger, app).
    pub const NAME_CHARS_MAX: usize = 100;
    /// Longest free text (descriptions, notes, errors, reasons).
    pub const TEXT_CHARS_MAX: usize = 2_000;
    /// Longest email address (RFC 5321).
    pub const EMAIL_BYTES_MAX: usize = 254;

    /// A trimmed, non-empty name without control characters.
    pub fn name(field: &'static str, s: &str) -> Result<String, DomainError> {
        let t = s.trim();
        if t.is_empty() {
            return Err(DomainError::invalid(field, "must not be empty"));
        }
        text(field, t, NAME_CHARS_MAX)
    }

    /// Text of at most `max` characters without control characters (newlines allowed).
    pub fn text(field: &'static str, s: &str, max: usize) -> Result<String, DomainError> {
        if s.chars().count() > max {
            return Err(DomainError::invalid(
                field,
                format!("longer than {max} characters"),
            ));
        }
        if s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
            return Err(DomainError::invalid(field, "contains control characters"));
        }
        Ok(s.to_owned())
    }

    /// An email address, lower-cased: one `@`, a non-empty local part, a domain with a
    /// dot, no spaces.
    pub fn email(field: &'static str, s: &str) -> Result<String, DomainError> {
        let e = s.trim().to_lowercase();
        let ok = e.len() <= EMAIL_BYTES_MAX
            && !e.chars().any(|c| c.is_whitespace() || c.is_control())
            && match e.split_once('@') {
                Some((local, domain)) => {
                    !local.is_empty()
                        && !domain.contains('@')
                        && domain.contains('.')
                        && !domain.starts_with('.')
                        && !domain.ends_with('.')
                }
                None => false,
            };
        if ok {
            Ok(e)
        } else {
            Err(DomainError::invalid(
                field,
                format!("{s:?} is not an email address"),
            ))
        }
    }

    /// An `http(s)://` URL of reasonable length.
    pub fn url(field: &'static str, s: &str) -> Result<String, DomainError> {
        let ok = (s.starts_with("https://") || s.starts_with("http://"))
            && s.len() <= 2_048
            && s.len() > "https://".len()
            && !s.chars().any(|c| c.is_whitespace() || c.is_control());
        if ok {
            Ok(s.to_owned())
        } else {
            Err(DomainError::invalid(
                field,
                format!("{s:?} is not an http(s) URL"),
            ))
        }
    }
}
