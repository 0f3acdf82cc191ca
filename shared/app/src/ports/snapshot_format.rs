//! How a license-check snapshot is stored: a compact binary document, the same bytes in every store.
//!
//! Why not JSON: every run of a 100,000-user tenant loads the previous snapshot and saves a new one. As gzipped JSON
//! that was about half a second of decoding and a tenth of encoding, most of an incremental run, which otherwise
//! reads only the few users that changed. This format is read field by field without parsing text: strings are
//! length-prefixed, the GUIDs that repeat across users (SKU, plan and group ids, unknown states and error codes) are
//! kept once in a table and referred to by number, and a user's booleans share one byte. The small, rarely read part
//! (tenant, times, SKUs, delta link, recent removals) stays JSON in the header, so it can grow fields freely.
//!
//! Documents written by earlier versions (gzipped JSON) are still read: a store that already holds one goes on.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::assignment::{AssignmentError, AssignmentState};
use crate::domain::snapshot::{
    PreviousRun, PreviousUsers, RecentRemoval, SkuSnap, Snapshot, SnapshotMark, StateRef,
    UserBuilder, UserHead, UserRef, Users, Word,
};
use crate::error::StoreError;

/// The first bytes of a binary snapshot (a gzip document starts with `1f 8b`, so the two never collide).
const MAGIC: &[u8; 8] = b"LWSNAP1\n";

const ENABLED: u8 = 1;
const GUEST: u8 = 2;
const MAILBOX: u8 = 4;
const EXCHANGE: u8 = 8;
const NAME: u8 = 16;
const MAIL: u8 = 32;
const MAIL_IS_UPN: u8 = 64;
const CREATED: u8 = 128;

/// The part of a snapshot that is not per user, as written.
#[derive(Serialize)]
struct HeaderOut<'a> {
    tenant_id: &'a str,
    taken_at: DateTime<Utc>,
    skus: &'a [SkuSnap],
    delta_link: &'a Option<String>,
    full_scan_at: Option<DateTime<Utc>>,
    recent_removals: &'a [RecentRemoval],
}

/// The part of a snapshot that is not per user, as read.
#[derive(Deserialize)]
struct Header {
    tenant_id: String,
    taken_at: DateTime<Utc>,
    #[serde(default)]
    skus: Vec<SkuSnap>,
    #[serde(default)]
    delta_link: Option<String>,
    #[serde(default)]
    full_scan_at: Option<DateTime<Utc>>,
    #[serde(default)]
    recent_removals: Vec<RecentRemoval>,
}

/// True when `bytes` is a binary snapshot (else it is an earlier version's gzipped JSON).
pub(crate) fn is_binary(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
}

/// Encodes a snapshot: the magic, then the body gzipped (at the fast level: a 100,000-user body of about 10 MB
/// becomes about 2 MB in some 15 ms, five times less to write to SQLite or S3 and to read back).
pub fn encode(snapshot: &Snapshot) -> Result<Vec<u8>, StoreError> {
    let corrupt = |e: std::io::Error| StoreError::Corrupt(format!("compressing a snapshot: {e}"));
    let strings = Strings::of(snapshot);
    let mut out = Vec::with_capacity(strings.body_estimate / 4);
    out.extend_from_slice(MAGIC);
    let mut gz = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
    write_body(snapshot, strings, &mut gz).map_err(corrupt)?;
    gz.finish().map_err(corrupt)
}

/// Decodes a whole snapshot (binary, or an earlier version's gzipped JSON).
pub fn decode(bytes: &[u8]) -> Result<Snapshot, StoreError> {
    match is_binary(bytes) {
        true => read_snapshot(&gunzip(&bytes[MAGIC.len()..])?),
        false => crate::ports::codec::gunzip_json(bytes),
    }
}

/// Decodes what a run needs of a previous snapshot (ids, UPNs, SKU ids, the Exchange flag), skipping the rest.
pub fn decode_previous(bytes: &[u8]) -> Result<PreviousRun, StoreError> {
    match is_binary(bytes) {
        true => read_previous(&gunzip(&bytes[MAGIC.len()..])?),
        false => crate::ports::codec::gunzip_json(bytes),
    }
}

