//! Seat forecasts: when a SKU runs out at the recent rate of assignments, before group-based licensing starts
//! failing with CountViolation.
//!
//! The method, said with every answer: the net change of assigned seats (`consumedUnits`) from the last sample at or
//! before the window's start (default 30 days back) to the latest, divided by the days between them. Net, so that
//! removals count against onboarding, and over a window, so that a bulk onboarding counts once at its weight in the
//! month rather than as a trend. Seats bought during the window change the seats free now, not the rate. Fewer than
//! `min_history_days` of samples give an honest "not enough history", never a guess.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// One run's seat counts for one SKU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeatPoint {
    /// When the run read them.
    pub at: DateTime<Utc>,
    /// Enabled seats.
    pub enabled: i64,
    /// Assigned seats.
    pub consumed: i64,
}

/// The forecast's knobs (`[check] forecast_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForecastRules {
    /// How far back the rate is measured.
    pub window_days: i64,
    /// The least history that gives a rate.
    pub min_history_days: i64,
    /// Warn when the seats run out sooner than this.
    pub horizon_days: i64,
}

impl Default for ForecastRules {
    fn default() -> Self {
        Self {
            window_days: 30,
            min_history_days: 7,
            horizon_days: 14,
        }
    }
}

/// What the history says about a SKU.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outlook", rename_all = "snake_case")]
pub enum Forecast {
    /// Too little history for a rate.
    NotEnoughHistory {
        /// Days between the oldest and the newest sample.
        days_of_history: f64,
        /// Days needed.
        needed_days: i64,
    },
    /// Assignments are flat or falling: no exhaustion in sight.
    NotGrowing {
        /// Net change over the window.
        net_change: i64,
        /// The measured span.
        from: DateTime<Utc>,
        /// Its end.
        to: DateTime<Utc>,
    },
    /// At the rate, the free seats last `days_left` days.
    Exhausts {
        /// Seats assigned per day, net.
        rate_per_day: f64,
        /// Net change over the span.
        net_change: i64,
        /// The measured span.
        from: DateTime<Utc>,
        /// Its end (the latest sample).
        to: DateTime<Utc>,
        /// Seats free now.
        free: i64,
        /// Whole days until none is free (0: less than a day).
        days_left: i64,
        /// When, at the rate.
        exhausted_at: DateTime<Utc>,
        /// Seats to buy so the horizon is covered at the rate (0 when it already is).
        seats_to_buy: i64,
    },
}

impl Forecast {
    /// One sentence on how the answer was reached.
    pub fn method(rules: &ForecastRules) -> String {
        format!(
            "net change of assigned seats over the last {} days (from the last run at or before the window's start to the latest), per day; at least {} days of history",
            rules.window_days, rules.min_history_days
        )
    }

    /// True when the seats run out within the horizon.
    pub fn within(&self, horizon_days: i64) -> bool {
        matches!(self, Forecast::Exhausts { days_left, .. } if *days_left <= horizon_days)
    }
}

/// The forecast for one SKU from its samples (any order) at `now`.
pub fn forecast(points: &[SeatPoint], now: DateTime<Utc>, rules: &ForecastRules) -> Forecast {
    let mut points: Vec<SeatPoint> = points.iter().copied().filter(|p| p.at <= now).collect();
    points.sort_by_key(|p| p.at);
    let (Some(first), Some(last)) = (points.first().copied(), points.last().copied()) else {
        return Forecast::NotEnoughHistory {
            days_of_history: 0.0,
            needed_days: rules.min_history_days,
        };
    };
    let start = last.at - Duration::days(rules.window_days);
    // The last sample at or before the window's start, else the oldest within it.
    let base = points
        .iter()
        .rev()
        .find(|p| p.at <= start)
        .copied()
        .unwrap_or(first);
    let span_days = (last.at - base.at).num_seconds() as f64 / 86_400.0;
    if span_days < rules.min_history_days as f64 {
        return Forecast::NotEnoughHistory {
            days_of_history: ((last.at - first.at).num_seconds() as f64 / 86_400.0 * 10.0).round()
                / 10.0,
            needed_days: rules.min_history_days,
        };
    }
    let net_change = last.consumed - base.consumed;
    if net_change <= 0 {
        return Forecast::NotGrowing {
            net_change,
            from: base.at,
            to: last.at,
        };
    }
    let rate = net_change as f64 / span_days;
    let free = (last.enabled - last.consumed).max(0);
    let days = free as f64 / rate;
    let needed = (rate * rules.horizon_days as f64).ceil() as i64;
    Forecast::Exhausts {
        rate_per_day: (rate * 100.0).round() / 100.0,
        net_change,
        from: base.at,
        to: last.at,
        free,
        days_left: days.floor() as i64,
        exhausted_at: last.at + Duration::seconds((days * 86_400.0) as i64),
        seats_to_buy: (needed - free).max(0),
    }
}

