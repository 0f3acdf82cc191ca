//! Fault injection per route: latency, throttling (429 with or without `Retry-After`, the Management API's 403
//! AF429), server errors, timeouts and truncated bodies; counted (`count`) or random (`probability`, seeded).

use serde::{Deserialize, Serialize};

/// What a fault does.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum FaultKind {
    /// Answer normally, `latency_ms` after the request arrived (the simulator's own work counts within it).
    Latency,
    /// 429 Too Many Requests (with `retry_after` when set).
    Throttle,
    /// 403 with the Management API's AF429 body.
    Af429,
    /// 500 Internal Server Error.
    ServerError,
    /// 503 Service Unavailable (with `retry_after` when set).
    Unavailable,
    /// Never answer in time (sleeps `latency_ms`, default 120 s).
    Timeout,
    /// Answer normally but cut the body in half.
    Truncate,
}

/// One injected fault.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Fault {
    /// Applies to requests whose path contains this text (e.g. `/v1.0/users`, `activity/feed`).
    pub route: String,
    /// What happens.
    pub kind: FaultKind,
    /// How many requests it hits; None = every matching request.
    #[serde(default)]
    pub count: Option<u32>,
    /// Chance per request (0..1) instead of every request.
    #[serde(default)]
    pub probability: Option<f64>,
    /// For `latency`: the time the request takes, the simulator's own work included (the answer leaves no sooner
    /// than this after the request arrived). For `timeout`: the wait before the timeout answer.
    #[serde(default)]
    pub latency_ms: Option<u64>,
    /// `Retry-After` value (seconds or an HTTP date) for throttles.
    #[serde(default)]
    pub retry_after: Option<String>,
    /// Only requests for this tenant of a fleet (GUID or domain): those with its token, and its token requests.
    /// None = every tenant. Microsoft throttles per tenant and app: one customer's limits never slow another's.
    #[serde(default)]
    pub tenant: Option<String>,
}

/// The active faults.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    list: Vec<Fault>,
    rng: u64,
}

impl Faults {
    /// Seeds the random faults.
    pub(crate) fn seeded(seed: u64) -> Self {
        Self {
            list: vec![],
            rng: seed.max(1),
        }
    }

    /// Adds a fault.
    pub(crate) fn add(&mut self, f: Fault) {
        self.list.push(f);
    }

    /// Removes every fault.
    pub(crate) fn clear(&mut self) {
        self.list.clear();
    }

    /// Current faults.
    pub(crate) fn list(&self) -> &[Fault] {
        &self.list
    }

    /// The faults that hit this request (latency first, then at most one failure), consuming counts. `tenant`: the
    /// names (GUID and domain) of the tenant the request is for, when known.
    pub(crate) fn take(&mut self, path: &str, tenant: &[String]) -> Vec<Fault> {
        let mut hits = Vec::new();
        let mut failed = false;
        for i in 0..self.list.len() {
            if !path.contains(self.list[i].route.as_str()) {
                continue;
            }
            if let Some(only) = &self.list[i].tenant
                && !tenant.iter().any(|t| t.eq_ignore_ascii_case(only))
            {
                continue;
            }
            if self.list[i].count == Some(0) {
                continue;
            }
            if self.list[i].kind != FaultKind::Latency && failed {
                continue;
            }
            if let Some(p) = self.list[i].probability {
                self.rng ^= self.rng << 13;
                self.rng ^= self.rng >> 7;
                self.rng ^= self.rng << 17;
                if (self.rng % 10_000) as f64 / 10_000.0 >= p {
                    continue;
                }
            }
            if let Some(c) = self.list[i].count.as_mut() {
                *c -= 1;
            }
            failed |= self.list[i].kind != FaultKind::Latency;
            hits.push(self.list[i].clone());
        }
        self.list.retain(|f| f.count != Some(0));
        hits
    }
}
