//! State that outlives a run: snapshots, first-seen licence history, grace cases, licence events and the local
//! remediation queue, behind the [`StateStore`] and [`RemediationQueue`] traits (SQLite locally; DynamoDB/S3 on AWS).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use crate::domain::change_notifications::SubscriptionRecord;
use crate::domain::kinds::{AlertKind, NoticeKind, RemediationAction, RemediationStatus};
use crate::domain::license_event::{LicenseEvent, LicenseRecord};
use crate::domain::reclaim::ReclaimReport;
use crate::domain::snapshot::{PreviousRun, Snapshot, SnapshotMark};
use crate::ports::channel::Audience;

pub use crate::error::StoreError;

/// Grace cases are domain records; the store keeps them.
pub use crate::domain::grace::GraceCase;

/// One change in a user's licence history, written only when something changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// User id.
    pub user_id: String,
    /// UPN at the time.
    pub user_principal_name: String,
    /// SKU.
    pub sku_id: String,
    /// `added` or `removed`.
    pub change: String,
    /// When licensewatch first saw it.
    pub at: DateTime<Utc>,
    /// True for the first run's baseline: the licence existed before licensewatch watched.
    pub baseline: bool,
    /// The previous snapshot the change was seen against (none for the baseline). With the user, the SKU and the
    /// change it is the entry's identity: a run that died before saving its snapshot and is run again sees the same
    /// changes against the same snapshot, and they are stored once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
}

impl HistoryEntry {
    /// The entry's identity (see `since`).
    pub fn identity(&self) -> String {
        format!(
            "{}#{}#{}#{}",
            self.user_id.to_ascii_lowercase(),
            self.sku_id.to_ascii_lowercase(),
            self.change,
            self.since
                .map_or_else(|| "baseline".to_string(), |t| t.to_rfc3339())
        )
    }
}

/// A remediation request put on the queue (by license-check or the webhook).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemediationRequest {
    /// Unique id.
    pub remediation_id: String,
    /// Tenant.
    pub tenant_id: String,
    /// User id or UPN.
    pub user: String,
    /// reprocess | assign | remove | copy_from
    pub action: RemediationAction,
    /// SKUs for assign/remove.
    pub sku_ids: Vec<String>,
    /// Why it was requested.
    pub reason: String,
    /// When.
    pub requested_at: DateTime<Utc>,
    /// Disabled plans per SKU, for `assign`.
    #[serde(default)]
    pub disabled_plans: std::collections::BTreeMap<String, Vec<String>>,
    /// The user whose licences `copy_from` copies.
    #[serde(default)]
    pub template_user: Option<String>,
    /// The ticket that asked for it, if any.
    #[serde(default)]
    pub ticket: Option<Ticket>,
}

/// The ticketing-system reference of a remediation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    /// e.g. servicenow, jira.
    #[serde(default)]
    pub system: String,
    /// The ticket id.
    pub id: String,
    /// Where to post the outcome (signed).
    #[serde(default)]
    pub callback_url: Option<String>,
}

/// A remediation and where it stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemediationRecord {
    /// The request.
    pub request: RemediationRequest,
    /// `system|ticket|action`, when a ticket asked for it (idempotency key).
    pub ticket_key: Option<String>,
    /// SHA-256 of the request body, to tell a retry from a conflicting request.
    pub body_hash: String,
    /// queued | dry_run | succeeded | failed | rejected
    pub status: RemediationStatus,
    /// Outcome details.
    pub detail: serde_json::Value,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl RemediationRecord {
    /// A request admitted without a ticket or signed body (the CLI, auto-reprocess), waiting for the worker.
    pub fn queued(request: RemediationRequest, now: DateTime<Utc>) -> Self {
        Self {
            request,
            ticket_key: None,
            body_hash: String::new(),
            status: RemediationStatus::Queued,
            detail: serde_json::Value::Null,
            created_at: now,
            updated_at: now,
        }
    }
}

/// The result of registering a remediation.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// Stored as new.
    New,
    /// The same ticket and action arrived within 24 h: this is the first one.
    Existing(Box<RemediationRecord>),
}

