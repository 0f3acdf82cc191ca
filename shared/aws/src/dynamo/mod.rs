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
mod items;
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
use crate::domain::reclaim::ReclaimReport;
use crate::domain::snapshot::{PreviousRun, Snapshot};
use crate::ports::channel::Audience;
use crate::ports::store::{
    Admitted, Alert, AuditState, Claim, Gap, GraceCase, HistoryEntry, Lease, LedgerEntry,
    LedgerStatus, PendingParts, RemediationIntake, RemediationQueue, RemediationRecord,
    RemediationRequest, RemediationStore, RunRecord, StoreError,
};
use crate::ports::store::{
    AlertStore, EncodedSnapshot, GraceStore, HistoryStore, LeaseStore, LicenseEventStore,
    NoticeLedger, RunStore,
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
