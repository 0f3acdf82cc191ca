//! The policy file (TOML, `LICENSEWATCH_CONFIG`, default `./licensewatch.toml`): tenant behaviour, check thresholds,
//! notification audiences and channels, remediation limits and webhook secrets. Every key is optional; unknown keys
//! are errors that name the key, and all problems are reported together.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, Problems};
use crate::time_zone::TimeZone;

mod ticketing;
pub use ticketing::{
    FieldMap, SignatureScheme, TicketChannel, TicketRoute, TicketSystemKind, WebhookSource,
};

/// The whole policy file. (`Serialize` lets a test list every key the file can hold.)
#[derive(Debug, Clone, Deserialize, Serialize, Default, PartialEq)]
#[serde(default)]
pub struct Policy {
    /// `[tenant]`: the single tenant (when `[[tenants]]` is absent).
    pub tenant: TenantPolicy,
    /// `[[tenants]]`: several tenants (managed-service providers).
    pub tenants: Vec<TenantEntry>,
    /// `[check]`
    pub check: CheckPolicy,
    /// `[grace]`: grace periods in days (defaults from Microsoft's documents).
    pub grace: GracePolicy,
    /// `[notify]`
    pub notify: NotifyPolicy,
    /// `[audit]`
    pub audit: AuditPolicy,
    /// `[remediation]`
    pub remediation: RemediationPolicy,
    /// `[webhook]`
    pub webhook: WebhookPolicy,
    /// `[reclaim]`
    pub reclaim: ReclaimPolicy,
    /// `[prices]`: monthly prices per SKU, for the reclamation report (no price list is built in).
    pub prices: PricePolicy,
    /// `[[suppressions]]`: findings not to alert or notify about, for a while and for a reason.
    pub suppressions: Vec<SuppressionEntry>,
    /// The policy of each `[[tenants]]` entry that overrides sections (lower-case id → that tenant's policy), and
    /// the global one under `""` when there are any.
    #[serde(skip)]
    pub tenant_policies: std::collections::BTreeMap<String, Policy>,
}

/// The sections a `[[tenants]]` entry may override, key by key.
const OVERRIDABLE: [&str; 8] = [
    "check",
    "grace",
    "notify",
    "audit",
    "remediation",
    "reclaim",
    "prices",
    "suppressions",
];

/// One `[[suppressions]]` entry: the findings of `kind` and/or about `sku` (in `tenant`, or every tenant) are
/// still reported, marked suppressed, but raise no alert and no notice until `until`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(default)]
pub struct SuppressionEntry {
    /// Tenant GUID or domain; empty = every tenant.
    pub tenant: String,
    /// SKU part number or id; empty = any SKU.
    pub sku: String,
    /// A finding kind (`sku_capacity`, `unlicensed_mailbox`...); empty = any kind.
    pub kind: String,
    /// Last day (`2027-01-31`, through the end of that day UTC) or an RFC 3339 time.
    pub until: String,
    /// Why (shown in reports).
    pub reason: String,
}

impl SuppressionEntry {
    /// The end of the suppression.
    pub fn until_time(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        let raw = self.until.trim();
        chrono::DateTime::parse_from_rfc3339(raw)
            .map(|d| d.to_utc())
            .ok()
            .or_else(|| {
                chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d")
                    .ok()
                    .and_then(|d| d.and_hms_opt(23, 59, 59))
                    .map(|d| d.and_utc())
            })
    }
}

/// `[reclaim]`
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct ReclaimPolicy {
    /// A licence whose holder has not signed in for this many days is worth reclaiming.
    pub inactive_days: u32,
}

impl Default for ReclaimPolicy {
    fn default() -> Self {
        Self { inactive_days: 90 }
    }
}

/// `[prices]`: `currency = "EUR"` and `[prices.monthly]` with one price per SKU, keyed by part number
/// (`SPE_E3 = 33.75`) or SKU id.
#[derive(Debug, Clone, Deserialize, Serialize, Default, PartialEq)]
#[serde(default)]
pub struct PricePolicy {
    /// Currency label shown with the amounts.
    pub currency: String,
    /// SKU part number or id → price per seat per month.
    pub monthly: std::collections::BTreeMap<String, f64>,
}

/// `[tenant]`
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct TenantPolicy {
    /// Exchange Online Delayed Delicensing is enabled for this tenant.
    pub delayed_delicensing: bool,
    /// IANA time zone used when dates are shown to people.
    pub time_zone: String,
}

impl Default for TenantPolicy {
    fn default() -> Self {
        Self {
            delayed_delicensing: false,
            time_zone: "UTC".into(),
        }
    }
}

impl Policy {
    /// The policy of one tenant: its `[[tenants]]` entry's sections merged key by key over the global ones (the
    /// global policy for a tenant without overrides).
    pub fn for_tenant(&self, tenant_id: &str) -> Policy {
        let own = self.tenant_policies.get(&tenant_id.to_ascii_lowercase());
        match own.or_else(|| self.tenant_policies.get("")) {
            Some(p) => {
                let mut p = p.clone();
                p.tenant_policies = self.tenant_policies.clone();
                p
            }
            None => self.clone(),
        }
    }

