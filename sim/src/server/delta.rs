//! `GET /v1.0/users/delta`, as Graph serves it: an initial round (every user, `$skiptoken` pages, an
//! `@odata.deltaLink` on the last), `$deltatoken=latest` (no users, only a link for now), and rounds from a delta
//! token: users created since (all selected properties), updated users carrying every selected property (Graph's
//! default; the untracked `licenseAssignmentStates` as delta last saw it, stale) or, with `Prefer: return=minimal`,
//! their `id` and only the selected properties that changed, and removed users as `{"id", "@removed": {"reason": "changed" | "deleted"}}` (soft and
//! hard deletion). As Microsoft documents, a change to `licenseAssignmentStates` alone is not tracked. A token older
//! than seven days, or expired through `/_sim/delta/expire`, is answered `410 Gone` (`syncStateNotFound`) with a
//! `Location` that starts a full round.
//!
//! How changes are found: each round starts a baseline (a sequence number); every user whose state differs from its
//! last recorded one (a fingerprint of the raw fields) is recorded under that baseline as a copy. A round from token
//! T renders the properties of each user whose record at T differs from its record now, both ways, and reports the
//! properties that differ (rendering only changed users keeps a baseline of a large tenant cheap).
// Route helpers return the ready error `Response` as their `Err`.
#![allow(clippy::result_large_err)]

use std::hash::{BuildHasher, DefaultHasher, Hash, Hasher};

use super::users::{USER_PROPS, UserFields, UserView};
use super::*;
use crate::tenant::{Entry, Fast, Record};

/// How long Graph keeps a delta token for directory objects.
const TOKEN_DAYS: i64 = 7;
/// `licenseAssignmentStates` is not tracked by user delta.
const UNTRACKED: &str = "licenseAssignmentStates";

/// A token's content: the baseline it names (a `$skiptoken`: the round being paged; a `$deltatoken`: the round
/// the next one compares from), the `$select` of the round that made it, and the page's position.
#[derive(Debug, Serialize, Deserialize)]
struct Token {
    round: u64,
    select: Option<String>,
    offset: usize,
}

impl Token {
    fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    fn decode(s: &str) -> Option<Self> {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(s).ok()?).ok()
    }
}

#[derive(Debug, Deserialize, Default)]
pub(super) struct DeltaQuery {
    #[serde(rename = "$select")]
    select: Option<String>,
    #[serde(rename = "$skiptoken")]
    skiptoken: Option<String>,
    #[serde(rename = "$deltatoken")]
    deltatoken: Option<String>,
}

fn fingerprint(t: &Tenant, ui: usize) -> u64 {
    let u = &t.users[ui];
    let s = &u.spec;
    let mut h = Fast::default().build_hasher();
    (&s.upn, &s.display_name, &s.mail, &s.proxy_addresses).hash(&mut h);
    (
        s.account_enabled,
        &s.user_type,
        &s.usage_location,
        s.created,
    )
        .hash(&mut h);
    s.on_premises_sync.hash(&mut h);
    for a in &u.assignments {
        (&a.sku_id, &a.disabled_plans, &a.by_group, a.state, &a.error).hash(&mut h);
    }
    // Order-free: a HashMap iterates in any order.
    let dates: u64 = u
        .plan_dates
        .iter()
        .map(|e| Fast::default().hash_one(e))
        .fold(0, u64::wrapping_add);
    dates.hash(&mut h);
    u.deleted_plans.hash(&mut h);
    for sku in t.skus.iter().filter(|k| u.holds(&k.sku_id)) {
        (sku.enabled, sku.warning, sku.service_plans.len()).hash(&mut h);
    }
    h.finish()
}

/// The hash of each property as Graph renders it (the untracked one always 0).
fn prop_hashes(t: &Tenant, u: &crate::tenant::User) -> Vec<u64> {
    USER_PROPS
        .iter()
        .enumerate()
        .map(|(i, name)| {
            if *name == UNTRACKED {
                return 0;
            }
            let view = UserView {
                t,
                u,
                fields: UserFields::bits(1 << i),
            };
            let mut h = DefaultHasher::new();
            serde_json::to_vec(&view).unwrap_or_default().hash(&mut h);
            h.finish()
        })
        .collect()
}