/// The outcome of [`RemediationStore::admit`].
#[derive(Debug, Clone, PartialEq)]
pub enum Admitted {
    /// Stored.
    New,
    /// This webhook id was seen before, with this remediation.
    ReplayedWebhook(String),
    /// The same ticket and action arrived within 24 h: the first remediation.
    SameTicket(Box<RemediationRecord>),
    /// The tenant's hourly budget is spent.
    OverBudget,
}

/// Remediation records, ticket idempotency and seen webhook ids.
#[async_trait]
pub trait RemediationStore: Send + Sync {
    /// Stores the record unless the same ticket key was stored within 24 h (then returns that one).
    async fn claim(&self, record: &RemediationRecord) -> Result<Claim, StoreError>;
    /// Remembers a webhook id that carried no admission (a dry run): `None` the first time, else the remediation id
    /// it was first seen with.
    async fn remember_webhook(
        &self,
        webhook_key: &str,
        remediation_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError>;
    /// A remediation by id.
    async fn remediation(
        &self,
        remediation_id: &str,
    ) -> Result<Option<RemediationRecord>, StoreError>;
    /// Sets status and detail.
    async fn set_status(
        &self,
        remediation_id: &str,
        status: RemediationStatus,
        detail: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Deletes a record whose request never became durable (so a retry is not taken for a duplicate).
    async fn forget(&self, remediation_id: &str) -> Result<(), StoreError>;
    /// The tenant's remediations Microsoft accepted and is still processing (`pending`), oldest first.
    async fn pending_verification(
        &self,
        tenant_id: &str,
    ) -> Result<Vec<RemediationRecord>, StoreError>;
    /// Admits a webhook remediation in one transaction: refuses a replayed webhook id, returns the first
    /// remediation of the same ticket and action within 24 h, spends one action of the tenant's hourly budget, and
    /// stores the record. Nothing is written unless the result is `Admitted::New`.
    async fn admit(
        &self,
        webhook_key: Option<&str>,
        record: &RemediationRecord,
        max_per_hour: u32,
    ) -> Result<Admitted, StoreError>;
}

/// Where a notice stands in the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LedgerStatus {
    /// Recorded before sending by older versions: treated like a stale claim.
    Intended,
    /// Claimed by one run (`claimed_by`) for sending: no other run sends it unless the claim is stale (the run died
    /// before it could record the outcome), so two overlapping runs never send one notice twice and a crash never
    /// skips one.
    Sending,
    /// Recorded after the channel accepted it.
    Sent,
}

/// One notice for one (case, deadline, threshold, audience, channel, recipient).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// The stable notice key (also the generic webhook's `webhook-id` ingredient).
    pub key: String,
    /// Tenant.
    pub tenant_id: String,
    /// Case (or alert) id.
    pub case_id: String,
    /// User concerned.
    pub user_principal_name: String,
    /// `admin` or `user`.
    pub audience: Audience,
    /// `threshold`, `access_gone`, `resolved` or `alert`.
    pub kind: NoticeKind,
    /// Days-left threshold, for `threshold` notices.
    pub threshold_days: Option<i64>,
    /// The deadline the notice is about.
    pub deadline: Option<DateTime<Utc>>,
    /// Channel name.
    pub channel: String,
    /// Recipient (address, webhook host, console).
    pub recipient: String,
    /// Status.
    pub status: LedgerStatus,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// The run that claimed it (`Sending`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed_by: Option<String>,
    /// What the channel gave back, when it matters later: the ticket a case's notices go to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

/// The outcome of asking for a lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lease {
    /// This owner holds it (newly, or renewed).
    Acquired,
    /// Another run holds it until `until`.
    Held {
        /// The holder.
        owner: String,
        /// When it expires unless renewed.
        until: DateTime<Utc>,
    },
}

/// A critical condition raised by license-check, alerted once per occurrence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// Occurrence id: the condition plus when it was first seen.
    pub alert_id: String,
    /// The condition (e.g. `sku_exhausted:<sku>`): while it holds, it is the same occurrence.
    pub condition: String,
    /// What it is about.
    pub kind: AlertKind,
    /// One line for people.
    pub summary: String,
    /// First seen.
    pub raised_at: DateTime<Utc>,
}

