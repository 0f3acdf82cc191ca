//! `licensewatch demo`: the whole product against the built-in simulated tenant, 35 simulated days in well under
//! a minute. The simulator runs in-process on a local port and every function runs the way it runs in production:
//! the same use cases, real HTTP to the simulated Graph and Management API, an embedded SQLite state store and a
//! directory archive in a temporary folder, the simulator's recorded mail, and a signed webhook from a
//! "ticketing system" to the real remediation endpoint.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use licensewatch_core::adapters::notify::{Channel, ConsoleChannel, MailChannel};
use licensewatch_core::adapters::tickets::build_desk;
use licensewatch_core::domain::findings::Detail;
use licensewatch_core::domain::signing::WebhookSecret;
use licensewatch_core::policy::{
    FieldMap, Policy, SignatureScheme, TicketChannel, TicketSystemKind, WebhookSource,
};
use licensewatch_core::ports::clock::{Clock, FixedClock};
use licensewatch_core::usecases::check_licenses::check_licenses;
use licensewatch_core::usecases::fetch_audit::fetch_audit;
use licensewatch_core::usecases::notify_grace_period::notify_grace_period;
use licensewatch_core::usecases::webhook::WebhookAuth;
use licensewatch_sim::Scenario;
use serde::Serialize;
use serde_json::{Value, json};

use crate::serve::{App, Limits, drain_once, serve_with_limits};

/// Simulated days by default.
pub(crate) const DAYS: i64 = 35;
/// The day the service desk acts on the group-licensing error.
const TICKET_DAY: i64 = 3;
const WEBHOOK_ENV: &str = "LICENSEWATCH_DEMO_WEBHOOK_SECRET";
const DESK_USER_ENV: &str = "LICENSEWATCH_DEMO_SERVICENOW_USER";
const DESK_PASSWORD_ENV: &str = "LICENSEWATCH_DEMO_SERVICENOW_PASSWORD";

/// What `--json` prints.
#[derive(Debug, Serialize)]
pub(crate) struct DemoOutput {
    /// Simulated tenant.
    pub tenant_id: String,
    /// First simulated day.
    pub start: DateTime<Utc>,
    /// Days simulated after the first.
    pub days: i64,
    /// Every day with something to tell.
    pub timeline: Vec<Day>,
    /// Mailboxes licensed before their deadline.
    pub saved: Vec<Outcome>,
    /// Mailboxes whose access ended because nobody acted.
    pub lost: Vec<Outcome>,
    /// Group-licensing errors found on the first day, with their cause.
    pub group_errors: Vec<GroupError>,
    /// Notices sent, by audience.
    pub notices_sent: BTreeMap<String, usize>,
    /// Mail the simulated tenant recorded through Graph sendMail.
    pub mail_recorded: usize,
    /// Audit records archived over the run.
    pub audit_records_archived: usize,
    /// Remediations done through the signed webhook.
    pub remediations: Vec<Value>,
    /// The service desk's incidents at the end (a simulated ServiceNow).
    pub service_desk: Vec<crate::demo_desk::Incident>,
    /// Licences worth reclaiming at the end, by reason (`licensewatch reclaim` lists them).
    pub reclaim: BTreeMap<String, usize>,
    /// The real-time chapter: a bulk removal caught through Graph change notifications.
    pub realtime: Option<crate::demo_realtime::Realtime>,
    /// Where the state was kept (when `--state-dir` was given).
    pub state_dir: Option<PathBuf>,
    /// Wall time of the whole demo.
    pub elapsed_ms: u128,
}

/// One day of the story.
#[derive(Debug, Serialize)]
pub(crate) struct Day {
    /// Day number (0 = the first).
    pub day: i64,
    /// Simulated date.
    pub date: String,
    /// What happened.
    pub events: Vec<Value>,
}

/// A mailbox's fate.
#[derive(Debug, Serialize, Clone)]
pub(crate) struct Outcome {
    /// UPN.
    pub user_principal_name: String,
    /// Day it was saved or lost.
    pub day: i64,
    /// The access deadline.
    pub access_ends_at: DateTime<Utc>,
}

/// A group's licensing error.
#[derive(Debug, Serialize, Clone)]
pub(crate) struct GroupError {
    /// Group name.
    pub group: String,
    /// SKU that failed.
    pub sku_part_number: String,
    /// Error code (CountViolation, MutuallyExclusiveViolation, Other...).
    pub error: String,
    /// Users affected.
    pub users: Vec<String>,
    /// For `Other`: what really blocked the group.
    pub cause: Option<String>,
}