/// `seat_forecast` for each SKU whose free seats run out within the horizon. `history`: each SKU's earlier samples;
/// `skus`: this run's counts (the newest sample); `commerce`: the subscriptions, for the renewal date.
pub fn findings(
    skus: &[crate::domain::snapshot::SkuSnap],
    history: &[(String, SeatPoint)],
    commerce: &[crate::domain::snapshot::CommerceSnap],
    rules: &ForecastRules,
    now: DateTime<Utc>,
) -> Vec<crate::domain::findings::Finding> {
    use crate::domain::findings::{Detail, Finding, Severity};
    skus.iter()
        // An exhausted SKU is `sku_capacity`'s; a SKU without seats is nobody's.
        .filter(|s| s.enabled > 0 && s.available() > 0)
        .filter_map(|s| {
            let mut points: Vec<SeatPoint> = history
                .iter()
                .filter(|(id, _)| id.eq_ignore_ascii_case(&s.sku_id))
                .map(|(_, p)| *p)
                .collect();
            points.push(SeatPoint {
                at: now,
                enabled: s.enabled,
                consumed: s.consumed,
            });
            let Forecast::Exhausts {
                rate_per_day,
                days_left,
                exhausted_at,
                seats_to_buy,
                ..
            } = forecast(&points, now, rules)
            else {
                return None;
            };
            (days_left <= rules.horizon_days).then(|| Finding {
                severity: if days_left <= 3 {
                    Severity::Critical
                } else {
                    Severity::Warning
                },
                detail: Detail::SeatForecast {
                    sku_id: s.sku_id.clone(),
                    sku_part_number: s.part_number.clone(),
                    enabled: s.enabled,
                    consumed: s.consumed,
                    available: s.available(),
                    rate_per_day,
                    days_until_exhausted: days_left,
                    exhausted_at,
                    seats_to_buy,
                    horizon_days: rules.horizon_days,
                    method: Forecast::method(rules),
                    renewal_at: commerce
                        .iter()
                        .filter(|c| {
                            c.sku_id.eq_ignore_ascii_case(&s.sku_id) && c.status == "Enabled"
                        })
                        .filter_map(|c| c.next_lifecycle)
                        .min(),
                    by_group: Vec::new(),
                },
                suppressed: None,
            })
        })
        .collect()
}

/// Seats of a SKU that a licensing group assigns, at one run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct GroupSeats {
    /// The group.
    pub group_id: String,
    /// The SKU.
    pub sku_id: String,
    /// Members holding the SKU through the group (a member in error holds no seat).
    pub assigned: i64,
}

/// Each (group, SKU)'s seats held through the group in `users`, sorted.
pub fn group_seats(users: &crate::domain::snapshot::Users) -> Vec<GroupSeats> {
    use crate::domain::assignment::AssignmentState;
    let mut counts: std::collections::BTreeMap<(&str, &str), i64> = Default::default();
    for u in users.iter() {
        for s in u.states() {
            let holds = matches!(
                s.state,
                AssignmentState::Active | AssignmentState::ActiveWithError
            );
            if let (Some(group), true) = (s.group, holds) {
                *counts.entry((group, s.sku_id)).or_default() += 1;
            }
        }
    }
    counts
        .into_iter()
        .map(|((group, sku), assigned)| GroupSeats {
            group_id: group.to_string(),
            sku_id: sku.to_string(),
            assigned,
        })
        .collect()
}

