//! The compact per-run licence snapshot and the diff between two runs.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::assignment::{AssignmentError, AssignmentState};

mod users;
pub use users::{Kind, StateRef, UserBuilder, UserHead, UserRef, Users, Word};

/// `EXCHANGE_S_FOUNDATION`: an Exchange plan bundled with non-mailbox SKUs (Power BI, Teams Exploratory...). It is
/// reported with `service = "exchange"` but gives no mailbox, so it must not count as a mailbox licence.
pub const EXCHANGE_FOUNDATION_PLAN: &str = "113feb6c-3fe4-4440-bddc-54d774bf0318";

/// One licence assignment state, as kept in a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssignmentSnap {
    /// SKU GUID (lower case).
    pub sku_id: Arc<str>,
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
    pub sku_id: Arc<str>,
    /// Disabled plans (sorted, lower case).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disabled_plans: Vec<String>,
}

/// A user's id, UPN, display name and mail in one shared allocation. A large tenant's snapshot held them as four
/// strings a user (400,000 small allocations for 100,000 users, each copied again for the previous run); shared,
/// the previous run derived from a snapshot takes its users' names without copying them.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct UserNames {
    /// Id, UPN, display name and mail, one after the other.
    text: Arc<str>,
    /// Where the id, the UPN and the display name end.
    ends: [u32; 3],
    /// Which of the display name (bit 0) and the mail (bit 1) the user has (an empty one is not a missing one).
    present: u8,
}

impl UserNames {
    /// The names of a user. Their ends are kept in 32 bits: Graph caps each at a few hundred characters, far below the
    /// 4 GiB past which a name would read wrongly (never a panic).
    pub fn new(id: &str, upn: &str, display_name: Option<&str>, mail: Option<&str>) -> Self {
        let name = display_name.unwrap_or_default();
        let mut text =
            String::with_capacity(id.len() + upn.len() + name.len() + mail.map_or(0, str::len));
        let mut end = |part: &str| {
            text.push_str(part);
            u32::try_from(text.len()).unwrap_or(u32::MAX)
        };
        let ends = [end(id), end(upn), end(name)];
        text.push_str(mail.unwrap_or_default());
        let present = u8::from(display_name.is_some()) | (u8::from(mail.is_some()) << 1);
        UserNames {
            text: Arc::from(text),
            ends,
            present,
        }
    }

    /// The `i`th name: 0 the id, 1 the UPN, 2 the display name, 3 the mail.
    fn part(&self, i: usize) -> &str {
        let end = |i: usize| self.ends.get(i).map_or(self.text.len(), |&e| e as usize);
        let start = i.checked_sub(1).map_or(0, end);
        self.text.get(start..end(i)).unwrap_or_default()
    }

    /// Object id.
    pub fn id(&self) -> &str {
        self.part(0)
    }

    /// UPN.
    pub fn upn(&self) -> &str {
        self.part(1)
    }

    /// Display name.
    pub fn display_name(&self) -> Option<&str> {
        (self.present & 1 != 0).then(|| self.part(2))
    }

    /// Primary SMTP address.
    pub fn mail(&self) -> Option<&str> {
        (self.present & 2 != 0).then(|| self.part(3))
    }
}

impl std::fmt::Debug for UserNames {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserNames")
            .field("id", &self.id())
            .field("upn", &self.upn())
            .field("display_name", &self.display_name())
            .field("mail", &self.mail())
            .finish()
    }
}

/// One user, as read from the directory or changed by a delta round; a snapshot keeps its users in [`Users`] and
/// gives them back as this. Stored as JSON (by earlier versions) with `id`, `upn`, `display_name` and `mail` as
/// fields of their own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "UserJson", into = "UserJson")]
pub struct UserSnapshot {
    /// Object id, UPN, display name, primary SMTP address.
    pub names: UserNames,
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

/// A user as JSON documents hold it.
#[derive(Serialize, Deserialize)]
struct UserJson {
    id: String,
    upn: String,
    display_name: Option<String>,
    mail: Option<String>,
    account_enabled: bool,
    guest: bool,
    mailbox: bool,
    exchange_enabled: bool,
    created: Option<DateTime<Utc>>,
    licenses: Vec<LicenseSnap>,
    states: Vec<AssignmentSnap>,
}

impl From<UserJson> for UserSnapshot {
    fn from(u: UserJson) -> Self {
        UserSnapshot {
            names: UserNames::new(&u.id, &u.upn, u.display_name.as_deref(), u.mail.as_deref()),
            account_enabled: u.account_enabled,
            guest: u.guest,
            mailbox: u.mailbox,
            exchange_enabled: u.exchange_enabled,
            created: u.created,
            licenses: u.licenses,
            states: u.states,
        }
    }
}

impl From<UserSnapshot> for UserJson {
    fn from(u: UserSnapshot) -> Self {
        UserJson {
            id: u.id().to_string(),
            upn: u.upn().to_string(),
            display_name: u.display_name().map(str::to_string),
            mail: u.mail().map(str::to_string),
            account_enabled: u.account_enabled,
            guest: u.guest,
            mailbox: u.mailbox,
            exchange_enabled: u.exchange_enabled,
            created: u.created,
            licenses: u.licenses,
            states: u.states,
        }
    }
}

impl UserSnapshot {
    /// A user with an id and a UPN and nothing else: enabled, no mailbox, no licence.
    pub fn bare(id: &str, upn: &str) -> Self {
        UserSnapshot {
            names: UserNames::new(id, upn, None, None),
            account_enabled: true,
            guest: false,
            mailbox: false,
            exchange_enabled: false,
            created: None,
            licenses: Vec::new(),
            states: Vec::new(),
        }
    }

