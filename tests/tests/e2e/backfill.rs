//! The Purview audit log backfill end to end: a tenant on Entra ID Free (directory audits kept 7 days) installed
//! today, whose mailbox's failed licence assignment of 28 days ago only the Purview audit log still holds; the query
//! created once and waited for across runs; every record archived once, the same record from the Management API
//! and from Purview included; crashes at each write boundary; a tenant without the API.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::Duration;
use licensewatch_core::adapters::files::FileArchive;
use licensewatch_core::error::CoreError;
use licensewatch_core::policy::Policy;
use licensewatch_core::usecases::fetch_audit::{AuditReport, AuditStep, backfill, fetch_audit};
use licensewatch_sim::Scenario;
use serde_json::json;

use crate::helpers::*;

/// Entra ID Free keeps directory audits 7 days; the Management Activity API subscriptions started 13 hours ago
/// (the first content came an hour ago): nothing of last month is left but in Purview.
fn free_tenant_installed_today() -> Scenario {
    let mut s = Scenario::default_story();
    s.directory_audit_retention_days = 7;
    s.feeds_started_at = Some(s.now - Duration::hours(13));
    s
}

async fn fetch(env: &TestEnv, archive: &FileArchive) -> AuditReport {
    fetch_audit(&env.rt.audit_deps_with(archive), &env.rt.policy)
        .await
        .expect("audit-fetch")
}

fn status(r: &AuditReport) -> String {
    r.backfill
        .as_ref()
        .map(|b| b.status.clone())
        .unwrap_or_default()
}

fn megan(report: &licensewatch_core::usecases::check_licenses::CheckReport) -> serde_json::Value {
    for_user(&of_kind(report, "unlicensed_mailbox"), &upn("megan.bowen"))
        .first()
        .cloned()
        .expect("Megan's mailbox is a grace case")
}

#[tokio::test]
async fn a_free_tenants_first_day_dates_a_case_from_a_failure_only_purview_still_holds() {
    let env = TestEnv::with_scenario(free_tenant_installed_today(), Policy::default()).await;
    let dir = tempfile::tempdir().expect("tmp");
    let archive = FileArchive::new(dir.path());
    // A licence change today: the Management Activity API publishes it, and Purview holds it too.
    env.control(
        &format!("/_sim/users/{}/licenses", upn("teacher01")),
        json!({"add": [{"sku_id": E3}]}),
    )
    .await;
    env.advance(Duration::hours(2)).await;

    let first = fetch(&env, &archive).await;
    assert_eq!(status(&first), "requested", "{first:?}");
    let before = megan(&env.check().await);
    assert_ne!(
        before["grace_evidence"], "audit_failed_assignment",
        "the failure is out of reach of the other sources: {before}"
    );
    // Microsoft searches for minutes: a run finds the query still running, a later one reads it.
    env.advance(Duration::minutes(4)).await;
    assert_eq!(status(&fetch(&env, &archive).await), "running");
    env.advance(Duration::minutes(10)).await;
    let read = fetch(&env, &archive).await;
    assert_eq!(status(&read), "archived", "{read:?}");
    let b = read.backfill.as_ref().expect("backfill");
    assert!(b.records_read >= 3, "{b:?}");
    assert_eq!(
        (b.until.expect("until") - b.from.expect("from")).num_days(),
        180
    );

    let after = megan(&env.check().await);
    assert_eq!(
        after["grace_evidence"], "audit_failed_assignment",
        "{after}"
    );
    assert_eq!(after["grace_started_at"], "2026-10-24T10:12:00Z", "{after}");
    // Done once: no query again, nothing archived again.
    let again = fetch(&env, &archive).await;
    assert_eq!(status(&again), "done");
    let queries = env
        .requests()
        .await
        .into_iter()
        .filter(|r| r["method"] == "POST" && r["path"] == "/v1.0/security/auditLog/queries")
        .count();
    assert_eq!(queries, 1, "one query, found again by later runs");
    let ids = archived(&archive, "").await;
    assert!(
        ids.values().all(|n| *n == 1),
        "each record once, whichever source read it: {:?}",
        ids.iter().filter(|(_, n)| **n > 1).collect::<Vec<_>>()
    );
}

