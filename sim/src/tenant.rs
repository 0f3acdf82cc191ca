//! The simulated tenant's state and rules: seats, direct and group-based assignment (all-or-none), conflicting
//! plans, usage location, reprocessing, and the audit trail every licence change leaves in both audit sources.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, DurationRound, Utc};
use serde_json::Value;

use crate::scenario::{AuditKind, LicenseSpec, PlanSpec, Scenario, SkuSpec, UserSpec};

/// The display name Microsoft uses for group-based licensing changes.
pub(crate) const GROUP_LICENSING_APP: &str = "Microsoft Azure AD Group-Based Licensing";

/// One licence assignment of a user (direct or through a group).
#[derive(Debug, Clone)]
pub struct Assignment {
    /// SKU.
    pub sku_id: String,
    /// Disabled plans.
    pub disabled_plans: Vec<String>,
    /// Group that assigns it, None when direct.
    pub by_group: Option<String>,
    /// `Active` or `Error`.
    pub state: &'static str,
    /// None on success.
    pub error: Option<String>,
    /// Last processed.
    pub updated: DateTime<Utc>,
}

/// A user.
#[derive(Debug, Clone)]
pub struct User {
    /// Scenario data.
    pub spec: UserSpec,
    /// Assignments.
    pub assignments: Vec<Assignment>,
    /// When each plan was (re)assigned; Microsoft resets these on background changes.
    pub plan_dates: HashMap<String, DateTime<Utc>>,
    /// Plans that were removed (shown as `Deleted` in assignedPlans).
    pub deleted_plans: BTreeMap<String, String>,
}

/// The Management Activity API's content types.
pub const CONTENT_TYPES: [&str; 5] = [
    "Audit.AzureActiveDirectory",
    "Audit.Exchange",
    "Audit.SharePoint",
    "Audit.General",
    "DLP.All",
];

/// The tenant's users, remembering which were handed out for change since `/users/delta` last looked: every
/// mutable access goes through [`Users::index_mut`] or [`Users::push`], so no code path can change a user unseen,
/// and a round fingerprints only those users instead of the whole tenant (Graph answers a round in the time of its
/// changes, not of its size).
#[derive(Debug, Clone, Default)]
pub struct Users {
    list: Vec<User>,
    touched: Vec<bool>,
    /// With a read lag: each user as it was before its first mutable access since its last change was noted.
    before: HashMap<usize, User>,
    keep_before: bool,
}

impl Users {
    fn with_capacity(n: usize) -> Self {
        Users {
            list: Vec::with_capacity(n),
            touched: Vec::with_capacity(n),
            before: HashMap::new(),
            keep_before: false,
        }
    }

    /// Adds a user (touched: new to every round).
    pub fn push(&mut self, user: User) {
        self.list.push(user);
        self.touched.push(true);
    }

    fn remove(&mut self, i: usize) -> User {
        // Positions shift: the pre-images kept by position no longer match.
        self.before.clear();
        self.touched.remove(i);
        self.list.remove(i)
    }

    /// The positions of the users touched since the last call, which forgets them.
    pub(crate) fn take_touched(&mut self) -> Vec<usize> {
        let out = (0..self.list.len()).filter(|&i| self.touched[i]).collect();
        self.touched.iter_mut().for_each(|t| *t = false);
        out
    }

    /// Marks every user touched (a change outside the users, e.g. to a SKU, may show in all of them).
    pub(crate) fn touch_all(&mut self) {
        self.touched.iter_mut().for_each(|t| *t = true);
    }
}

impl std::ops::Deref for Users {
    type Target = [User];
    fn deref(&self) -> &[User] {
        &self.list
    }
}

impl std::ops::Index<usize> for Users {
    type Output = User;
    fn index(&self, i: usize) -> &User {
        &self.list[i]
    }
}

impl std::ops::IndexMut<usize> for Users {
    fn index_mut(&mut self, i: usize) -> &mut User {
        self.touched[i] = true;
        if self.keep_before {
            self.before.entry(i).or_insert_with(|| self.list[i].clone());
        }
        &mut self.list[i]
    }
}

/// A licensing group.
#[derive(Debug, Clone)]
pub struct Group {
    /// Id.
    pub id: String,
    /// Name.
    pub display_name: String,
    /// Licences.
    pub licenses: Vec<LicenseSpec>,
    /// Member user ids, in join order.
    pub members: Vec<String>,
}

/// One audit record pair source.
#[derive(Debug, Clone)]
pub struct DirectoryAudit {
    /// When.
    pub at: DateTime<Utc>,
    /// The Graph JSON.
    pub json: Value,
}

