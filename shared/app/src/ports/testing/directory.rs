//! [`MemoryDirectory`] and [`MemoryFeed`]: a tenant's directory and audit feed in memory, fed with records in
//! Microsoft's own JSON shapes.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::error::{ApiError, Service};
use crate::ports::audit_feed::{AuditFeed, ContentBlob, Window};
use crate::ports::directory::types::{DirectoryObject, Group, SubscribedSku, User};
use crate::ports::directory::{BoxPages, Directory, Pages};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Pages of a fixed listing.
struct ListPages<T> {
    pages: VecDeque<Vec<T>>,
    fetched: u32,
}

impl<T> ListPages<T> {
    fn new(items: Vec<T>, page_size: usize) -> Self {
        let mut pages = VecDeque::new();
        let mut items = items.into_iter().peekable();
        while items.peek().is_some() {
            pages.push_back(items.by_ref().take(page_size.max(1)).collect());
        }
        Self { pages, fetched: 0 }
    }
}

#[async_trait]
impl<T: Send> Pages<T> for ListPages<T> {
    async fn next_page(&mut self) -> Result<Option<Vec<T>>, ApiError> {
        let page = self.pages.pop_front();
        self.fetched += u32::from(page.is_some());
        Ok(page)
    }

    fn pages_fetched(&self) -> u32 {
        self.fetched
    }
}

/// A Purview query of the memory directory: the query and its window.
type MemoryQuery = (
    crate::ports::audit_feed::AuditLogQuery,
    DateTime<Utc>,
    DateTime<Utc>,
);

/// A directory in memory. Users, SKUs and groups are Graph JSON (`serde_json::json!`), so tests state a tenant the
/// way Graph would return it.
#[derive(Debug, Default)]
pub struct MemoryDirectory {
    users: Mutex<Vec<User>>,
    skus: Mutex<Vec<SubscribedSku>>,
    error_groups: Mutex<Vec<(Group, Vec<DirectoryObject>)>>,
    audits: Mutex<Vec<Value>>,
    writes: Mutex<Vec<(String, Value)>>,
    /// The Purview audit log's records (`auditLogRecord`s, `auditData` the Management API's record).
    purview: Mutex<Vec<Value>>,
    /// Purview queries created, with their windows.
    queries: Mutex<Vec<MemoryQuery>>,
}

impl MemoryDirectory {
    /// An empty tenant.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces a user (Graph `user` JSON; `id` required).
    pub fn put_user(&self, user: Value) -> &Self {
        let user: User =
            serde_json::from_value(user).unwrap_or_else(|e| panic!("not a Graph user: {e}"));
        let mut users = lock(&self.users);
        users.retain(|u| u.id != user.id);
        users.push(user);
        self
    }

    /// Removes a user.
    pub fn delete_user(&self, id: &str) -> &Self {
        lock(&self.users).retain(|u| u.id != id);
        self
    }

    /// Adds a subscription (Graph `subscribedSku` JSON).
    pub fn put_sku(&self, sku: Value) -> &Self {
        let sku: SubscribedSku =
            serde_json::from_value(sku).unwrap_or_else(|e| panic!("not a subscribedSku: {e}"));
        let mut skus = lock(&self.skus);
        skus.retain(|s| s.sku_id != sku.sku_id);
        skus.push(sku);
        self
    }

    /// Adds a group with members in licence error.
    pub fn put_error_group(&self, id: &str, name: &str, member_ids: &[&str]) -> &Self {
        let group: Group =
            serde_json::from_value(serde_json::json!({"id": id, "displayName": name}))
                .unwrap_or_else(|e| panic!("group: {e}"));
        let members = member_ids
            .iter()
            .map(|m| {
                serde_json::from_value(serde_json::json!({"id": m}))
                    .unwrap_or_else(|e| panic!("member: {e}"))
            })
            .collect();
        lock(&self.error_groups).push((group, members));
        self
    }

    /// Adds a directory audit record (Graph `directoryAudit` JSON).
    pub fn put_audit(&self, record: Value) -> &Self {
        lock(&self.audits).push(record);
        self
    }

    /// The licence writes received: (path, body).
    pub fn writes(&self) -> Vec<(String, Value)> {
        lock(&self.writes).clone()
    }
}

fn activity_time(record: &Value) -> Option<DateTime<Utc>> {
    record["activityDateTime"].as_str()?.parse().ok()
}

