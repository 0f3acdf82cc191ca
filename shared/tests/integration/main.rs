//! The core's integration tests, one binary (one link instead of seven). Modules that need adapters or fakes the
//! default build leaves out are compiled when the features are on (the workspace test run enables them).

#[cfg(all(feature = "aws", feature = "sqs"))]
mod aws_adapters;
#[cfg(feature = "sqlite")]
mod errors_name_things;
mod layers;
mod microsoft_clients;
mod secrets_in_logs;
#[cfg(all(feature = "sqlite", feature = "aws", feature = "testing"))]
mod store_contract;
#[cfg(feature = "testing")]
mod usecases;
