//! The embedded SQLite state store (`LICENSEWATCH_STATE=sqlite:PATH`). One connection behind a mutex: runs are
//! short and sequential, and SQLite's WAL mode lets a second process read while one writes.

mod audit;
mod group_commit;
mod notices;
mod remediation;
mod state;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::domain::kinds::RemediationStatus;
use crate::domain::license_event::{LicenseEvent, LicenseRecord};
use crate::domain::reclaim::ReclaimReport;
use crate::domain::snapshot::{PreviousRun, Snapshot};
use crate::ports::store::{
    Admitted, Alert, AuditState, Claim, Gap, GraceCase, HistoryEntry, Lease, LedgerEntry,
    LedgerStatus, PendingParts, RemediationIntake, RemediationQueue, RemediationRecord,
    RemediationRequest, RemediationStore, RunRecord, StoreError,
};
use crate::ports::store::{
    AlertStore, EncodedSnapshot, GraceStore, HistoryStore, LeaseStore, LicenseEventStore,
    NoticeLedger, RunStore,
};

/// SQLite-backed state store and remediation queue.
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    /// Named in every error, so a read-only or missing database says which file.
    path: String,
    /// The webhook's admissions and queued requests, group-committed (started on first use).
    writer: OnceLock<Sender<group_commit::Job>>,
    /// Checkpoints a file database in the background (none in memory).
    checkpointer: Option<Checkpointer>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteStore")
    }
}

/// A run that wrote much copies it into the database file and empties the write-ahead log on its way out, so the
/// next run (often another process, an hour later) does not pay for it: a log left behind is read whole and
/// checksummed by the next process to open the database, and copied by whichever of its commits crosses
/// `wal_autocheckpoint` (a first run over 100,000 users leaves some 40 MB, which cost the next run a quarter of its
/// time). A smaller log is left for the background checkpoints of the next run: copying it here would cost this run
/// more (the copy and its syncs) than recovering it costs the next (so the background connection stays open until
/// after this one: SQLite checkpoints when the last connection closes). It never waits: when another process is
/// using the database, what that process still reads stays in the log for a later checkpoint.
impl Drop for SqliteStore {
    fn drop(&mut self) {
        let Some(checkpointer) = self.checkpointer.take_if(|c| c.log_len() >= LARGE_LOG) else {
            return;
        };
        // The background checkpoint would make this one busy: it is stopped first.
        checkpointer.stop();
        let conn = self.conn();
        let _ = conn.busy_timeout(std::time::Duration::ZERO);
        let result = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)");
        tracing::debug!(
            ok = result.is_ok(),
            "write-ahead log copied into the database"
        );
    }
}

/// The size of a write-ahead log worth copying into the database before the process ends (bytes): the size at which
/// the next run's first commit would copy it (`wal_autocheckpoint` pages of 4 KiB). An incremental run over 100,000
/// users leaves about 11 MB, which would cost it a quarter more time to copy; a first run about 40 MB.
const LARGE_LOG: u64 = 8000 * 4096;

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

/// Copies the write-ahead log into the database from a connection of its own, a few times a second, so that writers
/// never stop for a checkpoint (a passive checkpoint runs beside them). Stopped, and waited for, when the store is
/// dropped.
struct Checkpointer {
    stop: Sender<()>,
    thread: std::thread::JoinHandle<()>,
    /// The database's write-ahead log.
    log: std::path::PathBuf,
}

impl Checkpointer {
    /// Starts checkpointing `path`; `None` when no connection or thread can be had (the writers' own checkpoints
    /// remain).
    fn start(path: &Path) -> Option<Self> {
        let conn = Connection::open(path).ok()?;
        let _ = conn.busy_timeout(std::time::Duration::from_millis(50));
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let every = std::time::Duration::from_millis(100);
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(every)
                {
                    let _ = conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE)");
                }
            })
            .ok()?;
        let mut log = path.as_os_str().to_owned();
        log.push("-wal");
        Some(Self {
            stop,
            thread,
            log: log.into(),
        })
    }

    /// The write-ahead log's size in bytes (0 when there is none).
    fn log_len(&self) -> u64 {
        std::fs::metadata(&self.log).map_or(0, |m| m.len())
    }

    /// Stops the thread once its checkpoint in progress, if any, is done.
    fn stop(self) {
        drop(self.stop);
        let _ = self.thread.join();
    }
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
PRAGMA busy_timeout = 5000;
-- 16 MiB of page cache (the default 2 MiB makes every random index insert of a busy webhook a read from the OS).
PRAGMA cache_size = -16384;
-- A file database is checkpointed by a thread of its own (see `Checkpointer`); this is the backstop.
PRAGMA wal_autocheckpoint = 8000;
CREATE TABLE IF NOT EXISTS check_runs (
    tenant_id TEXT NOT NULL, run_at TEXT NOT NULL, body BLOB NOT NULL, PRIMARY KEY (tenant_id, run_at));
CREATE TABLE IF NOT EXISTS mailbox_purposes (
    tenant_id TEXT NOT NULL, user_id TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (tenant_id, user_id));
