//! `licensewatch doctor`'s verdicts: what each function needs from the app registration and the tenant, and what
//! the admin does about each thing found missing. Pure: the probes that gather the facts are the use case's.

use serde::{Deserialize, Serialize};

/// A check's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Everything the configured jobs need is there.
    Ok,
    /// A configured job cannot work until this is fixed.
    Missing,
    /// Works, with less than it could (e.g. 7 days of directory audits), or cannot be proved without a write.
    Warning,
}

/// One check: what was looked at, the verdict, what was seen and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// Stable name (`token`, `permission:User.Read.All`, `mail_sender`, `management:Audit.General`, `premium`...).
    pub name: String,
    /// The outcome.
    pub verdict: Verdict,
    /// What was seen.
    pub detail: String,
    /// What to do (the portal step or command), when not ok.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    fn new(
        verdict: Verdict,
        name: impl Into<String>,
        detail: impl Into<String>,
        fix: Option<String>,
    ) -> Self {
        Self {
            name: name.into(),
            verdict,
            detail: detail.into(),
            fix,
        }
    }

    /// A passed check.
    pub fn ok(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(Verdict::Ok, name, detail, None)
    }

    /// A failed check with its fix.
    pub fn missing(
        name: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self::new(Verdict::Missing, name, detail, Some(fix.into()))
    }

    /// A warning with its fix.
    pub fn warning(
        name: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self::new(Verdict::Warning, name, detail, Some(fix.into()))
    }
}

/// Every check of one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoctorReport {
    /// Tenant.
    pub tenant_id: String,
    /// The functions whose needs were checked.
    pub jobs: Vec<Job>,
    /// The checks, in the order made.
    pub checks: Vec<Check>,
}

impl DoctorReport {
    /// True when nothing the configured jobs need is missing (warnings allowed).
    pub fn healthy(&self) -> bool {
        self.checks.iter().all(|c| c.verdict != Verdict::Missing)
    }

    /// How many checks have this verdict.
    pub fn count(&self, verdict: Verdict) -> usize {
        self.checks.iter().filter(|c| c.verdict == verdict).count()
    }
}

/// A function of licensewatch, by what it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Job {
    /// license-check (and its reclamation report).
    LicenseCheck,
    /// audit-fetch.
    AuditFetch,
    /// grace-period-notify.
    GracePeriodNotify,
    /// reprocess-user.
    ReprocessUser,
}

impl Job {
    /// Every function.
    pub const ALL: [Job; 4] = [
        Job::LicenseCheck,
        Job::AuditFetch,
        Job::GracePeriodNotify,
        Job::ReprocessUser,
    ];

    /// The function's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Job::LicenseCheck => "license-check",
            Job::AuditFetch => "audit-fetch",
            Job::GracePeriodNotify => "grace-period-notify",
            Job::ReprocessUser => "reprocess-user",
        }
    }
}

/// How a Graph permission is proved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proof {
    /// One harmless GET (relative to `/v1.0/`).
    Read(&'static str),
    /// A write permission: never proved by writing; the token's `roles` claim says whether it is granted.
    Granted,
}

/// A Graph application permission licensewatch uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permission {
    /// Graph's name.
    pub name: &'static str,
    /// How it is proved.
    pub proof: Proof,
    /// Whether a job fails without it (else the job does less: a warning).
    pub required: bool,
    /// What it is for.
    pub purpose: &'static str,
}

const fn permission(
    name: &'static str,
    proof: Proof,
    required: bool,
    purpose: &'static str,
) -> Permission {
    Permission {
        name,
        proof,
        required,
        purpose,
    }
}

/// The Graph permissions `job` uses. `mail`: notices go out by mail (a sender is configured); `alerts`:
/// license-check mails alerts at once (change notifications are on).
pub fn permissions(job: Job, mail: bool, alerts: bool) -> Vec<Permission> {
    let users = permission(
        "User.Read.All",
        Proof::Read("users?$top=1&$select=id"),
        true,
        "reading users and their licences",
    );
    match job {
        Job::LicenseCheck => {
            let mut p = vec![
                users,
                permission(
                    "Organization.Read.All",
                    Proof::Read("subscribedSkus"),
                    true,
                    "the tenant's SKUs and seats",
                ),
                permission(
                    "GroupMember.Read.All",
                    Proof::Read("groups?$top=1&$select=id"),
                    true,
                    "groups with licence errors and their members",
                ),
                permission(
                    "LicenseAssignment.Read.All",
                    Proof::Read("directory/subscriptions"),
                    true,
                    "subscriptions and their renewal dates",
                ),
                permission(
                    "Reports.Read.All",
                    Proof::Read("reports/getMailboxUsageDetail(period='D7')"),
                    false,
                    "mailbox sizes in the reclamation report",
                ),
                permission(
                    "MailboxSettings.Read",
                    Proof::Granted,
                    false,
                    "telling shared, room and equipment mailboxes from people's (userPurpose)",
                ),
            ];
            if mail && alerts {
                p.push(permission(
                    "Mail.Send",
                    Proof::Granted,
                    true,
                    "alerts mailed at once by real-time detection",
                ));
            }
            p
        }
        Job::AuditFetch => vec![
            permission(
                "AuditLog.Read.All",
                Proof::Read("auditLogs/directoryAudits?$top=1"),
                true,
                "directory audits",
            ),
            permission(
                "AuditLogsQuery-Entra.Read.All",
                Proof::Read("security/auditLog/queries"),
                false,
                "180 days of licence history from the Purview audit log on the first day",
            ),
        ],
        Job::GracePeriodNotify if mail => vec![
            users,
            permission("Mail.Send", Proof::Granted, true, "notices by mail"),
        ],
        Job::GracePeriodNotify => vec![users],
        Job::ReprocessUser => vec![
            users,
            permission(
                "LicenseAssignment.ReadWrite.All",
                Proof::Granted,
                true,
                "reprocessing and assigning licences",
            ),
        ],
    }
}