/// Takes a baseline: records every user whose state changed since its last record. Only users handed out for change
/// since the last baseline are fingerprinted, unless a SKU changed (its capacity shows in every holder's plans).
fn take_baseline(t: &mut Tenant) -> u64 {
    t.delta.next += 1;
    let round = t.delta.next;
    let now = t.now;
    let skus = skus_fingerprint(t);
    if t.delta.skus != Some(skus) {
        t.delta.skus = Some(skus);
        t.users.touch_all();
    }
    let mut fresh = Vec::new();
    for ui in t.users.take_touched() {
        let id = &t.users[ui].spec.id;
        let fp = fingerprint(t, ui);
        let last = t.delta.records.get(id).and_then(|r| r.last());
        if last.is_none_or(|r| r.fingerprint != fp) {
            fresh.push((id.clone(), fp, Box::new(t.users[ui].clone())));
        }
    }
    let recorded = t.delta.recorded.entry(round).or_default();
    for (id, fingerprint, user) in fresh {
        recorded.push(id.clone());
        t.delta.records.entry(id).or_default().push(Record {
            baseline: round,
            fingerprint,
            user,
        });
    }
    t.delta.baselines.insert(round, now);
    round
}

/// What of the SKUs shows in a holder's fingerprint.
fn skus_fingerprint(t: &Tenant) -> u64 {
    let mut h = Fast::default().build_hasher();
    for sku in &t.skus {
        (
            &sku.sku_id,
            sku.enabled,
            sku.warning,
            sku.service_plans.len(),
        )
            .hash(&mut h);
    }
    h.finish()
}

fn record_at(records: Option<&Vec<Record>>, baseline: u64) -> Option<&Record> {
    records?.iter().rev().find(|r| r.baseline <= baseline)
}

/// What changed between baselines `since` and `round` (0: every user, as new): the users recorded at a baseline
/// in between, each compared at both ends.
fn changes(t: &Tenant, since: u64, round: u64) -> Vec<Entry> {
    let mut out = Vec::new();
    let ids: Vec<&String> = match since {
        0 => t.users.iter().map(|u| &u.spec.id).collect(),
        _ => {
            let mut ids: Vec<&String> = t
                .delta
                .recorded
                .range(since + 1..=round)
                .flat_map(|(_, ids)| ids)
                .collect();
            // In the tenant's order, each once, as a full walk would list them.
            ids.sort_by_key(|id| t.find_user(id.as_str()));
            ids.dedup();
            ids
        }
    };
    for id in ids {
        if t.find_user(id.as_str()).is_none() {
            continue;
        }
        let records = t.delta.records.get(id);
        let (Some(now), before) = (
            record_at(records, round),
            record_at(records, since).filter(|_| since > 0),
        ) else {
            continue;
        };
        match before {
            None => out.push(Entry::New(id.clone())),
            Some(b) if b.fingerprint != now.fingerprint => {
                let bits = prop_hashes(t, &b.user)
                    .iter()
                    .zip(&prop_hashes(t, &now.user))
                    .enumerate()
                    .filter(|(_, (x, y))| x != y)
                    .fold(0u32, |acc, (i, _)| acc | (1 << i));
                if bits != 0 {
                    out.push(Entry::Updated(id.clone(), bits, since));
                }
            }
            Some(_) => {}
        }
    }
    if since > 0 {
        for (id, at, permanent) in &t.delta.removed {
            let existed = record_at(t.delta.records.get(id), since).is_some();
            if *at > since && *at <= round && existed {
                let reason = if *permanent { "deleted" } else { "changed" };
                out.push(Entry::Removed(id.clone(), reason));
            }
        }
    }
    out
}

