//! The HTTP server: GraphiQL at `/`, GraphQL at `/graphql` (POST; WebSocket
//! subscriptions on GET with `graphql-transport-ws` or `graphql-ws`), `/healthz`,
//! `/readyz`, `/metrics`, the auditors' files and invoice PDFs. Limits: request bodies
//! (1 MiB, 413), batch size, request time, and the schema's depth and complexity.

use crate::error::{ApiError, ErrorCode};
use crate::files;
use crate::schema::OrglineSchema;
use crate::service::{Principal, Service, Viewer};
use async_graphql::http::GraphiQLSource;
use async_graphql::http::WebSocketProtocols;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Largest request body.
pub const BODY_BYTES_MAX: usize = 1024 * 1024;
/// Most operations in one batched request.
pub const BATCH_MAX: usize = 10;
/// Longest a request may take (subscriptions excepted: they live on their socket).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct AppState {
    pub svc: Arc<Service>,
    pub schema: OrglineSchema,
}

/// The router of the whole API.
pub fn router(svc: Arc<Service>) -> Router {
    let schema = crate::schema::build(svc.clone());
    let state = AppState { svc, schema };
    Router::new()
        .route("/", get(graphiql))
        .route("/graphql", get(subscriptions).post(graphql))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/organizations/{org}/{file}", get(files::audit_log))
        .route(
            "/organizations/{org}/invoices/{file}",
            get(files::invoice_pdf),
        )
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        // Browser consoles on other origins: tokens travel in the Authorization header,
        // never in cookies, so any origin may call.
        .layer(
            tower_http::cors::CorsLayer::new()
                .allow_origin(tower_http::cors::Any)
                .allow_methods([axum::http::Method::GET, axum::http::Method::POST])
                .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE]),
        )
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(DefaultBodyLimit::max(BODY_BYTES_MAX))
        .with_state(state)
}

async fn observe(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "other".to_owned(), |p| p.as_str().to_owned());
    let start = Instant::now();
    let resp = next.run(req).await;
    s.svc.metrics.record_request(
        &route,
        resp.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    resp
}

async fn graphiql() -> Html<String> {
    Html(
        GraphiQLSource::build()
            .endpoint("/graphql")
            .subscription_endpoint("/graphql")
            .title("Orgline")
            .finish(),
    )
}

/// Who sent the request: a user session, a bot token, the operator token, or nobody.
/// The token of a WebSocket connection, kept for the connection's life: every
/// operation sent over it, and every event of a subscription, checks it again, so a
/// sign-out, an expired session or a retired bot token ends what it may do.
#[derive(Clone)]
pub struct LiveToken(pub Option<String>);

/// Gives each operation of a WebSocket connection the viewer its token names *now*
/// (the connection's viewer was the one at `connection_init`).
pub struct RecheckToken;

impl async_graphql::extensions::ExtensionFactory for RecheckToken {
    fn create(&self) -> std::sync::Arc<dyn async_graphql::extensions::Extension> {
        std::sync::Arc::new(RecheckToken)
    }
}

#[async_trait::async_trait]
impl async_graphql::extensions::Extension for RecheckToken {
    async fn prepare_request(
        &self,
        ctx: &async_graphql::extensions::ExtensionContext<'_>,
        request: async_graphql::Request,
        next: async_graphql::extensions::NextPrepareRequest<'_>,
    ) -> async_graphql::ServerResult<async_graphql::Request> {
        let request = match (
            ctx.data_opt::<LiveToken>(),
            ctx.data_opt::<std::sync::Arc<Service>>(),
        ) {
            (Some(LiveToken(token)), Some(svc)) => request.data(viewer_of(svc, token.as_deref())),
            _ => request,
        };
        next.run(ctx, request).await
    }
}

