//! Quota pacing: Microsoft counts some requests per app and tenant in a fixed window and answers 429 past it
//! (reports and audit logs: 5 requests per 10 s, MICROSOFT_BEHAVIOUR.md). Reacting to each 429 wastes the window
//! and, with pages prefetched, throttles every concurrent task; so each request of a paced class first takes a slot
//! from the one pacer of its app, tenant and class, shared by every task of the process, and waits for one when
//! the window is full.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::time::Instant;

/// A quota Microsoft counts requests against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuotaClass {
    /// Identity and access reports and audit logs (`/auditLogs/...`, `/reports/...`): 5 requests per 10 s per app
    /// and tenant.
    Reports,
}

impl QuotaClass {
    /// The class of a Graph request path, when it is paced.
    pub fn of_path(path: &str) -> Option<Self> {
        let path = path.to_ascii_lowercase();
        (path.contains("/auditlogs/") || path.contains("/reports/")).then_some(QuotaClass::Reports)
    }

    /// Requests allowed in one window, and the window.
    pub fn limit(self) -> (usize, Duration) {
        match self {
            QuotaClass::Reports => (5, Duration::from_secs(10)),
        }
    }
}

/// The slots of one app, tenant and class: when each of the last `limit` requests was sent.
#[derive(Debug)]
pub struct Pacer {
    limit: usize,
    window: Duration,
    sent: Mutex<VecDeque<Instant>>,
}

impl Pacer {
    /// A pacer of `limit` requests per `window`.
    pub fn new(limit: usize, window: Duration) -> Self {
        Self {
            limit: limit.max(1),
            window,
            sent: Mutex::new(VecDeque::new()),
        }
    }

    /// Waits for a slot and takes it; `false` (nothing taken) when none frees up before `deadline`.
    pub async fn acquire(&self, deadline: Option<Instant>) -> bool {
        loop {
            let wait = {
                let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
                let now = Instant::now();
                while sent
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= self.window)
                {
                    sent.pop_front();
                }
                if sent.len() < self.limit {
                    sent.push_back(now);
                    return true;
                }
                // The oldest slot frees up one window after it was taken.
                sent.front()
                    .map_or(Duration::ZERO, |t| *t + self.window - now)
            };
            if deadline.is_some_and(|d| Instant::now() + wait > d) {
                return false;
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// Counts a 429 received anyway (another process of the same app, a quota Microsoft lowered): the window is
    /// taken as full from now, so the other tasks wait too instead of each meeting its own 429.
    pub fn throttled(&self) {
        let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        sent.clear();
        sent.extend(std::iter::repeat_n(now, self.limit));
    }
}

/// How much faster than Microsoft's windows this process paces (1 = Microsoft's; a test or the demo against a
/// simulator whose windows are shortened by the same factor sets it once, before the first request).
static TIME_SCALE: OnceLock<f64> = OnceLock::new();

/// Shortens every quota window by `scale` (0 < scale ≤ 1) for this process; only the first call counts.
pub fn set_time_scale(scale: f64) {
    if scale.is_finite() && scale > 0.0 && scale <= 1.0 {
        let _ = TIME_SCALE.set(scale);
    }
}

type Key = (String, String, QuotaClass);

/// The pacer of an app (client id), tenant and class, the same for every caller in the process.
pub fn pacer_for(client_id: &str, tenant_id: &str, class: QuotaClass) -> Arc<Pacer> {
    static PACERS: OnceLock<Mutex<HashMap<Key, Arc<Pacer>>>> = OnceLock::new();
    let key = (
        client_id.to_ascii_lowercase(),
        tenant_id.to_ascii_lowercase(),
        class,
    );
    let mut pacers = PACERS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    pacers
        .entry(key)
        .or_insert_with(|| {
            let (limit, window) = class.limit();
            let scale = TIME_SCALE.get().copied().unwrap_or(1.0);
            Arc::new(Pacer::new(limit, window.mul_f64(scale)))
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_logs_and_reports_are_paced_and_other_paths_are_not() {
        let of = QuotaClass::of_path;
        assert_eq!(
            of("/v1.0/auditLogs/directoryAudits"),
            Some(QuotaClass::Reports)
        );
        assert_eq!(
            of("/v1.0/reports/getMailboxUsageDetail(period='D7')"),
            Some(QuotaClass::Reports)
        );
        assert_eq!(of("/v1.0/users"), None);
    }

    #[tokio::test(start_paused = true)]
    async fn the_sixth_request_in_a_window_waits_for_the_first_slot_to_free() {
        let pacer = Pacer::new(5, Duration::from_secs(10));
        let start = Instant::now();
        for _ in 0..5 {
            assert!(pacer.acquire(None).await);
        }
        assert_eq!(start.elapsed(), Duration::ZERO, "five go at once");
        assert!(pacer.acquire(None).await);
        assert_eq!(start.elapsed(), Duration::from_secs(10));
        let soon = Some(Instant::now() + Duration::from_secs(1));
        for _ in 0..4 {
            assert!(pacer.acquire(soon).await);
        }
        assert!(
            !pacer.acquire(soon).await,
            "no slot before the deadline: nothing taken, no wait"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_received_anyway_makes_everyone_wait_a_window() {
        let pacer = Pacer::new(5, Duration::from_secs(10));
        assert!(pacer.acquire(None).await);
        pacer.throttled();
        let start = Instant::now();
        assert!(pacer.acquire(None).await);
        assert_eq!(start.elapsed(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_tasks_share_one_window() {
        let pacer = Arc::new(Pacer::new(5, Duration::from_secs(10)));
        let start = Instant::now();
        let tasks: Vec<_> = (0..12)
            .map(|_| {
                let p = pacer.clone();
                tokio::spawn(async move {
                    p.acquire(None).await;
                    Instant::now()
                })
            })
            .collect();
        let mut at = Vec::new();
        for t in tasks {
            at.push(t.await.expect("task").duration_since(start).as_secs());
        }
        at.sort();
        assert_eq!(at, [0, 0, 0, 0, 0, 10, 10, 10, 10, 10, 20, 20]);
    }
}
