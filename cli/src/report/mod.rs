//! `licensewatch report --html FILE [--csv DIR]`: one self-contained page from the state store, worth sending to a
//! manager: open grace cases with their countdown, licence errors by group with their causes, SKU capacity, licence
//! changes over time, unexplained changes and audit-archive health. No remote scripts, styles or fonts; inline SVG
//! charts; readable printed and on a phone. The CSV files hold the same tables.

mod fleet;
mod html;
mod tables;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use chrono::{DateTime, Utc};
pub(crate) use html::render;
use licensewatch_core::domain::findings::Detail;
use licensewatch_core::ports::store::{Gap, GraceCase, RunRecord};
use licensewatch_core::runtime::Runtime;
use licensewatch_core::time_zone::TimeZone;
pub(crate) use tables::{Table, tables};
use tables::{added_removed, day, days_left, latest};

/// How many runs the charts cover.
const RUNS: usize = 120;

/// Everything the report shows.
#[derive(Debug, Clone)]
pub(crate) struct ReportData {
    /// Tenant.
    pub tenant_id: String,
    /// "Now".
    pub generated_at: DateTime<Utc>,
    /// The tenant's time zone (`[[tenants]].time_zone`, `[tenant].time_zone`): dates are shown in it.
    pub time_zone: TimeZone,
    /// Open grace cases.
    pub cases: Vec<GraceCase>,
    /// license-check runs, oldest first.
    pub runs: Vec<RunRecord>,
    /// Audit-archive gaps.
    pub gaps: Vec<Gap>,
    /// Licence events derived from the audit logs.
    pub license_events: usize,
    /// The newest reclamation report (`licensewatch reclaim`), if any.
    pub reclaim: Option<licensewatch_core::domain::reclaim::ReclaimReport>,
    /// Each SKU's seat counts over the forecast window (and a day).
    pub seats: Vec<licensewatch_core::ports::store::SeatSample>,
    /// The forecast's window and horizon (`[check] forecast_*`).
    pub forecast: licensewatch_core::domain::forecast::ForecastRules,
}

/// Reads the report's data from the runtime's store.
pub(crate) async fn load(rt: &Runtime) -> Result<ReportData, String> {
    let tenant = rt.tenant_run().tenant_id;
    let store = rt.store.as_ref();
    let err = |e: licensewatch_core::ports::store::StoreError| e.to_string();
    let mut cases = store.grace_cases(&tenant, true).await.map_err(err)?;
    cases.sort_by_key(|c| c.deadlines.access_ends_at);
    Ok(ReportData {
        generated_at: rt.clock.now(),
        time_zone: rt.time_zone.clone(),
        cases,
        runs: store.runs(&tenant, RUNS).await.map_err(err)?,
        gaps: rt.audit_state.gaps().await.map_err(err)?,
        license_events: store
            .license_events(&tenant, None)
            .await
            .map_err(err)?
            .len(),
        reclaim: store.latest_reclaim(&tenant).await.map_err(err)?,
        seats: store
            .seat_history(
                &tenant,
                rt.clock.now()
                    - chrono::Duration::days(i64::from(rt.policy.check.forecast_window_days) + 1),
            )
            .await
            .map_err(err)?
            .into_iter()
            .filter(|s| s.group_id.is_none())
            .collect(),
        forecast: licensewatch_core::domain::forecast::ForecastRules {
            window_days: i64::from(rt.policy.check.forecast_window_days),
            horizon_days: i64::from(rt.policy.check.forecast_horizon_days),
            ..Default::default()
        },
        tenant_id: tenant,
    })
}

/// `licensewatch report --all-tenants`: the fleet page and each tenant's.
pub(crate) async fn run_fleet(json: bool, html: &Path, csv: Option<&Path>) -> Result<(), String> {
    let rt = crate::runtime(None).await?;
    let tenants = fleet::run(&rt, html, csv).await?;
    match json {
        true => println!(
            "{}",
            serde_json::json!({"html": html, "csv_dir": csv, "tenants": tenants})
        ),
        false => println!(
            "fleet report for {} tenant(s) written to {}",
            tenants.len(),
            html.display()
        ),
    }
    Ok(())
}

