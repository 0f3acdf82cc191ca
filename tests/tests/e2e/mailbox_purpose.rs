//! Shared, room and equipment mailboxes told apart by `mailboxSettings/userPurpose`: never a grace case, whatever
//! their account's state; a shared mailbox that can sign in is a warning of its own; purposes are read about once a
//! day; without `MailboxSettings.Read` the run says so and keeps today's rule.

use chrono::Duration;
use licensewatch_core::domain::findings::Detail;
use licensewatch_core::usecases::check_licenses::CheckReport;
use serde_json::json;

use crate::helpers::*;

/// A shared mailbox converted from a leaver's, whose sign-in was never blocked (a common misconfiguration), and a
/// room whose account is enabled.
async fn add_resource_mailboxes(env: &TestEnv) {
    let created = (env.now() - Duration::days(10)).to_rfc3339();
    for (nick, id, purpose) in [
        (
            "shared.sales",
            "5a1e5000-0000-4000-8000-000000000001",
            "shared",
        ),
        (
            "room.atrium",
            "5a1e5000-0000-4000-8000-000000000002",
            "room",
        ),
    ] {
        let status = env
            .control(
                "/_sim/users",
                json!({"id": id, "upn": upn(nick), "display_name": nick, "mail": format!("{nick}@contoso.com"),
                    "usage_location": "US", "created": created, "mailbox_purpose": purpose}),
            )
            .await;
        assert_eq!(status, 201, "{nick}");
    }
}

fn cases_of(r: &CheckReport, nick: &str) -> usize {
    r.findings
        .iter()
        .filter(|f| {
            matches!(&f.detail, Detail::UnlicensedMailbox { user_principal_name, .. } if *user_principal_name == upn(nick))
        })
        .count()
}

fn sign_in_warnings(r: &CheckReport) -> Vec<String> {
    r.findings
        .iter()
        .filter_map(|f| match &f.detail {
            Detail::SharedMailboxSignIn {
                user_principal_name,
                mailbox_purpose,
                ..
            } => Some(format!("{user_principal_name}:{mailbox_purpose}")),
            _ => None,
        })
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

async fn purpose_reads(env: &TestEnv) -> usize {
    env.requests()
        .await
        .iter()
        .filter(|r| {
            r["path"]
                .as_str()
                .is_some_and(|p| p.ends_with("/mailboxSettings"))
        })
        .count()
}

#[tokio::test]
async fn a_shared_mailbox_that_can_sign_in_is_never_told_it_will_be_disconnected() {
    let env = TestEnv::with_policy(notify_policy()).await;
    add_resource_mailboxes(&env).await;
    let r = env.check().await;
    assert_eq!(
        cases_of(&r, "shared.sales"),
        0,
        "no grace case for a shared mailbox"
    );
    assert_eq!(cases_of(&r, "room.atrium"), 0, "nor for a room");
    assert_eq!(
        cases_of(&r, "megan.bowen"),
        1,
        "a person's mailbox still is one"
    );
    assert_eq!(
        sign_in_warnings(&r),
        [
            format!("{}:room", upn("room.atrium")),
            format!("{}:shared", upn("shared.sales"))
        ]
    );
    assert!(r.mailbox_purposes_unavailable.is_none());
    let cases = env
        .rt
        .store
        .grace_cases(&env.sim.tenant_id, true)
        .await
        .expect("cases");
    assert!(
        !cases
            .iter()
            .any(|c| c.user_principal_name == upn("shared.sales"))
    );
    // Only the users without an Exchange licence are read, and each once a day.
    let first = purpose_reads(&env).await;
    assert!(
        first >= 2 && first <= cases.len() + 2,
        "{first} reads for {} cases",
        cases.len()
    );
    env.check().await;
    assert_eq!(
        purpose_reads(&env).await,
        first,
        "read again within the day"
    );
    env.advance(Duration::hours(25)).await;
    env.check().await;
    assert_eq!(
        purpose_reads(&env).await,
        2 * first,
        "read again the next day"
    );
}

#[tokio::test]
async fn without_mailbox_settings_read_the_run_says_so_and_keeps_todays_rule_then_closes_the_case()
{
    let env = TestEnv::with_policy(notify_policy()).await;
    add_resource_mailboxes(&env).await;
    let without: Vec<&str> = [
        "User.Read.All",
        "Organization.Read.All",
        "GroupMember.Read.All",
        "LicenseAssignment.Read.All",
        "LicenseAssignment.ReadWrite.All",
        "AuditLog.Read.All",
        "Reports.Read.All",
        "Mail.Send",
    ]
    .to_vec();
    env.control("/_sim/permissions", json!({"granted": without}))
        .await;
    let r = env.check().await;
    let why = r.mailbox_purposes_unavailable.clone().unwrap_or_default();
    assert!(why.contains("MailboxSettings.Read"), "{why}");
    assert_eq!(
        cases_of(&r, "shared.sales"),
        1,
        "today's rule: an enabled account is a person's"
    );
    assert!(sign_in_warnings(&r).is_empty());
    // Granted: the next run reads the purpose and closes the case, saying why.
    env.control("/_sim/permissions", json!({"granted": null}))
        .await;
    env.control("/_sim/tokens/revoke", json!({})).await;
    env.advance(Duration::hours(1)).await;
    let r = env.check().await;
    assert!(r.mailbox_purposes_unavailable.is_none(), "{r:?}");
    assert_eq!(cases_of(&r, "shared.sales"), 0);
    let closed = env
        .rt
        .store
        .grace_cases(&env.sim.tenant_id, false)
        .await
        .expect("cases");
    let case = closed
        .iter()
        .find(|c| c.user_principal_name == upn("shared.sales"))
        .expect("the case opened without the permission");
    assert_eq!(
        case.close_reason.as_deref(),
        Some("a shared mailbox, which needs no licence")
    );
}
