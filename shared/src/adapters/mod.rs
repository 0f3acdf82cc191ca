//! Adapters: the outside world behind the ports. Microsoft's APIs (tokens, the call loop, Graph, the Management
//! Activity API, credentials), local state (SQLite, a directory archive), AWS (DynamoDB, S3, SQS, Secrets
//! Manager) and notification channels.

//!
//! Each family is a crate of its own (`licensewatch-microsoft`, `licensewatch-local`, `licensewatch-aws`), here under
//! the names they always had.

pub use licensewatch_aws as aws;
pub use licensewatch_local::files;
#[cfg(feature = "sqlite")]
pub use licensewatch_local::sqlite;
pub use licensewatch_microsoft::{
    auth, credentials, graph, http, mgmt, notify, pacer, probe, purview, signing_keys, tickets,
};
pub mod partition;
