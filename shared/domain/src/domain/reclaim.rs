//! Reclamation: which paid licences nobody uses. A licence is worth reclaiming when its holder has not signed in
//! for `inactive_days`, never signed in since licensewatch first saw the licence (licensewatch's own first-seen
//! date, not Graph's assignment dates, which Microsoft resets on background changes), holds it on a disabled
//! account, or holds a second SKU whose services another of their SKUs already gives. Unassigned seats are money
//! too. Nothing here removes anything: each row carries the command an administrator could run, within the
//! remediation rails.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// What is known of a user's use of Microsoft 365.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Activity {
    /// The last successful sign-in (`signInActivity`).
    SignIn {
        /// When.
        at: DateTime<Utc>,
    },
    /// The mailbox's last activity day (the Exchange usage report).
    Mailbox {
        /// Which day.
        day: NaiveDate,
    },
    /// Never signed in (or no mailbox activity on record).
    Never,
    /// Not known (the reason is the report's).
    Unknown,
}

impl Activity {
    /// The last activity as a time (a mailbox day counts from its start).
    fn last(&self) -> Option<DateTime<Utc>> {
        match self {
            Activity::SignIn { at } => Some(*at),
            Activity::Mailbox { day } => day.and_hms_opt(0, 0, 0).map(|t| t.and_utc()),
            Activity::Never | Activity::Unknown => None,
        }
    }
}

/// A licence a user holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Held {
    /// SKU id.
    pub sku_id: String,
    /// Plans turned off in this assignment.
    pub disabled_plans: Vec<String>,
    /// The group that assigns it, when not direct.
    pub by_group: Option<String>,
    /// When licensewatch first saw the user hold it; `before_watching` when it was held before licensewatch's
    /// first run (the baseline), so its real start is earlier.
    pub since: Option<(DateTime<Utc>, bool)>,
}

/// A user, as reclamation sees them.
#[derive(Debug, Clone, PartialEq)]
pub struct ReclaimUser {
    /// Object id.
    pub id: String,
    /// UPN.
    pub upn: String,
    /// Sign-in allowed.
    pub enabled: bool,
    /// Account creation.
    pub created: Option<DateTime<Utc>>,
    /// Licences.
    pub held: Vec<Held>,
    /// Use.
    pub activity: Activity,
}

/// A SKU with its plans and seats.
#[derive(Debug, Clone, PartialEq)]
pub struct SkuPlans {
    /// SKU id.
    pub sku_id: String,
    /// Display name.
    pub name: String,
    /// Part number.
    pub part_number: String,
    /// (plan id, plan name).
    pub plans: Vec<(String, String)>,
    /// Active seats bought.
    pub enabled: i64,
    /// Seats assigned.
    pub consumed: i64,
}

/// Monthly prices per SKU (`[prices]` in the policy), by SKU id or part number.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Prices {
    /// Currency label.
    pub currency: String,
    /// Keys lower-cased.
    pub monthly: BTreeMap<String, f64>,
}

impl Prices {
    /// The monthly price of a SKU, when configured.
    pub fn of(&self, sku: &SkuPlans) -> Option<f64> {
        self.monthly
            .get(&sku.sku_id.to_lowercase())
            .or_else(|| self.monthly.get(&sku.part_number.to_lowercase()))
            .copied()
    }
}

/// Why a licence is worth reclaiming.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reason {
    /// No sign-in (or mailbox activity) for this many days.
    Inactive {
        /// Days since the last activity.
        days: i64,
    },
    /// Never signed in since licensewatch saw the licence arrive, this many days ago (for a licence held before
    /// licensewatch watched: since the account was created).
    NeverUsed {
        /// Days.
        days: i64,
    },
    /// The account cannot sign in.
    Disabled,
    /// The mailbox is a shared one (`userPurpose`) under the 50 GB a shared mailbox holds without a licence and
    /// without an archive: the licence pays for nothing.
    SharedMailbox {
        /// Its size from the mailbox usage report, when the report could be read.
        storage_bytes: Option<u64>,
    },
    /// Every service of this SKU comes with another SKU the user holds.
    Overlapping {
        /// The SKU that already gives them.
        covered_by: String,
        /// The services both give.
        services: Vec<String>,
    },
}

