//! Findings: the public `check --json` contract (BRIEF section 5). Every finding has `kind` and `severity`; user
//! findings carry `user_id` and `user_principal_name`; SKU findings carry `sku_id` and `sku_part_number`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::assignment::{AssignmentError, AssignmentState};
pub use crate::domain::attempt::AttemptSource;
use crate::domain::grace::{CaseKind, EvidenceKind};
pub use crate::domain::kinds::{FindingKind, Severity};

/// One finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Severity.
    pub severity: Severity,
    /// Kind and fields.
    #[serde(flatten)]
    pub detail: Detail,
    /// Set when a `[[suppressions]]` entry covers it: shown in reports, never alerted or notified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suppressed: Option<Suppressed>,
}

/// Why a finding is suppressed, and until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suppressed {
    /// The entry's reason.
    pub reason: String,
    /// The entry's end.
    pub until: DateTime<Utc>,
}

/// What blocked a group licence reported as `Other`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cause {
    /// The sibling SKU that failed.
    pub sku_id: String,
    /// Its part number.
    pub sku_part_number: String,
    /// Its error (CountViolation, MutuallyExclusiveViolation, ...).
    pub error: AssignmentError,
}

/// The kinds of finding and their fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Detail {
    /// A member mailbox without an enabled Exchange plan.
    UnlicensedMailbox {
        user_id: String,
        user_principal_name: String,
        case_id: String,
        case_type: CaseKind,
        grace_started_at: DateTime<Utc>,
        grace_evidence: EvidenceKind,
        access_ends_at: DateTime<Utc>,
        data_deleted_at: DateTime<Utc>,
        days_left: i64,
        /// Said when the evidence is weak (`first_seen`): the real deadline may be earlier.
        #[serde(skip_serializing_if = "Option::is_none")]
        note: Option<String>,
        /// With `audit_failed_assignment`: the SKUs the failed assignment tried to add, when any source knows them.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        attempted_sku_ids: Option<Vec<String>>,
        /// Where `attempted_sku_ids` come from: `audit_record`, `license_assignment_states`,
        /// `remediation_request`, or `unknown` (real failure records name no SKU).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        attempted_sku_source: Option<AttemptSource>,
    },
    /// A licence assignment in `Error` or `ActiveWithError`.
    LicenseAssignmentError {
        user_id: String,
        user_principal_name: String,
        sku_id: String,
        sku_part_number: String,
        state: AssignmentState,
        error: AssignmentError,
        assigned_by_group: Option<String>,
        group_display_name: Option<String>,
        cause: Option<Cause>,
    },
    /// A SKU with no or few seats left, or seats lapsing.
    SkuCapacity {
        sku_id: String,
        sku_part_number: String,
        enabled: i64,
        consumed: i64,
        available: i64,
        warning: i64,
        suspended: i64,
        /// Users in CountViolation for this SKU.
        users_in_count_violation: usize,
        reason: String,
    },
    /// A SKU left a user since the previous snapshot.
    LicenseRemoved {
        user_id: String,
        user_principal_name: String,
        sku_id: String,
        sku_part_number: String,
        observed_at: DateTime<Utc>,
        actor: Option<String>,
        explained: bool,
    },
    /// A SKU joined a user since the previous snapshot.
    LicenseAdded {
        user_id: String,
        user_principal_name: String,
        sku_id: String,
        sku_part_number: String,
        observed_at: DateTime<Utc>,
        actor: Option<String>,
        explained: bool,
    },
    /// Many removals in one run.
    MassDelicensing {
        removed_count: usize,
        threshold: usize,
        sample_users: Vec<String>,
    },
    /// A disabled account still consuming licences.
    LicensedDisabledAccount {
        user_id: String,
        user_principal_name: String,
        sku_ids: Vec<String>,
    },
    /// A subscription that will not renew: expired and in its grace period (`Warning`), `Suspended`, `LockedOut`,
    /// or a trial ending within the notice period.
    SubscriptionLapsing {
        subscription_id: String,
        sku_id: String,
        sku_part_number: String,
        status: String,
        is_trial: bool,
        /// When it moves on (a warning subscription is suspended then; a trial ends).
        next_lifecycle_at: Option<DateTime<Utc>>,
        total_licenses: i64,
        /// Users who will hold no seat of the SKU once its seats are gone (or already hold none).
        users_affected: i64,
        reason: String,
    },
    /// A shared, room or equipment mailbox whose account can sign in: it should be blocked.
    SharedMailboxSignIn {
        user_id: String,
        user_principal_name: String,
        mailbox_purpose: crate::domain::kinds::MailboxPurpose,
    },
    /// A SKU's free seats run out within the horizon at the recent rate of assignments.
    SeatForecast {
        sku_id: String,
        sku_part_number: String,
        enabled: i64,
        consumed: i64,
        available: i64,
        /// Seats assigned per day, net of removals, over the window.
        rate_per_day: f64,
        /// Whole days until no seat is free.
        days_until_exhausted: i64,
        exhausted_at: DateTime<Utc>,
        /// Seats to buy so that the horizon is covered at the rate.
        seats_to_buy: i64,
        horizon_days: i64,
        /// How the rate was measured.
        method: String,
        /// The earliest next lifecycle date of the SKU's subscriptions (`/directory/subscriptions`), when known.
        renewal_at: Option<DateTime<Utc>>,
        /// The licensing groups whose seats of the SKU moved over the window, growing first.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        by_group: Vec<GroupTrend>,
    },
    /// Users wait for a seat of a SKU (Graph beta `cloudLicensing` waiting room, `[check] cloud_licensing`).
    SeatWaitingRoom {
        sku_id: String,
        sku_part_number: String,
        /// How many wait.
        waiting: usize,
        /// Since when the first of them waits.
        waiting_since: DateTime<Utc>,
        /// How long that is.
        longest_wait_hours: i64,
        /// Seats to buy so that everyone waiting gets one (after the free ones).
        seats_to_buy: i64,
    },
    /// Two of a user's SKUs give the same service: the one to remove is named.
    OverlappingLicenses {
        user_id: String,
        user_principal_name: String,
        remove_sku_id: String,
        remove_sku_part_number: String,
        keep_sku_id: String,
        keep_sku_part_number: String,
        shared_services: Vec<String>,
        /// The kept SKU gives every service of the removed one.
        covered: bool,
        /// The group the removable licence comes from (leave the group instead of removing it).
        via_group: Option<String>,
        /// The removed SKU's monthly price, when the policy has one.
        monthly_saving: Option<f64>,
    },
    /// Seats nobody uses in a subscription that renews within the notice period: reduce it before then.
    UnusedSeatsBeforeRenewal {
        subscription_id: String,
        sku_id: String,
        sku_part_number: String,
        renews_at: DateTime<Utc>,
        total_licenses: i64,
        unassigned: i64,
    },
}

