//! Incremental reads: one `/users/delta` round applied to the last snapshot.
//!
//! Microsoft does not track `licenseAssignmentStates` in user delta, so a change of assignment state alone never
//! shows up in a round. Licence-error findings stay right anyway: every run re-reads in full the members Graph
//! reports with licence errors (groups with `hasMembersWithLicenseErrors`, their `membersWithLicenseErrors`) and
//! every user the last snapshot held in error (so a cleared error is seen); a full read on a cadence
//! (`[check] full_scan_hours`, daily by default) catches anything else.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use super::{Seen, groups_and_members_in_error};
use crate::domain::snapshot::{SkuSnap, Snapshot, UserSnapshot};
use crate::error::{ApiError, CoreError};
use crate::ports::directory::Directory;

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
    let mut kept = Kept::from(before);
    let mut round = directory.users_delta(link.as_deref());
    let mut items = 0;
    while let Some(page) = round.next_page().await? {
        items += page.len();
        for item in page {
            if item.removed.is_some() {
                kept.users.remove(&item.id);
                continue;
            }
            match item.apply(kept.users.get(&item.id)) {
                Some(u) => {
                    kept.users.insert(u.id.clone(), u);
                }
                None => {
                    kept.reread.insert(item.id.clone());
                }
            }
        }
    }
    // Without a new link the next run reads every user.
    kept.link = round.delta_link();
    let pages = round.pages_fetched();
    let mut seen = kept.finish(directory, now).await?;
    tracing::info!(changed = items, "users read through /users/delta");
    seen.pages = pages;
    seen.scan = "delta";
    Ok(seen)
}

/// The tenant now, for a re-check after change notifications: `before` with `ids` (the users Graph notified a
/// change of) and the users in licence error read again. The delta link stays: the next round sees these changes
/// again and applies them once more, to the same result.
pub(super) async fn targeted(
    directory: &dyn Directory,
    before: Snapshot,
    ids: &BTreeSet<String>,
    now: DateTime<Utc>,
) -> Result<Seen, CoreError> {
    let mut kept = Kept::from(before);
    kept.reread.extend(ids.iter().cloned());
    let mut seen = kept.finish(directory, now).await?;
    seen.scan = "targeted";
    Ok(seen)
}

/// The last snapshot taken apart for an incremental read.
struct Kept {
    tenant_id: String,
    full_scan_at: Option<DateTime<Utc>>,
    link: Option<String>,
    users: BTreeMap<String, UserSnapshot>,
    /// Users to read in full: those held in error (not tracked by delta, so a cleared error is seen this way).
    reread: BTreeSet<String>,
}

impl From<Snapshot> for Kept {
    fn from(before: Snapshot) -> Self {
        let reread = before
            .users
            .iter()
            .filter(|u| u.states.iter().any(|s| s.error.is_some()))
            .map(|u| u.id.clone())
            .collect();
        Kept {
            tenant_id: before.tenant_id,
            full_scan_at: before.full_scan_at,
            link: before.delta_link,
            users: before
                .users
                .into_iter()
                .map(|u| (u.id.clone(), u))
                .collect(),
            reread,
        }
    }
}

impl Kept {
    /// Reads the SKUs, the groups and members in error and every user to re-read; the snapshot of now.
    async fn finish(
        mut self,
        directory: &dyn Directory,
        now: DateTime<Utc>,
    ) -> Result<Seen, CoreError> {
        let skus = directory.subscribed_skus().await?;
        let commerce = super::commerce(directory).await?;
        let (groups, in_error) = groups_and_members_in_error(directory).await?;
        self.reread.extend(in_error);
        read_in_full(directory, &self.reread, &mut self.users).await?;
        tracing::info!(reread = self.reread.len(), "users read again in full");
        Ok(Seen {
            snapshot: std::sync::Arc::new(Snapshot {
                tenant_id: self.tenant_id,
                taken_at: now,
                skus: skus.iter().map(SkuSnap::from).collect(),
                users: self.users.into_values().collect(),
                delta_link: self.link,
                full_scan_at: self.full_scan_at,
                recent_removals: Vec::new(),
            }),
            groups,
            pages: 0,
            scan: "delta",
            commerce,
        })
    }
}

/// Reads these users in full (a user gone from the directory leaves the snapshot).
async fn read_in_full(
    directory: &dyn Directory,
    ids: &BTreeSet<String>,
    users: &mut BTreeMap<String, UserSnapshot>,
) -> Result<(), CoreError> {
    let ids: Vec<String> = ids.iter().cloned().collect();
    for (id, read) in directory.users_in_full(&ids).await? {
        match read {
            Some(u) => {
                users.insert(u.id.clone(), u.snapshot());
            }
            None => {
                users.remove(&id);
            }
        }
    }
    Ok(())
}
