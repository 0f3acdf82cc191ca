//! Run records, snapshots, history, grace cases and licence events in SQLite.

use super::*;
use crate::domain::tenant_status::JobStatus;
use crate::ports::store::SeatSample;
use crate::ports::store::{SubscriptionRecord, SubscriptionStore};
use chrono::{DateTime, Utc};

#[async_trait]
impl RunStore for SqliteStore {
    async fn save_run(&self, run: &RunRecord) -> Result<(), StoreError> {
        let blob = crate::ports::store::gzip_json(run)?;
        let seats = serde_json::to_string(&SeatSample::of_run(run)).map_err(corrupt)?;
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| self.db(e))?;
        tx.execute(
            "INSERT OR REPLACE INTO check_runs (tenant_id, run_at, body) VALUES (?1, ?2, ?3)",
            params![run.tenant_id, ts(&run.run_at), blob],
        )
        .map_err(|e| self.db(e))?;
        tx.execute(
            "INSERT OR REPLACE INTO seat_counts (tenant_id, run_at, body) VALUES (?1, ?2, ?3)",
            params![run.tenant_id, ts(&run.run_at), seats],
        )
        .map_err(|e| self.db(e))?;
        tx.commit().map_err(|e| self.db(e))
    }

    async fn seat_history(
        &self,
        tenant_id: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<SeatSample>, StoreError> {
        let conn = self.conn();
        let mut st = conn
            .prepare("SELECT body FROM seat_counts WHERE tenant_id = ?1 AND run_at >= ?2 ORDER BY run_at")
            .map_err(|e| self.db(e))?;
        let rows = st
            .query_map(params![tenant_id, ts(&since)], |r| r.get::<_, String>(0))
            .map_err(|e| self.db(e))?;
        let mut out = Vec::new();
        for r in rows {
            let samples: Vec<SeatSample> =
                serde_json::from_str(&r.map_err(|e| self.db(e))?).map_err(corrupt)?;
            out.extend(samples);
        }
        Ok(out)
    }

    async fn runs(&self, tenant_id: &str, limit: usize) -> Result<Vec<RunRecord>, StoreError> {
        let conn = self.conn();
        let mut st = conn
            .prepare(
                "SELECT body FROM check_runs WHERE tenant_id = ?1 ORDER BY run_at DESC LIMIT ?2",
            )
            .map_err(|e| self.db(e))?;
        let rows = st
            .query_map(params![tenant_id, limit as i64], |r| r.get::<_, Vec<u8>>(0))
            .map_err(|e| self.db(e))?;
        let mut out = Vec::new();
        for r in rows {
            out.push(crate::ports::store::gunzip_json(
                &r.map_err(|e| self.db(e))?,
            )?);
        }
        out.reverse();
        Ok(out)
    }

    async fn has_runs(&self, tenant_id: &str) -> Result<bool, StoreError> {
        self.conn()
            .query_row(
                "SELECT 1 FROM check_runs WHERE tenant_id = ?1 LIMIT 1",
                params![tenant_id],
                |_| Ok(()),
            )
            .optional()
            .map(|found| found.is_some())
            .map_err(|e| self.db(e))
    }

    async fn previous_run(&self, tenant_id: &str) -> Result<Option<PreviousRun>, StoreError> {
        match self.snapshot_document(tenant_id)? {
            Some(blob) => crate::ports::store::decode_off_thread(
                blob,
                crate::ports::snapshot_format::decode_previous,
            )
            .await
            .map(Some),
            None => Ok(None),
        }
    }

    async fn latest_snapshot(&self, tenant_id: &str) -> Result<Option<Snapshot>, StoreError> {
        match self.snapshot_document(tenant_id)? {
            Some(blob) => {
                crate::ports::store::decode_off_thread(blob, crate::ports::snapshot_format::decode)
                    .await
                    .map(Some)
            }
            None => Ok(None),
        }
    }

    async fn latest_snapshot_mark(
        &self,
        tenant_id: &str,
    ) -> Result<Option<crate::domain::snapshot::SnapshotMark>, StoreError> {
        self.snapshot_document(tenant_id)?
            .map(|blob| crate::ports::snapshot_format::decode_mark(&blob))
            .transpose()
    }

    async fn save_reclaim(&self, report: &ReclaimReport) -> Result<(), StoreError> {
        let blob = crate::ports::store::gzip_json(report)?;
        self.conn()
            .execute(
                "INSERT OR REPLACE INTO reclaim_reports (tenant_id, generated_at, body) VALUES (?1, ?2, ?3)",
                params![report.tenant_id, ts(&report.generated_at), blob],
            )
            .map_err(|e| self.db(e))?;
        Ok(())
    }

    async fn latest_reclaim(&self, tenant_id: &str) -> Result<Option<ReclaimReport>, StoreError> {
        let blob: Option<Vec<u8>> = self
            .conn()
            .query_row(
                "SELECT body FROM reclaim_reports WHERE tenant_id = ?1 ORDER BY generated_at DESC LIMIT 1",
                params![tenant_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.db(e))?;
        blob.map(|b| crate::ports::store::gunzip_json(&b))
            .transpose()
    }

    async fn save_encoded_snapshot(&self, snapshot: &EncodedSnapshot) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "INSERT OR REPLACE INTO snapshots (tenant_id, taken_at, body) VALUES (?1, ?2, ?3)",
                params![snapshot.tenant_id, ts(&snapshot.taken_at), snapshot.bytes],
            )
            .map_err(|e| self.db(e))?;
        Ok(())
    }
}

