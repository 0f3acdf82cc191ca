//! The compact per-run licence snapshot and the diff between two runs.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::assignment::{AssignmentError, AssignmentState};

/// `EXCHANGE_S_FOUNDATION`: an Exchange plan bundled with non-mailbox SKUs (Power BI, Teams Exploratory...). It is
/// reported with `service = "exchange"` but gives no mailbox, so it must not count as a mailbox licence.
pub const EXCHANGE_FOUNDATION_PLAN: &str = "113feb6c-3fe4-4440-bddc-54d774bf0318";

/// One licence assignment state, as kept in a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssignmentSnap {
    /// SKU GUID (lower case).
    pub sku_id: std::sync::Arc<str>,
    /// Group id when inherited.
    pub group: Option<String>,
    /// Active, ActiveWithError, Disabled, Error.
    pub state: AssignmentState,
    /// Error code; None on success.
    pub error: Option<AssignmentError>,
}

/// One licence of a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LicenseSnap {
    /// SKU GUID (lower case).
    pub sku_id: std::sync::Arc<str>,
    /// Disabled plans (sorted, lower case).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disabled_plans: Vec<String>,
}

/// One user, as kept in a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSnapshot {
    /// Object id.
    pub id: String,
    /// UPN.
    pub upn: String,
    /// Display name.
    pub display_name: Option<String>,
    /// Primary SMTP address.
    pub mail: Option<String>,
    /// Sign-in allowed.
    pub account_enabled: bool,
    /// `userType == Guest`.
    pub guest: bool,
    /// Has a mailbox: `mail` and an `SMTP:` proxy address.
    pub mailbox: bool,
    /// Holds an enabled Exchange mailbox plan.
    pub exchange_enabled: bool,
    /// Account creation time.
    pub created: Option<DateTime<Utc>>,
    /// Licences, sorted by SKU id (a sorted Vec: a BTreeMap node per user would cost ~0.5 KB each).
    pub licenses: Vec<LicenseSnap>,
    /// Assignment states.
    pub states: Vec<AssignmentSnap>,
}

impl UserSnapshot {
    /// A user with an id and a UPN and nothing else: enabled, no mailbox, no licence.
    pub fn bare(id: &str, upn: &str) -> Self {
        UserSnapshot {
            id: id.to_string(),
            upn: upn.to_string(),
            display_name: None,
            mail: None,
            account_enabled: true,
            guest: false,
            mailbox: false,
            exchange_enabled: false,
            created: None,
            licenses: Vec::new(),
            states: Vec::new(),
        }
    }

    /// The SKU ids the user holds.
    pub fn sku_ids(&self) -> impl Iterator<Item = &str> {
        self.licenses.iter().map(|l| &*l.sku_id)
    }

    /// True when the user holds the SKU.
    pub fn holds(&self, sku_id: &str) -> bool {
        self.licenses
            .binary_search_by(|l| (*l.sku_id).cmp(sku_id))
            .is_ok()
    }

    /// A member mailbox that could be in a grace period: enabled, not a guest, with a mailbox.
    pub fn is_member_mailbox(&self) -> bool {
        self.account_enabled && !self.guest && self.mailbox
    }
}

/// One SKU's capacity at snapshot time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkuSnap {
    /// SKU GUID (lower case).
    pub sku_id: String,
    /// Part number.
    pub part_number: String,
    /// Enabled units.
    pub enabled: i64,
    /// Consumed units.
    pub consumed: i64,
    /// Warning units.
    pub warning: i64,
    /// Suspended units.
    pub suspended: i64,
    /// Service plans: (plan id, plan name), to tell which SKUs give the same service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plans: Vec<(String, String)>,
}

impl SkuSnap {
    /// Seats that can still be assigned.
    pub fn available(&self) -> i64 {
        self.enabled - self.consumed
    }
}

