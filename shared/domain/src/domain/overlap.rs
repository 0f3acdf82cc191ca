//! Licences that pay twice for the same service: a user holding two SKUs whose enabled service plans give the same
//! service (an Exchange Online mailbox in Business Basic and in Business Standard). Which one to remove: the one
//! whose every service the other also gives; when each gives something the other does not, the cheaper one by the
//! policy's prices, else the one with fewer services.

use std::collections::BTreeSet;

use crate::domain::snapshot::SkuSnap;

/// The services a plan gives, by its name: plans of one service in different SKUs (Exchange Online Plan 1 in
/// Business Basic and Business Standard, or Plan 2 in E3) pay for the same thing twice. Free components that
/// many SKUs carry (`EXCHANGE_S_FOUNDATION`) are no service of their own.
pub(crate) fn service_of(plan_name: &str) -> Option<&'static str> {
    let n = plan_name.to_ascii_uppercase();
    let table: [(&str, &str); 8] = [
        ("EXCHANGE_S_FOUNDATION", ""),
        ("EXCHANGE_S_", "Exchange Online mailbox"),
        ("SHAREPOINTWAC", ""),
        ("SHAREPOINT", "SharePoint Online"),
        ("TEAMS1", "Microsoft Teams"),
        ("OFFICESUBSCRIPTION", "Microsoft 365 Apps"),
        ("AAD_PREMIUM", "Entra ID P1"),
        ("INTUNE_A", "Intune"),
    ];
    table
        .iter()
        .find(|(prefix, _)| n.starts_with(prefix))
        .and_then(|(_, service)| (!service.is_empty()).then_some(*service))
}

/// A SKU's plans, as an overlap needs them.
#[derive(Debug, Clone, Copy)]
pub struct SkuPlansRef<'a> {
    /// SKU id (lower case).
    pub sku_id: &'a str,
    /// Part number.
    pub part_number: &'a str,
    /// (plan id, plan name).
    pub plans: &'a [(String, String)],
}

/// One held licence: the SKU and the plans turned off in the assignment.
#[derive(Debug, Clone)]
pub struct HeldRef<'a> {
    /// SKU id.
    pub sku_id: &'a str,
    /// Disabled plan ids.
    pub disabled_plans: Vec<&'a str>,
}

impl<'a> From<&'a SkuSnap> for SkuPlansRef<'a> {
    fn from(k: &'a SkuSnap) -> Self {
        Self {
            sku_id: &k.sku_id,
            part_number: &k.part_number,
            plans: &k.plans,
        }
    }
}

/// Two of a user's SKUs that give the same service.
#[derive(Debug, Clone, PartialEq)]
pub struct Overlap {
    /// The SKU to remove.
    pub remove: String,
    /// The SKU to keep.
    pub keep: String,
    /// Services both give.
    pub shared: Vec<&'static str>,
    /// True when the kept SKU gives every service of the removed one (nothing is lost).
    pub covered: bool,
}

/// The services a held licence gives (its enabled plans that name a service).
fn services(h: &HeldRef<'_>, skus: &[SkuPlansRef<'_>]) -> BTreeSet<&'static str> {
    skus.iter()
        .find(|s| s.sku_id.eq_ignore_ascii_case(h.sku_id))
        .map(|s| {
            s.plans
                .iter()
                .filter(|(id, _)| !h.disabled_plans.iter().any(|d| d.eq_ignore_ascii_case(id)))
                .filter_map(|(_, name)| service_of(name))
                .collect()
        })
        .unwrap_or_default()
}

