//! Opens, updates and closes the grace cases of member mailboxes without an enabled Exchange plan; the dating
//! rules are the domain's ([`crate::domain::grace::follow_case`]).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::read::{Earlier, Seen};
use super::{CheckDeps, CheckStep, TenantRun};
use crate::domain::grace::{self, GraceCase, MailboxFacts};
use crate::domain::kinds::{MailboxPurpose, RemediationAction};
use crate::error::CoreError;
use crate::policy::Policy;
use crate::ports::store::RemediationRequest;

/// Grace-case book-keeping of a run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct CaseCounts {
    /// New cases.
    pub opened: usize,
    /// Cases still open.
    pub open: usize,
    /// Cases closed this run.
    pub closed: usize,
}

/// The open cases after this run, and its counts.
pub(super) struct Followed {
    /// Cases still open.
    pub open: Vec<GraceCase>,
    /// Opened, open, closed.
    pub counts: CaseCounts,
    /// Members whose mailbox needs no licence (shared, room, equipment) yet whose account can sign in.
    pub signing_in: Vec<(String, String, MailboxPurpose)>,
    /// Why mailbox purposes could not be read, when they could not.
    pub purposes_unavailable: Option<String>,
}

/// Follows every case and writes those that changed in one transaction: a crash leaves the previous run's cases,
/// never half of this one's.
pub(super) async fn follow(
    deps: &CheckDeps<'_>,
    tenant: &TenantRun,
    policy: &Policy,
    seen: &Seen,
    earlier: &Earlier,
    now: DateTime<Utc>,
) -> Result<Followed, CoreError> {
    // Remediation requests still waiting (local queue): one may say which SKU an admin wanted the user to get.
    let requests = deps.queue.pending(&tenant.tenant_id).await?;
    let mut existing: HashMap<String, GraceCase> = deps
        .store
        .grace_cases(&tenant.tenant_id, true)
        .await?
        .into_iter()
        .map(|c| (c.user_id.clone(), c))
        .collect();
    let mut counts = CaseCounts::default();
    let mut open = Vec::new();
    let mut changed = Vec::new();
    let candidates: Vec<String> = (seen.snapshot.users.iter())
        .filter(|u| grace::may_be_in_grace(*u))
        .map(|u| u.id().to_string())
        .collect();
    let purposes = crate::usecases::mailbox_purposes::of_candidates(
        deps.graph,
        deps.store,
        &tenant.tenant_id,
        candidates,
        now,
    )
    .await?;
    let mut signing_in = Vec::new();
    let mut no_licence_needed: HashMap<String, MailboxPurpose> = HashMap::new();
    for u in seen
        .snapshot
        .users
        .iter()
        .filter(|u| grace::may_be_in_grace(*u))
    {
        if let Some(purpose) = purposes.needing_no_licence(u.id()) {
            // Never a grace case; an open one (from before purposes were read) closes below.
            signing_in.push((u.id().to_string(), u.upn().to_string(), purpose));
            no_licence_needed.insert(u.id().to_string(), purpose);
            continue;
        }
        // What remains in `existing` after the loop are the cases whose user no longer qualifies: they close.
        let prior = existing.remove(u.id());
        let prior = prior.as_ref();
        let facts = MailboxFacts {
            tenant_id: &tenant.tenant_id,
            user: u,
            events: &earlier.events,
            had_exchange_before: earlier
                .previous
                .as_ref()
                .and_then(|p| p.user(u.id()))
                .is_some_and(|p| p.exchange_enabled),
            prior,
            requested_sku_ids: requested_skus(&requests, u.id(), u.upn()),
            groups: &seen.groups,
        };
        if let Some(case) =
            grace::follow_case(&facts, tenant.delayed_delicensing, &policy.grace, now)
        {
            counts.opened += usize::from(prior.is_none());
            if prior.is_none_or(|p| case.changed_since(p)) {
                changed.push(case.clone());
            }
            open.push(case);
        }
    }
    let mut written: Vec<GraceCase> = existing
        .into_values()
        .map(|mut case| {
            let reason = match no_licence_needed.get(&case.user_id) {
                Some(p) => format!("a {p} mailbox, which needs no licence"),
                None => grace::close_reason(seen.snapshot.user(&case.user_id)).to_string(),
            };
            case.closed_at = Some(now);
            case.close_reason = Some(reason);
            case.updated_at = now;
            case
        })
        .collect();
    counts.closed = written.len();
    written.extend(changed);
    deps.store.put_grace_cases(&written).await?;
    (deps.crash)(CheckStep::AfterCases)?;
    counts.open = open.len();
    Ok(Followed {
        open,
        counts,
        signing_in,
        purposes_unavailable: purposes.unavailable,
    })
}

/// The SKUs pending `assign` requests ask for the user (by id or UPN).
fn requested_skus(requests: &[RemediationRequest], user_id: &str, upn: &str) -> Vec<String> {
    requests
        .iter()
        .filter(|r| r.action == RemediationAction::Assign)
        .filter(|r| r.user.eq_ignore_ascii_case(user_id) || r.user.eq_ignore_ascii_case(upn))
        .flat_map(|r| r.sku_ids.iter().cloned())
        .collect()
}
