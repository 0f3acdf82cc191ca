//! reclaim: licences nobody uses, from the directory's sign-in activity (or, where a tenant lacks Entra ID P1 or
//! the permission, the Exchange mailbox usage report) and licensewatch's own first-seen history; saved for the
//! report page. Read-only: it never removes anything.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};

use crate::domain::catalog::Catalog;
use crate::domain::reclaim::{
    Activity, ActivitySource, Held, ReclaimReport, ReclaimRules, ReclaimUser, SkuPlans, reclaimable,
};
use crate::error::{ApiError, CoreError};
use crate::ports::directory::Directory;
use crate::ports::directory::types::{SignInActivity, SubscribedSku, User};
use crate::ports::store::{HistoryEntry, StateStore};

/// The usage report's period (Graph accepts D7, D30, D90, D180).
const MAILBOX_PERIOD: &str = "D90";

/// The ports reclaim uses.
pub struct ReclaimDeps<'a> {
    /// The directory (Graph).
    pub graph: &'a dyn Directory,
    /// licensewatch's history (when each licence was first seen) and where the report is kept.
    pub store: &'a dyn StateStore,
    /// SKU names.
    pub catalog: &'a Catalog,
}

/// Builds the reclamation report for a tenant and saves it.
pub async fn reclaim(
    deps: &ReclaimDeps<'_>,
    tenant_id: &str,
    rules: &ReclaimRules,
    now: DateTime<Utc>,
) -> Result<ReclaimReport, CoreError> {
    let skus: Vec<SkuPlans> = deps
        .graph
        .subscribed_skus()
        .await?
        .iter()
        .map(|s| sku_plans(s, deps.catalog))
        .collect();
    let mut read = users_and_activity(deps.graph).await?;
    let mut users = std::mem::take(&mut read.users);
    add_history(deps.store, tenant_id, &mut users).await?;
    let (rows, idle_seats) = reclaimable(&users, &skus, rules, now);
    let (rows, mailbox_notes) =
        shared_mailboxes(deps, tenant_id, rows, read.sizes.take(), now).await?;
    let report = ReclaimReport {
        tenant_id: tenant_id.to_string(),
        generated_at: now,
        inactive_days: rules.inactive_days,
        users_read: read.listed,
        activity_source: read.source,
        activity_notes: read.notes,
        monthly_total: ReclaimReport::total(&rows, &idle_seats),
        currency: (!rules.prices.monthly.is_empty()).then(|| rules.prices.currency.clone()),
        rows,
        idle_seats,
        mailbox_notes,
    };
    deps.store.save_reclaim(&report).await?;
    Ok(report)
}

/// Licensed shared, room and equipment mailboxes: among the users whose licences look unused (nobody signs in as a
/// shared mailbox), those whose `userPurpose` says so have their rows say so, or are kept when they need their
/// licence (over 50 GB or an archive, from the usage report). Purposes are read for those users only, and remembered.
async fn shared_mailboxes(
    deps: &ReclaimDeps<'_>,
    tenant_id: &str,
    rows: Vec<crate::domain::reclaim::ReclaimRow>,
    already_read: Option<HashMap<String, crate::domain::reclaim::SharedMailbox>>,
    now: DateTime<Utc>,
) -> Result<(Vec<crate::domain::reclaim::ReclaimRow>, Vec<String>), CoreError> {
    use crate::domain::reclaim::{Reason, with_shared_mailboxes};
    let mut candidates: Vec<String> = rows
        .iter()
        .filter(|r| !matches!(r.reason, Reason::Overlapping { .. }))
        .map(|r| r.user_id.clone())
        .collect();
    candidates.sort();
    candidates.dedup();
    let purposes = crate::usecases::mailbox_purposes::of_candidates(
        deps.graph, deps.store, tenant_id, candidates, now,
    )
    .await?;
    let mut notes: Vec<String> = purposes.unavailable.iter().cloned().collect();
    let shared_ids: Vec<&String> = purposes
        .by_user
        .iter()
        .filter(|(_, p)| !crate::domain::grace::needs_a_licence(**p))
        .map(|(id, _)| id)
        .collect();
    if shared_ids.is_empty() {
        return Ok((rows, notes));
    }
    let sizes = match already_read {
        Some(sizes) => sizes,
        None => report_sizes(deps, &mut notes).await,
    };
    let upn_of: HashMap<&str, &str> = rows
        .iter()
        .map(|r| (r.user_id.as_str(), r.user_principal_name.as_str()))
        .collect();
    let shared = shared_ids
        .into_iter()
        .map(|id| {
            let upn = upn_of.get(id.as_str()).copied().unwrap_or_default();
            let size = sizes.get(&upn.to_lowercase()).copied().unwrap_or_default();
            (id.clone(), size)
        })
        .collect();
    let (rows, kept) = with_shared_mailboxes(rows, &shared);
    notes.extend(kept);
    Ok((rows, notes))
}