    /// Object id.
    pub fn id(&self) -> &str {
        self.names.id()
    }

    /// UPN.
    pub fn upn(&self) -> &str {
        self.names.upn()
    }

    /// Display name.
    pub fn display_name(&self) -> Option<&str> {
        self.names.display_name()
    }

    /// Primary SMTP address.
    pub fn mail(&self) -> Option<&str> {
        self.names.mail()
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
    pub users: Users,
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
    pub users: PreviousUsers,
}

/// The previous run's users in a few flat buffers: a run holds them beside the 100,000 users it reads, and as a
/// struct, a string and a vector each they took about 200 bytes a user (three allocations); here about 85.
#[derive(Clone, Default)]
pub struct PreviousUsers {
    /// Every user's id then UPN, one after the other.
    text: String,
    /// One row a user, in id order.
    rows: Vec<PreviousRow>,
    /// Every user's SKUs, as numbers in `skus`, one user's after the other.
    licenses: Vec<u16>,
    /// The SKUs the users hold, each once.
    skus: Vec<Arc<str>>,
}

/// Where a user's parts end in the buffers of [`PreviousUsers`].
#[derive(Clone, Copy)]
struct PreviousRow {
    id_end: u32,
    upn_end: u32,
    licenses_end: u32,
    exchange_enabled: bool,
}

/// A user of the previous run.
#[derive(Debug, Clone, Copy)]
pub struct PreviousUser<'a> {
    id: &'a str,
    upn: &'a str,
    /// Held an enabled Exchange mailbox plan.
    pub exchange_enabled: bool,
    licenses: &'a [u16],
    skus: &'a [Arc<str>],
}

impl<'a> PreviousUser<'a> {
    /// Object id.
    pub fn id(&self) -> &'a str {
        self.id
    }

    /// UPN.
    pub fn upn(&self) -> &'a str {
        self.upn
    }

    /// The SKU ids the user held (disabled plans are not kept).
    pub fn licenses(&self) -> impl Iterator<Item = &'a str> + use<'a> {
        let skus = self.skus;
        self.licenses
            .iter()
            .map(move |&i| skus.get(usize::from(i)).map_or("", |s| &**s))
    }

    /// True when the user held a licence.
    pub fn is_licensed(&self) -> bool {
        !self.licenses.is_empty()
    }

    /// True when the user held the SKU.
    pub fn held(&self, sku_id: &str) -> bool {
        self.licenses().any(|s| s == sku_id)
    }
}

impl PreviousUsers {
    /// Room for `users` users whose ids and UPNs take about `text` bytes.
    pub fn with_capacity(users: usize, text: usize) -> Self {
        PreviousUsers {
            text: String::with_capacity(text),
            rows: Vec::with_capacity(users),
            licenses: Vec::with_capacity(users),
            skus: Vec::new(),
        }
    }