/// One SKU's seat counts at one run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeatSample {
    /// SKU GUID (lower case).
    pub sku_id: String,
    /// The licensing group whose seats these are (`consumed`: the members holding the SKU through it); `None`: the
    /// whole SKU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    /// The counts and when.
    #[serde(flatten)]
    pub point: crate::domain::forecast::SeatPoint,
}

impl SeatSample {
    /// The samples of a run.
    pub fn of_run(run: &RunRecord) -> Vec<SeatSample> {
        let skus = run.skus.iter().map(|s| SeatSample {
            sku_id: s.sku_id.clone(),
            group_id: None,
            point: crate::domain::forecast::SeatPoint {
                at: run.run_at,
                enabled: s.enabled,
                consumed: s.consumed,
            },
        });
        let groups = run.group_seats.iter().map(|g| SeatSample {
            sku_id: g.sku_id.clone(),
            group_id: Some(g.group_id.clone()),
            point: crate::domain::forecast::SeatPoint {
                at: run.run_at,
                enabled: 0,
                consumed: g.assigned,
            },
        });
        skus.chain(groups).collect()
    }
}

/// What one license-check run saw, kept for the report (capacity, errors and changes over time).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Tenant.
    pub tenant_id: String,
    /// Run time.
    pub run_at: DateTime<Utc>,
    /// Users read.
    pub users_scanned: usize,
    /// Users holding at least one licence.
    pub licensed_users: usize,
    /// SKU capacity at run time.
    pub skus: Vec<crate::domain::snapshot::SkuSnap>,
    /// The run's findings.
    pub findings: Vec<crate::domain::findings::Finding>,
    /// Seats each licensing group assigns, per SKU (for the per-group forecast).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub group_seats: Vec<crate::domain::forecast::GroupSeats>,
}

/// Everything a deployment stores, behind one object: the SQLite file locally, DynamoDB + S3 + SQS on AWS.
pub trait Backend: StateStore + RemediationIntake + AuditState {}

impl<T: StateStore + RemediationIntake + AuditState> Backend for T {}

pub use crate::ports::codec::{decode_off_thread, gunzip_json, gzip_json};

/// A snapshot encoded as it is stored ([`crate::ports::snapshot_format`]). license-check encodes it on a worker
/// thread while it writes alerts, cases and history, and stores it at its own boundary.
pub struct EncodedSnapshot {
    /// Tenant.
    pub tenant_id: String,
    /// When the snapshot was taken.
    pub taken_at: DateTime<Utc>,
    /// The stored document.
    pub bytes: Vec<u8>,
}

impl EncodedSnapshot {
    /// Encodes a snapshot.
    pub fn encode(snapshot: &Snapshot) -> Result<Self, StoreError> {
        Ok(Self {
            tenant_id: snapshot.tenant_id.clone(),
            taken_at: snapshot.taken_at,
            bytes: crate::ports::snapshot_format::encode(snapshot)?,
        })
    }

    /// The snapshot again.
    pub fn decode(&self) -> Result<Snapshot, StoreError> {
        crate::ports::snapshot_format::decode(&self.bytes)
    }
}

impl std::fmt::Debug for EncodedSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncodedSnapshot")
            .field("tenant_id", &self.tenant_id)
            .field("taken_at", &self.taken_at)
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

