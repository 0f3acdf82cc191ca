//! Graph resource shapes licensewatch reads (only the properties it selects), in Graph's own JSON names.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};

use crate::domain::snapshot::{
    AssignmentSnap, EXCHANGE_FOUNDATION_PLAN, LicenseSnap, SkuSnap, UserNames, UserSnapshot,
};

/// The `$select` used for every user listing: the licence fields are not in Graph's default property set.
pub const USER_SELECT: &str = "id,userPrincipalName,displayName,mail,accountEnabled,userType,usageLocation,\
createdDateTime,assignedLicenses,assignedPlans,licenseAssignmentStates,onPremisesSyncEnabled,proxyAddresses";

/// The `$select` for reading one user around a licence write: identity, location and licence state only.
pub const USER_LICENSE_SELECT: &str =
    "id,userPrincipalName,usageLocation,assignedLicenses,licenseAssignmentStates";

/// `user` (subset).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// Object id.
    pub id: String,
    /// UPN.
    #[serde(default)]
    pub user_principal_name: String,
    /// Display name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Primary SMTP address.
    #[serde(default)]
    pub mail: Option<String>,
    /// Sign-in allowed.
    #[serde(default = "yes")]
    pub account_enabled: bool,
    /// `Member` or `Guest`.
    #[serde(default)]
    pub user_type: Option<String>,
    /// Two-letter country code (required before licences can be assigned).
    #[serde(default)]
    pub usage_location: Option<String>,
    /// When the account was created.
    #[serde(default)]
    pub created_date_time: Option<DateTime<Utc>>,
    /// Licences (SKU + disabled plans).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub assigned_licenses: Vec<AssignedLicense>,
    /// Service plans with their status.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub assigned_plans: Vec<AssignedPlan>,
    /// Per-SKU assignment state (direct or by group) and errors.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub license_assignment_states: Vec<LicenseAssignmentState>,
    /// Synced from on-premises AD.
    #[serde(default)]
    pub on_premises_sync_enabled: Option<bool>,
    /// `SMTP:` (primary) and `smtp:` addresses.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub proxy_addresses: Vec<String>,
    /// Sign-in times (only when selected; needs Entra ID P1 and `AuditLog.Read.All`); null when never signed in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sign_in_activity: Option<SignInActivity>,
}

/// `signInActivity`: when the user last signed in. `lastSuccessfulSignInDateTime` exists since December 2023;
/// older activity is only in the other two.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SignInActivity {
    /// The last interactive sign-in attempt (successful or not).
    #[serde(default, deserialize_with = "real_date")]
    pub last_sign_in_date_time: Option<DateTime<Utc>>,
    /// The last non-interactive sign-in attempt (a client refreshing a token).
    #[serde(default, deserialize_with = "real_date")]
    pub last_non_interactive_sign_in_date_time: Option<DateTime<Utc>>,
    /// The last successful sign-in, interactive or not.
    #[serde(default, deserialize_with = "real_date")]
    pub last_successful_sign_in_date_time: Option<DateTime<Utc>>,
}

/// Graph writes `0001-01-01T00:00:00Z` where a user has no sign-in of a kind (seen in responses, not documented):
/// any date before 2000, years before Entra ID kept sign-ins, is read as none, never as "signed in in year 1".
fn real_date<'de, D>(d: D) -> Result<Option<DateTime<Utc>>, D::Error>
where
    D: Deserializer<'de>,
{
    const FIRST_REAL: i64 = 946_684_800; // 2000-01-01T00:00:00Z
    let at = Option::<DateTime<Utc>>::deserialize(d)?;
    Ok(at.filter(|t| t.timestamp() >= FIRST_REAL))
}

/// The `$select` of a listing with sign-in activity (the reclamation report).
pub const USER_SIGN_IN_SELECT: &str = "id,userPrincipalName,displayName,mail,accountEnabled,userType,\
createdDateTime,assignedLicenses,licenseAssignmentStates,proxyAddresses,signInActivity";

fn yes() -> bool {
    true
}

fn null_as_empty<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// `assignedLicense`.
impl User {
    /// Distils what licensewatch keeps from a Graph user (the wire type becomes the domain's snapshot here, so the
    /// domain never sees Graph's types).
    pub fn snapshot(&self) -> UserSnapshot {
        let u = self;
        UserSnapshot {
            names: UserNames::new(
                &u.id,
                &u.user_principal_name,
                u.display_name.as_deref(),
                u.mail.as_deref(),
            ),
            account_enabled: u.account_enabled,
            guest: is_guest(u.user_type.as_deref()),
            mailbox: has_mailbox(
                u.mail.as_deref(),
                u.proxy_addresses.iter().map(String::as_str),
            ),
            exchange_enabled: exchange_enabled(u.assigned_plans.iter().map(AssignedPlan::parts)),
            created: u.created_date_time,
            licenses: licence_snaps(u.assigned_licenses.iter().map(AssignedLicense::parts)),
            states: (u.license_assignment_states.iter())
                .map(LicenseAssignmentState::snap)
                .collect(),
        }
    }
}