/// A Management Activity API content blob.
#[derive(Debug, Clone)]
pub struct Blob {
    /// contentId.
    pub content_id: String,
    /// contentType.
    pub content_type: String,
    /// contentCreated (the listing's time axis).
    pub created: DateTime<Utc>,
    /// The publication time its records were meant for (an hour's records gather in one blob); `created` differs
    /// when that time had passed as the first record came (records added for past hours).
    pub meant_for: DateTime<Utc>,
    /// When it first shows up in listings (late blobs: after `created`).
    pub visible_from: DateTime<Utc>,
    /// Part of the tenant's past as the scenario built it: published when its records happened (`meant_for`), so a
    /// subscription started later, or content older than 7 days, never lists it.
    pub historical: bool,
    /// Records.
    pub records: Vec<Value>,
    /// The served body, made on the first download: a blob is immutable once it can be listed, so serving it is a
    /// copy of these bytes rather than a new serialisation per request (the feed must outrun audit-fetch).
    pub body: std::sync::OnceLock<axum::body::Bytes>,
}

/// A Purview audit log query (`/security/auditLog/queries`), as created.
#[derive(Debug, Clone)]
pub struct AuditQuery {
    pub(crate) id: String,
    pub(crate) display_name: Option<String>,
    pub(crate) start: DateTime<Utc>,
    pub(crate) end: DateTime<Utc>,
    pub(crate) record_types: Vec<String>,
    pub(crate) operations: Vec<String>,
    pub(crate) users: Vec<String>,
    pub(crate) objects: Vec<String>,
    /// When it was created (simulated clock): its status follows from it.
    pub(crate) created: DateTime<Utc>,
}

/// A licence write the sim performed, for read-back by tests.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LicenseWrite {
    /// Sim time.
    pub at: DateTime<Utc>,
    /// Route used.
    pub operation: String,
    /// Target user or group.
    pub target: String,
    /// Outcome.
    pub ok: bool,
    /// Details.
    pub detail: Value,
}

/// A Graph-style failure of a licence operation.
#[derive(Debug, Clone)]
pub(crate) struct LicenseError {
    /// HTTP status.
    pub status: u16,
    /// Graph error code.
    pub code: &'static str,
    /// Message.
    pub message: String,
}

