//! How stored documents are encoded: gzipped JSON (run records, reclamation reports, snapshots before
//! [`crate::ports::snapshot_format`]), and decoding off the async threads. Its own module so that the snapshot
//! format and the store traits both use it without naming each other.

use serde::Serialize;

use crate::error::StoreError;

/// Gzipped JSON, as run records and reclamation reports are stored (and snapshots were, before
/// [`crate::ports::snapshot_format`]).
pub fn gzip_json<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    let corrupt = |e: &dyn std::fmt::Display| StoreError::Corrupt(e.to_string());
    // Buffered: serde_json writes token by token, and each unbuffered write would run the compressor.
    let mut enc = std::io::BufWriter::with_capacity(
        1 << 16,
        flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()),
    );
    serde_json::to_writer(&mut enc, value).map_err(|e| corrupt(&e))?;
    std::io::Write::flush(&mut enc).map_err(|e| corrupt(&e))?;
    enc.into_inner()
        .map_err(|e| corrupt(e.error()))?
        .finish()
        .map_err(|e| corrupt(&e))
}

/// Reads what [`gzip_json`] wrote.
pub fn gunzip_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    use std::io::Read;
    // Decompressed whole, then parsed from the slice: serde_json reads a slice several times faster than a reader
    // (which it reads a byte at a time), at the cost of holding the text while parsing.
    let mut text = Vec::with_capacity(bytes.len().saturating_mul(8));
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut text)
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    serde_json::from_slice(&text).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Decodes a stored document on a blocking thread, so that a large one (a 100,000-user snapshot) is decoded while
/// the caller's other work (paging the directory) goes on.
pub async fn decode_off_thread<T>(
    bytes: Vec<u8>,
    decode: fn(&[u8]) -> Result<T, StoreError>,
) -> Result<T, StoreError>
where
    T: Send + 'static,
{
    tokio::task::spawn_blocking(move || decode(&bytes))
        .await
        .map_err(|e| StoreError::Corrupt(format!("decoding a stored document: {e}")))?
}
