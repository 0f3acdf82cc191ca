//! [`MemoryStore`]: every store port in memory, with the semantics of the SQLite and DynamoDB stores (the store
//! contract tests run against all three). One lock around all of it, so each call is one transaction.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};

use crate::domain::grace::GraceCase;
use crate::domain::kinds::RemediationStatus;
use crate::domain::license_event::{LicenseEvent, LicenseRecord};
use crate::domain::snapshot::{PreviousRun, Snapshot};
use crate::error::StoreError;
use crate::ports::channel::Audience;
use crate::ports::store::{
    Admitted, Alert, AuditState, Claim, Gap, HistoryEntry, Lease, LedgerEntry, LedgerStatus,
    PendingParts, RemediationQueue, RemediationRecord, RemediationRequest, RemediationStore,
    RunRecord, StateStore,
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

#[async_trait]
impl StateStore for MemoryStore {
    async fn save_run(&self, run: &RunRecord) -> Result<(), StoreError> {
        self.lock()
            .runs
            .insert((run.tenant_id.clone(), run.run_at), run.clone());
        Ok(())
    }

    async fn runs(&self, tenant_id: &str, limit: usize) -> Result<Vec<RunRecord>, StoreError> {
        let state = self.lock();
        let mine: Vec<RunRecord> = state
            .runs
            .iter()
            .filter(|((t, _), _)| t == tenant_id)
            .map(|(_, r)| r.clone())
            .collect();
        Ok(mine[mine.len().saturating_sub(limit)..].to_vec())
    }

    async fn previous_run(&self, tenant_id: &str) -> Result<Option<PreviousRun>, StoreError> {
        let state = self.lock();
        Ok(state
            .snapshots
            .iter()
            .rev()
            .find(|((t, _), _)| t == tenant_id)
            .map(|(_, p)| p.clone()))
    }

    async fn save_snapshot(&self, snapshot: &Snapshot) -> Result<(), StoreError> {
        self.lock().snapshots.insert(
            (snapshot.tenant_id.clone(), snapshot.taken_at),
            PreviousRun::from(snapshot),
        );
        Ok(())
    }

    async fn append_history(
        &self,
        tenant_id: &str,
        entries: &[HistoryEntry],
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        for e in entries {
            if state
                .history_keys
                .insert((tenant_id.to_string(), e.identity()))
            {
                // Readers never see `since`: it only makes an entry unique.
                let stored = HistoryEntry {
                    since: None,
                    ..e.clone()
                };
                state.history.push((tenant_id.to_string(), stored));
            }
        }
        Ok(())
    }

    async fn history(&self, tenant_id: &str, user: &str) -> Result<Vec<HistoryEntry>, StoreError> {
        let state = self.lock();
        let mut out: Vec<HistoryEntry> = state
            .history
            .iter()
            .filter(|(t, e)| {
                t == tenant_id && (same(&e.user_id, user) || same(&e.user_principal_name, user))
            })
            .map(|(_, e)| e.clone())
            .collect();
        out.sort_by_key(|e| e.at);
        Ok(out)
    }

    async fn grace_cases(
        &self,
        tenant_id: &str,
        open_only: bool,
    ) -> Result<Vec<GraceCase>, StoreError> {
        Ok(self
            .lock()
            .cases
            .values()
            .filter(|c| c.tenant_id == tenant_id && (!open_only || c.closed_at.is_none()))
            .cloned()
            .collect())
    }

    async fn put_grace_cases(&self, cases: &[GraceCase]) -> Result<(), StoreError> {
        let mut state = self.lock();
        for c in cases {
            state.cases.insert(c.case_id.clone(), c.clone());
        }
        Ok(())
    }

    async fn license_events(
        &self,
        tenant_id: &str,
        user: Option<&str>,
    ) -> Result<Vec<LicenseEvent>, StoreError> {
        let state = self.lock();
        let mut out: Vec<(DateTime<Utc>, String, LicenseEvent)> = state
            .events
            .iter()
            .filter(|((t, _), _)| t == tenant_id)
            .filter(|(_, e)| {
                user.is_none_or(|u| {
                    e.user_id.as_deref().is_some_and(|i| same(i, u))
                        || e.user_principal_name.as_deref().is_some_and(|p| same(p, u))
                })
            })
            .map(|((_, k), e)| (e.at, k.clone(), e.clone()))
            .collect();
        out.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        Ok(out.into_iter().map(|(_, _, e)| e).collect())
    }

    async fn ledger_status(
        &self,
        keys: &[String],
    ) -> Result<HashMap<String, LedgerStatus>, StoreError> {
        let state = self.lock();
        Ok(keys
            .iter()
            .filter_map(|k| state.ledger.get(k).map(|e| (k.clone(), e.status)))
            .collect())
    }

    async fn ledger_put(&self, entries: &[LedgerEntry]) -> Result<(), StoreError> {
        let mut state = self.lock();
        for e in entries {
            state.ledger.insert(e.key.clone(), e.clone());
        }
        Ok(())
    }

    async fn notified_cases(&self, tenant_id: &str) -> Result<HashSet<String>, StoreError> {
        Ok(self
            .lock()
            .ledger
            .values()
            .filter(|e| {
                e.tenant_id == tenant_id
                    && e.audience == Audience::Admin
                    && e.status == LedgerStatus::Sent
            })
            .map(|e| e.case_id.clone())
            .collect())
    }

    async fn sync_alerts(
        &self,
        tenant_id: &str,
        current: &[Alert],
    ) -> Result<Vec<Alert>, StoreError> {
        {
            let mut state = self.lock();
            let open: Vec<Alert> = state
                .alerts
                .by_id
                .values()
                .filter(|(t, o, _)| t == tenant_id && *o)
                .map(|(_, _, a)| a.clone())
                .collect();
            for a in &open {
                if !current.iter().any(|c| c.condition == a.condition)
                    && let Some(entry) = state.alerts.by_id.get_mut(&a.alert_id)
                {
                    entry.1 = false;
                }
            }
            for c in current {
                if !open.iter().any(|a| a.condition == c.condition) {
                    state
                        .alerts
                        .by_id
                        .entry(c.alert_id.clone())
                        .or_insert_with(|| (tenant_id.to_string(), true, c.clone()));
                }
            }
        }
        self.open_alerts(tenant_id).await
    }

    async fn open_alerts(&self, tenant_id: &str) -> Result<Vec<Alert>, StoreError> {
        Ok(self
            .lock()
            .alerts
            .by_id
            .values()
            .filter(|(t, o, _)| t == tenant_id && *o)
            .map(|(_, _, a)| a.clone())
            .collect())
    }

    async fn raise_alert(&self, tenant_id: &str, alert: &Alert) -> Result<(), StoreError> {
        // Closed at once: a single occurrence, not a condition that license-check keeps in step.
        self.lock()
            .alerts
            .by_id
            .entry(alert.alert_id.clone())
            .or_insert_with(|| (tenant_id.to_string(), false, alert.clone()));
        Ok(())
    }

    async fn recent_alerts(
        &self,
        tenant_id: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<Alert>, StoreError> {
        Ok(self
            .lock()
            .alerts
            .by_id
            .values()
            .filter(|(t, _, a)| t == tenant_id && a.raised_at >= since)
            .map(|(_, _, a)| a.clone())
            .collect())
    }

    async fn acquire_lease(
        &self,
        name: &str,
        owner: &str,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<Lease, StoreError> {
        let mut state = self.lock();
        if let Some((holder, until)) = state.leases.get(name)
            && holder != owner
            && *until > now
        {
            return Ok(Lease::Held {
                owner: holder.clone(),
                until: *until,
            });
        }
        state
            .leases
            .insert(name.to_string(), (owner.to_string(), now + ttl));
        Ok(Lease::Acquired)
    }

    async fn release_lease(&self, name: &str, owner: &str) -> Result<(), StoreError> {
        let mut state = self.lock();
        if state.leases.get(name).is_some_and(|(o, _)| o == owner) {
            state.leases.remove(name);
        }
        Ok(())
    }

    async fn ledger_claim(
        &self,
        entries: &[LedgerEntry],
        abandoned_up_to: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        let mut state = self.lock();
        let mut claimed = Vec::new();
        for e in entries {
            let free = match state.ledger.get(&e.key) {
                None => true,
                Some(c) => match c.status {
                    LedgerStatus::Sent => false,
                    LedgerStatus::Intended => true,
                    LedgerStatus::Sending => {
                        c.claimed_by == e.claimed_by || c.updated_at <= abandoned_up_to
                    }
                },
            };
            if free {
                state.ledger.insert(
                    e.key.clone(),
                    LedgerEntry {
                        status: LedgerStatus::Sending,
                        ..e.clone()
                    },
                );
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
        let mut state = self.lock();
        let mut new = 0;
        for e in events {
            if state
                .events
                .insert((tenant_id.to_string(), e.key()), e.clone())
                .is_none()
            {
                new += 1;
            }
        }
        Ok(new)
    }

    async fn put_license_parts(
        &self,
        tenant_id: &str,
        parts: &[LicenseRecord],
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        for r in parts {
            let key = r.group_key();
            state
                .parts
                .entry((tenant_id.to_string(), key.clone(), r.id.clone()))
                .or_insert_with(|| r.clone());
            state.marker += 1;
            let marker = format!("m{}", state.marker);
            state
                .pending_parts
                .insert((tenant_id.to_string(), key), marker);
        }
        Ok(())
    }

    async fn pending_license_parts(&self, tenant_id: &str) -> Result<PendingParts, StoreError> {
        let state = self.lock();
        let changes: Vec<(String, String)> = state
            .pending_parts
            .iter()
            .filter(|((t, _), _)| t == tenant_id)
            .map(|((_, k), m)| (k.clone(), m.clone()))
            .collect();
        let records = changes
            .iter()
            .flat_map(|(key, _)| {
                state
                    .parts
                    .iter()
                    .filter(move |((t, k, _), _)| t == tenant_id && k == key)
                    .map(|(_, r)| r.clone())
            })
            .collect();
        Ok(PendingParts { changes, records })
    }

    async fn settle_license_parts(
        &self,
        tenant_id: &str,
        changes: &[(String, String)],
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        for (key, marker) in changes {
            let id = (tenant_id.to_string(), key.clone());
            if state.pending_parts.get(&id) == Some(marker) {
                state.pending_parts.remove(&id);
            }
        }
        Ok(())
    }
}

#[async_trait]
impl RemediationQueue for MemoryStore {
    async fn enqueue(&self, request: &RemediationRequest) -> Result<(), StoreError> {
        let mut state = self.lock();
        if !state
            .queue
            .iter()
            .any(|(r, _)| r.remediation_id == request.remediation_id)
        {
            state.queue.push((request.clone(), false));
        }
        Ok(())
    }

    async fn pending(&self, tenant_id: &str) -> Result<Vec<RemediationRequest>, StoreError> {
        Ok(self
            .lock()
            .queue
            .iter()
            .filter(|(r, taken)| r.tenant_id == tenant_id && !taken)
            .map(|(r, _)| r.clone())
            .collect())
    }

    async fn ack(&self, remediation_id: &str) -> Result<(), StoreError> {
        for (r, taken) in self.lock().queue.iter_mut() {
            if r.remediation_id == remediation_id {
                *taken = true;
            }
        }
        Ok(())
    }
}

#[async_trait]
impl RemediationStore for MemoryStore {
    async fn claim(&self, record: &RemediationRecord) -> Result<Claim, StoreError> {
        let mut state = self.lock();
        if let Some(key) = &record.ticket_key
            && let Some(first) = same_ticket(&state, key, record.created_at)
        {
            return Ok(Claim::Existing(Box::new(first)));
        }
        let id = &record.request.remediation_id;
        if state.remediations.contains_key(id) {
            return Err(StoreError::Database(format!("remediation {id} exists")));
        }
        state.remediations.insert(id.clone(), record.clone());
        Ok(Claim::New)
    }

    async fn remember_webhook(
        &self,
        webhook_key: &str,
        remediation_id: &str,
        _now: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError> {
        let mut state = self.lock();
        if let Some(first) = state.webhook_ids.get(webhook_key) {
            return Ok(Some(first.clone()));
        }
        state
            .webhook_ids
            .insert(webhook_key.to_string(), remediation_id.to_string());
        Ok(None)
    }

    async fn remediation(
        &self,
        remediation_id: &str,
    ) -> Result<Option<RemediationRecord>, StoreError> {
        Ok(self.lock().remediations.get(remediation_id).cloned())
    }

    async fn set_status(
        &self,
        remediation_id: &str,
        status: RemediationStatus,
        detail: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        let rec = state
            .remediations
            .get_mut(remediation_id)
            .ok_or_else(|| StoreError::Database(format!("no remediation {remediation_id}")))?;
        rec.status = status;
        rec.detail = detail.clone();
        rec.updated_at = now;
        Ok(())
    }

    async fn forget(&self, remediation_id: &str) -> Result<(), StoreError> {
        let mut state = self.lock();
        state.remediations.remove(remediation_id);
        state.webhook_ids.retain(|_, r| r != remediation_id);
        Ok(())
    }

    async fn admit(
        &self,
        webhook_key: Option<&str>,
        record: &RemediationRecord,
        max_per_hour: u32,
    ) -> Result<Admitted, StoreError> {
        let now = record.created_at;
        let mut state = self.lock();
        if let Some(first) = webhook_key.and_then(|k| state.webhook_ids.get(k)) {
            return Ok(Admitted::ReplayedWebhook(first.clone()));
        }
        if let Some(first) = record
            .ticket_key
            .as_deref()
            .and_then(|k| same_ticket(&state, k, now))
        {
            return Ok(Admitted::SameTicket(Box::new(first)));
        }
        let tenant = &record.request.tenant_id;
        // The budget is a rolling 60 minutes, shared by every entry point that admits a remediation.
        let used = state
            .action_log
            .iter()
            .filter(|(t, at)| t == tenant && *at > now - Duration::minutes(60))
            .count();
        if used >= max_per_hour as usize {
            return Ok(Admitted::OverBudget);
        }
        state.action_log.push((tenant.clone(), now));
        let id = record.request.remediation_id.clone();
        if let Some(key) = webhook_key {
            state.webhook_ids.insert(key.to_string(), id.clone());
        }
        state.remediations.insert(id, record.clone());
        Ok(Admitted::New)
    }
}

#[async_trait]
impl AuditState for MemoryStore {
    async fn cursor(&self, name: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(self.lock().cursors.get(name).copied())
    }

    async fn set_cursor(&self, name: &str, value: DateTime<Utc>) -> Result<(), StoreError> {
        self.lock().cursors.insert(name.to_string(), value);
        Ok(())
    }

    async fn seen_records(&self, ids: &[String]) -> Result<HashSet<String>, StoreError> {
        let state = self.lock();
        Ok(ids
            .iter()
            .filter(|i| state.seen.contains_key(*i))
            .cloned()
            .collect())
    }

    async fn claim_records(
        &self,
        object_key: &str,
        ids: &[String],
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        let mut state = self.lock();
        let mut claimed = Vec::new();
        for id in ids {
            if !state.seen.contains_key(id) {
                state.seen.insert(id.clone(), now);
                claimed.push(id.clone());
            }
        }
        if !claimed.is_empty() {
            state
                .objects
                .insert(object_key.to_string(), claimed.clone());
        }
        Ok(claimed)
    }

    async fn confirm_object(
        &self,
        object_key: &str,
        _now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.lock().objects.remove(object_key);
        Ok(())
    }

    async fn unconfirmed_objects(&self) -> Result<Vec<String>, StoreError> {
        Ok(self.lock().objects.keys().cloned().collect())
    }

    async fn release_object(&self, object_key: &str) -> Result<(), StoreError> {
        let mut state = self.lock();
        for id in state.objects.remove(object_key).unwrap_or_default() {
            state.seen.remove(&id);
        }
        Ok(())
    }

    async fn mark_records(&self, ids: &[String], now: DateTime<Utc>) -> Result<(), StoreError> {
        let mut state = self.lock();
        for id in ids {
            state.seen.entry(id.clone()).or_insert(now);
        }
        Ok(())
    }

    async fn blob_done(&self, content_id: &str) -> Result<bool, StoreError> {
        Ok(self.lock().blobs.contains_key(content_id))
    }

    async fn mark_blob(&self, content_id: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.lock()
            .blobs
            .entry(content_id.to_string())
            .or_insert(now);
        Ok(())
    }

    async fn expire_index(&self, before: DateTime<Utc>) -> Result<(), StoreError> {
        let mut state = self.lock();
        state.seen.retain(|_, at| *at >= before);
        state.blobs.retain(|_, at| *at >= before);
        Ok(())
    }

    async fn record_gap(&self, gap: &Gap) -> Result<(), StoreError> {
        self.lock()
            .gaps
            .insert((gap.source.clone(), gap.from), gap.clone());
        Ok(())
    }

    async fn gaps(&self) -> Result<Vec<Gap>, StoreError> {
        let mut gaps: Vec<Gap> = self.lock().gaps.values().cloned().collect();
        gaps.sort_by_key(|g| g.from);
        Ok(gaps)
    }
}
