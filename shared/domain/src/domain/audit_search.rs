//! Searching the archived audit trail: what a record says about who did what to whom and when (for both shapes the
//! archive holds, Graph directory audits and Management Activity API records), a query over that, and a small
//! per-object index (time range, operations, a Bloom filter of the people and apps involved) that lets a search
//! skip an object that cannot hold a match without reading it.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What a search asks for. Every condition given must hold; names compare without regard to case.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditQuery {
    /// A user (UPN or object id) the record is about or was done by.
    pub user: Option<String>,
    /// The operation (`Update user.`, `Change user license`, `Add member to group`; a trailing `.` is ignored).
    pub operation: Option<String>,
    /// Who did it: a UPN, a user id, an app's name or app id.
    pub actor: Option<String>,
    /// `directory_audit` or `management_api`.
    pub source: Option<String>,
    /// `directoryAudits` or a Management API content type (`Audit.AzureActiveDirectory`).
    pub content_type: Option<String>,
    /// Records at or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Records before this time.
    pub to: Option<DateTime<Utc>>,
}

/// What a record says, normalised for matching.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecordFacts {
    /// Its time as `YYYY-MM-DDTHH:MM:SS` (UTC; both sources write UTC, one with a zone and fractions, one without).
    pub at: Option<String>,
    /// The operation, as matched (lower case, no trailing `.`).
    pub operation: Option<String>,
    /// Who did it (lower case).
    pub actors: Vec<String>,
    /// Whom or what it was done to (lower case).
    pub subjects: Vec<String>,
}

/// The fields of both record shapes that say which record, who, what, whom and when, borrowed from the record's
/// text (no tree is built): audit-fetch reads every record it archives through this one view.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct Fields<'a> {
    /// `Id` of a Management API record, kept raw: a string normally, but a number or nothing must still give the
    /// id an older version gave it.
    #[serde(rename = "Id", borrow)]
    pub id: Option<&'a serde_json::value::RawValue>,
    #[serde(rename = "CreationTime", borrow)]
    creation_time: Text<'a>,
    #[serde(rename = "Operation", borrow)]
    operation: Text<'a>,
    #[serde(rename = "UserId", borrow)]
    user_id: Text<'a>,
    #[serde(rename = "ObjectId", borrow)]
    object_id: Text<'a>,
    #[serde(rename = "Actor", borrow)]
    actor: IdList<'a>,
    #[serde(rename = "Target", borrow)]
    target: IdList<'a>,
    #[serde(rename = "activityDateTime", borrow)]
    activity_date_time: Text<'a>,
    #[serde(rename = "activityDisplayName", borrow)]
    activity_display_name: Text<'a>,
    #[serde(rename = "initiatedBy", borrow)]
    initiated_by: Option<InitiatedBy<'a>>,
    // Graph's own documentation example spells it `targetResource`.
    #[serde(rename = "targetResources", alias = "targetResource", borrow)]
    target_resources: Option<Vec<Resource<'a>>>,
}

#[derive(Deserialize)]
struct IdEntry<'a> {
    #[serde(rename = "ID", borrow, default)]
    id: Text<'a>,
}

/// A text field as the record has it; any other JSON value (a number, an object where a string was expected)
/// reads as absent instead of making the whole record unreadable.
#[derive(Default)]
struct Text<'a>(Option<Cow<'a, str>>);

impl Text<'_> {
    fn as_deref(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visit<'a> {
            type Value = Text<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text(Some(Cow::Owned(v))))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Text(None))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Text(None))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Text(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Text(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Text(None))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(Text(None))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                while map
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(Text(None))
            }
        }
        d.deserialize_any(Visit(std::marker::PhantomData))
    }
}

/// The `ID`s of an `Actor` or `Target` list, the first few kept without an allocation (records carry two to four;
/// audit-fetch reads every record through [`Fields`]).
#[derive(Default)]
struct IdList<'a> {
    first: [Option<Cow<'a, str>>; 4],
    more: Vec<Cow<'a, str>>,
}