/// As Graph answers a token it no longer has: `410 Gone` with `syncStateNotFound` and a `Location` that starts a
/// full round again (with the same `$select` when the token said which).
fn sync_state_not_found(base_url: &str, select: Option<&str>) -> Response {
    let restart = match select {
        Some(sel) => format!("{base_url}/v1.0/users/delta?$select={sel}"),
        None => format!("{base_url}/v1.0/users/delta"),
    };
    let mut r = graph_error(
        StatusCode::GONE,
        "syncStateNotFound",
        "The sync state generation is not found. The delta token is expired and data must be synchronized again.",
    );
    if let Ok(v) = HeaderValue::from_str(&restart) {
        r.headers_mut().insert(axum::http::header::LOCATION, v);
    }
    r
}

/// The preferences of a `Prefer` header (several headers, or several preferences in one).
fn preferences(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
}

/// `Prefer: odata.maxpagesize=N` (1-999), else Graph's default of 100.
fn max_page_size(headers: &HeaderMap) -> usize {
    preferences(headers)
        .filter_map(|p| p.strip_prefix("odata.maxpagesize="))
        .find_map(|n| n.trim().parse::<usize>().ok())
        .map_or(100, |n| n.clamp(1, 999))
}

/// `Prefer: return=minimal`: an updated user carries only the properties that changed. Without it (Graph's default)
/// it carries every selected property, the untracked `licenseAssignmentStates` as delta last saw it.
fn minimal(headers: &HeaderMap) -> bool {
    preferences(headers).any(|p| p.eq_ignore_ascii_case("return=minimal"))
}

/// Starts a round or continues one; `Err` is the ready error response.
fn round_for(t: &mut Tenant, q: &DeltaQuery, base_url: &str) -> Result<Token, Response> {
    let gone = |select: Option<&str>| sync_state_not_found(base_url, select);
    let expired = |t: &Tenant, b: u64| {
        t.delta
            .baselines
            .get(&b)
            .is_none_or(|at| *at + Duration::days(TOKEN_DAYS) < t.now)
    };
    if let Some(skip) = &q.skiptoken {
        let token = Token::decode(skip).ok_or_else(|| gone(None))?;
        if !t.delta.rounds.contains_key(&token.round) {
            return Err(gone(token.select.as_deref()));
        }
        return Ok(token);
    }
    let (since, select, latest) = match q.deltatoken.as_deref() {
        None => (0, q.select.clone(), false),
        Some("latest") => (0, q.select.clone(), true),
        Some(d) => {
            let token = Token::decode(d).ok_or_else(|| gone(None))?;
            if expired(t, token.round) {
                return Err(gone(token.select.as_deref()));
            }
            (token.round, token.select, false)
        }
    };
    let round = take_baseline(t);
    let entries = if latest {
        Vec::new()
    } else {
        changes(t, since, round)
    };
    t.delta.rounds.insert(round, entries);
    while t.delta.rounds.len() > 16 {
        t.delta.rounds.pop_first();
    }
    Ok(Token {
        round,
        select,
        offset: 0,
    })
}

