//! The DynamoDB state store (`LICENSEWATCH_STATE=dynamodb:TABLE`).
//!
//! One table, keys `pk` (string) and `sk` (string), TTL attribute `expires_at` (epoch seconds). Each item keeps its
//! record as JSON in `doc`, so the table needs no secondary index. Large documents (snapshots, run records) live
//! in S3 and the table keeps a pointer to them. Writes that must not race use condition expressions:
//! idempotency keys (webhook ids, tickets), the hourly action budget, notice-ledger entries that must not go back
//! from `sent` to `intended`, cursors that only move forward, and events stored once.
//!
//! | item | pk | sk |
//! |---|---|---|
//! | snapshot pointer | `{tenant}#snapshot` | run time |
//! | run record pointer | `{tenant}#run` | run time |
//! | licence history | `{tenant}#history#{user id}` | time#sku#change |
//! | UPN → user id | `{tenant}#upn` | lower-case UPN |
//! | grace case | `{tenant}#case` | case id |
//! | licence event | `{tenant}#event` | source\|record ids |
//! | notice ledger | `ledger#{key}` | `-` |
//! | case notified | `{tenant}#notified` | case id |
//! | alert | `{tenant}#alert` | alert id |
//! | remediation | `remediation#{id}` | `-` |
//! | ticket idempotency | `ticket#{ticket key}` | `-` |
//! | webhook id | `webhook#{id}` | `-` |
//! | action budget | `{tenant}#budget` | hour |
//! | local queue (no SQS) | `{tenant}#queue` | remediation id |
//! | cursor, seen record, seen blob, gap | `{scope}#cursor` / `#rec#{id}` / `#blob#{id}` / `#gap` | name / `-` / `-` / source#from |

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, Put, PutRequest, TransactWriteItem, WriteRequest,
};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::s3::S3Objects;
use super::{error_code, sdk_error};
use crate::domain::kinds::RemediationStatus;
use crate::domain::license_event::{LicenseEvent, LicenseRecord};
use crate::domain::snapshot::{PreviousRun, Snapshot};
use crate::ports::channel::Audience;
use crate::ports::store::{
    Admitted, Alert, AuditState, Claim, Gap, GraceCase, HistoryEntry, Lease, LedgerEntry,
    LedgerStatus, PendingParts, RemediationQueue, RemediationRecord, RemediationRequest,
    RemediationStore, RunRecord, StateStore, StoreError,
};

type Item = HashMap<String, AttributeValue>;

/// How long the audit dedupe index keeps an id: longer than the 7 days the sources serve, so a record seen again
/// at the edge of the window is still recognised.
const INDEX_DAYS: i64 = 10;
/// Webhook ids and ticket keys are remembered for a week (replays older than the signature tolerance are refused
/// anyway; tickets dedupe within 24 h).
const IDEMPOTENCY_DAYS: i64 = 7;

/// DynamoDB + S3 (+ SQS) state.
pub struct DynamoStore {
    db: aws_sdk_dynamodb::Client,
    table: String,
    /// Snapshots and run records.
    objects: S3Objects,
    /// Remediation requests go here when set; otherwise to a queue in the table.
    queue: Option<std::sync::Arc<dyn crate::ports::queue::MessageQueue>>,
    /// Audit book-keeping is per tenant: one deployment may serve many.
    scope: String,
}

