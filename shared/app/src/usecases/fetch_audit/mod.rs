//! audit-fetch: copies the Entra directory audit log (Graph) and the Office 365 Management Activity API into the
//! archive exactly once, beyond Microsoft's retention, and turns licence records into licence events.
//!
//! One run per tenant at a time (a lease). Order of writes, so that a crash at any point loses nothing and
//! duplicates nothing, however the next run batches the records: licence parts (pending) → claim the batch's record
//! ids for one archive object (the object's intent is recorded first) → write the object (never overwritten) →
//! confirm the object (its ids become archived) → mark the blob done → advance the cursor. A run starts by settling
//! what a dead run left: an object that was written is confirmed, one that was not is released, so its records are
//! archived again when they are read again (the cursor never passed them).

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::kinds::AlertKind;
use crate::domain::license_event::{
    GroupLicensingRun, LicenseRecord, from_directory_audit, group_licensing_run, merge,
};
use crate::error::{ApiError, CoreError};
use crate::policy::Policy;
use crate::ports::archive::AuditArchive;
use crate::ports::audit_feed::{AuditFeed, AuditLogQueries, ContentBlob, RETENTION, plan_windows};
use crate::ports::clock::Clock;
use crate::ports::directory::Directory;
use crate::ports::store::{AuditState, Gap, StateStore};
use crate::usecases::lease::{self, RunLease};

pub(crate) mod prepare;
mod purview;
use prepare::{Prepared, RecentIds, Shape};
pub use purview::Backfill;

/// How long Entra keeps directory audits (P1/P2).
pub(crate) const DIRECTORY_RETENTION_DAYS: i64 = 30;

/// The ports audit-fetch uses.
pub struct AuditDeps<'a> {
    /// Graph (directory audits).
    pub graph: &'a dyn Directory,
    /// Management Activity API.
    pub management: &'a dyn AuditFeed,
    /// The Purview audit log's query API (the first run's history).
    pub purview: &'a dyn AuditLogQueries,
    /// Cursors, dedupe index, gaps.
    pub state: &'a dyn AuditState,
    /// Where licence events go.
    pub store: &'a dyn StateStore,
    /// The archive.
    pub archive: &'a dyn AuditArchive,
    /// Time.
    pub clock: &'a dyn Clock,
    /// Called at each write boundary; an error there stops the run as a crash would (tests).
    pub crash: &'a (dyn Fn(AuditStep) -> Result<(), CoreError> + Sync),
    /// Called as the run goes (after each archived object and each blob) with the report so far (a progress bar).
    pub progress: &'a (dyn Fn(&AuditReport) + Sync),
    /// When the run must stop (a Lambda invocation's time): it stops between pages and windows, with every cursor
    /// where the archive stands, and the next run resumes there.
    pub deadline: Option<std::time::Instant>,
}

impl AuditDeps<'_> {
    /// True once the run's deadline has passed: start no new page, window or blob.
    fn out_of_time(&self) -> bool {
        self.deadline
            .is_some_and(|d| std::time::Instant::now() >= d)
    }
}

/// The progress hook of runs nobody watches.
pub fn no_progress(_: &AuditReport) {}

/// audit-fetch's write boundaries, for crash tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditStep {
    /// A batch's licence parts are stored.
    AfterLicenceParts,
    /// Record ids are claimed for an object, which is not written yet.
    AfterClaim,
    /// The object is written, not confirmed.
    AfterObject,
    /// The object's search index is written (or its write failed and was logged).
    AfterIndex,
    /// The object is confirmed.
    AfterConfirm,
    /// A Management API blob is marked done.
    AfterBlob,
    /// A cursor moved.
    AfterCursor,
}

/// The crash hook of production runs: never crashes.
pub fn no_crash(_: AuditStep) -> Result<(), CoreError> {
    Ok(())
}