impl<'a> IdList<'a> {
    fn iter(&self) -> impl Iterator<Item = &str> {
        self.first
            .iter()
            .flatten()
            .chain(self.more.iter())
            .map(|c| c.as_ref())
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for IdList<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visit<'a> {
            type Value = IdList<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of {ID, Type}")
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(IdList::default())
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(IdList::default())
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                while map
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(IdList::default())
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                let mut list = IdList::default();
                let mut n = 0;
                while let Some(entry) = seq.next_element::<IdEntry<'de>>()? {
                    let Some(id) = entry.id.0 else { continue };
                    match list.first.get_mut(n) {
                        Some(slot) => *slot = Some(id),
                        None => list.more.push(id),
                    }
                    n += 1;
                }
                Ok(list)
            }
        }
        d.deserialize_any(Visit(std::marker::PhantomData))
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct InitiatedBy<'a> {
    #[serde(borrow)]
    user: Option<Resource<'a>>,
    #[serde(borrow)]
    app: Option<App<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Resource<'a> {
    #[serde(borrow)]
    id: Text<'a>,
    #[serde(rename = "userPrincipalName", borrow)]
    user_principal_name: Text<'a>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct App<'a> {
    #[serde(rename = "displayName", borrow)]
    display_name: Text<'a>,
    #[serde(rename = "appId", borrow)]
    app_id: Text<'a>,
    #[serde(rename = "servicePrincipalId", borrow)]
    service_principal_id: Text<'a>,
}

impl<'a> Fields<'a> {
    /// Reads a record's text; None unless it is a JSON object.
    pub fn of(text: &'a str) -> Option<Self> {
        Self::of_bytes(text.as_bytes())
    }

    /// [`Fields::of`] over bytes.
    fn of_bytes(bytes: &'a [u8]) -> Option<Self> {
        // A derived struct would also take a JSON array, field by field.
        let object = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
        object.then(|| serde_json::from_slice(bytes).ok()).flatten()
    }

    /// Calls `each(is_actor, name)` for every name the record holds: who did it (`true`) and to whom (`false`).
    fn names(&self, mut each: impl FnMut(bool, &str)) {
        let mut one = |actor: bool, name: Option<&str>| {
            if let Some(n) = name.map(str::trim).filter(|n| !n.is_empty()) {
                each(actor, n);
            }
        };
        one(true, self.user_id.as_deref());
        for a in self.actor.iter() {
            one(true, Some(a));
        }
        one(false, self.object_id.as_deref());
        for t in self.target.iter() {
            one(false, Some(t));
        }
        if let Some(by) = &self.initiated_by {
            if let Some(u) = &by.user {
                one(true, u.id.as_deref());
                one(true, u.user_principal_name.as_deref());
            }
            if let Some(app) = &by.app {
                one(true, app.display_name.as_deref());
                one(true, app.app_id.as_deref());
                one(true, app.service_principal_id.as_deref());
            }
        }
        for r in self.target_resources.iter().flatten() {
            one(false, r.id.as_deref());
            one(false, r.user_principal_name.as_deref());
        }
    }

    /// The record's time text (`CreationTime` or `activityDateTime`).
    pub fn time(&self) -> Option<&str> {
        self.creation_time
            .as_deref()
            .or(self.activity_date_time.as_deref())
    }

    /// The record's operation (`Operation` or `activityDisplayName`).
    pub fn operation(&self) -> Option<&str> {
        self.operation
            .as_deref()
            .or(self.activity_display_name.as_deref())
    }
}

impl RecordFacts {
    /// Reads one archived line (one record). None when it is not a JSON object.
    pub fn read(line: &[u8]) -> Option<Self> {
        let f = Fields::of_bytes(line)?;
        let mut actors = Vec::new();
        let mut subjects = Vec::new();
        f.names(|actor, name| {
            let list = if actor { &mut actors } else { &mut subjects };
            for key in keys_of(name) {
                if !list.contains(&key) {
                    list.push(key);
                }
            }
        });
        Some(Self {
            at: f.time().and_then(normal_time),
            operation: f.operation().map(operation_key),
            actors,
            subjects,
        })
    }

