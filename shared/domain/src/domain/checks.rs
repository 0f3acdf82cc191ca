//! license-check's rules: what a snapshot, the previous run and the licence events mean, as findings. Pure
//! functions of their inputs; the use case only reads, calls these, and writes.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::assignment::AssignmentError;
use crate::domain::catalog::Catalog;
use crate::domain::findings::{Cause, Detail, Finding, Severity};
use crate::domain::grace::{EvidenceKind, GraceCase};
use crate::domain::license_event::LicenseEvent;
use crate::domain::snapshot::{
    CommerceSnap, LicenseChange, PreviousRun, RecentRemoval, SkuSnap, Snapshot, UserRef,
};
use crate::policy::CheckPolicy;

/// A mailbox on a disabled account (shared or resource mailbox): reported apart, never a grace case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisabledMailbox {
    /// User id.
    pub user_id: String,
    /// UPN.
    pub user_principal_name: String,
    /// Holds an enabled Exchange plan.
    pub licensed: bool,
}

/// Findings per severity.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct BTreeCounts {
    /// critical
    pub critical: usize,
    /// warning
    pub warning: usize,
    /// info
    pub info: usize,
}

impl BTreeCounts {
    /// Counts findings by severity.
    pub fn of(findings: &[Finding]) -> Self {
        let mut counts = Self::default();
        for f in findings {
            match f.severity {
                Severity::Critical => counts.critical += 1,
                Severity::Warning => counts.warning += 1,
                Severity::Info => counts.info += 1,
            }
        }
        counts
    }
}

/// SKU part numbers: the tenant's own, else the catalog's.
pub struct SkuNames<'a> {
    skus: &'a [SkuSnap],
    catalog: &'a Catalog,
}

impl<'a> SkuNames<'a> {
    /// Names from the tenant's SKUs and the catalog.
    pub fn new(skus: &'a [SkuSnap], catalog: &'a Catalog) -> Self {
        Self { skus, catalog }
    }

    /// The part number of `sku_id`, or empty when nobody knows it.
    pub fn part(&self, sku_id: &str) -> String {
        self.skus
            .iter()
            .find(|s| s.sku_id == sku_id)
            .map(|s| s.part_number.clone())
            .or_else(|| self.catalog.sku(sku_id).map(|n| n.part_number.clone()))
            .unwrap_or_default()
    }
}

/// What the users of a snapshot say on their own: assignment errors, licensed disabled accounts, disabled mailboxes,
/// and who waits in CountViolation per SKU.
#[derive(Debug, Default)]
pub struct UserFindings<'s> {
    /// `license_assignment_error` and `licensed_disabled_account`.
    pub findings: Vec<Finding>,
    /// Shared/resource mailboxes on disabled accounts.
    pub disabled_mailboxes: Vec<DisabledMailbox>,
    /// SKU id → users in CountViolation on it.
    pub count_violations: HashMap<String, Vec<UserRef<'s>>>,
}

