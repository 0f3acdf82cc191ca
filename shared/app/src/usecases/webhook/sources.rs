//! `POST /webhooks/{source}`: remediation requests as ticketing systems send them, each authenticated its own way
//! (`[[webhook.sources]]`) and, when its body is the system's own, mapped to a request by JSON pointers.

use serde_json::{Map, Value, json};

use crate::config::ConfigProblem;
use crate::domain::signing::{
    SignatureError, StandardHeaders, WebhookSecret, verify_autotask, verify_connectwise,
    verify_hub, verify_shared_secret, verify_standard,
};
use crate::policy::{SignatureScheme, WebhookSource};
pub use crate::ports::signing_keys::SigningKeys;
use crate::secret::SecretString;

use super::{HttpRequest, HttpResponse, WebhookDeps, error, reject};

/// A source's settings and secret, resolved at start-up.
#[derive(Clone)]
pub struct SourceAuth {
    /// The policy entry.
    pub source: WebhookSource,
    secret: Option<SecretString>,
}

impl std::fmt::Debug for SourceAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceAuth")
            .field("name", &self.source.name)
            .field("scheme", &self.source.scheme)
            .field("secret", &self.secret.as_ref().map(|_| "[REDACTED]"))
            .finish()
    }
}

/// Reads each source's secret through `lookup`; every problem is reported, naming the variable and the key.
pub(super) fn resolve(
    sources: &[WebhookSource],
    lookup: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<ConfigProblem>,
) -> Vec<SourceAuth> {
    let mut out = Vec::new();
    for (i, s) in sources.iter().enumerate() {
        if s.scheme == SignatureScheme::Connectwise {
            out.push(SourceAuth {
                source: s.clone(),
                secret: None,
            });
            continue;
        }
        let key = format!("webhook.sources[{i}].secret_env");
        let value = lookup(&s.secret_env).filter(|v| !v.is_empty());
        let problem = match (&value, s.scheme) {
            (None, _) => Some("is not set".to_string()),
            (Some(v), SignatureScheme::StandardWebhooks) => {
                WebhookSecret::parse(v).err().map(|e| e.to_string())
            }
            (Some(v), _) if v.len() < 16 => Some("is shorter than 16 characters".to_string()),
            _ => None,
        };
        match problem {
            Some(p) => problems.push(ConfigProblem {
                name: s.secret_env.clone(),
                problem: format!("{p} (named by {key})"),
            }),
            None => out.push(SourceAuth {
                source: s.clone(),
                secret: value.map(SecretString::new),
            }),
        }
    }
    out
}

/// No fetcher: every key is refused.
pub(super) struct NoKeys;

#[async_trait::async_trait]
impl SigningKeys for NoKeys {
    async fn signing_key(&self, _url: &str) -> Result<String, String> {
        Err("no signing-key fetcher is configured".into())
    }
}

/// What authentication found: the replay key, when the scheme carries a delivery id.
type Verified = Result<Option<String>, HttpResponse>;

fn unauthorized(reason: &str) -> HttpResponse {
    reject(reason, error(401, "unauthorized"))
}

fn header<'r>(req: &'r HttpRequest<'_>, name: &str) -> Result<Option<&'r str>, HttpResponse> {
    req.header(name)
        .map_err(|_| unauthorized("duplicate_header"))
}

fn required<'r>(req: &'r HttpRequest<'_>, name: &str) -> Result<&'r str, HttpResponse> {
    header(req, name)?.ok_or_else(|| unauthorized("missing_signature"))
}

fn mismatch(_: SignatureError) -> HttpResponse {
    unauthorized("signature")
}

/// Authenticates a request for `auth`'s source. Replay keys are namespaced by source.
pub(super) async fn authenticate(
    deps: &WebhookDeps<'_>,
    auth: &SourceAuth,
    req: &HttpRequest<'_>,
) -> Verified {
    let secret = auth.secret.as_ref().map(|s| s.expose()).unwrap_or_default();
    let name = &auth.source.name;
    let delivery = |header_name: &str| -> Result<Option<String>, HttpResponse> {
        Ok(header(req, header_name)?
            .filter(|id| !id.is_empty() && id.len() <= 256)
            .map(|id| format!("src:{name}:{id}")))
    };
    match auth.source.scheme {
        SignatureScheme::StandardWebhooks => {
            let secrets = [WebhookSecret::parse(secret).map_err(|_| unauthorized("secret"))?];
            let headers = StandardHeaders {
                id: header(req, "webhook-id")?,
                timestamp: header(req, "webhook-timestamp")?,
                signature: header(req, "webhook-signature")?,
            };
            let now = deps.clock.now().timestamp();
            verify_standard(
                &secrets,
                &headers,
                req.body,
                now,
                deps.auth.tolerance_seconds,
            )
            .map_err(|e| {
                unauthorized(match e {
                    SignatureError::TimestampTooOld | SignatureError::TimestampInFuture => {
                        "timestamp"
                    }
                    _ => "signature",
                })
            })?;
            delivery("webhook-id")
        }
        SignatureScheme::HubSha256 => {
            verify_hub(
                secret.as_bytes(),
                required(req, "x-hub-signature-256")?,
                req.body,
            )
            .map_err(mismatch)?;
            delivery("x-github-delivery")
        }
        SignatureScheme::Jira => {
            // Jira Cloud signs admin webhooks with `X-Hub-Signature: sha256=<hex>`, and names each delivery (the
            // same id on its retries) in `X-Atlassian-Webhook-Identifier`.
            verify_hub(
                secret.as_bytes(),
                required(req, "x-hub-signature")?,
                req.body,
            )
            .map_err(mismatch)?;
            delivery("x-atlassian-webhook-identifier")
        }
        SignatureScheme::Autotask => {
            verify_autotask(
                secret.as_bytes(),
                required(req, "x-hook-signature")?,
                req.body,
            )
            .map_err(mismatch)?;
            Ok(None)
        }
        SignatureScheme::SharedSecret => {
            shared_secret(deps, &auth.source, secret, req)?;
            Ok(None)
        }
        SignatureScheme::Connectwise => {
            let presented = required(req, "x-content-signature")?;
            let key = connectwise_key(deps, &auth.source, req.body).await?;
            verify_connectwise(&key, presented, req.body).map_err(mismatch)?;
            Ok(None)
        }
    }
}

