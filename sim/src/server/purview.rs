//! The Purview audit log through Graph v1.0 (GDC `resources/security-auditlogquery.md`,
//! `api/security-auditcoreroot-post-auditlogqueries.md`, `api/security-auditlogquery-list-records.md`):
//!
//! - `POST /v1.0/security/auditLog/queries` creates an asynchronous query (`filterStartDateTime`,
//!   `filterEndDateTime`, `recordTypeFilters`, `operationFilters`, `userPrincipalNameFilters`, `objectIdFilters`):
//!   `201` with its `status` `notStarted`;
//! - `GET /v1.0/security/auditLog/queries[/{id}]`: its status goes `notStarted` → `running` → `succeeded` as the
//!   simulated clock passes `behaviour.audit_query_seconds` (a search takes minutes at Microsoft);
//! - `GET /v1.0/security/auditLog/queries/{id}/records` pages its `auditLogRecord`s (`auditData` holds the record
//!   as the Management Activity API serves it), `@odata.nextLink` between pages; only records of the last 180 days
//!   (Audit Standard) exist, each once.
//!
//! A tenant of a national cloud has no such API (`behaviour.audit_query_unavailable`): 404, as Graph answers a
//! segment it does not serve.

use super::*;

/// Records per page.
const PAGE: usize = 150;
/// Audit (Standard) keeps records this many days.
const RETENTION_DAYS: i64 = 180;

use crate::tenant::AuditQuery;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct QueryBody {
    display_name: Option<String>,
    filter_start_date_time: Option<String>,
    filter_end_date_time: Option<String>,
    #[serde(default)]
    record_type_filters: Vec<String>,
    #[serde(default)]
    operation_filters: Vec<String>,
    #[serde(default)]
    user_principal_name_filters: Vec<String>,
    #[serde(default)]
    object_id_filters: Vec<String>,
}

fn unavailable(t: &Tenant) -> Option<Response> {
    t.behaviour.audit_query_unavailable.then(|| {
        graph_error(
            StatusCode::NOT_FOUND,
            "BadRequest",
            "Resource not found for the segment 'auditLog'.",
        )
    })
}

fn status(t: &Tenant, q: &AuditQuery) -> &'static str {
    let age = t.now - q.created;
    let takes = Duration::seconds(t.behaviour.audit_query_seconds as i64);
    if age >= takes {
        "succeeded"
    } else if age >= takes / 4 {
        "running"
    } else {
        "notStarted"
    }
}

fn render(t: &Tenant, q: &AuditQuery) -> Value {
    let time = |d: &DateTime<Utc>| d.to_rfc3339_opts(SecondsFormat::Secs, true);
    json!({"@odata.type": "#microsoft.graph.security.auditLogQuery", "id": q.id, "displayName": q.display_name,
        "filterStartDateTime": time(&q.start), "filterEndDateTime": time(&q.end),
        "recordTypeFilters": q.record_types, "operationFilters": q.operations,
        "userPrincipalNameFilters": q.users, "objectIdFilters": q.objects,
        "keywordFilter": null, "serviceFilter": null, "ipAddressFilters": [], "administrativeUnitIdFilters": [],
        "status": status(t, q)})
}

fn parse_time(field: &str, v: Option<&str>) -> Result<DateTime<Utc>, Response> {
    v.and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|d| d.to_utc())
        .ok_or_else(|| {
            graph_error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &format!("Invalid value for '{field}': an ISO 8601 date and time is required."),
            )
        })
}

pub(super) async fn create(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    let b: QueryBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return graph_error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &format!("Cannot read the request body: {e}"),
            );
        }
    };
    let mut t = s.tenant();
    if let Some(r) = unavailable(&t) {
        return r;
    }
    let (start, end) = match (
        parse_time("filterStartDateTime", b.filter_start_date_time.as_deref()),
        parse_time("filterEndDateTime", b.filter_end_date_time.as_deref()),
    ) {
        (Ok(a), Ok(z)) if a < z => (a, z),
        (Err(r), _) | (_, Err(r)) => return r,
        _ => {
            return graph_error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "filterStartDateTime must be before filterEndDateTime.",
            );
        }
    };
    let q = AuditQuery {
        id: uuid::Uuid::new_v4().to_string(),
        display_name: b.display_name,
        start,
        end,
        record_types: b.record_type_filters,
        operations: b.operation_filters,
        users: b.user_principal_name_filters,
        objects: b.object_id_filters,
        created: t.now,
    };
    let rendered = render(&t, &q);
    t.audit_queries.push(q);
    (StatusCode::CREATED, Json(rendered)).into_response()
}

pub(super) async fn list(State(s): State<Arc<Shared>>) -> Response {
    let t = s.tenant();
    if let Some(r) = unavailable(&t) {
        return r;
    }
    let value: Vec<Value> = t.audit_queries.iter().map(|q| render(&t, q)).collect();
    Json(json!({"@odata.context": format!("{}/v1.0/$metadata#security/auditLog/queries", s.base_url), "value": value}))
        .into_response()
}

