//! Writes a large local audit archive for the audit-search benchmark (not a test): `--days` days ending at
//! `--end` (YYYY-MM-DD), `--per-day` Management API records a day (Azure AD records of Microsoft's shape, about 1 KB
//! each) in objects of `--per-object` records, with the search index audit-fetch writes beside each object. Users
//! are drawn from `--users` (user000000@contoso.com ...), actors from 50 administrators and two apps.
//!
//! cargo run --release -p licensewatch --example archive_gen -- --dir /tmp/archive --days 90 --per-day 100000

use std::path::PathBuf;

use chrono::{Duration, NaiveDate};
use licensewatch_core::adapters::files::FileArchive;
use licensewatch_core::domain::audit_search::ObjectIndex;
use licensewatch_core::ports::archive::{AuditArchive, encode_lines, index_key, object_key};

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

fn number(name: &str, default: &str) -> u64 {
    arg(name, default)
        .parse()
        .unwrap_or_else(|_| panic!("{name} is not a number"))
}

/// A small deterministic generator (the benchmark must write the same archive every time).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

const OPERATIONS: [&str; 8] = [
    "UserLoggedIn",
    "Update user.",
    "Change user license.",
    "Add member to group.",
    "Remove member from group.",
    "Reset user password.",
    "Update group.",
    "Add user.",
];

fn record(rng: &mut Lcg, day: NaiveDate, n: u64, users: u64) -> String {
    let user = rng.next() % users;
    let actor = match rng.next() % 20 {
        0 => "ServicePrincipal_8a5b3c2d-1111-4222-8333-444455556666".to_string(),
        1 => "Microsoft Substrate Management".to_string(),
        a => format!("admin{:02}@contoso.com", a % 50),
    };
    let op = OPERATIONS[(rng.next() % OPERATIONS.len() as u64) as usize];
    let secs = rng.next() % 86_400;
    let at = format!(
        "{day}T{:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
    format!(
        concat!(
            r#"{{"CreationTime":"{at}","Id":"{day}-{n:08x}-4000-8000-{user:012}","Operation":"{op}","#,
            r#""OrganizationId":"48a80680-7326-48cd-9935-b556b81d3a4e","RecordType":8,"ResultStatus":"Success","#,
            r#""UserKey":"{actor}@48a80680-7326-48cd-9935-b556b81d3a4e","UserType":0,"Version":1,"#,
            r#""Workload":"AzureActiveDirectory","ObjectId":"user{user:06}@contoso.com","UserId":"{actor}","#,
            r#""AzureActiveDirectoryEventType":1,"ExtendedProperties":[{{"Name":"additionalDetails","Value":"{{}}"}},"#,
            r#"{{"Name":"extendedAuditEventCategory","Value":"User"}}],"ModifiedProperties":[{{"Name":"AssignedLicense","#,
            r#""NewValue":"[\r\n  \"[SkuName=ENTERPRISEPACK, AccountId=48a80680-7326-48cd-9935-b556b81d3a4e, SkuId=6fd2c87f-b296-42f0-b197-1e91e994b900, DisabledPlans=[]]\"\r\n]","#,
            r#""OldValue":"[]"}}],"Actor":[{{"ID":"{actor}","Type":5}}],"#,
            r#""ActorContextId":"48a80680-7326-48cd-9935-b556b81d3a4e","InterSystemsId":"c3a1e1a2-0000-4000-8000-{n:012}","#,
            r#""IntraSystemId":"d4b2f2b3-0000-4000-8000-{n:012}","SupportTicketId":"","#,
            r#""Target":[{{"ID":"User_00000000-0000-4000-8000-{user:012}","Type":2}},{{"ID":"user{user:06}@contoso.com","Type":5}}],"#,
            r#""TargetContextId":"48a80680-7326-48cd-9935-b556b81d3a4e"}}"#
        ),
        at = at,
        day = day.format("%Y%m%d"),
        n = n,
        user = user,
        op = op,
        actor = actor,
    )
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let dir = PathBuf::from(arg("--dir", "/tmp/licensewatch-archive"));
    let days = number("--days", "90");
    let per_day = number("--per-day", "100000");
    let per_object = number("--per-object", "1000").max(1);
    let users = number("--users", "100000").max(1);
    let end = NaiveDate::parse_from_str(&arg("--end", "2026-11-21"), "%Y-%m-%d")
        .unwrap_or_else(|_| panic!("--end is not YYYY-MM-DD"));
    let archive = FileArchive::new(&dir);
    let mut rng = Lcg(42);
    let mut written = 0u64;
    for d in 0..days {
        let day = end - Duration::days(d as i64);
        let day_text = day.format("%Y-%m-%d").to_string();
        for first in (0..per_day).step_by(per_object as usize) {
            let lines: Vec<String> = (first..(first + per_object).min(per_day))
                .map(|n| record(&mut rng, day, n, users))
                .collect();
            let ids: Vec<String> = (first..(first + per_object).min(per_day))
                .map(|n| format!("{day_text}-{n}"))
                .collect();
            let key = object_key(
                "management_api",
                "Audit.AzureActiveDirectory",
                &day_text,
                &ids,
            );
            let bytes = encode_lines(lines.iter().map(|l| l.as_bytes()));
            let index = ObjectIndex::build(&key, lines.iter().map(|l| l.as_bytes()));
            archive.put_new(&key, bytes).await.expect("object");
            archive
                .put_new(&index_key(&key), serde_json::to_vec(&index).expect("index"))
                .await
                .expect("index");
            written += lines.len() as u64;
        }
        eprint!("\r{written} records");
    }
    eprintln!();
    println!(
        "{}",
        serde_json::json!({"dir": dir, "days": days, "per_day": per_day, "records": written})
    );
}
