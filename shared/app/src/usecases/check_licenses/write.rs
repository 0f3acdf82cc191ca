//! What a run writes besides grace cases and remediations, each step followed by its crash point: alerts, history,
//! the snapshot, the run record.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::task::JoinHandle;

use super::{CheckDeps, CheckStep};
use crate::domain::findings::{Detail, Finding, Severity};
use crate::domain::kinds::AlertKind;
use crate::domain::snapshot::{LicenseChange, Snapshot};
use crate::error::CoreError;
use crate::ports::store::{Alert, EncodedSnapshot, HistoryEntry, RunRecord, StoreError};

/// A user's licences for the baseline history: (id, UPN, SKU ids).
pub(super) type Baseline<'a> = (&'a str, &'a str, Vec<&'a str>);

/// Critical conditions become alert occurrences that grace-period-notify sends once each; the store keeps them in
/// step with this run (a condition that no longer holds ends its occurrence).
pub(super) async fn alerts(
    deps: &CheckDeps<'_>,
    tenant_id: &str,
    findings: &[Finding],
    now: DateTime<Utc>,
) -> Result<(), CoreError> {
    // A suppressed finding raises no alert (the report still shows it).
    let alerts: Vec<Alert> = findings
        .iter()
        .filter(|f| f.suppressed.is_none())
        .filter_map(|f| alert(deps, f, now))
        .collect();
    deps.store.sync_alerts(tenant_id, &alerts).await?;
    (deps.crash)(CheckStep::AfterAlerts)
}

fn alert(deps: &CheckDeps<'_>, f: &Finding, now: DateTime<Utc>) -> Option<Alert> {
    match &f.detail {
        // One condition while the window holds the threshold: the runs that see it again keep the occurrence open
        // (one alert); it closes once the window drains, and a later wave is a new occurrence.
        Detail::MassDelicensing { removed_count, .. } => Some(Alert {
            alert_id: format!("mass_delicensing:{}", now.to_rfc3339()),
            condition: "mass_delicensing".into(),
            kind: AlertKind::MassDelicensing,
            summary: format!(
                "{removed_count} users lost licences within the mass-delicensing window"
            ),
            raised_at: now,
        }),
        Detail::SubscriptionLapsing {
            subscription_id,
            sku_part_number,
            users_affected,
            reason,
            ..
        } if f.severity == Severity::Critical => {
            let condition = format!("subscription_lapsing:{subscription_id}");
            Some(Alert {
                alert_id: format!("{condition}:{}", now.to_rfc3339()),
                condition,
                kind: AlertKind::SubscriptionLapsing,
                summary: format!(
                    "{sku_part_number} subscription {reason}: {users_affected} user(s) will have no seat"
                ),
                raised_at: now,
            })
        }
        Detail::SeatForecast {
            sku_id,
            sku_part_number,
            days_until_exhausted,
            exhausted_at,
            rate_per_day,
            seats_to_buy,
            horizon_days,
            ..
        } => {
            let condition = format!("seats_running_out:{sku_id}");
            Some(Alert {
                alert_id: format!("{condition}:{}", now.to_rfc3339()),
                condition,
                kind: AlertKind::SeatsRunningOut,
                summary: format!(
                    "{} runs out in about {days_until_exhausted} day(s) ({}) at {rate_per_day} seat(s) a day; buy {seats_to_buy} to last {horizon_days} days",
                    deps.catalog.sku_label(sku_id, sku_part_number),
                    exhausted_at.format("%Y-%m-%d")
                ),
                raised_at: now,
            })
        }
        Detail::SkuCapacity {
            sku_id,
            sku_part_number,
            reason,
            ..
        } if f.severity == Severity::Critical => {
            let condition = format!("sku_exhausted:{sku_id}");
            Some(Alert {
                alert_id: format!("{condition}:{}", now.to_rfc3339()),
                condition,
                kind: AlertKind::SkuExhausted,
                summary: format!(
                    "{}: {reason}",
                    deps.catalog.sku_label(sku_id, sku_part_number)
                ),
                raised_at: now,
            })
        }
        // Below critical, capacity and subscriptions are warnings in the report, not alerts.
        Detail::SkuCapacity { .. } | Detail::SubscriptionLapsing { .. } => None,
        // Per-user findings reach admins through grace cases and notices; these are reports, not alerts.
        Detail::UnlicensedMailbox { .. }
        | Detail::LicenseAssignmentError { .. }
        | Detail::LicenseRemoved { .. }
        | Detail::LicenseAdded { .. }
        | Detail::LicensedDisabledAccount { .. }
        | Detail::SharedMailboxSignIn { .. }
        | Detail::SeatWaitingRoom { .. }
        | Detail::OverlappingLicenses { .. }
        | Detail::UnusedSeatsBeforeRenewal { .. } => None,
    }
}

