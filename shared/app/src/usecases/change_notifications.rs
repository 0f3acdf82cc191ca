//! Real-time detection through Graph change notifications on `/users`.
//!
//! - [`endpoint`]: the notification URL. Graph's validation call (`?validationToken=`) gets the token back as
//!   `text/plain`; a batch is sorted by `clientState` (constant-time; others counted, never acted on), the accepted
//!   notifications go to a queue, one message per tenant, and Graph gets `202` at once: the work happens behind the
//!   queue, so a burst of thousands never times out.
//! - [`process`]: the worker. Change notifications become a targeted license-check of the named users (the same
//!   rules, writes and crash boundaries as a scheduled run); `missed` becomes a catch-up run (`/users/delta`);
//!   `reauthorizationRequired` reauthorises; `subscriptionRemoved` creates a new subscription. A mass delicensing
//!   found this way is sent at once through grace-period-notify's channels and ledger.
//! - [`keep_subscription`]: the renewal timer's work: create, renew before expiry, or recreate what Graph removed.
//!
//! Duplicated or out-of-order notifications are harmless: a notification only says "read this user again", and
//! reading a user twice gives the same snapshot.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::domain::change_notifications::{
    self as rules, ClientState, LifecycleEvent, Notification, SubscriptionRecord, Upkeep,
};
use crate::error::CoreError;
use crate::policy::Policy;
use crate::ports::directory::{ChangeSubscriptions, NewSubscription};
use crate::ports::queue::MessageQueue;
use crate::ports::store::SubscriptionStore;
use crate::usecases::check_licenses::{CheckDeps, CheckReport, Scope, TenantRun, check_scope};
use crate::usecases::notify_grace_period::{NotifyDeps, notify_alerts};

/// The largest notification batch read (Graph's batches are far smaller).
pub const MAX_BODY: usize = 1024 * 1024;
/// Above this many users, one Graph request a user costs more than a `/users/delta` round, which reads the same
/// changes a page at a time: the worker runs the catch-up instead.
pub(crate) const TARGETED_MAX: usize = 1_000;

/// A request to the notification endpoint, however it arrived.
#[derive(Debug, Clone)]
pub struct NotificationRequest<'a> {
    /// GET, POST...
    pub method: &'a str,
    /// The raw query string (without `?`).
    pub query: &'a str,
    /// The raw body.
    pub body: &'a [u8],
}

/// The endpoint's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointAnswer {
    /// Status code.
    pub status: u16,
    /// `text/plain` for the validation echo, else `application/json`.
    pub content_type: &'static str,
    /// Body.
    pub body: String,
    /// Notifications queued.
    pub accepted: usize,
    /// Notifications refused (wrong or missing `clientState`, malformed).
    pub refused: usize,
}

impl EndpointAnswer {
    fn json(status: u16, body: serde_json::Value) -> Self {
        Self {
            status,
            content_type: "application/json",
            body: body.to_string(),
            accepted: 0,
            refused: 0,
        }
    }
}

/// One queue message: the accepted notifications of one POST for one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeMessage {
    /// Marks the message kind on a queue shared with other messages.
    pub kind: ChangeMessageKind,
    /// Tenant.
    pub tenant_id: String,
    /// The notifications.
    pub notifications: Vec<Notification>,
}

/// The one value of [`ChangeMessage::kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeMessageKind {
    /// Graph change notifications.
    GraphChanges,
}