impl std::fmt::Debug for DynamoStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoStore")
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn ts(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn key(pk: impl Into<String>, sk: impl Into<String>) -> Item {
    HashMap::from([("pk".to_string(), s(pk)), ("sk".to_string(), s(sk))])
}

fn with_doc<T: Serialize>(mut item: Item, value: &T) -> Result<Item, StoreError> {
    let doc = serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    item.insert("doc".into(), s(doc));
    Ok(item)
}

fn attr_s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

fn doc<T: DeserializeOwned>(item: &Item) -> Result<T, StoreError> {
    let text = attr_s(item, "doc")
        .ok_or_else(|| StoreError::Corrupt("item without a 'doc' attribute".into()))?;
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// A transaction's idempotency token (at most 36 characters): derived from the remediation id, so retries of
/// one call share it and different calls never do.
fn token(remediation_id: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(remediation_id.as_bytes());
    digest.iter().take(18).map(|b| format!("{b:02x}")).collect()
}

fn build<T, E: std::fmt::Display>(r: Result<T, E>) -> Result<T, StoreError> {
    r.map_err(|e| StoreError::Database(format!("dynamodb request: {e}")))
}

impl DynamoStore {
    /// The store in `table`, with snapshots in `objects`, remediation messages on `queue` (or in the table), and
    /// audit book-keeping scoped to `scope` (the tenant id).
    pub fn new(
        conf: &aws_config::SdkConfig,
        table: &str,
        objects: S3Objects,
        queue: Option<std::sync::Arc<dyn crate::ports::queue::MessageQueue>>,
        scope: &str,
    ) -> Self {
        Self {
            db: aws_sdk_dynamodb::Client::new(conf),
            table: table.to_string(),
            objects,
            queue,
            scope: scope.to_ascii_lowercase(),
        }
    }

    /// Puts an item; with a condition, returns false when the condition failed.
    async fn put(
        &self,
        item: Item,
        condition: Option<(&str, Vec<(&str, AttributeValue)>)>,
    ) -> Result<bool, StoreError> {
        let mut req = self
            .db
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item));
        if let Some((expr, values)) = condition {
            req = req.condition_expression(expr);
            for (k, v) in values {
                if k.starts_with('#') {
                    if let AttributeValue::S(name) = v {
                        req = req.expression_attribute_names(k, name);
                    }
                } else {
                    req = req.expression_attribute_values(k, v);
                }
            }
        }
        match req.send().await {
            Ok(_) => Ok(true),
            Err(e) if error_code(&e).as_deref() == Some("ConditionalCheckFailedException") => {
                Ok(false)
            }
            Err(e) => Err(sdk_error("dynamodb PutItem", e)),
        }
    }

    async fn get(&self, pk: &str, sk: &str) -> Result<Option<Item>, StoreError> {
        let out = self
            .db
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error("dynamodb GetItem", e))?;
        Ok(out.item)
    }

    async fn delete(&self, pk: &str, sk: &str) -> Result<(), StoreError> {
        self.db
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .send()
            .await
            .map_err(|e| sdk_error("dynamodb DeleteItem", e))?;
        Ok(())
    }

    /// Deletes an item only when `condition` holds (its `#name`s mapping to attribute names, its `:value`s to strings);
    /// a failed condition is no error: the item belongs to someone else now.
    async fn delete_if(
        &self,
        pk: &str,
        sk: &str,
        condition: &str,
        names: &[(&str, &str)],
        values: &[(&str, &str)],
    ) -> Result<(), StoreError> {
        let mut req = self
            .db
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .condition_expression(condition);
        for (k, v) in names {
            req = req.expression_attribute_names(*k, *v);
        }
        for (k, v) in values {
            req = req.expression_attribute_values(*k, s(*v));
        }
        match req.send().await {
            Ok(_) => Ok(()),
            Err(e) if error_code(&e).as_deref() == Some("ConditionalCheckFailedException") => {
                Ok(())
            }
            Err(e) => Err(sdk_error("dynamodb DeleteItem", e)),
        }
    }

    /// Every item of a partition, in sort-key order (newest first when `descending`), at most `limit`.
    async fn query(
        &self,
        pk: &str,
        descending: bool,
        limit: Option<usize>,
    ) -> Result<Vec<Item>, StoreError> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .db
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(pk))
                .scan_index_forward(!descending)
                .consistent_read(true)
                .set_limit(limit.map(|l| i32::try_from(l).unwrap_or(i32::MAX)))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| sdk_error("dynamodb Query", e))?;
            out.extend(page.items.unwrap_or_default());
            if limit.is_some_and(|l| out.len() >= l) {
                out.truncate(limit.unwrap_or(usize::MAX));
                break;
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        Ok(out)
    }

    /// Reads many keys, 100 per call, retrying the ones DynamoDB leaves unprocessed.
    async fn batch_get(&self, keys: Vec<Item>) -> Result<Vec<Item>, StoreError> {
        let mut found = Vec::new();
        for chunk in keys.chunks(100) {
            let mut pending = build(
                KeysAndAttributes::builder()
                    .set_keys(Some(chunk.to_vec()))
                    .consistent_read(true)
                    .build(),
            )?;
            for attempt in 0..8u32 {
                let out = self
                    .db
                    .batch_get_item()
                    .request_items(&self.table, pending.clone())
                    .send()
                    .await
                    .map_err(|e| sdk_error("dynamodb BatchGetItem", e))?;
                if let Some(mut r) = out.responses {
                    found.extend(r.remove(&self.table).unwrap_or_default());
                }
                match out.unprocessed_keys.and_then(|mut u| u.remove(&self.table)) {
                    Some(rest) if !rest.keys().is_empty() => {
                        pending = rest;
                        tokio::time::sleep(std::time::Duration::from_millis(50 << attempt)).await;
                    }
                    _ => break,
                }
                if attempt == 7 {
                    return Err(StoreError::Busy(
                        "dynamodb BatchGetItem: keys left unprocessed after 8 attempts".into(),
                    ));
                }
            }
        }
        Ok(found)
    }

    /// Writes many items, 25 per call, retrying the ones DynamoDB leaves unprocessed.
    async fn batch_put(&self, items: Vec<Item>) -> Result<(), StoreError> {
        for chunk in items.chunks(25) {
            let mut pending = chunk
                .iter()
                .map(|i| {
                    build(PutRequest::builder().set_item(Some(i.clone())).build())
                        .map(|p| WriteRequest::builder().put_request(p).build())
                })
                .collect::<Result<Vec<_>, _>>()?;
            for attempt in 0..8u32 {
                let out = self
                    .db
                    .batch_write_item()
                    .request_items(&self.table, pending.clone())
                    .send()
                    .await
                    .map_err(|e| sdk_error("dynamodb BatchWriteItem", e))?;
                match out
                    .unprocessed_items
                    .and_then(|mut u| u.remove(&self.table))
                {
                    Some(rest) if !rest.is_empty() => {
                        pending = rest;
                        tokio::time::sleep(std::time::Duration::from_millis(50 << attempt)).await;
                    }
                    _ => break,
                }
                if attempt == 7 {
                    return Err(StoreError::Busy(
                        "dynamodb BatchWriteItem: items left unprocessed after 8 attempts".into(),
                    ));
                }
            }
        }
        Ok(())
    }

    fn put_item(&self, item: Item) -> Result<TransactWriteItem, StoreError> {
        let put = build(
            Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .build(),
        )?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// Writes items in transactions of up to 100: each chunk all or none. Every item is a full replacement, so a
    /// retry after a failure between chunks converges.
    async fn transact_puts(&self, items: Vec<Item>) -> Result<(), StoreError> {
        for chunk in items.chunks(100) {
            let writes = chunk
                .iter()
                .map(|i| self.put_item(i.clone()))
                .collect::<Result<Vec<_>, _>>()?;
            self.db
                .transact_write_items()
                .set_transact_items(Some(writes))
                .send()
                .await
                .map_err(|e| sdk_error("dynamodb TransactWriteItems", e))?;
        }
        Ok(())
    }

    async fn put_gz_object<T: Serialize>(&self, key: &str, value: &T) -> Result<(), StoreError> {
        // Names carry the run time, so an existing object is this run's own earlier attempt.
        self.objects
            .put_if_absent(key, crate::ports::store::gzip_json(value)?)
            .await
            .map(|_| ())
    }

    async fn first_ticket(
        &self,
        ticket_key: &str,
        since: DateTime<Utc>,
    ) -> Result<Option<RemediationRecord>, StoreError> {
        let Some(item) = self.get(&format!("ticket#{ticket_key}"), "-").await? else {
            return Ok(None);
        };
        let created = attr_s(&item, "created_at").unwrap_or_default();
        if created <= ts(&since).as_str() {
            return Ok(None);
        }
        let Some(id) = attr_s(&item, "remediation_id") else {
            return Ok(None);
        };
        self.remediation(id).await
    }

    fn ticket_put(&self, record: &RemediationRecord, ticket: &str) -> Result<Put, StoreError> {
        let now = record.created_at;
        let mut item = key(format!("ticket#{ticket}"), "-");
        item.insert("remediation_id".into(), s(&record.request.remediation_id));
        item.insert("created_at".into(), s(ts(&now)));
        item.insert(
            "expires_at".into(),
            n((now + Duration::days(IDEMPOTENCY_DAYS)).timestamp()),
        );
        build(
            Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                // A ticket key older than 24 h may be claimed again.
                .condition_expression("attribute_not_exists(pk) OR created_at <= :since")
                .expression_attribute_values(":since", s(ts(&(now - Duration::hours(24)))))
                .build(),
        )
    }

    fn remediation_item(
        &self,
        record: &RemediationRecord,
        webhook_key: Option<&str>,
    ) -> Result<Item, StoreError> {
        let mut item = with_doc(
            key(
                format!("remediation#{}", record.request.remediation_id),
                "-",
            ),
            record,
        )?;
        item.insert("tenant_id".into(), s(&record.request.tenant_id));
        if let Some(k) = &record.ticket_key {
            item.insert("ticket_key".into(), s(k));
        }
        if let Some(w) = webhook_key {
            item.insert("webhook_key".into(), s(w));
        }
        Ok(item)
    }

    fn new_remediation_put(
        &self,
        record: &RemediationRecord,
        webhook_key: Option<&str>,
    ) -> Result<Put, StoreError> {
        build(
            Put::builder()
                .table_name(&self.table)
                .set_item(Some(self.remediation_item(record, webhook_key)?))
                .condition_expression("attribute_not_exists(pk)")
                .build(),
        )
    }

    /// Runs a transaction; false when a condition failed. `token` makes the SDK's own retries idempotent: a retry
    /// of a transaction that did commit is answered as a success instead of failing its conditions.
    async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
        token: &str,
    ) -> Result<bool, StoreError> {
        match self
            .db
            .transact_write_items()
            .set_transact_items(Some(items))
            .client_request_token(token)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if error_code(&e).as_deref() == Some("TransactionCanceledException") => {
                let conflict = match e.as_service_error() {
                    Some(
                        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(t),
                    ) => t
                        .cancellation_reasons()
                        .iter()
                        .any(|r| r.code() == Some("TransactionConflict")),
                    _ => false,
                };
                if conflict {
                    Err(StoreError::Busy(
                        "dynamodb: a concurrent transaction touched the same items".into(),
                    ))
                } else {
                    Ok(false)
                }
            }
            Err(e) => Err(sdk_error("dynamodb TransactWriteItems", e)),
        }
    }

    /// Every item of a tenant's partition `{tenant}#{what}`, in sort-key order.
    async fn partition(&self, tenant_id: &str, what: &str) -> Result<Vec<Item>, StoreError> {
        self.query(
            &format!("{}#{what}", tenant_id.to_ascii_lowercase()),
            false,
            None,
        )
        .await
    }

    /// The ids an unconfirmed archive object claimed (from its intent marker).
    async fn pending_ids(&self, object_key: &str) -> Result<Vec<String>, StoreError> {
        let Some(marker) = self.get(&self.scoped("objpending"), object_key).await? else {
            return Ok(Vec::new());
        };
        serde_json::from_str(attr_s(&marker, "ids").unwrap_or("[]"))
            .map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    fn scoped(&self, what: &str) -> String {
        format!("{}#{what}", self.scope)
    }
}