#[async_trait]
impl Directory for MemoryDirectory {
    async fn subscribed_skus(&self) -> Result<Vec<SubscribedSku>, ApiError> {
        Ok(lock(&self.skus).clone())
    }

    fn users(&self) -> BoxPages<'_, User> {
        Box::new(ListPages::new(lock(&self.users).clone(), 999))
    }

    async fn user(&self, id_or_upn: &str) -> Result<Option<User>, ApiError> {
        Ok(lock(&self.users)
            .iter()
            .find(|u| {
                u.id.eq_ignore_ascii_case(id_or_upn)
                    || u.user_principal_name.eq_ignore_ascii_case(id_or_upn)
            })
            .cloned())
    }

    fn groups_with_license_errors(&self) -> BoxPages<'_, Group> {
        let groups = lock(&self.error_groups)
            .iter()
            .map(|(g, _)| g.clone())
            .collect();
        Box::new(ListPages::new(groups, 100))
    }

    fn licensed_groups(&self) -> BoxPages<'_, Group> {
        Box::new(ListPages::new(Vec::new(), 100))
    }

    fn members_with_license_errors(&self, group_id: &str) -> BoxPages<'_, DirectoryObject> {
        let members = lock(&self.error_groups)
            .iter()
            .find(|(g, _)| g.id == group_id)
            .map(|(_, m)| m.clone())
            .unwrap_or_default();
        Box::new(ListPages::new(members, 100))
    }

    fn directory_audits(
        &self,
        from: DateTime<Utc>,
        to: Option<DateTime<Utc>>,
    ) -> BoxPages<'_, Value> {
        let records = lock(&self.audits)
            .iter()
            .filter(|r| activity_time(r).is_some_and(|t| t >= from && to.is_none_or(|to| t < to)))
            .cloned()
            .collect();
        Box::new(ListPages::new(records, 999))
    }

    async fn write(&self, path: &str, body: &Value) -> Result<Value, ApiError> {
        lock(&self.writes).push((path.to_string(), body.clone()));
        Ok(Value::Null)
    }
}

/// The Purview audit log's query API in memory: a query succeeds at once.
#[async_trait]
impl crate::ports::audit_feed::AuditLogQueries for MemoryDirectory {
    async fn audit_queries(
        &self,
    ) -> Result<Vec<crate::ports::audit_feed::AuditLogQuery>, ApiError> {
        Ok(lock(&self.queries)
            .iter()
            .map(|(q, _, _)| q.clone())
            .collect())
    }

    async fn create_audit_query(
        &self,
        query: &crate::ports::audit_feed::NewAuditLogQuery,
    ) -> Result<crate::ports::audit_feed::AuditLogQuery, ApiError> {
        let time = |t: &str| {
            DateTime::parse_from_rfc3339(t)
                .map(|t| t.to_utc())
                .map_err(|e| ApiError::Rejected {
                    service: Service::Graph,
                    status: 400,
                    code: "BadRequest".into(),
                    message: e.to_string(),
                    request_id: None,
                })
        };
        let (from, until) = (
            time(&query.filter_start_date_time)?,
            time(&query.filter_end_date_time)?,
        );
        let mut queries = lock(&self.queries);
        let q = crate::ports::audit_feed::AuditLogQuery {
            id: format!("query-{}", queries.len() + 1),
            display_name: Some(query.display_name.clone()),
            status: Some("succeeded".into()),
        };
        queries.push((q.clone(), from, until));
        Ok(q)
    }

    async fn audit_query(
        &self,
        id: &str,
    ) -> Result<crate::ports::audit_feed::AuditLogQuery, ApiError> {
        lock(&self.queries)
            .iter()
            .find(|(q, _, _)| q.id == id)
            .map(|(q, _, _)| q.clone())
            .ok_or_else(|| ApiError::NotFound {
                service: Service::Graph,
                code: "NotFound".into(),
                message: format!("no query {id}"),
                request_id: None,
            })
    }

    fn audit_query_records(&self, id: &str) -> BoxPages<'_, Value> {
        let window = lock(&self.queries)
            .iter()
            .find(|(q, _, _)| q.id == id)
            .map(|(_, from, until)| (*from, *until));
        let records = match window {
            Some((from, until)) => lock(&self.purview)
                .iter()
                .filter(|r| {
                    r["auditData"]["CreationTime"]
                        .as_str()
                        .and_then(|t| {
                            chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S").ok()
                        })
                        .is_some_and(|t| (from..until).contains(&t.and_utc()))
                })
                .cloned()
                .collect(),
            None => Vec::new(),
        };
        Box::new(ListPages::new(records, 150))
    }
}