/// Answers one request to the notification endpoint.
pub async fn endpoint(
    request: &NotificationRequest<'_>,
    client_state: &ClientState,
    queue: &dyn MessageQueue,
) -> EndpointAnswer {
    // Graph's validation call: the token back, decoded, as plain text, before anything else.
    if let Some(token) = rules::validation_token(request.query) {
        return EndpointAnswer {
            status: 200,
            content_type: "text/plain",
            body: token,
            accepted: 0,
            refused: 0,
        };
    }
    if !request.method.eq_ignore_ascii_case("POST") {
        return EndpointAnswer::json(405, serde_json::json!({"error": "POST notifications here"}));
    }
    if request.body.len() > MAX_BODY {
        return EndpointAnswer::json(413, serde_json::json!({"error": "body too large"}));
    }
    let sorted = match rules::sort_batch(request.body, client_state) {
        Ok(s) => s,
        Err(e) => return EndpointAnswer::json(400, serde_json::json!({"error": e.to_string()})),
    };
    let refused = sorted.refused_client_state + sorted.malformed;
    if refused > 0 {
        tracing::warn!(
            refused_client_state = sorted.refused_client_state,
            malformed = sorted.malformed,
            problems = ?sorted.problems,
            "notifications refused"
        );
    }
    let messages = messages_per_tenant(sorted.accepted);
    let accepted: usize = messages.iter().map(|m| m.notifications.len()).sum();
    let bodies: Result<Vec<String>, _> = messages.iter().map(serde_json::to_string).collect();
    let queued = match bodies {
        Ok(bodies) if !bodies.is_empty() => {
            queue.send_all(&bodies).await.map_err(|e| e.to_string())
        }
        Ok(_) => Ok(()),
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = queued {
        // Graph delivers again later: nothing is lost by refusing now.
        tracing::error!(error = %e, "notifications could not be queued");
        return EndpointAnswer::json(503, serde_json::json!({"error": "queue unavailable"}));
    }
    EndpointAnswer {
        status: 202,
        content_type: "application/json",
        body: serde_json::json!({"accepted": accepted, "refused": refused}).to_string(),
        accepted,
        refused,
    }
}

fn messages_per_tenant(accepted: Vec<Notification>) -> Vec<ChangeMessage> {
    let mut out: Vec<ChangeMessage> = Vec::new();
    for n in accepted {
        let tenant = n.tenant_id().to_ascii_lowercase();
        match out.iter_mut().find(|m| m.tenant_id == tenant) {
            Some(m) => m.notifications.push(n),
            None => out.push(ChangeMessage {
                kind: ChangeMessageKind::GraphChanges,
                tenant_id: tenant,
                notifications: vec![n],
            }),
        }
    }
    out
}

/// Where the subscription sends, and the secret it carries.
#[derive(Debug, Clone)]
pub struct SubscriptionSettings {
    /// The notification (and lifecycle) URL.
    pub url: String,
    /// The `clientState`.
    pub client_state: ClientState,
}

/// The ports the worker and the renewal use.
pub struct ChangeDeps<'a> {
    /// license-check's ports (the targeted re-check).
    pub check: CheckDeps<'a>,
    /// grace-period-notify's ports (alerts sent at once).
    pub notify: NotifyDeps<'a>,
    /// Graph's subscriptions.
    pub subscriptions: &'a dyn ChangeSubscriptions,
    /// Where subscriptions are recorded.
    pub records: &'a dyn SubscriptionStore,
}

/// What the worker did with a set of messages.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ProcessReport {
    /// Users named by change notifications (each once).
    pub users_notified: usize,
    /// The check run, when one ran: `targeted`, or `delta` / `full` for a catch-up after `missed`.
    pub scan: Option<String>,
    /// The findings of that run.
    pub findings: usize,
    /// Mass-delicensing occurrences found by it.
    pub mass_delicensing: bool,
    /// Alert messages sent at once.
    pub alerts_sent: usize,
    /// Lifecycle events handled.
    pub lifecycle: Vec<String>,
    /// Users named by a change notification whose read did not differ from the last snapshot: the change may not
    /// have reached the replica read yet, so they are read once more after [`REREAD_AFTER`] ([`reread_message`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reread_later: Vec<String>,
}

/// How long after a read that did not show a notified change the user is read again: Graph notifies after the
/// change is written, and its replicas catch up within seconds (minutes at worst).
pub const REREAD_AFTER: std::time::Duration = std::time::Duration::from_secs(120);

/// Queues the follow-up a processed batch asked for (the users to read once more), delayed by [`REREAD_AFTER`].
/// Call it before acknowledging the batch: if it fails, the batch is processed again and asks again.
pub async fn follow_up(
    queue: &dyn MessageQueue,
    tenant_id: &str,
    report: &ProcessReport,
) -> Result<(), CoreError> {
    if report.reread_later.is_empty() {
        return Ok(());
    }
    let message = reread_message(tenant_id, &report.reread_later);
    let body = serde_json::to_string(&message)
        .map_err(|e| CoreError::BadInput(format!("a change message: {e}")))?;
    tracing::info!(
        tenant = tenant_id,
        users = report.reread_later.len(),
        "read did not show the notified change yet; reading again later"
    );
    queue.send_after(&body, REREAD_AFTER).await?;
    Ok(())
}

