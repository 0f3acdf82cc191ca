//! The notice ledger, alerts and leases in memory.

use super::*;

#[async_trait]
impl NoticeLedger for MemoryStore {
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

    async fn ledger_entry(&self, key: &str) -> Result<Option<LedgerEntry>, StoreError> {
        Ok(self.lock().ledger.get(key).cloned())
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
}

#[async_trait]
impl AlertStore for MemoryStore {
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
}

#[async_trait]
impl LeaseStore for MemoryStore {
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
}
