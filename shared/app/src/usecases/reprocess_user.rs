//! reprocess-user's worker: preflight, the Graph call, verification until the user's licence states settle, the
//! stored outcome and the signed callback to the ticketing system. Used by the SQS handler, the local in-process
//! worker of `licensewatch serve`, and `licensewatch reprocess`.

use std::time::Duration;

use serde_json::{Value, json};

use crate::domain::kinds::RemediationStatus;
use crate::domain::signing::WebhookSecret;
use crate::error::{ApiError, CoreError};
use crate::policy::Policy;
use crate::ports::channel::{Channel, TicketRef};
use crate::ports::clock::Clock;
use crate::ports::directory::types::{AssignedLicense, SubscribedSku, User};
use crate::ports::directory::{Directory, path_segment};
use crate::ports::store::{RemediationQueue, RemediationRequest, RemediationStore};

/// The actions a remediation can take.
pub use crate::domain::kinds::RemediationAction;

/// The exact Graph request a remediation sends (also what a dry run returns).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GraphCall {
    /// HTTP method.
    pub method: &'static str,
    /// Path under `/v1.0/`.
    pub path: String,
    /// JSON body (null for none).
    pub body: Value,
}

/// How a remediation ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// `succeeded`, `pending`, `failed`, `rejected` or `dry_run`.
    pub status: RemediationStatus,
    /// Details (the Graph request, final states or the reason).
    pub detail: Value,
}

/// The ports the worker uses.
pub struct WorkerDeps<'a> {
    /// Graph.
    pub graph: &'a dyn Directory,
    /// Remediation records.
    pub store: &'a dyn RemediationStore,
    /// Time.
    pub clock: &'a dyn Clock,
    /// For ticket callbacks.
    pub http: &'a reqwest::Client,
    /// Signs callbacks (the first configured webhook secret).
    pub callback_secret: Option<&'a WebhookSecret>,
    /// The configured service desks (`[[notify.tickets]]`): a request from a ticket in one of them gets its
    /// outcome as a comment there.
    pub desks: &'a [Box<dyn Channel>],
    /// How many times to re-read the user while licence states settle.
    pub verify_attempts: u32,
    /// Pause between re-reads.
    pub verify_delay: Duration,
    /// How long a reprocess may stay pending before it is failed (`remediation.verify_within_hours`).
    pub verify_within_hours: u32,
    /// Called at each write boundary; an error there stops the run as a crash would (tests).
    pub crash: &'a (dyn Fn(WorkerStep) -> Result<(), CoreError> + Sync),
}

/// The worker's write boundaries, for crash tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerStep {
    /// Graph accepted the change; the outcome is not recorded yet.
    AfterGraphCall,
    /// The outcome is recorded; the ticket is not told yet.
    AfterRecord,
}

/// The crash hook of production runs: never crashes.
pub fn no_crash(_: WorkerStep) -> Result<(), CoreError> {
    Ok(())
}

fn fail(reason: impl Into<String>) -> Outcome {
    Outcome {
        status: RemediationStatus::Failed,
        detail: json!({"reason": reason.into()}),
    }
}

/// Resolves SKU ids or part numbers against the tenant's subscriptions.
fn resolve_sku<'s>(skus: &'s [SubscribedSku], wanted: &str) -> Option<&'s SubscribedSku> {
    skus.iter().find(|s| {
        s.sku_id.eq_ignore_ascii_case(wanted) || s.sku_part_number.eq_ignore_ascii_case(wanted)
    })
}

/// True when `remediation.sku_allow_list` is empty or names the SKU (by id or part number).
fn allowed(policy: &Policy, sku: &SubscribedSku) -> bool {
    let allow = &policy.remediation.sku_allow_list;
    allow.is_empty()
        || allow.iter().any(|a| {
            a.eq_ignore_ascii_case(&sku.sku_id) || a.eq_ignore_ascii_case(&sku.sku_part_number)
        })
}

fn rejected(reason: impl Into<String>) -> Outcome {
    Outcome {
        status: RemediationStatus::Rejected,
        detail: json!({"reason": reason.into()}),
    }
}

