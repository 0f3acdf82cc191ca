//! Adapters: the outside world behind the ports. Microsoft's APIs (tokens, the call loop, Graph, the Management
//! Activity API, credentials), local state (SQLite, a directory archive), AWS (DynamoDB, S3, SQS, Secrets
//! Manager) and notification channels.

pub mod auth;
pub mod aws;
pub mod credentials;
pub mod files;
pub mod graph;
pub mod http;
pub mod mgmt;
pub mod notify;
pub mod pacer;
pub mod partition;
pub mod probe;
pub mod purview;
pub mod signing_keys;
#[cfg(feature = "sqlite")]
pub mod sqlite;
pub mod tickets;
