//! The `/_sim/` control API: clock, faults, tenant changes and what the simulator recorded.
// Route helpers return the ready error `Response` as their `Err` (see the module above).
#![allow(clippy::result_large_err)]

use super::*;

pub(super) async fn ctl_state(State(s): State<Arc<Shared>>) -> Response {
    let t = s.tenant();
    Json(json!({"tenant_id": t.tenant_id, "now": t.now, "users": t.users.len(), "groups": t.groups.len(),
        "skus": t.skus.iter().map(|k| json!({"sku_id": k.sku_id, "sku_part_number": k.sku_part_number,
            "enabled": k.enabled, "consumed": t.consumed(&k.sku_id)})).collect::<Vec<_>>(),
        "directory_audits": t.directory_audits.len(), "blobs": t.blobs.len(), "mail": t.mail.len(), "writes": t.writes.len()}))
    .into_response()
}

#[derive(Deserialize)]
pub(super) struct ClockBody {
    #[serde(default)]
    pub(super) advance_days: i64,
    #[serde(default)]
    pub(super) advance_hours: i64,
    #[serde(default)]
    pub(super) advance_minutes: i64,
    #[serde(default)]
    pub(super) set: Option<DateTime<Utc>>,
}

pub(super) async fn ctl_clock(State(s): State<Arc<Shared>>, Json(b): Json<ClockBody>) -> Response {
    let mut t = s.tenant();
    if let Some(at) = b.set {
        t.now = at;
    }
    t.advance(
        Duration::days(b.advance_days)
            + Duration::hours(b.advance_hours)
            + Duration::minutes(b.advance_minutes),
    );
    Json(json!({"now": t.now})).into_response()
}

pub(super) async fn ctl_add_fault(State(s): State<Arc<Shared>>, Json(f): Json<Fault>) -> Response {
    s.faults().add(f);
    StatusCode::NO_CONTENT.into_response()
}

pub(super) async fn ctl_faults(State(s): State<Arc<Shared>>) -> Response {
    Json(json!(s.faults().list())).into_response()
}

pub(super) async fn ctl_clear_faults(State(s): State<Arc<Shared>>) -> Response {
    s.faults().clear();
    StatusCode::NO_CONTENT.into_response()
}

pub(super) async fn ctl_add_user(
    State(s): State<Arc<Shared>>,
    Json(u): Json<UserSpec>,
) -> Response {
    let mut t = s.tenant();
    if t.find_user(&u.id).is_some() || t.find_user(&u.upn).is_some() {
        return (
            StatusCode::CONFLICT,
            Json(json!({"error": "a user with this id or upn exists"})),
        )
            .into_response();
    }
    let i = t.insert_user(u, true);
    (StatusCode::CREATED, Json(render_user(&t, i, None))).into_response()
}

#[derive(Deserialize)]
pub(super) struct CtlLicenses {
    #[serde(default)]
    pub(super) add: Vec<LicenseSpec>,
    #[serde(default)]
    pub(super) remove: Vec<String>,
    #[serde(default)]
    pub(super) actor: Option<String>,
}

pub(super) async fn ctl_user_licenses(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    Json(b): Json<CtlLicenses>,
) -> Response {
    let mut t = s.tenant();
    let Some(ui) = t.find_user(&id) else {
        return user_not_found(&id);
    };
    let actor = admin_or(b.actor, &t);
    match t.assign_direct(ui, &b.add, &b.remove, Some(&actor), true) {
        Ok(()) => Json(render_user(&t, ui, None)).into_response(),
        Err(e) => graph_error(StatusCode::BAD_REQUEST, e.code, &e.message),
    }
}

/// The actor named by a control call, or the tenant's admin account.
pub(super) fn admin_or(actor: Option<String>, t: &Tenant) -> String {
    actor.unwrap_or_else(|| format!("admin@{}", t.domain))
}

#[derive(Deserialize)]
pub(super) struct CtlFailed {
    pub(super) sku_ids: Vec<String>,
    pub(super) reason: String,
    #[serde(default)]
    pub(super) actor: Option<String>,
}

