//! Incremental reads: one `/users/delta` round applied to the last snapshot.
//!
//! Microsoft does not track `licenseAssignmentStates` in user delta, so a change of assignment state alone never
//! shows up in a round. Licence-error findings stay right anyway: every run re-reads in full the members Graph
//! reports with licence errors (groups with `hasMembersWithLicenseErrors`, their `membersWithLicenseErrors`) and
//! every user the last snapshot held in error (so a cleared error is seen); a full read on a cadence
//! (`[check] full_scan_hours`, daily by default) catches anything else.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};

use super::{Seen, groups_and_members_in_error};
use crate::domain::snapshot::{CommerceSnap, SkuSnap, Snapshot, UserSnapshot, Users};
use crate::error::{ApiError, CoreError};
use crate::ports::directory::Directory;
use crate::ports::directory::types::DeltaUser;

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

/// One `/users/delta` round as read, with the SKUs and groups in error read beside it: independent requests.
pub(super) struct RoundRead {
    items: Vec<DeltaUser>,
    pages: u32,
    link: Option<String>,
    around: Around,
}

/// Reads the round that starts at `link`. It needs nothing of the last snapshot but the link, so it is read while
/// the snapshot's users are decoded; its changes are applied once both are there ([`changed`]).
pub(super) async fn read_round(
    directory: &dyn Directory,
    link: &str,
) -> Result<RoundRead, CoreError> {
    let (round, around) = tokio::join!(
        async {
            let mut round = directory.users_delta(Some(link));
            let mut items = Vec::new();
            while let Some(page) = round.next_page().await? {
                items.extend(page);
            }
            Ok::<_, CoreError>((items, round.pages_fetched(), round.delta_link()))
        },
        Around::read(directory)
    );
    let (items, pages, link) = round?;
    Ok(RoundRead {
        items,
        pages,
        link,
        around: around?,
    })
}

/// The tenant now: `before` with the round's changes applied, the users in licence error re-read.
pub(super) async fn changed(
    directory: &dyn Directory,
    before: Snapshot,
    round: RoundRead,
    now: DateTime<Utc>,
) -> Result<Seen, CoreError> {
    let mut kept = Kept::from(before);
    let items = round.items.len();
    for item in round.items {
        if item.removed.is_some() {
            kept.changes.insert(item.id, None);
            continue;
        }
        match item.apply(kept.user(&item.id)) {
            Some(u) => {
                kept.changes.insert(u.id().to_string(), Some(u));
            }
            None => {
                kept.reread.insert(item.id);
            }
        }
    }
    // Without a new link the next run reads every user.
    kept.link = round.link;
    let mut seen = kept.finish(directory, round.around, now).await?;
    tracing::info!(changed = items, "users read through /users/delta");
    seen.pages = round.pages;
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
    let was: Vec<(&String, Option<UserSnapshot>)> =
        ids.iter().map(|id| (id, kept.user(id))).collect();
    let around = Around::read(directory).await?;
    let mut seen = kept.finish(directory, around, now).await?;
    seen.scan = "targeted";
    // Graph may notify before the replica read has the change: a user read exactly as before is read again later.
    seen.unchanged = was
        .into_iter()
        .filter(|(id, before)| {
            let after = seen.snapshot.users.user(id).map(|u| u.to_snapshot());
            *before == after
        })
        .map(|(id, _)| id.clone())
        .collect();
    Ok(seen)
}

/// What an incremental run reads besides the users: the SKUs, the subscriptions and the groups and members in
/// licence error.
struct Around {
    skus: Vec<SkuSnap>,
    commerce: Option<Vec<CommerceSnap>>,
    groups: HashMap<String, String>,
    in_error: Vec<String>,
}

impl Around {
    async fn read(directory: &dyn Directory) -> Result<Self, CoreError> {
        let (skus, commerce, groups) = tokio::join!(
            directory.subscribed_skus(),
            super::commerce(directory),
            groups_and_members_in_error(directory)
        );
        let (groups, in_error) = groups?;
        Ok(Around {
            skus: skus?.iter().map(SkuSnap::from).collect(),
            commerce: commerce?,
            groups,
            in_error,
        })
    }
}

/// The last snapshot with this run's changes beside it: its users stay in their sorted vector (a map of 100,000
/// users would be built and taken apart on every run for the few that changed) and are merged with the changes at
/// the end.
struct Kept {
    tenant_id: String,
    full_scan_at: Option<DateTime<Utc>>,
    link: Option<String>,
    /// The last snapshot's users, sorted by id.
    users: Users,
    /// User id → the user now, or `None` when the user left the directory.
    changes: BTreeMap<String, Option<UserSnapshot>>,
    /// Users to read in full: those held in error (not tracked by delta, so a cleared error is seen this way).
    reread: BTreeSet<String>,
}

impl From<Snapshot> for Kept {
    fn from(before: Snapshot) -> Self {
        let reread = before
            .users
            .iter()
            .filter(|u| u.states().any(|s| s.error.is_some()))
            .map(|u| u.id().to_string())
            .collect();
        Kept {
            tenant_id: before.tenant_id,
            full_scan_at: before.full_scan_at,
            link: before.delta_link,
            users: before.users,
            changes: BTreeMap::new(),
            reread,
        }
    }
}

impl Kept {
    /// The user as this run knows it so far.
    fn user(&self, id: &str) -> Option<UserSnapshot> {
        match self.changes.get(id) {
            Some(now) => now.clone(),
            None => self.users.user(id).map(|u| u.to_snapshot()),
        }
    }

    /// Reads every user to re-read; the snapshot of now.
    async fn finish(
        mut self,
        directory: &dyn Directory,
        around: Around,
        now: DateTime<Utc>,
    ) -> Result<Seen, CoreError> {
        self.reread.extend(around.in_error);
        read_in_full(directory, &self.reread, &mut self.changes).await?;
        tracing::info!(reread = self.reread.len(), "users read again in full");
        self.users.apply(std::mem::take(&mut self.changes));
        Ok(Seen {
            snapshot: std::sync::Arc::new(Snapshot {
                tenant_id: self.tenant_id,
                taken_at: now,
                skus: around.skus,
                users: self.users,
                delta_link: self.link,
                full_scan_at: self.full_scan_at,
                recent_removals: Vec::new(),
            }),
            groups: around.groups,
            pages: 0,
            scan: "delta",
            commerce: around.commerce,
            unchanged: Vec::new(),
        })
    }
}

/// Reads these users in full (a user gone from the directory leaves the snapshot).
async fn read_in_full(
    directory: &dyn Directory,
    ids: &BTreeSet<String>,
    changes: &mut BTreeMap<String, Option<UserSnapshot>>,
) -> Result<(), CoreError> {
    let ids: Vec<String> = ids.iter().cloned().collect();
    for (id, read) in directory.users_in_full(&ids).await? {
        match read {
            Some(u) => changes.insert(u.id.clone(), Some(u.snapshot())),
            None => changes.insert(id, None),
        };
    }
    Ok(())
}