    /// The monthly price of a SKU (by part number or id, without regard to case), when `[prices.monthly]` has one.
    pub fn price_of(&self, sku: &str) -> Option<f64> {
        self.prices
            .monthly
            .iter()
            .find(|(k, _)| k.trim().eq_ignore_ascii_case(sku))
            .map(|(_, v)| *v)
    }

    /// The time zone dates are shown in for a tenant: its `[[tenants]]` entry's `time_zone` when set, else
    /// `[tenant].time_zone`. Both are validated when a policy file is read; a policy built in code with a wrong
    /// name gets the same error, naming the key, instead of silently showing UTC.
    pub fn time_zone_for(&self, tenant_id: &str) -> Result<TimeZone, ConfigError> {
        let (key, name) = match self
            .tenants
            .iter()
            .position(|t| t.id.eq_ignore_ascii_case(tenant_id) && !t.time_zone.is_empty())
        {
            Some(i) => (
                format!("tenants[{i}].time_zone"),
                self.tenants[i].time_zone.as_str(),
            ),
            None => (
                "tenant.time_zone".to_string(),
                self.tenant.time_zone.as_str(),
            ),
        };
        parse_tz(name).map_err(|problem| ConfigError::single(key, problem))
    }
}

/// `arn:aws[-cn|-us-gov]:secretsmanager:REGION:ACCOUNT:secret:NAME`.
fn is_secret_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(7, ':').collect();
    matches!(parts.as_slice(), ["arn", partition, "secretsmanager", region, account, "secret", name]
        if partition.starts_with("aws") && !region.is_empty()
            && account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()) && !name.is_empty())
}

/// One entry of `[[tenants]]`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(default)]
pub struct TenantEntry {
    /// Tenant GUID or domain.
    pub id: String,
    /// A Secrets Manager secret of this tenant's own (an app registration in the customer's tenant, or this tenant's
    /// copy of the multi-tenant app's secret): the same JSON names as `LICENSEWATCH_SECRET_ARN`'s. Empty: the
    /// deployment's credential, with a token from this tenant's endpoint.
    pub secret_arn: String,
    /// The app registration's client id in this tenant, when it is not the deployment's (or the secret's).
    pub client_id: String,
    /// As `tenant.delayed_delicensing`.
    pub delayed_delicensing: bool,
    /// As `tenant.time_zone`; empty means UTC.
    pub time_zone: String,
    /// `[tenants.check]`: this tenant's keys of `[check]` (the others as in `[check]`).
    pub check: Option<toml::Value>,
    /// `[tenants.grace]`.
    pub grace: Option<toml::Value>,
    /// `[tenants.notify]` (its own admins, sender, thresholds, webhooks).
    pub notify: Option<toml::Value>,
    /// `[tenants.audit]`.
    pub audit: Option<toml::Value>,
    /// `[tenants.remediation]` (its own rails).
    pub remediation: Option<toml::Value>,
    /// `[tenants.reclaim]`.
    pub reclaim: Option<toml::Value>,
    /// `[tenants.prices]`.
    pub prices: Option<toml::Value>,
    /// `[[tenants.suppressions]]`: added to the global ones for this tenant.
    pub suppressions: Option<toml::Value>,
}

/// `[check]`
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct CheckPolicy {
    /// A run that sees at least this many removals raises `mass_delicensing` ...
    pub mass_delicensing_min_users: u32,
    /// ... or this share (percent) of licensed users.
    pub mass_delicensing_percent: f64,
    /// Removals seen by runs within this many minutes of each other add up (targeted re-checks after change
    /// notifications see a bulk removal in parts); 0 judges each run alone.
    pub mass_delicensing_window_minutes: u32,
    /// Warn when a SKU has this many seats or fewer left.
    pub sku_low_seats: i64,
    /// Days before a subscription's next lifecycle date to warn of a trial ending, or of unassigned seats about to
    /// renew.
    pub renewal_notice_days: u32,
    /// Hours between full reads of every user; the runs between read only what changed (`/users/delta`). 0 reads
    /// every user on every run.
    pub full_scan_hours: u32,
    /// Warn when a SKU's free seats run out sooner than this many days at the recent rate of assignments.
    pub forecast_horizon_days: u32,
    /// How many days of history the rate is measured over.
    pub forecast_window_days: u32,
    /// Read who waits for a seat from Graph's beta `cloudLicensing` API (`CloudLicensing.Read.All`; global cloud
    /// only; off by default, as beta APIs change without notice).
    pub cloud_licensing: bool,
}

impl Default for CheckPolicy {
    fn default() -> Self {
        Self {
            mass_delicensing_min_users: 50,
            mass_delicensing_percent: 5.0,
            mass_delicensing_window_minutes: 60,
            sku_low_seats: 5,
            renewal_notice_days: 30,
            full_scan_hours: 24,
            forecast_horizon_days: 14,
            forecast_window_days: 30,
            cloud_licensing: false,
        }
    }
}

