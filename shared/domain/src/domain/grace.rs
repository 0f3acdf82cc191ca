//! Grace-period maths for mailboxes without an enabled Exchange plan: which evidence dates the start, which case
//! applies, and the deadlines that follow (BRIEF section 6; every period comes from the `[grace]` policy).

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::assignment::AssignmentError;
use crate::domain::attempt::{Attempt, AttemptSource};
use crate::domain::kinds::Severity;
use crate::domain::license_event::LicenseEvent;
use crate::domain::snapshot::UserRef;
use crate::policy::GracePolicy;

/// What dates the start of a grace period, strongest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord, Hash)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceKind {
    /// The audit event that removed the licence.
    AuditRemoval,
    /// A failed licence assignment for the user in the audit log (seed 000).
    AuditFailedAssignment,
    /// The first snapshot that saw the licence gone.
    SnapshotDiff,
    /// The account's `createdDateTime`, when it is younger than the grace period.
    Created,
    /// The first snapshot that saw the user unlicensed: the real deadline may be earlier.
    FirstSeen,
}

/// One piece of evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// Which kind.
    pub kind: EvidenceKind,
    /// The moment it dates.
    pub at: DateTime<Utc>,
}

/// The two grace cases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseKind {
    /// Created or migrated without a licence.
    NeverLicensed,
    /// A licence with Exchange was removed.
    LicenseRemoved,
}

impl std::fmt::Display for EvidenceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EvidenceKind::AuditRemoval => "audit_removal",
            EvidenceKind::AuditFailedAssignment => "audit_failed_assignment",
            EvidenceKind::SnapshotDiff => "snapshot_diff",
            EvidenceKind::Created => "created",
            EvidenceKind::FirstSeen => "first_seen",
        })
    }
}

impl std::fmt::Display for CaseKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CaseKind::NeverLicensed => "never licensed",
            CaseKind::LicenseRemoved => "licence removed",
        })
    }
}

/// A dated grace case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deadlines {
    /// Case.
    pub case: CaseKind,
    /// The evidence used.
    pub evidence: Evidence,
    /// When mailbox access ends (already past for a removal without Delayed Delicensing).
    pub access_ends_at: DateTime<Utc>,
    /// When the mailbox data is deleted.
    pub data_deleted_at: DateTime<Utc>,
}

impl EvidenceKind {
    /// The case this evidence implies.
    pub fn case(self) -> CaseKind {
        match self {
            EvidenceKind::AuditRemoval | EvidenceKind::SnapshotDiff => CaseKind::LicenseRemoved,
            EvidenceKind::AuditFailedAssignment
            | EvidenceKind::Created
            | EvidenceKind::FirstSeen => CaseKind::NeverLicensed,
        }
    }
}

/// Picks the strongest usable evidence. `created` counts only when the account was younger than the grace period at
/// `reference` (when licensewatch first saw the case), so a case keeps its dates as time passes.
pub(crate) fn strongest(
    candidates: &[Evidence],
    reference: DateTime<Utc>,
    grace: &GracePolicy,
) -> Option<Evidence> {
    candidates
        .iter()
        .filter(|e| {
            e.kind != EvidenceKind::Created
                || reference - e.at < Duration::days(grace.never_licensed_days)
        })
        .min_by_key(|e| {
            // Of two removals the latest started the current case; of two failed assignments (or sightings) the
            // earliest is closest to when the mailbox began running without a licence.
            let later_first = matches!(
                e.kind,
                EvidenceKind::AuditRemoval | EvidenceKind::SnapshotDiff
            );
            let t = e.at.timestamp_millis();
            (e.kind, if later_first { -t } else { t })
        })
        .copied()
}

/// The deadlines for a case started by `evidence`.
pub fn deadlines(evidence: Evidence, delayed_delicensing: bool, grace: &GracePolicy) -> Deadlines {
    let start = evidence.at;
    let case = evidence.kind.case();
    let (access_ends_at, data_deleted_at) = match (case, delayed_delicensing) {
        (CaseKind::NeverLicensed, _) => {
            let access = start + Duration::days(grace.never_licensed_days);
            (
                access,
                access + Duration::days(grace.never_licensed_retention_days),
            )
        }
        (CaseKind::LicenseRemoved, false) => {
            (start, start + Duration::days(grace.removed_retention_days))
        }
        (CaseKind::LicenseRemoved, true) => (
            start + Duration::days(grace.delayed_access_days),
            start + Duration::days(grace.delayed_retention_days),
        ),
    };
    Deadlines {
        case,
        evidence,
        access_ends_at,
        data_deleted_at,
    }
}