/// The Management Activity API's feed in memory: blobs of records per content type.
#[derive(Debug)]
pub struct MemoryFeed {
    tenant_id: String,
    blobs: Mutex<Vec<(ContentBlob, Vec<u8>)>>,
    subscribed: Mutex<HashSet<String>>,
    fetches: Mutex<HashMap<String, usize>>,
    download: Option<Download>,
}

/// How long downloads take, and how long after it is sent one times out (as an HTTP request's timeout runs from
/// when it is sent, whether or not its caller keeps reading the answer).
#[derive(Debug, Clone)]
struct Download {
    takes: Vec<std::time::Duration>,
    times_out_after: std::time::Duration,
}

impl MemoryFeed {
    /// An empty feed for `tenant_id`.
    pub fn new(tenant_id: &str) -> Self {
        Self {
            tenant_id: tenant_id.to_string(),
            blobs: Mutex::new(Vec::new()),
            subscribed: Mutex::new(HashSet::new()),
            fetches: Mutex::new(HashMap::new()),
            download: None,
        }
    }

    /// Downloads that take the times of `takes` in turn (by the blob's place in publication order), read a
    /// millisecond at a time, and fail with a timeout when not finished `times_out_after` they began.
    pub fn with_downloads(
        mut self,
        takes: &[std::time::Duration],
        times_out_after: std::time::Duration,
    ) -> Self {
        self.download = Some(Download {
            takes: takes.to_vec(),
            times_out_after,
        });
        self
    }

    /// Publishes a blob of `records` (Management API JSON) for `content_type`, available from `created`.
    pub fn publish(
        &self,
        content_type: &str,
        content_id: &str,
        created: DateTime<Utc>,
        records: &[Value],
    ) -> &Self {
        let blob = ContentBlob {
            content_type: content_type.to_string(),
            content_id: content_id.to_string(),
            content_uri: format!("memory://{content_id}"),
            content_created: created,
            content_expiration: None,
        };
        let bytes = serde_json::to_vec(records).unwrap_or_default();
        lock(&self.blobs).push((blob, bytes));
        self
    }

    /// How often each blob was downloaded.
    pub fn fetches(&self) -> HashMap<String, usize> {
        lock(&self.fetches).clone()
    }
}

#[async_trait]
impl AuditFeed for MemoryFeed {
    fn tenant_id(&self) -> &str {
        &self.tenant_id
    }

    async fn ensure_subscription(&self, content_type: &str) -> Result<bool, ApiError> {
        Ok(lock(&self.subscribed).insert(content_type.to_string()))
    }

    fn content(&self, content_type: &str, window: Window) -> BoxPages<'_, ContentBlob> {
        let blobs = lock(&self.blobs)
            .iter()
            .filter(|(b, _)| {
                b.content_type == content_type
                    && b.content_created >= window.start
                    && b.content_created < window.end
            })
            .map(|(b, _)| b.clone())
            .collect();
        Box::new(ListPages::new(blobs, 100))
    }

    async fn fetch_blob(&self, content_uri: &str) -> Result<Vec<u8>, ApiError> {
        if let Some(d) = &self.download {
            let place = lock(&self.blobs)
                .iter()
                .position(|(b, _)| b.content_uri == content_uri)
                .unwrap_or_default();
            let takes = d.takes.get(place % d.takes.len().max(1)).copied();
            let sent = std::time::Instant::now();
            // The answer arrives in pieces: each needs its reader to come back for it.
            while sent.elapsed() < takes.unwrap_or_default() {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            if sent.elapsed() > d.times_out_after {
                return Err(ApiError::Timeout {
                    service: Service::Management,
                    url: content_uri.to_string(),
                });
            }
        }
        let blobs = lock(&self.blobs);
        let (blob, bytes) = blobs
            .iter()
            .find(|(b, _)| b.content_uri == content_uri)
            .ok_or_else(|| ApiError::NotFound {
                service: Service::Management,
                code: "AF20051".into(),
                message: format!("no blob at {content_uri}"),
                request_id: None,
            })?;
        *lock(&self.fetches)
            .entry(blob.content_id.clone())
            .or_default() += 1;
        Ok(bytes.clone())
    }
}
