//! licensewatch core: everything that is not Lambda glue, in layers that only point downwards
//! (docs/ARCHITECTURE.md):
//!
//! - [`error`]: every area's error and [`error::CoreError`] with its retryable/permanent classification (the bottom).
//! - [`config`], [`policy`], [`secret`], [`cloud`], [`time_zone`]: configuration from the environment and the policy
//!   file.
//! - [`domain`]: pure licensing rules and types: snapshots, grace-period maths and evidence, findings, licence
//!   events, the SKU catalog, webhook signatures.
//! - [`ports`]: the small traits the use cases need (stores, archive, clock, channels, the directory, the audit
//!   feed), with in-memory fakes under the `testing` feature.
//! - [`usecases`]: short coordinators: license-check, audit-fetch, grace-period-notify, reprocess-user and the
//!   webhook endpoint.
//! - [`adapters`]: Microsoft's APIs, SQLite and files (feature `sqlite`), AWS (features `aws`, `sqs`), channels.
//! - [`runtime`]: wiring: builds the adapters from configuration and lends use cases their ports; telemetry.

pub mod adapters;
pub mod cloud;
pub mod config;
pub mod domain;
pub mod error;
#[cfg(test)]
pub(crate) mod fuzzing;
pub mod policy;
pub mod ports;
pub mod runtime;
pub mod secret;
pub mod time_zone;
pub mod usecases;
