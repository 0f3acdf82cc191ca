//! Tickets: one per grace case or alert occurrence in each configured service desk, created once, commented at each
//! later notice, resolved when the case closes or the alert ends.
//!
//! Exactly one ticket, whatever dies when: each notice is claimed in the ledger like any other; the ticket's id is
//! kept in the ledger under the case (`ticket|<system>|<tenant>|<case>`), written before the notice is recorded as
//! sent. A run that dies between the PSA creating a ticket and the id being recorded leaves a marker saying which
//! notice it was creating; the next run finds the ticket by the correlation key stored in it, records it, and does
//! not repeat what the creation already said. A desk that fails is reported and retried next run; it never holds
//! back the other channels, which deliver first.

use super::*;
use crate::policy::TicketRoute;
use crate::ports::channel::{NewTicket, TicketRef, TicketSystem, correlation};

/// What a notice does to its ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Act {
    /// Open the ticket, or comment on it.
    Update,
    /// Resolve it (never opens one).
    Resolve,
}

/// A failure of one notice: the desk's (reported, retried next run) or the store's (the run stops).
enum Failure {
    Desk(ChannelError),
    Core(CoreError),
}

impl From<CoreError> for Failure {
    fn from(e: CoreError) -> Self {
        Failure::Core(e)
    }
}

impl From<crate::error::StoreError> for Failure {
    fn from(e: crate::error::StoreError) -> Self {
        Failure::Core(e.into())
    }
}

/// Up to three tries when the desk says a retry can help.
async fn retried<T, F, Fut>(retry: &RetryPolicy, call: F) -> Result<T, Failure>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ChannelError>>,
{
    with_retries(retry, call).await.map_err(Failure::Desk)
}

/// One notice for one desk.
struct Filing<'a> {
    desk: &'a dyn TicketSystem,
    channel: &'a str,
    due: &'a Due,
    act: Act,
    route: TicketRoute,
    key: String,
}

/// Whether the ticket link (or the marker written before creating) was written for this notice: the ticket's
/// description already says what the notice says.
/// A resolution is never the notice a ticket was opened for.
fn opened_for(link: &LedgerEntry, f: &Filing<'_>) -> bool {
    let d = f.due;
    f.act == Act::Update
        && (link.kind, link.threshold_days, link.deadline) == (d.kind, d.threshold, d.deadline)
}

impl Run<'_, '_> {
    /// Files the admin notices due in every desk among the channels. `open_alerts`: the alert occurrences that
    /// still hold (an alert's ticket is resolved when its occurrence ends).
    pub(super) async fn file_tickets(
        &self,
        due: &[Due],
        open_alerts: &HashSet<String>,
        report: &mut NotifyReport,
    ) -> Result<(), CoreError> {
        for ch in self.deps.channels {
            let Some(desk) = ch.tickets() else {
                continue;
            };
            let route = desk.route(self.tenant_id);
            let recipient = if route.queue.is_empty() {
                "-".to_string()
            } else {
                route.queue.clone()
            };
            for d in due.iter().filter(|d| d.audience == Audience::Admin) {
                let ended = d
                    .alert
                    .as_ref()
                    .is_some_and(|a| !open_alerts.contains(&a.alert_id));
                let act = if d.kind == NoticeKind::Resolved || ended {
                    Act::Resolve
                } else {
                    Act::Update
                };
                let mut key = d.key(ch.name(), &recipient);
                if ended {
                    key.push_str("|ended");
                }
                let filing = Filing {
                    desk,
                    channel: ch.name(),
                    due: d,
                    act,
                    route: route.clone(),
                    key,
                };
                self.file(&filing, &recipient, report).await?;
            }
        }
        Ok(())
    }

    async fn file(
        &self,
        f: &Filing<'_>,
        recipient: &str,
        report: &mut NotifyReport,
    ) -> Result<(), CoreError> {
        let status = self
            .deps
            .store
            .ledger_status(std::slice::from_ref(&f.key))
            .await?;
        if status.get(&f.key) == Some(&LedgerStatus::Sent) {
            report.skipped_already_sent += 1;
            return Ok(());
        }
        let notice = sent_notice(f.due, f.channel, recipient);
        let Some(lease) = self.lease else {
            report.would_send.push(notice);
            return Ok(());
        };
        (self.deps.crash)(Step::BeforeIntent)?;
        lease.renew(self.now).await?;
        let entry = self.ticket_entry(f, lease, &f.key, recipient, LedgerStatus::Sending, None);
        let claimed = self
            .deps
            .store
            .ledger_claim(std::slice::from_ref(&entry), lease.acquired_at)
            .await?;
        (self.deps.crash)(Step::AfterIntent)?;
        if !claimed.contains(&f.key) {
            report.skipped_already_sent += 1;
            return Ok(());
        }
        match self.act_on_ticket(f, lease).await {
            Ok(()) => {
                (self.deps.crash)(Step::AfterSend)?;
                let sent = LedgerEntry {
                    status: LedgerStatus::Sent,
                    ..entry
                };
                self.deps.store.ledger_put(&[sent]).await?;
                (self.deps.crash)(Step::AfterRecord)?;
                report.sent.push(notice);
                Ok(())
            }
            Err(Failure::Desk(e)) => {
                tracing::warn!(channel = f.channel, error = %e, "ticket not filed; it stays due for the next run");
                report.failed.push(FailedDelivery {
                    channel: f.channel.to_string(),
                    recipient: recipient.to_string(),
                    error: e.detail,
                    notices: 1,
                });
                Ok(())
            }
            Err(Failure::Core(e)) => Err(e),
        }
    }

