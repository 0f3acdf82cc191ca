//! A snapshot's users in a few flat buffers.
//!
//! A run holds every user of the tenant at once (100,000 and more). As a struct with a string, two vectors and a
//! string per group assignment each, they took about 360 bytes and four allocations a user, the largest part of a
//! run's memory, and a stored snapshot was decoded into 400,000 allocations. Here a user is one fixed-size row;
//! names live in one string, licences and assignment states in two vectors of rows, and the ids that repeat across
//! users (SKUs, plans, groups) once each in a table: about 150 bytes a user and no allocation of its own. Users are
//! read through borrowed views ([`UserRef`]); the owned [`UserSnapshot`] is what is added and taken out.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{AssignmentSnap, LicenseSnap, UserNames, UserSnapshot};
use crate::domain::assignment::{AssignmentError, AssignmentState};

/// The users of a snapshot, sorted by id, each once.
#[derive(Clone, Default)]
pub struct Users {
    /// Every user's id, UPN, display name and mail, one after the other.
    text: String,
    /// One row a user, in id order.
    rows: Vec<Row>,
    /// Every user's licences, one user's after the other.
    licenses: Vec<LicenseRow>,
    /// Every licence's disabled plans.
    plans: Vec<Word>,
    /// Every user's assignment states.
    states: Vec<StateRow>,
    /// The ids that repeat across users, each once.
    words: Vec<Arc<str>>,
    /// Where each of `words` is.
    word_index: HashMap<Arc<str>, Word>,
    /// The assignment states and errors the users' assignments are in, each pair once (a handful).
    kinds: Vec<(AssignmentState, Option<AssignmentError>)>,
}

/// A string of the table of repeated ids (a SKU, plan or group id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Word(u32);

impl Word {
    /// Its place in the table: the users' repeated ids are numbered from 0, each once (an encoder indexes by it
    /// instead of hashing the text).
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// An assignment state with its error, as numbered by [`Users::kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kind(u32);

/// Where a user's parts are in the buffers. Offsets are kept in 32 bits: 4 GiB of names or 4 billion licences are
/// far beyond any tenant (past them a part reads wrongly, never a panic).
#[derive(Clone, Copy)]
struct Row {
    /// Where the id starts in `text`, and where the id, UPN, display name and mail end.
    start: u32,
    ends: [u32; 4],
    licenses: (u32, u32),
    states: (u32, u32),
    created: Option<DateTime<Utc>>,
    flags: Flags,
}

/// A user's yes-or-no facts (and whether its display name and mail exist: an empty one is not a missing one).
#[derive(Clone, Copy)]
struct Flags {
    account_enabled: bool,
    guest: bool,
    mailbox: bool,
    exchange_enabled: bool,
    has_name: bool,
    has_mail: bool,
}

#[derive(Clone, Copy)]
struct LicenseRow {
    sku: Word,
    plans: (u32, u32),
}

#[derive(Clone, Copy)]
struct StateRow {
    sku: Word,
    group: Option<Word>,
    kind: Kind,
}

/// The part of a user that is not a list: names, flags and creation time.
#[derive(Debug, Clone, Copy)]
pub struct UserHead<'s> {
    /// Object id.
    pub id: &'s str,
    /// UPN.
    pub upn: &'s str,
    /// Display name.
    pub display_name: Option<&'s str>,
    /// Primary SMTP address.
    pub mail: Option<&'s str>,
    /// Sign-in allowed.
    pub account_enabled: bool,
    /// `userType == Guest`.
    pub guest: bool,
    /// Has a mailbox.
    pub mailbox: bool,
    /// Holds an enabled Exchange mailbox plan.
    pub exchange_enabled: bool,
    /// Account creation time.
    pub created: Option<DateTime<Utc>>,
}