/// The tenant.
#[derive(Debug)]
pub struct Tenant {
    /// Tenant id.
    pub tenant_id: String,
    /// Initial domain.
    pub domain: String,
    /// The simulated clock.
    pub now: DateTime<Utc>,
    /// Default usage location.
    pub default_usage_location: String,
    /// Directory audit retention.
    pub audit_retention: Duration,
    /// App registration restriction.
    pub app: Option<crate::scenario::AppRegistration>,
    /// SKUs by id, in scenario order.
    pub skus: Vec<SkuSpec>,
    /// Plan conflicts.
    pub conflicts: Vec<[String; 2]>,
    /// Groups.
    pub groups: Vec<Group>,
    /// Users, in a stable order (paging walks this vector).
    pub users: Users,
    index: HashMap<String, usize>,
    /// Directory audits, oldest first.
    pub directory_audits: Vec<DirectoryAudit>,
    /// Management API blobs.
    pub blobs: Vec<Blob>,
    /// Subscriptions started (content type → enabled).
    pub subscriptions: BTreeMap<String, bool>,
    /// When each content type's subscription was last started (its first content is published later).
    pub feeds_started: BTreeMap<String, DateTime<Utc>>,
    /// Subscriptions Microsoft (or an administrator elsewhere) disabled: content type → by whom. Starting or
    /// listing them answers AF20023 until they are cleared.
    pub feeds_disabled: BTreeMap<String, String>,
    /// Mail sent through sendMail.
    pub mail: Vec<Value>,
    /// Licence writes.
    pub writes: Vec<LicenseWrite>,
    pub(crate) seed: u64,
    counter: u64,
    /// Seats in use per SKU (lower-case id), kept in step with every change.
    seats_used: HashMap<String, i64>,
    /// What `/users/delta` needs: baselines, per-user records, removals.
    pub(crate) delta: DeltaState,
    /// Entra ID P1: `signInActivity` is readable.
    pub premium: bool,
    /// Users changed since the change notifier last looked: (id, `created` | `updated` | `soft_deleted` | `deleted`).
    pub(crate) changed: Vec<(String, &'static str, DateTime<Utc>)>,
    /// Commercial subscriptions (`/directory/subscriptions`).
    pub commerce: Vec<crate::scenario::CommerceSpec>,
    /// The customer removed the app's consent: token requests for this tenant fail (AADSTS7000229).
    pub consent_revoked: bool,
    /// Behaviour reported of some tenants (the scenario's).
    pub behaviour: crate::scenario::Behaviour,
    /// Reprocess requests group-based licensing has queued: when each is processed, and for which user (id).
    pub queued_processing: Vec<(DateTime<Utc>, String)>,
    /// Purview audit log queries created.
    pub audit_queries: Vec<AuditQuery>,
    /// True while the scenario's past is being written.
    building: bool,
    /// What a read by id still shows of a recently changed user (lower-case id → until when, the user as it was).
    replicas: HashMap<String, (DateTime<Utc>, User)>,
}

/// Subscriptions behind the SKUs' seat counts when a scenario lists none: an enabled monthly subscription for the
/// enabled seats (its term ends on the first of next month and it renews itself), and one per lapsing state.
fn derived_commerce(skus: &[SkuSpec], now: DateTime<Utc>) -> Vec<crate::scenario::CommerceSpec> {
    use chrono::Datelike;
    let month_end = {
        let (y, m) = match now.month() {
            12 => (now.year() + 1, 1),
            m => (now.year(), m + 1),
        };
        chrono::NaiveDate::from_ymd_opt(y, m, 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map_or(now + Duration::days(30), |d| d.and_utc())
    };
    let mut out = Vec::new();
    for k in skus {
        let prefix: String = k.sku_id.chars().take(8).collect();
        for (n, (status, seats, next)) in [
            ("Enabled", k.enabled, month_end),
            ("Warning", k.warning, now + Duration::days(20)),
            ("Suspended", k.suspended, now + Duration::days(60)),
            ("LockedOut", k.locked_out, now + Duration::days(30)),
        ]
        .into_iter()
        .enumerate()
        {
            if seats > 0 {
                out.push(crate::scenario::CommerceSpec {
                    id: format!("{prefix}-0000-4000-8000-00000000000{n}"),
                    sku_id: k.sku_id.clone(),
                    status: status.into(),
                    total_licenses: seats,
                    next_lifecycle: next,
                    is_trial: false,
                    created: Some(now - Duration::days(400)),
                });
            }
        }
    }
    out
}

fn lcg(x: u64) -> u64 {
    x.wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407)
}

impl Tenant {
    /// Builds the tenant from a scenario: licences are applied as they stand (group processing runs in member
    /// order, so seats run out for the last members), and the audit history is written at its own times.
    pub fn from_scenario(s: Scenario) -> Self {
        let mut t = Tenant {
            tenant_id: s.tenant_id.clone(),
            domain: s.domain.clone(),
            now: s.now,
            default_usage_location: s.default_usage_location.clone(),
            audit_retention: Duration::days(s.directory_audit_retention_days),
            app: s.app.clone(),
            skus: s.skus.clone(),
            conflicts: s.conflicts.clone(),
            groups: s
                .groups
                .iter()
                .map(|g| Group {
                    id: g.id.clone(),
                    display_name: g.display_name.clone(),
                    licenses: g.licenses.clone(),
                    members: vec![],
                })
                .collect(),
            users: Users::with_capacity(s.users.len()),
            index: HashMap::with_capacity(s.users.len() * 2),
            directory_audits: vec![],
            blobs: vec![],
            subscriptions: BTreeMap::new(),
            feeds_started: BTreeMap::new(),
            mail: vec![],
            writes: vec![],
            seed: s.seed,
            counter: 0,
            seats_used: HashMap::new(),
            delta: Default::default(),
            changed: Vec::new(),
            consent_revoked: false,
            behaviour: s.behaviour.clone(),
            queued_processing: Vec::new(),
            replicas: HashMap::new(),
            audit_queries: Vec::new(),
            building: true,
            feeds_disabled: BTreeMap::new(),
            commerce: s
                .commerce
                .clone()
                .unwrap_or_else(|| derived_commerce(&s.skus, s.now)),
            premium: s.premium.unwrap_or_else(|| {
                s.skus.iter().any(|k| {
                    k.enabled > 0 && k.service_plans.iter().any(|p| p.name == "AAD_PREMIUM")
                })
            }),
        };
        for spec in s.users {
            t.insert_user(spec, false);
        }
        for a in s.audit {
            let Some(i) = t.find_user(&a.user) else {
                continue;
            };
            let actor = a.actor.clone();
            let lic = LicenseSpec::plain(&a.sku_ids);
            match a.kind {
                AuditKind::Assign => t.audit_change(a.at, i, actor.as_deref(), &[], &lic, None),
                AuditKind::Remove => t.audit_change(a.at, i, actor.as_deref(), &lic, &[], None),
                AuditKind::FailedAssignment => {
                    let reason = a
                        .reason
                        .clone()
                        .unwrap_or_else(|| "License assignment failed.".into());
                    t.audit_change(a.at, i, actor.as_deref(), &[], &lic, Some(&reason))
                }
            }
        }
        if let Some(at) = s.feeds_started_at {
            for ct in CONTENT_TYPES {
                t.subscriptions.insert(ct.to_string(), true);
                t.feeds_started.insert(ct.to_string(), at);
            }
        }
        t.building = false;
        // The tenant as it starts is not a change anybody is notified of.
        t.changed.clear();
        t.users.keep_before = t.behaviour.read_lag_seconds > 0;
        t
    }

