//! audit-search: finds archived audit records by user, operation, actor, source, content type and time, over any
//! archive (a directory, S3), beyond Microsoft's retention.
//!
//! Objects are partitioned by source, content type and the day of their records, so the listing alone rules out
//! other sources and days. Each remaining object's index ([`ObjectIndex`], written by audit-fetch beside it) rules
//! out most of the rest; an object whose index is missing or unreadable is read instead, and its index written
//! again from it. Matches come day by day, each day's in time order, newest or oldest first.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, NaiveDate, Utc};
use futures::StreamExt;
use serde::Serialize;
use serde_json::value::RawValue;

use crate::domain::audit_search::{AuditQuery, INDEX_VERSION, ObjectIndex, RecordFacts};
use crate::error::{CoreError, StoreError};
use crate::ports::archive::{AuditArchive, decode_text, index_key, object_of_index};

/// Objects read at once (an S3 round trip each).
const IN_FLIGHT: usize = 16;

/// A search.
#[derive(Debug, Clone, Default)]
pub struct SearchRequest {
    /// The conditions.
    pub query: AuditQuery,
    /// Newest records first (else oldest first).
    pub newest_first: bool,
    /// At most this many records.
    pub limit: Option<usize>,
}

/// One matching record.
#[derive(Debug, Serialize)]
pub struct AuditHit {
    /// `directory_audit` or `management_api`.
    pub source: String,
    /// The content type.
    pub content_type: String,
    /// The archive object that holds it.
    pub object_key: String,
    /// Its time (`YYYY-MM-DDTHH:MM:SS`, UTC).
    pub at: Option<String>,
    /// Its operation, as matched.
    pub operation: Option<String>,
    /// Who did it.
    pub actors: Vec<String>,
    /// Whom it was done to.
    pub subjects: Vec<String>,
    /// The record as archived.
    pub record: Box<RawValue>,
}

/// What a search read and skipped.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SearchStats {
    /// Objects under the source and content type asked for.
    pub objects: usize,
    /// Objects ruled out by their day.
    pub skipped_by_day: usize,
    /// Objects ruled out by their index.
    pub skipped_by_index: usize,
    /// Objects whose index was missing or unreadable, and written again from the object.
    pub indexes_rebuilt: usize,
    /// Objects read.
    pub objects_read: usize,
    /// Records read in them.
    pub records_read: usize,
    /// Records returned.
    pub matches: usize,
}

/// An object key's parts: `{source}/{content_type}/{YYYY}/{MM}/{DD}/{name}.ndjson.gz`.
#[derive(Debug, Clone)]
struct ObjectKey {
    key: String,
    source: String,
    content_type: String,
    day: NaiveDate,
}

impl ObjectKey {
    fn parse(key: &str) -> Option<Self> {
        let parts: Vec<&str> = key.split('/').collect();
        let [source, content_type, y, m, d, _name] = parts.as_slice() else {
            return None;
        };
        Some(Self {
            key: key.to_string(),
            source: source.to_string(),
            content_type: content_type.to_string(),
            day: NaiveDate::parse_from_str(&format!("{y}-{m}-{d}"), "%Y-%m-%d").ok()?,
        })
    }
}

/// The archive's sources, each the first part of its objects' keys.
const SOURCES: [&str; 2] = ["directory_audit", "management_api"];

/// Runs a search; `emit` receives each match in order. Returns what was read and skipped.
pub async fn search_audit(
    archive: &dyn AuditArchive,
    request: &SearchRequest,
    emit: &mut (dyn FnMut(AuditHit) -> Result<(), CoreError> + Send),
) -> Result<SearchStats, CoreError> {
    let q = &request.query;
    // Each source's own prefix, never the root: the deployment's own tenant's archive holds the other tenants'
    // partitions (`tenants/{id}/`) below it.
    let prefixes: Vec<String> = match (&q.source, &q.content_type) {
        (Some(s), Some(c)) => vec![format!("{s}/{c}/")],
        (Some(s), None) => vec![format!("{s}/")],
        (None, _) => SOURCES.iter().map(|s| format!("{s}/")).collect(),
    };
    let mut stats = SearchStats::default();
    let mut days: BTreeMap<NaiveDate, Vec<ObjectKey>> = BTreeMap::new();
    let mut keys = Vec::new();
    let mut index_keys = Vec::new();
    for prefix in &prefixes {
        keys.extend(archive.keys(prefix).await?);
        index_keys.extend(archive.index_keys(prefix).await?);
    }
    for key in keys {
        let Some(object) = ObjectKey::parse(&key) else {
            tracing::warn!(key, "not an archive object name; skipped");
            continue;
        };
        if q.content_type
            .as_ref()
            .is_some_and(|c| *c != object.content_type)
        {
            continue;
        }
        stats.objects += 1;
        if !day_in_range(object.day, q.from, q.to) {
            stats.skipped_by_day += 1;
            continue;
        }
        days.entry(object.day).or_default().push(object);
    }
    let indexed: HashSet<String> = index_keys
        .iter()
        .filter_map(|k| object_of_index(k).map(str::to_string))
        .collect();
    let ordered: Vec<Vec<ObjectKey>> = match request.newest_first {
        true => days.into_values().rev().collect(),
        false => days.into_values().collect(),
    };
    let mut left = request.limit.unwrap_or(usize::MAX);
    for objects in ordered {
        if left == 0 {
            break;
        }
        let mut hits = day_hits(archive, q, objects, &indexed, &mut stats).await?;
        hits.sort_by(|a, b| a.at.cmp(&b.at));
        if request.newest_first {
            hits.reverse();
        }
        for hit in hits.into_iter().take(left) {
            left -= 1;
            stats.matches += 1;
            emit(hit)?;
        }
    }
    Ok(stats)
}

