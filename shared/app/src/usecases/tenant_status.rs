//! Records how each job went for each tenant, and turns a customer tenant's missing consent into one alert for the
//! deployment's own tenant (the managed-service provider's admins): the customer's own admins cannot be reached
//! through a tenant that no longer lets the app in, and retrying will not help until they consent again.

use chrono::{DateTime, Utc};

use crate::domain::kinds::AlertKind;
use crate::domain::tenant_status::{Job, JobStatus};
use crate::error::CoreError;
use crate::ports::store::{Alert, StateStore};

/// Where statuses and the consent alert go: the deployment's own store and tenant (statuses are keyed by tenant, so
/// one store holds every tenant's).
pub struct StatusDeps<'a> {
    /// The deployment's state store.
    pub store: &'a dyn StateStore,
    /// The deployment's own tenant, whose admins hear of the other tenants' missing consent.
    pub home_tenant: &'a str,
}

/// Records a run of `job` for `tenant_id` at `now`; returns the new status. A run that found the tenant's consent
/// missing raises `consent_missing` once per streak.
pub async fn record_run(
    deps: &StatusDeps<'_>,
    tenant_id: &str,
    job: Job,
    outcome: Result<(), &CoreError>,
    now: DateTime<Utc>,
) -> Result<JobStatus, CoreError> {
    let mut statuses = deps.store.job_statuses(tenant_id).await?;
    let previous = statuses.iter().find(|s| s.job == job);
    let text;
    let outcome = match outcome {
        Ok(()) => Ok(()),
        Err(e) => {
            text = e.to_string();
            Err((text.as_str(), e.is_consent_missing()))
        }
    };
    let status = JobStatus::after(previous, job, now, outcome);
    deps.store.put_job_status(tenant_id, &status).await?;
    statuses.retain(|s| s.job != job);
    statuses.push(status.clone());
    if let Some(since) = consent_missing_since(&status, &statuses) {
        let alert = consent_alert(tenant_id, since, now);
        deps.store.raise_alert(deps.home_tenant, &alert).await?;
    }
    Ok(status)
}

/// When the tenant's consent went missing, if this run (`current`) found it so: the earliest consent failure of any
/// job since the last success of any job. Every job fails once consent is gone, each at its own time; counting
/// from the first makes them one streak (one alert), and a success in between starts a new one.
fn consent_missing_since(current: &JobStatus, statuses: &[JobStatus]) -> Option<DateTime<Utc>> {
    let own = current
        .failure
        .as_ref()
        .filter(|f| f.consent_missing)?
        .since;
    let last_ok = statuses.iter().filter_map(|s| s.last_ok_at).max();
    let earliest = statuses
        .iter()
        .filter_map(|s| s.failure.as_ref().filter(|f| f.consent_missing))
        .map(|f| f.since)
        .filter(|t| last_ok.is_none_or(|ok| *t >= ok))
        .min();
    Some(earliest.unwrap_or(own))
}

fn consent_alert(tenant_id: &str, since: DateTime<Utc>, now: DateTime<Utc>) -> Alert {
    let tenant = tenant_id.to_ascii_lowercase();
    Alert {
        // One occurrence per streak: the same `since` while the consent stays missing.
        alert_id: format!("consent_missing:{tenant}:{}", since.to_rfc3339()),
        condition: format!("consent_missing:{tenant}"),
        kind: AlertKind::ConsentMissing,
        summary: format!(
            "tenant {tenant_id} no longer lets licensewatch in (admin consent missing or revoked since {}): \
             nothing is checked, archived or notified there until its administrator consents again",
            since.format("%Y-%m-%d %H:%M UTC")
        ),
        raised_at: now,
    }
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use super::*;
    use crate::error::{ApiError, AuthError};
    use crate::ports::store::traits::*;
    use crate::ports::testing::MemoryStore;

    fn at(h: u32) -> DateTime<Utc> {
        chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 3, 1, h, 0, 0).unwrap()
    }

    fn revoked() -> CoreError {
        CoreError::Api(ApiError::Auth(AuthError::Rejected {
            status: 401,
            error: "invalid_client".into(),
            description:
                "AADSTS7000229: The client application is missing service principal in the tenant"
                    .into(),
        }))
    }

    #[tokio::test]
    async fn a_revoked_consent_raises_one_alert_for_the_home_tenant_per_streak() {
        let store = MemoryStore::default();
        let deps = StatusDeps {
            store: &store,
            home_tenant: "msp.onmicrosoft.com",
        };
        let customer = "customer001.onmicrosoft.com";
        let home_alerts = async || {
            store
                .recent_alerts("msp.onmicrosoft.com", at(0))
                .await
                .unwrap()
        };
        record_run(&deps, customer, Job::LicenseCheck, Ok(()), at(1))
            .await
            .unwrap();
        for h in 2..5 {
            let s = record_run(&deps, customer, Job::LicenseCheck, Err(&revoked()), at(h))
                .await
                .unwrap();
            assert!(s.consent_missing());
            record_run(&deps, customer, Job::AuditFetch, Err(&revoked()), at(h))
                .await
                .unwrap();
        }
        let home = home_alerts().await;
        assert_eq!(home.len(), 1, "{home:?}");
        assert_eq!(home[0].kind, AlertKind::ConsentMissing);
        assert!(home[0].summary.contains(customer), "{}", home[0].summary);
        assert!(
            store
                .recent_alerts(customer, at(0))
                .await
                .unwrap()
                .is_empty()
        );
        let statuses = store.job_statuses(customer).await.unwrap();
        assert_eq!(statuses.len(), 2);
        let check = statuses
            .iter()
            .find(|s| s.job == Job::LicenseCheck)
            .unwrap();
        assert_eq!(check.last_ok_at, Some(at(1)));

        // Another job finding the same missing consent later is the same streak.
        record_run(
            &deps,
            customer,
            Job::GracePeriodNotify,
            Err(&revoked()),
            at(5),
        )
        .await
        .unwrap();
        assert_eq!(home_alerts().await.len(), 1);

        // Consent back, then gone again: a new streak, a new alert.
        record_run(&deps, customer, Job::LicenseCheck, Ok(()), at(6))
            .await
            .unwrap();
        record_run(&deps, customer, Job::LicenseCheck, Err(&revoked()), at(7))
            .await
            .unwrap();
        let home = home_alerts().await;
        assert_eq!(home.len(), 2, "{home:?}");

        // Other failures are recorded and raise nothing.
        let other = CoreError::Busy("held".into());
        let s = record_run(
            &deps,
            "c2.onmicrosoft.com",
            Job::AuditFetch,
            Err(&other),
            at(8),
        )
        .await
        .unwrap();
        assert!(!s.consent_missing());
        assert_eq!(home_alerts().await.len(), 2);
    }
}
