//! audit-fetch's book-keeping in memory.

use super::*;

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
