//! The HTTP call loop shared by the Graph and Management Activity API clients: bearer token, `client-request-id`,
//! per-request timeout, the [`crate::domain::retry`] rules, one token refresh on 401, and Microsoft's error body turned into
//! a typed [`ApiError`] that knows whether a retry can help.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{RequestBuilder, StatusCode};
use serde::Deserialize;
use tokio::time::Instant;

use crate::auth::{Audience, TokenProvider};
use crate::domain::retry::{Retrier, RetryKind, RetryPolicy, parse_retry_after};
pub use crate::error::{ApiError, Service};

/// `{"error": {"code", "message", "innerError": {"request-id", "date"}}}` (Graph and Management API alike).
#[derive(Debug, Default, Deserialize)]
struct ErrorEnvelope {
    #[serde(default)]
    error: ErrorDetail,
}

#[derive(Debug, Default, Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
    #[serde(default, rename = "innerError", alias = "innererror")]
    inner: Option<InnerError>,
}

#[derive(Debug, Default, Deserialize)]
struct InnerError {
    #[serde(default, rename = "request-id")]
    request_id: Option<String>,
}

/// The rule that keeps the bearer token on its own host: a paging link from `service` may only go back to `base`'s
/// origin (same scheme, host and port). `what` names the link in the error.
pub(crate) fn check_link(
    service: Service,
    base: &url::Url,
    link: &str,
    what: &str,
) -> Result<(), ApiError> {
    let u = url::Url::parse(link).map_err(|_| ApiError::MalformedBody {
        service,
        what: what.into(),
        detail: "not an absolute URL".into(),
    })?;
    if u.origin() != base.origin() {
        return Err(ApiError::UntrustedLink {
            service,
            host: u.host_str().unwrap_or("?").to_string(),
        });
    }
    Ok(())
}

/// A successful response, fully read.
#[derive(Debug)]
pub struct RawResponse {
    /// Status code.
    pub status: StatusCode,
    /// Response headers.
    pub headers: HeaderMap,
    /// Body bytes.
    pub body: Vec<u8>,
}

/// A body that could not be understood; retried as transient.
#[derive(Debug)]
pub struct BodyProblem(pub String);

/// Everything a client needs to make calls: one per cold start, cheap to clone.
#[derive(Clone)]
pub struct Caller {
    pub(crate) http: reqwest::Client,
    pub(crate) tokens: Arc<TokenProvider>,
    pub(crate) policy: RetryPolicy,
    pub(crate) deadline: Option<Instant>,
    pub(crate) service: Service,
    pub(crate) audience: Audience,
}

impl fmt::Debug for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Caller")
            .field("service", &self.service)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// Builds the one reqwest client of a cold start (rustls, no proxy surprises, gzip off: bodies are JSON).
pub(crate) fn build_http_client(policy: &RetryPolicy) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(policy.request_timeout)
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("licensewatch/", env!("CARGO_PKG_VERSION")))
        .pool_max_idle_per_host(16)
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// The most a `Content-Length` may reserve ahead of the bytes arriving (a larger body still arrives whole).
const MOST_RESERVED: u64 = 16 << 20;