/// A commercial subscription behind a SKU's seats (`/directory/subscriptions`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommerceSnap {
    /// Subscription id.
    pub id: String,
    /// SKU GUID.
    pub sku_id: String,
    /// Part number, when Graph gives it.
    pub sku_part_number: Option<String>,
    /// Enabled, Warning, Suspended, LockedOut, Deleted.
    pub status: String,
    /// Seats it brings.
    pub total_licenses: i64,
    /// When it moves to its next state unless renewed.
    pub next_lifecycle: Option<DateTime<Utc>>,
    /// A free trial.
    pub is_trial: bool,
}

/// A whole run's snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Tenant id.
    pub tenant_id: String,
    /// When it was taken.
    pub taken_at: DateTime<Utc>,
    /// Users, sorted by id.
    pub users: Vec<UserSnapshot>,
    /// SKUs.
    pub skus: Vec<SkuSnap>,
    /// Where the next `/users/delta` round starts (saved with the users it is consistent with).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta_link: Option<String>,
    /// When the users were last read in full (delta rounds keep it; a full scan sets it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_scan_at: Option<DateTime<Utc>>,
    /// The users who lost a licence within the mass-delicensing window, as of this snapshot: removals seen by
    /// several runs close together (a targeted re-check per notification batch) add up to one occurrence.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recent_removals: Vec<RecentRemoval>,
}

/// Where a stored snapshot's change tracking stands: all a run needs to choose between a delta round and a full read,
/// readable without decoding the snapshot's users (so the round can start while they are decoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotMark {
    /// When it was taken.
    pub taken_at: DateTime<Utc>,
    /// Where the next `/users/delta` round starts.
    pub delta_link: Option<String>,
    /// When the users were last read in full.
    pub full_scan_at: Option<DateTime<Utc>>,
}

impl From<&Snapshot> for SnapshotMark {
    fn from(s: &Snapshot) -> Self {
        SnapshotMark {
            taken_at: s.taken_at,
            delta_link: s.delta_link.clone(),
            full_scan_at: s.full_scan_at,
        }
    }
}

/// A user who lost a licence, and when licensewatch first saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecentRemoval {
    /// User id.
    pub user_id: String,
    /// UPN.
    pub upn: String,
    /// First seen.
    pub at: DateTime<Utc>,
}

/// What a run needs of the previous snapshot, read from the same stored document but keeping only ids, UPNs, SKU
/// ids and the Exchange flag: holding two full snapshots of a large tenant would double a run's memory.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PreviousRun {
    /// When it was taken.
    pub taken_at: DateTime<Utc>,
    /// Where the next `/users/delta` round starts, when the snapshot has one.
    #[serde(default)]
    pub delta_link: Option<String>,
    /// When the users were last read in full.
    #[serde(default)]
    pub full_scan_at: Option<DateTime<Utc>>,
    /// Removals within the mass-delicensing window.
    #[serde(default)]
    pub recent_removals: Vec<RecentRemoval>,
    /// Users, sorted by id.
    pub users: Vec<PreviousUser>,
}

/// A user of the previous snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PreviousUser {
    /// Object id.
    pub id: String,
    /// UPN.
    pub upn: String,
    /// Held an enabled Exchange mailbox plan.
    pub exchange_enabled: bool,
    /// SKU ids (disabled plans are skipped while reading).
    #[serde(deserialize_with = "map_keys")]
    pub licenses: Vec<String>,
}

fn map_keys<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    struct SkuOnly {
        sku_id: String,
    }
    Ok(Vec::<SkuOnly>::deserialize(d)?
        .into_iter()
        .map(|l| l.sku_id)
        .collect())
}

impl PreviousRun {
    /// Finds a user by id.
    pub fn user(&self, id: &str) -> Option<&PreviousUser> {
        self.users
            .binary_search_by(|u| u.id.as_str().cmp(id))
            .ok()
            .map(|i| &self.users[i])
    }
}

