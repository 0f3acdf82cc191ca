//! Office 365 Management Activity API adapter: subscriptions, content listings (`NextPageUri` paging) in windows of
//! at most 24 hours within the last 7 days, and blob downloads. `PublisherIdentifier` goes on every call, so that
//! throttling is counted against our own quota and not the shared one.

use chrono::{DateTime, Duration, DurationRound, Utc};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::adapters::http::{ApiError, BodyProblem, Caller, RawResponse, Service, json_body};

/// How far back the API lists content.
pub const RETENTION: Duration = Duration::days(7);
/// Longest window one `subscriptions/content` call may ask for.
pub const MAX_WINDOW: Duration = Duration::hours(24);

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

/// One entry of `subscriptions/list`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    /// Content type.
    pub content_type: String,
    /// `enabled` or `disabled`.
    #[serde(default)]
    pub status: Option<String>,
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

/// Management Activity API client for one tenant.
#[derive(Debug, Clone)]
pub struct ManagementClient {
    caller: Caller,
    feed: Url,
    publisher_id: String,
    tenant_id: String,
}

impl ManagementClient {
    /// A client for `{manage_root}/api/v1.0/{tenant}/activity/feed/`.
    pub fn new(caller: Caller, manage_root: &Url, tenant_id: &str, publisher_id: &str) -> Self {
        let mut feed = manage_root.clone();
        feed.set_path(&format!(
            "{}/api/v1.0/{}/activity/feed/",
            manage_root.path().trim_end_matches('/'),
            tenant_id
        ));
        Self {
            caller,
            feed,
            publisher_id: publisher_id.to_string(),
            tenant_id: tenant_id.to_string(),
        }
    }

    /// Stops retrying and waiting at `deadline`.
    pub fn with_deadline(mut self, deadline: tokio::time::Instant) -> Self {
        self.caller.deadline = Some(deadline);
        self
    }

    /// The tenant whose feed this is.
    pub fn tenant_id(&self) -> &str {
        &self.tenant_id
    }

    fn with_publisher(&self, url: &str) -> String {
        if url.contains("PublisherIdentifier=") {
            url.to_string()
        } else {
            let sep = if url.contains('?') { '&' } else { '?' };
            format!("{url}{sep}PublisherIdentifier={}", self.publisher_id)
        }
    }

    fn op_url(&self, op: &str, query: &[(&str, &str)]) -> String {
        let mut u = self.feed.join(op).unwrap_or_else(|_| self.feed.clone());
        {
            let mut q = u.query_pairs_mut();
            for (k, v) in query {
                q.append_pair(k, v);
            }
            q.append_pair("PublisherIdentifier", &self.publisher_id);
        }
        u.to_string()
    }

    /// `GET subscriptions/list`.
    pub async fn list_subscriptions(&self) -> Result<Vec<Subscription>, ApiError> {
        let url = self.op_url("subscriptions/list", &[]);
        let http = self.caller.http.clone();
        self.caller
            .call(
                "subscriptions/list",
                || http.get(&url),
                |raw: RawResponse| json_body(&raw),
            )
            .await
    }

    /// `POST subscriptions/start?contentType=...` (idempotent for an enabled subscription).
    pub async fn start_subscription(&self, content_type: &str) -> Result<(), ApiError> {
        let url = self.op_url("subscriptions/start", &[("contentType", content_type)]);
        let http = self.caller.http.clone();
        self.caller
            .call(
                "subscriptions/start",
                || {
                    http.post(&url)
                        .header("content-type", "application/json")
                        .body("{}")
                },
                |_raw: RawResponse| Ok(()),
            )
            .await
    }

    /// Ensures a subscription for `content_type` is enabled; returns true when one had to be started.
    pub async fn ensure_subscription(&self, content_type: &str) -> Result<bool, ApiError> {
        let subs = self.list_subscriptions().await?;
        let enabled = subs.iter().any(|s| {
            s.content_type.eq_ignore_ascii_case(content_type)
                && s.status
                    .as_deref()
                    .is_some_and(|st| st.eq_ignore_ascii_case("enabled"))
        });
        if enabled {
            return Ok(false);
        }
        self.start_subscription(content_type).await?;
        Ok(true)
    }

    /// Lists the blobs of one window (≤ 24 h), page by page.
    pub fn content_pages(&self, content_type: &str, window: Window) -> ContentPager {
        let fmt = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%S").to_string();
        let url = self.op_url(
            "subscriptions/content",
            &[
                ("contentType", content_type),
                ("startTime", &fmt(window.start)),
                ("endTime", &fmt(window.end)),
            ],
        );
        ContentPager {
            client: self.clone(),
            next: Some(url),
            pages: 0,
        }
    }

    /// Downloads one blob's raw JSON array (parsed by the caller, so large blobs can be streamed).
    pub async fn fetch_blob(&self, content_uri: &str) -> Result<Vec<u8>, ApiError> {
        let url = self.with_publisher(content_uri);
        self.check_link(&url)?;
        let http = self.caller.http.clone();
        self.caller
            .call(
                "content blob",
                || http.get(&url),
                |raw: RawResponse| {
                    // Validate the framing cheaply so that a truncated body is retried, not archived.
                    let trimmed = raw.body.trim_ascii();
                    if trimmed.first() == Some(&b'[') && trimmed.last() == Some(&b']') {
                        Ok(raw.body)
                    } else {
                        Err(BodyProblem("a content blob must be a JSON array".into()))
                    }
                },
            )
            .await
    }

    fn check_link(&self, link: &str) -> Result<(), ApiError> {
        let u = Url::parse(link).map_err(|_| ApiError::MalformedBody {
            service: Service::Management,
            what: "link".into(),
            detail: "not an absolute URL".into(),
        })?;
        if u.origin() != self.feed.origin() {
            return Err(ApiError::UntrustedLink {
                service: Service::Management,
                host: u.host_str().unwrap_or("?").to_string(),
            });
        }
        Ok(())
    }
}

/// A cursor over the pages of one content listing (`NextPageUri` response header).
#[derive(Debug)]
pub struct ContentPager {
    client: ManagementClient,
    next: Option<String>,
    pages: u32,
}

impl ContentPager {
    /// The next page of blobs, or `None` after the last one.
    pub async fn next_page(&mut self) -> Result<Option<Vec<ContentBlob>>, ApiError> {
        let Some(url) = self.next.take() else {
            return Ok(None);
        };
        if self.pages >= 10_000 {
            return Err(ApiError::PageCapReached {
                service: Service::Management,
                cap: 10_000,
            });
        }
        let url = self.client.with_publisher(&url);
        self.client.check_link(&url)?;
        let http = self.client.caller.http.clone();
        let (blobs, next) = self
            .client
            .caller
            .call(
                "subscriptions/content",
                || http.get(&url),
                |raw: RawResponse| {
                    let blobs: Vec<ContentBlob> = json_body(&raw)?;
                    let next = raw
                        .headers
                        .get("NextPageUri")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string);
                    Ok((blobs, next))
                },
            )
            .await?;
        self.pages += 1;
        if next.as_deref() == Some(url.as_str()) {
            return Err(ApiError::PaginationLoop {
                service: Service::Management,
                pages: self.pages,
            });
        }
        self.next = next;
        Ok(Some(blobs))
    }
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
