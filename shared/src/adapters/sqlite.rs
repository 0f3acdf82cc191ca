//! The embedded SQLite state store (`LICENSEWATCH_STATE=sqlite:PATH`). One connection behind a mutex: runs are
//! short and sequential, and SQLite's WAL mode lets a second process read while one writes.

use std::path::Path;
use std::sync::Mutex;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use std::collections::{HashMap, HashSet};

use crate::domain::kinds::RemediationStatus;
use crate::domain::license_event::{LicenseEvent, LicenseRecord};
use crate::domain::snapshot::{PreviousRun, Snapshot};
use crate::ports::store::{
    Admitted, Alert, AuditState, Claim, Gap, GraceCase, HistoryEntry, Lease, LedgerEntry,
    LedgerStatus, PendingParts, RemediationQueue, RemediationRecord, RemediationRequest,
    RemediationStore, RunRecord, StateStore, StoreError,
};

/// SQLite-backed [`StateStore`] and [`RemediationQueue`].
pub struct SqliteStore {
    conn: Mutex<Connection>,
    /// Named in every error, so a read-only or missing database says which file.
    path: String,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteStore")
    }
}

impl SqliteStore {
    fn db(&self, e: rusqlite::Error) -> StoreError {
        match db(e) {
            StoreError::Busy(m) => StoreError::Busy(format!("'{}': {m}", self.path)),
            StoreError::Database(m) => StoreError::Database(format!("'{}': {m}", self.path)),
            other => other,
        }
    }
}