/// The result of a run (`licensewatch audit-fetch --json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct AuditReport {
    /// Records newly archived.
    pub records_archived: usize,
    /// Records already archived (overlap, re-listing, Microsoft's duplicates).
    pub duplicates_skipped: usize,
    /// Management API blobs downloaded.
    pub blobs_fetched: usize,
    /// New licence events.
    pub license_events: usize,
    /// Ranges the sources no longer held when asked.
    pub gaps: Vec<Gap>,
    /// Split licence changes still waiting for some of their chunks (kept, merged when complete).
    #[serde(default)]
    pub license_changes_pending: usize,
    /// Archive objects a dead run left: confirmed (written) or released (not written, archived again).
    #[serde(default)]
    pub objects_recovered: usize,
    /// The run stopped at its deadline before reading everything: the next run resumes from the cursors.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub incomplete: bool,
    /// Management Activity API content types whose subscription is disabled (AF20023): not archived this run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub feeds_disabled: Vec<String>,
    /// Content types whose subscription this run started: Microsoft publishes their first content up to 12 hours
    /// later, so an empty listing until then is expected (what it publishes late is listed later, not lost).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub feeds_started: Vec<String>,
    /// The Purview audit log backfill (until it is done; `[audit] backfill_days = 0` turns it off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backfill: Option<Backfill>,
    /// Set when the run did nothing because another audit-fetch run for the tenant was in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

/// Runs only the Purview audit log backfill of `days` (`licensewatch backfill`), under audit-fetch's lease: one
/// step (the query created, polled, or its records archived); `None` when another run holds the tenant.
pub async fn backfill(
    deps: &AuditDeps<'_>,
    days: i64,
) -> Result<(Option<Backfill>, AuditReport), CoreError> {
    let tenant = deps.management_tenant();
    let lease = match lease::take(deps.store, "audit-fetch", &tenant, deps.clock.now()).await? {
        Ok(lease) => lease,
        Err(why) => {
            tracing::warn!(tenant = %tenant, "{why}");
            return Ok((
                None,
                AuditReport {
                    skipped: Some(why),
                    ..Default::default()
                },
            ));
        }
    };
    let now = deps.clock.now();
    let mut report = AuditReport::default();
    let result = async {
        // What a dead run left is settled first, as audit-fetch does: claimed records never written are released.
        deps.archive.clean_up().await?;
        report.objects_recovered = recover_objects(deps, now).await?;
        let step = purview::step(deps, days, now, &lease, &mut report).await?;
        merge_license_changes(deps, &tenant, &mut report).await?;
        Ok::<_, CoreError>(step)
    }
    .await;
    let released = lease.release().await;
    let step = result?;
    released?;
    report.backfill = Some(step.clone());
    Ok((Some(step), report))
}

/// Runs audit-fetch for one tenant, unless another run for it is in progress.
pub async fn fetch_audit(deps: &AuditDeps<'_>, policy: &Policy) -> Result<AuditReport, CoreError> {
    let tenant = deps.management_tenant();
    let lease = match lease::take(deps.store, "audit-fetch", &tenant, deps.clock.now()).await? {
        Ok(lease) => lease,
        Err(why) => {
            tracing::warn!(tenant = %tenant, "{why}");
            return Ok(AuditReport {
                skipped: Some(why),
                ..Default::default()
            });
        }
    };
    let result = fetch_under(deps, policy, &lease).await;
    let released = lease.release().await;
    let report = result?;
    released?;
    Ok(report)
}

/// Settles the archive objects a dead run claimed: confirmed when written, released when not.
async fn recover_objects(deps: &AuditDeps<'_>, now: DateTime<Utc>) -> Result<usize, CoreError> {
    let objects = deps.state.unconfirmed_objects().await?;
    for key in &objects {
        if deps.archive.exists(key).await? {
            deps.state.confirm_object(key, now).await?;
        } else {
            deps.state.release_object(key).await?;
        }
    }
    if !objects.is_empty() {
        tracing::warn!(
            objects = objects.len(),
            "settled archive objects left by an interrupted run"
        );
    }
    Ok(objects.len())
}

