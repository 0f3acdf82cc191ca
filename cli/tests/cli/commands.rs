//! The `licensewatch` command as a user runs it: a real process with a controlled environment.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::common;

fn licensewatch() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_licensewatch"));
    // Never inherit the developer's configuration.
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    c.current_dir(std::env::temp_dir());
    c
}

#[test]
fn help_lists_every_subcommand() {
    let out = licensewatch().arg("--help").output().expect("runs");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for sub in [
        "demo",
        "check",
        "notify",
        "audit-fetch",
        "reprocess",
        "serve",
        "sim",
        "report",
        "license-events",
        "history",
        "doctor",
        "init",
        "backfill",
        "statement",
    ] {
        assert!(text.contains(sub), "--help lacks {sub}:\n{text}");
    }
}

#[test]
fn check_without_configuration_names_tenant_and_client() {
    let out = licensewatch().arg("check").output().expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("LICENSEWATCH_TENANT_ID"), "{err}");
    assert!(err.contains("LICENSEWATCH_CLIENT_ID"), "{err}");
}

#[test]
fn bad_cloud_and_unknown_policy_key_are_named_together() {
    let dir = tempfile::tempdir().expect("tmp");
    let policy = dir.path().join("licensewatch.toml");
    std::fs::write(
        &policy,
        "[check]\nmass_delicensing_percent = 5.0\nsku_low_seat = 3\n",
    )
    .expect("write");
    let out = licensewatch()
        .args(["check", "--json"])
        .env(
            "LICENSEWATCH_TENANT_ID",
            "11111111-2222-3333-4444-555555555555",
        )
        .env(
            "LICENSEWATCH_CLIENT_ID",
            "66666666-7777-8888-9999-000000000000",
        )
        .env("LICENSEWATCH_CLIENT_SECRET", "not-shown-anywhere")
        .env("LICENSEWATCH_CLOUD", "germany")
        .env("LICENSEWATCH_CONFIG", &policy)
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("LICENSEWATCH_CLOUD") && err.contains("germany"),
        "{err}"
    );
    assert!(err.contains("check.sku_low_seat"), "{err}");
    assert!(
        !err.contains("not-shown-anywhere"),
        "the secret leaked: {err}"
    );
}

fn first_line_of_sim(args: &[&str]) -> serde_json::Value {
    let mut child = licensewatch()
        .arg("sim")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("reads");
    let parsed: serde_json::Value = serde_json::from_str(&line).expect("first line is JSON");
    // The server really answers at that address.
    let base = parsed["base_url"].as_str().expect("base_url").to_string();
    let rt = tokio::runtime::Runtime::new().expect("rt");
    let status = rt.block_on(async {
        reqwest::get(format!("{base}/v1.0/users"))
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    });
    assert_eq!(status, 401, "Graph answers (and wants a token)");
    let _ = child.kill();
    let _ = child.wait();
    parsed
}

#[test]
fn sim_prints_its_address_as_json_then_serves() {
    let v = first_line_of_sim(&["--port", "0"]);
    assert!(
        v["base_url"]
            .as_str()
            .expect("url")
            .starts_with("http://127.0.0.1:")
    );
    assert_eq!(v["tenant_id"], "48a80680-7326-48cd-9935-b556b81d3a4e");
    let v = first_line_of_sim(&[
        "--port",
        "0",
        "--users",
        "100000",
        "--tenant",
        "0d7a3c4e-1111-4222-8333-944455556666",
    ]);
    assert_eq!(v["tenant_id"], "0d7a3c4e-1111-4222-8333-944455556666");
}

#[test]
fn sim_rejects_a_missing_scenario_file_clearly() {
    let out = licensewatch()
        .args(["sim", "--scenario", "/nonexistent/scenario.json"])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/scenario.json"));
}

