//! Graph users: listing with `$select`/`$top`/`$skiptoken`, one user, licence writes, reprocess, sendMail, subscribedSkus.
// Route helpers return the ready error `Response` as their `Err` (see the module above).
#![allow(clippy::result_large_err)]

use super::*;

#[derive(Debug, Deserialize, Default)]
pub(super) struct ODataQuery {
    #[serde(rename = "$select")]
    pub(super) select: Option<String>,
    #[serde(rename = "$top")]
    pub(super) top: Option<String>,
    #[serde(rename = "$skiptoken")]
    pub(super) skiptoken: Option<String>,
    #[serde(rename = "$filter")]
    pub(super) filter: Option<String>,
}

pub(super) fn page_size(q: &ODataQuery, default: usize) -> Result<usize, Response> {
    match &q.top {
        None => Ok(default),
        Some(t) => match t.parse::<i64>() {
            Ok(n) if (1..=999).contains(&n) => Ok(n as usize),
            _ => Err(graph_error(
                StatusCode::BAD_REQUEST,
                "Request_UnsupportedQuery",
                &format!(
                    "Invalid page size specified: '{t}'. Must be between 1 and 999 inclusive."
                ),
            )),
        },
    }
}

pub(super) fn decode_skiptoken(q: &ODataQuery, kind: &str) -> Result<usize, Response> {
    match &q.skiptoken {
        None => Ok(0),
        Some(tok) => URL_SAFE_NO_PAD
            .decode(tok)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.strip_prefix(&format!("{kind}:")).and_then(|n| n.parse().ok()))
            .ok_or_else(|| {
                graph_error(
                    StatusCode::BAD_REQUEST,
                    "Directory_ExpiredPageToken",
                    "The specified page token value has expired and can no longer be included in your request.",
                )
            }),
    }
}

pub(super) fn next_link(
    base: &str,
    path: &str,
    q: &ODataQuery,
    kind: &str,
    offset: usize,
    top: usize,
) -> String {
    let mut u = url_with(base, path);
    {
        let mut pairs = u.query_pairs_mut();
        if let Some(s) = &q.select {
            pairs.append_pair("$select", s);
        }
        if let Some(f) = &q.filter {
            pairs.append_pair("$filter", f);
        }
        pairs.append_pair("$top", &top.to_string());
        pairs.append_pair(
            "$skiptoken",
            &URL_SAFE_NO_PAD.encode(format!("{kind}:{offset}")),
        );
    }
    u.to_string()
}

pub(super) fn url_with(base: &str, path: &str) -> url::Url {
    url::Url::parse(&format!("{base}{path}")).unwrap_or_else(|_| unreachable!("base URL is valid"))
}

pub(super) fn select_set(q: &ODataQuery) -> Option<HashSet<String>> {
    q.select.as_deref().map(select_names)
}

/// The property names of a `$select` value, lower-cased.
pub(super) fn select_names(select: &str) -> HashSet<String> {
    select
        .split(',')
        .map(|x| x.trim().to_ascii_lowercase())
        .filter(|x| !x.is_empty())
        .collect()
}

/// Every user property the sim serves, in output order. The first 11 are Graph's default set (licence fields
/// need `$select`).
pub(super) const USER_PROPS: [&str; 20] = [
    "id",
    "userPrincipalName",
    "displayName",
    "mail",
    "businessPhones",
    "givenName",
    "surname",
    "jobTitle",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "accountEnabled",
    "userType",
    "usageLocation",
    "createdDateTime",
    "onPremisesSyncEnabled",
    "proxyAddresses",
    "assignedLicenses",
    "assignedPlans",
    "licenseAssignmentStates",
];

/// Which of [`USER_PROPS`] a request wants, worked out once per request rather than per user and property.
#[derive(Debug, Clone, Copy)]
pub(super) struct UserFields(u32);

/// `signInActivity`, asked for by name only and never tracked by delta (a bit outside [`USER_PROPS`]).
const SIGN_IN_BIT: u32 = 1 << 31;

impl UserFields {
    /// Whether `signInActivity` is asked for.
    pub(super) fn sign_in(self) -> bool {
        self.0 & SIGN_IN_BIT != 0
    }