struct Demo {
    app: Arc<App>,
    clock: Arc<FixedClock>,
    sim_url: String,
    webhook_url: String,
    secret: WebhookSecret,
    http: reqwest::Client,
    channels: Vec<Box<dyn Channel>>,
    /// The service desk (a simulated ServiceNow) licensewatch opens incidents in and the remediations come from.
    desk: crate::demo_desk::DemoDesk,
}

/// How much faster than Microsoft's the demo's quota windows pass.
const DEMO_TIME_SCALE: f64 = 0.001;

/// Runs the demo.
pub(crate) async fn run(
    json_out: bool,
    days: i64,
    state_dir: Option<PathBuf>,
    html: Option<PathBuf>,
    csv: Option<PathBuf>,
) -> Result<(), String> {
    let started = std::time::Instant::now();
    let mut scenario = Scenario::default_story();
    // 35 days in seconds: Microsoft's quota windows (5 audit-log requests per 10 s) pass a thousand times faster
    // in the simulator and in licensewatch's pacer alike, so the demo keeps to the quotas without waiting them out.
    licensewatch_core::adapters::pacer::set_time_scale(DEMO_TIME_SCALE);
    let scaled = |ms: u64| (ms as f64 * DEMO_TIME_SCALE) as u64;
    scenario.behaviour.reports_quota_window_ms = scaled(scenario.behaviour.reports_quota_window_ms);
    scenario.behaviour.identity_quota_window_ms =
        scaled(scenario.behaviour.identity_quota_window_ms);
    let start = scenario.now;
    let sim = licensewatch_sim::start(scenario, ([127, 0, 0, 1], 0).into())
        .await
        .map_err(|e| format!("cannot start the simulated tenant: {e}"))?;
    let tmp = std::env::temp_dir().join(format!(
        "licensewatch-demo-{}",
        uuid::Uuid::new_v4().simple()
    ));
    if !(1..=120).contains(&days) {
        return Err(format!("--days {days} must be between 1 and 120"));
    }
    let dir = state_dir.clone().unwrap_or(tmp.clone());
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create '{}': {e}", dir.display()))?;
    let result = story(
        json_out,
        days,
        &sim,
        start,
        &dir,
        state_dir.is_some(),
        html,
        csv,
        started,
    )
    .await;
    if state_dir.is_none() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}

/// What the story has gathered so far, day after day.
#[derive(Default)]
struct Story {
    timeline: Vec<Day>,
    saved: Vec<Outcome>,
    lost: Vec<Outcome>,
    group_errors: Vec<GroupError>,
    notices: BTreeMap<String, usize>,
    archived: usize,
    remediations: Vec<Value>,
    /// Users whose lost access was already told.
    announced_lost: BTreeSet<String>,
    /// Open grace cases at the end of the previous day: user → access end.
    open_before: HashMap<String, DateTime<Utc>>,
}

/// One day's telling: events for `--json`, lines for people.
#[derive(Default)]
struct Today {
    events: Vec<Value>,
    lines: Vec<String>,
}

impl Today {
    fn tell(&mut self, event: Value, line: String) {
        self.events.push(event);
        self.lines.push(line);
    }
}