fn offset(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn range(r: (u32, u32)) -> std::ops::Range<usize> {
    r.0 as usize..r.1 as usize
}

impl Users {
    /// Room for `users` users whose names take about `text` bytes.
    pub fn with_capacity(users: usize, text: usize) -> Self {
        Users {
            text: String::with_capacity(text),
            rows: Vec::with_capacity(users),
            licenses: Vec::with_capacity(users),
            states: Vec::with_capacity(users),
            ..Users::default()
        }
    }

    /// The table number of a repeated id, adding it when new.
    pub fn word(&mut self, s: &str) -> Word {
        if let Some(&w) = self.word_index.get(s) {
            return w;
        }
        let w = Word(offset(self.words.len()));
        let shared: Arc<str> = Arc::from(s);
        self.words.push(Arc::clone(&shared));
        self.word_index.insert(shared, w);
        w
    }

    /// The number of an assignment state with its error, adding it when new.
    pub fn kind(&mut self, state: &AssignmentState, error: Option<&AssignmentError>) -> Kind {
        let found = (self.kinds.iter()).position(|(s, e)| s == state && e.as_ref() == error);
        let i = found.unwrap_or_else(|| {
            self.kinds.push((state.clone(), error.cloned()));
            self.kinds.len() - 1
        });
        Kind(offset(i))
    }

    /// Starts a user: its names and flags are stored; its licences and states follow through the builder, which
    /// adds the user after the others when pushed (the caller keeps them in id order, or sorts them after).
    pub fn start(&mut self, head: UserHead<'_>) -> UserBuilder<'_> {
        let start = offset(self.text.len());
        let mut end = |part: &str| {
            self.text.push_str(part);
            offset(self.text.len())
        };
        let ends = [
            end(head.id),
            end(head.upn),
            end(head.display_name.unwrap_or_default()),
            end(head.mail.unwrap_or_default()),
        ];
        let flags = Flags {
            account_enabled: head.account_enabled,
            guest: head.guest,
            mailbox: head.mailbox,
            exchange_enabled: head.exchange_enabled,
            has_name: head.display_name.is_some(),
            has_mail: head.mail.is_some(),
        };
        let (licenses, states) = (offset(self.licenses.len()), offset(self.states.len()));
        UserBuilder {
            row: Row {
                start,
                ends,
                licenses: (licenses, licenses),
                states: (states, states),
                created: head.created,
                flags,
            },
            users: self,
        }
    }

    /// Adds a user after the others (the caller keeps them in id order, or sorts them after).
    pub fn push(&mut self, u: &UserSnapshot) {
        let row = self.row_of(u);
        self.rows.push(row);
    }

    /// Stores a user's parts; the row that points at them.
    fn row_of(&mut self, u: &UserSnapshot) -> Row {
        let mut b = self.start(UserHead {
            id: u.id(),
            upn: u.upn(),
            display_name: u.display_name(),
            mail: u.mail(),
            account_enabled: u.account_enabled,
            guest: u.guest,
            mailbox: u.mailbox,
            exchange_enabled: u.exchange_enabled,
            created: u.created,
        });
        for l in &u.licenses {
            let sku = b.users.word(&l.sku_id);
            let plans: Vec<Word> = l.disabled_plans.iter().map(|p| b.users.word(p)).collect();
            b.license(sku, plans);
        }
        for s in &u.states {
            let sku = b.users.word(&s.sku_id);
            let group = s.group.as_deref().map(|g| b.users.word(g));
            let kind = b.users.kind(&s.state, s.error.as_ref());
            b.state(sku, group, kind);
        }
        b.row
    }

    /// Sorts the users by id and keeps the first of each id (a user Graph listed twice, on two pages).
    pub fn sort_and_dedup(&mut self) {
        let mut rows = std::mem::take(&mut self.rows);
        let id = |r: &Row| self.id_of(r);
        // Graph lists users in a stable order, often by id: a sorted run is recognised in one pass.
        if !rows.is_sorted_by(|a, b| id(a) < id(b)) {
            rows.sort_by(|a, b| id(a).cmp(id(b)));
            rows.dedup_by(|a, b| id(a) == id(b));
        }
        self.rows = rows;
    }

    /// How many users.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The `i`th user, when there is one.
    pub fn get(&self, i: usize) -> Option<UserRef<'_>> {
        self.rows.get(i).map(|row| UserRef { users: self, row })
    }

    /// The users, in id order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = UserRef<'_>> + DoubleEndedIterator {
        self.rows
            .iter()
            .map(move |row| UserRef { users: self, row })
    }

    /// Where a user is (`Ok`), or would be inserted (`Err`).
    pub fn position(&self, id: &str) -> Result<usize, usize> {
        self.rows.binary_search_by(|row| self.id_of(row).cmp(id))
    }

    /// A user by id.
    pub fn user(&self, id: &str) -> Option<UserRef<'_>> {
        self.position(id).ok().and_then(|i| self.get(i))
    }

    /// Applies changes (user id → the user now, or `None` when the user left), keeping the users in id order. An
    /// hour's changes are mostly updates, made where the users stand (the new parts are added to the buffers and the
    /// old ones left unread until the users are next stored); the rows are rebuilt only when someone joined or left.
    pub fn apply(&mut self, changes: BTreeMap<String, Option<UserSnapshot>>) {
        let mut joined_or_left = BTreeMap::new();
        for (id, now) in changes {
            match (self.position(&id), now) {
                (Ok(i), Some(now)) => {
                    let row = self.row_of(&now);
                    self.rows[i] = row;
                }
                // Gone, and never here.
                (Err(_), None) => {}
                (_, now) => {
                    joined_or_left.insert(id, now);
                }
            }
        }
        if !joined_or_left.is_empty() {
            self.rebuild(joined_or_left);
        }
    }

    /// The rows with users inserted in order and removed (`None`), in one pass.
    fn rebuild(&mut self, changes: BTreeMap<String, Option<UserSnapshot>>) {
        // The newcomers' parts are stored first, so the pass below only reads.
        let changes: Vec<(String, Option<Row>)> = (changes.into_iter())
            .map(|(id, now)| (id, now.map(|u| self.row_of(&u))))
            .collect();
        let rows = std::mem::take(&mut self.rows);
        let mut out = Vec::with_capacity(rows.len() + changes.len());
        let mut changes = changes.into_iter().peekable();
        for row in rows {
            let id = self.id_of(&row);
            while let Some((_, now)) = changes.next_if(|(c, _)| c.as_str() < id) {
                out.extend(now);
            }
            match changes.next_if(|(c, _)| c.as_str() == id) {
                Some((_, now)) => out.extend(now),
                None => out.push(row),
            }
        }
        out.extend(changes.filter_map(|(_, now)| now));
        self.rows = out;
    }

    /// A row's id.
    fn id_of(&self, row: &Row) -> &str {
        (self.text.get(row.start as usize..row.ends[0] as usize)).unwrap_or_default()
    }
}

