//! The report's tables: one function per table, shared by the HTML page and the CSV files.

use super::*;

/// One table, shown on the page and written as CSV.
#[derive(Debug)]
pub(crate) struct Table {
    /// File and element id.
    pub id: &'static str,
    /// Heading.
    pub title: &'static str,
    /// Column names.
    pub headers: Vec<&'static str>,
    /// Cells as text.
    pub rows: Vec<Vec<String>>,
}

pub(super) fn day(t: &DateTime<Utc>, tz: &TimeZone) -> String {
    tz.format(t, "%Y-%m-%d")
}

pub(super) fn latest(data: &ReportData) -> Option<&RunRecord> {
    data.runs.last()
}

/// The report's tables, computed once for HTML and CSV.
pub(crate) fn tables(data: &ReportData) -> Vec<Table> {
    vec![
        grace_cases(data),
        license_errors(data),
        capacity(data),
        seat_forecast(data),
        review(data),
        changes(data),
        unexplained(data),
        reclaim(data),
        idle_seats(data),
        gaps(data),
    ]
}

fn grace_cases(data: &ReportData) -> Table {
    let now = data.generated_at;
    Table {
        id: "grace_cases",
        title: "Mailboxes in a grace period",
        headers: vec![
            "user_principal_name",
            "display_name",
            "case",
            "evidence",
            "access_ends_at",
            "days_left",
            "data_deleted_at",
            "blocked_by",
        ],
        rows: data
            .cases
            .iter()
            .map(|c| {
                let ev = serde_json::to_value(c.deadlines.evidence.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default();
                let case = serde_json::to_value(c.deadlines.case)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default();
                vec![
                    c.user_principal_name.clone(),
                    c.display_name.clone().unwrap_or_default(),
                    case,
                    ev,
                    day(&c.deadlines.access_ends_at, &data.time_zone),
                    days_left(c.deadlines.access_ends_at, now).to_string(),
                    day(&c.deadlines.data_deleted_at, &data.time_zone),
                    c.blocked_by.clone().unwrap_or_default(),
                ]
            })
            .collect(),
    }
}

/// Group errors one row per (group, SKU, error), direct assignments one row each.
fn license_errors(data: &ReportData) -> Table {
    let mut groups: BTreeMap<(String, String, String), (Vec<String>, String)> = BTreeMap::new();
    let mut direct: Vec<Vec<String>> = Vec::new();
    for f in latest(data)
        .map(|r| r.findings.as_slice())
        .unwrap_or_default()
    {
        if let Detail::LicenseAssignmentError {
            user_principal_name,
            sku_part_number,
            error,
            assigned_by_group,
            group_display_name,
            cause,
            ..
        } = &f.detail
        {
            let cause = cause
                .as_ref()
                .map(|c| format!("{} on {}", c.error, c.sku_part_number))
                .unwrap_or_default();
            match assigned_by_group {
                Some(g) => {
                    let name = group_display_name.clone().unwrap_or_else(|| g.clone());
                    let e = groups
                        .entry((name, sku_part_number.clone(), error.to_string()))
                        .or_insert_with(|| (Vec::new(), cause));
                    e.0.push(user_principal_name.clone());
                }
                None => direct.push(vec![
                    "(direct assignment)".into(),
                    sku_part_number.clone(),
                    error.to_string(),
                    "1".into(),
                    user_principal_name.clone(),
                    cause,
                ]),
            }
        }
    }
    let mut error_rows: Vec<Vec<String>> = groups
        .into_iter()
        .map(|((g, sku, err), (users, cause))| {
            vec![g, sku, err, users.len().to_string(), users.join(" "), cause]
        })
        .collect();
    error_rows.extend(direct);
    Table {
        id: "license_errors",
        title: "Licence errors by group",
        headers: vec![
            "group",
            "sku",
            "error",
            "users",
            "user_principal_names",
            "cause",
        ],
        rows: error_rows,
    }
}

fn capacity(data: &ReportData) -> Table {
    Table {
        id: "sku_capacity",
        title: "SKU capacity",
        headers: vec![
            "sku",
            "sku_id",
            "enabled",
            "consumed",
            "available",
            "warning",
            "suspended",
        ],
        rows: latest(data)
            .map(|r| {
                r.skus
                    .iter()
                    .map(|s| {
                        vec![
                            s.part_number.clone(),
                            s.sku_id.clone(),
                            s.enabled.to_string(),
                            s.consumed.to_string(),
                            s.available().to_string(),
                            s.warning.to_string(),
                            s.suspended.to_string(),
                        ]
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// When each SKU's free seats run out at the recent rate, or why that cannot be said.
fn seat_forecast(data: &ReportData) -> Table {
    use licensewatch_core::domain::forecast::{Forecast, SeatPoint, forecast};
    let rules = &data.forecast;
    let rows = latest(data)
        .map(|r| {
            r.skus
                .iter()
                .filter(|s| s.enabled > 0)
                .map(|s| {
                    let mut points: Vec<SeatPoint> = (data.seats.iter())
                        .filter(|p| p.sku_id.eq_ignore_ascii_case(&s.sku_id))
                        .map(|p| p.point)
                        .collect();
                    points.push(SeatPoint {
                        at: r.run_at,
                        enabled: s.enabled,
                        consumed: s.consumed,
                    });
                    let (rate, runs_out, buy) = match forecast(&points, r.run_at, rules) {
                        Forecast::Exhausts {
                            rate_per_day,
                            days_left,
                            exhausted_at,
                            seats_to_buy,
                            ..
                        } => (
                            format!("{rate_per_day}"),
                            format!(
                                "in {days_left} day(s), {}",
                                day(&exhausted_at, &data.time_zone)
                            ),
                            seats_to_buy.to_string(),
                        ),
                        Forecast::NotGrowing { net_change, .. } => (
                            "0".into(),
                            format!("not in sight (net {net_change:+} over the window)"),
                            "0".into(),
                        ),
                        Forecast::NotEnoughHistory {
                            days_of_history,
                            needed_days,
                        } => (
                            String::new(),
                            format!("not enough history ({days_of_history} of {needed_days} days)"),
                            String::new(),
                        ),
                    };
                    vec![
                        s.part_number.clone(),
                        s.available().to_string(),
                        rate,
                        runs_out,
                        buy,
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    Table {
        id: "seat_forecast",
        title: "Seat forecast",
        headers: vec![
            "sku",
            "free",
            "assigned_per_day",
            "runs_out",
            "seats_to_buy_for_horizon",
        ],
        rows,
    }
}

/// Subscriptions at risk, seats to cut before a renewal, users paying twice, and every suppressed finding, marked.
fn review(data: &ReportData) -> Table {
    let rows = latest(data)
        .map(|r| {
            r.findings
                .iter()
                .filter(|f| {
                    f.suppressed.is_some()
                        || matches!(
                            f.detail,
                            Detail::SubscriptionLapsing { .. }
                                | Detail::UnusedSeatsBeforeRenewal { .. }
                                | Detail::OverlappingLicenses { .. }
                        )
                })
                .map(|f| {
                    vec![
                        f.kind().to_string(),
                        format!("{:?}", f.severity).to_lowercase(),
                        f.detail.subject(),
                        what(&f.detail),
                        f.suppressed
                            .as_ref()
                            .map(|s| {
                                format!("until {}: {}", day(&s.until, &data.time_zone), s.reason)
                            })
                            .unwrap_or_default(),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    Table {
        id: "review",
        title: "Subscriptions, overlaps and suppressed findings",
        headers: vec!["kind", "severity", "subject", "what", "suppressed"],
        rows,
    }
}

/// A short account of the review findings (others: their kind says it).
fn what(d: &Detail) -> String {
    match d {
        Detail::SubscriptionLapsing {
            reason,
            users_affected,
            ..
        } => format!("{reason}; {users_affected} user(s) will have no seat"),
        Detail::UnusedSeatsBeforeRenewal {
            unassigned,
            renews_at,
            ..
        } => format!(
            "{unassigned} seat(s) unassigned, renewing {}",
            renews_at.format("%Y-%m-%d")
        ),
        Detail::OverlappingLicenses {
            remove_sku_part_number,
            keep_sku_part_number,
            shared_services,
            ..
        } => format!(
            "remove {remove_sku_part_number} (kept: {keep_sku_part_number}; both give {})",
            shared_services.join(", ")
        ),
        Detail::SkuCapacity { reason, .. } => reason.clone(),
        // Their own tables (cases, errors, changes, forecast) say the rest.
        Detail::UnlicensedMailbox { .. }
        | Detail::LicenseAssignmentError { .. }
        | Detail::LicenseRemoved { .. }
        | Detail::LicenseAdded { .. }
        | Detail::MassDelicensing { .. }
        | Detail::LicensedDisabledAccount { .. }
        | Detail::SharedMailboxSignIn { .. }
        | Detail::SeatForecast { .. }
        | Detail::SeatWaitingRoom { .. } => String::new(),
    }
}

fn changes(data: &ReportData) -> Table {
    Table {
        id: "license_changes",
        title: "Licence changes over time",
        headers: vec![
            "run_at",
            "added",
            "removed",
            "licensed_users",
            "users_scanned",
        ],
        rows: data
            .runs
            .iter()
            .map(|r| {
                let (added, removed) = added_removed(r);
                vec![
                    r.run_at.to_rfc3339(),
                    added.to_string(),
                    removed.to_string(),
                    r.licensed_users.to_string(),
                    r.users_scanned.to_string(),
                ]
            })
            .collect(),
    }
}

/// Changes no audit event explains, from every run kept.
fn unexplained(data: &ReportData) -> Table {
    let mut unexplained = Vec::new();
    for r in &data.runs {
        for f in &r.findings {
            let (change, upn, sku, at, actor, explained) = match &f.detail {
                Detail::LicenseAdded {
                    user_principal_name,
                    sku_part_number,
                    observed_at,
                    actor,
                    explained,
                    ..
                } => (
                    "added",
                    user_principal_name,
                    sku_part_number,
                    observed_at,
                    actor,
                    explained,
                ),
                Detail::LicenseRemoved {
                    user_principal_name,
                    sku_part_number,
                    observed_at,
                    actor,
                    explained,
                    ..
                } => (
                    "removed",
                    user_principal_name,
                    sku_part_number,
                    observed_at,
                    actor,
                    explained,
                ),
                _ => continue,
            };
            if !explained {
                unexplained.push(vec![
                    at.to_rfc3339(),
                    upn.clone(),
                    sku.clone(),
                    change.to_string(),
                    actor.clone().unwrap_or_default(),
                ]);
            }
        }
    }
    Table {
        id: "unexplained_changes",
        title: "Unexplained licence changes",
        headers: vec![
            "observed_at",
            "user_principal_name",
            "sku",
            "change",
            "actor",
        ],
        rows: unexplained,
    }
}

fn reclaim(data: &ReportData) -> Table {
    let rows = data.reclaim.iter().flat_map(|report| {
        report.rows.iter().map(move |r| {
            vec![
                r.user_principal_name.clone(),
                r.sku_name.clone(),
                crate::reclaim::reason(&r.reason),
                r.last_activity
                    .map(|t| day(&t, &data.time_zone))
                    .unwrap_or_default(),
                r.licensed_since
                    .map(|t| day(&t, &data.time_zone))
                    .unwrap_or_default(),
                crate::reclaim::money(report, r.monthly_cost),
                r.action.clone(),
            ]
        })
    });
    Table {
        id: "reclaim",
        title: "Licences to reclaim",
        headers: vec![
            "user_principal_name",
            "sku",
            "reason",
            "last_activity",
            "licensed_since",
            "monthly_cost",
            "action",
        ],
        rows: rows.collect(),
    }
}

fn idle_seats(data: &ReportData) -> Table {
    let rows = data.reclaim.iter().flat_map(|report| {
        report.idle_seats.iter().map(move |s| {
            vec![
                s.sku_name.clone(),
                s.unassigned.to_string(),
                crate::reclaim::money(report, s.monthly_cost),
            ]
        })
    });
    Table {
        id: "idle_seats",
        title: "Seats bought and not assigned",
        headers: vec!["sku", "unassigned", "monthly_cost"],
        rows: rows.collect(),
    }
}

fn gaps(data: &ReportData) -> Table {
    Table {
        id: "audit_gaps",
        title: "Audit archive gaps",
        headers: vec!["source", "from", "to"],
        rows: data
            .gaps
            .iter()
            .map(|g| vec![g.source.clone(), g.from.to_rfc3339(), g.to.to_rfc3339()])
            .collect(),
    }
}

pub(super) fn added_removed(r: &RunRecord) -> (usize, usize) {
    let added = r
        .findings
        .iter()
        .filter(|f| matches!(f.detail, Detail::LicenseAdded { .. }))
        .count();
    let removed = r
        .findings
        .iter()
        .filter(|f| matches!(f.detail, Detail::LicenseRemoved { .. }))
        .count();
    (added, removed)
}

pub(super) fn days_left(deadline: DateTime<Utc>, now: DateTime<Utc>) -> i64 {
    let secs = (deadline - now).num_seconds();
    // Whole days, rounded down, so "0" means "today".
    secs.div_euclid(86_400)
}