    /// The fields of these bits of [`USER_PROPS`].
    pub(super) fn bits(bits: u32) -> Self {
        Self(bits)
    }

    /// The bits.
    pub(super) fn raw(self) -> u32 {
        self.0
    }

    /// The fields a `$select` (lower-cased names) asks for.
    pub(super) fn from_select(select: Option<&HashSet<String>>) -> Self {
        let mut bits = 1; // `id` is always returned
        for (i, name) in USER_PROPS.iter().enumerate() {
            let wanted = match select {
                Some(sel) => sel.contains(&name.to_ascii_lowercase()),
                None => i < 11,
            };
            if wanted {
                bits |= 1 << i;
            }
        }
        if select.is_some_and(|sel| sel.contains("signinactivity")) {
            bits |= SIGN_IN_BIT;
        }
        Self(bits)
    }

    fn has(self, name: &str) -> bool {
        USER_PROPS
            .iter()
            .position(|p| *p == name)
            .is_some_and(|i| self.0 & (1 << i) != 0)
    }
}

pub(super) fn graph_time(d: &DateTime<Utc>) -> String {
    d.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct LicenseOut<'a> {
    pub(super) disabled_plans: &'a [String],
    pub(super) sku_id: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PlanOut<'a> {
    pub(super) assigned_date_time: String,
    pub(super) capability_status: &'a str,
    pub(super) service: &'a str,
    pub(super) service_plan_id: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct StateOut<'a> {
    pub(super) assigned_by_group: Option<&'a str>,
    pub(super) disabled_plans: &'a [String],
    pub(super) error: &'a str,
    pub(super) last_updated_date_time: String,
    pub(super) sku_id: &'a str,
    pub(super) state: &'a str,
}

/// One user as Graph renders it, serialised straight to the response bytes (no intermediate JSON tree).
pub(super) struct UserView<'a> {
    pub(super) t: &'a Tenant,
    /// The user (of the tenant, or a copy kept by the delta state).
    pub(super) u: &'a crate::tenant::User,
    pub(super) fields: UserFields,
}

impl Serialize for UserView<'_> {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let (t, f, u) = (self.t, self.fields, self.u);
        let s = &u.spec;
        let none: Option<&str> = None;
        let mut m = ser.serialize_map(None)?;
        macro_rules! put {
            ($k:literal, $v:expr) => {
                if f.has($k) {
                    m.serialize_entry($k, &$v)?;
                }
            };
        }
        put!("id", s.id);
        put!("userPrincipalName", s.upn);
        put!("displayName", s.display_name);
        put!("mail", s.mail);
        put!("businessPhones", [(); 0]);
        put!("givenName", none);
        put!("surname", none);
        put!("jobTitle", none);
        put!("mobilePhone", none);
        put!("officeLocation", none);
        put!("preferredLanguage", none);
        put!("accountEnabled", s.account_enabled);
        put!("userType", s.user_type);
        put!("usageLocation", s.usage_location);
        put!("createdDateTime", graph_time(&s.created));
        put!("onPremisesSyncEnabled", s.on_premises_sync);
        put!(
            "proxyAddresses",
            s.proxy_addresses.as_deref().unwrap_or_default()
        );
        let active = if f.has("assignedLicenses") || f.has("assignedPlans") {
            u.active_licenses()
        } else {
            Vec::new()
        };
        if f.has("assignedLicenses") {
            let out: Vec<LicenseOut> = active
                .iter()
                .map(|l| LicenseOut {
                    disabled_plans: &l.disabled_plans,
                    sku_id: &l.sku_id,
                })
                .collect();
            m.serialize_entry("assignedLicenses", &out)?;
        }
        if f.has("assignedPlans") {
            let mut plans = Vec::new();
            for l in &active {
                let Some(sku) = t.sku(&l.sku_id) else {
                    continue;
                };
                let status = if sku.enabled == 0 && sku.warning > 0 {
                    "Warning"
                } else {
                    "Enabled"
                };
                for p in sku
                    .service_plans
                    .iter()
                    .filter(|p| !l.disabled_plans.contains(&p.id))
                {
                    plans.push(PlanOut {
                        assigned_date_time: graph_time(
                            &u.plan_dates.get(&p.id).copied().unwrap_or(t.now),
                        ),
                        capability_status: status,
                        service: &p.service,
                        service_plan_id: &p.id,
                    });
                }
            }
            for (id, service) in &u.deleted_plans {
                plans.push(PlanOut {
                    assigned_date_time: graph_time(&t.now),
                    capability_status: "Deleted",
                    service,
                    service_plan_id: id,
                });
            }
            m.serialize_entry("assignedPlans", &plans)?;
        }
        if f.has("licenseAssignmentStates") {
            let states: Vec<StateOut> = u
                .assignments
                .iter()
                .map(|a| StateOut {
                    assigned_by_group: a.by_group.as_deref(),
                    disabled_plans: &a.disabled_plans,
                    error: a.error.as_deref().unwrap_or("None"),
                    last_updated_date_time: graph_time(&a.updated),
                    sku_id: &a.sku_id,
                    state: a.state,
                })
                .collect();
            m.serialize_entry("licenseAssignmentStates", &states)?;
        }
        if f.sign_in() {
            let activity = s
                .last_sign_in
                .map_or_else(never_signed_in, sign_in_activity);
            m.serialize_entry("signInActivity", &activity)?;
        }
        m.end()
    }
}

