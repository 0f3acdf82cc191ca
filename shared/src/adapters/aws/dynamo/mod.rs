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

mod audit;
mod notices;
mod remediation;
mod state;

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
    RemediationStore, RunRecord, StoreError,
};
use crate::ports::store::{
    AlertStore, GraceStore, HistoryStore, LeaseStore, LicenseEventStore, NoticeLedger, RunStore,
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
