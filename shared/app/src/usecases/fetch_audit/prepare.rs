//! A batch of audit records made ready to archive, away from the async runtime (it is CPU work): each record's id
//! and day read from a borrowed view (no JSON tree is built for it), its raw bytes kept and archived unchanged, the
//! licence activity (a few records in thousands) parsed in full, and one gzip object per day encoded in advance.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::ops::Range;
use std::sync::Mutex;

use serde_json::Value;
use serde_json::value::RawValue;

use crate::domain::audit_search::{Fields, IndexBuilder, ObjectIndex};
use crate::domain::license_event::{
    GroupLicensingRun, LicenseRecord, from_management_record, group_licensing_run,
    management_operation_of_interest,
};
use crate::error::{ApiError, Service, StoreError};
use crate::ports::archive::{decode_text, encode_lines, object_key};

/// Where a batch comes from and how its records name their id and time.
#[derive(Debug, Clone)]
pub(crate) struct Shape {
    /// `directory_audit` or `management_api`.
    pub source: &'static str,
    /// `directoryAudits` or the Management API content type.
    pub content_type: String,
    /// The record's id field.
    pub id_field: &'static str,
    /// The record's time field; its first ten characters are the record's day.
    pub time_field: &'static str,
}

impl Shape {
    /// The Management Activity API's records of `content_type` (the Purview audit log's are the same records).
    pub(crate) fn management(content_type: &str) -> Self {
        Shape {
            source: "management_api",
            content_type: content_type.to_string(),
            id_field: "Id",
            time_field: "CreationTime",
        }
    }
}

/// A record's line in the archive: a range of the downloaded body, or compacted bytes when the source wrote the
/// record over several lines (NDJSON needs one line a record).
#[derive(Debug)]
enum Line {
    Body(Range<usize>),
    Owned(Vec<u8>),
}

/// The records of one day of a batch: one archive object.
#[derive(Debug)]
pub(crate) struct PreparedObject {
    /// The object's key (named from its record ids).
    pub key: String,
    /// Its record ids, unique.
    pub ids: Vec<String>,
    /// The object's bytes when every id is archived in it (gzip NDJSON, a line per id, in the order of `ids`).
    pub encoded: Vec<u8>,
    /// Its search index (JSON), built from every record of the batch's day: when only some are archived in the
    /// object, the index describes a few more, which can only make a search read the object, never miss it.
    pub index: Vec<u8>,
}

/// A batch ready to archive: its objects encoded, the downloaded body already let go (batches wait their turn to be
/// archived, and a body is several times its compressed objects).
#[derive(Debug, Default)]
pub(crate) struct Prepared {
    /// One object per day of the records.
    pub objects: Vec<PreparedObject>,
    /// Records repeated within the batch (the same id twice).
    pub repeated: usize,
    /// Records that carry licence changes.
    pub licence_records: Vec<LicenseRecord>,
    /// Group-licensing runs the batch reports.
    pub group_runs: Vec<GroupLicensingRun>,
    /// Records kept under an id made from their content (they had none).
    pub without_id: usize,
}

impl PreparedObject {
    /// The object's bytes holding only `claimed` of its records (when some were archived before): its lines read
    /// back from `encoded`, which is rare enough not to keep the downloaded body for.
    pub(crate) fn encode_only(&self, claimed: &HashSet<String>) -> Result<Vec<u8>, StoreError> {
        let text = decode_text(&self.encoded)
            .map_err(|e| StoreError::Corrupt(format!("object {} being prepared: {e}", self.key)))?;
        let lines = text.split(|&b| b == b'\n');
        Ok(encode_lines(
            self.ids
                .iter()
                .zip(lines)
                .filter(|(id, _)| claimed.contains(*id))
                .map(|(_, line)| line),
        ))
    }
}

/// The bytes of a located record's line.
fn line_of<'a>(body: &'a [u8], line: &'a Line) -> &'a [u8] {
    match line {
        Line::Body(r) => &body[r.clone()],
        Line::Owned(b) => b,
    }
}

/// A record located in the body.
struct Located {
    id: String,
    day: String,
    line: Line,
}

/// The record ids of the blobs prepared last in a run, with the listing position of the blob that holds each, so a
/// record that Microsoft repeats in a nearby blob is dropped before its object is encoded (otherwise the claim
/// would refuse it and the object would be encoded twice). Only a blob listed earlier can take a record from a
/// later one: blobs are archived in listing order, so the earlier holder is archived (or the run stops) before the
/// later blob is marked done. The store's claims stay the authority; this only saves work, in bounded memory.
#[derive(Debug)]
pub(crate) struct RecentIds {
    holder: HashMap<String, usize>,
    blobs: VecDeque<(usize, Vec<String>)>,
    keep_blobs: usize,
}