/// Reads every user of `snapshot`. `groups` names the groups with licence errors.
pub fn user_findings<'s>(
    snapshot: &'s Snapshot,
    groups: &HashMap<String, String>,
    names: &SkuNames,
) -> UserFindings<'s> {
    let mut out = UserFindings::default();
    for u in snapshot.users.iter() {
        for s in u.states().filter(|s| s.state.is_error()) {
            let error = s.error.cloned().unwrap_or(AssignmentError::Unknown);
            if error == AssignmentError::CountViolation {
                out.count_violations
                    .entry(s.sku_id.to_string())
                    .or_default()
                    .push(u);
            }
            // `Other` says only that a sibling from the same group failed: name the sibling's real error.
            let cause = (error == AssignmentError::Other)
                .then(|| {
                    u.states().find(|o| {
                        o.group == s.group
                            && o.sku_id != s.sku_id
                            && o.error.is_some_and(AssignmentError::is_root_cause)
                    })
                })
                .flatten()
                .map(|o| Cause {
                    sku_id: o.sku_id.to_string(),
                    sku_part_number: names.part(o.sku_id),
                    error: o.error.cloned().unwrap_or(AssignmentError::Unknown),
                });
            out.findings.push(Finding {
                severity: Severity::Warning,
                detail: Detail::LicenseAssignmentError {
                    user_id: u.id().to_string(),
                    user_principal_name: u.upn().to_string(),
                    sku_id: s.sku_id.to_string(),
                    sku_part_number: names.part(s.sku_id),
                    state: s.state.clone(),
                    error,
                    assigned_by_group: s.group.map(str::to_string),
                    group_display_name: s.group.and_then(|g| groups.get(g).cloned()),
                    cause,
                },
                suppressed: None,
            });
        }
        if !u.account_enabled() && u.is_licensed() {
            out.findings.push(Finding {
                severity: Severity::Info,
                detail: Detail::LicensedDisabledAccount {
                    user_id: u.id().to_string(),
                    user_principal_name: u.upn().to_string(),
                    sku_ids: u.sku_ids().map(str::to_string).collect(),
                },
                suppressed: None,
            });
        }
        if !u.account_enabled() && !u.guest() && u.mailbox() {
            out.disabled_mailboxes.push(DisabledMailbox {
                user_id: u.id().to_string(),
                user_principal_name: u.upn().to_string(),
                licensed: u.exchange_enabled(),
            });
        }
    }
    out
}

/// `sku_capacity` for each SKU that is out of seats, low, lapsing, or has users waiting in CountViolation.
pub fn capacity_findings(
    skus: &[SkuSnap],
    count_violations: &HashMap<String, Vec<UserRef<'_>>>,
    policy: &CheckPolicy,
) -> Vec<Finding> {
    skus.iter()
        .filter_map(|s| {
            let cv = count_violations.get(&s.sku_id).map_or(0, Vec::len);
            let (severity, reason) = capacity(s, cv, policy.sku_low_seats)?;
            Some(Finding {
                severity,
                detail: Detail::SkuCapacity {
                    sku_id: s.sku_id.clone(),
                    sku_part_number: s.part_number.clone(),
                    enabled: s.enabled,
                    consumed: s.consumed,
                    available: s.available(),
                    warning: s.warning,
                    suspended: s.suspended,
                    users_in_count_violation: cv,
                    reason,
                },
                suppressed: None,
            })
        })
        .collect()
}

/// A SKU's capacity problem, most urgent first, or `None`.
fn capacity(s: &SkuSnap, cv: usize, low_seats: i64) -> Option<(Severity, String)> {
    let available = s.available();
    Some(if available <= 0 && cv > 0 {
        (
            Severity::Critical,
            format!("no seats left and {cv} user(s) waiting in CountViolation"),
        )
    } else if available <= 0 && s.enabled > 0 {
        (Severity::Warning, "no seats left".to_string())
    } else if cv > 0 {
        (
            Severity::Warning,
            format!(
                "{available} seat(s) free but {cv} user(s) still in CountViolation: reprocess them"
            ),
        )
    } else if s.warning > 0 || s.suspended > 0 {
        (
            Severity::Warning,
            format!(
                "{} seat(s) in warning and {} suspended: a subscription is lapsing",
                s.warning, s.suspended
            ),
        )
    } else if s.enabled > 0 && available <= low_seats {
        (Severity::Warning, format!("only {available} seat(s) left"))
    } else {
        return None;
    })
}

