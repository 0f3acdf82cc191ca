//! The time a run must be done by: a Lambda invocation's remaining time (less a margin to record what was done),
//! or `licensewatch audit-fetch --max-seconds`. Set around a whole invocation, read where a use case's ports are
//! assembled, so that every tenant run of the invocation stops in time and the next invocation resumes.

use std::future::Future;
use std::time::{Duration, Instant};

tokio::task_local! {
    static DEADLINE: Instant;
}

/// Runs `work` with `deadline` as the run's deadline.
pub async fn within<F: Future>(deadline: Instant, work: F) -> F::Output {
    DEADLINE.scope(deadline, work).await
}

/// The deadline of the run in progress, if it has one.
pub fn current() -> Option<Instant> {
    DEADLINE.try_with(|d| *d).ok()
}

/// A Lambda invocation's deadline (milliseconds since the epoch, as the runtime API gives it) as an instant of this
/// process, `margin` earlier: the time left to record what was done and answer.
pub fn from_epoch_millis(deadline_ms: u64, margin: Duration) -> Instant {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let left = Duration::from_millis(deadline_ms.saturating_sub(now_ms));
    Instant::now() + left.saturating_sub(margin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_deadline_is_seen_inside_the_run_only() {
        assert_eq!(current(), None);
        let d = Instant::now() + Duration::from_secs(60);
        assert_eq!(within(d, async { current() }).await, Some(d));
        assert_eq!(current(), None);
    }

    #[test]
    fn a_lambda_deadline_leaves_the_margin() {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let d = from_epoch_millis(now_ms + 900_000, Duration::from_secs(60));
        let left = d.saturating_duration_since(Instant::now());
        assert!(
            left <= Duration::from_secs(840) && left > Duration::from_secs(835),
            "{left:?}"
        );
    }
}