/// Adds one user's licences and states; [`UserBuilder::push`] adds the user.
pub struct UserBuilder<'u> {
    users: &'u mut Users,
    row: Row,
}

impl UserBuilder<'_> {
    /// The table number of a repeated id.
    pub fn word(&mut self, s: &str) -> Word {
        self.users.word(s)
    }

    /// The number of an assignment state with its error.
    pub fn kind(&mut self, state: &AssignmentState, error: Option<&AssignmentError>) -> Kind {
        self.users.kind(state, error)
    }

    /// A licence, with its disabled plans (licences are kept sorted by SKU by the caller, as Graph's are not).
    pub fn license(&mut self, sku: Word, disabled_plans: impl IntoIterator<Item = Word>) {
        let start = offset(self.users.plans.len());
        self.users.plans.extend(disabled_plans);
        let plans = (start, offset(self.users.plans.len()));
        self.users.licenses.push(LicenseRow { sku, plans });
        self.row.licenses.1 = offset(self.users.licenses.len());
    }

    /// An assignment state.
    pub fn state(&mut self, sku: Word, group: Option<Word>, kind: Kind) {
        self.users.states.push(StateRow { sku, group, kind });
        self.row.states.1 = offset(self.users.states.len());
    }

    /// Adds the user after the others.
    pub fn push(self) {
        self.users.rows.push(self.row);
    }
}

/// What a state reads as when its number is not one of its users' (a builder handed another table's number).
static UNKNOWN_KIND: (AssignmentState, Option<AssignmentError>) =
    (AssignmentState::Other(String::new()), None);

/// A user, read where it is stored.
#[derive(Clone, Copy)]
pub struct UserRef<'a> {
    users: &'a Users,
    row: &'a Row,
}