async fn fetch_under(
    deps: &AuditDeps<'_>,
    policy: &Policy,
    lease: &RunLease<'_>,
) -> Result<AuditReport, CoreError> {
    let now = deps.clock.now();
    let swept = deps.archive.clean_up().await?;
    if swept > 0 {
        tracing::warn!(
            files = swept,
            "removed partial files left by interrupted archive writes"
        );
    }
    let mut report = AuditReport {
        objects_recovered: recover_objects(deps, now).await?,
        ..Default::default()
    };
    fetch_directory(deps, policy, now, lease, &mut report).await?;
    let tenant = &deps.management_tenant();
    for ct in &policy.audit.content_types {
        match fetch_management(deps, policy, ct, now, lease, &mut report).await {
            Err(CoreError::Api(e)) if e.code() == Some(FEED_DISABLED) => {
                // The other sources go on; the admins hear of it once, through the alert.
                tracing::error!(content_type = %ct, error = %e, "Management Activity API subscription disabled");
                deps.store
                    .raise_alert(tenant, &feed_disabled_alert(ct, &e, now))
                    .await?;
                report.feeds_disabled.push(ct.clone());
            }
            other => other?,
        }
    }
    if policy.audit.backfill_days > 0 {
        let step = purview::step(deps, policy.audit.backfill_days, now, lease, &mut report).await?;
        report.backfill = Some(step);
    }
    merge_license_changes(deps, tenant, &mut report).await?;
    deps.state
        .expire_index(now - Duration::days(DIRECTORY_RETENTION_DAYS + 1))
        .await?;
    for g in &report.gaps {
        tracing::error!(source = %g.source, from = %g.from, to = %g.to, "audit gap: the source no longer holds this range");
        // grace-period-notify sends it to the admins once.
        let id = format!("audit_gap:{}:{}", g.source, g.from.to_rfc3339());
        let alert = crate::ports::store::Alert {
            alert_id: id.clone(),
            condition: id,
            kind: AlertKind::AuditGap,
            summary: format!(
                "audit records of {} from {} to {} were no longer available from Microsoft and are missing from the archive",
                g.source, g.from, g.to
            ),
            raised_at: now,
        };
        deps.store.raise_alert(tenant, &alert).await?;
    }
    Ok(report)
}

/// The Management Activity API's code for a disabled subscription.
const FEED_DISABLED: &str = "AF20023";

/// The alert of a disabled subscription: raised once a day per content type while it stays disabled.
fn feed_disabled_alert(
    content_type: &str,
    e: &ApiError,
    now: DateTime<Utc>,
) -> crate::ports::store::Alert {
    let id = format!(
        "audit_feed_disabled:{content_type}:{}",
        now.format("%Y-%m-%d")
    );
    crate::ports::store::Alert {
        alert_id: id.clone(),
        condition: id,
        kind: AlertKind::AuditFeedDisabled,
        summary: format!(
            "the Management Activity API subscription for {content_type} is disabled ({}): the audit archive is no \
             longer fed with these records, and Microsoft keeps them 7 days; start the subscription again \
             (POST .../activity/feed/subscriptions/start?contentType={content_type}) or ask Microsoft support why it \
             was disabled",
            e.message().unwrap_or(FEED_DISABLED)
        ),
        raised_at: now,
    }
}

impl AuditDeps<'_> {
    fn management_tenant(&self) -> String {
        self.management.tenant_id().to_string()
    }
}

/// Turns the pending licence changes into events. Records were stored (and their changes marked pending) before
/// the batch that held them was archived, so a crash anywhere in a run leaves them pending for the next run; a
/// split change missing chunks stays pending until they arrive.
async fn merge_license_changes(
    deps: &AuditDeps<'_>,
    tenant: &str,
    report: &mut AuditReport,
) -> Result<(), CoreError> {
    let pending = deps.store.pending_license_parts(tenant).await?;
    let merged = merge(&pending.records);
    report.license_events = deps
        .store
        .put_license_events(tenant, &merged.events)
        .await?;
    let settled: Vec<(String, String)> = pending
        .changes
        .into_iter()
        .filter(|(key, _)| !merged.incomplete.contains(key))
        .collect();
    deps.store.settle_license_parts(tenant, &settled).await?;
    report.license_changes_pending = merged.incomplete.len();
    Ok(())
}

/// Keeps the licence records of a batch and raises an alert for each group-licensing run that failed for some
/// users (Microsoft writes no per-user failure record for those, and sends no alert).
async fn keep_licence_activity(
    deps: &AuditDeps<'_>,
    parts: &[LicenseRecord],
    runs: &[GroupLicensingRun],
    now: DateTime<Utc>,
) -> Result<(), CoreError> {
    let tenant = deps.management_tenant();
    if !parts.is_empty() {
        deps.store.put_license_parts(&tenant, parts).await?;
    }
    for run in runs.iter().filter(|r| r.failed > 0) {
        deps.store
            .raise_alert(&tenant, &group_licensing_alert(run, now))
            .await?;
    }
    Ok(())
}

