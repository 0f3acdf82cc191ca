//! license-check: snapshot every user's licence state, SKU capacity and group-licensing errors; diff with the
//! previous run; keep first-seen history; raise findings; follow grace cases; queue safe remediations.

use std::collections::{BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::adapters::graph::GraphClient;
use crate::adapters::graph::types::{DirectoryObject, Group, SubscribedSku, USER_SELECT, User};
use crate::domain::catalog::Catalog;
use crate::domain::findings::{Attempt, AttemptSource, Cause, Detail, Finding, Severity};
use crate::domain::grace::{self, Evidence, EvidenceKind};
use crate::domain::license_event::LicenseEvent;
use crate::domain::snapshot::{LicenseChange, PreviousRun, SkuSnap, Snapshot, UserSnapshot};
use crate::error::CoreError;
use crate::policy::Policy;
use crate::ports::clock::Clock;
use crate::ports::store::{
    Admitted, Alert, GraceCase, HistoryEntry, RemediationQueue, RemediationRecord,
    RemediationRequest, RemediationStore, StateStore,
};
use crate::usecases::lease::{self, RunLease};

/// The ports license-check uses.
pub struct CheckDeps<'a> {
    /// Graph.
    pub graph: &'a GraphClient,
    /// State.
    pub store: &'a dyn StateStore,
    /// Where auto-remediation requests go.
    pub queue: &'a dyn RemediationQueue,
    /// Remediation records and the shared action budget.
    pub remediations: &'a dyn RemediationStore,
    /// Time.
    pub clock: &'a dyn Clock,
    /// SKU names.
    pub catalog: &'a Catalog,
    /// Called at each write boundary; an error there stops the run as a crash would (tests).
    pub crash: &'a (dyn Fn(CheckStep) -> Result<(), CoreError> + Sync),
}

/// license-check's write boundaries, for crash tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckStep {
    /// Alerts are in step with this run's conditions.
    AfterAlerts,
    /// Grace cases are written.
    AfterCases,
    /// History is appended.
    AfterHistory,
    /// Auto-reprocess requests are queued.
    AfterQueue,
    /// The snapshot is saved (the next run diffs against it).
    AfterSnapshot,
}

/// The crash hook of production runs: never crashes.
pub fn no_crash(_: CheckStep) -> Result<(), CoreError> {
    Ok(())
}

/// A mailbox on a disabled account (shared or resource mailbox): reported apart, never a grace case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisabledMailbox {
    /// User id.
    pub user_id: String,
    /// UPN.
    pub user_principal_name: String,
    /// Holds an enabled Exchange plan.
    pub licensed: bool,
}

/// The result of one run (`licensewatch check --json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckReport {
    /// Tenant.
    pub tenant_id: String,
    /// Run time.
    pub run_at: DateTime<Utc>,
    /// True when there was no previous snapshot (no diff findings).
    pub first_run: bool,
    /// Users read.
    pub users_scanned: usize,
    /// User pages read.
    pub pages: u32,
    /// Findings, most severe first.
    pub findings: Vec<Finding>,
    /// Count per severity.
    pub counts: BTreeCounts,
    /// Shared/resource mailboxes on disabled accounts.
    pub disabled_mailboxes: Vec<DisabledMailbox>,
    /// Grace cases opened, updated and closed by this run.
    pub grace_cases: CaseCounts,
    /// Reprocess requests queued by `auto_reprocess`.
    pub remediations_queued: usize,
    /// Set when the run did nothing because another license-check run for the tenant was in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

/// Findings per severity.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct BTreeCounts {
    /// critical
    pub critical: usize,
    /// warning
    pub warning: usize,
    /// info
    pub info: usize,
}

/// Grace-case book-keeping of a run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct CaseCounts {
    /// New cases.
    pub opened: usize,
    /// Cases still open.
    pub open: usize,
    /// Cases closed this run.
    pub closed: usize,
}

/// Per-tenant settings for a run.
#[derive(Debug, Clone)]
pub struct TenantRun {
    /// Tenant id.
    pub tenant_id: String,
    /// Delayed Delicensing enabled.
    pub delayed_delicensing: bool,
}

#[derive(Deserialize)]
struct Page<T> {
    value: Vec<T>,
}

