//! The one retry policy for every call licensewatch makes to Microsoft (Graph, token endpoint, Management API).
//!
//! Rules, in one place:
//! - **429, 503, 504** (and the Management API's `403 AF429`) are throttling: wait for `Retry-After` when the response
//!   has one (delta-seconds or an HTTP date), capped at [`RetryPolicy::max_retry_after`]; otherwise back off
//!   exponentially with full jitter (`base_delay × 2^n`, capped at [`RetryPolicy::max_delay`]).
//! - **Other 5xx** (500, 502, AF50000) are retried with the same backoff, but at most
//!   [`RetryPolicy::max_server_error_retries`] times: a persistent 500 is usually a bug, not load.
//! - **Timeouts, connection errors and truncated or malformed bodies** are retried with backoff.
//! - **401** gets exactly one token refresh and one more try (handled by the clients, not counted here).
//! - **Every other 4xx** is permanent: no retry.
//! - Every attempt is bounded by [`RetryPolicy::request_timeout`]; all attempts together by
//!   [`RetryPolicy::max_attempts`] and [`RetryPolicy::budget`]; and nothing sleeps past the caller's deadline (a
//!   Lambda's remaining time): if the wait would cross it the last error is returned, marked retryable, so that the
//!   schedule or queue tries again later.

use std::time::{Duration, SystemTime};

use rand::Rng;
use tokio::time::Instant;

/// Retry and timeout settings.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// Retries allowed for 500/502-style errors.
    pub max_server_error_retries: u32,
    /// First backoff step when no `Retry-After` is given.
    pub base_delay: Duration,
    /// Longest single backoff.
    pub max_delay: Duration,
    /// Longest `Retry-After` honoured; a longer one ends the call with a retryable error.
    pub max_retry_after: Duration,
    /// Total time for one logical call, waits included.
    pub budget: Duration,
    /// Timeout of each HTTP request.
    pub request_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            max_server_error_retries: 2,
            base_delay: Duration::from_secs(2),
            max_delay: Duration::from_secs(60),
            max_retry_after: Duration::from_secs(300),
            budget: Duration::from_secs(600),
            request_timeout: Duration::from_secs(60),
        }
    }
}

/// Why a failed attempt may be tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryKind {
    /// 429/503/504/AF429.
    Throttled,
    /// Other 5xx.
    ServerError,
    /// Timeout, connection error, unreadable body.
    Transient,
}

impl RetryPolicy {
    /// A policy with short waits, for tests and the simulator.
    pub fn quick() -> Self {
        Self {
            max_attempts: 5,
            max_server_error_retries: 2,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(200),
            max_retry_after: Duration::from_secs(5),
            budget: Duration::from_secs(10),
            request_timeout: Duration::from_secs(5),
        }
    }

    /// Backoff before retry number `n` (0-based): full jitter over an exponentially growing, capped window.
    pub fn backoff(&self, n: u32) -> Duration {
        let window = self
            .base_delay
            .saturating_mul(2u32.saturating_pow(n.min(16)))
            .min(self.max_delay);
        let millis = window.as_millis() as u64;
        // Half fixed, half random: never retry immediately, never in lockstep with other callers.
        Duration::from_millis(millis / 2 + rand::rng().random_range(0..=millis / 2))
    }
}

/// Parses `Retry-After` as delta-seconds or an HTTP date.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Book-keeping for one logical call: how many attempts were made and whether another one is allowed.
#[derive(Debug)]
pub struct Retrier<'a> {
    policy: &'a RetryPolicy,
    deadline: Option<Instant>,
    started: Instant,
    attempts: u32,
    server_errors: u32,
}

impl<'a> Retrier<'a> {
    /// Starts a call under `policy`, never waiting past `deadline`.
    pub fn new(policy: &'a RetryPolicy, deadline: Option<Instant>) -> Self {
        Self {
            policy,
            deadline,
            started: Instant::now(),
            attempts: 1,
            server_errors: 0,
        }
    }

    /// Number of the attempt about to be made or just made (1-based).
    pub fn attempt(&self) -> u32 {
        self.attempts
    }

    /// After a failed attempt: sleeps and returns true if another attempt is allowed, else returns false at once.
    pub async fn wait(&mut self, kind: RetryKind, retry_after: Option<Duration>) -> bool {
        if self.attempts >= self.policy.max_attempts {
            return false;
        }
        if kind == RetryKind::ServerError {
            if self.server_errors >= self.policy.max_server_error_retries {
                return false;
            }
            self.server_errors += 1;
        }
        let delay = match retry_after {
            Some(ra) if kind == RetryKind::Throttled => {
                if ra > self.policy.max_retry_after {
                    return false;
                }
                ra
            }
            _ => self.policy.backoff(self.attempts - 1),
        };
        let wake = Instant::now() + delay;
        if wake > self.started + self.policy.budget {
            return false;
        }
        if let Some(d) = self.deadline
            && wake >= d
        {
            return false;
        }
        tokio::time::sleep(delay).await;
        self.attempts += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_accepts_seconds_and_http_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy::default();
        for n in 0..20 {
            let d = p.backoff(n);
            assert!(d <= p.max_delay, "{d:?}");
            let window = p
                .base_delay
                .saturating_mul(2u32.saturating_pow(n.min(16)))
                .min(p.max_delay);
            assert!(d >= window / 2, "attempt {n}: {d:?} < half of {window:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn server_errors_get_limited_retries_and_deadline_is_respected() {
        let p = RetryPolicy::default();
        let mut r = Retrier::new(&p, None);
        assert!(r.wait(RetryKind::ServerError, None).await);
        assert!(r.wait(RetryKind::ServerError, None).await);
        assert!(!r.wait(RetryKind::ServerError, None).await);

        let deadline = Instant::now() + Duration::from_secs(10);
        let mut r = Retrier::new(&p, Some(deadline));
        assert!(
            !r.wait(RetryKind::Throttled, Some(Duration::from_secs(60)))
                .await
        );
        assert!(
            r.wait(RetryKind::Throttled, Some(Duration::from_secs(1)))
                .await
        );
    }
}