fn group_licensing_alert(
    run: &GroupLicensingRun,
    now: DateTime<Utc>,
) -> crate::ports::store::Alert {
    let group = match (&run.group_name, &run.group_id) {
        (Some(name), _) => format!("group '{name}'"),
        (None, Some(id)) => format!("group {id}"),
        (None, None) => "a licensing group".to_string(),
    };
    let succeeded = run
        .succeeded
        .map(|n| format!(" ({n} succeeded)"))
        .unwrap_or_default();
    crate::ports::store::Alert {
        alert_id: format!("group_license_failed:{}", run.id),
        condition: format!(
            "group_license_failed:{}",
            run.group_id.as_deref().unwrap_or(&run.id)
        ),
        kind: AlertKind::GroupLicenseFailed,
        summary: format!(
            "group-based licensing failed for {} user(s) of {group}{succeeded} at {}; license-check names them and the cause",
            run.failed,
            run.at.format("%Y-%m-%d %H:%M UTC")
        ),
        raised_at: now,
    }
}

/// Archives a prepared batch: its licence activity first, then for each object (a day of its records): claim the
/// ids, write the object with the claimed records only, confirm it.
async fn archive_prepared(
    deps: &AuditDeps<'_>,
    mut prepared: Prepared,
    now: DateTime<Utc>,
    lease: &RunLease<'_>,
    report: &mut AuditReport,
) -> Result<(), CoreError> {
    let licence_records = unseen(deps, std::mem::take(&mut prepared.licence_records)).await?;
    keep_licence_activity(deps, &licence_records, &prepared.group_runs, now).await?;
    (deps.crash)(AuditStep::AfterLicenceParts)?;
    report.duplicates_skipped += prepared.repeated;
    if prepared.without_id > 0 {
        tracing::warn!(
            records = prepared.without_id,
            "records without an id are kept under an id from their content"
        );
    }
    for object in std::mem::take(&mut prepared.objects) {
        lease.renew(now).await?;
        let claimed: HashSet<String> = deps
            .state
            .claim_records(&object.key, &object.ids, now)
            .await?
            .into_iter()
            .collect();
        report.duplicates_skipped += object.ids.len() - claimed.len();
        if claimed.is_empty() {
            continue;
        }
        (deps.crash)(AuditStep::AfterClaim)?;
        let bytes = if claimed.len() == object.ids.len() {
            object.encoded
        } else {
            object.encode_only(&claimed)?
        };
        if !deps.archive.put_new(&object.key, bytes).await? {
            ensure_holds(deps, &object.key, &claimed).await?;
        }
        (deps.crash)(AuditStep::AfterObject)?;
        // The index only spares searches work (they rebuild a missing one): failing to write it stops nothing.
        let index_key = crate::ports::archive::index_key(&object.key);
        if let Err(e) = deps.archive.put_new(&index_key, object.index).await {
            tracing::warn!(object = %object.key, error = %e, "search index not written; a search will rebuild it");
        }
        (deps.crash)(AuditStep::AfterIndex)?;
        deps.state.confirm_object(&object.key, now).await?;
        (deps.crash)(AuditStep::AfterConfirm)?;
        report.records_archived += claimed.len();
        (deps.progress)(report);
    }
    Ok(())
}

/// The licence records not claimed before. A claimed record's parts were stored before its claim (the order of
/// writes), so storing them again (each run re-reads the last hour, and the Management API lists blobs again) would
/// only repeat writes: three per record on DynamoDB.
async fn unseen(
    deps: &AuditDeps<'_>,
    records: Vec<LicenseRecord>,
) -> Result<Vec<LicenseRecord>, CoreError> {
    if records.is_empty() {
        return Ok(records);
    }
    let ids: Vec<String> = records.iter().map(|r| r.id.clone()).collect();
    let seen = deps.state.seen_records(&ids).await?;
    Ok(records
        .into_iter()
        .filter(|r| !seen.contains(&r.id))
        .collect())
}