/// One licence worth reclaiming.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReclaimRow {
    /// User id.
    pub user_id: String,
    /// UPN.
    pub user_principal_name: String,
    /// SKU id.
    pub sku_id: String,
    /// SKU name.
    pub sku_name: String,
    /// Why.
    pub reason: Reason,
    /// The last activity, when known.
    pub last_activity: Option<DateTime<Utc>>,
    /// When licensewatch first saw the licence (absent when it was held before licensewatch watched).
    pub licensed_since: Option<DateTime<Utc>>,
    /// The group that assigns it (then the user leaves the group instead).
    pub assigned_by_group: Option<String>,
    /// The monthly price, when configured.
    pub monthly_cost: Option<f64>,
    /// What an administrator could run (never run by licensewatch), or how to do it for a group licence.
    pub action: String,
}

/// Seats bought and not assigned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdleSeats {
    /// SKU id.
    pub sku_id: String,
    /// SKU name.
    pub sku_name: String,
    /// Seats bought and not assigned.
    pub unassigned: i64,
    /// Their monthly price, when configured.
    pub monthly_cost: Option<f64>,
}

/// Where the activity column comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActivitySource {
    /// `signInActivity.lastSuccessfulSignInDateTime` (Entra ID P1, `AuditLog.Read.All`).
    SignIn,
    /// The Exchange mailbox usage report's last activity day (`Reports.Read.All`).
    MailboxReport,
    /// Neither could be read: only disabled accounts, overlaps and idle seats are judged.
    None,
}

/// A reclamation report (`licensewatch reclaim --json`, and the report page's section).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReclaimReport {
    /// Tenant.
    pub tenant_id: String,
    /// When it was made.
    pub generated_at: DateTime<Utc>,
    /// The inactivity limit it used.
    pub inactive_days: u32,
    /// Users read.
    pub users_read: usize,
    /// Where activity came from.
    pub activity_source: ActivitySource,
    /// Why the better source could not be used (P1 missing, a permission missing, names concealed).
    pub activity_notes: Vec<String>,
    /// Licences worth reclaiming.
    pub rows: Vec<ReclaimRow>,
    /// Seats bought and not assigned.
    pub idle_seats: Vec<IdleSeats>,
    /// The prices' currency, when prices are configured.
    pub currency: Option<String>,
    /// The monthly cost of the rows and idle seats that have a price.
    pub monthly_total: Option<f64>,
    /// What was found of shared mailboxes: those kept because they need their licence, or why purposes or sizes
    /// could not be read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mailbox_notes: Vec<String>,
}

impl ReclaimReport {
    /// The monthly total of what has a price, or None when nothing has one.
    pub fn total(rows: &[ReclaimRow], idle: &[IdleSeats]) -> Option<f64> {
        let costs: Vec<f64> = rows
            .iter()
            .filter_map(|r| r.monthly_cost)
            .chain(idle.iter().filter_map(|s| s.monthly_cost))
            .collect();
        (!costs.is_empty()).then(|| costs.iter().sum())
    }
}

/// The rules' settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ReclaimRules {
    /// A licence unused this long is worth reclaiming.
    pub inactive_days: u32,
    /// Prices.
    pub prices: Prices,
}

/// What a shared mailbox can hold without a licence (Exchange Online limits: 50 GB).
pub(crate) const SHARED_MAILBOX_FREE_BYTES: u64 = 50 * 1024 * 1024 * 1024;

/// A licensed shared mailbox, as the usage report describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SharedMailbox {
    /// Its size, when known.
    pub storage_bytes: Option<u64>,
    /// It has an online archive (which needs a licence).
    pub has_archive: bool,
}

impl SharedMailbox {
    /// Whether the mailbox needs its licence: over 50 GB, or with an archive.
    pub(crate) fn needs_licence(&self) -> bool {
        self.has_archive
            || self
                .storage_bytes
                .is_some_and(|b| b > SHARED_MAILBOX_FREE_BYTES)
    }
}

