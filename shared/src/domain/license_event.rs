//! Licence-change events: what audit-fetch derives from the audit logs and license-check uses as evidence.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One licence change (or failed change) for one user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LicenseEvent {
    /// When it happened.
    pub at: DateTime<Utc>,
    /// Who: a UPN or an app name (e.g. "Microsoft Azure AD Group-Based Licensing").
    pub actor: Option<String>,
    /// Target user id.
    pub user_id: Option<String>,
    /// Target UPN.
    pub user_principal_name: Option<String>,
    /// SKUs added (attempted, for a failure).
    pub added_sku_ids: Vec<String>,
    /// SKUs removed.
    pub removed_sku_ids: Vec<String>,
    /// `success` or `failure`.
    pub result: String,
    /// Failure reason, if any.
    pub reason: Option<String>,
    /// `directory_audit` or `management_api`.
    pub source: String,
    /// Source record ids (dedupe key).
    pub record_ids: Vec<String>,
}

impl LicenseEvent {
    /// True for a change that did not happen.
    pub fn failed(&self) -> bool {
        self.result.eq_ignore_ascii_case("failure") || self.result.eq_ignore_ascii_case("failed")
    }

    /// True when the event concerns this user (by id or UPN).
    pub fn concerns(&self, user_id: &str, upn: &str) -> bool {
        self.user_id
            .as_deref()
            .is_some_and(|i| i.eq_ignore_ascii_case(user_id))
            || self
                .user_principal_name
                .as_deref()
                .is_some_and(|u| u.eq_ignore_ascii_case(upn))
    }
}