impl<'a> UserRef<'a> {
    /// The `i`th name: 0 the id, 1 the UPN, 2 the display name, 3 the mail.
    fn part(&self, i: usize) -> &'a str {
        let row = self.row;
        let start = i.checked_sub(1).map_or(row.start, |p| row.ends[p]);
        let end = row.ends[i];
        self.users
            .text
            .get(start as usize..end as usize)
            .unwrap_or_default()
    }

    /// Object id.
    pub fn id(&self) -> &'a str {
        self.part(0)
    }

    /// UPN.
    pub fn upn(&self) -> &'a str {
        self.part(1)
    }

    /// Display name.
    pub fn display_name(&self) -> Option<&'a str> {
        self.row.flags.has_name.then(|| self.part(2))
    }

    /// Primary SMTP address.
    pub fn mail(&self) -> Option<&'a str> {
        self.row.flags.has_mail.then(|| self.part(3))
    }

    /// Sign-in allowed.
    pub fn account_enabled(&self) -> bool {
        self.row.flags.account_enabled
    }

    /// `userType == Guest`.
    pub fn guest(&self) -> bool {
        self.row.flags.guest
    }

    /// Has a mailbox: `mail` and an `SMTP:` proxy address.
    pub fn mailbox(&self) -> bool {
        self.row.flags.mailbox
    }

    /// Holds an enabled Exchange mailbox plan.
    pub fn exchange_enabled(&self) -> bool {
        self.row.flags.exchange_enabled
    }

    /// Account creation time.
    pub fn created(&self) -> Option<DateTime<Utc>> {
        self.row.created
    }

    fn word(&self, w: Word) -> &'a str {
        self.users.words.get(w.0 as usize).map_or("", |s| &**s)
    }

    /// Licences, sorted by SKU id.
    pub fn licenses(&self) -> impl ExactSizeIterator<Item = LicenseRef<'a>> + use<'a> {
        let user = *self;
        let rows = self.users.licenses.get(range(self.row.licenses));
        rows.unwrap_or_default().iter().map(move |l| LicenseRef {
            sku_id: user.word(l.sku),
            sku_word: l.sku,
            plans: (user.users.plans.get(range(l.plans))).unwrap_or_default(),
            users: user.users,
        })
    }

    /// Assignment states.
    pub fn states(&self) -> impl ExactSizeIterator<Item = StateRef<'a>> + use<'a> {
        let user = *self;
        let rows = self.users.states.get(range(self.row.states));
        rows.unwrap_or_default().iter().map(move |s| {
            let (state, error) = user
                .users
                .kinds
                .get(s.kind.0 as usize)
                .unwrap_or(&UNKNOWN_KIND);
            StateRef {
                sku_id: user.word(s.sku),
                sku_word: s.sku,
                group: s.group.map(|g| user.word(g)),
                group_word: s.group,
                state,
                error: error.as_ref(),
            }
        })
    }

    /// The SKU ids the user holds.
    pub fn sku_ids(&self) -> impl Iterator<Item = &'a str> + use<'a> {
        self.licenses().map(|l| l.sku_id)
    }

    /// True when the user holds the SKU.
    pub fn holds(&self, sku_id: &str) -> bool {
        self.sku_ids().any(|s| s == sku_id)
    }

    /// True when the user holds a licence.
    pub fn is_licensed(&self) -> bool {
        self.row.licenses.0 < self.row.licenses.1
    }

    /// A member mailbox that could be in a grace period: enabled, not a guest, with a mailbox.
    pub fn is_member_mailbox(&self) -> bool {
        self.account_enabled() && !self.guest() && self.mailbox()
    }

    /// The user as an owned value.
    pub fn to_snapshot(&self) -> UserSnapshot {
        let shared = |w: Word| {
            let word = self.users.words.get(w.index());
            word.map_or_else(|| Arc::from(""), Arc::clone)
        };
        let rows = |r| self.users.licenses.get(range(r)).unwrap_or_default();
        UserSnapshot {
            names: UserNames::new(self.id(), self.upn(), self.display_name(), self.mail()),
            account_enabled: self.account_enabled(),
            guest: self.guest(),
            mailbox: self.mailbox(),
            exchange_enabled: self.exchange_enabled(),
            created: self.created(),
            licenses: (rows(self.row.licenses).iter())
                .map(|l| LicenseSnap {
                    sku_id: shared(l.sku),
                    disabled_plans: (self.users.plans.get(range(l.plans)))
                        .unwrap_or_default()
                        .iter()
                        .map(|&p| self.word(p).to_string())
                        .collect(),
                })
                .collect(),
            states: self
                .states()
                .map(|s| AssignmentSnap {
                    sku_id: Arc::from(s.sku_id),
                    group: s.group.map(str::to_string),
                    state: s.state.clone(),
                    error: s.error.cloned(),
                })
                .collect(),
        }
    }
}