impl SqliteStore {
    /// The newest snapshot's stored document (gzip JSON).
    fn snapshot_document(&self, tenant_id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let blob: Option<Vec<u8>> = self
            .conn()
            .query_row(
                "SELECT body FROM snapshots WHERE tenant_id = ?1 ORDER BY taken_at DESC LIMIT 1",
                params![tenant_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.db(e))?;
        Ok(blob)
    }
}

#[async_trait]
impl HistoryStore for SqliteStore {
    async fn append_history(
        &self,
        tenant_id: &str,
        entries: &[HistoryEntry],
    ) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| self.db(e))?;
        {
            let mut st = tx
                .prepare("INSERT INTO license_history (tenant_id, user_id, upn, sku_id, change, at, baseline) VALUES (?1,?2,?3,?4,?5,?6,?7)")
                .map_err(|e| self.db(e))?;
            let mut first = tx
                .prepare("INSERT OR IGNORE INTO license_history_keys (tenant_id, identity) VALUES (?1, ?2)")
                .map_err(|e| self.db(e))?;
            for e in entries {
                // Stored once per identity: a rerun of a run that died before its snapshot adds nothing.
                if first
                    .execute(params![tenant_id, e.identity()])
                    .map_err(|e| self.db(e))?
                    == 0
                {
                    continue;
                }
                st.execute(params![
                    tenant_id,
                    e.user_id,
                    e.user_principal_name,
                    e.sku_id,
                    e.change,
                    ts(&e.at),
                    e.baseline
                ])
                .map_err(|e| self.db(e))?;
            }
        }
        tx.commit().map_err(|e| self.db(e))
    }

    async fn history(&self, tenant_id: &str, user: &str) -> Result<Vec<HistoryEntry>, StoreError> {
        self.history_rows(
            "SELECT user_id, upn, sku_id, change, at, baseline FROM license_history
             WHERE tenant_id = ?1 AND (user_id = ?2 COLLATE NOCASE OR upn = ?2 COLLATE NOCASE) ORDER BY at, rowid",
            &[tenant_id, user],
        )
    }

    async fn histories(
        &self,
        tenant_id: &str,
        user_ids: &[String],
    ) -> Result<HashMap<String, Vec<HistoryEntry>>, StoreError> {
        let mut out: HashMap<String, Vec<HistoryEntry>> = HashMap::new();
        // Exact ids, so the (tenant_id, user_id) index answers; a few hundred ids a query.
        for chunk in user_ids.chunks(500) {
            let marks = vec!["?"; chunk.len()].join(",");
            let sql = format!(
                "SELECT user_id, upn, sku_id, change, at, baseline FROM license_history
                 WHERE tenant_id = ? AND user_id IN ({marks}) ORDER BY at, rowid"
            );
            let mut args: Vec<&str> = vec![tenant_id];
            args.extend(chunk.iter().map(String::as_str));
            for e in self.history_rows(&sql, &args)? {
                out.entry(e.user_id.clone()).or_default().push(e);
            }
        }
        Ok(out)
    }
}

