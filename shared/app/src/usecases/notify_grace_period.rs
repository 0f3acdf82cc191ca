//! grace-period-notify: for every open grace case, the notice that is due now for each audience (the most urgent
//! threshold reached, never a burst of stale ones), access-gone alerts, "resolved" notes, and license-check's
//! critical alerts; one admin digest per channel and recipient per run, short notices to users. A durable ledger
//! (intended before sending, sent after) means a rerun sends nothing twice and a crash never skips a notice.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::grace::{NoticeFor, NoticeRules, notice_is_critical, notices_due};
use crate::domain::kinds::NoticeKind;
use crate::domain::retry::RetryPolicy;
use crate::domain::runbook::{self, Runbook};
use crate::error::CoreError;
use crate::policy::Policy;
use crate::ports::channel::{Audience, Channel, ChannelError, Message, html_escape};
use crate::ports::clock::Clock;
use crate::ports::store::{Alert, GraceCase, LedgerEntry, LedgerStatus, StateStore};
use crate::time_zone::TimeZone;
use crate::usecases::lease::{self, RunLease};

mod tickets;

/// Points where a test can make the run die, to prove nothing is lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Before the notices are recorded as intended.
    BeforeIntent,
    /// After recording intent, before sending.
    AfterIntent,
    /// After a service desk created a ticket, before its id is recorded.
    AfterCreate,
    /// After the channel accepted the message, before recording it as sent.
    AfterSend,
    /// After recording it as sent.
    AfterRecord,
}

/// The ports grace-period-notify uses.
pub struct NotifyDeps<'a> {
    /// State (cases, alerts, ledger).
    pub store: &'a dyn StateStore,
    /// Time.
    pub clock: &'a dyn Clock,
    /// Channels, in order.
    pub channels: &'a [Box<dyn Channel>],
    /// Retries for a failing channel.
    pub retry: RetryPolicy,
    /// Crash injection for tests; production passes [`no_crash`].
    pub crash: &'a (dyn Fn(Step) -> Result<(), CoreError> + Sync),
}

/// The production crash hook: never crashes.
pub fn no_crash(_: Step) -> Result<(), CoreError> {
    Ok(())
}

/// One notice in the report (`licensewatch notify --json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentNotice {
    /// Case (or alert) id.
    pub case_id: String,
    /// User.
    pub user_principal_name: String,
    /// `admin` or `user`.
    pub audience: Audience,
    /// Threshold, for threshold notices.
    pub threshold_days: Option<i64>,
    /// Channel.
    pub channel: String,
    /// Recipient.
    pub recipient: String,
    /// The deadline it is about.
    pub deadline: Option<DateTime<Utc>>,
    /// `threshold`, `access_gone`, `resolved`, `alert`.
    pub kind: NoticeKind,
}

/// A channel that failed after its retries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedDelivery {
    /// Channel.
    pub channel: String,
    /// Recipient.
    pub recipient: String,
    /// Why.
    pub error: String,
    /// Notices that will be tried again next run.
    pub notices: usize,
}

/// The result of a run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NotifyReport {
    /// Delivered notices.
    pub sent: Vec<SentNotice>,
    /// Notices due but already sent earlier.
    pub skipped_already_sent: usize,
    /// Deliveries that failed (their notices stay due).
    pub failed: Vec<FailedDelivery>,
    /// With `--dry-run`: what would be sent.
    pub would_send: Vec<SentNotice>,
    /// True for a dry run.
    pub dry_run: bool,
    /// Set when the run did nothing because another run of grace-period-notify for the tenant was in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

/// A notice due this run, before it is fanned out to channels and recipients.
#[derive(Debug, Clone)]
struct Due {
    case_id: String,
    upn: String,
    display_name: Option<String>,
    mail: Option<String>,
    audience: Audience,
    kind: NoticeKind,
    threshold: Option<i64>,
    deadline: Option<DateTime<Utc>>,
    case: Option<GraceCase>,
    alert: Option<Alert>,
}

