//! [`MemoryStore`]: every store port in memory, with the semantics of the SQLite and DynamoDB stores (the store
//! contract tests run against all three). One lock around all of it, so each call is one transaction.

mod audit;
mod notices;
mod remediation;
mod state;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};

use crate::domain::grace::GraceCase;
use crate::domain::kinds::RemediationStatus;
use crate::domain::license_event::{LicenseEvent, LicenseRecord};
use crate::domain::reclaim::ReclaimReport;
use crate::domain::snapshot::{PreviousRun, Snapshot};
use crate::error::StoreError;
use crate::ports::channel::Audience;
use crate::ports::store::{
    Admitted, Alert, AuditState, Claim, Gap, HistoryEntry, Lease, LedgerEntry, LedgerStatus,
    PendingParts, RemediationIntake, RemediationQueue, RemediationRecord, RemediationRequest,
    RemediationStore, RunRecord,
};
use crate::ports::store::{
    AlertStore, EncodedSnapshot, GraceStore, HistoryStore, LeaseStore, LicenseEventStore,
    NoticeLedger, RunStore,
};

#[derive(Default)]
struct Alerts {
    /// alert id → (tenant, open, alert), in id order as the stores list them.
    by_id: BTreeMap<String, (String, bool, Alert)>,
}

#[derive(Default)]
struct State {
    runs: BTreeMap<(String, DateTime<Utc>), RunRecord>,
    snapshots: BTreeMap<(String, DateTime<Utc>), PreviousRun>,
    full_snapshots: BTreeMap<(String, DateTime<Utc>), Snapshot>,
    reclaims: BTreeMap<(String, DateTime<Utc>), ReclaimReport>,
    subscriptions: HashMap<String, crate::ports::store::SubscriptionRecord>,
    job_statuses: BTreeMap<(String, String), crate::domain::tenant_status::JobStatus>,
    purposes: HashMap<(String, String), crate::ports::store::PurposeRecord>,
    history: Vec<(String, HistoryEntry)>,
    history_keys: HashSet<(String, String)>,
    cases: BTreeMap<String, GraceCase>,
    events: BTreeMap<(String, String), LicenseEvent>,
    parts: BTreeMap<(String, String, String), LicenseRecord>,
    pending_parts: BTreeMap<(String, String), String>,
    ledger: HashMap<String, LedgerEntry>,
    alerts: Alerts,
    leases: HashMap<String, (String, DateTime<Utc>)>,
    remediations: BTreeMap<String, RemediationRecord>,
    webhook_ids: HashMap<String, String>,
    action_log: Vec<(String, DateTime<Utc>)>,
    queue: Vec<(RemediationRequest, bool)>,
    cursors: HashMap<String, DateTime<Utc>>,
    seen: HashMap<String, DateTime<Utc>>,
    objects: BTreeMap<String, Vec<String>>,
    blobs: HashMap<String, DateTime<Utc>>,
    gaps: BTreeMap<(String, DateTime<Utc>), Gap>,
    marker: u64,
    /// The next admission is the last thing the process does (see [`MemoryStore::dies_after_next_admission`]).
    dies_after_admission: bool,
}

/// Every store port in memory.
#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MemoryStore")
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The next [`RemediationIntake::admit_and_queue`] stops where a killed process would: the admission is
    /// stored, the request is not queued, and nothing is undone.
    pub fn dies_after_next_admission(&self) {
        self.lock().dies_after_admission = true;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn same(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// The first remediation of `ticket_key` created within 24 h before `now`.
fn same_ticket(state: &State, ticket_key: &str, now: DateTime<Utc>) -> Option<RemediationRecord> {
    state
        .remediations
        .values()
        .filter(|r| {
            r.ticket_key.as_deref() == Some(ticket_key) && r.created_at > now - Duration::hours(24)
        })
        .min_by_key(|r| r.created_at)
        .cloned()
}