/// The shared mailboxes' sizes from a fresh read of the usage report (D7); a report that cannot be read is a note
/// and unknown sizes, never a failed run.
async fn report_sizes(
    deps: &ReclaimDeps<'_>,
    notes: &mut Vec<String>,
) -> HashMap<String, crate::domain::reclaim::SharedMailbox> {
    match deps.graph.mailbox_usage("D7").await {
        Ok(csv) => mailbox_sizes(&csv).unwrap_or_else(|why| {
            notes.push(why);
            HashMap::new()
        }),
        Err(e) => {
            notes.push(format!(
                "shared mailbox sizes unknown: the mailbox usage report was not read ({}); check each is under 50 GB before removing its licence",
                match &e {
                    ApiError::Forbidden { .. } => "grant the app Reports.Read.All".to_string(),
                    other => other.to_string(),
                }
            ));
            HashMap::new()
        }
    }
}

/// Each mailbox's size and archive from the usage report, by lower-cased UPN.
fn mailbox_sizes(
    csv_bytes: &[u8],
) -> Result<HashMap<String, crate::domain::reclaim::SharedMailbox>, String> {
    let text = String::from_utf8_lossy(csv_bytes);
    let mut reader = csv::Reader::from_reader(text.trim_start_matches('\u{feff}').as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| format!("the mailbox usage report is not CSV: {e}"))?
        .clone();
    let column = |name: &str| headers.iter().position(|h| h.trim() == name);
    let (Some(upn_at), Some(size_at)) =
        (column("User Principal Name"), column("Storage Used (Byte)"))
    else {
        return Err(
            "the mailbox usage report has no 'User Principal Name' or 'Storage Used (Byte)' column: shared mailbox sizes unknown"
                .into(),
        );
    };
    let archive_at = column("Has Archive");
    let mut out = HashMap::new();
    for row in reader.records() {
        let row = row.map_err(|e| format!("the mailbox usage report: {e}"))?;
        let field = |i: usize| row.get(i).unwrap_or_default().trim();
        out.insert(
            field(upn_at).to_lowercase(),
            crate::domain::reclaim::SharedMailbox {
                storage_bytes: field(size_at).parse().ok(),
                has_archive: archive_at.is_some_and(|i| field(i).eq_ignore_ascii_case("true")),
            },
        );
    }
    Ok(out)
}

/// The users as read (each page distilled as it arrives, so memory holds the compact form only), and where their
/// activity comes from.
struct Read {
    /// The licensed users.
    users: Vec<ReclaimUser>,
    /// Every user listed.
    listed: usize,
    source: ActivitySource,
    notes: Vec<String>,
    /// The mailbox usage report's sizes, when this read fetched the report (the shared mailboxes' sizes come from
    /// it then, not from a second download).
    sizes: Option<HashMap<String, crate::domain::reclaim::SharedMailbox>>,
}

/// Where each user's activity is read from.
enum ActivityFrom {
    /// Their `signInActivity`.
    SignIn,
    /// Lower-cased UPN → last mailbox activity day (None: a mailbox never active), from the usage report.
    Mailbox(HashMap<String, Option<NaiveDate>>),
    /// Nowhere.
    Nowhere,
}

/// Users with `signInActivity`; where Graph refuses it for a known reason, the mailbox usage report and users
/// without it instead; where that is refused too, no activity (said in the notes).
async fn users_and_activity(graph: &dyn Directory) -> Result<Read, CoreError> {
    let mut notes = Vec::new();
    match distilled(graph.users_with_sign_in(), &ActivityFrom::SignIn).await {
        Ok((users, listed)) => {
            return Ok(Read {
                users,
                listed,
                source: ActivitySource::SignIn,
                notes,
                sizes: None,
            });
        }
        Err(e) => match sign_in_refused(&e) {
            Some(why) => notes.push(why),
            None => return Err(e.into()),
        },
    }
    let mut sizes = None;
    let (source, from) = match graph.mailbox_usage(MAILBOX_PERIOD).await {
        Ok(csv) => match mailbox_activity(&csv) {
            Ok(days) => {
                sizes = mailbox_sizes(&csv).ok();
                (ActivitySource::MailboxReport, ActivityFrom::Mailbox(days))
            }
            Err(why) => {
                notes.push(why);
                (ActivitySource::None, ActivityFrom::Nowhere)
            }
        },
        Err(e @ ApiError::Forbidden { .. }) => {
            notes.push(format!(
                "the mailbox usage report was refused ({}): grant the app Reports.Read.All",
                e.code().unwrap_or("403")
            ));
            (ActivitySource::None, ActivityFrom::Nowhere)
        }
        Err(e) => return Err(e.into()),
    };
    let (users, listed) = distilled(graph.users(), &from).await?;
    Ok(Read {
        users,
        listed,
        source,
        notes,
        sizes,
    })
}