    /// Adds a user after the others (the caller keeps them in id order). Offsets are kept in 32 bits and SKUs
    /// numbered in 16: 4 GiB of names and 65,536 SKUs are far beyond any tenant (past them a name reads wrongly,
    /// never a panic).
    pub fn push<'s>(
        &mut self,
        id: &str,
        upn: &str,
        exchange_enabled: bool,
        skus: impl IntoIterator<Item = &'s str>,
    ) {
        let end = |text: &String| u32::try_from(text.len()).unwrap_or(u32::MAX);
        self.text.push_str(id);
        let id_end = end(&self.text);
        self.text.push_str(upn);
        let upn_end = end(&self.text);
        for sku in skus {
            let n = match self.skus.iter().position(|s| &**s == sku) {
                Some(n) => n,
                None => {
                    self.skus.push(Arc::from(sku));
                    self.skus.len() - 1
                }
            };
            self.licenses.push(u16::try_from(n).unwrap_or(u16::MAX));
        }
        self.rows.push(PreviousRow {
            id_end,
            upn_end,
            licenses_end: u32::try_from(self.licenses.len()).unwrap_or(u32::MAX),
            exchange_enabled,
        });
    }

    /// How many users.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The `i`th user, when there is one.
    pub fn get(&self, i: usize) -> Option<PreviousUser<'_>> {
        let row = self.rows.get(i)?;
        let (text_start, licenses_start) = match i.checked_sub(1).and_then(|p| self.rows.get(p)) {
            Some(before) => (before.upn_end as usize, before.licenses_end as usize),
            None => (0, 0),
        };
        let text = |from: usize, to: u32| self.text.get(from..to as usize).unwrap_or_default();
        Some(PreviousUser {
            id: text(text_start, row.id_end),
            upn: text(row.id_end as usize, row.upn_end),
            exchange_enabled: row.exchange_enabled,
            licenses: (self.licenses)
                .get(licenses_start..row.licenses_end as usize)
                .unwrap_or_default(),
            skus: &self.skus,
        })
    }

    /// The users, in id order.
    pub fn iter(&self) -> impl Iterator<Item = PreviousUser<'_>> {
        (0..self.len()).filter_map(|i| self.get(i))
    }

    /// A user by id.
    pub fn user(&self, id: &str) -> Option<PreviousUser<'_>> {
        let (mut low, mut high) = (0, self.len());
        while low < high {
            let middle = low + (high - low) / 2;
            let user = self.get(middle)?;
            match user.id.cmp(id) {
                std::cmp::Ordering::Less => low = middle + 1,
                std::cmp::Ordering::Greater => high = middle,
                std::cmp::Ordering::Equal => return Some(user),
            }
        }
        None
    }
}

impl PartialEq for PreviousUsers {
    fn eq(&self, other: &Self) -> bool {
        let same = |a: PreviousUser<'_>, b: PreviousUser<'_>| {
            (a.id, a.upn, a.exchange_enabled) == (b.id, b.upn, b.exchange_enabled)
                && a.licenses().eq(b.licenses())
        };
        self.len() == other.len() && self.iter().zip(other.iter()).all(|(a, b)| same(a, b))
    }
}

impl Eq for PreviousUsers {}

impl std::fmt::Debug for PreviousUsers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'de> Deserialize<'de> for PreviousUsers {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let users = Vec::<PreviousUserJson>::deserialize(d)?;
        let mut out = PreviousUsers::with_capacity(users.len(), 0);
        for u in &users {
            out.push(
                &u.id,
                &u.upn,
                u.exchange_enabled,
                u.licenses.iter().map(|l| &*l.sku_id),
            );
        }
        Ok(out)
    }
}

/// A previous user as JSON documents hold it (a user of a snapshot, of which only these fields are read).
#[derive(Deserialize)]
struct PreviousUserJson {
    id: String,
    upn: String,
    exchange_enabled: bool,
    licenses: Vec<SkuOnly>,
}

#[derive(Deserialize)]
struct SkuOnly {
    sku_id: Arc<str>,
}

impl PreviousRun {
    /// Finds a user by id.
    pub fn user(&self, id: &str) -> Option<PreviousUser<'_>> {
        self.users.user(id)
    }
}

