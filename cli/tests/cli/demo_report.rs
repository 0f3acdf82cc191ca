//! `licensewatch demo` runs its whole story in a real process, and `licensewatch report` turns the state it leaves
//! into a page that headless Chromium renders.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use crate::common;

fn licensewatch() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_licensewatch"));
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    c.current_dir(std::env::temp_dir());
    c
}

fn demo(args: &[&str]) -> Value {
    let out = licensewatch()
        .args(["demo", "--json"])
        .args(args)
        .output()
        .expect("demo runs");
    assert!(
        out.status.success(),
        "demo failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("--json prints one JSON document")
}

fn upns(list: &Value) -> Vec<String> {
    list.as_array()
        .expect("array")
        .iter()
        .map(|o| o["user_principal_name"].as_str().expect("upn").to_string())
        .collect()
}

fn events<'a>(out: &'a Value, kind: &str) -> Vec<(i64, &'a Value)> {
    let mut found = Vec::new();
    for day in out["timeline"].as_array().expect("timeline") {
        for e in day["events"].as_array().expect("events") {
            if e["type"] == kind {
                found.push((day["day"].as_i64().expect("day"), e));
            }
        }
    }
    found
}

#[test]
fn the_demo_tells_the_whole_story_in_under_a_minute() {
    let out = demo(&[]);
    assert_eq!(out["days"], 35);
    assert!(
        out["elapsed_ms"].as_u64().expect("elapsed") < 60_000,
        "the demo must finish within a minute"
    );

    // The never-licensed migrated mailboxes are found on day 0 with their deadlines.
    let opened = events(&out, "grace_case_opened");
    let first_day: Vec<&str> = opened
        .iter()
        .filter(|(d, _)| *d == 0)
        .map(|(_, e)| e["user_principal_name"].as_str().expect("upn"))
        .collect();
    for who in ["megan.bowen", "lee.gu", "teacher11", "teacher12"] {
        assert!(
            first_day.iter().any(|u| u.starts_with(who)),
            "{who} is not found on day 0: {first_day:?}"
        );
    }

    // The group-licensing error and its real cause.
    let groups = out["group_errors"].as_array().expect("groups");
    let other = groups
        .iter()
        .find(|g| g["error"] == "Other")
        .expect("the 'Other' error of the faculty group");
    assert_eq!(other["cause"], "CountViolation on STANDARDWOFFPACK_FACULTY");
    assert!(groups.iter().any(|g| g["error"] == "CountViolation"));

    // A signed webhook from the ticketing system is accepted; Microsoft processes the reprocess asynchronously, so
    // it is pending until the next day's license-check sees the licences applied.
    let hooks = events(&out, "webhook_received");
    assert_eq!(hooks.len(), 2);
    assert!(hooks.iter().all(|(_, e)| e["http_status"] == 202));
    let done = events(&out, "remediation_done");
    assert_eq!(done.len(), 2);
    assert!(done.iter().all(|(_, e)| e["status"] == "pending"));
    let confirmed = events(&out, "remediation_confirmed");
    assert_eq!(confirmed.len(), 2);
    assert!(
        confirmed
            .iter()
            .all(|(day, e)| e["status"] == "succeeded" && *day == done[0].0 + 1)
    );
    // The requests came from the service desk's incidents, which licensewatch had opened for the teachers' cases:
    // one incident per case or alert; each teacher's carries both outcomes and is resolved once the licence is back.
    assert!(
        hooks
            .iter()
            .all(|(_, e)| e["incident"].as_str().is_some_and(|n| n.starts_with("INC")))
    );
    let desk = out["service_desk"].as_array().expect("service desk");
    let correlations: std::collections::BTreeSet<&str> = desk
        .iter()
        .filter_map(|i| i["correlation_id"].as_str())
        .collect();
    assert_eq!(
        correlations.len(),
        desk.len(),
        "one incident per case: {desk:?}"
    );
    for who in ["teacher11", "teacher12"] {
        let incident = desk
            .iter()
            .find(|i| {
                i["short_description"]
                    .as_str()
                    .is_some_and(|d| d.contains(who))
            })
            .expect(who);
        assert_eq!(incident["state"], "6", "{who}: resolved");
        let notes: Vec<&str> = incident["work_notes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| n.as_str())
            .collect();
        for status in ["pending", "succeeded"] {
            assert_eq!(
                notes
                    .iter()
                    .filter(|n| n.contains(&format!(": {status} (remediation")))
                    .count(),
                1,
                "{who}: the {status} outcome once: {notes:?}"
            );
        }
    }
    let records = out["remediations"].as_array().expect("remediations");
    assert!(
        records.iter().all(|r| r["status"] == "succeeded"),
        "{records:?}"
    );

    // The teachers are saved before their deadline; megan and lee are lost because nobody acted.
    let saved = upns(&out["saved"]);
    assert_eq!(
        saved,
        [
            "teacher11@contoso.onmicrosoft.com",
            "teacher12@contoso.onmicrosoft.com"
        ]
    );
    for s in out["saved"].as_array().expect("saved") {
        let day = s["day"].as_i64().expect("day");
        let ends =
            chrono::DateTime::parse_from_rfc3339(s["access_ends_at"].as_str().expect("ends"))
                .expect("time");
        let start = chrono::DateTime::parse_from_rfc3339(out["start"].as_str().expect("start"))
            .expect("start");
        assert!(
            start + chrono::Duration::days(day) < ends,
            "saved after the deadline: {s}"
        );
    }
    let lost = upns(&out["lost"]);
    assert!(lost.contains(&"megan.bowen@contoso.onmicrosoft.com".to_string()));
    assert!(lost.contains(&"lee.gu@contoso.onmicrosoft.com".to_string()));
    assert!(
        !lost.iter().any(|u| u.starts_with("teacher")),
        "a saved mailbox is never lost"
    );

    // Admins were told at each threshold before megan's access ended, once per threshold.
    let megan: Vec<i64> = events(&out, "notice_sent")
        .iter()
        .filter(|(_, e)| {
            e["user_principal_name"] == "megan.bowen@contoso.onmicrosoft.com"
                && e["audience"] == "admin"
                && e["kind"] == "threshold"
                && e["channel"] == "mail"
        })
        .filter(|(d, _)| *d <= 2)
        .map(|(_, e)| e["threshold_days"].as_i64().expect("threshold"))
        .collect();
    assert_eq!(megan, [3, 1, 0], "3-, 1- and 0-day warnings, once each");
    assert!(
        events(&out, "notice_sent")
            .iter()
            .any(
                |(_, e)| e["user_principal_name"] == "megan.bowen@contoso.onmicrosoft.com"
                    && e["kind"] == "access_gone"
            ),
        "the admins are told when access is gone"
    );
    assert!(out["mail_recorded"].as_u64().expect("mail") > 0);
    assert!(out["audit_records_archived"].as_u64().expect("audit") > 0);
    // The month-end review: the story's unused licences, by reason.
    assert_eq!(out["reclaim"]["inactive"], 2, "{}", out["reclaim"]);
    assert_eq!(out["reclaim"]["never_used"], 1, "{}", out["reclaim"]);
    assert_eq!(out["reclaim"]["disabled"], 1, "{}", out["reclaim"]);
    // Real time: 400 users delicensed on the second tenant, one alert mail within seconds of the change.
    let rt = &out["realtime"];
    assert_eq!(rt["users_removed"], 400, "{rt}");
    // All 400 unless a notification batch came after the gathering wait (then the alert left with the first part).
    let rechecked = rt["users_rechecked"].as_u64().expect("n");
    assert!((50..=400).contains(&rechecked), "{rt}");
    assert!(
        rt["notifications_delivered"].as_u64().expect("n") >= 400,
        "{rt}"
    );
    assert_eq!(rt["alert_mails"], 1, "{rt}");
    assert!(rt["alert_after_ms"].as_u64().expect("ms") < 5_000, "{rt}");
}

#[test]
fn the_report_from_the_demo_state_is_complete_and_renders_in_chromium() {
    let dir = tempfile::tempdir().expect("tmp");
    let state: PathBuf = dir.path().join("state");
    let out = demo(&["--state-dir", state.to_str().expect("utf-8")]);
    let tenant = out["tenant_id"].as_str().expect("tenant").to_string();

    // `licensewatch report` reads the state the demo left, configured like any other run.
    let html = dir.path().join("report.html");
    let csv = dir.path().join("csv");
    let run = licensewatch()
        .args(["report", "--html"])
        .arg(&html)
        .arg("--csv")
        .arg(&csv)
        .env("LICENSEWATCH_TENANT_ID", &tenant)
        .env(
            "LICENSEWATCH_CLIENT_ID",
            "0f0f0f0f-1111-2222-3333-444455556666",
        )
        .env("LICENSEWATCH_CLIENT_SECRET", "not-used-by-report")
        .env(
            "LICENSEWATCH_STATE",
            format!("sqlite:{}", state.join("state.db").display()),
        )
        .env("LICENSEWATCH_NOW", "2026-12-26T09:00:00Z")
        .output()
        .expect("report runs");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let page = std::fs::read_to_string(&html).expect("html");

    for id in [
        "summary",
        "grace_cases",
        "license_errors",
        "sku_capacity",
        "review",
        "capacity-chart",
        "license_changes",
        "changes-chart",
        "unexplained_changes",
        "reclaim",
        "audit_gaps",
    ] {
        assert!(
            page.contains(&format!("id=\"{id}\"")),
            "the page lacks #{id}"
        );
    }
    for remote in ["http://", "https://", "<script", "<link", "@import", "url("] {
        assert!(
            !page.contains(remote),
            "the page loads a remote resource ({remote})"
        );
    }
    // The demo's end state is on the page: the faculty group was fixed, the kiosk group's conflict was not, and
    // diego (cut off on day 20) still counts down to the deletion of his data.
    assert!(
        !page.contains("Faculty A1 licensing"),
        "a fixed group error is not reported"
    );
    assert!(page.contains("Kiosk Exchange Plan 1"));
    assert!(page.contains("MutuallyExclusiveViolation"));
    assert!(page.contains("diego.siciliani@contoso.onmicrosoft.com"));
    assert!(page.contains("STANDARDWOFFPACK_FACULTY"));
    // The review table: the story's A1 holders paying twice, and its lapsing EMS subscription.
    assert!(
        page.contains("overlapping_licenses") && page.contains("remove STANDARDWOFFPACK_FACULTY")
    );
    assert!(page.contains("subscription_lapsing"));
    assert!(
        page.contains("johanna.lorenz@contoso.onmicrosoft.com") && page.contains("no sign-in for"),
        "the reclamation the demo ran is on the page"
    );
    assert!(
        page.matches("<rect class=\"added\"").count() >= 1,
        "the chart shows the teachers' new licences"
    );
    for table in [
        "grace_cases",
        "license_errors",
        "sku_capacity",
        "license_changes",
        "unexplained_changes",
        "reclaim",
        "idle_seats",
        "audit_gaps",
    ] {
        let text = std::fs::read_to_string(csv.join(format!("{table}.csv")))
            .unwrap_or_else(|e| panic!("{table}.csv: {e}"));
        assert!(text.lines().count() >= 1, "{table}.csv has a header");
    }
    // 35 days with few directory changes leave no false gap: the directory-audit cursor moves on quiet days.
    let gaps = std::fs::read_to_string(csv.join("audit_gaps.csv")).expect("csv");
    assert_eq!(gaps.lines().count(), 1, "no audit gap: {gaps}");
    assert!(page.contains("No gap"));
    let changes = std::fs::read_to_string(csv.join("license_changes.csv")).expect("csv");
    assert_eq!(
        changes.lines().count(),
        37,
        "a header and one row per simulated day"
    );

    let png = dir.path().join("report.png");
    common::screenshot(&html, &png, &dir.path().join("chromium-profile"));
    let (share, colours) = common::ink(&png);
    assert!(
        share > 0.05,
        "the screenshot is nearly blank ({share:.3} inked)"
    );
    assert!(
        colours > 8,
        "the screenshot has too few colours ({colours})"
    );
}