impl From<&Snapshot> for PreviousRun {
    fn from(s: &Snapshot) -> Self {
        PreviousRun {
            taken_at: s.taken_at,
            delta_link: s.delta_link.clone(),
            full_scan_at: s.full_scan_at,
            recent_removals: s.recent_removals.clone(),
            users: s
                .users
                .iter()
                .map(|u| PreviousUser {
                    id: u.id.clone(),
                    upn: u.upn.clone(),
                    exchange_enabled: u.exchange_enabled,
                    licenses: u.sku_ids().map(str::to_string).collect(),
                })
                .collect(),
        }
    }
}

/// A SKU that joined or left a user between two snapshots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LicenseChange {
    /// User id.
    pub user_id: String,
    /// UPN.
    pub upn: String,
    /// SKU.
    pub sku_id: String,
    /// True for added, false for removed.
    pub added: bool,
}

impl Snapshot {
    /// Finds a user by id (users are sorted by id).
    pub fn user(&self, id: &str) -> Option<&UserSnapshot> {
        self.users
            .binary_search_by(|u| u.id.as_str().cmp(id))
            .ok()
            .map(|i| &self.users[i])
    }

    /// Licences added and removed since `previous` (users that disappeared lose all their licences). Both user lists
    /// are sorted by id, so they are walked side by side: looking each of 100,000 users up in the other list was a
    /// tenth of an incremental run.
    pub fn diff(&self, previous: &PreviousRun) -> Vec<LicenseChange> {
        let change = |id: &str, upn: &str, sku: &str, added: bool| LicenseChange {
            user_id: id.to_string(),
            upn: upn.to_string(),
            sku_id: sku.to_string(),
            added,
        };
        let mut out = Vec::new();
        let mut vanished = Vec::new();
        let mut before = previous.users.iter().peekable();
        for u in &self.users {
            while let Some(gone) = before.next_if(|p| p.id < u.id) {
                vanished.push(gone);
            }
            let prior = before.next_if(|p| p.id == u.id).map(|p| &p.licenses);
            for sku in u.sku_ids() {
                if prior.is_none_or(|b| !b.iter().any(|s| s == sku)) {
                    out.push(change(&u.id, &u.upn, sku, true));
                }
            }
            if let Some(b) = prior {
                for sku in b.iter().filter(|s| !u.holds(s)) {
                    out.push(change(&u.id, &u.upn, sku, false));
                }
            }
        }
        vanished.extend(before);
        for p in vanished {
            for sku in &p.licenses {
                out.push(change(&p.id, &p.upn, sku, false));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_reports_added_removed_and_vanished_users() {
        let mk = |users: Vec<(&str, Vec<&str>)>| Snapshot {
            tenant_id: "t".into(),
            taken_at: DateTime::<Utc>::MIN_UTC,
            users: users
                .into_iter()
                .map(|(id, skus)| UserSnapshot {
                    licenses: skus
                        .into_iter()
                        .map(|s| LicenseSnap {
                            sku_id: s.into(),
                            disabled_plans: vec![],
                        })
                        .collect(),
                    ..UserSnapshot::bare(id, &format!("{id}@x"))
                })
                .collect(),
            skus: vec![],
            delta_link: None,
            full_scan_at: None,
            recent_removals: vec![],
        };
        let before = mk(vec![
            ("a", vec!["e3"]),
            ("b", vec!["e3", "pbi"]),
            ("c", vec!["e5"]),
            ("e", vec!["e3"]),
        ]);
        let after = mk(vec![
            ("0", vec!["e1"]),
            ("a", vec!["e3", "ems"]),
            ("b", vec!["pbi"]),
            ("d", vec![]),
        ]);
        let mut d: Vec<(String, String, bool)> = after
            .diff(&PreviousRun::from(&before))
            .into_iter()
            .map(|c| (c.user_id, c.sku_id, c.added))
            .collect();
        d.sort();
        assert_eq!(
            d,
            vec![
                ("0".into(), "e1".into(), true),
                ("a".into(), "ems".into(), true),
                ("b".into(), "e3".into(), false),
                ("c".into(), "e5".into(), false),
                ("e".into(), "e3".into(), false)
            ]
        );
    }
}
