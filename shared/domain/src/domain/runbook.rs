//! What to do, for each case and alert: the recovery runbook every notice and ticket carries, with Microsoft's pages.
//! The steps follow where the mailbox stands: still working (assign or reprocess before the deadline), access ended
//! (a licence before the data is deleted reconnects it), data deleted (only a hold kept anything).

use chrono::{DateTime, Utc};

use crate::domain::grace::{CaseKind, GraceCase};
use crate::domain::kinds::AlertKind;

/// Assigning licences in the Microsoft 365 admin center.
pub(crate) const ASSIGN_LICENCES: &str =
    "https://learn.microsoft.com/en-us/microsoft-365/admin/manage/assign-licenses-to-users";
/// Group-based licensing errors and how to resolve them (reprocessing included).
pub(crate) const GROUP_LICENSING_PROBLEMS: &str =
    "https://learn.microsoft.com/en-us/entra/identity/users/licensing-groups-resolve-problems";
/// What happens to data when a licence is removed.
pub(crate) const LICENCE_REMOVAL: &str =
    "https://learn.microsoft.com/en-us/microsoft-365/commerce/licenses/remove-licenses-from-users";
/// Soft-deleted mailboxes: restoring them.
pub(crate) const RESTORE_MAILBOXES: &str = "https://learn.microsoft.com/en-us/exchange/recipients-in-exchange-online/delete-or-restore-mailboxes";
/// Inactive mailboxes (kept only under a hold).
pub(crate) const INACTIVE_MAILBOXES: &str =
    "https://learn.microsoft.com/en-us/purview/inactive-mailboxes-in-office-365";
/// Set-RemoteMailbox (stamping the ExchangeGuid on a migrated user).
pub(crate) const SET_REMOTE_MAILBOX: &str =
    "https://learn.microsoft.com/en-us/powershell/module/exchange/set-remotemailbox";

/// Numbered steps and the pages behind them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Runbook {
    /// What to do, in order.
    pub steps: Vec<String>,
    /// `(title, url)` of Microsoft's pages.
    pub links: Vec<(&'static str, &'static str)>,
}

impl Runbook {
    /// Plain text: numbered steps, then the links.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for (i, s) in self.steps.iter().enumerate() {
            out.push_str(&format!("{}. {s}\n", i + 1));
        }
        for (title, url) in &self.links {
            out.push_str(&format!("- {title}: {url}\n"));
        }
        out
    }
}

/// Where a mailbox stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Working,
    AccessEnded,
    DataDeleted,
}

fn stage(case: &GraceCase, now: DateTime<Utc>) -> Stage {
    let d = &case.deadlines;
    if now >= d.data_deleted_at {
        Stage::DataDeleted
    } else if d.access_gone(now) {
        Stage::AccessEnded
    } else {
        Stage::Working
    }
}

fn licence_step(case: &GraceCase, by: &str) -> String {
    let skus = case
        .attempted
        .as_ref()
        .map(|a| a.sku_ids.join(", "))
        .filter(|s| !s.is_empty());
    match (&case.blocked_by, skus) {
        (Some(b), _) if b.contains("group") || b.contains("Violation") => format!(
            "Fix the group licensing error ({b}): free or buy seats for CountViolation, set the usage location, or \
remove the conflicting licence; then reprocess {} (Entra admin center > Users > Licenses > Reprocess, or \
licensewatch's remediation action 'reprocess') {by}.",
            case.user_principal_name
        ),
        (Some(b), _) => format!(
            "Resolve {b}, then assign {} a licence that includes Exchange Online {by}.",
            case.user_principal_name
        ),
        (None, Some(skus)) => format!(
            "Assign {} the licence that failed ({skus}), or another that includes Exchange Online, {by}; check a seat \
is free first.",
            case.user_principal_name
        ),
        (None, None) => format!(
            "Assign {} a licence that includes Exchange Online {by}.",
            case.user_principal_name
        ),
    }
}

