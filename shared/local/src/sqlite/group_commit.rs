//! Group commits for the webhook's admissions: one writer thread, many waiters. Each admission (replay check,
//! same-ticket check, budget, record) and each queued request keeps its own all-or-nothing unit (a savepoint), but
//! the writer folds every one that is waiting into one transaction and one commit, so the commit's cost is shared
//! and no async worker blocks on the database. A waiter is answered only after the commit that holds its write;
//! if that commit fails, every waiter in it gets the error (none of their writes happened). An admission and the
//! queueing of its request are one unit: the endpoint waits for one commit, and a request is never admitted
//! without being queued.

use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::{corrupt, db, ts};
use crate::ports::store::{Admitted, RemediationRecord, RemediationRequest, StoreError};

/// The most units one commit holds (a bound on how long the first waiter of a batch waits).
const MAX_BATCH: usize = 512;

/// A write for the writer thread.
pub(super) enum Job {
    /// Admit a remediation request, and queue it in the same unit when `queue` is set.
    Admit {
        webhook_key: Option<String>,
        record: Box<RemediationRecord>,
        max_per_hour: u32,
        queue: bool,
        reply: tokio::sync::oneshot::Sender<Result<Admitted, StoreError>>,
    },
    /// Put a request on the local remediation queue.
    Enqueue {
        request: Box<RemediationRequest>,
        reply: tokio::sync::oneshot::Sender<Result<(), StoreError>>,
    },
}

/// Starts the writer over the store's connection; it stops when the last sender is dropped.
pub(super) fn start(conn: Arc<Mutex<Connection>>) -> Sender<Job> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("sqlite-group-commit".into())
        .spawn(move || run(&conn, &rx))
        .map_err(|e| tracing::error!("cannot start the SQLite writer thread: {e}"))
        .ok();
    tx
}

fn run(conn: &Mutex<Connection>, jobs: &Receiver<Job>) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        let mut conn = conn.lock().unwrap_or_else(|p| p.into_inner());
        commit(&mut conn, batch);
    }
}

/// Answers a waiter once the commit is known: its own result when the commit held, else the commit's error.
type Answer = Box<dyn FnOnce(&Result<(), StoreError>)>;

fn answer<T: 'static>(
    reply: tokio::sync::oneshot::Sender<Result<T, StoreError>>,
    result: Result<T, StoreError>,
) -> Answer {
    Box::new(move |committed| {
        let _ = reply.send(committed.clone().and(result));
    })
}

impl Job {
    /// Runs the job's unit in the batch's transaction (or fails it with the error that kept the transaction from
    /// beginning).
    fn run(self, tx: Result<&rusqlite::Transaction<'_>, &StoreError>) -> Answer {
        let tx = tx.map_err(Clone::clone);
        match self {
            Job::Admit {
                webhook_key,
                record,
                max_per_hour,
                queue,
                reply,
            } => {
                let result = tx.and_then(|tx| {
                    unit(tx, |c| {
                        let admitted = admit(c, webhook_key.as_deref(), &record, max_per_hour)?;
                        if queue && admitted == Admitted::New {
                            enqueue(c, &record.request)?;
                        }
                        Ok(admitted)
                    })
                });
                answer(reply, result)
            }
            // One statement: atomic without a savepoint.
            Job::Enqueue { request, reply } => {
                answer(reply, tx.and_then(|tx| enqueue(tx, &request)))
            }
        }
    }
}

fn commit(conn: &mut Connection, batch: Vec<Job>) {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db);
    let answers: Vec<Answer> = batch.into_iter().map(|job| job.run(tx.as_ref())).collect();
    let committed = tx.and_then(|tx| tx.commit().map_err(db));
    for answer in answers {
        answer(&committed);
    }
}

/// One all-or-nothing unit inside the batch's transaction.
fn unit<T>(
    tx: &rusqlite::Transaction<'_>,
    work: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let run = |sql: &str| {
        tx.prepare_cached(sql)
            .and_then(|mut s| s.execute([]))
            .map_err(db)
    };
    run("SAVEPOINT unit")?;
    match work(tx) {
        Ok(v) => {
            run("RELEASE unit")?;
            Ok(v)
        }
        Err(e) => {
            run("ROLLBACK TO unit")?;
            run("RELEASE unit")?;
            Err(e)
        }
    }
}

