//! What a run reads: the tenant (users, SKUs, groups with licence errors) from the directory, and the previous run
//! and licence events from the store.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{CheckDeps, Scope, write};
use crate::domain::license_event::LicenseEvent;
use crate::domain::snapshot::{CommerceSnap, PreviousRun, SkuSnap, Snapshot, SnapshotMark, Users};
use crate::error::ApiError;
use crate::error::CoreError;
use crate::ports::directory::Directory;

mod delta;

/// The tenant as this run saw it.
pub(super) struct Seen {
    /// Users (sorted by id, each once) and SKUs; shared with the worker thread that encodes it for the store.
    pub snapshot: Arc<Snapshot>,
    /// Group id → display name, for the groups with licence errors.
    pub groups: HashMap<String, String>,
    /// User pages read.
    pub pages: u32,
    /// `full` (every user read), `delta` (a `/users/delta` round) or `targeted` (the users named by change
    /// notifications).
    pub scan: &'static str,
    /// The commercial subscriptions, when the app may read them.
    pub commerce: Option<Vec<CommerceSnap>>,
    /// In a targeted run, the users asked for whose read did not differ from the last snapshot.
    pub unchanged: Vec<String>,
}

/// Reads what earlier runs left and the tenant. A run that reads every user loads the previous run while it pages
/// (the two overlap: the stored document is decoded on a worker thread); an incremental run needs the last
/// snapshot before it can ask what changed since.
pub(super) async fn everything(
    deps: &CheckDeps<'_>,
    tenant_id: &str,
    scope: &Scope,
    policy: &crate::policy::Policy,
    now: DateTime<Utc>,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<(Earlier, Seen), CoreError> {
    let hours = policy.check.full_scan_hours;
    if let Scope::Users(ids) = scope {
        let mut earlier = state(deps, tenant_id, Last::Always, hours).await?;
        if let Some(before) = earlier.last.take() {
            let seen = delta::targeted(deps.graph, before, ids, now).await?;
            return Ok((earlier, seen));
        }
        // Nothing to compare with yet: the first run reads the whole tenant.
        let seen = tenant_since(deps, tenant_id, &mut earlier, now, progress).await?;
        return Ok((earlier, seen));
    }
    if hours == 0 {
        let (earlier, seen) = tokio::join!(
            state(deps, tenant_id, Last::Never, hours),
            tenant(deps.graph, tenant_id, now, progress)
        );
        return Ok((earlier?, seen?));
    }
    // Between full reads only what changed is read: the round starts from the link in the last snapshot's header
    // and is read while the snapshot's users are decoded.
    let mark = deps.store.latest_snapshot_mark(tenant_id).await?;
    let link = mark
        .filter(|m| !full_read_due(m, hours, now))
        .and_then(|m| m.delta_link);
    let Some(link) = link else {
        let mut earlier = state(deps, tenant_id, Last::Never, hours).await?;
        let seen = tenant_since(deps, tenant_id, &mut earlier, now, progress).await?;
        return Ok((earlier, seen));
    };
    let (earlier, round) = tokio::join!(
        state(deps, tenant_id, Last::Always, hours),
        delta::read_round(deps.graph, &link)
    );
    let mut earlier = earlier?;
    match (earlier.last.take(), round) {
        (Some(before), Ok(round)) => {
            let seen = delta::changed(deps.graph, before, round, now).await?;
            return Ok((earlier, seen));
        }
        (_, Err(e)) if delta::must_resync(&e) => {
            tracing::warn!(tenant = %tenant_id, "the delta token expired; reading every user");
        }
        (_, Err(e)) => return Err(e),
        // The snapshot went away between its header and its users: read every user.
        (None, Ok(_)) => {}
    }
    let seen = tenant_since(deps, tenant_id, &mut earlier, now, progress).await?;
    Ok((earlier, seen))
}

/// Whether the users are due to be read in full: no change tracking, or the last full read is `hours` old.
fn full_read_due(mark: &SnapshotMark, hours: u32, now: DateTime<Utc>) -> bool {
    let hours = chrono::Duration::hours(i64::from(hours));
    mark.delta_link.is_none() || mark.full_scan_at.is_none_or(|at| now - at >= hours)
}

/// Reads every user (a first run, a full read on the cadence, or after the delta token expired), starting change
/// tracking first when runs between full reads are incremental.
async fn tenant_since(
    deps: &CheckDeps<'_>,
    tenant_id: &str,
    earlier: &mut Earlier,
    now: DateTime<Utc>,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<Seen, CoreError> {
    // Tracking starts before the read, so a change made during it is seen again by the next round, never lost; not
    // at all when every run reads every user.
    let link = match earlier.incremental {
        true => delta::start(deps.graph).await?,
        false => None,
    };
    let mut seen = tenant(deps.graph, tenant_id, now, progress).await?;
    let snapshot = Arc::make_mut(&mut seen.snapshot);
    snapshot.delta_link = link;
    snapshot.full_scan_at = Some(now);
    Ok(seen)
}

/// Whether a run keeps the last snapshot in full (to apply changes to it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Last {
    /// A run that reads every user: the slim previous run is enough.
    Never,
    /// A run that applies changes to the last snapshot (a delta round, a targeted re-check).
    Always,
}

/// What earlier runs left.
pub(super) struct Earlier {
    /// The previous snapshot, if any.
    pub previous: Option<PreviousRun>,
    /// The previous snapshot in full, when this run reads only what changed since it (taken by the read).
    pub last: Option<Snapshot>,
    /// Runs between full reads read only what changed (`[check] full_scan_hours` is not 0).
    pub incremental: bool,
    /// Every licence event audit-fetch has stored.
    pub events: Vec<LicenseEvent>,
}

/// Reads the tenant. Each user page is distilled and dropped at once: memory holds compact snapshots, never the raw
/// tenant JSON.
pub(super) async fn tenant(
    directory: &dyn Directory,
    tenant_id: &str,
    now: DateTime<Utc>,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<Seen, CoreError> {
    // The SKUs, subscriptions and groups in error are asked for while the users are paged: independent reads.
    let (skus, users, groups, commerce) = tokio::join!(
        directory.subscribed_skus(),
        all_users(directory, progress),
        groups_with_errors(directory),
        commerce(directory)
    );
    let (skus, (users, pages), groups, commerce) = (skus?, users?, groups?, commerce?);
    let skus = skus.iter().map(SkuSnap::from).collect();
    Ok(Seen {
        snapshot: Arc::new(Snapshot {
            tenant_id: tenant_id.to_string(),
            taken_at: now,
            skus,
            users,
            delta_link: None,
            full_scan_at: None,
            recent_removals: Vec::new(),
        }),
        groups,
        pages,
        scan: "full",
        commerce,
        unchanged: Vec::new(),
    })
}

/// Every user, distilled page by page (sorted by id, each once), and the pages read.
async fn all_users(
    directory: &dyn Directory,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<(Users, u32), CoreError> {
    let mut users = Users::default();
    let mut pager = directory.user_snapshots();
    while let Some(page) = pager.next_page().await? {
        for u in page {
            users.push(&u.0);
        }
        progress(users.len());
    }
    users.sort_and_dedup();
    let pages = pager.pages_fetched();
    tracing::debug!(users = users.len(), pages, "users read");
    Ok((users, pages))
}

/// Reads the previous run and the licence events. A first run that saved its snapshot and died before its
/// baseline history and run record is completed here, from that snapshot (entries already written are stored
/// once).
async fn state(
    deps: &CheckDeps<'_>,
    tenant_id: &str,
    wanted: Last,
    full_scan_hours: u32,
) -> Result<Earlier, CoreError> {
    // Incremental runs need the whole snapshot: read it once and derive the previous run from it. A run that will
    // read every user reads only the slim previous run (half the memory).
    let (previous, last) = match wanted {
        Last::Never => (deps.store.previous_run(tenant_id).await?, None),
        Last::Always => {
            let last = deps.store.latest_snapshot(tenant_id).await?;
            (last.as_ref().map(PreviousRun::from), last)
        }
    };
    if let Some(p) = &previous
        && !deps.store.has_runs(tenant_id).await?
    {
        let users = p
            .users
            .iter()
            .map(|u| (u.id(), u.upn(), u.licenses().collect()));
        let n = write::baseline(deps, tenant_id, users, p.taken_at).await?;
        tracing::warn!(
            entries = n,
            "completed the baseline history of an interrupted first run"
        );
    }
    let events = deps.store.license_events(tenant_id, None).await?;
    tracing::debug!(
        previous = previous.is_some(),
        events = events.len(),
        "state read"
    );
    Ok(Earlier {
        previous,
        last,
        incremental: full_scan_hours > 0,
        events,
    })
}

/// The commercial subscriptions; `None` when the app may not read them (403: `LicenseAssignment.Read.All` or
/// `Directory.Read.All` missing), which only leaves the renewal-aware findings out.
pub(super) async fn commerce(
    directory: &dyn Directory,
) -> Result<Option<Vec<CommerceSnap>>, CoreError> {
    match directory.company_subscriptions().await {
        Ok(subs) => Ok(Some(subs.iter().map(CommerceSnap::from).collect())),
        Err(e @ (ApiError::Forbidden { .. } | ApiError::NotFound { .. })) => {
            tracing::warn!(error = %e, "subscriptions unreadable; renewal-aware findings left out");
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// Group id → display name for the groups Graph reports with licence errors (and their members' groups).
async fn groups_with_errors(
    directory: &dyn Directory,
) -> Result<HashMap<String, String>, CoreError> {
    Ok(groups_and_members_in_error(directory).await?.0)
}

/// The groups with licence errors (id → name) and their members in error (ids).
pub(super) async fn groups_and_members_in_error(
    directory: &dyn Directory,
) -> Result<(HashMap<String, String>, Vec<String>), CoreError> {
    let mut names = HashMap::new();
    let mut pager = directory.groups_with_license_errors();
    let mut ids = Vec::new();
    let mut fallback = false;
    loop {
        match pager.next_page().await {
            Ok(Some(page)) => {
                for g in page {
                    ids.push(g.id.clone());
                    names.insert(g.id, g.display_name.unwrap_or_default());
                }
            }
            Ok(None) => break,
            // Some tenants refuse this filter (reported: "Unsupported or invalid query filter clause"): every
            // group that assigns licences is asked for its members in error instead, so none is missed.
            Err(e) if e.code().is_some_and(|c| c.contains("UnsupportedQuery")) => {
                tracing::warn!(
                    "hasMembersWithLicenseErrors filter refused; asking every licensing group for its members in error"
                );
                let mut all = directory.licensed_groups();
                while let Some(page) = all.next_page().await? {
                    for g in page.into_iter().filter(|g| !g.assigned_licenses.is_empty()) {
                        ids.push(g.id.clone());
                        names.insert(g.id, g.display_name.unwrap_or_default());
                    }
                }
                fallback = true;
                break;
            }
            Err(e) => return Err(e.into()),
        }
    }
    let mut in_error = Vec::new();
    for id in ids {
        let mut members = directory.members_with_license_errors(&id);
        let mut n = 0;
        while let Some(page) = members.next_page().await? {
            n += page.len();
            in_error.extend(page.into_iter().map(|m| m.id));
        }
        if fallback && n == 0 {
            // Listed as a licensing group, not as one in error.
            names.remove(&id);
        }
        tracing::info!(group = %id, members_with_errors = n, "group licensing errors");
    }
    Ok((names, in_error))
}
