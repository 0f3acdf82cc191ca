//! The reprocess-user HTTP endpoint, independent of how the request arrived (Lambda function URL / HTTP API, or the
//! local `licensewatch serve`). Authentication comes before anything else: nothing is parsed, stored, queued or
//! sent to Graph until a signature over the raw body holds.
//!
//! Routes: `POST /remediations` (signed) → 202 `{remediation_id, status}`; `GET /remediations/{id}`; `GET /healthz`.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::config::{ConfigError, ConfigProblem};
use crate::domain::kinds::{RemediationAction, RemediationStatus};
use crate::domain::signing::{
    SignatureError, StandardHeaders, WebhookSecret, verify_hub, verify_standard,
};
use crate::policy::Policy;
use crate::ports::clock::Clock;
use crate::ports::directory::Directory;
use crate::ports::store::{
    Admitted, RemediationIntake, RemediationRecord, RemediationRequest, Ticket, queue_and_record,
};
use crate::secret::SecretString;
use crate::usecases::reprocess_user::{plan, policy_refusal};

pub(crate) mod sources;
pub use sources::{SigningKeys, SourceAuth};

/// The largest body accepted (enforced while reading by the server adapters, and again here).
pub const MAX_BODY: usize = 64 * 1024;

/// Verification settings, resolved at start-up; with no secret the endpoint does not start (fails closed).
#[derive(Clone)]
pub struct WebhookAuth {
    secrets: Vec<WebhookSecret>,
    hub_secret: Option<SecretString>,
    tolerance_seconds: i64,
    sources: Vec<SourceAuth>,
    keys: std::sync::Arc<dyn SigningKeys>,
    /// Refuse shared-secret sources unless the request arrived over HTTPS (`X-Forwarded-Proto`): set on AWS, whose
    /// function URLs and API Gateway always say.
    pub https_only: bool,
}

impl std::fmt::Debug for WebhookAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookAuth")
            .field("secrets", &self.secrets.len())
            .field("hub", &self.hub_secret.is_some())
            .field("sources", &self.sources)
            .finish()
    }
}

impl WebhookAuth {
    /// Reads the secrets named by `[webhook]` through `lookup` (the environment).
    pub fn from_policy(
        policy: &Policy,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut problems = Vec::new();
        let mut secrets = Vec::new();
        for name in &policy.webhook.secrets_env {
            match lookup(name).map(|v| WebhookSecret::parse(&v)) {
                Some(Ok(s)) => secrets.push(s),
                Some(Err(e)) => problems.push(ConfigProblem {
                    name: name.clone(),
                    problem: format!("{e} (webhook.secrets_env)"),
                }),
                None => problems.push(ConfigProblem {
                    name: name.clone(),
                    problem: "is not set (named by webhook.secrets_env)".into(),
                }),
            }
        }
        let hub_secret = match policy.webhook.github_style_secret_env.as_str() {
            "" => None,
            name => match lookup(name).filter(|v| v.len() >= 16) {
                Some(v) => Some(SecretString::new(v)),
                None => {
                    problems.push(ConfigProblem {
                        name: name.into(),
                        problem: "is not set or shorter than 16 characters (webhook.github_style_secret_env)".into(),
                    });
                    None
                }
            },
        };
        let sources = sources::resolve(&policy.webhook.sources, lookup, &mut problems);
        if secrets.is_empty() && hub_secret.is_none() && sources.is_empty() && problems.is_empty() {
            problems.push(ConfigProblem {
                name: "webhook.secrets_env".into(),
                problem: "no webhook secret is configured: the endpoint refuses to run unsigned"
                    .into(),
            });
        }
        if !problems.is_empty() {
            return Err(ConfigError { problems });
        }
        Ok(Self {
            secrets,
            hub_secret,
            tolerance_seconds: policy.webhook.tolerance_seconds,
            sources,
            keys: std::sync::Arc::new(sources::NoKeys),
            https_only: false,
        })
    }

    /// Where ConnectWise's callback signing keys are fetched from (by default nowhere: ConnectWise callbacks are
    /// refused until the runtime gives an HTTP fetcher).
    pub fn with_signing_keys(mut self, keys: std::sync::Arc<dyn SigningKeys>) -> Self {
        self.keys = keys;
        self
    }

    /// The secret callbacks are signed with.
    pub fn callback_secret(&self) -> Option<&WebhookSecret> {
        self.secrets.first()
    }
}