/// The stable case id of a user's grace case in a tenant.
pub fn case_id(tenant_id: &str, user_id: &str) -> String {
    let h = Sha256::digest(format!(
        "{}|{}",
        tenant_id.to_ascii_lowercase(),
        user_id.to_ascii_lowercase()
    ));
    format!(
        "gc-{}",
        h.iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

/// Runs license-check for one tenant. `progress` is called after each page with the users read so far.
pub async fn check_licenses(
    deps: &CheckDeps<'_>,
    tenant: &TenantRun,
    policy: &Policy,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<CheckReport, CoreError> {
    let now = deps.clock.now();
    let lease = match lease::take(deps.store, "license-check", &tenant.tenant_id, now).await? {
        Ok(lease) => lease,
        Err(why) => {
            tracing::warn!(tenant = %tenant.tenant_id, "{why}");
            return Ok(CheckReport {
                tenant_id: tenant.tenant_id.clone(),
                run_at: now,
                first_run: false,
                users_scanned: 0,
                pages: 0,
                findings: Vec::new(),
                counts: BTreeCounts::default(),
                disabled_mailboxes: Vec::new(),
                grace_cases: CaseCounts::default(),
                remediations_queued: 0,
                skipped: Some(why),
            });
        }
    };
    let result = check_under(deps, tenant, policy, progress, &lease).await;
    let released = lease.release().await;
    let report = result?;
    released?;
    Ok(report)
}

async fn check_under(
    deps: &CheckDeps<'_>,
    tenant: &TenantRun,
    policy: &Policy,
    progress: &(dyn Fn(usize) + Sync),
    lease: &RunLease<'_>,
) -> Result<CheckReport, CoreError> {
    let now = deps.clock.now();
    let skus: Page<SubscribedSku> = deps.graph.get("subscribedSkus").await?;
    let mut users: Vec<UserSnapshot> = Vec::new();
    let mut pager = deps
        .graph
        .pages::<User>(&format!("users?$select={USER_SELECT}&$top=999"));
    while let Some(page) = pager.next_page().await? {
        // Each page is distilled and dropped at once: memory holds compact snapshots, never the raw tenant JSON.
        users.extend(page.iter().map(User::snapshot));
        progress(users.len());
    }
    users.sort_by(|a, b| a.id.cmp(&b.id));
    users.dedup_by(|a, b| a.id == b.id);
    tracing::debug!(
        users = users.len(),
        pages = pager.pages_fetched(),
        "users read"
    );
    let groups = groups_with_errors(deps.graph).await?;

    let snapshot = Snapshot {
        tenant_id: tenant.tenant_id.clone(),
        taken_at: now,
        skus: skus
            .value
            .iter()
            .map(|s| SkuSnap {
                sku_id: s.sku_id.to_ascii_lowercase(),
                part_number: s.sku_part_number.clone(),
                enabled: s.prepaid_units.enabled,
                consumed: s.consumed_units,
                warning: s.prepaid_units.warning,
                suspended: s.prepaid_units.suspended,
            })
            .collect(),
        users,
    };
    let previous = deps.store.previous_run(&tenant.tenant_id).await?;
    if let Some(p) = &previous
        && deps.store.runs(&tenant.tenant_id, 1).await?.is_empty()
    {
        // The first run saved its snapshot and died before its baseline history and run record: write the
        // baseline from that snapshot now (entries already written are stored once).
        let users: Vec<(&str, &str, Vec<&String>)> = p
            .users
            .iter()
            .map(|u| (u.id.as_str(), u.upn.as_str(), u.licenses.iter().collect()))
            .collect();
        let n = write_baseline(deps, &tenant.tenant_id, &users, p.taken_at).await?;
        tracing::warn!(
            entries = n,
            "completed the baseline history of an interrupted first run"
        );
    }
    let events = deps.store.license_events(&tenant.tenant_id, None).await?;
    tracing::debug!(
        previous = previous.is_some(),
        events = events.len(),
        "state read"
    );
    let part = |sku: &str| -> String {
        snapshot
            .skus
            .iter()
            .find(|s| s.sku_id == sku)
            .map(|s| s.part_number.clone())
            .or_else(|| deps.catalog.sku(sku).map(|n| n.part_number.clone()))
            .unwrap_or_default()
    };

    let mut findings = Vec::new();
    let mut disabled_mailboxes = Vec::new();
    // Users in CountViolation per SKU.
    let mut count_violations: HashMap<String, Vec<&UserSnapshot>> = HashMap::new();
    for u in &snapshot.users {
        for s in &u.states {
            if !matches!(s.state.as_str(), "Error" | "ActiveWithError") {
                continue;
            }
            let error = s.error.clone().unwrap_or_else(|| "Unknown".into());
            if error == "CountViolation" {
                count_violations
                    .entry(s.sku_id.clone())
                    .or_default()
                    .push(u);
            }
            let cause = (error == "Other")
                .then(|| {
                    u.states
                        .iter()
                        .find(|o| {
                            o.group == s.group
                                && o.sku_id != s.sku_id
                                && o.error.as_deref().is_some_and(|e| e != "Other")
                        })
                        .map(|o| Cause {
                            sku_id: o.sku_id.clone(),
                            sku_part_number: part(&o.sku_id),
                            error: o.error.clone().unwrap_or_default(),
                        })
                })
                .flatten();
            findings.push(Finding {
                severity: Severity::Warning,
                detail: Detail::LicenseAssignmentError {
                    user_id: u.id.clone(),
                    user_principal_name: u.upn.clone(),
                    sku_id: s.sku_id.clone(),
                    sku_part_number: part(&s.sku_id),
                    state: s.state.clone(),
                    error,
                    assigned_by_group: s.group.clone(),
                    group_display_name: s.group.as_ref().and_then(|g| groups.get(g).cloned()),
                    cause,
                },
            });
        }
        if !u.account_enabled && !u.licenses.is_empty() {
            findings.push(Finding {
                severity: Severity::Info,
                detail: Detail::LicensedDisabledAccount {
                    user_id: u.id.clone(),
                    user_principal_name: u.upn.clone(),
                    sku_ids: u.sku_ids().cloned().collect(),
                },
            });
        }
        if !u.account_enabled && !u.guest && u.mailbox {
            disabled_mailboxes.push(DisabledMailbox {
                user_id: u.id.clone(),
                user_principal_name: u.upn.clone(),
                licensed: u.exchange_enabled,
            });
        }
    }

    for s in &snapshot.skus {
        let cv = count_violations.get(&s.sku_id).map_or(0, Vec::len);
        let available = s.available();
        let (severity, reason) = if available <= 0 && cv > 0 {
            (
                Severity::Critical,
                format!("no seats left and {cv} user(s) waiting in CountViolation"),
            )
        } else if available <= 0 && s.enabled > 0 {
            (Severity::Warning, "no seats left".to_string())
        } else if cv > 0 {
            (
                Severity::Warning,
                format!(
                    "{available} seat(s) free but {cv} user(s) still in CountViolation: reprocess them"
                ),
            )
        } else if s.warning > 0 || s.suspended > 0 {
            (
                Severity::Warning,
                format!(
                    "{} seat(s) in warning and {} suspended: a subscription is lapsing",
                    s.warning, s.suspended
                ),
            )
        } else if s.enabled > 0 && available <= policy.check.sku_low_seats {
            (Severity::Warning, format!("only {available} seat(s) left"))
        } else {
            continue;
        };
        findings.push(Finding {
            severity,
            detail: Detail::SkuCapacity {
                sku_id: s.sku_id.clone(),
                sku_part_number: s.part_number.clone(),
                enabled: s.enabled,
                consumed: s.consumed,
                available,
                warning: s.warning,
                suspended: s.suspended,
                users_in_count_violation: cv,
                reason,
            },
        });
    }

    let changes = previous
        .as_ref()
        .map(|p| snapshot.diff(p))
        .unwrap_or_default();
    if let Some(prev) = &previous {
        for c in &changes {
            let event = explaining_event(&events, c, prev.taken_at, now);
            let explained = event.is_some();
            let actor = event.and_then(|e| e.actor.clone());
            let (user_id, user_principal_name, sku_id, sku_part_number) = (
                c.user_id.clone(),
                c.upn.clone(),
                c.sku_id.clone(),
                part(&c.sku_id),
            );
            let detail = if c.added {
                Detail::LicenseAdded {
                    user_id,
                    user_principal_name,
                    sku_id,
                    sku_part_number,
                    observed_at: now,
                    actor,
                    explained,
                }
            } else {
                Detail::LicenseRemoved {
                    user_id,
                    user_principal_name,
                    sku_id,
                    sku_part_number,
                    observed_at: now,
                    actor,
                    explained,
                }
            };
            let severity = if c.added || explained {
                Severity::Info
            } else {
                Severity::Warning
            };
            findings.push(Finding { severity, detail });
        }
        let removed_users: BTreeSet<&str> = changes
            .iter()
            .filter(|c| !c.added)
            .map(|c| c.upn.as_str())
            .collect();
        let licensed_before = prev.users.iter().filter(|u| !u.licenses.is_empty()).count();
        let by_share = ((policy.check.mass_delicensing_percent / 100.0) * licensed_before as f64)
            .ceil() as usize;
        let threshold = (policy.check.mass_delicensing_min_users as usize)
            .min(by_share)
            .max(1);
        if removed_users.len() >= threshold {
            findings.push(Finding {
                severity: Severity::Critical,
                detail: Detail::MassDelicensing {
                    removed_count: removed_users.len(),
                    threshold,
                    sample_users: removed_users
                        .iter()
                        .take(10)
                        .map(|s| s.to_string())
                        .collect(),
                },
            });
        }
    }

    tracing::debug!(findings = findings.len(), "findings built");
    // Critical conditions become alert occurrences that grace-period-notify sends once each.
    let alerts: Vec<Alert> = findings
        .iter()
        .filter_map(|f| match &f.detail {
            Detail::MassDelicensing { removed_count, .. } => {
                let condition = format!("mass_delicensing:{}", now.to_rfc3339());
                Some(Alert {
                    alert_id: condition.clone(),
                    condition,
                    kind: "mass_delicensing".into(),
                    summary: format!("{removed_count} users lost licences in one run"),
                    raised_at: now,
                })
            }
            Detail::SkuCapacity {
                sku_id,
                sku_part_number,
                reason,
                ..
            } if f.severity == Severity::Critical => {
                let condition = format!("sku_exhausted:{sku_id}");
                Some(Alert {
                    alert_id: format!("{condition}:{}", now.to_rfc3339()),
                    condition,
                    kind: "sku_exhausted".into(),
                    summary: format!(
                        "{}: {reason}",
                        deps.catalog.sku_label(sku_id, sku_part_number)
                    ),
                    raised_at: now,
                })
            }
            _ => None,
        })
        .collect();
    // Reading the tenant can take minutes: make sure this run still holds the job before writing.
    lease.renew(deps.clock.now()).await?;
    deps.store.sync_alerts(&tenant.tenant_id, &alerts).await?;
    (deps.crash)(CheckStep::AfterAlerts)?;
    let grace_cases = follow_grace_cases(
        deps,
        tenant,
        policy,
        &snapshot,
        previous.as_ref(),
        &events,
        &groups,
        now,
    )
    .await?;
    for case in grace_cases.0.iter() {
        let d = case.deadlines;
        let days_left = d.days_left(now);
        let severity = if d.access_gone(now) || days_left <= 3 {
            Severity::Critical
        } else {
            Severity::Warning
        };
        findings.push(Finding {
            severity,
            detail: Detail::UnlicensedMailbox {
                user_id: case.user_id.clone(),
                user_principal_name: case.user_principal_name.clone(),
                case_id: case.case_id.clone(),
                case_type: d.case,
                grace_started_at: d.evidence.at,
                grace_evidence: d.evidence.kind,
                access_ends_at: d.access_ends_at,
                data_deleted_at: d.data_deleted_at,
                days_left,
                note: (d.evidence.kind == EvidenceKind::FirstSeen).then(|| {
                    "first seen unlicensed by licensewatch; the mailbox may have been unlicensed earlier, so the real deadline may be earlier".to_string()
                }),
                attempted_sku_ids: case.attempted.as_ref().map(|a| a.sku_ids.clone()),
                attempted_sku_source: case.attempted.as_ref().map(|a| a.source),
            },
        });
    }

    // History. A first run's baseline is written after its snapshot (a crash in between is repaired by the next
    // run, below); a later run's changes before it (a crash in between makes the next run see the same changes
    // against the same snapshot, stored once by their identity).
    let history_written = match &previous {
        None => {
            deps.store.save_snapshot(&snapshot).await?;
            (deps.crash)(CheckStep::AfterSnapshot)?;
            let users: Vec<(&str, &str, Vec<&String>)> = snapshot
                .users
                .iter()
                .map(|u| (u.id.as_str(), u.upn.as_str(), u.sku_ids().collect()))
                .collect();
            write_baseline(deps, &tenant.tenant_id, &users, now).await?
        }
        Some(p) => {
            let entries: Vec<HistoryEntry> = changes
                .iter()
                .map(|c| HistoryEntry {
                    user_id: c.user_id.clone(),
                    user_principal_name: c.upn.clone(),
                    sku_id: c.sku_id.clone(),
                    change: if c.added { "added" } else { "removed" }.into(),
                    at: now,
                    baseline: false,
                    since: Some(p.taken_at),
                })
                .collect();
            deps.store
                .append_history(&tenant.tenant_id, &entries)
                .await?;
            entries.len()
        }
    };
    tracing::debug!(entries = history_written, "history written");
    (deps.crash)(CheckStep::AfterHistory)?;

    let remediations_queued = if policy.remediation.auto_reprocess {
        queue_reprocess(deps, tenant, policy, &snapshot, &count_violations, now).await?
    } else {
        0
    };

    (deps.crash)(CheckStep::AfterQueue)?;
    if previous.is_some() {
        deps.store.save_snapshot(&snapshot).await?;
        tracing::debug!("snapshot saved");
        (deps.crash)(CheckStep::AfterSnapshot)?;
    }

    findings.sort_by(|a, b| {
        (a.severity, a.kind(), user_key(a)).cmp(&(b.severity, b.kind(), user_key(b)))
    });
    let mut counts = BTreeCounts::default();
    for f in &findings {
        match f.severity {
            Severity::Critical => counts.critical += 1,
            Severity::Warning => counts.warning += 1,
            Severity::Info => counts.info += 1,
        }
    }
    deps.store
        .save_run(&crate::ports::store::RunRecord {
            tenant_id: tenant.tenant_id.clone(),
            run_at: now,
            users_scanned: snapshot.users.len(),
            licensed_users: snapshot
                .users
                .iter()
                .filter(|u| !u.licenses.is_empty())
                .count(),
            skus: snapshot.skus.clone(),
            findings: findings.clone(),
        })
        .await?;
    tracing::info!(tenant = %tenant.tenant_id, users = snapshot.users.len(), findings = findings.len(), "license-check done");
    Ok(CheckReport {
        tenant_id: tenant.tenant_id.clone(),
        run_at: now,
        first_run: previous.is_none(),
        users_scanned: snapshot.users.len(),
        pages: pager.pages_fetched(),
        findings,
        counts,
        disabled_mailboxes,
        grace_cases: grace_cases.1,
        remediations_queued,
        skipped: None,
    })
}

fn user_key(f: &Finding) -> String {
    match &f.detail {
        Detail::UnlicensedMailbox {
            user_principal_name,
            ..
        }
        | Detail::LicenseAssignmentError {
            user_principal_name,
            ..
        }
        | Detail::LicenseRemoved {
            user_principal_name,
            ..
        }
        | Detail::LicenseAdded {
            user_principal_name,
            ..
        }
        | Detail::LicensedDisabledAccount {
            user_principal_name,
            ..
        } => user_principal_name.to_ascii_lowercase(),
        Detail::SkuCapacity {
            sku_part_number, ..
        } => sku_part_number.clone(),
        Detail::MassDelicensing { .. } => String::new(),
    }
}

/// Group id → display name for the groups Graph reports with licence errors (and their members' groups).
async fn groups_with_errors(graph: &GraphClient) -> Result<HashMap<String, String>, CoreError> {
    let mut names = HashMap::new();
    let mut pager = graph.pages::<Group>(
        "groups?$filter=hasMembersWithLicenseErrors eq true&$select=id,displayName",
    );
    let mut ids = Vec::new();
    loop {
        match pager.next_page().await {
            Ok(Some(page)) => {
                for g in page {
                    ids.push(g.id.clone());
                    names.insert(g.id, g.display_name.unwrap_or_default());
                }
            }
            Ok(None) => break,
            // Some tenants refuse this filter (a known Graph issue): fall back to the names we can list.
            Err(e) if e.code().is_some_and(|c| c.contains("UnsupportedQuery")) => {
                tracing::warn!(
                    "hasMembersWithLicenseErrors filter refused; listing groups instead"
                );
                let mut all =
                    graph.pages::<Group>("groups?$select=id,displayName,assignedLicenses&$top=999");
                while let Some(page) = all.next_page().await? {
                    for g in page.into_iter().filter(|g| !g.assigned_licenses.is_empty()) {
                        names.insert(g.id, g.display_name.unwrap_or_default());
                    }
                }
                break;
            }
            Err(e) => return Err(e.into()),
        }
    }
    for id in ids {
        let mut members = graph.pages::<DirectoryObject>(&format!(
            "groups/{id}/membersWithLicenseErrors?$select=id,userPrincipalName"
        ));
        let mut n = 0;
        while let Some(page) = members.next_page().await? {
            n += page.len();
        }
        tracing::info!(group = %id, members_with_errors = n, "group licensing errors");
    }
    Ok(names)
}

/// The audit event that accounts for a change seen between two snapshots, if any.
fn explaining_event<'e>(
    events: &'e [LicenseEvent],
    change: &LicenseChange,
    previous_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<&'e LicenseEvent> {
    // Audit records can lag the change itself, so allow a margin before the previous run.
    let from = previous_at - Duration::hours(1);
    events.iter().rev().find(|e| {
        !e.failed()
            && e.at > from
            && e.at <= now
            && e.concerns(&change.user_id, &change.upn)
            && if change.added {
                &e.added_sku_ids
            } else {
                &e.removed_sku_ids
            }
            .iter()
            .any(|s| s.eq_ignore_ascii_case(&change.sku_id))
    })
}

/// Writes the baseline history (licences that existed before licensewatch watched), in chunks so that a first run
/// over a large tenant never holds a second copy of it. Returns how many entries it wrote.
async fn write_baseline(
    deps: &CheckDeps<'_>,
    tenant_id: &str,
    users: &[(&str, &str, Vec<&String>)],
    at: DateTime<Utc>,
) -> Result<usize, CoreError> {
    let mut written = 0;
    for chunk in users.chunks(5_000) {
        let entries: Vec<HistoryEntry> = chunk
            .iter()
            .flat_map(|(id, upn, skus)| {
                skus.iter().map(move |sku| HistoryEntry {
                    user_id: id.to_string(),
                    user_principal_name: upn.to_string(),
                    sku_id: (*sku).clone(),
                    change: "added".into(),
                    at,
                    baseline: true,
                    since: None,
                })
            })
            .collect();
        deps.store.append_history(tenant_id, &entries).await?;
        written += entries.len();
    }
    Ok(written)
}

/// Which SKUs a user's failed assignments tried to add: from the failure records when they say (rarely), else the
/// user's licences in `Error`, else a remediation request asking for SKUs, else unknown.
fn attempted_skus(
    events: &[&LicenseEvent],
    user: &UserSnapshot,
    requests: &[RemediationRequest],
) -> Attempt {
    let mut from_records: Vec<String> = events
        .iter()
        .filter(|e| e.failed())
        .flat_map(|e| e.added_sku_ids.iter().cloned())
        .collect();
    from_records.sort();
    from_records.dedup();
    if !from_records.is_empty() {
        return Attempt {
            sku_ids: from_records,
            source: AttemptSource::AuditRecord,
        };
    }
    let mut in_error: Vec<String> = user
        .states
        .iter()
        .filter(|s| s.error.is_some())
        .map(|s| s.sku_id.clone())
        .collect();
    in_error.sort();
    in_error.dedup();
    if !in_error.is_empty() {
        return Attempt {
            sku_ids: in_error,
            source: AttemptSource::LicenseAssignmentStates,
        };
    }
    let mut requested: Vec<String> = requests
        .iter()
        .filter(|r| r.action == "assign")
        .filter(|r| r.user.eq_ignore_ascii_case(&user.id) || r.user.eq_ignore_ascii_case(&user.upn))
        .flat_map(|r| r.sku_ids.iter().map(|s| s.to_ascii_lowercase()))
        .collect();
    requested.sort();
    requested.dedup();
    if !requested.is_empty() {
        return Attempt {
            sku_ids: requested,
            source: AttemptSource::RemediationRequest,
        };
    }
    Attempt {
        sku_ids: Vec::new(),
        source: AttemptSource::Unknown,
    }
}

/// Opens, updates and closes grace cases. Returns the open cases and the run's counts.
#[allow(clippy::too_many_arguments)]
async fn follow_grace_cases(
    deps: &CheckDeps<'_>,
    tenant: &TenantRun,
    policy: &Policy,
    snapshot: &Snapshot,
    previous: Option<&PreviousRun>,
    events: &[LicenseEvent],
    groups: &HashMap<String, String>,
    now: DateTime<Utc>,
) -> Result<(Vec<GraceCase>, CaseCounts), CoreError> {
    // Remediation requests still waiting (local queue): one may say which SKU an admin wanted the user to get.
    let requests = deps.queue.pending(&tenant.tenant_id).await?;
    let requests = requests.as_slice();
    let existing: HashMap<String, GraceCase> = deps
        .store
        .grace_cases(&tenant.tenant_id, true)
        .await?
        .into_iter()
        .map(|c| (c.user_id.clone(), c))
        .collect();
    let mut counts = CaseCounts::default();
    let mut open = Vec::new();
    let mut seen = HashSet::new();
    for u in snapshot
        .users
        .iter()
        .filter(|u| u.is_member_mailbox() && !u.exchange_enabled)
    {
        seen.insert(u.id.clone());
        let prior = existing.get(&u.id);
        let mut evidence: Vec<Evidence> = prior.map(|c| c.evidence.clone()).unwrap_or_default();
        let mine: Vec<&LicenseEvent> = events
            .iter()
            .filter(|e| e.concerns(&u.id, &u.upn))
            .collect();
        // Only what happened since the user last successfully got a licence can explain the current state.
        let last_grant = mine
            .iter()
            .filter(|e| !e.failed() && !e.added_sku_ids.is_empty())
            .map(|e| e.at)
            .max();
        let since_grant: Vec<&LicenseEvent> = mine
            .iter()
            .copied()
            .filter(|e| last_grant.is_none_or(|g| e.at > g))
            .collect();
        for e in &since_grant {
            if !e.failed() && !e.removed_sku_ids.is_empty() {
                evidence.push(Evidence {
                    kind: EvidenceKind::AuditRemoval,
                    at: e.at,
                });
            }
            // A failed licence write for a user with no Exchange now is evidence whether or not the record names
            // SKUs: real failure records do not (nothing changed, so nothing was diffed).
            if e.failed() {
                evidence.push(Evidence {
                    kind: EvidenceKind::AuditFailedAssignment,
                    at: e.at,
                });
            }
        }
        if previous
            .and_then(|p| p.user(&u.id))
            .is_some_and(|p| p.exchange_enabled)
        {
            evidence.push(Evidence {
                kind: EvidenceKind::SnapshotDiff,
                at: now,
            });
        }
        if let Some(created) = u.created {
            evidence.push(Evidence {
                kind: EvidenceKind::Created,
                at: created,
            });
        }
        evidence.push(Evidence {
            kind: EvidenceKind::FirstSeen,
            at: prior.map_or(now, |c| c.opened_at),
        });
        evidence.sort_by_key(|e| (e.kind, e.at));
        evidence.dedup();
        let Some(best) =
            grace::strongest(&evidence, prior.map_or(now, |c| c.opened_at), &policy.grace)
        else {
            continue;
        };
        let deadlines = grace::deadlines(best, tenant.delayed_delicensing, &policy.grace);
        let attempted = (best.kind == EvidenceKind::AuditFailedAssignment)
            .then(|| attempted_skus(&since_grant, u, requests));
        let blocked_by = u
            .states
            .iter()
            .find(|s| s.error.as_deref().is_some_and(|e| e != "Other"))
            .map(|s| {
                let group = s
                    .group
                    .as_ref()
                    .map(|g| groups.get(g).cloned().unwrap_or_else(|| g.clone()));
                match group {
                    Some(g) => format!(
                        "group '{g}': {} on SKU {}",
                        s.error.clone().unwrap_or_default(),
                        s.sku_id
                    ),
                    None => format!(
                        "{} on SKU {}",
                        s.error.clone().unwrap_or_default(),
                        s.sku_id
                    ),
                }
            });
        if prior.is_none() {
            counts.opened += 1;
        }
        let case = GraceCase {
            case_id: case_id(&tenant.tenant_id, &u.id),
            tenant_id: tenant.tenant_id.clone(),
            user_id: u.id.clone(),
            user_principal_name: u.upn.clone(),
            display_name: u.display_name.clone(),
            mail: u.mail.clone(),
            evidence,
            deadlines,
            blocked_by,
            attempted,
            opened_at: prior.map_or(now, |c| c.opened_at),
            updated_at: now,
            closed_at: None,
            close_reason: None,
        };
        open.push(case);
    }
    let mut closed = Vec::new();
    for (user_id, mut case) in existing {
        if seen.contains(&user_id) {
            continue;
        }
        let reason = match snapshot.user(&user_id) {
            Some(u) if u.exchange_enabled => "an enabled Exchange plan is assigned again",
            Some(u) if !u.account_enabled => "the account was disabled",
            Some(_) => "the user no longer has a member mailbox",
            None => "the user was deleted",
        };
        case.closed_at = Some(now);
        case.close_reason = Some(reason.to_string());
        case.updated_at = now;
        closed.push(case);
    }
    counts.closed = closed.len();
    // One transaction for the whole run: a crash leaves the previous run's cases, never half of this one's.
    closed.extend(open.iter().cloned());
    deps.store.put_grace_cases(&closed).await?;
    (deps.crash)(CheckStep::AfterCases)?;
    counts.open = open.len();
    Ok((open, counts))
}

/// Queues reprocessing for users in CountViolation on SKUs that have free seats again, up to the hourly budget.
async fn queue_reprocess(
    deps: &CheckDeps<'_>,
    tenant: &TenantRun,
    policy: &Policy,
    snapshot: &Snapshot,
    count_violations: &HashMap<String, Vec<&UserSnapshot>>,
    now: DateTime<Utc>,
) -> Result<usize, CoreError> {
    let mut queued = 0;
    let mut done = HashSet::new();
    'skus: for s in &snapshot.skus {
        let mut free = s.available();
        for u in count_violations.get(&s.sku_id).into_iter().flatten() {
            if free <= 0 {
                break;
            }
            if !done.insert(u.id.clone()) {
                continue;
            }
            let request = RemediationRequest {
                // Same user, same hour: the same id, so a rerun does not queue twice.
                remediation_id: format!("auto-{}-{}", u.id, now.format("%Y%m%d%H")),
                tenant_id: tenant.tenant_id.clone(),
                user: u.id.clone(),
                action: "reprocess".into(),
                sku_ids: vec![],
                reason: format!(
                    "{} seat(s) free on {} while the user is in CountViolation",
                    free, s.part_number
                ),
                requested_at: now,
                disabled_plans: Default::default(),
                template_user: None,
                ticket: None,
            };
            if deps
                .remediations
                .remediation(&request.remediation_id)
                .await?
                .is_none()
            {
                // The same budget as the webhook and the CLI: a rolling 60 minutes per tenant.
                let record = RemediationRecord::queued(request.clone(), now);
                let admitted = deps
                    .remediations
                    .admit(None, &record, policy.remediation.max_actions_per_hour)
                    .await?;
                if admitted == Admitted::OverBudget {
                    tracing::warn!(
                        "remediation.max_actions_per_hour is spent: auto-reprocess stops for this run"
                    );
                    break 'skus;
                }
            }
            deps.queue.enqueue(&request).await?;
            queued += 1;
            free -= 1;
        }
    }
    Ok(queued)
}
