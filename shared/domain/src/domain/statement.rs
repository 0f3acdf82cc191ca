//! The monthly licence statement an MSP bills from, per customer: each SKU's seats bought and assigned at the
//! month's end, the month's peak, the seats unassigned and their cost from `[prices]`, and every licence change of
//! the month with who made it. Rendered as CSV and as a PDF of plain pages (written here: the PDF needs one base
//! font and text, not a browser; docs/BENCHMARKS.md has the measurement against printing the HTML in Chromium).

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use serde::Serialize;

use crate::domain::forecast::SeatPoint;
use crate::domain::license_event::LicenseEvent;

/// A calendar month (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Month {
    /// Year.
    pub year: i32,
    /// 1-12.
    pub month: u32,
}

impl Month {
    /// Parses `YYYY-MM`, naming what is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let wrong = || format!("'{text}' is not a month (YYYY-MM, e.g. 2026-11)");
        let (y, m) = text.trim().split_once('-').ok_or_else(wrong)?;
        let (year, month): (i32, u32) = (
            y.parse().map_err(|_| wrong())?,
            m.parse().map_err(|_| wrong())?,
        );
        if y.len() != 4 || m.len() != 2 || !(1..=12).contains(&month) {
            return Err(wrong());
        }
        Ok(Self { year, month })
    }

    /// The month before the one `now` is in (what a scheduled run on the 1st states).
    pub fn previous(now: DateTime<Utc>) -> Self {
        match now.month() {
            1 => Self {
                year: now.year() - 1,
                month: 12,
            },
            m => Self {
                year: now.year(),
                month: m - 1,
            },
        }
    }

    /// Its first instant.
    pub fn start(self) -> DateTime<Utc> {
        Utc.from_utc_datetime(
            &NaiveDate::from_ymd_opt(self.year, self.month, 1)
                .unwrap_or_default()
                .and_hms_opt(0, 0, 0)
                .unwrap_or_default(),
        )
    }

    /// The first instant of the next month.
    pub fn end(self) -> DateTime<Utc> {
        let next = if self.month == 12 {
            Self {
                year: self.year + 1,
                month: 1,
            }
        } else {
            Self {
                year: self.year,
                month: self.month + 1,
            }
        };
        next.start()
    }
}

impl std::fmt::Display for Month {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// One SKU's line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SkuLine {
    /// SKU id.
    pub sku_id: String,
    /// Its name.
    pub sku: String,
    /// Seats bought (enabled) at the month's end.
    pub bought: i64,
    /// Seats assigned at the month's end.
    pub assigned: i64,
    /// The most seats assigned at any run of the month.
    pub peak_assigned: i64,
    /// Bought but not assigned at the month's end.
    pub unassigned: i64,
    /// Price per seat per month, from `[prices]`.
    pub unit_price: Option<f64>,
    /// `bought × unit_price`.
    pub monthly_cost: Option<f64>,
    /// `unassigned × unit_price`: paid for nothing.
    pub unassigned_cost: Option<f64>,
}

/// One licence change of the month.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChangeLine {
    /// When.
    pub at: DateTime<Utc>,
    /// Whose licences.
    pub user: String,
    /// SKUs added (by name).
    pub added: Vec<String>,
    /// SKUs removed.
    pub removed: Vec<String>,
    /// Who made it.
    pub by: String,
    /// `success` or `failure`.
    pub result: String,
    /// Why it failed (a failure's reason as Microsoft gave it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A customer's month.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Statement {
    /// Tenant.
    pub tenant_id: String,
    /// The month.
    pub month: String,
    /// Runs of license-check the figures come from.
    pub runs: usize,
    /// Per SKU.
    pub skus: Vec<SkuLine>,
    /// Changes, oldest first.
    pub changes: Vec<ChangeLine>,
    /// Currency of the prices.
    pub currency: String,
    /// Sum of `monthly_cost` (the SKUs with a price).
    pub total_cost: f64,
}

/// What a statement is made from.
pub struct StatementInput<'a> {
    /// Tenant.
    pub tenant_id: &'a str,
    /// The month.
    pub month: Month,
    /// Each SKU's seat counts at each run (any period: those of the month are used).
    pub samples: &'a [(String, SeatPoint)],
    /// Licence events (any period: those of the month are used).
    pub events: &'a [LicenseEvent],
    /// A SKU's name.
    pub name: &'a dyn Fn(&str) -> String,
    /// A SKU's monthly price.
    pub price: &'a dyn Fn(&str) -> Option<f64>,
    /// The prices' currency.
    pub currency: &'a str,
}

