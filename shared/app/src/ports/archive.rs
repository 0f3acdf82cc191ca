//! The audit archive port: immutable objects of raw records as gzip NDJSON, partitioned by source, content type
//! and day of the record, named from their record ids so that a retried write of the same batch is harmless, and
//! never overwritten. Every archive adapter (a directory, S3) stores this one format.

use std::io::Write;

use async_trait::async_trait;
use flate2::Compression;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};

use crate::error::StoreError;

/// Immutable object storage for archived records.
#[async_trait]
pub trait AuditArchive: Send + Sync {
    /// Writes `bytes` at `key` unless an object is already there. Returns true when it wrote.
    async fn put_new(&self, key: &str, bytes: Vec<u8>) -> Result<bool, StoreError>;
    /// The key of every archive object under `prefix` (objects only: never their search indexes), in order.
    async fn keys(&self, prefix: &str) -> Result<Vec<String>, StoreError>;
    /// The key of every search index under [`INDEX_PREFIX`] followed by `prefix` (see [`index_key`]).
    async fn index_keys(&self, prefix: &str) -> Result<Vec<String>, StoreError>;
    /// An object's bytes.
    async fn get(&self, key: &str) -> Result<Vec<u8>, StoreError>;
    /// Whether an object is at `key`.
    async fn exists(&self, key: &str) -> Result<bool, StoreError> {
        Ok(self.keys(key).await?.iter().any(|k| k == key))
    }
    /// Removes what failed writes left behind; returns how many were removed. Object stores have nothing to do.
    async fn clean_up(&self) -> Result<usize, StoreError> {
        Ok(0)
    }
}

/// Where the search index of each object is kept: beside the objects, under a prefix that starts with `_`, which
/// Athena, Hive and Spark skip when they read a table's files.
pub const INDEX_PREFIX: &str = "_index/";

/// The key of an object's search index ([`crate::domain::audit_search::ObjectIndex`], JSON).
pub fn index_key(object_key: &str) -> String {
    format!("{INDEX_PREFIX}{object_key}.idx.json")
}

/// The object an index key describes.
pub(crate) fn object_of_index(index_key: &str) -> Option<&str> {
    index_key
        .strip_prefix(INDEX_PREFIX)?
        .strip_suffix(".idx.json")
}

/// Whether a key names an archive object (gzip NDJSON, not an index).
pub fn is_object_key(key: &str) -> bool {
    key.ends_with(".ndjson.gz") && !key.starts_with(INDEX_PREFIX)
}

/// Gzip NDJSON of records given as their JSON text, one a line (each must be one line already). Gzip at its fastest
/// level: audit records compress about 30:1 even so, and the archive is written at download speed.
pub fn encode_lines<'a>(lines: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    // Writing into a Vec cannot fail.
    let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
    for line in lines {
        let _ = enc.write_all(line);
        let _ = enc.write_all(b"\n");
    }
    enc.finish().unwrap_or_default()
}

/// What [`encode_lines`] wrote, as NDJSON text.
pub(crate) fn decode_text(gz: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut text = Vec::with_capacity(gz.len().saturating_mul(10));
    flate2::read::GzDecoder::new(gz).read_to_end(&mut text)?;
    Ok(text)
}

/// An object's name: `{source}/{content_type}/{YYYY}/{MM}/{DD}/{hash}.ndjson.gz`, where the hash covers the record
/// ids, so the same batch always gets the same name.
pub fn object_key(source: &str, content_type: &str, day: &str, ids: &[String]) -> String {
    let mut h = Sha256::new();
    for id in ids {
        h.update(id.as_bytes());
        h.update(b"\n");
    }
    let hash: String = h
        .finalize()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect();
    format!(
        "{source}/{content_type}/{}/{hash}.ndjson.gz",
        day.replace('-', "/")
    )
}

/// Decodes an archived object back into records.
pub fn decode_batch(bytes: &[u8]) -> Result<Vec<serde_json::Value>, StoreError> {
    use std::io::BufRead;
    let reader = std::io::BufReader::new(flate2::read::GzDecoder::new(bytes));
    let mut out = Vec::new();
    for line in reader.lines() {
        let line = line.map_err(|e| StoreError::Corrupt(format!("archive object: {e}")))?;
        if !line.trim().is_empty() {
            out.push(serde_json::from_str(&line).map_err(|e| StoreError::Corrupt(e.to_string()))?);
        }
    }
    Ok(out)
}