/// A fixed secret, refused over plain HTTP where the endpoint says it runs behind HTTPS (AWS): a secret sent in
/// clear text is a secret given away.
fn shared_secret(
    deps: &WebhookDeps<'_>,
    source: &WebhookSource,
    secret: &str,
    req: &HttpRequest<'_>,
) -> Result<(), HttpResponse> {
    if deps.auth.https_only {
        let proto = header(req, "x-forwarded-proto")?.unwrap_or("");
        if !proto.eq_ignore_ascii_case("https") {
            return Err(reject(
                "https_required",
                error(403, "a shared-secret source is accepted over HTTPS only"),
            ));
        }
    }
    verify_shared_secret(secret, required(req, source.secret_header())?).map_err(mismatch)
}

/// The signing key of a ConnectWise callback: its `Metadata.key_url`, fetched only when it is an HTTPS URL (or the
/// configured scheme) on the configured PSA host, so a forged callback cannot make the endpoint fetch elsewhere.
async fn connectwise_key(
    deps: &WebhookDeps<'_>,
    source: &WebhookSource,
    body: &[u8],
) -> Result<String, HttpResponse> {
    let bad = |m: &str| reject("bad_input", error(400, m));
    let value: Value = serde_json::from_slice(body).map_err(|_| bad("malformed JSON"))?;
    let key_url = value
        .pointer("/Metadata/key_url")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("field 'Metadata.key_url' is required (ConnectWise callback)"))?;
    let trusted = url::Url::parse(&source.psa_url).ok();
    let offered = url::Url::parse(key_url).ok();
    let same_host = match (&trusted, &offered) {
        (Some(t), Some(o)) => {
            o.scheme() == t.scheme()
                && o.host_str().is_some()
                && o.host_str() == t.host_str()
                && o.port_or_known_default() == t.port_or_known_default()
                && o.username().is_empty()
        }
        _ => false,
    };
    if !same_host {
        return Err(unauthorized("key_url"));
    }
    deps.auth.keys.signing_key(key_url).await.map_err(|e| {
        tracing::warn!(error = %e, "ConnectWise signing key not fetched");
        error(503, "the signing key could not be fetched; try again")
    })
}

/// Follows an RFC 6901 pointer; where the walk meets a string holding JSON (ConnectWise's `Entity`), it goes on
/// inside that document.
fn lookup(root: &Value, pointer: &str) -> Option<Value> {
    let mut current = root.clone();
    for raw in pointer.split('/').skip(1) {
        let token = raw.replace("~1", "/").replace("~0", "~");
        if let Value::String(text) = &current
            && let Ok(inner) = serde_json::from_str::<Value>(text)
        {
            current = inner;
        }
        current = match &current {
            Value::Object(m) => m.get(&token)?.clone(),
            Value::Array(a) => a.get(token.parse::<usize>().ok()?)?.clone(),
            _ => return None,
        };
    }
    Some(current)
}

/// A mapped value as text: strings as they are, numbers written out (ticket ids are numbers in ConnectWise and
/// Autotask), anything else refused.
fn as_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The request a source's own body asks for, as licensewatch's request body, naming the pointer that is wrong.
/// A source whose pointers reach into a JSON string (ConnectWise's `Entity`), for the fuzz targets.
#[cfg(any(test, feature = "fuzz"))]
pub(crate) fn fuzz_body(b: &[u8]) {
    let source = WebhookSource {
        name: "fuzz".into(),
        scheme: SignatureScheme::Connectwise,
        system: "connectwise".into(),
        fields: crate::policy::FieldMap {
            user: "/Entity/a/0/b".into(),
            ticket_id: "/ID".into(),
            sku_ids: "/s".into(),
            dry_run: "/d".into(),
            ..Default::default()
        },
        ..Default::default()
    };
    let _ = map_body(&source, b);
}