impl RecentIds {
    /// Remembers the ids of the last `keep_blobs` blobs.
    pub(crate) fn new(keep_blobs: usize) -> Self {
        Self {
            holder: HashMap::new(),
            blobs: VecDeque::new(),
            keep_blobs: keep_blobs.max(1),
        }
    }

    /// Drops the records an earlier-listed recent blob holds; remembers the rest as blob `position`'s.
    fn take(&mut self, position: usize, located: Vec<Located>) -> (Vec<Located>, usize) {
        let mut kept = Vec::with_capacity(located.len());
        let mut mine = Vec::with_capacity(located.len());
        let mut dropped = 0;
        for l in located {
            match self.holder.get(&l.id) {
                Some(&p) if p < position => {
                    dropped += 1;
                    continue;
                }
                Some(_) => {}
                None => {
                    self.holder.insert(l.id.clone(), position);
                    mine.push(l.id.clone());
                }
            }
            kept.push(l);
        }
        self.blobs.push_back((position, mine));
        while self.blobs.len() > self.keep_blobs {
            if let Some((p, ids)) = self.blobs.pop_front() {
                for id in ids {
                    if self.holder.get(&id) == Some(&p) {
                        self.holder.remove(&id);
                    }
                }
            }
        }
        (kept, dropped)
    }
}

/// Prepares a Management Activity API content blob (a JSON array of records), the `position`-th of its listing.
pub(crate) fn management_blob(
    body: Vec<u8>,
    shape: &Shape,
    today: &str,
    recent: Option<(&Mutex<RecentIds>, usize)>,
) -> Result<Prepared, ApiError> {
    let raws: Vec<&RawValue> = serde_json::from_slice(&body).map_err(|e| malformed(&e))?;
    let mut located = Vec::with_capacity(raws.len());
    let mut licence_records = Vec::new();
    let mut group_runs = Vec::new();
    let mut without_id = 0;
    // One search index per day of the batch, built from the same borrowed view as the ids (one pass per record).
    let mut indexes: HashMap<String, IndexBuilder> = HashMap::new();
    for raw in &raws {
        let text = raw.get();
        let head = Fields::of(text);
        let quick_id = head.as_ref().and_then(|h| quick_id(h.id));
        let interesting = head
            .as_ref()
            .is_none_or(|h| h.operation().is_none_or(management_operation_of_interest));
        // A tree only when the record may matter beyond archiving, or when its id must come from its content.
        let tree = (interesting || quick_id.is_none())
            .then(|| serde_json::from_str::<Value>(text).ok())
            .flatten();
        if let Some(v) = &tree {
            licence_records.extend(from_management_record(v));
            group_runs.extend(group_licensing_run(v));
        }
        let id = match (quick_id, &tree) {
            (Some(id), _) => id,
            (None, Some(v)) => crate::domain::record_id(v, shape.id_field),
            (None, None) => return Err(malformed(&"a record is not a JSON object")),
        };
        without_id += usize::from(id.starts_with("content-sha256:"));
        let day = head
            .as_ref()
            .and_then(|h| h.time())
            .map_or_else(|| today.to_string(), day_of);
        let index = match indexes.get_mut(&day) {
            Some(index) => index,
            None => indexes.entry(day.clone()).or_default(),
        };
        match &head {
            Some(h) => index.add(h),
            None => index.add_unreadable(),
        }
        let offset = text.as_ptr() as usize - body.as_ptr() as usize;
        let line = if text.bytes().any(|b| b == b'\n' || b == b'\r') {
            Line::Owned(compact(text))
        } else {
            Line::Body(offset..offset + text.len())
        };
        located.push(Located { id, day, line });
    }
    drop(raws);
    let mut earlier = 0;
    if let Some((recent, position)) = recent {
        let mut recent = recent.lock().unwrap_or_else(|p| p.into_inner());
        (located, earlier) = recent.take(position, located);
    }
    let mut prepared = group(body, located, shape, indexes);
    prepared.repeated += earlier;
    prepared.licence_records = licence_records;
    prepared.group_runs = group_runs;
    prepared.without_id = without_id;
    Ok(prepared)
}

/// Prepares records already parsed (Graph's directory audits come page by page as trees).
pub(crate) fn parsed_records(records: &[Value], shape: &Shape, today: &str) -> Prepared {
    let located = records
        .iter()
        .map(|r| Located {
            id: crate::domain::record_id(r, shape.id_field),
            day: r[shape.time_field]
                .as_str()
                .map_or_else(|| today.to_string(), day_of),
            line: Line::Owned(serde_json::to_vec(r).unwrap_or_default()),
        })
        .collect::<Vec<_>>();
    let without_id = located
        .iter()
        .filter(|l| l.id.starts_with("content-sha256:"))
        .count();
    let mut prepared = group(Vec::new(), located, shape, HashMap::new());
    prepared.without_id = without_id;
    prepared
}

