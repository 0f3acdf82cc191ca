//! Microsoft Graph adapter: typed calls over [`crate::http::Caller`], and `@odata.nextLink` paging exposed one
//! page at a time (never an unbounded collect), guarded against link loops, untrusted hosts and runaway listings.
//! It is the [`Directory`] of the use cases.

use std::collections::HashSet;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use url::Url;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::http::{ApiError, BodyProblem, Caller, RawResponse, Service, check_link, json_body};
use crate::ports::directory::types::{
    CompanySubscription, DeltaUser, DirectoryObject, Group, ListedUser, SubscribedSku,
    USER_LICENSE_SELECT, USER_SELECT, USER_SIGN_IN_SELECT, User,
};
use crate::ports::directory::{
    BoxPages, ChangeSubscriptions, Directory, NewSubscription, Pages, path_segment,
};

/// Graph client for one tenant.
#[derive(Debug, Clone)]
pub struct GraphClient {
    caller: Caller,
    base: Url,
    max_pages: u32,
}

/// One page of a Graph collection.
#[derive(Debug, Deserialize)]
struct PageBody<T> {
    value: Vec<T>,
    #[serde(rename = "@odata.nextLink")]
    next_link: Option<String>,
    /// The last page of a delta round: where the next round starts.
    #[serde(rename = "@odata.deltaLink", default)]
    delta_link: Option<String>,
}

impl GraphClient {
    /// A client for the Graph root `graph_root` (e.g. `https://graph.microsoft.com`; `/v1.0` is added).
    pub fn new(caller: Caller, graph_root: &Url) -> Self {
        let mut base = graph_root.clone();
        base.set_path(&format!(
            "{}/v1.0/",
            graph_root.path().trim_end_matches('/')
        ));
        Self {
            caller,
            base,
            max_pages: 10_000,
        }
    }

    /// Caps how many pages one listing may follow (a guard against endless `nextLink` chains).
    pub fn with_max_pages(mut self, max_pages: u32) -> Self {
        self.max_pages = max_pages;
        self
    }

    /// The `/v1.0/` base URL.
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// Absolute URL of a path relative to `/v1.0/` (e.g. `users?$top=999`).
    pub fn url(&self, relative: &str) -> String {
        format!("{}{}", self.base.as_str(), relative.trim_start_matches('/'))
    }

    /// GET a JSON document.
    pub async fn get<T: DeserializeOwned>(&self, relative: &str) -> Result<T, ApiError> {
        let url = self.url(relative);
        let http = self.caller.http.clone();
        self.caller
            .call(
                relative,
                || http.get(&url),
                |raw: RawResponse| json_body(&raw),
            )
            .await
    }

    /// GET whose 2xx answer, whatever its format (a report redirects to CSV), is read and discarded: proves the
    /// call is allowed.
    pub async fn reach(&self, relative: &str) -> Result<(), ApiError> {
        let url = self.url(relative);
        let http = self.caller.http.clone();
        self.caller
            .call(relative, || http.get(&url), |_raw: RawResponse| Ok(()))
            .await
    }

    /// POST a JSON body and parse the JSON answer (`null` for an empty 2xx body such as 202).
    pub async fn post<B: serde::Serialize, T: DeserializeOwned>(
        &self,
        relative: &str,
        body: &B,
    ) -> Result<T, ApiError> {
        let payload = serde_json::to_vec(body).map_err(|e| ApiError::MalformedBody {
            service: Service::Graph,
            what: relative.to_string(),
            detail: format!("cannot encode the request: {e}"),
        })?;
        self.send(reqwest::Method::POST, relative, Some(payload))
            .await
    }