    /// The ledger key holding a case's ticket in one desk.
    fn link_key(&self, f: &Filing<'_>) -> String {
        format!(
            "ticket|{}|{}|{}",
            f.desk.kind(),
            self.tenant_id.to_ascii_lowercase(),
            f.due.case_id
        )
    }

    fn ticket_entry(
        &self,
        f: &Filing<'_>,
        lease: &RunLease<'_>,
        key: &str,
        recipient: &str,
        status: LedgerStatus,
        reference: Option<&TicketRef>,
    ) -> LedgerEntry {
        LedgerEntry {
            reference: reference.and_then(|r| serde_json::to_string(r).ok()),
            ..self.entry(f.due, key, (f.channel, recipient), lease, status)
        }
    }

    /// Opens, comments on or resolves the case's ticket.
    async fn act_on_ticket(&self, f: &Filing<'_>, lease: &RunLease<'_>) -> Result<(), Failure> {
        let link_key = self.link_key(f);
        let link = self.deps.store.ledger_entry(&link_key).await?;
        let recorded = link
            .as_ref()
            .and_then(|l| l.reference.as_deref())
            .and_then(|r| serde_json::from_str::<TicketRef>(r).ok());
        let ticket = match recorded {
            // The run that opened the ticket for this notice died before recording the notice as sent.
            Some(_) if link.as_ref().is_some_and(|l| opened_for(l, f)) => return Ok(()),
            Some(t) => t,
            None => match self
                .find_or_open(f, lease, &link_key, link.as_ref())
                .await?
            {
                Some(t) => t,
                // Opened now (its description is this notice), or nothing to resolve.
                None => return Ok(()),
            },
        };
        let text = match (f.act, &f.due.alert) {
            (Act::Resolve, Some(a)) => format!("Ended: {} no longer holds.", a.summary),
            _ => self.ticket_text(f.due),
        };
        match f.act {
            Act::Update => retried(&self.deps.retry, || f.desk.comment(&ticket, &text)).await,
            Act::Resolve => retried(&self.deps.retry, || f.desk.resolve(&ticket, &text)).await,
        }
    }

    /// The case's ticket when none is recorded: one a dead run opened (found by its correlation key), or a new
    /// one. `None` when this notice needs nothing more (the ticket was opened for it, or there is nothing to
    /// resolve).
    async fn find_or_open(
        &self,
        f: &Filing<'_>,
        lease: &RunLease<'_>,
        link_key: &str,
        marker: Option<&LedgerEntry>,
    ) -> Result<Option<TicketRef>, Failure> {
        let key = correlation(self.tenant_id, &f.due.case_id);
        let found = retried(&self.deps.retry, || f.desk.find(&key, &f.route)).await?;
        if let Some(t) = found {
            let link =
                self.ticket_entry(f, lease, link_key, "ticket", LedgerStatus::Sent, Some(&t));
            self.deps.store.ledger_put(&[link]).await?;
            // Opened by a run that died before recording it: if for this very notice, it already says this.
            return Ok((!marker.is_some_and(|m| opened_for(m, f))).then_some(t));
        }
        if f.act == Act::Resolve {
            return Ok(None);
        }
        let intent = self.ticket_entry(f, lease, link_key, "ticket", LedgerStatus::Sending, None);
        self.deps.store.ledger_put(&[intent]).await?;
        let new = self.new_ticket(f, key);
        let t = retried(&self.deps.retry, || f.desk.create(&new)).await?;
        (self.deps.crash)(Step::AfterCreate)?;
        let link = self.ticket_entry(f, lease, link_key, "ticket", LedgerStatus::Sent, Some(&t));
        self.deps.store.ledger_put(&[link]).await?;
        Ok(None)
    }

    fn new_ticket(&self, f: &Filing<'_>, correlation: String) -> NewTicket {
        let d = f.due;
        let title = match (&d.case, &d.alert) {
            (_, Some(a)) => format!("licensewatch alert: {}", a.summary),
            (Some(c), _) if d.kind == NoticeKind::AccessGone => format!(
                "Mailbox access ended: {} (data deleted {})",
                d.who(),
                self.tz.format(&c.deadlines.data_deleted_at, "%Y-%m-%d")
            ),
            (Some(c), _) => format!(
                "Mailbox of {} loses access on {} (no Exchange Online licence)",
                d.who(),
                self.tz.format(&c.deadlines.access_ends_at, "%Y-%m-%d")
            ),
            _ => "licensewatch".to_string(),
        };
        NewTicket {
            correlation,
            title,
            text: self.ticket_text(d),
            critical: d.critical(),
            user: (!d.upn.is_empty()).then(|| d.upn.clone()),
            route: f.route.clone(),
        }
    }

    /// What a notice says in a ticket: where the case stands and the runbook.
    fn ticket_text(&self, d: &Due) -> String {
        match (&d.case, &d.alert) {
            (Some(c), _) if d.kind == NoticeKind::Resolved => {
                format!("{}: {}", d.who(), d.state(c, &self.tz, self.now))
            }
            (Some(c), _) => format!(
                "{}: {} ({} evidence) - {}.\n\nWhat to do:\n{}\nlicensewatch case {}",
                d.who(),
                c.deadlines.case,
                c.deadlines.evidence.kind,
                d.state(c, &self.tz, self.now),
                runbook::for_case(c, self.now, &|t| self.tz.format(t, "%Y-%m-%d %H:%M %Z")).text(),
                d.case_id
            ),
            (_, Some(a)) => format!(
                "{}\n\nWhat to do:\n{}\nlicensewatch alert {}",
                a.summary,
                runbook::for_alert(a.kind).text(),
                a.alert_id
            ),
            _ => String::new(),
        }
    }
}
