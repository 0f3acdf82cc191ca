//! `licensewatch doctor` (and `{"doctor": true}` to any function): proves, with harmless reads, that the app
//! registration and the tenant give each configured function what it needs, and says what to do about each thing
//! missing. Never writes to the tenant (the test mail only when asked for).

use std::collections::BTreeMap;

use crate::domain::doctor::{
    Check, DoctorReport, Job, Proof, aadsts_code, grant_fix, permissions, token_refusal,
};
use crate::error::{ApiError, AuthError};
use crate::ports::archive::AuditArchive;
use crate::ports::clock::Clock;
use crate::ports::directory::path_segment;
use crate::ports::probe::TenantProbe;
use crate::ports::store::StateStore;

/// What doctor reads.
pub struct DoctorDeps<'a> {
    /// The tenant's Microsoft APIs.
    pub probe: &'a dyn TenantProbe,
    /// The state store (reachability).
    pub store: &'a dyn StateStore,
    /// The audit archive (reachability).
    pub archive: &'a dyn AuditArchive,
    /// Time.
    pub clock: &'a dyn Clock,
    /// The queues the deployment uses (on AWS: the remediation, tenant and change queues), by name.
    pub queues: Vec<(
        &'static str,
        std::sync::Arc<dyn crate::ports::queue::MessageQueue>,
    )>,
    /// The service desks of `[[notify.tickets]]`, or why they could not be built (a credential not set).
    pub desks: Result<Vec<Box<dyn crate::ports::channel::Channel>>, String>,
}

/// What to check.
#[derive(Debug, Clone, Default)]
pub struct DoctorRequest {
    /// Tenant.
    pub tenant_id: String,
    /// The functions whose needs are checked.
    pub jobs: Vec<Job>,
    /// license-check mails alerts at once (change notifications are configured).
    pub alerts: bool,
    /// The mailbox notices are sent as (`[notify] sender`).
    pub sender: Option<String>,
    /// The Management Activity API content types audit-fetch reads.
    pub content_types: Vec<String>,
    /// Send a test mail to this address (proves the application access policy).
    pub send_test_mail: Option<String>,
    /// `[check] cloud_licensing`: license-check reads the beta waiting room.
    pub cloud_licensing: bool,
}

/// Graph's answer to `signInActivity` on a tenant without Entra ID P1.
const NO_PREMIUM: &str = "Authentication_RequestFromNonPremiumTenantOrB2CTenant";

/// Runs every check for the request's jobs.
pub async fn doctor(deps: &DoctorDeps<'_>, req: &DoctorRequest) -> DoctorReport {
    let mut checks = Vec::new();
    let roles = match deps.probe.sign_in().await {
        Ok(roles) => {
            checks.push(Check::ok("token", "signed in to Microsoft Graph"));
            roles
        }
        Err(e) => {
            // Nothing else can be asked without a token.
            checks.push(token_check(&e));
            return report(req, checks);
        }
    };
    checks.extend(permission_checks(deps, req, roles.as_deref()).await);
    if req.cloud_licensing && wants(req, Job::LicenseCheck) {
        checks.push(cloud_licensing_check(roles.as_deref()));
    }
    if wants(req, Job::GracePeriodNotify) || (wants(req, Job::LicenseCheck) && req.alerts) {
        checks.extend(sender_checks(deps, req).await);
    }
    if wants(req, Job::LicenseCheck) || wants(req, Job::AuditFetch) {
        checks.push(premium_check(deps).await);
    }
    if wants(req, Job::LicenseCheck) {
        checks.push(delta_check(deps).await);
        if req.alerts {
            checks.push(subscription_check(deps, &req.tenant_id).await);
        }
    }
    if wants(req, Job::AuditFetch) {
        checks.extend(feed_checks(deps, req).await);
    }
    if wants(req, Job::GracePeriodNotify) || wants(req, Job::ReprocessUser) {
        checks.extend(desk_checks(deps, &req.tenant_id).await);
    }
    checks.extend(storage_checks(deps, &req.tenant_id).await);
    report(req, checks)
}