/// The ExchangeGuid step: a migrated mailbox reconnects only when the cloud user carries the on-premises mailbox's
/// ExchangeGuid; without it a licence provisions a new, empty mailbox.
fn exchange_guid_step() -> String {
    "If the mailbox was migrated from Exchange on-premises, check first that the user carries the on-premises \
ExchangeGuid (Set-RemoteMailbox -ExchangeGuid, then a directory sync): without it the licence creates a new, empty \
mailbox instead of reconnecting the migrated one."
        .to_string()
}

/// The runbook for a grace case at `now`, its times written by `day` (the tenant's time zone).
pub fn for_case(
    case: &GraceCase,
    now: DateTime<Utc>,
    day: &dyn Fn(&DateTime<Utc>) -> String,
) -> Runbook {
    let d = &case.deadlines;
    let mut steps = Vec::new();
    let mut links = vec![("Assign licenses to users", ASSIGN_LICENCES)];
    if case.blocked_by.is_some() {
        links.push((
            "Resolve group license assignment problems",
            GROUP_LICENSING_PROBLEMS,
        ));
    }
    match stage(case, now) {
        Stage::Working => {
            steps.push(licence_step(
                case,
                &format!("before {}", day(&d.access_ends_at)),
            ));
            if d.case == CaseKind::NeverLicensed {
                steps.push(exchange_guid_step());
                links.push(("Set-RemoteMailbox", SET_REMOTE_MAILBOX));
            }
            steps.push("Run license-check again (or wait for the next run): the case closes when an enabled Exchange plan is seen.".into());
        }
        Stage::AccessEnded => {
            steps.push(licence_step(
                case,
                &format!(
                    "before {}: the mailbox reconnects with its data",
                    day(&d.data_deleted_at)
                ),
            ));
            steps.push(exchange_guid_step());
            steps.push(
                "Tell the user that mail sent to them since access ended may have bounced.".into(),
            );
            links.push((
                "Remove licenses from users (what happens to data)",
                LICENCE_REMOVAL,
            ));
        }
        Stage::DataDeleted => {
            steps.push(format!(
                "The mailbox data of {} was due for deletion on {}: a licence now gives an empty mailbox.",
                case.user_principal_name,
                day(&d.data_deleted_at)
            ));
            steps.push("If a litigation hold or a retention policy applied before the licence went away, the mailbox is inactive, not deleted: recover or restore it from the inactive mailbox.".into());
            steps.push("If the user account was deleted, its soft-deleted mailbox can be restored for 30 days after the deletion (Get-Mailbox -SoftDeletedMailbox, New-MailboxRestoreRequest).".into());
            links.push(("Inactive mailboxes", INACTIVE_MAILBOXES));
            links.push(("Delete or restore mailboxes", RESTORE_MAILBOXES));
        }
    }
    Runbook { steps, links }
}

