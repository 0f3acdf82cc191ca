//! Graph directory audits with `$filter` on `activityDateTime`.
// Route helpers return the ready error `Response` as their `Err` (see the module above).
#![allow(clippy::result_large_err)]

use super::*;

pub(super) fn parse_graph_time(v: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(v.trim().trim_matches('\''))
        .ok()
        .map(|d| d.to_utc())
}

pub(super) type AuditFilter = Box<dyn Fn(&Value, DateTime<Utc>) -> bool + Send>;

pub(super) fn parse_audit_filter(f: &str) -> Result<Vec<AuditFilter>, String> {
    let mut out: Vec<AuditFilter> = Vec::new();
    for clause in f.split(" and ") {
        let parts: Vec<&str> = clause.trim().splitn(3, ' ').collect();
        if parts.len() != 3 {
            return Err(format!("Invalid filter clause: '{clause}'"));
        }
        let (field, op, value) = (parts[0], parts[1], parts[2]);
        match field {
            "activityDateTime" => {
                let t = parse_graph_time(value)
                    .ok_or_else(|| format!("Invalid DateTimeOffset value '{value}'"))?;
                // Graph documents eq, ge and le on activityDateTime (api/directoryaudit-list.md); the others
                // are refused, as an undocumented operator may be at any time.
                let cmp: AuditFilter = match op {
                    "ge" => Box::new(move |_, at| at >= t),
                    "le" => Box::new(move |_, at| at <= t),
                    "eq" => Box::new(move |_, at| at == t),
                    _ => {
                        return Err(format!(
                            "Invalid filter clause: operator '{op}' is not supported on activityDateTime"
                        ));
                    }
                };
                out.push(cmp);
            }
            "activityDisplayName" | "category" | "result" | "correlationId" if op == "eq" => {
                let want = value.trim_matches('\'').to_string();
                let key = field.to_string();
                out.push(Box::new(move |v, _| {
                    v[&key].as_str() == Some(want.as_str())
                }));
            }
            _ => return Err(format!("Unsupported filter on '{field}' with '{op}'")),
        }
    }
    Ok(out)
}

pub(super) async fn directory_audits(
    State(s): State<Arc<Shared>>,
    Query(q): Query<ODataQuery>,
) -> Response {
    let filters = match q.filter.as_deref().map(parse_audit_filter).transpose() {
        Ok(f) => f.unwrap_or_default(),
        Err(e) => return graph_error(StatusCode::BAD_REQUEST, "BadRequest", &e),
    };
    let top = match page_size(&q, 100) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let offset = match decode_skiptoken(&q, "a") {
        Ok(o) => o,
        Err(r) => return r,
    };
    let t = s.tenant();
    let oldest = t.now - t.audit_retention;
    // Newest first, as Graph returns them.
    let matching: Vec<&Value> = t
        .directory_audits
        .iter()
        .rev()
        .filter(|a| a.at >= oldest && a.at <= t.now && filters.iter().all(|f| f(&a.json, a.at)))
        .map(|a| &a.json)
        .collect();
    let end = (offset + top).min(matching.len());
    let value: Vec<Value> = matching[offset.min(end)..end]
        .iter()
        .map(|v| (*v).clone())
        .collect();
    let mut body = json!({"@odata.context": format!("{}/v1.0/$metadata#auditLogs/directoryAudits", s.base_url), "value": value});
    if end < matching.len() {
        body["@odata.nextLink"] = json!(next_link(
            &s.base_url,
            "/v1.0/auditLogs/directoryAudits",
            &q,
            "a",
            end,
            top
        ));
    }
    Json(body).into_response()
}
