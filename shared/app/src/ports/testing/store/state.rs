//! Run records, snapshots, history, grace cases and licence events in memory.

use super::*;
use crate::ports::store::SeatSample;

#[async_trait]
impl RunStore for MemoryStore {
    async fn save_run(&self, run: &RunRecord) -> Result<(), StoreError> {
        self.lock()
            .runs
            .insert((run.tenant_id.clone(), run.run_at), run.clone());
        Ok(())
    }

    async fn seat_history(
        &self,
        tenant_id: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<SeatSample>, StoreError> {
        Ok(self
            .lock()
            .runs
            .iter()
            .filter(|((t, at), _)| t == tenant_id && *at >= since)
            .flat_map(|(_, r)| SeatSample::of_run(r))
            .collect())
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

    async fn latest_snapshot(&self, tenant_id: &str) -> Result<Option<Snapshot>, StoreError> {
        let state = self.lock();
        Ok(state
            .full_snapshots
            .iter()
            .rev()
            .find(|((t, _), _)| t == tenant_id)
            .map(|(_, s)| s.clone()))
    }

    async fn save_reclaim(&self, report: &ReclaimReport) -> Result<(), StoreError> {
        self.lock().reclaims.insert(
            (report.tenant_id.clone(), report.generated_at),
            report.clone(),
        );
        Ok(())
    }

    async fn latest_reclaim(&self, tenant_id: &str) -> Result<Option<ReclaimReport>, StoreError> {
        Ok(self
            .lock()
            .reclaims
            .iter()
            .rev()
            .find(|((t, _), _)| t == tenant_id)
            .map(|(_, r)| r.clone()))
    }

    async fn save_encoded_snapshot(&self, snapshot: &EncodedSnapshot) -> Result<(), StoreError> {
        // Decoded again, so that what the memory store keeps went through the same encoding as a real store's.
        let snapshot = snapshot.decode()?;
        let mut state = self.lock();
        state.snapshots.insert(
            (snapshot.tenant_id.clone(), snapshot.taken_at),
            PreviousRun::from(&snapshot),
        );
        state
            .full_snapshots
            .insert((snapshot.tenant_id.clone(), snapshot.taken_at), snapshot);
        Ok(())
    }
}

#[async_trait]
impl HistoryStore for MemoryStore {
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
}

#[async_trait]
impl GraceStore for MemoryStore {
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
}

#[async_trait]
impl LicenseEventStore for MemoryStore {
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
impl crate::ports::store::SubscriptionStore for MemoryStore {
    async fn subscription(
        &self,
        tenant_id: &str,
    ) -> Result<Option<crate::ports::store::SubscriptionRecord>, StoreError> {
        Ok(self
            .lock()
            .subscriptions
            .get(&tenant_id.to_ascii_lowercase())
            .cloned())
    }

    async fn save_subscription(
        &self,
        record: &crate::ports::store::SubscriptionRecord,
    ) -> Result<(), StoreError> {
        self.lock()
            .subscriptions
            .insert(record.tenant_id.to_ascii_lowercase(), record.clone());
        Ok(())
    }
}

#[async_trait]
impl crate::ports::store::JobStatusStore for MemoryStore {
    async fn job_statuses(
        &self,
        tenant_id: &str,
    ) -> Result<Vec<crate::domain::tenant_status::JobStatus>, StoreError> {
        let tenant = tenant_id.to_ascii_lowercase();
        Ok(self
            .lock()
            .job_statuses
            .range((tenant.clone(), String::new())..)
            .take_while(|((t, _), _)| *t == tenant)
            .map(|(_, s)| s.clone())
            .collect())
    }

    async fn put_job_status(
        &self,
        tenant_id: &str,
        status: &crate::domain::tenant_status::JobStatus,
    ) -> Result<(), StoreError> {
        self.lock().job_statuses.insert(
            (
                tenant_id.to_ascii_lowercase(),
                status.job.as_str().to_string(),
            ),
            status.clone(),
        );
        Ok(())
    }
}

#[async_trait]
impl crate::ports::store::MailboxPurposeStore for MemoryStore {
    async fn mailbox_purposes(
        &self,
        tenant_id: &str,
        user_ids: &[String],
    ) -> Result<
        HashMap<String, (Option<crate::domain::kinds::MailboxPurpose>, DateTime<Utc>)>,
        StoreError,
    > {
        let state = self.lock();
        Ok(user_ids
            .iter()
            .filter_map(|id| {
                state
                    .purposes
                    .get(&(tenant_id.to_ascii_lowercase(), id.clone()))
                    .map(|r| (id.clone(), (r.purpose, r.read_at)))
            })
            .collect())
    }

    async fn put_mailbox_purposes(
        &self,
        tenant_id: &str,
        read: &[(String, Option<crate::domain::kinds::MailboxPurpose>)],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        for (id, purpose) in read {
            state.purposes.insert(
                (tenant_id.to_ascii_lowercase(), id.clone()),
                crate::ports::store::PurposeRecord {
                    purpose: *purpose,
                    read_at: at,
                },
            );
        }
        Ok(())
    }
}