impl SqliteStore {
    /// History rows of a query whose columns are user_id, upn, sku_id, change, at, baseline.
    fn history_rows(&self, sql: &str, args: &[&str]) -> Result<Vec<HistoryEntry>, StoreError> {
        let conn = self.conn();
        let mut st = conn.prepare(sql).map_err(|e| self.db(e))?;
        let rows = st
            .query_map(rusqlite::params_from_iter(args.iter()), |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, bool>(5)?,
                ))
            })
            .map_err(|e| self.db(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (user_id, upn, sku_id, change, at, baseline) = row.map_err(|e| self.db(e))?;
            out.push(HistoryEntry {
                user_id,
                user_principal_name: upn,
                sku_id,
                change,
                at: chrono::DateTime::parse_from_rfc3339(&at)
                    .map_err(corrupt)?
                    .to_utc(),
                baseline,
                // Kept in license_history_keys, where it makes each entry unique; readers do not need it.
                since: None,
            });
        }
        Ok(out)
    }
}

#[async_trait]
impl GraceStore for SqliteStore {
    async fn grace_cases(
        &self,
        tenant_id: &str,
        open_only: bool,
    ) -> Result<Vec<GraceCase>, StoreError> {
        let conn = self.conn();
        let mut st = conn
            .prepare("SELECT body FROM grace_cases WHERE tenant_id = ?1 AND (open = 1 OR ?2 = 0) ORDER BY case_id")
            .map_err(|e| self.db(e))?;
        let rows = st
            .query_map(params![tenant_id, open_only], |r| r.get::<_, String>(0))
            .map_err(|e| self.db(e))?;
        let mut out = Vec::new();
        for row in rows {
            out.push(serde_json::from_str(&row.map_err(|e| self.db(e))?).map_err(corrupt)?);
        }
        Ok(out)
    }

    async fn put_grace_cases(&self, cases: &[GraceCase]) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| self.db(e))?;
        {
            let mut st = tx
                .prepare(
                    "INSERT OR REPLACE INTO grace_cases (case_id, tenant_id, user_id, open, body) VALUES (?1,?2,?3,?4,?5)",
                )
                .map_err(|e| self.db(e))?;
            for case in cases {
                let body = serde_json::to_string(case).map_err(corrupt)?;
                st.execute(params![
                    case.case_id,
                    case.tenant_id,
                    case.user_id,
                    case.closed_at.is_none(),
                    body
                ])
                .map_err(|e| self.db(e))?;
            }
        }
        tx.commit().map_err(|e| self.db(e))
    }
}

#[async_trait]
impl LicenseEventStore for SqliteStore {
    async fn license_events(
        &self,
        tenant_id: &str,
        user: Option<&str>,
    ) -> Result<Vec<LicenseEvent>, StoreError> {
        let conn = self.conn();
        let mut st = conn
            .prepare(
                "SELECT body FROM license_events WHERE tenant_id = ?1
                 AND (?2 IS NULL OR user_id = ?2 COLLATE NOCASE OR upn = ?2 COLLATE NOCASE) ORDER BY at, record_key",
            )
            .map_err(|e| self.db(e))?;
        let rows = st
            .query_map(params![tenant_id, user], |r| r.get::<_, String>(0))
            .map_err(|e| self.db(e))?;
        let mut out = Vec::new();
        for row in rows {
            out.push(serde_json::from_str(&row.map_err(|e| self.db(e))?).map_err(corrupt)?);
        }
        Ok(out)
    }

