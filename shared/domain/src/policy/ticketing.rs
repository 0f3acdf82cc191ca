//! The ticketing keys of the policy: `[[webhook.sources]]` (remediation requests as each ticketing system sends
//! them) and `[[notify.tickets]]` (a ticket per case in the service desk).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::Problems;

/// How a `[[webhook.sources]]` entry authenticates its requests.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum SignatureScheme {
    /// `webhook-id`, `webhook-timestamp`, `webhook-signature` (secret `whsec_...`).
    #[default]
    StandardWebhooks,
    /// `X-Hub-Signature-256: sha256=<hex>`.
    HubSha256,
    /// Jira Cloud's admin webhooks: `X-Hub-Signature: sha256=<hex>`.
    Jira,
    /// ConnectWise PSA callbacks: `x-content-signature`, keyed by the key its `Metadata.key_url` serves.
    Connectwise,
    /// Autotask webhooks: `x-hook-signature`, base64 HMAC-SHA1.
    Autotask,
    /// A fixed secret in a header (opt-in; weaker: the body is not signed).
    SharedSecret,
}

impl SignatureScheme {
    /// The name used in the policy file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::StandardWebhooks => "standard-webhooks",
            Self::HubSha256 => "hub-sha256",
            Self::Jira => "jira",
            Self::Connectwise => "connectwise",
            Self::Autotask => "autotask",
            Self::SharedSecret => "shared-secret",
        }
    }
}

/// Where, in a source's own JSON body, each part of a remediation request is (JSON pointers, RFC 6901). An empty
/// pointer means the part is not in the body: the source's default (`action`) or none.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(default)]
pub struct FieldMap {
    /// The user (UPN or object id). Required when the map is used.
    pub user: String,
    /// `reprocess`, `assign`, `remove`, `copy_from`.
    pub action: String,
    /// A list of SKU ids, or one SKU id.
    pub sku_ids: String,
    /// The user to copy licences from (`copy_from`).
    pub template_user: String,
    /// The ticket's id in the source system (the idempotency key with the action).
    pub ticket_id: String,
    /// Where to post the signed outcome.
    pub callback_url: String,
    /// `true` for a dry run.
    pub dry_run: String,
}

impl FieldMap {
    /// True when no pointer is set: the body is licensewatch's own request.
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }

    /// `(key, pointer)` of every part.
    pub fn pointers(&self) -> [(&'static str, &str); 7] {
        [
            ("user", &self.user),
            ("action", &self.action),
            ("sku_ids", &self.sku_ids),
            ("template_user", &self.template_user),
            ("ticket_id", &self.ticket_id),
            ("callback_url", &self.callback_url),
            ("dry_run", &self.dry_run),
        ]
    }
}

/// One `[[webhook.sources]]` entry: requests at `POST /webhooks/{name}`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(default)]
pub struct WebhookSource {
    /// The path segment (`/webhooks/{name}`): letters, digits, `-` and `_`.
    pub name: String,
    /// How its requests are authenticated.
    pub scheme: SignatureScheme,
    /// The environment variable holding its secret (not used by `connectwise`, whose key is fetched).
    pub secret_env: String,
    /// `shared-secret`: the header that carries the secret (default `x-licensewatch-secret`; `authorization` takes
    /// `Bearer <secret>` too).
    pub header: String,
    /// `connectwise`: the PSA's base URL; a callback's `Metadata.key_url` must be on this host (never fetched
    /// elsewhere).
    pub psa_url: String,
    /// The ticketing system recorded with each request (default: `name`).
    pub system: String,
    /// The action when the body does not say (default `reprocess`).
    pub action: String,
    /// `[webhook.sources.fields]`: where the request's parts are in the source's own body.
    pub fields: FieldMap,
}

impl WebhookSource {
    /// The header a `shared-secret` source reads.
    pub fn secret_header(&self) -> &str {
        match self.header.trim() {
            "" => "x-licensewatch-secret",
            h => h,
        }
    }

    /// The ticketing system named in its requests.
    pub fn system(&self) -> &str {
        match self.system.trim() {
            "" => &self.name,
            s => s,
        }
    }
}

/// A ticketing system licensewatch opens tickets in.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "lowercase")]
pub enum TicketSystemKind {
    /// ServiceNow Table API incidents.
    #[default]
    Servicenow,
    /// Jira Cloud REST v3 issues.
    Jira,
    /// HaloPSA tickets.
    Halopsa,
    /// ConnectWise PSA service tickets.
    Connectwise,
    /// Autotask tickets.
    Autotask,
}

impl TicketSystemKind {
    /// The name used in the policy file and in inbound requests' `ticket.system`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Servicenow => "servicenow",
            Self::Jira => "jira",
            Self::Halopsa => "halopsa",
            Self::Connectwise => "connectwise",
            Self::Autotask => "autotask",
        }
    }

    /// The credential keys this system needs (`*_env`, each naming an environment variable).
    pub(crate) fn required_credentials(self) -> &'static [&'static str] {
        match self {
            Self::Servicenow => &["user_env", "password_env"],
            Self::Jira => &["user_env", "token_env"],
            Self::Halopsa => &["client_id_env", "client_secret_env"],
            Self::Connectwise => &["public_key_env", "private_key_env", "client_id_env"],
            Self::Autotask => &["user_env", "secret_env", "integration_code_env"],
        }
    }
}