/// Run records and snapshots: what each license-check run saw.
#[async_trait]
pub trait RunStore: Send + Sync {
    /// Saves what a license-check run saw (for the report).
    async fn save_run(&self, run: &RunRecord) -> Result<(), StoreError>;
    /// Run records, oldest first; `limit` keeps the newest ones.
    async fn runs(&self, tenant_id: &str, limit: usize) -> Result<Vec<RunRecord>, StoreError>;
    /// Each SKU's seat counts as every run since `since` saw them, oldest first (kept beside the runs, small, so a
    /// forecast does not read whole runs back).
    async fn seat_history(
        &self,
        tenant_id: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<SeatSample>, StoreError>;
    /// Whether the tenant has a run record (each run asks; a store can answer without reading one).
    async fn has_runs(&self, tenant_id: &str) -> Result<bool, StoreError> {
        Ok(!self.runs(tenant_id, 1).await?.is_empty())
    }
    /// What a run needs of the tenant's newest snapshot.
    async fn previous_run(&self, tenant_id: &str) -> Result<Option<PreviousRun>, StoreError>;
    /// The tenant's newest snapshot in full (a delta round applies its changes to it).
    async fn latest_snapshot(&self, tenant_id: &str) -> Result<Option<Snapshot>, StoreError>;
    /// Where the tenant's newest snapshot's change tracking stands, without its users.
    async fn latest_snapshot_mark(
        &self,
        tenant_id: &str,
    ) -> Result<Option<SnapshotMark>, StoreError> {
        Ok(self
            .latest_snapshot(tenant_id)
            .await?
            .as_ref()
            .map(SnapshotMark::from))
    }
    /// Saves a reclamation report (the report page shows the newest).
    async fn save_reclaim(&self, report: &ReclaimReport) -> Result<(), StoreError>;
    /// The tenant's newest reclamation report.
    async fn latest_reclaim(&self, tenant_id: &str) -> Result<Option<ReclaimReport>, StoreError>;
    /// Saves a run's snapshot, encoded.
    async fn save_encoded_snapshot(&self, snapshot: &EncodedSnapshot) -> Result<(), StoreError>;
    /// Saves a run's snapshot.
    async fn save_snapshot(&self, snapshot: &Snapshot) -> Result<(), StoreError> {
        self.save_encoded_snapshot(&EncodedSnapshot::encode(snapshot)?)
            .await
    }
}

/// First-seen licence history.
#[async_trait]
pub trait HistoryStore: Send + Sync {
    /// Appends history entries.
    async fn append_history(
        &self,
        tenant_id: &str,
        entries: &[HistoryEntry],
    ) -> Result<(), StoreError>;
    /// A user's history (by id or UPN), oldest first.
    async fn history(&self, tenant_id: &str, user: &str) -> Result<Vec<HistoryEntry>, StoreError>;
    /// The histories of many users, by object id as Graph gives it (a store with an index on ids answers in a few
    /// queries instead of one a user); a user without history is absent.
    async fn histories(
        &self,
        tenant_id: &str,
        user_ids: &[String],
    ) -> Result<std::collections::HashMap<String, Vec<HistoryEntry>>, StoreError> {
        let mut out = std::collections::HashMap::new();
        for id in user_ids {
            let entries = self.history(tenant_id, id).await?;
            if !entries.is_empty() {
                out.insert(id.clone(), entries);
            }
        }
        Ok(out)
    }
}

/// Grace cases.
#[async_trait]
pub trait GraceStore: Send + Sync {
    /// Grace cases; `open_only` skips closed ones.
    async fn grace_cases(
        &self,
        tenant_id: &str,
        open_only: bool,
    ) -> Result<Vec<GraceCase>, StoreError>;
    /// Inserts or replaces cases, all or none.
    async fn put_grace_cases(&self, cases: &[GraceCase]) -> Result<(), StoreError>;
}

/// Licence events and the licence records still waiting for the rest of their change.
#[async_trait]
pub trait LicenseEventStore: Send + Sync {
    /// Licence events, optionally for one user (id or UPN), oldest first.
    async fn license_events(
        &self,
        tenant_id: &str,
        user: Option<&str>,
    ) -> Result<Vec<LicenseEvent>, StoreError>;
    /// Stores licence events under [`LicenseEvent::key`]: an event stored before under the same key is replaced (a
    /// later run may have completed it). Returns how many keys were new.
    async fn put_license_events(
        &self,
        tenant_id: &str,
        events: &[LicenseEvent],
    ) -> Result<usize, StoreError>;
    /// Keeps licence records until their change is merged, and marks their changes pending. Storing a record again
    /// is harmless (it only makes its change pending again).
    async fn put_license_parts(
        &self,
        tenant_id: &str,
        parts: &[LicenseRecord],
    ) -> Result<(), StoreError>;
    /// The pending changes (each with the marker to settle it by) and every stored record of them.
    async fn pending_license_parts(&self, tenant_id: &str) -> Result<PendingParts, StoreError>;
    /// Settles pending changes; a change that a concurrent run made pending again (another marker) stays pending.
    async fn settle_license_parts(
        &self,
        tenant_id: &str,
        changes: &[(String, String)],
    ) -> Result<(), StoreError>;
}

/// The notice ledger: one entry per notice, claimed before sending and marked sent after.
#[async_trait]
pub trait NoticeLedger: Send + Sync {
    /// Ledger statuses of these keys (absent keys were never recorded).
    async fn ledger_status(
        &self,
        keys: &[String],
    ) -> Result<std::collections::HashMap<String, LedgerStatus>, StoreError>;
    /// One entry as recorded, if it was.
    async fn ledger_entry(&self, key: &str) -> Result<Option<LedgerEntry>, StoreError>;
    /// Records entries (insert or update), all or none.
    async fn ledger_put(&self, entries: &[LedgerEntry]) -> Result<(), StoreError>;
    /// Of these case ids, the ones that had an admin notice sent.
    async fn notified_cases(
        &self,
        tenant_id: &str,
    ) -> Result<std::collections::HashSet<String>, StoreError>;
    /// Claims notices for sending (entries with status `Sending` and `claimed_by` set). A notice is claimed unless
    /// it is sent, or another run claimed it after `abandoned_up_to` (a claim made up to then belongs to a run that
    /// has since lost the job's lease: it died). Returns the keys claimed.
    async fn ledger_claim(
        &self,
        entries: &[LedgerEntry],
        abandoned_up_to: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError>;
}

/// Alert occurrences.
#[async_trait]
pub trait AlertStore: Send + Sync {
    /// Makes the open alerts match the conditions that hold now: a new condition opens an occurrence, a condition
    /// that no longer holds closes its occurrence. Returns the open occurrences.
    async fn sync_alerts(
        &self,
        tenant_id: &str,
        current: &[Alert],
    ) -> Result<Vec<Alert>, StoreError>;
    /// Open alert occurrences.
    async fn open_alerts(&self, tenant_id: &str) -> Result<Vec<Alert>, StoreError>;
    /// Records a one-off alert occurrence (e.g. an audit gap); the same `alert_id` is stored once.
    async fn raise_alert(&self, tenant_id: &str, alert: &Alert) -> Result<(), StoreError>;
    /// Occurrences raised since `since`, open or closed (a short one must still be alerted once).
    async fn recent_alerts(
        &self,
        tenant_id: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<Alert>, StoreError>;
}

/// Graph change-notification subscriptions, one per tenant.
#[async_trait]
pub trait SubscriptionStore: Send + Sync {
    /// The tenant's subscription, if one was created.
    async fn subscription(&self, tenant_id: &str)
    -> Result<Option<SubscriptionRecord>, StoreError>;
    /// Stores (replaces) the tenant's subscription.
    async fn save_subscription(&self, record: &SubscriptionRecord) -> Result<(), StoreError>;
}

/// A mailbox purpose as stored: what was read and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurposeRecord {
    /// The purpose (`None`: no mailbox, or a purpose this version does not know).
    pub purpose: Option<crate::domain::kinds::MailboxPurpose>,
    /// When it was read.
    pub read_at: DateTime<Utc>,
}

/// What each mailbox is for, as last read (`mailboxSettings/userPurpose`): read for the few users that would become
/// grace cases, kept so each is read about once a day.
#[async_trait]
pub trait MailboxPurposeStore: Send + Sync {
    /// The purposes recorded for these users (absent: never read), with when each was read; `None`: no mailbox or
    /// a purpose this version does not know.
    async fn mailbox_purposes(
        &self,
        tenant_id: &str,
        user_ids: &[String],
    ) -> Result<
        std::collections::HashMap<
            String,
            (Option<crate::domain::kinds::MailboxPurpose>, DateTime<Utc>),
        >,
        StoreError,
    >;
    /// Records purposes read at `at`.
    async fn put_mailbox_purposes(
        &self,
        tenant_id: &str,
        read: &[(String, Option<crate::domain::kinds::MailboxPurpose>)],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
}

/// Leases: one run of a job per tenant at a time.
#[async_trait]
pub trait LeaseStore: Send + Sync {
    /// Takes (or renews) the lease `name` for `owner` until `now + ttl`, unless another owner holds an unexpired one.
    /// One run of a job per tenant works at a time; a crashed holder blocks no longer than `ttl`.
    async fn acquire_lease(
        &self,
        name: &str,
        owner: &str,
        now: DateTime<Utc>,
        ttl: chrono::Duration,
    ) -> Result<Lease, StoreError>;
    /// Gives the lease up (only its owner can).
    async fn release_lease(&self, name: &str, owner: &str) -> Result<(), StoreError>;
}

/// Every store trait, for callers that hold a concrete store rather than a `dyn StateStore`:
/// `use licensewatch_core::ports::store::traits::*;`.
pub mod traits {
    pub use super::{
        AlertStore, AuditState, GraceStore, HistoryStore, JobStatusStore, LeaseStore,
        LicenseEventStore, MailboxPurposeStore, NoticeLedger, RemediationIntake, RemediationQueue,
        RemediationStore, RunStore, StateStore, SubscriptionStore,
    };
}

/// How each job last went per tenant (the fleet report's "last run" and consent columns).
#[async_trait]
pub trait JobStatusStore: Send + Sync {
    /// The tenant's job statuses, one per job that ever ran.
    async fn job_statuses(
        &self,
        tenant_id: &str,
    ) -> Result<Vec<crate::domain::tenant_status::JobStatus>, StoreError>;
    /// Stores (replaces) one job's status for the tenant.
    async fn put_job_status(
        &self,
        tenant_id: &str,
        status: &crate::domain::tenant_status::JobStatus,
    ) -> Result<(), StoreError>;
}

/// Durable state, as one object: every role above (SQLite locally; DynamoDB and S3 on AWS; memory in tests). Use
/// cases that need one role can take just that trait.
pub trait StateStore:
    RunStore
    + HistoryStore
    + GraceStore
    + LicenseEventStore
    + NoticeLedger
    + AlertStore
    + LeaseStore
    + SubscriptionStore
    + JobStatusStore
    + MailboxPurposeStore
{
}

impl<T> StateStore for T where
    T: RunStore
        + HistoryStore
        + GraceStore
        + LicenseEventStore
        + NoticeLedger
        + AlertStore
        + LeaseStore
        + SubscriptionStore
        + JobStatusStore
        + MailboxPurposeStore
{
}

/// Licence records of the changes that are not merged into events yet.
#[derive(Debug, Default, Clone)]
pub struct PendingParts {
    /// `(group key, marker)` of each pending change.
    pub changes: Vec<(String, String)>,
    /// Every stored record of those changes.
    pub records: Vec<LicenseRecord>,
}

/// Job names for [`StateStore::acquire_lease`]: one run of each per tenant at a time.
pub fn lease_name(job: &str, tenant_id: &str) -> String {
    format!("{job}:{}", tenant_id.to_ascii_lowercase())
}

/// Where remediation requests go (in-process/SQLite locally, SQS on AWS).
#[async_trait]
pub trait RemediationQueue: Send + Sync {
    /// Queues one request durably.
    async fn enqueue(&self, request: &RemediationRequest) -> Result<(), StoreError>;
    /// Requests still waiting (local queue only; SQS delivers them to the worker instead).
    async fn pending(&self, tenant_id: &str) -> Result<Vec<RemediationRequest>, StoreError>;
    /// Marks a request done (local queue only).
    async fn ack(&self, remediation_id: &str) -> Result<(), StoreError>;
}

/// The webhook's intake: a remediation admitted and its request queued.
#[async_trait]
pub trait RemediationIntake: RemediationStore + RemediationQueue {
    /// Admits (as [`RemediationStore::admit`]) and, when the admission is new, queues the request. By default
    /// [`admit_then_queue`]. A store that is its own queue does both in one transaction instead (SQLite): nothing is
    /// admitted, spent or remembered unless the request is queued, and one commit is waited for, not two.
    async fn admit_and_queue(
        &self,
        webhook_key: Option<&str>,
        record: &RemediationRecord,
        max_per_hour: u32,
    ) -> Result<Admitted, StoreError> {
        admit_then_queue(self, webhook_key, record, max_per_hour).await
    }