impl Deadlines {
    /// The next deadline that has not passed at `now`, if any.
    pub(crate) fn next_deadline(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        [self.access_ends_at, self.data_deleted_at]
            .into_iter()
            .find(|d| *d > now)
    }

    /// Whole days (rounded down) to the next deadline that has not passed; 0 when every deadline has passed.
    pub fn days_left(&self, now: DateTime<Utc>) -> i64 {
        self.next_deadline(now)
            .map(|d| (d - now).num_days())
            .unwrap_or(0)
    }

    /// True once mailbox access has ended.
    pub fn access_gone(&self, now: DateTime<Utc>) -> bool {
        now >= self.access_ends_at
    }
}

impl Deadlines {
    /// How urgent the case is at `now`: critical once access is gone or within 3 days of the next deadline.
    pub fn severity(&self, now: DateTime<Utc>) -> Severity {
        if self.access_gone(now) || self.days_left(now) <= 3 {
            Severity::Critical
        } else {
            Severity::Warning
        }
    }
}

/// A mailbox in a grace period, followed across runs under a stable id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraceCase {
    /// Stable per tenant and user.
    pub case_id: String,
    /// Tenant.
    pub tenant_id: String,
    /// User id.
    pub user_id: String,
    /// UPN.
    pub user_principal_name: String,
    /// Display name.
    pub display_name: Option<String>,
    /// The user's mailbox address.
    pub mail: Option<String>,
    /// Every piece of evidence gathered so far.
    pub evidence: Vec<Evidence>,
    /// The deadlines from the strongest evidence.
    pub deadlines: Deadlines,
    /// What is blocking a licence, if known (e.g. a group error), to tell admins what to do.
    pub blocked_by: Option<String>,
    /// For a failed assignment: which SKUs it tried to add, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempted: Option<Attempt>,
    /// First run that opened it.
    pub opened_at: DateTime<Utc>,
    /// Last run that changed it.
    pub updated_at: DateTime<Utc>,
    /// When an enabled Exchange plan came back (or the mailbox went away).
    pub closed_at: Option<DateTime<Utc>>,
    /// Why it closed.
    pub close_reason: Option<String>,
}

impl GraceCase {
    /// True when this run's case says something `prior` (the stored case) does not: only those are written, so a
    /// run over a tenant with thousands of unchanged open cases does not rewrite them all.
    pub fn changed_since(&self, prior: &GraceCase) -> bool {
        let mut same_time = self.clone();
        same_time.updated_at = prior.updated_at;
        same_time != *prior
    }
}

/// The stable case id of a user's grace case in a tenant.
pub fn case_id(tenant_id: &str, user_id: &str) -> String {
    let h = Sha256::digest(format!(
        "{}|{}",
        tenant_id.to_ascii_lowercase(),
        user_id.to_ascii_lowercase()
    ));
    let hex: String = h.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("gc-{hex}")
}

/// What is known about one member mailbox without an enabled Exchange plan, to date its grace case.
#[derive(Debug)]
pub struct MailboxFacts<'a> {
    /// Tenant.
    pub tenant_id: &'a str,
    /// The user now.
    pub user: UserRef<'a>,
    /// Every licence event of the tenant (the rules pick the user's).
    pub events: &'a [LicenseEvent],
    /// The previous snapshot showed the user with an enabled Exchange plan.
    pub had_exchange_before: bool,
    /// The user's open case, if any.
    pub prior: Option<&'a GraceCase>,
    /// SKUs a pending remediation request asks to assign to the user.
    pub requested_sku_ids: Vec<String>,
    /// Groups with licence errors (id → display name).
    pub groups: &'a HashMap<String, String>,
}

