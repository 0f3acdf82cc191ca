//! Application permissions as Graph checks them: each token carries the app's `roles` as they were when it was
//! issued, and each endpoint needs one of a few permissions (GDC `api/*.md`, "Permissions"); without one, 403
//! `Authorization_RequestDenied`. An Exchange application access policy limits the mailboxes `sendMail` may send
//! as (403 `ErrorAccessDenied`).

use std::collections::BTreeSet;

use super::*;

/// The Graph application permissions licensewatch documents (README, "Deploy to AWS"): a scenario that grants
/// nothing else grants these.
pub(super) const DOCUMENTED: [&str; 11] = [
    "User.Read.All",
    "Organization.Read.All",
    "GroupMember.Read.All",
    "LicenseAssignment.Read.All",
    "LicenseAssignment.ReadWrite.All",
    "AuditLog.Read.All",
    "Reports.Read.All",
    "Mail.Send",
    "AuditLogsQuery-Entra.Read.All",
    "MailboxSettings.Read",
    "CloudLicensing.Read.All",
];

/// The permissions any of which lets a call through (the least privileged first), or `None` for a call the
/// simulator does not restrict.
pub(super) fn accepted(method: &str, path: &str, query: &str) -> Option<&'static [&'static str]> {
    let p = path.to_ascii_lowercase();
    let write = method != "GET";
    let licence_write = p.ends_with("/assignlicense") || p.ends_with("/reprocesslicenseassignment");
    Some(match () {
        _ if licence_write => &["LicenseAssignment.ReadWrite.All", "Directory.ReadWrite.All"],
        _ if p.ends_with("/sendmail") => &["Mail.Send"],
        _ if p.ends_with("/mailboxsettings") && !write => {
            &["MailboxSettings.Read", "MailboxSettings.ReadWrite"]
        }
        _ if p.starts_with("/v1.0/auditlogs/") => &["AuditLog.Read.All"],
        _ if p.starts_with("/v1.0/security/auditlog/") => {
            &["AuditLogsQuery-Entra.Read.All", "AuditLogsQuery.Read.All"]
        }
        _ if p.starts_with("/v1.0/reports/") => &["Reports.Read.All"],
        _ if p.starts_with("/beta/admin/cloudlicensing/") => {
            &["CloudLicensing.Read.All", "Directory.Read.All"]
        }
        _ if p.starts_with("/v1.0/subscribedskus") => &[
            "Organization.Read.All",
            "LicenseAssignment.Read.All",
            "Directory.Read.All",
        ],
        _ if p.starts_with("/v1.0/directory/subscriptions") => {
            &["LicenseAssignment.Read.All", "Directory.Read.All"]
        }
        _ if p.starts_with("/v1.0/groups") => &[
            "GroupMember.Read.All",
            "Group.Read.All",
            "Directory.Read.All",
        ],
        _ if p.starts_with("/v1.0/users") && !write => {
            // signInActivity needs AuditLog.Read.All besides the user read.
            if query.to_ascii_lowercase().contains("signinactivity") {
                &["AuditLog.Read.All"]
            } else {
                &["User.Read.All", "Directory.Read.All"]
            }
        }
        _ if p.starts_with("/v1.0/subscriptions") => &["User.Read.All", "Directory.Read.All"],
        _ => return None,
    })
}

/// Whether `roles` (a token's; `None`: every permission) lets the call through.
pub(super) fn allowed(
    roles: Option<&BTreeSet<String>>,
    method: &str,
    path: &str,
    query: &str,
) -> bool {
    match (roles, accepted(method, path, query)) {
        (Some(roles), Some(any_of)) => any_of
            .iter()
            .any(|p| roles.iter().any(|r| r.eq_ignore_ascii_case(p))),
        _ => true,
    }
}

/// Graph's refusal of a call the token's roles do not cover.
pub(super) fn denied() -> Response {
    graph_error(
        StatusCode::FORBIDDEN,
        "Authorization_RequestDenied",
        "Insufficient privileges to complete the operation.",
    )
}

/// Exchange's refusal of sendMail as a mailbox outside the application access policy.
pub(super) fn mailbox_denied() -> Response {
    graph_error(
        StatusCode::FORBIDDEN,
        "ErrorAccessDenied",
        "Access to OData is disabled: [RAOP] : Blocked by tenant configured AppOnly AccessPolicy settings.",
    )
}

/// `POST /_sim/permissions`: `{"granted": ["User.Read.All", ...]}` (or `null`: every permission) and/or
/// `{"mail_senders": ["it.admin@..."]}`; tokens issued from now on carry the new grants, as in Entra.
pub(super) async fn ctl_permissions(
    State(s): State<Arc<Shared>>,
    Json(b): Json<Value>,
) -> Response {
    let names = |v: &Value| -> Option<Vec<String>> {
        v.as_array().map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
    };
    let mut t = s.tenant();
    if let Some(granted) = b.get("granted") {
        t.behaviour.granted_permissions = names(granted);
    }
    if let Some(senders) = b.get("mail_senders") {
        t.behaviour.mail_senders = names(senders);
    }
    StatusCode::NO_CONTENT.into_response()
}
