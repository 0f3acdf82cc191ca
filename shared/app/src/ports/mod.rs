//! Ports: the small role traits the use cases need from the outside world, and the records that cross them.
//! Adapters implement them (SQLite and files locally, DynamoDB/S3/SQS on AWS, Microsoft's APIs); the `testing`
//! feature adds in-memory fakes.

pub mod archive;
pub mod audit_feed;
pub mod channel;
pub mod clock;
pub mod codec;
pub mod directory;
pub mod documents;
pub mod probe;
pub mod queue;
pub mod signing_keys;
pub mod snapshot_format;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;