/// The remediation policy's rails, the same for every entry point (webhook, queue worker, CLI, auto-reprocess):
/// `remove` only with `allow_remove`, and every SKU an action adds or removes on `sku_allow_list` (when the list is
/// not empty). `Some(reason)` when the request is refused. The budget is the store's (`admit`).
pub fn policy_refusal(
    policy: &Policy,
    action: RemediationAction,
    sku_ids: &[String],
) -> Option<String> {
    if action == RemediationAction::Remove && !policy.remediation.allow_remove {
        return Some("action 'remove' is disabled (remediation.allow_remove = false)".into());
    }
    let allow = &policy.remediation.sku_allow_list;
    sku_ids
        .iter()
        .find(|s| !allow.is_empty() && !allow.iter().any(|a| a.eq_ignore_ascii_case(s)))
        .map(|s| format!("SKU '{s}' is not in remediation.sku_allow_list"))
}

/// Preflight: checks the request against the tenant and the policy and builds the Graph call, or says why not.
pub async fn plan(
    graph: &dyn Directory,
    req: &RemediationRequest,
    policy: &Policy,
) -> Result<Result<(User, GraphCall), Outcome>, ApiError> {
    // The rails first, whoever asked (webhook, queue, CLI, auto-reprocess): nothing is written for a refused
    // request. SKUs are checked against the allow-list once resolved (an id or a part number may be listed).
    if let Some(reason) = policy_refusal(policy, req.action, &[]) {
        return Ok(Err(rejected(reason)));
    }
    let Some(user) = graph.user(&req.user).await? else {
        return Ok(Err(fail(format!("user '{}' does not exist", req.user))));
    };
    let path = format!("users/{}/", path_segment(&user.id));
    let call = match req.action {
        RemediationAction::Reprocess => Ok(GraphCall {
            method: "POST",
            path: format!("{path}reprocessLicenseAssignment"),
            body: Value::Null,
        }),
        RemediationAction::Remove => plan_remove(graph, req, policy, &path).await?,
        RemediationAction::Assign | RemediationAction::CopyFrom => {
            plan_assign(graph, req, policy, &user, &path).await?
        }
    };
    Ok(call.map(|call| (user, call)))
}

/// `remove`: every SKU must be the tenant's and on the allow-list.
async fn plan_remove(
    graph: &dyn Directory,
    req: &RemediationRequest,
    policy: &Policy,
    path: &str,
) -> Result<Result<GraphCall, Outcome>, ApiError> {
    let skus = graph.subscribed_skus().await?;
    let mut remove = Vec::new();
    for wanted in &req.sku_ids {
        match usable_sku(&skus, wanted, policy) {
            Ok(sku) => remove.push(sku.sku_id.clone()),
            Err(refused) => return Ok(Err(refused)),
        }
    }
    Ok(Ok(GraphCall {
        method: "POST",
        path: format!("{path}assignLicense"),
        body: json!({"addLicenses": [], "removeLicenses": remove}),
    }))
}

/// `assign` and `copy_from`: the user needs a usage location, and every SKU a free seat (unless the user holds it
/// already) and no conflict with the user's other licences.
async fn plan_assign(
    graph: &dyn Directory,
    req: &RemediationRequest,
    policy: &Policy,
    user: &User,
    path: &str,
) -> Result<Result<GraphCall, Outcome>, ApiError> {
    if user.usage_location.as_deref().unwrap_or("").is_empty() {
        return Ok(Err(fail(
            "the user has no usageLocation: set it before assigning a licence",
        )));
    }
    let wanted = match wanted_licenses(graph, req).await? {
        Ok(w) if w.is_empty() => return Ok(Err(fail("nothing to assign"))),
        Ok(w) => w,
        Err(refused) => return Ok(Err(refused)),
    };
    let skus = graph.subscribed_skus().await?;
    let mut add = Vec::new();
    for l in wanted {
        let sku = match usable_sku(&skus, &l.sku_id, policy) {
            Ok(sku) => sku,
            Err(refused) => return Ok(Err(refused)),
        };
        if let Some(why) = cannot_add(user, sku) {
            return Ok(Err(fail(why)));
        }
        add.push(json!({"skuId": sku.sku_id, "disabledPlans": l.disabled_plans}));
    }
    Ok(Ok(GraphCall {
        method: "POST",
        path: format!("{path}assignLicense"),
        body: json!({"addLicenses": add, "removeLicenses": []}),
    }))
}

