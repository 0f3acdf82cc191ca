//! The policy's `[[suppressions]]` as domain rules, each error naming its key.

use crate::config::{ConfigError, ConfigProblem};
use crate::domain::kinds::FindingKind;
use crate::domain::suppression::Suppression;
use crate::policy::Policy;

/// Every suppression of the policy (expired ones included: each is judged at the time of the run).
pub fn of_policy(policy: &Policy) -> Result<Vec<Suppression>, ConfigError> {
    policy
        .suppressions
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let until = e.until_time().ok_or_else(|| {
                ConfigError::single(format!("suppressions[{i}].until"), "is not a date")
            })?;
            Suppression::new(&e.tenant, &e.sku, &e.kind, until, &e.reason)
                .map_err(|m| ConfigError::single(format!("suppressions[{i}].kind"), m))
        })
        .collect()
}

/// Every suppression's kind, in the global `[[suppressions]]` and in each `[[tenants]]` entry's own, checked when
/// the policy loads; each problem names its key as written (`tenants[1].suppressions[0].kind`). The policy file's
/// own validation cannot: the finding kinds are the domain's.
pub fn check_policy(policy: &Policy) -> Result<(), ConfigError> {
    let mut problems = Vec::new();
    let mut check = |key: String, kind: &str| {
        let kind = kind.trim();
        if let Some(Err(problem)) = (!kind.is_empty()).then(|| kind.parse::<FindingKind>()) {
            problems.push(ConfigProblem { name: key, problem });
        }
    };
    for (i, e) in policy.suppressions.iter().enumerate() {
        check(format!("suppressions[{i}].kind"), &e.kind);
    }
    let global = policy.suppressions.len();
    for (t, entry) in policy.tenants.iter().enumerate() {
        let Some(own) = policy.tenant_policies.get(&entry.id.to_ascii_lowercase()) else {
            continue;
        };
        // A tenant's policy holds the global suppressions first, then its own.
        for (i, e) in own.suppressions.iter().enumerate().skip(global) {
            check(
                format!("tenants[{t}].suppressions[{}].kind", i - global),
                &e.kind,
            );
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ConfigError { problems })
    }
}