/// Decodes only where the snapshot's change tracking stands: the header, at the start of the compressed body, is
/// all that is decompressed.
pub fn decode_mark(bytes: &[u8]) -> Result<SnapshotMark, StoreError> {
    if !is_binary(bytes) {
        let previous: PreviousRun = crate::ports::codec::gunzip_json(bytes)?;
        return Ok(SnapshotMark {
            taken_at: previous.taken_at,
            delta_link: previous.delta_link,
            full_scan_at: previous.full_scan_at,
        });
    }
    let damaged =
        |e: std::io::Error| StoreError::Corrupt(format!("snapshot document damaged: {e}"));
    let mut gz = flate2::read::GzDecoder::new(&bytes[MAGIC.len()..]);
    let mut len = 0u64;
    for shift in (0..64).step_by(7) {
        let mut b = [0u8];
        std::io::Read::read_exact(&mut gz, &mut b).map_err(damaged)?;
        len |= u64::from(b[0] & 0x7f) << shift;
        if b[0] < 0x80 {
            break;
        }
    }
    let len = usize::try_from(len)
        .ok()
        .filter(|&n| n <= bytes.len().saturating_mul(64))
        .ok_or_else(|| StoreError::Corrupt("snapshot document damaged: header length".into()))?;
    let mut header = vec![0u8; len];
    std::io::Read::read_exact(&mut gz, &mut header).map_err(damaged)?;
    let header: Header = serde_json::from_slice(&header)
        .map_err(|e| StoreError::Corrupt(format!("snapshot header is not valid: {e}")))?;
    Ok(SnapshotMark {
        taken_at: header.taken_at,
        delta_link: header.delta_link,
        full_scan_at: header.full_scan_at,
    })
}

/// Room reserved for a decompressed body: the body's own size estimate, and never less than glibc's largest
/// threshold for giving a block a mapping of its own (32 MiB on 64-bit systems). glibc raises that threshold to the
/// size of any mapped block that is freed, up to its largest; freeing a 10 MB body raised it to 10 MB, and the users a
/// run reads next then grew on the heap, each growth a copy whose old place stayed resident. A larger block leaves
/// the threshold alone; the part of it never written costs no memory.
const BODY_ROOM: usize = 33 << 20;

fn gunzip(bytes: &[u8]) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::with_capacity(bytes.len().saturating_mul(5).max(BODY_ROOM));
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(bytes), &mut out)
        .map_err(|e| StoreError::Corrupt(format!("snapshot document damaged: {e}")))?;
    Ok(out)
}

/// The uncompressed body: the header, the table of repeated strings, the users.
#[cfg(any(test, feature = "fuzz"))]
fn body(snapshot: &Snapshot) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::new();
    write_body(snapshot, Strings::of(snapshot), &mut out)
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(out)
}

/// How many users are encoded at a time before they are handed to the compressor.
const CHUNK: usize = 1024;

/// The table of repeated strings, in the order the users name them, and how large the body will be.
struct Strings<'a> {
    writer: Writer<'a>,
    body_estimate: usize,
}

impl<'a> Strings<'a> {
    /// Encodes every user once, a chunk at a time, keeping only the table: the table comes before the users in the
    /// body, and encoding them twice costs a few milliseconds where holding a 100,000-user body (about 10 MB) until
    /// the table is known cost that much more memory at the moment a run holds the most.
    fn of(snapshot: &'a Snapshot) -> Self {
        let mut writer = Writer::default();
        let mut body_estimate = 64;
        let mut users = snapshot.users.iter().peekable();
        while users.peek().is_some() {
            for u in users.by_ref().take(CHUNK) {
                writer.user(u);
            }
            body_estimate += writer.out.len();
            writer.out.clear();
        }
        body_estimate += writer.table_bytes;
        Strings {
            writer,
            body_estimate,
        }
    }
}

/// Writes the body to `sink`: the header with the table, then the users a chunk at a time (the table already
/// holds every string they name).
fn write_body<'a>(
    snapshot: &'a Snapshot,
    strings: Strings<'a>,
    sink: &mut impl std::io::Write,
) -> std::io::Result<()> {
    let header = serde_json::to_vec(&HeaderOut {
        tenant_id: &snapshot.tenant_id,
        taken_at: snapshot.taken_at,
        skus: &snapshot.skus,
        delta_link: &snapshot.delta_link,
        full_scan_at: snapshot.full_scan_at,
        recent_removals: &snapshot.recent_removals,
    })?;
    let mut users = strings.writer;
    let mut head = Vec::with_capacity(64 + header.len() + users.table_bytes);
    put_bytes(&mut head, &header);
    put_varint(&mut head, users.table.len() as u64);
    for s in &users.table {
        put_bytes(&mut head, s.as_bytes());
    }
    sink.write_all(&head)?;
    put_varint(&mut users.out, snapshot.users.len() as u64);
    let mut all = snapshot.users.iter().peekable();
    while all.peek().is_some() {
        for u in all.by_ref().take(CHUNK) {
            users.user(u);
        }
        sink.write_all(&users.out)?;
        users.out.clear();
    }
    // The count of a snapshot without users is still in the buffer.
    sink.write_all(&users.out)
}

