//! Orgline's projections: the `Projection` trait, the runner and the built-in read models.
//!
//! Not built yet: this crate is the subject of issue 4.