    /// Notes a change to a user for the change notifier (Graph notifies subscribers of `/users`); with a read lag,
    /// reads by id show the user as it was until the lag has passed since this change.
    pub(crate) fn touch(&mut self, ui: usize, change: &'static str) {
        let id = self.users[ui].spec.id.clone();
        if let Some(was) = self.users.before.remove(&ui) {
            let until = self.now + Duration::seconds(self.behaviour.read_lag_seconds as i64);
            let now = self.now;
            let replica = self
                .replicas
                .entry(id.to_ascii_lowercase())
                .or_insert((until, was.clone()));
            if replica.0 <= now {
                replica.1 = was;
            }
            replica.0 = until;
        }
        self.changed.push((id, change, self.now));
    }

    /// The user as a read by id shows it: as it was before a change made less than the read lag ago.
    pub(crate) fn as_read(&self, ui: usize) -> &User {
        let id = self.users[ui].spec.id.to_ascii_lowercase();
        match self.replicas.get(&id) {
            Some((until, was)) if *until > self.now => was,
            _ => &self.users[ui],
        }
    }

    /// Adds a user; with `audit`, its licences are assigned now and logged.
    pub(crate) fn insert_user(&mut self, mut spec: UserSpec, audit: bool) -> usize {
        if spec.proxy_addresses.is_none() {
            spec.proxy_addresses = Some(spec.mail.iter().map(|m| format!("SMTP:{m}")).collect());
        }
        let i = self.users.len();
        self.index.insert(spec.id.to_ascii_lowercase(), i);
        self.index.insert(spec.upn.to_ascii_lowercase(), i);
        let direct = std::mem::take(&mut spec.licenses);
        let groups = spec.groups.clone();
        self.users.push(User {
            spec,
            assignments: vec![],
            plan_dates: HashMap::new(),
            deleted_plans: BTreeMap::new(),
        });
        self.touch(i, "created");
        if !direct.is_empty() {
            // A user created with licences is logged as one "Add user" that carries them, not as a licence change.
            if self.assign_direct(i, &direct, &[], None, false).is_ok() && audit {
                let now = self.now;
                let licences = self.users[i].active_licenses();
                self.audit_add_user(now, i, &licences);
            }
        }
        for g in groups {
            if let Some(gi) = self.groups.iter().position(|x| x.id == g) {
                self.groups[gi].members.push(self.users[i].spec.id.clone());
                self.process_group(gi, &[i], audit);
            }
        }
        i
    }

    /// Deletes a user (by id or UPN): its seats are released and it leaves its groups. Returns its id.
    pub(crate) fn remove_user(&mut self, key: &str) -> Option<String> {
        let ui = self.find_user(key)?;
        let before = self.users[ui].active_licenses();
        self.count_seats(&before, &[]);
        let user = self.users.remove(ui);
        self.changed
            .push((user.spec.id.clone(), "deleted", self.now));
        for g in &mut self.groups {
            g.members.retain(|m| !m.eq_ignore_ascii_case(&user.spec.id));
        }
        self.index.clear();
        for (i, u) in self.users.iter().enumerate() {
            self.index.insert(u.spec.id.to_ascii_lowercase(), i);
            self.index.insert(u.spec.upn.to_ascii_lowercase(), i);
        }
        Some(user.spec.id)
    }

    /// Finds a user by id or UPN (case-insensitive).
    pub(crate) fn find_user(&self, key: &str) -> Option<usize> {
        self.index.get(&key.to_ascii_lowercase()).copied()
    }

    /// Finds a SKU.
    pub fn sku(&self, sku_id: &str) -> Option<&SkuSpec> {
        self.skus
            .iter()
            .find(|s| s.sku_id.eq_ignore_ascii_case(sku_id))
    }