/// `[grace]`: every period is configurable; defaults follow Microsoft's published behaviour.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct GracePolicy {
    /// Days a never-licensed mailbox keeps working.
    pub never_licensed_days: i64,
    /// Days data is kept after access ends for a never-licensed mailbox.
    pub never_licensed_retention_days: i64,
    /// Days data is kept after a licence is removed (Delayed Delicensing off).
    pub removed_retention_days: i64,
    /// Days access continues after a removal with Delayed Delicensing on.
    pub delayed_access_days: i64,
    /// Days from removal to data deletion with Delayed Delicensing on.
    pub delayed_retention_days: i64,
}

impl Default for GracePolicy {
    fn default() -> Self {
        Self {
            never_licensed_days: 30,
            never_licensed_retention_days: 30,
            removed_retention_days: 30,
            delayed_access_days: 30,
            delayed_retention_days: 60,
        }
    }
}

/// `[notify]`
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct NotifyPolicy {
    /// Admin mail addresses (digest and alerts).
    pub admins: Vec<String>,
    /// Mailbox that sends through Graph `sendMail`.
    pub sender: String,
    /// Whether users get their own notice.
    pub notify_users: bool,
    /// Days-left thresholds for admin notices.
    pub admin_thresholds_days: Vec<i64>,
    /// Days-left thresholds for user notices.
    pub user_thresholds_days: Vec<i64>,
    /// `[[notify.webhooks]]`
    pub webhooks: Vec<WebhookChannel>,
    /// `[[notify.tickets]]`: a ticket per case in a service desk.
    pub tickets: Vec<TicketChannel>,
}

impl Default for NotifyPolicy {
    fn default() -> Self {
        Self {
            admins: vec![],
            sender: String::new(),
            notify_users: true,
            admin_thresholds_days: vec![21, 14, 7, 3, 1, 0],
            user_thresholds_days: vec![12, 7, 2],
            webhooks: vec![],
            tickets: vec![],
        }
    }
}

/// The kind of an outgoing webhook channel.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum WebhookKind {
    /// JSON body signed per Standard Webhooks.
    #[default]
    Generic,
    /// Microsoft Teams Workflows incoming webhook (Adaptive Card).
    Teams,
    /// Slack incoming webhook.
    Slack,
}

/// One `[[notify.webhooks]]` entry.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(default)]
pub struct WebhookChannel {
    /// generic | teams | slack
    pub kind: WebhookKind,
    /// Destination URL.
    pub url: String,
    /// Environment variable holding a `whsec_` secret (generic only).
    pub secret_env: String,
}

/// `[audit]`
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct AuditPolicy {
    /// First run: how far back to read directory audits (days).
    pub first_run_days: i64,
    /// Each run re-lists this many hours of Management API content (late blobs).
    pub relist_hours: i64,
    /// Management Activity API content types.
    pub content_types: Vec<String>,
    /// `PublisherIdentifier` (your own tenant GUID); defaults to the monitored tenant.
    pub publisher_id: String,
    /// Parallel blob downloads.
    pub max_parallel_blobs: usize,
    /// Days of history read once from the Purview audit log (at most 180), for what the other sources no longer
    /// hold on the first day; 0 turns the backfill off.
    pub backfill_days: i64,
}

impl Default for AuditPolicy {
    fn default() -> Self {
        Self {
            first_run_days: 30,
            relist_hours: 24,
            content_types: vec!["Audit.AzureActiveDirectory".into()],
            publisher_id: String::new(),
            max_parallel_blobs: 8,
            backfill_days: 180,
        }
    }
}

/// `[remediation]`
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct RemediationPolicy {
    /// Let license-check queue reprocess requests by itself.
    pub auto_reprocess: bool,
    /// Allow the `remove` action.
    pub allow_remove: bool,
    /// SKUs that may be assigned (GUIDs or part numbers); empty = any SKU the tenant owns.
    pub sku_allow_list: Vec<String>,
    /// Blast-radius budget per tenant.
    pub max_actions_per_hour: u32,
    /// Hours a reprocess may stay `pending` (Microsoft processes group licences asynchronously) before a
    /// license-check run that still sees the user in error marks it `failed`.
    pub verify_within_hours: u32,
}

impl Default for RemediationPolicy {
    fn default() -> Self {
        Self {
            auto_reprocess: false,
            allow_remove: false,
            sku_allow_list: vec![],
            max_actions_per_hour: 50,
            verify_within_hours: 24,
        }
    }
}

/// `[webhook]`: the reprocess-user endpoint.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct WebhookPolicy {
    /// Environment variables holding `whsec_` secrets; several = rotation.
    pub secrets_env: Vec<String>,
    /// Optional environment variable for the `X-Hub-Signature-256` scheme.
    pub github_style_secret_env: String,
    /// Allowed clock difference for `webhook-timestamp`.
    pub tolerance_seconds: i64,
    /// `[[webhook.sources]]`: ticketing systems posting their own bodies, signed their own way, at
    /// `/webhooks/{name}`.
    pub sources: Vec<WebhookSource>,
}