pub(super) fn map_body(source: &WebhookSource, body: &[u8]) -> Result<Value, String> {
    let root: Value = serde_json::from_slice(body).map_err(|e| format!("malformed JSON: {e}"))?;
    let f = &source.fields;
    let pick = |field: &str, pointer: &str| -> Result<Option<Value>, String> {
        if pointer.is_empty() {
            return Ok(None);
        }
        match lookup(&root, pointer) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => Ok(Some(v)),
        }
        .map_err(|e: String| format!("{field}: {e}"))
    };
    let text = |field: &str, pointer: &str| -> Result<Option<String>, String> {
        match pick(field, pointer)? {
            None => Ok(None),
            Some(v) => as_text(&v).map(Some).ok_or_else(|| {
                format!("field '{field}' (pointer {pointer}) must be a string or a number")
            }),
        }
    };
    let user = text("user", &f.user)?
        .filter(|u| !u.is_empty())
        .ok_or_else(|| format!("field 'user' (pointer {}) is missing from the body", f.user))?;
    let mut out = Map::new();
    out.insert("user".into(), json!(user));
    let action = text("action", &f.action)?
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| match source.action.as_str() {
            "" => "reprocess".to_string(),
            a => a.to_string(),
        });
    out.insert("action".into(), json!(action));
    if let Some(skus) = pick("sku_ids", &f.sku_ids)? {
        out.insert("sku_ids".into(), sku_list(&skus, &f.sku_ids)?);
    }
    if let Some(t) = text("template_user", &f.template_user)? {
        out.insert("template_user".into(), json!(t));
    }
    if let Some(id) = text("ticket_id", &f.ticket_id)?.filter(|i| !i.is_empty()) {
        let mut ticket = json!({"system": source.system(), "id": id});
        if let Some(cb) = text("callback_url", &f.callback_url)? {
            ticket["callback_url"] = json!(cb);
        }
        out.insert("ticket".into(), ticket);
    }
    if let Some(d) = pick("dry_run", &f.dry_run)? {
        let flag = match &d {
            Value::Bool(b) => *b,
            Value::String(s) if s.eq_ignore_ascii_case("true") => true,
            Value::String(s) if s.eq_ignore_ascii_case("false") || s.is_empty() => false,
            _ => {
                return Err(format!(
                    "field 'dry_run' (pointer {}) must be true or false",
                    f.dry_run
                ));
            }
        };
        out.insert("dry_run".into(), json!(flag));
    }
    Ok(Value::Object(out))
}

/// SKU ids from a list, or from one string with commas (what a ticket form's text field and Jira's smart values
/// give).
fn sku_list(v: &Value, pointer: &str) -> Result<Value, String> {
    let wrong = || {
        format!(
            "field 'sku_ids' (pointer {pointer}) must be a list of SKU ids or a comma-separated string"
        )
    };
    let ids: Vec<String> = match v {
        Value::Array(a) => a
            .iter()
            .map(|x| as_text(x).ok_or_else(wrong))
            .collect::<Result<_, _>>()?,
        Value::String(s) => s
            .split(',')
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect(),
        _ => return Err(wrong()),
    };
    Ok(json!(ids))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::FieldMap;

    fn source(fields: FieldMap) -> WebhookSource {
        WebhookSource {
            name: "cw".into(),
            scheme: SignatureScheme::Connectwise,
            system: "connectwise".into(),
            fields,
            ..Default::default()
        }
    }

    #[test]
    fn pointers_reach_into_connectwise_entity_strings_and_numbers_become_ids() {
        let body = json!({"ID": 4711, "Entity": "{\"summary\":\"Reprocess\",\"contact\":{\"email\":\"megan@contoso.com\"},\"skus\":\"a, b\"}"});
        let s = source(FieldMap {
            user: "/Entity/contact/email".into(),
            ticket_id: "/ID".into(),
            sku_ids: "/Entity/skus".into(),
            action: "/Entity/absent".into(),
            ..Default::default()
        });
        let mapped = map_body(&s, body.to_string().as_bytes()).expect("mapped");
        assert_eq!(
            mapped,
            json!({"user": "megan@contoso.com", "action": "reprocess", "sku_ids": ["a", "b"],
                "ticket": {"system": "connectwise", "id": "4711"}})
        );
        let missing = map_body(
            &source(FieldMap {
                user: "/nope".into(),
                ..Default::default()
            }),
            b"{}",
        )
        .expect_err("no user");
        assert!(missing.contains("/nope"), "{missing}");
        let wrong = map_body(
            &source(FieldMap {
                user: "/u".into(),
                dry_run: "/d".into(),
                ..Default::default()
            }),
            br#"{"u": "x", "d": 3}"#,
        )
        .expect_err("dry_run");
        assert!(wrong.contains("dry_run"), "{wrong}");
    }
}