/// Every pair of the user's SKUs that share a service, each pair once. `price` gives a SKU's monthly price when
/// the policy knows it.
pub fn overlaps(
    held: &[HeldRef<'_>],
    skus: &[SkuPlansRef<'_>],
    price: &dyn Fn(&str) -> Option<f64>,
) -> Vec<Overlap> {
    let given: Vec<(&HeldRef<'_>, BTreeSet<&'static str>)> =
        held.iter().map(|h| (h, services(h, skus))).collect();
    let mut out = Vec::new();
    for (i, (a, sa)) in given.iter().enumerate() {
        for (b, sb) in given.iter().skip(i + 1) {
            if a.sku_id.eq_ignore_ascii_case(b.sku_id) {
                continue;
            }
            let shared: Vec<&'static str> = sa.intersection(sb).copied().collect();
            if shared.is_empty() {
                continue;
            }
            let (remove, keep) = which_to_remove((a.sku_id, sa), (b.sku_id, sb), price);
            let (removed_services, kept_services) = match remove == a.sku_id {
                true => (sa, sb),
                false => (sb, sa),
            };
            out.push(Overlap {
                remove: remove.to_string(),
                keep: keep.to_string(),
                shared,
                covered: removed_services.is_subset(kept_services),
            });
        }
    }
    out
}

/// The SKU to remove of two that overlap, then the one to keep.
fn which_to_remove<'a>(
    a: (&'a str, &BTreeSet<&'static str>),
    b: (&'a str, &BTreeSet<&'static str>),
    price: &dyn Fn(&str) -> Option<f64>,
) -> (&'a str, &'a str) {
    let priced = match (price(a.0), price(b.0)) {
        (Some(pa), Some(pb)) if pa != pb => Some(pa < pb),
        _ => None,
    };
    let a_first = if a.1 == b.1 {
        // The same services twice: the dearer goes, else the later by id.
        priced.map_or(a.0 > b.0, |a_cheaper| !a_cheaper)
    } else if a.1.is_subset(b.1) {
        true
    } else if b.1.is_subset(a.1) {
        false
    } else {
        priced.unwrap_or((a.1.len(), a.0) <= (b.1.len(), b.0))
    };
    match a_first {
        true => (a.0, b.0),
        false => (b.0, a.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plans(names: &[&str]) -> Vec<(String, String)> {
        names
            .iter()
            .enumerate()
            .map(|(i, n)| (format!("p{i}-{n}"), n.to_string()))
            .collect()
    }

    #[test]
    fn the_covered_sku_is_removed_and_partial_overlaps_go_by_price() {
        let basic = plans(&["EXCHANGE_S_STANDARD", "SHAREPOINTSTANDARD", "TEAMS1"]);
        let standard = plans(&[
            "EXCHANGE_S_STANDARD",
            "SHAREPOINTSTANDARD",
            "TEAMS1",
            "OFFICESUBSCRIPTION",
        ]);
        let exo = plans(&["EXCHANGE_S_ENTERPRISE", "AAD_PREMIUM"]);
        let exo_only = plans(&["EXCHANGE_S_ENTERPRISE"]);
        let ems = plans(&["AAD_PREMIUM", "INTUNE_A"]);
        let skus = [
            SkuPlansRef {
                sku_id: "basic",
                part_number: "O365_BUSINESS_ESSENTIALS",
                plans: &basic,
            },
            SkuPlansRef {
                sku_id: "standard",
                part_number: "O365_BUSINESS_PREMIUM",
                plans: &standard,
            },
            SkuPlansRef {
                sku_id: "exo",
                part_number: "EXCHANGEENTERPRISE",
                plans: &exo,
            },
            SkuPlansRef {
                sku_id: "ems",
                part_number: "EMS",
                plans: &ems,
            },
            SkuPlansRef {
                sku_id: "exo_only",
                part_number: "EXCHANGEENTERPRISE",
                plans: &exo_only,
            },
        ];
        let held = |ids: &[&'static str]| -> Vec<HeldRef<'static>> {
            ids.iter()
                .map(|id| HeldRef {
                    sku_id: id,
                    disabled_plans: vec![],
                })
                .collect()
        };
        let no_prices = |_: &str| None;
        let o = overlaps(&held(&["standard", "basic"]), &skus, &no_prices);
        assert_eq!(o.len(), 1);
        assert_eq!(
            (o[0].remove.as_str(), o[0].keep.as_str(), o[0].covered),
            ("basic", "standard", true)
        );
        assert!(o[0].shared.contains(&"Exchange Online mailbox"));
        // Exchange alone beside Business Basic: covered, so it goes, whatever the prices.
        let o = overlaps(&held(&["exo_only", "basic"]), &skus, &no_prices);
        assert_eq!((o[0].remove.as_str(), o[0].covered), ("exo_only", true));
        // Exchange with Entra ID P1 beside Business Basic: each gives something the other does not; the cheaper
        // goes.
        let prices = |id: &str| match id {
            "exo" => Some(8.0),
            "basic" => Some(6.0),
            _ => None,
        };
        let o = overlaps(&held(&["exo", "basic"]), &skus, &prices);
        assert_eq!((o[0].remove.as_str(), o[0].covered), ("basic", false));
        // No shared service, or the shared plan turned off: no overlap.
        assert!(overlaps(&held(&["standard", "ems"]), &skus, &no_prices).is_empty());
        let held_off = [
            HeldRef {
                sku_id: "standard",
                disabled_plans: vec![standard[0].0.as_str()],
            },
            HeldRef {
                sku_id: "exo",
                disabled_plans: vec![],
            },
        ];
        assert!(overlaps(&held_off, &skus, &no_prices).is_empty());
    }
}