/// A response's body, read chunk by chunk into one buffer sized from its `Content-Length`, rather than collected
/// into a growing buffer and then copied out.
async fn read_body(mut resp: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    let expected = resp.content_length().unwrap_or(0).min(MOST_RESERVED);
    let mut body = Vec::with_capacity(usize::try_from(expected).unwrap_or(0));
    while let Some(chunk) = resp.chunk().await? {
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// What one attempt at a call came to.
enum Step<T> {
    /// The answer, parsed.
    Done(T),
    /// Try again at once (the token was refreshed after a 401).
    Again,
    /// Retry by the policy, or give up with this error.
    Retry(RetryKind, Option<Duration>, ApiError),
    /// The body was cut off: wait as for a transient error and try again, else give up with this error.
    CutOff(ApiError),
    /// No retry can help.
    Fail(ApiError),
}

/// A request on the wire and what its answer is judged with.
struct Sent {
    answer: Result<reqwest::Response, reqwest::Error>,
    /// The quota pacer it went through (told about a 429).
    pacer: Option<Arc<crate::pacer::Pacer>>,
    /// What a 403 names the permission of.
    target: Option<(reqwest::Method, url::Url)>,
}

impl Caller {
    /// Runs one logical call: `make` builds the request afresh for each attempt; `parse` turns a 2xx into `T`
    /// (a [`BodyProblem`] is retried like a transient error).
    pub async fn call<T>(
        &self,
        what: &str,
        make: impl Fn() -> RequestBuilder,
        parse: impl Fn(RawResponse) -> Result<T, BodyProblem>,
    ) -> Result<T, ApiError> {
        let mut retrier = Retrier::new(&self.policy, self.deadline);
        let mut refreshed = false;
        loop {
            if let Some(d) = self.deadline
                && Instant::now() >= d
            {
                return Err(ApiError::DeadlineReached {
                    service: self.service,
                });
            }
            let step = match self.send(&make, retrier.attempt()).await {
                Ok(sent) => self.judge(what, sent, &parse, &mut refreshed).await,
                Err(e) => Step::Fail(e),
            };
            let (kind, retry_after, err) = match step {
                Step::Done(v) => return Ok(v),
                Step::Again => continue,
                Step::Fail(err) => return Err(err),
                Step::CutOff(err) => {
                    if retrier.wait(RetryKind::Transient, None).await {
                        continue;
                    }
                    return Err(err);
                }
                Step::Retry(kind, retry_after, err) => (kind, retry_after, err),
            };
            tracing::warn!(
                service = %self.service,
                what,
                attempt = retrier.attempt(),
                retry_after_ms = retry_after.map(|d| d.as_millis() as u64),
                error = %err,
                "call failed; applying retry policy"
            );
            if !retrier.wait(kind, retry_after).await {
                return Err(self.given_up(retry_after, err));
            }
        }
    }

    /// The error a call that will not be retried ends with: a retryable one that only the deadline stops is
    /// reported as the deadline (the caller resumes next time).
    fn given_up(&self, retry_after: Option<Duration>, err: ApiError) -> ApiError {
        if let Some(d) = self.deadline {
            let wait = retry_after.unwrap_or(Duration::ZERO);
            if Instant::now() + wait >= d && err.is_retryable() {
                return ApiError::DeadlineReached {
                    service: self.service,
                };
            }
        }
        err
    }

    /// Sends one attempt: a fresh token and request id, then the quota's slot and the mailbox's permit, each held
    /// until the answer arrives.
    async fn send(
        &self,
        make: &impl Fn() -> RequestBuilder,
        attempt: u32,
    ) -> Result<Sent, ApiError> {
        let token = self.tokens.token(self.audience).await?;
        let request_id = uuid::Uuid::new_v4().to_string();
        let mut req = make()
            .bearer_auth(token.expose())
            .header("client-request-id", &request_id)
            .timeout(self.policy.request_timeout);
        if attempt > 1 {
            req = req.header("retry-attempt", (attempt - 1).to_string());
        }
        let (client, request) = req.build_split();
        let pacer = request.as_ref().ok().and_then(|r| self.pacer_for(r.url()));
        let target = request
            .as_ref()
            .ok()
            .map(|r| (r.method().clone(), r.url().clone()));
        let slot = match &pacer {
            Some(p) => match p.acquire(self.deadline).await {
                Some(slot) => Some(slot),
                // The quota's next slot comes after the deadline: the caller resumes next time.
                None => {
                    return Err(ApiError::DeadlineReached {
                        service: self.service,
                    });
                }
            },
            None => None,
        };
        // Outlook counts concurrent requests per mailbox: wait for one of its permits, held until the answer.
        let gate = request
            .as_ref()
            .ok()
            .and_then(|r| self.mailbox_gate(r.url()));
        let permit = match &gate {
            Some(g) => g.clone().acquire_owned().await.ok(),
            None => None,
        };
        let answer = match request {
            Ok(request) => client.execute(request).await,
            Err(e) => Err(e),
        };
        drop(permit);
        if let (Some(p), Some(slot)) = (&pacer, slot) {
            p.answered(slot);
        }
        Ok(Sent {
            answer,
            pacer,
            target,
        })
    }

    /// What an attempt's answer comes to: parsed, refreshed once on a 401, or an error typed for the retry policy.
    async fn judge<T>(
        &self,
        what: &str,
        sent: Sent,
        parse: &impl Fn(RawResponse) -> Result<T, BodyProblem>,
        refreshed: &mut bool,
    ) -> Step<T> {
        let resp = match sent.answer {
            Ok(resp) => resp,
            Err(e) => return Step::Retry(RetryKind::Transient, None, self.transport_error(e)),
        };
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = match read_body(resp).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(service = %self.service, what, error = %e, "response body cut off");
                return Step::CutOff(ApiError::MalformedBody {
                    service: self.service,
                    what: what.to_string(),
                    detail: "the connection closed before the body was complete".into(),
                });
            }
        };
        if status.is_success() {
            return match parse(RawResponse {
                status,
                headers,
                body,
            }) {
                Ok(v) => Step::Done(v),
                Err(BodyProblem(detail)) => Step::Retry(
                    RetryKind::Transient,
                    None,
                    ApiError::MalformedBody {
                        service: self.service,
                        what: what.to_string(),
                        detail,
                    },
                ),
            };
        }
        if status == StatusCode::UNAUTHORIZED && !*refreshed {
            // A token revoked or expired early: fetch a new one once, then try again at once.
            *refreshed = true;
            self.tokens.invalidate(self.audience).await;
            tracing::info!(service = %self.service, what, "401: refreshing the token once");
            return Step::Again;
        }
        if status == StatusCode::TOO_MANY_REQUESTS
            && let Some(p) = &sent.pacer
        {
            p.throttled();
        }
        let mut classified = self.classify(status, &headers, &body);
        if let (ApiError::Forbidden { code, message, .. }, Some((method, url))) =
            (&mut classified.2, &sent.target)
        {
            add_advice(self.service, code, message, method, url);
        }
        match classified {
            (Some(kind), ra, err) => Step::Retry(kind, ra, err),
            (None, _, err) => Step::Fail(err),
        }
    }

    /// A request that got no answer: a timeout, or the connection failed.
    fn transport_error(&self, e: reqwest::Error) -> ApiError {
        if e.is_timeout() {
            ApiError::Timeout {
                service: self.service,
                url: e.url().map(|u| u.to_string()).unwrap_or_default(),
            }
        } else {
            ApiError::Transport {
                service: self.service,
                source: e,
            }
        }
    }

    /// The quota pacer a request to `url` waits on (Graph's reports and audit logs), shared by every caller of the
    /// same app and tenant in this process.
    fn pacer_for(&self, url: &url::Url) -> Option<std::sync::Arc<crate::pacer::Pacer>> {
        use crate::pacer::{QuotaClass, pacer_for};
        if self.service != Service::Graph {
            return None;
        }
        let class = QuotaClass::of_path(url.path())?;
        let (client_id, tenant_id) = self.tokens.app_and_tenant();
        Some(pacer_for(client_id, tenant_id, class))
    }

    /// The concurrency gate of the mailbox an Outlook request acts on, shared by every caller of the same app.
    fn mailbox_gate(&self, url: &url::Url) -> Option<std::sync::Arc<tokio::sync::Semaphore>> {
        if self.service != Service::Graph {
            return None;
        }
        let mailbox = crate::pacer::mailbox_of(url.path())?;
        let (client_id, tenant_id) = self.tokens.app_and_tenant();
        Some(crate::pacer::mailbox_gate(client_id, tenant_id, &mailbox))
    }

    /// Maps a non-2xx answer to an error and, when retrying can help, the kind of retry.
    fn classify(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
    ) -> (Option<RetryKind>, Option<Duration>, ApiError) {
        let env: ErrorEnvelope = serde_json::from_slice(body).unwrap_or_default();
        let code = if env.error.code.is_empty() {
            status.canonical_reason().unwrap_or("unknown").to_string()
        } else {
            env.error.code
        };
        let message = truncate(&env.error.message, 300);
        let request_id = env
            .error
            .inner
            .and_then(|i| i.request_id)
            .or_else(|| header_str(headers, "request-id"));
        let retry_after = headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let service = self.service;
        let s = status.as_u16();
        let throttled = matches!(s, 429 | 503 | 504) || (s == 403 && code == "AF429");
        if throttled {
            THROTTLES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if let Some(scope) = header_str(headers, "x-ms-throttle-scope") {
                tracing::info!(%service, throttle_scope = %scope, "throttled");
            }
            return (
                Some(RetryKind::Throttled),
                retry_after,
                ApiError::Throttled {
                    service,
                    status: s,
                    code,
                    retry_after,
                    request_id,
                },
            );
        }
        match s {
            500..=599 => (
                Some(RetryKind::ServerError),
                None,
                ApiError::Unavailable {
                    service,
                    status: s,
                    code,
                    message,
                    request_id,
                },
            ),
            401 => (
                None,
                None,
                ApiError::Unauthorized {
                    service,
                    code,
                    message,
                },
            ),
            403 => (
                None,
                None,
                ApiError::Forbidden {
                    service,
                    code,
                    message,
                    request_id,
                },
            ),
            404 => (
                None,
                None,
                ApiError::NotFound {
                    service,
                    code,
                    message,
                    request_id,
                },
            ),
            _ => (
                None,
                None,
                ApiError::Rejected {
                    service,
                    status: s,
                    code,
                    message,
                    request_id,
                },
            ),
        }
    }
}