/// The run's snapshot being encoded on a worker thread while the run writes alerts, cases and history; stored at
/// its own boundary by [`snapshot`].
pub(super) struct PendingSnapshot(JoinHandle<Result<EncodedSnapshot, StoreError>>);

impl PendingSnapshot {
    /// Starts encoding.
    pub(super) fn encode(snapshot: &Arc<Snapshot>) -> Self {
        let snapshot = Arc::clone(snapshot);
        Self(tokio::task::spawn_blocking(move || {
            EncodedSnapshot::encode(&snapshot)
        }))
    }

    async fn ready(self) -> Result<EncodedSnapshot, CoreError> {
        match self.0.await {
            Ok(encoded) => Ok(encoded?),
            Err(e) => Err(StoreError::Corrupt(format!("encoding the snapshot: {e}")).into()),
        }
    }
}

/// History. A first run's baseline is written after its snapshot (a crash in between is repaired by the next run);
/// a later run's changes before it (a crash in between makes the next run see the same changes against the same
/// snapshot, stored once by their identity).
pub(super) async fn history(
    deps: &CheckDeps<'_>,
    tenant_id: &str,
    snapshot: &Snapshot,
    pending: &mut Option<PendingSnapshot>,
    previous_taken_at: Option<DateTime<Utc>>,
    changes: &[LicenseChange],
    now: DateTime<Utc>,
) -> Result<(), CoreError> {
    let written = match previous_taken_at {
        None => {
            if let Some(encoded) = pending.take() {
                self::snapshot(deps, encoded).await?;
            }
            let users = (snapshot.users.iter()).map(|u| (u.id(), u.upn(), u.sku_ids().collect()));
            baseline(deps, tenant_id, users, now).await?
        }
        Some(since) => {
            let entries: Vec<HistoryEntry> = changes
                .iter()
                .map(|c| HistoryEntry {
                    user_id: c.user_id.clone(),
                    user_principal_name: c.upn.clone(),
                    sku_id: c.sku_id.clone(),
                    change: if c.added { "added" } else { "removed" }.into(),
                    at: now,
                    baseline: false,
                    since: Some(since),
                })
                .collect();
            deps.store.append_history(tenant_id, &entries).await?;
            entries.len()
        }
    };
    tracing::debug!(entries = written, "history written");
    (deps.crash)(CheckStep::AfterHistory)
}

/// Writes the baseline history (licences that existed before licensewatch watched), in chunks of users taken from
/// `users` as they are written, so that a first run over a large tenant never holds a second copy of it. Returns
/// how many entries it wrote.
pub(super) async fn baseline<'a>(
    deps: &CheckDeps<'_>,
    tenant_id: &str,
    mut users: impl Iterator<Item = Baseline<'a>> + Send,
    at: DateTime<Utc>,
) -> Result<usize, CoreError> {
    let mut written = 0;
    loop {
        let chunk: Vec<Baseline> = users.by_ref().take(5_000).collect();
        if chunk.is_empty() {
            break;
        }
        let entries: Vec<HistoryEntry> = chunk
            .iter()
            .flat_map(|(id, upn, skus)| {
                skus.iter().map(move |sku| HistoryEntry {
                    user_id: id.to_string(),
                    user_principal_name: upn.to_string(),
                    sku_id: sku.to_string(),
                    change: "added".into(),
                    at,
                    baseline: true,
                    since: None,
                })
            })
            .collect();
        deps.store.append_history(tenant_id, &entries).await?;
        written += entries.len();
    }
    Ok(written)
}

/// Saves the snapshot the next run diffs against.
pub(super) async fn snapshot(
    deps: &CheckDeps<'_>,
    snapshot: PendingSnapshot,
) -> Result<(), CoreError> {
    deps.store
        .save_encoded_snapshot(&snapshot.ready().await?)
        .await?;
    tracing::debug!("snapshot saved");
    (deps.crash)(CheckStep::AfterSnapshot)
}

/// The run record the report draws from (capacity, errors and changes over time).
pub(super) async fn run_record(
    deps: &CheckDeps<'_>,
    snapshot: &Snapshot,
    findings: &[Finding],
) -> Result<(), CoreError> {
    deps.store
        .save_run(&RunRecord {
            tenant_id: snapshot.tenant_id.clone(),
            run_at: snapshot.taken_at,
            users_scanned: snapshot.users.len(),
            licensed_users: snapshot.users.iter().filter(|u| u.is_licensed()).count(),
            skus: snapshot.skus.clone(),
            findings: findings.to_vec(),
            group_seats: crate::domain::forecast::group_seats(&snapshot.users),
        })
        .await?;
    Ok(())
}