fn read_snapshot(body: &[u8]) -> Result<Snapshot, StoreError> {
    // The names take most of a body; room left untouched costs no memory, growing would copy.
    let start = |n| (Users::with_capacity(n, body.len() / 4 * 3), Vec::new());
    let (header, (mut users, _)) = read_users(body, start, Reader::user)?;
    // Written in id order; checked in one pass, so a damaged store cannot hand a run unsorted users.
    users.sort_and_dedup();
    Ok(Snapshot {
        tenant_id: header.tenant_id,
        taken_at: header.taken_at,
        users,
        skus: header.skus,
        delta_link: header.delta_link,
        full_scan_at: header.full_scan_at,
        recent_removals: header.recent_removals,
    })
}

fn read_previous(body: &[u8]) -> Result<PreviousRun, StoreError> {
    // The ids and UPNs take well over half of a body; room left untouched costs no memory, growing would copy.
    let start = |n| PreviousUsers::with_capacity(n, body.len() / 4 * 3);
    let (header, users) = read_users(body, start, Reader::previous_user)?;
    Ok(PreviousRun {
        taken_at: header.taken_at,
        delta_link: header.delta_link,
        full_scan_at: header.full_scan_at,
        recent_removals: header.recent_removals,
        users,
    })
}

/// The header and every user of a body, each user read by `user` into what `start` makes for their number.
fn read_users<'a, U>(
    body: &'a [u8],
    start: impl FnOnce(usize) -> U,
    user: impl Fn(&mut Reader<'a>, &Table<'a>, &mut U) -> Result<(), StoreError>,
) -> Result<(Header, U), StoreError> {
    let mut r = Reader { buf: body, pos: 0 };
    let header = r.header()?;
    let table = r.table()?;
    let n = r.count()?;
    let mut users = start(n);
    for _ in 0..n {
        user(&mut r, &table, &mut users)?;
    }
    r.end()?;
    Ok((header, users))
}

/// Writes users, interning the strings that repeat across them.
#[derive(Default)]
struct Writer<'a> {
    out: Vec<u8>,
    table: Vec<&'a str>,
    index: HashMap<&'a str, u32>,
    /// The table number of each of the users' repeated ids, by the id's own number.
    by_word: Vec<Option<u32>>,
    table_bytes: usize,
}

