//! The decider shape every aggregate has, and the given/when/then harness its tests use.

use crate::context::Context;
use crate::error::DomainError;
use crate::events::Event;

/// An aggregate: the state of one stream, folded from its events, and the rules that
/// turn a command into new events.
pub trait Aggregate: Default + Clone + std::fmt::Debug {
    type Command: std::fmt::Debug;

    /// Folds one event of this aggregate's stream into the state. Events of other
    /// aggregates are ignored.
    fn apply(&mut self, event: &Event);

    /// Decides what a command means: the events to append, or why it is refused.
    /// Pure: everything it needs is in `self`, the command and `ctx`.
    fn decide(&self, command: &Self::Command, ctx: &Context) -> Result<Vec<Event>, DomainError>;

    /// The state after `events`.
    fn replay<'a>(events: impl IntoIterator<Item = &'a Event>) -> Self {
        let mut state = Self::default();
        for e in events {
            state.apply(e);
        }
        state
    }

    /// Decides and applies in one step (simulations and tests).
    fn execute(
        &mut self,
        command: &Self::Command,
        ctx: &Context,
    ) -> Result<Vec<Event>, DomainError> {
        let events = self.decide(command, ctx)?;
        for e in &events {
            self.apply(e);
        }
        Ok(events)
    }
}

/// Given/when/then for deciders:
///
/// ```ignore
/// given::<Organization>([created()])
///     .with(owner_ctx())
///     .when(RemoveMember { user_id: OWNER })
///     .then_err(DomainError::LastOwner);
/// ```
pub mod testing {
    use super::*;
    use crate::context::Actor;
    use crate::permissions::{Permission, PermissionSet};
    use time::OffsetDateTime;
    use uuid::Uuid;

    /// The fixed "now" of domain tests: 2026-06-15T12:00:00Z.
    pub fn now() -> OffsetDateTime {
        time::macros::datetime!(2026-06-15 12:00 UTC)
    }

    /// A context for `actor` holding `permissions`, at [`now`].
    pub fn ctx(actor: Actor, permissions: &[Permission]) -> Context {
        Context::new(
            now(),
            actor,
            permissions.iter().copied().collect::<PermissionSet>(),
            0x5EED,
        )
    }

    /// A user holding every permission.
    pub fn admin_ctx(user: Uuid) -> Context {
        ctx(Actor::User(user), Permission::ALL)
    }

    pub struct Given<A: Aggregate> {
        state: A,
        ctx: Context,
    }

    pub fn given<A: Aggregate>(events: impl IntoIterator<Item = Event>) -> Given<A> {
        let events: Vec<Event> = events.into_iter().collect();
        Given {
            state: A::replay(&events),
            ctx: Context::system(now(), 0x5EED),
        }
    }

    impl<A: Aggregate> Given<A> {
        pub fn with(mut self, ctx: Context) -> Given<A> {
            self.ctx = ctx;
            self
        }

        pub fn when(self, command: A::Command) -> Then<A> {
            let result = self.state.decide(&command, &self.ctx);
            Then { command, result }
        }
    }

    pub struct Then<A: Aggregate> {
        command: A::Command,
        result: Result<Vec<Event>, DomainError>,
    }

    impl<A: Aggregate> Then<A> {
        #[track_caller]
        pub fn then(self, expected: impl IntoIterator<Item = Event>) {
            let expected: Vec<Event> = expected.into_iter().collect();
            assert_eq!(self.result, Ok(expected), "when {:?}", self.command);
        }

        #[track_caller]
        pub fn then_err(self, expected: DomainError) {
            assert_eq!(self.result, Err(expected), "when {:?}", self.command);
        }

        /// The raw result, for assertions the two above cannot express.
        pub fn result(self) -> Result<Vec<Event>, DomainError> {
            self.result
        }
    }
}
