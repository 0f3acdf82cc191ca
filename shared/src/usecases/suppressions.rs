//! The policy's `[[suppressions]]` as domain rules, each error naming its key.

use crate::config::ConfigError;
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