/// The user's grace case at `now`: the prior case updated with today's evidence, or a new one. `None` when no
/// evidence is usable (never, in practice: first sight always is).
pub fn follow_case(
    facts: &MailboxFacts,
    delayed_delicensing: bool,
    grace: &GracePolicy,
    now: DateTime<Utc>,
) -> Option<GraceCase> {
    let u = facts.user;
    let opened_at = facts.prior.map_or(now, |c| c.opened_at);
    let since_grant = since_last_grant(facts.events, u);
    let evidence = gather_evidence(facts, &since_grant, opened_at, now);
    let best = strongest(&evidence, opened_at, grace)?;
    let attempted = (best.kind == EvidenceKind::AuditFailedAssignment)
        .then(|| attempted_skus(&since_grant, u, &facts.requested_sku_ids));
    Some(GraceCase {
        case_id: case_id(facts.tenant_id, u.id()),
        tenant_id: facts.tenant_id.to_string(),
        user_id: u.id().to_string(),
        user_principal_name: u.upn().to_string(),
        display_name: u.display_name().map(str::to_string),
        mail: u.mail().map(str::to_string),
        deadlines: deadlines(best, delayed_delicensing, grace),
        evidence,
        blocked_by: blocked_by(u, facts.groups),
        attempted,
        opened_at,
        updated_at: now,
        closed_at: None,
        close_reason: None,
    })
}

/// The user's licence events since they last successfully got a licence: only those can explain the current state.
pub(crate) fn since_last_grant<'e>(
    events: &'e [LicenseEvent],
    user: UserRef<'_>,
) -> Vec<&'e LicenseEvent> {
    let mine: Vec<&LicenseEvent> = events
        .iter()
        .filter(|e| e.concerns(user.id(), user.upn()))
        .collect();
    let last_grant = mine
        .iter()
        .filter(|e| !e.failed() && !e.added_sku_ids.is_empty())
        .map(|e| e.at)
        .max();
    mine.into_iter()
        .filter(|e| last_grant.is_none_or(|g| e.at > g))
        .collect()
}

/// Every piece of evidence for the case, old and new, sorted and without repeats.
fn gather_evidence(
    facts: &MailboxFacts,
    since_grant: &[&LicenseEvent],
    opened_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Vec<Evidence> {
    let mut evidence: Vec<Evidence> = facts.prior.map(|c| c.evidence.clone()).unwrap_or_default();
    for e in since_grant {
        if !e.failed() && !e.removed_sku_ids.is_empty() {
            evidence.push(Evidence {
                kind: EvidenceKind::AuditRemoval,
                at: e.at,
            });
        }
        // A failed licence write for a user with no Exchange now is evidence whether or not the record names SKUs:
        // real failure records do not (nothing changed, so nothing was diffed).
        if e.failed() {
            evidence.push(Evidence {
                kind: EvidenceKind::AuditFailedAssignment,
                at: e.at,
            });
        }
    }
    if facts.had_exchange_before {
        evidence.push(Evidence {
            kind: EvidenceKind::SnapshotDiff,
            at: now,
        });
    }
    if let Some(created) = facts.user.created() {
        evidence.push(Evidence {
            kind: EvidenceKind::Created,
            at: created,
        });
    }
    evidence.push(Evidence {
        kind: EvidenceKind::FirstSeen,
        at: opened_at,
    });
    evidence.sort_by_key(|e| (e.kind, e.at));
    evidence.dedup();
    evidence
}

fn sorted_unique(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v.dedup();
    v
}

/// Which SKUs a user's failed assignments tried to add: from the failure records when they say (rarely), else the
/// user's licences in error, else a remediation request asking for SKUs, else unknown.
pub(crate) fn attempted_skus(
    since_grant: &[&LicenseEvent],
    user: UserRef<'_>,
    requested_sku_ids: &[String],
) -> Attempt {
    let from_records = sorted_unique(
        since_grant
            .iter()
            .filter(|e| e.failed())
            .flat_map(|e| e.added_sku_ids.iter().cloned())
            .collect(),
    );
    let in_error = sorted_unique(
        user.states()
            .filter(|s| s.error.is_some())
            .map(|s| s.sku_id.to_string())
            .collect(),
    );
    let requested = sorted_unique(
        requested_sku_ids
            .iter()
            .map(|s| s.to_ascii_lowercase())
            .collect(),
    );
    [
        (from_records, AttemptSource::AuditRecord),
        (in_error, AttemptSource::LicenseAssignmentStates),
        (requested, AttemptSource::RemediationRequest),
    ]
    .into_iter()
    .find(|(ids, _)| !ids.is_empty())
    .map_or(
        Attempt {
            sku_ids: Vec::new(),
            source: AttemptSource::Unknown,
        },
        |(sku_ids, source)| Attempt { sku_ids, source },
    )
}

/// What blocks a licence, for admins: the first root-cause assignment error, with its group's name when known.
pub fn blocked_by(user: UserRef<'_>, groups: &HashMap<String, String>) -> Option<String> {
    let s = user
        .states()
        .find(|s| s.error.is_some_and(AssignmentError::is_root_cause))?;
    let error = s.error.map(AssignmentError::as_str).unwrap_or_default();
    Some(match s.group {
        Some(g) => {
            let name = groups.get(g).map_or(g, String::as_str);
            format!("group '{name}': {error} on SKU {}", s.sku_id)
        }
        None => format!("{error} on SKU {}", s.sku_id),
    })
}

/// Why an open case closes, given the user as the snapshot shows them now (`None`: deleted).
pub fn close_reason(user: Option<UserRef<'_>>) -> &'static str {
    match user {
        Some(u) if u.exchange_enabled() => "an enabled Exchange plan is assigned again",
        Some(u) if !u.account_enabled() => "the account was disabled",
        Some(_) => "the user no longer has a member mailbox",
        None => "the user was deleted",
    }
}

/// Whether a user's mailbox can be in a grace period, as far as the directory tells: a member's enabled account with
/// a mailbox (a mail address or an SMTP proxy address) and no enabled Exchange plan. What the mailbox is for
/// ([`needs_a_licence`]) is the other half, read for these users only.
pub fn may_be_in_grace(user: UserRef<'_>) -> bool {
    user.is_member_mailbox() && !user.exchange_enabled()
}

/// Whether a mailbox of this purpose needs a licence at all: shared, room and equipment mailboxes do not, and are
/// never grace cases, whatever their account's state.
pub fn needs_a_licence(purpose: crate::domain::kinds::MailboxPurpose) -> bool {
    !purpose.needs_no_licence()
}

/// Who a notice is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeFor {
    /// The tenant's admins (and service desks).
    Admin,
    /// The user whose mailbox it is.
    User,
}

/// A notice a case is due, before channels and recipients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoticeDue {
    /// For whom.
    pub audience: NoticeFor,
    /// What it says.
    pub kind: crate::domain::kinds::NoticeKind,
    /// The days-left threshold reached (threshold notices).
    pub threshold: Option<i64>,
    /// The deadline it is about (none for a resolution).
    pub deadline: Option<DateTime<Utc>>,
}