impl std::fmt::Debug for UserRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.to_snapshot().fmt(f)
    }
}

/// A licence of a user.
#[derive(Clone, Copy)]
pub struct LicenseRef<'a> {
    /// SKU GUID (lower case).
    pub sku_id: &'a str,
    /// The SKU's number in the table of repeated ids.
    pub sku_word: Word,
    plans: &'a [Word],
    users: &'a Users,
}

impl<'a> LicenseRef<'a> {
    /// Disabled plans (sorted, lower case).
    pub fn disabled_plans(&self) -> impl ExactSizeIterator<Item = &'a str> + use<'a> {
        self.disabled_plan_words().map(|(_, p)| p)
    }

    /// Disabled plans with their numbers in the table of repeated ids.
    pub fn disabled_plan_words(&self) -> impl ExactSizeIterator<Item = (Word, &'a str)> + use<'a> {
        let words = &self.users.words;
        (self.plans.iter()).map(move |&p| (p, words.get(p.index()).map_or("", |s| &**s)))
    }
}

/// An assignment state of a user.
#[derive(Debug, Clone, Copy)]
pub struct StateRef<'a> {
    /// SKU GUID (lower case).
    pub sku_id: &'a str,
    /// The SKU's number in the table of repeated ids.
    pub sku_word: Word,
    /// Group id when inherited.
    pub group: Option<&'a str>,
    /// The group's number in the table of repeated ids.
    pub group_word: Option<Word>,
    /// Active, ActiveWithError, Disabled, Error.
    pub state: &'a AssignmentState,
    /// Error code; None on success.
    pub error: Option<&'a AssignmentError>,
}

impl FromIterator<UserSnapshot> for Users {
    /// Users in any order, sorted by id (the first of a repeated id kept).
    fn from_iter<I: IntoIterator<Item = UserSnapshot>>(iter: I) -> Self {
        let mut users = Users::default();
        for u in iter {
            users.push(&u);
        }
        users.sort_and_dedup();
        users
    }
}

impl PartialEq for Users {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len()
            && (self.iter().zip(other.iter())).all(|(a, b)| a.to_snapshot() == b.to_snapshot())
    }
}

impl Eq for Users {}

impl std::fmt::Debug for Users {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// Stored as a JSON array of users (as earlier versions wrote snapshots).
impl Serialize for Users {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter().map(|u| u.to_snapshot()))
    }
}

impl<'de> Deserialize<'de> for Users {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Vec::<UserSnapshot>::deserialize(d)?.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(id: &str) -> UserSnapshot {
        UserSnapshot {
            names: UserNames::new(id, &format!("{id}@x"), Some(""), Some("m@x")),
            account_enabled: false,
            guest: true,
            mailbox: true,
            exchange_enabled: true,
            created: DateTime::from_timestamp(1_700_000_000, 5),
            licenses: vec![
                LicenseSnap {
                    sku_id: "sku-a".into(),
                    disabled_plans: vec!["p1".into(), "p2".into()],
                },
                LicenseSnap {
                    sku_id: "sku-b".into(),
                    disabled_plans: vec![],
                },
            ],
            states: vec![
                AssignmentSnap {
                    sku_id: "sku-a".into(),
                    group: Some("g1".into()),
                    state: AssignmentState::Error,
                    error: Some(AssignmentError::Code("Novel".into())),
                },
                AssignmentSnap {
                    sku_id: "sku-b".into(),
                    group: None,
                    state: AssignmentState::Other("Pending".into()),
                    error: None,
                },
            ],
        }
    }