/// Each service desk answers a search for a key no ticket holds: its URL, credentials and rights to read tickets
/// (nothing is written).
async fn desk_checks(deps: &DoctorDeps<'_>, tenant_id: &str) -> Vec<Check> {
    let desks = match &deps.desks {
        Ok(desks) => desks,
        Err(e) => {
            return vec![Check::missing(
                "service_desk",
                e.clone(),
                "set the variables the [[notify.tickets]] *_env keys name",
            )];
        }
    };
    let mut checks = Vec::new();
    for desk in desks.iter().filter_map(|c| c.tickets()) {
        let name = format!("service_desk:{}", desk.kind());
        let route = desk.route(tenant_id);
        checks.push(match desk.find("lw-doctor-probe", &route).await {
            Ok(_) => Check::ok(name, "the desk answers and accepts the credentials"),
            Err(e) => Check::missing(
                name,
                e.detail,
                "check the entry's url and the account its *_env credentials name (it must read and create tickets)",
            ),
        });
    }
    checks
}

fn report(req: &DoctorRequest, checks: Vec<Check>) -> DoctorReport {
    DoctorReport {
        tenant_id: req.tenant_id.clone(),
        jobs: req.jobs.clone(),
        checks,
    }
}

fn wants(req: &DoctorRequest, job: Job) -> bool {
    req.jobs.contains(&job)
}

fn token_check(e: &ApiError) -> Check {
    let description = match e {
        ApiError::Auth(AuthError::Rejected { description, .. }) => description.as_str(),
        _ => "",
    };
    match aadsts_code(description) {
        Some(code) => {
            let (words, fix) = token_refusal(code);
            Check::missing("token", format!("{words} ({description})"), fix)
        }
        None => Check::missing(
            "token",
            format!("no token: {e}"),
            "check LICENSEWATCH_TENANT_ID, LICENSEWATCH_CLIENT_ID, the credential and LICENSEWATCH_CLOUD",
        ),
    }
}

/// One check per permission the jobs use (each once, required when any job requires it).
async fn permission_checks(
    deps: &DoctorDeps<'_>,
    req: &DoctorRequest,
    roles: Option<&[String]>,
) -> Vec<Check> {
    let mut wanted: BTreeMap<&str, (crate::domain::doctor::Permission, Vec<&str>)> =
        BTreeMap::new();
    let mail = req.sender.is_some();
    for job in &req.jobs {
        for p in permissions(*job, mail, req.alerts) {
            let entry = wanted.entry(p.name).or_insert((p, Vec::new()));
            entry.0.required |= p.required;
            entry.1.push(job.as_str());
        }
    }
    let mut checks = Vec::new();
    for (name, (p, jobs)) in wanted {
        let check = format!("permission:{name}");
        let what = format!("{name} ({}; {})", p.purpose, jobs.join(", "));
        let granted = match p.proof {
            Proof::Read(path) => match deps.probe.read(path).await {
                Ok(()) => Some(true),
                Err(ApiError::Forbidden { code, .. }) if code != NO_PREMIUM => Some(false),
                Err(e) => {
                    checks.push(Check::warning(
                        check,
                        format!("{what}: not checked: {e}"),
                        "run doctor again",
                    ));
                    continue;
                }
            },
            Proof::Granted => roles.map(|r| r.iter().any(|x| x.eq_ignore_ascii_case(name))),
        };
        checks.push(match (granted, p.required) {
            (Some(true), _) => Check::ok(check, format!("{what}: granted")),
            (Some(false), true) => Check::missing(check, format!("{what}: not granted"), grant_fix(name)),
            (Some(false), false) => Check::warning(
                check,
                format!("{what}: not granted; the job does without it"),
                grant_fix(name),
            ),
            (None, _) => Check::warning(
                check,
                format!("{what}: cannot be told without a write (the token does not list its roles)"),
                "check it in Entra admin center > Enterprise applications > (the app) > Permissions",
            ),
        });
    }
    checks
}

/// `CloudLicensing.Read.All` for the beta waiting room: opt-in, so not in `infra/app-registration.json`; without
/// it license-check says so in its report and goes on.
fn cloud_licensing_check(roles: Option<&[String]>) -> Check {
    const NAME: &str = "CloudLicensing.Read.All";
    let check = format!("permission:{NAME}");
    let what = format!(
        "{NAME} (who waits for a seat: beta cloudLicensing, [check] cloud_licensing; license-check)"
    );
    let fix = format!(
        "{} (it is not in infra/app-registration.json: the beta API is opt-in)",
        grant_fix(NAME)
    );
    match roles.map(|r| {
        r.iter()
            .any(|x| x.eq_ignore_ascii_case(NAME) || x.eq_ignore_ascii_case("Directory.Read.All"))
    }) {
        Some(true) => Check::ok(check, format!("{what}: granted")),
        Some(false) => Check::warning(
            check,
            format!("{what}: not granted; license-check reports the waiting room unavailable"),
            fix,
        ),
        None => Check::warning(
            check,
            format!("{what}: cannot be told (the token does not list its roles)"),
            fix,
        ),
    }
}

