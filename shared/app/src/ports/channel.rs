//! The notification channel port: a [`Message`] for an [`Audience`], delivered by a [`Channel`]; and a service desk
//! ([`TicketSystem`]), a channel where each grace case or alert occurrence is one ticket, created once, commented as
//! it develops and resolved when it ends.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::policy::{TicketRoute, TicketSystemKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Audience {
    /// Tenant administrators.
    Admin,
    /// The mailbox owner.
    User,
}

impl Audience {
    /// `admin` or `user`.
    pub fn as_str(self) -> &'static str {
        match self {
            Audience::Admin => "admin",
            Audience::User => "user",
        }
    }
}

impl std::fmt::Display for Audience {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for Audience {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// One message to deliver.
#[derive(Debug, Clone)]
pub struct Message {
    /// Stable id (the generic webhook's `webhook-id`): a repeat carries the same id.
    pub id: String,
    /// Audience.
    pub audience: Audience,
    /// Mail address, for mail and console.
    pub to: Option<String>,
    /// Subject / title.
    pub subject: String,
    /// Plain text.
    pub text: String,
    /// HTML (user-controlled text escaped).
    pub html: String,
    /// Structured payload for webhooks.
    pub data: Value,
    /// Unix time the message is signed with.
    pub timestamp: i64,
}

/// A delivery failure.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{channel}: {detail}")]
pub struct ChannelError {
    /// Channel name.
    pub channel: String,
    /// What went wrong (no secrets, no bodies).
    pub detail: String,
    /// Whether trying again may help.
    pub retryable: bool,
}

/// A way to reach people.
#[async_trait]
pub trait Channel: Send + Sync {
    /// `mail`, `teams`, `slack`, `webhook`, `console`.
    fn name(&self) -> &str;
    /// The recipients this channel uses for admin messages (mail: each admin; webhooks: the endpoint).
    fn admin_recipients(&self) -> Vec<String>;
    /// Whether it can reach a user's own mailbox.
    fn reaches_users(&self) -> bool;
    /// Delivers one message to one recipient.
    async fn deliver(&self, recipient: &str, message: &Message) -> Result<(), ChannelError>;
    /// The service desk behind this channel, when it is one: it takes one ticket per case instead of messages.
    fn tickets(&self) -> Option<&dyn TicketSystem> {
        None
    }
}

/// A ticket as the system knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketRef {
    /// The id its API takes (ServiceNow sys_id, Jira key, HaloPSA/ConnectWise/Autotask numeric id).
    pub id: String,
    /// What people see (INC0010042, IT-42, T20261207.0001).
    pub number: String,
}

/// A ticket to open.
#[derive(Debug, Clone)]
pub struct NewTicket {
    /// The key stored in the ticket that finds it again (`licensewatch:<tenant>:<case>`).
    pub correlation: String,
    /// Short description / summary.
    pub title: String,
    /// Description: what is wrong, the deadlines and what to do.
    pub text: String,
    /// True when the case is critical (3 days or fewer, access ended, alerts).
    pub critical: bool,
    /// The user concerned, when there is one.
    pub user: Option<String>,
    /// Where it goes.
    pub route: TicketRoute,
}

/// A service desk.
#[async_trait]
pub trait TicketSystem: Send + Sync {
    /// Which system.
    fn kind(&self) -> TicketSystemKind;
    /// Where `tenant_id`'s tickets go.
    fn route(&self, tenant_id: &str) -> TicketRoute;
    /// The open or resolved ticket holding `correlation`, if one exists (a ticket created by a run that died
    /// before recording it).
    async fn find(
        &self,
        correlation: &str,
        route: &TicketRoute,
    ) -> Result<Option<TicketRef>, ChannelError>;
    /// Opens a ticket.
    async fn create(&self, ticket: &NewTicket) -> Result<TicketRef, ChannelError>;
    /// Adds a note people can read.
    async fn comment(&self, ticket: &TicketRef, text: &str) -> Result<(), ChannelError>;
    /// Resolves it with `text` as the resolution note.
    async fn resolve(&self, ticket: &TicketRef, text: &str) -> Result<(), ChannelError>;
}

/// The correlation key a case's ticket carries: short and plain (`lw-` and 20 hex digits of a SHA-256 of the tenant
/// and the case), so it fits every system's reference field (ConnectWise `externalXRef`, Autotask `externalID`,
/// ServiceNow `correlation_id`, a Jira label) and searches for it match it exactly.
pub fn correlation(tenant_id: &str, case_id: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("{}|{case_id}", tenant_id.to_ascii_lowercase()));
    let hex: String = digest.iter().take(10).map(|b| format!("{b:02x}")).collect();
    format!("lw-{hex}")
}
/// Escapes text for HTML.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes text for Slack mrkdwn.
pub fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