/// A request as received.
#[derive(Debug, Clone)]
pub struct HttpRequest<'a> {
    /// GET, POST...
    pub method: &'a str,
    /// Path without the query.
    pub path: &'a str,
    /// Headers (names in any case; repeated names allowed, and refused where they matter).
    pub headers: Vec<(String, String)>,
    /// Raw body bytes, exactly as signed.
    pub body: &'a [u8],
}

/// Header pairs from any HTTP library's header map (names and raw values). Values that are not visible ASCII are
/// left out, as `http`'s `to_str` does: every header the endpoint reads is ASCII, so leaving one out only makes a
/// request fail verification.
pub fn header_pairs<'h>(
    headers: impl IntoIterator<Item = (&'h str, &'h [u8])>,
) -> Vec<(String, String)> {
    headers
        .into_iter()
        .filter(|(_, v)| v.iter().all(|&b| b == b'\t' || (32..127).contains(&b)))
        .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v).into_owned()))
        .collect()
}

impl HttpRequest<'_> {
    fn header(&self, name: &str) -> Result<Option<&str>, ()> {
        let mut found: Option<&str> = None;
        for (k, v) in &self.headers {
            if k.eq_ignore_ascii_case(name) {
                if found.is_some_and(|f| f != v) {
                    return Err(());
                }
                found = Some(v);
            }
        }
        Ok(found)
    }
}

/// The answer.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// JSON body.
    pub body: Value,
    /// Why it was rejected (for the `WebhookRejects` metric), when it was.
    pub reject_reason: Option<String>,
}

fn respond(status: u16, body: Value) -> HttpResponse {
    HttpResponse {
        status,
        body,
        reject_reason: None,
    }
}

fn error(status: u16, message: &str) -> HttpResponse {
    respond(status, json!({"error": message}))
}

/// What the endpoint needs.
pub struct WebhookDeps<'a> {
    /// Secrets and tolerance.
    pub auth: &'a WebhookAuth,
    /// Remediation records, and the queue accepted requests go to.
    pub store: &'a dyn RemediationIntake,
    /// Time.
    pub clock: &'a dyn Clock,
    /// Policy (`[remediation]`).
    pub policy: &'a Policy,
    /// The tenant this endpoint serves.
    pub tenant_id: &'a str,
    /// Graph, for dry runs (preflight only, no writes).
    pub graph: &'a dyn Directory,
}

/// Why a request was rejected, for logs and metrics.
fn reject(reason: &str, mut response: HttpResponse) -> HttpResponse {
    tracing::warn!(reason, status = response.status, "webhook rejected");
    response.reject_reason = Some(reason.to_string());
    response
}

/// Handles one request.
pub async fn handle(deps: &WebhookDeps<'_>, req: &HttpRequest<'_>) -> HttpResponse {
    // HEAD answers wherever GET does (the server adapter sends no body for it).
    let method = if req.method == "HEAD" {
        "GET"
    } else {
        req.method
    };
    match (method, req.path.trim_end_matches('/')) {
        ("GET", "/healthz") => respond(200, json!({"status": "ok"})),
        ("GET", p) if p.starts_with("/remediations/") => {
            let id = &p["/remediations/".len()..];
            match deps.store.remediation(id).await {
                Ok(Some(r)) => respond(
                    200,
                    json!({"remediation_id": id, "status": r.status, "detail": r.detail,
                        "user": r.request.user, "action": r.request.action}),
                ),
                Ok(None) => error(404, "no such remediation"),
                Err(e) => {
                    tracing::error!(error = %e, "store");
                    error(500, "internal error")
                }
            }
        }
        ("POST", "/remediations") => match accept(deps, req).await {
            Ok(r) | Err(r) => r,
        },
        ("POST", p) if p.starts_with("/webhooks/") => {
            match accept_from_source(deps, req, &p["/webhooks/".len()..]).await {
                Ok(r) | Err(r) => r,
            }
        }
        (_, "/remediations") | (_, "/healthz") => error(405, "method not allowed"),
        _ => error(404, "not found"),
    }
}

