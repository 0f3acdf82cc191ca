//! The report as one self-contained HTML page: cards, tables and two inline SVG charts, no script.

use super::*;
use licensewatch_core::domain::reclaim::ActivitySource;
use licensewatch_core::ports::channel::html_escape as esc;

pub(super) const STYLE: &str = r#"
:root { --ink:#1b1f24; --muted:#5b6570; --line:#d8dee4; --bad:#c62828; --warn:#b26a00; --ok:#2e7d32; --accent:#0b5cad; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; color: var(--ink); margin: 0; background: #f6f8fa; }
main { max-width: 1100px; margin: 0 auto; padding: 16px; }
header h1 { font-size: 1.5rem; margin: 0 0 4px; }
header p { margin: 0; color: var(--muted); }
section { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 12px 16px; margin: 16px 0; break-inside: avoid; }
h2 { font-size: 1.15rem; margin: 4px 0 10px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: 10px; margin-top: 14px; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; }
.card b { display: block; font-size: 1.6rem; }
.card span { color: var(--muted); font-size: .85rem; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-size: .9rem; }
th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: #f0f3f6; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.badge { display: inline-block; min-width: 3.2em; text-align: center; padding: 1px 8px; border-radius: 10px; color: #fff; font-weight: 600; }
.bad { background: var(--bad); } .warn { background: var(--warn); } .ok { background: var(--ok); }
.empty { color: var(--muted); font-style: italic; }
svg { width: 100%; height: auto; display: block; }
svg text { font: 11px system-ui, sans-serif; fill: var(--ink); }
.legend span { display: inline-block; margin-right: 14px; font-size: .85rem; }
.legend i { display: inline-block; width: 10px; height: 10px; margin-right: 4px; border-radius: 2px; }
footer { color: var(--muted); font-size: .8rem; margin: 20px 0; }
@media (max-width: 600px) { body { font-size: 14px; } main { padding: 8px; } th, td { padding: 4px 5px; } }
@media print { body { background: #fff; } section { border: none; padding: 0; } .scroll { overflow: visible; } }
"#;

/// The whole page: the summary cards, then a section per table.
pub(crate) fn render(data: &ReportData, tables: &[Table]) -> String {
    let mut h = String::new();
    let by_id = |id: &str| tables.iter().find(|t| t.id == id);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>licensewatch report: {}</title><style>{STYLE}</style></head><body><main>",
        esc(&data.tenant_id)
    );
    summary(&mut h, data, tables);
    if let Some(t) = by_id("grace_cases") {
        grace_section(&mut h, data, t);
    }
    if let Some(t) = by_id("license_errors") {
        table_section(&mut h, t, "No licence assignment is in error.", &[3]);
    }
    if let Some(t) = by_id("sku_capacity") {
        capacity_section(&mut h, data, t);
    }
    if let Some(t) = by_id("seat_forecast") {
        let _ = write!(
            h,
            "<section id=\"{}\"><h2>{}</h2><p>{}; horizon {} days.</p>",
            t.id,
            t.title,
            esc(&licensewatch_core::domain::forecast::Forecast::method(
                &data.forecast
            )),
            data.forecast.horizon_days
        );
        table_body(&mut h, t, "No SKU has seats.", &[1, 2, 4]);
        h.push_str("</section>");
    }
    if let Some(t) = by_id("review") {
        table_section(
            &mut h,
            t,
            "No subscription at risk, no user paying twice, nothing suppressed.",
            &[],
        );
    }
    if let Some(t) = by_id("license_changes") {
        changes_section(&mut h, data, t);
    }
    if let Some(t) = by_id("unexplained_changes") {
        table_section(
            &mut h,
            t,
            "Every licence change is explained by the audit log.",
            &[],
        );
    }
    if let Some(t) = by_id("reclaim") {
        reclaim_section(&mut h, data, t, by_id("idle_seats"));
    }
    if let Some(t) = by_id("audit_gaps") {
        gaps_section(&mut h, data, t);
    }
    h.push_str("<footer>Made by licensewatch from its state store. Days left are whole days until access ends; grace periods follow Microsoft's published rules.</footer></main></body></html>\n");
    h
}

/// The header and its cards: mailboxes in a grace period and cut off, the next deadline, errors, full SKUs,
/// unexplained changes, archive gaps.
fn summary(h: &mut String, data: &ReportData, tables: &[Table]) {
    let by_id = |id: &str| tables.iter().find(|t| t.id == id);
    let left: Vec<i64> = data
        .cases
        .iter()
        .map(|c| days_left(c.deadlines.access_ends_at, data.generated_at))
        .collect();
    let soonest = left.iter().copied().filter(|d| *d >= 0).min();
    let cut_off = left.iter().filter(|d| **d < 0).count();
    let errors: usize = by_id("license_errors")
        .map(|t| {
            t.rows
                .iter()
                .filter_map(|r| r[3].parse::<usize>().ok())
                .sum()
        })
        .unwrap_or(0);
    let exhausted = latest(data)
        .map(|r| {
            r.skus
                .iter()
                .filter(|s| s.available() <= 0 && s.enabled > 0)
                .count()
        })
        .unwrap_or(0);
    let unexplained = by_id("unexplained_changes")
        .map(|t| t.rows.len())
        .unwrap_or(0);
    let _ = write!(
        *h,
        "<header><h1>Microsoft 365 licence report</h1><p>Tenant {} · generated {} · {} license-check run(s)</p>\
         <div class=\"cards\" id=\"summary\">{}{}{}{}{}{}{}</div></header>",
        esc(&data.tenant_id),
        esc(&data
            .time_zone
            .format(&data.generated_at, "%Y-%m-%d %H:%M %Z")),
        data.runs.len(),
        card(
            (data.cases.len() - cut_off).to_string(),
            "mailboxes in a grace period"
        ),
        card(cut_off.to_string(), "mailboxes already cut off"),
        card(
            soonest.map_or("–".into(), |d| format!("{d} d")),
            "until the next mailbox is cut off"
        ),
        card(errors.to_string(), "users in licence error"),
        card(exhausted.to_string(), "SKUs with no seats left"),
        card(unexplained.to_string(), "unexplained licence changes"),
        card(data.gaps.len().to_string(), "audit archive gaps"),
    );
}

/// Grace cases with a countdown badge.
fn grace_section(h: &mut String, data: &ReportData, t: &Table) {
    let _ = write!(*h, "<section id=\"{}\"><h2>{}</h2>", t.id, t.title);
    if t.rows.is_empty() {
        h.push_str("<p class=\"empty\">No mailbox is in a grace period.</p>");
    } else {
        h.push_str("<div class=\"scroll\"><table><thead><tr><th>User</th><th>Case</th><th>Access ends</th><th class=\"num\">Days left</th><th>Data deleted</th><th>Blocked by</th></tr></thead><tbody>");
        for (r, c) in t.rows.iter().zip(&data.cases) {
            let left: i64 = r[5].parse().unwrap_or(0);
            // Past the access deadline the mailbox is cut off; what remains is the countdown to data deletion.
            let badge = if left < 0 {
                let deleted = days_left(c.deadlines.data_deleted_at, data.generated_at);
                format!(
                    "<span class=\"badge bad\">cut off</span><br><small>data deleted in {} d</small>",
                    deleted.max(0)
                )
            } else {
                let class = if licensewatch_core::domain::grace::critical_days_left(left) {
                    "bad"
                } else if left <= 14 {
                    "warn"
                } else {
                    "ok"
                };
                format!("<span class=\"badge {class}\">{left} d</span>")
            };
            let _ = write!(
                *h,
                "<tr><td>{}<br><small>{}</small></td><td>{}<br><small>{}</small></td><td>{}</td><td class=\"num\">{badge}</td><td>{}</td><td>{}</td></tr>",
                esc(&r[0]),
                esc(&r[1]),
                esc(&r[2]),
                esc(&r[3]),
                esc(&r[4]),
                esc(&r[6]),
                esc(&r[7])
            );
        }
        h.push_str("</tbody></table></div>");
    }
    h.push_str("</section>");
}

/// Capacity bars and the table.
fn capacity_section(h: &mut String, data: &ReportData, t: &Table) {
    let _ = write!(*h, "<section id=\"{}\"><h2>{}</h2>", t.id, t.title);
    if let Some(r) = latest(data).filter(|r| !r.skus.is_empty()) {
        h.push_str(&capacity_svg(r));
        h.push_str("<div class=\"legend\"><span><i style=\"background:#0b5cad\"></i>consumed</span><span><i style=\"background:#c62828\"></i>full</span><span><i style=\"background:#dfe6ee\"></i>available</span></div>");
    }
    table_body(h, t, "No SKU.", &[2, 3, 4, 5, 6]);
    h.push_str("</section>");
}

/// Licence changes over time.
fn changes_section(h: &mut String, data: &ReportData, t: &Table) {
    let _ = write!(*h, "<section id=\"{}\"><h2>{}</h2>", t.id, t.title);
    if data.runs.len() >= 2 {
        h.push_str(&changes_svg(&data.runs, &data.time_zone));
        h.push_str("<div class=\"legend\"><span><i style=\"background:#2e7d32\"></i>licences added</span><span><i style=\"background:#c62828\"></i>licences removed</span><span><i style=\"background:#0b5cad\"></i>licensed users</span></div>");
    } else {
        h.push_str("<p class=\"empty\">The chart needs two runs or more.</p>");
    }
    h.push_str("</section>");
}

/// The newest reclamation report and the idle seats.
fn reclaim_section(h: &mut String, data: &ReportData, t: &Table, seats: Option<&Table>) {
    let _ = write!(*h, "<section id=\"{}\"><h2>{}</h2>", t.id, t.title);
    match &data.reclaim {
        None => h.push_str("<p class=\"empty\">No reclamation report yet: run <code>licensewatch reclaim</code>.</p>"),
        Some(r) => {
            let _ = write!(
                *h,
                "<p>As of {}: {} licence(s) among {} users; inactive means no sign-in for {} days (activity from {}).{}</p>",
                esc(&day(&r.generated_at, &data.time_zone)),
                r.rows.len(),
                r.users_read,
                r.inactive_days,
                match r.activity_source {
                    ActivitySource::SignIn => "sign-in activity",
                    ActivitySource::MailboxReport => "the Exchange mailbox usage report",
                    ActivitySource::None => "nowhere: only disabled accounts, overlaps and idle seats are judged",
                },
                r.monthly_total
                    .map(|_| format!(" Monthly cost of what is priced: <b>{}</b>.", esc(&crate::reclaim::money(r, r.monthly_total))))
                    .unwrap_or_default()
            );
            for note in r.activity_notes.iter().chain(&r.mailbox_notes) {
                let _ = write!(*h, "<p><span class=\"badge bad\">NOTE</span> {}</p>", esc(note));
            }
            table_body(h, t, "No licence to reclaim.", &[5]);
            if let Some(seats) = seats {
                let _ = write!(*h, "<h3>{}</h3>", seats.title);
                table_body(h, seats, "Every seat bought is assigned.", &[1, 2]);
            }
        }
    }
    h.push_str("</section>");
}

/// Audit archive health: licence events derived and gaps.
fn gaps_section(h: &mut String, data: &ReportData, t: &Table) {
    let _ = write!(
        *h,
        "<section id=\"{}\"><h2>Audit archive health</h2><p>{} licence event(s) derived from the archived audit logs.</p>",
        t.id, data.license_events
    );
    if t.rows.is_empty() {
        h.push_str("<p><span class=\"badge ok\">OK</span> No gap: every range Microsoft still served was archived.</p>");
    } else {
        h.push_str("<p><span class=\"badge bad\">GAPS</span> These ranges were no longer available from Microsoft when licensewatch asked; export them from the Purview portal if you still can.</p>");
        table_body(h, t, "", &[]);
    }
    h.push_str("</section>");
}

pub(super) fn card(value: String, label: &str) -> String {
    format!(
        "<div class=\"card\"><b>{}</b><span>{}</span></div>",
        esc(&value),
        esc(label)
    )
}

pub(super) fn table_section(h: &mut String, t: &Table, empty: &str, numeric: &[usize]) {
    let _ = write!(h, "<section id=\"{}\"><h2>{}</h2>", t.id, t.title);
    table_body(h, t, empty, numeric);
    h.push_str("</section>");
}

pub(super) fn table_body(h: &mut String, t: &Table, empty: &str, numeric: &[usize]) {
    if t.rows.is_empty() {
        let _ = write!(h, "<p class=\"empty\">{}</p>", esc(empty));
        return;
    }
    h.push_str("<div class=\"scroll\"><table><thead><tr>");
    for (i, c) in t.headers.iter().enumerate() {
        let class = if numeric.contains(&i) {
            " class=\"num\""
        } else {
            ""
        };
        let _ = write!(h, "<th{class}>{}</th>", esc(&c.replace('_', " ")));
    }
    h.push_str("</tr></thead><tbody>");
    for r in &t.rows {
        h.push_str("<tr>");
        for (i, c) in r.iter().enumerate() {
            let class = if numeric.contains(&i) {
                " class=\"num\""
            } else {
                ""
            };
            let _ = write!(h, "<td{class}>{}</td>", esc(c));
        }
        h.push_str("</tr>");
    }
    h.push_str("</tbody></table></div>");
}

pub(super) fn capacity_svg(r: &RunRecord) -> String {
    let row = 26.0;
    let label_w = 190.0;
    let bar_w = 560.0;
    let height = row * r.skus.len() as f64 + 10.0;
    let mut s = format!(
        "<svg id=\"capacity-chart\" viewBox=\"0 0 {} {height}\" role=\"img\" aria-label=\"SKU capacity\">",
        label_w + bar_w + 120.0
    );
    for (i, k) in r.skus.iter().enumerate() {
        let y = 5.0 + i as f64 * row;
        let enabled = k.enabled.max(1) as f64;
        let used = (k.consumed as f64 / enabled).clamp(0.0, 1.0) * bar_w;
        let colour = if k.available() <= 0 {
            "#c62828"
        } else {
            "#0b5cad"
        };
        let _ = write!(
            s,
            "<text x=\"0\" y=\"{:.1}\">{}</text><rect x=\"{label_w}\" y=\"{y:.1}\" width=\"{bar_w}\" height=\"18\" fill=\"#dfe6ee\" rx=\"3\"/>\
             <rect x=\"{label_w}\" y=\"{y:.1}\" width=\"{used:.1}\" height=\"18\" fill=\"{colour}\" rx=\"3\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\">{} / {}</text>",
            y + 13.0,
            esc(&k.part_number),
            label_w + bar_w + 8.0,
            y + 13.0,
            k.consumed,
            k.enabled
        );
    }
    s.push_str("</svg>");
    s
}

pub(super) fn changes_svg(runs: &[RunRecord], tz: &TimeZone) -> String {
    let (w, h, pad) = (760.0, 220.0, 36.0);
    let mid = h / 2.0;
    let n = runs.len() as f64;
    let step = (w - 2.0 * pad) / n;
    let counts: Vec<(usize, usize)> = runs.iter().map(added_removed).collect();
    let max_change = counts
        .iter()
        .map(|(a, r)| (*a).max(*r))
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let max_users = runs
        .iter()
        .map(|r| r.licensed_users)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let mut s = format!(
        "<svg id=\"changes-chart\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"Licence changes over time\">"
    );
    let _ = write!(
        s,
        "<line x1=\"{pad}\" y1=\"{mid}\" x2=\"{:.1}\" y2=\"{mid}\" stroke=\"#999\" stroke-width=\"1\"/>",
        w - pad
    );
    let scale = (mid - 14.0) / max_change;
    let bar = (step * 0.7).max(1.0);
    let mut line = String::new();
    for (i, ((added, removed), run)) in counts.iter().zip(runs).enumerate() {
        let x = pad + i as f64 * step + (step - bar) / 2.0;
        if *added > 0 {
            let bh = *added as f64 * scale;
            let _ = write!(
                s,
                "<rect class=\"added\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{bar:.1}\" height=\"{bh:.1}\" fill=\"#2e7d32\"><title>{}: {added} added</title></rect>",
                mid - bh,
                esc(&day(&run.run_at, tz))
            );
        }
        if *removed > 0 {
            let bh = *removed as f64 * scale;
            let _ = write!(
                s,
                "<rect class=\"removed\" x=\"{x:.1}\" y=\"{mid:.1}\" width=\"{bar:.1}\" height=\"{bh:.1}\" fill=\"#c62828\"><title>{}: {removed} removed</title></rect>",
                esc(&day(&run.run_at, tz))
            );
        }
        let ly = h - 14.0 - (run.licensed_users as f64 / max_users) * (h - 28.0);
        let _ = write!(line, "{:.1},{ly:.1} ", x + bar / 2.0);
    }
    let _ = write!(
        s,
        "<polyline points=\"{}\" fill=\"none\" stroke=\"#0b5cad\" stroke-width=\"2\"/>",
        line.trim_end()
    );
    if let (Some(first), Some(last)) = (runs.first(), runs.last()) {
        let _ = write!(
            s,
            "<text x=\"{pad}\" y=\"{:.1}\">{}</text><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text><text x=\"2\" y=\"12\">+{}</text><text x=\"2\" y=\"{:.1}\">−{}</text>",
            h - 2.0,
            esc(&day(&first.run_at, tz)),
            w - pad,
            h - 2.0,
            esc(&day(&last.run_at, tz)),
            max_change,
            h - 18.0,
            max_change
        );
    }
    s.push_str("</svg>");
    s
}
