//! Grace-period maths for mailboxes without an enabled Exchange plan: which evidence dates the start, which case
//! applies, and the deadlines that follow (BRIEF section 6; every period comes from the `[grace]` policy).

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

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
pub fn strongest(
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
    pub fn next_deadline(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
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
}