/// An object already at the key this batch claimed for: confirming it is right only if it holds every claimed
/// record; otherwise stop rather than mark records archived that are not.
async fn ensure_holds(
    deps: &AuditDeps<'_>,
    key: &str,
    claimed: &HashSet<String>,
) -> Result<(), CoreError> {
    let held: HashSet<String> = crate::ports::archive::decode_batch(&deps.archive.get(key).await?)?
        .iter()
        .flat_map(|r| {
            [
                crate::domain::record_id(r, "id"),
                crate::domain::record_id(r, "Id"),
            ]
        })
        .collect();
    if claimed.is_subset(&held) {
        return Ok(());
    }
    Err(CoreError::Store {
        message: format!(
            "archive object '{key}' exists but lacks records this run claimed for it; nothing was marked archived"
        ),
        retryable: false,
    })
}

async fn fetch_directory(
    deps: &AuditDeps<'_>,
    policy: &Policy,
    now: DateTime<Utc>,
    lease: &RunLease<'_>,
    report: &mut AuditReport,
) -> Result<(), CoreError> {
    const CURSOR: &str = "directory_audits";
    let oldest = now - Duration::days(DIRECTORY_RETENTION_DAYS);
    let previous = deps.state.cursor(CURSOR).await?;
    let from = match previous {
        Some(c) if c < oldest => {
            let gap = Gap {
                source: "directory_audit".into(),
                from: c,
                to: oldest,
            };
            deps.state.record_gap(&gap).await?;
            report.gaps.push(gap);
            oldest
        }
        // Records can appear late: re-read an hour before the watermark; the index drops the repeats.
        Some(c) => c - Duration::hours(1),
        None => now - Duration::days(policy.audit.first_run_days.min(DIRECTORY_RETENTION_DAYS)),
    };
    let shape = Shape {
        source: "directory_audit",
        content_type: "directoryAudits".into(),
        id_field: "id",
        time_field: "activityDateTime",
    };
    let settled = now - Duration::hours(24);
    let mut cursor = previous;
    // Most runs find one page: read the whole range at once. Graph lists newest first, so a range of several pages
    // cannot move the cursor until its end: then it is read oldest first in windows (a day, then as long as about
    // four full pages take at the density seen), since a first run of 30 days on a busy tenant outlasts one
    // invocation at 5 requests per 10 s; each settled window moves the cursor, so the next run goes on from there.
    // The last window is open-ended.
    match first_page_only(deps, &shape, from, now, lease, report).await? {
        Some(newest) => {
            if let Some(next) = newest.max(Some(settled))
                && cursor.is_none_or(|c| next > c)
            {
                deps.state.set_cursor(CURSOR, next).await?;
                (deps.crash)(AuditStep::AfterCursor)?;
            }
            return Ok(());
        }
        None if deps.out_of_time() => {
            report.incomplete = true;
            return Ok(());
        }
        None => {}
    }
    let mut start = from;
    let mut span = Duration::days(1);
    loop {
        let end = (start + span < now).then(|| start + span);
        let Some(read) = directory_window(deps, &shape, start, end, now, lease, report).await?
        else {
            report.incomplete = true;
            return Ok(());
        };
        let newest = read.newest;
        span = next_span(span, read.records);
        // A day older than a day is settled: the cursor passes it. Records arrive at most hours late, so the
        // newest day moves the cursor to its newest record, or to a day ago on a quiet tenant (or a month without
        // directory changes would look like a gap in the archive).
        let next = match end {
            Some(end) if end <= settled => Some(end),
            _ => newest.max(Some(settled)),
        };
        if let Some(next) = next
            && cursor.is_none_or(|c| next > c)
        {
            deps.state.set_cursor(CURSOR, next).await?;
            (deps.crash)(AuditStep::AfterCursor)?;
            cursor = Some(next);
        }
        match end {
            Some(end) => start = end,
            None => return Ok(()),
        }
    }
}

/// Records a window should hold: four full pages but a few, so that its last page is nearly full too (each request
/// counts against the quota of 5 per 10 s, a page holds at most 999).
const WINDOW_RECORDS: usize = 4 * 999 - 200;

