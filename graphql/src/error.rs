//! The API's one error type: a code from the contract (`extensions.code`) and a message
//! fit for the client. Internal causes are logged, never sent.

use domain::{DomainError, ErrorKind};
use projections::ProjectionError;
use store::StoreError;

/// `ErrorCode` of the contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, async_graphql::Enum)]
pub enum ErrorCode {
    Unauthenticated,
    Forbidden,
    NotFound,
    BadUserInput,
    Conflict,
    LimitExceeded,
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Unauthenticated => "UNAUTHENTICATED",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::BadUserInput => "BAD_USER_INPUT",
            ErrorCode::Conflict => "CONFLICT",
            ErrorCode::LimitExceeded => "LIMIT_EXCEEDED",
            ErrorCode::Internal => "INTERNAL",
        }
    }
}

/// What a resolver fails with. Deliberately not `Display`: it converts into
/// `async_graphql::Error` only through the `From` below, which sets the code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// When the client may try again (`extensions.retryAfterSeconds`), for limits that
    /// lift with time.
    pub retry_after_seconds: Option<u64>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
            retry_after_seconds: None,
        }
    }
    /// A limit that lifts after `seconds`.
    pub fn retry_after(m: impl Into<String>, seconds: u64) -> ApiError {
        ApiError {
            retry_after_seconds: Some(seconds.max(1)),
            ..ApiError::new(ErrorCode::LimitExceeded, m)
        }
    }
    pub fn unauthenticated(m: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::Unauthenticated, m)
    }
    pub fn forbidden(m: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::Forbidden, m)
    }
    pub fn not_found(m: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::NotFound, m)
    }
    pub fn bad_input(m: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::BadUserInput, m)
    }
    pub fn conflict(m: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::Conflict, m)
    }
    pub fn limit(m: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::LimitExceeded, m)
    }
    /// An internal failure: the cause is logged here and the client gets a generic message.
    pub fn internal(cause: impl std::fmt::Display) -> ApiError {
        tracing::error!(%cause, "internal error");
        ApiError::new(ErrorCode::Internal, "internal error")
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> ApiError {
        let code = match e.kind() {
            ErrorKind::Forbidden => ErrorCode::Forbidden,
            ErrorKind::NotFound => ErrorCode::NotFound,
            ErrorKind::BadInput => ErrorCode::BadUserInput,
            ErrorKind::Conflict => ErrorCode::Conflict,
            ErrorKind::LimitExceeded => ErrorCode::LimitExceeded,
        };
        ApiError::new(code, e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::Conflict { .. } | StoreError::IdReused { .. } => {
                ApiError::conflict(e.to_string())
            }
            StoreError::TooLarge { .. } => ApiError::limit(e.to_string()),
            StoreError::Invalid(_) => ApiError::bad_input(e.to_string()),
            other => ApiError::internal(other),
        }
    }
}

impl From<ProjectionError> for ApiError {
    fn from(e: ProjectionError) -> ApiError {
        ApiError::internal(e)
    }
}

impl From<sled::Error> for ApiError {
    fn from(e: sled::Error) -> ApiError {
        ApiError::internal(e)
    }
}

impl From<ApiError> for async_graphql::Error {
    fn from(e: ApiError) -> async_graphql::Error {
        let code = e.code.as_str();
        let retry = e.retry_after_seconds;
        async_graphql::Error::new(e.message).extend_with(|_, ext| {
            ext.set("code", code);
            if let Some(s) = retry {
                ext.set("retryAfterSeconds", s);
            }
        })
    }
}

use async_graphql::ErrorExtensions as _;

/// The code of an error async-graphql raised itself (parse, validation, limits, input
/// coercion), which carries none.
pub fn code_for_engine_error(message: &str) -> ErrorCode {
    let m = message.to_ascii_lowercase();
    if m.contains("nested too deep") || m.contains("too complex") || m.contains("too many") {
        ErrorCode::LimitExceeded
    } else {
        ErrorCode::BadUserInput
    }
}