    /// Whether the record meets the query's record conditions (source and content type are the object's).
    pub fn matches(&self, q: &AuditQuery) -> bool {
        let user = q.user.as_deref().map(name_key);
        let actor = q.actor.as_deref().map(name_key);
        user.is_none_or(|u| self.subjects.contains(&u) || self.actors.contains(&u))
            && actor.is_none_or(|a| self.actors.contains(&a))
            && q.operation
                .as_deref()
                .is_none_or(|o| self.operation.as_deref() == Some(operation_key(o).as_str()))
            && in_range(self.at.as_deref(), q.from, q.to)
    }
}

/// The keys a name is matched by: lower case; a Management API target written `User_<guid>` is also its bare id.
fn keys_of(name: &str) -> impl Iterator<Item = String> {
    let key = name_key(name);
    let bare = key
        .strip_prefix("user_")
        .filter(|id| id.len() == 36)
        .map(str::to_string);
    bare.into_iter().chain(std::iter::once(key))
}

/// [`name_key`] into a reused buffer (an index build lower-cases every name of every record).
fn name_key_into(buf: &mut String, name: &str) {
    buf.clear();
    let name = name.trim();
    if name.is_ascii() {
        buf.push_str(name);
        buf.make_ascii_lowercase();
    } else {
        buf.extend(name.chars().flat_map(char::to_lowercase));
    }
}

fn name_key(name: &str) -> String {
    name.trim().to_lowercase()
}

/// An operation as matched: directory audits say `Update user`, the Management API `Update user.`.
pub(crate) fn operation_key(op: &str) -> String {
    op.trim().trim_end_matches('.').trim_end().to_lowercase()
}

/// `YYYY-MM-DDTHH:MM:SS` of a record's time text, or None when it is not one.
fn normal_time(t: &str) -> Option<String> {
    time_head(t).map(Cow::into_owned)
}

/// [`normal_time`], borrowed when the text already has that form.
fn time_head(t: &str) -> Option<Cow<'_, str>> {
    let head = t.get(..19)?;
    let b = head.as_bytes();
    if !(b[4] == b'-' && b[7] == b'-' && b[13] == b':') {
        return None;
    }
    match b[10] {
        b'T' => Some(Cow::Borrowed(head)),
        b' ' => Some(Cow::Owned(head.replacen(' ', "T", 1))),
        _ => None,
    }
}

fn query_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S").to_string()
}

/// Whether a record time is in `[from, to)`; a record without a time is never in a bounded range.
fn in_range(at: Option<&str>, from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>) -> bool {
    if from.is_none() && to.is_none() {
        return true;
    }
    let Some(at) = at else {
        return false;
    };
    from.is_none_or(|f| at >= query_time(f).as_str())
        && to.is_none_or(|t| at < query_time(t).as_str())
}

/// What an archive object holds, in brief: enough to skip it for a query it cannot answer. It is derived from the
/// object, rebuilt from it when missing, and never the only copy of anything.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ObjectIndex {
    /// Format version.
    pub version: u32,
    /// The object it describes.
    pub object: String,
    /// Records in it.
    pub records: usize,
    /// The earliest record time (`YYYY-MM-DDTHH:MM:SS`).
    pub first: Option<String>,
    /// The latest record time.
    pub last: Option<String>,
    /// Whether some record has no readable time (then no time range excludes the object).
    pub untimed: bool,
    /// Every operation in it (as matched).
    pub operations: Vec<String>,
    /// Every actor and subject name in it.
    pub names: Bloom,
}

/// The index format this build writes and reads; an index of another version is rebuilt.
pub const INDEX_VERSION: u32 = 1;

impl ObjectIndex {
    /// Indexes an object's records, given as their lines.
    pub fn build<'a>(object: &str, lines: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let mut builder = IndexBuilder::default();
        for line in lines {
            match Fields::of_bytes(line) {
                Some(f) => builder.add(&f),
                // A line that is not a record still counts: it can never match, so it narrows nothing.
                None => builder.add_unreadable(),
            }
        }
        builder.finish(object)
    }

    /// False only when no record of the object can match the query.
    pub fn may_match(&self, q: &AuditQuery) -> bool {
        let names_ok = [&q.user, &q.actor]
            .into_iter()
            .flatten()
            .all(|n| self.names.may_contain(&name_key(n)));
        let op_ok = q
            .operation
            .as_deref()
            .is_none_or(|o| self.operations.contains(&operation_key(o)));
        let time_ok = self.untimed
            || match (&self.first, &self.last) {
                (Some(first), Some(last)) => {
                    q.from
                        .is_none_or(|f| last.as_str() >= query_time(f).as_str())
                        && q.to.is_none_or(|t| first.as_str() < query_time(t).as_str())
                }
                // Nothing timed and nothing untimed: the object holds no record that can match a range.
                _ => q.from.is_none() && q.to.is_none(),
            };
        names_ok && op_ok && time_ok
    }
}