impl std::fmt::Display for TicketSystemKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a tenant's tickets go: the queue (ServiceNow assignment group, Jira project, HaloPSA team, ConnectWise
/// board, Autotask queue id) and the company (ServiceNow company sys_id, HaloPSA client id, ConnectWise company
/// identifier, Autotask company id).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(default)]
pub struct TicketRoute {
    /// Queue, board or project.
    pub queue: String,
    /// Customer company.
    pub company: String,
}

/// One `[[notify.tickets]]` entry.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(default)]
pub struct TicketChannel {
    /// `servicenow`, `jira`, `halopsa`, `connectwise` or `autotask`.
    pub system: TicketSystemKind,
    /// The instance's base URL (`https://contoso.service-now.com`, `https://contoso.atlassian.net`,
    /// `https://contoso.halopsa.com`, `https://api-na.myconnectwise.net`, `https://webservices5.autotask.net`).
    pub url: String,
    /// Basic user (ServiceNow), account e-mail (Jira), API user name (Autotask).
    pub user_env: String,
    /// ServiceNow password.
    pub password_env: String,
    /// Jira API token.
    pub token_env: String,
    /// HaloPSA OAuth client id; ConnectWise `clientId`.
    pub client_id_env: String,
    /// HaloPSA OAuth client secret.
    pub client_secret_env: String,
    /// ConnectWise API member's public key.
    pub public_key_env: String,
    /// ConnectWise API member's private key.
    pub private_key_env: String,
    /// ConnectWise login company (the `company+publickey` user).
    pub login_company: String,
    /// Autotask API user's secret.
    pub secret_env: String,
    /// Autotask `ApiIntegrationCode`.
    pub integration_code_env: String,
    /// Jira project key (the default queue for Jira).
    pub project: String,
    /// The default route.
    pub queue: String,
    /// The default company.
    pub company: String,
    /// The status that resolves a ticket (defaults: ServiceNow state 6, Jira transition "Done", HaloPSA status 9,
    /// ConnectWise "Closed", Autotask status 5).
    pub resolved_status: String,
    /// `[notify.tickets.tenants."<tenant id>"]`: a board/queue/company per customer.
    pub tenants: BTreeMap<String, TicketRoute>,
}

impl TicketChannel {
    /// The route for `tenant_id`: its own entry, else the defaults (Jira's project as the queue).
    pub fn route(&self, tenant_id: &str) -> TicketRoute {
        let default_queue = match (self.system, self.queue.is_empty()) {
            (TicketSystemKind::Jira, true) => self.project.clone(),
            _ => self.queue.clone(),
        };
        let own = self
            .tenants
            .iter()
            .find(|(id, _)| id.eq_ignore_ascii_case(tenant_id))
            .map(|(_, r)| r);
        TicketRoute {
            queue: own
                .map(|r| r.queue.clone())
                .filter(|q| !q.is_empty())
                .unwrap_or(default_queue),
            company: own
                .map(|r| r.company.clone())
                .filter(|c| !c.is_empty())
                .unwrap_or_else(|| self.company.clone()),
        }
    }

    /// The environment variable named by a credential key, or `""`.
    pub fn credential_env(&self, key: &str) -> &str {
        match key {
            "user_env" => &self.user_env,
            "password_env" => &self.password_env,
            "token_env" => &self.token_env,
            "client_id_env" => &self.client_id_env,
            "client_secret_env" => &self.client_secret_env,
            "public_key_env" => &self.public_key_env,
            "private_key_env" => &self.private_key_env,
            "secret_env" => &self.secret_env,
            "integration_code_env" => &self.integration_code_env,
            _ => "",
        }
    }
}

/// The remediation actions a source may default to (the webhook contract's `action` values).
const ACTIONS: [&str; 4] = ["reprocess", "assign", "remove", "copy_from"];

/// RFC 9110 token characters.
fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c))
}

