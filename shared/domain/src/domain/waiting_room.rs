//! The waiting room of Graph's beta `cloudLicensing` API: users assigned a licence while its pool had no seat free
//! wait there (`waitingMembers`, each with `waitingSinceDateTime`) instead of failing with CountViolation. One
//! finding per pool with anyone waiting: how many, since when, and the seats that would let them in.

use chrono::{DateTime, Utc};

use crate::domain::findings::{Detail, Finding, Severity};

/// A seat pool (an allotment) and when each of its waiting members started waiting.
#[derive(Debug, Clone, PartialEq)]
pub struct Pool {
    /// SKU id.
    pub sku_id: String,
    /// Part number.
    pub sku_part_number: String,
    /// Seats in the pool.
    pub allotted: i64,
    /// Seats assigned.
    pub consumed: i64,
    /// When each waiting member started waiting.
    pub waiting_since: Vec<DateTime<Utc>>,
}

/// A day of waiting is a new starter without a mailbox for a working day: critical from then on.
const CRITICAL_AFTER_HOURS: i64 = 24;

/// One `seat_waiting_room` finding per pool with someone waiting.
pub fn findings(pools: &[Pool], now: DateTime<Utc>) -> Vec<Finding> {
    pools
        .iter()
        .filter_map(|p| {
            let oldest = *p.waiting_since.iter().min()?;
            let longest_wait_hours = (now - oldest).num_hours().max(0);
            let free = (p.allotted - p.consumed).max(0);
            Some(Finding {
                severity: if longest_wait_hours >= CRITICAL_AFTER_HOURS {
                    Severity::Critical
                } else {
                    Severity::Warning
                },
                detail: Detail::SeatWaitingRoom {
                    sku_id: p.sku_id.clone(),
                    sku_part_number: p.sku_part_number.clone(),
                    waiting: p.waiting_since.len(),
                    waiting_since: oldest,
                    longest_wait_hours,
                    // The seats to buy so that everyone waiting gets one (those free are taken first).
                    seats_to_buy: (p.waiting_since.len() as i64 - free).max(0),
                },
                suppressed: None,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};

    #[test]
    fn a_pool_with_people_waiting_says_how_many_since_when_and_what_to_buy() {
        let now = Utc
            .with_ymd_and_hms(2026, 12, 7, 9, 0, 0)
            .single()
            .expect("t");
        let pools = vec![
            Pool {
                sku_id: "e3".into(),
                sku_part_number: "ENTERPRISEPACK".into(),
                allotted: 25,
                consumed: 24,
                waiting_since: vec![now - Duration::hours(30), now - Duration::hours(2)],
            },
            Pool {
                sku_id: "visio".into(),
                sku_part_number: "VISIOCLIENT".into(),
                allotted: 5,
                consumed: 5,
                waiting_since: vec![now - Duration::hours(3)],
            },
            Pool {
                sku_id: "empty".into(),
                sku_part_number: "X".into(),
                allotted: 5,
                consumed: 5,
                waiting_since: vec![],
            },
        ];
        let found = findings(&pools, now);
        assert_eq!(found.len(), 2, "nobody waits for the third");
        match &found[0].detail {
            Detail::SeatWaitingRoom {
                waiting,
                waiting_since,
                longest_wait_hours,
                seats_to_buy,
                ..
            } => {
                assert_eq!(
                    (*waiting, *longest_wait_hours, *seats_to_buy),
                    (2, 30, 1),
                    "one seat is free: one more to buy"
                );
                assert_eq!(*waiting_since, now - Duration::hours(30));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(found[0].severity, Severity::Critical, "over a day");
        assert_eq!(found[1].severity, Severity::Warning, "three hours");
    }
}