fn authenticate(
    deps: &WebhookDeps<'_>,
    req: &HttpRequest<'_>,
) -> Result<Option<String>, HttpResponse> {
    let unauthorized = |reason: &str| reject(reason, error(401, "unauthorized"));
    let get = |n: &str| req.header(n).map_err(|_| unauthorized("duplicate_header"));
    let (id, ts, sig) = (
        get("webhook-id")?,
        get("webhook-timestamp")?,
        get("webhook-signature")?,
    );
    if id.is_some() || ts.is_some() || sig.is_some() {
        let now = deps.clock.now().timestamp();
        let headers = StandardHeaders {
            id,
            timestamp: ts,
            signature: sig,
        };
        return match verify_standard(
            &deps.auth.secrets,
            &headers,
            req.body,
            now,
            deps.auth.tolerance_seconds,
        ) {
            Ok(i) => {
                tracing::info!(key_index = i, "webhook signature verified");
                Ok(id.map(|i| format!("sw:{i}")))
            }
            Err(SignatureError::InvalidId) => {
                Err(reject("invalid_id", error(400, "invalid webhook-id")))
            }
            Err(e) => Err(unauthorized(match e {
                SignatureError::TimestampTooOld | SignatureError::TimestampInFuture => "timestamp",
                SignatureError::InvalidTimestamp => "invalid_timestamp",
                SignatureError::MissingHeader(_) => "missing_header",
                _ => "signature",
            })),
        };
    }
    if let (Some(secret), Some(h)) = (&deps.auth.hub_secret, get("x-hub-signature-256")?) {
        return verify_hub(secret.expose().as_bytes(), h, req.body)
            .map(|_| None)
            .map_err(|_| unauthorized("signature"));
    }
    Err(unauthorized("missing_signature"))
}

/// A validated request body.
struct ParsedBody {
    user: String,
    action: RemediationAction,
    sku_ids: Vec<String>,
    disabled_plans: BTreeMap<String, Vec<String>>,
    template_user: Option<String>,
    ticket: Option<Ticket>,
    dry_run: bool,
}

/// Validates the JSON body, naming the field that is wrong.
/// JSON with every object's keys unique at every depth: with a repeated key, which value counts would be the
/// parser's choice, and a signed body must mean one thing.
struct UniqueKeys(Value);