fn header_str(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name)
        .and_then(|v: &HeaderValue| v.to_str().ok())
        .map(str::to_string)
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        s.to_string()
    } else {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &s[..end])
    }
}

/// Parses a JSON body into `T`, describing the problem without echoing the body.
pub(crate) fn json_body<T: serde::de::DeserializeOwned>(
    raw: &RawResponse,
) -> Result<T, BodyProblem> {
    serde_json::from_slice(&raw.body).map_err(|e| BodyProblem(format!("invalid JSON: {e}")))
}

/// Throttling answers met by this process (for the `GraphThrottles` metric: read before and after a run).
static THROTTLES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Adds to a Graph 403 what to do about it: the permission the call needs and the function that needs it
/// (`Authorization_RequestDenied`), or the application access policy that keeps the app from a mailbox
/// (`ErrorAccessDenied` on sendMail).
fn add_advice(
    service: Service,
    code: &str,
    message: &mut String,
    method: &reqwest::Method,
    url: &url::Url,
) {
    if service != Service::Graph {
        return;
    }
    let (path, query) = (url.path(), url.query().unwrap_or_default());
    if code == "ErrorAccessDenied" && path.to_ascii_lowercase().ends_with("/sendmail") {
        message.push_str(
            "; an Exchange application access policy keeps the app from sending as this mailbox: add the sender to \
             the policy's group (Test-ApplicationAccessPolicy -Identity <sender> -AppId <client id>)",
        );
    } else if code == "Authorization_RequestDenied"
        && let Some(needed) =
            crate::domain::permissions::for_graph_call(method.as_str(), path, query)
    {
        message.push_str("; ");
        message.push_str(&needed.advice());
    }
}

/// How many throttling answers (429, 503, 504, AF429) this process has met so far.
pub fn throttles_seen() -> u64 {
    THROTTLES.load(std::sync::atomic::Ordering::Relaxed)
}