impl<'a> Writer<'a> {
    fn user(&mut self, u: UserRef<'a>) {
        let same_mail = u.mail() == Some(u.upn());
        let flags = [
            (u.account_enabled(), ENABLED),
            (u.guest(), GUEST),
            (u.mailbox(), MAILBOX),
            (u.exchange_enabled(), EXCHANGE),
            (u.display_name().is_some(), NAME),
            (u.mail().is_some(), MAIL),
            (same_mail, MAIL_IS_UPN),
            (u.created().is_some(), CREATED),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .fold(0u8, |acc, (_, bit)| acc | bit);
        self.out.push(flags);
        put_bytes(&mut self.out, u.id().as_bytes());
        put_bytes(&mut self.out, u.upn().as_bytes());
        if let Some(name) = u.display_name() {
            put_bytes(&mut self.out, name.as_bytes());
        }
        if let (Some(mail), false) = (u.mail(), same_mail) {
            put_bytes(&mut self.out, mail.as_bytes());
        }
        if let Some(at) = u.created() {
            put_varint(&mut self.out, zigzag(at.timestamp()));
            put_varint(&mut self.out, u64::from(at.timestamp_subsec_nanos()));
        }
        put_varint(&mut self.out, u.licenses().len() as u64);
        for l in u.licenses() {
            self.word(l.sku_word, l.sku_id);
            put_varint(&mut self.out, l.disabled_plans().len() as u64);
            for (w, p) in l.disabled_plan_words() {
                self.word(w, p);
            }
        }
        put_varint(&mut self.out, u.states().len() as u64);
        for s in u.states() {
            self.assignment(s);
        }
    }

    fn assignment(&mut self, s: StateRef<'a>) {
        self.word(s.sku_word, s.sku_id);
        match s.group.zip(s.group_word) {
            Some((g, w)) => {
                let i = self.number(w, g);
                put_varint(&mut self.out, u64::from(i) + 1);
            }
            None => self.out.push(0),
        }
        match s.state {
            AssignmentState::Active => self.out.push(0),
            AssignmentState::ActiveWithError => self.out.push(1),
            AssignmentState::Disabled => self.out.push(2),
            AssignmentState::Error => self.out.push(3),
            AssignmentState::Other(other) => {
                self.out.push(4);
                self.interned(other);
            }
        }
        let code = match s.error {
            None => 0,
            Some(AssignmentError::CountViolation) => 1,
            Some(AssignmentError::MutuallyExclusiveViolation) => 2,
            Some(AssignmentError::DependencyViolation) => 3,
            Some(AssignmentError::ProhibitedInUsageLocationViolation) => 4,
            Some(AssignmentError::UniquenessViolation) => 5,
            Some(AssignmentError::Other) => 6,
            Some(AssignmentError::Unknown) => 7,
            Some(AssignmentError::Code(code)) => {
                self.out.push(8);
                self.interned(code);
                return;
            }
        };
        self.out.push(code);
    }

    /// Writes the table number of one of the users' repeated ids.
    fn word(&mut self, w: Word, s: &'a str) {
        let i = self.number(w, s);
        put_varint(&mut self.out, u64::from(i));
    }

    /// The table number of one of the users' repeated ids: looked up by the id's own number, the text hashed only the
    /// first time (each user names several ids, twice over: the table is built, then the users written).
    fn number(&mut self, w: Word, s: &'a str) -> u32 {
        let i = w.index();
        if i >= self.by_word.len() {
            self.by_word.resize(i + 1, None);
        }
        match self.by_word[i] {
            Some(n) => n,
            None => {
                let n = self.intern(s);
                self.by_word[i] = Some(n);
                n
            }
        }
    }

    /// Writes the table number of `s`.
    fn interned(&mut self, s: &'a str) {
        let i = self.intern(s);
        put_varint(&mut self.out, u64::from(i));
    }

    fn intern(&mut self, s: &'a str) -> u32 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = self.table.len() as u32;
        self.table.push(s);
        self.table_bytes += s.len() + 2;
        self.index.insert(s, i);
        i
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// The strings that repeat across users, as read: borrowed from the body.
struct Table<'a> {
    text: Vec<&'a str>,
}

/// Reads a binary snapshot; every read is checked, so a damaged document is an error, never a panic.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn corrupt(&self, what: &str) -> StoreError {
        StoreError::Corrupt(format!(
            "snapshot document damaged at byte {}: {what}",
            self.pos
        ))
    }

    fn byte(&mut self) -> Result<u8, StoreError> {
        let b = *self
            .buf
            .get(self.pos)
            .ok_or_else(|| self.corrupt("ends early"))?;
        self.pos += 1;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u64, StoreError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(self.corrupt("a number is too long"))
    }

    /// A count of things that follow, each at least one byte: never more than the bytes left.
    fn count(&mut self) -> Result<usize, StoreError> {
        let n = self.varint()?;
        match usize::try_from(n) {
            Ok(n) if n <= self.buf.len() - self.pos => Ok(n),
            _ => Err(self.corrupt("a count exceeds the document")),
        }
    }