/// The licensed users of a listing, distilled page by page, and how many users it listed.
async fn distilled(
    mut pages: crate::ports::directory::BoxPages<'_, User>,
    from: &ActivityFrom,
) -> Result<(Vec<ReclaimUser>, usize), ApiError> {
    let mut out = Vec::new();
    let mut listed = 0;
    while let Some(page) = pages.next_page().await? {
        listed += page.len();
        out.extend(
            page.iter()
                .filter(|u| !u.assigned_licenses.is_empty())
                .map(|u| reclaim_user(u, from)),
        );
    }
    Ok((out, listed))
}

/// Why Graph refused `signInActivity`, when it is one of the known, lasting reasons.
fn sign_in_refused(e: &ApiError) -> Option<String> {
    match e.code()? {
        "Authentication_RequestFromNonPremiumTenantOrB2CTenant" => Some(
            "sign-in activity needs Entra ID P1 in the tenant (Graph: Authentication_RequestFromNonPremiumTenantOrB2CTenant); \
             using the Exchange mailbox usage report instead"
                .into(),
        ),
        "Authorization_RequestDenied" => Some(
            "sign-in activity needs the AuditLog.Read.All application permission (Graph: Authorization_RequestDenied); \
             using the Exchange mailbox usage report instead"
                .into(),
        ),
        _ => None,
    }
}

/// The usage report's last activity day per UPN. A report whose names are concealed (the tenant's privacy
/// setting for reports) cannot be matched to users: that is an error that says where to change it.
fn mailbox_activity(csv_bytes: &[u8]) -> Result<HashMap<String, Option<NaiveDate>>, String> {
    let text = String::from_utf8_lossy(csv_bytes);
    let text = text.trim_start_matches('\u{feff}');
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| format!("the mailbox usage report is not CSV: {e}"))?
        .clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h.trim() == name)
            .ok_or_else(|| format!("the mailbox usage report has no '{name}' column"))
    };
    let (upn_at, last_at) = (
        column("User Principal Name")?,
        column("Last Activity Date")?,
    );
    let mut out = HashMap::new();
    for row in reader.records() {
        let row = row.map_err(|e| format!("the mailbox usage report: {e}"))?;
        let upn = row.get(upn_at).unwrap_or_default().trim().to_lowercase();
        let last = row
            .get(last_at)
            .and_then(|d| NaiveDate::parse_from_str(d.trim(), "%Y-%m-%d").ok());
        out.insert(upn, last);
    }
    if !out.is_empty() && out.keys().all(|upn| !upn.contains('@')) {
        return Err("the mailbox usage report conceals user names: turn off \"Display concealed user, group, and site names in all reports\" \
                    (Microsoft 365 admin center > Settings > Org settings > Reports) to match it to users"
            .into());
    }
    Ok(out)
}

fn sku_plans(s: &SubscribedSku, catalog: &Catalog) -> SkuPlans {
    SkuPlans {
        sku_id: s.sku_id.clone(),
        name: catalog.sku_label(&s.sku_id, &s.sku_part_number),
        part_number: s.sku_part_number.clone(),
        plans: s
            .service_plans
            .iter()
            .map(|p| (p.service_plan_id.clone(), p.service_plan_name.clone()))
            .collect(),
        enabled: s.prepaid_units.enabled,
        consumed: s.consumed_units,
    }
}

fn reclaim_user(u: &User, from: &ActivityFrom) -> ReclaimUser {
    let activity = match from {
        ActivityFrom::SignIn => sign_in(u.sign_in_activity.as_ref()),
        ActivityFrom::Mailbox(days) => match days.get(&u.user_principal_name.to_lowercase()) {
            Some(Some(day)) => Activity::Mailbox { day: *day },
            Some(None) => Activity::Never,
            // No mailbox in the report: nothing to judge by.
            None => Activity::Unknown,
        },
        ActivityFrom::Nowhere => Activity::Unknown,
    };
    let by_group = |sku: &str| {
        u.license_assignment_states
            .iter()
            .find(|s| s.sku_id.eq_ignore_ascii_case(sku) && s.assigned_by_group.is_some())
            .and_then(|s| s.assigned_by_group.clone())
    };
    ReclaimUser {
        id: u.id.clone(),
        upn: u.user_principal_name.clone(),
        enabled: u.account_enabled,
        created: u.created_date_time,
        held: u
            .assigned_licenses
            .iter()
            .map(|l| Held {
                sku_id: l.sku_id.clone(),
                disabled_plans: l.disabled_plans.clone(),
                by_group: by_group(&l.sku_id),
                since: None,
            })
            .collect(),
        activity,
    }
}

