//! license-check: snapshot every user's licence state, SKU capacity and group-licensing errors; diff with the
//! previous run; keep first-seen history; raise findings; follow grace cases; queue safe remediations.
//!
//! The rules live in the domain ([`crate::domain::checks`], [`crate::domain::grace`]); this module reads
//! ([`read`]), calls them, and writes in an order that survives a crash at any write boundary ([`write`],
//! [`grace_cases`], [`remediate`]).

mod grace_cases;
mod read;
mod remediate;
mod waiting;
mod write;

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::catalog::Catalog;
use crate::domain::checks::{self, SkuNames};
pub use crate::domain::checks::{BTreeCounts, DisabledMailbox};
use crate::domain::findings::Finding;
pub use crate::domain::grace::case_id;
use crate::domain::suppression;
use crate::error::CoreError;
use crate::policy::Policy;
use crate::ports::clock::Clock;
use crate::ports::directory::Directory;
use crate::ports::store::{RemediationQueue, RemediationStore, StateStore};
use crate::usecases::lease::{self, RunLease};
pub use grace_cases::CaseCounts;

/// The ports license-check uses.
pub struct CheckDeps<'a> {
    /// The directory (Graph).
    pub graph: &'a dyn Directory,
    /// State.
    pub store: &'a dyn StateStore,
    /// Where auto-remediation requests go.
    pub queue: &'a dyn RemediationQueue,
    /// Remediation records and the shared action budget.
    pub remediations: &'a dyn RemediationStore,
    /// Time.
    pub clock: &'a dyn Clock,
    /// SKU names.
    pub catalog: &'a Catalog,
    /// Called at each write boundary; an error there stops the run as a crash would (tests).
    pub crash: &'a (dyn Fn(CheckStep) -> Result<(), CoreError> + Sync),
}

/// license-check's write boundaries, for crash tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckStep {
    /// Alerts are in step with this run's conditions.
    AfterAlerts,
    /// Grace cases are written.
    AfterCases,
    /// History is appended.
    AfterHistory,
    /// Auto-reprocess requests are queued.
    AfterQueue,
    /// The snapshot is saved (the next run diffs against it).
    AfterSnapshot,
}

/// The crash hook of production runs: never crashes.
pub fn no_crash(_: CheckStep) -> Result<(), CoreError> {
    Ok(())
}

/// The result of one run (`licensewatch check --json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckReport {
    /// Tenant.
    pub tenant_id: String,
    /// Run time.
    pub run_at: DateTime<Utc>,
    /// True when there was no previous snapshot (no diff findings).
    pub first_run: bool,
    /// Users read.
    pub users_scanned: usize,
    /// User pages read.
    pub pages: u32,
    /// `full` (every user read) or `delta` (only the users changed since the last run, through `/users/delta`).
    #[serde(default = "full_scan")]
    pub scan: String,
    /// Findings, most severe first.
    pub findings: Vec<Finding>,
    /// Count per severity.
    pub counts: BTreeCounts,
    /// Shared/resource mailboxes on disabled accounts.
    pub disabled_mailboxes: Vec<DisabledMailbox>,
    /// Grace cases opened, updated and closed by this run.
    pub grace_cases: CaseCounts,
    /// Reprocess requests queued by `auto_reprocess`.
    pub remediations_queued: usize,
    /// Pending reprocess requests this run settled (`succeeded` or, past their deadline, `failed`).
    #[serde(default)]
    pub remediations_confirmed: usize,
    /// A targeted re-check's users whose read did not differ from the last snapshot (the change named by a
    /// notification may not have replicated yet).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unchanged_on_read: Vec<String>,
    /// Set when the run did nothing because another license-check run for the tenant was in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// Why the mailboxes' purposes (shared, room, equipment) could not be read, when they could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mailbox_purposes_unavailable: Option<String>,
    /// With `[check] cloud_licensing`: why the waiting room could not be read, when it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_licensing_unavailable: Option<String>,
}

impl CheckReport {
    fn skipped(tenant_id: &str, now: DateTime<Utc>, why: String) -> Self {
        Self {
            tenant_id: tenant_id.to_string(),
            run_at: now,
            first_run: false,
            users_scanned: 0,
            pages: 0,
            scan: full_scan(),
            findings: Vec::new(),
            counts: BTreeCounts::default(),
            disabled_mailboxes: Vec::new(),
            grace_cases: CaseCounts::default(),
            remediations_queued: 0,
            remediations_confirmed: 0,
            unchanged_on_read: Vec::new(),
            skipped: Some(why),
            mailbox_purposes_unavailable: None,
            cloud_licensing_unavailable: None,
        }
    }
}

fn full_scan() -> String {
    "full".into()
}

/// Per-tenant settings for a run.
#[derive(Debug, Clone)]
pub struct TenantRun {
    /// Tenant id.
    pub tenant_id: String,
    /// Delayed Delicensing enabled.
    pub delayed_delicensing: bool,
}