impl Due {
    fn key(&self, channel: &str, recipient: &str) -> String {
        format!(
            "{}|{}|{}|{}|{}|{channel}|{recipient}",
            self.case_id,
            self.deadline
                .map(|d| d.to_rfc3339())
                .unwrap_or_else(|| "-".into()),
            self.kind,
            self.threshold
                .map(|t| t.to_string())
                .unwrap_or_else(|| "-".into()),
            self.audience.as_str()
        )
    }
}

impl Due {
    /// `Name <upn>`, or the UPN.
    fn who(&self) -> String {
        match &self.display_name {
            Some(n) => format!("{n} <{}>", self.upn),
            None => self.upn.clone(),
        }
    }

    /// The domain's rule ([`notice_is_critical`]).
    fn critical(&self) -> bool {
        notice_is_critical(self.kind, self.threshold)
    }

    /// Where case `c` stands, in the tenant's time zone.
    fn state(&self, c: &GraceCase, tz: &TimeZone, now: DateTime<Utc>) -> String {
        let day = |t: &DateTime<Utc>| tz.format(t, "%Y-%m-%d %H:%M %Z");
        let dl = &c.deadlines;
        match self.kind {
            NoticeKind::Resolved => {
                format!("resolved: {}", c.close_reason.clone().unwrap_or_default())
            }
            NoticeKind::AccessGone => format!(
                "ACCESS ENDED {}; data deleted {} unless a licence is assigned",
                day(&dl.access_ends_at),
                day(&dl.data_deleted_at)
            ),
            _ => format!(
                "{} day(s) left: access ends {}, data deleted {}",
                dl.days_left(now),
                day(&dl.access_ends_at),
                day(&dl.data_deleted_at)
            ),
        }
    }
}

pub use crate::domain::grace::due_threshold;

fn plan(
    cases: &[GraceCase],
    alerts: &[Alert],
    notified: &HashSet<String>,
    policy: &Policy,
    now: DateTime<Utc>,
) -> Vec<Due> {
    let rules = NoticeRules {
        admin_thresholds_days: &policy.notify.admin_thresholds_days,
        user_thresholds_days: &policy.notify.user_thresholds_days,
        notify_users: policy.notify.notify_users,
    };
    let mut due = Vec::new();
    for c in cases {
        for n in notices_due(c, notified.contains(&c.case_id), &rules, now) {
            due.push(Due {
                case_id: c.case_id.clone(),
                upn: c.user_principal_name.clone(),
                display_name: c.display_name.clone(),
                mail: c.mail.clone(),
                audience: match n.audience {
                    NoticeFor::Admin => Audience::Admin,
                    NoticeFor::User => Audience::User,
                },
                kind: n.kind,
                threshold: n.threshold,
                deadline: n.deadline,
                case: Some(c.clone()),
                alert: None,
            });
        }
    }
    for a in alerts {
        due.push(Due {
            case_id: a.alert_id.clone(),
            upn: String::new(),
            display_name: None,
            mail: None,
            audience: Audience::Admin,
            kind: NoticeKind::Alert,
            threshold: None,
            deadline: None,
            case: None,
            alert: Some(a.clone()),
        });
    }
    due.sort_by_key(|d| {
        (
            d.kind != NoticeKind::Alert,
            d.deadline.unwrap_or(DateTime::<Utc>::MAX_UTC),
            d.upn.clone(),
        )
    });
    due
}

/// A runbook as an HTML list with its links (steps are escaped: they hold user names).
fn runbook_html(r: &Runbook) -> String {
    let steps: String = r
        .steps
        .iter()
        .map(|s| format!("<li>{}</li>", html_escape(s)))
        .collect();
    let links: String = r
        .links
        .iter()
        .map(|(title, url)| format!(" <a href=\"{url}\">{}</a>", html_escape(title)))
        .collect();
    format!("<ol>{steps}</ol>{links}")
}

/// Indents a runbook's text under a notice's line.
fn indented(r: &Runbook) -> String {
    r.text().lines().map(|l| format!("    {l}\n")).collect()
}