/// Gives every error of every response an `extensions.code` — over HTTP and over
/// WebSocket alike: the engine's own errors (syntax, validation, limits, input
/// coercion) carry none.
pub struct ErrorCodes;

impl async_graphql::extensions::ExtensionFactory for ErrorCodes {
    fn create(&self) -> std::sync::Arc<dyn async_graphql::extensions::Extension> {
        std::sync::Arc::new(ErrorCodes)
    }
}

/// Sets the code of the errors that have none.
pub fn with_codes(mut resp: async_graphql::Response) -> async_graphql::Response {
    for e in &mut resp.errors {
        let ext = e.extensions.get_or_insert_with(Default::default);
        if ext.get("code").is_none() {
            ext.set("code", code_for_engine_error(&e.message).as_str());
        }
    }
    resp
}

#[async_trait::async_trait]
impl async_graphql::extensions::Extension for ErrorCodes {
    async fn request(
        &self,
        ctx: &async_graphql::extensions::ExtensionContext<'_>,
        next: async_graphql::extensions::NextRequest<'_>,
    ) -> async_graphql::Response {
        with_codes(next.run(ctx).await)
    }

    fn subscribe<'s>(
        &self,
        ctx: &async_graphql::extensions::ExtensionContext<'_>,
        stream: futures::stream::BoxStream<'s, async_graphql::Response>,
        next: async_graphql::extensions::NextSubscribe<'_>,
    ) -> futures::stream::BoxStream<'s, async_graphql::Response> {
        use futures::StreamExt as _;
        next.run(ctx, stream).map(with_codes).boxed()
    }
}

/// Null propagation as the GraphQL spec has it ("Handling Execution Errors"): an error
/// in a nullable field makes that field `null`, with the error in `errors`. An error in
/// a non-null field propagates to its parent, up to the nearest nullable field (the
/// engine does that part: a container whose field fails fails as a whole, and a
/// nullable parent resolves to `null`, or `data` is `null` at the root).
///
/// The engine alone would propagate every field error, even from a nullable field, to
/// the nearest nullable *parent*: `organization { bot(id: "nope") { id } }` would null
/// the organization instead of the bot. This extension catches the error where the
/// field itself is nullable and reports it with the response.
pub struct NullableFieldErrors;

impl async_graphql::extensions::ExtensionFactory for NullableFieldErrors {
    fn create(&self) -> std::sync::Arc<dyn async_graphql::extensions::Extension> {
        std::sync::Arc::new(CaughtErrors::default())
    }
}

/// The errors of one execution (an operation, or one event of a subscription) that a
/// nullable field caught, reported with its response.
#[derive(Default)]
struct CaughtErrors(std::sync::Mutex<Vec<async_graphql::ServerError>>);

#[async_trait::async_trait]
impl async_graphql::extensions::Extension for CaughtErrors {
    async fn execute(
        &self,
        ctx: &async_graphql::extensions::ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: async_graphql::extensions::NextExecute<'_>,
    ) -> async_graphql::Response {
        let mut resp = next.run(ctx, operation_name).await;
        if let Ok(mut caught) = self.0.lock() {
            resp.errors.append(&mut caught);
        }
        resp
    }

    async fn resolve(
        &self,
        ctx: &async_graphql::extensions::ExtensionContext<'_>,
        info: async_graphql::extensions::ResolveInfo<'_>,
        next: async_graphql::extensions::NextResolve<'_>,
    ) -> async_graphql::ServerResult<Option<async_graphql::Value>> {
        let nullable = !info.return_type.ends_with('!');
        match next.run(ctx, info).await {
            Err(e) if nullable => {
                if let Ok(mut caught) = self.0.lock() {
                    caught.push(e);
                }
                Ok(Some(async_graphql::Value::Null))
            }
            other => other,
        }
    }
}