/// A user of a listing page, distilled into its snapshot while the page is parsed. A licensed user's JSON is mostly
/// its `assignedPlans` (about 30 for an E3, each with three strings and a time), of which a snapshot keeps one flag:
/// read as views of the page's bytes, none of it is copied or parsed into a time. Distils exactly as
/// [`User::snapshot`] does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedUser(pub UserSnapshot);

impl<'de> Deserialize<'de> for ListedUser {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        UserView::deserialize(d).map(|u| ListedUser(u.snapshot()))
    }
}

/// A JSON string, borrowed from the page unless it holds escapes.
#[derive(Default, Deserialize)]
struct Text<'a>(#[serde(borrow)] std::borrow::Cow<'a, str>);

/// The properties of a `user` a snapshot keeps, as views.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserView<'a> {
    #[serde(borrow)]
    id: Text<'a>,
    #[serde(borrow, default)]
    user_principal_name: Text<'a>,
    #[serde(borrow, default)]
    display_name: Option<Text<'a>>,
    #[serde(borrow, default)]
    mail: Option<Text<'a>>,
    #[serde(default = "yes")]
    account_enabled: bool,
    #[serde(borrow, default)]
    user_type: Option<Text<'a>>,
    #[serde(default)]
    created_date_time: Option<DateTime<Utc>>,
    #[serde(borrow, default, deserialize_with = "null_as_empty")]
    assigned_licenses: Vec<LicenseView<'a>>,
    #[serde(borrow, default, deserialize_with = "null_as_empty")]
    assigned_plans: Vec<PlanView<'a>>,
    #[serde(borrow, default, deserialize_with = "null_as_empty")]
    license_assignment_states: Vec<StateView<'a>>,
    #[serde(borrow, default, deserialize_with = "null_as_empty")]
    proxy_addresses: Vec<Text<'a>>,
}

/// An `assignedLicense`, as views.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LicenseView<'a> {
    #[serde(borrow)]
    sku_id: Text<'a>,
    #[serde(borrow, default, deserialize_with = "null_as_empty")]
    disabled_plans: Vec<Text<'a>>,
}

/// A `licenseAssignmentState`, as views (`lastUpdatedDateTime` is skipped: a snapshot does not keep it).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StateView<'a> {
    #[serde(borrow)]
    sku_id: Text<'a>,
    #[serde(borrow, default)]
    assigned_by_group: Option<Text<'a>>,
    #[serde(borrow, default)]
    state: Text<'a>,
    #[serde(borrow, default)]
    error: Option<Text<'a>>,
}

/// The properties of an `assignedPlan` that tell an Exchange mailbox licence (`assignedDateTime` is skipped).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PlanView<'a> {
    #[serde(borrow, default)]
    capability_status: Text<'a>,
    #[serde(borrow, default)]
    service: Text<'a>,
    #[serde(borrow, default)]
    service_plan_id: Text<'a>,
}

impl UserView<'_> {
    fn snapshot(&self) -> UserSnapshot {
        let plans = self.assigned_plans.iter();
        UserSnapshot {
            names: UserNames::new(
                &self.id.0,
                &self.user_principal_name.0,
                text(&self.display_name),
                text(&self.mail),
            ),
            account_enabled: self.account_enabled,
            guest: is_guest(text(&self.user_type)),
            mailbox: has_mailbox(text(&self.mail), self.proxy_addresses.iter().map(|p| &*p.0)),
            exchange_enabled: exchange_enabled(plans.map(|p| {
                (
                    &*p.service.0,
                    &*p.capability_status.0,
                    &*p.service_plan_id.0,
                )
            })),
            created: self.created_date_time,
            licenses: licence_snaps(
                self.assigned_licenses
                    .iter()
                    .map(|l| (&*l.sku_id.0, l.disabled_plans.iter().map(|p| &*p.0))),
            ),
            states: (self.license_assignment_states.iter())
                .map(|s| {
                    state_snap(
                        &s.sku_id.0,
                        text(&s.assigned_by_group),
                        &s.state.0,
                        text(&s.error),
                    )
                })
                .collect(),
        }
    }
}

impl AssignedPlan {
    /// Service, capability status and service plan id: what tells an Exchange mailbox licence.
    fn parts(&self) -> (&str, &str, &str) {
        (
            &self.service,
            &self.capability_status,
            &self.service_plan_id,
        )
    }
}

