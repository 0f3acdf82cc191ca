//! Picks and builds the adapters the configuration names. An adapter this build does not include (a Lambda
//! function has no SQLite; audit-fetch has no SQS client) is a configuration error naming the variable, not a
//! silent fallback.

use std::sync::Arc;

use crate::config::{ArchiveLocation, ConfigError, Settings, StateLocation, vars};
use crate::error::CoreError;
use crate::ports::archive::AuditArchive;
use crate::ports::queue::MessageQueue;
use crate::ports::store::Backend;

type Aws<'a> = Option<&'a aws_config::SdkConfig>;

/// The audit archive: a directory, or S3. Another tenant than the deployment's own (`partition`) archives under
/// `tenants/{id}/` there, so that each customer's records stay apart (and can be handed over or deleted alone).
pub(super) fn archive(
    settings: &Settings,
    aws: Aws,
    partition: Option<&str>,
) -> Result<Arc<dyn AuditArchive>, ConfigError> {
    let sub = partition.map(|t| format!("tenants/{}", t.to_ascii_lowercase()));
    match (&settings.archive, sub) {
        (ArchiveLocation::Directory(dir), sub) => Ok(Arc::new(
            crate::adapters::files::FileArchive::new(match sub {
                Some(sub) => dir.join(sub),
                None => dir.clone(),
            }),
        )),
        (ArchiveLocation::S3 { bucket, prefix }, None) => s3_archive(aws, bucket, prefix),
        (ArchiveLocation::S3 { bucket, prefix }, Some(sub)) => {
            let prefix = match prefix.trim_matches('/') {
                "" => sub,
                p => format!("{p}/{sub}"),
            };
            s3_archive(aws, bucket, &prefix)
        }
    }
}

/// Where documents (monthly statements) go: `statements/` beside the archive directory, or the archive's bucket
/// under `statements/`.
pub(super) fn documents(
    settings: &Settings,
    aws: Aws,
) -> Result<Arc<dyn crate::ports::documents::Documents>, ConfigError> {
    match &settings.archive {
        ArchiveLocation::Directory(dir) => {
            let beside = dir.parent().unwrap_or(dir.as_path()).join("statements");
            Ok(Arc::new(crate::adapters::files::FileDocuments::new(beside)))
        }
        ArchiveLocation::S3 { bucket, .. } => s3_documents(aws, bucket),
    }
}

#[cfg(feature = "aws")]
fn s3_documents(
    aws: Aws,
    bucket: &str,
) -> Result<Arc<dyn crate::ports::documents::Documents>, ConfigError> {
    Ok(Arc::new(s3_objects(aws, bucket, "statements")?))
}

#[cfg(not(feature = "aws"))]
fn s3_documents(
    _: Aws,
    _: &str,
) -> Result<Arc<dyn crate::ports::documents::Documents>, ConfigError> {
    Err(missing(vars::ARCHIVE, "S3 client"))
}

/// The state store: SQLite, or DynamoDB with snapshots in S3 beside the archive.
pub(super) fn store(
    settings: &Settings,
    aws: Aws,
    tenant_id: &str,
) -> Result<Arc<dyn Backend>, CoreError> {
    match &settings.state {
        StateLocation::Sqlite(path) => sqlite(path),
        StateLocation::DynamoDb(table) => dynamo(settings, aws, table, tenant_id),
    }
}

/// A queue when `url` is set (`var` names the variable that set it).
pub(super) fn queue(
    var: &str,
    url: Option<&str>,
    aws: Aws,
) -> Result<Option<Arc<dyn MessageQueue>>, ConfigError> {
    match url {
        None => Ok(None),
        Some(url) => sqs(var, url, aws).map(Some),
    }
}

#[cfg(not(all(feature = "sqlite", feature = "aws", feature = "sqs")))]
fn missing(var: &str, what: &str) -> ConfigError {
    ConfigError::single(
        var,
        format!(
            "this build of licensewatch has no {what} (a Lambda function links only the adapters it uses)"
        ),
    )
}

#[cfg(feature = "sqlite")]
fn sqlite(path: &std::path::Path) -> Result<Arc<dyn Backend>, CoreError> {
    Ok(Arc::new(crate::adapters::sqlite::SqliteStore::open(path)?))
}

