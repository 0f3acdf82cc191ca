//! Jira Cloud issues through REST v3: `POST /rest/api/3/issue`, comments, and a transition looked up by name;
//! found again by a label holding the correlation key (`POST /rest/api/3/search/jql`). Basic auth with an API token.
//! Texts are Atlassian Document Format.

use async_trait::async_trait;
use serde_json::{Value, json};

use super::{DeskApi, DeskHttp, id_text};
use crate::policy::{TicketChannel, TicketRoute};
use crate::ports::channel::{ChannelError, NewTicket, TicketRef};
use crate::secret::SecretString;

pub(super) struct Jira {
    web: DeskHttp,
    entry: TicketChannel,
    user: SecretString,
    token: SecretString,
}

/// Plain text as an ADF document: one paragraph per non-empty line (ADF refuses empty text nodes).
pub(super) fn adf(text: &str) -> Value {
    let paragraphs: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| json!({"type": "paragraph", "content": [{"type": "text", "text": l}]}))
        .collect();
    json!({"type": "doc", "version": 1, "content": paragraphs})
}

impl Jira {
    pub(super) fn new(
        web: DeskHttp,
        entry: TicketChannel,
        user: SecretString,
        token: SecretString,
    ) -> Self {
        Self {
            web,
            entry,
            user,
            token,
        }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.web
            .http
            .request(method, self.web.url(path))
            .basic_auth(self.user.expose(), Some(self.token.expose()))
    }

    /// The transition to the resolved status: by its name or its target status's name.
    async fn resolving_transition(&self, key: &str) -> Result<String, ChannelError> {
        let wanted = match self.entry.resolved_status.as_str() {
            "" => "Done",
            s => s,
        };
        let path = format!("/rest/api/3/issue/{key}/transitions");
        let v = self
            .web
            .send(
                self.request(reqwest::Method::GET, &path),
                "list transitions",
            )
            .await?;
        v["transitions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| {
                [&t["name"], &t["to"]["name"]]
                    .iter()
                    .any(|n| n.as_str().is_some_and(|n| n.eq_ignore_ascii_case(wanted)))
            })
            .and_then(|t| id_text(&t["id"]))
            .ok_or_else(|| {
                self.web.fail(
                    format!("issue {key} has no transition to '{wanted}' (set resolved_status)"),
                    false,
                )
            })
    }
}

#[async_trait]
impl DeskApi for Jira {
    async fn find(
        &self,
        correlation: &str,
        route: &TicketRoute,
    ) -> Result<Option<TicketRef>, ChannelError> {
        let jql = format!(
            "project = \"{}\" AND labels = \"{correlation}\"",
            route.queue
        );
        let req = self
            .request(reqwest::Method::POST, "/rest/api/3/search/jql")
            .json(&json!({"jql": jql, "fields": ["summary"], "maxResults": 1}));
        let v = self.web.send(req, "search issues").await?;
        Ok(v["issues"]
            .as_array()
            .and_then(|a| a.first())
            .and_then(|i| {
                let key = id_text(&i["key"])?;
                Some(TicketRef {
                    id: key.clone(),
                    number: key,
                })
            }))
    }

    async fn create(&self, t: &NewTicket) -> Result<TicketRef, ChannelError> {
        let mut labels = vec!["licensewatch".to_string(), t.correlation.clone()];
        if t.critical {
            labels.push("licensewatch-critical".into());
        }
        let body = json!({"fields": {
            "project": {"key": t.route.queue},
            "issuetype": {"name": "Task"},
            "summary": t.title.chars().take(250).collect::<String>(),
            "description": adf(&t.text),
            "labels": labels,
        }});
        let req = self
            .request(reqwest::Method::POST, "/rest/api/3/issue")
            .json(&body);
        let v = self.web.send(req, "create the issue").await?;
        let key = id_text(&v["key"]).ok_or_else(|| self.web.missing("key"))?;
        Ok(TicketRef {
            id: key.clone(),
            number: key,
        })
    }

    async fn comment(&self, t: &TicketRef, text: &str) -> Result<(), ChannelError> {
        let path = format!("/rest/api/3/issue/{}/comment", t.id);
        let req = self
            .request(reqwest::Method::POST, &path)
            .json(&json!({"body": adf(text)}));
        self.web.send(req, "comment").await.map(|_| ())
    }

    async fn resolve(&self, t: &TicketRef, text: &str) -> Result<(), ChannelError> {
        let transition = self.resolving_transition(&t.id).await?;
        let path = format!("/rest/api/3/issue/{}/transitions", t.id);
        let body = json!({
            "transition": {"id": transition},
            "update": {"comment": [{"add": {"body": adf(text)}}]}
        });
        let req = self.request(reqwest::Method::POST, &path).json(&body);
        self.web.send(req, "transition").await.map(|_| ())
    }
}
