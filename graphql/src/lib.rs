//! Orgline's GraphQL API: the contract of `shared/design/schema.graphql` served over
//! HTTP and WebSocket by axum, with sign-in, tokens, permissions, limits and metrics.
//! It holds no business rules: resolvers authorize, hand commands to the domain's
//! deciders through the stream writers, and read the projections.
//!
//! # Layout
//! - [`service`]: the application core — access checks, the write path (decide →
//!   append → follow-ups → read-your-writes), the read models.
//! - [`writer`]: one task per active stream; commands decided in batches (group commit).
//! - [`auth`]: credentials kept out of the log (Argon2id, hashed tokens, throttling).
//! - [`schema`]: query, mutation (per area), subscription, types, scalars.
//! - [`server`]: the axum router, limits, GraphiQL, health, metrics; [`ws`]: the
//!   WebSocket protocols, with `graphql-transport-ws`'s close codes.
//! - [`limits`]: what a GraphQL document may cost, checked before parsing and before
//!   any fragment is expanded.
//! - [`live`]: one follower of the log fanned out per organization, for subscriptions.
//! - [`throttle`]: sign-in throttling per (email, address) and per address.
//! - [`listen`]: the accept loop, with limits on slow and many connections.
//! - [`files`], [`pdf`]: audit-log exports and invoice PDFs.
//! - [`error`]: the codes of `extensions.code`.
//! - [`webhook`]: where webhooks may go (public addresses only, by default).

pub mod auth;
pub mod cache;
pub mod demo;
pub mod error;
pub mod files;
pub mod limits;
pub mod listen;
pub mod live;
pub mod metrics;
pub mod pdf;
pub mod process;
pub mod scheduler;
pub mod schema;
pub mod serve;
pub mod server;
pub mod service;
pub mod throttle;
pub mod webhook;
pub mod writer;
pub mod ws;

pub use schema::{OrglineSchema, sdl};
pub use server::router;
pub use service::{Config, Service};