use crate::domain::findings::GroupTrend;

/// The groups' share of a SKU's trend: each group's seats measured as the SKU's are (same window, same base
/// sample), those that moved, growing first. `history`: (group, SKU, sample) of earlier runs; `now`: this run's.
pub fn group_trends(
    sku_id: &str,
    history: &[(String, String, SeatPoint)],
    now_seats: &[GroupSeats],
    names: &std::collections::HashMap<String, String>,
    rules: &ForecastRules,
    now: DateTime<Utc>,
) -> Vec<GroupTrend> {
    let mut out: Vec<GroupTrend> = now_seats
        .iter()
        .filter(|g| g.sku_id.eq_ignore_ascii_case(sku_id))
        .filter_map(|g| {
            let mut points: Vec<SeatPoint> = history
                .iter()
                .filter(|(group, sku, _)| *group == g.group_id && sku.eq_ignore_ascii_case(sku_id))
                .map(|(_, _, p)| *p)
                .collect();
            points.push(SeatPoint {
                at: now,
                enabled: 0,
                consumed: g.assigned,
            });
            let (net_change, rate_per_day) = match forecast(&points, now, rules) {
                Forecast::Exhausts {
                    net_change,
                    rate_per_day,
                    ..
                } => (net_change, rate_per_day),
                Forecast::NotGrowing {
                    net_change,
                    from,
                    to,
                } => {
                    let days = ((to - from).num_seconds() as f64 / 86_400.0).max(1.0);
                    (
                        net_change,
                        (net_change as f64 / days * 100.0).round() / 100.0,
                    )
                }
                Forecast::NotEnoughHistory { .. } => return None,
            };
            (net_change != 0).then(|| GroupTrend {
                group_id: g.group_id.clone(),
                group_name: names.get(&g.group_id).filter(|n| !n.is_empty()).cloned(),
                assigned: g.assigned,
                net_change,
                rate_per_day,
            })
        })
        .collect();
    out.sort_by(|a, b| {
        b.net_change
            .cmp(&a.net_change)
            .then(a.group_id.cmp(&b.group_id))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-01T09:00:00Z")
            .expect("time")
            .to_utc()
    }

    /// One sample a day for `days + 1` days: `(enabled, consumed)` of day `d`.
    fn daily(days: i64, f: impl Fn(i64) -> (i64, i64)) -> Vec<SeatPoint> {
        (0..=days)
            .map(|d| {
                let (enabled, consumed) = f(d);
                SeatPoint {
                    at: t0() + Duration::days(d),
                    enabled,
                    consumed,
                }
            })
            .collect()
    }

    fn now(days: i64) -> DateTime<Utc> {
        t0() + Duration::days(days)
    }

    fn exhausts(f: &Forecast) -> (f64, i64, i64, i64) {
        match f {
            Forecast::Exhausts {
                rate_per_day,
                free,
                days_left,
                seats_to_buy,
                ..
            } => (*rate_per_day, *free, *days_left, *seats_to_buy),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn steady_growth_runs_out_when_the_free_seats_are_used_at_the_rate() {
        // One new starter a day for 30 days: 100 assigned of 110.
        let f = forecast(
            &daily(30, |d| (110, 70 + d)),
            now(30),
            &ForecastRules::default(),
        );
        assert_eq!(exhausts(&f), (1.0, 10, 10, 4));
        assert!(f.within(14));
        match f {
            Forecast::Exhausts { exhausted_at, .. } => assert_eq!(exhausted_at, now(40)),
            _ => unreachable!(),
        }
    }

    #[test]
    fn a_bulk_onboarding_counts_at_its_weight_in_the_window() {
        // Flat at 70, then 30 new starters on day 20: the month's rate is 1 a day, 10 seats left.
        let f = forecast(
            &daily(30, |d| (110, if d < 20 { 70 } else { 100 })),
            now(30),
            &ForecastRules::default(),
        );
        assert_eq!(exhausts(&f), (1.0, 10, 10, 4));
    }

    #[test]
    fn seats_bought_mid_way_change_what_is_free_not_the_rate() {
        // Two a day; 50 seats bought on day 15.
        let f = forecast(
            &daily(30, |d| (if d < 15 { 100 } else { 150 }, 60 + 2 * d)),
            now(30),
            &ForecastRules::default(),
        );
        assert_eq!(exhausts(&f), (2.0, 30, 15, 0));
        assert!(!f.within(14), "15 days cover a 14-day horizon");
    }

    #[test]
    fn removals_count_against_onboarding() {
        // 18 joiners, then 23 leavers: no exhaustion in sight.
        let f = forecast(
            &daily(30, |d| {
                (110, if d < 10 { 80 + 2 * d } else { 95 - (d - 10) })
            }),
            now(30),
            &ForecastRules::default(),
        );
        assert!(
            matches!(f, Forecast::NotGrowing { net_change: -5, .. }),
            "{f:?}"
        );
        // Fewer leavers than joiners: the net rate.
        let f = forecast(
            &daily(30, |d| (110, 70 + d - d / 3)),
            now(30),
            &ForecastRules::default(),
        );
        let (rate, free, days, buy) = exhausts(&f);
        assert_eq!((rate, free, days, buy), (0.67, 20, 30, 0));
    }

    #[test]
    fn little_history_is_said_not_guessed() {
        let f = forecast(
            &daily(3, |d| (110, 100 + d)),
            now(3),
            &ForecastRules::default(),
        );
        assert_eq!(
            f,
            Forecast::NotEnoughHistory {
                days_of_history: 3.0,
                needed_days: 7
            }
        );
        assert!(matches!(
            forecast(&[], now(0), &ForecastRules::default()),
            Forecast::NotEnoughHistory { .. }
        ));
    }

    #[test]
    fn hourly_runs_give_the_same_answer_as_daily_ones() {
        let hourly: Vec<SeatPoint> = (0..=30 * 24)
            .map(|h| SeatPoint {
                at: t0() + Duration::hours(h),
                enabled: 110,
                consumed: 70 + h / 24,
            })
            .collect();
        let f = forecast(&hourly, now(30), &ForecastRules::default());
        assert_eq!(exhausts(&f), (1.0, 10, 10, 4));
    }

    #[test]
    fn each_licensing_group_s_trend_is_measured_as_the_sku_s_growing_first() {
        let now = t0() + Duration::days(10);
        let mut history = Vec::new();
        for d in 0..10 {
            let at = t0() + Duration::days(d);
            let p = |consumed| SeatPoint {
                at,
                enabled: 0,
                consumed,
            };
            history.push(("staff".to_string(), "e3".to_string(), p(20 + d)));
            history.push(("interns".to_string(), "e3".to_string(), p(10 - d / 3)));
            history.push(("board".to_string(), "e3".to_string(), p(5)));
            history.push(("staff".to_string(), "visio".to_string(), p(d)));
        }
        let seats = |group: &str, sku: &str, assigned| GroupSeats {
            group_id: group.into(),
            sku_id: sku.into(),
            assigned,
        };
        let now_seats = vec![
            seats("staff", "e3", 30),
            seats("interns", "e3", 7),
            seats("board", "e3", 5),
            seats("staff", "visio", 10),
        ];
        let names =
            std::collections::HashMap::from([("staff".to_string(), "All staff".to_string())]);
        let trends = group_trends(
            "e3",
            &history,
            &now_seats,
            &names,
            &ForecastRules::default(),
            now,
        );
        let seen: Vec<(&str, Option<&str>, i64, i64, f64)> = trends
            .iter()
            .map(|g| {
                (
                    g.group_id.as_str(),
                    g.group_name.as_deref(),
                    g.assigned,
                    g.net_change,
                    g.rate_per_day,
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("staff", Some("All staff"), 30, 10, 1.0),
                ("interns", None, 7, -3, -0.3),
            ],
            "the flat group is left out; only E3's groups"
        );
    }
}