/// `licensewatch report`.
pub(crate) async fn run(json: bool, html: &Path, csv: Option<&Path>) -> Result<(), String> {
    let rt = crate::runtime(None).await?;
    let data = load(&rt).await?;
    if data.runs.is_empty() {
        return Err(format!(
            "the state store has no license-check run for tenant {} yet: run 'licensewatch check' first",
            data.tenant_id
        ));
    }
    let tables = write(&data, Some(html), csv)?;
    if json {
        println!(
            "{}",
            serde_json::json!({"html": html, "csv_dir": csv, "tables": tables})
        );
    } else {
        println!("report written to {}", html.display());
        if let Some(dir) = csv {
            println!("CSV tables written to {}", dir.display());
        }
    }
    Ok(())
}

/// Writes the page and/or the CSV files; returns the table names.
pub(crate) fn write(
    data: &ReportData,
    html: Option<&Path>,
    csv: Option<&Path>,
) -> Result<Vec<String>, String> {
    let tables = tables(data);
    if let Some(path) = html {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create '{}': {e}", dir.display()))?;
        }
        std::fs::write(path, render(data, &tables))
            .map_err(|e| format!("cannot write '{}': {e}", path.display()))?;
    }
    if let Some(dir) = csv {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create '{}': {e}", dir.display()))?;
        for t in &tables {
            let path = dir.join(format!("{}.csv", t.id));
            let mut w = csv::Writer::from_path(&path)
                .map_err(|e| format!("cannot write '{}': {e}", path.display()))?;
            w.write_record(&t.headers).map_err(|e| e.to_string())?;
            for r in &t.rows {
                w.write_record(r).map_err(|e| e.to_string())?;
            }
            w.flush().map_err(|e| e.to_string())?;
        }
    }
    Ok(tables.iter().map(|t| t.id.to_string()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;
    use licensewatch_core::domain::findings::{Cause, Finding, Severity};
    use licensewatch_core::domain::snapshot::SkuSnap;

    fn at(d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, d, 9, 0, 0)
            .single()
            .expect("time")
    }

    fn data_with(upn: &str, group: &str) -> ReportData {
        let finding = |detail| Finding {
            severity: Severity::Warning,
            detail,
            suppressed: None,
        };
        let run = |d: u32, findings: Vec<Finding>| RunRecord {
            tenant_id: "t".into(),
            run_at: at(d),
            users_scanned: 3,
            licensed_users: 2,
            skus: vec![SkuSnap {
                sku_id: "s1".into(),
                part_number: "STANDARDWOFFPACK_FACULTY".into(),
                enabled: 10,
                consumed: 10,
                warning: 0,
                suspended: 0,
                plans: vec![],
            }],
            findings,
            group_seats: vec![],
        };
        ReportData {
            tenant_id: "t".into(),
            generated_at: at(3),
            time_zone: TimeZone::utc(),
            cases: vec![],
            runs: vec![
                run(1, vec![]),
                run(
                    2,
                    vec![
                        finding(Detail::LicenseAssignmentError {
                            user_id: "u".into(),
                            user_principal_name: upn.into(),
                            sku_id: "s1".into(),
                            sku_part_number: "STANDARDWOFFPACK_FACULTY".into(),
                            state: "Error".into(),
                            error: "Other".into(),
                            assigned_by_group: Some("g1".into()),
                            group_display_name: Some(group.into()),
                            cause: Some(Cause {
                                sku_id: "s2".into(),
                                sku_part_number: "EXCHANGE_S".into(),
                                error: "CountViolation".into(),
                            }),
                        }),
                        finding(Detail::LicenseRemoved {
                            user_id: "u".into(),
                            user_principal_name: upn.into(),
                            sku_id: "s1".into(),
                            sku_part_number: "SPE_E3".into(),
                            observed_at: at(2),
                            actor: None,
                            explained: false,
                        }),
                    ],
                ),
            ],
            gaps: vec![Gap {
                source: "directory_audit".into(),
                from: at(1),
                to: at(2),
            }],
            license_events: 4,
            reclaim: Some(reclaim_report(upn)),
            seats: vec![],
            forecast: Default::default(),
        }
    }

    #[test]
    fn the_seat_forecast_table_says_when_seats_run_out_or_why_it_cannot() {
        use licensewatch_core::domain::forecast::SeatPoint;
        use licensewatch_core::ports::store::SeatSample;
        let mut data = data_with("a@contoso.example", "g");
        let table = |d: &ReportData| {
            tables(d)
                .into_iter()
                .find(|t| t.id == "seat_forecast")
                .expect("table")
        };
        // Two days of history: said, not guessed.
        assert!(
            table(&data).rows[0][3].starts_with("not enough history"),
            "{:?}",
            table(&data).rows
        );
        // Ten seats, two free now, one assigned a day for eight days: two days left, twelve to buy for 14.
        data.runs.last_mut().expect("run").skus[0].consumed = 8;
        data.seats = (0..8)
            .map(|d| SeatSample {
                sku_id: "s1".into(),
                group_id: None,
                point: SeatPoint {
                    at: at(2) - chrono::Duration::days(8 - d),
                    enabled: 10,
                    consumed: d,
                },
            })
            .collect();
        let row = &table(&data).rows[0];
        assert_eq!(
            (row[1].as_str(), row[2].as_str(), row[4].as_str()),
            ("2", "1", "12"),
            "{row:?}"
        );
        assert!(row[3].starts_with("in 2 day(s), 2026-11-04"), "{row:?}");
    }

    fn reclaim_report(upn: &str) -> licensewatch_core::domain::reclaim::ReclaimReport {
        use licensewatch_core::domain::reclaim::*;
        ReclaimReport {
            tenant_id: "t".into(),
            generated_at: at(3),
            inactive_days: 90,
            users_read: 2,
            activity_source: ActivitySource::MailboxReport,
            activity_notes: vec!["sign-in activity needs Entra ID P1 <P1>".into()],
            mailbox_notes: vec![],
            rows: vec![ReclaimRow {
                user_id: "u".into(),
                user_principal_name: upn.into(),
                sku_id: "s1".into(),
                sku_name: "Office 365 E3".into(),
                reason: Reason::Inactive { days: 120 },
                last_activity: Some(at(1)),
                licensed_since: None,
                assigned_by_group: None,
                monthly_cost: Some(23.0),
                action: format!("licensewatch reprocess --user {upn} --action remove --sku s1"),
            }],
            idle_seats: vec![IdleSeats {
                sku_id: "s1".into(),
                sku_name: "Office 365 E3".into(),
                unassigned: 3,
                monthly_cost: Some(69.0),
            }],
            currency: Some("EUR".into()),
            monthly_total: Some(92.0),
        }
    }

    #[test]
    fn user_text_is_escaped_everywhere() {
        let evil = "<script>alert('x')</script>@contoso.example";
        let data = data_with(evil, "Faculty <img src=x onerror=alert(1)>");
        let page = render(&data, &tables(&data));
        assert!(
            !page.contains("<script>alert"),
            "raw script tag in the page"
        );
        assert!(!page.contains("<img src=x"), "raw img tag in the page");
        assert!(page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
        assert!(page.contains("Faculty &lt;img src=x onerror=alert(1)&gt;"));
    }

    #[test]
    fn the_page_has_every_section_and_no_remote_resource() {
        let data = data_with("adele@contoso.example", "Faculty");
        let page = render(&data, &tables(&data));
        for id in [
            "summary",
            "grace_cases",
            "license_errors",
            "sku_capacity",
            "seat_forecast",
            "capacity-chart",
            "license_changes",
            "changes-chart",
            "unexplained_changes",
            "reclaim",
            "audit_gaps",
        ] {
            assert!(page.contains(&format!("id=\"{id}\"")), "missing #{id}");
        }
        for remote in ["http://", "https://", "<script", "<link", "@import", "url("] {
            assert!(
                !page.contains(remote),
                "page refers to a remote resource: {remote}"
            );
        }
        assert!(
            page.contains("CountViolation on EXCHANGE_S"),
            "the real cause of the group error is shown"
        );
        assert!(page.contains("badge bad\">GAPS"));
        assert!(page.contains("no sign-in for 120 days"), "reclamation rows");
        assert!(page.contains("92.00 EUR"), "the monthly total");
        assert!(page.contains("Entra ID P1 &lt;P1&gt;"), "notes escaped");
        assert!(page.contains("Seats bought and not assigned"));
    }

    #[test]
    fn dates_are_shown_in_the_tenants_time_zone() {
        let mut data = data_with("adele@contoso.example", "Faculty");
        let utc = render(&data, &tables(&data));
        data.time_zone = TimeZone::named("Pacific/Auckland").expect("zone");
        let auckland = render(&data, &tables(&data));
        // Generated 2026-11-03 09:00 UTC: 22:00 the same day in Auckland (NZDT, UTC+13).
        assert!(utc.contains("2026-11-03 09:00 UTC"));
        assert!(auckland.contains("2026-11-03 22:00 NZDT"));
        assert!(!auckland.contains("2026-11-03 09:00 UTC"));
    }
}