pub(super) async fn ctl_failed_assignment(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    Json(b): Json<CtlFailed>,
) -> Response {
    let mut t = s.tenant();
    let Some(ui) = t.find_user(&id) else {
        return user_not_found(&id);
    };
    let actor = admin_or(b.actor, &t);
    let lic = LicenseSpec::plain(&b.sku_ids);
    let now = t.now;
    t.audit_change(now, ui, Some(&actor), &[], &lic, Some(&b.reason));
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
pub(super) struct CtlLocation {
    pub(super) usage_location: Option<String>,
}

pub(super) async fn ctl_usage_location(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    Json(b): Json<CtlLocation>,
) -> Response {
    let mut t = s.tenant();
    let Some(ui) = t.find_user(&id) else {
        return user_not_found(&id);
    };
    t.users[ui].spec.usage_location = b.usage_location;
    t.touch(ui, "updated");
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
pub(super) struct CtlSeats {
    #[serde(default)]
    pub(super) enabled: Option<i64>,
    #[serde(default)]
    pub(super) warning: Option<i64>,
    #[serde(default)]
    pub(super) suspended: Option<i64>,
}

pub(super) async fn ctl_seats(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    Json(b): Json<CtlSeats>,
) -> Response {
    let mut t = s.tenant();
    let Some(k) = t
        .skus
        .iter_mut()
        .find(|k| k.sku_id.eq_ignore_ascii_case(&id) || k.sku_part_number == id)
    else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("no SKU {id}")})),
        )
            .into_response();
    };
    if let Some(e) = b.enabled {
        k.enabled = e.max(0);
    }
    if let Some(w) = b.warning {
        k.warning = w.max(0);
    }
    if let Some(su) = b.suspended {
        k.suspended = su.max(0);
    }
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
pub(super) struct CtlMembers {
    #[serde(default)]
    pub(super) add: Vec<String>,
    #[serde(default)]
    pub(super) remove: Vec<String>,
}

pub(super) async fn ctl_group_members(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    Json(b): Json<CtlMembers>,
) -> Response {
    let mut t = s.tenant();
    let Some(gi) = t.groups.iter().position(|g| g.id.eq_ignore_ascii_case(&id)) else {
        return group_not_found(&id);
    };
    for m in b.remove {
        if let Some(ui) = t.find_user(&m) {
            let uid = t.users[ui].spec.id.clone();
            let gid = t.groups[gi].id.clone();
            t.groups[gi].members.retain(|x| x != &uid);
            let before = t.users[ui].active_licenses();
            t.users[ui]
                .assignments
                .retain(|a| a.by_group.as_deref() != Some(gid.as_str()));
            let after = t.users[ui].active_licenses();
            t.count_seats(&before, &after);
            if before != after {
                t.touch(ui, "updated");
                let now = t.now;
                t.audit_change(now, ui, None, &before, &after, None);
            }
        }
    }
    for m in b.add {
        if let Some(ui) = t.find_user(&m) {
            let uid = t.users[ui].spec.id.clone();
            if !t.groups[gi].members.contains(&uid) {
                t.groups[gi].members.push(uid);
            }
            t.process_group(gi, &[ui], true);
        }
    }
    StatusCode::NO_CONTENT.into_response()
}

pub(super) async fn ctl_mail(State(s): State<Arc<Shared>>) -> Response {
    Json(json!(s.tenant().mail)).into_response()
}

pub(super) async fn ctl_writes(State(s): State<Arc<Shared>>) -> Response {
    Json(json!(s.tenant().writes)).into_response()
}

pub(super) async fn ctl_requests(State(s): State<Arc<Shared>>) -> Response {
    let log = s.requests.lock().unwrap_or_else(|p| p.into_inner());
    let v: Vec<Value> = log
        .iter()
        .map(|(m, p, st)| json!({"method": m, "path": p, "status": st}))
        .collect();
    Json(v).into_response()
}