fn render_admin(
    items: &[&Due],
    tz: &TimeZone,
    now: DateTime<Utc>,
) -> (String, String, String, serde_json::Value) {
    let critical = items.iter().any(|d| d.critical());
    let subject = format!(
        "{}licensewatch: {} item(s) about Microsoft 365 mailboxes and licences",
        if critical { "[CRITICAL] " } else { "" },
        items.len()
    );
    let mut text = String::new();
    let mut rows = String::new();
    let mut data = Vec::new();
    for d in items {
        let (line, cells) = match (&d.case, &d.alert) {
            (_, Some(a)) => {
                let todo = runbook::for_alert(a.kind);
                (
                    format!("ALERT: {}\n{}", a.summary, indented(&todo)),
                    vec![
                        html_escape("alert"),
                        html_escape(&a.summary),
                        String::new(),
                        runbook_html(&todo),
                    ],
                )
            }
            (Some(c), _) => {
                let who = d.who();
                let dl = &c.deadlines;
                let state = d.state(c, tz, now);
                let day = |t: &DateTime<Utc>| tz.format(t, "%Y-%m-%d %H:%M %Z");
                let todo =
                    (d.kind != NoticeKind::Resolved).then(|| runbook::for_case(c, now, &day));
                (
                    format!(
                        "{who}: {} ({} evidence) - {state}.\n{}",
                        dl.case,
                        dl.evidence.kind,
                        todo.as_ref().map(indented).unwrap_or_default()
                    ),
                    vec![
                        html_escape(&who),
                        html_escape(&format!("{} / {}", dl.case, dl.evidence.kind)),
                        html_escape(&state),
                        todo.as_ref().map(runbook_html).unwrap_or_default(),
                    ],
                )
            }
            _ => continue,
        };
        text.push_str(&format!("- {}\n", line.trim_end()));
        rows.push_str(&format!(
            "<tr>{}</tr>",
            cells
                .iter()
                .map(|c| format!("<td>{c}</td>"))
                .collect::<String>()
        ));
        data.push(
            serde_json::json!({"case_id": d.case_id, "user_principal_name": d.upn, "kind": d.kind,
            "threshold_days": d.threshold, "deadline": d.deadline}),
        );
    }
    let html = format!(
        "<html><body><h2>{}</h2><table border=\"1\" cellpadding=\"4\"><tr><th>Mailbox</th><th>Case</th><th>Deadlines</th><th>What to do</th></tr>{rows}</table></body></html>",
        html_escape(&subject)
    );
    (subject, text, html, serde_json::json!({"items": data}))
}

fn render_user(d: &Due, tz: &TimeZone, now: DateTime<Utc>) -> (String, String, String) {
    let Some(c) = &d.case else {
        return (String::new(), String::new(), String::new());
    };
    let end = tz.format(&c.deadlines.access_ends_at, "%A %Y-%m-%d %H:%M %Z");
    let name = d.display_name.clone().unwrap_or_else(|| d.upn.clone());
    let subject = format!(
        "Your mailbox will stop working in {} day(s)",
        c.deadlines.days_left(now)
    );
    let text = format!(
        "Hello {name},\n\nyour mailbox {} has no Microsoft 365 licence with Exchange Online. It will stop working on {end}. \
Your IT team has been told; please contact them and mention this message.\n",
        d.mail.clone().unwrap_or_default()
    );
    let html = format!(
        "<html><body><p>{}</p></body></html>",
        html_escape(&text).replace('\n', "<br>")
    );
    (subject, text, html)
}

fn sent_notice(d: &Due, channel: &str, recipient: &str) -> SentNotice {
    SentNotice {
        case_id: d.case_id.clone(),
        user_principal_name: d.upn.clone(),
        audience: d.audience,
        threshold_days: d.threshold,
        channel: channel.into(),
        recipient: recipient.to_string(),
        deadline: d.deadline,
        kind: d.kind,
    }
}

