//! Auto-reprocess: users in CountViolation on SKUs that have free seats again, within the remediation budget.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use super::{CheckDeps, TenantRun};
use crate::domain::kinds::RemediationAction;
use crate::domain::snapshot::{Snapshot, UserRef};
use crate::error::CoreError;
use crate::policy::Policy;
use crate::ports::store::{Admitted, RemediationRecord, RemediationRequest};

/// Queues reprocessing for users in CountViolation on SKUs that have free seats again, up to the hourly budget.
pub(super) async fn queue(
    deps: &CheckDeps<'_>,
    tenant: &TenantRun,
    policy: &Policy,
    snapshot: &Snapshot,
    count_violations: &HashMap<String, Vec<UserRef<'_>>>,
    now: DateTime<Utc>,
) -> Result<usize, CoreError> {
    let mut queued = 0;
    let mut done = HashSet::new();
    'skus: for s in &snapshot.skus {
        let mut free = s.available();
        for u in count_violations.get(&s.sku_id).into_iter().flatten() {
            if free <= 0 {
                break;
            }
            if !done.insert(u.id().to_string()) {
                continue;
            }
            let request = RemediationRequest {
                // Same user, same hour: the same id, so a rerun does not queue twice.
                remediation_id: format!("auto-{}-{}", u.id(), now.format("%Y%m%d%H")),
                tenant_id: tenant.tenant_id.clone(),
                user: u.id().to_string(),
                action: RemediationAction::Reprocess,
                sku_ids: vec![],
                reason: format!(
                    "{} seat(s) free on {} while the user is in CountViolation",
                    free, s.part_number
                ),
                requested_at: now,
                disabled_plans: Default::default(),
                template_user: None,
                ticket: None,
            };
            if deps
                .remediations
                .remediation(&request.remediation_id)
                .await?
                .is_none()
            {
                // The same budget as the webhook and the CLI: a rolling 60 minutes per tenant.
                let record = RemediationRecord::queued(request.clone(), now);
                let admitted = deps
                    .remediations
                    .admit(None, &record, policy.remediation.max_actions_per_hour)
                    .await?;
                if admitted == Admitted::OverBudget {
                    tracing::warn!(
                        "remediation.max_actions_per_hour is spent: auto-reprocess stops for this run"
                    );
                    break 'skus;
                }
            }
            deps.queue.enqueue(&request).await?;
            queued += 1;
            free -= 1;
        }
    }
    Ok(queued)
}
