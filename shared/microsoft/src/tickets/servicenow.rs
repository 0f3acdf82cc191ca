//! ServiceNow incidents through the Table API: `POST /api/now/table/incident`, `PATCH .../incident/{sys_id}` with
//! `work_notes`, resolved with `state`, `close_code` and `close_notes`; found again by `correlation_id`. Basic auth.

use async_trait::async_trait;
use serde_json::{Value, json};

use super::{DeskApi, DeskHttp, id_text};
use crate::policy::{TicketChannel, TicketRoute};
use crate::ports::channel::{ChannelError, NewTicket, TicketRef};
use crate::secret::SecretString;

pub(super) struct ServiceNow {
    web: DeskHttp,
    entry: TicketChannel,
    user: SecretString,
    password: SecretString,
}

impl ServiceNow {
    pub(super) fn new(
        web: DeskHttp,
        entry: TicketChannel,
        user: SecretString,
        password: SecretString,
    ) -> Self {
        Self {
            web,
            entry,
            user,
            password,
        }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.web
            .http
            .request(method, self.web.url(path))
            .basic_auth(self.user.expose(), Some(self.password.expose()))
    }

    fn reference(&self, v: &Value) -> Result<TicketRef, ChannelError> {
        let r = &v["result"];
        let id = id_text(&r["sys_id"]).ok_or_else(|| self.web.missing("result.sys_id"))?;
        Ok(TicketRef {
            number: id_text(&r["number"]).unwrap_or_else(|| id.clone()),
            id,
        })
    }

    /// The sys_id of a ticket known by its number (INC0010042, what a request from ServiceNow names): the Table API
    /// updates by sys_id only.
    async fn sys_id(&self, t: &TicketRef) -> Result<String, ChannelError> {
        let is_sys_id = t.id.len() == 32 && t.id.chars().all(|c| c.is_ascii_hexdigit());
        if is_sys_id {
            return Ok(t.id.clone());
        }
        let req = self
            .request(reqwest::Method::GET, "/api/now/table/incident")
            .query(&[
                ("sysparm_query", format!("number={}", t.id)),
                ("sysparm_fields", "sys_id,number".to_string()),
                ("sysparm_limit", "1".to_string()),
            ]);
        let v = self.web.send(req, "find the incident by number").await?;
        v["result"][0]["sys_id"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| self.web.fail(format!("no incident {}", t.id), false))
    }

    async fn patch(&self, t: &TicketRef, body: Value, what: &str) -> Result<(), ChannelError> {
        let path = format!("/api/now/table/incident/{}", self.sys_id(t).await?);
        self.web
            .send(
                self.request(reqwest::Method::PATCH, &path).json(&body),
                what,
            )
            .await
            .map(|_| ())
    }
}

#[async_trait]
impl DeskApi for ServiceNow {
    async fn find(
        &self,
        correlation: &str,
        _route: &TicketRoute,
    ) -> Result<Option<TicketRef>, ChannelError> {
        let req = self
            .request(reqwest::Method::GET, "/api/now/table/incident")
            .query(&[
                ("sysparm_query", format!("correlation_id={correlation}")),
                ("sysparm_fields", "sys_id,number".to_string()),
                ("sysparm_limit", "1".to_string()),
            ]);
        let v = self.web.send(req, "find the incident").await?;
        Ok(v["result"]
            .as_array()
            .and_then(|a| a.first())
            .and_then(|r| {
                Some(TicketRef {
                    id: id_text(&r["sys_id"])?,
                    number: id_text(&r["number"]).unwrap_or_default(),
                })
            }))
    }

    async fn create(&self, t: &NewTicket) -> Result<TicketRef, ChannelError> {
        let mut body = json!({
            "short_description": t.title.chars().take(160).collect::<String>(),
            "description": t.text,
            "correlation_id": t.correlation,
            "correlation_display": "licensewatch",
            // Urgency and impact 1 make priority 1 (critical) in the default matrix; 2 and 2 make 3 (moderate).
            "urgency": if t.critical { "1" } else { "2" },
            "impact": if t.critical { "1" } else { "2" },
        });
        if !t.route.queue.is_empty() {
            body["assignment_group"] = json!(t.route.queue);
        }
        if !t.route.company.is_empty() {
            body["company"] = json!(t.route.company);
        }
        let req = self
            .request(reqwest::Method::POST, "/api/now/table/incident")
            .json(&body);
        let v = self.web.send(req, "create the incident").await?;
        self.reference(&v)
    }

    async fn comment(&self, t: &TicketRef, text: &str) -> Result<(), ChannelError> {
        self.patch(t, json!({"work_notes": text}), "add a work note")
            .await
    }

    async fn resolve(&self, t: &TicketRef, text: &str) -> Result<(), ChannelError> {
        let state = match self.entry.resolved_status.as_str() {
            "" => "6",
            s => s,
        };
        let body = json!({"state": state, "close_code": "Solution provided", "close_notes": text});
        self.patch(t, body, "resolve the incident").await
    }
}
