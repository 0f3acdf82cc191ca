//! licensewatch's application layers, a crate of their own so that cargo keeps them from naming the adapters or the
//! runtime above (docs/ARCHITECTURE.md):
//!
//! - [`error`]: every area's error and [`error::CoreError`] with its retryable/permanent classification.
//! - [`ports`]: the small traits the use cases need (stores, archive, clock, channels, the directory, the audit
//!   feed), with in-memory fakes under the `testing` feature.
//! - [`usecases`]: short coordinators: license-check, audit-fetch, grace-period-notify, reprocess-user, the webhook
//!   endpoint, reclaim, statements, doctor.
//!
//! The bottom layers come from `licensewatch-domain`, under their own names; `licensewatch-core` re-exports all of
//! it beside the adapters and the runtime.

pub mod error;
#[cfg(any(test, feature = "fuzz"))]
pub mod fuzz_targets;
#[cfg(test)]
pub(crate) mod fuzzing;
pub mod ports;
pub mod usecases;
pub use licensewatch_domain::{cloud, config, domain, policy, secret, time_zone};