/// The next window's length, from how many records `span` held: as long as [`WINDOW_RECORDS`] take at that density,
/// between an hour and a week (an empty window doubles).
fn next_span(span: Duration, records: usize) -> Duration {
    let next = match records {
        0 => span * 2,
        n => {
            Duration::seconds((span.num_seconds() as f64 * WINDOW_RECORDS as f64 / n as f64) as i64)
        }
    };
    next.clamp(Duration::hours(1), Duration::days(7))
}

/// What a window of directory audits held.
struct WindowRead {
    /// Its newest record's time.
    newest: Option<DateTime<Utc>>,
    /// How many records.
    records: usize,
}

/// Archives the first page of the directory audits from `from` on; the newest record's time (`Some(None)` when there
/// was none) when that page was all there is, else `None` (the page's records stay archived: ids are claimed).
async fn first_page_only(
    deps: &AuditDeps<'_>,
    shape: &Shape,
    from: DateTime<Utc>,
    now: DateTime<Utc>,
    lease: &RunLease<'_>,
    report: &mut AuditReport,
) -> Result<Option<Option<DateTime<Utc>>>, CoreError> {
    if deps.out_of_time() {
        return Ok(None);
    }
    let mut pager = deps.graph.directory_audits(from, None);
    let page = pager.next_page().await?.unwrap_or_default();
    let newest = archive_directory_page(deps, shape, &page, now, lease, report).await?;
    Ok(pager.is_done().then_some(newest))
}

/// Archives one page of directory audits; the newest record's time.
async fn archive_directory_page(
    deps: &AuditDeps<'_>,
    shape: &Shape,
    page: &[Value],
    now: DateTime<Utc>,
    lease: &RunLease<'_>,
    report: &mut AuditReport,
) -> Result<Option<DateTime<Utc>>, CoreError> {
    let today = now.format("%Y-%m-%d").to_string();
    let newest = page
        .iter()
        .filter_map(|r| r["activityDateTime"].as_str())
        .filter_map(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.to_utc())
        .max();
    let mut prepared = prepare::parsed_records(page, shape, &today);
    prepared.licence_records = page.iter().filter_map(from_directory_audit).collect();
    prepared.group_runs = page.iter().filter_map(group_licensing_run).collect();
    archive_prepared(deps, prepared, now, lease, report).await?;
    Ok(newest)
}

/// Archives the directory audits of `[start, end)` (`end` open when `None`), page by page; what it held, or
/// `Ok(None)` when the deadline came first (the window is read again next run; the index drops what this one
/// archived).
async fn directory_window(
    deps: &AuditDeps<'_>,
    shape: &Shape,
    start: DateTime<Utc>,
    end: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    lease: &RunLease<'_>,
    report: &mut AuditReport,
) -> Result<Option<WindowRead>, CoreError> {
    let mut pager = deps.graph.directory_audits(start, end);
    let mut read = WindowRead {
        newest: None,
        records: 0,
    };
    loop {
        if deps.out_of_time() {
            return Ok(None);
        }
        let Some(page) = pager.next_page().await? else {
            return Ok(Some(read));
        };
        read.records += page.len();
        let newest = archive_directory_page(deps, shape, &page, now, lease, report).await?;
        read.newest = read.newest.max(newest);
    }
}

async fn fetch_management(
    deps: &AuditDeps<'_>,
    policy: &Policy,
    content_type: &str,
    now: DateTime<Utc>,
    lease: &RunLease<'_>,
    report: &mut AuditReport,
) -> Result<(), CoreError> {
    let cursor_name = format!("management:{content_type}");
    let source = format!("management_api:{content_type}");
    if deps.management.ensure_subscription(content_type).await? {
        tracing::info!(
            content_type,
            "started the Management Activity API subscription; Microsoft publishes its first content up to 12 hours later"
        );
        report.feeds_started.push(content_type.to_string());
    }
    let cursor = deps.state.cursor(&cursor_name).await?;
    let relist_from = now - Duration::hours(policy.audit.relist_hours);
    let from = match cursor {
        // Re-list a trailing window too: blobs can show up in a window's listing after it was first listed.
        Some(c) => c.min(relist_from),
        None => now - RETENTION + Duration::minutes(10),
    };
    let (windows, gap) = plan_windows(from, now, now);
    if let Some(g) = gap {
        let gap = Gap {
            source: source.clone(),
            from: g.start,
            to: g.end,
        };
        deps.state.record_gap(&gap).await?;
        report.gaps.push(gap);
    }
    for w in windows {
        if deps.out_of_time() {
            report.incomplete = true;
            return Ok(());
        }
        let mut blobs = Vec::new();
        let mut pager = deps.management.content(content_type, w);
        while let Some(page) = pager.next_page().await? {
            blobs.extend(page);
        }
        let mut todo = Vec::new();
        for b in blobs {
            if !deps.state.blob_done(&b.content_id).await? {
                todo.push(b);
            }
        }
        archive_blobs(deps, policy, content_type, todo, now, lease, report).await?;
        if cursor.is_none_or(|c| w.end > c) {
            deps.state.set_cursor(&cursor_name, w.end).await?;
            (deps.crash)(AuditStep::AfterCursor)?;
        }
    }
    Ok(())
}