#[async_trait]
impl StateStore for DynamoStore {
    async fn save_run(&self, run: &RunRecord) -> Result<(), StoreError> {
        let at = ts(&run.run_at);
        let object = format!("runs/{}/{at}.json.gz", run.tenant_id.to_ascii_lowercase());
        self.put_gz_object(&object, run).await?;
        let mut item = key(format!("{}#run", run.tenant_id.to_ascii_lowercase()), at);
        item.insert("object".into(), s(object));
        self.put(item, None).await.map(|_| ())
    }

    async fn runs(&self, tenant_id: &str, limit: usize) -> Result<Vec<RunRecord>, StoreError> {
        let items = self
            .query(
                &format!("{}#run", tenant_id.to_ascii_lowercase()),
                true,
                Some(limit),
            )
            .await?;
        let mut out = Vec::new();
        for item in items.iter().rev() {
            let Some(object) = attr_s(item, "object") else {
                continue;
            };
            if let Some(bytes) = self.objects.get_opt(object).await? {
                out.push(crate::ports::store::gunzip_json(&bytes)?);
            }
        }
        Ok(out)
    }

    async fn previous_run(&self, tenant_id: &str) -> Result<Option<PreviousRun>, StoreError> {
        let items = self
            .query(
                &format!("{}#snapshot", tenant_id.to_ascii_lowercase()),
                true,
                Some(1),
            )
            .await?;
        let Some(object) = items.first().and_then(|i| attr_s(i, "object")) else {
            return Ok(None);
        };
        match self.objects.get_opt(object).await? {
            Some(bytes) => crate::ports::store::gunzip_json(&bytes).map(Some),
            None => Err(StoreError::Corrupt(format!(
                "snapshot object '{object}' named by the table is missing"
            ))),
        }
    }

    async fn save_snapshot(&self, snapshot: &Snapshot) -> Result<(), StoreError> {
        // The object first, then the pointer: a crash in between leaves an unreferenced object, never a pointer
        // to nothing.
        let tenant = snapshot.tenant_id.to_ascii_lowercase();
        let at = ts(&snapshot.taken_at);
        let object = format!("snapshots/{tenant}/{at}.json.gz");
        self.put_gz_object(&object, snapshot).await?;
        let mut item = key(format!("{tenant}#snapshot"), at);
        item.insert("object".into(), s(object));
        self.put(item, None).await.map(|_| ())
    }