/// What a run reads of the tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Scope {
    /// A scheduled run: every user, or what changed since the last run (`/users/delta`) between full reads.
    Scheduled,
    /// A targeted re-check after change notifications: these users (object ids) and the users in licence error,
    /// applied to the last snapshot. Without a last snapshot it reads as a scheduled run does.
    Users(BTreeSet<String>),
}

/// Runs license-check for one tenant, unless another run holds it. `progress` is called after each page with the
/// users read so far.
pub async fn check_licenses(
    deps: &CheckDeps<'_>,
    tenant: &TenantRun,
    policy: &Policy,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<CheckReport, CoreError> {
    check_scope(deps, tenant, policy, &Scope::Scheduled, progress).await
}

/// Runs license-check over `scope`, unless another run holds the tenant (then the report says `skipped`).
pub(crate) async fn check_scope(
    deps: &CheckDeps<'_>,
    tenant: &TenantRun,
    policy: &Policy,
    scope: &Scope,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<CheckReport, CoreError> {
    let now = deps.clock.now();
    let lease = match lease::take(deps.store, "license-check", &tenant.tenant_id, now).await? {
        Ok(lease) => lease,
        Err(why) => {
            tracing::warn!(tenant = %tenant.tenant_id, "{why}");
            return Ok(CheckReport::skipped(&tenant.tenant_id, now, why));
        }
    };
    let result = check_under(deps, tenant, policy, scope, progress, &lease).await;
    let released = lease.release().await;
    let report = result?;
    released?;
    Ok(report)
}

/// One run under the lease: read, judge, write.
async fn check_under(
    deps: &CheckDeps<'_>,
    tenant: &TenantRun,
    policy: &Policy,
    scope: &Scope,
    progress: &(dyn Fn(usize) + Sync),
    lease: &RunLease<'_>,
) -> Result<CheckReport, CoreError> {
    let now = deps.clock.now();
    let (mut state, mut seen) =
        read::everything(deps, &tenant.tenant_id, scope, policy, now, progress).await?;
    let changes = state
        .previous
        .as_ref()
        .map(|p| seen.snapshot.diff(p))
        .unwrap_or_default();
    let window = chrono::Duration::minutes(i64::from(policy.check.mass_delicensing_window_minutes));
    if let Some(prev) = &state.previous {
        Arc::make_mut(&mut seen.snapshot).recent_removals =
            checks::removal_window(&prev.recent_removals, &changes, now, window);
    }
    let snapshot = &seen.snapshot;
    // Encoded on a worker thread while the findings are judged and the writes before it are made.
    let mut pending = Some(write::PendingSnapshot::encode(snapshot));
    let Judged {
        users,
        mut findings,
        cloud_licensing_unavailable,
    } = judge(deps, tenant, &seen, &state, &changes, policy, now).await?;

    let suppressions = crate::usecases::suppressions::of_policy(policy)?;
    suppression::mark(&mut findings, &suppressions, &tenant.tenant_id, now);
    tracing::debug!(findings = findings.len(), "findings judged");

    // Reading the tenant can take minutes: make sure this run still holds the job before writing.
    lease.renew(deps.clock.now()).await?;
    write::alerts(deps, &tenant.tenant_id, &findings, now).await?;
    tracing::debug!("alerts written");
    let cases = grace_cases::follow(deps, tenant, policy, &seen, &state, now).await?;
    tracing::debug!(open = cases.counts.open, "grace cases followed");
    // Nothing after this reads the previous run's users: their memory goes before the run's last and largest
    // moment (the new snapshot bound into the store beside everything the run read).
    let previous_taken_at = state.previous.take().map(|p| p.taken_at);
    let first_run = previous_taken_at.is_none();
    findings.extend(
        cases
            .open
            .iter()
            .map(|c| checks::unlicensed_mailbox(c, now)),
    );
    findings.extend(
        cases
            .signing_in
            .iter()
            .map(|(id, upn, purpose)| checks::shared_mailbox_sign_in(id, upn, *purpose)),
    );
    write::history(
        deps,
        &tenant.tenant_id,
        snapshot,
        &mut pending,
        previous_taken_at,
        &changes,
        now,
    )
    .await?;
    let remediations_queued = match policy.remediation.auto_reprocess {
        true => {
            remediate::queue(deps, tenant, policy, snapshot, &users.count_violations, now).await?
        }
        false => 0,
    };
    (deps.crash)(CheckStep::AfterQueue)?;
    let remediations_confirmed = crate::usecases::reprocess_user::confirm_pending(
        deps.graph,
        deps.remediations,
        deps.queue,
        &tenant.tenant_id,
        now,
    )
    .await?;
    if let Some(encoded) = pending {
        write::snapshot(deps, encoded).await?;
    }

    suppression::mark(&mut findings, &suppressions, &tenant.tenant_id, now);
    checks::sort_findings(&mut findings);
    write::run_record(deps, snapshot, &findings).await?;
    tracing::info!(tenant = %tenant.tenant_id, users = snapshot.users.len(), findings = findings.len(), "license-check done");
    let report = CheckReport {
        tenant_id: tenant.tenant_id.clone(),
        run_at: now,
        first_run,
        users_scanned: snapshot.users.len(),
        pages: seen.pages,
        scan: seen.scan.to_string(),
        counts: BTreeCounts::of(&findings),
        findings,
        disabled_mailboxes: users.disabled_mailboxes,
        grace_cases: cases.counts,
        remediations_queued,
        remediations_confirmed,
        unchanged_on_read: std::mem::take(&mut seen.unchanged),
        skipped: None,
        mailbox_purposes_unavailable: cases.purposes_unavailable.clone(),
        cloud_licensing_unavailable,
    };
    free_later((seen, state));
    Ok(report)
}

/// What this run's reading comes to before the grace cases are followed.
struct Judged<'s> {
    /// The users' findings, with the count violations remediation reads.
    users: checks::UserFindings<'s>,
    /// Every finding so far: the users', seats', forecasts', waiting rooms', overlaps', subscriptions' and changes'.
    findings: Vec<Finding>,
    /// Why the waiting rooms could not be read, when they could not.
    cloud_licensing_unavailable: Option<String>,
}

/// Judges what the run read: every finding that does not need the grace cases.
async fn judge<'s>(
    deps: &CheckDeps<'_>,
    tenant: &TenantRun,
    seen: &'s read::Seen,
    state: &read::Earlier,
    changes: &[crate::domain::snapshot::LicenseChange],
    policy: &Policy,
    now: DateTime<Utc>,
) -> Result<Judged<'s>, CoreError> {
    let snapshot = &seen.snapshot;
    let names = SkuNames::new(&snapshot.skus, deps.catalog);
    let mut users = checks::user_findings(snapshot, &seen.groups, &names);
    let mut findings = std::mem::take(&mut users.findings);
    findings.extend(checks::capacity_findings(
        &snapshot.skus,
        &users.count_violations,
        &policy.check,
    ));
    findings.extend(
        seat_forecasts(
            deps,
            &tenant.tenant_id,
            snapshot,
            seen.commerce.as_deref(),
            &seen.groups,
            policy,
            now,
        )
        .await?,
    );
    let (waiting, cloud_licensing_unavailable) = match policy.check.cloud_licensing {
        true => waiting::waiting_room(deps, now).await,
        false => (Vec::new(), None),
    };
    findings.extend(waiting);
    findings.extend(checks::overlap_findings(snapshot, &|sku| {
        policy.price_of(sku)
    }));
    if let Some(commerce) = &seen.commerce {
        findings.extend(checks::subscription_findings(
            commerce,
            &snapshot.skus,
            now,
            &policy.check,
        ));
    }
    if let Some(prev) = &state.previous {
        findings.extend(checks::change_findings(
            changes,
            &state.events,
            prev.taken_at,
            now,
            &names,
        ));
        findings.extend(checks::mass_delicensing(
            &snapshot.recent_removals,
            prev,
            &policy.check,
        ));
    }
    Ok(Judged {
        users,
        findings,
        cloud_licensing_unavailable,
    })
}

