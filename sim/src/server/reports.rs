//! Microsoft 365 usage reports: `GET /v1.0/reports/getMailboxUsageDetail(period='D90')` answers `302 Found` with a
//! short-lived, pre-authenticated download URL (served outside `/v1.0`, so it needs no token), as Graph does; the
//! download is the CSV with Microsoft's columns, a byte-order mark first, one row per mailbox.

use super::*;

/// The report functions the simulator serves, by their segment, e.g. `getMailboxUsageDetail(period='D90')`.
pub(super) async fn report(State(s): State<Arc<Shared>>, Path(function): Path<String>) -> Response {
    let Some(period) = function
        .strip_prefix("getMailboxUsageDetail(period='")
        .and_then(|rest| rest.strip_suffix("')"))
    else {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!("Resource not found for the segment '{function}'."),
        );
    };
    let days: i64 = match period {
        "D7" => 7,
        "D30" => 30,
        "D90" => 90,
        "D180" => 180,
        _ => {
            return graph_error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &format!("Invalid period value '{period}'. Supported values: D7, D30, D90, D180."),
            );
        }
    };
    let csv = mailbox_usage_csv(&s.tenant(), days);
    let token = uuid::Uuid::new_v4().simple().to_string();
    s.downloads().insert(token.clone(), csv);
    let location = format!("{}/data/download/{token}", s.base_url);
    let mut r = (StatusCode::FOUND, [("content-type", "text/plain")], "").into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        r.headers_mut().insert("location", v);
    }
    r
}

/// A pre-authenticated download: valid once (Microsoft's are valid for a few minutes).
pub(super) async fn download(State(s): State<Arc<Shared>>, Path(token): Path<String>) -> Response {
    match s.downloads().remove(&token) {
        Some(csv) => (
            StatusCode::OK,
            [("content-type", "application/octet-stream")],
            csv,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "The download link has expired.").into_response(),
    }
}

/// The mailbox usage detail CSV: users with a mailbox (a mail address) and their last activity day (blank when
/// never), as of two days ago (Microsoft's reports lag about 48 hours).
fn mailbox_usage_csv(t: &Tenant, days: i64) -> String {
    let refreshed = (t.now - Duration::days(2)).date_naive();
    let mut out = String::from(
        "\u{feff}Report Refresh Date,User Principal Name,Display Name,Is Deleted,Deleted Date,Created Date,Last Activity Date,Item Count,Storage Used (Byte),Issue Warning Quota (Byte),Prohibit Send Quota (Byte),Prohibit Send/Receive Quota (Byte),Deleted Item Count,Deleted Item Size (Byte),Deleted Item Quota (Byte),Has Archive,Report Period\n",
    );
    for u in t.users.iter().filter(|u| u.spec.mail.is_some()) {
        let s = &u.spec;
        // Activity after the refresh day is not in the report yet; a user that active was active on it too.
        let last = s
            .last_sign_in
            .map(|at| at.date_naive().min(refreshed))
            .map(|d| d.to_string())
            .unwrap_or_default();
        let name = s
            .display_name
            .as_deref()
            .unwrap_or_default()
            .replace('"', "\"\"");
        out.push_str(&format!(
            "{refreshed},{},\"{name}\",False,,{},{last},1200,{},105226698752,106300440576,107374182400,12,1048576,32212254720,{},{days}\n",
            s.upn,
            s.created.date_naive(),
            s.mailbox_storage_bytes.unwrap_or(52_428_800),
            if s.mailbox_has_archive { "True" } else { "False" },
        ));
    }
    out
}