    async fn put_license_events(
        &self,
        tenant_id: &str,
        events: &[LicenseEvent],
    ) -> Result<usize, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| self.db(e))?;
        let mut new = 0;
        {
            let mut exists = tx
                .prepare("SELECT 1 FROM license_events WHERE tenant_id = ?1 AND record_key = ?2")
                .map_err(|e| self.db(e))?;
            let mut st = tx
                .prepare("INSERT OR REPLACE INTO license_events (tenant_id, record_key, at, user_id, upn, body) VALUES (?1,?2,?3,?4,?5,?6)")
                .map_err(|e| self.db(e))?;
            for e in events {
                let key = e.key();
                if !exists
                    .exists(params![tenant_id, key])
                    .map_err(|e| self.db(e))?
                {
                    new += 1;
                }
                let body = serde_json::to_string(e).map_err(corrupt)?;
                st.execute(params![
                    tenant_id,
                    key,
                    ts(&e.at),
                    e.user_id,
                    e.user_principal_name,
                    body
                ])
                .map_err(|e| self.db(e))?;
            }
        }
        tx.commit().map_err(|e| self.db(e))?;
        Ok(new)
    }

    async fn put_license_parts(
        &self,
        tenant_id: &str,
        parts: &[LicenseRecord],
    ) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| self.db(e))?;
        {
            let mut part = tx
                .prepare("INSERT OR IGNORE INTO license_parts (tenant_id, change_key, record_id, body) VALUES (?1,?2,?3,?4)")
                .map_err(|e| self.db(e))?;
            let mut pending = tx
                .prepare("INSERT OR REPLACE INTO license_pending (tenant_id, change_key, marker) VALUES (?1,?2,?3)")
                .map_err(|e| self.db(e))?;
            for r in parts {
                let body = serde_json::to_string(r).map_err(corrupt)?;
                let key = r.group_key();
                part.execute(params![tenant_id, key, r.id, body])
                    .map_err(|e| self.db(e))?;
                pending
                    .execute(params![tenant_id, key, uuid::Uuid::new_v4().to_string()])
                    .map_err(|e| self.db(e))?;
            }
        }
        tx.commit().map_err(|e| self.db(e))
    }

    async fn pending_license_parts(&self, tenant_id: &str) -> Result<PendingParts, StoreError> {
        let conn = self.conn();
        let mut st = conn
            .prepare("SELECT change_key, marker FROM license_pending WHERE tenant_id = ?1 ORDER BY change_key")
            .map_err(|e| self.db(e))?;
        let changes = st
            .query_map(params![tenant_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(|e| self.db(e))?
            .collect::<Result<Vec<(String, String)>, _>>()
            .map_err(|e| self.db(e))?;
        let mut parts = conn
            .prepare("SELECT body FROM license_parts WHERE tenant_id = ?1 AND change_key = ?2")
            .map_err(|e| self.db(e))?;
        let mut records = Vec::new();
        for (key, _) in &changes {
            let rows = parts
                .query_map(params![tenant_id, key], |r| r.get::<_, String>(0))
                .map_err(|e| self.db(e))?;
            for row in rows {
                records.push(serde_json::from_str(&row.map_err(|e| self.db(e))?).map_err(corrupt)?);
            }
        }
        Ok(PendingParts { changes, records })
    }

    async fn settle_license_parts(
        &self,
        tenant_id: &str,
        changes: &[(String, String)],
    ) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| self.db(e))?;
        for (key, marker) in changes {
            tx.execute(
                "DELETE FROM license_pending WHERE tenant_id = ?1 AND change_key = ?2 AND marker = ?3",
                params![tenant_id, key, marker],
            )
            .map_err(|e| self.db(e))?;
        }
        tx.commit().map_err(|e| self.db(e))
    }
}