/// The last successful sign-in; before Microsoft recorded that (December 2023), the later of the last
/// interactive and non-interactive attempts.
fn sign_in(a: Option<&SignInActivity>) -> Activity {
    let at = a.and_then(|a| {
        a.last_successful_sign_in_date_time.or(a
            .last_sign_in_date_time
            .max(a.last_non_interactive_sign_in_date_time))
    });
    match at {
        Some(at) => Activity::SignIn { at },
        None => Activity::Never,
    }
}

/// When licensewatch saw each licence of the never-active users arrive (their history; other users' dates do
/// not change the verdict, so they are not read).
async fn add_history(
    store: &dyn StateStore,
    tenant_id: &str,
    users: &mut [ReclaimUser],
) -> Result<(), CoreError> {
    let never = |u: &ReclaimUser| u.enabled && u.activity == Activity::Never && !u.held.is_empty();
    let ids: Vec<String> = users
        .iter()
        .filter(|u| never(u))
        .map(|u| u.id.clone())
        .collect();
    let histories = store.histories(tenant_id, &ids).await?;
    for u in users.iter_mut().filter(|u| never(u)) {
        let history = histories.get(&u.id).map(Vec::as_slice).unwrap_or_default();
        for h in &mut u.held {
            h.since = since(history, &h.sku_id);
        }
    }
    Ok(())
}

/// When the current holding of a SKU began, by licensewatch's history: the last `added` with no `removed` after
/// it; `true` when that is the baseline (held before licensewatch watched).
fn since(history: &[HistoryEntry], sku_id: &str) -> Option<(DateTime<Utc>, bool)> {
    let mut current = None;
    for e in history
        .iter()
        .filter(|e| e.sku_id.eq_ignore_ascii_case(sku_id))
    {
        match e.change.as_str() {
            "added" => current = Some((e.at, e.baseline)),
            "removed" => current = None,
            _ => {}
        }
    }
    current
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mailbox_report_is_read_with_its_bom_and_blank_days_and_concealed_names_are_refused() {
        let csv = "\u{feff}Report Refresh Date,User Principal Name,Display Name,Is Deleted,Deleted Date,Created Date,Last Activity Date,Report Period\n\
                   2026-11-19,Ann@Contoso.com,Ann,False,,2024-01-01,2026-11-18,90\n\
                   2026-11-19,bob@contoso.com,\"Bob, Jr\",False,,2024-01-01,,90\n";
        let days = mailbox_activity(csv.as_bytes()).expect("report");
        assert_eq!(
            days["ann@contoso.com"],
            NaiveDate::from_ymd_opt(2026, 11, 18)
        );
        assert_eq!(days["bob@contoso.com"], None);
        let concealed = "Report Refresh Date,User Principal Name,Last Activity Date\n2026-11-19,8F3A2B9C1D,2026-11-18\n";
        let why = mailbox_activity(concealed.as_bytes()).expect_err("concealed");
        assert!(why.contains("conceals user names"), "{why}");
        let why = mailbox_activity(b"a,b\n1,2\n").expect_err("columns");
        assert!(why.contains("'User Principal Name'"), "{why}");
    }

    #[test]
    fn a_licence_removed_and_added_again_counts_from_its_last_arrival() {
        let at = |d: &str| -> DateTime<Utc> { format!("{d}T00:00:00Z").parse().expect("time") };
        let entry = |change: &str, day: &str, baseline: bool| HistoryEntry {
            user_id: "u".into(),
            user_principal_name: "u@x".into(),
            sku_id: "SKU".into(),
            change: change.into(),
            at: at(day),
            baseline,
            since: None,
        };
        let history = vec![
            entry("added", "2026-01-01", true),
            entry("removed", "2026-05-01", false),
            entry("added", "2026-09-01", false),
        ];
        assert_eq!(since(&history, "sku"), Some((at("2026-09-01"), false)));
        assert_eq!(since(&history[..2], "sku"), None);
        assert_eq!(since(&history[..1], "sku"), Some((at("2026-01-01"), true)));
    }
}