/// The text of an optional string.
fn text<'a>(t: &'a Option<Text<'_>>) -> Option<&'a str> {
    t.as_ref().map(|t| &*t.0)
}

fn is_guest(user_type: Option<&str>) -> bool {
    user_type.is_some_and(|t| t.eq_ignore_ascii_case("guest"))
}

/// A mailbox: a primary address and an `SMTP:` proxy address.
fn has_mailbox<'a>(mail: Option<&str>, mut proxy_addresses: impl Iterator<Item = &'a str>) -> bool {
    mail.is_some_and(|m| !m.trim().is_empty()) && proxy_addresses.any(|p| p.starts_with("SMTP:"))
}

/// Holds an enabled Exchange mailbox plan (the foundation plan every SKU carries does not count); each plan as its
/// service, capability status and service plan id.
fn exchange_enabled<'a>(mut plans: impl Iterator<Item = (&'a str, &'a str, &'a str)>) -> bool {
    plans.any(|(service, status, plan_id)| {
        service.eq_ignore_ascii_case("exchange")
            && status.eq_ignore_ascii_case("enabled")
            && !plan_id.eq_ignore_ascii_case(EXCHANGE_FOUNDATION_PLAN)
    })
}

/// A SKU id, lower-cased, shared with every other user of this thread that holds the SKU: a tenant has a few dozen
/// SKUs and 100,000 users, so a run keeps each id once instead of once per user.
fn sku_id(id: &str) -> std::sync::Arc<str> {
    use std::cell::RefCell;
    use std::sync::Arc;
    /// Enough for any real tenant's SKUs; past it, ids are simply not shared.
    const KEPT: usize = 512;
    thread_local! {
        static SEEN: RefCell<Vec<Arc<str>>> = const { RefCell::new(Vec::new()) };
    }
    SEEN.with_borrow_mut(|seen| {
        if let Some(known) = seen.iter().find(|k| k.eq_ignore_ascii_case(id)) {
            return known.clone();
        }
        let new: Arc<str> = Arc::from(id.to_ascii_lowercase());
        if seen.len() < KEPT {
            seen.push(new.clone());
        }
        new
    })
}

/// Licences lower-cased, sorted by SKU and unique; each licence as its SKU id and disabled plans.
fn licence_snaps<'a, P>(licenses: impl Iterator<Item = (&'a str, P)>) -> Vec<LicenseSnap>
where
    P: Iterator<Item = &'a str>,
{
    let mut out: Vec<LicenseSnap> = licenses
        .map(|(sku, plans)| {
            let mut disabled_plans: Vec<String> = plans.map(str::to_ascii_lowercase).collect();
            disabled_plans.sort();
            LicenseSnap {
                sku_id: sku_id(sku),
                disabled_plans,
            }
        })
        .collect();
    out.sort_by(|a, b| a.sku_id.cmp(&b.sku_id));
    out.dedup_by(|a, b| a.sku_id == b.sku_id);
    out
}

/// One assignment state, from its SKU id, group, state and error as Graph spells them.
fn state_snap(sku: &str, group: Option<&str>, state: &str, error: Option<&str>) -> AssignmentSnap {
    AssignmentSnap {
        sku_id: sku_id(sku),
        group: group.map(str::to_string),
        state: state.into(),
        error: error_code(error).map(Into::into),
    }
}

/// An assignment error, with Graph's two spellings of success (null and "None") folded to `None`.
fn error_code(error: Option<&str>) -> Option<&str> {
    match error {
        None | Some("") => None,
        Some(e) if e.eq_ignore_ascii_case("none") => None,
        Some(e) => Some(e),
    }
}

/// Present in a delta item (even as `null`), or absent.
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Some(Option::<T>::deserialize(d)?.unwrap_or_default()))
}

/// Why a user left the directory, in a delta item: `changed` (deleted, restorable for 30 days) or `deleted`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Removed {
    /// `changed` or `deleted`.
    #[serde(default)]
    pub reason: String,
}

/// One item of `/users/delta`: a user created since the last round (every selected property), updated (its id and
/// only the properties that changed) or removed (`@removed`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DeltaUser {
    /// Object id.
    pub id: String,
    /// Set when the user was deleted.
    #[serde(default, rename = "@removed")]
    pub removed: Option<Removed>,
    #[serde(default, deserialize_with = "present")]
    user_principal_name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    display_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    mail: Option<Option<String>>,
    #[serde(default)]
    account_enabled: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    user_type: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    created_date_time: Option<Option<DateTime<Utc>>>,
    #[serde(default, deserialize_with = "present")]
    assigned_licenses: Option<Vec<AssignedLicense>>,
    #[serde(default, deserialize_with = "present")]
    assigned_plans: Option<Vec<AssignedPlan>>,
    #[serde(default, deserialize_with = "present")]
    proxy_addresses: Option<Vec<String>>,
}