/// Replay, same ticket within 24 hours, the rolling hourly budget, then the record: the admission's checks and
/// writes, seeing every unit committed or batched before it.
pub(super) fn admit(
    c: &Connection,
    webhook_key: Option<&str>,
    record: &RemediationRecord,
    max_per_hour: u32,
) -> Result<Admitted, StoreError> {
    let now = record.created_at;
    if let Some(key) = webhook_key {
        let seen: Option<String> = c
            .prepare_cached("SELECT remediation_id FROM webhook_ids WHERE webhook_id = ?1")
            .map_err(db)?
            .query_row(params![key], |r| r.get(0))
            .optional()
            .map_err(db)?;
        if let Some(id) = seen {
            return Ok(Admitted::ReplayedWebhook(id));
        }
    }
    if let Some(ticket) = &record.ticket_key {
        let since = ts(&(now - chrono::Duration::hours(24)));
        let first: Option<String> = c
            .prepare_cached(
                "SELECT body FROM remediations WHERE ticket_key = ?1 AND created_at > ?2 ORDER BY created_at LIMIT 1",
            )
            .map_err(db)?
            .query_row(params![ticket, since], |r| r.get(0))
            .optional()
            .map_err(db)?;
        if let Some(body) = first {
            return Ok(Admitted::SameTicket(Box::new(
                serde_json::from_str(&body).map_err(corrupt)?,
            )));
        }
    }
    let tenant = &record.request.tenant_id;
    // The budget is a rolling 60 minutes, shared by every entry point that admits a remediation, counted per
    // minute: the minute sixty minutes back counts whole, so the budget is never exceeded (an action frees its place
    // up to a minute late).
    let minute = now.timestamp().div_euclid(60);
    let used: i64 = c
        .prepare_cached(
            "SELECT COALESCE(SUM(used), 0) FROM action_minutes WHERE tenant_id = ?1 AND minute >= ?2",
        )
        .map_err(db)?
        .query_row(params![tenant, minute - 60], |r| r.get(0))
        .map_err(db)?;
    if used >= i64::from(max_per_hour) {
        return Ok(Admitted::OverBudget);
    }
    c.prepare_cached(
        "INSERT INTO action_minutes (tenant_id, minute, used) VALUES (?1, ?2, 1) \
         ON CONFLICT (tenant_id, minute) DO UPDATE SET used = used + 1",
    )
    .map_err(db)?
    .execute(params![tenant, minute])
    .map_err(db)?;
    let id = &record.request.remediation_id;
    if let Some(key) = webhook_key {
        c.prepare_cached(
            "INSERT INTO webhook_ids (webhook_id, remediation_id, seen_at) VALUES (?1, ?2, ?3)",
        )
        .map_err(db)?
        .execute(params![key, id, ts(&now)])
        .map_err(db)?;
    }
    let body = serde_json::to_string(record).map_err(corrupt)?;
    c.prepare_cached(
        "INSERT INTO remediations (remediation_id, tenant_id, ticket_key, created_at, body) VALUES (?1,?2,?3,?4,?5)",
    )
    .map_err(db)?
    .execute(params![id, tenant, record.ticket_key, ts(&now), body])
    .map_err(db)?;
    Ok(Admitted::New)
}

/// Queues a request; one queued again after it was taken (license-check asking the worker to tell a ticket a
/// settled outcome) is waiting again, as a second SQS message would be. The worker acts on a request once.
fn enqueue(c: &Connection, request: &RemediationRequest) -> Result<(), StoreError> {
    let body = serde_json::to_string(request).map_err(corrupt)?;
    c.prepare_cached(
        "INSERT INTO remediation_queue (remediation_id, tenant_id, body) VALUES (?1, ?2, ?3) \
         ON CONFLICT (remediation_id) DO UPDATE SET taken = 0",
    )
    .map_err(db)?
    .execute(params![request.remediation_id, request.tenant_id, body])
    .map_err(db)?;
    Ok(())
}