/// The licences to add: the request's SKUs (`assign`), or the template user's direct licences (`copy_from`; group
/// licences come with group membership).
async fn wanted_licenses(
    graph: &dyn Directory,
    req: &RemediationRequest,
) -> Result<Result<Vec<AssignedLicense>, Outcome>, ApiError> {
    if req.action == RemediationAction::Assign {
        return Ok(Ok(req
            .sku_ids
            .iter()
            .map(|s| AssignedLicense {
                sku_id: s.clone(),
                disabled_plans: req.disabled_plans.get(s).cloned().unwrap_or_default(),
            })
            .collect()));
    }
    let template = req.template_user.as_deref().unwrap_or_default();
    let Some(t) = graph.user(template).await? else {
        return Ok(Err(fail(format!(
            "template user '{template}' does not exist"
        ))));
    };
    let direct = |l: &&AssignedLicense| {
        t.license_assignment_states
            .iter()
            .any(|s| s.sku_id.eq_ignore_ascii_case(&l.sku_id) && s.assigned_by_group.is_none())
    };
    Ok(Ok(t
        .assigned_licenses
        .iter()
        .filter(direct)
        .cloned()
        .collect()))
}

/// The tenant's SKU for `wanted` (an id or a part number), if it is on the allow-list.
fn usable_sku<'s>(
    skus: &'s [SubscribedSku],
    wanted: &str,
    policy: &Policy,
) -> Result<&'s SubscribedSku, Outcome> {
    let sku = resolve_sku(skus, wanted)
        .ok_or_else(|| fail(format!("the tenant owns no SKU '{wanted}'")))?;
    if !allowed(policy, sku) {
        return Err(rejected(format!(
            "{} is not in remediation.sku_allow_list",
            sku.sku_part_number
        )));
    }
    Ok(sku)
}

/// Why `sku` cannot be added to `user`, if it cannot: no free seat, or a conflict with a plan the user has.
fn cannot_add(user: &User, sku: &SubscribedSku) -> Option<String> {
    let holds = user
        .assigned_licenses
        .iter()
        .any(|a| a.sku_id.eq_ignore_ascii_case(&sku.sku_id));
    if !holds && sku.prepaid_units.enabled - sku.consumed_units <= 0 {
        return Some(format!("no free seats on {}", sku.sku_part_number));
    }
    let conflict = user.license_assignment_states.iter().any(|s| {
        s.sku_id.eq_ignore_ascii_case(&sku.sku_id)
            && s.error_code() == Some("MutuallyExclusiveViolation")
    });
    conflict.then(|| {
        format!(
            "{} conflicts with a plan the user already has",
            sku.sku_part_number
        )
    })
}

/// Runs one remediation: preflight, call, verify, record, callback. `Err` only for retryable failures (throttling,
/// outages): the queue delivers the message again. Permanent failures are recorded as `failed`.
pub async fn process(
    deps: &WorkerDeps<'_>,
    req: &RemediationRequest,
    policy: &Policy,
    dry_run: bool,
) -> Result<Outcome, CoreError> {
    // SQS delivers at least once: a request whose outcome is already recorded is not acted on again; only a
    // callback the ticket never got is sent.
    if !dry_run
        && let Some(record) = deps.store.remediation(&req.remediation_id).await?
        && record.status.is_final()
        && record.status != RemediationStatus::DryRun
    {
        tracing::info!(remediation = %req.remediation_id, status = %record.status, "already done; redelivery ignored");
        let done = Outcome {
            status: record.status,
            detail: record.detail,
        };
        tell_ticket(deps, req, &done).await?;
        return Ok(done);
    }
    let outcome = match plan(deps.graph, req, policy).await? {
        Err(refused) => refused,
        Ok((_, call)) if dry_run => Outcome {
            status: RemediationStatus::DryRun,
            detail: json!({"graph_request": call}),
        },
        Ok((user, call)) => {
            let outcome = execute(deps, &user, req, &call).await?;
            (deps.crash)(WorkerStep::AfterGraphCall)?;
            outcome
        }
    };
    if !dry_run {
        let now = deps.clock.now();
        match deps
            .store
            .set_status(&req.remediation_id, outcome.status, &outcome.detail, now)
            .await
        {
            Ok(()) => {}
            // A request without a record (queued by an older version): nothing to update.
            Err(e) => tracing::debug!(error = %e, "no remediation record to update"),
        }
        (deps.crash)(WorkerStep::AfterRecord)?;
        tell_ticket(deps, req, &outcome).await?;
    }
    Ok(outcome)
}