    async fn append_history(
        &self,
        tenant_id: &str,
        entries: &[HistoryEntry],
    ) -> Result<(), StoreError> {
        let tenant = tenant_id.to_ascii_lowercase();
        // BatchWriteItem refuses two writes to one key in a call: key the items first.
        let mut items: HashMap<(String, String), Item> = HashMap::new();
        for e in entries {
            let pk = format!("{tenant}#history#{}", e.user_id.to_ascii_lowercase());
            // Keyed by identity, so a rerun of a run that died before its snapshot stores the same items again.
            let sk = e.identity();
            items.insert((pk.clone(), sk.clone()), with_doc(key(pk, sk), e)?);
            let upn = e.user_principal_name.to_ascii_lowercase();
            let mut map = key(format!("{tenant}#upn"), upn.clone());
            map.insert("user_id".into(), s(&e.user_id));
            items.insert((format!("{tenant}#upn"), upn), map);
        }
        self.batch_put(items.into_values().collect()).await
    }

    async fn history(&self, tenant_id: &str, user: &str) -> Result<Vec<HistoryEntry>, StoreError> {
        let tenant = tenant_id.to_ascii_lowercase();
        let user_id = if user.contains('@') {
            match self
                .get(&format!("{tenant}#upn"), &user.to_ascii_lowercase())
                .await?
            {
                Some(i) => attr_s(&i, "user_id").unwrap_or_default().to_string(),
                None => return Ok(Vec::new()),
            }
        } else {
            user.to_string()
        };
        let items = self
            .query(
                &format!("{tenant}#history#{}", user_id.to_ascii_lowercase()),
                false,
                None,
            )
            .await?;
        let mut out: Vec<HistoryEntry> = items.iter().map(doc).collect::<Result<_, _>>()?;
        out.sort_by_key(|e| e.at);
        Ok(out)
    }

    async fn grace_cases(
        &self,
        tenant_id: &str,
        open_only: bool,
    ) -> Result<Vec<GraceCase>, StoreError> {
        let items = self.partition(tenant_id, "case").await?;
        let mut out = Vec::new();
        for i in &items {
            let c: GraceCase = doc(i)?;
            if !open_only || c.closed_at.is_none() {
                out.push(c);
            }
        }
        Ok(out)
    }