/// Applies what is known of licensed shared mailboxes to the rows: a shared mailbox that needs no licence has its
/// rows' reason say so (its licence pays for nothing, whatever its account's state or activity); one that needs its
/// licence (over 50 GB, or an archive) has its rows removed, and a note says why. `shared` is keyed by user id.
pub fn with_shared_mailboxes(
    rows: Vec<ReclaimRow>,
    shared: &std::collections::HashMap<String, SharedMailbox>,
) -> (Vec<ReclaimRow>, Vec<String>) {
    let mut notes = Vec::new();
    let mut kept = std::collections::BTreeSet::new();
    let rows = rows
        .into_iter()
        .filter_map(|mut row| match shared.get(&row.user_id) {
            None => Some(row),
            Some(m) if m.needs_licence() => {
                if kept.insert(row.user_principal_name.clone()) {
                    notes.push(format!(
                        "{} is a shared mailbox that needs its licence ({}): kept",
                        row.user_principal_name,
                        match m.storage_bytes {
                            Some(b) if b > SHARED_MAILBOX_FREE_BYTES =>
                                format!("{} over 50 GB", gigabytes(b)),
                            _ => "it has an online archive".to_string(),
                        }
                    ));
                }
                None
            }
            Some(m) => {
                row.reason = Reason::SharedMailbox {
                    storage_bytes: m.storage_bytes,
                };
                Some(row)
            }
        })
        .collect();
    (rows, notes)
}

/// Bytes as gigabytes, one decimal.
pub fn gigabytes(bytes: u64) -> String {
    format!("{:.1} GB", bytes as f64 / (1024.0 * 1024.0 * 1024.0))
}

/// Units at which a SKU is a free, self-service one.
const FREE_SKU_UNITS: i64 = 10_000;

/// Licences worth reclaiming, most expensive first (then by user), and idle seats.
pub fn reclaimable(
    users: &[ReclaimUser],
    skus: &[SkuPlans],
    rules: &ReclaimRules,
    now: DateTime<Utc>,
) -> (Vec<ReclaimRow>, Vec<IdleSeats>) {
    let sku = |id: &str| skus.iter().find(|s| s.sku_id.eq_ignore_ascii_case(id));
    let mut rows = Vec::new();
    for u in users.iter().filter(|u| !u.held.is_empty()) {
        let overlaps = overlaps(u, skus);
        for h in &u.held {
            let reason = match (
                unused(u, h, rules.inactive_days, now),
                overlaps.get(h.sku_id.as_str()),
            ) {
                (Some(r), _) => r,
                (None, Some(o)) => o.clone(),
                (None, None) => continue,
            };
            let info = sku(&h.sku_id);
            rows.push(ReclaimRow {
                user_id: u.id.clone(),
                user_principal_name: u.upn.clone(),
                sku_id: h.sku_id.clone(),
                sku_name: info.map_or_else(|| h.sku_id.clone(), |s| s.name.clone()),
                reason,
                last_activity: u.activity.last(),
                licensed_since: h.since.filter(|(_, before)| !before).map(|(at, _)| at),
                assigned_by_group: h.by_group.clone(),
                monthly_cost: info.and_then(|s| rules.prices.of(s)),
                action: action(u, h),
            });
        }
    }
    rows.sort_by(|a, b| {
        b.monthly_cost
            .unwrap_or(0.0)
            .total_cmp(&a.monthly_cost.unwrap_or(0.0))
            .then_with(|| a.user_principal_name.cmp(&b.user_principal_name))
            .then_with(|| a.sku_name.cmp(&b.sku_name))
    });
    let idle = skus
        .iter()
        .filter(|s| s.enabled > s.consumed)
        // Free self-service SKUs come with 10,000 units or more (Microsoft Fabric (Free): 1,000,000); their idle
        // units cost nothing, unless a price says otherwise.
        .filter(|s| s.enabled < FREE_SKU_UNITS || rules.prices.of(s).is_some())
        .map(|s| IdleSeats {
            sku_id: s.sku_id.clone(),
            sku_name: s.name.clone(),
            unassigned: s.enabled - s.consumed,
            monthly_cost: rules
                .prices
                .of(s)
                .map(|p| p * (s.enabled - s.consumed) as f64),
        })
        .collect();
    (rows, idle)
}

/// Why a licence is unused, if it is.
fn unused(u: &ReclaimUser, h: &Held, inactive_days: u32, now: DateTime<Utc>) -> Option<Reason> {
    if !u.enabled {
        return Some(Reason::Disabled);
    }
    let limit = i64::from(inactive_days);
    match &u.activity {
        Activity::Unknown => None,
        Activity::Never => {
            // Since licensewatch saw the licence arrive; for one held before licensewatch watched, since the
            // account exists (the earliest it can have been used).
            let from = match h.since {
                Some((at, false)) => Some(at),
                _ => u.created.or(h.since.map(|(at, _)| at)),
            }?;
            let days = (now - from).num_days();
            (days >= limit).then_some(Reason::NeverUsed { days })
        }
        active => {
            let days = active.last().map(|t| (now - t).num_days())?;
            (days >= limit).then_some(Reason::Inactive { days })
        }
    }
}

