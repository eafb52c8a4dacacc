//! The GraphQL schema: the contract of `shared/design/schema.graphql`, split per area.
//!
//! - [`scalars`]: `DateTime`, `Position`, cursors, id parsing, the enums.
//! - [`types`]: the object types (organization, members, bots, runs, billing, usage, audit).
//! - [`query`], [`mutation`] (one object per area, merged), [`subscription`].

pub mod loaders;
pub mod mutation;
pub mod query;
pub mod scalars;
pub mod subscription;
pub mod types;

use crate::error::{ApiError, ApiResult};
use crate::service::{Access, Service, Viewer};
use async_graphql::{Context, Schema};
use std::sync::Arc;

pub type OrglineSchema = Schema<query::Query, mutation::Mutation, subscription::Subscription>;

/// Deepest query accepted.
pub const DEPTH_MAX: usize = 15;
/// Most complex query accepted (a field costs 1; a connection multiplies its
/// children by `first`).
pub const COMPLEXITY_MAX: usize = 5_000;
/// What a field that may scan (an audit or runs filter the lists cannot answer, the
/// log's `events` with a filter, a member search) costs beyond its page: it may read
/// up to two walks of 20,000 candidates (the page, and its `totalCount`). A filtered
/// page of 100 entries of 10 fields thus costs 2,000 of [`COMPLEXITY_MAX`]: four such
/// scans fit in one request, not forty.
pub const SCAN_COMPLEXITY: usize = 1_000;

/// The complexity of a connection: `first` (20 when absent) times its children, plus
/// [`SCAN_COMPLEXITY`] when its arguments may make it scan. Saturating, so no
/// argument can overflow it.
pub fn connection_complexity(first: Option<i32>, child: usize, scans: bool) -> usize {
    let page = (first.unwrap_or(PAGE_DEFAULT).max(0) as usize).saturating_mul(child);
    page.saturating_add(if scans { SCAN_COMPLEXITY } else { 0 })
}

/// Largest page (`first`).
pub const PAGE_MAX: i32 = 100;
/// Page size when `first` is not given.
pub const PAGE_DEFAULT: i32 = 20;

/// The schema, with the service as its data.
pub fn build(service: Arc<Service>) -> OrglineSchema {
    Schema::build(
        query::Query,
        mutation::Mutation::default(),
        subscription::Subscription,
    )
    .data(loaders::Bots::new(
        loaders::BotLoader(service.clone()),
        tokio::spawn,
    ))
    .data(loaders::Users::new(
        loaders::UserLoader(service.clone()),
        tokio::spawn,
    ))
    .data(service.clone())
    .register_output_type::<crate::error::ErrorCode>()
    .extension(crate::limits::DocumentLimits::new(service.parsed.clone()))
    .extension(crate::error::ErrorCodes)
    .extension(crate::error::NullableFieldErrors)
    .extension(crate::server::RecheckToken)
    .limit_depth(DEPTH_MAX)
    .limit_complexity(COMPLEXITY_MAX)
    .limit_recursive_depth(64)
    .limit_directives(50)
    .finish()
}

/// The SDL of the schema as served.
pub fn sdl() -> String {
    Schema::build(
        query::Query,
        mutation::Mutation::default(),
        subscription::Subscription,
    )
    .register_output_type::<crate::error::ErrorCode>()
    .finish()
    .sdl()
}

pub(crate) fn svc<'a>(ctx: &Context<'a>) -> &'a Arc<Service> {
    ctx.data_unchecked::<Arc<Service>>()
}

pub(crate) fn viewer<'a>(ctx: &Context<'a>) -> ApiResult<&'a Viewer> {
    ctx.data::<Viewer>()
        .map_err(|_| ApiError::unauthenticated("sign in first"))
}

/// The viewer's access to `org`.
pub(crate) fn access(ctx: &Context<'_>, org: uuid::Uuid) -> ApiResult<Access> {
    svc(ctx).access(viewer(ctx)?, org)
}

/// `first` checked against the page limit.
pub(crate) fn page_size(first: Option<i32>) -> ApiResult<usize> {
    match first.unwrap_or(PAGE_DEFAULT) {
        n if (0..=PAGE_MAX).contains(&n) => Ok(n as usize),
        n => Err(ApiError::bad_input(format!(
            "first must be between 0 and {PAGE_MAX}, not {n}"
        ))),
    }
}