/// An [`ObjectIndex`] being built record by record. Names are kept as hashes while reading (no string per name):
/// audit-fetch indexes every record it archives, from the same borrowed view it reads the record's id through.
#[derive(Debug, Default)]
pub struct IndexBuilder {
    records: usize,
    first: Option<String>,
    last: Option<String>,
    untimed: bool,
    operations: BTreeSet<String>,
    names: HashSet<(u64, u64), BuildHasherDefault<HashedAlready>>,
    buf: String,
}

/// The set of name hashes needs no hashing of its own: its keys are hashes already.
#[derive(Default)]
struct HashedAlready(u64);

impl Hasher for HashedAlready {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }
}

impl IndexBuilder {
    /// Adds a record.
    pub fn add(&mut self, f: &Fields) {
        self.records += 1;
        match f.time().and_then(time_head) {
            Some(at) => {
                if self.first.as_deref().is_none_or(|f| at.as_ref() < f) {
                    self.first = Some(at.to_string());
                }
                if self.last.as_deref().is_none_or(|l| at.as_ref() > l) {
                    self.last = Some(at.to_string());
                }
            }
            None => self.untimed = true,
        }
        let buf = &mut self.buf;
        if let Some(op) = f.operation() {
            // As `operation_key`, into the reused buffer: most records repeat an operation already seen.
            name_key_into(buf, op.trim().trim_end_matches('.'));
            if !self.operations.contains(buf.as_str()) {
                self.operations.insert(buf.clone());
            }
        }
        let names = &mut self.names;
        f.names(|_, name| {
            name_key_into(buf, name);
            names.insert(Bloom::hashes(buf));
            if let Some(id) = buf.strip_prefix("user_").filter(|id| id.len() == 36) {
                names.insert(Bloom::hashes(id));
            }
        });
    }

    /// Counts a record that could not be read (it can never match).
    pub fn add_unreadable(&mut self) {
        self.records += 1;
    }

    /// The index of `object`.
    pub fn finish(self, object: &str) -> ObjectIndex {
        let mut bloom = Bloom::with_capacity(self.names.len());
        for (h1, h2) in self.names {
            bloom.insert_hashes(h1, h2);
        }
        ObjectIndex {
            version: INDEX_VERSION,
            object: object.to_string(),
            records: self.records,
            first: self.first,
            last: self.last,
            untimed: self.untimed,
            operations: self.operations.into_iter().collect(),
            names: bloom,
        }
    }
}

/// A Bloom filter of names: about 1 % false positives at ten bits a name, never a false negative. Hashes are our
/// own ([`word_hash`]): stable across builds and platforms, so an index written by one version is read by the next.
#[derive(Debug, Clone, PartialEq)]
pub struct Bloom {
    bits: Vec<u64>,
    hashes: u32,
}

impl Bloom {
    /// A filter sized for `n` names.
    pub fn with_capacity(n: usize) -> Self {
        let words = (n * 10).div_ceil(64).max(4);
        Self {
            bits: vec![0; words],
            hashes: 7,
        }
    }

    /// The two hashes a name's bit positions derive from (double hashing: positions h1 + i·h2).
    fn hashes(name: &str) -> (u64, u64) {
        let h = word_hash(name.as_bytes());
        (mix(h), mix(h ^ 0x9e37_79b9_7f4a_7c15) | 1)
    }

    fn positions(&self, (h1, h2): (u64, u64)) -> impl Iterator<Item = usize> + use<> {
        let m = (self.bits.len() * 64) as u64;
        (0..u64::from(self.hashes)).map(move |i| (h1.wrapping_add(i.wrapping_mul(h2)) % m) as usize)
    }

