//! Notification channels: Graph `sendMail`, Microsoft Teams (Workflows webhook, Adaptive Card), Slack (incoming
//! webhook), a generic webhook signed per Standard Webhooks, and the console. Each is a
//! [`Channel`](crate::ports::channel::Channel).

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};

use crate::config::{ConfigError, ConfigProblem};
use crate::domain::signing::WebhookSecret;
use crate::graph::GraphClient;
use crate::policy::{Policy, WebhookKind};

/// Who a message is for.
pub use crate::ports::channel::{
    Audience, Channel, ChannelError, Message, html_escape, slack_escape,
};

/// Mail through Graph `sendMail` from the configured sender.
pub struct MailChannel {
    graph: GraphClient,
    sender: String,
    admins: Vec<String>,
}

impl MailChannel {
    /// A mail channel sending as `sender` to `admins` (and to users' own mailboxes).
    pub fn new(graph: GraphClient, sender: String, admins: Vec<String>) -> Self {
        Self {
            graph,
            sender,
            admins,
        }
    }
}

#[async_trait]
impl Channel for MailChannel {
    fn name(&self) -> &str {
        "mail"
    }
    fn admin_recipients(&self) -> Vec<String> {
        self.admins.clone()
    }
    fn reaches_users(&self) -> bool {
        true
    }
    async fn deliver(&self, recipient: &str, m: &Message) -> Result<(), ChannelError> {
        let body = json!({
            "message": {
                "subject": m.subject,
                "body": {"contentType": "HTML", "content": m.html},
                "toRecipients": [{"emailAddress": {"address": recipient}}],
                "internetMessageHeaders": [{"name": "X-Licensewatch-Notice", "value": m.id}]
            },
            "saveToSentItems": false
        });
        let path = format!(
            "users/{}/sendMail",
            url::form_urlencoded::byte_serialize(self.sender.as_bytes()).collect::<String>()
        );
        self.graph
            .post::<_, Value>(&path, &body)
            .await
            .map(|_| ())
            .map_err(|e| ChannelError {
                channel: "mail".into(),
                retryable: e.is_retryable(),
                detail: e.to_string(),
            })
    }
}

/// Incoming-webhook channels: Teams, Slack, generic (signed).
pub struct WebhookChannel {
    http: reqwest::Client,
    kind: WebhookKind,
    url: String,
    secret: Option<WebhookSecret>,
}

impl WebhookChannel {
    /// A webhook channel.
    pub fn new(
        http: reqwest::Client,
        kind: WebhookKind,
        url: String,
        secret: Option<WebhookSecret>,
    ) -> Self {
        Self {
            http,
            kind,
            url,
            secret,
        }
    }

    fn payload(&self, m: &Message) -> Value {
        match self.kind {
            WebhookKind::Teams => json!({
                "type": "message",
                "attachments": [{
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "content": {
                        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                        "type": "AdaptiveCard",
                        "version": "1.4",
                        "body": [
                            {"type": "TextBlock", "text": m.subject, "weight": "Bolder", "size": "Medium", "wrap": true},
                            {"type": "TextBlock", "text": m.text, "wrap": true}
                        ]
                    }
                }]
            }),
            WebhookKind::Slack => json!({
                "text": slack_escape(&m.subject),
                "blocks": [
                    {"type": "header", "text": {"type": "plain_text", "text": m.subject.chars().take(150).collect::<String>()}},
                    {"type": "section", "text": {"type": "mrkdwn", "text": slack_escape(&m.text).chars().take(2900).collect::<String>()}}
                ]
            }),
            WebhookKind::Generic => {
                json!({"id": m.id, "type": "licensewatch.notice", "audience": m.audience, "subject": m.subject, "data": m.data})
            }
        }
    }
}