/// Whether a day's partition can hold records in `[from, to)`.
fn day_in_range(day: NaiveDate, from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>) -> bool {
    from.is_none_or(|f| day >= f.date_naive())
        && to.is_none_or(|t| day <= (t - chrono::Duration::nanoseconds(1)).date_naive())
}

/// The matches in one day's objects, in no order.
async fn day_hits(
    archive: &dyn AuditArchive,
    q: &AuditQuery,
    objects: Vec<ObjectKey>,
    indexed: &HashSet<String>,
    stats: &mut SearchStats,
) -> Result<Vec<AuditHit>, CoreError> {
    let mut results = futures::stream::iter(objects)
        .map(|o| object_hits(archive, q, o, indexed))
        .buffered(IN_FLIGHT);
    let mut hits = Vec::new();
    while let Some(found) = results.next().await {
        let found = found?;
        stats.skipped_by_index += usize::from(found.skipped);
        stats.indexes_rebuilt += usize::from(found.rebuilt);
        stats.objects_read += usize::from(found.records_read.is_some());
        stats.records_read += found.records_read.unwrap_or(0);
        hits.extend(found.hits);
    }
    Ok(hits)
}

/// What one object gave.
#[derive(Default)]
struct Found {
    hits: Vec<AuditHit>,
    skipped: bool,
    rebuilt: bool,
    records_read: Option<usize>,
}

async fn object_hits(
    archive: &dyn AuditArchive,
    q: &AuditQuery,
    object: ObjectKey,
    indexed: &HashSet<String>,
) -> Result<Found, CoreError> {
    let mut found = Found::default();
    let stored = match indexed.contains(&object.key) {
        true => read_index(archive, &object.key).await?,
        false => None,
    };
    let text = match stored {
        Some(index) if !index.may_match(q) => {
            found.skipped = true;
            return Ok(found);
        }
        Some(_) => ndjson_text(&object.key, &archive.get(&object.key).await?)?,
        None => {
            let text = ndjson_text(&object.key, &archive.get(&object.key).await?)?;
            let index = ObjectIndex::build(&object.key, lines(&text));
            write_index(archive, &index).await?;
            found.rebuilt = true;
            text
        }
    };
    let mut read = 0;
    for line in lines(&text) {
        read += 1;
        let Some(facts) = RecordFacts::read(line).filter(|f| f.matches(q)) else {
            continue;
        };
        let record = RawValue::from_string(String::from_utf8_lossy(line).into_owned())
            .map_err(|e| corrupt(&object.key, &e))?;
        found.hits.push(AuditHit {
            source: object.source.clone(),
            content_type: object.content_type.clone(),
            object_key: object.key.clone(),
            at: facts.at,
            operation: facts.operation,
            actors: facts.actors,
            subjects: facts.subjects,
            record,
        });
    }
    found.records_read = Some(read);
    Ok(found)
}

/// A stored index, or None when it cannot be used (unreadable, another format version, another object's).
async fn read_index(
    archive: &dyn AuditArchive,
    object_key: &str,
) -> Result<Option<ObjectIndex>, CoreError> {
    let bytes = archive.get(&index_key(object_key)).await?;
    match serde_json::from_slice::<ObjectIndex>(&bytes) {
        Ok(i) if i.version == INDEX_VERSION && i.object == object_key => Ok(Some(i)),
        Ok(_) => Ok(None),
        Err(e) => {
            tracing::warn!(object = object_key, error = %e, "unreadable search index; reading the object");
            Ok(None)
        }
    }
}

/// Writes an object's index. An index already there is left alone: indexes are immutable like the objects, and
/// one that could not be read is simply read around.
pub(crate) async fn write_index(
    archive: &dyn AuditArchive,
    index: &ObjectIndex,
) -> Result<(), CoreError> {
    let bytes = serde_json::to_vec(index).map_err(|e| corrupt(&index.object, &e))?;
    archive.put_new(&index_key(&index.object), bytes).await?;
    Ok(())
}

/// An object's NDJSON text.
fn ndjson_text(key: &str, gz: &[u8]) -> Result<Vec<u8>, CoreError> {
    decode_text(gz).map_err(|e| corrupt(key, &e))
}

/// The non-empty lines of NDJSON text.
pub fn lines(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    text.split(|b| *b == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
}

fn corrupt(key: &str, e: &dyn std::fmt::Display) -> CoreError {
    StoreError::Corrupt(format!("archive object '{key}': {e}")).into()
}
