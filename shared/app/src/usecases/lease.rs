//! Single flight: one run of a job per tenant at a time. Lambda schedules overlap and retry, and SQS delivers at least
//! once, so two runs of one job on one tenant do happen; the loser stops at once (exit 0, saying why). A holder that
//! dies blocks the job for at most the lease's time to live; a holder that outlives it loses the lease at its next
//! renewal and stops before writing more.

use chrono::{DateTime, Duration, Utc};

use crate::error::CoreError;
use crate::ports::store::{Lease, StateStore, lease_name};

/// How long a lease lasts without renewal: longer than a Lambda can run (15 minutes).
pub(crate) const LEASE_TTL_MINUTES: i64 = 16;

/// A held lease.
pub struct RunLease<'a> {
    store: &'a dyn StateStore,
    name: String,
    /// This run's id (the lease owner; notices it claims carry it).
    pub owner: String,
    /// When this run acquired it: claims other runs made up to then were made by runs that no longer hold it.
    pub acquired_at: DateTime<Utc>,
}

/// Takes the lease of `job` for `tenant_id`, or says who holds it.
pub async fn take<'a>(
    store: &'a dyn StateStore,
    job: &str,
    tenant_id: &str,
    now: DateTime<Utc>,
) -> Result<Result<RunLease<'a>, String>, CoreError> {
    let name = lease_name(job, tenant_id);
    let owner = format!("run_{}", uuid::Uuid::new_v4().simple());
    match store
        .acquire_lease(&name, &owner, now, Duration::minutes(LEASE_TTL_MINUTES))
        .await?
    {
        Lease::Acquired => Ok(Ok(RunLease {
            store,
            name,
            owner,
            acquired_at: now,
        })),
        Lease::Held { owner, until } => Ok(Err(format!(
            "another {job} run for tenant {tenant_id} is in progress ({owner}, lease until {}); this run did nothing",
            until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ))),
    }
}

impl RunLease<'_> {
    /// Extends the lease; an error when another run took it over (this run must stop writing).
    pub async fn renew(&self, now: DateTime<Utc>) -> Result<(), CoreError> {
        match self
            .store
            .acquire_lease(
                &self.name,
                &self.owner,
                now,
                Duration::minutes(LEASE_TTL_MINUTES),
            )
            .await?
        {
            Lease::Acquired => Ok(()),
            Lease::Held { owner, .. } => Err(CoreError::Store {
                message: format!(
                    "lease '{}' was taken over by {owner} after it expired; this run stops",
                    self.name
                ),
                retryable: true,
            }),
        }
    }

    /// Gives the lease up.
    pub async fn release(self) -> Result<(), CoreError> {
        Ok(self.store.release_lease(&self.name, &self.owner).await?)
    }
}