pub(super) async fn users_delta(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(q): Query<DeltaQuery>,
) -> Response {
    let size = max_page_size(&headers);
    let minimal = minimal(&headers);
    let mut t = s.tenant();
    let token = match round_for(&mut t, &q, &s.base_url) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let all = t.delta.rounds.get(&token.round).map_or(0, Vec::len);
    let end = (token.offset + size).min(all);
    let page: Vec<Entry> = t
        .delta
        .rounds
        .get(&token.round)
        .map(|entries| entries[token.offset.min(end)..end].to_vec())
        .unwrap_or_default();
    let select = token.select.as_deref().map(users::select_names);
    let wanted = UserFields::from_select(select.as_ref());
    let mut value = Vec::with_capacity(page.len());
    for e in &page {
        value.push(match &e {
            Entry::Removed(id, reason) => json!({"id": id, "@removed": {"reason": reason}}),
            Entry::New(id) => {
                let Some(ui) = t.find_user(id.as_str()) else {
                    continue;
                };
                user_item(&t, &t.users[ui], wanted)
            }
            Entry::Updated(id, bits, _) if minimal => {
                let Some(ui) = t.find_user(id.as_str()) else {
                    continue;
                };
                user_item(
                    &t,
                    &t.users[ui],
                    UserFields::bits((bits & wanted.raw()) | 1),
                )
            }
            Entry::Updated(id, _, since) => {
                let Some(ui) = t.find_user(id.as_str()) else {
                    continue;
                };
                let mut item = user_item(&t, &t.users[ui], wanted);
                stale_untracked(&t, id, *since, wanted, &mut item);
                item
            }
        });
    }
    // As Graph writes them: `$` unescaped, the token base64url (nothing to escape).
    let link =
        |key: &str, tok: &Token| format!("{}/v1.0/users/delta?{key}={}", s.base_url, tok.encode());
    let mut body = serde_json::Map::new();
    body.insert(
        "@odata.context".into(),
        json!(format!("{}/v1.0/$metadata#users", s.base_url)),
    );
    if end < all {
        let next = Token {
            offset: end,
            select: token.select.clone(),
            ..token
        };
        body.insert("@odata.nextLink".into(), json!(link("$skiptoken", &next)));
    } else {
        let delta = Token {
            round: token.round,
            select: token.select.clone(),
            offset: 0,
        };
        body.insert(
            "@odata.deltaLink".into(),
            json!(link("$deltatoken", &delta)),
        );
    }
    body.insert("value".into(), Value::Array(value));
    Json(Value::Object(body)).into_response()
}

/// A user rendered with `fields`.
fn user_item(t: &Tenant, u: &crate::tenant::User, fields: UserFields) -> Value {
    serde_json::to_value(UserView { t, u, fields }).unwrap_or(Value::Null)
}

/// Puts into a full-property item the untracked `licenseAssignmentStates` as delta last recorded it (the user at
/// the round compared from), not as it is now: present and stale, as reported of Graph.
fn stale_untracked(t: &Tenant, id: &str, since: u64, wanted: UserFields, item: &mut Value) {
    let Some(bit) = USER_PROPS.iter().position(|p| *p == UNTRACKED) else {
        return;
    };
    if wanted.raw() & (1 << bit) == 0 {
        return;
    }
    let Some(then) = record_at(t.delta.records.get(id), since) else {
        return;
    };
    let old = user_item(t, &then.user, UserFields::bits(1 << bit));
    if let (Some(m), Some(states)) = (item.as_object_mut(), old.get(UNTRACKED)) {
        m.insert(UNTRACKED.into(), states.clone());
    }
}

#[derive(Debug, Deserialize, Default)]
pub(super) struct RemoveQuery {
    #[serde(default)]
    permanent: bool,
}

/// `DELETE /_sim/users/{id}[?permanent=true]`: deletes a user (soft: restorable, reported by delta as `changed`;
/// permanent: `deleted`), releasing its seats and group memberships.
pub(super) async fn ctl_remove_user(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(q): Query<RemoveQuery>,
) -> Response {
    let mut t = s.tenant();
    match t.remove_user(&id) {
        Some(uid) => {
            t.delta.note_removed(&uid, q.permanent);
            if !q.permanent
                && let Some(last) = t
                    .changed
                    .iter_mut()
                    .rev()
                    .find(|(changed, _, _)| *changed == uid)
            {
                // Restorable for 30 days: notified as `updated`.
                last.1 = "soft_deleted";
            }
            (
                StatusCode::OK,
                Json(json!({"removed": uid, "permanent": q.permanent})),
            )
                .into_response()
        }
        None => users::user_not_found(&id),
    }
}

/// `POST /_sim/delta/expire`: every delta token issued so far is answered `syncStateNotFound` from now on.
pub(super) async fn ctl_expire_delta(State(s): State<Arc<Shared>>) -> Response {
    let n = s.tenant().delta.expire_all();
    Json(json!({"expired": n})).into_response()
}
