//! Support for the load driver: a generator of organization histories made of valid
//! catalog events, for the projection workloads (P3, P6, P7).
//!
//! (The full fixture generator — Zipf-sized orgs through the domain's deciders — is
//! issue 6; this one writes the shapes the workloads need, fast.)

pub mod api;
pub mod history;
pub mod hostile;