/// The follow-up message that reads these users once more (sent with a delay of [`REREAD_AFTER`]).
pub(crate) fn reread_message(tenant_id: &str, users: &[String]) -> ChangeMessage {
    ChangeMessage {
        kind: ChangeMessageKind::GraphChanges,
        tenant_id: tenant_id.to_ascii_lowercase(),
        notifications: users
            .iter()
            .map(|u| Notification::Reread {
                tenant_id: tenant_id.to_ascii_lowercase(),
                user_id: u.clone(),
            })
            .collect(),
    }
}

/// Whether processing these notifications may create a subscription (and so needs [`SubscriptionSettings`]).
pub fn needs_settings(notifications: &[Notification]) -> bool {
    notifications.iter().any(|n| {
        matches!(
            n,
            Notification::Lifecycle {
                event: LifecycleEvent::ReauthorizationRequired
                    | LifecycleEvent::SubscriptionRemoved,
                ..
            }
        )
    })
}

/// Processes the notifications of one tenant. A tenant run in progress makes it fail with [`CoreError::Busy`]
/// (retryable: the queue delivers it again), so no notification is dropped because of an overlap. `settings` is
/// needed only when [`needs_settings`] says so.
pub async fn process(
    deps: &ChangeDeps<'_>,
    tenant: &TenantRun,
    policy: &Policy,
    settings: Option<&SubscriptionSettings>,
    notifications: &[Notification],
) -> Result<ProcessReport, CoreError> {
    let mut report = ProcessReport::default();
    let mut users = BTreeSet::new();
    // Users read again after a read that did not show their change: not asked about a third time.
    let mut again = BTreeSet::new();
    let mut missed = false;
    for n in notifications {
        match n {
            Notification::Change { user_id, .. } => {
                users.insert(user_id.clone());
            }
            Notification::Reread { user_id, .. } => {
                again.insert(user_id.clone());
            }
            Notification::Lifecycle {
                subscription_id,
                event,
                ..
            } => {
                missed |= *event == LifecycleEvent::Missed;
                lifecycle(deps, tenant, settings, subscription_id, *event).await?;
                report.lifecycle.push(format!("{event:?}"));
            }
        }
    }
    report.users_notified = users.len();
    // Our own follow-ups are not Graph's notifications arriving.
    if notifications
        .iter()
        .any(|n| !matches!(n, Notification::Reread { .. }))
    {
        note_arrival(deps, &tenant.tenant_id).await?;
    }
    let notified = users.clone();
    users.extend(again);
    // `missed` means some changes never arrived: a catch-up through /users/delta covers them and the named users.
    let scope = match (missed, users.len()) {
        (true, _) => Scope::Scheduled,
        (false, 0) => return Ok(report),
        (false, n) if n > TARGETED_MAX => Scope::Scheduled,
        (false, _) => Scope::Users(users),
    };
    let checked = check_scope(&deps.check, tenant, policy, &scope, &|_| {}).await?;
    if let Some(why) = checked.skipped {
        return Err(CoreError::Busy(why));
    }
    report.scan = Some(checked.scan.clone());
    report.findings = checked.findings.len();
    report.reread_later = checked
        .unchanged_on_read
        .iter()
        .filter(|u| notified.contains(*u))
        .cloned()
        .collect();
    report.mass_delicensing = has_mass_delicensing(&checked);
    if report.mass_delicensing {
        let sent = notify_alerts(&deps.notify, &tenant.tenant_id, policy).await?;
        if let Some(why) = sent.skipped {
            // The alert is stored: grace-period-notify's next run sends it. Retrying sends it sooner.
            return Err(CoreError::Busy(why));
        }
        report.alerts_sent = sent.sent.len();
    }
    Ok(report)
}

fn has_mass_delicensing(report: &CheckReport) -> bool {
    report
        .findings
        .iter()
        .any(|f| f.kind() == "mass_delicensing")
}

/// Records when a notification last arrived (shown in the report; a silent subscription is worth a look).
async fn note_arrival(deps: &ChangeDeps<'_>, tenant_id: &str) -> Result<(), CoreError> {
    if let Some(mut record) = deps.records.subscription(tenant_id).await? {
        record.last_notification_at = Some(deps.check.clock.now());
        deps.records.save_subscription(&record).await?;
    }
    Ok(())
}