/// Graph's `signInActivity` for a user whose last sign-in (interactive and successful) was at `at`.
fn sign_in_activity(at: DateTime<Utc>) -> Value {
    let rid = "0c4f7a8e-0000-4000-8000-000000000000";
    json!({
        "lastSignInDateTime": graph_time(&at), "lastSignInRequestId": rid,
        "lastNonInteractiveSignInDateTime": graph_time(&at), "lastNonInteractiveSignInRequestId": rid,
        "lastSuccessfulSignInDateTime": graph_time(&at), "lastSuccessfulSignInRequestId": rid
    })
}

/// Graph's `signInActivity` for a user who never signed in: placeholder dates of year 1 where a date would be
/// (seen in Microsoft's responses), nulls for the successful sign-in.
fn never_signed_in() -> Value {
    const NEVER: &str = "0001-01-01T00:00:00Z";
    json!({
        "lastSignInDateTime": NEVER, "lastSignInRequestId": null,
        "lastNonInteractiveSignInDateTime": NEVER, "lastNonInteractiveSignInRequestId": null,
        "lastSuccessfulSignInDateTime": null, "lastSuccessfulSignInRequestId": null
    })
}

/// Graph's answer to a `signInActivity` read in a tenant without Entra ID P1.
pub(super) fn no_premium() -> Response {
    graph_error(
        StatusCode::FORBIDDEN,
        "Authentication_RequestFromNonPremiumTenantOrB2CTenant",
        "Neither tenant is B2C or tenant doesn't have premium license",
    )
}

pub(super) fn render_user(t: &Tenant, ui: usize, select: Option<&HashSet<String>>) -> Value {
    render_as(t, &t.users[ui], select)
}

fn render_as(t: &Tenant, u: &crate::tenant::User, select: Option<&HashSet<String>>) -> Value {
    let view = UserView {
        t,
        u,
        fields: UserFields::from_select(select),
    };
    serde_json::to_value(view).unwrap_or(Value::Null)
}

#[derive(Serialize)]
pub(super) struct UserPage<'a> {
    #[serde(rename = "@odata.context")]
    pub(super) context: String,
    // Graph sends the next link before the items.
    #[serde(rename = "@odata.nextLink", skip_serializing_if = "Option::is_none")]
    pub(super) next_link: Option<String>,
    pub(super) value: Vec<UserView<'a>>,
}

