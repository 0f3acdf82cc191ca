//! Autotask tickets through the REST API: `POST /ATServicesRest/V1.0/Tickets`, `POST .../Tickets/{id}/Notes`,
//! `PATCH .../Tickets` with `status` to complete; found again by `externalID` (`POST .../Tickets/query`). The API
//! user's `UserName`, `Secret` and `ApiIntegrationCode` headers.

use async_trait::async_trait;
use serde_json::json;

use super::{DeskApi, DeskHttp, id_text};
use crate::policy::{TicketChannel, TicketRoute};
use crate::ports::channel::{ChannelError, NewTicket, TicketRef};
use crate::secret::SecretString;

const TICKETS: &str = "/ATServicesRest/V1.0/Tickets";

pub(super) struct Autotask {
    web: DeskHttp,
    entry: TicketChannel,
    user: SecretString,
    secret: SecretString,
    integration_code: SecretString,
}

impl Autotask {
    pub(super) fn new(
        web: DeskHttp,
        entry: TicketChannel,
        user: SecretString,
        secret: SecretString,
        integration_code: SecretString,
    ) -> Self {
        Self {
            web,
            entry,
            user,
            secret,
            integration_code,
        }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.web
            .http
            .request(method, self.web.url(path))
            .header("UserName", self.user.expose())
            .header("Secret", self.secret.expose())
            .header("ApiIntegrationCode", self.integration_code.expose())
    }

    fn number(id: &str) -> i64 {
        id.parse().unwrap_or_default()
    }

    async fn note(&self, t: &TicketRef, title: &str, text: &str) -> Result<(), ChannelError> {
        // noteType 1: task/ticket note; publish 1: all Autotask users.
        let body = json!({"title": title, "description": text, "noteType": 1, "publish": 1});
        let path = format!("{TICKETS}/{}/Notes", t.id);
        let req = self.request(reqwest::Method::POST, &path).json(&body);
        self.web.send(req, "add a note").await.map(|_| ())
    }
}

#[async_trait]
impl DeskApi for Autotask {
    async fn find(
        &self,
        correlation: &str,
        _route: &TicketRoute,
    ) -> Result<Option<TicketRef>, ChannelError> {
        let query = json!({"filter": [{"op": "eq", "field": "externalID", "value": correlation}]});
        let path = format!("{TICKETS}/query");
        let req = self.request(reqwest::Method::POST, &path).json(&query);
        let v = self.web.send(req, "find the ticket").await?;
        Ok(v["items"].as_array().and_then(|a| a.first()).and_then(|t| {
            let id = id_text(&t["id"])?;
            Some(TicketRef {
                number: id_text(&t["ticketNumber"]).unwrap_or_else(|| id.clone()),
                id,
            })
        }))
    }

    async fn create(&self, t: &NewTicket) -> Result<TicketRef, ChannelError> {
        let company = t.route.company.parse::<i64>().map_err(|_| {
            self.web.fail(
                format!(
                    "company '{}' is not an Autotask company id",
                    t.route.company
                ),
                false,
            )
        })?;
        let mut body = json!({
            "companyID": company,
            "title": t.title.chars().take(255).collect::<String>(),
            "description": t.text,
            "externalID": t.correlation,
            // status 1: New; priority 4: Critical, 2: Medium (Autotask's defaults).
            "status": 1,
            "priority": if t.critical { 4 } else { 2 },
        });
        if let Ok(queue) = t.route.queue.parse::<i64>() {
            body["queueID"] = json!(queue);
        }
        let req = self.request(reqwest::Method::POST, TICKETS).json(&body);
        let v = self.web.send(req, "create the ticket").await?;
        let id = id_text(&v["itemId"]).ok_or_else(|| self.web.missing("itemId"))?;
        Ok(TicketRef {
            number: id.clone(),
            id,
        })
    }

    async fn comment(&self, t: &TicketRef, text: &str) -> Result<(), ChannelError> {
        self.note(t, "licensewatch", text).await
    }

    async fn resolve(&self, t: &TicketRef, text: &str) -> Result<(), ChannelError> {
        self.note(t, "licensewatch: resolved", text).await?;
        let status: i64 = self.entry.resolved_status.parse().unwrap_or(5);
        let body = json!({"id": Self::number(&t.id), "status": status});
        let req = self.request(reqwest::Method::PATCH, TICKETS).json(&body);
        self.web.send(req, "complete the ticket").await.map(|_| ())
    }
}