    fn insert_hashes(&mut self, h1: u64, h2: u64) {
        for p in self.positions((h1, h2)) {
            self.bits[p / 64] |= 1 << (p % 64);
        }
    }

    /// Adds a name.
    pub fn insert(&mut self, name: &str) {
        let (h1, h2) = Self::hashes(name);
        self.insert_hashes(h1, h2);
    }

    /// False only when the name was never added.
    pub(crate) fn may_contain(&self, name: &str) -> bool {
        self.positions(Self::hashes(name))
            .all(|p| self.bits[p / 64] & (1 << (p % 64)) != 0)
    }
}

/// A hash of a name eight bytes at a time (audit-fetch hashes every name of every record it archives). Written
/// here, not taken from std, because an index must read the same in every later version and on every platform.
fn word_hash(bytes: &[u8]) -> u64 {
    let mut h = bytes.len() as u64;
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        let w = u64::from_le_bytes(w.try_into().unwrap_or([0; 8]));
        h = (h.rotate_left(5) ^ w).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    let mut tail = [0u8; 8];
    tail[..words.remainder().len()].copy_from_slice(words.remainder());
    (h.rotate_left(5) ^ u64::from_le_bytes(tail)).wrapping_mul(0x517c_c1b7_2722_0a95)
}

/// MurmurHash3's finaliser: every input bit reaches every output bit.
fn mix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// Stored as `{"hashes": 7, "bits": "<base64 of the little-endian words>"}`.
#[derive(Serialize, Deserialize)]
struct StoredBloom {
    hashes: u32,
    bits: String,
}

