//! Scenario files (JSON or TOML): the SKUs, groups, users, audit history and clock a simulated tenant starts from.
//! Also the built-in default scenario (the seeds' story) and the generator for large tenants (`--users N`).

use std::path::Path;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// A whole scenario.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Tenant GUID.
    pub tenant_id: String,
    /// Initial domain (UPN suffix of generated users).
    #[serde(default = "default_domain")]
    pub domain: String,
    /// The simulated "now" at start.
    pub now: DateTime<Utc>,
    /// Usage location the directory gives users without one (group licensing inherits it).
    #[serde(default = "default_location")]
    pub default_usage_location: String,
    /// When set, only this app registration gets tokens.
    #[serde(default)]
    pub app: Option<AppRegistration>,
    /// Seconds-to-days: how long directory audits are kept (Entra P1/P2: 30 days).
    #[serde(default = "default_audit_retention")]
    pub directory_audit_retention_days: i64,
    /// Seed for late blobs, duplicates and record order.
    #[serde(default)]
    pub seed: u64,
    /// Subscriptions.
    pub skus: Vec<SkuSpec>,
    /// Pairs of service plans that cannot be assigned together.
    #[serde(default)]
    pub conflicts: Vec<[String; 2]>,
    /// Licensing groups.
    #[serde(default)]
    pub groups: Vec<GroupSpec>,
    /// Users.
    #[serde(default)]
    pub users: Vec<UserSpec>,
    /// Audit history before `now`.
    #[serde(default)]
    pub audit: Vec<AuditSpec>,
    /// The tenant has Entra ID P1 (needed for `signInActivity`); default: some subscribed SKU includes the
    /// `AAD_PREMIUM` plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub premium: Option<bool>,
    /// Commercial subscriptions (`/directory/subscriptions`); absent = one per SKU state, derived from the SKUs
    /// (an enabled monthly subscription, and one in warning, suspended or locked out for such units).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commerce: Option<Vec<CommerceSpec>>,
    /// How this tenant's Microsoft behaves where tenants are reported to differ.
    #[serde(default)]
    pub behaviour: Behaviour,
    /// When the Management Activity API subscriptions (every content type) were started, for a tenant already
    /// watched; `None`: none is started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feeds_started_at: Option<DateTime<Utc>>,
}

/// Behaviour reported of some tenants and not others (MICROSOFT_BEHAVIOUR.md marks it "reported").
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Behaviour {
    /// `groups?$filter=hasMembersWithLicenseErrors eq true` is refused with 400 `Request_UnsupportedQuery`
    /// ("Unsupported or invalid query filter clause", reported in msgraph-sdk-powershell #2967).
    pub refuse_license_error_filter: bool,
    /// The window of the reports-and-audit-logs quota (5 requests per window per app and tenant): Microsoft's is
    /// 10,000 ms. A test may shorten it, and the product's pacer by the same factor, to keep the ratio without
    /// the wait; 0 turns the quota off (the demo's lenient speed).
    pub reports_quota_window_ms: u64,
    /// The application permissions the app registration holds with admin consent (Graph's names: `User.Read.All`,
    /// `Mail.Send`...), carried in each token's `roles`; a call without the one it needs gets 403
    /// `Authorization_RequestDenied`. `None`: every permission licensewatch documents.
    pub granted_permissions: Option<Vec<String>>,
    /// The mailboxes an Exchange application access policy lets the app send as; sendMail as any other gets 403
    /// `ErrorAccessDenied`. `None`: no policy (the app may send as any mailbox).
    pub mail_senders: Option<Vec<String>>,
    /// Seconds (on the simulated clock) group-based licensing takes to process a `reprocessLicenseAssignment`:
    /// until then the user's states are unchanged and the user's groups are `QueuedForProcessing`. 0 processes at
    /// once (lenient).
    pub group_processing_seconds: u64,
    /// The window of the identity-and-access resource-unit budget (3,500 / 5,000 / 8,000 units per window for tenants
    /// of < 50 / 50-500 / > 500 users): Microsoft's is 10,000 ms; 0 turns it off.
    pub identity_quota_window_ms: u64,
    /// The window of the Management Activity API's quota (2,000 requests per window per tenant, answered 403
    /// `AF429` past it): Microsoft's is 60,000 ms; 0 turns it off.
    pub management_quota_window_ms: u64,
    /// How long (simulated clock) a user change takes to reach the notification URL: each change is delivered
    /// after between half and twice this, and one in twenty after up to `notification_delay_max_seconds`
    /// (Microsoft: under 2 minutes on average for users, up to 15). 0 delivers at the next tick (lenient).
    pub notification_delay_seconds: u64,
    /// The longest delivery delay (Microsoft: 15 minutes).
    pub notification_delay_max_seconds: u64,
    /// Minutes (simulated clock) after a Management Activity API subscription starts before its first content is
    /// published: content of that time is published then (Microsoft: "up to 12 hours"; this default is the 12).
    pub management_first_content_minutes: u64,
    /// Seconds (simulated clock) a Purview audit log query takes to succeed (`running` from a quarter of it).
    pub audit_query_seconds: u64,
    /// The Purview audit log query API is not served (national clouds): 404.
    pub audit_query_unavailable: bool,
    /// For this long after a change (simulated clock) a read of that user by id still shows it as it was
    /// (replication: "a read right after a notification may not show the change yet"). Microsoft gives no figure;
    /// 0 (the default) reads every change at once, and a test of a reader's tolerance sets one.
    pub read_lag_seconds: u64,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            refuse_license_error_filter: false,
            reports_quota_window_ms: 10_000,
            granted_permissions: None,
            mail_senders: None,
            group_processing_seconds: 120,
            identity_quota_window_ms: 10_000,
            management_quota_window_ms: 60_000,
            notification_delay_seconds: 60,
            notification_delay_max_seconds: 900,
            management_first_content_minutes: 720,
            audit_query_seconds: 600,
            audit_query_unavailable: false,
            read_lag_seconds: 0,
        }
    }
}