/// Drops repeats within the batch, splits it by day and encodes each day's object with its search index (the one
/// built while locating the records, which may also name a repeat dropped since: never a miss, at worst a read;
/// else one built from the object's lines).
fn group(
    body: Vec<u8>,
    located: Vec<Located>,
    shape: &Shape,
    mut indexes: HashMap<String, IndexBuilder>,
) -> Prepared {
    let mut seen = HashSet::with_capacity(located.len());
    let mut repeated = 0;
    let mut by_day: BTreeMap<String, (Vec<String>, Vec<Line>)> = BTreeMap::new();
    for Located { id, day, line } in located {
        if !seen.insert(id.clone()) {
            repeated += 1;
            continue;
        }
        let (ids, lines) = by_day.entry(day).or_default();
        ids.push(id);
        lines.push(line);
    }
    let mut prepared = Prepared {
        repeated,
        ..Default::default()
    };
    for (day, (ids, lines)) in by_day {
        let key = object_key(shape.source, &shape.content_type, &day, &ids);
        let encoded = encode_lines(lines.iter().map(|l| line_of(&body, l)));
        let index = match indexes.remove(&day) {
            Some(built) => built.finish(&key),
            None => ObjectIndex::build(&key, lines.iter().map(|l| line_of(&body, l))),
        };
        prepared.objects.push(PreparedObject {
            index: serde_json::to_vec(&index).unwrap_or_default(),
            key,
            ids,
            encoded,
        });
    }
    prepared
}

/// A string id as the text it holds, without unescaping when it needs none (GUIDs never do).
fn quick_id(raw: Option<&RawValue>) -> Option<String> {
    let text = raw?.get();
    let inner = text.strip_prefix('"')?.strip_suffix('"')?;
    if inner.is_empty() {
        return None;
    }
    if !inner.contains('\\') {
        return Some(inner.to_string());
    }
    serde_json::from_str::<String>(text).ok()
}

/// The first ten characters of a time: `YYYY-MM-DD`.
fn day_of(time: &str) -> String {
    match time.get(..10) {
        Some(day) => day.to_string(),
        None => time.chars().take(10).collect(),
    }
}

/// One record over several lines, made one line (strings cannot hold a raw line break, so this only removes
/// layout).
fn compact(text: &str) -> Vec<u8> {
    serde_json::from_str::<Value>(text)
        .and_then(|v| serde_json::to_vec(&v))
        .unwrap_or_else(|_| text.replace(['\n', '\r'], " ").into_bytes())
}

