//! HaloPSA tickets: OAuth client credentials at `/auth/token`, `POST /api/Tickets` (an array body) to create and to
//! change status, `POST /api/Actions` for notes; found again by searching for the correlation key written in the
//! ticket's details (`GET /api/Tickets?search=`), checked exactly.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::{DeskApi, DeskHttp, id_text};
use crate::policy::{TicketChannel, TicketRoute};
use crate::ports::channel::{ChannelError, NewTicket, TicketRef};
use crate::secret::SecretString;

pub(super) struct HaloPsa {
    web: DeskHttp,
    entry: TicketChannel,
    client_id: SecretString,
    client_secret: SecretString,
    token: Mutex<Option<(SecretString, Instant)>>,
}

impl HaloPsa {
    pub(super) fn new(
        web: DeskHttp,
        entry: TicketChannel,
        client_id: SecretString,
        client_secret: SecretString,
    ) -> Self {
        Self {
            web,
            entry,
            client_id,
            client_secret,
            token: Mutex::new(None),
        }
    }

    /// A bearer token, kept until a minute before it expires.
    async fn bearer(&self) -> Result<SecretString, ChannelError> {
        let mut cached = self.token.lock().await;
        if let Some((t, until)) = cached.as_ref()
            && Instant::now() < *until
        {
            return Ok(t.clone());
        }
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", self.client_id.expose()),
            ("client_secret", self.client_secret.expose()),
            ("scope", "all"),
        ];
        let req = self.web.http.post(self.web.url("/auth/token")).form(&form);
        let v = self.web.send(req, "get a token").await?;
        let token = v["access_token"]
            .as_str()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| self.web.missing("access_token"))?;
        let lifetime = v["expires_in"].as_u64().unwrap_or(3600).saturating_sub(60);
        let token = SecretString::new(token);
        *cached = Some((
            token.clone(),
            Instant::now() + Duration::from_secs(lifetime),
        ));
        Ok(token)
    }

    async fn post(&self, path: &str, body: Value, what: &str) -> Result<Value, ChannelError> {
        let token = self.bearer().await?;
        let req = self
            .web
            .http
            .post(self.web.url(path))
            .bearer_auth(token.expose())
            .json(&body);
        self.web.send(req, what).await
    }

    /// The created ticket: Halo answers the object, or an array of one.
    fn created(&self, v: &Value) -> Result<TicketRef, ChannelError> {
        let t = v.as_array().and_then(|a| a.first()).unwrap_or(v);
        let id = id_text(&t["id"]).ok_or_else(|| self.web.missing("id"))?;
        Ok(TicketRef {
            number: id.clone(),
            id,
        })
    }
}

#[async_trait]
impl DeskApi for HaloPsa {
    async fn find(
        &self,
        correlation: &str,
        _route: &TicketRoute,
    ) -> Result<Option<TicketRef>, ChannelError> {
        let token = self.bearer().await?;
        let req = self
            .web
            .http
            .get(self.web.url("/api/Tickets"))
            .bearer_auth(token.expose())
            .query(&[
                ("search", correlation),
                ("includedetails", "true"),
                ("open_only", "false"),
            ]);
        let v = self.web.send(req, "search tickets").await?;
        // A search matches loosely: only a ticket whose details hold the key is ours.
        Ok(v["tickets"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| {
                t["details"]
                    .as_str()
                    .is_some_and(|d| d.contains(correlation))
            })
            .and_then(|t| id_text(&t["id"]))
            .map(|id| TicketRef {
                number: id.clone(),
                id,
            }))
    }

    async fn create(&self, t: &NewTicket) -> Result<TicketRef, ChannelError> {
        let mut ticket = json!({
            "summary": t.title,
            "details": format!("{}\n\nlicensewatch reference: {}", t.text, t.correlation),
            // Halo's default priorities: 1 critical, 3 medium.
            "priority_id": if t.critical { 1 } else { 3 },
        });
        if !t.route.queue.is_empty() {
            ticket["team"] = json!(t.route.queue);
        }
        if let Ok(client) = t.route.company.parse::<u64>() {
            ticket["client_id"] = json!(client);
        }
        let v = self
            .post("/api/Tickets", json!([ticket]), "create the ticket")
            .await?;
        self.created(&v)
    }

    async fn comment(&self, t: &TicketRef, text: &str) -> Result<(), ChannelError> {
        let id: u64 = t.id.parse().unwrap_or_default();
        let action =
            json!([{"ticket_id": id, "note": text, "outcome": "Note", "hiddenfromuser": true}]);
        self.post("/api/Actions", action, "add a note")
            .await
            .map(|_| ())
    }

    async fn resolve(&self, t: &TicketRef, text: &str) -> Result<(), ChannelError> {
        self.comment(t, text).await?;
        let id: u64 = t.id.parse().unwrap_or_default();
        let status: u64 = self.entry.resolved_status.parse().unwrap_or(9);
        self.post(
            "/api/Tickets",
            json!([{"id": id, "status_id": status}]),
            "close the ticket",
        )
        .await
        .map(|_| ())
    }
}