/// The statement of `input.month`.
pub fn build(input: &StatementInput<'_>) -> Statement {
    let (start, end) = (input.month.start(), input.month.end());
    let mut by_sku: BTreeMap<&str, Vec<SeatPoint>> = BTreeMap::new();
    for (sku, p) in input
        .samples
        .iter()
        .filter(|(_, p)| p.at >= start && p.at < end)
    {
        by_sku.entry(sku.as_str()).or_default().push(*p);
    }
    let runs = {
        let mut at: Vec<DateTime<Utc>> = by_sku.values().flatten().map(|p| p.at).collect();
        at.sort();
        at.dedup();
        at.len()
    };
    let round = |v: f64| (v * 100.0).round() / 100.0;
    let skus: Vec<SkuLine> = by_sku
        .into_iter()
        .filter_map(|(sku, points)| {
            let last = points.iter().max_by_key(|p| p.at)?;
            let peak = points.iter().map(|p| p.consumed).max().unwrap_or(0);
            let unit = (input.price)(sku);
            let unassigned = (last.enabled - last.consumed).max(0);
            Some(SkuLine {
                sku_id: sku.to_string(),
                sku: (input.name)(sku),
                bought: last.enabled,
                assigned: last.consumed,
                peak_assigned: peak,
                unassigned,
                unit_price: unit,
                monthly_cost: unit.map(|u| round(u * last.enabled as f64)),
                unassigned_cost: unit.map(|u| round(u * unassigned as f64)),
            })
        })
        .filter(|l| l.bought > 0 || l.peak_assigned > 0)
        .collect();
    let mut changes: Vec<ChangeLine> = one_per_change(input.events, start, end)
        .into_iter()
        .map(|e| ChangeLine {
            at: e.at,
            user: e
                .user_principal_name
                .clone()
                .or_else(|| e.user_id.clone())
                .unwrap_or_default(),
            added: e.added_sku_ids.iter().map(|s| (input.name)(s)).collect(),
            removed: e.removed_sku_ids.iter().map(|s| (input.name)(s)).collect(),
            by: e.actor.clone().unwrap_or_else(|| "unknown".into()),
            result: e.result.clone(),
            reason: e.reason.clone().filter(|_| e.failed()),
        })
        .collect();
    changes.sort_by(|a, b| (a.at, &a.user).cmp(&(b.at, &b.user)));
    Statement {
        tenant_id: input.tenant_id.to_string(),
        month: input.month.to_string(),
        runs,
        total_cost: round(skus.iter().filter_map(|l| l.monthly_cost).sum()),
        skus,
        changes,
        currency: input.currency.to_string(),
    }
}

/// The month's events, one per change: both audit sources record most changes, under the same correlation
/// (directory audit `correlationId`, Management API `InterSystemsId`), and the copy naming the most SKUs is kept.
fn one_per_change(
    events: &[LicenseEvent],
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Vec<&LicenseEvent> {
    let mut month: Vec<&LicenseEvent> = events
        .iter()
        .filter(|e| e.at >= start && e.at < end)
        .collect();
    let skus = |e: &LicenseEvent| e.added_sku_ids.len() + e.removed_sku_ids.len();
    month.sort_by_key(|e| std::cmp::Reverse(skus(e)));
    let mut seen = std::collections::HashSet::new();
    month.retain(|e| {
        let who = e
            .user_id
            .as_deref()
            .or(e.user_principal_name.as_deref())
            .unwrap_or("")
            .to_ascii_lowercase();
        let change = match e.correlation_id.as_deref().filter(|c| !c.is_empty()) {
            Some(c) => c.to_ascii_lowercase(),
            None => format!(
                "{}|{:?}|{:?}|{}",
                e.at.timestamp(),
                e.added_sku_ids,
                e.removed_sku_ids,
                e.result
            ),
        };
        seen.insert((who, change))
    });
    month
}

/// A CSV field, quoted when it must be (RFC 4180); a leading `=`, `+`, `-` or `@` is prefixed with `'` so a
/// spreadsheet never runs a user's display name as a formula.
fn field(v: &str) -> String {
    let safe = if v.starts_with(['=', '+', '-', '@']) {
        format!("'{v}")
    } else {
        v.to_string()
    };
    if safe.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", safe.replace('"', "\"\""))
    } else {
        safe
    }
}