async fn lifecycle(
    deps: &ChangeDeps<'_>,
    tenant: &TenantRun,
    settings: Option<&SubscriptionSettings>,
    subscription_id: &str,
    event: LifecycleEvent,
) -> Result<(), CoreError> {
    tracing::info!(tenant = %tenant.tenant_id, subscription = subscription_id, ?event, "lifecycle notification");
    let settings = || {
        settings.ok_or_else(|| {
            CoreError::BadInput(format!(
                "a {event:?} lifecycle notification needs the notification URL and client state"
            ))
        })
    };
    match event {
        LifecycleEvent::Missed => Ok(()),
        LifecycleEvent::ReauthorizationRequired => {
            if deps
                .subscriptions
                .reauthorize_subscription(subscription_id)
                .await?
            {
                let now = deps.check.clock.now();
                if let Some(mut r) = deps.records.subscription(&tenant.tenant_id).await? {
                    r.renewed_at = Some(now);
                    deps.records.save_subscription(&r).await?;
                }
                return Ok(());
            }
            create(deps, &tenant.tenant_id, settings()?)
                .await
                .map(|_| ())
        }
        LifecycleEvent::SubscriptionRemoved => {
            // Only ours: a stale subscription's removal must not replace the live one.
            let ours = deps.records.subscription(&tenant.tenant_id).await?;
            if ours.is_some_and(|r| r.subscription_id != subscription_id) {
                return Ok(());
            }
            create(deps, &tenant.tenant_id, settings()?)
                .await
                .map(|_| ())
        }
    }
}

/// What the renewal did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpkeepReport {
    /// Tenant.
    pub tenant_id: String,
    /// `created`, `renewed`, `recreated` (Graph no longer had it) or `kept`.
    pub action: String,
    /// The subscription now.
    pub subscription: SubscriptionRecord,
}

/// Creates the tenant's subscription, renews it when less than [`rules::RENEW_WHEN_LEFT`] is left, or creates it
/// again when Graph no longer has it. Idempotent: a second run right after does nothing.
pub async fn keep_subscription(
    deps: &ChangeDeps<'_>,
    tenant_id: &str,
    settings: &SubscriptionSettings,
) -> Result<UpkeepReport, CoreError> {
    let now = deps.check.clock.now();
    let record = deps.records.subscription(tenant_id).await?;
    let (action, subscription) = match (rules::upkeep(record.as_ref(), &settings.url, now), record)
    {
        (Upkeep::Keep, Some(r)) => ("kept", r),
        (Upkeep::Renew(id), Some(mut r)) => {
            let expires = rules::requested_expiry(now);
            match deps.subscriptions.renew_subscription(&id, expires).await? {
                Some(expires_at) => {
                    r.expires_at = expires_at;
                    r.renewed_at = Some(now);
                    deps.records.save_subscription(&r).await?;
                    ("renewed", r)
                }
                None => ("recreated", create(deps, tenant_id, settings).await?),
            }
        }
        // No record (or one for another URL, or expired): a new subscription.
        _ => ("created", create(deps, tenant_id, settings).await?),
    };
    tracing::info!(tenant = tenant_id, action, expires_at = %subscription.expires_at, "change subscription");
    Ok(UpkeepReport {
        tenant_id: tenant_id.to_string(),
        action: action.into(),
        subscription,
    })
}

/// Creates a subscription (Graph validates the URL first) and records it.
async fn create(
    deps: &ChangeDeps<'_>,
    tenant_id: &str,
    settings: &SubscriptionSettings,
) -> Result<SubscriptionRecord, CoreError> {
    let now = deps.check.clock.now();
    let request = NewSubscription {
        resource: rules::RESOURCE,
        change_type: rules::CHANGE_TYPES,
        notification_url: &settings.url,
        lifecycle_url: &settings.url,
        expires_at: rules::requested_expiry(now),
        client_state: settings.client_state.expose(),
    };
    let (subscription_id, expires_at) = deps.subscriptions.create_subscription(&request).await?;
    let record = SubscriptionRecord {
        tenant_id: tenant_id.to_ascii_lowercase(),
        subscription_id,
        notification_url: settings.url.clone(),
        expires_at,
        created_at: now,
        renewed_at: None,
        last_notification_at: None,
    };
    deps.records.save_subscription(&record).await?;
    Ok(record)
}
