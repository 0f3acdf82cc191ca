//! S3 objects that are written once and never overwritten: the audit archive, snapshots and run records.

use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;

use super::{error_code, sdk_error};
use crate::error::StoreError;
use crate::ports::archive::AuditArchive;

/// A bucket and a key prefix.
#[derive(Debug, Clone)]
pub struct S3Objects {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
}

impl S3Objects {
    /// Objects under `prefix` (no leading or trailing slash needed) in `bucket`.
    pub fn new(conf: &aws_config::SdkConfig, bucket: &str, prefix: &str) -> Self {
        let mut builder = aws_sdk_s3::config::Builder::from(conf);
        // Local emulators (moto) serve buckets by path, not by virtual host.
        if conf.endpoint_url().is_some() {
            builder = builder.force_path_style(true);
        }
        Self {
            client: aws_sdk_s3::Client::from_conf(builder.build()),
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
        }
    }

    /// The same bucket under another prefix.
    pub fn under(&self, prefix: &str) -> Self {
        Self {
            client: self.client.clone(),
            bucket: self.bucket.clone(),
            prefix: prefix.trim_matches('/').to_string(),
        }
    }

    fn full_key(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}/{key}", self.prefix)
        }
    }

    /// Writes `bytes` at `key` only if nothing is there (`If-None-Match: *`); false when an object exists.
    pub(crate) async fn put_if_absent(
        &self,
        key: &str,
        bytes: Vec<u8>,
    ) -> Result<bool, StoreError> {
        let res = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .if_none_match("*")
            .body(ByteStream::from(bytes))
            .send()
            .await;
        match res {
            Ok(_) => Ok(true),
            Err(e) => {
                let status = e.raw_response().map(|r| r.status().as_u16());
                if status == Some(412) || error_code(&e).as_deref() == Some("PreconditionFailed") {
                    Ok(false)
                } else {
                    Err(sdk_error("s3 PutObject", e))
                }
            }
        }
    }

    /// An object's bytes; `None` when there is none.
    pub async fn get_opt(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let res = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .send()
            .await;
        match res {
            Ok(out) => {
                let data =
                    out.body.collect().await.map_err(|e| {
                        StoreError::Busy(format!("s3 GetObject body of '{key}': {e}"))
                    })?;
                Ok(Some(data.into_bytes().to_vec()))
            }
            Err(e) if error_code(&e).as_deref() == Some("NoSuchKey") => Ok(None),
            Err(e) => Err(sdk_error("s3 GetObject", e)),
        }
    }

    /// Every key under `prefix` (relative to this object's prefix).
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let full = self.full_key(prefix);
        let strip = if self.prefix.is_empty() {
            0
        } else {
            self.prefix.len() + 1
        };
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(&full)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| sdk_error("s3 ListObjectsV2", e))?;
            for o in page.contents() {
                if let Some(k) = o.key() {
                    out.push(k.get(strip..).unwrap_or(k).to_string());
                }
            }
            match page.next_continuation_token() {
                Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_string()),
                _ => break,
            }
        }
        out.sort();
        Ok(out)
    }
}

/// The audit archive in S3 (`LICENSEWATCH_ARCHIVE=s3://BUCKET/PREFIX`).
#[derive(Debug, Clone)]
pub struct S3Archive {
    objects: S3Objects,
}

impl S3Archive {
    /// The archive at `objects`.
    pub fn new(objects: S3Objects) -> Self {
        Self { objects }
    }
}

/// Statements under the bucket's `statements/` prefix (see [`crate::ports::documents`]).
#[async_trait]
impl crate::ports::documents::Documents for S3Objects {
    async fn put_new(&self, key: &str, bytes: Vec<u8>) -> Result<bool, StoreError> {
        self.put_if_absent(key, bytes).await
    }
}

#[async_trait]
impl AuditArchive for S3Archive {
    async fn put_new(&self, key: &str, bytes: Vec<u8>) -> Result<bool, StoreError> {
        self.objects.put_if_absent(key, bytes).await
    }

    async fn keys(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let mut keys = self.objects.list(prefix).await?;
        keys.retain(|k| crate::ports::archive::is_object_key(k));
        Ok(keys)
    }

    async fn index_keys(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let full = format!("{}{prefix}", crate::ports::archive::INDEX_PREFIX);
        self.objects.list(&full).await
    }

    async fn get(&self, key: &str) -> Result<Vec<u8>, StoreError> {
        self.objects
            .get_opt(key)
            .await?
            .ok_or_else(|| StoreError::Database(format!("archive object '{key}' does not exist")))
    }
}