#[cfg(test)] // only the tests read it
/// Microsoft Graph's application id (the API whose permissions these are).
pub(crate) const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";
#[cfg(test)] // only the tests read it
/// The Office 365 Management APIs' application id.
pub(crate) const MANAGEMENT_APP_ID: &str = "c5393580-f805-4401-95e8-94b7a6ef2fc2";

#[cfg(test)] // only the tests read it
/// Every application permission licensewatch uses, with Microsoft's id for it (`infra/app-registration.json`
/// lists the same, for `az ad app create --required-resource-accesses`): (API, permission, id).
pub(crate) const PERMISSION_IDS: [(&str, &str, &str); 11] = [
    (
        GRAPH_APP_ID,
        "User.Read.All",
        "df021288-bdef-4463-88db-98f22de89214",
    ),
    (
        GRAPH_APP_ID,
        "Organization.Read.All",
        "498476ce-e0fe-48b0-b801-37ba7e2685c6",
    ),
    (
        GRAPH_APP_ID,
        "GroupMember.Read.All",
        "98830695-27a2-44f7-8c18-0c3ebc9698f6",
    ),
    (
        GRAPH_APP_ID,
        "LicenseAssignment.Read.All",
        "e2f98668-2877-4f38-a2f4-8202e0717aa1",
    ),
    (
        GRAPH_APP_ID,
        "LicenseAssignment.ReadWrite.All",
        "5facf0c1-8979-4e95-abcf-ff3d079771c0",
    ),
    (
        GRAPH_APP_ID,
        "AuditLog.Read.All",
        "b0afded3-3588-46d8-8b3d-9842eff778da",
    ),
    (
        GRAPH_APP_ID,
        "Reports.Read.All",
        "230c1aed-a721-4c5d-9cb4-a90514e508ef",
    ),
    (
        GRAPH_APP_ID,
        "Mail.Send",
        "b633e1c5-b582-4048-a93e-9f11b44c7e96",
    ),
    (
        GRAPH_APP_ID,
        "AuditLogsQuery-Entra.Read.All",
        "7276d950-48fc-4269-8348-f22f2bb296d0",
    ),
    (
        GRAPH_APP_ID,
        "MailboxSettings.Read",
        "40f97065-369a-49f4-947c-6a255697ae91",
    ),
    (
        MANAGEMENT_APP_ID,
        "ActivityFeed.Read",
        "594c1fb6-4f81-4475-ae41-0c394909246c",
    ),
];

/// Where a Graph permission is granted.
pub fn grant_fix(permission: &str) -> String {
    format!(
        "Entra admin center > App registrations > (the app) > API permissions > Add a permission > Microsoft Graph > \
         Application permissions > {permission}, then \"Grant admin consent\" (or: az ad app permission add ... and \
         az ad app permission admin-consent --id <client id>; infra/app-registration.json lists every permission)"
    )
}

