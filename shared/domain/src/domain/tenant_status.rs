//! How each job last went for a tenant: what a managed-service provider looks at first (which customers were
//! checked, archived and notified, and which cannot be because the customer's consent is gone).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use crate::domain::kinds::Job;

/// Why a job's last run failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobFailure {
    /// The first failure of this kind in a row (how long the tenant has been failing).
    pub since: DateTime<Utc>,
    /// The error of the latest failure.
    pub error: String,
    /// The tenant has not consented to the app (or revoked it): only its administrator can fix this.
    pub consent_missing: bool,
}

/// A job's runs for one tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobStatus {
    /// The job.
    pub job: Job,
    /// The latest run, successful or not.
    pub last_run_at: DateTime<Utc>,
    /// The latest successful run.
    pub last_ok_at: Option<DateTime<Utc>>,
    /// Set while the job fails: since when, and why.
    pub failure: Option<JobFailure>,
}

/// Longest error text kept (a status is shown in a table cell).
const ERROR_CHARS: usize = 400;

impl JobStatus {
    /// The status after a run at `now`: `Ok` or the error's text and whether it is a missing consent. A failure of
    /// the same kind as the previous one keeps its `since`.
    pub fn after(
        previous: Option<&JobStatus>,
        job: Job,
        now: DateTime<Utc>,
        outcome: Result<(), (&str, bool)>,
    ) -> JobStatus {
        let last_ok_at = previous.and_then(|p| p.last_ok_at);
        match outcome {
            Ok(()) => JobStatus {
                job,
                last_run_at: now,
                last_ok_at: Some(now),
                failure: None,
            },
            Err((error, consent_missing)) => {
                let since = previous
                    .and_then(|p| p.failure.as_ref())
                    .filter(|f| f.consent_missing == consent_missing)
                    .map_or(now, |f| f.since);
                JobStatus {
                    job,
                    last_run_at: now,
                    last_ok_at,
                    failure: Some(JobFailure {
                        since,
                        error: error.chars().take(ERROR_CHARS).collect(),
                        consent_missing,
                    }),
                }
            }
        }
    }

    /// True while the tenant's consent is missing, as this job last found.
    pub fn consent_missing(&self) -> bool {
        self.failure.as_ref().is_some_and(|f| f.consent_missing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(h: u32) -> DateTime<Utc> {
        chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 3, 1, h, 0, 0).unwrap()
    }

    #[test]
    fn a_failure_keeps_the_last_success_and_the_start_of_its_streak() {
        let ok = JobStatus::after(None, Job::AuditFetch, at(1), Ok(()));
        assert_eq!(ok.last_ok_at, Some(at(1)));
        let first = JobStatus::after(
            Some(&ok),
            Job::AuditFetch,
            at(2),
            Err(("AADSTS7000229", true)),
        );
        let second = JobStatus::after(
            Some(&first),
            Job::AuditFetch,
            at(3),
            Err(("AADSTS7000229 again", true)),
        );
        assert_eq!(second.last_ok_at, Some(at(1)));
        assert_eq!(second.last_run_at, at(3));
        let failure = second.failure.clone().expect("failing");
        assert_eq!(
            failure.since,
            at(2),
            "the streak started at the first failure"
        );
        assert_eq!(failure.error, "AADSTS7000229 again");
        assert!(second.consent_missing());
        // Another kind of failure starts a streak of its own.
        let other = JobStatus::after(Some(&second), Job::AuditFetch, at(4), Err(("500", false)));
        assert_eq!(other.failure.expect("failing").since, at(4));
        let back = JobStatus::after(Some(&second), Job::AuditFetch, at(5), Ok(()));
        assert!(back.failure.is_none());
        assert_eq!(back.last_ok_at, Some(at(5)));
        let long = "x".repeat(2000);
        let cut = JobStatus::after(None, Job::AuditFetch, at(6), Err((&long, false)));
        assert_eq!(cut.failure.expect("failing").error.len(), ERROR_CHARS);
    }
}