fn money(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.2}")).unwrap_or_default()
}

impl Statement {
    /// `(skus.csv, changes.csv)`.
    pub fn csv(&self) -> (String, String) {
        let mut skus = String::from(
            "tenant_id,month,sku_id,sku,bought,assigned,peak_assigned,unassigned,unit_price,monthly_cost,unassigned_cost,currency\n",
        );
        for l in &self.skus {
            let row = [
                field(&self.tenant_id),
                field(&self.month),
                field(&l.sku_id),
                field(&l.sku),
                l.bought.to_string(),
                l.assigned.to_string(),
                l.peak_assigned.to_string(),
                l.unassigned.to_string(),
                money(l.unit_price),
                money(l.monthly_cost),
                money(l.unassigned_cost),
                field(&self.currency),
            ];
            skus.push_str(&row.join(","));
            skus.push('\n');
        }
        let mut changes = String::from("tenant_id,month,at,user,added,removed,by,result,reason\n");
        for c in &self.changes {
            let row = [
                field(&self.tenant_id),
                field(&self.month),
                c.at.to_rfc3339(),
                field(&c.user),
                field(&c.added.join("; ")),
                field(&c.removed.join("; ")),
                field(&c.by),
                field(&c.result),
                field(c.reason.as_deref().unwrap_or("")),
            ];
            changes.push_str(&row.join(","));
            changes.push('\n');
        }
        (skus, changes)
    }