fn default_domain() -> String {
    "contoso.onmicrosoft.com".into()
}
fn default_location() -> String {
    "US".into()
}
fn default_audit_retention() -> i64 {
    30
}

/// An app registration that the token endpoint accepts.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppRegistration {
    /// Application id.
    pub client_id: String,
    /// Accepted client secret (certificate assertions are accepted for this client id too).
    pub client_secret: String,
    /// Display name used in audit records for this app's changes.
    #[serde(default = "default_app_name")]
    pub display_name: String,
    /// Certificates registered on the app (PEM): a client assertion must be signed by one of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<String>,
}

fn default_app_name() -> String {
    "licensewatch".into()
}

/// A subscription.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SkuSpec {
    /// SKU GUID.
    pub sku_id: String,
    /// Part number (String_Id).
    pub sku_part_number: String,
    /// Active seats.
    pub enabled: i64,
    /// Seats in warning.
    #[serde(default)]
    pub warning: i64,
    /// Seats suspended.
    #[serde(default)]
    pub suspended: i64,
    /// Seats locked out.
    #[serde(default)]
    pub locked_out: i64,
    /// Plans.
    pub service_plans: Vec<PlanSpec>,
    /// Users waiting for a seat (the beta `cloudLicensing` waiting room of the SKU's allotment).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waiting_members: Vec<WaitingSpec>,
}

/// A member of an allotment's waiting room (`cloudLicensing.waitingMember`: an opaque id, and since when).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitingSpec {
    /// Opaque id.
    pub id: String,
    /// `waitingSinceDateTime`.
    pub since: DateTime<Utc>,
}

/// A service plan inside a SKU.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanSpec {
    /// Plan GUID.
    pub id: String,
    /// Plan name.
    pub name: String,
    /// Graph's `service` (e.g. `exchange`, `SharePoint`, `TeamspaceAPI`).
    pub service: String,
}

/// A licence (SKU plus disabled plans).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LicenseSpec {
    /// SKU GUID.
    pub sku_id: String,
    /// Disabled plan GUIDs.
    #[serde(default)]
    pub disabled_plans: Vec<String>,
}

impl LicenseSpec {
    /// Licences for these SKUs with no plan disabled.
    pub fn plain(sku_ids: &[String]) -> Vec<LicenseSpec> {
        sku_ids
            .iter()
            .map(|s| LicenseSpec {
                sku_id: s.clone(),
                disabled_plans: vec![],
            })
            .collect()
    }
}

/// A licensing group.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSpec {
    /// Group id.
    pub id: String,
    /// Display name.
    pub display_name: String,
    /// Licences assigned to members.
    #[serde(default)]
    pub licenses: Vec<LicenseSpec>,
}

