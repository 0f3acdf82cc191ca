//! The audit archive: raw records as gzip NDJSON objects, partitioned by source, content type and day of the
//! record, named from their record ids so that a retried write of the same batch is harmless, and never
//! overwritten. A local directory by default (`LICENSEWATCH_ARCHIVE=file:DIR`).

use std::io::Write;
use std::path::PathBuf;

use async_trait::async_trait;
use flate2::Compression;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};

use crate::store::StoreError;

/// Immutable object storage for archived records.
#[async_trait]
pub trait AuditArchive: Send + Sync {
    /// Writes `bytes` at `key` unless an object is already there. Returns true when it wrote.
    async fn put_new(&self, key: &str, bytes: Vec<u8>) -> Result<bool, StoreError>;
    /// Every key under `prefix`.
    async fn keys(&self, prefix: &str) -> Result<Vec<String>, StoreError>;
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

/// A directory on disk.
#[derive(Debug, Clone)]
pub struct FileArchive {
    root: PathBuf,
}

impl FileArchive {
    /// An archive rooted at `root` (created when needed).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Every file under the root (an unreadable directory is skipped).
    fn files(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut stack = vec![self.root.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for p in entries.flatten().map(|e| e.path()) {
                if p.is_dir() {
                    stack.push(p);
                } else {
                    out.push(p);
                }
            }
        }
        out
    }

    /// Removes temporary files a crashed or failed write left behind (`*.tmp-*`), older than `older_than`, so
    /// they cannot be mistaken for a write in progress. Returns how many were removed.
    pub fn sweep_temporary(&self, older_than: std::time::Duration) -> Result<usize, StoreError> {
        let mut removed = 0;
        for p in self.files() {
            let temporary = p
                .extension()
                .and_then(|x| x.to_str())
                .is_some_and(|x| x.starts_with("tmp-"));
            let old = std::fs::metadata(&p)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age >= older_than);
            if temporary && old {
                std::fs::remove_file(&p).map_err(io(&p))?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// An archive I/O error that names the file or directory.
fn io(path: &std::path::Path) -> impl Fn(std::io::Error) -> StoreError + '_ {
    move |e| StoreError::Archive(format!("'{}': {e}", path.display()))
}

#[async_trait]
impl AuditArchive for FileArchive {
    async fn put_new(&self, key: &str, bytes: Vec<u8>) -> Result<bool, StoreError> {
        let path = self.root.join(key);
        if path.exists() {
            return Ok(false);
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        // Write beside the target and rename: a crash leaves either nothing or the whole object. A partial
        // temporary file (a crash, a full disk) is removed here or by the next run's sweep.
        let tmp = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
        let written = (|| {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(io(&tmp)(e));
        }
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        Ok(true)
    }

    async fn keys(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let mut out: Vec<String> = self
            .files()
            .iter()
            .filter_map(|p| p.strip_prefix(&self.root).ok())
            .map(|rel| rel.to_string_lossy().replace('\\', "/"))
            .filter(|key| key.starts_with(prefix) && key.ends_with(".ndjson.gz"))
            .collect();
        out.sort();
        Ok(out)
    }

    async fn get(&self, key: &str) -> Result<Vec<u8>, StoreError> {
        let path = self.root.join(key);
        std::fs::read(&path).map_err(io(&path))
    }

    async fn exists(&self, key: &str) -> Result<bool, StoreError> {
        Ok(self.root.join(key).is_file())
    }

    async fn clean_up(&self) -> Result<usize, StoreError> {
        // Ten minutes: far longer than writing one object takes, so a write in progress is never touched.
        self.sweep_temporary(std::time::Duration::from_secs(600))
    }
}

/// Encodes records as gzip NDJSON and names the object (see [`object_key`]).
pub fn encode_batch(
    source: &str,
    content_type: &str,
    day: &str,
    ids: &[String],
    records: &[serde_json::Value],
) -> (String, Vec<u8>) {
    (
        object_key(source, content_type, day, ids),
        encode_records(records),
    )
}

/// Gzip NDJSON, one record a line.
pub fn encode_records(records: &[serde_json::Value]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
    for r in records {
        let _ = serde_json::to_writer(&mut enc, r);
        let _ = enc.write_all(b"\n");
    }
    enc.finish().unwrap_or_default()
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