/// When notices go out (`[notify]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoticeRules<'a> {
    /// Days left at which admins are told.
    pub admin_thresholds_days: &'a [i64],
    /// Days left at which users are told.
    pub user_thresholds_days: &'a [i64],
    /// Users are told at all.
    pub notify_users: bool,
}

/// The most urgent threshold reached: the smallest threshold that `days_left` is at or below.
pub fn due_threshold(days_left: i64, thresholds: &[i64]) -> Option<i64> {
    thresholds.iter().copied().filter(|t| days_left <= *t).min()
}

/// How long admins hear that a case they were told of was resolved.
const RESOLVED_NOTICE_DAYS: i64 = 30;

/// The notices case `c` is due at `now`: a closed case the admins were told of is a resolution (for 30 days); an
/// open one, "access ended" once it has, and the most urgent threshold reached for the admins and (while the user
/// can still read the mailbox, and has a mail address) the user. Which were already sent is the ledger's business.
pub fn notices_due(
    c: &GraceCase,
    admins_were_told: bool,
    rules: &NoticeRules<'_>,
    now: DateTime<Utc>,
) -> Vec<NoticeDue> {
    use crate::domain::kinds::NoticeKind;
    let notice = |audience, kind, threshold, deadline| NoticeDue {
        audience,
        kind,
        threshold,
        deadline,
    };
    let d = &c.deadlines;
    if let Some(closed) = c.closed_at {
        return match admins_were_told && now - closed < Duration::days(RESOLVED_NOTICE_DAYS) {
            true => vec![notice(NoticeFor::Admin, NoticeKind::Resolved, None, None)],
            false => Vec::new(),
        };
    }
    let mut due = Vec::new();
    if d.access_gone(now) {
        due.push(notice(
            NoticeFor::Admin,
            NoticeKind::AccessGone,
            None,
            Some(d.access_ends_at),
        ));
    }
    let Some(next) = d.next_deadline(now) else {
        return due;
    };
    let days_left = d.days_left(now);
    if let Some(t) = due_threshold(days_left, rules.admin_thresholds_days) {
        due.push(notice(
            NoticeFor::Admin,
            NoticeKind::Threshold,
            Some(t),
            Some(next),
        ));
    }
    if rules.notify_users
        && !d.access_gone(now)
        && c.mail.is_some()
        && let Some(t) = due_threshold(days_left, rules.user_thresholds_days)
    {
        due.push(notice(
            NoticeFor::User,
            NoticeKind::Threshold,
            Some(t),
            Some(next),
        ));
    }
    due
}

