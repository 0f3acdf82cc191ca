//! The small vocabularies that cross the public contracts (remediation requests and records, the notice ledger,
//! alerts): typed so that code matches on variants, serialised exactly as the contracts spell them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Declares a string-valued enum: serde and `as_str` use the listed spellings, `FromStr` accepts exactly them, and
/// comparing with a `&str` compares the spelling.
macro_rules! spelled {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The contract's spelling.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                Self::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| {
                        let names: Vec<&str> = Self::ALL.iter().map(|v| v.as_str()).collect();
                        format!("'{s}' is not one of {}", names.join(", "))
                    })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }
    };
}

spelled! {
    /// What a remediation does.
    RemediationAction {
        /// `reprocessLicenseAssignment`: retry group-based assignments.
        Reprocess = "reprocess",
        /// `assignLicense` adding SKUs.
        Assign = "assign",
        /// `assignLicense` removing SKUs (only with `remediation.allow_remove`).
        Remove = "remove",
        /// Copy another user's licences.
        CopyFrom = "copy_from",
    }
}

spelled! {
    /// Where a remediation stands.
    RemediationStatus {
        /// Admitted, waiting for the worker.
        Queued = "queued",
        /// Checked and planned, nothing changed (`dry_run`).
        DryRun = "dry_run",
        /// Graph accepted it and the states settled (at once, or confirmed later while `pending`).
        Succeeded = "succeeded",
        /// Graph accepted it and processes it asynchronously (group-based licensing): a later license-check run
        /// confirms it `succeeded` or, once `detail.verify_by` has passed with the user still in error, `failed`.
        Pending = "pending",
        /// Graph refused it or it did not settle.
        Failed = "failed",
        /// Refused before any Graph call (policy, unknown user or SKU).
        Rejected = "rejected",
    }
}

impl RemediationStatus {
    /// True once the worker has nothing left to do.
    pub fn is_final(self) -> bool {
        !matches!(self, Self::Queued)
    }
}

spelled! {
    /// What a notice says.
    NoticeKind {
        /// A days-left threshold was reached.
        Threshold = "threshold",
        /// Mailbox access has ended.
        AccessGone = "access_gone",
        /// The case was resolved after admins were told.
        Resolved = "resolved",
        /// A tenant-wide alert (mass delicensing, exhausted SKU, group licensing failure, audit gap).
        Alert = "alert",
    }
}

spelled! {
    /// What a finding is about: the `kind` of `check --json` (BRIEF section 5).
    FindingKind {
        /// A member mailbox without an enabled Exchange plan.
        UnlicensedMailbox = "unlicensed_mailbox",
        /// A licence assignment in error.
        LicenseAssignmentError = "license_assignment_error",
        /// A SKU out of seats, low, or lapsing.
        SkuCapacity = "sku_capacity",
        /// A licence left a user.
        LicenseRemoved = "license_removed",
        /// A licence joined a user.
        LicenseAdded = "license_added",
        /// Many removals in one run.
        MassDelicensing = "mass_delicensing",
        /// A disabled account still holding licences.
        LicensedDisabledAccount = "licensed_disabled_account",
        /// A subscription that will not renew (warning, suspended, locked out, a trial ending).
        SubscriptionLapsing = "subscription_lapsing",
        /// Unassigned seats of a subscription that renews soon (money to save).
        UnusedSeatsBeforeRenewal = "unused_seats_before_renewal",
        /// A user holding two SKUs that give the same service.
        OverlappingLicenses = "overlapping_licenses",
        /// A SKU whose free seats run out within the forecast horizon at the recent rate of assignments.
        SeatForecast = "seat_forecast",
        /// A shared, room or equipment mailbox whose account can sign in.
        SharedMailboxSignIn = "shared_mailbox_sign_in",
        /// Users waiting for a seat in the beta cloudLicensing waiting room.
        SeatWaitingRoom = "seat_waiting_room",
    }
}

spelled! {
    /// What an alert is about.
    AlertKind {
        /// Many users lost licences in one run.
        MassDelicensing = "mass_delicensing",
        /// A SKU is out of seats while users wait for one.
        SkuExhausted = "sku_exhausted",
        /// A group-licensing run reported failures.
        GroupLicenseFailed = "group_license_failed",
        /// Audit records expired before licensewatch could archive them.
        AuditGap = "audit_gap",
        /// A lapsing subscription will take licences from users.
        SubscriptionLapsing = "subscription_lapsing",
        /// A customer tenant no longer lets the app in (consent missing or revoked): nothing runs there.
        ConsentMissing = "consent_missing",
        /// A Management Activity API subscription is disabled (AF20023): the archive is no longer fed with it.
        AuditFeedDisabled = "audit_feed_disabled",
        /// A SKU's free seats run out within the forecast horizon.
        SeatsRunningOut = "seats_running_out",
    }
}

spelled! {
    /// What a mailbox is for (`mailboxSettings/userPurpose`).
    MailboxPurpose {
        /// One person's mailbox.
        User = "user",
        /// Linked to an account in another forest.
        Linked = "linked",
        /// Shared by several people: no licence needed under 50 GB.
        Shared = "shared",
        /// A meeting room.
        Room = "room",
        /// A piece of equipment.
        Equipment = "equipment",
        /// Another purpose.
        Others = "others",
    }
}

impl MailboxPurpose {
    /// Shared, room and equipment mailboxes need no licence: they are never in a grace period, whatever the state
    /// of their account.
    pub(crate) fn needs_no_licence(self) -> bool {
        matches!(self, Self::Shared | Self::Room | Self::Equipment)
    }
}

spelled! {
    /// The jobs whose runs are recorded per tenant (the functions' names).
    Job {
        /// license-check.
        LicenseCheck = "license-check",
        /// audit-fetch.
        AuditFetch = "audit-fetch",
        /// grace-period-notify.
        GracePeriodNotify = "grace-period-notify",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_round_trip_through_serde_and_from_str() {
        for a in RemediationAction::ALL {
            let json = serde_json::to_value(a).expect("json");
            assert_eq!(json, serde_json::json!(a.as_str()));
            assert_eq!(
                serde_json::from_value::<RemediationAction>(json).expect("back"),
                *a
            );
        }
        assert_eq!(
            "copy_from".parse::<RemediationAction>(),
            Ok(RemediationAction::CopyFrom)
        );
        assert!(
            "Reprocess".parse::<RemediationAction>().is_err(),
            "spelled exactly, as the contract says"
        );
        assert_eq!(
            "grant".parse::<RemediationAction>().unwrap_err(),
            "'grant' is not one of reprocess, assign, remove, copy_from"
        );
        assert_eq!(
            serde_json::to_value(RemediationStatus::DryRun).expect("json"),
            "dry_run"
        );
        assert_eq!(
            serde_json::to_value(NoticeKind::AccessGone).expect("json"),
            "access_gone"
        );
        assert_eq!(
            serde_json::to_value(AlertKind::GroupLicenseFailed).expect("json"),
            "group_license_failed"
        );
        assert!(RemediationStatus::Failed == "failed");
    }
}

/// How urgent a finding is (here beside the kinds, so that the rules that judge severity need not name the
/// findings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Act now.
    Critical,
    /// Act soon.
    Warning,
    /// For the record.
    Info,
}