pub(super) async fn list_users(
    State(s): State<Arc<Shared>>,
    Query(q): Query<ODataQuery>,
) -> Response {
    if q.filter.is_some() {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "Request_UnsupportedQuery",
            "The simulated tenant does not support $filter on users.",
        );
    }
    let top = match page_size(&q, 100) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let offset = match decode_skiptoken(&q, "u") {
        Ok(o) => o,
        Err(r) => return r,
    };
    let fields = UserFields::from_select(select_set(&q).as_ref());
    // Pages that select signInActivity hold at most 120 users, whatever $top asks (api/user-list.md).
    let top = if fields.sign_in() { top.min(120) } else { top };
    let t = s.tenant();
    if fields.sign_in() && !t.premium {
        return no_premium();
    }
    let end = (offset + top).min(t.users.len());
    let page = UserPage {
        context: format!("{}/v1.0/$metadata#users", s.base_url),
        value: (offset.min(end)..end)
            .map(|ui| UserView {
                t: &t,
                u: &t.users[ui],
                fields,
            })
            .collect(),
        next_link: (end < t.users.len())
            .then(|| next_link(&s.base_url, "/v1.0/users", &q, "u", end, top)),
    };
    let body = serde_json::to_vec(&page).unwrap_or_default();
    drop(page);
    drop(t);
    ([("content-type", "application/json")], body).into_response()
}

pub(super) fn user_not_found(id: &str) -> Response {
    graph_error(
        StatusCode::NOT_FOUND,
        "Request_ResourceNotFound",
        &format!(
            "Resource '{id}' does not exist or one of its queried reference-property objects are not present."
        ),
    )
}

pub(super) async fn get_user(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(q): Query<ODataQuery>,
) -> Response {
    let t = s.tenant();
    let select = select_set(&q);
    if UserFields::from_select(select.as_ref()).sign_in() && !t.premium {
        return no_premium();
    }
    match t.find_user(&id) {
        // A read right after a change may come from a replica that does not have it yet.
        Some(i) => Json(render_as(&t, t.as_read(i), select.as_ref())).into_response(),
        None => user_not_found(&id),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct AssignBody {
    pub(super) add_licenses: Option<Vec<AddLicense>>,
    pub(super) remove_licenses: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct AddLicense {
    pub(super) sku_id: String,
    #[serde(default)]
    pub(super) disabled_plans: Vec<String>,
}

/// An action's body as Graph reads it: parameter names are case-insensitive (Microsoft's SDKs send them as the
/// metadata spells them, `Message`, `AddLicenses`), and instance annotations (`@odata.type`) are accepted and
/// ignored at any depth. Known parameters come back under their documented names.
pub(super) fn action_body(raw: &[u8], parameters: &[&str]) -> Result<Value, String> {
    fn strip(v: Value) -> Value {
        match v {
            Value::Object(m) => Value::Object(
                m.into_iter()
                    .filter(|(k, _)| !k.contains('@'))
                    .map(|(k, v)| (k, strip(v)))
                    .collect(),
            ),
            Value::Array(a) => Value::Array(a.into_iter().map(strip).collect()),
            other => other,
        }
    }
    let v: Value = serde_json::from_slice(raw).map_err(|e| e.to_string())?;
    let Value::Object(top) = strip(v) else {
        return Err("the body must be a JSON object".into());
    };
    Ok(Value::Object(
        top.into_iter()
            .map(|(k, v)| {
                let name = parameters
                    .iter()
                    .find(|p| p.eq_ignore_ascii_case(&k))
                    .map_or(k, |p| p.to_string());
                (name, v)
            })
            .collect(),
    ))
}

pub(super) fn parse_assign(body: &Bytes) -> Result<(Vec<LicenseSpec>, Vec<String>), Response> {
    let bad = |e: String| {
        graph_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!("Unable to read JSON request payload: {e}"),
        )
    };
    let value = action_body(body, &["addLicenses", "removeLicenses"]).map_err(bad)?;
    let parsed: AssignBody = serde_json::from_value(value).map_err(|e| bad(e.to_string()))?;
    let (Some(add), Some(remove)) = (parsed.add_licenses, parsed.remove_licenses) else {
        return Err(graph_error(
            StatusCode::BAD_REQUEST,
            "Request_BadRequest",
            "Invalid value specified for property 'addLicenses' or 'removeLicenses': both are required (use [] when empty).",
        ));
    };
    Ok((
        add.into_iter()
            .map(|a| LicenseSpec {
                sku_id: a.sku_id,
                disabled_plans: a.disabled_plans,
            })
            .collect(),
        remove,
    ))
}

pub(super) fn actor_for(headers: &HeaderMap, t: &Tenant) -> String {
    headers
        .get("x-sim-actor")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| t.app.as_ref().map(|a| a.display_name.clone()))
        .unwrap_or_else(|| "licensewatch".into())
}

pub(super) async fn user_assign_license(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (add, remove) = match parse_assign(&body) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let mut t = s.tenant();
    let Some(ui) = t.find_user(&id) else {
        return user_not_found(&id);
    };
    let actor = actor_for(&headers, &t);
    let result = t.assign_direct(ui, &add, &remove, Some(&actor), true);
    let now = t.now;
    let ok = result.is_ok();
    let detail = json!({"addLicenses": add.iter().map(|l| json!({"skuId": l.sku_id, "disabledPlans": l.disabled_plans})).collect::<Vec<_>>(),
        "removeLicenses": remove, "error": result.as_ref().err().map(|e| e.message.clone())});
    let target = t.users[ui].spec.id.clone();
    t.writes.push(LicenseWrite {
        at: now,
        operation: "assignLicense".into(),
        target,
        ok,
        detail,
    });
    match result {
        Ok(()) => Json(render_user(&t, ui, None)).into_response(),
        Err(e) => graph_error(
            StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST),
            e.code,
            &e.message,
        ),
    }
}

