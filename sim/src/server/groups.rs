//! Graph groups: listing and filters, `membersWithLicenseErrors`, group licence assignment.
// Route helpers return the ready error `Response` as their `Err` (see the module above).
#![allow(clippy::result_large_err)]

use super::*;

pub(super) fn group_has_errors(t: &Tenant, gi: usize) -> bool {
    let gid = &t.groups[gi].id;
    t.groups[gi].members.iter().any(|m| {
        t.find_user(m).is_some_and(|ui| {
            t.users[ui]
                .assignments
                .iter()
                .any(|a| a.by_group.as_deref() == Some(gid.as_str()) && a.error.is_some())
        })
    })
}

/// Keeps only the `$select`ed properties of an entity (and its `id`, which Graph always returns).
pub(super) fn selected(mut v: Value, select: Option<&HashSet<String>>) -> Value {
    if let (Some(sel), Some(m)) = (select, v.as_object_mut()) {
        m.retain(|k, _| k == "id" || sel.contains(&k.to_ascii_lowercase()));
    }
    v
}

pub(super) fn render_group(t: &Tenant, gi: usize) -> Value {
    let g = &t.groups[gi];
    let processing = if t.group_queued(gi) {
        "QueuedForProcessing"
    } else {
        "ProcessingComplete"
    };
    json!({"id": g.id, "displayName": g.display_name, "securityEnabled": true, "mailEnabled": false, "groupTypes": [],
        "assignedLicenses": g.licenses.iter().map(|l| json!({"disabledPlans": l.disabled_plans, "skuId": l.sku_id})).collect::<Vec<_>>(),
        "licenseProcessingState": {"state": processing}})
}

pub(super) async fn list_groups(
    State(s): State<Arc<Shared>>,
    Query(q): Query<ODataQuery>,
) -> Response {
    let only_errors = match q
        .filter
        .as_deref()
        .map(|f| f.replace(' ', "").to_ascii_lowercase())
    {
        None => false,
        Some(f)
            if f == "hasmemberswithlicenseerrorseqtrue"
                && !s.tenant().behaviour.refuse_license_error_filter =>
        {
            true
        }
        Some(_) => {
            let filter = q.filter.as_deref().unwrap_or_default();
            let property = filter.split_whitespace().next().unwrap_or_default();
            return graph_error(
                StatusCode::BAD_REQUEST,
                "Request_UnsupportedQuery",
                &format!(
                    "Unsupported or invalid query filter clause specified for property '{property}' of resource 'Group'."
                ),
            );
        }
    };
    let top = match page_size(&q, 100) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let offset = match decode_skiptoken(&q, "g") {
        Ok(o) => o,
        Err(r) => return r,
    };
    let t = s.tenant();
    let all: Vec<usize> = (0..t.groups.len())
        .filter(|&g| !only_errors || group_has_errors(&t, g))
        .collect();
    let end = (offset + top).min(all.len());
    let select = select_set(&q);
    let value: Vec<Value> = all[offset.min(end)..end]
        .iter()
        .map(|&g| selected(render_group(&t, g), select.as_ref()))
        .collect();
    let mut body =
        json!({"@odata.context": format!("{}/v1.0/$metadata#groups", s.base_url), "value": value});
    if end < all.len() {
        body["@odata.nextLink"] = json!(next_link(&s.base_url, "/v1.0/groups", &q, "g", end, top));
    }
    Json(body).into_response()
}

pub(super) fn group_not_found(id: &str) -> Response {
    graph_error(
        StatusCode::NOT_FOUND,
        "Request_ResourceNotFound",
        &format!(
            "Resource '{id}' does not exist or one of its queried reference-property objects are not present."
        ),
    )
}

pub(super) async fn get_group(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(q): Query<ODataQuery>,
) -> Response {
    let t = s.tenant();
    match t.groups.iter().position(|g| g.id.eq_ignore_ascii_case(&id)) {
        Some(g) => Json(selected(render_group(&t, g), select_set(&q).as_ref())).into_response(),
        None => group_not_found(&id),
    }
}

pub(super) async fn members_with_errors(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(q): Query<ODataQuery>,
) -> Response {
    let top = match page_size(&q, 100) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let offset = match decode_skiptoken(&q, "m") {
        Ok(o) => o,
        Err(r) => return r,
    };
    let t = s.tenant();
    let Some(gi) = t.groups.iter().position(|g| g.id.eq_ignore_ascii_case(&id)) else {
        return group_not_found(&id);
    };
    let gid = t.groups[gi].id.clone();
    let members: Vec<usize> = t.groups[gi]
        .members
        .iter()
        .filter_map(|m| t.find_user(m))
        .filter(|&ui| {
            t.users[ui]
                .assignments
                .iter()
                .any(|a| a.by_group.as_deref() == Some(gid.as_str()) && a.error.is_some())
        })
        .collect();
    let end = (offset + top).min(members.len());
    // Members are users: `$select` picks their fields (licence fields included), as for /users.
    let select = select_set(&q);
    let value: Vec<Value> = members[offset.min(end)..end]
        .iter()
        .map(|&ui| {
            let mut v = render_user(&t, ui, select.as_ref());
            if let Some(m) = v.as_object_mut() {
                m.insert("@odata.type".into(), json!("#microsoft.graph.user"));
            }
            v
        })
        .collect();
    let mut body = json!({"@odata.context": format!("{}/v1.0/$metadata#directoryObjects", s.base_url), "value": value});
    if end < members.len() {
        body["@odata.nextLink"] = json!(next_link(
            &s.base_url,
            &format!("/v1.0/groups/{gid}/membersWithLicenseErrors"),
            &q,
            "m",
            end,
            top
        ));
    }
    Json(body).into_response()
}

pub(super) async fn group_assign_license(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let (add, remove) = match parse_assign(&body) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let mut t = s.tenant();
    let Some(gi) = t.groups.iter().position(|g| g.id.eq_ignore_ascii_case(&id)) else {
        return group_not_found(&id);
    };
    for l in &add {
        if t.sku(&l.sku_id).is_none() {
            return graph_error(
                StatusCode::BAD_REQUEST,
                "Request_BadRequest",
                &format!(
                    "License {} does not correspond to a valid company License.",
                    l.sku_id
                ),
            );
        }
    }
    let g = &mut t.groups[gi];
    g.licenses
        .retain(|l| !remove.iter().any(|r| r.eq_ignore_ascii_case(&l.sku_id)));
    for l in add.iter() {
        g.licenses
            .retain(|x| !x.sku_id.eq_ignore_ascii_case(&l.sku_id));
        g.licenses.push(l.clone());
    }
    let now = t.now;
    t.writes.push(LicenseWrite {
        at: now,
        operation: "groupAssignLicense".into(),
        target: id.clone(),
        ok: true,
        detail: json!({"add": add.len(), "remove": remove}),
    });
    t.queue_group(gi);
    (StatusCode::ACCEPTED, Json(render_group(&t, gi))).into_response()
}