impl<'a> From<&'a SkuPlans> for crate::domain::overlap::SkuPlansRef<'a> {
    fn from(s: &'a SkuPlans) -> Self {
        Self {
            sku_id: &s.sku_id,
            part_number: &s.part_number,
            plans: &s.plans,
        }
    }
}

/// SKUs of the user whose every service another SKU of theirs also gives (the one to remove), with that SKU.
fn overlaps<'a>(u: &'a ReclaimUser, skus: &[SkuPlans]) -> BTreeMap<&'a str, Reason> {
    use crate::domain::overlap::{HeldRef, SkuPlansRef};
    let refs: Vec<SkuPlansRef<'_>> = skus.iter().map(SkuPlansRef::from).collect();
    let held: Vec<HeldRef<'_>> = (u.held.iter())
        .map(|h| HeldRef {
            sku_id: &h.sku_id,
            disabled_plans: h.disabled_plans.iter().map(String::as_str).collect(),
        })
        .collect();
    let mut out = BTreeMap::new();
    for o in crate::domain::overlap::overlaps(&held, &refs, &|_| None) {
        let Some(h) = u
            .held
            .iter()
            .find(|h| h.sku_id == o.remove)
            .filter(|_| o.covered)
        else {
            continue;
        };
        let name = skus
            .iter()
            .find(|s| s.sku_id.eq_ignore_ascii_case(&o.keep))
            .map_or_else(|| o.keep.clone(), |s| s.name.clone());
        out.insert(
            h.sku_id.as_str(),
            Reason::Overlapping {
                covered_by: name,
                services: o.shared.iter().map(|s| s.to_string()).collect(),
            },
        );
    }
    out
}