#[cfg(not(feature = "sqlite"))]
fn sqlite(_: &std::path::Path) -> Result<Arc<dyn Backend>, CoreError> {
    Err(missing(vars::STATE, "SQLite state store: set dynamodb:TABLE").into())
}

#[cfg(feature = "aws")]
fn s3_objects(
    aws: Aws,
    bucket: &str,
    prefix: &str,
) -> Result<crate::adapters::aws::s3::S3Objects, ConfigError> {
    let conf = aws.ok_or_else(|| ConfigError::single(vars::ARCHIVE, "S3 is not configured"))?;
    Ok(crate::adapters::aws::s3::S3Objects::new(
        conf, bucket, prefix,
    ))
}

#[cfg(feature = "aws")]
fn s3_archive(aws: Aws, bucket: &str, prefix: &str) -> Result<Arc<dyn AuditArchive>, ConfigError> {
    let objects = s3_objects(aws, bucket, prefix)?;
    Ok(Arc::new(crate::adapters::aws::s3::S3Archive::new(objects)))
}

#[cfg(not(feature = "aws"))]
fn s3_archive(_: Aws, _: &str, _: &str) -> Result<Arc<dyn AuditArchive>, ConfigError> {
    Err(missing(vars::ARCHIVE, "S3 client"))
}

#[cfg(feature = "aws")]
fn dynamo(
    settings: &Settings,
    aws: Aws,
    table: &str,
    tenant_id: &str,
) -> Result<Arc<dyn Backend>, CoreError> {
    let (Some(conf), ArchiveLocation::S3 { bucket, prefix }) = (aws, &settings.archive) else {
        return Err(ConfigError::single(
            vars::STATE,
            format!(
                "dynamodb needs {}=s3://BUCKET/PREFIX for snapshots",
                vars::ARCHIVE
            ),
        )
        .into());
    };
    // Snapshots and run records sit beside the audit archive, under their own prefix.
    let objects = s3_objects(aws, bucket, prefix)?.under("state");
    let remediations = queue(vars::QUEUE_URL, settings.queue_url.as_deref(), aws)?;
    Ok(Arc::new(crate::adapters::aws::dynamo::DynamoStore::new(
        conf,
        table,
        objects,
        remediations,
        tenant_id,
    )))
}

#[cfg(not(feature = "aws"))]
fn dynamo(_: &Settings, _: Aws, _: &str, _: &str) -> Result<Arc<dyn Backend>, CoreError> {
    Err(missing(vars::STATE, "DynamoDB client").into())
}

#[cfg(feature = "sqs")]
fn sqs(var: &str, url: &str, aws: Aws) -> Result<Arc<dyn MessageQueue>, ConfigError> {
    let conf = aws.ok_or_else(|| ConfigError::single(var, "AWS is not configured"))?;
    Ok(Arc::new(crate::adapters::aws::sqs::SqsQueue::new(
        conf, url,
    )))
}

#[cfg(not(feature = "sqs"))]
fn sqs(var: &str, _: &str, _: Aws) -> Result<Arc<dyn MessageQueue>, ConfigError> {
    Err(missing(var, "SQS client"))
}

/// Only meaningful in a build without the adapters, like a Lambda function's: `.ci/run` runs
/// `cargo test -p licensewatch-core --lib` (no features) for it.
#[cfg(all(test, not(any(feature = "sqlite", feature = "sqs"))))]
mod tests {
    use super::*;

    #[test]
    fn an_adapter_this_build_lacks_is_an_error_naming_the_variable() {
        let err = sqlite(std::path::Path::new("./licensewatch.db"))
            .err()
            .expect("no SQLite in this build");
        assert!(err.to_string().contains(vars::STATE), "{err}");
        assert!(err.to_string().contains("dynamodb:TABLE"), "{err}");
        let err =
            sqs(vars::QUEUE_URL, "https://sqs.example/q", None).expect_err("no SQS in this build");
        assert_eq!(err.problems[0].name, vars::QUEUE_URL);
        assert!(err.problems[0].problem.contains("SQS"), "{err}");
    }
}