/// A user.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct UserSpec {
    /// Object id.
    pub id: String,
    /// UPN.
    pub upn: String,
    /// Display name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Primary SMTP (also gives an `SMTP:` proxy address unless `proxy_addresses` is set).
    #[serde(default)]
    pub mail: Option<String>,
    /// Proxy addresses.
    #[serde(default)]
    pub proxy_addresses: Option<Vec<String>>,
    /// Sign-in allowed.
    #[serde(default = "yes")]
    pub account_enabled: bool,
    /// Member or Guest.
    #[serde(default = "member")]
    pub user_type: String,
    /// Usage location.
    #[serde(default)]
    pub usage_location: Option<String>,
    /// Creation time.
    pub created: DateTime<Utc>,
    /// Synced from on-premises AD (hybrid).
    #[serde(default)]
    pub on_premises_sync: Option<bool>,
    /// Direct licences.
    #[serde(default)]
    pub licenses: Vec<LicenseSpec>,
    /// Group memberships.
    #[serde(default)]
    pub groups: Vec<String>,
    /// The last successful sign-in (`signInActivity`), and the mailbox's last activity day in the usage reports;
    /// none = never signed in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sign_in: Option<DateTime<Utc>>,
    /// The mailbox's `userPurpose` (`mailboxSettings`): `user` (the default for a mailbox), `shared`, `room`,
    /// `equipment`, `linked`, `others`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mailbox_purpose: Option<String>,
    /// The mailbox's size in the usage reports (`Storage Used (Byte)`); none = 50 MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mailbox_storage_bytes: Option<u64>,
    /// The mailbox has an online archive (`Has Archive`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mailbox_has_archive: bool,
}

fn yes() -> bool {
    true
}
fn member() -> String {
    "Member".into()
}

/// A commercial subscription, as `GET /directory/subscriptions` shows it (companySubscription).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CommerceSpec {
    /// Subscription id.
    pub id: String,
    /// The SKU it adds seats to.
    pub sku_id: String,
    /// `Enabled`, `Warning` (expired, in its grace period), `Suspended`, `LockedOut` or `Deleted`.
    pub status: String,
    /// Seats it brings.
    pub total_licenses: i64,
    /// When it moves to its next state unless renewed: the end of its term for an enabled one.
    pub next_lifecycle: DateTime<Utc>,
    /// A free trial.
    #[serde(default)]
    pub is_trial: bool,
    /// Created.
    #[serde(default)]
    pub created: Option<DateTime<Utc>>,
}

/// A historical audit event (the state already reflects it).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSpec {
    /// When it happened.
    pub at: DateTime<Utc>,
    /// assign | remove | failed_assignment
    pub kind: AuditKind,
    /// User id or UPN.
    pub user: String,
    /// SKUs involved.
    pub sku_ids: Vec<String>,
    /// Who did it (UPN); absent = the group-based licensing service.
    #[serde(default)]
    pub actor: Option<String>,
    /// Failure reason (failed_assignment).
    #[serde(default)]
    pub reason: Option<String>,
}

/// Kinds of historical audit events.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AuditKind {
    /// Licences added.
    Assign,
    /// Licences removed.
    Remove,
    /// An assignment that failed (nothing changed).
    FailedAssignment,
}

/// Errors loading a scenario.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// Unreadable file.
    #[error("cannot read scenario '{path}': {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// Bad content (names the field).
    #[error("scenario '{path}' is invalid: {message}")]
    Invalid { path: String, message: String },
}