    #[test]
    fn a_user_reads_back_as_it_was_added() {
        let users: Users = [full("b"), UserSnapshot::bare("a", "a@x"), full("c")]
            .into_iter()
            .collect();
        let ids: Vec<&str> = users.iter().map(|u| u.id()).collect();
        assert_eq!(ids, ["a", "b", "c"]);
        assert_eq!(users.user("b").map(|u| u.to_snapshot()), Some(full("b")));
        assert_eq!(
            users.user("a").map(|u| u.to_snapshot()),
            Some(UserSnapshot::bare("a", "a@x"))
        );
        let b = users.user("b").expect("b");
        let plans: Vec<Vec<&str>> = b.licenses().map(|l| l.disabled_plans().collect()).collect();
        assert_eq!(plans, [vec!["p1", "p2"], vec![]]);
        assert_eq!(
            b.states().filter_map(|s| s.group).collect::<Vec<_>>(),
            ["g1"]
        );
        assert!(b.holds("sku-b") && !b.holds("sku-c") && b.is_licensed());
        assert!(users.user("zz").is_none());
    }

    #[test]
    fn a_user_listed_twice_is_kept_once() {
        let mut second = full("a");
        second.guest = false;
        let users: Users = [full("a"), UserSnapshot::bare("b", "b@x"), second]
            .into_iter()
            .collect();
        assert_eq!(users.len(), 2);
        assert!(
            users.user("a").is_some_and(|u| u.guest()),
            "the first is kept"
        );
    }

    #[test]
    fn changes_apply_in_id_order() {
        let users = |ids: &[&str]| -> Users {
            (ids.iter())
                .map(|id| UserSnapshot::bare(id, &format!("{id}@x")))
                .collect()
        };
        let mut changes = BTreeMap::new();
        for (id, now) in [
            ("a", true),
            ("c", false),
            ("d", true),
            ("f", false),
            ("g", true),
        ] {
            let user = UserSnapshot::bare(id, &format!("{id}@new"));
            changes.insert(id.to_string(), now.then_some(user));
        }
        let mut out = users(&["b", "c", "d", "e"]);
        out.apply(changes);
        let got: Vec<(&str, &str)> = out.iter().map(|u| (u.id(), u.upn())).collect();
        assert_eq!(
            got,
            [
                ("a", "a@new"),
                ("b", "b@x"),
                ("d", "d@new"),
                ("e", "e@x"),
                ("g", "g@new")
            ]
        );
    }

    #[test]
    fn updates_alone_are_made_where_the_users_stand() {
        let mut users: Users = ["b", "c", "d"]
            .iter()
            .map(|id| UserSnapshot::bare(id, &format!("{id}@x")))
            .collect();
        let at = users.rows.as_ptr();
        let mut changes = BTreeMap::new();
        changes.insert("c".to_string(), Some(full("c")));
        // A user gone from the directory who was never here changes nothing.
        changes.insert("e".to_string(), None);
        users.apply(changes);
        assert_eq!(users.rows.as_ptr(), at, "the rows were not rebuilt");
        let upns: Vec<&str> = users.iter().map(|u| u.upn()).collect();
        assert_eq!(upns, ["b@x", "c@x", "d@x"]);
        assert_eq!(users.user("c").map(|u| u.to_snapshot()), Some(full("c")));
    }

    #[test]
    fn numbers_from_another_table_read_as_unknown_never_a_panic() {
        let mut other = Users::default();
        let (far_word, far_kind) = (Word(7), other.kind(&AssignmentState::Error, None));
        let far_kind = Kind(far_kind.0 + 5);
        let mut users = Users::default();
        let mut b = users.start(UserHead {
            id: "a",
            upn: "a@x",
            display_name: None,
            mail: None,
            account_enabled: true,
            guest: false,
            mailbox: false,
            exchange_enabled: false,
            created: None,
        });
        b.license(far_word, [far_word]);
        b.state(far_word, Some(far_word), far_kind);
        b.push();
        let u = users.user("a").expect("a").to_snapshot();
        assert_eq!(u.licenses[0].sku_id.as_ref(), "");
        assert_eq!(u.licenses[0].disabled_plans, [""]);
        assert_eq!(u.states[0].state, AssignmentState::Other(String::new()));
    }

    #[test]
    fn users_survive_json_as_earlier_versions_stored_them() {
        let users: Users = [full("a"), UserSnapshot::bare("b", "b@x")]
            .into_iter()
            .collect();
        let json = serde_json::to_string(&users).expect("json");
        let back: Users = serde_json::from_str(&json).expect("users");
        assert_eq!(back, users);
        assert!(json.contains("\"upn\":\"a@x\""), "{json}");
    }
}