/// The cores this process may run on (a Lambda's share of vCPUs included); 2 when the system does not say.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, std::num::NonZero::get)
}

/// Downloads and prepares blobs ahead (downloads and CPU work overlap: several downloads in flight, records
/// prepared on blocking threads) while this task archives them one by one in listing order. Memory is bounded by
/// permits: a blob takes one before its download starts and gives it back once archived, so no more than twice the
/// in-flight number are held at once. The downloads are driven on their own, never paused behind a slow archiving
/// step: a request's timeout runs from when it is sent, so a download left unpolled while earlier blobs are
/// archived would time out (and be retried) with its answer waiting in the socket.
async fn archive_blobs(
    deps: &AuditDeps<'_>,
    policy: &Policy,
    content_type: &str,
    blobs: Vec<ContentBlob>,
    now: DateTime<Utc>,
    lease: &RunLease<'_>,
    report: &mut AuditReport,
) -> Result<(), CoreError> {
    let in_flight = policy.audit.max_parallel_blobs.max(1);
    let shape = Shape::management(content_type);
    let today = now.format("%Y-%m-%d").to_string();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let held = std::sync::Arc::new(tokio::sync::Semaphore::new(2 * in_flight));
    let mgmt = deps.management;
    let recent = std::sync::Arc::new(std::sync::Mutex::new(RecentIds::new(4 * in_flight)));
    // Downloads wait on the network, preparing (parse, index, gzip) on a core: more blobs are prepared at once than
    // there are cores only at the cost of memory (each thread of the blocking pool grows an allocator arena of its own).
    let cpu = std::sync::Arc::new(tokio::sync::Semaphore::new(cores()));
    let produce = async move {
        let mut ready = futures::stream::iter(blobs.into_iter().enumerate())
            .map(|(position, blob)| {
                let (shape, today, recent, cpu, held) = (
                    shape.clone(),
                    today.clone(),
                    recent.clone(),
                    cpu.clone(),
                    held.clone(),
                );
                async move {
                    // Never closed: the semaphore lives as long as this function.
                    let held = held.acquire_owned().await.ok();
                    let prepared = match mgmt.fetch_blob(&blob.content_uri).await {
                        Ok(body) => {
                            let permit = cpu.acquire_owned().await;
                            tokio::task::spawn_blocking(move || {
                                let _core = permit;
                                let recent = Some((&*recent, position));
                                prepare::management_blob(body, &shape, &today, recent)
                            })
                            .await
                            .unwrap_or_else(|e| Err(prepare_failed(&e)))
                        }
                        Err(e) => Err(e),
                    };
                    (blob, prepared, held)
                }
            })
            .buffered(in_flight);
        // Never waits for the archiving side (the permits bound what is held), so every started download is polled.
        while let Some(item) = ready.next().await {
            if tx.send(item).is_err() {
                break; // the archiving side stopped on an error
            }
        }
    };
    let source = format!("management_api:{content_type}");
    let consume = async move {
        while let Some((blob, prepared, _held)) = rx.recv().await {
            let prepared = match prepared {
                Ok(p) => p,
                Err(e) if matches!(e.code(), Some("AF20051") | Some("AF20050")) => {
                    let gap = Gap {
                        source: source.clone(),
                        from: blob.content_created,
                        to: blob.content_created,
                    };
                    deps.state.record_gap(&gap).await?;
                    report.gaps.push(gap);
                    continue;
                }
                Err(e) => return Err(CoreError::from(e)),
            };
            report.blobs_fetched += 1;
            (deps.progress)(report);
            archive_prepared(deps, prepared, now, lease, report).await?;
            deps.state.mark_blob(&blob.content_id, now).await?;
            (deps.crash)(AuditStep::AfterBlob)?;
        }
        Ok(())
    };
    let ((), archived) = futures::join!(produce, consume);
    archived
}