/// The sender mailbox exists; with `--send-test-mail`, mail goes out as it (an application access policy that
/// leaves it out answers 403 `ErrorAccessDenied`).
async fn sender_checks(deps: &DoctorDeps<'_>, req: &DoctorRequest) -> Vec<Check> {
    let Some(sender) = req.sender.as_deref().filter(|s| !s.is_empty()) else {
        return vec![Check::warning(
            "mail_sender",
            "no sender mailbox: notices and alerts go only to the webhook channels (Teams, Slack, generic)",
            "to mail them, set [notify] sender = \"licensing@your-domain\" in the policy (a mailbox, shared or licensed)",
        )];
    };
    let lookup = format!("users/{}?$select=id,mail", path_segment(sender));
    let exists = match deps.probe.read(&lookup).await {
        Ok(()) => Check::ok("mail_sender", format!("{sender} exists")),
        Err(ApiError::NotFound { .. }) => Check::missing(
            "mail_sender",
            format!("{sender} is not a user or mailbox of this tenant"),
            "set [notify] sender to an existing mailbox",
        ),
        Err(e) => Check::warning(
            "mail_sender",
            format!("{sender}: not checked: {e}"),
            "run doctor again",
        ),
    };
    let policy = match req.send_test_mail.as_deref() {
        None => Check::warning(
            "mail_policy",
            format!(
                "whether an application access policy lets the app send as {sender} is proved only by sending"
            ),
            "run licensewatch doctor --send-test-mail you@your-domain",
        ),
        Some(to) => match deps.probe.send_test_mail(sender, to).await {
            Ok(()) => Check::ok("mail_policy", format!("test mail sent as {sender} to {to}")),
            Err(ApiError::Forbidden { code, message, .. }) if code == "ErrorAccessDenied" => {
                Check::missing(
                    "mail_policy",
                    format!("Exchange refused to send as {sender}: {message}"),
                    format!(
                        "add {sender} to the mail-enabled group the application access policy names (Test-ApplicationAccessPolicy -Identity {sender} -AppId <client id> shows the verdict)"
                    ),
                )
            }
            Err(e) => Check::missing(
                "mail_policy",
                format!("the test mail failed: {e}"),
                "see the error",
            ),
        },
    };
    vec![exists, policy]
}

async fn premium_check(deps: &DoctorDeps<'_>) -> Check {
    match deps
        .probe
        .read("users?$top=1&$select=id,signInActivity")
        .await
    {
        Ok(()) => Check::ok(
            "premium",
            "Entra ID P1: sign-in activity is readable and directory audits are kept 30 days",
        ),
        Err(ApiError::Forbidden { code, .. }) if code == NO_PREMIUM => Check::warning(
            "premium",
            "no Entra ID P1: directory audits are kept 7 days, and the reclamation report reads mailbox activity instead of sign-ins",
            "a licence that includes Entra ID P1 (Microsoft 365 Business Premium, E3, E5) keeps 30 days of directory audits",
        ),
        Err(e) => Check::warning(
            "premium",
            format!("not checked: {e}"),
            "grant AuditLog.Read.All, then run doctor again",
        ),
    }
}

async fn delta_check(deps: &DoctorDeps<'_>) -> Check {
    match deps
        .probe
        .read("users/delta?$deltatoken=latest&$select=id")
        .await
    {
        Ok(()) => Check::ok(
            "delta",
            "/users/delta answers: runs between full reads read only what changed",
        ),
        Err(e) => Check::warning(
            "delta",
            format!("/users/delta refused: {e}"),
            "license-check reads every user each run instead ([check] full_scan_hours = 0 makes that explicit)",
        ),
    }
}