/// An Entra token error's code, in words, with what to do.
pub fn token_refusal(code: &str) -> (&'static str, &'static str) {
    match code {
        "AADSTS7000215" => (
            "wrong client secret",
            "create a new client secret (App registrations > Certificates & secrets) and store its value (not its id) in LICENSEWATCH_CLIENT_SECRET or the Secrets Manager secret",
        ),
        "AADSTS7000222" => (
            "the client secret has expired",
            "create a new client secret (App registrations > Certificates & secrets) and replace the stored one",
        ),
        "AADSTS700027" | "AADSTS50013" => (
            "the certificate's signature is not accepted (expired, or not the one uploaded to the app)",
            "upload the certificate's public part (App registrations > Certificates & secrets > Certificates) or renew it, and store the matching PEM in LICENSEWATCH_CLIENT_CERT",
        ),
        "AADSTS700024" => (
            "the client assertion is outside its valid time range",
            "check this machine's clock (NTP): the assertion is dated from it",
        ),
        "AADSTS700016" => (
            "the app is not found in this tenant",
            "check LICENSEWATCH_CLIENT_ID; for another organisation's tenant, its admin consents first: https://login.microsoftonline.com/<tenant>/adminconsent?client_id=<client id>",
        ),
        "AADSTS7000229" | "AADSTS65001" => (
            "the app has no consent (no service principal) in this tenant",
            "a Global Administrator of the tenant consents: https://login.microsoftonline.com/<tenant>/adminconsent?client_id=<client id>",
        ),
        "AADSTS90002" => (
            "the tenant is not found",
            "check LICENSEWATCH_TENANT_ID (a GUID or a verified domain) and LICENSEWATCH_CLOUD",
        ),
        _ => (
            "Entra refused the token request",
            "read Entra's message above; the sign-in logs (Entra admin center > Sign-in logs > Service principal sign-ins) show the request",
        ),
    }
}

/// The AADSTS code at the start of Entra's error description (`AADSTS7000215: Invalid client secret...`).
pub fn aadsts_code(description: &str) -> Option<&str> {
    let code = description.split(':').next()?.trim();
    (code.starts_with("AADSTS") && code.len() > 6).then_some(code)
}

/// The roles a JWT access token carries (`None` when the token is not a readable JWT: then write permissions
/// cannot be told without a write). The token is not verified: it is our own, read only for diagnosis.
pub fn token_roles(token: &str) -> Option<Vec<String>> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    Some(
        claims["roles"]
            .as_array()
            .map(|r| {
                r.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_is_healthy_unless_something_is_missing() {
        let mut r = DoctorReport {
            tenant_id: "t".into(),
            jobs: Job::ALL.to_vec(),
            checks: vec![
                Check::ok("token", "signed in"),
                Check::warning("premium", "no P1", "buy P1"),
            ],
        };
        assert!(r.healthy());
        r.checks.push(Check::missing(
            "permission:Mail.Send",
            "not granted",
            "grant it",
        ));
        assert!(!r.healthy());
        assert_eq!((r.count(Verdict::Ok), r.count(Verdict::Missing)), (1, 1));
    }

    #[test]
    fn entra_codes_are_read_and_put_in_words() {
        assert_eq!(
            aadsts_code("AADSTS7000215: Invalid client secret provided."),
            Some("AADSTS7000215")
        );
        assert_eq!(aadsts_code("nothing here"), None);
        assert_eq!(token_refusal("AADSTS7000215").0, "wrong client secret");
        assert!(token_refusal("AADSTS7000229").1.contains("adminconsent"));
    }

    #[test]
    fn a_jwt_names_its_roles_and_an_opaque_token_does_not() {
        use base64::Engine;
        let enc = |v: serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let jwt = format!(
            "{}.{}.sig",
            enc(serde_json::json!({"alg": "RS256"})),
            enc(serde_json::json!({"roles": ["Mail.Send", "User.Read.All"]}))
        );
        assert_eq!(
            token_roles(&jwt),
            Some(vec!["Mail.Send".to_string(), "User.Read.All".to_string()])
        );
        assert_eq!(token_roles("opaque"), None);
    }

    #[test]
    fn every_permission_checked_has_an_id_and_the_app_registration_file_lists_exactly_them() {
        let named: std::collections::BTreeSet<&str> =
            PERMISSION_IDS.iter().map(|(_, n, _)| *n).collect();
        for job in Job::ALL {
            for p in permissions(job, true, true) {
                assert!(named.contains(p.name), "{} has no id", p.name);
            }
        }
        let file: Vec<serde_json::Value> =
            serde_json::from_str(include_str!("../../../../infra/app-registration.json"))
                .expect("JSON");
        let mut listed = std::collections::BTreeSet::new();
        for api in &file {
            for access in api["resourceAccess"].as_array().expect("resourceAccess") {
                assert_eq!(access["type"], "Role", "application permissions only");
                listed.insert((
                    api["resourceAppId"].as_str().expect("app").to_string(),
                    access["id"].as_str().expect("id").to_string(),
                ));
            }
        }
        let wanted: std::collections::BTreeSet<(String, String)> = PERMISSION_IDS
            .iter()
            .map(|(app, _, id)| (app.to_string(), id.to_string()))
            .collect();
        assert_eq!(listed, wanted);
    }

    #[test]
    fn write_permissions_are_never_proved_by_writing() {
        for job in Job::ALL {
            for p in permissions(job, true, true) {
                if let Proof::Read(path) = p.proof {
                    assert!(
                        !path.contains("assignLicense") && !path.contains("sendMail"),
                        "{path}"
                    );
                }
            }
        }
    }
}
