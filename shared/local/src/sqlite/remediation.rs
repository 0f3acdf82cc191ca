//! Remediation records, the action budget, seen webhook ids and the local remediation queue in SQLite.

use super::*;

#[async_trait]
impl RemediationQueue for SqliteStore {
    async fn enqueue(&self, request: &RemediationRequest) -> Result<(), StoreError> {
        self.grouped(|reply| group_commit::Job::Enqueue {
            request: Box::new(request.clone()),
            reply,
        })
        .await
    }

    async fn ack(&self, remediation_id: &str) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "UPDATE remediation_queue SET taken = 1 WHERE remediation_id = ?1",
                params![remediation_id],
            )
            .map_err(|e| self.db(e))?;
        Ok(())
    }

    async fn pending(&self, tenant_id: &str) -> Result<Vec<RemediationRequest>, StoreError> {
        let conn = self.conn();
        let mut st = conn
            .prepare("SELECT body FROM remediation_queue WHERE tenant_id = ?1 AND taken = 0 ORDER BY rowid")
            .map_err(|e| self.db(e))?;
        let rows = st
            .query_map(params![tenant_id], |r| r.get::<_, String>(0))
            .map_err(|e| self.db(e))?;
        let mut out = Vec::new();
        for row in rows {
            out.push(serde_json::from_str(&row.map_err(|e| self.db(e))?).map_err(corrupt)?);
        }
        Ok(out)
    }
}

#[async_trait]
impl RemediationStore for SqliteStore {
    async fn claim(&self, record: &RemediationRecord) -> Result<Claim, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| self.db(e))?;
        if let Some(key) = &record.ticket_key {
            let since = ts(&(record.created_at - chrono::Duration::hours(24)));
            let existing: Option<String> = tx
                .prepare_cached(
                    "SELECT body FROM remediations WHERE ticket_key = ?1 AND created_at > ?2 ORDER BY created_at LIMIT 1",
                )
                .map_err(|e| self.db(e))?
                .query_row(params![key, since], |r| r.get(0))
                .optional()
                .map_err(|e| self.db(e))?;
            if let Some(body) = existing {
                return Ok(Claim::Existing(Box::new(
                    serde_json::from_str(&body).map_err(corrupt)?,
                )));
            }
        }
        let body = serde_json::to_string(record).map_err(corrupt)?;
        tx.prepare_cached(
            "INSERT INTO remediations (remediation_id, tenant_id, ticket_key, created_at, body) VALUES (?1,?2,?3,?4,?5)",
        )
        .map_err(|e| self.db(e))?
        .execute(params![record.request.remediation_id, record.request.tenant_id, record.ticket_key, ts(&record.created_at), body])
        .map_err(|e| self.db(e))?;
        tx.commit().map_err(|e| self.db(e))?;
        Ok(Claim::New)
    }

    async fn remember_webhook(
        &self,
        webhook_key: &str,
        remediation_id: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<String>, StoreError> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.db(e))?;
        let first: Option<String> = tx
            .query_row(
                "SELECT remediation_id FROM webhook_ids WHERE webhook_id = ?1",
                params![webhook_key],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.db(e))?;
        if first.is_none() {
            tx.execute(
                "INSERT INTO webhook_ids (webhook_id, remediation_id, seen_at) VALUES (?1, ?2, ?3)",
                params![webhook_key, remediation_id, ts(&now)],
            )
            .map_err(|e| self.db(e))?;
        }
        tx.commit().map_err(|e| self.db(e))?;
        Ok(first)
    }

    async fn remediation(
        &self,
        remediation_id: &str,
    ) -> Result<Option<RemediationRecord>, StoreError> {
        let body: Option<String> = self
            .conn()
            .query_row(
                "SELECT body FROM remediations WHERE remediation_id = ?1",
                params![remediation_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.db(e))?;
        body.map(|b| serde_json::from_str(&b).map_err(corrupt))
            .transpose()
    }

    async fn set_status(
        &self,
        remediation_id: &str,
        status: RemediationStatus,
        detail: &serde_json::Value,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), StoreError> {
        let Some(mut rec) = self.remediation(remediation_id).await? else {
            return Err(StoreError::Database(format!(
                "no remediation {remediation_id}"
            )));
        };
        rec.status = status;
        rec.detail = detail.clone();
        rec.updated_at = now;
        let body = serde_json::to_string(&rec).map_err(corrupt)?;
        self.conn()
            .execute(
                "UPDATE remediations SET body = ?2 WHERE remediation_id = ?1",
                params![remediation_id, body],
            )
            .map_err(|e| self.db(e))?;
        Ok(())
    }

    async fn pending_verification(
        &self,
        tenant_id: &str,
    ) -> Result<Vec<RemediationRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT body FROM remediations WHERE tenant_id = ?1 \
                 AND json_extract(body, '$.status') = 'pending' ORDER BY created_at",
            )
            .map_err(|e| self.db(e))?;
        let bodies = stmt
            .query_map(params![tenant_id], |r| r.get::<_, String>(0))
            .map_err(|e| self.db(e))?;
        let mut out = Vec::new();
        for body in bodies {
            let body = body.map_err(|e| self.db(e))?;
            out.push(serde_json::from_str(&body).map_err(corrupt)?);
        }
        Ok(out)
    }

    async fn forget(&self, remediation_id: &str) -> Result<(), StoreError> {
        let conn = self.conn();
        conn.execute(
            "DELETE FROM remediations WHERE remediation_id = ?1",
            params![remediation_id],
        )
        .map_err(|e| self.db(e))?;
        conn.execute(
            "DELETE FROM webhook_ids WHERE remediation_id = ?1",
            params![remediation_id],
        )
        .map_err(|e| self.db(e))?;
        Ok(())
    }

    async fn admit(
        &self,
        webhook_key: Option<&str>,
        record: &RemediationRecord,
        max_per_hour: u32,
    ) -> Result<Admitted, StoreError> {
        self.admission(webhook_key, record, max_per_hour, false)
            .await
    }
}

/// The store is its own queue: the admission and the queued request are one unit of one group commit.
#[async_trait]
impl RemediationIntake for SqliteStore {
    async fn admit_and_queue(
        &self,
        webhook_key: Option<&str>,
        record: &RemediationRecord,
        max_per_hour: u32,
    ) -> Result<Admitted, StoreError> {
        self.admission(webhook_key, record, max_per_hour, true)
            .await
    }

    /// The queue row is the record of the queueing.
    async fn mark_queued(&self, _remediation_id: &str) -> Result<(), StoreError> {
        Ok(())
    }

    async fn is_queued(&self, remediation_id: &str) -> Result<bool, StoreError> {
        self.conn()
            .prepare_cached("SELECT 1 FROM remediation_queue WHERE remediation_id = ?1")
            .and_then(|mut st| st.exists(params![remediation_id]))
            .map_err(|e| self.db(e))
    }
}

impl SqliteStore {
    async fn admission(
        &self,
        webhook_key: Option<&str>,
        record: &RemediationRecord,
        max_per_hour: u32,
        queue: bool,
    ) -> Result<Admitted, StoreError> {
        self.grouped(|reply| group_commit::Job::Admit {
            webhook_key: webhook_key.map(str::to_string),
            record: Box::new(record.clone()),
            max_per_hour,
            queue,
            reply,
        })
        .await
    }
}