fn malformed(e: &dyn std::fmt::Display) -> ApiError {
    ApiError::MalformedBody {
        service: Service::Management,
        what: "content blob".into(),
        detail: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape() -> Shape {
        Shape::management("Audit.AzureActiveDirectory")
    }

    fn decode(bytes: &[u8]) -> Vec<Value> {
        crate::ports::archive::decode_batch(bytes).expect("decode")
    }

    #[test]
    fn records_are_archived_byte_for_byte_one_object_per_day_without_repeats() {
        let a = r#"{"Id":"a","CreationTime":"2026-11-20T10:00:00","Operation":"UserLoggedIn","Z":1,"A":[1, 2]}"#;
        let b = r#"{"CreationTime":"2026-11-21T01:00:00","Id":"b","Operation":"UserLoggedIn"}"#;
        let body = format!("[{a}, {b},\n{a}]");
        let p = management_blob(body.into_bytes(), &shape(), "2026-11-21", None).expect("prepared");
        assert_eq!(p.repeated, 1);
        assert_eq!(p.objects.len(), 2);
        assert_eq!(p.objects[0].ids, vec!["a"]);
        assert!(p.objects[0].key.contains("/2026/11/20/"));
        let text = decode_text(&p.objects[0].encoded).expect("gzip");
        // Field order and spacing as Microsoft sent them.
        assert_eq!(String::from_utf8_lossy(&text), format!("{a}\n"));
        assert_eq!(p.objects[1].ids, vec!["b"]);
    }

    #[test]
    fn a_record_over_several_lines_becomes_one_line_and_odd_ids_keep_their_old_names() {
        let body = "[{\n \"Id\": \"x\",\n \"CreationTime\": \"2026-11-20T10:00:00\"\n}, {\"Id\": 42}, {\"CreationTime\": 5}]";
        let p = management_blob(body.as_bytes().to_vec(), &shape(), "2026-11-21", None)
            .expect("prepared");
        let ids: Vec<&String> = p.objects.iter().flat_map(|o| &o.ids).collect();
        assert!(ids.contains(&&"x".to_string()));
        assert!(ids.contains(&&"42".to_string()), "{ids:?}");
        assert!(ids.iter().any(|i| i.starts_with("content-sha256:")));
        assert_eq!(p.without_id, 1);
        for o in &p.objects {
            assert_eq!(decode(&o.encoded).len(), o.ids.len());
        }
        // The same content gives the same id as a tree does (what earlier versions indexed).
        let v: Value = serde_json::from_str(r#"{"CreationTime": 5}"#).expect("json");
        assert!(ids.contains(&&crate::domain::record_id(&v, "Id")));
    }

    #[test]
    fn only_licence_operations_are_parsed_in_full() {
        let body = r#"[{"Id":"1","CreationTime":"2026-11-20T10:00:00","Operation":"Change user license.","ResultStatus":"Success","ObjectId":"adele@contoso.com","Target":[{"ID":"User_0b9a7c1e-7b0a-4a56-9a3c-5c0f1d2e3f40","Type":2}],"ModifiedProperties":[]},
                      {"Id":"2","CreationTime":"2026-11-20T10:00:00","Operation":"UserLoggedIn"}]"#;
        let p = management_blob(body.as_bytes().to_vec(), &shape(), "2026-11-21", None)
            .expect("prepared");
        assert_eq!(p.licence_records.len(), 1);
        assert_eq!(p.objects[0].ids.len(), 2);
    }

    #[test]
    fn a_body_that_is_not_an_array_of_records_is_an_error_naming_the_blob() {
        let e = management_blob(b"{\"error\":1}".to_vec(), &shape(), "2026-11-21", None)
            .expect_err("bad");
        assert!(e.to_string().contains("content blob"), "{e}");
        let e = management_blob(b"[{\"Id\":\"a\"},".to_vec(), &shape(), "2026-11-21", None)
            .expect_err("cut");
        assert!(e.to_string().contains("content blob"), "{e}");
    }

    #[test]
    fn a_record_repeated_in_a_later_blob_is_dropped_there_never_from_the_earlier_one() {
        let recent = Mutex::new(RecentIds::new(2));
        let blob = |ids: &[&str]| {
            let records: Vec<String> = ids
                .iter()
                .map(|i| format!(r#"{{"Id":"{i}","CreationTime":"2026-11-20T10:00:00"}}"#))
                .collect();
            format!("[{}]", records.join(",")).into_bytes()
        };
        let ids = |p: &Prepared| -> Vec<String> {
            p.objects.iter().flat_map(|o| o.ids.clone()).collect()
        };
        // Blob 1 is prepared before blob 0 (downloads finish out of order): it keeps x, and so does blob 0.
        let b1 = management_blob(blob(&["x", "y"]), &shape(), "d", Some((&recent, 1))).expect("b1");
        let b0 = management_blob(blob(&["w", "x"]), &shape(), "d", Some((&recent, 0))).expect("b0");
        assert_eq!((ids(&b1), b1.repeated), (vec!["x".into(), "y".into()], 0));
        assert_eq!((ids(&b0), b0.repeated), (vec!["w".into(), "x".into()], 0));
        // Blob 2 repeats y (held by blob 1, listed earlier): dropped before encoding.
        let b2 = management_blob(blob(&["y", "z"]), &shape(), "d", Some((&recent, 2))).expect("b2");
        assert_eq!((ids(&b2), b2.repeated), (vec!["z".into()], 1));
        assert_eq!(decode(&b2.objects[0].encoded).len(), 1);
        // Only the last two blobs prepared (0 and 2) are remembered: x, held by blob 1, is forgotten and left to
        // the store's claims; w, held by blob 0, is still dropped.
        let b3 = management_blob(blob(&["w", "x"]), &shape(), "d", Some((&recent, 3))).expect("b3");
        assert_eq!((ids(&b3), b3.repeated), (vec!["x".into()], 1));
    }

    #[test]
    fn a_subset_is_encoded_from_the_same_lines() {
        let body = "[{\"Id\":\"a\",\"CreationTime\":\"2026-11-20T10:00:00\"},\n{\"Id\":\"b\",\n \"CreationTime\":\"2026-11-20T11:00:00\"},{\"Id\":\"c\",\"CreationTime\":\"2026-11-20T12:00:00\",\"Note\":\"two\\nlines\"}]";
        let p = management_blob(body.as_bytes().to_vec(), &shape(), "2026-11-21", None)
            .expect("prepared");
        let wanted: HashSet<String> = ["b".to_string(), "c".to_string()].into();
        let subset = p.objects[0].encode_only(&wanted).expect("subset");
        let text = decode_text(&subset).expect("gzip");
        assert_eq!(
            String::from_utf8_lossy(&text),
            "{\"CreationTime\":\"2026-11-20T11:00:00\",\"Id\":\"b\"}\n{\"Id\":\"c\",\"CreationTime\":\"2026-11-20T12:00:00\",\"Note\":\"two\\nlines\"}\n",
            "the records kept, each on one line (the one written over two compacted), the other byte for byte"
        );
    }
}
