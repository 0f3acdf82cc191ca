//! The notice ledger, alerts and leases in SQLite: each claim is one IMMEDIATE transaction, so two processes on one database serialise.

use super::*;

#[async_trait]
impl NoticeLedger for SqliteStore {
    async fn ledger_status(
        &self,
        keys: &[String],
    ) -> Result<HashMap<String, LedgerStatus>, StoreError> {
        let conn = self.conn();
        let mut st = conn
            .prepare("SELECT status FROM notice_ledger WHERE key = ?1")
            .map_err(|e| self.db(e))?;
        let mut out = HashMap::new();
        for k in keys {
            let status: Option<String> = st
                .query_row(params![k], |r| r.get(0))
                .optional()
                .map_err(|e| self.db(e))?;
            if let Some(s) = status {
                out.insert(
                    k.clone(),
                    match s.as_str() {
                        "sent" => LedgerStatus::Sent,
                        "sending" => LedgerStatus::Sending,
                        _ => LedgerStatus::Intended,
                    },
                );
            }
        }
        Ok(out)
    }

    async fn ledger_entry(&self, key: &str) -> Result<Option<LedgerEntry>, StoreError> {
        let body: Option<String> = self
            .conn()
            .query_row(
                "SELECT body FROM notice_ledger WHERE key = ?1",
                params![key],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.db(e))?;
        body.map(|b| serde_json::from_str(&b).map_err(corrupt))
            .transpose()
    }

    async fn ledger_put(&self, entries: &[LedgerEntry]) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| self.db(e))?;
        {
            let mut st = tx
                .prepare(
                    "INSERT OR REPLACE INTO notice_ledger (key, tenant_id, case_id, audience, status, body) VALUES (?1,?2,?3,?4,?5,?6)",
                )
                .map_err(|e| self.db(e))?;
            for e in entries {
                let status = ledger_status_text(e.status);
                let body = serde_json::to_string(e).map_err(corrupt)?;
                st.execute(params![
                    e.key,
                    e.tenant_id,
                    e.case_id,
                    e.audience.as_str(),
                    status,
                    body
                ])
                .map_err(|e| self.db(e))?;
            }
        }
        tx.commit().map_err(|e| self.db(e))
    }

    async fn notified_cases(&self, tenant_id: &str) -> Result<HashSet<String>, StoreError> {
        let conn = self.conn();
        let mut st = conn
            .prepare("SELECT DISTINCT case_id FROM notice_ledger WHERE tenant_id = ?1 AND audience = 'admin' AND status = 'sent'")
            .map_err(|e| self.db(e))?;
        let rows = st
            .query_map(params![tenant_id], |r| r.get::<_, String>(0))
            .map_err(|e| self.db(e))?;
        let mut out = HashSet::new();
        for r in rows {
            out.insert(r.map_err(|e| self.db(e))?);
        }
        Ok(out)
    }

    async fn ledger_claim(
        &self,
        entries: &[LedgerEntry],
        abandoned_up_to: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<String>, StoreError> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.db(e))?;
        let mut claimed = Vec::new();
        {
            let mut read = tx
                .prepare("SELECT body FROM notice_ledger WHERE key = ?1")
                .map_err(|e| self.db(e))?;
            let mut write = tx
                .prepare("INSERT OR REPLACE INTO notice_ledger (key, tenant_id, case_id, audience, status, body) VALUES (?1,?2,?3,?4,'sending',?5)")
                .map_err(|e| self.db(e))?;
            for e in entries {
                let current: Option<String> = read
                    .query_row(params![e.key], |r| r.get(0))
                    .optional()
                    .map_err(|e| self.db(e))?;
                let current: Option<LedgerEntry> = current
                    .map(|b| serde_json::from_str(&b))
                    .transpose()
                    .map_err(corrupt)?;
                if current.is_some_and(|c| !claimable(&c, e, abandoned_up_to)) {
                    continue;
                }
                let body = serde_json::to_string(e).map_err(corrupt)?;
                write
                    .execute(params![
                        e.key,
                        e.tenant_id,
                        e.case_id,
                        e.audience.as_str(),
                        body
                    ])
                    .map_err(|e| self.db(e))?;
                claimed.push(e.key.clone());
            }
        }
        tx.commit().map_err(|e| self.db(e))?;
        Ok(claimed)
    }
}

#[async_trait]
impl AlertStore for SqliteStore {
    async fn sync_alerts(
        &self,
        tenant_id: &str,
        current: &[Alert],
    ) -> Result<Vec<Alert>, StoreError> {
        let open = self.open_alerts(tenant_id).await?;
        self.apply_alerts(tenant_id, &open, current)?;
        self.open_alerts(tenant_id).await
    }

    async fn open_alerts(&self, tenant_id: &str) -> Result<Vec<Alert>, StoreError> {
        self.alerts_where(tenant_id, true)
    }

    async fn raise_alert(&self, tenant_id: &str, alert: &Alert) -> Result<(), StoreError> {
        let body = serde_json::to_string(alert).map_err(corrupt)?;
        // Closed at once: it is a single occurrence, not a condition that license-check keeps in step.
        self.conn()
            .execute(
                "INSERT OR IGNORE INTO alerts (alert_id, tenant_id, condition, open, body) VALUES (?1,?2,?3,0,?4)",
                params![alert.alert_id, tenant_id, alert.condition, body],
            )
            .map_err(|e| self.db(e))?;
        Ok(())
    }

    async fn recent_alerts(
        &self,
        tenant_id: &str,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<Alert>, StoreError> {
        Ok(self
            .alerts_where(tenant_id, false)?
            .into_iter()
            .filter(|a| a.raised_at >= since)
            .collect())
    }
}

#[async_trait]
impl LeaseStore for SqliteStore {
    async fn acquire_lease(
        &self,
        name: &str,
        owner: &str,
        now: chrono::DateTime<chrono::Utc>,
        ttl: chrono::Duration,
    ) -> Result<Lease, StoreError> {
        let mut conn = self.conn();
        // IMMEDIATE: two processes on one database serialise here instead of both reading "free".
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.db(e))?;
        let held: Option<(String, String)> = tx
            .query_row(
                "SELECT owner, expires_at FROM leases WHERE name = ?1",
                params![name],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.db(e))?;
        if let Some((holder, until)) = held
            && holder != owner
            && until > ts(&now)
        {
            let until = chrono::DateTime::parse_from_rfc3339(&until)
                .map_err(corrupt)?
                .to_utc();
            return Ok(Lease::Held {
                owner: holder,
                until,
            });
        }
        tx.execute(
            "INSERT OR REPLACE INTO leases (name, owner, expires_at) VALUES (?1, ?2, ?3)",
            params![name, owner, ts(&(now + ttl))],
        )
        .map_err(|e| self.db(e))?;
        tx.commit().map_err(|e| self.db(e))?;
        Ok(Lease::Acquired)
    }

    async fn release_lease(&self, name: &str, owner: &str) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "DELETE FROM leases WHERE name = ?1 AND owner = ?2",
                params![name, owner],
            )
            .map_err(|e| self.db(e))?;
        Ok(())
    }
}