impl Detail {
    /// The user a finding is about, when it is about one.
    pub fn user_principal_name(&self) -> Option<&str> {
        match self {
            Detail::UnlicensedMailbox {
                user_principal_name,
                ..
            }
            | Detail::LicenseAssignmentError {
                user_principal_name,
                ..
            }
            | Detail::LicenseRemoved {
                user_principal_name,
                ..
            }
            | Detail::LicenseAdded {
                user_principal_name,
                ..
            }
            | Detail::LicensedDisabledAccount {
                user_principal_name,
                ..
            }
            | Detail::OverlappingLicenses {
                user_principal_name,
                ..
            }
            | Detail::SharedMailboxSignIn {
                user_principal_name,
                ..
            } => Some(user_principal_name),
            _ => None,
        }
    }

    /// Who or what a finding is about: the user, the SKU, or how many users.
    pub fn subject(&self) -> String {
        if let Some(upn) = self.user_principal_name() {
            return upn.to_string();
        }
        match self {
            Detail::SkuCapacity {
                sku_part_number, ..
            }
            | Detail::SubscriptionLapsing {
                sku_part_number, ..
            }
            | Detail::UnusedSeatsBeforeRenewal {
                sku_part_number, ..
            } => sku_part_number.clone(),
            Detail::MassDelicensing { removed_count, .. } => format!("{removed_count} users"),
            _ => String::new(),
        }
    }
}

impl Finding {
    /// The finding's kind (its JSON `kind`).
    pub fn kind(&self) -> FindingKind {
        match self.detail {
            Detail::UnlicensedMailbox { .. } => FindingKind::UnlicensedMailbox,
            Detail::LicenseAssignmentError { .. } => FindingKind::LicenseAssignmentError,
            Detail::SkuCapacity { .. } => FindingKind::SkuCapacity,
            Detail::LicenseRemoved { .. } => FindingKind::LicenseRemoved,
            Detail::LicenseAdded { .. } => FindingKind::LicenseAdded,
            Detail::MassDelicensing { .. } => FindingKind::MassDelicensing,
            Detail::LicensedDisabledAccount { .. } => FindingKind::LicensedDisabledAccount,
            Detail::SubscriptionLapsing { .. } => FindingKind::SubscriptionLapsing,
            Detail::UnusedSeatsBeforeRenewal { .. } => FindingKind::UnusedSeatsBeforeRenewal,
            Detail::OverlappingLicenses { .. } => FindingKind::OverlappingLicenses,
            Detail::SeatForecast { .. } => FindingKind::SeatForecast,
            Detail::SeatWaitingRoom { .. } => FindingKind::SeatWaitingRoom,
            Detail::SharedMailboxSignIn { .. } => FindingKind::SharedMailboxSignIn,
        }
    }
}

/// How one licensing group's seats of a SKU moved over the forecast's window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupTrend {
    /// The group.
    pub group_id: String,
    /// Its name, when this run read it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_name: Option<String>,
    /// Seats it assigns now.
    pub assigned: i64,
    /// Net change over the window.
    pub net_change: i64,
    /// Net seats a day (negative: it shrinks).
    pub rate_per_day: f64,
}