impl DeltaUser {
    /// The user after this change, from its snapshot before (`None` for a user new to licensewatch). `None` when
    /// the change cannot be applied exactly from what the item carries (a new user without its UPN, or a mail
    /// change whose mailbox depends on proxy addresses the snapshot did not keep): read that user in full instead.
    ///
    /// `licenseAssignmentStates` is not tracked by delta: an item may carry it stale (Graph's default returns every
    /// selected property), so it never replaces what licensewatch read. A known user keeps its states for the SKUs
    /// it still holds; a new user holding licences is read in full for them.
    pub fn apply(&self, before: Option<UserSnapshot>) -> Option<UserSnapshot> {
        let (known, had_mailbox) = (before.is_some(), before.as_ref().is_some_and(|b| b.mailbox));
        let new_with_licences = self
            .assigned_licenses
            .as_ref()
            .is_some_and(|l| !l.is_empty());
        if !known && new_with_licences {
            return None;
        }
        let mut u = match before {
            Some(b) => b,
            None => UserSnapshot::bare(&self.id, self.user_principal_name.as_deref()?),
        };
        if let Some(enabled) = self.account_enabled {
            u.account_enabled = enabled;
        }
        if let Some(kind) = &self.user_type {
            u.guest = is_guest(kind.as_deref());
        }
        if let Some(created) = self.created_date_time {
            u.created = created;
        }
        if let Some(l) = &self.assigned_licenses {
            u.licenses = licence_snaps(l.iter().map(AssignedLicense::parts));
            // A state in error names a SKU the user does not hold: kept (such users are read again in full).
            let held = |sku: &str| {
                u.licenses
                    .iter()
                    .any(|l| l.sku_id.eq_ignore_ascii_case(sku))
            };
            let states = std::mem::take(&mut u.states);
            u.states = states
                .into_iter()
                .filter(|s| s.error.is_some() || held(&s.sku_id))
                .collect();
        }
        if let Some(p) = &self.assigned_plans {
            u.exchange_enabled = exchange_enabled(p.iter().map(AssignedPlan::parts));
        }
        match (&self.mail, &self.proxy_addresses) {
            (Some(mail), Some(proxies)) => {
                u.mailbox = has_mailbox(mail.as_deref(), proxies.iter().map(String::as_str))
            }
            (None, Some(proxies)) => {
                u.mailbox = has_mailbox(u.mail(), proxies.iter().map(String::as_str))
            }
            // The mailbox flag needs the proxy addresses, which the snapshot folded into it: exact only when the
            // old flag shows they held an SMTP address.
            (Some(mail), None) if had_mailbox => {
                u.mailbox = mail.as_deref().is_some_and(|m| !m.trim().is_empty())
            }
            (Some(_), None) => return None,
            (None, None) if !known => return None,
            (None, None) => {}
        }
        if self.user_principal_name.is_some() || self.display_name.is_some() || self.mail.is_some()
        {
            let name = |changed: &Option<Option<String>>, was: Option<&str>| match changed {
                Some(now) => now.as_deref().map(str::to_string),
                None => was.map(str::to_string),
            };
            let upn = self.user_principal_name.as_deref().unwrap_or(u.upn());
            let display_name = name(&self.display_name, u.display_name());
            let mail = name(&self.mail, u.mail());
            u.names = UserNames::new(u.id(), upn, display_name.as_deref(), mail.as_deref());
        }
        Some(u)
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AssignedLicense {
    /// SKU GUID.
    pub sku_id: String,
    /// Disabled service plan GUIDs.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub disabled_plans: Vec<String>,
}

impl AssignedLicense {
    /// The SKU id and the disabled plans.
    fn parts(&self) -> (&str, impl Iterator<Item = &str>) {
        (&self.sku_id, self.disabled_plans.iter().map(String::as_str))
    }
}

/// `assignedPlan`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AssignedPlan {
    /// Reset by Microsoft whenever a plan changes in the background: not the first-assignment date.
    #[serde(default)]
    pub assigned_date_time: Option<DateTime<Utc>>,
    /// Enabled, Warning, Suspended, Deleted, LockedOut.
    #[serde(default)]
    pub capability_status: String,
    /// e.g. `exchange`.
    #[serde(default)]
    pub service: String,
    /// Service plan GUID.
    #[serde(default)]
    pub service_plan_id: String,
}

/// `licenseAssignmentState`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LicenseAssignmentState {
    /// SKU GUID.
    pub sku_id: String,
    /// Group id when inherited, null when direct.
    #[serde(default)]
    pub assigned_by_group: Option<String>,
    /// Active, ActiveWithError, Disabled, Error.
    #[serde(default)]
    pub state: String,
    /// Null or "None" on success, else CountViolation, MutuallyExclusiveViolation, ...
    #[serde(default)]
    pub error: Option<String>,
    /// Disabled plans for this assignment.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub disabled_plans: Vec<String>,
    /// Last processing time.
    #[serde(default)]
    pub last_updated_date_time: Option<DateTime<Utc>>,
}