/// `overlapping_licenses` for each user holding two SKUs that give the same service (info: money to save).
pub fn overlap_findings(snapshot: &Snapshot, price: &dyn Fn(&str) -> Option<f64>) -> Vec<Finding> {
    use crate::domain::overlap::{HeldRef, SkuPlansRef, overlaps};
    let skus: Vec<SkuPlansRef<'_>> = snapshot.skus.iter().map(SkuPlansRef::from).collect();
    let part = |id: &str| {
        skus.iter()
            .find(|k| k.sku_id.eq_ignore_ascii_case(id))
            .map_or_else(|| id.to_string(), |k| k.part_number.to_string())
    };
    let mut out = Vec::new();
    for u in snapshot.users.iter().filter(|u| u.licenses().len() > 1) {
        let held: Vec<HeldRef<'_>> = (u.licenses())
            .map(|l| HeldRef {
                sku_id: l.sku_id,
                disabled_plans: l.disabled_plans().collect(),
            })
            .collect();
        let price_of = |id: &str| price(id).or_else(|| price(&part(id)));
        for o in overlaps(&held, &skus, &price_of) {
            let via_group = u
                .states()
                .find(|s| s.sku_id.eq_ignore_ascii_case(&o.remove) && s.group.is_some())
                .and_then(|s| s.group.map(str::to_string));
            out.push(Finding {
                severity: Severity::Info,
                detail: Detail::OverlappingLicenses {
                    user_id: u.id().to_string(),
                    user_principal_name: u.upn().to_string(),
                    remove_sku_part_number: part(&o.remove),
                    keep_sku_part_number: part(&o.keep),
                    monthly_saving: price_of(&o.remove),
                    remove_sku_id: o.remove,
                    keep_sku_id: o.keep,
                    shared_services: o.shared.iter().map(|s| s.to_string()).collect(),
                    covered: o.covered,
                    via_group,
                },
                suppressed: None,
            });
        }
    }
    out
}

/// Renewal-aware capacity from the commercial subscriptions behind the SKUs. An enabled, paid subscription is not
/// at risk whatever its next lifecycle date (a monthly one has one every month and renews itself; Graph does not
/// say whether auto-renewal is on, and Microsoft renews by default): only its unassigned seats are worth a note
/// before it renews. At risk: a subscription in `Warning` (expired, in grace), `Suspended` or `LockedOut`, and a
/// trial ending within the notice period; the users affected are those the SKU cannot seat once its seats go.
pub fn subscription_findings(
    subscriptions: &[CommerceSnap],
    skus: &[SkuSnap],
    now: DateTime<Utc>,
    policy: &CheckPolicy,
) -> Vec<Finding> {
    let notice = Duration::days(i64::from(policy.renewal_notice_days));
    let soon = |at: Option<DateTime<Utc>>| at.is_some_and(|t| t <= now + notice);
    let mut out = Vec::new();
    for sub in subscriptions {
        let Some(sku) = skus
            .iter()
            .find(|k| k.sku_id.eq_ignore_ascii_case(&sub.sku_id))
        else {
            continue;
        };
        let part = sub
            .sku_part_number
            .clone()
            .unwrap_or_else(|| sku.part_number.clone());
        let status = sub.status.as_str();
        let lapsing = match status {
            "Warning" | "Suspended" | "LockedOut" => true,
            "Enabled" => sub.is_trial && soon(sub.next_lifecycle),
            _ => false,
        };
        if lapsing {
            // Seats still usable once this subscription's are gone: the enabled and warning seats of the SKU,
            // less this one's when they are counted there.
            let counted = match status {
                "Enabled" | "Warning" => sub.total_licenses,
                _ => 0,
            };
            let left = (sku.enabled + sku.warning - counted).max(0);
            let users_affected = (sku.consumed - left).max(0);
            let within_a_week = sub
                .next_lifecycle
                .is_some_and(|t| t <= now + Duration::days(7));
            let severity = match (users_affected > 0, status) {
                (true, "Suspended" | "LockedOut") => Severity::Critical,
                (true, _) if within_a_week => Severity::Critical,
                (true, _) => Severity::Warning,
                (false, _) => Severity::Info,
            };
            let when = sub.next_lifecycle.map_or_else(
                || "soon".to_string(),
                |t| format!("on {}", t.format("%Y-%m-%d")),
            );
            let reason = match (status, sub.is_trial) {
                ("Enabled", true) => format!("the trial ends {when}"),
                ("Warning", _) => {
                    format!("expired: in its grace period, suspended {when} unless renewed")
                }
                ("Suspended", _) => format!("suspended: deleted {when} unless reactivated"),
                _ => format!("locked out ({status})"),
            };
            out.push(Finding {
                severity,
                detail: Detail::SubscriptionLapsing {
                    subscription_id: sub.id.clone(),
                    sku_id: sku.sku_id.clone(),
                    sku_part_number: part,
                    status: sub.status.clone(),
                    is_trial: sub.is_trial,
                    next_lifecycle_at: sub.next_lifecycle,
                    total_licenses: sub.total_licenses,
                    users_affected,
                    reason,
                },
                suppressed: None,
            });
        } else if status == "Enabled"
            && !sub.is_trial
            && sku.available() > 0
            && let Some(renews_at) = sub.next_lifecycle.filter(|t| soon(Some(*t)))
        {
            out.push(Finding {
                severity: Severity::Info,
                detail: Detail::UnusedSeatsBeforeRenewal {
                    subscription_id: sub.id.clone(),
                    sku_id: sku.sku_id.clone(),
                    sku_part_number: part,
                    renews_at,
                    total_licenses: sub.total_licenses,
                    unassigned: sku.available().min(sub.total_licenses),
                },
                suppressed: None,
            });
        }
    }
    out
}