    /// Seats in use: one per user holding at least one active assignment of the SKU.
    pub fn consumed(&self, sku_id: &str) -> i64 {
        self.seats_used
            .get(&sku_id.to_ascii_lowercase())
            .copied()
            .unwrap_or(0)
    }

    /// Moves seat counts from the SKUs in `before` to those in `after` (one user's active licences).
    pub(crate) fn count_seats(&mut self, before: &[LicenseSpec], after: &[LicenseSpec]) {
        for l in before {
            if !after.iter().any(|a| a.sku_id == l.sku_id) {
                *self
                    .seats_used
                    .entry(l.sku_id.to_ascii_lowercase())
                    .or_insert(0) -= 1;
            }
        }
        for l in after {
            if !before.iter().any(|b| b.sku_id == l.sku_id) {
                *self
                    .seats_used
                    .entry(l.sku_id.to_ascii_lowercase())
                    .or_insert(0) += 1;
            }
        }
    }

    pub(crate) fn next_id(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    pub(crate) fn plans_of(&self, lic: &LicenseSpec) -> Vec<PlanSpec> {
        self.sku(&lic.sku_id)
            .map(|s| {
                s.service_plans
                    .iter()
                    .filter(|p| {
                        !lic.disabled_plans
                            .iter()
                            .any(|d| d.eq_ignore_ascii_case(&p.id))
                    })
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The first conflict between `lic` and the user's other active licences, as (new plan, existing plan).
    fn conflict_for(&self, ui: usize, lic: &LicenseSpec) -> Option<(String, String)> {
        let new_plans = self.plans_of(lic);
        let u = &self.users[ui];
        for a in u
            .assignments
            .iter()
            .filter(|a| a.state == "Active" && a.sku_id != lic.sku_id)
        {
            let existing = self.plans_of(&LicenseSpec {
                sku_id: a.sku_id.clone(),
                disabled_plans: a.disabled_plans.clone(),
            });
            for n in &new_plans {
                for e in &existing {
                    let hit = self.conflicts.iter().any(|[x, y]| {
                        (x.eq_ignore_ascii_case(&n.id) && y.eq_ignore_ascii_case(&e.id))
                            || (y.eq_ignore_ascii_case(&n.id) && x.eq_ignore_ascii_case(&e.id))
                    });
                    if hit {
                        return Some((n.name.clone(), e.name.clone()));
                    }
                }
            }
        }
        None
    }

    /// Direct assignment (`POST /users/{id}/assignLicense`): all of the request applies or none of it.
    pub(crate) fn assign_direct(
        &mut self,
        ui: usize,
        add: &[LicenseSpec],
        remove: &[String],
        actor: Option<&str>,
        audit: bool,
    ) -> Result<(), LicenseError> {
        let now = self.now;
        let before = self.users[ui].active_licenses();
        let fail = |t: &mut Self, e: LicenseError| {
            if audit {
                let lic: Vec<LicenseSpec> = add.to_vec();
                t.audit_change(now, ui, actor, &[], &lic, Some(&e.message));
            }
            Err(e)
        };
        for l in add {
            let Some(sku) = self.sku(&l.sku_id) else {
                return fail(
                    self,
                    LicenseError {
                        status: 400,
                        code: "Request_BadRequest",
                        message: format!(
                            "License {} does not correspond to a valid company License.",
                            l.sku_id
                        ),
                    },
                );
            };
            let (sku_id, enabled) = (sku.sku_id.clone(), sku.enabled + sku.warning);
            if self.users[ui]
                .spec
                .usage_location
                .as_deref()
                .unwrap_or("")
                .is_empty()
            {
                return fail(
                    self,
                    LicenseError {
                        status: 400,
                        code: "Request_BadRequest",
                        message: "License assignment cannot be done for user with invalid usage location.".into(),
                    },
                );
            }
            if !self.users[ui].holds(&sku_id) && self.consumed(&sku_id) >= enabled {
                return fail(
                    self,
                    LicenseError {
                        status: 400,
                        code: "Request_BadRequest",
                        message: format!(
                            "Subscription with SKU {sku_id} does not have any available licenses."
                        ),
                    },
                );
            }
            if let Some((n, e)) = self.conflict_for(ui, l) {
                return fail(
                    self,
                    LicenseError {
                        status: 400,
                        code: "Request_BadRequest",
                        message: format!(
                            "License assignment failed because service plans {n},{e} are mutually exclusive."
                        ),
                    },
                );
            }
        }
        for r in remove {
            let held = |by_group: bool| {
                self.users[ui]
                    .assignments
                    .iter()
                    .any(|a| a.by_group.is_some() == by_group && a.sku_id.eq_ignore_ascii_case(r))
            };
            if !held(false) && held(true) {
                return fail(
                    self,
                    LicenseError {
                        status: 400,
                        code: "Request_BadRequest",
                        message: "User license is inherited from a group membership and it cannot be removed directly from the user.".into(),
                    },
                );
            }
            if !held(false) {
                return fail(
                    self,
                    LicenseError {
                        status: 400,
                        code: "Request_BadRequest",
                        message: format!(
                            "User does not have a corresponding license {r} assigned directly."
                        ),
                    },
                );
            }
        }
        let u = &mut self.users[ui];
        u.assignments.retain(|a| {
            !(a.by_group.is_none() && remove.iter().any(|r| r.eq_ignore_ascii_case(&a.sku_id)))
        });
        for l in add {
            u.assignments
                .retain(|a| !(a.by_group.is_none() && a.sku_id.eq_ignore_ascii_case(&l.sku_id)));
            u.assignments.push(Assignment {
                sku_id: l.sku_id.to_ascii_lowercase(),
                disabled_plans: l.disabled_plans.clone(),
                by_group: None,
                state: "Active",
                error: None,
                updated: now,
            });
        }
        self.settle_plans(ui, &before, actor, audit);
        // Groups whose licences were blocked by seats or conflicts may now succeed or fail differently.
        Ok(())
    }

    /// Runs group licensing for some members, logged as Microsoft logs it: "Start applying group based license to
    /// users", each member's licence change, then "Finish applying group based license to users" with the counts
    /// (there is no per-user failure record).
    pub(crate) fn process_group(&mut self, gi: usize, members: &[usize], audit: bool) {
        let now = self.now;
        if audit {
            self.audit_group_run(now, gi, None);
        }
        let failed = members
            .iter()
            .filter(|&&ui| self.process_group_for_user(gi, ui, audit))
            .count();
        if audit {
            self.audit_group_run(now, gi, Some((members.len() - failed, failed)));
        }
    }

    /// Re-runs group licensing for one member (all-or-none for each group). True when it failed.
    fn process_group_for_user(&mut self, gi: usize, ui: usize, audit: bool) -> bool {
        let now = self.now;
        let before = self.users[ui].active_licenses();
        let gid = self.groups[gi].id.clone();
        let licenses = self.groups[gi].licenses.clone();
        // Drop this group's assignments first so its own seats do not count against it.
        self.users[ui]
            .assignments
            .retain(|a| a.by_group.as_deref() != Some(gid.as_str()));
        let mut failures: Vec<(usize, &'static str)> = Vec::new();
        let location = self.users[ui]
            .spec
            .usage_location
            .clone()
            .filter(|l| !l.is_empty())
            .unwrap_or_else(|| self.default_usage_location.clone());
        for (k, l) in licenses.iter().enumerate() {
            let Some(sku) = self.sku(&l.sku_id) else {
                failures.push((k, "Other"));
                continue;
            };
            let capacity = sku.enabled + sku.warning;
            if location.is_empty() {
                failures.push((k, "ProhibitedInUsageLocationViolation"));
            } else if !self.users[ui].holds(&l.sku_id) && self.consumed(&l.sku_id) >= capacity {
                failures.push((k, "CountViolation"));
            } else if self.conflict_for(ui, l).is_some() {
                failures.push((k, "MutuallyExclusiveViolation"));
            }
        }
        let u = &mut self.users[ui];
        for (k, l) in licenses.iter().enumerate() {
            let error = if failures.is_empty() {
                None
            } else {
                Some(
                    failures
                        .iter()
                        .find(|(i, _)| *i == k)
                        .map(|(_, e)| *e)
                        .unwrap_or("Other")
                        .to_string(),
                )
            };
            u.assignments.push(Assignment {
                sku_id: l.sku_id.to_ascii_lowercase(),
                disabled_plans: l.disabled_plans.clone(),
                by_group: Some(gid.clone()),
                state: if error.is_some() { "Error" } else { "Active" },
                error,
                updated: now,
            });
        }
        self.settle_plans(ui, &before, Some(GROUP_LICENSING_APP), audit);
        !failures.is_empty()
    }

    /// Reprocesses every group assignment of a user.
    pub fn reprocess_user(&mut self, ui: usize) {
        let uid = self.users[ui].spec.id.clone();
        let groups: Vec<usize> = (0..self.groups.len())
            .filter(|&g| self.groups[g].members.contains(&uid))
            .collect();
        for g in groups {
            self.process_group(g, &[ui], true);
        }
    }

    /// Reprocesses every member of a group.
    pub(crate) fn reprocess_group(&mut self, gi: usize) {
        let members: Vec<usize> = self.groups[gi]
            .members
            .iter()
            .filter_map(|m| self.find_user(m))
            .collect();
        self.process_group(gi, &members, true);
    }

    /// Updates plan dates and deleted plans after a change and writes the audit trail when the SKU set changed.
    fn settle_plans(
        &mut self,
        ui: usize,
        before: &[LicenseSpec],
        actor: Option<&str>,
        audit: bool,
    ) {
        let now = self.now;
        let after = self.users[ui].active_licenses();
        self.count_seats(before, &after);
        let before_plans: Vec<PlanSpec> = before.iter().flat_map(|l| self.plans_of(l)).collect();
        let after_plans: Vec<PlanSpec> = after.iter().flat_map(|l| self.plans_of(l)).collect();
        let u = &mut self.users[ui];
        for p in &after_plans {
            u.plan_dates.entry(p.id.clone()).or_insert(now);
            u.deleted_plans.remove(&p.id);
        }
        for p in &before_plans {
            if !after_plans.iter().any(|a| a.id == p.id) {
                u.plan_dates.remove(&p.id);
                u.deleted_plans.insert(p.id.clone(), p.service.clone());
            }
        }
        if before != after.as_slice() {
            self.touch(ui, "updated");
        }
        if audit && before != after.as_slice() {
            self.audit_change(now, ui, actor, before, &after, None);
        }
    }

    /// Places a record into a blob: blobs are per content type and hour of the event, available about an hour
    /// later. Some blobs show up in listings late, some records are also repeated in the next blob.
    pub(crate) fn add_management_record(
        &mut self,
        content_type: &str,
        at: DateTime<Utc>,
        record: Value,
    ) {
        let bucket = at.duration_trunc(Duration::hours(1)).unwrap_or(at);
        let created = bucket + Duration::minutes(65);
        let x = lcg(self.seed ^ self.counter.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        self.counter += 1;
        let duplicate = x.is_multiple_of(7);
        self.put_in_blob(content_type, created, record.clone());
        if duplicate {
            self.put_in_blob(content_type, created + Duration::hours(1), record);
        }
    }

    fn put_in_blob(&mut self, content_type: &str, created: DateTime<Utc>, record: Value) {
        let now = self.now;
        // Blobs are immutable once they can be listed: a record for a sealed blob starts a new one.
        if let Some(b) = self.blobs.iter_mut().rev().find(|b| {
            b.content_type == content_type && b.meant_for == created && b.visible_from > now
        }) {
            b.records.push(record);
            return;
        }
        let n = self.next_id();
        let meant_for = created;
        let created = if created <= now {
            now + Duration::minutes(5)
        } else {
            created
        };
        let late = lcg(self.seed.wrapping_add(n)).is_multiple_of(5);
        let visible_from = if late {
            created + Duration::hours(3)
        } else {
            created
        };
        self.blobs.push(Blob {
            content_id: format!(
                "{}${}${}{:06}",
                created.format("%Y%m%d%H%M%S"),
                content_type.replace('.', ""),
                self.tenant_id.replace('-', ""),
                n
            ),
            content_type: content_type.to_string(),
            created,
            meant_for,
            visible_from,
            historical: self.building,
            records: vec![record],
            body: Default::default(),
        });
    }

    /// Records in a blob in a deterministic, non-chronological order.
    pub(crate) fn blob_records<'b>(&self, blob: &'b Blob) -> Vec<&'b Value> {
        let mut r: Vec<&Value> = blob.records.iter().collect();
        let mut x = lcg(self.seed ^ blob.records.len() as u64);
        for i in (1..r.len()).rev() {
            x = lcg(x);
            r.swap(i, (x % (i as u64 + 1)) as usize);
        }
        r
    }

    /// A blob's body as the API serves it: a JSON array of its records, in [`Tenant::blob_records`]' order.
    pub(crate) fn blob_body(&self, blob: &Blob) -> axum::body::Bytes {
        blob.body
            .get_or_init(|| {
                serde_json::to_vec(&self.blob_records(blob))
                    .unwrap_or_default()
                    .into()
            })
            .clone()
    }

    /// Advances the clock.
    pub fn advance(&mut self, by: Duration) {
        self.now += by;
        self.process_due();
    }

    /// Queues a user's group-based licences for processing, as `reprocessLicenseAssignment` does: done once
    /// `group_processing_seconds` have passed on the simulated clock (at once when 0).
    pub(crate) fn queue_reprocess(&mut self, ui: usize) {
        let after = Duration::seconds(self.behaviour.group_processing_seconds as i64);
        if after.is_zero() {
            self.reprocess_user(ui);
            return;
        }
        let id = self.users[ui].spec.id.clone();
        self.queued_processing.push((self.now + after, id));
    }

    /// Queues every member of a group for processing, as a change to the group's licences does (asynchronous at
    /// Microsoft: members' states change only when processing ends).
    pub(crate) fn queue_group(&mut self, gi: usize) {
        if self.behaviour.group_processing_seconds == 0 {
            self.reprocess_group(gi);
            return;
        }
        let members: Vec<usize> = self.groups[gi]
            .members
            .iter()
            .filter_map(|m| self.find_user(m))
            .collect();
        for ui in members {
            self.queue_reprocess(ui);
        }
    }

    /// Whether processing is queued for a member of this group (its `licenseProcessingState`).
    pub(crate) fn group_queued(&self, gi: usize) -> bool {
        let members = &self.groups[gi].members;
        self.queued_processing
            .iter()
            .any(|(_, id)| members.iter().any(|m| m.eq_ignore_ascii_case(id)))
    }

    /// Processes the queued work whose time has come, oldest first.
    fn process_due(&mut self) {
        let now = self.now;
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.queued_processing)
            .into_iter()
            .partition(|(at, _)| *at <= now);
        self.queued_processing = later;
        for (_, id) in due {
            if let Some(ui) = self.find_user(&id) {
                self.reprocess_user(ui);
            }
        }
    }
}

impl User {
    /// True when the user holds the SKU through at least one active assignment.
    pub fn holds(&self, sku_id: &str) -> bool {
        self.assignments
            .iter()
            .any(|a| a.state == "Active" && a.sku_id.eq_ignore_ascii_case(sku_id))
    }

    /// Active licences, one per SKU, sorted by SKU id.
    pub(crate) fn active_licenses(&self) -> Vec<LicenseSpec> {
        let mut out: Vec<LicenseSpec> = Vec::new();
        for a in self.assignments.iter().filter(|a| a.state == "Active") {
            if !out.iter().any(|l| l.sku_id == a.sku_id) {
                out.push(LicenseSpec {
                    sku_id: a.sku_id.clone(),
                    disabled_plans: a.disabled_plans.clone(),
                });
            }
        }
        out.sort_by(|a, b| a.sku_id.cmp(&b.sku_id));
        out
    }
}

// What `/users/delta` keeps (`server::delta` serves it): the tenant's own state, so that the tenant names no
// route.

/// Fingerprints and the record map hash with foldhash: every round fingerprints every user of the tenant, and
/// SipHash made a 100,000-user round take longer than Graph's answer (which the latency fault stands for).
pub(crate) type Fast = foldhash::fast::FixedState;

/// One user's state as of a baseline.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    pub(crate) baseline: u64,
    pub(crate) fingerprint: u64,
    pub(crate) user: Box<User>,
}

/// A round's answer, computed on its first page and served page by page.
#[derive(Debug, Clone)]
pub(crate) enum Entry {
    /// A user created since the token: every selected property.
    New(String),
    /// A user updated since: the properties (bits of `USER_PROPS`) that changed, and the round compared from
    /// (its record there holds what delta last saw of the untracked property).
    Updated(String, u32, u64),
    /// A user deleted since.
    Removed(String, &'static str),
}

/// The delta state of the tenant.
#[derive(Debug, Default)]
pub(crate) struct DeltaState {
    pub(crate) next: u64,
    /// Baselines a token may name, with when each was taken.
    pub(crate) baselines: BTreeMap<u64, DateTime<Utc>>,
    pub(crate) records: HashMap<String, Vec<Record>, Fast>,
    /// The ids recorded at each baseline.
    pub(crate) recorded: BTreeMap<u64, Vec<String>>,
    /// The SKUs' part of the fingerprints at the last baseline.
    pub(crate) skus: Option<u64>,
    /// Removed users: id → (the sequence number of the removal, permanent).
    pub(crate) removed: Vec<(String, u64, bool)>,
    pub(crate) rounds: BTreeMap<u64, Vec<Entry>>,
}

impl DeltaState {
    /// Removes a user: soft (`changed`, restorable) or permanent (`deleted`).
    pub(crate) fn note_removed(&mut self, id: &str, permanent: bool) {
        self.next += 1;
        self.removed.push((id.to_string(), self.next, permanent));
    }

    /// Every token issued so far stops working (as when Microsoft drops a tenant's sync state).
    pub(crate) fn expire_all(&mut self) -> usize {
        let n = self.baselines.len();
        self.baselines.clear();
        self.rounds.clear();
        n
    }
}
