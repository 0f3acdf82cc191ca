//! licensewatch's local adapters behind the ports: the audit archive and published documents in a directory (every
//! binary), and the SQLite state store (feature `sqlite`: the CLI and the tests; no Lambda function links it).

pub mod files;
#[cfg(feature = "sqlite")]
pub mod sqlite;

// The layers below under their own names, so that `crate::domain::...`, `crate::ports::...` read as in the core.
#[allow(unused_imports)]
pub(crate) use licensewatch_app::{error, ports};
#[allow(unused_imports)]
pub(crate) use licensewatch_domain::{cloud, config, domain, policy, secret, time_zone};
