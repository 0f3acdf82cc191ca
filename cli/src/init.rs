//! `licensewatch init`: writes a commented `licensewatch.toml` from flags, asking on a terminal for what they leave
//! out, and never overwrites a file. The tenant, app and cloud are environment variables (secrets stay out of the
//! file): the file's header says which to set, and the command prints the next steps.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use licensewatch_core::cloud::Cloud;
use licensewatch_core::policy::Policy;

/// What `init` was told.
#[derive(Debug, Clone, Default)]
pub(crate) struct Answers {
    /// Where to write the policy file.
    pub output: PathBuf,
    /// The tenant (GUID or verified domain).
    pub tenant: Option<String>,
    /// The app registration's client id.
    pub client_id: Option<String>,
    /// `global`, `usgov`, `usgovdod` or `china`.
    pub cloud: Option<String>,
    /// Who gets the admin notices.
    pub admins: Vec<String>,
    /// The mailbox notices are sent as.
    pub sender: Option<String>,
    /// Time zone of dates shown to people.
    pub time_zone: Option<String>,
    /// Whether mailbox owners are told too.
    pub notify_users: Option<bool>,
    /// Days before a deadline admins are told.
    pub admin_thresholds: Option<Vec<i64>>,
    /// Never ask (scripts).
    pub no_prompt: bool,
}

/// Writes the file, asking for what is missing when a person is at the terminal.
pub(crate) fn run(mut a: Answers) -> Result<(), String> {
    if a.output.exists() {
        return Err(format!(
            "{} exists: licensewatch init never overwrites a policy (move it away, or edit it)",
            a.output.display()
        ));
    }
    if !a.no_prompt && std::io::stdin().is_terminal() {
        ask_for_missing(&mut a)?;
    }
    let cloud: Cloud = a
        .cloud
        .as_deref()
        .unwrap_or("global")
        .parse()
        .map_err(|e| format!("--cloud: {e}"))?;
    let text = render(&a, cloud);
    // The file must be one the policy loader accepts, or it is not written.
    Policy::parse(&text).map_err(|e| format!("the answers make an invalid policy: {e}"))?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&a.output)
        .map_err(|e| format!("cannot create {}: {e}", a.output.display()))?;
    file.write_all(text.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", a.output.display()))?;
    println!("licensewatch init: wrote {}", a.output.display());
    println!("next:");
    for line in env_lines(&a, cloud) {
        println!("  export {line}");
    }
    println!("  export LICENSEWATCH_CONFIG={}", a.output.display());
    println!(
        "  licensewatch doctor        # proves the app registration and the tenant give every function what it needs"
    );
    println!("  licensewatch check         # the first report");
    Ok(())
}

fn ask_for_missing(a: &mut Answers) -> Result<(), String> {
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let mut ask = |question: &str| -> Result<Option<String>, String> {
        print!("{question}: ");
        std::io::stdout().flush().map_err(|e| e.to_string())?;
        let line = lines.next().transpose().map_err(|e| e.to_string())?;
        Ok(line.map(|l| l.trim().to_string()).filter(|l| !l.is_empty()))
    };
    if a.tenant.is_none() {
        a.tenant = ask("Tenant id or domain (contoso.onmicrosoft.com)")?;
    }
    if a.client_id.is_none() {
        a.client_id = ask("App registration's client id")?;
    }
    if a.cloud.is_none() {
        a.cloud = ask("Cloud: global, usgov, usgovdod or china [global]")?;
    }
    if a.admins.is_empty() {
        let admins = ask("Admins to notify, comma-separated")?.unwrap_or_default();
        a.admins = split_list(&admins);
    }
    if a.sender.is_none() {
        a.sender = ask("Mailbox notices are sent as (empty: webhooks only)")?;
    }
    if a.time_zone.is_none() {
        a.time_zone = ask("Time zone for dates in notices (IANA, e.g. Europe/Berlin) [UTC]")?;
    }
    Ok(())
}

/// `a, b` → `["a", "b"]`.
pub(crate) fn split_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn env_lines(a: &Answers, cloud: Cloud) -> Vec<String> {
    vec![
        format!("LICENSEWATCH_TENANT_ID={}", a.tenant.as_deref().unwrap_or("<tenant id>")),
        format!("LICENSEWATCH_CLIENT_ID={}", a.client_id.as_deref().unwrap_or("<client id>")),
        "LICENSEWATCH_CLIENT_SECRET=<the secret's value>   # or LICENSEWATCH_CLIENT_CERT=<PEM file>".into(),
        format!("LICENSEWATCH_CLOUD={cloud}"),
    ]
}