/// `license_added` / `license_removed` for each change since the previous run, explained by a licence event when
/// one accounts for it; a removal nobody explains is a warning.
pub fn change_findings(
    changes: &[LicenseChange],
    events: &[LicenseEvent],
    previous_at: DateTime<Utc>,
    now: DateTime<Utc>,
    names: &SkuNames,
) -> Vec<Finding> {
    changes
        .iter()
        .map(|c| {
            let event = explaining_event(events, c, previous_at, now);
            let explained = event.is_some();
            let actor = event.and_then(|e| e.actor.clone());
            let (user_id, user_principal_name, sku_id, sku_part_number) = (
                c.user_id.clone(),
                c.upn.clone(),
                c.sku_id.clone(),
                names.part(&c.sku_id),
            );
            let detail = if c.added {
                Detail::LicenseAdded {
                    user_id,
                    user_principal_name,
                    sku_id,
                    sku_part_number,
                    observed_at: now,
                    actor,
                    explained,
                }
            } else {
                Detail::LicenseRemoved {
                    user_id,
                    user_principal_name,
                    sku_id,
                    sku_part_number,
                    observed_at: now,
                    actor,
                    explained,
                }
            };
            let severity = if c.added || explained {
                Severity::Info
            } else {
                Severity::Warning
            };
            Finding {
                severity,
                detail,
                suppressed: None,
            }
        })
        .collect()
}

/// The audit event that accounts for a change seen between two snapshots, if any.
pub(crate) fn explaining_event<'e>(
    events: &'e [LicenseEvent],
    change: &LicenseChange,
    previous_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<&'e LicenseEvent> {
    // Audit records can lag the change itself, so allow a margin before the previous run.
    let from = previous_at - Duration::hours(1);
    events.iter().rev().find(|e| {
        !e.failed()
            && e.at > from
            && e.at <= now
            && e.concerns(&change.user_id, &change.upn)
            && if change.added {
                &e.added_sku_ids
            } else {
                &e.removed_sku_ids
            }
            .iter()
            .any(|s| s.eq_ignore_ascii_case(&change.sku_id))
    })
}

/// The removal window after this run: the previous run's removals still within `window` of `now`, and the users who
/// lost a licence in `changes` (first seen now; a user already in the window keeps its first time).
pub fn removal_window(
    previous: &[RecentRemoval],
    changes: &[LicenseChange],
    now: DateTime<Utc>,
    window: Duration,
) -> Vec<RecentRemoval> {
    let mut out: Vec<RecentRemoval> = previous
        .iter()
        .filter(|r| r.at > now - window && r.at <= now)
        .cloned()
        .collect();
    let mut seen: BTreeSet<String> = out.iter().map(|r| r.user_id.clone()).collect();
    for c in changes.iter().filter(|c| !c.added) {
        if seen.insert(c.user_id.clone()) {
            out.push(RecentRemoval {
                user_id: c.user_id.clone(),
                upn: c.upn.clone(),
                at: now,
            });
        }
    }
    out
}