/// Tells the ticket the outcome, each way not yet done: the signed callback, then a comment in the service desk
/// the ticket lives in; each is recorded in the outcome's detail once done, so a redelivered message neither skips
/// nor repeats it.
async fn tell_ticket(
    deps: &WorkerDeps<'_>,
    req: &RemediationRequest,
    outcome: &Outcome,
) -> Result<(), CoreError> {
    let mut detail = outcome.detail.clone();
    let mut told = false;
    if detail["callback_delivered"] != json!(true) && callback(deps, req, outcome).await {
        detail["callback_delivered"] = json!(true);
        told = true;
    }
    if detail["desk_told"] != json!(outcome.status) && comment_on_desk(deps, req, outcome).await {
        detail["desk_told"] = json!(outcome.status);
        told = true;
    }
    if told && detail.is_object() {
        let now = deps.clock.now();
        if let Err(e) = deps
            .store
            .set_status(&req.remediation_id, outcome.status, &detail, now)
            .await
        {
            tracing::debug!(error = %e, "no remediation record to update");
        }
    }
    Ok(())
}

/// True when the ticket's own service desk took the outcome as a comment (false when the ticket's system is not a
/// configured desk).
async fn comment_on_desk(
    deps: &WorkerDeps<'_>,
    req: &RemediationRequest,
    outcome: &Outcome,
) -> bool {
    let Some(ticket) = &req.ticket else {
        return false;
    };
    let Some(desk) = deps
        .desks
        .iter()
        .filter_map(|c| c.tickets())
        .find(|d| d.kind().as_str().eq_ignore_ascii_case(&ticket.system))
    else {
        return false;
    };
    let reason = outcome.detail["reason"]
        .as_str()
        .map(|r| format!(": {r}"))
        .unwrap_or_default();
    let text = format!(
        "licensewatch {} for {}: {}{reason} (remediation {})",
        req.action, req.user, outcome.status, req.remediation_id
    );
    let target = TicketRef {
        id: ticket.id.clone(),
        number: ticket.id.clone(),
    };
    match desk.comment(&target, &text).await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, "the ticket's service desk did not take the outcome");
            false
        }
    }
}

async fn execute(
    deps: &WorkerDeps<'_>,
    user: &User,
    req: &RemediationRequest,
    call: &GraphCall,
) -> Result<Outcome, CoreError> {
    match deps.graph.write(&call.path, &call.body).await {
        Ok(_) => {}
        Err(e) if e.is_retryable() => return Err(e.into()),
        Err(e) => {
            return Ok(Outcome {
                status: RemediationStatus::Failed,
                detail: json!({"graph_request": call, "reason": e.message().unwrap_or_default(), "code": e.code()}),
            });
        }
    }
    // Group processing is asynchronous in Microsoft 365: read the states back until they settle.
    let mut last = Value::Null;
    for attempt in 0..deps.verify_attempts.max(1) {
        if attempt > 0 {
            tokio::time::sleep(deps.verify_delay).await;
        }
        let Some(now) = deps.graph.user(&user.id).await? else {
            return Ok(fail("the user disappeared during verification"));
        };
        let errors = state_errors(&now);
        let done = match req.action {
            RemediationAction::Reprocess => errors.is_empty(),
            RemediationAction::Remove => req.sku_ids.iter().all(|s| {
                !now.assigned_licenses
                    .iter()
                    .any(|a| a.sku_id.eq_ignore_ascii_case(s))
            }),
            _ => call.body["addLicenses"]
                .as_array()
                .into_iter()
                .flatten()
                .all(|a| {
                    now.assigned_licenses
                        .iter()
                        .any(|l| Some(l.sku_id.as_str()) == a["skuId"].as_str())
                }),
        };
        last = json!({"graph_request": call, "assigned_sku_ids": now.assigned_licenses.iter().map(|l| &l.sku_id).collect::<Vec<_>>(), "errors": errors});
        if done {
            return Ok(Outcome {
                status: RemediationStatus::Succeeded,
                detail: last,
            });
        }
    }
    if req.action == RemediationAction::Reprocess {
        // Group-based licensing is processed asynchronously (minutes on large groups): not failed, pending, until
        // a later license-check run sees the user's states settle or the deadline passes.
        let now = deps.clock.now();
        last["pending_since"] = json!(now);
        last["verify_by"] =
            json!(now + chrono::Duration::hours(i64::from(deps.verify_within_hours)));
        return Ok(Outcome {
            status: RemediationStatus::Pending,
            detail: last,
        });
    }
    last["reason"] = json!("the user's licence states did not settle as expected");
    Ok(Outcome {
        status: RemediationStatus::Failed,
        detail: last,
    })
}