impl Scenario {
    /// Loads a `.json` or `.toml` scenario.
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Io {
            path: p.clone(),
            source,
        })?;
        let parsed: Result<Scenario, String> = if path.extension().is_some_and(|e| e == "toml") {
            toml::from_str(&text).map_err(|e| e.to_string())
        } else {
            serde_json::from_str(&text).map_err(|e| e.to_string())
        };
        parsed.map_err(|message| ScenarioError::Invalid { path: p, message })
    }

    /// The built-in scenario telling the seeds' story.
    pub fn default_story() -> Self {
        serde_json::from_str(include_str!("../scenarios/default.json")).unwrap_or_else(|e| {
            // The file is part of the crate and covered by tests; this cannot fail in a released build.
            unreachable!("built-in scenario is invalid: {e}")
        })
    }

    /// A generated tenant of `n` users (fast: 100,000 in well under a second), with a realistic mix: most users
    /// licensed with E3, some unlicensed mailboxes, some disabled, some guests.
    pub fn generated(n: usize, tenant_id: &str, now: DateTime<Utc>) -> Self {
        Self::generated_in(n, tenant_id, &Self::default_story().domain, now)
    }

    /// A managed-service provider's fleet: `tenants` generated tenants of `users` users each, with their own
    /// GUIDs (`00000001-5eed-4000-8000-000000000001`, ...) and domains (`customer001.onmicrosoft.com`, ...).
    pub fn fleet(tenants: usize, users: usize, now: DateTime<Utc>) -> Vec<Self> {
        (1..=tenants)
            .map(|i| {
                let id = format!("{i:08x}-5eed-4000-8000-{i:012x}");
                let mut s =
                    Self::generated_in(users, &id, &format!("customer{i:03}.onmicrosoft.com"), now);
                s.seed = i as u64;
                s.audit = recent_assignments(&s, now);
                s
            })
            .collect()
    }

    /// A generated tenant of `n` users under `domain`.
    pub(crate) fn generated_in(
        n: usize,
        tenant_id: &str,
        domain: &str,
        now: DateTime<Utc>,
    ) -> Self {
        let mut s = Self::default_story();
        s.tenant_id = tenant_id.to_string();
        s.domain = domain.to_string();
        s.now = now;
        s.users.clear();
        s.audit.clear();
        s.groups.clear();
        let e3 = "6fd2c87f-b296-42f0-b197-1e91e994b900".to_string();
        for sku in &mut s.skus {
            if sku.sku_id == e3 {
                sku.enabled = n as i64;
            }
        }
        s.users.reserve(n);
        for i in 0..n {
            let upn = format!("user{i:06}@{}", s.domain);
            let mut u = UserSpec {
                id: format!("{:08x}-0000-4000-8000-{:012x}", i, i),
                upn: upn.clone(),
                display_name: Some(format!("User {i}")),
                mail: Some(upn),
                account_enabled: true,
                user_type: "Member".into(),
                usage_location: Some("US".into()),
                created: now - Duration::days(400 + (i % 365) as i64),
                ..Default::default()
            };
            match i % 50 {
                0 => u.created = now - Duration::days((i % 29) as i64 + 1),
                1 => u.account_enabled = false,
                2 => {
                    u.user_type = "Guest".into();
                    u.upn = format!("guest{i}_fabrikam.com#EXT#@{}", s.domain);
                }
                _ => u.licenses.push(LicenseSpec {
                    sku_id: e3.clone(),
                    disabled_plans: vec![],
                }),
            }
            // Most sign in daily; one in 25 stopped half a year ago; one in 40 never signed in.
            u.last_sign_in = match (i % 25, i % 40) {
                (_, 7) => None,
                (3, _) => Some(now - Duration::days(200)),
                _ => Some(now - Duration::hours((i % 72) as i64 + 1)),
            };
            s.users.push(u);
        }
        s
    }
}

/// A customer's last week of licence work: one in ten licensed users got its licences within it (an administrator
/// or the group-licensing service assigned what the user holds), so every tenant of a fleet has audit records of its
/// own to archive.
fn recent_assignments(s: &Scenario, now: DateTime<Utc>) -> Vec<AuditSpec> {
    s.users
        .iter()
        .enumerate()
        .filter(|(i, u)| i % 10 == 5 && !u.licenses.is_empty())
        .map(|(i, u)| AuditSpec {
            at: now - Duration::hours((i % 150) as i64 + 1),
            kind: AuditKind::Assign,
            user: u.id.clone(),
            sku_ids: u.licenses.iter().map(|l| l.sku_id.clone()).collect(),
            actor: (i % 20 == 5).then(|| format!("admin@{}", s.domain)),
            reason: None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_story_round_trips_through_a_toml_file() {
        let s = Scenario::default_story();
        let dir = std::env::temp_dir().join(format!("lw-sim-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("story.toml");
        std::fs::write(&path, toml::to_string(&s).expect("toml")).expect("write");
        let back = Scenario::load(&path).expect("loads");
        assert_eq!(back.users.len(), s.users.len());
        assert_eq!(back.skus.len(), s.skus.len());
        assert_eq!(back.now, s.now);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn unknown_scenario_field_is_named() {
        let dir = std::env::temp_dir().join(format!("lw-sim-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("bad.json");
        std::fs::write(
            &path,
            r#"{"tenant_id":"x","now":"2026-11-21T00:00:00Z","skus":[],"userz":[]}"#,
        )
        .expect("write");
        let err = Scenario::load(&path).expect_err("invalid").to_string();
        assert!(err.contains("userz"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn generated_tenant_has_the_requested_size_and_mix() {
        let now = Scenario::default_story().now;
        let s = Scenario::generated(1000, "0d7a3c4e-1111-4222-8333-944455556666", now);
        assert_eq!(s.users.len(), 1000);
        assert!(s.users.iter().any(|u| u.user_type == "Guest"));
        assert!(s.users.iter().any(|u| !u.account_enabled));
        assert!(
            s.users
                .iter()
                .any(|u| u.licenses.is_empty() && u.user_type == "Member")
        );
    }
}