CREATE TABLE IF NOT EXISTS seat_counts (
    tenant_id TEXT NOT NULL, run_at TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (tenant_id, run_at));
CREATE TABLE IF NOT EXISTS job_status (
    tenant_id TEXT NOT NULL, job TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (tenant_id, job));
CREATE TABLE IF NOT EXISTS change_subscriptions (
    tenant_id TEXT NOT NULL PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS reclaim_reports (
    tenant_id TEXT NOT NULL, generated_at TEXT NOT NULL, body BLOB NOT NULL, PRIMARY KEY (tenant_id, generated_at));
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
-- The hourly budget's counts per minute: checking it reads at most 61 rows, however many actions the hour holds.
CREATE TABLE IF NOT EXISTS action_minutes (tenant_id TEXT NOT NULL, minute INTEGER NOT NULL, used INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, minute)) WITHOUT ROWID;
-- A database from before the per-minute counts: count its log once.
INSERT INTO action_minutes (tenant_id, minute, used)
    SELECT tenant_id, CAST(strftime('%s', at) AS INTEGER) / 60, COUNT(*) FROM action_log
    WHERE NOT EXISTS (SELECT 1 FROM action_minutes) AND strftime('%s', at) IS NOT NULL GROUP BY 1, 2;
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
CREATE TABLE IF NOT EXISTS audit_seen (record_id TEXT PRIMARY KEY, seen_at TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS blob_seen (content_id TEXT PRIMARY KEY, seen_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS audit_gaps (source TEXT NOT NULL, from_at TEXT NOT NULL, to_at TEXT NOT NULL, PRIMARY KEY (source, from_at));
CREATE TABLE IF NOT EXISTS action_budget (tenant_id TEXT NOT NULL, bucket TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (tenant_id, bucket));
CREATE TABLE IF NOT EXISTS webhook_ids (webhook_id TEXT PRIMARY KEY, remediation_id TEXT NOT NULL, seen_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS remediation_queue (
    remediation_id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, body TEXT NOT NULL, taken INTEGER NOT NULL DEFAULT 0);
";

/// Applies [`SCHEMA`] (idempotent). Two runs opening a new database at once both want it in WAL mode, and SQLite
/// answers one of them "database is locked" at once, without waiting (its busy timeout does not cover the switch):
/// that one waits and tries again, for up to 5 s.
fn apply_schema(conn: &Connection) -> Result<(), rusqlite::Error> {
    let mut tries = 0;
    loop {
        match conn.execute_batch(SCHEMA) {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if tries < 50
                    && matches!(
                        e.code,
                        rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                    ) =>
            {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            other => return other,
        }
    }
}

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
            StoreError::Busy(m) => StoreError::Busy(format!("'{}': {m}", path.display())),
            other => other,
        };
        let conn = Connection::open(path).map_err(named)?;
        apply_schema(&conn).map_err(named)?;
        let conn = Arc::new(Mutex::new(conn));
        Ok(Self {
            conn,
            path: path.display().to_string(),
            writer: OnceLock::new(),
            checkpointer: Checkpointer::start(path),
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

    /// Hands a write to the group-commit writer and waits for the commit that holds it.
    async fn grouped<T>(
        &self,
        job: impl FnOnce(tokio::sync::oneshot::Sender<Result<T, StoreError>>) -> group_commit::Job,
    ) -> Result<T, StoreError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.writer
            .get_or_init(|| group_commit::start(self.conn.clone()))
            .send(job(reply))
            .map_err(|_| self.stopped())?;
        answer
            .await
            .map_err(|_| self.stopped())?
            .map_err(|e| self.named(e))
    }

    fn stopped(&self) -> StoreError {
        StoreError::Database(format!("'{}': the SQLite writer thread stopped", self.path))
    }

    /// The database's path in an error from the writer thread.
    fn named(&self, e: StoreError) -> StoreError {
        match e {
            StoreError::Busy(m) => StoreError::Busy(format!("'{}': {m}", self.path)),
            StoreError::Database(m) => StoreError::Database(format!("'{}': {m}", self.path)),
            other => other,
        }
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

fn parse_ts(s: &str) -> Result<chrono::DateTime<chrono::Utc>, StoreError> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.to_utc())
        .map_err(corrupt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_that_open_a_new_database_at_the_same_moment_all_get_it() {
        for round in 0..20 {
            let dir = tempfile::tempdir().expect("tmp");
            let path = dir.path().join(format!("lw{round}.db"));
            let start = std::sync::Arc::new(std::sync::Barrier::new(3));
            let opened: Vec<_> = (0..3)
                .map(|_| {
                    let (path, start) = (path.clone(), start.clone());
                    std::thread::spawn(move || {
                        start.wait();
                        SqliteStore::open(&path).map(drop)
                    })
                })
                .collect();
            for run in opened {
                let result = run.join().expect("thread");
                assert!(result.is_ok(), "round {round}: {:?}", result.err());
            }
        }
    }
}