    /// Sends `method` with a JSON body (or none) and parses the JSON answer (`null` for an empty 2xx body such as
    /// 204).
    pub async fn send<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        relative: &str,
        payload: Option<Vec<u8>>,
    ) -> Result<T, ApiError> {
        let url = self.url(relative);
        let http = self.caller.http.clone();
        self.caller
            .call(
                relative,
                || {
                    let request = http.request(method.clone(), &url);
                    match &payload {
                        Some(p) => request
                            .header("content-type", "application/json")
                            .body(p.clone()),
                        None => request,
                    }
                },
                |raw: RawResponse| {
                    if raw.body.is_empty() {
                        serde_json::from_value(serde_json::Value::Null)
                            .map_err(|e| BodyProblem(format!("empty body: {e}")))
                    } else {
                        json_body(&raw)
                    }
                },
            )
            .await
    }

    /// Pages through a collection starting at `relative` (e.g. `users?$select=...&$top=999`).
    pub fn pages<T: DeserializeOwned>(&self, relative: &str) -> Pager<T> {
        Pager {
            client: self.clone(),
            next: Some(self.url(relative)),
            seen: HashSet::new(),
            pages: 0,
            prefetch: None,
            prefer: None,
            delta_link: None,
            _item: PhantomData,
        }
    }

    /// A delta round from `link` (a stored `@odata.deltaLink`), or a new one from `relative`; pages as large as
    /// Graph allows.
    fn delta_pages<T: DeserializeOwned>(
        &self,
        relative: &str,
        link: Option<&str>,
    ) -> Result<Pager<T>, ApiError> {
        let mut pager = self.pages(relative);
        if let Some(link) = link {
            check_link(Service::Graph, &self.base, link, "@odata.deltaLink")?;
            pager.next = Some(link.to_string());
        }
        // Only the properties that changed: an item in full carries the untracked licenseAssignmentStates, stale.
        pager.prefer = Some("odata.maxpagesize=999, return=minimal");
        Ok(pager)
    }
}

/// A page requested ahead: its URL and the request under way.
type Prefetch = (String, tokio::task::JoinHandle<Result<Vec<u8>, ApiError>>);

/// A cursor over the pages of one Graph listing. Pages come one after another (each `$skiptoken` is in the page
/// before), but page N+1 is requested as soon as page N's next link is read from the head of its body, so the
/// round trip overlaps the parsing of page N.
#[derive(Debug)]
pub struct Pager<T> {
    client: GraphClient,
    next: Option<String>,
    seen: HashSet<String>,
    pages: u32,
    prefetch: Option<Prefetch>,
    /// A `Prefer` header for every page (delta rounds ask for the largest pages).
    prefer: Option<&'static str>,
    delta_link: Option<String>,
    _item: PhantomData<fn() -> T>,
}

impl<T> Drop for Pager<T> {
    fn drop(&mut self) {
        // A listing abandoned halfway must not leave a request running.
        if let Some((_, handle)) = self.prefetch.take() {
            handle.abort();
        }
    }
}

/// The `@odata.nextLink` of a page, read from the head of its body: Graph writes it before `value`, so the next
/// request can go out before the page is parsed. `None` when the head does not hold it (the last page, or a body
/// in another order, where the full parse decides).
fn next_link_in_head(body: &[u8]) -> Option<String> {
    const KEY: &[u8] = b"\"value\"";
    let at = body.windows(KEY.len()).position(|w| w == KEY)?;
    let head = std::str::from_utf8(&body[..at])
        .ok()?
        .trim_end()
        .trim_end_matches(',');
    #[derive(Deserialize)]
    struct Head {
        #[serde(rename = "@odata.nextLink")]
        next_link: Option<String>,
    }
    serde_json::from_str::<Head>(&format!("{head}}}"))
        .ok()?
        .next_link
}

/// A page's JSON, or `None` when it does not parse. The body is checked as UTF-8 once, then parsed as text: parsed
/// from bytes, every string of a 1,000-user page was checked on its own (a tenth of a full read's CPU).
fn parse_page<T: DeserializeOwned>(body: &[u8]) -> Option<PageBody<T>> {
    let text = std::str::from_utf8(body).ok()?;
    serde_json::from_str(text).ok()
}

/// One page's body through the retry policy, unparsed.
async fn fetch_body(
    caller: Caller,
    url: String,
    prefer: Option<&'static str>,
) -> Result<Vec<u8>, ApiError> {
    let http = caller.http.clone();
    let request = || match prefer {
        Some(p) => http.get(&url).header("prefer", p),
        None => http.get(&url),
    };
    caller
        .call("page", request, |raw: RawResponse| Ok(raw.body))
        .await
}

