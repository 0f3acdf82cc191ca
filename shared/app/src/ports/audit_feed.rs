//! The audit feed port: the Office 365 Management Activity API's content blobs, listed in windows of at most 24
//! hours within the last 7 days. [`crate::adapters::mgmt::ManagementClient`] implements it; the `testing` feature
//! has an in-memory feed.

use async_trait::async_trait;
use chrono::{DateTime, Duration, DurationRound, Utc};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::ports::directory::BoxPages;

/// How far back the API lists content.
pub(crate) const RETENTION: Duration = Duration::days(7);
/// Longest window one `subscriptions/content` call may ask for.
pub(crate) const MAX_WINDOW: Duration = Duration::hours(24);

/// One entry of a content listing.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ContentBlob {
    /// e.g. Audit.AzureActiveDirectory.
    pub content_type: String,
    /// Unique id of the blob (dedupe key).
    pub content_id: String,
    /// Where to GET the records.
    pub content_uri: String,
    /// When the blob became available (the listing's time axis).
    pub content_created: DateTime<Utc>,
    /// When it stops being available (+7 days).
    #[serde(default)]
    pub content_expiration: Option<DateTime<Utc>>,
}

/// A `[start, end)` listing window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Inclusive start.
    pub start: DateTime<Utc>,
    /// Exclusive end.
    pub end: DateTime<Utc>,
}

/// The windows to list for `[from, to)` at `now`: clamped to the API's 7-day availability (the part before it is
/// returned as a gap) and split into consecutive windows of at most 24 h whose boundaries meet exactly.
pub fn plan_windows(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    now: DateTime<Utc>,
) -> (Vec<Window>, Option<Window>) {
    // A small margin so a request is never refused for starting a few seconds too early.
    let earliest = (now - RETENTION + Duration::minutes(5))
        .duration_trunc(Duration::seconds(1))
        .unwrap_or(now - RETENTION);
    let to = to
        .min(now)
        .duration_trunc(Duration::seconds(1))
        .unwrap_or(to);
    let from = from.duration_trunc(Duration::seconds(1)).unwrap_or(from);
    let gap = (from < earliest).then(|| Window {
        start: from,
        end: earliest.min(to),
    });
    let mut start = from.max(earliest);
    let mut windows = Vec::new();
    while start < to {
        let end = (start + MAX_WINDOW).min(to);
        windows.push(Window { start, end });
        start = end;
    }
    (windows, gap.filter(|g| g.start < g.end))
}

/// The Management Activity API, as audit-fetch sees it.
#[async_trait]
pub trait AuditFeed: Send + Sync {
    /// The tenant whose feed this is.
    fn tenant_id(&self) -> &str;
    /// Starts the content type's subscription unless it is enabled; true when it was started now.
    async fn ensure_subscription(&self, content_type: &str) -> Result<bool, ApiError>;
    /// The blobs that became available in `window`, page by page.
    fn content(&self, content_type: &str, window: Window) -> BoxPages<'_, ContentBlob>;
    /// A blob's bytes (a JSON array of records).
    async fn fetch_blob(&self, content_uri: &str) -> Result<Vec<u8>, ApiError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, d, h, 0, 0)
            .single()
            .expect("valid")
    }

    #[test]
    fn three_days_split_into_meeting_24h_windows() {
        let (w, gap) = plan_windows(t(18, 6), t(21, 6), t(21, 12));
        assert_eq!(gap, None);
        assert_eq!(w.len(), 3);
        for pair in w.windows(2) {
            assert_eq!(pair[0].end, pair[1].start);
        }
        assert!(w.iter().all(|x| x.end - x.start <= MAX_WINDOW));
        assert_eq!(w[0].start, t(18, 6));
        assert_eq!(w[2].end, t(21, 6));
    }

    #[test]
    fn range_older_than_seven_days_is_clamped_and_reported_as_gap() {
        let now = t(21, 12);
        let (w, gap) = plan_windows(t(12, 0), now, now);
        let gap = gap.expect("gap");
        assert_eq!(gap.start, t(12, 0));
        assert!(gap.end > now - RETENTION);
        assert_eq!(w[0].start, gap.end);
        assert_eq!(w.last().map(|x| x.end), Some(now));
        assert!(w.len() >= 7);
    }
}

/// How far back the Purview audit log (Audit Standard) holds records.
pub(crate) const PURVIEW_RETENTION_DAYS: i64 = 180;

/// A Purview audit log query (`/security/auditLog/queries`) as Graph shows it.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AuditLogQuery {
    /// Id.
    pub id: String,
    /// The name it was created with.
    #[serde(default)]
    pub display_name: Option<String>,
    /// `notStarted`, `running`, `succeeded`, `failed`, `cancelled`.
    #[serde(default)]
    pub status: Option<String>,
}

impl AuditLogQuery {
    /// Its status, `unknown` when Graph gave none.
    pub fn status(&self) -> &str {
        self.status.as_deref().unwrap_or("unknown")
    }
}

/// A query to create: the records of `[start, end)` of these record types and operations.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct NewAuditLogQuery {
    /// Always `#microsoft.graph.security.auditLogQuery`.
    #[serde(rename = "@odata.type")]
    pub odata_type: &'static str,
    /// A name to find it by again.
    pub display_name: String,
    /// Start (RFC 3339).
    pub filter_start_date_time: String,
    /// End (RFC 3339).
    pub filter_end_date_time: String,
    /// `auditLogRecordType`s.
    pub record_type_filters: Vec<String>,
    /// Operations.
    pub operation_filters: Vec<String>,
}

/// The Purview audit log query API: asynchronous queries, their status, and their records' pages.
#[async_trait]
pub trait AuditLogQueries: Send + Sync {
    /// The tenant's queries.
    async fn audit_queries(&self) -> Result<Vec<AuditLogQuery>, ApiError>;
    /// Creates a query (it starts `notStarted`).
    async fn create_audit_query(&self, query: &NewAuditLogQuery)
    -> Result<AuditLogQuery, ApiError>;
    /// A query now.
    async fn audit_query(&self, id: &str) -> Result<AuditLogQuery, ApiError>;
    /// A succeeded query's `auditLogRecord`s, page by page.
    fn audit_query_records(&self, id: &str) -> BoxPages<'_, serde_json::Value>;
}