/// A Jira project key: a capital letter, then capitals, digits or underscores.
fn is_project_key(key: &str) -> bool {
    let mut chars = key.chars();
    chars.next().is_some_and(|c| c.is_ascii_uppercase())
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

fn is_http_url(text: &str) -> bool {
    matches!(url::Url::parse(text), Ok(u) if (u.scheme() == "https" || u.scheme() == "http") && u.host().is_some())
}

/// Checks `[[webhook.sources]]`.
pub(super) fn validate_sources(sources: &[WebhookSource], p: &mut Problems) {
    let mut names = std::collections::HashSet::new();
    for (i, s) in sources.iter().enumerate() {
        let key = |k: &str| format!("webhook.sources[{i}].{k}");
        let name_ok = !s.name.is_empty()
            && s.name.len() <= 64
            && s.name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !name_ok {
            p.add(
                key("name"),
                format!(
                    "'{}' is not a path segment (1 to 64 letters, digits, '-' or '_')",
                    s.name
                ),
            );
        } else if !names.insert(s.name.to_ascii_lowercase()) {
            p.add(key("name"), format!("'{}' is used twice", s.name));
        }
        if s.scheme == SignatureScheme::Connectwise {
            if !is_http_url(&s.psa_url) {
                p.add(
                    key("psa_url"),
                    "a connectwise source needs the PSA's URL (its signing keys are fetched only from there)",
                );
            }
        } else if s.secret_env.trim().is_empty() {
            p.add(
                key("secret_env"),
                format!(
                    "a {} source needs the name of the variable holding its secret",
                    s.scheme.as_str()
                ),
            );
        }
        if !s.header.is_empty() && s.scheme != SignatureScheme::SharedSecret {
            p.add(key("header"), "only a shared-secret source reads a header");
        } else if !s.header.is_empty() && !is_header_name(&s.header) {
            p.add(
                key("header"),
                format!("'{}' is not an HTTP header name", s.header),
            );
        }
        if !s.psa_url.is_empty() && s.scheme != SignatureScheme::Connectwise {
            p.add(
                key("psa_url"),
                "only a connectwise source fetches signing keys",
            );
        }
        if !s.action.is_empty() && !ACTIONS.contains(&s.action.as_str()) {
            p.add(
                key("action"),
                format!(
                    "'{}' is not one of reprocess, assign, remove, copy_from",
                    s.action
                ),
            );
        }
        for (field, pointer) in s.fields.pointers() {
            if !pointer.is_empty() && !pointer.starts_with('/') {
                p.add(
                    format!("webhook.sources[{i}].fields.{field}"),
                    format!("'{pointer}' is not a JSON pointer (it starts with '/')"),
                );
            }
        }
        if !s.fields.is_empty() && s.fields.user.is_empty() {
            p.add(
                format!("webhook.sources[{i}].fields.user"),
                "is required when fields are mapped",
            );
        }
    }
}

/// Checks `[[notify.tickets]]`.
pub(super) fn validate_tickets(tickets: &[TicketChannel], p: &mut Problems) {
    for (i, t) in tickets.iter().enumerate() {
        let key = |k: &str| format!("notify.tickets[{i}].{k}");
        if !is_http_url(&t.url) {
            p.add(key("url"), format!("'{}' is not an http(s) URL", t.url));
        }
        for cred in t.system.required_credentials() {
            if t.credential_env(cred).trim().is_empty() {
                p.add(
                    key(cred),
                    format!(
                        "{} needs the name of the variable holding it",
                        t.system.as_str()
                    ),
                );
            }
        }
        if !t.project.is_empty() && !is_project_key(&t.project) {
            p.add(
                key("project"),
                format!(
                    "'{}' is not a Jira project key (IT, HELP, OPS_2)",
                    t.project
                ),
            );
        }
        match t.system {
            TicketSystemKind::Jira if t.project.is_empty() && t.queue.is_empty() => {
                p.add(key("project"), "jira needs the project key issues go to")
            }
            TicketSystemKind::Connectwise if t.login_company.is_empty() => p.add(
                key("login_company"),
                "connectwise needs the company id you sign in with",
            ),
            TicketSystemKind::Autotask
                if t.route("").company.is_empty() && t.tenants.is_empty() =>
            {
                p.add(
                    key("company"),
                    "autotask needs the company id tickets belong to",
                )
            }
            _ => {}
        }
        for id in t.tenants.keys() {
            if !crate::config::is_valid_tenant(id) {
                p.add(
                    format!("notify.tickets[{i}].tenants.{id}"),
                    "is not a tenant GUID or domain",
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_customer_has_its_own_board_and_company_and_the_rest_share_the_defaults() {
        let mut t = TicketChannel {
            system: TicketSystemKind::Connectwise,
            queue: "Help Desk".into(),
            company: "MSP".into(),
            ..Default::default()
        };
        t.tenants.insert(
            "Fabrikam.onmicrosoft.com".into(),
            TicketRoute {
                queue: "Fabrikam Board".into(),
                company: "Fabrikam".into(),
            },
        );
        t.tenants.insert(
            "11111111-2222-3333-4444-555555555555".into(),
            TicketRoute {
                queue: String::new(),
                company: "Northwind".into(),
            },
        );
        let route = |id: &str| {
            let r = t.route(id);
            (r.queue, r.company)
        };
        assert_eq!(
            route("fabrikam.onmicrosoft.com"),
            ("Fabrikam Board".into(), "Fabrikam".into())
        );
        assert_eq!(
            route("11111111-2222-3333-4444-555555555555"),
            ("Help Desk".into(), "Northwind".into()),
            "an empty queue falls back to the default"
        );
        assert_eq!(
            route("contoso.onmicrosoft.com"),
            ("Help Desk".into(), "MSP".into())
        );
        let jira = TicketChannel {
            system: TicketSystemKind::Jira,
            project: "IT".into(),
            ..Default::default()
        };
        assert_eq!(jira.route("x").queue, "IT", "Jira's project is its queue");
    }
}