pub(super) async fn ctl_revoke(State(s): State<Arc<Shared>>) -> Response {
    s.tokens().clear();
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
pub(super) struct CtlGenerate {
    pub(super) records: usize,
    pub(super) blobs: usize,
    #[serde(default = "default_ct")]
    pub(super) content_type: String,
}

pub(super) fn default_ct() -> String {
    "Audit.AzureActiveDirectory".into()
}

/// Fills the feed with synthetic records spread evenly over `blobs` blobs in the last hours (benchmarks).
/// Records to serve as they are: directory audits (Graph shape) and Management Activity API records, e.g. real
/// records replayed in tests. Each is placed at its own time (`activityDateTime` / `CreationTime`) or now.
#[derive(Deserialize)]
pub(super) struct CtlRecords {
    #[serde(default)]
    pub(super) directory: Vec<Value>,
    #[serde(default)]
    pub(super) management: Vec<Value>,
    #[serde(default = "azure_ad_content")]
    pub(super) content_type: String,
}

pub(super) fn azure_ad_content() -> String {
    "Audit.AzureActiveDirectory".into()
}

pub(super) async fn ctl_audit_records(
    State(s): State<Arc<Shared>>,
    Json(b): Json<CtlRecords>,
) -> Response {
    let mut t = s.tenant();
    let now = t.now;
    let directory = b.directory.len();
    for r in b.directory {
        let at = r["activityDateTime"]
            .as_str()
            .and_then(|v| DateTime::parse_from_rfc3339(v).ok())
            .map_or(now, |d| d.to_utc());
        t.directory_audits
            .push(crate::tenant::DirectoryAudit { at, json: r });
    }
    let management = b.management.len();
    for r in b.management {
        let at = r["CreationTime"]
            .as_str()
            .and_then(|v| {
                chrono::NaiveDateTime::parse_from_str(
                    v.trim_end_matches('Z'),
                    "%Y-%m-%dT%H:%M:%S%.f",
                )
                .ok()
            })
            .map_or(now, |d| d.and_utc());
        t.add_management_record(&b.content_type, at, r);
    }
    (
        StatusCode::CREATED,
        Json(json!({"directory": directory, "management": management})),
    )
        .into_response()
}

pub(super) async fn ctl_generate_audit(
    State(s): State<Arc<Shared>>,
    Json(b): Json<CtlGenerate>,
) -> Response {
    let mut t = s.tenant();
    let blobs = b.blobs.max(1);
    let per = b.records / blobs;
    let now = t.now;
    let tenant = t.tenant_id.clone();
    let created_of = |k: usize| now - Duration::minutes(((blobs - k) % (6 * 24 * 60)) as i64 + 10);
    for k in 0..blobs {
        let created = created_of(k);
        let records: Vec<Value> = (0..per)
            .map(|i| {
                // Every hundredth record repeats one of the blob before, as Microsoft repeats records.
                let (k, i) = if i % 100 == 99 && k > 0 { (k - 1, i - 1) } else { (k, i) };
                json!({"CreationTime": (created_of(k) - Duration::minutes(70)).format("%Y-%m-%dT%H:%M:%S").to_string(),
                    "Id": format!("{k:08x}-b0b0-4b0b-8b0b-{i:012x}"), "Operation": "UserLoggedIn",
                    "OrganizationId": tenant, "RecordType": 15, "ResultStatus": "Success",
                    "UserKey": format!("user{i}@{tenant}"), "UserType": 0, "Workload": "AzureActiveDirectory",
                    "ObjectId": "00000002-0000-0ff1-ce00-000000000000", "UserId": format!("user{}@contoso.com", i % 1000),
                    "AzureActiveDirectoryEventType": 0, "ExtendedProperties": [], "ModifiedProperties": []})
            })
            .collect();
        t.blobs.push(crate::tenant::Blob {
            content_id: format!("bench${}${k:08}", b.content_type.replace('.', "")),
            content_type: b.content_type.clone(),
            created,
            meant_for: created,
            visible_from: created,
            historical: false,
            records,
            body: Default::default(),
        });
    }
    t.subscriptions.insert(b.content_type.clone(), true);
    (
        StatusCode::CREATED,
        Json(json!({"blobs": blobs, "records": per * blobs})),
    )
        .into_response()
}

/// Adds or replaces a commercial subscription (by id).
pub(super) async fn ctl_commerce(
    State(s): State<Arc<Shared>>,
    Json(c): Json<crate::scenario::CommerceSpec>,
) -> Response {
    let mut t = s.tenant();
    t.commerce.retain(|x| x.id != c.id);
    t.commerce.push(c);
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
pub(super) struct ConsentBody {
    revoked: bool,
}

/// Revokes (or restores) the app's consent in the tenant named by `x-sim-tenant`.
pub(super) async fn ctl_consent(
    State(s): State<Arc<Shared>>,
    Json(b): Json<ConsentBody>,
) -> Response {
    let mut t = s.tenant();
    t.consent_revoked = b.revoked;
    if b.revoked {
        drop(t);
        // Its tokens stop working too.
        let tenant = s.current();
        s.tokens().retain(|_, (_, i)| *i != tenant);
    }
    StatusCode::NO_CONTENT.into_response()
}