impl LicenseAssignmentState {
    /// The error, with Graph's two spellings of success (null and "None") folded to `None`.
    pub fn error_code(&self) -> Option<&str> {
        error_code(self.error.as_deref())
    }

    /// The state as a snapshot keeps it.
    fn snap(&self) -> AssignmentSnap {
        let group = self.assigned_by_group.as_deref();
        state_snap(&self.sku_id, group, &self.state, self.error.as_deref())
    }
}

/// `subscribedSku`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SubscribedSku {
    /// `{tenant}_{sku}`.
    #[serde(default)]
    pub id: String,
    /// SKU GUID.
    pub sku_id: String,
    /// e.g. ENTERPRISEPACK.
    #[serde(default)]
    pub sku_part_number: String,
    /// `User` or `Company`.
    #[serde(default)]
    pub applies_to: String,
    /// Enabled, Warning, Suspended, LockedOut.
    #[serde(default)]
    pub capability_status: String,
    /// Seats assigned.
    #[serde(default)]
    pub consumed_units: i64,
    /// Seats bought, by lifecycle state.
    #[serde(default)]
    pub prepaid_units: PrepaidUnits,
    /// Plans in the SKU.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub service_plans: Vec<ServicePlanInfo>,
}

/// `companySubscription` (`GET /directory/subscriptions`): one commercial subscription behind a SKU's seats.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CompanySubscription {
    /// Subscription id.
    pub id: String,
    /// The SKU it adds seats to.
    #[serde(default)]
    pub sku_id: String,
    /// e.g. ENTERPRISEPACK.
    #[serde(default)]
    pub sku_part_number: Option<String>,
    /// Enabled, Warning, Suspended, LockedOut, Deleted.
    #[serde(default)]
    pub status: String,
    /// Seats it brings.
    #[serde(default)]
    pub total_licenses: i64,
    /// When it moves to its next state unless renewed (for an enabled one, the end of its term).
    #[serde(default)]
    pub next_lifecycle_date_time: Option<DateTime<Utc>>,
    /// A free trial.
    #[serde(default)]
    pub is_trial: bool,
}

impl From<&CompanySubscription> for crate::domain::snapshot::CommerceSnap {
    fn from(s: &CompanySubscription) -> Self {
        Self {
            id: s.id.clone(),
            sku_id: s.sku_id.to_ascii_lowercase(),
            sku_part_number: s.sku_part_number.clone(),
            status: s.status.clone(),
            total_licenses: s.total_licenses,
            next_lifecycle: s.next_lifecycle_date_time,
            is_trial: s.is_trial,
        }
    }
}

/// `licenseUnitsDetail`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PrepaidUnits {
    /// Active seats.
    #[serde(default)]
    pub enabled: i64,
    /// Seats in the lockedOut state.
    #[serde(default)]
    pub locked_out: i64,
    /// Seats in the suspended state.
    #[serde(default)]
    pub suspended: i64,
    /// Seats in the warning (grace) state.
    #[serde(default)]
    pub warning: i64,
}

/// `servicePlanInfo`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ServicePlanInfo {
    /// Plan GUID.
    pub service_plan_id: String,
    /// e.g. EXCHANGE_S_ENTERPRISE.
    #[serde(default)]
    pub service_plan_name: String,
    /// Success, Disabled, PendingInput...
    #[serde(default)]
    pub provisioning_status: String,
    /// `User` or `Company`.
    #[serde(default)]
    pub applies_to: String,
}

/// `group` (subset).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    /// Object id.
    pub id: String,
    /// Display name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Licences the group assigns.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub assigned_licenses: Vec<AssignedLicense>,
}

/// A member returned by `membersWithLicenseErrors` (a directoryObject; users carry these fields).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DirectoryObject {
    /// Object id.
    pub id: String,
    /// `#microsoft.graph.user` etc.
    #[serde(default, rename = "@odata.type")]
    pub odata_type: Option<String>,
    /// UPN when the object is a user.
    #[serde(default)]
    pub user_principal_name: Option<String>,
}