/// `mass_delicensing` when the users who lost a licence within the window reach the policy's threshold: the smaller
/// of `mass_delicensing_min_users` and `mass_delicensing_percent` of the users licensed before (at least 1). Runs
/// close together (a scheduled check, targeted re-checks after change notifications) add up, so a removal spread
/// over several runs is one occurrence, raised by the run that crosses the threshold.
pub fn mass_delicensing(
    window: &[RecentRemoval],
    previous: &PreviousRun,
    policy: &CheckPolicy,
) -> Option<Finding> {
    let licensed_before = previous.users.iter().filter(|u| u.is_licensed()).count();
    let by_share =
        ((policy.mass_delicensing_percent / 100.0) * licensed_before as f64).ceil() as usize;
    let threshold = (policy.mass_delicensing_min_users as usize)
        .min(by_share)
        .max(1);
    let mut sample: Vec<&str> = window.iter().map(|r| r.upn.as_str()).collect();
    sample.sort_unstable();
    (window.len() >= threshold).then(|| Finding {
        severity: Severity::Critical,
        detail: Detail::MassDelicensing {
            removed_count: window.len(),
            threshold,
            sample_users: sample.iter().take(10).map(|s| s.to_string()).collect(),
        },
        suppressed: None,
    })
}

/// `unlicensed_mailbox` for an open grace case: critical once access is gone or within 3 days of a deadline.
/// `shared_mailbox_sign_in`: a shared, room or equipment mailbox whose account can sign in (it needs no licence,
/// but anyone with its password uses a mailbox nobody is licensed for: block sign-in).
pub fn shared_mailbox_sign_in(
    user_id: &str,
    upn: &str,
    purpose: crate::domain::kinds::MailboxPurpose,
) -> Finding {
    Finding {
        severity: Severity::Warning,
        detail: Detail::SharedMailboxSignIn {
            user_id: user_id.to_string(),
            user_principal_name: upn.to_string(),
            mailbox_purpose: purpose,
        },
        suppressed: None,
    }
}

pub fn unlicensed_mailbox(case: &GraceCase, now: DateTime<Utc>) -> Finding {
    let d = case.deadlines;
    Finding {
        severity: d.severity(now),
        detail: Detail::UnlicensedMailbox {
            user_id: case.user_id.clone(),
            user_principal_name: case.user_principal_name.clone(),
            case_id: case.case_id.clone(),
            case_type: d.case,
            grace_started_at: d.evidence.at,
            grace_evidence: d.evidence.kind,
            access_ends_at: d.access_ends_at,
            data_deleted_at: d.data_deleted_at,
            days_left: d.days_left(now),
            note: (d.evidence.kind == EvidenceKind::FirstSeen).then(|| {
                "first seen unlicensed by licensewatch; the mailbox may have been unlicensed earlier, so the real deadline may be earlier".to_string()
            }),
            attempted_sku_ids: case.attempted.as_ref().map(|a| a.sku_ids.clone()),
            attempted_sku_source: case.attempted.as_ref().map(|a| a.source),
        },
        suppressed: None,
    }
}

/// Most severe first, then by kind and user (or SKU), so that reports are stable.
pub fn sort_findings(findings: &mut [Finding]) {
    findings.sort_by(|a, b| {
        (a.severity, a.kind().as_str(), user_key(a)).cmp(&(
            b.severity,
            b.kind().as_str(),
            user_key(b),
        ))
    });
}

