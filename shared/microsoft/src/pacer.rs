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
pub(crate) enum QuotaClass {
    /// Identity and access reports and audit logs (`/auditLogs/...`, `/reports/...`): 5 requests per 10 s per app
    /// and tenant.
    Reports,
}

impl QuotaClass {
    /// The class of a Graph request path, when it is paced.
    pub(crate) fn of_path(path: &str) -> Option<Self> {
        let path = path.to_ascii_lowercase();
        (path.contains("/auditlogs/") || path.contains("/reports/")).then_some(QuotaClass::Reports)
    }

    /// Requests allowed in one window, and the window.
    pub(crate) fn limit(self) -> (usize, Duration) {
        match self {
            QuotaClass::Reports => (5, Duration::from_secs(10)),
        }
    }
}

/// The slots of one app, tenant and class: each of the last `limit` requests, stamped when it was sent and again
/// when its answer came (Microsoft counts it on arrival, somewhere in between: the later stamp is the safe one).
#[derive(Debug)]
pub(crate) struct Pacer {
    limit: usize,
    window: Duration,
    sent: Mutex<Slots>,
}

/// The requests in the window, by number.
#[derive(Debug, Default)]
struct Slots {
    next: u64,
    taken: VecDeque<(u64, Instant)>,
}

/// A slot taken: give it back to [`Pacer::answered`] when the answer arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slot(u64);

impl Pacer {
    /// A pacer of `limit` requests per `window`.
    pub(crate) fn new(limit: usize, window: Duration) -> Self {
        Self {
            limit: limit.max(1),
            window,
            sent: Mutex::new(Slots::default()),
        }
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, Slots> {
        self.sent.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for a slot and takes it; `None` (nothing taken) when none frees up before `deadline`.
    pub(crate) async fn acquire(&self, deadline: Option<Instant>) -> Option<Slot> {
        loop {
            let wait = {
                let mut slots = self.slots();
                let now = Instant::now();
                let window = self.window;
                slots.taken.retain(|(_, t)| now.duration_since(*t) < window);
                if slots.taken.len() < self.limit {
                    let slot = slots.next;
                    slots.next += 1;
                    slots.taken.push_back((slot, now));
                    return Some(Slot(slot));
                }
                // The earliest stamp frees its slot one window later.
                let earliest = slots.taken.iter().map(|(_, t)| *t).min();
                earliest.map_or(Duration::ZERO, |t| t + window - now)
            };
            if deadline.is_some_and(|d| Instant::now() + wait > d) {
                return None;
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// The answer to `slot`'s request came: its window counts from now.
    pub(crate) fn answered(&self, slot: Slot) {
        let now = Instant::now();
        if let Some(entry) = self.slots().taken.iter_mut().find(|(n, _)| *n == slot.0) {
            entry.1 = now;
        }
    }

    /// Counts a 429 received anyway (another process of the same app, a quota Microsoft lowered): the window is
    /// taken as full from now, so the other tasks wait too instead of each meeting its own 429.
    pub(crate) fn throttled(&self) {
        let mut slots = self.slots();
        let now = Instant::now();
        let first = slots.next;
        slots.next += self.limit as u64;
        slots.taken = (first..slots.next).map(|n| (n, now)).collect();
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
pub(crate) fn pacer_for(client_id: &str, tenant_id: &str, class: QuotaClass) -> Arc<Pacer> {
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

/// Outlook allows 4 concurrent requests per app and mailbox (MICROSOFT_BEHAVIOUR.md); a fifth is answered 429.
pub const MAILBOX_CONCURRENCY: usize = 4;

/// The mailbox an Outlook request acts on (`/users/{mailbox}/sendMail`, `.../messages`, `.../mailboxSettings`),
/// lower-cased; `None` for any other request.
pub(crate) fn mailbox_of(path: &str) -> Option<String> {
    let lower = path.to_ascii_lowercase();
    let rest = lower.split("/users/").nth(1)?;
    let (mailbox, tail) = rest.split_once('/')?;
    let outlook = ["sendmail", "messages", "mailfolders", "mailboxsettings"]
        .iter()
        .any(|t| tail.starts_with(t));
    (outlook && !mailbox.is_empty()).then(|| mailbox.to_string())
}

/// The concurrency gate of an app's requests to one mailbox, shared by every task of the process: a request holds
/// one of [`MAILBOX_CONCURRENCY`] permits while it is in flight.
pub(crate) fn mailbox_gate(
    client_id: &str,
    tenant_id: &str,
    mailbox: &str,
) -> Arc<tokio::sync::Semaphore> {
    type GateKey = (String, String, String);
    static GATES: OnceLock<Mutex<HashMap<GateKey, Arc<tokio::sync::Semaphore>>>> = OnceLock::new();
    let key = (
        client_id.to_ascii_lowercase(),
        tenant_id.to_ascii_lowercase(),
        mailbox.to_ascii_lowercase(),
    );
    GATES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(key)
        .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(MAILBOX_CONCURRENCY)))
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outlook_requests_name_their_mailbox_and_others_do_not() {
        assert_eq!(
            mailbox_of("/v1.0/users/it.admin%40contoso.com/sendMail").as_deref(),
            Some("it.admin%40contoso.com")
        );
        assert_eq!(
            mailbox_of("/v1.0/users/ABC/mailboxSettings/userPurpose").as_deref(),
            Some("abc")
        );
        assert_eq!(mailbox_of("/v1.0/users/abc/assignLicense"), None);
        assert_eq!(mailbox_of("/v1.0/users"), None);
    }

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
            assert!(pacer.acquire(None).await.is_some());
        }
        assert_eq!(start.elapsed(), Duration::ZERO, "five go at once");
        assert!(pacer.acquire(None).await.is_some());
        assert_eq!(start.elapsed(), Duration::from_secs(10));
        let soon = Some(Instant::now() + Duration::from_secs(1));
        for _ in 0..4 {
            assert!(pacer.acquire(soon).await.is_some());
        }
        assert!(
            pacer.acquire(soon).await.is_none(),
            "no slot before the deadline: nothing taken, no wait"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_received_anyway_makes_everyone_wait_a_window() {
        let pacer = Pacer::new(5, Duration::from_secs(10));
        assert!(pacer.acquire(None).await.is_some());
        pacer.throttled();
        let start = Instant::now();
        assert!(pacer.acquire(None).await.is_some());
        assert_eq!(start.elapsed(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn a_slot_counts_from_its_answer_when_the_answer_is_slow() {
        let pacer = Pacer::new(1, Duration::from_secs(10));
        let start = Instant::now();
        let slot = pacer.acquire(None).await.expect("slot");
        // The answer takes 3 s: Microsoft may have counted the request as late as that.
        tokio::time::sleep(Duration::from_secs(3)).await;
        pacer.answered(slot);
        pacer.acquire(None).await.expect("slot");
        assert_eq!(start.elapsed(), Duration::from_secs(13));
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