impl Default for WebhookPolicy {
    fn default() -> Self {
        Self {
            secrets_env: vec![],
            github_style_secret_env: String::new(),
            tolerance_seconds: 300,
            sources: vec![],
        }
    }
}

impl Policy {
    /// Loads the policy from `path`. A missing file gives the defaults unless `required` (explicitly configured).
    pub fn load(path: &Path, required: bool) -> Result<Self, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => Ok(Self::default()),
            Err(e) => Err(ConfigError::single(
                crate::config::vars::CONFIG,
                format!("cannot read '{}': {e}", path.display()),
            )),
        }
    }

    /// Parses and validates policy text.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let value: toml::Value = toml::from_str(text).map_err(|e| {
            let (key, line) = e
                .span()
                .map(|span| key_at(text, span.start))
                .unwrap_or_else(|| ("policy file".to_string(), 0));
            let place = if line > 0 {
                format!(" (line {line})")
            } else {
                String::new()
            };
            ConfigError::single(key, format!("not valid TOML{place}: {}", e.message()))
        })?;
        let mut unknown = Vec::new();
        let parsed: Result<Policy, _> =
            serde_ignored::deserialize(value.clone(), |path| unknown.push(path.to_string()));
        let mut problems = Problems::default();
        for key in unknown {
            problems.add(key, "unknown key");
        }
        let policy = match parsed {
            Ok(p) => p,
            Err(e) => {
                let (key, problem) = keyed_problem(&e.to_string());
                problems.add(key, problem);
                return Err(ConfigError {
                    problems: problems.0,
                });
            }
        };
        policy.validate(&mut problems);
        let mut policy = policy;
        let mut tenants = tenant_policies(&value, &mut problems);
        if !tenants.is_empty() {
            // The global policy, for the tenants without overrides (asked of a tenant's own policy).
            tenants.insert(String::new(), policy.clone());
        }
        policy.tenant_policies = tenants;
        if problems.0.is_empty() {
            Ok(policy)
        } else {
            Err(ConfigError {
                problems: problems.0,
            })
        }
    }

    /// Every key's value in range; each problem named by its key.
    fn validate(&self, p: &mut Problems) {
        check_tz(p, "tenant.time_zone", &self.tenant.time_zone);
        self.validate_suppressions(p);
        self.validate_reclaim_and_prices(p);
        self.validate_tenants(p);
        self.validate_check_and_grace(p);
        self.validate_notify(p);
        self.check_closed_sets(p);
        self.validate_audit_and_remediation(p);
    }

    fn validate_suppressions(&self, p: &mut Problems) {
        for (i, e) in self.suppressions.iter().enumerate() {
            let key = |k: &str| format!("suppressions[{i}].{k}");
            if e.sku.trim().is_empty() && e.kind.trim().is_empty() {
                p.add(key("sku"), "say what to suppress: a sku, a kind, or both");
            }
            if !e.tenant.trim().is_empty() && !crate::config::is_valid_tenant(e.tenant.trim()) {
                p.add(
                    key("tenant"),
                    format!("'{}' is not a tenant GUID or domain", e.tenant),
                );
            }
            if e.reason.trim().is_empty() {
                p.add(
                    key("reason"),
                    "is required: the report shows why a finding is suppressed",
                );
            }
            if e.until_time().is_none() {
                p.add(
                    key("until"),
                    format!(
                        "'{}' is not a date (2027-01-31) or an RFC 3339 time",
                        e.until
                    ),
                );
            }
        }
    }

    fn validate_reclaim_and_prices(&self, p: &mut Problems) {
        if !(1..=3650).contains(&self.reclaim.inactive_days) {
            p.add("reclaim.inactive_days", "must be between 1 and 3650 days");
        }
        for (sku, price) in &self.prices.monthly {
            if !price.is_finite() || *price < 0.0 {
                p.add(
                    format!("prices.monthly.{sku}"),
                    format!("{price} is not a price (a number, 0 or more)"),
                );
            }
            if sku.trim().is_empty() {
                p.add("prices.monthly", "a SKU key is empty");
            }
        }
        if !self.prices.monthly.is_empty() && self.prices.currency.trim().is_empty() {
            p.add(
                "prices.currency",
                "is empty: name the currency of [prices.monthly]",
            );
        }
    }

    fn validate_tenants(&self, p: &mut Problems) {
        for (i, t) in self.tenants.iter().enumerate() {
            if !crate::config::is_valid_tenant(&t.id) {
                p.add(
                    format!("tenants[{i}].id"),
                    format!("'{}' is not a tenant GUID or domain", t.id),
                );
            }
            if !t.time_zone.is_empty() {
                check_tz(p, &format!("tenants[{i}].time_zone"), &t.time_zone);
            }
            if !t.secret_arn.is_empty() && !is_secret_arn(&t.secret_arn) {
                p.add(
                    format!("tenants[{i}].secret_arn"),
                    format!(
                        "'{}' is not a Secrets Manager ARN (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME)",
                        t.secret_arn
                    ),
                );
            }
            if !t.client_id.is_empty() && uuid::Uuid::parse_str(&t.client_id).is_err() {
                p.add(
                    format!("tenants[{i}].client_id"),
                    format!("'{}' is not an application (client) id GUID", t.client_id),
                );
            }
        }
    }

    fn validate_check_and_grace(&self, p: &mut Problems) {
        if !(0.0..=100.0).contains(&self.check.mass_delicensing_percent) {
            p.add(
                "check.mass_delicensing_percent",
                "must be between 0 and 100",
            );
        }
        if self.check.sku_low_seats < 0 {
            p.add("check.sku_low_seats", "must not be negative");
        }
        if !(1..=365).contains(&self.check.forecast_horizon_days) {
            p.add(
                "check.forecast_horizon_days",
                "must be between 1 and 365 days",
            );
        }
        if !(7..=180).contains(&self.check.forecast_window_days) {
            p.add(
                "check.forecast_window_days",
                "must be between 7 and 180 days (the rate needs a week of history)",
            );
        }
        let g = &self.grace;
        for (k, v) in [
            ("grace.never_licensed_days", g.never_licensed_days),
            (
                "grace.never_licensed_retention_days",
                g.never_licensed_retention_days,
            ),
            ("grace.removed_retention_days", g.removed_retention_days),
            ("grace.delayed_access_days", g.delayed_access_days),
            ("grace.delayed_retention_days", g.delayed_retention_days),
        ] {
            if !(0..=3650).contains(&v) {
                p.add(k, "must be between 0 and 3650 days");
            }
        }
    }

    fn validate_notify(&self, p: &mut Problems) {
        for (i, a) in self.notify.admins.iter().enumerate() {
            if !looks_like_mail(a) {
                p.add(
                    format!("notify.admins[{i}]"),
                    format!("'{a}' is not a mail address"),
                );
            }
        }
        if !self.notify.sender.is_empty() && !looks_like_mail(&self.notify.sender) {
            p.add(
                "notify.sender",
                format!("'{}' is not a mail address", self.notify.sender),
            );
        }
        for (k, list) in [
            (
                "notify.admin_thresholds_days",
                &self.notify.admin_thresholds_days,
            ),
            (
                "notify.user_thresholds_days",
                &self.notify.user_thresholds_days,
            ),
        ] {
            if list.iter().any(|d| !(0..=365).contains(d)) {
                p.add(k, "thresholds must be between 0 and 365 days");
            }
        }
        for (i, w) in self.notify.webhooks.iter().enumerate() {
            match url::Url::parse(&w.url) {
                Ok(u) if u.scheme() == "https" || u.scheme() == "http" => {}
                _ => p.add(
                    format!("notify.webhooks[{i}].url"),
                    format!("'{}' is not an http(s) URL", w.url),
                ),
            }
            if w.kind == WebhookKind::Generic && w.secret_env.is_empty() {
                p.add(
                    format!("notify.webhooks[{i}].secret_env"),
                    "a generic webhook needs the name of the variable holding its whsec_ secret",
                );
            }
        }
    }

    fn validate_audit_and_remediation(&self, p: &mut Problems) {
        if self.audit.first_run_days < 0 || self.audit.first_run_days > 365 {
            p.add("audit.first_run_days", "must be between 0 and 365");
        }
        if !(0..=168).contains(&self.audit.relist_hours) {
            p.add(
                "audit.relist_hours",
                "must be between 0 and 168 (the API keeps 7 days)",
            );
        }
        if !(1..=64).contains(&self.audit.max_parallel_blobs) {
            p.add("audit.max_parallel_blobs", "must be between 1 and 64");
        }
        if !(0..=180).contains(&self.audit.backfill_days) {
            p.add(
                "audit.backfill_days",
                "must be between 0 and 180 (the Purview audit log keeps 180 days)",
            );
        }
        if !self.audit.publisher_id.is_empty()
            && uuid::Uuid::parse_str(&self.audit.publisher_id).is_err()
        {
            p.add("audit.publisher_id", "must be a tenant GUID");
        }
        if !(1..=168).contains(&self.remediation.verify_within_hours) {
            p.add(
                "remediation.verify_within_hours",
                "must be between 1 and 168 hours",
            );
        }
        if !(1..=86_400).contains(&self.webhook.tolerance_seconds) {
            p.add("webhook.tolerance_seconds", "must be between 1 and 86400");
        }
        ticketing::validate_sources(&self.webhook.sources, p);
        ticketing::validate_tickets(&self.notify.tickets, p);
    }
}

