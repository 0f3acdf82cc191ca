//! Service desks: ServiceNow (Table API incidents), Jira Cloud (REST v3 issues), HaloPSA (tickets and actions),
//! ConnectWise PSA (service tickets and notes) and Autotask (tickets and notes). Each is a
//! [`TicketSystem`](crate::ports::channel::TicketSystem) behind a [`Channel`] that takes tickets, not messages.

mod autotask;
mod connectwise;
mod halopsa;
mod jira;
mod servicenow;

use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use crate::config::ConfigProblem;
use crate::policy::{TicketChannel, TicketSystemKind};
use crate::ports::channel::{Channel, ChannelError, Message, NewTicket, TicketRef, TicketSystem};
use crate::secret::SecretString;

/// The HTTP side every desk shares: one base URL, a timeout, and failures sorted into retryable or not, with no
/// credential or body in the message.
#[derive(Clone)]
pub(crate) struct DeskHttp {
    http: reqwest::Client,
    base: String,
    channel: String,
}

impl DeskHttp {
    fn new(http: reqwest::Client, base: &str, kind: TicketSystemKind) -> Self {
        Self {
            http,
            base: base.trim_end_matches('/').to_string(),
            channel: channel_name(kind),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn fail(&self, detail: String, retryable: bool) -> ChannelError {
        ChannelError {
            channel: self.channel.clone(),
            detail,
            retryable,
        }
    }

    /// Sends, and returns the JSON answer (`Null` for an empty one).
    async fn send(&self, req: reqwest::RequestBuilder, what: &str) -> Result<Value, ChannelError> {
        let response = req
            .timeout(Duration::from_secs(30))
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| {
                let retryable = e.is_timeout() || e.is_connect() || e.is_request();
                self.fail(format!("{what}: {}", e.without_url()), retryable)
            })?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() {
            let hint = match status.as_u16() {
                401 | 403 => {
                    " (the credentials were refused: check the *_env variables and the account's rights)"
                }
                404 => " (not found: check url, queue and project)",
                _ => "",
            };
            return Err(self.fail(
                format!("{what}: HTTP {}{hint}", status.as_u16()),
                status.as_u16() == 429 || status.is_server_error(),
            ));
        }
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text)
            .map_err(|_| self.fail(format!("{what}: the answer is not JSON"), false))
    }

    fn missing(&self, what: &str) -> ChannelError {
        self.fail(format!("the answer has no {what}"), false)
    }
}

/// What each system's API does; [`Desk`] adds what every desk shares (its kind, its routes).
#[async_trait]
trait DeskApi: Send + Sync {
    async fn find(
        &self,
        correlation: &str,
        route: &crate::policy::TicketRoute,
    ) -> Result<Option<TicketRef>, ChannelError>;
    async fn create(&self, ticket: &NewTicket) -> Result<TicketRef, ChannelError>;
    async fn comment(&self, ticket: &TicketRef, text: &str) -> Result<(), ChannelError>;
    async fn resolve(&self, ticket: &TicketRef, text: &str) -> Result<(), ChannelError>;
}

/// One configured desk: a system's API with the entry's kind and routes.
struct Desk<A> {
    entry: TicketChannel,
    api: A,
}

#[async_trait]
impl<A: DeskApi> TicketSystem for Desk<A> {
    fn kind(&self) -> TicketSystemKind {
        self.entry.system
    }
    fn route(&self, tenant_id: &str) -> crate::policy::TicketRoute {
        self.entry.route(tenant_id)
    }
    async fn find(
        &self,
        correlation: &str,
        route: &crate::policy::TicketRoute,
    ) -> Result<Option<TicketRef>, ChannelError> {
        self.api.find(correlation, route).await
    }
    async fn create(&self, ticket: &NewTicket) -> Result<TicketRef, ChannelError> {
        self.api.create(ticket).await
    }
    async fn comment(&self, ticket: &TicketRef, text: &str) -> Result<(), ChannelError> {
        self.api.comment(ticket, text).await
    }
    async fn resolve(&self, ticket: &TicketRef, text: &str) -> Result<(), ChannelError> {
        self.api.resolve(ticket, text).await
    }
}