#[test]
fn check_json_prints_one_document_and_exits_zero_with_findings() {
    let mut sim = licensewatch()
        .args(["sim", "--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("sim starts");
    let mut line = String::new();
    BufReader::new(sim.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("line");
    let info: serde_json::Value = serde_json::from_str(&line).expect("json");
    let base = info["base_url"].as_str().expect("url").to_string();
    let dir = tempfile::tempdir().expect("tmp");
    let policy = dir.path().join("licensewatch.toml");
    std::fs::write(&policy, "[notify]\nadmins = [\"it-team@contoso.com\"]\nsender = \"it.admin@contoso.onmicrosoft.com\"\n").expect("policy");
    let run = |args: &[&str]| {
        licensewatch()
            .args(args)
            .env(
                "LICENSEWATCH_TENANT_ID",
                info["tenant_id"].as_str().expect("tenant"),
            )
            .env(
                "LICENSEWATCH_CLIENT_ID",
                "66666666-7777-8888-9999-000000000000",
            )
            .env("LICENSEWATCH_CLIENT_SECRET", "sim-accepts-any")
            .env("LICENSEWATCH_GRAPH_URL", &base)
            .env("LICENSEWATCH_LOGIN_URL", &base)
            .env("LICENSEWATCH_MANAGE_URL", &base)
            .env("LICENSEWATCH_NOW", "2026-11-21T09:00:00Z")
            .env(
                "LICENSEWATCH_STATE",
                format!("sqlite:{}", dir.path().join("lw.db").display()),
            )
            .env("LICENSEWATCH_CONFIG", &policy)
            .output()
            .expect("runs")
    };
    let csv = dir.path().join("findings.csv");
    let out = run(&["check", "--json", "--csv", csv.to_str().expect("path")]);
    let notified = run(&["notify", "--json"]);
    let _ = sim.kill();
    let _ = sim.wait();
    assert!(
        notified.status.success(),
        "{}",
        String::from_utf8_lossy(&notified.stderr)
    );
    let n: serde_json::Value =
        serde_json::from_slice(&notified.stdout).expect("notify prints one JSON document");
    let sent = n["sent"].as_array().expect("sent");
    assert!(
        sent.iter()
            .any(|s| s["channel"] == "mail" && s["audience"] == "admin"),
        "{n:#}"
    );
    assert!(
        sent.iter()
            .any(|s| s["channel"] == "console" && s["audience"] == "user")
    );
    assert!(sent.iter().all(|s| s["case_id"].is_string()
        && s.get("threshold_days").is_some()
        && s.get("deadline").is_some()));
    assert_eq!(n["skipped_already_sent"], 0);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("stdout is exactly one JSON document");
    let findings = doc["findings"].as_array().expect("findings");
    assert!(
        findings
            .iter()
            .any(|f| f["kind"] == "unlicensed_mailbox" && f["severity"] == "critical")
    );
    assert!(
        findings
            .iter()
            .all(|f| f["kind"].is_string() && f["severity"].is_string())
    );
    let text = std::fs::read_to_string(&csv).expect("csv written");
    assert_eq!(text.lines().count(), findings.len() + 1);
    assert!(text.starts_with("kind,severity,user_principal_name,sku_id,detail_json"));

    // Human output names SKUs by their product names, and history knows the baseline.
    let out = run(&["history", "--user", "alex.wilber@contoso.onmicrosoft.com"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Office 365 E3") && text.contains("first run"),
        "{text}"
    );
}

#[test]
fn serve_accepts_a_signed_request_and_its_worker_fixes_the_user() {
    use licensewatch_core::domain::signing::WebhookSecret;
    const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    let first_json = |child: &mut std::process::Child| -> serde_json::Value {
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("line");
        serde_json::from_str(&line).expect("first line is JSON")
    };
    let mut sim = licensewatch()
        .args(["sim", "--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("sim");
    let info = first_json(&mut sim);
    let base = info["base_url"].as_str().expect("url").to_string();
    let dir = tempfile::tempdir().expect("tmp");
    let policy = dir.path().join("licensewatch.toml");
    std::fs::write(
        &policy,
        "[webhook]\nsecrets_env = [\"LW_WEBHOOK_SECRET\"]\n",
    )
    .expect("policy");
    let mut serve = licensewatch()
        .args(["serve", "--port", "0"])
        .env(
            "LICENSEWATCH_TENANT_ID",
            info["tenant_id"].as_str().expect("tenant"),
        )
        .env(
            "LICENSEWATCH_CLIENT_ID",
            "66666666-7777-8888-9999-000000000000",
        )
        .env("LICENSEWATCH_CLIENT_SECRET", "sim-accepts-any")
        .env("LICENSEWATCH_GRAPH_URL", &base)
        .env("LICENSEWATCH_LOGIN_URL", &base)
        .env("LICENSEWATCH_MANAGE_URL", &base)
        .env(
            "LICENSEWATCH_STATE",
            format!("sqlite:{}", dir.path().join("lw.db").display()),
        )
        .env("LICENSEWATCH_CONFIG", &policy)
        .env("LW_WEBHOOK_SECRET", SECRET)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve");
    let endpoint = first_json(&mut serve)["base_url"]
        .as_str()
        .expect("url")
        .to_string();
    let rt = tokio::runtime::Runtime::new().expect("rt");
    let result = rt.block_on(async {
        let http = reqwest::Client::new();
        assert_eq!(http.get(format!("{endpoint}/healthz")).send().await.expect("healthz").status().as_u16(), 200);
        http.post(format!("{base}/_sim/skus/94763226-9b3c-4e75-a931-5c89701abe66/seats"))
            .json(&serde_json::json!({"enabled": 12}))
            .send()
            .await
            .expect("free seats");
        let body = br#"{"user":"teacher11@contoso.onmicrosoft.com","action":"reprocess","ticket":{"system":"jira","id":"IT-7"}}"#;
        let ts = chrono::Utc::now().timestamp();
        let sig = WebhookSecret::parse(SECRET).expect("secret").sign("msg_serve_1", ts, body);
        let post = |id: &'static str, sig: String, body: Vec<u8>| {
            http.post(format!("{endpoint}/remediations"))
                .header("content-type", "application/json")
                .header("webhook-id", id)
                .header("webhook-timestamp", ts.to_string())
                .header("webhook-signature", sig)
                .body(body)
                .send()
        };
        let r = post("msg_serve_1", sig.clone(), body.to_vec()).await.expect("post");
        assert_eq!(r.status().as_u16(), 202);
        let accepted: serde_json::Value = r.json().await.expect("json");
        let id = accepted["remediation_id"].as_str().expect("id").to_string();
        // Unsigned and oversized requests are refused over HTTP too.
        let r = post("msg_serve_2", "v1,AAAA".into(), body.to_vec()).await.expect("post");
        assert_eq!(r.status().as_u16(), 401);
        let r = post("msg_serve_3", sig, vec![b' '; 100 * 1024]).await.expect("post");
        assert_eq!(r.status().as_u16(), 413);
        // The in-process worker reprocesses the user and verifies the result.
        for _ in 0..100 {
            let s: serde_json::Value = http
                .get(format!("{endpoint}/remediations/{id}"))
                .send()
                .await
                .expect("status")
                .json()
                .await
                .expect("json");
            if s["status"] != "queued" {
                return s;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        serde_json::json!({"status": "timeout"})
    });
    let _ = serve.kill();
    let _ = serve.wait();
    let _ = sim.kill();
    let _ = sim.wait();
    // Group licensing processes the reprocess asynchronously: accepted, and pending until a later check.
    assert_eq!(result["status"], "pending", "{result}");
}

#[test]
fn reprocess_from_the_cli_keeps_the_allow_list_and_the_shared_budget() {
    let sim = common::sim();
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(
        dir.path().join("licensewatch.toml"),
        "[remediation]\nallow_remove = true\nsku_allow_list = [\"STANDARDWOFFPACK_STUDENT\"]\nmax_actions_per_hour = 1\n",
    )
    .expect("policy");
    let run = |args: &[&str]| {
        common::against(&sim, dir.path())
            .arg("reprocess")
            .args(args)
            .output()
            .expect("runs")
    };
    let user = "alex.wilber@contoso.onmicrosoft.com";
    // The allow-list binds the CLI as it binds the webhook.
    let removed = run(&[
        "--user",
        user,
        "--action",
        "remove",
        "--sku",
        "6fd2c87f-b296-42f0-b197-1e91e994b900",
    ]);
    let err = String::from_utf8_lossy(&removed.stderr).to_string();
    assert!(!removed.status.success());
    assert!(err.contains("sku_allow_list"), "{err}");
    // The budget (1 an hour) is shared: the first action spends it, the second is refused, an explicit override acts.
    let first = run(&["--user", user]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let second = run(&["--user", user]);
    let err = String::from_utf8_lossy(&second.stderr).to_string();
    assert!(!second.status.success());
    assert!(err.contains("max_actions_per_hour"), "{err}");
    let forced = run(&["--user", user, "--override-budget"]);
    let err = String::from_utf8_lossy(&forced.stderr).to_string();
    assert!(forced.status.success(), "{err}");
    assert!(
        err.contains("--override-budget"),
        "the override is logged: {err}"
    );
    let writes = tokio::runtime::Runtime::new().expect("rt").block_on(async {
        reqwest::get(format!("{}/_sim/writes", sim.base))
            .await
            .expect("writes")
            .json::<Vec<serde_json::Value>>()
            .await
            .expect("json")
    });
    assert_eq!(
        writes.len(),
        2,
        "two reprocess calls, no removal: {writes:#?}"
    );
    assert!(
        writes
            .iter()
            .all(|w| w["operation"] == "reprocessLicenseAssignment")
    );
}

/// POSTs a JSON body with a plain TCP connection (the tests have no HTTP client of their own).
fn post_json(base: &str, path: &str, body: &str) {
    use std::io::{Read, Write};
    let host = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(host).expect("connect");
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("write");
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 2"), "{answer}");
}

#[test]
fn progress_shows_on_a_terminal_and_never_in_pipes_or_json() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: util-linux `script` (a pseudo-terminal) is not installed");
        return;
    }
    let mut sim = licensewatch()
        .args(["sim", "--port", "0", "--users", "3000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("sim starts");
    let mut line = String::new();
    BufReader::new(sim.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("line");
    let info: serde_json::Value = serde_json::from_str(&line).expect("json");
    let base = info["base_url"].as_str().expect("url").to_string();
    // Four slow user pages, so that the spinner draws the count between them.
    post_json(
        &base,
        "/_sim/faults",
        r#"{"route": "/v1.0/users", "kind": "latency", "latency_ms": 300}"#,
    );
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(dir.path().join("none.toml"), "").expect("policy");
    let env = [
        (
            "LICENSEWATCH_TENANT_ID",
            info["tenant_id"].as_str().expect("tenant").to_string(),
        ),
        (
            "LICENSEWATCH_CLIENT_ID",
            "66666666-7777-8888-9999-000000000000".into(),
        ),
        ("LICENSEWATCH_CLIENT_SECRET", "sim-accepts-any".into()),
        ("LICENSEWATCH_GRAPH_URL", base.clone()),
        ("LICENSEWATCH_LOGIN_URL", base.clone()),
        ("LICENSEWATCH_MANAGE_URL", base.clone()),
        ("LICENSEWATCH_NOW", "2026-11-21T09:00:00Z".into()),
        (
            "LICENSEWATCH_STATE",
            format!("sqlite:{}", dir.path().join("lw.db").display()),
        ),
        (
            "LICENSEWATCH_CONFIG",
            dir.path().join("none.toml").display().to_string(),
        ),
    ];
    let exe = env!("CARGO_BIN_EXE_licensewatch");
    // On a terminal (a pseudo-terminal from `script`, stdout and stderr both on it).
    let on_tty = |args: &str| {
        let out = Command::new("script")
            .args(["-qfec", &format!("{exe} {args}"), "/dev/null"])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("TERM", "xterm-256color")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .current_dir(dir.path())
            .output()
            .expect("script runs");
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let tty = on_tty("check");
    let tty_json = on_tty("check --json");
    let piped = licensewatch()
        .arg("check")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("runs");
    let _ = sim.kill();
    let _ = sim.wait();
    assert!(
        tty.contains("users read"),
        "a terminal shows progress:\n{tty}"
    );
    assert!(
        !tty_json.contains("users read"),
        "--json shows none:\n{tty_json}"
    );
    let stderr = String::from_utf8_lossy(&piped.stderr);
    assert!(
        !stderr.contains("users read"),
        "a pipe shows none:\n{stderr}"
    );
    assert!(piped.status.success(), "{stderr}");
}

#[test]
fn all_tenants_checks_each_customer_and_names_the_one_whose_consent_is_gone() {
    let mut sim = licensewatch()
        .args(["sim", "--port", "0", "--tenants", "3", "--users", "40"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("sim starts");
    let mut line = String::new();
    BufReader::new(sim.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("line");
    let info: serde_json::Value = serde_json::from_str(&line).expect("json");
    let base = info["base_url"].as_str().expect("url").to_string();
    let ids: Vec<String> = info["tenants"]
        .as_array()
        .expect("tenants")
        .iter()
        .map(|t| t.as_str().expect("id").to_string())
        .collect();
    assert_eq!(ids.len(), 3);
    // The third customer removed the app.
    {
        use std::io::{Read, Write};
        let host = base.trim_start_matches("http://");
        let mut s = std::net::TcpStream::connect(host).expect("connect");
        let body = r#"{"revoked": true}"#;
        write!(s, "POST /_sim/consent HTTP/1.1\r\nHost: {host}\r\nx-sim-tenant: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", ids[2], body.len()).expect("write");
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 204"), "{answer}");
    }
    let dir = tempfile::tempdir().expect("tmp");
    let policy = dir.path().join("licensewatch.toml");
    // The second customer has its own suppression (a [[tenants]] entry's sections override the global ones).
    let tenants: String = ids
        .iter()
        .enumerate()
        .map(|(i, t)| match i {
            1 => format!("[[tenants]]\nid = \"{t}\"\n[[tenants.suppressions]]\nkind = \"sku_capacity\"\nuntil = \"2027-01-31\"\nreason = \"seats come through the MSP\"\n"),
            _ => format!("[[tenants]]\nid = \"{t}\"\n"),
        })
        .collect();
    std::fs::write(&policy, tenants).expect("policy");
    let run = |args: &[&str]| {
        licensewatch()
            .args(args)
            .env("LICENSEWATCH_TENANT_ID", &ids[0])
            .env(
                "LICENSEWATCH_CLIENT_ID",
                "66666666-7777-8888-9999-000000000000",
            )
            .env("LICENSEWATCH_CLIENT_SECRET", "sim-accepts-any")
            .env("LICENSEWATCH_GRAPH_URL", &base)
            .env("LICENSEWATCH_LOGIN_URL", &base)
            .env("LICENSEWATCH_MANAGE_URL", &base)
            .env("LICENSEWATCH_NOW", "2026-11-21T09:00:00Z")
            .env(
                "LICENSEWATCH_STATE",
                format!("sqlite:{}", dir.path().join("lw.db").display()),
            )
            .env(
                "LICENSEWATCH_ARCHIVE",
                format!("file:{}", dir.path().join("archive").display()),
            )
            .env("LICENSEWATCH_CONFIG", &policy)
            .output()
            .expect("runs")
    };
    let all = run(&["check", "--all-tenants", "--json", "--concurrency", "2"]);
    let audit = run(&["audit-fetch", "--all-tenants", "--json"]);
    let audit_again = run(&["audit-fetch", "--tenant", &ids[1], "--json"]);
    let one = run(&["check", "--tenant", &ids[1], "--json"]);
    let notify = run(&["notify", "--all-tenants", "--dry-run", "--json"]);
    let doctor = run(&["doctor", "--all-tenants", "--json"]);
    let doctor_one = run(&["doctor", "--tenant", &ids[1]]);
    let fleet_html = dir.path().join("out").join("fleet.html");
    let csv_dir = dir.path().join("csv");
    let fleet = run(&[
        "report",
        "--all-tenants",
        "--html",
        fleet_html.to_str().expect("path"),
        "--csv",
        csv_dir.to_str().expect("path"),
    ]);
    let _ = sim.kill();
    let _ = sim.wait();
    assert!(!all.status.success(), "a tenant could not be checked");
    let doc: serde_json::Value = serde_json::from_slice(&all.stdout).expect("one JSON document");
    let statuses: Vec<(String, String)> = doc["tenants"]
        .as_array()
        .expect("tenants")
        .iter()
        .map(|t| {
            (
                t["tenant_id"].as_str().expect("id").to_string(),
                t["status"].as_str().expect("status").to_string(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        vec![
            (ids[0].clone(), "ok".to_string()),
            (ids[1].clone(), "ok".to_string()),
            (ids[2].clone(), "consent_missing".to_string()),
        ],
        "{doc:#}"
    );
    assert_eq!(doc["tenants"][0]["users_scanned"], 40);
    assert!(
        one.status.success(),
        "{}",
        String::from_utf8_lossy(&one.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&one.stdout).expect("report");
    assert_eq!(report["tenant_id"], ids[1].as_str());
    let capacity: Vec<&serde_json::Value> = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["kind"] == "sku_capacity")
        .collect();
    assert!(!capacity.is_empty(), "{report:#}");
    assert!(
        capacity
            .iter()
            .all(|f| f["suppressed"]["reason"] == "seats come through the MSP"),
        "the tenant's own suppression applies: {capacity:?}"
    );
    // doctor: one report per customer; the one whose consent is gone is told why, and the command fails.
    assert!(!doctor.status.success(), "a tenant is not ready");
    let doc: serde_json::Value = serde_json::from_slice(&doctor.stdout).expect("one JSON document");
    assert_eq!(doc["healthy"], false);
    let verdicts: Vec<(&str, bool)> = doc["tenants"]
        .as_array()
        .expect("tenants")
        .iter()
        .map(|t| {
            let token_ok = t["checks"][0]["name"] == "token" && t["checks"][0]["verdict"] == "ok";
            (t["tenant_id"].as_str().expect("id"), token_ok)
        })
        .collect();
    assert_eq!(
        verdicts,
        [
            (ids[0].as_str(), true),
            (ids[1].as_str(), true),
            (ids[2].as_str(), false)
        ],
        "{doc:#}"
    );
    assert!(
        doc["tenants"][2]["checks"][0]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("no consent")),
        "{doc:#}"
    );
    let text = String::from_utf8_lossy(&doctor_one.stdout);
    assert!(text.contains("licensewatch doctor: tenant"), "{text}");
    assert!(text.contains("permission:User.Read.All"), "{text}");
    // audit-fetch over the fleet, into one SQLite file and one archive directory: each customer's records apart
    // (the second under tenants/{id}/), the same count for the same activity, the revoked one reported.
    assert!(!audit.status.success(), "a tenant could not be fetched");
    let doc: serde_json::Value = serde_json::from_slice(&audit.stdout).expect("one JSON document");
    let fetched: Vec<(&str, &str, u64)> = doc["tenants"]
        .as_array()
        .expect("tenants")
        .iter()
        .map(|t| {
            (
                t["tenant_id"].as_str().expect("id"),
                t["status"].as_str().expect("status"),
                t["records_archived"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(fetched[0].1, "ok", "{doc:#}");
    assert_eq!(fetched[1].1, "ok", "{doc:#}");
    assert_eq!(fetched[2].1, "consent_missing", "{doc:#}");
    assert!(fetched[0].2 > 0 && fetched[1].2 > 0, "{doc:#}");
    let files = |d: std::path::PathBuf| common::archived_objects(&d).len();
    let archive = dir.path().join("archive");
    assert!(files(archive.join("directory_audit")) > 0);
    assert!(
        files(
            archive
                .join("tenants")
                .join(&ids[1])
                .join("directory_audit")
        ) > 0,
        "the second customer's objects are in its own partition"
    );
    assert!(!archive.join("tenants").join(&ids[2]).exists());
    let again: serde_json::Value =
        serde_json::from_slice(&audit_again.stdout).expect("one JSON document");
    assert_eq!(
        again["records_archived"], 0,
        "its own book-keeping: nothing archived twice: {again:#}"
    );
    // grace-period-notify over the fleet: one outcome per tenant, in order. (A console-only dry run calls no
    // Graph API, so the third customer's missing consent does not show here: it shows when mail is sent.)
    let doc: serde_json::Value = serde_json::from_slice(&notify.stdout).expect("one JSON document");
    let listed: Vec<&str> = doc["tenants"]
        .as_array()
        .expect("tenants")
        .iter()
        .map(|t| t["tenant_id"].as_str().expect("id"))
        .collect();
    assert_eq!(listed, ids.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        doc["tenants"].as_array().expect("tenants")[..2]
            .iter()
            .all(|t| t["status"] == "ok" && t["notices"].is_u64()),
        "{doc:#}"
    );
    // The fleet page: a row per tenant linking to its page; the third, never checked, is marked urgent.
    assert!(
        fleet.status.success(),
        "{}",
        String::from_utf8_lossy(&fleet.stderr)
    );
    let page = std::fs::read_to_string(&fleet_html).expect("fleet page");
    for (i, id) in ids.iter().enumerate() {
        let own = format!("fleet-{id}.html");
        assert!(page.contains(&format!("href=\"{own}\"")), "{id} linked");
        assert_eq!(
            fleet_html.with_file_name(&own).exists(),
            i < 2,
            "a page for each tenant checked"
        );
    }
    assert!(
        page.contains("<tr class=\"urgent\"><td><a href=\"fleet-00000003"),
        "{page}"
    );
    assert!(page.contains(">never<"), "{page}");
    let png = dir.path().join("fleet.png");
    common::screenshot(&fleet_html, &png, &dir.path().join("chromium-profile"));
    let (share, colours) = common::ink(&png);
    assert!(share > 0.005, "the fleet page renders: {share}");
    assert!(
        colours >= 4,
        "text, links, rules and the red row: {colours}"
    );
    let fleet_csv = std::fs::read_to_string(csv_dir.join("fleet.csv")).expect("fleet.csv");
    assert_eq!(fleet_csv.lines().count(), 4, "{fleet_csv}");
    assert!(fleet_csv.starts_with("tenant,"), "{fleet_csv}");
    assert!(
        fleet_csv
            .lines()
            .next()
            .is_some_and(|h| h.ends_with("last check,last audit-fetch,last notify,consent")),
        "{fleet_csv}"
    );
    let rows: Vec<&str> = fleet_csv.lines().skip(1).collect();
    assert!(
        rows[0].ends_with(",2026-11-21,2026-11-21,never,ok"),
        "{fleet_csv}"
    );
    assert!(
        rows[2].ends_with(
            ",never (failing since 2026-11-21),never (failing since 2026-11-21),never,missing since 2026-11-21"
        ),
        "{fleet_csv}"
    );
    assert!(csv_dir.join(&ids[0]).join("sku_capacity.csv").exists());
}

#[test]
fn init_writes_a_policy_the_loader_accepts_and_never_overwrites_one() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = dir.path().join("licensewatch.toml");
    let init = || {
        licensewatch()
            .args([
                "init",
                "--no-prompt",
                "--output",
                out.to_str().expect("path"),
                "--tenant",
                "contoso.onmicrosoft.com",
                "--admins",
                "it-team@contoso.com, helpdesk@contoso.com",
                "--sender",
                "licensing@contoso.com",
                "--cloud",
                "usgov",
                "--admin-thresholds",
                "14,7,1",
            ])
            .output()
            .expect("runs")
    };
    let first = init();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let said = String::from_utf8_lossy(&first.stdout);
    assert!(
        said.contains("LICENSEWATCH_CLOUD=usgov") && said.contains("licensewatch doctor"),
        "{said}"
    );
    let written = std::fs::read_to_string(&out).expect("written");
    let p = licensewatch_core::policy::Policy::parse(&written).expect("the loader accepts it");
    assert_eq!(
        p.notify.admins,
        ["it-team@contoso.com", "helpdesk@contoso.com"]
    );
    assert_eq!(p.notify.sender, "licensing@contoso.com");
    assert_eq!(p.notify.admin_thresholds_days, [14, 7, 1]);
    // Run again: refused, the file untouched.
    std::fs::write(&out, format!("{written}# edited by hand\n")).expect("edit");
    let second = init();
    assert!(!second.status.success());
    assert!(String::from_utf8_lossy(&second.stderr).contains("never overwrites"));
    assert!(
        std::fs::read_to_string(&out)
            .expect("kept")
            .ends_with("# edited by hand\n")
    );
}
