//! The application permission each Microsoft Graph call of licensewatch needs, and which function needs it: a 403
//! names what to grant instead of leaving the admin to guess (README, "Deploy to AWS", lists the same).

/// What a call needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needed {
    /// The least privileged application permission that allows the call.
    pub permission: &'static str,
    /// The functions (and commands) that make the call.
    pub used_by: &'static str,
}

const fn needs(permission: &'static str, used_by: &'static str) -> Option<Needed> {
    Some(Needed {
        permission,
        used_by,
    })
}

/// The permission a Graph call to `path` (with its `query`) needs; `None` for a path licensewatch does not call.
pub fn for_graph_call(method: &str, path: &str, query: &str) -> Option<Needed> {
    let p = path.to_ascii_lowercase();
    let p = p.split_once("/v1.0/").map_or(p.as_str(), |(_, rest)| rest);
    if p.ends_with("/assignlicense") || p.ends_with("/reprocesslicenseassignment") {
        return needs("LicenseAssignment.ReadWrite.All", "reprocess-user");
    }
    if p.ends_with("/sendmail") {
        return needs(
            "Mail.Send",
            "grace-period-notify (and license-check's alerts)",
        );
    }
    match p.split('/').next().unwrap_or_default() {
        "auditlogs" => needs("AuditLog.Read.All", "audit-fetch"),
        "reports" => needs("Reports.Read.All", "license-check's reclamation report"),
        "subscribedskus" => needs("Organization.Read.All", "license-check"),
        "directory" => needs("LicenseAssignment.Read.All", "license-check"),
        "groups" => needs("GroupMember.Read.All", "license-check"),
        "users" if query.to_ascii_lowercase().contains("signinactivity") => needs(
            "AuditLog.Read.All",
            "license-check's reclamation report (signInActivity)",
        ),
        "users" if method == "GET" => needs(
            "User.Read.All",
            "license-check, reprocess-user and grace-period-notify",
        ),
        "subscriptions" => needs("User.Read.All", "real-time detection"),
        _ => None,
    }
}

impl Needed {
    /// What the admin should do, in words.
    pub fn advice(&self) -> String {
        format!(
            "the app needs the application permission {} (for {}): add it in Entra ID > App registrations > \
             API permissions > Microsoft Graph > Application permissions, then grant admin consent",
            self.permission, self.used_by
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_call_names_its_permission() {
        let p = |method, path, query| for_graph_call(method, path, query).map(|n| n.permission);
        assert_eq!(
            p("GET", "/v1.0/auditLogs/directoryAudits", "$filter=x"),
            Some("AuditLog.Read.All")
        );
        assert_eq!(p("GET", "/v1.0/users", "$select=id"), Some("User.Read.All"));
        assert_eq!(
            p("GET", "/v1.0/users", "$select=id,signInActivity"),
            Some("AuditLog.Read.All")
        );
        assert_eq!(
            p("POST", "/v1.0/users/a@b.c/sendMail", ""),
            Some("Mail.Send")
        );
        assert_eq!(
            p("POST", "/v1.0/users/x/reprocessLicenseAssignment", ""),
            Some("LicenseAssignment.ReadWrite.All")
        );
        assert_eq!(
            p("GET", "/v1.0/groups/g/membersWithLicenseErrors", ""),
            Some("GroupMember.Read.All")
        );
        assert_eq!(
            p("GET", "/v1.0/subscribedSkus", ""),
            Some("Organization.Read.All")
        );
        assert_eq!(p("GET", "/v1.0/me", ""), None);
    }
}