fn prepare_failed(e: &tokio::task::JoinError) -> ApiError {
    ApiError::MalformedBody {
        service: crate::error::Service::Management,
        what: "content blob".into(),
        detail: format!("preparing its records failed: {e}"),
    }
}

/// What `licensewatch audit-verify --day` found for one source.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SourceCheck {
    /// `directory_audit` or `management_api:<content type>`.
    pub source: String,
    /// Blobs the source lists for the day (Management API only).
    pub blobs_listed: usize,
    /// Listed blobs never archived.
    pub blobs_missing: Vec<String>,
    /// Distinct records the source holds for the day.
    pub source_records: usize,
    /// Of those, records found in the archive.
    pub archived_records: usize,
    /// Record ids the source holds and the archive does not.
    pub missing_records: Vec<String>,
}

/// Re-lists one day (UTC) from each source and compares it with the archive.
pub async fn verify_day(
    deps: &AuditDeps<'_>,
    policy: &Policy,
    day: chrono::NaiveDate,
) -> Result<Vec<SourceCheck>, CoreError> {
    let start = day.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
    let end = start + Duration::days(1);
    let now = deps.clock.now();
    let mut out = Vec::new();

    // Directory audits of that day.
    let mut pager = deps.graph.directory_audits(start, Some(end));
    let mut ids = HashSet::new();
    while let Some(page) = pager.next_page().await? {
        ids.extend(page.iter().map(|r| crate::domain::record_id(r, "id")));
    }
    let archived = archived_ids(deps, "directory_audit/", "id").await?;
    out.push(compare(
        "directory_audit".into(),
        0,
        vec![],
        &ids,
        &archived,
    ));

    // Management API: blobs created that day, and the records in them.
    for ct in &policy.audit.content_types {
        deps.management.ensure_subscription(ct).await?;
        let (windows, _) = plan_windows(start, end.min(now), now);
        let mut listed = Vec::new();
        for w in windows {
            let mut pager = deps.management.content(ct, w);
            while let Some(page) = pager.next_page().await? {
                listed.extend(page);
            }
        }
        let mut blobs_missing = Vec::new();
        let mut ids = HashSet::new();
        for b in &listed {
            if !deps.state.blob_done(&b.content_id).await? {
                blobs_missing.push(b.content_id.clone());
            }
            let bytes = deps.management.fetch_blob(&b.content_uri).await?;
            let records: Vec<Value> = serde_json::from_slice(&bytes).unwrap_or_default();
            ids.extend(records.iter().map(|r| crate::domain::record_id(r, "Id")));
        }
        let archived = archived_ids(deps, &format!("management_api/{ct}/"), "Id").await?;
        out.push(compare(
            format!("management_api:{ct}"),
            listed.len(),
            blobs_missing,
            &ids,
            &archived,
        ));
    }
    Ok(out)
}

async fn archived_ids(
    deps: &AuditDeps<'_>,
    prefix: &str,
    id_field: &str,
) -> Result<HashSet<String>, CoreError> {
    let mut ids = HashSet::new();
    for key in deps.archive.keys(prefix).await? {
        for r in crate::ports::archive::decode_batch(&deps.archive.get(&key).await?)? {
            ids.insert(crate::domain::record_id(&r, id_field));
        }
    }
    Ok(ids)
}

fn compare(
    source: String,
    blobs_listed: usize,
    blobs_missing: Vec<String>,
    source_ids: &HashSet<String>,
    archived: &HashSet<String>,
) -> SourceCheck {
    let mut missing: Vec<String> = source_ids.difference(archived).cloned().collect();
    missing.sort();
    SourceCheck {
        source,
        blobs_listed,
        blobs_missing,
        source_records: source_ids.len(),
        archived_records: source_ids.len() - missing.len(),
        missing_records: missing,
    }
}
