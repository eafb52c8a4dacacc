//! Files for auditors and accountants: the audit log as JSON Lines or CSV (streamed,
//! same filters as the `auditLog` query, the export itself recorded as
//! `audit.exported`), and invoices as PDF.

use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::server::{AppState, bearer, error_response, viewer_of};
use crate::service::{Access, Service};
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::permissions::Permission;
use projections::audit::AuditQuery;
use std::sync::Arc;
use store::{ExpectedVersion, Metadata, ProposedEvent, RecordedEvent};
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

/// Filters of an export, as query parameters.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExportParams {
    pub actor_id: Option<String>,
    /// Comma-separated.
    pub actions: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub target_id: Option<String>,
    /// GitHub-style qualifiers, as in the query.
    pub query: Option<String>,
}

fn fail(e: ApiError) -> Response {
    let status = match e.code {
        ErrorCode::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorCode::Forbidden => StatusCode::FORBIDDEN,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::BadUserInput => StatusCode::BAD_REQUEST,
        ErrorCode::LimitExceeded => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::Conflict => StatusCode::CONFLICT,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error_response(status, e.code, &e.message)
}

fn access(svc: &Service, headers: &HeaderMap, org: &str, p: Permission) -> ApiResult<Access> {
    let org: Uuid = org
        .parse()
        .map_err(|_| ApiError::bad_input(format!("{org:?} is not an id")))?;
    let viewer = viewer_of(svc, bearer(headers));
    let a = svc.access(&viewer, org)?;
    a.require(p)?;
    Ok(a)
}

fn time(field: &str, s: Option<&str>) -> ApiResult<Option<time::OffsetDateTime>> {
    s.map(|s| {
        time::OffsetDateTime::parse(s, &Rfc3339).map_err(|_| {
            ApiError::bad_input(format!("{field}: {s:?} is not an RFC 3339 date-time"))
        })
    })
    .transpose()
}

fn filter(p: &ExportParams) -> ApiResult<AuditQuery> {
    let mut q = AuditQuery {
        actions: p
            .actions
            .as_deref()
            .map(|a| {
                a.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
        actor: p.actor_id.clone(),
        target: p.target_id.clone(),
        from: time("from", p.from.as_deref())?,
        to: time("to", p.to.as_deref())?,
        ..AuditQuery::default()
    };
    if let Some(s) = &p.query {
        q = q.merge(AuditQuery::parse(s).map_err(|e| ApiError::bad_input(format!("query: {e}")))?);
    }
    Ok(q)
}

const CSV_HEADER: &str = "position,occurred_at,action,actor_kind,actor_id,stream,target_id,id,correlation_id,hash,data\n";

fn csv_line(e: &RecordedEvent) -> String {
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::new());
    let _ = w.write_record([
        e.position.to_string(),
        e.meta.occurred_at.format(&Rfc3339).unwrap_or_default(),
        e.event_type.clone(),
        format!("{:?}", e.meta.actor.kind).to_lowercase(),
        e.meta.actor.id.clone(),
        e.stream.clone(),
        projections::audit::target_of(e),
        e.id.to_string(),
        e.meta
            .correlation
            .map(|c| c.to_string())
            .unwrap_or_default(),
        e.hash_hex(),
        e.data.get().to_owned(),
    ]);
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

fn jsonl_line(e: &RecordedEvent) -> String {
    let v = serde_json::json!({
        "position": e.position,
        "id": e.id,
        "occurredAt": e.meta.occurred_at.format(&Rfc3339).unwrap_or_default(),
        "action": e.event_type,
        "actor": { "kind": e.meta.actor.kind, "id": e.meta.actor.id },
        "stream": e.stream,
        "targetId": projections::audit::target_of(e),
        "correlationId": e.meta.correlation,
        "hash": e.hash_hex(),
        "data": e.data_value(),
    });
    format!("{v}\n")
}

struct Export {
    svc: Arc<Service>,
    access: Access,
    q: AuditQuery,
    csv: bool,
    before: Option<u64>,
    entries: u64,
    started: bool,
    done: bool,
    filter: serde_json::Value,
}

/// `GET /organizations/{id}/audit-log.jsonl|csv`: `audit:read`; newest first, streamed a
/// page at a time; recorded as `audit.exported` once written.
pub async fn audit_log(
    State(s): State<AppState>,
    Path((org, file)): Path<(String, String)>,
    params: Result<Query<ExportParams>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Response {
    // A misspelt filter would export everything: refused, with what is accepted.
    let Ok(Query(params)) = params else {
        return fail(ApiError::bad_input(
            "the export takes the query parameters actorId, actions (comma-separated), \
             from, to, targetId and query",
        ));
    };
    let csv = match file.as_str() {
        "audit-log.jsonl" => false,
        "audit-log.csv" => true,
        _ => return fail(ApiError::not_found(format!("no file {file:?}"))),
    };
    let a = match access(&s.svc, &headers, &org, Permission::AuditRead) {
        Ok(a) => a,
        Err(e) => return fail(e),
    };
    let q = match filter(&params) {
        Ok(q) => q,
        Err(e) => return fail(e),
    };
    let export = Export {
        svc: s.svc.clone(),
        access: a,
        q,
        csv,
        before: None,
        entries: 0,
        started: false,
        done: false,
        filter: serde_json::json!({
            "actorId": params.actor_id, "actions": params.actions, "from": params.from,
            "to": params.to, "targetId": params.target_id, "query": params.query,
        }),
    };
    let body = futures::stream::unfold(export, |mut x| async move {
        if x.done {
            return None;
        }
        let mut chunk = String::new();
        if !x.started {
            x.started = true;
            if x.csv {
                chunk.push_str(CSV_HEADER);
            }
        }
        let page = projections::audit::page(
            &x.svc.projections.audit.tree(),
            x.svc.store.as_ref(),
            x.access.org,
            &x.q,
            projections::audit::PAGE_MAX,
            x.before,
            None,
        )
        .await;
        match page {
            Ok(p) => {
                for e in &p.entries {
                    chunk.push_str(&if x.csv { csv_line(e) } else { jsonl_line(e) });
                }
                x.entries += p.entries.len() as u64;
                x.before = p.entries.last().map(|e| e.position);
                if !p.has_next || x.before.is_none() {
                    x.done = true;
                    record_export(&x).await;
                }
                Some((Ok::<_, std::io::Error>(chunk), x))
            }
            Err(e) => {
                tracing::error!(%e, "audit export failed");
                x.done = true;
                Some((Err(std::io::Error::other("audit export failed")), x))
            }
        }
    });
    let (mime, name) = if csv {
        ("text/csv; charset=utf-8", "audit-log.csv")
    } else {
        ("application/x-ndjson", "audit-log.jsonl")
    };
    (
        [
            (header::CONTENT_TYPE, mime.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

/// Reading the trail in bulk is itself recorded.
async fn record_export(x: &Export) {
    let org = x.access.org;
    let actor = match x.access.actor {
        domain::Actor::User(u) => store::Actor::user(u),
        domain::Actor::Bot(b) => store::Actor::bot(b),
        domain::Actor::System => store::Actor::system(),
    };
    let event = domain::Event::from(domain::events::AuditExported {
        format: if x.csv { "csv" } else { "jsonl" }.to_owned(),
        filter: x.filter.clone(),
        entries: x.entries,
    });
    let mut p = ProposedEvent::new(
        event.event_type(),
        event.data(),
        Metadata::new(actor, Some(org), Service::now()),
    );
    p.schema = event.schema();
    if let Err(e) = x
        .svc
        .store
        .append(&domain::streams::audit(org), ExpectedVersion::Any, vec![p])
        .await
    {
        tracing::error!(%e, "could not record an audit export");
    }
}

/// `GET /organizations/{id}/invoices/{invoice}.pdf`: `billing:read`.
pub async fn invoice_pdf(
    State(s): State<AppState>,
    Path((org, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let a = match access(&s.svc, &headers, &org, Permission::BillingRead) {
        Ok(a) => a,
        Err(e) => return fail(e),
    };
    let Some(Ok(id)) = file.strip_suffix(".pdf").map(str::parse::<Uuid>) else {
        return fail(ApiError::not_found(format!("no file {file:?}")));
    };
    let billing =
        match projections::console::query::billing(&s.svc.projections.console.tree(), a.org) {
            Ok(b) => b,
            Err(e) => return fail(e.into()),
        };
    let inv = match billing.invoice(id) {
        Ok(i) => i.clone(),
        Err(e) => return fail(e.into()),
    };
    let name = a.doc.name.clone();
    match tokio::task::spawn_blocking(move || crate::pdf::invoice(&name, &billing.info, &inv)).await
    {
        Ok(Ok(bytes)) => (
            [
                (header::CONTENT_TYPE, "application/pdf".to_owned()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("inline; filename=\"{file}\""),
                ),
            ],
            bytes,
        )
            .into_response(),
        Ok(Err(e)) => fail(e),
        Err(e) => fail(ApiError::internal(e)),
    }
}