impl Serialize for Bloom {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let bytes: Vec<u8> = self.bits.iter().flat_map(|w| w.to_le_bytes()).collect();
        StoredBloom {
            hashes: self.hashes,
            bits: base64::engine::general_purpose::STANDARD.encode(bytes),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Bloom {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let stored = StoredBloom::deserialize(d)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(stored.bits)
            .map_err(D::Error::custom)?;
        if bytes.is_empty() || bytes.len() % 8 != 0 || !(1..=16).contains(&stored.hashes) {
            return Err(D::Error::custom("not a Bloom filter"));
        }
        let bits = bytes
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
            .collect();
        Ok(Self {
            bits,
            hashes: stored.hashes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UAL: &str = r#"{"Actor":[{"ID":"howard@fluencysecurity.com","Type":5}],"CreationTime":"2022-08-29T20:57:06","Id":"a1","ObjectId":"emily@fluencysecurity.com","Operation":"Update user.","Target":[{"ID":"User_3f2a6b1e-0c5d-4e7f-9a8b-1c2d3e4f5a6b","Type":2},{"ID":"emily@fluencysecurity.com","Type":5}],"UserId":"howard@fluencysecurity.com"}"#;
    const DIRECTORY: &str = r#"{"id":"d1","activityDateTime":"2018-01-09T21:20:02.7215374Z","activityDisplayName":"Add member to group","initiatedBy":{"user":null,"app":{"displayName":"Provisioning","appId":"11111111-2222-3333-4444-555555555555"}},"targetResources":[{"id":"ef7e527d-6c92-4234-8c6d-cf6fdfb57f95","type":"Group"},{"id":"1f0e98f5-3161-4c6b-9b50-d488572f2bb7","userPrincipalName":"Example@contoso.com","type":"User"}]}"#;

    fn at(t: &str) -> Option<DateTime<Utc>> {
        Some(t.parse().expect("time"))
    }

    #[test]
    fn both_shapes_say_who_did_what_to_whom_and_when() {
        let ual = RecordFacts::read(UAL.as_bytes()).expect("ual");
        assert_eq!(ual.at.as_deref(), Some("2022-08-29T20:57:06"));
        assert_eq!(ual.operation.as_deref(), Some("update user"));
        assert_eq!(ual.actors, ["howard@fluencysecurity.com"]);
        assert!(
            ual.subjects
                .contains(&"3f2a6b1e-0c5d-4e7f-9a8b-1c2d3e4f5a6b".to_string())
        );
        assert!(
            ual.subjects
                .contains(&"emily@fluencysecurity.com".to_string())
        );
        let dir = RecordFacts::read(DIRECTORY.as_bytes()).expect("directory");
        assert_eq!(dir.at.as_deref(), Some("2018-01-09T21:20:02"));
        assert_eq!(dir.operation.as_deref(), Some("add member to group"));
        assert!(dir.actors.contains(&"provisioning".to_string()));
        assert!(dir.subjects.contains(&"example@contoso.com".to_string()));
        assert!(RecordFacts::read(b"[1,2]").is_none());
        // Odd shapes (a number where a name was expected, a string list) read as absent, not as unreadable.
        let odd = RecordFacts::read(
            br#"{"Id":7,"CreationTime":"2026-11-21T09:00:00","Operation":"Update user.","UserId":42,"Actor":"x","ObjectId":{"a":1},"Target":[{"ID":"bob@x.com"},{"Type":2}]}"#,
        )
        .expect("odd but a record");
        assert_eq!(odd.subjects, ["bob@x.com"]);
        assert!(odd.actors.is_empty());
        assert_eq!(odd.at.as_deref(), Some("2026-11-21T09:00:00"));
    }

    #[test]
    fn queries_match_names_without_case_operations_without_the_dot_and_half_open_ranges() {
        let ual = RecordFacts::read(UAL.as_bytes()).expect("ual");
        let q = |f: fn(&mut AuditQuery)| {
            let mut q = AuditQuery::default();
            f(&mut q);
            ual.matches(&q)
        };
        assert!(q(|q| q.user = Some("Emily@FluencySecurity.com".into())));
        assert!(q(
            |q| q.user = Some("3F2A6B1E-0C5D-4E7F-9A8B-1C2D3E4F5A6B".into())
        ));
        assert!(q(|q| q.user = Some("howard@fluencysecurity.com".into())));
        assert!(!q(|q| q.user = Some("nobody@fluencysecurity.com".into())));
        assert!(q(|q| q.actor = Some("howard@fluencysecurity.com".into())));
        assert!(!q(|q| q.actor = Some("emily@fluencysecurity.com".into())));
        assert!(q(|q| q.operation = Some("update user".into())));
        assert!(!q(|q| q.operation = Some("Change user license".into())));
        assert!(q(|q| q.from = at("2022-08-29T20:57:06Z")));
        assert!(!q(|q| q.to = at("2022-08-29T20:57:06Z")));
        assert!(q(|q| q.to = at("2022-08-29T20:57:07Z")));
    }

    #[test]
    fn an_index_never_skips_an_object_that_holds_a_match() {
        let lines = [UAL.as_bytes(), DIRECTORY.as_bytes(), b"not json".as_slice()];
        let index = ObjectIndex::build("k", lines);
        assert_eq!(index.records, 3);
        let stored: ObjectIndex =
            serde_json::from_str(&serde_json::to_string(&index).expect("json")).expect("back");
        assert_eq!(stored, index);
        for q in [
            AuditQuery {
                user: Some("example@contoso.com".into()),
                ..Default::default()
            },
            AuditQuery {
                actor: Some("Howard@fluencysecurity.com".into()),
                operation: Some("Update user".into()),
                ..Default::default()
            },
            AuditQuery {
                from: at("2018-01-09T00:00:00Z"),
                to: at("2018-01-10T00:00:00Z"),
                ..Default::default()
            },
        ] {
            assert!(stored.may_match(&q), "{q:?}");
        }
        for q in [
            AuditQuery {
                operation: Some("Delete user".into()),
                ..Default::default()
            },
            AuditQuery {
                from: at("2023-01-01T00:00:00Z"),
                ..Default::default()
            },
            AuditQuery {
                to: at("2018-01-09T00:00:00Z"),
                ..Default::default()
            },
        ] {
            assert!(!stored.may_match(&q), "{q:?}");
        }
        // Names not added are rejected nearly always (1 % false positives at this size).
        let misses = (0..1000)
            .filter(|i| {
                stored.may_match(&AuditQuery {
                    user: Some(format!("user{i}@example.com")),
                    ..Default::default()
                })
            })
            .count();
        assert!(misses < 50, "{misses} false positives in 1000");
    }
}
