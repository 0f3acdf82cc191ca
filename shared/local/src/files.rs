//! The audit archive in a local directory (`LICENSEWATCH_ARCHIVE=file:DIR`), the default, and the documents beside it.

use std::io::Write;
use std::path::PathBuf;

use async_trait::async_trait;

use crate::error::StoreError;
use crate::ports::archive::AuditArchive;

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
        self.files_under(&self.root)
    }

    /// Every file under `dir`.
    fn files_under(&self, dir: &std::path::Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
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

/// Writes `bytes` at `path` unless a file is there; false when one is.
fn write_new(path: &std::path::Path, bytes: &[u8]) -> Result<bool, StoreError> {
    if path.exists() {
        return Ok(false);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    // Write beside the target, then link it in place: a crash leaves either nothing or the whole object, and of
    // two writers at once exactly one creates the file (a link, unlike a rename, never replaces one). A partial
    // temporary file (a crash, a full disk) is removed here or by the next run's sweep.
    let tmp = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(&tmp)(e));
    }
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(io(path)(e)),
    }
}

/// Documents (monthly statements) in a directory of their own, beside the archive.
#[derive(Debug, Clone)]
pub struct FileDocuments {
    root: PathBuf,
}

impl FileDocuments {
    /// Documents under `root` (created when needed).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }
}

#[async_trait]
impl crate::ports::documents::Documents for FileDocuments {
    async fn put_new(&self, key: &str, bytes: Vec<u8>) -> Result<bool, StoreError> {
        if key.split('/').any(|part| part.is_empty() || part == "..") {
            return Err(StoreError::Archive(format!(
                "document key '{key}' is not a plain relative path"
            )));
        }
        write_new(&self.root.join(key), &bytes)
    }
}

#[async_trait]
impl AuditArchive for FileArchive {
    async fn put_new(&self, key: &str, bytes: Vec<u8>) -> Result<bool, StoreError> {
        write_new(&self.root.join(key), &bytes)
    }

    async fn keys(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        // Only the directory the prefix names is walked (not the indexes, not other sources or days).
        let dir = self
            .root
            .join(prefix.rsplit_once('/').map_or("", |(d, _)| d));
        let mut out: Vec<String> = self
            .files_under(&dir)
            .iter()
            .filter_map(|p| p.strip_prefix(&self.root).ok())
            .map(|rel| rel.to_string_lossy().replace('\\', "/"))
            .filter(|key| key.starts_with(prefix) && crate::ports::archive::is_object_key(key))
            .collect();
        out.sort();
        Ok(out)
    }

    async fn index_keys(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let full = format!("{}{prefix}", crate::ports::archive::INDEX_PREFIX);
        let dir = self.root.join(full.rsplit_once('/').map_or("", |(d, _)| d));
        let mut out: Vec<String> = self
            .files_under(&dir)
            .iter()
            .filter_map(|p| p.strip_prefix(&self.root).ok())
            .map(|rel| rel.to_string_lossy().replace('\\', "/"))
            .filter(|key| key.starts_with(&full) && key.ends_with(".idx.json"))
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
