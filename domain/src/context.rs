//! What a decision knows besides the aggregate's own state: who acts, with which
//! permissions, at what time, and where new ids come from. `domain` reads no clock and
//! draws no random numbers: the caller passes them in.

use crate::error::DomainError;
use crate::permissions::{Permission, PermissionSet};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// Who is acting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "lowercase")]
pub enum Actor {
    /// A signed-in user.
    User(Uuid),
    /// A bot with its bot token; it may act only for itself.
    Bot(Uuid),
    /// Orgline itself: processes, schedules, expiry. Holds every permission.
    System,
}

/// The inputs of one decision.
#[derive(Clone, Debug)]
pub struct Context {
    pub now: OffsetDateTime,
    pub actor: Actor,
    /// What the actor holds in the organization the command is about, computed by the
    /// caller from the organization's state (`Organization::permissions_of`).
    pub permissions: PermissionSet,
    /// Seed of the ids this decision may mint (`new_id`); random in production,
    /// fixed in tests.
    pub id_seed: u128,
}

impl Context {
    pub fn new(
        now: OffsetDateTime,
        actor: Actor,
        permissions: PermissionSet,
        id_seed: u128,
    ) -> Context {
        Context {
            now,
            actor,
            permissions,
            id_seed,
        }
    }

    /// A system context: every permission.
    pub fn system(now: OffsetDateTime, id_seed: u128) -> Context {
        Context::new(
            now,
            Actor::System,
            Permission::ALL.iter().copied().collect(),
            id_seed,
        )
    }

    /// Refuses unless the actor holds `p` (the system actor holds everything).
    pub fn require(&self, p: Permission) -> Result<(), DomainError> {
        if self.actor == Actor::System || self.permissions.contains(&p) {
            Ok(())
        } else {
            Err(DomainError::Forbidden(p))
        }
    }

    /// The acting user's id, or `NotPermitted` for bots and the system.
    pub fn user(&self) -> Result<Uuid, DomainError> {
        match self.actor {
            Actor::User(id) => Ok(id),
            _ => Err(DomainError::NotPermitted(
                "only a signed-in user can do this",
            )),
        }
    }

    /// The `n`-th id this decision mints: a version-4-shaped UUID derived from the
    /// seed, so the same inputs decide the same events.
    pub fn new_id(&self, n: u64) -> Uuid {
        let mixed =
            self.id_seed ^ (u128::from(n).wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835));
        uuid::Builder::from_random_bytes(mixed.to_le_bytes()).into_uuid()
    }
}