#[async_trait]
impl SubscriptionStore for SqliteStore {
    async fn subscription(
        &self,
        tenant_id: &str,
    ) -> Result<Option<SubscriptionRecord>, StoreError> {
        let body: Option<String> = self
            .conn()
            .query_row(
                "SELECT body FROM change_subscriptions WHERE tenant_id = ?1",
                params![tenant_id.to_ascii_lowercase()],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.db(e))?;
        body.map(|b| serde_json::from_str(&b).map_err(corrupt))
            .transpose()
    }

    async fn save_subscription(&self, record: &SubscriptionRecord) -> Result<(), StoreError> {
        let body = serde_json::to_string(record).map_err(corrupt)?;
        self.conn()
            .execute(
                "INSERT OR REPLACE INTO change_subscriptions (tenant_id, body) VALUES (?1, ?2)",
                params![record.tenant_id.to_ascii_lowercase(), body],
            )
            .map_err(|e| self.db(e))?;
        Ok(())
    }
}

#[async_trait]
impl crate::ports::store::JobStatusStore for SqliteStore {
    async fn job_statuses(&self, tenant_id: &str) -> Result<Vec<JobStatus>, StoreError> {
        let conn = self.conn();
        let mut st = conn
            .prepare_cached("SELECT body FROM job_status WHERE tenant_id = ?1 ORDER BY job")
            .map_err(|e| self.db(e))?;
        let rows = st
            .query_map(params![tenant_id.to_ascii_lowercase()], |r| {
                r.get::<_, String>(0)
            })
            .map_err(|e| self.db(e))?;
        let mut out = Vec::new();
        for body in rows {
            out.push(serde_json::from_str(&body.map_err(|e| self.db(e))?).map_err(corrupt)?);
        }
        Ok(out)
    }

    async fn put_job_status(&self, tenant_id: &str, status: &JobStatus) -> Result<(), StoreError> {
        let body = serde_json::to_string(status).map_err(corrupt)?;
        self.conn()
            .execute(
                "INSERT OR REPLACE INTO job_status (tenant_id, job, body) VALUES (?1, ?2, ?3)",
                params![tenant_id.to_ascii_lowercase(), status.job.as_str(), body],
            )
            .map_err(|e| self.db(e))?;
        Ok(())
    }
}

#[async_trait]
impl crate::ports::store::MailboxPurposeStore for SqliteStore {
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
    > {
        let conn = self.conn();
        let mut st = conn
            .prepare_cached(
                "SELECT body FROM mailbox_purposes WHERE tenant_id = ?1 AND user_id = ?2",
            )
            .map_err(|e| self.db(e))?;
        let mut out = std::collections::HashMap::new();
        for id in user_ids {
            let body: Option<String> = st
                .query_row(params![tenant_id.to_ascii_lowercase(), id], |r| r.get(0))
                .optional()
                .map_err(|e| self.db(e))?;
            if let Some(b) = body {
                let r: crate::ports::store::PurposeRecord =
                    serde_json::from_str(&b).map_err(corrupt)?;
                out.insert(id.clone(), (r.purpose, r.read_at));
            }
        }
        Ok(out)
    }

    async fn put_mailbox_purposes(
        &self,
        tenant_id: &str,
        read: &[(String, Option<crate::domain::kinds::MailboxPurpose>)],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| self.db(e))?;
        for (id, purpose) in read {
            let body = serde_json::to_string(&crate::ports::store::PurposeRecord {
                purpose: *purpose,
                read_at: at,
            })
            .map_err(corrupt)?;
            tx.execute(
                "INSERT OR REPLACE INTO mailbox_purposes (tenant_id, user_id, body) VALUES (?1, ?2, ?3)",
                params![tenant_id.to_ascii_lowercase(), id, body],
            )
            .map_err(|e| self.db(e))?;
        }
        tx.commit().map_err(|e| self.db(e))
    }
}