/// The runbook for an alert.
pub fn for_alert(kind: AlertKind) -> Runbook {
    let (steps, links): (Vec<&str>, Vec<(&'static str, &'static str)>) = match kind {
        AlertKind::MassDelicensing => (
            vec![
                "Find who removed the licences: `licensewatch history --user <upn>` or the audit search for the run's time.",
                "If it was not intended, assign the licences back before the mailboxes' data deletion dates (each user's case says when).",
            ],
            vec![(
                "Remove licenses from users (what happens to data)",
                LICENCE_REMOVAL,
            )],
        ),
        AlertKind::SkuExhausted | AlertKind::GroupLicenseFailed => (
            vec![
                "Free seats (the reclamation report lists licences unused for months) or buy more.",
                "Reprocess the group's users in error once seats are free (Entra admin center > Groups > Licenses > Reprocess).",
            ],
            vec![
                (
                    "Resolve group license assignment problems",
                    GROUP_LICENSING_PROBLEMS,
                ),
                ("Assign licenses to users", ASSIGN_LICENCES),
            ],
        ),
        AlertKind::SeatsRunningOut => (
            vec![
                "Buy the seats the alert names before the date it gives (or free some: the reclamation report lists licences unused for months).",
                "Seats bought in time mean no new starter waits in CountViolation without a mailbox.",
            ],
            vec![("Assign licenses to users", ASSIGN_LICENCES)],
        ),
        AlertKind::SubscriptionLapsing => (
            vec![
                "Renew the subscription, or move its users to another SKU before it is disabled: a lapsed subscription's users lose their mailboxes' licences.",
            ],
            vec![(
                "Remove licenses from users (what happens to data)",
                LICENCE_REMOVAL,
            )],
        ),
        AlertKind::AuditGap | AlertKind::AuditFeedDisabled => (
            vec![
                "Run `licensewatch doctor` to see which feed stopped and why.",
                "Start the Management API subscription again, then `licensewatch backfill` reads what the Purview audit log still holds.",
            ],
            vec![],
        ),
        AlertKind::ConsentMissing => (
            vec![
                "Ask the customer's Global Administrator to grant admin consent again (`licensewatch doctor --tenant <id>` prints the consent URL).",
            ],
            vec![],
        ),
    };
    Runbook {
        steps: steps.into_iter().map(str::to_string).collect(),
        links,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::grace::{Deadlines, Evidence, EvidenceKind};

    fn case(blocked: Option<&str>, kind: EvidenceKind) -> GraceCase {
        let evidence = Evidence {
            kind,
            at: at("2026-11-01T00:00:00Z"),
        };
        GraceCase {
            case_id: "c1".into(),
            tenant_id: "t".into(),
            user_id: "u".into(),
            user_principal_name: "megan@contoso.com".into(),
            display_name: None,
            mail: None,
            evidence: vec![evidence],
            deadlines: Deadlines {
                case: kind.case(),
                evidence,
                access_ends_at: at("2026-12-01T00:00:00Z"),
                data_deleted_at: at("2026-12-31T00:00:00Z"),
            },
            blocked_by: blocked.map(str::to_string),
            attempted: None,
            opened_at: at("2026-11-01T00:00:00Z"),
            updated_at: at("2026-11-01T00:00:00Z"),
            closed_at: None,
            close_reason: None,
        }
    }

    fn utc(t: &DateTime<Utc>) -> String {
        t.format("%Y-%m-%d %H:%M UTC").to_string()
    }

    fn at(d: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(d)
            .expect("time")
            .with_timezone(&Utc)
    }

    #[test]
    fn the_steps_follow_where_the_mailbox_stands() {
        let c = case(
            Some("group Sales: CountViolation"),
            EvidenceKind::AuditFailedAssignment,
        );
        let working = for_case(&c, at("2026-11-20T00:00:00Z"), &utc).text();
        assert!(
            working.contains("reprocess") && working.contains("before 2026-12-01"),
            "{working}"
        );
        assert!(
            working.contains("ExchangeGuid"),
            "a never-licensed (migrated) mailbox: {working}"
        );
        assert!(working.contains(GROUP_LICENSING_PROBLEMS));
        let ended = for_case(&c, at("2026-12-10T00:00:00Z"), &utc).text();
        assert!(
            ended.contains("before 2026-12-31") && ended.contains("reconnects"),
            "{ended}"
        );
        let gone = for_case(&c, at("2027-01-02T00:00:00Z"), &utc).text();
        assert!(
            gone.contains("inactive") && gone.contains("soft-deleted"),
            "{gone}"
        );
        assert!(gone.contains(INACTIVE_MAILBOXES) && gone.contains(RESTORE_MAILBOXES));
        let removed = for_case(
            &case(None, EvidenceKind::AuditRemoval),
            at("2026-11-20T00:00:00Z"),
            &utc,
        )
        .text();
        assert!(
            !removed.contains("ExchangeGuid"),
            "a removal keeps its mailbox: {removed}"
        );
    }

    #[test]
    fn every_alert_kind_has_steps() {
        for kind in AlertKind::ALL {
            assert!(!for_alert(*kind).steps.is_empty(), "{kind}");
        }
    }
}
