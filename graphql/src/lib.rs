//! Orgline's GraphQL API and HTTP server.
//!
//! Not built yet: this crate is the subject of issue 5.