/// The licence errors a user's states show.
fn state_errors(user: &User) -> Vec<Value> {
    user.license_assignment_states
        .iter()
        .filter(|s| s.error_code().is_some())
        .map(|s| json!({"skuId": s.sku_id, "error": s.error_code(), "assignedByGroup": s.assigned_by_group}))
        .collect()
}

/// Confirms the tenant's pending remediations (a license-check run calls it): each user is read again, a
/// reprocess whose user shows no licence error any more is `succeeded`, one still in error after its `verify_by`
/// is `failed`, the others stay pending. A user who is not visible yet (Graph's replication) is left for the next
/// run. Returns how many were settled.
///
/// A settled request that came from a ticket is queued again for reprocess-user, which holds the callback's secret
/// and the service desks' credentials: finding its record final and the ticket not yet told of that outcome, it posts the
/// outcome and acts on nothing.
pub(crate) async fn confirm_pending(
    graph: &dyn Directory,
    store: &dyn RemediationStore,
    queue: &dyn RemediationQueue,
    tenant_id: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<usize, CoreError> {
    let mut settled = 0;
    for record in store.pending_verification(tenant_id).await? {
        let Some(user) = graph.user(&record.request.user).await? else {
            continue;
        };
        let errors = state_errors(&user);
        let mut detail = record.detail.clone();
        detail["errors"] = json!(errors);
        let verify_by = detail["verify_by"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.to_utc());
        let status = if errors.is_empty() {
            detail["verified_at"] = json!(now);
            detail["verified_by"] = json!("license-check");
            RemediationStatus::Succeeded
        } else if verify_by.is_none_or(|by| now > by) {
            detail["reason"] =
                json!("the user's licences were still in error when the time to verify ran out");
            RemediationStatus::Failed
        } else {
            continue;
        };
        // The ticket was told `pending`; this outcome is still to be told.
        if let Some(d) = detail.as_object_mut() {
            d.remove("callback_delivered");
        }
        store
            .set_status(&record.request.remediation_id, status, &detail, now)
            .await?;
        tracing::info!(remediation = %record.request.remediation_id, %status, "pending remediation settled");
        if record.request.ticket.is_some() {
            queue.enqueue(&record.request).await?;
        }
        settled += 1;
    }
    Ok(settled)
}

/// True when the ticket's callback URL accepted the outcome (false without one).
async fn callback(deps: &WorkerDeps<'_>, req: &RemediationRequest, outcome: &Outcome) -> bool {
    let Some(url) = req.ticket.as_ref().and_then(|t| t.callback_url.clone()) else {
        return false;
    };
    let body = serde_json::to_vec(
        &json!({"remediation_id": req.remediation_id, "status": outcome.status,
        "detail": outcome.detail, "ticket": req.ticket}),
    )
    .unwrap_or_default();
    // The same outcome keeps its id across retries; an outcome that settles a pending one gets its own.
    let id = match outcome.detail.get("verify_by") {
        Some(_) if outcome.status != RemediationStatus::Pending => {
            format!("cb_{}_{}", req.remediation_id, outcome.status)
        }
        _ => format!("cb_{}", req.remediation_id),
    };
    let ts = deps.clock.now().timestamp();
    let mut r = deps
        .http
        .post(&url)
        .header("content-type", "application/json")
        .timeout(Duration::from_secs(15));
    if let Some(secret) = deps.callback_secret {
        r = r
            .header("webhook-id", &id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", secret.sign(&id, ts, &body));
    }
    match r.body(body).send().await {
        Ok(resp) if resp.status().is_success() => true,
        Ok(resp) => {
            tracing::warn!(status = resp.status().as_u16(), "ticket callback refused");
            false
        }
        Err(e) => {
            tracing::warn!(timeout = e.is_timeout(), "ticket callback failed");
            false
        }
    }
}
