//! Incremental reads: one `/users/delta` round applied to the last snapshot.
//!
//! Microsoft does not track `licenseAssignmentStates` in user delta, so a change of assignment state alone never
//! shows up in a round. Licence-error findings stay right anyway: every run re-reads in full the members Graph
//! reports with licence errors (groups with `hasMembersWithLicenseErrors`, their `membersWithLicenseErrors`) and
//! every user the last snapshot held in error (so a cleared error is seen); a full read on a cadence
//! (`[check] full_scan_hours`, daily by default) catches anything else.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use futures::StreamExt;

use super::{Seen, groups_and_members_in_error};
use crate::domain::snapshot::{SkuSnap, Snapshot, UserSnapshot};
use crate::error::{ApiError, CoreError};
use crate::ports::directory::Directory;

/// Users read one by one at once when a round cannot be applied from its items alone.
const PARALLEL_READS: usize = 16;

/// Starts tracking changes now: the link of an empty round (`$deltatoken=latest`). `None` when the directory does
/// not track changes or refuses (every run then reads every user, as before).
pub(super) async fn start(directory: &dyn Directory) -> Result<Option<String>, CoreError> {
    let mut round = directory.users_delta(None);
    loop {
        match round.next_page().await {
            Ok(Some(_)) => continue,
            Ok(None) => return Ok(round.delta_link()),
            Err(e) if e.is_retryable() => return Err(e.into()),
            Err(e) => {
                tracing::warn!(error = %e, "user change tracking refused; every run reads every user");
                return Ok(None);
            }
        }
    }
}

/// Whether Graph asks for a full read: the delta token expired or the sync state is gone.
pub(super) fn must_resync(e: &CoreError) -> bool {
    match e {
        CoreError::Api(e) => {
            e.code().is_some_and(|c| {
                c.eq_ignore_ascii_case("syncStateNotFound")
                    || c.eq_ignore_ascii_case("resyncRequired")
            }) || matches!(e, ApiError::Rejected { status: 410, .. })
        }
        _ => false,
    }
}

/// The tenant now: `before` with the round's changes applied, the users in licence error re-read.
pub(super) async fn changed(
    directory: &dyn Directory,
    before: Snapshot,
    now: DateTime<Utc>,
) -> Result<Seen, CoreError> {
    let link = before.delta_link.clone();
    let skus = directory.subscribed_skus().await?;
    let mut users: BTreeMap<String, UserSnapshot> = before
        .users
        .into_iter()
        .map(|u| (u.id.clone(), u))
        .collect();
    // Users held in error: re-read, so that an error that cleared is seen (not tracked by delta).
    let mut reread: BTreeSet<String> = users
        .values()
        .filter(|u| u.states.iter().any(|s| s.error.is_some()))
        .map(|u| u.id.clone())
        .collect();
    let mut round = directory.users_delta(link.as_deref());
    let mut items = 0;
    while let Some(page) = round.next_page().await? {
        items += page.len();
        for item in page {
            if item.removed.is_some() {
                users.remove(&item.id);
                continue;
            }
            match item.apply(users.get(&item.id)) {
                Some(u) => {
                    users.insert(u.id.clone(), u);
                }
                None => {
                    reread.insert(item.id.clone());
                }
            }
        }
    }
    let next_link = round.delta_link();
    let pages = round.pages_fetched();
    let (groups, in_error) = groups_and_members_in_error(directory).await?;
    reread.extend(in_error);
    read_in_full(directory, &reread, &mut users).await?;
    tracing::info!(
        changed = items,
        reread = reread.len(),
        "users read through /users/delta"
    );
    Ok(Seen {
        snapshot: std::sync::Arc::new(Snapshot {
            tenant_id: before.tenant_id,
            taken_at: now,
            skus: skus.iter().map(SkuSnap::from).collect(),
            users: users.into_values().collect(),
            // Without a new link the next run reads every user.
            delta_link: next_link,
            full_scan_at: before.full_scan_at,
        }),
        groups,
        pages,
        delta_users: Some(items),
    })
}

/// Reads these users in full (a user gone from the directory leaves the snapshot).
async fn read_in_full(
    directory: &dyn Directory,
    ids: &BTreeSet<String>,
    users: &mut BTreeMap<String, UserSnapshot>,
) -> Result<(), CoreError> {
    let mut reads = futures::stream::iter(
        ids.iter()
            .map(|id| async move { (id, directory.user_in_full(id).await) }),
    )
    .buffer_unordered(PARALLEL_READS);
    while let Some((id, read)) = reads.next().await {
        match read? {
            Some(u) => {
                users.insert(u.id.clone(), u.snapshot());
            }
            None => {
                users.remove(id);
            }
        }
    }
    Ok(())
}