pub(super) async fn user_reprocess(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    // Microsoft: "Don't supply a request body." The simulator holds callers to it (a JSON `null` included).
    if !body.iter().all(u8::is_ascii_whitespace) {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "reprocessLicenseAssignment takes no request body.",
        );
    }
    let mut t = s.tenant();
    let Some(ui) = t.find_user(&id) else {
        return user_not_found(&id);
    };
    t.queue_reprocess(ui);
    let now = t.now;
    let target = t.users[ui].spec.id.clone();
    t.writes.push(LicenseWrite {
        at: now,
        operation: "reprocessLicenseAssignment".into(),
        target,
        ok: true,
        detail: json!({}),
    });
    Json(render_user(&t, ui, None)).into_response()
}

/// `GET /users/{id}/mailboxSettings` (`$select=userPurpose` narrows it): the settings of a user's mailbox; a user
/// without an Exchange Online mailbox is `MailboxNotEnabledForRESTAPI`.
pub(super) async fn mailbox_settings(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let t = s.tenant();
    let Some(ui) = t.find_user(&id) else {
        return graph_error(
            StatusCode::NOT_FOUND,
            "ErrorInvalidUser",
            &format!("The requested user '{id}' is invalid."),
        );
    };
    let spec = &t.users[ui].spec;
    if spec.mail.is_none() {
        return graph_error(
            StatusCode::NOT_FOUND,
            "MailboxNotEnabledForRESTAPI",
            "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
        );
    }
    let purpose = spec
        .mailbox_purpose
        .clone()
        .unwrap_or_else(|| "user".into());
    let context = format!(
        "https://graph.microsoft.com/v1.0/$metadata#users('{}')/mailboxSettings",
        spec.id
    );
    let all = json!({"@odata.context": context, "archiveFolder": "AAMkAGI2", "timeZone": "UTC",
        "dateFormat": "M/d/yyyy", "timeFormat": "h:mm tt", "userPurpose": purpose,
        "delegateMeetingMessageDeliveryOptions": "sendToDelegateOnly"});
    match q.get("$select") {
        Some(fields) => {
            let mut out = serde_json::Map::new();
            out.insert("@odata.context".into(), json!(context));
            for f in fields.split(',').map(str::trim) {
                if let Some(v) = all.get(f) {
                    out.insert(f.to_string(), v.clone());
                }
            }
            Json(Value::Object(out)).into_response()
        }
        None => Json(all).into_response(),
    }
}

