//! audit-fetch's book-keeping in SQLite: cursors, the record and blob index, archive-object claims and gaps.

use super::*;

#[async_trait]
impl AuditState for SqliteStore {
    async fn cursor(
        &self,
        name: &str,
    ) -> Result<Option<chrono::DateTime<chrono::Utc>>, StoreError> {
        let v: Option<String> = self
            .conn()
            .query_row(
                "SELECT value FROM cursors WHERE name = ?1",
                params![name],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.db(e))?;
        v.map(|v| parse_ts(&v)).transpose()
    }

    async fn set_cursor(
        &self,
        name: &str,
        value: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "INSERT OR REPLACE INTO cursors (name, value) VALUES (?1, ?2)",
                params![name, ts(&value)],
            )
            .map_err(|e| self.db(e))?;
        Ok(())
    }

    async fn seen_records(&self, ids: &[String]) -> Result<HashSet<String>, StoreError> {
        let conn = self.conn();
        let mut out = HashSet::new();
        // One query per 500 ids instead of one per id.
        for chunk in ids.chunks(500) {
            let marks = vec!["?"; chunk.len()].join(",");
            let mut st = conn
                .prepare_cached(&format!(
                    "SELECT record_id FROM audit_seen WHERE record_id IN ({marks})"
                ))
                .map_err(|e| self.db(e))?;
            let rows = st
                .query_map(rusqlite::params_from_iter(chunk.iter()), |r| {
                    r.get::<_, String>(0)
                })
                .map_err(|e| self.db(e))?;
            for r in rows {
                out.insert(r.map_err(|e| self.db(e))?);
            }
        }
        Ok(out)
    }

    async fn claim_records(
        &self,
        object_key: &str,
        ids: &[String],
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<String>, StoreError> {
        // One transaction: an id enters the index as this object's (one write per record, as plain indexing) and
        // the object's intent lists the ids it claimed, so a crash leaves both or neither.
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.db(e))?;
        let mut claimed = Vec::with_capacity(ids.len());
        {
            let mut claim = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO audit_seen (record_id, seen_at) VALUES (?1, ?2)",
                )
                .map_err(|e| self.db(e))?;
            let at = ts(&now);
            for id in ids {
                if claim.execute(params![id, at]).map_err(|e| self.db(e))? == 1 {
                    claimed.push(id.clone());
                }
            }
        }
        if !claimed.is_empty() {
            let list = serde_json::to_string(&claimed).map_err(corrupt)?;
            tx.execute(
                "INSERT OR REPLACE INTO audit_objects (object_key, record_ids) VALUES (?1, ?2)",
                params![object_key, list],
            )
            .map_err(|e| self.db(e))?;
        }
        tx.commit().map_err(|e| self.db(e))?;
        Ok(claimed)
    }

    async fn confirm_object(
        &self,
        object_key: &str,
        _now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), StoreError> {
        // The ids are already in the index: confirming only drops the intent.
        self.conn()
            .execute(
                "DELETE FROM audit_objects WHERE object_key = ?1",
                params![object_key],
            )
            .map_err(|e| self.db(e))?;
        Ok(())
    }

    async fn unconfirmed_objects(&self) -> Result<Vec<String>, StoreError> {
        let conn = self.conn();
        let mut st = conn
            .prepare("SELECT object_key FROM audit_objects ORDER BY object_key")
            .map_err(|e| self.db(e))?;
        let rows = st.query_map([], |r| r.get(0)).map_err(|e| self.db(e))?;
        rows.collect::<Result<Vec<String>, _>>()
            .map_err(|e| self.db(e))
    }

    async fn release_object(&self, object_key: &str) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.db(e))?;
        let list: Option<String> = tx
            .query_row(
                "SELECT record_ids FROM audit_objects WHERE object_key = ?1",
                params![object_key],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.db(e))?;
        let ids: Vec<String> = list
            .map(|l| serde_json::from_str(&l))
            .transpose()
            .map_err(corrupt)?
            .unwrap_or_default();
        {
            let mut forget = tx
                .prepare("DELETE FROM audit_seen WHERE record_id = ?1")
                .map_err(|e| self.db(e))?;
            for id in &ids {
                forget.execute(params![id]).map_err(|e| self.db(e))?;
            }
        }
        tx.execute(
            "DELETE FROM audit_objects WHERE object_key = ?1",
            params![object_key],
        )
        .map_err(|e| self.db(e))?;
        tx.commit().map_err(|e| self.db(e))
    }

    async fn mark_records(
        &self,
        ids: &[String],
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| self.db(e))?;
        {
            let mut st = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO audit_seen (record_id, seen_at) VALUES (?1, ?2)",
                )
                .map_err(|e| self.db(e))?;
            let at = ts(&now);
            for id in ids {
                st.execute(params![id, at]).map_err(|e| self.db(e))?;
            }
        }
        tx.commit().map_err(|e| self.db(e))
    }

    async fn blob_done(&self, content_id: &str) -> Result<bool, StoreError> {
        self.conn()
            .prepare_cached("SELECT 1 FROM blob_seen WHERE content_id = ?1")
            .map_err(|e| self.db(e))?
            .exists(params![content_id])
            .map_err(|e| self.db(e))
    }

    async fn mark_blob(
        &self,
        content_id: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "INSERT OR IGNORE INTO blob_seen (content_id, seen_at) VALUES (?1, ?2)",
                params![content_id, ts(&now)],
            )
            .map_err(|e| self.db(e))?;
        Ok(())
    }

    async fn expire_index(&self, before: chrono::DateTime<chrono::Utc>) -> Result<(), StoreError> {
        let conn = self.conn();
        conn.execute(
            "DELETE FROM audit_seen WHERE seen_at < ?1",
            params![ts(&before)],
        )
        .map_err(|e| self.db(e))?;
        conn.execute(
            "DELETE FROM blob_seen WHERE seen_at < ?1",
            params![ts(&before)],
        )
        .map_err(|e| self.db(e))?;
        Ok(())
    }

    async fn record_gap(&self, gap: &Gap) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "INSERT OR REPLACE INTO audit_gaps (source, from_at, to_at) VALUES (?1, ?2, ?3)",
                params![gap.source, ts(&gap.from), ts(&gap.to)],
            )
            .map_err(|e| self.db(e))?;
        Ok(())
    }

    async fn gaps(&self) -> Result<Vec<Gap>, StoreError> {
        let conn = self.conn();
        let mut st = conn
            .prepare("SELECT source, from_at, to_at FROM audit_gaps ORDER BY from_at")
            .map_err(|e| self.db(e))?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .map_err(|e| self.db(e))?;
        let mut out = Vec::new();
        for r in rows {
            let (source, from, to) = r.map_err(|e| self.db(e))?;
            out.push(Gap {
                source,
                from: parse_ts(&from)?,
                to: parse_ts(&to)?,
            });
        }
        Ok(out)
    }
}