pub fn viewer_of(svc: &Service, token: Option<&str>) -> Viewer {
    let Some(token) = token.map(str::trim).filter(|t| !t.is_empty()) else {
        return Viewer::anonymous();
    };
    if crate::auth::operator_token_matches(token, svc.config.operator_token.as_deref()) {
        return Viewer {
            principal: Principal::Operator,
            bad_token: false,
        };
    }
    let found = if token.starts_with("olb_") {
        svc.creds
            .bot_of_token(token)
            .ok()
            .flatten()
            .map(|k| Principal::Bot {
                bot_id: k.bot_id,
                org: k.org,
            })
    } else {
        svc.creds
            .session(token, Service::now())
            .ok()
            .flatten()
            .map(|s| Principal::User {
                user_id: s.user_id,
                session_id: s.session_id,
            })
    };
    match found {
        Some(principal) => Viewer {
            principal,
            bad_token: false,
        },
        None => Viewer {
            principal: Principal::Anonymous,
            bad_token: true,
        },
    }
}

/// The client's address as the per-client limits count it (see
/// [`crate::listen::client_address`]); request data of every operation.
#[derive(Clone, Copy, Debug)]
pub struct ClientAddress(pub Option<std::net::IpAddr>);

/// The connection's peer, as the accept loop recorded it (none in process).
pub struct Peer(pub Option<std::net::SocketAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Peer(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0),
        ))
    }
}

impl Peer {
    pub fn client(&self, svc: &Service, headers: &HeaderMap) -> ClientAddress {
        ClientAddress(crate::listen::client_address(
            headers,
            self.0,
            &svc.config.trusted_proxies,
        ))
    }
}

pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token)
}

/// A GraphQL-shaped error response.
pub fn error_response(status: StatusCode, code: ErrorCode, message: &str) -> Response {
    (
        status,
        Json(serde_json::json!({
            "errors": [{ "message": message, "extensions": { "code": code.as_str() } }]
        })),
    )
        .into_response()
}

use crate::error::with_codes;

async fn graphql(
    State(s): State<AppState>,
    peer: Peer,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let bad = |m: &str| error_response(StatusCode::BAD_REQUEST, ErrorCode::BadUserInput, m);
    let value: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return bad(&format!("the body is not JSON: {e}")),
    };
    match &value {
        serde_json::Value::Array(a) if a.is_empty() => return bad("an empty batch"),
        serde_json::Value::Array(a) if a.len() > BATCH_MAX => {
            return error_response(
                StatusCode::BAD_REQUEST,
                ErrorCode::LimitExceeded,
                &format!("a batch holds at most {BATCH_MAX} operations"),
            );
        }
        serde_json::Value::Array(a) if a.iter().all(|r| r.get("query").is_some()) => {}
        serde_json::Value::Object(o) if o.contains_key("query") => {}
        _ => {
            return bad(
                "a GraphQL request is {\"query\": …, \"variables\": …} (or a batch of them)",
            );
        }
    }
    let request: async_graphql::BatchRequest = match serde_json::from_value(value) {
        Ok(r) => r,
        Err(e) => return bad(&format!("the body is not a GraphQL request: {e}")),
    };
    let viewer = viewer_of(&s.svc, bearer(&headers));
    // A signed-in query's whole response is kept until a read model moves (see
    // `cache`); an anonymous one is not, so no one can fill the cache without a token.
    let cache_key = match &request {
        async_graphql::BatchRequest::Single(r)
            if s.svc.config.response_cache
                && !matches!(viewer.principal, Principal::Anonymous)
                && crate::cache::is_query(&r.query) =>
        {
            Some(crate::cache::key(&format!("{:?}", viewer.principal), &body))
        }
        _ => None,
    };
    let generation = s.svc.read_generation();
    if let Some(key) = &cache_key
        && let Some(hit) = s.svc.responses.get(key, generation)
    {
        return ([(header::CONTENT_TYPE, "application/json")], hit).into_response();
    }
    let resp = match request.data(viewer).data(peer.client(&s.svc, &headers)) {
        async_graphql::BatchRequest::Single(r) => {
            async_graphql::BatchResponse::Single(with_codes(s.schema.execute(r).await))
        }
        async_graphql::BatchRequest::Batch(rs) => {
            let mut out = Vec::with_capacity(rs.len());
            for r in rs {
                out.push(with_codes(s.schema.execute(r).await));
            }
            async_graphql::BatchResponse::Batch(out)
        }
    };
    let cacheable = cache_key.is_some() && resp.is_ok();
    match serde_json::to_vec(&resp) {
        Ok(out) => {
            let out = Bytes::from(out);
            if let (true, Some(key)) = (cacheable, cache_key) {
                s.svc.responses.put(key, generation, out.clone());
            }
            ([(header::CONTENT_TYPE, "application/json")], out).into_response()
        }
        Err(e) => {
            let e = ApiError::internal(e);
            error_response(StatusCode::INTERNAL_SERVER_ERROR, e.code, &e.message)
        }
    }
}

