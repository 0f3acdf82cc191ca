//! The AWS adapters behind the store, archive and queue traits: DynamoDB for small transactional state, S3 for
//! snapshots, run records and the audit archive, SQS for remediation and tenant fan-out messages.
//!
//! Endpoints, region and credentials come from the standard AWS chain (`AWS_REGION`, `AWS_ENDPOINT_URL`, the
//! Lambda role), so the same code talks to AWS in a Lambda and to moto in tests.

// The layers below under their own names, so that `crate::domain::...`, `crate::ports::...` read as in the core.
#[allow(unused_imports)]
pub(crate) use licensewatch_app::{error, ports};
#[allow(unused_imports)]
pub(crate) use licensewatch_domain::{cloud, config, domain, policy, secret, time_zone};

#[cfg(feature = "aws")]
pub mod dynamo;
#[cfg(feature = "aws")]
pub mod s3;
#[cfg(feature = "sqs")]
pub mod sqs;

#[cfg(feature = "aws")]
mod errors;
#[cfg(feature = "aws")]
pub(crate) use errors::{error_code, sdk_error};

#[cfg(feature = "aws")]
use crate::error::StoreError;

/// The shared AWS configuration, loaded once per process.
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await
}

/// A configuration for a local AWS emulator (moto in server mode): fixed test credentials, a region, and every
/// service at `endpoint`, so nothing ever reaches real AWS or the instance-metadata service.
pub async fn emulator_config(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_secretsmanager::config::Credentials::new(
            "test", "test", None, None, "emulator",
        ))
        .load()
        .await
}

#[cfg(feature = "aws")]
/// Creates a bucket (tests against the emulator; the template creates the real one).
pub async fn create_bucket(conf: &aws_config::SdkConfig, bucket: &str) -> Result<(), StoreError> {
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(conf)
            .force_path_style(true)
            .build(),
    );
    s3.create_bucket()
        .bucket(bucket)
        .send()
        .await
        .map_err(|e| sdk_error("s3 CreateBucket", e))?;
    Ok(())
}

#[cfg(feature = "sqs")]
/// Creates a queue and returns its URL (tests against the emulator).
pub async fn create_queue(conf: &aws_config::SdkConfig, name: &str) -> Result<String, StoreError> {
    let out = aws_sdk_sqs::Client::new(conf)
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .map_err(|e| sdk_error("sqs CreateQueue", e))?;
    Ok(out.queue_url().unwrap_or_default().to_string())
}