    fn bytes(&mut self) -> Result<&'a [u8], StoreError> {
        let n = self.count()?;
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn str(&mut self) -> Result<&'a str, StoreError> {
        let bytes = self.bytes()?;
        std::str::from_utf8(bytes).map_err(|_| self.corrupt("a string is not UTF-8"))
    }

    fn header(&mut self) -> Result<Header, StoreError> {
        let bytes = self.bytes()?;
        serde_json::from_slice(bytes)
            .map_err(|e| self.corrupt(&format!("the header is not valid: {e}")))
    }

    fn table(&mut self) -> Result<Table<'a>, StoreError> {
        let n = self.count()?;
        let text = (0..n).map(|_| self.str()).collect::<Result<Vec<_>, _>>()?;
        Ok(Table { text })
    }

    fn index(&mut self, table: &Table<'a>) -> Result<usize, StoreError> {
        let i = self.varint()?;
        usize::try_from(i)
            .ok()
            .filter(|&i| i < table.text.len())
            .ok_or_else(|| self.corrupt("a table number is out of range"))
    }

    fn entry(&mut self, table: &Table<'a>) -> Result<&'a str, StoreError> {
        self.index(table).map(|i| table.text[i])
    }

    fn end(&self) -> Result<(), StoreError> {
        match self.pos == self.buf.len() {
            true => Ok(()),
            false => Err(self.corrupt("bytes after the last user")),
        }
    }

    /// A user, added to `users`; `words` maps the table's numbers to the users' own as they are first met.
    fn user(
        &mut self,
        table: &Table<'a>,
        (users, words): &mut (Users, Vec<Option<Word>>),
    ) -> Result<(), StoreError> {
        let flags = self.byte()?;
        let id = self.str()?;
        let upn = self.str()?;
        let display_name = match flags & NAME {
            0 => None,
            _ => Some(self.str()?),
        };
        let mail = match (flags & MAIL, flags & MAIL_IS_UPN) {
            (0, _) => None,
            (_, 0) => Some(self.str()?),
            _ => Some(upn),
        };
        let created = match flags & CREATED {
            0 => None,
            _ => Some(self.time()?),
        };
        let mut user = users.start(UserHead {
            id,
            upn,
            display_name,
            mail,
            account_enabled: flags & ENABLED != 0,
            guest: flags & GUEST != 0,
            mailbox: flags & MAILBOX != 0,
            exchange_enabled: flags & EXCHANGE != 0,
            created,
        });
        words.resize(table.text.len(), None);
        let mut word = |i: usize, user: &mut UserBuilder<'_>| {
            *words[i].get_or_insert_with(|| user.word(table.text[i]))
        };
        for _ in 0..self.count()? {
            let sku = self.index(table)?;
            let sku = word(sku, &mut user);
            let mut plans = Vec::new();
            for _ in 0..self.count()? {
                let plan = self.index(table)?;
                plans.push(word(plan, &mut user));
            }
            user.license(sku, plans);
        }
        for _ in 0..self.count()? {
            let a = self.assignment(table)?;
            let (sku, group) = (word(a.sku, &mut user), a.group.map(|g| word(g, &mut user)));
            let kind = user.kind(&a.state, a.error.as_ref());
            user.state(sku, group, kind);
        }
        user.push();
        Ok(())
    }

    /// A user as [`PreviousUsers`] keep one: the fields a run compares with, the rest read past.
    fn previous_user(
        &mut self,
        table: &Table<'a>,
        users: &mut PreviousUsers,
    ) -> Result<(), StoreError> {
        let flags = self.byte()?;
        let (id, upn) = (self.str()?, self.str()?);
        if flags & NAME != 0 {
            self.bytes()?;
        }
        if flags & MAIL != 0 && flags & MAIL_IS_UPN == 0 {
            self.bytes()?;
        }
        if flags & CREATED != 0 {
            self.time()?;
        }
        let n = self.count()?;
        let mut licenses = Vec::with_capacity(n);
        for _ in 0..n {
            licenses.push(self.entry(table)?);
            for _ in 0..self.count()? {
                self.entry(table)?;
            }
        }
        for _ in 0..self.count()? {
            self.assignment(table)?;
        }
        users.push(id, upn, flags & EXCHANGE != 0, licenses);
        Ok(())
    }

    fn time(&mut self) -> Result<DateTime<Utc>, StoreError> {
        let secs = unzigzag(self.varint()?);
        let nanos = u32::try_from(self.varint()?).map_err(|_| self.corrupt("bad nanoseconds"))?;
        DateTime::from_timestamp(secs, nanos).ok_or_else(|| self.corrupt("a time is out of range"))
    }

    fn assignment(&mut self, table: &Table<'a>) -> Result<Assignment, StoreError> {
        let sku = self.index(table)?;
        let group = match self.varint()? {
            0 => None,
            i => Some(
                usize::try_from(i - 1)
                    .ok()
                    .filter(|&i| i < table.text.len())
                    .ok_or_else(|| self.corrupt("a group number is out of range"))?,
            ),
        };
        let state = match self.byte()? {
            0 => AssignmentState::Active,
            1 => AssignmentState::ActiveWithError,
            2 => AssignmentState::Disabled,
            3 => AssignmentState::Error,
            4 => AssignmentState::Other(self.entry(table)?.to_string()),
            _ => return Err(self.corrupt("unknown assignment state")),
        };
        let error = match self.byte()? {
            0 => None,
            1 => Some(AssignmentError::CountViolation),
            2 => Some(AssignmentError::MutuallyExclusiveViolation),
            3 => Some(AssignmentError::DependencyViolation),
            4 => Some(AssignmentError::ProhibitedInUsageLocationViolation),
            5 => Some(AssignmentError::UniquenessViolation),
            6 => Some(AssignmentError::Other),
            7 => Some(AssignmentError::Unknown),
            8 => Some(AssignmentError::Code(self.entry(table)?.to_string())),
            _ => return Err(self.corrupt("unknown assignment error")),
        };
        Ok(Assignment {
            sku,
            group,
            state,
            error,
        })
    }
}