/// The Management Activity API's content types, the values `[audit] content_types` may hold (anything else is
/// refused by the API with AF20020, long after the policy was written).
pub const CONTENT_TYPES: [&str; 5] = [
    "Audit.AzureActiveDirectory",
    "Audit.Exchange",
    "Audit.SharePoint",
    "Audit.General",
    "DLP.All",
];

/// `'x' is not one of a, b, c`.
fn not_one_of(value: &str, allowed: &[&str]) -> String {
    format!("'{value}' is not one of {}", allowed.join(", "))
}

impl Policy {
    /// The keys whose values come from a closed set (those serde does not already hold to a Rust enum), checked
    /// when the policy loads rather than where the value is first used. (`suppressions[].kind`, a finding kind of
    /// the domain, is checked by `usecases::suppressions::of_policy` when a runtime starts.)
    fn check_closed_sets(&self, p: &mut Problems) {
        for (i, ct) in self.audit.content_types.iter().enumerate() {
            if !CONTENT_TYPES.contains(&ct.as_str()) {
                p.add(
                    format!("audit.content_types[{i}]"),
                    not_one_of(ct, &CONTENT_TYPES),
                );
            }
        }
    }
}

/// Each `[[tenants]]` entry that overrides a section: the global policy with the entry's sections merged over it
/// key by key (suppressions added), read and validated as a policy of its own, problems named under `tenants[i]`.
fn tenant_policies(
    value: &toml::Value,
    problems: &mut Problems,
) -> std::collections::BTreeMap<String, Policy> {
    let mut out = std::collections::BTreeMap::new();
    let entries = value
        .get("tenants")
        .and_then(toml::Value::as_array)
        .cloned()
        .unwrap_or_default();
    for (i, entry) in entries.iter().enumerate() {
        let Some(table) = entry.as_table() else {
            continue;
        };
        if !OVERRIDABLE.iter().any(|k| table.contains_key(*k)) {
            continue;
        }
        let mut merged = value.clone();
        if let Some(root) = merged.as_table_mut() {
            root.remove("tenants");
            for key in OVERRIDABLE {
                let Some(over) = table.get(key) else {
                    continue;
                };
                match (root.get_mut(key), over) {
                    (Some(toml::Value::Array(global)), toml::Value::Array(more)) => {
                        global.extend(more.iter().cloned())
                    }
                    (Some(toml::Value::Table(global)), toml::Value::Table(more)) => {
                        for (k, v) in more {
                            global.insert(k.clone(), v.clone());
                        }
                    }
                    _ => {
                        root.insert(key.to_string(), over.clone());
                    }
                }
            }
        }
        let prefix = format!("tenants[{i}]");
        let mut unknown = Vec::new();
        let parsed: Result<Policy, _> =
            serde_ignored::deserialize(merged, |path| unknown.push(path.to_string()));
        for key in unknown {
            problems.add(format!("{prefix}.{key}"), "unknown key");
        }
        match parsed {
            Ok(p) => {
                let mut own = Problems::default();
                p.validate(&mut own);
                for problem in own.0 {
                    problems.add(format!("{prefix}.{}", problem.name), problem.problem);
                }
                let id = table.get("id").and_then(toml::Value::as_str).unwrap_or("");
                out.insert(id.to_ascii_lowercase(), p);
            }
            Err(e) => {
                let (key, problem) = keyed_problem(&e.to_string());
                let key = if key == WHOLE_FILE {
                    prefix
                } else {
                    format!("{prefix}.{key}")
                };
                problems.add(key, problem)
            }
        }
    }
    out
}