    /// The statement as lines of text, for the PDF.
    pub fn lines(&self) -> Vec<String> {
        let mut out = vec![
            format!(
                "Licence statement {} - tenant {}",
                self.month, self.tenant_id
            ),
            match self.runs {
                0 => "No license-check run in this month: no seat figures to state.".to_string(),
                n => format!("From {n} license-check run(s) in the month; prices from [prices]."),
            },
            String::new(),
            format!(
                "{:<34} {:>7} {:>8} {:>6} {:>10} {:>12}",
                "SKU", "bought", "assigned", "peak", "unassigned", "cost"
            ),
        ];
        for l in &self.skus {
            let name: String = l.sku.chars().take(34).collect();
            out.push(format!(
                "{name:<34} {:>7} {:>8} {:>6} {:>10} {:>12}",
                l.bought,
                l.assigned,
                l.peak_assigned,
                l.unassigned,
                money(l.monthly_cost)
            ));
        }
        out.push(match self.skus.iter().any(|l| l.unit_price.is_some()) {
            true => format!("Total: {:.2} {}", self.total_cost, self.currency),
            false => "Total: no SKU has a price in [prices.monthly]".to_string(),
        });
        out.push(String::new());
        out.push(format!("Licence changes ({})", self.changes.len()));
        for c in &self.changes {
            let what = [
                (!c.added.is_empty()).then(|| format!("+{}", c.added.join(", +"))),
                (!c.removed.is_empty()).then(|| format!("-{}", c.removed.join(", -"))),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
            out.push(format!(
                "{} {} {what} by {}{}",
                c.at.format("%Y-%m-%d %H:%M"),
                c.user,
                c.by,
                match (c.result.as_str(), &c.reason) {
                    ("success", _) => String::new(),
                    (_, Some(why)) => format!(" (failed: {why})"),
                    _ => " (failed)".into(),
                }
            ));
        }
        out
    }
}

/// A PDF of plain pages holding `pages` (each a list of lines) in Courier 9 pt on A4: every byte counted, the
/// cross-reference table exact. Characters outside Latin-1 print as `?` (the standard fonts have no others).
pub fn pdf(pages: &[Vec<String>]) -> Vec<u8> {
    const LINES_PER_PAGE: usize = 70;
    let pages: Vec<Vec<String>> = pages.iter().map(|p| wrap(p)).collect();
    let mut chunks: Vec<&[String]> = Vec::new();
    for page in &pages {
        if page.is_empty() {
            chunks.push(&[]);
        }
        chunks.extend(page.chunks(LINES_PER_PAGE));
    }
    let mut objects: Vec<Vec<u8>> = Vec::new();
    // 1 catalog, 2 pages, 3 font; then a page and its content per chunk.
    let kids: Vec<String> = (0..chunks.len())
        .map(|i| format!("{} 0 R", 4 + 2 * i))
        .collect();
    objects.push(b"<< /Type /Catalog /Pages 2 0 R >>".to_vec());
    objects.push(
        format!(
            "<< /Type /Pages /Kids [{}] /Count {} >>",
            kids.join(" "),
            chunks.len()
        )
        .into_bytes(),
    );
    objects.push(
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Courier /Encoding /WinAnsiEncoding >>".to_vec(),
    );
    for (i, chunk) in chunks.iter().enumerate() {
        let content = page_content(chunk);
        objects.push(
            format!(
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 3 0 R >> >> /Contents {} 0 R >>",
                5 + 2 * i
            )
            .into_bytes(),
        );
        let mut stream = format!("<< /Length {} >>\nstream\n", content.len()).into_bytes();
        stream.extend_from_slice(&content);
        stream.extend_from_slice(b"\nendstream");
        objects.push(stream);
    }
    let mut out = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n".to_vec();
    let mut offsets = Vec::with_capacity(objects.len());
    for (i, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(b"\nendobj\n");
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for o in offsets {
        out.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

/// Lines longer than A4's width in Courier 9 pt (95 characters between the margins) continue on the next line,
/// indented.
fn wrap(lines: &[String]) -> Vec<String> {
    const WIDTH: usize = 95;
    let mut out = Vec::with_capacity(lines.len());
    for line in lines {
        let chars: Vec<char> = line.chars().collect();
        let (first, rest) = chars.split_at(chars.len().min(WIDTH));
        out.push(first.iter().collect());
        for part in rest.chunks(WIDTH - 4) {
            out.push(format!("    {}", part.iter().collect::<String>()));
        }
    }
    out
}

/// One page's text operators: lines from the top, 11 pt apart.
fn page_content(lines: &[String]) -> Vec<u8> {
    let mut c = b"BT\n/F1 9 Tf\n11 TL\n40 800 Td\n".to_vec();
    for line in lines {
        c.push(b'(');
        for ch in line.chars() {
            match ch {
                '(' | ')' | '\\' => {
                    c.push(b'\\');
                    c.push(ch as u8);
                }
                c2 if (c2 as u32) < 0x20 => c.push(b' '),
                c2 if (c2 as u32) <= 0xff => c.push(c2 as u32 as u8),
                _ => c.push(b'?'),
            }
        }
        c.extend_from_slice(b") Tj T*\n");
    }
    c.extend_from_slice(b"ET");
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, d, h, 0, 0)
            .single()
            .expect("time")
    }

    fn event(day: u32, user: &str, added: &[&str], removed: &[&str], by: &str) -> LicenseEvent {
        LicenseEvent {
            at: at(day, 10),
            actor: Some(by.into()),
            user_id: None,
            user_principal_name: Some(user.into()),
            added_sku_ids: added.iter().map(|s| s.to_string()).collect(),
            removed_sku_ids: removed.iter().map(|s| s.to_string()).collect(),
            result: "success".into(),
            reason: None,
            source: "directory_audit".into(),
            record_ids: vec![],
            correlation_id: None,
        }
    }

    #[test]
    fn the_months_figures_are_the_history_s() {
        let p = |d: u32, enabled: i64, consumed: i64| SeatPoint {
            at: at(d, 9),
            enabled,
            consumed,
        };
        let samples: Vec<(String, SeatPoint)> = vec![
            // October's last run is not November's.
            (
                "e3".into(),
                SeatPoint {
                    at: at(1, 9) - chrono::Duration::days(1),
                    enabled: 50,
                    consumed: 49,
                },
            ),
            ("e3".into(), p(1, 40, 30)),
            ("e3".into(), p(15, 40, 38)),
            ("e3".into(), p(30, 45, 35)),
            ("visio".into(), p(1, 5, 1)),
            ("visio".into(), p(30, 5, 0)),
        ];
        let events = vec![
            event(3, "adele@contoso.com", &["e3"], &[], "it.admin@contoso.com"),
            event(
                20,
                "=cmd()",
                &[],
                &["visio"],
                "Microsoft Azure AD Group-Based Licensing",
            ),
            LicenseEvent {
                at: at(1, 0) - chrono::Duration::seconds(1),
                ..event(1, "old@contoso.com", &["e3"], &[], "x")
            },
        ];
        // Both audit sources record a change under one correlation: it is one change.
        let mut events = events;
        events[0].correlation_id = Some("C-1".into());
        events.push(LicenseEvent {
            source: "management_api".into(),
            added_sku_ids: vec![],
            ..events[0].clone()
        });
        let name = |s: &str| match s {
            "e3" => "Office 365 E3".to_string(),
            other => other.to_uppercase(),
        };
        let price = |s: &str| (s == "e3").then_some(23.0);
        let m = Month::parse("2026-11").expect("month");
        let st = build(&StatementInput {
            tenant_id: "t",
            month: m,
            samples: &samples,
            events: &events,
            name: &name,
            price: &price,
            currency: "EUR",
        });
        assert_eq!(st.runs, 3);
        let e3 = &st.skus[0];
        assert_eq!(
            (e3.bought, e3.assigned, e3.peak_assigned, e3.unassigned),
            (45, 35, 38, 10),
            "month-end seats, the month's peak"
        );
        assert_eq!(
            (e3.monthly_cost, e3.unassigned_cost),
            (Some(1035.0), Some(230.0))
        );
        assert_eq!(st.total_cost, 1035.0, "SKUs without a price add nothing");
        assert_eq!(st.changes.len(), 2, "October's change is left out");
        assert_eq!(st.changes[0].added, ["Office 365 E3"]);
        let (skus, changes) = st.csv();
        assert!(
            skus.contains("t,2026-11,e3,Office 365 E3,45,35,38,10,23.00,1035.00,230.00,EUR"),
            "{skus}"
        );
        assert!(changes.contains(",'=cmd(),"), "formula-safe: {changes}");
    }

    #[test]
    fn months_parse_strictly_and_the_previous_one_wraps_the_year() {
        assert!(Month::parse("2026-13").is_err());
        assert!(Month::parse("2026-1").is_err());
        assert!(Month::parse("November").is_err());
        let jan = Utc
            .with_ymd_and_hms(2027, 1, 1, 6, 0, 0)
            .single()
            .expect("t");
        assert_eq!(Month::previous(jan).to_string(), "2026-12");
        assert_eq!(
            Month::parse("2026-12").expect("m").end(),
            Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0)
                .single()
                .expect("t")
        );
    }

    #[test]
    fn the_pdf_cross_reference_points_at_every_object() {
        let lines: Vec<String> = (0..150)
            .map(|i| format!("line {i} (Zoë) \\ done"))
            .collect();
        let long = pdf(&[vec!["x".repeat(200)]]);
        let shown = |b: &[u8]| b.windows(3).filter(|w| w == b") T").count();
        assert_eq!(shown(&long), 3, "200 characters wrap onto three lines");
        let bytes = pdf(&[lines, vec!["second customer".into()]]);
        assert!(bytes.starts_with(b"%PDF-1.4"));
        let text = String::from_utf8_lossy(&bytes).to_string();
        let xref: usize = text
            .rsplit("startxref\n")
            .next()
            .and_then(|t| t.lines().next())
            .and_then(|n| n.parse().ok())
            .expect("startxref");
        assert!(bytes[xref..].starts_with(b"xref\n"));
        // 3 pages for 150 lines at 70 a page, 1 for the second customer: 3 + 2 × 4 objects.
        let table = String::from_utf8_lossy(&bytes[xref..]).to_string();
        let count: usize = table
            .lines()
            .nth(1)
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|n| n.parse().ok())
            .expect("count");
        assert_eq!(count, 12);
        for (i, line) in table.lines().skip(3).take(count - 1).enumerate() {
            let offset: usize = line[..10].parse().expect("offset");
            assert!(
                bytes[offset..].starts_with(format!("{} 0 obj", i + 1).as_bytes()),
                "object {}",
                i + 1
            );
        }
        assert!(text.contains("/Count 4"));
        assert!(bytes.windows(4).any(|w| w == b"Zo\xeb\\"), "Latin-1 kept");
        assert!(text.contains("\\(Zo"), "parentheses escaped");
    }
}