/// WebSocket subscriptions (see [`crate::ws`]); a GET that is not an upgrade is a query.
async fn subscriptions(
    State(s): State<AppState>,
    peer: Peer,
    headers: HeaderMap,
    uri: axum::http::Uri,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let Ok(upgrade) = upgrade else {
        let client = peer.client(&s.svc, &headers);
        return get_query(&s, &headers, client, uri.query().unwrap_or_default()).await;
    };
    // The first protocol asked for that is spoken; none asked: graphql-transport-ws.
    let asked = headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok());
    let protocol = match asked {
        None => WebSocketProtocols::GraphQLWS,
        Some(list) => match list
            .split(',')
            .find_map(|p| p.trim().parse::<WebSocketProtocols>().ok())
        {
            Some(p) => p,
            None => {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::BadUserInput,
                    "the WebSocket speaks graphql-transport-ws (or the legacy graphql-ws)",
                );
            }
        },
    };
    let header_token = bearer(&headers).map(str::to_owned);
    let client = peer.client(&s.svc, &headers);
    upgrade
        .protocols(async_graphql::http::ALL_WEBSOCKET_PROTOCOLS)
        .max_message_size(crate::ws::MESSAGE_BYTES_MAX)
        .max_frame_size(crate::ws::MESSAGE_BYTES_MAX)
        .on_upgrade(move |socket| {
            crate::ws::serve(
                socket,
                s.schema.clone(),
                s.svc.clone(),
                protocol,
                header_token,
                client,
            )
        })
}

/// `GET /graphql?query=…&variables=…`: queries only (a mutation must be POSTed).
async fn get_query(
    s: &AppState,
    headers: &HeaderMap,
    client: ClientAddress,
    query_string: &str,
) -> Response {
    let request = match async_graphql::http::parse_query_string(query_string) {
        Ok(r) => r,
        Err(e) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                ErrorCode::BadUserInput,
                &format!("GET /graphql takes ?query=…&variables=… (or a WebSocket upgrade): {e}"),
            );
        }
    };
    if request.query.trim().is_empty() {
        return error_response(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadUserInput,
            "GET /graphql takes ?query=…&variables=… (or a WebSocket upgrade speaking \
             graphql-transport-ws or graphql-ws); GraphiQL is at /",
        );
    }
    if !crate::cache::is_query(&request.query) {
        return error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::BadUserInput,
            "mutations and subscriptions are not sent with GET: POST them (or use the WebSocket)",
        );
    }
    let viewer = viewer_of(&s.svc, bearer(headers));
    let resp = with_codes(s.schema.execute(request.data(viewer).data(client)).await);
    match serde_json::to_vec(&resp) {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => {
            let e = ApiError::internal(e);
            error_response(StatusCode::INTERNAL_SERVER_ERROR, e.code, &e.message)
        }
    }
}

async fn readyz(State(s): State<AppState>) -> Response {
    let statuses = s.svc.projections.statuses();
    let live = statuses
        .iter()
        .all(|p| p.state == projections::ProjectionState::Live);
    let body = serde_json::json!({
        "ready": live,
        "projections": statuses.iter().map(|p| serde_json::json!({
            "name": p.name, "state": p.state.name(), "position": p.position, "lag": p.lag,
        })).collect::<Vec<_>>(),
    });
    let status = if live {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

async fn metrics(State(s): State<AppState>) -> Response {
    let text = s.svc.metrics.render(&s.svc.projections.statuses());
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}
