//! Two runs of one job at once, as real processes on one SQLite database and one archive (a schedule that fires
//! while the previous run is still going, or a retry): one works, the other exits 0 and says why, and nothing is sent
//! or archived twice. Read back from the simulator's mail log and from the archive.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::common::{Sim, against, archived_objects as walk, sim};

fn job(sim: &Sim, dir: &Path, args: &[&str]) -> Command {
    let policy = dir.join("licensewatch.toml");
    if !policy.exists() {
        std::fs::write(&policy, "[notify]\nadmins = [\"it-team@contoso.com\"]\nsender = \"it.admin@contoso.onmicrosoft.com\"\n").expect("policy");
    }
    let mut c = against(sim, dir);
    c.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    c
}

/// Starts both, then waits for both; returns each one's JSON report.
fn at_once(mut a: Command, mut b: Command) -> Vec<serde_json::Value> {
    let children = [a.spawn().expect("first"), b.spawn().expect("second")];
    children
        .into_iter()
        .map(|mut c| {
            let mut out = String::new();
            let mut err = String::new();
            c.stdout
                .take()
                .expect("out")
                .read_to_string(&mut out)
                .expect("read");
            c.stderr
                .take()
                .expect("err")
                .read_to_string(&mut err)
                .expect("read");
            let status = c.wait().expect("wait");
            assert!(status.success(), "a run failed: {err}");
            serde_json::from_str(&out).expect("one JSON document")
        })
        .collect()
}

fn mail(sim: &Sim) -> Vec<serde_json::Value> {
    let text = ureq_get(&format!("{}/_sim/mail", sim.base));
    serde_json::from_str(&text).expect("mail")
}

/// Every sendMail takes 300 ms, as a busy Exchange does: both runs are in flight at once.
fn slow_mail(sim: &Sim) {
    let rt = tokio::runtime::Runtime::new().expect("rt");
    let status = rt.block_on(async {
        reqwest::Client::new()
            .post(format!("{}/_sim/faults", sim.base))
            .json(&serde_json::json!({"route": "/sendMail", "kind": "latency", "latency_ms": 300}))
            .send()
            .await
            .expect("fault")
            .status()
    });
    assert!(status.is_success());
}

fn ureq_get(url: &str) -> String {
    let rt = tokio::runtime::Runtime::new().expect("rt");
    rt.block_on(async {
        reqwest::get(url)
            .await
            .expect("get")
            .text()
            .await
            .expect("text")
    })
}

/// Each message once per recipient: its id is derived from the notices it carries.
fn duplicates(messages: &[serde_json::Value]) -> usize {
    let mut seen = std::collections::HashSet::new();
    messages
        .iter()
        .filter(|m| {
            let id = m["message"]["internetMessageHeaders"][0]["value"].to_string();
            let to = m["message"]["toRecipients"].to_string();
            !seen.insert((id, to))
        })
        .count()
}

#[test]
fn two_notify_runs_at_once_send_every_notice_once() {
    for round in 0..5 {
        let sim = sim();
        let dir = tempfile::tempdir().expect("tmp");
        let check = job(&sim, dir.path(), &["check", "--json"])
            .output()
            .expect("check");
        assert!(check.status.success());
        slow_mail(&sim);
        let reports = at_once(
            job(&sim, dir.path(), &["notify", "--json"]),
            job(&sim, dir.path(), &["notify", "--json"]),
        );
        let sent: usize = reports
            .iter()
            .map(|r| r["sent"].as_array().map_or(0, Vec::len))
            .sum();
        let messages = mail(&sim);
        assert_eq!(duplicates(&messages), 0, "round {round}: {messages:#?}");
        assert!(sent > 0, "round {round}: {reports:#?}");
        // A third run afterwards has nothing left to send: everything went out exactly once.
        let again = job(&sim, dir.path(), &["notify", "--json"])
            .output()
            .expect("notify");
        let again: serde_json::Value = serde_json::from_slice(&again.stdout).expect("json");
        assert_eq!(again["sent"], serde_json::json!([]), "round {round}");
        assert_eq!(mail(&sim).len(), messages.len());
    }
}

#[test]
fn two_audit_fetch_runs_at_once_archive_every_record_once() {
    for round in 0..3 {
        let sim = sim();
        let dir = tempfile::tempdir().expect("tmp");
        let reports = at_once(
            job(&sim, dir.path(), &["audit-fetch", "--json"]),
            job(&sim, dir.path(), &["audit-fetch", "--json"]),
        );
        let archived: u64 = reports
            .iter()
            .map(|r| r["records_archived"].as_u64().unwrap_or(0))
            .sum();
        // Every record in the archive once, and the two reports together count each once.
        let mut ids = std::collections::HashMap::<String, usize>::new();
        for entry in walk(&dir.path().join("archive")) {
            let bytes = std::fs::read(&entry).expect("object");
            for r in licensewatch_core::ports::archive::decode_batch(&bytes).expect("decode") {
                let id = r["id"]
                    .as_str()
                    .or(r["Id"].as_str())
                    .expect("id")
                    .to_string();
                *ids.entry(id).or_default() += 1;
            }
        }
        assert!(!ids.is_empty());
        assert!(ids.values().all(|&n| n == 1), "round {round}: {ids:?}");
        assert_eq!(archived as usize, ids.len(), "round {round}: {reports:#?}");
    }
}
