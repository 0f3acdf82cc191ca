//! The notification channel port: a [`Message`] for an [`Audience`], delivered by a [`Channel`].

use async_trait::async_trait;
use serde_json::Value;

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