fn desk<A: DeskApi + 'static>(entry: &TicketChannel, api: A) -> Box<dyn TicketSystem> {
    Box::new(Desk {
        entry: entry.clone(),
        api,
    })
}

/// `ticket:<system>`: the channel's name in reports and the ledger.
pub(crate) fn channel_name(kind: TicketSystemKind) -> String {
    format!("ticket:{kind}")
}

/// A string or a number, as text (ids are numbers in HaloPSA, ConnectWise and Autotask).
fn id_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A service desk as a channel: no message recipients, only tickets.
pub struct DeskChannel {
    name: String,
    desk: Box<dyn TicketSystem>,
}

#[async_trait]
impl Channel for DeskChannel {
    fn name(&self) -> &str {
        &self.name
    }
    fn admin_recipients(&self) -> Vec<String> {
        Vec::new()
    }
    fn reaches_users(&self) -> bool {
        false
    }
    async fn deliver(&self, _recipient: &str, _message: &Message) -> Result<(), ChannelError> {
        Err(ChannelError {
            channel: self.name.clone(),
            detail: "a service desk takes tickets, not messages".into(),
            retryable: false,
        })
    }
    fn tickets(&self) -> Option<&dyn TicketSystem> {
        Some(self.desk.as_ref())
    }
}

/// The credentials a `[[notify.tickets]]` entry names, read through `lookup`; a missing one is a problem naming the
/// variable and the key.
struct Credentials<'a> {
    entry: &'a TicketChannel,
    index: usize,
    lookup: &'a dyn Fn(&str) -> Option<String>,
    problems: Vec<ConfigProblem>,
}

impl Credentials<'_> {
    fn get(&mut self, key: &str) -> SecretString {
        let var = self.entry.credential_env(key);
        match (self.lookup)(var).filter(|v| !v.trim().is_empty()) {
            Some(v) => SecretString::new(v),
            None => {
                self.problems.push(ConfigProblem {
                    name: var.to_string(),
                    problem: format!("is not set (named by notify.tickets[{}].{key})", self.index),
                });
                SecretString::new(String::new())
            }
        }
    }
}

/// The desk for one `[[notify.tickets]]` entry.
pub fn build_desk(
    entry: &TicketChannel,
    index: usize,
    http: &reqwest::Client,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<DeskChannel, Vec<ConfigProblem>> {
    let mut creds = Credentials {
        entry,
        index,
        lookup,
        problems: Vec::new(),
    };
    let web = DeskHttp::new(http.clone(), &entry.url, entry.system);
    let desk = match entry.system {
        TicketSystemKind::Servicenow => desk(
            entry,
            servicenow::ServiceNow::new(
                web,
                entry.clone(),
                creds.get("user_env"),
                creds.get("password_env"),
            ),
        ),
        TicketSystemKind::Jira => desk(
            entry,
            jira::Jira::new(
                web,
                entry.clone(),
                creds.get("user_env"),
                creds.get("token_env"),
            ),
        ),
        TicketSystemKind::Halopsa => desk(
            entry,
            halopsa::HaloPsa::new(
                web,
                entry.clone(),
                creds.get("client_id_env"),
                creds.get("client_secret_env"),
            ),
        ),
        TicketSystemKind::Connectwise => desk(
            entry,
            connectwise::ConnectWise::new(
                web,
                entry.clone(),
                creds.get("public_key_env"),
                creds.get("private_key_env"),
                creds.get("client_id_env"),
            ),
        ),
        TicketSystemKind::Autotask => desk(
            entry,
            autotask::Autotask::new(
                web,
                entry.clone(),
                creds.get("user_env"),
                creds.get("secret_env"),
                creds.get("integration_code_env"),
            ),
        ),
    };
    if creds.problems.is_empty() {
        Ok(DeskChannel {
            name: channel_name(entry.system),
            desk,
        })
    } else {
        Err(creds.problems)
    }
}