/// Runs grace-period-notify for one tenant: one run at a time per tenant (a lease); a dry run sends and writes
/// nothing, so it needs none.
pub async fn notify_grace_period(
    deps: &NotifyDeps<'_>,
    tenant_id: &str,
    policy: &Policy,
    dry_run: bool,
) -> Result<NotifyReport, CoreError> {
    if dry_run {
        return notify_under(deps, tenant_id, policy, What::Everything, None).await;
    }
    notify_with_lease(deps, tenant_id, policy, What::Everything).await
}

/// Sends the critical alerts not sent yet (a mass delicensing caught by a re-check after change notifications),
/// and nothing else: grace notices keep their daily schedule. The same ledger as the daily run, so an alert goes
/// out once whichever run sends it.
pub(crate) async fn notify_alerts(
    deps: &NotifyDeps<'_>,
    tenant_id: &str,
    policy: &Policy,
) -> Result<NotifyReport, CoreError> {
    notify_with_lease(deps, tenant_id, policy, What::AlertsOnly).await
}

/// What a run sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum What {
    Everything,
    AlertsOnly,
}

async fn notify_with_lease(
    deps: &NotifyDeps<'_>,
    tenant_id: &str,
    policy: &Policy,
    what: What,
) -> Result<NotifyReport, CoreError> {
    let lease = match lease::take(
        deps.store,
        "grace-period-notify",
        tenant_id,
        deps.clock.now(),
    )
    .await?
    {
        Ok(lease) => lease,
        Err(why) => {
            tracing::warn!(tenant = tenant_id, "{why}");
            return Ok(NotifyReport {
                skipped: Some(why),
                ..Default::default()
            });
        }
    };
    let result = notify_under(deps, tenant_id, policy, what, Some(&lease)).await;
    // Released on errors too: a run that returns is not dead, and its claims are released with the lease.
    let released = lease.release().await;
    let report = result?;
    released?;
    Ok(report)
}

/// One delivery: one message to one recipient on one channel, carrying one or more notices.
struct Delivery<'c> {
    channel: &'c dyn Channel,
    recipient: String,
    items: Vec<Due>,
}

/// What every delivery of one run shares.
struct Run<'r, 'd> {
    deps: &'r NotifyDeps<'d>,
    tenant_id: &'r str,
    now: DateTime<Utc>,
    tz: TimeZone,
    /// `None` for a dry run.
    lease: Option<&'r RunLease<'r>>,
}

async fn notify_under(
    deps: &NotifyDeps<'_>,
    tenant_id: &str,
    policy: &Policy,
    what: What,
    lease: Option<&RunLease<'_>>,
) -> Result<NotifyReport, CoreError> {
    let now = deps.clock.now();
    let run = Run {
        deps,
        tenant_id,
        now,
        tz: policy.time_zone_for(tenant_id)?,
        lease,
    };
    // A suppression of `unlicensed_mailbox` silences the grace notices of the tenant (alerts still go).
    let silenced = crate::usecases::suppressions::of_policy(policy)?
        .iter()
        .any(|s| s.silences_notices(tenant_id, now));
    if silenced {
        tracing::info!(tenant = tenant_id, "grace notices suppressed by the policy");
    }
    let cases = match (what, silenced) {
        (What::Everything, false) => deps.store.grace_cases(tenant_id, false).await?,
        _ => Vec::new(),
    };
    let alerts = deps
        .store
        .recent_alerts(tenant_id, now - Duration::days(7))
        .await?;
    let notified = deps.store.notified_cases(tenant_id).await?;
    let due = plan(&cases, &alerts, &notified, policy, now);
    let mut report = NotifyReport {
        dry_run: lease.is_none(),
        ..Default::default()
    };
    for delivery in deliveries(&due, deps.channels) {
        run.deliver(&delivery, &mut report).await?;
    }
    // Service desks after mail and chat: a slow or failing PSA never delays a notice.
    if deps.channels.iter().any(|c| c.tickets().is_some()) {
        let open: HashSet<String> = deps
            .store
            .open_alerts(tenant_id)
            .await?
            .into_iter()
            .map(|a| a.alert_id)
            .collect();
        run.file_tickets(&due, &open, &mut report).await?;
    }
    Ok(report)
}