impl From<&SubscribedSku> for SkuSnap {
    fn from(s: &SubscribedSku) -> Self {
        SkuSnap {
            sku_id: s.sku_id.to_ascii_lowercase(),
            part_number: s.sku_part_number.clone(),
            enabled: s.prepaid_units.enabled,
            consumed: s.consumed_units,
            warning: s.prepaid_units.warning,
            suspended: s.prepaid_units.suspended,
            plans: s
                .service_plans
                .iter()
                .map(|p| {
                    (
                        p.service_plan_id.to_ascii_lowercase(),
                        p.service_plan_name.clone(),
                    )
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allotments_read_as_microsoft_documents_them_units_as_numbers_or_strings() {
        let doc = include_str!(
            "../../../../../tests/fixtures/real/msgraph-docs__cloudlicensing_allotment_get_example.json"
        );
        let v: serde_json::Value = serde_json::from_str(doc).expect("sample");
        let a: Allotment = serde_json::from_value(v["value"].clone()).expect("allotment");
        assert_eq!((a.allotted_units, a.consumed_units), (100, 84));
        assert_eq!(a.sku_part_number, "Teams_Ess");
        assert!(a.waiting_members.is_empty(), "not expanded");
        let s: Allotment = serde_json::from_value(serde_json::json!({
            "id": "x", "skuId": "s", "allottedUnits": "250", "consumedUnits": null,
            "waitingMembers": [{"id": "w", "waitingSinceDateTime": "2024-11-22T17:11:10.6635939+00:00"}]
        }))
        .expect("a string count");
        assert_eq!((s.allotted_units, s.consumed_units), (250, 0));
        assert_eq!(s.waiting_members.len(), 1);
        let bad = serde_json::from_value::<Allotment>(
            serde_json::json!({"id": "x", "allottedUnits": "many"}),
        );
        assert!(
            bad.expect_err("not a number")
                .to_string()
                .contains("'many'")
        );
    }

    #[test]
    fn a_delta_item_never_overwrites_the_untracked_assignment_states() {
        const E3: &str = "6fd2c87f-b296-42f0-b197-1e91e994b900";
        const A1: &str = "94763226-9b3c-4e75-a931-5c89701abe66";
        const FACULTY: &str = "314c4481-f395-4525-be8b-2ec4bb1e9d91";
        let before = user(serde_json::json!({
            "id": "u1", "userPrincipalName": "u1@contoso.com", "accountEnabled": true, "userType": "Member",
            "mail": "u1@contoso.com", "proxyAddresses": ["SMTP:u1@contoso.com"],
            "createdDateTime": "2026-01-01T00:00:00Z",
            "assignedLicenses": [{"skuId": E3, "disabledPlans": []}], "assignedPlans": [],
            "licenseAssignmentStates": [
                {"skuId": E3, "assignedByGroup": null, "state": "Active", "error": "None", "disabledPlans": []},
                {"skuId": FACULTY, "assignedByGroup": "g1", "state": "Error", "error": "CountViolation", "disabledPlans": []}
            ]
        }));
        let item = |licences: serde_json::Value| -> DeltaUser {
            serde_json::from_value(serde_json::json!({
                "id": "u1", "userPrincipalName": "u1@contoso.com", "assignedLicenses": licences,
                // Graph's default sends it with every item, stale: here, as if nothing were assigned.
                "licenseAssignmentStates": []
            }))
            .expect("delta item")
        };
        let added = item(serde_json::json!([{"skuId": E3}, {"skuId": A1}]))
            .apply(Some(before.clone()))
            .expect("applied");
        assert_eq!(
            added.states, before.states,
            "the stale empty list is not taken"
        );
        let removed = item(serde_json::json!([]))
            .apply(Some(before.clone()))
            .expect("applied");
        let skus: Vec<&str> = removed.states.iter().map(|s| &*s.sku_id).collect();
        assert_eq!(
            skus,
            [FACULTY],
            "E3's state goes with E3; the group error stays"
        );
        let joiner: DeltaUser = serde_json::from_value(serde_json::json!({
            "id": "u2", "userPrincipalName": "u2@contoso.com", "assignedLicenses": [{"skuId": E3}],
            "licenseAssignmentStates": []
        }))
        .expect("delta item");
        assert!(
            joiner.apply(None).is_none(),
            "a licensed joiner is read in full"
        );
    }

    #[test]
    fn placeholder_sign_in_dates_read_as_none() {
        let a: SignInActivity = serde_json::from_value(serde_json::json!({
            "lastSignInDateTime": "0001-01-01T00:00:00Z",
            "lastNonInteractiveSignInDateTime": "2026-03-02T08:00:00Z",
            "lastSuccessfulSignInDateTime": null
        }))
        .expect("signInActivity");
        assert_eq!(a.last_sign_in_date_time, None, "year 1 is no sign-in");
        assert_eq!(
            a.last_non_interactive_sign_in_date_time
                .map(|t| t.to_rfc3339()),
            Some("2026-03-02T08:00:00+00:00".into())
        );
        assert_eq!(a.last_successful_sign_in_date_time, None);
    }

    /// The user's snapshot, distilled from the owned user and (from the same text) while parsing a page: the two
    /// must agree.
    fn user(json: serde_json::Value) -> UserSnapshot {
        let owned = serde_json::from_value::<User>(json.clone())
            .expect("user")
            .snapshot();
        let text = json.to_string();
        let listed: ListedUser = serde_json::from_str(&text).expect("listed user");
        assert_eq!(listed.0, owned, "a listed user distils as the owned one");
        owned
    }

    #[test]
    fn a_listed_user_reads_escaped_text_nulls_and_a_whole_licensed_user_as_the_owned_user_does() {
        let u = user(serde_json::json!({
            "id": "3f1c2a5e-0b7d-4c5e-9a1f-2b3c4d5e6f70",
            "userPrincipalName": "zoë.o\"brien@contoso.com",
            "displayName": "Zoë \"Z\" O'Brien\n",
            "mail": null,
            "accountEnabled": false,
            "userType": "Member",
            "usageLocation": "GB",
            "createdDateTime": "2024-02-03T04:05:06Z",
            "assignedLicenses": [{"skuId": "6FD2C87F-B296-42F0-B197-1E91E994B900", "disabledPlans": ["A", "b"]},
                {"skuId": "c7df2760-2c81-4ef7-b578-5b5392b571df", "disabledPlans": null}],
            "assignedPlans": [
                {"assignedDateTime": "2024-02-03T04:05:06Z", "capabilityStatus": "Enabled", "service": "exchange",
                 "servicePlanId": "efb87545-963c-4e0d-99df-69c6916d9eb0"},
                {"assignedDateTime": null, "capabilityStatus": "Enabled", "service": "SharePoint",
                 "servicePlanId": "5dbe027f-2339-4123-9542-606e4d348a72"}
            ],
            "licenseAssignmentStates": [{"skuId": "6fd2c87f-b296-42f0-b197-1e91e994b900", "assignedByGroup": null,
                "state": "Active", "error": "None", "disabledPlans": [], "lastUpdatedDateTime": null},
                {"skuId": "C7DF2760-2C81-4EF7-B578-5B5392B571DF", "assignedByGroup": "g-1", "state": "Error",
                 "error": "CountViolation", "disabledPlans": null, "lastUpdatedDateTime": "2024-02-03T04:05:06Z"},
                {"skuId": "c7df2760-2c81-4ef7-b578-5b5392b571df", "state": "Active", "error": null}],
            "onPremisesSyncEnabled": null,
            "proxyAddresses": ["smtp:zoe@contoso.com", "SMTP:zoe.obrien@contoso.com"]
        }));
        assert_eq!(u.upn(), "zoë.o\"brien@contoso.com");
        assert_eq!(u.display_name(), Some("Zoë \"Z\" O'Brien\n"));
        assert!(u.exchange_enabled && !u.account_enabled && u.mail().is_none() && !u.mailbox);
        let states: Vec<(&str, Option<&str>, bool)> = (u.states.iter())
            .map(|s| (&*s.sku_id, s.group.as_deref(), s.error.is_some()))
            .collect();
        let e5 = "c7df2760-2c81-4ef7-b578-5b5392b571df";
        let e3 = "6fd2c87f-b296-42f0-b197-1e91e994b900";
        assert_eq!(
            states,
            [
                (e3, None, false),
                (e5, Some("g-1"), true),
                (e5, None, false)
            ]
        );
        let plans: Vec<&[String]> = u.licenses.iter().map(|l| &l.disabled_plans[..]).collect();
        assert_eq!(plans, [&["a".to_string(), "b".to_string()][..], &[]]);
        let nulls = user(
            serde_json::json!({"id": "x", "assignedLicenses": null, "assignedPlans": null,
            "licenseAssignmentStates": null, "proxyAddresses": null, "displayName": null}),
        );
        assert_eq!((nulls.upn(), nulls.display_name()), ("", None));
        let escaped: ListedUser = serde_json::from_str(
            r#"{"id": "y", "userPrincipalName": "zo\u00eb@x", "displayName": "a\/b"}"#,
        )
        .expect("escaped text");
        assert_eq!(
            (escaped.0.upn(), escaped.0.display_name()),
            ("zoë@x", Some("a/b"))
        );
        assert!(serde_json::from_str::<ListedUser>(r#"{"userPrincipalName": "no-id@x"}"#).is_err());
    }

    #[test]
    fn mailbox_and_exchange_follow_the_documented_rules() {
        let u = user(
            serde_json::json!({"id":"a","userPrincipalName":"a@x","mail":"a@x.com","proxyAddresses":["SMTP:a@x.com"],
            "assignedPlans":[{"service":"exchange","capabilityStatus":"Deleted","servicePlanId":"efb87545-963c-4e0d-99df-69c6916d9eb0"},
                             {"service":"exchange","capabilityStatus":"Enabled","servicePlanId":EXCHANGE_FOUNDATION_PLAN}]}),
        );
        assert!(u.mailbox && u.is_member_mailbox());
        assert!(
            !u.exchange_enabled,
            "deleted plans and Exchange Foundation give no mailbox licence"
        );
        let u =
            user(serde_json::json!({"id":"b","mail":"b@x.com","proxyAddresses":["smtp:b@x.com"]}));
        assert!(!u.mailbox, "only a primary SMTP: address counts");
        let g = user(
            serde_json::json!({"id":"c","mail":"c@x.com","proxyAddresses":["SMTP:c@x.com"],"userType":"Guest"}),
        );
        assert!(!g.is_member_mailbox());
    }

    #[test]
    fn documented_subscribed_skus_sample_parses() {
        let text = include_str!("../../../../tests/fixtures/graph_subscribedSkus.json");
        #[derive(Deserialize)]
        struct Page {
            value: Vec<SubscribedSku>,
        }
        let page: Page = serde_json::from_str(text).expect("sample parses");
        assert_eq!(page.value.len(), 2);
        assert_eq!(page.value[0].prepaid_units.enabled, 25);
        assert_eq!(page.value[1].capability_status, "Suspended");
    }

    #[test]
    fn error_none_and_null_both_mean_success() {
        let s: LicenseAssignmentState = serde_json::from_str(
            r#"{"skuId":"x","assignedByGroup":null,"state":"Active","error":"None"}"#,
        )
        .expect("ok");
        assert_eq!(s.error_code(), None);
        let s: LicenseAssignmentState = serde_json::from_str(
            r#"{"skuId":"x","assignedByGroup":"g2","state":"Error","error":"CountViolation"}"#,
        )
        .expect("ok");
        assert_eq!(s.error_code(), Some("CountViolation"));
    }

    #[test]
    fn users_holding_a_sku_share_one_lower_cased_id() {
        let a = sku_id("6FD2C87F-B296-42F0-B197-1E91E994B900");
        let b = sku_id("6fd2c87f-b296-42f0-b197-1e91e994b900");
        assert_eq!(&*a, "6fd2c87f-b296-42f0-b197-1e91e994b900");
        assert!(std::sync::Arc::ptr_eq(&a, &b), "one id, shared");
        assert!(!std::sync::Arc::ptr_eq(
            &a,
            &sku_id("c7df2760-2c81-4ef7-b578-5b5392b571df")
        ));
    }
}

/// `cloudLicensing.allotment` (Graph beta, `GET /admin/cloudLicensing/allotments`): a pool of a SKU's seats, with
/// its waiting room when `$expand=waitingMembers` asked for it.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Allotment {
    /// Allotment id.
    pub id: String,
    /// The SKU.
    #[serde(default)]
    pub sku_id: String,
    /// e.g. ENTERPRISEPACK.
    #[serde(default)]
    pub sku_part_number: String,
    /// Seats in the pool (Graph has sent this as a string as well as a number).
    #[serde(default, deserialize_with = "units")]
    pub allotted_units: i64,
    /// Seats assigned.
    #[serde(default, deserialize_with = "units")]
    pub consumed_units: i64,
    /// Users waiting for a seat of this pool.
    #[serde(default)]
    pub waiting_members: Vec<WaitingMember>,
}

/// `cloudLicensing.waitingMember`: someone waiting for a seat (its id is opaque: Graph names no user).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WaitingMember {
    /// Opaque id.
    pub id: String,
    /// Since when it waits.
    pub waiting_since_date_time: DateTime<Utc>,
}

/// A count Graph sends as a number or as a string of digits (`null` or absent: 0).
fn units<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    use serde::de::Error;
    match Option::<serde_json::Value>::deserialize(d)? {
        None | Some(serde_json::Value::Null) => Ok(0),
        Some(serde_json::Value::Number(n)) => n
            .as_i64()
            .ok_or_else(|| D::Error::custom(format!("units {n} is not a whole number"))),
        Some(serde_json::Value::String(s)) => s
            .trim()
            .parse()
            .map_err(|_| D::Error::custom(format!("units '{s}' is not a number"))),
        Some(other) => Err(D::Error::custom(format!("units {other} is not a number"))),
    }
}
