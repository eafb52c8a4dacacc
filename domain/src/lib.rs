//! Orgline's domain: events, commands, aggregates, invariants and permissions as pure
//! deciders.
//!
//! Not built yet: this crate is the subject of issue 3. It exists so the workspace has
//! the shape `ARCHITECTURE.md` describes.