/// The SKUs whose free seats run out within `[check] forecast_horizon_days`, from the seat counts of the runs in
/// the window and this run's.
async fn seat_forecasts(
    deps: &CheckDeps<'_>,
    tenant_id: &str,
    snapshot: &crate::domain::snapshot::Snapshot,
    commerce: Option<&[crate::domain::snapshot::CommerceSnap]>,
    group_names: &std::collections::HashMap<String, String>,
    policy: &Policy,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<crate::domain::findings::Finding>, CoreError> {
    use crate::domain::forecast::{ForecastRules, findings};
    let rules = ForecastRules {
        window_days: i64::from(policy.check.forecast_window_days),
        horizon_days: i64::from(policy.check.forecast_horizon_days),
        ..ForecastRules::default()
    };
    // A day more than the window: the sample at or before the window's start is the rate's base.
    let since = now - chrono::Duration::days(rules.window_days + 1);
    let mut history = Vec::new();
    let mut group_history = Vec::new();
    for s in deps.store.seat_history(tenant_id, since).await? {
        match s.group_id {
            None => history.push((s.sku_id, s.point)),
            Some(group) => group_history.push((group, s.sku_id, s.point)),
        }
    }
    let mut found = findings(
        &snapshot.skus,
        &history,
        commerce.unwrap_or_default(),
        &rules,
        now,
    );
    // Which licensing groups drive each SKU that runs out.
    let groups_now = crate::domain::forecast::group_seats(&snapshot.users);
    for f in &mut found {
        if let crate::domain::findings::Detail::SeatForecast {
            sku_id, by_group, ..
        } = &mut f.detail
        {
            *by_group = crate::domain::forecast::group_trends(
                sku_id,
                &group_history,
                &groups_now,
                group_names,
                &rules,
                now,
            );
        }
    }
    Ok(found)
}

/// Frees what a run read on a thread of its own: a large tenant's users are hundreds of thousands of allocations,
/// tens of milliseconds to free, which whoever waits for the report need not wait for (a process that ends first
/// simply returns the memory whole). Freed here when no thread can be had.
fn free_later<T: Send + 'static>(read: T) {
    let _ = std::thread::Builder::new()
        .name("license-check-free".into())
        .spawn(move || drop(read));
}