/// A TOML basic string: JSON's string escapes (`\"`, `\\`, `\uXXXX`) are TOML's too.
fn quoted(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

fn list(items: &[String]) -> String {
    format!(
        "[{}]",
        items
            .iter()
            .map(|s| quoted(s))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// The commented policy file.
fn render(a: &Answers, cloud: Cloud) -> String {
    let d = Policy::default();
    let thresholds = a
        .admin_thresholds
        .clone()
        .unwrap_or_else(|| d.notify.admin_thresholds_days.clone());
    let days = |v: &[i64]| {
        format!(
            "[{}]",
            v.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")
        )
    };
    let env: String = env_lines(a, cloud)
        .iter()
        .map(|l| format!("#   {l}\n"))
        .collect();
    format!(
        r#"# licensewatch policy, written by `licensewatch init`. Every key is optional; README "Configuration" lists them all.
#
# The tenant, app and cloud are environment variables, not part of this file (keep secrets out of it):
{env}#   LICENSEWATCH_CONFIG=<this file>
# Then `licensewatch doctor` checks the app registration, and `licensewatch check` writes the first report.

[tenant]
time_zone = {tz}              # dates in notices, check output and the report (IANA name)

[notify]
admins = {admins}             # who is told of mailboxes about to be cut off and of alerts
sender = {sender}             # the mailbox notices are mailed as; empty: webhooks only (Teams, Slack, generic)
notify_users = {notify_users}           # tell the mailbox's owner too
admin_thresholds_days = {admin_days}  # days before the deadline the admins are told
user_thresholds_days = {user_days}

# [[notify.webhooks]]         # Teams, Slack or a signed generic webhook
# kind = "teams"
# url = "https://..."

[audit]
backfill_days = {backfill}          # licence history read once from the Purview audit log (at most 180; 0 = off)

[remediation]
auto_reprocess = false        # let license-check queue reprocess requests by itself
max_actions_per_hour = {max_actions}
"#,
        tz = quoted(a.time_zone.as_deref().unwrap_or("UTC")),
        admins = list(&a.admins),
        sender = quoted(a.sender.as_deref().unwrap_or("")),
        notify_users = a.notify_users.unwrap_or(d.notify.notify_users),
        admin_days = days(&thresholds),
        user_days = days(&d.notify.user_thresholds_days),
        backfill = d.audit.backfill_days,
        max_actions = d.remediation.max_actions_per_hour,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_written_policy_round_trips_through_the_policy_parser() {
        let a = Answers {
            tenant: Some("contoso.onmicrosoft.com".into()),
            admins: vec!["it-team@contoso.com".into(), "o'brien@contoso.com".into()],
            sender: Some("licensing@contoso.com".into()),
            time_zone: Some("Europe/Berlin".into()),
            notify_users: Some(false),
            admin_thresholds: Some(vec![14, 7, 1]),
            ..Default::default()
        };
        let p = Policy::parse(&render(&a, Cloud::UsGov)).expect("valid");
        assert_eq!(p.notify.admins, a.admins);
        assert_eq!(p.notify.sender, "licensing@contoso.com");
        assert!(!p.notify.notify_users);
        assert_eq!(p.notify.admin_thresholds_days, vec![14, 7, 1]);
        assert_eq!(p.tenant.time_zone, "Europe/Berlin");
        assert_eq!(p.audit.backfill_days, 180);
        assert!(render(&a, Cloud::UsGov).contains("LICENSEWATCH_CLOUD=usgov"));
    }

    #[test]
    fn an_invalid_answer_is_refused_before_anything_is_written() {
        let dir = tempfile::tempdir().expect("tmp");
        let out = dir.path().join("licensewatch.toml");
        let bad = Answers {
            output: out.clone(),
            time_zone: Some("Mars/Olympus".into()),
            no_prompt: true,
            ..Default::default()
        };
        let e = run(bad).expect_err("refused");
        assert!(e.contains("time_zone"), "{e}");
        assert!(!out.exists());
    }
}