/// The name a problem goes under when no key can be told.
const WHOLE_FILE: &str = "policy file";

/// A deserialisation error's key and message: toml ends its message with "in `check.sku_low_seats`", which becomes
/// the problem's name (an array's index is not in toml's path: `notify.webhooks.kind`).
fn keyed_problem(error: &str) -> (String, String) {
    let text = error.trim_end();
    if let Some((message, tail)) = text.rsplit_once("\nin `")
        && let Some(key) = tail.strip_suffix('`')
        && !key.is_empty()
    {
        return (key.to_string(), message.trim().to_string());
    }
    (WHOLE_FILE.to_string(), text.to_string())
}

/// The key whose value sits at byte `offset` of a TOML text, with its 1-based line: the key before `=` on that
/// line (or the nearest line above with one, for a value spread over lines) under the table header above it, an
/// array of tables numbered as the policy's problems name it (`tenants[1].check.sku_low_seats`). A parse error
/// carries only a position, and an admin needs the key.
fn key_at(text: &str, offset: usize) -> (String, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line_no = before.matches('\n').count() + 1;
    let mut arrays: std::collections::BTreeMap<String, usize> = Default::default();
    let mut table = String::new();
    let mut key = None;
    for line in text.lines().take(line_no) {
        let line = line.trim();
        if let Some(name) = line.strip_prefix("[[").and_then(|l| l.split("]]").next()) {
            let name = name.trim().to_string();
            let n = arrays
                .entry(name.clone())
                .and_modify(|n| *n += 1)
                .or_insert(0);
            table = format!("{name}[{n}]");
            key = None;
        } else if let Some(name) = line.strip_prefix('[').and_then(|l| l.split(']').next()) {
            table = numbered_table(name.trim(), &arrays);
            key = None;
        } else if let Some((k, _)) = line.split_once('=') {
            key = Some(k.trim().trim_matches('"').to_string());
        }
    }
    let path = match (table.is_empty(), key) {
        (_, None) if table.is_empty() => WHOLE_FILE.to_string(),
        (_, None) => table,
        (true, Some(k)) => k,
        (false, Some(k)) => format!("{table}.{k}"),
    };
    (path, line_no)
}