impl<'de> serde::Deserialize<'de> for UniqueKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = UniqueKeys;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("JSON")
            }
            fn visit_bool<E>(self, v: bool) -> Result<UniqueKeys, E> {
                Ok(UniqueKeys(Value::Bool(v)))
            }
            fn visit_i64<E>(self, v: i64) -> Result<UniqueKeys, E> {
                Ok(UniqueKeys(v.into()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<UniqueKeys, E> {
                Ok(UniqueKeys(v.into()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<UniqueKeys, E> {
                Ok(UniqueKeys(v.into()))
            }
            fn visit_str<E>(self, v: &str) -> Result<UniqueKeys, E> {
                Ok(UniqueKeys(Value::String(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<UniqueKeys, E> {
                Ok(UniqueKeys(Value::String(v)))
            }
            fn visit_unit<E>(self) -> Result<UniqueKeys, E> {
                Ok(UniqueKeys(Value::Null))
            }
            fn visit_none<E>(self) -> Result<UniqueKeys, E> {
                Ok(UniqueKeys(Value::Null))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<UniqueKeys, A::Error> {
                let mut items = Vec::new();
                while let Some(UniqueKeys(v)) = a.next_element()? {
                    items.push(v);
                }
                Ok(UniqueKeys(Value::Array(items)))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<UniqueKeys, A::Error> {
                let mut m = serde_json::Map::new();
                while let Some(k) = a.next_key::<String>()? {
                    let UniqueKeys(v) = a.next_value()?;
                    if m.insert(k.clone(), v).is_some() {
                        return Err(serde::de::Error::custom(format!("duplicate key '{k}'")));
                    }
                }
                Ok(UniqueKeys(Value::Object(m)))
            }
        }
        d.deserialize_any(V)
    }
}

/// True for `application/json`, with or without parameters (`; charset=utf-8`), in any case; nothing else.
fn is_json(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
}

/// The body parser, for the fuzz targets.
#[cfg(any(test, feature = "fuzz"))]
pub(crate) fn fuzz_body(b: &[u8]) {
    let _ = parse_body(b);
}

fn parse_body(body: &[u8]) -> Result<ParsedBody, String> {
    let UniqueKeys(v) = serde_json::from_slice(body).map_err(|e| format!("malformed JSON: {e}"))?;
    let obj = v.as_object().ok_or("the body must be a JSON object")?;
    const KNOWN: [&str; 7] = [
        "user",
        "action",
        "sku_ids",
        "disabled_plans",
        "template_user",
        "ticket",
        "dry_run",
    ];
    if let Some(k) = obj.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(format!("unknown field '{k}'"));
    }
    let user = obj
        .get("user")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .ok_or("field 'user' is required (UPN or object id)")?;
    let action: RemediationAction = obj
        .get("action")
        .and_then(Value::as_str)
        .unwrap_or("reprocess")
        .parse()
        .map_err(|e| format!("field 'action': {e}"))?;
    let sku_ids: Vec<String> = match obj.get("sku_ids") {
        None | Some(Value::Null) => vec![],
        Some(Value::Array(a)) => a
            .iter()
            .map(|s| {
                s.as_str()
                    .map(str::to_string)
                    .ok_or("field 'sku_ids' must be a list of strings".to_string())
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err("field 'sku_ids' must be a list of strings".into()),
    };
    if matches!(
        action,
        RemediationAction::Assign | RemediationAction::Remove
    ) && sku_ids.is_empty()
    {
        return Err(format!("field 'sku_ids' is required for action '{action}'"));
    }
    let disabled_plans: BTreeMap<String, Vec<String>> = match obj.get("disabled_plans") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(d) => serde_json::from_value(d.clone())
            .map_err(|_| "field 'disabled_plans' must map SKU ids to lists of plan ids")?,
    };
    let template_user = obj
        .get("template_user")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .map(str::to_string);
    if action == RemediationAction::CopyFrom && template_user.is_none() {
        return Err("field 'template_user' is required for action 'copy_from'".into());
    }
    let ticket = match obj.get("ticket") {
        None | Some(Value::Null) => None,
        Some(t) => {
            let t: Ticket = serde_json::from_value(t.clone()).map_err(|_| "field 'ticket' must be {\"system\", \"id\", \"callback_url\"} with a string 'id'")?;
            if let Some(url) = &t.callback_url {
                match url::Url::parse(url) {
                    Ok(u) if u.scheme() == "https" || u.scheme() == "http" => {}
                    _ => return Err("field 'ticket.callback_url' must be an http(s) URL".into()),
                }
            }
            Some(t)
        }
    };
    let dry_run = match obj.get("dry_run") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err("field 'dry_run' must be true or false".into()),
    };
    Ok(ParsedBody {
        user: user.to_string(),
        action,
        sku_ids,
        disabled_plans,
        template_user,
        ticket,
        dry_run,
    })
}

async fn accept(
    deps: &WebhookDeps<'_>,
    req: &HttpRequest<'_>,
) -> Result<HttpResponse, HttpResponse> {
    if req.body.len() > MAX_BODY {
        return Err(reject("too_large", error(413, "body larger than 64 KiB")));
    }
    let replay_key = authenticate(deps, req)?;
    json_only(req)?;
    let body = parse_body(req.body).map_err(|m| reject("bad_input", error(400, &m)))?;
    proceed(deps, replay_key, body, req.body).await
}

fn json_only(req: &HttpRequest<'_>) -> Result<(), HttpResponse> {
    let content_type = req.header("content-type").ok().flatten().unwrap_or("");
    if is_json(content_type) {
        Ok(())
    } else {
        Err(reject(
            "content_type",
            error(415, "send Content-Type: application/json"),
        ))
    }
}

/// `POST /webhooks/{name}`: a request authenticated as `[[webhook.sources]]` `name` says, its body mapped by the
/// source's fields when it has any. The body's hash is of the request it maps to, so a ticketing system that sends
/// the same ask again with a different envelope (Jira's timestamps) is a duplicate, not a conflict.
async fn accept_from_source(
    deps: &WebhookDeps<'_>,
    req: &HttpRequest<'_>,
    name: &str,
) -> Result<HttpResponse, HttpResponse> {
    let Some(auth) = deps.auth.sources.iter().find(|s| s.source.name == name) else {
        return Err(error(404, "no such webhook source"));
    };
    if req.body.len() > MAX_BODY {
        return Err(reject("too_large", error(413, "body larger than 64 KiB")));
    }
    let replay_key = sources::authenticate(deps, auth, req).await?;
    json_only(req)?;
    let native = if auth.source.fields.is_empty() {
        req.body.to_vec()
    } else {
        let mapped = sources::map_body(&auth.source, req.body)
            .map_err(|m| reject("bad_input", error(400, &m)))?;
        serde_json::to_vec(&mapped).map_err(|e| internal(&e))?
    };
    let mut body = parse_body(&native).map_err(|m| reject("bad_input", error(400, &m)))?;
    // A ticket that does not say its system is the source's.
    if let Some(t) = body.ticket.as_mut().filter(|t| t.system.trim().is_empty()) {
        t.system = auth.source.system().to_string();
    }
    proceed(deps, replay_key, body, &native).await
}

/// Rails, then a dry run or admission, for a request authenticated and parsed.
async fn proceed(
    deps: &WebhookDeps<'_>,
    replay_key: Option<String>,
    body: ParsedBody,
    hashed: &[u8],
) -> Result<HttpResponse, HttpResponse> {
    if let Some(reason) = policy_refusal(deps.policy, body.action, &body.sku_ids) {
        return Err(reject("policy", error(403, &reason)));
    }
    let dry_run = body.dry_run;
    let request = remediation_request(deps, body);
    let body_hash = format!("{:x}", Sha256::digest(hashed));
    if dry_run {
        dry_run_once(deps, replay_key.as_deref(), request, body_hash).await
    } else {
        admit(deps, replay_key.as_deref(), request, body_hash).await
    }
}

/// A 500 that logs its cause and tells the caller nothing more.
fn internal(e: &dyn std::fmt::Display) -> HttpResponse {
    tracing::error!(error = %e, "webhook internal error");
    error(500, "internal error")
}

fn remediation_request(deps: &WebhookDeps<'_>, body: ParsedBody) -> RemediationRequest {
    let reason = match &body.ticket {
        Some(t) => format!("ticket {} {}", t.system, t.id),
        None => "webhook".into(),
    };
    RemediationRequest {
        // Time-ordered (UUIDv7): the store's indexes on the id grow at their end instead of at random pages, which
        // is what lets a busy endpoint's group commits stay small.
        remediation_id: format!("rem_{}", uuid::Uuid::now_v7().simple()),
        tenant_id: deps.tenant_id.to_string(),
        user: body.user,
        action: body.action,
        sku_ids: body.sku_ids,
        reason,
        requested_at: deps.clock.now(),
        disabled_plans: body.disabled_plans,
        template_user: body.template_user,
        ticket: body.ticket,
    }
}

/// A dry run plans the Graph call and changes nothing. It is kept like any remediation, so
/// `GET /remediations/{id}` answers for it; without a ticket key, so it never stands in for the real request that
/// follows; and outside the action budget. A replayed dry run (same webhook-id) answers what the first one found,
/// without reading Graph again.
async fn dry_run_once(
    deps: &WebhookDeps<'_>,
    replay_key: Option<&str>,
    request: RemediationRequest,
    body_hash: String,
) -> Result<HttpResponse, HttpResponse> {
    let now = deps.clock.now();
    let remediation_id = request.remediation_id.clone();
    if let Some(key) = replay_key
        && let Some(first) = deps
            .store
            .remember_webhook(key, &remediation_id, now)
            .await
            .map_err(|e| internal(&e))?
    {
        let stored = deps
            .store
            .remediation(&first)
            .await
            .map_err(|e| internal(&e))?;
        let (status, detail) = stored.map_or((RemediationStatus::DryRun, Value::Null), |r| {
            (r.status, r.detail)
        });
        return Ok(respond(
            200,
            json!({"remediation_id": first, "status": status, "detail": detail, "duplicate": true}),
        ));
    }
    let (status, detail) = match plan(deps.graph, &request, deps.policy).await {
        Ok(Ok((_, call))) => (RemediationStatus::DryRun, json!({"graph_request": call})),
        Ok(Err(refused)) => (RemediationStatus::Rejected, refused.detail),
        Err(e) if e.is_retryable() => {
            return Err(error(503, "Microsoft Graph is unavailable; try again"));
        }
        Err(e) => return Err(internal(&e)),
    };
    let record = RemediationRecord {
        request,
        ticket_key: None,
        body_hash,
        status,
        detail: detail.clone(),
        created_at: now,
        updated_at: now,
    };
    deps.store.claim(&record).await.map_err(|e| internal(&e))?;
    Ok(respond(
        202,
        json!({"remediation_id": remediation_id, "status": status, "detail": detail}),
    ))
}

/// Admits the request (replay, same ticket, budget) and queues it. Only answers 2xx once the request is durable
/// and queued; otherwise the sender retries, and the retry of a delivery admitted but never queued (the process
/// died between the two writes of a store whose queue is elsewhere: DynamoDB, then SQS) queues it then.
async fn admit(
    deps: &WebhookDeps<'_>,
    replay_key: Option<&str>,
    request: RemediationRequest,
    body_hash: String,
) -> Result<HttpResponse, HttpResponse> {
    let now = deps.clock.now();
    let remediation_id = request.remediation_id.clone();
    let ticket_key = request.ticket.as_ref().map(|t| {
        format!(
            "{}|{}|{}",
            t.system.to_ascii_lowercase(),
            t.id,
            request.action
        )
    });
    let record = RemediationRecord {
        request: request.clone(),
        ticket_key,
        body_hash: body_hash.clone(),
        status: RemediationStatus::Queued,
        detail: Value::Null,
        created_at: now,
        updated_at: now,
    };
    let budget = deps.policy.remediation.max_actions_per_hour;
    let admitted = deps
        .store
        .admit_and_queue(replay_key, &record, budget)
        .await
        .map_err(|e| internal(&e))?;
    match admitted {
        Admitted::New => {}
        Admitted::ReplayedWebhook(first) => {
            let stored = deps
                .store
                .remediation(&first)
                .await
                .map_err(|e| internal(&e))?;
            let status = match stored {
                Some(first) => queued_if_lost(deps, &first).await?,
                None => RemediationStatus::Queued,
            };
            return Ok(respond(
                200,
                json!({"remediation_id": first, "status": status, "duplicate": true}),
            ));
        }
        Admitted::SameTicket(first) if first.body_hash == body_hash => {
            return Ok(respond(
                200,
                json!({"remediation_id": first.request.remediation_id, "status": first.status, "duplicate": true}),
            ));
        }
        Admitted::SameTicket(_) => {
            let message = "this ticket already asked for this action with a different request";
            return Err(reject("conflict", error(409, message)));
        }
        Admitted::OverBudget => {
            let message = "remediation.max_actions_per_hour is spent; try again later";
            return Err(reject("budget", error(429, message)));
        }
    }
    Ok(respond(
        202,
        json!({"remediation_id": remediation_id, "status": "queued"}),
    ))
}

/// The status of a retried delivery's remediation, after queueing its request if it is still waiting and its
/// queueing was never recorded. A sender retries a delivery (same webhook id) when it got no answer: the process
/// that admitted it may have died before queueing it.
async fn queued_if_lost(
    deps: &WebhookDeps<'_>,
    first: &RemediationRecord,
) -> Result<RemediationStatus, HttpResponse> {
    let id = &first.request.remediation_id;
    let lost = first.status == RemediationStatus::Queued
        && !deps.store.is_queued(id).await.map_err(|e| internal(&e))?;
    if lost {
        tracing::warn!(remediation = %id, "an admitted request was never queued; queued now");
        queue_and_record(deps.store, &first.request)
            .await
            .map_err(|e| internal(&e))?;
    }
    Ok(first.status)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(secrets: &[&str], hub: &str) -> Policy {
        let mut p = Policy::default();
        p.webhook.secrets_env = secrets.iter().map(|s| s.to_string()).collect();
        p.webhook.github_style_secret_env = hub.into();
        p
    }

    #[test]
    fn the_endpoint_fails_closed_without_a_usable_secret() {
        let none = WebhookAuth::from_policy(&policy(&[], ""), &|_| None)
            .expect_err("no secret configured");
        assert_eq!(none.problems[0].name, "webhook.secrets_env");
        for bad in ["", "whsec_", "whsec_not*base64", "whsec_c2hvcnQ="] {
            let err =
                WebhookAuth::from_policy(&policy(&["LW_SECRET"], ""), &|_| Some(bad.to_string()))
                    .expect_err("unusable secret");
            assert_eq!(err.problems[0].name, "LW_SECRET", "{bad:?}");
            assert!(
                !err.to_string().contains("whsec_c2"),
                "the secret value is not echoed"
            );
        }
        let unset =
            WebhookAuth::from_policy(&policy(&["LW_SECRET"], ""), &|_| None).expect_err("unset");
        assert!(unset.problems[0].problem.contains("not set"));
        let short_hub = WebhookAuth::from_policy(&policy(&[], "LW_HUB"), &|_| Some("short".into()))
            .expect_err("short");
        assert_eq!(short_hub.problems[0].name, "LW_HUB");
        let ok = WebhookAuth::from_policy(&policy(&["LW_SECRET"], ""), &|_| {
            Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into())
        })
        .expect("valid");
        assert!(!format!("{ok:?}").contains("MfKQ"));
    }
}