#[allow(clippy::too_many_arguments)]
async fn story(
    json_out: bool,
    days: i64,
    sim: &licensewatch_sim::SimHandle,
    start: DateTime<Utc>,
    dir: &std::path::Path,
    keep: bool,
    html: Option<PathBuf>,
    csv: Option<PathBuf>,
    started: std::time::Instant,
) -> Result<(), String> {
    let demo = setup(sim, start, dir).await?;
    let say = |line: String| {
        if !json_out {
            println!("{line}");
        }
    };
    say(format!(
        "licensewatch demo: a simulated Microsoft 365 tenant ({}) at {}, watched for {days} days.\n\
         Every function runs as in production: real HTTP to the simulated Graph and Management API, SQLite state,\n\
         mail recorded by the simulated tenant, incidents in a simulated ServiceNow that asks for the fixes.\n",
        sim.tenant_id, sim.base_url
    ));
    let mut story = Story::default();
    for day in 0..=days {
        if day > 0 {
            demo.advance(Duration::days(1)).await?;
        }
        let now = demo.clock.now();
        let mut today = Today::default();
        story.audit(&demo, &mut today).await?;
        let tenant = demo.app.rt.tenant_run();
        let report = check_licenses(
            &demo.app.rt.check_deps(),
            &tenant,
            &demo.app.rt.policy,
            &|_| {},
        )
        .await
        .map_err(|e| format!("license-check: {e}"))?;
        if report.remediations_confirmed > 0 {
            // The settled requests come back on the queue (SQS in production): the worker tells their tickets.
            drain_once(&demo.app, &demo.http).await;
            demo.confirmed(&mut story.remediations, &mut today).await?;
        }
        let open_now = story.new_cases(&demo, &report.findings, now, &mut today);
        if day == 0 {
            story.tenant_problems(&report.findings, &mut today);
        }
        story.outcomes(open_now, day, now, start, &mut today);
        // The ticketing system acts: more seats, then a signed reprocess webhook per user in error.
        if day == TICKET_DAY {
            let (events, lines, done) = demo.ticketing_system(&story.group_errors).await?;
            today.events.extend(events);
            today.lines.extend(lines);
            story.remediations.extend(done);
        }
        story.notices(&demo, &mut today).await?;
        if !today.lines.is_empty() {
            say(format!("Day {day:>2}  {}", now.format("%a %Y-%m-%d")));
            today.lines.iter().for_each(|l| say(l.clone()));
        }
        if !today.events.is_empty() {
            let date = now.format("%Y-%m-%d").to_string();
            story.timeline.push(Day {
                day,
                date,
                events: today.events,
            });
        }
    }
    // The month-end review: which licences nobody uses (saved, so the report page shows them too).
    let rt = &demo.app.rt;
    let reclaim = licensewatch_core::usecases::reclaim::reclaim(
        &rt.reclaim_deps(),
        &rt.tenant_run().tenant_id,
        &rt.reclaim_rules(),
        demo.clock.now(),
    )
    .await
    .map_err(|e| format!("reclaim: {e}"))?;
    if html.is_some() || csv.is_some() {
        let data = crate::report::load(&demo.app.rt).await?;
        crate::report::write(&data, html.as_deref(), csv.as_deref())?;
    }
    let mut output = story
        .finish(&demo, start, days, keep.then(|| dir.to_path_buf()), started)
        .await?;
    output.reclaim = reclaim_counts(&reclaim);
    output.realtime = Some(crate::demo_realtime::chapter(demo.clock.now(), dir).await?);
    output.elapsed_ms = started.elapsed().as_millis();
    if json_out {
        println!(
            "{}",
            serde_json::to_string_pretty(&output).map_err(|e| e.to_string())?
        );
    } else {
        summary(&output, html.as_deref())
            .iter()
            .for_each(|l| say(l.clone()));
    }
    Ok(())
}

impl Story {
    /// audit-fetch (every 15 minutes in production; once a day is enough for the story).
    async fn audit(&mut self, demo: &Demo, today: &mut Today) -> Result<(), String> {
        let audit = fetch_audit(&demo.app.rt.audit_deps(), &demo.app.rt.policy)
            .await
            .map_err(|e| format!("audit-fetch: {e}"))?;
        self.archived += audit.records_archived;
        if audit.records_archived > 0 {
            today.tell(
                json!({"type": "audit_archived", "records": audit.records_archived,
                    "duplicates_skipped": audit.duplicates_skipped, "license_events": audit.license_events}),
                format!(
                    "  audit-fetch   archived {} audit record(s) ({} duplicate(s) skipped), {} licence event(s)",
                    audit.records_archived, audit.duplicates_skipped, audit.license_events
                ),
            );
        }
        Ok(())
    }

