//! licensewatch core: everything that is not Lambda glue, in layers that only point downwards
//! (docs/ARCHITECTURE.md):
//!
//! - [`error`]: every area's error and [`error::CoreError`] with its retryable/permanent classification (the bottom).
//! - [`config`], [`policy`], [`secret`], [`cloud`], [`time_zone`]: configuration from the environment and the policy
//!   file; and [`domain`]: pure licensing rules and types. Both from the `licensewatch-domain` crate.
//! - [`ports`]: the small traits the use cases need (stores, archive, clock, channels, the directory, the audit
//!   feed), with in-memory fakes under the `testing` feature.
//! - [`usecases`]: short coordinators: license-check, audit-fetch, grace-period-notify, reprocess-user and the
//!   webhook endpoint.
//! - [`adapters`]: Microsoft's APIs, SQLite and files (feature `sqlite`), AWS (features `aws`, `sqs`), channels.
//! - [`runtime`]: wiring: builds the adapters from configuration and lends use cases their ports; telemetry.

pub mod adapters;
pub mod runtime;
// The layers below live in crates of their own (cargo keeps each from naming anything above it): configuration and
// the domain in `licensewatch-domain`, errors, ports and use cases in `licensewatch-app`. Here under their own names,
// so that every `crate::domain::...` or `crate::usecases::...` path reads as before.
pub use licensewatch_app::{error, ports, usecases};
pub use licensewatch_domain::{cloud, config, domain, policy, secret, time_zone};
