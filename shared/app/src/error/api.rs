//! [`ApiError`]: a failed call to Graph or the Management Activity API, after the retry policy gave up.

use std::fmt;
use std::time::Duration;

use super::AuthError;

/// Which Microsoft service answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// Microsoft Graph.
    Graph,
    /// Office 365 Management Activity API.
    Management,
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Service::Graph => "Microsoft Graph",
            Service::Management => "Management Activity API",
        })
    }
}

/// A failed call to Graph or the Management Activity API, after the retry policy gave up.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Throttled (429/503/504 or 403 AF429) until the retry budget ran out.
    #[error("{service} throttled the request ({status}, code {code}){}", wait_hint(.retry_after))]
    Throttled {
        service: Service,
        status: u16,
        code: String,
        retry_after: Option<Duration>,
        request_id: Option<String>,
    },
    /// A server error that persisted.
    #[error("{service} answered with server error {status} ({code}: {message}){}", request_id_hint(.request_id))]
    Unavailable {
        service: Service,
        status: u16,
        code: String,
        message: String,
        request_id: Option<String>,
    },
    /// 401 even after one token refresh.
    #[error("{service} rejected the access token ({code}: {message})")]
    Unauthorized {
        service: Service,
        code: String,
        message: String,
    },
    /// 403: a permission or role is missing.
    #[error("{service} denied access ({code}: {message}); check the app's permissions")]
    Forbidden {
        service: Service,
        code: String,
        message: String,
        request_id: Option<String>,
    },
    /// 404.
    #[error("{service}: not found ({code}: {message})")]
    NotFound {
        service: Service,
        code: String,
        message: String,
        request_id: Option<String>,
    },
    /// Any other 4xx: the request itself is wrong.
    #[error("{service} refused the request ({status}, {code}: {message}){}", request_id_hint(.request_id))]
    Rejected {
        service: Service,
        status: u16,
        code: String,
        message: String,
        request_id: Option<String>,
    },
    /// No answer within the request timeout, repeatedly.
    #[error("{service} did not answer in time ({url})")]
    Timeout { service: Service, url: String },
    /// Connection-level failure, repeatedly.
    #[error("cannot reach {service}: {source}")]
    Transport {
        service: Service,
        #[source]
        source: reqwest::Error,
    },
    /// A 2xx whose body was not the JSON expected (truncated, wrong shape), repeatedly.
    #[error("{service} sent an unreadable response for {what}: {detail}")]
    MalformedBody {
        service: Service,
        what: String,
        detail: String,
    },
    /// A paging link was seen twice in one listing.
    #[error("{service} paging loop: a next-page link repeated after {pages} page(s)")]
    PaginationLoop { service: Service, pages: u32 },
    /// The configured page cap was reached.
    #[error("{service} listing exceeded the page cap of {cap} pages")]
    PageCapReached { service: Service, cap: u32 },
    /// A next-page link pointed somewhere the bearer token must not go.
    #[error(
        "{service} returned a next-page link to an untrusted host ({host}); refusing to follow it"
    )]
    UntrustedLink { service: Service, host: String },
    /// The caller's deadline (e.g. the Lambda's remaining time) is too close for another attempt.
    #[error("stopped calling {service}: the run's deadline is near")]
    DeadlineReached { service: Service },
    /// Getting a token failed.
    #[error(transparent)]
    Auth(#[from] AuthError),
}

/// "; it asked to wait N s" when the service said how long.
fn wait_hint(retry_after: &Option<Duration>) -> String {
    retry_after
        .map(|d| format!("; it asked to wait {} s", d.as_secs()))
        .unwrap_or_default()
}

/// "; request id X" for Microsoft support, when the service gave one.
fn request_id_hint(request_id: &Option<String>) -> String {
    request_id
        .as_deref()
        .map(|r| format!("; request id {r}"))
        .unwrap_or_default()
}

impl ApiError {
    /// True when trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            ApiError::Throttled { .. }
            | ApiError::Unavailable { .. }
            | ApiError::Timeout { .. }
            | ApiError::Transport { .. }
            | ApiError::MalformedBody { .. }
            | ApiError::DeadlineReached { .. } => true,
            ApiError::Auth(e) => e.is_retryable(),
            _ => false,
        }
    }

    /// Microsoft's error code, when the service gave one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ApiError::Throttled { code, .. }
            | ApiError::Unavailable { code, .. }
            | ApiError::Unauthorized { code, .. }
            | ApiError::Forbidden { code, .. }
            | ApiError::NotFound { code, .. }
            | ApiError::Rejected { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Microsoft's message, when the service gave one.
    pub fn message(&self) -> Option<&str> {
        match self {
            ApiError::Unavailable { message, .. }
            | ApiError::Unauthorized { message, .. }
            | ApiError::Forbidden { message, .. }
            | ApiError::NotFound { message, .. }
            | ApiError::Rejected { message, .. } => Some(message),
            _ => None,
        }
    }
}