/// Admin notices go to every admin recipient of every channel, together; user notices one by one to the user's
/// mailbox on the channels that reach users.
fn deliveries<'c>(due: &[Due], channels: &'c [Box<dyn Channel>]) -> Vec<Delivery<'c>> {
    let admin_items: Vec<Due> = due
        .iter()
        .filter(|d| d.audience == Audience::Admin)
        .cloned()
        .collect();
    let mut out = Vec::new();
    for ch in channels {
        if !admin_items.is_empty() {
            for recipient in ch.admin_recipients() {
                out.push(Delivery {
                    channel: ch.as_ref(),
                    recipient,
                    items: admin_items.clone(),
                });
            }
        }
        if ch.reaches_users() {
            for d in due.iter().filter(|d| d.audience == Audience::User) {
                let recipient = match ch.name() {
                    "console" => "console".to_string(),
                    _ => d.mail.clone().unwrap_or_default(),
                };
                out.push(Delivery {
                    channel: ch.as_ref(),
                    recipient,
                    items: vec![d.clone()],
                });
            }
        }
    }
    out
}

impl Run<'_, '_> {
    /// Sends what of one delivery is not sent yet: claim in the ledger, send, record as sent.
    async fn deliver(
        &self,
        delivery: &Delivery<'_>,
        report: &mut NotifyReport,
    ) -> Result<(), CoreError> {
        let ch = delivery.channel;
        let keys: Vec<String> = delivery
            .items
            .iter()
            .map(|d| d.key(ch.name(), &delivery.recipient))
            .collect();
        let status = self.deps.store.ledger_status(&keys).await?;
        let pending: Vec<(&Due, &String)> = delivery
            .items
            .iter()
            .zip(keys.iter())
            .filter(|(_, k)| status.get(*k) != Some(&LedgerStatus::Sent))
            .collect();
        report.skipped_already_sent += keys.len() - pending.len();
        if pending.is_empty() {
            return Ok(());
        }
        let Some(lease) = self.lease else {
            report.would_send.extend(
                pending
                    .iter()
                    .map(|(d, _)| sent_notice(d, ch.name(), &delivery.recipient)),
            );
            return Ok(());
        };
        let before = pending.len();
        let pending = self.claim(delivery, lease, pending).await?;
        report.skipped_already_sent += before - pending.len();
        if pending.is_empty() {
            return Ok(());
        }
        let notices: Vec<SentNotice> = pending
            .iter()
            .map(|(d, _)| sent_notice(d, ch.name(), &delivery.recipient))
            .collect();
        let message = self.message(&pending, &delivery.recipient);
        match deliver_with_retry(ch, &delivery.recipient, &message, &self.deps.retry).await {
            Ok(()) => {
                (self.deps.crash)(Step::AfterSend)?;
                let sent = self.entries(delivery, lease, &pending, LedgerStatus::Sent);
                self.deps.store.ledger_put(&sent).await?;
                (self.deps.crash)(Step::AfterRecord)?;
                report.sent.extend(notices);
            }
            Err(e) => {
                tracing::warn!(channel = ch.name(), error = %e, "notice delivery failed; it stays due for the next run");
                report.failed.push(FailedDelivery {
                    channel: ch.name().into(),
                    recipient: delivery.recipient.clone(),
                    error: e.detail,
                    notices: notices.len(),
                });
            }
        }
        Ok(())
    }