pub(super) async fn send_mail(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let parsed: Value = match action_body(&body, &["message", "saveToSentItems"]) {
        Ok(v) => v,
        Err(e) => {
            return graph_error(
                StatusCode::BAD_REQUEST,
                "ErrorInvalidRequest",
                &format!("Cannot read the request body: {e}"),
            );
        }
    };
    let to = parsed["message"]["toRecipients"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if to.is_empty() {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "ErrorInvalidRecipients",
            "At least one recipient isn't valid., A message can't be sent because it contains no recipients.",
        );
    }
    let mut t = s.tenant();
    let Some(ui) = t.find_user(&id) else {
        return graph_error(
            StatusCode::NOT_FOUND,
            "ErrorInvalidUser",
            &format!("The requested user '{id}' is invalid."),
        );
    };
    if let Some(senders) = &t.behaviour.mail_senders {
        let spec = &t.users[ui].spec;
        let allowed = senders
            .iter()
            .any(|m| m.eq_ignore_ascii_case(&spec.upn) || m.eq_ignore_ascii_case(&spec.id));
        if !allowed {
            return super::permissions::mailbox_denied();
        }
    }
    let from = t.users[ui].spec.upn.clone();
    let now = t.now;
    t.mail.push(json!({"at": now, "from": from, "message": parsed["message"], "saveToSentItems": parsed["saveToSentItems"]}));
    StatusCode::ACCEPTED.into_response()
}

pub(super) async fn subscribed_skus(State(s): State<Arc<Shared>>) -> Response {
    let t = s.tenant();
    let value: Vec<Value> = t
        .skus
        .iter()
        .map(|k| {
            let status = if k.enabled == 0 && k.warning > 0 {
                "Warning"
            } else if k.enabled == 0 && k.suspended > 0 {
                "Suspended"
            } else {
                "Enabled"
            };
            json!({"accountName": "Contoso", "accountId": t.tenant_id, "appliesTo": "User", "capabilityStatus": status,
                "consumedUnits": t.consumed(&k.sku_id), "id": format!("{}_{}", t.tenant_id, k.sku_id),
                "prepaidUnits": {"enabled": k.enabled, "lockedOut": k.locked_out, "suspended": k.suspended, "warning": k.warning},
                "servicePlans": k.service_plans.iter().map(|p| json!({"servicePlanId": p.id, "servicePlanName": p.name,
                    "provisioningStatus": "Success", "appliesTo": "User"})).collect::<Vec<_>>(),
                "skuId": k.sku_id, "skuPartNumber": k.sku_part_number, "subscriptionIds": [format!("{}-sub", &k.sku_id[..8])]})
        })
        .collect();
    Json(json!({"@odata.context": format!("{}/v1.0/$metadata#subscribedSkus", s.base_url), "value": value})).into_response()
}

/// `GET /v1.0/directory/subscriptions`: the tenant's commercial subscriptions (companySubscription).
pub(super) async fn directory_subscriptions(State(s): State<Arc<Shared>>) -> Response {
    let t = s.tenant();
    let value: Vec<Value> = t
        .commerce
        .iter()
        .map(|c| {
            let sku = t.sku(&c.sku_id);
            let plans: Vec<Value> = sku
                .map(|k| {
                    k.service_plans
                        .iter()
                        .map(|p| json!({"servicePlanId": p.id, "servicePlanName": p.name,
                            "provisioningStatus": "Success", "appliesTo": "User"}))
                        .collect()
                })
                .unwrap_or_default();
            json!({"id": c.id, "commerceSubscriptionId": c.id.replace('-', ""),
                "createdDateTime": c.created.map(|d| graph_time(&d)), "isTrial": c.is_trial,
                "nextLifecycleDateTime": graph_time(&c.next_lifecycle), "ownerId": null, "ownerTenantId": null,
                "ownerType": null, "serviceStatus": plans, "skuId": c.sku_id,
                "skuPartNumber": sku.map(|k| k.sku_part_number.clone()), "status": c.status,
                "totalLicenses": c.total_licenses})
        })
        .collect();
    Json(json!({"@odata.context": format!("{}/v1.0/$metadata#directory/subscriptions", s.base_url), "value": value}))
        .into_response()
}