/// Real-time detection: Graph's subscriptions answer, and the tenant's subscription is recorded and alive.
async fn subscription_check(deps: &DoctorDeps<'_>, tenant_id: &str) -> Check {
    const NAME: &str = "change_notifications";
    if let Err(e) = deps.probe.read("subscriptions").await {
        return Check::missing(
            NAME,
            format!("Graph's subscriptions refused: {e}"),
            grant_fix("User.Read.All"),
        );
    }
    let now = deps.clock.now();
    match deps.store.subscription(tenant_id).await {
        Ok(Some(r)) if r.expires_at > now => Check::ok(
            NAME,
            format!(
                "subscribed until {} (last notification: {})",
                r.expires_at.to_rfc3339(),
                r.last_notification_at
                    .map_or("none yet".into(), |t| t.to_rfc3339())
            ),
        ),
        Ok(Some(r)) => Check::missing(
            NAME,
            format!(
                "the subscription expired at {}: no change reaches licensewatch in real time",
                r.expires_at.to_rfc3339()
            ),
            "run licensewatch subscribe (on AWS the renewal schedule does it every 12 hours: check its invocations)",
        ),
        Ok(None) => Check::warning(
            NAME,
            "configured, not subscribed yet",
            "run licensewatch subscribe, or start licensewatch serve (on AWS the renewal schedule subscribes within 12 hours)",
        ),
        Err(e) => Check::warning(NAME, format!("not checked: {e}"), "run doctor again"),
    }
}

/// Each configured Management Activity API content type: started, disabled or none, and whether content flows.
async fn feed_checks(deps: &DoctorDeps<'_>, req: &DoctorRequest) -> Vec<Check> {
    let feeds = match deps.probe.feeds().await {
        Ok(f) => f,
        Err(e) => {
            return vec![Check::missing(
                "management",
                format!("the Management Activity API refused: {e}"),
                "API permissions > Add a permission > Office 365 Management APIs > Application permissions > ActivityFeed.Read, then grant admin consent",
            )];
        }
    };
    let now = deps.clock.now();
    let mut checks = Vec::new();
    for ct in &req.content_types {
        let name = format!("management:{ct}");
        let listed = feeds
            .iter()
            .find(|f| f.content_type.eq_ignore_ascii_case(ct));
        checks.push(match listed {
            None => Check::warning(
                name,
                "not started: audit-fetch starts it on its first run; Microsoft publishes the first content up to 12 hours later",
                "run audit-fetch once",
            ),
            Some(f) if !f.enabled => Check::missing(
                name,
                "disabled: nothing is archived from it",
                "turn auditing on (Purview portal > Audit, or Set-AdminAuditLogConfig -UnifiedAuditLogIngestionEnabled $true), then run audit-fetch, which starts it again",
            ),
            Some(_) => match deps.probe.recent_content(ct, now).await {
                Ok(0) => Check::warning(
                    name,
                    "enabled; nothing published in the last 24 hours",
                    "a subscription started less than 12 hours ago publishes nothing yet; otherwise check that auditing is on (Purview portal > Audit)",
                ),
                Ok(n) => Check::ok(name, format!("enabled; {n} content blobs in the last 24 hours")),
                Err(e) if e.code() == Some("AF20023") => Check::missing(
                    name,
                    format!("disabled by Microsoft: {e}"),
                    "turn auditing on (Purview portal > Audit), then run audit-fetch, which starts it again",
                ),
                Err(e) => Check::warning(name, format!("enabled; listing failed: {e}"), "run doctor again"),
            },
        });
    }
    checks
}

async fn storage_checks(deps: &DoctorDeps<'_>, tenant_id: &str) -> Vec<Check> {
    let state = match deps.store.runs(tenant_id, 1).await {
        Ok(_) => Check::ok("state_store", "the state store answers"),
        Err(e) => Check::missing(
            "state_store",
            format!("the state store failed: {e}"),
            "check LICENSEWATCH_STATE (the table or file, and the role's access to it)",
        ),
    };
    let archive = match deps.archive.exists("doctor-probe").await {
        Ok(_) => Check::ok("archive", "the audit archive answers"),
        Err(e) => Check::missing(
            "archive",
            format!("the audit archive failed: {e}"),
            "check LICENSEWATCH_ARCHIVE (the bucket or directory, and the role's access to it)",
        ),
    };
    let mut checks = vec![state, archive];
    for (name, queue) in &deps.queues {
        checks.push(match queue.waiting().await {
            Ok(Some(n)) => Check::ok(format!("queue:{name}"), format!("reachable; {n} message(s) waiting")),
            Ok(None) => Check::ok(format!("queue:{name}"), "in process"),
            Err(e) => Check::missing(
                format!("queue:{name}"),
                format!("the queue failed: {e}"),
                "check its URL variable and the role's sqs:GetQueueAttributes, sqs:SendMessage access",
            ),
        });
    }
    checks
}