/// Days left at or below which a threshold notice is critical.
const CRITICAL_DAYS: i64 = 3;

/// Whether a notice is critical: alerts, ended access and the last three days are.
pub fn notice_is_critical(kind: crate::domain::kinds::NoticeKind, threshold: Option<i64>) -> bool {
    use crate::domain::kinds::NoticeKind;
    kind == NoticeKind::Alert
        || kind == NoticeKind::AccessGone
        || threshold.is_some_and(critical_days_left)
}

/// Whether this few days left before a deadline is critical (the last three days).
pub fn critical_days_left(days_left: i64) -> bool {
    days_left <= CRITICAL_DAYS
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(m: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, m, d, h, 0, 0)
            .single()
            .expect("valid")
    }
    fn ev(kind: EvidenceKind, at: DateTime<Utc>) -> Evidence {
        Evidence { kind, at }
    }

    #[test]
    fn never_licensed_mailbox_has_thirty_days_then_thirty_more() {
        let g = GracePolicy::default();
        let d = deadlines(
            ev(EvidenceKind::AuditFailedAssignment, t(10, 24, 10)),
            false,
            &g,
        );
        assert_eq!(d.case, CaseKind::NeverLicensed);
        assert_eq!(d.access_ends_at, t(11, 23, 10));
        assert_eq!(d.data_deleted_at, t(12, 23, 10));
        assert_eq!(d.days_left(t(11, 21, 9)), 2);
        assert_eq!(d.days_left(t(11, 23, 9)), 0, "under a day left counts as 0");
        assert_eq!(
            d.days_left(t(11, 24, 10)),
            29,
            "after access ends, counts to deletion"
        );
        assert_eq!(d.days_left(t(12, 24, 10)), 0);
    }

    #[test]
    fn removal_without_delayed_delicensing_loses_access_at_once() {
        let g = GracePolicy::default();
        let d = deadlines(ev(EvidenceKind::AuditRemoval, t(11, 19, 14)), false, &g);
        assert_eq!(d.case, CaseKind::LicenseRemoved);
        assert_eq!(d.access_ends_at, t(11, 19, 14));
        assert!(d.access_gone(t(11, 19, 14)));
        assert_eq!(d.data_deleted_at, t(12, 19, 14));
        assert_eq!(d.days_left(t(11, 21, 14)), 28);
    }

    #[test]
    fn removal_with_delayed_delicensing_keeps_access_thirty_days_and_data_sixty() {
        let g = GracePolicy::default();
        let d = deadlines(ev(EvidenceKind::SnapshotDiff, t(11, 1, 0)), true, &g);
        assert_eq!(d.access_ends_at, t(12, 1, 0));
        assert_eq!(d.data_deleted_at, t(12, 31, 0));
        assert!(!d.access_gone(t(11, 30, 0)));
    }

    #[test]
    fn strongest_evidence_wins_and_old_accounts_ignore_created() {
        let g = GracePolicy::default();
        let now = t(11, 21, 9);
        let all = [
            ev(EvidenceKind::FirstSeen, t(11, 20, 0)),
            ev(EvidenceKind::Created, t(11, 10, 0)),
            ev(EvidenceKind::AuditFailedAssignment, t(11, 10, 1)),
        ];
        assert_eq!(
            strongest(&all, now, &g).map(|e| e.kind),
            Some(EvidenceKind::AuditFailedAssignment)
        );
        assert_eq!(
            strongest(&all[..2], now, &g).map(|e| e.kind),
            Some(EvidenceKind::Created)
        );
        let old = [
            ev(EvidenceKind::Created, t(9, 1, 0)),
            ev(EvidenceKind::FirstSeen, t(11, 20, 0)),
        ];
        assert_eq!(
            strongest(&old, now, &g).map(|e| e.kind),
            Some(EvidenceKind::FirstSeen)
        );
        // Of two failed assignments, the earliest dates the case.
        let failed = [
            ev(EvidenceKind::AuditFailedAssignment, t(10, 24, 0)),
            ev(EvidenceKind::AuditFailedAssignment, t(11, 2, 0)),
        ];
        assert_eq!(
            strongest(&failed, now, &g).map(|e| e.at),
            Some(t(10, 24, 0))
        );
        // Of two removals, the latest one started the current case.
        let removals = [
            ev(EvidenceKind::AuditRemoval, t(10, 1, 0)),
            ev(EvidenceKind::AuditRemoval, t(11, 19, 0)),
        ];
        assert_eq!(
            strongest(&removals, now, &g).map(|e| e.at),
            Some(t(11, 19, 0))
        );
    }

    #[test]
    fn periods_come_from_policy() {
        let g = GracePolicy {
            never_licensed_days: 60,
            ..GracePolicy::default()
        };
        let d = deadlines(ev(EvidenceKind::Created, t(11, 1, 0)), false, &g);
        assert_eq!(d.access_ends_at, t(12, 31, 0));
    }

    #[test]
    fn which_notices_a_case_is_due_and_which_are_critical() {
        use crate::domain::kinds::NoticeKind;
        let d = deadlines(
            ev(EvidenceKind::AuditFailedAssignment, t(10, 24, 10)),
            false,
            &GracePolicy::default(),
        );
        let case = GraceCase {
            case_id: "c".into(),
            tenant_id: "t".into(),
            user_id: "u".into(),
            user_principal_name: "u@contoso.com".into(),
            display_name: None,
            mail: Some("u@contoso.com".into()),
            evidence: vec![d.evidence],
            deadlines: d,
            blocked_by: None,
            attempted: None,
            opened_at: t(10, 25, 9),
            updated_at: t(10, 25, 9),
            closed_at: None,
            close_reason: None,
        };
        let rules = NoticeRules {
            admin_thresholds_days: &[21, 14, 7, 3, 1],
            user_thresholds_days: &[7, 1],
            notify_users: true,
        };
        let kinds = |due: &[NoticeDue]| -> Vec<(NoticeFor, NoticeKind, Option<i64>)> {
            due.iter()
                .map(|n| (n.audience, n.kind, n.threshold))
                .collect()
        };
        // 2 days before access ends (23 November): the 3-day threshold for admins, the 7-day one for the user.
        assert_eq!(
            kinds(&notices_due(&case, false, &rules, t(11, 21, 9))),
            [
                (NoticeFor::Admin, NoticeKind::Threshold, Some(3)),
                (NoticeFor::User, NoticeKind::Threshold, Some(7)),
            ]
        );
        // Without a mail address the user cannot be told.
        let no_mail = GraceCase {
            mail: None,
            ..case.clone()
        };
        assert_eq!(notices_due(&no_mail, false, &rules, t(11, 21, 9)).len(), 1);
        // After access ended: admins hear it, with the threshold towards deletion; the user no more.
        assert_eq!(
            kinds(&notices_due(&case, false, &rules, t(12, 20, 9))),
            [
                (NoticeFor::Admin, NoticeKind::AccessGone, None),
                (NoticeFor::Admin, NoticeKind::Threshold, Some(3)),
            ]
        );
        // Closed: a resolution only if admins were told, and for 30 days.
        let closed = GraceCase {
            closed_at: Some(t(11, 22, 9)),
            ..case.clone()
        };
        assert!(notices_due(&closed, false, &rules, t(11, 23, 9)).is_empty());
        assert_eq!(
            kinds(&notices_due(&closed, true, &rules, t(11, 23, 9))),
            [(NoticeFor::Admin, NoticeKind::Resolved, None)]
        );
        assert!(notices_due(&closed, true, &rules, t(12, 23, 9)).is_empty());
        assert!(notice_is_critical(NoticeKind::Threshold, Some(3)));
        assert!(!notice_is_critical(NoticeKind::Threshold, Some(7)));
        assert!(notice_is_critical(NoticeKind::AccessGone, None));
        assert!(notice_is_critical(NoticeKind::Alert, None));
    }
}