    /// Tells the grace cases license-check opened today; returns every open case (user → access end).
    fn new_cases(
        &self,
        demo: &Demo,
        findings: &[licensewatch_core::domain::findings::Finding],
        now: DateTime<Utc>,
        today: &mut Today,
    ) -> HashMap<String, DateTime<Utc>> {
        let mut open_now = HashMap::new();
        for f in findings {
            let Detail::UnlicensedMailbox {
                user_principal_name: upn,
                access_ends_at,
                days_left,
                grace_evidence,
                attempted_sku_ids,
                attempted_sku_source,
                ..
            } = &f.detail
            else {
                continue;
            };
            open_now.insert(upn.clone(), *access_ends_at);
            if self.open_before.contains_key(upn) || *access_ends_at <= now {
                continue;
            }
            let evidence = serde_json::to_value(grace_evidence)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            let attempted = crate::check::attempted(
                &demo.app.rt,
                attempted_sku_ids.as_deref(),
                *attempted_sku_source,
            );
            today.tell(
                json!({"type": "grace_case_opened", "user_principal_name": upn,
                    "access_ends_at": access_ends_at, "days_left": days_left, "evidence": grace_evidence}),
                format!(
                    "  license-check {upn}: mailbox has no Exchange licence; access ends {} ({days_left} day(s) left, from {}{attempted})",
                    access_ends_at.format("%Y-%m-%d"),
                    evidence_words(&evidence),
                ),
            );
        }
        open_now
    }

    /// The first day's tenant-wide problems: group-licensing errors with their cause, SKU capacity.
    fn tenant_problems(
        &mut self,
        findings: &[licensewatch_core::domain::findings::Finding],
        today: &mut Today,
    ) {
        self.group_errors = group_errors_of(findings);
        for g in &self.group_errors {
            let cause = g
                .cause
                .as_deref()
                .map(|c| format!(" (real cause: {c})"))
                .unwrap_or_default();
            today.tell(
                serde_json::to_value(g).unwrap_or_default(),
                format!(
                    "  license-check group '{}' cannot license {} user(s) with {}: {}{cause}",
                    g.group,
                    g.users.len(),
                    g.sku_part_number,
                    g.error,
                ),
            );
        }
        for f in findings {
            if let Detail::SkuCapacity {
                sku_part_number,
                available,
                reason,
                users_in_count_violation,
                ..
            } = &f.detail
            {
                today.tell(
                    json!({"type": "sku_capacity", "sku_part_number": sku_part_number, "available": available,
                        "users_in_count_violation": users_in_count_violation}),
                    format!("  license-check {sku_part_number}: {reason}"),
                );
            }
        }
    }

    /// Cases that closed since yesterday were saved; open cases past their deadline were lost.
    fn outcomes(
        &mut self,
        open_now: HashMap<String, DateTime<Utc>>,
        day: i64,
        now: DateTime<Utc>,
        start: DateTime<Utc>,
        today: &mut Today,
    ) {
        let mut before: Vec<(&String, &DateTime<Utc>)> = self.open_before.iter().collect();
        before.sort();
        for (upn, ends) in before {
            if !open_now.contains_key(upn) && *ends > now - Duration::days(1) {
                self.saved.push(Outcome {
                    user_principal_name: upn.clone(),
                    day,
                    access_ends_at: *ends,
                });
                today.tell(
                    json!({"type": "mailbox_saved", "user_principal_name": upn, "access_ends_at": ends}),
                    format!(
                        "  SAVED         {upn} now has an Exchange licence, {} day(s) before access would have ended",
                        (*ends - now).num_days().max(0)
                    ),
                );
            }
        }
        let mut current: Vec<(&String, &DateTime<Utc>)> = open_now.iter().collect();
        current.sort();
        for (upn, ends) in current {
            if *ends <= start && self.announced_lost.insert(upn.clone()) {
                today.tell(
                    json!({"type": "mailbox_already_cut_off", "user_principal_name": upn, "access_ended_at": ends}),
                    format!(
                        "  license-check {upn}: access already ended {}, before licensewatch was watching",
                        ends.format("%Y-%m-%d")
                    ),
                );
            } else if *ends <= now && self.announced_lost.insert(upn.clone()) {
                self.lost.push(Outcome {
                    user_principal_name: upn.clone(),
                    day,
                    access_ends_at: *ends,
                });
                today.tell(
                    json!({"type": "mailbox_lost", "user_principal_name": upn, "access_ended_at": ends}),
                    format!(
                        "  LOST          {upn}: access ended {} because nobody assigned a licence",
                        ends.format("%Y-%m-%d %H:%M UTC")
                    ),
                );
            }
        }
        self.open_before = open_now;
    }