/// `tenants.check` under the second `[[tenants]]` is `tenants[1].check`.
fn numbered_table(name: &str, arrays: &std::collections::BTreeMap<String, usize>) -> String {
    arrays
        .iter()
        .filter(|(array, _)| name.starts_with(&format!("{array}.")))
        .max_by_key(|(array, _)| array.len())
        .map(|(array, n)| format!("{array}[{n}]{}", &name[array.len()..]))
        .unwrap_or_else(|| name.to_string())
}

fn check_tz(p: &mut Problems, key: &str, tz: &str) {
    if let Err(problem) = parse_tz(tz) {
        p.add(key, problem);
    }
}

/// The one place a time-zone name is read.
fn parse_tz(tz: &str) -> Result<TimeZone, String> {
    TimeZone::named(tz)
}

fn looks_like_mail(a: &str) -> bool {
    let Some((local, domain)) = a.split_once('@') else {
        return false;
    };
    !local.is_empty() && domain.contains('.') && !a.chars().any(char::is_whitespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_may_name_its_own_secret_and_app_and_a_wrong_one_is_named() {
        let ok = Policy::parse(
            "[[tenants]]\nid = \"customer002.onmicrosoft.com\"\n\
             secret_arn = \"arn:aws:secretsmanager:eu-west-1:123456789012:secret:licensewatch/tenants/c2-AbCdEf\"\n\
             client_id = \"22222222-3333-4444-5555-666666666666\"\n",
        )
        .expect("valid");
        assert!(ok.tenants[0].secret_arn.ends_with("c2-AbCdEf"));
        let err = Policy::parse(
            "[[tenants]]\nid = \"c.onmicrosoft.com\"\nsecret_arn = \"licensewatch/tenants/c2\"\nclient_id = \"app\"\n",
        )
        .expect_err("not an ARN, not a GUID");
        let names: Vec<&str> = err.problems.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            vec!["tenants[0].secret_arn", "tenants[0].client_id"],
            "{err}"
        );
        assert!(
            Policy::parse("[[tenants]]\nid = \"c.onmicrosoft.com\"\nsecret_arn = \"arn:aws:secretsmanager:eu-west-1:12345:secret:x\"\n").is_err(),
            "a short account id"
        );
    }

    #[test]
    fn empty_file_gives_documented_defaults() {
        let p = Policy::parse("").expect("valid");
        assert_eq!(p, Policy::default());
        assert_eq!(p.notify.admin_thresholds_days, vec![21, 14, 7, 3, 1, 0]);
        assert_eq!(p.notify.user_thresholds_days, vec![12, 7, 2]);
        assert_eq!(p.check.mass_delicensing_min_users, 50);
        assert_eq!(p.webhook.tolerance_seconds, 300);
    }

    #[test]
    fn full_example_parses() {
        let text = r#"
[tenant]
delayed_delicensing = true
time_zone = "Europe/Berlin"
[check]
mass_delicensing_min_users = 10
mass_delicensing_percent = 2.5
sku_low_seats = 3
[notify]
admins = ["it@contoso.com"]
sender = "licensewatch@contoso.com"
notify_users = false
admin_thresholds_days = [7, 1]
user_thresholds_days = [3]
[[notify.webhooks]]
kind = "teams"
url = "https://contoso.webhook.office.com/x"
[[notify.webhooks]]
kind = "generic"
url = "https://hooks.contoso.com/lw"
secret_env = "LW_HOOK_SECRET"
[remediation]
auto_reprocess = true
allow_remove = false
sku_allow_list = ["ENTERPRISEPACK"]
max_actions_per_hour = 10
[webhook]
secrets_env = ["LW_WEBHOOK_NEW", "LW_WEBHOOK_OLD"]
github_style_secret_env = "LW_JIRA"
tolerance_seconds = 120
"#;
        let p = Policy::parse(text).expect("valid");
        assert!(p.tenant.delayed_delicensing);
        assert_eq!(p.notify.webhooks.len(), 2);
        assert_eq!(p.notify.webhooks[0].kind, WebhookKind::Teams);
        assert_eq!(p.webhook.secrets_env.len(), 2);
    }

    #[test]
    fn a_tenant_overrides_sections_key_by_key_and_its_mistakes_are_named() {
        let text = r#"
[notify]
admins = ["msp-noc@example.com"]
sender = "licensewatch@example.com"
[check]
mass_delicensing_min_users = 20

[[tenants]]
id = "11111111-0000-0000-0000-000000000001"

[[tenants]]
id = "Customer2.onmicrosoft.com"
time_zone = "Europe/Berlin"
[tenants.notify]
admins = ["it@customer2.com"]
[tenants.check]
sku_low_seats = 2
[[tenants.suppressions]]
kind = "sku_capacity"
until = "2027-01-31"
reason = "customer buys seats through us"
"#;
        let p = Policy::parse(text).expect("valid");
        let global = p.for_tenant("11111111-0000-0000-0000-000000000001");
        assert_eq!(global.notify.admins, vec!["msp-noc@example.com"]);
        assert_eq!(global.check.sku_low_seats, 5);
        assert!(global.suppressions.is_empty());
        let c2 = p.for_tenant("customer2.onmicrosoft.com");
        assert_eq!(c2.notify.admins, vec!["it@customer2.com"]);
        assert_eq!(
            c2.notify.sender, "licensewatch@example.com",
            "the rest of [notify] stays"
        );
        assert_eq!(c2.check.sku_low_seats, 2);
        assert_eq!(c2.check.mass_delicensing_min_users, 20);
        assert_eq!(c2.suppressions.len(), 1);
        assert_eq!(
            c2.for_tenant("11111111-0000-0000-0000-000000000001")
                .notify
                .admins,
            vec!["msp-noc@example.com"],
            "a tenant's policy still knows the others"
        );
        let err = Policy::parse(
            "[[tenants]]\nid = \"t1\"\n[tenants.notify]\nadmns = []\n[tenants.check]\nmass_delicensing_percent = 200.0\n",
        )
        .unwrap_err();
        let names: Vec<_> = err.problems.iter().map(|p| p.name.clone()).collect();
        assert!(
            names.iter().any(|n| n == "tenants[0].notify.admns"),
            "{names:?}"
        );
        assert!(
            names
                .iter()
                .any(|n| n == "tenants[0].check.mass_delicensing_percent"),
            "{names:?}"
        );
    }

    #[test]
    fn suppressions_are_read_and_each_problem_named() {
        let ok = Policy::parse(
            "[[suppressions]]\nsku = \"SPE_E3\"\nkind = \"sku_capacity\"\nuntil = \"2027-01-31\"\nreason = \"reseller\"\n",
        )
        .expect("valid");
        assert_eq!(ok.suppressions.len(), 1);
        assert_eq!(
            ok.suppressions[0].until_time().map(|t| t.to_rfc3339()),
            Some("2027-01-31T23:59:59+00:00".into())
        );
        let err = Policy::parse("[[suppressions]]\nuntil = \"soon\"\nreason = \" \"\ncolour = 1\n")
            .unwrap_err();
        let names: Vec<_> = err.problems.iter().map(|p| p.name.clone()).collect();
        for key in [
            "suppressions[0].sku",
            "suppressions[0].reason",
            "suppressions[0].until",
        ] {
            assert!(names.iter().any(|n| n == key), "{key} in {names:?}");
        }
        assert!(names.iter().any(|n| n.contains("colour")), "{names:?}");
    }

    #[test]
    fn unknown_keys_are_all_named() {
        let err = Policy::parse("[check]\nmass_delicensing_min = 3\n[notfy]\nadmins = []\n[[notify.webhooks]]\nkind='slack'\nurl='https://x.y'\ncolour='red'\n")
            .unwrap_err();
        let names: Vec<_> = err.problems.iter().map(|p| p.name.clone()).collect();
        assert!(
            names.contains(&"check.mass_delicensing_min".to_string()),
            "{names:?}"
        );
        assert!(names.contains(&"notfy".to_string()), "{names:?}");
        assert!(names.iter().any(|n| n.contains("colour")), "{names:?}");
    }

    #[test]
    fn reclaim_and_price_problems_are_named() {
        let err = Policy::parse(
            "[reclaim]\ninactive_days = 0\n[prices.monthly]\nSPE_E3 = -3.0\nENTERPRISEPACK = 20.0\n",
        )
        .unwrap_err();
        let names: Vec<_> = err.problems.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "reclaim.inactive_days",
                "prices.monthly.SPE_E3",
                "prices.currency"
            ]
        );
        let ok = Policy::parse("[prices]\ncurrency = \"EUR\"\n[prices.monthly]\nSPE_E3 = 33.75\n")
            .expect("valid");
        assert_eq!(ok.prices.monthly["SPE_E3"], 33.75);
        assert_eq!(ok.reclaim.inactive_days, 90);
    }

    #[test]
    fn invalid_values_are_all_named() {
        let err = Policy::parse(
            "[tenant]\ntime_zone='Mars/Olympus'\n[notify]\nadmins=['nobody']\nuser_thresholds_days=[-1]\n[webhook]\ntolerance_seconds=0\n",
        )
        .unwrap_err();
        let names: Vec<_> = err.problems.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "tenant.time_zone",
                "notify.admins[0]",
                "notify.user_thresholds_days",
                "webhook.tolerance_seconds"
            ]
        );
    }

    #[test]
    fn a_wrong_time_zone_in_code_is_an_error_naming_the_key_not_utc() {
        let p = Policy {
            tenants: vec![TenantEntry {
                id: "t1".into(),
                time_zone: "Mars/Olympus".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let err = p.time_zone_for("t1").expect_err("no silent UTC");
        assert_eq!(err.problems[0].name, "tenants[0].time_zone");
        assert_eq!(p.time_zone_for("t2").expect("default"), TimeZone::utc());
    }

    #[test]
    fn wrong_type_names_the_key() {
        let err = Policy::parse("[check]\nsku_low_seats = 'five'\n").unwrap_err();
        assert!(err.to_string().contains("sku_low_seats"), "{err}");
    }
}