impl From<&Snapshot> for PreviousRun {
    fn from(s: &Snapshot) -> Self {
        let text = s.users.iter().map(|u| u.id().len() + u.upn().len()).sum();
        let mut users = PreviousUsers::with_capacity(s.users.len(), text);
        for u in s.users.iter() {
            users.push(u.id(), u.upn(), u.exchange_enabled(), u.sku_ids());
        }
        PreviousRun {
            taken_at: s.taken_at,
            delta_link: s.delta_link.clone(),
            full_scan_at: s.full_scan_at,
            recent_removals: s.recent_removals.clone(),
            users,
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
    pub fn user(&self, id: &str) -> Option<UserRef<'_>> {
        self.users.user(id)
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
        for u in self.users.iter() {
            while let Some(gone) = before.next_if(|p| p.id() < u.id()) {
                vanished.push(gone);
            }
            let prior = before.next_if(|p| p.id() == u.id());
            for sku in u.sku_ids() {
                if prior.is_none_or(|p| !p.held(sku)) {
                    out.push(change(u.id(), u.upn(), sku, true));
                }
            }
            if let Some(p) = prior {
                for sku in p.licenses().filter(|s| !u.holds(s)) {
                    out.push(change(u.id(), u.upn(), sku, false));
                }
            }
        }
        vanished.extend(before);
        for p in vanished {
            for sku in p.licenses() {
                out.push(change(p.id(), p.upn(), sku, false));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_users_names_read_back_each_apart_and_an_empty_one_is_not_a_missing_one() {
        let n = UserNames::new(
            "id-1",
            "Zoë@contoso.com",
            Some(""),
            Some("山田@contoso.com"),
        );
        assert_eq!(
            (n.id(), n.upn(), n.display_name(), n.mail()),
            (
                "id-1",
                "Zoë@contoso.com",
                Some(""),
                Some("山田@contoso.com")
            )
        );
        let n = UserNames::new("id-2", "", None, Some(""));
        assert_eq!(
            (n.id(), n.upn(), n.display_name(), n.mail()),
            ("id-2", "", None, Some(""))
        );
        let n = UserNames::new("", "upn", Some("name"), None);
        assert_eq!(
            (n.id(), n.upn(), n.display_name(), n.mail()),
            ("", "upn", Some("name"), None)
        );
        assert_ne!(
            UserNames::new("a", "b", None, None),
            UserNames::new("a", "b", Some(""), None)
        );
        assert_ne!(
            UserNames::new("ab", "c", None, None),
            UserNames::new("a", "bc", None, None)
        );
    }

    #[test]
    fn the_previous_run_keeps_each_users_id_upn_flag_and_skus() {
        let licensed = |id: &str, upn: &str, skus: &[&str]| UserSnapshot {
            licenses: (skus.iter())
                .map(|s| LicenseSnap {
                    sku_id: (*s).into(),
                    disabled_plans: vec!["plan".into()],
                })
                .collect(),
            exchange_enabled: id == "b",
            ..UserSnapshot::bare(id, upn)
        };
        let snapshot = Snapshot {
            tenant_id: "t".into(),
            taken_at: DateTime::<Utc>::MIN_UTC,
            users: [
                licensed("", "", &[]),
                licensed("a", "a@x", &["e3", "e5"]),
                licensed("b", "", &["e5"]),
                licensed("c", "c@x", &[]),
            ]
            .into_iter()
            .collect(),
            skus: vec![],
            delta_link: None,
            full_scan_at: None,
            recent_removals: vec![],
        };
        let previous = PreviousRun::from(&snapshot);
        let facts = |u: PreviousUser<'_>| {
            let skus: Vec<String> = u.licenses().map(str::to_string).collect();
            (
                u.id().to_string(),
                u.upn().to_string(),
                u.exchange_enabled,
                skus,
            )
        };
        let kept: Vec<_> = previous.users.iter().map(facts).collect();
        let expected = [
            ("", "", false, vec![]),
            ("a", "a@x", false, vec!["e3", "e5"]),
            ("b", "", true, vec!["e5"]),
            ("c", "c@x", false, vec![]),
        ];
        let expected: Vec<_> = (expected.into_iter())
            .map(|(id, upn, ex, skus)| {
                (
                    id.into(),
                    upn.into(),
                    ex,
                    skus.into_iter().map(String::from).collect(),
                )
            })
            .collect();
        assert_eq!(kept, expected);
        for id in ["", "a", "b", "c"] {
            assert_eq!(previous.user(id).map(|u| u.id()), Some(id));
        }
        assert!(previous.user("aa").is_none() && previous.user("d").is_none());
        assert!(
            previous
                .user("a")
                .is_some_and(|u| u.is_licensed() && u.held("e5") && !u.held("e1"))
        );
        // Each SKU is held once.
        assert_eq!(previous.users.skus.len(), 2);
    }

    #[test]
    fn a_user_stored_as_json_reads_back_with_its_names() {
        let user = UserSnapshot {
            names: UserNames::new("id", "upn@x", Some("Name"), None),
            ..UserSnapshot::bare("", "")
        };
        let json = serde_json::to_value(&user).expect("encode");
        assert_eq!(json["id"], "id");
        assert_eq!(json["display_name"], "Name");
        assert!(json["mail"].is_null());
        let back: UserSnapshot = serde_json::from_value(json.clone()).expect("decode");
        assert_eq!(back, user);
        let users: PreviousUsers = serde_json::from_value(json!([json])).expect("decode previous");
        let previous = users.get(0).expect("a user");
        assert_eq!((previous.id(), previous.upn()), ("id", "upn@x"));
    }

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