impl<T: DeserializeOwned> Pager<T> {
    /// The next page's items, or `None` after the last page. An empty page with a next link is not the end.
    pub async fn next_page(&mut self) -> Result<Option<Vec<T>>, ApiError> {
        let Some(url) = self.next.take() else {
            return Ok(None);
        };
        if self.pages >= self.client.max_pages {
            return Err(ApiError::PageCapReached {
                service: Service::Graph,
                cap: self.client.max_pages,
            });
        }
        if !self.seen.insert(url.clone()) {
            return Err(ApiError::PaginationLoop {
                service: Service::Graph,
                pages: self.pages,
            });
        }
        let page = self.read(&url).await.inspect_err(|_| {
            // Keep the position so that a caller may retry this same page.
            self.seen.remove(&url);
            self.next = Some(url.clone());
        })?;
        self.pages += 1;
        if let Some(link) = page.delta_link {
            check_link(Service::Graph, &self.client.base, &link, "@odata.deltaLink")?;
            self.delta_link = Some(link);
        }
        if let Some(link) = page.next_link {
            check_link(Service::Graph, &self.client.base, &link, "@odata.nextLink")?;
            self.next = Some(link);
        }
        Ok(Some(page.value))
    }

    /// Page `url`: the prefetched body when it is this page's, else a fetch now; the next page is requested before
    /// this one is parsed. A body that does not parse is fetched again through the retry policy, as any
    /// truncated body is.
    async fn read(&mut self, url: &str) -> Result<PageBody<T>, ApiError> {
        let prefetched = match self.prefetch.take() {
            Some((u, handle)) if u == url => handle.await.ok(),
            Some((_, handle)) => {
                handle.abort();
                None
            }
            None => None,
        };
        let body = match prefetched {
            Some(body) => body?,
            None => fetch_body(self.client.caller.clone(), url.to_string(), self.prefer).await?,
        };
        self.request_ahead(&body);
        match parse_page(&body) {
            Some(page) => Ok(page),
            None => {
                let http = self.client.caller.http.clone();
                self.client
                    .caller
                    .call("page", || http.get(url), |raw: RawResponse| json_body(&raw))
                    .await
            }
        }
    }

    /// Requests the page after `body` in the background, when its link is in the head, allowed, new, and within
    /// the page cap.
    fn request_ahead(&mut self, body: &[u8]) {
        let Some(link) = next_link_in_head(body) else {
            return;
        };
        let allowed =
            check_link(Service::Graph, &self.client.base, &link, "@odata.nextLink").is_ok();
        if allowed && !self.seen.contains(&link) && self.pages + 1 < self.client.max_pages {
            let fetch = fetch_body(self.client.caller.clone(), link.clone(), self.prefer);
            self.prefetch = Some((link, tokio::spawn(fetch)));
        }
    }

    /// Pages fetched so far.
    pub fn pages_fetched(&self) -> u32 {
        self.pages
    }

    /// The link of the page that will be fetched next (a checkpoint for long scans).
    pub fn checkpoint(&self) -> Option<&str> {
        self.next.as_deref()
    }
}

#[async_trait]
impl<T: DeserializeOwned + Send> Pages<T> for Pager<T> {
    async fn next_page(&mut self) -> Result<Option<Vec<T>>, ApiError> {
        Pager::next_page(self).await
    }

    fn pages_fetched(&self) -> u32 {
        Pager::pages_fetched(self)
    }

    fn delta_link(&self) -> Option<String> {
        self.delta_link.clone()
    }

    fn is_done(&self) -> bool {
        self.next.is_none() && self.pages > 0
    }
}

