//! ConnectWise PSA service tickets: `POST /v4_6_release/apis/3.0/service/tickets`, notes, and a JSON Patch of
//! `status/name` to resolve; found again by `externalXRef` (`conditions=externalXRef="..."`). Basic auth as
//! `company+publickey:privatekey` with the `clientId` header.

use async_trait::async_trait;
use serde_json::{Value, json};

use super::{DeskApi, DeskHttp, id_text};
use crate::policy::{TicketChannel, TicketRoute};
use crate::ports::channel::{ChannelError, NewTicket, TicketRef};
use crate::secret::SecretString;

const TICKETS: &str = "/v4_6_release/apis/3.0/service/tickets";

pub(super) struct ConnectWise {
    web: DeskHttp,
    entry: TicketChannel,
    public_key: SecretString,
    private_key: SecretString,
    client_id: SecretString,
}

impl ConnectWise {
    pub(super) fn new(
        web: DeskHttp,
        entry: TicketChannel,
        public_key: SecretString,
        private_key: SecretString,
        client_id: SecretString,
    ) -> Self {
        Self {
            web,
            entry,
            public_key,
            private_key,
            client_id,
        }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let user = format!("{}+{}", self.entry.login_company, self.public_key.expose());
        self.web
            .http
            .request(method, self.web.url(path))
            .basic_auth(user, Some(self.private_key.expose()))
            .header("clientId", self.client_id.expose())
    }

    fn reference(&self, v: &Value) -> Result<TicketRef, ChannelError> {
        let id = id_text(&v["id"]).ok_or_else(|| self.web.missing("id"))?;
        Ok(TicketRef {
            number: format!("#{id}"),
            id,
        })
    }

    async fn note(&self, t: &TicketRef, text: &str, resolution: bool) -> Result<(), ChannelError> {
        let body = json!({"text": text, "detailDescriptionFlag": !resolution,
            "internalAnalysisFlag": false, "resolutionFlag": resolution});
        let path = format!("{TICKETS}/{}/notes", t.id);
        let req = self.request(reqwest::Method::POST, &path).json(&body);
        self.web.send(req, "add a note").await.map(|_| ())
    }
}

#[async_trait]
impl DeskApi for ConnectWise {
    async fn find(
        &self,
        correlation: &str,
        _route: &TicketRoute,
    ) -> Result<Option<TicketRef>, ChannelError> {
        let req = self.request(reqwest::Method::GET, TICKETS).query(&[
            ("conditions", format!("externalXRef=\"{correlation}\"")),
            ("fields", "id,summary".to_string()),
            ("pageSize", "1".to_string()),
        ]);
        let v = self.web.send(req, "find the ticket").await?;
        v.as_array()
            .and_then(|a| a.first())
            .map(|t| self.reference(t))
            .transpose()
    }

    async fn create(&self, t: &NewTicket) -> Result<TicketRef, ChannelError> {
        let mut body = json!({
            // ConnectWise refuses a summary over 100 characters.
            "summary": t.title.chars().take(100).collect::<String>(),
            "initialDescription": t.text,
            "externalXRef": t.correlation,
        });
        if !t.route.queue.is_empty() {
            body["board"] = json!({"name": t.route.queue});
        }
        if !t.route.company.is_empty() {
            body["company"] = json!({"identifier": t.route.company});
        }
        let req = self.request(reqwest::Method::POST, TICKETS).json(&body);
        let v = self.web.send(req, "create the ticket").await?;
        self.reference(&v)
    }

    async fn comment(&self, t: &TicketRef, text: &str) -> Result<(), ChannelError> {
        self.note(t, text, false).await
    }

    async fn resolve(&self, t: &TicketRef, text: &str) -> Result<(), ChannelError> {
        self.note(t, text, true).await?;
        let status = match self.entry.resolved_status.as_str() {
            "" => "Closed",
            s => s,
        };
        let patch = json!([{"op": "replace", "path": "status/name", "value": status}]);
        let path = format!("{TICKETS}/{}", t.id);
        let req = self.request(reqwest::Method::PATCH, &path).json(&patch);
        self.web.send(req, "close the ticket").await.map(|_| ())
    }
}