    /// grace-period-notify, told one line per (user, audience, notice).
    async fn notices(&mut self, demo: &Demo, today: &mut Today) -> Result<(), String> {
        let tenant = demo.app.rt.tenant_run().tenant_id;
        let sent = notify_grace_period(
            &demo.app.rt.notify_deps(&demo.channels),
            &tenant,
            &demo.app.rt.policy,
            false,
        )
        .await
        .map_err(|e| format!("grace-period-notify: {e}"))?;
        let mut per_case: BTreeMap<(String, String, String), usize> = BTreeMap::new();
        let mut ticketed: BTreeSet<(String, String)> = BTreeSet::new();
        for n in sent.sent.iter().filter(|n| n.channel != "console") {
            let what = notice_words(n, &self.announced_lost);
            if n.channel.starts_with("ticket:") {
                today.events.push(
                    json!({"type": "ticket_filed", "user_principal_name": n.user_principal_name,
                    "kind": n.kind, "threshold_days": n.threshold_days, "channel": n.channel}),
                );
                ticketed.insert((n.user_principal_name.clone(), what));
                continue;
            }
            *self
                .notices
                .entry(n.audience.as_str().to_string())
                .or_default() += 1;
            *per_case
                .entry((
                    n.user_principal_name.clone(),
                    n.audience.as_str().to_string(),
                    what,
                ))
                .or_default() += 1;
            today.events.push(json!({"type": "notice_sent", "user_principal_name": n.user_principal_name,
                "audience": n.audience, "kind": n.kind, "threshold_days": n.threshold_days, "channel": n.channel}));
        }
        for ((upn, audience, what), count) in per_case {
            let about = if upn.is_empty() {
                String::new()
            } else {
                format!(" about {upn}")
            };
            let recipients = if count > 1 {
                format!(" ({count} recipients)")
            } else {
                String::new()
            };
            let desk = if audience == "admin" && ticketed.contains(&(upn.clone(), what.clone())) {
                " and the service desk"
            } else {
                ""
            };
            today.lines.push(format!(
                "  notify        {what}{about} to the {audience}{recipients}{desk}"
            ));
        }
        Ok(())
    }

    /// The demo's result, with the mail the simulated tenant recorded.
    async fn finish(
        self,
        demo: &Demo,
        start: DateTime<Utc>,
        days: i64,
        state_dir: Option<PathBuf>,
        started: std::time::Instant,
    ) -> Result<DemoOutput, String> {
        let mail = demo
            .http
            .get(format!("{}/_sim/mail", demo.sim_url))
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json::<Vec<Value>>()
            .await
            .map_err(|e| e.to_string())?;
        Ok(DemoOutput {
            tenant_id: demo.app.rt.tenant_run().tenant_id,
            start,
            days,
            timeline: self.timeline,
            saved: self.saved,
            lost: self.lost,
            group_errors: self.group_errors,
            notices_sent: self.notices,
            mail_recorded: mail.len(),
            audit_records_archived: self.archived,
            remediations: self.remediations,
            service_desk: demo.desk.incidents(),
            reclaim: BTreeMap::new(),
            realtime: None,
            state_dir,
            elapsed_ms: started.elapsed().as_millis(),
        })
    }
}

/// A notice in an administrator's words.
fn notice_words(
    n: &licensewatch_core::usecases::notify_grace_period::SentNotice,
    lost: &BTreeSet<String>,
) -> String {
    match (n.kind.as_str(), n.threshold_days) {
        // After access ends, the thresholds count down to the deletion of the mailbox data.
        ("threshold", Some(d)) if lost.contains(&n.user_principal_name) => {
            format!("{d}-day data-deletion warning")
        }
        ("threshold", Some(d)) => format!("{d}-day warning"),
        ("alert", _) => {
            let condition = n
                .case_id
                .split(':')
                .next()
                .unwrap_or_default()
                .replace('_', " ");
            format!("alert ({condition})")
        }
        (k, _) => k.replace('_', " "),
    }
}

