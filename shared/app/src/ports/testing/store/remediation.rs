//! Remediation records, the action budget, seen webhook ids and the local queue in memory.

use super::*;

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

/// Writes of their own, as the DynamoDB store with SQS makes them (the default), and a process death between the
/// admission and the queueing on request.
#[async_trait]
impl RemediationIntake for MemoryStore {
    async fn admit_and_queue(
        &self,
        webhook_key: Option<&str>,
        record: &RemediationRecord,
        max_per_hour: u32,
    ) -> Result<Admitted, StoreError> {
        if std::mem::take(&mut self.lock().dies_after_admission) {
            self.admit(webhook_key, record, max_per_hour).await?;
            return Err(StoreError::Database(
                "the process died after the admission".into(),
            ));
        }
        crate::ports::store::admit_then_queue(self, webhook_key, record, max_per_hour).await
    }

    /// The queue is the record of the queueing.
    async fn mark_queued(&self, _remediation_id: &str) -> Result<(), StoreError> {
        Ok(())
    }

    async fn is_queued(&self, remediation_id: &str) -> Result<bool, StoreError> {
        Ok((self.lock().queue.iter()).any(|(r, _)| r.remediation_id == remediation_id))
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

    async fn pending_verification(
        &self,
        tenant_id: &str,
    ) -> Result<Vec<RemediationRecord>, StoreError> {
        let mut pending: Vec<RemediationRecord> = (self.lock().remediations.values())
            .filter(|r| r.status == RemediationStatus::Pending)
            .filter(|r| r.request.tenant_id.eq_ignore_ascii_case(tenant_id))
            .cloned()
            .collect();
        pending.sort_by_key(|r| r.created_at);
        Ok(pending)
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
