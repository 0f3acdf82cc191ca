//! licensewatch's bottom layers, a crate of their own so that cargo, not a text check, keeps them from naming
//! anything above (docs/ARCHITECTURE.md):
//!
//! - [`config`], [`policy`], [`secret`], [`cloud`], [`time_zone`]: configuration from the environment and the policy
//!   file.
//! - [`domain`]: pure licensing rules and types: snapshots, grace-period maths and evidence, findings, licence
//!   events, the SKU catalog, webhook signatures, forecasts, statements.
//!
//! `licensewatch-core` re-exports each module under the same name.

pub mod cloud;
pub mod config;
pub mod domain;
pub mod policy;
pub mod secret;
pub mod time_zone;