    /// Records that an admitted remediation's request was queued, where the queue cannot be asked (SQS).
    async fn mark_queued(&self, remediation_id: &str) -> Result<(), StoreError>;

    /// False when an admitted remediation's request may never have been queued: a process that died between the
    /// admission and the queueing leaves it so, and the sender's retry of that delivery queues it then.
    async fn is_queued(&self, remediation_id: &str) -> Result<bool, StoreError>;
}

/// [`RemediationIntake::admit_and_queue`] in writes of their own: the admission, then [`queue_and_record`]. A
/// request that could not be queued is forgotten, so the sender's retry is not taken for a duplicate (the budget it
/// spent stays spent).
pub(crate) async fn admit_then_queue<S: RemediationIntake + ?Sized>(
    store: &S,
    webhook_key: Option<&str>,
    record: &RemediationRecord,
    max_per_hour: u32,
) -> Result<Admitted, StoreError> {
    let admitted = store.admit(webhook_key, record, max_per_hour).await?;
    if admitted == Admitted::New
        && let Err(e) = queue_and_record(store, &record.request).await
    {
        let _ = store.forget(&record.request.remediation_id).await;
        return Err(e);
    }
    Ok(admitted)
}

/// Queues an admitted remediation's request, then records that it was queued. A failure to record is logged, not
/// returned: the request is queued, and a later retry of its delivery would only queue it once more, which the
/// worker acts on once.
pub(crate) async fn queue_and_record<S: RemediationIntake + ?Sized>(
    store: &S,
    request: &RemediationRequest,
) -> Result<(), StoreError> {
    store.enqueue(request).await?;
    let id = &request.remediation_id;
    if let Err(e) = store.mark_queued(id).await {
        tracing::warn!(remediation = %id, error = %e, "queued, but the queueing could not be recorded");
    }
    Ok(())
}

/// A gap: part of a source that was no longer available when licensewatch asked for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gap {
    /// `directory_audit` or `management_api:<content type>`.
    pub source: String,
    /// Start of the missing range.
    pub from: DateTime<Utc>,
    /// End of the missing range.
    pub to: DateTime<Utc>,
}

/// audit-fetch's book-keeping: cursors, the record and blob dedupe index, and gaps.
#[async_trait]
pub trait AuditState: Send + Sync {
    /// A cursor's value.
    async fn cursor(&self, name: &str) -> Result<Option<DateTime<Utc>>, StoreError>;
    /// Moves a cursor (only after the data before it is archived).
    async fn set_cursor(&self, name: &str, value: DateTime<Utc>) -> Result<(), StoreError>;
    /// Which of these record ids were archived before.
    async fn seen_records(
        &self,
        ids: &[String],
    ) -> Result<std::collections::HashSet<String>, StoreError>;
    /// Claims record ids for the archive object `object_key`, recording the object's intent first: ids already
    /// archived or claimed for another object are not returned. Only the returned ids may be written to the object.
    async fn claim_records(
        &self,
        object_key: &str,
        ids: &[String],
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError>;
    /// The object is written: its claimed ids are archived.
    async fn confirm_object(&self, object_key: &str, now: DateTime<Utc>) -> Result<(), StoreError>;
    /// Objects claimed and never confirmed: a run died between its claim and its confirmation.
    async fn unconfirmed_objects(&self) -> Result<Vec<String>, StoreError>;
    /// The object was never written: its claims are dropped, so its records are archived again when read again.
    async fn release_object(&self, object_key: &str) -> Result<(), StoreError>;
    /// Marks record ids archived.
    async fn mark_records(&self, ids: &[String], now: DateTime<Utc>) -> Result<(), StoreError>;
    /// Whether a blob was fully archived before.
    async fn blob_done(&self, content_id: &str) -> Result<bool, StoreError>;
    /// Marks a blob fully archived.
    async fn mark_blob(&self, content_id: &str, now: DateTime<Utc>) -> Result<(), StoreError>;
    /// Drops index entries older than `before` (the sources no longer serve them).
    async fn expire_index(&self, before: DateTime<Utc>) -> Result<(), StoreError>;
    /// Records a gap.
    async fn record_gap(&self, gap: &Gap) -> Result<(), StoreError>;
    /// Every gap recorded.
    async fn gaps(&self) -> Result<Vec<Gap>, StoreError>;
}
