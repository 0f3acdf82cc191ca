//! History from the Purview audit log, for what Microsoft's other sources no longer hold on a tenant's first day
//! (directory audits keep 7 or 30 days, the Management Activity API 7; Audit Standard keeps 180): one asynchronous
//! query for the licence operations, created once and found again by its name, polled run after run until it
//! succeeds, then paged. Its records are the Management Activity API's (`auditData`), archived as theirs under the
//! same ids, so a record read from both sources is archived once; they feed the licence events like any other.
//!
//! Resumable: the history's end is kept as a cursor before the query exists (a crash re-finds or re-creates the
//! same query), pages are re-read after a crash (claimed ids are skipped), and a last cursor marks it done.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::prepare::{self, Shape};
use super::{AuditDeps, AuditReport, archive_prepared};
use crate::error::{ApiError, CoreError};
use crate::ports::audit_feed::{AuditLogQuery, NewAuditLogQuery, PURVIEW_RETENTION_DAYS};
use crate::usecases::lease::RunLease;

/// The end of the history asked for (when the backfill was first wanted).
const UNTIL: &str = "purview:until";
/// Set once every record of the query is archived.
const DONE: &str = "purview:done";

/// The operations licensewatch reads (the directory's licence writes and group-licensing runs).
const OPERATIONS: [&str; 4] = [
    "Change user license.",
    "Update user.",
    "Add user.",
    "Finish applying group based license to users.",
];

/// Where the backfill stands after a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backfill {
    /// `requested` (query created), `running` (Microsoft is still searching), `archived` (this run archived its
    /// records), `done` (an earlier run did), `incomplete` (the run's deadline came while paging), `unavailable`
    /// (no permission, or no such API in this cloud), `failed`.
    pub status: String,
    /// The history asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<DateTime<Utc>>,
    /// Its end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
    /// The query's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_id: Option<String>,
    /// Records read this run.
    #[serde(default)]
    pub records_read: usize,
    /// Why, when unavailable or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Backfill {
    fn with(status: &str) -> Self {
        Backfill {
            status: status.into(),
            ..Default::default()
        }
    }

    fn with_query(mut self, id: String) -> Self {
        self.query_id = Some(id);
        self
    }
}

/// One step of the backfill of `days` (at most 180): whatever this run can do. Microsoft's refusals are reported,
/// never the run's failure (the other sources go on).
pub(super) async fn step(
    deps: &AuditDeps<'_>,
    days: i64,
    now: DateTime<Utc>,
    lease: &RunLease<'_>,
    report: &mut AuditReport,
) -> Result<Backfill, CoreError> {
    if deps.state.cursor(DONE).await?.is_some() {
        return Ok(Backfill::with("done"));
    }
    let until = match deps.state.cursor(UNTIL).await? {
        Some(u) => u,
        None => {
            deps.state.set_cursor(UNTIL, now).await?;
            now
        }
    };
    let from = until - Duration::days(days.clamp(1, PURVIEW_RETENTION_DAYS));
    let mut out = match query(deps, from, until).await {
        Ok(q) => match q.status() {
            "succeeded" => archive(deps, &q.id, now, lease, report).await?,
            "failed" | "cancelled" => Backfill {
                detail: Some(format!("the Purview query {} {}", q.id, q.status())),
                ..Backfill::with("failed")
            },
            "notStarted" => Backfill::with("requested"),
            _ => Backfill::with("running"),
        }
        .with_query(q.id),
        Err(e) => refused(&e),
    };
    if out.status == "archived" {
        deps.state.set_cursor(DONE, until).await?;
    }
    out.from = Some(from);
    out.until = Some(until);
    tracing::info!(status = %out.status, records = out.records_read, "Purview audit log backfill");
    Ok(out)
}

/// Why the query API cannot serve this tenant, in words.
fn refused(e: &ApiError) -> Backfill {
    let (status, detail) = match e {
        ApiError::Forbidden { .. } => (
            "unavailable",
            format!(
                "{e}: grant the application permission AuditLogsQuery-Entra.Read.All to read 180 days of licence history"
            ),
        ),
        ApiError::NotFound { .. } | ApiError::Rejected { status: 400, .. } => (
            "unavailable",
            format!("the Purview audit log query API is not served here (national clouds): {e}"),
        ),
        _ => ("failed", format!("{e}; the next run tries again")),
    };
    tracing::warn!(status, %detail, "Purview audit log backfill");
    Backfill {
        detail: Some(detail),
        ..Backfill::with(status)
    }
}

/// The query of `[from, until)`: the one made by an earlier run (found by its name), else a new one.
async fn query(
    deps: &AuditDeps<'_>,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<AuditLogQuery, ApiError> {
    let time = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let name = format!("licensewatch backfill {} to {}", time(from), time(until));
    let earlier = deps.purview.audit_queries().await?.into_iter().rfind(|q| {
        q.display_name.as_deref() == Some(name.as_str())
            && !matches!(q.status(), "failed" | "cancelled")
    });
    if let Some(q) = earlier {
        return deps.purview.audit_query(&q.id).await;
    }
    let created = deps
        .purview
        .create_audit_query(&NewAuditLogQuery {
            odata_type: "#microsoft.graph.security.auditLogQuery",
            display_name: name,
            filter_start_date_time: time(from),
            filter_end_date_time: time(until),
            record_type_filters: vec!["azureActiveDirectory".into()],
            operation_filters: OPERATIONS.iter().map(|o| o.to_string()).collect(),
        })
        .await?;
    tracing::info!(query = %created.id, %from, %until, "Purview audit log query created");
    Ok(created)
}

/// Archives every record of a succeeded query, page by page, as the Management Activity API's.
async fn archive(
    deps: &AuditDeps<'_>,
    id: &str,
    now: DateTime<Utc>,
    lease: &RunLease<'_>,
    report: &mut AuditReport,
) -> Result<Backfill, CoreError> {
    // Licence records are Entra's: they belong with the Management API's Audit.AzureActiveDirectory content.
    let shape = Shape::management("Audit.AzureActiveDirectory");
    let today = now.format("%Y-%m-%d").to_string();
    let mut pages = deps.purview.audit_query_records(id);
    let mut read = 0;
    loop {
        if deps.out_of_time() {
            return Ok(Backfill {
                records_read: read,
                ..Backfill::with("incomplete")
            });
        }
        let page = match pages.next_page().await {
            Ok(Some(page)) => page,
            Ok(None) => break,
            Err(e) => return Ok(refused(&e)),
        };
        read += page.len();
        let body = audit_data(&page)?;
        let prepared = prepare::management_blob(body, &shape, &today, None)?;
        archive_prepared(deps, prepared, now, lease, report).await?;
    }
    Ok(Backfill {
        records_read: read,
        ..Backfill::with("archived")
    })
}

/// The records' `auditData` (the Management Activity API's record) as a JSON array, without Graph's type tag.
fn audit_data(page: &[Value]) -> Result<Vec<u8>, CoreError> {
    let records: Vec<Value> = page
        .iter()
        .filter_map(|r| {
            let mut data = r.get("auditData")?.clone();
            data.as_object_mut()?.remove("@odata.type");
            Some(data)
        })
        .collect();
    serde_json::to_vec(&records).map_err(|e| CoreError::BadInput(format!("Purview records: {e}")))
}