/// `licensewatch backfill`'s step, crashed once at `step`, then run to the end; the archived ids.
async fn crash_then_finish(step: Option<AuditStep>) -> HashMap<String, usize> {
    let env = TestEnv::with_scenario(free_tenant_installed_today(), Policy::default()).await;
    let dir = tempfile::tempdir().expect("tmp");
    let archive = FileArchive::new(dir.path());
    let deps = env.rt.audit_deps_with(&archive);
    let (first, _) = backfill(&deps, 180).await.expect("request");
    assert_eq!(first.expect("ran").status, "requested");
    env.advance(Duration::minutes(15)).await;
    let hits = AtomicUsize::new(0);
    let crash = |s: AuditStep| match Some(s) == step && hits.fetch_add(1, Ordering::SeqCst) == 0 {
        true => Err(CoreError::BadInput(format!("crash at {s:?}"))),
        false => Ok(()),
    };
    let mut crashing = env.rt.audit_deps_with(&archive);
    crashing.crash = &crash;
    let crashed = backfill(&crashing, 180).await;
    assert_eq!(crashed.is_err(), step.is_some(), "{step:?}: {crashed:?}");
    // The audit log moves on meanwhile; the rerun finds the same query and finishes it.
    env.advance(Duration::minutes(5)).await;
    let (done, _) = backfill(&deps, 180).await.expect("rerun");
    let done = done.expect("ran").status;
    assert!(
        done == "archived" || (step.is_none() && done == "done"),
        "{step:?}: {done}"
    );
    archived(&archive, "").await
}

#[tokio::test]
async fn a_crash_at_any_write_boundary_of_the_backfill_loses_and_repeats_nothing() {
    let expected = crash_then_finish(None).await;
    assert!(!expected.is_empty());
    for step in [
        AuditStep::AfterLicenceParts,
        AuditStep::AfterClaim,
        AuditStep::AfterObject,
        AuditStep::AfterIndex,
        AuditStep::AfterConfirm,
    ] {
        let got = crash_then_finish(Some(step)).await;
        assert_eq!(got, expected, "{step:?}: every record once, none lost");
    }
}

#[tokio::test]
async fn a_tenant_without_the_query_api_or_the_permission_says_so_and_the_other_sources_go_on() {
    let mut scenario = free_tenant_installed_today();
    scenario.behaviour.audit_query_unavailable = true;
    let env = TestEnv::with_scenario(scenario, Policy::default()).await;
    let dir = tempfile::tempdir().expect("tmp");
    let archive = FileArchive::new(dir.path());
    let r = fetch(&env, &archive).await;
    let b = r.backfill.as_ref().expect("backfill");
    assert_eq!(b.status, "unavailable", "{b:?}");
    assert!(
        b.detail
            .as_deref()
            .is_some_and(|d| d.contains("national clouds")),
        "{b:?}"
    );
    assert!(
        r.records_archived > 0,
        "directory audits are archived: {r:?}"
    );

    let env = TestEnv::with_scenario(free_tenant_installed_today(), Policy::default()).await;
    let granted = [
        "User.Read.All",
        "AuditLog.Read.All",
        "Organization.Read.All",
    ];
    env.control("/_sim/permissions", json!({"granted": granted}))
        .await;
    let r = fetch(&env, &FileArchive::new(dir.path().join("two"))).await;
    let b = r.backfill.as_ref().expect("backfill");
    assert_eq!(b.status, "unavailable", "{b:?}");
    assert!(
        b.detail
            .as_deref()
            .is_some_and(|d| d.contains("AuditLogsQuery-Entra.Read.All")),
        "{b:?}"
    );
}
