//! The Office 365 Management Activity API: subscriptions, content listings, blobs.
// Route helpers return the ready error `Response` as their `Err` (see the module above).
#![allow(clippy::result_large_err)]

use super::*;

#[derive(Debug, Deserialize)]
pub(super) struct FeedQuery {
    #[serde(rename = "contentType")]
    pub(super) content_type: Option<String>,
    #[serde(rename = "startTime")]
    pub(super) start: Option<String>,
    #[serde(rename = "endTime")]
    pub(super) end: Option<String>,
    #[serde(rename = "nextPage")]
    pub(super) next_page: Option<String>,
    #[serde(rename = "PublisherIdentifier")]
    pub(super) publisher: Option<String>,
}

use crate::tenant::CONTENT_TYPES;

pub(super) fn check_content_type(ct: Option<&str>) -> Result<String, Response> {
    match ct {
        Some(c) if CONTENT_TYPES.iter().any(|x| x.eq_ignore_ascii_case(c)) => Ok(c.to_string()),
        _ => Err(af_error(
            StatusCode::BAD_REQUEST,
            "AF20020",
            "The specified content type is not valid.",
        )),
    }
}

/// AF20023 for a subscription that was disabled (MA reference, "Errors": "The subscription {0} was disabled by {1}").
fn disabled(t: &Tenant, content_type: &str) -> Option<Response> {
    let by = t.feeds_disabled.get(content_type)?;
    Some(af_error(
        StatusCode::BAD_REQUEST,
        "AF20023",
        &format!("The subscription {content_type} was disabled by {by}."),
    ))
}

/// `POST /_sim/feed/disabled`: `{"content_type": "Audit.General", "by": "Microsoft"}` disables a subscription
/// (`"by": null` clears it); the listing shows it `disabled`.
pub(super) async fn ctl_feed_disabled(
    State(s): State<Arc<Shared>>,
    Json(b): Json<Value>,
) -> Response {
    let Some(ct) = b["content_type"].as_str() else {
        return (StatusCode::BAD_REQUEST, "content_type is required").into_response();
    };
    let mut t = s.tenant();
    match b["by"].as_str() {
        Some(by) => {
            t.feeds_disabled.insert(ct.to_string(), by.to_string());
            t.subscriptions.insert(ct.to_string(), false);
        }
        None => {
            t.feeds_disabled.remove(ct);
        }
    }
    StatusCode::NO_CONTENT.into_response()
}

/// `POST /_sim/feeds/stopped`: every Management Activity API subscription stopped (a tenant never watched, or one
/// whose subscriptions an administrator stopped): the next start is a fresh one.
pub(super) async fn ctl_feeds_stopped(State(s): State<Arc<Shared>>) -> Response {
    let mut t = s.tenant();
    t.subscriptions.clear();
    t.feeds_started.clear();
    StatusCode::NO_CONTENT.into_response()
}

pub(super) async fn sub_start(
    State(s): State<Arc<Shared>>,
    Query(q): Query<FeedQuery>,
) -> Response {
    let ct = match check_content_type(q.content_type.as_deref()) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let mut t = s.tenant();
    if let Some(refused) = disabled(&t, &ct) {
        return refused;
    }
    if t.subscriptions.get(&ct).copied() == Some(true) {
        return af_error(
            StatusCode::BAD_REQUEST,
            "AF20024",
            "The subscription is already enabled. No property change.",
        );
    }
    t.subscriptions.insert(ct.clone(), true);
    let now = t.now;
    t.feeds_started.insert(ct.clone(), now);
    Json(json!({"contentType": ct, "status": "enabled", "webhook": null})).into_response()
}

pub(super) async fn sub_stop(State(s): State<Arc<Shared>>, Query(q): Query<FeedQuery>) -> Response {
    let ct = match check_content_type(q.content_type.as_deref()) {
        Ok(c) => c,
        Err(r) => return r,
    };
    s.tenant().subscriptions.insert(ct, false);
    StatusCode::NO_CONTENT.into_response()
}

pub(super) async fn sub_list(State(s): State<Arc<Shared>>) -> Response {
    let t = s.tenant();
    let v: Vec<Value> = t
        .subscriptions
        .iter()
        .map(|(ct, on)| json!({"contentType": ct, "status": if *on {"enabled"} else {"disabled"}, "webhook": null}))
        .collect();
    Json(v).into_response()
}