fn db(e: rusqlite::Error) -> StoreError {
    match e {
        rusqlite::Error::SqliteFailure(code, _)
            if matches!(
                code.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ) =>
        {
            StoreError::Busy(e.to_string())
        }
        other => StoreError::Database(other.to_string()),
    }
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
PRAGMA busy_timeout = 5000;
CREATE TABLE IF NOT EXISTS check_runs (
    tenant_id TEXT NOT NULL, run_at TEXT NOT NULL, body BLOB NOT NULL, PRIMARY KEY (tenant_id, run_at));
CREATE TABLE IF NOT EXISTS snapshots (
    tenant_id TEXT NOT NULL, taken_at TEXT NOT NULL, body BLOB NOT NULL, PRIMARY KEY (tenant_id, taken_at));
CREATE TABLE IF NOT EXISTS license_history (
    tenant_id TEXT NOT NULL, user_id TEXT NOT NULL, upn TEXT NOT NULL, sku_id TEXT NOT NULL,
    change TEXT NOT NULL, at TEXT NOT NULL, baseline INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS license_history_user ON license_history (tenant_id, user_id);
CREATE TABLE IF NOT EXISTS grace_cases (
    case_id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, user_id TEXT NOT NULL, open INTEGER NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS license_events (
    tenant_id TEXT NOT NULL, record_key TEXT NOT NULL, at TEXT NOT NULL, user_id TEXT, upn TEXT, body TEXT NOT NULL,
    PRIMARY KEY (tenant_id, record_key));
CREATE TABLE IF NOT EXISTS license_parts (
    tenant_id TEXT NOT NULL, change_key TEXT NOT NULL, record_id TEXT NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (tenant_id, change_key, record_id));
CREATE TABLE IF NOT EXISTS license_pending (
    tenant_id TEXT NOT NULL, change_key TEXT NOT NULL, marker TEXT NOT NULL, PRIMARY KEY (tenant_id, change_key));
CREATE TABLE IF NOT EXISTS action_log (tenant_id TEXT NOT NULL, remediation_id TEXT NOT NULL, at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, remediation_id));
CREATE INDEX IF NOT EXISTS action_log_time ON action_log (tenant_id, at);
CREATE TABLE IF NOT EXISTS license_history_keys (tenant_id TEXT NOT NULL, identity TEXT NOT NULL,
    PRIMARY KEY (tenant_id, identity));
CREATE TABLE IF NOT EXISTS leases (name TEXT PRIMARY KEY, owner TEXT NOT NULL, expires_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS audit_objects (object_key TEXT PRIMARY KEY, record_ids TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS notice_ledger (
    key TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, case_id TEXT NOT NULL, audience TEXT NOT NULL,
    status TEXT NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS notice_ledger_case ON notice_ledger (tenant_id, case_id);
CREATE TABLE IF NOT EXISTS alerts (
    alert_id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, condition TEXT NOT NULL, open INTEGER NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS remediations (
    remediation_id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, ticket_key TEXT, created_at TEXT NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS remediations_ticket ON remediations (ticket_key);
CREATE INDEX IF NOT EXISTS remediations_tenant_time ON remediations (tenant_id, created_at);
CREATE TABLE IF NOT EXISTS cursors (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS audit_seen (record_id TEXT PRIMARY KEY, seen_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS blob_seen (content_id TEXT PRIMARY KEY, seen_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS audit_gaps (source TEXT NOT NULL, from_at TEXT NOT NULL, to_at TEXT NOT NULL, PRIMARY KEY (source, from_at));
CREATE TABLE IF NOT EXISTS action_budget (tenant_id TEXT NOT NULL, bucket TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (tenant_id, bucket));
CREATE TABLE IF NOT EXISTS webhook_ids (webhook_id TEXT PRIMARY KEY, remediation_id TEXT NOT NULL, seen_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS remediation_queue (
    remediation_id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, body TEXT NOT NULL, taken INTEGER NOT NULL DEFAULT 0);
";

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Database(format!("cannot create '{}': {e}", dir.display()))
            })?;
        }
        let named = |e: rusqlite::Error| match db(e) {
            StoreError::Database(m) => StoreError::Database(format!("'{}': {m}", path.display())),
            other => other,
        };
        let conn = Connection::open(path).map_err(named)?;
        conn.execute_batch(SCHEMA).map_err(named)?;
        Ok(Self {
            conn: Mutex::new(conn),
            path: path.display().to_string(),
        })
    }

    /// An in-memory database (tests).
    pub fn in_memory() -> Result<Self, StoreError> {
        let conn = Connection::open_in_memory().map_err(db)?;
        conn.execute_batch(SCHEMA).map_err(db)?;
        Ok(Self {
            conn: Mutex::new(conn),
            path: ":memory:".into(),
        })
    }

    fn apply_alerts(
        &self,
        tenant_id: &str,
        open: &[Alert],
        current: &[Alert],
    ) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| self.db(e))?;
        for a in open {
            if !current.iter().any(|c| c.condition == a.condition) {
                tx.execute(
                    "UPDATE alerts SET open = 0 WHERE alert_id = ?1",
                    params![a.alert_id],
                )
                .map_err(|e| self.db(e))?;
            }
        }
        for c in current {
            if !open.iter().any(|a| a.condition == c.condition) {
                let body = serde_json::to_string(c).map_err(corrupt)?;
                tx.execute(
                    "INSERT OR IGNORE INTO alerts (alert_id, tenant_id, condition, open, body) VALUES (?1,?2,?3,1,?4)",
                    params![c.alert_id, tenant_id, c.condition, body],
                )
                .map_err(|e| self.db(e))?;
            }
        }
        tx.commit().map_err(|e| self.db(e))
    }

    fn alerts_where(&self, tenant_id: &str, open_only: bool) -> Result<Vec<Alert>, StoreError> {
        let conn = self.conn();
        let mut st = conn
            .prepare("SELECT body FROM alerts WHERE tenant_id = ?1 AND (open = 1 OR ?2 = 0) ORDER BY alert_id")
            .map_err(|e| self.db(e))?;
        let rows = st
            .query_map(params![tenant_id, open_only], |r| r.get::<_, String>(0))
            .map_err(|e| self.db(e))?;
        let mut out = Vec::new();
        for r in rows {
            out.push(serde_json::from_str(&r.map_err(|e| self.db(e))?).map_err(corrupt)?);
        }
        Ok(out)
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A stored notice may be claimed by `wanted` unless it is sent or another run claimed it after `abandoned_up_to`.
fn claimable(
    current: &LedgerEntry,
    wanted: &LedgerEntry,
    abandoned_up_to: chrono::DateTime<chrono::Utc>,
) -> bool {
    match current.status {
        LedgerStatus::Sent => false,
        LedgerStatus::Intended => true,
        LedgerStatus::Sending => {
            current.claimed_by == wanted.claimed_by || current.updated_at <= abandoned_up_to
        }
    }
}

fn ledger_status_text(status: LedgerStatus) -> &'static str {
    match status {
        LedgerStatus::Intended => "intended",
        LedgerStatus::Sending => "sending",
        LedgerStatus::Sent => "sent",
    }
}

fn ts(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[async_trait]
impl StateStore for SqliteStore {
    async fn previous_run(&self, tenant_id: &str) -> Result<Option<PreviousRun>, StoreError> {
        let blob: Option<Vec<u8>> = self
            .conn()
            .query_row(
                "SELECT body FROM snapshots WHERE tenant_id = ?1 ORDER BY taken_at DESC LIMIT 1",
                params![tenant_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.db(e))?;
        let Some(blob) = blob else { return Ok(None) };
        crate::ports::store::gunzip_json(&blob).map(Some)
    }

    async fn save_run(&self, run: &RunRecord) -> Result<(), StoreError> {
        let blob = crate::ports::store::gzip_json(run)?;
        self.conn()
            .execute(
                "INSERT OR REPLACE INTO check_runs (tenant_id, run_at, body) VALUES (?1, ?2, ?3)",
                params![run.tenant_id, ts(&run.run_at), blob],
            )
            .map_err(|e| self.db(e))?;
        Ok(())
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

    async fn save_snapshot(&self, snapshot: &Snapshot) -> Result<(), StoreError> {
        let blob = crate::ports::store::gzip_json(snapshot)?;
        self.conn()
            .execute(
                "INSERT OR REPLACE INTO snapshots (tenant_id, taken_at, body) VALUES (?1, ?2, ?3)",
                params![snapshot.tenant_id, ts(&snapshot.taken_at), blob],
            )
            .map_err(|e| self.db(e))?;
        Ok(())
    }

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
        let conn = self.conn();
        let mut st = conn
            .prepare(
                "SELECT user_id, upn, sku_id, change, at, baseline FROM license_history
                 WHERE tenant_id = ?1 AND (user_id = ?2 COLLATE NOCASE OR upn = ?2 COLLATE NOCASE) ORDER BY at, rowid",
            )
            .map_err(|e| self.db(e))?;
        let rows = st
            .query_map(params![tenant_id, user], |r| {
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

    async fn sync_alerts(
        &self,
        tenant_id: &str,
        current: &[Alert],
    ) -> Result<Vec<Alert>, StoreError> {
        let open = self.open_alerts(tenant_id).await?;
        self.apply_alerts(tenant_id, &open, current)?;
        self.open_alerts(tenant_id).await
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

    async fn open_alerts(&self, tenant_id: &str) -> Result<Vec<Alert>, StoreError> {
        self.alerts_where(tenant_id, true)
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
impl RemediationQueue for SqliteStore {
    async fn enqueue(&self, request: &RemediationRequest) -> Result<(), StoreError> {
        let body = serde_json::to_string(request).map_err(corrupt)?;
        self.conn()
            .prepare_cached("INSERT OR IGNORE INTO remediation_queue (remediation_id, tenant_id, body) VALUES (?1, ?2, ?3)")
            .map_err(|e| self.db(e))?
            .execute(params![request.remediation_id, request.tenant_id, body])
            .map_err(|e| self.db(e))?;
        Ok(())
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
        let now = record.created_at;
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.db(e))?;
        if let Some(key) = webhook_key {
            let seen: Option<String> = tx
                .prepare_cached("SELECT remediation_id FROM webhook_ids WHERE webhook_id = ?1")
                .map_err(|e| self.db(e))?
                .query_row(params![key], |r| r.get(0))
                .optional()
                .map_err(|e| self.db(e))?;
            if let Some(id) = seen {
                return Ok(Admitted::ReplayedWebhook(id));
            }
        }
        if let Some(ticket) = &record.ticket_key {
            let since = ts(&(now - chrono::Duration::hours(24)));
            let first: Option<String> = tx
                .prepare_cached(
                    "SELECT body FROM remediations WHERE ticket_key = ?1 AND created_at > ?2 ORDER BY created_at LIMIT 1",
                )
                .map_err(|e| self.db(e))?
                .query_row(params![ticket, since], |r| r.get(0))
                .optional()
                .map_err(|e| self.db(e))?;
            if let Some(body) = first {
                return Ok(Admitted::SameTicket(Box::new(
                    serde_json::from_str(&body).map_err(corrupt)?,
                )));
            }
        }
        let tenant = &record.request.tenant_id;
        // The budget is a rolling 60 minutes, shared by every entry point that admits a remediation.
        let since = ts(&(now - chrono::Duration::minutes(60)));
        let used: i64 = tx
            .prepare_cached("SELECT COUNT(*) FROM action_log WHERE tenant_id = ?1 AND at > ?2")
            .map_err(|e| self.db(e))?
            .query_row(params![tenant, since], |r| r.get(0))
            .map_err(|e| self.db(e))?;
        if used >= i64::from(max_per_hour) {
            return Ok(Admitted::OverBudget);
        }
        tx.prepare_cached(
            "INSERT INTO action_log (tenant_id, remediation_id, at) VALUES (?1, ?2, ?3)",
        )
        .map_err(|e| self.db(e))?
        .execute(params![tenant, record.request.remediation_id, ts(&now)])
        .map_err(|e| self.db(e))?;
        if let Some(key) = webhook_key {
            tx.prepare_cached(
                "INSERT INTO webhook_ids (webhook_id, remediation_id, seen_at) VALUES (?1, ?2, ?3)",
            )
            .map_err(|e| self.db(e))?
            .execute(params![key, record.request.remediation_id, ts(&now)])
            .map_err(|e| self.db(e))?;
        }
        let body = serde_json::to_string(record).map_err(corrupt)?;
        tx.prepare_cached(
            "INSERT INTO remediations (remediation_id, tenant_id, ticket_key, created_at, body) VALUES (?1,?2,?3,?4,?5)",
        )
        .map_err(|e| self.db(e))?
        .execute(params![record.request.remediation_id, tenant, record.ticket_key, ts(&now), body])
        .map_err(|e| self.db(e))?;
        tx.commit().map_err(|e| self.db(e))?;
        Ok(Admitted::New)
    }
}

fn parse_ts(s: &str) -> Result<chrono::DateTime<chrono::Utc>, StoreError> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.to_utc())
        .map_err(corrupt)
}

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