fn at(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[async_trait]
impl Directory for GraphClient {
    async fn subscribed_skus(&self) -> Result<Vec<SubscribedSku>, ApiError> {
        #[derive(Deserialize)]
        struct Skus {
            value: Vec<SubscribedSku>,
        }
        Ok(self.get::<Skus>("subscribedSkus").await?.value)
    }

    async fn company_subscriptions(&self) -> Result<Vec<CompanySubscription>, ApiError> {
        let mut pages = self.pages::<CompanySubscription>("directory/subscriptions");
        let mut out = Vec::new();
        while let Some(page) = pages.next_page().await? {
            out.extend(page);
        }
        Ok(out)
    }

    async fn allotments(&self) -> Result<Vec<crate::ports::directory::types::Allotment>, ApiError> {
        // Beta: the same root, `/beta/` instead of `/v1.0/`.
        let mut beta = self.clone();
        beta.base
            .set_path(&self.base.path().replace("/v1.0/", "/beta/"));
        let mut pages = beta.pages::<crate::ports::directory::types::Allotment>(
            "admin/cloudLicensing/allotments?$select=id,skuId,skuPartNumber,allottedUnits,consumedUnits\
             &$expand=waitingMembers($select=id,waitingSinceDateTime)",
        );
        let mut out = Vec::new();
        while let Some(page) = pages.next_page().await? {
            out.extend(page);
        }
        Ok(out)
    }

    fn users_delta(&self, link: Option<&str>) -> BoxPages<'_, DeltaUser> {
        // No link: `$deltatoken=latest` starts tracking from now without listing every user again.
        let start = format!("users/delta?$select={USER_SELECT}&$deltatoken=latest");
        match self.delta_pages::<DeltaUser>(&start, link) {
            Ok(pager) => Box::new(pager),
            Err(e) => Box::new(crate::ports::directory::Failed(Some(e))),
        }
    }

    fn users(&self) -> BoxPages<'_, User> {
        Box::new(self.pages::<User>(&format!("users?$select={USER_SELECT}&$top=999")))
    }

    fn user_snapshots(&self) -> BoxPages<'_, ListedUser> {
        Box::new(self.pages::<ListedUser>(&format!("users?$select={USER_SELECT}&$top=999")))
    }

    fn users_with_sign_in(&self) -> BoxPages<'_, User> {
        Box::new(self.pages::<User>(&format!("users?$select={USER_SIGN_IN_SELECT}&$top=999")))
    }

    async fn mailbox_usage(&self, period: &str) -> Result<Vec<u8>, ApiError> {
        // Graph answers 302 with a pre-authenticated download URL; the client follows it (and drops the bearer
        // token when the download is on another host, as Microsoft's is).
        let relative = format!("reports/getMailboxUsageDetail(period='{period}')");
        let url = self.url(&relative);
        let http = self.caller.http.clone();
        self.caller
            .call(
                &relative,
                || http.get(&url),
                |raw: RawResponse| Ok(raw.body),
            )
            .await
    }

    async fn user_in_full(&self, id_or_upn: &str) -> Result<Option<User>, ApiError> {
        let path = format!("users/{}?$select={USER_SELECT}", path_segment(id_or_upn));
        match self.get::<User>(&path).await {
            Ok(u) => Ok(Some(u)),
            Err(ApiError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn users_in_full(&self, ids: &[String]) -> Result<Vec<(String, Option<User>)>, ApiError> {
        use futures::StreamExt;
        // Owned chunks: a closure over borrowed ones would make the future `Send` for one lifetime only.
        let chunks: Vec<Vec<String>> = ids.chunks(BATCH_MAX).map(<[String]>::to_vec).collect();
        let mut batches = futures::stream::iter(chunks)
            .map(|chunk| async move { self.batch_users(&chunk).await })
            .buffer_unordered(BATCHES_IN_FLIGHT);
        let mut out = Vec::with_capacity(ids.len());
        while let Some(read) = batches.next().await {
            out.extend(read?);
        }
        Ok(out)
    }

    async fn mailbox_purpose(
        &self,
        user_id: &str,
    ) -> Result<Option<crate::domain::kinds::MailboxPurpose>, ApiError> {
        #[derive(serde::Deserialize)]
        struct Settings {
            #[serde(rename = "userPurpose", default)]
            user_purpose: Option<String>,
        }
        let path = format!(
            "users/{}/mailboxSettings?$select=userPurpose",
            path_segment(user_id)
        );
        match self.get::<Settings>(&path).await {
            Ok(s) => Ok(s.user_purpose.and_then(|p| p.parse().ok())),
            // No mailbox in Exchange Online (MailboxNotEnabledForRESTAPI), or no such user.
            Err(ApiError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn user(&self, id_or_upn: &str) -> Result<Option<User>, ApiError> {
        let path = format!(
            "users/{}?$select={USER_LICENSE_SELECT}",
            path_segment(id_or_upn)
        );
        match self.get::<User>(&path).await {
            Ok(u) => Ok(Some(u)),
            Err(ApiError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn groups_with_license_errors(&self) -> BoxPages<'_, Group> {
        Box::new(self.pages::<Group>(
            "groups?$filter=hasMembersWithLicenseErrors eq true&$select=id,displayName",
        ))
    }

    fn licensed_groups(&self) -> BoxPages<'_, Group> {
        Box::new(self.pages::<Group>("groups?$select=id,displayName,assignedLicenses&$top=999"))
    }

    fn members_with_license_errors(&self, group_id: &str) -> BoxPages<'_, DirectoryObject> {
        Box::new(self.pages::<DirectoryObject>(&format!(
            "groups/{group_id}/membersWithLicenseErrors?$select=id,userPrincipalName"
        )))
    }

    fn directory_audits(
        &self,
        from: DateTime<Utc>,
        to: Option<DateTime<Utc>>,
    ) -> BoxPages<'_, Value> {
        // Graph documents `eq`, `ge` and `le` on `activityDateTime` (not `lt`): the window's end is asked for with
        // `le` and a record at exactly the end is left to the next window here.
        let filter = match to {
            None => format!("activityDateTime ge {}", at(from)),
            Some(to) => format!(
                "activityDateTime ge {} and activityDateTime le {}",
                at(from),
                at(to)
            ),
        };
        let query: String = url::form_urlencoded::byte_serialize(filter.as_bytes()).collect();
        let pages = self.pages::<Value>(&format!(
            "auditLogs/directoryAudits?$filter={query}&$top=999"
        ));
        match to {
            None => Box::new(pages),
            Some(to) => Box::new(BeforeEnd { pages, end: to }),
        }
    }

    async fn write(&self, path: &str, body: &Value) -> Result<Value, ApiError> {
        // `reprocessLicenseAssignment` takes no body ("Don't supply a request body"): a call without one is sent
        // as such, not as the JSON text `null`.
        match body {
            Value::Null => self.send(reqwest::Method::POST, path, None).await,
            _ => self.post::<Value, Value>(path, body).await,
        }
    }
}

/// Directory audits of a window asked for with `le` its end: the records at exactly the end belong to the next
/// window (the port's windows are half-open) and are left out; a record whose time cannot be read is kept (never
/// lost: the archive dedupes by id).
struct BeforeEnd {
    pages: Pager<Value>,
    end: DateTime<Utc>,
}

#[async_trait]
impl Pages<Value> for BeforeEnd {
    async fn next_page(&mut self) -> Result<Option<Vec<Value>>, ApiError> {
        let end = self.end;
        Ok(self.pages.next_page().await?.map(|mut page| {
            page.retain(|r| {
                r["activityDateTime"]
                    .as_str()
                    .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                    .is_none_or(|t| t.to_utc() < end)
            });
            page
        }))
    }

    fn pages_fetched(&self) -> u32 {
        self.pages.pages_fetched()
    }

    fn is_done(&self) -> bool {
        Pages::is_done(&self.pages)
    }
}

/// Graph's limit of requests in one JSON batch.
const BATCH_MAX: usize = 20;
/// JSON batches in flight at once (80 users).
const BATCHES_IN_FLIGHT: usize = 4;

/// A `$batch` answer.
#[derive(Debug, Deserialize)]
struct BatchAnswer {
    responses: Vec<BatchResponse>,
}

#[derive(Debug, Deserialize)]
struct BatchResponse {
    id: String,
    status: u16,
    #[serde(default)]
    body: Value,
}

impl GraphClient {
    /// Up to [`BATCH_MAX`] users in one `POST /$batch`. An item that is throttled, failed or unreadable is read
    /// again on its own, under the full retry rules (`Retry-After` honoured); 404 means the user is gone.
    async fn batch_users(&self, ids: &[String]) -> Result<Vec<(String, Option<User>)>, ApiError> {
        let requests: Vec<Value> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                serde_json::json!({"id": i.to_string(), "method": "GET",
                    "url": format!("/users/{}?$select={USER_SELECT}", path_segment(id))})
            })
            .collect();
        let answer: BatchAnswer = self
            .post("$batch", &serde_json::json!({ "requests": requests }))
            .await?;
        let mut out = Vec::with_capacity(ids.len());
        let mut answered = vec![false; ids.len()];
        for r in answer.responses {
            let Some(i) = r.id.parse::<usize>().ok().filter(|i| *i < ids.len()) else {
                continue;
            };
            let read = match r.status {
                200 => serde_json::from_value::<User>(r.body).ok().map(Some),
                404 => Some(None),
                _ => None,
            };
            if let Some(user) = read {
                answered[i] = true;
                out.push((ids[i].clone(), user));
            }
        }
        let unanswered = ids.iter().zip(&answered).filter(|(_, a)| !**a);
        for (id, _) in unanswered {
            out.push((id.clone(), self.user_in_full(id).await?));
        }
        Ok(out)
    }
}

/// The part of Graph's subscription resource licensewatch reads.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SubscriptionBody {
    id: String,
    expiration_date_time: DateTime<Utc>,
}

#[async_trait]
impl ChangeSubscriptions for GraphClient {
    async fn create_subscription(
        &self,
        request: &NewSubscription<'_>,
    ) -> Result<(String, DateTime<Utc>), ApiError> {
        let body = serde_json::json!({
            "changeType": request.change_type,
            "notificationUrl": request.notification_url,
            "lifecycleNotificationUrl": request.lifecycle_url,
            "resource": request.resource,
            "expirationDateTime": at(request.expires_at),
            "clientState": request.client_state,
        });
        let created: SubscriptionBody = self.post("subscriptions", &body).await?;
        Ok((created.id, created.expiration_date_time))
    }

    async fn renew_subscription(
        &self,
        id: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, ApiError> {
        let body = serde_json::json!({ "expirationDateTime": at(expires_at) }).to_string();
        let path = format!("subscriptions/{}", path_segment(id));
        match self
            .send::<SubscriptionBody>(reqwest::Method::PATCH, &path, Some(body.into_bytes()))
            .await
        {
            Ok(s) => Ok(Some(s.expiration_date_time)),
            Err(ApiError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn reauthorize_subscription(&self, id: &str) -> Result<bool, ApiError> {
        let path = format!("subscriptions/{}/reauthorize", path_segment(id));
        match self.send::<Value>(reqwest::Method::POST, &path, None).await {
            Ok(_) => Ok(true),
            Err(ApiError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn delete_subscription(&self, id: &str) -> Result<(), ApiError> {
        let path = format!("subscriptions/{}", path_segment(id));
        match self
            .send::<Value>(reqwest::Method::DELETE, &path, None)
            .await
        {
            Ok(_) | Err(ApiError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::next_link_in_head;

    #[test]
    fn the_next_link_is_read_from_the_head_when_graph_puts_it_there() {
        let body = br#"{"@odata.context":"https://graph.microsoft.com/v1.0/$metadata#users","@odata.nextLink":"https://graph.microsoft.com/v1.0/users?$skiptoken=abc","value":[{"id":"1"}]}"#;
        assert_eq!(
            next_link_in_head(body).as_deref(),
            Some("https://graph.microsoft.com/v1.0/users?$skiptoken=abc")
        );
        assert_eq!(
            next_link_in_head(br#"{"value":[],"@odata.nextLink":"x"}"#),
            None,
            "after the items: the full parse decides"
        );
        assert_eq!(
            next_link_in_head(br#"{"@odata.context":"c","value":[]}"#),
            None,
            "the last page"
        );
        assert_eq!(
            next_link_in_head(br#"{"@odata.nextLink":x,"value":[]}"#),
            None,
            "not JSON: the full parse decides"
        );
    }
}