pub(super) fn parse_feed_time(v: &str) -> Option<DateTime<Utc>> {
    let v = v.trim().trim_end_matches('Z');
    let v = v.split('.').next().unwrap_or(v);
    NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M:%S")
        .or_else(|_| NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M"))
        .ok()
        .or_else(|| {
            NaiveDate::parse_from_str(v, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })
        .map(|n| n.and_utc())
}

/// Blobs per listing page.
pub(super) const CONTENT_PAGE: usize = 200;

pub(super) async fn sub_content(
    State(s): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    Query(q): Query<FeedQuery>,
) -> Response {
    let ct = match check_content_type(q.content_type.as_deref()) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let t = s.tenant();
    if let Some(refused) = disabled(&t, &ct) {
        return refused;
    }
    if t.subscriptions.get(&ct) != Some(&true) {
        return af_error(
            StatusCode::BAD_REQUEST,
            "AF20022",
            &format!("No subscription found for the specified content type ({ct})."),
        );
    }
    let window_err = || {
        af_error(
            StatusCode::BAD_REQUEST,
            "AF20030",
            "Start time and end time must both be specified (or both omitted) and must be less than or equal to 24 hours apart, with the start time prior to end time and start time no more than 7 days in the past.",
        )
    };
    let (start, end) = match (q.start.as_deref(), q.end.as_deref()) {
        (None, None) => (t.now - Duration::hours(24), t.now),
        (Some(a), Some(b)) => match (parse_feed_time(a), parse_feed_time(b)) {
            (Some(a), Some(b)) => (a, b),
            _ => return window_err(),
        },
        _ => return window_err(),
    };
    if end <= start || end - start > Duration::hours(24) {
        return window_err();
    }
    if start < t.now - Duration::days(7) {
        return af_error(
            StatusCode::BAD_REQUEST,
            "AF20055",
            "Start time cannot be more than 7 days in the past.",
        );
    }
    let offset: usize = match q.next_page.as_deref() {
        None => 0,
        Some(p) => match p.strip_prefix("p").and_then(|n| n.parse().ok()) {
            Some(n) => n,
            None => {
                return af_error(
                    StatusCode::BAD_REQUEST,
                    "AF20031",
                    "Invalid nextPage Input.",
                );
            }
        },
    };
    // A subscription's first content is published up to 12 hours after its start: what was made before then is
    // published (and listed as created) at that moment.
    let first_content = t
        .feeds_started
        .get(&ct)
        .map(|at| *at + Duration::minutes(t.behaviour.management_first_content_minutes as i64));
    let published = |b: &crate::tenant::Blob| first_content.map_or(b.created, |f| b.created.max(f));
    let publishing = first_content.is_none_or(|f| f <= t.now);
    // A subscription publishes what happens after its start, and content lives 7 days: the scenario's past before
    // the start, or older than a week, is never listed (the Purview audit log has it).
    let started = t.feeds_started.get(&ct).copied();
    let kept_from = t.now - Duration::days(7);
    let in_reach = |b: &crate::tenant::Blob| {
        !b.historical || (b.meant_for >= kept_from && started.is_none_or(|s| b.meant_for >= s))
    };
    let listed: Vec<Value> = t
        .blobs
        .iter()
        .filter(|b| publishing && b.content_type == ct && b.visible_from <= t.now)
        .filter(|b| in_reach(b))
        .filter(|b| (start..end).contains(&published(b)))
        .map(|b| {
            let created = published(b);
            json!({"contentType": b.content_type, "contentId": b.content_id,
                "contentUri": format!("{}/api/v1.0/{}/activity/feed/audit/{}", s.base_url, tenant, b.content_id),
                "contentCreated": created.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
                "contentExpiration": (created + Duration::days(7)).format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()})
        })
        .collect();
    let stop = (offset + CONTENT_PAGE).min(listed.len());
    let page = listed[offset.min(stop)..stop].to_vec();
    let mut r = Json(page).into_response();
    if stop < listed.len() {
        let mut u = url_with(
            &s.base_url,
            &format!("/api/v1.0/{tenant}/activity/feed/subscriptions/content"),
        );
        {
            let mut p = u.query_pairs_mut();
            p.append_pair("contentType", &ct);
            p.append_pair("startTime", &start.format("%Y-%m-%dT%H:%M:%S").to_string());
            p.append_pair("endTime", &end.format("%Y-%m-%dT%H:%M:%S").to_string());
            if let Some(pubid) = &q.publisher {
                p.append_pair("PublisherIdentifier", pubid);
            }
            p.append_pair("nextPage", &format!("p{stop}"));
        }
        if let Ok(v) = HeaderValue::from_str(u.as_str()) {
            r.headers_mut().insert("NextPageUri", v);
        }
    }
    r
}

pub(super) async fn get_blob(
    State(s): State<Arc<Shared>>,
    Path((_tenant, content_id)): Path<(String, String)>,
) -> Response {
    let t = s.tenant();
    let Some(b) = t
        .blobs
        .iter()
        .find(|b| b.content_id == content_id && b.visible_from <= t.now)
    else {
        return af_error(
            StatusCode::NOT_FOUND,
            "AF20050",
            "The specified content does not exist.",
        );
    };
    if b.created + Duration::days(7) < t.now {
        return af_error(
            StatusCode::BAD_REQUEST,
            "AF20051",
            &format!(
                "Content requested with the key {content_id} has already expired. Content older than 7 days cannot be retrieved."
            ),
        );
    }
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        t.blob_body(b),
    )
        .into_response()
}