/// An assignment state as read: its SKU and group as numbers of the table.
struct Assignment {
    sku: usize,
    group: Option<usize>,
    state: AssignmentState,
    error: Option<AssignmentError>,
}

#[cfg(any(test, feature = "fuzz"))]
use crate::domain::snapshot::{AssignmentSnap, LicenseSnap, UserNames, UserSnapshot};

#[cfg(any(test, feature = "fuzz"))]
fn bare_user(id: &str) -> UserSnapshot {
    UserSnapshot::bare(id, &format!("{id}@contoso.com"))
}

/// Every shape a field can take, in a few users (the tests' and the fuzz targets' sample).
#[cfg(any(test, feature = "fuzz"))]
pub(crate) fn varied() -> Snapshot {
    let at = |s: &str| s.parse::<DateTime<Utc>>().expect("time");
    let plain = bare_user("00000000-0000-0000-0000-000000000001");
    let upn = "00000000-0000-0000-0000-000000000002@contoso.com";
    let full = UserSnapshot {
        names: UserNames::new(
            "00000000-0000-0000-0000-000000000002",
            upn,
            Some("Zoë Ångström 山田"),
            Some(upn),
        ),
        account_enabled: false,
        guest: true,
        mailbox: true,
        exchange_enabled: true,
        created: Some(at("2019-03-04T05:06:07.123456789Z")),
        licenses: vec![
            LicenseSnap {
                sku_id: "6fd2c87f-b296-42f0-b197-1e91e994b900".into(),
                disabled_plans: vec!["plan-a".into(), "plan-b".into()],
            },
            LicenseSnap {
                sku_id: "sku-2".into(),
                disabled_plans: vec![],
            },
        ],
        states: vec![
            AssignmentSnap {
                sku_id: "6fd2c87f-b296-42f0-b197-1e91e994b900".into(),
                group: Some("group-1".into()),
                state: AssignmentState::Error,
                error: Some(AssignmentError::CountViolation),
            },
            AssignmentSnap {
                sku_id: "sku-2".into(),
                group: None,
                state: AssignmentState::Other("Pending".into()),
                error: Some(AssignmentError::Code("SomethingNew".into())),
            },
            AssignmentSnap {
                sku_id: "sku-2".into(),
                group: Some("group-1".into()),
                state: AssignmentState::ActiveWithError,
                error: Some(AssignmentError::Other),
            },
        ],
    };
    let other_mail = UserSnapshot {
        names: UserNames::new(
            "00000000-0000-0000-0000-000000000003",
            "00000000-0000-0000-0000-000000000003@contoso.com",
            None,
            Some("shared@contoso.com"),
        ),
        created: Some(at("1960-01-01T00:00:00Z")),
        ..bare_user("")
    };
    Snapshot {
        tenant_id: "tenant".into(),
        taken_at: at("2026-11-21T09:00:00Z"),
        users: [plain, full, other_mail].into_iter().collect(),
        skus: vec![SkuSnap {
            sku_id: "sku-2".into(),
            part_number: "SPE_E3".into(),
            enabled: 10,
            consumed: 9,
            warning: 0,
            suspended: 1,
            plans: vec![("plan-a".into(), "EXCHANGE_S_ENTERPRISE".into())],
        }],
        delta_link: Some("https://graph/users/delta?$deltatoken=x".into()),
        full_scan_at: Some(at("2026-11-21T08:00:00Z")),
        recent_removals: vec![RecentRemoval {
            user_id: "u".into(),
            upn: "u@contoso.com".into(),
            at: at("2026-11-21T08:30:00Z"),
        }],
    }
}

