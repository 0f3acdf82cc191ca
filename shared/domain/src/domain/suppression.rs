//! Suppressions: findings an administrator has decided not to be alerted or notified about, for a while and for a
//! reason (a SKU the reseller is renewing, a tenant's known trial). A suppressed finding stays in the report,
//! marked; only alerts and notices skip it.

use chrono::{DateTime, Utc};

use crate::domain::findings::{Detail, Finding, Suppressed};
use crate::domain::kinds::FindingKind;

/// One suppression.
#[derive(Debug, Clone, PartialEq)]
pub struct Suppression {
    /// Only this tenant (GUID or domain, any case); `None` = every tenant.
    pub tenant: Option<String>,
    /// Only findings about this SKU (part number or id, any case).
    pub sku: Option<String>,
    /// Only findings of this kind.
    pub kind: Option<FindingKind>,
    /// Active until then.
    pub until: DateTime<Utc>,
    /// Why.
    pub reason: String,
}

impl Suppression {
    /// From the policy's text; the error says what is wrong with `kind`.
    pub fn new(
        tenant: &str,
        sku: &str,
        kind: &str,
        until: DateTime<Utc>,
        reason: &str,
    ) -> Result<Self, String> {
        let some = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
        let kind = match some(kind) {
            Some(k) => Some(k.parse::<FindingKind>()?),
            None => None,
        };
        Ok(Self {
            tenant: some(tenant),
            sku: some(sku),
            kind,
            until,
            reason: reason.trim().to_string(),
        })
    }

    fn covers(&self, f: &Finding, tenant_id: &str, now: DateTime<Utc>) -> bool {
        now <= self.until
            && self
                .tenant
                .as_deref()
                .is_none_or(|t| t.eq_ignore_ascii_case(tenant_id))
            && self.kind.is_none_or(|k| k == f.kind())
            && self
                .sku
                .as_deref()
                .is_none_or(|s| skus_of(&f.detail).iter().any(|x| x.eq_ignore_ascii_case(s)))
    }

    /// Whether this suppression silences grace-period notices in `tenant_id` at `now` (kind `unlicensed_mailbox`,
    /// any SKU: a grace case is about a mailbox, not a SKU).
    pub fn silences_notices(&self, tenant_id: &str, now: DateTime<Utc>) -> bool {
        now <= self.until
            && self.sku.is_none()
            && self.kind == Some(FindingKind::UnlicensedMailbox)
            && self
                .tenant
                .as_deref()
                .is_none_or(|t| t.eq_ignore_ascii_case(tenant_id))
    }
}

/// The SKU ids and part numbers a finding is about.
fn skus_of(d: &Detail) -> Vec<&str> {
    match d {
        Detail::LicenseAssignmentError {
            sku_id,
            sku_part_number,
            ..
        }
        | Detail::SkuCapacity {
            sku_id,
            sku_part_number,
            ..
        }
        | Detail::SeatForecast {
            sku_id,
            sku_part_number,
            ..
        }
        | Detail::SeatWaitingRoom {
            sku_id,
            sku_part_number,
            ..
        }
        | Detail::LicenseRemoved {
            sku_id,
            sku_part_number,
            ..
        }
        | Detail::LicenseAdded {
            sku_id,
            sku_part_number,
            ..
        }
        | Detail::SubscriptionLapsing {
            sku_id,
            sku_part_number,
            ..
        }
        | Detail::UnusedSeatsBeforeRenewal {
            sku_id,
            sku_part_number,
            ..
        } => vec![sku_id, sku_part_number],
        Detail::OverlappingLicenses {
            remove_sku_id,
            remove_sku_part_number,
            keep_sku_id,
            keep_sku_part_number,
            ..
        } => vec![
            remove_sku_id,
            remove_sku_part_number,
            keep_sku_id,
            keep_sku_part_number,
        ],
        Detail::LicensedDisabledAccount { sku_ids, .. } => {
            sku_ids.iter().map(String::as_str).collect()
        }
        Detail::UnlicensedMailbox { .. }
        | Detail::MassDelicensing { .. }
        | Detail::SharedMailboxSignIn { .. } => Vec::new(),
    }
}

/// Marks the findings a suppression covers (the first that does).
pub fn mark(
    findings: &mut [Finding],
    suppressions: &[Suppression],
    tenant_id: &str,
    now: DateTime<Utc>,
) {
    for f in findings.iter_mut() {
        f.suppressed = suppressions
            .iter()
            .find(|s| s.covers(f, tenant_id, now))
            .map(|s| Suppressed {
                reason: s.reason.clone(),
                until: s.until,
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::findings::Severity;

    fn capacity(sku_id: &str, part: &str) -> Finding {
        Finding {
            severity: Severity::Critical,
            detail: Detail::SkuCapacity {
                sku_id: sku_id.into(),
                sku_part_number: part.into(),
                enabled: 10,
                consumed: 10,
                available: 0,
                warning: 0,
                suspended: 0,
                users_in_count_violation: 2,
                reason: "no seats left".into(),
            },
            suppressed: None,
        }
    }

    #[test]
    fn a_suppression_covers_its_tenant_sku_and_kind_until_it_ends() {
        let now = DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z")
            .expect("t")
            .to_utc();
        let until = now + chrono::Duration::days(30);
        let s = Suppression::new(
            "Contoso.onmicrosoft.com",
            "spe_e3",
            "sku_capacity",
            until,
            "reseller",
        )
        .expect("valid");
        let mut f = vec![capacity("e3-id", "SPE_E3"), capacity("e5-id", "SPE_E5")];
        mark(
            &mut f,
            std::slice::from_ref(&s),
            "contoso.onmicrosoft.com",
            now,
        );
        assert_eq!(
            f[0].suppressed.as_ref().map(|x| x.reason.as_str()),
            Some("reseller")
        );
        assert!(f[1].suppressed.is_none(), "another SKU");
        mark(
            &mut f,
            std::slice::from_ref(&s),
            "fabrikam.onmicrosoft.com",
            now,
        );
        assert!(f[0].suppressed.is_none(), "another tenant");
        mark(
            &mut f,
            std::slice::from_ref(&s),
            "contoso.onmicrosoft.com",
            until + chrono::Duration::seconds(1),
        );
        assert!(f[0].suppressed.is_none(), "expired");
        assert!(
            Suppression::new("", "", "sku_capacty", until, "x")
                .unwrap_err()
                .contains("sku_capacity")
        );
        let notices =
            Suppression::new("", "", "unlicensed_mailbox", until, "migration").expect("valid");
        assert!(notices.silences_notices("any", now));
        assert!(!s.silences_notices("contoso.onmicrosoft.com", now));
    }
}