fn find<'t>(t: &'t Tenant, id: &str) -> Result<&'t AuditQuery, Response> {
    t.audit_queries
        .iter()
        .find(|q| q.id.eq_ignore_ascii_case(id))
        .ok_or_else(|| {
            graph_error(
                StatusCode::NOT_FOUND,
                "NotFound",
                &format!("The audit log query '{id}' was not found."),
            )
        })
}

pub(super) async fn get_one(State(s): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let t = s.tenant();
    if let Some(r) = unavailable(&t) {
        return r;
    }
    match find(&t, &id) {
        Ok(q) => Json(render(&t, q)).into_response(),
        Err(r) => r,
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct RecordsQuery {
    #[serde(rename = "$skiptoken")]
    skiptoken: Option<String>,
}

/// Microsoft's `auditLogRecordType` for a Management API `RecordType` number (the ones the simulator writes).
fn record_type(n: i64) -> &'static str {
    match n {
        8 => "azureActiveDirectory",
        1 => "exchangeAdmin",
        _ => "unknown",
    }
}

/// The query's records, oldest first, each once.
fn matching(t: &Tenant, q: &AuditQuery) -> Vec<Value> {
    let oldest = q.created - Duration::days(RETENTION_DAYS);
    let mut seen = HashSet::new();
    let mut out: Vec<(DateTime<Utc>, Value)> = Vec::new();
    for r in t.blobs.iter().flat_map(|b| b.records.iter()) {
        let Some(id) = r["Id"].as_str() else { continue };
        let Some(at) = r["CreationTime"]
            .as_str()
            .and_then(|c| chrono::NaiveDateTime::parse_from_str(c, "%Y-%m-%dT%H:%M:%S").ok())
            .map(|n| n.and_utc())
        else {
            continue;
        };
        let kind = record_type(r["RecordType"].as_i64().unwrap_or(0));
        let op = r["Operation"].as_str().unwrap_or_default();
        let wanted = at >= q.start
            && at < q.end
            && at >= oldest
            && at <= q.created
            && (q.record_types.is_empty()
                || q.record_types.iter().any(|k| k.eq_ignore_ascii_case(kind)))
            && (q.operations.is_empty() || q.operations.iter().any(|o| o.eq_ignore_ascii_case(op)))
            && (q.objects.is_empty()
                || q.objects.iter().any(|o| {
                    r["ObjectId"]
                        .as_str()
                        .is_some_and(|x| x.eq_ignore_ascii_case(o))
                }))
            && (q.users.is_empty()
                || q.users.iter().any(|u| {
                    r["UserId"]
                        .as_str()
                        .is_some_and(|x| x.eq_ignore_ascii_case(u))
                }));
        if wanted && seen.insert(id.to_string()) {
            out.push((at, r.clone()));
        }
    }
    out.sort_by_key(|(at, _)| *at);
    out.into_iter()
        .map(|(at, r)| {
            let mut data = r.clone();
            data["@odata.type"] = json!("#microsoft.graph.security.defaultAuditData");
            json!({"id": r["Id"], "createdDateTime": at.to_rfc3339_opts(SecondsFormat::Secs, true),
                "auditLogRecordType": record_type(r["RecordType"].as_i64().unwrap_or(0)),
                "operation": r["Operation"], "organizationId": t.tenant_id, "userType": "regular",
                "userId": r["UserId"], "service": r["Workload"], "objectId": r["ObjectId"],
                "userPrincipalName": r["UserId"], "clientIp": r["ClientIP"], "administrativeUnits": [],
                "auditData": data})
        })
        .collect()
}

pub(super) async fn records(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(rq): Query<RecordsQuery>,
) -> Response {
    let t = s.tenant();
    if let Some(r) = unavailable(&t) {
        return r;
    }
    let q = match find(&t, &id) {
        Ok(q) => q,
        Err(r) => return r,
    };
    if status(&t, q) != "succeeded" {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "The audit log query has not completed yet.",
        );
    }
    let all = matching(&t, q);
    let offset: usize = rq
        .skiptoken
        .as_deref()
        .and_then(|k| k.parse().ok())
        .unwrap_or(0);
    let end = (offset + PAGE).min(all.len());
    let mut body = json!({
        "@odata.context": format!("{}/v1.0/$metadata#security/auditLog/queries('{id}')/records", s.base_url),
        "value": all[offset.min(end)..end],
    });
    if end < all.len() {
        body["@odata.nextLink"] = json!(format!(
            "{}/v1.0/security/auditLog/queries/{id}/records?$skiptoken={end}",
            s.base_url
        ));
    }
    Json(body).into_response()
}