/// The fuzz targets' seeds: a whole stored document and its uncompressed body.
#[cfg(any(test, feature = "fuzz"))]
pub(crate) fn fuzz_seeds() -> Vec<Vec<u8>> {
    let sample = varied();
    [encode(&sample), body(&sample)]
        .into_iter()
        .filter_map(Result::ok)
        .collect()
}

/// The body readers, for the fuzz targets (the whole document's are public).
#[cfg(any(test, feature = "fuzz"))]
pub(crate) fn fuzz_body(b: &[u8]) {
    let _ = read_snapshot(b);
    let _ = read_previous(b);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_reads_back_as_it_was_written() {
        let snapshot = varied();
        let bytes = encode(&snapshot).expect("encode");
        assert!(is_binary(&bytes));
        assert_eq!(decode(&bytes).expect("decode"), snapshot);
        assert_eq!(
            decode_previous(&bytes).expect("previous"),
            PreviousRun::from(&snapshot)
        );
        assert_eq!(
            decode_mark(&bytes).expect("mark"),
            SnapshotMark::from(&snapshot)
        );
        let mut many = varied();
        many.users = (0..3 * CHUNK + 7)
            .map(|i| bare_user(&format!("{i:08}-0000-4000-8000-000000000000")))
            .collect();
        assert_eq!(
            decode(&encode(&many).expect("encode")).expect("decode"),
            many
        );
        let empty = Snapshot {
            users: Users::default(),
            skus: vec![],
            delta_link: None,
            full_scan_at: None,
            recent_removals: vec![],
            ..snapshot
        };
        assert_eq!(
            decode(&encode(&empty).expect("encode")).expect("decode"),
            empty
        );
    }

    #[test]
    fn a_snapshot_stored_by_an_earlier_version_is_still_read() {
        let snapshot = varied();
        let legacy = crate::ports::codec::gzip_json(&snapshot).expect("gzip json");
        assert!(!is_binary(&legacy));
        assert_eq!(decode(&legacy).expect("decode"), snapshot);
        assert_eq!(
            decode_mark(&legacy).expect("mark"),
            SnapshotMark::from(&snapshot)
        );
        assert_eq!(
            decode_previous(&legacy).expect("previous"),
            PreviousRun::from(&snapshot)
        );
    }

    #[test]
    fn a_damaged_document_is_an_error_not_a_panic() {
        let bytes = encode(&varied()).expect("encode");
        for len in 0..bytes.len() {
            let _ = decode_mark(&bytes[..len]);
            assert!(decode(&bytes[..len]).is_err(), "cut at {len}");
            assert!(decode_previous(&bytes[..len]).is_err(), "cut at {len}");
        }
        let mut flipped = bytes.clone();
        let last = flipped.len() - 9;
        flipped[last] ^= 0x40;
        assert!(
            decode(&flipped).is_err(),
            "gzip's checksum catches a changed byte"
        );
        // The body's reader checks every read: cut anywhere it is refused, and any byte changed either reads (to some
        // snapshot) or is refused; it never panics.
        let body = body(&varied()).expect("body");
        for len in 0..body.len() {
            assert!(read_snapshot(&body[..len]).is_err(), "cut at {len}");
            assert!(read_previous(&body[..len]).is_err(), "cut at {len}");
        }
        let mut longer = body.clone();
        longer.push(0);
        assert!(read_snapshot(&longer).is_err());
        for i in 0..body.len() {
            for flip in [0x01, 0x80, 0xff] {
                let mut damaged = body.clone();
                damaged[i] ^= flip;
                let _ = read_snapshot(&damaged);
                let _ = read_previous(&damaged);
            }
        }
    }

    #[test]
    fn numbers_and_times_survive_their_encoding() {
        for v in [0i64, 1, -1, i64::MAX, i64::MIN, 1_700_000_000, -86_400] {
            assert_eq!(unzigzag(zigzag(v)), v);
        }
        let mut out = Vec::new();
        for v in [0u64, 127, 128, 300, u64::MAX] {
            out.clear();
            put_varint(&mut out, v);
            let mut r = Reader { buf: &out, pos: 0 };
            assert_eq!(r.varint().expect("varint"), v);
            assert_eq!(r.pos, out.len());
        }
    }
}