#[async_trait]
impl Channel for WebhookChannel {
    fn name(&self) -> &str {
        match self.kind {
            WebhookKind::Teams => "teams",
            WebhookKind::Slack => "slack",
            WebhookKind::Generic => "webhook",
        }
    }
    fn admin_recipients(&self) -> Vec<String> {
        vec![self.url.clone()]
    }
    fn reaches_users(&self) -> bool {
        false
    }
    async fn deliver(&self, _recipient: &str, m: &Message) -> Result<(), ChannelError> {
        let body = serde_json::to_vec(&self.payload(m)).unwrap_or_default();
        let mut req = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .timeout(Duration::from_secs(20));
        if let Some(secret) = &self.secret {
            req = req
                .header("webhook-id", &m.id)
                .header("webhook-timestamp", m.timestamp.to_string())
                .header("webhook-signature", secret.sign(&m.id, m.timestamp, &body));
        }
        let name = self.name().to_string();
        match req.body(body).send().await {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(ChannelError {
                channel: name,
                retryable: r.status().is_server_error() || r.status().as_u16() == 429,
                detail: format!("endpoint answered {}", r.status().as_u16()),
            }),
            Err(e) => Err(ChannelError {
                channel: name,
                retryable: true,
                detail: format!(
                    "cannot reach the endpoint ({})",
                    if e.is_timeout() {
                        "timeout"
                    } else {
                        "connection"
                    }
                ),
            }),
        }
    }
}

/// Writes notices to stderr and keeps them (the local default, and the demo's narration).
#[derive(Default)]
pub struct ConsoleChannel {
    quiet: bool,
    lines: Mutex<Vec<String>>,
}

impl ConsoleChannel {
    /// A console channel; `quiet` keeps lines without printing them.
    pub fn new(quiet: bool) -> Self {
        Self {
            quiet,
            lines: Mutex::new(Vec::new()),
        }
    }

    /// Everything written so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[async_trait]
impl Channel for ConsoleChannel {
    fn name(&self) -> &str {
        "console"
    }
    fn admin_recipients(&self) -> Vec<String> {
        vec!["console".into()]
    }
    fn reaches_users(&self) -> bool {
        true
    }
    async fn deliver(&self, recipient: &str, m: &Message) -> Result<(), ChannelError> {
        let line = format!(
            "[{} → {recipient}] {}\n{}",
            m.audience.as_str(),
            m.subject,
            m.text
        );
        if !self.quiet {
            eprintln!("{line}\n");
        }
        self.lines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(line);
        Ok(())
    }
}

/// Builds the configured channels. `lookup` reads the environment variables that hold webhook secrets.
pub fn build_channels(
    policy: &Policy,
    graph: &GraphClient,
    http: &reqwest::Client,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<Box<dyn Channel>>, ConfigError> {
    let mut out: Vec<Box<dyn Channel>> = Vec::new();
    let mut problems = Vec::new();
    if !policy.notify.sender.is_empty() {
        out.push(Box::new(MailChannel::new(
            graph.clone(),
            policy.notify.sender.clone(),
            policy.notify.admins.clone(),
        )));
    }
    for (i, w) in policy.notify.webhooks.iter().enumerate() {
        let secret = if w.kind == WebhookKind::Generic {
            match lookup(&w.secret_env).map(|v| WebhookSecret::parse(&v)) {
                Some(Ok(s)) => Some(s),
                Some(Err(e)) => {
                    problems.push(ConfigProblem {
                        name: w.secret_env.clone(),
                        problem: format!("{e} (notify.webhooks[{i}].secret_env)"),
                    });
                    None
                }
                None => {
                    problems.push(ConfigProblem {
                        name: w.secret_env.clone(),
                        problem: format!("is not set (named by notify.webhooks[{i}].secret_env)"),
                    });
                    None
                }
            }
        } else {
            None
        };
        out.push(Box::new(WebhookChannel::new(
            http.clone(),
            w.kind,
            w.url.clone(),
            secret,
        )));
    }
    for (i, t) in policy.notify.tickets.iter().enumerate() {
        match crate::tickets::build_desk(t, i, http, lookup) {
            Ok(desk) => out.push(Box::new(desk)),
            Err(p) => problems.extend(p),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(ConfigError { problems })
    }
}
