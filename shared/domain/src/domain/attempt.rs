//! What a failed licence assignment tried to add, and where licensewatch learnt it: shared by the grace cases and
//! the findings they raise (here, so that neither names the other for it).

use serde::{Deserialize, Serialize};

/// Where licensewatch learnt which SKU a failed assignment tried to add.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptSource {
    /// The failure record itself (its licence list or its reason).
    AuditRecord,
    /// The user's `licenseAssignmentStates` (a licence in `Error`).
    LicenseAssignmentStates,
    /// A remediation request for the user that asks for the SKU.
    RemediationRequest,
    /// No source names it.
    Unknown,
}

impl std::fmt::Display for AttemptSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AttemptSource::AuditRecord => "the audit record",
            AttemptSource::LicenseAssignmentStates => "the user's licence assignment states",
            AttemptSource::RemediationRequest => "a remediation request",
            AttemptSource::Unknown => "unknown",
        })
    }
}

/// The SKUs a failed assignment tried to add, and where that is known from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// SKU ids (lower case); empty when unknown.
    pub sku_ids: Vec<String>,
    /// The source.
    pub source: AttemptSource,
}