    /// Claims the notices before sending: a notice another live run claimed is left to it; one claimed by a run
    /// that has since lost the lease (it died) is taken over, so a crash never skips a notice. Returns the claimed.
    async fn claim<'p>(
        &self,
        delivery: &Delivery<'_>,
        lease: &RunLease<'_>,
        pending: Vec<(&'p Due, &'p String)>,
    ) -> Result<Vec<(&'p Due, &'p String)>, CoreError> {
        (self.deps.crash)(Step::BeforeIntent)?;
        lease.renew(self.now).await?;
        let wanted = self.entries(delivery, lease, &pending, LedgerStatus::Sending);
        let claimed = self
            .deps
            .store
            .ledger_claim(&wanted, lease.acquired_at)
            .await?;
        (self.deps.crash)(Step::AfterIntent)?;
        Ok(pending
            .into_iter()
            .filter(|(_, k)| claimed.contains(k))
            .collect())
    }

    fn entries(
        &self,
        delivery: &Delivery<'_>,
        lease: &RunLease<'_>,
        items: &[(&Due, &String)],
        status: LedgerStatus,
    ) -> Vec<LedgerEntry> {
        let to = (delivery.channel.name(), delivery.recipient.as_str());
        items
            .iter()
            .map(|(d, k)| self.entry(d, k, to, lease, status))
            .collect()
    }

    /// The ledger entry of notice `d` under `key` for `(channel, recipient)`, claimed by this run.
    fn entry(
        &self,
        d: &Due,
        key: &str,
        (channel, recipient): (&str, &str),
        lease: &RunLease<'_>,
        status: LedgerStatus,
    ) -> LedgerEntry {
        LedgerEntry {
            key: key.to_string(),
            tenant_id: self.tenant_id.to_string(),
            case_id: d.case_id.clone(),
            user_principal_name: d.upn.clone(),
            audience: d.audience,
            kind: d.kind,
            threshold_days: d.threshold,
            deadline: d.deadline,
            channel: channel.to_string(),
            recipient: recipient.to_string(),
            status,
            updated_at: self.now,
            claimed_by: Some(lease.owner.clone()),
            reference: None,
        }
    }

    /// The message for the claimed notices. Its id is derived from their keys, so a resend after a crash carries
    /// the same webhook-id.
    fn message(&self, pending: &[(&Due, &String)], recipient: &str) -> Message {
        let digest = Sha256::digest(
            pending
                .iter()
                .map(|(_, k)| k.as_str())
                .collect::<Vec<_>>()
                .join("\n"),
        );
        let hex: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
        let items: Vec<&Due> = pending.iter().map(|(d, _)| *d).collect();
        let (subject, text, html, data) = match items[0].audience {
            Audience::Admin => render_admin(&items, &self.tz, self.now),
            Audience::User => {
                let (s, t, h) = render_user(items[0], &self.tz, self.now);
                (s, t, h, serde_json::json!({"case_id": items[0].case_id}))
            }
        };
        Message {
            id: format!("msg_{hex}"),
            audience: items[0].audience,
            to: Some(recipient.to_string()),
            subject,
            text,
            html,
            data,
            timestamp: self.now.timestamp(),
        }
    }
}

/// Up to three tries when the channel says a retry can help.
async fn with_retries<T, F, Fut>(retry: &RetryPolicy, mut call: F) -> Result<T, ChannelError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ChannelError>>,
{
    let mut attempt = 0;
    loop {
        match call().await {
            Ok(v) => return Ok(v),
            Err(e) if e.retryable && attempt < 2 => {
                tokio::time::sleep(retry.backoff(attempt)).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

async fn deliver_with_retry(
    ch: &dyn Channel,
    recipient: &str,
    message: &Message,
    retry: &RetryPolicy,
) -> Result<(), ChannelError> {
    with_retries(retry, || ch.deliver(recipient, message)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_urgent_reached_threshold_is_due() {
        let t = [21, 14, 7, 3, 1, 0];
        assert_eq!(due_threshold(30, &t), None);
        assert_eq!(due_threshold(21, &t), Some(21));
        assert_eq!(due_threshold(10, &t), Some(14));
        assert_eq!(due_threshold(2, &t), Some(3));
        assert_eq!(due_threshold(0, &t), Some(0));
    }
}