/// The closing lines for people.
fn summary(output: &DemoOutput, html: Option<&std::path::Path>) -> Vec<String> {
    let mut lines = vec![
        String::new(),
        format!(
            "After {} days: {} mailbox(es) saved ({}), {} lost because nobody acted ({}).",
            output.days,
            output.saved.len(),
            names(&output.saved),
            output.lost.len(),
            names(&output.lost)
        ),
        format!(
            "{} notice(s) to admins and {} to users; the simulated tenant recorded {} mail(s); {} audit record(s) archived.",
            output.notices_sent.get("admin").copied().unwrap_or(0),
            output.notices_sent.get("user").copied().unwrap_or(0),
            output.mail_recorded,
            output.audit_records_archived
        ),
    ];
    let resolved = output
        .service_desk
        .iter()
        .filter(|i| i.state == "6")
        .count();
    lines.push(format!(
        "The service desk (ServiceNow, simulated) holds {} incident(s) licensewatch opened, one per case or alert, {resolved} resolved; {} work note(s), the remediations' outcomes among them.",
        output.service_desk.len(),
        output.service_desk.iter().map(|i| i.work_notes.len()).sum::<usize>()
    ));
    if !output.reclaim.is_empty() {
        let parts: Vec<String> = output
            .reclaim
            .iter()
            .map(|(reason, n)| format!("{n} {}", reason.replace('_', " ")))
            .collect();
        lines.push(format!(
            "Licences worth reclaiming at the end: {} (`licensewatch reclaim` lists them with the command to remove each).",
            parts.join(", ")
        ));
    }
    if let Some(r) = &output.realtime {
        lines.extend(crate::demo_realtime::lines(r));
    }
    if let Some(h) = html {
        lines.push(format!("Report written to {}", h.display()));
    }
    lines.push(format!(
        "Done in {:.1} s.",
        output.elapsed_ms as f64 / 1000.0
    ));
    lines
}

/// Reclamation rows counted by reason.
fn reclaim_counts(
    report: &licensewatch_core::domain::reclaim::ReclaimReport,
) -> BTreeMap<String, usize> {
    use licensewatch_core::domain::reclaim::Reason;
    let mut counts = BTreeMap::new();
    for r in &report.rows {
        let reason = match r.reason {
            Reason::Inactive { .. } => "inactive",
            Reason::NeverUsed { .. } => "never_used",
            Reason::Disabled => "disabled",
            Reason::SharedMailbox { .. } => "shared_mailbox",
            Reason::Overlapping { .. } => "overlapping",
        };
        *counts.entry(reason.to_string()).or_default() += 1;
    }
    counts
}

/// The grace evidence in an administrator's words.
fn evidence_words(kind: &str) -> String {
    match kind {
        "audit_failed_assignment" => "the failed licence assignment in the audit log".into(),
        "audit_removal" => "the licence removal in the audit log".into(),
        "snapshot_diff" => "the day licensewatch saw the licence go".into(),
        "created" => "the account's creation date".into(),
        "first_seen" => "when licensewatch first saw it; the real deadline may be earlier".into(),
        other => other.replace('_', " "),
    }
}