    async fn put_grace_cases(&self, cases: &[GraceCase]) -> Result<(), StoreError> {
        let items = cases
            .iter()
            .map(|c| {
                with_doc(
                    key(
                        format!("{}#case", c.tenant_id.to_ascii_lowercase()),
                        &c.case_id,
                    ),
                    c,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.transact_puts(items).await
    }

    async fn license_events(
        &self,
        tenant_id: &str,
        user: Option<&str>,
    ) -> Result<Vec<LicenseEvent>, StoreError> {
        let items = self.partition(tenant_id, "event").await?;
        let mut out = Vec::new();
        for i in &items {
            let e: LicenseEvent = doc(i)?;
            let matches = user.is_none_or(|u| {
                e.user_id
                    .as_deref()
                    .is_some_and(|id| id.eq_ignore_ascii_case(u))
                    || e.user_principal_name
                        .as_deref()
                        .is_some_and(|p| p.eq_ignore_ascii_case(u))
            });
            if matches {
                let sk = attr_s(i, "sk").unwrap_or_default().to_string();
                out.push((e.at, sk, e));
            }
        }
        out.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        Ok(out.into_iter().map(|(_, _, e)| e).collect())
    }

    async fn ledger_status(
        &self,
        keys: &[String],
    ) -> Result<HashMap<String, LedgerStatus>, StoreError> {
        let wanted: HashSet<&String> = keys.iter().collect();
        let items = self
            .batch_get(
                wanted
                    .iter()
                    .map(|k| key(format!("ledger#{k}"), "-"))
                    .collect(),
            )
            .await?;
        let mut out = HashMap::new();
        for i in &items {
            let k = attr_s(i, "pk")
                .and_then(|p| p.strip_prefix("ledger#"))
                .unwrap_or_default()
                .to_string();
            let status = if attr_s(i, "status") == Some("sent") {
                LedgerStatus::Sent
            } else {
                LedgerStatus::Intended
            };
            out.insert(k, status);
        }
        Ok(out)
    }

    async fn ledger_put(&self, entries: &[LedgerEntry]) -> Result<(), StoreError> {
        for e in entries {
            let mut item = with_doc(key(format!("ledger#{}", e.key), "-"), e)?;
            let sent = e.status == LedgerStatus::Sent;
            item.insert(
                "status".into(),
                s(match e.status {
                    LedgerStatus::Sent => "sent",
                    LedgerStatus::Sending => "sending",
                    LedgerStatus::Intended => "intended",
                }),
            );
            if sent {
                self.put(item, None).await?;
                if e.audience == Audience::Admin {
                    let tenant = e.tenant_id.to_ascii_lowercase();
                    self.put(key(format!("{tenant}#notified"), &e.case_id), None)
                        .await?;
                }
            } else {
                // Never take a sent notice back to intended (a slow, older run must not cause a resend).
                self.put(
                    item,
                    Some((
                        "attribute_not_exists(pk) OR #st <> :sent",
                        vec![("#st", s("status")), (":sent", s("sent"))],
                    )),
                )
                .await?;
            }
        }
        Ok(())
    }

    async fn notified_cases(&self, tenant_id: &str) -> Result<HashSet<String>, StoreError> {
        let items = self.partition(tenant_id, "notified").await?;
        Ok(items
            .iter()
            .filter_map(|i| attr_s(i, "sk").map(str::to_string))
            .collect())
    }

    async fn sync_alerts(
        &self,
        tenant_id: &str,
        current: &[Alert],
    ) -> Result<Vec<Alert>, StoreError> {
        let pk = format!("{}#alert", tenant_id.to_ascii_lowercase());
        let open = self.open_alerts(tenant_id).await?;
        for a in &open {
            if !current.iter().any(|c| c.condition == a.condition) {
                let mut item = with_doc(key(&pk, &a.alert_id), a)?;
                item.insert("open".into(), AttributeValue::Bool(false));
                self.put(item, None).await?;
            }
        }
        for c in current {
            if !open.iter().any(|a| a.condition == c.condition) {
                let mut item = with_doc(key(&pk, &c.alert_id), c)?;
                item.insert("open".into(), AttributeValue::Bool(true));
                // Two runs racing open the occurrence once.
                self.put(item, Some(("attribute_not_exists(pk)", Vec::new())))
                    .await?;
            }
        }
        self.open_alerts(tenant_id).await
    }

    async fn open_alerts(&self, tenant_id: &str) -> Result<Vec<Alert>, StoreError> {
        let items = self.partition(tenant_id, "alert").await?;
        items
            .iter()
            .filter(|i| matches!(i.get("open"), Some(AttributeValue::Bool(true))))
            .map(doc)
            .collect()
    }

    async fn raise_alert(&self, tenant_id: &str, alert: &Alert) -> Result<(), StoreError> {
        let mut item = with_doc(
            key(
                format!("{}#alert", tenant_id.to_ascii_lowercase()),
                &alert.alert_id,
            ),
            alert,
        )?;
        item.insert("open".into(), AttributeValue::Bool(false));
        self.put(item, Some(("attribute_not_exists(pk)", Vec::new())))
            .await
            .map(|_| ())
    }

    async fn recent_alerts(
        &self,
        tenant_id: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<Alert>, StoreError> {
        let items = self.partition(tenant_id, "alert").await?;
        let mut out = Vec::new();
        for i in &items {
            let a: Alert = doc(i)?;
            if a.raised_at >= since {
                out.push(a);
            }
        }
        Ok(out)
    }

    async fn acquire_lease(
        &self,
        name: &str,
        owner: &str,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<Lease, StoreError> {
        let pk = format!("lease#{name}");
        let mut item = key(&pk, "-");
        item.insert("owner".into(), s(owner));
        item.insert("until".into(), s(ts(&(now + ttl))));
        // Expired leases are cleaned up by TTL too, a day after they end.
        item.insert(
            "expires_at".into(),
            n((now + ttl + Duration::days(1)).timestamp()),
        );
        let free = self
            .put(
                item,
                Some((
                    "attribute_not_exists(pk) OR #o = :me OR #u < :now",
                    vec![
                        ("#o", s("owner")),
                        ("#u", s("until")),
                        (":me", s(owner)),
                        (":now", s(ts(&now))),
                    ],
                )),
            )
            .await?;
        if free {
            return Ok(Lease::Acquired);
        }
        let held = self.get(&pk, "-").await?;
        let holder = held.as_ref().and_then(|i| attr_s(i, "owner")).unwrap_or("");
        let until = held
            .as_ref()
            .and_then(|i| attr_s(i, "until"))
            .and_then(|u| DateTime::parse_from_rfc3339(u).ok())
            .map_or(now + ttl, |u| u.to_utc());
        Ok(Lease::Held {
            owner: holder.to_string(),
            until,
        })
    }

    async fn release_lease(&self, name: &str, owner: &str) -> Result<(), StoreError> {
        // Only its owner releases it: a lease taken over after it expired is not ours.
        self.delete_if(
            &format!("lease#{name}"),
            "-",
            "#o = :me",
            &[("#o", "owner")],
            &[(":me", owner)],
        )
        .await
    }

    async fn ledger_claim(
        &self,
        entries: &[LedgerEntry],
        abandoned_up_to: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        let mut claimed = Vec::new();
        for e in entries {
            let owner = e.claimed_by.clone().unwrap_or_default();
            let mut item = with_doc(key(format!("ledger#{}", e.key), "-"), e)?;
            item.insert("status".into(), s("sending"));
            item.insert("claimed_by".into(), s(&owner));
            item.insert("claimed_at".into(), s(ts(&e.updated_at)));
            let won = self
                .put(
                    item,
                    Some((
                        "attribute_not_exists(pk) OR (#st <> :sent AND (#st = :intended OR #by = :me OR #at <= :stale))",
                        vec![
                            ("#st", s("status")),
                            ("#by", s("claimed_by")),
                            ("#at", s("claimed_at")),
                            (":sent", s("sent")),
                            (":intended", s("intended")),
                            (":me", s(&owner)),
                            (":stale", s(ts(&abandoned_up_to))),
                        ],
                    )),
                )
                .await?;
            if won {
                claimed.push(e.key.clone());
            }
        }
        Ok(claimed)
    }

    async fn put_license_events(
        &self,
        tenant_id: &str,
        events: &[LicenseEvent],
    ) -> Result<usize, StoreError> {
        let pk = format!("{}#event", tenant_id.to_ascii_lowercase());
        let mut new = 0;
        for e in events {
            let item = with_doc(key(&pk, e.key()), e)?;
            if self
                .put(item.clone(), Some(("attribute_not_exists(pk)", Vec::new())))
                .await?
            {
                new += 1;
            } else {
                // Stored before: a later run may have completed the change, so the newer merge replaces it.
                self.put(item, None).await?;
            }
        }
        Ok(new)
    }

    async fn put_license_parts(
        &self,
        tenant_id: &str,
        parts: &[LicenseRecord],
    ) -> Result<(), StoreError> {
        let tenant = tenant_id.to_ascii_lowercase();
        for r in parts {
            let change = r.group_key();
            // The marker goes first: a crash between the two writes leaves a pending change, never a stored record
            // that no run will merge.
            let mut marker = key(format!("{tenant}#lpending"), &change);
            marker.insert("marker".into(), s(uuid::Uuid::new_v4().to_string()));
            self.put(marker, None).await?;
            let item = with_doc(key(format!("{tenant}#lpart#{change}"), &r.id), r)?;
            self.put(item, None).await?;
        }
        Ok(())
    }

    async fn pending_license_parts(&self, tenant_id: &str) -> Result<PendingParts, StoreError> {
        let tenant = tenant_id.to_ascii_lowercase();
        let mut out = PendingParts::default();
        for m in self.partition(tenant_id, "lpending").await? {
            let (Some(change), Some(marker)) = (attr_s(&m, "sk"), attr_s(&m, "marker")) else {
                continue;
            };
            for item in self
                .query(&format!("{tenant}#lpart#{change}"), false, None)
                .await?
            {
                out.records.push(doc(&item)?);
            }
            out.changes.push((change.to_string(), marker.to_string()));
        }
        Ok(out)
    }

    async fn settle_license_parts(
        &self,
        tenant_id: &str,
        changes: &[(String, String)],
    ) -> Result<(), StoreError> {
        let pk = format!("{}#lpending", tenant_id.to_ascii_lowercase());
        for (change, marker) in changes {
            // Made pending again by a concurrent run (another marker): that run, or the next, merges it.
            self.delete_if(&pk, change, "marker = :m", &[], &[(":m", marker)])
                .await?;
        }
        Ok(())
    }
}

#[async_trait]
impl RemediationQueue for DynamoStore {
    async fn enqueue(&self, request: &RemediationRequest) -> Result<(), StoreError> {
        let body =
            serde_json::to_string(request).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        match &self.queue {
            Some(q) => q.send(&body).await,
            None => {
                let item = with_doc(
                    key(
                        format!("{}#queue", request.tenant_id.to_ascii_lowercase()),
                        &request.remediation_id,
                    ),
                    request,
                )?;
                self.put(item, Some(("attribute_not_exists(pk)", Vec::new())))
                    .await
                    .map(|_| ())
            }
        }
    }

    async fn pending(&self, tenant_id: &str) -> Result<Vec<RemediationRequest>, StoreError> {
        if self.queue.is_some() {
            // SQS delivers to the reprocess-user function; nothing waits here.
            return Ok(Vec::new());
        }
        let items = self.partition(tenant_id, "queue").await?;
        items.iter().map(doc).collect()
    }

    async fn ack(&self, remediation_id: &str) -> Result<(), StoreError> {
        if self.queue.is_some() {
            return Ok(());
        }
        // The queue item's partition needs the tenant: read it from the remediation record, else from the request.
        let tenant = match self.remediation(remediation_id).await? {
            Some(r) => r.request.tenant_id,
            None => self.scope.clone(),
        };
        self.delete(
            &format!("{}#queue", tenant.to_ascii_lowercase()),
            remediation_id,
        )
        .await
    }
}

#[async_trait]
impl RemediationStore for DynamoStore {
    async fn claim(&self, record: &RemediationRecord) -> Result<Claim, StoreError> {
        let Some(ticket) = &record.ticket_key else {
            let put = self.new_remediation_put(record, None)?;
            self.transact(
                vec![TransactWriteItem::builder().put(put).build()],
                &token(&record.request.remediation_id),
            )
            .await?;
            return Ok(Claim::New);
        };
        let writes = vec![
            TransactWriteItem::builder()
                .put(self.ticket_put(record, ticket)?)
                .build(),
            TransactWriteItem::builder()
                .put(self.new_remediation_put(record, None)?)
                .build(),
        ];
        if self
            .transact(writes, &token(&record.request.remediation_id))
            .await?
        {
            return Ok(Claim::New);
        }
        match self
            .first_ticket(ticket, record.created_at - Duration::hours(24))
            .await?
        {
            // Our own earlier attempt committed (its answer was lost): this is still the new record.
            Some(first) if first.request.remediation_id == record.request.remediation_id => {
                Ok(Claim::New)
            }
            Some(first) => Ok(Claim::Existing(Box::new(first))),
            None => Err(StoreError::Busy(
                "remediation claim lost a race; retry".into(),
            )),
        }
    }

    async fn remember_webhook(
        &self,
        webhook_key: &str,
        remediation_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError> {
        let pk = format!("webhook#{webhook_key}");
        let mut item = key(&pk, "-");
        item.insert("remediation_id".into(), s(remediation_id));
        item.insert(
            "expires_at".into(),
            n((now + Duration::days(IDEMPOTENCY_DAYS)).timestamp()),
        );
        if self
            .put(item, Some(("attribute_not_exists(pk)", Vec::new())))
            .await?
        {
            return Ok(None);
        }
        Ok(self
            .get(&pk, "-")
            .await?
            .and_then(|i| attr_s(&i, "remediation_id").map(str::to_string)))
    }

    async fn remediation(
        &self,
        remediation_id: &str,
    ) -> Result<Option<RemediationRecord>, StoreError> {
        match self
            .get(&format!("remediation#{remediation_id}"), "-")
            .await?
        {
            Some(i) => doc(&i).map(Some),
            None => Ok(None),
        }
    }

    async fn set_status(
        &self,
        remediation_id: &str,
        status: RemediationStatus,
        detail: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let Some(item) = self
            .get(&format!("remediation#{remediation_id}"), "-")
            .await?
        else {
            return Err(StoreError::Database(format!(
                "no remediation {remediation_id}"
            )));
        };
        let mut rec: RemediationRecord = doc(&item)?;
        rec.status = status;
        rec.detail = detail.clone();
        rec.updated_at = now;
        let mut updated = with_doc(item, &rec)?;
        updated.insert("status".into(), s(status.as_str()));
        self.put(updated, None).await.map(|_| ())
    }

    async fn forget(&self, remediation_id: &str) -> Result<(), StoreError> {
        let pk = format!("remediation#{remediation_id}");
        if let Some(item) = self.get(&pk, "-").await? {
            if let Some(w) = attr_s(&item, "webhook_key") {
                self.delete(&format!("webhook#{w}"), "-").await?;
            }
            if let Some(t) = attr_s(&item, "ticket_key") {
                let ticket = self.get(&format!("ticket#{t}"), "-").await?;
                if ticket.as_ref().and_then(|i| attr_s(i, "remediation_id")) == Some(remediation_id)
                {
                    self.delete(&format!("ticket#{t}"), "-").await?;
                }
            }
        }
        self.delete(&pk, "-").await
    }

    async fn admit(
        &self,
        webhook_key: Option<&str>,
        record: &RemediationRecord,
        max_per_hour: u32,
    ) -> Result<Admitted, StoreError> {
        // The budget item holds the admission times of the last 60 minutes and a version: each admission rewrites
        // it conditioned on the version it read, in the same transaction as the webhook id, ticket and record.
        // Losing that race only means reading the window again.
        for _ in 0..8 {
            match self.admit_once(webhook_key, record, max_per_hour).await? {
                Some(outcome) => return Ok(outcome),
                None => continue,
            }
        }
        Err(StoreError::Busy(
            "remediation admission lost too many races for the action budget; retry".into(),
        ))
    }
}

impl DynamoStore {
    /// One admission attempt; `None` when the budget window changed under it (try again).
    async fn admit_once(
        &self,
        webhook_key: Option<&str>,
        record: &RemediationRecord,
        max_per_hour: u32,
    ) -> Result<Option<Admitted>, StoreError> {
        let now = record.created_at;
        let tenant = record.request.tenant_id.to_ascii_lowercase();
        let budget_key = key(format!("{tenant}#budget"), "rolling");
        let current = self.get(&format!("{tenant}#budget"), "rolling").await?;
        let version = current
            .as_ref()
            .and_then(|i| i.get("version").and_then(|v| v.as_n().ok()).cloned())
            .and_then(|v| v.parse::<i64>().ok());
        let window_start = ts(&(now - Duration::minutes(60)));
        let mut stamps: Vec<String> = current
            .as_ref()
            .and_then(|i| attr_s(i, "stamps"))
            .and_then(|t| serde_json::from_str::<Vec<String>>(t).ok())
            .unwrap_or_default()
            .into_iter()
            .filter(|t| *t > window_start)
            .collect();
        let over = stamps.len() >= max_per_hour as usize;
        let mut writes = Vec::new();
        if let Some(w) = webhook_key {
            let mut item = key(format!("webhook#{w}"), "-");
            item.insert("remediation_id".into(), s(&record.request.remediation_id));
            item.insert(
                "expires_at".into(),
                n((now + Duration::days(IDEMPOTENCY_DAYS)).timestamp()),
            );
            let put = build(
                Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(item))
                    .condition_expression("attribute_not_exists(pk)")
                    .build(),
            )?;
            writes.push(TransactWriteItem::builder().put(put).build());
        }
        if let Some(t) = &record.ticket_key {
            writes.push(
                TransactWriteItem::builder()
                    .put(self.ticket_put(record, t)?)
                    .build(),
            );
        }
        stamps.push(ts(&now));
        let mut budget = budget_key.clone();
        budget.insert(
            "stamps".into(),
            s(serde_json::to_string(&stamps).map_err(|e| StoreError::Corrupt(e.to_string()))?),
        );
        budget.insert("version".into(), n(version.unwrap_or(0) + 1));
        budget.insert(
            "expires_at".into(),
            n((now + Duration::days(2)).timestamp()),
        );
        let mut put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(budget));
        put = match version {
            Some(v) => put
                .condition_expression("#v = :v")
                .expression_attribute_names("#v", "version")
                .expression_attribute_values(":v", n(v)),
            None => put.condition_expression("attribute_not_exists(pk)"),
        };
        writes.push(
            TransactWriteItem::builder()
                .put(build(put.build())?)
                .build(),
        );
        writes.push(
            TransactWriteItem::builder()
                .put(self.new_remediation_put(record, webhook_key)?)
                .build(),
        );
        let own = record.request.remediation_id.as_str();
        if !over {
            // One token per window version: a retry after a lost answer repeats the same items.
            let attempt = format!("{own}#{}", version.unwrap_or(0));
            match self.transact(writes, &token(&attempt)).await {
                Ok(true) => return Ok(Some(Admitted::New)),
                Ok(false) => {}
                // Another admission's transaction overlapped ours: read the window again.
                Err(StoreError::Busy(_)) => return Ok(None),
                Err(e) => return Err(e),
            }
        }
        // Held back (or over budget): a replayed webhook and a repeated ticket answer first, in the contract's order.
        // An item naming our own remediation means an earlier attempt of this very call committed.
        if let Some(w) = webhook_key
            && let Some(item) = self.get(&format!("webhook#{w}"), "-").await?
        {
            let id = attr_s(&item, "remediation_id").unwrap_or_default();
            if id == own {
                return Ok(Some(Admitted::New));
            }
            return Ok(Some(Admitted::ReplayedWebhook(id.to_string())));
        }
        if let Some(t) = &record.ticket_key
            && let Some(first) = self.first_ticket(t, now - Duration::hours(24)).await?
        {
            if first.request.remediation_id == own {
                return Ok(Some(Admitted::New));
            }
            return Ok(Some(Admitted::SameTicket(Box::new(first))));
        }
        if over {
            return Ok(Some(Admitted::OverBudget));
        }
        Ok(None)
    }
}

#[async_trait]
impl AuditState for DynamoStore {
    async fn cursor(&self, name: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        let Some(item) = self.get(&self.scoped("cursor"), name).await? else {
            return Ok(None);
        };
        let v = attr_s(&item, "value").unwrap_or_default();
        DateTime::parse_from_rfc3339(v)
            .map(|t| Some(t.to_utc()))
            .map_err(|e| StoreError::Corrupt(format!("cursor '{name}': {e}")))
    }

    async fn set_cursor(&self, name: &str, value: DateTime<Utc>) -> Result<(), StoreError> {
        let mut item = key(self.scoped("cursor"), name);
        item.insert("value".into(), s(ts(&value)));
        // Cursors only move forward: an overlapping older run cannot move one back. A failed condition means
        // another run already went further, which is fine.
        self.put(
            item,
            Some((
                "attribute_not_exists(pk) OR #v <= :v",
                vec![("#v", s("value")), (":v", s(ts(&value)))],
            )),
        )
        .await
        .map(|_| ())
    }

    async fn seen_records(&self, ids: &[String]) -> Result<HashSet<String>, StoreError> {
        let prefix = self.scoped("rec#");
        let unique: HashSet<&String> = ids.iter().collect();
        let items = self
            .batch_get(
                unique
                    .iter()
                    .map(|id| key(format!("{prefix}{id}"), "-"))
                    .collect(),
            )
            .await?;
        Ok(items
            .iter()
            .filter_map(|i| attr_s(i, "pk").and_then(|p| p.strip_prefix(&prefix)))
            .map(str::to_string)
            .collect())
    }

    async fn claim_records(
        &self,
        object_key: &str,
        ids: &[String],
        _now: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        use futures::StreamExt;
        // The object's intent first: a crash after some claims leaves it for `unconfirmed_objects`.
        let mut marker = key(self.scoped("objpending"), object_key);
        marker.insert(
            "ids".into(),
            s(serde_json::to_string(ids).map_err(|e| StoreError::Corrupt(e.to_string()))?),
        );
        self.put(marker, None).await?;
        let prefix = self.scoped("rec#");
        let unique: Vec<String> = ids
            .iter()
            .cloned()
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let attempts: Vec<_> = unique
            .into_iter()
            .map(|id| {
                let mut item = key(format!("{prefix}{id}"), "-");
                item.insert("object".into(), s(object_key));
                async move {
                    let won = self
                        .put(item, Some(("attribute_not_exists(pk)", Vec::new())))
                        .await?;
                    Ok::<_, StoreError>(won.then_some(id))
                }
            })
            .collect();
        let mut claims = futures::stream::iter(attempts).buffer_unordered(16);
        let mut claimed = Vec::new();
        while let Some(r) = claims.next().await {
            claimed.extend(r?);
        }
        Ok(claimed)
    }

    async fn confirm_object(&self, object_key: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        let expires = n((now + Duration::days(INDEX_DAYS)).timestamp());
        for id in self.pending_ids(object_key).await? {
            let mut item = key(format!("{}{id}", self.scoped("rec#")), "-");
            item.insert("object".into(), s(object_key));
            item.insert("expires_at".into(), expires.clone());
            // Only this object's own claims: an id claimed for another object stays as it is.
            self.put(
                item,
                Some((
                    "#obj = :k",
                    vec![("#obj", s("object")), (":k", s(object_key))],
                )),
            )
            .await?;
        }
        self.delete(&self.scoped("objpending"), object_key).await
    }

    async fn unconfirmed_objects(&self) -> Result<Vec<String>, StoreError> {
        let items = self.query(&self.scoped("objpending"), false, None).await?;
        Ok(items
            .iter()
            .filter_map(|i| attr_s(i, "sk").map(str::to_string))
            .collect())
    }

    async fn release_object(&self, object_key: &str) -> Result<(), StoreError> {
        for id in self.pending_ids(object_key).await? {
            // Only this object's unconfirmed claims.
            self.delete_if(
                &format!("{}{id}", self.scoped("rec#")),
                "-",
                "#obj = :k AND attribute_not_exists(expires_at)",
                &[("#obj", "object")],
                &[(":k", object_key)],
            )
            .await?;
        }
        self.delete(&self.scoped("objpending"), object_key).await
    }

    async fn mark_records(&self, ids: &[String], now: DateTime<Utc>) -> Result<(), StoreError> {
        let prefix = self.scoped("rec#");
        let expires = n((now + Duration::days(INDEX_DAYS)).timestamp());
        let unique: HashSet<&String> = ids.iter().collect();
        let items = unique
            .into_iter()
            .map(|id| {
                let mut i = key(format!("{prefix}{id}"), "-");
                i.insert("expires_at".into(), expires.clone());
                i
            })
            .collect();
        self.batch_put(items).await
    }

    async fn blob_done(&self, content_id: &str) -> Result<bool, StoreError> {
        Ok(self
            .get(&self.scoped(&format!("blob#{content_id}")), "-")
            .await?
            .is_some())
    }

    async fn mark_blob(&self, content_id: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        let mut i = key(self.scoped(&format!("blob#{content_id}")), "-");
        i.insert(
            "expires_at".into(),
            n((now + Duration::days(INDEX_DAYS)).timestamp()),
        );
        self.put(i, None).await.map(|_| ())
    }

    async fn expire_index(&self, _before: DateTime<Utc>) -> Result<(), StoreError> {
        // DynamoDB's TTL deletes index entries by their `expires_at`, set when they were written.
        Ok(())
    }

    async fn record_gap(&self, gap: &Gap) -> Result<(), StoreError> {
        let item = with_doc(
            key(
                self.scoped("gap"),
                format!("{}#{}", gap.source, ts(&gap.from)),
            ),
            gap,
        )?;
        self.put(item, None).await.map(|_| ())
    }

    async fn gaps(&self) -> Result<Vec<Gap>, StoreError> {
        let items = self.query(&self.scoped("gap"), false, None).await?;
        items.iter().map(doc).collect()
    }
}

/// Creates the table with the keys `infra/template.yaml` gives it (tests against the emulator).
pub async fn create_table(conf: &aws_config::SdkConfig, table: &str) -> Result<(), StoreError> {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    let client = aws_sdk_dynamodb::Client::new(conf);
    let attr = |name: &str| {
        build(
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build(),
        )
    };
    let schema = |name: &str, kind: KeyType| {
        build(
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build(),
        )
    };
    client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("pk")?)
        .attribute_definitions(attr("sk")?)
        .key_schema(schema("pk", KeyType::Hash)?)
        .key_schema(schema("sk", KeyType::Range)?)
        .send()
        .await
        .map_err(|e| sdk_error("dynamodb CreateTable", e))?;
    Ok(())
}