/// The command that would remove the licence (through reprocess-user, so the allow-list, budget and audit apply),
/// or, for a group licence, what to do instead.
fn action(u: &ReclaimUser, h: &Held) -> String {
    match &h.by_group {
        Some(group) => format!(
            "remove {} from group {group} (the licence comes from the group)",
            u.upn
        ),
        None => format!(
            "licensewatch reprocess --user {} --action remove --sku {}",
            u.upn, h.sku_id
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const E3: &str = "6fd2c87f-b296-42f0-b197-1e91e994b900";
    const KIOSK: &str = "4b9405b0-7788-4568-add1-99614e613b69";

    fn now() -> DateTime<Utc> {
        "2026-11-21T09:00:00Z".parse().expect("time")
    }

    fn skus() -> Vec<SkuPlans> {
        let plan = |id: &str, name: &str| (id.to_string(), name.to_string());
        vec![
            SkuPlans {
                sku_id: E3.into(),
                name: "Office 365 E3".into(),
                part_number: "ENTERPRISEPACK".into(),
                plans: vec![
                    plan("p1", "EXCHANGE_S_ENTERPRISE"),
                    plan("p2", "TEAMS1"),
                    plan("p3", "SHAREPOINTENTERPRISE"),
                ],
                enabled: 10,
                consumed: 7,
            },
            SkuPlans {
                sku_id: KIOSK.into(),
                name: "Exchange Online (Plan 1)".into(),
                part_number: "EXCHANGESTANDARD".into(),
                plans: vec![
                    plan("p4", "EXCHANGE_S_STANDARD"),
                    plan("p5", "EXCHANGE_S_FOUNDATION"),
                ],
                enabled: 5,
                consumed: 5,
            },
            SkuPlans {
                sku_id: "a403ebcc-fae0-4ca2-8c8c-7a907fd6c235".into(),
                name: "Microsoft Fabric (Free)".into(),
                part_number: "POWER_BI_STANDARD".into(),
                plans: vec![
                    plan("p6", "EXCHANGE_S_FOUNDATION"),
                    plan("p7", "BI_AZURE_P0"),
                ],
                enabled: 1_000_000,
                consumed: 4,
            },
        ]
    }

    fn user(upn: &str, held: &[&str], activity: Activity) -> ReclaimUser {
        ReclaimUser {
            id: format!("id-{upn}"),
            upn: upn.into(),
            enabled: true,
            created: Some("2024-01-01T00:00:00Z".parse().expect("time")),
            held: held
                .iter()
                .map(|s| Held {
                    sku_id: s.to_string(),
                    disabled_plans: vec![],
                    by_group: None,
                    since: Some(("2026-10-01T00:00:00Z".parse().expect("time"), false)),
                })
                .collect(),
            activity,
        }
    }

    fn rules() -> ReclaimRules {
        ReclaimRules {
            inactive_days: 90,
            prices: Prices {
                currency: "EUR".into(),
                monthly: BTreeMap::from([("enterprisepack".into(), 20.0), (KIOSK.into(), 4.0)]),
            },
        }
    }

    #[test]
    fn inactive_never_used_disabled_and_covered_licences_are_found_and_priced() {
        let at = |d: i64| Activity::SignIn {
            at: now() - chrono::Duration::days(d),
        };
        let mut disabled = user("gone@x", &[E3], at(10));
        disabled.enabled = false;
        let mut new_hire = user("new@x", &[E3], Activity::Never);
        new_hire.created = Some(now() - chrono::Duration::days(5));
        new_hire.held[0].since = Some((now() - chrono::Duration::days(5), false));
        let mut held_before = user("before@x", &[E3], Activity::Never);
        held_before.held[0].since = Some((now() - chrono::Duration::days(20), true));
        let users = vec![
            user("active@x", &[E3], at(3)),
            user("idle@x", &[E3], at(120)),
            user("edge@x", &[E3], at(89)),
            // licensewatch saw the licence arrive 51 days ago: too recent, whatever the account's age.
            user("never@x", &[E3], Activity::Never),
            // Held before licensewatch watched: the account's age (since 2024-01-01) counts.
            held_before,
            new_hire,
            disabled,
            user("both@x", &[E3, KIOSK], at(1)),
            user("unknown@x", &[E3], Activity::Unknown),
        ];
        let (rows, idle) = reclaimable(&users, &skus(), &rules(), now());
        let got: Vec<(&str, &Reason)> = rows
            .iter()
            .map(|r| (r.user_principal_name.as_str(), &r.reason))
            .collect();
        assert_eq!(
            got,
            [
                ("before@x", &Reason::NeverUsed { days: 1055 }),
                ("gone@x", &Reason::Disabled),
                ("idle@x", &Reason::Inactive { days: 120 }),
                (
                    "both@x",
                    &Reason::Overlapping {
                        covered_by: "Office 365 E3".into(),
                        services: vec!["Exchange Online mailbox".into()],
                    }
                ),
            ]
        );
        assert_eq!(rows[0].monthly_cost, Some(20.0));
        assert_eq!(
            rows[3].sku_id, KIOSK,
            "the covered SKU is the one to remove"
        );
        assert_eq!(
            rows[1].licensed_since,
            Some("2026-10-01T00:00:00Z".parse().expect("time"))
        );
        assert_eq!(
            rows[0].licensed_since, None,
            "held before licensewatch watched"
        );
        assert_eq!(
            rows[0].action,
            format!("licensewatch reprocess --user before@x --action remove --sku {E3}")
        );
        assert_eq!(idle.len(), 1, "the free SKU's units are not idle seats");
        assert_eq!((idle[0].unassigned, idle[0].monthly_cost), (3, Some(60.0)));
    }

    #[test]
    fn a_disabled_plan_is_no_overlap_and_a_group_licence_is_left_through_the_group() {
        let mut u = user("both@x", &[E3, KIOSK], Activity::Unknown);
        u.held[0].disabled_plans = vec!["p1".into()]; // E3 without its Exchange plan
        assert!(
            reclaimable(&[u.clone()], &skus(), &rules(), now())
                .0
                .is_empty()
        );
        u.held[0].disabled_plans.clear();
        u.held[1].by_group = Some("Kiosk licensing".into());
        let rows = reclaimable(&[u], &skus(), &rules(), now()).0;
        assert_eq!(rows.len(), 1);
        assert!(
            rows[0].action.contains("from group Kiosk licensing"),
            "{}",
            rows[0].action
        );
    }
}
