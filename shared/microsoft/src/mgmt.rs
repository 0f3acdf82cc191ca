//! Office 365 Management Activity API adapter: subscriptions, content listings (`NextPageUri` paging) in windows of
//! at most 24 hours within the last 7 days, and blob downloads. `PublisherIdentifier` goes on every call, so that
//! throttling is counted against our own quota and not the shared one.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::http::{ApiError, BodyProblem, Caller, RawResponse, Service, check_link, json_body};
use crate::ports::audit_feed::{AuditFeed, ContentBlob, Window};
use crate::ports::directory::{BoxPages, Pages};

/// The Management API's answer to starting a subscription that is already enabled.
const ALREADY_ENABLED: &str = "AF20024";

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
    pub(crate) async fn list_subscriptions(&self) -> Result<Vec<Subscription>, ApiError> {
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

    /// `POST subscriptions/start?contentType=...`. The API answers 400 AF20024 when the subscription is already
    /// enabled (another run, or another deployment of the same app, started it first): that is success.
    pub async fn start_subscription(&self, content_type: &str) -> Result<(), ApiError> {
        let url = self.op_url("subscriptions/start", &[("contentType", content_type)]);
        let http = self.caller.http.clone();
        let started = self
            .caller
            .call(
                "subscriptions/start",
                || {
                    http.post(&url)
                        .header("content-type", "application/json")
                        .body("{}")
                },
                |_raw: RawResponse| Ok(()),
            )
            .await;
        match started {
            Err(e) if e.code() == Some(ALREADY_ENABLED) => Ok(()),
            other => other,
        }
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
        check_link(Service::Management, &self.feed, link, "link")
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

#[async_trait]
impl Pages<ContentBlob> for ContentPager {
    async fn next_page(&mut self) -> Result<Option<Vec<ContentBlob>>, ApiError> {
        ContentPager::next_page(self).await
    }

    fn pages_fetched(&self) -> u32 {
        self.pages
    }
}

#[async_trait]
impl AuditFeed for ManagementClient {
    fn tenant_id(&self) -> &str {
        ManagementClient::tenant_id(self)
    }

    async fn ensure_subscription(&self, content_type: &str) -> Result<bool, ApiError> {
        ManagementClient::ensure_subscription(self, content_type).await
    }

    fn content(&self, content_type: &str, window: Window) -> BoxPages<'_, ContentBlob> {
        Box::new(self.content_pages(content_type, window))
    }

    async fn fetch_blob(&self, content_uri: &str) -> Result<Vec<u8>, ApiError> {
        ManagementClient::fetch_blob(self, content_uri).await
    }
}
