//! Seat forecasts against the simulated tenant: a week of one new starter a day, then the warning (exact figures),
//! its alert, and the report's table.

use chrono::Duration;
use licensewatch_core::domain::findings::Detail;
use serde_json::json;

use crate::helpers::*;

/// Unlicensed members, one licensed a day.
const STARTERS: [&str; 7] = [
    "pradeep.gupta",
    "megan.bowen",
    "lee.gu",
    "isaiah.langer",
    "diego.siciliani",
    "lynne.robbins",
    "teacher11",
];

#[tokio::test]
async fn a_week_of_new_starters_forecasts_when_e3_runs_out_and_what_to_buy() {
    let env = TestEnv::spawn().await;
    let state = env.get("/_sim/state").await;
    let consumed = state["skus"]
        .as_array()
        .expect("skus")
        .iter()
        .find(|k| k["sku_id"] == E3)
        .and_then(|k| k["consumed"].as_i64())
        .expect("E3");
    env.control(
        &format!("/_sim/skus/{E3}/seats"),
        json!({"enabled": consumed + 20}),
    )
    .await;
    let forecasts = |r: &licensewatch_core::usecases::check_licenses::CheckReport| {
        r.findings
            .iter()
            .filter(|f| matches!(f.detail, Detail::SeatForecast { .. }))
            .cloned()
            .collect::<Vec<_>>()
    };
    let first = env.check().await;
    assert!(forecasts(&first).is_empty());
    for day in 1..=STARTERS.len() {
        let starter = STARTERS[day - 1];
        let status = env
            .control(
                &format!("/_sim/users/{}/licenses", upn(starter)),
                json!({"add": [{"sku_id": E3}]}),
            )
            .await;
        assert_eq!(status, 200, "{starter}");
        env.advance(Duration::days(1)).await;
        let report = env.check().await;
        let found = forecasts(&report);
        if day < 7 {
            assert!(
                found.is_empty(),
                "day {day}: less than a week of history: {found:?}"
            );
            continue;
        }
        // One a day for a week, 13 seats free: they last 13 days, one short of the 14-day horizon.
        assert_eq!(found.len(), 1, "{found:?}");
        match &found[0].detail {
            Detail::SeatForecast {
                sku_id,
                available,
                rate_per_day,
                days_until_exhausted,
                exhausted_at,
                seats_to_buy,
                horizon_days,
                ..
            } => {
                assert_eq!(sku_id, E3);
                assert_eq!(
                    (
                        *available,
                        *rate_per_day,
                        *days_until_exhausted,
                        *seats_to_buy,
                        *horizon_days
                    ),
                    (13, 1.0, 13, 1, 14)
                );
                assert_eq!(*exhausted_at, env.now() + Duration::days(13));
            }
            other => panic!("{other:?}"),
        }
    }
    let alerts = env
        .rt
        .store
        .open_alerts(&env.sim.tenant_id)
        .await
        .expect("alerts");
    let alert = alerts
        .iter()
        .find(|a| a.condition == format!("seats_running_out:{E3}"))
        .expect("the seats-running-out alert");
    assert!(
        alert.summary.contains("buy 1 to last 14 days"),
        "{}",
        alert.summary
    );
}

/// Exchange Online (Plan 1): ten seats, none assigned; the "Kiosk Exchange Plan 1" group assigns it.
const EXCHANGE_P1: &str = "4b9405b0-7788-4568-add1-99614e613b69";
const KIOSK_GROUP: &str = "c7a1f1a2-0a4e-4d1c-9a3e-000000000f02";

#[tokio::test]
async fn a_licensing_group_that_grows_is_named_as_what_drives_the_forecast() {
    let env = TestEnv::spawn().await;
    env.check().await;
    for starter in STARTERS {
        let status = env
            .control(
                &format!("/_sim/groups/{KIOSK_GROUP}/members"),
                json!({"add": [upn(starter)]}),
            )
            .await;
        assert!(status < 300, "{starter}: {status}");
        env.advance(Duration::days(1)).await;
        env.check().await;
    }
    // A quiet day more: the group's week of history (it had no seat to sample before its first member).
    env.advance(Duration::days(1)).await;
    let report = env.check().await;
    let forecast = report
        .findings
        .iter()
        .find_map(|f| match &f.detail {
            Detail::SeatForecast {
                sku_id,
                by_group,
                rate_per_day,
                days_until_exhausted,
                ..
            } if sku_id == EXCHANGE_P1 => {
                Some((by_group.clone(), *rate_per_day, *days_until_exhausted))
            }
            _ => None,
        })
        .expect("Exchange Online (Plan 1) runs out: seven of ten taken in a week");
    let (by_group, rate, days) = forecast;
    assert_eq!((rate, days), (0.88, 3), "seven in eight days, three left");
    assert_eq!(by_group.len(), 1, "{by_group:?}");
    let g = &by_group[0];
    // The group had no seat before its first member (nothing to sample): its trend starts at one, 7 days back.
    assert_eq!(
        (
            g.group_id.as_str(),
            g.assigned,
            g.net_change,
            g.rate_per_day
        ),
        (KIOSK_GROUP, 7, 6, 0.86)
    );
    let json = of_kind(&report, "seat_forecast");
    assert!(
        json.iter()
            .any(|f| f["by_group"][0]["group_id"] == KIOSK_GROUP),
        "{json:?}"
    );
}