fn user_key(f: &Finding) -> String {
    match f.detail.user_principal_name() {
        Some(upn) => upn.to_ascii_lowercase(),
        None => f.detail.subject(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_removal_window_keeps_recent_removals_once_and_drops_old_ones() {
        let t = |m: i64| DateTime::<Utc>::MIN_UTC + Duration::days(1000) + Duration::minutes(m);
        let removal = |id: &str, at| RecentRemoval {
            user_id: id.into(),
            upn: format!("{id}@x"),
            at,
        };
        let change = |id: &str, added| LicenseChange {
            user_id: id.into(),
            upn: format!("{id}@x"),
            sku_id: "e3".into(),
            added,
        };
        let previous = vec![removal("old", t(0)), removal("a", t(30))];
        let changes = vec![
            change("a", false),
            change("b", false),
            change("b", false),
            change("c", true),
        ];
        let w = removal_window(&previous, &changes, t(70), Duration::minutes(60));
        let got: Vec<(&str, DateTime<Utc>)> =
            w.iter().map(|r| (r.user_id.as_str(), r.at)).collect();
        assert_eq!(got, vec![("a", t(30)), ("b", t(70))]);
        // A window of 0 judges the run alone: only this run's removals.
        let alone = removal_window(&previous, &changes, t(70), Duration::zero());
        let ids: Vec<&str> = alone.iter().map(|r| r.user_id.as_str()).collect();
        assert_eq!(ids, vec!["a", "b"]);
    }

    fn sku(enabled: i64, warning: i64, consumed: i64) -> SkuSnap {
        SkuSnap {
            sku_id: "e3".into(),
            part_number: "ENTERPRISEPACK".into(),
            enabled,
            consumed,
            warning,
            suspended: 0,
            plans: vec![],
        }
    }

    fn sub(status: &str, total: i64, days: i64, trial: bool, now: DateTime<Utc>) -> CommerceSnap {
        CommerceSnap {
            id: format!("{status}-{total}"),
            sku_id: "e3".into(),
            sku_part_number: None,
            status: status.into(),
            total_licenses: total,
            next_lifecycle: Some(now + Duration::days(days)),
            is_trial: trial,
        }
    }

    #[test]
    fn a_renewing_subscription_is_not_expiring_and_a_lapsing_one_names_who_loses_a_seat() {
        let now = DateTime::<Utc>::MIN_UTC + Duration::days(800_000);
        let policy = CheckPolicy::default();
        let kinds = |subs: &[CommerceSnap], k: &SkuSnap| -> Vec<(String, Severity, i64)> {
            subscription_findings(subs, std::slice::from_ref(k), now, &policy)
                .into_iter()
                .map(|f| {
                    let n = match &f.detail {
                        Detail::SubscriptionLapsing { users_affected, .. } => *users_affected,
                        Detail::UnusedSeatsBeforeRenewal { unassigned, .. } => *unassigned,
                        _ => -1,
                    };
                    (f.kind().to_string(), f.severity, n)
                })
                .collect()
        };
        // A monthly subscription renewing in 5 days, every seat used: nothing to say.
        assert!(kinds(&[sub("Enabled", 100, 5, false, now)], &sku(100, 0, 100)).is_empty());
        // The same with 12 seats unassigned: money to save before the renewal; not when it renews in 60 days.
        assert_eq!(
            kinds(&[sub("Enabled", 100, 5, false, now)], &sku(100, 0, 88)),
            vec![("unused_seats_before_renewal".into(), Severity::Info, 12)]
        );
        assert!(kinds(&[sub("Enabled", 100, 60, false, now)], &sku(100, 0, 88)).is_empty());
        // An annual subscription of 40 seats expired (Warning) beside a monthly one of 100: 130 users hold the SKU,
        // 100 seats stay, so 30 lose theirs when it is suspended in 20 days.
        let both = [
            sub("Enabled", 100, 20, false, now),
            sub("Warning", 40, 20, false, now),
        ];
        assert_eq!(
            kinds(&both, &sku(100, 40, 130)),
            vec![("subscription_lapsing".into(), Severity::Warning, 30)]
        );
        // Within a week it is critical; with seats enough for everybody it is only noted.
        let close = [
            sub("Enabled", 100, 3, false, now),
            sub("Warning", 40, 3, false, now),
        ];
        assert_eq!(kinds(&close, &sku(100, 40, 130))[0].1, Severity::Critical);
        assert_eq!(kinds(&both, &sku(100, 40, 90))[0].1, Severity::Info);
        // A trial ending in 10 days that 25 users depend on; one ending in 90 days is not yet worth a word.
        assert_eq!(
            kinds(&[sub("Enabled", 25, 10, true, now)], &sku(25, 0, 25)),
            vec![("subscription_lapsing".into(), Severity::Warning, 25)]
        );
        assert!(kinds(&[sub("Enabled", 25, 90, true, now)], &sku(25, 0, 25)).is_empty());
    }
}