fn names(o: &[Outcome]) -> String {
    o.iter()
        .map(|o| o.user_principal_name.split('@').next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Groups the first day's group-licensing errors by group, SKU and error.
fn group_errors_of(findings: &[licensewatch_core::domain::findings::Finding]) -> Vec<GroupError> {
    let mut groups: BTreeMap<(String, String, String), GroupError> = BTreeMap::new();
    for f in findings {
        if let Detail::LicenseAssignmentError {
            user_principal_name,
            sku_part_number,
            error,
            assigned_by_group: Some(group_id),
            group_display_name,
            cause,
            ..
        } = &f.detail
        {
            let group = group_display_name
                .clone()
                .unwrap_or_else(|| group_id.clone());
            let g = groups
                .entry((group.clone(), sku_part_number.clone(), error.to_string()))
                .or_insert_with(|| GroupError {
                    group,
                    sku_part_number: sku_part_number.clone(),
                    error: error.to_string(),
                    users: Vec::new(),
                    cause: cause
                        .as_ref()
                        .map(|c| format!("{} on {}", c.error, c.sku_part_number)),
                });
            g.users.push(user_principal_name.clone());
        }
    }
    groups.into_values().collect()
}

async fn setup(
    sim: &licensewatch_sim::SimHandle,
    start: DateTime<Utc>,
    dir: &std::path::Path,
) -> Result<Demo, String> {
    let mut policy = Policy::default();
    policy.notify.admins = vec!["it-team@contoso.com".into()];
    policy.notify.sender = "it.admin@contoso.onmicrosoft.com".into();
    policy.webhook.secrets_env = vec![WEBHOOK_ENV.into()];
    let desk = crate::demo_desk::DemoDesk::start().await?;
    policy.notify.tickets = vec![TicketChannel {
        system: TicketSystemKind::Servicenow,
        url: desk.url.clone(),
        user_env: DESK_USER_ENV.into(),
        password_env: DESK_PASSWORD_ENV.into(),
        queue: "Service Desk".into(),
        ..Default::default()
    }];
    // The desk's flow posts the incident as ServiceNow holds it, signed per Standard Webhooks.
    policy.webhook.sources = vec![WebhookSource {
        name: "servicenow".into(),
        scheme: SignatureScheme::StandardWebhooks,
        secret_env: WEBHOOK_ENV.into(),
        fields: FieldMap {
            user: "/u_affected_user".into(),
            ticket_id: "/number".into(),
            ..Default::default()
        },
        ..Default::default()
    }];
    let mut rt =
        crate::sim_runtime::sim_runtime(sim, dir, "state.db", "audit-archive", &[], policy).await?;
    let clock = Arc::new(FixedClock::at(start));
    rt.clock = clock.clone();
    // The simulated tenant's clock moves a day at a time, not in real time: one read back after a reprocess shows
    // whether group licensing processed it at once; otherwise it stays pending until the next day's check.
    rt.verify_reads = (1, std::time::Duration::ZERO);
    // A fresh signing secret shared by the demo's "ticketing system" and the endpoint.
    let raw: [u8; 24] = rand_bytes();
    let secret_text = format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    );
    let secret = WebhookSecret::parse(&secret_text).map_err(|e| e.to_string())?;
    let lookup = |k: &str| match k {
        WEBHOOK_ENV => Some(secret_text.clone()),
        DESK_USER_ENV => Some(crate::demo_desk::USER.to_string()),
        DESK_PASSWORD_ENV => Some(crate::demo_desk::PASSWORD.to_string()),
        _ => None,
    };
    let auth = WebhookAuth::from_policy(&rt.policy, &lookup).map_err(|e| e.to_string())?;
    let desk_channel = || {
        build_desk(&rt.policy.notify.tickets[0], 0, &rt.microsoft.http, &lookup)
            .map_err(|p| format!("the demo's service desk: {p:?}"))
    };
    let channels: Vec<Box<dyn Channel>> = vec![
        Box::new(MailChannel::new(
            rt.microsoft.graph.clone(),
            rt.policy.notify.sender.clone(),
            rt.policy.notify.admins.clone(),
        )),
        Box::new(ConsoleChannel::new(true)),
        Box::new(desk_channel()?),
    ];
    let desks: Vec<Box<dyn Channel>> = vec![Box::new(desk_channel()?)];
    let app = Arc::new(App {
        rt,
        auth: Some(auth),
        changes: None,
        desks,
    });
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .map_err(|e| format!("cannot open the webhook endpoint: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let server = app.clone();
    tokio::spawn(async move {
        serve_with_limits(listener, server, Limits::default(), std::future::pending()).await;
    });
    Ok(Demo {
        app,
        clock,
        sim_url: sim.base_url.clone(),
        webhook_url: format!("http://{addr}"),
        secret,
        http: reqwest::Client::new(),
        channels,
        desk,
    })
}

fn rand_bytes() -> [u8; 24] {
    let mut out = [0u8; 24];
    let a = uuid::Uuid::new_v4().into_bytes();
    let b = uuid::Uuid::new_v4().into_bytes();
    out[..16].copy_from_slice(&a);
    out[16..].copy_from_slice(&b[..8]);
    out
}

impl Demo {
    /// Moves the simulated tenant's clock and ours together.
    async fn advance(&self, by: Duration) -> Result<(), String> {
        self.http
            .post(format!("{}/_sim/clock", self.sim_url))
            .json(&json!({"advance_minutes": by.num_minutes()}))
            .send()
            .await
            .map_err(|e| format!("simulated tenant: {e}"))?;
        self.clock.advance(by);
        Ok(())
    }

    /// license-check confirmed pending remediations: each record is read again over the endpoint the ticketing
    /// system polls, and the story tells the final status.
    async fn confirmed(&self, records: &mut [Value], today: &mut Today) -> Result<(), String> {
        for record in records.iter_mut().filter(|r| r["status"] == "pending") {
            let id = record["remediation_id"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let now: Value = self
                .http
                .get(format!("{}/remediations/{id}", self.webhook_url))
                .send()
                .await
                .map_err(|e| e.to_string())?
                .json()
                .await
                .map_err(|e| e.to_string())?;
            if now["status"] == "pending" {
                continue;
            }
            let user = now["user"].as_str().unwrap_or_default().to_string();
            let status = now["status"].as_str().unwrap_or_default().to_string();
            today.events.push(json!({"type": "remediation_confirmed", "remediation_id": id, "status": status, "user_principal_name": user}));
            today.lines.push(format!(
                "  license-check group licensing has processed {user}'s reprocess: {status}"
            ));
            *record = now;
        }
        Ok(())
    }

    /// The incident licensewatch opened for `user`'s case (the desk's own, opened by hand, when there is none).
    fn incident_of(&self, user: &str) -> crate::demo_desk::Incident {
        self.desk
            .incidents()
            .into_iter()
            .find(|i| i.short_description.contains(user))
            .unwrap_or_else(|| self.desk.open(&format!("Reprocess the licences of {user}")))
    }

    /// The service desk buys the missing seats for the failing group's SKU, then its ticketing system asks
    /// licensewatch (signed webhook) to reprocess each user in error.
    async fn ticketing_system(
        &self,
        groups: &[GroupError],
    ) -> Result<(Vec<Value>, Vec<String>, Vec<Value>), String> {
        let mut events = Vec::new();
        let mut lines = Vec::new();
        let mut outcomes = Vec::new();
        let Some(group) = groups.iter().find(|g| g.error == "CountViolation") else {
            return Ok((events, lines, outcomes));
        };
        let tenant = self.app.rt.tenant_run().tenant_id;
        let runs = self
            .app
            .rt
            .store
            .runs(&tenant, 1)
            .await
            .map_err(|e| e.to_string())?;
        let sku = runs
            .last()
            .and_then(|r| {
                r.skus
                    .iter()
                    .find(|s| s.part_number == group.sku_part_number)
            })
            .cloned()
            .ok_or_else(|| format!("no SKU {} in the last run", group.sku_part_number))?;
        let enabled = sku.enabled + group.users.len() as i64;
        self.http
            .post(format!("{}/_sim/skus/{}/seats", self.sim_url, sku.sku_id))
            .json(&json!({"enabled": enabled}))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        events.push(json!({"type": "seats_bought", "sku_part_number": group.sku_part_number, "enabled": enabled}));
        lines.push(format!(
            "  service desk  buys {} more {} seat(s); its flow asks licensewatch from each user's incident",
            group.users.len(),
            group.sku_part_number
        ));
        let mut users: HashMap<String, String> = HashMap::new();
        for (i, user) in group.users.iter().enumerate() {
            let incident = self.incident_of(user);
            let body = serde_json::to_vec(&json!({
                "number": incident.number,
                "short_description": incident.short_description,
                "u_affected_user": user,
            }))
            .map_err(|e| e.to_string())?;
            let id = format!("msg_demo_{}", i + 1);
            let ts = self.clock.now().timestamp();
            let resp = self
                .http
                .post(format!("{}/webhooks/servicenow", self.webhook_url))
                .header("content-type", "application/json")
                .header("webhook-id", &id)
                .header("webhook-timestamp", ts.to_string())
                .header("webhook-signature", self.secret.sign(&id, ts, &body))
                .body(body)
                .send()
                .await
                .map_err(|e| format!("webhook: {e}"))?;
            let status = resp.status().as_u16();
            let answer: Value = resp.json().await.unwrap_or_default();
            if let Some(id) = answer["remediation_id"].as_str() {
                users.insert(id.to_string(), user.clone());
            }
            events.push(json!({"type": "webhook_received", "user_principal_name": user, "http_status": status,
                "remediation_id": answer["remediation_id"], "status": answer["status"], "incident": incident.number}));
            lines.push(format!(
                "  webhook       signed POST /webhooks/servicenow for {user} ({}): {status} {}",
                incident.number,
                answer["status"].as_str().unwrap_or("")
            ));
        }
        for (id, status) in drain_once(&self.app, &self.http).await {
            let record = self
                .http
                .get(format!("{}/remediations/{id}", self.webhook_url))
                .send()
                .await
                .map_err(|e| e.to_string())?
                .json::<Value>()
                .await
                .unwrap_or_default();
            let user = users.get(&id).cloned().unwrap_or_default();
            events.push(json!({"type": "remediation_done", "remediation_id": id, "status": status, "user_principal_name": user}));
            lines.push(format!(
                "  reprocess-user group licences of {user} reprocessed: {status}{}",
                if status == "pending" {
                    " (Microsoft processes group licences asynchronously)"
                } else {
                    ""
                }
            ));
            outcomes.push(record);
        }
        Ok((events, lines, outcomes))
    }
}
